/*
 * svc_posix.c - service glue for Linux: systemd (Type=notify) readiness, stop and watchdog
 * notifications over $NOTIFY_SOCKET, without libsystemd; the signals a daemon is sent besides
 * a stop (SIGHUP, SIGUSR1, SIGUSR2: svc.h); whether stderr is the journal ($JOURNAL_STREAM);
 * and persist.dir's default under the unit ($STATE_DIRECTORY).
 */
#include "os_setup.h"

#if MB_OS_POSIX

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "os.h"
#include "svc.h"

void mb__svc_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t n;
  int fd;
  if (path == NULL || (path[0] != '/' && path[0] != '@') ||
      (n = strlen(path)) >= sizeof sa.sun_path)
    return;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, n);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract namespace */
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  (void)sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
  close(fd);
}

void mb__svc_signals(mb_svc_signals_t *sig) {
  sig->reopen = SIGHUP;
  sig->reopen2 = SIGUSR1;
  sig->status = SIGUSR2;
  sig->reopen_name = "SIGHUP";
  sig->reopen2_name = "SIGUSR1";
  sig->status_name = "SIGUSR2";
}

/* A decimal number of the environment variable `name` into *out; -1 if unset or not one. */
static int mb__svc_env_u64(const char *name, uint64_t *out) {
  const char *v = getenv(name);
  char *end;
  unsigned long long n;
  if (v == NULL || v[0] < '0' || v[0] > '9')
    return -1;
  n = strtoull(v, &end, 10);
  if (*end != '\0')
    return -1;
  *out = n;
  return 0;
}

uint64_t mb__svc_watchdog_ms(void) {
  uint64_t usec, pid;
  const char *sock = getenv("NOTIFY_SOCKET");
  if (sock == NULL || sock[0] == '\0' || mb__svc_env_u64("WATCHDOG_USEC", &usec) != 0 || usec == 0)
    return 0;
  if (getenv("WATCHDOG_PID") != NULL &&
      (mb__svc_env_u64("WATCHDOG_PID", &pid) != 0 || pid != (uint64_t)getpid()))
    return 0;   /* meant for another process (sd_watchdog_enabled(3)) */
  usec /= 2000; /* half the period, in ms */
  return usec > 0 ? usec : 1;
}

int mb__svc_stderr_is_journal(void) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  char tail;
  if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2)
    return 0;
  if (fstat(STDERR_FILENO, &st) != 0)
    return 0;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

const char *mb__svc_sandbox_hint(const char *path) {
  static const char *const hidden[] = {"/tmp/", "/var/tmp/", "/home/", "/root/", "/run/user/"};
  size_t i;
  if (path == NULL || getenv("INVOCATION_ID") == NULL)
    return "";
  for (i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
    if (strncmp(path, hidden[i], strlen(hidden[i])) == 0)
      return "; the broker runs under systemd, and the unit's PrivateTmp=/ProtectHome= give it "
             "its own empty /tmp and /var/tmp and hide /home, /root and /run/user: put the file "
             "elsewhere (e.g. /srv/membroker) or give it with BindReadOnlyPaths= in a drop-in";
  return "";
}

/*
 * persist.dir's default under the unit: systemd sets $STATE_DIRECTORY (StateDirectory=membroker:
 * /var/lib/membroker, created and owned for the service's user). When the config leaves
 * persist.dir unset, the broker saves its state there; a config that sets it wins. Only the
 * first directory of a colon-separated list is taken.
 */
static void mb__svc_state_dir(mb_config_t *cfg) {
  const char *v = getenv("STATE_DIRECTORY");
  size_t n;
  if (cfg->persist_dir[0] != '\0' || v == NULL || v[0] != '/')
    return;
  n = strcspn(v, ":");
  if (n >= sizeof cfg->persist_dir)
    return;
  memcpy(cfg->persist_dir, v, n);
  cfg->persist_dir[n] = '\0';
  mb_log_info("persist.dir is not set: saving the state in %s ($STATE_DIRECTORY, the unit's "
              "StateDirectory=)",
              cfg->persist_dir);
}

static void mb__sd_ready(void *ctx) {
  (void)ctx;
  mb__svc_notify("READY=1");
}

static void mb__sd_stopping(void *ctx, int step) {
  (void)ctx;
  if (step == 1)
    mb__svc_notify("STOPPING=1");
}

/*
 * `membroker service` on Linux: the config is loaded here (an error is printed to stderr, as
 * `membroker run` prints it, and the exit code is 1: systemd's journal keeps stderr), the log
 * goes to log.file or stderr (with priority prefixes when stderr is the journal), persist.dir
 * defaults to $STATE_DIRECTORY, then the broker runs with READY=1 / STOPPING=1 notifications
 * (WATCHDOG=1 from the loop: run.c).
 */
int mb__svc_main(const char *service_name, const char *config_path) {
  static mb_config_t cfg;
  mb_run_hooks_t hooks = {NULL, mb__sd_ready, mb__sd_stopping, NULL};
  int rc;

  /* An error before the log is open still reaches the journal as one (priority 3). */
  const char *err = mb__svc_stderr_is_journal() ? "<3>" : "";
  (void)service_name;

  if (config_path == NULL)
    mb__config_defaults(&cfg);
  else if (mb__config_load(&cfg, config_path) != 0) {
    fprintf(stderr, "%smembroker: %s\n", err, mb_last_error());
    return 1;
  }
  if (mb__log_open_file(cfg.log_level, cfg.log_file, cfg.log_max_bytes, cfg.log_keep) != 0) {
    fprintf(stderr, "%smembroker: %s\n", err, mb_last_error());
    return 1;
  }
  mb__log_set_journal(err[0] != '\0');
  mb__run_log_start("service", config_path);
  mb__svc_state_dir(&cfg);
  rc = mb__run(&cfg, MB_OS_LOCK_SERVICE, &hooks);
  mb__log_close();
  return rc;
}

unsigned long mb__svc_control(unsigned long control) {
  (void)control;
  return 1; /* systemd sends signals (run.c), there is no control handler */
}

/* `membroker install` / `uninstall` register a Windows service; systemd has a unit file. */
static int mb__svc_install_windows_only(const char *what) {
  fprintf(stderr,
          "membroker: %s is for Windows (the Service Control Manager). On Linux, install the "
          "systemd unit instead: membroker.service, installed by `cmake --install` in "
          "lib/systemd/system/ (from scripts/membroker.service.in); see README.md, \"Installing "
          "as a Linux daemon\".\n",
          what);
  return 2;
}

int mb__svc_install(const mb_svc_install_opts_t *opts) {
  (void)opts;
  return mb__svc_install_windows_only("membroker install");
}

int mb__svc_uninstall(const char *service_name) {
  (void)service_name;
  return mb__svc_install_windows_only("membroker uninstall");
}

#endif /* MB_OS_POSIX */
