/*
 * players.c - a client's player slots (membroker.h): its private player map (player id ->
 * slot), mb_player_*, and what an attach does with the slots its entry's index owns (giving
 * back forged ones after a fresh claim, adopting its predecessor's after a takeover). The slot
 * table itself and its page-lock protocol with its crash points are common/slots.c's.
 */
#include "membroker.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layout.h"
#include "os.h"
#include "private.h"
#include "slots.h"

/* ---- the player map ----------------------------------------------------------------------- */

static size_t mb__pmap_home(const mb_client_t *c, uint64_t player) {
  uint64_t x = player + UINT64_C(0x9E3779B97F4A7C15); /* splitmix64 finalizer */
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  x ^= x >> 31;
  return (size_t)x & (c->pmap_cap - 1);
}

/* Position of player in the map, or (size_t)-1. */
static size_t mb__pmap_find(const mb_client_t *c, uint64_t player) {
  size_t i;
  if (c->pmap_cap == 0)
    return (size_t)-1;
  for (i = mb__pmap_home(c, player); c->pmap[i].slot1 != 0; i = (i + 1) & (c->pmap_cap - 1))
    if (c->pmap[i].player == player)
      return i;
  return (size_t)-1;
}

static void mb__pmap_insert_new(mb_client_t *c, uint64_t player, uint64_t slot1) {
  size_t i = mb__pmap_home(c, player);
  while (c->pmap[i].slot1 != 0)
    i = (i + 1) & (c->pmap_cap - 1);
  c->pmap[i].player = player;
  c->pmap[i].slot1 = slot1;
  c->pmap_count++;
}

/* Add player -> slot (the player must not be in the map), growing at half load. */
static int mb__pmap_put(mb_client_t *c, uint64_t player, uint64_t slot) {
  if ((c->pmap_count + 1) * 2 > c->pmap_cap) {
    size_t old_cap = c->pmap_cap, i, cap = old_cap ? old_cap * 2 : 64;
    mb__pmap_entry_t *old = c->pmap, *t = calloc(cap, sizeof *t);
    if (t == NULL)
      return mb__errorf(MB_ENOMEM, 0, "player map of %zu entries", cap);
    c->pmap = t;
    c->pmap_cap = cap;
    c->pmap_count = 0;
    for (i = 0; i < old_cap; i++)
      if (old[i].slot1 != 0)
        mb__pmap_insert_new(c, old[i].player, old[i].slot1);
    free(old);
  }
  mb__pmap_insert_new(c, player, slot + 1);
  return 0;
}

/* Remove the entry at position i, shifting later entries of its probe run back. */
static void mb__pmap_delete_at(mb_client_t *c, size_t i) {
  size_t mask = c->pmap_cap - 1, j = i, k;
  for (;;) {
    j = (j + 1) & mask;
    if (c->pmap[j].slot1 == 0)
      break;
    k = mb__pmap_home(c, c->pmap[j].player);
    /* The entry at j may fill the hole at i unless its home lies cyclically in (i, j]. */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    c->pmap[i] = c->pmap[j];
    i = j;
  }
  c->pmap[i].slot1 = 0;
  c->pmap[i].player = 0;
  c->pmap_count--;
}

void mb__pmap_clear(mb_client_t *c) {
  free(c->pmap);
  c->pmap = NULL;
  c->pmap_cap = c->pmap_count = 0;
}

/* The slot table of a mapped slotted region (its geometry as checked at mapping). */
static mb_slot_t *mb__slot_table(const mb_region_map_t *r) {
  return (mb_slot_t *)((unsigned char *)r->base + r->table_offset +
                       (((r->size / r->page_size) * 4 + 7) & ~(uint64_t)7));
}

/*
 * A FREE entry just claimed (not taken over) owns no slot, unless something went wrong before
 * (a forger, or a table from an older library): settle the pages its index left locked and give
 * back every slot it owns, each without its player first, so no former player ever appears in
 * this client. A slot that cannot be released (its page held) stays owned without a player:
 * nobody's player, given back at detach or by a restart.
 */
void mb__drop_foreign_slots(mb_client_t *c) {
  mb_region_map_t *r = &c->regions[c->slot_region];
  mb_slot_t *slots = mb__slot_table(r);
  uint64_t i, owner = c->index + 1;
  int any = 0;
  mb__slots_unlock_holder(r, (uint32_t)owner);
  for (i = 0; i < r->slot_count; i++)
    if (mb_load64_relaxed(&slots[i].owner) == owner) {
      mb_store64(&slots[i].player, 0);
      any = 1;
    }
  if (any)
    (void)mb__slot_release_owner(r, (uint32_t)owner, NULL);
}

/*
 * After taking an entry over: settle the pages its previous holder left locked (it died in a
 * claim or release: slots.c), find the slots it owns, put them in the player map and make
 * their pages usable in this view (a no-op where views need no commit of their own).
 */
int mb__adopt_slots(mb_client_t *c) {
  mb_region_map_t *r = &c->regions[c->slot_region];
  mb_slot_t *slots;
  uint64_t i, owner = c->index + 1, done_page = UINT64_MAX, held = 0, player1;
  int rc;
  mb__slots_unlock_holder(r, (uint32_t)owner);
  slots = mb__slot_table(r);
  for (i = 0; i < r->slot_count; i++) {
    uint64_t first, last, p;
    if (mb_load64(&slots[i].owner) != owner)
      continue;
    mb__slot_page_range(i, r->slot_size, r->page_size, &first, &last);
    for (p = first; p <= last; p++) {
      if (p == done_page)
        continue;
      if ((rc = mb_os_section_commit(&r->sec, r->base, p * r->page_size, r->page_size)) != 0)
        return rc;
      done_page = p;
    }
    player1 = mb_load64(&slots[i].player);
    if (player1 == 0 || player1 == UINT64_MAX || mb__pmap_find(c, player1 - 1) != (size_t)-1) {
      /* A claim cut short by a crash (no player recorded yet), or a second slot for one
       * player (not made by this library): give it back. */
      mb__slot_release(r, i, (uint32_t)owner);
      continue;
    }
    if ((rc = mb__pmap_put(c, player1 - 1, i)) != 0)
      return rc;
    held++;
  }
  mb_store64(&c->entry->slots_held, held);
  return 0;
}

/* ---- player slots ------------------------------------------------------------------------- */

/* The slotted region, or an error for a client without one or no longer attached (its slots
 * may be another client's by now: MB_ESTALE). */
static int mb__slots_need(mb_client_t *c) {
  int rc = mb__need(c);
  if (rc == 0 && !mb__entry_mine(c))
    rc = mb__stale(c);
  if (rc == 0 && c->slot_region < 0)
    rc = mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no region with player slots",
                    c->instance);
  return rc;
}

/* The bytes of slot `index` of the slotted region, located by the sizes checked when it was
 * mapped (never the descriptor's, which any member of the group can write): an index past
 * them is MB_ECORRUPT, not a pointer outside the mapping. */
static int mb__slot_at(mb_client_t *c, uint64_t index, void **slot) {
  const mb_region_map_t *r = &c->regions[c->slot_region];
  if (index >= r->slot_count)
    return mb__errorf(MB_ECORRUPT, 0, "region '%s': slot %llu past its %llu slots", r->name,
                      (unsigned long long)index, (unsigned long long)r->slot_count);
  *slot = r->base + index * r->slot_size;
  return 0;
}

/* The player map index of player_id in *at, or MB_ENOENT naming the player. */
static int mb__pmap_held(const mb_client_t *c, uint64_t player_id, size_t *at) {
  if ((*at = mb__pmap_find(c, player_id)) == (size_t)-1)
    return mb__errorf(MB_ENOENT, 0, "client '%s' holds no slot for player %llu", c->name,
                      (unsigned long long)player_id);
  return 0;
}

int mb_player_find(mb_client_t *c, uint64_t player_id, void **slot) {
  size_t at;
  int rc;
  if ((rc = mb__slots_need(c)) != 0)
    return rc;
  if ((rc = mb__pmap_held(c, player_id, &at)) != 0)
    return rc;
  if (slot)
    return mb__slot_at(c, c->pmap[at].slot1 - 1, slot);
  return 0;
}

int mb_player_connect(mb_client_t *c, uint64_t player_id, void **slot) {
  mb_region_map_t *r;
  uint64_t index;
  int rc;
  if ((rc = mb__slots_need(c)) != 0)
    return rc;
  if (slot == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_player_connect: no slot pointer");
  if (mb__pmap_find(c, player_id) != (size_t)-1)
    return mb_player_find(c, player_id, slot);
  r = &c->regions[c->slot_region];
  if ((rc = mb__slot_acquire(r, c->index + 1, player_id, &index)) != 0)
    return rc;
  if ((rc = mb__slot_at(c, index, slot)) != 0 || (rc = mb__pmap_put(c, player_id, index)) != 0) {
    /* The player first (only the owner writes it): a release that fails leaves an owned slot
     * without a player, given back at detach or by a restart's mb__adopt_slots, never a
     * player the map does not know. */
    mb_store64(&mb__slot_table(r)[index].player, 0);
    (void)mb__slot_release(r, index, c->index + 1);
    return rc;
  }
  mb_add64(&c->entry->slots_held, 1);
  return 0;
}

int mb_player_disconnect(mb_client_t *c, uint64_t player_id) {
  size_t at;
  int rc;
  if ((rc = mb__slots_need(c)) != 0)
    return rc;
  if ((rc = mb__pmap_held(c, player_id, &at)) != 0)
    return rc;
  rc = mb__slot_release(&c->regions[c->slot_region], c->pmap[at].slot1 - 1, c->index + 1);
  /* Forgotten only if the slot is free now, or was not ours any more (MB_EACCES: a forger
   * freed it); otherwise (MB_EBUSY: a page of it stayed locked) the player keeps it, still
   * found and freed by a later disconnect or the detach. */
  if (rc == 0 || rc == MB_EACCES)
    mb__pmap_delete_at(c, at);
  if (rc == 0)
    mb_add64(&c->entry->slots_held, (uint64_t)-1);
  return rc;
}

int mb_player_next(mb_client_t *c, uint64_t *cursor, uint64_t *player_id, void **slot) {
  int rc;
  if ((rc = mb__slots_need(c)) != 0)
    return rc;
  if (cursor == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_player_next: no cursor");
  /* The cursor is a position in the player map; the map does not change during a walk
   * unless the caller connects or disconnects. */
  while (*cursor < c->pmap_cap) {
    const mb__pmap_entry_t *p = &c->pmap[(*cursor)++];
    if (p->slot1 == 0)
      continue;
    if (player_id)
      *player_id = p->player;
    if (slot)
      return mb__slot_at(c, p->slot1 - 1, slot);
    return 0;
  }
  return mb__errorf(MB_ENOENT, 0, "no more slots");
}
