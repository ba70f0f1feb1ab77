/*
 * bench-pool.c - what an object costs: allocate + free through one allocator, for 64- and
 * 256-byte objects, one thread and two, as alloc+free pairs and as a batch (1M allocations,
 * then 1M frees, per thread). A benchmark, not a test: scripts/bench.sh runs it once per
 * allocator and round, interleaved, and prints the medians side by side with the ratios.
 *
 *   bench-pool IMPL [REPS]     REPS (default 3) runs of every case; the median is printed
 *
 * IMPL:
 *   malloc      malloc/free of this process: glibc's, or jemalloc's or mimalloc's when
 *               bench.sh preloads them (the allocator found is printed, so a preload that did
 *               not take is seen)
 *   freelist    an unlocked free list over one array: the single-thread floor (1 thread only),
 *               inlined into the loop (the reference for shared-inl)
 *   freelist-call  the same behind an out-of-line call (the reference for shared-tc)
 *   mutexpool   the seed's GameObjectPool: a free list of pointers behind one mutex
 *   lpool       mb_lpool_* (MB_POOL_THREADSAFE with two threads)
 *   shared      mb_pool_* of a broker's shared pool, MB_POOL_NO_CACHE
 *   shared-tc   the same with the per-thread caches
 *   shared-inl  the same through membroker.h's inline fast path (MB_POOL_INLINE)
 *   reclaim     not an allocator: a child process takes 100,000 blocks of a shared pool
 *               (thread cache on) and is SIGKILLed; the time of the broker's sweep that
 *               reaps it and gives every block back ("reclaim blocks=.. ms=..", median)
 *
 * Output, one line per case: "impl=.. size=.. threads=.. mode=pairs|batch ns=.." where ns is
 * wall time per alloc+free of one thread (both threads run the whole count at once). The
 * shared pools add "threads=2p": the pair loop in this process and a child client at once. Every
 * object is written once, so no allocation can be optimised away. POSIX (dlsym tells which
 * malloc is in use).
 */
#define MB_POOL_INLINE  /* shared-inl: membroker.h's inline fast path (before any include) */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define MB_BENCH_NAME "bench-pool"
#include "bench.h"
#include "atomics.h"
#include "broker.h"
#include "log.h"
#include "membroker.h"

#define PAIRS (2u << 20)            /* alloc+free pairs per thread */
#define BATCH (1u << 20)            /* objects per thread in a batch */
#define CAPACITY (2 * BATCH + 8192) /* pools hold both threads' batches and their caches */
#define ALIGN 16

/* Each allocator's two timed loops are functions of their own (MB_BENCH_LOOPS below), so the
 * allocator's calls in them are direct calls, or inlined where its code is visible (the
 * unlocked free list, the shared pool's inline fast path): what a game loop gets. */
typedef struct impl_s {
  const char *name;
  int max_threads;
  void (*setup)(size_t size, int threads);
  void (*pairs)(uint32_t n);              /* n alloc+free pairs, each object written once */
  void (*batch)(void **held, uint32_t n); /* n allocations into held[], then n frees */
  void (*teardown)(void);
} impl_t;

/* The timed loops of one allocator whose calls are ALLOC (an expression giving the object or
 * NULL) and RELEASE(p). */
#define MB_BENCH_LOOPS(name, ALLOC, RELEASE)                                                       \
  static void name##_pairs(uint32_t n) {                                                           \
    uint32_t i;                                                                                    \
    for (i = 0; i < n; i++) {                                                                      \
      void *p = ALLOC;                                                                             \
      if (p == NULL)                                                                               \
        die("alloc (pairs)", 0);                                                                   \
      *(volatile uint64_t *)p = i;                                                                 \
      RELEASE(p);                                                                                  \
    }                                                                                              \
  }                                                                                                \
  static void name##_batch(void **held, uint32_t n) {                                              \
    uint32_t i;                                                                                    \
    for (i = 0; i < n; i++) {                                                                      \
      if ((held[i] = ALLOC) == NULL)                                                               \
        die("alloc (batch)", 0);                                                                   \
      *(volatile uint64_t *)held[i] = i;                                                           \
    }                                                                                              \
    for (i = 0; i < n; i++)                                                                        \
      RELEASE(held[i]);                                                                            \
  }

/* ---- malloc ---- */
static size_t g_size;
static void malloc_setup(size_t size, int threads) {
  g_size = size;
  (void)threads;
}
MB_BENCH_LOOPS(malloc, malloc(g_size), free)
static void nothing(void) {}

/* ---- one array of blocks, carved once: the free lists below share it ---- */
static char *g_arena;
static char *g_bump, *g_end;
static void arena_setup(size_t size) {
  g_size = size;
  if ((g_arena = malloc((size_t)CAPACITY * size)) == NULL)
    die("arena", 0);
  g_bump = g_arena;
  g_end = g_arena + (size_t)CAPACITY * size;
}
static void arena_teardown(void) {
  free(g_arena);
  g_arena = NULL;
}

/* ---- unlocked free list ---- */
static void *g_free;
static void freelist_setup(size_t size, int threads) {
  (void)threads;
  arena_setup(size);
  g_free = NULL;
}
static inline void *freelist_alloc(void) {
  void *p = g_free;
  if (p != NULL) {
    memcpy(&g_free, p, sizeof g_free);
    return p;
  }
  if (g_bump == g_end)
    return NULL;
  p = g_bump;
  g_bump += g_size;
  return p;
}
static inline void freelist_release(void *p) {
  memcpy(p, &g_free, sizeof g_free);
  g_free = p;
}
MB_BENCH_LOOPS(freelist, freelist_alloc(), freelist_release)
/* The same free list behind an out-of-line call: the floor for mb_pool_alloc / mb_pool_free. */
static __attribute__((noinline)) void *freelist_alloc_call(void) {
  return freelist_alloc();
}
static __attribute__((noinline)) void freelist_release_call(void *p) {
  freelist_release(p);
}
MB_BENCH_LOOPS(freelist_call, freelist_alloc_call(), freelist_release_call)

/* ---- the seed's GameObjectPool: a stack of free pointers behind a mutex ---- */
static mb_os_mutex_t g_lock;
static void **g_stack;
static size_t g_top;
static void mutexpool_setup(size_t size, int threads) {
  size_t i;
  (void)threads;
  arena_setup(size);
  if ((g_stack = malloc((size_t)CAPACITY * sizeof *g_stack)) == NULL ||
      mb_os_mutex_init(&g_lock) != 0)
    die("mutex pool", 0);
  for (i = 0; i < CAPACITY; i++) /* the seed fills its free list up front */
    g_stack[i] = g_arena + (CAPACITY - 1 - i) * size;
  g_top = CAPACITY;
}
static inline void *mutexpool_alloc(void) {
  void *p = NULL;
  mb_os_mutex_lock(&g_lock);
  if (g_top > 0)
    p = g_stack[--g_top];
  mb_os_mutex_unlock(&g_lock);
  return p;
}
static inline void mutexpool_release(void *p) {
  mb_os_mutex_lock(&g_lock);
  g_stack[g_top++] = p;
  mb_os_mutex_unlock(&g_lock);
}
MB_BENCH_LOOPS(mutexpool, mutexpool_alloc(), mutexpool_release)
static void mutexpool_teardown(void) {
  mb_os_mutex_destroy(&g_lock);
  free(g_stack);
  arena_teardown();
}

/* ---- mb_lpool ---- */
static mb_lpool_t *g_lpool;
static void lpool_setup(size_t size, int threads) {
  int rc = mb_lpool_create("bench", size, ALIGN, 0, CAPACITY, threads > 1 ? MB_POOL_THREADSAFE : 0,
                           &g_lpool);
  if (rc != 0)
    die("mb_lpool_create", rc);
}
static inline void *lpool_alloc(void) {
  void *p;
  return mb_lpool_alloc(g_lpool, &p) == 0 ? p : NULL;
}
static inline void lpool_release(void *p) {
  mb_lpool_free(g_lpool, p);
}
MB_BENCH_LOOPS(lpool, lpool_alloc(), lpool_release)
static void lpool_teardown(void) {
  mb_lpool_destroy(g_lpool);
}

/* ---- mb_pool: a broker in this process with pools "p64" and "p256" ---- */
static mb_broker_t g_broker;
static mb_client_t *g_client;
static char g_instance[64];
static mb_pool_t *g_pool;
static unsigned g_pool_flags;
static void broker_start(void) {
  mb_config_t cfg;
  int rc;
  bench_config(&cfg, "bpool");
  mb__log_open(MB_LOG_ERROR, "");
  bench_only_region(&cfg, "world", 65536, 0, 0);
  bench_add_pool(&cfg, "p64", 64, ALIGN, CAPACITY);
  bench_add_pool(&cfg, "p256", 256, ALIGN, CAPACITY);
  cfg.max_committed = 0;
  if ((rc = mb__broker_start(&g_broker, &cfg, 0)) != 0)
    die("start broker", rc);
  if ((rc = mb_attach(cfg.instance, "bench", NULL, &g_client)) != 0)
    die("attach", rc);
  snprintf(g_instance, sizeof g_instance, "%s", cfg.instance);
}
static void shared_setup(size_t size, int threads) {
  int rc;
  (void)threads;
  if ((rc = mb_pool_open(g_client, size == 64 ? "p64" : "p256", g_pool_flags, &g_pool)) != 0)
    die("mb_pool_open", rc);
}
static inline void *shared_alloc(void) {
  void *p;
  return mb_pool_alloc(g_pool, &p) == 0 ? p : NULL;
}
static inline void shared_release(void *p) {
  mb_pool_free(g_pool, p);
}
static inline void *inline_alloc(void) {
  void *p;
  return mb_pool_alloc_inline(g_pool, &p) == 0 ? p : NULL;
}
static inline void inline_release(void *p) {
  mb_pool_free_inline(g_pool, p);
}
MB_BENCH_LOOPS(shared, shared_alloc(), shared_release)
MB_BENCH_LOOPS(inline, inline_alloc(), inline_release)

static const impl_t impls[] = {
    {"malloc", 2, malloc_setup, malloc_pairs, malloc_batch, nothing},
    {"freelist", 1, freelist_setup, freelist_pairs, freelist_batch, arena_teardown},
    {"freelist-call", 1, freelist_setup, freelist_call_pairs, freelist_call_batch, arena_teardown},
    {"mutexpool", 2, mutexpool_setup, mutexpool_pairs, mutexpool_batch, mutexpool_teardown},
    {"lpool", 2, lpool_setup, lpool_pairs, lpool_batch, lpool_teardown},
    {"shared", 2, shared_setup, shared_pairs, shared_batch, nothing},
    {"shared-tc", 2, shared_setup, shared_pairs, shared_batch, nothing},
    {"shared-inl", 2, shared_setup, inline_pairs, inline_batch, nothing},
};

/* ---- the workloads ---- */

typedef struct run_s {
  const impl_t *impl;
  int batch;
  int threads;
  void **held; /* BATCH per thread */
  mb_au32 ready, go;
} run_t;

static void work(void *arg) {
  run_t *r = arg;
  void **held = NULL;
  mb_add32(&r->ready, 1);
  while (!mb_load32(&r->go)) {
  }
  if (r->batch) {
    held = r->held + (size_t)(mb_add32(&r->ready, 1) - (uint32_t)r->threads) * BATCH;
    r->impl->batch(held, BATCH);
  } else {
    r->impl->pairs(PAIRS);
  }
}

/* ns per alloc+free of one thread (the allocator is set up by the caller). */
static double run_case(const impl_t *impl, int threads, int batch, void **held) {
  run_t r;
  mb_os_thread_t t[2];
  uint64_t t0;
  int k;
  memset(&r, 0, sizeof r);
  r.impl = impl;
  r.batch = batch;
  r.threads = threads;
  r.held = held;
  for (k = 0; k < threads; k++)
    if (mb_os_thread_start(&t[k], work, &r) != 0)
      die("thread", 0);
  while (mb_load32(&r.ready) != (uint32_t)threads) {
  }
  t0 = mb_os_mono_ns();
  mb_store32(&r.go, 1);
  for (k = 0; k < threads; k++)
    mb_os_thread_join(&t[k]);
  t0 = mb_os_mono_ns() - t0;
  return (double)t0 / (batch ? BATCH : PAIRS);
}

/* ---- two processes: this one and a child client, each running the pair loop at once ---- */

typedef struct procs_sync_s {
  mb_au32 ready, go;
  mb_au64 child_end; /* the child's mb_os_mono_ns() when its loop ended (0: failed) */
} procs_sync_t;

/* ns per alloc+free of one process, both running PAIRS pairs through pool `name` at once (the
 * child attaches as a second client of the broker in this process). Shared pools only. */
static double run_case_procs(const impl_t *impl, const char *name) {
  procs_sync_t *sy =
      mmap(NULL, sizeof *sy, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint64_t t0, t1, ce;
  pid_t pid;
  int status;
  if (sy == MAP_FAILED)
    die("mmap", 0);
  memset(sy, 0, sizeof *sy);
  if ((pid = fork()) < 0)
    die("fork", 0);
  if (pid == 0) {
    mb_client_t *c;
    if (mb_attach(g_instance, "bench2", NULL, &c) != 0 ||
        mb_pool_open(c, name, g_pool_flags, &g_pool) != 0)
      _exit(100);
    mb_store32(&sy->ready, 1);
    while (!mb_load32(&sy->go)) {
    }
    impl->pairs(PAIRS); /* dies (exit 1) if an allocation fails */
    mb_store64(&sy->child_end, mb_os_mono_ns());
    mb_detach(c);
    _exit(0);
  }
  while (!mb_load32(&sy->ready))
    if (waitpid(pid, &status, WNOHANG) == pid)
      die("the second process could not attach", 0);
  t0 = mb_os_mono_ns();
  mb_store32(&sy->go, 1);
  impl->pairs(PAIRS);
  t1 = mb_os_mono_ns();
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      (ce = mb_load64(&sy->child_end)) == 0)
    die("the second process failed", 0);
  munmap(sy, sizeof *sy);
  return (double)((ce > t1 ? ce : t1) - t0) / PAIRS;
}

/* ---- reclaim: one dead client's 100,000 blocks ---- */
#define RECLAIM_BLOCKS 100000u

/* One round: a child takes RECLAIM_BLOCKS blocks and is killed; returns the ms of the sweep
 * that reaps it (after the sweep that sees it dead), checking every block came back. */
static double reclaim_round(const char *instance) {
  mb_pool_map_t *p = &g_broker.pools[0];
  uint64_t t0, t1, deadline;
  pid_t pid;
  int status;
  if ((pid = fork()) < 0)
    die("fork", 0);
  if (pid == 0) {
    mb_client_t *c;
    mb_pool_t *pool;
    uint32_t i;
    void *o;
    if (mb_attach(instance, "doomed", NULL, &c) != 0 || mb_pool_open(c, "p64", 0, &pool) != 0)
      _exit(100);
    for (i = 0; i < RECLAIM_BLOCKS; i++)
      if (mb_pool_alloc(pool, &o) != 0)
        _exit(101);
    mb_counter_set(c, MB_COUNTER_NPCS, 1);
    for (;;)
      pause();
  }
  deadline = mb_os_mono_ns() + 30000000000ull;
  while (mb_load64(&g_broker.state->game.total_npcs) != 1)
    if (mb_os_mono_ns() > deadline)
      die("the child did not take its blocks", 0);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  mb_store64(&g_broker.state->game.total_npcs, 0);
  /* The sweep that sees it dead, then the one that reaps it (grace period 0). */
  while (MB_CLIENT_WORD_STATE(mb_load64(&g_broker.state->clients[1].word)) == MB_CLIENT_ATTACHED)
    mb__broker_sweep(&g_broker);
  t0 = mb_os_mono_ns();
  mb__broker_sweep(&g_broker);
  t1 = mb_os_mono_ns();
  if (MB_CLIENT_WORD_STATE(mb_load64(&g_broker.state->clients[1].word)) != MB_CLIENT_FREE ||
      mb__pool_in_use(p) != 0)
    die("the dead client's blocks did not all come back", 0);
  return (double)(t1 - t0) / 1e6;
}

static int reclaim_main(int reps) {
  mb_config_t cfg;
  double v[16];
  int rc, k;
  bench_config(&cfg, "brec");
  mb__log_open(MB_LOG_ERROR, "");
  bench_only_region(&cfg, "world", 65536, 0, 0);
  bench_add_pool(&cfg, "p64", 64, ALIGN, 2 * RECLAIM_BLOCKS);
  cfg.grace_period_ms = 0;
  cfg.max_committed = 0;
  if ((rc = mb__broker_start(&g_broker, &cfg, 0)) != 0)
    die("start broker", rc);
  /* Entry 0 stays attached (this process), so the doomed client is entry 1. */
  if ((rc = mb_attach(cfg.instance, "bench", NULL, &g_client)) != 0)
    die("attach", rc);
  reclaim_round(cfg.instance); /* warm: pages of the pool touched once */
  for (k = 0; k < reps; k++)
    v[k] = reclaim_round(cfg.instance);
  printf("reclaim blocks=%u ms=%.2f reclaimed=%llu\n", RECLAIM_BLOCKS, median(v, reps),
         (unsigned long long)mb_load64(&g_broker.pools[0].desc->reclaimed));
  mb_detach(g_client);
  mb__broker_stop(&g_broker);
  return 0;
}

int main(int argc, char **argv) {
  const impl_t *impl = NULL;
  int reps = argc > 2 ? atoi(argv[2]) : 3, s, threads, batch, k;
  size_t i, sizes[2] = {64, 256};
  void **held;
  const char *found = "glibc";
  if (argc < 2 || reps < 1 || reps > 15) {
    fprintf(stderr, "usage: bench-pool IMPL [REPS 1..15]\n");
    return 2;
  }
  if (strcmp(argv[1], "reclaim") == 0)
    return reclaim_main(reps);
  for (i = 0; i < sizeof impls / sizeof impls[0]; i++)
    if (strcmp(argv[1], impls[i].name) == 0)
      impl = &impls[i];
  if (impl == NULL) {
    fprintf(stderr, "bench-pool: unknown IMPL '%s'\n", argv[1]);
    return 2;
  }
  if (dlsym(RTLD_DEFAULT, "mi_version") != NULL)
    found = "mimalloc";
  else if (dlsym(RTLD_DEFAULT, "mallocx") != NULL)
    found = "jemalloc";
  printf("malloc=%s\n", found);
  if (strncmp(impl->name, "shared", 6) == 0) {
    g_pool_flags = strcmp(impl->name, "shared") == 0 ? MB_POOL_NO_CACHE : 0;
    broker_start();
  }
  if ((held = malloc(2 * (size_t)BATCH * sizeof *held)) == NULL)
    die("held", 0);
  for (s = 0; s < 2; s++)
    for (threads = 1; threads <= impl->max_threads; threads++)
      for (batch = 0; batch < 2; batch++) {
        double v[16];
        /* One allocator for the case, as a game server makes its pool once; the first run
         * warms it (pages, caches, arenas) and is not counted. */
        impl->setup(sizes[s], threads);
        run_case(impl, threads, batch, held);
        for (k = 0; k < reps; k++)
          v[k] = run_case(impl, threads, batch, held);
        impl->teardown();
        sort_doubles(v, reps);
        printf("impl=%s size=%zu threads=%d mode=%s ns=%.2f\n", impl->name, sizes[s], threads,
               batch ? "batch" : "pairs", v[reps / 2]);
        fflush(stdout);
      }
  /* Shared pools: the pair loop in two processes at once ("threads=2p"). */
  if (g_client != NULL)
    for (s = 0; s < 2; s++) {
      double v[16];
      const char *name = sizes[s] == 64 ? "p64" : "p256";
      impl->setup(sizes[s], 1);
      run_case_procs(impl, name);
      for (k = 0; k < reps; k++)
        v[k] = run_case_procs(impl, name);
      impl->teardown();
      sort_doubles(v, reps);
      printf("impl=%s size=%zu threads=2p mode=pairs ns=%.2f\n", impl->name, sizes[s], v[reps / 2]);
      fflush(stdout);
    }
  free(held);
  if (g_client != NULL) {
    mb_detach(g_client);
    mb__broker_stop(&g_broker);
  }
  return 0;
}
