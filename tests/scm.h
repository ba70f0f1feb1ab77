/*
 * scm.h - helpers of the tests that run the membroker executable as a service (test-service.c,
 * test-svclog.c): temporary files, the broker's log, and on Windows the Service Control
 * Manager through sc.exe and the service API. A failure FAILs the test (task.h).
 */
#ifndef MB_TEST_SCM_H
#define MB_TEST_SCM_H

#include <stddef.h>
#include <stdio.h>

#include "os_setup.h"

/* The directory for a test's files, with a trailing separator. */
void temp_dir(char *buf, size_t size);

/* Print the broker's log (for a failing test's output). */
void dump_log(const char *path);

/* 1 if the file at path contains needle (its first 64 KiB are searched). */
int file_contains(const char *path, const char *needle);

#if MB_OS_WIN
#include <windows.h>

/* The service this process installed, deleted again at exit (delete_service, registered with
 * atexit by the test) even when a test fails; "" when there is none. */
extern wchar_t svc_name[64];

/* atexit: stop and delete the service svc_name names, and its event source's registry key. */
void delete_service(void);

/* A Windows path for `path`: a POSIX absolute path (what CMake gives under Wine) becomes
 * Z:\... (Wine maps drive Z: to /); slashes become backslashes. */
void windows_path(const char *path, char *out, size_t size);

/* UTF-8 to UTF-16 (count wide characters). */
void widen(const char *s, wchar_t *out, int count);

/* Run `sc.exe <args>`, wait for it and return its exit code (its output goes to ours). */
int run_sc(const wchar_t *args);

/* `sc create` service svc_name running `"<exe>" service -c "<cfg>" -n <svc_name>` (exe as CMake
 * gives it: windows_path is applied), delete_service registered with atexit, then `sc start`
 * - which may succeed or report a failure, depending on how fast the service stops: the
 * caller waits for the state it expects (wait_state). */
void sc_create_start(const char *exe, const char *cfg);

/* Wine: run the Unix command `cmd` (a Z:\ path and its first arguments) with the Unix path of
 * the Windows path w as its last argument (no shell: a path without spaces); 1 if it was
 * started, 0 where there is no Wine. Its effect may show a little later: poll for it. */
int wine_unix_run(const wchar_t *cmd, const wchar_t *w);

/* The path of cmd.exe into buf (a .cmd script runs as `cmd.exe /c SCRIPT ARGS`). */
const char *cmd_exe(char *buf, size_t size);

/* The service's status; 0 with st->dwCurrentState set, or the OS error. */
DWORD query_status(const wchar_t *name, SERVICE_STATUS_PROCESS *st);

/* Poll until the service is in `state` (or STOPPED, which ends every wait); fail on timeout
 * (printing the log at `log`). */
void wait_state(const wchar_t *name, DWORD state, SERVICE_STATUS_PROCESS *st, int timeout_ms,
                const char *log);
#endif

#endif /* MB_TEST_SCM_H */
