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

#include "os.h"

#define MB_LOG_KEEP_MAX 99 /* log.keep: rotated files are .1 .. .99 */

static FILE *mb__log_fp;                      /* NULL: stderr */
static char mb__log_file[MB_CONFIG_PATH_MAX]; /* path of mb__log_fp, "" for stderr */
static uint64_t mb__log_size;                 /* bytes in the file now */
static uint64_t mb__log_max;                  /* cap (0: none) */
static unsigned mb__log_keep;                 /* rotated files kept */
static uint64_t mb__log_retry_at;             /* a failed rotation: try again at this size */
static int mb__log_pending;                   /* <file>.rotating waits to become .1 */
static int mb__log_failing;                   /* a rotation or reopen failure was reported */
static uint64_t mb__log_reopen_ns;            /* file not open: try again at this time */
static int mb__log_journal;                   /* stderr is the journal: "<N>" prefixes */
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
  int rc = mb_os_file_append(file, fp); /* never through a link: the service is privileged */
  if (rc != 0)
    return rc; /* the message names the file: "open 'PATH': ..." */
  setvbuf(*fp, NULL, _IOFBF, 8192);
  if (mb_os_file_seek_end(*fp, size) != 0)
    *size = 0;
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
  mb__log_retry_at = 0;
  mb__log_failing = 0;
  mb__log_pending = 0;
  if (file[0] != '\0' && keep > 0) { /* a rotation cut short (a crash): finish it next time */
    char tmp[MB_CONFIG_PATH_MAX + 16];
    FILE *old = NULL;
    snprintf(tmp, sizeof tmp, "%s.rotating", file);
    if (mb_os_file_open(tmp, "rb", &old) == 0) {
      fclose(old);
      mb__log_pending = 1;
    }
  }
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

  /* The folders are made safe for a service to write in first (mb_os_data_dir_prepare). */
  if ((rc = mb_os_data_dir_prepare(instance, dir, sizeof dir)) != 0)
    return rc;
  sep = strchr(dir, '\\') != NULL ? '\\' : '/';
  if (instance == NULL)
    n = snprintf(buf, size, "%s%c%s.log", dir, sep, name);
  else
    n = snprintf(buf, size, "%s%cmembroker.log", dir, sep);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "default log file path under '%s' is too long", dir);
  return 0;
}

const char *mb__log_path(void) {
  return mb__log_file;
}

void mb__log_set_journal(int on) {
  mb__log_lock();
  mb__log_journal = on != 0;
  mb__log_unlock();
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
  mb__log_retry_at = 0;
  mb__log_failing = 0;
  mb__log_pending = 0;
  mb__log_unlock();
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

/* A failed rotation is tried again once the file has grown by another max_bytes / this. */
#define MB_LOG_RETRY_DIV 8
/* A log file that could not be reopened is tried again after this long (stderr meanwhile). */
#define MB_LOG_REOPEN_NS 1000000000u

static void mb__log_put(mb_log_level_t level, const char *msg);

/*
 * Say once, in the log and to the sink (MB_EV_LOG_FAILED), that the log file misbehaves;
 * mb__log_failing keeps it from repeating until the file works again. Lock held.
 */
static void mb__log_trouble(const char *what) {
  char msg[1024];
  if (mb__log_failing)
    return;
  mb__log_failing = 1;
  if (snprintf(msg, sizeof msg, "log file '%s': %s", mb__log_file, what) >= (int)sizeof msg)
    memcpy(msg + sizeof msg - 4, "...", 4); /* a long path: say that the line was cut */
  mb__log_defang(msg);
  mb__log_put(MB_LOG_WARN, msg);
  if (mb__log_sink != NULL)
    mb__log_sink(MB_LOG_WARN, MB_EV_LOG_FAILED, msg);
}

/*
 * Move <file>.rotating (the last full file) to .1, after shifting .<i> to .<i+1> from the
 * oldest down (the one at .<keep> is dropped). The first move or removal that fails (on
 * Windows: a reader holds that file) ends it there, before any later move could replace a
 * file that did not move on: .rotating then stays for the next rotation, and nothing is
 * lost. Returns 0 or the error that ended it. Lock held.
 */
static int mb__log_settle(const char *tmp) {
  char from[MB_CONFIG_PATH_MAX + 16], to[MB_CONFIG_PATH_MAX + 16];
  const char *file = mb__log_file;
  unsigned i;
  int rc;
  snprintf(to, sizeof to, "%s.%u", file, mb__log_keep);
  if ((rc = mb_os_file_remove(to)) != 0 && rc != MB_ENOENT) /* ENOENT: not all there yet */
    return rc;
  for (i = mb__log_keep; i > 1; i--) {
    snprintf(from, sizeof from, "%s.%u", file, i - 1);
    snprintf(to, sizeof to, "%s.%u", file, i);
    if ((rc = mb_os_file_replace(from, to)) != 0 && rc != MB_ENOENT) /* ENOENT: not that many */
      return rc;
  }
  snprintf(to, sizeof to, "%s.1", file);
  if ((rc = mb_os_file_replace(tmp, to)) == 0)
    mb__log_pending = 0;
  return rc;
}

/*
 * The file is full: rotate it. The live file is renamed first, to <file>.rotating, and only
 * when that worked are the older files shifted and .rotating made .1 (mb__log_settle): a
 * rename fails on Windows while a reader (an editor, tail, an antivirus) holds the file
 * without FILE_SHARE_DELETE, and then no rotated file may be lost. With keep 0 the file is
 * removed and started afresh. When the file cannot be moved the log keeps appending to it,
 * says so once (mb__log_trouble) and tries again after another max_bytes / MB_LOG_RETRY_DIV
 * bytes, not at every line. If the new file cannot be opened, lines go to stderr until a
 * later reopen works (mb__log_line). Lock held.
 */
static void mb__log_rotate(void) {
  char tmp[MB_CONFIG_PATH_MAX + 16], why[900];
  const char *file = mb__log_file;
  int rc, moved = 0;

  why[0] = '\0';
  fclose(mb__log_fp);
  mb__log_fp = NULL;
  snprintf(tmp, sizeof tmp, "%s.rotating", file);
  if (mb__log_keep == 0) {
    if ((rc = mb_os_file_remove(file)) != 0 && rc != MB_ENOENT)
      snprintf(why, sizeof why, "%s", mb_last_error());
  } else if (mb__log_pending && mb__log_settle(tmp) != 0) {
    snprintf(why, sizeof why, "%s", mb_last_error()); /* the last file is still in the way */
  } else if (mb_os_file_replace(file, tmp) != 0) {
    snprintf(why, sizeof why, "%s", mb_last_error());
  } else {
    mb__log_pending = 1;
    moved = 1;
    if (mb__log_settle(tmp) != 0) /* the live file is moved: start the new one all the same */
      snprintf(why, sizeof why, "%s (kept as '%s')", mb_last_error(), tmp);
  }
  if (mb__log_fopen(file, &mb__log_fp, &mb__log_size) != 0) {
    mb__log_fp = NULL;
    mb__log_size = 0;
    mb__log_reopen_ns = mb_os_mono_ns() + MB_LOG_REOPEN_NS;
    snprintf(why, sizeof why, "%s; logging to stderr until it can be opened", mb_last_error());
    mb__log_trouble(why);
    return;
  }
  if (why[0] != '\0' && moved) {
    /* Moved away, but not to .1 yet: the new file starts normally. */
    char msg[1024];
    snprintf(msg, sizeof msg, "rotation: %s; tried again at the next rotation", why);
    mb__log_retry_at = 0;
    mb__log_trouble(msg);
    return;
  }
  if (why[0] != '\0') {
    char msg[1024];
    uint64_t step = mb__log_max / MB_LOG_RETRY_DIV;
    mb__log_retry_at = mb__log_size + (step > 0 ? step : 1);
    snprintf(msg, sizeof msg,
             "rotation failed: %s; appending to the file and trying again after %llu more bytes",
             why, (unsigned long long)(mb__log_retry_at - mb__log_size));
    mb__log_trouble(msg);
    return;
  }
  mb__log_retry_at = 0;
  if (mb__log_failing) {
    mb__log_failing = 0;
    mb__log_put(MB_LOG_INFO, "log file rotation works again");
  }
}

/* Write one formatted line (file or stderr); the file's size follows. Lock held. */
static void mb__log_put(mb_log_level_t level, const char *msg) {
  char line[1100];
  mb_os_tm_t tm;
  int n;

  if (mb__log_fp == NULL && mb__log_journal) {
    /* sd-daemon(3) priorities: the journal keeps its own time stamp. */
    static const int prio[] = {3, 4, 6, 7}; /* error, warn, info, debug */
    int p = (int)level >= 0 && (size_t)level < sizeof prio / sizeof prio[0] ? prio[level] : 6;
    n = snprintf(line, sizeof line, "<%d>%-5s %s\n", p, mb__log_level_name(level), msg);
  } else {
    mb_os_time_split(mb_os_wall_ns(), 0, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s\n", tm.year,
                 tm.month, tm.day, tm.hour, tm.min, tm.sec, tm.msec, mb__log_level_name(level),
                 msg);
  }
  if (n < 0)
    return;
  if ((size_t)n >= sizeof line)
    n = (int)sizeof line - 1;
  if (mb__log_fp != NULL) {
    uint64_t end;
    fwrite(line, 1, (size_t)n, mb__log_fp);
    fflush(mb__log_fp);
    if (mb_os_file_tell(mb__log_fp, &end) == 0 && end > 0) /* the bytes really in the file */
      mb__log_size = end;
    else
      mb__log_size += (uint64_t)n + 1;
  } else {
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
  }
}

/*
 * Format one line, write it (rotating a full file first, or reopening a file that could not
 * be opened at the last rotation, once its retry time has come), then hand it to the sink if
 * it routes there.
 */
static void mb__log_line(mb_event_t event, mb_log_level_t level, const char *fmt, va_list ap) {
  char msg[1024];
  /* A line's length for the cap: the stamp and level (~31 bytes), the message, and one more
   * for a text-mode stream that writes the newline as CR LF (Windows). */
  uint64_t n;

  vsnprintf(msg, sizeof msg, fmt, ap);
  mb__log_defang(msg);
  n = 32 + strlen(msg) + 1;

  mb__log_lock();
  if (mb__log_fp == NULL && mb__log_file[0] != '\0' && mb_os_mono_ns() >= mb__log_reopen_ns) {
    if (mb__log_fopen(mb__log_file, &mb__log_fp, &mb__log_size) == 0) {
      mb__log_failing = 0;
      mb__log_put(MB_LOG_INFO, "log file reopened");
    } else {
      mb__log_fp = NULL;
      mb__log_reopen_ns = mb_os_mono_ns() + MB_LOG_REOPEN_NS;
    }
  }
  if (mb__log_fp != NULL && mb__log_max != 0 && mb__log_size > 0 &&
      mb__log_size + n > mb__log_max && mb__log_size >= mb__log_retry_at)
    mb__log_rotate();
  mb__log_put(level, msg);
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

/*
 * Reopen at the same path (log.h). The new file is open before the old one closes, so a
 * failure keeps the old one; the warning goes to the file still open, and to the sink.
 */
int mb__log_reopen(void) {
  char why[1024];
  FILE *fp = NULL;
  uint64_t size = 0;
  int rc;

  mb__log_lock();
  if (mb__log_file[0] == '\0') {
    mb__log_unlock();
    return 0;
  }
  if ((rc = mb__log_fopen(mb__log_file, &fp, &size)) != 0) {
    snprintf(why, sizeof why,
             "log file '%s': cannot reopen it, still writing to the file open "
             "before: %s",
             mb__log_file, mb_last_error());
    mb__log_defang(why);
    mb__log_put(MB_LOG_WARN, why);
    if (mb__log_sink != NULL)
      mb__log_sink(MB_LOG_WARN, MB_EV_LOG_FAILED, why);
    mb__log_unlock();
    return rc;
  }
  if (mb__log_fp != NULL)
    fclose(mb__log_fp);
  mb__log_fp = fp;
  mb__log_size = size;
  mb__log_retry_at = 0;
  mb__log_failing = 0;
  mb__log_put(MB_LOG_INFO, "log file reopened");
  mb__log_unlock();
  return 0;
}
