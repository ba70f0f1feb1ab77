/*
 * gameserver_sim.c - a simulated game server on membroker's client library (membroker.h).
 *
 *   gameserver_sim [--instance NAME] [--name NAME] [--players N] [--steady] [--seconds S] [--keep]
 *
 * It attaches to the broker of the instance as NAME (default "zone-1"), with a heartbeat
 * thread, waiting up to 10 s for a broker to come up. It passes no namespace flag: on Windows
 * the library finds a broker run as a service (Global\) or in a console (Local\) alike. Players
 * join and leave at random, around N (default 20) at a time: each has a slot in the broker's player
 * region holding a sim_player_t, which the game updates ten times a second. The shared player
 * counter moves with this server's own count (mb_counter_add: other servers add theirs), the NPC
 * counter by two NPCs per player, and now and then the status message says "zone-1: 37 players".
 * With --steady, players join until there are N and then nobody leaves (a fixed load to check).
 *
 * Every 100 ms it calls mb_tick. When the broker stops or restarts, mb_tick returns
 * MB_ENOTRUNNING (the control block it maps says stopped or shutting down); when this
 * client's entry is no longer its own - the broker declared it dead (its process seen gone,
 * or it let go), or another process attached under its name and took the entry over -
 * MB_ESTALE. Either way it says so and reattaches, retrying with backoff until the broker is
 * back or the time is up. A restarted broker with persist.dir gives the players' slots back
 * as its last save left them; one without has lost them, and then the game writes each again
 * from its own copy.
 *
 * On start it reports the players it got back: if a server of the same name crashed (or
 * ended with --keep) less than the broker's grace period (clients.grace_period_ms) ago, its
 * slots, bytes intact, are this one's now. Ctrl-C or the end of --seconds prints a summary
 * and exits 0; with --keep it lets go with mb_close instead, so the broker keeps the slots for a
 * restart under the same name; otherwise it detaches, which frees them.
 *
 * Exit codes: 0 ok, 1 attach failed, 2 usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime (mingw-w64: winpthread) */
#endif
#include <membroker.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIM_TICK_MS 100
#define SIM_STATUS_EVERY_MS 2000
#define SIM_MAX_PLAYERS 4096
#define SIM_NPCS_PER_PLAYER 2

/* What the game keeps of a player in the broker's slot: it survives a crash of this process.
 * Fixed-width fields; the slot must be at least this big (the default slot is 1 KiB). */
typedef struct sim_player_s {
  uint64_t id;    /* the player's id; 0: the slot was never written */
  int64_t joined; /* time() when the player joined */
  float x, y;     /* position in the zone */
  int32_t hp;     /* hit points, 1..100 */
  uint32_t moves; /* ticks this player moved */
} sim_player_t;

typedef struct sim_s {
  const char *instance, *name;
  unsigned target; /* players to aim at */
  double seconds;  /* 0: until Ctrl-C */
  int keep;        /* exit without detaching */
  int steady;      /* players join up to target and never leave */
  mb_attach_options_t opts;
  uint64_t generation; /* of the broker attached to: a new one has another */
  uint32_t broker_pid;
  uint64_t start_ms, end_ms;
  /* the players: the game's own copy and the slot in the broker's memory */
  sim_player_t players[SIM_MAX_PLAYERS];
  sim_player_t *slots[SIM_MAX_PLAYERS];
  unsigned n;
  uint64_t next_id;
  unsigned long joined, left, reattaches;
  uint64_t rng;
} sim_t;

static mb_client_t *g_client;
static sim_t g_sim;
static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  g_stop = sig;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleep up to ms, less if Ctrl-C is pressed. */
static void sleep_ms(uint64_t ms) {
  while (ms > 0 && !g_stop) {
    uint64_t step = ms < 100 ? ms : 100;
    struct timespec ts;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)step * 1000000L;
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

/* A line on stdout: "[zone-1 +1.2s] ...". */
static void say(const sim_t *s, const char *fmt, ...) {
  va_list ap;
  printf("[%s +%.1fs] ", s->name, (double)(now_ms() - s->start_ms) / 1000.0);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* The library's messages (retries, reattach), on stderr. */
static void on_log(void *user, int level, const char *message) {
  const sim_t *s = user;
  static const char *const levels[] = {"error", "warn", "info"};
  fprintf(stderr, "[%s +%.1fs] %s: %s\n", s->name, (double)(now_ms() - s->start_ms) / 1000.0,
          level >= 0 && level <= 2 ? levels[level] : "?", message);
}

static uint64_t rnd(sim_t *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * UINT64_C(2685821657736338717);
}

/* 0 <= r < 1 */
static double rnd01(sim_t *s) {
  return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* Add to one of the shared counters; a failure is reported, not fatal. */
static void count(sim_t *s, int counter, int64_t delta) {
  int rc = mb_counter_add(g_client, counter, delta, NULL);
  if (rc != 0)
    say(s, "counter %d %+lld: %s (%s)", counter, (long long)delta, mb_err_name(rc),
        mb_last_error());
}

/* ---- players ------------------------------------------------------------------------------ */

static void join(sim_t *s) {
  sim_player_t *p = &s->players[s->n];
  void *slot;
  int rc = mb_player_connect(g_client, s->next_id, &slot);
  if (rc != 0) {
    say(s, "player %llu cannot join: %s (%s)", (unsigned long long)s->next_id, mb_err_name(rc),
        mb_last_error());
    return;
  }
  memset(p, 0, sizeof *p);
  p->id = s->next_id++;
  p->joined = (int64_t)time(NULL);
  p->x = (float)(rnd01(s) * 1000.0);
  p->y = (float)(rnd01(s) * 1000.0);
  p->hp = 100;
  s->slots[s->n] = slot;
  memcpy(slot, p, sizeof *p);
  s->n++;
  s->joined++;
  count(s, MB_COUNTER_PLAYERS, 1);
  count(s, MB_COUNTER_NPCS, SIM_NPCS_PER_PLAYER);
}

static void leave(sim_t *s, unsigned i) {
  int rc = mb_player_disconnect(g_client, s->players[i].id);
  if (rc != 0)
    say(s, "player %llu leaves: %s (%s)", (unsigned long long)s->players[i].id, mb_err_name(rc),
        mb_last_error());
  s->n--;
  s->players[i] = s->players[s->n];
  s->slots[i] = s->slots[s->n];
  s->left++;
  count(s, MB_COUNTER_PLAYERS, -1);
  count(s, MB_COUNTER_NPCS, -SIM_NPCS_PER_PLAYER);
}

/* One tick of the game: someone may join or leave; everyone moves. */
static void simulate(sim_t *s) {
  unsigned i;
  if (s->n < s->target && s->n < SIM_MAX_PLAYERS && rnd01(s) < 0.4)
    join(s);
  if (s->n > 0 && !s->steady && rnd01(s) < 0.05 + 0.1 * (double)s->n / (double)(s->target + 1))
    leave(s, (unsigned)(rnd(s) % s->n));
  for (i = 0; i < s->n; i++) {
    sim_player_t *p = &s->players[i];
    p->x += (float)(rnd01(s) * 2.0 - 1.0);
    p->y += (float)(rnd01(s) * 2.0 - 1.0);
    p->hp += (int32_t)(rnd(s) % 3) - 1;
    p->hp = p->hp < 1 ? 1 : p->hp > 100 ? 100 : p->hp;
    p->moves++;
    memcpy(s->slots[i], p, sizeof *p); /* the broker's copy is the one that survives */
  }
}

/*
 * After an attach: put the slots this client holds into the game. A slot that was never
 * written (a crash between connect and write) is given a fresh player.
 */
static unsigned take_back(sim_t *s) {
  uint64_t cursor = 0, id;
  void *slot;
  s->n = 0;
  while (s->n < SIM_MAX_PLAYERS && mb_player_next(g_client, &cursor, &id, &slot) == 0) {
    sim_player_t *p = &s->players[s->n];
    memcpy(p, slot, sizeof *p);
    if (p->id != id) {
      memset(p, 0, sizeof *p);
      p->id = id;
      p->joined = (int64_t)time(NULL);
      p->hp = 100;
      memcpy(slot, p, sizeof *p);
    }
    s->slots[s->n++] = slot;
    if (id >= s->next_id)
      s->next_id = id + 1;
  }
  return s->n;
}

/*
 * After a reattach. The same broker (same generation) gave the slots back: new
 * pointers, same bytes. A new broker without persist.dir starts with empty regions and
 * counters: connect every player again, write it from the game's copy and count it again (one
 * with persist.dir restored the slots its last save held: those are found, not written). A
 * player whose slot is gone (the grace period ran out) is connected again too.
 */
static void restore(sim_t *s, const mb_info_t *info) {
  int fresh = info->generation != s->generation;
  unsigned i = 0, rewritten = 0;
  while (i < s->n) {
    void *slot;
    int rc = mb_player_find(g_client, s->players[i].id, &slot);
    if (rc == MB_ENOENT) {
      rc = mb_player_connect(g_client, s->players[i].id, &slot);
      if (rc == 0) {
        memcpy(slot, &s->players[i], sizeof s->players[i]);
        rewritten++;
      }
    }
    if (rc != 0) { /* no room for them in this broker */
      say(s, "player %llu is lost: %s (%s)", (unsigned long long)s->players[i].id, mb_err_name(rc),
          mb_last_error());
      s->n--;
      s->players[i] = s->players[s->n];
      if (!fresh) {
        count(s, MB_COUNTER_PLAYERS, -1);
        count(s, MB_COUNTER_NPCS, -SIM_NPCS_PER_PLAYER);
      }
      continue;
    }
    s->slots[i++] = slot;
  }
  if (fresh) {
    count(s, MB_COUNTER_PLAYERS, (int64_t)s->n);
    count(s, MB_COUNTER_NPCS, (int64_t)s->n * SIM_NPCS_PER_PLAYER);
  }
  say(s,
      "reattached to %s broker (pid %u, generation %llu): %u players, %u written again "
      "from the game's copy",
      fresh ? "a new" : "the same", (unsigned)info->broker_pid,
      (unsigned long long)info->generation, s->n, rewritten);
  s->generation = info->generation;
  s->broker_pid = info->broker_pid;
}

/* The broker stopped or restarted (MB_ENOTRUNNING), or this entry is no longer ours
 * (MB_ESTALE): reattach with backoff until it is back (1) or the time is
 * up or Ctrl-C (0). */
static int reattach(sim_t *s) {
  uint64_t backoff = 250;
  for (;;) {
    mb_attach_options_t o = s->opts;
    mb_info_t info;
    uint64_t now = now_ms(), left = s->end_ms > now ? s->end_ms - now : 0;
    int rc;
    if (g_stop || left == 0)
      return 0;
    /* Each try waits for the broker itself (the library backs off inside), bounded by the
     * time this run has left. */
    o.timeout_ms = (uint32_t)(left < 2000 ? left : 2000);
    rc = mb_reattach(g_client, &o);
    if (rc == 0) {
      s->reattaches++;
      mb_info(g_client, &info); /* MB_EBUSY concerns only the message */
      restore(s, &info);
      return 1;
    }
    say(s, "reattach: %s (%s); again in %.1f s", mb_err_name(rc), mb_last_error(),
        (double)backoff / 1000.0);
    sleep_ms(backoff);
    backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
  }
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(const char *msg) {
  if (msg)
    fprintf(stderr, "gameserver_sim: %s\n", msg);
  fprintf(stderr,
          "usage: gameserver_sim [--instance NAME] [--name NAME] [--players N] [--steady] "
          "[--seconds S] [--keep]\n"
          "  --instance NAME  the broker's instance (default: default)\n"
          "  --name NAME      this game server's name, kept across restarts (default: zone-1)\n"
          "  --players N      players to aim at, at most %d (default: 20)\n"
          "  --steady         players join until there are N, and none leaves\n"
          "  --seconds S      run S seconds (default: until Ctrl-C)\n"
          "  --keep           exit without detaching: the broker keeps the players' slots for\n"
          "                   its grace period, for a restart under the same name\n",
          SIM_MAX_PLAYERS);
  return 2;
}

int main(int argc, char **argv) {
  sim_t *s = &g_sim;
  mb_info_t info;
  uint64_t next_tick, next_status;
  unsigned back;
  int i, rc;

  s->name = "zone-1";
  s->target = 20;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (strcmp(a, "--keep") == 0) {
      s->keep = 1;
      continue;
    }
    if (strcmp(a, "--steady") == 0) {
      s->steady = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(NULL);
      return 0;
    }
    if (v == NULL)
      return usage("an option is missing its value");
    i++;
    if (strcmp(a, "--instance") == 0) {
      s->instance = v;
    } else if (strcmp(a, "--name") == 0) {
      s->name = v;
    } else if (strcmp(a, "--players") == 0) {
      unsigned long n = strtoul(v, &end, 10);
      if (*end != '\0' || n > SIM_MAX_PLAYERS)
        return usage("--players takes a number up to 4096");
      s->target = (unsigned)n;
    } else if (strcmp(a, "--seconds") == 0) {
      s->seconds = strtod(v, &end);
      if (*end != '\0' || !(s->seconds >= 0))
        return usage("--seconds takes a number of seconds");
    } else {
      return usage("unknown option");
    }
  }
  s->start_ms = now_ms();
  s->end_ms = s->seconds > 0 ? s->start_ms + (uint64_t)(s->seconds * 1000.0) : UINT64_MAX;
  s->rng = (uint64_t)time(NULL) * UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)(uintptr_t)&info;
  s->rng |= 1;
  s->next_id = 1;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  mb_attach_options_init(&s->opts);
  s->opts.heartbeat_ms = 500; /* a library thread keeps the heartbeat */
  s->opts.timeout_ms = 10000; /* wait up to 10 s for the broker to come up */
  s->opts.log = on_log;
  s->opts.log_user = s;
  if ((rc = mb_attach(s->instance, s->name, &s->opts, &g_client)) != 0) {
    fprintf(stderr, "gameserver_sim: cannot attach to instance '%s' as '%s': %s (%s)\n",
            s->instance ? s->instance : "default", s->name, mb_err_name(rc), mb_last_error());
    return 1;
  }
  mb_info(g_client, &info); /* MB_EBUSY concerns only the message */
  if (info.slot_size < sizeof(sim_player_t)) {
    fprintf(stderr,
            "gameserver_sim: the broker's player slots are %u bytes, this game needs "
            "%u (a region with \"slot_size\" in its config)\n",
            (unsigned)info.slot_size, (unsigned)sizeof(sim_player_t));
    mb_detach(g_client);
    return 1;
  }
  s->generation = info.generation;
  s->broker_pid = info.broker_pid;
  back = take_back(s);
  /* Taken-back players were counted by the run that connected them (same broker: a new one
   * starts with empty regions), so they are not counted again. */
  say(s,
      "attached to instance '%s' (broker pid %u, generation %llu, slot %u bytes): got back "
      "%u players from a previous run",
      s->instance ? s->instance : "default", (unsigned)info.broker_pid,
      (unsigned long long)info.generation, (unsigned)info.slot_size, back);

  next_tick = now_ms();
  next_status = next_tick + SIM_STATUS_EVERY_MS;
  while (!g_stop && now_ms() < s->end_ms) {
    uint64_t now;
    rc = mb_tick(g_client);
    if (rc == MB_ENOTRUNNING || rc == MB_ESTALE) {
      say(s, "%s: %s", mb_err_name(rc), mb_last_error());
      if (!reattach(s))
        break;
      next_tick = now_ms();
      continue;
    }
    if (rc != 0) {
      say(s, "mb_tick: %s (%s)", mb_err_name(rc), mb_last_error());
      break;
    }
    simulate(s);
    now = now_ms();
    if (now >= next_status) {
      char msg[MB_MESSAGE_MAX];
      snprintf(msg, sizeof msg, "%s: %u players", s->name, s->n);
      if ((rc = mb_set_message(g_client, msg)) != 0)
        say(s, "status message: %s (%s)", mb_err_name(rc), mb_last_error());
      mb_info(g_client, &info);
      say(s, "%u players here; instance: %llu players, %llu NPCs", s->n,
          (unsigned long long)info.players, (unsigned long long)info.npcs);
      next_status = now + SIM_STATUS_EVERY_MS;
    }
    next_tick += SIM_TICK_MS;
    if (next_tick > now)
      sleep_ms(next_tick - now);
    else
      next_tick = now; /* late: do not catch up */
  }

  say(s, "%s: %u players now; %lu joined, %lu left, %lu reattaches",
      g_stop ? "interrupted" : "time is up", s->n, s->joined, s->left, s->reattaches);
  if (s->keep) {
    /* mb_close, not mb_detach: the entry is handed off at once and the broker keeps the
     * slots for its grace period. The counters keep this server's players too: the next run
     * takes them back without counting them again. */
    rc = mb_close(g_client);
    g_client = NULL;
    say(s,
        "--keep: closed without detaching (%s); the broker keeps %u players' slots for a "
        "restart as '%s'",
        rc == 0 ? "ok" : mb_err_name(rc), s->n, s->name);
    return 0;
  }
  if (s->n > 0) {
    count(s, MB_COUNTER_PLAYERS, -(int64_t)s->n);
    count(s, MB_COUNTER_NPCS, -(int64_t)s->n * SIM_NPCS_PER_PLAYER);
  }
  rc = mb_detach(g_client); /* frees every slot */
  g_client = NULL;
  if (rc != 0)
    say(s, "detach: %s (%s)", mb_err_name(rc), mb_last_error());
  else
    say(s, "detached: %u players' slots freed", s->n);
  return 0;
}
