/*
 * test-metrics.c - the Prometheus view (service/metrics.c, the `metrics` command, mbctl metrics):
 * the renderer in-process (families once each, in a fixed order, HELP and TYPE before the
 * samples, OpenMetrics' "# EOF"), and the real mbctl against a broker child with two regions, a
 * pool and an attached client: its output fed to promtool (Debian package `prometheus`; on the
 * Windows build the .exe's output is handed to the Linux promtool through Wine's Unix side),
 * values that equal `status --json`, and --textfile's atomic replace and its down file (also
 * when the broker is stopped and does not answer); the broker label on every sample, two brokers'
 * textfiles in one directory served by node_exporter; the broker's own death and hang counters.
 * promtool or node_exporter missing is a SKIP, never a pass.
 */
#include "childbroker.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "membroker.h"
#include "metrics.h"

#if MB_OS_WIN
#include <windows.h>

#include "scm.h"
#else
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#endif

#ifndef MB_MBCTL_EXE
#error "MB_MBCTL_EXE must name the mbctl executable (CMake: $<TARGET_FILE:mbctl>)"
#endif

#define T_MBCTL_MS 30000
#define T_OUT_MAX (256 * 1024)
#define MBCTL(out, size, ...) mb_test_run_exe(MB_MBCTL_EXE, T_MBCTL_MS, out, size, __VA_ARGS__)

static char out[T_OUT_MAX];
static char out2[T_OUT_MAX];

/* The test broker's config: the fixture's two regions, pool "bullets" (64-byte objects, 1000),
 * no heartbeat timeout (this test process attaches and does not beat). */
static void metrics_config(mb_config_t *cfg) {
  fx_pool(cfg, "bullets", 64, 16, 1000);
  cfg->heartbeat_timeout_ms = 0;
}

BROKER_CONFIG(metrics, metrics_config)

/* ---- reading the exposition ---------------------------------------------------------------- */

/*
 * Sample line `line` (n bytes) without its broker label, into buf: "name{broker=\"x\",a=\"b\"} v"
 * reads "name{a=\"b\"} v" and "name{broker=\"x\"} v" reads "name v". The renderer puts the label
 * first on every sample (check_structure checks that); the tests name series without it.
 */
static void strip_broker(const char *line, size_t n, char *buf, size_t size) {
  const char *b = memchr(line, '{', n), *q;
  if (b == NULL || n - (size_t)(b - line) < 9 || strncmp(b, "{broker=\"", 9) != 0 ||
      (q = memchr(b + 9, '"', n - (size_t)(b + 9 - line))) == NULL) {
    snprintf(buf, size, "%.*s", (int)n, line);
    return;
  }
  if (q[1] == ',') /* more labels: keep the brace */
    snprintf(buf, size, "%.*s{%.*s", (int)(b - line), line, (int)(n - (size_t)(q + 2 - line)),
             q + 2);
  else /* "}": the broker label was the only one */
    snprintf(buf, size, "%.*s%.*s", (int)(b - line), line, (int)(n - (size_t)(q + 2 - line)),
             q + 2);
}

/* The value of the sample line that, without its broker label, starts with `series` followed
 * by a space ("name" or "name{label=\"x\"}"); fails the test when there is none. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  const char *p = text;
  char line[1024];
  for (; *p; p = strchr(p, '\n') + 1) {
    size_t len = strcspn(p, "\n");
    strip_broker(p, len, line, sizeof line);
    if (strncmp(line, series, n) == 0 && line[n] == ' ')
      return strtod(line + n + 1, NULL);
    if (p[len] == '\0')
      break;
  }
  FAIL("no sample %s in:\n%s", series, text);
  return 0;
}

/* The value of `series` as the text writes it (the token after the series and a space). */
static const char *sample_text(const char *text, const char *series, char *buf, size_t size) {
  double v = sample(text, series);
  const char *p = text;
  char line[1024];
  (void)v; /* there is one: sample() fails the test otherwise */
  for (; *p; p = strchr(p, '\n') + 1) {
    size_t len = strcspn(p, "\n"), n = strlen(series);
    strip_broker(p, len, line, sizeof line);
    if (strncmp(line, series, n) == 0 && line[n] == ' ') {
      snprintf(buf, size, "%.*s", (int)(size - 1), line + n + 1);
      return buf;
    }
  }
  return "";
}

/*
 * Check the exposition's structure as both formats define it: every line is a HELP, a TYPE or a
 * sample; each family has its HELP, then its TYPE, then its samples, once (never split); a
 * sample's name is its family's (a 0.0.4 counter family ends in _total; an OpenMetrics counter
 * family does not and its samples add _total, an info family's add _info); no blank lines; the
 * text ends with a line feed, and OpenMetrics with "# EOF\n" as its only last line. Returns the
 * list of family names, one a line, into names (for the order check).
 */
static void check_structure(const char *text, int om, char *names, size_t size) {
  char fam[160] = "", type[32] = "", seen[T_OUT_MAX / 8] = "\n";
  const char *p = text, *eol;
  int state = 0; /* 0: want HELP, 1: want TYPE, 2: samples */
  size_t at = 0;
  names[0] = '\0';
  if (text[0] == '\0' || text[strlen(text) - 1] != '\n')
    FAIL("the exposition does not end with a line feed:\n%s", text);
  for (; *p; p = eol + 1) {
    char line[1024], name[160];
    size_t n;
    eol = strchr(p, '\n');
    n = (size_t)(eol - p);
    if (n == 0 || n >= sizeof line)
      FAIL("an empty or overlong line at offset %d", (int)(p - text));
    memcpy(line, p, n);
    line[n] = '\0';
    if (strcmp(line, "# EOF") == 0) {
      if (!om || eol[1] != '\0')
        FAIL("\"# EOF\" %s", om ? "is not the last line" : "in the 0.0.4 format");
      return;
    }
    if (strncmp(line, "# HELP ", 7) == 0) {
      char key[170];
      if (sscanf(line + 7, "%159s", fam) != 1 || strlen(line) <= 8 + strlen(fam))
        FAIL("HELP without a name and a text: %s", line);
      snprintf(key, sizeof key, "\n%s\n", fam);
      if (strstr(seen, key) != NULL)
        FAIL("family %s appears twice", fam);
      if (strlen(seen) + strlen(fam) + 2 >= sizeof seen)
        FAIL("too many families");
      strcat(seen, fam);
      strcat(seen, "\n");
      at += (size_t)snprintf(names + at, size - at, "%s\n", fam);
      state = 1;
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      if (state != 1 || sscanf(line + 7, "%159s %31s", name, type) != 2 || strcmp(name, fam) != 0)
        FAIL("TYPE does not follow its family's HELP: %s", line);
      if (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0 &&
          !(om && strcmp(type, "info") == 0))
        FAIL("unexpected type in: %s", line);
      if (strcmp(type, "counter") == 0 &&
          om == (strlen(fam) > 6 && strcmp(fam + strlen(fam) - 6, "_total") == 0))
        FAIL("counter family %s: %s", fam,
             om ? "OpenMetrics names it without _total" : "0.0.4 names it with _total");
      state = 2;
      continue;
    }
    if (line[0] == '#')
      FAIL("unexpected comment line: %s", line);
    if (state != 2)
      FAIL("a sample before its family's HELP and TYPE: %s", line);
    n = strcspn(line, "{ ");
    snprintf(name, sizeof name, "%.*s", (int)n, line);
    {
      char want[200];
      snprintf(want, sizeof want, "%s%s", fam,
               !om                            ? ""
               : strcmp(type, "counter") == 0 ? "_total"
               : strcmp(type, "info") == 0    ? "_info"
                                              : "");
      if (strcmp(name, want) != 0)
        FAIL("sample %s in family %s (%s), expected %s", name, fam, type, want);
    }
    if (strchr(line, ' ') == NULL || strtod(strrchr(line, ' ') + 1, NULL) < 0)
      FAIL("a sample without a value, or a negative one: %s", line);
    if (strncmp(line + n, "{broker=\"", 9) != 0)
      FAIL("a sample without the broker label first: %s", line);
  }
  if (om)
    FAIL("OpenMetrics text without \"# EOF\"");
}

/* Write `text` to path byte for byte (binary: no CR LF on Windows, which neither sh nor promtool
 * would take); removed at exit (fx_write_text registers it). */
static void write_binary(const char *path, const char *text) {
  FILE *f;
  size_t n = strlen(text);
  fx_write_text(path, "");
  ASSERT_OK(mb_os_file_create(path, &f));
  ASSERT_EQ(fwrite(text, 1, n, f), n);
  ASSERT_EQ(fclose(f), 0);
}

static void write_text(const char *dir, const char *file, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  write_binary(path, text);
}

/* ---- promtool (a Linux program; from the Windows build through Wine's Unix side) ----------- */

/*
 * Run shell script `body` in directory dir (through a script file there, "<tag>.sh"): its
 * output (stdout and stderr) into outp, its exit code returned. On the Windows build it runs on
 * Wine's Unix side (SKIP when that cannot be done: not under Wine).
 */
static int run_sh(const char *dir, const char *tag, const char *body, char *outp, size_t size) {
  char script[512], text[8192], path[600], rcpath[600], *data = NULL;
  size_t len;
  int rc;
  snprintf(script, sizeof script, "%s/%s.sh", dir, tag);
  snprintf(rcpath, sizeof rcpath, "%s/%s.rc", dir, tag);
  snprintf(text, sizeof text,
           "cd \"$(dirname \"$0\")\" || exit 1\n"
           "rm -f %s.rc %s.out\n"
           "( %s\n) > %s.out 2>&1; echo $? > %s.rc.tmp\n"
           "mv %s.rc.tmp %s.rc\n",
           tag, tag, body, tag, tag, tag, tag);
  write_binary(script, text);
  /* What the script leaves, registered for removal at exit (it replaces them). */
  fx_write_text(rcpath, "");
  snprintf(path, sizeof path, "%s/%s.out", dir, tag);
  fx_write_text(path, "");
  mb_os_file_discard(rcpath);
#if MB_OS_WIN
  {
    wchar_t w[600], full[600];
    MultiByteToWideChar(CP_UTF8, 0, script, -1, w, 600);
    GetFullPathNameW(w, 600, full, NULL);
    if (!wine_unix_run(L"Z:\\bin\\sh", full))
      SKIP("cannot run Unix programs from this Windows build (not under Wine?): promtool and "
           "node_exporter are Linux programs");
    WAIT_FOR(mb_os_read_file(rcpath, 64, &data, &len) == 0, 60000);
  }
#else
  ASSERT_EXIT(mb_test_run_exe("/bin/sh", 60000, outp, size, script, NULL), 0, outp);
  ASSERT_OK(mb_os_read_file(rcpath, 64, &data, &len));
#endif
  rc = atoi(data);
  free(data);
  snprintf(path, sizeof path, "%s/%s.out", dir, tag);
  ASSERT_OK(mb_os_read_file(path, size - 1, &data, &len));
  memcpy(outp, data, len);
  outp[len] = '\0';
  free(data);
  return rc;
}

/* Run "promtool ARGS" in directory dir (text files there: metrics.prom, ...): its output into
 * outp, its exit code returned. SKIP when promtool is not installed (scripts/deps.sh installs
 * Debian's `prometheus`). */
static int promtool(const char *dir, const char *args, char *outp, size_t size) {
  char body[1024];
  int rc;
  snprintf(body, sizeof body,
           "if ! command -v promtool >/dev/null 2>&1; then exit 127; fi\n"
           "promtool %s",
           args);
  rc = run_sh(dir, "promtool", body, outp, size);
  if (rc == 127)
    SKIP("promtool is not installed (Debian package prometheus; scripts/deps.sh)");
  return rc;
}

/* The test's directory (test_dir), removed at exit: after the files fx_write_text removes, since
 * atexit runs handlers in reverse order and this one is registered before any file is written. */
static char test_dir_path[128];
static void test_dir_remove(void) {
  (void)mb_os_dir_remove(test_dir_path);
}

/* A directory of this test's own in the working directory (the build tree), created fresh
 * and removed at exit. */
static const char *test_dir(char *buf, size_t size, const char *tag) {
  char name[64];
  snprintf(buf, size, "%s", mb_test_name(name, sizeof name, tag));
  (void)mb_os_dir_create(buf);
  snprintf(test_dir_path, sizeof test_dir_path, "%s", buf);
  atexit(test_dir_remove);
  return buf;
}

/* ---- tests --------------------------------------------------------------------------------- */

/*
 * The renderer in-process: both formats have every family once, HELP and TYPE first, in the
 * same order each time and in both formats; OpenMetrics ends with "# EOF"; the generated
 * families are there (per region, per pool), build_info and the pipe gauges too.
 */
TEST(render_structure) {
  mb_config_t cfg;
  mb_broker_t b;
  char *t1, *t2, *t3, n1[8192], n2[8192], n3[8192];
  size_t l1, l2, l3;
  memset(&b, 0, sizeof b);
  fx_config_pid(&cfg, "m", "rs");
  metrics_config(&cfg);
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb__metrics_render(&b, 0, &t1, &l1));
  ASSERT_OK(mb__metrics_render(&b, 0, &t2, &l2));
  ASSERT_OK(mb__metrics_render(&b, 1, &t3, &l3));
  ASSERT_EQ(strlen(t1), l1);
  ASSERT_EQ(strlen(t3), l3);
  check_structure(t1, 0, n1, sizeof n1);
  check_structure(t2, 0, n2, sizeof n2);
  check_structure(t3, 1, n3, sizeof n3);
  ASSERT_STR_EQ(n1, n2); /* a fixed order */
  {
    char want[128];
    snprintf(want, sizeof want, "membroker_build_info{broker=\"%s\",version=\"", cfg.instance);
    ASSERT_CONTAINS(t1, want);
    snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 1\n", cfg.instance);
    ASSERT_CONTAINS(t1, want);
  }
  ASSERT_CONTAINS(t3, "# TYPE membroker_build info\n");
  ASSERT_CONTAINS(t1, ",os=\"" MB_OS_NAME "\"} 1\n");
  ASSERT_EQ(sample(t1, "membroker_up"), 1);
  ASSERT_EQ(sample(t1, "membroker_region_reserved_bytes{region=\"world\"}"), FX_WORLD_SIZE);
  ASSERT_EQ(sample(t1, "membroker_region_slots{region=\"players\"}"),
            FX_PLAYERS_SIZE / FX_SLOT_SIZE);
  ASSERT_EQ(sample(t1, "membroker_pool_capacity{pool=\"bullets\"}"), 1000);
  ASSERT_EQ(sample(t1, "membroker_pool_free{pool=\"bullets\"}"), 1000);
  ASSERT_EQ(sample(t1, "membroker_pool_allocated_total{pool=\"bullets\"}"), 0);
  ASSERT_EQ(sample(t3, "membroker_pool_allocated_total{pool=\"bullets\"}"), 0);
  ASSERT_EQ(sample(t1, "membroker_clients{state=\"attached\"}"), 0);
  ASSERT_EQ(sample(t1, "membroker_clients_max"), cfg.max_clients);
  ASSERT_EQ(sample(t1, "membroker_server_status{status=\"running\"}"), 1);
  ASSERT_EQ(sample(t1, "membroker_pipe_connections"), 0); /* no pipe in this process */
  ASSERT_EQ(sample(t1, "membroker_pipe_connections_max"), cfg.pipe_max_connections);
  ASSERT_EQ(sample(t1, "membroker_persist_enabled"), 0);
  /* Sums over the entries present now go down when an entry goes: gauges, without _total. */
  ASSERT_CONTAINS(t1, "# TYPE membroker_client_restarts gauge\n");
  ASSERT_CONTAINS(t1, "# TYPE membroker_private_allocs gauge\n");
  ASSERT_CONTAINS(t1, "# TYPE membroker_private_frees gauge\n");
  ASSERT_CONTAINS(t1, "# TYPE membroker_private_failures gauge\n");
  if (strstr(t1, "membroker_client_restarts_total") || strstr(t1, "membroker_private_allocs_total"))
    FAIL("a sum over the present entries typed as a counter:\n%s", t1);
  /* The broker's own counters, every reason there from the start (0). */
  ASSERT_CONTAINS(t1, "# TYPE membroker_client_deaths_total counter\n");
  ASSERT_CONTAINS(t3, "# TYPE membroker_client_deaths counter\n");
  ASSERT_EQ(sample(t1, "membroker_client_deaths_total{reason=\"exited\"}"), 0);
  ASSERT_EQ(sample(t1, "membroker_client_deaths_total{reason=\"abandoned\"}"), 0);
  ASSERT_EQ(sample(t1, "membroker_client_hangs_total"), 0);
  if (strstr(t1, "reason=\"closed\"") != NULL || strstr(t1, "reason=\"unknown\"") != NULL)
    FAIL("a death reason the broker never gives has a series:\n%s", t1);
  /* A fraction in its shortest form: started_ms / 1000 has at most 3 decimals. */
  {
    char v[64];
    const char *dot;
    sample_text(t1, "membroker_start_time_seconds", v, sizeof v);
    dot = strchr(v, '.');
    if (strchr(v, 'e') != NULL || (dot != NULL && strlen(dot + 1) > 3))
      FAIL("membroker_start_time_seconds is not in its shortest form: %s", v);
  }
  if (strstr(t1, "# EOF") != NULL)
    FAIL("0.0.4 text with # EOF");
  ASSERT_EQ(strcmp(t3 + l3 - 6, "# EOF\n"), 0);
  free(t1);
  free(t2);
  free(t3);
  mb__broker_begin_stop(&b);
  mb__broker_stop(&b);
}

/*
 * mbctl metrics against a broker with a client attached that holds 3 objects of the pool:
 * promtool check metrics passes with no lint problem; committed, the pool's in_use and the
 * clients attached equal status --json; OpenMetrics from --openmetrics passes the structure
 * check (families, names, "# EOF" last).
 */
TEST(mbctl_promtool) {
  tbroker_t t = {0};
  mb_client_t *cl = NULL;
  mb_pool_t *pool = NULL;
  void *obj[3];
  char dir[128];
  char names[8192];
  cJSON *j;
  int i, rc;
  broker_up_config(&t, "pt", "metrics");
  ASSERT_OK(mb_attach(t.instance, "zone-1", NULL, &cl));
  ASSERT_OK(mb_pool_open(cl, "bullets", MB_POOL_NO_CACHE, &pool));
  for (i = 0; i < 3; i++)
    ASSERT_OK(mb_pool_alloc(pool, &obj[i]));

  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", NULL), 0, out);
  check_structure(out, 0, names, sizeof names);
  ASSERT_EXIT(MBCTL(out2, sizeof out2, "--instance", t.instance, "status", "--json", NULL), 0,
              out2);
  j = cJSON_Parse(out2);
  ASSERT(j != NULL);
  ASSERT_EQ(sample(out, "membroker_committed_bytes"), jnum(j, "memory.committed"));
  ASSERT_EQ(sample(out, "membroker_pool_in_use{pool=\"bullets\"}"),
            jnum(cJSON_GetArrayItem(jget(j, "pools"), 0), "in_use"));
  ASSERT_EQ(sample(out, "membroker_pool_in_use{pool=\"bullets\"}"), 3);
  ASSERT_EQ(sample(out, "membroker_clients{state=\"attached\"}"), jnum(j, "clients.attached"));
  ASSERT_EQ(sample(out, "membroker_clients{state=\"attached\"}"), 1);
  ASSERT_EQ(sample(out, "membroker_start_time_seconds"), jnum(j, "server.started_ms") / 1000.0);
  cJSON_Delete(j);
  /* No per-client labels: the client's name appears nowhere. */
  if (strstr(out, "zone-1") != NULL)
    FAIL("a client's name in the metrics:\n%s", out);

  test_dir(dir, sizeof dir, "pt");
  write_text(dir, "metrics.prom", out);
  rc = promtool(dir, "check metrics < metrics.prom", out2, sizeof out2);
  if (rc != 0)
    FAIL("promtool check metrics exited %d:\n%s\non:\n%s", rc, out2, out);

  /* OpenMetrics: promtool's check metrics reads the 0.0.4 grammar only (it refuses the info
   * type: "unknown metric type"), so the text is parse-checked here: check_structure. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--openmetrics", NULL), 0,
              out);
  check_structure(out, 1, names, sizeof names);
  ASSERT_EQ(sample(out, "membroker_pool_in_use{pool=\"bullets\"}"), 3);
  ASSERT_EQ(sample(out, "membroker_pool_allocated_total{pool=\"bullets\"}"),
            sample(out, "membroker_pool_in_use{pool=\"bullets\"}") +
                sample(out, "membroker_pool_freed_total{pool=\"bullets\"}"));
  /* --json: the command's answer as it is. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--json", NULL), 0, out);
  j = cJSON_Parse(out);
  ASSERT(j != NULL);
  ASSERT_STR_EQ(jstr(j, "content_type"), MB_METRICS_CT_TEXT);
  ASSERT_CONTAINS(jstr(j, "text"), "# TYPE membroker_up gauge\n");
  cJSON_Delete(j);

  for (i = 0; i < 3; i++)
    ASSERT_OK(mb_pool_free(pool, obj[i]));
  ASSERT_OK(mb_detach(cl));
  broker_down(&t);
}

/* Bad use: an unknown format is the broker's bad_args; the options belong to metrics, and
 * --textfile writes the 0.0.4 text only. */
TEST(bad_args) {
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  broker_up_config(&t, "ba", "metrics");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  expect_fail(call(&c, "{\"id\":1,\"cmd\":\"metrics\",\"args\":{\"format\":\"xml\"}}"), "bad_args",
              "'format' must be \"prometheus\" or \"openmetrics\", got \"xml\"");
  expect_fail(call(&c, "{\"id\":2,\"cmd\":\"metrics\",\"args\":{\"format\":7}}"), "bad_args",
              "'format' must be");
  {
    cJSON *r = call(&c, "{\"id\":3,\"cmd\":\"metrics\",\"args\":{\"format\":\"openmetrics\"}}");
    expect_ok(r);
    ASSERT_STR_EQ(jstr(r, "result.content_type"), MB_METRICS_CT_OPENMETRICS);
    cJSON_Delete(r);
  }
  mb__pipe_close(&c);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "--openmetrics", NULL), 2,
              out);
  ASSERT_CONTAINS(out, "--openmetrics and --textfile are options of metrics");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile", ".",
                    "--openmetrics", NULL),
              2, out);
  ASSERT_CONTAINS(out, "takes neither --openmetrics nor --json");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile", NULL), 2,
              out);
  ASSERT_CONTAINS(out, "--textfile needs a value");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile",
                    "no/such/dir", NULL),
              1, out);
  ASSERT_CONTAINS(out, "cannot create no/such/dir/.membroker_");
  broker_down(&t);
}

/*
 * --textfile DIR: DIR/membroker_<instance>.prom holds the exposition, replaced by a rename (a
 * reader that opened the old file still reads the old file whole),
 * and passes promtool; once the broker is gone, mbctl exits 3 and the file says
 * membroker_up 0 and nothing else, so a collector does not serve stale figures as current.
 */
TEST(textfile) {
  tbroker_t t = {0};
  char dir[128], path[600], down[512], *data = NULL;
  size_t len;
  int rc;
  test_dir(dir, sizeof dir, "tf");
  broker_up_config(&t, "tf", "metrics");
  snprintf(path, sizeof path, "%s/membroker_%s.prom", dir, t.instance);
  fx_write_text(path, "# an old file\nold 1\n");
  {
#if MB_OS_POSIX
    /* A reader holding the old file open: the replace is a rename, so it keeps the old text. */
    char old[64];
    ssize_t n;
    int fd = open(path, O_RDONLY);
    ASSERT(fd >= 0);
#endif
    ASSERT_EXIT(
        MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile", dir, NULL), 0,
        out);
    ASSERT_STR_EQ(out, "");
#if MB_OS_POSIX
    n = read(fd, old, sizeof old - 1);
    close(fd);
    ASSERT_EQ(n, 20);
    old[n] = '\0';
    ASSERT_STR_EQ(old, "# an old file\nold 1\n");
#endif
  }
  ASSERT_OK(mb_os_read_file(path, T_OUT_MAX - 1, &data, &len));
  memcpy(out, data, len);
  out[len] = '\0';
  free(data);
  ASSERT_EQ(sample(out, "membroker_up"), 1);
  ASSERT_EQ(sample(out, "membroker_pool_capacity{pool=\"bullets\"}"), 1000);
  write_text(dir, "metrics.prom", out);
  rc = promtool(dir, "check metrics < metrics.prom", out2, sizeof out2);
  if (rc != 0)
    FAIL("promtool check metrics exited %d on the textfile:\n%s", rc, out2);

  snprintf(down, sizeof down,
           "# HELP membroker_up 1 while the broker answers (a textfile written by mbctl "
           "metrics --textfile says 0 when it does not)\n"
           "# TYPE membroker_up gauge\n"
           "membroker_up{broker=\"%s\"} 0\n",
           t.instance);

#if MB_OS_POSIX
  /* A broker that does not answer (stopped: its socket still accepts, nothing reads): mbctl
   * times out, exits 1 and the file says down, not the last good figures. */
  ASSERT_EQ(kill((pid_t)t.child.pid, SIGSTOP), 0);
  rc = mb_test_run_exe(MB_MBCTL_EXE, T_MBCTL_MS, out, sizeof out, "--instance", t.instance,
                       "--timeout", "1000", "metrics", "--textfile", dir, NULL);
  ASSERT_EQ(kill((pid_t)t.child.pid, SIGCONT), 0);
  if (rc != 1)
    FAIL("mbctl against a stopped broker exited %d, expected 1:\n%s", rc, out);
  ASSERT_CONTAINS(out, "wrote membroker_up 0 to ");
  ASSERT_OK(mb_os_read_file(path, T_OUT_MAX - 1, &data, &len));
  memcpy(out, data, len);
  out[len] = '\0';
  free(data);
  ASSERT_STR_EQ(out, down);
  /* Running again: up again. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile", dir, NULL),
              0, out);
  ASSERT_OK(mb_os_read_file(path, T_OUT_MAX - 1, &data, &len));
  memcpy(out, data, len);
  out[len] = '\0';
  free(data);
  ASSERT_EQ(sample(out, "membroker_up"), 1);
#endif

  broker_down(&t);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "metrics", "--textfile", dir, NULL),
              3, out);
  ASSERT_CONTAINS(out, "is not running");
  ASSERT_CONTAINS(out, "wrote membroker_up 0 to ");
  ASSERT_OK(mb_os_read_file(path, T_OUT_MAX - 1, &data, &len));
  memcpy(out, data, len);
  out[len] = '\0';
  free(data);
  ASSERT_STR_EQ(out, down);
  write_text(dir, "metrics.prom", out);
  rc = promtool(dir, "check metrics < metrics.prom", out2, sizeof out2);
  if (rc != 0)
    FAIL("promtool check metrics exited %d on the down file:\n%s", rc, out2);
}

/*
 * The broker's own counters (broker.h): a client whose process is gone (its entry names this
 * process's pid with another start time: a reused pid) is found dead, reason exited, and one
 * that does not beat is found hung: membroker_client_deaths_total{reason="exited"} and
 * membroker_client_hangs_total count each once, however many sweeps see them, and stay
 * counted after the entries go (they never go backwards while the broker runs).
 */
TEST(deaths_hangs) {
  mb_config_t cfg;
  mb_broker_t b;
  char *t;
  size_t l;
  int i;
  memset(&b, 0, sizeof b);
  fx_config_pid(&cfg, "m", "dh");
  metrics_config(&cfg);
  cfg.heartbeat_timeout_ms = 1000;
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  fake_client(b.state, 0, MB_CLIENT_ATTACHED, "gone");
  mb_store64(&b.state->clients[0].start_time, mb_load64(&b.state->clients[0].start_time) + 1);
  fake_client(b.state, 1, MB_CLIENT_ATTACHED, "stuck");
  mb_store64(&b.state->clients[1].heartbeat_ns, 1); /* long overdue; the process (us) runs */
  for (i = 0; i < 3; i++)
    mb__broker_sweep(&b);
  ASSERT_EQ(MB_CLIENT_WORD_STATE(mb_load64(&b.state->clients[0].word)), MB_CLIENT_DEAD);
  ASSERT_OK(mb__metrics_render(&b, 0, &t, &l));
  ASSERT_EQ(sample(t, "membroker_client_deaths_total{reason=\"exited\"}"), 1);
  ASSERT_EQ(sample(t, "membroker_client_deaths_total{reason=\"abandoned\"}"), 0);
  ASSERT_EQ(sample(t, "membroker_client_hangs_total"), 1);
  ASSERT_EQ(sample(t, "membroker_clients{state=\"dead\"}"), 1);
  ASSERT_EQ(sample(t, "membroker_clients{state=\"hung\"}"), 1);
  free(t);
  /* Both entries gone (the dead one reaped, the hung one detached): the counts stay. */
  mb_store64(&b.state->clients[0].word, 0);
  mb_store64(&b.state->clients[1].word, 0);
  mb__broker_sweep(&b);
  ASSERT_OK(mb__metrics_render(&b, 0, &t, &l));
  ASSERT_EQ(sample(t, "membroker_clients{state=\"dead\"}"), 0);
  ASSERT_EQ(sample(t, "membroker_client_deaths_total{reason=\"exited\"}"), 1);
  ASSERT_EQ(sample(t, "membroker_client_hangs_total"), 1);
  free(t);
  mb__broker_begin_stop(&b);
  mb__broker_stop(&b);
}

/* The series of an exposition (each sample line up to its value), one a line after a first
 * line feed ("\nA\nB\n": "\n<series>\n" finds one whole), into buf. */
static void series_of(const char *text, char *buf, size_t size) {
  const char *p;
  size_t at = 1;
  buf[0] = '\n';
  buf[1] = '\0';
  for (p = text; *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0')) {
    size_t len = strcspn(p, "\n");
    const char *sp = memchr(p, ' ', len);
    if (p[0] == '#' || sp == NULL)
      continue;
    if (at + (size_t)(sp - p) + 2 >= size)
      FAIL("too many series");
    at += (size_t)snprintf(buf + at, size - at, "%.*s\n", (int)(sp - p), p);
  }
}

/* The text of dir/membroker_<instance>.prom into buf. */
static void read_prom(const char *dir, const char *instance, char *buf, size_t size) {
  char path[600], *data = NULL;
  size_t len;
  snprintf(path, sizeof path, "%s/membroker_%s.prom", dir, instance);
  ASSERT_OK(mb_os_read_file(path, size - 1, &data, &len));
  memcpy(buf, data, len);
  buf[len] = '\0';
  free(data);
}

static char series_a[T_OUT_MAX], series_b[T_OUT_MAX], series_c[4096], file_c[4096];

/*
 * Two brokers and a third instance that is not running, their textfiles in one collector
 * directory (two brokers on one host): every series carries its broker's label, so no two files
 * give the same series, and node_exporter's textfile collector (Debian package
 * prometheus-node-exporter, a Linux program; SKIP without it) serves all three without an error:
 * both brokers' membroker_up 1 and the third's membroker_up 0.
 */
TEST(two_textfiles) {
  tbroker_t a = {0}, b = {0};
  char dir[128], c[MB_INSTANCE_MAX + 8], want[160], script[4096], *line;
  int rc;
  test_dir(dir, sizeof dir, "2t");
  broker_up_config(&a, "2a", "metrics");
  broker_up_config(&b, "2b", "metrics");
  snprintf(c, sizeof c, "%sc", b.instance); /* no broker runs for it */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", a.instance, "metrics", "--textfile", dir, NULL),
              0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", b.instance, "metrics", "--textfile", dir, NULL),
              0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", c, "metrics", "--textfile", dir, NULL), 3, out);
  read_prom(dir, a.instance, out, sizeof out);
  series_of(out, series_a, sizeof series_a);
  read_prom(dir, b.instance, out2, sizeof out2);
  series_of(out2, series_b, sizeof series_b);
  read_prom(dir, c, file_c, sizeof file_c);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 1\n", a.instance);
  ASSERT_CONTAINS(out, want);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 1\n", b.instance);
  ASSERT_CONTAINS(out2, want);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 0\n", c);
  ASSERT_CONTAINS(file_c, want);
  series_of(file_c, series_c, sizeof series_c);
  ASSERT(series_a[1] != '\0' && series_b[1] != '\0' && series_c[1] != '\0');
  /* No series in two files: each line is "name{broker=\"<its instance>\"...". */
  for (line = series_a + 1; *line; line += strcspn(line, "\n") + 1) {
    char key[512];
    snprintf(key, sizeof key, "\n%.*s\n", (int)strcspn(line, "\n"), line);
    if (strstr(series_b, key) != NULL || strstr(series_c, key) != NULL)
      FAIL("series %.*s is in two brokers' textfiles", (int)strcspn(line, "\n"), line);
  }
  for (line = series_b + 1; *line; line += strcspn(line, "\n") + 1) {
    char key[512];
    snprintf(key, sizeof key, "\n%.*s\n", (int)strcspn(line, "\n"), line);
    if (strstr(series_c, key) != NULL)
      FAIL("series %.*s is in two textfiles", (int)strcspn(line, "\n"), line);
  }

  /* node_exporter on the directory, on a loopback port of its own (tried again on another
   * when taken), scraped with curl and stopped by its pid, all from one shell script. */
  snprintf(script, sizeof script,
           "if ! command -v prometheus-node-exporter >/dev/null 2>&1 ||\n"
           "   ! command -v curl >/dev/null 2>&1; then exit 127; fi\n"
           "d=\"$(pwd)\"\n"
           "for try in 1 2 3 4 5; do\n"
           "  port=$(( 20000 + ($$ * 7 + try * 1009) %% 30000 ))\n"
           "  prometheus-node-exporter --collector.disable-defaults --collector.textfile \\\n"
           "    --collector.textfile.directory=\"$d\" --web.listen-address=127.0.0.1:$port \\\n"
           "    > node.log 2>&1 &\n"
           "  pid=$!\n"
           "  for i in $(seq 1 200); do\n"
           "    if curl -sf http://127.0.0.1:$port/metrics > node.scrape 2>/dev/null; then\n"
           "      kill $pid; wait $pid 2>/dev/null; cat node.scrape\n"
           "      rm -f node.log node.scrape; exit 0; fi\n"
           "    kill -0 $pid 2>/dev/null || break\n"
           "    sleep 0.05\n"
           "  done\n"
           "  kill $pid 2>/dev/null; wait $pid 2>/dev/null\n"
           "done\n"
           "cat node.log; rm -f node.log node.scrape; exit 1\n");
  rc = run_sh(dir, "node", script, out2, sizeof out2);
  if (rc == 127) {
    broker_down(&a);
    broker_down(&b);
    SKIP("prometheus-node-exporter or curl is not installed: the files' series were checked");
  }
  if (rc != 0)
    FAIL("node_exporter did not serve the directory:\n%s", out2);
  broker_down(&a);
  broker_down(&b);
  if (strstr(out2, "node_textfile_scrape_error 0\n") == NULL)
    FAIL("node_exporter's textfile collector reports an error:\n%s", out2);
  if (strstr(out2, "was collected before") != NULL)
    FAIL("node_exporter reports duplicate series:\n%s", out2);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 1\n", a.instance);
  ASSERT_CONTAINS(out2, want);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 1\n", b.instance);
  ASSERT_CONTAINS(out2, want);
  snprintf(want, sizeof want, "\nmembroker_up{broker=\"%s\"} 0\n", c);
  ASSERT_CONTAINS(out2, want);
  snprintf(want, sizeof want, "membroker_pool_capacity{broker=\"%s\",pool=\"bullets\"} 1000\n",
           b.instance);
  ASSERT_CONTAINS(out2, want);
  for (line = out2; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != '\0'))
    if (strncmp(line, "membroker_up{", 13) == 0 ||
        strncmp(line, "node_textfile_scrape_error", 26) == 0)
      printf("# node_exporter: %.*s\n", (int)strcspn(line, "\n"), line);
}
