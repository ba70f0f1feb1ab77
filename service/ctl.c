/*
 * ctl.c - the control pipe server (see ctl.h): a libuv pipe server, line framing, limits and
 * back-pressure, watch timers, and handed-off work on libuv's workers. What a line means is
 * protocol.c's: this file hands it each whole line and writes back the answer.
 *
 * Reading: every connection reads into one shared 64 KiB buffer; whole lines are answered
 * straight from it, and only an unfinished line (or input held back while a client is over
 * its write budget) is copied into the connection's own buffer. A line longer than
 * pipe.max_line is answered with too_large and skipped up to its newline.
 *
 * Writing: the answers to the lines of one read are gathered in the connection's answer
 * buffer, in request order, and written in one go: straight to the OS with uv_try_write when
 * nothing is queued before them (one write() per read on a Unix socket: no write request, no
 * copy, no completion to wake the loop for - uv_write's completion re-arms the epoll watcher,
 * an epoll_ctl per request), else, and for whatever the OS does not take at once (a full
 * socket buffer; all of it on Windows, where libuv's named pipes have no try_write), as one
 * uv_write request that takes the buffer over. An emptied buffer up to MB_CTL_OUT_KEEP stays
 * for the next answers; a connection's first write in flight uses the request embedded in it,
 * whose buffer comes back as the answer buffer when it completes, so the uv_write path (all of
 * Windows) allocates nothing per answer in the steady state either. A `ping` in the plain shape is
 * answered by mb__ctl_quick, copying bytes into that buffer: so a ping costs one read(), one
 * write() and no allocation. A client that does not read its answers is held to MB_CTL_QUEUE_MAX
 * bytes really allocated for it (answer buffers, write requests with their payload): past that, its
 * requests wait and reading from it stops (uv_read_stop) until its writes drain, so it costs
 * bounded memory and others are served.
 *
 * Re-entrancy (one loop thread, no locks): a synchronous write finishes inside the call that
 * flushed (the read callback, a watch tick, a work's completion, an accept's refusal), so what
 * a write completion does happens there too: a refused or hung-up connection is closed, a
 * `shutdown` answer requests the stop (an async send: the loop stops later), and the pump goes
 * on with input it held back. Closing only marks the connection (uv_close); its struct is freed
 * in the close callbacks, a later loop phase, so every caller may still read c->closing after
 * a flush - and each returns when it is set.
 *
 * Watching: a connection's `watch` stream is a timer owned by the connection (initialized on
 * the first watch, closed with the connection). A tick writes one event line, and only when
 * nothing is waiting to be written to that connection: a tick that finds the previous event
 * (or any answer) unwritten is dropped and counted, never queued. So a watcher that does not
 * read holds one event buffer, however long it stays.
 *
 * Pressure (issue 13): pipe.admin_reserve slots are kept for administrators (the peer is
 * checked at accept); one sweep timer closes connections idle for pipe.idle_timeout_ms and
 * answers a line unfinished after pipe.line_timeout_ms with too_large, then closes it; near
 * RLIMIT_NOFILE (mb_os_fd_limit) new connections are told busy and closed, logged at most once
 * a minute with a count. At the limit itself libuv's own reserve descriptor accepts and closes
 * the extra connections, so the listener neither spins nor stops accepting.
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "log.h"
#include "report.h"
#include "uverr.h"

#define MB_CTL_READ_CHUNK 65536
#define MB_CTL_QUEUE_MAX (256u * 1024u) /* bytes allocated for answers, per connection */
#define MB_CTL_BACKLOG 511
#define MB_CTL_FD_SPARE 16      /* descriptors kept free: non-administrators refused past it */
#define MB_CTL_FD_SPARE_ADMIN 4 /* ... and administrators past this */
#define MB_CTL_LOG_EVERY_NS 60000000000u /* rate limit of the out-of-descriptors warning */
/* Bytes held for all connections together (input, answers, writes): past it, connections of
 * non-administrators are neither read nor answered until it falls below 3/4 of it. */
#define MB_CTL_HELD_MAX ((uint64_t)16 * 1024 * 1024)
#define MB_CTL_LINES_PER_TURN 32 /* lines answered per read (or resumption) of a connection */
/* Lines of non-administrators answered per loop iteration, all connections together: an
 * administrator waits for at most this many reports, however many clients flood the pipe. */
#define MB_CTL_LINES_PER_ITER 64
#define MB_CTL_TRIM_DROP ((uint64_t)8 * 1024 * 1024) /* a fall in held bytes worth a heap trim */
#define MB_CTL_FALLBACKS 8 /* connections that can be accepted only to be closed (no memory) */
/* An emptied answer buffer up to this size stays with its connection for the next answers. */
#define MB_CTL_OUT_KEEP 4096

/* ------------------------------------------------------------------------------------------ */
/* The pipe server                                                                             */

typedef struct mb_conn_s mb_conn_t;

/* A call whose handler handed work off (mb_ctl_work_t), waiting for it on a libuv worker. */
typedef struct mb_ctl_deferred_s {
  uv_work_t req;
  struct mb_conn_s *conn;
  mb_ctl_pending_t p;
} mb_ctl_deferred_t;

/* One uv_write of a connection's gathered answers: it owns `data` (cap bytes allocated). */
typedef struct mb_wreq_s {
  uv_write_t req;
  mb_conn_t *conn;
  char *data;
  size_t len, cap;
  int stop_after;
} mb_wreq_t;

struct mb_conn_s {
  uv_pipe_t pipe;
  mb_conn_t *prev, *next;
  char *in; /* input not yet answered: an unfinished line, or lines held back */
  size_t in_len, in_cap;
  char *out; /* answers not yet handed to uv_write */
  size_t out_len, out_cap;
  size_t queued;             /* bytes allocated for writes not yet done (payload + request) */
  uint64_t last_active_ns;   /* last input read or write done */
  uint64_t partial_since_ns; /* an unfinished line since then (0: none) */
  unsigned num;              /* connection number, for the log */
  long uid;
  int admin;
  int reading;    /* uv_read_start is in effect */
  int discarding; /* skipping the rest of a too-long line */
  int eof;        /* the peer sent everything it will send */
  int closing;
  int refused;         /* over pipe.max_connections: one busy line, then close */
  int hangup;          /* served, but closing once its last answer is written (line timeout) */
  int stop_after;      /* `out` holds the answer to shutdown */
  int handles;         /* handles (pipe, watch timer) still to close before the struct is freed */
  int watch_init;      /* `watch` timer initialized (it is closed with the connection) */
  int backlog;         /* whole lines held back by the per-turn cap: resumed from the idle handle */
  unsigned lines_left; /* lines it may still be answered in this turn */
  uv_timer_t watch;
  char *watch_prefix; /* {"id":<id>,"event":"status","result": */
  size_t watch_prefix_len;
  unsigned watch_sections;
  unsigned long watch_dropped; /* ticks dropped: the previous event was not written yet */
  mb_ctl_deferred_t *deferred; /* a call waiting for its work: later requests wait for it */
  mb_wreq_t wr; /* the write request used while no other is in flight (no malloc per write) */
  int wr_busy;  /* wr is in flight */
};

static struct {
  uv_loop_t *loop;
  uv_pipe_t server;
  mb_broker_t *broker;
  void (*request_stop)(void);
  int started, stopping;
  mb_conn_t *conns; /* every open connection, served or refused */
  unsigned nserved; /* connections counted against pipe.max_connections */
  unsigned nadmin;  /* ... of which administrators */
  unsigned next_num;
  uint64_t last_refusal_log_ns;
  uint64_t fd_limit;    /* mb_os_fd_limit() at start (0: none) */
  uint64_t fd_log_ns;   /* last out-of-descriptors warning */
  uint64_t fd_unlogged; /* refusals for descriptors since that warning */
  int sweep_init;       /* the timeout sweep timer is initialized */
  uv_timer_t sweep;
  uint64_t held;       /* in_cap + out_cap + queued over every connection */
  uint64_t held_peak;  /* highest `held` since the last heap trim */
  int over;            /* held reached MB_CTL_HELD_MAX: non-administrators wait */
  int idle_init;       /* the resume handle is initialized */
  uv_idle_t idle;      /* resumes held-back lines and connections the budget stopped */
  uv_check_t check;    /* after each poll: a new iteration's line allowance */
  unsigned iter_lines; /* lines of non-administrators answered in this iteration */
  uv_pipe_t fallback[MB_CTL_FALLBACKS]; /* accepted only to be closed: out of memory */
  int fallback_busy[MB_CTL_FALLBACKS];
  mb_ctl_stats_t stats;
  char name[MB_PIPE_NAME_MAX];
  char rbuf[MB_CTL_READ_CHUNK]; /* shared by every read (see mb__on_alloc) */
} mb__ctl;

static void mb__ctl_wake(void);

/* `held` grows by n bytes; at MB_CTL_HELD_MAX the budget is over. */
static void mb__held_add(uint64_t n) {
  mb__ctl.held += n;
  if (mb__ctl.held > mb__ctl.held_peak)
    mb__ctl.held_peak = mb__ctl.held;
  if (!mb__ctl.over && mb__ctl.held >= MB_CTL_HELD_MAX) {
    mb__ctl.over = 1;
    mb_log_debug("control pipe: %llu bytes held for connections; pausing non-administrators",
                 (unsigned long long)mb__ctl.held);
  }
}

/* `held` falls by n bytes; below 3/4 of MB_CTL_HELD_MAX the paused connections resume. */
static void mb__held_sub(uint64_t n) {
  mb__ctl.held -= n;
  if (mb__ctl.over && mb__ctl.held < MB_CTL_HELD_MAX / 4 * 3) {
    mb__ctl.over = 0;
    mb__ctl_wake();
  }
}

/* One of the things a closing connection waits for (handles, deferred work) is over. */
static void mb__conn_unref(mb_conn_t *c) {
  if (--c->handles > 0)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    mb__ctl.conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  mb__held_sub(c->in_cap + c->out_cap);
  free(c->in);
  free(c->out);
  free(c->watch_prefix);
  free(c);
}

static void mb__on_conn_closed(uv_handle_t *h) {
  mb__conn_unref(h->data);
}

static void mb__conn_close(mb_conn_t *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (!c->refused) {
    mb__ctl.nserved--;
    mb__ctl.nadmin -= c->admin != 0;
  }
  mb_log_debug("control pipe: connection %u closed", c->num);
  c->handles = 1 + (c->deferred != NULL); /* its work's end frees it too */
  if (c->watch_init) {
    c->handles++;
    uv_close((uv_handle_t *)&c->watch, mb__on_conn_closed);
  }
  uv_close((uv_handle_t *)&c->pipe, mb__on_conn_closed);
}

/* Over budget (answers already waiting fill the write allowance; or, for a non-administrator
 * while every connection's together fill MB_CTL_HELD_MAX, any answer of its own still waits to
 * be written), or waiting for a call's work: its answer comes before the next request's. So
 * over the budget a non-administrator is not read, and its held input is answered one line a
 * turn only while its peer takes the answers: one that hung up fails its write and is closed,
 * and one that does not read holds one answer. */
static int mb__conn_paused(const mb_conn_t *c) {
  return c->queued + c->out_cap >= MB_CTL_QUEUE_MAX || c->deferred != NULL ||
         (mb__ctl.over && !c->admin && c->queued + c->out_len > 0);
}

/* Grow a connection's buffer (*buf, *cap) to hold need bytes, counted in `held`. */
static int mb__grow(char **buf, size_t *cap, size_t need) {
  size_t n = *cap ? *cap : 256;
  char *p;
  if (need <= *cap)
    return 0;
  while (n < need)
    n *= 2;
  if ((p = realloc(*buf, n)) == NULL)
    return -1;
  mb__held_add(n - *cap);
  *buf = p;
  *cap = n;
  return 0;
}

/* Queue one answer line (takes the cJSON-allocated text). */
static void mb__conn_answer(mb_conn_t *c, char *text) {
  size_t n;
  if (text == NULL)
    return;
  n = strlen(text);
  mb__ctl.stats.answers_total++;
  if (mb__grow(&c->out, &c->out_cap, c->out_len + n + 1) != 0) {
    cJSON_free(text);
    mb_log_error("control pipe: out of memory for an answer; closing connection %u", c->num);
    mb__conn_close(c);
    return;
  }
  memcpy(c->out + c->out_len, text, n);
  c->out[c->out_len + n] = '\n';
  c->out_len += n + 1;
  cJSON_free(text);
}

static void mb__on_write(uv_write_t *req, int status);

/* Give back an emptied answer buffer kept for the next answers when it grew past what a
 * connection keeps (MB_CTL_OUT_KEEP), or while the budget is over. */
static void mb__conn_out_trim(mb_conn_t *c) {
  if (c->out_len == 0 && c->out_cap > 0 && (c->out_cap > MB_CTL_OUT_KEEP || mb__ctl.over)) {
    mb__held_sub(c->out_cap);
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
}

/*
 * Write the gathered answers, all of them in one go. With nothing queued before them they go
 * straight to the OS (uv_try_write: on a Unix socket the one write() of the whole reply, with
 * no write request, no copy and no wake-up of the loop for its completion), and the buffer
 * stays with the connection for its next answers. What the OS does not take at once (a full
 * socket buffer; everything on Windows, where libuv's named pipes have no try_write) is handed
 * to uv_write as one request that takes the buffer over.
 */
static void mb__conn_flush(mb_conn_t *c) {
  mb_wreq_t *w;
  uv_buf_t buf;
  size_t done = 0;
  int rc;
  if (c->out_len == 0 || c->closing)
    return;
  mb__ctl.stats.writes_total++;
  if (c->queued == 0) {
    buf = uv_buf_init(c->out, (unsigned)c->out_len);
    rc = uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
      mb_log_debug("control pipe: write to connection %u: %s", c->num, uv_strerror(rc));
      if (c->stop_after && mb__ctl.request_stop)
        mb__ctl.request_stop();
      mb__conn_close(c);
      return;
    }
    done = rc > 0 ? (size_t)rc : 0;
    if (done == c->out_len) {
      c->out_len = 0;
      c->last_active_ns = mb_os_mono_ns();
      mb__conn_out_trim(c);
      if (c->stop_after) {
        c->stop_after = 0;
        if (mb__ctl.request_stop)
          mb__ctl.request_stop();
      }
      if ((c->refused || c->hangup) && c->deferred == NULL)
        mb__conn_close(c);
      return;
    }
  }
  if (!c->wr_busy) {
    w = &c->wr;
    c->wr_busy = 1;
  } else if ((w = malloc(sizeof *w)) == NULL) {
    mb_log_error("control pipe: out of memory for a write; closing connection %u", c->num);
    mb__conn_close(c);
    return;
  }
  w->conn = c;
  w->data = c->out;
  w->len = c->out_len;
  w->cap = c->out_cap;
  w->stop_after = c->stop_after;
  mb__held_add(w->len + sizeof *w);
  mb__held_sub(c->out_cap);
  c->out = NULL;
  c->out_len = c->out_cap = 0;
  c->stop_after = 0;
  buf = uv_buf_init(w->data + done, (unsigned)(w->len - done));
  if ((rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, mb__on_write)) != 0) {
    mb_log_debug("control pipe: write to connection %u: %s", c->num, uv_strerror(rc));
    if (w->stop_after && mb__ctl.request_stop)
      mb__ctl.request_stop();
    mb__held_sub(w->len + sizeof *w);
    free(w->data);
    if (w == &c->wr)
      c->wr_busy = 0;
    else
      free(w);
    mb__conn_close(c);
    return;
  }
  c->queued += w->len + sizeof *w;
}

/*
 * One tick of a connection's watch: append an event line with a fresh report and hand it to
 * uv_write. Dropped (and counted) while anything is still waiting to be written to the
 * connection - the previous event of a watcher that does not read - so it holds one event
 * at most; also when the report cannot be built (out of memory: the next tick tries again).
 */
static void mb__on_watch_tick(uv_timer_t *t) {
  mb_conn_t *c = t->data;
  cJSON *rep;
  char *text;
  size_t n;
  if (c->closing || c->eof)
    return;
  if (c->queued > 0 || c->out_len > 0 || c->deferred != NULL || c->hangup) {
    mb__ctl.stats.watch_dropped_total++;
    if (c->watch_dropped++ == 0)
      mb_log_debug("control pipe: connection %u does not read its watch events; dropping ticks",
                   c->num);
    return;
  }
  rep = mb__report(mb__ctl.broker, c->watch_sections);
  text = rep ? cJSON_PrintUnformatted(rep) : NULL;
  cJSON_Delete(rep);
  if (text == NULL)
    return;
  n = strlen(text);
  if (mb__grow(&c->out, &c->out_cap, c->out_len + c->watch_prefix_len + n + 2) == 0) {
    memcpy(c->out + c->out_len, c->watch_prefix, c->watch_prefix_len);
    memcpy(c->out + c->out_len + c->watch_prefix_len, text, n);
    c->out_len += c->watch_prefix_len + n;
    c->out[c->out_len++] = '}';
    c->out[c->out_len++] = '\n';
  }
  cJSON_free(text);
  mb__conn_flush(c);
}

/* Start or replace the connection's watch (fx->watch == 1), or end it (-1). */
static void mb__conn_watch(mb_conn_t *c, const mb_ctl_effects_t *fx) {
  static const char head[] = "{\"id\":", tail[] = ",\"event\":\"status\",\"result\":";
  const char *id = fx->watch_id ? fx->watch_id : "null";
  size_t n;
  char *p;
  if (fx->watch < 0) {
    if (c->watch_init && uv_is_active((uv_handle_t *)&c->watch)) {
      uv_timer_stop(&c->watch);
      mb_log_debug("control pipe: connection %u stopped watching", c->num);
    }
    return;
  }
  n = strlen(head) + strlen(id) + strlen(tail);
  if ((p = malloc(n + 1)) == NULL) {
    mb_log_error("control pipe: out of memory for a watch; closing connection %u", c->num);
    mb__conn_close(c);
    return;
  }
  snprintf(p, n + 1, "%s%s%s", head, id, tail);
  free(c->watch_prefix);
  c->watch_prefix = p;
  c->watch_prefix_len = n;
  c->watch_sections = fx->sections;
  c->watch_dropped = 0;
  if (!c->watch_init) {
    uv_timer_init(mb__ctl.loop, &c->watch);
    c->watch.data = c;
    c->watch_init = 1;
  }
  uv_timer_start(&c->watch, mb__on_watch_tick, fx->interval_ms, fx->interval_ms);
  mb_log_debug("control pipe: connection %u watching every %u ms", c->num, fx->interval_ms);
}

static void mb__conn_pump(mb_conn_t *c);

/* On a libuv worker thread: the deferred call's work. */
static void mb__on_work(uv_work_t *req) {
  mb_ctl_deferred_t *d = req->data;
  d->p.work->run(d->p.work);
}

/* Back on the loop: answer the deferred call (if its connection is still open) and go on
 * with the connection's next requests. */
static void mb__on_work_done(uv_work_t *req, int status) {
  mb_ctl_deferred_t *d = req->data;
  mb_conn_t *c = d->conn;
  char *text = mb__ctl_finish(mb__ctl.broker, &d->p, status != 0);
  c->deferred = NULL;
  free(d);
  if (c->closing) {
    cJSON_free(text);
    mb__conn_unref(c);
    return;
  }
  mb__conn_answer(c, text);
  c->lines_left = MB_CTL_LINES_PER_TURN;
  mb__conn_pump(c);
}

/* Answer one line of a served connection. */
static void mb__conn_line(mb_conn_t *c, const char *line, size_t len) {
  mb_ctl_effects_t fx;
  mb_ctl_pending_t p;
  mb_ctl_deferred_t *d;
  char *text;
  size_t n;
  /* A constant answer (ping) is copied into the answer buffer: no tree, no allocation. */
  if (mb__grow(&c->out, &c->out_cap, c->out_len + MB_CTL_QUICK_MAX + 1) == 0 &&
      (n = mb__ctl_quick(mb__ctl.broker, line, len, c->out + c->out_len)) > 0) {
    c->out[c->out_len + n] = '\n';
    c->out_len += n + 1;
    mb__ctl.stats.answers_total++;
    return;
  }
  text = mb__ctl_handle(mb__ctl.broker, line, len, c->admin, &fx, &p);
  if (p.work != NULL) {
    if ((d = calloc(1, sizeof *d)) != NULL) {
      d->p = p;
      d->conn = c;
      d->req.data = d;
      c->deferred = d;
      if (uv_queue_work(mb__ctl.loop, &d->req, mb__on_work, mb__on_work_done) != 0) {
        c->deferred = NULL; /* no worker: do it here */
        p = d->p;
        free(d);
        d = NULL;
      }
    }
    if (d == NULL) {
      p.work->run(p.work);
      text = mb__ctl_finish(mb__ctl.broker, &p, 0);
    }
  }
  mb__conn_answer(c, text);
  if (fx.stop_after)
    c->stop_after = 1;
  if (fx.watch != 0 && !c->closing)
    mb__conn_watch(c, &fx);
  cJSON_free(fx.watch_id);
}

static void mb__conn_too_large(mb_conn_t *c) {
  char msg[160];
  snprintf(msg, sizeof msg,
           "request line longer than %llu bytes (pipe.max_line): skipped up to its newline",
           (unsigned long long)mb__ctl.broker->cfg.pipe_max_line);
  mb__conn_answer(c, mb__ctl_error_line(MB_CTL_ETOO_LARGE, msg));
}

/*
 * Answer the whole lines of data[0..len) while the connection is within its write budget and
 * its lines for this turn (lines_left; when they run out with input left, c->backlog is set
 * and the idle handle resumes it). Returns the bytes consumed; the rest (an unfinished line,
 * or lines held back) is for the caller to keep. A too-long unfinished line is answered and
 * consumed at once. Every newline consumed stops the line clock: it times one line.
 */
static size_t mb__conn_feed(mb_conn_t *c, const char *data, size_t len) {
  size_t pos = 0, max = mb__ctl.broker->cfg.pipe_max_line;
  while (pos < len && !c->closing && !mb__conn_paused(c)) {
    const char *start = data + pos, *nl = memchr(start, '\n', len - pos);
    size_t n;
    if (c->discarding) {
      if (nl == NULL)
        return len;
      c->discarding = 0;
      c->partial_since_ns = 0;
      pos = (size_t)(nl - data) + 1;
      continue;
    }
    if (mb__ctl.over && !c->admin && c->lines_left > 1)
      c->lines_left = 1; /* over the budget: one line a turn */
    if (nl != NULL &&
        (c->lines_left == 0 || (!c->admin && mb__ctl.iter_lines >= MB_CTL_LINES_PER_ITER))) {
      c->backlog = 1;
      mb__ctl_wake();
      break;
    }
    if (nl == NULL) {
      if (len - pos > max) {
        mb__conn_too_large(c);
        c->discarding = 1;
        return len;
      }
      break;
    }
    n = (size_t)(nl - start);
    c->lines_left--;
    mb__ctl.iter_lines += !c->admin;
    c->partial_since_ns = 0;
    if (n > max)
      mb__conn_too_large(c);
    else
      mb__conn_line(c, start, n);
    pos += n + 1;
  }
  return pos;
}

/* Keep data[0..len) as the connection's pending input (after what it already holds). */
static int mb__conn_keep(mb_conn_t *c, const char *data, size_t len) {
  if (len == 0)
    return 0;
  if (mb__grow(&c->in, &c->in_cap, c->in_len + len) != 0) {
    mb_log_error("control pipe: out of memory for input; closing connection %u", c->num);
    mb__conn_close(c);
    return -1;
  }
  memcpy(c->in + c->in_len, data, len);
  c->in_len += len;
  return 0;
}

/* Whether input[0..len) ends in the middle of a line. */
static int mb__mid_line(const mb_conn_t *c) {
  return (c->in_len > 0 && c->in[c->in_len - 1] != '\n') || c->discarding;
}

/* Every read lands in the shared buffer: libuv runs one read callback at a time on the loop
 * thread, and each callback consumes or copies its data before it returns. */
static void mb__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  const mb_conn_t *c = h->data;
  (void)suggested;
  /* Over the budget: no buffer, so libuv reads nothing and reports UV_ENOBUFS (mb__on_read
   * stops reading then): what was not read stays in the kernel, not in our memory. */
  if (mb__ctl.over && !c->admin)
    *buf = uv_buf_init(NULL, 0);
  else
    *buf = uv_buf_init(mb__ctl.rbuf, sizeof mb__ctl.rbuf);
}

static void mb__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/*
 * After input or a finished write: answer held-back input while within budget, start or
 * stop reading to match the budget, and close a finished connection once drained.
 */
static void mb__conn_pump(mb_conn_t *c) {
  if (c->closing)
    return;
  if (c->hangup) {
    mb__conn_flush(c);
    if (!c->closing && c->queued == 0 && c->deferred == NULL)
      mb__conn_close(c);
    return;
  }
  for (;;) {
    size_t before = c->in_len;
    int wrote;
    if (c->in_len > 0 && !mb__conn_paused(c)) {
      size_t used = mb__conn_feed(c, c->in, c->in_len);
      if (c->closing)
        return;
      memmove(c->in, c->in + used, c->in_len - used);
      c->in_len -= used;
      if (c->eof && c->in_len > 0 && !mb__conn_paused(c) &&
          memchr(c->in, '\n', c->in_len) == NULL) {
        /* The peer's last line had no newline: answer it all the same. */
        if (!c->discarding)
          mb__conn_line(c, c->in, c->in_len);
        c->in_len = 0;
      }
    }
    wrote = c->out_len > 0;
    mb__conn_flush(c);
    if (c->closing)
      return;
    /* The OS took the answers at once (nothing queued): go on with the input held back for
     * the budget, as a finished write would - within this turn's lines (c->backlog is set when
     * they run out, and the idle handle gives the next turn). Each round answers a line or
     * writes what was waiting, or it is the last. */
    if (c->in_len == 0 || c->backlog || c->queued > 0 || mb__conn_paused(c) ||
        (c->in_len == before && !wrote))
      break;
  }
  if (c->in_len > 0 && c->in_cap > 2 * MB_CTL_READ_CHUNK && c->in_len < c->in_cap / 4) {
    char *p = realloc(c->in, c->in_len); /* a long line came and went: give the room back */
    if (p) {
      mb__held_sub(c->in_cap - c->in_len);
      c->in = p;
      c->in_cap = c->in_len;
    }
  } else if (c->in_len == 0 && c->in_cap > 0 && (c->in_cap > MB_CTL_READ_CHUNK || mb__ctl.over)) {
    mb__held_sub(c->in_cap);
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
  }
  /* An unfinished line (bytes after the last newline) starts the line timeout, if it is not
   * running yet: mb__conn_feed stops it at each newline. */
  if (!mb__mid_line(c))
    c->partial_since_ns = 0;
  else if (c->partial_since_ns == 0)
    c->partial_since_ns = mb_os_mono_ns();
  if (c->eof) {
    if (c->queued == 0 && c->in_len == 0 && c->deferred == NULL)
      mb__conn_close(c);
    return;
  }
  if (mb__conn_paused(c) || c->backlog || (mb__ctl.over && !c->admin) ||
      c->in_len > mb__ctl.broker->cfg.pipe_max_line + MB_CTL_READ_CHUNK) {
    if (c->reading) {
      uv_read_stop((uv_stream_t *)&c->pipe);
      c->reading = 0;
    }
  } else if (!c->reading) {
    if (uv_read_start((uv_stream_t *)&c->pipe, mb__on_alloc, mb__on_read) != 0) {
      mb__conn_close(c);
      return;
    }
    c->reading = 1;
    /* The line clock runs only while we read: a line the broker held back is timed afresh. */
    c->partial_since_ns = mb__mid_line(c) ? mb_os_mono_ns() : 0;
  }
}

static void mb__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mb_conn_t *c = s->data;
  if (c->closing || nread == 0)
    return;
  if (nread == UV_ENOBUFS) { /* over the budget (mb__on_alloc): resumed by mb__ctl_wake */
    mb__conn_pump(c);
    return;
  }
  if (nread < 0) {
    if (nread != UV_EOF) {
      mb_log_debug("control pipe: read from connection %u: %s", c->num, uv_strerror((int)nread));
      mb__conn_close(c);
      return;
    }
    c->eof = 1;
    c->reading = 0;
    mb__conn_pump(c);
    return;
  }
  c->last_active_ns = mb_os_mono_ns();
  c->lines_left = MB_CTL_LINES_PER_TURN;
  if (c->in_len == 0) {
    /* Fast path: answer straight from the shared buffer, keep only the rest. */
    size_t used = mb__conn_feed(c, buf->base, (size_t)nread);
    if (c->closing || mb__conn_keep(c, buf->base + used, (size_t)nread - used) != 0)
      return;
  } else if (mb__conn_keep(c, buf->base, (size_t)nread) != 0) {
    return;
  }
  mb__conn_pump(c);
}

static void mb__on_write(uv_write_t *req, int status) {
  mb_wreq_t *w = (mb_wreq_t *)req;
  mb_conn_t *c = w->conn;
  c->queued -= w->len + sizeof *w;
  mb__held_sub(w->len + sizeof *w);
  if (w->stop_after && mb__ctl.request_stop)
    mb__ctl.request_stop();
  if (w != &c->wr) {
    free(w->data);
    free(w);
  } else {
    /* The connection's own request: its buffer becomes the answer buffer again if none was
     * started meanwhile and it is small (the Windows path, every answer a uv_write, then
     * allocates nothing per answer either). */
    c->wr_busy = 0;
    if (c->out == NULL && status >= 0 && !c->closing && w->cap <= MB_CTL_OUT_KEEP &&
        !mb__ctl.over) {
      c->out = w->data;
      c->out_cap = w->cap;
      c->out_len = 0;
      mb__held_add(w->cap);
    } else {
      free(w->data);
    }
  }
  if (status < 0) {
    if (status != UV_ECANCELED)
      mb_log_debug("control pipe: write to connection %u: %s", c->num, uv_strerror(status));
    mb__conn_close(c);
    return;
  }
  c->last_active_ns = mb_os_mono_ns();
  if (c->refused || c->hangup) {
    if (c->queued == 0 && c->deferred == NULL)
      mb__conn_close(c);
    return;
  }
  if (!c->backlog) /* held-back lines wait for their turn on the idle handle */
    c->lines_left = MB_CTL_LINES_PER_TURN;
  mb__conn_pump(c);
}

/*
 * The resume handle, run once per loop iteration while started: each connection with lines
 * held back by the per-turn cap gets its next turn, and, once the budget is no longer over,
 * each connection it stopped is pumped (read again, held input answered). Stops itself when
 * nothing is left to resume; mb__ctl_wake starts it.
 */
static void mb__on_idle(uv_idle_t *h) {
  mb_conn_t *c;
  int more = 0;
  for (c = mb__ctl.conns; c; c = c->next) {
    if (c->closing || c->refused || c->hangup)
      continue;
    if (!c->admin && mb__ctl.iter_lines >= MB_CTL_LINES_PER_ITER) {
      more |= c->backlog && !mb__conn_paused(c); /* this iteration's lines are spent */
      continue;
    }
    if (c->backlog || ((!c->reading || c->in_len > 0) && !mb__conn_paused(c))) {
      c->backlog = 0;
      c->lines_left = MB_CTL_LINES_PER_TURN;
      mb__conn_pump(c);
      more |= c->backlog && !c->closing && !mb__conn_paused(c);
    }
  }
  if (!more)
    uv_idle_stop(h);
}

static void mb__on_check(uv_check_t *h) {
  (void)h;
  mb__ctl.iter_lines = 0;
}

/* Start the resume handle (held-back lines, or the budget fell back under its bound). */
static void mb__ctl_wake(void) {
  if (mb__ctl.idle_init && !mb__ctl.stopping)
    uv_idle_start(&mb__ctl.idle, mb__on_idle);
}

/* Answer one last line, stop reading and watching, and close once it is written. */
static void mb__conn_hangup(mb_conn_t *c, char *text) {
  mb__conn_answer(c, text);
  c->hangup = 1;
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = 0;
  }
  if (c->watch_init)
    uv_timer_stop(&c->watch);
  mb__conn_pump(c);
}

/*
 * The sweep, a few times per shortest timeout (once a second without timeouts): the heap is
 * trimmed after a flood left (see below); a served connection with a line
 * unfinished for pipe.line_timeout_ms is answered too_large and closed; one that sent nothing,
 * had nothing written and watches nothing for pipe.idle_timeout_ms is closed; one closing
 * after a last answer that its peer does not take is closed after either timeout.
 */
static void mb__on_sweep(uv_timer_t *t) {
  const mb_config_t *cfg = &mb__ctl.broker->cfg;
  uint64_t now = mb_os_mono_ns(), line = (uint64_t)cfg->pipe_line_timeout_ms * 1000000u,
           idle = (uint64_t)cfg->pipe_idle_timeout_ms * 1000000u;
  mb_conn_t *c;
  char msg[160];
  (void)t;
  /* A flood left (held bytes fell by MB_CTL_TRIM_DROP and to under half their peak): give the
   * freed memory back to the OS, or the allocator keeps it mapped. */
  if (mb__ctl.held_peak >= mb__ctl.held + MB_CTL_TRIM_DROP &&
      mb__ctl.held < mb__ctl.held_peak / 2) {
    mb_log_debug("control pipe: %llu bytes held, down from %llu; trimming the heap",
                 (unsigned long long)mb__ctl.held, (unsigned long long)mb__ctl.held_peak);
    mb_os_heap_trim();
    mb__ctl.held_peak = mb__ctl.held;
  }
  /* Closing only marks a connection (uv_close): the list stays valid while we walk it. */
  for (c = mb__ctl.conns; c; c = c->next) {
    if (c->closing || c->refused)
      continue;
    if (c->hangup) {
      if (now - c->last_active_ns >= (line ? line : idle ? idle : UINT64_MAX))
        mb__conn_close(c);
      continue;
    }
    if (line && c->partial_since_ns && c->reading && !mb__conn_paused(c) &&
        now - c->partial_since_ns >= line) {
      mb__ctl.stats.line_timeout_total++;
      mb_log_debug("control pipe: connection %u did not finish a line in %u ms; closing", c->num,
                   (unsigned)cfg->pipe_line_timeout_ms);
      snprintf(msg, sizeof msg,
               "request line not finished within %u ms (pipe.line_timeout_ms): closing",
               (unsigned)cfg->pipe_line_timeout_ms);
      mb__conn_hangup(c, mb__ctl_error_line(MB_CTL_ETOO_LARGE, msg));
      continue;
    }
    if (idle && c->deferred == NULL && !(c->watch_init && uv_is_active((uv_handle_t *)&c->watch)) &&
        now - c->last_active_ns >= idle) {
      mb__ctl.stats.idle_closed_total++;
      mb_log_debug("control pipe: connection %u idle for %u ms; closing", c->num,
                   (unsigned)cfg->pipe_idle_timeout_ms);
      mb__conn_close(c);
    }
  }
}

/* The out-of-descriptors warning: the first at once, then at most one a minute, with the
 * number of refusals it stood for. */
static void mb__fd_warn(const char *what) {
  uint64_t now = mb_os_mono_ns();
  if (mb__ctl.fd_log_ns != 0 && now - mb__ctl.fd_log_ns < MB_CTL_LOG_EVERY_NS) {
    mb__ctl.fd_unlogged++;
    return;
  }
  if (mb__ctl.fd_unlogged > 0)
    mb_log_warn("control pipe: out of file descriptors (%s); %llu more since the last warning",
                what, (unsigned long long)mb__ctl.fd_unlogged);
  else
    mb_log_warn("control pipe: out of file descriptors (%s); raise the limit (ulimit -n, "
                "LimitNOFILE=) or find who holds the connections",
                what);
  mb__ctl.fd_log_ns = now;
  mb__ctl.fd_unlogged = 0;
}

static void mb__refuse(mb_conn_t *c) {
  char msg[160];
  uint64_t now = mb_os_mono_ns();
  unsigned max = mb__ctl.broker->cfg.pipe_max_connections;
  c->refused = 1;
  mb__ctl.stats.refused_busy_total++;
  if (mb__ctl.nserved < max)
    snprintf(msg, sizeof msg,
             "too many connections: %u open, pipe.max_connections is %u and the last %u are "
             "kept for administrators (pipe.admin_reserve); try again later",
             mb__ctl.nserved, max, (unsigned)mb__ctl.broker->cfg.pipe_admin_reserve);
  else
    snprintf(msg, sizeof msg,
             "too many connections: %u open, pipe.max_connections is %u; try again later",
             mb__ctl.nserved, max);
  if (now - mb__ctl.last_refusal_log_ns > 10000000000u || mb__ctl.last_refusal_log_ns == 0) {
    mb__ctl.last_refusal_log_ns = now;
    mb_log_warn("control pipe: connection refused, %u open (pipe.max_connections %u)",
                mb__ctl.nserved, max);
  }
  mb__conn_answer(c, mb__ctl_error_line(MB_CTL_EBUSY, msg));
  mb__conn_flush(c);
}

/* Near RLIMIT_NOFILE: the connection on descriptor `fd` is told busy and closed. */
static void mb__refuse_fd(mb_conn_t *c, long fd) {
  char msg[200];
  c->refused = 1;
  mb__ctl.stats.refused_fd_total++;
  snprintf(msg, sizeof msg, "descriptor %ld of RLIMIT_NOFILE %llu, connection refused", fd,
           (unsigned long long)mb__ctl.fd_limit);
  mb__fd_warn(msg);
  snprintf(msg, sizeof msg,
           "the broker is out of file descriptors (this connection got descriptor %ld, "
           "RLIMIT_NOFILE %llu); try again later",
           fd, (unsigned long long)mb__ctl.fd_limit);
  mb__conn_answer(c, mb__ctl_error_line(MB_CTL_EBUSY, msg));
  mb__conn_flush(c);
}

static void mb__on_fallback_closed(uv_handle_t *h) {
  mb__ctl.fallback_busy[(uv_pipe_t *)h - mb__ctl.fallback] = 0;
}

/*
 * No memory for a connection: accept it into a static handle and close it at once (counted
 * as refused busy), or libuv would stop polling the listener until the pending connection is
 * accepted - no connection ever again. With every fallback still closing, the connection
 * stays pending and the listener waits for the next one (the fallbacks close within a loop
 * iteration).
 */
static void mb__accept_fallback(uv_stream_t *server) {
  int i;
  mb_log_error("control pipe: out of memory for a connection; closing it");
  for (i = 0; i < MB_CTL_FALLBACKS && mb__ctl.fallback_busy[i]; i++)
    ;
  if (i == MB_CTL_FALLBACKS)
    return;
  if (uv_pipe_init(mb__ctl.loop, &mb__ctl.fallback[i], 0) != 0)
    return;
  mb__ctl.fallback_busy[i] = 1;
  if (uv_accept(server, (uv_stream_t *)&mb__ctl.fallback[i]) == 0) {
    mb__ctl.stats.accepted_total++;
    mb__ctl.stats.refused_busy_total++;
  }
  uv_close((uv_handle_t *)&mb__ctl.fallback[i], mb__on_fallback_closed);
}

static void mb__on_connection(uv_stream_t *server, int status) {
  mb_conn_t *c;
  uv_os_fd_t fd;
  long fdnum = -1;
  unsigned max = mb__ctl.broker->cfg.pipe_max_connections,
           reserve = mb__ctl.broker->cfg.pipe_admin_reserve;
  if (status < 0) {
    mb__ctl.stats.accept_errors_total++;
    if (status == UV_EMFILE || status == UV_ENFILE)
      mb__fd_warn(uv_strerror(status));
    else
      mb_log_warn("control pipe: accept: %s", uv_strerror(status));
    return;
  }
  if ((c = calloc(1, sizeof *c)) == NULL) {
    mb__accept_fallback(server);
    return;
  }
  uv_pipe_init(mb__ctl.loop, &c->pipe, 0);
  c->pipe.data = c;
  c->num = ++mb__ctl.next_num;
  c->uid = -1;
  c->next = mb__ctl.conns;
  if (c->next)
    c->next->prev = c;
  mb__ctl.conns = c;
  c->refused = 1; /* not counted until served */
  if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
    mb__conn_close(c);
    return;
  }
  mb__ctl.stats.accepted_total++;
  if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0) {
    c->admin = mb__pipe_peer_admin((intptr_t)fd, &c->uid);
    fdnum = (long)(intptr_t)fd;
  }
  if (mb__ctl.fd_limit > 0 && fdnum >= 0 &&
      (uint64_t)fdnum + (c->admin ? MB_CTL_FD_SPARE_ADMIN : MB_CTL_FD_SPARE) >= mb__ctl.fd_limit) {
    mb__refuse_fd(c, fdnum);
    return;
  }
  if (mb__ctl.nserved >= max || (!c->admin && mb__ctl.nserved + reserve >= max)) {
    mb__refuse(c);
    return;
  }
  c->refused = 0;
  mb__ctl.stats.served_total++;
  mb__ctl.nserved++;
  mb__ctl.nadmin += c->admin != 0;
  c->last_active_ns = mb_os_mono_ns();
  mb_log_debug("control pipe: connection %u (uid %ld%s), %u open", c->num, c->uid,
               c->admin ? ", administrator" : "", mb__ctl.nserved);
  mb__conn_pump(c);
}

static void mb__on_server_closed(uv_handle_t *h) {
  (void)h;
  mb__ctl.started = 0;
}

/* libuv's error as an MB_E* code with a detail message. */
static int mb__uv_fail(int uverr, const char *what) {
  return mb__errorf(mb__from_uv(uverr), 0, "%s '%s': %s (%s)", what, mb__ctl.name,
                    uv_strerror(uverr), uv_err_name(uverr));
}

int mb__ctl_start(uv_loop_t *loop, mb_broker_t *b, void (*request_stop)(void)) {
  int is_path = 0, rc;
  uv_fs_t req;

  if (mb__ctl.started)
    return mb__errorf(MB_EBUSY, 0, "the control pipe '%s' is already open", mb__ctl.name);
  memset(&mb__ctl, 0, sizeof mb__ctl);
  mb__ctl.loop = loop;
  mb__ctl.broker = b;
  mb__ctl.request_stop = request_stop;
  mb__ctl.fd_limit = mb_os_fd_limit();
  /* A client that hangs up must give a write error, not end the broker. */
  mb_os_ignore_sigpipe();
  if ((rc = mb__pipe_name(b->cfg.instance, mb__ctl.name, sizeof mb__ctl.name, &is_path)) != 0)
    return rc;
  if (is_path) {
    /* We hold the instance lock, so a socket file here was left by a broker that died. */
    rc = uv_fs_unlink(loop, &req, mb__ctl.name, NULL);
    uv_fs_req_cleanup(&req);
    if (rc == 0)
      mb_log_warn("removed the stale control socket '%s' of a broker that died", mb__ctl.name);
    else if (rc != UV_ENOENT)
      return mb__uv_fail(rc, "remove stale control socket");
  }
  if ((rc = uv_pipe_init(loop, &mb__ctl.server, 0)) != 0)
    return mb__uv_fail(rc, "create control pipe");
  mb__ctl.started = 1;
  if ((rc = uv_pipe_bind(&mb__ctl.server, mb__ctl.name)) != 0) {
    rc = mb__uv_fail(rc, "bind control pipe");
    goto fail;
  }
  {
    /* Who may connect, before anyone can: pipe.mode and pipe.operators_group become the
     * socket file's mode and group, or the pipe's DACL on Windows (os.h). */
    mb_os_access_t acc;
    uv_os_fd_t fd;
    acc.mode = b->cfg.pipe_mode;
    acc.group = b->cfg.pipe_operators_group[0] ? b->cfg.pipe_operators_group : NULL;
    if ((rc = uv_fileno((uv_handle_t *)&mb__ctl.server, &fd)) != 0) {
      rc = mb__uv_fail(rc, "find the handle of control pipe");
      goto fail;
    }
    if ((rc = mb_os_pipe_secure((intptr_t)fd, is_path ? mb__ctl.name : NULL, &acc)) != 0)
      goto fail;
  }
  if ((rc = uv_listen((uv_stream_t *)&mb__ctl.server, MB_CTL_BACKLOG, mb__on_connection)) != 0) {
    rc = mb__uv_fail(rc, "listen on control pipe");
    goto fail;
  }
  {
    /* One sweep for both timeouts, a few times per the shorter one. */
    uint64_t ms = 1000, a = b->cfg.pipe_idle_timeout_ms, l = b->cfg.pipe_line_timeout_ms;
    if (a || l) {
      ms = (a && l ? (a < l ? a : l) : a ? a : l) / 4;
      ms = ms < 25 ? 25 : ms > 1000 ? 1000 : ms;
    }
    uv_timer_init(loop, &mb__ctl.sweep);
    mb__ctl.sweep_init = 1;
    uv_timer_start(&mb__ctl.sweep, mb__on_sweep, ms, ms);
    uv_idle_init(loop, &mb__ctl.idle);
    uv_check_init(loop, &mb__ctl.check);
    uv_check_start(&mb__ctl.check, mb__on_check);
    uv_unref((uv_handle_t *)&mb__ctl.check); /* it keeps nothing alive */
    mb__ctl.idle_init = 1;
  }
  mb_log_info("control pipe listening on %s (mode %04o, at most %u connections, %u kept for "
              "administrators, lines up to %llu bytes)",
              mb__ctl.name, (unsigned)b->cfg.pipe_mode, (unsigned)b->cfg.pipe_max_connections,
              (unsigned)b->cfg.pipe_admin_reserve, (unsigned long long)b->cfg.pipe_max_line);
  return 0;

fail:
  mb__ctl.stopping = 1;
  uv_close((uv_handle_t *)&mb__ctl.server, mb__on_server_closed);
  return rc;
}

void mb__ctl_stop(void) {
  mb_conn_t *c;
  if (!mb__ctl.started || mb__ctl.stopping)
    return;
  mb__ctl.stopping = 1;
  uv_close((uv_handle_t *)&mb__ctl.server, mb__on_server_closed);
  if (mb__ctl.sweep_init) {
    mb__ctl.sweep_init = 0;
    uv_close((uv_handle_t *)&mb__ctl.sweep, NULL);
  }
  if (mb__ctl.idle_init) {
    mb__ctl.idle_init = 0;
    uv_close((uv_handle_t *)&mb__ctl.idle, NULL);
    uv_close((uv_handle_t *)&mb__ctl.check, NULL);
  }
  for (c = mb__ctl.conns; c; c = c->next)
    mb__conn_close(c);
  mb_log_info("control pipe closed");
}

void mb__ctl_stats(mb_ctl_stats_t *out) {
  const mb_conn_t *c;
  *out = mb__ctl.stats;
  out->open = mb__ctl.nserved;
  out->open_admin = mb__ctl.nadmin;
  out->buffered_bytes = 0;
  for (c = mb__ctl.conns; c; c = c->next)
    out->buffered_bytes += sizeof *c + c->in_cap + c->out_cap + c->queued + c->watch_prefix_len;
}
