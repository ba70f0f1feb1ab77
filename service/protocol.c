/*
 * protocol.c - the control protocol without its transport (see protocol.h): the command
 * table (from common/commands.def), request parsing and validation (UTF-8, strict JSON, the
 * request's fields, the command's argument names, the admin right), the dispatch to the
 * handlers (cmd.h), and the answer and error lines. No libuv: the pipe server (ctl.c) feeds
 * it lines, and the fuzzer (tests/fuzz-ctl.c) drives it directly.
 */
#include "protocol.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ------------------------------------------------------------------------------------------ */
/* The command table, from common/commands.def (handlers in cmd_*.c).                         */

#define MB_ARG MB_CMD_ARG_INIT
#define MB_CMD(name, handler, admin, args, help) {name, handler, admin, MB_CMD_ARGS(args), help},
static const mb_ctl_cmd_t mb__cmds[] = {
#include "commands.def"
    {NULL, NULL, 0, NULL, NULL},
};
#undef MB_CMD
#undef MB_ARG

const mb_ctl_cmd_t *mb__ctl_commands(void) {
  return mb__cmds;
}

const mb_ctl_cmd_t *mb__ctl_command(const char *name) {
  const mb_ctl_cmd_t *c;
  for (c = mb__cmds; c->name; c++)
    if (strcmp(c->name, name) == 0)
      return c;
  return NULL;
}

const char *mb__ctl_err_code(int err) {
  if (err < 0) { /* a handler's MB_E* code; an invalid argument is the protocol's bad_args */
    const char *name = mb_err_name(err);
    return err == MB_EINVAL ? "bad_args" : strcmp(name, "unknown") == 0 ? "internal" : name;
  }
  switch (err) {
#define MB__X(name, code)                                                                          \
  case MB_CTL_E##name:                                                                             \
    return code;
    MB_CTL_ERROR_MAP(MB__X)
#undef MB__X
  default:
    return "internal";
  }
}

int mb__ctl_fail(mb_ctl_call_t *call, int err, const char *fmt, ...) {
  va_list ap;
  size_t n, at = 0;
  va_start(ap, fmt);
  vsnprintf(call->msg, sizeof call->msg, fmt, ap);
  va_end(ap);
  /* A name cut by %.64s may end in half a character: keep the message valid UTF-8. */
  n = strlen(call->msg);
  while ((at += mb__utf8_invalid(call->msg + at, n - at, 0)) < n)
    call->msg[at++] = '?';
  call->err = err;
  return -1;
}

int mb__ctl_oom(mb_ctl_call_t *call, const char *what) {
  return mb__ctl_fail(call, MB_CTL_EINTERNAL, "out of memory building the %s answer", what);
}

int mb__ctl_fail_rc(mb_ctl_call_t *call, int rc) {
  return mb__ctl_fail(call, rc < 0 ? rc : MB_CTL_EINTERNAL, "%s", mb_last_error());
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatcher                                                                                  */

const char *mb__ctl_jtype(const cJSON *item) {
  if (cJSON_IsString(item))
    return "a string";
  if (cJSON_IsNumber(item))
    return "a number";
  if (cJSON_IsBool(item))
    return "a boolean";
  if (cJSON_IsNull(item))
    return "null";
  if (cJSON_IsArray(item))
    return "an array";
  if (cJSON_IsObject(item))
    return "an object";
  return "invalid";
}

static int mb__is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/*
 * What cJSON lets through but JSON (RFC 8259) does not, and what would make a request mean
 * something other than it says: control bytes (outside strings only tab, CR and LF are
 * whitespace; inside strings none is allowed raw) and a \u0000 escape (cJSON's strings end
 * at NUL, so "ping\u0000x" would run `ping`). Returns the offset of the first such byte and
 * sets *what, or `len` if there is none.
 */
static size_t mb__json_lint(const char *s, size_t len, const char **what) {
  size_t i;
  int in_str = 0;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 && (in_str || !(ch == '\t' || ch == '\r' || ch == '\n'))) {
      *what = in_str ? "a raw control character in a string" : "a control character";
      return i;
    }
    if (!in_str) {
      in_str = ch == '"';
      continue;
    }
    if (ch == '"') {
      in_str = 0;
    } else if (ch == '\\' && i + 1 < len) {
      if (s[i + 1] == 'u' && i + 5 < len && s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0' &&
          s[i + 5] == '0') {
        *what = "a \\u0000 (NUL) escape, which no field may hold";
        return i;
      }
      i++; /* the escaped character */
    }
  }
  return len;
}

/* The first member of object `o` whose name an earlier member has too, or NULL. Called on
 * args once every member is known to be one of the command's few argument names, so a
 * flood of members fails at its first repeat. */
static const cJSON *mb__duplicate_member(const cJSON *o) {
  const cJSON *a, *b;
  for (a = o ? o->child : NULL; a != NULL; a = a->next)
    for (b = o->child; b != a; b = b->next)
      if (strcmp(a->string, b->string) == 0)
        return a;
  return NULL;
}

/* 1 if `name` is one of the arguments in `args`. */
static int mb__listed(const mb_cmd_arg_t *args, const char *name) {
  for (; args->name; args++)
    if (strcmp(args->name, name) == 0)
      return 1;
  return 0;
}

/* "a, b" - the argument names of `args`, for messages. */
static const char *mb__arg_names(const mb_cmd_arg_t *args, char *buf, size_t size) {
  size_t at = 0;
  buf[0] = '\0';
  for (; args->name && at < size; args++)
    at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? ", " : "", args->name);
  return buf;
}

/* Log a refused command: the first at once, then at most one line per 10 s with the count,
 * so a peer cannot flood the log with refusals. */
static void mb__warn_forbidden(const char *cmd) {
  static uint64_t last_ns;
  static unsigned long suppressed;
  uint64_t now = mb_os_mono_ns();
  if (last_ns != 0 && now - last_ns < 10000ull * 1000000u) {
    suppressed++;
    return;
  }
  if (suppressed)
    mb_log_warn("control pipe: '%s' refused to a peer that is not an administrator (and %lu "
                "more refusals in the last 10 s)",
                cmd, suppressed);
  else
    mb_log_warn("control pipe: '%s' refused to a peer that is not an administrator", cmd);
  last_ns = now;
  suppressed = 0;
}

/* Validate the parsed request, find its command and run it; the outcome lands in `call`. */
static void mb__dispatch(mb_ctl_call_t *call, cJSON *req, cJSON **id_out) {
  const cJSON *cmd, *args, *it, *unknown = NULL;
  const mb_ctl_cmd_t *c;
  cJSON *id;
  int nid = 0, ncmd = 0, nargs = 0, rc;

  if (!cJSON_IsObject(req)) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST,
                 "a request must be a JSON object like {\"id\":1,\"cmd\":\"ping\"}, got %s",
                 mb__ctl_jtype(req));
    return;
  }
  /* One pass: the first unknown member, and how often each known one is given. */
  cJSON_ArrayForEach(it, req) {
    if (strcmp(it->string, "id") == 0)
      nid++;
    else if (strcmp(it->string, "cmd") == 0)
      ncmd++;
    else if (strcmp(it->string, "args") == 0)
      nargs++;
    else if (unknown == NULL)
      unknown = it;
  }
  /* The id first, when there is exactly one, so that the error answers below carry it. */
  id = nid == 1 ? cJSON_GetObjectItemCaseSensitive(req, "id") : NULL;
  if (id != NULL) {
    if (!cJSON_IsNumber(id) && !cJSON_IsString(id)) {
      mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "'id' must be a number or a string, got %s",
                   mb__ctl_jtype(id));
      return;
    }
    /* A number is echoed as the client sent it only if it is an integer a double holds
     * exactly: anything else could come back as another number and match no request. */
    if (cJSON_IsNumber(id) &&
        !(id->valuedouble >= -9007199254740992.0 && id->valuedouble <= 9007199254740992.0 &&
          id->valuedouble == (double)(long long)id->valuedouble)) {
      mb__ctl_fail(call, MB_CTL_EBAD_REQUEST,
                   "'id' must be a string or an integer from -2^53 to 2^53, got %.17g",
                   id->valuedouble);
      return;
    }
    *id_out = cJSON_DetachItemViaPointer(req, id);
  }
  if (unknown != NULL) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "unknown request field '%.64s' (fields: id, cmd, args)",
                 unknown->string);
    return;
  }
  if (nid > 1 || ncmd > 1 || nargs > 1) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "field '%s' is given twice",
                 nid > 1    ? "id"
                 : ncmd > 1 ? "cmd"
                            : "args");
    return;
  }
  cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
  if (cmd == NULL) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "missing 'cmd' (the command name, a string)");
    return;
  }
  if (!cJSON_IsString(cmd)) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "'cmd' must be a string, got %s", mb__ctl_jtype(cmd));
    return;
  }
  args = cJSON_GetObjectItemCaseSensitive(req, "args");
  if (args != NULL && cJSON_IsNull(args))
    args = NULL;
  if (args != NULL && !cJSON_IsObject(args)) {
    mb__ctl_fail(call, MB_CTL_EBAD_REQUEST, "'args' must be an object, got %s",
                 mb__ctl_jtype(args));
    return;
  }
  if ((c = mb__ctl_command(cmd->valuestring)) == NULL) {
    mb__ctl_fail(call, MB_CTL_EUNKNOWN_COMMAND, "unknown command '%.64s' (try 'help')",
                 cmd->valuestring);
    return;
  }
  if (c->needs_admin && !call->admin) {
    mb__warn_forbidden(c->name);
    mb__ctl_fail(call, MB_CTL_EFORBIDDEN,
                 "'%s' changes the broker and needs an administrator (root or the broker's user)",
                 c->name);
    return;
  }
  cJSON_ArrayForEach(it, args) {
    if (!mb__listed(c->args, it->string)) {
      char names[160];
      if (c->args[0].name)
        mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'%s' has no argument '%.64s' (arguments: %s)",
                     c->name, it->string, mb__arg_names(c->args, names, sizeof names));
      else
        mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'%s' takes no arguments, got '%.64s'", c->name,
                     it->string);
      return;
    }
  }
  if ((it = mb__duplicate_member(args)) != NULL) {
    mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'%s' argument '%s' is given twice", c->name, it->string);
    return;
  }
  call->args = args;
  if ((rc = c->handler(call)) != 0) {
    if (call->err == MB_CTL_OK && rc < 0) /* an MB_E* code, its message left for this thread */
      mb__ctl_fail(call, rc, "'%s' failed: %s", c->name, mb_last_error());
    else if (call->err == MB_CTL_OK)
      mb__ctl_fail(call, MB_CTL_EINTERNAL, "'%s' failed", c->name);
    cJSON_Delete(call->result);
    call->result = NULL;
    call->stop_after = 0;
  }
}

/* The last resort when even the answer cannot be built. */
static char *mb__oom_line(void) {
  static const char text[] =
      "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
  char *s = cJSON_malloc(sizeof text);
  if (s)
    memcpy(s, text, sizeof text);
  return s;
}

/* Print {"id":..., "ok":..., "result"|"error":...}; takes ownership of id and call->result. */
static char *mb__answer(mb_ctl_call_t *call, cJSON *id) {
  cJSON *resp = cJSON_CreateObject(), *err;
  char *text = NULL;
  int ok = resp != NULL;
  if (ok) {
    cJSON *v = id ? id : cJSON_CreateNull();
    if (v != NULL && cJSON_AddItemToObject(resp, "id", v)) {
      id = NULL;
    } else {
      if (v != id)
        cJSON_Delete(v);
      ok = 0;
    }
  }
  if (ok && call->err == MB_CTL_OK) {
    cJSON *v = call->result ? call->result : cJSON_CreateTrue();
    if (v != NULL && cJSON_AddTrueToObject(resp, "ok") != NULL &&
        cJSON_AddItemToObject(resp, "result", v)) {
      call->result = NULL;
    } else {
      if (v != call->result)
        cJSON_Delete(v);
      ok = 0;
    }
  } else if (ok) {
    ok = cJSON_AddFalseToObject(resp, "ok") != NULL &&
         (err = cJSON_AddObjectToObject(resp, "error")) != NULL &&
         cJSON_AddStringToObject(err, "code", mb__ctl_err_code(call->err)) != NULL &&
         cJSON_AddStringToObject(err, "message", call->msg) != NULL;
  }
  if (ok)
    text = cJSON_PrintUnformatted(resp);
  cJSON_Delete(resp);
  cJSON_Delete(id);
  cJSON_Delete(call->result);
  call->result = NULL;
  return text ? text : mb__oom_line();
}

char *mb__ctl_error_line(int err, const char *msg) {
  mb_ctl_call_t call;
  memset(&call, 0, sizeof call);
  mb__ctl_fail(&call, err, "%s", msg);
  return mb__answer(&call, NULL);
}

char *mb__ctl_handle_line(mb_broker_t *b, const char *line, size_t len, int admin,
                          int *stop_after) {
  mb_ctl_effects_t fx;
  char *text = mb__ctl_handle_request(b, line, len, admin, &fx);
  cJSON_free(fx.watch_id);
  *stop_after = fx.stop_after;
  return text;
}

/* Finish a call whose handler handed work off: its outcome, as a handler's, in `call`. */
static void mb__work_done(mb_ctl_call_t *call, mb_ctl_work_t *work) {
  call->work = NULL;
  if (work->done(work, call) != 0 && call->err == MB_CTL_OK)
    mb__ctl_fail(call, MB_CTL_EINTERNAL, "the command failed");
  if (call->err != MB_CTL_OK) {
    cJSON_Delete(call->result);
    call->result = NULL;
  }
  call->stop_after = 0;
  call->watch = 0;
}

char *mb__ctl_handle(mb_broker_t *b, const char *line, size_t len, int admin, mb_ctl_effects_t *fx,
                     mb_ctl_pending_t *pending) {
  mb_ctl_call_t call;
  cJSON *req = NULL, *id = NULL;
  const char *end = NULL, *lint = NULL;
  size_t bad, i = 0;

  memset(fx, 0, sizeof *fx);
  if (pending)
    memset(pending, 0, sizeof *pending);
  while (len > 0 && mb__is_space(line[len - 1]))
    len--;
  while (i < len && mb__is_space(line[i]))
    i++;
  if (i == len)
    return NULL; /* blank line */
  memset(&call, 0, sizeof call);
  call.broker = b;
  call.admin = admin;

  if ((bad = mb__utf8_invalid(line, len, 0)) < len) {
    if (line[bad] == '\0')
      mb__ctl_fail(&call, MB_CTL_EBAD_JSON, "request holds a NUL byte at offset %zu", bad);
    else
      mb__ctl_fail(&call, MB_CTL_EBAD_JSON,
                   "request is not valid UTF-8 text (byte 0x%02x at offset %zu)",
                   (unsigned)(unsigned char)line[bad], bad);
  } else if ((bad = mb__json_lint(line, len, &lint)) < len) {
    mb__ctl_fail(&call, MB_CTL_EBAD_JSON, "request is not valid JSON: %s at offset %zu", lint, bad);
  } else if ((req = cJSON_ParseWithLengthOpts(line, len, &end, 0)) == NULL) {
    mb__ctl_fail(&call, MB_CTL_EBAD_JSON, "request is not valid JSON (error at offset %zu)",
                 end && end >= line && end <= line + len ? (size_t)(end - line) : (size_t)0);
  } else {
    while (end < line + len && mb__is_space(*end))
      end++;
    if (end < line + len)
      mb__ctl_fail(&call, MB_CTL_EBAD_JSON,
                   "unexpected text after the request at offset %zu (one request a line)",
                   (size_t)(end - line));
    else
      mb__dispatch(&call, req, &id);
  }
  cJSON_Delete(req);
  if (call.err == MB_CTL_OK && call.work != NULL) {
    if (pending != NULL) {
      pending->work = call.work;
      pending->id = id;
      pending->admin = admin;
      return NULL;
    }
    call.work->run(call.work);
    mb__work_done(&call, call.work);
  }
  if (call.err == MB_CTL_OK && call.watch == 1) {
    /* The stream's events carry the watch request's id: keep it as text. */
    if ((fx->watch_id = id ? cJSON_PrintUnformatted(id) : NULL) == NULL && id != NULL) {
      cJSON_Delete(call.result);
      call.result = NULL;
      mb__ctl_fail(&call, MB_CTL_EINTERNAL, "out of memory starting the watch");
    } else {
      fx->watch = 1;
      fx->interval_ms = call.watch_interval_ms;
      fx->sections = call.watch_sections;
    }
  } else if (call.err == MB_CTL_OK && call.watch == -1) {
    fx->watch = -1;
  }
  fx->stop_after = call.err == MB_CTL_OK && call.stop_after;
  return mb__answer(&call, id);
}

/* ------------------------------------------------------------------------------------------ */
/* Constant answers without a JSON tree                                                        */

/*
 * The commands whose answer is the same every time and which change nothing: a request for one
 * of them in the plain shape mb__ctl_quick takes is answered by copying bytes, with no parse,
 * no tree and no allocation. The bytes after the id are the command's own: printed once, by
 * mb__answer, from what its handler (commands.def) returns, so they cannot drift from the full
 * path. Only commands any peer may run belong here.
 */
static const char *const mb__quick_names[] = {"ping"};
#define MB__QUICK_N (sizeof mb__quick_names / sizeof mb__quick_names[0])
#define MB__QUICK_ID_MAX 64 /* longest string id (with its quotes) the quick path copies */

static struct {
  int state; /* 0: not built yet; 1: built; -1: not constant (the full path answers) */
  size_t tail_len;
  char tail[MB_CTL_QUICK_MAX - 6 - MB__QUICK_ID_MAX]; /* what follows {"id":<id> */
} mb__quick[MB__QUICK_N];

/* Build the constant tail of quick command i from its handler: 0, or -1 if it is not usable. */
static int mb__quick_build(mb_broker_t *b, size_t i) {
  static const char head[] = "{\"id\":null";
  const mb_ctl_cmd_t *c = mb__ctl_command(mb__quick_names[i]);
  mb_ctl_call_t call;
  char *text;
  size_t n;
  mb__quick[i].state = -1;
  if (c == NULL || c->needs_admin)
    return -1;
  memset(&call, 0, sizeof call);
  call.broker = b;
  if (c->handler(&call) != 0 || call.err != MB_CTL_OK || call.work != NULL || call.watch != 0 ||
      call.stop_after) {
    cJSON_Delete(call.result);
    return -1;
  }
  if ((text = mb__answer(&call, NULL)) == NULL)
    return -1;
  n = strlen(text);
  if (n > sizeof head - 1 && memcmp(text, head, sizeof head - 1) == 0 &&
      n - (sizeof head - 1) <= sizeof mb__quick[i].tail &&
      strstr(text, "\"ok\":true") == text + sizeof head - 1 + 1) {
    mb__quick[i].tail_len = n - (sizeof head - 1);
    memcpy(mb__quick[i].tail, text + sizeof head - 1, mb__quick[i].tail_len);
    mb__quick[i].state = 1;
  }
  cJSON_free(text);
  return mb__quick[i].state == 1 ? 0 : -1;
}

/* A string of s[0..e) at s[0] == '"' whose bytes cJSON prints back as they are (printable
 * ASCII, no quote or backslash), at most max bytes with its quotes: its end, or NULL. */
static const char *mb__quick_string(const char *s, const char *e, size_t max) {
  const char *p = s + 1;
  while (p < e && *p != '"') {
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '\\')
      return NULL;
    p++;
  }
  if (p == e || (size_t)(p + 1 - s) > max)
    return NULL;
  return p + 1;
}

/* An integer of s[0..e) that cJSON parses and prints back as the same bytes (no leading zero,
 * no "-0", at most 9 digits, so it is an int): its end, or NULL. */
static const char *mb__quick_int(const char *s, const char *e) {
  const char *p = s + (s < e && *s == '-'), *d = p;
  if (p == e || *p < '0' || *p > '9' || (*p == '0' && p != s))
    return NULL;
  if (*p == '0')
    return p + 1;
  while (p < e && *p >= '0' && *p <= '9' && p - d < 9)
    p++;
  return p;
}

size_t mb__ctl_quick(mb_broker_t *b, const char *line, size_t len, char *out) {
  const char *p = line, *e = line + len, *id = NULL, *id_end = NULL, *cmd = NULL, *v;
  size_t cmd_len = 0, i, n, at;
  int args = 0;
  while (e > p && mb__is_space(e[-1]))
    e--;
  while (p < e && mb__is_space(*p))
    p++;
  if (e - p < 2 || *p++ != '{')
    return 0;
  for (;;) {
    /* One member: "id":<int or string>, "cmd":"<name>" or "args":{}, each at most once. */
    if (e - p > 5 && memcmp(p, "\"id\":", 5) == 0 && id == NULL) {
      id = p + 5;
      if ((id_end = id < e && *id == '"' ? mb__quick_string(id, e, MB__QUICK_ID_MAX)
                                         : mb__quick_int(id, e)) == NULL)
        return 0;
      p = id_end;
    } else if (e - p > 6 && memcmp(p, "\"cmd\":", 6) == 0 && cmd == NULL && p[6] == '"') {
      if ((v = mb__quick_string(p + 6, e, 34)) == NULL)
        return 0;
      cmd = p + 7;
      cmd_len = (size_t)(v - cmd) - 1;
      p = v;
    } else if (e - p > 9 && memcmp(p, "\"args\":{}", 9) == 0 && !args) {
      args = 1;
      p += 9;
    } else {
      return 0;
    }
    if (p < e && *p == ',') {
      p++;
      continue;
    }
    if (p + 1 != e || *p != '}' || cmd == NULL)
      return 0;
    break;
  }
  for (i = 0; i < MB__QUICK_N; i++)
    if (strlen(mb__quick_names[i]) == cmd_len && memcmp(mb__quick_names[i], cmd, cmd_len) == 0)
      break;
  if (i == MB__QUICK_N || mb__quick[i].state < 0 ||
      (mb__quick[i].state == 0 && mb__quick_build(b, i) != 0))
    return 0;
  memcpy(out, "{\"id\":", 6);
  at = 6;
  if (id == NULL) {
    memcpy(out + at, "null", 4);
    at += 4;
  } else {
    n = (size_t)(id_end - id);
    memcpy(out + at, id, n);
    at += n;
  }
  memcpy(out + at, mb__quick[i].tail, mb__quick[i].tail_len);
  return at + mb__quick[i].tail_len;
}

char *mb__ctl_handle_request(mb_broker_t *b, const char *line, size_t len, int admin,
                             mb_ctl_effects_t *fx) {
  return mb__ctl_handle(b, line, len, admin, fx, NULL);
}

char *mb__ctl_finish(mb_broker_t *b, mb_ctl_pending_t *p, int cancelled) {
  mb_ctl_call_t call;
  char *text;
  memset(&call, 0, sizeof call);
  call.broker = b;
  call.admin = p->admin;
  if (cancelled) /* cancelled before it ran (never done here): done still cleans up */
    mb__ctl_fail(&call, MB_CTL_EINTERNAL, "the command's work was cancelled");
  mb__work_done(&call, p->work);
  text = mb__answer(&call, p->id);
  p->work = NULL;
  p->id = NULL;
  return text;
}
