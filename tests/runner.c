/*
 * runner.c - main() of every test binary: runs the tests registered by TEST() and the
 * child entry points registered by CHILD() (see task.h).
 */
#include "task.h"

#include <stdarg.h>
#include <stdio.h>

#if MB_OS_POSIX
#include <errno.h>
#include <sys/socket.h>
#endif

#define MB_MAX_TESTS 256

typedef struct {
  const char *name;
  mb_test_fn fn;
} mb_test_entry;

typedef struct {
  const char *name;
  mb_child_fn fn;
} mb_child_entry;

static mb_test_entry mb_tests[MB_MAX_TESTS];
static int mb_ntests;
static mb_child_entry mb_children[MB_MAX_TESTS];
static int mb_nchildren;
static char mb_self[4096];
static const char *mb_current = "?";

void mb_test_register(const char *name, mb_test_fn fn) {
  if (mb_ntests < MB_MAX_TESTS)
    mb_tests[mb_ntests++] = (mb_test_entry){name, fn};
}

void mb_child_register(const char *name, mb_child_fn fn) {
  if (mb_nchildren < MB_MAX_TESTS)
    mb_children[mb_nchildren++] = (mb_child_entry){name, fn};
}

_Noreturn void mb_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "not ok - %s\n  %s:%d: ", mb_current, file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  exit(1);
}

void mb_test_skip(const char *fmt, ...) {
  va_list ap;
  printf("SKIPPED: %s: ", mb_current);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  exit(MB_TEST_SKIP_CODE);
}

static int mb_vspawn(mb_os_child_t *child, const char *child_name, va_list ap) {
  const char *argv[32];
  int n = 0;
  const char *a;
  argv[n++] = mb_self;
  argv[n++] = "--child";
  argv[n++] = child_name;
  while ((a = va_arg(ap, const char *)) != NULL && n < 31)
    argv[n++] = a;
  argv[n] = NULL;
  return mb_os_spawn(argv, child);
}

int mb_test_spawn(mb_os_child_t *child, const char *child_name, ...) {
  va_list ap;
  int rc;
  va_start(ap, child_name);
  rc = mb_vspawn(child, child_name, ap);
  va_end(ap);
  return rc;
}

int mb_test_run_child(int timeout_ms, const char *child_name, ...) {
  mb_os_child_t child;
  va_list ap;
  int rc, code = -1;
  va_start(ap, child_name);
  rc = mb_vspawn(&child, child_name, ap);
  va_end(ap);
  if (rc != 0)
    FAIL("spawn child %s: %s", child_name, mb_last_error());
  rc = mb_os_child_wait(&child, timeout_ms, &code);
  if (rc != 0) {
    mb_os_child_kill(&child);
    mb_os_child_wait(&child, -1, &code);
    FAIL("child %s did not finish in %d ms", child_name, timeout_ms);
  }
  return code;
}

int mb_test_spawn_as_nobody(mb_os_child_t *child, const char *child_name, const char *arg1,
                            const char *arg2) {
  char self[1024];
  const char *argv[10];
  if (!MB_OS_POSIX) {
    printf("# cannot run as nobody: no setpriv here\n");
    return -1;
  }
  if (mb_os_self_exe(self, sizeof self) != 0) {
    printf("# cannot run as nobody: own executable not found\n");
    return -1;
  }
  argv[0] = "/usr/bin/setpriv";
  argv[1] = "--reuid=65534";
  argv[2] = "--regid=65534";
  argv[3] = "--clear-groups";
  argv[4] = self;
  argv[5] = "--child";
  argv[6] = child_name;
  argv[7] = arg1;
  argv[8] = arg1 != NULL ? arg2 : NULL;
  argv[9] = NULL;
  if (mb_os_spawn(argv, child) != 0) {
    printf("# cannot run as nobody: no setpriv\n");
    return -1;
  }
  return 0;
}

int mb_test_run_as_nobody(const char *child_name, const char *arg, int *code) {
  mb_os_child_t child;
  if (mb_test_spawn_as_nobody(&child, child_name, arg, NULL) != 0)
    return -1;
  if (mb_os_child_wait(&child, 20000, code) != 0)
    FAIL("child %s as nobody did not finish in 20 s", child_name);
  if (*code != 10 && *code < 100) {
    printf("# cannot run as nobody: setpriv could not switch users (exit %d)\n", *code);
    return -1;
  }
  return 0;
}

const char *mb_test_name(char *buf, size_t size, const char *tag) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(buf, size, "mbt.%u.%s", (unsigned)self.pid, tag);
  return buf;
}

const char *mb_test_exe_path(const char *exe, char *path, size_t size) {
#if MB_OS_WIN
  size_t i, o = 0;
  if (exe[0] == '/') {
    path[o++] = 'Z';
    path[o++] = ':';
  }
  for (i = 0; exe[i] != '\0' && o + 1 < size; i++)
    path[o++] = exe[i] == '/' ? '\\' : exe[i];
  path[o] = '\0';
#else
  snprintf(path, size, "%s", exe);
#endif
  return path;
}

/* The base name of exe without a trailing ".exe" ("/x/mbctl.exe" -> "mbctl") into buf. */
static const char *mb_exe_name(const char *exe, char *buf, size_t size) {
  const char *base = exe, *p;
  size_t n;
  for (p = exe; *p != '\0'; p++)
    if (*p == '/' || *p == '\\')
      base = p + 1;
  n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".exe") == 0)
    n -= 4;
  snprintf(buf, size, "%.*s", (int)n, base);
  return buf;
}

int mb_test_run_exe(const char *exe, int timeout_ms, char *out, size_t size, const char *arg0,
                    ...) {
  const char *argv[32], *arg;
  char exe_path[1024], name[128], tag[160], uniq[200], dir[512], file[760];
  mb_os_child_t child;
  va_list ap;
  size_t n;
  FILE *fp;
  int argc = 0, code = -1;
  argv[argc++] = mb_test_exe_path(exe, exe_path, sizeof exe_path);
  va_start(ap, arg0);
  for (arg = arg0; arg != NULL && argc < 31; arg = va_arg(ap, const char *))
    argv[argc++] = arg;
  va_end(ap);
  argv[argc] = NULL;
  mb_exe_name(exe, name, sizeof name);
  snprintf(tag, sizeof tag, "%s.out", name);
  ASSERT_OK(mb_os_runtime_dir(dir, sizeof dir));
  snprintf(file, sizeof file, "%s/%s", dir, mb_test_name(uniq, sizeof uniq, tag));
  ASSERT_OK(mb_os_spawn_redirect(argv, file, &child));
  if (mb_os_child_wait(&child, timeout_ms, &code) != 0) {
    mb_os_child_kill(&child);
    mb_os_child_wait(&child, -1, &code);
    FAIL("%s %s did not finish in %d ms", name, argc > 1 ? argv[1] : "", timeout_ms);
  }
  if ((fp = fopen(file, "r")) == NULL)
    FAIL("%s's output file '%s' is missing", name, file);
  n = fread(out, 1, size - 1, fp);
  fclose(fp);
  remove(file);
  out[n] = '\0';
  return code;
}

mb_client_entry_t *mb_test_entry_named(mb_state_t *st, const char *name) {
  uint32_t i;
  char n[MB_CLIENT_NAME_MAX];
  for (i = 0; i < st->max_clients; i++) {
    mb_client_entry_t *e = &st->clients[i];
    if (MB_CLIENT_WORD_STATE(mb_load64(&e->word)) == MB_CLIENT_FREE)
      continue;
    mb__client_name_get(e, n);
    if (strcmp(n, name) == 0)
      return e;
  }
  return NULL;
}

static int mb_run(const mb_test_entry *t) {
  mb_current = t->name;
  t->fn();
  printf("ok - %s\n", t->name);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  int i;
  setvbuf(stdout, NULL, _IONBF, 0);
  if (mb_os_self_exe(mb_self, sizeof mb_self) != 0) {
    fprintf(stderr, "cannot find own executable: %s\n", mb_last_error());
    return 2;
  }
  if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
    for (i = 0; i < mb_nchildren; i++)
      if (strcmp(mb_children[i].name, argv[2]) == 0) {
        mb_current = argv[2];
        return mb_children[i].fn(argc - 3, argv + 3);
      }
    fprintf(stderr, "no child entry point '%s'\n", argv[2]);
    return 2;
  }
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (i = 0; i < mb_ntests; i++)
      printf("%s\n", mb_tests[i].name);
    return 0;
  }
  if (argc == 2) {
    for (i = 0; i < mb_ntests; i++)
      if (strcmp(mb_tests[i].name, argv[1]) == 0)
        return mb_run(&mb_tests[i]);
    fprintf(stderr, "no test named '%s' (try --list)\n", argv[1]);
    return 2;
  }
  for (i = 0; i < mb_ntests; i++)
    mb_run(&mb_tests[i]);
  printf("%d passed, 0 failed\n", mb_ntests);
  return 0;
}

const char *mb_test_file_text(const char *path, char *buf, size_t size) {
  FILE *fp = fopen(path, "rb");
  size_t n = 0;
  if (fp != NULL) {
    n = fread(buf, 1, size - 1, fp);
    fclose(fp);
  }
  buf[n] = '\0';
  return buf;
}

char *mb_test_file_read(const char *path) {
  char *data;
  size_t len;
  if (mb_os_read_file(path, (uint64_t)1 << 30, &data, &len) != 0)
    FAIL("cannot read %s: %s", path, mb_last_error());
  return data;
}

#if MB_OS_POSIX
int mb_test_dgram_recv(int fd, char *buf, size_t size, int timeout_ms) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    ssize_t n = recv(fd, buf, size - 1, 0);
    if (n >= 0) {
      buf[n] = '\0';
      return (int)n;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      FAIL("recv on the notify socket: errno %d", errno);
    if (mb_os_mono_ns() > deadline)
      return -1;
    mb_os_sleep_ms(2);
  }
}
#endif
