/*
 * test-slots.c - player slots whose page another process holds locked (a holder stopped or
 * killed in a claim): a release that cannot be done never hands a slot and its player to
 * another client, never forgets a player whose slot is still owned, and never makes the broker
 * wait; and live clients claiming and releasing while the broker repairs and compacts lose
 * nothing. (The random-kill storms are test-slotstorm.c.)
 */
#include "task.h"

#include <stdlib.h>

#include "../client/private.h"
#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "slots.h"

/* The test config (fixture.h) for instance "sl<pid><tag>" with one lazy region "players" of
 * 64 KiB, slots of 1 KiB (4 a page). */
static void slots_config(mb_config_t *cfg, const char *tag) {
  fx_config_pid(cfg, "sl", tag);
  fx_region_drop(cfg, "world");
  fx_region(cfg, "players", 64 * 1024, 1, FX_SLOT_SIZE);
  cfg->heartbeat_timeout_ms = 0;
  mb__log_open(MB_LOG_ERROR, "");
}

static uint32_t client_index(mb_client_t *c) {
  mb_info_t in;
  if (mb_info(c, &in) != 0)
    FAIL("mb_info: %s", mb_last_error());
  return in.client_index;
}

static uint32_t entry_state(mb_broker_t *b, uint32_t i) {
  return MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word));
}

/* Entry i: a client named `name` whose process is gone (a pid no process has), in `state`. */
static void gone_entry(mb_broker_t *b, uint32_t i, const char *name, uint32_t state) {
  mb__client_name_set(&b->state->clients[i], name);
  if (state == MB_CLIENT_DEAD) {
    mb_store64(&b->state->clients[i].dead_since_ns, 1);
    mb_store32(&b->state->clients[i].dead_reason, MB_DEAD_EXITED);
  }
  mb_store64(&b->state->clients[i].word, MB_CLIENT_WORD(state, 1, 0x7FFFFFF0u + i));
}

/* Page p locked by client holder h (index + 1), as if it stopped or died in a claim there. */
static uint32_t lock_page(mb_au32 *pages, uint64_t p, uint32_t h) {
  uint32_t saved = mb_load32(&pages[p]);
  mb_store32(&pages[p], saved | MB_PAGE_BUSY | (h << MB_PAGE_HOLDER_SHIFT));
  return saved;
}

/*
 * A disconnect whose release cannot lock the slot's page (a live client holds it: stopped in a
 * claim) fails with MB_EBUSY and keeps the player: still found, disconnected by a retry once
 * the page is free, and not back after a restart.
 */
TEST(disconnect_of_a_held_page_keeps_the_player) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *a, *o;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_slot_t *slots;
  uint32_t saved;
  void *s;
  slots_config(&cfg, "disc");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  slots = mb__region_slots(r->desc, r->base);
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_OK(mb_attach(cfg.instance, "other", NULL, &o));
  ASSERT_OK(mb_player_connect(a, 7, &s));
  memcpy(s, "seven", 6);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), client_index(a) + 1);
  saved = lock_page(pages, 0, client_index(o) + 1);
  ASSERT_ERR(mb_player_disconnect(a, 7), MB_EBUSY);
  ASSERT_OK(mb_player_find(a, 7, &s)); /* kept: the caller may try again */
  ASSERT_STR_EQ((char *)s, "seven");
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), client_index(a) + 1);
  mb_store32(&pages[0], saved); /* the holder resumes and unlocks */
  ASSERT_OK(mb_player_disconnect(a, 7));
  ASSERT_ERR(mb_player_find(a, 7, &s), MB_ENOENT);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), 0);
  /* A restart (planned close, attach under the name) does not bring the player back. */
  ASSERT_OK(mb_close(a));
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_ERR(mb_player_find(a, 7, &s), MB_ENOENT);
  mb_detach(a);
  mb_detach(o);
  mb__broker_stop(&b);
}

/*
 * A reap whose release cannot lock a slot's page (held by a client whose process is gone but
 * which the sweep has not judged yet) leaves the entry DEAD, not FREE: a client attaching
 * meanwhile gets another entry, and the slot (player 41) is freed at the next sweep, never
 * passed on.
 */
TEST(reap_of_a_held_page_never_passes_the_slot_on) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *n;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_slot_t *slots;
  uint64_t idx;
  void *s;
  slots_config(&cfg, "reap");
  cfg.grace_period_ms = 0;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  slots = mb__region_slots(r->desc, r->base);
  /* Entry 0: dead, grace over, holds slot 0 (player 41). */
  gone_entry(&b, 0, "gone", MB_CLIENT_DEAD);
  ASSERT_OK(mb__slot_acquire(r, 1, 41, &idx));
  ASSERT_EQ_U64(idx, 0);
  /* Entry 1: ATTACHED, its process gone (not swept yet), killed holding page 0. */
  gone_entry(&b, 1, "crashed", MB_CLIENT_ATTACHED);
  lock_page(pages, 0, 2);
  /* The sweep: entry 0's release gives up on page 0; entry 1 is made DEAD. */
  mb__broker_sweep(&b);
  ASSERT_EQ(entry_state(&b, 0), MB_CLIENT_DEAD);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), 1);
  /* A game server attaching now (before the rest of the tick) gets another entry. */
  ASSERT_OK(mb_attach(cfg.instance, "fresh", NULL, &n));
  ASSERT_NE(client_index(n), 0);
  mb__broker_slots_check(&b, 1); /* the rest of the tick: page 0 settled (entry 1 is dead) */
  ASSERT_EQ(mb_load32(&pages[0]) & MB_PAGE_BUSY, 0);
  mb__broker_tick(&b); /* the next sweep frees entry 0 and its slot */
  ASSERT_EQ(entry_state(&b, 0), MB_CLIENT_FREE);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), 0);
  ASSERT_EQ_U64(mb_load64(&slots[0].player), 0);
  ASSERT_OK(mb_close(n));
  ASSERT_OK(mb_attach(cfg.instance, "fresh", NULL, &n));
  ASSERT_ERR(mb_player_find(n, 41, &s), MB_ENOENT);
  mb_detach(n);
  mb__broker_stop(&b);
}

/*
 * A detach whose release cannot lock a slot's page leaves its entry DEAD (no name, so nobody
 * takes it over), not FREE: the next client attaching gets another entry, and the broker frees
 * the slot once the page is free.
 */
TEST(detach_of_a_held_page_leaves_the_entry_dead) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *a, *o, *n;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_slot_t *slots;
  uint32_t saved, ia;
  void *s;
  slots_config(&cfg, "det");
  cfg.grace_period_ms = 0;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  slots = mb__region_slots(r->desc, r->base);
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_OK(mb_attach(cfg.instance, "other", NULL, &o));
  ia = client_index(a);
  ASSERT_OK(mb_player_connect(a, 7, &s));
  saved = lock_page(pages, 0, client_index(o) + 1);
  ASSERT_OK(mb_detach(a));
  ASSERT_EQ(entry_state(&b, ia), MB_CLIENT_DEAD);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), ia + 1);
  ASSERT_OK(mb_attach(cfg.instance, "next", NULL, &n));
  ASSERT_NE(client_index(n), ia);
  ASSERT_ERR(mb_player_find(n, 7, &s), MB_ENOENT);
  mb__broker_tick(&b); /* the page is still held: the entry stays DEAD */
  ASSERT_EQ(entry_state(&b, ia), MB_CLIENT_DEAD);
  mb_store32(&pages[0], saved);
  mb__broker_tick(&b);
  ASSERT_EQ(entry_state(&b, ia), MB_CLIENT_FREE);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), 0);
  mb_detach(n);
  mb_detach(o);
  mb__broker_stop(&b);
}

/* A FREE entry that owns a slot (forged) gives it back, without its player, on attach. */
TEST(fresh_attach_drops_slots_of_its_index) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_region_map_t *r;
  mb_slot_t *slots;
  uint64_t idx;
  void *s;
  slots_config(&cfg, "fresh");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  slots = mb__region_slots(r->desc, r->base);
  ASSERT_OK(mb__slot_acquire(r, 1, 99, &idx)); /* entry 0 is FREE */
  ASSERT_OK(mb_attach(cfg.instance, "x", NULL, &c));
  ASSERT_EQ(client_index(c), 0);
  ASSERT_EQ_U64(mb_load64(&slots[idx].owner), 0);
  ASSERT_EQ_U64(mb_load64(&slots[idx].player), 0);
  ASSERT_OK(mb_close(c));
  ASSERT_OK(mb_attach(cfg.instance, "x", NULL, &c));
  ASSERT_ERR(mb_player_find(c, 99, &s), MB_ENOENT);
  mb_detach(c);
  mb__broker_stop(&b);
}

/*
 * A live client stopped while it holds page 0 locked: the broker's tick never waits for it
 * (a page wait is 2 s; one per slot there made a tick take many seconds). The reap of the dead
 * client with slots on that page is left for a later tick, done once the page is free.
 */
TEST(stopped_holder_never_stalls_the_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_slot_t *slots;
  mb_os_procid_t self;
  uint64_t idx, t0, took;
  uint32_t saved;
  int k;
  slots_config(&cfg, "stall");
  cfg.grace_period_ms = 0;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  slots = mb__region_slots(r->desc, r->base);
  mb_os_proc_self(&self);
  gone_entry(&b, 0, "gone", MB_CLIENT_DEAD);
  for (k = 0; k < 6; k++) /* slots 0..3 on page 0, 4..5 on page 1 */
    ASSERT_OK(mb__slot_acquire(r, 1, 41 + (uint64_t)k, &idx));
  /* Entry 1: a live process (this one), stopped in a claim on page 0. */
  mb__client_name_set(&b.state->clients[1], "stopped");
  mb_store64(&b.state->clients[1].start_time, self.start_time);
  mb_store64(&b.state->clients[1].heartbeat_ns, mb_os_mono_ns());
  mb_store64(&b.state->clients[1].word, MB_CLIENT_WORD(MB_CLIENT_ATTACHED, 1, self.pid));
  saved = lock_page(pages, 0, 2);
  t0 = mb_os_mono_ns();
  mb__broker_tick(&b);
  took = (mb_os_mono_ns() - t0) / 1000000u;
  printf("one tick with a stopped holder: %llu ms\n", (unsigned long long)took);
  ASSERT_LT(took, 2000); /* not even one page wait */
  ASSERT_EQ(entry_state(&b, 0), MB_CLIENT_DEAD);
  ASSERT_EQ_U64(mb_load64(&slots[0].owner), 1);                 /* page 0: left for later */
  ASSERT_EQ_U64(mb_load64(&slots[4].owner), 0);                 /* page 1: freed */
  ASSERT_EQ(mb_load32(&pages[0]) & MB_PAGE_BUSY, MB_PAGE_BUSY); /* a live holder's lock */
  mb_store32(&pages[0], saved);                                 /* it resumes */
  mb__broker_tick(&b);
  ASSERT_EQ(entry_state(&b, 0), MB_CLIENT_FREE);
  for (k = 0; k < 6; k++)
    ASSERT_EQ_U64(mb_load64(&slots[k].owner), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 0);
  ASSERT_EQ(mb_load32(&pages[0]) & MB_PAGE_USERS_MASK, 0);
  mb_store64(&b.state->clients[1].word, MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0));
  mb__broker_stop(&b);
}

/* A page word forged as locked by the broker is settled by the broker's next tick. */
TEST(forged_broker_lock_is_settled) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_client_t *c;
  void *s;
  slots_config(&cfg, "fbl");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  mb_store32(&pages[0], MB_PAGE_BUSY | (MB_PAGE_HOLDER_BROKER << MB_PAGE_HOLDER_SHIFT));
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load32(&pages[0]), 0);
  ASSERT_OK(mb_attach(cfg.instance, "x", NULL, &c));
  ASSERT_OK(mb_player_connect(c, 1, &s));
  ASSERT_EQ(mb_load32(&pages[0]), MB_PAGE_COMMITTED | 1u); /* slot 0, on page 0 */
  mb_detach(c);
  mb__broker_stop(&b);
}

/* ---- live clients vs the broker's deep repair and compact -------------------------------- */

typedef struct {
  const char *instance;
  uint32_t slot_size;
  int id;
  volatile int *stop;
  volatile uint64_t rounds;
  int bad;
  char why[160];
} worker_t;

/* Connects 6 players, checks their slots read zero, fills them, checks, disconnects; again. */
static void worker(void *arg) {
  worker_t *w = arg;
  mb_client_t *c;
  char name[32];
  snprintf(name, sizeof name, "w%d", w->id);
  if (mb_attach(w->instance, name, NULL, &c) != 0) {
    w->bad = 1;
    snprintf(w->why, sizeof w->why, "attach: %s", mb_last_error());
    return;
  }
  while (!*w->stop) {
    uint64_t p[6];
    unsigned char *s[6];
    uint32_t j;
    int k;
    for (k = 0; k < 6; k++) {
      p[k] = (uint64_t)w->id * 1000000u + w->rounds * 6 + (uint64_t)k;
      if (mb_player_connect(c, p[k], (void **)&s[k]) != 0) {
        w->bad = 1;
        snprintf(w->why, sizeof w->why, "connect: %s", mb_last_error());
        goto out;
      }
      for (j = 0; j < w->slot_size; j++)
        if (s[k][j] != 0) {
          w->bad = 1;
          snprintf(w->why, sizeof w->why, "fresh slot not zero at %u", (unsigned)j);
          goto out;
        }
      memset(s[k], 0xA0 + w->id, w->slot_size);
    }
    for (k = 0; k < 6; k++) {
      for (j = 0; j < w->slot_size; j++)
        if (s[k][j] != (unsigned char)(0xA0 + w->id)) {
          w->bad = 1;
          snprintf(w->why, sizeof w->why, "slot bytes lost (decommitted?) at %u", (unsigned)j);
          goto out;
        }
      if (mb_player_disconnect(c, p[k]) != 0) {
        w->bad = 1;
        snprintf(w->why, sizeof w->why, "disconnect: %s", mb_last_error());
        goto out;
      }
    }
    w->rounds++;
  }
out:
  mb_detach(c);
}

/* 4 client threads connect and disconnect while the broker repairs (deep), compacts and ticks
 * in a loop; afterwards every slot is free, no page is locked or counted, and the commit
 * totals equal the committed pages. */
static void live_case(uint32_t slot_size, const char *tag) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_au32 *pages;
  mb_slot_t *slots;
  mb_os_thread_t t[4];
  worker_t w[4];
  volatile int stop = 0;
  uint64_t p, npages, ps, committed_pages = 0, total0, loops = 0, freed, deadline;
  int i, done = 0;
  slots_config(&cfg, tag);
  fx_region(&cfg, "players", 256 * 1024, 1, slot_size);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  slots = mb__region_slots(r->desc, r->base);
  ps = r->page_size;
  npages = r->size / ps;
  total0 = mb_load64(&b.state->game.committed_total) - mb_load64(&r->desc->committed);
  for (i = 0; i < 4; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].instance = cfg.instance;
    w[i].slot_size = slot_size;
    w[i].id = i + 1;
    w[i].stop = &stop;
    ASSERT_OK(mb_os_thread_start(&t[i], worker, &w[i]));
  }
  /* Until every worker did 300 rounds and the broker 1000 loops (or one worker failed). */
  deadline = mb_os_mono_ns() + 120000000000ull;
  while (!done && mb_os_mono_ns() < deadline) {
    mb__broker_slots_check(&b, 1);
    (void)mb__broker_compact(&b, &freed);
    mb__broker_tick(&b);
    loops++;
    done = loops >= 1000;
    for (i = 0; i < 4; i++) {
      if (w[i].bad)
        done = 1;
      else if (w[i].rounds < 300)
        done = 0;
    }
  }
  stop = 1;
  for (i = 0; i < 4; i++)
    mb_os_thread_join(&t[i]);
  for (i = 0; i < 4; i++)
    if (w[i].bad)
      FAIL("worker %d: %s", i + 1, w[i].why);
  ASSERT(done);
  mb__broker_slots_check(&b, 1);
  for (p = 0; p < npages; p++) {
    uint32_t v = mb_load32(&pages[p]);
    if (v & (MB_PAGE_BUSY | MB_PAGE_CHARGED) || (v & MB_PAGE_USERS_MASK) != 0)
      FAIL("page %llu word %08x", (unsigned long long)p, v);
    committed_pages += (v & MB_PAGE_COMMITTED) != 0;
  }
  for (p = 0; p < r->slot_count; p++)
    ASSERT_EQ_U64(mb_load64(&slots[p].owner), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), committed_pages * ps);
  ASSERT_EQ_U64(mb_load64(&b.state->game.committed_total), total0 + committed_pages * ps);
  mb__broker_stop(&b);
}

TEST(live_clients_vs_repair_and_compact) {
  live_case(1024, "live");
}

TEST(live_clients_vs_repair_and_compact_two_page_slots) {
  live_case(8192, "live2");
}

/*
 * Whether an injected commit failure is still pending, i.e. no commit reached the OS layer
 * since it was injected: one commit of page 0 of the broker's view (committed: a no-op
 * otherwise) meets it (MB_ENOSPC) or not (0).
 */
static int commit_failure_pending(mb_region_map_t *r) {
  int rc = mb_os_section_commit(&r->sec, r->base, 0, r->page_size);
  if (rc != 0 && rc != MB_ENOSPC)
    FAIL("commit of page 0: %s: %s", mb_err_name(rc), mb_last_error());
  return rc == MB_ENOSPC;
}

/* The slotted region as client c mapped it (its view). */
static mb_region_map_t *client_region(mb_client_t *c) {
  ASSERT_GE(c->slot_region, 0);
  return &c->regions[c->slot_region];
}

/*
 * A connect on a page already committed in the client's own view makes no commit call (where
 * views commit for themselves, Windows, the view's private bitmap of the pages it committed
 * says so; elsewhere the claim never commits a committed page), counted through the platform
 * layer's commit failure injection: a failure injected before six such claims is still
 * pending after them, and none of them went on to the next page. A second view's first claim
 * on a page another view committed still commits it in that view (its bytes are written), and
 * a claim on a fresh page meets the injected failure.
 */
TEST(connect_on_a_page_committed_in_its_view_makes_no_commit_call) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *a, *o;
  mb_region_map_t *r;
  mb_slot_t *slots;
  const mb_os_mem_config_t *mc = mb_os_mem_config();
  void *s;
  int i;
  slots_config(&cfg, "vc");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  slots = mb__region_slots(r->desc, r->base);
  ASSERT_EQ_U64(r->page_size / r->slot_size, 4); /* slots 0-3 on page 0 */
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_OK(mb_attach(cfg.instance, "other", NULL, &o));
  ASSERT_OK(mb_player_connect(a, 1, &s)); /* page 0: fresh, committed through a's view */
  memcpy(s, "one", 4);
  ASSERT_OK(mb_player_connect(o, 2, &s)); /* o's view: committed there where views commit */
  memcpy(s, "two", 4);
  /* Only where views commit for themselves and shared pages never decommit is there a
   * bitmap: elsewhere nothing is allocated for it. */
  if (mc->view_commit && !mc->shared_decommit) {
    ASSERT(client_region(a)->view_committed != NULL);
    ASSERT(client_region(o)->view_committed != NULL);
    ASSERT_EQ_U64(mb_load32(&client_region(a)->view_committed[0]) & 3u, 1u); /* page 0 only */
    ASSERT_EQ_U64(mb_load32(&client_region(o)->view_committed[0]) & 3u, 1u);
  } else {
    ASSERT(client_region(a)->view_committed == NULL);
    ASSERT(client_region(o)->view_committed == NULL);
  }

  mb_os_inject_commit_failures(1);
  ASSERT_OK(mb_player_connect(a, 3, &s));
  ASSERT_OK(mb_player_connect(o, 4, &s));
  ASSERT_OK(mb_player_disconnect(a, 3));
  ASSERT_OK(mb_player_connect(a, 5, &s)); /* the reused slot 2 */
  ASSERT_OK(mb_player_disconnect(o, 4));
  ASSERT_OK(mb_player_connect(o, 6, &s));
  memcpy(s, "six", 4);
  for (i = 0; i < 4; i++)
    ASSERT(mb_load64(&slots[i].owner) != 0);
  ASSERT_EQ_U64(mb_load64(&slots[4].owner), 0); /* none went on past page 0 */
  ASSERT(commit_failure_pending(r));            /* and none made a commit call */
  ASSERT(!commit_failure_pending(r));
  ASSERT_OK(mb_player_find(a, 1, &s));
  ASSERT_STR_EQ((char *)s, "one");

  /* A fresh page (1) is committed: the claim meets the injected failure and says so. */
  mb_os_inject_commit_failures(1);
  ASSERT_ERR(mb_player_connect(a, 7, &s), MB_ENOSPC);
  ASSERT(!commit_failure_pending(r));
  ASSERT_OK(mb_player_connect(a, 7, &s));
  ASSERT(mb_load64(&slots[4].owner) != 0);
  mb_detach(a);
  mb_detach(o);
  mb__broker_stop(&b);
}

/*
 * Without the bitmap (its allocation failed at map time: the same NULL), a claim on a page
 * committed in its view commits there again, as before, and succeeds: where views commit for
 * themselves the injected failure is met (the claim goes on and, at its second pass, commits
 * again), elsewhere no commit is made.
 */
TEST(connect_without_the_view_bitmap_commits_every_time) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *a;
  mb_region_map_t *r, *ra;
  mb_slot_t *slots;
  void *s;
  slots_config(&cfg, "vn");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  slots = mb__region_slots(r->desc, r->base);
  ASSERT_OK(mb_attach(cfg.instance, "a", NULL, &a));
  ASSERT_OK(mb_player_connect(a, 1, &s));
  ra = client_region(a);
  free(ra->view_committed);
  ra->view_committed = NULL;
  mb_os_inject_commit_failures(1);
  ASSERT_OK(mb_player_connect(a, 2, &s));
  memcpy(s, "two", 4);
  if (mb_os_mem_config()->view_commit) {
    ASSERT(!commit_failure_pending(r)); /* the claim's commit met it */
  } else {
    ASSERT(commit_failure_pending(r));
    ASSERT(mb_load64(&slots[1].owner) != 0);
  }
  mb_os_inject_commit_failures(0);
  mb_detach(a);
  mb__broker_stop(&b);
}
