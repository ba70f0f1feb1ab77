/*
 * svc_win32.c - service glue for Windows: run the broker under the Service Control Manager.
 *
 * `membroker service -n NAME` calls mb__svc_main, which hands the main thread to the SCM
 * (StartServiceCtrlDispatcherW). The SCM starts ServiceMain on a thread of its own; that
 * thread runs the portable loop (mb__run) and reports the service status from the loop's
 * hooks:
 *
 *   START_PENDING  checkpoints from the `starting` steps (memory committed, loop up)
 *   RUNNING        from the `ready` hook only: the state block is published
 *   STOP_PENDING   on STOP / SHUTDOWN / PRESHUTDOWN (the control handler asks the loop to
 *                  stop; the loop sets server status "shutting down" before it releases
 *                  anything, then saves the state when persist is on - at PRESHUTDOWN that
 *                  is the save before Windows goes down), checkpoints from the `stopping`
 *                  steps (loop ended, saved, released)
 *   STOPPED        exit code 0 after a clean stop; ERROR_SERVICE_SPECIFIC_ERROR with a
 *                  service exit code of mb_svc_exit_t (svc.h) when the config could not be
 *                  loaded (2), the log file could not be opened (3) or the broker could not
 *                  start (1)
 *
 * ServiceMain, not main(), loads the config and opens the log, so every failure reaches the
 * SCM and a log. The log file is log.file, or by default
 * %ProgramData%\membroker\<instance>\membroker.log (%ProgramData%\membroker\<service name>.log
 * for a config error: the instance is not known then). Its folders are prepared before the
 * file is opened (mb__log_default_path -> mb_os_data_dir_prepare): created with a DACL of
 * SYSTEM and Administrators, and refused - exit code 3, the message names the folder to
 * remove - when another user owns one or it is a junction, which could make LocalSystem
 * write wherever that user likes. The lock's record folder is prepared by mb_os_lock_take.
 *
 * The control handler runs on the dispatcher (main) thread, so the status is kept under a
 * lock. With "log": {"event_log": true} (the default) the service reports to the Application
 * event log under a source named after the service, whose message table is the resource
 * compiled from service/messages.mc into membroker.exe: the event ID says what happened,
 * the log line is the insertion string. It receives start, stop, warnings and errors only
 * (log.h). A config or log-file error always goes there (nothing else would show it).
 */
#include "os_setup.h"

#if MB_OS_WIN

/* Project headers first, then <windows.h>. */
#include "error.h"
#include "log.h"
#include "os.h"
#include "svc.h"

#include <windows.h>

#include <stdio.h>
#include <string.h>
#include <wchar.h>

/* Wait hints (ms): how long the SCM should wait for the next checkpoint. */
#define MB_SVC_HINT_START 5000    /* before the broker starts */
#define MB_SVC_HINT_COMMIT 30000  /* committing the configured regions may take a while */
#define MB_SVC_HINT_STOP 10000    /* from a stop control to the loop's first stop step */
#define MB_SVC_HINT_SAVE 30000    /* the last save of the state (persist.dir) */
#define MB_SVC_HINT_RELEASE 30000 /* releasing the regions */

#define MB_SVC_NAME_MAX 257 /* the SCM allows 256 characters */

typedef struct mb_svc_s {
  CRITICAL_SECTION lock;           /* guards status and stop_wanted */
  SERVICE_STATUS_HANDLE handle;    /* from RegisterServiceCtrlHandlerExW */
  SERVICE_STATUS status;           /* last status reported */
  int stop_wanted;                 /* a stop control came before RUNNING */
  const char *config_path;         /* -c FILE, or NULL for the built-in defaults */
  mb_config_t cfg;                 /* loaded by ServiceMain */
  wchar_t name[MB_SVC_NAME_MAX];   /* the service name */
  char name8[MB_SVC_NAME_MAX * 3]; /* the same in UTF-8 */
  HANDLE event_source;             /* RegisterEventSourceW, or NULL */
  int rc;                          /* exit code of the service (mb__run) */
} mb_svc_t;

static mb_svc_t mb__svc;

void mb__svc_notify(const char *state) {
  (void)state; /* systemd only */
}

/* No SIGHUP/SIGUSR1/SIGUSR2 to a Windows service (libuv's SIGHUP there means a console window
 * closing, which is not a reopen). */
void mb__svc_signals(mb_svc_signals_t *sig) {
  sig->reopen = sig->reopen2 = sig->status = 0;
  sig->reopen_name = sig->reopen2_name = sig->status_name = "";
}

uint64_t mb__svc_watchdog_ms(void) {
  return 0; /* the SCM has no watchdog; recovery actions restart a crashed service */
}

int mb__svc_stderr_is_journal(void) {
  return 0;
}

const char *mb__svc_sandbox_hint(const char *path) {
  (void)path;
  return "";
}

/* UTF-8 to UTF-16 into buf (count wide chars). Returns 0, or -1 if it does not convert. */
static int mb__svc_widen(const char *s, wchar_t *buf, int count) {
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, buf, count) > 0 ? 0 : -1;
}

/* ---- event log ------------------------------------------------------------------------- */

/*
 * Log sink (log.h routes to it only start/stop and other events with an ID, warnings and
 * errors): one event with the line's event ID, the type from its level, the message as the
 * insertion string %1 of the ID's text. The message is converted to UTF-16; a line that does
 * not convert is reported as '?'. Never fails visibly: the event log is a second destination.
 */
static void mb__svc_event_sink(mb_log_level_t level, mb_event_t event, const char *msg) {
  HANDLE src = mb__svc.event_source;
  wchar_t text[1100]; /* a log line is at most 1023 bytes: as many UTF-16 units at most */
  const wchar_t *strings[1] = {text};
  WORD type;

  if (src == NULL)
    return;
  type = level == MB_LOG_ERROR  ? EVENTLOG_ERROR_TYPE
         : level == MB_LOG_WARN ? EVENTLOG_WARNING_TYPE
                                : EVENTLOG_INFORMATION_TYPE;
  if (MultiByteToWideChar(CP_UTF8, 0, msg, -1, text, (int)(sizeof text / sizeof text[0])) <= 0)
    wcscpy(text, L"?");
  (void)ReportEventW(src, type, 0, (DWORD)event, NULL, 1, 0, strings, NULL);
}

/*
 * Name this executable as the message file of the event source (HKLM\SYSTEM\...\EventLog\
 * Application\<service name>: EventMessageFile, TypesSupported), so the event viewer shows
 * the texts of messages.mc. Best effort: without it the events are still logged, with the
 * viewer's "description cannot be found" and the line as their string. `membroker
 * uninstall` removes the key.
 */
static void mb__svc_event_register(void) {
  wchar_t sub[64 + MB_SVC_NAME_MAX], exe[MAX_PATH];
  DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE, n;
  HKEY key;
  LONG e;

  n = GetModuleFileNameW(NULL, exe, MAX_PATH);
  if (n == 0 || n >= MAX_PATH)
    return;
  _snwprintf(sub, sizeof sub / sizeof sub[0],
             L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls", mb__svc.name);
  sub[sizeof sub / sizeof sub[0] - 1] = L'\0';
  e = RegCreateKeyExW(HKEY_LOCAL_MACHINE, sub, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL);
  if (e != ERROR_SUCCESS) {
    mb_log_debug("event log: cannot register the message file (os error %ld)", (long)e);
    return;
  }
  e = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe,
                     (n + 1) * sizeof(wchar_t));
  if (e == ERROR_SUCCESS)
    e = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types, sizeof types);
  if (e != ERROR_SUCCESS)
    mb_log_debug("event log: cannot register the message file (os error %ld)", (long)e);
  RegCloseKey(key);
}

/* Register the event source named after the service and install the sink. */
static void mb__svc_event_open(void) {
  if (mb__svc.event_source != NULL)
    return;
  mb__svc_event_register();
  mb__svc.event_source = RegisterEventSourceW(NULL, mb__svc.name);
  if (mb__svc.event_source == NULL) {
    mb_log_warn("event log: RegisterEventSource failed (os error %lu); logging to the file only",
                (unsigned long)GetLastError());
    return;
  }
  mb__log_set_sink(mb__svc_event_sink);
}

/* Remove the sink first, then the source, so no line goes to a closed handle. */
static void mb__svc_event_close(void) {
  HANDLE src = mb__svc.event_source;
  if (src == NULL)
    return;
  mb__log_set_sink(NULL);
  mb__svc.event_source = NULL;
  DeregisterEventSource(src);
}

/* ---- status ---------------------------------------------------------------------------- */

static int mb__svc_pending(DWORD state) {
  return state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING ||
         state == SERVICE_CONTINUE_PENDING || state == SERVICE_PAUSE_PENDING;
}

/*
 * Report `state` to the SCM. A pending state counts its checkpoint up on each report (so every
 * start or stop step is progress the SCM can see) and carries `wait_hint`; RUNNING and STOPPED
 * reset both. Controls are accepted only while RUNNING. The status never goes back: once
 * stopping, RUNNING is ignored, and nothing follows STOPPED. Caller must not hold the lock.
 */
static void mb__svc_report(DWORD state, DWORD wait_hint, DWORD exit_code, DWORD specific) {
  SERVICE_STATUS *st = &mb__svc.status;
  DWORD err = 0;

  EnterCriticalSection(&mb__svc.lock);
  if (st->dwCurrentState == SERVICE_STOPPED ||
      (state == SERVICE_RUNNING && st->dwCurrentState == SERVICE_STOP_PENDING)) {
    LeaveCriticalSection(&mb__svc.lock);
    return;
  }
  if (mb__svc_pending(state)) {
    st->dwCheckPoint = st->dwCurrentState == state ? st->dwCheckPoint + 1 : 1;
    st->dwWaitHint = wait_hint;
  } else {
    st->dwCheckPoint = 0;
    st->dwWaitHint = 0;
  }
  st->dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  st->dwCurrentState = state;
  st->dwControlsAccepted =
      state == SERVICE_RUNNING
          ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PRESHUTDOWN
          : 0;
  st->dwWin32ExitCode = exit_code;
  st->dwServiceSpecificExitCode = specific;
  if (!SetServiceStatus(mb__svc.handle, st))
    err = GetLastError();
  LeaveCriticalSection(&mb__svc.lock);
  if (err != 0)
    mb_log_warn("SetServiceStatus(%lu) failed (os error %lu)", (unsigned long)state,
                (unsigned long)err);
}

/* Send the last status again (INTERROGATE), as it is. */
static void mb__svc_rereport(void) {
  EnterCriticalSection(&mb__svc.lock);
  if (mb__svc.status.dwCurrentState != SERVICE_STOPPED)
    (void)SetServiceStatus(mb__svc.handle, &mb__svc.status);
  LeaveCriticalSection(&mb__svc.lock);
}

/* ---- run-loop hooks (ServiceMain's thread) ---------------------------------------------- */

static void mb__svc_starting(void *ctx, int step) {
  (void)ctx;
  mb__svc_report(SERVICE_START_PENDING, step == 1 ? MB_SVC_HINT_COMMIT : MB_SVC_HINT_START,
                 NO_ERROR, 0);
}

/* The state block is published and the loop is about to run: RUNNING, unless a stop came
 * while starting (SHUTDOWN is sent regardless of the accepted controls) - then stop now. */
static void mb__svc_ready(void *ctx) {
  int stop;
  (void)ctx;
  EnterCriticalSection(&mb__svc.lock);
  stop = mb__svc.stop_wanted;
  LeaveCriticalSection(&mb__svc.lock);
  if (stop) {
    mb__svc_report(SERVICE_STOP_PENDING, MB_SVC_HINT_STOP, NO_ERROR, 0);
    mb__run_request_stop();
    return;
  }
  mb__svc_report(SERVICE_RUNNING, 0, NO_ERROR, 0);
  mb_log_event(MB_EV_STARTED, MB_LOG_INFO, "service %ls running: instance %s, log %s", mb__svc.name,
               mb__svc.cfg.instance, mb__log_path());
}

/* Step 1: the loop has ended (status "shutting down" is published), the state is saved next
 * (persist); step 2: saved, regions are released next; step 3: everything is released. Each
 * is a checkpoint, so at PRESHUTDOWN the SCM sees the save progress within the preshutdown
 * timeout (60 s as `membroker install` sets it; each hint is below it). A stop that did not
 * come from the SCM (the `shutdown` command) enters STOP_PENDING here. */
static void mb__svc_stopping(void *ctx, int step) {
  (void)ctx;
  mb__svc_report(SERVICE_STOP_PENDING,
                 step == 1   ? MB_SVC_HINT_SAVE
                 : step == 2 ? MB_SVC_HINT_RELEASE
                             : MB_SVC_HINT_STOP,
                 NO_ERROR, 0);
}

/* ---- SCM side (dispatcher thread) -------------------------------------------------------- */

static const char *mb__svc_control_name(DWORD control) {
  switch (control) {
  case SERVICE_CONTROL_STOP:
    return "stop";
  case SERVICE_CONTROL_SHUTDOWN:
    return "shutdown";
  case SERVICE_CONTROL_PRESHUTDOWN:
    return "preshutdown";
  default:
    return "?";
  }
}

/*
 * The control handler. STOP, SHUTDOWN and PRESHUTDOWN: report STOP_PENDING and ask the loop
 * to stop (it answers at once; the work happens on the loop's thread). Before RUNNING the
 * request is remembered and acted on by the ready hook. INTERROGATE re-reports the status.
 */
static DWORD WINAPI mb__svc_handler(DWORD control, DWORD type, LPVOID data, LPVOID ctx) {
  DWORD state;
  (void)type;
  (void)data;
  (void)ctx;
  switch (control) {
  case SERVICE_CONTROL_STOP:
  case SERVICE_CONTROL_SHUTDOWN:
  case SERVICE_CONTROL_PRESHUTDOWN:
    EnterCriticalSection(&mb__svc.lock);
    state = mb__svc.status.dwCurrentState;
    if (state == SERVICE_START_PENDING)
      mb__svc.stop_wanted = 1;
    LeaveCriticalSection(&mb__svc.lock);
    if (state == SERVICE_RUNNING) {
      if (control == SERVICE_CONTROL_PRESHUTDOWN && mb__svc.cfg.persist_dir[0] != '\0')
        mb_log_info("service control: preshutdown: Windows is shutting down; saving the state "
                    "in %s, then stopping",
                    mb__svc.cfg.persist_dir);
      else
        mb_log_info("service control: %s", mb__svc_control_name(control));
      mb__svc_report(SERVICE_STOP_PENDING, MB_SVC_HINT_STOP, NO_ERROR, 0);
      mb__run_request_stop();
    }
    return NO_ERROR;
  case SERVICE_CONTROL_INTERROGATE:
    mb__svc_rereport();
    return NO_ERROR;
  default:
    return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

unsigned long mb__svc_control(unsigned long control) {
  return mb__svc_handler((DWORD)control, 0, NULL, NULL);
}

/*
 * Load the config and open the log (ServiceMain, after START_PENDING). Returns 0, or the
 * service exit code after logging the reason: to the default log file and the event log
 * (MB_EV_CONFIG_ERROR, MB_EV_LOG_FAILED), whatever log.event_log says.
 */
/*
 * The service cannot open the log it was configured with (or cannot even read its config):
 * say why in the service's own fallback file, %ProgramData%\membroker\<service name>.log, and
 * in the event log, so the reason is found where README sends an operator. Returns `code`.
 */
static int mb__svc_fail_early(int event, int code, const char *what, const char *why) {
  char file[MB_CONFIG_PATH_MAX];
  if (mb__log_default_path(file, sizeof file, NULL, mb__svc.name8) == 0)
    (void)mb__log_open_file(MB_LOG_INFO, file, MB_LOG_MAX_BYTES_DEFAULT, MB_LOG_KEEP_DEFAULT);
  mb__svc_event_open();
  mb_log_event(event, MB_LOG_ERROR, "service %ls: %s%s (service exit code %d)", mb__svc.name, what,
               why, code);
  return code;
}

static int mb__svc_prepare(void) {
  mb_config_t *cfg = &mb__svc.cfg;
  char file[MB_CONFIG_PATH_MAX], why[1024];

  if (mb__svc.config_path == NULL) {
    mb__config_defaults(cfg);
  } else if (mb__config_load(cfg, mb__svc.config_path) != 0) {
    snprintf(why, sizeof why, "%s", mb_last_error());
    return mb__svc_fail_early(MB_EV_CONFIG_ERROR, MB_SVC_EXIT_CONFIG, "configuration error: ", why);
  }
  if (cfg->log_file[0] != '\0') {
    snprintf(file, sizeof file, "%s", cfg->log_file);
  } else if (mb__log_default_path(file, sizeof file, cfg->instance, NULL) != 0) {
    snprintf(why, sizeof why, "default log file for instance %s: %s", cfg->instance,
             mb_last_error());
    goto log_failed;
  }
  if (mb__log_open_file(cfg->log_level, file, cfg->log_max_bytes, cfg->log_keep) != 0) {
    snprintf(why, sizeof why, "%s", mb_last_error());
    goto log_failed;
  }
  if (cfg->log_event_log)
    mb__svc_event_open();
  return 0;

log_failed:
  return mb__svc_fail_early(MB_EV_LOG_FAILED, MB_SVC_EXIT_LOG, "cannot open the log file: ", why);
}

/*
 * ServiceMain: register the handler under the name the SCM started us as (argv[0]; the -n
 * name if absent), report START_PENDING, load the config and open the log, run the broker,
 * report STOPPED with its exit code.
 */
static void WINAPI mb__svc_service_main(DWORD argc, LPWSTR *argv) {
  mb_run_hooks_t hooks = {mb__svc_starting, mb__svc_ready, mb__svc_stopping, NULL};
  int rc;

  if (argc >= 1 && argv[0] != NULL && argv[0][0] != L'\0' && wcslen(argv[0]) < MB_SVC_NAME_MAX) {
    wcscpy(mb__svc.name, argv[0]);
    if (WideCharToMultiByte(CP_UTF8, 0, mb__svc.name, -1, mb__svc.name8, (int)sizeof mb__svc.name8,
                            NULL, NULL) <= 0)
      snprintf(mb__svc.name8, sizeof mb__svc.name8, "membroker");
  }
  mb__svc.handle = RegisterServiceCtrlHandlerExW(mb__svc.name, mb__svc_handler, NULL);
  if (mb__svc.handle == NULL) {
    mb_log_error("RegisterServiceCtrlHandlerEx(%ls) failed (os error %lu)", mb__svc.name,
                 (unsigned long)GetLastError());
    mb__svc.rc = MB_SVC_EXIT_START;
    return;
  }
  mb__svc_report(SERVICE_START_PENDING, MB_SVC_HINT_START, NO_ERROR, 0);

  rc = mb__svc_prepare();
  if (rc == 0) {
    mb__run_log_start("service", mb__svc.config_path);
    if (mb__run(&mb__svc.cfg, MB_OS_SEC_GLOBAL | MB_OS_LOCK_SERVICE, &hooks) == 0) {
      mb_log_event(MB_EV_STOPPED, MB_LOG_INFO, "service %ls stopped", mb__svc.name);
    } else {
      rc = MB_SVC_EXIT_START;
      mb_log_event(MB_EV_STOPPED, MB_LOG_ERROR,
                   "service %ls stopped: the broker could not start (service exit code %d)",
                   mb__svc.name, rc);
    }
  }
  mb__svc_event_close();
  mb__svc.rc = rc;
  /* Last: after STOPPED the SCM may end the process at any time. */
  if (rc != 0)
    mb__svc_report(SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, (DWORD)rc);
  else
    mb__svc_report(SERVICE_STOPPED, 0, NO_ERROR, 0);
}

/*
 * Connect to the SCM and serve until the service has stopped. Returns the service's exit
 * code; 1 if this process was not started by the SCM (then `membroker run` is what the user
 * wants: said on stderr and, when the config names one, in the log file) or the dispatcher
 * could not start.
 */
int mb__svc_main(const char *service_name, const char *config_path) {
  SERVICE_TABLE_ENTRYW table[2];
  DWORD err;

  memset(&mb__svc, 0, sizeof mb__svc);
  (void)mb__log_open(MB_LOG_INFO, ""); /* stderr until ServiceMain opens the file */
  if (mb__svc_widen(service_name, mb__svc.name, MB_SVC_NAME_MAX) != 0) {
    mb_log_error("service name '%s' is not valid UTF-8 or longer than %d characters", service_name,
                 MB_SVC_NAME_MAX - 1);
    return 1;
  }
  snprintf(mb__svc.name8, sizeof mb__svc.name8, "%s", service_name);
  mb__svc.config_path = config_path;
  mb__svc.rc = 1; /* unless ServiceMain runs */
  mb__svc.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  mb__svc.status.dwCurrentState = SERVICE_START_PENDING;
  InitializeCriticalSection(&mb__svc.lock);

  table[0].lpServiceName = mb__svc.name;
  table[0].lpServiceProc = mb__svc_service_main;
  table[1].lpServiceName = NULL;
  table[1].lpServiceProc = NULL;
  if (!StartServiceCtrlDispatcherW(table)) {
    err = GetLastError();
    if (err == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
      /* A console: tell stderr, and the log file the config names, if it loads. */
      if (config_path != NULL && mb__config_load(&mb__svc.cfg, config_path) == 0 &&
          mb__svc.cfg.log_file[0] != '\0')
        (void)mb__log_open(mb__svc.cfg.log_level, mb__svc.cfg.log_file);
      mb_log_error("'membroker service' runs only under the Service Control Manager "
                   "(sc start %s); to run the broker in a console use 'membroker run'",
                   service_name);
      if (mb__log_path()[0] != '\0')
        fprintf(stderr,
                "membroker: 'membroker service' runs only under the Service Control Manager "
                "(sc start %s); to run the broker in a console use 'membroker run'\n",
                service_name);
    } else {
      mb_log_error("StartServiceCtrlDispatcher failed (os error %lu)", (unsigned long)err);
    }
    mb__log_close();
    DeleteCriticalSection(&mb__svc.lock);
    return 1;
  }
  mb__log_close();
  DeleteCriticalSection(&mb__svc.lock);
  return mb__svc.rc;
}

#endif /* MB_OS_WIN */
