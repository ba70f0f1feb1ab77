/*
 * pool.h - fixed-size object pools in shared memory (layout.h, mb_pool_desc_t): blocks taken
 * and given back by any attached process without a lock, stamped with the client that holds
 * them so the broker can take back a dead client's blocks.
 *
 * The free blocks form a stack of chains; a chain (up to MB_POOL_CHAIN blocks) moves in one
 * CAS on the stack's head, which carries an ABA tag. Blocks never handed out are taken from
 * a bump index, so a fresh pool costs no initialisation and no page is touched before use.
 */
#ifndef MB_POOL_H
#define MB_POOL_H

#include "layout.h"
#include "os.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pool's section mapped into this process. */
typedef struct mb_pool_map_s {
  mb_pool_desc_t *desc; /* in the mapped control block */
  mb_os_section_t sec;
  unsigned char *base; /* view of the whole section; NULL when not mapped */
  mb_pool_intent_t *intents;
  mb_pool_mag_t *mags; /* one per intent record */
  uint32_t rec;        /* this process's own intent record (release_owner); UINT32_MAX: none */
  mb_au64 *links;
  mb_au32 *stamps;
  unsigned char *blocks;
  /* copies of the descriptor's figures, for the fast paths (mb__pool_bind) */
  uint64_t span; /* bytes of all blocks: capacity * stride */
  uint32_t stride;
  uint32_t capacity; /* the only capacity the pool code uses: a forged descriptor changes
                        nothing once a map is bound */
  int shift;         /* log2(stride) if a power of two, else -1 */
  uint32_t flags;    /* MB_POOL_F_* as bound: a forged debug bit changes nothing either */
} mb_pool_map_t;

/* Section layout of a pool of `capacity` blocks of `object_size` bytes aligned to `align`:
 * fills the desc's offsets, stride and section_size (page-rounded). MB_ERANGE on overflow. */
int mb__pool_layout(mb_pool_desc_t *d, uint32_t object_size, uint32_t align, uint32_t capacity,
                    size_t page_size);

/* Set the array pointers of a map whose base and desc are set. */
void mb__pool_bind(mb_pool_map_t *p);

/*
 * Claim a free intent record for `holder` (MB_POOL_HOLDER: the client's index + 1, its
 * attachment, its pid; the broker's is record 0, claimed by mb__pool_intent_claim_broker).
 * Its index into *rec; MB_EFULL if all MB_POOL_INTENTS are held. Every take and give goes
 * through a record of the calling thread, which no other thread uses at the same time.
 */
int mb__pool_intent_claim(mb_pool_map_t *p, uint64_t holder, uint32_t *rec);
void mb__pool_intent_claim_broker(mb_pool_map_t *p, uint32_t pid);

/* Let record rec go if `holder` still holds it (its op is over). */
void mb__pool_intent_release(mb_pool_map_t *p, uint32_t rec, uint64_t holder);

/*
 * Take up to `want` (1..MB_POOL_CHAIN) blocks through intent record rec, stamped `stamp`
 * (MB_STAMP_IN_USE or MB_STAMP_CACHED, | the client's table index + 1): their indexes into out[],
 * their number into *got (>= 1). MB_EFULL if the pool has none (counted as a miss). Debug pools
 * check that a block taken from the free stack still holds the poison its free wrote: one that does
 * not was written after it was freed; it is set aside (never handed out again, counted in errors)
 * and MB_EIO is returned with a message naming the block - the blocks taken with it go back first.
 */
int mb__pool_take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t want, uint32_t *out,
                  uint32_t *got);

/*
 * Give n (1..MB_POOL_CHAIN) blocks back as one chain, through intent record rec. Each block's stamp
 * must match `expect`: with an owner in it (MB_STAMP_OWNER != 0), exactly (a thread cache's flush,
 * the release of a client's blocks: never another client's block); without, any owner with the bit
 * `expect` (MB_STAMP_IN_USE: a free, which any client may do). It moves to free by one CAS per
 * block, so two frees of one block cannot both pass. A block that does not match is left alone:
 * without an owner in `expect` that is a double free, refused with MB_EINVAL (counted in errors);
 * with one, it changed hands and is silently not ours to give. The other blocks are given back as
 * one chain (*given, may be NULL, says how many). Debug pools fill the freed blocks with poison.
 */
int mb__pool_give(mb_pool_map_t *p, uint32_t rec, const uint32_t *idx, uint32_t n, uint32_t expect,
                  uint32_t *given);

/*
 * The calls of an uncached handle (MB_POOL_NO_CACHE), through record rec of the calling
 * thread: blocks it frees go to the record's magazine in shared memory (a full one gives its
 * top MB_POOL_CHAIN back to the free stack first), its allocs take from there (an empty one
 * takes a chain first); a take that finds the pool empty takes a block from any other
 * record's magazine. mag_take: a block stamped `stamp` (MB_STAMP_IN_USE | owner) into *out,
 * or MB_EFULL as mb__pool_take.
 * mag_give: block i (< capacity) from in use (by any client) into the magazine, MB_EINVAL if
 * it is not in use. mag_flush: every block of the magazine back to the free stack (thread
 * exit, mb_pool_flush, detach).
 */
int mb__pool_mag_take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t *out);
int mb__pool_mag_give(mb_pool_map_t *p, uint32_t rec, uint32_t owner, uint32_t i);
void mb__pool_mag_flush(mb_pool_map_t *p, uint32_t rec, uint32_t owner);

/*
 * Failure injection for tests: when set, called at each crash point of a take or give (the
 * numbers in pool.c, MB__CRASH); a test longjmps out of it to leave the op exactly as a thread
 * killed there leaves it. NULL (never set) outside tests.
 */
extern void (*mb__pool_crash_hook)(int point);

/* The block index of obj: MB_EINVAL if obj is not the start of a block of this pool. */
int mb__pool_index(const mb_pool_map_t *p, const void *obj, uint32_t *idx);

/* The pool's allocated and freed: the sums of its intent records' taken and given. Every
 * given is read before any taken (a block is counted taken before it can be given), so
 * allocated >= freed, and while nothing moves they are exact (the given sum is read again
 * after the taken one, up to a few times, until the two agree: pool.c, the peak). */
void mb__pool_totals(const mb_pool_map_t *p, uint64_t *allocated, uint64_t *freed);

/* Blocks out of the pool now (held or in thread caches): allocated - freed, never below 0. */
uint64_t mb__pool_in_use(const mb_pool_map_t *p);

/* Copy the totals into the descriptor's allocated and freed and raise peak (the broker). */
void mb__pool_publish(mb_pool_map_t *p);

static inline void *mb__pool_block(const mb_pool_map_t *p, uint32_t idx) {
  return p->blocks + (size_t)idx * p->stride;
}

/*
 * Give back every block of `owner` (in use or in its thread caches, when a client is freed)
 * or, with cached_only, only those in its thread caches (a restart: its caches are gone);
 * returns how many. First every intent record of `owner` held by another attachment than
 * this process's own record (p->rec, which does the giving) is completed or rolled back (a
 * thread died in a take or give: pool.c's crash points) and let go. The caller holds the
 * client entry so that no live thread uses those records (the broker: DEAD -> CLAIMED; a
 * restart: the entry taken over, before its threads use the pool).
 */
uint64_t mb__pool_release_owner(mb_pool_map_t *p, uint32_t owner, int cached_only);

#ifdef __cplusplus
}
#endif

#endif /* MB_POOL_H */
