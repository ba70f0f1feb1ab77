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

/* MB_ERROR_MAP, enum mb_error, mb_strerror, mb_err_name and mb_last_error: one list, in the
 * public client header, since the codes are part of the client API. */
#include "membroker.h"
#include "os_setup.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mb_last_error (membroker.h): the detail message of the last failure on this thread, e.g.
 * "create section 'membroker.default.state': already exists (os error 183)"; valid until the
 * next failing call on the same thread. */

/* The raw OS error (errno or GetLastError) of the last failure on this thread, or 0. */
long mb_last_os_error(void);

/*
 * Internal: record a failure for this thread and return err, so a failing path reads
 * `return mb__errorf(MB_ENOENT, errno, "open section '%s'", name);`. The message gets
 * ": <strerror(err)>" and, when os_code != 0, " (os error N)" appended.
 */
int mb__errorf(int err, long os_code, const char *fmt, ...) MB_PRINTF(3, 4);

/*
 * Internal: as mb__errorf without an OS code, but the message ends in ": <tail>" instead of
 * the code's sentence, for a code whose sentence would mislead the reader: a GMAP or saved-
 * state file of another format version is MB_EVERSION ("layout version mismatch", the
 * shared memory's), a file whose checksum does not match is MB_EIO ("input/output error").
 * The code (and its name, e.g. "version_mismatch") is unchanged. `tail` is a string constant
 * (it is kept: mb__error_tail).
 */
int mb__errorf_as(int err, const char *tail, const char *fmt, ...) MB_PRINTF(3, 4);

/* Internal: the ending of this thread's last message: the tail given to mb__errorf_as, or,
 * after mb__errorf, mb_strerror(err). For code that takes the message apart and puts it
 * together again (service/maps.c). */
const char *mb__error_tail(int err);

/* Internal: forget the last failure of this thread. */
void mb__error_clear(void);

#ifdef __cplusplus
}
#endif

#endif /* MB_ERROR_H */
