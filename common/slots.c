/*
 * slots.c - lock-free player slots (see slots.h).
 *
 * Owns the slot table of a slotted region: claims, releases, page commits, and the
 * settling of what a process killed in the middle of one of them left behind. Never trusts the
 * table: owners, player ids and page words are range-checked where they are read, and the
 * geometry comes from the private copy in mb_region_map_t.
 *
 * Page locks. Every change of a slot's owner is made while each page the slot lies on is
 * locked: its word is moved by CAS from a value without BUSY to BUSY | holder (the claimer's
 * client index + 1, or MB_PAGE_HOLDER_BROKER), and unlocked by one store of the new value
 * (users +-1, COMMITTED). Pages of one slot are locked in ascending order. So, whenever a
 * page is not busy, its user count is exactly the number of owned slots on it, and compaction
 * (which locks the page too) never decommits a page a slot is being claimed on. Waiting on a
 * busy page is bounded: a claim gives up on a page at once when its holder is out of range or
 * its entry is free, dead, or held by a process the OS says is gone (it goes on with the next
 * page), and after MB_PAGE_BUSY_WAIT_NS in any case. The broker never waits: a page held by
 * another holder is skipped at once (mb__page_lock), and what it meant to do there is done at a
 * later tick - an entry whose slot it could not release stays DEAD (mb__client_free), a deep
 * repair that skipped a page is repeated at the next tick (mb_slots_repair_t.skipped) - so a
 * stopped client (alive, holding a page) never stops the broker's loop. The settler of a dead
 * holder's lock is the broker (every tick, and before a reap) or the holder's successor taking
 * its entry over; both hold the holder's entry CLAIMED meanwhile, so the holder index cannot
 * lock again under them. The broker, single-threaded, holds no page lock between its
 * operations: a BUSY|broker word it finds at a tick is forged and settled like a dead holder's.
 *
 * A slot never passes to another client with its player (clients.h says how the client table
 * keeps that: an entry is stored FREE only when it owns no slot).
 *
 * Crash points of a claim (slot i on pages P, holder h) and what is found afterwards:
 *  1. before the first lock: nothing changed.
 *  2. some pages of P locked, owner still 0: those pages are BUSY|h with users unchanged. The
 *     settler (mb__slots_unlock_holder: the broker once the OS says h's process is gone, or
 *     h's successor taking the entry over) recounts users from the owners (unchanged) and
 *     clears the lock.
 *  3. committing page p (locked, was uncommitted): the holder charges the page (commit total,
 *     region committed), stores CHARGED, commits, stores COMMITTED, all still BUSY.
 *       - killed before the charge: BUSY|h, nothing charged: the settler stores 0.
 *       - killed between the charge and the CHARGED store (two atomic adds and a store: a few
 *         instructions): the settler takes the page as uncharged; the commit totals stay one
 *         page high.
 *       - the commit failed: the holder stores the word without CHARGED, then takes the charge
 *         back; killed between the two, the totals stay one page high.
 *       - CHARGED, maybe committed: the settler commits the page itself (idempotent) and marks
 *         it COMMITTED, or, if that fails, stores the word without CHARGED and then takes the
 *         charge back (a settler killed between those leaves the totals one page high).
 *       - COMMITTED: the settler keeps it committed and counts its users.
 *     These are the windows left, all of one page and all high: the word says CHARGED only
 *     while the charge is held (it is set after the charge and cleared before the charge is
 *     taken back), so a charge is never taken back twice and the totals never go low; two
 *     counters and a word cannot change with one CAS.
 *  4. owner CAS done, pages still locked: the settler counts the new owner on every page of
 *     the slot (users + 1 each), and the slot belongs to h: freed when h is reaped, or
 *     taken back by h's successor (no player recorded yet: given back by mb__adopt_slots).
 *  5. some pages unlocked (users + 1), the rest locked: settled as in 4; the count is the
 *     same either way.
 *  6. all unlocked, player id not stored yet: an owned slot without a player, as in 4.
 * A release (locks, player 0, owner CAS to 0, slots_used - 1, unlocks with users - 1) is the
 * mirror: before the owner CAS the slot is still h's (freed at reap), after it the settler's
 * count leaves it out. slots_used is a statistic changed next to the owner CAS; a kill between
 * the two leaves it one off until the broker sets it from the owners (every reap, compact and
 * deep repair: mb__slots_repair).
 * Compaction (regions.c) locks a committed page without users, decommits it and stores 0.
 * The view's commit bitmap (regions.h: view_committed) is private to the process, so a kill
 * loses it with the view and it has no crash point. A bit is set only after this view's own
 * commit of the page succeeded, and only where views commit for themselves and shared pages
 * are never decommitted (Windows: VirtualFree refuses the pages of a SEC_RESERVE section,
 * compaction answers MB_ENOTSUP, nothing resets them): a committed page stays committed in
 * the view until it is unmapped, so no bit can go stale and the broker needs no generation
 * word. An OS that both needed per-view commits and could decommit would need one (bumped by
 * compaction, read back untrusted); none does, and there the bitmap is not kept.
 * Freeing an entry (mb__client_free) and its crash points are the client table's: clients.h.
 * A client's fresh claim that gives back a forged slot (player 0, then release) killed half-way
 * leaves an owned slot without a player, freed at the reap.
 */
#include "slots.h"

#include <string.h>

/* How long a claim or release waits at most for a page another process holds locked. */
#define MB_PAGE_BUSY_WAIT_NS (2000u * 1000000u)

static mb_slot_t *mb__slots(const mb_region_map_t *r) {
  uint64_t pages = r->size / r->page_size;
  return (mb_slot_t *)(r->base + r->table_offset + ((pages * 4 + 7) & ~(uint64_t)7));
}

static uint32_t mb__holder(const mb_region_map_t *r, uint32_t owner) {
  return r->holder ? r->holder : owner;
}

/* mb__commit_charge for a region's commit, with the message. */
static int mb__charge(mb_region_map_t *r, uint64_t bytes) {
  if (mb__commit_charge(r->state, bytes) == 0)
    return 0;
  return mb__errorf(MB_ENOSPC, 0,
                    "region '%s': committing %llu more bytes would pass limits.max_committed "
                    "(%llu)",
                    r->name, (unsigned long long)bytes,
                    (unsigned long long)mb_load64(&r->state->game.commit_limit));
}

/*
 * Whether this view has committed page p itself (regions.h: view_committed). Read under p's
 * lock, as it is set, so a bit set by another thread of this process is seen; a bit not seen
 * costs only the system call it would have saved.
 */
static int mb__view_has(const mb_region_map_t *r, uint64_t p) {
  return r->view_committed != NULL &&
         ((mb_load32_relaxed(&r->view_committed[p / 32]) >> (p % 32)) & 1u) != 0;
}

/* Record that this view committed page p, after the commit succeeded. The word's other bits
 * are other pages, which other threads of this process may set meanwhile: a CAS. */
static void mb__view_set(mb_region_map_t *r, uint64_t p) {
  mb_au32 *w;
  uint32_t v, bit = 1u << (p % 32);
  if (r->view_committed == NULL)
    return;
  w = &r->view_committed[p / 32];
  v = mb_load32_relaxed(w);
  while (!(v & bit) && !mb_cas32(w, &v, v | bit)) {
  }
}

/*
 * Whether holder h of a busy page can no longer be waited for: out of range, or its entry is
 * free or dead, or its process is gone. The broker (h == MB_PAGE_HOLDER_BROKER) is waited for.
 */
static int mb__holder_gone(const mb_region_map_t *r, uint32_t h) {
  const mb_client_entry_t *e;
  mb_os_procid_t id;
  uint64_t w;
  uint32_t s;
  if (h == MB_PAGE_HOLDER_BROKER)
    return 0;
  if (h == 0 || h > MB_CLIENTS_MAX || r->state == NULL)
    return 1;
  e = &r->state->clients[h - 1];
  w = mb_load64(&e->word);
  s = MB_CLIENT_WORD_STATE(w);
  if (s != MB_CLIENT_ATTACHED && s != MB_CLIENT_CLAIMED)
    return 1;
  id.pid = MB_CLIENT_WORD_PID(w);
  id.start_time = mb_load64(&e->start_time);
  return id.pid != 0 && mb_os_proc_alive(&id) == 0;
}

/*
 * Lock page p for `holder`. 0 with *was = the word before (not busy); MB_EBUSY (with a
 * message) if the page stays locked: at once when `give_up` and its holder is gone
 * (mb__holder_gone), else after MB_PAGE_BUSY_WAIT_NS; in the broker at once. Clients never settle
 * another client's lock (that would mean holding its entry, and a client killed there would hold it
 * in turn): the broker does, each tick.
 */
static int mb__page_lock(mb_region_map_t *r, uint64_t p, uint32_t holder, int give_up,
                         uint32_t *was) {
  mb_au32 *w = &mb__region_map_pages(r)[p];
  uint32_t v = mb_load32(w);
  unsigned spins = 0;
  uint64_t deadline = 0, next_check = 0;
  for (;;) {
    if (!(v & MB_PAGE_BUSY)) {
      if (mb_cas32(w, &v,
                   (v & ~MB_PAGE_HOLDER_MASK) | MB_PAGE_BUSY | (holder << MB_PAGE_HOLDER_SHIFT))) {
        *was = v & ~MB_PAGE_HOLDER_MASK;
        return 0;
      }
      continue;
    }
    /* The broker never waits: one stopped client would stop its loop (reaps, checks, the
     * service's commands). It skips the page; what it meant to do there is done at a later
     * tick (an entry it could not free stays DEAD, a recount is repeated). */
    if (r->holder == MB_PAGE_HOLDER_BROKER)
      return mb__errorf(MB_EBUSY, 0,
                        "region '%s': page %llu is locked by holder %u: left for a "
                        "later tick",
                        r->name, (unsigned long long)p, (unsigned)MB_PAGE_HOLDER(v));
    /* Held for a moment normally (a commit is the longest: a system call). */
    if (++spins > 200) {
      uint64_t now = mb_os_mono_ns();
      if (deadline == 0) {
        deadline = now + MB_PAGE_BUSY_WAIT_NS;
        next_check = now;
      }
      /* Its holder died there: a claim goes on to other pages at once; the broker settles
       * the page at its next tick (a release waits for that). */
      if (give_up && now >= next_check && mb__holder_gone(r, MB_PAGE_HOLDER(v)))
        deadline = 0;
      if (deadline == 0 || now > deadline)
        return mb__errorf(MB_EBUSY, 0,
                          "region '%s': page %llu stays locked by holder %u (a process that "
                          "died there is settled by the broker)",
                          r->name, (unsigned long long)p, (unsigned)MB_PAGE_HOLDER(v));
      if (now >= next_check)
        next_check = now + 10u * 1000000u;
      mb_os_sleep_ms(1);
    }
    v = mb_load32(w);
  }
}

/* Owned slots lying on page p. Forged owners count: they are freed by a deep repair. */
static uint32_t mb__page_truth(const mb_region_map_t *r, uint64_t p) {
  mb_slot_t *slots = mb__slots(r);
  uint64_t first = p * r->page_size / r->slot_size;
  uint64_t last = ((p + 1) * r->page_size - 1) / r->slot_size, i;
  uint32_t n = 0;
  if (last >= r->slot_count)
    last = r->slot_count - 1;
  for (i = first; i <= last; i++)
    n += mb_load64(&slots[i].owner) != 0;
  return n;
}

/*
 * Commit page p, locked by us (word BUSY | holder bits `locked`, not committed): charge,
 * CHARGED, commit, COMMITTED - the steps the settler reads back.
 */
static int mb__page_commit_locked(mb_region_map_t *r, uint64_t p, uint32_t locked) {
  mb_au32 *w = &mb__region_map_pages(r)[p];
  int rc;
  if ((rc = mb__charge(r, r->page_size)) != 0) {
    mb_add64(&r->desc->commit_failures, 1);
    return rc;
  }
  mb__region_account(r->desc, (int64_t)r->page_size);
  mb_store32(w, locked | MB_PAGE_CHARGED);
  if ((rc = mb_os_section_commit(&r->sec, r->base, p * r->page_size, r->page_size)) != 0) {
    mb_store32(w, locked);
    mb__region_uncharge(r);
    mb_add64(&r->desc->commit_failures, 1);
    return rc;
  }
  mb_store32(w, locked | MB_PAGE_COMMITTED);
  mb__view_set(r, p);
  return 0;
}

/* The pages [*first, *last] of slot i. */
static void mb__range(const mb_region_map_t *r, uint64_t i, uint64_t *first, uint64_t *last) {
  mb__slot_page_range(i, r->slot_size, r->page_size, first, last);
}

/*
 * Unlock pages [first, upto) of a slot, which we hold locked: each keeps its COMMITTED bit and
 * user count as the locked word holds them (nobody else changes it meanwhile), users + delta.
 */
static void mb__pages_unlock(mb_region_map_t *r, uint64_t first, uint64_t upto, int delta) {
  mb_au32 *pages = mb__region_map_pages(r);
  uint64_t p;
  for (p = first; p < upto; p++) {
    uint32_t v = mb_load32(&pages[p]) & (MB_PAGE_USERS_MASK | MB_PAGE_COMMITTED);
    uint32_t users = v & MB_PAGE_USERS_MASK;
    if (delta > 0 && users < MB_PAGE_USERS_MASK)
      v++;
    else if (delta < 0 && users > 0)
      v--;
    mb_store32(&pages[p], v);
  }
}

/* mb__slot_try: the slot was taken by another process meanwhile (not an error code). */
#define MB__TAKEN 1

/*
 * Try slot i for `owner`: lock its pages, commit those that are not, take the owner, unlock.
 * 0: ours (*reused: a page held data before). MB__TAKEN: taken by another meanwhile. Else the
 * error of the page that could not be had (*bad_page receives it).
 */
static int mb__slot_try(mb_region_map_t *r, uint64_t i, uint32_t owner, int only_committed,
                        int *reused, uint64_t *bad_page) {
  mb_au32 *pages = mb__region_map_pages(r);
  mb_slot_t *slots = mb__slots(r);
  uint32_t was, holder = mb__holder(r, owner);
  uint64_t first, last, p, expected = 0;
  int rc = 0;
  mb__range(r, i, &first, &last);
  *reused = 0;
  for (p = first; p <= last; p++) {
    if ((rc = mb__page_lock(r, p, holder, 1, &was)) != 0) {
      *bad_page = p;
      mb__pages_unlock(r, first, p, 0);
      return rc;
    }
  }
  if (mb_load64(&slots[i].owner) != 0) {
    mb__pages_unlock(r, first, last + 1, 0);
    return MB__TAKEN;
  }
  for (p = first; p <= last; p++) {
    uint32_t locked = mb_load32(&pages[p]); /* BUSY | holder | users [| COMMITTED] */
    if (locked & MB_PAGE_COMMITTED) {
      /* Committed through another view: where views commit for themselves (Windows), make it
       * usable in ours too (that charges nothing), once: a page this view committed before
       * needs no system call (about 50 us under Wine; regions.h: view_committed). */
      if (mb_os_mem_config()->view_commit && !mb__view_has(r, p)) {
        if ((rc = mb_os_section_commit(&r->sec, r->base, p * r->page_size, r->page_size)) != 0)
          break;
        mb__view_set(r, p);
      }
      *reused = 1;
      continue;
    }
    if (only_committed) {
      rc = MB_ENOSPC;
      break;
    }
    if ((rc = mb__page_commit_locked(r, p, locked)) != 0)
      break;
  }
  if (rc != 0) {
    *bad_page = p;
    mb__pages_unlock(r, first, last + 1, 0);
    return rc == MB_ENOSPC && only_committed ? MB__TAKEN : rc;
  }
  if (!mb_cas64(&slots[i].owner, &expected, owner)) { /* only a forger writes it unlocked */
    mb__pages_unlock(r, first, last + 1, 0);
    return MB__TAKEN;
  }
  mb_add64(&r->desc->slots_used, 1);
  mb__pages_unlock(r, first, last + 1, +1);
  return 0;
}

/*
 * A page that cannot be had (its holder died while it held it locked, or the commit was
 * refused) does not stop the search: the claim goes on past it and fails with that error only
 * if no slot at all could be had. The player is recorded (as id + 1) only once the slot's bytes
 * are clear, so a claim cut short leaves an owned slot with no player, which the owner's next
 * attach gives back, never a phantom player.
 */
int mb__slot_acquire(mb_region_map_t *r, uint32_t owner, uint64_t player_id, uint64_t *index) {
  mb_slot_t *slots;
  uint64_t i = 0, start, hint, per_page;
  int reused = 0, rc, pass, err = 0;

  if (r->slot_size == 0)
    return mb__errorf(MB_EINVAL, 0, "region '%s' has no player slots", r->name);
  if (owner == 0 || owner > MB_CLIENTS_MAX)
    return mb__errorf(MB_EINVAL, 0, "slot owner %u is out of range", (unsigned)owner);
  if (player_id == UINT64_MAX)
    return mb__errorf(MB_EINVAL, 0, "player id %llu is reserved", (unsigned long long)player_id);
  slots = mb__slots(r);
  per_page = r->page_size / r->slot_size; /* 0 when a slot spans pages */
  /* From the hint up; if that finds nothing, once more from 0 (the hint may have been
   * raised past a slot freed meanwhile), so "full" is only said after every slot was seen. */
  hint = start = mb_load64(&r->desc->free_hint);
  if (start >= r->slot_count)
    start = 0;
  for (pass = start == 0 ? 1 : 0; pass < 2; pass++) {
    for (i = pass == 0 ? start : 0; i < r->slot_count; i++) {
      uint64_t bad = 0;
      if (mb_load64_relaxed(&slots[i].owner) != 0)
        continue;
      rc = mb__slot_try(r, i, owner, err == MB_ENOSPC, &reused, &bad);
      if (rc == 0)
        break;
      if (rc == MB__TAKEN)
        continue;
      if (err == 0 || rc == MB_ENOSPC)
        err = rc;
      /* Go on after the page that failed: the last slot that starts on it is skipped. */
      if (per_page && (bad + 1) * per_page - 1 > i)
        i = (bad + 1) * per_page - 1;
    }
    if (i < r->slot_count)
      break;
  }
  if (i >= r->slot_count) {
    if (err != 0)
      return err; /* its detail message says which page and why */
    return mb__errorf(MB_EFULL, 0, "region '%s': all %llu slots are taken", r->name,
                      (unsigned long long)r->slot_count);
  }
  /* The slots this scan passed below i were taken: the next claim may start after i. A CAS
   * from the value read at the start, so a release that lowered the hint meanwhile wins. */
  mb_cas64(&r->desc->free_hint, &hint, i + 1);
  /* Fresh pages are zero; a page that held data may hold a former player's bytes. */
  if (reused)
    memset(mb__slot_ptr(r, i), 0, r->slot_size);
  mb_store64(&slots[i].player, player_id + 1);
  *index = i;
  return 0;
}

int mb__slot_release(mb_region_map_t *r, uint64_t index, uint32_t owner) {
  mb_slot_t *slots;
  uint32_t was, holder = mb__holder(r, owner);
  uint64_t expected = owner, hint, first, last, p;
  int rc;

  if (r->slot_size == 0 || index >= r->slot_count)
    return mb__errorf(MB_ERANGE, 0, "region '%s': no slot %llu", r->name,
                      (unsigned long long)index);
  slots = mb__slots(r);
  if (owner == 0 || mb_load64(&slots[index].owner) != owner)
    return mb__errorf(MB_EACCES, 0, "region '%s': slot %llu is not held by client %u", r->name,
                      (unsigned long long)index, (unsigned)owner);
  mb__range(r, index, &first, &last);
  /* The broker (a reap, holding the entry CLAIMED) waits on no page: the slot stays owned and
   * mb__client_free leaves the entry DEAD for the next sweep. A client gives up on a dead
   * holder's page at once, on a live one's after MB_PAGE_BUSY_WAIT_NS (MB_EBUSY). */
  for (p = first; p <= last; p++) {
    if ((rc = mb__page_lock(r, p, holder, r->holder == MB_PAGE_HOLDER_BROKER, &was)) != 0) {
      mb__pages_unlock(r, first, p, 0);
      return rc;
    }
  }
  mb_store64(&slots[index].player, 0); /* before the owner: a claimer records its own */
  if (!mb_cas64(&slots[index].owner, &expected, 0)) {
    mb__pages_unlock(r, first, last + 1, 0);
    return mb__errorf(MB_EACCES, 0, "region '%s': slot %llu is not held by client %u", r->name,
                      (unsigned long long)index, (unsigned)owner);
  }
  mb_add64(&r->desc->slots_used, (uint64_t)-1);
  mb__pages_unlock(r, first, last + 1, -1);
  /* Lower the hint to this slot, so claims stay lowest-first. */
  hint = mb_load64(&r->desc->free_hint);
  while (index < hint && !mb_cas64(&r->desc->free_hint, &hint, index)) {
  }
  return 0;
}

int mb__slot_release_owner(mb_region_map_t *r, uint32_t owner, uint64_t *count) {
  mb_slot_t *slots;
  uint64_t i, n = 0;
  int rc = 0;
  if (r->slot_size == 0 || owner == 0) {
    if (count)
      *count = 0;
    return 0;
  }
  slots = mb__slots(r);
  for (i = 0; i < r->slot_count; i++) {
    int one;
    if (mb_load64_relaxed(&slots[i].owner) != owner)
      continue;
    if ((one = mb__slot_release(r, i, owner)) == 0)
      n++;
    else if (one != MB_EACCES && rc == 0) /* MB_EACCES: not the owner's any more */
      rc = one;
  }
  if (count)
    *count = n;
  return rc;
}

/*
 * Settle page p whose word was `v` (BUSY, holder gone): take the lock over as holder `as` by
 * CAS from exactly v, finish or undo its commit as CHARGED / COMMITTED say, count its users from
 * the owners and unlock. 1 if it did. (A settler that dies here leaves the page locked by `as`,
 * settled again like any other.)
 */
static int mb__page_settle(mb_region_map_t *r, uint64_t p, uint32_t v, uint32_t as) {
  mb_au32 *w = &mb__region_map_pages(r)[p];
  uint32_t mine = MB_PAGE_BUSY | (as << MB_PAGE_HOLDER_SHIFT);
  uint32_t users, out;
  uint64_t first, hint;
  int committed;
  if (!mb_cas32(w, &v, mine | (v & (MB_PAGE_CHARGED | MB_PAGE_COMMITTED))))
    return 0;
  committed = (v & MB_PAGE_COMMITTED) != 0;
  if (!committed && (v & MB_PAGE_CHARGED)) {
    /* Charged, maybe committed: finish it (a commit of committed memory is a no-op). If that
     * fails, the word drops CHARGED before the charge is taken back: a settler killed between
     * the two leaves the totals a page high, never a page taken back twice. */
    if (mb_os_section_commit(&r->sec, r->base, p * r->page_size, r->page_size) == 0) {
      committed = 1;
    } else {
      mb_store32(w, mine);
      mb__region_uncharge(r);
    }
  }
  users = mb__page_truth(r, p);
  /* Owned slots on a page that was never committed: only a forger makes that; the slots'
   * holders need their memory, so commit it (charged, the steps of a claim's commit) rather
   * than leave them unbacked. */
  if (users != 0 && !committed && mb__page_commit_locked(r, p, mine) == 0)
    committed = 1;
  out = (committed ? MB_PAGE_COMMITTED : 0) |
        (users > MB_PAGE_USERS_MASK ? MB_PAGE_USERS_MASK : users);
  mb_store32(w, out);
  /* Claims went past this page while it was locked: let the next start at it again. */
  first = p * r->page_size / r->slot_size;
  hint = mb_load64(&r->desc->free_hint);
  while (first < hint && !mb_cas64(&r->desc->free_hint, &hint, first)) {
  }
  return 1;
}

uint64_t mb__slots_unlock_holder(mb_region_map_t *r, uint32_t holder) {
  mb_au32 *pages;
  uint64_t p, npages, n = 0;
  if (r->base == NULL || r->slot_size == 0)
    return 0;
  pages = mb__region_map_pages(r);
  npages = r->size / r->page_size;
  for (p = 0; p < npages; p++) {
    uint32_t v = mb_load32_relaxed(&pages[p]);
    if ((v & MB_PAGE_BUSY) && MB_PAGE_HOLDER(v) == holder)
      n += (uint64_t)mb__page_settle(r, p, v, holder);
  }
  return n;
}

/* Holder h of a busy page is out of range (forged): no process could ever unlock it. */
static int mb__holder_forged(const mb_region_map_t *r, uint32_t h) {
  return h == 0 || (h > r->max_owner && h != MB_PAGE_HOLDER_BROKER);
}

/*
 * Settle the pages of client holder h if its entry is FREE or DEAD with its process gone:
 * the entry is held CLAIMED meanwhile (one CAS from the exact word judged, given back after),
 * so no attach or takeover can start locking pages as h while we settle them.
 */
static uint64_t mb__settle_client(mb_region_map_t *r, uint32_t h) {
  mb_client_entry_t *e = &r->state->clients[h - 1];
  uint64_t w = mb_load64(&e->word), expected = w, n;
  uint32_t s = MB_CLIENT_WORD_STATE(w);
  mb_os_procid_t id;
  if (s == MB_CLIENT_DEAD) {
    id.pid = MB_CLIENT_WORD_PID(w);
    id.start_time = mb_load64(&e->start_time);
    if (id.pid != 0 && mb_os_proc_alive(&id) != 0) /* hung, not dead: not ours to break */
      return 0;
  } else if (s != MB_CLIENT_FREE) {
    return 0; /* live (or being judged): the sweep turns a dead one DEAD first */
  }
  if (!mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_CLAIMED)))
    return 0;
  n = mb__slots_unlock_holder(r, h);
  mb_store64(&e->word, w);
  return n;
}

/* The entry of slot owner o (1..max_owner) is FREE. */
static int mb__owner_free(const mb_region_map_t *r, uint64_t o) {
  return MB_CLIENT_WORD_STATE(mb_load64(&r->state->clients[o - 1].word)) == MB_CLIENT_FREE;
}

void mb__slots_repair(mb_region_map_t *r, int deep, mb_slots_repair_t *out) {
  mb_slots_repair_t res;
  mb_au32 *pages;
  mb_slot_t *slots;
  uint64_t p, npages, i;
  uint32_t tried[(MB_CLIENTS_MAX + 1 + 31) / 32]; /* client holders judged this pass */
  memset(&res, 0, sizeof res);
  if (r->base == NULL || r->slot_size == 0) {
    if (out)
      *out = res;
    return;
  }
  pages = mb__region_map_pages(r);
  slots = mb__slots(r);
  npages = r->size / r->page_size;
  memset(tried, 0, sizeof tried);
  /* Locks nobody will ever release. In the broker (one thread, which holds no page lock
   * between its operations) a lock naming the broker is forged too. Each client holder is
   * judged once a pass: mb__settle_client settles all its pages at once, and a live one's
   * are left alone, so the pass stays linear in the pages. */
  for (p = 0; p < npages; p++) {
    uint32_t v = mb_load32_relaxed(&pages[p]), h = MB_PAGE_HOLDER(v);
    if (!(v & MB_PAGE_BUSY))
      continue;
    if (mb__holder_forged(r, h) ||
        (h == MB_PAGE_HOLDER_BROKER && r->holder == MB_PAGE_HOLDER_BROKER)) {
      res.pages_unlocked += (uint64_t)mb__page_settle(r, p, v, MB_PAGE_HOLDER_BROKER);
    } else if (h != MB_PAGE_HOLDER_BROKER && !(tried[h / 32] & (1u << (h % 32)))) {
      tried[h / 32] |= 1u << (h % 32);
      res.pages_unlocked += mb__settle_client(r, h);
    }
  }
  if (deep) {
    uint64_t used = 0;
    /* Forged owners, and owners whose entry is free (forged too: mb__client_free leaves an
     * entry DEAD while it owns a slot; or a table an older broker left), freed under their
     * pages' locks. An entry is never FREE while its
     * holder claims: it attaches first, and claims take the page lock this holds. */
    for (i = 0; i < r->slot_count; i++) {
      uint64_t o = mb_load64_relaxed(&slots[i].owner), first, last, q;
      uint32_t was;
      int forged = o > r->max_owner;
      if (o == 0 || (!forged && !mb__owner_free(r, o)))
        continue;
      mb__range(r, i, &first, &last);
      for (q = first; q <= last; q++)
        if (mb__page_lock(r, q, MB_PAGE_HOLDER_BROKER, 1, &was) != 0)
          break;
      if (q <= last)
        res.skipped++; /* its page is held right now: the next deep repair */
      if (q > last && (forged || mb__owner_free(r, o)) && mb_cas64(&slots[i].owner, &o, 0)) {
        mb_store64(&slots[i].player, 0);
        if (forged)
          res.owners_forged++;
        else
          res.owners_orphaned++;
      }
      mb__pages_unlock(r, first, q, 0); /* users are recounted below */
    }
    /* Every page's users from the owners, each page locked while it is counted. */
    for (p = 0; p < npages; p++) {
      uint32_t was, truth, fixed;
      if (mb__page_lock(r, p, MB_PAGE_HOLDER_BROKER, 1, &was) != 0) {
        res.skipped++;
        continue;
      }
      truth = mb__page_truth(r, p);
      fixed = (was & MB_PAGE_COMMITTED) | truth;
      if (was & ~(MB_PAGE_USERS_MASK | MB_PAGE_COMMITTED) || (was & MB_PAGE_USERS_MASK) != truth)
        res.users_fixed++;
      if (truth != 0 && !(was & MB_PAGE_COMMITTED)) {
        /* Forged: settle it as a dead holder's page (it commits what owned slots need). */
        mb_store32(&pages[p], MB_PAGE_BUSY | (MB_PAGE_HOLDER_BROKER << MB_PAGE_HOLDER_SHIFT));
        mb__page_settle(r, p, MB_PAGE_BUSY | (MB_PAGE_HOLDER_BROKER << MB_PAGE_HOLDER_SHIFT),
                        MB_PAGE_HOLDER_BROKER);
        continue;
      }
      mb_store32(&pages[p], fixed);
    }
    for (i = 0; i < r->slot_count; i++)
      used += mb_load64_relaxed(&slots[i].owner) != 0;
    /* A statistic: a claim in flight in a live client at this moment may leave it one off
     * until the next repair. */
    mb_store64(&r->desc->slots_used, used);
    res.slots_used = used;
  }
  if (out)
    *out = res;
}

int mb__slot_find(const mb_region_map_t *r, uint64_t player_id, uint64_t *index, uint32_t *owner) {
  mb_slot_t *slots;
  uint64_t i;
  if (r->slot_size == 0 || r->base == NULL || player_id == UINT64_MAX)
    return 0;
  slots = mb__slots(r);
  for (i = 0; i < r->slot_count; i++) {
    uint64_t o = mb_load64(&slots[i].owner);
    if (o != 0 && mb_load64(&slots[i].player) == player_id + 1) {
      mb_au32 *pages = mb__region_map_pages(r);
      uint64_t first, last, p;
      *index = i;
      *owner = o > UINT32_MAX ? UINT32_MAX : (uint32_t)o;
      mb__slot_page_range(i, r->slot_size, r->page_size, &first, &last);
      for (p = first; p <= last; p++)
        if ((mb_load32(&pages[p]) & (MB_PAGE_COMMITTED | MB_PAGE_BUSY)) != MB_PAGE_COMMITTED)
          return 2;
      return 1;
    }
  }
  return 0;
}
