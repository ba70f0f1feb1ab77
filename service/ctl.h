/*
 * ctl.h - the control plane: a libuv pipe server speaking newline-delimited JSON, and the
 * command table its dispatcher uses.
 *
 * Protocol: one request object a line, {"id":1,"cmd":"status","args":{}}; one response a
 * line, {"id":1,"ok":true,"result":...} or
 * {"id":1,"ok":false,"error":{"code":"bad_args","message":"..."}}. "id" is echoed as given
 * (a number or a string; null when absent or when the request could not be parsed).
 * Requests of one connection are answered in order. Empty lines are ignored.
 *
 * `watch` turns a connection into a subscriber as well: after its ok answer, one line
 * {"id":<the watch's id>,"event":"status","result":{...}} every interval_ms, between the
 * answers to whatever else the client sends, until `unwatch`, another `watch` (which
 * replaces it) or the connection's end.
 *
 * The loop part (ctl.c) owns framing, limits and back-pressure; handlers live in files by
 * area (cmd_broker.c) and see only an mb_ctl_call_t.
 */
#ifndef MB_CTL_H
#define MB_CTL_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "broker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, "code") - the fixed error codes of the protocol. */
#define MB_CTL_ERROR_MAP(X)                                                                        \
  X(BAD_JSON, "bad_json")                                                                          \
  X(BAD_REQUEST, "bad_request")                                                                    \
  X(UNKNOWN_COMMAND, "unknown_command")                                                            \
  X(BAD_ARGS, "bad_args")                                                                          \
  X(FORBIDDEN, "forbidden")                                                                        \
  X(TOO_LARGE, "too_large")                                                                        \
  X(BUSY, "busy")                                                                                  \
  X(INTERNAL, "internal")

enum mb_ctl_error {
  MB_CTL_OK = 0,
#define MB__X(name, code) MB_CTL_E##name,
  MB_CTL_ERROR_MAP(MB__X)
#undef MB__X
};

/* The JSON type of an item for messages: "a string", "a number", "an object", ... */
const char *mb__ctl_jtype(const cJSON *item);

/* The "code" string of a protocol error ("internal" for an unknown value). */
const char *mb__ctl_err_code(int err);

typedef struct mb_ctl_call_s mb_ctl_call_t;

/*
 * Slow work a handler hands off instead of answering at once (map-load reads a file): it sets
 * call->work and returns 0 without a result. The pipe server then runs `run` on a libuv worker
 * thread and `done` on the loop thread, which ends the call as a handler would (call->result,
 * or mb__ctl_fail) and frees the work; the connection's later requests wait for that answer,
 * so answers stay in request order. mb__ctl_handle_line and mb__ctl_handle_request run both
 * at once. `run` touches nothing the loop thread uses; `done` always runs, also when the
 * connection closed meanwhile (its answer is then dropped) and when the broker is stopping
 * (the loop runs until every work is done). A deferred call cannot stop the broker or watch.
 */
typedef struct mb_ctl_work_s mb_ctl_work_t;
struct mb_ctl_work_s {
  void (*run)(mb_ctl_work_t *w);
  int (*done)(mb_ctl_work_t *w, mb_ctl_call_t *call);
};

/* One request as a handler sees it. */
struct mb_ctl_call_s {
  mb_broker_t *broker;
  const cJSON *args; /* the request's "args" object, or NULL when it had none */
  int admin;         /* the peer is an administrator */
  cJSON *result;     /* set by a successful handler; NULL answers `true` */
  int stop_after;    /* set by `shutdown`: request the stop once the answer is written */
  int watch;         /* set by `watch` (1: start or replace the stream) and `unwatch` (-1) */
  unsigned watch_interval_ms; /* with watch == 1: the period */
  unsigned watch_sections;    /* with watch == 1: MB_REPORT_* bits of each event's report */
  int err;                    /* MB_CTL_E* once mb__ctl_fail was called */
  char msg[320];              /* its message */
  mb_ctl_work_t *work;        /* set by a handler that hands slow work off (mb_ctl_work_t) */
};

/* A handler: 0 on success (call->result set), or the value of mb__ctl_fail(). */
typedef int (*mb_ctl_handler_fn)(mb_ctl_call_t *call);

/* One command of the table. `args` lists the argument names it accepts, space-separated. */
typedef struct mb_ctl_cmd_s {
  const char *name;
  mb_ctl_handler_fn handler;
  int needs_admin;
  const char *args;
} mb_ctl_cmd_t;

/* Fail the call with `err` and a message naming what was wrong; returns -1 for `return`. */
int mb__ctl_fail(mb_ctl_call_t *call, int err, const char *fmt, ...) MB_PRINTF(3, 4);

/* The command table (NULL-terminated) and a lookup by name (NULL if unknown). */
const mb_ctl_cmd_t *mb__ctl_commands(void);
const mb_ctl_cmd_t *mb__ctl_command(const char *name);

/*
 * Answer one request line of `len` bytes (no newline; it need not be NUL-terminated) from a
 * peer with the given admin right: parse, validate, dispatch. Returns the response line
 * (no newline, malloc'd, the caller frees it), or NULL for a blank line. Never fails: out of
 * memory gives a static `internal` answer copied into a malloc'd string, or NULL only if even
 * that fails. *stop_after is set when the broker is to stop once the answer is written.
 * Independent of libuv, so the fuzzer drives it directly.
 */
char *mb__ctl_handle_line(mb_broker_t *b, const char *line, size_t len, int admin, int *stop_after);

/* What a request asks of its connection besides its answer (see mb__ctl_handle_request). */
typedef struct mb_ctl_effects_s {
  int stop_after;       /* stop the broker once the answer is written */
  int watch;            /* 1: start (or replace) the connection's watch; -1: end it; 0: none */
  unsigned interval_ms; /* with watch == 1: the period, MB_CTL_WATCH_MIN_MS..MB_CTL_WATCH_MAX_MS */
  unsigned sections;    /* with watch == 1: MB_REPORT_* bits */
  char *watch_id;       /* with watch == 1: the request's id as JSON text ("7", "null");
                           malloc'd (cJSON allocator), the caller frees it with cJSON_free */
} mb_ctl_effects_t;

#define MB_CTL_WATCH_MIN_MS 50
#define MB_CTL_WATCH_MAX_MS 60000
#define MB_CTL_WATCH_DEFAULT_MS 1000

/*
 * mb__ctl_handle_line with everything a request may ask of its connection in *fx (zeroed
 * first): the pipe server uses it to start and end `watch` streams. Returns the answer as
 * mb__ctl_handle_line does; fx->watch_id is set only when fx->watch == 1.
 */
char *mb__ctl_handle_request(mb_broker_t *b, const char *line, size_t len, int admin,
                             mb_ctl_effects_t *fx);

/* A response line for an error that has no request (too_large, busy); malloc'd. */
char *mb__ctl_error_line(int err, const char *msg);

/*
 * Offset of the first byte of s[0..n) that is not valid UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF are invalid; so is NUL when nul_ok is 0), or n if all of it is.
 */
size_t mb__utf8_invalid(const char *s, size_t n, int nul_ok);

/*
 * Bind the control pipe of b->cfg.instance (mb__pipe_name), remove a stale socket file of a
 * dead broker first (the caller holds the instance lock), restrict who may connect before
 * listening (mb_os_pipe_secure: the socket file's mode and group from pipe.mode and
 * pipe.operators_group; the pipe's DACL on Windows), and listen on `loop`. `request_stop` is called
 * (on the loop thread) once the answer to `shutdown` is written. Returns 0 or an MB_E* code
 * with a detail message. One server per process.
 */
int mb__ctl_start(uv_loop_t *loop, mb_broker_t *b, void (*request_stop)(void));

/* Close the server and every connection (answers not yet written are dropped). Idempotent;
 * the handles finish closing as the loop runs on. */
void mb__ctl_stop(void);

/* Handlers (cmd_broker.c). */
int mb__cmd_ping(mb_ctl_call_t *call);
int mb__cmd_help(mb_ctl_call_t *call);
int mb__cmd_version(mb_ctl_call_t *call);
int mb__cmd_status(mb_ctl_call_t *call);
int mb__cmd_regions(mb_ctl_call_t *call);
int mb__cmd_clients(mb_ctl_call_t *call);
int mb__cmd_pools(mb_ctl_call_t *call);
int mb__cmd_heaps(mb_ctl_call_t *call);
int mb__cmd_config(mb_ctl_call_t *call);
int mb__cmd_set_status(mb_ctl_call_t *call);
int mb__cmd_set_message(mb_ctl_call_t *call);
int mb__cmd_set_counter(mb_ctl_call_t *call);
int mb__cmd_compact(mb_ctl_call_t *call);
int mb__cmd_shutdown(mb_ctl_call_t *call);
int mb__cmd_watch(mb_ctl_call_t *call);
int mb__cmd_unwatch(mb_ctl_call_t *call);
int mb__cmd_maps(mb_ctl_call_t *call);
int mb__cmd_map_load(mb_ctl_call_t *call);
int mb__cmd_map_unload(mb_ctl_call_t *call);

#ifdef __cplusplus
}
#endif

#endif /* MB_CTL_H */
