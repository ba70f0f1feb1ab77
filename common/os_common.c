/*
 * os_common.c - the portable part of the platform layer, shared by os_win32.c and
 * os_posix.c: argument checks both make the same way, and failure injection (see os.h).
 */
#include "atomics.h"
#include "os.h"

int mb__os_page_aligned(const void *addr, uint64_t size) {
  size_t ps = mb_os_mem_config()->page_size;
  return ((uintptr_t)addr % ps) == 0 && (size % ps) == 0;
}

int mb__name_ok(const char *s, size_t max, unsigned allow) {
  size_t n = 0;
  for (; s[n] != '\0'; n++)
    if (n + 1 >= max || !mb__name_char_ok(s[n], allow))
      return 0;
  return n > 0;
}

int mb__os_check_name(const char *name, const char *what, size_t *len) {
  size_t n = 0;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "%s name is empty", what);
  for (; name[n] != '\0'; n++) {
    char c = name[n];
    if (n >= MB_OS_NAME_MAX)
      return mb__errorf(MB_ENAMETOOLONG, 0, "%s name '%.40s...' is longer than %d", what, name,
                        MB_OS_NAME_MAX);
    if (!mb__name_char_ok(c, MB_NAME_UPPER | MB_NAME_DOT))
      return mb__errorf(MB_EINVAL, 0, "%s name '%s' has a character outside [A-Za-z0-9._-]", what,
                        name);
  }
  *len = n;
  return 0;
}

int mb__os_section_range(const mb_os_section_t *sec, uint64_t offset, uint64_t len,
                         const char *what) {
  if (len == 0 || !mb__os_page_aligned(NULL, offset) || !mb__os_page_aligned(NULL, len))
    return mb__errorf(MB_EINVAL, 0, "%s [%llu, +%llu) of section '%s': not page-aligned", what,
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  if (offset > sec->size || len > sec->size - offset)
    return mb__errorf(MB_ERANGE, 0, "%s [%llu, +%llu) of section '%s' of %llu bytes", what,
                      (unsigned long long)offset, (unsigned long long)len, sec->name,
                      (unsigned long long)sec->size);
  return 0;
}

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
