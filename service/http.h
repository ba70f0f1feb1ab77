/*
 * http.h - the optional /metrics listener (metrics.listen): a small, strict HTTP/1.0 and 1.1
 * server on the broker's libuv loop that answers GET and HEAD /metrics with the exposition of
 * metrics.h and refuses everything else. It owns its TCP handles and their buffers; it never
 * blocks the loop, reads no request body and carries no authentication (bind it to loopback).
 *
 * Limits (a refusal closes the connection after its answer; 404 and 405 keep it):
 *   request line + headers   MB_HTTP_HEAD_MAX bytes (431 past it), MB_HTTP_HEADERS_MAX
 *                            headers (431), a line that is not HTTP (400)
 *   body                     none: Content-Length > 0 (413), an empty or non-numeric one (400),
 *                            Transfer-Encoding (400)
 *   time                     a request's head must arrive within MB_HTTP_HEAD_TIMEOUT_MS of
 *                            its first byte (or of the accept); a kept-alive connection waits
 *                            MB_HTTP_IDLE_TIMEOUT_MS for the next request; an answer is
 *                            written in pieces of MB_HTTP_WRITE_CHUNK, and a connection whose
 *                            answer makes no progress (no piece taken by the client) for
 *                            MB_HTTP_WRITE_STALL_MS, or is not all taken within
 *                            MB_HTTP_WRITE_TIMEOUT_MS of its start, is closed
 *   connections              MB_HTTP_CONN_MAX at once. When they are all taken, a new one
 *                            closes the connection longest without progress (bytes read or
 *                            written) among those older than MB_HTTP_YOUNG_MS, where one that
 *                            is writing an answer counts only once it made no progress for
 *                            MB_HTTP_EVICT_STALL_MS; while there is none, the new connection
 *                            waits in the OS's backlog (it is not refused) until one is
 *   writing                  one answer buffer per connection; nothing more is read until it
 *                            is written (a slow reader costs that one buffer)
 *
 * A listener that cannot listen (its port taken, its address not up yet) does not stop the
 * broker: mb__http_start logs an error and tries again every MB_HTTP_RETRY_MS, logging when
 * it listens at last (mb__http_state tells which).
 */
#ifndef MB_HTTP_H
#define MB_HTTP_H

#include <stddef.h>

/* No uv.h or broker.h here: config.c includes this for the address check, and uv.h brings
 * windows.h (whose `near` macro config.c would trip on). */
struct uv_loop_s;
struct mb_broker_s;
struct sockaddr_storage;

#ifdef __cplusplus
extern "C" {
#endif

#define MB_HTTP_HEAD_MAX 8192
#define MB_HTTP_HEADERS_MAX 64
#define MB_HTTP_HEAD_TIMEOUT_MS 5000
#define MB_HTTP_IDLE_TIMEOUT_MS 30000
#define MB_HTTP_WRITE_STALL_MS 10000
#define MB_HTTP_WRITE_TIMEOUT_MS 30000
#define MB_HTTP_WRITE_CHUNK 16384
#define MB_HTTP_CONN_MAX 16
#define MB_HTTP_YOUNG_MS 100
#define MB_HTTP_EVICT_STALL_MS 2000
#define MB_HTTP_RETRY_MS 5000
#define MB_HTTP_RETRY_WARN_MS 300000 /* a listener still failing is logged again this often */

/* mb__http_state */
#define MB_HTTP_OFF 0       /* no listener (metrics.listen null, or stopped) */
#define MB_HTTP_RETRYING 1  /* configured, cannot listen yet: tried again every MB_HTTP_RETRY_MS */
#define MB_HTTP_LISTENING 2 /* serving /metrics */

/* Room for "[v6 address]:port" and its NUL. */
#define MB_HTTP_LISTEN_MAX 64

/*
 * Check a metrics.listen value: "A.B.C.D:PORT" or "[V6]:PORT", numeric addresses only (no
 * name is looked up), PORT 0..65535 (0: the OS picks one; mb__http_port tells which). On
 * success 0, and *addr (may be NULL) receives the address; else MB_EINVAL, and why[0..size)
 * says what is wrong with `text` (no error is recorded: config.c words its own message).
 * *loopback (may be NULL) is 1 for 127.0.0.0/8 and ::1.
 */
int mb__http_listen_parse(const char *text, struct sockaddr_storage *addr, int *loopback, char *why,
                          size_t size);

/*
 * Listen on `listen` (mb__http_listen_parse) on `loop` and serve b's metrics from it (b must
 * outlive the server). Logs the address listened on (with the port the OS chose for ":0")
 * and warns when it is not loopback. A bind failure (address in use, not an address of this
 * host) is not an error of the start: it is logged as an error naming the address and the
 * listen is tried again every MB_HTTP_RETRY_MS on the loop (logged again at most every
 * MB_HTTP_RETRY_WARN_MS while it fails, and at info once it listens). Returns 0 (listening or
 * retrying); MB_EINVAL for a value that is not an address, MB_EBUSY when a server runs
 * already (one server per process).
 */
int mb__http_start(struct uv_loop_s *loop, const struct mb_broker_s *b, const char *listen);

/* The port listened on (the OS's choice for ":0"), 0 when not listening. */
int mb__http_port(void);

/* MB_HTTP_OFF, MB_HTTP_RETRYING or MB_HTTP_LISTENING (e.g. for a metrics_listener_up gauge:
 * 1 when LISTENING, 0 when RETRYING, absent when OFF). Loop thread only. */
int mb__http_state(void);

/* Close the listener and every connection (answers not yet written are dropped). Idempotent;
 * the handles finish closing as the loop runs on. */
void mb__http_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* MB_HTTP_H */
