/*
 * ctlconn.c - the control pipe's platform bits (see ctlconn.h): the pipe name, a blocking
 * client connection and the peer check. The portable line reader comes first; then one
 * implementation per OS, each wrapped whole in #if MB_OS_POSIX / #if MB_OS_WIN.
 *
 * POSIX: a Unix stream socket; reads wait with poll(); writes use MSG_NOSIGNAL so a broker
 * that went away is an error, not a SIGPIPE. Windows: the named pipe opened with CreateFileW
 * in overlapped mode, so a read can wait with a deadline (WaitForSingleObject).
 */
#include "ctlconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

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

/* Milliseconds left until deadline_ns (0: forever, -1); 0 once it has passed. */
static int mb__ms_left(uint64_t deadline_ns) {
  uint64_t now;
  if (deadline_ns == 0)
    return -1;
  now = mb_os_mono_ns();
  if (now >= deadline_ns)
    return 0;
  if ((deadline_ns - now) / 1000000u > 0x7fffffff)
    return 0x7fffffff;
  return (int)((deadline_ns - now + 999999u) / 1000000u);
}

/* ------------------------------------------------------------------------------------------ */
#if MB_OS_POSIX

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path) {
  char dir[512];
  struct sockaddr_un sa;
  int rc, n;
  if ((rc = mb_os_runtime_dir(dir, sizeof dir)) != 0)
    return rc;
  n = snprintf(buf, size, "%s/membroker-%s.sock", dir, instance);
  if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof sa.sun_path)
    return mb__errorf(MB_ENAMETOOLONG, 0,
                      "socket path '%s/membroker-%s.sock' is longer than %zu bytes", dir, instance,
                      sizeof sa.sun_path - 1);
  if (is_path)
    *is_path = 1;
  return 0;
}

int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms) {
  struct sockaddr_un sa;
  size_t n = strlen(name);
  int fd, e;
  (void)timeout_ms; /* a Unix socket connect never waits for a free instance */
  memset(c, 0, sizeof *c);
  c->h = -1;
  if (n >= sizeof sa.sun_path)
    return mb__errorf(MB_ENAMETOOLONG, 0, "socket path '%s' is too long", name);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, name, n);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return mb__errorf(MB_EOS, errno, "create a socket");
  while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if ((e = errno) == EINTR)
      continue;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
      return mb__errorf(MB_ENOTRUNNING, e, "connect to '%s'", name);
    if (e == EACCES || e == EPERM)
      return mb__errorf(MB_EACCES, e, "connect to '%s'", name);
    return mb__errorf(MB_EOS, e, "connect to '%s'", name);
  }
  c->h = fd;
  return 0;
}

int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send((int)c->h, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return mb__errorf(errno == EPIPE || errno == ECONNRESET ? MB_EIO : MB_EOS, errno,
                        "write to the broker");
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n) {
  struct pollfd pfd;
  ssize_t r;
  int rc;
  pfd.fd = (int)c->h;
  pfd.events = POLLIN;
  for (;;) {
    pfd.revents = 0;
    rc = poll(&pfd, 1, mb__ms_left(deadline_ns));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      return mb__errorf(MB_EOS, errno, "wait for the broker");
    if (rc == 0)
      return mb__errorf(MB_ETIMEOUT, 0, "no answer from the broker in time");
    r = recv((int)c->h, data, size, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      if (errno == ECONNRESET) {
        *n = 0;
        return 0;
      }
      return mb__errorf(MB_EOS, errno, "read from the broker");
    }
    *n = (size_t)r;
    return 0;
  }
}

void mb__pipe_close(mb_pipe_conn_t *c) {
  if (c->h >= 0)
    close((int)c->h);
  c->h = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = c->skip = 0;
}

#endif /* MB_OS_POSIX */

/* ------------------------------------------------------------------------------------------ */
#if MB_OS_WIN

#include <windows.h>

int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path) {
  int n = snprintf(buf, size, "\\\\.\\pipe\\membroker-%s", instance);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "pipe name for instance '%s' is too long", instance);
  if (is_path)
    *is_path = 0;
  return 0;
}

int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms) {
  wchar_t wname[MB_PIPE_NAME_MAX];
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
  int grace_ms = timeout_ms < 0 ? 0 : timeout_ms < 250 ? timeout_ms : 250;
  uint64_t grace = mb_os_mono_ns() + (uint64_t)grace_ms * 1000000u;
  HANDLE h, ev;
  DWORD e, mode = PIPE_READMODE_BYTE;
  memset(c, 0, sizeof *c);
  c->h = -1;
  if (MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, MB_PIPE_NAME_MAX) == 0)
    return mb__errorf(MB_ENAMETOOLONG, (long)GetLastError(), "pipe name '%s'", name);
  for (;;) {
    /* Not GENERIC_WRITE: it includes FILE_CREATE_PIPE_INSTANCE (FILE_APPEND_DATA), which the
     * pipe's DACL grants only to the broker's user, SYSTEM and Administrators (os.h,
     * mb_os_pipe_secure). FILE_WRITE_ATTRIBUTES is for SetNamedPipeHandleState. */
    h = CreateFileW(wname, GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES, 0, NULL,
                    OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    if (h != INVALID_HANDLE_VALUE)
      break;
    e = GetLastError();
    if (e == ERROR_PIPE_BUSY && mb_os_mono_ns() < deadline) {
      WaitNamedPipeW(wname, 50);
      continue;
    }
    /* Seen under Wine with a busy server: the name is briefly missing while every instance
     * is taken. A pipe that stays missing for the grace period is not there. */
    if ((e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) && mb_os_mono_ns() < grace) {
      Sleep(10);
      continue;
    }
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
      return mb__errorf(MB_ENOTRUNNING, (long)e, "connect to '%s'", name);
    if (e == ERROR_ACCESS_DENIED)
      return mb__errorf(MB_EACCES, (long)e, "connect to '%s'", name);
    if (e == ERROR_PIPE_BUSY)
      return mb__errorf(MB_EBUSY, (long)e, "connect to '%s': every pipe instance is busy", name);
    return mb__errorf(MB_EOS, (long)e, "connect to '%s'", name);
  }
  SetNamedPipeHandleState(h, &mode, NULL, NULL);
  if ((ev = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(MB_EOS, (long)e, "create an event for '%s'", name);
  }
  c->h = (intptr_t)h;
  c->ev = (intptr_t)ev;
  return 0;
}

/* Wait for an overlapped operation; on timeout cancel it and take what it did. */
static int mb__win_finish(mb_pipe_conn_t *c, OVERLAPPED *ov, int ms, DWORD *done) {
  if (WaitForSingleObject(ov->hEvent, ms < 0 ? INFINITE : (DWORD)ms) != WAIT_OBJECT_0) {
    CancelIo((HANDLE)c->h);
    if (GetOverlappedResult((HANDLE)c->h, ov, done, TRUE) && *done > 0)
      return 0;
    return mb__errorf(MB_ETIMEOUT, 0, "no answer from the broker in time");
  }
  if (!GetOverlappedResult((HANDLE)c->h, ov, done, FALSE))
    return -1;
  return 0;
}

int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    OVERLAPPED ov;
    DWORD done = 0, chunk = len > 0x10000000 ? 0x10000000 : (DWORD)len, e;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = (HANDLE)c->ev;
    ResetEvent(ov.hEvent);
    if (!WriteFile((HANDLE)c->h, p, chunk, NULL, &ov) && GetLastError() != ERROR_IO_PENDING) {
      e = GetLastError();
      return mb__errorf(e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE ? MB_EIO : MB_EOS, (long)e,
                        "write to the broker");
    }
    if (!GetOverlappedResult((HANDLE)c->h, &ov, &done, TRUE)) {
      e = GetLastError();
      return mb__errorf(e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE ? MB_EIO : MB_EOS, (long)e,
                        "write to the broker");
    }
    p += done;
    len -= done;
  }
  return 0;
}

int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n) {
  OVERLAPPED ov;
  DWORD done = 0, e;
  int rc;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = (HANDLE)c->ev;
  ResetEvent(ov.hEvent);
  if (size > 0x10000000)
    size = 0x10000000;
  if (!ReadFile((HANDLE)c->h, data, (DWORD)size, NULL, &ov) &&
      (e = GetLastError()) != ERROR_IO_PENDING) {
    if (e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED) {
      *n = 0;
      return 0;
    }
    return mb__errorf(MB_EOS, (long)e, "read from the broker");
  }
  rc = mb__win_finish(c, &ov, mb__ms_left(deadline_ns), &done);
  if (rc == -1) {
    e = GetLastError();
    if (e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED) {
      *n = 0;
      return 0;
    }
    return mb__errorf(MB_EOS, (long)e, "read from the broker");
  }
  if (rc != 0)
    return rc;
  *n = done;
  return 0;
}

void mb__pipe_close(mb_pipe_conn_t *c) {
  if (c->h != -1)
    CloseHandle((HANDLE)c->h);
  if (c->ev)
    CloseHandle((HANDLE)c->ev);
  c->h = -1;
  c->ev = 0;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = c->skip = 0;
}

#endif /* MB_OS_WIN */
