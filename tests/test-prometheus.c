/*
 * test-prometheus.c - the operations journey with a real Prometheus server (Debian package
 * `prometheus`, /usr/bin/prometheus): the membroker executable run as an operator runs it
 * (`membroker run -c FILE`, metrics.listen "127.0.0.1:0", the port read back from its log), a
 * Prometheus on loopback with its own temporary data directory, a generated config that scrapes
 * the broker every second and loads the shipped rules (config/prometheus/alerts.yml, as they are:
 * the alert made to fire, MembrokerClientDead, has no `for:`), and the shipped game server
 * (gameserver_sim) attached and then killed: Prometheus's own HTTP API must show the target up,
 * `membroker_up` 1 and the alert firing. Every metric name the rules' expressions use must
 * appear in a real scrape (a rule on a name the broker never exports would never fire).
 *
 * What the test sees is printed as "# " lines (the scrape, the target, the firing alert):
 * README's operations section shows such a run. Everything it starts it stops by pid (atexit,
 * also after a failed assertion) and its temporary directory is removed.
 *
 * POSIX only: the Prometheus server is a Linux program and the journey is the same on Windows
 * (the exposition is tested under Wine by test-metrics and test-http). Without the server
 * binary the test is skipped.
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#endif

#include "task.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#if MB_OS_POSIX
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#endif

#define PROM_EXE "/usr/bin/prometheus"
#define T_START_MS 30000 /* a start: the broker's listener, Prometheus ready */
#define T_ALERT_MS 30000 /* a scrape (1 s) and a rule evaluation (1 s) later, with margin */

#if MB_OS_POSIX

#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif
#ifndef MB_GAMESERVER_SIM_EXE
#error "MB_GAMESERVER_SIM_EXE must name gameserver_sim (CMake: $<TARGET_FILE:gameserver_sim>)"
#endif
#ifndef MB_SOURCE_DIR
#error "MB_SOURCE_DIR must name the source tree (config/prometheus/alerts.yml)"
#endif

/* ---- the processes this test started (stopped at exit if an assertion left them) ---------- */

enum { P_BROKER, P_PROM, P_SIM, P_COUNT };
static mb_os_child_t procs[P_COUNT];
static int running[P_COUNT];
static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path); /* go on after a failure: remove what can be removed */
  return 0;
}

/* Kill what is still running (by pid) and remove the temporary directory. */
static void cleanup(void) {
  int i, code;
  for (i = 0; i < P_COUNT; i++)
    if (running[i]) {
      mb_os_child_kill(&procs[i]);
      mb_os_child_wait(&procs[i], -1, &code);
      running[i] = 0;
    }
  if (tmpdir[0] != '\0') {
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
  }
}

/* Start argv with its output into the file `out`; cleanup() stops it if the test fails. */
static void start(int which, const char *const argv[], const char *out) {
  ASSERT_OK(mb_os_spawn_redirect(argv, out, &procs[which]));
  running[which] = 1;
}

static char filebuf[65536];

/* Fail (showing its output file) if process `which` has exited. */
static void expect_running(int which, const char *what, const char *out) {
  int code;
  if (mb_os_child_wait(&procs[which], 0, &code) == 0) {
    running[which] = 0;
    FAIL("%s exited %d; it printed:\n%s", what, code,
         mb_test_file_text(out, filebuf, sizeof filebuf));
  }
}

/* SIGTERM (as a service manager stops it), then wait; the exit code. */
static int stop(int which, const char *what) {
  int code;
  if (kill((pid_t)procs[which].pid, SIGTERM) != 0)
    FAIL("cannot signal %s (pid %u)", what, (unsigned)procs[which].pid);
  if (mb_os_child_wait(&procs[which], 20000, &code) != 0)
    FAIL("%s did not stop within 20 s of SIGTERM", what);
  running[which] = 0;
  return code;
}

/* ---- loopback HTTP ----------------------------------------------------------------------- */

/* A free loopback TCP port: bound with port 0, read back, closed (Prometheus binds it next). */
static int free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int s = socket(AF_INET, SOCK_STREAM, 0), port;
  ASSERT(s >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(s, (struct sockaddr *)&sa, &len) != 0)
    FAIL("cannot find a free loopback port");
  port = ntohs(sa.sin_port);
  close(s);
  return port;
}

/*
 * GET http://127.0.0.1:port<path> with HTTP/1.0 (the server closes after the answer). The body,
 * NUL-terminated, into body[0..size) (fails the test if it does not fit). Returns the status, or
 * 0 when nothing answers (refused, closed, or no answer within 5 s).
 */
static int http_get(int port, const char *path, char *body, size_t size) {
  static char buf[1 << 20];
  struct sockaddr_in sa;
  struct timeval tv = {5, 0};
  size_t used = 0;
  char req[512];
  const char *p;
  int s, n, status = 0;
  body[0] = '\0';
  if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
    FAIL("socket() failed");
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(s);
    return 0;
  }
  n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
  if (send(s, req, (size_t)n, MSG_NOSIGNAL) != n) {
    close(s);
    return 0;
  }
  while ((n = (int)recv(s, buf + used, sizeof buf - 1 - used, 0)) > 0) {
    used += (size_t)n;
    if (used == sizeof buf - 1)
      FAIL("the answer to GET %s is larger than %zu bytes", path, sizeof buf - 1);
  }
  close(s);
  buf[used] = '\0';
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
    return 0;
  if ((p = strstr(buf, "\r\n\r\n")) == NULL)
    return 0;
  p += 4;
  if (strlen(p) >= size)
    FAIL("the body of GET %s is larger than %zu bytes", path, size - 1);
  memcpy(body, p, strlen(p) + 1);
  return status;
}

/* GET a Prometheus API path and parse it; NULL unless it answered 200 with status "success". */
static cJSON *api_get(int port, const char *path) {
  static char body[1 << 20];
  cJSON *j, *st;
  if (http_get(port, path, body, sizeof body) != 200)
    return NULL;
  if ((j = cJSON_Parse(body)) == NULL)
    return NULL;
  st = cJSON_GetObjectItemCaseSensitive(j, "status");
  if (!cJSON_IsString(st) || strcmp(st->valuestring, "success") != 0) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* A string member of o, or "" (never NULL). */
static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* The broker label every sample carries first: {broker="<instance>" (the broker's config). */
static char broker_label[64];

/* The value of sample `series` (a name with its labels but the broker's, which the exposition
 * writes first: broker_label) in text; -1 if absent. */
static double sample(const char *text, const char *series) {
  char full[256];
  const char *brace = strchr(series, '{');
  size_t n;
  const char *p = text;
  if (brace == NULL)
    snprintf(full, sizeof full, "%s%s}", series, broker_label);
  else
    snprintf(full, sizeof full, "%.*s%s,%s", (int)(brace - series), series, broker_label,
             brace + 1);
  n = strlen(full);
  while ((p = strstr(p, full)) != NULL) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    p += n;
  }
  return -1;
}

/* Print the lines of text that start with one of the prefixes, as "# " lines. */
static void print_lines(const char *text, const char *const prefixes[]) {
  const char *line = text;
  while (*line != '\0') {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    int i;
    for (i = 0; prefixes[i] != NULL; i++)
      if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0) {
        printf("#   %.*s\n", (int)len, line);
        break;
      }
    line += len + (end != NULL);
  }
}

/* A sample line of `name` in the exposition: the name at a line's start, then its labels or a
 * space (a longer name that starts the same does not count). */
static int has_sample(const char *text, const char *name) {
  size_t n = strlen(name);
  const char *p = text;
  while ((p = strstr(p, name)) != NULL) {
    if ((p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{'))
      return 1;
    p += n;
  }
  return 0;
}

/*
 * Every metric name ("membroker_" and at least one more name character) on an `expr:` line of
 * the shipped alerts.yml (and the lines continuing it) must be a sample name in `scrape`. Names
 * in a regular expression (`membroker_.*\.prom`, a file name) are not metric names: a name
 * followed by '.' is skipped. Returns how many names were checked.
 */
static int check_rule_names(const char *scrape) {
  static char rules[65536];
  const char *line;
  int in_expr = 0, checked = 0;
  mb_test_file_text(MB_SOURCE_DIR "/config/prometheus/alerts.yml", rules, sizeof rules);
  ASSERT_CONTAINS(rules, "alert: MembrokerClientDead");
  for (line = rules; *line != '\0';) {
    const char *end = strchr(line, '\n'), *p;
    size_t len = end ? (size_t)(end - line) : strlen(line);
    const char *t = line;
    while (*t == ' ')
      t++;
    if (strncmp(t, "expr:", 5) == 0)
      in_expr = 1;
    else if (strncmp(t, "- alert:", 8) == 0 || strncmp(t, "for:", 4) == 0 ||
             strncmp(t, "labels:", 7) == 0)
      in_expr = 0;
    for (p = line; in_expr && (p = strstr(p, "membroker_")) != NULL && p < line + len;) {
      char name[128];
      size_t n = 0;
      while (n < sizeof name - 1 &&
             (p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9')))
        n++;
      memcpy(name, p, n);
      name[n] = '\0';
      p += n;
      if (n == strlen("membroker_") || *p == '.')
        continue;
      if (!has_sample(scrape, name))
        FAIL("alerts.yml uses %s, which a real scrape does not have:\n%s", name, scrape);
      printf("#   %s\n", name);
      checked++;
    }
    line += len + (end != NULL);
  }
  return checked;
}

static char scrape[1 << 18];

/*
 * The journey: broker + Prometheus on loopback, target up, membroker_up 1, a game server
 * attached and killed, MembrokerClientDead firing in /api/v1/alerts.
 */
static void journey(void) {
  mb_config_t cfg;
  char cfgpath[300], brokerout[300], promyml[300], promout[300], simout[300];
  char data[300], persist[300], arg_cfg[320], arg_data[320], arg_listen[64], text[4096];
  char instance[MB_INSTANCE_MAX];
  const char *p;
  int bport = 0, pport, code, n, attempt, ready;
  uint64_t deadline;
  cJSON *j;
  FILE *fp;

  if (access(PROM_EXE, X_OK) != 0)
    SKIP("no Prometheus server at " PROM_EXE " (Debian package prometheus, scripts/deps.sh)");
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mbt-prom-XXXXXX");
  if (mkdtemp(tmpdir) == NULL)
    FAIL("mkdtemp failed");
  atexit(cleanup); /* from here on, also after a failed assertion */
  snprintf(cfgpath, sizeof cfgpath, "%s/membroker.json", tmpdir);
  snprintf(brokerout, sizeof brokerout, "%s/membroker.out", tmpdir);
  snprintf(promyml, sizeof promyml, "%s/prometheus.yml", tmpdir);
  snprintf(promout, sizeof promout, "%s/prometheus.out", tmpdir);
  snprintf(simout, sizeof simout, "%s/gameserver_sim.out", tmpdir);
  snprintf(data, sizeof data, "%s/data", tmpdir);
  snprintf(persist, sizeof persist, "%s/persist", tmpdir);
  ASSERT_EQ(mkdir(persist, 0700), 0);

  /* The broker: the test config with a small pool, a commit limit and persistence (so every
   * family the rules use is exported), the listener on a port the OS picks, a long grace
   * period (the dead client's entry stays while the alert is looked for). */
  fx_config_pid(&cfg, "prom", "");
  snprintf(instance, sizeof instance, "%s", cfg.instance);
  snprintf(broker_label, sizeof broker_label, "{broker=\"%s\"", cfg.instance);
  fx_pool(&cfg, "bullets", 64, 16, 100);
  cfg.max_committed = 64u << 20;
  cfg.grace_period_ms = 600000;
  cfg.persist_interval_ms = 1000;
  snprintf(cfg.persist_dir, sizeof cfg.persist_dir, "%s", persist);
  snprintf(cfg.metrics_listen, sizeof cfg.metrics_listen, "127.0.0.1:0");
  fx_write_config(cfgpath, &cfg, NULL);
  {
    const char *argv[] = {MB_BROKER_EXE, "run", "-c", cfgpath, NULL};
    start(P_BROKER, argv, brokerout);
  }
  deadline = mb_os_mono_ns() + (uint64_t)T_START_MS * 1000000u;
  while (bport == 0) {
    mb_test_file_text(brokerout, filebuf, sizeof filebuf); /* run mode logs to stderr */
    if ((p = strstr(filebuf, "metrics listener on 127.0.0.1:")) != NULL)
      bport = atoi(p + strlen("metrics listener on 127.0.0.1:"));
    expect_running(P_BROKER, "membroker run", brokerout);
    if (bport == 0 && mb_os_mono_ns() > deadline)
      FAIL("the broker logged no listener port:\n%s", filebuf);
    mb_os_sleep_ms(10);
  }
  /* The first save, so membroker_persist_last_save_age_seconds is there too. */
  WAIT_FOR(http_get(bport, "/metrics", scrape, sizeof scrape) == 200 &&
               sample(scrape, "membroker_persist_last_save_age_seconds") >= 0,
           T_START_MS);
  printf("# curl -s 127.0.0.1:%d/metrics (a few lines)\n", bport);
  {
    static const char *const show[] = {"membroker_up{",
                                       "membroker_committed_bytes ",
                                       "membroker_commit_limit_bytes ",
                                       "membroker_pool_capacity{",
                                       "membroker_pool_free{",
                                       "membroker_clients{",
                                       NULL};
    print_lines(scrape, show);
  }
  printf("# the metric names in alerts.yml's expressions, each in the scrape:\n");
  n = check_rule_names(scrape);
  ASSERT_GE(n, 8);

  /* Prometheus: scrape every second, evaluate the shipped rules every second. */
  pport = free_port();
  snprintf(text, sizeof text,
           "global:\n"
           "  scrape_interval: 1s\n"
           "  scrape_timeout: 1s\n"
           "  evaluation_interval: 1s\n"
           "rule_files:\n"
           "  - %s/config/prometheus/alerts.yml\n"
           "scrape_configs:\n"
           "  - job_name: membroker\n"
           "    metrics_path: /metrics\n"
           "    static_configs:\n"
           "      - targets: [\"127.0.0.1:%d\"]\n",
           MB_SOURCE_DIR, bport);
  fp = fopen(promyml, "w");
  ASSERT(fp != NULL);
  fputs(text, fp);
  fclose(fp);
  snprintf(arg_cfg, sizeof arg_cfg, "--config.file=%s", promyml);
  snprintf(arg_data, sizeof arg_data, "--storage.tsdb.path=%s", data);
  /* The port was free a moment ago; a test running alongside may take it first: then
   * Prometheus exits saying so, and it is started again on another port (3 tries). */
  for (attempt = 1;; attempt++) {
    const char *argv[] = {PROM_EXE, arg_cfg, arg_data, arg_listen, NULL};
    snprintf(arg_listen, sizeof arg_listen, "--web.listen-address=127.0.0.1:%d", pport);
    start(P_PROM, argv, promout);
    deadline = mb_os_mono_ns() + (uint64_t)T_START_MS * 1000000u;
    while (!(ready = http_get(pport, "/-/ready", text, sizeof text) == 200) &&
           mb_os_child_wait(&procs[P_PROM], 0, &code) != 0) {
      if (mb_os_mono_ns() > deadline)
        FAIL("Prometheus not ready on 127.0.0.1:%d; it printed:\n%s", pport,
             mb_test_file_text(promout, filebuf, sizeof filebuf));
      mb_os_sleep_ms(50);
    }
    if (ready)
      break;
    running[P_PROM] = 0; /* it exited (waited for above) */
    mb_test_file_text(promout, filebuf, sizeof filebuf);
    if (attempt == 3 || strstr(filebuf, "address already in use") == NULL)
      FAIL("prometheus exited %d; it printed:\n%s", code, filebuf);
    pport = free_port();
  }

  /* The target up. */
  deadline = mb_os_mono_ns() + (uint64_t)T_ALERT_MS * 1000000u;
  for (;;) {
    const cJSON *t;
    j = api_get(pport, "/api/v1/targets");
    t = j ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(j, "data"), "activeTargets"),
                               0)
          : NULL;
    if (t != NULL && strcmp(str_of(t, "health"), "up") == 0) {
      printf("# curl -s 127.0.0.1:%d/api/v1/targets: scrapeUrl %s health %s lastError \"%s\"\n",
             pport, str_of(t, "scrapeUrl"), str_of(t, "health"), str_of(t, "lastError"));
      ASSERT_STR_EQ(str_of(cJSON_GetObjectItemCaseSensitive(t, "labels"), "job"), "membroker");
      cJSON_Delete(j);
      break;
    }
    cJSON_Delete(j);
    expect_running(P_PROM, "prometheus", promout);
    if (mb_os_mono_ns() > deadline)
      FAIL("the membroker target is not up in Prometheus within %d ms", T_ALERT_MS);
    mb_os_sleep_ms(100);
  }

  /* membroker_up 1, as Prometheus stored it. */
  for (;;) {
    const cJSON *r;
    j = api_get(pport, "/api/v1/query?query=membroker_up");
    r = j ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(j, "data"), "result"),
                               0)
          : NULL;
    if (r != NULL) {
      const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "value"), 1);
      ASSERT(cJSON_IsString(v));
      ASSERT_STR_EQ(v->valuestring, "1");
      printf("# query membroker_up: {broker=\"%s\", instance=\"%s\", job=\"%s\"} %s\n",
             str_of(cJSON_GetObjectItemCaseSensitive(r, "metric"), "broker"),
             str_of(cJSON_GetObjectItemCaseSensitive(r, "metric"), "instance"),
             str_of(cJSON_GetObjectItemCaseSensitive(r, "metric"), "job"), v->valuestring);
      cJSON_Delete(j);
      break;
    }
    cJSON_Delete(j);
    if (mb_os_mono_ns() > deadline)
      FAIL("query membroker_up has no result within %d ms", T_ALERT_MS);
    mb_os_sleep_ms(100);
  }

  /* A game server attaches; then it is killed. */
  {
    const char *argv[] = {MB_GAMESERVER_SIM_EXE, "--instance", instance,   "--name", "zone-7",
                          "--players",           "5",          "--steady", NULL};
    start(P_SIM, argv, simout);
  }
  deadline = mb_os_mono_ns() + (uint64_t)T_START_MS * 1000000u;
  while (http_get(bport, "/metrics", scrape, sizeof scrape) != 200 ||
         sample(scrape, "membroker_clients{state=\"attached\"}") != 1) {
    expect_running(P_SIM, "gameserver_sim", simout);
    if (mb_os_mono_ns() > deadline)
      FAIL("gameserver_sim did not attach:\n%s", scrape);
    mb_os_sleep_ms(10);
  }
  printf("# gameserver_sim attached (pid %u); kill -9 %u\n", (unsigned)procs[P_SIM].pid,
         (unsigned)procs[P_SIM].pid);
  ASSERT_OK(mb_os_child_kill(&procs[P_SIM]));
  ASSERT_OK(mb_os_child_wait(&procs[P_SIM], 20000, &code));
  running[P_SIM] = 0;
  ASSERT_EQ(code, 128 + SIGKILL);
  WAIT_FOR(http_get(bport, "/metrics", scrape, sizeof scrape) == 200 &&
               sample(scrape, "membroker_clients{state=\"dead\"}") == 1 &&
               sample(scrape, "membroker_client_deaths_total{reason=\"exited\"}") == 1,
           T_ALERT_MS);

  /* The alert, firing in Prometheus. */
  deadline = mb_os_mono_ns() + (uint64_t)T_ALERT_MS * 1000000u;
  for (;;) {
    const cJSON *a, *found = NULL;
    j = api_get(pport, "/api/v1/alerts");
    if (j != NULL)
      cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(j, "data"), "alerts")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "labels");
        if (strcmp(str_of(l, "alertname"), "MembrokerClientDead") == 0 &&
            strcmp(str_of(a, "state"), "firing") == 0)
          found = a;
      }
    if (found != NULL) {
      const cJSON *l = cJSON_GetObjectItemCaseSensitive(found, "labels");
      char *doc = cJSON_Print(found);
      ASSERT_STR_EQ(str_of(l, "severity"), "warning");
      ASSERT_STR_EQ(str_of(l, "job"), "membroker");
      ASSERT_STR_EQ(str_of(l, "broker"), instance);
      /* increase() over the counter's samples: about 1 (extrapolated), more than 0. */
      if (!(strtod(str_of(found, "value"), NULL) > 0))
        FAIL("MembrokerClientDead fires with value %s", str_of(found, "value"));
      printf("# curl -s 127.0.0.1:%d/api/v1/alerts: the firing alert\n%s\n", pport, doc);
      free(doc);
      cJSON_Delete(j);
      break;
    }
    cJSON_Delete(j);
    expect_running(P_PROM, "prometheus", promout);
    if (mb_os_mono_ns() > deadline)
      FAIL("MembrokerClientDead is not firing within %d ms", T_ALERT_MS);
    mb_os_sleep_ms(100);
  }
  /* Stop both by pid, as a service manager would (SIGTERM), and clean up. */
  ASSERT_EQ(stop(P_PROM, "prometheus"), 0);
  ASSERT_EQ(stop(P_BROKER, "membroker run"), 0);
  cleanup();
}

#endif /* MB_OS_POSIX */

TEST(alert_fires) {
#if MB_OS_POSIX
  journey();
#else
  SKIP("the Prometheus server is a Linux program; the journey runs on the native build");
#endif
}
