/*
 * test-svcmgr.c - the broker under systemd, with the real membroker executable (MB_BROKER_EXE)
 * in service mode and the environment systemd gives a service: signals besides a stop
 * (SIGHUP and SIGUSR1 reopen the log, SIGUSR2 logs a status line, none ends the broker), log
 * lines with sd-daemon priority prefixes when stderr is the journal ($JOURNAL_STREAM), the
 * watchdog (WATCHDOG=1 over $NOTIFY_SOCKET from the loop) and persist.dir's default
 * ($STATE_DIRECTORY). The installed unit itself is checked by install.systemd_unit
 * (tests/install/check-unit.cmake). Windows has none of these: each test is skipped there.
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _POSIX_C_SOURCE 200809L
#endif

#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "svc.h"

#if MB_OS_POSIX
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif

#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 30000
#define TEXT_MAX 65536

#if MB_OS_POSIX

static unsigned self_pid(void) {
  return (unsigned)getpid();
}

/* "<dir>/mbt.<pid>.<tag>" in $TMPDIR or /tmp. */
static void tmp_path(char *out, size_t size, const char *tag) {
  const char *dir = getenv("TMPDIR");
  int n = snprintf(out, size, "%s/mbt.%u.%s", dir && dir[0] ? dir : "/tmp", self_pid(), tag);
  ASSERT(n > 0 && (size_t)n < size);
}

static int file_has(const char *path, const char *needle) {
  static char buf[TEXT_MAX];
  return strstr(mb_test_file_text(path, buf, sizeof buf), needle) != NULL;
}

/* Print a file for the failure report. */
static void dump(const char *what, const char *path) {
  static char buf[TEXT_MAX];
  fprintf(stderr, "---- %s (%s) ----\n%s\n----\n", what, path,
          mb_test_file_text(path, buf, sizeof buf));
}

/* The child still runs (a signal must not have ended it). */
static void assert_alive(mb_os_child_t *child, const char *log) {
  int code = -1;
  if (mb_os_child_wait(child, 0, &code) == 0) {
    dump("log", log);
    FAIL("membroker exited with %d; it must keep running", code);
  }
}

/* Wait until `path` contains `needle`, while the child runs. */
static void wait_file_has(mb_os_child_t *child, const char *path, const char *needle,
                          const char *log) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  while (!file_has(path, needle)) {
    assert_alive(child, log);
    if (mb_os_mono_ns() > deadline) {
      dump("log", log);
      FAIL("'%s' did not appear in %s within %d ms", needle, path, START_TIMEOUT_MS);
    }
    mb_os_sleep_ms(2);
  }
}

/* `membroker service -c cfg`, stdout and stderr into `out` (NULL: inherited). */
static void start_service(mb_os_child_t *child, const char *cfg, const char *out) {
  const char *argv[] = {MB_BROKER_EXE, "service", "-c", cfg, NULL};
  ASSERT_OK(mb_os_spawn_redirect(argv, out, child));
}

/* SIGTERM and expect a clean exit (0). */
static void term_and_wait(mb_os_child_t *child, const char *log) {
  int code = -1;
  ASSERT_EQ(kill((pid_t)child->pid, SIGTERM), 0);
  if (mb_os_child_wait(child, STOP_TIMEOUT_MS, &code) != 0) {
    mb_os_child_kill(child);
    mb_os_child_wait(child, -1, &code);
    dump("log", log);
    FAIL("membroker did not stop within %d ms of SIGTERM", STOP_TIMEOUT_MS);
  }
  if (code != 0)
    dump("log", log);
  ASSERT_EQ(code, 0);
}

/*
 * SIGHUP after the log file was moved away (logrotate without copytruncate): the broker keeps
 * running, writes a new file at the configured path, and the moved file stays whole (it ends
 * with the line that says why the log was reopened). SIGUSR1 does the same; SIGUSR2 logs one
 * status line. A reopen that fails (the path is a folder now) keeps the old file and says so
 * in it.
 */
static void sighup(void) {
  char cfgp[512], log[512], moved1[600], moved2[600], moved3[600], inst[48], want[128];
  static char text[TEXT_MAX];
  mb_os_child_t child;
  mb_config_t c;

  tmp_path(cfgp, sizeof cfgp, "hup.json");
  tmp_path(log, sizeof log, "hup.log");
  snprintf(moved1, sizeof moved1, "%s.moved1", log);
  snprintf(moved2, sizeof moved2, "%s.moved2", log);
  snprintf(moved3, sizeof moved3, "%s.moved3", log);
  remove(log);
  fx_config_pid(&c, "s", "hup");
  fx_log(&c, MB_LOG_INFO, log);
  snprintf(inst, sizeof inst, "%s", c.instance);
  fx_write_config(cfgp, &c, NULL);
  start_service(&child, cfgp, NULL);
  wait_file_has(&child, log, "ready in", log);

  /* SIGHUP: a new file at the path; the moved one ends with the reason. */
  ASSERT_EQ(rename(log, moved1), 0);
  ASSERT_EQ(kill((pid_t)child.pid, SIGHUP), 0);
  wait_file_has(&child, log, "log file reopened", moved1);
  assert_alive(&child, log);
  mb_test_file_text(moved1, text, sizeof text);
  ASSERT_CONTAINS(text, "ready in");
  ASSERT_CONTAINS(text, "SIGHUP: reopening the log file");
  ASSERT(strstr(text, "log file reopened") == NULL);

  /* SIGUSR1: the same. */
  ASSERT_EQ(rename(log, moved2), 0);
  ASSERT_EQ(kill((pid_t)child.pid, SIGUSR1), 0);
  wait_file_has(&child, log, "log file reopened", moved2);
  ASSERT(file_has(moved2, "SIGUSR1: reopening the log file"));

  /* SIGUSR2: one status line. */
  ASSERT_EQ(kill((pid_t)child.pid, SIGUSR2), 0);
  snprintf(want, sizeof want, "SIGUSR2: instance %s, 0 players, 0 npcs, 0 clients attached", inst);
  wait_file_has(&child, log, want, log);

  /* A reopen that cannot open the path keeps writing to the file it has. */
  ASSERT_EQ(rename(log, moved3), 0);
  ASSERT_EQ(mkdir(log, 0700), 0);
  ASSERT_EQ(kill((pid_t)child.pid, SIGHUP), 0);
  wait_file_has(&child, moved3, "cannot reopen it, still writing to the file open before", moved3);
  assert_alive(&child, moved3);
  ASSERT_EQ(rmdir(log), 0);

  term_and_wait(&child, moved3);
  ASSERT(file_has(moved3, "stopped"));  /* the old file stayed in use to the end */
  ASSERT(file_has(moved1, "ready in")); /* and the moved files were left alone */
  remove(moved1);
  remove(moved2);
  remove(moved3);
  remove(log);
  remove(cfgp);
}

/*
 * stderr is the journal when $JOURNAL_STREAM names its device and inode: every line starts
 * with "<N>" (6 info here) and no timestamp. With $JOURNAL_STREAM naming another file, lines
 * keep their timestamp and carry no prefix.
 */
static void journal_run(const char *tag, int matching) { /* tag: [a-z] only */
  char cfgp[512], out[512], stream[64], line[64];
  static char text[TEXT_MAX];
  mb_os_child_t child;
  mb_config_t c;
  struct stat st;
  FILE *f;
  char *p;

  snprintf(line, sizeof line, "%s.json", tag);
  tmp_path(cfgp, sizeof cfgp, line);
  tmp_path(out, sizeof out, "journal.out");
  fx_config_pid(&c, "j", tag);
  fx_write_config(cfgp, &c, NULL);
  f = fopen(out, "wb");
  ASSERT(f != NULL);
  fclose(f);
  ASSERT_EQ(stat(out, &st), 0);
  if (matching)
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
  else
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
  ASSERT_OK(mb_os_env_set("JOURNAL_STREAM", stream));
  start_service(&child, cfgp, out); /* truncates `out`: the same inode */
  ASSERT_OK(mb_os_env_set("JOURNAL_STREAM", NULL));
  wait_file_has(&child, out, "ready in", out);
  term_and_wait(&child, out);

  mb_test_file_text(out, text, sizeof text);
  ASSERT(text[0] != '\0');
  for (p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
    snprintf(line, sizeof line, "%.*s", (int)strcspn(p, "\n"), p);
    if (matching && strncmp(p, "<6>info  ", 9) != 0 && strncmp(p, "<4>warn  ", 9) != 0)
      FAIL("stderr is the journal: the line \"%s\" has no priority prefix:\n%s", line, text);
    if (!matching && (p[0] == '<' || strncmp(p, "20", 2) != 0))
      FAIL("stderr is not the journal: the line \"%s\" must start with its timestamp:\n%s", line,
           text);
    if (strchr(p, '\n') == NULL)
      break;
  }
  if (matching)
    ASSERT_CONTAINS(text, "\n<6>info  ready in ");
  remove(out);
  remove(cfgp);
}

/* A config error before the log is open: still one line, at priority 3 (error). */
static void journal_config_error(void) {
  char cfgp[512], out[512], stream[64];
  static char text[TEXT_MAX];
  mb_os_child_t child;
  mb_config_t c;
  struct stat st;
  int code = -1;
  FILE *f;

  tmp_path(cfgp, sizeof cfgp, "jbad.json");
  tmp_path(out, sizeof out, "jbad.out");
  fx_config_pid(&c, "j", "bad");
  fx_write_config(cfgp, &c, "\"regoins\": []");
  f = fopen(out, "wb");
  ASSERT(f != NULL);
  fclose(f);
  ASSERT_EQ(stat(out, &st), 0);
  snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
  ASSERT_OK(mb_os_env_set("JOURNAL_STREAM", stream));
  start_service(&child, cfgp, out);
  ASSERT_OK(mb_os_env_set("JOURNAL_STREAM", NULL));
  if (mb_os_child_wait(&child, STOP_TIMEOUT_MS, &code) != 0) {
    mb_os_child_kill(&child);
    mb_os_child_wait(&child, -1, &code);
    FAIL("membroker kept running with a bad config");
  }
  ASSERT_EQ(code, 1);
  mb_test_file_text(out, text, sizeof text);
  if (strncmp(text, "<3>membroker: ", 14) != 0 || strstr(text, "regoins") == NULL)
    FAIL("a config error to the journal must be \"<3>membroker: ...regoins...\": \"%s\"", text);
  remove(out);
  remove(cfgp);
}

/* A fake systemd's notify socket at `path`; returns the descriptor (non-blocking). */
static int notify_socket(const char *path) {
  struct sockaddr_un sa;
  size_t n = strlen(path);
  int fd;
  ASSERT(n < sizeof sa.sun_path);
  unlink(path);
  fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT(fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, n);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  return fd;
}

/*
 * WATCHDOG_USEC=200000: after READY=1 the loop sends WATCHDOG=1 again and again (every 100
 * ms); STOPPING=1 follows SIGTERM.
 */
static void watchdog(void) {
  char cfgp[512], log[512], sock[256], msg[256];
  mb_os_child_t child;
  mb_config_t c;
  int fd, pings = 0;

  tmp_path(cfgp, sizeof cfgp, "wd.json");
  tmp_path(log, sizeof log, "wd.log");
  tmp_path(sock, sizeof sock, "wd.sock");
  remove(log);
  fx_config_pid(&c, "w", "wd");
  fx_log(&c, MB_LOG_INFO, log);
  fx_write_config(cfgp, &c, NULL);
  fd = notify_socket(sock);

  ASSERT_OK(mb_os_env_set("NOTIFY_SOCKET", sock));
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "200000"));
  ASSERT_OK(mb_os_env_set("WATCHDOG_PID", NULL));
  start_service(&child, cfgp, NULL);
  ASSERT_OK(mb_os_env_set("NOTIFY_SOCKET", NULL));
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", NULL));

  if (mb_test_dgram_recv(fd, msg, sizeof msg, START_TIMEOUT_MS) < 0) {
    mb_os_child_kill(&child);
    dump("log", log);
    FAIL("no notification within %d ms", START_TIMEOUT_MS);
  }
  ASSERT_STR_EQ(msg, "READY=1");
  while (pings < 5) {
    if (mb_test_dgram_recv(fd, msg, sizeof msg, START_TIMEOUT_MS) < 0) {
      mb_os_child_kill(&child);
      dump("log", log);
      FAIL("only %d WATCHDOG=1 after READY=1 within %d ms", pings, START_TIMEOUT_MS);
    }
    ASSERT_STR_EQ(msg, "WATCHDOG=1");
    pings++;
  }
  ASSERT(file_has(log, "systemd watchdog: WATCHDOG=1 every 100 ms"));
  term_and_wait(&child, log);
  do
    ASSERT(mb_test_dgram_recv(fd, msg, sizeof msg, STOP_TIMEOUT_MS) > 0);
  while (strcmp(msg, "WATCHDOG=1") == 0);
  ASSERT_STR_EQ(msg, "STOPPING=1");
  close(fd);
  unlink(sock);
  remove(log);
  remove(cfgp);
}

/* mb__svc_watchdog_ms reads the environment as sd_watchdog_enabled(3) does. */
static void watchdog_env(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%u", self_pid());
  ASSERT_OK(mb_os_env_set("NOTIFY_SOCKET", "/run/nowhere.sock"));
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "30000000"));
  ASSERT_OK(mb_os_env_set("WATCHDOG_PID", NULL));
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 15000);
  ASSERT_OK(mb_os_env_set("WATCHDOG_PID", pid));
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 15000);
  ASSERT_OK(mb_os_env_set("WATCHDOG_PID", "1")); /* another process's */
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 0);
  ASSERT_OK(mb_os_env_set("WATCHDOG_PID", NULL));
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "1000"));
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 1); /* never 0 for a period that is set */
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "30s"));
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 0);
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "0"));
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 0);
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", "30000000"));
  ASSERT_OK(mb_os_env_set("NOTIFY_SOCKET", NULL)); /* nowhere to send to */
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 0);
  ASSERT_OK(mb_os_env_set("WATCHDOG_USEC", NULL));
}

/*
 * $STATE_DIRECTORY (the unit's StateDirectory=) is persist.dir when the config leaves it
 * unset: the stop's save lands there.
 */
static void state_directory(void) {
  char cfgp[512], log[512], dir[512], file[700];
  mb_os_child_t child;
  mb_config_t c;

  tmp_path(cfgp, sizeof cfgp, "sd.json");
  tmp_path(log, sizeof log, "sd.log");
  tmp_path(dir, sizeof dir, "statedir");
  remove(log);
  ASSERT(mkdir(dir, 0700) == 0 || errno == EEXIST);
  fx_config_pid(&c, "d", "sd");
  fx_log(&c, MB_LOG_INFO, log);
  ASSERT_EQ(c.persist_dir[0], '\0');
  fx_write_config(cfgp, &c, NULL);
  snprintf(file, sizeof file, "%s/%s.state", dir, c.instance);
  remove(file);

  ASSERT_OK(mb_os_env_set("STATE_DIRECTORY", dir));
  start_service(&child, cfgp, NULL);
  ASSERT_OK(mb_os_env_set("STATE_DIRECTORY", NULL));
  wait_file_has(&child, log, "ready in", log);
  ASSERT(file_has(log, "persist.dir is not set: saving the state in"));
  term_and_wait(&child, log);
  ASSERT(file_has(log, "state saved in"));
  if (access(file, F_OK) != 0) {
    dump("log", log);
    FAIL("no state file %s after the stop", file);
  }
  remove(file);
  rmdir(dir);
  remove(log);
  remove(cfgp);
}

/*
 * map-load of a missing file under /tmp: under systemd ($INVOCATION_ID, as every unit's
 * process has it) the error names the sandbox (PrivateTmp=) and what to do; outside it, only
 * "no such file". The hint itself: only for the paths the unit hides.
 */
static void sandbox_hint(void) {
  char cfgp[512], log[512], gmap[512], out[4096];
  mb_os_child_t child;
  mb_config_t c;
  int code;

  ASSERT_OK(mb_os_env_set("INVOCATION_ID", "0123456789abcdef0123456789abcdef"));
  ASSERT_CONTAINS(mb__svc_sandbox_hint("/tmp/maps/world.gmap"), "PrivateTmp=");
  ASSERT_CONTAINS(mb__svc_sandbox_hint("/home/games/world.gmap"), "ProtectHome=");
  ASSERT_STR_EQ(mb__svc_sandbox_hint("/srv/membroker/world.gmap"), "");
  ASSERT_STR_EQ(mb__svc_sandbox_hint("/tmpfoo/world.gmap"), "");
  ASSERT_OK(mb_os_env_set("INVOCATION_ID", NULL));
  ASSERT_STR_EQ(mb__svc_sandbox_hint("/tmp/maps/world.gmap"), "");

  tmp_path(cfgp, sizeof cfgp, "sb.json");
  tmp_path(log, sizeof log, "sb.log");
  tmp_path(gmap, sizeof gmap, "missing.gmap");
  remove(log);
  remove(gmap);
  fx_config_pid(&c, "b", "sb");
  fx_log(&c, MB_LOG_INFO, log);
  fx_write_config(cfgp, &c, NULL);
  ASSERT_OK(mb_os_env_set("INVOCATION_ID", "0123456789abcdef0123456789abcdef"));
  start_service(&child, cfgp, NULL);
  ASSERT_OK(mb_os_env_set("INVOCATION_ID", NULL));
  wait_file_has(&child, log, "ready in", log);
  code = mb_test_run_exe(MB_MBCTL_EXE, 30000, out, sizeof out, "--instance", c.instance, "map-load",
                         "world", gmap, NULL);
  ASSERT_EXIT(code, 1, out);
  ASSERT_CONTAINS(out, "no such file or directory; the broker runs under systemd");
  ASSERT_CONTAINS(out, "PrivateTmp=");
  term_and_wait(&child, log);
  remove(log);
  remove(cfgp);
}

#endif /* MB_OS_POSIX */

TEST(sandbox_hint) {
#if MB_OS_POSIX
  sandbox_hint();
#else
  ASSERT_STR_EQ(mb__svc_sandbox_hint("C:\\Windows\\Temp\\x.gmap"), "");
#endif
}

TEST(sighup_reopens_log) {
#if MB_OS_POSIX
  sighup();
#else
  SKIP("SIGHUP, SIGUSR1 and SIGUSR2 exist on POSIX only");
#endif
}

TEST(journal_prefixes) {
#if MB_OS_POSIX
  journal_run("journal", 1);
  journal_run("nojournal", 0);
  journal_config_error();
#else
  SKIP("the systemd journal exists on Linux only");
#endif
}

TEST(watchdog_pings) {
#if MB_OS_POSIX
  watchdog();
#else
  SKIP("the systemd watchdog exists on Linux only");
#endif
}

TEST(watchdog_env) {
#if MB_OS_POSIX
  watchdog_env();
#else
  ASSERT_EQ_U64(mb__svc_watchdog_ms(), 0);
  ASSERT_EQ(mb__svc_stderr_is_journal(), 0);
#endif
}

TEST(state_directory_default) {
#if MB_OS_POSIX
  state_directory();
#else
  SKIP("$STATE_DIRECTORY is set by systemd only");
#endif
}
