/*
 * test-pressure.c - the control pipe under pressure (issue 13), against a broker child
 * (childbroker.c): 1,000 watchers that never read, 1,000 slow-loris connections, the slots kept
 * for administrators, and RLIMIT_NOFILE reached. Each checks the two things an operator needs:
 * the broker's memory stays bounded (RSS from /proc, Linux) and an administrator's `status` is
 * answered within 1 s throughout.
 *
 * The RSS bound is the 64 MiB, times 4 under AddressSanitizer (shadow memory and the
 * freed-memory quarantine are the sanitizer's, not the broker's); the broker child's
 * quarantine is cut from 256 to 16 MiB then (ASAN_OPTIONS), or every freed report would stay
 * resident.
 */
#include "childbroker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if MB_OS_POSIX
#include <sys/resource.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif

#define T_CONNS 1000
#define T_RSS_MAX ((uint64_t)64 * 1024 * 1024 * (T_ASAN ? 4 : 1))
#define T_ANSWER_MS 1000 /* the bound for an administrator's status */
#define T_RUN_MS 3000    /* how long each flood runs while we watch */
/* Watchers run longer: the kernel takes ~90 events of each socket before the broker has to
 * hold any (about 4.5 s at 50 ms), and only then does a queueing broker grow. */
#define T_WATCH_RUN_MS 10000

/* VmRSS of process pid in bytes (Linux /proc), or 0 where it cannot be read. */
static uint64_t rss_of(uint32_t pid) {
  char path[64], line[256];
  uint64_t kib = 0;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%u/status", (unsigned)pid);
  if ((f = fopen(path, "r")) == NULL)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %llu kB", (unsigned long long *)&kib) == 1)
      break;
  fclose(f);
  return kib * 1024;
}

/* Skip unless this test can read the broker's RSS and hold T_CONNS + spare descriptors. */
static void need_rss_and_fds(void) {
  if (T_ASAN)
    ASSERT_OK(mb_os_env_set("ASAN_OPTIONS", "quarantine_size_mb=16"));
#if MB_OS_POSIX
  struct rlimit rl;
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  if (rss_of(self.pid) == 0)
    SKIP("no /proc/<pid>/status to read a process's RSS from");
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    SKIP("getrlimit failed");
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * T_CONNS + 100) {
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * T_CONNS + 100)
      SKIP("RLIMIT_NOFILE hard limit %llu is too low for %d connections",
           (unsigned long long)rl.rlim_max, T_CONNS);
    rl.rlim_cur = 2 * T_CONNS + 100;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      SKIP("cannot raise RLIMIT_NOFILE for %d connections", T_CONNS);
  }
#else
  SKIP("the broker's RSS is read from /proc (Linux); no working-set helper in os.h yet");
#endif
}

/*
 * An administrator (this process: root or the broker's user) connects afresh and asks for
 * `status`: the answer must come within T_ANSWER_MS. Returns the milliseconds it took.
 */
static unsigned admin_status(tbroker_t *t) {
  mb_pipe_conn_t c;
  uint64_t t0 = mb_os_mono_ns();
  char *line;
  size_t len;
  cJSON *j;
  unsigned ms;
  ASSERT_OK(mb__pipe_connect(&c, t->pipe, T_ANSWER_MS));
  send_text(&c, "{\"cmd\":\"status\"}\n", 17);
  ASSERT_OK(mb__pipe_read_line(&c, &line, &len, 1 << 24, t0 + (uint64_t)T_ANSWER_MS * 1000000u));
  ms = (unsigned)((mb_os_mono_ns() - t0) / 1000000u);
  j = cJSON_Parse(line);
  ASSERT((j) != NULL);
  expect_ok(j);
  ASSERT_STR_EQ(jstr(j, "result.server.instance"), t->instance);
  cJSON_Delete(j);
  mb__pipe_close(&c);
  return ms;
}

#if MB_OS_POSIX
/*
 * After a flood leaves: the broker closes the connections as it reads their ends, so poll
 * (10 s at most) until a fresh connection gets an answer to `ping`.
 */
static void answered_again(tbroker_t *t) {
  uint64_t deadline = mb_os_mono_ns() + 10000000000u;
  mb_pipe_conn_t c;
  char *line;
  size_t len;
  int ok = 0;
  while (!ok) {
    if (mb_os_mono_ns() > deadline)
      FAIL("no fresh connection was answered with ok in 10 s after the flood left");
    if (mb__pipe_connect(&c, t->pipe, 1000) != 0)
      continue;
    if (mb__pipe_write(&c, "{\"cmd\":\"ping\"}\n", 15) == 0 &&
        mb__pipe_read_line(&c, &line, &len, 4096, mb_os_mono_ns() + 1000000000u) == 0)
      ok = strstr(line, "\"ok\":true") != NULL;
    mb__pipe_close(&c);
    if (!ok)
      mb_os_sleep_ms(10); /* pacing the retries */
  }
}
#endif

/* Watch for run_ms: status answered in time and RSS under the bound, every ~100 ms. Runs
 * `step` (if any) once a second. Returns the highest RSS seen. */
static uint64_t watch_broker(tbroker_t *t, unsigned run_ms, void (*step)(void *), void *arg) {
  uint64_t start = mb_os_mono_ns(), next_step = start, peak = 0, rss;
  unsigned worst = 0, ms, n = 0;
  while (mb_os_mono_ns() - start < (uint64_t)run_ms * 1000000u) {
    if (step && mb_os_mono_ns() >= next_step) {
      step(arg);
      next_step += 1000000000u;
    }
    ms = admin_status(t);
    worst = ms > worst ? ms : worst;
    rss = rss_of(t->child.pid);
    ASSERT_NE(rss, 0);
    if (rss >= T_RSS_MAX)
      FAIL("broker RSS %llu KiB, over the bound of %llu KiB", (unsigned long long)(rss >> 10),
           (unsigned long long)(T_RSS_MAX >> 10));
    peak = rss > peak ? rss : peak;
    n++;
    mb_os_sleep_ms(100); /* pacing the samples, not waiting for a condition */
  }
  printf("# %u status requests, slowest answered in %u ms; broker RSS peak %llu KiB (bound %llu "
         "KiB%s)\n",
         n, worst, (unsigned long long)(peak >> 10), (unsigned long long)(T_RSS_MAX >> 10),
         T_ASAN ? ", ASan: x4" : "");
  return peak;
}

static mb_pipe_conn_t *open_conns(tbroker_t *t, int n) {
  mb_pipe_conn_t *c = calloc((size_t)n, sizeof *c);
  int i;
  ASSERT((c) != NULL);
  for (i = 0; i < n; i++)
    ASSERT_OK(mb__pipe_connect(&c[i], t->pipe, 5000));
  return c;
}

static void close_conns(mb_pipe_conn_t *c, int n) {
  int i;
  for (i = 0; i < n; i++)
    mb__pipe_close(&c[i]);
  free(c);
}

/* 1,000 watchers at 50 ms that never read: each holds one event at most, so the broker's RSS
 * stays bounded, and an administrator is answered throughout. */
TEST(watchers_never_read) {
  tbroker_t t;
  mb_pipe_conn_t *w;
  uint64_t base, after = 0, deadline;
  static const char req[] = "{\"id\":1,\"cmd\":\"watch\",\"args\":{\"interval_ms\":50}}\n";
  const char *opts[] = {"admin_reserve=4", NULL};
  int i;
  need_rss_and_fds();
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "wat", "1100", "600", opts);
  broker_wait_ready(&t);
  base = rss_of(t.child.pid);
  w = open_conns(&t, T_CONNS);
  for (i = 0; i < T_CONNS; i++)
    send_text(&w[i], req, sizeof req - 1);
  watch_broker(&t, T_WATCH_RUN_MS, NULL, NULL);
  close_conns(w, T_CONNS);
  /* Freed back when they leave: poll until the RSS is within 16 MiB of the start. */
  deadline = mb_os_mono_ns() + 10000000000u;
  do {
    admin_status(&t);
    after = rss_of(t.child.pid);
    if (after < base + ((uint64_t)16 << 20))
      break;
    mb_os_sleep_ms(50);
  } while (mb_os_mono_ns() < deadline);
  printf("# broker RSS at start %llu KiB, after the watchers left %llu KiB\n",
         (unsigned long long)(base >> 10), (unsigned long long)(after >> 10));
  ASSERT_LT(after, base + ((uint64_t)16 << 20) * (T_ASAN ? 8 : 1));
  broker_down(&t);
}

typedef struct {
  mb_pipe_conn_t *c;
  int n;
  unsigned sent;
} loris_t;

/* One more byte of an unfinished request on each connection (they are closed by the line
 * timeout sooner or later: a failed write is expected then). */
static void loris_step(void *arg) {
  static const char req[] = "{\"cmd\":\"status\"";
  loris_t *l = arg;
  int i;
  for (i = 0; i < l->n; i++)
    (void)mb__pipe_write(&l->c[i], &req[l->sent % (sizeof req - 1)], 1);
  l->sent++;
}

/* 1,000 connections sending a byte a second: bounded RSS, an administrator answered, and
 * every one closed by pipe.line_timeout_ms with a too_large line naming it. */
TEST(slow_loris) {
  tbroker_t t;
  loris_t l;
  const char *opts[] = {"line_ms=1000", NULL};
  char *line;
  size_t len;
  int i, timed_out = 0;
  need_rss_and_fds();
  mb_os_ignore_sigpipe();
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "lor", "1100", "600", opts);
  broker_wait_ready(&t);
  l.n = T_CONNS;
  l.sent = 0;
  l.c = open_conns(&t, T_CONNS);
  watch_broker(&t, T_RUN_MS, loris_step, &l);
  for (i = 0; i < T_CONNS; i++) {
    cJSON *j;
    if (mb__pipe_read_line(&l.c[i], &line, &len, 4096, mb_os_mono_ns() + 10000000000u) != 0)
      FAIL("connection %d: no line-timeout answer: %s", i, mb_last_error());
    j = cJSON_Parse(line);
    ASSERT((j) != NULL);
    expect_error(j, "too_large");
    ASSERT((strstr(jstr(j, "error.message"), "pipe.line_timeout_ms")) != NULL);
    cJSON_Delete(j);
    /* ... and then closed: the next read ends. */
    ASSERT_NE(mb__pipe_read_line(&l.c[i], &line, &len, 4096, mb_os_mono_ns() + 10000000000u), 0);
    timed_out++;
  }
  ASSERT_EQ(timed_out, T_CONNS);
  close_conns(l.c, T_CONNS);
  admin_status(&t);
  broker_down(&t);
}

/* ---- the slots kept for administrators --------------------------------------------------- */

#define T_RESERVE_MAX "8"
#define T_RESERVE 3

/*
 * As nobody (not an administrator): fill every slot that is not reserved, check the next
 * connection is told busy naming pipe.admin_reserve, create `ready` and hold the connections
 * until killed (30 s at most). argv: pipe ready. Exit 10 (never reached when killed), 100+
 * failures.
 */
CHILD(fill_as_nobody) {
  mb_pipe_conn_t c[16], extra;
  char *line;
  size_t len;
  int i, n = atoi(T_RESERVE_MAX) - T_RESERVE;
  FILE *f;
  if (argc != 2)
    return 100;
  for (i = 0; i < n; i++) {
    if (mb__pipe_connect(&c[i], argv[0], 5000) != 0 ||
        mb__pipe_write(&c[i], "{\"cmd\":\"ping\"}\n", 15) != 0 ||
        mb__pipe_read_line(&c[i], &line, &len, 4096, mb_os_mono_ns() + 10000000000u) != 0)
      return 101;
    if (strstr(line, "\"ok\":true") == NULL)
      return 102;
  }
  if (mb__pipe_connect(&extra, argv[0], 5000) != 0 ||
      mb__pipe_read_line(&extra, &line, &len, 4096, mb_os_mono_ns() + 10000000000u) != 0)
    return 103;
  if (strstr(line, "\"busy\"") == NULL || strstr(line, "pipe.admin_reserve") == NULL)
    return 104;
  mb__pipe_close(&extra);
  if ((f = fopen(argv[1], "w")) == NULL)
    return 105;
  fclose(f);
  for (i = 0; i < 300; i++)
    mb_os_sleep_ms(100); /* holding the slots until the parent kills us */
  return 10;
}

#if MB_OS_POSIX
/* Start CHILD `child_name` as nobody with (pipe, ready file) and wait until it has created the
 * ready file (in /tmp: nobody may write there), within timeout_ms; `what` names its work. */
static void nobody_ready(mb_os_child_t *child, const char *child_name, const char *pipe,
                         const char *tag, int timeout_ms, const char *what) {
  char ready[256];
  static char path[300];
  uint64_t deadline;
  FILE *f;
  int code;
  mb_test_name(ready, sizeof ready, tag);
  snprintf(path, sizeof path, "/tmp/%s", ready);
  remove(path);
  if (mb_test_spawn_as_nobody(child, child_name, pipe, path) != 0)
    FAIL("cannot start %s as nobody", child_name);
  deadline = mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u;
  while ((f = fopen(path, "r")) == NULL) {
    if (mb_os_child_wait(child, 0, &code) == 0)
      FAIL("the nobody child exited with %d before %s", code, what);
    if (mb_os_mono_ns() > deadline) {
      mb_os_child_kill(child);
      mb_os_child_wait(child, -1, &code);
      FAIL("the nobody child did not finish %s in %d ms", what, timeout_ms);
    }
    mb_os_sleep_ms(10);
  }
  fclose(f);
  remove(path);
}
#endif

/* max_connections 8, admin_reserve 3: with the 5 others' slots taken by nobody, each of 3
 * administrators still gets in and is answered; a 4th is told busy (everything is taken). */
TEST(admin_reserve) {
#if MB_OS_POSIX
  tbroker_t t;
  mb_os_child_t filler;
  mb_pipe_conn_t a[T_RESERVE], more;
  char *line;
  const char *opts[] = {"admin_reserve=3", NULL};
  size_t len;
  int i, code;
  cJSON *j;
  if (geteuid() != 0)
    SKIP("a peer that is not an administrator needs another user: setpriv to nobody needs root");
  if (access("/usr/bin/setpriv", X_OK) != 0)
    SKIP("no /usr/bin/setpriv to run a peer as nobody");
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "res", T_RESERVE_MAX, "666", opts);
  broker_wait_ready(&t);
  nobody_ready(&filler, "fill_as_nobody", t.pipe, "reserve-ready", 20000, "filling the slots");
  /* Every reserved slot takes an administrator, each answered. */
  for (i = 0; i < T_RESERVE; i++) {
    ASSERT_OK(mb__pipe_connect(&a[i], t.pipe, 5000));
    j = call(&a[i], "{\"cmd\":\"status\"}");
    expect_ok(j);
    cJSON_Delete(j);
  }
  /* Now all 8 are open: even an administrator is told busy. */
  ASSERT_OK(mb__pipe_connect(&more, t.pipe, 5000));
  ASSERT_OK(mb__pipe_read_line(&more, &line, &len, 4096, mb_os_mono_ns() + 10000000000u));
  ASSERT((strstr(line, "\"busy\"")) != NULL);
  ASSERT((strstr(line, "pipe.max_connections is 8;")) != NULL);
  mb__pipe_close(&more);
  for (i = 0; i < T_RESERVE; i++)
    mb__pipe_close(&a[i]);
  mb_os_child_kill(&filler);
  mb_os_child_wait(&filler, -1, &code);
  answered_again(&t);
  broker_down(&t);
#else
  SKIP("a peer that is not an administrator is made with setpriv (POSIX, root)");
#endif
}

/* ---- RLIMIT_NOFILE ------------------------------------------------------------------------ */

/* A broker child limited to 64 descriptors, flooded with 100 connections: the ones past the
 * limit are told busy (or closed by libuv's reserve descriptor), a warning is logged, the
 * broker lives, and once the flood leaves a new connection is answered. */
TEST(nofile_flood) {
#if MB_OS_POSIX
  tbroker_t t;
  mb_pipe_conn_t *c;
  char log[256], opt_log[300], *line, *text;
  const char *opts[] = {"nofile=64", opt_log, NULL};
  size_t len;
  int i, ok = 0, busy = 0, gone = 0, code;
  mb_test_name(log, sizeof log, "nofile.log");
  remove(log);
  snprintf(opt_log, sizeof opt_log, "log=%s", log);
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "nof", "1100", "600", opts);
  broker_wait_ready(&t);
  c = open_conns(&t, 100);
  for (i = 0; i < 100; i++) {
    if (mb__pipe_write(&c[i], "{\"cmd\":\"ping\"}\n", 15) != 0 ||
        mb__pipe_read_line(&c[i], &line, &len, 4096, mb_os_mono_ns() + 10000000000u) != 0) {
      gone++;
      continue;
    }
    if (strstr(line, "\"ok\":true"))
      ok++;
    else if (strstr(line, "\"busy\"") && strstr(line, "out of file descriptors"))
      busy++;
    else
      FAIL("connection %d: unexpected answer %s", i, line);
  }
  printf("# 100 connections to a broker with RLIMIT_NOFILE 64: %d served, %d told busy, %d "
         "closed\n",
         ok, busy, gone);
  ASSERT_GT(ok, 10);
  ASSERT_GT(busy + gone, 0);
  ASSERT_EQ(mb_os_child_wait(&t.child, 0, &code), MB_ETIMEOUT);
  close_conns(c, 100);
  answered_again(&t);
  broker_down(&t);
  text = mb_test_file_read(log);
  remove(log);
  if (strstr(text, "out of file descriptors") == NULL)
    FAIL("no out-of-descriptors warning in the broker's log:\n%s", text);
  free(text);
#else
  SKIP("RLIMIT_NOFILE is POSIX's; Windows has no per-process descriptor limit");
#endif
}

/* ---- the timeouts, everywhere (also Windows' named pipes) ------------------------------- */

/* A line left unfinished is answered too_large naming pipe.line_timeout_ms and closed; a
 * connection that sends nothing is closed by pipe.idle_timeout_ms; a watcher is not idle. */
TEST(timeouts_close_idle_and_unfinished) {
  tbroker_t t;
  mb_pipe_conn_t part, idle, watcher;
  const char *opts[] = {"line_ms=300", "idle_ms=1000", NULL};
  char *line;
  size_t len;
  int i;
  cJSON *j;
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "tmo", "64", "600", opts);
  broker_wait_ready(&t);
  ASSERT_OK(mb__pipe_connect(&part, t.pipe, 5000));
  ASSERT_OK(mb__pipe_connect(&idle, t.pipe, 5000));
  ASSERT_OK(mb__pipe_connect(&watcher, t.pipe, 5000));
  send_text(&part, "{\"cmd\":", 7);
  j = call(&watcher, "{\"id\":1,\"cmd\":\"watch\",\"args\":{\"interval_ms\":50}}");
  expect_ok(j);
  cJSON_Delete(j);
  j = read_json(&part);
  expect_error(j, "too_large");
  ASSERT(strstr(jstr(j, "error.message"), "pipe.line_timeout_ms") != NULL);
  cJSON_Delete(j);
  ASSERT_NE(mb__pipe_read_line(&part, &line, &len, 4096, mb_os_mono_ns() + 10000000000u), 0);
  /* The idle one ends (no answer, the pipe closes) ... */
  ASSERT_NE(mb__pipe_read_line(&idle, &line, &len, 4096, mb_os_mono_ns() + 10000000000u), 0);
  /* ... while the watcher, past the idle timeout too, is still open: its ping is answered
   * after the events it has not read yet. */
  send_text(&watcher, "{\"id\":2,\"cmd\":\"ping\"}\n", 23);
  for (i = 0;; i++) {
    ASSERT_LT(i, 1000);
    j = read_json(&watcher);
    if (jget(j, "event") == NULL) {
      ASSERT_EQ((int)jnum(j, "id"), 2);
      expect_ok(j);
      cJSON_Delete(j);
      break;
    }
    cJSON_Delete(j);
  }
  mb__pipe_close(&part);
  mb__pipe_close(&idle);
  mb__pipe_close(&watcher);
  broker_down(&t);
}

/* ---- the line clock: one unfinished line, only while the broker reads ------------------- */

/*
 * A client that pipelines (each write finishes one line and starts the next) for twice
 * pipe.line_timeout_ms is never closed: the clock stops at every newline. Then a line finished
 * at 70% of the timeout is answered, and the next one, started with it and finished 70% of a
 * timeout later (140% since the first began), gets its own full timeout and is answered too.
 */
TEST(line_clock_times_one_line) {
  tbroker_t t;
  mb_pipe_conn_t c;
  const char *opts[] = {"line_ms=1000", NULL};
  static const char head[] = "{\"cmd\":\"pi", mid[] = "ng\"}\n{\"cmd\":\"pi", tail[] = "ng\"}\n";
  uint64_t start;
  int n = 0;
  cJSON *j;
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "clk", "64", "600", opts);
  broker_wait_ready(&t);
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  send_text(&c, head, sizeof head - 1);
  start = mb_os_mono_ns();
  while (mb_os_mono_ns() - start < 2000000000u) {
    mb_os_sleep_ms(50); /* pacing the client: a line every 50 ms */
    send_text(&c, mid, sizeof mid - 1);
    j = read_json(&c);
    expect_ok(j); /* a too_large here is the line timeout closing a healthy client */
    cJSON_Delete(j);
    n++;
  }
  send_text(&c, tail, sizeof tail - 1);
  j = read_json(&c);
  expect_ok(j);
  cJSON_Delete(j);
  printf("# %d lines pipelined over 2 s with pipe.line_timeout_ms 1000, all answered\n", n + 1);
  ASSERT_GT(n, 10);
  /* A line finished at 0.7 of the timeout, the next timed from its own start. */
  send_text(&c, head, sizeof head - 1);
  mb_os_sleep_ms(700); /* the client's slowness under test, not a wait for a condition */
  send_text(&c, mid, sizeof mid - 1);
  j = read_json(&c);
  expect_ok(j);
  cJSON_Delete(j);
  mb_os_sleep_ms(700);
  send_text(&c, tail, sizeof tail - 1);
  j = read_json(&c);
  expect_ok(j);
  cJSON_Delete(j);
  /* ... and a line left unfinished is still timed out. */
  send_text(&c, head, sizeof head - 1);
  j = read_json(&c);
  expect_error(j, "too_large");
  ASSERT(strstr(jstr(j, "error.message"), "pipe.line_timeout_ms") != NULL);
  cJSON_Delete(j);
  mb__pipe_close(&c);
  broker_down(&t);
}

/* ---- a flood of requests from 1,000 clients that do not read ----------------------------- */

#if MB_OS_POSIX
/* The value of the pipe metric `name` (membroker_pipe_<name>) in the metrics text. */
static double pipe_metric(const char *text, const char *name) {
  char series[128];
  const char *p;
  size_t n;
  snprintf(series, sizeof series, "membroker_pipe_%s", name);
  n = strlen(series);
  for (p = text; p && *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0)) {
    if (strncmp(p, series, n) == 0 && (p[n] == ' ' || p[n] == '{')) {
      const char *sp = memchr(p, ' ', strcspn(p, "\n"));
      ASSERT(sp != NULL);
      return strtod(sp + 1, NULL);
    }
  }
  FAIL("no sample %s in the metrics", series);
  return -1;
}
#endif

#define T_FLOOD_LINES 3000 /* status requests per connection, sent at once, never read */

/*
 * As nobody (not an administrator): open T_CONNS connections, send each T_FLOOD_LINES `status`
 * requests (51 KB: the socket takes them whole without the broker reading), create `ready`
 * and hold them, reading nothing, until killed (30 s at most). argv: pipe ready. Exit 10
 * (never reached when killed), 100+ failures.
 */
CHILD(flood_as_nobody) {
  static const char req[] = "{\"cmd\":\"status\"}\n";
  mb_pipe_conn_t *c = calloc(T_CONNS, sizeof *c);
  char *text = malloc(T_FLOOD_LINES * (sizeof req - 1));
  int i;
  FILE *f;
  if (argc != 2 || c == NULL || text == NULL)
    return 100;
  for (i = 0; i < T_FLOOD_LINES; i++)
    memcpy(text + (size_t)i * (sizeof req - 1), req, sizeof req - 1);
  for (i = 0; i < T_CONNS; i++)
    if (mb__pipe_connect(&c[i], argv[0], 5000) != 0)
      return 101;
  for (i = 0; i < T_CONNS; i++)
    if (mb__pipe_write(&c[i], text, T_FLOOD_LINES * (sizeof req - 1)) != 0)
      return 102;
  if ((f = fopen(argv[1], "w")) == NULL)
    return 103;
  fclose(f);
  for (i = 0; i < 300; i++)
    mb_os_sleep_ms(100); /* holding the connections until the parent kills us */
  return 10;
}

/*
 * 1,000 connections of a non-administrator each sending 3,000 `status` requests and reading
 * nothing: the broker holds 16 MiB for all connections together at most and answers 64 lines
 * of non-administrators per loop iteration, so its RSS stays under 64 MiB and an
 * administrator's status is answered within 1 s throughout. After they leave, the heap is
 * trimmed: RSS back within 8 MiB of the start (x8 under ASan). And every accepted connection
 * was served or refused: accepted = served + refused_busy + refused_fd.
 */
TEST(request_flood_never_read) {
#if MB_OS_POSIX
  tbroker_t t;
  mb_os_child_t flood;
  const char *opts[] = {"admin_reserve=4", NULL};
  mb_pipe_conn_t mc;
  cJSON *j;
  uint64_t base, after = 0, bound, deadline;
  double accepted, served, busy, fd;
  int code;
  if (geteuid() != 0)
    SKIP("a peer that is not an administrator needs another user: setpriv to nobody needs root");
  if (access("/usr/bin/setpriv", X_OK) != 0)
    SKIP("no /usr/bin/setpriv to run a peer as nobody");
  need_rss_and_fds();
  memset(&t, 0, sizeof t);
  broker_spawn_ex(&t, "fld", "1100", "666", opts);
  broker_wait_ready(&t);
  base = rss_of(t.child.pid);
  nobody_ready(&flood, "flood_as_nobody", t.pipe, "flood-ready", 30000, "opening its connections");
  watch_broker(&t, T_RUN_MS, NULL, NULL);
  mb_os_child_kill(&flood);
  mb_os_child_wait(&flood, -1, &code);
  bound = base + ((uint64_t)8 << 20) * (T_ASAN ? 8 : 1);
  deadline = mb_os_mono_ns() + 10000000000u;
  do {
    admin_status(&t);
    after = rss_of(t.child.pid);
    if (after < bound)
      break;
    mb_os_sleep_ms(50); /* pacing the samples */
  } while (mb_os_mono_ns() < deadline);
  printf("# broker RSS at start %llu KiB, after the flood left %llu KiB (bound %llu KiB)\n",
         (unsigned long long)(base >> 10), (unsigned long long)(after >> 10),
         (unsigned long long)(bound >> 10));
  ASSERT_LT(after, bound);
  /* One metrics text: its own connection is counted in each figure alike. */
  ASSERT_OK(mb__pipe_connect(&mc, t.pipe, 5000));
  j = call(&mc, "{\"cmd\":\"metrics\"}");
  expect_ok(j);
  accepted = pipe_metric(jstr(j, "result.text"), "accepted_total");
  served = pipe_metric(jstr(j, "result.text"), "served_total");
  busy = pipe_metric(jstr(j, "result.text"), "refused_busy_total");
  fd = pipe_metric(jstr(j, "result.text"), "refused_fd_total");
  cJSON_Delete(j);
  mb__pipe_close(&mc);
  printf("# accepted %.0f = served %.0f + refused busy %.0f + refused fd %.0f\n", accepted, served,
         busy, fd);
  ASSERT_GT(served, T_CONNS);
  ASSERT_EQ(accepted, served + busy + fd);
  broker_down(&t);
#else
  SKIP("a peer that is not an administrator is made with setpriv (POSIX, root)");
#endif
}
