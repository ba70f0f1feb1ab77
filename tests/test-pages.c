/*
 * test-pages.c - large pages (issue 15): the `large_pages` key of a region (parsed, echoed,
 * checked), the broker's fallback to normal pages with one warning naming the region and the
 * reason, the page size `regions` reports, a game server mapping such a region, huge pages
 * really granted on Linux (root: a private hugetlbfs mount and a few pages reserved through
 * vm.nr_hugepages, both undone at exit), and the install step's grant of SeLockMemoryPrivilege
 * (Windows).
 */
#include "task.h"

#include <stdlib.h>

#include "broker.h"
#include "fixture.h"
#include "log.h"
#include "membroker.h"
#include "report.h"
#include "svc.h"

#include <cjson/cJSON.h>

#if MB_OS_POSIX
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>
#endif

#define LP_REGION_SIZE (4u * 1024 * 1024) /* two 2 MiB huge pages */

/* ---- the log: warnings that name large pages ------------------------------------------------ */

static int lp_warnings;
static char lp_last[1024];

static char lp_all[4096]; /* every warning since lp_log, one a line */

static void lp_sink(mb_log_level_t level, mb_event_t event, const char *msg) {
  size_t n = strlen(lp_all);
  (void)event;
  if (level == MB_LOG_WARN && n + 1 < sizeof lp_all)
    snprintf(lp_all + n, sizeof lp_all - n, "%s\n", msg);
  if (level == MB_LOG_WARN && strstr(msg, "large pages") != NULL) {
    lp_warnings++;
    snprintf(lp_last, sizeof lp_last, "%s", msg);
  }
}

static void lp_log(void) {
  mb__log_open(MB_LOG_WARN, ""); /* the sink sees what the level lets through */
  mb__log_set_sink(lp_sink);
  lp_warnings = 0;
  lp_last[0] = '\0';
  lp_all[0] = '\0';
}

/* The test config with region "big" (4 MiB, committed at start, large_pages) beside world. */
static void lp_config(mb_config_t *cfg, const char *tag) {
  int i;
  fx_config_pid(cfg, "lp", tag);
  i = fx_region(cfg, "big", LP_REGION_SIZE, 0, 0);
  cfg->regions[i].large_pages = 1;
}

/* Region `name`'s entry of the `regions` report: its page_size, and whether it is lazy. */
static uint64_t lp_reported_page(const mb_broker_t *b, const char *name) {
  cJSON *arr = mb__report_regions(b), *r;
  uint64_t v = 0;
  ASSERT(arr != NULL);
  cJSON_ArrayForEach(r, arr) {
    cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
    cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "page_size");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 && cJSON_IsNumber(p))
      v = (uint64_t)p->valuedouble;
  }
  cJSON_Delete(arr);
  return v;
}

static int lp_index(const mb_broker_t *b, const char *name) {
  int i;
  for (i = 0; i < b->nregions; i++)
    if (strcmp(b->cfg.regions[i].name, name) == 0)
      return i;
  FAIL("no region %s", name);
  return -1;
}

/* argv: instance region - a game server maps the region, writes its first and last byte (0x5A,
 * 0xA5) and detaches. */
CHILD(touch_region) {
  mb_client_t *c;
  unsigned char *base;
  uint64_t size;
  if (argc != 2 || mb_attach(argv[0], "pages", NULL, &c) != 0)
    return 100;
  if (mb_region(c, argv[1], (void **)&base, &size) != 0)
    return 101;
  base[0] = 0x5A;
  base[size - 1] = 0xA5;
  return mb_detach(c) == 0 ? 0 : 102;
}

/* ---- config ---------------------------------------------------------------------------------- */

TEST(config_large_pages_key) {
  mb_config_t cfg;
  char *text;
  const char *good = "{\"regions\": [{\"name\": \"w\", \"size\": \"4MiB\", \"large_pages\": true},"
                     " {\"name\": \"p\", \"size\": \"1MiB\", \"commit\": \"lazy\"}]}";
  const char *lazy = "{\"regions\": [{\"name\": \"w\", \"size\": \"4MiB\"}, {\"name\": \"p\", "
                     "\"size\": \"1MiB\", \"commit\": \"lazy\", \"large_pages\": true}]}";
  const char *notbool =
      "{\"regions\": [{\"name\": \"w\", \"size\": \"4MiB\", \"large_pages\": 1}]}";

  ASSERT_OK(mb__config_parse(&cfg, good, strlen(good), "good.json"));
  ASSERT_EQ(cfg.regions[0].large_pages, 1);
  ASSERT_EQ(cfg.regions[1].large_pages, 0); /* the default */
  /* Echoed in the effective config (the `config` command, --check-config's schema) and read
   * back the same. */
  text = fx_config_text(&cfg, NULL);
  ASSERT_CONTAINS(text, "\"large_pages\"");
  ASSERT_OK(mb__config_parse(&cfg, text, strlen(text), "echo.json"));
  free(text);
  ASSERT_EQ(cfg.regions[0].large_pages, 1);
  ASSERT_EQ(cfg.regions[1].large_pages, 0);

  ASSERT_ERR(mb__config_parse(&cfg, lazy, strlen(lazy), "lazy.json"), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "regions[1].large_pages");
  ASSERT_CONTAINS(mb_last_error(), "\"commit\": \"start\"");
  ASSERT_ERR(mb__config_parse(&cfg, notbool, strlen(notbool), "bool.json"), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "regions[0].large_pages");
}

/* ---- fallback -------------------------------------------------------------------------------- */

/*
 * Large pages refused -> normal pages, one warning naming the region and the reason, page_size
 * reported as the normal page, and a game server maps the region as usual. Linux: refused for
 * sure by pointing MEMBROKER_HUGETLBFS at a directory that is not a hugetlbfs mount. Windows:
 * whatever the OS answers (Wine: see the README's large-pages section); where it grants them
 * the region must say so instead.
 */
TEST(fallback_warns_once_and_reports_page_size) {
  mb_config_t cfg;
  mb_broker_t b;
  size_t page = mb_os_mem_config()->page_size;
  int big, warned;

#if MB_OS_POSIX
  char dir[] = "/tmp/mb-not-hugetlbfs-XXXXXX";
  ASSERT(mkdtemp(dir) != NULL);
  ASSERT(setenv("MEMBROKER_HUGETLBFS", dir, 1) == 0);
#endif
  lp_config(&cfg, "fb");
  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  big = lp_index(&b, "big");
  if (b.state->regions[big].flags & MB_REGION_LARGE_PAGES) {
    /* The OS granted them: no warning, and the large page size reported. */
    ASSERT_EQ(lp_warnings, 0);
    ASSERT_EQ_U64(lp_reported_page(&b, "big"), mb_os_mem_config()->large_page_size);
    printf("# large pages granted here: %zu bytes\n", mb_os_mem_config()->large_page_size);
  } else {
    ASSERT_EQ(lp_warnings, 1);
    ASSERT_CONTAINS(lp_last, "region 'big'");
    ASSERT_CONTAINS(lp_last, "large pages refused");
#if MB_OS_POSIX
    ASSERT_CONTAINS(lp_last, "is not a hugetlbfs mount");
#endif
    printf("# fallback: %s\n", lp_last);
    ASSERT_EQ_U64(lp_reported_page(&b, "big"), page);
    ASSERT_EQ_U64(b.state->regions[big].section_size, LP_REGION_SIZE);
  }
  ASSERT_EQ_U64(lp_reported_page(&b, "world"), page);
  ASSERT_EQ_U64(mb_load64(&b.state->regions[big].committed), LP_REGION_SIZE);
  /* A game server maps it the way it was made. */
  ASSERT_EQ(mb_test_run_child(60000, "touch_region", cfg.instance, "big", (char *)NULL), 0);
  ASSERT_EQ(b.regions[big].base[0], 0x5A);
  ASSERT_EQ(b.regions[big].base[LP_REGION_SIZE - 1], 0xA5);
  warned = lp_warnings;
  mb__broker_stop(&b);
  ASSERT_EQ(lp_warnings, warned); /* none more at stop */
  mb__log_set_sink(NULL);
#if MB_OS_POSIX
  rmdir(dir);
#endif
}

/* ---- Linux: huge pages granted --------------------------------------------------------------- */

#if MB_OS_POSIX
static char lp_mount[64], lp_mount2[64];
static long lp_old_nr = -1;
static int lp_lock = -1;

/* /proc files have no size: read them line by line. */
static long lp_read_long(const char *path) {
  FILE *f = fopen(path, "r");
  long v = -1;
  if (f != NULL && fscanf(f, "%ld", &v) != 1)
    v = -1;
  if (f != NULL)
    fclose(f);
  return v;
}

/* A figure of /proc/meminfo ("HugePages_Free"), or -1. */
static long lp_meminfo(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  long v = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
      v = strtol(line + strlen(key) + 1, NULL, 10);
  if (f != NULL)
    fclose(f);
  return v;
}

static int lp_write_long(const char *path, long v) {
  FILE *f = fopen(path, "w");
  int ok = f != NULL && fprintf(f, "%ld\n", v) > 0;
  if (f != NULL && fclose(f) != 0)
    ok = 0;
  return ok ? 0 : -1;
}

/* Remove a test mount: its files first (a failed test may still map one: its pages go back at
 * exit), then a lazy unmount, which a mapping still in use cannot hold up. */
static void lp_unmount(char *dir) {
  DIR *d;
  struct dirent *e;
  if (dir[0] == '\0')
    return;
  if ((d = opendir(dir)) != NULL) {
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.')
        unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  umount2(dir, MNT_DETACH);
  rmdir(dir);
  dir[0] = '\0';
}

/* Undo what the test changed on the machine, whatever way it ends. Pages still in use when
 * vm.nr_hugepages goes back become surplus pages, freed as they are released. */
static void lp_restore(void) {
  lp_unmount(lp_mount);
  lp_unmount(lp_mount2);
  if (lp_old_nr >= 0)
    lp_write_long("/proc/sys/vm/nr_hugepages", lp_old_nr);
  lp_old_nr = -1;
}

/* Mount a private hugetlbfs on a fresh directory `dir` (64 bytes), undone at exit; SKIPs where
 * that cannot be (not root, no huge pages of a size dividing the test region). */
static size_t lp_mount_hugetlbfs(char *dir) {
  size_t huge = mb_os_mem_config()->large_page_size;
  if (huge == 0 || LP_REGION_SIZE % huge != 0)
    SKIP("no huge pages of a size dividing 4 MiB here (Hugepagesize %zu)", huge);
  if (geteuid() != 0)
    SKIP("needs root: mounts a private hugetlbfs and reserves huge pages (vm.nr_hugepages)");
  /* vm.nr_hugepages is the machine's: one test at a time changes it (other builds' tests too),
   * the lock held until this process exits. */
  if (lp_lock < 0) {
    lp_lock = open("/tmp/membroker-test-hugepages.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    ASSERT(lp_lock >= 0);
    ASSERT_EQ(flock(lp_lock, LOCK_EX), 0);
  }
  snprintf(dir, 64, "/tmp/mb-hugetlbfs-XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
  atexit(lp_restore);
  if (mount("none", dir, "hugetlbfs", 0, NULL) != 0) {
    int e = errno;
    rmdir(dir);
    dir[0] = '\0';
    SKIP("cannot mount hugetlbfs: %s", strerror(e));
  }
  return huge;
}

/* Reserve `n` more huge pages (vm.nr_hugepages), undone by lp_restore; SKIPs unless exactly n
 * are free then (the tests count pages). Returns HugePages_Free. */
static long lp_reserve(long n) {
  long free0;
  if (lp_old_nr < 0)
    lp_old_nr = lp_read_long("/proc/sys/vm/nr_hugepages");
  ASSERT_GE(lp_old_nr, 0);
  ASSERT_EQ(
      lp_write_long("/proc/sys/vm/nr_hugepages", lp_read_long("/proc/sys/vm/nr_hugepages") + n), 0);
  free0 = lp_meminfo("HugePages_Free");
  if (free0 < n) {
    lp_restore();
    SKIP("the kernel reserved only %ld free huge pages of the %ld asked for", free0, n);
  }
  return free0;
}
#endif

TEST(huge_pages_when_reserved) {
#if !MB_OS_POSIX
  SKIP("hugetlbfs is Linux's; Windows large pages: fallback_warns_once_and_reports_page_size");
#else
  mb_config_t cfg;
  mb_broker_t b;
  size_t huge = mb_os_mem_config()->large_page_size;
  long free0, old, need = (long)(LP_REGION_SIZE / (huge ? huge : 1));
  char obj[MB_OS_NAME_MAX + 1], path[256];
  int big;

  (void)lp_mount_hugetlbfs(lp_mount);
  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  lp_config(&cfg, "hp");
  lp_log();

  /* None free: refused at commit, one warning saying so. */
  if (lp_meminfo("HugePages_Free") < need) {
    ASSERT_OK(mb__broker_start(&b, &cfg, 0));
    big = lp_index(&b, "big");
    ASSERT_EQ(b.state->regions[big].flags & MB_REGION_LARGE_PAGES, 0);
    ASSERT_EQ(lp_warnings, 1);
    ASSERT_CONTAINS(lp_last, "region 'big'");
    ASSERT_CONTAINS(lp_last, "huge pages");
    printf("# none free: %s\n", lp_last);
    ASSERT_EQ_U64(lp_reported_page(&b, "big"), mb_os_mem_config()->page_size);
    mb__broker_stop(&b);
    lp_warnings = 0;
  }

  /* Reserve what the region needs on top of what is there, and undo it at exit. */
  lp_old_nr = lp_read_long("/proc/sys/vm/nr_hugepages");
  ASSERT_GE(lp_old_nr, 0);
  ASSERT_EQ(lp_write_long("/proc/sys/vm/nr_hugepages", lp_old_nr + need), 0);
  free0 = lp_meminfo("HugePages_Free");
  if (free0 < need) {
    lp_restore();
    SKIP("the kernel reserved only %ld free huge pages of the %ld asked for", free0, need);
  }
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  big = lp_index(&b, "big");
  ASSERT_EQ(lp_warnings, 0);
  ASSERT(b.state->regions[big].flags & MB_REGION_LARGE_PAGES);
  ASSERT_EQ_U64(lp_reported_page(&b, "big"), huge);
  ASSERT_EQ_U64(lp_reported_page(&b, "world"), mb_os_mem_config()->page_size);
  /* The huge pages are taken at start (committed), by the broker's file on the mount. */
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0 - need);
  ASSERT_OK(mb__object_name(obj, sizeof obj, cfg.instance, "big"));
  snprintf(path, sizeof path, "%s/%s", lp_mount, obj);
  ASSERT_EQ(access(path, F_OK), 0);
  /* A game server finds it by name and shares its memory. */
  ASSERT_EQ(mb_test_run_child(60000, "touch_region", cfg.instance, "big", (char *)NULL), 0);
  ASSERT_EQ(b.regions[big].base[0], 0x5A);
  ASSERT_EQ(b.regions[big].base[LP_REGION_SIZE - 1], 0xA5);
  mb__broker_stop(&b);
  ASSERT(access(path, F_OK) != 0);
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0);
  mb__log_set_sink(NULL);
  old = lp_old_nr;
  lp_restore();
  ASSERT_EQ(lp_read_long("/proc/sys/vm/nr_hugepages"), old);
#endif
}

/*
 * A broker killed with large-page regions leaves their files on hugetlbfs, and with them their
 * huge pages. The next start removes every region file of its instance there, whatever its own
 * config says (here: no large_pages at all), logs it with the directory, and leaves another
 * instance's files alone.
 */
TEST(stale_huge_files_purged_whatever_the_config) {
#if !MB_OS_POSIX
  SKIP("hugetlbfs is Linux's: a Windows section dies with its last handle");
#else
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_section_t s;
  size_t huge = lp_mount_hugetlbfs(lp_mount);
  char mine[MB_OS_NAME_MAX + 1], other[MB_OS_NAME_MAX + 1], pmine[256], pother[256];
  long free0;

  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  free0 = lp_reserve(2);
  fx_config_pid(&cfg, "lp", "st");
  /* What a dead broker left: a region file of this instance, one of another instance. */
  snprintf(mine, sizeof mine, "membroker.%s.region.gone", cfg.instance);
  snprintf(other, sizeof other, "membroker.%sx.region.gone", cfg.instance);
  ASSERT_OK(mb_os_section_create(&s, mine, huge, MB_OS_SEC_LARGE_PAGES, NULL));
  mb_os_section_close(&s);
  ASSERT_OK(mb_os_section_create(&s, other, huge, MB_OS_SEC_LARGE_PAGES, NULL));
  mb_os_section_close(&s);
  snprintf(pmine, sizeof pmine, "%s/%s", lp_mount, mine);
  snprintf(pother, sizeof pother, "%s/%s", lp_mount, other);
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0 - 2);

  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT(access(pmine, F_OK) != 0);
  ASSERT_EQ(access(pother, F_OK), 0);
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0 - 1); /* its page is back */
  ASSERT_CONTAINS(lp_all, "removed 1 large-page region file");
  ASSERT_CONTAINS(lp_all, lp_mount);
  printf("# %s", lp_all);
  mb__broker_stop(&b);
  mb__log_set_sink(NULL);
  ASSERT_OK(mb_os_section_unlink(other, MB_OS_SEC_LARGE_PAGES));
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0);
  lp_restore();
#endif
}

/*
 * The fallback warning says what was free before the attempt and what the region needs, without
 * a "commit limit" tail where no limit is set; after a crash whose game servers still map the
 * dead broker's large-page region, it says that is where the pages are.
 */
TEST(huge_fallback_says_what_was_free) {
#if !MB_OS_POSIX
  SKIP("hugetlbfs is Linux's; Windows large pages: fallback_warns_once_and_reports_page_size");
#else
  mb_config_t cfg;
  mb_broker_t b;
  mb_os_section_t s;
  size_t huge = lp_mount_hugetlbfs(lp_mount);
  long need = (long)(LP_REGION_SIZE / huge), free0;
  char obj[MB_OS_NAME_MAX + 1], want[128];
  void *view;

  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  free0 = lp_reserve(need - 1);
  if (free0 != need - 1) {
    lp_restore();
    SKIP("%ld huge pages free, the test needs exactly %ld", free0, need - 1);
  }
  lp_config(&cfg, "fw");
  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ(lp_warnings, 1);
  snprintf(want, sizeof want, "needs %ld huge pages of %zu KiB, %ld free of", need, huge >> 10,
           need - 1);
  ASSERT_CONTAINS(lp_last, want);
  ASSERT(strstr(lp_last, "commit limit") == NULL);
  ASSERT(strstr(lp_last, "may still map") == NULL);
  printf("# too few: %s\n", lp_last);
  mb__broker_stop(&b);

  /* A crash: the dead broker's region file, mapped by a game server of it (this process). */
  free0 = lp_reserve(1);
  ASSERT_EQ(free0, need);
  ASSERT_OK(mb__object_name(obj, sizeof obj, cfg.instance, "big"));
  ASSERT_OK(mb_os_section_create(&s, obj, LP_REGION_SIZE, MB_OS_SEC_LARGE_PAGES, NULL));
  ASSERT_OK(mb_os_section_map(&s, 0, 1, &view));
  mb_os_section_close(&s);
  ASSERT_EQ(lp_meminfo("HugePages_Free"), 0);
  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_EQ(b.state->regions[lp_index(&b, "big")].flags & MB_REGION_LARGE_PAGES, 0);
  ASSERT_CONTAINS(lp_all, "removed 1 large-page region file");
  ASSERT_EQ(lp_warnings, 1);
  ASSERT_CONTAINS(lp_last, "may still map");
  printf("# after a crash: %s\n", lp_last);
  mb__broker_stop(&b);
  mb__log_set_sink(NULL);
  ASSERT_OK(mb_os_section_unmap(view, LP_REGION_SIZE));
  ASSERT_EQ(lp_meminfo("HugePages_Free"), need); /* the game server let go: the pages are back */
  lp_restore();
#endif
}

#if MB_OS_POSIX
/* Figure `key` of region `name`'s entry in the `regions` report. */
static uint64_t lp_figure(const mb_broker_t *b, const char *name, const char *key) {
  cJSON *arr = mb__report_regions(b), *r;
  uint64_t v = UINT64_MAX;
  ASSERT(arr != NULL);
  cJSON_ArrayForEach(r, arr) {
    cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(r, key);
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 && cJSON_IsNumber(f))
      v = (uint64_t)f->valuedouble;
  }
  cJSON_Delete(arr);
  ASSERT(v != UINT64_MAX);
  return v;
}
#endif

/*
 * A slotted large-page region whose size is not a whole number of large pages: table_bytes is
 * its slot table alone (as with normal pages), committed the rest of what it holds (the data
 * rounded up to whole large pages), and the two add up to the huge pages it took.
 */
TEST(huge_region_figures_add_up) {
#if !MB_OS_POSIX
  SKIP("hugetlbfs is Linux's; Windows large pages: fallback_warns_once_and_reports_page_size");
#else
  mb_config_t cfg;
  mb_broker_t b;
  size_t huge = lp_mount_hugetlbfs(lp_mount);
  uint64_t size = 3u * 1024 * 1024, table, held;
  long free0;
  int i;

  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  free0 = lp_reserve((long)(LP_REGION_SIZE / huge));
  fx_config_pid(&cfg, "lp", "fg");
  i = fx_region(&cfg, "odd", size, 0, 1024);
  cfg.regions[i].large_pages = 1;
  table = mb__config_slot_table(&cfg.regions[i]); /* as a normal-page start commits it */
  held = mb__round_up(size + table, huge);
  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT(b.state->regions[lp_index(&b, "odd")].flags & MB_REGION_LARGE_PAGES);
  ASSERT_EQ(lp_warnings, 0);
  ASSERT_EQ(lp_meminfo("HugePages_Free"), free0 - (long)(held / huge));
  ASSERT_EQ_U64(lp_figure(&b, "odd", "reserved"), size);
  ASSERT_EQ_U64(lp_figure(&b, "odd", "table_bytes"), table);
  ASSERT_EQ_U64(lp_figure(&b, "odd", "committed"), held - table);
  ASSERT_EQ_U64(lp_figure(&b, "odd", "peak"), held - table);
  mb__broker_stop(&b);
  mb__log_set_sink(NULL);
  lp_restore();
#endif
}

/* argv: instance file - attach and map region "big", and write why that failed to `file`; 0 if
 * it failed. */
CHILD(attach_error) {
  mb_client_t *c = NULL;
  void *base;
  uint64_t size;
  FILE *f;
  int rc;
  if (argc != 2)
    return 100;
  rc = mb_attach(argv[0], "pages", NULL, &c);
  if (rc == 0 && (rc = mb_region(c, "big", &base, &size)) == 0) {
    mb_detach(c);
    return 101;
  }
  if ((f = fopen(argv[1], "w")) == NULL)
    return 102;
  fprintf(f, "%s\n", mb_last_error());
  if (c != NULL)
    mb_detach(c);
  return fclose(f) == 0 ? 0 : 103;
}

/*
 * A game server that finds another hugetlbfs mount than the broker's cannot open a large-page
 * region; its error names the region, the path it tried and MEMBROKER_HUGETLBFS.
 */
TEST(game_server_on_another_mount_is_told_which) {
#if !MB_OS_POSIX
  SKIP("hugetlbfs is Linux's: a Windows process opens a large-page section by its name");
#else
  mb_config_t cfg;
  mb_broker_t b;
  size_t huge = lp_mount_hugetlbfs(lp_mount);
  char out[] = "/tmp/mb-lp-attach-XXXXXX", text[2048] = "", tried[256];
  long n = (long)(LP_REGION_SIZE / huge);
  FILE *f;
  int fd;

  (void)lp_mount_hugetlbfs(lp_mount2);
  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  (void)lp_reserve(n);
  lp_config(&cfg, "mt");
  lp_log();
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT(b.state->regions[lp_index(&b, "big")].flags & MB_REGION_LARGE_PAGES);
  ASSERT((fd = mkstemp(out)) >= 0);
  close(fd);
  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount2, 1) == 0);
  ASSERT_EQ(mb_test_run_child(60000, "attach_error", cfg.instance, out, (char *)NULL), 0);
  ASSERT(setenv("MEMBROKER_HUGETLBFS", lp_mount, 1) == 0);
  f = fopen(out, "r");
  ASSERT(f != NULL);
  if (fread(text, 1, sizeof text - 1, f) == 0)
    text[0] = '\0';
  fclose(f);
  unlink(out);
  printf("# %s", text);
  snprintf(tried, sizeof tried, "%s/membroker.%s.region.big", lp_mount2, cfg.instance);
  ASSERT_CONTAINS(text, "region 'big' is in large pages");
  ASSERT_CONTAINS(text, tried);
  ASSERT_CONTAINS(text, "MEMBROKER_HUGETLBFS");
  mb__broker_stop(&b);
  mb__log_set_sink(NULL);
  lp_restore();
#endif
}

/* The commit limit mb__config_check_host lets through for cfg: the least that passes. */
static uint64_t lp_least_limit(mb_config_t *cfg) {
  uint64_t lo = 1, hi = UINT64_C(1) << 40;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    cfg->max_committed = mid;
    if (mb__config_check_host(cfg, 0, NULL, 0) == 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/*
 * --check-config counts what rounding a large_pages region up to whole large pages adds to what
 * a start commits, so a config it passes is not refused at start for limits.max_committed on a
 * host with large pages, and its refusal says the rounding is why.
 */
TEST(check_config_counts_large_page_rounding) {
  mb_config_t cfg;
  size_t lp = mb_os_mem_config()->large_page_size, pg = mb_os_mem_config()->page_size;
  uint64_t normal, rounded;
  int i;

  if (lp <= pg)
    SKIP("no large pages bigger than the page here (large page %zu)", lp);
  fx_config_pid(&cfg, "lp", "cc");
  i = fx_region(&cfg, "odd", lp + lp / 2, 0, 0); /* 1.5 large pages: rounded up by lp / 2 */
  normal = lp_least_limit(&cfg);
  cfg.regions[i].large_pages = 1;
  rounded = lp_least_limit(&cfg);
  ASSERT_EQ_U64(rounded, normal + lp / 2);
  cfg.max_committed = normal;
  ASSERT_ERR(mb__config_check_host(&cfg, 0, NULL, 0), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "limits.max_committed");
  ASSERT_CONTAINS(mb_last_error(), "large-page rounding");
  printf("# %s\n", mb_last_error());
}

/* ---- Windows: the install step's grant ------------------------------------------------------- */

TEST(install_grants_lock_memory_privilege) {
#if !MB_OS_WIN
  SKIP("SeLockMemoryPrivilege is Windows'; Linux needs no grant (hugetlbfs mode, nr_hugepages)");
#else
  int rc = mb__svc_grant_lock_memory("LocalSystem");
  if (rc == MB_ENOTSUP)
    SKIP("the LSA here does not grant rights (Wine): %s", mb_last_error());
  ASSERT_OK(rc);
  /* Idempotent: a second install grants again without error. */
  ASSERT_OK(mb__svc_grant_lock_memory("LocalSystem"));
  ASSERT_ERR(mb__svc_grant_lock_memory("no-such-account-xyz"), MB_ENOENT);
#endif
}
