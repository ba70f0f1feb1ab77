/*
 * bench-ctl.c - a closed-loop request/response load generator for Unix sockets, and the
 * blocking echo server it is compared against. Used by scripts/bench.sh; a benchmark, not a
 * test. Linux/POSIX only, libc + pthreads, no membroker code: the same client drives
 * membroker's control pipe, redis-server and the echo server, so only the server differs.
 *
 *   bench-ctl [options] SOCKET_PATH
 *     -c N        clients (connections), default 1
 *     -t T        client threads, default 1; the clients are spread over them (see below)
 *     -d SECONDS  measure for this long (default 2; fractions allowed)
 *     -n R        or: stop after R requests in total (overrides -d)
 *     -w MS       warm-up before measuring, default 200 (not recorded)
 *     -r LINE     request line, default {"id":1,"cmd":"ping"} (a "\n" is appended)
 *     -e TEXT     each response must contain TEXT (default "\"ok\":true"; "" accepts any line)
 *     --resp      Redis inline command: send "PING\r\n", expect "+PONG"
 *     -l LABEL    label for the output line (default: the socket path)
 *   bench-ctl --echo-server SOCKET_PATH
 *     a minimal blocking echo server: one thread per client, read() then write() it all back;
 *     runs until SIGTERM / SIGINT, then removes the socket file.
 *
 * Each client has one request outstanding at a time: write the request, read until the
 * response's final "\n", record the round trip (CLOCK_MONOTONIC ns), send the next. One
 * client thread serves its connections with epoll (one connection: plain blocking read), as
 * redis-benchmark does: on a 2-vCPU machine one client thread and the server's thread each
 * get a core, where a thread per client would make 16 client threads fight the server for
 * the same two cores and measure the scheduler rather than the server.
 *
 * Output, one line on stdout (exit 0), or a message on stderr (exit 1):
 *   label=L clients=N requests=R seconds=S rps=X p50_us=A p90_us=B p99_us=C p999_us=D
 *   max_us=E mean_us=F errors=0 all=T
 * where R counts the measured window and T every round trip, warm-up included (what the
 * server did for the CPU time scripts/bench.sh reads from /proc around the run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "bench-ctl: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

static int unix_addr(struct sockaddr_un *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path)
    return -1;
  strcpy(a->sun_path, path);
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- echo server --------------------------------------------------------------------------- */

static volatile sig_atomic_t echo_stop;

static void echo_on_signal(int sig) {
  (void)sig;
  echo_stop = 1;
}

static void *echo_client(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || write_all(fd, buf, (size_t)n) != 0)
      break;
  }
  close(fd);
  return NULL;
}

static int echo_server(const char *path) {
  struct sockaddr_un a;
  struct sigaction sa;
  int ls;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = echo_on_signal; /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (unix_addr(&a, path) != 0)
    die("socket path too long: %s", path);
  if ((ls = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
    die("socket: %s", strerror(errno));
  unlink(path);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 128) != 0)
    die("bind/listen: %s", strerror(errno));
  while (!echo_stop) {
    pthread_t t;
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      fprintf(stderr, "bench-ctl: accept: %s\n", strerror(errno));
      break;
    }
    if (pthread_create(&t, NULL, echo_client, (void *)(intptr_t)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(t);
  }
  close(ls);
  unlink(path);
  return 0;
}

/* ---- load generator ------------------------------------------------------------------------ */

typedef struct {
  int fd;
  char *buf; /* the response being read */
  size_t len, cap;
  uint64_t sent_ns;
  int busy; /* a request is outstanding */
} conn_t;

typedef struct {
  conn_t *conns;
  int nconns;
  uint64_t quota; /* requests this thread answers in -n mode, else 0 */
  uint32_t *lat;  /* round trips in ns (capped at 4.29 s), measured window only */
  size_t nlat, cap;
  uint64_t done; /* recorded requests */
  uint64_t all;  /* every finished round trip, warm-up included */
  long errors;
  char err[256];
  pthread_t tid;
} worker_t;

static const char *g_req = "{\"id\":1,\"cmd\":\"ping\"}\n";
static size_t g_req_len;
static const char *g_expect = "\"ok\":true";
static uint64_t g_start_ns, g_end_ns; /* the measured window (end 0 in -n mode) */

static int conn_send(worker_t *w, conn_t *c) {
  c->len = 0;
  c->sent_ns = now_ns();
  if (write_all(c->fd, g_req, g_req_len) != 0) {
    snprintf(w->err, sizeof w->err, "write: %s", strerror(errno));
    return -1;
  }
  c->busy = 1;
  return 0;
}

/* Read what is there; 1 when the response is complete, 0 when more is to come, -1 on error. */
static int conn_read(worker_t *w, conn_t *c) {
  ssize_t n;
  if (c->cap - c->len < 4096) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    char *p = realloc(c->buf, cap);
    if (p == NULL) {
      snprintf(w->err, sizeof w->err, "out of memory");
      return -1;
    }
    c->buf = p;
    c->cap = cap;
  }
  do
    n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    snprintf(w->err, sizeof w->err, "read: %s",
             n == 0 ? "the server closed the connection" : strerror(errno));
    return -1;
  }
  c->len += (size_t)n;
  if (c->buf[c->len - 1] != '\n') {
    if (memchr(c->buf + c->len - n, '\n', (size_t)n) != NULL) {
      snprintf(w->err, sizeof w->err, "more than one response line to one request");
      return -1;
    }
    return 0;
  }
  return 1;
}

/* A whole response arrived at `t`: check it, record it; 1 when this thread is finished. */
static int conn_done(worker_t *w, conn_t *c, uint64_t t) {
  c->busy = 0;
  c->buf[c->len] = '\0';
  w->all++;
  if (g_expect[0] &&
      memmem(c->buf, c->len < 256 ? c->len : 256, g_expect, strlen(g_expect)) == NULL) {
    if (w->errors++ == 0)
      snprintf(w->err, sizeof w->err, "unexpected response: %.200s", c->buf);
  }
  if (c->sent_ns >= g_start_ns && (g_end_ns == 0 || t <= g_end_ns)) {
    uint64_t d = t - c->sent_ns;
    if (w->nlat == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 65536;
      uint32_t *p = realloc(w->lat, cap * sizeof *p);
      if (p == NULL)
        return 1;
      w->lat = p;
      w->cap = cap;
    }
    w->lat[w->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    w->done++;
  }
  if (w->quota)
    return w->done >= w->quota;
  return t >= g_end_ns;
}

static void *worker_run(void *arg) {
  worker_t *w = arg;
  int i, ep = -1, active;
  struct epoll_event evs[64];

  if (w->nconns == 1) {
    conn_t *c = &w->conns[0];
    for (;;) {
      int r;
      if (conn_send(w, c) != 0)
        return NULL;
      while ((r = conn_read(w, c)) == 0)
        ;
      if (r < 0 || conn_done(w, c, now_ns()))
        return NULL;
    }
  }
  if ((ep = epoll_create1(0)) < 0) {
    snprintf(w->err, sizeof w->err, "epoll_create1: %s", strerror(errno));
    return NULL;
  }
  for (i = 0; i < w->nconns; i++) {
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = &w->conns[i];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w->conns[i].fd, &ev) != 0 || conn_send(w, &w->conns[i]) != 0) {
      snprintf(w->err, sizeof w->err, "epoll_ctl/send: %s", strerror(errno));
      close(ep);
      return NULL;
    }
  }
  active = w->nconns;
  while (active > 0) {
    int n = epoll_wait(ep, evs, 64, 5000);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      snprintf(w->err, sizeof w->err, "no response within 5 s");
      break;
    }
    for (i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      int r = conn_read(w, c);
      if (r < 0) {
        close(ep);
        return NULL;
      }
      if (r == 0)
        continue;
      if (conn_done(w, c, now_ns())) {
        /* Finished: let the other connections' outstanding answers come in, send no more. */
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        active--;
      } else if (conn_send(w, c) != 0) {
        close(ep);
        return NULL;
      }
    }
  }
  close(ep);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const uint32_t *v, size_t n, double p) {
  if (n == 0)
    return 0.0;
  return v[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench-ctl [-c CLIENTS] [-t THREADS] [-d SECONDS | -n REQUESTS] [-w WARMUP_MS]\n"
          "                 [-r REQUEST_LINE] [-e EXPECT] [--resp] [-l LABEL] SOCKET_PATH\n"
          "       bench-ctl --echo-server SOCKET_PATH\n");
  exit(2);
}

int main(int argc, char **argv) {
  int nclients = 1, nthreads = 1, i, warm_ms = 200;
  double secs = 2.0;
  uint64_t total = 0, done = 0, all_done = 0;
  const char *path = NULL, *label = NULL;
  char *req = NULL;
  worker_t *ws;
  conn_t *conns;
  uint32_t *all;
  size_t nall = 0;
  long errors = 0;
  double window;
  struct sockaddr_un a;

  for (i = 1; i < argc; i++) {
    const char *o = argv[i];
    int more = i + 1 < argc;
    if (strcmp(o, "--echo-server") == 0 && more)
      return echo_server(argv[i + 1]);
    else if (strcmp(o, "-c") == 0 && more)
      nclients = atoi(argv[++i]);
    else if (strcmp(o, "-t") == 0 && more)
      nthreads = atoi(argv[++i]);
    else if (strcmp(o, "-d") == 0 && more)
      secs = atof(argv[++i]);
    else if (strcmp(o, "-n") == 0 && more)
      total = strtoull(argv[++i], NULL, 10);
    else if (strcmp(o, "-w") == 0 && more)
      warm_ms = atoi(argv[++i]);
    else if (strcmp(o, "-r") == 0 && more)
      req = argv[++i];
    else if (strcmp(o, "-e") == 0 && more)
      g_expect = argv[++i];
    else if (strcmp(o, "-l") == 0 && more)
      label = argv[++i];
    else if (strcmp(o, "--resp") == 0) {
      g_req = "PING\r\n";
      g_expect = "+PONG";
    } else if (o[0] == '-' || path)
      usage();
    else
      path = o;
  }
  if (path == NULL || nclients < 1 || nthreads < 1 || secs <= 0 || warm_ms < 0)
    usage();
  if (nthreads > nclients)
    nthreads = nclients;
  if (req) {
    size_t n = strlen(req);
    char *r = malloc(n + 2);
    if (r == NULL)
      die("%s", "out of memory");
    memcpy(r, req, n);
    strcpy(r + n, "\n");
    g_req = r;
  }
  g_req_len = strlen(g_req);
  if (unix_addr(&a, path) != 0)
    die("socket path too long: %s", path);
  signal(SIGPIPE, SIG_IGN);

  /* Connect everyone before the clock starts. */
  conns = calloc((size_t)nclients, sizeof *conns);
  ws = calloc((size_t)nthreads, sizeof *ws);
  if (conns == NULL || ws == NULL)
    die("%s", "out of memory");
  for (i = 0; i < nclients; i++) {
    if ((conns[i].fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
        connect(conns[i].fd, (struct sockaddr *)&a, sizeof a) != 0)
      die("connect: %s", strerror(errno));
  }
  for (i = 0; i < nthreads; i++) {
    int first = nclients * i / nthreads, last = nclients * (i + 1) / nthreads;
    ws[i].conns = conns + first;
    ws[i].nconns = last - first;
    if (total)
      ws[i].quota = total * (uint64_t)last / (uint64_t)nclients -
                    total * (uint64_t)first / (uint64_t)nclients;
  }
  g_start_ns = now_ns() + (uint64_t)warm_ms * 1000000u;
  g_end_ns = total ? 0 : g_start_ns + (uint64_t)(secs * 1e9);
  for (i = 0; i < nthreads; i++)
    if (pthread_create(&ws[i].tid, NULL, worker_run, &ws[i]) != 0)
      die("%s", "pthread_create failed");
  for (i = 0; i < nthreads; i++) {
    pthread_join(ws[i].tid, NULL);
    if (ws[i].err[0] && ws[i].errors == 0)
      die("%s", ws[i].err);
    if (ws[i].errors && errors == 0)
      fprintf(stderr, "bench-ctl: %ld bad responses; first: %s\n", ws[i].errors, ws[i].err);
    errors += ws[i].errors;
    done += ws[i].done;
    all_done += ws[i].all;
    nall += ws[i].nlat;
  }
  window = total ? (double)(now_ns() - g_start_ns) / 1e9 : secs;
  if ((all = malloc((nall ? nall : 1) * sizeof *all)) == NULL)
    die("%s", "out of memory");
  nall = 0;
  for (i = 0; i < nthreads; i++) {
    memcpy(all + nall, ws[i].lat, ws[i].nlat * sizeof *all);
    nall += ws[i].nlat;
  }
  qsort(all, nall, sizeof *all, cmp_u32);
  {
    double sum = 0;
    size_t k;
    for (k = 0; k < nall; k++)
      sum += all[k];
    printf("label=%s clients=%d requests=%llu seconds=%.3f rps=%.0f p50_us=%.1f p90_us=%.1f "
           "p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f errors=%ld all=%llu\n",
           label ? label : path, nclients, (unsigned long long)done, window, (double)done / window,
           pct_us(all, nall, 0.50), pct_us(all, nall, 0.90), pct_us(all, nall, 0.99),
           pct_us(all, nall, 0.999), nall ? all[nall - 1] / 1000.0 : 0.0,
           nall ? sum / (double)nall / 1000.0 : 0.0, errors, (unsigned long long)all_done);
  }
  for (i = 0; i < nclients; i++)
    close(conns[i].fd);
  return errors ? 1 : 0;
}
