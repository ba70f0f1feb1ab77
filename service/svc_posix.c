/*
 * svc_posix.c - service glue for Linux: systemd (Type=notify) readiness and stop
 * notifications over $NOTIFY_SOCKET, without libsystemd.
 */
#include "os_setup.h"

#if MB_OS_POSIX

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "os.h"
#include "svc.h"

void mb__svc_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t n;
  int fd;
  if (path == NULL || (path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof sa.sun_path)
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

int mb__svc_main(const char *service_name, const mb_config_t *cfg) {
  mb_run_hooks_t hooks = {NULL, mb__sd_ready, mb__sd_stopping, NULL};
  (void)service_name;
  return mb__run(cfg, MB_OS_LOCK_SERVICE, &hooks);
}

#endif /* MB_OS_POSIX */
