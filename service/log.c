/*
 * log.c - the broker's log (see log.h).
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "os.h"

static FILE *mb__log_fp;
static mb_log_level_t mb__log_level = MB_LOG_INFO;
static mb_log_sink_fn mb__log_sink;

int mb__log_open(mb_log_level_t level, const char *file) {
  mb__log_level = level;
  if (file != NULL && file[0] != '\0') {
    FILE *fp = fopen(file, "a");
    if (fp == NULL)
      return mb__errorf(MB_EIO, errno, "open log file '%s'", file);
    setvbuf(fp, NULL, _IOLBF, 4096);
    mb__log_close();
    mb__log_fp = fp;
  }
  return 0;
}

void mb__log_set_sink(mb_log_sink_fn sink) {
  mb__log_sink = sink;
}

void mb__log_close(void) {
  if (mb__log_fp != NULL)
    fclose(mb__log_fp);
  mb__log_fp = NULL;
}

int mb__log_enabled(mb_log_level_t level) {
  return level <= mb__log_level;
}

/*
 * One event, one line: control characters that reach a message (a status message or client
 * name with a newline, say) would forge lines of their own. Each becomes '?', in place, so
 * the line keeps its length and never grows past the buffer.
 */
static void mb__log_defang(char *msg) {
  for (; *msg; msg++)
    if ((unsigned char)*msg < 0x20 || *msg == 0x7f)
      *msg = '?';
}

void mb__log(mb_log_level_t level, const char *fmt, ...) {
  char msg[1024], stamp[32];
  uint64_t ns = mb_os_wall_ns();
  time_t secs = (time_t)(ns / 1000000000u);
  struct tm tm;
  va_list ap;
  FILE *fp = mb__log_fp ? mb__log_fp : stderr;

  if (!mb__log_enabled(level))
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  mb__log_defang(msg);
#if MB_OS_WIN
  gmtime_s(&tm, &secs);
#else
  gmtime_r(&secs, &tm);
#endif
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(fp, "%s.%03uZ %-5s %s\n", stamp, (unsigned)(ns / 1000000u % 1000u),
          mb__log_level_name(level), msg);
  fflush(fp);
  if (mb__log_sink)
    mb__log_sink(level, msg);
}
