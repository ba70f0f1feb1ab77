/*
 * regions.h - a named region's section as mapped by one process (mb_region_map_t), the
 * private copy of its geometry, and its accounting: the broker-wide commit charge, a region's
 * committed bytes and their peak, and compaction of a lazy slotted region. The slots and page
 * locks inside a slotted region are slots.h's.
 */
#ifndef MB_REGIONS_H
#define MB_REGIONS_H

#include "layout.h"
#include "os.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A region's section mapped into this process. */
typedef struct mb_region_map_s {
  mb_state_t *state;      /* the mapped control block (commit total and limit) */
  mb_region_desc_t *desc; /* in the mapped control block: statistics only */
  mb_os_section_t sec;
  unsigned char *base; /* view of the whole section */
  /* Private copies of the geometry (mb__region_bind): slots.c never reads these back from
   * the descriptor, which any process of the group can write. */
  uint64_t size, slot_count, table_offset, mapped;
  uint32_t slot_size, page_size, flags;
  uint32_t holder;    /* who locks pages: MB_PAGE_HOLDER_BROKER in the broker, 0 = the owner */
  uint32_t max_owner; /* owners above it are forged (the broker: clients.max) */
  /* Process-private, never in shared memory: one bit per data page that this view has
   * committed itself (bit p % 32 of word p / 32), so a claim on such a page makes no system
   * call (slots.c). Kept only where each view commits for itself and shared pages are never
   * decommitted (mb_os_mem_config(): view_commit && !shared_decommit, i.e. Windows), so a bit
   * can never go stale while the view exists; allocated with the view by the client
   * (gamestate.c), freed at unmap. NULL (the broker, other OSes, an allocation that failed):
   * every claim commits in its view as before. */
  mb_au32 *view_committed;
  char name[MB_REGION_NAME_MAX];
} mb_region_map_t;

/*
 * Take region r's geometry from descriptor d (which r->desc then points to) into r's private
 * fields, checking that it adds up and fits the `mapped` bytes of the view: MB_EVERSION, naming
 * what is wrong, if not (nothing is taken then). The broker calls it once on what it created;
 * a client on every region it maps.
 */
int mb__region_bind(mb_region_map_t *r, mb_region_desc_t *d, uint64_t mapped);

/*
 * Charge `bytes` against the broker-wide commit total (mb_state_t.game) before committing
 * them, raising its peak: 0, or MB_ENOSPC (no message: the caller says what it was
 * committing) if that would pass the commit limit - the charge is then taken back. Give
 * bytes back with mb_add64(&st->game.committed_total, 0 - bytes).
 */
int mb__commit_charge(mb_state_t *st, uint64_t bytes);

/* Add `delta` bytes to region d's committed count and keep its peak. */
void mb__region_account(mb_region_desc_t *d, int64_t delta);

/* Give back the charge of one page of region r (commit total and r's committed bytes). */
void mb__region_uncharge(mb_region_map_t *r);

/* The page words of a mapped slotted region (its geometry as bound by mb__region_bind). */
static inline mb_au32 *mb__region_map_pages(const mb_region_map_t *r) {
  return (mb_au32 *)(r->base + r->table_offset);
}

/*
 * Give back committed pages of a lazy slotted region that hold no used slot (a region
 * committed at start stays committed), after a deep mb__slots_repair (so page users and
 * slots_used are recounted from the owners). *freed receives the bytes decommitted. Where the OS
 * cannot decommit shared pages (mb_os_mem_config()-> shared_decommit == 0) nothing is freed and
 * MB_ENOTSUP is returned.
 */
int mb__region_compact(mb_region_map_t *r, uint64_t *freed);

#ifdef __cplusplus
}
#endif

#endif /* MB_REGIONS_H */
