/*
 * gamestate.c - the world's shared state seen by a client (membroker.h): mb_info, the shared
 * counters (counters.h has their protocol and crash points), the status message, and the
 * named regions (mapping a region's section into this process, mb_region).
 */
#include "membroker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "error.h"
#include "layout.h"
#include "os.h"
#include "private.h"
#include "slots.h"

/* ---- state -------------------------------------------------------------------------------- */

int mb_info(mb_client_t *c, mb_info_t *info) {
  const mb_state_t *st;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (info == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_info: no info");
  st = c->st;
  memset(info, 0, sizeof *info);
  info->server_status = mb_load32(&st->game.server_status);
  info->broker_pid = st->broker_pid;
  info->generation = mb_load64(&st->generation);
  info->players = mb_load64(&st->game.total_players);
  info->npcs = mb_load64(&st->game.total_npcs);
  info->last_update_wall_ns = mb_load64(&st->game.last_update_wall_ns);
  info->client_index = c->index;
  if (c->slot_region >= 0) {
    info->slot_size = c->regions[c->slot_region].slot_size;
    info->slot_count = c->regions[c->slot_region].slot_count;
  }
  info->slots_held = c->pmap_count;
  rc = mb__state_read_msg(st, info->message);
  return rc < 0 ? rc : 0;
}

static mb_au64 *mb__counter(mb_client_t *c, int counter, mb_au64 **share) {
  switch (counter) {
  case MB_COUNTER_PLAYERS:
    *share = &c->entry->added_players;
    return &c->st->game.total_players;
  case MB_COUNTER_NPCS:
    *share = &c->entry->added_npcs;
    return &c->st->game.total_npcs;
  default:
    return NULL;
  }
}

/*
 * Counters (counters.h has the protocol and its crash points). A counter's truth is its base
 * plus every entry's share: what this client adds goes to its entry's share first (one atomic
 * add: the truth), then to the shown total; a kill between the two leaves the total off until
 * the broker's next reconcile. The share is kept when a restart takes the entry over and
 * folded into the base when the entry is freed; persist saves the base only, since each game
 * server counts its players again when it attaches to a restarted broker.
 */

/* Would adding delta to v leave 0..UINT64_MAX? */
static int mb__counter_out(uint64_t v, int64_t delta) {
  return delta < 0 ? v < (uint64_t)0 - (uint64_t)delta : UINT64_MAX - v < (uint64_t)delta;
}

int mb_counter_set(mb_client_t *c, int counter, uint64_t value) {
  mb_au64 *v, *share;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if ((v = mb__counter(c, counter, &share)) == NULL)
    return mb__errorf(MB_EINVAL, 0, "no counter %d", counter);
  mb__counter_set(c->st, c->max_clients, counter == MB_COUNTER_NPCS, value);
  mb_store64(&c->st->game.last_update_wall_ns, mb_os_wall_ns());
  return 0;
}

int mb_counter_add(mb_client_t *c, int counter, int64_t delta, uint64_t *result) {
  mb_au64 *v, *share;
  uint64_t old;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if ((v = mb__counter(c, counter, &share)) == NULL)
    return mb__errorf(MB_EINVAL, 0, "no counter %d", counter);
  /* The range: against the shown value, and if that fails, against the truth (the shown one
   * may lag it for a tick). Not atomic with the adds: two clients taking the counter below 0
   * at the same instant both pass (a game that removes what it never added). */
  old = mb_load64(v);
  if (mb__counter_out(old, delta))
    old = mb__counter_truth(c->st, c->max_clients, counter == MB_COUNTER_NPCS);
  if (mb__counter_out(old, delta))
    return mb__errorf(MB_ERANGE, 0, "counter %d is %llu: adding %lld leaves its range", counter,
                      (unsigned long long)old, (long long)delta);
  if (mb_load64(&c->entry->word) != c->word) /* the entry is no longer this attachment's */
    share = mb__counter_base(c->st, counter == MB_COUNTER_NPCS);
  mb_add64(share, (uint64_t)delta);   /* the truth */
  old = mb_add64(v, (uint64_t)delta); /* what is shown */
  mb_store64(&c->st->game.last_update_wall_ns, mb_os_wall_ns());
  if (result)
    *result = old + (uint64_t)delta;
  return 0;
}

int mb_set_message(mb_client_t *c, const char *text) {
  size_t n, bad;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (text == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_set_message: no text");
  /* The pipe's set-message refuses invalid UTF-8 (the same rule, mb__utf8_invalid): so does
   * this, before anything is written, so the old message stays. */
  n = strlen(text);
  if ((bad = mb__utf8_invalid(text, n, 0)) < n)
    return mb__errorf(MB_EINVAL, 0,
                      "mb_set_message: text is not valid UTF-8 (byte 0x%02x at offset %zu)",
                      (unsigned)(unsigned char)text[bad], bad);
  if ((rc = mb__state_write_msg(c->st, text)) != 0)
    return rc;
  mb_store64(&c->st->game.last_update_wall_ns, mb_os_wall_ns());
  return 0;
}

/* ---- regions ------------------------------------------------------------------------------ */

/* Map region i (once) into c->regions[i]; on Windows also commit a lazy region's slot table
 * in this view (the broker committed it; each view commits for itself). */
/* The descriptor is checked (mb__region_desc_check: MB_ECORRUPT if any group member wrote
 * an impossible value into it) on a private copy, which gives every size used here; the
 * section is mapped whole, as the OS reports its size, and unmapped with that size. */
int mb__region_map(mb_client_t *c, int i) {
  mb_region_desc_t d;
  mb_region_map_t *r = &c->regions[i];
  char name[MB_OS_NAME_MAX + 1];
  int lazy, rc;
  void *base;
  if (r->base != NULL)
    return 0;
  memcpy(&d, &c->st->regions[i], offsetof(mb_region_desc_t, committed));
  if ((rc = mb__region_desc_check(&d, 0)) != 0)
    return rc;
  lazy = (d.flags & MB_REGION_LAZY) != 0;
  if ((rc = mb__object_name(name, sizeof name, c->instance, d.name)) != 0)
    return rc;
  /* A region in large pages is another object on Linux (hugetlbfs): open it as such. */
  if ((rc = mb_os_section_open(&r->sec, name,
                               c->sec_flags | (lazy ? MB_OS_SEC_RESERVE : 0) |
                                   ((d.flags & MB_REGION_LARGE_PAGES) ? MB_OS_SEC_LARGE_PAGES : 0),
                               1)) != 0) {
    if (d.flags & MB_REGION_LARGE_PAGES) {
      /* Each process finds the hugetlbfs mount itself: say which one this one tried. */
      char why[512];
      snprintf(why, sizeof why, "%s", mb_last_error());
      return mb__errorf(rc, 0,
                        "region '%s' is in large pages and this process cannot open it (%s); it "
                        "must find the broker's hugetlbfs mount: give it the broker's "
                        "MEMBROKER_HUGETLBFS (the broker logs the mount at start)",
                        d.name, why);
    }
    return rc;
  }
  if (r->sec.size < d.section_size) {
    mb_os_section_close(&r->sec);
    return mb__errorf(MB_ECORRUPT, 0, "region '%s' holds %llu bytes, its descriptor says %llu",
                      d.name, (unsigned long long)r->sec.size, (unsigned long long)d.section_size);
  }
  if ((rc = mb_os_section_map(&r->sec, r->sec.size, 1, &base)) != 0) {
    mb_os_section_close(&r->sec);
    return rc;
  }
  if (lazy && d.slot_size != 0 &&
      (rc = mb_os_section_commit(&r->sec, base, d.size, d.section_size - d.size)) != 0) {
    mb_os_section_unmap(base, r->sec.size);
    mb_os_section_close(&r->sec);
    return rc;
  }
  r->base = base;
  r->state = c->st;
  r->holder = 0;
  r->max_owner = MB_CLIENTS_MAX;
  /* The geometry from the checked copy into r's private fields (slots.c reads only those),
   * the whole view as mapped; then r->desc is the live descriptor, for statistics only. */
  if ((rc = mb__region_bind(r, &d, r->sec.size)) != 0) {
    mb_os_section_unmap(base, r->sec.size);
    mb_os_section_close(&r->sec);
    memset(r, 0, sizeof *r);
    return rc;
  }
  r->desc = &c->st->regions[i];
  /* The pages this view commits itself, so a claim commits each once (regions.h:
   * view_committed): only where views commit for themselves and never lose a committed page.
   * Without the memory, claims commit in the view every time, as they did: no error. */
  if (lazy && r->slot_size != 0 && mb_os_mem_config()->view_commit &&
      !mb_os_mem_config()->shared_decommit) {
    uint64_t words = (r->size / r->page_size + 31) / 32;
    if (words <= SIZE_MAX / sizeof *r->view_committed)
      r->view_committed = calloc((size_t)words, sizeof *r->view_committed);
  }
  return 0;
}

void mb__regions_unmap(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_REGIONS_MAX; i++) {
    mb_region_map_t *r = &c->regions[i];
    if (r->base == NULL)
      continue;
    mb_os_section_unmap(r->base, r->mapped);
    mb_os_section_close(&r->sec);
    free(r->view_committed);
    memset(r, 0, sizeof *r);
  }
}

int mb_region(mb_client_t *c, const char *name, void **base, uint64_t *size) {
  uint32_t i;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (name == NULL || base == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_region: name and base are required");
  for (i = 0; i < c->region_count; i++) {
    if (strncmp(c->st->regions[i].name, name, MB_REGION_NAME_MAX) != 0)
      continue;
    if ((rc = mb__region_map(c, (int)i)) != 0)
      return rc;
    *base = c->regions[i].base;
    if (size)
      *size = c->regions[i].size;
    return 0;
  }
  return mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no region '%s'", c->instance,
                    name);
}
