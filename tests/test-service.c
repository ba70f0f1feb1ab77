/*
 * test-service.c - the broker process under its service manager, end to end, with the real
 * membroker executable (MB_BROKER_EXE, set by CMake).
 *
 * Windows (and Wine): install it with `sc create`, start it with `sc start`, see the SCM
 * report RUNNING and the control block Global\membroker.<instance>.state say "running", stop
 * it with `sc stop`, see STOPPED with exit code 0 and the block say "shutting down", then
 * `sc delete`. Under Wine the SCM ends services when its last ordinary process exits; this
 * test process is an ordinary one and stays alive throughout, which is enough.
 *
 * POSIX: the same life cycle in the foreground (`membroker run`, stopped with SIGTERM) and
 * under a fake systemd (`membroker service` with $NOTIFY_SOCKET: READY=1 only once the block
 * is published, STOPPING=1 on SIGTERM).
 *
 * Tests that have no meaning on one OS are reported as skipped there, with the reason (each
 * TEST is registered with CTest on both).
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _POSIX_C_SOURCE 200809L
#endif

#include "task.h"

#include "scm.h"

#include "fixture.h"
#include "layout.h"

#if MB_OS_POSIX
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#else
#include <windows.h>
#endif

#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif

#define START_TIMEOUT_MS 60000 /* the first service start under Wine also starts its SCM */
#define STOP_TIMEOUT_MS 30000

/* ---- helpers shared by both OSes -------------------------------------------------------- */

static unsigned self_pid(void) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  return (unsigned)self.pid;
}

/*
 * Write the test config (fixture.h) for instance `instance` to `path`: its two small regions
 * (one committed at start, one lazy with slots), info log to `log`, and the event log on
 * Windows.
 */
static void write_config(const char *path, const char *instance, const char *log) {
  mb_config_t cfg;
  fx_config(&cfg, instance);
  fx_log(&cfg, MB_LOG_INFO, log);
  cfg.log_event_log = MB_OS_WIN;
  fx_write_config(path, &cfg, NULL);
}

/* A mapped view of an instance's control block. */
typedef struct view_s {
  mb_os_section_t sec;
  mb_state_t *st;
} view_t;

/*
 * Try once to open, map and check the control block of `instance` (flags: MB_OS_SEC_GLOBAL
 * for a service). Returns 1 with the view mapped (handle closed, so only the view remains),
 * 0 if it is not there or not published yet.
 */
static int view_open(view_t *v, const char *instance, int flags) {
  char name[MB_OS_NAME_MAX + 1];
  void *p = NULL;
  ASSERT_OK(mb__object_name(name, sizeof name, instance, NULL));
  if (mb_os_section_open(&v->sec, name, flags, 0) != 0)
    return 0;
  if (mb_os_section_map(&v->sec, 0, 0, &p) != 0) {
    mb_os_section_close(&v->sec);
    return 0;
  }
  if (mb__state_check((const mb_state_t *)p, v->sec.size) != 0) {
    mb_os_section_unmap(p, v->sec.size);
    mb_os_section_close(&v->sec);
    return 0;
  }
  mb_os_section_close(&v->sec);
  v->st = p;
  return 1;
}

static void view_close(view_t *v) {
  if (v->st != NULL)
    mb_os_section_unmap(v->st, v->sec.size);
  v->st = NULL;
}

/* The block of `instance` cannot be opened any more. */
static void assert_block_gone(const char *instance, int flags) {
  char name[MB_OS_NAME_MAX + 1];
  mb_os_section_t s;
  ASSERT_OK(mb__object_name(name, sizeof name, instance, NULL));
  ASSERT_ERR(mb_os_section_open(&s, name, flags, 0), MB_ENOENT);
}

#if MB_OS_POSIX
/* ---- POSIX ------------------------------------------------------------------------------ */

/* Fail (with the broker's log) if the child has exited; else return. */
static void assert_child_alive(mb_os_child_t *child, const char *log) {
  int code = -1;
  if (mb_os_child_wait(child, 0, &code) == 0) {
    dump_log(log);
    FAIL("membroker exited with code %d before it was ready", code);
  }
}

/* Wait until the block of `instance` is published, while the child lives. */
static void wait_published(view_t *v, const char *instance, mb_os_child_t *child, const char *log) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  while (!view_open(v, instance, 0)) {
    assert_child_alive(child, log);
    if (mb_os_mono_ns() > deadline) {
      mb_os_child_kill(child);
      dump_log(log);
      FAIL("control block of instance %s not published after %d ms", instance, START_TIMEOUT_MS);
    }
    mb_os_sleep_ms(5);
  }
}

/* SIGTERM the child and expect a clean exit (0) within the stop timeout. */
static void term_and_wait(mb_os_child_t *child, const char *log) {
  int code = -1;
  ASSERT_EQ(kill((pid_t)child->pid, SIGTERM), 0);
  if (mb_os_child_wait(child, STOP_TIMEOUT_MS, &code) != 0) {
    mb_os_child_kill(child);
    mb_os_child_wait(child, -1, &code);
    dump_log(log);
    FAIL("membroker did not stop within %d ms of SIGTERM", STOP_TIMEOUT_MS);
  }
  if (code != 0)
    dump_log(log);
  ASSERT_EQ(code, 0);
}

/* The life cycle in the foreground: `membroker run`, published block, SIGTERM, exit 0. */
static void lifecycle(void) {
  char dir[512], cfg[600], log[600], instance[32];
  const char *argv[5];
  mb_os_child_t child;
  view_t v = {0};
  uint64_t hb;

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%u", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.run.json", dir, self_pid());
  /* `run` logs to stderr (ours); the file is for `service` mode only. */
  snprintf(log, sizeof log, "%smbt.%u.run.log", dir, self_pid());
  write_config(cfg, instance, log);
  argv[0] = MB_BROKER_EXE;
  argv[1] = "run";
  argv[2] = "-c";
  argv[3] = cfg;
  argv[4] = NULL;
  ASSERT_OK(mb_os_spawn(argv, &child));

  wait_published(&v, instance, &child, log);
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_RUNNING);
  ASSERT_EQ(v.st->broker_pid, child.pid);
  ASSERT_EQ(v.st->region_count, 2);
  /* The block is published before the loop installs its SIGTERM handler; the first
   * heartbeat tick (1 s) proves the loop runs, so SIGTERM now means a clean stop. */
  hb = mb_load64(&v.st->game.broker_heartbeat_ns);
  WAIT_FOR(mb_load64(&v.st->game.broker_heartbeat_ns) != hb, START_TIMEOUT_MS);

  term_and_wait(&child, log);
  /* Our view outlives the broker's objects: it saw "shutting down" last. */
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_SHUTTING_DOWN);
  view_close(&v);
  assert_block_gone(instance, 0);
  remove(cfg);
  remove(log);
}

/* `membroker service` under a fake systemd: READY=1 once published, STOPPING=1 on SIGTERM. */
static void notify(void) {
  char dir[512], cfg[600], log[600], instance[32], sock[108], msg[256];
  const char *argv[5];
  struct sockaddr_un sa;
  mb_os_child_t child;
  view_t v = {0};
  int fd, n;

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%un", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.svc.json", dir, self_pid());
  snprintf(log, sizeof log, "%smbt.%u.svc.log", dir, self_pid());
  remove(log);
  write_config(cfg, instance, log);

  /* A fake systemd: a datagram socket named by $NOTIFY_SOCKET. */
  n = snprintf(sock, sizeof sock, "%smbt.%u.notify", dir, self_pid());
  ASSERT(n > 0 && (size_t)n < sizeof sa.sun_path);
  unlink(sock);
  fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT(fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, sock, (size_t)n);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);

  ASSERT_EQ(setenv("NOTIFY_SOCKET", sock, 1), 0);
  argv[0] = MB_BROKER_EXE;
  argv[1] = "service";
  argv[2] = "-c";
  argv[3] = cfg;
  argv[4] = NULL;
  ASSERT_OK(mb_os_spawn(argv, &child));
  unsetenv("NOTIFY_SOCKET");

  /* READY=1 comes only once the block is published: it must open at once. */
  if (mb_test_dgram_recv(fd, msg, sizeof msg, START_TIMEOUT_MS) < 0) {
    mb_os_child_kill(&child);
    dump_log(log);
    FAIL("no notification within %d ms", START_TIMEOUT_MS);
  }
  ASSERT_STR_EQ(msg, "READY=1");
  ASSERT(view_open(&v, instance, 0));
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_RUNNING);

  term_and_wait(&child, log);
  ASSERT(mb_test_dgram_recv(fd, msg, sizeof msg, 0) > 0);
  ASSERT_STR_EQ(msg, "STOPPING=1");
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_SHUTTING_DOWN);
  view_close(&v);
  assert_block_gone(instance, 0);

  close(fd);
  unlink(sock);
  remove(cfg);
  remove(log);
}

/* `membroker run` while another process holds the instance lock: exit 1, nothing published. */
static void start_failure(void) {
  char dir[512], cfg[600], log[600], instance[32], lockname[64];
  const char *argv[5];
  mb_os_child_t child;
  intptr_t lock;
  int code = -1;

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%uf", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.fail.json", dir, self_pid());
  snprintf(log, sizeof log, "%smbt.%u.fail.log", dir, self_pid());
  write_config(cfg, instance, log);
  snprintf(lockname, sizeof lockname, "membroker.%s.lock", instance);
  ASSERT_OK(mb_os_lock_take(lockname, 0, &lock));
  argv[0] = MB_BROKER_EXE;
  argv[1] = "run";
  argv[2] = "-c";
  argv[3] = cfg;
  argv[4] = NULL;
  ASSERT_OK(mb_os_spawn(argv, &child));
  if (mb_os_child_wait(&child, START_TIMEOUT_MS, &code) != 0) {
    mb_os_child_kill(&child);
    mb_os_child_wait(&child, -1, &code);
    FAIL("membroker kept running although the instance lock is held");
  }
  ASSERT_EQ(code, 1);
  assert_block_gone(instance, 0);
  mb_os_lock_release(lock);
  remove(cfg);
}

#else /* MB_OS_WIN */
/* ---- Windows ---------------------------------------------------------------------------- */

/* Send INTERROGATE: the service answers with its current status. 0 or the OS error. */
static DWORD interrogate(const wchar_t *name, SERVICE_STATUS *ss) {
  SC_HANDLE scm, svc;
  DWORD err = 0;
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL)
    return GetLastError();
  svc = OpenServiceW(scm, name, SERVICE_INTERROGATE);
  if (svc == NULL || !ControlService(svc, SERVICE_CONTROL_INTERROGATE, ss))
    err = GetLastError();
  if (svc != NULL)
    CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  return err;
}

/* sc create / start / RUNNING / block published / sc stop / STOPPED 0 / sc delete. */
static void lifecycle(void) {
  char dir[MAX_PATH + 1], cfg[600], log[600], instance[32], exe[1024];
  wchar_t wexe[1024], wcfg[600], args[4096];
  SERVICE_STATUS_PROCESS st;
  SERVICE_STATUS ss;
  view_t v = {0};
  unsigned pid = self_pid();

  windows_path(MB_BROKER_EXE, exe, sizeof exe);
  widen(exe, wexe, 1024);
  if (GetFileAttributesW(wexe) == INVALID_FILE_ATTRIBUTES)
    FAIL("membroker executable not found: %s", exe);
  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%u", pid);
  snprintf(cfg, sizeof cfg, "%smbt.%u.svc.json", dir, pid);
  snprintf(log, sizeof log, "%smbt.%u.svc.log", dir, pid);
  remove(log);
  write_config(cfg, instance, log);
  widen(cfg, wcfg, 600);

  _snwprintf(svc_name, 64, L"mbtest%u", pid);
  atexit(delete_service);
  /* sc takes `binPath= <value>`; the value quotes the paths inside it with \" */
  _snwprintf(args, 4096,
             L"create %ls binPath= \"\\\"%ls\\\" service -c \\\"%ls\\\" -n %ls\" "
             L"start= demand DisplayName= \"membroker test %u\"",
             svc_name, wexe, wcfg, svc_name, pid);
  args[4095] = L'\0';
  ASSERT_EQ(run_sc(args), 0);

  _snwprintf(args, 4096, L"start %ls", svc_name);
  ASSERT_EQ(run_sc(args), 0);
  wait_state(svc_name, SERVICE_RUNNING, &st, START_TIMEOUT_MS, log);
  if (st.dwCurrentState != SERVICE_RUNNING) {
    dump_log(log);
    FAIL("service stopped while starting: exit %lu, service-specific %lu",
         (unsigned long)st.dwWin32ExitCode, (unsigned long)st.dwServiceSpecificExitCode);
  }
  ASSERT_NE(st.dwProcessId, 0);

  /* RUNNING is reported only once the block is published: it opens at once. */
  if (!view_open(&v, instance, MB_OS_SEC_GLOBAL)) {
    dump_log(log);
    FAIL("service RUNNING but Global\\membroker.%s.state is not published", instance);
  }
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_RUNNING);
  ASSERT_EQ(v.st->broker_pid, st.dwProcessId);
  ASSERT_EQ(v.st->region_count, 2);
  ASSERT_EQ(interrogate(svc_name, &ss), 0);
  ASSERT_EQ(ss.dwCurrentState, SERVICE_RUNNING);
  ASSERT_EQ(ss.dwControlsAccepted,
            SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PRESHUTDOWN);

  _snwprintf(args, 4096, L"stop %ls", svc_name);
  ASSERT_EQ(run_sc(args), 0);
  wait_state(svc_name, SERVICE_STOPPED, &st, STOP_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != 0)
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, 0);
  ASSERT_EQ(st.dwServiceSpecificExitCode, 0);
  /* Our view outlives the broker: game servers saw "shutting down" before it let go. */
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_SHUTTING_DOWN);
  view_close(&v);
  assert_block_gone(instance, MB_OS_SEC_GLOBAL);
  ASSERT(file_contains(log, "running"));
  ASSERT(file_contains(log, "service control: stop"));

  _snwprintf(args, 4096, L"delete %ls", svc_name);
  ASSERT_EQ(run_sc(args), 0);
  ASSERT_EQ(query_status(svc_name, &st), ERROR_SERVICE_DOES_NOT_EXIST);
  svc_name[0] = L'\0';
  remove(cfg);
  remove(log);
}

/*
 * A service that cannot start (another process holds the instance lock): START_PENDING,
 * then STOPPED with ERROR_SERVICE_SPECIFIC_ERROR and service exit code 1, never RUNNING.
 */
static void start_failure(void) {
  char dir[MAX_PATH + 1], cfg[600], log[600], instance[32], exe[1024], lockname[64];
  wchar_t wexe[1024], wcfg[600], args[4096];
  SERVICE_STATUS_PROCESS st;
  unsigned pid = self_pid();
  intptr_t lock;

  windows_path(MB_BROKER_EXE, exe, sizeof exe);
  widen(exe, wexe, 1024);
  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%uf", pid);
  snprintf(cfg, sizeof cfg, "%smbt.%u.fail.json", dir, pid);
  snprintf(log, sizeof log, "%smbt.%u.fail.log", dir, pid);
  remove(log);
  write_config(cfg, instance, log);
  widen(cfg, wcfg, 600);
  snprintf(lockname, sizeof lockname, "membroker.%s.lock", instance);
  ASSERT_OK(mb_os_lock_take(lockname, MB_OS_SEC_GLOBAL, &lock));

  _snwprintf(svc_name, 64, L"mbtestf%u", pid);
  sc_create_start(MB_BROKER_EXE, cfg);
  wait_state(svc_name, SERVICE_STOPPED, &st, START_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != ERROR_SERVICE_SPECIFIC_ERROR)
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, ERROR_SERVICE_SPECIFIC_ERROR);
  ASSERT_EQ(st.dwServiceSpecificExitCode, 1);
  ASSERT(file_contains(log, "already running"));
  assert_block_gone(instance, MB_OS_SEC_GLOBAL);

  _snwprintf(args, 4096, L"delete %ls", svc_name);
  ASSERT_EQ(run_sc(args), 0);
  svc_name[0] = L'\0';
  mb_os_lock_release(lock);
  remove(cfg);
  remove(log);
}

/* `membroker service` from a console cannot reach the SCM: exit 1, and the log says to use
 * `membroker run`. */
static void outside_scm(void) {
  char dir[MAX_PATH + 1], cfg[600], log[600], instance[32], exe[1024];
  const char *argv[7];
  mb_os_child_t child;
  int code = -1;

  windows_path(MB_BROKER_EXE, exe, sizeof exe);
  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%uc", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.console.json", dir, self_pid());
  snprintf(log, sizeof log, "%smbt.%u.console.log", dir, self_pid());
  remove(log);
  write_config(cfg, instance, log);
  argv[0] = exe;
  argv[1] = "service";
  argv[2] = "-c";
  argv[3] = cfg;
  argv[4] = "-n";
  argv[5] = "mbtest-console";
  argv[6] = NULL;
  ASSERT_OK(mb_os_spawn(argv, &child));
  if (mb_os_child_wait(&child, START_TIMEOUT_MS, &code) != 0) {
    mb_os_child_kill(&child);
    mb_os_child_wait(&child, -1, &code);
    dump_log(log);
    FAIL("membroker service did not exit outside the SCM");
  }
  if (code != 1 || !file_contains(log, "membroker run"))
    dump_log(log);
  ASSERT_EQ(code, 1);
  ASSERT(file_contains(log, "membroker run"));
  /* It never started the broker. */
  assert_block_gone(instance, MB_OS_SEC_GLOBAL);
  remove(cfg);
  remove(log);
}

#endif /* MB_OS_WIN */

/* ---- the tests (each registered once; some are skipped on one OS) ------------------------ */

/* Windows: under the SCM. POSIX: in the foreground with SIGTERM. */
TEST(scm_lifecycle) {
  lifecycle();
}

/* The broker cannot start: Windows: STOPPED with a service-specific exit code 1; POSIX: `run`
 * exits 1. */
TEST(start_failure) {
  start_failure();
}

/* POSIX: systemd notifications. Windows: nothing to do (mb__svc_notify is a no-op). */
TEST(service_notify) {
#if MB_OS_POSIX
  notify();
#else
  SKIP("systemd notifications exist on Linux only");
#endif
}

/* Windows: `membroker service` from a console. POSIX: nothing to do (it runs like `run`). */
TEST(service_outside_scm) {
#if MB_OS_WIN
  outside_scm();
#else
  SKIP("there is no Service Control Manager on POSIX");
#endif
}

/* ---- one broker per instance, across service and console modes --------------------------- */
/*
 * A service and a console broker of the same instance (the same config file) never run at
 * once: whichever comes second exits 1 (Windows service: STOPPED with
 * ERROR_SERVICE_SPECIFIC_ERROR), and says which broker runs - its pid and its mode - on its
 * stderr (console) or in its log file (service). POSIX: `membroker service` (the foreground
 * with systemd notifications) against `membroker run`.
 */

/* The text of the file at path (at most 64 KiB), "" if it cannot be read. */
static const char *file_text(const char *path) {
  static char text[65536];
  return mb_test_file_text(path, text, sizeof text);
}

/* Poll until the control block of `instance` (flags as view_open) is published, failing if
 * the broker `child` exits first. */
static void wait_block(view_t *v, const char *instance, int flags, mb_os_child_t *child) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  int code = -1;
  while (!view_open(v, instance, flags)) {
    if (mb_os_child_wait(child, 0, &code) == 0)
      FAIL("membroker exited with code %d before it was ready", code);
    if (mb_os_mono_ns() > deadline) {
      mb_os_child_kill(child);
      mb_os_child_wait(child, -1, &code);
      FAIL("control block of instance %s not published after %d ms", instance, START_TIMEOUT_MS);
    }
    mb_os_sleep_ms(5);
  }
}

/* The background broker of a test, killed at exit if a failed assertion left it running. */
static mb_os_child_t *bg_child;

static void kill_bg_child(void) {
  unsigned pid;
  int code;
  if (bg_child == NULL)
    return;
  pid = (unsigned)bg_child->pid;
  if (mb_os_child_kill(bg_child) == 0 && mb_os_child_wait(bg_child, STOP_TIMEOUT_MS, &code) == 0)
    fprintf(stderr, "cleanup: killed membroker pid %u\n", pid);
  bg_child = NULL;
}

/* Start `membroker <mode> -c cfg` in the background. */
static void spawn_broker(mb_os_child_t *child, const char *mode, const char *cfg) {
  static int registered;
  char exe[1024];
  const char *argv[5];
#if MB_OS_WIN
  windows_path(MB_BROKER_EXE, exe, sizeof exe);
#else
  snprintf(exe, sizeof exe, "%s", MB_BROKER_EXE);
#endif
  argv[0] = exe;
  argv[1] = mode;
  argv[2] = "-c";
  argv[3] = cfg;
  argv[4] = NULL;
  if (!registered++)
    atexit(kill_bg_child);
  ASSERT_OK(mb_os_spawn(argv, child));
  bg_child = child;
}

/* Stop a background broker: SIGTERM and a clean exit on POSIX; killed on Windows (a console
 * broker has no stop request a test can send but Ctrl-C). */
static void stop_broker(mb_os_child_t *child, const char *log) {
#if MB_OS_POSIX
  term_and_wait(child, log);
#else
  int code = -1;
  (void)log;
  ASSERT_OK(mb_os_child_kill(child));
  ASSERT_OK(mb_os_child_wait(child, STOP_TIMEOUT_MS, &code));
#endif
  bg_child = NULL;
}

#if MB_OS_WIN
/* sc stop (when it runs) and sc delete. */
static void sc_stop_delete(const char *log) {
  SERVICE_STATUS_PROCESS st;
  wchar_t args[256];
  ASSERT_EQ(query_status(svc_name, &st), 0);
  if (st.dwCurrentState != SERVICE_STOPPED) {
    _snwprintf(args, 256, L"stop %ls", svc_name);
    ASSERT_EQ(run_sc(args), 0);
    wait_state(svc_name, SERVICE_STOPPED, &st, STOP_TIMEOUT_MS, log);
  }
  _snwprintf(args, 256, L"delete %ls", svc_name);
  ASSERT_EQ(run_sc(args), 0);
  svc_name[0] = L'\0';
}
#endif

/* A service runs; `membroker run` of the same instance exits 1 and names the service. */
static void service_then_console(void) {
  char dir[600], cfg[700], log[700], instance[32], out[8192], want[64];
  unsigned svc_pid;
  view_t v = {0};
  int code;
#if MB_OS_WIN
  SERVICE_STATUS_PROCESS st;
  int ns = MB_OS_SEC_GLOBAL;
#else
  mb_os_child_t child;
  int ns = 0;
#endif

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%us2", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.s2.json", dir, self_pid());
  snprintf(log, sizeof log, "%smbt.%u.s2.log", dir, self_pid());
  remove(log);
  write_config(cfg, instance, log);
#if MB_OS_WIN
  _snwprintf(svc_name, 64, L"mbtests%u", self_pid());
  sc_create_start(MB_BROKER_EXE, cfg);
  wait_state(svc_name, SERVICE_RUNNING, &st, START_TIMEOUT_MS, log);
  if (st.dwCurrentState != SERVICE_RUNNING) {
    dump_log(log);
    FAIL("service stopped while starting: exit %lu, service-specific %lu",
         (unsigned long)st.dwWin32ExitCode, (unsigned long)st.dwServiceSpecificExitCode);
  }
  svc_pid = (unsigned)st.dwProcessId;
  if (!view_open(&v, instance, ns)) {
    dump_log(log);
    FAIL("service RUNNING but Global\\membroker.%s.state is not published", instance);
  }
  snprintf(want, sizeof want, "(pid %u, Windows service)", svc_pid);
#else
  spawn_broker(&child, "service", cfg);
  wait_block(&v, instance, ns, &child);
  svc_pid = child.pid;
  snprintf(want, sizeof want, "(pid %u, service)", svc_pid);
#endif
  ASSERT_EQ(v.st->broker_pid, svc_pid);

  code = mb_test_run_exe(MB_BROKER_EXE, START_TIMEOUT_MS, out, sizeof out, "run", "-c", cfg,
                         (char *)NULL);
  ASSERT_EXIT(code, 1, out);
  if (strstr(out, want) == NULL || strstr(out, "already running for instance") == NULL)
    dump_log(log);
  ASSERT_CONTAINS(out, "another broker is already running for instance");
  ASSERT_CONTAINS(out, want);
  /* The service was not disturbed. */
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_RUNNING);
  view_close(&v);

#if MB_OS_WIN
  sc_stop_delete(log);
#else
  stop_broker(&child, log);
#endif
  assert_block_gone(instance, ns);
  remove(cfg);
  remove(log);
}

/* A console broker runs; the service of the same instance stops with an error and its log
 * names the console broker. */
static void console_then_service(void) {
  char dir[600], cfg[700], log[700], instance[32], want[64];
  const char *text;
  mb_os_child_t child;
  view_t v = {0};
  int code = -1;
#if MB_OS_WIN
  SERVICE_STATUS_PROCESS st;
#else
  char out[8192];
#endif

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%uc2", self_pid());
  snprintf(cfg, sizeof cfg, "%smbt.%u.c2.json", dir, self_pid());
  snprintf(log, sizeof log, "%smbt.%u.c2.log", dir, self_pid());
  remove(log);
  write_config(cfg, instance, log);
  spawn_broker(&child, "run", cfg);
  wait_block(&v, instance, 0, &child); /* Windows: Local\, the console's namespace */
  snprintf(want, sizeof want, "(pid %u, console)", (unsigned)child.pid);

#if MB_OS_WIN
  _snwprintf(svc_name, 64, L"mbtestc%u", self_pid());
  sc_create_start(MB_BROKER_EXE, cfg);
  wait_state(svc_name, SERVICE_STOPPED, &st, START_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != ERROR_SERVICE_SPECIFIC_ERROR)
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, ERROR_SERVICE_SPECIFIC_ERROR);
  ASSERT_NE(st.dwServiceSpecificExitCode, 0);
  assert_block_gone(instance, MB_OS_SEC_GLOBAL); /* it published nothing */
#else
  code = mb_test_run_exe(MB_BROKER_EXE, START_TIMEOUT_MS, out, sizeof out, "service", "-c", cfg,
                         (char *)NULL);
  ASSERT_EXIT(code, 1, out);
#endif
  text = file_text(log);
  if (strstr(text, want) == NULL)
    dump_log(log);
  ASSERT_CONTAINS(text, "another broker is already running for instance");
  ASSERT_CONTAINS(text, want);
  /* The console broker runs on, undisturbed. */
  ASSERT_EQ(mb_os_child_wait(&child, 0, &code), MB_ETIMEOUT);
  ASSERT_EQ(mb_load32(&v.st->game.server_status), MB_STATUS_RUNNING);
  view_close(&v);

#if MB_OS_WIN
  sc_stop_delete(log);
#endif
  stop_broker(&child, log);
  remove(cfg);
  remove(log);
}

TEST(service_lock_service_then_console) {
  service_then_console();
}

TEST(service_lock_console_then_service) {
  console_then_service();
}
