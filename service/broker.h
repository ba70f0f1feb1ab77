/*
 * broker.h - the broker's memory: the single-instance lock, the control block
 * (SharedGameState) and the regions, from start to stop.
 */
#ifndef MB_BROKER_H
#define MB_BROKER_H

#include "config.h"
#include "counters.h"
#include "layout.h"
#include "maps.h"
#include "os.h"
#include "persist.h"
#include "pool.h"
#include "slots.h"
#include "trust.h"

/* A counter that only rises (a failure count in shared memory) and what of it was reported. */
typedef struct mb_counter_watch_s {
  uint64_t seen;        /* value at the last look */
  uint64_t pending;     /* risen since the last report */
  uint64_t reported_ns; /* monotonic time of the last report (0: never) */
} mb_counter_watch_t;

/* A rising failure counter is reported at once, then at most once per this, with the count. */
#define MB_BROKER_REPORT_EVERY_MS 60000

/*
 * How the broker's event loop waits for client processes to exit (service/watch.c; the
 * broker itself knows no loop). The sweep opens a process watch for each attached client
 * and hands it to arm(); when the loop learns that a watched process exited it runs
 * mb__broker_sweep at once, so death is seen when the OS says so, not at the next tick.
 * disarm() comes before the watch is closed. Both run on the loop's thread.
 */
typedef struct mb_broker_watch_ops_s {
  void *ctx;
  /* Wait for the exit of client i's process (`watch`, mb_os_proc_watch). 0, or a negative
   * MB_E* code with a detail message: then the sweep polls this client each tick. */
  int (*arm)(void *ctx, uint32_t i, intptr_t watch);
  /* Stop waiting for client i's `watch`: it is about to be closed. */
  void (*disarm)(void *ctx, uint32_t i, intptr_t watch);
} mb_broker_watch_ops_t;

/* Entries of mb_broker_t.deaths: one per value of MB_DEAD_REASONS (stats.h), whose values are
 * 0, 1, 2, ... in order (a retired reason keeps its value). */
#define MB__DEAD_REASON_ONE(name, value, key, why) +1
#define MB_BROKER_DEAD_REASONS (0 MB_DEAD_REASONS(MB__DEAD_REASON_ONE))
/* The dead reasons the broker gives itself (mb__broker_sweep: the OS says the process exited; it
 * died while it held its entry CLAIMED), the ones mb_broker_t.deaths counts. The others are not a
 * finding of the running broker: CLOSED is the client's own doing, RESTORED happens at start,
 * HEARTBEAT is no longer given. */
#define MB_BROKER_FINDS_DEAD(r) ((r) == MB_DEAD_EXITED || (r) == MB_DEAD_ABANDONED)

typedef struct mb_broker_s {
  mb_config_t cfg;
  int flags; /* MB_OS_SEC_GLOBAL for a Windows service, else 0 */
  intptr_t lock;
  mb_os_section_t state_sec;
  mb_state_t *state;
  int nregions;
  mb_region_map_t regions[MB_REGIONS_MAX];
  int npools;
  mb_pool_map_t pools[MB_POOLS_MAX];
  mb_map_slot_t maps[MB_MAPS_MAX]; /* the map directory's entries as the broker knows them */
  uint32_t map_seq;                /* the next load's seq (maps.h) */
  mb_os_procid_t self;
  uint64_t start_mono_ns;
  uint64_t start_wall_ns;
  int stale_purged;        /* objects of a dead broker found and purged at start */
  unsigned large_purged;   /* of them, large-page region files (hugetlbfs) */
  uint64_t large_rounding; /* bytes large-page regions commit beyond their section size */
  /* The saved state (persist.h). */
  mb_persist_t persist;
  /* What the broker knows of each client-table entry (the sweep's own memory). */
  struct {
    intptr_t watch;        /* mb_os_proc_watch of the attached process, 0 if none */
    uint64_t word;         /* the entry word (layout.h) of the attachment `watch` is for */
    uint64_t claimed_word; /* the CLAIMED word last seen, and since when (0: none) */
    uint64_t claimed_ns;
    int watch_failed; /* the OS gave no watch: liveness is asked each sweep */
    int armed;        /* the loop waits for `watch` (watch_ops->arm succeeded) */
    /* The attachment (entry word) whose heartbeat is overdue, and since when the broker
     * has said so (0: none is). A hung client keeps everything; only the OS says dead. */
    uint64_t hung_word;
    uint64_t hung_ns;
    /* The attachment (entry word) the log has said "attached" of, and its name, so its
     * detach or close is logged too (0: none). */
    uint64_t seen_word;
    char seen_name[MB_CLIENT_NAME_MAX];
  } clients[MB_CLIENTS_MAX];
  const mb_broker_watch_ops_t *watch_ops; /* NULL: exits are seen by the sweep alone */
  int slots_deep_again; /* a deep slot check skipped a held page: the next tick does one */
  /* Failure counters in shared memory the broker reports as events (log.h), rate-limited:
   * each region's commit_failures, each pool's misses (mb__broker_watch_counters). */
  int watch_ready; /* `seen` holds the values at the first tick */
  mb_counter_watch_t commit_watch[MB_REGIONS_MAX];
  mb_counter_watch_t miss_watch[MB_POOLS_MAX];
  mb_counter_seen_t counter_seen[2]; /* players, NPCs: the reconcile's previous look */
  /* What the broker counted itself since it started (metrics.c: membroker_client_deaths_total,
   * membroker_client_hangs_total): clients it found dead, by dead reason (mb__client_dead), and
   * clients it found hung (mb__client_hung). Its own memory: only grows while it runs. */
  uint64_t deaths[MB_BROKER_DEAD_REASONS];
  uint64_t hangs;
  /* Private copies of the control block's fixed fields and what was found forged (trust.h):
   * sizes, counts and offsets come from here or from cfg, never from shared memory. */
  mb_trust_t trust;
} mb_broker_t;

/* How often the run loop calls mb__broker_tick: a dead client is noticed within this. */
#define MB_BROKER_TICK_MS 250

/* An entry that stays CLAIMED this long belongs to a process that stopped while it held
 * it: if that process is gone, the entry is treated as dead. */
#define MB_CLAIM_STALE_MS 2000

/*
 * Bring the broker's memory up: take the instance lock (MB_EBUSY: another broker runs, and the
 * message names it: "another broker is already running for instance 'x' (pid 1234, Windows
 * service)"; one lock per instance whatever the namespace, so a console broker and a service
 * exclude each other), check the saved state of persist.dir (persist.h; a bad file refuses the
 * start), purge objects a dead broker left behind, create the regions and the control block,
 * restore the saved state, and publish it with server status "running". On failure everything made
 * so far is released again and the detail message says what failed. flags: MB_OS_SEC_GLOBAL to
 * publish in Global\ (a Windows service), MB_OS_LOCK_SERVICE to record "service" as the lock's
 * holder.
 */
int mb__broker_start(mb_broker_t *b, const mb_config_t *cfg, int flags);

/*
 * Every MB_BROKER_TICK_MS: hold the control block to the broker's private copies
 * (mb__trust_check: forged fields repaired, reported as damage), refresh the broker
 * heartbeat in the control block, sweep the
 * client table (mb__broker_sweep) and report rising failure counters (commits refused in a
 * region: MB_EV_COMMIT_REFUSED; allocations refused by an exhausted pool:
 * MB_EV_POOL_EXHAUSTED), each at once and then at most once per MB_BROKER_REPORT_EVERY_MS.
 */
void mb__broker_tick(mb_broker_t *b);

/*
 * Sweep the client table once: an attached client whose process exited (the OS's word,
 * through a process watch, else asked of the OS by pid and start time) becomes DEAD
 * (reason MB_DEAD_EXITED) and is logged; one whose heartbeat is older than
 * clients.heartbeat_timeout_ms (unless 0) is *hung*: logged once (MB_EV_CLIENT_HUNG), shown
 * so by status, and kept whole - entry, slots, blocks - until its process exits or it beats
 * again; a DEAD one whose grace period is over is freed with every slot it held;
 * clients_attached is set to the live count (hung ones included). Opens a process watch for
 * each newly attached client (armed in the loop through watch_ops) and closes those of
 * entries that changed. Returns the number of entries changed.
 */
int mb__broker_sweep(mb_broker_t *b);

/*
 * Let the loop wait for client exits (ops, which must outlive its use), or stop that (NULL):
 * the watches already open are armed with the new ops, or disarmed from the old ones (the
 * watches stay open; the sweep polls them). Call on the loop's thread; set NULL before the
 * loop's handles are closed.
 */
void mb__broker_set_watch_ops(mb_broker_t *b, const mb_broker_watch_ops_t *ops);

/* 1 if client i's current attachment (entry word `word`) is hung (see mb__broker_sweep);
 * *since_ns (may be NULL) receives when the broker found it so (monotonic clock). */
int mb__broker_client_hung(const mb_broker_t *b, uint32_t i, uint64_t word, uint64_t *since_ns);

/* How the broker learns that client i's attachment `word` (ATTACHED) ends with its process:
 * "os" (the loop waits for the exit), "poll" (asked of the OS each sweep), "pending" (not
 * swept yet: the next sweep opens its watch). */
const char *mb__broker_client_watch(const mb_broker_t *b, uint32_t i, uint64_t word);

/*
 * Check every slot table (mb__slots_repair): settle pages left locked by a holder that died or
 * never existed; with `deep`, recount page users and slots_used from the owners and free slots
 * with a forged owner. Logs what it found. Run by mb__broker_tick (deep after a reap) and
 * mb__broker_compact (deep).
 */
void mb__broker_slots_check(mb_broker_t *b, int deep);

/* Server status "shutting down" (what game servers see first). */
void mb__broker_begin_stop(mb_broker_t *b);

/* Release everything (after mb__broker_begin_stop); with persist.dir set, save the state
 * first (mb__persist_flush); the instance lock last. */
void mb__broker_stop(mb_broker_t *b);

/* Find a region by name, or NULL. */
mb_region_map_t *mb__broker_region(mb_broker_t *b, const char *name);

/* What mb__broker_evict freed. */
typedef struct mb_broker_evicted_s {
  char name[MB_CLIENT_NAME_MAX]; /* the entry's name ("" for a nameless leftover) */
  uint32_t pid;                  /* its process (0: none recorded) */
  uint32_t reason;               /* why it was dead (MB_DEAD_*), as found or as marked now */
  int marked;                    /* 1: it was still ATTACHED (or CLAIMED) and was found dead now */
  int pending;                   /* 1: a slot's page was held by another process; the next sweep
                                    frees the rest (the entry stays DEAD, nameless) */
  uint64_t slots;                /* slots freed */
  uint64_t blocks;               /* pool objects freed */
} mb_broker_evicted_t;

/*
 * `evict` (an administrator, over the pipe): free client entry i now instead of after the grace
 * period - the reaper's own steps (mark dead if the OS says its process is gone, take it
 * CLAIMED, fold its counter shares, release its pool objects and slots, store FREE: clients.h),
 * only without the wait. Never for a live process: MB_EBUSY naming it when the OS says its
 * process runs (attached, hung or not: its slots are in use; stop the process first, then evict)
 * or when it is attaching or detaching right now; MB_ENOENT when the entry is FREE; MB_EBUSY when
 * the entry changed meanwhile (try again). Logged at info with its reason.
 */
int mb__broker_evict(mb_broker_t *b, uint32_t i, mb_broker_evicted_t *out);

/* Compact every slotted region, after a deep mb__broker_slots_check; *freed receives the bytes
 * given back. */
int mb__broker_compact(mb_broker_t *b, uint64_t *freed);

/* Sum of committed bytes over all regions (data) and the control block. */
uint64_t mb__broker_committed(const mb_broker_t *b);

#endif /* MB_BROKER_H */
