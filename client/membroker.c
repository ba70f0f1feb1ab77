/*
 * membroker.c - the client library (membroker.h): attach to the broker's control block,
 * keep an entry in its client table, the shared counters and message, regions and player
 * slots.
 *
 * The client table protocol is in layout.h (every state change one CAS). The library holds
 * no lock of its own: slots are claimed lock-free (slots.c); the player map below is private
 * to the mb_client_t, which one thread uses at a time. The heartbeat thread touches only the
 * entry's heartbeat word, and only while the entry is this process's.
 */
#include "membroker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "error.h"
#include "gmap.h"
#include "layout.h"
#include "os.h"
#include "pool.h"
#include "private.h"
#include "slots.h"

#define MB__PUBLISH_NS (1000u * 1000000u) /* private memory: thread-safe figures, once a second */
#define MB__BROKER_CHECK_NS (1000u * 1000000u)  /* how often mb_tick asks the OS of the broker */
#define MB__LOG_REPEAT_NS (10000ull * 1000000u) /* one repeated log message in 10 s */
#define MB__CLAIMED_WAIT_MS 200 /* how long attach waits for an entry of its name held CLAIMED */

MB_LAYOUT_ASSERT((int)MB_SERVER_STOPPED == (int)MB_STATUS_STOPPED &&
                     (int)MB_SERVER_RUNNING == (int)MB_STATUS_RUNNING &&
                     (int)MB_SERVER_SHUTTING_DOWN == (int)MB_STATUS_SHUTTING_DOWN &&
                     (int)MB_SERVER_DRAINING == (int)MB_STATUS_DRAINING,
                 "public server status values match the layout");
MB_LAYOUT_ASSERT(MB_MESSAGE_MAX == MB_STATUS_MSG_MAX, "message size");

/* Player id -> slot index + 1 (0: empty), open addressing with linear probing. */
typedef struct mb__pmap_entry_s {
  uint64_t player;
  uint64_t slot1;
} mb__pmap_entry_t;

struct mb_client_s {
  char instance[MB_INSTANCE_MAX];
  char name[MB_CLIENT_NAME_MAX];
  mb_attach_options_t opts;
  int sec_flags; /* MB_OS_SEC_GLOBAL or 0: the namespace where the attach found the broker */
  mb_os_procid_t self;

  /* the attachment (st == NULL: detached) */
  mb_os_section_t state_sec;
  mb_state_t *st;
  mb_client_entry_t *entry;
  uint32_t index;
  uint32_t seq;  /* this attachment's sequence number (MB_CLIENT_WORD) */
  uint64_t word; /* the entry word while it is ours: {ATTACHED, seq, pid} */
  uint64_t generation;
  mb_os_procid_t broker;
  uint64_t broker_checked_ns;
  /* The block's counts, copied once at attach after mb__state_check: any member of the
   * game servers' group can write the block, so they are never read from it again. */
  uint32_t max_clients, region_count, pool_count;
  uint64_t pool_len[MB_POOLS_MAX];         /* bytes mapped of each pool (for the unmap) */
  mb_region_map_t regions[MB_REGIONS_MAX]; /* base == NULL until mapped */
  mb_pool_map_t pools_map[MB_POOLS_MAX];   /* base == NULL until a handle maps it */
  struct mb_pool_s *pools[MB_POOLS_MAX];   /* handles from mb_pool_open, by pool index */
  struct mb__tcache_s *tcaches;            /* every thread's caches of these pools */
  uint64_t attach_seq;                     /* +1 at each attach: handles remap after it */
  uint64_t pool_holder;       /* MB_POOL_HOLDER of this attachment: its pool intent records */
  int slot_region;            /* index of the slotted region, -1 if none */
  struct mb_map_s *maps_open; /* handles from mb_map_open not closed yet */

  /* the player map */
  mb__pmap_entry_t *pmap;
  size_t pmap_cap; /* power of two, or 0 */
  size_t pmap_count;

  /* private pools and heaps shown in the entry's memory row (tracked[i] is row entry i) */
  mb_os_mutex_t mem_lock;    /* tracked[] and the row: the app's thread and the heartbeat's */
  uint64_t mem_published_ns; /* the last once-a-second publication (monotonic, mem_lock) */
  struct {
    int kind; /* MB_MEM_LPOOL, MB_MEM_HEAP, or MB_MEM_NONE: unused */
    int threadsafe;
    void *obj;
  } tracked[MB_TRACK_MAX];

  /* the heartbeat thread */
  mb_os_thread_t hb;
  int hb_running;
  mb_au32 hb_stop;

  /* rate limit of log messages */
  char last_log[512];
  uint64_t last_log_ns;
  unsigned long log_suppressed;
};

static void mb__tcaches_release(mb_client_t *c, const mb_pool_t *pool); /* shared pools */
static void mb__maps_close_all(mb_client_t *c);                         /* maps */

/* Attachments of this process, numbered (the entry word tells them apart). */
static mb_au32 mb__seq_next;

/* ---- logging ------------------------------------------------------------------------------ */

/*
 * Hand a message to opts.log. The same text again within 10 s is counted, not repeated; the
 * count is told with that same text once it may be said again, or on its own line before a
 * different message.
 */
static void mb__clog(mb_client_t *c, int level, const char *fmt, ...) MB_PRINTF(3, 4);
static void mb__clog(mb_client_t *c, int level, const char *fmt, ...) {
  char msg[512], more[sizeof msg + 64];
  uint64_t now = mb_os_mono_ns();
  int same;
  va_list ap;
  if (c->opts.log == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  same = c->last_log_ns != 0 && strcmp(msg, c->last_log) == 0;
  if (same && now - c->last_log_ns < MB__LOG_REPEAT_NS) {
    c->log_suppressed++;
    return;
  }
  if (same && c->log_suppressed) {
    snprintf(more, sizeof more, "%s (%lu times more since it was last said)", msg,
             c->log_suppressed);
    c->opts.log(c->opts.log_user, level, more);
  } else {
    if (c->log_suppressed) {
      snprintf(more, sizeof more, "membroker: the last message came %lu times more",
               c->log_suppressed);
      c->opts.log(c->opts.log_user, level, more);
    }
    c->opts.log(c->opts.log_user, level, msg);
  }
  memcpy(c->last_log, msg, sizeof msg);
  c->last_log_ns = now;
  c->log_suppressed = 0;
}

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

static void mb__pmap_clear(mb_client_t *c) {
  free(c->pmap);
  c->pmap = NULL;
  c->pmap_cap = c->pmap_count = 0;
}

/* ---- heartbeat ---------------------------------------------------------------------------- */

/* "stopped" or "shutting down" if the block's broker says so (a restarted broker has a block
 * of its own, so this is how a client sees it went), else NULL. */
static const char *mb__stopping(const mb_state_t *st) {
  uint32_t status = mb_load32(&st->game.server_status);
  return status == MB_STATUS_STOPPED         ? "stopped"
         : status == MB_STATUS_SHUTTING_DOWN ? "shutting down"
                                             : NULL;
}

/* Whether the entry is still this attachment's: the whole word, so neither a reap nor a
 * takeover by another process (or another attachment of this one) passes. */
static int mb__entry_mine(const mb_client_t *c) {
  return mb_load64(&c->entry->word) == c->word;
}

static void mb__mem_publish(mb_client_t *c, int all);

static void mb__hb_main(void *arg) {
  mb_client_t *c = arg;
  uint64_t period = (uint64_t)c->opts.heartbeat_ms * 1000000u, next = mb_os_mono_ns() + period;
  while (!mb_load32(&c->hb_stop)) {
    uint64_t now = mb_os_mono_ns();
    if (now >= next) {
      if (mb__entry_mine(c))
        mb_store64(&c->entry->heartbeat_ns, now);
      next = now + period;
    }
    mb__mem_publish(c, 0); /* once a second, shared with mb_tick */
    mb_os_sleep_ms(c->opts.heartbeat_ms < 20 ? c->opts.heartbeat_ms : 20);
  }
}

static void mb__hb_stop(mb_client_t *c) {
  if (!c->hb_running)
    return;
  mb_store32(&c->hb_stop, 1);
  mb_os_thread_join(&c->hb);
  c->hb_running = 0;
}

/* ---- attach ------------------------------------------------------------------------------- */

void mb_attach_options_init(mb_attach_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->size = (uint32_t)sizeof *opts;
}

/* Map region i (once) into c->regions[i]; on Windows also commit a lazy region's slot table
 * in this view (the broker committed it; each view commits for itself). */
/* The descriptor is checked (mb__region_desc_check: MB_ECORRUPT if any group member wrote
 * an impossible value into it) on a private copy, which gives every size used here; the
 * section is mapped whole, as the OS reports its size, and unmapped with that size. */
static int mb__region_map(mb_client_t *c, int i) {
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
  if ((rc = mb_os_section_open(&r->sec, name, c->sec_flags | (lazy ? MB_OS_SEC_RESERVE : 0), 1)) !=
      0)
    return rc;
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
  return 0;
}

static void mb__regions_unmap(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_REGIONS_MAX; i++) {
    mb_region_map_t *r = &c->regions[i];
    if (r->base == NULL)
      continue;
    mb_os_section_unmap(r->base, r->mapped);
    mb_os_section_close(&r->sec);
    memset(r, 0, sizeof *r);
  }
}

/* Unmap the pools; their handles stay and map again on next use (after a reattach). */
static void mb__pools_unmap(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_POOLS_MAX; i++) {
    mb_pool_map_t *p = &c->pools_map[i];
    if (p->base == NULL)
      continue;
    mb__pool_intent_release(p, p->rec, c->pool_holder);
    mb_os_section_unmap(p->base, c->pool_len[i]);
    mb_os_section_close(&p->sec);
    memset(p, 0, sizeof *p);
  }
}

/* Free the pool handles (detach, close). */
static void mb__pools_free(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_POOLS_MAX; i++) {
    free(c->pools[i]);
    c->pools[i] = NULL;
  }
}

/* Undo the mappings of an attachment (not its table entry). */
static void mb__unmap(mb_client_t *c) {
  mb__hb_stop(c);
  mb__pools_unmap(c);
  mb__regions_unmap(c);
  mb__pmap_clear(c);
  if (c->st != NULL) {
    mb_os_section_unmap(c->st, c->state_sec.size);
    mb_os_section_close(&c->state_sec);
  }
  c->st = NULL;
  c->entry = NULL;
  c->slot_region = -1;
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
static void mb__drop_foreign_slots(mb_client_t *c) {
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
static int mb__adopt_slots(mb_client_t *c) {
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

/* The broker's process still runs: 1, 0, or < 0 if the OS does not say. */
static int mb__broker_alive(mb_client_t *c) {
  return mb_os_proc_alive(&c->broker);
}

/*
 * Take an entry in the table: take over the one of our name if its process is gone (DEAD, or
 * ATTACHED by a process the OS says exited), else claim a FREE one. Each is one CAS from the
 * exact word judged (layout.h), so a holder that changed meanwhile makes it fail and we look
 * again. *index receives the entry and *taken_over whether it was ours before; it is left
 * {CLAIMED, c->seq, self}.
 */
static int mb__claim_entry(mb_client_t *c, uint32_t *index, int *taken_over) {
  mb_state_t *st = c->st;
  uint32_t i, max = c->max_clients, free_at;
  uint64_t deadline = 0, mine = MB_CLIENT_WORD(MB_CLIENT_CLAIMED, c->seq, c->self.pid);
  char name[MB_CLIENT_NAME_MAX];
  for (;;) {
    int seen_claimed = 0;
    free_at = UINT32_MAX;
    for (i = 0; i < max; i++) {
      mb_client_entry_t *e = &st->clients[i];
      uint64_t w = mb_load64(&e->word);
      uint32_t s = MB_CLIENT_WORD_STATE(w);
      if (s == MB_CLIENT_FREE) {
        if (free_at == UINT32_MAX)
          free_at = i;
        continue;
      }
      mb__client_name_get(e, name);
      if (strcmp(name, c->name) != 0)
        continue;
      if (s == MB_CLIENT_CLAIMED) {
        seen_claimed = 1; /* the broker or another process holds it for a moment */
        continue;
      }
      if (s == MB_CLIENT_ATTACHED) {
        mb_os_procid_t old;
        int alive;
        old.pid = MB_CLIENT_WORD_PID(w);
        old.start_time = mb_load64(&e->start_time);
        if (mb_load64(&e->word) != w) { /* the start time may be another holder's */
          seen_claimed = 1;
          continue;
        }
        alive = mb_os_proc_alive(&old);
        if (alive == 1)
          return mb__errorf(MB_EEXIST, 0,
                            "client name '%s' is attached by process %u, which is running", c->name,
                            (unsigned)old.pid);
        if (alive < 0)
          return mb__errorf(MB_EEXIST, 0,
                            "client name '%s' is attached by process %u, and the OS does not "
                            "say whether it still runs",
                            c->name, (unsigned)old.pid);
      }
      if (mb_cas64(&e->word, &w, mine)) {
        *index = i;
        *taken_over = 1;
        return 0;
      }
      seen_claimed = 1; /* it changed under us: look again */
    }
    if (!seen_claimed) {
      for (i = free_at; i < max; i++) {
        uint64_t w = MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0);
        if (mb_cas64(&st->clients[i].word, &w, mine)) {
          *index = i;
          *taken_over = 0;
          return 0;
        }
      }
      return mb__errorf(MB_EFULL, 0, "the broker's client table is full (%u entries)",
                        (unsigned)max);
    }
    if (deadline == 0)
      deadline = mb_os_mono_ns() + (uint64_t)MB__CLAIMED_WAIT_MS * 1000000u;
    else if (mb_os_mono_ns() > deadline)
      return mb__errorf(MB_EBUSY, 0, "the entry of client '%s' stays claimed by another process",
                        c->name);
    mb_os_sleep_ms(1);
  }
}

/*
 * After a fresh claim has written our name: is another entry of the same name being attached
 * at this moment? Both sides write their name, fence, then look, so at least one of two
 * simultaneous attaches sees the other and backs off.
 */
static int mb__name_taken_elsewhere(mb_client_t *c) {
  uint32_t i;
  char name[MB_CLIENT_NAME_MAX];
  mb_fence();
  for (i = 0; i < c->max_clients; i++) {
    mb_client_entry_t *e = &c->st->clients[i];
    if (i == c->index || MB_CLIENT_WORD_STATE(mb_load64(&e->word)) == MB_CLIENT_FREE)
      continue;
    mb__client_name_get(e, name);
    if (strcmp(name, c->name) == 0)
      return 1;
  }
  return 0;
}

/* One attempt to attach in the namespace c->sec_flags; on failure nothing is left mapped or
 * claimed. *absent is set to 1 (and the result is MB_ENOENT) when there is no control block
 * there at all. */
static void mb__mem_reset(mb_client_t *c);

static int mb__attach_in(mb_client_t *c, int *absent) {
  char obj[MB_OS_NAME_MAX + 1];
  mb_state_t *st;
  mb_client_entry_t *e;
  uint32_t index = 0;
  const char *why;
  int rc, taken_over = 0, i, clashes = 0;
  uint64_t now;

  *absent = 0;
  if ((rc = mb__object_name(obj, sizeof obj, c->instance, NULL)) != 0)
    return rc;
  rc = mb_os_section_open(&c->state_sec, obj, c->sec_flags, 1);
  if (rc == MB_ENOENT)
    *absent = 1;
  if (rc != 0)
    return rc;
  if (c->state_sec.size < 64) {
    mb_os_section_close(&c->state_sec);
    return mb__errorf(MB_EBADMAGIC, 0, "'%s' is %llu bytes: not a control block", obj,
                      (unsigned long long)c->state_sec.size);
  }
  if ((rc = mb_os_section_map(&c->state_sec, 0, 1, (void **)&st)) != 0) {
    mb_os_section_close(&c->state_sec);
    return rc;
  }
  c->st = st;
  if ((rc = mb__state_check(st, c->state_sec.size)) != 0)
    goto fail;
  /* The counts, once, checked again on the copy (the block may have changed since). */
  c->max_clients = st->max_clients;
  c->region_count = st->region_count;
  c->pool_count = st->pool_count;
  if (c->max_clients == 0 || c->max_clients > MB_CLIENTS_MAX || c->region_count > MB_REGIONS_MAX ||
      c->pool_count > MB_POOLS_MAX) {
    rc = mb__errorf(MB_ECORRUPT, 0, "control block: max_clients %u, region_count %u, pool_count %u",
                    (unsigned)c->max_clients, (unsigned)c->region_count, (unsigned)c->pool_count);
    goto fail;
  }
  c->broker.pid = st->broker_pid;
  c->broker.start_time = st->broker_start_time;
  c->generation = mb_load64(&st->generation);
  if ((why = mb__stopping(st)) != NULL) {
    rc = mb__errorf(MB_ENOTRUNNING, 0, "the broker of instance '%s' is %s", c->instance, why);
    goto fail;
  }
  if (mb__broker_alive(c) == 0) {
    rc = mb__errorf(MB_ENOTRUNNING, 0, "the broker of instance '%s' (pid %u) is gone", c->instance,
                    (unsigned)c->broker.pid);
    goto fail;
  }
  c->slot_region = -1;
  for (i = 0; i < (int)c->region_count; i++)
    if (st->regions[i].slot_size != 0) {
      c->slot_region = i;
      break;
    }
  /* Map the slotted region before taking an entry: a failure here leaves nothing claimed. */
  if (c->slot_region >= 0 && (rc = mb__region_map(c, c->slot_region)) != 0)
    goto fail;

  /* Numbered per process and mixed with its start time, so a later process that happens to
   * get the same pid does not repeat an old word. */
  c->seq =
      (mb_add32(&mb__seq_next, 1) + 1 + (uint32_t)c->self.start_time * 2654435761u) & 0xFFFFFFu;
  for (;;) {
    if ((rc = mb__claim_entry(c, &index, &taken_over)) != 0)
      goto fail;
    e = &st->clients[index];
    c->index = index;
    c->entry = e;
    now = mb_os_mono_ns();
    mb_store64(&e->start_time, c->self.start_time);
    mb_store64(&e->attach_wall_ns, mb_os_wall_ns());
    mb_store64(&e->heartbeat_ns, now);
    mb_store64(&e->dead_since_ns, 0);
    mb_store32(&e->dead_reason, MB_DEAD_NONE);
    if (taken_over) {
      mb_add32(&e->takeovers, 1);
      break;
    }
    mb_store64(&e->slots_held, 0);
    mb_store32(&e->takeovers, 0);
    mb__client_name_set(e, c->name);
    if (!mb__name_taken_elsewhere(c))
      break;
    /* Another process attaches under this name right now: step back, let it finish, and
     * look again (we then find its entry: live, or ours to take over). */
    mb__client_free(st, index, NULL, 0, NULL, 0, NULL);
    if (++clashes > 50) {
      rc = mb__errorf(MB_EBUSY, 0, "another process keeps attaching as '%s' at the same time",
                      c->name);
      goto fail;
    }
    mb_os_sleep_ms(1 + (unsigned)(mb_os_mono_ns() % 4));
  }
  c->word = MB_CLIENT_WORD(MB_CLIENT_ATTACHED, c->seq, c->self.pid);
  if (!taken_over && c->slot_region >= 0)
    mb__drop_foreign_slots(c);
  if (taken_over && c->slot_region >= 0 && (rc = mb__adopt_slots(c)) != 0) {
    /* Give the entry back as it was found: dead, its slots kept for the grace period. */
    mb_store64(&e->dead_since_ns, mb_os_mono_ns());
    mb_store32(&e->dead_reason, MB_DEAD_ABANDONED);
    mb_store64(&e->word, MB_CLIENT_WORD(MB_CLIENT_DEAD, c->seq, c->self.pid));
    goto fail;
  }
  {
    uint64_t claimed = MB_CLIENT_WORD(MB_CLIENT_CLAIMED, c->seq, c->self.pid);
    if (!mb_cas64(&e->word, &claimed, c->word)) {
      /* The broker took it for abandoned (we were stopped for seconds): it is DEAD with our
       * pid now, and the next attempt takes it over. */
      rc = mb__errorf(MB_EBUSY, 0, "the broker reclaimed entry %u while '%s' attached",
                      (unsigned)index, c->name);
      goto fail;
    }
  }
  c->broker_checked_ns = now;
  c->attach_seq++;
  c->pool_holder = MB_POOL_HOLDER(index + 1, c->seq, c->self.pid);
  mb__mem_reset(c);
  if (taken_over)
    mb__clog(c, MB_CLIENT_LOG_INFO, "membroker: '%s' took back its entry %u with %llu slots",
             c->name, (unsigned)index, (unsigned long long)mb_load64(&e->slots_held));
  return 0;

fail:
  mb__unmap(c);
  return rc;
}

/*
 * One attempt to attach, in the namespaces opts.flags allows. With neither MB_ATTACH_GLOBAL nor
 * MB_ATTACH_LOCAL, where the OS has two (mem_config()->sec_namespaces: Windows), Global\ (a
 * broker run as a service) is tried first, then Local\ (a console broker of this session);
 * c->sec_flags keeps the namespace where the control block was found, and every later object
 * (regions, pools, maps) is opened there. A block that exists but cannot be used (access
 * denied, bad magic, other layout, table full, name taken) ends the search with that error:
 * it is the answer, never masked by the other namespace. A block whose broker is stopping or
 * gone (MB_ENOTRUNNING) lets the search go on, since a broker may run in the other namespace;
 * if none does, that first answer stands. If there is no block anywhere: MB_ENOTRUNNING
 * naming every name tried.
 */
static int mb__attach_once(mb_client_t *c) {
  int spaces[2], nspaces = 0, i, rc, absent, first_rc = 0;
  char obj[MB_OS_NAME_MAX + 1], tried[2][MB_OS_NAME_MAX + 16], first_msg[512];

  if (c->opts.flags & MB_ATTACH_GLOBAL)
    spaces[nspaces++] = MB_OS_SEC_GLOBAL;
  else if ((c->opts.flags & MB_ATTACH_LOCAL) || !mb_os_mem_config()->sec_namespaces)
    spaces[nspaces++] = 0;
  else {
    spaces[nspaces++] = MB_OS_SEC_GLOBAL;
    spaces[nspaces++] = 0;
  }
  if ((rc = mb__object_name(obj, sizeof obj, c->instance, NULL)) != 0)
    return rc;
  for (i = 0; i < nspaces; i++) {
    c->sec_flags = spaces[i];
    if ((rc = mb_os_section_os_name(obj, spaces[i], tried[i], sizeof tried[i])) != 0)
      return rc;
    rc = mb__attach_in(c, &absent);
    if (rc == 0)
      return 0;
    if (absent)
      continue;
    if (rc != MB_ENOTRUNNING)
      return rc;
    if (first_rc == 0) {
      first_rc = rc;
      snprintf(first_msg, sizeof first_msg, "%s", mb_last_error());
    }
  }
  c->sec_flags = spaces[0];
  if (first_rc != 0) {
    /* That answer again, without the ": <sentence>" mb__errorf appends once more. */
    const char *tail = mb_strerror(first_rc);
    size_t n = strlen(first_msg), k = strlen(tail);
    if (n >= k + 2 && strcmp(first_msg + n - k, tail) == 0 && first_msg[n - k - 2] == ':')
      first_msg[n - k - 2] = '\0';
    return mb__errorf(first_rc, 0, "%s", first_msg);
  }
  if (nspaces == 2)
    return mb__errorf(MB_ENOTRUNNING, 0, "no broker runs for instance '%s' (tried %s and %s)",
                      c->instance, tried[0], tried[1]);
  return mb__errorf(MB_ENOTRUNNING, 0, "no broker runs for instance '%s' (no control block %s%s)",
                    c->instance, tried[0],
                    !mb_os_mem_config()->sec_namespaces  ? ""
                    : (c->opts.flags & MB_ATTACH_GLOBAL) ? "; MB_ATTACH_GLOBAL looks nowhere else"
                                                         : "; MB_ATTACH_LOCAL looks nowhere else");
}

/* Attach with retries while the broker is not running, up to opts.timeout_ms. */
static int mb__attach_retry(mb_client_t *c) {
  uint64_t start = mb_os_mono_ns(), limit = (uint64_t)c->opts.timeout_ms * 1000000u;
  unsigned delay = 10, tries = 0;
  int rc;
  for (;;) {
    rc = mb__attach_once(c);
    tries++;
    uint64_t spent;
    if (rc != MB_ENOTRUNNING && rc != MB_EBUSY)
      break;
    if ((spent = mb_os_mono_ns() - start) >= limit)
      break;
    mb__clog(c, MB_CLIENT_LOG_WARN, "membroker: attach '%s' to instance '%s': %s; retrying",
             c->name, c->instance, mb_last_error());
    /* Back off, but try once more at the deadline itself. */
    if ((uint64_t)delay * 1000000u > limit - spent)
      mb_os_sleep_ms((unsigned)((limit - spent + 999999u) / 1000000u));
    else
      mb_os_sleep_ms(delay);
    delay = delay * 2 > 1000 ? 1000 : delay * 2;
  }
  if (rc != 0)
    return rc;
  if (c->opts.heartbeat_ms != 0) {
    mb_store32(&c->hb_stop, 0);
    if ((rc = mb_os_thread_start(&c->hb, mb__hb_main, c)) != 0) {
      mb__clog(c, MB_CLIENT_LOG_WARN, "membroker: no heartbeat thread: %s; call mb_tick",
               mb_last_error());
      rc = 0; /* attached all the same: mb_tick still beats */
    } else {
      c->hb_running = 1;
    }
  }
  if (tries > 1)
    mb__clog(c, MB_CLIENT_LOG_INFO, "membroker: '%s' attached to instance '%s' (generation %llu)",
             c->name, c->instance, (unsigned long long)c->generation);
  return 0;
}

/* Options must come from mb_attach_options_init (their size tells the version). */
static int mb__check_opts(const mb_attach_options_t *opts) {
  if (opts != NULL && (opts->size < sizeof(uint32_t) * 4 || opts->size > sizeof *opts))
    return mb__errorf(MB_EINVAL, 0,
                      "attach options: size %u, expected %u (call "
                      "mb_attach_options_init)",
                      (unsigned)opts->size, (unsigned)sizeof *opts);
  if (opts != NULL && (opts->flags & MB_ATTACH_GLOBAL) && (opts->flags & MB_ATTACH_LOCAL))
    return mb__errorf(MB_EINVAL, 0,
                      "attach options: MB_ATTACH_GLOBAL and MB_ATTACH_LOCAL exclude each other");
  if (opts != NULL && (opts->flags & ~(uint32_t)(MB_ATTACH_GLOBAL | MB_ATTACH_LOCAL)) != 0)
    return mb__errorf(MB_EINVAL, 0, "attach options: unknown flags 0x%x",
                      (unsigned)(opts->flags & ~(uint32_t)(MB_ATTACH_GLOBAL | MB_ATTACH_LOCAL)));
  return 0;
}

/* Take checked options (NULL: keep the current ones). */
static void mb__apply_opts(mb_client_t *c, const mb_attach_options_t *opts) {
  if (opts == NULL)
    return;
  memcpy(&c->opts, opts, opts->size);
  c->opts.size = (uint32_t)sizeof c->opts;
  /* c->sec_flags is chosen by each attach (mb__attach_once): where the broker is found. */
}

int mb_attach(const char *instance, const char *name, const mb_attach_options_t *opts,
              mb_client_t **client) {
  mb_client_t *c;
  int rc;
  if (client == NULL || name == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_attach: client and name are required");
  *client = NULL;
  if (instance == NULL)
    instance = "default";
  if (!mb__name_ok(instance, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    return mb__errorf(MB_EINVAL, 0, "instance '%s': 1 to %d characters of A-Z a-z 0-9 . _ -",
                      instance, MB_INSTANCE_MAX - 1);
  if (!mb__name_ok(name, MB_CLIENT_NAME_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    return mb__errorf(MB_EINVAL, 0, "client name '%s': 1 to %d characters of A-Z a-z 0-9 . _ -",
                      name, MB_CLIENT_NAME_MAX - 1);
  if ((c = calloc(1, sizeof *c)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "mb_attach");
  if ((rc = mb_os_mutex_init(&c->mem_lock)) != 0) {
    free(c);
    return rc;
  }
  snprintf(c->instance, sizeof c->instance, "%s", instance);
  snprintf(c->name, sizeof c->name, "%s", name);
  mb_attach_options_init(&c->opts);
  c->slot_region = -1;
  mb_os_proc_self(&c->self);
  if ((rc = mb__check_opts(opts)) != 0 ||
      (mb__apply_opts(c, opts), rc = mb__attach_retry(c)) != 0) {
    mb_os_mutex_destroy(&c->mem_lock);
    free(c);
    return rc;
  }
  *client = c;
  return 0;
}

/*
 * Leave the table: {ATTACHED, ours} -> {CLAIMED, ours}, its slots are freed and it becomes
 * FREE. MB_ESTALE if it is no longer ours (reaped, taken over, broker restarted): then
 * nothing in shared memory is touched.
 */
static int mb__pool_map_index(mb_client_t *c, uint32_t i, int release_cached);

/* The entry, which we hold CLAIMED, becomes DEAD (reason CLOSED) with what it holds, for
 * the grace period: the broker frees it then, or an attach under its name takes it over. */
static void mb__claimed_to_dead(mb_client_t *c) {
  mb_store64(&c->entry->dead_since_ns, mb_os_mono_ns());
  mb_store32(&c->entry->dead_reason, MB_DEAD_CLOSED);
  mb_store64(&c->entry->word, MB_CLIENT_WORD_AS(c->word, MB_CLIENT_DEAD));
}

static int mb__leave(mb_client_t *c) {
  uint64_t w = c->word;
  uint32_t i;
  int unmapped = 0;
  if (c->st == NULL)
    return 0;
  if (!mb_cas64(&c->entry->word, &w, MB_CLIENT_WORD_AS(c->word, MB_CLIENT_CLAIMED)))
    return mb__errorf(MB_ESTALE, 0,
                      "client '%s' was no longer attached (reaped by the broker, "
                      "or the broker restarted)",
                      c->name);
  /* Every pool must be mapped to give back what the entry holds in it (a restart that never
   * opened a pool still holds its predecessor's objects there). One that cannot be mapped
   * leaves the entry DEAD instead, for the broker (which maps them all) to free. */
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < c->pool_count; i++)
    if (mb__pool_map_index(c, i, 0) != 0) /* mb__client_free gives back cached ones too */
      unmapped = 1;
  mb_os_mutex_unlock(&c->mem_lock);
  if (unmapped) {
    mb__claimed_to_dead(c);
    return 0;
  }
  mb__counter_fold(c->st, c->index); /* what it added stays counted, in the base */
  mb__client_free(c->st, c->index, c->regions, (int)c->region_count, c->pools_map, MB_POOLS_MAX,
                  NULL);
  return 0;
}

/*
 * Let the entry go, keeping it: {ATTACHED, ours} -> {CLAIMED, ours} -> DEAD (reason CLOSED)
 * with its slots, for the grace period. An attach under the same name - from another process
 * or this one - takes it over. Nothing happens if it is no longer ours.
 */
static void mb__hand_off(mb_client_t *c) {
  uint64_t w = c->word;
  if (c->st == NULL ||
      !mb_cas64(&c->entry->word, &w, MB_CLIENT_WORD_AS(c->word, MB_CLIENT_CLAIMED)))
    return;
  mb__claimed_to_dead(c);
}

int mb_detach(mb_client_t *client) {
  int rc;
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_detach: no client");
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  rc = mb__leave(client);
  mb__unmap(client);
  mb__pools_free(client);
  mb__maps_close_all(client);
  mb_os_mutex_destroy(&client->mem_lock);
  free(client);
  return rc;
}

int mb_close(mb_client_t *client) {
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_close: no client");
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  mb__hand_off(client);
  mb__unmap(client);
  mb__pools_free(client);
  mb__maps_close_all(client);
  mb_os_mutex_destroy(&client->mem_lock);
  free(client);
  return 0;
}

int mb_reattach(mb_client_t *client, const mb_attach_options_t *opts) {
  int rc;
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_reattach: no client");
  if ((rc = mb__check_opts(opts)) != 0)
    return rc;
  /* The heartbeat thread reads the options: stop it before they change. The entry is handed
   * off (kept, DEAD) and taken back by the attach below if the broker is the same. */
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  mb__hand_off(client);
  mb__unmap(client);
  mb__apply_opts(client, opts);
  return mb__attach_retry(client);
}

/* The attachment or MB_ENOTRUNNING for a client left detached by a failed reattach. */
static int mb__need(const mb_client_t *c) {
  if (c == NULL)
    return mb__errorf(MB_EINVAL, 0, "no client");
  if (c->st == NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "client '%s' is not attached: call mb_reattach", c->name);
  return 0;
}

/* MB_ESTALE for an entry that is no longer this attachment's, saying what became of it. */
static int mb__stale(const mb_client_t *c) {
  uint64_t w = mb_load64(&c->entry->word);
  if (w == MB_CLIENT_WORD_AS(c->word, MB_CLIENT_DEAD) &&
      mb_load32(&c->entry->dead_reason) == MB_DEAD_HEARTBEAT)
    return mb__errorf(MB_ESTALE, 0, "client '%s' was reaped by the broker: no heartbeat in time",
                      c->name);
  return mb__errorf(MB_ESTALE, 0,
                    "client '%s' is no longer attached: its entry was reaped or "
                    "taken over",
                    c->name);
}

int mb_tick(mb_client_t *c) {
  const char *why;
  uint64_t now;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (!mb__entry_mine(c))
    return mb__stale(c);
  now = mb_os_mono_ns();
  mb_store64(&c->entry->heartbeat_ns, now);
  mb__mem_publish(c, 0);
  /* A restarted broker has a block of its own; the one we map says stopped or shutting
   * down (or its broker is gone), so a restart is seen as "not running" here. */
  if ((why = mb__stopping(c->st)) != NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "the broker is %s", why);
  if (now - c->broker_checked_ns >= MB__BROKER_CHECK_NS) {
    c->broker_checked_ns = now;
    if (mb__broker_alive(c) == 0)
      return mb__errorf(MB_ENOTRUNNING, 0, "the broker (pid %u) is gone", (unsigned)c->broker.pid);
  }
  return 0;
}

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
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (text == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_set_message: no text");
  if ((rc = mb__state_write_msg(c->st, text)) != 0)
    return rc;
  mb_store64(&c->st->game.last_update_wall_ns, mb_os_wall_ns());
  return 0;
}

/* ---- regions ------------------------------------------------------------------------------ */

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

int mb_player_find(mb_client_t *c, uint64_t player_id, void **slot) {
  size_t at;
  int rc;
  if ((rc = mb__slots_need(c)) != 0)
    return rc;
  if ((at = mb__pmap_find(c, player_id)) == (size_t)-1)
    return mb__errorf(MB_ENOENT, 0, "client '%s' holds no slot for player %llu", c->name,
                      (unsigned long long)player_id);
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
  if ((at = mb__pmap_find(c, player_id)) == (size_t)-1)
    return mb__errorf(MB_ENOENT, 0, "client '%s' holds no slot for player %llu", c->name,
                      (unsigned long long)player_id);
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

/* ---- shared pools ------------------------------------------------------------------------- */

#define MB__TCACHE_MAX 64 /* free blocks a thread keeps per pool */

/*
 * A thread's cache of free blocks of one pool (stamped MB_STAMP_CACHED | owner in shared
 * memory, so the broker can take them back if the process dies). A thread's caches form a
 * list hung on a thread-local slot whose exit callback gives their blocks back; the caches of
 * one client form a second list, so detach, close and reattach can give back the blocks of
 * every thread. Both lists and `pool` change under mb__tc_lock; the owning thread reads its
 * cache without it (pool calls must not run while their client detaches or reattaches).
 */
typedef struct mb__tcache_s {
  /* what the fast paths read, copied from the pool's mapping and the client when the cache
   * is bound to a pool (valid while `pool` is set: caches are let go at detach, close,
   * reattach and a change of the handle's flags) */
  mb_pool_t *pool; /* NULL: its client let go; the entry can be reused */
  uint32_t n;
  uint32_t rec;              /* the thread's intent record in the pool (pool.c), held while bound */
  uint64_t holder;           /* ... under this attachment's MB_POOL_HOLDER */
  uint32_t owner;            /* MB_STAMP_OWNER of the client's blocks */
  const mb_au64 *entry_word; /* the client's entry word in shared memory ... */
  uint64_t word;             /* ... and its value while the entry is this attachment's */
  mb_au32 *stamps;
  unsigned char *blocks;
  uint64_t span;
  uint32_t stride;
  int shift;
  struct mb__tcache_s *tnext;         /* this thread's caches */
  struct mb__tcache_s *cnext, *cprev; /* the client's caches */
  uint32_t idx[MB__TCACHE_MAX];
} mb__tcache_t;

/* A handle names its pool; the mapping belongs to the attachment and is made on first use.
 * map/seq cache the mapping for the fast path: valid while seq == client->attach_seq. */
struct mb_pool_s {
  mb_client_t *client;
  mb_pool_map_t *map;
  mb_au64 seq;    /* the attach_seq map was set for (release, after the fields; 0: not yet) */
  uint32_t owner; /* the client's table index + 1, with map */
  int uncached;   /* with map: MB_POOL_NO_CACHE, or a debug pool */
  unsigned flags; /* MB_POOL_* given to mb_pool_open */
  char name[MB_POOL_NAME_MAX];
};

static mb_os_tls_t mb__tc_key;    /* its value: the thread's first cache */
static mb_os_mutex_t mb__tc_lock; /* the lists and every cache's `pool` */
static mb_au32 mb__tc_ready;      /* 0 not yet, 1 being set up, 2 ready, 3 failed */
static MB_THREAD_LOCAL_FAST mb__tcache_t *mb__tc_last; /* the cache this thread used last */

/*
 * Give every block of cache t back to its pool (caller holds mb__tc_lock), if the client's
 * entry is still this attachment's: once it was reaped (or taken over), its cached blocks are
 * the broker's (or the successor's) to give back, and may be another client's by now. Each
 * block goes back only if it is still stamped cached by this client (a CAS from that value).
 */
static void mb__tcache_flush(mb__tcache_t *t) {
  mb_pool_map_t *p = t->pool ? t->pool->map : NULL;
  uint32_t k;
  if (p != NULL && p->base != NULL && mb_load64(t->entry_word) == t->word)
    for (k = 0; k < t->n; k += MB_POOL_CHAIN)
      mb__pool_give(p, t->rec, t->idx + k, t->n - k < MB_POOL_CHAIN ? t->n - k : MB_POOL_CHAIN,
                    MB_STAMP_CACHED | t->owner, NULL);
  t->n = 0;
}

/* Unlink t from its client's list and orphan it (caller holds mb__tc_lock). */
static void mb__tcache_orphan(mb__tcache_t *t) {
  mb_client_t *c = t->pool->client;
  if (t->pool->map != NULL && t->pool->map->base != NULL)
    mb__pool_intent_release(t->pool->map, t->rec, t->holder);
  if (t->cprev)
    t->cprev->cnext = t->cnext;
  else
    c->tcaches = t->cnext;
  if (t->cnext)
    t->cnext->cprev = t->cprev;
  t->cnext = t->cprev = NULL;
  t->pool = NULL;
}

/* The thread-local slot's exit callback: give back and free every cache of the thread. */
static void mb__tcache_thread_exit(void *head) {
  mb__tcache_t *t = head, *next;
  mb_os_mutex_lock(&mb__tc_lock);
  for (; t != NULL; t = next) {
    next = t->tnext;
    if (t->pool != NULL) {
      mb__tcache_flush(t);
      mb__tcache_orphan(t);
    }
    free(t);
  }
  mb_os_mutex_unlock(&mb__tc_lock);
  mb__tc_last = NULL;
}

/* Set up the key and the lock once per process. 0, or the error that made it impossible. */
static int mb__tcache_init(void) {
  uint32_t s = mb_load32(&mb__tc_ready);
  while (s != 2) {
    if (s == 3)
      return mb__errorf(MB_EOS, 0, "thread caches cannot be set up in this process");
    if (s == 0 && mb_cas32(&mb__tc_ready, &s, 1)) {
      int ok = mb_os_mutex_init(&mb__tc_lock) == 0;
      if (ok && mb_os_tls_create(&mb__tc_key, mb__tcache_thread_exit) != 0) {
        mb_os_mutex_destroy(&mb__tc_lock);
        ok = 0;
      }
      mb_store32(&mb__tc_ready, ok ? 2 : 3);
    } else {
      mb_os_sleep_ms(0);
    }
    s = mb_load32(&mb__tc_ready);
  }
  return 0;
}

/* This thread's cache for `pool`, made (or an orphan reused) on first use. */
static int mb__tcache_get(mb_pool_t *pool, mb__tcache_t **out) {
  mb__tcache_t *head, *t, *spare = NULL;
  mb_client_t *c = pool->client;
  int rc;
  if ((rc = mb__tcache_init()) != 0)
    return rc;
  head = mb_os_tls_get(&mb__tc_key);
  for (t = head; t != NULL; t = t->tnext) {
    if (t->pool == pool) {
      *out = mb__tc_last = t;
      return 0;
    }
    if (t->pool == NULL && spare == NULL)
      spare = t;
  }
  if ((t = spare) == NULL) {
    if ((t = calloc(1, sizeof *t)) == NULL)
      return mb__errorf(MB_ENOMEM, 0, "thread cache of pool '%s'", pool->name);
    t->tnext = head;
    mb_os_tls_set(&mb__tc_key, t);
  }
  /* Every take and give of this thread goes through its own intent record. */
  if ((rc = mb__pool_intent_claim(pool->map, c->pool_holder, &t->rec)) != 0)
    return rc;
  mb_os_mutex_lock(&mb__tc_lock);
  t->holder = c->pool_holder;
  t->pool = pool;
  t->n = 0;
  t->owner = pool->owner;
  t->entry_word = &c->entry->word;
  t->word = c->word;
  t->stamps = pool->map->stamps;
  t->blocks = pool->map->blocks;
  t->span = pool->map->span;
  t->stride = pool->map->stride;
  t->shift = pool->uncached ? -1 : pool->map->shift; /* -1: mb_pool_free's fast path never
                                                       caches for an uncached handle */
  t->cprev = NULL;
  t->cnext = c->tcaches;
  if (c->tcaches)
    c->tcaches->cprev = t;
  c->tcaches = t;
  mb_os_mutex_unlock(&mb__tc_lock);
  *out = mb__tc_last = t;
  return 0;
}

/* Give back the blocks of every thread's cache of client c (of one pool, or all with NULL)
 * and let the caches go: detach, close, reattach, a change of a handle's flags. */
static void mb__tcaches_release(mb_client_t *c, const mb_pool_t *pool) {
  mb__tcache_t *t, *next;
  if (c->tcaches == NULL || mb_load32(&mb__tc_ready) != 2)
    return;
  mb_os_mutex_lock(&mb__tc_lock);
  for (t = c->tcaches; t != NULL; t = next) {
    next = t->cnext;
    if (pool != NULL && t->pool != pool)
      continue;
    mb__tcache_flush(t);
    mb__tcache_orphan(t);
  }
  mb_os_mutex_unlock(&mb__tc_lock);
}

/* Map pool i of the current attachment's directory, once (caller holds mem_lock). With
 * release_cached, the first map of an attachment gives back the blocks a predecessor of this
 * name left in its thread caches (it died with them; this process's caches are empty: they
 * were let go before any remap). */
static int mb__pool_map_index(mb_client_t *c, uint32_t i, int release_cached) {
  char obj[MB_OS_NAME_MAX + 1];
  int rc;
  if (c->pools_map[i].base == NULL) {
    mb_pool_map_t *p = &c->pools_map[i];
    mb_pool_desc_t d; /* checked on a copy: the block's is writable by the whole group */
    void *base;
    memcpy(&d, &c->st->pools[i], offsetof(mb_pool_desc_t, head));
    if ((rc = mb__pool_desc_check(&d, 0)) != 0 ||
        (rc = mb__pool_object_name(obj, sizeof obj, c->instance, d.name)) != 0 ||
        (rc = mb_os_section_open(&p->sec, obj, c->sec_flags, 1)) != 0)
      return rc;
    if (p->sec.size < d.section_size) {
      mb_os_section_close(&p->sec);
      return mb__errorf(MB_ECORRUPT, 0, "pool '%s' holds %llu bytes, its descriptor says %llu",
                        d.name, (unsigned long long)p->sec.size,
                        (unsigned long long)d.section_size);
    }
    if ((rc = mb_os_section_map(&p->sec, p->sec.size, 1, &base)) != 0) {
      mb_os_section_close(&p->sec);
      return rc;
    }
    c->pool_len[i] = p->sec.size;
    p->base = base;
    p->desc = &d; /* bound from the checked copy, then the live descriptor */
    mb__pool_bind(p);
    p->desc = &c->st->pools[i];
    /* This process's own record: what it gives back outside a thread's calls goes through
     * it (a predecessor's caches here, the entry's blocks at detach). */
    if ((rc = mb__pool_intent_claim(p, c->pool_holder, &p->rec)) != 0) {
      mb_os_section_unmap(base, c->pool_len[i]);
      mb_os_section_close(&p->sec);
      memset(p, 0, sizeof *p);
      return rc;
    }
    if (release_cached)
      mb__pool_release_owner(p, c->index + 1, 1);
  }
  return 0;
}

/* Find the pool `name` in the directory (its index into *index) and map it (caller holds
 * mem_lock). MB_ENOENT if the broker has no such pool. */
static int mb__pool_map(mb_client_t *c, const char *name, uint32_t *index) {
  uint32_t i;
  for (i = 0; i < c->pool_count; i++)
    if (strncmp(c->st->pools[i].name, name, MB_POOL_NAME_MAX) == 0)
      break;
  if (i >= c->pool_count)
    return mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no pool '%s'", c->instance,
                      name);
  *index = i;
  return mb__pool_map_index(c, i, 1);
}

int mb_pool_open(mb_client_t *c, const char *name, unsigned flags, mb_pool_t **pool) {
  uint32_t i = 0; /* set by mb__pool_map on success (gcc -O2 cannot tell) */
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (name == NULL || pool == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_open: name and pool are required");
  if (flags & ~(unsigned)MB_POOL_NO_CACHE)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_open: unknown flags 0x%x", flags);
  mb_os_mutex_lock(&c->mem_lock);
  rc = mb__pool_map(c, name, &i);
  mb_os_mutex_unlock(&c->mem_lock);
  if (rc != 0)
    return rc;
  if (c->pools[i] == NULL) {
    if ((c->pools[i] = calloc(1, sizeof *c->pools[i])) == NULL)
      return mb__errorf(MB_ENOMEM, 0, "mb_pool_open '%s'", name);
    c->pools[i]->client = c;
    snprintf(c->pools[i]->name, sizeof c->pools[i]->name, "%s", name);
  }
  if (c->pools[i]->flags != flags) {
    mb__tcaches_release(c, c->pools[i]); /* with or without caches from now on */
    c->pools[i]->flags = flags;
    mb_store64(&c->pools[i]->seq, 0); /* the next call works out `uncached` again */
  }
  *pool = c->pools[i];
  return 0;
}

/* The pool's mapping in the current attachment (cached in the handle), after the checks
 * every pool call makes: the client is attached and the entry still its own. */
static int mb__pool_need(mb_pool_t *pool, mb_pool_map_t **map) {
  mb_client_t *c;
  uint32_t i = 0; /* set by mb__pool_map on success */
  int rc;
  *map = NULL;
  if (pool == NULL)
    return mb__errorf(MB_EINVAL, 0, "no pool");
  c = pool->client;
  if (c->st == NULL)
    return mb__need(c);
  if (!mb__entry_mine(c))
    return mb__stale(c);
  if (mb_load64(&pool->seq) != c->attach_seq) {
    /* The first call after an attach: threads may race here, so one sets the handle up under
     * the client's lock and publishes it with seq (release; read with acquire above). */
    mb_os_mutex_lock(&c->mem_lock);
    rc = 0;
    if (mb_load64(&pool->seq) != c->attach_seq && (rc = mb__pool_map(c, pool->name, &i)) == 0) {
      pool->map = &c->pools_map[i];
      pool->owner = c->index + 1;
      /* Blocks go straight to and from the shared pool when the handle asked for it or the
       * pool is a debug pool (each free checked with a CAS and poisoned, each alloc checks
       * the poison). */
      pool->uncached = (pool->flags & MB_POOL_NO_CACHE) || (pool->map->flags & MB_POOL_F_DEBUG);
      mb_store64(&pool->seq, c->attach_seq);
    }
    mb_os_mutex_unlock(&c->mem_lock);
    if (rc != 0)
      return rc;
  }
  *map = pool->map;
  return 0;
}

MB_COLD static int mb__pool_alloc_slow(mb_pool_t *pool, void **obj) {
  mb_pool_map_t *p;
  mb__tcache_t *t;
  uint32_t idx, got, owner;
  int rc;
  if (obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_alloc: no object pointer");
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  owner = pool->owner;
  if ((t = mb__tc_last) == NULL || t->pool != pool) {
    if ((rc = mb__tcache_get(pool, &t)) != 0) /* the record, even without caching */
      return rc;
  }
  if (pool->uncached) {
    if ((rc = mb__pool_take(p, t->rec, MB_STAMP_IN_USE | owner, 1, &idx, &got)) != 0)
      return rc;
  } else {
    if (t->n == 0) {
      if ((rc = mb__pool_take(p, t->rec, MB_STAMP_CACHED | owner, MB_POOL_CHAIN, t->idx, &got)) !=
          0)
        return rc;
      t->n = got;
    }
    idx = t->idx[--t->n];
    mb_store32(&p->stamps[idx], MB_STAMP_IN_USE | owner);
  }
  *obj = mb__pool_block(p, idx);
  return 0;
}

/*
 * The fast paths: the thread's last cache is this pool's (so bound in this attachment: caches
 * are let go at detach and reattach) and the entry is still ours. Anything else - no cache
 * yet, empty or full, another pool, a stale entry, a bad argument - takes the slow path,
 * which checks everything again and says what is wrong.
 */
int mb_pool_alloc(mb_pool_t *pool, void **obj) {
  mb__tcache_t *t = mb__tc_last;
  if (t != NULL && t->pool == pool && t->n > 0 && obj != NULL &&
      mb_load64(t->entry_word) == t->word) {
    uint32_t idx = t->idx[--t->n];
    mb_store32(&t->stamps[idx], MB_STAMP_IN_USE | t->owner);
    *obj = t->blocks + (size_t)idx * t->stride;
    return 0;
  }
  return mb__pool_alloc_slow(pool, obj);
}

MB_COLD static int mb__pool_free_slow(mb_pool_t *pool, void *obj) {
  mb_pool_map_t *p;
  mb__tcache_t *t;
  uint32_t idx, s, owner;
  int rc;
  if ((rc = mb__pool_need(pool, &p)) != 0 || (rc = mb__pool_index(p, obj, &idx)) != 0)
    return rc;
  if ((t = mb__tc_last) == NULL || t->pool != pool) {
    if ((rc = mb__tcache_get(pool, &t)) != 0)
      return rc;
  }
  if (pool->uncached)
    return mb__pool_give(p, t->rec, &idx, 1, MB_STAMP_IN_USE, NULL);
  /* A block of our own: a plain check and store (two threads freeing one block at once are
   * caught only by a debug pool, which has no caches). Another client's: a CAS from the
   * stamp seen, so a broker giving that client's blocks back at the same moment cannot
   * also push it. Either way a block that is not in use is refused. */
  owner = pool->owner;
  s = mb_load32(&p->stamps[idx]);
  if (!(s & MB_STAMP_IN_USE) || MB_STAMP_OWNER(s) == 0xFFFFu ||
      (MB_STAMP_OWNER(s) == owner ? (mb_store32(&p->stamps[idx], MB_STAMP_CACHED | owner), 0)
                                  : !mb_cas32(&p->stamps[idx], &s, MB_STAMP_CACHED | owner))) {
    mb_add64(&p->desc->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%.*s': block %u is not in use (double free?)",
                      MB_POOL_NAME_MAX - 1, p->desc->name, (unsigned)idx);
  }
  if (t->n == MB__TCACHE_MAX) { /* full: the older half goes back as one chain */
    mb__pool_give(p, t->rec, t->idx, MB_POOL_CHAIN, MB_STAMP_CACHED | owner, NULL);
    memmove(t->idx, t->idx + MB_POOL_CHAIN, (MB__TCACHE_MAX - MB_POOL_CHAIN) * sizeof t->idx[0]);
    t->n -= MB_POOL_CHAIN;
  }
  t->idx[t->n++] = idx;
  return 0;
}

int mb_pool_free(mb_pool_t *pool, void *obj) {
  mb__tcache_t *t = mb__tc_last;
  if (obj == NULL)
    return 0;
  if (t != NULL && t->pool == pool && pool != NULL && t->n < MB__TCACHE_MAX && t->shift >= 0 &&
      mb_load64(t->entry_word) == t->word) {
    uint64_t off = (uint64_t)((uintptr_t)obj - (uintptr_t)t->blocks);
    if (off < t->span && (off & (t->stride - 1)) == 0) {
      uint32_t idx = (uint32_t)(off >> t->shift), s = mb_load32(&t->stamps[idx]);
      if (s == (MB_STAMP_IN_USE | t->owner)) { /* our own; another client's: the slow path */
        mb_store32(&t->stamps[idx], MB_STAMP_CACHED | t->owner);
        t->idx[t->n++] = idx;
        return 0;
      }
    }
  }
  return mb__pool_free_slow(pool, obj);
}

int mb_pool_flush(mb_pool_t *pool) {
  mb__tcache_t *t;
  mb_pool_map_t *p;
  int rc;
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  if (mb_load32(&mb__tc_ready) != 2)
    return 0;
  for (t = mb_os_tls_get(&mb__tc_key); t != NULL; t = t->tnext)
    if (t->pool == pool) {
      mb_os_mutex_lock(&mb__tc_lock);
      mb__tcache_flush(t);
      mb_os_mutex_unlock(&mb__tc_lock);
    }
  return 0;
}

int mb_pool_next(mb_pool_t *pool, uint64_t *cursor, void **obj) {
  mb_pool_map_t *p;
  uint32_t owner, cap;
  int rc;
  if (cursor == NULL || obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_next: cursor and obj are required");
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  owner = MB_STAMP_IN_USE | (pool->client->index + 1);
  cap = (uint32_t)(p->span / p->stride); /* the map's copy, checked when it was mapped */
  for (; *cursor < cap; (*cursor)++) {
    if (mb_load32(&p->stamps[*cursor]) == owner) {
      *obj = mb__pool_block(p, (uint32_t)(*cursor)++);
      return 0;
    }
  }
  return mb__errorf(MB_ENOENT, 0, "no more objects");
}

/* ---- private memory shown to the operator -------------------------------------------------- */

MB_LAYOUT_ASSERT(MB_TRACK_MAX == MB_CLIENT_MEM_MAX, "one row entry per tracked pool or heap");

/* Copy the figures (and detail) of tracked[i] into row entry e, from one read of its
 * statistics; zeros if they cannot be read (caller holds mem_lock). */
static void mb__mem_fill(mb_client_t *c, int i, mb_mem_entry_t *e) {
  mb_mem_figures_t f = {0}; /* MB_MEM_STATS (stats.h) */
  uint32_t detail = 0;
  if (c->tracked[i].kind == MB_MEM_LPOOL) {
    mb_pool_stats_t ps;
    if (mb_lpool_stats(c->tracked[i].obj, &ps) == 0) {
      f.in_use = ps.in_use * ps.block_size;
      f.peak = ps.peak * ps.block_size;
      f.committed = ps.committed;
      f.allocs = ps.allocs;
      f.frees = ps.frees;
      f.failures = ps.misses + ps.errors;
      f.objects = ps.in_use;
      detail = (uint32_t)ps.object_size;
    }
  } else {
    mb_heap_stats_t hs;
    if (mb_heap_stats(c->tracked[i].obj, &hs) == 0) {
      f.in_use = hs.bytes_in_use;
      f.peak = hs.peak_in_use;
      f.committed = hs.committed;
      f.allocs = hs.allocations + hs.reallocations;
      f.frees = hs.frees;
      f.failures = hs.failures;
      f.objects = hs.blocks;
      detail = (uint32_t)hs.purpose;
    }
  }
  mb_store32(&e->detail, detail);
#define MB__X(where, field, ...) mb_store64_relaxed(&e->field, f.field);
  MB_MEM_STATS(MB__X)
#undef MB__X
}

/* Write row entry i's name, figures and kind for tracked[i] (MB_MEM_NONE clears it). Caller
 * holds mem_lock and the entry is ours. */
static void mb__mem_describe(mb_client_t *c, int i) {
  mb_mem_entry_t *e = &c->st->client_mem[c->index].entries[i];
  void *obj = c->tracked[i].obj;
  mb_store32(&e->kind, MB_MEM_NONE);
  if (c->tracked[i].kind == MB_MEM_NONE)
    return;
  mb__name_set(e->name,
               c->tracked[i].kind == MB_MEM_LPOOL ? mb_lpool_name(obj) : mb_heap_name(obj));
  mb__mem_fill(c, i, e);
  mb_store32(&e->kind, (uint32_t)c->tracked[i].kind); /* release: name and figures first */
}

/* A new attachment: its row starts empty, then shows what is tracked (attach runs on the
 * app's thread: all may be read). */
static void mb__mem_reset(mb_client_t *c) {
  int i;
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++) /* one row entry per tracked slot (asserted above) */
    mb__mem_describe(c, i);
  mb_store64(&c->st->client_mem[c->index].published_ns, mb_os_wall_ns());
  mb_os_mutex_unlock(&c->mem_lock);
}

/* Refresh the figures of the tracked pools and heaps: all of them (mb_publish), or the
 * thread-safe ones at most once a second (the heartbeat thread and mb_tick, whichever
 * comes first). */
static void mb__mem_publish(mb_client_t *c, int all) {
  mb_client_mem_t *row;
  uint64_t now = mb_os_mono_ns();
  int i;
  mb_os_mutex_lock(&c->mem_lock);
  if (!all && now - c->mem_published_ns < MB__PUBLISH_NS) {
    mb_os_mutex_unlock(&c->mem_lock);
    return;
  }
  if (!all)
    c->mem_published_ns = now;
  if (c->st != NULL && mb__entry_mine(c)) {
    row = &c->st->client_mem[c->index];
    for (i = 0; i < MB_TRACK_MAX; i++) {
      if (c->tracked[i].kind == MB_MEM_NONE || !(all || c->tracked[i].threadsafe))
        continue;
      if (mb_load32(&row->entries[i].kind) == MB_MEM_NONE)
        mb__mem_describe(c, i); /* tracked before this attachment, not described yet */
      else
        mb__mem_fill(c, i, &row->entries[i]);
    }
    mb_store64(&row->published_ns, mb_os_wall_ns());
  }
  mb_os_mutex_unlock(&c->mem_lock);
}

static int mb__track(mb_client_t *c, int kind, void *obj, int threadsafe) {
  int i, slot = -1, rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_track: no %s", kind == MB_MEM_LPOOL ? "pool" : "heap");
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++) {
    if (c->tracked[i].kind != MB_MEM_NONE && c->tracked[i].obj == obj) {
      mb_os_mutex_unlock(&c->mem_lock);
      return mb__errorf(MB_EINVAL, 0, "mb_track: %s '%s' is tracked already",
                        kind == MB_MEM_LPOOL ? "pool" : "heap",
                        kind == MB_MEM_LPOOL ? mb_lpool_name(obj) : mb_heap_name(obj));
    }
    if (c->tracked[i].kind == MB_MEM_NONE && slot < 0)
      slot = i;
  }
  if (slot < 0) {
    mb_os_mutex_unlock(&c->mem_lock);
    return mb__errorf(MB_EFULL, 0, "mb_track: client '%s' tracks %d pools and heaps already",
                      c->name, MB_TRACK_MAX);
  }
  c->tracked[slot].kind = kind;
  c->tracked[slot].obj = obj;
  c->tracked[slot].threadsafe = threadsafe;
  if (c->st != NULL && mb__entry_mine(c))
    mb__mem_describe(c, slot);
  mb_os_mutex_unlock(&c->mem_lock);
  return 0;
}

int mb_track_lpool(mb_client_t *c, mb_lpool_t *pool) {
  return mb__track(c, MB_MEM_LPOOL, pool, pool != NULL && mb__lpool_threadsafe(pool));
}

int mb_track_heap(mb_client_t *c, mb_heap_t *heap) {
  return mb__track(c, MB_MEM_HEAP, heap, heap != NULL && mb__heap_threadsafe(heap));
}

int mb_untrack(mb_client_t *c, const void *obj) {
  int i, rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++)
    if (c->tracked[i].kind != MB_MEM_NONE && c->tracked[i].obj == obj) {
      c->tracked[i].kind = MB_MEM_NONE;
      c->tracked[i].obj = NULL;
      if (c->st != NULL && mb__entry_mine(c))
        mb__mem_describe(c, i);
      mb_os_mutex_unlock(&c->mem_lock);
      return 0;
    }
  mb_os_mutex_unlock(&c->mem_lock);
  return mb__errorf(MB_ENOENT, 0, "mb_untrack: not a tracked pool or heap");
}

int mb_publish(mb_client_t *c) {
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (!mb__entry_mine(c))
    return mb__stale(c);
  mb__mem_publish(c, 1);
  return 0;
}

/* ---- game data maps ------------------------------------------------------------------------ */

/*
 * A map handle: its own read-only view of one load's section (membroker.<instance>.map.
 * <name>.<seq>), independent of the attachment, so it stays valid across mb_reattach and
 * after the broker unloads or reloads the map. The section never changes after the broker
 * published it, so what the handle caches from the checked header stays true.
 */
struct mb_map_s {
  mb_client_t *client; /* whose list of open handles it is on */
  struct mb_map_s *prev, *next;
  mb_os_section_t sec;
  const unsigned char *base; /* the whole section */
  uint64_t mapped;           /* bytes mapped */
  const mb_gmap_header_t *hdr;
  const mb_gmap_tile_t *tiles;
  const mb_gmap_object_t *objects;
  uint32_t width, height, object_count;
  char name[MB_MAP_NAME_MAX];
};

/*
 * Find map `name` in the directory: the seq and image size of its entry, read consistently
 * (layout.h: seq and state, the fields, a fence, state and seq again; an entry caught while
 * it changes is read again). MB_ENOENT if no READY entry has that name.
 */
static int mb__map_find(mb_client_t *c, const char *name, uint32_t *seq, uint64_t *size) {
  char n[MB_MAP_NAME_MAX];
  int tries, i;
  for (tries = 0; tries < 1000; tries++) {
    int torn = 0;
    for (i = 0; i < MB_MAPS_MAX; i++) {
      const mb_map_desc_t *d = &c->st->maps[i];
      uint32_t s1 = mb_load32(&d->seq);
      uint64_t sz;
      if (mb_load32(&d->state) != MB_MAP_READY)
        continue;
      mb__name_get(d->name, n);
      sz = mb_load64(&d->size);
      mb_fence();
      if (mb_load32(&d->state) != MB_MAP_READY || mb_load32(&d->seq) != s1) {
        torn = 1;
        continue;
      }
      if (strcmp(n, name) == 0) {
        *seq = s1;
        *size = sz;
        return 0;
      }
    }
    if (!torn)
      return mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no map '%s'", c->instance,
                        name);
    mb_os_sleep_ms(tries < 10 ? 0 : 1);
  }
  return mb__errorf(MB_EBUSY, 0, "map '%s': the broker's map directory kept changing", name);
}

/* Open and map (read-only) the section of load `seq` of map `name`, `size` bytes of image. */
static int mb__map_attach(mb_client_t *c, const char *name, uint32_t seq, uint64_t size,
                          mb_map_t *m) {
  char obj[MB_OS_NAME_MAX + 1], what[MB_MAP_NAME_MAX + 16];
  mb_gmap_header_t h;
  void *base;
  int rc;
  if ((rc = mb__map_object_name(obj, sizeof obj, c->instance, name, seq)) != 0 ||
      (rc = mb_os_section_open(&m->sec, obj, c->sec_flags, 0)) != 0)
    return rc;
  if (size == 0 || m->sec.size < size) {
    rc = mb__errorf(MB_EVERSION, 0, "map '%s' holds %llu bytes, its directory entry says %llu",
                    name, (unsigned long long)m->sec.size, (unsigned long long)size);
    mb_os_section_close(&m->sec);
    return rc;
  }
  if ((rc = mb_os_section_map(&m->sec, 0, 0, &base)) != 0) {
    mb_os_section_close(&m->sec);
    return rc;
  }
  /* The broker checked these bytes before it published them; check the header again, so a
   * handle never trusts sizes it has not seen agree with the section (header-only cost), and
   * keep the figures from a copy that is the same before and after the check. */
  snprintf(what, sizeof what, "map '%s'", name);
  memcpy(&h, base, sizeof h);
  if ((rc = mb_gmap_check(base, size, what)) != 0 || memcmp(&h, base, sizeof h) != 0) {
    if (rc == 0)
      rc = mb__errorf(MB_EBUSY, 0, "map '%s' changed while it was opened", name);
    mb_os_section_unmap(base, m->sec.size);
    mb_os_section_close(&m->sec);
    return rc;
  }
  m->base = base;
  m->mapped = m->sec.size;
  m->hdr = (const mb_gmap_header_t *)base;
  m->tiles = (const mb_gmap_tile_t *)(m->base + MB_GMAP_TILES_OFFSET);
  m->objects = (const mb_gmap_object_t *)(m->base + MB_GMAP_OBJECTS_OFFSET(&h));
  m->width = h.width;
  m->height = h.height;
  m->object_count = h.object_count;
  snprintf(m->name, sizeof m->name, "%s", name);
  return 0;
}

int mb_map_open(mb_client_t *c, const char *name, mb_map_t **map) {
  const char *why;
  mb_map_t *m;
  uint32_t seq = 0;
  uint64_t size = 0;
  int rc, tries;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (name == NULL || map == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_map_open: name and map are required");
  *map = NULL;
  if (name[0] == '\0' || strlen(name) >= MB_MAP_NAME_MAX)
    return mb__errorf(MB_EINVAL, 0, "map name '%.64s': 1 to %d bytes", name, MB_MAP_NAME_MAX - 1);
  /* A dead or stopping broker's directory is not read: reattach first. */
  if ((why = mb__stopping(c->st)) != NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "map '%s': the broker is %s", name, why);
  if ((m = calloc(1, sizeof *m)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "mb_map_open '%s'", name);
  /* The entry may be unloaded (its name removed) between reading it and opening the section:
   * then read the directory again (a reload has a new seq). */
  for (tries = 0;; tries++) {
    if ((rc = mb__map_find(c, name, &seq, &size)) != 0)
      break;
    rc = mb__map_attach(c, name, seq, size, m);
    if (rc != MB_ENOENT || tries >= 10)
      break;
  }
  if (rc != 0) {
    free(m);
    return rc;
  }
  m->client = c;
  m->next = c->maps_open;
  if (m->next)
    m->next->prev = m;
  c->maps_open = m;
  *map = m;
  return 0;
}

const mb_gmap_header_t *mb_map_header(const mb_map_t *map) {
  return map ? map->hdr : NULL;
}

int mb_map_tile(const mb_map_t *map, uint32_t x, uint32_t y, const mb_gmap_tile_t **tile) {
  if (map == NULL || tile == NULL) {
    if (tile)
      *tile = NULL;
    return mb__errorf(MB_EINVAL, 0, "mb_map_tile: map and tile are required");
  }
  if (x >= map->width || y >= map->height) {
    *tile = NULL;
    return mb__errorf(MB_ERANGE, 0, "map '%s': tile (%u, %u) is outside its %u x %u tiles",
                      map->name, (unsigned)x, (unsigned)y, (unsigned)map->width,
                      (unsigned)map->height);
  }
  *tile = &map->tiles[(size_t)y * map->width + x];
  return 0;
}

int mb_map_object(const mb_map_t *map, uint32_t index, const mb_gmap_object_t **obj) {
  if (map == NULL || obj == NULL) {
    if (obj)
      *obj = NULL;
    return mb__errorf(MB_EINVAL, 0, "mb_map_object: map and obj are required");
  }
  if (index >= map->object_count) {
    *obj = NULL;
    return mb__errorf(MB_ERANGE, 0, "map '%s': object %u is past its %u objects", map->name,
                      (unsigned)index, (unsigned)map->object_count);
  }
  *obj = &map->objects[index];
  return 0;
}

void mb_map_close(mb_map_t *map) {
  if (map == NULL)
    return;
  if (map->prev)
    map->prev->next = map->next;
  else if (map->client)
    map->client->maps_open = map->next;
  if (map->next)
    map->next->prev = map->prev;
  mb_os_section_unmap((void *)map->base, map->mapped);
  mb_os_section_close(&map->sec);
  free(map);
}

/* mb_detach and mb_close: the handles left open are closed (their pointers die with them). */
static void mb__maps_close_all(mb_client_t *c) {
  while (c->maps_open != NULL)
    mb_map_close(c->maps_open);
}
