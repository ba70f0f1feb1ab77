/*
 * test-os.c - the platform layer, on every OS: virtual memory, named sections (one process
 * and across processes), process identity and liveness, clocks, memory status, errors, the
 * single-instance lock and its holder's record.
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _DEFAULT_SOURCE 1
#endif

#include <errno.h>

#include "task.h"

#include "scm.h"

#if MB_OS_POSIX
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#include <wchar.h>
#include <windows.h>
#endif

static size_t page(void) {
  return mb_os_mem_config()->page_size;
}

TEST(mem_config) {
  const mb_os_mem_config_t *c = mb_os_mem_config();
  ASSERT_GE(c->page_size, 4096);
  ASSERT_EQ(c->page_size & (c->page_size - 1), 0);
  ASSERT_GE(c->alloc_granularity, c->page_size);
  ASSERT_EQ(c->alloc_granularity % c->page_size, 0);
}

TEST(error_names) {
  ASSERT_STR_EQ(mb_err_name(0), "ok");
  ASSERT_STR_EQ(mb_err_name(MB_ENOENT), "not_found");
  ASSERT_STR_EQ(mb_err_name(MB_EINTERNAL), "internal");
  ASSERT_STR_EQ(mb_err_name(-9999), "unknown");
  ASSERT_STR_EQ(mb_err_name(5), "unknown");
  ASSERT_STR_EQ(mb_strerror(MB_EVERSION), "layout version mismatch");
  ASSERT_EQ(mb__errorf(MB_EBUSY, 42, "lock '%s'", "x"), MB_EBUSY);
  ASSERT_STR_EQ(mb_last_error(), "lock 'x': resource busy (os error 42)");
  ASSERT_EQ(mb_last_os_error(), 42);
  mb__error_clear();
  ASSERT_STR_EQ(mb_last_error(), "");
}

TEST(reserve_commit_decommit_release) {
  size_t ps = page(), size = 16 * ps;
  unsigned char *p = NULL;
  size_t i;

  ASSERT_OK(mb_os_reserve(size, (void **)&p));
  ASSERT(p != NULL);
  ASSERT_EQ((uintptr_t)p % mb_os_mem_config()->alloc_granularity, 0);
  ASSERT_OK(mb_os_commit(p + 2 * ps, 3 * ps));
  for (i = 2 * ps; i < 5 * ps; i++)
    ASSERT_EQ(p[i], 0); /* fresh pages read as zero */
  memset(p + 2 * ps, 0xAB, 3 * ps);
  /* Committing again keeps the contents. */
  ASSERT_OK(mb_os_commit(p + 2 * ps, ps));
  ASSERT_EQ(p[2 * ps + 7], 0xAB);
  /* Decommit, recommit: zero again. */
  ASSERT_OK(mb_os_decommit(p + 2 * ps, ps));
  ASSERT_OK(mb_os_commit(p + 2 * ps, ps));
  ASSERT_EQ(p[2 * ps + 7], 0);
  ASSERT_EQ(p[3 * ps], 0xAB); /* the neighbour kept its bytes */
  ASSERT_OK(mb_os_release(p, size));
}

TEST(vm_bad_arguments) {
  size_t ps = page();
  unsigned char *p = NULL;
  ASSERT_ERR(mb_os_reserve(0, (void **)&p), MB_EINVAL);
  ASSERT_ERR(mb_os_reserve(ps + 1, (void **)&p), MB_EINVAL);
  ASSERT_OK(mb_os_reserve(4 * ps, (void **)&p));
  ASSERT_ERR(mb_os_commit(p + 1, ps), MB_EINVAL);
  ASSERT_ERR(mb_os_commit(p, ps + 3), MB_EINVAL);
  ASSERT_ERR(mb_os_commit(NULL, ps), MB_EINVAL);
  ASSERT_OK(mb_os_release(p, 4 * ps));
  /* The reservation is gone: committing inside it now is outside any reservation. */
  ASSERT_ERR(mb_os_commit(p, ps), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), "commit");
  ASSERT_NE(mb_last_os_error(), 0);
}

TEST(section_names) {
  mb_os_section_t s;
  char longname[MB_OS_NAME_MAX + 10];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  ASSERT_ERR(mb_os_section_create(&s, longname, page(), 0, NULL), MB_ENAMETOOLONG);
  ASSERT_ERR(mb_os_section_open(&s, longname, 0, 0), MB_ENAMETOOLONG);
  ASSERT_ERR(mb_os_section_create(&s, "", page(), 0, NULL), MB_EINVAL);
  ASSERT_ERR(mb_os_section_create(&s, "bad/name", page(), 0, NULL), MB_EINVAL);
  ASSERT_ERR(mb_os_section_create(&s, "bad\\name", page(), 0, NULL), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "bad\\name");
}

TEST(section_open_missing) {
  mb_os_section_t s;
  char name[64];
  mb_test_name(name, sizeof name, "nosuch");
  ASSERT_ERR(mb_os_section_open(&s, name, 0, 1), MB_ENOENT);
  ASSERT_CONTAINS(mb_last_error(), name);
  ASSERT_ERR(mb_os_section_open(&s, name, MB_OS_SEC_RESERVE, 0), MB_ENOENT);
}

TEST(section_committed_create_map) {
  mb_os_section_t s, o;
  char name[64];
  unsigned char *a = NULL, *b = NULL;
  uint64_t size = 8 * page(), committed = 0;

  mb_test_name(name, sizeof name, "commit");
  mb_os_section_unlink(name, 0);
  ASSERT_OK(mb_os_section_create(&s, name, size, 0, NULL));
  ASSERT_EQ_U64(s.size, size);
  ASSERT_ERR(mb_os_section_create(&o, name, size, 0, NULL), MB_EEXIST);
  ASSERT_OK(mb_os_section_map(&s, 0, 1, (void **)&a));
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, size);
  ASSERT_EQ(a[size - 1], 0);

  ASSERT_OK(mb_os_section_open(&o, name, 0, 0));
  ASSERT_EQ_U64(o.size, size);
  ASSERT_ERR(mb_os_section_map(&o, size + page(), 0, (void **)&b), MB_ERANGE);
  ASSERT_ERR(mb_os_section_map(&o, 0, 1, (void **)&b), MB_EACCES);
  ASSERT_OK(mb_os_section_map(&o, 0, 0, (void **)&b));
  a[100] = 42;
  a[size - 1] = 7;
  ASSERT_EQ(b[100], 42);
  ASSERT_EQ(b[size - 1], 7);

  ASSERT_OK(mb_os_section_unmap(b, size));
  mb_os_section_close(&o);
  ASSERT_OK(mb_os_section_unmap(a, size));
  mb_os_section_close(&s);
  mb_os_section_unlink(name, 0);
}

TEST(section_reserve_commit_accounting) {
  mb_os_section_t s;
  char name[64];
  unsigned char *a = NULL;
  uint64_t ps = page(), size = 256 * ps, committed = 1;

  mb_test_name(name, sizeof name, "reserve");
  mb_os_section_unlink(name, 0);
  ASSERT_OK(mb_os_section_create(&s, name, size, MB_OS_SEC_RESERVE, NULL));
  ASSERT_OK(mb_os_section_map(&s, 0, 1, (void **)&a));
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, 0);

  ASSERT_OK(mb_os_section_commit(&s, a, 3 * ps, 2 * ps));
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, 2 * ps);
  ASSERT_EQ(a[3 * ps], 0);
  a[3 * ps] = 1;
  a[5 * ps - 1] = 2;
  /* Idempotent: committing again neither charges again nor clears. */
  ASSERT_OK(mb_os_section_commit(&s, a, 3 * ps, ps));
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, 2 * ps);
  ASSERT_EQ(a[3 * ps], 1);

  ASSERT_ERR(mb_os_section_commit(&s, a, size, ps), MB_ERANGE);
  ASSERT_ERR(mb_os_section_commit(&s, a, size - ps, 2 * ps), MB_ERANGE);
  ASSERT_ERR(mb_os_section_commit(&s, a, 1, ps), MB_EINVAL);

  if (mb_os_mem_config()->shared_decommit) {
    ASSERT_OK(mb_os_section_decommit(&s, a, 3 * ps, ps));
    ASSERT_OK(mb_os_section_committed(&s, a, &committed));
    ASSERT_EQ_U64(committed, ps);
    ASSERT_EQ(a[5 * ps - 1], 2);
  } else {
    ASSERT_ERR(mb_os_section_decommit(&s, a, 3 * ps, ps), MB_ENOTSUP);
  }
  ASSERT_OK(mb_os_section_unmap(a, size));
  mb_os_section_close(&s);
  mb_os_section_unlink(name, 0);
}

/* Child: open the section named argv[0], commit page argv[1], write argv[2] there. */
CHILD(commit_and_write) {
  mb_os_section_t s;
  unsigned char *v = NULL;
  uint64_t pg;
  if (argc != 3)
    return 10;
  pg = strtoull(argv[1], NULL, 10);
  if (mb_os_section_open(&s, argv[0], MB_OS_SEC_RESERVE, 1) != 0)
    return 11;
  if (mb_os_section_map(&s, 0, 1, (void **)&v) != 0)
    return 12;
  if (mb_os_section_commit(&s, v, pg * page(), page()) != 0)
    return 13;
  v[pg * page() + 1] = (unsigned char)atoi(argv[2]);
  mb_os_section_unmap(v, s.size);
  mb_os_section_close(&s);
  return 0;
}

TEST(section_cross_process_commit) {
  mb_os_section_t s;
  char name[64];
  unsigned char *a = NULL;
  uint64_t ps = page(), size = 64 * ps, committed = 1;

  mb_test_name(name, sizeof name, "xproc");
  mb_os_section_unlink(name, 0);
  ASSERT_OK(mb_os_section_create(&s, name, size, MB_OS_SEC_RESERVE, NULL));
  ASSERT_OK(mb_os_section_map(&s, 0, 1, (void **)&a));
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, 0);

  ASSERT_EQ(mb_test_run_child(30000, "commit_and_write", name, "9", "77", (char *)NULL), 0);

  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, ps);
  ASSERT_OK(mb_os_section_commit(&s, a, 9 * ps, ps)); /* our own view, no new charge */
  ASSERT_EQ(a[9 * ps + 1], 77);
  ASSERT_OK(mb_os_section_committed(&s, a, &committed));
  ASSERT_EQ_U64(committed, ps);

  ASSERT_OK(mb_os_section_unmap(a, size));
  mb_os_section_close(&s);
  mb_os_section_unlink(name, 0);
}

CHILD(exit_with) {
  return argc > 0 ? atoi(argv[0]) : 0;
}

CHILD(sleep_long) {
  (void)argc;
  (void)argv;
  mb_os_sleep_ms(60000);
  return 0;
}

TEST(process_identity) {
  mb_os_procid_t self, q, fake;
  mb_os_proc_self(&self);
  ASSERT_NE(self.pid, 0);
  ASSERT_OK(mb_os_proc_query(self.pid, &q));
  ASSERT_EQ(q.pid, self.pid);
  ASSERT_EQ_U64(q.start_time, self.start_time);
  ASSERT_EQ(mb_os_proc_alive(&self), 1);
  /* Same pid, another start time: a reused pid is not our process. */
  fake = self;
  fake.start_time += 12345;
  ASSERT_EQ(mb_os_proc_alive(&fake), 0);
}

TEST(process_spawn_wait_kill) {
  mb_os_child_t c;
  mb_os_procid_t id;
  int code = -1;

  ASSERT_EQ(mb_test_run_child(30000, "exit_with", "23", (char *)NULL), 23);

  ASSERT_OK(mb_test_spawn(&c, "sleep_long", (char *)NULL));
  ASSERT_OK(mb_os_proc_query(c.pid, &id));
  ASSERT_EQ(mb_os_proc_alive(&id), 1);
  ASSERT_ERR(mb_os_child_wait(&c, 10, &code), MB_ETIMEOUT);
  ASSERT_OK(mb_os_child_kill(&c));
  ASSERT_OK(mb_os_child_wait(&c, 30000, &code));
  ASSERT_NE(code, 0);
  ASSERT_EQ(mb_os_proc_alive(&id), 0);
}

static mb_au32 exits_told;     /* calls of on_exit_told (mb_os_proc_watch_notify) */
static mb_au32 cancelled_told; /* calls that came though their notification was cancelled */

static void on_exit_told(void *arg) {
  mb_add32((mb_au32 *)arg, 1);
}

/* 1 once `fd` polls readable (a watch's descriptor: its process exited). */
static int fd_readable(int fd) {
#if MB_OS_POSIX
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
#else
  (void)fd;
  return 0;
#endif
}

/*
 * A process watch refers to exactly the process meant (a pid with another start time gets
 * none), and says when it exits without being asked: its descriptor polls readable (Linux:
 * the pidfd) or the OS calls back on one of its threads (Windows), also while the child is
 * not reaped yet. A cancelled notification never comes.
 */
TEST(process_watch) {
  mb_os_child_t c;
  mb_os_procid_t id, other;
  intptr_t w = 0, w2 = 0;
  int code, fd, rc;
  ASSERT_OK(mb_test_spawn(&c, "sleep_long", (char *)NULL));
  ASSERT_OK(mb_os_proc_query(c.pid, &id));
  other = id;
  other.start_time += 1;
  ASSERT_ERR(mb_os_proc_watch(&other, &w), MB_ESRCH);
  ASSERT_OK(mb_os_proc_watch(&id, &w));
  ASSERT_OK(mb_os_proc_watch(&id, &w2));
  ASSERT_EQ(mb_os_proc_watch_exited(w), 0);
  fd = mb_os_proc_watch_fd(w);
  rc = mb_os_proc_watch_notify(w, on_exit_told, &exits_told);
  if (fd < 0 && rc != 0) {
    mb_os_proc_watch_close(w);
    mb_os_proc_watch_close(w2);
    mb_os_child_kill(&c);
    mb_os_child_wait(&c, 30000, &code);
    SKIP("no waitable process exit here (the broker polls): %s", mb_last_error());
  }
  if (fd >= 0) {
    ASSERT_ERR(rc, MB_ENOTSUP); /* one way is enough: the descriptor */
    ASSERT_EQ(fd_readable(fd), 0);
  } else {
    ASSERT_OK(mb_os_proc_watch_notify(w2, on_exit_told, &cancelled_told));
    ASSERT_OK(mb_os_proc_watch_notify(w2, NULL, NULL));
  }
  ASSERT_EQ(mb_load32(&exits_told), 0);
  ASSERT_OK(mb_os_child_kill(&c));
  if (fd >= 0)
    WAIT_FOR(fd_readable(fd), 30000);
  else
    WAIT_FOR(mb_load32(&exits_told) == 1, 30000);
  ASSERT_EQ(mb_os_proc_watch_exited(w), 1);
  ASSERT_EQ(mb_os_proc_watch_exited(w2), 1);
  mb_os_proc_watch_close(w);
  mb_os_proc_watch_close(w2);
  ASSERT_EQ(mb_load32(&exits_told), fd >= 0 ? 0 : 1);
  ASSERT_EQ(mb_load32(&cancelled_told), 0);
  ASSERT_OK(mb_os_child_wait(&c, 30000, &code));
  ASSERT_ERR(mb_os_proc_watch(&id, &w), MB_ESRCH); /* gone */
}

TEST(spawn_missing_program) {
  mb_os_child_t c;
  const char *argv[] = {"/nonexistent/membroker-no-such-program", NULL};
  int rc = mb_os_spawn(argv, &c), code = 0;
  /* posix_spawn may report the failure as exit status 127 of the child instead. */
  if (rc == 0) {
    ASSERT_OK(mb_os_child_wait(&c, 30000, &code));
    ASSERT_EQ(code, 127);
  } else {
    ASSERT_ERR(rc, MB_ENOENT);
  }
}

TEST(clocks_and_memory) {
  uint64_t a = mb_os_mono_ns(), b, wall = mb_os_wall_ns(), rss = 0;
  mb_os_memstatus_t st;
  mb_os_sleep_ms(2);
  b = mb_os_mono_ns();
  ASSERT_GE(b - a, 1000000u);
  /* Wall clock after 2020-01-01. */
  ASSERT_GT(wall / 1000000000u, 1577836800u);
  ASSERT_OK(mb_os_memstatus(&st));
  ASSERT_GT(st.total, 0);
  ASSERT_LE(st.available, st.total);
  ASSERT_OK(mb_os_self_rss(&rss));
  ASSERT_GT(rss, 0);
}

/* The single-instance lock: one holder at a time, and (POSIX) its file goes with it. */
TEST(instance_lock) {
  char name[64], dir[512], file[700];
  intptr_t a = 0, b = 0;
  mb_test_name(name, sizeof name, "lock");
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), "held by another process");
  (void)dir;
#if MB_OS_POSIX
  ASSERT_OK(mb_os_lock_path(name, file, sizeof file));
  {
    FILE *f = fopen(file, "r");
    ASSERT(f != NULL);
    fclose(f);
  }
#endif
  mb_os_lock_release(a);
#if MB_OS_POSIX
  ASSERT(fopen(file, "r") == NULL); /* removed with the lock */
#endif
  (void)file;
  ASSERT_OK(mb_os_lock_take(name, 0, &b));
  mb_os_lock_release(b);
}

/* POSIX: the lock lives beside the shared objects (/dev/shm), not in the runtime directory,
 * which differs between a systemd service and a user's console broker: two brokers that see
 * two runtime directories still exclude each other. A FIFO planted under the lock's name is
 * refused at once, never waited on. */
TEST(instance_lock_whatever_the_runtime_dir) {
#if MB_OS_POSIX
  char name[64], file[700], dir[600], old[600];
  const char *env = getenv("MEMBROKER_RUNTIME_DIR");
  intptr_t a = 0, b = 0;
  uint64_t t0;
  snprintf(old, sizeof old, "%s", env ? env : "");
  mb_test_name(name, sizeof name, "rdir");
  snprintf(dir, sizeof dir, "/tmp/%s.a", name);
  ASSERT_OK(mb_os_env_set("MEMBROKER_RUNTIME_DIR", dir));
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  snprintf(dir, sizeof dir, "/tmp/%s.b", name);
  ASSERT_OK(mb_os_env_set("MEMBROKER_RUNTIME_DIR", dir));
  ASSERT_ERR(mb_os_lock_take(name, MB_OS_LOCK_SERVICE, &b), MB_EBUSY);
  ASSERT_OK(mb_os_env_set("MEMBROKER_RUNTIME_DIR", old[0] ? old : NULL));
  mb_os_lock_release(a);
  rmdir(dir);
  snprintf(dir, sizeof dir, "/tmp/%s.a", name);
  rmdir(dir);

  ASSERT_OK(mb_os_lock_path(name, file, sizeof file));
  ASSERT_EQ(mkfifo(file, 0644), 0);
  t0 = mb_os_mono_ns();
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EEXIST);
  ASSERT_CONTAINS(mb_last_error(), "not a regular file");
  {
    mb_os_lock_holder_t h;
    (void)mb_os_lock_holder(name, &h); /* returns at once: nothing to believe */
    ASSERT_EQ(h.pid, 0);
  }
  ASSERT_LT(mb_os_mono_ns() - t0, 10ull * 1000000000u); /* not blocked on the FIFO */
  unlink(file);
#else
  SKIP("the Windows lock is a named mutex in Global\\: no runtime directory, no file to plant");
#endif
}

/* ---- the single-instance lock names its holder ------------------------------------------- */

/* The lock's record file as a string (empty if there is none). */
static const char *lock_record(const char *name) {
  static char text[256];
  char path[700];
  ASSERT_OK(mb_os_lock_path(name, path, sizeof path));
  return mb_test_file_text(path, text, sizeof text);
}

/* The busy error names the holder: its pid and whether it is a service or a console. */
TEST(instance_lock_names_holder) {
  char name[64], want[64];
  const char *svc = MB_OS_WIN ? "Windows service" : "service";
  intptr_t a = 0, b = 0;
  mb_os_lock_holder_t who;
  mb_os_procid_t self;

  mb_os_proc_self(&self);
  mb_test_name(name, sizeof name, "lockwho");
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  ASSERT_OK(mb_os_lock_holder(name, &who));
  ASSERT_EQ(who.pid, self.pid);
  ASSERT_EQ(who.service, 0);
  snprintf(want, sizeof want, "pid %u, console", (unsigned)self.pid);
  ASSERT_STR_EQ(who.what, want);
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), "held by another process");
  ASSERT_CONTAINS(mb_last_error(), want);
  mb_os_lock_release(a);
  /* The record went with the lock. */
  ASSERT_STR_EQ(lock_record(name), "");
  ASSERT_ERR(mb_os_lock_holder(name, &who), MB_ENOENT);
  ASSERT_EQ(who.pid, 0);

  ASSERT_OK(mb_os_lock_take(name, MB_OS_LOCK_SERVICE, &a));
  ASSERT_OK(mb_os_lock_holder(name, &who));
  ASSERT_EQ(who.service, 1);
  snprintf(want, sizeof want, "pid %u, %s", (unsigned)self.pid, svc);
  ASSERT_STR_EQ(who.what, want);
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), want);
  mb_os_lock_release(a);
  ASSERT_STR_EQ(lock_record(name), "");
}

/* One lock for both namespaces: a Windows service (Global\) and a console broker (Local\)
 * exclude each other, whichever came first. (POSIX has one namespace: the same holds.) */
TEST(instance_lock_one_namespace) {
  char name[64];
  intptr_t a = 0, b = 0;
  mb_test_name(name, sizeof name, "lockns");
  ASSERT_OK(mb_os_lock_take(name, MB_OS_SEC_GLOBAL | MB_OS_LOCK_SERVICE, &a));
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
  ASSERT_ERR(mb_os_lock_take(name, MB_OS_SEC_GLOBAL, &b), MB_EBUSY);
  mb_os_lock_release(a);
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  ASSERT_ERR(mb_os_lock_take(name, MB_OS_SEC_GLOBAL | MB_OS_LOCK_SERVICE, &b), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), "console");
  mb_os_lock_release(a);
  ASSERT_OK(mb_os_lock_take(name, MB_OS_SEC_GLOBAL, &b));
  mb_os_lock_release(b);
}

/* Child: take lock argv[0] (as a service if argv[1] is "service") and hold it until killed. */
CHILD(hold_lock) {
  intptr_t lock = 0;
  if (argc != 2)
    return 10;
  if (mb_os_lock_take(argv[0], strcmp(argv[1], "service") == 0 ? MB_OS_LOCK_SERVICE : 0, &lock) !=
      0)
    return 11;
  mb_os_sleep_ms(60000); /* the parent kills it long before */
  return 12;
}

/* Another process holds it: the error names that process; once it is killed (a crash: no
 * release), its record is not believed any more and the lock is free. */
TEST(instance_lock_holder_other_process) {
  char name[64], want[64];
  mb_os_lock_holder_t who;
  mb_os_child_t c;
  intptr_t a = 0;
  int code = -1;

  mb_test_name(name, sizeof name, "lockxp");
  ASSERT_OK(mb_test_spawn(&c, "hold_lock", name, "service", (char *)NULL));
  WAIT_FOR(mb_os_lock_holder(name, &who) == 0 || mb_os_child_wait(&c, 0, &code) == 0, 30000);
  ASSERT_EQ(code, -1); /* it did not exit */
  ASSERT_EQ(who.pid, c.pid);
  ASSERT_EQ(who.service, 1);
  snprintf(want, sizeof want, "pid %u, %s", (unsigned)c.pid,
           MB_OS_WIN ? "Windows service" : "service");
  ASSERT_ERR(mb_os_lock_take(name, 0, &a), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), want);

  ASSERT_OK(mb_os_child_kill(&c));
  ASSERT_OK(mb_os_child_wait(&c, 30000, &code));
  /* POSIX: the dead holder's line is still in the file, and not believed. Windows: the
   * record file went with the dead holder's handle. */
  ASSERT_ERR(mb_os_lock_holder(name, &who), MB_ENOENT);
  ASSERT_CONTAINS(who.what, "starting");
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  ASSERT_OK(mb_os_lock_holder(name, &who));
  ASSERT_EQ(who.service, 0);
  mb_os_lock_release(a);
}

/* Write `text` as the lock's record file (what a crashed holder might leave). */
static void write_record(const char *name, const char *text) {
  char path[700];
  FILE *fp;
  ASSERT_OK(mb_os_lock_path(name, path, sizeof path));
  fp = fopen(path, "wb");
  ASSERT(fp != NULL);
  fputs(text, fp);
  fclose(fp);
}

/* A record that names a dead or reused pid, or does not parse, is not believed: the holder is
 * "starting", and the next holder replaces the record with its own. */
TEST(instance_lock_stale_record) {
  char name[64], text[128], path[700];
  mb_os_lock_holder_t who;
  mb_os_procid_t self;
  intptr_t a = 0, b = 0;
  int i;

  mb_os_proc_self(&self);
  mb_test_name(name, sizeof name, "lockstale");
  ASSERT_OK(mb_os_lock_take(name, 0, &a)); /* makes the record's directory */
  mb_os_lock_release(a);

  /* Our own pid with another start time: a reused pid. Then records that do not parse. */
  snprintf(text, sizeof text, "%u %llu service\n", (unsigned)self.pid,
           (unsigned long long)self.start_time + 1);
  {
    const char *bad[5];
    char good[128];
    snprintf(good, sizeof good, "%u %llu service\n", (unsigned)self.pid,
             (unsigned long long)self.start_time);
    bad[0] = text;
    bad[1] = "";
    bad[2] = "garbage\n";
    bad[3] = good + 1; /* a pid cut short */
    bad[4] = "0 0 console\n";
    for (i = 0; i < 5; i++) {
      write_record(name, bad[i]);
      ASSERT_ERR(mb_os_lock_holder(name, &who), MB_ENOENT);
      ASSERT_EQ(who.pid, 0);
      ASSERT_STR_EQ(who.what, "starting; it has not said who it is yet");
    }
    /* The same line with the true start time is believed (it is this process). */
    write_record(name, good);
    ASSERT_OK(mb_os_lock_holder(name, &who));
    ASSERT_EQ(who.pid, self.pid);
  }

  /* Someone holds the lock but has not written its record yet; a stale one is there. */
  write_record(name, text);
  ASSERT_OK(mb_os_lock_path(name, path, sizeof path));
#if MB_OS_POSIX
  {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
    ASSERT_CONTAINS(mb_last_error(), "(starting; it has not said who it is yet)");
    close(fd);
  }
#else
  {
    wchar_t wname[128];
    HANDLE m;
    swprintf(wname, 128, L"Global\\%hs", name);
    m = CreateMutexW(NULL, FALSE, wname);
    ASSERT(m != NULL);
    ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
    ASSERT_CONTAINS(mb_last_error(), "(starting; it has not said who it is yet)");
    CloseHandle(m);
  }
#endif
  /* The next holder replaces the stale record with its own, and takes it away again. */
  ASSERT_OK(mb_os_lock_take(name, MB_OS_LOCK_SERVICE, &a));
  ASSERT_OK(mb_os_lock_holder(name, &who));
  ASSERT_EQ(who.pid, self.pid);
  ASSERT_EQ(who.service, 1);
  mb_os_lock_release(a);
  ASSERT_STR_EQ(lock_record(name), "");
  remove(path); /* nothing left to remove, normally */
}

/* ---- the machine data directory a service writes in ------------------------------------ */

#if MB_OS_WIN
#include <aclapi.h>
#include <sddl.h>
#include <winioctl.h>

/* The owner and DACL of file or folder `path` (UTF-8) as SDDL, or "" if they cannot be read. */
static const char *sddl_of(const char *path) {
  static char text[1024];
  PSECURITY_DESCRIPTOR sd = NULL;
  wchar_t w[700], *s = NULL;
  text[0] = '\0';
  MultiByteToWideChar(CP_UTF8, 0, path, -1, w, 700);
  if (GetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, NULL, NULL,
                            NULL, NULL, &sd) != ERROR_SUCCESS)
    return text;
  if (ConvertSecurityDescriptorToStringSecurityDescriptorW(
          sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &s, NULL)) {
    WideCharToMultiByte(CP_UTF8, 0, s, -1, text, (int)sizeof text, NULL, NULL);
    LocalFree(s);
  }
  LocalFree(sd);
  return text;
}

/* <data dir>\<rest> into buf, as UTF-8 and as UTF-16. */
static void data_path(const char *rest, char *buf, size_t size, wchar_t *w, int wcount) {
  char dir[600];
  ASSERT_OK(mb_os_data_dir(dir, sizeof dir));
  snprintf(buf, size, "%s\\%s", dir, rest);
  MultiByteToWideChar(CP_UTF8, 0, buf, -1, w, wcount);
}
#endif

#if MB_OS_WIN
/* 1 under Wine (ntdll exports wine_get_version). */
static int is_wine(void) {
  HMODULE nt = GetModuleHandleW(L"ntdll.dll");
  return nt != NULL && GetProcAddress(nt, "wine_get_version") != NULL;
}

/*
 * The DACL a prepared folder reads back. Windows: the explicit ACEs, owned by Administrators
 * (`users` the ACEs Users get there). Wine keeps no descriptor of files: it turns the DACL
 * into the Unix mode and reads back an owner (its one user) and ACEs made from that mode; what
 * shows that ours was applied to a folder it created is that Everyone (the mode's "other"
 * bits, which a folder created without a descriptor has: (A;OICI;0x1200a9;;;WD)) has no ACE,
 * while SYSTEM has. (Setting the DACL again on a folder that exists, Wine turns into a mode
 * with "other" bits: only a folder just created is checked under Wine.)
 */
static void assert_prepared(const char *path, const char *const *users) {
  const char *sd = sddl_of(path);
  if (is_wine()) {
    ASSERT_CONTAINS(sd, ";;;SY)");
    ASSERT(strstr(sd, ";;;WD)") == NULL);
    return;
  }
  ASSERT_CONTAINS(sd, "O:BA");
  ASSERT_CONTAINS(sd, "(A;OICI;FA;;;SY)");
  ASSERT_CONTAINS(sd, "(A;OICI;FA;;;BA)");
  for (; *users != NULL; users++)
    ASSERT_CONTAINS(sd, *users);
  ASSERT(strstr(sd, ";;;WD)") == NULL && strstr(sd, ";;;AU)") == NULL);
}
#endif

/*
 * mb_os_data_dir_prepare gives the data dir, the lock records' folder and an instance's
 * folder their explicit DACL, owned by Administrators: SYSTEM and Administrators full
 * control, Users read & execute, and in locks\ Users add files (0x1200ab: list, add file, no
 * FILE_ADD_SUBDIRECTORY), read every file, and each file is its creator's (CREATOR OWNER).
 * Read back as SDDL (under Wine as assert_prepared says). POSIX has no data dir: MB_ENOTSUP.
 */
TEST(data_dir_prepare) {
  char sub[64], buf[700];
#if MB_OS_WIN
  static const char *const data_users[] = {"(A;OICI;0x1200a9;;;BU)", NULL};
  static const char *const lock_users[] = {"(A;;0x1200ab;;;BU)", "(A;OIIO;0x1200a9;;;BU)",
                                           "(A;OIIO;FA;;;CO)", NULL};
  char dir[600], path[700];
  wchar_t w[700];
#endif
  mb_test_name(sub, sizeof sub, "prep");
#if MB_OS_POSIX
  ASSERT_ERR(mb_os_data_dir_prepare(sub, buf, sizeof buf), MB_ENOTSUP);
#else
  ASSERT_OK(mb_os_data_dir_prepare(NULL, dir, sizeof dir));
  ASSERT_OK(mb_os_data_dir(buf, sizeof buf));
  ASSERT_STR_EQ(dir, buf);
  if (!is_wine()) { /* folders that may exist already: see assert_prepared */
    assert_prepared(dir, data_users);
    data_path("locks", path, sizeof path, w, 700);
    assert_prepared(path, lock_users);
  }

  data_path(sub, path, sizeof path, w, 700);
  RemoveDirectoryW(w); /* left by an earlier run of a process with this pid */
  ASSERT_OK(mb_os_data_dir_prepare(sub, buf, sizeof buf));
  ASSERT_STR_EQ(buf, path);
  assert_prepared(path, data_users);
  /* Again, on folders that exist: they pass the checks and keep their DACL. */
  ASSERT_OK(mb_os_data_dir_prepare(sub, buf, sizeof buf));
  if (!is_wine())
    assert_prepared(path, data_users);
  ASSERT(RemoveDirectoryW(w));
#endif
  /* The lock records' folder is not an instance's folder. */
  ASSERT_ERR(mb_os_data_dir_prepare("locks", buf, sizeof buf), MB_OS_WIN ? MB_EINVAL : MB_ENOTSUP);
  if (MB_OS_WIN)
    ASSERT_CONTAINS(mb_last_error(), "log.file");
}

/*
 * A folder another user made (so owns: it could change its ACL or swap it for a junction) is
 * refused with a message that names it and says what to do; nothing is written into it.
 */
TEST(data_dir_refuses_foreign_owner) {
#if MB_OS_POSIX
  SKIP("POSIX has no machine data directory (mb_os_data_dir_prepare is MB_ENOTSUP)");
#else
  char sub[64], path[700], buf[700];
  wchar_t w[700];
  PSECURITY_DESCRIPTOR sd = NULL;
  SECURITY_ATTRIBUTES sa;

  ASSERT_OK(mb_os_data_dir_prepare(NULL, buf, sizeof buf));
  mb_test_name(sub, sizeof sub, "foreign");
  data_path(sub, path, sizeof path, w, 700);
  RemoveDirectoryW(w); /* left by an earlier run of a process with this pid */
  /* Owned by Users: neither SYSTEM, Administrators nor this user (what a non-administrator's
   * folder is to the service). Setting such an owner takes a privilege on Windows. */
  ASSERT(ConvertStringSecurityDescriptorToSecurityDescriptorW(L"O:BUD:(A;OICI;FA;;;WD)",
                                                              SDDL_REVISION_1, &sd, NULL));
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = sd;
  sa.bInheritHandle = FALSE;
  if (!CreateDirectoryW(w, &sa)) {
    DWORD e = GetLastError();
    LocalFree(sd);
    SKIP("cannot make a folder owned by another account here (error %lu)", (unsigned long)e);
  }
  LocalFree(sd);
  if (strstr(sddl_of(path), "O:BU") == NULL) {
    char got[300];
    snprintf(got, sizeof got, "%s", sddl_of(path));
    RemoveDirectoryW(w);
    SKIP("this Windows (Wine) keeps no owner of a folder: made owned by Users, it reads back %s",
         got);
  }
  ASSERT_ERR(mb_os_data_dir_prepare(sub, buf, sizeof buf), MB_EACCES);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), "S-1-5-32-545");
  ASSERT_CONTAINS(mb_last_error(), "remove it; the service recreates it");
  ASSERT(strstr(sddl_of(path), "O:BU") != NULL); /* left as it was */
  ASSERT(RemoveDirectoryW(w));
  /* Once removed, the service makes it its own. */
  ASSERT_OK(mb_os_data_dir_prepare(sub, buf, sizeof buf));
  ASSERT_CONTAINS(sddl_of(path), "O:BA");
  ASSERT(RemoveDirectoryW(w));
#endif
}

#if MB_OS_WIN
/* Make the empty folder w a junction to target (an NT path "\??\C:\..."): 1 if done. */
static int make_junction(const wchar_t *w, const wchar_t *target) {
  unsigned char buf[1024];
  REPARSE_GUID_DATA_BUFFER *unused = NULL;
  DWORD got = 0;
  USHORT tlen = (USHORT)(wcslen(target) * sizeof(wchar_t));
  /* REPARSE_DATA_BUFFER of a mount point: tag, data length, reserved, then substitute name
   * offset/length, print name offset/length, and the path buffer (substitute, NUL, print, NUL). */
  USHORT hdr[8];
  HANDLE h;
  BOOL ok;
  size_t total;
  (void)unused;
  memset(buf, 0, sizeof buf);
  hdr[4] = 0;                                 /* substitute name offset */
  hdr[5] = tlen;                              /* substitute name length */
  hdr[6] = (USHORT)(tlen + sizeof(wchar_t));  /* print name offset */
  hdr[7] = 0;                                 /* print name length */
  total = 8 + 8 + tlen + 2 * sizeof(wchar_t); /* header + names + two NULs */
  *(DWORD *)(void *)buf = IO_REPARSE_TAG_MOUNT_POINT;
  *(USHORT *)(void *)(buf + 4) = (USHORT)(total - 8);
  memcpy(buf + 8, &hdr[4], 8);
  memcpy(buf + 16, target, tlen);
  h = CreateFileW(w, GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                  FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (h == INVALID_HANDLE_VALUE)
    return 0;
  ok = DeviceIoControl(h, FSCTL_SET_REPARSE_POINT, buf, (DWORD)total, NULL, 0, &got, NULL);
  CloseHandle(h);
  return ok && (GetFileAttributesW(w) & FILE_ATTRIBUTE_REPARSE_POINT);
}
#endif

#if MB_OS_WIN

#endif

/* A junction (a reparse point) where a folder of the service should be is refused, not
 * followed; the message names it and says to remove it. */
TEST(data_dir_refuses_junction) {
#if MB_OS_POSIX
  SKIP("POSIX has no machine data directory (mb_os_data_dir_prepare is MB_ENOTSUP)");
#else
  char sub[64], path[700], buf[700], tdir[600];
  wchar_t w[700], target[700];
  int unix_link = 0;
  DWORD n;
  ASSERT_OK(mb_os_data_dir_prepare(NULL, buf, sizeof buf));
  mb_test_name(sub, sizeof sub, "junction");
  data_path(sub, path, sizeof path, w, 700);
  RemoveDirectoryW(w); /* left by an earlier run of a process with this pid */
  ASSERT_OK(mb_os_runtime_dir(tdir, sizeof tdir));
  n = (DWORD)swprintf(target, 700, L"\\??\\%hs", tdir);
  ASSERT_GT(n, 4);
  ASSERT(CreateDirectoryW(w, NULL));
  if (!make_junction(w, target)) {
    RemoveDirectoryW(w);
    if (!is_wine())
      SKIP("cannot make a junction here (FSCTL_SET_REPARSE_POINT, mount point)");
    /* Wine 8 makes no junctions, but shows a Unix symbolic link to a folder as a reparse
     * point (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT): make one with ln. */
    if (!wine_unix_run(L"Z:\\bin\\ln -s /tmp", w))
      SKIP("neither a junction (FSCTL_SET_REPARSE_POINT) nor a Unix symlink (Z:\\bin\\ln) "
           "could be made");
    WAIT_FOR(GetFileAttributesW(w) != INVALID_FILE_ATTRIBUTES, 30000);
    unix_link = 1;
  }
  ASSERT(GetFileAttributesW(w) & FILE_ATTRIBUTE_REPARSE_POINT);
  ASSERT_ERR(mb_os_data_dir_prepare(sub, buf, sizeof buf), MB_EACCES);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), "reparse point");
  ASSERT_CONTAINS(mb_last_error(), "remove it; the service recreates it");
  if (unix_link) {
    ASSERT(wine_unix_run(L"Z:\\bin\\rm", w));
    WAIT_FOR(GetFileAttributesW(w) == INVALID_FILE_ATTRIBUTES, 30000);
  } else {
    ASSERT(RemoveDirectoryW(w)); /* removes the junction, not its target */
  }
  ASSERT(GetFileAttributesW(target + 4) != INVALID_FILE_ATTRIBUTES);
#endif
}

/*
 * A file planted under the service's record name (here a hard link to a file the service must
 * not touch) is deleted, not truncated or written through: the record is created anew.
 */
TEST(instance_lock_record_planted_link) {
#if MB_OS_POSIX
  SKIP("the POSIX record is the flock'd file in the runtime directory, not a shared folder");
#else
  char name[64], path[700], tdir[600], victim[700];
  wchar_t wpath[700], wvictim[700];
  mb_os_lock_holder_t who;
  intptr_t a = 0;
  FILE *fp;
  char text[64] = "";

  mb_test_name(name, sizeof name, "lockplant");
  ASSERT_OK(mb_os_data_dir_prepare(NULL, path, sizeof path));
  ASSERT_OK(mb_os_lock_path(name, path, sizeof path));
  ASSERT_CONTAINS(path, "\\locks\\");
  ASSERT_OK(mb_os_runtime_dir(tdir, sizeof tdir));
  snprintf(victim, sizeof victim, "%s\\%s.victim", tdir, name);
  fp = fopen(victim, "wb");
  ASSERT(fp != NULL);
  fputs("precious\n", fp);
  fclose(fp);
  MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, 700);
  MultiByteToWideChar(CP_UTF8, 0, victim, -1, wvictim, 700);
  if (!CreateHardLinkW(wpath, wvictim, NULL)) {
    DeleteFileW(wvictim);
    SKIP("this Windows (Wine) cannot make a hard link here (error %lu)",
         (unsigned long)GetLastError());
  }
  ASSERT_OK(mb_os_lock_take(name, MB_OS_LOCK_SERVICE, &a));
  ASSERT_OK(mb_os_lock_holder(name, &who));
  ASSERT_EQ(who.service, 1);
  ASSERT_STR_EQ(mb_test_file_text(victim, text, sizeof text), "precious\n");
  mb_os_lock_release(a);
  ASSERT_STR_EQ(lock_record(name), "");
  ASSERT(DeleteFileW(wvictim));
#endif
}

/* Windows: instance names that differ only in case are one lock (their pipe and record file
 * are one already: those names are not case-sensitive, the mutex's is). */
TEST(instance_lock_case) {
#if MB_OS_POSIX
  SKIP("POSIX names are case-sensitive: Foo's and foo's lock files and sockets differ too");
#else
  char name[64], upper[64];
  intptr_t a = 0, b = 0;
  size_t i;
  mb_test_name(name, sizeof name, "lockcase");
  for (i = 0; name[i] != '\0'; i++)
    upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
  upper[i] = '\0';
  ASSERT_OK(mb_os_lock_take(upper, MB_OS_LOCK_SERVICE, &a));
  ASSERT_ERR(mb_os_lock_take(name, 0, &b), MB_EBUSY);
  ASSERT_CONTAINS(mb_last_error(), "Windows service");
  mb_os_lock_release(a);
  ASSERT_OK(mb_os_lock_take(name, 0, &a));
  ASSERT_ERR(mb_os_lock_take(upper, 0, &b), MB_EBUSY);
  mb_os_lock_release(a);
#endif
}

/* ---- files, time and errors through the platform layer (issue 12) ---------------------------- */

/* Write `len` bytes to the file `path` through the layer; fails the test if it cannot. */
static void spill_file(const char *path, const void *data, size_t len) {
  FILE *f = NULL;
  ASSERT_EQ(mb_os_file_create(path, &f), 0);
  if (len > 0)
    ASSERT_EQ(fwrite(data, 1, len, f), len);
  ASSERT_EQ(fclose(f), 0);
}

TEST(read_file) {
  char name[64], path[128], *data = NULL;
  size_t len = 7;
  static const char text[] = "{\"a\": 1}\n\0tail"; /* a NUL inside is data like any byte */

  mb_test_name(name, sizeof name, "rf");
  snprintf(path, sizeof path, "%s.bin", name);
  spill_file(path, text, sizeof text - 1);
  ASSERT_EQ(mb_os_read_file(path, 1024, &data, &len), 0);
  ASSERT_EQ(len, sizeof text - 1);
  ASSERT_EQ(memcmp(data, text, len), 0);
  ASSERT_EQ(data[len], '\0'); /* a NUL after the last byte */
  free(data);

  /* The cap: exactly the size reads, one byte less is refused and names the sizes. */
  ASSERT_EQ(mb_os_read_file(path, sizeof text - 1, &data, &len), 0);
  free(data);
  data = NULL;
  ASSERT_ERR(mb_os_read_file(path, sizeof text - 2, &data, &len), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), "14 bytes, more than the 13");
  ASSERT(data == NULL);

  /* Empty: 0 bytes and still a NUL-terminated buffer. */
  spill_file(path, "", 0);
  ASSERT_EQ(mb_os_read_file(path, 1024, &data, &len), 0);
  ASSERT_EQ(len, 0);
  ASSERT_EQ(data[0], '\0');
  free(data);

  /* Missing: MB_ENOENT with the OS's code; the OS's own sentence for it. */
  ASSERT_EQ(mb_os_file_remove(path), 0);
  data = NULL;
  ASSERT_ERR(mb_os_read_file(path, 1024, &data, &len), MB_ENOENT);
  ASSERT_CONTAINS(mb_last_error(), "open '");
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_NE(mb_last_os_error(), 0);
  ASSERT(data == NULL);
  {
    char why[256];
    mb_os_error_text(mb_last_os_error(), why, sizeof why);
    ASSERT(why[0] != '\0');
    ASSERT(strstr(why, "os error") == NULL); /* a sentence of the OS, not the fallback */
    ASSERT(why[strlen(why) - 1] != '\n' && why[strlen(why) - 1] != '.');
  }
}

TEST(read_file_refuses_what_is_not_a_file) {
  char name[64], path[128], *data = NULL;
  size_t len = 0;
  mb_test_name(name, sizeof name, "rfdir");
  snprintf(path, sizeof path, "%s.d", name);
  ASSERT_EQ(mb_os_dir_create(path), 0);
  ASSERT_ERR(mb_os_read_file(path, 1024, &data, &len), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "it is a directory, not a regular file");
  ASSERT_EQ(mb_os_dir_remove(path), 0);
#if MB_OS_POSIX
  /* A FIFO with no writer: refused at once, never waited on (the test would time out). */
  snprintf(path, sizeof path, "%s.fifo", name);
  ASSERT_EQ(mkfifo(path, 0600), 0);
  ASSERT_ERR(mb_os_read_file(path, 1024, &data, &len), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "it is a FIFO");
  unlink(path);
  ASSERT_ERR(mb_os_read_file("/dev/null", 1024, &data, &len), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "it is a device");
#else
  ASSERT_ERR(mb_os_read_file("NUL", 1024, &data, &len), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "not a regular file");
#endif
  ASSERT(data == NULL);
}

/* A UTF-8 path (é, 日本) reads, creates and removes as itself on every OS: Windows must not
 * take it in the ANSI code page. */
TEST(read_file_utf8_path) {
  char name[64], path[160], *data = NULL;
  size_t len = 0;
  FILE *f = NULL;
  mb_test_name(name, sizeof name, "utf8");
  snprintf(path, sizeof path, "%s-\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac.txt", name);
  spill_file(path, "hello", 5);
  ASSERT_EQ(mb_os_read_file(path, 64, &data, &len), 0);
  ASSERT_EQ(len, 5);
  ASSERT_EQ(memcmp(data, "hello", 5), 0);
  free(data);
#if MB_OS_WIN
  {
    /* The file's name is those characters in UTF-16, not the UTF-8 bytes as ANSI. */
    wchar_t wpath[160];
    ASSERT(MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, 160) > 0);
    ASSERT(GetFileAttributesW(wpath) != INVALID_FILE_ATTRIBUTES);
  }
#endif
  /* Seek and tell in 64 bits, on a FILE of the layer. */
  ASSERT_EQ(mb_os_file_open(path, "rb", &f), 0);
  {
    uint64_t pos = 99, size = 0;
    char c = 0;
    ASSERT_EQ(mb_os_file_seek_end(f, &size), 0);
    ASSERT_EQ(size, 5);
    ASSERT_EQ(mb_os_file_seek(f, 1), 0);
    ASSERT_EQ(fread(&c, 1, 1, f), 1);
    ASSERT_EQ(c, 'e');
    ASSERT_EQ(mb_os_file_tell(f, &pos), 0);
    ASSERT_EQ(pos, 2);
  }
  fclose(f);
  /* discard: removes, and leaves the last failure's message as it was. */
  mb__errorf(MB_EIO, 0, "the failure being reported");
  mb_os_file_discard(path);
  ASSERT_CONTAINS(mb_last_error(), "the failure being reported");
  ASSERT_ERR(mb_os_file_remove(path), MB_ENOENT);
  mb_os_file_discard(path); /* nothing there: still quiet */
}

TEST(time_split) {
  mb_os_tm_t tm;
  /* 2026-12-02T16:27:43.123Z */
  uint64_t ns = UINT64_C(1796228863) * 1000000000u + 123456789u;
  mb_os_time_split(ns, 0, &tm);
  ASSERT_EQ(tm.year, 2026);
  ASSERT_EQ(tm.month, 12);
  ASSERT_EQ(tm.day, 2);
  ASSERT_EQ(tm.hour, 16);
  ASSERT_EQ(tm.min, 27);
  ASSERT_EQ(tm.sec, 43);
  ASSERT_EQ(tm.msec, 123);
  mb_os_time_split(0, 0, &tm);
  ASSERT_EQ(tm.year, 1970);
  ASSERT_EQ(tm.month, 1);
  ASSERT_EQ(tm.day, 1);
  ASSERT_EQ(tm.hour, 0);
  /* Local time: the same instant, within a day of UTC whatever the zone. */
  mb_os_time_split(ns, 1, &tm);
  ASSERT_EQ(tm.year, 2026);
  ASSERT_EQ(tm.month, 12);
  ASSERT(tm.day >= 1 && tm.day <= 3);
  ASSERT_EQ(tm.msec, 123);
}

TEST(errno_table) {
  ASSERT_EQ(mb__os_from_errno(ENOENT, MB_EOS), MB_ENOENT);
  ASSERT_EQ(mb__os_from_errno(EACCES, MB_EOS), MB_EACCES);
  ASSERT_EQ(mb__os_from_errno(EPERM, MB_EOS), MB_EACCES);
  ASSERT_EQ(mb__os_from_errno(EEXIST, MB_EOS), MB_EEXIST);
  ASSERT_EQ(mb__os_from_errno(ENOSPC, MB_EOS), MB_ENOSPC);
  ASSERT_EQ(mb__os_from_errno(EFBIG, MB_EOS), MB_ENOSPC);
  ASSERT_EQ(mb__os_from_errno(ENOMEM, MB_EOS), MB_ENOMEM);
  ASSERT_EQ(mb__os_from_errno(EINVAL, MB_EOS), MB_EINVAL);
  ASSERT_EQ(mb__os_from_errno(EROFS, MB_EOS), MB_EACCES);
  ASSERT_EQ(mb__os_from_errno(EDOM, MB_EOS), MB_EOS); /* no better meaning: the default */
  ASSERT_EQ(mb__os_from_errno(EDOM, MB_EIO), MB_EIO);
  {
    char buf[64];
    ASSERT_STR_EQ(mb_os_error_text(0, buf, sizeof buf), "os error 0");
  }
}

/* errno's text, the same on every platform (the C library's), for portable code that calls
 * the C library's file functions (gmap.c). */
TEST(errno_text) {
  char buf[128], small[8];
  ASSERT_STR_EQ(mb_os_errno_text(0, buf, sizeof buf), "os error 0");
  ASSERT_STR_EQ(mb_os_errno_text(-5, buf, sizeof buf), "os error -5");
  ASSERT_STR_EQ(mb_os_errno_text(ENOSPC, buf, sizeof buf), strerror(ENOSPC));
  ASSERT(strstr(buf, "os error") == NULL);
  ASSERT_EQ(strlen(mb_os_errno_text(ENOSPC, small, sizeof small)), sizeof small - 1);
}

/* mb_os_env_get reads what mb_os_env_set wrote, UTF-8 both ways (on Windows, through the
 * process's wide environment: not the ANSI code page); unset, too long and bad names are
 * errors that say so. */
TEST(env_get) {
  char name[64], buf[64], small[8];
  const char *value = "Z\xc3\xbcrich \xe2\x88\x91 \xe6\x97\xa5"; /* Zürich ∑ 日 */
  mb_test_name(name, sizeof name, "MB_TEST_ENV");
  ASSERT_ERR(mb_os_env_get(name, buf, sizeof buf), MB_ENOENT);
  ASSERT_CONTAINS(mb_last_error(), name);
  ASSERT_STR_EQ(buf, "");
  ASSERT_OK(mb_os_env_set(name, value));
  ASSERT_OK(mb_os_env_get(name, buf, sizeof buf));
  ASSERT_STR_EQ(buf, value);
  ASSERT_ERR(mb_os_env_get(name, small, sizeof small), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), "longer than 7 bytes");
  ASSERT_STR_EQ(small, "");
  ASSERT_OK(mb_os_env_set(name, "x"));
  ASSERT_OK(mb_os_env_get(name, buf, sizeof buf));
  ASSERT_STR_EQ(buf, "x");
  ASSERT_OK(mb_os_env_set(name, NULL));
  ASSERT_ERR(mb_os_env_get(name, buf, sizeof buf), MB_ENOENT);
  ASSERT_ERR(mb_os_env_get("", buf, sizeof buf), MB_EINVAL);
  ASSERT_ERR(mb_os_env_get("A=B", buf, sizeof buf), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "'A=B'");
}

/* The control pipe client's line reader and deadline, against a broker that is not there. */
TEST(pipe_client_not_running) {
  char name[64], pipe[MB_PIPE_NAME_MAX];
  mb_pipe_conn_t c;
  int is_path = -1;
  mb_test_name(name, sizeof name, "nopipe");
  ASSERT_EQ(mb__pipe_name(name, pipe, sizeof pipe, &is_path), 0);
  ASSERT_CONTAINS(pipe, name);
  ASSERT_EQ(is_path, MB_OS_POSIX ? 1 : 0);
  ASSERT_ERR(mb__pipe_connect(&c, pipe, 0), MB_ENOTRUNNING);
  mb__pipe_close(&c); /* safe on a connection that never opened */
  ASSERT_EQ(mb__os_ms_left(0), -1);
  ASSERT_EQ(mb__os_ms_left(1), 0);
  ASSERT_GE(mb__os_ms_left(mb_os_mono_ns() + 5000000000u), 4000);
  mb_os_ignore_sigpipe(); /* never fails; a no-op on Windows */
}
