/*
 * test-svclog.c - what the service says: the log's routing to the event sink, the log file's
 * size cap and rotation, the event log's message table in membroker.exe, and, under the
 * Windows SCM (Wine's here), config and start errors reported as STOPPED with a
 * service-specific exit code and written to the default log file under %ProgramData%.
 *
 * Tests that have no meaning on one OS are reported as skipped there, with the reason.
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _POSIX_C_SOURCE 200809L
#endif

#include "task.h"

#include "scm.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "fixture.h"
#include "log.h"
#include "svc.h"

#if MB_OS_POSIX
#include <unistd.h>
#define link_file(target, name) link((target), (name))
#define symlink_file(target, name) symlink((target), (name))
#endif

#if MB_OS_WIN
#include <wchar.h>
#include <windows.h>

#include <shlobj.h>
#endif

#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif

#define START_TIMEOUT_MS 60000 /* the first service start under Wine also starts its SCM */

static unsigned self_pid(void) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  return (unsigned)self.pid;
}

/* ---- the sink: what reaches the event log --------------------------------------------------- */

typedef struct got_s {
  mb_log_level_t level;
  mb_event_t event;
  char msg[128];
} got_t;

static got_t got[16];
static int ngot;

static void record_sink(mb_log_level_t level, mb_event_t event, const char *msg) {
  if (ngot < (int)(sizeof got / sizeof got[0])) {
    got[ngot].level = level;
    got[ngot].event = event;
    snprintf(got[ngot].msg, sizeof got[ngot].msg, "%s", msg);
  }
  ngot++;
}

/*
 * The sink (the event log in service mode) gets explicit events at their level, warnings and
 * errors as MB_EV_WARNING / MB_EV_ERROR, and never an info or debug line without an event;
 * the file gets every line the level lets through.
 */
TEST(sink_routing) {
  char dir[512], path[600];
  temp_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%smbt.%u.route.log", dir, self_pid());
  (void)mb_os_file_remove(path);
  ASSERT_OK(mb__log_open(MB_LOG_DEBUG, path));
  ngot = 0;
  mb__log_set_sink(record_sink);

  mb_log_debug("debug chatter %d", 1);
  mb_log_info("info chatter %d", 2);
  ASSERT_EQ(ngot, 0);
  mb_log_warn("a warning %d", 3);
  mb_log_error("an error %d", 4);
  mb_log_event(MB_EV_STARTED, MB_LOG_INFO, "started %d", 5);
  mb_log_event(MB_EV_CLIENT_DIED, MB_LOG_WARN, "client died %d", 6);
  mb_log_event(MB_EV_CONFIG_ERROR, MB_LOG_ERROR, "bad config %d", 7);
  ASSERT_EQ(ngot, 5);
  ASSERT_EQ(got[0].event, MB_EV_WARNING);
  ASSERT_EQ(got[0].level, MB_LOG_WARN);
  ASSERT_STR_EQ(got[0].msg, "a warning 3");
  ASSERT_EQ(got[1].event, MB_EV_ERROR);
  ASSERT_EQ(got[1].level, MB_LOG_ERROR);
  ASSERT_EQ(got[2].event, MB_EV_STARTED);
  ASSERT_EQ(got[2].level, MB_LOG_INFO);
  ASSERT_STR_EQ(got[2].msg, "started 5");
  ASSERT_EQ(got[3].event, MB_EV_CLIENT_DIED);
  ASSERT_EQ(got[4].event, MB_EV_CONFIG_ERROR);

  /* Below the log level: neither the file nor the sink. */
  ASSERT_OK(mb__log_open(MB_LOG_ERROR, path));
  mb_log_warn("filtered warning");
  mb_log_event(MB_EV_STOPPED, MB_LOG_INFO, "filtered event");
  ASSERT_EQ(ngot, 5);
  mb__log_set_sink(NULL);
  mb__log_close();

  ASSERT(file_contains(path, "debug chatter 1"));
  ASSERT(file_contains(path, "info  info chatter 2"));
  ASSERT(file_contains(path, "warn  a warning 3"));
  ASSERT(file_contains(path, "started 5"));
  ASSERT(!file_contains(path, "filtered"));
  ASSERT_OK(mb_os_file_remove(path));
}

/* The event IDs are the stable numbers of messages.mc (README's table). */
TEST(event_ids) {
  ASSERT_EQ(MB_EV_STARTED, 1000);
  ASSERT_EQ(MB_EV_STOPPED, 1001);
  ASSERT_EQ(MB_EV_CONFIG_ERROR, 1002);
  ASSERT_EQ(MB_EV_START_FAILED, 1003);
  ASSERT_EQ(MB_EV_LOG_FAILED, 1004);
  ASSERT_EQ(MB_EV_CLIENT_DIED, 1100);
  ASSERT_EQ(MB_EV_CLIENT_RECLAIMED, 1101);
  ASSERT_EQ(MB_EV_CLIENT_HUNG, 1102);
  ASSERT_EQ(MB_EV_POOL_EXHAUSTED, 1200);
  ASSERT_EQ(MB_EV_COMMIT_REFUSED, 1201);
  ASSERT_EQ(MB_EV_PERSIST_FAILED, 1300);
  ASSERT_EQ(MB_EV_WARNING, 1900);
  ASSERT_EQ(MB_EV_ERROR, 1901);
}

/*
 * The broker reports rising failure counters of its regions and pools as events, with the
 * names from its own config: the first rise at once, later ones rate-limited, a counter that
 * goes down (reset or forged in shared memory) silently taken as the new base.
 */
TEST(broker_counter_events) {
  mb_config_t cfg;
  static mb_broker_t b;

  fx_config_pid(&cfg, "t", "ev");
  fx_region_drop(&cfg, "world");
  fx_pool(&cfg, "bullets", 64, 16, 4);
  mb__log_open(MB_LOG_WARN, ""); /* the events are warnings: below it they would be filtered */
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ngot = 0;
  mb__log_set_sink(record_sink);

  mb__broker_tick(&b); /* the first tick takes the counters as they are */
  ASSERT_EQ(ngot, 0);
  mb_add64(&b.pools[0].desc->misses, 3); /* what a client's refused allocations do */
  mb_add64(&b.regions[0].desc->commit_failures, 1);
  mb__broker_tick(&b);
  ASSERT_EQ(ngot, 2);
  ASSERT_EQ(got[0].event, MB_EV_COMMIT_REFUSED);
  ASSERT_EQ(got[0].level, MB_LOG_WARN);
  ASSERT_CONTAINS(got[0].msg, "region 'players': 1 page commit refused");
  ASSERT_EQ(got[1].event, MB_EV_POOL_EXHAUSTED);
  ASSERT_CONTAINS(got[1].msg, "pool 'bullets' is exhausted: 3 allocations refused");
  /* Within the minute: counted, not reported again. */
  mb_add64(&b.pools[0].desc->misses, 2);
  mb__broker_tick(&b);
  ASSERT_EQ(ngot, 2);
  /* A counter that goes down is a new base, not an event. */
  mb_store64(&b.regions[0].desc->commit_failures, 0);
  mb__broker_tick(&b);
  ASSERT_EQ(ngot, 2);

  mb__log_set_sink(NULL);
  mb__broker_begin_stop(&b);
  mb__broker_stop(&b);
}

/* ---- rotation ---------------------------------------------------------------------------------
 */

/* Size of the file at path, or -1 if there is none. */
static long file_size(const char *path) {
  FILE *fp = fopen(path, "rb");
  long n;
  if (fp == NULL)
    return -1;
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  fclose(fp);
  return n;
}

/* The numbers N of the "line N " lines in the file at path, appended to nums[*n]. */
static void read_lines(const char *path, int *nums, int *n, int max) {
  char line[256];
  FILE *fp = fopen(path, "r");
  ASSERT(fp != NULL);
  while (fgets(line, sizeof line, fp)) {
    const char *p = strstr(line, "line ");
    ASSERT(p != NULL);
    ASSERT(*n < max);
    nums[(*n)++] = atoi(p + 5);
  }
  fclose(fp);
}

/*
 * log.max_bytes 4 KiB and log.keep 3 (from a config, as the service takes them): writing
 * ~20 KiB rotates membroker.log into .1, .2, .3 and drops older files; no file passes the
 * cap, and the files from .3 to the current one hold the last lines in order, none lost
 * between them.
 */
TEST(rotation) {
  static const char text[] = "{\"log\": {\"max_bytes\": \"4KiB\", \"keep\": 3}}";
  char dir[512], base[600], name[620];
  int nums[400], n = 0, i, k;
  mb_config_t cfg;

  ASSERT_OK(mb__config_parse(&cfg, text, sizeof text - 1, "rotation.json"));
  ASSERT_EQ(cfg.log_max_bytes, 4096);
  ASSERT_EQ(cfg.log_keep, 3);
  temp_dir(dir, sizeof dir);
  snprintf(base, sizeof base, "%smbt.%u.rot.log", dir, self_pid());
  for (k = 0; k <= 5; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    (void)mb_os_file_remove(name);
  }
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, cfg.log_max_bytes, cfg.log_keep));
  for (i = 0; i < 200; i++) /* ~100 bytes a line */
    mb_log_info("line %d %s", i,
                "................................................................");
  mb__log_close();

  for (k = 0; k <= 3; k++) {
    long size;
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    size = file_size(name);
    ASSERT_GT(size, 0);
    ASSERT_LE(size, 4096);
  }
  snprintf(name, sizeof name, "%s.4", base);
  ASSERT_EQ(file_size(name), -1);

  for (k = 3; k >= 0; k--) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    read_lines(name, nums, &n, 400);
  }
  ASSERT_EQ(nums[n - 1], 199);
  for (i = 1; i < n; i++)
    ASSERT_EQ(nums[i], nums[i - 1] + 1);
  /* .3 is full too: it holds a whole file's worth, so ~4 files of ~40 lines. */
  ASSERT_GT(n, 120);

  for (k = 0; k <= 3; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    ASSERT_OK(mb_os_file_remove(name));
  }
}

/* log.keep 0: a full file is started afresh; no rotated files. */
TEST(rotation_keep_0) {
  char dir[512], base[600], name[620];
  int i;
  temp_dir(dir, sizeof dir);
  snprintf(base, sizeof base, "%smbt.%u.rot0.log", dir, self_pid());
  (void)mb_os_file_remove(base);
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, 4096, 0));
  for (i = 0; i < 100; i++)
    mb_log_info("line %d %s", i,
                "................................................................");
  mb__log_close();
  ASSERT_GT(file_size(base), 0);
  ASSERT_LE(file_size(base), 4096);
  ASSERT(file_contains(base, "line 99 "));
  ASSERT(!file_contains(base, "line 0 "));
  snprintf(name, sizeof name, "%s.1", base);
  ASSERT_EQ(file_size(name), -1);
  ASSERT_OK(mb_os_file_remove(base));
}

/* The "line N" numbers of the file at path, appended to nums[*n]; the lines the log writes
 * about itself (a rotation that failed, and works again) are passed over. */
static void read_nums(const char *path, int *nums, int *n, int max) {
  char line[1200];
  FILE *fp = fopen(path, "r");
  ASSERT(fp != NULL);
  while (fgets(line, sizeof line, fp)) {
    const char *p = strstr(line, " info  line ");
    if (p == NULL)
      continue;
    ASSERT(*n < max);
    nums[(*n)++] = atoi(p + 12);
  }
  fclose(fp);
}

/* How a test stops the log file from being renamed (on = 1) and lets it go (on = 0). */
typedef void (*blocker_fn)(const char *base, int on);

/* A rotation that cannot rename the file (hook or reader), then can again. */
static void rotation_blocked(const char *tag, blocker_fn block, int hooked) {
  char dir[512], base[600], name[620];
  int nums[400], n = 0, before1[100], n1 = 0, before2[100], n2 = 0, i, k, failed, attempts;
  long grown;

  temp_dir(dir, sizeof dir);
  snprintf(base, sizeof base, "%smbt.%u.%s.log", dir, self_pid(), tag);
  for (k = 0; k <= 3; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    (void)mb_os_file_remove(name);
  }
  snprintf(name, sizeof name, "%s.rotating", base);
  (void)mb_os_file_remove(name);
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, 2000, 2));
  ngot = 0;
  mb__log_set_sink(record_sink);
  for (i = 0; i < 60; i++) /* ~100 bytes a line: base, .1 and .2 are there and full */
    mb_log_info("line %d %s", i, "..............................................................");
  snprintf(name, sizeof name, "%s.1", base);
  read_nums(name, before1, &n1, 100);
  snprintf(name, sizeof name, "%s.2", base);
  read_nums(name, before2, &n2, 100);
  ASSERT_GT(n1, 10);
  ASSERT_GT(n2, 10);

  block(base, 1);
  for (; i < 160; i++) /* five times the cap */
    mb_log_info("line %d %s", i, "..............................................................");
  attempts = hooked ? 1000 - mb_os_inject_rename_failures(0) : -1;
  /* Nothing rotated away: .1 and .2 are as they were, the file grew past its cap. */
  n = 0;
  snprintf(name, sizeof name, "%s.1", base);
  read_nums(name, nums, &n, 400);
  ASSERT_EQ(n, n1);
  ASSERT_EQ(nums[0], before1[0]);
  n = 0;
  snprintf(name, sizeof name, "%s.2", base);
  read_nums(name, nums, &n, 400);
  ASSERT_EQ(n, n2);
  ASSERT_EQ(nums[0], before2[0]);
  grown = file_size(base);
  ASSERT_GT(grown, 4 * 2000);
  ASSERT(file_contains(base, "rotation failed"));
  /* Said once, to the sink as MB_EV_LOG_FAILED. */
  for (failed = 0, k = 0; k < ngot && k < 16; k++)
    failed += got[k].event == MB_EV_LOG_FAILED;
  ASSERT_EQ(failed, 1);
  /* Tried again now and then (every max_bytes / 8 bytes), not at every line. */
  if (hooked) {
    ASSERT_GE(attempts, 2);
    ASSERT_LT(attempts, 50);
  }

  block(base, 0);
  for (k = 0; k < 10 && file_size(base) >= grown; k++, i++)
    mb_log_info("line %d %s", i, "..............................................................");
  mb__log_set_sink(NULL);
  mb__log_close();
  ASSERT_LT(file_size(base), 2000); /* rotated at last */
  ASSERT(file_contains(base, "rotation works again"));
  /* The big file is .1 whole, the old .1 is .2; every line from there on is kept, in order. */
  n = 0;
  for (k = 2; k >= 0; k--) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    read_nums(name, nums, &n, 400);
  }
  ASSERT_EQ(nums[0], before1[0]);
  ASSERT_EQ(nums[n - 1], i - 1);
  for (k = 1; k < n; k++)
    ASSERT_EQ(nums[k], nums[k - 1] + 1);
  snprintf(name, sizeof name, "%s.rotating", base);
  ASSERT_EQ(file_size(name), -1);
  for (k = 0; k <= 2; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    ASSERT_OK(mb_os_file_remove(name));
  }
}

static void block_by_hook(const char *base, int on) {
  (void)base;
  mb_os_inject_rename_failures(on ? 1000 : 0);
}

/*
 * The file cannot be renamed (injected: every rename fails as one does on Windows while a
 * reader holds the file without FILE_SHARE_DELETE): no rotated file is lost, the file keeps
 * growing past its cap, the failure is reported once, rotation is tried again only now and
 * then, and succeeds once renames work again.
 */
TEST(rotation_blocked) {
  rotation_blocked("rotb", block_by_hook, 1);
}

#if MB_OS_WIN
static HANDLE reader = INVALID_HANDLE_VALUE;

static void block_by_reader(const char *base, int on) {
  wchar_t w[600];
  if (!on) {
    CloseHandle(reader);
    reader = INVALID_HANDLE_VALUE;
    return;
  }
  MultiByteToWideChar(CP_UTF8, 0, base, -1, w, 600);
  reader = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                       FILE_ATTRIBUTE_NORMAL, NULL);
  ASSERT(reader != INVALID_HANDLE_VALUE);
}
#endif

/* The same with a real reader (Windows): a handle on the file without FILE_SHARE_DELETE, as
 * tail, an editor or an antivirus scanner holds it. */
TEST(rotation_blocked_reader) {
#if MB_OS_WIN
  rotation_blocked("rotr", block_by_reader, 0);
#else
  SKIP("POSIX renames a file that readers hold open (the hook case is rotation_blocked)");
#endif
}

/*
 * A reader holds an older rotated file (.1) without FILE_SHARE_DELETE (Windows): the live file
 * is moved aside (.rotating) and a new one started, but .1 cannot move on, so nothing moves
 * onto it: .rotating waits, the failure is reported once, and once the reader lets go the
 * files move on in order, no line lost between the files kept.
 */
TEST(rotation_blocked_old_file) {
#if MB_OS_WIN
  char dir[512], base[600], name[620];
  int nums[400], n = 0, before1[100], n1 = 0, i, k, failed;
  wchar_t w[620];
  HANDLE held;

  temp_dir(dir, sizeof dir);
  snprintf(base, sizeof base, "%smbt.%u.rotold.log", dir, self_pid());
  for (k = 0; k <= 3; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    (void)mb_os_file_remove(name);
  }
  snprintf(name, sizeof name, "%s.rotating", base);
  (void)mb_os_file_remove(name);
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, 2000, 2));
  ngot = 0;
  mb__log_set_sink(record_sink);
  for (i = 0; i < 60; i++)
    mb_log_info("line %d %s", i, "..............................................................");
  snprintf(name, sizeof name, "%s.1", base);
  read_nums(name, before1, &n1, 100);
  ASSERT_GT(n1, 10);
  MultiByteToWideChar(CP_UTF8, 0, name, -1, w, 620);
  held = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                     FILE_ATTRIBUTE_NORMAL, NULL);
  ASSERT(held != INVALID_HANDLE_VALUE);
  for (; i < 160; i++)
    mb_log_info("line %d %s", i, "..............................................................");
  n = 0;
  read_nums(name, nums, &n, 400); /* .1 as it was */
  ASSERT_EQ(n, n1);
  ASSERT_EQ(nums[0], before1[0]);
  snprintf(name, sizeof name, "%s.rotating", base);
  ASSERT_GT(file_size(name), 0);
  for (failed = 0, k = 0; k < ngot && k < 16; k++)
    failed += got[k].event == MB_EV_LOG_FAILED;
  ASSERT_EQ(failed, 1);
  CloseHandle(held);
  for (k = 0; k < 40 && file_size(name) > 0; k++, i++)
    mb_log_info("line %d %s", i, "..............................................................");
  mb__log_set_sink(NULL);
  mb__log_close();
  ASSERT_EQ(file_size(name), -1); /* .rotating went on to .1 */
  n = 0;
  for (k = 2; k >= 0; k--) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    read_nums(name, nums, &n, 400);
  }
  ASSERT_EQ(nums[n - 1], i - 1);
  ASSERT_GT(n, 100); /* the big file and the one before it */
  for (k = 1; k < n; k++)
    ASSERT_EQ(nums[k], nums[k - 1] + 1);
  for (k = 0; k <= 2; k++) {
    snprintf(name, sizeof name, k ? "%s.%d" : "%s", base, k);
    ASSERT_OK(mb_os_file_remove(name));
  }
#else
  SKIP("POSIX renames files that readers hold open (the hook case is rotation_blocked)");
#endif
}

/*
 * The file cannot be reopened after a rotation (its folder is gone): lines go to stderr, the
 * failure is reported once (MB_EV_LOG_FAILED), and the log opens its file again by itself
 * once it can - it does not stay on stderr for good.
 */
TEST(log_reopens_later) {
#if MB_OS_POSIX
  char dir[512], sub[600], base[700], name[720];
  int i, failed, k;
  temp_dir(dir, sizeof dir);
  snprintf(sub, sizeof sub, "%smbt.%u.reopen", dir, self_pid());
  snprintf(base, sizeof base, "%s/membroker.log", sub);
  (void)mb_os_dir_create(sub);
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, 2000, 1));
  ngot = 0;
  mb__log_set_sink(record_sink);
  mb_log_info("line 0 first");
  /* The folder goes away under the open file (POSIX lets it: the file is unlinked first). */
  ASSERT_OK(mb_os_file_remove(base));
  ASSERT_OK(mb_os_dir_remove(sub));
  for (i = 1; i < 40; i++) /* past the cap: a rotation, whose reopen fails */
    mb_log_info("line %d %s", i, "..............................................................");
  for (failed = 0, k = 0; k < ngot && k < 16; k++)
    failed += got[k].event == MB_EV_LOG_FAILED;
  ASSERT_EQ(failed, 1);
  ASSERT_STR_EQ(mb__log_path(), base); /* still the file it wants */
  ASSERT_OK(mb_os_dir_create(sub));
  /* Retried after a while (a second), at a line: poll with a line every 50 ms. */
  {
    uint64_t deadline = mb_os_mono_ns() + 30000000000u;
    while (file_size(base) <= 0) {
      if (mb_os_mono_ns() > deadline)
        FAIL("the log did not reopen '%s' within 30 s", base);
      mb_os_sleep_ms(50);
      mb_log_info("line %d again", i++);
    }
  }
  mb__log_set_sink(NULL);
  mb__log_close();
  ASSERT(file_contains(base, "log file reopened"));
  ASSERT(file_contains(base, " again"));
  snprintf(name, sizeof name, "%s.1", base);
  (void)mb_os_file_remove(name);
  ASSERT_OK(mb_os_file_remove(base));
  ASSERT_OK(mb_os_dir_remove(sub));
#else
  SKIP("Windows does not remove a folder whose file a process holds open (POSIX covers this)");
#endif
}

/* Make `name` another name of the file `target` (a hard link); 1 if done. */
static int hard_link(const char *target, const char *name) {
#if MB_OS_WIN
  wchar_t wt[600], wl[600];
  MultiByteToWideChar(CP_UTF8, 0, target, -1, wt, 600);
  MultiByteToWideChar(CP_UTF8, 0, name, -1, wl, 600);
  return CreateHardLinkW(wl, wt, NULL) != 0;
#else
  return link_file(target, name) == 0;
#endif
}

/*
 * A log file that is another name of some other file (a hard link someone planted where the
 * privileged service will append) or (POSIX) a symbolic link is refused, naming it, and the
 * other file is left untouched.
 */
TEST(log_refuses_link) {
  char dir[512], victim[600], base[600], text[64] = "";
  FILE *fp;

  temp_dir(dir, sizeof dir);
  snprintf(victim, sizeof victim, "%smbt.%u.victim", dir, self_pid());
  snprintf(base, sizeof base, "%smbt.%u.linked.log", dir, self_pid());
  (void)mb_os_file_remove(base);
  fp = fopen(victim, "wb");
  ASSERT(fp != NULL);
  fputs("precious\n", fp);
  fclose(fp);
  if (!hard_link(victim, base)) {
    (void)mb_os_file_remove(victim);
    SKIP("no hard link can be made in the temp directory here");
  }
  ASSERT_ERR(mb__log_open_file(MB_LOG_INFO, base, 0, 0), MB_EACCES);
  ASSERT_CONTAINS(mb_last_error(), base);
  ASSERT_CONTAINS(mb_last_error(), "hard link");
  ASSERT_OK(mb_os_file_remove(base));
#if MB_OS_POSIX
  ASSERT_EQ(symlink_file(victim, base), 0);
  ASSERT_ERR(mb__log_open_file(MB_LOG_INFO, base, 0, 0), MB_EACCES);
  ASSERT_CONTAINS(mb_last_error(), "symbolic link");
  ASSERT_OK(mb_os_file_remove(base));
#endif
  ASSERT_STR_EQ(mb_test_file_text(victim, text, sizeof text), "precious\n");
  ASSERT_OK(mb_os_file_remove(victim));
  /* A plain file is taken as before. */
  ASSERT_OK(mb__log_open_file(MB_LOG_INFO, base, 0, 0));
  mb_log_info("plain");
  mb__log_close();
  ASSERT(file_contains(base, "plain"));
  ASSERT_OK(mb_os_file_remove(base));
}

/* ---- Linux: `membroker service` with a bad config ------------------------------------------- */

/* POSIX: a config error in service mode is printed to stderr (the journal) with exit code 1,
 * as before; there is no default log file (mb__log_default_path: MB_ENOTSUP). */
TEST(posix_service_config_error) {
#if MB_OS_POSIX
  char dir[512], cfg[600], out[4096], buf[256];
  mb_config_t c;
  temp_dir(dir, sizeof dir);
  snprintf(cfg, sizeof cfg, "%smbt.%u.badsvc.json", dir, self_pid());
  fx_config_pid(&c, "t", "badsvc");
  fx_write_config(cfg, &c, "\"regoins\": []");
  ASSERT_EXIT(mb_test_run_exe(MB_BROKER_EXE, 30000, out, sizeof out, "service", "-c", cfg, NULL), 1,
              out);
  ASSERT_CONTAINS(out, "unknown key \"regoins\" (did you mean \"regions\"?)");
  ASSERT_ERR(mb__log_default_path(buf, sizeof buf, "x", NULL), MB_ENOTSUP);
  remove(cfg);
#else
  SKIP("POSIX service mode only (Windows: scm_config_error)");
#endif
}

#if MB_OS_WIN
/* ---- Windows: the message table and the SCM ------------------------------------------------- */

/*
 * Every event ID of the list has a text in membroker.exe's message table, and the text
 * carries the log line (insertion string %1): what the event viewer would show.
 */
static void message_table(void) {
  static const DWORD ids[] = {
#define ID_OF(name, id) id,
      MB_EVENTS(ID_OF)
#undef ID_OF
  };
  char exe[1024];
  wchar_t wexe[1024], text[2048];
  const wchar_t *probe = L"probe line 4711 from the test";
  DWORD_PTR args[1];
  HMODULE mod;
  size_t i;

  mb_test_exe_path(MB_BROKER_EXE, exe, sizeof exe);
  widen(exe, wexe, 1024);
  mod = LoadLibraryExW(wexe, NULL, LOAD_LIBRARY_AS_DATAFILE);
  if (mod == NULL)
    FAIL("LoadLibraryEx(%s, AS_DATAFILE) failed (os error %lu)", exe,
         (unsigned long)GetLastError());
  ASSERT_GE(sizeof ids / sizeof ids[0], 11);
  args[0] = (DWORD_PTR)probe;
  for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_HMODULE | FORMAT_MESSAGE_ARGUMENT_ARRAY, mod,
                             ids[i], 0, text, 2048, (va_list *)args);
    if (n == 0)
      FAIL("event ID %lu has no message in %s (os error %lu)", (unsigned long)ids[i], exe,
           (unsigned long)GetLastError());
    if (wcsstr(text, probe) == NULL)
      FAIL("event ID %lu: the text \"%ls\" does not carry the insertion string",
           (unsigned long)ids[i], text);
  }
  FreeLibrary(mod);
}

/* <ProgramData>\membroker\<rest>, the folder found as the test finds it: the older shell API
 * (CSIDL_COMMON_APPDATA), not the code under test. (Under Wine the environment of a service
 * has no %ProgramData%: the folder must come from the shell.) */
static void data_path(char *out, size_t size, const char *rest) {
  char pd[MAX_PATH];
  HRESULT hr = SHGetFolderPathA(NULL, CSIDL_COMMON_APPDATA, NULL, SHGFP_TYPE_CURRENT, pd);
  if (hr != S_OK)
    FAIL("SHGetFolderPath(CSIDL_COMMON_APPDATA) failed (0x%lx)", (unsigned long)hr);
  snprintf(out, size, "%s\\membroker\\%s", pd, rest);
}

/*
 * Install `config` as service svc_name, start it, and expect STOPPED with
 * ERROR_SERVICE_SPECIFIC_ERROR and `code`, never RUNNING; `log` must then hold `reason`.
 */
static void expect_failed_start(const char *cfg, const char *log, int code, const char *reason) {
  SERVICE_STATUS_PROCESS st;

  sc_create_start(MB_BROKER_EXE, cfg);
  wait_state(svc_name, SERVICE_STOPPED, &st, START_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != ERROR_SERVICE_SPECIFIC_ERROR ||
      st.dwServiceSpecificExitCode != (DWORD)code || !file_contains(log, reason))
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, ERROR_SERVICE_SPECIFIC_ERROR);
  ASSERT_EQ(st.dwServiceSpecificExitCode, code);
  ASSERT(file_contains(log, reason));
  delete_service();
}

/* A config that does not load: exit code 2, the reason in %ProgramData%\membroker\<name>.log
 * (the instance is not known). */
static void scm_config_error(void) {
  char dir[MAX_PATH + 1], cfg[600], log[MAX_PATH + 64], rest[64];
  unsigned pid = self_pid();
  mb_config_t c;

  temp_dir(dir, sizeof dir);
  snprintf(cfg, sizeof cfg, "%smbt.%u.badcfg.json", dir, pid);
  fx_config(&c, "x");
  fx_write_config(cfg, &c, "\"regoins\": []");
  _snwprintf(svc_name, 64, L"mbtestc%u", pid);
  snprintf(rest, sizeof rest, "mbtestc%u.log", pid);
  data_path(log, sizeof log, rest);
  remove(log);

  expect_failed_start(cfg, log, MB_SVC_EXIT_CONFIG,
                      "unknown key \"regoins\" (did you mean \"regions\"?)");
  ASSERT(file_contains(log, "service exit code 2"));
  remove(log);
  remove(cfg);
}

/* A log.file whose folder does not exist: exit code 3, and the reason where the operator looks
 * first, %ProgramData%\membroker\<service name>.log (the configured file cannot be opened). */
static void scm_log_failed(void) {
  char dir[MAX_PATH + 1], cfg[600], log[MAX_PATH + 64], rest[64], bad[700];
  unsigned pid = self_pid();
  mb_config_t c;

  temp_dir(dir, sizeof dir);
  snprintf(cfg, sizeof cfg, "%smbt.%u.badlog.json", dir, pid);
  snprintf(bad, sizeof bad, "%smbt.%u.no-such-folder\\membroker.log", dir, pid);
  fx_config_pid(&c, "t", "log");
  fx_log(&c, MB_LOG_INFO, bad);
  fx_write_config(cfg, &c, NULL);
  _snwprintf(svc_name, 64, L"mbtestl%u", pid);
  snprintf(rest, sizeof rest, "mbtestl%u.log", pid);
  data_path(log, sizeof log, rest);
  remove(log);

  expect_failed_start(cfg, log, MB_SVC_EXIT_LOG, "cannot open the log file: ");
  ASSERT(file_contains(log, "no-such-folder"));
  ASSERT(file_contains(log, "service exit code 3"));
  remove(log);
  remove(cfg);
}

/* A broker that cannot start (a region far bigger than memory, committed at start): exit
 * code 1, the reason in the default log file %ProgramData%\membroker\<instance>\membroker.log. */
static void scm_start_failed(void) {
  char dir[MAX_PATH + 1], cfg[600], log[MAX_PATH + 64], logdir[MAX_PATH + 64], rest[64];
  char instance[32];
  unsigned pid = self_pid();
  mb_config_t c;

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%ubig", pid);
  snprintf(cfg, sizeof cfg, "%smbt.%u.big.json", dir, pid);
  fx_config(&c, instance);
  fx_no_regions(&c);
  fx_region(&c, "huge", UINT64_C(64) << 40, 0, 0); /* 64 TiB, committed at start */
  fx_write_config(cfg, &c, NULL);
  _snwprintf(svc_name, 64, L"mbtests%u", pid);
  snprintf(rest, sizeof rest, "%s\\membroker.log", instance);
  data_path(log, sizeof log, rest);
  data_path(logdir, sizeof logdir, instance);
  remove(log);

  expect_failed_start(cfg, log, MB_SVC_EXIT_START, "cannot start: ");
  ASSERT(file_contains(log, "huge"));
  ASSERT(file_contains(log, "the broker could not start (service exit code 1)"));
  remove(log);
  RemoveDirectoryA(logdir);
  remove(cfg);
}

/*
 * The instance's log folder is a link to elsewhere (under Wine a Unix symbolic link, which Wine
 * shows as a reparse point; Wine makes no junctions): the LocalSystem service must not write
 * through it. It stops with exit code 3, and its fallback log names the folder and says to
 * remove it; nothing is written where the link points.
 */
static void scm_log_folder_refused(void) {
  char dir[MAX_PATH + 1], cfg[600], log[MAX_PATH + 64], logdir[MAX_PATH + 64], rest[64];
  char instance[32], target[700];
  wchar_t wlogdir[MAX_PATH + 64];
  unsigned pid = self_pid();
  mb_config_t c;

  temp_dir(dir, sizeof dir);
  snprintf(instance, sizeof instance, "t%ujn", pid);
  snprintf(cfg, sizeof cfg, "%smbt.%u.jn.json", dir, pid);
  fx_config(&c, instance);
  fx_write_config(cfg, &c, NULL);
  _snwprintf(svc_name, 64, L"mbtestj%u", pid);
  snprintf(rest, sizeof rest, "mbtestj%u.log", pid);
  data_path(log, sizeof log, rest);
  data_path(logdir, sizeof logdir, instance);
  widen(logdir, wlogdir, MAX_PATH + 64);
  remove(log);
  RemoveDirectoryA(logdir);
  if (GetModuleHandleW(L"ntdll.dll") == NULL ||
      GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "wine_get_version") == NULL)
    SKIP("making the junction is done with Wine's Unix symlink here (test-os covers junctions)");
  if (!wine_unix_run(L"Z:\\bin\\ln -s /tmp", wlogdir))
    SKIP("no Unix symlink could be made (Z:\\bin\\ln)");
  WAIT_FOR(GetFileAttributesA(logdir) != INVALID_FILE_ATTRIBUTES, 30000);
  ASSERT(GetFileAttributesA(logdir) & FILE_ATTRIBUTE_REPARSE_POINT);
  snprintf(target, sizeof target, "%s\\membroker.log", logdir);

  expect_failed_start(cfg, log, MB_SVC_EXIT_LOG, "reparse point");
  ASSERT(file_contains(log, logdir));
  ASSERT(file_contains(log, "remove it; the service recreates it"));
  ASSERT(file_contains(log, "service exit code 3"));
  ASSERT(GetFileAttributesA(target) == INVALID_FILE_ATTRIBUTES); /* nothing written through */
  ASSERT(wine_unix_run(L"Z:\\bin\\rm", wlogdir));
  WAIT_FOR(GetFileAttributesA(logdir) == INVALID_FILE_ATTRIBUTES, 30000);
  remove(log);
  remove(cfg);
}

/*
 * PRESHUTDOWN (what Windows sends before it shuts down, to a service that accepts it): the
 * service reports STOP_PENDING, saves the state (persist.dir) and ends STOPPED with exit code
 * 0; the state file is there afterwards and the log says the save was for the shutdown.
 * ControlService cannot send control 15 on Windows (only the SCM does, at shutdown); Wine's
 * SCM may pass it on. Where it is refused, the same handler branch is driven with STOP (the
 * three codes share it; only the log line differs), the save checked the same way, and the
 * output says which control was used.
 */
/* The config, log and persist paths of a preshutdown test (tag: "pre", "preh") with its files
 * gone: a fixture config logging at info to `log` and saving state into `pdir`, written to
 * `cfg`; `state` is where the saved state appears. */
static void preshutdown_files(const char *tag, char *cfg, size_t ncfg, char *log, size_t nlog,
                              char *pdir, size_t npdir, char *state, size_t nstate) {
  char dir[MAX_PATH + 1];
  unsigned pid = self_pid();
  mb_config_t c;
  temp_dir(dir, sizeof dir);
  snprintf(cfg, ncfg, "%smbt.%u.%s.json", dir, pid, tag);
  snprintf(log, nlog, "%smbt.%u.%s.log", dir, pid, tag);
  snprintf(pdir, npdir, "%smbt.%u.%s.state", dir, pid, tag);
  fx_config_pid(&c, "t", tag);
  fx_log(&c, MB_LOG_INFO, log);
  snprintf(c.persist_dir, sizeof c.persist_dir, "%s", pdir);
  fx_write_config(cfg, &c, NULL);
  snprintf(state, nstate, "%s\\%s.state", pdir, c.instance);
  remove(state);
  remove(log);
}

static void scm_preshutdown(void) {
  char cfg[600], log[700], pdir[700], state[800];
  unsigned pid = self_pid();
  SERVICE_STATUS_PROCESS st;
  SERVICE_STATUS ss;
  SC_HANDLE scm, svc;
  DWORD err = 0;
  int pre;

  preshutdown_files("pre", cfg, sizeof cfg, log, sizeof log, pdir, sizeof pdir, state,
                    sizeof state);
  _snwprintf(svc_name, 64, L"mbtestp%u", pid);

  sc_create_start(MB_BROKER_EXE, cfg);
  wait_state(svc_name, SERVICE_RUNNING, &st, START_TIMEOUT_MS, log);
  ASSERT_EQ(st.dwCurrentState, SERVICE_RUNNING);
  ASSERT(st.dwControlsAccepted & SERVICE_ACCEPT_PRESHUTDOWN);

  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  ASSERT(scm != NULL);
  svc = OpenServiceW(scm, svc_name,
                     SERVICE_STOP | SERVICE_QUERY_STATUS | SERVICE_USER_DEFINED_CONTROL);
  ASSERT(svc != NULL);
  pre = ControlService(svc, SERVICE_CONTROL_PRESHUTDOWN, &ss) != 0;
  if (!pre) {
    err = GetLastError();
    printf("# the SCM refuses to send control 15 (PRESHUTDOWN, os error %lu): the same handler "
           "branch is driven with STOP\n",
           (unsigned long)err);
    ASSERT(ControlService(svc, SERVICE_CONTROL_STOP, &ss) != 0);
  } else {
    printf("# PRESHUTDOWN delivered by the SCM\n");
  }
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  wait_state(svc_name, SERVICE_STOPPED, &st, START_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != NO_ERROR || !file_contains(log, "state saved in"))
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, NO_ERROR);
  ASSERT(file_contains(log, pre ? "service control: preshutdown: Windows is shutting down; saving "
                                  "the state in"
                                : "service control: stop"));
  ASSERT(file_contains(log, "state saved in"));
  ASSERT(GetFileAttributesA(state) != INVALID_FILE_ATTRIBUTES);
  delete_service();
  remove(state);
  RemoveDirectoryA(pdir);
  remove(log);
  remove(cfg);
}

/* The service process's helper thread: once its service is RUNNING (its log says so: the
 * thread stays off the SCM's API, which the dispatcher of this process uses), give the
 * handler PRESHUTDOWN as the SCM does at shutdown (mb__svc_control, the hook). */
static const char *pre_log;
static DWORD WINAPI pre_thread(LPVOID arg) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
  (void)arg;
  while (mb_os_mono_ns() < deadline) {
    if (file_contains(pre_log, " running: instance ")) {
      (void)mb__svc_control(SERVICE_CONTROL_PRESHUTDOWN);
      return 0;
    }
    mb_os_sleep_ms(5);
  }
  return 1;
}

/* The test binary as the service: argv NAME CONFIG LOG. Runs the real service glue
 * (mb__svc_main: the SCM's dispatcher, ServiceMain, the handler) with the hook thread. */
CHILD(svc_preshutdown) {
  HANDLE t;
  if (argc != 3)
    return 2;
  pre_log = argv[2];
  t = CreateThread(NULL, 0, pre_thread, NULL, 0, NULL);
  if (t == NULL)
    return 3;
  CloseHandle(t);
  return mb__svc_main(argv[0], argv[1]);
}

/*
 * PRESHUTDOWN itself, through the hook: the test binary runs as the service (CHILD
 * svc_preshutdown: the real glue of membroker.exe, linked into it) and hands PRESHUTDOWN to
 * its own control handler once RUNNING. The handler's preshutdown branch logs that Windows is
 * shutting down, the stop saves the state, STOPPED with exit code 0.
 */
static void scm_preshutdown_handler(void) {
  char cfg[600], log[700], pdir[700], state[800], self[MAX_PATH], name[64];
  wchar_t wself[MAX_PATH], wcfg[600], wlog[700], bin[2048];
  unsigned pid = self_pid();
  SERVICE_STATUS_PROCESS st;
  SC_HANDLE scm, svc;

  preshutdown_files("preh", cfg, sizeof cfg, log, sizeof log, pdir, sizeof pdir, state,
                    sizeof state);
  snprintf(name, sizeof name, "mbtestq%u", pid);
  _snwprintf(svc_name, 64, L"%hs", name);
  ASSERT_OK(mb_os_self_exe(self, sizeof self));
  widen(self, wself, MAX_PATH);
  widen(cfg, wcfg, 600);
  widen(log, wlog, 700);
  _snwprintf(bin, 2048, L"\"%ls\" --child svc_preshutdown %hs \"%ls\" \"%ls\"", wself, name, wcfg,
             wlog);
  bin[2047] = L'\0';

  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
  ASSERT(scm != NULL);
  svc =
      CreateServiceW(scm, svc_name, svc_name, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                     SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL, bin, NULL, NULL, NULL, NULL, NULL);
  if (svc == NULL)
    FAIL("CreateService(%ls) failed (os error %lu)", bin, (unsigned long)GetLastError());
  atexit(delete_service);
  if (!StartServiceW(svc, 0, NULL))
    FAIL("StartService failed (os error %lu)", (unsigned long)GetLastError());
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);

  wait_state(svc_name, SERVICE_STOPPED, &st, START_TIMEOUT_MS, log);
  if (st.dwWin32ExitCode != NO_ERROR || !file_contains(log, "state saved in"))
    dump_log(log);
  ASSERT_EQ(st.dwWin32ExitCode, NO_ERROR);
  ASSERT(file_contains(log, "service control: preshutdown: Windows is shutting down; saving the "
                            "state in"));
  ASSERT(file_contains(log, "state saved in"));
  ASSERT(GetFileAttributesA(state) != INVALID_FILE_ATTRIBUTES);
  delete_service();
  remove(state);
  RemoveDirectoryA(pdir);
  remove(log);
  remove(cfg);
}
#endif /* MB_OS_WIN */

TEST(scm_preshutdown_handler) {
#if MB_OS_WIN
  scm_preshutdown_handler();
#else
  ASSERT_EQ(mb__svc_control(0), 1); /* no handler on POSIX */
  SKIP("there is no Service Control Manager on POSIX");
#endif
}

TEST(scm_preshutdown) {
#if MB_OS_WIN
  scm_preshutdown();
#else
  SKIP("there is no Service Control Manager on POSIX (systemd: SIGTERM saves, svcmgr tests)");
#endif
}

TEST(message_table) {
#if MB_OS_WIN
  message_table();
#else
  SKIP("the event log's message table is a Windows resource");
#endif
}

TEST(scm_log_failed) {
#if MB_OS_WIN
  scm_log_failed();
#else
  SKIP("there is no Service Control Manager on POSIX");
#endif
}

TEST(scm_log_folder_refused) {
#if MB_OS_WIN
  scm_log_folder_refused();
#else
  SKIP("there is no Service Control Manager on POSIX");
#endif
}

TEST(scm_config_error) {
#if MB_OS_WIN
  scm_config_error();
#else
  SKIP("there is no Service Control Manager on POSIX (see posix_service_config_error)");
#endif
}

TEST(scm_start_failed) {
#if MB_OS_WIN
  scm_start_failed();
#else
  SKIP("there is no Service Control Manager on POSIX (test-service start_failure: exit 1)");
#endif
}
