/*
 * inject.c - failure injection shared by both platform files (see os.h).
 */
#include "atomics.h"
#include "os.h"

static mb_au32 mb__commit_failures;

void mb_os_inject_commit_failures(int count) {
  mb_store32(&mb__commit_failures, count > 0 ? (uint32_t)count : 0);
}

int mb__os_injected_commit_failure(void) {
  uint32_t n = mb_load32(&mb__commit_failures);
  while (n > 0)
    if (mb_cas32(&mb__commit_failures, &n, n - 1))
      return 1;
  return 0;
}
