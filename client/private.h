/*
 * private.h - what the client library's files tell each other and no one else: the client
 * handle (struct mb_client_s) and the mb__ functions one file of the library calls in another.
 *
 * The files, by concern: attach.c (attach, detach, close, reattach, heartbeat, tick),
 * gamestate.c (info, counters, message, regions), players.c (player map and slots),
 * poolcache.c (shared pools and thread caches), publish.c (private memory shown to the
 * operator), gamemaps.c (game data maps), lpool.c and heap.c (in-process pools and heaps).
 */
#ifndef MB_CLIENT_PRIVATE_H
#define MB_CLIENT_PRIVATE_H

#include "membroker.h"

#include "layout.h"
#include "os.h"
#include "pool.h"
#include "slots.h"

/* Whether another thread may read the pool's or heap's statistics while it is in use. */
int mb__lpool_threadsafe(const mb_lpool_t *pool);
int mb__heap_threadsafe(const mb_heap_t *heap);

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

/* Whether the entry is still this attachment's: the whole word, so neither a reap nor a
 * takeover by another process (or another attachment of this one) passes. */
static inline int mb__entry_mine(const mb_client_t *c) {
  return mb_load64(&c->entry->word) == c->word;
}

/* ---- attach.c ---- */

/* "stopped" or "shutting down" if the block's broker says so (a restarted broker has a block
 * of its own, so this is how a client sees it went), else NULL. */
const char *mb__stopping(const mb_state_t *st);

/* Stop the heartbeat thread, if it runs. */
void mb__hb_stop(mb_client_t *c);

/* Undo the mappings of an attachment (not its table entry). */
void mb__unmap(mb_client_t *c);

/* MB_EINVAL if client c was attached by another process (inherited over fork()), else 0. */
int mb__forked(const mb_client_t *c);

/* The attachment or MB_ENOTRUNNING for a client left detached by a failed reattach. */
int mb__need(const mb_client_t *c);

/* MB_ESTALE for an entry that is no longer this attachment's, saying what became of it. */
int mb__stale(const mb_client_t *c);

/* ---- gamestate.c ---- */

/* Map region i (once) into c->regions[i] (the descriptor checked on a private copy). */
int mb__region_map(mb_client_t *c, int i);

/* Unmap every mapped region of the attachment. */
void mb__regions_unmap(mb_client_t *c);

/* ---- players.c ---- */

/* Forget every player of the map (at unmap). */
void mb__pmap_clear(mb_client_t *c);

/* After a fresh claim (not a takeover): give back any slot the entry's index still owns. */
void mb__drop_foreign_slots(mb_client_t *c);

/* After a takeover: settle the predecessor's page locks and adopt the slots it owns. */
int mb__adopt_slots(mb_client_t *c);

/* ---- poolcache.c ---- */

/* Unmap the pools; their handles stay and map again on next use (after a reattach). */
void mb__pools_unmap(mb_client_t *c);

/* Free the pool handles (detach, close). */
void mb__pools_free(mb_client_t *c);

/* Give back the blocks of every thread's cache of client c (of one pool, or all with NULL)
 * and let the caches go: detach, close, reattach, a change of a handle's flags. */
void mb__tcaches_release(mb_client_t *c, const mb_pool_t *pool);

/* Map pool i of the current attachment's directory, once (caller holds mem_lock). */
int mb__pool_map_index(mb_client_t *c, uint32_t i, int release_cached);

/* ---- publish.c ---- */

/* A new attachment: its row starts empty, then shows what is tracked. */
void mb__mem_reset(mb_client_t *c);

/* Refresh the figures of the tracked pools and heaps: all, or the thread-safe ones at most
 * once a second. */
void mb__mem_publish(mb_client_t *c, int all);

/* ---- gamemaps.c ---- */

/* mb_detach and mb_close: the map handles left open are closed. */
void mb__maps_close_all(mb_client_t *c);

#endif /* MB_CLIENT_PRIVATE_H */
