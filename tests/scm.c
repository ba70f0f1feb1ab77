/*
 * scm.c - helpers of the service tests (scm.h).
 */
#include "os_setup.h"

#if MB_OS_POSIX
#define _POSIX_C_SOURCE 200809L
#endif

#include "scm.h"

#include <stdlib.h>
#include <string.h>

#include "task.h"

/* The directory for this test's files, with a trailing separator. */
void temp_dir(char *buf, size_t size) {
#if MB_OS_WIN
  DWORD n = GetTempPathA((DWORD)size, buf);
  if (n == 0 || n >= size)
    FAIL("GetTempPathA failed (os error %lu)", (unsigned long)GetLastError());
#else
  const char *t = getenv("TMPDIR");
  snprintf(buf, size, "%s/", t && t[0] ? t : "/tmp");
#endif
}

/* Print the broker's log (for a failing test's output). */
void dump_log(const char *path) {
  char line[1200];
  FILE *fp = fopen(path, "r");
  fprintf(stderr, "--- broker log %s ---\n", path);
  if (fp == NULL) {
    fprintf(stderr, "(none)\n");
    return;
  }
  while (fgets(line, sizeof line, fp))
    fputs(line, stderr);
  fclose(fp);
  fprintf(stderr, "--- end of log ---\n");
}

/* 1 if the file at path contains needle. */
int file_contains(const char *path, const char *needle) {
  static char text[65536];
  return strstr(mb_test_file_text(path, text, sizeof text), needle) != NULL;
}

#if MB_OS_WIN

wchar_t svc_name[64];

/*
 * A Windows path for `path`: a POSIX absolute path (what CMake gives under Wine) becomes
 * Z:\... (Wine maps drive Z: to /); slashes become backslashes.
 */
void windows_path(const char *path, char *out, size_t size) {
  size_t i, o = 0;
  if (path[0] == '/') {
    ASSERT(size > 2);
    out[o++] = 'Z';
    out[o++] = ':';
  }
  for (i = 0; path[i] != '\0'; i++) {
    if (o + 1 >= size)
      FAIL("path too long: %s", path);
    out[o++] = path[i] == '/' ? '\\' : path[i];
  }
  out[o] = '\0';
}

void widen(const char *s, wchar_t *out, int count) {
  if (MultiByteToWideChar(CP_UTF8, 0, s, -1, out, count) <= 0)
    FAIL("cannot convert '%s' to UTF-16", s);
}

/*
 * Run `sc.exe <args>` (from the system directory), wait for it and return its exit code.
 * Its output goes to ours, so a failing step shows what sc said.
 */
int run_sc(const wchar_t *args) {
  wchar_t sysdir[MAX_PATH], cmd[4096];
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  DWORD code = 0, n = GetSystemDirectoryW(sysdir, MAX_PATH);
  int tries;
  if (n == 0 || n >= MAX_PATH)
    FAIL("GetSystemDirectory failed (os error %lu)", (unsigned long)GetLastError());
  if (_snwprintf(cmd, 4096, L"\"%ls\\sc.exe\" %ls", sysdir, args) < 0)
    FAIL("sc command line too long");
  cmd[4095] = L'\0';
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  /* Wine's CreateProcess now and then fails a start with ERROR_INTERNAL_ERROR (1359, about 1
   * run in 12 of svclog.scm_preshutdown here): the harness tries again, a few times. */
  for (tries = 1; !CreateProcessW(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi); tries++) {
    DWORD err = GetLastError();
    if (err != ERROR_INTERNAL_ERROR || tries == 5)
      FAIL("cannot run sc.exe (os error %lu, try %d): %ls", (unsigned long)err, tries, cmd);
    printf("# sc.exe did not start (os error %lu): trying again\n", (unsigned long)err);
    Sleep(100);
  }
  if (WaitForSingleObject(pi.hProcess, 60000) != WAIT_OBJECT_0) {
    TerminateProcess(pi.hProcess, 255);
    FAIL("sc.exe did not finish in 60 s: %ls", cmd);
  }
  GetExitCodeProcess(pi.hProcess, &code);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  return (int)code;
}

/* The service's status; 0 with st->dwCurrentState set, or the OS error. */
DWORD query_status(const wchar_t *name, SERVICE_STATUS_PROCESS *st) {
  SC_HANDLE scm, svc;
  DWORD need = 0, err = 0;
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL)
    return GetLastError();
  svc = OpenServiceW(scm, name, SERVICE_QUERY_STATUS);
  if (svc == NULL)
    err = GetLastError();
  else if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)st, sizeof *st, &need))
    err = GetLastError();
  if (svc != NULL)
    CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  return err;
}

/* Poll until the service is in `state` (or STOPPED, which ends every wait); fail on timeout. */
void wait_state(const wchar_t *name, DWORD state, SERVICE_STATUS_PROCESS *st, int timeout_ms,
                const char *log) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u;
  DWORD err;
  for (;;) {
    if ((err = query_status(name, st)) != 0)
      FAIL("QueryServiceStatusEx(%ls) failed (os error %lu)", name, (unsigned long)err);
    if (st->dwCurrentState == state || st->dwCurrentState == SERVICE_STOPPED)
      return;
    if (mb_os_mono_ns() > deadline) {
      dump_log(log);
      FAIL("service %ls: state %lu, not %lu after %d ms", name, (unsigned long)st->dwCurrentState,
           (unsigned long)state, timeout_ms);
    }
    mb_os_sleep_ms(10);
  }
}

/* atexit: stop and delete the service if a failed assertion left it installed. */
void sc_create_start(const char *exe, const char *cfg) {
  char path[1024];
  wchar_t wexe[1024], wcfg[600], args[4096];
  windows_path(exe, path, sizeof path);
  widen(path, wexe, 1024);
  widen(cfg, wcfg, 600);
  atexit(delete_service);
  _snwprintf(args, 4096, L"create %ls binPath= \"\\\"%ls\\\" service -c \\\"%ls\\\" -n %ls\"",
             svc_name, wexe, wcfg, svc_name);
  args[4095] = L'\0';
  ASSERT_EQ(run_sc(args), 0);
  _snwprintf(args, 4096, L"start %ls", svc_name);
  (void)run_sc(args);
}

/* Wine: run the Unix command `cmd` (a Z:\ path and its first arguments) with the Unix path of
 * the Windows path w as its last argument; 1 if it ran and exited 0. Its effect may show a
 * little later (Wine starts Unix programs through a helper): poll for it. */
int wine_unix_run(const wchar_t *cmd, const wchar_t *w) {
  typedef char *(CDECL * unix_name_fn)(const wchar_t *);
  unix_name_fn unix_name = (unix_name_fn)(void (*)(void))GetProcAddress(
      GetModuleHandleW(L"kernel32.dll"), "wine_get_unix_file_name");
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  wchar_t line[1400];
  char *u;
  if (unix_name == NULL || (u = unix_name(w)) == NULL)
    return 0;
  swprintf(line, 1400, L"%ls %hs", cmd, u); /* no shell: a path without spaces */
  HeapFree(GetProcessHeap(), 0, u);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!CreateProcessW(NULL, line, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return 0;
  WaitForSingleObject(pi.hProcess, 30000);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  return 1;
}

const char *cmd_exe(char *buf, size_t size) {
  UINT n = GetSystemDirectoryA(buf, (UINT)size);
  if (n == 0 || n + sizeof "\\cmd.exe" > size)
    FAIL("GetSystemDirectory failed (os error %lu)", (unsigned long)GetLastError());
  strcat(buf, "\\cmd.exe");
  return buf;
}

void delete_service(void) {
  wchar_t key[128];
  SC_HANDLE scm, svc;
  SERVICE_STATUS ss;
  if (svc_name[0] == L'\0')
    return;
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL)
    return;
  svc = OpenServiceW(scm, svc_name, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
  if (svc != NULL) {
    ControlService(svc, SERVICE_CONTROL_STOP, &ss);
    if (DeleteService(svc))
      fprintf(stderr, "cleanup: deleted service %ls\n", svc_name);
    CloseServiceHandle(svc);
  }
  CloseServiceHandle(scm);
  /* The event source the service registered (svc_win32.c), if it got that far. */
  _snwprintf(key, 128, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls",
             svc_name);
  key[127] = L'\0';
  (void)RegDeleteKeyW(HKEY_LOCAL_MACHINE, key);
  svc_name[0] = L'\0';
}

#endif /* MB_OS_WIN */
