/*
 * membroker.h - the client library of membroker: what a game server links to attach to the
 * broker of its host, read and update the shared game state, map regions and keep its
 * players' state in slots that survive a crash of the game server.
 *
 * Plain C, usable from C++; no libuv, cJSON or Windows types. Every call that can fail
 * returns 0 or a negative MB_E* code (mb_strerror, mb_err_name); the detail of the last
 * failure on the calling thread is in mb_last_error(). The library never prints: give
 * mb_attach_options_t.log a function to hear what it has to say.
 *
 * Threads: one mb_client_t is used by one thread at a time (the optional heartbeat thread
 * the library starts is internal and safe). Different mb_client_t may be used in parallel.
 *
 * A typical game server:
 *
 *   mb_client_t *c;
 *   mb_attach_options_t o;
 *   mb_attach_options_init(&o);
 *   o.timeout_ms = 10000;      // wait up to 10 s for the broker to come up
 *   o.heartbeat_ms = 1000;     // a library thread keeps the heartbeat
 *   if ((rc = mb_attach("default", "zone-1", &o, &c)) != 0) { ... mb_strerror(rc) ... }
 *   void *slot;
 *   mb_player_connect(c, player_id, &slot);   // the player's bytes; kept across a crash
 *   mb_counter_add(c, MB_COUNTER_PLAYERS, 1, NULL);
 *   ...
 *   rc = mb_tick(c);                          // every frame: cheap
 *   if (rc == MB_ENOTRUNNING || rc == MB_ESTALE)  // broker stopped or restarted / reaped us
 *     mb_reattach(c, &o);                     // waits like mb_attach; repeat while it fails
 *   mb_detach(c);
 */
#ifndef MEMBROKER_H
#define MEMBROKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMBROKER_VERSION_MAJOR 0
#define MEMBROKER_VERSION_MINOR 1
#define MEMBROKER_VERSION_PATCH 0

/* MB_API marks the library's functions (empty by default; a build may define it, e.g. for
 * symbol visibility). The shared library exports every public function on every platform. */
#ifndef MB_API
#define MB_API
#endif

/* ---- errors -------------------------------------------------------------------------------- */

/* X(NAME, "code_name", "sentence"). Codes are only ever appended: their numbers are stable. */
#define MB_ERROR_MAP(X)                                                                            \
  X(INVAL, "invalid_argument", "invalid argument")                                                 \
  X(NOMEM, "out_of_memory", "out of memory")                                                       \
  X(NOENT, "not_found", "no such object")                                                          \
  X(EXIST, "already_exists", "object already exists")                                              \
  X(ACCES, "access_denied", "access denied")                                                       \
  X(NAMETOOLONG, "name_too_long", "name too long")                                                 \
  X(RANGE, "out_of_range", "address or size out of range")                                         \
  X(NOSPC, "no_space", "commit refused: commit limit reached or shared memory full")               \
  X(BUSY, "busy", "resource busy")                                                                 \
  X(TIMEOUT, "timeout", "timed out")                                                               \
  X(SRCH, "no_such_process", "no such process")                                                    \
  X(IO, "io_error", "input/output error")                                                          \
  X(NOTSUP, "not_supported", "operation not supported on this platform")                           \
  X(BADMAGIC, "bad_magic", "not a membroker object (bad magic)")                                   \
  X(VERSION, "version_mismatch", "layout version mismatch")                                        \
  X(NOTRUNNING, "broker_not_running", "broker is not running")                                     \
  X(FULL, "table_full", "table full")                                                              \
  X(CONFIG, "bad_config", "invalid configuration")                                                 \
  X(OS, "os_error", "operating system error")                                                      \
  X(INTERNAL, "internal", "internal error")                                                        \
  X(STALE, "stale",                                                                                \
    "attachment is stale: the broker declared this client dead or another process took its "       \
    "entry over")                                                                                  \
  X(CORRUPT, "corrupt", "shared memory holds an impossible value (damaged or forged)")

enum mb__error_index {
#define MB__X(name, code, msg) MB__EIDX_##name,
  MB_ERROR_MAP(MB__X)
#undef MB__X
      MB__EIDX_COUNT
};

/* Success is plain 0 (no MB_OK: <windows.h> has a macro of that name). */
enum mb_error {
#define MB__X(name, code, msg) MB_E##name = -(MB__EIDX_##name + 1),
  MB_ERROR_MAP(MB__X)
#undef MB__X
};

/* A sentence describing err (0 gives "success"; an unknown code gives "unknown error"). */
MB_API const char *mb_strerror(int err);

/* The stable snake_case name of err ("ok", "not_found", ...; "unknown" if not a code). */
MB_API const char *mb_err_name(int err);

/* The detail message of the last failure on this thread ("" if none), e.g. "no broker runs
 * for instance 'default' (no control block /membroker.default.state)". */
MB_API const char *mb_last_error(void);

/* ---- attach ------------------------------------------------------------------------------- */

typedef struct mb_client_s mb_client_t;

/* Levels of the messages the library hands to mb_attach_options_t.log. */
enum mb_client_log_level {
  MB_CLIENT_LOG_ERROR = 0,
  MB_CLIENT_LOG_WARN = 1,
  MB_CLIENT_LOG_INFO = 2,
};

typedef void (*mb_log_fn)(void *user, int level, const char *message);

/*
 * mb_attach_options_t.flags. Without either flag, mb_attach and mb_reattach find the broker
 * wherever it runs: on Windows they look for its control block in Global\ (a broker run as
 * a service) first, then in Local\ (a console broker, `membroker run`, of this session), and
 * open everything else in the namespace where they found it. The flags only narrow that
 * search; both at once are MB_EINVAL. Elsewhere (Linux) there is one namespace and they
 * change nothing.
 */
enum {
  /* Global\ only: insist on a broker run as a Windows service. */
  MB_ATTACH_GLOBAL = 1u << 0,
  /* Local\ only: insist on a console broker of this session. */
  MB_ATTACH_LOCAL = 1u << 1,
};

typedef struct mb_attach_options_s {
  uint32_t size;         /* sizeof(mb_attach_options_t), set by mb_attach_options_init */
  uint32_t flags;        /* MB_ATTACH_* */
  uint32_t timeout_ms;   /* keep trying this long while the broker is not (yet) running,
                            with backoff from 10 ms to 1 s; 0 = one try. Default 0 */
  uint32_t heartbeat_ms; /* a library thread beats every heartbeat_ms; 0 = no thread: call
                            mb_tick at least every heartbeat_timeout_ms/2. Default 0 */
  mb_log_fn log;         /* what the library has to say (retries, reattach); NULL = nothing.
                            Repeated messages are rate-limited to one in 10 s. */
  void *log_user;        /* first argument of log */
} mb_attach_options_t;

/* Defaults: size set, everything else 0. */
MB_API void mb_attach_options_init(mb_attach_options_t *opts);

/*
 * Attach to the broker of `instance` ("default" when NULL) as `name` (1..31 bytes of
 * [A-Za-z0-9._-]), which identifies this game server across restarts. opts may be NULL.
 *
 * Checks the control block's magic, layout version and sizes, waits (up to timeout_ms) for
 * it to be initialised, and takes an entry in the broker's client table. If an entry of the
 * same name belongs to a process that died (or that the broker reaped) and its grace period
 * has not run out, this client takes it over, with every player slot it held, bytes intact.
 *
 * Where the broker is: see MB_ATTACH_GLOBAL. A control block that exists but refuses this
 * process is MB_EACCES, never hidden by looking in the other namespace. With no broker
 * anywhere, MB_ENOTRUNNING's message names every object tried, e.g. "no broker runs for
 * instance 'default' (tried Global\membroker.default.state and Local\membroker.default.state)".
 *
 * Errors: MB_ENOTRUNNING (no broker, or it is stopping), MB_EVERSION (the broker's layout
 * differs from this library's), MB_EBADMAGIC, MB_EACCES (not permitted to map the broker's
 * objects), MB_EFULL (client table full), MB_EEXIST (a live process is attached under that
 * name), MB_EINVAL (bad name or flags), MB_ETIMEOUT is never returned: after timeout_ms the last
 * error stands.
 */
MB_API int mb_attach(const char *instance, const char *name, const mb_attach_options_t *opts,
                     mb_client_t **client);

/*
 * Detach cleanly: release every player slot this client holds, leave the client table and
 * unmap everything. `client` is freed, whatever the result (an error only says that the
 * broker's state could not be updated, e.g. it had restarted: nothing leaks in this process).
 * A slot whose page stays locked by another process for 2 s is left to the broker, which frees
 * it at a later sweep (the entry stays dead and nameless meanwhile; nobody gets the slot).
 * A game server that wants its slots kept across a restart does not detach: it exits or
 * crashes, and attaches again under the same name within the broker's grace period.
 */
MB_API int mb_detach(mb_client_t *client);

/*
 * Keep the attachment for a later process and let go of this handle: the heartbeat thread
 * stops, everything is unmapped and `client` is freed, but the table entry and the player
 * slots stay. The broker notices when this process exits (or, if it runs on, when its
 * heartbeat runs out) and keeps the slots for the grace period, for a process that attaches
 * under the same name. This is how a game server restarts on purpose without losing state.
 */
MB_API int mb_close(mb_client_t *client);

/*
 * Heartbeat and health check; cheap (no system call on the fast path; the broker's process
 * is asked of the OS once a second). Returns 0 while the broker runs (or drains);
 * MB_ENOTRUNNING once it is shutting down or stopped, or its process is gone - which is also
 * how a broker restart shows (never MB_ESTALE): the restarted broker has a new control block, and
 * the one this client maps says stopped; MB_ESTALE if the broker declared this client dead (it
 * saw the process gone, or an operator evicted the entry) or another process took its entry
 * over. A client that only misses heartbeats is shown hung and keeps its entry. After either
 * code, call mb_reattach. Slot pointers stay readable until then.
 */
MB_API int mb_tick(mb_client_t *client);

/*
 * Attach again under the same instance and name (after mb_tick said the broker stopped or
 * restarted, or reaped this client), with `opts` (NULL: those of the first attach). On
 * success the client is as after mb_attach, and slot pointers of the old attachment are
 * invalid: if the broker is the same one (mb_info's generation did not change) the slots
 * were taken back and mb_player_find gives their new addresses. A restarted broker (new
 * generation) with persist.dir comes back with what its last save held (counters without this
 * client's share, the status message, the slots of persisted regions, held under this name:
 * mb_player_find finds them); without persist.dir it starts with empty regions and zero
 * counters. Either way a game server adds its players to the counters again after a new
 * generation. On failure the client stays detached (calls say MB_ENOTRUNNING) and
 * mb_reattach may be repeated.
 */
MB_API int mb_reattach(mb_client_t *client, const mb_attach_options_t *opts);

/* ---- the shared game state ---------------------------------------------------------------- */

/* Server status, as in the control block. */
enum mb_server_status_value {
  MB_SERVER_STOPPED = 0,
  MB_SERVER_RUNNING = 1,
  MB_SERVER_SHUTTING_DOWN = 2,
  MB_SERVER_DRAINING = 3,
};

#define MB_MESSAGE_MAX 256 /* bytes of the status message, NUL included */

typedef struct mb_info_s {
  uint32_t server_status; /* MB_SERVER_* */
  uint32_t broker_pid;
  uint64_t generation; /* unique per broker start (grows): compare to see a restart */
  uint64_t players;    /* the shared counters (MB_COUNTER_*) */
  uint64_t npcs;
  uint64_t last_update_wall_ns; /* last change of a counter or the message (ns since 1970) */
  uint32_t client_index;        /* this client's entry in the broker's table */
  uint32_t slot_size;           /* bytes of a player slot; 0 if the broker has no slots */
  uint64_t slot_count;          /* slots in all */
  uint64_t slots_held;          /* slots this client holds */
  char message[MB_MESSAGE_MAX]; /* UTF-8 status message, never torn */
} mb_info_t;

/* Read the shared state. MB_EBUSY if the message could not be read consistently (a writer
 * died mid-way and was not replaced yet); the other fields are valid then. */
MB_API int mb_info(mb_client_t *client, mb_info_t *info);

/* The shared counters. */
enum mb_counter {
  MB_COUNTER_PLAYERS = 0,
  MB_COUNTER_NPCS = 1,
};

/* Set a counter (atomic). The value is nobody's share (see mb_counter_add): every client's
 * share of that counter is cleared. MB_EINVAL for an unknown counter. */
MB_API int mb_counter_set(mb_client_t *client, int counter, uint64_t value);

/*
 * Add delta to a counter atomically, with every other process adding at the same time; no
 * update is lost. *result (may be NULL) receives the new value. A delta that would take the
 * counter below zero or past UINT64_MAX fails with MB_ERANGE and changes nothing. The delta is
 * also added to this client's share (kept in its entry, across a restart that takes the entry
 * back): a broker with persist saves the counters without the shares of the game servers in
 * its table, since each counts its players again when it reattaches to a new generation - so
 * do that (count again after mb_reattach when mb_info's generation changed), and the counters
 * stay true across broker restarts.
 */
MB_API int mb_counter_add(mb_client_t *client, int counter, int64_t delta, uint64_t *result);

/* Replace the status message (UTF-8, cut to 255 bytes at a character boundary). Text that is
 * not valid UTF-8 (overlong forms, surrogates, a cut sequence) is refused with MB_EINVAL, naming
 * the byte offset, and the old message stays. MB_EBUSY if a live writer held it for over a
 * second. */
MB_API int mb_set_message(mb_client_t *client, const char *text);

/* ---- regions ------------------------------------------------------------------------------ */

/*
 * Map the region `name` (read and write) and return its data bytes. The mapping lives until
 * detach. Of a region committed at start every byte may be used; of a lazy region only the
 * slots handed out by mb_player_connect (touching other pages faults). MB_ENOENT if the broker
 * has no such region.
 */
MB_API int mb_region(mb_client_t *client, const char *name, void **base, uint64_t *size);

/* ---- player slots ------------------------------------------------------------------------- */

/*
 * The slot of player `player_id` in the broker's slotted region (the first region with
 * slot_size in the config, "players" by default), committing its page on demand.
 * If this client already holds a slot for the player (also one taken back after a crash), that
 * slot is returned with its bytes; otherwise a free slot is claimed and reads as zero. *slot
 * stays valid until the player is disconnected, the client detaches or reattaches.
 * Errors: MB_EFULL (no free slot), MB_ENOSPC (the commit was refused: commit limit or shared
 * memory full; nothing is claimed), MB_ENOENT (the broker has no slotted region).
 * Player ids are the game server's own: two clients may each hold a slot for the same id.
 */
MB_API int mb_player_connect(mb_client_t *client, uint64_t player_id, void **slot);

/* The slot this client holds for player_id, or MB_ENOENT. */
MB_API int mb_player_find(mb_client_t *client, uint64_t player_id, void **slot);

/* Free the player's slot (its page is given back by the broker's compact). MB_ENOENT if this
 * client holds no slot for the player. MB_EBUSY if a page of the slot stayed locked by another
 * process for 2 s (one stopped in a claim there): the player keeps the slot (still found), and
 * a later disconnect, or the detach, frees it. */
MB_API int mb_player_disconnect(mb_client_t *client, uint64_t player_id);

/*
 * Iterate over the slots this client holds: start with *cursor = 0; each call gives the next
 * player id and slot and returns 0, and MB_ENOENT when there are no more. Connecting or
 * disconnecting players during a walk may make it skip or repeat slots.
 */
MB_API int mb_player_next(mb_client_t *client, uint64_t *cursor, uint64_t *player_id, void **slot);

/* ---- shared pools ------------------------------------------------------------------------ */

/*
 * Fixed-size object pools that live in the broker's shared memory (declared in its config,
 * "pools"): any attached process allocates and frees without a lock, and a game server that
 * crashes and comes back under its name within the grace period finds its objects where it
 * left them (mb_pool_next). A dead client's objects go back to the pool after the grace
 * period. Blocks are not cleared: a fresh block reads as zero, a reused one holds what was
 * there (or, in a debug pool, the poison pattern).
 */
typedef struct mb_pool_s mb_pool_t;

/* mb_pool_open flags */
enum {
  /* No thread caches: nothing is kept in process memory. Each thread's frees go to its
   * magazine in the pool's shared memory and its allocs come from there (two CAS a call on
   * lines of its own); a magazine's blocks count as free (allocated and freed move at every
   * call) and any client's alloc takes one when the pool has no other free block. */
  MB_POOL_NO_CACHE = 1u << 0,
};

/*
 * The pool `name` (a handle kept until detach; it stays valid across mb_reattach; opening it
 * again gives the same handle with the new flags). MB_ENOENT if the broker has no such pool.
 * By default each thread keeps a cache of up to 64 free blocks in front of the pool, moved
 * to and from it 32 at a time; a thread's cache goes back to the pool when the thread exits,
 * at mb_pool_flush, detach, close and reattach. A block may be freed by any thread (into that
 * thread's cache). Pool calls may come from many threads at once, but not while their client
 * detaches, closes or reattaches, nor while the handle is opened again with other flags
 * (which gives every thread's cache of it back). Caches belong to threads: do not use a
 * cached pool from fibers that move between threads. After fork(), attach anew in the child
 * (mb_attach); a handle from the parent must not be used there: the child would share the
 * parent's entry and a copy of its thread caches. The library refuses such a client and its
 * pool handles in the child with MB_EINVAL (a fork handler empties the child's copy of the
 * forking thread's caches, so even a would-be cache hit, inline too, asks the library), also
 * for detach, close and reattach, and never gives a copied cache's blocks back.
 */
MB_API int mb_pool_open(mb_client_t *client, const char *name, unsigned flags, mb_pool_t **pool);

/* Give the calling thread's cached blocks of the pool back to it now. */
MB_API int mb_pool_flush(mb_pool_t *pool);

/*
 * One object of the pool's object size and alignment. MB_EFULL when the pool is exhausted
 * (counted as a miss), MB_ESTALE when this client is no longer attached; a debug pool returns
 * MB_EIO when the block it was about to hand out had been written after its free (use after
 * free: the block is set aside and counted; the next call goes on).
 */
MB_API int mb_pool_alloc(mb_pool_t *pool, void **obj);

/*
 * Give an object back (NULL does nothing). MB_EINVAL, with nothing changed, for a pointer
 * that is not the start of a block of this pool or a block that is not in use (a double
 * free); any client may free any client's object.
 */
MB_API int mb_pool_free(mb_pool_t *pool, void *obj);

/*
 * Iterate over the objects this client holds in the pool (start with *cursor = 0): 0 with
 * the next one, MB_ENOENT at the end. The cursor is a block index: each call looks at the
 * blocks from *cursor on and leaves *cursor just past the object it returns. So freeing the
 * object just returned (or any one returned before) during the walk is allowed: every other
 * object this client holds is still visited exactly once. An object freed before the walk
 * reaches it is not visited; one allocated during the walk is visited if its block lies past
 * the cursor, and not otherwise.
 */
MB_API int mb_pool_next(mb_pool_t *pool, uint64_t *cursor, void **obj);

/*
 * A shared pool's figures: the same figures, under the same names and with the same values,
 * as the broker's `pools` command (`mbctl pools --json`, README "Shared object pools"); the list
 * they come from is common/stats.h's MB_POOL_STATS, and a test holds this struct to it. Versioned:
 * set `size` to sizeof(mb_shared_pool_stats_t) before the call; a later library fills only the
 * fields that fit in `size` (a later header appends fields, never moves one) and sets `size`
 * to the bytes it filled and `version` to MB_SHARED_POOL_STATS_VERSION as it knows it.
 */
#define MB_SHARED_POOL_STATS_VERSION 1u
typedef struct mb_shared_pool_stats_s {
  uint32_t size;        /* in: sizeof this struct as the caller knows it; out: bytes filled */
  uint32_t version;     /* out: the library's MB_SHARED_POOL_STATS_VERSION */
  uint64_t object_size; /* bytes of an object */
  uint64_t align;       /* alignment of the objects */
  uint64_t capacity;    /* objects the pool holds */
  uint64_t in_use;      /* objects out of the pool now (held, or in some thread's cache) */
  uint64_t free;        /* objects in the pool now: capacity - in_use */
  uint64_t allocated;   /* objects handed out, ever (to thread caches, with caching) */
  uint64_t freed;       /* objects given back, ever (reclaimed ones included) */
  uint64_t peak;        /* the highest in_use seen */
  uint64_t min_free;    /* the lowest free seen: capacity - peak */
  uint64_t misses;      /* allocations refused: the pool was empty */
  uint64_t reclaimed;   /* objects taken back from dead clients */
  uint64_t errors;      /* frees refused: double free, foreign pointer, poison overwritten */
  uint64_t refills;     /* thread-cache refills: a chain of up to 32 objects taken at once */
  uint64_t bytes;       /* bytes of the pool's blocks */
  uint64_t debug;       /* 1: a debug pool (every free checked, freed blocks poisoned), else 0 */
} mb_shared_pool_stats_t;

/*
 * The pool's figures now, read from shared memory as the broker reads them (in_use and free
 * are exact while nothing moves; under traffic they are a moment's figures). MB_EINVAL if
 * stats is NULL or stats->size is below the size of version 1 (128 bytes); MB_ESTALE when
 * this client is no longer attached.
 */
MB_API int mb_pool_stats(mb_pool_t *pool, mb_shared_pool_stats_t *stats);

/* ---- shared pools: the inline fast path (opt-in: #define MB_POOL_INLINE before including) --
 *
 * For game loops that allocate and free millions of objects a second: mb_pool_alloc_inline
 * and mb_pool_free_inline do in the caller's code what mb_pool_alloc and mb_pool_free do
 * first (take a block from the calling thread's cache, or put one back, and stamp it in
 * shared memory), and call the library for everything else (an empty or full cache, another
 * pool, a stale attachment, a bad pointer, an uncached or debug pool). Same results, same
 * errors, same crash guarantees as the out-of-line calls, which stay the default; the two may
 * be mixed freely on one pool.
 *
 * The thread cache's fields the inline code reads are an ABI of their own, versioned by
 * MB_POOL_TCACHE_ABI: a library of another version never hands a cache to the inline code (it
 * then always calls the library: correct, not faster). Each translation unit that includes
 * this header with MB_POOL_INLINE keeps its own thread-local pointer to the thread's last cache.
 * Do not call the inline functions from a thread-exit destructor that may run after the
 * library's own (it frees the thread's caches).
 */
#define MB_POOL_TCACHE_ABI 1u
#define MB_POOL_TCACHE_MAX 64u           /* free blocks a thread caches per pool */
#define MB_POOL_TCACHE_IN_USE (1u << 31) /* a block's stamp: allocated by client `owner` */
#define MB_POOL_TCACHE_CACHED (1u << 30) /* a block's stamp: in a thread cache of `owner` */

/* ABI 1: a thread's cache of one pool, as the inline code reads it. Written only by its thread
 * (and by the library under its lock when the client detaches: no pool call may run then). */
typedef struct mb_pool_tcache_s {
  uint32_t abi;               /* MB_POOL_TCACHE_ABI */
  uint32_t n;                 /* cached free blocks: idx[0 .. n) */
  const mb_pool_t *pool;      /* the handle it serves; NULL: none */
  const uint64_t *entry_word; /* the client's entry word in shared memory ... */
  uint64_t word;              /* ... while it holds this value, the cache is this attachment's */
  uint32_t *stamps;           /* the pool's block stamps (shared memory) */
  unsigned char *blocks;      /* the pool's first block */
  uint64_t span;              /* bytes of all blocks */
  uint32_t stride;            /* bytes from one block to the next */
  int32_t shift;              /* log2(stride); -1: frees take the library call */
  uint32_t owner;             /* the client's owner number in stamps */
  uint32_t cap;               /* MB_POOL_TCACHE_MAX */
  uint32_t idx[MB_POOL_TCACHE_MAX];
} mb_pool_tcache_t;

/* mb_pool_alloc / mb_pool_free, then *tc set to the calling thread's cache of `pool` (NULL if
 * it has none or abi is not the library's). For the inline functions below. */
MB_API int mb_pool_alloc_tc(mb_pool_t *pool, void **obj, mb_pool_tcache_t **tc, unsigned abi);
MB_API int mb_pool_free_tc(mb_pool_t *pool, void *obj, mb_pool_tcache_t **tc, unsigned abi);

#ifdef MB_POOL_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define MB__PTC_LOAD64(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define MB__PTC_LOAD32(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define MB__PTC_STORE32(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#else /* MSVC: volatile accesses are acquire loads and release stores on x86/x64 */
#define MB__PTC_LOAD64(p) (*(const volatile uint64_t *)(p))
#define MB__PTC_LOAD32(p) (*(const volatile uint32_t *)(p))
#define MB__PTC_STORE32(p, v) (*(volatile uint32_t *)(p) = (v))
#endif
#if defined(__cplusplus)
#define MB__PTC_TLS thread_local
#elif defined(_MSC_VER)
#define MB__PTC_TLS __declspec(thread)
#else
#define MB__PTC_TLS _Thread_local
#endif

static MB__PTC_TLS mb_pool_tcache_t *mb__ptc_last; /* this thread's last cache, this unit */

/* mb_pool_alloc, its common case inline. */
static inline int mb_pool_alloc_inline(mb_pool_t *pool, void **obj) {
  mb_pool_tcache_t *t = mb__ptc_last;
  uint32_t n;
  /* n is read once, before the entry word's acquire load (which would force a second read). */
  if (t != NULL && t->pool == pool && pool != NULL && (n = t->n) > 0 && obj != NULL &&
      MB__PTC_LOAD64(t->entry_word) == t->word) {
    uint32_t i = t->idx[n - 1];
    t->n = n - 1;
    MB__PTC_STORE32(&t->stamps[i], MB_POOL_TCACHE_IN_USE | t->owner);
    *obj = t->blocks + (size_t)i * t->stride;
    return 0;
  }
  return mb_pool_alloc_tc(pool, obj, &mb__ptc_last, MB_POOL_TCACHE_ABI);
}

/* mb_pool_free, its common case inline (a block of this client's, into a cache with room). */
static inline int mb_pool_free_inline(mb_pool_t *pool, void *obj) {
  mb_pool_tcache_t *t = mb__ptc_last;
  uint32_t n;
  /* pool != NULL: a cache let go (detach, close, reattach, a flags change) keeps its
   * pointer here with pool NULL; a NULL handle must get the library's MB_EINVAL. */
  if (t != NULL && t->pool == pool && pool != NULL && obj != NULL && (n = t->n) < t->cap &&
      t->shift >= 0 && MB__PTC_LOAD64(t->entry_word) == t->word) {
    /* One unsigned subtraction: below the first block wraps to a huge offset. */
    uint64_t off = (uint64_t)((uintptr_t)obj - (uintptr_t)t->blocks);
    if (off < t->span && (off & (t->stride - 1)) == 0) {
      uint32_t i = (uint32_t)(off >> t->shift), mine = t->owner;
      if (MB__PTC_LOAD32(&t->stamps[i]) == (MB_POOL_TCACHE_IN_USE | mine)) {
        t->idx[n] = i;
        t->n = n + 1;
        MB__PTC_STORE32(&t->stamps[i], MB_POOL_TCACHE_CACHED | mine);
        return 0;
      }
    }
  }
  return mb_pool_free_tc(pool, obj, &mb__ptc_last, MB_POOL_TCACHE_ABI);
}
#endif /* MB_POOL_INLINE */

/* ---- game data maps (the GMAP format) ----------------------------------------------------- */

/*
 * A GMAP file, little-endian: a 64-byte header, tile_count tiles (width x height of them, row
 * by row: tile (x, y) is number y * width + x), then object_count objects. Nothing else.
 * Version 2 carries a checksum: XXH3-64 (xxHash, seed 0) of the whole file with the 8 bytes
 * of `checksum` read as 0; the broker refuses a file whose bytes do not give it. Version 1
 * (no checksum) is no longer read: `gmaptool upgrade OLD NEW` converts a file.
 */
#define MB_GMAP_SIGNATURE 0x50414D47u /* the bytes 'G' 'M' 'A' 'P' read as a little-endian word */
#define MB_GMAP_VERSION 2u
typedef struct mb_gmap_header_s {
  uint32_t signature; /* MB_GMAP_SIGNATURE */
  uint32_t version;   /* MB_GMAP_VERSION */
  uint32_t width;
  uint32_t height;
  uint32_t tile_count; /* width * height */
  uint32_t object_count;
  uint64_t checksum;    /* XXH3-64 of the file, these 8 bytes as 0 (offset 24) */
  uint32_t reserved[8]; /* 0 */
} mb_gmap_header_t;     /* 64 bytes */
typedef struct mb_gmap_tile_s {
  uint16_t tile_id;
  uint8_t elevation;
  uint8_t flags;
} mb_gmap_tile_t; /* 4 bytes */
typedef struct mb_gmap_object_s {
  uint32_t object_id;
  float pos_x, pos_y, pos_z;
  float rot_x, rot_y, rot_z;
  uint32_t properties;
} mb_gmap_object_t; /* 32 bytes */

/*
 * Check that data[0..size) is a whole GMAP image before anything in it is used: every header
 * field against the size (signature, version, width x height = tile_count, counts whose bytes
 * overflow or run past the end, bytes after the objects, reserved words). 0, or MB_EBADMAGIC
 * (not GMAP), MB_EVERSION (another version) or MB_EINVAL, with a message that starts with
 * `what` (e.g. the file's name) and names the field. It reads the header only: the checksum
 * is the broker's to verify when it loads the file (a map it shares passed it).
 */
MB_API int mb_gmap_check(const void *data, uint64_t size, const char *what);

/*
 * A map the broker loaded (its config's "maps", or map-load), shared read-only by every game
 * server: one copy in memory for all. MB_ENOENT if there is no map of that name. The handle
 * stays valid (its memory too) until mb_map_close, even if the broker unloads or reloads the
 * map meanwhile; mb_detach and mb_close close the handles still open.
 */
typedef struct mb_map_s mb_map_t;
MB_API int mb_map_open(mb_client_t *client, const char *name, mb_map_t **map);
MB_API const mb_gmap_header_t *mb_map_header(const mb_map_t *map);
/* The tile at (x, y): MB_ERANGE, *tile = NULL, outside width x height. */
MB_API int mb_map_tile(const mb_map_t *map, uint32_t x, uint32_t y, const mb_gmap_tile_t **tile);
/* Object number index: MB_ERANGE, *obj = NULL, at or past object_count. */
MB_API int mb_map_object(const mb_map_t *map, uint32_t index, const mb_gmap_object_t **obj);
MB_API void mb_map_close(mb_map_t *map);

/* ---- private pools and heaps: a game server's own memory -------------------------------- */

/*
 * Statistics of an in-process pool (mb_lpool_stats; a shared pool's are
 * mb_shared_pool_stats_t, mb_pool_stats). Counters run from the pool's creation.
 */
typedef struct mb_pool_stats_s {
  uint64_t capacity;    /* objects the pool can hold at most (max_objects) */
  uint64_t allocs;      /* successful allocations */
  uint64_t frees;       /* successful frees */
  uint64_t in_use;      /* objects not free now: allocated, plus quarantined ones */
  uint64_t peak;        /* the highest in_use ever */
  uint64_t misses;      /* allocations refused: the pool was full (MB_EFULL) or its memory
                           could not be committed (MB_ENOSPC) */
  uint64_t min_free;    /* the fewest free objects there ever were (capacity - peak) */
  uint64_t object_size; /* bytes of an object as created */
  uint64_t block_size;  /* bytes between objects (object_size rounded up to the alignment) */
  uint64_t committed;   /* bytes of memory the pool has committed */
  uint64_t chunks;      /* chunks committed so far */
  uint64_t errors;      /* misuse caught: bad or double frees, use after free, a free list
                           found damaged */
  uint64_t quarantined; /* objects taken out of use because they were written after free */
} mb_pool_stats_t;

/* ---- in-process pools ---- */

typedef struct mb_lpool_s mb_lpool_t;

/* mb_lpool_create flags */
enum {
  /* Catch misuse: a double free, a pointer that is not an object of the pool, and a write
   * to an object after it was freed (freed objects are filled with MB_LPOOL_POISON and checked
   * when handed out again). Costs a memset and a check per operation. */
  MB_POOL_DEBUG = 1u << 0,
  /* Usable from several threads at once (a mutex). Without it, one thread at a time. */
  MB_POOL_THREADSAFE = 1u << 1,
};

#define MB_LPOOL_POISON 0xDB /* the byte freed objects are filled with under MB_POOL_DEBUG */

/*
 * Create a pool of up to max_objects objects of object_size bytes each, aligned to `align`
 * (a power of two up to the page size; 0 = 16). Memory is reserved for max_objects at once
 * (address space only) and committed objects_per_chunk objects at a time (0 = as many as fit
 * in 64 KiB) as the pool grows; it is never given back before mb_lpool_destroy. `name`
 * (1..31 bytes of [A-Za-z0-9._-]) is used in messages and statistics. Objects are not zeroed:
 * one never handed out before reads as zero (fresh pages), a reused one holds what its last
 * user left (under MB_POOL_DEBUG: poison).
 * Errors: MB_EINVAL (bad argument), MB_ENOMEM (no address space), MB_ENOSPC (commit refused).
 */
MB_API int mb_lpool_create(const char *name, size_t object_size, size_t align,
                           size_t objects_per_chunk, size_t max_objects, unsigned flags,
                           mb_lpool_t **pool);

/*
 * Take an object: the most recently freed one, else the next never-used one. MB_EFULL when
 * max_objects are in use, MB_ENOSPC when the next chunk cannot be committed (both counted as
 * misses). MB_EIO when damage is found and nothing is handed out: under MB_POOL_DEBUG "use
 * after free detected in pool 'x' block N" (the object is quarantined: never handed out
 * again) or a damaged free-list link; without it, a free-list link that points outside the
 * pool (the rest of the free list is abandoned). The call after an MB_EIO works normally.
 */
MB_API int mb_lpool_alloc(mb_lpool_t *pool, void **obj);

/*
 * Give an object back. A pointer outside the pool's committed chunks is always refused with
 * MB_EINVAL. Under MB_POOL_DEBUG, so are a double free and a pointer inside the pool that is
 * not the start of an object (the message names the pool and the address); without it those
 * are undefined behaviour, whose damage stays inside the pool's own objects.
 */
MB_API int mb_lpool_free(mb_lpool_t *pool, void *obj);

/* The pool's statistics (a consistent snapshot). */
MB_API int mb_lpool_stats(const mb_lpool_t *pool, mb_pool_stats_t *stats);

/* Destroy the pool: its memory goes back to the OS, objects still in use included. */
MB_API void mb_lpool_destroy(mb_lpool_t *pool);

/* ---- per-purpose heaps ---- */

typedef struct mb_heap_s mb_heap_t;

/* What a heap is for (reported with its statistics). */
enum mb_heap_purpose {
  MB_HEAP_GAME_OBJECTS = 0,
  MB_HEAP_NETWORK = 1,
  MB_HEAP_TEMP = 2,
  MB_HEAP_LOG = 3,
};

/* mb_heap_create flags */
enum {
  /* No lock: the heap is used by one thread at a time (Windows: HEAP_NO_SERIALIZE). */
  MB_HEAP_NO_SERIALIZE = 1u << 0,
};

#define MB_HEAP_MAX_ALLOC ((size_t)1 << 40) /* larger requests fail with MB_ERANGE */

typedef struct mb_heap_stats_s {
  int32_t purpose;        /* MB_HEAP_* */
  uint32_t flags;         /* MB_HEAP_* flags it was created with */
  uint64_t maximum;       /* the cap on bytes_in_use; 0 = none */
  uint64_t bytes_in_use;  /* sum of the sizes of live blocks, as asked for */
  uint64_t peak_in_use;   /* the highest bytes_in_use ever */
  uint64_t blocks;        /* live blocks */
  uint64_t allocations;   /* successful mb_heap_alloc, and mb_heap_realloc of NULL */
  uint64_t reallocations; /* successful mb_heap_realloc of a block */
  uint64_t frees;         /* successful mb_heap_free of a block */
  uint64_t failures;      /* calls refused: maximum reached, out of memory, bad pointer */
  uint64_t committed;     /* bytes the heap has committed now (OS-dependent overhead) */
  uint64_t reserved;      /* address space it holds (Windows: its regions) */
} mb_heap_stats_t;

/*
 * Create a heap for `purpose` (MB_HEAP_*), named `name` (1..31 bytes of [A-Za-z0-9._-]),
 * with `initial` bytes committed at once and at most `maximum` bytes in use (0: growable).
 * Windows: HeapCreate (HEAP_NO_SERIALIZE with MB_HEAP_NO_SERIALIZE). Elsewhere: a
 * boundary-tag heap of our own over reserved virtual memory, with a lock unless
 * MB_HEAP_NO_SERIALIZE.
 */
MB_API int mb_heap_create(const char *name, int purpose, unsigned flags, size_t initial,
                          size_t maximum, mb_heap_t **heap);

/*
 * Allocate size bytes, 16-byte aligned, not zeroed. MB_EINVAL for size 0, MB_ERANGE above
 * MB_HEAP_MAX_ALLOC, MB_ENOSPC if bytes in use would pass the maximum, MB_ENOMEM if the OS
 * refuses.
 */
MB_API int mb_heap_alloc(mb_heap_t *heap, size_t size, void **p);

/*
 * Resize block p to size bytes, keeping its contents up to the smaller size; *np receives
 * the block, which may have moved. p NULL: as mb_heap_alloc. On failure (the errors of
 * mb_heap_alloc, MB_EINVAL if p is not a block of this heap) p is untouched and still valid.
 */
MB_API int mb_heap_realloc(mb_heap_t *heap, void *p, size_t size, void **np);

/* Free block p (NULL: nothing, 0). MB_EINVAL, and nothing freed, if p is not a live block of
 * this heap as far as can be told (a double free is caught unless the block was reused). */
MB_API int mb_heap_free(mb_heap_t *heap, void *p);

/* Give free memory at the heap's end back to the OS where it can; *largest_free (may be NULL)
 * receives the largest free block left committed. */
MB_API int mb_heap_compact(mb_heap_t *heap, size_t *largest_free);

/* Check every block of the heap: 0, or MB_EIO with what is wrong in mb_last_error(). */
MB_API int mb_heap_validate(mb_heap_t *heap);

/* The heap's statistics. */
MB_API int mb_heap_stats(mb_heap_t *heap, mb_heap_stats_t *stats);

/* Destroy the heap with every block in it. NULL is ignored. */
MB_API void mb_heap_destroy(mb_heap_t *heap);

/* The name a pool or heap was created with. */
MB_API const char *mb_lpool_name(const mb_lpool_t *pool);
MB_API const char *mb_heap_name(const mb_heap_t *heap);

/* ---- showing private memory to the operator ---- */

#define MB_TRACK_MAX 10 /* pools and heaps one client can show */

/*
 * Show a private pool or heap in this client's row of the broker's state block, so
 * `mbctl heaps` (and the totals in `mbctl clients`) show the memory of every game server.
 * Its figures are copied when it is tracked and at every mb_publish; pools made
 * MB_POOL_THREADSAFE and heaps without MB_HEAP_NO_SERIALIZE are also copied once a second by
 * the heartbeat thread or mb_tick. The others may be read only by the thread that uses them:
 * call mb_publish from that thread. Tracking survives mb_reattach. MB_EINVAL for NULL or a
 * pool or heap tracked already, MB_EFULL past MB_TRACK_MAX. Untrack (or detach) before
 * destroying the pool or heap.
 */
MB_API int mb_track_lpool(mb_client_t *client, mb_lpool_t *pool);
MB_API int mb_track_heap(mb_client_t *client, mb_heap_t *heap);

/* Stop showing a pool or heap (MB_ENOENT if it is not tracked). */
MB_API int mb_untrack(mb_client_t *client, const void *pool_or_heap);

/* Copy the figures of every tracked pool and heap now (call it from the thread that uses
 * the unsynchronized ones). */
MB_API int mb_publish(mb_client_t *client);

#ifdef __cplusplus
}
#endif

#endif /* MEMBROKER_H */
