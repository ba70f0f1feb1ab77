/*
 * svc_install.c - service glue for Windows: `membroker install` and `membroker uninstall`, the
 * broker registering itself with the Service Control Manager (beside `sc create` and the
 * scripts/install-service.* scripts, which do the same steps).
 *
 * install: validate the config (as --check-config does), refuse an instance that another
 * installed membroker service's config already has (unless --force), CreateServiceW with the
 * command line the scripts use ("<exe>" service -c "<config>" -n NAME), then the description,
 * failure actions (restart, restart, none; reset after a day) and their flag, the preshutdown
 * timeout, the service SID type, delayed auto-start, and the event-log source (EventMessageFile =
 * this exe). Then it reads every item back and prints one line each: "ok", "differs: wanted X, got
 * Y", or "not supported here: <why>" where the SCM (Wine's) does not implement the item.
 *
 * uninstall: stop the service if it runs (waiting for STOPPED), DeleteService, remove the
 * event-log source.
 *
 * When the config has a region with large_pages, install also grants the service account
 * SeLockMemoryPrivilege ("Lock pages in memory", which SEC_LARGE_PAGES needs) with LsaOpenPolicy +
 * LsaAddAccountRights, and reads it back with LsaEnumerateAccountRights.
 *
 * These are command implementations: they print what they did for the operator and return the
 * process exit code. This file never runs the broker.
 */
#include "os_setup.h"

#if MB_OS_WIN

/* Project headers first, then <windows.h>. */
#include "config.h"
#include "error.h"
#include "os.h"
#include "svc.h"

#include <windows.h>
#include <ntsecapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define MB_INST_NAME_MAX 80    /* [A-Za-z0-9._-], like the scripts */
#define MB_INST_PATH_MAX 32768 /* the longest Win32 path, in UTF-16 units */
#define MB_INST_PRESHUTDOWN_MS 60000
#define MB_INST_RESET_S 86400 /* failure count reset: a day */
#define MB_INST_STOP_TIMEOUT_MS 60000
#define MB_INST_DESCRIPTION                                                                        \
  L"Memory broker for game servers: shared world memory, player slots and object pools."
#define MB_INST_EVENT_KEY L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\"

/* The failure actions: restart after 5 s, restart after 60 s, then nothing. */
static const SC_ACTION mb__inst_actions[3] = {
    {SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 60000}, {SC_ACTION_NONE, 0}};

/* How many read-back lines said what. */
typedef struct mb_inst_tally_s {
  int ok, differs, unsupported;
} mb_inst_tally_t;

/* What a ChangeServiceConfig2W step ended with: 0 set, else the OS error. */
typedef struct mb_inst_steps_s {
  DWORD description, failure, failure_flag, preshutdown, sid, delayed;
} mb_inst_steps_t;

static int mb__inst_widen(const char *s, wchar_t *buf, int count) {
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, buf, count) > 0 ? 0 : -1;
}

static int mb__inst_narrow(const wchar_t *s, char *buf, int size) {
  return WideCharToMultiByte(CP_UTF8, 0, s, -1, buf, size, NULL, NULL) > 0 ? 0 : -1;
}

/* The system's text for an OS error, one line, into buf. */
static const char *mb__inst_oserr(DWORD err, char *buf, size_t size) {
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, err, 0,
                           buf, (DWORD)size, NULL);
  while (n > 0 &&
         (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '.'))
    buf[--n] = '\0';
  if (n == 0)
    snprintf(buf, size, "os error %lu", (unsigned long)err);
  return buf;
}

/* A service name is 1..80 of [A-Za-z0-9._-] (it is also a registry key and a file-name part). */
static int mb__inst_name_ok(const char *name) {
  size_t i, n = strlen(name);
  if (n == 0 || n > MB_INST_NAME_MAX)
    return 0;
  for (i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* An absolute Win32 path: "X:\..." (or X:/) or a UNC path "\\server\share\...". */
static int mb__inst_path_absolute(const wchar_t *p) {
  if (((p[0] >= L'A' && p[0] <= L'Z') || (p[0] >= L'a' && p[0] <= L'z')) && p[1] == L':' &&
      (p[2] == L'\\' || p[2] == L'/'))
    return 1;
  return (p[0] == L'\\' || p[0] == L'/') && (p[1] == L'\\' || p[1] == L'/');
}

/* An error that an unelevated caller gets, in words. */
static void mb__inst_fail(const char *what, DWORD err) {
  char msg[256];
  if (err == ERROR_ACCESS_DENIED)
    fprintf(stderr, "membroker: %s: access denied: run as Administrator (an elevated prompt)\n",
            what);
  else
    fprintf(stderr, "membroker: %s: %s (os error %lu)\n", what,
            mb__inst_oserr(err, msg, sizeof msg), (unsigned long)err);
}

/* Errors with which an SCM says it does not implement a configuration level. */
static int mb__inst_unsupported(DWORD err) {
  return err == ERROR_INVALID_LEVEL || err == ERROR_CALL_NOT_IMPLEMENTED ||
         err == ERROR_NOT_SUPPORTED || err == ERROR_INVALID_PARAMETER;
}

/* ---- read-back lines ----------------------------------------------------------------------- */

static void mb__inst_ok(mb_inst_tally_t *t, const char *item) {
  printf("  %-22s ok\n", item);
  t->ok++;
}

static void mb__inst_differs(mb_inst_tally_t *t, const char *item, const char *want,
                             const char *got) {
  printf("  %-22s differs: wanted %s, got %s\n", item, want, got);
  t->differs++;
}

static void mb__inst_cannot(mb_inst_tally_t *t, const char *item, const char *fmt, DWORD err) {
  char why[300], msg[200];
  snprintf(why, sizeof why, fmt, (unsigned long)err);
  printf("  %-22s not supported here: %s: %s\n", item, why, mb__inst_oserr(err, msg, sizeof msg));
  t->unsupported++;
}

/* Compare strings (case-insensitive if nocase) and print the line for `item`. */
static void mb__inst_check_str(mb_inst_tally_t *t, const char *item, const wchar_t *want,
                               const wchar_t *got, int nocase) {
  char w[2048], g[2048];
  if (got == NULL)
    got = L"";
  if ((nocase ? _wcsicmp(want, got) : wcscmp(want, got)) == 0) {
    mb__inst_ok(t, item);
    return;
  }
  if (mb__inst_narrow(want, w, sizeof w) != 0)
    snprintf(w, sizeof w, "?");
  if (mb__inst_narrow(got, g, sizeof g) != 0)
    snprintf(g, sizeof g, "?");
  {
    char qw[2100], qg[2100];
    snprintf(qw, sizeof qw, "\"%s\"", w);
    snprintf(qg, sizeof qg, "\"%s\"", g);
    mb__inst_differs(t, item, qw, qg);
  }
}

static void mb__inst_check_num(mb_inst_tally_t *t, const char *item, unsigned long want,
                               unsigned long got) {
  char w[32], g[32];
  if (want == got) {
    mb__inst_ok(t, item);
    return;
  }
  snprintf(w, sizeof w, "%lu", want);
  snprintf(g, sizeof g, "%lu", got);
  mb__inst_differs(t, item, w, g);
}

static const char *mb__inst_action_name(SC_ACTION_TYPE type) {
  switch (type) {
  case SC_ACTION_NONE:
    return "none";
  case SC_ACTION_RESTART:
    return "restart";
  case SC_ACTION_REBOOT:
    return "reboot";
  case SC_ACTION_RUN_COMMAND:
    return "run";
  default:
    return "?";
  }
}

/* "reset 86400 s, restart/5000, restart/60000, none/0" */
static void mb__inst_format_actions(DWORD reset, DWORD count, const SC_ACTION *a, char *buf,
                                    size_t size) {
  size_t n;
  DWORD i;
  snprintf(buf, size, "reset %lu s", (unsigned long)reset);
  for (i = 0; i < count && (n = strlen(buf)) + 32 < size; i++)
    snprintf(buf + n, size - n, ", %s/%lu", mb__inst_action_name(a[i].Type),
             (unsigned long)a[i].Delay);
  if (count == 0 && (n = strlen(buf)) + 16 < size)
    snprintf(buf + n, size - n, ", no actions");
}

/*
 * QueryServiceConfig2W(level) into buf. Returns 0, or the OS error. buf is DWORD-aligned
 * storage of `size` bytes, enough for every level read here.
 */
static DWORD mb__inst_query2(SC_HANDLE svc, DWORD level, void *buf, DWORD size) {
  DWORD need = 0;
  memset(buf, 0, size);
  return QueryServiceConfig2W(svc, level, (BYTE *)buf, size, &need) ? 0 : GetLastError();
}

/*
 * One item of QueryServiceConfig2W: when the set step or the query says the SCM does not
 * implement the level, print "not supported here". Returns 1 if the caller should compare.
 */
static int mb__inst_can_compare(mb_inst_tally_t *t, const char *item, DWORD set_err,
                                DWORD query_err, DWORD level) {
  char fmt[128];
  if (set_err != 0) {
    snprintf(fmt, sizeof fmt,
             "the SCM refused to set it (ChangeServiceConfig2W level %lu, "
             "error %%lu)",
             (unsigned long)level);
    mb__inst_cannot(t, item, fmt, set_err);
    return 0;
  }
  if (query_err != 0) {
    if (!mb__inst_unsupported(query_err)) {
      char msg[200], why[300];
      snprintf(why, sizeof why, "cannot read it back: %s (os error %lu)",
               mb__inst_oserr(query_err, msg, sizeof msg), (unsigned long)query_err);
      mb__inst_differs(t, item, "a value", why);
      return 0;
    }
    snprintf(fmt, sizeof fmt,
             "the SCM cannot read it back (QueryServiceConfig2W level %lu, "
             "error %%lu)",
             (unsigned long)level);
    mb__inst_cannot(t, item, fmt, query_err);
    return 0;
  }
  return 1;
}

/* ---- install --------------------------------------------------------------------------- */

/* ChangeServiceConfig2W: 0, or the OS error. */
static DWORD mb__inst_set2(SC_HANDLE svc, DWORD level, void *info) {
  return ChangeServiceConfig2W(svc, level, info) ? 0 : GetLastError();
}

/*
 * The event-log source NAME: EventMessageFile = exe (the message table is a resource of
 * membroker.exe), TypesSupported = error | warning | information. 0, or the OS error.
 */
static DWORD mb__inst_event_source(const wchar_t *name, const wchar_t *exe) {
  wchar_t path[256];
  HKEY key;
  DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
  LONG err;
  _snwprintf(path, 256, L"%ls%ls", MB_INST_EVENT_KEY, name);
  path[255] = L'\0';
  err = RegCreateKeyExW(HKEY_LOCAL_MACHINE, path, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL);
  if (err != ERROR_SUCCESS)
    return (DWORD)err;
  err = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe,
                       (DWORD)((wcslen(exe) + 1) * sizeof(wchar_t)));
  if (err == ERROR_SUCCESS)
    err = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types, sizeof types);
  RegCloseKey(key);
  return (DWORD)err;
}

/*
 * 1 if the event-log source NAME is absent or ours (its EventMessageFile is a membroker.exe),
 * 0 if it belongs to another program; its message file then goes into other[count].
 */
static int mb__inst_event_source_ours(const wchar_t *name, wchar_t *other, DWORD count) {
  wchar_t path[256];
  const wchar_t *base;
  DWORD size = count * sizeof(wchar_t);
  LONG err;
  _snwprintf(path, 256, L"%ls%ls", MB_INST_EVENT_KEY, name);
  path[255] = L'\0';
  other[0] = L'\0';
  err = RegGetValueW(HKEY_LOCAL_MACHINE, path, L"EventMessageFile",
                     RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND, NULL, other, &size);
  if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND)
    return 1; /* no such source (or no message file: nobody's) */
  if (err != ERROR_SUCCESS)
    return 0;
  other[count - 1] = L'\0';
  base = wcsrchr(other, L'\\');
  base = base ? base + 1 : other;
  return _wcsicmp(base, L"membroker.exe") == 0;
}

/* Remove the event-log source NAME if it is ours (mb__inst_event_source_ours): 0 (also when
 * there was none, or it is another program's and is left alone), or the OS error. */
static DWORD mb__inst_event_source_remove(const wchar_t *name) {
  wchar_t path[256], other[MB_INST_PATH_MAX];
  LONG err;
  if (!mb__inst_event_source_ours(name, other, MB_INST_PATH_MAX))
    return 0;
  _snwprintf(path, 256, L"%ls%ls", MB_INST_EVENT_KEY, name);
  path[255] = L'\0';
  err = RegDeleteKeyW(HKEY_LOCAL_MACHINE, path);
  return err == ERROR_FILE_NOT_FOUND ? 0 : (DWORD)err;
}

/* 1 if the installed service `name` runs membroker.exe (or the list cannot be had: then the
 * SCM's own answers decide), 0 if it is another program's. */
static int mb__inst_service_is_ours(const char *name) {
  mb_os_service_t *list = NULL;
  int n = 0, i, ours = 0;
  if (mb_os_services_list("membroker.exe", &list, &n) != 0)
    return 1;
  for (i = 0; i < n; i++)
    if (_stricmp(list[i].name, name) == 0)
      ours = 1;
  free(list);
  return ours;
}

/* Read back the event-log source's two values. */
static void mb__inst_check_event_source(mb_inst_tally_t *t, const wchar_t *name,
                                        const wchar_t *exe) {
  wchar_t path[256], *file = NULL;
  DWORD type = 0, size, types = 0;
  HKEY key;
  LONG err;
  _snwprintf(path, 256, L"%ls%ls", MB_INST_EVENT_KEY, name);
  path[255] = L'\0';
  err = RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, KEY_QUERY_VALUE, &key);
  if (err != ERROR_SUCCESS) {
    char msg[200], got[300];
    snprintf(got, sizeof got, "no key (%s)", mb__inst_oserr((DWORD)err, msg, sizeof msg));
    mb__inst_differs(t, "event source", "the key HKLM\\...\\EventLog\\Application\\<name>", got);
    return;
  }
  size = (DWORD)(MB_INST_PATH_MAX * sizeof(wchar_t));
  file = (wchar_t *)calloc(MB_INST_PATH_MAX + 1, sizeof(wchar_t));
  if (file == NULL) {
    RegCloseKey(key);
    mb__inst_differs(t, "event message file", "a value", "out of memory");
    return;
  }
  err = RegQueryValueExW(key, L"EventMessageFile", NULL, &type, (BYTE *)file, &size);
  if (err != ERROR_SUCCESS || (type != REG_EXPAND_SZ && type != REG_SZ))
    mb__inst_differs(t, "event message file", "a REG_EXPAND_SZ value", "none");
  else
    mb__inst_check_str(t, "event message file", exe, file, 1);
  free(file);
  size = sizeof types;
  err = RegQueryValueExW(key, L"TypesSupported", NULL, &type, (BYTE *)&types, &size);
  if (err != ERROR_SUCCESS || type != REG_DWORD)
    mb__inst_differs(t, "event types supported", "7", "no REG_DWORD value");
  else
    mb__inst_check_num(t, "event types supported", 7, types);
  RegCloseKey(key);
}

/*
 * Read back every item `membroker install` set and print one line each. `want_*` are what was
 * set; steps holds the errors of the ChangeServiceConfig2W steps the SCM refused as
 * unsupported.
 */
static void mb__inst_readback(mb_inst_tally_t *t, SC_HANDLE svc, const wchar_t *name,
                              const wchar_t *display, const wchar_t *cmdline, DWORD start,
                              int delayed, const wchar_t *account, const wchar_t *exe,
                              const mb_inst_steps_t *steps) {
  union {
    DWORD align;
    BYTE bytes[16384];
  } buf;
  QUERY_SERVICE_CONFIGW *qc = (QUERY_SERVICE_CONFIGW *)buf.bytes;
  DWORD need = 0, err;

  /* QueryServiceConfigW: command line, start type, account, display name. */
  memset(&buf, 0, sizeof buf);
  if (!QueryServiceConfigW(svc, qc, sizeof buf, &need)) {
    char msg[200], got[300];
    err = GetLastError();
    snprintf(got, sizeof got, "QueryServiceConfigW failed: %s",
             mb__inst_oserr(err, msg, sizeof msg));
    mb__inst_differs(t, "service config", "its configuration", got);
  } else {
    mb__inst_check_str(t, "command line", cmdline, qc->lpBinaryPathName, 0);
    mb__inst_check_num(t, "start type", start, qc->dwStartType);
    mb__inst_check_str(t, "account", account, qc->lpServiceStartName, 1);
    mb__inst_check_str(t, "display name", display, qc->lpDisplayName, 0);
  }

  /* QueryServiceConfig2W, one level at a time. */
  err = mb__inst_query2(svc, SERVICE_CONFIG_DESCRIPTION, &buf, sizeof buf);
  if (mb__inst_can_compare(t, "description", steps->description, err, SERVICE_CONFIG_DESCRIPTION))
    mb__inst_check_str(t, "description", MB_INST_DESCRIPTION,
                       ((SERVICE_DESCRIPTIONW *)buf.bytes)->lpDescription, 0);

  err = mb__inst_query2(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &buf, sizeof buf);
  if (mb__inst_can_compare(t, "failure actions", steps->failure, err,
                           SERVICE_CONFIG_FAILURE_ACTIONS)) {
    SERVICE_FAILURE_ACTIONSW *fa = (SERVICE_FAILURE_ACTIONSW *)buf.bytes;
    char w[200], g[200];
    DWORD n = fa->lpsaActions != NULL ? fa->cActions : 0;
    mb__inst_format_actions(MB_INST_RESET_S, 3, mb__inst_actions, w, sizeof w);
    mb__inst_format_actions(fa->dwResetPeriod, n, fa->lpsaActions, g, sizeof g);
    if (strcmp(w, g) == 0)
      mb__inst_ok(t, "failure actions");
    else
      mb__inst_differs(t, "failure actions", w, g);
  }

  err = mb__inst_query2(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &buf, sizeof buf);
  if (mb__inst_can_compare(t, "failure actions flag", steps->failure_flag, err,
                           SERVICE_CONFIG_FAILURE_ACTIONS_FLAG))
    mb__inst_check_num(
        t, "failure actions flag", 1,
        ((SERVICE_FAILURE_ACTIONS_FLAG *)buf.bytes)->fFailureActionsOnNonCrashFailures);

  err = mb__inst_query2(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &buf, sizeof buf);
  if (mb__inst_can_compare(t, "preshutdown timeout", steps->preshutdown, err,
                           SERVICE_CONFIG_PRESHUTDOWN_INFO))
    mb__inst_check_num(t, "preshutdown timeout", MB_INST_PRESHUTDOWN_MS,
                       ((SERVICE_PRESHUTDOWN_INFO *)buf.bytes)->dwPreshutdownTimeout);

  err = mb__inst_query2(svc, SERVICE_CONFIG_SERVICE_SID_INFO, &buf, sizeof buf);
  if (mb__inst_can_compare(t, "service SID type", steps->sid, err, SERVICE_CONFIG_SERVICE_SID_INFO))
    mb__inst_check_num(t, "service SID type", SERVICE_SID_TYPE_UNRESTRICTED,
                       ((SERVICE_SID_INFO *)buf.bytes)->dwServiceSidType);

  if (start == SERVICE_AUTO_START) {
    err = mb__inst_query2(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &buf, sizeof buf);
    if (mb__inst_can_compare(t, "delayed auto-start", steps->delayed, err,
                             SERVICE_CONFIG_DELAYED_AUTO_START_INFO))
      mb__inst_check_num(t, "delayed auto-start", (unsigned long)delayed,
                         ((SERVICE_DELAYED_AUTO_START_INFO *)buf.bytes)->fDelayedAutostart);
  }

  mb__inst_check_event_source(t, name, exe);
}

/*
 * The account to run as: LocalSystem (default), "NT SERVICE\<name>" (the service's virtual
 * account) or a user with its password. Writes the account to use into `out`. Returns 0, or
 * prints why and returns 2.
 */
static int mb__inst_account(const char *account, const char *password, const char *name, char *out,
                            size_t size) {
  const char *nts = "NT SERVICE\\";
  size_t ntsn = strlen(nts);
  if (account == NULL || _stricmp(account, "LocalSystem") == 0) {
    if (password != NULL) {
      fprintf(stderr, "membroker: --password is for a user account; LocalSystem has none\n");
      return 2;
    }
    snprintf(out, size, "LocalSystem");
    return 0;
  }
  if (account[0] == '\0') {
    fprintf(stderr,
            "membroker: --account is empty: give LocalSystem, \"NT SERVICE\\%s\" or a "
            "user (DOMAIN\\USER, .\\USER)\n",
            name);
    return 2;
  }
  if (_strnicmp(account, nts, ntsn) == 0) {
    if (_stricmp(account + ntsn, name) != 0) {
      fprintf(stderr,
              "membroker: --account '%s': a virtual account must be the service's own, "
              "\"NT SERVICE\\%s\"\n",
              account, name);
      return 2;
    }
    if (password != NULL) {
      fprintf(stderr, "membroker: --password: the virtual account NT SERVICE\\%s has none\n", name);
      return 2;
    }
    snprintf(out, size, "NT SERVICE\\%s", name);
    return 0;
  }
  if (strchr(account, '\\') == NULL && strchr(account, '@') == NULL) {
    fprintf(stderr,
            "membroker: --account '%s': not LocalSystem or NT SERVICE\\%s; name a user "
            "as DOMAIN\\USER, .\\USER (a local user) or USER@DOMAIN\n",
            account, name);
    return 2;
  }
  /* NT AUTHORITY\LocalService / NetworkService and managed service accounts (name$) have no
   * password the installer could know; every other user needs one. */
  if (password == NULL && _strnicmp(account, "NT AUTHORITY\\", 13) != 0 &&
      account[strlen(account) - 1] != '$') {
    fprintf(stderr,
            "membroker: --account '%s' needs --password (or use \"NT SERVICE\\%s\", "
            "which has none)\n",
            account, name);
    return 2;
  }
  if (strlen(account) >= size) {
    fprintf(stderr, "membroker: --account '%s' is too long\n", account);
    return 2;
  }
  snprintf(out, size, "%s", account);
  return 0;
}

/*
 * Another installed membroker.exe service whose config has `instance` (none is looked for when
 * a service `name` exists: reinstalling under its name is CreateService's "already exists"): its
 * instance lock would refuse one of the two, so the new one could never run beside it. Configs that
 * cannot be read are passed over; a service without -c runs the built-in defaults (instance
 * "default"). Returns 0 when there is none (or the services cannot be listed: said, not fatal),
 * else prints the clash and returns 1.
 */
static int mb__inst_same_instance(const char *name, const char *instance, const char *cfgpath) {
  mb_os_service_t *list = NULL;
  mb_config_t *other;
  int n = 0, i, clash = 0;

  if (mb_os_services_list("membroker.exe", &list, &n) != 0) {
    fprintf(stderr,
            "membroker: warning: cannot list the installed services to check that none runs "
            "instance %s already: %s\n",
            instance, mb_last_error());
    return 0;
  }
  if ((other = malloc(sizeof *other)) == NULL) {
    free(list);
    return 0;
  }
  /* A service of this very name: CreateService says "already exists", which comes first. */
  for (i = 0; i < n; i++)
    if (_stricmp(list[i].name, name) == 0)
      n = 0;
  for (i = 0; i < n && !clash; i++) {
    if (list[i].config[0] == '\0')
      mb__config_defaults(other);
    else if (mb__config_load(other, list[i].config) != 0)
      continue;
    if (strcmp(other->instance, instance) != 0)
      continue;
    clash = 1;
    fprintf(stderr,
            "membroker: service '%s' already runs instance '%s' (config %s): give this config "
            "(%s) another \"instance\", or install with --force to have both (only one can "
            "run at a time)\n",
            list[i].name, instance,
            list[i].config[0] != '\0' ? list[i].config : "none: the built-in defaults", cfgpath);
  }
  free(other);
  free(list);
  return clash;
}

/* Undo a half-done install: delete the service and its event source. */
static void mb__inst_undo(SC_HANDLE svc, const wchar_t *name) {
  DeleteService(svc);
  mb__inst_event_source_remove(name);
  fprintf(stderr, "membroker: removed the half-installed service again\n");
}

int mb__svc_install(const mb_svc_install_opts_t *o) {
  static wchar_t exe[MB_INST_PATH_MAX], wcfg[MB_INST_PATH_MAX], full[MB_INST_PATH_MAX],
      other[MB_INST_PATH_MAX], cmdline[3 * MB_INST_PATH_MAX];
  static char cfgpath[4 * MB_INST_PATH_MAX];
  wchar_t wname[MB_INST_NAME_MAX + 1], display[MB_INST_NAME_MAX + 16], waccount[512];
  wchar_t wpassword[512];
  char account[512];
  mb_config_t cfg;
  mb_inst_steps_t steps = {0, 0, 0, 0, 0, 0};
  mb_inst_tally_t tally = {0, 0, 0};
  SC_HANDLE scm, svc;
  DWORD start, n, err;
  int delayed = 0, rc;

  /* ---- arguments ---- */
  if (!mb__inst_name_ok(o->name)) {
    fprintf(stderr,
            "membroker: --name '%s': a service name is 1 to %d letters, digits, '.', "
            "'_' or '-'\n",
            o->name, MB_INST_NAME_MAX);
    return 2;
  }
  if (o->start == NULL || strcmp(o->start, "auto") == 0) {
    start = SERVICE_AUTO_START;
  } else if (strcmp(o->start, "delayed") == 0) {
    start = SERVICE_AUTO_START;
    delayed = 1;
  } else if (strcmp(o->start, "demand") == 0) {
    start = SERVICE_DEMAND_START;
  } else {
    fprintf(stderr,
            "membroker: --start '%s': use auto (at boot), delayed (shortly after boot) "
            "or demand (sc start only)\n",
            o->start);
    return 2;
  }
  if ((rc = mb__inst_account(o->account, o->password, o->name, account, sizeof account)) != 0)
    return rc;
  mb__inst_widen(o->name, wname, MB_INST_NAME_MAX + 1);
  if (mb__inst_widen(account, waccount, 512) != 0 ||
      (o->password != NULL && mb__inst_widen(o->password, wpassword, 512) != 0)) {
    fprintf(stderr, "membroker: --account or --password is not valid UTF-8 or too long\n");
    return 2;
  }

  /* ---- the executable and the config, absolute ---- */
  n = GetModuleFileNameW(NULL, exe, MB_INST_PATH_MAX);
  if (n == 0 || n >= MB_INST_PATH_MAX) {
    mb__inst_fail("cannot find the path of membroker.exe", GetLastError());
    return 1;
  }
  if (o->config == NULL) {
    /* An unpacked release: <root>\bin\membroker.exe and <root>\config\membroker.json. */
    wchar_t *slash = wcsrchr(exe, L'\\');
    _snwprintf(wcfg, MB_INST_PATH_MAX, L"%.*ls\\..\\config\\membroker.json",
               (int)(slash != NULL ? slash - exe : 0), exe);
    wcfg[MB_INST_PATH_MAX - 1] = L'\0';
    n = GetFullPathNameW(wcfg, MB_INST_PATH_MAX, full, NULL);
    if (n == 0 || n >= MB_INST_PATH_MAX || GetFileAttributesW(full) == INVALID_FILE_ATTRIBUTES) {
      mb__inst_narrow(n > 0 && n < MB_INST_PATH_MAX ? full : wcfg, cfgpath, sizeof cfgpath);
      fprintf(stderr,
              "membroker: no -c FILE given and the release's config %s does not exist: "
              "pass -c with the absolute path of the config\n",
              cfgpath);
      return 1;
    }
  } else {
    if (mb__inst_widen(o->config, wcfg, MB_INST_PATH_MAX) != 0) {
      fprintf(stderr, "membroker: -c '%s': not valid UTF-8 or too long\n", o->config);
      return 2;
    }
    if (!mb__inst_path_absolute(wcfg)) {
      n = GetFullPathNameW(wcfg, MB_INST_PATH_MAX, full, NULL);
      if (n > 0 && n < MB_INST_PATH_MAX && mb__inst_narrow(full, cfgpath, sizeof cfgpath) == 0)
        fprintf(stderr,
                "membroker: -c '%s' is a relative path, and the service does not start "
                "in this folder: pass the absolute path (%s)\n",
                o->config, cfgpath);
      else
        fprintf(stderr, "membroker: -c '%s' is a relative path: pass the absolute path\n",
                o->config);
      return 1;
    }
    n = GetFullPathNameW(wcfg, MB_INST_PATH_MAX, full, NULL); /* C:\a\..\b -> C:\b */
    if (n == 0 || n >= MB_INST_PATH_MAX) {
      mb__inst_fail("cannot resolve the config path", GetLastError());
      return 1;
    }
    if (GetFileAttributesW(full) == INVALID_FILE_ATTRIBUTES) {
      fprintf(stderr, "membroker: config file not found: %s\n", o->config);
      return 1;
    }
  }
  if (mb__inst_narrow(full, cfgpath, sizeof cfgpath) != 0) {
    fprintf(stderr, "membroker: the config path does not convert to UTF-8\n");
    return 1;
  }
  if (mb__config_load(&cfg, cfgpath) != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    fprintf(stderr,
            "membroker: not installed: fix the config first (membroker --check-config "
            "%s)\n",
            cfgpath);
    return 1;
  }
  printf("membroker: config %s: valid (instance %s)\n", cfgpath, cfg.instance);
  if (!o->force && mb__inst_same_instance(o->name, cfg.instance, cfgpath) != 0) {
    fprintf(stderr, "membroker: not installed\n");
    return 1;
  }
  if (!mb__inst_event_source_ours(wname, other, MB_INST_PATH_MAX)) {
    fprintf(stderr,
            "membroker: the event-log source '%s' belongs to another program (its message file "
            "is %ls): choose another --name; not installed\n",
            o->name, other);
    return 1;
  }
  /* The folder the service writes in, made its own before anyone else can (os.h). */
  if (mb_os_data_dir_prepare(NULL, NULL, 0) != 0) {
    fprintf(stderr, "membroker: %s\nmembroker: not installed\n", mb_last_error());
    return 1;
  }

  /* ---- create ---- */
  _snwprintf(cmdline, 3 * MB_INST_PATH_MAX, L"\"%ls\" service -c \"%ls\" -n %ls", exe, full, wname);
  cmdline[3 * MB_INST_PATH_MAX - 1] = L'\0';
  if (strcmp(o->name, "membroker") == 0)
    _snwprintf(display, MB_INST_NAME_MAX + 16, L"membroker");
  else
    _snwprintf(display, MB_INST_NAME_MAX + 16, L"membroker (%ls)", wname);
  display[MB_INST_NAME_MAX + 15] = L'\0';

  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
  if (scm == NULL) {
    mb__inst_fail("cannot open the Service Control Manager to create a service", GetLastError());
    return 1;
  }
  svc = CreateServiceW(scm, wname, display, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS, start,
                       SERVICE_ERROR_NORMAL, cmdline, NULL, NULL, NULL, waccount,
                       o->password != NULL ? wpassword : NULL);
  SecureZeroMemory(wpassword, sizeof wpassword);
  if (svc == NULL) {
    err = GetLastError();
    if (err == ERROR_SERVICE_EXISTS)
      fprintf(stderr,
              "membroker: a service named %s already exists (remove it with membroker "
              "uninstall --name %s, or pick another --name)\n",
              o->name, o->name);
    else if (err == ERROR_DUPLICATE_SERVICE_NAME)
      fprintf(stderr,
              "membroker: another service already has the display name of %s: pick "
              "another --name\n",
              o->name);
    else if (err == ERROR_INVALID_SERVICE_ACCOUNT)
      fprintf(stderr, "membroker: --account '%s': no such account\n", account);
    else
      mb__inst_fail("CreateService failed", err);
    CloseServiceHandle(scm);
    return 1;
  }

  /* ---- configure: every step either sets its item, or the SCM does not implement it ---- */
  {
    SERVICE_DESCRIPTIONW desc = {(LPWSTR)MB_INST_DESCRIPTION};
    SC_ACTION actions[3];
    SERVICE_FAILURE_ACTIONSW fa;
    SERVICE_FAILURE_ACTIONS_FLAG flag = {TRUE};
    SERVICE_PRESHUTDOWN_INFO pre = {MB_INST_PRESHUTDOWN_MS};
    SERVICE_SID_INFO sid = {SERVICE_SID_TYPE_UNRESTRICTED};
    SERVICE_DELAYED_AUTO_START_INFO del = {TRUE};
    DWORD *errs[6] = {&steps.description, &steps.failure, &steps.failure_flag,
                      &steps.preshutdown, &steps.sid,     &steps.delayed};
    const char *what[6] = {"the description",          "the failure actions",
                           "the failure-actions flag", "the preshutdown timeout",
                           "the service SID type",     "delayed auto-start"};
    int i;
    memcpy(actions, mb__inst_actions, sizeof actions);
    memset(&fa, 0, sizeof fa);
    fa.dwResetPeriod = MB_INST_RESET_S;
    fa.cActions = 3;
    fa.lpsaActions = actions;
    steps.description = mb__inst_set2(svc, SERVICE_CONFIG_DESCRIPTION, &desc);
    steps.failure = mb__inst_set2(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa);
    steps.failure_flag = mb__inst_set2(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag);
    steps.preshutdown = mb__inst_set2(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pre);
    steps.sid = mb__inst_set2(svc, SERVICE_CONFIG_SERVICE_SID_INFO, &sid);
    if (delayed)
      steps.delayed = mb__inst_set2(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &del);
    for (i = 0; i < 6; i++) {
      if (*errs[i] != 0 && !mb__inst_unsupported(*errs[i])) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot set %s", what[i]);
        mb__inst_fail(msg, *errs[i]);
        mb__inst_undo(svc, wname);
        CloseServiceHandle(svc);
        CloseServiceHandle(scm);
        return 1;
      }
    }
  }
  if ((err = mb__inst_event_source(wname, exe)) != 0) {
    mb__inst_fail("cannot register the event-log source", err);
    mb__inst_undo(svc, wname);
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return 1;
  }

  /* ---- read back ---- */
  printf("membroker: created service %s; reading back what was set:\n", o->name);
  mb__inst_readback(&tally, svc, wname, display, cmdline, start, delayed, waccount, exe, &steps);
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  {
    int i, large = 0;
    for (i = 0; i < cfg.nregions; i++)
      large |= cfg.regions[i].large_pages;
    if (large) {
      rc = mb__svc_grant_lock_memory(account);
      if (rc == 0) {
        mb__inst_ok(&tally, "lock pages in memory (SeLockMemoryPrivilege, for large_pages)");
      } else if (rc == MB_ENOTSUP) {
        printf("  %-32s not supported here: %s\n", "lock pages in memory", mb_last_error());
        tally.unsupported++;
      } else {
        /* The service still runs, on normal pages (the broker warns once per region). */
        fprintf(stderr,
                "membroker: %s: the regions with large_pages will have normal pages; grant "
                "\"Lock pages in memory\" to %s in secpol.msc\n",
                mb_last_error(), account);
        tally.differs++;
      }
    }
  }
  if (tally.differs > 0) {
    fprintf(stderr,
            "membroker: service %s is installed, but %d item(s) differ from what was "
            "set (see above); remove it with membroker uninstall --name %s\n",
            o->name, tally.differs, o->name);
    return 1;
  }
  printf("membroker: installed service %s (%d items ok, %d not supported here)\n", o->name,
         tally.ok, tally.unsupported);
  printf("membroker: start it with: sc.exe start %s\n", o->name);
  return 0;
}

/* ---- the large-pages privilege ------------------------------------------------------------ */

/* An NTSTATUS of the LSA as an MB_E* code with a message naming the step and the account. */
static int mb__inst_lsa_err(NTSTATUS st, const char *what, const char *account) {
  DWORD e = LsaNtStatusToWinError(st);
  int code = (e == ERROR_ACCESS_DENIED || e == ERROR_PRIVILEGE_NOT_HELD) ? MB_EACCES
             : (e == ERROR_CALL_NOT_IMPLEMENTED || e == ERROR_NOT_SUPPORTED ||
                e == ERROR_MR_MID_NOT_FOUND || st == (NTSTATUS)0xC0000002L)
                 ? MB_ENOTSUP
                 : MB_EOS;
  return mb__errorf(code, (long)e, "%s for '%s' (NTSTATUS 0x%08lx)", what, account,
                    (unsigned long)st);
}

int mb__svc_grant_lock_memory(const char *account) {
  static const wchar_t right[] = L"SeLockMemoryPrivilege";
  wchar_t waccount[512], domain[256];
  BYTE sidbuf[SECURITY_MAX_SID_SIZE];
  PSID sid = (PSID)sidbuf, system_sid = NULL;
  DWORD sidsize = sizeof sidbuf, domsize = 256, e;
  SID_NAME_USE use;
  LSA_OBJECT_ATTRIBUTES oa;
  LSA_HANDLE pol;
  LSA_UNICODE_STRING ur, *rights = NULL;
  ULONG nrights = 0, i;
  NTSTATUS st;
  int found = 0, rc;

  if (account == NULL || _stricmp(account, "LocalSystem") == 0) {
    if (!ConvertStringSidToSidW(L"S-1-5-18", &system_sid)) {
      e = GetLastError();
      return mb__errorf(MB_EOS, (long)e, "the SID of LocalSystem");
    }
    sid = system_sid;
    account = "LocalSystem";
  } else {
    if (mb__inst_widen(account, waccount, 512) != 0)
      return mb__errorf(MB_EINVAL, 0, "account '%s': not valid UTF-8 or too long", account);
    if (!LookupAccountNameW(NULL, waccount, sid, &sidsize, domain, &domsize, &use)) {
      e = GetLastError();
      return mb__errorf(e == ERROR_NONE_MAPPED ? MB_ENOENT : MB_EOS, (long)e,
                        "look up account '%s'", account);
    }
  }
  memset(&oa, 0, sizeof oa);
  st = LsaOpenPolicy(NULL, &oa, POLICY_CREATE_ACCOUNT | POLICY_LOOKUP_NAMES, &pol);
  if (st != 0) {
    rc = mb__inst_lsa_err(st, "open the local security policy", account);
    goto out;
  }
  ur.Buffer = (PWSTR)right;
  ur.Length = (USHORT)(wcslen(right) * sizeof(wchar_t));
  ur.MaximumLength = (USHORT)(ur.Length + sizeof(wchar_t));
  st = LsaAddAccountRights(pol, sid, &ur, 1);
  if (st != 0) {
    rc = mb__inst_lsa_err(st, "grant SeLockMemoryPrivilege", account);
    LsaClose(pol);
    goto out;
  }
  /* Read it back: the grant is there, or the call did not do what it said. */
  st = LsaEnumerateAccountRights(pol, sid, &rights, &nrights);
  if (st == (NTSTATUS)0xC0000034L) { /* STATUS_OBJECT_NAME_NOT_FOUND: no rights recorded */
    /* The add said yes but nothing was kept (Wine's LsaAddAccountRights is a stub). */
    rc = mb__errorf(MB_ENOTSUP, (long)LsaNtStatusToWinError(st),
                    "the LSA accepted SeLockMemoryPrivilege for '%s' but keeps no rights for it "
                    "(LsaEnumerateAccountRights: none): this LSA does not store grants",
                    account);
    LsaClose(pol);
    goto out;
  }
  if (st != 0) {
    rc = mb__inst_lsa_err(st, "read back the rights", account);
    LsaClose(pol);
    goto out;
  }
  for (i = 0; i < nrights; i++)
    if (rights[i].Length == ur.Length && memcmp(rights[i].Buffer, right, ur.Length) == 0)
      found = 1;
  LsaFreeMemory(rights);
  LsaClose(pol);
  rc = found ? 0
             : mb__errorf(MB_EOS, 0, "'%s' does not hold SeLockMemoryPrivilege after the grant",
                          account);
out:
  if (system_sid != NULL)
    LocalFree(system_sid);
  return rc;
}

/* ---- uninstall ------------------------------------------------------------------------- */

int mb__svc_uninstall(const char *name) {
  wchar_t wname[MB_INST_NAME_MAX + 1];
  SERVICE_STATUS_PROCESS st;
  SERVICE_STATUS ss;
  SC_HANDLE scm, svc;
  DWORD need, err;
  ULONGLONG deadline;
  int asked = 0;

  if (!mb__inst_name_ok(name)) {
    fprintf(stderr,
            "membroker: --name '%s': a service name is 1 to %d letters, digits, '.', "
            "'_' or '-'\n",
            name, MB_INST_NAME_MAX);
    return 2;
  }
  mb__inst_widen(name, wname, MB_INST_NAME_MAX + 1);
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL) {
    mb__inst_fail("cannot open the Service Control Manager", GetLastError());
    return 1;
  }
  svc = OpenServiceW(scm, wname, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
  if (svc == NULL) {
    err = GetLastError();
    if (err == ERROR_SERVICE_DOES_NOT_EXIST)
      fprintf(stderr, "membroker: service %s is not installed (nothing to remove)\n", name);
    else
      mb__inst_fail("cannot open the service", err);
    CloseServiceHandle(scm);
    return 1;
  }

  /* Only a service that runs membroker.exe: a typo must not stop and delete another one. */
  if (!mb__inst_service_is_ours(name)) {
    fprintf(stderr,
            "membroker: service %s does not run membroker.exe: not stopped, not removed (use "
            "sc.exe delete if you really mean it)\n",
            name);
    goto fail;
  }

  /* Stop it, and wait for STOPPED. A service still starting cannot take STOP yet: ask again. */
  deadline = GetTickCount64() + MB_INST_STOP_TIMEOUT_MS;
  for (;;) {
    if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof st, &need)) {
      mb__inst_fail("cannot query the service's status", GetLastError());
      goto fail;
    }
    if (st.dwCurrentState == SERVICE_STOPPED)
      break;
    if (st.dwCurrentState != SERVICE_STOP_PENDING) {
      if (!asked)
        printf("membroker: stopping service %s\n", name);
      asked = 1;
      if (!ControlService(svc, SERVICE_CONTROL_STOP, &ss)) {
        err = GetLastError();
        if (err != ERROR_SERVICE_CANNOT_ACCEPT_CTRL && err != ERROR_SERVICE_NOT_ACTIVE) {
          mb__inst_fail("cannot stop the service", err);
          goto fail;
        }
      }
    }
    if (GetTickCount64() > deadline) {
      fprintf(stderr, "membroker: service %s did not stop within %d s (state %lu); not removed\n",
              name, MB_INST_STOP_TIMEOUT_MS / 1000, (unsigned long)st.dwCurrentState);
      goto fail;
    }
    Sleep(100);
  }
  if (!DeleteService(svc)) {
    err = GetLastError();
    if (err != ERROR_SERVICE_MARKED_FOR_DELETE) {
      mb__inst_fail("cannot delete the service", err);
      goto fail;
    }
  }
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  if ((err = mb__inst_event_source_remove(wname)) != 0) {
    mb__inst_fail("service removed, but not its event-log source", err);
    return 1;
  }
  printf("membroker: removed service %s and its event-log source\n", name);
  return 0;

fail:
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  return 1;
}

#endif /* MB_OS_WIN */
