/*
 * task.h - the test framework: named tests, assertions that print both sides, and
 * cross-process helpers (a test spawns its own binary as the child).
 *
 * A test file defines tests with TEST(name) { ... } and child entry points with
 * CHILD(name) { ...; return exit_code; }. The runner (runner.c) provides main():
 *   test-x              run every test in this binary, in order
 *   test-x NAME         run one test
 *   test-x --list       print the test names (CMake registers each one with CTest)
 *   test-x --child NAME ARGS...   run a child entry point (used by mb_test_spawn)
 * A failed assertion prints file:line and both sides, then exits with status 1.
 */
#ifndef MB_TASK_H
#define MB_TASK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layout.h"
#include "os.h"

typedef void (*mb_test_fn)(void);
typedef int (*mb_child_fn)(int argc, char **argv);

void mb_test_register(const char *name, mb_test_fn fn);
void mb_child_register(const char *name, mb_child_fn fn);

#if defined(_MSC_VER) && !defined(__clang__)
#pragma section(".CRT$XCU", read)
#define MB_TEST_CTOR(f)                                                                            \
  static void f(void);                                                                             \
  __declspec(allocate(".CRT$XCU")) void (*f##_)(void) = f;                                         \
  static void f(void)
#else
#define MB_TEST_CTOR(f)                                                                            \
  static void f(void) __attribute__((constructor));                                                \
  static void f(void)
#endif

#define TEST(name)                                                                                 \
  static void test_##name(void);                                                                   \
  MB_TEST_CTOR(mb_reg_test_##name) {                                                               \
    mb_test_register(#name, test_##name);                                                          \
  }                                                                                                \
  static void test_##name(void)

#define CHILD(name)                                                                                \
  static int child_##name(int argc, char **argv);                                                  \
  MB_TEST_CTOR(mb_reg_child_##name) {                                                              \
    mb_child_register(#name, child_##name);                                                        \
  }                                                                                                \
  static int child_##name(int argc, char **argv)

/* Never returns (exit 1): the compiler may rely on it after a failed ASSERT. */
#ifdef __cplusplus
[[noreturn]]
#else
_Noreturn
#endif
void mb_test_fail(const char *file, int line, const char *fmt, ...) MB_PRINTF(3, 4);

#define FAIL(...) mb_test_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Exit code of a skipped test: CMake registers every test with SKIP_RETURN_CODE 77, so CTest
 * reports it as skipped (never as passed). */
#define MB_TEST_SKIP_CODE 77

/*
 * End the test as skipped: print "SKIPPED: <reason>" and exit with MB_TEST_SKIP_CODE. For a
 * test that cannot run here (an OS it has no meaning on, a tool or privilege that is missing);
 * clean up what the test started before calling it.
 */
void mb_test_skip(const char *fmt, ...) MB_PRINTF(1, 2);

#define SKIP(...) mb_test_skip(__VA_ARGS__)

#define ASSERT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      FAIL("assertion failed: %s", #cond);                                                         \
  } while (0)

#define ASSERT_CMP(a, op, b)                                                                       \
  do {                                                                                             \
    long long mb_a_ = (long long)(a), mb_b_ = (long long)(b);                                      \
    if (!(mb_a_ op mb_b_))                                                                         \
      FAIL("%s %s %s: %lld %s %lld is false", #a, #op, #b, mb_a_, #op, mb_b_);                     \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP(a, >=, b)

/* Unsigned 64-bit comparison (sizes, byte counts). */
#define ASSERT_EQ_U64(a, b)                                                                        \
  do {                                                                                             \
    unsigned long long mb_a_ = (unsigned long long)(a), mb_b_ = (unsigned long long)(b);           \
    if (mb_a_ != mb_b_)                                                                            \
      FAIL("%s == %s: %llu != %llu", #a, #b, mb_a_, mb_b_);                                        \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
  do {                                                                                             \
    const char *mb_a_ = (a), *mb_b_ = (b);                                                         \
    if (mb_a_ == NULL || mb_b_ == NULL || strcmp(mb_a_, mb_b_) != 0)                               \
      FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, mb_a_ ? mb_a_ : "(null)",                         \
           mb_b_ ? mb_b_ : "(null)");                                                              \
  } while (0)

/* haystack contains needle */
#define ASSERT_CONTAINS(haystack, needle)                                                          \
  do {                                                                                             \
    const char *mb_h_ = (haystack), *mb_n_ = (needle);                                             \
    if (mb_h_ == NULL || strstr(mb_h_, mb_n_) == NULL)                                             \
      FAIL("%s contains \"%s\": \"%s\"", #haystack, mb_n_, mb_h_ ? mb_h_ : "(null)");              \
  } while (0)

/* A call that returns an MB_E* code: expect 0, print the code and detail otherwise. */
#define ASSERT_OK(expr)                                                                            \
  do {                                                                                             \
    int mb_rc_ = (expr);                                                                           \
    if (mb_rc_ != 0)                                                                               \
      FAIL("%s: %s (%d): %s", #expr, mb_err_name(mb_rc_), mb_rc_, mb_last_error());                \
  } while (0)

/* A call that must fail with a given MB_E* code. */
#define ASSERT_ERR(expr, code)                                                                     \
  do {                                                                                             \
    int mb_rc_ = (expr);                                                                           \
    if (mb_rc_ != (code))                                                                          \
      FAIL("%s: expected %s, got %s (%d): %s", #expr, mb_err_name(code), mb_err_name(mb_rc_),      \
           mb_rc_, mb_last_error());                                                               \
  } while (0)

/*
 * Spawn this test binary as a child running CHILD(child_name) with the given extra
 * arguments (a NULL-terminated list).
 */
int mb_test_spawn(mb_os_child_t *child, const char *child_name, ...);

/* Spawn, wait up to timeout_ms and return the child's exit code (fails the test on error). */
int mb_test_run_child(int timeout_ms, const char *child_name, ...);

/*
 * Run CHILD(child_name) with the one argument `arg` as user and group nobody (65534, no
 * supplementary groups) with setpriv; *code receives its exit code. The child reports what
 * it checked with exit code 10 (or a failure code of 100 and up). Returns 0 if it ran, -1
 * (after a "# cannot run as nobody" line saying why) where that cannot be arranged: not POSIX,
 * no setpriv, not root. The caller cleans up and SKIPs then.
 */
int mb_test_run_as_nobody(const char *child_name, const char *arg, int *code);

/* Start CHILD child_name as user nobody (setpriv, POSIX, root) with arguments arg1, arg2
 * (either may be NULL, ending the list) without waiting for it: 0, or -1 (said why) if it
 * cannot be started. The caller stops it. */
int mb_test_spawn_as_nobody(mb_os_child_t *child, const char *child_name, const char *arg1,
                            const char *arg2);

/*
 * A name unique to this test process, "mbt.<pid>.<tag>", for sections and pipes, so test
 * runs in parallel never meet.
 */
const char *mb_test_name(char *buf, size_t size, const char *tag);

/*
 * exe's path as the platform layer takes it, into path[0..size) (truncated to fit). CMake
 * gives the cross build a Unix path ("/work/.../mbctl.exe"); under Wine the Unix root is drive
 * Z: and the separator '\'. Elsewhere the path is used as it is.
 */
const char *mb_test_exe_path(const char *exe, char *path, size_t size);

/*
 * Run the executable `exe` (a path as CMake's $<TARGET_FILE> gives it; mb_test_exe_path) with the
 * arguments arg0... (a NULL-terminated list; arg0 may be NULL), its stdout and stderr into one
 * file; wait for it (timeout_ms at most, else kill it and fail the test) and return its exit code.
 * `out` receives what it printed (read in text mode: "\n" line ends on every OS), NUL-terminated.
 * Fails the test if it cannot be started, and, naming exe's base name ("mbctl"), if it does not
 * finish or leaves no output file.
 */
int mb_test_run_exe(const char *exe, int timeout_ms, char *out, size_t size, const char *arg0, ...);

/* Fail unless the exit code is `want`; show what the program printed (`out`). */
#define ASSERT_EXIT(code, want, out)                                                               \
  do {                                                                                             \
    int mb_c_ = (code);                                                                            \
    if (mb_c_ != (want))                                                                           \
      FAIL("exited %d, expected %d; it printed:\n%s", mb_c_, (want), (out));                       \
  } while (0)

/* The start of file `path` (size - 1 bytes at most), NUL-terminated, into buf; "" if it
 * cannot be read. Returns buf. */
const char *mb_test_file_text(const char *path, char *buf, size_t size);

/* The whole of file `path` (mb_os_read_file: 1 GiB at most), NUL-terminated and malloc'd (the
 * caller frees it); fails the test, naming the file, if it cannot be read. */
char *mb_test_file_read(const char *path);

#if MB_OS_POSIX
/* Receive one datagram from the non-blocking socket fd into buf (NUL-terminated) within
 * timeout_ms (0: only what is there now): its length, or -1 at the deadline. Fails the test on
 * a socket error. For the sd_notify tests. */
int mb_test_dgram_recv(int fd, char *buf, size_t size, int timeout_ms);
#endif

/* The entry of the client table of `st` in use under `name`, or NULL. */
mb_client_entry_t *mb_test_entry_named(mb_state_t *st, const char *name);

/* Poll `cond` every millisecond or so until it holds or timeout_ms passes. */
#define WAIT_FOR(cond, timeout_ms)                                                                 \
  do {                                                                                             \
    uint64_t mb_dl_ = mb_os_mono_ns() + 1000000u * (uint64_t)(timeout_ms);                         \
    while (!(cond)) {                                                                              \
      if (mb_os_mono_ns() > mb_dl_)                                                                \
        FAIL("timed out after %d ms waiting for %s", (int)(timeout_ms), #cond);                    \
      mb_os_sleep_ms(1);                                                                           \
    }                                                                                              \
  } while (0)

#endif /* MB_TASK_H */
