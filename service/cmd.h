/*
 * cmd.h - what a command handler sees: the call (its arguments, its broker, where its answer
 * goes), how it fails, how it hands slow work off, and the command table built from
 * common/commands.def. Handlers live in files by area (cmd_info.c, cmd_admin.c, cmd_maps.c);
 * the dispatcher that calls them is protocol.c, the pipe server that carries them ctl.c.
 * A handler never touches libuv or the connection.
 *
 * Errors: a handler fails with mb__ctl_fail(call, code, ...), where code is
 *  - MB_CTL_EBAD_ARGS for its own argument checks (a missing, mistyped or out-of-range
 *    argument: "bad_args", as the dispatcher's checks of argument names), or
 *  - an MB_E* code for what went wrong past the arguments; the answer's "code" is then its
 *    mb_err_name() ("not_found", "already_exists", "access_denied", "busy", ...), except
 *    MB_EINVAL, which is "bad_args" too (an argument the call below found invalid).
 * mb__ctl_fail_rc(call, rc) does the second with mb_last_error() as the message. A handler
 * that returns an MB_E* code without failing the call gets the same treatment; one that fails
 * with neither is "internal". The request-level codes (bad_json, bad_request,
 * unknown_command, forbidden, too_large, busy, internal) are the dispatcher's and the
 * server's.
 */
#ifndef MB_CMD_H
#define MB_CMD_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "broker.h"
#include "commands.h"

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

/* The "code" string of an error: an MB_CTL_E* value (> 0) by the table above ("internal"
 * for an unknown one), an MB_E* code (< 0) by mb_err_name(), MB_EINVAL as "bad_args". */
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
  int err;                    /* MB_CTL_E* or MB_E* once mb__ctl_fail was called */
  char msg[320];              /* its message */
  mb_ctl_work_t *work;        /* set by a handler that hands slow work off (mb_ctl_work_t) */
};

/* A handler: 0 on success (call->result set), or the value of mb__ctl_fail(). */
typedef int (*mb_ctl_handler_fn)(mb_ctl_call_t *call);

/* One command of the table (a common/commands.def line). */
typedef struct mb_ctl_cmd_s {
  const char *name;
  mb_ctl_handler_fn handler;
  int needs_admin;
  const mb_cmd_arg_t *args; /* the arguments it accepts; ends with name == NULL */
  const char *help;         /* one line */
} mb_ctl_cmd_t;

/* Fail the call with `err` (MB_CTL_E* or MB_E*, see above) and a message naming what was
 * wrong; returns -1 for `return`. */
int mb__ctl_fail(mb_ctl_call_t *call, int err, const char *fmt, ...) MB_PRINTF(3, 4);

/* Fail the call with the MB_E* code rc of a call that failed, and its mb_last_error(). */
int mb__ctl_fail_rc(mb_ctl_call_t *call, int rc);

/* Fail the call because its answer could not be built (out of memory): "internal". */
int mb__ctl_oom(mb_ctl_call_t *call, const char *what);

/* The command table (NULL-terminated) and a lookup by name (NULL if unknown). */
const mb_ctl_cmd_t *mb__ctl_commands(void);
const mb_ctl_cmd_t *mb__ctl_command(const char *name);

/* The handlers, one per commands.def line: cmd_info.c, cmd_admin.c, cmd_maps.c. */
#define MB_ARG(name, type, req, cli, values)
#define MB_CMD(name, handler, admin, args, help) int handler(mb_ctl_call_t *call);
#include "commands.def"
#undef MB_CMD
#undef MB_ARG

#ifdef __cplusplus
}
#endif

#endif /* MB_CMD_H */
