/*
 * svc_posix.c - service glue for Linux: systemd (Type=notify) readiness and stop
 * notifications over $NOTIFY_SOCKET, without libsystemd.
 */
#include "os_setup.h"

#if MB_OS_POSIX

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
 * goes to log.file or stderr, then the broker runs with READY=1 / STOPPING=1 notifications.
 */
int mb__svc_main(const char *service_name, const char *config_path) {
  static mb_config_t cfg;
  mb_run_hooks_t hooks = {NULL, mb__sd_ready, mb__sd_stopping, NULL};
  int rc;
  (void)service_name;

  if (config_path == NULL)
    mb__config_defaults(&cfg);
  else if (mb__config_load(&cfg, config_path) != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    return 1;
  }
  if (mb__log_open_file(cfg.log_level, cfg.log_file, cfg.log_max_bytes, cfg.log_keep) != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    return 1;
  }
  mb__run_log_start("service", config_path);
  rc = mb__run(&cfg, MB_OS_LOCK_SERVICE, &hooks);
  mb__log_close();
  return rc;
}

/* `membroker install` / `uninstall` register a Windows service; systemd has a unit file. */
static int mb__svc_install_windows_only(const char *what) {
  fprintf(stderr,
          "membroker: %s is for Windows (the Service Control Manager). On Linux, install the "
          "systemd unit instead: see scripts/membroker.service (installed as "
          "share/membroker/membroker.service) and README.md, \"Installing as a Linux daemon\".\n",
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
