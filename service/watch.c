/*
 * watch.c - the loop's side of the broker's process watches (see watch.h).
 *
 * Owns: one uv_poll per client whose watch has a descriptor, one uv_async that the OS's
 * notification threads send to. Decides nothing about clients: an exit only runs the sweep,
 * which asks the OS again (mb_os_proc_watch_exited) and does what it always does. So a spurious
 * wake-up costs one sweep, and a missed one costs the time to the next tick, never a client.
 *
 * A pidfd stays readable once its process has exited: its poll is stopped before the sweep
 * runs, and closed when the broker disarms the watch (the sweep drops the watch of a client
 * it found dead). Windows' notification is one-shot (WT_EXECUTEONLYONCE), and disarming it
 * waits for a callback in progress, so none can reach the uv_async once mb__watch_stop closed
 * it.
 */
#include "watch.h"

#include <stdlib.h>

#include "log.h"

static void mb__watch_poll_closed(uv_handle_t *h) {
  free(h);
}

static void mb__watch_nop_closed(uv_handle_t *h) {
  (void)h;
}

/* A pidfd is readable (or failed: the sweep asks the OS itself either way). */
static void mb__watch_on_poll(uv_poll_t *p, int status, int events) {
  mb_watch_t *w = p->data;
  (void)status;
  (void)events;
  uv_poll_stop(p);
  w->exits++;
  mb__broker_sweep(w->b);
}

/* The OS said on one of its threads that a watched process exited. */
static void mb__watch_on_wake(uv_async_t *a) {
  mb_watch_t *w = a->data;
  w->exits++;
  mb__broker_sweep(w->b);
}

/* On an OS thread (mb_os_proc_watch_notify): only wake the loop. */
static void mb__watch_notified(void *arg) {
  mb_watch_t *w = arg;
  uv_async_send(&w->wake);
}

static int mb__watch_arm(void *ctx, uint32_t i, intptr_t watch) {
  mb_watch_t *w = ctx;
  int fd = mb_os_proc_watch_fd(watch), rc;
  uv_poll_t *p;
  if (i >= MB_CLIENTS_MAX)
    return mb__errorf(MB_EINVAL, 0, "client index %u out of range", (unsigned)i);
  if (fd < 0)
    return mb_os_proc_watch_notify(watch, mb__watch_notified, w);
  if (w->polls[i] != NULL) { /* the broker disarms first; never leave a poll behind */
    uv_close((uv_handle_t *)w->polls[i], mb__watch_poll_closed);
    w->polls[i] = NULL;
  }
  if ((p = malloc(sizeof *p)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "poll the exit of client %u", (unsigned)i);
  if ((rc = uv_poll_init(w->loop, p, fd)) != 0) {
    free(p);
    return mb__errorf(MB_EOS, rc, "poll the exit of client %u: %s", (unsigned)i, uv_strerror(rc));
  }
  p->data = w;
  if ((rc = uv_poll_start(p, UV_READABLE, mb__watch_on_poll)) != 0) {
    uv_close((uv_handle_t *)p, mb__watch_poll_closed);
    return mb__errorf(MB_EOS, rc, "poll the exit of client %u: %s", (unsigned)i, uv_strerror(rc));
  }
  w->polls[i] = p;
  return 0;
}

static void mb__watch_disarm(void *ctx, uint32_t i, intptr_t watch) {
  mb_watch_t *w = ctx;
  if (i < MB_CLIENTS_MAX && w->polls[i] != NULL) {
    /* uv_close takes the descriptor out of the loop's poll set now; the watch closes it. */
    uv_close((uv_handle_t *)w->polls[i], mb__watch_poll_closed);
    w->polls[i] = NULL;
  } else {
    (void)mb_os_proc_watch_notify(watch, NULL, NULL);
  }
}

int mb__watch_start(mb_watch_t *w, uv_loop_t *loop, mb_broker_t *b) {
  int rc;
  w->loop = loop;
  w->b = b;
  w->exits = 0;
  if ((rc = uv_async_init(loop, &w->wake, mb__watch_on_wake)) != 0)
    return mb__errorf(MB_EOS, rc, "wait for client exits: %s", uv_strerror(rc));
  w->wake.data = w;
  w->ops.ctx = w;
  w->ops.arm = mb__watch_arm;
  w->ops.disarm = mb__watch_disarm;
  w->started = 1;
  mb__broker_set_watch_ops(b, &w->ops);
  return 0;
}

void mb__watch_stop(mb_watch_t *w) {
  if (!w->started)
    return;
  w->started = 0;
  mb__broker_set_watch_ops(w->b, NULL); /* disarms each: polls closed, waits cancelled */
  uv_close((uv_handle_t *)&w->wake, mb__watch_nop_closed);
}
