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

/* The control-pipe connections counted against pipe.max_connections now, into *open (0 when
 * the server is not started). Loop thread only; for the metrics. */
void mb__ctl_connections(unsigned *open);

#ifdef __cplusplus
}
#endif

#endif /* MB_CTL_H */
