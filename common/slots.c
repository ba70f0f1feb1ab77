/*
 * slots.c - lock-free player slots (see slots.h).
 */
#include "slots.h"

#include <string.h>

/* How long a claim waits for a page another process holds busy. */
#define MB_PAGE_BUSY_WAIT_NS (2000u * 1000000u)

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

/* mb__commit_charge for a region's commit, with the message. */
static int mb__charge(mb_region_map_t *r, uint64_t bytes) {
  if (mb__commit_charge(r->state, bytes) == 0)
    return 0;
  return mb__errorf(MB_ENOSPC, 0,
                    "region '%s': committing %llu more bytes would pass limits.max_committed "
                    "(%llu)",
                    r->desc->name, (unsigned long long)bytes,
                    (unsigned long long)mb_load64(&r->state->game.commit_limit));
}

/*
 * Take one user reference on page p, committing it first if nobody has. *was_committed tells
 * whether the page held data before (then a reused slot must be cleared).
 */
static int mb__page_get(mb_region_map_t *r, uint64_t p, int *was_committed) {
  mb_region_desc_t *d = r->desc;
  mb_au32 *w = &mb__region_pages(d, r->base)[p];
  uint32_t v = mb_load32(w);
  unsigned spins = 0;
  uint64_t deadline = 0;
  for (;;) {
    if (v & MB_PAGE_BUSY) {
      /* Another process commits or decommits it: a few µs. Back off after a while; a page
       * that stays busy belongs to a process that died mid-commit, and waiting longer
       * would hang this one. */
      if (++spins > 1000) {
        uint64_t now = mb_os_mono_ns();
        if (deadline == 0)
          deadline = now + MB_PAGE_BUSY_WAIT_NS;
        else if (now > deadline)
          return mb__errorf(MB_EBUSY, 0,
                            "region '%s': page %llu stays busy (a process died "
                            "while committing it?)",
                            d->name, (unsigned long long)p);
        mb_os_sleep_ms(1);
      }
      v = mb_load32(w);
      continue;
    }
    if (v & MB_PAGE_COMMITTED) {
      if (mb_cas32(w, &v, v + 1)) {
        /* Committed through another process's view: where views commit for themselves
         * (Windows), make it usable in ours too; that charges nothing. */
        if (mb_os_mem_config()->view_commit) {
          int rc = mb_os_section_commit(&r->sec, r->base, p * d->page_size, d->page_size);
          if (rc != 0) {
            mb_add32(w, (uint32_t)-1);
            return rc;
          }
        }
        *was_committed = 1;
        return 0;
      }
      continue;
    }
    if (mb_cas32(w, &v, v | MB_PAGE_BUSY)) {
      int rc = mb__charge(r, d->page_size);
      if (rc == 0 &&
          (rc = mb_os_section_commit(&r->sec, r->base, p * d->page_size, d->page_size)) != 0)
        mb_add64(&r->state->game.committed_total, (uint64_t)0 - d->page_size);
      if (rc != 0) {
        mb_add64(&d->commit_failures, 1);
        mb_store32(w, v); /* back to uncommitted, not busy */
        return rc;
      }
      mb__region_account(d, (int64_t)d->page_size);
      mb_store32(w, (v | MB_PAGE_COMMITTED) + 1);
      *was_committed = 0;
      return 0;
    }
  }
}

/* Drop one user reference on page p (the page stays committed until compaction). */
static void mb__page_put(mb_region_map_t *r, uint64_t p) {
  mb_add32(&mb__region_pages(r->desc, r->base)[p], (uint32_t)-1);
}

/* Take the page references of slot i (all or none); *reused: a page held data before. */
static int mb__slot_pages_get(mb_region_map_t *r, uint64_t i, int *reused) {
  uint64_t p, first, last;
  int rc;
  *reused = 0;
  mb__slot_page_range(i, r->desc->slot_size, r->desc->page_size, &first, &last);
  for (p = first; p <= last; p++) {
    int was = 0;
    if ((rc = mb__page_get(r, p, &was)) != 0) {
      while (p-- > first)
        mb__page_put(r, p);
      return rc;
    }
    *reused |= was;
  }
  return 0;
}

static void mb__slot_pages_put(mb_region_map_t *r, uint64_t i) {
  uint64_t p, first, last;
  mb__slot_page_range(i, r->desc->slot_size, r->desc->page_size, &first, &last);
  for (p = first; p <= last; p++)
    mb__page_put(r, p);
}

/*
 * Invariant: a slot's owner is set only while its page references are held. So the page
 * references are taken first and the owner is claimed last; a process that dies in between
 * leaks a page reference (that page is never compacted) but never leaves an owner whose
 * release would drop references nobody took. The player is recorded (as id + 1) only once
 * the slot's bytes are clear, so a claim cut short leaves an owned slot with no player,
 * which the owner's next attach gives back (mb__slot_release), never a phantom player.
 *
 * A page that cannot be had (another process died while committing it, or the commit was
 * refused) does not stop the search: the claim goes on past it and fails with that error
 * only if no slot at all could be had.
 */
int mb__slot_acquire(mb_region_map_t *r, uint32_t owner, uint64_t player_id, uint64_t *index) {
  mb_region_desc_t *d = r->desc;
  mb_slot_t *slots;
  mb_au32 *pages;
  uint64_t i = 0, start, hint, per_page;
  int reused = 0, rc, pass, err = 0;

  if (d->slot_size == 0)
    return mb__errorf(MB_EINVAL, 0, "region '%s' has no player slots", d->name);
  if (owner == 0)
    return mb__errorf(MB_EINVAL, 0, "slot owner 0 is reserved for free slots");
  if (player_id == UINT64_MAX)
    return mb__errorf(MB_EINVAL, 0, "player id %llu is reserved", (unsigned long long)player_id);
  slots = mb__region_slots(d, r->base);
  pages = mb__region_pages(d, r->base);
  per_page = d->page_size / d->slot_size; /* 0 when a slot spans pages */
  /* From the hint up; if that finds nothing, once more from 0 (the hint may have been
   * raised past a slot freed meanwhile), so "full" is only said after every slot was seen. */
  hint = start = mb_load64(&d->free_hint);
  if (start >= d->slot_count)
    start = 0;
  for (pass = start == 0 ? 1 : 0; pass < 2; pass++) {
    for (i = pass == 0 ? start : 0; i < d->slot_count; i++) {
      uint64_t expected = 0, first, last, p;
      if (mb_load64_relaxed(&slots[i].owner) != 0)
        continue;
      mb__slot_page_range(i, d->slot_size, d->page_size, &first, &last);
      if (err == MB_ENOSPC) {
        /* A commit was refused: only slots on pages committed already can be had now. */
        for (p = first; p <= last && (mb_load32(&pages[p]) & MB_PAGE_COMMITTED); p++) {
        }
        if (p <= last)
          continue;
      }
      if ((rc = mb__slot_pages_get(r, i, &reused)) != 0) {
        if (err == 0 || rc == MB_ENOSPC)
          err = rc;
        /* Go on after the page that failed: the last slot that starts on it is skipped. */
        if (per_page)
          i = (last + 1) * per_page - 1;
        continue;
      }
      mb_add64(&d->slots_used, 1);
      if (mb_cas64(&slots[i].owner, &expected, owner))
        break;
      /* Taken by another process meanwhile: give the references back, look further. */
      mb_add64(&d->slots_used, (uint64_t)-1);
      mb__slot_pages_put(r, i);
    }
    if (i < d->slot_count)
      break;
  }
  if (i >= d->slot_count) {
    if (err != 0)
      return err; /* its detail message says which page and why */
    return mb__errorf(MB_EFULL, 0, "region '%s': all %llu slots are taken", d->name,
                      (unsigned long long)d->slot_count);
  }
  /* The slots this scan passed below i were taken: the next claim may start after i. A CAS
   * from the value read at the start, so a release that lowered the hint meanwhile wins. */
  mb_cas64(&d->free_hint, &hint, i + 1);
  /* Fresh pages are zero; a page that held data may hold a former player's bytes. */
  if (reused)
    memset(mb__slot_ptr(r, i), 0, d->slot_size);
  mb_store64(&slots[i].player, player_id + 1);
  *index = i;
  return 0;
}

int mb__slot_release(mb_region_map_t *r, uint64_t index, uint32_t owner) {
  mb_region_desc_t *d = r->desc;
  mb_slot_t *slots = mb__region_slots(d, r->base);
  uint64_t expected = owner, hint;

  if (d->slot_size == 0 || index >= d->slot_count)
    return mb__errorf(MB_ERANGE, 0, "region '%s': no slot %llu", d->name,
                      (unsigned long long)index);
  if (mb_load64(&slots[index].owner) != owner)
    return mb__errorf(MB_EACCES, 0, "region '%s': slot %llu is not held by client %u", d->name,
                      (unsigned long long)index, (unsigned)owner);
  mb_store64(&slots[index].player, 0); /* before the owner: a claimer records its own */
  if (!mb_cas64(&slots[index].owner, &expected, 0))
    return mb__errorf(MB_EACCES, 0, "region '%s': slot %llu is not held by client %u", d->name,
                      (unsigned long long)index, (unsigned)owner);
  mb_add64(&d->slots_used, (uint64_t)-1);
  mb__slot_pages_put(r, index);
  /* Lower the hint to this slot, so claims stay lowest-first. */
  hint = mb_load64(&d->free_hint);
  while (index < hint && !mb_cas64(&d->free_hint, &hint, index)) {
  }
  return 0;
}

int mb__slot_release_owner(mb_region_map_t *r, uint32_t owner, uint64_t *count) {
  mb_region_desc_t *d = r->desc;
  mb_slot_t *slots;
  uint64_t i, n = 0;
  if (d->slot_size == 0) {
    if (count)
      *count = 0;
    return 0;
  }
  slots = mb__region_slots(d, r->base);
  for (i = 0; i < d->slot_count; i++)
    if (mb_load64_relaxed(&slots[i].owner) == owner && mb__slot_release(r, i, owner) == 0)
      n++;
  if (count)
    *count = n;
  return 0;
}

void mb__client_free(mb_state_t *st, uint32_t index, mb_region_map_t *regions, int nregions,
                     mb_pool_map_t *pools, int npools, uint64_t *freed) {
  mb_client_entry_t *e = &st->clients[index];
  uint64_t total = 0, n;
  size_t w;
  int i;
  for (i = 0; i < nregions; i++) {
    if (regions[i].base == NULL || regions[i].desc == NULL || regions[i].desc->slot_size == 0)
      continue;
    if (mb__slot_release_owner(&regions[i], index + 1, &n) == 0)
      total += n;
  }
  for (i = 0; i < npools; i++)
    if (pools[i].base != NULL)
      total += mb__pool_release_owner(&pools[i], index + 1, 0);
  mb_store64(&e->start_time, 0);
  mb_store64(&e->attach_wall_ns, 0);
  mb_store64(&e->heartbeat_ns, 0);
  mb_store64(&e->dead_since_ns, 0);
  mb_store64(&e->slots_held, 0);
  mb_store32(&e->dead_reason, MB_DEAD_NONE);
  mb_store32(&e->takeovers, 0);
  for (w = 0; w < MB_CLIENT_NAME_MAX / 8; w++)
    mb_store64(&e->name[w], 0);
  for (w = 0; w < MB_CLIENT_MEM_MAX; w++)
    mb_store32(&st->client_mem[index].entries[w].kind, MB_MEM_NONE);
  mb_store64(&st->client_mem[index].published_ns, 0);
  mb_store64(&e->word, MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0)); /* release: cleared fields first */
  if (freed)
    *freed = total;
}

/*
 * A page is freed only from the exact state "committed, no users, not busy", moved to busy
 * by CAS: a process that wants the page meanwhile waits on the busy bit and then commits it
 * afresh, so no slot ever sits on a decommitted page.
 */
int mb__region_compact(mb_region_map_t *r, uint64_t *freed) {
  mb_region_desc_t *d = r->desc;
  mb_au32 *pages;
  uint64_t p, npages, bytes = 0;
  int rc = 0;

  *freed = 0;
  /* A region committed at start stays committed: its commits are not real commits (no-ops
   * on a fully committed section), so a decommitted page could not be charged back. */
  if (d->slot_size == 0 || !(d->flags & MB_REGION_LAZY))
    return 0;
  if (!mb_os_mem_config()->shared_decommit)
    return mb__errorf(MB_ENOTSUP, 0, "region '%s': this OS cannot decommit shared pages", d->name);
  pages = mb__region_pages(d, r->base);
  npages = d->size / d->page_size;
  for (p = 0; p < npages; p++) {
    uint32_t v = MB_PAGE_COMMITTED;
    if (mb_load32_relaxed(&pages[p]) != MB_PAGE_COMMITTED ||
        !mb_cas32(&pages[p], &v, MB_PAGE_COMMITTED | MB_PAGE_BUSY))
      continue;
    rc = mb_os_section_decommit(&r->sec, r->base, p * d->page_size, d->page_size);
    if (rc != 0) {
      mb_store32(&pages[p], MB_PAGE_COMMITTED);
      break;
    }
    mb__region_account(d, -(int64_t)d->page_size);
    mb_add64(&r->state->game.committed_total, (uint64_t)0 - d->page_size);
    bytes += d->page_size;
    mb_store32(&pages[p], 0);
  }
  *freed = bytes;
  return rc;
}
