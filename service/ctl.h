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

/* The pipe server's figures (for status and metrics): connections now, and counters since
 * mb__ctl_start. */
typedef struct mb_ctl_stats_s {
  uint32_t open;                /* connections served now (not the ones being refused) */
  uint32_t open_admin;          /* ... of which administrators */
  uint64_t accepted_total;      /* connections accepted, served or refused */
  uint64_t refused_busy_total;  /* told busy: pipe.max_connections or pipe.admin_reserve */
  uint64_t refused_fd_total;    /* told busy: near RLIMIT_NOFILE */
  uint64_t accept_errors_total; /* accept failed (EMFILE/ENFILE when libuv's reserve is gone) */
  uint64_t idle_closed_total;   /* closed by pipe.idle_timeout_ms */
  uint64_t line_timeout_total;  /* closed by pipe.line_timeout_ms */
  uint64_t watch_dropped_total; /* watch ticks dropped: the previous event was not written */
  uint64_t buffered_bytes;      /* bytes allocated for connections now: structs, buffers, writes */
} mb_ctl_stats_t;

/* Fill *out (all zero before mb__ctl_start). Loop thread only. */
void mb__ctl_stats(mb_ctl_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* MB_CTL_H */
