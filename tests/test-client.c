/*
 * test-client.c - the client library (client/include/membroker.h) against a broker running
 * in this test process (its sweep called directly), with game servers as real child
 * processes: attach errors, counters from several processes without lost updates, a client
 * killed mid-update reaped after its grace period, a restarted client taking its slots back
 * with their bytes, heartbeats (a silent client is hung, not dead), broker restarts, and 1,000
 * attach/detach cycles.
 */
#include "task.h"

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"

/* The test config (fixture.h) for instance "c<pid><tag>", no heartbeat timeout. */
static void client_config(mb_config_t *cfg, const char *tag) {
  fx_config_pid(cfg, "c", tag);
  cfg->heartbeat_timeout_ms = 0;
  mb__log_open(MB_LOG_ERROR, "");
}

static uint32_t entry_state(mb_broker_t *b, const char *name) {
  mb_client_entry_t *e = mb_test_entry_named(b->state, name);
  return e ? MB_CLIENT_WORD_STATE(mb_load64(&e->word)) : MB_CLIENT_FREE;
}

static uint32_t entries_in_use(mb_broker_t *b) {
  uint32_t i, n = 0;
  for (i = 0; i < MB_CLIENTS_MAX; i++)
    n += MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word)) != MB_CLIENT_FREE;
  return n;
}

/* The bytes a game server keeps in player p's slot. */
static void player_bytes(uint64_t p, char *buf, size_t size) {
  snprintf(buf, size, "player %llu: hp=%llu pos=(%llu,%llu)", (unsigned long long)p,
           (unsigned long long)(100 + p), (unsigned long long)(p * 7),
           (unsigned long long)(p * 13));
}

/* ---- children: game servers ---------------------------------------------------------------- */

/* argv: instance name count - attach, add 1 to players `count` times, detach. */
CHILD(add_players) {
  mb_client_t *c;
  long i, n;
  if (argc != 3 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  n = atol(argv[2]);
  for (i = 0; i < n; i++)
    if (mb_counter_add(c, MB_COUNTER_PLAYERS, 1, NULL) != 0)
      return 101;
  return mb_detach(c) == 0 ? 0 : 102;
}

/* argv: instance name first count - connect players first..first+count-1, write their bytes,
 * then keep updating the NPC counter until killed. */
CHILD(hold_players) {
  mb_client_t *c;
  uint64_t p, first, count;
  char buf[128];
  if (argc != 4 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  first = (uint64_t)atol(argv[2]);
  count = (uint64_t)atol(argv[3]);
  for (p = first; p < first + count; p++) {
    void *slot;
    if (mb_player_connect(c, p, &slot) != 0)
      return 101;
    player_bytes(p, buf, sizeof buf);
    memcpy(slot, buf, strlen(buf) + 1);
  }
  for (;;) { /* mid-update when killed */
    mb_counter_add(c, MB_COUNTER_NPCS, 1, NULL);
    mb_counter_add(c, MB_COUNTER_NPCS, -1, NULL);
    mb_tick(c);
  }
}

/* argv: instance name first count - connect players first..first+count-1, write their
 * bytes, then let go with mb_close (a planned restart) and exit cleanly. */
CHILD(hold_and_close) {
  mb_client_t *c;
  uint64_t p, first, count;
  char buf[128];
  mb_attach_options_t o;
  mb_attach_options_init(&o);
  o.heartbeat_ms = 20; /* a thread that mb_close must stop */
  if (argc != 4 || mb_attach(argv[0], argv[1], &o, &c) != 0)
    return 100;
  first = (uint64_t)atol(argv[2]);
  count = (uint64_t)atol(argv[3]);
  for (p = first; p < first + count; p++) {
    void *slot;
    if (mb_player_connect(c, p, &slot) != 0)
      return 101;
    player_bytes(p, buf, sizeof buf);
    memcpy(slot, buf, strlen(buf) + 1);
  }
  return mb_close(c) == 0 ? 0 : 102;
}

/* argv: instance name first count - attach under the name of a crashed server and check that
 * its players' slots came back with their bytes. Exit 0 if all did. */
CHILD(take_back_players) {
  mb_client_t *c;
  mb_info_t info;
  uint64_t p, first, count, cursor = 0, id, seen = 0;
  char buf[128];
  void *slot, *again;
  if (argc != 4 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  first = (uint64_t)atol(argv[2]);
  count = (uint64_t)atol(argv[3]);
  if (mb_info(c, &info) != 0 || info.slots_held != count)
    return 101;
  for (p = first; p < first + count; p++) {
    player_bytes(p, buf, sizeof buf);
    if (mb_player_find(c, p, &slot) != 0 || strcmp((char *)slot, buf) != 0)
      return 102;
    /* connect of a player it holds gives the same slot, bytes kept */
    if (mb_player_connect(c, p, &again) != 0 || again != slot || strcmp((char *)again, buf) != 0)
      return 103;
  }
  while (mb_player_next(c, &cursor, &id, &slot) == 0) {
    if (id < first || id >= first + count)
      return 104;
    seen++;
  }
  if (seen != count)
    return 105;
  /* Writing to a slot taken back works (its page is usable in this process). */
  memset(slot, 0x5A, 16);
  return mb_detach(c) == 0 ? 0 : 106;
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(attach_errors) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c = NULL, *d = NULL;
  mb_attach_options_t o;
  uint64_t t0;
  client_config(&cfg, "err");
  /* No broker: broker_not_running, at once and after a bounded wait. */
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  ASSERT_CONTAINS(mb_last_error(), "no broker runs for instance");
  ASSERT(c == NULL);
  mb_attach_options_init(&o);
  o.timeout_ms = 150;
  t0 = mb_os_mono_ns();
  ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_ENOTRUNNING);
  ASSERT_GE(mb_os_mono_ns() - t0, 100u * 1000000u);
  /* Bad names and options. */
  ASSERT_ERR(mb_attach(cfg.instance, "", NULL, &c), MB_EINVAL);
  ASSERT_ERR(mb_attach(cfg.instance, "no spaces", NULL, &c), MB_EINVAL);
  ASSERT_ERR(mb_attach(cfg.instance, "a-name-that-is-longer-than-31-bytes", NULL, &c), MB_EINVAL);
  ASSERT_ERR(mb_attach("bad/instance", "zone", NULL, &c), MB_EINVAL);
  o.size = 3;
  ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_EINVAL);

  cfg.max_clients = 2;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  /* The same name, live in this process: refused. */
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &d), MB_EEXIST);
  ASSERT_CONTAINS(mb_last_error(), "which is running");
  ASSERT_OK(mb_attach(cfg.instance, "zone2", NULL, &d));
  {
    mb_client_t *e = NULL;
    ASSERT_ERR(mb_attach(cfg.instance, "zone3", NULL, &e), MB_EFULL);
    ASSERT_CONTAINS(mb_last_error(), "client table is full (2 entries)");
  }
  mb__broker_sweep(&b); /* the broker counts them */
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 2);
  ASSERT_OK(mb_detach(d));
  ASSERT_OK(mb_detach(c));
  mb__broker_sweep(&b);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 0);
  /* Shutting down: not running. */
  mb__broker_begin_stop(&b);
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  ASSERT_CONTAINS(mb_last_error(), "shutting down");
  mb__broker_stop(&b);
}

/* A control block of another layout version (or not one at all) is refused, distinctly. */
TEST(attach_version_mismatch) {
  mb_config_t cfg;
  mb_os_section_t s;
  mb_state_t *st;
  mb_client_t *c = NULL;
  char name[MB_OS_NAME_MAX + 1];
  client_config(&cfg, "ver");
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));
  ASSERT_OK(mb_os_section_create(&s, name, (sizeof(mb_state_t) + 65535) / 65536 * 65536, 0, NULL));
  ASSERT_OK(mb_os_section_map(&s, 0, 1, (void **)&st));
  st->magic = MB_STATE_MAGIC;
  st->layout_version = MB_LAYOUT_VERSION + 1;
  st->header_size = (uint32_t)offsetof(mb_state_t, game);
  st->total_size = sizeof(mb_state_t);
  mb_store32(&st->initialised, MB_STATE_READY);
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_EVERSION);
  ASSERT_CONTAINS(mb_last_error(), "layout version");
  st->magic = 0x1234;
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_EBADMAGIC);
  /* A block still being built (all zero, as the broker creates it): not running yet, so an
   * attach with a timeout keeps trying instead of failing with bad_magic. */
  memset(st, 0, sizeof *st);
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  ASSERT_CONTAINS(mb_last_error(), "not initialised");
  /* Not initialised yet: not running (and attach waits for it within its timeout). */
  st->magic = MB_STATE_MAGIC;
  st->layout_version = MB_LAYOUT_VERSION;
  mb_store32(&st->initialised, 0);
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  ASSERT_CONTAINS(mb_last_error(), "not initialised");
  mb_os_section_unmap(st, s.size);
  mb_os_section_close(&s);
  mb_os_section_unlink(name, 0);
}

TEST(counters_from_two_processes) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k1, k2;
  int x1 = -1, x2 = -1;
  const char *n = "20000";
  client_config(&cfg, "cnt");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k1, "add_players", cfg.instance, "a", n, (char *)NULL));
  ASSERT_OK(mb_test_spawn(&k2, "add_players", cfg.instance, "b", n, (char *)NULL));
  ASSERT_OK(mb_os_child_wait(&k1, 60000, &x1));
  ASSERT_OK(mb_os_child_wait(&k2, 60000, &x2));
  ASSERT_EQ(x1, 0);
  ASSERT_EQ(x2, 0);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 40000);
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_stop(&b);
}

TEST(counters_and_message) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_info_t info;
  uint64_t v = 0;
  client_config(&cfg, "msg");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_NPCS, 500));
  ASSERT_OK(mb_counter_add(c, MB_COUNTER_NPCS, -20, &v));
  ASSERT_EQ_U64(v, 480);
  ASSERT_ERR(mb_counter_add(c, MB_COUNTER_NPCS, -481, &v), MB_ERANGE);
  ASSERT_ERR(mb_counter_add(c, 7, 1, NULL), MB_EINVAL);
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_PLAYERS, UINT64_MAX));
  ASSERT_ERR(mb_counter_add(c, MB_COUNTER_PLAYERS, 1, NULL), MB_ERANGE);
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_PLAYERS, 12));
  ASSERT_OK(mb_set_message(c, "zone 1 up"));
  ASSERT_OK(mb_info(c, &info));
  ASSERT_EQ(info.server_status, MB_SERVER_RUNNING);
  ASSERT_EQ(info.broker_pid, b.self.pid);
  ASSERT_EQ_U64(info.players, 12);
  ASSERT_EQ_U64(info.npcs, 480);
  ASSERT_STR_EQ(info.message, "zone 1 up");
  ASSERT_EQ(info.slot_size, 1024);
  ASSERT_EQ_U64(info.slot_count, 1024);
  ASSERT_EQ_U64(info.generation, mb_load64(&b.state->generation));
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_npcs), 480);
  {
    void *base = NULL;
    uint64_t size = 0;
    ASSERT_OK(mb_region(c, "world", &base, &size));
    ASSERT_EQ_U64(size, 256 * 1024);
    memset(base, 7, 4096); /* a committed region: every byte usable */
    ASSERT_EQ(((unsigned char *)b.regions[0].base)[4095], 7);
    ASSERT_ERR(mb_region(c, "nosuch", &base, &size), MB_ENOENT);
  }
  ASSERT_OK(mb_tick(c));
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/*
 * mb_set_message refuses text that is not valid UTF-8 as the pipe's set-message does (one rule,
 * mb__utf8_invalid): MB_EINVAL, the error names the byte and its offset, the old message stays.
 */
TEST(set_message_refuses_invalid_utf8) {
  static const struct {
    const char *text, *why;
  } bad[] = {
      {"ab\xC0\xAF", "byte 0xc0 at offset 2"},            /* overlong '/' */
      {"x\xE0\x80\xAF", "byte 0xe0 at offset 1"},         /* overlong, 3 bytes */
      {"sur\xED\xA0\x80rogate", "byte 0xed at offset 3"}, /* U+D800 */
      {"cut \xE2\x82", "byte 0xe2 at offset 4"},          /* a truncated euro sign */
      {"\x80lone", "byte 0x80 at offset 0"},              /* a lone continuation byte */
      {"\xF4\x90\x80\x80", "byte 0xf4 at offset 0"},      /* past U+10FFFF */
  };
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_info_t info;
  size_t i;
  client_config(&cfg, "utf8");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_set_message(c, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xAE")); /* valid: kept */
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_ERR(mb_set_message(c, bad[i].text), MB_EINVAL);
    ASSERT_CONTAINS(mb_last_error(), "not valid UTF-8");
    ASSERT_CONTAINS(mb_last_error(), bad[i].why);
    ASSERT_OK(mb_info(c, &info));
    ASSERT_STR_EQ(info.message, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xAE");
  }
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* The add's two steps apart, as a kill between them leaves them: the share (the truth) changed,
 * the shown total not. The broker's reconcile puts the total right at its second look, and an
 * add merely caught between its steps by one look is not "corrected" (counters.h). */
TEST(counter_add_killed_between_share_and_total) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_info_t info;
  mb_client_entry_t *e;
  client_config(&cfg, "ckill");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_counter_add(c, MB_COUNTER_PLAYERS, 5, NULL));
  ASSERT_OK(mb_info(c, &info));
  e = &b.state->clients[info.client_index];
  ASSERT_EQ_U64(mb_load64(&e->added_players), 5);

  /* In flight: step 1 done, step 2 comes after one look; the look changes nothing. */
  mb_add64(&e->added_players, 2);
  mb__broker_tick(&b);
  mb_add64(&b.state->game.total_players, 2);
  mb__broker_tick(&b);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 7);

  /* Killed between the steps: shown 7, truth 10; exact after two looks. */
  mb_add64(&e->added_players, 3);
  ASSERT_EQ_U64(mb__counter_truth(b.state, cfg.max_clients, 0), 10);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 7);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 10);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 10);

  /* Shown 0, truth 1 (an add in flight): a remove of 1 is in range, checked on the truth. */
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_NPCS, 0));
  mb_add64(&e->added_npcs, 1);
  ASSERT_OK(mb_counter_add(c, MB_COUNTER_NPCS, -1, NULL));
  ASSERT_EQ_U64(mb__counter_truth(b.state, cfg.max_clients, 1), 0);
  /* Shown 0 - 1 (mod 2^64) until the add lands, or the reconcile if it never does. */
  mb__broker_tick(&b);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_npcs), 0);
  ASSERT_ERR(mb_counter_add(c, MB_COUNTER_NPCS, -1, NULL), MB_ERANGE);
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* A set between an add's two steps and adds of two clients around a set: nothing is lost, the
 * set counts from the moment of its base, and what each client counted stays counted when its
 * entry goes (its share folded into the base). */
TEST(counter_set_and_add) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c, *d;
  mb_info_t info;
  mb_client_entry_t *e;
  uint64_t v = 0;
  client_config(&cfg, "cset");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone-1", NULL, &c));
  ASSERT_OK(mb_attach(cfg.instance, "zone-2", NULL, &d));
  ASSERT_OK(mb_counter_add(c, MB_COUNTER_PLAYERS, 10, NULL));
  ASSERT_OK(mb_counter_add(d, MB_COUNTER_PLAYERS, 4, NULL));
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_PLAYERS, 100));
  ASSERT_EQ_U64(mb_load64(&b.state->players_base), 86);
  ASSERT_OK(mb_counter_add(d, MB_COUNTER_PLAYERS, 1, &v));
  ASSERT_EQ_U64(v, 101);
  ASSERT_OK(mb_detach(d));
  ASSERT_EQ_U64(mb_load64(&b.state->players_base), 91);
  ASSERT_EQ_U64(mb__counter_truth(b.state, cfg.max_clients, 0), 101);

  /* c's add of 1 has done its share when the set comes; its total after the set. */
  ASSERT_OK(mb_info(c, &info));
  e = &b.state->clients[info.client_index];
  mb_add64(&e->added_players, 1);
  ASSERT_OK(mb_counter_set(c, MB_COUNTER_PLAYERS, 50));
  mb_add64(&b.state->game.total_players, 1);
  ASSERT_EQ_U64(mb__counter_truth(b.state, cfg.max_clients, 0), 50);
  mb__broker_tick(&b);
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load64(&b.state->game.total_players), 50);
  ASSERT_OK(mb_counter_add(c, MB_COUNTER_PLAYERS, -50, &v));
  ASSERT_EQ_U64(v, 0);
  ASSERT_ERR(mb_counter_add(c, MB_COUNTER_PLAYERS, -1, NULL), MB_ERANGE);
  ASSERT_OK(mb_detach(c));
  ASSERT_EQ_U64(mb_load64(&b.state->players_base), 0);
  ASSERT_EQ_U64(mb__counter_truth(b.state, cfg.max_clients, 0), 0);
  mb__broker_stop(&b);
}

TEST(player_slots) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c, *d;
  void *s1, *s2, *s3;
  uint64_t cursor = 0, id, n = 0, i;
  client_config(&cfg, "slot");
  fx_region(&cfg, "players", 64 * 1024, 1, FX_SLOT_SIZE); /* 64 slots */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_attach(cfg.instance, "zone2", NULL, &d));
  ASSERT_OK(mb_player_connect(c, 1001, &s1));
  ASSERT_EQ(((unsigned char *)s1)[0], 0);
  memcpy(s1, "alice", 6);
  ASSERT_OK(mb_player_connect(c, 1001, &s2));
  ASSERT(s1 == s2);
  ASSERT_OK(mb_player_connect(d, 1001, &s3)); /* ids are per client */
  ASSERT(s3 != s1);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 2);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].committed), mb_os_mem_config()->page_size);
  ASSERT_EQ_U64(mb_load64(&mb_test_entry_named(b.state, "zone")->slots_held), 1);
  ASSERT_OK(mb_player_find(c, 1001, &s2));
  ASSERT(s1 == s2);
  ASSERT_ERR(mb_player_find(c, 999, &s2), MB_ENOENT);
  ASSERT_ERR(mb_player_disconnect(c, 999), MB_ENOENT);
  /* Fill the region: 62 more fit, then table_full; many map entries exercise the map. */
  for (i = 0; i < 62; i++)
    ASSERT_OK(mb_player_connect(c, 2000 + i * 64, &s2));
  ASSERT_ERR(mb_player_connect(c, 5, &s2), MB_EFULL);
  while (mb_player_next(c, &cursor, &id, &s2) == 0)
    n++;
  ASSERT_EQ_U64(n, 63);
  for (i = 0; i < 62; i += 2)
    ASSERT_OK(mb_player_disconnect(c, 2000 + i * 64));
  for (i = 1; i < 62; i += 2)
    ASSERT_OK(mb_player_find(c, 2000 + i * 64, &s2));
  ASSERT_OK(mb_player_find(c, 1001, &s2));
  ASSERT_STR_EQ((char *)s2, "alice");
  ASSERT_OK(mb_player_disconnect(c, 1001));
  ASSERT_ERR(mb_player_find(c, 1001, &s2), MB_ENOENT);
  ASSERT_EQ_U64(mb_load64(&mb_test_entry_named(b.state, "zone")->slots_held), 31);
  /* Detach frees every slot the client held. */
  ASSERT_OK(mb_detach(c));
  ASSERT_OK(mb_detach(d));
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 0);
  mb__broker_stop(&b);
}

/* Sweep until the entry `name` is in state `want` (the broker's loop does this every tick). */
#define SWEEP_UNTIL(b, name, want, ms)                                                             \
  WAIT_FOR((mb__broker_sweep(b), entry_state(b, name) == (want)), ms)

TEST(killed_client_is_reaped_after_grace) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  mb_client_entry_t *e;
  int code = -1;
  uint64_t t_dead;
  client_config(&cfg, "kill");
  cfg.grace_period_ms = 300;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k, "hold_players", cfg.instance, "doomed", "1", "5", (char *)NULL));
  WAIT_FOR((e = mb_test_entry_named(b.state, "doomed")) != NULL && mb_load64(&e->slots_held) == 5,
           30000);
  ASSERT_EQ(MB_CLIENT_WORD_STATE(mb_load64(&e->word)), MB_CLIENT_ATTACHED);
  mb__broker_sweep(&b);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 1);
  ASSERT_OK(mb_os_child_kill(&k));
  ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
  /* The OS says it died: noticed at the next sweep, slots kept for the grace period. */
  SWEEP_UNTIL(&b, "doomed", MB_CLIENT_DEAD, 1000);
  t_dead = mb_os_mono_ns();
  ASSERT_EQ(mb_load32(&e->dead_reason), MB_DEAD_EXITED);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 0);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 5);
  /* After the grace period the entry and its slots are freed. */
  SWEEP_UNTIL(&b, "doomed", MB_CLIENT_FREE, 10000);
  ASSERT_GE(mb_os_mono_ns() - t_dead, 250u * 1000000u);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 0);
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_stop(&b);
}

/* The reason the broker exists: a game server killed mid-update restarts under its name and
 * finds its players' slots, bytes intact - once after the broker saw it die, once so fast
 * that the broker has not swept yet (the new process sees the old one is gone itself). */
static void restart_case(int sweep_first) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  mb_client_entry_t *e;
  int code = -1;
  client_config(&cfg, sweep_first ? "rs1" : "rs2");
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_test_spawn(&k, "hold_players", cfg.instance, "zone-7", "100", "40", (char *)NULL));
  WAIT_FOR((e = mb_test_entry_named(b.state, "zone-7")) != NULL && mb_load64(&e->slots_held) == 40,
           30000);
  ASSERT_OK(mb_os_child_kill(&k));
  ASSERT_OK(mb_os_child_wait(&k, 30000, &code));
  if (sweep_first)
    SWEEP_UNTIL(&b, "zone-7", MB_CLIENT_DEAD, 1000);
  ASSERT_EQ(mb_test_run_child(60000, "take_back_players", cfg.instance, "zone-7", "100", "40",
                              (char *)NULL),
            0);
  ASSERT_EQ(mb_load32(&e->takeovers), 0); /* the clean detach freed the entry */
  ASSERT_EQ(entries_in_use(&b), 0);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 0);
  mb__broker_stop(&b);
}

TEST(restarted_client_gets_its_slots_back) {
  restart_case(1);
}

TEST(restarted_client_gets_its_slots_back_before_the_sweep) {
  restart_case(0);
}

/* A missed heartbeat says hung, never dead: the silent client keeps its entry and slots,
 * its calls keep working, and it is no longer hung once it beats again. */
TEST(heartbeat_timeout_marks_hung_not_dead) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c, *t;
  mb_attach_options_t o;
  mb_client_entry_t *e;
  uint32_t i;
  void *slot;
  client_config(&cfg, "hb");
  cfg.heartbeat_timeout_ms = 200;
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  /* A client with the heartbeat thread is never hung though it never ticks. */
  mb_attach_options_init(&o);
  o.heartbeat_ms = 30;
  ASSERT_OK(mb_attach(cfg.instance, "threaded", &o, &t));
  /* One that neither ticks nor has a thread is hung, though still attached. */
  ASSERT_OK(mb_attach(cfg.instance, "silent", NULL, &c));
  ASSERT_OK(mb_player_connect(c, 9, &slot));
  memcpy(slot, "kept", 5);
  e = mb_test_entry_named(b.state, "silent");
  i = (uint32_t)(e - b.state->clients);
  WAIT_FOR((mb__broker_sweep(&b), mb__broker_client_hung(&b, i, mb_load64(&e->word), NULL)), 5000);
  ASSERT_EQ(entry_state(&b, "silent"), MB_CLIENT_ATTACHED);
  ASSERT_EQ(entry_state(&b, "threaded"), MB_CLIENT_ATTACHED);
  ASSERT_EQ(mb__broker_client_hung(
                &b, (uint32_t)(mb_test_entry_named(b.state, "threaded") - b.state->clients),
                mb_load64(&mb_test_entry_named(b.state, "threaded")->word), NULL),
            0);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 2);
  /* Nothing was taken from it: its slot calls work and its bytes are there. */
  ASSERT_OK(mb_player_connect(c, 10, &slot));
  ASSERT_OK(mb_player_find(c, 9, &slot));
  ASSERT_STR_EQ((char *)slot, "kept");
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 2);
  /* It beats again: no longer hung. */
  ASSERT_OK(mb_tick(c));
  mb__broker_sweep(&b);
  ASSERT_EQ(mb__broker_client_hung(&b, i, mb_load64(&e->word), NULL), 0);
  /* A reattach still takes its entry back with its slots. */
  ASSERT_OK(mb_reattach(c, NULL));
  ASSERT_OK(mb_tick(c));
  ASSERT_OK(mb_player_find(c, 9, &slot));
  ASSERT_STR_EQ((char *)slot, "kept");
  ASSERT_EQ(mb_load32(&mb_test_entry_named(b.state, "silent")->takeovers), 1);
  ASSERT_EQ(entry_state(&b, "threaded"), MB_CLIENT_ATTACHED);
  ASSERT_OK(mb_detach(c));
  ASSERT_OK(mb_detach(t));
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_stop(&b);
}

static int log_calls;
static void count_log(void *user, int level, const char *msg) {
  (void)user;
  (void)level;
  (void)msg;
  log_calls++;
}

/* The broker stops and starts again: the client sees it and comes back to the new one. */
TEST(broker_restart) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_info_t info;
  mb_attach_options_t o;
  uint64_t gen;
  client_config(&cfg, "rst");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_info(c, &info));
  gen = info.generation;
  ASSERT_OK(mb_tick(c));
  mb__broker_begin_stop(&b);
  ASSERT_ERR(mb_tick(c), MB_ENOTRUNNING);
  mb__broker_stop(&b);
  ASSERT_ERR(mb_tick(c), MB_ENOTRUNNING);
  /* No broker: reattach fails and may be repeated. */
  mb_attach_options_init(&o);
  o.timeout_ms = 50;
  o.log = count_log;
  log_calls = 0;
  ASSERT_ERR(mb_reattach(c, &o), MB_ENOTRUNNING);
  ASSERT_GE(log_calls, 1);
  ASSERT_LE(log_calls, 2); /* rate-limited: the same message is not repeated */
  ASSERT_ERR(mb_tick(c), MB_ENOTRUNNING);
  ASSERT_ERR(mb_counter_add(c, MB_COUNTER_PLAYERS, 1, NULL), MB_ENOTRUNNING);
  mb_os_sleep_ms(2); /* generations are start times in ms */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_reattach(c, NULL));
  ASSERT_OK(mb_info(c, &info));
  ASSERT_EQ(info.server_status, MB_SERVER_RUNNING);
  ASSERT_GT(info.generation, gen); /* a new broker: the client can tell */
  ASSERT_EQ(info.broker_pid, b.self.pid);
  ASSERT_OK(mb_tick(c));
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* 1,000 attach/detach cycles leave no entry and no slot behind. */
TEST(attach_detach_cycles) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  void *slot;
  int i;
  client_config(&cfg, "cyc");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  for (i = 0; i < 1000; i++) {
    ASSERT_OK(mb_attach(cfg.instance, (i & 1) ? "odd" : "even", NULL, &c));
    ASSERT_OK(mb_player_connect(c, (uint64_t)i, &slot));
    ASSERT_OK(mb_detach(c));
  }
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_sweep(&b);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 0);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].slots_used), 0);
  mb__broker_stop(&b);
}

/* A planned restart: mb_close keeps the entry and slots for the next process of the name. */
TEST(close_keeps_slots_for_the_next_process) {
  mb_config_t cfg;
  mb_broker_t b;
  client_config(&cfg, "cls");
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ(
      mb_test_run_child(60000, "hold_and_close", cfg.instance, "zone-3", "1", "8", (char *)NULL),
      0);
  /* Handed off at once: DEAD, slots kept, no need to wait for the broker to notice. */
  ASSERT_EQ(entry_state(&b, "zone-3"), MB_CLIENT_DEAD);
  ASSERT_EQ(mb_load32(&mb_test_entry_named(b.state, "zone-3")->dead_reason), MB_DEAD_CLOSED);
  ASSERT_EQ(
      mb_test_run_child(60000, "take_back_players", cfg.instance, "zone-3", "1", "8", (char *)NULL),
      0);
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_stop(&b);
}

/* argv: instance name - attach, connect one player, write to its slot, detach. The slot
 * shares a page with the parent's (1 KiB slots): committed by another process's view. */
CHILD(connect_one) {
  mb_client_t *c;
  void *slot;
  if (argc != 2 || mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 100;
  if (mb_player_connect(c, 77, &slot) != 0)
    return 101;
  memset(slot, 0xAB, 1024);
  return mb_detach(c) == 0 ? 0 : 102;
}

TEST(two_processes_share_a_page) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  void *slot;
  client_config(&cfg, "shp");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "first", NULL, &c));
  ASSERT_OK(mb_player_connect(c, 1, &slot)); /* commits page 0 */
  ASSERT_EQ(mb_test_run_child(60000, "connect_one", cfg.instance, "second", (char *)NULL), 0);
  ASSERT_EQ(((unsigned char *)slot)[0], 0); /* its neighbour wrote only its own slot */
  ASSERT_EQ_U64(mb_load64(&b.state->regions[1].committed), mb_os_mem_config()->page_size);
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* Attaching again from the same process: mb_reattach on a live attachment and mb_close then
 * mb_attach both hand the entry over, slots and all. */
TEST(same_process_comes_back) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  void *slot;
  client_config(&cfg, "same");
  cfg.grace_period_ms = 60000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_player_connect(c, 5, &slot));
  memcpy(slot, "five", 5);
  ASSERT_OK(mb_reattach(c, NULL));
  ASSERT_OK(mb_player_find(c, 5, &slot));
  ASSERT_STR_EQ((char *)slot, "five");
  ASSERT_OK(mb_close(c));
  ASSERT_EQ(entry_state(&b, "zone"), MB_CLIENT_DEAD);
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  ASSERT_OK(mb_player_find(c, 5, &slot));
  ASSERT_STR_EQ((char *)slot, "five");
  ASSERT_EQ(mb_load32(&mb_test_entry_named(b.state, "zone")->takeovers), 2);
  ASSERT_OK(mb_detach(c));
  ASSERT_EQ(entries_in_use(&b), 0);
  mb__broker_stop(&b);
}

/* Two attaches under one name at the same moment: one wins, the other is told the name is
 * in use - never two entries of one name. */
typedef struct race_s {
  const char *instance;
  mb_au32 go;
  int rc;
  mb_client_t *c;
} race_t;

static void race_attach(void *arg) {
  race_t *r = arg;
  while (!mb_load32(&r->go)) {
  }
  r->rc = mb_attach(r->instance, "twin", NULL, &r->c);
}

TEST(same_name_at_the_same_moment) {
  mb_config_t cfg;
  mb_broker_t b;
  int round;
  client_config(&cfg, "twin");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  for (round = 0; round < 3000; round++) {
    race_t r[2];
    mb_os_thread_t t[2];
    int k, won = 0;
    for (k = 0; k < 2; k++) {
      memset(&r[k], 0, sizeof r[k]);
      r[k].instance = cfg.instance;
      ASSERT_OK(mb_os_thread_start(&t[k], race_attach, &r[k]));
    }
    mb_store32(&r[0].go, 1);
    mb_store32(&r[1].go, 1);
    for (k = 0; k < 2; k++)
      mb_os_thread_join(&t[k]);
    for (k = 0; k < 2; k++) {
      if (r[k].rc == 0)
        won++;
      else if (r[k].rc != MB_EEXIST && r[k].rc != MB_EBUSY)
        FAIL("round %d: attach %d: %s", round, k, mb_err_name(r[k].rc));
    }
    ASSERT_EQ(won, 1);
    ASSERT_EQ(entries_in_use(&b), 1);
    for (k = 0; k < 2; k++)
      if (r[k].rc == 0)
        ASSERT_OK(mb_detach(r[k].c));
  }
  mb__broker_stop(&b);
}

/* argv: instance - run as another user (nobody): attach must be refused with access_denied
 * by the sections' mode. Exit 10 when it was, 100+ otherwise. */
CHILD(attach_as_other_user) {
  mb_client_t *c = NULL;
  int rc;
  if (argc != 1)
    return 100;
  rc = mb_attach(argv[0], "intruder", NULL, &c);
  if (rc == MB_EACCES && strstr(mb_last_error(), "membroker.") != NULL)
    return 10;
  printf("attach as nobody: %s (%s)\n", mb_err_name(rc), mb_last_error());
  return 101;
}

/* Linux, run as root with setpriv: a user outside the sections' mode and group may not
 * attach, and is told access_denied (not "not running"). Skipped where it cannot be arranged. */
TEST(attach_access_denied) {
  mb_config_t cfg;
  mb_broker_t b;
  int code = -1;
  client_config(&cfg, "acc");
  cfg.section_mode = 0660;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  if (mb_test_run_as_nobody("attach_as_other_user", cfg.instance, &code) != 0) {
    mb__broker_stop(&b);
    SKIP("cannot run a child as another user here");
  }
  ASSERT_EQ(code, 10);
  mb__broker_stop(&b);
}

/* ---- where the broker is: Global\ (service) or Local\ (console) ---------------------------- */

/* The OS's name of instance's control block in the namespace `flags` (MB_OS_SEC_GLOBAL or 0). */
static void state_os_name(const char *instance, int flags, char *buf, size_t size) {
  char obj[MB_OS_NAME_MAX + 1];
  ASSERT_OK(mb__object_name(obj, sizeof obj, instance, NULL));
  ASSERT_OK(mb_os_section_os_name(obj, flags, buf, size));
}

/* 1 if instance's control block exists in the namespace `flags`. */
static int state_exists(const char *instance, int flags) {
  char obj[MB_OS_NAME_MAX + 1];
  mb_os_section_t s;
  int rc;
  ASSERT_OK(mb__object_name(obj, sizeof obj, instance, NULL));
  rc = mb_os_section_open(&s, obj, flags, 0);
  if (rc == MB_ENOENT)
    return 0;
  ASSERT_OK(rc);
  mb_os_section_close(&s);
  return 1;
}

/* A config with a pool "bolts" as well, so pools are opened where the broker was found. */
static void ns_config(mb_config_t *cfg, const char *tag) {
  client_config(cfg, tag);
  fx_pool(cfg, "bolts", 64, 16, 100);
}

/* Everything a game server maps works through client c: the region "world", a player slot
 * in "players", and an object of the pool "bolts" (each in the broker's namespace). */
static void use_everything(mb_broker_t *b, mb_client_t *c) {
  void *base, *slot, *obj;
  uint64_t size;
  mb_pool_t *pool;
  mb_region_map_t *world = mb__broker_region(b, "world");
  ASSERT(world != NULL);
  ASSERT_OK(mb_region(c, "world", &base, &size));
  ASSERT_EQ_U64(size, 256 * 1024);
  memcpy((char *)base + 4096, "seen by the broker", 19);
  ASSERT_STR_EQ((char *)world->base + 4096, "seen by the broker");
  ASSERT_OK(mb_player_connect(c, 4242, &slot));
  memcpy(slot, "bob", 4);
  ASSERT_EQ_U64(mb_load64(&b->state->regions[1].slots_used), 1);
  ASSERT_OK(mb_pool_open(c, "bolts", MB_POOL_NO_CACHE, &pool));
  ASSERT_OK(mb_pool_alloc(pool, &obj));
  memset(obj, 0x5A, 64);
  ASSERT_OK(mb_pool_free(pool, obj));
  ASSERT_OK(mb_player_disconnect(c, 4242));
}

/*
 * The broker b (its block in the namespace `space`: MB_OS_SEC_GLOBAL or 0) is there and not in
 * the other namespace; this process attaches with no flag and uses everything, another process
 * with no flag adds to the shared counter, and `insist` (MB_ATTACH_GLOBAL / MB_ATTACH_LOCAL)
 * finds it too.
 */
static void found_with_and_without_flag(mb_broker_t *b, int space, uint32_t insist) {
  const char *instance = b->cfg.instance;
  mb_client_t *c = NULL;
  mb_attach_options_t o;
  mb_os_child_t k;
  int x = -1;
  if (mb_os_mem_config()->sec_namespaces) { /* the setup itself */
    ASSERT(state_exists(instance, space));
    ASSERT(!state_exists(instance, space ? 0 : MB_OS_SEC_GLOBAL));
  }
  ASSERT_OK(mb_attach(instance, "zone", NULL, &c));
  use_everything(b, c);
  ASSERT_OK(mb_test_spawn(&k, "add_players", instance, "other", "10", (char *)NULL));
  ASSERT_OK(mb_os_child_wait(&k, 60000, &x));
  ASSERT_EQ(x, 0);
  ASSERT_EQ_U64(mb_load64(&b->state->game.total_players), 10);
  ASSERT_OK(mb_detach(c));
  mb_attach_options_init(&o);
  o.flags = insist;
  ASSERT_OK(mb_attach(instance, "zone", &o, &c));
  use_everything(b, c);
  ASSERT_OK(mb_detach(c));
}

/* A broker as the service runs it (Global\ on Windows) is found with no flag - by this
 * process and by a game server in another - and everything it publishes is usable. */
TEST(attach_finds_service_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c = NULL;
  mb_attach_options_t o;
  char name[MB_OS_NAME_MAX + 16];
  ns_config(&cfg, "glb");
  ASSERT_OK(mb__broker_start(&b, &cfg, MB_OS_SEC_GLOBAL));
  found_with_and_without_flag(&b, MB_OS_SEC_GLOBAL, MB_ATTACH_GLOBAL);
  mb_attach_options_init(&o);
  if (mb_os_mem_config()->sec_namespaces) { /* MB_ATTACH_LOCAL looks in Local\ only */
    o.flags = MB_ATTACH_LOCAL;
    ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_ENOTRUNNING);
    state_os_name(cfg.instance, 0, name, sizeof name);
    ASSERT_CONTAINS(mb_last_error(), name);
    ASSERT_CONTAINS(mb_last_error(), "MB_ATTACH_LOCAL looks nowhere else");
  }
  /* A broker that is there but stopping is the answer (not "tried ... and ..."), even though
   * the other namespace has nothing. */
  mb__broker_begin_stop(&b);
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  ASSERT_CONTAINS(mb_last_error(), "shutting down");
  mb__broker_stop(&b);
}

/* A console broker (Local\ on Windows) is found with no flag, and with MB_ATTACH_LOCAL. */
TEST(attach_finds_console_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  ns_config(&cfg, "loc");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  found_with_and_without_flag(&b, 0, MB_ATTACH_LOCAL);
  mb__broker_stop(&b);
}

/* MB_ATTACH_GLOBAL means Global\ only: a console broker is not found, and the message says
 * which name was tried and that no other was. */
TEST(attach_global_refuses_console_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c = NULL;
  mb_attach_options_t o;
  char name[MB_OS_NAME_MAX + 16];
  if (!mb_os_mem_config()->sec_namespaces)
    SKIP("one namespace for shared memory here: MB_ATTACH_GLOBAL has nothing to refuse");
  ns_config(&cfg, "gol");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  mb_attach_options_init(&o);
  o.flags = MB_ATTACH_GLOBAL;
  ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_ENOTRUNNING);
  ASSERT(c == NULL);
  state_os_name(cfg.instance, MB_OS_SEC_GLOBAL, name, sizeof name);
  ASSERT_CONTAINS(mb_last_error(), name);
  ASSERT_CONTAINS(mb_last_error(), "MB_ATTACH_GLOBAL looks nowhere else");
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c)); /* no flag: found */
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

/* Nothing runs: the message names every object tried; bad flags are refused. */
TEST(attach_not_running_names_what_was_tried) {
  mb_config_t cfg;
  mb_client_t *c = NULL;
  mb_attach_options_t o;
  char want[3 * MB_OS_NAME_MAX], global[MB_OS_NAME_MAX + 16], local[MB_OS_NAME_MAX + 16];
  client_config(&cfg, "none");
  ASSERT_ERR(mb_attach(cfg.instance, "zone", NULL, &c), MB_ENOTRUNNING);
  if (mb_os_mem_config()->sec_namespaces) {
    snprintf(want, sizeof want,
             "no broker runs for instance '%s' (tried Global\\membroker.%s.state and "
             "Local\\membroker.%s.state)",
             cfg.instance, cfg.instance, cfg.instance);
  } else {
    snprintf(want, sizeof want,
             "no broker runs for instance '%s' (no control block /membroker.%s.state)",
             cfg.instance, cfg.instance);
  }
  ASSERT_CONTAINS(mb_last_error(), want);
  /* The same through the platform layer's names (what the tests above compare with). */
  state_os_name(cfg.instance, MB_OS_SEC_GLOBAL, global, sizeof global);
  state_os_name(cfg.instance, 0, local, sizeof local);
  ASSERT_CONTAINS(want, global);
  ASSERT_CONTAINS(want, local);
  mb_attach_options_init(&o);
  o.flags = MB_ATTACH_GLOBAL | MB_ATTACH_LOCAL;
  ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "MB_ATTACH_GLOBAL and MB_ATTACH_LOCAL exclude each other");
  o.flags = 1u << 7;
  ASSERT_ERR(mb_attach(cfg.instance, "zone", &o, &c), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "unknown flags 0x80");
}

/* A broker that comes back in the other namespace (a console broker replaced by the service,
 * or the other way round) is found by mb_reattach and mb_attach with no flag, and the client's
 * objects are opened there. A stopped control block that a process still maps (Windows keeps
 * it while a handle is open) does not hide a running broker in the other namespace. */
TEST(reattach_follows_the_broker_to_the_other_namespace) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c = NULL, *d = NULL;
  mb_info_t info;
  mb_os_section_t old;
  char obj[MB_OS_NAME_MAX + 1];
  if (!mb_os_mem_config()->sec_namespaces)
    SKIP("one namespace for shared memory here: a broker cannot move to another");
  ns_config(&cfg, "mov");
  ASSERT_OK(mb__object_name(obj, sizeof obj, cfg.instance, NULL));
  /* Console broker -> service broker: the client maps the stopped Local\ block until it
   * reattaches, and finds the new one in Global\. */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone", NULL, &c));
  use_everything(&b, c);
  mb__broker_begin_stop(&b);
  mb__broker_stop(&b);
  ASSERT_ERR(mb_tick(c), MB_ENOTRUNNING);
  mb_os_sleep_ms(2); /* generations are start times in ms */
  ASSERT_OK(mb__broker_start(&b, &cfg, MB_OS_SEC_GLOBAL));
  ASSERT_OK(mb_reattach(c, NULL));
  ASSERT_OK(mb_info(c, &info));
  ASSERT_EQ(info.server_status, MB_SERVER_RUNNING);
  use_everything(&b, c);
  /* Service broker -> console broker, while this process still holds the stopped Global\
   * block open: a new attach passes over it, and so does the reattach. */
  ASSERT_OK(mb_os_section_open(&old, obj, MB_OS_SEC_GLOBAL, 0));
  mb__broker_begin_stop(&b);
  mb__broker_stop(&b);
  ASSERT(state_exists(cfg.instance, MB_OS_SEC_GLOBAL));
  ASSERT_ERR(mb_attach(cfg.instance, "zone2", NULL, &d), MB_ENOTRUNNING);
  /* The only block there is, and what it says - once. */
  ASSERT_CONTAINS(mb_last_error(), "the broker of instance");
  ASSERT(strstr(mb_last_error(), "not running: broker is not running") == NULL);
  mb_os_sleep_ms(2);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "zone2", NULL, &d));
  use_everything(&b, d);
  ASSERT_OK(mb_reattach(c, NULL));
  use_everything(&b, c);
  ASSERT_OK(mb_detach(d));
  ASSERT_OK(mb_detach(c));
  mb_os_section_close(&old);
  mb__broker_stop(&b);
}

/* The shipped example game server, run as an operator runs it, attaches with no namespace
 * option to a broker as the service runs it (Global\ on Windows) and plays a while. */
TEST(gameserver_sim_finds_the_service_broker) {
#ifdef MB_GAMESERVER_SIM_EXE
  static char out[64 * 1024];
  mb_config_t cfg;
  mb_broker_t b;
  client_config(&cfg, "sim");
  ASSERT_OK(mb__broker_start(&b, &cfg, MB_OS_SEC_GLOBAL));
  ASSERT_EXIT(mb_test_run_exe(MB_GAMESERVER_SIM_EXE, 60000, out, sizeof out, "--instance",
                              cfg.instance, "--players", "5", "--seconds", "0.3", NULL),
              0, out);
  ASSERT(strstr(out, "cannot attach") == NULL);
  mb__broker_sweep(&b);
  ASSERT_EQ(entries_in_use(&b), 0); /* it detached at the end */
  mb__broker_stop(&b);
#else
  SKIP("gameserver_sim is not built here (MSVC)");
#endif
}
