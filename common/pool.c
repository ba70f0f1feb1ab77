/*
 * pool.c - lock-free fixed-size object pools in shared memory (see pool.h).
 *
 * The free stack's head is (tag << 35) | (writer << 25) | (first block of the top chain + 1)
 * (layout.h, MB_POOL_WORD_*): a 29-bit ABA tag, the 10-bit intent record whose CAS wrote it,
 * 25 bits of block (capacity <= 2^24, MB_POOL_CAPACITY_MAX). bump has the same form. A pop
 * reads the head, then the next chain from the top chain's first block, and CASes the head
 * to it with tag + 1; if another process popped and pushed in between, the head differs and
 * the CAS fails, so a stale "next chain" is never installed. links[] lives apart from the
 * blocks, so reading a link of a block another process holds is harmless.
 *
 * The ABA bound, proved: every successful CAS on head sets tag to the tag it replaced + 1
 * (mod 2^29), and nothing else writes head. So between a read of head (tag t) and a later
 * moment when head again holds that exact word, exactly k * 2^29 CASes on head succeeded, k
 * >= 1 (tag t needs a whole turn to come back; the writer and block fields only narrow it
 * further). A pop or push whose read and CAS are separated by fewer than 2^29 = 536,870,912
 * successful head CASes by other threads installs no stale word. One hot thread needs tens of
 * ns per CAS: seconds of head traffic while the popper stays preempted between two adjacent
 * instructions. (With the 16-bit tag this was 65536 CASes - test-pool rv_aba_16bit_tag.)
 * bump never repeats a word: its low part only grows, and stops at the capacity.
 *
 * ---- Death at any instruction: intent records ------------------------------------------------
 *
 * Every take and give runs through an intent record (layout.h, mb_pool_intent_t) that only
 * its holder - one thread - writes. The one step whose outcome a dead thread cannot report is
 * a CAS on `head` or `bump`: so the record says what the CAS is for before it is tried
 * (op = {seq q, PENDING, kind}, first, count, base, and `next`: the exact word the CAS
 * installs, which carries the new tag and writer = the record). Whoever replaces a word w
 * written by record r first (before its own CAS) marks r's op LANDED if it is still PENDING,
 * of a kind that CASes that word, and r's next is w (mb__ack, a CAS on the op, tried at most
 * MB__ACK_TRIES times). So for a dead holder's record "did my CAS happen?" has an answer
 * (mb__landed): yes if head (bump) still equals its next, else yes iff its op reads LANDED.
 * r's next equals a word in head that r's op did not write only past the ABA bound above:
 * an op's next is its read word's tag + 1, and op_begin resets next before the op is PENDING.
 *
 * Counters: taken and given of a record are written only by its holder, as base + n (a
 * store, not an add), so completing a dead holder's op sets them again to the same value.
 * allocated / freed of the pool are their sums, exact whatever died where. The sums are read
 * given, taken, given again (mb__totals): taken minus the second given sum is at most what
 * was out when the taken pass ended (each only grows; equal to the given-first figure when
 * both given sums agree), and the peak is raised only from that (never above a true figure;
 * given-first, a free between the passes made it overshoot - rv_peak_overshoots) - at every
 * publish (broker tick), every reap (a take killed after T4 never raised it), every take from
 * bump, and every MB__PEAK_EVERY blocks a record pops, and only while bump is above it.
 *
 * The crash points, with the MB__CRASH numbers the tests kill a thread at (test-pool:
 * crash_points_every_step, one thread; two_threads_killed_every_pair, two threads of one client
 * at every pair; release_owner_killed_at_its_gives, a reclaim killed inside its own gives;
 * test-killstorm, real processes), and what the reaper sees and does at each:
 * Take (pop: a chain from the stack; bump: blocks never used), record r, client o:
 *   T0 op = {q, PENDING, POP|BUMP}, base = taken, next = none                       (1)
 *        crash: not landed (next is no word), nothing moved: nothing to do
 *   T1 first (count) and next written, CAS head / bump                         (2, 8 | 3, 9)
 *        crash before the CAS: not landed; after: landed (head still next, or op LANDED)
 *   T2 op LANDED                                                                     (4)
 *        as after T1. A landed pop's chain is detached: its links are still the ones the
 *        pop saw (only the holder writes links of blocks it owns), so the reaper walks it
 *   T3 each block stamped (the caller's stamp)                                       (5)
 *        landed: the reaper stamps CACHED|o the blocks of the chain (bump range) still FREE
 *        or still GIVING: a GIVING stamp on a detached block is stale - the push that put
 *        the chain in the stack had not done its G3 (that thread may be dead too, or alive:
 *        its G3 CAS then fails on CACHED; if it wins first, the reaper's retry sees FREE)
 *   T4 taken = base + n, op IDLE                                                  (6, 7)
 *        landed: taken set again to base + n; after IDLE: nothing to complete. Killed before
 *        the peak is raised: the reap raises it from the totals
 *   T5 a chain longer than wanted: the rest given back (a give, below, stamped CACHED|o in T3)
 * Give (push), record r, client o (blocks stamped IN_USE/CACHED):
 *   G0 op = {q, PENDING, PUSH}, base = given, next = none                           (10)
 *        crash: nothing moved
 *   G1 each block: CAS stamp -> GIVING|r|o                                          (11)
 *        not landed: the reaper gives back (through its own record) every block stamped
 *        GIVING|r|o, as it does the IN_USE|o and CACHED|o ones
 *        A CAS even for a flush of o's own CACHED|o blocks: a second writer is always
 *        possible - the reaper of an entry whose process the OS misjudged dead (Linux once read
 *        a zombie main thread with live threads as exited), forged shared memory, two threads
 *        freeing one block - and with a plain store both would push the block: a cycle in the
 *        stack, blocks handed out twice (tests/test-pool.c rvpool_g1_store_vs_reaper). With
 *        the CAS the loser's G1 fails and the block is pushed once.
 *   G2 chain linked, first/count/next written, CAS head                         (12, 13 | 14)
 *        before the CAS: not landed (as G1); after: landed: the chain is in the stack
 *   G3 op LANDED; each block CAS GIVING|r|o -> FREE                             (15, 16)
 *        (fails harmlessly for a block popped and restamped meanwhile)
 *        landed: the reaper CASes the blocks still GIVING|r|o to FREE (they are in the stack)
 *   G4 given = base + n, op IDLE                                                (17, 18)
 *        landed: given set again to base + n
 * A restart of the same client (the entry taken over) does the same for its predecessor's
 * records but keeps the IN_USE|o blocks: they are its objects (mb_pool_next). A block a killed
 * thread had stamped IN_USE in T3 of an alloc that never returned is one of them.
 * The reaper (mb__pool_release_owner) runs in three steps, and may itself be killed in any
 * (a restart's reclaim: then the broker's reap, or the next restart, runs them all again):
 *   R1 every record of the dead client completed (landed ops rolled forward, the others rolled
 *      back - they changed nothing visible but GIVING stamps). A landed pop or bump goes IDLE
 *      here, its blocks now CACHED|o; a landed push stays LANDED.
 *        crash after R1: a rerun finds the pops/bumps IDLE (their blocks are plain CACHED|o
 *        ones) and the pushes still landed (their GIVING blocks go FREE, never pushed twice)
 *   R2 every block stamped IN_USE|o (not for a restart), CACHED|o, or GIVING|r|o of a record
 *      not landed given back through the reaper's own record (gives: points 10..18, the
 *      reaper's record being of client o for a restart); GIVING|r|o of a landed push -> FREE
 *        crash in a give: that give is the reaper's record's, completed by the rerun like any
 *        dead thread's (a restart's record is the client's); blocks not yet reached keep
 *        their stamps and are found again
 *   R3 each dead record set IDLE and let go
 *        crash: the rerun completes IDLE records (nothing to do) and lets them go
 * The thread caches' fast paths (client/poolcache.c, and the same code inlined into a game
 * server by membroker.h's MB_POOL_INLINE) write one word of shared memory per call, the block's
 * stamp, and no intent record: the cache itself is process memory. Alloc: CACHED|o -> IN_USE|o;
 * free of its own block: IN_USE|o -> CACHED|o (a plain store: the block is this client's).
 * Killed before the store, after it, or with the pointer not yet returned: the block is
 * CACHED|o or IN_USE|o, and R2 gives it back (a restart keeps an IN_USE|o one: mb_pool_next
 * finds it, as after T3). No count moves on a fast path: taken/given moved at the refill or
 * flush that brought the block in or takes it out.
 *
 * ---- Magazines: the uncached calls (MB_POOL_NO_CACHE) -----------------------------------------
 *
 * A thread's uncached frees go to its record r's magazine (layout.h, mb_pool_mag_t) in shared
 * memory, and its allocs come from there; the free stack moves whole chains in and out of it.
 * A magazine's blocks are free and counted so (taken / given move when a block is handed out
 * of, or freed into, a magazine: allocated and freed stay exact, as without a magazine), and
 * any taker that finds the stack and bump empty takes one (a steal): a pool needs no
 * headroom for them. Blocks in r's magazine are stamped MAG(r, o) = CACHED|MAG|r|o. The
 * magazine word has head's form (tag, writer, low = count); every write of it is a CAS that
 * sets tag + 1. slot[] is written by r's holder only, slot[count] before the CAS that counts
 * it, so a reader of the word (acquire) reads the slots below its count as they were.
 * Who writes the word: r's holder (pops, pushes, chains in and out, writer r), a thief (writer:
 * its own record), r's reaper (emptied, writer r). Whoever replaces a word a thief wrote
 * acks the thief's op first (mb__ack, kind STEAL, the magazine named in the thief's count),
 * exactly as for head, so a dead thief's "did my CAS happen?" has an answer.
 * The ops (record r, client o; the MB__CRASH numbers; what the reaper does if r dies there):
 * Alloc (MPOP): the top block i of r's magazine, taken = base + 1.
 *   M0 op = {q, PENDING, MPOP}, base = taken, first = none                           (30)
 *        crash: nothing moved
 *   M1 CAS word: count - 1                                                          (31)
 *        i is out of the magazine, stamped MAG(r, o), first still none: the reap's step 2
 *        gives back every MAG(r, o) block of a dead r (uncounted: it is free)
 *   M2 first = i; M3 CAS stamp MAG(r, o) -> IN_USE|o                            (32 | 33)
 *        (fails: not ours - a reaper that judged o dead took it, or a forged slot: dropped)
 *        stamp IN_USE|o with the op PENDING and first = i: M3 happened (after M1 no one else
 *        can stamp i: it is in no magazine and not free), so taken = base + 1 (M4's value)
 *   M4 taken = base + 1; M5 op IDLE                                                 (34)
 *   An empty magazine first takes a chain (mb__take with MB__OP_NC: a pop or bump as above,
 *   stamped MAG(r, o), taken does not move; completed the same way, with MAG(r, o) for
 *   CACHED|o) and lists it (slots, then a CAS from count 0): killed in between (36), the
 *   chain is MAG(r, o) blocks in no magazine: step 2 again.
 * Free (MPUSH) of block i, in use by any client: given = base + 1, i listed.
 *   A full magazine first gives its top MB_POOL_CHAIN back (mb__mag_unlist, as a thread's
 *   exit empties it): slots read, CAS word count - 32 (40), then mb__give with MB__OP_NC
 *   (41..: G0..G4 with given not moving, and a dead record's half-given GIVING blocks given
 *   back uncounted by step 2)
 *   P0 op = {q, PENDING, MPUSH}, base = given, first = i                            (42)
 *        crash: nothing moved (the stamp is what it was)
 *   P1 CAS stamp IN_USE|x -> MAG(r, o): the free; only one of two frees moves it     (43)
 *        stamp MAG(r, o) with the op PENDING and first = i: P1 happened (only r's own ops
 *        write MAG(r, .), and i was in use before), so given = base + 1 (P2's value)
 *   P2 given = base + 1; P3 op IDLE                                                 (44)
 *   P4 slot[count] = i, CAS word count + 1                                          (45)
 *        crash: a MAG(r, o) block in no magazine: step 2 gives it back, uncounted
 *   A word that keeps moving (forged) sends the block to the stack instead (uncounted).
 * Steal by record s of client q from r's magazine (the taker found the stack and bump empty):
 *   S0 i = slot[top], its stamp read (MAG(r, x), or the next magazine: a forged top); op =
 *      {q', PENDING, STEAL}, count = r, first = i, next = the word its CAS installs (writer
 *      s)                                                                           (20)
 *   S1 CAS r's word: count - 1                                                      (21)
 *        landed exactly as a pop (r's word still next, or the op acked LANDED)
 *   S2 op LANDED                                                                    (22)
 *   S3 CAS stamp MAG(r, x) (as read in S0) -> the taker's stamp (IN_USE|q, CACHED|q for a
 *      thread cache, MAG(s, q) for s's own empty magazine). Between S1 and S3 no one else
 *      moves i: it is in no magazine, and r's reaper leaves the block of a landed steal to its
 *      thief (step 1b below)
 *        landed, stamp still MAG(r, .): it is s's now: stamped MAG(s, q), step 2 gives it
 *        back uncounted; stamp IN_USE|q or CACHED|q: S3 happened, counted (S4's value) (23)
 *   S4 taken = base + 1 (not for MAG(s, q): still free); S5 op IDLE                 (24)
 * The reap adds step 1b: every dead record's magazine word set to count 0 (acking a thief
 * that wrote it), then the blocks of landed steals of live records noted (a thief can land on
 * a dead record's magazine only before the emptying, and is LANDED by then: by itself or the
 * ack); step 2 gives back uncounted, but for those, the MAG(r, o) blocks of records that are dead
 * or no longer o's (a detach releases its records first: blocks a forged word made a magazine
 * forget come back then), and the GIVING blocks of a dead record's not-landed MB__OP_NC push.
 * Hostile memory: a count above MB_POOL_MAG empties the magazine (its blocks come back when
 * their client is reaped), slots are range-checked and trusted only through a CAS from the
 * exact stamp MAG(r, .), every loop is bounded (MB__MAG_TRIES, MB__STEAL_TRIES: each failed
 * CAS on a word is another's progress; then straight to the stack, or the next magazine). A
 * record that reads as a landed steal is believed by the reap (1b) only for a block its victim
 * does not list.
 * Known edge, as for the thread caches: a broker that wrongly judges a live client dead gives
 * its magazine blocks back; the client's next pop of one fails its CAS and drops it.
 *
 * Blocks of a detached chain are touched by no one else: a free needs an IN_USE stamp, and
 * links are written only by whoever owns a block. Every walk is bounded (MB_POOL_CHAIN,
 * capacity) and every index read from shared memory is range-checked: a forged link ends a
 * walk, never leaves the pool.
 */
#include "pool.h"

#include <string.h>

#define MB_POOL_POISON 0xDB

enum { MB__OP_IDLE = 0, MB__OP_PENDING = 1, MB__OP_LANDED = 2 };
enum {
  MB__OP_POP = 1,   /* a chain from the free stack */
  MB__OP_BUMP = 2,  /* blocks never used */
  MB__OP_PUSH = 3,  /* a chain onto the free stack */
  MB__OP_STEAL = 4, /* the top block of another record's magazine */
  MB__OP_MPOP = 5,  /* an uncached alloc: the top block of the record's own magazine */
  MB__OP_MPUSH = 6, /* an uncached free: a block in use into the record's own magazine */
};
/* With a pop, bump or push: blocks that are free on both sides (into or out of a magazine),
 * so taken and given do not move. */
#define MB__OP_NC 0x10u
#define MB__OP(seq, state, kind) (((uint64_t)(seq) << 32) | ((uint64_t)(state) << 8) | (kind))
#define MB__OP_SEQ(op) ((uint32_t)((op) >> 32))
#define MB__OP_STATE(op) ((uint32_t)(((op) >> 8) & 0xFFu))
#define MB__OP_KIND(op) ((uint32_t)((op)&0x0Fu))
#define MB__OP_BITS(op) ((uint32_t)((op)&0xFFu)) /* kind | MB__OP_NC */
/* The fields of head and bump (layout.h): ABA tag, writer record, low (block + 1 / bump). */
#define MB__WORD_REC(w) MB_POOL_WORD_REC(w)
#define MB__WORD_LOW(w) MB_POOL_WORD_LOW(w)
/* Crash points (pool.h, mb__pool_crash_hook): the numbers the tests kill a thread at. */
void (*mb__pool_crash_hook)(int point);
#define MB__CRASH(n)                                                                               \
  do {                                                                                             \
    if (mb__pool_crash_hook != NULL)                                                               \
      mb__pool_crash_hook(n);                                                                      \
  } while (0)
#define MB__NO_WORD UINT64_MAX  /* `next` before a CAS is tried: never a head (low > capacity) */
#define MB__NO_BLOCK UINT64_MAX /* `first` before an op has a block: never one (>= capacity) */

int mb__pool_layout(mb_pool_desc_t *d, uint32_t object_size, uint32_t align, uint32_t capacity,
                    size_t page_size) {
  uint64_t stride, blocks;
  if (object_size == 0 || capacity == 0 || capacity > MB_POOL_CAPACITY_MAX || align == 0 ||
      (align & (align - 1)) != 0 || align > page_size)
    return mb__errorf(MB_EINVAL, 0, "pool '%s': object size %u, alignment %u, capacity %u", d->name,
                      (unsigned)object_size, (unsigned)align, (unsigned)capacity);
  stride = mb__round_up(object_size, align);
  if (stride > UINT32_MAX)
    return mb__errorf(MB_ERANGE, 0, "pool '%s': objects of %u bytes are too large", d->name,
                      (unsigned)object_size);
  d->object_size = object_size;
  d->stride = (uint32_t)stride;
  d->align = align;
  d->capacity = capacity;
  d->mags_offset = (uint64_t)MB_POOL_INTENTS * sizeof(mb_pool_intent_t); /* intents at 0 */
  d->links_offset = d->mags_offset + (uint64_t)MB_POOL_INTENTS * sizeof(mb_pool_mag_t);
  d->stamps_offset = d->links_offset + (uint64_t)capacity * sizeof(mb_au64);
  d->blocks_offset =
      mb__round_up(d->stamps_offset + (uint64_t)capacity * sizeof(mb_au32), page_size);
  blocks = stride * capacity;
  d->section_size = mb__round_up(d->blocks_offset + blocks, page_size);
  return 0;
}

void mb__pool_bind(mb_pool_map_t *p) {
  p->intents = (mb_pool_intent_t *)p->base;
  p->mags = (mb_pool_mag_t *)(p->base + p->desc->mags_offset);
  p->rec = UINT32_MAX;
  p->links = (mb_au64 *)(p->base + p->desc->links_offset);
  p->stamps = (mb_au32 *)(p->base + p->desc->stamps_offset);
  p->blocks = p->base + p->desc->blocks_offset;
  p->stride = p->desc->stride;
  p->capacity = p->desc->capacity;
  p->flags = p->desc->flags;
  p->span = (uint64_t)p->stride * p->capacity;
  for (p->shift = 0; p->shift < 32 && (1u << p->shift) != p->stride; p->shift++) {
  }
  if (p->shift == 32)
    p->shift = -1;
}

/* ---- intent records ------------------------------------------------------------------------- */

static uint32_t mb__mag_empty(mb_pool_map_t *p, uint32_t rec);

int mb__pool_intent_claim(mb_pool_map_t *p, uint64_t holder, uint32_t *rec) {
  uint32_t i;
  for (i = 1; i < MB_POOL_INTENTS; i++) {
    uint64_t h = 0;
    if (mb_load64_relaxed(&p->intents[i].holder) == 0 &&
        mb_cas64(&p->intents[i].holder, &h, holder)) {
      mb_store64(&p->intents[i].op, MB__OP(MB__OP_SEQ(mb_load64(&p->intents[i].op)), 0, 0));
      mb__mag_empty(p, i); /* a forged count: nothing of this holder's is listed there */
      mb_max64(&p->desc->intents_used, i + 1);
      *rec = i;
      return 0;
    }
  }
  return mb__errorf(MB_EFULL, 0, "pool '%s': all %u intent records are held (threads at once)",
                    p->desc->name, (unsigned)MB_POOL_INTENTS);
}

void mb__pool_intent_claim_broker(mb_pool_map_t *p, uint32_t pid) {
  mb_store64(&p->intents[0].holder, MB_POOL_HOLDER(MB_STAMP_BROKER, 0, pid));
  mb_max64(&p->desc->intents_used, 1);
  p->rec = 0;
}

void mb__pool_intent_release(mb_pool_map_t *p, uint32_t rec, uint64_t holder) {
  if (rec < MB_POOL_INTENTS && holder != 0)
    mb_cas64(&p->intents[rec].holder, &holder, 0);
}

/* Records in use so far, from the descriptor, bounded (a forged figure is cut to the array). */
static uint32_t mb__intents_used(const mb_pool_map_t *p) {
  uint64_t n = mb_load64(&p->desc->intents_used);
  return n < MB_POOL_INTENTS ? (uint32_t)n : MB_POOL_INTENTS;
}

/*
 * One read of the sums: given (*freed, then cut to *allocated), taken (*allocated), given
 * again, with the records in use read before and after. *low: a figure that was out at one
 * moment T, the end of the taken pass - taken minus the second given sum (0 if below): every
 * record's taken and given only grow (written as base + n, by the holder or the reaper), each
 * taken was read at or before T and each second given at or after it, so the figure is at
 * most taken(T) - given(T). Both given sums agree when nothing was given meanwhile; then it is
 * also the given-first figure. Returns 0 if a record was claimed meanwhile (the count of
 * records moved: its counts are not in, read again); a record is counted in intents_used
 * before its first op, so an unchanged count covers every record used up to the last read.
 */
static int mb__totals_once(const mb_pool_map_t *p, uint64_t *allocated, uint64_t *freed,
                           uint64_t *low) {
  uint32_t i, n = mb__intents_used(p);
  uint64_t a = 0, f = 0, f2 = 0;
  for (i = 0; i < n; i++)
    f += mb_load64(&p->intents[i].given);
  for (i = 0; i < n; i++)
    a += mb_load64(&p->intents[i].taken);
  for (i = 0; i < n; i++)
    f2 += mb_load64(&p->intents[i].given);
  *allocated = a;
  *freed = f < a ? f : a;
  *low = f2 < a ? a - f2 : 0;
  return mb__intents_used(p) == n;
}

#define MB__PEAK_EVERY 256 /* blocks a record pops between two raises of the peak (a take) */
#define MB__TOTALS_TRIES 4 /* threads starting all the time: the peak waits for a calmer read */

/* The sums (as above); 1 if *low is a figure that was out, 0 if no read held still. */
static int mb__totals(const mb_pool_map_t *p, uint64_t *allocated, uint64_t *freed, uint64_t *low) {
  int k;
  for (k = 0; k < MB__TOTALS_TRIES; k++)
    if (mb__totals_once(p, allocated, freed, low))
      return 1;
  return 0;
}

void mb__pool_totals(const mb_pool_map_t *p, uint64_t *allocated, uint64_t *freed) {
  uint64_t low;
  (void)mb__totals(p, allocated, freed, &low);
}

uint64_t mb__pool_in_use(const mb_pool_map_t *p) {
  uint64_t a, f;
  mb__pool_totals(p, &a, &f);
  return a - f;
}

/* Raise the peak to a figure that was out at one moment (at most the capacity: a forged record
 * cannot lift it); from a read that did not hold still, not at all. */
static void mb__peak_from(mb_pool_map_t *p, int valid, uint64_t low) {
  uint64_t cap = p->capacity;
  if (valid)
    mb_max64(&p->desc->peak, low < cap ? low : cap);
}

static void mb__pool_peak(mb_pool_map_t *p) {
  uint64_t a, f, low;
  int valid = mb__totals(p, &a, &f, &low);
  mb__peak_from(p, valid, low);
}

void mb__pool_publish(mb_pool_map_t *p) {
  uint64_t a, f, low;
  int valid = mb__totals(p, &a, &f, &low);
  mb_store64(&p->desc->allocated, a);
  mb_store64(&p->desc->freed, f);
  mb__peak_from(p, valid, low);
}

/* Start an op of `kind` (| MB__OP_NC) on record r: a new seq, PENDING. Returns the seq. */
static uint32_t mb__op_begin(mb_pool_intent_t *r, uint32_t kind, uint64_t base) {
  uint32_t q = MB__OP_SEQ(mb_load64_relaxed(&r->op)) + 1;
  mb_store64(&r->base, base);
  mb_store64(&r->next, MB__NO_WORD);   /* not the last op's: that one may still be in head */
  mb_store64(&r->first, MB__NO_BLOCK); /* not the last op's block */
  mb_store64(&r->op, MB__OP(q, MB__OP_PENDING, kind));
  return q;
}

/* The op's new state (its MB__OP_NC bit kept). */
static void mb__op_set(mb_pool_intent_t *r, uint32_t q, uint32_t state, uint32_t kind) {
  uint32_t nc = MB__OP_BITS(mb_load64_relaxed(&r->op)) & MB__OP_NC;
  mb_store64(&r->op, MB__OP(q, state, kind | nc));
}

#define MB__ACK_TRIES 4 /* an honest op moves at most twice while w is up (see mb__ack) */

/*
 * `w` was just read from *word (head, bump, or the magazine of record `mag`): if its writer
 * record's op is still PENDING, of a kind that CASes that word (a pop or push: head; a bump
 * take: bump; a steal from magazine `mag`: that magazine's word), and its `next` is w (the
 * word that op's CAS installs), mark the op LANDED (its CAS happened) before anyone replaces
 * w. *word is read again after the op and next, so they are the ones of the op that wrote w.
 * The writer field is 10 bits: always a record of the array. Bounded: a CAS on the op fails
 * only when the op moved (its holder set it LANDED or started the next op, or another acker
 * won), after which the loop's test ends it - unless a hostile process keeps flipping the op,
 * and then its record is the one left unacknowledged.
 */
static void mb__ack(mb_pool_map_t *p, uint64_t w, const mb_au64 *word, uint32_t kind,
                    uint32_t mag) {
  mb_pool_intent_t *r = &p->intents[MB__WORD_REC(w)];
  uint64_t op = mb_load64(&r->op);
  int k;
  for (k = 0; k < MB__ACK_TRIES; k++) {
    uint32_t ok = MB__OP_KIND(op);
    if (MB__OP_STATE(op) != MB__OP_PENDING ||
        (kind == MB__OP_POP ? ok != MB__OP_POP && ok != MB__OP_PUSH : ok != kind) ||
        (kind == MB__OP_STEAL && mb_load64(&r->count) != mag) || mb_load64(&r->next) != w ||
        mb_load64(word) != w)
      return;
    if (mb_cas64(&r->op, &op, MB__OP(MB__OP_SEQ(op), MB__OP_LANDED, MB__OP_BITS(op))))
      return;
  }
}

/* The next word for head or bump after w: tag + 1 (mod 2^29: the shift drops the carry), the
 * writer record, low. */
static uint64_t mb__next_word(uint64_t w, uint32_t rec, uint32_t low) {
  return ((MB_POOL_WORD_TAG(w) + 1) << MB_POOL_TAG_SHIFT) | ((uint64_t)rec << MB_POOL_LOW_BITS) |
         low;
}

/* Did the CAS of record rec's op (read as `op`) happen? (See the top of the file.) */
static int mb__landed(mb_pool_map_t *p, uint32_t rec, uint64_t op) {
  const mb_au64 *word = MB__OP_KIND(op) == MB__OP_BUMP ? &p->desc->bump : &p->desc->head;
  uint64_t w;
  if (MB__OP_KIND(op) == MB__OP_STEAL) { /* count: the magazine it steals from (bounded) */
    uint64_t victim = mb_load64(&p->intents[rec].count);
    word = &p->mags[victim < MB_POOL_INTENTS ? victim : 0].word;
  }
  if (MB__OP_STATE(op) == MB__OP_LANDED)
    return 1;
  if (MB__OP_STATE(op) != MB__OP_PENDING)
    return 0;
  w = mb_load64(word);
  if (w == mb_load64(&p->intents[rec].next) && MB__WORD_REC(w) == rec)
    return 1; /* its word is still there (exact: tag, writer and block) */
  return MB__OP_STATE(mb_load64(&p->intents[rec].op)) == MB__OP_LANDED;
}

/* ---- the free stack ------------------------------------------------------------------------- */

/* The blocks of the chain starting at `first` (detached: ours) into out[]; how many. Bounded
 * by MB_POOL_CHAIN and the capacity: a bad link ends the chain. */
static uint32_t mb__walk_chain(const mb_pool_map_t *p, uint32_t first, uint32_t *out) {
  uint32_t n = 0, i = first, cap = p->capacity;
  if (first >= cap)
    return 0;
  for (;;) {
    uint32_t low = (uint32_t)mb_load64(&p->links[i]);
    out[n++] = i;
    if (low == 0 || low > cap || n == MB_POOL_CHAIN)
      return n;
    i = low - 1;
  }
}

/* Link idx[0..n) into a chain and push it on the free stack through record rec. */
static void mb__push_chain(mb_pool_map_t *p, uint32_t rec, const uint32_t *idx, uint32_t n) {
  mb_pool_desc_t *d = p->desc;
  mb_pool_intent_t *r = &p->intents[rec];
  uint64_t h;
  uint32_t k, first = idx[0];
  for (k = 0; k + 1 < n; k++)
    mb_store64(&p->links[idx[k]], (uint64_t)idx[k + 1] + 1);
  if (n > 1)
    mb_store64(&p->links[idx[n - 1]], 0);
  mb_store64(&r->first, first);
  mb_store64(&r->count, n);
  h = mb_load64(&d->head);
  for (;;) {
    uint64_t low = n > 1 ? (uint64_t)idx[1] + 1 : 0;
    mb__ack(p, h, &d->head, MB__OP_POP, 0);
    uint64_t nw = mb__next_word(h, rec, first + 1);
    mb_store64(&p->links[first], ((uint64_t)MB__WORD_LOW(h) << 32) | low);
    mb_store64(&r->next, nw);
    MB__CRASH(13);
    if (mb_cas64(&d->head, &h, nw))
      return;
  }
}

/* Pop the top chain into out[] (at most MB_POOL_CHAIN) through record rec, op q (PENDING):
 * its length, or 0 if the stack is empty. */
static uint32_t mb__pop_chain(mb_pool_map_t *p, uint32_t rec, uint32_t q, uint32_t *out) {
  mb_pool_desc_t *d = p->desc;
  mb_pool_intent_t *r = &p->intents[rec];
  uint64_t h = mb_load64(&d->head), nw;
  uint32_t first1, next;
  for (;;) {
    first1 = MB__WORD_LOW(h);
    if (first1 == 0 || first1 > p->capacity)
      return 0;
    mb__ack(p, h, &d->head, MB__OP_POP, 0);
    next = (uint32_t)(mb_load64(&p->links[first1 - 1]) >> 32);
    if (next > p->capacity)
      next = 0; /* a bad link: the rest of the stack is cut off rather than followed */
    mb_store64(&r->first, first1 - 1);
    nw = mb__next_word(h, rec, next);
    mb_store64(&r->next, nw);
    MB__CRASH(2);
    if (mb_cas64(&d->head, &h, nw))
      break;
  }
  MB__CRASH(3);
  mb__op_set(r, q, MB__OP_LANDED, MB__OP_POP);
  MB__CRASH(4);
  return mb__walk_chain(p, first1 - 1, out);
}

/* Advance bump by up to want blocks through record rec, op q: the first into *first, how many
 * (0: none left). */
static uint32_t mb__bump(mb_pool_map_t *p, uint32_t rec, uint32_t q, uint32_t want,
                         uint32_t *first) {
  mb_pool_desc_t *d = p->desc;
  mb_pool_intent_t *r = &p->intents[rec];
  uint64_t b = mb_load64(&d->bump);
  uint32_t n;
  for (;;) {
    uint32_t v = MB__WORD_LOW(b);
    if (v >= p->capacity)
      return 0;
    n = p->capacity - v < want ? p->capacity - v : want;
    mb__ack(p, b, &d->bump, MB__OP_BUMP, 0);
    uint64_t nw = mb__next_word(b, rec, v + n);
    mb_store64(&r->first, v);
    mb_store64(&r->count, n);
    mb_store64(&r->next, nw);
    MB__CRASH(8);
    if (mb_cas64(&d->bump, &b, nw)) {
      *first = v;
      break;
    }
  }
  MB__CRASH(9);
  mb__op_set(r, q, MB__OP_LANDED, MB__OP_BUMP);
  return n;
}

/* ---- magazines ------------------------------------------------------------------------------ */

/* CASes on a magazine word before a call goes around it. Each failure is someone's progress:
 * on the caller's own magazine a thief's take (a magazine its owner is not filling only
 * shrinks: at most 62 of those), so only a process that rewrites the word forever gets this
 * far; a thief loses to the owner's pops and pushes too, and gives up on a magazine after
 * MB__STEAL_TRIES in a row (the take then fails MB_EFULL if no other magazine has a block:
 * an owner must win that many races in a row; the cost is bounded by records x tries). */
#define MB__MAG_TRIES 4096
#define MB__STEAL_TRIES 256
#define MB__MAG_REFILLS 4 /* chains one uncached alloc takes in, thieves emptying each */
#define MB__MAG_STAMP(rec, owner)                                                                  \
  (MB_STAMP_CACHED | MB_STAMP_MAG | ((uint32_t)(rec) << 16) | MB_STAMP_OWNER(owner))

static int mb__take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t want, uint32_t *out,
                    uint32_t *got, uint32_t nc);
static int mb__give(mb_pool_map_t *p, uint32_t rec, const uint32_t *idx, uint32_t n,
                    uint32_t expect, uint32_t *given, uint32_t nc);

/* Replace word *w (just read) of record rec's magazine by one of count c, writer rec, acking
 * a steal that wrote *w first. 1 if it did (*w: the new word); else *w is the word now there. */
static int mb__mag_set(mb_pool_map_t *p, uint32_t rec, uint64_t *w, uint32_t c) {
  mb_pool_mag_t *m = &p->mags[rec];
  uint64_t nw = mb__next_word(*w, rec, c);
  if (MB__WORD_REC(*w) != rec)
    mb__ack(p, *w, &m->word, MB__OP_STEAL, rec);
  if (!mb_cas64(&m->word, w, nw))
    return 0;
  *w = nw;
  return 1;
}

/* Set record rec's magazine empty. The blocks it listed keep their stamps: whoever reaps rec's
 * client gives them back (a record's magazine is emptied by its holder, or its reaper). */
static uint32_t mb__mag_empty(mb_pool_map_t *p, uint32_t rec) {
  uint64_t w = mb_load64(&p->mags[rec].word), old;
  int k;
  for (k = 0; k < MB__MAG_TRIES && MB__WORD_LOW(w) != 0; k++) {
    old = w;
    if (mb__mag_set(p, rec, &w, 0))
      return MB__WORD_LOW(old) <= MB_POOL_MAG ? MB__WORD_LOW(old) : 0;
  }
  return 0;
}

/* Take the top n (1..MB_POOL_CHAIN, at most the count) blocks out of record rec's magazine,
 * whose word *w was just read, and give them back to the free stack, uncounted (they are
 * free). A forged count is dropped instead (the magazine emptied). *w: the word now there. */
static void mb__mag_unlist(mb_pool_map_t *p, uint32_t rec, uint64_t *w, uint32_t n, uint32_t mine) {
  uint32_t c = MB__WORD_LOW(*w), chain[MB_POOL_CHAIN], k;
  if (c > MB_POOL_MAG) {
    (void)mb__mag_set(p, rec, w, 0);
    return;
  }
  for (k = 0; k < n; k++)
    chain[k] = mb_load32(&p->mags[rec].slot[c - n + k]);
  MB__CRASH(40);
  if (mb__mag_set(p, rec, w, c - n)) {
    MB__CRASH(41);
    mb__give(p, rec, chain, n, mine, NULL, MB__OP_NC);
  }
}

/* Raise the peak after a record's taken went from base to base + 1 (as mb__take does: every
 * MB__PEAK_EVERY blocks), or now (`now`: a magazine just ran empty, a block was stolen: a
 * pool being filled up), while bump is above it. */
static void mb__peak_step(mb_pool_map_t *p, uint64_t base, int now) {
  if ((now || (base + 1) % MB__PEAK_EVERY == 0) &&
      MB__WORD_LOW(mb_load64(&p->desc->bump)) > mb_load64(&p->desc->peak))
    mb__pool_peak(p);
}

/*
 * Take the top block of another record's magazine, through record rec (S0..S4 at the top of
 * the file), stamped `stamp`: the pool has no other free block. Counted as taken unless
 * `stamp` is rec's own magazine stamp (a refill: the block stays free). 1 if *out is set.
 * Tries each record in use (a magazine whose top moved is read again, a few times).
 */
static int mb__steal(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t *out,
                     uint32_t *busy) {
  mb_pool_intent_t *r = &p->intents[rec];
  uint32_t n = mb__intents_used(p), v;
  int counted = !(stamp & MB_STAMP_MAG);
  *busy = 0;
  for (v = 0; v < n; v++) {
    mb_pool_mag_t *m = &p->mags[v];
    int k;
    if (v == rec)
      continue;
    for (k = 0; k < MB__STEAL_TRIES; k++) {
      uint64_t w = mb_load64(&m->word), nw, base = mb_load64_relaxed(&r->taken);
      uint32_t c = MB__WORD_LOW(w), i, s, q;
      int ok;
      if (c == 0 || c > MB_POOL_MAG)
        break;
      i = mb_load32(&m->slot[c - 1]);
      s = i < p->capacity ? mb_load32(&p->stamps[i]) : 0;
      if ((s & ~0xFFFFu) != MB__MAG_STAMP(v, 0) || MB_STAMP_OWNER(s) == 0 ||
          MB_STAMP_OWNER(s) >= MB_STAMP_BROKER) {
        if (mb_load64(&m->word) != w)
          continue; /* the top moved while it was read */
        break;      /* a top that is no block of this magazine (forged): the next magazine */
      }
      q = mb__op_begin(r, MB__OP_STEAL, base); /* S0 */
      mb_store64(&r->count, v);
      mb_store64(&r->first, i);
      mb__ack(p, w, &m->word, MB__OP_STEAL, v);
      nw = mb__next_word(w, rec, c - 1);
      mb_store64(&r->next, nw);
      MB__CRASH(20);
      if (!mb_cas64(&m->word, &w, nw)) { /* S1 */
        mb__op_set(r, q, MB__OP_IDLE, MB__OP_STEAL);
        continue;
      }
      MB__CRASH(21);
      mb__op_set(r, q, MB__OP_LANDED, MB__OP_STEAL); /* S2 */
      MB__CRASH(22);
      ok = mb_cas32(&p->stamps[i], &s, stamp); /* S3: from the stamp it was listed with */
      MB__CRASH(23);
      if (ok && counted) {
        mb_store64(&r->taken, base + 1); /* S4 */
        MB__CRASH(24);
      }
      mb__op_set(r, q, MB__OP_IDLE, MB__OP_STEAL);
      if (ok) {
        if (counted)
          mb__peak_step(p, base, 1);
        *out = i;
        return 1;
      }
    }
    if (k == MB__STEAL_TRIES)
      ++*busy; /* its owner won every race */
  }
  return 0;
}

int mb__pool_mag_take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t *out) {
  mb_pool_intent_t *r = &p->intents[rec];
  mb_pool_mag_t *m = &p->mags[rec];
  uint32_t mine = MB__MAG_STAMP(rec, stamp), chain[MB_POOL_CHAIN], got = 0, k;
  int t, rc, refills = 0;
  for (t = 0; t < MB__MAG_TRIES; t++) {
    uint64_t w = mb_load64(&m->word), base;
    uint32_t c = MB__WORD_LOW(w), i, s, q;
    if (c == 0 || c > MB_POOL_MAG) {
      if (refills++ == MB__MAG_REFILLS)
        break; /* thieves took every chain it brought in: one block straight from the pool */
      /* R: empty (or a forged count, dropped): a chain from the pool, still free (uncounted) */
      mb__mag_empty(p, rec);
      if ((rc = mb__take(p, rec, mine, MB_POOL_CHAIN, chain, &got, MB__OP_NC)) != 0)
        return rc;
      MB__CRASH(36);
      for (k = 0; k < got; k++)
        mb_store32(&m->slot[k], chain[k]);
      w = mb_load64(&m->word);
      if (MB__WORD_LOW(w) != 0 || !mb__mag_set(p, rec, &w, got)) {
        /* the word moved (forged, or this client was reaped): the chain straight back */
        mb__give(p, rec, chain, got, mine, NULL, MB__OP_NC);
        break;
      }
      continue;
    }
    base = mb_load64_relaxed(&r->taken);
    q = mb__op_begin(r, MB__OP_MPOP, base); /* M0 */
    i = mb_load32(&m->slot[c - 1]);
    MB__CRASH(30);
    if (!mb__mag_set(p, rec, &w, c - 1)) { /* M1: a steal took the top meanwhile */
      mb__op_set(r, q, MB__OP_IDLE, MB__OP_MPOP);
      continue;
    }
    MB__CRASH(31);
    mb_store64(&r->first, i); /* M2 */
    MB__CRASH(32);
    s = mine;
    if (i < p->capacity && mb_cas32(&p->stamps[i], &s, stamp)) { /* M3 */
      MB__CRASH(33);
      mb_store64(&r->taken, base + 1); /* M4 */
      MB__CRASH(34);
      mb__op_set(r, q, MB__OP_IDLE, MB__OP_MPOP);
      mb__peak_step(p, base, c == 1);
      *out = i;
      return 0;
    }
    /* Not ours: a block a reaper gave back (it judged this client dead), or a forged slot. */
    mb__op_set(r, q, MB__OP_IDLE, MB__OP_MPOP);
  }
  /* A magazine that keeps moving or lies: one block straight from the pool. */
  return mb__take(p, rec, stamp, 1, out, &got, 0);
}

int mb__pool_mag_give(mb_pool_map_t *p, uint32_t rec, uint32_t owner, uint32_t i) {
  mb_pool_intent_t *r = &p->intents[rec];
  mb_pool_mag_t *m = &p->mags[rec];
  uint32_t mine = MB__MAG_STAMP(rec, owner), s, q;
  uint64_t w = mb_load64(&m->word), base;
  int t;
  s = mb_load32(&p->stamps[i]);
  if (!(s & MB_STAMP_IN_USE) || MB_STAMP_OWNER(s) == 0xFFFFu) {
    mb_add64(&p->desc->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%s': block %u is not in use (double free?)",
                      p->desc->name, (unsigned)i);
  }
  /* F: a full magazine (or a forged count) first gives its top chain back, still free. */
  for (t = 0; t < MB__MAG_TRIES && MB__WORD_LOW(w) >= MB_POOL_MAG; t++)
    mb__mag_unlist(p, rec, &w, MB_POOL_CHAIN, mine);
  base = mb_load64_relaxed(&r->given);
  q = mb__op_begin(r, MB__OP_MPUSH, base); /* P0 */
  mb_store64(&r->first, i);
  MB__CRASH(42);
  if (!mb_cas32(&p->stamps[i], &s, mine)) { /* P1: only one of two frees moves the stamp */
    mb__op_set(r, q, MB__OP_IDLE, MB__OP_MPUSH);
    mb_add64(&p->desc->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%s': block %u is not in use (double free?)",
                      p->desc->name, (unsigned)i);
  }
  MB__CRASH(43);
  mb_store64(&r->given, base + 1); /* P2 */
  MB__CRASH(44);
  mb__op_set(r, q, MB__OP_IDLE, MB__OP_MPUSH);
  for (t = 0; t < MB__MAG_TRIES; t++) { /* P3: listed */
    uint32_t c;
    w = mb_load64(&m->word);
    if ((c = MB__WORD_LOW(w)) >= MB_POOL_MAG)
      break;
    mb_store32(&m->slot[c], i);
    MB__CRASH(45);
    if (mb__mag_set(p, rec, &w, c + 1))
      return 0;
  }
  mb__give(p, rec, &i, 1, mine, NULL, MB__OP_NC); /* a magazine that keeps moving: to the stack */
  return 0;
}

void mb__pool_mag_flush(mb_pool_map_t *p, uint32_t rec, uint32_t owner) {
  uint64_t w = mb_load64(&p->mags[rec].word);
  int t;
  for (t = 0; t < 2 * MB__MAG_TRIES && MB__WORD_LOW(w) != 0; t++)
    mb__mag_unlist(p, rec, &w, MB__WORD_LOW(w) < MB_POOL_CHAIN ? MB__WORD_LOW(w) : MB_POOL_CHAIN,
                   MB__MAG_STAMP(rec, owner));
}

/* 1 if block i holds nothing but poison (or, never used, nothing but zero). */
static int mb__poison_intact(const mb_pool_map_t *p, uint32_t i) {
  const unsigned char *b = mb__pool_block(p, i);
  uint32_t k, stride = p->stride;
  for (k = 0; k < stride; k++)
    if (b[k] != MB_POOL_POISON)
      return 0;
  return 1;
}

int mb__pool_take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t want, uint32_t *out,
                  uint32_t *got) {
  return mb__take(p, rec, stamp, want, out, got, 0);
}

/* mb__pool_take; with nc (MB__OP_NC), into a magazine: taken does not move. */
static int mb__take(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t want, uint32_t *out,
                    uint32_t *got, uint32_t nc) {
  mb_pool_desc_t *d = p->desc;
  mb_pool_intent_t *r = &p->intents[rec];
  uint32_t n, k, chain[MB_POOL_CHAIN], bad = UINT32_MAX, q, kind = MB__OP_POP, first = 0;
  uint32_t rest = nc ? stamp : MB_STAMP_CACHED | MB_STAMP_OWNER(stamp);
  uint64_t base = mb_load64_relaxed(&r->taken);
  if (want == 0 || want > MB_POOL_CHAIN)
    want = want == 0 ? 1 : MB_POOL_CHAIN;
  q = mb__op_begin(r, MB__OP_POP | nc, base);
  MB__CRASH(1);
  n = mb__pop_chain(p, rec, q, chain);
  if (n == 0) {
    kind = MB__OP_BUMP;
    mb_store64(&r->next, MB__NO_WORD);
    mb__op_set(r, q, MB__OP_PENDING, MB__OP_BUMP); /* the pop did not land: no CAS names q */
    if ((n = mb__bump(p, rec, q, want, &first)) == 0) {
      mb__op_set(r, q, MB__OP_IDLE, MB__OP_BUMP);
      uint32_t busy;
      if (mb__steal(p, rec, stamp, &first, &busy)) { /* a block another record's magazine holds */
        out[0] = first;
        *got = 1;
        return 0;
      }
      mb_add64(&d->misses, 1);
      if (busy > 0)
        return mb__errorf(MB_EFULL, 0,
                          "pool '%s': no free object to take: the free ones are in %u "
                          "magazines whose threads won %u races in a row for each",
                          d->name, (unsigned)busy, (unsigned)MB__STEAL_TRIES);
      return mb__errorf(MB_EFULL, 0, "pool '%s': all %u objects are in use", d->name,
                        (unsigned)p->capacity);
    }
    for (k = 0; k < n; k++)
      chain[k] = first + k;
  }
  if (kind == MB__OP_POP && (p->flags & MB_POOL_F_DEBUG))
    for (k = 0; k < n && k < want && bad == UINT32_MAX; k++)
      if (!mb__poison_intact(p, chain[k]))
        bad = k;
  /* T3: every block gets an owner (the rest of a long chain: this client's cache stamp, to be
   * given back below); T4: counted. */
  for (k = 0; k < n; k++) {
    MB__CRASH(5);
    mb_store32(&p->stamps[chain[k]], k < want ? stamp : rest);
  }
  if (bad != UINT32_MAX)
    mb_store32(&p->stamps[chain[bad]], MB_STAMP_IN_USE | 0xFFFFu); /* set aside for good */
  MB__CRASH(6);
  if (!nc)
    mb_store64(&r->taken, base + n);
  MB__CRASH(7);
  mb__op_set(r, q, MB__OP_IDLE, kind);
  /* The peak: no figure above bump was ever out, so only while bump is above it; then after
   * every take from bump, and after a pop only each time this record's taken crosses a
   * multiple of MB__PEAK_EVERY (a full read is 3 x intents_used cache lines). The broker's
   * publish (every tick, every reap) raises it from an exact read too. */
  if (MB__WORD_LOW(mb_load64(&d->bump)) > mb_load64(&d->peak) &&
      (kind == MB__OP_BUMP || base / MB__PEAK_EVERY != (base + n) / MB__PEAK_EVERY))
    mb__pool_peak(p);
  if (n > want) /* T5 */
    mb__give(p, rec, chain + want, n - want, rest, NULL, nc);
  if (n > want)
    n = want;
  if (bad != UINT32_MAX) {
    /* Written after its free: it stays out (counted, never handed out); the others back. */
    uint32_t victim = chain[bad];
    mb_add64(&d->errors, 1);
    chain[bad] = chain[n - 1];
    if (n > 1)
      mb__pool_give(p, rec, chain, n - 1, stamp, NULL);
    return mb__errorf(MB_EIO, 0,
                      "pool '%s': block %u was written after it was freed (use after free); "
                      "it is set aside",
                      d->name, (unsigned)victim);
  }
  if ((stamp & (MB_STAMP_CACHED | MB_STAMP_MAG)) == MB_STAMP_CACHED) /* a thread cache's refill */
    mb_add64(&d->refills, 1);
  memcpy(out, chain, n * sizeof *out);
  *got = n;
  return 0;
}

int mb__pool_give(mb_pool_map_t *p, uint32_t rec, const uint32_t *idx, uint32_t n, uint32_t expect,
                  uint32_t *given) {
  return mb__give(p, rec, idx, n, expect, given, 0);
}

/* mb__pool_give; with nc (MB__OP_NC), out of a magazine: given does not move. */
static int mb__give(mb_pool_map_t *p, uint32_t rec, const uint32_t *idx, uint32_t n,
                    uint32_t expect, uint32_t *given, uint32_t nc) {
  mb_pool_desc_t *d = p->desc;
  mb_pool_intent_t *r = &p->intents[rec];
  uint32_t ok[MB_POOL_CHAIN], m = 0, k, bad = UINT32_MAX, q, giving;
  uint64_t base = mb_load64_relaxed(&r->given);
  if (n > MB_POOL_CHAIN)
    n = MB_POOL_CHAIN;
  giving = MB_STAMP_GIVING | (rec << 16) |
           MB_POOL_HOLDER_OWNER(mb_load64_relaxed(&p->intents[rec].holder));
  q = mb__op_begin(r, MB__OP_PUSH | nc, base); /* G0 */
  MB__CRASH(10);
  mb_store64(&r->count, 0);
  for (k = 0; k < n; k++) {
    uint32_t s, i = idx[k];
    int fits;
    if (i >= p->capacity) {
      if (bad == UINT32_MAX)
        bad = i;
      continue;
    }
    s = mb_load32(&p->stamps[i]);
    fits = MB_STAMP_OWNER(expect) != 0 ? s == expect : (s & expect) && MB_STAMP_OWNER(s) != 0xFFFFu;
    /* G1: claim the free: only one of two frees of a block can move its stamp. */
    MB__CRASH(11);
    if (!fits || !mb_cas32(&p->stamps[i], &s, giving)) {
      if (bad == UINT32_MAX)
        bad = i;
      continue;
    }
    ok[m++] = i;
  }
  if (m > 0) {
    if (p->flags & MB_POOL_F_DEBUG)
      for (k = 0; k < m; k++)
        memset(mb__pool_block(p, ok[k]), MB_POOL_POISON, p->stride);
    MB__CRASH(12);
    mb__push_chain(p, rec, ok, m); /* G2 */
    MB__CRASH(14);
    mb__op_set(r, q, MB__OP_LANDED, MB__OP_PUSH);
    MB__CRASH(15);
    for (k = 0; k < m; k++) { /* G3 */
      uint32_t s = giving;
      mb_cas32(&p->stamps[ok[k]], &s, MB_STAMP_FREE);
      MB__CRASH(16);
    }
    if (!nc)
      mb_store64(&r->given, base + m); /* G4 */
    MB__CRASH(17);
  }
  MB__CRASH(18);
  mb__op_set(r, q, MB__OP_IDLE, MB__OP_PUSH);
  if (given)
    *given = m;
  if (bad != UINT32_MAX && MB_STAMP_OWNER(expect) == 0) {
    mb_add64(&d->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%s': block %u is not in use (double free?)", d->name,
                      (unsigned)bad);
  }
  return 0; /* with an exact stamp, a block that changed hands is simply not ours to give */
}

int mb__pool_index(const mb_pool_map_t *p, const void *obj, uint32_t *idx) {
  const mb_pool_desc_t *d = p->desc;
  const unsigned char *o = obj;
  uint64_t off;
  if (o < p->blocks || o >= p->blocks + p->span)
    return mb__errorf(MB_EINVAL, 0, "pool '%s': %p is not a block of this pool", d->name, obj);
  off = (uint64_t)(o - p->blocks);
  if (p->shift >= 0 && (off & (p->stride - 1)) == 0) {
    *idx = (uint32_t)(off >> p->shift);
    return 0;
  }
  if (off % p->stride != 0)
    return mb__errorf(
        MB_EINVAL, 0, "pool '%s': %p points %llu bytes into block %llu, not at its start", d->name,
        obj, (unsigned long long)(off % p->stride), (unsigned long long)(off / p->stride));
  *idx = (uint32_t)(off / p->stride);
  return 0;
}

/* ---- the reaper ------------------------------------------------------------------------------ */

/*
 * Complete or roll back the op of dead record rec of client `owner`. A landed take has its
 * blocks still FREE stamped CACHED|owner (so they go back with the cached ones) and taken set
 * to base + n; a landed give has given set to base + count. Returns 1 if a push landed (its
 * GIVING blocks are in the stack), else 0 (GIVING blocks of rec are not: give them back).
 */
static int mb__intent_complete(mb_pool_map_t *p, uint32_t rec, uint32_t owner, uint8_t *nc_push) {
  mb_pool_intent_t *r = &p->intents[rec];
  uint64_t op = mb_load64(&r->op), base = mb_load64(&r->base);
  uint64_t first = mb_load64(&r->first), count = mb_load64(&r->count);
  uint32_t kind = MB__OP_KIND(op), q = MB__OP_SEQ(op), chain[MB_POOL_CHAIN], n = 0, k;
  uint32_t nc = MB__OP_BITS(op) & MB__OP_NC,
           s = first < p->capacity ? mb_load32(&p->stamps[first]) : 0;
  int landed = mb__landed(p, rec, op);
  *nc_push = 0;
  if (kind == MB__OP_STEAL || kind == MB__OP_MPOP || kind == MB__OP_MPUSH) {
    int pending = MB__OP_STATE(op) != MB__OP_IDLE;
    if (kind == MB__OP_STEAL && landed && count < MB_POOL_INTENTS &&
        (s & ~0xFFFFu) == MB__MAG_STAMP(count, 0)) {
      /* Out of the victim's magazine, not stamped yet (S3): a free block of this record's
       * magazine (given back by step 2, uncounted). */
      mb_cas32(&p->stamps[first], &s, MB__MAG_STAMP(rec, owner));
    } else if (pending && (kind == MB__OP_STEAL ? landed : kind == MB__OP_MPOP) &&
               (s == (MB_STAMP_IN_USE | owner) ||
                (kind == MB__OP_STEAL && s == (MB_STAMP_CACHED | owner)))) {
      /* Handed out (S3, M3): counted (S4, M4) */
      if (mb_load64(&r->taken) != base + 1)
        mb_store64(&r->taken, base + 1);
    } else if (pending && kind == MB__OP_MPUSH && s == MB__MAG_STAMP(rec, owner)) {
      /* Freed (P1): counted (P2) */
      if (mb_load64(&r->given) != base + 1)
        mb_store64(&r->given, base + 1);
    }
    mb__op_set(r, q, MB__OP_IDLE, kind);
    return 0;
  }
  if (landed && kind == MB__OP_POP) {
    n = mb__walk_chain(p, first < p->capacity ? (uint32_t)first : UINT32_MAX, chain);
  } else if (landed && kind == MB__OP_BUMP && first < p->capacity) {
    if (count > MB_POOL_CHAIN)
      count = MB_POOL_CHAIN;
    for (k = 0; k < count && first + k < p->capacity; k++)
      chain[n++] = (uint32_t)first + k;
  }
  /* A detached block the op did not stamp yet is FREE, or still GIVING: the push that put it
   * in the stack (another record's, maybe of a thread that died with this one) had not done
   * its G3. Either is stale on a block this record holds; that push's own G3 CAS, if it comes,
   * fails on CACHED. Bounded: the only other move is that G3 (GIVING -> FREE), once. A take
   * into a magazine (nc) stamps them as the magazine's: still free, uncounted. */
  for (k = 0; k < n; k++) {
    int t;
    for (t = 0; t < 3; t++) {
      uint32_t sk = mb_load32(&p->stamps[chain[k]]);
      if (sk != MB_STAMP_FREE && !(sk & MB_STAMP_GIVING))
        break;
      if (mb_cas32(&p->stamps[chain[k]], &sk,
                   nc ? MB__MAG_STAMP(rec, owner) : MB_STAMP_CACHED | owner))
        break;
    }
  }
  if (n > 0 && !nc && mb_load64(&r->taken) != base + n)
    mb_store64(&r->taken, base + n);
  if (landed && kind == MB__OP_PUSH && !nc && count <= MB_POOL_CHAIN &&
      mb_load64(&r->given) != base + count)
    mb_store64(&r->given, base + count);
  /* A landed push stays LANDED until release_owner has set its GIVING blocks FREE (step 2)
   * and lets the record go (step 3): a reaper killed in between and run again must still see
   * it landed, or it would push the chain a second time. A pop or bump is done once its blocks
   * are stamped CACHED: IDLE now, before step 2 gives them back (a rerun must not walk a
   * chain that is back in the stack). */
  mb__op_set(r, q, landed && kind == MB__OP_PUSH ? MB__OP_LANDED : MB__OP_IDLE, kind);
  *nc_push = kind == MB__OP_PUSH && nc;
  return landed && kind == MB__OP_PUSH;
}

/* A batch of blocks to give back with one stamp. */
typedef struct mb__batch_s {
  uint32_t stamp, n, nc, idx[MB_POOL_CHAIN]; /* nc: free blocks (a magazine's), uncounted */
} mb__batch_t;

static uint64_t mb__batch_add(mb_pool_map_t *p, mb__batch_t *b, uint32_t stamp, uint32_t i) {
  uint32_t given = 0;
  if (b->n > 0 && (b->stamp != stamp || b->n == MB_POOL_CHAIN)) {
    mb__give(p, p->rec, b->idx, b->n, b->stamp, &given, b->nc);
    if (b->nc)
      given = 0; /* free blocks (a magazine's): back to the stack, not taken back from anyone */
    b->n = 0;
  }
  if (i != UINT32_MAX) {
    b->stamp = stamp;
    b->idx[b->n++] = i;
  }
  return given;
}

/* 1 if key is in the sorted list (binary search). */
static int mb__stolen(const uint64_t *list, uint32_t n, uint64_t key) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (list[mid] == key)
      return 1;
    if (list[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

/*
 * The blocks are batched by the stamp they were seen with and given back only if they still
 * have it (a CAS from that exact value): a block freed and taken again by another client
 * between the scan and the give is left alone.
 */
uint64_t mb__pool_release_owner(mb_pool_map_t *p, uint32_t owner, int cached_only) {
  const mb_pool_desc_t *d = p->desc;
  uint8_t dead[MB_POOL_INTENTS], landed[MB_POOL_INTENTS], ncpush[MB_POOL_INTENTS];
  uint8_t listed[MB_POOL_INTENTS];
  uint64_t stolen[MB_POOL_INTENTS]; /* (block << 10) | victim record, sorted */
  uint32_t nstolen = 0, k;
  uint64_t holders[MB_POOL_INTENTS];
  mb__batch_t used, cached, giving, givingnc, mag;
  uint32_t i, cap = p->capacity, nrec = mb__intents_used(p), rec;
  uint64_t bump, total = 0, self;
  int any = 0;
  if (p->rec >= MB_POOL_INTENTS || owner == 0 || owner >= 0xFFFEu)
    return 0;
  self = mb_load64(&p->intents[p->rec].holder);
  memset(dead, 0, sizeof dead);
  memset(landed, 0, sizeof landed);
  memset(ncpush, 0, sizeof ncpush);
  used.n = cached.n = giving.n = givingnc.n = mag.n = 0;
  used.nc = cached.nc = giving.nc = 0;
  givingnc.nc = mag.nc = MB__OP_NC;
  /* 1: the dead attachments' records, completed or rolled back. */
  for (rec = 0; rec < nrec; rec++) {
    uint64_t h = mb_load64(&p->intents[rec].holder);
    holders[rec] = h;
    if (h == 0 || h == self || MB_POOL_HOLDER_OWNER(h) != owner)
      continue;
    dead[rec] = 1;
    any = 1;
    landed[rec] = (uint8_t)mb__intent_complete(p, rec, owner, &ncpush[rec]);
  }
  /* A take killed after T4 counted its blocks but never raised the peak. */
  if (any)
    mb__pool_peak(p);
  /* 1b: their magazines emptied (their blocks are found by their stamps below), noting how
   * many each listed. A live thief whose CAS took a block from a magazine before that has
   * landed (acked by the emptying if not by itself) and not stamped it yet: that block is the
   * thief's, left to it (and to its reaper, if it dies: mb__intent_complete). None can land
   * on a dead record's magazine after: the word moved. A record that only reads as such a
   * thief (forged) is believed only for a block its victim did not list: one listed when the
   * magazine was emptied (or, for a live victim, now) was not taken out of it. */
  for (rec = 0; rec < nrec; rec++)
    listed[rec] = dead[rec] ? (uint8_t)mb__mag_empty(p, rec) : 0;
  for (rec = 0; rec < nrec; rec++) {
    mb_pool_intent_t *r = &p->intents[rec];
    uint64_t op = mb_load64(&r->op), first = mb_load64(&r->first), v = mb_load64(&r->count);
    uint32_t c;
    if (dead[rec] || MB__OP_KIND(op) != MB__OP_STEAL || first >= cap || v >= nrec ||
        mb_load64(&r->op) != op || !mb__landed(p, rec, op))
      continue; /* (op read again: first and count are that op's) */
    c = dead[v] ? listed[v] : MB__WORD_LOW(mb_load64(&p->mags[v].word));
    for (k = 0; k < c && k < MB_POOL_MAG && mb_load32(&p->mags[v].slot[k]) != first; k++) {
    }
    if (k < c && k < MB_POOL_MAG)
      continue;
    /* kept sorted by block (an insertion: at most one per record) */
    for (k = nstolen++; k > 0 && stolen[k - 1] > ((first << 10) | v); k--)
      stolen[k] = stolen[k - 1];
    stolen[k] = (first << 10) | v;
  }
  /* 2: the blocks. */
  bump = MB__WORD_LOW(mb_load64(&d->bump));
  if (bump < cap)
    cap = (uint32_t)bump; /* blocks above bump were never handed out */
  for (i = 0; i < cap; i++) {
    uint32_t s = mb_load32(&p->stamps[i]);
    if (MB_STAMP_OWNER(s) != owner)
      continue;
    if (s == (MB_STAMP_CACHED | owner)) {
      total += mb__batch_add(p, &cached, s, i);
    } else if (s == (MB_STAMP_IN_USE | owner)) {
      if (!cached_only)
        total += mb__batch_add(p, &used, s, i);
    } else if ((s & ~(0x3FFu << 16)) == (MB_STAMP_CACHED | MB_STAMP_MAG | owner) &&
               (MB_STAMP_REC(s) >= nrec || dead[MB_STAMP_REC(s)] ||
                MB_POOL_HOLDER_OWNER(holders[MB_STAMP_REC(s)]) != owner)) {
      /* A magazine block of a dead record, or of one the client let go (at detach: its
       * magazine was emptied, or a forged word made it forget the block) - unless a live
       * thief has taken it (1b). */
      if (!mb__stolen(stolen, nstolen, ((uint64_t)i << 10) | MB_STAMP_REC(s)))
        total += mb__batch_add(p, &mag, s, i);
    } else if ((s & ~(0x3FFu << 16)) == (MB_STAMP_GIVING | owner) && any && dead[MB_STAMP_REC(s)]) {
      if (landed[MB_STAMP_REC(s)]) {
        uint32_t e = s;
        mb_cas32(&p->stamps[i], &e, MB_STAMP_FREE); /* in the stack already */
      } else {
        total += mb__batch_add(p, ncpush[MB_STAMP_REC(s)] ? &givingnc : &giving, s, i);
      }
    }
  }
  total += mb__batch_add(p, &cached, 0, UINT32_MAX);
  total += mb__batch_add(p, &used, 0, UINT32_MAX);
  total += mb__batch_add(p, &giving, 0, UINT32_MAX);
  total += mb__batch_add(p, &givingnc, 0, UINT32_MAX);
  total += mb__batch_add(p, &mag, 0, UINT32_MAX);
  /* 3: the dead records let go (a landed push goes IDLE only now, see mb__intent_complete). */
  for (rec = 0; rec < nrec; rec++)
    if (dead[rec]) {
      mb_pool_intent_t *r = &p->intents[rec];
      mb__op_set(r, MB__OP_SEQ(mb_load64(&r->op)), MB__OP_IDLE, 0);
      mb__pool_intent_release(p, rec, holders[rec]);
    }
  return total;
}
