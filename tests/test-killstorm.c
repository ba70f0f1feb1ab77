/*
 * test-killstorm.c - game servers killed at random instants, any instruction: nothing lost.
 *
 * A broker runs in this process. Each round spawns a child (this binary, CHILD storm) that
 * attaches and runs two threads allocating and freeing random batches from a shared pool
 * (thread caches on, flushes now and then, no yields); after a random delay of microseconds
 * to milliseconds the child is killed (SIGKILL / TerminateProcess). Then either the broker
 * reaps it, or the next child attaches under the same name and takes its entry over.
 * Afterwards every block must be free or held by a live client, the whole capacity must be
 * had again, and the counters must match the truth.
 *
 * The number of kills: MB_KILLSTORM_KILLS, else 300 (60 under Wine, where a process start
 * costs ~50 ms). scripts/soak.sh runs the same storm with 10,000 and prints the figures.
 */
#include "task.h"

#include <stdlib.h>

#include "broker.h"
#include "log.h"
#include "membroker.h"
#include "pool.h"

#define STORM_CAPACITY 4096

static void storm_config(mb_config_t *cfg, const char *tag) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  mb__config_defaults(cfg);
  snprintf(cfg->instance, sizeof cfg->instance, "k%u%s", (unsigned)self.pid, tag);
  cfg->nregions = 1;
  memset(cfg->regions, 0, sizeof cfg->regions);
  snprintf(cfg->regions[0].name, sizeof cfg->regions[0].name, "world");
  cfg->regions[0].size = 64 * 1024;
  cfg->npools = 1;
  memset(cfg->pools, 0, sizeof cfg->pools);
  snprintf(cfg->pools[0].name, sizeof cfg->pools[0].name, "obj");
  cfg->pools[0].object_size = 64;
  cfg->pools[0].align = 64;
  cfg->pools[0].capacity = STORM_CAPACITY;
  cfg->heartbeat_timeout_ms = 0;
  cfg->grace_period_ms = 0; /* a dead client is reaped at the first sweep that sees it */
  mb__log_open(MB_LOG_ERROR, "");
}

/* ---- the child: two busy threads ------------------------------------------------------------ */

typedef struct storm_worker_s {
  mb_pool_t *pool;
  uint64_t rng;
} storm_worker_t;

static void storm_main(void *arg) {
  storm_worker_t *w = arg;
  void *held[64];
  for (;;) {
    int n = 0, i, batch;
    w->rng = w->rng * 6364136223846793005u + 1442695040888963407u;
    batch = 1 + (int)((w->rng >> 33) % 64);
    for (i = 0; i < batch; i++) {
      if (mb_pool_alloc(w->pool, &held[n]) != 0)
        break;
      ((volatile uint32_t *)held[n])[0] = (uint32_t)i;
      n++;
    }
    while (n > 0)
      mb_pool_free(w->pool, held[--n]);
    if (((w->rng >> 20) & 7) == 0)
      mb_pool_flush(w->pool);
  }
}

/* argv: instance name seed - attach and run two threads until killed. */
CHILD(storm) {
  mb_client_t *c;
  storm_worker_t w[2];
  mb_os_thread_t t[2];
  int k;
  if (argc != 3 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  for (k = 0; k < 2; k++) {
    if (mb_pool_open(c, "obj", 0, &w[k].pool) != 0)
      return 101;
    w[k].rng = (uint64_t)atol(argv[2]) * 2 + (uint64_t)k + 1;
    if (mb_os_thread_start(&t[k], storm_main, &w[k]) != 0)
      return 102;
  }
  for (;;) /* the threads never end: this process is killed */
    mb_os_sleep_ms(1000);
}

/* ---- the parent ---------------------------------------------------------------------------- */

static uint32_t state_of(mb_broker_t *b, uint32_t i) {
  return MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word));
}

/* Blocks in the free stack (walked; nobody else may use the pool meanwhile), bounded. */
static uint64_t free_stack_blocks(mb_pool_map_t *p) {
  uint64_t n = 0, h = mb_load64(&p->desc->head);
  uint32_t cap = p->desc->capacity, first = MB_POOL_WORD_LOW(h);
  while (first != 0 && first <= cap && n <= cap) {
    uint32_t i = first - 1, k = 0;
    uint64_t l0 = mb_load64(&p->links[i]);
    for (;;) {
      uint32_t low = (uint32_t)(mb_load64(&p->links[i]) & 0xFFFFFFFFu);
      n++;
      if (low == 0 || low > cap || ++k == MB_POOL_CHAIN || n > cap)
        break;
      i = low - 1;
    }
    first = (uint32_t)(l0 >> 32);
  }
  return n;
}

/* Blocks never handed out (above the bump index). */
static uint64_t never_used(mb_pool_map_t *p) {
  uint64_t b = MB_POOL_WORD_LOW(mb_load64(&p->desc->bump));
  return b < p->desc->capacity ? p->desc->capacity - b : 0;
}

static uint64_t held_blocks(mb_pool_map_t *p) {
  uint64_t n = 0;
  uint32_t i;
  for (i = 0; i < p->desc->capacity; i++)
    n += mb_load32(&p->stamps[i]) != MB_STAMP_FREE;
  return n;
}

static int64_t counted_out(mb_pool_map_t *p) {
  uint64_t a, f;
  mb__pool_totals(p, &a, &f);
  return (int64_t)(a - f);
}

/* Spin for `us` microseconds (a random instant, not a wait for a condition). */
static void spin_us(uint64_t us) {
  uint64_t end = mb_os_mono_ns() + us * 1000u;
  while (mb_os_mono_ns() < end) {
  }
}

TEST(kill_storm_pool) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  mb_os_child_t k;
  const char *env = getenv("MB_KILLSTORM_KILLS");
  long kills = env != NULL ? atol(env) : (MB_OS_WIN ? 60 : 300);
  long n, lossy = 0, takeovers = 0, reaps = 0;
  uint64_t lost = 0, lost_max = 0, rng = 0x9E3779B97F4A7C15u ^ (uint64_t)mb_os_mono_ns();
  int64_t drift = 0;
  uint64_t t0 = mb_os_mono_ns();
  char name[32];
  int code, have = 0;
  storm_config(&cfg, "st");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  snprintf(name, sizeof name, "zone");
  for (n = 0; n < kills; n++) {
    uint64_t delay;
    int takeover;
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    delay = (rng >> 33) % 3000; /* 0 .. 3 ms after the child is attached */
    takeover = ((rng >> 20) & 3) == 0 && have;
    if (!takeover) { /* reap the previous one first, if any: the broker's path */
      snprintf(name, sizeof name, "zone%ld", n);
    }
    {
      char seed[24];
      snprintf(seed, sizeof seed, "%llu", (unsigned long long)(rng >> 8));
      ASSERT_OK(mb_test_spawn(&k, "storm", cfg.instance, name, seed, (char *)NULL));
    }
    WAIT_FOR(mb_test_entry_named(b.state, name) != NULL &&
                 MB_CLIENT_WORD_PID(mb_load64(&mb_test_entry_named(b.state, name)->word)) ==
                     (uint32_t)k.pid &&
                 MB_CLIENT_WORD_STATE(mb_load64(&mb_test_entry_named(b.state, name)->word)) ==
                     MB_CLIENT_ATTACHED,
             30000);
    takeovers += takeover;
    spin_us(delay);
    ASSERT_OK(mb_os_child_kill(&k));
    ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
    have = 1;
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    if (((rng >> 20) & 3) != 0 || n == kills - 1) {
      /* The broker reaps it: every entry FREE again. */
      uint32_t i;
      WAIT_FOR((mb__broker_sweep(&b), mb_test_entry_named(b.state, name) == NULL), 10000);
      for (i = 0; i < b.state->max_clients; i++)
        ASSERT_EQ(state_of(&b, i), MB_CLIENT_FREE);
      reaps++;
      have = 0;
      /* Nobody attached: what is not in the free stack, above bump or stamped is lost. */
      {
        uint64_t found = free_stack_blocks(p) + never_used(p) + held_blocks(p);
        uint64_t now_lost = found < STORM_CAPACITY ? STORM_CAPACITY - found : 0;
        uint64_t l = now_lost > lost ? now_lost - lost : 0; /* lost at this kill */
        lost = now_lost;
        lossy += l > 0;
        if (l > lost_max)
          lost_max = l;
      }
      drift = counted_out(p) - (int64_t)held_blocks(p);
    }
  }
  printf("# %ld kills in %.1f s (%ld reaped by the broker, %ld taken over by a restart): "
         "%ld reaps found blocks lost (%llu in all, %llu at most at one); allocated - freed - held "
         "= %lld\n",
         kills, (double)(mb_os_mono_ns() - t0) / 1e9, reaps, takeovers, lossy,
         (unsigned long long)lost, (unsigned long long)lost_max, (long long)drift);
  {
    uint64_t a, f;
    mb__pool_totals(p, &a, &f);
    printf("# allocated %llu, freed %llu, peak %llu, reclaimed %llu\n", (unsigned long long)a,
           (unsigned long long)f, (unsigned long long)mb_load64(&p->desc->peak),
           (unsigned long long)mb_load64(&p->desc->reclaimed));
  }
  ASSERT_EQ_U64(lost, 0);
  ASSERT_EQ(drift, 0);
  ASSERT_EQ_U64(held_blocks(p), 0);
  ASSERT_LE(mb_load64(&p->desc->peak), STORM_CAPACITY);
  {
    /* The whole capacity can be had again, each block once, and the counters agree. */
    mb_client_t *c;
    mb_pool_t *pool;
    static void *o[STORM_CAPACITY + 1];
    int got = 0;
    uint32_t i;
    ASSERT_OK(mb_attach(cfg.instance, "check", NULL, &c));
    ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &pool));
    while (got < STORM_CAPACITY + 1 && mb_pool_alloc(pool, &o[got]) == 0)
      got++;
    ASSERT_EQ(got, STORM_CAPACITY);
    ASSERT_EQ_U64(held_blocks(p), STORM_CAPACITY);
    ASSERT_EQ(counted_out(p), STORM_CAPACITY);
    for (i = 0; i < STORM_CAPACITY; i++)
      ASSERT_OK(mb_pool_free(pool, o[i]));
    ASSERT_EQ(counted_out(p), 0);
    ASSERT_OK(mb_detach(c));
  }
  ASSERT_LE(mb_load64(&p->desc->peak), STORM_CAPACITY);
  mb__broker_stop(&b);
}
