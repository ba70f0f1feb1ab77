/*
 * test-pool.c - shared-memory object pools: a broker in this process, game servers as child
 * processes (and threads in them). Every block accounted for after a concurrent workload,
 * misuse refused without touching the free stack, a killed client's blocks reclaimed after
 * its grace period, a restarted client finding its objects.
 */
#define MB_POOL_INLINE /* membroker.h's inline fast path (inline_fast_path), before any include */
#include "task.h"

#include <setjmp.h>
#if MB_OS_POSIX
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "report.h"

/* The test config (fixture.h) for instance "p<pid><tag>" with one region, world 64 KiB, and
 * one pool "obj" of `capacity` 64-byte objects. */
static void pool_config(mb_config_t *cfg, const char *tag, uint32_t capacity, int debug) {
  fx_config_pid(cfg, "p", tag);
  fx_no_regions(cfg);
  fx_region(cfg, "world", 64 * 1024, 0, 0);
  cfg->pools[fx_pool(cfg, "obj", 64, 64, capacity)].debug = debug;
  cfg->heartbeat_timeout_ms = 0;
  mb__log_open(MB_LOG_ERROR, "");
}

static mb_pool_desc_t *desc(mb_broker_t *b) {
  return &b->state->pools[0];
}

static uint64_t allocated_of(mb_broker_t *b) {
  uint64_t a, f;
  mb__pool_totals(&b->pools[0], &a, &f);
  return a;
}

static uint64_t freed_of(mb_broker_t *b) {
  uint64_t a, f;
  mb__pool_totals(&b->pools[0], &a, &f);
  return f;
}

static uint32_t count_stamps(mb_broker_t *b, uint32_t stamp) {
  uint32_t i, n = 0;
  for (i = 0; i < desc(b)->capacity; i++)
    n += mb_load32(&b->pools[0].stamps[i]) == stamp;
  return n;
}

TEST(alloc_until_full_and_back) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p, *again;
  void *obj[100], *x;
  int i, j;
  pool_config(&cfg, "full", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_ERR(mb_pool_open(c, "nosuch", 0, &p), MB_ENOENT);
  ASSERT_ERR(mb_pool_open(c, "obj", 0x80, &p), MB_EINVAL);
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  /* Without thread caches every call is counted in the pool at once. */
  ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &again));
  ASSERT(p == again);
  for (i = 0; i < 100; i++) {
    ASSERT_OK(mb_pool_alloc(p, &obj[i]));
    ASSERT_EQ((uintptr_t)obj[i] % 64, 0);
    memset(obj[i], i, 64);
  }
  for (i = 0; i < 100; i++)
    for (j = 0; j < 64; j++)
      ASSERT_EQ(((unsigned char *)obj[i])[j], i); /* no two share bytes */
  ASSERT_ERR(mb_pool_alloc(p, &x), MB_EFULL);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->misses), 1);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 100);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->peak), 100);
  for (i = 0; i < 100; i += 2)
    ASSERT_OK(mb_pool_free(p, obj[i]));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 50);
  for (i = 0; i < 100; i += 2)
    ASSERT_OK(mb_pool_alloc(p, &obj[i]));
  ASSERT_ERR(mb_pool_alloc(p, &x), MB_EFULL);
  ASSERT_EQ_U64(allocated_of(&b), 150);
  ASSERT_EQ_U64(freed_of(&b), 50);
  ASSERT_OK(mb_pool_free(p, NULL));
  /* Detach gives everything back. */
  ASSERT_OK(mb_detach(c));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  mb__broker_stop(&b);
}

/* Misuse is refused with its error and leaves the free stack intact: afterwards exactly the
 * capacity can be allocated again. */
static void misuse(unsigned flags) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[8], *x;
  char local[64];
  int i;
  pool_config(&cfg, flags ? "badnc" : "bad", 8, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", flags, &p));
  for (i = 0; i < 8; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_ERR(mb_pool_free(p, local), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "is not a block of this pool");
  ASSERT_ERR(mb_pool_free(p, (char *)o[3] + 8), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "not at its start");
  ASSERT_OK(mb_pool_free(p, o[5]));
  ASSERT_ERR(mb_pool_free(p, o[5]), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "double free");
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 1);
  for (i = 0; i < 8; i++)
    if (i != 5)
      ASSERT_OK(mb_pool_free(p, o[i]));
  for (i = 0; i < 8; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_ERR(mb_pool_alloc(p, &x), MB_EFULL);
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* Through a thread cache, and straight to the shared free stack (whose CAS refuses it). */
TEST(misuse_is_refused) {
  misuse(0);
  misuse(MB_POOL_NO_CACHE);
}

/* Debug pools: a block written after its free is caught when it would be handed out again,
 * set aside for good, and the pool goes on. */
TEST(debug_catches_use_after_free) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o, *o2, *all[4];
  int i, n = 0, rc;
  pool_config(&cfg, "dbg", 4, 1);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc(p, &o));
  ASSERT_OK(mb_pool_free(p, o));
  ASSERT_EQ(((unsigned char *)o)[10], 0xDB); /* poisoned */
  ((char *)o)[10] = 1;                       /* use after free */
  ASSERT_ERR(mb_pool_alloc(p, &o2), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "use after free");
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 1);
  /* The other three blocks are still there; the bad one never comes back. */
  for (i = 0; i < 4; i++) {
    rc = mb_pool_alloc(p, &all[n]);
    if (rc == 0) {
      ASSERT(all[n] != o);
      n++;
    } else {
      ASSERT_EQ(rc, MB_EFULL);
    }
  }
  ASSERT_EQ(n, 3);
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* ---- two processes x two threads ------------------------------------------------------------ */

typedef struct worker_s {
  mb_pool_t *pool;
  uint32_t tag; /* process and thread, written into every block it holds */
  uint64_t ms;
  int failures;
  unsigned long ops;
} worker_t;

static void worker_main(void *arg) {
  worker_t *w = arg;
  void *held[64];
  uint64_t end = mb_os_mono_ns() + w->ms * 1000000u, rng = w->tag * 2654435761u + 1;
  int n = 0, i;
  while (mb_os_mono_ns() < end) {
    int batch;
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    batch = 1 + (int)((rng >> 33) % 64);
    /* Take a batch, stamp each block with our tag and its slot, check, give it back. */
    for (i = 0; i < batch && n < 64; i++) {
      void *o;
      int rc = mb_pool_alloc(w->pool, &o);
      if (rc == MB_EFULL)
        break;
      if (rc != 0) {
        w->failures++;
        break;
      }
      ((uint32_t *)o)[0] = w->tag;
      ((uint32_t *)o)[1] = (uint32_t)n;
      held[n++] = o;
      w->ops++;
    }
    for (i = 0; i < n; i++)
      if (((uint32_t *)held[i])[0] != w->tag || ((uint32_t *)held[i])[1] != (uint32_t)i)
        w->failures++; /* handed out twice: someone else wrote it */
    while (n > 0)
      if (mb_pool_free(w->pool, held[--n]) != 0)
        w->failures++;
  }
}

/* argv: instance name ms cache|nocache - two threads allocate and free for ms milliseconds,
 * through thread caches or not. Exit 0 if no block was ever seen held by two at once and
 * every call did what it should. */
CHILD(pool_workers) {
  mb_client_t *c;
  worker_t w[2];
  mb_os_thread_t t[2];
  mb_os_procid_t self;
  int k;
  if (argc != 4 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  mb_os_proc_self(&self);
  for (k = 0; k < 2; k++) {
    memset(&w[k], 0, sizeof w[k]);
    if (mb_pool_open(c, "obj", strcmp(argv[3], "cache") == 0 ? 0 : MB_POOL_NO_CACHE, &w[k].pool) !=
        0)
      return 101;
    w[k].tag = (self.pid << 1) | (uint32_t)k;
    w[k].ms = (uint64_t)atol(argv[2]);
    if (mb_os_thread_start(&t[k], worker_main, &w[k]) != 0)
      return 102;
  }
  for (k = 0; k < 2; k++)
    mb_os_thread_join(&t[k]);
  if (w[0].failures || w[1].failures)
    return 103;
  if (w[0].ops == 0 || w[1].ops == 0)
    return 104;
  return mb_detach(c) == 0 ? 0 : 105;
}

TEST(two_processes_two_threads) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k1, k2;
  int x1 = -1, x2 = -1;
  uint32_t i;
  /* 200 < 4 x 64: exhaustion happens too. Process a's threads keep up to 64 free blocks
   * each in their caches, process b's go straight to the pool. */
  pool_config(&cfg, "mt", 200, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k1, "pool_workers", cfg.instance, "a", "1500", "cache", (char *)NULL));
  ASSERT_OK(mb_test_spawn(&k2, "pool_workers", cfg.instance, "b", "1500", "nocache", (char *)NULL));
  ASSERT_OK(mb_os_child_wait(&k1, 60000, &x1));
  ASSERT_OK(mb_os_child_wait(&k2, 60000, &x2));
  ASSERT_EQ(x1, 0);
  ASSERT_EQ(x2, 0);
  /* Every block accounted for: all free, handed out as often as given back. */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ_U64(allocated_of(&b), freed_of(&b));
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 0);
  ASSERT_LE(mb_load64(&desc(&b)->peak), 200);
  for (i = 0; i < 200; i++)
    ASSERT_EQ(mb_load32(&b.pools[0].stamps[i]), MB_STAMP_FREE);
  {
    /* ... and the free stack holds each block exactly once: all 200 can be had again. */
    mb_client_t *c;
    mb_pool_t *p;
    void *o[201];
    int n = 0, j;
    ASSERT_OK(mb_attach(cfg.instance, "check", NULL, &c));
    ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &p));
    while (n < 201 && mb_pool_alloc(p, &o[n]) == 0)
      n++;
    ASSERT_EQ(n, 200);
    for (i = 0; i < 200; i++)
      for (j = (int)i + 1; j < 200; j++)
        ASSERT(o[i] != o[j]);
    ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 200);
    ASSERT_OK(mb_detach(c));
  }
  mb__broker_stop(&b);
}

/* ---- crash: reclaimed after the grace period, or found again by a restart ------------------ */

/* argv: instance name count - allocate count objects (through a thread cache, which keeps
 * some more), write 1000 + i into each, set the NPC counter to count, wait to be killed. */
CHILD(hold_objects) {
  mb_client_t *c;
  mb_pool_t *p;
  long i, n;
  if (argc != 3 || mb_attach(argv[0], argv[1], NULL, &c) != 0 || mb_pool_open(c, "obj", 0, &p) != 0)
    return 100;
  n = atol(argv[2]);
  for (i = 0; i < n; i++) {
    void *o;
    if (mb_pool_alloc(p, &o) != 0)
      return 101;
    ((uint64_t *)o)[0] = 1000 + (uint64_t)i;
  }
  mb_counter_set(c, MB_COUNTER_NPCS, (uint64_t)n); /* all written */
  for (;;)
    mb_os_sleep_ms(10);
}

/* argv: instance name count - attach under a crashed holder's name: its objects are there. */
CHILD(find_objects) {
  mb_client_t *c;
  mb_pool_t *p;
  uint64_t cursor = 0, sum = 0, n = 0;
  void *o;
  if (argc != 3 || mb_attach(argv[0], argv[1], NULL, &c) != 0 || mb_pool_open(c, "obj", 0, &p) != 0)
    return 100;
  while (mb_pool_next(p, &cursor, &o) == 0) {
    sum += ((uint64_t *)o)[0];
    n++;
  }
  if (n != (uint64_t)atol(argv[2]) || sum != n * 1000 + n * (n - 1) / 2)
    return 101;
  return mb_detach(c) == 0 ? 0 : 102;
}

static uint32_t state_of(mb_broker_t *b, uint32_t i) {
  return MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word));
}

TEST(killed_client_objects_reclaimed) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  uint64_t held;
  int code = -1;
  pool_config(&cfg, "rec", 100, 0);
  cfg.grace_period_ms = 200;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k, "hold_objects", cfg.instance, "doomed", "40", (char *)NULL));
  WAIT_FOR(mb_load64(&b.state->game.total_npcs) == 40, 30000);
  held = mb__pool_in_use(&b.pools[0]); /* the 40 and what its thread cache keeps */
  ASSERT_EQ(held, 64);                 /* two chains of 32 */
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 40);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 24);
  ASSERT_OK(mb_os_child_kill(&k));
  ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
  WAIT_FOR((mb__broker_sweep(&b), state_of(&b, 0) == MB_CLIENT_FREE), 10000);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->reclaimed), held);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
}

TEST(restarted_client_finds_its_objects) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  int code = -1;
  pool_config(&cfg, "rst", 100, 0);
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k, "hold_objects", cfg.instance, "zone", "25", (char *)NULL));
  WAIT_FOR(mb_load64(&b.state->game.total_npcs) == 25, 30000);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32); /* 25 held, 7 in its thread cache */
  ASSERT_OK(mb_os_child_kill(&k));
  ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
  /* The restart finds its 25 objects; the 7 its predecessor's cache held go back. */
  ASSERT_EQ(mb_test_run_child(60000, "find_objects", cfg.instance, "zone", "25", (char *)NULL), 0);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0); /* its clean detach gave them back */
  ASSERT_EQ_U64(mb_load64(&desc(&b)->reclaimed), 0);
  mb__broker_stop(&b);
}

/* ---- thread caches ----------------------------------------------------------------------------
 */

/* Blocks move between a thread's cache and the pool 32 at a time; flush, detach and thread
 * exit give the cached ones back. */
TEST(thread_cache_batches_and_flush) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[100], *x;
  int i;
  pool_config(&cfg, "tc", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc(p, &o[0]));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32); /* one chain into the cache */
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 31);
  ASSERT_OK(mb_pool_free(p, o[0]));
  ASSERT_ERR(mb_pool_free(p, o[0]), MB_EINVAL); /* in the cache now: a double free */
  ASSERT_CONTAINS(mb_last_error(), "double free");
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  ASSERT_OK(mb_pool_flush(p));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  /* The whole capacity can be had through the cache, then a miss. */
  for (i = 0; i < 100; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_ERR(mb_pool_alloc(p, &x), MB_EFULL);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->misses), 1);
  for (i = 0; i < 100; i++)
    ASSERT_OK(mb_pool_free(p, o[i]));
  /* A full cache (64) gives its older half back at the next free: twice here, 36 left. */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 36);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 64);
  ASSERT_OK(mb_detach(c)); /* flushes */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
}

/* membroker.h's inline fast path (MB_POOL_INLINE): the same blocks, stamps, errors and counts
 * as the out-of-line calls, mixed freely with them; the library call behind it hands over the
 * thread's cache, and a caller of another ABI gets none. */
TEST(inline_fast_path) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p, *q;
  mb_pool_tcache_t *tc = NULL;
  void *o[32], *x, *y;
  uint64_t w;
  int i, k;
  pool_config(&cfg, "in", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc_inline(p, &o[0])); /* no cache yet: the library refills one */
  ASSERT(mb__ptc_last != NULL);
  ASSERT(mb__ptc_last->pool == p);
  ASSERT_EQ(mb__ptc_last->abi, MB_POOL_TCACHE_ABI);
  ASSERT_EQ(mb__ptc_last->n, 31);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  for (i = 1; i < 32; i++) /* inline, from the cache: no refill */
    ASSERT_OK(mb_pool_alloc_inline(p, &o[i]));
  ASSERT_EQ(mb__ptc_last->n, 0);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 32);
  for (i = 0; i < 32; i++)
    for (k = 0; k < i; k++)
      ASSERT(o[i] != o[k]);
  ASSERT_OK(mb_pool_free_inline(p, o[0]));
  ASSERT_EQ(mb__ptc_last->n, 1);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 1);
  ASSERT_ERR(mb_pool_free_inline(p, o[0]), MB_EINVAL); /* a double free: the library says so */
  ASSERT_CONTAINS(mb_last_error(), "double free");
  ASSERT_ERR(mb_pool_free_inline(p, (char *)o[1] + 8), MB_EINVAL); /* not a block's start */
  ASSERT_OK(mb_pool_free(p, o[1])); /* mixed: out of line, into the same cache */
  ASSERT_OK(mb_pool_alloc_inline(p, &x));
  ASSERT(x == o[1]);
  ASSERT_OK(mb_pool_free_inline(p, x));
  for (i = 2; i < 32; i++)
    ASSERT_OK(mb_pool_free_inline(p, o[i]));
  ASSERT_EQ(mb__ptc_last->n, 32);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 32);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 1); /* the double free (a bad pointer is not) */
  /* As if the broker had reaped it: neither inline call touches the cache. */
  ASSERT_OK(mb_pool_alloc_inline(p, &o[0]));
  w = mb_load64(&b.state->clients[0].word);
  mb_store64(&b.state->clients[0].word, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD));
  ASSERT_ERR(mb_pool_alloc_inline(p, &x), MB_ESTALE);
  ASSERT_ERR(mb_pool_free_inline(p, o[0]), MB_ESTALE);
  ASSERT_EQ(mb__ptc_last->n, 31);
  mb_store64(&b.state->clients[0].word, w);
  ASSERT_OK(mb_pool_free_inline(p, o[0]));
  ASSERT_OK(mb_pool_alloc_inline(p, &y)); /* held across the flags change below */
  /* An uncached handle: every call goes to the library (and the shared pool). */
  ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &q));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 1);
  /* The flags change let the thread's cache go: the inline pointer now names an orphan (pool
   * NULL). A NULL handle gets the library's MB_EINVAL from both inline calls, and no block
   * lands in the orphan. */
  ASSERT(mb__ptc_last != NULL);
  ASSERT(mb__ptc_last->pool == NULL);
  ASSERT_ERR(mb_pool_free(NULL, y), MB_EINVAL);
  ASSERT_ERR(mb_pool_free_inline(NULL, y), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "no pool");
  ASSERT_ERR(mb_pool_alloc_inline(NULL, &x), MB_EINVAL);
  ASSERT_ERR(mb_pool_alloc(NULL, &x), MB_EINVAL);
  ASSERT_EQ(mb__ptc_last->n, 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 1); /* y: still in use, in no cache */
  ASSERT_OK(mb_pool_free_inline(q, y));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_OK(mb_pool_alloc_inline(q, &x));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 1);
  ASSERT_OK(mb_pool_free_inline(q, x));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  /* The handover: the thread's cache of the pool, none for another ABI. */
  ASSERT_OK(mb_pool_open(c, "obj", 0, &q));
  ASSERT_OK(mb_pool_alloc_tc(q, &x, &tc, MB_POOL_TCACHE_ABI + 1));
  ASSERT(tc == NULL);
  ASSERT_OK(mb_pool_free_tc(q, x, &tc, MB_POOL_TCACHE_ABI));
  ASSERT(tc != NULL);
  ASSERT_EQ(tc->cap, MB_POOL_TCACHE_MAX);
  ASSERT(tc->pool == q);
  ASSERT(tc->n >= 1);      /* the block just freed (the refill took the chain on top: maybe 1) */
  ASSERT_OK(mb_detach(c)); /* flushes */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  /* After detach the pointer names an orphan whose entry word is unmapped: never read. */
  ASSERT_ERR(mb_pool_free_inline(NULL, x), MB_EINVAL);
  ASSERT_ERR(mb_pool_alloc_inline(NULL, &x), MB_EINVAL);
  mb__broker_stop(&b);
}

/* The pool's `refills` as the pools report shows it (the key must be there). */
static uint64_t report_refills(mb_broker_t *b) {
  cJSON *arr = mb__report_pools(b);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "refills");
  uint64_t n;
  if (!cJSON_IsNumber(v)) {
    cJSON_Delete(arr);
    FAIL("the pools report has no refills");
  }
  n = (uint64_t)v->valuedouble;
  cJSON_Delete(arr);
  return n;
}

/* refills (MB_POOL_STATS): one per chain a thread cache takes from the shared stack, in the
 * pools report; objects the cache hands out, its flushes and a debug pool's (uncached)
 * allocations do not count. */
TEST(refills_counted) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[MB_POOL_CHAIN + 1];
  int i;
  pool_config(&cfg, "rf", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ_U64(report_refills(&b), 0);
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc(p, &o[0]));
  ASSERT_EQ_U64(report_refills(&b), 1); /* one chain into the cache */
  for (i = 1; i < MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_EQ_U64(report_refills(&b), 1); /* all from the cache */
  ASSERT_OK(mb_pool_alloc(p, &o[MB_POOL_CHAIN]));
  ASSERT_EQ_U64(report_refills(&b), 2); /* empty: the next chain */
  ASSERT_EQ_U64(mb_load64(&desc(&b)->refills), 2);
  { /* its metric's name follows from the entry (stats.h) */
    static const mb_stat_info_t info[] = {MB_POOL_STATS(MB_STAT_INFO)};
    char metric[64] = "";
    size_t k;
    for (k = 0; k < sizeof info / sizeof info[0]; k++)
      if (info[k].key != NULL && strcmp(info[k].key, "refills") == 0)
        snprintf(metric, sizeof metric, "membroker_pool_%s%s", info[k].key,
                 mb_stat_metric_suffix(&info[k]));
    ASSERT_STR_EQ(metric, "membroker_pool_refills_total");
    for (k = 0; k < sizeof info / sizeof info[0]; k++)
      if (info[k].key != NULL && strcmp(info[k].key, "bytes") == 0)
        ASSERT_STR_EQ(mb_stat_metric_suffix(&info[k]), "");
  }
  for (i = 0; i <= MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_free(p, o[i]));
  ASSERT_OK(mb_detach(c)); /* flushes: gives, not refills */
  ASSERT_EQ_U64(report_refills(&b), 2);
  mb__broker_stop(&b);

  pool_config(&cfg, "rd", 100, 1);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  for (i = 0; i <= MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_EQ_U64(report_refills(&b), 0); /* a debug pool has no caches */
  for (i = 0; i <= MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_free(p, o[i]));
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

typedef struct xfree_s {
  mb_pool_t *pool;
  void **objs;
  int n, failures;
} xfree_t;

static void free_them(void *arg) {
  xfree_t *x = arg;
  int i;
  for (i = 0; i < x->n; i++)
    if (mb_pool_free(x->pool, x->objs[i]) != 0)
      x->failures++;
}

/* Objects allocated on one thread and freed on another go to the freeing thread's cache,
 * which goes back to the pool when that thread exits; nothing is lost or handed out twice. */
TEST(thread_cache_cross_thread_free) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[50], *again[50];
  xfree_t x;
  mb_os_thread_t t;
  int i, j;
  pool_config(&cfg, "xt", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  for (i = 0; i < 50; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 64); /* 50 held, 14 in this thread's cache */
  x.pool = p;
  x.objs = o;
  x.n = 50;
  x.failures = 0;
  ASSERT_OK(mb_os_thread_start(&t, free_them, &x));
  mb_os_thread_join(&t);
  ASSERT_EQ(x.failures, 0);
  /* The other thread's cache (all 50) went back at its exit; this thread's 14 are still
   * cached. */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 14);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 14);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 0);
  /* Every block can be had again, each once. */
  for (i = 0; i < 50; i++)
    ASSERT_OK(mb_pool_alloc(p, &again[i]));
  for (i = 0; i < 50; i++)
    for (j = i + 1; j < 50; j++)
      ASSERT(again[i] != again[j]);
  for (i = 0; i < 50; i++)
    ASSERT_OK(mb_pool_free(p, again[i]));
  ASSERT_OK(mb_detach(c));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ_U64(allocated_of(&b), freed_of(&b));
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 0);
  mb__broker_stop(&b);
}

/* Reattach and a change of the handle's flags give the thread caches back; a client whose
 * entry is no longer its own gets MB_ESTALE from the fast path too. */
TEST(thread_cache_let_go_on_reattach_reopen_and_stale) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p, *q;
  void *o1, *o2, *x;
  uint64_t w, cursor;
  pool_config(&cfg, "rg", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc(p, &o1));
  ((uint64_t *)o1)[0] = 77;
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  ASSERT_OK(mb_reattach(c, NULL));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 1); /* the held one stays, with its contents */
  cursor = 0; /* ... at a new address: the pool is mapped again */
  ASSERT_OK(mb_pool_next(p, &cursor, &o1));
  ASSERT_EQ_U64(((uint64_t *)o1)[0], 77);
  ASSERT_ERR(mb_pool_next(p, &cursor, &x), MB_ENOENT);
  ASSERT_OK(mb_pool_alloc(p, &o2)); /* the refill: the chain of 31 the reattach gave back */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &q));
  ASSERT(p == q);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 2);
  ASSERT_OK(mb_pool_free(p, o2));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 1);
  ASSERT_OK(mb_pool_open(c, "obj", 0, &q));
  ASSERT_OK(mb_pool_alloc(p, &o2));
  ASSERT_OK(mb_pool_free(p, o2)); /* into the cache */
  /* As if the broker had reaped it: the entry is not this attachment's any more. */
  w = mb_load64(&b.state->clients[0].word);
  mb_store64(&b.state->clients[0].word, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD));
  ASSERT_ERR(mb_pool_alloc(p, &x), MB_ESTALE);
  ASSERT_ERR(mb_pool_free(p, o1), MB_ESTALE);
  mb_store64(&b.state->clients[0].word, w);
  ASSERT_OK(mb_pool_free(p, o1));
  ASSERT_OK(mb_detach(c));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
}

/* A client reaped while its thread caches held blocks: the broker gives them back, another
 * client (here under the same table index, so the same owner number) takes them, and the
 * reaped client's reattach, detach or thread exit must not give them back a second time. */
TEST(reaped_client_does_not_give_back_others_blocks) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *a, *bb, *chk;
  mb_pool_t *pa, *pb, *pc;
  void *o, *held[64], *all[101];
  uint64_t w;
  int i, j, n = 0;
  pool_config(&cfg, "reap", 100, 0);
  cfg.grace_period_ms = 0;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_OK(mb_pool_open(a, "obj", 0, &pa));
  ASSERT_OK(mb_pool_alloc(pa, &o)); /* 1 held, 31 in this thread's cache */
  /* The broker reaps it (as for a missed heartbeat) and, grace 0, frees its entry. */
  w = mb_load64(&b.state->clients[0].word);
  mb_store64(&b.state->clients[0].dead_since_ns, mb_os_mono_ns() - UINT64_C(1000000000));
  mb_store32(&b.state->clients[0].dead_reason, MB_DEAD_HEARTBEAT);
  mb_store64(&b.state->clients[0].word, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD));
  mb__broker_sweep(&b);
  ASSERT_EQ(state_of(&b, 0), MB_CLIENT_FREE);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  /* B gets entry 0 and takes the blocks A had through its own thread cache: 8 held, 24
   * cached (among them those A's cache held), stamped with the owner number A had. */
  ASSERT_OK(mb_attach(cfg.instance, "b", NULL, &bb));
  ASSERT_OK(mb_pool_open(bb, "obj", 0, &pb));
  for (i = 0; i < 8; i++)
    ASSERT_OK(mb_pool_alloc(pb, &held[i]));
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 8);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 24);
  /* A finds out and reattaches: its cache (the same thread's) is not given back. */
  ASSERT_ERR(mb_pool_alloc(pa, &o), MB_ESTALE);
  ASSERT_OK(mb_reattach(a, NULL));
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 8);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 24);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  ASSERT_OK(mb_detach(a));
  ASSERT_OK(mb_pool_flush(pb));
  /* Every block exactly once: B's 8 and the 92 left, all distinct. */
  ASSERT_OK(mb_attach(cfg.instance, "check", NULL, &chk));
  ASSERT_OK(mb_pool_open(chk, "obj", MB_POOL_NO_CACHE, &pc));
  while (n < 101 && mb_pool_alloc(pc, &all[n]) == 0)
    n++;
  ASSERT_EQ(n, 92);
  for (i = 0; i < 8; i++)
    all[n++] = held[i];
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      ASSERT(all[i] != all[j]);
  ASSERT_OK(mb_detach(chk));
  ASSERT_OK(mb_detach(bb));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
}

/* argv: instance name - attach under a crashed holder's name, never open the pool, detach:
 * the predecessor's objects (held and cached) go back all the same. */
CHILD(detach_without_opening) {
  mb_client_t *c;
  if (argc != 2 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  return mb_detach(c) == 0 ? 0 : 101;
}

TEST(restart_that_never_opens_the_pool_gives_it_back) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  int code = -1;
  pool_config(&cfg, "nopen", 100, 0);
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k, "hold_objects", cfg.instance, "zone", "10", (char *)NULL));
  WAIT_FOR(mb_load64(&b.state->game.total_npcs) == 10, 30000);
  ASSERT_OK(mb_os_child_kill(&k));
  ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
  ASSERT_EQ(mb_test_run_child(60000, "detach_without_opening", cfg.instance, "zone", (char *)NULL),
            0);
  ASSERT_EQ(state_of(&b, 0), MB_CLIENT_FREE);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
}

/* The first pool calls after a reattach, from several threads at once: the handle is set up
 * once, and no thread's fresh cache is given back by another's first map. */
typedef struct firstuse_s {
  mb_pool_t *pool;
  void *objs[16];
  int failures;
} firstuse_t;

static void first_use(void *arg) {
  firstuse_t *f = arg;
  int i;
  for (i = 0; i < 16; i++)
    if (mb_pool_alloc(f->pool, &f->objs[i]) != 0)
      f->failures++;
}

TEST(first_use_after_reattach_from_many_threads) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  firstuse_t f[4];
  mb_os_thread_t t[4];
  int round, k, i, j;
  pool_config(&cfg, "fu", 1000, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  for (round = 0; round < 50; round++) {
    ASSERT_OK(mb_reattach(c, NULL));
    for (k = 0; k < 4; k++) {
      memset(&f[k], 0, sizeof f[k]);
      f[k].pool = p;
      ASSERT_OK(mb_os_thread_start(&t[k], first_use, &f[k]));
    }
    for (k = 0; k < 4; k++)
      mb_os_thread_join(&t[k]);
    /* Their caches went back at their exit; the 64 objects are held, each once. */
    ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 64);
    ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 64);
    for (k = 0; k < 4; k++) {
      ASSERT_EQ(f[k].failures, 0);
      for (i = 0; i < 16; i++)
        for (j = 0; j < 4 * 16; j++)
          if (j != k * 16 + i)
            ASSERT(f[k].objs[i] != f[j / 16].objs[j % 16]);
    }
    for (k = 0; k < 4; k++)
      for (i = 0; i < 16; i++)
        ASSERT_OK(mb_pool_free(p, f[k].objs[i]));
    ASSERT_OK(mb_pool_flush(p));
    ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  }
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* ---- crash points: a thread killed at each step of a take or a give ------------------------- */

static jmp_buf crash_jb;
static int crash_at, crash_hits, crash_wanted;

/* pool.c's failure injection: "die" (leave the op where it is) at the wanted hit of a point. */
static void crash_hook(int point) {
  if (point == crash_at && ++crash_hits == crash_wanted)
    longjmp(crash_jb, 1);
}

/* Every block exactly once: in the free stack (stamped FREE, never twice), above bump, or
 * stamped with an owner; allocated - freed equals the blocks stamped. */
static void check_whole(mb_pool_map_t *p, uint32_t *held_out) {
  static unsigned char seen[128];
  uint32_t cap = p->capacity, bump = MB_POOL_WORD_LOW(mb_load64(&p->desc->bump)), i, held = 0;
  uint32_t first = MB_POOL_WORD_LOW(mb_load64(&p->desc->head)), chains = 0;
  memset(seen, 0, sizeof seen);
  ASSERT(cap <= sizeof seen);
  ASSERT_LE(bump, cap);
  while (first != 0) {
    uint32_t b = first - 1, k = 0;
    ASSERT_LE(first, cap);
    ASSERT(++chains <= cap);
    first = (uint32_t)(mb_load64(&p->links[b]) >> 32);
    for (;;) {
      uint32_t low = (uint32_t)mb_load64(&p->links[b]);
      ASSERT(b < bump);
      ASSERT_EQ(seen[b], 0);
      ASSERT_EQ(mb_load32(&p->stamps[b]), MB_STAMP_FREE);
      seen[b] = 1;
      if (low == 0 || ++k == MB_POOL_CHAIN)
        break;
      ASSERT_LE(low, cap);
      b = low - 1;
    }
  }
  /* Magazines: every listed block is a MAG block of that record, listed once; a record's
   * magazine is empty once the record is let go. */
  for (i = 0; i < MB_POOL_INTENTS; i++) {
    uint32_t c = MB_POOL_WORD_LOW(mb_load64(&p->mags[i].word)), k;
    ASSERT_LE(c, MB_POOL_MAG);
    if (mb_load64(&p->intents[i].holder) == 0)
      ASSERT_EQ(c, 0);
    for (k = 0; k < c; k++) {
      uint32_t b = mb_load32(&p->mags[i].slot[k]), st;
      ASSERT(b < bump);
      st = mb_load32(&p->stamps[b]);
      if ((st & ~0xFFFFu) != (MB_STAMP_CACHED | MB_STAMP_MAG | (i << 16)))
        FAIL("block %u listed in magazine %u is stamped %#x", (unsigned)b, (unsigned)i, st);
      ASSERT_EQ(seen[b], 0);
      seen[b] = 2;
    }
  }
  for (i = 0; i < bump; i++) {
    uint32_t s = mb_load32(&p->stamps[i]);
    if (seen[i])
      continue;
    if (s == MB_STAMP_FREE)
      FAIL("block %u is lost: stamped free, not in the free stack", (unsigned)i);
    if (s & MB_STAMP_MAG)
      FAIL("block %u is lost: stamped %#x (a magazine's), in no magazine", (unsigned)i, s);
    ASSERT_EQ(s & MB_STAMP_GIVING, 0); /* no give is left half done */
    held++;
  }
  ASSERT_EQ_U64(mb__pool_in_use(p), held);
  *held_out = held;
}

/* A record for a client that is not there: owner `owner`, attachment `seq`. */
static uint32_t fake_record(mb_pool_map_t *p, uint32_t owner, uint32_t seq) {
  uint32_t rec = 0;
  ASSERT_OK(mb__pool_intent_claim(p, MB_POOL_HOLDER(owner, seq, 424242), &rec));
  return rec;
}

/* A restart of client owner reclaims (its entry taken over, attachment seq): its record gives
 * back the cached and half-given blocks of its predecessor's, then is let go. */
static void restart_reclaim(mb_pool_map_t *p, uint32_t owner, uint32_t seq) {
  mb_pool_map_t again = *p;
  again.rec = fake_record(p, owner, seq);
  mb__pool_release_owner(&again, owner, 1);
  mb__pool_intent_release(p, again.rec, MB_POOL_HOLDER(owner, seq, 424242));
}

/* The broker reaps client owner: the pool is whole, `held` blocks are held (by others), and
 * none is stamped with owner. */
static void reap_whole(mb_pool_map_t *p, uint32_t owner, uint32_t held_want) {
  uint32_t held, k;
  mb__pool_release_owner(p, owner, 0);
  check_whole(p, &held);
  ASSERT_EQ(held, held_want);
  for (k = 0; k < p->capacity; k++)
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), owner);
}

/* One run of crash_points_every_step: returns 1 if the call was "killed" inside. */
static int crash_run(int point, int hit, int sc, int restart) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t live, dead, idx[MB_POOL_CHAIN], got = 0, held, k, n;
  volatile int crashed = 0;
  pool_config(&cfg, "crash", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  live = fake_record(p, 7, 1);
  dead = fake_record(p, 5, 1);
  if (sc != 2) { /* two chains of 32 in the free stack */
    uint32_t a[MB_POOL_CHAIN], c[MB_POOL_CHAIN];
    ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, a, &got));
    ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, c, &got));
    ASSERT_OK(mb__pool_give(p, live, a, 32, MB_STAMP_IN_USE | 7u, NULL));
    ASSERT_OK(mb__pool_give(p, live, c, 32, MB_STAMP_IN_USE | 7u, NULL));
  }
  if (sc == 3)
    ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 32, idx, &got));
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0) {
    int rc;
    if (sc == 3)
      rc = mb__pool_give(p, dead, idx, 32, MB_STAMP_IN_USE, NULL);
    else
      rc = mb__pool_take(p, dead, MB_STAMP_CACHED | 5u, sc == 1 ? 1 : 32, idx, &got);
    ASSERT_OK(rc);
  } else {
    crashed = 1;
  }
  mb__pool_crash_hook = NULL;
  if (restart) {
    /* The restart's own record gives back the cached and half-given blocks. */
    restart_reclaim(p, 5, 2);
    check_whole(p, &held);
  }
  mb__pool_release_owner(p, 5, 0); /* the broker's reap */
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  for (k = 1; k < MB_POOL_INTENTS; k++)
    ASSERT(k == live || mb_load64(&p->intents[k].holder) == 0);
  /* The whole capacity, again. */
  for (n = 0; mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, idx, &got) == 0;)
    n += got;
  ASSERT_EQ(n, 128);
  check_whole(p, &held);
  ASSERT_EQ(held, 128);
  ASSERT_LE(mb_load64(&p->desc->peak), 128);
  mb__broker_stop(&b);
  return crashed;
}

/*
 * For every crash point of take and give (the first and second time a looped one is reached),
 * in four situations - a chain taken whole from the free stack, one block taken (the rest of
 * its chain given back), blocks taken from bump, a chain given back - a client's thread is
 * "killed" there (pool.c's hook longjmps out). Then either the broker reaps the client, or a
 * restart under its name takes its entry over first (its held blocks stay, its cached and
 * half-given ones come back) and the broker reaps later. Each time every block is found once
 * and allocated - freed equals what is held; at the end the whole capacity can be taken.
 */
TEST(crash_points_every_step) {
  int point, hit, sc, restart, crashed = 0, runs = 0;
  for (point = 1; point <= 18; point++) {
    int here = 0;
    for (hit = 1; hit <= 2; hit++)
      for (sc = 0; sc < 4; sc++)
        for (restart = 0; restart < 2; restart++) {
          here += crash_run(point, hit, sc, restart);
          runs++;
        }
    if (here == 0)
      FAIL("crash point %d was never reached", point);
    crashed += here;
  }
  printf("# %d runs, %d of them killed inside the call\n", runs, crashed);
}

/* Take all 128 blocks of the pool through record rec, stamped in use by client owner. */
static void take_all(mb_pool_map_t *p, uint32_t rec, uint32_t owner, uint32_t *out) {
  uint32_t n, got = 0;
  for (n = 0; n < 128; n += got)
    ASSERT_OK(mb__pool_take(p, rec, MB_STAMP_IN_USE | owner, 32, out + n, &got));
}

/* The whole capacity (128) taken again through a new record of client owner. */
static void take_whole_again(mb_pool_map_t *p, uint32_t owner) {
  uint32_t rec = fake_record(p, owner, 3), n, got = 0, idx[MB_POOL_CHAIN];
  for (n = 0; mb__pool_take(p, rec, MB_STAMP_IN_USE | owner, 32, idx, &got) == 0;)
    n += got;
  ASSERT_EQ(n, 128);
}

/* Every crash point an uncached call can reach: the take's and give's (1..18) and the
 * magazine's own (S 20..24, M 30..36, P 40..45). */
static const int mag_points[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
                                 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 30,
                                 31, 32, 33, 34, 36, 40, 41, 42, 43, 44, 45};

/* ---- magazines (MB_POOL_NO_CACHE): a thread killed at each step of its ops ------------------ */

enum {
  MAG_FRESH,
  MAG_REFILL,
  MAG_POP,
  MAG_PUSH,
  MAG_FLUSH_FULL,
  MAG_STEAL,
  MAG_STEAL_REFILL,
  MAG_EXIT,
  MAG_SCS
};

/* One run: record `dead` (client 5) killed at the hit-th time its op reaches point; record
 * `live` (client 7) goes on. With thief, live then takes all it can (stealing from the dead
 * record's magazine) before the reap. Returns 1 if the op was killed inside. */
static int mag_run(int point, int hit, int sc, int restart, int thief) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t live, dead, idx[MB_POOL_CHAIN], held_live[128], got = 0, held, k, i;
  volatile uint32_t nheld = 0;
  volatile int crashed = 0;
  pool_config(&cfg, "mag", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  live = fake_record(p, 7, 1);
  dead = fake_record(p, 5, 1);
  if (sc == MAG_REFILL || sc == MAG_POP || sc == MAG_PUSH) { /* two chains in the stack */
    uint32_t a[MB_POOL_CHAIN], c[MB_POOL_CHAIN];
    ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, a, &got));
    ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, c, &got));
    ASSERT_OK(mb__pool_give(p, live, a, 32, MB_STAMP_IN_USE | 7u, NULL));
    ASSERT_OK(mb__pool_give(p, live, c, 32, MB_STAMP_IN_USE | 7u, NULL));
  }
  if (sc == MAG_POP || sc == MAG_PUSH) /* the dead record's magazine holds 31, it holds 1 */
    ASSERT_OK(mb__pool_mag_take(p, dead, MB_STAMP_IN_USE | 5u, &idx[0]));
  if (sc == MAG_FLUSH_FULL || sc == MAG_EXIT) { /* 64 held, 62 (or 20) freed to the magazine */
    ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 32, idx, &got));
    ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 32, held_live, &got));
    for (k = 0; k < (sc == MAG_EXIT ? 20u : 62u); k++)
      ASSERT_OK(mb__pool_mag_give(p, dead, 5, k < 32 ? idx[k] : held_live[k - 32]));
    idx[0] = held_live[31];
  }
  if (sc == MAG_STEAL || sc == MAG_STEAL_REFILL) { /* all out; 10 in live's magazine */
    take_all(p, live, 7u, held_live);
    for (k = 0; k < 10; k++)
      ASSERT_OK(mb__pool_mag_give(p, live, 7, held_live[118 + k]));
    nheld = 118;
  }
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0) {
    if (sc == MAG_FRESH || sc == MAG_REFILL || sc == MAG_POP || sc == MAG_STEAL_REFILL)
      ASSERT_OK(mb__pool_mag_take(p, dead, MB_STAMP_IN_USE | 5u, &i));
    else if (sc == MAG_PUSH || sc == MAG_FLUSH_FULL)
      ASSERT_OK(mb__pool_mag_give(p, dead, 5, idx[0]));
    else if (sc == MAG_STEAL)
      ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 1, idx, &got));
    else
      mb__pool_mag_flush(p, dead, 5);
  } else {
    crashed = 1;
  }
  mb__pool_crash_hook = NULL;
  if (thief) /* the live record takes what it can: the dead record's magazine included */
    while (nheld + MB_POOL_CHAIN <= 128 &&
           mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, held_live + nheld, &got) == 0)
      nheld = nheld + got;
  if (restart) {
    restart_reclaim(p, 5, 2);
    check_whole(p, &held);
  }
  mb__pool_release_owner(p, 5, 0); /* the broker's reap */
  check_whole(p, &held);
  ASSERT_EQ(held, nheld);
  ASSERT_EQ(MB_POOL_WORD_LOW(mb_load64(&p->mags[dead].word)), 0);
  for (k = 0; k < 128; k++)
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 5);
  /* Then the live one goes too: the whole capacity, again. */
  mb__pool_release_owner(p, 7, 0);
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  take_whole_again(p, 7);
  check_whole(p, &held);
  ASSERT_EQ(held, 128);
  mb__broker_stop(&b);
  return crashed;
}

/*
 * Every crash point an uncached call can reach - its magazine's own (M, P, S: 20..24, 30..36,
 * 40..45) and the take's and give's inside it (1..18) - in each situation (an empty magazine
 * taking blocks never used, or a chain, a pop, a push, a full magazine giving a chain back, a take
 * stealing from another record's magazine, an empty magazine stealing, a thread exit's flush),
 * killed the first or second time, then reaped with or without a restart first, with or without
 * another record taking all it can before: every block found once, the counts exact, the whole
 * capacity taken again at the end.
 */
TEST(mag_crash_points_every_step) {
  int pi, hit, sc, restart, thief, runs = 0, crashed = 0;
  for (pi = 0; pi < (int)(sizeof mag_points / sizeof mag_points[0]); pi++) {
    int here = 0;
    for (sc = 0; sc < MAG_SCS; sc++)
      for (hit = 1; hit <= 2; hit++)
        for (restart = 0; restart < 2; restart++)
          for (thief = 0; thief < 2; thief++) {
            here += mag_run(mag_points[pi], hit, sc, restart, thief);
            runs++;
          }
    if (here == 0)
      FAIL("crash point %d was never reached", mag_points[pi]);
    crashed += here;
  }
  printf("# %d runs, %d of them killed inside the call\n", runs, crashed);
}

/*
 * The reaper reads what any client can write: forged intent records (indexes and counts out
 * of range, ops of no kind), stamps naming records past the array, a cycle in the links, a
 * forged record count. It stays inside the pool, ends, and the published figures stay sane.
 */
TEST(reaper_survives_forged_records) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t r1, r2, r3, r4, idx[MB_POOL_CHAIN], got, k;
  uint64_t a, f;
  pool_config(&cfg, "forge", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  r1 = fake_record(p, 5, 1);
  r2 = fake_record(p, 5, 1);
  r3 = fake_record(p, 5, 1);
  r4 = fake_record(p, 5, 1);
  ASSERT_OK(mb__pool_take(p, r1, MB_STAMP_IN_USE | 5u, 32, idx, &got));
  /* ops as pool.c encodes them: (seq << 32) | (state << 8) | kind; 2 = landed */
  mb_store64(&p->intents[r1].op, (7ull << 32) | (2u << 8) | 1u); /* a pop ... */
  mb_store64(&p->intents[r1].first, 1ull << 40);                 /* ... of no block */
  mb_store64(&p->intents[r2].op, (7ull << 32) | (2u << 8) | 3u); /* a push ... */
  mb_store64(&p->intents[r2].count, 1ull << 40);                 /* ... of too many */
  mb_store64(&p->intents[r3].op, (7ull << 32) | (2u << 8) | 2u); /* a bump take ... */
  mb_store64(&p->intents[r3].first, 120);                        /* ... past the end */
  mb_store64(&p->intents[r3].count, 1000);
  mb_store64(&p->intents[r4].op, (7ull << 32) | (1u << 8) | 99u);  /* no such kind */
  mb_store64(&p->intents[r4].given, UINT64_MAX / 2);               /* more given than taken */
  mb_store32(&p->stamps[3], MB_STAMP_GIVING | (1023u << 16) | 5u); /* a record never claimed */
  mb_store32(&p->stamps[200 % 128], MB_STAMP_IN_USE | 5u);
  mb_store64(&p->links[40], 41); /* a chain that loops on itself */
  mb_store64(&p->desc->head, 41);
  mb_store64(&p->desc->intents_used, UINT64_MAX);
  mb__pool_release_owner(p, 5, 0);
  mb__pool_totals(p, &a, &f);
  ASSERT_LE(f, a);
  mb__pool_publish(p);
  ASSERT_LE(mb_load64(&p->desc->peak), 128);
  /* A take from the looping chain ends after one chain. */
  for (k = 0; k < 4; k++)
    if (mb__pool_take(p, 0, MB_STAMP_IN_USE | 7u, 32, idx, &got) == 0)
      ASSERT_LE(got, 32);
  mb__broker_stop(&b);
}

/* ---- targeted interleavings (review of the crash-consistent pool) -----------------------------
 */

/* A take or give through record rec, "killed" at the hit-th time it reaches point; 1 if it was
 * (a point < 10 is a take's, stamped `stamp`; from 10 on a give of idx[0..n), `stamp` expected). */
static int killed_op(mb_pool_map_t *p, uint32_t rec, uint32_t stamp, uint32_t *idx, uint32_t n,
                     int point, int hit) {
  volatile int crashed = 0;
  uint32_t got = 0;
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0) {
    if (point < 10)
      (void)mb__pool_take(p, rec, stamp, n, idx, &got);
    else
      (void)mb__pool_give(p, rec, idx, n, stamp, NULL);
  } else {
    crashed = 1;
  }
  mb__pool_crash_hook = NULL;
  return crashed;
}

/* mb__pool_release_owner "killed" at the hit-th time one of its gives reaches point. */
static int killed_release(mb_pool_map_t *p, uint32_t owner, int cached_only, int point, int hit) {
  volatile int crashed = 0;
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0)
    (void)mb__pool_release_owner(p, owner, cached_only);
  else
    crashed = 1;
  mb__pool_crash_hook = NULL;
  return crashed;
}

/* Two threads of one client die: t1 right after its push landed (before its G3 set the
 * blocks FREE), then t2 after popping t1's chain (before its T3 stamped it). The reap must
 * find the chain, though it is still stamped GIVING by t1. Was: 32 blocks lost. */
TEST(rv_two_dead_threads_pop_of_giving_chain) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t t1, t2, idx[MB_POOL_CHAIN], got, held;
  int point;
  for (point = 14; point <= 16; point++) {
    pool_config(&cfg, "rva", 128, 0);
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    p = &b.pools[0];
    t1 = fake_record(p, 5, 1);
    t2 = fake_record(p, 5, 1);
    ASSERT_OK(mb__pool_take(p, t1, MB_STAMP_IN_USE | 5u, 32, idx, &got));
    ASSERT(killed_op(p, t1, MB_STAMP_IN_USE, idx, 32, point, 1));
    ASSERT(killed_op(p, t2, MB_STAMP_CACHED | 5u, idx, 32, 4, 1));
    ASSERT(mb_load32(&p->stamps[idx[1]]) & MB_STAMP_GIVING); /* the interleaving sought */
    mb__pool_release_owner(p, 5, 0);
    check_whole(p, &held);
    ASSERT_EQ(held, 0);
    mb__broker_stop(&b);
  }
}

/* A restart's reclaim dies in its own first give, after its step 1 completed the landed push of
 * its predecessor; then the broker reaps. Was: that chain pushed twice (in the stack twice). */
TEST(rv_restart_killed_mid_reclaim) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p, again;
  uint32_t d1, idx[MB_POOL_CHAIN], got, held, k;
  pool_config(&cfg, "rvb", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  d1 = fake_record(p, 5, 1);
  /* blocks 0..63 cached by the dead client, 64..95 given back by it, killed before G3 */
  for (k = 0; k < 2; k++)
    ASSERT_OK(mb__pool_take(p, d1, MB_STAMP_CACHED | 5u, 32, idx, &got));
  ASSERT_OK(mb__pool_take(p, d1, MB_STAMP_IN_USE | 5u, 32, idx, &got));
  ASSERT(killed_op(p, d1, MB_STAMP_IN_USE, idx, 32, 15, 1));
  again = *p;
  again.rec = fake_record(p, 5, 2);
  ASSERT(killed_release(&again, 5, 1, 10, 1)); /* the restart dies in its first give */
  mb__pool_release_owner(p, 5, 0);             /* the broker's reap */
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  mb__broker_stop(&b);
}

/*
 * Two threads of one client killed, one after the other, at every pair of crash points: t1 in
 * a take (points 1..9: it pops the stack's last chain) or a give of its 32 blocks (10..18),
 * then t2 the same way (a take pops what t1 may have pushed, or bumps). Then the broker reaps
 * (every other run a restart reclaims first). Every block found once, none held after.
 */
TEST(two_threads_killed_every_pair) {
  int a, c, runs = 0, both = 0;
  for (a = 1; a <= 18; a++)
    for (c = 1; c <= 18; c++) {
      mb_config_t cfg;
      mb_broker_t b;
      mb_pool_map_t *p;
      uint32_t live, t1, t2, i1[MB_POOL_CHAIN], i2[MB_POOL_CHAIN], ch[MB_POOL_CHAIN], got, held, k;
      int k1, k2;
      pool_config(&cfg, "pair", 128, 0);
      ASSERT_OK(mb__broker_start(&b, &cfg, 0));
      p = &b.pools[0];
      live = fake_record(p, 7, 1);
      t1 = fake_record(p, 5, 1);
      t2 = fake_record(p, 5, 1);
      for (k = 0; k < 3; k++) { /* three chains in the stack, then t1 and t2 hold one each */
        ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, ch, &got));
        ASSERT_OK(mb__pool_give(p, live, ch, 32, MB_STAMP_IN_USE | 7u, NULL));
      }
      ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, ch, &got));
      ASSERT_OK(mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, i1, &got));
      ASSERT_OK(mb__pool_give(p, live, ch, 32, MB_STAMP_IN_USE | 7u, NULL));
      ASSERT_OK(mb__pool_give(p, live, i1, 32, MB_STAMP_IN_USE | 7u, NULL));
      ASSERT_OK(mb__pool_take(p, t1, MB_STAMP_IN_USE | 5u, 32, i1, &got));
      ASSERT_OK(mb__pool_take(p, t2, MB_STAMP_IN_USE | 5u, 32, i2, &got));
      k1 = killed_op(p, t1, a < 10 ? MB_STAMP_CACHED | 5u : MB_STAMP_IN_USE, i1, 32, a, 1);
      k2 = killed_op(p, t2, c < 10 ? MB_STAMP_CACHED | 5u : MB_STAMP_IN_USE, i2, 32, c, 1);
      both += k1 && k2;
      if ((a + c) & 1) {
        restart_reclaim(p, 5, 2);
        check_whole(p, &held);
      }
      mb__pool_release_owner(p, 5, 0);
      check_whole(p, &held);
      ASSERT_EQ(held, 0);
      ASSERT_EQ(mb_load64(&p->intents[t1].holder), 0);
      ASSERT_EQ(mb_load64(&p->intents[t2].holder), 0);
      ASSERT(live != 0);
      mb__broker_stop(&b);
      runs++;
    }
  printf("# %d runs, %d with both threads killed inside their call\n", runs, both);
  ASSERT(both > 200);
}

/*
 * A restart's reclaim (and its own gives: cached blocks, half-given ones of a dead thread whose
 * push did or did not land) killed at every crash point of a give, the 1st to 4th time; then a
 * second restart reclaims, or the broker reaps at once. Every block found once; after the
 * broker's reap none held.
 */
TEST(release_owner_killed_at_its_gives) {
  int point, hit, second, killed = 0;
  for (point = 10; point <= 18; point++)
    for (hit = 1; hit <= 4; hit++)
      for (second = 0; second < 2; second++) {
        mb_config_t cfg;
        mb_broker_t b;
        mb_pool_map_t *p, again;
        uint32_t d1, d2, idx[MB_POOL_CHAIN], i2[MB_POOL_CHAIN], got, held, k;
        pool_config(&cfg, "relk", 128, 0);
        ASSERT_OK(mb__broker_start(&b, &cfg, 0));
        p = &b.pools[0];
        d1 = fake_record(p, 5, 1);
        d2 = fake_record(p, 5, 1);
        for (k = 0; k < 2; k++) /* 64 cached */
          ASSERT_OK(mb__pool_take(p, d1, MB_STAMP_CACHED | 5u, 32, idx, &got));
        ASSERT_OK(mb__pool_take(p, d2, MB_STAMP_IN_USE | 5u, 16, idx, &got)); /* 16 held */
        ASSERT_OK(mb__pool_take(p, d2, MB_STAMP_IN_USE | 5u, 16, i2, &got));
        ASSERT_OK(mb__pool_take(p, d1, MB_STAMP_IN_USE | 5u, 16, idx, &got));
        ASSERT(killed_op(p, d1, MB_STAMP_IN_USE, idx, 16, 15, 1)); /* a landed push */
        ASSERT(killed_op(p, d2, MB_STAMP_IN_USE, i2, 16, 12, 1));  /* one that did not land */
        ASSERT(mb_load32(&p->stamps[idx[0]]) & MB_STAMP_GIVING);
        ASSERT(mb_load32(&p->stamps[i2[0]]) & MB_STAMP_GIVING);
        again = *p;
        again.rec = fake_record(p, 5, 2);
        killed += killed_release(&again, 5, 1, point, hit); /* a give may be left half done */
        if (second) {
          mb_pool_map_t third = *p;
          third.rec = fake_record(p, 5, 3);
          mb__pool_release_owner(&third, 5, 1);
          check_whole(p, &held);
          ASSERT_EQ(held, 16); /* the held objects stay the client's */
          mb__pool_intent_release(p, third.rec, MB_POOL_HOLDER(5, 3, 424242));
        }
        mb__pool_release_owner(p, 5, 0);
        check_whole(p, &held);
        ASSERT_EQ(held, 0);
        for (k = 1; k < MB_POOL_INTENTS; k++)
          ASSERT_EQ(mb_load64(&p->intents[k].holder), 0);
        mb__broker_stop(&b);
      }
  printf("# %d runs killed inside a give of the reclaim\n", killed);
  ASSERT(killed >= 9 * 2 * 2);
}

static mb_pool_map_t *rv_p;
static uint32_t rv_rec;
static mb_au32 rv_stop;
static void rv_churn(void *arg) {
  uint32_t idx[MB_POOL_CHAIN], got;
  (void)arg;
  while (!mb_load32(&rv_stop))
    if (mb__pool_take(rv_p, rv_rec, MB_STAMP_IN_USE | 7u, 32, idx, &got) == 0)
      mb__pool_give(rv_p, rv_rec, idx, got, MB_STAMP_IN_USE, NULL);
}

/* The peak is never above what was out: one thread never holds more than 32 while the broker
 * publishes again and again over 1024 records. Was: given read before taken, and a give in
 * between made the peak 1024. */
TEST(rv_peak_overshoots) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_thread_t th;
  int k;
  pool_config(&cfg, "rvp", 1024, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  rv_p = &b.pools[0];
  rv_rec = fake_record(rv_p, 7, 1);
  mb_store64(&rv_p->desc->intents_used, 1024); /* many threads have used the pool */
  mb_store32(&rv_stop, 0);
  ASSERT_OK(mb_os_thread_start(&th, rv_churn, NULL));
  for (k = 0; k < 20000 && mb_load64(&rv_p->desc->peak) <= 32; k++)
    mb__pool_publish(rv_p);
  mb_store32(&rv_stop, 1);
  mb_os_thread_join(&th);
  printf("# peak %llu after %d publishes (true max 32)\n",
         (unsigned long long)mb_load64(&rv_p->desc->peak), k);
  ASSERT_LE(mb_load64(&rv_p->desc->peak), 32);
  mb__pool_publish(rv_p); /* quiet now: exact */
  ASSERT_EQ_U64(mb_load64(&rv_p->desc->peak), 32);
  mb__broker_stop(&b);
}

/*
 * ABA: a pop preempted between reading head (and its next) and its CAS while 65536 CASes on
 * head happen, the last one by the record that wrote the word it read, pushing the same block
 * (with the 16-bit tag: the very same word, and the pop installed a stale next - a chain held
 * by another client went back in the stack). With the 29-bit tag the pop's CAS fails and it
 * reads head again.
 */
static mb_pool_map_t *aba_p;
static uint32_t aba_r, aba_r2, aba_B[32], aba_D[32];
static int aba_busy, aba_done;
static uint64_t aba_cases;
static void aba_hook(int point) {
  uint32_t got, tmp[32], k;
  uint64_t t0;
  if (aba_busy || aba_done || point != 2)
    return;
  aba_busy = 1;
  t0 = MB_POOL_WORD_TAG(mb_load64(&aba_p->desc->head));
  ASSERT_OK(mb__pool_take(aba_p, aba_r, MB_STAMP_IN_USE | 7u, 32, tmp, &got));    /* C */
  ASSERT_OK(mb__pool_take(aba_p, aba_r2, MB_STAMP_IN_USE | 8u, 32, aba_B, &got)); /* B held */
  ASSERT_OK(mb__pool_give(aba_p, aba_r2, aba_D, 32, MB_STAMP_IN_USE, NULL));      /* D pushed */
  for (k = 0; k < 15; k++) {
    ASSERT_OK(mb__pool_give(aba_p, aba_r, tmp, 32, MB_STAMP_IN_USE, NULL));
    ASSERT_OK(mb__pool_take(aba_p, aba_r, MB_STAMP_IN_USE | 7u, 32, tmp, &got));
  }
  for (k = 0; ((MB_POOL_WORD_TAG(mb_load64(&aba_p->desc->head)) + 1 - t0) & 0xFFFFu) != 0; k++) {
    ASSERT(k < 70000);
    ASSERT_OK(mb__pool_take(aba_p, aba_r2, MB_STAMP_IN_USE | 8u, 32, aba_D, &got));
    ASSERT_OK(mb__pool_give(aba_p, aba_r2, aba_D, 32, MB_STAMP_IN_USE, NULL));
  }
  ASSERT_OK(mb__pool_give(aba_p, aba_r, tmp, 32, MB_STAMP_IN_USE, NULL)); /* C, last */
  aba_cases = MB_POOL_WORD_TAG(mb_load64(&aba_p->desc->head)) - t0;
  aba_busy = 0;
  aba_done = 1;
}
TEST(rv_aba_16bit_tag) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t P, got, out[32], A[32], C[32], k, j, held;
  pool_config(&cfg, "rvaba", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  aba_p = &b.pools[0];
  aba_r = fake_record(aba_p, 7, 1);
  aba_r2 = fake_record(aba_p, 8, 1);
  P = fake_record(aba_p, 5, 1);
  ASSERT_OK(mb__pool_take(aba_p, aba_r, MB_STAMP_IN_USE | 7u, 32, A, &got));
  ASSERT_OK(mb__pool_take(aba_p, aba_r, MB_STAMP_IN_USE | 7u, 32, aba_B, &got));
  ASSERT_OK(mb__pool_take(aba_p, aba_r, MB_STAMP_IN_USE | 7u, 32, C, &got));
  ASSERT_OK(mb__pool_take(aba_p, aba_r2, MB_STAMP_IN_USE | 8u, 32, aba_D, &got));
  ASSERT_OK(mb__pool_give(aba_p, aba_r, A, 32, MB_STAMP_IN_USE, NULL));
  ASSERT_OK(mb__pool_give(aba_p, aba_r, aba_B, 32, MB_STAMP_IN_USE, NULL));
  ASSERT_OK(mb__pool_give(aba_p, aba_r, C, 32, MB_STAMP_IN_USE, NULL));
  aba_busy = aba_done = 0;
  mb__pool_crash_hook = aba_hook;
  ASSERT_OK(mb__pool_take(aba_p, P, MB_STAMP_IN_USE | 5u, 32, out, &got));
  mb__pool_crash_hook = NULL;
  ASSERT(aba_done);
  printf("# %llu CASes on head while the pop waited; head's first block %u (B starts at %u)\n",
         (unsigned long long)aba_cases,
         (unsigned)MB_POOL_WORD_LOW(mb_load64(&aba_p->desc->head)) - 1, (unsigned)aba_B[0]);
  ASSERT_EQ_U64(aba_cases & 0xFFFFu, 0); /* the 16-bit tag had come round */
  /* P got a chain of its own, B (held by r2) is not in the stack, every block once */
  for (k = 0; k < got; k++)
    for (j = 0; j < 32; j++)
      ASSERT(out[k] != aba_B[j]);
  check_whole(aba_p, &held);
  ASSERT_EQ(held, 32 + got); /* B by r2 and P's chain */
  mb__broker_stop(&b);
}

/*
 * rvpool review (finding 2): G1 of a flush (mb__pool_give of CACHED|o blocks, as
 * mb__tcache_flush and a full cache's older half call it) against a second writer of the
 * stamp - the broker's reaper of a client declared dead while a thread of it still flushes.
 * The flush thread is stopped between its load of the stamp (CACHED|5) and its G1 (crash
 * point 11, first hit); the reaper runs to the end; the flush goes on. G1 must be a CAS: it
 * fails on the block the reaper already gave, so each block is pushed once and a live record
 * takes exactly the pool's 128 blocks, none twice. With G1 a plain store (e538bae, reverted)
 * the first block was pushed by both: a cycle in the free stack, 400 takes, 2 blocks twice.
 */
static mb_pool_map_t *rv_p;
static int rv_fired;
static void rv_hook(int point) {
  if (point == 11 && !rv_fired) {
    rv_fired = 1;
    mb__pool_crash_hook = NULL;
    mb__pool_release_owner(rv_p, 5, 0); /* the broker's reap, through its record 0 */
  }
}
TEST(rvpool_g1_store_vs_reaper) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t rec, live, idx[MB_POOL_CHAIN], got = 0, n = 0, dup = 0, k;
  static unsigned char count[128];
  pool_config(&cfg, "rvg1", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  rv_p = &b.pools[0];
  live = fake_record(rv_p, 7, 1);
  rec = fake_record(rv_p, 5, 1);
  ASSERT_OK(mb__pool_take(rv_p, rec, MB_STAMP_CACHED | 5u, 32, idx, &got)); /* a refill */
  ASSERT_EQ(got, 32);
  rv_fired = 0;
  mb__pool_crash_hook = rv_hook;
  ASSERT_OK(mb__pool_give(rv_p, rec, idx, 32, MB_STAMP_CACHED | 5u, NULL)); /* the flush */
  mb__pool_crash_hook = NULL;
  ASSERT(rv_fired);
  memset(count, 0, sizeof count);
  for (k = 0; k < 400 && mb__pool_take(rv_p, live, MB_STAMP_IN_USE | 7u, 1, idx, &got) == 0; k++) {
    n++;
    if (++count[idx[0]] == 2)
      dup++;
  }
  printf("# %u takes succeeded on a pool of 128, %u blocks handed out twice (in_use says %llu)\n",
         (unsigned)n, (unsigned)dup, (unsigned long long)mb__pool_in_use(rv_p));
  ASSERT_EQ(dup, 0);
  ASSERT_EQ(n, 128);
  ASSERT_EQ_U64(mb__pool_in_use(rv_p), 128);
  mb__broker_stop(&b);
}

#if MB_OS_POSIX
/* The fork child of handle_inherited_over_fork_is_refused: every call on the parent's client
 * and pool handle is refused, and none gives a block back; then it attaches anew and works.
 * Its exit code names the first check that failed (0: all held). */
static int fork_child(const char *instance, mb_client_t *c, mb_pool_t *p) {
  mb_client_t *d;
  mb_pool_t *q, *r;
  void *x, *o[40];
  int i;
  if (mb_pool_alloc(p, &x) != MB_EINVAL) /* a cache hit in the parent: not in the child */
    return 10;
  if (strstr(mb_last_error(), "fork") == NULL)
    return 11;
  if (mb_pool_alloc_inline(p, &x) != MB_EINVAL)
    return 12;
  if (mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &q) != MB_EINVAL) /* the reviewer's case */
    return 13;
  if (mb_pool_flush(p) != MB_EINVAL || mb_pool_free(p, &i) != MB_EINVAL)
    return 14;
  if (mb_detach(c) != MB_EINVAL || mb_close(c) != MB_EINVAL || mb_reattach(c, NULL) != MB_EINVAL)
    return 15;
  if (mb_attach(instance, "forked", NULL, &d) != 0 || mb_pool_open(d, "obj", 0, &r) != 0)
    return 16;
  for (i = 0; i < 40; i++)
    if (mb_pool_alloc(r, &o[i]) != 0)
      return 17;
  for (i = 0; i < 40; i++)
    if (mb_pool_free(r, o[i]) != 0)
      return 18;
  if (mb_detach(d) != 0)
    return 19;
  return 0;
}
#endif

/*
 * A client and pool handle inherited over fork(): the child must attach anew (membroker.h).
 * The parent holds one object and 31 cached blocks when it forks; in the child every call on
 * the inherited handles - the cached alloc, the inline one, a reopen with MB_POOL_NO_CACHE
 * (which used to flush the parent's caches: blocks handed to both), flush, free, detach, close,
 * reattach - fails with MB_EINVAL naming fork, and its own new attachment works. Back in the
 * parent, its entry is attached, its 31 cached blocks are still CACHED by it and hand out
 * exactly once.
 */
TEST(handle_inherited_over_fork_is_refused) {
#if MB_OS_POSIX
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[32];
  pid_t k;
  int i, j, st = -1;
  pool_config(&cfg, "fork", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", 0, &p));
  ASSERT_OK(mb_pool_alloc_inline(p, &o[0])); /* a refill: this thread's cache holds 31 */
  ASSERT(mb__ptc_last != NULL);
  ASSERT_EQ(mb__ptc_last->n, 31); /* an inline alloc would hit it */
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 31);
  fflush(NULL);
  ASSERT((k = fork()) >= 0);
  if (k == 0)
    _exit(fork_child(cfg.instance, c, p));
  ASSERT_EQ((int)waitpid(k, &st, 0), (int)k);
  ASSERT(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  ASSERT_EQ(MB_CLIENT_WORD_STATE(mb_load64(&b.state->clients[0].word)), MB_CLIENT_ATTACHED);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_CACHED | 1u), 31); /* nothing given back by the child */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32);
  for (i = 1; i < 32; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 32);
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 32); /* all from the cache, none twice */
  for (i = 0; i < 32; i++)
    for (j = 0; j < i; j++)
      ASSERT(o[i] != o[j]);
  for (i = 0; i < 32; i++)
    ASSERT_OK(mb_pool_free(p, o[i]));
  ASSERT_OK(mb_detach(c)); /* flushes */
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  mb__broker_stop(&b);
#else
  SKIP("Windows has no fork()");
#endif
}

/* ---- review of the magazines (7b9184f): attacks ------------------------------------------------
 */

/*
 * Setting of the rvmag_steal_* tests: client 9 holds all 128 blocks but one, block i, which
 * client 7's record v freed into its magazine. Thread A of client 5 (record a) takes: the stack
 * and bump are empty, so it steals i from v's magazine, and is paused right after S2 (point 22:
 * its CAS on v's word landed, i still stamped MAG(v, 7)). While it is paused, client 7 dies and
 * the broker reaps it. Before the fix, step 2 gave i back to the free stack, where another
 * thread of client 5 (rvm_what 0) or v's next holder (client 9, rvm_what 1: i listed in v's
 * magazine again) took it; A's reap then counted it twice (0) or took a listed block (1), and
 * A, only preempted, took a listed block (2). Now the reap leaves a landed thief's block to the
 * thief (step 1b): i stays MAG(v, 7), the others find the pool empty, then A dies (0, 1: its
 * reap gives i back) or goes on (2: its take returns i).
 */
static mb_pool_map_t *rvm_p;
static uint32_t rvm_i, rvm_v, rvm_t2, rvm_what, rvm_fired;
static void rvm_hook(int point) {
  uint32_t got = 0, out[MB_POOL_CHAIN], r9;
  if (point != 22 || rvm_fired)
    return;
  rvm_fired = 1;
  mb__pool_crash_hook = NULL;
  ASSERT_EQ(mb_load32(&rvm_p->stamps[rvm_i]), MB_STAMP_CACHED | MB_STAMP_MAG | (rvm_v << 16) | 7u);
  mb__pool_release_owner(rvm_p, 7, 0); /* client 7 reaped: i is the thief's, left alone */
  ASSERT_EQ(mb_load32(&rvm_p->stamps[rvm_i]), MB_STAMP_CACHED | MB_STAMP_MAG | (rvm_v << 16) | 7u);
  if (rvm_what == 0) {
    /* Another thread of client 5 (still alive: A is only preempted): nothing is free. */
    ASSERT_ERR(mb__pool_take(rvm_p, rvm_t2, MB_STAMP_IN_USE | 5u, 1, out, &got), MB_EFULL);
  } else {
    /* Client 9's next thread gets record v (let go by the reap) and uses it uncached: its
     * magazine is empty, and so is the pool. */
    r9 = fake_record(rvm_p, 9, 2);
    ASSERT_EQ(r9, rvm_v);
    ASSERT_ERR(mb__pool_mag_take(rvm_p, r9, MB_STAMP_IN_USE | 9u, &out[0]), MB_EFULL);
    ASSERT_EQ(MB_POOL_WORD_LOW(mb_load64(&rvm_p->mags[r9].word)), 0);
  }
  if (rvm_what == 2)
    return;             /* A was only preempted: it goes on with its S3 */
  longjmp(crash_jb, 1); /* A's process is killed now, still before its S3 */
}

static void rvm_run(uint32_t what, uint32_t *held) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t hog, a, idx[MB_POOL_CHAIN], got = 0, k, heldout[128];
  pool_config(&cfg, what == 2 ? "rvm2" : what ? "rvm1" : "rvm0", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  rvm_p = &b.pools[0];
  rvm_v = fake_record(rvm_p, 7, 1);
  hog = fake_record(rvm_p, 9, 1);
  a = fake_record(rvm_p, 5, 1);
  rvm_t2 = fake_record(rvm_p, 5, 1);
  take_all(rvm_p, hog, 9u, heldout);
  rvm_i = heldout[127];
  ASSERT_OK(mb__pool_mag_give(rvm_p, rvm_v, 7, rvm_i)); /* a free by client 7 (any client may) */
  check_whole(rvm_p, held);
  ASSERT_EQ(*held, 127);
  rvm_what = what;
  rvm_fired = 0;
  mb__pool_crash_hook = rvm_hook;
  if (setjmp(crash_jb) == 0)
    (void)mb__pool_take(rvm_p, a, MB_STAMP_IN_USE | 5u, 1, idx, &got);
  mb__pool_crash_hook = NULL;
  ASSERT(rvm_fired);
  if (what == 2) { /* A's take returned i: stamped IN_USE|5, listed nowhere */
    ASSERT_EQ(idx[0], rvm_i);
    check_whole(rvm_p, held);
    ASSERT_EQ(*held, 128);
  }
  mb__pool_release_owner(rvm_p, 5, 0); /* the broker reaps client 5 */
  for (k = 0; k < 128; k++)
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&rvm_p->stamps[k])), 5);
  check_whole(rvm_p, held);
  mb__broker_stop(&b);
}

/* A killed after its steal landed while the victim was reaped, another thread of its client
 * taking meanwhile: after A's reap nothing of client 5 is held and the counts are exact (before
 * the fix: 128 != 127, A's landed steal counted a second time). */
TEST(rvmag_steal_landed_block_recycled_counted_twice) {
  uint32_t held;
  rvm_run(0, &held);
  ASSERT_EQ(held, 127);
}

/* The same with v's next holder (client 9) using v's magazine meanwhile: every block exactly
 * once after A's reap (before the fix: i in the free stack and listed in v's magazine). */
TEST(rvmag_steal_landed_block_relisted_taken_by_reap) {
  uint32_t held;
  rvm_run(1, &held);
  ASSERT_EQ(held, 127);
}

/* No kill: A, preempted between S2 and S3 while the victim was reaped, takes i after all, and
 * i is listed nowhere (before the fix: A took i while it was listed in client 9's magazine). */
TEST(rvmag_preempted_thief_takes_relisted_block) {
  uint32_t held;
  rvm_run(2, &held);
}

/*
 * Real threads: two threads of client "nc" allocate and free through MB_POOL_NO_CACHE (their
 * magazines), a thread of client "tc" through its thread cache, and a thread of client "nc2"
 * uncached too, on a pool of 100 that is exhausted most of the time, so takers steal from the
 * magazines all along. Each block holds its holder's tag while held (worker_main: a block
 * handed out twice is caught). After all detach: in use 0, every block free, the whole capacity
 * taken once again.
 */
TEST(rvmag_threads_hammer_with_thieves) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c1, *c2, *c3, *chk;
  mb_pool_t *p1, *p2, *p3, *pc;
  worker_t w[4];
  mb_os_thread_t t[4];
  void *o[101];
  int k, n = 0, i, j;
  uint64_t a, f;
  pool_config(&cfg, "rvmt", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "nc", NULL, &c1));
  ASSERT_OK(mb_attach(cfg.instance, "tc", NULL, &c2));
  ASSERT_OK(mb_attach(cfg.instance, "nc2", NULL, &c3));
  ASSERT_OK(mb_pool_open(c1, "obj", MB_POOL_NO_CACHE, &p1));
  ASSERT_OK(mb_pool_open(c2, "obj", 0, &p2));
  ASSERT_OK(mb_pool_open(c3, "obj", MB_POOL_NO_CACHE, &p3));
  for (k = 0; k < 4; k++) {
    memset(&w[k], 0, sizeof w[k]);
    w[k].pool = k < 2 ? p1 : k == 2 ? p2 : p3;
    w[k].tag = 0x5000u + (uint32_t)k;
    w[k].ms = 1500;
    ASSERT_OK(mb_os_thread_start(&t[k], worker_main, &w[k]));
  }
  for (k = 0; k < 4; k++)
    mb_os_thread_join(&t[k]);
  for (k = 0; k < 4; k++) {
    printf("# thread %d: %lu allocations, %d failures\n", k, w[k].ops, w[k].failures);
    ASSERT_EQ(w[k].failures, 0);
  }
  printf("# misses %llu, errors %llu\n", (unsigned long long)mb_load64(&desc(&b)->misses),
         (unsigned long long)mb_load64(&desc(&b)->errors));
  mb__pool_totals(&b.pools[0], &a, &f);
  ASSERT_OK(mb_detach(c1));
  ASSERT_OK(mb_detach(c2));
  ASSERT_OK(mb_detach(c3));
  ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
  ASSERT_EQ_U64(mb_load64(&desc(&b)->errors), 0);
  ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
  ASSERT_OK(mb_attach(cfg.instance, "check", NULL, &chk));
  ASSERT_OK(mb_pool_open(chk, "obj", 0, &pc));
  while (n < 101 && mb_pool_alloc(pc, &o[n]) == 0)
    n++;
  ASSERT_EQ(n, 100);
  for (i = 0; i < 100; i++)
    for (j = i + 1; j < 100; j++)
      ASSERT(o[i] != o[j]);
  ASSERT_OK(mb_detach(chk));
  mb__broker_stop(&b);
}

/*
 * Hostile magazine: record v's (client 7) word and slots forged by another member of the group
 * while honest clients hold blocks: client 9 holds H (IN_USE|9), client 8's thread cache holds C
 * (CACHED|8), 16 blocks are in the free stack, v's magazine lists 20 blocks of its own. The
 * forger makes the count 62 (a full magazine: the next free gives 32 back) and points the slots
 * above 20 at H, C, free blocks, v's own blocks again, and out of the pool; the word's writer
 * field names record 0. Then v allocates 80 times and frees, client 5 takes all it can
 * (stealing), a forged count above 62 is met, and both are reaped. No block an honest client
 * holds (H, C) changes hands, nothing is handed out twice, everything ends.
 */
TEST(rvmag_forged_magazine_no_double_handout) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t h, c8, v, r5, H[32], C[32], F[16], own[20], got = 0, k, n, x, i;
  uint32_t gets[256], ng = 0;
  static unsigned char cnt[128];
  pool_config(&cfg, "rvmf", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  h = fake_record(p, 9, 1);
  c8 = fake_record(p, 8, 1);
  v = fake_record(p, 7, 1);
  r5 = fake_record(p, 5, 1);
  ASSERT_OK(mb__pool_take(p, h, MB_STAMP_IN_USE | 9u, 32, H, &got));
  ASSERT_OK(mb__pool_take(p, c8, MB_STAMP_CACHED | 8u, 32, C, &got));
  ASSERT_OK(mb__pool_take(p, h, MB_STAMP_IN_USE | 9u, 16, F, &got));
  for (k = 0; k < 20; k++) {
    ASSERT_OK(mb__pool_take(p, h, MB_STAMP_IN_USE | 9u, 1, &own[k], &got));
    ASSERT_OK(mb__pool_mag_give(p, v, 7, own[k]));
  }
  ASSERT_OK(mb__pool_give(p, h, F, 16, MB_STAMP_IN_USE, NULL)); /* 16 free, in the stack */
  /* the forgery */
  for (k = 20; k < MB_POOL_MAG; k++) {
    static const uint32_t far[] = {128, 1000, 0xFFFFFFFFu, 0x00FFFFFFu};
    switch (k % 5) {
    case 0:
      x = H[k % 32];
      break;
    case 1:
      x = C[k % 32];
      break;
    case 2:
      x = F[k % 16];
      break;
    case 3:
      x = own[k % 20];
      break;
    default:
      x = far[k % 4];
      break;
    }
    mb_store32(&p->mags[v].slot[k], x);
  }
  mb_store64(&p->mags[v].word, (UINT64_C(12345) << MB_POOL_TAG_SHIFT) | MB_POOL_MAG);
  /* v frees one of H (a cross-client free: legal): the full magazine gives 32 back first */
  ASSERT_OK(mb__pool_mag_give(p, v, 7, H[0]));
  gets[ng++] = UINT32_MAX; /* H[0] is now free: not client 9's any more */
  for (k = 0; k < 80; k++) {
    if (mb__pool_mag_take(p, v, MB_STAMP_IN_USE | 7u, &i) != 0)
      break;
    ASSERT(i < 128);
    ASSERT_EQ(mb_load32(&p->stamps[i]), MB_STAMP_IN_USE | 7u);
    gets[ng++] = i;
  }
  /* client 5 takes all it can: stack, bump, then the magazines */
  for (n = 0; n < 200; n++) {
    uint32_t out[MB_POOL_CHAIN];
    if (mb__pool_take(p, r5, MB_STAMP_IN_USE | 5u, 32, out, &got) != 0)
      break;
    for (k = 0; k < got; k++) {
      ASSERT_EQ(mb_load32(&p->stamps[out[k]]), MB_STAMP_IN_USE | 5u);
      gets[ng++] = out[k];
      ASSERT(ng < 256);
    }
  }
  memset(cnt, 0, sizeof cnt);
  for (k = 0; k < ng; k++)
    if (gets[k] != UINT32_MAX && ++cnt[gets[k]] > 1)
      FAIL("block %u handed out twice", (unsigned)gets[k]);
  for (k = 1; k < 32; k++) {
    ASSERT_EQ(cnt[H[k]], 0);
    ASSERT_EQ(mb_load32(&p->stamps[H[k]]), MB_STAMP_IN_USE | 9u);
  }
  for (k = 0; k < 32; k++) {
    ASSERT_EQ(cnt[C[k]], 0);
    ASSERT_EQ(mb_load32(&p->stamps[C[k]]), MB_STAMP_CACHED | 8u);
  }
  printf("# %u blocks handed out after the forgery, none twice\n", (unsigned)ng - 1);
  /* a count above the magazine, writer a record with a pending steal of v */
  mb_store64(&p->intents[r5].op, (UINT64_C(99) << 32) | (1u << 8) | 4u);
  mb_store64(&p->intents[r5].count, v);
  mb_store64(&p->mags[v].word,
             (UINT64_C(777) << MB_POOL_TAG_SHIFT) | ((uint64_t)r5 << MB_POOL_LOW_BITS) | 5000u);
  mb_store64(&p->intents[r5].next, mb_load64(&p->mags[v].word));
  mb__pool_mag_flush(p, v, 7);
  ASSERT_EQ(MB_POOL_WORD_LOW(mb_load64(&p->mags[v].word)), 0);
  mb__pool_release_owner(p, 7, 0);
  mb__pool_release_owner(p, 5, 0);
  mb__pool_release_owner(p, 9, 0);
  mb__pool_release_owner(p, 8, 0);
  mb__pool_publish(p);
  ASSERT_LE(mb_load64(&p->desc->peak), 128);
  mb__broker_stop(&b);
}

/*
 * Thieves inside the window: as mag_crash_points_every_step, but at the hit-th time record
 * `dead` (client 5) reaches `point`, a thief runs there first - a live record of client 7
 * takes all it can (stealing from every magazine, the op's own included), through a plain take
 * (thief 1) or through an uncached take of an empty magazine (thief 2: a refill that steals,
 * stamped as its magazine's) - and then the op is killed there (kill 1) or goes on (kill 0).
 * Then client 5 is reaped (after a restart's reclaim, every other run): every block found
 * once, the counts exact; then client 7 too and the whole capacity is taken again.
 */
static mb_pool_map_t *tw_p;
static uint32_t tw_live, tw_live2, tw_held[256], tw_n;
static int tw_thief, tw_kill;
static void tw_hook(int point) {
  uint32_t got = 0, i;
  if (point != crash_at || ++crash_hits != crash_wanted)
    return;
  mb__pool_crash_hook = NULL;
  if (tw_thief == 1) {
    while (tw_n + MB_POOL_CHAIN <= 256 &&
           mb__pool_take(tw_p, tw_live, MB_STAMP_IN_USE | 7u, 32, tw_held + tw_n, &got) == 0)
      tw_n += got;
  } else {
    while (tw_n < 256 && mb__pool_mag_take(tw_p, tw_live2, MB_STAMP_IN_USE | 7u, &i) == 0)
      tw_held[tw_n++] = i;
  }
  if (tw_kill)
    longjmp(crash_jb, 1);
  mb__pool_crash_hook = tw_hook; /* counting goes on: no second hit wanted */
}

static int tw_run(int point, int hit, int sc, int restart, int thief, int kill) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t dead, idx[MB_POOL_CHAIN], hl[128], got = 0, held, k, i, mine = 0;
  volatile int crashed = 0, fired;
  if (getenv("TW_TRACE"))
    fprintf(stderr, "tw_run point %d hit %d sc %d restart %d thief %d kill %d\n", point, hit, sc,
            restart, thief, kill);
  pool_config(&cfg, "tw", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = tw_p = &b.pools[0];
  tw_live = fake_record(p, 7, 1);
  dead = fake_record(p, 5, 1);
  tw_live2 = fake_record(p, 7, 1);
  tw_n = 0;
  if (sc == MAG_REFILL || sc == MAG_POP || sc == MAG_PUSH) {
    uint32_t a[MB_POOL_CHAIN], c[MB_POOL_CHAIN];
    ASSERT_OK(mb__pool_take(p, tw_live, MB_STAMP_IN_USE | 7u, 32, a, &got));
    ASSERT_OK(mb__pool_take(p, tw_live, MB_STAMP_IN_USE | 7u, 32, c, &got));
    ASSERT_OK(mb__pool_give(p, tw_live, a, 32, MB_STAMP_IN_USE | 7u, NULL));
    ASSERT_OK(mb__pool_give(p, tw_live, c, 32, MB_STAMP_IN_USE | 7u, NULL));
  }
  if (sc == MAG_POP || sc == MAG_PUSH)
    ASSERT_OK(mb__pool_mag_take(p, dead, MB_STAMP_IN_USE | 5u, &idx[0]));
  if (sc == MAG_FLUSH_FULL || sc == MAG_EXIT) {
    ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 32, idx, &got));
    ASSERT_OK(mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 32, hl, &got));
    for (k = 0; k < (sc == MAG_EXIT ? 20u : 62u); k++)
      ASSERT_OK(mb__pool_mag_give(p, dead, 5, k < 32 ? idx[k] : hl[k - 32]));
    idx[0] = hl[31];
  }
  if (sc == MAG_STEAL || sc == MAG_STEAL_REFILL) {
    take_all(p, tw_live, 7u, tw_held);
    for (k = 0; k < 10; k++)
      ASSERT_OK(mb__pool_mag_give(p, tw_live, 7, tw_held[118 + k]));
    tw_n = 118;
  }
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  tw_thief = thief;
  tw_kill = kill;
  mb__pool_crash_hook = tw_hook;
  if (setjmp(crash_jb) == 0) {
    if (sc == MAG_FRESH || sc == MAG_REFILL || sc == MAG_POP || sc == MAG_STEAL_REFILL) {
      if (mb__pool_mag_take(p, dead, MB_STAMP_IN_USE | 5u, &i) == 0)
        mine = 1;
    } else if (sc == MAG_PUSH || sc == MAG_FLUSH_FULL) {
      ASSERT_OK(mb__pool_mag_give(p, dead, 5, idx[0]));
    } else if (sc == MAG_STEAL) {
      if (mb__pool_take(p, dead, MB_STAMP_IN_USE | 5u, 1, idx, &got) == 0)
        mine = 1;
    } else {
      mb__pool_mag_flush(p, dead, 5);
    }
  } else {
    crashed = 1;
  }
  fired = crash_hits >= crash_wanted;
  mb__pool_crash_hook = NULL;
  (void)mine;
  (void)fired;
  /* not killed: the op ended; the pool is whole whatever it did */
  if (!crashed)
    check_whole(p, &held);
  if (restart) {
    restart_reclaim(p, 5, 2);
    check_whole(p, &held);
  }
  reap_whole(p, 5, tw_n);
  mb__pool_release_owner(p, 7, 0);
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  take_whole_again(p, 7);
  mb__broker_stop(&b);
  return crashed;
}

TEST(rvmag_thief_inside_every_window) {
  int pi, hit, sc, restart, thief, kill, runs = 0, crashed = 0;
  for (pi = 0; pi < (int)(sizeof mag_points / sizeof mag_points[0]); pi++)
    for (sc = 0; sc < MAG_SCS; sc++)
      for (hit = 1; hit <= 2; hit++)
        for (thief = 1; thief <= 2; thief++)
          for (kill = 0; kill < 2; kill++)
            for (restart = 0; restart < 2; restart++) {
              crashed += tw_run(mag_points[pi], hit, sc, restart, thief, kill);
              runs++;
            }
  printf("# %d runs, %d killed inside the call\n", runs, crashed);
}

/*
 * A flush (thread exit, mb_pool_flush, detach: mb__pool_mag_flush) while takers find the pool
 * empty and steal from the flushing record's magazine: mb__pool_mag_flush gives up after 16
 * CASes on the word. Real threads: two thieves of client 7 spin on takes (the pool is all held
 * but the 62 blocks of record r's magazine, client 5) while r flushes. Whatever the thieves
 * took, the flush must leave the magazine empty: the record is let go right after it (thread
 * exit), and blocks still listed then are stamped MAG(r, 5) in a magazine no one of client 5
 * holds - the reap of client 5 does not give them back (only records it holds are "dead"), and
 * the next holder of r empties the word (mb__pool_intent_claim): lost for good.
 */
static mb_pool_map_t *fl_p;
static mb_au32 fl_go, fl_stop, fl_spins[2];
static uint32_t fl_rec[2], fl_got[2][64], fl_n[2];
static void fl_thief(void *arg) {
  int k = (int)(intptr_t)arg;
  uint32_t idx[MB_POOL_CHAIN], got;
  while (!mb_load32(&fl_stop)) {
    if (!mb_load32(&fl_go))
      continue;
    if (fl_n[k] < 64 && mb__pool_take(fl_p, fl_rec[k], MB_STAMP_IN_USE | 7u, 1, idx, &got) == 0)
      fl_got[k][fl_n[k]++] = idx[0];
    else
      mb_add32(&fl_spins[k], 1);
  }
}
TEST(rvmag_flush_under_steals_leaves_magazine) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t hog, r, hl[128], n, k, left = 0, runs = 0;
  uint64_t end = mb_os_mono_ns() + UINT64_C(2000000000);
  mb_os_thread_t th[2];
  pool_config(&cfg, "rvfl", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = fl_p = &b.pools[0];
  hog = fake_record(p, 9, 1);
  r = fake_record(p, 5, 1);
  fl_rec[0] = fake_record(p, 7, 1);
  fl_rec[1] = fake_record(p, 7, 1);
  mb_store32(&fl_stop, 0);
  mb_store32(&fl_go, 0);
  for (k = 0; k < 2; k++)
    ASSERT_OK(mb_os_thread_start(&th[k], fl_thief, (void *)(intptr_t)k));
  while (mb_os_mono_ns() < end && left == 0) {
    /* everything held by client 9, then 62 of it freed by r (client 5): r's magazine full */
    take_all(p, hog, 9u, hl);
    for (k = 0; k < MB_POOL_MAG; k++)
      ASSERT_OK(mb__pool_mag_give(p, r, 5, hl[k]));
    fl_n[0] = fl_n[1] = 0;
    mb_store32(&fl_spins[0], 0);
    mb_store32(&fl_spins[1], 0);
    mb_store32(&fl_go, 1);
    while (mb_load32(&fl_spins[0]) < 50 || mb_load32(&fl_spins[1]) < 50) {
    }
    mb__pool_mag_flush(p, r, 5);
    left = MB_POOL_WORD_LOW(mb_load64(&p->mags[r].word));
    mb_store32(&fl_go, 0);
    mb_os_sleep_ms(1); /* the thieves are out of their takes */
    runs++;
    if (left)
      break;
    /* all back: 5's magazine empty, the thieves' and the hog's blocks freed */
    for (k = 0; k < 2; k++)
      if (fl_n[k] > 0)
        for (n = 0; n < fl_n[k]; n += 32)
          ASSERT_OK(mb__pool_give(p, fl_rec[k], fl_got[k] + n, fl_n[k] - n < 32 ? fl_n[k] - n : 32,
                                  MB_STAMP_IN_USE, NULL));
    for (n = MB_POOL_MAG; n < 128; n += 32)
      ASSERT_OK(mb__pool_give(p, hog, hl + n, 128 - n < 32 ? 128 - n : 32, MB_STAMP_IN_USE, NULL));
  }
  mb_store32(&fl_stop, 1);
  for (k = 0; k < 2; k++)
    mb_os_thread_join(&th[k]);
  printf("# %u runs; the last flush left %u blocks in the magazine (thieves took %u + %u)\n",
         (unsigned)runs, (unsigned)left, (unsigned)fl_n[0], (unsigned)fl_n[1]);
  if (left) {
    uint32_t held;
    mb__pool_intent_release(p, r, MB_POOL_HOLDER(5, 1, 424242)); /* its thread exits */
    mb__pool_release_owner(p, 5, 0);                             /* client 5 detaches */
    r = fake_record(p, 3, 1);                                    /* r's next holder */
    check_whole(p, &held);                                       /* "... in no magazine" */
  }
  ASSERT_EQ(left, 0);
  mb__broker_stop(&b);
}

/*
 * A reaper killed inside its own gives while it gives back magazines: client 5 died with record
 * d's magazine full (62 blocks, of which the full magazine's flush had 32 half given: killed at
 * G1 or after its push landed), record d2's steal from client 7's magazine landed but not
 * stamped (point 22), and 2 blocks in use. A restart's reclaim is killed at every give point
 * (10..18), the 1st to 6th time; a thief of client 7 takes all it can; then (every other run)
 * a second restart reclaims, and the broker reaps. Every block found once, counts exact.
 */
static int killed_mag_give(mb_pool_map_t *p, uint32_t rec, uint32_t i, int point);
static int rk_run(int point, int hit, int second, int fpoint) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p, again;
  uint32_t live, d, d2, hl[128], idx[MB_POOL_CHAIN], got = 0, held, k, n;
  volatile uint32_t nl = 0;
  int killed;
  pool_config(&cfg, "rk", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  live = fake_record(p, 7, 1);
  d = fake_record(p, 5, 1);
  d2 = fake_record(p, 5, 1);
  for (n = 0; n < 128; n += got) /* all out: client 7 takes 64, d 64 */
    ASSERT_OK(mb__pool_take(p, n < 64 ? live : d, MB_STAMP_IN_USE | (n < 64 ? 7u : 5u), 32, hl + n,
                            &got));
  for (k = 0; k < 4; k++) /* 4 in client 7's magazine, 60 held by it */
    ASSERT_OK(mb__pool_mag_give(p, live, 7, hl[k]));
  nl = 60;
  for (k = 0; k < 62; k++) /* d's magazine full, d holds 2 */
    ASSERT_OK(mb__pool_mag_give(p, d, 5, hl[64 + k]));
  /* d frees one more: its full magazine gives 32 back first, killed at fpoint of that give */
  ASSERT(killed_mag_give(p, d, hl[126], fpoint));
  /* d2 steals from client 7's magazine: killed at 22 */
  crash_at = 22;
  crash_hits = 0;
  crash_wanted = 1;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0)
    (void)mb__pool_take(p, d2, MB_STAMP_IN_USE | 5u, 1, idx, &got);
  mb__pool_crash_hook = NULL;
  again = *p;
  again.rec = fake_record(p, 5, 2);
  killed = killed_release(&again, 5, 1, point, hit);
  for (; nl + MB_POOL_CHAIN <= 128 &&
         mb__pool_take(p, live, MB_STAMP_IN_USE | 7u, 32, hl, &got) == 0;)
    nl += got;
  if (second) {
    restart_reclaim(p, 5, 3);
    check_whole(p, &held);
  }
  reap_whole(p, 5, nl);
  mb__pool_release_owner(p, 7, 0);
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  mb__broker_stop(&b);
  return killed;
}

/* mb__pool_mag_give killed at the first time it reaches point (the full magazine's flush). */
static int killed_mag_give(mb_pool_map_t *p, uint32_t rec, uint32_t i, int point) {
  volatile int crashed = 0;
  crash_at = point;
  crash_hits = 0;
  crash_wanted = 1;
  mb__pool_crash_hook = crash_hook;
  if (setjmp(crash_jb) == 0)
    (void)mb__pool_mag_give(p, rec, 5, i);
  else
    crashed = 1;
  mb__pool_crash_hook = NULL;
  return crashed;
}

TEST(rvmag_reclaim_killed_in_its_gives_with_magazines) {
  static const int fpoints[] = {11, 12, 15, 17};
  int point, hit, second, fi, killed = 0, runs = 0;
  for (fi = 0; fi < 4; fi++)
    for (point = 10; point <= 18; point++)
      for (hit = 1; hit <= 6; hit++)
        for (second = 0; second < 2; second++) {
          killed += rk_run(point, hit, second, fpoints[fi]);
          runs++;
        }
  printf("# %d runs, %d with the reclaim killed in a give\n", runs, killed);
  ASSERT(killed > 100);
}

/*
 * Spurious MB_EFULL. The pool is all held but for 5 blocks in record v's magazine (client 7),
 * and v's thread keeps allocating and freeing one object uncached (MPUSH, MPOP: two CASes on
 * v's word, the count back where it was). A take by client 5 finds the stack and bump empty and
 * steals; each time between its S0 and its CAS (point 20) v's thread does one free and one
 * alloc, for 100 tries. With a bound of 8 tries mb__steal went on to the next record, found
 * none, and the take failed with MB_EFULL - counted as a miss - while 5 blocks were free all
 * along ("any taker that finds the stack and bump empty steals from a magazine, so a pool needs
 * no headroom"). Now a thief gives up on a magazine only after 256 lost races in a row.
 */
static mb_pool_map_t *sp_p;
static uint32_t sp_v, sp_x, sp_hits;
static void sp_hook(int point) {
  if (point != 20 || sp_hits == 100) /* an owner busy for 100 of the thief's tries, then not */
    return;
  sp_hits++;
  mb__pool_crash_hook = NULL;
  ASSERT_OK(mb__pool_mag_give(sp_p, sp_v, 7, sp_x));
  ASSERT_OK(mb__pool_mag_take(sp_p, sp_v, MB_STAMP_IN_USE | 7u, &sp_x));
  mb__pool_crash_hook = sp_hook;
}
TEST(rvmag_steal_gives_up_efull_with_free_blocks) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t hog, t5, hl[128], got = 0, k, idx[MB_POOL_CHAIN];
  int rc;
  pool_config(&cfg, "rvsp", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  sp_p = &b.pools[0];
  sp_v = fake_record(sp_p, 7, 1);
  hog = fake_record(sp_p, 9, 1);
  t5 = fake_record(sp_p, 5, 1);
  take_all(sp_p, hog, 9u, hl);
  for (k = 0; k < 6; k++)
    ASSERT_OK(mb__pool_mag_give(sp_p, sp_v, 7, hl[k]));
  ASSERT_OK(mb__pool_mag_take(sp_p, sp_v, MB_STAMP_IN_USE | 7u, &sp_x)); /* v's object */
  sp_hits = 0;
  mb__pool_crash_hook = sp_hook;
  rc = mb__pool_take(sp_p, t5, MB_STAMP_IN_USE | 5u, 1, idx, &got);
  mb__pool_crash_hook = NULL;
  printf("# take: %d after %u tries on v's word; v's magazine holds %u\n", rc, (unsigned)sp_hits,
         (unsigned)MB_POOL_WORD_LOW(mb_load64(&sp_p->mags[sp_v].word)));
  ASSERT_OK(rc);
  mb__broker_stop(&b);
}

/* The same with real threads: v's thread frees and allocates one object in a loop (and frees
 * into its magazine the blocks the taker hands back, so the pool stays as it was) while a
 * thread of client 5 takes one block at a time, for up to 3 s (it stops at the first failure);
 * every take must succeed. Seen: a failure every ~300000 takes on this machine. */
static mb_au32 sp_stop, sp_ret;
static void sp_owner(void *arg) {
  uint32_t r;
  (void)arg;
  while (!mb_load32(&sp_stop)) {
    if ((r = mb_load32(&sp_ret)) != 0) {
      if (mb__pool_mag_give(sp_p, sp_v, 7, r - 1) != 0)
        abort();
      mb_store32(&sp_ret, 0);
    }
    if (mb__pool_mag_give(sp_p, sp_v, 7, sp_x) != 0 ||
        mb__pool_mag_take(sp_p, sp_v, MB_STAMP_IN_USE | 7u, &sp_x) != 0)
      abort();
  }
}
TEST(rvmag_steal_efull_under_a_busy_owner_threads) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t hog, t5, hl[128], got = 0, k, idx[MB_POOL_CHAIN], fails = 0;
  uint64_t end = mb_os_mono_ns() + UINT64_C(3000000000);
  mb_os_thread_t th;
  pool_config(&cfg, "rvsq", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  sp_p = &b.pools[0];
  sp_v = fake_record(sp_p, 7, 1);
  hog = fake_record(sp_p, 9, 1);
  t5 = fake_record(sp_p, 5, 1);
  take_all(sp_p, hog, 9u, hl);
  for (k = 0; k < 6; k++)
    ASSERT_OK(mb__pool_mag_give(sp_p, sp_v, 7, hl[k]));
  ASSERT_OK(mb__pool_mag_take(sp_p, sp_v, MB_STAMP_IN_USE | 7u, &sp_x));
  mb_store32(&sp_stop, 0);
  mb_store32(&sp_ret, 0);
  ASSERT_OK(mb_os_thread_start(&th, sp_owner, NULL));
  for (k = 0; fails == 0 && ((k & 1023) != 0 || mb_os_mono_ns() < end); k++) {
    if (mb__pool_take(sp_p, t5, MB_STAMP_IN_USE | 5u, 1, idx, &got) != 0) {
      fails++;
      continue;
    }
    mb_store32(&sp_ret, idx[0] + 1); /* v's thread frees it into v's magazine */
    while (mb_load32(&sp_ret) != 0) {
    }
  }
  mb_store32(&sp_stop, 1);
  mb_os_thread_join(&th);
  printf("# %u of %u takes failed with MB_EFULL, 4 or 5 blocks free in v's magazine; "
         "misses %llu\n",
         (unsigned)fails, (unsigned)k, (unsigned long long)mb_load64(&sp_p->desc->misses));
  ASSERT_EQ(fails, 0);
  mb__broker_stop(&b);
}

/*
 * `refills` is documented (README, the pool figures) as thread-cache refills, and
 * refills_counted checks that uncached (debug-pool) allocations do not count. An uncached
 * handle's magazine takes its chains through mb__take with the magazine stamp, which has
 * MB_STAMP_CACHED in it, so each magazine refill is counted as a thread-cache refill: 33
 * uncached allocations show refills 2 (and `allocated / refills` near 16, read as "caches serve
 * nearly every allocation").
 */
TEST(rvmag_uncached_allocs_counted_as_refills) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  void *o[MB_POOL_CHAIN + 1];
  int i;
  pool_config(&cfg, "rvrf", 100, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &p));
  for (i = 0; i <= MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_alloc(p, &o[i]));
  printf("# refills after %d uncached allocations: %llu\n", MB_POOL_CHAIN + 1,
         (unsigned long long)report_refills(&b));
  ASSERT_EQ_U64(report_refills(&b), 0); /* no thread cache was refilled */
  for (i = 0; i <= MB_POOL_CHAIN; i++)
    ASSERT_OK(mb_pool_free(p, o[i]));
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/*
 * The victim reaped inside a live thief's steal: client 5 (record d) died with 20 blocks in its
 * magazine; the pool is otherwise all held by client 7. Record t of client 7 takes (stealing
 * from d's magazine) and, at the hit-th time it reaches point (20..24), client 5 is reaped
 * there - by the broker, or first by a restart's reclaim (cached_only) - and then t goes on
 * (kill 0), or is killed there and client 7 is reaped too (kill 1). Every block found once,
 * counts exact, nothing of client 5 left.
 */
static mb_pool_map_t *tp_p;
static int tp_restart, tp_kill;
static void tp_hook(int point) {
  uint32_t held;
  if (point != crash_at || ++crash_hits != crash_wanted)
    return;
  mb__pool_crash_hook = NULL;
  if (tp_restart) {
    restart_reclaim(tp_p, 5, 2);
  }
  mb__pool_release_owner(tp_p, 5, 0);
  (void)held;
  if (tp_kill)
    longjmp(crash_jb, 1);
}
TEST(rvmag_victim_reaped_inside_a_steal) {
  volatile int point, hit, restart, kill, runs = 0, fired = 0;
  for (point = 20; point <= 24; point++)
    for (hit = 1; hit <= 3; hit++)
      for (restart = 0; restart < 2; restart++)
        for (kill = 0; kill < 2; kill++) {
          mb_config_t cfg;
          mb_broker_t b;
          mb_pool_map_t *p;
          uint32_t hog, d, t, hl[128], got = 0, k, held, idx[MB_POOL_CHAIN];
          volatile int ok = 0;
          pool_config(&cfg, "rvtp", 128, 0);
          ASSERT_OK(mb__broker_start(&b, &cfg, 0));
          p = tp_p = &b.pools[0];
          hog = fake_record(p, 7, 1);
          d = fake_record(p, 5, 1);
          t = fake_record(p, 7, 1);
          take_all(p, hog, 7u, hl);
          for (k = 0; k < 20; k++)
            ASSERT_OK(mb__pool_mag_give(p, d, 5, hl[k]));
          crash_at = point;
          crash_hits = 0;
          crash_wanted = hit;
          tp_restart = restart;
          tp_kill = kill;
          mb__pool_crash_hook = tp_hook;
          if (setjmp(crash_jb) == 0)
            ok = mb__pool_take(p, t, MB_STAMP_IN_USE | 7u, 1, idx, &got) == 0;
          fired += crash_hits >= crash_wanted;
          mb__pool_crash_hook = NULL;
          if (crash_hits < crash_wanted) /* never got there: reap now */
            mb__pool_release_owner(p, 5, 0);
          if (kill && crash_hits >= crash_wanted) {
            mb__pool_release_owner(p, 7, 0);
            check_whole(p, &held);
            ASSERT_EQ(held, 0);
          } else {
            check_whole(p, &held);
            ASSERT_EQ(held, 108 + (ok ? 1u : 0u));
          }
          for (k = 0; k < 128; k++)
            ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 5);
          mb__broker_stop(&b);
          runs++;
        }
  printf("# %d runs, %d reaped inside the steal\n", runs, fired);
}

/* argv: instance name count - uncached: allocate count objects, write 1000 + i into each, free
 * every other one of the first half (into the thread's magazine), also from a second thread
 * that exits (its magazine flushed at exit), set the NPC counter, wait to be killed. */
static void nc_other(void *arg) {
  mb_pool_t *p = arg;
  void *o[40];
  int i;
  for (i = 0; i < 40; i++)
    if (mb_pool_alloc(p, &o[i]) != 0)
      abort();
  for (i = 0; i < 40; i++)
    if (mb_pool_free(p, o[i]) != 0)
      abort();
}
CHILD(hold_objects_nc) {
  mb_client_t *c;
  mb_pool_t *p;
  mb_os_thread_t t;
  void *o[200];
  long i, n;
  if (argc != 3 || mb_attach(argv[0], argv[1], NULL, &c) != 0 ||
      mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &p) != 0)
    return 100;
  n = atol(argv[2]);
  if (mb_os_thread_start(&t, nc_other, p) != 0)
    return 102;
  mb_os_thread_join(&t);
  for (i = 0; i < n; i++) {
    if (mb_pool_alloc(p, &o[i]) != 0)
      return 101;
    ((uint64_t *)o[i])[0] = 1000 + (uint64_t)i;
  }
  for (i = n; i < 2 * n; i++)
    if (mb_pool_alloc(p, &o[i]) != 0)
      return 103;
  for (i = n; i < 2 * n; i++) /* n freed: into the magazine */
    if (mb_pool_free(p, o[i]) != 0)
      return 104;
  mb_counter_set(c, MB_COUNTER_NPCS, (uint64_t)n);
  for (;;)
    mb_os_sleep_ms(10);
}

/* A game server using MB_POOL_NO_CACHE killed: the broker reaps its held objects and its
 * magazine; or a restart finds exactly its objects and gives the magazine back. */
TEST(rvmag_killed_uncached_client) {
  int restart;
  for (restart = 0; restart < 2; restart++) {
    mb_config_t cfg;
    mb_broker_t b;
    mb_os_child_t k;
    int code = -1;
    uint32_t i;
    pool_config(&cfg, restart ? "rvkr" : "rvkc", 100, 0);
    cfg.grace_period_ms = restart ? 60000 : 200;
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    ASSERT_OK(mb_test_spawn(&k, "hold_objects_nc", cfg.instance, "zone", "25", (char *)NULL));
    WAIT_FOR(mb_load64(&b.state->game.total_npcs) == 25, 30000);
    ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 25);
    ASSERT_EQ(count_stamps(&b, MB_STAMP_IN_USE | 1u), 25);
    ASSERT_OK(mb_os_child_kill(&k));
    ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
    if (restart) {
      ASSERT_EQ(mb_test_run_child(60000, "find_objects", cfg.instance, "zone", "25", (char *)NULL),
                0);
    } else {
      WAIT_FOR((mb__broker_sweep(&b), state_of(&b, 0) == MB_CLIENT_FREE), 10000);
    }
    ASSERT_EQ_U64(mb__pool_in_use(&b.pools[0]), 0);
    for (i = 0; i < MB_POOL_INTENTS; i++)
      ASSERT_EQ(MB_POOL_WORD_LOW(mb_load64(&b.pools[0].mags[i].word)), 0);
    ASSERT_EQ(count_stamps(&b, MB_STAMP_FREE), 100);
    mb__broker_stop(&b);
  }
}

/*
 * The owner's side of the same: record v (client 5) has 20 free blocks in its magazine, the
 * pool is otherwise all held, and takers of client 7 (finding the stack and bump empty) steal
 * v's top block between v's M0 and its M1 (point 30), 9 times. With a bound of 8 tries
 * mb__pool_mag_take fell back to a plain take of one block, whose steal skips the caller's own
 * magazine: MB_EFULL, while v's own magazine still held 11 free blocks.
 */
static uint32_t so_t7, so_hits;
static void so_hook(int point) {
  uint32_t idx[MB_POOL_CHAIN], got;
  if (point != 30 || so_hits == 9) /* 9 thefts, as when the bound was 8 tries; 11 left */
    return;
  so_hits++;
  mb__pool_crash_hook = NULL;
  ASSERT_OK(mb__pool_take(sp_p, so_t7, MB_STAMP_IN_USE | 7u, 1, idx, &got));
  mb__pool_crash_hook = so_hook;
}
TEST(rvmag_own_magazine_efull_with_free_blocks) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t hog, hl[128], k, i = 0;
  int rc;
  pool_config(&cfg, "rvso", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  sp_p = &b.pools[0];
  sp_v = fake_record(sp_p, 5, 1);
  hog = fake_record(sp_p, 9, 1);
  so_t7 = fake_record(sp_p, 7, 1);
  take_all(sp_p, hog, 9u, hl);
  for (k = 0; k < 20; k++)
    ASSERT_OK(mb__pool_mag_give(sp_p, sp_v, 5, hl[k]));
  so_hits = 0;
  mb__pool_crash_hook = so_hook;
  rc = mb__pool_mag_take(sp_p, sp_v, MB_STAMP_IN_USE | 5u, &i);
  mb__pool_crash_hook = NULL;
  printf("# uncached alloc: %d after %u thefts; its own magazine holds %u\n", rc, (unsigned)so_hits,
         (unsigned)MB_POOL_WORD_LOW(mb_load64(&sp_p->mags[sp_v].word)));
  ASSERT_OK(rc);
  mb__broker_stop(&b);
}

/* ---- second review of the magazines (752e77e): the reap's skip list, attacked -----------------
 */

/*
 * A thief T (record t, client 11) steals block i from record d's magazine (client 7, 20 blocks
 * listed, the pool otherwise all held by client 9) and is paused at point 22 (landed, LANDED,
 * not stamped). While it is paused: a restart of client 7 reclaims and is killed at the hit-th
 * time its gives reach rpoint (10..18; its record stays held: dead too), optionally a second
 * restart reclaims whole, then the broker reaps client 7 (the whole reap run again). Then T
 * goes on (tdie 0: its take returns i) or is killed there (tdie 1) and client 11 is reaped.
 * Every block found once, the counts exact, nothing of client 7 (or of a dead 11) left.
 */
static jmp_buf r2_jb;
static mb_pool_map_t *r2_p;
static int r2_rpoint, r2_rhit, r2_second, r2_tdie, r2_fired, r2_rkilled;
static int r2_rhits;
static jmp_buf r2_rjb;
static void r2_reap_hook(int point) {
  if (point == r2_rpoint && ++r2_rhits == r2_rhit)
    longjmp(r2_rjb, 1);
}
static void r2_thief_hook(int point) {
  mb_pool_map_t again;
  if (point != 22 || r2_fired)
    return;
  r2_fired = 1;
  mb__pool_crash_hook = NULL;
  again = *r2_p;
  again.rec = fake_record(r2_p, 7, 2);
  r2_rhits = 0;
  mb__pool_crash_hook = r2_reap_hook;
  if (setjmp(r2_rjb) == 0)
    (void)mb__pool_release_owner(&again, 7, 1);
  else
    r2_rkilled = 1;
  mb__pool_crash_hook = NULL;
  if (r2_second) {
    restart_reclaim(r2_p, 7, 3);
  }
  mb__pool_release_owner(r2_p, 7, 0);
  if (r2_tdie)
    longjmp(r2_jb, 1);
}

static int r2_run(int rpoint, int rhit, int second, int tdie) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t d, hog, t, hl[128], idx[MB_POOL_CHAIN], got = 0, k, held;
  volatile int ok = 0;
  pool_config(&cfg, "r2k", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = r2_p = &b.pools[0];
  d = fake_record(p, 7, 1);
  hog = fake_record(p, 9, 1);
  t = fake_record(p, 11, 1);
  take_all(p, hog, 9u, hl);
  for (k = 0; k < 20; k++)
    ASSERT_OK(mb__pool_mag_give(p, d, 7, hl[108 + k]));
  r2_rpoint = rpoint;
  r2_rhit = rhit;
  r2_second = second;
  r2_tdie = tdie;
  r2_fired = r2_rkilled = 0;
  mb__pool_crash_hook = r2_thief_hook;
  if (setjmp(r2_jb) == 0)
    ok = mb__pool_take(p, t, MB_STAMP_IN_USE | 11u, 1, idx, &got) == 0;
  mb__pool_crash_hook = NULL;
  ASSERT(r2_fired);
  if (tdie)
    mb__pool_release_owner(p, 11, 0);
  else
    ASSERT(ok);
  check_whole(p, &held);
  ASSERT_EQ(held, 108 + (tdie ? 0u : 1u));
  for (k = 0; k < 128; k++) {
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 7);
    if (tdie)
      ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 11);
  }
  /* all go: the whole capacity again */
  mb__pool_release_owner(p, 9, 0);
  mb__pool_release_owner(p, 11, 0);
  check_whole(p, &held);
  ASSERT_EQ(held, 0);
  take_whole_again(p, 9);
  mb__broker_stop(&b);
  return r2_rkilled;
}

TEST(rv2_reap_killed_and_rerun_around_a_landed_thief) {
  int rpoint, rhit, second, tdie, killed = 0, runs = 0;
  for (rpoint = 10; rpoint <= 18; rpoint++)
    for (rhit = 1; rhit <= 3; rhit++)
      for (second = 0; second < 2; second++)
        for (tdie = 0; tdie < 2; tdie++) {
          killed += r2_run(rpoint, rhit, second, tdie);
          runs++;
        }
  printf("# %d runs, %d with the first reclaim killed in a give\n", runs, killed);
  ASSERT(killed > 0);
}

/*
 * A thief of the SAME dead client: records d and d2 of client 7; d's magazine holds 20 blocks,
 * the pool is otherwise all held by client 9. d2 takes (finds the stack and bump empty: steals
 * from d's magazine) and is killed at the hit-th time it reaches point (20..24); or instead d
 * itself is killed in an uncached alloc (30..34) while d2 is paused at 22 (landed on d). Then a
 * restart reclaims (every other run) and the broker reaps client 7. Every block found once.
 */
static uint32_t r2s_d;
static void r2s_hook(int point) {
  if (point == crash_at && ++crash_hits == crash_wanted)
    longjmp(crash_jb, 1);
}
static void r2s_run(int point, int hit, int restart) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t d, d2, hog, hl[128], idx[MB_POOL_CHAIN], got = 0, k;
  pool_config(&cfg, "r2s", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  d = r2s_d = fake_record(p, 7, 1);
  hog = fake_record(p, 9, 1);
  d2 = fake_record(p, 7, 1);
  take_all(p, hog, 9u, hl);
  for (k = 0; k < 20; k++)
    ASSERT_OK(mb__pool_mag_give(p, d, 7, hl[108 + k]));
  crash_at = point;
  crash_hits = 0;
  crash_wanted = hit;
  mb__pool_crash_hook = r2s_hook;
  if (setjmp(crash_jb) == 0)
    (void)mb__pool_take(p, d2, MB_STAMP_IN_USE | 7u, 1, idx, &got);
  mb__pool_crash_hook = NULL;
  if (restart) {
    restart_reclaim(p, 7, 2);
  }
  reap_whole(p, 7, 108);
  mb__broker_stop(&b);
}
TEST(rv2_thief_of_the_same_dead_client) {
  int point, hit, restart;
  for (point = 20; point <= 24; point++)
    for (hit = 1; hit <= 2; hit++)
      for (restart = 0; restart < 2; restart++)
        r2s_run(point, hit, restart);
}

/*
 * Two reapers at once, of two clients: thief T (record t, client 11) landed on record d's
 * magazine (client 7) and died at 22 (before its S3). Reaper A (of client 7 or of client 11,
 * the broker's reap or a restart's reclaim) is paused at the hit-th time its gives reach point
 * (10..18), and reaper B (of the other client) runs whole meanwhile; then A goes on. Every
 * block found once, nothing of either client left.
 */
static int r3_point, r3_hit, r3_hits, r3_fired, r3_first, r3_restart;
static void r3_reap(uint32_t owner, int restart) {
  if (restart) {
    restart_reclaim(r2_p, owner, 2);
  }
  mb__pool_release_owner(r2_p, owner, 0);
}
static void r3_hook(int point) {
  if (point != r3_point || ++r3_hits != r3_hit)
    return;
  mb__pool_crash_hook = NULL;
  r3_fired = 1;
  r3_reap(r3_first == 7 ? 11 : 7, r3_restart & 2);
}
static void r3_run(int point, int hit, int first, int restart) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t d, hog, t, hl[128], idx[MB_POOL_CHAIN], got = 0, k, held;
  pool_config(&cfg, "r3", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = r2_p = &b.pools[0];
  d = fake_record(p, 7, 1);
  hog = fake_record(p, 9, 1);
  t = fake_record(p, 11, 1);
  take_all(p, hog, 9u, hl);
  for (k = 0; k < 20; k++)
    ASSERT_OK(mb__pool_mag_give(p, d, 7, hl[108 + k]));
  /* a second record of 11 with a few blocks in its magazine, so 11's reap gives too */
  for (k = 0; k < 5; k++)
    ASSERT_OK(mb__pool_mag_give(p, t, 11, hl[100 + k]));
  {
    uint32_t t2 = fake_record(p, 11, 1);
    crash_at = 22;
    crash_hits = 0;
    crash_wanted = 1;
    mb__pool_crash_hook = crash_hook;
    if (setjmp(crash_jb) == 0)
      (void)mb__pool_take(p, t2, MB_STAMP_IN_USE | 11u, 1, idx, &got);
    mb__pool_crash_hook = NULL;
    ASSERT_EQ(crash_hits, 1);
  }
  r3_point = point;
  r3_hit = hit;
  r3_hits = 0;
  r3_fired = 0;
  r3_first = first;
  r3_restart = restart;
  mb__pool_crash_hook = r3_hook;
  r3_reap((uint32_t)first, restart & 1);
  mb__pool_crash_hook = NULL;
  if (!r3_fired)
    r3_reap(first == 7 ? 11 : 7, restart & 2);
  check_whole(p, &held);
  ASSERT_EQ(held, 103);
  for (k = 0; k < 128; k++) {
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 7);
    ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 11);
  }
  mb__broker_stop(&b);
}
TEST(rv2_two_reapers_at_once_around_a_dead_thief) {
  int point, hit, first, restart;
  for (point = 10; point <= 18; point++)
    for (hit = 1; hit <= 3; hit++)
      for (first = 7; first <= 11; first += 4)
        for (restart = 0; restart < 4; restart++)
          r3_run(point, hit, first, restart);
}

/*
 * Real threads, with the victim "killed" for real: thread V (record d, client 5) allocates and
 * frees uncached (its magazine fills and empties, chains go in and out) and dies (longjmp out of
 * its own op, in its own thread) at a random crash point; client 7 (uncached) and client 9 (plain
 * uncached takes, or a thread cache's CACHED chains every other 6 rounds; the dying thread rotates
 * among the three) keep allocating and freeing on a pool that is exhausted most of the
 * time, so they steal from V's magazine (and each other's) all along; every thread yields at
 * random crash points to open the windows. The broker reaps client 5 while the thieves run (a
 * restart's reclaim first, every other round). A block handed out twice is caught (a per-block
 * owner flag, CASed on every hand-out). At the end the thieves give all back and flush: every
 * block found once, nothing held.
 */
static mb_pool_map_t *st_p;
static uint32_t st_rec[3];
static const uint32_t st_owner[3] = {5, 7, 9};
static mb_au32 st_stop, st_dead, st_flag[128], st_dflag[128], st_bad;
static _Thread_local int st_who = -1;
static _Thread_local uint64_t st_rng;
static _Thread_local jmp_buf st_jb;
static int st_point, st_hit, st_dier, st_tc;
static uint32_t st_tci[MB_POOL_CHAIN * 2 + 1], st_tcn;
static _Thread_local int st_hits;
static uint32_t st_rand(void) {
  st_rng = st_rng * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(st_rng >> 33);
}
static void st_hook(int point) {
  if (st_who < 0)
    return;
  if (st_who == st_dier && point == st_point && ++st_hits == st_hit)
    longjmp(st_jb, 1);
  if (st_rand() % 4 == 0)
    mb_os_yield(); /* give the other threads the core: open the window */
}
/* me's block i handed out: no one else may hold it */
static void st_got(int me, uint32_t i) {
  uint32_t z = 0;
  if (i >= 128)
    mb_store32(&st_bad, 1000 + i);
  else if (me == st_dier ? mb_load32(&st_flag[i]) != 0 || !mb_cas32(&st_dflag[i], &z, 1)
                         : mb_load32(&st_dflag[i]) != 0 || !mb_cas32(&st_flag[i], &z, 1))
    mb_store32(&st_bad, 1000 + i);
}
static void st_put(int me, uint32_t i) {
  uint32_t rec = st_rec[me], owner = st_owner[me];
  mb_store32(me == st_dier ? &st_dflag[i] : &st_flag[i], 0);
  if (me == 2 && st_tc) {
    mb_store32(&st_p->stamps[i], MB_STAMP_CACHED | owner);
    if (st_tcn == MB_POOL_CHAIN * 2) {
      mb__pool_give(st_p, rec, st_tci, MB_POOL_CHAIN, MB_STAMP_CACHED | owner, NULL);
      memmove(st_tci, st_tci + MB_POOL_CHAIN, MB_POOL_CHAIN * sizeof st_tci[0]);
      st_tcn -= MB_POOL_CHAIN;
    }
    st_tci[st_tcn++] = i;
  } else if (me == 2)
    (void)mb__pool_give(st_p, rec, &i, 1, MB_STAMP_IN_USE, NULL);
  else
    (void)mb__pool_mag_give(st_p, rec, owner, i);
}
static void st_thread(void *arg) {
  int me = (int)(intptr_t)arg, n = 0, k;
  uint32_t rec = st_rec[me], owner = st_owner[me], held[64], idx[MB_POOL_CHAIN], got;
  volatile int iters = 0;
  st_who = me;
  st_rng = (uint64_t)me * 977 + 12345 + (uint64_t)st_point * 31 + (uint64_t)st_hit;
  st_hits = 0;
  if (me == st_dier && setjmp(st_jb) != 0) { /* killed inside an op: the thread is gone */
    mb_store32(&st_dead, 1);
    return;
  }
  while (!mb_load32(&st_stop)) {
    uint32_t want = 1 + st_rand() % 40;
    if (me == st_dier && ++iters > 400) { /* never reached its point: dies between calls */
      mb_store32(&st_dead, 1);
      return;
    }
    while ((uint32_t)n < want) {
      uint32_t i;
      int rc;
      if (me == 2 && st_tc) { /* a thread cache: refills of CACHED|o chains, plain stores */
        if (st_tcn == 0) {
          rc = mb__pool_take(st_p, rec, MB_STAMP_CACHED | owner, MB_POOL_CHAIN, st_tci, &got);
          if (rc == 0)
            st_tcn = got;
        } else {
          rc = 0;
        }
        if (rc == 0) {
          i = st_tci[--st_tcn];
          mb_store32(&st_p->stamps[i], MB_STAMP_IN_USE | owner);
        }
      } else if (me == 2) {
        rc = mb__pool_take(st_p, rec, MB_STAMP_IN_USE | owner, 1, idx, &got);
        i = idx[0];
      } else {
        rc = mb__pool_mag_take(st_p, rec, MB_STAMP_IN_USE | owner, &i);
      }
      if (rc != 0)
        break;
      if (mb_load32(&st_p->stamps[i]) != (MB_STAMP_IN_USE | owner))
        mb_store32(&st_bad, 2000 + i);
      st_got(me, i);
      held[n++] = i;
    }
    for (k = (int)(st_rand() % (uint32_t)(n + 1)); n > k;)
      st_put(me, held[--n]);
  }
  while (n > 0)
    st_put(me, held[--n]);
  if (me != 2)
    mb__pool_mag_flush(st_p, rec, owner);
  else if (st_tc)
    for (k = 0; k < (int)st_tcn; k += MB_POOL_CHAIN)
      mb__pool_give(st_p, rec, st_tci + k,
                    st_tcn - (uint32_t)k < MB_POOL_CHAIN ? st_tcn - (uint32_t)k : MB_POOL_CHAIN,
                    MB_STAMP_CACHED | owner, NULL);
}
TEST(rv2_threads_victim_killed_while_thieves_steal) {
  int round, rounds = getenv("ST_ROUNDS") ? atoi(getenv("ST_ROUNDS")) : 210;
  for (round = 0; round < rounds; round++) {
    mb_config_t cfg;
    mb_broker_t b;
    mb_os_thread_t th[3];
    uint32_t held, k, dead_owner;
    int j;
    pool_config(&cfg, "r2t", 128, 0);
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    st_p = &b.pools[0];
    for (j = 0; j < 3; j++)
      st_rec[j] = fake_record(st_p, st_owner[j], 1);
    st_point = mag_points[round % (int)(sizeof mag_points / sizeof mag_points[0])];
    st_hit = 1 + round / 35 * 7 + round % 5;
    st_dier = round % 3;
    st_tc = (round / 6) & 1;
    st_tcn = 0;
    dead_owner = st_owner[st_dier];
    mb_store32(&st_stop, 0);
    mb_store32(&st_dead, 0);
    mb_store32(&st_bad, 0);
    for (k = 0; k < 128; k++) {
      mb_store32(&st_flag[k], 0);
      mb_store32(&st_dflag[k], 0);
    }
    mb__pool_crash_hook = st_hook;
    for (j = 0; j < 3; j++)
      ASSERT_OK(mb_os_thread_start(&th[j], st_thread, (void *)(intptr_t)j));
    mb_os_thread_join(&th[st_dier]);
    ASSERT(mb_load32(&st_dead));
    if (mb_load32(&st_bad))
      FAIL("round %d (point %d hit %d dier %d): bad %u before the reap", round, st_point, st_hit,
           st_dier, (unsigned)mb_load32(&st_bad));
    for (k = 0; k < 128; k++) /* the dead thread's blocks are the reaper's now */
      mb_store32(&st_dflag[k], 0);
    if ((round / 3) & 1) {
      restart_reclaim(st_p, dead_owner, 2);
    }
    mb__pool_release_owner(st_p, dead_owner, 0); /* while the others run */
    mb_os_sleep_ms(2);
    mb_store32(&st_stop, 1);
    for (j = 0; j < 3; j++)
      if (j != st_dier)
        mb_os_thread_join(&th[j]);
    mb__pool_crash_hook = NULL;
    if (mb_load32(&st_bad))
      FAIL("round %d (point %d hit %d dier %d): bad %u", round, st_point, st_hit, st_dier,
           (unsigned)mb_load32(&st_bad));
    check_whole(st_p, &held);
    if (held != 0)
      FAIL("round %d (point %d hit %d dier %d): %u held after all gave back", round, st_point,
           st_hit, st_dier, (unsigned)held);
    for (k = 0; k < 128; k++)
      ASSERT_NE(MB_STAMP_OWNER(mb_load32(&st_p->stamps[k])), dead_owner);
    mb__broker_stop(&b);
  }
}

/*
 * A thief's record released and reclaimed: T (record t, client 11) is killed at 22, landed on
 * record d's magazine (client 7, alive); client 11 is reaped (its reap gives T's block back);
 * record t is claimed by client 13, whose take steals from d's magazine again and is paused at
 * 22 (or 21: landed, not yet LANDED); client 7 dies and is reaped meanwhile (a restart's reclaim
 * first, every other run); then 13's take goes on (kill 0) or 13 is killed there and reaped.
 */
static int r4_kill, r4_restart;
static void r4_hook(int point) {
  if (point != crash_at || ++crash_hits != crash_wanted)
    return;
  mb__pool_crash_hook = NULL;
  r3_reap(7, r4_restart);
  if (r4_kill)
    longjmp(crash_jb, 1);
}
TEST(rv2_thief_record_reaped_reclaimed_steals_again) {
  volatile int point, restart, kill;
  for (point = 20; point <= 24; point++)
    for (restart = 0; restart < 2; restart++)
      for (kill = 0; kill < 2; kill++) {
        mb_config_t cfg;
        mb_broker_t b;
        mb_pool_map_t *p;
        uint32_t d, hog, t, t13, hl[128], idx[MB_POOL_CHAIN], got = 0, k, held;
        volatile int ok = 0;
        pool_config(&cfg, "r4", 128, 0);
        ASSERT_OK(mb__broker_start(&b, &cfg, 0));
        p = r2_p = &b.pools[0];
        d = fake_record(p, 7, 1);
        hog = fake_record(p, 9, 1);
        t = fake_record(p, 11, 1);
        take_all(p, hog, 9u, hl);
        for (k = 0; k < 20; k++)
          ASSERT_OK(mb__pool_mag_give(p, d, 7, hl[108 + k]));
        crash_at = 22;
        crash_hits = 0;
        crash_wanted = 1;
        mb__pool_crash_hook = crash_hook;
        if (setjmp(crash_jb) == 0)
          (void)mb__pool_take(p, t, MB_STAMP_IN_USE | 11u, 1, idx, &got);
        mb__pool_crash_hook = NULL;
        mb__pool_release_owner(p, 11, 0); /* T's block back to the stack */
        /* 13 takes the stack's block first (so its next take steals from d) */
        t13 = fake_record(p, 13, 1);
        ASSERT_EQ(t13, t);
        ASSERT_OK(mb__pool_take(p, t13, MB_STAMP_IN_USE | 13u, 1, idx, &got));
        crash_at = point;
        crash_hits = 0;
        crash_wanted = 1;
        r4_kill = kill;
        r4_restart = restart;
        mb__pool_crash_hook = r4_hook;
        if (setjmp(crash_jb) == 0)
          ok = mb__pool_take(p, t13, MB_STAMP_IN_USE | 13u, 1, idx, &got) == 0;
        mb__pool_crash_hook = NULL;
        ASSERT_EQ(crash_hits, 1);
        if (kill) {
          mb__pool_release_owner(p, 13, 0);
          check_whole(p, &held);
          ASSERT_EQ(held, 108);
        } else {
          check_whole(p, &held);
          ASSERT_EQ(held, 109 + (ok ? 1u : 0u));
        }
        for (k = 0; k < 128; k++)
          ASSERT_NE(MB_STAMP_OWNER(mb_load32(&p->stamps[k])), 7);
        mb__broker_stop(&b);
      }
}

/*
 * A record forged to read {LANDED, STEAL}, count d, first i, where i is still listed in d's
 * magazine: the reap of client 7 gives i back all the same (the review of 752e77e found it
 * left: lost until a later reap of the same client index). The reap believes a landed steal
 * only for a block its victim no longer listed, and reads the op twice around first and count.
 */
TEST(rv2_forged_landed_steal_makes_the_reap_leave_a_block) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  uint32_t d, hog, f, hl[128], k, held, i;
  pool_config(&cfg, "r5", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  d = fake_record(p, 7, 1);
  hog = fake_record(p, 9, 1);
  f = fake_record(p, 11, 1);
  take_all(p, hog, 9u, hl);
  for (k = 0; k < 20; k++)
    ASSERT_OK(mb__pool_mag_give(p, d, 7, hl[108 + k]));
  i = mb_load32(&p->mags[d].slot[5]); /* a block still listed in d's magazine, no one's steal */
  mb_store64(&p->intents[f].count, d);
  mb_store64(&p->intents[f].first, i);
  mb_store64(&p->intents[f].op, ((uint64_t)77 << 32) | (2u << 8) | 4u); /* {77, LANDED, STEAL} */
  mb__pool_release_owner(p, 7, 0);
  check_whole(p, &held); /* block i: stamped MAG(d, 7), in no magazine */
  ASSERT_EQ(held, 108);
  mb__broker_stop(&b);
}

/*
 * The steal's bound, measured: 100 records (clients 23..122) each hold one object and have one
 * free block in their magazines; the pool is otherwise all held. A take by client 5 steals;
 * each time between its S0 and its CAS (point 20) the owner of the magazine it is trying (its
 * record's count) frees and allocates its object once - every failed CAS is that owner's
 * progress. No bounded take can win against owners that win every race: it makes
 * MB__STEAL_TRIES (256) tries per magazine, then fails MB_EFULL with a message that says so
 * (the review found 4096 tries each, 409,600 in all, and "all 128 objects are in use").
 */
static mb_pool_map_t *bz_p;
static uint32_t bz_t, bz_x[MB_POOL_INTENTS], bz_hits;
static void bz_hook(int point) {
  uint32_t v;
  if (point != 20)
    return;
  v = (uint32_t)mb_load64(&bz_p->intents[bz_t].count);
  if (v >= MB_POOL_INTENTS || bz_x[v] == UINT32_MAX)
    return;
  bz_hits++;
  mb__pool_crash_hook = NULL;
  ASSERT_OK(mb__pool_mag_give(bz_p, v, 20 + v, bz_x[v]));
  ASSERT_OK(mb__pool_mag_take(bz_p, v, MB_STAMP_IN_USE | (20u + v), &bz_x[v]));
  mb__pool_crash_hook = bz_hook;
}
TEST(rv2_steal_efull_with_free_blocks_under_busy_owners) {
  mb_config_t cfg;
  mb_broker_t b;
  uint32_t hog, hl[128], got = 0, k, idx[MB_POOL_CHAIN], recs[100], free_in_mags = 0;
  uint64_t t0;
  int rc;
  pool_config(&cfg, "rvbz", 128, 0);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  bz_p = &b.pools[0];
  for (k = 0; k < MB_POOL_INTENTS; k++)
    bz_x[k] = UINT32_MAX;
  hog = fake_record(bz_p, 9, 1);
  bz_t = fake_record(bz_p, 5, 1);
  take_all(bz_p, hog, 9u, hl);
  for (k = 0; k < 100; k++) {
    recs[k] = fake_record(bz_p, 20 + 3 + k, 1); /* record 3 + k, client 23 + k */
    ASSERT_EQ(recs[k], 3 + k);
    ASSERT_OK(mb__pool_mag_give(bz_p, recs[k], 23 + k, hl[k])); /* one free in its magazine */
    bz_x[recs[k]] = hl[100 + (k % 28)];                         /* its object */
  }
  /* each record's object: its own (the hog lets go of 28 shared ones; the hook cycles them) */
  for (k = 0; k < 28; k++)
    mb_store32(&bz_p->stamps[hl[100 + k]], MB_STAMP_IN_USE | 9u);
  for (k = 0; k < MB_POOL_INTENTS; k++)
    free_in_mags += MB_POOL_WORD_LOW(mb_load64(&bz_p->mags[k].word));
  ASSERT_EQ(free_in_mags, 100);
  bz_hits = 0;
  t0 = mb_os_mono_ns();
  mb__pool_crash_hook = bz_hook;
  rc = mb__pool_take(bz_p, bz_t, MB_STAMP_IN_USE | 5u, 1, idx, &got);
  mb__pool_crash_hook = NULL;
  printf("# take: %d after %u failed CASes (each an owner's progress), %.1f ms: %s\n", rc,
         (unsigned)bz_hits, (double)(mb_os_mono_ns() - t0) / 1e6, mb_last_error());
  ASSERT_EQ(rc, MB_EFULL);
  ASSERT_EQ(bz_hits, 100 * 256);
  ASSERT(strstr(mb_last_error(), "in 100 magazines whose threads won 256 races") != NULL);
  mb__broker_stop(&b);
}
