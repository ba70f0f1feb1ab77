/*
 * error.c - error names, sentences and the per-thread detail message.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const mb__err_names[] = {
#define MB__X(name, code, msg) code,
    MB_ERROR_MAP(MB__X)
#undef MB__X
};

static const char *const mb__err_msgs[] = {
#define MB__X(name, code, msg) msg,
    MB_ERROR_MAP(MB__X)
#undef MB__X
};

static MB_THREAD_LOCAL char mb__errbuf[512];
static MB_THREAD_LOCAL long mb__erros;
static MB_THREAD_LOCAL const char *mb__errtail; /* mb__errorf_as's tail, or NULL */

static int mb__err_index(int err) {
  if (err >= 0 || -err > MB__EIDX_COUNT)
    return -1;
  return -err - 1;
}

const char *mb_strerror(int err) {
  int i;
  if (err == 0)
    return "success";
  i = mb__err_index(err);
  return i < 0 ? "unknown error" : mb__err_msgs[i];
}

const char *mb_err_name(int err) {
  int i;
  if (err == 0)
    return "ok";
  i = mb__err_index(err);
  return i < 0 ? "unknown" : mb__err_names[i];
}

const char *mb_last_error(void) {
  return mb__errbuf;
}

long mb_last_os_error(void) {
  return mb__erros;
}

/*
 * The one writer of the message: fmt's text, then ": " and the tail (`tail`, or when it is NULL
 * mb_strerror(err) plus " (os error N)" for a nonzero os_code). mb__errtail remembers `tail`
 * (mb__error_tail).
 */
static int mb__verrorf(int err, long os_code, const char *tail, const char *fmt, va_list ap)
    MB_PRINTF(4, 0);
static int mb__verrorf(int err, long os_code, const char *tail, const char *fmt, va_list ap) {
  char text[sizeof mb__errbuf];
  int n;
  size_t len;

  /* Formatted apart first: an argument may be mb_last_error() itself (a message prefixed to
   * the one before it), and vsnprintf must not read the buffer it writes. */
  n = vsnprintf(text, sizeof text, fmt, ap);
  memcpy(mb__errbuf, text, sizeof text);
  len = n < 0 ? 0 : ((size_t)n >= sizeof mb__errbuf ? sizeof mb__errbuf - 1 : (size_t)n);
  if (tail != NULL)
    snprintf(mb__errbuf + len, sizeof mb__errbuf - len, ": %s", tail);
  else if (os_code != 0)
    snprintf(mb__errbuf + len, sizeof mb__errbuf - len, ": %s (os error %ld)", mb_strerror(err),
             os_code);
  else
    snprintf(mb__errbuf + len, sizeof mb__errbuf - len, ": %s", mb_strerror(err));
  mb__erros = os_code;
  mb__errtail = tail;
  return err;
}

int mb__errorf(int err, long os_code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err = mb__verrorf(err, os_code, NULL, fmt, ap);
  va_end(ap);
  return err;
}

int mb__errorf_as(int err, const char *tail, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err = mb__verrorf(err, 0, tail, fmt, ap);
  va_end(ap);
  return err;
}

const char *mb__error_tail(int err) {
  return mb__errtail != NULL ? mb__errtail : mb_strerror(err);
}

void mb__error_clear(void) {
  mb__errbuf[0] = '\0';
  mb__erros = 0;
  mb__errtail = NULL;
}
