/*
 * test-death.c - death comes from the OS, a missed heartbeat only says hung (DESIGN.md,
 * "Failure and trust model"). A broker runs in this test process; game servers are child
 * processes that attach, take a player slot and then never beat.
 *
 *  - A killed client is dead as soon as the OS says so: the broker's loop waits on its
 *    process (watch.c) and no sweep of the tick is needed.
 *  - A client that stops beating but lives (stopped with SIGSTOP on POSIX; on Windows it just
 *    never calls mb_tick and has no heartbeat thread) is hung: logged once, shown so by
 *    status, still attached with its slots; killed, it becomes dead (reason "exited").
 *  - A process whose main thread ended with pthread_exit (Linux shows its leader `Z`) while
 *    another thread works is alive: attached across sweeps, `evict` refuses it, a same-name
 *    attach gets MB_EEXIST; when its last thread returns it is dead.
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _DEFAULT_SOURCE 1
#endif

#include "task.h"

#if MB_OS_POSIX
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include <uv.h>

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "report.h"
#include "watch.h"

/* The test config (fixture.h) for instance "d<pid><tag>" with its lazy slotted region
 * "players" only, the heartbeat check off, a grace period long enough that no dead entry is
 * freed while a test looks at it. */
static void death_config(mb_config_t *cfg, const char *tag) {
  fx_config_pid(cfg, "d", tag);
  fx_region_drop(cfg, "world");
  cfg->heartbeat_timeout_ms = 0;
  cfg->grace_period_ms = 600000;
  mb__log_open(MB_LOG_ERROR, "");
}

/* The game server child, killed at exit if a failed assertion ends the test first (it may be
 * stopped, and then could not notice its parent is gone). */
static mb_os_child_t victim;
static int victim_running;

static void kill_victim(void) {
  int code;
  if (victim_running) {
    mb_os_child_kill(&victim);
#if MB_OS_POSIX
    kill((pid_t)victim.pid, SIGCONT);
#endif
    mb_os_child_wait(&victim, 30000, &code);
    victim_running = 0;
  }
}

/* argv: instance name parent_pid - attach without a heartbeat thread, connect player 7,
 * write its bytes, then never beat; exit when the parent is gone. */
CHILD(attach_and_idle) {
  mb_client_t *c;
  mb_os_procid_t parent;
  void *slot;
  if (argc != 3 || mb_os_proc_query((uint32_t)strtoul(argv[2], NULL, 10), &parent) != 0)
    return 100;
  if (mb_attach(argv[0], argv[1], NULL, &c) != 0)
    return 101;
  if (mb_player_connect(c, 7, &slot) != 0)
    return 102;
  memcpy(slot, "player 7", 9);
  while (mb_os_proc_alive(&parent) == 1)
    mb_os_sleep_ms(20);
  return 0;
}

/* Start the child `name` and wait until it is attached and holds its slot; its entry index. */
static uint32_t start_victim(mb_broker_t *b, const char *name) {
  mb_os_procid_t self;
  mb_client_entry_t *e;
  char pid[32];
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  atexit(kill_victim);
  ASSERT_OK(mb_test_spawn(&victim, "attach_and_idle", b->cfg.instance, name, pid, (char *)NULL));
  victim_running = 1;
  WAIT_FOR((e = mb_test_entry_named(b->state, name)) != NULL &&
               MB_CLIENT_WORD_STATE(mb_load64(&e->word)) == MB_CLIENT_ATTACHED &&
               mb_load64(&e->slots_held) == 1,
           30000);
  return (uint32_t)(e - b->state->clients);
}

static uint32_t state_of(mb_broker_t *b, uint32_t i) {
  return MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word));
}

static void on_nothing(void *arg) {
  (void)arg;
}

/* 1 if the OS lets a loop wait for the exit of process `pid` (a descriptor or a notification;
 * mb_os_proc_watch_fd, mb_os_proc_watch_notify): whether the broker can be required to. */
static int exit_waitable(uint32_t pid) {
  mb_os_procid_t id;
  intptr_t probe;
  int can;
  ASSERT_OK(mb_os_proc_query(pid, &id));
  ASSERT_OK(mb_os_proc_watch(&id, &probe));
  can = mb_os_proc_watch_fd(probe) >= 0 || mb_os_proc_watch_notify(probe, on_nothing, NULL) == 0;
  mb_os_proc_watch_close(probe);
  return can;
}

static void on_deadline(uv_timer_t *t) {
  (void)t; /* only wakes uv_run(UV_RUN_ONCE) so the loop below can look at its deadline */
}

/*
 * The broker's loop waits on the client's process (pidfd / process handle). The test sweeps
 * once, so the watch is open and armed, kills the client and then only runs the loop: no
 * tick, no sweep of its own. The entry turns dead (reason exited) because the OS said so;
 * its slot is kept for the grace period.
 */
TEST(killed_client_is_dead_without_a_sweep) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_watch_t w;
  uv_loop_t loop;
  uv_timer_t tick;
  uint64_t deadline;
  uint32_t i;
  int code;
  death_config(&cfg, "k");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ(uv_loop_init(&loop), 0);
  memset(&w, 0, sizeof w);
  ASSERT_OK(mb__watch_start(&w, &loop, &b));
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_deadline, 100, 100);

  i = start_victim(&b, "victim");
  mb__broker_sweep(&b); /* opens and arms its watch; the last sweep of this test */
  if (!exit_waitable(victim.pid)) {
    kill_victim();
    mb__watch_stop(&w);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    mb__broker_stop(&b);
    SKIP("the OS gives no waitable process exit here: the broker polls each tick");
  }
  ASSERT_STR_EQ(mb__broker_client_watch(&b, i, mb_load64(&b.state->clients[i].word)), "os");
  ASSERT_EQ(state_of(&b, i), MB_CLIENT_ATTACHED);
  ASSERT_EQ_U64(w.exits, 0);

  ASSERT_OK(mb_os_child_kill(&victim));
  deadline = mb_os_mono_ns() + UINT64_C(30000000000);
  while (state_of(&b, i) != MB_CLIENT_DEAD) {
    if (mb_os_mono_ns() > deadline)
      FAIL("entry %u still in state %u 30 s after the kill", (unsigned)i,
           (unsigned)state_of(&b, i));
    uv_run(&loop, UV_RUN_ONCE);
  }
  ASSERT_GE(w.exits, 1);
  ASSERT_EQ(mb_load32(&b.state->clients[i].dead_reason), MB_DEAD_EXITED);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 0);
  ASSERT_EQ_U64(mb_load64(&b.state->clients[i].slots_held), 1);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[0].slots_used), 1);
  ASSERT_OK(mb_os_child_wait(&victim, 30000, &code));
  victim_running = 0;

  /* The loop's handles all close: no poll left behind for the dropped watch. */
  mb__watch_stop(&w);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  mb__broker_stop(&b);
}

/* Lines of the file `path` that contain `needle`. */
static int count_lines(const char *path, const char *needle) {
  char line[2048];
  int n = 0;
  FILE *f;
  ASSERT_OK(mb_os_file_open(path, "r", &f));
  while (fgets(line, sizeof line, f) != NULL)
    n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

/* The `clients` report's table entry with index i, or NULL. */
static const cJSON *report_entry(const cJSON *clients, uint32_t i) {
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(clients, "table")) {
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "index");
    if (cJSON_IsNumber(idx) && idx->valuedouble == (double)i)
      return e;
  }
  return NULL;
}

/*
 * A client whose heartbeat stops while its process lives is hung, not dead: it stays
 * attached with its slot through any number of sweeps, status shows it hung with the age of
 * its heartbeat, the log says so once. Killed, it is dead (exited), its slot kept.
 */
TEST(silent_client_is_hung_until_its_process_exits) {
  mb_config_t cfg;
  mb_broker_t b;
  cJSON *r;
  const cJSON *e;
  char log_path[256];
  uint32_t i;
  int k, code;
  death_config(&cfg, "h");
  cfg.heartbeat_timeout_ms = 200;
  mb_test_name(log_path, sizeof log_path, "hung.log");
  (void)mb_os_file_remove(log_path);
  ASSERT_OK(mb__log_open(MB_LOG_INFO, log_path));
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  i = start_victim(&b, "frozen");
#if MB_OS_POSIX
  ASSERT_EQ(kill((pid_t)victim.pid, SIGSTOP), 0); /* hung for real: not even its threads run */
#endif
  WAIT_FOR((mb__broker_sweep(&b),
            mb__broker_client_hung(&b, i, mb_load64(&b.state->clients[i].word), NULL)),
           30000);
  for (k = 0; k < 5; k++) /* however many sweeps: still attached, nothing taken */
    mb__broker_sweep(&b);
  ASSERT_EQ(state_of(&b, i), MB_CLIENT_ATTACHED);
  ASSERT_EQ(mb__broker_client_hung(&b, i, mb_load64(&b.state->clients[i].word), NULL), 1);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 1);
  ASSERT_EQ_U64(mb_load64(&b.state->clients[i].slots_held), 1);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[0].slots_used), 1);

  ASSERT((r = mb__report_clients(&b)) != NULL);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(r, "hung")->valuedouble, 1);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(r, "attached")->valuedouble, 1);
  ASSERT((e = report_entry(r, i)) != NULL);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(e, "state")->valuestring, "attached");
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "hung")));
  ASSERT_GE(cJSON_GetObjectItemCaseSensitive(e, "heartbeat_age_ms")->valuedouble, 200);
  ASSERT_GE(cJSON_GetObjectItemCaseSensitive(e, "hung_for_ms")->valuedouble, 0);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(e, "slots_held")->valuedouble, 1);
  ASSERT(cJSON_GetObjectItemCaseSensitive(e, "dead_reason") == NULL);
  cJSON_Delete(r);

  /* Now its process goes: dead, because the OS says so, its slot kept for a comeback. */
  ASSERT_OK(mb_os_child_kill(&victim));
  WAIT_FOR((mb__broker_sweep(&b), state_of(&b, i) == MB_CLIENT_DEAD), 30000);
  ASSERT_EQ(mb_load32(&b.state->clients[i].dead_reason), MB_DEAD_EXITED);
  ASSERT_EQ_U64(mb_load64(&b.state->clients[i].slots_held), 1);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[0].slots_used), 1);
  ASSERT_OK(mb_os_child_wait(&victim, 30000, &code));
  victim_running = 0;
  ASSERT((r = mb__report_clients(&b)) != NULL);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(r, "hung")->valuedouble, 0);
  ASSERT((e = report_entry(r, i)) != NULL);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(e, "dead_reason")->valuestring, "exited");
  ASSERT(cJSON_GetObjectItemCaseSensitive(e, "hung") == NULL);
  cJSON_Delete(r);
  mb__broker_stop(&b);

  mb__log_open(MB_LOG_ERROR, "");
  ASSERT_EQ(count_lines(log_path, "'frozen'"), 3); /* attached once, hung once, dead once */
  ASSERT_EQ(count_lines(log_path, "attached as client"), 1);
  ASSERT_EQ(count_lines(log_path, "is hung: no heartbeat for"), 1);
  ASSERT_EQ(count_lines(log_path, "is dead: its process exited"), 1);
  ASSERT_OK(mb_os_file_remove(log_path));
}

#if MB_OS_POSIX
/* The state letter of /proc/<pid>/stat, or 0 if it cannot be read. */
static char proc_state(uint32_t pid) {
  char path[64], buf[512];
  const char *p;
  ssize_t n;
  int fd;
  snprintf(path, sizeof path, "/proc/%u/stat", (unsigned)pid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' ? p[2] : 0;
}

static pthread_t zl_main;
static mb_client_t *zl_client;
static const char *zl_flag;
static mb_os_procid_t zl_parent;

/* The worker: waits for the main thread to end, then works on (connects player 8, so the
 * parent sees it live), and returns - the process's last thread - once the flag file exists
 * or the parent is gone. */
static void *zl_worker(void *arg) {
  void *slot;
  (void)arg;
  if (pthread_join(zl_main, NULL) != 0)
    exit(110);
  if (mb_player_connect(zl_client, 8, &slot) != 0)
    exit(111);
  memcpy(slot, "player 8", 9);
  while (access(zl_flag, F_OK) != 0 && mb_os_proc_alive(&zl_parent) == 1)
    mb_os_sleep_ms(20);
  return NULL;
}
#endif

/* argv: instance name flag_path parent_pid - attach, connect player 7, start a worker, end the
 * main thread with pthread_exit; the worker goes on (zl_worker). */
CHILD(zombie_leader) {
#if MB_OS_POSIX
  pthread_t t;
  void *slot;
  if (argc != 4 || mb_os_proc_query((uint32_t)strtoul(argv[3], NULL, 10), &zl_parent) != 0)
    return 100;
  if (mb_attach(argv[0], argv[1], NULL, &zl_client) != 0)
    return 101;
  if (mb_player_connect(zl_client, 7, &slot) != 0)
    return 102;
  memcpy(slot, "player 7", 9);
  zl_flag = argv[2];
  zl_main = pthread_self();
  if (pthread_create(&t, NULL, zl_worker, NULL) != 0)
    return 103;
  pthread_exit(NULL);
#else
  (void)argc;
  (void)argv;
  return 100;
#endif
}

/*
 * Linux keeps a thread-group leader that called pthread_exit as a zombie (`Z` in
 * /proc/<pid>/stat) while its other threads run. That process is alive: the OS layer says so,
 * the sweeps keep it attached with its slots, `evict` refuses it as busy, a same-name attach
 * gets MB_EEXIST. When its last thread returns, the process exits and is seen dead.
 */
TEST(zombie_leader_with_live_threads_is_alive) {
#if MB_OS_POSIX
  mb_config_t cfg;
  mb_broker_t b;
  mb_broker_evicted_t ev;
  mb_client_entry_t *e;
  mb_client_t *d = NULL;
  mb_os_procid_t self, id;
  char pid[32], flag[256];
  uint32_t i;
  int k, code;
  FILE *f;
  death_config(&cfg, "z");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  mb_test_name(flag, sizeof flag, "zleader.go");
  (void)mb_os_file_remove(flag);
  atexit(kill_victim);
  ASSERT_OK(
      mb_test_spawn(&victim, "zombie_leader", cfg.instance, "zleader", flag, pid, (char *)NULL));
  victim_running = 1;
  /* Two slots: the second one connected by the worker after the main thread ended. */
  WAIT_FOR((e = mb_test_entry_named(b.state, "zleader")) != NULL && mb_load64(&e->slots_held) == 2,
           30000);
  i = (uint32_t)(e - b.state->clients);
  WAIT_FOR(proc_state(victim.pid) == 'Z', 30000); /* the case under test, really there */

  ASSERT_OK(mb_os_proc_query(victim.pid, &id));
  ASSERT_EQ(mb_os_proc_alive(&id), 1);
  for (k = 0; k < 5; k++)               /* the first sweep opens its watch, asking /proc first */
    ASSERT_EQ(mb__broker_sweep(&b), 0); /* nothing changed */
  ASSERT_EQ(state_of(&b, i), MB_CLIENT_ATTACHED);
  ASSERT_ERR(mb__broker_evict(&b, i, &ev), MB_EBUSY);
  ASSERT_ERR(mb_attach(cfg.instance, "zleader", NULL, &d), MB_EEXIST);
  ASSERT(d == NULL);
  mb__broker_sweep(&b);
  ASSERT_EQ(state_of(&b, i), MB_CLIENT_ATTACHED);
  ASSERT_EQ_U64(mb_load64(&b.state->clients[i].slots_held), 2);
  ASSERT_EQ(mb_load32(&b.state->clients_attached), 1);
  ASSERT_EQ(proc_state(victim.pid), 'Z');

  /* The last thread returns: the process exits, and the broker sees it dead. */
  ASSERT_OK(mb_os_file_open(flag, "w", &f));
  fclose(f);
  WAIT_FOR((mb__broker_sweep(&b), state_of(&b, i) == MB_CLIENT_DEAD), 30000);
  ASSERT_EQ(mb_load32(&b.state->clients[i].dead_reason), MB_DEAD_EXITED);
  ASSERT_EQ(mb_os_proc_alive(&id), 0);
  ASSERT_OK(mb_os_child_wait(&victim, 30000, &code));
  victim_running = 0;
  ASSERT_EQ(code, 0);
  ASSERT_OK(mb_os_file_remove(flag));
  mb__broker_stop(&b);
#else
  SKIP("Windows has no zombie thread-group leader: a process lives while any thread does");
#endif
}
