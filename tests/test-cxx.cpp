/*
 * test-cxx.cpp - membroker.h from C++ (CTest cxx.header_compiles_and_links): the header
 * compiles as C++11 with the project's warnings (and -Wpedantic) as errors, its functions
 * link with C linkage from libmembroker, and a few calls that need no broker answer as
 * documented. Exit 0 if all did.
 */
#include "membroker.h"

#include <cstdio>
#include <cstring>
#include <string>

static_assert(MB_ENOTRUNNING < 0 && MB_EINVAL == -1, "error codes are negative, stable");
static_assert(sizeof(mb_attach_options_t) >= 4 * sizeof(uint32_t), "options layout");

static int failures = 0;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "test-cxx.cpp:%d: check failed: %s\n", __LINE__, #cond);                \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* A log callback as C++ code would pass it: a captureless function with C-compatible type. */
static void log_to_string(void *user, int level, const char *message) {
  std::string *s = static_cast<std::string *>(user);
  *s += std::to_string(level) + ": " + message + "\n";
}

int main() {
  mb_attach_options_t o;
  mb_attach_options_init(&o);
  CHECK(o.size == sizeof o);
  CHECK(o.flags == 0 && o.timeout_ms == 0 && o.heartbeat_ms == 0);
  CHECK(o.log == nullptr && o.log_user == nullptr);

  CHECK(std::string(mb_strerror(MB_ENOTRUNNING)) == "broker is not running");
  CHECK(std::string(mb_err_name(MB_ENOTRUNNING)) == "broker_not_running");
  CHECK(std::string(mb_err_name(0)) == "ok");
  CHECK(std::string(mb_err_name(MB_ESTALE)) == "stale");

  std::string log;
  o.log = log_to_string;
  o.log_user = &log;
  mb_client_t *c = reinterpret_cast<mb_client_t *>(&o); /* must come back NULL */
  int rc = mb_attach("mb-cxx-test-absent", "cxx", &o, &c);
  CHECK(rc == MB_ENOTRUNNING);
  CHECK(c == nullptr);
  CHECK(std::strlen(mb_last_error()) > 0);

  rc = mb_attach("bad instance name", "cxx", nullptr, &c);
  CHECK(rc == MB_EINVAL);

  mb_info_t info;
  CHECK(sizeof info.message == MB_MESSAGE_MAX);

  if (failures != 0)
    return 1;
  std::printf("membroker.h %d.%d.%d from C++: ok (%s)\n", MEMBROKER_VERSION_MAJOR,
              MEMBROKER_VERSION_MINOR, MEMBROKER_VERSION_PATCH, mb_last_error());
  return 0;
}
