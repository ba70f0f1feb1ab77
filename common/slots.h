/*
 * slots.h - player slots of a slotted region, claimed and released by any process without
 * a global lock, with pages committed on demand (and given back by compaction: regions.h).
 *
 * Per data page the slot table keeps one word (layout.h): the number of slots in use on it
 * and a COMMITTED bit; every change of a slot's owner happens while the slot's page(s) are
 * locked (BUSY, naming the holder), so a page's user count always equals the owned slots on
 * it, and a lock whose holder died is undone or finished by the broker or the holder's
 * successor (slots.c has the protocol and its crash points). Slots are claimed lowest-first,
 * so used slots gather at the start of the region and compaction finds whole free pages at
 * the end.
 */
#ifndef MB_SLOTS_H
#define MB_SLOTS_H

#include "layout.h"
#include "os.h"
#include "pool.h"
#include "regions.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What mb__slots_repair found and did in one region. */
typedef struct mb_slots_repair_s {
  uint64_t pages_unlocked;  /* busy pages of dead or forged holders, settled */
  uint64_t users_fixed;     /* page words whose user count or bits did not match the slots */
  uint64_t owners_forged;   /* slots whose owner was out of range, freed */
  uint64_t owners_orphaned; /* slots whose owner's entry is free, freed */
  uint64_t slots_used;      /* slots in use (owners) when it looked */
  uint64_t skipped;         /* deep: slots or pages left for another pass (a page was held) */
} mb_slots_repair_t;

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

/* Release every slot held by `owner`; *count (may be NULL) receives how many. 0 if none is
 * left, else the error of the first it could not release (MB_EBUSY: a page of it stayed locked
 * by another process; in the broker, at once), the others still released. */
int mb__slot_release_owner(mb_region_map_t *r, uint32_t owner, uint64_t *count);

/*
 * Settle every page left locked by `holder`, which the caller knows is gone and cannot lock
 * again meanwhile (the broker, holding the holder's entry CLAIMED; a client that took the entry
 * over, before it uses its slots): the lock is undone or finished as its CHARGED / COMMITTED
 * bits say and the page's users are counted from the slots' owners. Returns how many pages it
 * settled.
 */
uint64_t mb__slots_unlock_holder(mb_region_map_t *r, uint32_t holder);

/*
 * The broker's check of a slotted region (every tick, and at compact with `deep`): pages locked
 * by a holder that is out of range, or by a client whose entry is FREE or DEAD and whose
 * process the OS says is gone, are settled (the entry is held CLAIMED meanwhile, so no takeover
 * races it). With `deep`, every page is locked in turn and its user count recomputed from the
 * owners, slots whose owner is forged (above r->max_owner) or has a FREE entry are freed, and
 * slots_used is set to the owners counted. *out (may be NULL) receives what was found. In the
 * broker (r->holder == MB_PAGE_HOLDER_BROKER) it never waits: a page held by a live process is
 * skipped (counted in out->skipped; do a deep pass again later), and a page locked in the
 * broker's name is forged (the broker holds none between its operations) and settled.
 */
void mb__slots_repair(mb_region_map_t *r, int deep, mb_slots_repair_t *out);

/* The slot held for player_id (recorded as id + 1), lowest first: 1 with *index and *owner
 * (client index + 1, as read: the caller range-checks it) when its pages are settled
 * (COMMITTED, not BUSY: its bytes may be read), 2 likewise while a page of it is locked or not
 * marked committed, 0 if no owned slot records it. Reads only; what it reads is compared,
 * never followed (the `player` command). */
int mb__slot_find(const mb_region_map_t *r, uint64_t player_id, uint64_t *index, uint32_t *owner);

/* The slot's bytes. */
static inline void *mb__slot_ptr(const mb_region_map_t *r, uint64_t index) {
  return r->base + index * r->slot_size;
}

#ifdef __cplusplus
}
#endif

#endif /* MB_SLOTS_H */
