/*
 * test-protocol.c - the control pipe over a real pipe: a child process (this binary, CHILD
 * broker) runs a broker, a libuv loop and the control server; the test connects as a client.
 * Every bad input gets its error code and leaves the broker serving; pipelined requests are
 * answered in order; limits (line length, connections, a client that never reads) hold;
 * `shutdown` ends the child with exit code 0. The dispatcher's admin check runs in-process.
 */
#include "task.h"

#include <cjson/cJSON.h>
#include <uv.h>

#include "broker.h"
#include "ctl.h"
#include "ctlconn.h"
#include "log.h"

#define T_READ_MS 10000 /* generous: Wine and sanitizers are slow */

/* A small broker config for instance `instance`: world 256 KiB, players 1 MiB lazy slots. */
static void small_config(mb_config_t *cfg, const char *instance) {
  mb__config_defaults(cfg);
  snprintf(cfg->instance, sizeof cfg->instance, "%s", instance);
  cfg->nregions = 2;
  memset(cfg->regions, 0, sizeof cfg->regions);
  snprintf(cfg->regions[0].name, sizeof cfg->regions[0].name, "world");
  cfg->regions[0].size = 256 * 1024;
  snprintf(cfg->regions[1].name, sizeof cfg->regions[1].name, "players");
  cfg->regions[1].size = 1024 * 1024;
  cfg->regions[1].lazy = 1;
  cfg->regions[1].slot_size = 1024;
}

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

/* argv: instance parent_pid max_line max_connections [pipe_mode] */
CHILD(serve) {
  mb_config_t cfg;
  uv_loop_t loop;
  int rc;
  if (argc != 4 && argc != 5)
    return 100;
  mb__log_open(MB_LOG_ERROR, "");
  small_config(&cfg, argv[0]);
  cfg.pipe_max_line = (uint64_t)strtoull(argv[2], NULL, 10);
  cfg.pipe_max_connections = (uint32_t)strtoul(argv[3], NULL, 10);
  cfg.pipe_mode = argc == 5 ? (uint32_t)strtoul(argv[4], NULL, 8) : 0600;
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
    return 103;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  mb__broker_stop(&child_brk);
  /* Every handle the control plane opened must be closed by now. */
  return uv_loop_close(&loop) == 0 ? 0 : 104;
}

/* ---- the parent's side --------------------------------------------------------------------- */

typedef struct {
  mb_os_child_t child;
  char instance[MB_INSTANCE_MAX];
  char pipe[MB_PIPE_NAME_MAX];
  int is_path;
} tbroker_t;

static void broker_name(tbroker_t *t, const char *tag) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(t->instance, sizeof t->instance, "p%u%s", (unsigned)self.pid, tag);
  ASSERT_OK(mb__pipe_name(t->instance, t->pipe, sizeof t->pipe, &t->is_path));
}

/* Start a broker child and wait until its pipe answers. */
static void broker_up3(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns,
                       const char *mode) {
  mb_os_procid_t self;
  mb_pipe_conn_t c;
  char pid[32];
  if (t->instance[0] == '\0')
    broker_name(t, tag);
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  ASSERT_OK(
      mb_test_spawn(&t->child, "serve", t->instance, pid, max_line, max_conns, mode, (char *)NULL));
  WAIT_FOR(mb__pipe_connect(&c, t->pipe, 1000) == 0, 20000);
  mb__pipe_close(&c);
}

static void broker_up2(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns) {
  broker_up3(t, tag, max_line, max_conns, "600");
}

static void broker_up(tbroker_t *t, const char *tag) {
  broker_up2(t, tag, "4096", "1024");
}

static void send_text(mb_pipe_conn_t *c, const char *text, size_t len) {
  ASSERT_OK(mb__pipe_write(c, text, len));
}

/* Read one response line and parse it (fails the test unless it is a JSON object). */
static cJSON *read_json(mb_pipe_conn_t *c) {
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

/* Send `line` plus a newline and return the parsed response. */
static cJSON *call(mb_pipe_conn_t *c, const char *line) {
  send_text(c, line, strlen(line));
  send_text(c, "\n", 1);
  return read_json(c);
}

/* The member at a dotted path ("error.code"), or NULL. */
static const cJSON *jget(const cJSON *j, const char *path) {
  char key[64];
  while (j && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, path);
    j = cJSON_GetObjectItemCaseSensitive(j, key);
    path += n + (path[n] == '.');
  }
  return j;
}

static const char *jstr(const cJSON *j, const char *path) {
  const cJSON *v = jget(j, path);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *path) {
  const cJSON *v = jget(j, path);
  if (!cJSON_IsNumber(v))
    FAIL("%s is not a number", path);
  return v->valuedouble;
}

static void expect_ok(cJSON *r) {
  if (!cJSON_IsTrue(jget(r, "ok"))) {
    char *s = cJSON_PrintUnformatted(r);
    FAIL("expected ok:true, got %s", s);
  }
}

/* The response is an error with `code`, a message, and id null. */
static void expect_error(cJSON *r, const char *code) {
  if (!cJSON_IsFalse(jget(r, "ok")) || jstr(r, "error.code") == NULL ||
      strcmp(jstr(r, "error.code"), code) != 0) {
    char *s = cJSON_PrintUnformatted(r);
    FAIL("expected error %s, got %s", code, s);
  }
  ASSERT(jstr(r, "error.message") != NULL && strlen(jstr(r, "error.message")) > 10);
}

/* A fresh client still gets a full status. */
static void fresh_status(tbroker_t *t) {
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

/* Send shutdown, expect ok, and expect the child to exit 0. */
static void broker_down(tbroker_t *t) {
  mb_pipe_conn_t c;
  cJSON *r;
  int code = -1;
  ASSERT_OK(mb__pipe_connect(&c, t->pipe, 5000));
  r = call(&c, "{\"id\":99,\"cmd\":\"shutdown\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 99);
  ASSERT(cJSON_IsTrue(jget(r, "result.stopping")));
  cJSON_Delete(r);
  mb__pipe_close(&c);
  if (mb_os_child_wait(&t->child, 20000, &code) != 0) {
    mb_os_child_kill(&t->child);
    mb_os_child_wait(&t->child, -1, &code);
    FAIL("broker child did not stop after shutdown");
  }
  ASSERT_EQ(code, 0);
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(ping_version_help) {
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  cJSON *r;
  broker_up(&t, "ping");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  r = call(&c, "{\"id\":1,\"cmd\":\"ping\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 1);
  ASSERT_STR_EQ(jstr(r, "result"), "pong");
  cJSON_Delete(r);
  /* No id: null is echoed; "args": {} and null are accepted. */
  r = call(&c, "{\"cmd\":\"ping\",\"args\":{}}");
  expect_ok(r);
  ASSERT(cJSON_IsNull(jget(r, "id")));
  cJSON_Delete(r);
  r = call(&c, "  {\"cmd\":\"version\",\"id\":\"v\",\"args\":null}  \r");
  expect_ok(r);
  ASSERT_STR_EQ(jstr(r, "id"), "v");
  ASSERT(jstr(r, "result.version") != NULL && jstr(r, "result.build") != NULL);
  ASSERT_EQ(jnum(r, "result.layout_version"), MB_LAYOUT_VERSION);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":2,\"cmd\":\"help\"}");
  expect_ok(r);
  ASSERT_GE(cJSON_GetArraySize(jget(r, "result")), 11);
  cJSON_Delete(r);
  mb__pipe_close(&c);
  broker_down(&t);
}

TEST(status_sections) {
  static const char *const all[] = {"server", "memory", "regions", "clients", "pools"};
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  const cJSON *reg;
  cJSON *r;
  size_t i;
  broker_up(&t, "stat");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  r = call(&c, "{\"id\":1,\"cmd\":\"status\",\"args\":{}}");
  expect_ok(r);
  for (i = 0; i < sizeof all / sizeof all[0]; i++)
    if (jget(r, "result") == NULL || jget(jget(r, "result"), all[i]) == NULL)
      FAIL("status has no section %s", all[i]);
  ASSERT_STR_EQ(jstr(r, "result.server.status"), "running");
  ASSERT_STR_EQ(jstr(r, "result.server.message"), "");
  ASSERT_EQ(jnum(r, "result.server.players"), 0);
  ASSERT_GE(jnum(r, "result.server.uptime_ms"), 0);
  ASSERT_GE(jnum(r, "result.server.generation"), 1);
  ASSERT_EQ(strlen(jstr(r, "result.server.run_id")), 16);
  ASSERT(cJSON_IsNull(jget(r, "result.server.config_path")));
  ASSERT_GT(jnum(r, "result.memory.system_total"), 0);
  ASSERT_GE(jnum(r, "result.memory.committed"), 256 * 1024);
  ASSERT_GE(jnum(r, "result.memory.committed_peak"), jnum(r, "result.memory.committed"));
  ASSERT(cJSON_IsNull(jget(r, "result.memory.limit")));
  reg = jget(r, "result.regions");
  ASSERT_EQ(cJSON_GetArraySize(reg), 2);
  ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(reg, 1), "name"), "players");
  ASSERT_EQ(jnum(cJSON_GetArrayItem(reg, 1), "reserved"), 1024 * 1024);
  ASSERT_EQ(jnum(cJSON_GetArrayItem(reg, 1), "slot_count"), 1024);
  ASSERT(cJSON_IsTrue(jget(cJSON_GetArrayItem(reg, 1), "lazy")));
  ASSERT_EQ(jnum(r, "result.clients.attached"), 0);
  ASSERT_EQ(cJSON_GetArraySize(jget(r, "result.clients.table")), 0);
  ASSERT_EQ(cJSON_GetArraySize(jget(r, "result.pools")), 0);
  cJSON_Delete(r);

  /* Selected sections only. */
  r = call(&c, "{\"id\":2,\"cmd\":\"status\",\"args\":{\"sections\":[\"memory\",\"clients\"]}}");
  expect_ok(r);
  ASSERT(jget(r, "result.memory") != NULL && jget(r, "result.clients") != NULL);
  ASSERT(jget(r, "result.server") == NULL && jget(r, "result.regions") == NULL);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":3,\"cmd\":\"status\",\"args\":{\"sections\":[\"memory\",\"disks\"]}}");
  expect_error(r, "bad_args");
  ASSERT_CONTAINS(jstr(r, "error.message"), "disks");
  ASSERT_EQ(jnum(r, "id"), 3);
  cJSON_Delete(r);

  /* The other read-only commands. */
  r = call(&c, "{\"id\":4,\"cmd\":\"regions\"}");
  expect_ok(r);
  ASSERT_EQ(cJSON_GetArraySize(jget(r, "result")), 2);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":5,\"cmd\":\"clients\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "result.max"), 64);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":6,\"cmd\":\"config\"}");
  expect_ok(r);
  ASSERT_STR_EQ(jstr(r, "result.instance"), t.instance);
  ASSERT_EQ(jnum(r, "result.pipe.max_line"), 4096);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":7,\"cmd\":\"compact\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "result.freed_bytes"), 0);
  ASSERT(cJSON_IsBool(jget(r, "result.supported")));
  cJSON_Delete(r);
  mb__pipe_close(&c);
  broker_down(&t);
}

/* Each bad request on one long-lived connection (which keeps working) and on a new one. */
TEST(bad_inputs) {
  static const struct {
    const char *line;
    const char *code;
    const char *mentions;
  } cases[] = {
      {"{\"id\":1,\"cmd\":", "bad_json", "JSON"},
      {"{\"cmd\":\"ping\"} {\"cmd\":\"ping\"}", "bad_json", "after the request"},
      {"not json at all", "bad_json", "JSON"},
      {"[1,2,3]", "bad_request", "array"},
      {"\"ping\"", "bad_request", "string"},
      {"42", "bad_request", "number"},
      {"{\"id\":3}", "bad_request", "cmd"},
      {"{\"id\":4,\"cmd\":5}", "bad_request", "'cmd' must be a string"},
      {"{\"id\":5,\"cmd\":null}", "bad_request", "'cmd' must be a string"},
      {"{\"id\":[1],\"cmd\":\"ping\"}", "bad_request", "'id'"},
      {"{\"id\":6,\"cmd\":\"ping\",\"arg\":{}}", "bad_request", "arg"},
      {"{\"id\":7,\"cmd\":\"ping\",\"args\":[]}", "bad_request", "'args'"},
      {"{\"id\":8,\"cmd\":\"explode\"}", "unknown_command", "explode"},
      {"{\"id\":9,\"cmd\":\"ping\",\"args\":{\"x\":1}}", "bad_args", "'x'"},
      {"{\"id\":10,\"cmd\":\"status\",\"args\":{\"sections\":\"memory\"}}", "bad_args", "sections"},
      {"{\"id\":11,\"cmd\":\"status\",\"args\":{\"sections\":[1]}}", "bad_args", "strings"},
      {"{\"id\":12,\"cmd\":\"set-status\",\"args\":{\"status\":1}}", "bad_args", "status"},
      {"{\"id\":13,\"cmd\":\"set-status\",\"args\":{\"status\":\"flying\"}}", "bad_args", "flying"},
      {"{\"id\":14,\"cmd\":\"set-status\",\"args\":{}}", "bad_args", "missing"},
      {"{\"id\":15,\"cmd\":\"set-message\",\"args\":{\"message\":42}}", "bad_args", "string"},
      {"{\"id\":16,\"cmd\":\"set-message\"}", "bad_args", "missing"},
  };
  tbroker_t t = {0};
  mb_pipe_conn_t keep, c;
  cJSON *r;
  size_t i;
  broker_up(&t, "bad");
  ASSERT_OK(mb__pipe_connect(&keep, t.pipe, 5000));
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r = call(&keep, cases[i].line);
    expect_error(r, cases[i].code);
    if (strstr(jstr(r, "error.message"), cases[i].mentions) == NULL)
      FAIL("case %zu (%s): message \"%s\" does not mention \"%s\"", i, cases[i].line,
           jstr(r, "error.message"), cases[i].mentions);
    /* id is echoed once the request parsed as an object with a valid id. */
    if (strcmp(cases[i].code, "bad_json") != 0 && strncmp(cases[i].line, "{\"id\":", 6) == 0 &&
        cases[i].line[6] != '[')
      ASSERT(cJSON_IsNumber(jget(r, "id")));
    else
      ASSERT(cJSON_IsNull(jget(r, "id")));
    cJSON_Delete(r);
    ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
    r = call(&c, cases[i].line);
    expect_error(r, cases[i].code);
    cJSON_Delete(r);
    mb__pipe_close(&c);
    fresh_status(&t);
  }
  /* The long-lived connection still works after all of it. */
  r = call(&keep, "{\"id\":\"after\",\"cmd\":\"ping\"}");
  expect_ok(r);
  cJSON_Delete(r);
  mb__pipe_close(&keep);
  broker_down(&t);
}

TEST(binary_garbage) {
  static const char nul_inside[] = "{\"id\":1,\"cmd\":\"pi\0ng\"}\n";
  static const char bad_utf8[] = "{\"id\":1,\"cmd\":\"p\xff\xfeng\"}\n";
  static const char overlong[] = "{\"cmd\":\"\xc0\xaf\"}\n";
  unsigned char junk[3000];
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  cJSON *r;
  size_t i;
  uint32_t x = 12345;
  broker_up(&t, "bin");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  send_text(&c, nul_inside, sizeof nul_inside - 1);
  r = read_json(&c);
  expect_error(r, "bad_json");
  ASSERT_CONTAINS(jstr(r, "error.message"), "NUL");
  cJSON_Delete(r);
  send_text(&c, bad_utf8, sizeof bad_utf8 - 1);
  r = read_json(&c);
  expect_error(r, "bad_json");
  ASSERT_CONTAINS(jstr(r, "error.message"), "UTF-8");
  cJSON_Delete(r);
  send_text(&c, overlong, sizeof overlong - 1);
  r = read_json(&c);
  expect_error(r, "bad_json");
  cJSON_Delete(r);
  /* Random bytes without a newline in them, then a newline: one bad_json answer. */
  for (i = 0; i < sizeof junk; i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (unsigned char)(x >> 16);
    if (junk[i] == '\n' || junk[i] == ' ' || junk[i] == '\t' || junk[i] == '\r')
      junk[i] = 0xff;
  }
  send_text(&c, (const char *)junk, sizeof junk);
  send_text(&c, "\n", 1);
  r = read_json(&c);
  expect_error(r, "bad_json");
  cJSON_Delete(r);
  /* Blank lines are ignored: the next answer is the ping's. */
  send_text(&c, "\n\r\n   \n", 7);
  r = call(&c, "{\"id\":2,\"cmd\":\"ping\"}");
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 2);
  cJSON_Delete(r);
  mb__pipe_close(&c);
  fresh_status(&t);
  broker_down(&t);
}

/* max_line is 4096 in the child: 4096 bytes pass, 4097 do not, and the rest of an over-long
 * line is skipped (across many reads) while the connection keeps working. */
TEST(too_large_line) {
  static char line[300000];
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  cJSON *r;
  const char *head = "{\"id\":1,\"cmd\":\"ping\"}";
  broker_up(&t, "big");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  /* Exactly the limit: the request padded with spaces to 4096 bytes. */
  memset(line, ' ', 4096);
  memcpy(line, head, strlen(head));
  line[4096] = '\n';
  send_text(&c, line, 4097);
  r = read_json(&c);
  expect_ok(r);
  cJSON_Delete(r);
  /* One byte more. */
  memset(line, ' ', 4097);
  memcpy(line, head, strlen(head));
  line[4097] = '\n';
  send_text(&c, line, 4098);
  r = read_json(&c);
  expect_error(r, "too_large");
  ASSERT_CONTAINS(jstr(r, "error.message"), "4096");
  cJSON_Delete(r);
  /* 300 KB in one line, sent in pieces: one too_large, then the next request works. */
  memset(line, 'x', sizeof line);
  send_text(&c, line, sizeof line / 2);
  send_text(&c, line, sizeof line / 2);
  send_text(&c, "\n{\"id\":2,\"cmd\":\"ping\"}\n", 24);
  r = read_json(&c);
  expect_error(r, "too_large");
  cJSON_Delete(r);
  r = read_json(&c);
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 2);
  cJSON_Delete(r);
  mb__pipe_close(&c);
  fresh_status(&t);
  broker_down(&t);
}

TEST(pipelined_in_order) {
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  char buf[64 * 1024];
  size_t n = 0;
  cJSON *r;
  int i;
  broker_up(&t, "pipe");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  /* Mixed: good, bad and string ids, all in one write. */
  n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"id\":1,\"cmd\":\"ping\"}\n");
  n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"id\":\"two\",\"cmd\":\"nope\"}\n");
  n += (size_t)snprintf(buf + n, sizeof buf - n, "garbage\n");
  n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"id\":4,\"cmd\":\"status\"}\n");
  for (i = 5; i < 1000; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"id\":%d,\"cmd\":\"ping\"}\n", i);
  send_text(&c, buf, n);
  r = read_json(&c);
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 1);
  cJSON_Delete(r);
  r = read_json(&c);
  expect_error(r, "unknown_command");
  ASSERT_STR_EQ(jstr(r, "id"), "two");
  cJSON_Delete(r);
  r = read_json(&c);
  expect_error(r, "bad_json");
  cJSON_Delete(r);
  r = read_json(&c);
  expect_ok(r);
  ASSERT_EQ(jnum(r, "id"), 4);
  ASSERT(jget(r, "result.server") != NULL);
  cJSON_Delete(r);
  for (i = 5; i < 1000; i++) {
    r = read_json(&c);
    expect_ok(r);
    ASSERT_EQ(jnum(r, "id"), i);
    cJSON_Delete(r);
  }
  mb__pipe_close(&c);
  broker_down(&t);
}

TEST(disconnect_mid_request) {
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  int i;
  broker_up(&t, "disc");
  for (i = 0; i < 20; i++) {
    ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
    if (i % 3 == 0)
      send_text(&c, "{\"id\":1,\"cmd\":\"sta", 18); /* half a request */
    else if (i % 3 == 1)
      send_text(&c, "{\"id\":1,\"cmd\":\"status\"}\n", 25); /* a request, never read */
    mb__pipe_close(&c);
  }
  fresh_status(&t);
  broker_down(&t);
}

TEST(set_message_and_status) {
  char big[400], line[600];
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  cJSON *r;
  broker_up(&t, "msg");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  r = call(&c, "{\"id\":1,\"cmd\":\"set-message\",\"args\":{\"message\":\"maintenance at 06:00 "
               "\\u2603\"}}");
  expect_ok(r);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":2,\"cmd\":\"set-status\",\"args\":{\"status\":\"draining\"}}");
  expect_ok(r);
  ASSERT_STR_EQ(jstr(r, "result.status"), "draining");
  ASSERT_STR_EQ(jstr(r, "result.previous"), "running");
  cJSON_Delete(r);
  r = call(&c, "{\"id\":3,\"cmd\":\"status\",\"args\":{\"sections\":[\"server\"]}}");
  expect_ok(r);
  ASSERT_STR_EQ(jstr(r, "result.server.message"), "maintenance at 06:00 \xe2\x98\x83");
  ASSERT_STR_EQ(jstr(r, "result.server.status"), "draining");
  cJSON_Delete(r);
  /* 255 bytes pass, 256 do not (and leave the message alone). */
  memset(big, 'm', sizeof big);
  big[255] = '\0';
  snprintf(line, sizeof line, "{\"id\":4,\"cmd\":\"set-message\",\"args\":{\"message\":\"%s\"}}",
           big);
  r = call(&c, line);
  expect_ok(r);
  cJSON_Delete(r);
  big[255] = 'm';
  big[256] = '\0';
  snprintf(line, sizeof line, "{\"id\":5,\"cmd\":\"set-message\",\"args\":{\"message\":\"%s\"}}",
           big);
  r = call(&c, line);
  expect_error(r, "bad_args");
  ASSERT_CONTAINS(jstr(r, "error.message"), "256 bytes");
  cJSON_Delete(r);
  r = call(&c, "{\"id\":6,\"cmd\":\"status\",\"args\":{\"sections\":[\"server\"]}}");
  ASSERT_EQ(strlen(jstr(r, "result.server.message")), 255);
  cJSON_Delete(r);
  r = call(&c, "{\"id\":7,\"cmd\":\"set-status\",\"args\":{\"status\":\"running\"}}");
  expect_ok(r);
  cJSON_Delete(r);
  mb__pipe_close(&c);
  broker_down(&t);
}

TEST(shutdown_removes_the_pipe) {
  tbroker_t t = {0};
  mb_pipe_conn_t c;
  broker_up(&t, "down");
  broker_down(&t);
  ASSERT_ERR(mb__pipe_connect(&c, t.pipe, 0), MB_ENOTRUNNING);
}

/* A socket file left by a dead broker does not stop the next one. */
TEST(stale_socket_file) {
  tbroker_t t = {0};
  FILE *fp;
  broker_name(&t, "stale");
  if (!t.is_path) {
    printf("# skipped: the pipe is not a file here\n");
    return;
  }
  ASSERT((fp = fopen(t.pipe, "w")) != NULL);
  fclose(fp);
  broker_up(&t, "stale");
  fresh_status(&t);
  broker_down(&t);
}

/* With max_connections 3, the fourth client gets one busy line and is closed; once one
 * leaves, a new client is served again. */
TEST(connection_limit) {
  tbroker_t t = {0};
  mb_pipe_conn_t c[3], extra;
  char *line;
  size_t len, n;
  char buf[16];
  cJSON *r;
  int i, served = 0;
  broker_up2(&t, "lim", "4096", "3");
  for (i = 0; i < 3; i++) {
    /* The startup probe's connection may not be closed yet: retry until served. */
    uint64_t dl = mb_os_mono_ns() + 10000000000u;
    for (;;) {
      ASSERT_OK(mb__pipe_connect(&c[i], t.pipe, 5000));
      r = call(&c[i], "{\"id\":1,\"cmd\":\"ping\"}");
      if (cJSON_IsTrue(jget(r, "ok")))
        break;
      expect_error(r, "busy");
      cJSON_Delete(r);
      mb__pipe_close(&c[i]);
      ASSERT(mb_os_mono_ns() < dl);
      mb_os_sleep_ms(5);
    }
    cJSON_Delete(r);
  }
  ASSERT_OK(mb__pipe_connect(&extra, t.pipe, 5000));
  ASSERT_OK(mb__pipe_read_line(&extra, &line, &len, 4096, mb_os_mono_ns() + 10000000000u));
  r = cJSON_Parse(line);
  expect_error(r, "busy");
  ASSERT_CONTAINS(jstr(r, "error.message"), "max_connections");
  cJSON_Delete(r);
  ASSERT_OK(mb__pipe_read(&extra, buf, sizeof buf, mb_os_mono_ns() + 10000000000u, &n));
  ASSERT_EQ(n, 0); /* closed by the broker */
  mb__pipe_close(&extra);
  mb__pipe_close(&c[0]);
  /* Poll until the broker has seen the close. */
  {
    uint64_t dl = mb_os_mono_ns() + 10000000000u;
    while (!served) {
      ASSERT_OK(mb__pipe_connect(&extra, t.pipe, 5000));
      r = call(&extra, "{\"id\":2,\"cmd\":\"ping\"}");
      served = cJSON_IsTrue(jget(r, "ok"));
      cJSON_Delete(r);
      if (!served) {
        mb__pipe_close(&extra);
        ASSERT(mb_os_mono_ns() < dl);
        mb_os_sleep_ms(5);
      }
    }
  }
  /* shutdown over the one that is served */
  r = call(&extra, "{\"id\":3,\"cmd\":\"shutdown\"}");
  expect_ok(r);
  cJSON_Delete(r);
  mb__pipe_close(&extra);
  mb__pipe_close(&c[1]);
  mb__pipe_close(&c[2]);
  {
    int code = -1;
    ASSERT_OK(mb_os_child_wait(&t.child, 20000, &code));
    ASSERT_EQ(code, 0);
  }
}

TEST(idle_500_connections) {
  static mb_pipe_conn_t c[500];
  tbroker_t t = {0};
  cJSON *r;
  int i;
  broker_up(&t, "idle");
  for (i = 0; i < 500; i++)
    ASSERT_OK(mb__pipe_connect(&c[i], t.pipe, 10000));
  fresh_status(&t);
  r = call(&c[0], "{\"id\":1,\"cmd\":\"ping\"}");
  expect_ok(r);
  cJSON_Delete(r);
  r = call(&c[499], "{\"id\":2,\"cmd\":\"clients\"}");
  expect_ok(r);
  cJSON_Delete(r);
  for (i = 0; i < 500; i++)
    mb__pipe_close(&c[i]);
  broker_down(&t);
}

/* Child: send `status` requests to pipe argv[0] without ever reading, until the writes block
 * (the broker stopped reading from us). Killed by the parent. */
CHILD(flood) {
  mb_pipe_conn_t c;
  static char buf[64 * 1024];
  size_t n = 0;
  if (argc != 1 || mb__pipe_connect(&c, argv[0], 5000) != 0)
    return 100;
  while (n + 40 < sizeof buf)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"cmd\":\"status\"}\n");
  for (;;)
    if (mb__pipe_write(&c, buf, n) != 0)
      return 101;
}

/* A client that sends but never reads is held to its write budget: the broker's memory
 * stays bounded and everyone else is answered. */
TEST(client_that_never_reads) {
  tbroker_t t = {0};
  mb_os_child_t flood;
  mb_pipe_conn_t c;
  cJSON *r;
  double rss0, rss1;
  int code, i;
  broker_up(&t, "flood");
  ASSERT_OK(mb__pipe_connect(&c, t.pipe, 5000));
  r = call(&c, "{\"cmd\":\"status\",\"args\":{\"sections\":[\"memory\"]}}");
  rss0 = jnum(r, "result.memory.rss");
  cJSON_Delete(r);
  ASSERT_OK(mb_test_spawn(&flood, "flood", t.pipe, (char *)NULL));
  /* While it floods, others are served, again and again. */
  for (i = 0; i < 50; i++) {
    r = call(&c, "{\"cmd\":\"status\",\"args\":{\"sections\":[\"memory\"]}}");
    expect_ok(r);
    rss1 = jnum(r, "result.memory.rss");
    cJSON_Delete(r);
    mb_os_sleep_ms(20);
  }
  /* ~2 KB per status answer: unbounded, a second of flooding would be gigabytes. */
  if (rss1 - rss0 > 64.0 * 1024 * 1024)
    FAIL("broker grew by %.0f bytes while a client did not read", rss1 - rss0);
  ASSERT_EQ(mb_os_child_wait(&flood, 0, &code), MB_ETIMEOUT); /* blocked, not failed */
  mb_os_child_kill(&flood);
  mb_os_child_wait(&flood, -1, &code);
  mb__pipe_close(&c);
  fresh_status(&t);
  broker_down(&t);
}

/* Child, run as another user: set-status must be forbidden, status allowed. argv: pipe. */
CHILD(as_other_user) {
  mb_pipe_conn_t c;
  char *line;
  size_t len;
  static const char req[] = "{\"id\":1,\"cmd\":\"set-status\",\"args\":{\"status\":\"draining\"}}\n"
                            "{\"id\":2,\"cmd\":\"status\"}\n";
  uint64_t dl = mb_os_mono_ns() + 10000000000u;
  int rc = 10;
  if (argc != 1 || mb__pipe_connect(&c, argv[0], 5000) != 0)
    return 100;
  if (mb__pipe_write(&c, req, sizeof req - 1) != 0 ||
      mb__pipe_read_line(&c, &line, &len, 1 << 20, dl) != 0)
    rc = 101;
  else if (strstr(line, "\"code\":\"forbidden\"") == NULL)
    rc = 102;
  else if (mb__pipe_read_line(&c, &line, &len, 1 << 20, dl) != 0 ||
           strstr(line, "\"ok\":true") == NULL)
    rc = 103;
  mb__pipe_close(&c); /* frees the read buffer: the sanitizer build checks for leaks */
  return rc;
}

/* Linux, run as root with setpriv: a peer that is neither root nor the broker's user may read
 * but not change (SO_PEERCRED). Skipped where that cannot be arranged. */
TEST(forbidden_for_other_users) {
  tbroker_t t = {0};
  mb_os_child_t child;
  char self[1024];
  const char *argv[8];
  int code = -1;
  broker_name(&t, "user");
  if (!t.is_path || mb_os_self_exe(self, sizeof self) != 0) {
    printf("# skipped: not a Unix socket here\n");
    return;
  }
  broker_up3(&t, "user", "4096", "1024", "666");
  argv[0] = "/usr/bin/setpriv";
  argv[1] = "--reuid=65534";
  argv[2] = "--regid=65534";
  argv[3] = "--clear-groups";
  argv[4] = self;
  argv[5] = "--child";
  argv[6] = "as_other_user";
  argv[7] = NULL;
  {
    const char *full[9];
    memcpy(full, argv, sizeof argv);
    full[7] = t.pipe;
    full[8] = NULL;
    if (mb_os_spawn(full, &child) != 0) {
      printf("# skipped: no setpriv\n");
      broker_down(&t);
      return;
    }
  }
  ASSERT_OK(mb_os_child_wait(&child, 20000, &code));
  if (code != 10 && code < 100)
    printf("# skipped: setpriv could not switch users (exit %d)\n", code);
  else
    ASSERT_EQ(code, 10);
  broker_down(&t);
}

/* The dispatcher in-process: admin-only commands are forbidden to others; shutdown asks to
 * stop only when it succeeds. */
TEST(dispatch_admin_rights) {
  static const char *const admin_only[] = {
      "{\"id\":1,\"cmd\":\"shutdown\"}",
      "{\"id\":1,\"cmd\":\"compact\"}",
      "{\"id\":1,\"cmd\":\"set-status\",\"args\":{\"status\":\"draining\"}}",
      "{\"id\":1,\"cmd\":\"set-message\",\"args\":{\"message\":\"x\"}}",
  };
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_procid_t self;
  char inst[MB_INSTANCE_MAX];
  char *out;
  cJSON *r;
  size_t i;
  int stop;
  mb_os_proc_self(&self);
  snprintf(inst, sizeof inst, "p%udisp", (unsigned)self.pid);
  small_config(&cfg, inst);
  mb__log_open(MB_LOG_ERROR, "");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  for (i = 0; i < sizeof admin_only / sizeof admin_only[0]; i++) {
    out = mb__ctl_handle_line(&b, admin_only[i], strlen(admin_only[i]), 0, &stop);
    r = cJSON_Parse(out);
    expect_error(r, "forbidden");
    ASSERT_EQ(stop, 0);
    cJSON_Delete(r);
    cJSON_free(out);
  }
  ASSERT_EQ(mb_load32(&b.state->game.server_status), MB_STATUS_RUNNING);
  out = mb__ctl_handle_line(&b, "{\"cmd\":\"status\"}", 16, 0, &stop);
  r = cJSON_Parse(out);
  expect_ok(r);
  cJSON_Delete(r);
  cJSON_free(out);
  out = mb__ctl_handle_line(&b, admin_only[0], strlen(admin_only[0]), 1, &stop);
  ASSERT_EQ(stop, 1);
  cJSON_free(out);
  ASSERT(mb__ctl_handle_line(&b, " \t\r", 3, 1, &stop) == NULL);
  mb__broker_stop(&b);
}
