/*
 * test-broker.c - the broker's memory: the published control block (seen from this and from a
 * second process), region commit accounting with player slots across page boundaries,
 * compaction, the single-instance lock and stale objects of a dead broker.
 */
#include "task.h"

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "report.h"

/* The test config (fixture.h) for instance "t<pid><tag>" - world (256 KiB committed), players
 * (1 MiB lazy, 1 KiB slots) - and big (1 MiB lazy, 8 KiB slots). */
static void test_config(mb_config_t *cfg, const char *tag) {
  fx_config_pid(cfg, "t", tag);
  fx_region(cfg, "big", 1024 * 1024, 1, 8192);
  mb__log_open(MB_LOG_ERROR, "");
}

TEST(start_publishes_state) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_section_t s;
  mb_state_t *st = NULL;
  char name[MB_OS_NAME_MAX + 1], msg[MB_STATUS_MSG_MAX];

  test_config(&cfg, "pub");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));
  ASSERT_OK(mb_os_section_open(&s, name, 0, 0));
  ASSERT_OK(mb_os_section_map(&s, 0, 0, (void **)&st));
  ASSERT_OK(mb__state_check(st, s.size));
  ASSERT_EQ(st->broker_pid, b.self.pid);
  ASSERT_EQ(mb_load32(&st->game.server_status), MB_STATUS_RUNNING);
  ASSERT_EQ(st->region_count, 3);
  ASSERT_STR_EQ(st->regions[1].name, "players");
  ASSERT_EQ_U64(st->regions[0].size, 256 * 1024);
  ASSERT_EQ_U64(mb_load64(&st->regions[0].committed), 256 * 1024);
  ASSERT_EQ_U64(mb_load64(&st->regions[1].committed), 0);
  ASSERT_EQ_U64(st->regions[1].slot_count, 1024);
  ASSERT_EQ_U64(st->regions[2].slot_count, 128);
  ASSERT_GE(mb_load64(&st->generation), 1);

  ASSERT_OK(mb__state_write_msg(b.state, "héllo wörld"));
  ASSERT_EQ(mb__state_read_msg(st, msg), strlen("héllo wörld"));
  ASSERT_STR_EQ(msg, "héllo wörld");

  mb__broker_begin_stop(&b);
  ASSERT_EQ(mb_load32(&st->game.server_status), MB_STATUS_SHUTTING_DOWN);
  mb__broker_stop(&b);
  /* Our view outlives the broker's objects and still says "shutting down". */
  ASSERT_EQ(mb_load32(&st->game.server_status), MB_STATUS_SHUTTING_DOWN);
  mb_os_section_unmap(st, s.size);
  mb_os_section_close(&s);
  ASSERT_ERR(mb_os_section_open(&s, name, 0, 0), MB_ENOENT);
}

TEST(status_message_is_cut_at_utf8_boundary) {
  mb_config_t cfg;
  mb_broker_t b;
  char text[400], msg[MB_STATUS_MSG_MAX];
  size_t i, n;
  test_config(&cfg, "msg");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  /* 200 two-byte characters: 400 bytes, cut to 254 (never half a character). */
  for (i = 0; i + 2 < sizeof text; i += 2) {
    text[i] = (char)0xC3;
    text[i + 1] = (char)0xA9;
  }
  text[i] = '\0';
  n = mb__state_read_msg(b.state, msg);
  ASSERT_EQ(n, 0);
  ASSERT_OK(mb__state_write_msg(b.state, text));
  n = mb__state_read_msg(b.state, msg);
  ASSERT_EQ(n, 254);
  ASSERT_EQ((unsigned char)msg[253], 0xA9);
  mb__broker_stop(&b);
}

/* Child: open instance argv[0]'s block, check it, return status*10 + region count. */
CHILD(read_state) {
  mb_os_section_t s;
  mb_state_t *st = NULL;
  char name[MB_OS_NAME_MAX + 1], msg[MB_STATUS_MSG_MAX];
  if (argc != 2 || mb__object_name(name, sizeof name, argv[0], NULL) != 0)
    return 100;
  if (mb_os_section_open(&s, name, 0, 0) != 0)
    return 101;
  if (mb_os_section_map(&s, 0, 0, (void **)&st) != 0)
    return 102;
  if (mb__state_check(st, s.size) != 0)
    return 103;
  if (mb__state_read_msg(st, msg) < 0 || strcmp(msg, argv[1]) != 0)
    return 104;
  if (mb_load64(&st->game.total_players) != 42)
    return 105;
  return (int)mb_load32(&st->game.server_status) * 10 + (int)st->region_count;
}

TEST(state_read_from_second_process) {
  mb_config_t cfg;
  mb_broker_t b;
  test_config(&cfg, "xp");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  mb_store64(&b.state->game.total_players, 42);
  ASSERT_OK(mb__state_write_msg(b.state, "maintenance at 06:00"));
  ASSERT_EQ(
      mb_test_run_child(30000, "read_state", cfg.instance, "maintenance at 06:00", (char *)NULL),
      MB_STATUS_RUNNING * 10 + 3);
  mb__broker_stop(&b);
  /* Gone: the child cannot open it. */
  ASSERT_EQ(mb_test_run_child(30000, "read_state", cfg.instance, "", (char *)NULL), 101);
}

TEST(single_instance) {
  mb_config_t cfg;
  mb_broker_t a, b;
  char want[64];
  test_config(&cfg, "one");
  ASSERT_OK(mb__broker_start(&a, &cfg, 0));
  ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), "already running");
  ASSERT_CONTAINS(mb_last_error(), cfg.instance);
  /* It names the running one: its pid, and a console broker. */
  snprintf(want, sizeof want, "(pid %u, console)", (unsigned)a.self.pid);
  ASSERT_CONTAINS(mb_last_error(), want);
  /* The first one is untouched. */
  ASSERT_EQ(mb_load32(&a.state->game.server_status), MB_STATUS_RUNNING);
  mb__broker_stop(&a);
  /* Once it stopped, a new broker starts. */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  mb__broker_stop(&b);
}

/* A broker for instance argv[0] that runs until it is killed (for live_world_is_kept). */
CHILD(hold_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  int i;
  if (argc != 1)
    return 100;
  fx_config(&cfg, argv[0]);
  fx_no_regions(&cfg);
  mb__log_open(MB_LOG_ERROR, "");
  if (mb__broker_start(&b, &cfg, 0) != 0)
    return 101;
  for (i = 0; i < 60000; i++)
    mb_os_sleep_ms(1);
  mb__broker_stop(&b);
  return 0;
}

/*
 * A broker that holds the instance lock still never replaces a control block whose broker is
 * alive (a broker that took another lock: another version, another lock location): it refuses
 * with MB_EBUSY naming that pid, and the live world is untouched. POSIX: the other lock is made
 * by removing the live broker's lock file (the lock then exists twice).
 */
TEST(live_world_is_kept) {
#if MB_OS_POSIX
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_child_t k;
  mb_os_section_t sec;
  mb_state_t *st = NULL;
  char name[MB_OS_NAME_MAX + 1], lockname[MB_OS_NAME_MAX + 1], file[700], want[80];
  int code;
  test_config(&cfg, "live");
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));
  ASSERT_OK(mb_test_spawn(&k, "hold_broker", cfg.instance, (char *)NULL));
  WAIT_FOR(mb_os_section_open(&sec, name, 0, 0) == 0 &&
               mb_os_section_map(&sec, 0, 0, (void **)&st) == 0 &&
               mb_load32(&st->initialised) == MB_STATE_READY,
           30000);
  snprintf(lockname, sizeof lockname, "membroker.%s.lock", cfg.instance);
  ASSERT_OK(mb_os_lock_path(lockname, file, sizeof file));
  ASSERT_EQ(remove(file), 0);
  ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_EBUSY);
  snprintf(want, sizeof want, "still running (pid %u)", (unsigned)k.pid);
  ASSERT_CONTAINS(mb_last_error(), want);
  ASSERT_EQ(mb_load32(&st->game.server_status), MB_STATUS_RUNNING);
  ASSERT_EQ(mb_os_section_open(&sec, name, 0, 0), 0); /* still there */
  mb_os_section_close(&sec);
  mb_os_child_kill(&k);
  mb_os_child_wait(&k, -1, &code);
  /* Its broker dead, the block is stale: the next start replaces it. */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ(mb_load32(&st->game.server_status), MB_STATUS_STOPPED);
  mb__broker_stop(&b);
#else
  SKIP("the Windows lock is a named mutex: it cannot be taken twice to stage this");
#endif
}

/*
 * A service broker (Windows: in Global\) and a console broker (Windows: in Local\) of one
 * instance exclude each other, whichever starts first, and the one refused names the other's
 * pid and mode - before it made anything.
 */
TEST(single_instance_service_and_console) {
  mb_config_t cfg;
  mb_broker_t a, b;
  char want[64], name[MB_OS_NAME_MAX + 1];
  mb_os_section_t s;
  int service = MB_OS_SEC_GLOBAL | MB_OS_LOCK_SERVICE;
  test_config(&cfg, "svc");
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));

  ASSERT_OK(mb__broker_start(&a, &cfg, service));
  ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_EBUSY);
  snprintf(want, sizeof want, "(pid %u, %s)", (unsigned)a.self.pid,
           MB_OS_WIN ? "Windows service" : "service");
  ASSERT_CONTAINS(mb_last_error(), want);
  ASSERT_CONTAINS(mb_last_error(), "another broker is already running for instance");
  if (MB_OS_WIN) /* the refused one made nothing in Local\ */
    ASSERT_ERR(mb_os_section_open(&s, name, 0, 0), MB_ENOENT);
  ASSERT_EQ(mb_load32(&a.state->game.server_status), MB_STATUS_RUNNING);
  mb__broker_stop(&a);

  ASSERT_OK(mb__broker_start(&a, &cfg, 0));
  ASSERT_ERR(mb__broker_start(&b, &cfg, service), MB_EBUSY);
  snprintf(want, sizeof want, "(pid %u, console)", (unsigned)a.self.pid);
  ASSERT_CONTAINS(mb_last_error(), want);
  if (MB_OS_WIN) /* nor in Global\ */
    ASSERT_ERR(mb_os_section_open(&s, name, MB_OS_SEC_GLOBAL, 0), MB_ENOENT);
  mb__broker_stop(&a);
}

/* Slot owners 1..3 stand for attached clients: their entries say so (a compact frees slots
 * whose owner's entry is free). */
static void fake_owners(mb_broker_t *b) {
  mb_os_procid_t self;
  uint32_t i;
  mb_os_proc_self(&self);
  for (i = 0; i < 3; i++) {
    mb_store64(&b->state->clients[i].start_time, self.start_time);
    mb_store64(&b->state->clients[i].word, MB_CLIENT_WORD(MB_CLIENT_ATTACHED, i + 1, self.pid));
  }
}

TEST(slots_across_pages_and_compact) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t idx[9], freed = 0, ps = mb_os_mem_config()->page_size, per_page;
  int i;

  test_config(&cfg, "slots");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  fake_owners(&b);
  r = mb__broker_region(&b, "players");
  ASSERT(r != NULL);
  per_page = ps / 1024;
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), 0);

  /* One page's worth of slots commits exactly one page; one more crosses into the next. */
  for (i = 0; i < (int)per_page; i++) {
    ASSERT_OK(mb__slot_acquire(r, 1, 1000 + (uint64_t)i, &idx[i]));
    ASSERT_EQ_U64(idx[i], (uint64_t)i);
  }
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), ps);
  ASSERT_OK(mb__slot_acquire(r, 2, 2000, &idx[per_page]));
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), 2 * ps);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), per_page + 1);
  memset(mb__slot_ptr(r, idx[per_page]), 0x5A, 1024);

  /* Only the owner may release. */
  ASSERT_ERR(mb__slot_release(r, idx[per_page], 1), MB_EACCES);
  ASSERT_ERR(mb__slot_release(r, 999999, 2), MB_ERANGE);
  ASSERT_OK(mb__slot_release(r, idx[per_page], 2));

  /* The second page holds nothing now: compact gives it back, the first page stays. */
  if (mb_os_mem_config()->shared_decommit) {
    ASSERT_OK(mb__broker_compact(&b, &freed));
    ASSERT_EQ_U64(freed, ps);
    ASSERT_EQ_U64(mb_load64(&r->desc->committed), ps);
  } else {
    ASSERT_ERR(mb__broker_compact(&b, &freed), MB_ENOTSUP);
    ASSERT_EQ_U64(freed, 0);
  }
  ASSERT_EQ_U64(mb_load64(&r->desc->peak_committed), 2 * ps);

  /* Re-acquiring lands on the freed slot again, and it reads zero. */
  ASSERT_OK(mb__slot_acquire(r, 2, 2001, &idx[per_page]));
  ASSERT_EQ_U64(idx[per_page], per_page);
  ASSERT_EQ(((unsigned char *)mb__slot_ptr(r, idx[per_page]))[100], 0);

  ASSERT_OK(mb__slot_release_owner(r, 1, &freed));
  ASSERT_EQ_U64(freed, per_page);
  ASSERT_OK(mb__slot_release_owner(r, 2, &freed));
  ASSERT_EQ_U64(freed, 1);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 0);
  if (mb_os_mem_config()->shared_decommit) {
    ASSERT_OK(mb__broker_compact(&b, &freed));
    ASSERT_EQ_U64(mb_load64(&r->desc->committed), 0);
  }
  mb__broker_stop(&b);
}

TEST(slot_spanning_two_pages) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t i0, i1, ps = mb_os_mem_config()->page_size;

  test_config(&cfg, "span");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "big");
  ASSERT(r != NULL);
  ASSERT_OK(mb__slot_acquire(r, 1, 1, &i0));
  ASSERT_OK(mb__slot_acquire(r, 1, 2, &i1));
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), 2 * 8192 / ps * ps);
  memset(mb__slot_ptr(r, i1), 0xEE, 8192); /* every byte of the slot is usable */
  ASSERT_OK(mb__slot_release(r, i0, 1));
  ASSERT_OK(mb__slot_release(r, i1, 1));
  mb__broker_stop(&b);
}

TEST(slots_full) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t i, idx;
  test_config(&cfg, "full");
  fx_region(&cfg, "big", 64 * 1024, 1, 8192); /* 8 slots of 8 KiB */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "big");
  for (i = 0; i < 8; i++)
    ASSERT_OK(mb__slot_acquire(r, 3, i, &idx));
  ASSERT_ERR(mb__slot_acquire(r, 3, 99, &idx), MB_EFULL);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 8);
  ASSERT_ERR(mb__slot_acquire(mb__broker_region(&b, "world"), 3, 1, &idx), MB_EINVAL);
  mb__broker_stop(&b);
}

TEST(stale_block_of_dead_broker) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_section_t s;
  mb_state_t *old = NULL;
  char name[MB_OS_NAME_MAX + 1];
  uint64_t size = (sizeof(mb_state_t) + 65535) / 65536 * 65536; /* whole granules */

  test_config(&cfg, "stale");
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));
  mb_os_section_unlink(name, 0);
  /* What a killed broker leaves: a published block, a generation later than any start time
   * in ms (so the next must be exactly one more), status running. */
  ASSERT_OK(mb_os_section_create(&s, name, size, 0, NULL));
  ASSERT_OK(mb_os_section_map(&s, 0, 1, (void **)&old));
  old->magic = MB_STATE_MAGIC;
  old->layout_version = MB_LAYOUT_VERSION;
  old->broker_pid = 1;
  mb_store64(&old->generation, UINT64_C(1) << 60);
  mb_store32(&old->game.server_status, MB_STATUS_RUNNING);
  mb_store32(&old->initialised, MB_STATE_READY);

  if (mb_os_mem_config()->names_persist) {
    /* POSIX: the object outlives its creator; the new broker purges it. */
    mb_os_section_close(&s);
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    ASSERT_EQ(b.stale_purged, 1);
    ASSERT_EQ_U64(mb_load64(&b.state->generation), (UINT64_C(1) << 60) + 1);
    /* A game server still mapping the old block is told it stopped. */
    ASSERT_EQ(mb_load32(&old->game.server_status), MB_STATUS_STOPPED);
    mb__broker_stop(&b);
  } else {
    /* Windows: a name lives while a handle is open; one held by an old game server makes
     * the start wait, then fail with a clear message - never mix with the old block. */
    ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_EBUSY);
    ASSERT_CONTAINS(mb_last_error(), "still open");
    ASSERT_EQ(mb_load32(&old->game.server_status), MB_STATUS_STOPPED);
    mb_os_section_close(&s);
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    mb__broker_stop(&b);
  }
  mb_os_section_unmap(old, size);
}

TEST(commit_limit) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t idx, ps = mb_os_mem_config()->page_size, at_start;
  unsigned i;

  test_config(&cfg, "lim");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  at_start = mb__broker_committed(&b);
  /* Control block + world (256 KiB) + the slot tables of the two lazy regions. */
  ASSERT_GE(at_start, b.state_sec.size + 256 * 1024);
  ASSERT_EQ_U64(mb_load64(&b.state->game.commit_limit), 0);
  mb__broker_stop(&b);

  /* Too small for what is committed at start: refused, nothing left behind. */
  cfg.max_committed = at_start - ps;
  ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "limits.max_committed");

  /* Room for exactly one more page: the first page of slots fits, the next is refused. */
  cfg.max_committed = at_start + ps;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  for (i = 0; i < ps / 1024; i++)
    ASSERT_OK(mb__slot_acquire(r, 1, i, &idx));
  ASSERT_EQ_U64(mb__broker_committed(&b), at_start + ps);
  ASSERT_ERR(mb__slot_acquire(r, 1, 99, &idx), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "limits.max_committed");
  ASSERT_EQ_U64(mb__broker_committed(&b), at_start + ps);
  ASSERT_EQ_U64(mb_load64(&b.state->game.committed_peak), at_start + ps);
  ASSERT_EQ_U64(mb_load64(&r->desc->commit_failures), 1);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), ps / 1024);
  mb__broker_stop(&b);
}

TEST(commit_failure_is_an_error_not_a_crash) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t idx = 77;
  test_config(&cfg, "cfail");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  mb_os_inject_commit_failures(1);
  ASSERT_ERR(mb__slot_acquire(r, 1, 5, &idx), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "commit");
  ASSERT_EQ_U64(idx, 77); /* untouched on failure */
  ASSERT_EQ_U64(mb_load64(&r->desc->commit_failures), 1);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), 0);
  /* Nothing leaked: the same slot is handed out once the OS agrees again. */
  ASSERT_OK(mb__slot_acquire(r, 1, 5, &idx));
  ASSERT_EQ_U64(idx, 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 1);
  mb__broker_stop(&b);
}

TEST(commit_failure_at_start_releases_everything) {
  mb_config_t cfg;
  mb_broker_t b;
  char name[MB_OS_NAME_MAX + 1];
  mb_os_section_t s;
  test_config(&cfg, "sfail");
  /* The players slot table is committed at start: refuse it. */
  mb_os_inject_commit_failures(1);
  ASSERT_ERR(mb__broker_start(&b, &cfg, 0), MB_ENOSPC);
  mb_os_inject_commit_failures(0);
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, "world"));
  ASSERT_ERR(mb_os_section_open(&s, name, 0, 0), MB_ENOENT);
  ASSERT_OK(mb__object_name(name, sizeof name, cfg.instance, NULL));
  ASSERT_ERR(mb_os_section_open(&s, name, 0, 0), MB_ENOENT);
  /* And the lock is free again. */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  mb__broker_stop(&b);
}

/* Claims start at the region's free hint; a release lowers it, so slots stay lowest-first,
 * and a hint left too high (raised past a slot freed meanwhile) never makes a claim fail
 * while a slot is free. */
TEST(slot_free_hint) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t i, idx;
  test_config(&cfg, "hint");
  fx_region(&cfg, "big", 64 * 1024, 1, 8192); /* 8 slots of 8 KiB */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "big");
  for (i = 0; i < 6; i++) {
    ASSERT_OK(mb__slot_acquire(r, 3, i, &idx));
    ASSERT_EQ_U64(idx, i);
  }
  ASSERT_EQ_U64(mb_load64(&r->desc->free_hint), 6);
  ASSERT_OK(mb__slot_release(r, 4, 3));
  ASSERT_OK(mb__slot_release(r, 2, 3));
  ASSERT_EQ_U64(mb_load64(&r->desc->free_hint), 2);
  ASSERT_OK(mb__slot_acquire(r, 3, 10, &idx));
  ASSERT_EQ_U64(idx, 2);
  ASSERT_OK(mb__slot_acquire(r, 3, 11, &idx));
  ASSERT_EQ_U64(idx, 4);
  /* 6 and 7 left; take them, free 1, and leave the hint past everything. */
  ASSERT_OK(mb__slot_acquire(r, 3, 12, &idx));
  ASSERT_OK(mb__slot_acquire(r, 3, 13, &idx));
  ASSERT_OK(mb__slot_release(r, 1, 3));
  mb_store64(&r->desc->free_hint, 7);
  ASSERT_OK(mb__slot_acquire(r, 3, 14, &idx));
  ASSERT_EQ_U64(idx, 1);
  ASSERT_ERR(mb__slot_acquire(r, 3, 15, &idx), MB_EFULL);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), 8);
  mb__broker_stop(&b);
}

/* One event, one line: text from outside (a status message, a client name) cannot forge
 * log lines with control characters. */
TEST(log_line_cannot_be_forged) {
  char path[128], line[512];
  FILE *f;
  int lines = 0;
  snprintf(path, sizeof path, "%s.log", mb_test_name(line, sizeof line, "log"));
  ASSERT_OK(mb__log_open(MB_LOG_INFO, path));
  mb_log_info("status message set to \"%s\"", "ok\n2026-01-01T00:00:00.000Z error fake\r\x1b[2J");
  mb__log_close();
  f = fopen(path, "r");
  ASSERT(f != NULL);
  while (fgets(line, sizeof line, f) != NULL) {
    lines++;
    ASSERT_CONTAINS(line, "ok?2026-01-01T00:00:00.000Z error fake??[2J\"\n");
  }
  fclose(f);
  remove(path);
  ASSERT_EQ(lines, 1);
}

/* A page left BUSY by a process killed while committing it does not stop claims: they go on
 * past it (after a bounded wait), and fail only if no slot at all can be had. */
TEST(busy_page_is_skipped) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  uint64_t idx, per_page;
  test_config(&cfg, "busy");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  r = mb__broker_region(&b, "players");
  per_page = mb_os_mem_config()->page_size / r->desc->slot_size;
  mb_store32(&mb__region_pages(r->desc, r->base)[0], MB_PAGE_BUSY);
  ASSERT_OK(mb__slot_acquire(r, 1, 1, &idx));
  ASSERT_EQ_U64(idx, per_page); /* the first slot of page 1 */
  mb__broker_stop(&b);
}

/*
 * A page a client left locked when it was killed in the middle of committing it (its word says
 * how far it got: charged), and one locked by a holder that cannot exist (forged): claims go
 * past them at once instead of waiting, and the broker's next tick settles them - the commit
 * finished and charged once, the forged lock cleared - after which claims start there again.
 */
TEST(page_of_dead_committer_is_settled) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_region_map_t *r;
  mb_au32 *pages;
  uint64_t idx, ps = mb_os_mem_config()->page_size, per_page, total;
  test_config(&cfg, "dead");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  fake_owners(&b);
  r = mb__broker_region(&b, "players");
  pages = mb__region_pages(r->desc, r->base);
  per_page = ps / r->desc->slot_size;
  /* Client 5 (entry 4): dead, its process gone; it died after charging page 0. */
  mb_store64(&b.state->clients[4].dead_since_ns, mb_os_mono_ns()); /* in its grace period */
  mb_store64(&b.state->clients[4].word, MB_CLIENT_WORD(MB_CLIENT_DEAD, 1, 0x7FFFFFF0u));
  total = mb_load64(&b.state->game.committed_total);
  ASSERT_OK(mb__commit_charge(b.state, ps));
  mb__region_account(r->desc, (int64_t)ps);
  mb_store32(&pages[0], MB_PAGE_BUSY | (5u << MB_PAGE_HOLDER_SHIFT) | MB_PAGE_CHARGED);
  /* Holder 300 cannot exist. */
  mb_store32(&pages[1], MB_PAGE_BUSY | (300u << MB_PAGE_HOLDER_SHIFT));
  /* A claim does not wait on either: it goes on to page 2 at once. */
  ASSERT_OK(mb__slot_acquire(r, 1, 1, &idx));
  ASSERT_EQ_U64(idx, 2 * per_page);
  /* The broker's tick settles both: page 0 committed (charged once), page 1 free. */
  mb__broker_tick(&b);
  ASSERT_EQ_U64(mb_load32(&pages[0]), MB_PAGE_COMMITTED);
  ASSERT_EQ_U64(mb_load32(&pages[1]), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->committed), 2 * ps);
  ASSERT_EQ_U64(mb_load64(&b.state->game.committed_total), total + 2 * ps);
  ASSERT_EQ(MB_CLIENT_WORD_STATE(mb_load64(&b.state->clients[4].word)), MB_CLIENT_DEAD);
  /* Claims start at page 0 again. */
  for (idx = 0; idx < per_page; idx++) {
    uint64_t got;
    ASSERT_OK(mb__slot_acquire(r, 1, 10 + idx, &got));
    ASSERT_EQ_U64(got, idx);
  }
  ASSERT_EQ_U64(mb_load32(&pages[0]), MB_PAGE_COMMITTED | per_page);
  ASSERT_OK(mb__slot_acquire(r, 1, 101, &idx));
  ASSERT_EQ_U64(idx, per_page);
  /* Users forged high are recounted from the owners by compact; a slot whose owner cannot be
   * a client (300) or whose owner's entry is free (10) is given back. */
  mb_store32(&pages[0], MB_PAGE_COMMITTED | 77);
  mb_store64(&mb__region_slots(r->desc, r->base)[per_page + 1].owner, 300);
  mb_store64(&mb__region_slots(r->desc, r->base)[per_page + 2].owner, 10);
  (void)mb__broker_compact(&b, &total);
  ASSERT_EQ_U64(mb_load32(&pages[0]), MB_PAGE_COMMITTED | per_page);
  ASSERT_EQ_U64(mb_load32(&pages[1]), MB_PAGE_COMMITTED | 1);
  ASSERT_EQ_U64(mb_load64(&mb__region_slots(r->desc, r->base)[per_page + 1].owner), 0);
  ASSERT_EQ_U64(mb_load64(&mb__region_slots(r->desc, r->base)[per_page + 2].owner), 0);
  ASSERT_EQ_U64(mb_load64(&r->desc->slots_used), per_page + 2);
  mb__broker_stop(&b);
}

/* Issue 14: the slot tables the broker commits at start are in its committed total and shown
 * per region as table_bytes (a lazy slotted region reports 0 committed: its slots' pages), of
 * exactly the size config.c charges against limits.max_committed. */
TEST(slot_tables_reported) {
  mb_config_t cfg;
  mb_broker_t b;
  cJSON *arr, *r;
  uint64_t want = 0, tables = 0;
  int i = 0;

  test_config(&cfg, "tbl");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT((arr = mb__report_regions(&b)) != NULL);
  ASSERT_EQ(cJSON_GetArraySize(arr), cfg.nregions);
  cJSON_ArrayForEach(r, arr) {
    const mb_region_cfg_t *rc = &cfg.regions[i++];
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "table_bytes");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "committed");
    ASSERT(cJSON_IsNumber(t) && cJSON_IsNumber(c));
    ASSERT_EQ_U64((uint64_t)t->valuedouble, mb__config_slot_table(rc));
    ASSERT_EQ_U64((uint64_t)c->valuedouble, rc->lazy ? 0 : rc->size);
    if (rc->slot_size != 0)
      ASSERT_GT((uint64_t)t->valuedouble, 0);
    tables += (uint64_t)t->valuedouble;
    want += (uint64_t)c->valuedouble + (uint64_t)t->valuedouble;
  }
  ASSERT_GT(tables, 0);
  ASSERT_EQ_U64(mb__broker_committed(&b), b.state_sec.size + want);
  cJSON_Delete(arr);
  mb__broker_stop(&b);
}
