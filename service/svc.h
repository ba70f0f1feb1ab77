/*
 * svc.h - how the broker process runs: the portable run loop (run.c) and the glue to the
 * service manager of each OS (svc_win32.c: the Windows SCM; svc_posix.c: systemd).
 */
#ifndef MB_SVC_H
#define MB_SVC_H

#include "config.h"

/* Callbacks from the run loop to the glue that started it. All may be NULL. */
typedef struct mb_run_hooks_s {
  void (*starting)(void *ctx, int step); /* a start step is done (SCM checkpoints) */
  void (*ready)(void *ctx);              /* state block published, loop running */
  void (*stopping)(void *ctx, int step); /* a stop step is done: 1 the loop has ended (status
                                            "shutting down" published), 2 the state is saved
                                            (persist), 3 everything is released */
  void *ctx;
} mb_run_hooks_t;

/*
 * Run the broker with `cfg` until a stop is requested (mb__run_request_stop, SIGINT/SIGTERM
 * or Ctrl-C in the foreground, a `shutdown` command). flags: MB_OS_SEC_GLOBAL for a Windows
 * service (publish in Global\), MB_OS_LOCK_SERVICE for any service (the instance lock's
 * record says "service", so a second broker's refusal names it as one). Returns the process exit
 * code: 0 after a clean stop, 1 if the broker could not start (the reason is logged).
 */
int mb__run(const mb_config_t *cfg, int flags, const mb_run_hooks_t *hooks);

/* Ask the running loop to stop; safe from any thread and from a signal handler's thread. */
void mb__run_request_stop(void);

/*
 * The service-specific exit codes a Windows service reports with SERVICE_STOPPED and
 * ERROR_SERVICE_SPECIFIC_ERROR (`sc query` shows them as SERVICE_EXIT_CODE); README lists
 * them. A Linux service exits with 1 for each (as `membroker run` does).
 */
typedef enum {
  MB_SVC_EXIT_START = 1,  /* the broker could not start (instance taken, memory, pipe, ...) */
  MB_SVC_EXIT_CONFIG = 2, /* the config file could not be read or is not valid */
  MB_SVC_EXIT_LOG = 3,    /* the log file could not be opened */
} mb_svc_exit_t;

/*
 * Service glue. mb__svc_main: run under the OS service manager. Windows: connect to the SCM
 * with StartServiceCtrlDispatcher; ServiceMain reports START_PENDING, then loads the config
 * (`config_path`, NULL for the built-in defaults), opens the log and runs the broker, so a
 * config or start error still reaches the SCM (STOPPED with an mb_svc_exit_t code) and the
 * log. POSIX: load the config (an error is printed to stderr: exit 1), then run like the
 * foreground, plus systemd notifications. `service_name` is the name the service was
 * installed under. Returns the process exit code.
 */
int mb__svc_main(const char *service_name, const char *config_path);

/* The first line of the log: version, mode and config (main.c and the service glue). */
void mb__run_log_start(const char *mode, const char *config_path);

/* What `membroker install` was given; NULL members take their defaults. */
typedef struct mb_svc_install_opts_s {
  const char *name;     /* service name (required), 1..80 of [A-Za-z0-9._-] */
  const char *config;   /* absolute config path; NULL: <exe dir>\..\config\membroker.json */
  const char *start;    /* "auto" (NULL), "delayed" or "demand" */
  const char *account;  /* "LocalSystem" (NULL), "NT SERVICE\<name>" or a user */
  const char *password; /* a user account's password, else NULL */
  int force;            /* install even if another membroker service has the same instance */
} mb_svc_install_opts_t;

/*
 * `membroker install` / `membroker uninstall` (svc_install.c on Windows). install validates
 * the config, refuses an instance that another installed membroker service's config already
 * has (unless opts->force: two services of one instance cannot both run), registers the service and
 * its event-log source, reads every item back and prints one line each; uninstall stops the service
 * (waiting for STOPPED), deletes it and its event-log source. Both print for the operator and
 * return the process exit code: 0 done, 1 failed (the reason printed), 2 bad arguments. On POSIX
 * both print that they are for Windows and point at the systemd unit, and return 2.
 */
int mb__svc_install(const mb_svc_install_opts_t *opts);
int mb__svc_uninstall(const char *service_name);

/*
 * Windows (svc_install.c): grant `account` ("LocalSystem" or NULL, "NT SERVICE\<name>", a user)
 * SeLockMemoryPrivilege in the local security policy (LsaAddAccountRights), which large-page
 * regions need, and read the grant back. 0, or MB_ENOENT no such account, MB_EACCES not allowed
 * (run as an administrator), MB_ENOTSUP the LSA does not implement it (Wine), MB_EOS otherwise,
 * with a message. The account's processes see it from their next logon (service start).
 */
int mb__svc_grant_lock_memory(const char *account);

/* systemd readiness (POSIX; no-op elsewhere or without $NOTIFY_SOCKET). */
void mb__svc_notify(const char *state);

/*
 * The signals an operator or a service manager sends a running broker besides a stop, as
 * numbers for uv_signal_start; 0 where the OS has no such signal (Windows: all three). The
 * loop (run.c) handles each as said here, never by ending the process:
 *   reopen   SIGHUP  (logrotate's postrotate, `systemctl reload`, an SSH hang-up): reopen
 *            the log file (mb__log_reopen), nothing else is re-read;
 *   reopen2  SIGUSR1 (the other common "reopen your logs" convention): the same;
 *   status   SIGUSR2: one status line in the log (players, clients, committed bytes, rss).
 */
typedef struct mb_svc_signals_s {
  int reopen, reopen2, status;                          /* signal numbers, 0: none */
  const char *reopen_name, *reopen2_name, *status_name; /* "SIGHUP", ... for the log */
} mb_svc_signals_t;

void mb__svc_signals(mb_svc_signals_t *sig);

/*
 * The systemd watchdog: the period in milliseconds at which the loop must send WATCHDOG=1
 * (half of $WATCHDOG_USEC, at least 1), or 0 when there is none: $WATCHDOG_USEC unset, not a
 * positive number, $WATCHDOG_PID set to another process, or no $NOTIFY_SOCKET (POSIX);
 * always 0 on Windows. The loop sends the pings from a timer (run.c), so a stuck loop stops
 * them and systemd restarts the broker.
 */
uint64_t mb__svc_watchdog_ms(void);

/*
 * Whether stderr is a stream to the systemd journal: $JOURNAL_STREAM ("<dev>:<inode>") names
 * the file stderr is (POSIX); always 0 on Windows. Log lines to stderr then carry sd-daemon
 * priority prefixes instead of the timestamp (log.h, mb__log_set_journal).
 */
int mb__svc_stderr_is_journal(void);

/*
 * What to add to "no such file" for `path` when the service manager's sandbox may be why:
 * under systemd ($INVOCATION_ID is set) a path under /tmp, /var/tmp (PrivateTmp=) or /home,
 * /root, /run/user (ProtectHome=) is not the host's; the text (from "; ") says so and what to
 * do. "" otherwise, and always on Windows. Thread-safe (reads the environment only).
 */
const char *mb__svc_sandbox_hint(const char *path);

/*
 * A test hook (Windows): hand `control` (a SERVICE_CONTROL_* code) to the running service's
 * control handler, as the SCM would. The SCM sends PRESHUTDOWN only when Windows shuts down
 * (ControlService refuses code 15 with error 87), so a test's service process calls this on
 * itself (test-svclog.c, svclog.scm_preshutdown_handler). Returns the handler's answer
 * (NO_ERROR, ERROR_CALL_NOT_IMPLEMENTED); 1 on POSIX, where there is no handler.
 */
unsigned long mb__svc_control(unsigned long control);

#endif /* MB_SVC_H */
