/*
 * childbroker.c - the broker child (CHILD serve) and the client-side helpers of the tests
 * that talk to it (see childbroker.h). Compiled into each test binary that uses it.
 */
#include "childbroker.h"

#include <uv.h>

#include "broker.h"
#include "ctl.h"
#include "log.h"

#if MB_OS_POSIX
#include <sys/resource.h>
#endif

/* ---- the child: broker + loop + control pipe ----------------------------------------------- */

static uv_async_t child_stop;
static uv_timer_t child_watch;
static mb_os_procid_t child_parent;
static mb_broker_t child_brk;
static int child_stopping;

static void child_closed(uv_handle_t *h) {
  (void)h;
}

static void child_stop_now(void) {
  if (child_stopping)
    return;
  child_stopping = 1;
  mb__ctl_stop();
  mb__broker_begin_stop(&child_brk);
  uv_close((uv_handle_t *)&child_stop, child_closed);
  uv_close((uv_handle_t *)&child_watch, child_closed);
}

static void child_on_stop(uv_async_t *a) {
  (void)a;
  child_stop_now();
}

static void child_request_stop(void) {
  uv_async_send(&child_stop);
}

/* The parent test died (failed assertion): do not outlive it. */
static void child_on_watch(uv_timer_t *t) {
  (void)t;
  if (mb_os_proc_alive(&child_parent) == 0)
    child_stop_now();
}

/* The config writers of BROKER_CONFIG, by name (a test binary registers a few at most). */
#define CHILD_CONFIGS_MAX 8
static struct {
  const char *name;
  tbroker_config_fn fn;
} child_configs[CHILD_CONFIGS_MAX];
static int child_nconfigs;

void broker_config_register(const char *name, tbroker_config_fn fn) {
  if (child_nconfigs == CHILD_CONFIGS_MAX) {
    fprintf(stderr, "childbroker: more than %d BROKER_CONFIG writers\n", CHILD_CONFIGS_MAX);
    abort();
  }
  child_configs[child_nconfigs].name = name;
  child_configs[child_nconfigs].fn = fn;
  child_nconfigs++;
}

/* Apply the config writer registered as `name`; -1 if there is none. */
static int child_config(mb_config_t *cfg, const char *name) {
  int i;
  for (i = 0; i < child_nconfigs; i++)
    if (strcmp(child_configs[i].name, name) == 0) {
      child_configs[i].fn(cfg);
      return 0;
    }
  return -1;
}

/*
 * Apply one "key=value" option of the child (broker_spawn_ex): admin_reserve, idle_ms,
 * line_ms (pipe.*), max_line (pipe.max_line), nofile (RLIMIT_NOFILE's soft limit, POSIX), log
 * (a file, at debug level), config (a BROKER_CONFIG writer's name).
 * Returns 0, or -1 for an unknown key or writer, or a limit that cannot be set.
 */
static int child_option(mb_config_t *cfg, const char *opt) {
  const char *v = strchr(opt, '=');
  size_t n = v ? (size_t)(v - opt) : 0;
  if (v == NULL)
    return -1;
  v++;
  if (n == 6 && strncmp(opt, "config", n) == 0)
    return child_config(cfg, v);
  else if (n == 8 && strncmp(opt, "max_line", n) == 0)
    cfg->pipe_max_line = (uint64_t)strtoull(v, NULL, 10);
  else if (n == 13 && strncmp(opt, "admin_reserve", n) == 0)
    cfg->pipe_admin_reserve = (uint32_t)strtoul(v, NULL, 10);
  else if (n == 7 && strncmp(opt, "idle_ms", n) == 0)
    cfg->pipe_idle_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
  else if (n == 7 && strncmp(opt, "line_ms", n) == 0)
    cfg->pipe_line_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
  else if (n == 3 && strncmp(opt, "log", n) == 0)
    return mb__log_open(MB_LOG_DEBUG, v) == 0 ? 0 : -1;
  else if (n == 6 && strncmp(opt, "nofile", n) == 0) {
#if MB_OS_POSIX
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
      return -1;
    rl.rlim_cur = (rlim_t)strtoul(v, NULL, 10);
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -1;
#else
    return -1;
#endif
  } else
    return -1;
  return 0;
}

/*
 * argv: instance parent_pid max_line max_connections [pipe_mode [operators_group
 * [key=value...]]] (child_option; operators_group "" is none)
 * Exit codes: 0 after a clean stop; 100 usage, 101 no parent, 102 broker start failed,
 * 103 control pipe failed (the reason on stderr), 104 a handle was left open.
 */
CHILD(serve) {
  mb_config_t cfg;
  uv_loop_t loop;
  int rc;
  int i;
  if (argc < 4)
    return 100;
  mb__log_open(MB_LOG_ERROR, "");
  fx_config(&cfg, argv[0]);
  cfg.pipe_max_line = (uint64_t)strtoull(argv[2], NULL, 10);
  cfg.pipe_max_connections = (uint32_t)strtoul(argv[3], NULL, 10);
  cfg.pipe_mode = argc >= 5 ? (uint32_t)strtoul(argv[4], NULL, 8) : 0600;
  if (argc >= 6)
    snprintf(cfg.pipe_operators_group, sizeof cfg.pipe_operators_group, "%s", argv[5]);
  for (i = 6; i < argc; i++)
    if (child_option(&cfg, argv[i]) != 0) {
      fprintf(stderr, "child broker: bad option '%s'\n", argv[i]);
      return 100;
    }
  if (mb_os_proc_query((uint32_t)strtoul(argv[1], NULL, 10), &child_parent) != 0)
    return 101;
  if (mb__broker_start(&child_brk, &cfg, 0) != 0) {
    fprintf(stderr, "child broker: %s\n", mb_last_error());
    return 102;
  }
  uv_loop_init(&loop);
  uv_async_init(&loop, &child_stop, child_on_stop);
  uv_timer_init(&loop, &child_watch);
  uv_timer_start(&child_watch, child_on_watch, 100, 100);
  if ((rc = mb__ctl_start(&loop, &child_brk, child_request_stop)) != 0) {
    fprintf(stderr, "child ctl: %s\n", mb_last_error());
    child_stop_now();
    uv_run(&loop, UV_RUN_DEFAULT);
    mb__broker_stop(&child_brk);
    uv_loop_close(&loop);
    return 103;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  mb__broker_stop(&child_brk);
  /* Every handle the control plane opened must be closed by now. */
  return uv_loop_close(&loop) == 0 ? 0 : 104;
}

/* ---- the parent's side --------------------------------------------------------------------- */

void broker_name(tbroker_t *t, const char *tag) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(t->instance, sizeof t->instance, "p%u%s", (unsigned)self.pid, tag);
  ASSERT_OK(mb__pipe_name(t->instance, t->pipe, sizeof t->pipe, &t->is_path));
}

void broker_spawn(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns,
                  const char *mode, const char *group) {
  mb_os_procid_t self;
  char pid[32];
  if (t->instance[0] == '\0')
    broker_name(t, tag);
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  /* A NULL group ends the argument list one early: the child then has no group. */
  ASSERT_OK(mb_test_spawn(&t->child, "serve", t->instance, pid, max_line, max_conns, mode, group,
                          (char *)NULL));
}

void broker_spawn_ex(tbroker_t *t, const char *tag, const char *max_conns, const char *mode,
                     const char *const *opts) {
  mb_os_procid_t self;
  char pid[32];
  const char *o[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
  int i;
  for (i = 0; opts && opts[i]; i++) {
    if (i >= 5)
      FAIL("broker_spawn_ex: at most 5 options");
    o[i] = opts[i];
  }
  if (t->instance[0] == '\0')
    broker_name(t, tag);
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  ASSERT_OK(mb_test_spawn(&t->child, "serve", t->instance, pid, "4096", max_conns, mode, "", o[0],
                          o[1], o[2], o[3], o[4], (char *)NULL));
}

void broker_wait_ready(tbroker_t *t) {
  uint64_t deadline = mb_os_mono_ns() + 20000000000u;
  mb_pipe_conn_t c;
  int code;
  while (mb__pipe_connect(&c, t->pipe, 1000) != 0) {
    if (mb_os_child_wait(&t->child, 0, &code) == 0)
      FAIL("broker child exited with %d before its pipe '%s' answered", code, t->pipe);
    if (mb_os_mono_ns() > deadline) {
      mb_os_child_kill(&t->child);
      mb_os_child_wait(&t->child, -1, &code);
      FAIL("broker child's pipe '%s' did not answer in 20 s", t->pipe);
    }
    mb_os_sleep_ms(1);
  }
  mb__pipe_close(&c);
}

void broker_up3(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns,
                const char *mode) {
  broker_spawn(t, tag, max_line, max_conns, mode, NULL);
  broker_wait_ready(t);
}

void broker_up2(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns) {
  broker_up3(t, tag, max_line, max_conns, "600");
}

void broker_up(tbroker_t *t, const char *tag) {
  broker_up2(t, tag, "4096", "1024");
}

void broker_up_config(tbroker_t *t, const char *tag, const char *config) {
  char opt[64];
  const char *opts[] = {opt, "max_line=65536", NULL};
  snprintf(opt, sizeof opt, "config=%s", config);
  broker_spawn_ex(t, tag, "1024", "660", opts);
  broker_wait_ready(t);
}

int broker_wait_exit(tbroker_t *t) {
  int code = -1;
  if (mb_os_child_wait(&t->child, 20000, &code) != 0) {
    mb_os_child_kill(&t->child);
    mb_os_child_wait(&t->child, -1, &code);
    FAIL("broker child did not exit in 20 s");
  }
  return code;
}

void send_text(mb_pipe_conn_t *c, const char *text, size_t len) {
  ASSERT_OK(mb__pipe_write(c, text, len));
}

cJSON *read_json(mb_pipe_conn_t *c) {
  char *line;
  size_t len;
  cJSON *j;
  ASSERT_OK(mb__pipe_read_line(c, &line, &len, 1 << 24,
                               mb_os_mono_ns() + (uint64_t)T_READ_MS * 1000000u));
  j = cJSON_Parse(line);
  if (j == NULL || !cJSON_IsObject(j))
    FAIL("response is not a JSON object: %.200s", line);
  return j;
}

cJSON *call(mb_pipe_conn_t *c, const char *line) {
  send_text(c, line, strlen(line));
  send_text(c, "\n", 1);
  return read_json(c);
}

const cJSON *jget(const cJSON *j, const char *path) {
  char key[64];
  while (j && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, path);
    j = cJSON_GetObjectItemCaseSensitive(j, key);
    path += n + (path[n] == '.');
  }
  return j;
}

const char *jstr(const cJSON *j, const char *path) {
  const cJSON *v = jget(j, path);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

double jnum(const cJSON *j, const char *path) {
  const cJSON *v = jget(j, path);
  if (!cJSON_IsNumber(v))
    FAIL("%s is not a number", path);
  return v->valuedouble;
}

void expect_ok(cJSON *r) {
  if (!cJSON_IsTrue(jget(r, "ok"))) {
    char *s = cJSON_PrintUnformatted(r);
    FAIL("expected ok:true, got %s", s);
  }
}

void expect_error(cJSON *r, const char *code) {
  if (!cJSON_IsFalse(jget(r, "ok")) || jstr(r, "error.code") == NULL ||
      strcmp(jstr(r, "error.code"), code) != 0) {
    char *s = cJSON_PrintUnformatted(r);
    FAIL("expected error %s, got %s", code, s);
  }
  ASSERT(jstr(r, "error.message") != NULL && strlen(jstr(r, "error.message")) > 10);
}

void expect_fail(cJSON *r, const char *code, const char *message_part) {
  expect_error(r, code);
  ASSERT_CONTAINS(jstr(r, "error.message"), message_part);
  cJSON_Delete(r);
}

void fresh_status(tbroker_t *t) {
  mb_pipe_conn_t c;
  cJSON *r;
  ASSERT_OK(mb__pipe_connect(&c, t->pipe, 5000));
  r = call(&c, "{\"id\":\"fresh\",\"cmd\":\"status\"}");
  expect_ok(r);
  ASSERT_STR_EQ(jstr(r, "id"), "fresh");
  ASSERT_STR_EQ(jstr(r, "result.server.instance"), t->instance);
  cJSON_Delete(r);
  mb__pipe_close(&c);
}

void broker_down(tbroker_t *t) {
  mb_pipe_conn_t c;
  cJSON *r;
  ASSERT_OK(mb__pipe_connect(&c, t->pipe, 5000));
  r = call(&c, "{\"id\":99,\"cmd\":\"shutdown\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 99);
  ASSERT(cJSON_IsTrue(jget(r, "result.stopping")));
  cJSON_Delete(r);
  mb__pipe_close(&c);
  ASSERT_EQ(broker_wait_exit(t), 0);
}

/* Entry j of client i's private-memory row, written as the client library does: name and
 * figures first, the kind last (release). */
void fake_mem(mb_state_t *st, uint32_t i, int j, uint32_t kind, const char *name, uint32_t detail,
              uint64_t in_use, uint64_t peak, uint64_t committed, uint64_t allocs, uint64_t frees,
              uint64_t failures, uint64_t objects) {
  mb_mem_entry_t *e = &st->client_mem[i].entries[j];
  mb_store32(&e->kind, MB_MEM_NONE);
  mb__name_set(e->name, name);
  mb_store32(&e->detail, detail);
  mb_store64(&e->in_use, in_use);
  mb_store64(&e->peak, peak);
  mb_store64(&e->committed, committed);
  mb_store64(&e->allocs, allocs);
  mb_store64(&e->frees, frees);
  mb_store64(&e->failures, failures);
  mb_store64(&e->objects, objects);
  mb_store32(&e->kind, kind);
  mb_store64(&st->client_mem[i].published_ns, mb_os_wall_ns());
}

/* Client entry i in `state` under `name`, held by this process, as the client library fills
 * it in (an attached one with a fresh heartbeat). */
void fake_client(mb_state_t *st, uint32_t i, uint32_t state, const char *name) {
  mb_client_entry_t *e = &st->clients[i];
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  mb_store64(&e->start_time, self.start_time);
  mb_store64(&e->attach_wall_ns, mb_os_wall_ns());
  mb_store64(&e->heartbeat_ns, mb_os_mono_ns());
  mb__client_name_set(e, name);
  mb_store64(&e->word, MB_CLIENT_WORD(state, i + 1, self.pid));
}
