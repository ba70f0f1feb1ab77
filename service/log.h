/*
 * log.h - the broker's log: one line per event, with a level.
 *
 * Lines go to stderr (foreground) or to a file (config log.file), and, when a sink is
 * installed (the Windows service installs the event log), to that sink as well. The format
 * is "2026-11-25T06:40:00.123Z info  <message>".
 */
#ifndef MB_LOG_H
#define MB_LOG_H

#include "config.h"
#include "os_setup.h"

/* An extra destination for log lines (level, message without timestamp or newline). */
typedef void (*mb_log_sink_fn)(mb_log_level_t level, const char *msg);

/* Open the log: level, file path ("" = stderr). Returns 0 or MB_EIO with a detail message. */
int mb__log_open(mb_log_level_t level, const char *file);
void mb__log_set_sink(mb_log_sink_fn sink);
void mb__log_close(void);
int mb__log_enabled(mb_log_level_t level);

void mb__log(mb_log_level_t level, const char *fmt, ...) MB_PRINTF(2, 3);

#define mb_log_error(...) mb__log(MB_LOG_ERROR, __VA_ARGS__)
#define mb_log_warn(...) mb__log(MB_LOG_WARN, __VA_ARGS__)
#define mb_log_info(...) mb__log(MB_LOG_INFO, __VA_ARGS__)
#define mb_log_debug(...) mb__log(MB_LOG_DEBUG, __VA_ARGS__)

#endif /* MB_LOG_H */
