/*
 * test-killstorm.c - game servers killed at random instants, any instruction: nothing lost.
 *
 * A broker runs in this process. Each round spawns a child (this binary, CHILD storm) that
 * attaches and runs two threads allocating and freeing random batches from a shared pool
 * (thread caches on, or in every other child MB_POOL_NO_CACHE: the threads' magazines in
 * shared memory; flushes now and then, no yields); after a random delay of microseconds
 * to milliseconds the child is killed (SIGKILL / TerminateProcess). Then either the broker
 * reaps it, or the next child attaches under the same name and takes its entry over.
 * Afterwards every block must be free or held by a live client, the whole capacity must be
 * had again, and the counters must match the truth.
 *
 * kill_storm_pool is that storm for pools alone, one game server at a time, checked after each
 * reap; kill_storm_everything (issue 11's test) runs three game servers at once doing pools,
 * thread caches, player slots and counters on two threads each while the broker sweeps and
 * compacts, and checks everything at the end (slots the way test-slotstorm.c does, with the
 * helpers of storm.c).
 *
 * The number of kills: MB_KILLSTORM_KILLS, else 300 for the pool storm (60 under Wine, where a
 * process start costs ~50 ms) and 400 for everything (100 under Wine). scripts/soak.sh runs
 * both with 10,000 and prints the figures.
 */
#include "task.h"

#include <stdlib.h>

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "pool.h"
#include "storm.h"

#define STORM_CAPACITY 4096

/* The test config (fixture.h) for instance "k<pid><tag>" with one region, world 64 KiB, and
 * the pool "obj"; no heartbeat timeout, no grace period. */
static void storm_config(mb_config_t *cfg, const char *tag) {
  fx_config_pid(cfg, "k", tag);
  fx_no_regions(cfg);
  fx_region(cfg, "world", 64 * 1024, 0, 0);
  fx_pool(cfg, "obj", 64, 64, STORM_CAPACITY);
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
    /* every other child uncached: its threads' magazines in the pool's shared memory */
    if (mb_pool_open(c, "obj", atol(argv[2]) % 2 ? MB_POOL_NO_CACHE : 0, &w[k].pool) != 0)
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
      mb_storm_spawn(&k, "storm", cfg.instance, name, seed);
    }
    WAIT_FOR(mb_test_entry_named(b.state, name) != NULL &&
                 MB_CLIENT_WORD_PID(mb_load64(&mb_test_entry_named(b.state, name)->word)) ==
                     (uint32_t)k.pid &&
                 MB_CLIENT_WORD_STATE(mb_load64(&mb_test_entry_named(b.state, name)->word)) ==
                     MB_CLIENT_ATTACHED,
             30000);
    takeovers += takeover;
    mb_storm_spin_us(delay);
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
        uint64_t found =
            mb_storm_free_stack_blocks(p) + mb_storm_never_used(p) + mb_storm_held_blocks(p);
        uint64_t now_lost = found < STORM_CAPACITY ? STORM_CAPACITY - found : 0;
        uint64_t l = now_lost > lost ? now_lost - lost : 0; /* lost at this kill */
        lost = now_lost;
        lossy += l > 0;
        if (l > lost_max)
          lost_max = l;
      }
      drift = mb_storm_counted_out(p) - (int64_t)mb_storm_held_blocks(p);
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
  ASSERT_EQ_U64(mb_storm_held_blocks(p), 0);
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
    ASSERT_EQ_U64(mb_storm_held_blocks(p), STORM_CAPACITY);
    ASSERT_EQ(mb_storm_counted_out(p), STORM_CAPACITY);
    for (i = 0; i < STORM_CAPACITY; i++)
      ASSERT_OK(mb_pool_free(pool, o[i]));
    ASSERT_EQ(mb_storm_counted_out(p), 0);
    ASSERT_OK(mb_detach(c));
  }
  ASSERT_LE(mb_load64(&p->desc->peak), STORM_CAPACITY);
  mb__broker_stop(&b);
}

/* ---- everything at once: pools, thread caches, slots, counters, compact ---------------------- */

/*
 * Children of kill_storm_everything: game servers with two clients ("<name>.a", "<name>.b"),
 * each on its own thread doing, in a random busy mix, pool allocs and frees of random batches
 * (.a through its thread cache, .b uncached: through its magazine; some blocks held across
 * steps, a flush now and then), and player
 * connects and disconnects with slot writes, each followed by its mb_counter_add of players.
 * The parent keeps EV_LIVE of them running and kills one at a random instant.
 */
#define EV_CAPACITY 4096
#define EV_REGION (256 * 1024) /* 64 pages of 4 KiB, 256 slots of 1 KiB */
#define EV_SLOT 1024
#define EV_LIVE 3
#define EV_HELD_PLAYERS 6
#define EV_HELD_BLOCKS 96

static void ev_config(mb_config_t *cfg) {
  storm_config(cfg, "ev");
  fx_region_drop(cfg, "world");
  fx_region(cfg, "players", EV_REGION, 1, EV_SLOT);
  fx_pool(cfg, "obj", 64, 64, EV_CAPACITY);
}

typedef struct ev_worker_s {
  mb_client_t *c;
  mb_pool_t *pool;
  uint64_t next_id;
  uint32_t seed;
} ev_worker_t;

static void ev_main(void *arg) {
  ev_worker_t *w = arg;
  void *blocks[EV_HELD_BLOCKS];
  uint64_t players[EV_HELD_PLAYERS];
  int nb = 0, np = 0;
  for (;;) {
    uint32_t r = mb_storm_rnd(&w->seed), op = r % 8;
    if (op < 3) { /* take a random batch, give back a random part of what is held */
      int want = 1 + (int)((r >> 8) % 48), give;
      while (want-- > 0 && nb < EV_HELD_BLOCKS && mb_pool_alloc(w->pool, &blocks[nb]) == 0)
        ((volatile uint32_t *)blocks[nb++])[0] = r;
      give = (int)((r >> 16) % (uint32_t)(nb + 1));
      while (give-- > 0)
        mb_pool_free(w->pool, blocks[--nb]);
    } else if (op == 3) {
      if (((r >> 8) & 3) == 0)
        mb_pool_flush(w->pool);
    } else if (np < EV_HELD_PLAYERS && (np == 0 || (r & 0x100) != 0)) {
      void *slot;
      uint64_t id = w->next_id++;
      if (mb_player_connect(w->c, id, &slot) == 0) {
        memset(slot, (int)(id & 0xFF), EV_SLOT);
        players[np++] = id;
        mb_counter_add(w->c, MB_COUNTER_PLAYERS, 1, NULL);
      }
    } else if (np > 0) {
      int k = (int)((r >> 9) % (uint32_t)np);
      void *slot;
      if (mb_player_find(w->c, players[k], &slot) == 0)
        memset(slot, 0x5A, EV_SLOT / 2);
      if (mb_player_disconnect(w->c, players[k]) == 0)
        mb_counter_add(w->c, MB_COUNTER_PLAYERS, -1, NULL);
      players[k] = players[--np];
    }
  }
}

/* argv: instance name seed - attach as name.a and name.b, run both threads until killed. */
CHILD(everything) {
  static ev_worker_t w[2];
  mb_os_thread_t t[2];
  char name[64];
  uint32_t seed;
  int i;
  if (argc != 3)
    return 100;
  seed = (uint32_t)strtoul(argv[2], NULL, 10) | 1;
  for (i = 0; i < 2; i++) {
    snprintf(name, sizeof name, "%s.%c", argv[1], 'a' + i);
    if (mb_attach(argv[0], name, NULL, &w[i].c) != 0 ||
        mb_pool_open(w[i].c, "obj", i == 1 ? MB_POOL_NO_CACHE : 0, &w[i].pool) != 0) {
      fprintf(stderr, "# everything %s: %s\n", name, mb_last_error());
      return 101;
    }
    /* player ids of this run of the game server only (a takeover keeps the old ones' slots) */
    w[i].next_id = ((uint64_t)seed << 24) + ((uint64_t)i << 22) + 1;
    w[i].seed = seed * 2654435761u + (uint32_t)i + 1;
  }
  for (i = 0; i < 2; i++)
    if (mb_os_thread_start(&t[i], ev_main, &w[i]) != 0)
      return 102;
  for (;;) /* the threads never end: this process is killed */
    mb_os_sleep_ms(1000);
}

static mb_os_child_t g_ev_kids[EV_LIVE];
static int g_ev_live[EV_LIVE];

static void ev_kill_kids(void) {
  int k, x;
  for (k = 0; k < EV_LIVE; k++)
    if (g_ev_live[k]) {
      mb_os_child_kill(&g_ev_kids[k]);
      mb_os_child_wait(&g_ev_kids[k], 20000, &x);
      g_ev_live[k] = 0;
    }
}

static mb_client_entry_t *ev_entry(mb_broker_t *b, const char *name, char which) {
  char full[48];
  snprintf(full, sizeof full, "%s.%c", name, which);
  return mb_test_entry_named(b->state, full);
}

/* Both clients of game server `name` are attached by child k's process. */
static int ev_churning(mb_broker_t *b, const char *name, uint32_t pid) {
  int i;
  for (i = 0; i < 2; i++) {
    mb_client_entry_t *e = ev_entry(b, name, (char)('a' + i));
    uint64_t w = e != NULL ? mb_load64(&e->word) : 0;
    if (MB_CLIENT_WORD_STATE(w) != MB_CLIENT_ATTACHED || MB_CLIENT_WORD_PID(w) != pid)
      return 0;
  }
  return 1;
}

/* Spawn child k as `name` and poll (deadline 20 s) until it runs: with the broker ticking, or
 * not at all (so that the dead entries it is to take over are not reaped before it comes). */
static void ev_spawn(mb_broker_t *b, const char *instance, int k, const char *name, uint32_t seed,
                     int tick) {
  char s[16];
  uint64_t deadline;
  int x = -1;
  snprintf(s, sizeof s, "%u", (unsigned)seed);
  mb_storm_spawn(&g_ev_kids[k], "everything", instance, name, s);
  g_ev_live[k] = 1;
  deadline = mb_os_mono_ns() + 20000ull * 1000000u;
  for (;;) {
    if (tick)
      mb__broker_tick(b);
    if (ev_churning(b, name, (uint32_t)g_ev_kids[k].pid))
      return;
    if (mb_os_child_wait(&g_ev_kids[k], 0, &x) == 0) {
      g_ev_live[k] = 0;
      FAIL("game server '%s' exited with %d before it attached", name, x);
    }
    if (mb_os_mono_ns() > deadline)
      FAIL("game server '%s' did not attach within 20 s", name);
    mb_os_sleep_ms(1);
  }
}

/* Kill child k (running as `name`) and return what its two clients added to players. */
static int64_t ev_kill(mb_broker_t *b, int k, const char *name) {
  int x, i;
  int64_t share = 0;
  ASSERT_OK(mb_os_child_kill(&g_ev_kids[k]));
  ASSERT_OK(mb_os_child_wait(&g_ev_kids[k], 20000, &x));
  g_ev_live[k] = 0;
  for (i = 0; i < 2; i++) { /* final: the process is gone, and nobody has ticked since */
    mb_client_entry_t *e = ev_entry(b, name, (char)('a' + i));
    ASSERT(e != NULL);
    share += (int64_t)mb_load64(&e->added_players);
  }
  return share;
}

static uint32_t ev_entries_in_use(mb_broker_t *b) {
  uint32_t i, n = 0;
  for (i = 0; i < b->state->max_clients && i < MB_CLIENTS_MAX; i++)
    n += MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word)) != MB_CLIENT_FREE;
  return n;
}

/*
 * Issue 11's storm: pools, thread caches, slots, counters and compact at once, killed at random
 * instants, each kill followed by a reap (then a new name, or the same one again) or by a
 * restart under the same name that takes the dead entries over before any sweep. The truth
 * kept for the players counter: the broker does not change it when it reaps (README "Counters
 * that stay true"), so it must end exactly equal to what the reaped clients had added (their
 * shares, read once they were dead, folded into the base by the reaps), and the shown total
 * must come to it within a reconcile or two (an add killed between its share and the total).
 */
TEST(kill_storm_everything) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_pool_map_t *p;
  mb_region_map_t *r;
  mb_storm_slots_t t;
  const char *env = getenv("MB_KILLSTORM_KILLS");
  long kills = env != NULL ? atol(env) : (MB_OS_WIN ? 100 : 400);
  long n, reaps = 0, takeovers = 0, compacts = 0, fresh = 0;
  char names[EV_LIVE][32];
  uint32_t seed = (uint32_t)mb_os_mono_ns() | 1;
  uint64_t t0 = mb_os_mono_ns(), freed = 0, found, lost, used, players, i;
  int64_t abandoned = 0, drift;
  int k;

  ev_config(&cfg);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  p = &b.pools[0];
  r = mb__broker_region(&b, "players");
  ASSERT(r != NULL);
  printf("# seed %u, %ld kills\n", (unsigned)seed, kills);
  atexit(ev_kill_kids);
  for (k = 0; k < EV_LIVE; k++) {
    snprintf(names[k], sizeof names[k], "gs%d", k);
    ev_spawn(&b, cfg.instance, k, names[k], mb_storm_rnd(&seed), 1);
  }
  for (n = 0; n < kills; n++) {
    uint32_t x = mb_storm_rnd(&seed);
    int64_t share;
    k = (int)(x % EV_LIVE);
    /* a random instant: mostly within 2 ms, sometimes up to 20 ms, of a busy game server */
    mb_storm_spin_us((x >> 8) % 8 == 0 ? (x >> 12) % 20000 : (x >> 12) % 2000);
    share = ev_kill(&b, k, names[k]);
    x = mb_storm_rnd(&seed);
    if (x % 3 == 0) {
      /* The same game server again at once: it takes both entries over (no sweep between). */
      ev_spawn(&b, cfg.instance, k, names[k], mb_storm_rnd(&seed), 0);
      ASSERT(mb_load32(&ev_entry(&b, names[k], 'a')->takeovers) > 0);
      ASSERT(mb_load32(&ev_entry(&b, names[k], 'b')->takeovers) > 0);
      takeovers++;
      continue;
    }
    /* The broker reaps it: its blocks and slots go back, its share stays counted. */
    WAIT_FOR((mb__broker_tick(&b),
              ev_entry(&b, names[k], 'a') == NULL && ev_entry(&b, names[k], 'b') == NULL),
             20000);
    abandoned += share;
    reaps++;
    /* Its shares went into the base whole, whatever instant it died at. */
    ASSERT_EQ_U64(mb_load64(&b.state->players_base), (uint64_t)abandoned);
    if ((x >> 8) % 3 == 0) {
      (void)mb__broker_compact(&b, &freed);
      compacts++;
    }
    if ((x >> 12) % 4 != 0) { /* a new game server, else the same one after its reap */
      snprintf(names[k], sizeof names[k], "gs%ld", EV_LIVE + n);
      fresh++;
    }
    ev_spawn(&b, cfg.instance, k, names[k], mb_storm_rnd(&seed), 1);
  }
  for (k = 0; k < EV_LIVE; k++) {
    abandoned += ev_kill(&b, k, names[k]);
    reaps++;
  }
  WAIT_FOR((mb__broker_tick(&b), ev_entries_in_use(&b) == 0), 20000);
  (void)mb__broker_compact(&b, &freed);
  /* Quiescent: the reconcile makes the shown total the truth, base + shares (shares: none). */
  ASSERT_EQ_U64(mb__counter_shares(b.state, cfg.max_clients, 0), 0);
  WAIT_FOR((mb__broker_tick(&b), mb_load64(&b.state->game.total_players) ==
                                     mb__counter_truth(b.state, cfg.max_clients, 0)),
           20000);

  /* Nobody attached: every block free, every slot free, the counters the truth. */
  found = mb_storm_free_stack_blocks(p) + mb_storm_never_used(p);
  lost = found < EV_CAPACITY ? EV_CAPACITY - found : 0;
  mb_storm_look(r, &t);
  used = mb_load64(&r->desc->slots_used);
  players = mb_load64(&b.state->game.total_players);
  drift = (int64_t)players - abandoned;
  printf("# storm: %ld kills in %.1f s: %ld reaps (%ld then a new name), %ld takeovers, %ld "
         "compacts; blocks lost %llu, blocks held %llu, allocated - freed %lld; slots leaked %llu, "
         "slots_used %llu, page words wrong %llu, pages locked %llu; players %llu, reaped shares "
         "%lld, counter drift %lld\n",
         kills, (double)(mb_os_mono_ns() - t0) / 1e9, reaps, fresh, takeovers, compacts,
         (unsigned long long)lost, (unsigned long long)mb_storm_held_blocks(p),
         (long long)mb_storm_counted_out(p), (unsigned long long)t.owned, (unsigned long long)used,
         (unsigned long long)t.users_wrong, (unsigned long long)t.busy, (unsigned long long)players,
         (long long)abandoned, (long long)drift);
  ASSERT_EQ_U64(lost, 0);
  ASSERT_EQ_U64(found, EV_CAPACITY);
  ASSERT_EQ_U64(mb_storm_held_blocks(p), 0);
  ASSERT_EQ(mb_storm_counted_out(p), 0);
  ASSERT_LE(mb_load64(&p->desc->peak), EV_CAPACITY);
  ASSERT_EQ_U64(t.owned, 0);
  ASSERT_EQ_U64(used, 0);
  ASSERT_EQ_U64(t.busy, 0);
  ASSERT_EQ_U64(t.users_wrong, 0);
  if (mb_os_mem_config()->shared_decommit) /* every page compacts */
    ASSERT_EQ_U64(t.committed, 0);
  /* Exact: no delta escapes (counters.h). */
  ASSERT_EQ(drift, 0);
  ASSERT_EQ_U64(mb_load64(&b.state->players_base), (uint64_t)abandoned);

  {
    /* The whole pool and every slot can be had again, and the counters agree. */
    mb_client_t *c;
    mb_pool_t *pool;
    static void *o[EV_CAPACITY + 1];
    int got = 0;
    ASSERT_OK(mb_attach(cfg.instance, "check", NULL, &c));
    ASSERT_OK(mb_pool_open(c, "obj", MB_POOL_NO_CACHE, &pool));
    while (got < EV_CAPACITY + 1 && mb_pool_alloc(pool, &o[got]) == 0)
      got++;
    ASSERT_EQ(got, EV_CAPACITY);
    ASSERT_EQ_U64(mb_storm_held_blocks(p), EV_CAPACITY);
    ASSERT_EQ(mb_storm_counted_out(p), EV_CAPACITY);
    for (i = 0; i < EV_REGION / EV_SLOT; i++) {
      void *slot;
      ASSERT_OK(mb_player_connect(c, 1000 + i, &slot));
      memset(slot, 0x11, EV_SLOT);
    }
    mb_storm_look(r, &t);
    ASSERT_EQ_U64(t.owned, EV_REGION / EV_SLOT);
    ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), EV_REGION / EV_SLOT);
    ASSERT_EQ_U64(t.users_wrong, 0);
    for (i = 0; i < EV_CAPACITY; i++)
      ASSERT_OK(mb_pool_free(pool, o[i]));
    ASSERT_EQ(mb_storm_counted_out(p), 0);
    ASSERT_OK(mb_detach(c));
  }
  mb_storm_look(r, &t);
  ASSERT_EQ_U64(t.owned, 0);
  ASSERT_EQ_U64(t.users_wrong, 0);
  ASSERT_LE(mb_load64(&p->desc->peak), EV_CAPACITY);
  mb__broker_stop(&b);
}
