/*
 * protocol.h - the control protocol, apart from its transport: one request line in, one
 * answer line out. The pipe server (ctl.c) feeds it the lines it frames; tests and the fuzzer
 * call it directly. No libuv.
 *
 * Protocol: one request object a line, {"id":1,"cmd":"status","args":{}}; one response a
 * line, {"id":1,"ok":true,"result":...} or
 * {"id":1,"ok":false,"error":{"code":"bad_args","message":"..."}}. "id" is echoed as given
 * (a number or a string; null when absent or when the request could not be parsed).
 * Requests of one connection are answered in order. Empty lines are ignored. The error
 * codes: the request-level ones (cmd.h, MB_CTL_ERROR_MAP) and a handler's MB_E* names.
 *
 * `watch` turns a connection into a subscriber as well: after its ok answer, one line
 * {"id":<the watch's id>,"event":"status","result":{...}} every interval_ms, between the
 * answers to whatever else the client sends, until `unwatch`, another `watch` (which
 * replaces it) or the connection's end. The protocol says so in mb_ctl_effects_t; the
 * server runs the stream.
 */
#ifndef MB_PROTOCOL_H
#define MB_PROTOCOL_H

#include <stddef.h>

#include "cmd.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Answer one request line of `len` bytes (no newline; it need not be NUL-terminated) from a
 * peer with the given admin right: parse, validate, dispatch. Returns the response line
 * (no newline, malloc'd, the caller frees it), or NULL for a blank line. Never fails: out of
 * memory gives a static `internal` answer copied into a malloc'd string, or NULL only if even
 * that fails. *stop_after is set when the broker is to stop once the answer is written.
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

/*
 * mb__ctl_handle_line with everything a request may ask of its connection in *fx (zeroed
 * first): the pipe server uses it to start and end `watch` streams. Returns the answer as
 * mb__ctl_handle_line does; fx->watch_id is set only when fx->watch == 1. A call whose
 * handler hands work off (mb_ctl_work_t) is run to its end here.
 */
char *mb__ctl_handle_request(mb_broker_t *b, const char *line, size_t len, int admin,
                             mb_ctl_effects_t *fx);

/* A call whose handler handed work off, waiting for it: what its answer needs besides the
 * work's own outcome. */
typedef struct mb_ctl_pending_s {
  mb_ctl_work_t *work; /* NULL: nothing pending */
  cJSON *id;           /* the request's id, echoed in the answer */
  int admin;
} mb_ctl_pending_t;

/*
 * mb__ctl_handle_request for a server that runs handed-off work itself: when the call hands
 * work off, it is not answered; *pending receives it (zeroed first, else) and NULL is
 * returned. The caller runs pending->work->run (on any thread), then mb__ctl_finish on this
 * one. With pending == NULL, this is mb__ctl_handle_request.
 */
char *mb__ctl_handle(mb_broker_t *b, const char *line, size_t len, int admin, mb_ctl_effects_t *fx,
                     mb_ctl_pending_t *pending);

/* End a pending call (its work's done, even when `cancelled`: the work never ran) and return
 * its answer line as mb__ctl_handle_line does; *p is consumed. */
char *mb__ctl_finish(mb_broker_t *b, mb_ctl_pending_t *p, int cancelled);

/* The most bytes mb__ctl_quick writes. */
#define MB_CTL_QUICK_MAX 160

/*
 * The answer to a request for a command whose answer never changes (`ping`), without a JSON
 * tree: when line[0..len) is such a request in the plain shape - one object of "id" (an
 * integer of at most 9 digits or a string of printable ASCII without quote or backslash),
 * "cmd" and optionally "args":{}, in any order, no spaces inside - its answer line (no
 * newline) is written to out (MB_CTL_QUICK_MAX bytes) and its length returned; the bytes are
 * those mb__ctl_handle_line returns for the same line. Returns 0 for any other line: the
 * caller answers it with mb__ctl_handle. Loop thread only (it builds its answers on first use).
 */
size_t mb__ctl_quick(mb_broker_t *b, const char *line, size_t len, char *out);

/* A response line for an error that has no request (too_large, busy); malloc'd. */
char *mb__ctl_error_line(int err, const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* MB_PROTOCOL_H */
