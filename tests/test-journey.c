/*
 * test-journey.c - the product as it is deployed, driven the way an operator and a game
 * server use it, with the shipped programs from the installed release (`cmake --install` into
 * MB_JOURNEY_PREFIX; the CTest fixture journey.install lays it out first):
 *
 * Windows (and Wine): install the service (`membroker install`, or the shipped
 * scripts\install-service.cmd), `sc start` -> RUNNING, `mbctl status --json` says running, the
 * shipped gameserver_sim.exe - no namespace flag - attaches and holds 5 players, `status` shows
 * them, `sc stop` while it is attached -> the game server reports that the broker is shutting
 * down, the SCM reports STOPPED with exit code 0, uninstall -> the service is gone.
 *
 * POSIX: the same journey with the daemon as the service manager runs it (`membroker service`
 * in the foreground, stopped with SIGTERM as systemd stops it).
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _POSIX_C_SOURCE 200809L
#endif

#include "task.h"

#include <cjson/cJSON.h>

#include "fixture.h"
#include "layout.h"

#if MB_OS_POSIX
#include <signal.h>
#include <sys/types.h>
#else
#include <windows.h>
#endif

#include "scm.h"

#ifndef MB_JOURNEY_PREFIX
#error "MB_JOURNEY_PREFIX must name the installed release (CMake: build/journey-release)"
#endif

#define JOURNEY_PLAYERS 5
#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 30000

typedef struct journey_s {
  char instance[32];
  char cfg[600], log[600], sim_out[600];
  char bin[700]; /* <prefix>/bin/ as the platform layer takes paths */
  char broker[800], mbctl[800], sim[800];
  mb_os_child_t sim_child;
  int sim_running;
} journey_t;

/* What the program printed, into a static buffer (one at a time). */
static char out[65536];

/* The processes a journey started, killed at exit if a failed assertion left them running (a
 * child that keeps CTest's output pipe open would hold the test until its timeout). */
static mb_os_child_t *running[2];

static void kill_running(void) {
  int i, code;
  for (i = 0; i < 2; i++)
    if (running[i] != NULL) {
      mb_os_child_kill(running[i]);
      mb_os_child_wait(running[i], -1, &code);
      running[i] = NULL;
    }
}

/* Remember child in slot i (0: the game server, 1: the broker) until it is waited for. */
static void track(int i, mb_os_child_t *child) {
  static int registered;
  if (!registered) {
    atexit(kill_running);
    registered = 1;
  }
  running[i] = child;
}

/* The journey's config: the test config (fixture.h) - a committed region and a lazy player
 * region with 1 KiB slots - with the log at j->log. */
static void write_config(journey_t *j) {
  mb_config_t cfg;
  fx_config(&cfg, j->instance);
  fx_log(&cfg, MB_LOG_INFO, j->log);
  fx_write_config(j->cfg, &cfg, NULL);
}

static void journey_paths(journey_t *j, const char *tag) {
  char dir[512];
  unsigned pid;
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  pid = (unsigned)self.pid;
  mb_test_exe_path(MB_JOURNEY_PREFIX "/bin/", j->bin, sizeof j->bin);
  snprintf(j->broker, sizeof j->broker, "%smembroker%s", j->bin, MB_OS_WIN ? ".exe" : "");
  snprintf(j->mbctl, sizeof j->mbctl, "%smbctl%s", j->bin, MB_OS_WIN ? ".exe" : "");
  snprintf(j->sim, sizeof j->sim, "%sgameserver_sim%s", j->bin, MB_OS_WIN ? ".exe" : "");
  temp_dir(dir, sizeof dir);
  snprintf(j->instance, sizeof j->instance, "j%u%s", pid, tag);
  snprintf(j->cfg, sizeof j->cfg, "%smbt.%u.%s.json", dir, pid, tag);
  snprintf(j->log, sizeof j->log, "%smbt.%u.%s.log", dir, pid, tag);
  snprintf(j->sim_out, sizeof j->sim_out, "%smbt.%u.%s.sim.txt", dir, pid, tag);
  remove(j->log);
  remove(j->sim_out);
  write_config(j);
}

/* `mbctl --instance I --json status` parsed; fails the test unless it answered. */
static cJSON *journey_status(journey_t *j) {
  cJSON *doc;
  int code = mb_test_run_exe(j->mbctl, 20000, out, sizeof out, "--instance", j->instance, "--json",
                             "status", NULL);
  ASSERT_EXIT(code, 0, out);
  if ((doc = cJSON_Parse(out)) == NULL)
    FAIL("mbctl status --json printed no JSON:\n%s", out);
  return doc;
}

static const cJSON *json_obj(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsObject(v))
    FAIL("status has no object '%s'", key);
  return v;
}

static double json_num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v))
    FAIL("status has no number '%s'", key);
  return v->valuedouble;
}

static const char *json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsString(v))
    FAIL("status has no string '%s'", key);
  return v->valuestring;
}

/* The client entry named `name` in a status report, or NULL. */
static const cJSON *status_client(const cJSON *doc, const char *name) {
  const cJSON *c, *clients = cJSON_GetObjectItemCaseSensitive(doc, "clients");
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(clients, "table");
  cJSON_ArrayForEach(c, list) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return c;
  }
  return NULL;
}

/* 1 if the game server's output file contains needle. */
static int sim_said(journey_t *j, const char *needle) {
  return file_contains(j->sim_out, needle);
}

static void sim_dump(journey_t *j) {
  fprintf(stderr, "gameserver_sim's output:\n");
  dump_log(j->sim_out);
}

/*
 * The operator's view while the broker runs: status --json says running; then the shipped
 * game server attaches with no namespace flag and holds JOURNEY_PLAYERS players, which status
 * shows (the instance's player counter, and the client attached under its name).
 */
static void journey_attach(journey_t *j) {
  const char *argv[12];
  cJSON *doc;
  const cJSON *c = NULL;
  uint64_t deadline;
  int players = -1;

  doc = journey_status(j);
  ASSERT_STR_EQ(json_str(json_obj(doc, "server"), "status"), "running");
  cJSON_Delete(doc);

  argv[0] = j->sim;
  argv[1] = "--instance";
  argv[2] = j->instance;
  argv[3] = "--name";
  argv[4] = "zone-1";
  argv[5] = "--players";
  argv[6] = "5";
  argv[7] = "--steady";
  argv[8] = "--seconds";
  argv[9] = "300";
  argv[10] = NULL;
  ASSERT_OK(mb_os_spawn_redirect(argv, j->sim_out, &j->sim_child));
  j->sim_running = 1;
  track(0, &j->sim_child);

  deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  for (;;) {
    int code;
    if (mb_os_child_wait(&j->sim_child, 0, &code) == 0) {
      j->sim_running = 0;
      running[0] = NULL;
      sim_dump(j);
      FAIL("gameserver_sim exited with %d before it held %d players", code, JOURNEY_PLAYERS);
    }
    doc = journey_status(j);
    c = status_client(doc, "zone-1");
    players = (int)json_num(json_obj(doc, "server"), "players");
    if (c != NULL && strcmp(json_str(c, "state"), "attached") == 0 && players == JOURNEY_PLAYERS)
      break;
    cJSON_Delete(doc);
    if (mb_os_mono_ns() > deadline) {
      sim_dump(j);
      FAIL("status never showed zone-1 attached with %d players (last: %d players, %s)",
           JOURNEY_PLAYERS, players, c ? "attached" : "no client zone-1");
    }
    mb_os_sleep_ms(100);
  }
  ASSERT_EQ((int)json_num(c, "slots_held"), JOURNEY_PLAYERS);
  cJSON_Delete(doc);
}

/* After the broker stopped: the game server saw it shutting down; then it is stopped. */
static void journey_sim_saw_stop(journey_t *j) {
  int code = -1;
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000u;
  while (!sim_said(j, "shutting down")) {
    if (mb_os_mono_ns() > deadline) {
      sim_dump(j);
      FAIL("gameserver_sim never reported the broker shutting down");
    }
    mb_os_sleep_ms(20);
  }
  mb_os_child_kill(&j->sim_child);
  mb_os_child_wait(&j->sim_child, -1, &code);
  j->sim_running = 0;
  running[0] = NULL;
}

static void journey_cleanup(journey_t *j) {
  int code;
  if (j->sim_running) {
    mb_os_child_kill(&j->sim_child);
    mb_os_child_wait(&j->sim_child, -1, &code);
    j->sim_running = 0;
    running[0] = NULL;
  }
  remove(j->cfg);
  remove(j->log);
  remove(j->sim_out);
}

#if MB_OS_WIN
/* ---- Windows: under the SCM ------------------------------------------------------------- */

enum { INSTALL_SELF, INSTALL_SCRIPT };

static void journey_windows(int how) {
  journey_t j;
  wchar_t wname[64], args[512];
  char name[64], script[800], cmd[MAX_PATH + 16];
  SERVICE_STATUS_PROCESS st;
  int code;

  memset(&j, 0, sizeof j);
  journey_paths(&j, how == INSTALL_SELF ? "self" : "cmd");
  snprintf(name, sizeof name, "mbjourney%u%s", (unsigned)GetCurrentProcessId(),
           how == INSTALL_SELF ? "s" : "c");
  widen(name, wname, 64);
  _snwprintf(svc_name, 64, L"%ls", wname);
  atexit(delete_service);

  if (how == INSTALL_SELF) {
    code = mb_test_run_exe(j.broker, 60000, out, sizeof out, "install", "--name", name, "-c", j.cfg,
                           "--start", "demand", NULL);
    ASSERT_EXIT(code, 0, out);
  } else {
    snprintf(script, sizeof script, "%s..\\scripts\\install-service.cmd", j.bin);
    code = mb_test_run_exe(cmd_exe(cmd, sizeof cmd), 60000, out, sizeof out, "/c", script, "/exe",
                           j.broker, "/config", j.cfg, "/name", name, NULL);
    ASSERT_EXIT(code, 0, out);
  }

  _snwprintf(args, 512, L"start %ls", wname);
  ASSERT_EQ(run_sc(args), 0);
  wait_state(wname, SERVICE_RUNNING, &st, START_TIMEOUT_MS, j.log);
  if (st.dwCurrentState != SERVICE_RUNNING) {
    dump_log(j.log);
    FAIL("service stopped while starting: exit %lu, service-specific %lu",
         (unsigned long)st.dwWin32ExitCode, (unsigned long)st.dwServiceSpecificExitCode);
  }

  journey_attach(&j);

  _snwprintf(args, 512, L"stop %ls", wname);
  ASSERT_EQ(run_sc(args), 0);
  wait_state(wname, SERVICE_STOPPED, &st, STOP_TIMEOUT_MS, j.log);
  if (st.dwWin32ExitCode != 0)
    dump_log(j.log);
  ASSERT_EQ(st.dwWin32ExitCode, 0);
  ASSERT_EQ(st.dwServiceSpecificExitCode, 0);
  journey_sim_saw_stop(&j);

  if (how == INSTALL_SELF) {
    code = mb_test_run_exe(j.broker, 60000, out, sizeof out, "uninstall", "--name", name, NULL);
    ASSERT_EXIT(code, 0, out);
  } else {
    snprintf(script, sizeof script, "%s..\\scripts\\uninstall-service.cmd", j.bin);
    code = mb_test_run_exe(cmd_exe(cmd, sizeof cmd), 60000, out, sizeof out, "/c", script, "/name",
                           name, NULL);
    ASSERT_EXIT(code, 0, out);
  }
  ASSERT_EQ(query_status(wname, &st), ERROR_SERVICE_DOES_NOT_EXIST);
  svc_name[0] = L'\0';
  journey_cleanup(&j);
}

#else
/* ---- POSIX: the daemon as systemd runs it ------------------------------------------------ */

static void journey_posix(void) {
  journey_t j;
  const char *argv[8];
  mb_os_child_t broker;
  uint64_t deadline;
  int code = -1;

  memset(&j, 0, sizeof j);
  journey_paths(&j, "svc");
  argv[0] = j.broker;
  argv[1] = "service";
  argv[2] = "-c";
  argv[3] = j.cfg;
  argv[4] = "-n";
  argv[5] = "membroker";
  argv[6] = NULL;
  ASSERT_OK(mb_os_spawn(argv, &broker));
  track(1, &broker);
  /* Ready when mbctl gets an answer. */
  deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  while (mb_test_run_exe(j.mbctl, 20000, out, sizeof out, "--instance", j.instance, "ping", NULL) !=
         0) {
    if (mb_os_child_wait(&broker, 0, &code) == 0) {
      running[1] = NULL;
      dump_log(j.log);
      FAIL("membroker service exited with %d before it answered", code);
    }
    if (mb_os_mono_ns() > deadline)
      FAIL("membroker service never answered mbctl ping:\n%s", out);
    mb_os_sleep_ms(50);
  }

  journey_attach(&j);

  ASSERT_EQ(kill((pid_t)broker.pid, SIGTERM), 0);
  if (mb_os_child_wait(&broker, STOP_TIMEOUT_MS, &code) != 0)
    FAIL("membroker did not stop within %d ms of SIGTERM", STOP_TIMEOUT_MS);
  running[1] = NULL;
  if (code != 0)
    dump_log(j.log);
  ASSERT_EQ(code, 0);
  journey_sim_saw_stop(&j);
  journey_cleanup(&j);
}
#endif

/* The journey with `membroker install` (Windows) / the daemon in service mode (POSIX). */
TEST(service_journey) {
#if MB_OS_WIN
  journey_windows(INSTALL_SELF);
#else
  journey_posix();
#endif
}

/* The journey with the shipped install script (scripts\install-service.cmd, i.e. sc create). */
TEST(service_journey_script) {
#if MB_OS_WIN
  journey_windows(INSTALL_SCRIPT);
#else
  SKIP("install-service.cmd is the Windows installer; Linux installs the systemd unit");
#endif
}
