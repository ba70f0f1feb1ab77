/*
 * slots.h - player slots of a slotted region, claimed and released by any process without
 * a lock, with pages committed on demand and given back by compaction.
 *
 * Per data page the slot table keeps one word: the number of slots in use on it, a
 * COMMITTED bit and a BUSY bit held while one process commits or decommits the page. Slots
 * are claimed lowest-first with a CAS on their owner word, so used slots gather at the start
 * of the region and compaction finds whole free pages at the end.
 */
#ifndef MB_SLOTS_H
#define MB_SLOTS_H

#include "layout.h"
#include "os.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A region's section mapped into this process. */
typedef struct mb_region_map_s {
  mb_state_t *state;      /* the mapped control block (commit total and limit) */
  mb_region_desc_t *desc; /* in the mapped control block */
  mb_os_section_t sec;
  unsigned char *base; /* view of the whole section */
} mb_region_map_t;

/*
 * Claim a free slot for `player_id` on behalf of client `owner` (client index + 1), committing
 * its page(s) if needed. *index receives the slot number. The slot's bytes are zero. MB_EFULL
 * if every slot is taken, MB_ENOSPC if the commit would pass the broker's commit limit or the
 * OS refused it (counted in desc->commit_failures; nothing is left claimed), MB_EINVAL if the
 * region has no slots.
 */
int mb__slot_acquire(mb_region_map_t *r, uint32_t owner, uint64_t player_id, uint64_t *index);

/* Release slot `index` held by `owner`. MB_ERANGE for a bad index, MB_EACCES if `owner` does
 * not hold it (nothing changes). */
int mb__slot_release(mb_region_map_t *r, uint64_t index, uint32_t owner);

/* Release every slot held by `owner`; *count (may be NULL) receives how many. */
int mb__slot_release_owner(mb_region_map_t *r, uint32_t owner, uint64_t *count);

/*
 * Free client entry `index` of st's table, which the caller holds CLAIMED (layout.h): release
 * every slot the entry owns in the given regions (those without slots are skipped) and every
 * block it holds in the given pools (those not mapped are skipped), clear the entry and store
 * FREE, after which the caller must not touch it. *freed (may be NULL) receives the number of
 * slots and blocks released.
 */
void mb__client_free(mb_state_t *st, uint32_t index, mb_region_map_t *regions, int nregions,
                     mb_pool_map_t *pools, int npools, uint64_t *freed);

/* The slot's bytes. */
static inline void *mb__slot_ptr(const mb_region_map_t *r, uint64_t index) {
  return r->base + index * r->desc->slot_size;
}

/*
 * Give back committed pages of a lazy slotted region that hold no used slot (a region
 * committed at start stays committed). *freed receives the bytes decommitted. Where the OS cannot
 * decommit shared pages (mb_os_mem_config()-> shared_decommit == 0) nothing is freed and MB_ENOTSUP
 * is returned.
 */
int mb__region_compact(mb_region_map_t *r, uint64_t *freed);

/*
 * Charge `bytes` against the broker-wide commit total (mb_state_t.game) before committing
 * them, raising its peak: 0, or MB_ENOSPC (no message: the caller says what it was
 * committing) if that would pass the commit limit - the charge is then taken back. Give
 * bytes back with mb_add64(&st->game.committed_total, 0 - bytes).
 */
int mb__commit_charge(mb_state_t *st, uint64_t bytes);

/* Add `delta` bytes to region d's committed count and keep its peak. */
void mb__region_account(mb_region_desc_t *d, int64_t delta);

#ifdef __cplusplus
}
#endif

#endif /* MB_SLOTS_H */
