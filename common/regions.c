/*
 * regions.c - a region's geometry and accounting (see regions.h): binding a mapped region's
 * geometry from a checked descriptor into private fields, the broker-wide commit charge, a
 * region's committed bytes and peak, and compaction of a lazy slotted region.
 *
 * Crash points. The commit charge and a region's committed count are two atomic adds: a
 * process killed between a charge and its commit (or a commit and the CHARGED mark of its
 * page) leaves the totals one page high, never low (slots.c lists those windows with the page
 * protocol). Compaction (the broker) locks a committed page without users, decommits it and
 * stores 0; a broker killed there leaves BUSY|broker, which the next broker never sees (regions
 * are made afresh at start; a restored page is written by the restore).
 */
#include "regions.h"

#include <string.h>

#include "slots.h"

void mb__region_account(mb_region_desc_t *d, int64_t delta) {
  mb_max64(&d->peak_committed, mb_add64(&d->committed, (uint64_t)delta) + (uint64_t)delta);
}

int mb__commit_charge(mb_state_t *st, uint64_t bytes) {
  uint64_t limit = mb_load64(&st->game.commit_limit);
  uint64_t now = mb_add64(&st->game.committed_total, bytes) + bytes;
  if (limit != 0 && now > limit) {
    mb_add64(&st->game.committed_total, (uint64_t)0 - bytes);
    return MB_ENOSPC;
  }
  mb_max64(&st->game.committed_peak, now);
  return 0;
}

int mb__region_bind(mb_region_map_t *r, mb_region_desc_t *d, uint64_t mapped) {
  uint64_t size = d->size, count = d->slot_count, off = d->table_offset;
  uint32_t ss = d->slot_size, ps = d->page_size;
  char name[MB_REGION_NAME_MAX];
  const char *bad = NULL;
  memcpy(name, d->name, sizeof name);
  name[sizeof name - 1] = '\0';
  if (ps == 0 || (ps & (ps - 1)) != 0)
    bad = "its page size is not a power of two";
  else if (size == 0 || size % ps != 0 || size > mapped)
    bad = "its size is not a whole number of pages inside the section";
  else if (ss != 0 && (count != size / ss || count == 0 || off != size ||
                       off + mb__region_table_size(size, ps, count, 1) > mapped))
    bad = "its slot table does not fit the section";
  else if (ss != 0 && (uint64_t)ps / ss > MB_PAGE_USERS_MASK)
    bad = "its slots are too small for the page word";
  if (bad != NULL)
    return mb__errorf(MB_EVERSION, 0, "region '%s': the descriptor does not add up: %s", name, bad);
  r->desc = d;
  r->size = size;
  r->slot_count = ss ? count : 0;
  r->table_offset = ss ? off : 0;
  r->mapped = mapped;
  r->slot_size = ss;
  r->page_size = ps;
  r->flags = d->flags;
  if (r->max_owner == 0 || r->max_owner > MB_CLIENTS_MAX)
    r->max_owner = MB_CLIENTS_MAX;
  memcpy(r->name, name, sizeof name);
  return 0;
}

void mb__region_uncharge(mb_region_map_t *r) {
  mb_add64(&r->state->game.committed_total, (uint64_t)0 - r->page_size);
  mb__region_account(r->desc, -(int64_t)r->page_size);
}

/*
 * A page is freed only from the exact state "committed, no users, not busy", locked by CAS:
 * a process that wants the page meanwhile waits on the lock and then commits it afresh, so no
 * slot ever sits on a decommitted page.
 */
int mb__region_compact(mb_region_map_t *r, uint64_t *freed) {
  mb_au32 *pages;
  uint64_t p, npages, bytes = 0;
  int rc = 0;
  const uint32_t locked =
      MB_PAGE_COMMITTED | MB_PAGE_BUSY | (MB_PAGE_HOLDER_BROKER << MB_PAGE_HOLDER_SHIFT);

  *freed = 0;
  if (r->slot_size == 0)
    return 0;
  mb__slots_repair(r, 1, NULL); /* page users and slots_used from the owners first */
  /* A region committed at start stays committed: its commits are not real commits (no-ops
   * on a fully committed section), so a decommitted page could not be charged back. */
  if (!(r->flags & MB_REGION_LAZY))
    return 0;
  if (!mb_os_mem_config()->shared_decommit)
    return mb__errorf(MB_ENOTSUP, 0, "region '%s': this OS cannot decommit shared pages", r->name);
  pages = mb__region_map_pages(r);
  npages = r->size / r->page_size;
  for (p = 0; p < npages; p++) {
    uint32_t v = MB_PAGE_COMMITTED;
    if (mb_load32_relaxed(&pages[p]) != MB_PAGE_COMMITTED || !mb_cas32(&pages[p], &v, locked))
      continue;
    rc = mb_os_section_decommit(&r->sec, r->base, p * r->page_size, r->page_size);
    if (rc != 0) {
      mb_store32(&pages[p], MB_PAGE_COMMITTED);
      break;
    }
    mb__region_uncharge(r);
    bytes += r->page_size;
    mb_store32(&pages[p], 0);
  }
  *freed = bytes;
  return rc;
}
