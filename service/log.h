/*
 * log.h - the broker's log: one line per event, with a level, and for the events an operator
 * must see an event ID.
 *
 * Lines go to stderr (foreground) or to a file (config log.file; in Windows service mode a
 * default file under %ProgramData%, mb__log_default_path). The format is
 * "2026-11-25T06:40:00.123Z info  <message>". A file is size-capped: a write that would take
 * it past log.max_bytes first rotates it (membroker.log -> .1 -> .2 ... -> .<log.keep>, the
 * oldest dropped). A rotation that cannot move the file (Windows: a reader holds it without
 * FILE_SHARE_DELETE) loses nothing: the log keeps appending, says so once (MB_EV_LOG_FAILED to
 * the sink) and tries again after another max_bytes / 8 bytes. A file that cannot be reopened
 * is retried every second, stderr meanwhile.
 *
 * A sink (the Windows service installs the event log) receives, besides the file, what an
 * operator's event viewer should show and nothing else:
 *   - every line logged with an explicit event ID (mb_log_event), at its level;
 *   - warnings and errors logged without one, as MB_EV_WARNING / MB_EV_ERROR;
 *   - never an info or debug line without an event ID.
 * The IDs come from service/messages.mc (the message table), through the generated X-macro
 * list MB_EVENTS in mb_events.h, so code and table cannot drift.
 */
#ifndef MB_LOG_H
#define MB_LOG_H

#include <stdint.h>

#include "config.h"
#include "mb_events.h"
#include "os_setup.h"

/* The event IDs (stable; README lists them). MB_EV_NONE: a line without an event ID. */
typedef enum {
  MB_EV_NONE = 0,
#define MB__EV_ENUM(name, id) name = id,
  MB_EVENTS(MB__EV_ENUM)
#undef MB__EV_ENUM
} mb_event_t;

/* An extra destination for log lines: level, event ID (never MB_EV_NONE), the message
 * without timestamp or newline. Called with the log's lock held: it must not log. */
typedef void (*mb_log_sink_fn)(mb_log_level_t level, mb_event_t event, const char *msg);

/* Defaults of log.max_bytes and log.keep (config.c). */
#define MB_LOG_MAX_BYTES_DEFAULT (10u * 1024 * 1024)
#define MB_LOG_KEEP_DEFAULT 5

/*
 * Open the log: level, file path ("" = stderr), size cap in bytes (0 = none) and the number
 * of rotated files to keep (0: a full file is started afresh). A file is opened for append
 * through the platform layer (UTF-8 path; created with its directory's parent existing; never
 * through a link - mb_os_file_append: a link or hard link there is refused, MB_EACCES) and
 * replaces the file open before only once it is open. Returns 0 or MB_E* with a detail message
 * naming the file. The first call must come before any other thread logs.
 */
int mb__log_open_file(mb_log_level_t level, const char *file, uint64_t max_bytes, unsigned keep);

/* mb__log_open_file without a size cap (tests, the console). */
int mb__log_open(mb_log_level_t level, const char *file);

/*
 * The default log file of a service into buf: <data dir>/<instance>/membroker.log, or
 * <data dir>/<name>.log when `instance` is NULL (a config error: the instance is not known;
 * `name` is then the service name). The folders are prepared for the service as
 * mb_os_data_dir_prepare says (created with an explicit DACL; one that another user owns or
 * that is a junction is refused, MB_EACCES, with a message saying what to do). MB_ENOTSUP
 * where the OS has no such directory (POSIX: a service logs to stderr, i.e. the journal),
 * MB_EINVAL for the instance "locks" (the lock records' folder), MB_ENAMETOOLONG, or the OS
 * error.
 */
int mb__log_default_path(char *buf, size_t size, const char *instance, const char *name);

/* The file being written ("" for stderr). */
const char *mb__log_path(void);

/*
 * Reopen the log file at its configured path (SIGHUP, run.c): after logrotate or an operator
 * moved it away, lines go to a new file there, and the moved file is left as it is. The new
 * file is opened first (as mb__log_open_file opens one: never through a link) and replaces
 * the old one only once it is open; when it cannot be opened the old file stays in use and a
 * warning says why. One info line says it was reopened. 0 (nothing to do) when the log is
 * stderr. Returns 0 or the MB_E* code of the failed open (detail message names the file).
 */
int mb__log_reopen(void);

/*
 * Lines to stderr carry an sd-daemon priority prefix instead of the timestamp when `on`
 * (stderr is the systemd journal, mb__svc_stderr_is_journal): "<3>" error, "<4>" warn,
 * "<6>" info, "<7>" debug, then the level and the message, e.g. "<6>info  ready in 3.1 ms".
 * The journal stamps each line itself and filters by the priority (journalctl -p warning).
 * A log file is never prefixed. Off by default.
 */
void mb__log_set_journal(int on);

void mb__log_set_sink(mb_log_sink_fn sink);
void mb__log_close(void);
int mb__log_enabled(mb_log_level_t level);

/* Log one line at `level`, with `event` for the sink (MB_EV_NONE: none, see above). */
void mb__log_ev(mb_event_t event, mb_log_level_t level, const char *fmt, ...) MB_PRINTF(3, 4);
void mb__log(mb_log_level_t level, const char *fmt, ...) MB_PRINTF(2, 3);

#define mb_log_event(event, level, ...) mb__log_ev((event), (level), __VA_ARGS__)
#define mb_log_error(...) mb__log(MB_LOG_ERROR, __VA_ARGS__)
#define mb_log_warn(...) mb__log(MB_LOG_WARN, __VA_ARGS__)
#define mb_log_info(...) mb__log(MB_LOG_INFO, __VA_ARGS__)
#define mb_log_debug(...) mb__log(MB_LOG_DEBUG, __VA_ARGS__)

#endif /* MB_LOG_H */
