/*
 * ctl.h - the control pipe server: a libuv pipe that carries the control protocol
 * (protocol.h) to operators, one connection each, with framing, limits, back-pressure and
 * `watch` streams. Handlers see only cmd.h; the protocol itself is protocol.c; this header
 * declares the server's start and stop (and includes protocol.h for its users).
 */
#ifndef MB_CTL_H
#define MB_CTL_H

#include <uv.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/*
 * The pipe server's figures, one list (for the metrics; status does not show them): X(type,
 * field, metric, kind, help) - the field of mb_ctl_stats_t, its metric name after
 * "membroker_pipe_", its Prometheus type, a line of help. Connections now, then counters since
 * mb__ctl_start.
 */
#define MB_CTL_STATS(X)                                                                            \
  X(uint32_t, open, "connections", "gauge", "control-pipe connections served now")                 \
  X(uint32_t, open_admin, "admin_connections", "gauge",                                            \
    "control-pipe connections of administrators now")                                              \
  X(uint64_t, buffered_bytes, "buffered_bytes", "gauge",                                           \
    "bytes allocated for control-pipe connections now: structs, buffers, writes")                  \
  X(uint64_t, accepted_total, "accepted_total", "counter",                                         \
    "control-pipe connections accepted: served_total + refused_busy_total + refused_fd_total")     \
  X(uint64_t, served_total, "served_total", "counter",                                             \
    "control-pipe connections served (not refused)")                                               \
  X(uint64_t, refused_busy_total, "refused_busy_total", "counter",                                 \
    "connections told busy: pipe.max_connections or pipe.admin_reserve reached")                   \
  X(uint64_t, refused_fd_total, "refused_fd_total", "counter",                                     \
    "connections told busy: the broker is near its descriptor limit (RLIMIT_NOFILE)")              \
  X(uint64_t, accept_errors_total, "accept_errors_total", "counter",                               \
    "accepts that failed (EMFILE/ENFILE once libuv's reserve descriptor is used)")                 \
  X(uint64_t, idle_closed_total, "idle_closed_total", "counter",                                   \
    "connections closed by pipe.idle_timeout_ms")                                                  \
  X(uint64_t, line_timeout_total, "line_timeouts_total", "counter",                                \
    "connections closed by pipe.line_timeout_ms (an unfinished request line)")                     \
  X(uint64_t, watch_dropped_total, "watch_ticks_dropped_total", "counter",                         \
    "watch events dropped because the previous one was not read yet")                              \
  X(uint64_t, answers_total, "answers_total", "counter",                                           \
    "answer lines queued to connections (results, errors, refusals; not watch events)")            \
  X(uint64_t, writes_total, "writes_total", "counter",                                             \
    "writes of answers to connections: the answers gathered from one read go out in one")

typedef struct mb_ctl_stats_s {
#define MB__X(type, field, metric, kind, help) type field;
  MB_CTL_STATS(MB__X)
#undef MB__X
} mb_ctl_stats_t;

/* Fill *out (all zero before mb__ctl_start). Loop thread only. */
void mb__ctl_stats(mb_ctl_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* MB_CTL_H */
