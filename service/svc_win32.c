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
 *                  anything), checkpoints from the `stopping` steps
 *   STOPPED        exit code 0 after a clean stop; ERROR_SERVICE_SPECIFIC_ERROR with service
 *                  exit code 1 when the broker could not start
 *
 * The control handler runs on the dispatcher (main) thread, so the status is kept under a
 * lock. With "log": {"event_log": true} the log also goes to the Application event log
 * (source = the service name, no message DLL: the text is the event's only string).
 */
#include "os_setup.h"

#if MB_OS_WIN

/* Project headers first, then <windows.h>. */
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
#define MB_SVC_HINT_RELEASE 30000 /* releasing the regions */

/* Event IDs of the log levels (the text is the event's only insertion string). */
#define MB_SVC_EVENT_ERROR 1000
#define MB_SVC_EVENT_WARN 1001
#define MB_SVC_EVENT_INFO 1002

#define MB_SVC_NAME_MAX 257 /* the SCM allows 256 characters */

typedef struct mb_svc_s {
  CRITICAL_SECTION lock;        /* guards status and stop_wanted */
  SERVICE_STATUS_HANDLE handle; /* from RegisterServiceCtrlHandlerExW */
  SERVICE_STATUS status;        /* last status reported */
  int stop_wanted;              /* a stop control came before RUNNING */
  const mb_config_t *cfg;
  wchar_t name[MB_SVC_NAME_MAX]; /* the service name */
  HANDLE event_source;           /* RegisterEventSourceW, or NULL */
  int rc;                        /* exit code of the service (mb__run) */
} mb_svc_t;

static mb_svc_t mb__svc;

void mb__svc_notify(const char *state) {
  (void)state; /* systemd only */
}

/* UTF-8 to UTF-16 into buf (count wide chars). Returns 0, or -1 if it does not convert. */
static int mb__svc_widen(const char *s, wchar_t *buf, int count) {
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, buf, count) > 0 ? 0 : -1;
}

/* ---- event log ------------------------------------------------------------------------- */

/*
 * Log sink: error, warn and info lines go to the event log as one event each (debug lines
 * stay in the file). The message is converted to UTF-16; a line that does not convert is
 * reported as '?'. Never fails visibly: the event log is a second destination.
 */
static void mb__svc_event_sink(mb_log_level_t level, const char *msg) {
  HANDLE src = mb__svc.event_source;
  wchar_t text[1100]; /* a log line is at most 1023 bytes: as many UTF-16 units at most */
  const wchar_t *strings[1] = {text};
  WORD type;
  DWORD id;

  if (src == NULL)
    return;
  switch (level) {
  case MB_LOG_ERROR:
    type = EVENTLOG_ERROR_TYPE;
    id = MB_SVC_EVENT_ERROR;
    break;
  case MB_LOG_WARN:
    type = EVENTLOG_WARNING_TYPE;
    id = MB_SVC_EVENT_WARN;
    break;
  case MB_LOG_INFO:
    type = EVENTLOG_INFORMATION_TYPE;
    id = MB_SVC_EVENT_INFO;
    break;
  default:
    return;
  }
  if (MultiByteToWideChar(CP_UTF8, 0, msg, -1, text, (int)(sizeof text / sizeof text[0])) <= 0)
    wcscpy(text, L"?");
  (void)ReportEventW(src, type, 0, id, NULL, 1, 0, strings, NULL);
}

/* Register the event source named after the service and install the sink. */
static void mb__svc_event_open(void) {
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
  mb_log_info("service %ls running", mb__svc.name);
}

/* Step 1: the loop has ended (status "shutting down" is published), regions are released
 * next; step 2: everything is released. A stop that did not come from the SCM (the
 * `shutdown` command) enters STOP_PENDING here. */
static void mb__svc_stopping(void *ctx, int step) {
  (void)ctx;
  mb__svc_report(SERVICE_STOP_PENDING, step == 1 ? MB_SVC_HINT_RELEASE : MB_SVC_HINT_STOP, NO_ERROR,
                 0);
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

/*
 * ServiceMain: register the handler under the name the SCM started us as (argv[0]; the -n
 * name if absent), run the broker, report STOPPED with its exit code.
 */
static void WINAPI mb__svc_service_main(DWORD argc, LPWSTR *argv) {
  mb_run_hooks_t hooks = {mb__svc_starting, mb__svc_ready, mb__svc_stopping, NULL};
  int rc;

  if (argc >= 1 && argv[0] != NULL && argv[0][0] != L'\0' && wcslen(argv[0]) < MB_SVC_NAME_MAX)
    wcscpy(mb__svc.name, argv[0]);
  mb__svc.handle = RegisterServiceCtrlHandlerExW(mb__svc.name, mb__svc_handler, NULL);
  if (mb__svc.handle == NULL) {
    mb_log_error("RegisterServiceCtrlHandlerEx(%ls) failed (os error %lu)", mb__svc.name,
                 (unsigned long)GetLastError());
    mb__svc.rc = 1;
    return;
  }
  mb__svc_report(SERVICE_START_PENDING, MB_SVC_HINT_START, NO_ERROR, 0);
  if (mb__svc.cfg->log_event_log)
    mb__svc_event_open();

  rc = mb__run(mb__svc.cfg, MB_OS_SEC_GLOBAL | MB_OS_LOCK_SERVICE, &hooks);

  if (rc != 0)
    mb_log_error("service %ls stopped: the broker could not start (exit code %d)", mb__svc.name,
                 rc);
  else
    mb_log_info("service %ls stopped", mb__svc.name);
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
 * wants) or the dispatcher could not start.
 */
int mb__svc_main(const char *service_name, const mb_config_t *cfg) {
  SERVICE_TABLE_ENTRYW table[2];
  DWORD err;

  memset(&mb__svc, 0, sizeof mb__svc);
  if (mb__svc_widen(service_name, mb__svc.name, MB_SVC_NAME_MAX) != 0) {
    mb_log_error("service name '%s' is not valid UTF-8 or longer than %d characters", service_name,
                 MB_SVC_NAME_MAX - 1);
    return 1;
  }
  mb__svc.cfg = cfg;
  mb__svc.rc = 1; /* unless ServiceMain runs the broker */
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
      mb_log_error("'membroker service' runs only under the Service Control Manager "
                   "(sc start %s); to run the broker in a console use 'membroker run'",
                   service_name);
      if (cfg->log_file[0] != '\0') /* the log went to the file: tell the console too */
        fprintf(stderr,
                "membroker: 'membroker service' runs only under the Service Control Manager "
                "(sc start %s); to run the broker in a console use 'membroker run'\n",
                service_name);
    } else {
      mb_log_error("StartServiceCtrlDispatcher failed (os error %lu)", (unsigned long)err);
    }
    DeleteCriticalSection(&mb__svc.lock);
    return 1;
  }
  DeleteCriticalSection(&mb__svc.lock);
  return mb__svc.rc;
}

#endif /* MB_OS_WIN */
