/*
 * os_common.c - the portable part of the platform layer, shared by os_win32.c and
 * os_posix.c: argument checks both make the same way, the single-instance lock's record
 * (format and belief), failure injection, the one errno table (mb__os_from_errno) and errno's
 * text (mb_os_errno_text), and the control pipe client's line reader over mb__pipe_read (see os.h).
 * No OS calls here: only the C library and the platform layer's own functions.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomics.h"
#include "os.h"

int mb__os_page_aligned(const void *addr, uint64_t size) {
  size_t ps = mb_os_mem_config()->page_size;
  return ((uintptr_t)addr % ps) == 0 && (size % ps) == 0;
}

int mb__name_ok(const char *s, size_t max, unsigned allow) {
  size_t n = 0;
  for (; s[n] != '\0'; n++)
    if (n + 1 >= max || !mb__name_char_ok(s[n], allow))
      return 0;
  return n > 0;
}

int mb__os_check_name(const char *name, const char *what, size_t *len) {
  size_t n = 0;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "%s name is empty", what);
  for (; name[n] != '\0'; n++) {
    char c = name[n];
    if (n >= MB_OS_NAME_MAX)
      return mb__errorf(MB_ENAMETOOLONG, 0, "%s name '%.40s...' is longer than %d", what, name,
                        MB_OS_NAME_MAX);
    if (!mb__name_char_ok(c, MB_NAME_UPPER | MB_NAME_DOT))
      return mb__errorf(MB_EINVAL, 0, "%s name '%s' has a character outside [A-Za-z0-9._-]", what,
                        name);
  }
  *len = n;
  return 0;
}

int mb__os_section_range(const mb_os_section_t *sec, uint64_t offset, uint64_t len,
                         const char *what) {
  if (len == 0 || !mb__os_page_aligned(NULL, offset) || !mb__os_page_aligned(NULL, len))
    return mb__errorf(MB_EINVAL, 0, "%s [%llu, +%llu) of section '%s': not page-aligned", what,
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  if (offset > sec->size || len > sec->size - offset)
    return mb__errorf(MB_ERANGE, 0, "%s [%llu, +%llu) of section '%s' of %llu bytes", what,
                      (unsigned long long)offset, (unsigned long long)len, sec->name,
                      (unsigned long long)sec->size);
  return 0;
}

static mb_au32 mb__commit_failures;

void mb_os_inject_commit_failures(int count) {
  mb_store32(&mb__commit_failures, count > 0 ? (uint32_t)count : 0);
}

int mb__os_injected_commit_failure(void) {
  uint32_t n = mb_load32(&mb__commit_failures);
  while (n > 0)
    if (mb_cas32(&mb__commit_failures, &n, n - 1))
      return 1;
  return 0;
}

static mb_au32 mb__rename_failures;

int mb_os_inject_rename_failures(int count) {
  uint32_t n = mb_load32(&mb__rename_failures);
  while (!mb_cas32(&mb__rename_failures, &n, count > 0 ? (uint32_t)count : 0))
    ;
  return (int)n;
}

int mb__os_injected_rename_failure(void) {
  uint32_t n = mb_load32(&mb__rename_failures);
  while (n > 0)
    if (mb_cas32(&mb__rename_failures, &n, n - 1))
      return 1;
  return 0;
}

size_t mb__os_lock_record(char *buf, size_t size, int flags) {
  mb_os_procid_t self;
  int n;
  mb_os_proc_self(&self);
  n = snprintf(buf, size, "%u %llu %s\n", (unsigned)self.pid, (unsigned long long)self.start_time,
               (flags & MB_OS_LOCK_SERVICE) ? "service" : "console");
  return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/*
 * A record is believed only whole ("<pid> <start> <mode>\n", nothing else) and only while that
 * very process runs: a crashed holder's record names a dead pid, or a pid reused by another
 * process with another start time. When the OS will not say (mb_os_proc_alive < 0, e.g. a
 * process of another user) the record is believed: it is there and the lock is held.
 */
int mb__os_lock_believe(const char *text, const char *service, mb_os_lock_holder_t *holder) {
  unsigned long pid = 0;
  unsigned long long start = 0;
  char mode[16], *end;
  const char *p = text;
  mb_os_procid_t id;

  memset(holder, 0, sizeof *holder);
  snprintf(holder->what, sizeof holder->what, "starting; it has not said who it is yet");
  if (p == NULL || *p < '0' || *p > '9')
    return MB_ENOENT;
  pid = strtoul(p, &end, 10);
  if (*end != ' ' || pid == 0 || pid > UINT32_MAX || end[1] < '0' || end[1] > '9')
    return MB_ENOENT;
  start = strtoull(end + 1, &end, 10);
  if (*end != ' ' || sscanf(end + 1, "%15[a-z]", mode) != 1)
    return MB_ENOENT;
  if ((strcmp(mode, "service") != 0 && strcmp(mode, "console") != 0) ||
      strcmp(end + 1 + strlen(mode), "\n") != 0)
    return MB_ENOENT;
  id.pid = (uint32_t)pid;
  id.start_time = start;
  if (mb_os_proc_alive(&id) == 0) {
    mb__error_clear();
    return MB_ENOENT;
  }
  mb__error_clear();
  holder->pid = (uint32_t)pid;
  holder->service = mode[0] == 's';
  snprintf(holder->what, sizeof holder->what, "pid %u, %s", (unsigned)pid,
           holder->service ? service : "console");
  return 0;
}

/*
 * The one errno table: the errno values of POSIX calls (os_posix.c), of the C runtime on
 * Windows (_wfopen, fflush: os_win32.c) and of stdio (gmap.c). Values a C library may lack
 * are tested with #ifdef.
 */
int mb__os_from_errno(int e, int dflt) {
  switch (e) {
  case ENOENT:
#ifdef ENOTDIR
  case ENOTDIR:
#endif
    return MB_ENOENT;
  case EEXIST:
    return MB_EEXIST;
  case EACCES:
  case EPERM:
#ifdef EROFS
  case EROFS:
#endif
    return MB_EACCES;
#ifdef ENAMETOOLONG
  case ENAMETOOLONG:
    return MB_ENAMETOOLONG;
#endif
  case EINVAL:
    return MB_EINVAL;
  case ENOSPC:
#ifdef EDQUOT
  case EDQUOT:
#endif
  case EFBIG:
    return MB_ENOSPC;
  case ENOMEM:
    return MB_ENOMEM;
  case ESRCH:
    return MB_ESRCH;
  case EIO:
    return MB_EIO;
  case EBUSY:
    return MB_EBUSY;
  case ENOSYS:
#ifdef EOPNOTSUPP
  case EOPNOTSUPP:
#endif
    return MB_ENOTSUP;
  default:
    return dflt;
  }
}

/* ---- the control pipe client: the portable part (deadlines, the line reader) ---------------- */

const char *mb_os_errno_text(int e, char *buf, size_t size) {
  const char *t = e > 0 ? strerror(e) : NULL;
  if (size == 0)
    return buf;
  if (t == NULL || t[0] == '\0' || strncmp(t, "Unknown error", 13) == 0)
    snprintf(buf, size, "os error %d", e);
  else
    snprintf(buf, size, "%s", t);
  return buf;
}

int mb__os_ms_left(uint64_t deadline_ns) {
  uint64_t now;
  if (deadline_ns == 0)
    return -1;
  now = mb_os_mono_ns();
  if (now >= deadline_ns)
    return 0;
  if ((deadline_ns - now) / 1000000u > INT_MAX)
    return INT_MAX;
  return (int)((deadline_ns - now + 999999u) / 1000000u);
}

/* Grow c->buf to hold at least `need` bytes. */
static int mb__conn_reserve(mb_pipe_conn_t *c, size_t need) {
  size_t cap = c->cap ? c->cap : 4096;
  char *p;
  if (need <= c->cap)
    return 0;
  while (cap < need)
    cap *= 2;
  if ((p = realloc(c->buf, cap)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "grow the receive buffer to %zu bytes", cap);
  c->buf = p;
  c->cap = cap;
  return 0;
}

int mb__pipe_read_line(mb_pipe_conn_t *c, char **line, size_t *len, size_t max,
                       uint64_t deadline_ns) {
  size_t scanned = 0;
  if (c->skip) {
    memmove(c->buf, c->buf + c->skip, c->len - c->skip);
    c->len -= c->skip;
    c->skip = 0;
  }
  for (;;) {
    char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
    size_t n;
    int rc;
    if (nl != NULL) {
      *nl = '\0';
      *line = c->buf;
      *len = (size_t)(nl - c->buf);
      c->skip = *len + 1;
      return 0;
    }
    scanned = c->len;
    if (c->len > max)
      return mb__errorf(MB_ERANGE, 0, "response line longer than %zu bytes", max);
    if ((rc = mb__conn_reserve(c, c->len + 65536)) != 0)
      return rc;
    if ((rc = mb__pipe_read(c, c->buf + c->len, c->cap - c->len - 1, deadline_ns, &n)) != 0)
      return rc;
    if (n == 0)
      return mb__errorf(MB_EIO, 0, "the broker closed the connection%s",
                        c->len ? " in the middle of a line" : "");
    c->len += n;
  }
}

int mb__pipe_peer_admin(intptr_t fd, long *uid) {
  return mb_os_pipe_peer_admin(fd, uid);
}

int mb__os_read_buffer(const char *path, uint64_t size, uint64_t max, char **buf) {
  if (size > max)
    return mb__errorf(MB_ERANGE, 0, "read '%s': %llu bytes, more than the %llu read at most", path,
                      (unsigned long long)size, (unsigned long long)max);
  if (size >= SIZE_MAX || (*buf = malloc((size_t)size + 1)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "read '%s': no memory for %llu bytes", path,
                      (unsigned long long)size);
  return 0;
}

void mb__os_tm_fill(const struct tm *t, uint64_t wall_ns, mb_os_tm_t *tm) {
  if (t == NULL) {
    tm->year = 1970, tm->month = 1, tm->day = 1, tm->hour = tm->min = tm->sec = 0;
  } else {
    tm->year = t->tm_year + 1900;
    tm->month = t->tm_mon + 1;
    tm->day = t->tm_mday;
    tm->hour = t->tm_hour;
    tm->min = t->tm_min;
    tm->sec = t->tm_sec;
  }
  tm->msec = (int)(wall_ns / 1000000u % 1000u);
}
