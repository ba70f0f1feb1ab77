/*
 * test-http.c - the optional /metrics listener (service/http.c, metrics.listen): a broker in a
 * child process run as the service runs it (mb__run), with metrics.listen "127.0.0.1:0" (the OS
 * picks a free port; the child writes it to a file once ready), driven over loopback TCP:
 * answers, refusals, limits, timeouts, keep-alive, Accept negotiation, clients that never
 * read and connect floods (a scrape still gets in), a port in use (the broker runs and listens
 * once it is free), the config key, and (POSIX) SIGHUP without a log file.
 */
#include "childbroker.h"

#include <ctype.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "svc.h"

#if MB_OS_WIN
#include <winsock2.h>
#include <ws2tcpip.h>
typedef SOCKET tsock_t;
#define TSOCK_BAD INVALID_SOCKET
#define tsock_close closesocket
#define T_NOSIGNAL 0
#else
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>
typedef int tsock_t;
#define TSOCK_BAD (-1)
#define tsock_close close
#define T_NOSIGNAL MSG_NOSIGNAL
#endif

/* ---- the broker child ---------------------------------------------------------------------- */

static const char *child_portfile;
static mb_os_procid_t child_parent;
static volatile int child_done;
static mb_os_thread_t child_thread;

/* The parent test died (a failed assertion): do not outlive it. */
static void child_watch_parent(void *arg) {
  (void)arg;
  while (!child_done) {
    if (mb_os_proc_alive(&child_parent) == 0) {
      mb__run_request_stop();
      return;
    }
    mb_os_sleep_ms(100);
  }
}

static void child_ready(void *ctx) {
  FILE *fp;
  (void)ctx;
  if ((fp = fopen(child_portfile, "w")) != NULL) {
    fprintf(fp, "%d\n", mb__http_port());
    fclose(fp);
  }
  mb_os_thread_start(&child_thread, child_watch_parent, NULL);
}

/* argv: instance parent_pid listen portfile [log=FILE | stderr=FILE]. log=FILE: the log in
 * FILE at debug level; stderr=FILE: stderr into FILE and the log there at debug level (no log
 * file); neither: warnings to stderr. Exit code: mb__run's (1: the start failed). */
CHILD(httpd) {
  mb_config_t cfg;
  mb_run_hooks_t hooks = {NULL, child_ready, NULL, NULL};
  int rc;
  if (argc != 4 && argc != 5)
    return 100;
  if (argc == 5 && strncmp(argv[4], "log=", 4) == 0) {
    if (mb__log_open(MB_LOG_DEBUG, argv[4] + 4) != 0)
      return 102;
  } else if (argc == 5 && strncmp(argv[4], "stderr=", 7) == 0) {
    if (freopen(argv[4] + 7, "w", stderr) == NULL)
      return 102;
    mb__log_open(MB_LOG_DEBUG, "");
  } else {
    mb__log_open(MB_LOG_WARN, "");
  }
  fx_config(&cfg, argv[0]);
  snprintf(cfg.metrics_listen, sizeof cfg.metrics_listen, "%s", argv[2]);
  child_portfile = argv[3];
  if (mb_os_proc_query((uint32_t)strtoul(argv[1], NULL, 10), &child_parent) != 0)
    return 101;
  rc = mb__run(&cfg, 0, &hooks);
  child_done = 1;
  if (rc == 0)
    mb_os_thread_join(&child_thread);
  return rc;
}

/* A broker child listening on `listen`; *port receives its port (0 unless ready). */
typedef struct {
  tbroker_t b;
  char portfile[128];
  int port;
} thttp_t;

/* Spawn the broker child; opt: the child's optional fifth argument (NULL: none). */
static void httpd_spawn(thttp_t *h, const char *tag, const char *listen, const char *opt) {
  mb_os_procid_t self;
  char pid[32];
  memset(h, 0, sizeof *h);
  broker_name(&h->b, tag);
  mb_os_proc_self(&self);
  snprintf(pid, sizeof pid, "%u", (unsigned)self.pid);
  snprintf(h->portfile, sizeof h->portfile, "http-%s.port", h->b.instance);
  fx_write_text(h->portfile, "");
  ASSERT_OK(mb_test_spawn(&h->b.child, "httpd", h->b.instance, pid, listen, h->portfile, opt,
                          (char *)NULL));
}

/* Wait for the ready child's port file: h->port is its port, 0 when it does not listen. */
static void httpd_read_port(thttp_t *h) {
  uint64_t deadline = mb_os_mono_ns() + 20000000000u;
  FILE *fp;
  for (;;) {
    if ((fp = fopen(h->portfile, "r")) != NULL) {
      int n = fscanf(fp, "%d", &h->port);
      fclose(fp);
      if (n == 1)
        return;
    }
    if (mb_os_mono_ns() > deadline)
      FAIL("the broker child wrote no port to %s", h->portfile);
    mb_os_sleep_ms(1);
  }
}

/* Start a broker with metrics.listen "127.0.0.1:0" (opt: as httpd_spawn) and learn its port. */
static void httpd_up_opt(thttp_t *h, const char *tag, const char *opt) {
  httpd_spawn(h, tag, "127.0.0.1:0", opt);
  broker_wait_ready(&h->b);
  httpd_read_port(h);
  ASSERT_GT(h->port, 0);
}

static void httpd_up(thttp_t *h, const char *tag) {
  httpd_up_opt(h, tag, NULL);
}

/* Wait (20 s at most) until the child's log `path` has `needle`; fails if the child exits. */
static void wait_log(thttp_t *h, const char *path, const char *needle) {
  static char text[65536];
  uint64_t deadline = mb_os_mono_ns() + 20000000000u;
  int code;
  while (strstr(mb_test_file_text(path, text, sizeof text), needle) == NULL) {
    if (mb_os_child_wait(&h->b.child, 0, &code) == 0)
      FAIL("the broker child exited with %d; its log %s has no \"%s\":\n%s", code, path, needle,
           text);
    if (mb_os_mono_ns() > deadline)
      FAIL("the log %s has no \"%s\" after 20 s:\n%s", path, needle, text);
    mb_os_sleep_ms(10);
  }
}

/* ---- a small blocking HTTP client ---------------------------------------------------------- */

static void net_init(void) {
#if MB_OS_WIN
  static int done;
  WSADATA wsa;
  if (!done && WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
    FAIL("WSAStartup failed");
  done = 1;
#endif
}

/* Bytes read past the last answer on socket hc_pend_sock (hc_read). */
static char hc_pend[8192 + 65536];
static size_t hc_pend_len;
static tsock_t hc_pend_sock = TSOCK_BAD;

/* A connection to 127.0.0.1:port with a receive buffer of rcvbuf bytes (0: the default), or
 * TSOCK_BAD when it cannot be made (never fails the test: the flood threads use it). */
static tsock_t hc_connect_try(int port, int rcvbuf) {
  struct sockaddr_in sa;
  tsock_t s;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(0x7f000001);
  if ((s = socket(AF_INET, SOCK_STREAM, 0)) == TSOCK_BAD)
    return TSOCK_BAD;
  if (rcvbuf > 0) /* before the connect: the window it offers follows from it */
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&rcvbuf, sizeof rcvbuf);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    tsock_close(s);
    return TSOCK_BAD;
  }
  return s;
}

static tsock_t hc_connect_buf(int port, int rcvbuf) {
  tsock_t s;
  net_init();
  if ((s = hc_connect_try(port, rcvbuf)) == TSOCK_BAD)
    FAIL("cannot connect to 127.0.0.1:%d", port);
  if (hc_pend_sock == s) /* a new socket with the number of a closed one */
    hc_pend_sock = TSOCK_BAD;
  return s;
}

static tsock_t hc_connect(int port) {
  return hc_connect_buf(port, 0);
}

/* Close s with a reset (SO_LINGER 0) instead of a FIN. */
static void hc_reset(tsock_t s) {
  struct linger lg;
  lg.l_onoff = 1;
  lg.l_linger = 0;
  (void)setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
  tsock_close(s);
}

/* Make s non-blocking. */
static void hc_nonblocking(tsock_t s) {
#if MB_OS_WIN
  u_long on = 1;
  ASSERT_EQ(ioctlsocket(s, FIONBIO, &on), 0);
#else
  ASSERT_EQ(fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK), 0);
#endif
}

/* Send what a non-blocking s takes of text[0..len) now; the bytes sent. */
static size_t hc_send_some(tsock_t s, const char *text, size_t len) {
  size_t sent = 0;
  while (sent < len) {
    int n = (int)send(s, text + sent, (int)(len - sent), T_NOSIGNAL);
    if (n <= 0)
      break; /* would block (or refused): the rest is not sent */
    sent += (size_t)n;
  }
  return sent;
}

/* Send all of text; 0, or -1 if the connection refused it (closed by the server). */
static int hc_send_try(tsock_t s, const char *text, size_t len) {
  while (len > 0) {
    int n = (int)send(s, text, (int)len, T_NOSIGNAL);
    if (n <= 0)
      return -1;
    text += n;
    len -= (size_t)n;
  }
  return 0;
}

static void hc_send(tsock_t s, const char *text) {
  if (hc_send_try(s, text, strlen(text)) != 0)
    FAIL("send failed: %.60s", text);
}

/* 1 when s has something to read (or its end) within ms, else 0. */
static int hc_readable(tsock_t s, int ms) {
  fd_set rd;
  struct timeval tv;
  FD_ZERO(&rd);
  FD_SET(s, &rd);
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return select((int)s + 1, &rd, NULL, NULL, &tv) > 0;
}

/* Read what arrives until the server closes s (1), or ms pass first (0). */
static int hc_closed_within(tsock_t s, int ms) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)ms * 1000000u;
  char buf[4096];
  while (mb_os_mono_ns() < deadline) {
    if (hc_readable(s, 50)) {
      int n = (int)recv(s, buf, sizeof buf, 0);
      if (n <= 0)
        return 1;
    }
  }
  return 0;
}

typedef struct {
  int status;
  char head[8192]; /* status line and headers, NUL-terminated */
  char body[65536];
  size_t body_len;
  long content_length;
} hc_ans_t;

/* The value of header `name` in a->head (case-insensitive), into out; NULL if absent. */
static const char *hc_header(const hc_ans_t *a, const char *name, char *out, size_t size) {
  const char *p = a->head;
  size_t n = strlen(name);
  while ((p = strchr(p, '\n')) != NULL) {
    size_t i;
    p++;
    for (i = 0; i < n && p[i] != '\0' && tolower((unsigned char)p[i]) == tolower(name[i]); i++)
      ;
    if (i == n && p[n] == ':') {
      const char *v = p + n + 1, *e;
      while (*v == ' ')
        v++;
      e = strpbrk(v, "\r\n");
      snprintf(out, size, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
      return out;
    }
  }
  return NULL;
}

/* Read one answer from s (T_READ_MS at most): its head, and its Content-Length body unless
 * head_only (a HEAD). Fails the test when none comes. */
static void hc_read(tsock_t s, hc_ans_t *a, int head_only) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)T_READ_MS * 1000000u;
  size_t used = 0, hlen = 0, extra;
  char cl[32];
  static char buf[sizeof a->head + sizeof a->body];
  memset(a, 0, sizeof *a);
  if (hc_pend_sock == s) { /* what came after the previous answer (pipelined requests) */
    memcpy(buf, hc_pend, hc_pend_len);
    used = hc_pend_len;
  }
  hc_pend_len = 0;
  a->content_length = -1;
  for (;;) {
    char *end;
    buf[used] = '\0';
    if (hlen == 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
      hlen = (size_t)(end - buf) + 4;
      if (hlen >= sizeof a->head)
        FAIL("answer head too long");
      memcpy(a->head, buf, hlen);
      a->head[hlen] = '\0';
      if (sscanf(a->head, "HTTP/1.%*d %d", &a->status) != 1)
        FAIL("not an HTTP answer: %.100s", a->head);
      if (hc_header(a, "Content-Length", cl, sizeof cl) == NULL)
        FAIL("answer without Content-Length: %s", a->head);
      a->content_length = strtol(cl, NULL, 10);
      if (head_only)
        break;
    }
    if (hlen != 0 && used - hlen >= (size_t)a->content_length)
      break;
    if (used + 1 >= sizeof buf)
      FAIL("answer too long");
    if (mb_os_mono_ns() > deadline)
      FAIL("no complete answer in %d ms (got %zu bytes: %.200s)", T_READ_MS, used, buf);
    if (hc_readable(s, 50)) {
      int n = (int)recv(s, buf + used, (int)(sizeof buf - 1 - used), 0);
      if (n <= 0)
        FAIL("connection closed before a complete answer (got %zu bytes: %.200s)", used, buf);
      used += (size_t)n;
    }
  }
  if (!head_only) {
    a->body_len = (size_t)a->content_length;
    memcpy(a->body, buf + hlen, a->body_len);
    a->body[a->body_len] = '\0';
  }
  /* Bytes past this answer begin the next one: kept for the next hc_read of s. */
  extra = used - hlen - a->body_len;
  memcpy(hc_pend, buf + hlen + a->body_len, extra);
  hc_pend_len = extra;
  hc_pend_sock = s;
}

/* One request on a new connection; the answer in *a; the connection is closed. */
static void hc_once(int port, const char *request, hc_ans_t *a) {
  tsock_t s = hc_connect(port);
  hc_send(s, request);
  hc_read(s, a, strncmp(request, "HEAD ", 5) == 0);
  tsock_close(s);
}

#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

/* Each line of an exposition is a comment or "name[{labels}] value"; returns the samples. */
static int check_exposition(const char *text) {
  int samples = 0;
  const char *p = text;
  ASSERT(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t n = (size_t)(eol - p), i = 0;
    if (n > 0 && p[0] != '#') {
      if (!(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':'))
        FAIL("not a metric name: %.*s", (int)n, p);
      while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':'))
        i++;
      if (i < n && p[i] == '{') {
        const char *close = memchr(p + i, '}', n - i);
        if (close == NULL)
          FAIL("labels not closed: %.*s", (int)n, p);
        i = (size_t)(close - p) + 1;
      }
      if (i >= n || p[i] != ' ' ||
          (strtod(p + i + 1, NULL) == 0 && p[i + 1] != '0' && strncmp(p + i + 1, "NaN", 3) != 0))
        FAIL("not a sample: %.*s", (int)n, p);
      samples++;
    }
    p = eol + 1;
  }
  return samples;
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(get_metrics) {
  thttp_t h;
  hc_ans_t a;
  char v[256], v2[256];
  tsock_t s;
  httpd_up(&h, "get");

  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  ASSERT_STR_EQ(hc_header(&a, "Content-Type", v, sizeof v), MB_METRICS_CT_TEXT);
  ASSERT_GT(check_exposition(a.body), 0);
  ASSERT_CONTAINS(a.body, "membroker_");
#if MB_OS_POSIX
  if (system("command -v promtool >/dev/null 2>&1") == 0) {
    char path[128], cmd[256];
    snprintf(path, sizeof path, "http-%s.prom", h.b.instance);
    fx_write_text(path, a.body);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    ASSERT_EQ(system(cmd), 0);
  } else {
    printf("# promtool not installed: the exposition is checked by this test's parser only\n");
  }
#endif

  /* HEAD: the same length, no body (the next answer on the connection parses cleanly). */
  s = hc_connect(h.port);
  hc_send(s, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  hc_read(s, &a, 1);
  ASSERT_EQ(a.status, 200);
  ASSERT_GT(a.content_length, 0);
  hc_send(s, "GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n"); /* a query is /metrics */
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  ASSERT_STR_EQ(hc_header(&a, "Connection", v, sizeof v), "keep-alive");
  tsock_close(s);

  /* OpenMetrics when the Accept header asks for it. */
  hc_once(h.port,
          "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;"
          "version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
          &a);
  ASSERT_EQ(a.status, 200);
  ASSERT_STR_EQ(hc_header(&a, "Content-Type", v, sizeof v), MB_METRICS_CT_OPENMETRICS);
  ASSERT(a.body_len >= 6 && strcmp(a.body + a.body_len - 6, "# EOF\n") == 0);

  /* HTTP/1.0: answered, then closed (no keep-alive asked); with keep-alive, kept. */
  s = hc_connect(h.port);
  hc_send(s, "GET /metrics HTTP/1.0\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  ASSERT_STR_EQ(hc_header(&a, "Connection", v, sizeof v), "close");
  ASSERT(hc_closed_within(s, T_READ_MS));
  tsock_close(s);
  s = hc_connect(h.port);
  hc_send(s, "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_STR_EQ(hc_header(&a, "Connection", v2, sizeof v2), "keep-alive");
  hc_send(s, "GET /metrics HTTP/1.0\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  tsock_close(s);

  broker_down(&h.b);
}

TEST(refusals) {
  static const struct {
    const char *request;
    int status;
    int closes; /* the server closes the connection after the answer */
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, 0},
      {"GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n", 404, 0},
      {"GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404, 0},
      {"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, 0},
      {"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, 0},
      {"HELLO\r\n\r\n", 400, 1},
      {"GET /metrics\r\n\r\n", 400, 1},
      {"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\n\r\n", 400, 1}, /* 1.1 without Host */
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length:  \t \r\n\r\n", 400, 1},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n", 200, 0},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 1},
      {"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, 1},
      {"GET /metrics FTP/1.0\r\n\r\n", 400, 1},
      {"\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, 1},
  };
  thttp_t h;
  hc_ans_t a;
  static char big[10000];
  char v[256];
  size_t i, n;
  tsock_t s;
  httpd_up(&h, "ref");
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    s = hc_connect(h.port);
    hc_send(s, cases[i].request);
    hc_read(s, &a, 0);
    if (a.status != cases[i].status)
      FAIL("%.40s...: answered %d, expected %d", cases[i].request, a.status, cases[i].status);
    if (a.status == 405)
      ASSERT_STR_EQ(hc_header(&a, "Allow", v, sizeof v), "GET, HEAD");
    if (strstr(cases[i].request, "Content-Length:\r") != NULL)
      ASSERT_CONTAINS(a.body, "400 Bad Request: Content-Length is empty");
    if (cases[i].closes) {
      ASSERT_STR_EQ(hc_header(&a, "Connection", v, sizeof v), "close");
      ASSERT(hc_closed_within(s, T_READ_MS));
    } else { /* the connection still serves */
      hc_send(s, GET_METRICS);
      hc_read(s, &a, 0);
      ASSERT_EQ(a.status, 200);
    }
    tsock_close(s);
  }

  /* A head past 8 KiB: 431, closed. */
  n = (size_t)snprintf(big, 10000, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(big + n, 'a', 9000 - n);
  memcpy(big + 9000, "\r\n\r\n", 5);
  s = hc_connect(h.port);
  (void)hc_send_try(s, big, strlen(big)); /* the server may close before taking it all */
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 431);
  ASSERT(hc_closed_within(s, T_READ_MS));
  tsock_close(s);
  /* 65 headers, well under 8 KiB: 431. */
  n = (size_t)snprintf(big, 10000, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  for (i = 0; i < 64; i++)
    n += (size_t)snprintf(big + n, 10000 - n, "X-%zu: 1\r\n", i);
  snprintf(big + n, 10000 - n, "\r\n");
  hc_once(h.port, big, &a);
  ASSERT_EQ(a.status, 431);
  /* 64 headers are fine. */
  n = (size_t)snprintf(big, 10000, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  for (i = 0; i < 63; i++)
    n += (size_t)snprintf(big + n, 10000 - n, "X-%zu: 1\r\n", i);
  snprintf(big + n, 10000 - n, "\r\n");
  hc_once(h.port, big, &a);
  ASSERT_EQ(a.status, 200);
  broker_down(&h.b);
}

/* A connection that sends one byte of its head every 100 ms is closed by the head timeout,
 * while GETs on other connections are answered all along. */
TEST(slowloris) {
  thttp_t h;
  hc_ans_t a;
  const char *start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  uint64_t deadline;
  int sent = 0, answered = 0, closed = 0;
  tsock_t s;
  httpd_up(&h, "loris");
  s = hc_connect(h.port);
  hc_send(s, start);
  deadline = mb_os_mono_ns() + 4u * MB_HTTP_HEAD_TIMEOUT_MS * 1000000ull;
  while (!closed && mb_os_mono_ns() < deadline) {
    /* The pace of the slow client: wait 100 ms for the server's close. */
    if (hc_readable(s, 100)) {
      char buf[512];
      closed = recv(s, buf, sizeof buf, 0) <= 0;
      if (!closed) { /* an answer (408 or the like) may come first */
        closed = hc_closed_within(s, T_READ_MS);
        break;
      }
      break;
    }
    if (hc_send_try(s, "a", 1) != 0) {
      closed = 1;
      break;
    }
    sent++;
    if (sent % 10 == 0) {
      hc_once(h.port, GET_METRICS, &a);
      ASSERT_EQ(a.status, 200);
      answered++;
    }
  }
  tsock_close(s);
  if (!closed)
    FAIL("a connection sending a byte every 100 ms was not closed (%d bytes sent)", sent);
  ASSERT_GT(answered, 0);
  printf("# slow connection closed after %d bytes; %d GETs answered meanwhile\n", sent, answered);
  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  broker_down(&h.b);
}

/* More connections than MB_HTTP_CONN_MAX, each with an unfinished head: a new GET is still
 * answered (the oldest waiting connection makes room), and so is the newest of them. */
TEST(many_connections) {
  enum { N = MB_HTTP_CONN_MAX + 8 };
  thttp_t h;
  hc_ans_t a;
  tsock_t s[N];
  int i;
  httpd_up(&h, "many");
  for (i = 0; i < N; i++) {
    s[i] = hc_connect(h.port);
    hc_send(s[i], "GET /metrics HTTP/1.1\r\n");
  }
  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  /* The oldest was made room for at once, long before its head timeout. */
  ASSERT(hc_closed_within(s[0], MB_HTTP_HEAD_TIMEOUT_MS / 2));
  hc_send(s[N - 1], "Host: x\r\n\r\n");
  hc_read(s[N - 1], &a, 0);
  ASSERT_EQ(a.status, 200);
  for (i = 0; i < N; i++)
    tsock_close(s[i]);
  broker_down(&h.b);
}

/* Two requests on one connection, one after the other and pipelined in one send. */
TEST(keepalive) {
  thttp_t h;
  hc_ans_t a;
  char body[sizeof a.body];
  tsock_t s;
  httpd_up(&h, "keep");
  s = hc_connect(h.port);
  hc_send(s, GET_METRICS);
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  memcpy(body, a.body, a.body_len + 1);
  hc_send(s, GET_METRICS);
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  ASSERT_GT(check_exposition(a.body), 0);
  hc_send(s, GET_METRICS "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" GET_METRICS);
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 404);
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  /* Connection: close is honoured, as an element of the list too. */
  hc_send(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  hc_send(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: TE , Close\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_EQ(a.status, 200);
  ASSERT(hc_closed_within(s, T_READ_MS));
  tsock_close(s);
  broker_down(&h.b);
}

/* The exposition by the Accept header's q-values: OpenMetrics when it is named with a q above
 * 0 and not below the text format's; a malformed Accept is 400. */
TEST(accept_negotiation) {
  static const struct {
    const char *accept; /* NULL: no Accept header */
    int openmetrics;
  } cases[] = {
      {NULL, 0},
      {"application/openmetrics-text", 1},
      {"application/openmetrics-text;q=0, text/plain", 0},
      {"application/openmetrics-text;q=0", 0},
      {"application/openmetrics-text ; q=0.000", 0},
      {"application/openmetrics-text; version=1.0.0; q=0.5, text/plain;q=0.1", 1},
      {"text/plain;q=0.9, application/openmetrics-text;q=0.5", 0},
      {"application/openmetrics-text;q=0.5, */*", 0},
      {"application/openmetrics-text;q=0.5, text/*;q=0.4", 1},
      {"text/plain, application/openmetrics-text", 1}, /* a tie: the one named for it */
      /* What Prometheus sends by default, and with the text format first. */
      {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
       "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
       1},
      {"text/plain;version=0.0.4;q=1.0,*/*;q=0.9", 0},
      {"*/*", 0},
      {"application/json", 0},
      {"APPLICATION/OpenMetrics-Text;Q=0.001", 1},
      {"application/openmetrics-text;x=\"a,b;q=0\";q=1.000", 1},
      {",, application/openmetrics-text;;q=0.2 ,", 1},
  };
  static const struct {
    const char *accept;
    const char *why;
  } bad[] = {
      {"application/openmetrics-text;q=2", "Accept: q is not a number from 0 to 1"},
      {"application/openmetrics-text;q=1.5", "Accept: q is not a number from 0 to 1"},
      {"application/openmetrics-text;q=0.5x", "Accept: q is not a number from 0 to 1"},
      {"application/openmetrics-text;q=0.1234", "Accept: q is not a number from 0 to 1"},
      {"application/openmetrics-text;q=", "Accept: a parameter has no value"},
      {"text/plain;q", "Accept: a parameter is not NAME=VALUE"},
      {"text", "Accept: a media range is not TYPE/SUBTYPE"},
      {";q=0.5", "Accept: a media range is not TYPE/SUBTYPE"},
      {"text/plain q=1", "Accept: a media range is followed by something other than"},
      {"text/plain;x=\"open", "Accept: a quoted parameter value is not closed"},
  };
  thttp_t h;
  hc_ans_t a;
  char req[512], v[256];
  size_t i;
  tsock_t s;
  httpd_up(&h, "acc");
  s = hc_connect(h.port);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].accept != NULL)
      snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: %s\r\n\r\n",
               cases[i].accept);
    else
      snprintf(req, sizeof req, "%s", GET_METRICS);
    hc_send(s, req);
    hc_read(s, &a, 0);
    ASSERT_EQ(a.status, 200);
    if (strcmp(hc_header(&a, "Content-Type", v, sizeof v),
               cases[i].openmetrics ? MB_METRICS_CT_OPENMETRICS : MB_METRICS_CT_TEXT) != 0)
      FAIL("Accept: %s: answered %s", cases[i].accept ? cases[i].accept : "(none)", v);
  }
  /* Accept split over two header lines is one list. */
  hc_send(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain;q=0.2\r\n"
             "Accept: application/openmetrics-text;q=0.3\r\n\r\n");
  hc_read(s, &a, 0);
  ASSERT_STR_EQ(hc_header(&a, "Content-Type", v, sizeof v), MB_METRICS_CT_OPENMETRICS);
  tsock_close(s);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: %s\r\n\r\n",
             bad[i].accept);
    hc_once(h.port, req, &a);
    if (a.status != 400 || strstr(a.body, bad[i].why) == NULL)
      FAIL("Accept: %s: answered %d %s", bad[i].accept, a.status, a.body);
  }
  broker_down(&h.b);
}

/* Complete answers in the bytes a connection receives, counted across reads: each head is
 * read up to its empty line, then its Content-Length of body is skipped. */
typedef struct {
  char head[1024];
  size_t head_len; /* bytes of the head being read */
  long body_left;  /* bytes of the body still to come; -1: reading a head */
  int answers;     /* answers complete */
} tcount_t;

static void count_answers(tcount_t *t, const char *buf, size_t n) {
  while (n > 0) {
    if (t->body_left < 0) {
      const char *cl;
      if (t->head_len + 1 >= sizeof t->head)
        FAIL("an answer's head is longer than %zu bytes", sizeof t->head);
      t->head[t->head_len++] = *buf++;
      n--;
      t->head[t->head_len] = '\0';
      if (t->head_len < 4 || strcmp(t->head + t->head_len - 4, "\r\n\r\n") != 0)
        continue;
      if ((cl = strstr(t->head, "Content-Length: ")) == NULL)
        FAIL("an answer without Content-Length: %s", t->head);
      t->body_left = strtol(cl + 16, NULL, 10);
      t->head_len = 0;
    } else {
      size_t take = (size_t)t->body_left < n ? (size_t)t->body_left : n;
      t->body_left -= (long)take;
      buf += take;
      n -= take;
    }
    if (t->body_left == 0) {
      t->answers++;
      t->body_left = -1;
    }
  }
}

/*
 * MB_HTTP_CONN_MAX clients that pipeline many GETs and never read hold every place with an
 * answer the server cannot write. A scrape still gets in: a writer without progress for
 * MB_HTTP_EVICT_STALL_MS makes room, long before the write stall timeout would have closed
 * them. Afterwards some non-reader has received fewer answers than it asked for (it was the
 * one closed), while the others got them all once they read. 1,000 GETs each: more answers
 * than the kernel's buffers take (about 300 of these here), so the writes really stall; with
 * fewer, every answer fits, no writer stalls and the last check fails.
 */
TEST(nonreaders_cannot_lock_out) {
  enum { NR = MB_HTTP_CONN_MAX, REQS = 1000 };
  static char reqs[REQS * (sizeof GET_METRICS - 1) + 1];
  static char buf[65536];
  const size_t rlen = sizeof GET_METRICS - 1;
  thttp_t h;
  hc_ans_t a;
  tsock_t s[NR];
  int asked[NR], i, closed = 0;
  uint64_t t0, ms;
  httpd_up(&h, "nr");
  for (i = 0; i < REQS; i++)
    memcpy(reqs + (size_t)i * rlen, GET_METRICS, rlen);
  for (i = 0; i < NR; i++) {
    s[i] = hc_connect_buf(h.port, 4096); /* a small window: the server's writes stall early */
    hc_nonblocking(s[i]);
    asked[i] = (int)(hc_send_some(s[i], reqs, (size_t)REQS * rlen) / rlen);
    ASSERT_GT(asked[i], 0);
  }
  /* Each one is being answered: the server is writing to every one of them. */
  for (i = 0; i < NR; i++)
    if (!hc_readable(s[i], T_READ_MS))
      FAIL("non-reader %d got no answer in %d ms", i, T_READ_MS);

  t0 = mb_os_mono_ns();
  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  ms = (mb_os_mono_ns() - t0) / 1000000u;
  printf("# scrape answered after %llu ms with %d non-readers (%d requests each sent)\n",
         (unsigned long long)ms, NR, asked[0]);
  if (ms >= MB_HTTP_WRITE_STALL_MS)
    FAIL("the scrape waited %llu ms: no stalled writer made room before the stall timeout",
         (unsigned long long)ms);

  /* Read what each non-reader was sent: all its answers, or fewer and then the close. */
  for (i = 0; i < NR; i++) {
    tcount_t t;
    uint64_t deadline = mb_os_mono_ns() + (uint64_t)T_READ_MS * 1000000u;
    int eof = 0;
    memset(&t, 0, sizeof t);
    t.body_left = -1;
    while (t.answers < asked[i] && !eof && mb_os_mono_ns() < deadline) {
      if (hc_readable(s[i], 50)) {
        int n = (int)recv(s[i], buf, sizeof buf, 0);
        if (n <= 0)
          eof = 1;
        else
          count_answers(&t, buf, (size_t)n);
      }
    }
    if (eof && t.answers < asked[i])
      closed++;
    else if (t.answers < asked[i])
      FAIL("non-reader %d: %d of %d answers, and not closed", i, t.answers, asked[i]);
    tsock_close(s[i]);
  }
  printf("# %d of %d non-readers were closed before all their answers\n", closed, NR);
  ASSERT_GT(closed, 0);
  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  broker_down(&h.b);
}

/* The connect flood: threads that open connections in bursts of FLOOD_BURST and close them,
 * as fast as they can (together more than the server has places for). */
enum { FLOOD_THREADS = 4, FLOOD_BURST = 8, FLOOD_MAX = 5000 };
static volatile int flood_stop;
static int flood_port;

static void flood(void *arg) {
  volatile int *count = arg;
  tsock_t s[FLOOD_BURST];
  int i, n;
  while (!flood_stop && *count < FLOOD_MAX) {
    for (n = 0; n < FLOOD_BURST && !flood_stop; n++)
      if ((s[n] = hc_connect_try(flood_port, 0)) == TSOCK_BAD)
        break;
    for (i = 0; i < n; i++) {
      if (i % 4 == 0)
        tsock_close(s[i]); /* a FIN; most reset, so no TIME_WAIT piles up on the client */
      else
        hc_reset(s[i]);
    }
    *count += n > 0 ? n : 1;
  }
}

/* 20 scrapes while 4 threads connect and close in bursts: every scrape is answered 200 (a young
 * connection is never closed to make room, so none is closed before its request is read). */
TEST(connect_flood) {
  thttp_t h;
  hc_ans_t a;
  mb_os_thread_t t[FLOOD_THREADS];
  volatile int count[FLOOD_THREADS];
  int i, total = 0;
  uint64_t deadline;
  httpd_up(&h, "flood");
  net_init();
  flood_port = h.port;
  flood_stop = 0;
  for (i = 0; i < FLOOD_THREADS; i++) {
    count[i] = 0;
    ASSERT_OK(mb_os_thread_start(&t[i], flood, (void *)&count[i]));
  }
  /* Every thread floods before the scrapes begin. */
  deadline = mb_os_mono_ns() + (uint64_t)T_READ_MS * 1000000u;
  for (i = 0; i < FLOOD_THREADS; i++)
    while (count[i] < 20 && mb_os_mono_ns() < deadline)
      mb_os_sleep_ms(1);
  for (i = 0; i < 20; i++) {
    hc_once(h.port, GET_METRICS, &a);
    if (a.status != 200) {
      flood_stop = 1;
      FAIL("scrape %d during the flood: %d", i, a.status);
    }
  }
  flood_stop = 1;
  for (i = 0; i < FLOOD_THREADS; i++) {
    mb_os_thread_join(&t[i]);
    total += count[i];
  }
  printf("# 20 scrapes answered while %d threads made %d connections\n", FLOOD_THREADS, total);
  ASSERT_GT(total, 20 * FLOOD_THREADS);
  broker_down(&h.b);
}

/* SIGHUP with the log on stderr: nothing to reopen, said once at info, then at debug. */
TEST(sighup_without_log_file) {
#if MB_OS_POSIX
  thttp_t h;
  char out[128], want[160];
  static char text[65536];
  const char *p;
  int n = 0;
  snprintf(out, sizeof out, "http-%u-hup.err", (unsigned)getpid());
  fx_write_text(out, "");
  snprintf(want, sizeof want, "stderr=%s", out);
  httpd_up_opt(&h, "hup", want);
  ASSERT_EQ(kill((pid_t)h.b.child.pid, SIGHUP), 0);
  wait_log(&h, out,
           "info  SIGHUP: no log file to reopen: the log goes to stderr (this is said at "
           "debug level from now on)\n");
  ASSERT_EQ(kill((pid_t)h.b.child.pid, SIGHUP), 0);
  wait_log(&h, out, "debug SIGHUP: no log file to reopen: the log goes to stderr\n");
  mb_test_file_text(out, text, sizeof text);
  for (p = text; (p = strstr(p, "no log file to reopen")) != NULL; p++)
    n++;
  ASSERT_EQ(n, 2);
  ASSERT(strstr(text, "reopening the log file") == NULL);
  broker_down(&h.b);
#else
  SKIP("SIGHUP exists on POSIX only");
#endif
}

/* A configured listener that cannot listen (its port taken) does not stop the broker: the
 * error is logged, the broker runs (its pipe answers), and once the port is free the listen,
 * tried again every MB_HTTP_RETRY_MS, succeeds and is logged. */
TEST(port_in_use) {
  thttp_t h, h2;
  hc_ans_t a;
  char listen[64], log[128], opt[160], want[200];
  httpd_up(&h, "use1");
  snprintf(listen, sizeof listen, "127.0.0.1:%d", h.port);
  snprintf(log, sizeof log, "http-%s-use2.log", h.b.instance);
  fx_write_text(log, "");
  snprintf(opt, sizeof opt, "log=%s", log);
  httpd_spawn(&h2, "use2", listen, opt);
  broker_wait_ready(&h2.b);
  httpd_read_port(&h2);
  ASSERT_EQ(h2.port, 0); /* ready, without the listener */
  snprintf(want, sizeof want, "error metrics listener: cannot listen on %s: ", listen);
  wait_log(&h2, log, want);
  wait_log(&h2, log, "; the broker runs without it and tries again every 5 s");
  fresh_status(&h2.b); /* the game world is up */

  /* The port is freed: a retry takes it, says so, and scrapes are answered. */
  broker_down(&h.b);
  snprintf(want, sizeof want, "info  metrics listener on %s (GET /metrics), after ", listen);
  wait_log(&h2, log, want);
  hc_once(h.port, GET_METRICS, &a);
  ASSERT_EQ(a.status, 200);
  ASSERT_CONTAINS(a.body, "membroker_up");
  { /* the listener's own gauge says it listens now */
    const char *g = strstr(a.body, "\nmembroker_metrics_listener_up{broker=\"");
    ASSERT(g != NULL);
    g = strchr(g, '}');
    ASSERT(g != NULL && strncmp(g, "} 1\n", 4) == 0);
  }
  broker_down(&h2.b);
}

/* A listen value that is no address at all stays a start error (config.c refuses it first;
 * mb__run, given one anyway, does not start). */
TEST(bad_listen_fails_start) {
  thttp_t h;
  httpd_spawn(&h, "badl", "127.0.0.1", NULL);
  ASSERT_EQ(broker_wait_exit(&h.b), 1);
}

/* metrics.listen in the config: numeric HOST:PORT or [V6]:PORT, null; bad values named. */
TEST(config_key) {
  static const struct {
    const char *value;
    const char *message;
  } bad[] = {
      {"\"localhost:9464\"", "is not a numeric IPv4 address (names are not looked up)"},
      {"\"127.0.0.1\"", "has no port"},
      {"\"127.0.0.1:\"", "the port must be a number 0..65535"},
      {"\"127.0.0.1:65536\"", "the port must be a number 0..65535"},
      {"\"127.0.0.1:94a\"", "the port must be a number 0..65535"},
      {"\"::1:9464\"", "write an IPv6 address in brackets"},
      {"\"[::1]9464\"", "is not \\\"[V6 ADDRESS]:PORT\\\""},
      {"\"[::g]:9464\"", "is not a numeric IPv6 address"},
      {"\"300.0.0.1:9464\"", "is not a numeric IPv4 address"},
      {"9464", "metrics.listen"},
  };
  mb_config_t cfg;
  char text[256], *json;
  cJSON *doc;
  size_t i;
  int lo;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, "{\"metrics\": {\"listen\": %s}}", bad[i].value);
    ASSERT_ERR(mb__config_parse(&cfg, text, strlen(text), "m.json"), MB_ECONFIG);
    ASSERT_CONTAINS(mb_last_error(), "m.json: metrics.listen: ");
    {
      /* The message quotes the value; compare without JSON's escapes. */
      char want[128];
      size_t j, k = 0;
      for (j = 0; bad[i].message[j] != '\0' && k + 1 < sizeof want; j++)
        if (bad[i].message[j] != '\\')
          want[k++] = bad[i].message[j];
      want[k] = '\0';
      ASSERT_CONTAINS(mb_last_error(), want);
    }
  }
  snprintf(text, sizeof text, "{\"metrics\": {\"listen\": \"[::1]:9464\"}}");
  ASSERT_OK(mb__config_parse(&cfg, text, strlen(text), "m.json"));
  ASSERT_STR_EQ(cfg.metrics_listen, "[::1]:9464");
  ASSERT_EQ(mb__http_listen_parse(cfg.metrics_listen, NULL, &lo, text, sizeof text), 0);
  ASSERT_EQ(lo, 1);
  ASSERT_EQ(mb__http_listen_parse("10.1.2.3:9464", NULL, &lo, text, sizeof text), 0);
  ASSERT_EQ(lo, 0);
  ASSERT_EQ(mb__http_listen_parse("127.0.0.2:0", NULL, &lo, text, sizeof text), 0);
  ASSERT_EQ(lo, 1);
  snprintf(text, sizeof text, "{\"metrics\": {\"listen\": \"127.0.0.1:9464\"}}");
  ASSERT_OK(mb__config_parse(&cfg, text, strlen(text), "m.json"));
  /* The effective config shows it, and null (the default) when off. */
  doc = mb__config_to_json(&cfg);
  json = cJSON_PrintUnformatted(doc);
  ASSERT_CONTAINS(json, "\"metrics\":{\"listen\":\"127.0.0.1:9464\"}");
  cJSON_free(json);
  cJSON_Delete(doc);
  mb__config_defaults(&cfg);
  ASSERT_STR_EQ(cfg.metrics_listen, "");
  doc = mb__config_to_json(&cfg);
  json = cJSON_PrintUnformatted(doc);
  ASSERT_CONTAINS(json, "\"metrics\":{\"listen\":null}");
  cJSON_free(json);
  cJSON_Delete(doc);
}
