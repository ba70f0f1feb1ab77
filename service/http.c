/*
 * http.c - the optional /metrics listener (http.h): a strict, bounded HTTP/1.x server on the
 * broker's libuv loop. It owns the listening TCP handle, its two timers (deferred accepts, the
 * listen retry) and its connections (each with one head buffer, one timer and at most one
 * answer being written). It renders on the loop thread through mb__metrics_render and never
 * reads a request body, never blocks, never prints (it logs).
 *
 * Why a scraper always gets in. Connections are few (MB_HTTP_CONN_MAX) and each has one
 * deadline at a time: the head timeout, the idle timeout, or, while it writes, the write
 * deadline, which measures progress: an answer goes out in pieces of MB_HTTP_WRITE_CHUNK, each
 * piece the client takes is progress and moves the deadline to MB_HTTP_WRITE_STALL_MS ahead,
 * capped at MB_HTTP_WRITE_TIMEOUT_MS from the answer's start. A client that pipelines requests
 * and never reads therefore holds its place for at most the stall time, not 30 s per answer.
 * When every place is taken, a new connection makes room by closing the connection that has
 * gone longest without progress (accepted, bytes read, a piece written), chosen among:
 *   - connections older than MB_HTTP_YOUNG_MS that are waiting for a request (idle, slow, or
 *     with a head not yet complete): one just accepted is spared, so a flood of connects
 *     cannot close a scrape's connection before its request has arrived and been read;
 *   - connections writing an answer that made no progress for MB_HTTP_EVICT_STALL_MS (a
 *     writer whose client reads is serving a scrape and is left alone).
 * When none qualifies (every place young, or writing with progress), the new connection is
 * not accepted yet: it waits in the OS's listen backlog, and is accepted as soon as a
 * connection closes or the first of them qualifies (the admit timer is set for that moment).
 * So a scrape is never refused for want of a place; at worst it waits MB_HTTP_EVICT_STALL_MS
 * for a stalled writer, or until a flood's young connections have been read (and closed by
 * their clients) or have aged past MB_HTTP_YOUNG_MS.
 */
#include "http.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "uverr.h"

typedef struct mb_http_conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  struct mb_http_conn_s *prev, *next; /* the server's list, oldest first */
  int handles;                        /* handles still open (freed at 0) */
  int closing, writing, reading;
  int in_request;     /* a request head has begun (or the connection is new) */
  int keep;           /* keep the connection after the answer being written */
  uint64_t born;      /* loop time (ms) of the accept */
  uint64_t progress;  /* loop time of the last progress: the accept, bytes read, a piece written */
  uint64_t answer_at; /* loop time the answer being written began */
  char *out;          /* the answer being written */
  size_t out_len;     /* its length */
  size_t out_off;     /* bytes of it the client has taken */
  size_t piece;       /* bytes of the piece being written */
  size_t used;        /* bytes of head[] received */
  char head[MB_HTTP_HEAD_MAX];
} mb_http_conn_t;

static struct {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  int tcp_open;   /* tcp is initialised and its close callback has not run */
  uv_tcp_t spare; /* takes and closes a connection when there is no memory for it */
  int spare_busy;
  uv_timer_t admit; /* accepts the connections waiting in the backlog (srv_admit) */
  uv_timer_t retry; /* tries the listen again (MB_HTTP_RETRYING) */
  int timers;       /* admit and retry are initialised and not closed */
  int state;        /* MB_HTTP_OFF / _RETRYING / _LISTENING */
  int port;
  const mb_broker_t *broker;
  mb_http_conn_t *first, *last;
  int nconns;
  int pending; /* connections announced by libuv and not accepted yet (no place for them) */
  char listen[MB_HTTP_LISTEN_MAX];
  struct sockaddr_storage addr;
  unsigned failures;      /* listen attempts failed since the start (while RETRYING) */
  uint64_t failing_since; /* loop time of the first failure */
  uint64_t warned_at;     /* loop time the failure was last logged */
} srv;

/* ---- the address --------------------------------------------------------------------------- */

int mb__http_listen_parse(const char *text, struct sockaddr_storage *addr, int *loopback, char *why,
                          size_t size) {
  char host[MB_HTTP_LISTEN_MAX];
  const char *port_s, *colon;
  struct sockaddr_storage ss;
  unsigned long port = 0;
  size_t n, i;
  int v6 = 0, lo;

  memset(&ss, 0, sizeof ss);
  if (text == NULL || text[0] == '\0') {
    snprintf(why, size, "is empty (use \"127.0.0.1:9464\", or null for no listener)");
    return MB_EINVAL;
  }
  if (strlen(text) >= MB_HTTP_LISTEN_MAX) {
    snprintf(why, size, "\"%.40s...\" is too long for an address and port", text);
    return MB_EINVAL;
  }
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':') {
      snprintf(why, size, "\"%s\" is not \"[V6 ADDRESS]:PORT\"", text);
      return MB_EINVAL;
    }
    n = (size_t)(close - text - 1);
    port_s = close + 2;
    memcpy(host, text + 1, n);
    v6 = 1;
  } else {
    colon = strrchr(text, ':');
    if (colon == NULL) {
      snprintf(why, size, "\"%s\" has no port (use HOST:PORT, e.g. \"127.0.0.1:9464\")", text);
      return MB_EINVAL;
    }
    n = (size_t)(colon - text);
    if (memchr(text, ':', n) != NULL) {
      snprintf(why, size, "\"%s\": write an IPv6 address in brackets, \"[::1]:9464\"", text);
      return MB_EINVAL;
    }
    port_s = colon + 1;
    memcpy(host, text, n);
  }
  host[n] = '\0';
  if (port_s[0] == '\0' || strlen(port_s) > 5) {
    snprintf(why, size, "\"%s\": the port must be a number 0..65535", text);
    return MB_EINVAL;
  }
  for (i = 0; port_s[i] != '\0'; i++) {
    if (!isdigit((unsigned char)port_s[i])) {
      snprintf(why, size, "\"%s\": the port must be a number 0..65535", text);
      return MB_EINVAL;
    }
    port = port * 10 + (unsigned long)(port_s[i] - '0');
  }
  if (port > 65535) {
    snprintf(why, size, "\"%s\": the port must be a number 0..65535", text);
    return MB_EINVAL;
  }
  if (v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0
         : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0) {
    snprintf(why, size, "\"%s\": \"%s\" is not a numeric IPv%d address (names are not looked up)",
             text, host, v6 ? 6 : 4);
    return MB_EINVAL;
  }
  if (v6) {
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    lo = memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, lo6, 16) == 0;
  } else {
    lo = ((const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr)[0] == 127;
  }
  if (addr != NULL)
    *addr = ss;
  if (loopback != NULL)
    *loopback = lo;
  return 0;
}

/* ---- connections --------------------------------------------------------------------------- */

static void conn_process(mb_http_conn_t *c);
static void srv_admit_soon(void);

static void conn_free_if_done(mb_http_conn_t *c) {
  if (c->handles > 0 || c->writing)
    return;
  free(c->out);
  free(c);
}

static void conn_closed(uv_handle_t *h) {
  mb_http_conn_t *c = h->data;
  c->handles--;
  conn_free_if_done(c);
}

/* Take c off the list and close its handles (an answer being written is dropped). A
 * connection waiting in the backlog may take its place. */
static void conn_close(mb_http_conn_t *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv.first = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    srv.last = c->prev;
  srv.nconns--;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
  uv_close((uv_handle_t *)&c->timer, conn_closed);
  srv_admit_soon();
}

static void conn_on_timer(uv_timer_t *t) {
  /* A head too slow to arrive, an idle kept-alive connection, or an answer not taken. */
  conn_close(t->data);
}

/* The write deadline from now: MB_HTTP_WRITE_STALL_MS, but not past the answer's cap. */
static void conn_write_deadline(mb_http_conn_t *c) {
  uint64_t now = uv_now(srv.loop), cap = c->answer_at + MB_HTTP_WRITE_TIMEOUT_MS;
  uint64_t left = cap > now ? cap - now : 0;
  uv_timer_start(&c->timer, conn_on_timer,
                 left < MB_HTTP_WRITE_STALL_MS ? left : MB_HTTP_WRITE_STALL_MS, 0);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mb_http_conn_t *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->head + c->used, (unsigned)(sizeof c->head - c->used));
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mb_http_conn_t *c = s->data;
  (void)buf;
  if (nread < 0) {
    conn_close(c); /* the peer closed, or the connection failed */
    return;
  }
  if (nread == 0 || c->closing)
    return;
  c->used += (size_t)nread;
  c->progress = uv_now(srv.loop);
  if (!c->in_request) { /* the first byte after an idle wait: the head timeout begins */
    c->in_request = 1;
    uv_timer_start(&c->timer, conn_on_timer, MB_HTTP_HEAD_TIMEOUT_MS, 0);
  }
  conn_process(c);
}

static void conn_read(mb_http_conn_t *c, int on) {
  if (c->closing || c->reading == on)
    return;
  c->reading = on;
  if (on)
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read);
  else
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void conn_on_write(uv_write_t *w, int status);

/* Write the next piece of c->out (at most MB_HTTP_WRITE_CHUNK bytes); 0 or a libuv error. */
static int conn_write_piece(mb_http_conn_t *c) {
  uv_buf_t b;
  c->piece = c->out_len - c->out_off;
  if (c->piece > MB_HTTP_WRITE_CHUNK)
    c->piece = MB_HTTP_WRITE_CHUNK;
  b = uv_buf_init(c->out + c->out_off, (unsigned)c->piece);
  c->wreq.data = c;
  return uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
}

static void conn_on_write(uv_write_t *w, int status) {
  mb_http_conn_t *c = w->data;
  if (c->closing) { /* the write was cancelled by the close */
    c->writing = 0;
    conn_free_if_done(c);
    return;
  }
  if (status != 0) {
    c->writing = 0;
    conn_close(c);
    return;
  }
  /* The client took a piece: progress, so the stall deadline starts again. */
  c->out_off += c->piece;
  c->progress = uv_now(srv.loop);
  if (c->out_off < c->out_len) {
    conn_write_deadline(c);
    if (conn_write_piece(c) != 0) {
      c->writing = 0;
      conn_close(c);
    }
    return;
  }
  c->writing = 0;
  free(c->out);
  c->out = NULL;
  if (!c->keep) {
    conn_close(c);
    return;
  }
  /* Kept alive: bytes already received begin the next request (pipelining). */
  c->in_request = c->used > 0;
  uv_timer_start(&c->timer, conn_on_timer,
                 c->in_request ? MB_HTTP_HEAD_TIMEOUT_MS : MB_HTTP_IDLE_TIMEOUT_MS, 0);
  conn_process(c);
}

/* Queue the answer: status line, headers, and body (not for HEAD). keep: 0 closes after it. */
static void conn_answer(mb_http_conn_t *c, int status, const char *reason, const char *ctype,
                        const char *extra, const char *body, size_t body_len, int head_only,
                        int keep) {
  char hdr[512];
  int n =
      snprintf(hdr, sizeof hdr,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
               "Connection: %s\r\n\r\n",
               status, reason, ctype, body_len, extra ? extra : "", keep ? "keep-alive" : "close");
  size_t total = (size_t)n + (head_only ? 0 : body_len);
  if (n < 0 || (size_t)n >= sizeof hdr || (c->out = malloc(total)) == NULL) {
    conn_close(c);
    return;
  }
  memcpy(c->out, hdr, (size_t)n);
  if (!head_only && body_len > 0)
    memcpy(c->out + n, body, body_len);
  c->out_len = total;
  c->out_off = 0;
  c->keep = keep;
  c->writing = 1;
  c->answer_at = uv_now(srv.loop);
  conn_read(c, 0); /* nothing more is read until this is written */
  conn_write_deadline(c);
  if (conn_write_piece(c) != 0) {
    c->writing = 0;
    free(c->out);
    c->out = NULL;
    conn_close(c);
  }
}

/* A refusal with a one-line text body; the connection closes after it unless `keep`. */
static void conn_refuse(mb_http_conn_t *c, int status, const char *reason, const char *extra,
                        const char *text, int keep) {
  char body[200];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, reason, text);
  conn_answer(c, status, reason, "text/plain; charset=utf-8", extra, body, n > 0 ? (size_t)n : 0, 0,
              keep);
}

/* tchar of RFC 9110 (method and header names). */
static int is_tchar(int ch) {
  return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int name_is(const char *s, size_t n, const char *name);

/* Is `token` one of the comma-separated elements of [s, s+n) (Connection's list)? */
static int list_has(const char *s, size_t n, const char *token) {
  const char *end = s + n, *e;
  while (s < end) {
    const char *b = s, *t;
    e = memchr(s, ',', (size_t)(end - s));
    if (e == NULL)
      e = end;
    while (b < e && (*b == ' ' || *b == '\t'))
      b++;
    for (t = e; t > b && (t[-1] == ' ' || t[-1] == '\t'); t--)
      ;
    if (name_is(b, (size_t)(t - b), token))
      return 1;
    s = e + 1;
  }
  return 0;
}

static int name_is(const char *s, size_t n, const char *name) {
  size_t i;
  if (strlen(name) != n)
    return 0;
  for (i = 0; i < n && tolower((unsigned char)s[i]) == name[i]; i++)
    ;
  return i == n;
}

/* The q-values an Accept header gives the two expositions, in thousandths (-1: not named). */
typedef struct {
  int openmetrics; /* application/openmetrics-text */
  int text;        /* text/plain, text/<*> or <*>/<*> */
} mb_http_accept_t;

/* A qvalue of RFC 9110 ("0", "0.5", "1.000"; at most three decimals) in thousandths, or -1. */
static int qvalue(const char *s, size_t n) {
  int q, scale = 100;
  size_t i;
  if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && (s[1] != '.' || n > 5)))
    return -1;
  q = (s[0] - '0') * 1000;
  for (i = 2; i < n; i++, scale /= 10) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    q += (s[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

/*
 * Read one Accept field value [s, s+n) (a comma-separated list of TYPE/SUBTYPE with
 * parameters, one of which may be q) and raise acc's q-values to what it gives each
 * exposition. 0, or -1 with *why saying what is malformed.
 */
static int accept_parse(const char *s, size_t n, mb_http_accept_t *acc, const char **why) {
  const char *end = s + n;
  while (s < end) {
    const char *type = s, *slash = NULL;
    size_t tlen;
    int q = 1000;
    if (*s == ',' || *s == ' ' || *s == '\t') { /* list separators and empty elements */
      s++;
      continue;
    }
    while (s < end && (is_tchar((unsigned char)*s) || *s == '/')) {
      if (*s == '/' && slash == NULL)
        slash = s;
      else if (*s == '/')
        break;
      s++;
    }
    tlen = (size_t)(s - type);
    if (slash == NULL || slash == type || slash + 1 == s) {
      *why = "Accept: a media range is not TYPE/SUBTYPE";
      return -1;
    }
    /* Parameters: *( OWS ";" OWS [ NAME "=" ( token / quoted-string ) ] ) */
    for (;;) {
      const char *name, *val;
      size_t nlen, vlen;
      while (s < end && (*s == ' ' || *s == '\t'))
        s++;
      if (s == end || *s == ',')
        break;
      if (*s != ';') {
        *why = "Accept: a media range is followed by something other than ';' or ','";
        return -1;
      }
      for (s++; s < end && (*s == ' ' || *s == '\t'); s++)
        ;
      if (s == end || *s == ',' || *s == ';')
        continue; /* an empty parameter */
      for (name = s; s < end && is_tchar((unsigned char)*s); s++)
        ;
      nlen = (size_t)(s - name);
      if (nlen == 0 || s == end || *s != '=') {
        *why = "Accept: a parameter is not NAME=VALUE";
        return -1;
      }
      val = ++s;
      if (s < end && *s == '"') {
        for (s++; s < end && *s != '"'; s++)
          if (*s == '\\' && s + 1 < end)
            s++;
        if (s == end) {
          *why = "Accept: a quoted parameter value is not closed";
          return -1;
        }
        s++;
      } else {
        while (s < end && is_tchar((unsigned char)*s))
          s++;
      }
      vlen = (size_t)(s - val);
      if (vlen == 0) {
        *why = "Accept: a parameter has no value";
        return -1;
      }
      if (name_is(name, nlen, "q") && (q = qvalue(val, vlen)) < 0) {
        *why = "Accept: q is not a number from 0 to 1 with at most 3 decimals";
        return -1;
      }
    }
    if (name_is(type, tlen, "application/openmetrics-text")) {
      if (q > acc->openmetrics)
        acc->openmetrics = q;
    } else if (name_is(type, tlen, "text/plain") || name_is(type, tlen, "text/*") ||
               name_is(type, tlen, "*/*")) {
      if (q > acc->text)
        acc->text = q;
    }
  }
  return 0;
}

/*
 * Parse the complete head in c->head[0..len) (len includes the empty line) and answer it.
 * Lines end with CRLF (a bare LF is taken too); anything not of HTTP/1.x's grammar is 400.
 */
static void conn_handle(mb_http_conn_t *c, size_t len) {
  const char *p = c->head, *end = c->head + len, *eol, *sp1, *sp2;
  const char *target;
  size_t target_len, mlen;
  int minor, nheaders = 0, hosts = 0, keep, openmetrics, head_only, rc;
  mb_http_accept_t accept = {-1, -1};
  const char *why;
  char *text = NULL;
  size_t text_len = 0;

  /* The request line: METHOD SP TARGET SP HTTP/1.x */
  eol = memchr(p, '\n', (size_t)(end - p));
  mlen = (size_t)(eol - p) - (eol > p && eol[-1] == '\r');
  sp1 = memchr(p, ' ', mlen);
  sp2 = sp1 ? memchr(sp1 + 1, ' ', mlen - (size_t)(sp1 + 1 - p)) : NULL;
  if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1) {
    conn_refuse(c, 400, "Bad Request", NULL, "the request line is not METHOD TARGET HTTP/1.x", 0);
    return;
  }
  for (const char *q = p; q < sp1; q++)
    if (!is_tchar((unsigned char)*q)) {
      conn_refuse(c, 400, "Bad Request", NULL, "the method is not a token", 0);
      return;
    }
  target = sp1 + 1;
  target_len = (size_t)(sp2 - target);
  for (size_t i = 0; i < target_len; i++)
    if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f) {
      conn_refuse(c, 400, "Bad Request", NULL, "the target has a character not allowed", 0);
      return;
    }
  if ((size_t)(p + mlen - (sp2 + 1)) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
      (sp2[8] != '0' && sp2[8] != '1')) {
    if ((size_t)(p + mlen - (sp2 + 1)) == 8 && memcmp(sp2 + 1, "HTTP/", 5) == 0 &&
        isdigit((unsigned char)sp2[6]) && sp2[7] == '.' && isdigit((unsigned char)sp2[8]))
      conn_refuse(c, 505, "HTTP Version Not Supported", NULL, "only HTTP/1.0 and 1.1", 0);
    else
      conn_refuse(c, 400, "Bad Request", NULL, "the version is not HTTP/1.0 or HTTP/1.1", 0);
    return;
  }
  minor = sp2[8] - '0';
  keep = minor == 1;

  /* The headers, up to the empty line. */
  for (p = eol + 1; p < end; p = eol + 1) {
    const char *colon, *v, *vend;
    size_t llen;
    eol = memchr(p, '\n', (size_t)(end - p));
    llen = (size_t)(eol - p) - (eol > p && eol[-1] == '\r');
    if (llen == 0)
      break; /* the empty line ends the head */
    if (++nheaders > MB_HTTP_HEADERS_MAX) {
      conn_refuse(c, 431, "Request Header Fields Too Large", NULL, "more than 64 headers", 0);
      return;
    }
    colon = memchr(p, ':', llen);
    if (colon == NULL || colon == p) {
      conn_refuse(c, 400, "Bad Request", NULL, "a header line is not NAME: VALUE", 0);
      return;
    }
    for (const char *q = p; q < colon; q++)
      if (!is_tchar((unsigned char)*q)) { /* also a space before the colon, or a folded line */
        conn_refuse(c, 400, "Bad Request", NULL, "a header name is not a token", 0);
        return;
      }
    for (v = colon + 1; v < p + llen && (*v == ' ' || *v == '\t'); v++)
      ;
    for (vend = p + llen; vend > v && (vend[-1] == ' ' || vend[-1] == '\t'); vend--)
      ;
    for (const char *q = v; q < vend; q++)
      if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
        conn_refuse(c, 400, "Bad Request", NULL, "a header value has a control character", 0);
        return;
      }
    if (name_is(p, (size_t)(colon - p), "content-length")) {
      size_t i, vlen = (size_t)(vend - v);
      int zero = 1;
      if (vlen == 0) {
        conn_refuse(c, 400, "Bad Request", NULL, "Content-Length is empty", 0);
        return;
      }
      for (i = 0; i < vlen; i++) {
        if (!isdigit((unsigned char)v[i])) {
          conn_refuse(c, 400, "Bad Request", NULL, "Content-Length is not a number", 0);
          return;
        }
        zero = zero && v[i] == '0';
      }
      if (!zero) {
        conn_refuse(c, 413, "Content Too Large", NULL, "no request body is accepted", 0);
        return;
      }
    } else if (name_is(p, (size_t)(colon - p), "transfer-encoding")) {
      conn_refuse(c, 400, "Bad Request", NULL, "no request body is accepted (Transfer-Encoding)",
                  0);
      return;
    } else if (name_is(p, (size_t)(colon - p), "connection")) {
      if (list_has(v, (size_t)(vend - v), "close"))
        keep = 0;
      else if (minor == 0 && list_has(v, (size_t)(vend - v), "keep-alive"))
        keep = 1;
    } else if (name_is(p, (size_t)(colon - p), "accept")) {
      if (accept_parse(v, (size_t)(vend - v), &accept, &why) != 0) {
        conn_refuse(c, 400, "Bad Request", NULL, why, 0);
        return;
      }
    } else if (name_is(p, (size_t)(colon - p), "host")) {
      hosts++;
    }
  }
  if (minor == 1 && hosts != 1) {
    conn_refuse(c, 400, "Bad Request", NULL, "HTTP/1.1 needs exactly one Host header", 0);
    return;
  }
  /* OpenMetrics when the client names it with a q above 0 and not below what it gives the
   * text format (text/plain, text/<*>, <*>/<*>); the text format otherwise, also when it
   * accepts neither (a 406 would only break a careless scraper). */
  openmetrics = accept.openmetrics > 0 && accept.openmetrics >= accept.text;

  /* /metrics, with any query; then the method. */
  if (!((target_len == 8 || (target_len > 8 && target[8] == '?')) &&
        memcmp(target, "/metrics", 8) == 0)) {
    conn_refuse(c, 404, "Not Found", NULL, "only /metrics is served here", keep);
    return;
  }
  head_only = (size_t)(sp1 - c->head) == 4 && memcmp(c->head, "HEAD", 4) == 0;
  if (!head_only && !((size_t)(sp1 - c->head) == 3 && memcmp(c->head, "GET", 3) == 0)) {
    conn_refuse(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", "use GET or HEAD", keep);
    return;
  }
  if ((rc = mb__metrics_render(srv.broker, openmetrics, &text, &text_len)) != 0) {
    mb_log_warn("metrics listener: cannot render the metrics: %s", mb_last_error());
    conn_refuse(c, 500, "Internal Server Error", NULL, "the metrics could not be rendered", 0);
    return;
  }
  conn_answer(c, 200, "OK", openmetrics ? MB_METRICS_CT_OPENMETRICS : MB_METRICS_CT_TEXT, NULL,
              text, text_len, head_only, keep);
  free(text);
}

/* Answer the request in c->head once its head is complete; wait for more bytes otherwise. */
static void conn_process(mb_http_conn_t *c) {
  size_t i, len = 0;
  if (c->closing || c->writing)
    return;
  for (i = 0; i < c->used && len == 0; i++)
    if (c->head[i] == '\n' && ((i >= 1 && c->head[i - 1] == '\n') ||
                               (i >= 2 && c->head[i - 1] == '\r' && c->head[i - 2] == '\n')))
      len = i + 1;
  if (len == 0) {
    if (c->used == sizeof c->head)
      conn_refuse(c, 431, "Request Header Fields Too Large", NULL,
                  "the request line and headers exceed 8 KiB", 0);
    else
      conn_read(c, 1);
    return;
  }
  if (c->head[0] == '\n' || c->head[0] == '\r') {
    conn_refuse(c, 400, "Bad Request", NULL, "the request begins with an empty line", 0);
    return;
  }
  conn_handle(c, len);
  /* What follows the head is the next request (there is no body): keep it. */
  memmove(c->head, c->head + len, c->used - len);
  c->used -= len;
}

static void spare_closed(uv_handle_t *h) {
  (void)h;
  srv.spare_busy = 0;
}

/*
 * The connection to close to make room for one waiting in the backlog (the opening comment
 * says which), or NULL when none qualifies yet; *next is lowered to the loop time the first
 * one will.
 */
static mb_http_conn_t *srv_victim(uint64_t now, uint64_t *next) {
  mb_http_conn_t *c, *best = NULL;
  for (c = srv.first; c != NULL; c = c->next) {
    uint64_t at = c->born + MB_HTTP_YOUNG_MS;
    if (c->writing && c->progress + MB_HTTP_EVICT_STALL_MS > at)
      at = c->progress + MB_HTTP_EVICT_STALL_MS;
    if (at > now) {
      if (at < *next)
        *next = at;
    } else if (best == NULL || c->progress < best->progress) {
      best = c;
    }
  }
  return best;
}

/* Accept one connection from the backlog into a new entry: 0; -1 when there was none after
 * all; -2 when it must wait (no memory, and the spare handle is still closing). */
static int srv_accept_one(void) {
  uv_stream_t *server = (uv_stream_t *)&srv.tcp;
  mb_http_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    /* Out of memory: the connection is taken and closed at once (libuv stops listening until
     * a connection is accepted), through the one spare handle when it is free. */
    if (srv.spare_busy || uv_tcp_init(srv.loop, &srv.spare) != 0)
      return -2;
    srv.spare_busy = 1;
    (void)uv_accept(server, (uv_stream_t *)&srv.spare);
    uv_close((uv_handle_t *)&srv.spare, spare_closed);
    return 0;
  }
  uv_tcp_init(srv.loop, &c->tcp);
  uv_timer_init(srv.loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->prev = srv.last;
  if (srv.last)
    srv.last->next = c;
  else
    srv.first = c;
  srv.last = c;
  srv.nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return -1; /* none was there after all */
  }
  c->born = c->progress = uv_now(srv.loop);
  uv_tcp_nodelay(&c->tcp, 1); /* each piece is one write: send it without delay */
  c->in_request = 1;
  uv_timer_start(&c->timer, conn_on_timer, MB_HTTP_HEAD_TIMEOUT_MS, 0);
  conn_read(c, 1);
  return 0;
}

static void srv_on_admit(uv_timer_t *t);

/*
 * Accept the connections waiting in the backlog while there is a place for them, making one
 * where a connection qualifies (srv_victim). Those left wait for the admit timer: set for when
 * the first connection qualifies; a connection that closes sets it to now (srv_admit_soon).
 */
static void srv_admit(void) {
  int rc;
  while (srv.pending > 0 && srv.state == MB_HTTP_LISTENING) {
    if (srv.nconns >= MB_HTTP_CONN_MAX) {
      uint64_t now = uv_now(srv.loop), next = UINT64_MAX;
      mb_http_conn_t *victim = srv_victim(now, &next);
      if (victim == NULL) {
        if (next != UINT64_MAX)
          uv_timer_start(&srv.admit, srv_on_admit, next - now, 0);
        return;
      }
      conn_close(victim);
    }
    if ((rc = srv_accept_one()) == -2) { /* try again soon: it stays in the backlog */
      uv_timer_start(&srv.admit, srv_on_admit, MB_HTTP_YOUNG_MS, 0);
      return;
    }
    if (rc != 0) {
      srv.pending = 0;
      return;
    }
    srv.pending--;
  }
}

static void srv_on_admit(uv_timer_t *t) {
  (void)t;
  srv_admit();
}

/* A place was freed: let a connection waiting in the backlog have it on the next turn of the
 * loop (not here: conn_close runs inside other connections' callbacks). */
static void srv_admit_soon(void) {
  if (srv.pending > 0 && srv.state == MB_HTTP_LISTENING)
    uv_timer_start(&srv.admit, srv_on_admit, 0, 0);
}

static void srv_on_connection(uv_stream_t *server, int status) {
  (void)server;
  if (status != 0)
    return;
  srv.pending++;
  srv_admit();
}

/* ---- the server ---------------------------------------------------------------------------- */

static void srv_tcp_closed(uv_handle_t *h) {
  (void)h;
  srv.tcp_open = 0;
}

static void srv_timer_closed(uv_handle_t *h) {
  (void)h;
}

/* Listen on srv.addr once: 0, or the libuv error (the handle is closed again then). */
static int srv_try_listen(void) {
  struct sockaddr_storage ss;
  char name[MB_HTTP_LISTEN_MAX];
  int rc, len = (int)sizeof ss;

  if (srv.tcp_open)
    return UV_EBUSY; /* the last attempt's handle is still closing: next time */
  if ((rc = uv_tcp_init(srv.loop, &srv.tcp)) != 0)
    return rc;
  srv.tcp_open = 1;
  /* libuv reports some bind errors (address in use) only at listen. */
  if ((rc = uv_tcp_bind(&srv.tcp, (const struct sockaddr *)&srv.addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&srv.tcp, 64, srv_on_connection)) != 0) {
    uv_close((uv_handle_t *)&srv.tcp, srv_tcp_closed);
    return rc;
  }
  srv.state = MB_HTTP_LISTENING;
  if (uv_tcp_getsockname(&srv.tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, name, sizeof name);
      srv.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, name, sizeof name);
      srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  } else {
    snprintf(name, sizeof name, "%s", srv.listen);
  }
  if (srv.failures == 0)
    mb_log_info("metrics listener on %s%s%s:%d (GET /metrics)", ss.ss_family == AF_INET6 ? "[" : "",
                name, ss.ss_family == AF_INET6 ? "]" : "", srv.port);
  else
    mb_log_info("metrics listener on %s%s%s:%d (GET /metrics), after %u failed attempts in %llu s",
                ss.ss_family == AF_INET6 ? "[" : "", name, ss.ss_family == AF_INET6 ? "]" : "",
                srv.port, srv.failures,
                (unsigned long long)((uv_now(srv.loop) - srv.failing_since) / 1000));
  return 0;
}

/* MB_HTTP_RETRYING: try again; log the failure again every MB_HTTP_RETRY_WARN_MS. */
static void srv_on_retry(uv_timer_t *t) {
  uint64_t now = uv_now(srv.loop);
  int rc;
  (void)t;
  if (srv.state != MB_HTTP_RETRYING)
    return;
  if ((rc = srv_try_listen()) == 0) {
    uv_timer_stop(&srv.retry);
    return;
  }
  srv.failures++;
  if (now - srv.warned_at >= MB_HTTP_RETRY_WARN_MS) {
    srv.warned_at = now;
    mb_log_warn("metrics listener: still cannot listen on %s: %s (%u attempts in %llu s); the "
                "broker runs without it and tries again every %d s",
                srv.listen, uv_strerror(rc), srv.failures,
                (unsigned long long)((now - srv.failing_since) / 1000), MB_HTTP_RETRY_MS / 1000);
  } else {
    mb_log_debug("metrics listener: cannot listen on %s: %s (attempt %u)", srv.listen,
                 uv_strerror(rc), srv.failures);
  }
}

int mb__http_start(uv_loop_t *loop, const mb_broker_t *b, const char *listen) {
  struct sockaddr_storage ss;
  char why[200];
  int loopback, rc;

  if (srv.state != MB_HTTP_OFF)
    return mb__errorf(MB_EBUSY, 0, "the metrics listener is already running");
  if (mb__http_listen_parse(listen, &ss, &loopback, why, sizeof why) != 0)
    return mb__errorf(MB_EINVAL, 0, "metrics.listen: %s", why);
  memset(&srv, 0, sizeof srv);
  srv.loop = loop;
  srv.broker = b;
  srv.addr = ss;
  snprintf(srv.listen, sizeof srv.listen, "%s", listen);
  uv_timer_init(loop, &srv.admit); /* cannot fail: it only links the handle into the loop */
  uv_timer_init(loop, &srv.retry);
  srv.timers = 1;
  srv.state = MB_HTTP_RETRYING;
  if ((rc = srv_try_listen()) != 0) {
    /* The broker runs without it: a game world without its /metrics is better than none. The
     * error reaches the event log on Windows (log.h); the scrape's failure shows in
     * Prometheus (up == 0) until the listen succeeds. */
    srv.failures = 1;
    srv.failing_since = srv.warned_at = uv_now(loop);
    mb_log_error("metrics listener: cannot listen on %s: %s; the broker runs without it and "
                 "tries again every %d s",
                 listen, uv_strerror(rc), MB_HTTP_RETRY_MS / 1000);
    uv_timer_start(&srv.retry, srv_on_retry, MB_HTTP_RETRY_MS, MB_HTTP_RETRY_MS);
  }
  if (!loopback)
    mb_log_warn("metrics.listen %s is not a loopback address: anyone who can reach it reads the "
                "metrics (the endpoint has no authentication)",
                listen);
  return 0;
}

int mb__http_port(void) {
  return srv.state == MB_HTTP_LISTENING ? srv.port : 0;
}

int mb__http_state(void) {
  return srv.state;
}

void mb__http_stop(void) {
  int was = srv.state;
  if (was == MB_HTTP_OFF)
    return;
  srv.state = MB_HTTP_OFF;
  srv.pending = 0; /* a connection still in the backlog is closed with the listener */
  while (srv.first != NULL)
    conn_close(srv.first);
  if (srv.timers) {
    srv.timers = 0;
    uv_close((uv_handle_t *)&srv.admit, srv_timer_closed);
    uv_close((uv_handle_t *)&srv.retry, srv_timer_closed);
  }
  if (was == MB_HTTP_LISTENING)
    uv_close((uv_handle_t *)&srv.tcp, srv_tcp_closed);
}
