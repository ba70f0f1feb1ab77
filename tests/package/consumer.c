/*
 * consumer.c - a program built against an installed membroker (see CMakeLists.txt here and
 * check.cmake): attach to an instance no broker runs for and expect broker_not_running. It
 * needs no broker. Exit 0 if the library answered as documented.
 */
#include <membroker.h>

#include <stdio.h>
#include <string.h>

#ifndef CONSUMER_KIND
#define CONSUMER_KIND "pkg-config"
#endif

int main(int argc, char **argv) {
  const char *instance = argc > 1 ? argv[1] : "mb-package-test-absent";
  mb_attach_options_t o;
  mb_client_t *c = (mb_client_t *)&o; /* must be set to NULL on failure */
  int rc;

  mb_attach_options_init(&o);
  if (o.size != sizeof o || o.timeout_ms != 0 || o.heartbeat_ms != 0) {
    fprintf(stderr, "consumer: mb_attach_options_init left size %u\n", (unsigned)o.size);
    return 1;
  }
  rc = mb_attach(instance, "consumer", &o, &c);
  if (rc != MB_ENOTRUNNING || c != NULL) {
    fprintf(stderr, "consumer: mb_attach gave %d (%s), expected %d (broker_not_running)\n", rc,
            mb_err_name(rc), MB_ENOTRUNNING);
    return 1;
  }
  if (strcmp(mb_err_name(rc), "broker_not_running") != 0 ||
      strcmp(mb_strerror(rc), "broker is not running") != 0 || mb_last_error()[0] == '\0') {
    fprintf(stderr, "consumer: unexpected error texts: '%s' / '%s' / '%s'\n", mb_err_name(rc),
            mb_strerror(rc), mb_last_error());
    return 1;
  }
  printf("consumer (%s, membroker.h %d.%d.%d): %s: %s\n", CONSUMER_KIND, MEMBROKER_VERSION_MAJOR,
         MEMBROKER_VERSION_MINOR, MEMBROKER_VERSION_PATCH, mb_err_name(rc), mb_last_error());
  return 0;
}
