/*
 * error.h - the project's error codes.
 *
 * Every function that can fail returns 0 or a negative MB_E* code. One X-macro list
 * generates the enum, mb_strerror() (a sentence) and mb_err_name() (a stable snake_case
 * name, also used as the "code" string of JSON errors). Codes are only ever appended, so
 * their numbers are stable across versions.
 *
 * Besides the code, the failing call leaves a detail message for the calling thread
 * (mb_last_error()): what was being done, with which name, and the raw OS error. Libraries
 * never print it; the service logs it and the CLI shows it.
 */
#ifndef MB_ERROR_H
#define MB_ERROR_H

#include "os_setup.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, "code_name", "sentence") */
#define MB_ERROR_MAP(X)                                                                            \
  X(INVAL, "invalid_argument", "invalid argument")                                                 \
  X(NOMEM, "out_of_memory", "out of memory")                                                       \
  X(NOENT, "not_found", "no such object")                                                          \
  X(EXIST, "already_exists", "object already exists")                                              \
  X(ACCES, "access_denied", "access denied")                                                       \
  X(NAMETOOLONG, "name_too_long", "name too long")                                                 \
  X(RANGE, "out_of_range", "address or size out of range")                                         \
  X(NOSPC, "no_space", "commit refused: commit limit reached or shared memory full")               \
  X(BUSY, "busy", "resource busy")                                                                 \
  X(TIMEOUT, "timeout", "timed out")                                                               \
  X(SRCH, "no_such_process", "no such process")                                                    \
  X(IO, "io_error", "input/output error")                                                          \
  X(NOTSUP, "not_supported", "operation not supported on this platform")                           \
  X(BADMAGIC, "bad_magic", "not a membroker object (bad magic)")                                   \
  X(VERSION, "version_mismatch", "layout version mismatch")                                        \
  X(NOTRUNNING, "broker_not_running", "broker is not running")                                     \
  X(FULL, "table_full", "table full")                                                              \
  X(CONFIG, "bad_config", "invalid configuration")                                                 \
  X(OS, "os_error", "operating system error")                                                      \
  X(INTERNAL, "internal", "internal error")

enum mb__error_index {
#define MB__X(name, code, msg) MB__EIDX_##name,
  MB_ERROR_MAP(MB__X)
#undef MB__X
      MB__EIDX_COUNT
};

/* Success is plain 0 (no MB_OK: <windows.h> has a macro of that name). */
enum mb_error {
#define MB__X(name, code, msg) MB_E##name = -(MB__EIDX_##name + 1),
  MB_ERROR_MAP(MB__X)
#undef MB__X
};

/* A sentence describing err (0 gives "success"; an unknown code gives "unknown error"). */
const char *mb_strerror(int err);

/* The stable snake_case name of err ("ok", "not_found", ...; "unknown" if not a code). */
const char *mb_err_name(int err);

/*
 * The detail message of the last failure on this thread, e.g.
 * "create section 'membroker.default.state': already exists (os error 183)". Empty if none.
 * Valid until the next failing call on the same thread.
 */
const char *mb_last_error(void);

/* The raw OS error (errno or GetLastError) of the last failure on this thread, or 0. */
long mb_last_os_error(void);

/*
 * Internal: record a failure for this thread and return err, so a failing path reads
 * `return mb__errorf(MB_ENOENT, errno, "open section '%s'", name);`. The message gets
 * ": <strerror(err)>" and, when os_code != 0, " (os error N)" appended.
 */
int mb__errorf(int err, long os_code, const char *fmt, ...) MB_PRINTF(3, 4);

/* Internal: forget the last failure of this thread. */
void mb__error_clear(void);

#ifdef __cplusplus
}
#endif

#endif /* MB_ERROR_H */
