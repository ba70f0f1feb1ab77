/*
 * runner.c - main() of every test binary: runs the tests registered by TEST() and the
 * child entry points registered by CHILD() (see task.h).
 */
#include "task.h"

#include <stdarg.h>

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

void mb_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "not ok - %s\n  %s:%d: ", mb_current, file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  exit(1);
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

int mb_test_run_as_nobody(const char *child_name, const char *arg, int *code) {
  mb_os_child_t child;
  char self[1024];
  const char *argv[9];
  if (!MB_OS_POSIX) {
    printf("# skipped: no setpriv here\n");
    return -1;
  }
  if (mb_os_self_exe(self, sizeof self) != 0) {
    printf("# skipped: own executable not found\n");
    return -1;
  }
  argv[0] = "/usr/bin/setpriv";
  argv[1] = "--reuid=65534";
  argv[2] = "--regid=65534";
  argv[3] = "--clear-groups";
  argv[4] = self;
  argv[5] = "--child";
  argv[6] = child_name;
  argv[7] = arg;
  argv[8] = NULL;
  if (mb_os_spawn(argv, &child) != 0) {
    printf("# skipped: no setpriv\n");
    return -1;
  }
  if (mb_os_child_wait(&child, 20000, code) != 0)
    FAIL("child %s as nobody did not finish in 20 s", child_name);
  if (*code != 10 && *code < 100) {
    printf("# skipped: setpriv could not switch users (exit %d)\n", *code);
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
