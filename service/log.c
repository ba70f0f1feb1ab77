/*
 * log.c - the broker's log (see log.h): level filter, line format, the file with its size cap
 * and rotation, and the routing of lines to the sink (the Windows event log). Files are
 * opened, renamed and removed through the platform layer (UTF-8 paths on every OS); this
 * file never calls the OS itself.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "os.h"

#define MB_LOG_KEEP_MAX 99 /* log.keep: rotated files are .1 .. .99 */

static FILE *mb__log_fp;                      /* NULL: stderr */
static char mb__log_file[MB_CONFIG_PATH_MAX]; /* path of mb__log_fp, "" for stderr */
static uint64_t mb__log_size;                 /* bytes in the file now */
static uint64_t mb__log_max;                  /* cap (0: none) */
static unsigned mb__log_keep;                 /* rotated files kept */
static mb_log_level_t mb__log_level = MB_LOG_INFO;
static mb_log_sink_fn mb__log_sink;
static mb_os_mutex_t mb__log_mutex; /* guards everything above once mb__log_locking is set */
static int mb__log_locking;

static void mb__log_lock(void) {
  if (mb__log_locking)
    mb_os_mutex_lock(&mb__log_mutex);
}

static void mb__log_unlock(void) {
  if (mb__log_locking)
    mb_os_mutex_unlock(&mb__log_mutex);
}

/* Open `file` for append; *size receives its current length. */
static int mb__log_fopen(const char *file, FILE **fp, uint64_t *size) {
  long end;
  int rc = mb_os_file_open(file, "a", fp);
  if (rc != 0)
    return rc; /* the message names the file: "open 'PATH': ..." */
  setvbuf(*fp, NULL, _IOFBF, 8192);
  end = fseek(*fp, 0, SEEK_END) == 0 ? ftell(*fp) : -1;
  *size = end > 0 ? (uint64_t)end : 0;
  return 0;
}

int mb__log_open_file(mb_log_level_t level, const char *file, uint64_t max_bytes, unsigned keep) {
  FILE *fp = NULL;
  uint64_t size = 0;
  int rc;

  if (!mb__log_locking && mb_os_mutex_init(&mb__log_mutex) == 0)
    mb__log_locking = 1;
  if (file == NULL)
    file = "";
  if (strlen(file) >= sizeof mb__log_file)
    return mb__errorf(MB_ENAMETOOLONG, 0, "log file path is longer than %u bytes: '%.60s...'",
                      (unsigned)sizeof mb__log_file - 1, file);
  if (file[0] != '\0' && (rc = mb__log_fopen(file, &fp, &size)) != 0)
    return rc;
  mb__log_lock();
  if (mb__log_fp != NULL)
    fclose(mb__log_fp);
  mb__log_fp = fp;
  strcpy(mb__log_file, file);
  mb__log_size = size;
  mb__log_level = level;
  mb__log_max = max_bytes;
  mb__log_keep = keep > MB_LOG_KEEP_MAX ? MB_LOG_KEEP_MAX : keep;
  mb__log_unlock();
  return 0;
}

int mb__log_open(mb_log_level_t level, const char *file) {
  return mb__log_open_file(level, file, 0, 0);
}

int mb__log_default_path(char *buf, size_t size, const char *instance, const char *name) {
  char dir[MB_CONFIG_PATH_MAX];
  char sep;
  int rc, n;

  if ((rc = mb_os_data_dir(dir, sizeof dir)) != 0)
    return rc;
  sep = strchr(dir, '\\') != NULL ? '\\' : '/';
  if ((rc = mb_os_dir_create(dir)) != 0)
    return rc;
  if (instance == NULL) {
    n = snprintf(buf, size, "%s%c%s.log", dir, sep, name);
  } else {
    n = snprintf(buf, size, "%s%c%s", dir, sep, instance);
    if (n < 0 || (size_t)n >= size)
      return mb__errorf(MB_ENAMETOOLONG, 0, "log directory '%s%c%s' is too long", dir, sep,
                        instance);
    if ((rc = mb_os_dir_create(buf)) != 0)
      return rc;
    n = snprintf(buf, size, "%s%c%s%cmembroker.log", dir, sep, instance, sep);
  }
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "default log file path under '%s' is too long", dir);
  return 0;
}

const char *mb__log_path(void) {
  return mb__log_file;
}

void mb__log_set_sink(mb_log_sink_fn sink) {
  mb__log_lock();
  mb__log_sink = sink;
  mb__log_unlock();
}

void mb__log_close(void) {
  mb__log_lock();
  if (mb__log_fp != NULL)
    fclose(mb__log_fp);
  mb__log_fp = NULL;
  mb__log_file[0] = '\0';
  mb__log_size = 0;
  mb__log_unlock();
}

int mb__log_enabled(mb_log_level_t level) {
  return level <= mb__log_level;
}

/*
 * The file is full: close it, shift membroker.log.<i> to .<i+1> from the oldest down (the one
 * at .<keep> is dropped), the file itself to .1, and open a new one. With keep 0 the file is
 * removed and started afresh. If the new file cannot be opened the log falls back to stderr
 * (the sink still receives the events). Called with the lock held.
 */
static void mb__log_rotate(void) {
  char from[MB_CONFIG_PATH_MAX + 16], to[MB_CONFIG_PATH_MAX + 16];
  const char *file = mb__log_file;
  unsigned i;

  fclose(mb__log_fp);
  mb__log_fp = NULL;
  if (mb__log_keep == 0) {
    (void)mb_os_file_remove(file);
  } else {
    snprintf(to, sizeof to, "%s.%u", file, mb__log_keep);
    (void)mb_os_file_remove(to); /* MB_ENOENT until the files are all there */
    for (i = mb__log_keep; i > 1; i--) {
      snprintf(from, sizeof from, "%s.%u", file, i - 1);
      snprintf(to, sizeof to, "%s.%u", file, i);
      (void)mb_os_file_replace(from, to); /* MB_ENOENT: not that many yet */
    }
    snprintf(to, sizeof to, "%s.1", file);
    if (mb_os_file_replace(file, to) != 0)
      fprintf(stderr, "membroker: log rotation: %s\n", mb_last_error());
  }
  if (mb__log_fopen(file, &mb__log_fp, &mb__log_size) != 0) {
    fprintf(stderr, "membroker: %s; logging to stderr\n", mb_last_error());
    mb__log_fp = NULL;
    mb__log_file[0] = '\0';
    mb__log_size = 0;
  }
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

/* Format and write one line (file or stderr), then hand it to the sink if it routes there. */
static void mb__log_line(mb_event_t event, mb_log_level_t level, const char *fmt, va_list ap) {
  char msg[1024], stamp[32], line[1100];
  uint64_t ns = mb_os_wall_ns();
  time_t secs = (time_t)(ns / 1000000000u);
  struct tm tm;
  int n;

  vsnprintf(msg, sizeof msg, fmt, ap);
  mb__log_defang(msg);
#if MB_OS_WIN
  gmtime_s(&tm, &secs);
#else
  gmtime_r(&secs, &tm);
#endif
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  n = snprintf(line, sizeof line, "%s.%03uZ %-5s %s\n", stamp, (unsigned)(ns / 1000000u % 1000u),
               mb__log_level_name(level), msg);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof line)
    n = (int)sizeof line - 1;

  mb__log_lock();
  /* n + 1: a text-mode stream may write the newline as two bytes (CR LF on Windows). */
  if (mb__log_fp != NULL && mb__log_max != 0 && mb__log_size > 0 &&
      mb__log_size + (uint64_t)n + 1 > mb__log_max)
    mb__log_rotate();
  if (mb__log_fp != NULL) {
    long end;
    fwrite(line, 1, (size_t)n, mb__log_fp);
    fflush(mb__log_fp);
    end = ftell(mb__log_fp); /* the bytes really in the file */
    mb__log_size = end > 0 ? (uint64_t)end : mb__log_size + (uint64_t)n + 1;
  } else {
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
  }
  /* The sink: explicit events at any level; otherwise warnings and errors only. */
  if (mb__log_sink != NULL) {
    if (event == MB_EV_NONE && level == MB_LOG_ERROR)
      event = MB_EV_ERROR;
    else if (event == MB_EV_NONE && level == MB_LOG_WARN)
      event = MB_EV_WARNING;
    if (event != MB_EV_NONE)
      mb__log_sink(level, event, msg);
  }
  mb__log_unlock();
}

void mb__log_ev(mb_event_t event, mb_log_level_t level, const char *fmt, ...) {
  va_list ap;
  if (!mb__log_enabled(level))
    return;
  va_start(ap, fmt);
  mb__log_line(event, level, fmt, ap);
  va_end(ap);
}

void mb__log(mb_log_level_t level, const char *fmt, ...) {
  va_list ap;
  if (!mb__log_enabled(level))
    return;
  va_start(ap, fmt);
  mb__log_line(MB_EV_NONE, level, fmt, ap);
  va_end(ap);
}
