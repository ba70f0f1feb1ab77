/*
 * svc.h - how the broker process runs: the portable run loop (run.c) and the glue to the
 * service manager of each OS (svc_win32.c: the Windows SCM; svc_posix.c: systemd).
 */
#ifndef MB_SVC_H
#define MB_SVC_H

#include "config.h"

/* Callbacks from the run loop to the glue that started it. All may be NULL. */
typedef struct mb_run_hooks_s {
  void (*starting)(void *ctx, int step);  /* a start step is done (SCM checkpoints) */
  void (*ready)(void *ctx);               /* state block published, loop running */
  void (*stopping)(void *ctx, int step);  /* a stop step is done */
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
 * Service glue. mb__svc_main: run under the OS service manager (Windows: connect to the SCM
 * with StartServiceCtrlDispatcher; POSIX: like the foreground, plus systemd notifications).
 * `service_name` is the name the service was installed under. Returns the exit code.
 */
int mb__svc_main(const char *service_name, const mb_config_t *cfg);

/* systemd readiness (POSIX; no-op elsewhere or without $NOTIFY_SOCKET). */
void mb__svc_notify(const char *state);

#endif /* MB_SVC_H */
