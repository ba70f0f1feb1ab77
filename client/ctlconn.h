/*
 * ctlconn.h - the control pipe's platform bits, shared by the broker (service/ctl.c), mbctl
 * and the tests: the pipe's name for an instance, a blocking client connection with a
 * line reader, and the identity check of an accepted peer.
 *
 * One file per concern would put these in the platform layer (os.h); until then
 * ctlconn.c holds both implementations, each wrapped whole in #if MB_OS_WIN / MB_OS_POSIX.
 * Contract as in os.h: 0 or a negative MB_E* code with a detail message (mb_last_error()),
 * never prints.
 */
#ifndef MB_CTLCONN_H
#define MB_CTLCONN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_PIPE_NAME_MAX 256

/*
 * The control pipe's name for `instance`: POSIX "<runtime dir>/membroker-<instance>.sock"
 * (mb_os_runtime_dir, created if missing), Windows "\\.\pipe\membroker-<instance>".
 * *is_path (may be NULL) receives 1 when the name is a file system path (a stale socket file
 * can be removed and its mode set), 0 for a name in the pipe namespace. MB_ENAMETOOLONG if
 * the name does not fit in `size` or in the OS limit (108 bytes for a Unix socket).
 */
int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path);

/* A blocking client connection with a receive buffer for whole lines. */
typedef struct mb_pipe_conn_s {
  intptr_t h;  /* socket fd or pipe HANDLE; -1 when closed */
  intptr_t ev; /* Windows: event for overlapped I/O */
  char *buf;   /* received bytes not yet returned as lines */
  size_t len, cap;
  size_t skip; /* bytes of the line last returned, dropped at the next read */
} mb_pipe_conn_t;

/*
 * Connect to the pipe `name` (from mb__pipe_name). MB_ENOTRUNNING when nobody listens (no
 * pipe, or a socket file left by a dead broker), MB_EACCES when this user may not connect,
 * MB_EBUSY when Windows offers no free pipe instance within timeout_ms.
 */
int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms);

/* Write all `len` bytes. MB_EIO when the broker closed the connection. */
int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len);

/*
 * Read what arrives, at most `size` bytes, waiting until deadline_ns (an mb_os_mono_ns()
 * value; 0 waits forever). *n receives the byte count; 0 means the broker closed the
 * connection. MB_ETIMEOUT when nothing came in time.
 */
int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n);

/*
 * Read one line (without its "\n") into *line, a NUL-terminated buffer owned by `c` and
 * valid until the next call; *len receives its length. MB_ETIMEOUT at the deadline,
 * MB_EIO when the connection ends before a whole line, MB_ERANGE past max bytes.
 */
int mb__pipe_read_line(mb_pipe_conn_t *c, char **line, size_t *len, size_t max,
                       uint64_t deadline_ns);

/* Close the connection (safe on a closed one) and free its buffer. */
void mb__pipe_close(mb_pipe_conn_t *c);

/*
 * Whether the peer of the accepted connection `fd` (uv_fileno of a libuv pipe) is an
 * administrator: mb_os_pipe_peer_admin (os.h). POSIX: SO_PEERCRED uid is 0 or the broker's
 * effective uid; *uid receives the peer's uid. Windows: the client process's token is
 * LocalSystem, an enabled Administrators member or the broker's user; *uid is -1.
 */
int mb__pipe_peer_admin(intptr_t fd, long *uid);

#ifdef __cplusplus
}
#endif

#endif /* MB_CTLCONN_H */
