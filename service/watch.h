/*
 * watch.h - death from the OS, in the broker's event loop: the loop waits for the exit of
 * every attached client's process and runs the broker's sweep as soon as one exits, instead
 * of at the next tick (MB_BROKER_TICK_MS). The broker opens and closes the process watches
 * (broker.c, mb__broker_sweep); this file only makes the loop wait on them.
 */
#ifndef MB_WATCH_H
#define MB_WATCH_H

#include <uv.h>

#include "broker.h"

/* The loop's side of the broker's process watches. Owned by the caller, zeroed before
 * mb__watch_start; it must stay put while started. */
typedef struct mb_watch_s {
  uv_loop_t *loop;
  mb_broker_t *b;
  mb_broker_watch_ops_t ops;
  uv_async_t wake;                  /* the OS's notification threads wake the loop (Windows) */
  uv_poll_t *polls[MB_CLIENTS_MAX]; /* per client entry: its pidfd under the loop (Linux) */
  uint64_t exits;                   /* exits the loop was told of (each ran a sweep) */
  int started;
} mb_watch_t;

/*
 * Make `loop` wait for client exits of broker b (mb__broker_set_watch_ops): per watch, its
 * descriptor under a uv_poll where the platform gives one (Linux: the pidfd), else the OS's
 * exit notification waking the loop through a uv_async (Windows: a thread-pool wait on the
 * process handle); a watch that has neither stays polled by the sweep. Each exit runs
 * mb__broker_sweep on the loop's thread. 0, or a negative MB_E* code (the loop refused a
 * handle) and the broker is left to its sweep alone.
 */
int mb__watch_start(mb_watch_t *w, uv_loop_t *loop, mb_broker_t *b);

/* Stop waiting: disarm every watch (the broker keeps them open and polls them) and close the
 * loop's handles (their close callbacks run on the loop's next turn). A no-op unless started.
 * Call before the loop's last run. */
void mb__watch_stop(mb_watch_t *w);

#endif /* MB_WATCH_H */
