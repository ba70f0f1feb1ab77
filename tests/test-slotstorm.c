/*
 * test-slotstorm.c - player slots and pages under kills at random instants: game servers (child
 * processes, two clients on two threads each) connect and disconnect players and write their
 * slots while the broker (in this process) sweeps, reaps and compacts, and the test SIGKILLs
 * (TerminateProcess on Windows) a child at a random instant, hundreds of times. Afterwards:
 * every slot is free, slots_used and every page's user count equal the owners counted from the
 * slot table, no page is left locked, every page compacts, and the full capacity can be
 * connected again.
 */
#include "task.h"

#include <stdlib.h>

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "storm.h"

/* Kills per run: fewer where a process start is slow (Wine) or everything is (sanitizers). */
#if MB_OS_WIN
#define STORM_KILLS 150
#elif defined(__SANITIZE_ADDRESS__)
#define STORM_KILLS 300
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STORM_KILLS 300
#endif
#endif
#ifndef STORM_KILLS
#define STORM_KILLS 600
#endif
#define STORM_LIVE 3              /* children running at once */
#define STORM_HELD 6              /* players a thread holds at most */
#define STORM_REGION (256 * 1024) /* 64 pages of 4 KiB */

/* The test config (fixture.h) for instance "ss<pid><tag>" with one region, players 256 KiB
 * lazy with slots of slot_size bytes; dead clients reaped fast. */
static void storm_config(mb_config_t *cfg, const char *tag, uint32_t slot_size) {
  fx_config_pid(cfg, "ss", tag);
  fx_region_drop(cfg, "world");
  fx_region(cfg, "players", STORM_REGION, 1, slot_size);
  cfg->heartbeat_timeout_ms = 0;
  cfg->grace_period_ms = 30; /* a restart under the same name sometimes beats the reap */
  mb__log_open(MB_LOG_ERROR, "");
}

/* ---- the child: a game server with two clients on two threads ------------------------------ */

typedef struct churn_s {
  mb_client_t *c;
  uint64_t next_id;
  uint32_t seed;
} churn_t;

/* Connect and disconnect players and write their slots, forever (until killed). */
static void churn(void *arg) {
  churn_t *t = arg;
  uint64_t held[STORM_HELD];
  int n = 0;
  for (;;) {
    uint32_t r = mb_storm_rnd(&t->seed);
    if (n < STORM_HELD && (n == 0 || (r & 3) != 0)) {
      void *slot;
      uint64_t id = t->next_id++;
      if (mb_player_connect(t->c, id, &slot) == 0) {
        memset(slot, (int)(id & 0xFF), 1024);
        held[n++] = id;
      }
    } else if (n > 0) {
      int k = (int)((r >> 4) % (uint32_t)n);
      void *slot;
      if (mb_player_find(t->c, held[k], &slot) == 0)
        memset(slot, 0x5A, 512);
      mb_player_disconnect(t->c, held[k]);
      held[k] = held[--n];
    }
  }
}

/* argv: instance name seed - attach as name.a and name.b, churn on two threads until killed. */
CHILD(churn) {
  static churn_t t[2];
  mb_os_thread_t th[2];
  char name[64];
  int i;
  if (argc != 3)
    return 100;
  for (i = 0; i < 2; i++) {
    snprintf(name, sizeof name, "%s.%c", argv[1], 'a' + i);
    if (mb_attach(argv[0], name, NULL, &t[i].c) != 0) {
      fprintf(stderr, "# churn %s: attach: %s\n", name, mb_last_error());
      return 101;
    }
    t[i].next_id = (uint64_t)(i + 1) << 40;
    t[i].seed = (uint32_t)strtoul(argv[2], NULL, 10) * 2654435761u + (uint32_t)i + 1;
  }
  for (i = 0; i < 2; i++)
    if (mb_os_thread_start(&th[i], churn, &t[i]) != 0)
      return 102;
  for (;;)
    mb_os_sleep_ms(1000);
}

/* ---- the parent ------------------------------------------------------------------------------ */

/* Client `name` is attached by process pid (not by the one killed before under that name). */
static int attached(mb_broker_t *b, const char *name, uint32_t pid) {
  mb_client_entry_t *e = mb_test_entry_named(b->state, name);
  uint64_t w = e != NULL ? mb_load64(&e->word) : 0;
  return MB_CLIENT_WORD_STATE(w) == MB_CLIENT_ATTACHED && MB_CLIENT_WORD_PID(w) == pid;
}

static uint32_t entries_in_use(mb_broker_t *b) {
  uint32_t i, n = 0;
  for (i = 0; i < MB_CLIENTS_MAX; i++)
    n += MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word)) != MB_CLIENT_FREE;
  return n;
}

/* The children, stopped at exit if a failed assertion ends the test early. */
static mb_os_child_t g_kids[STORM_LIVE];
static int g_kid_live[STORM_LIVE];

static void kill_kids(void) {
  int k, x;
  for (k = 0; k < STORM_LIVE; k++)
    if (g_kid_live[k]) {
      mb_os_child_kill(&g_kids[k]);
      mb_os_child_wait(&g_kids[k], 20000, &x);
      g_kid_live[k] = 0;
    }
}

/* Child k churns: both its clients attached. Fails if it exited instead. */
static void wait_churning(mb_broker_t *b, int k, const char *probe) {
  uint64_t deadline = mb_os_mono_ns() + 20000ull * 1000000u;
  int x = -1;
  for (;;) {
    mb__broker_tick(b);
    if (attached(b, probe, g_kids[k].pid))
      return;
    if (mb_os_child_wait(&g_kids[k], 0, &x) == 0) {
      g_kid_live[k] = 0;
      FAIL("game server '%s' exited with %d before it attached", probe, x);
    }
    if (mb_os_mono_ns() > deadline)
      FAIL("game server '%s' did not attach within 20 s", probe);
    mb_os_sleep_ms(1);
  }
}

static void spawn(mb_os_child_t *k, const char *instance, const char *name, unsigned seed) {
  char s[16];
  snprintf(s, sizeof s, "%u", seed);
  mb_storm_spawn(k, "churn", instance, name, s);
}

/*
 * The storm with slots of slot_size bytes (1 KiB: four to a page; 8 KiB: each on two pages,
 * claimed with both locked).
 */
static void storm(const char *tag, uint32_t slot_size) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_os_child_t *kids = g_kids;
  char names[STORM_LIVE][32], probe[40];
  uint32_t seed = (uint32_t)mb_os_mono_ns() | 1;
  uint64_t freed = 0, start_ns = mb_os_mono_ns(), i, used;
  int kills = 0, x, k, restarts = 0;
  mb_storm_slots_t t;
  mb_client_t *c;

  storm_config(&cfg, tag, slot_size);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  ASSERT(r != NULL);
  printf("# seed %u, %d kills\n", (unsigned)seed, STORM_KILLS);
  atexit(kill_kids);
  for (k = 0; k < STORM_LIVE; k++) {
    snprintf(names[k], sizeof names[k], "gs%d", k);
    spawn(&kids[k], cfg.instance, names[k], mb_storm_rnd(&seed));
    g_kid_live[k] = 1;
  }
  while (kills < STORM_KILLS) {
    k = kills % STORM_LIVE;
    /* Once it churns (both clients attached), kill it at a random instant. */
    snprintf(probe, sizeof probe, "%s.b", names[k]);
    wait_churning(&b, k, probe);
    mb_os_sleep_ms(mb_storm_rnd(&seed) % 8);
    ASSERT_OK(mb_os_child_kill(&kids[k]));
    ASSERT_OK(mb_os_child_wait(&kids[k], 20000, &x));
    g_kid_live[k] = 0;
    kills++;
    mb__broker_tick(&b);
    if (mb_storm_rnd(&seed) % 3 == 0)
      (void)mb__broker_compact(&b, &freed);
    /* Half the time the same game server comes back at once (a takeover of its entry, if it
     * is quicker than the reap), else a new one. */
    if (mb_storm_rnd(&seed) % 2 == 0)
      restarts++;
    else
      snprintf(names[k], sizeof names[k], "gs%d", STORM_LIVE + kills);
    spawn(&kids[k], cfg.instance, names[k], mb_storm_rnd(&seed));
    g_kid_live[k] = 1;
  }
  for (k = 0; k < STORM_LIVE; k++) {
    ASSERT_OK(mb_os_child_kill(&kids[k]));
    ASSERT_OK(mb_os_child_wait(&kids[k], 20000, &x));
    g_kid_live[k] = 0;
  }
  printf("# %d kills (%d restarts under the same name) in %.1f s\n", kills, restarts,
         (double)(mb_os_mono_ns() - start_ns) / 1e9);
  /* Every game server is gone: the broker reaps them all. */
  WAIT_FOR((mb__broker_tick(&b), entries_in_use(&b) == 0), 20000);
  (void)mb__broker_compact(&b, &freed);

  mb_storm_look(r, &t);
  used = mb_load64(&r->desc->slots_used);
  printf("# after: %llu slots owned, slots_used %llu, %llu pages locked, %llu page words wrong "
         "(%llu users too many), %llu pages committed, region committed %llu bytes\n",
         (unsigned long long)t.owned, (unsigned long long)used, (unsigned long long)t.busy,
         (unsigned long long)t.users_wrong, (unsigned long long)t.users_extra,
         (unsigned long long)t.committed, (unsigned long long)mb_load64(&r->desc->committed));
  ASSERT_EQ_U64(t.owned, 0);
  ASSERT_EQ_U64(used, t.owned);
  ASSERT_EQ_U64(t.busy, 0);
  ASSERT_EQ_U64(t.users_wrong, 0);
  if (mb_os_mem_config()->shared_decommit) /* every page compacts */
    ASSERT_EQ_U64(t.committed, 0);

  /* The full capacity can be had again, by one client, without a page in the way. */
  ASSERT_OK(mb_attach(cfg.instance, "filler", NULL, &c));
  for (i = 0; i < STORM_REGION / slot_size; i++) {
    void *slot;
    ASSERT_OK(mb_player_connect(c, 1000 + i, &slot));
    memset(slot, 0x11, slot_size);
  }
  mb_storm_look(r, &t);
  ASSERT_EQ_U64(t.owned, STORM_REGION / slot_size);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), STORM_REGION / slot_size);
  ASSERT_EQ_U64(t.users_wrong, 0);
  ASSERT_OK(mb_detach(c));
  mb_storm_look(r, &t);
  ASSERT_EQ_U64(t.owned, 0);
  ASSERT_EQ_U64(t.users_wrong, 0);
  mb__broker_stop(&b);
}

TEST(kills_leave_slots_and_pages_true) {
  storm("k", 1024);
}

/* Slots of two pages: a claim holds both page locks; a kill may land between them. */
TEST(kills_with_slots_over_two_pages) {
  storm("w", 8192);
}

/* ---- the client-table protocol: attach / detach / close / reattach killed at random ------- */
/* Children attach under a few shared names (so takeovers and name clashes happen), hold slots
 * and pool blocks, and leave by detach, close or reattach-then-detach; a kill can land inside
 * any of them (common/clients.h: crash points 1-6). Afterwards nothing is owned, locked or
 * counted out. Kills: MB_LIFECYCLE_KILLS, else half of STORM_KILLS. */

#define LC_NAMES 4

/* argv: instance seed - forever: attach under one of LC_NAMES shared names, connect players,
 * take pool blocks, then detach, close, or reattach-then-detach. */
CHILD(lifecycle) {
  uint32_t seed;
  uint64_t next = 1;
  if (argc != 2)
    return 100;
  seed = (uint32_t)strtoul(argv[1], NULL, 10) | 1;
  for (;;) {
    mb_client_t *c;
    mb_pool_t *pool;
    void *o[8], *slot;
    char name[16];
    uint32_t r = mb_storm_rnd(&seed);
    int i, n, no = 0;
    snprintf(name, sizeof name, "lc%u", (unsigned)(r % LC_NAMES));
    if (mb_attach(argv[0], name, NULL, &c) != 0)
      continue;
    n = 1 + (int)((r >> 8) % 5);
    for (i = 0; i < n; i++)
      if (mb_player_connect(c, (next++) | ((uint64_t)mb_os_mono_ns() << 20), &slot) == 0)
        memset(slot, 0x33, 256);
    if (mb_pool_open(c, "obj", (r >> 12) & 1 ? MB_POOL_NO_CACHE : 0, &pool) == 0)
      for (no = 0; no < 8 && mb_pool_alloc(pool, &o[no]) == 0; no++)
        ;
    if (no > 0 && ((r >> 13) & 1))
      mb_pool_free(pool, o[--no]);
    switch ((r >> 16) % 3) {
    case 0:
      mb_detach(c);
      break;
    case 1:
      mb_close(c);
      break;
    default:
      if (mb_reattach(c, NULL) == 0)
        mb_detach(c);
      else
        mb_close(c);
      break;
    }
  }
}

TEST(lifecycle_kills) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_pool_map_t *p;
  mb_os_child_t *kids = g_kids;
  uint32_t seed = (uint32_t)mb_os_mono_ns() | 1;
  uint64_t freed = 0;
  int kills = 0, x, k, total = STORM_KILLS / 2;
  const char *env = getenv("MB_LIFECYCLE_KILLS");
  mb_storm_slots_t t;
  char s[16];

  if (env != NULL && atoi(env) > 0)
    total = atoi(env);
  storm_config(&cfg, "lc", 1024);
  fx_pool(&cfg, "obj", 64, 64, 1024);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  p = &b.pools[0];
  printf("# seed %u, %d kills\n", (unsigned)seed, total);
  atexit(kill_kids);
  for (k = 0; k < STORM_LIVE; k++) {
    snprintf(s, sizeof s, "%u", mb_storm_rnd(&seed));
    mb_storm_spawn(&kids[k], "lifecycle", cfg.instance, s, NULL);
    g_kid_live[k] = 1;
  }
  while (kills < total) {
    uint64_t until = mb_os_mono_ns() + (uint64_t)(mb_storm_rnd(&seed) % 20) * 1000000u;
    k = kills % STORM_LIVE;
    while (mb_os_mono_ns() < until) {
      mb__broker_tick(&b);
      mb_storm_spin_us(mb_storm_rnd(&seed) % 500);
    }
    ASSERT_OK(mb_os_child_kill(&kids[k]));
    ASSERT_OK(mb_os_child_wait(&kids[k], 20000, &x));
    kills++;
    if (mb_storm_rnd(&seed) % 3 == 0)
      (void)mb__broker_compact(&b, &freed);
    snprintf(s, sizeof s, "%u", mb_storm_rnd(&seed));
    mb_storm_spawn(&kids[k], "lifecycle", cfg.instance, s, NULL);
  }
  kill_kids();
  WAIT_FOR((mb__broker_tick(&b), entries_in_use(&b) == 0), 20000);
  (void)mb__broker_compact(&b, &freed);
  mb_storm_look(r, &t);
  printf("# after: %llu slots owned, slots_used %llu, %llu pages locked, %llu words wrong; "
         "pool: held %llu, counted out %lld, free stack %llu + never used %llu\n",
         (unsigned long long)t.owned, (unsigned long long)mb_load64(&r->desc->slots_used),
         (unsigned long long)t.busy, (unsigned long long)t.users_wrong,
         (unsigned long long)mb_storm_held_blocks(p), (long long)mb_storm_counted_out(p),
         (unsigned long long)mb_storm_free_stack_blocks(p),
         (unsigned long long)mb_storm_never_used(p));
  ASSERT_EQ_U64(t.owned, 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 0);
  ASSERT_EQ_U64(t.busy, 0);
  ASSERT_EQ_U64(t.users_wrong, 0);
  ASSERT_EQ_U64(mb_storm_held_blocks(p), 0);
  ASSERT_EQ(mb_storm_counted_out(p), 0);
  ASSERT_EQ_U64(mb_storm_free_stack_blocks(p) + mb_storm_never_used(p), 1024);
  mb__broker_stop(&b);
}
