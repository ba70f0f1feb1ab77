/*
 * os_win32.c - the platform layer on Windows (see os.h for every contract).
 *
 * Virtual memory is VirtualAlloc / VirtualFree. Shared sections are pagefile-backed file
 * mappings (CreateFileMappingW on INVALID_HANDLE_VALUE): SEC_RESERVE for reserve-then-commit
 * sections, whose pages are committed through a view with VirtualAlloc(MEM_COMMIT) and can
 * never be decommitted again (mem_config()->shared_decommit is 0); SEC_COMMIT otherwise.
 * Names live in the Local\ or Global\ namespace and vanish with the last handle.
 * Large-page sections (MB_OS_SEC_LARGE_PAGES) are SEC_COMMIT | SEC_LARGE_PAGES mappings of a
 * multiple of GetLargePageMinimum(), created with SeLockMemoryPrivilege enabled in the token
 * (the account must hold it: the install step grants it) and mapped with FILE_MAP_LARGE_PAGES
 * (Windows 10 1703+; older systems refuse the flag and map such a section without it).
 *
 * Win32 has no call that returns a section's size or its committed bytes, so both are read
 * from a view with VirtualQuery: a view is one allocation (every region shares the view's
 * AllocationBase), its uncommitted pages are MEM_RESERVE and its committed ones MEM_COMMIT.
 *
 * Security: sections and the control pipe get an explicit, protected DACL built from
 * mb_os_access_t (owner, SYSTEM, Administrators; optionally a group and Authenticated Users).
 *
 * Built with _WIN32_WINNT >= 0x0601 (Windows 7 API level). GetSystemTimePreciseAsFileTime
 * (Windows 8) is looked up at run time.
 */
#include "os_setup.h"

#if MB_OS_WIN

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef PSAPI_VERSION
#define PSAPI_VERSION 2 /* GetProcessMemoryInfo is K32GetProcessMemoryInfo in kernel32 */
#endif

#include "os.h"

#include <windows.h>
#include <aclapi.h>
#include <process.h>
#include <psapi.h>
#include <sddl.h>

#include <errno.h>
#include <io.h>
#include <fcntl.h>
#include <stddef.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

/* Internal flag kept in mb_os_section_t.flags: the handle was opened writable. */
#define MB__SEC_WRITABLE (1 << 8)

#ifndef SEC_LARGE_PAGES
#define SEC_LARGE_PAGES 0x80000000
#endif
#ifndef FILE_MAP_LARGE_PAGES
#define FILE_MAP_LARGE_PAGES 0x20000000
#endif

/* Windows' own exit code for a killed child: 128 + SIGKILL, as POSIX reports it. */
#define MB__KILL_EXIT_CODE 137

/* 100 ns FILETIME ticks between 1601-01-01 and 1970-01-01. */
#define MB__EPOCH_DIFF_100NS 116444736000000000ULL

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */

/*
 * Translate a Win32 error into our code. `nomem` is what running out of memory means for the
 * call at hand: MB_ENOSPC when pages are being charged (commit, committed section), MB_ENOMEM
 * otherwise (address space, kernel memory). Anything unknown is MB_EOS.
 */
static int mb__from_win(DWORD e, int nomem) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_INVALID_DRIVE:
  case ERROR_NONE_MAPPED:
    return MB_ENOENT;
  case ERROR_ALREADY_EXISTS:
  case ERROR_FILE_EXISTS:
    return MB_EEXIST;
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD:
    return MB_EACCES;
  case ERROR_INVALID_PARAMETER:
  case ERROR_INVALID_HANDLE:
  case ERROR_INVALID_NAME:
  case ERROR_BAD_PATHNAME:
  case ERROR_BAD_EXE_FORMAT:
  case ERROR_NO_UNICODE_TRANSLATION:
    return MB_EINVAL;
  case ERROR_INVALID_ADDRESS:
  case ERROR_INSUFFICIENT_BUFFER:
    return MB_ERANGE;
  case ERROR_FILENAME_EXCED_RANGE:
    return MB_ENAMETOOLONG;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
  case ERROR_NO_SYSTEM_RESOURCES:
  case ERROR_PAGEFILE_QUOTA:
  case ERROR_WORKING_SET_QUOTA:
    return nomem;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return MB_ENOSPC;
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
  case ERROR_BUSY:
    return MB_EBUSY;
  case ERROR_TIMEOUT:
  case WAIT_TIMEOUT:
    return MB_ETIMEOUT;
  case ERROR_NOT_SUPPORTED:
  case ERROR_CALL_NOT_IMPLEMENTED:
    return MB_ENOTSUP;
  default:
    return MB_EOS;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Machine configuration, computed once                                                       */

typedef VOID(WINAPI *mb__filetime_fn)(LPFILETIME);

static mb_os_mem_config_t mb__mem_config;
static LARGE_INTEGER mb__qpc_freq;
static mb__filetime_fn mb__wall_fn;
static INIT_ONCE mb__once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK mb__init_once(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  SYSTEM_INFO si;
  HMODULE k32;
  (void)once;
  (void)param;
  (void)ctx;

  GetSystemInfo(&si);
  mb__mem_config.page_size = si.dwPageSize;
  mb__mem_config.alloc_granularity = si.dwAllocationGranularity;
  /* Committed pages of a SEC_RESERVE section cannot be decommitted (VirtualFree refuses). */
  mb__mem_config.shared_decommit = 0;
  /* Named objects vanish with their last handle. */
  mb__mem_config.names_persist = 0;
  mb__mem_config.view_commit = 1;
  /* Global\ (services) and Local\ (the session) are two namespaces. */
  mb__mem_config.sec_namespaces = 1;
  mb__mem_config.large_page_size = (size_t)GetLargePageMinimum();

  /* Never fails on Windows XP and later. */
  QueryPerformanceFrequency(&mb__qpc_freq);

  /* Windows 8+ (and Wine) have the precise wall clock; Windows 7 has the 1-16 ms one. */
  mb__wall_fn = GetSystemTimeAsFileTime;
  k32 = GetModuleHandleW(L"kernel32.dll");
  if (k32 != NULL) {
    FARPROC f = GetProcAddress(k32, "GetSystemTimePreciseAsFileTime");
    if (f != NULL)
      mb__wall_fn = (mb__filetime_fn)(void (*)(void))f;
  }
  return TRUE;
}

static void mb__init(void) {
  InitOnceExecuteOnce(&mb__once, mb__init_once, NULL, NULL);
}

const mb_os_mem_config_t *mb_os_mem_config(void) {
  mb__init();
  return &mb__mem_config;
}

/* ---------------------------------------------------------------------------------------- */
/* Private virtual memory                                                                     */

int mb_os_reserve(size_t size, void **addr) {
  void *p;
  if (size == 0 || !mb__os_page_aligned(NULL, size))
    return mb__errorf(MB_EINVAL, 0, "reserve %zu bytes", size);
  p = VirtualAlloc(NULL, size, MEM_RESERVE, PAGE_NOACCESS);
  if (p == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "reserve %zu bytes", size);
  }
  *addr = p;
  return 0;
}

/*
 * Check that [addr, addr+size) lies inside one private reservation (MEM_RESERVE or MEM_COMMIT
 * pages of one VirtualAlloc allocation). An allocation is contiguous, so it is enough that the
 * first and the last page belong to the same one. Fails with MB_ERANGE; the OS code recorded
 * is ERROR_INVALID_ADDRESS, what VirtualAlloc / VirtualFree report for such a range.
 */
static int mb__in_reservation(void *addr, size_t size, const char *what) {
  MEMORY_BASIC_INFORMATION first, last;
  char *end = (char *)addr + size - 1;

  if ((uintptr_t)addr + size < (uintptr_t)addr || VirtualQuery(addr, &first, sizeof first) == 0 ||
      VirtualQuery(end, &last, sizeof last) == 0 || first.State == MEM_FREE ||
      first.Type != MEM_PRIVATE || first.AllocationBase != last.AllocationBase ||
      last.State == MEM_FREE)
    return mb__errorf(MB_ERANGE, ERROR_INVALID_ADDRESS, "%s %zu bytes at %p outside a reservation",
                      what, size, addr);
  return 0;
}

int mb_os_commit(void *addr, size_t size) {
  int rc;
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "commit %zu bytes at %p", size, addr);
  if ((rc = mb__in_reservation(addr, size, "commit")) != 0)
    return rc;
  if (mb__os_injected_commit_failure())
    return mb__errorf(MB_ENOSPC, 0, "commit %zu bytes at %p (injected failure)", size, addr);
  if (VirtualAlloc(addr, size, MEM_COMMIT, PAGE_READWRITE) == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOSPC), (long)e, "commit %zu bytes at %p", size, addr);
  }
  return 0;
}

int mb_os_decommit(void *addr, size_t size) {
  int rc;
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "decommit %zu bytes at %p", size, addr);
  if ((rc = mb__in_reservation(addr, size, "decommit")) != 0)
    return rc;
  if (!VirtualFree(addr, size, MEM_DECOMMIT)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "decommit %zu bytes at %p", size, addr);
  }
  return 0;
}

/*
 * Release the reservation that starts at addr. VirtualFree(MEM_RELEASE) frees the whole
 * allocation whatever size says, so the size is checked against it first: a caller with the
 * wrong base or size gets MB_EINVAL instead of silently freeing something else.
 */
int mb_os_release(void *addr, size_t size) {
  MEMORY_BASIC_INFORMATION mbi;
  char *p = addr;
  size_t total = 0;

  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "release %zu bytes at %p", size, addr);
  while (total < size && VirtualQuery(p, &mbi, sizeof mbi) != 0 && mbi.AllocationBase == addr &&
         mbi.State != MEM_FREE && mbi.Type == MEM_PRIVATE) {
    total += mbi.RegionSize;
    p += mbi.RegionSize;
  }
  if (total != size || (VirtualQuery(p, &mbi, sizeof mbi) != 0 && mbi.AllocationBase == addr))
    return mb__errorf(MB_EINVAL, ERROR_INVALID_ADDRESS,
                      "release %zu bytes at %p: not a reservation of that size", size, addr);
  if (!VirtualFree(addr, 0, MEM_RELEASE)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "release %zu bytes at %p", size, addr);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Names and strings                                                                          */

/*
 * UTF-8 -> newly allocated UTF-16 (free() it). NULL on failure, with GetLastError() set
 * (ERROR_NO_UNICODE_TRANSLATION for invalid UTF-8, ERROR_NOT_ENOUGH_MEMORY).
 */
static wchar_t *mb__utf8_to_wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w;
  if (n <= 0)
    return NULL;
  w = malloc((size_t)n * sizeof *w);
  if (w == NULL) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    return NULL;
  }
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
    DWORD e = GetLastError();
    free(w);
    SetLastError(e);
    return NULL;
  }
  return w;
}

/* Longest kernel object name we build: "Global\" + name + NUL. */
#define MB__WNAME_MAX (7 + MB_OS_NAME_MAX + 1)

/*
 * Check a portable object name (os.h) and build "Local\<name>" or "Global\<name>" into wname
 * (MB__WNAME_MAX wide characters). `what` names the kind of object in error messages.
 */
static int mb__object_wname(const char *name, int flags, wchar_t *wname, const char *what) {
  const wchar_t *prefix = (flags & MB_OS_SEC_GLOBAL) ? L"Global\\" : L"Local\\";
  size_t n = 0, plen = wcslen(prefix);
  int rc = mb__os_check_name(name, what, &n);

  if (rc != 0)
    return rc;
  memcpy(wname, prefix, plen * sizeof *wname);
  /* The name is plain ASCII now, so this cannot fail; UTF-8 is the contract all the same. */
  if (MultiByteToWideChar(CP_UTF8, 0, name, (int)n + 1, wname + plen,
                          (int)(MB__WNAME_MAX - plen)) == 0) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "convert %s name '%s'", what, name);
  }
  return 0;
}

/*
 * UTF-16 -> UTF-8 into buf (size bytes, NUL-terminated). MB_ERANGE if it does not fit; buf
 * is not written then. `what` is for error messages.
 */
static int mb__wide_to_utf8(const wchar_t *w, char *buf, size_t size, const char *what) {
  int len = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  if (len <= 0) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "convert %s to UTF-8", what);
  }
  if (buf == NULL || (size_t)len > size)
    return mb__errorf(MB_ERANGE, 0, "%s is longer than %zu bytes", what, size);
  WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, len, NULL, NULL);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Security descriptors                                                                       */

/* Room for the five ACEs we may add: header + 5 * (ACE header + mask + largest SID). */
#define MB__ACL_BYTES (sizeof(ACL) + 5 * (sizeof(ACCESS_ALLOWED_ACE) + SECURITY_MAX_SID_SIZE))

typedef struct mb__sd_s {
  SECURITY_ATTRIBUTES sa;
  SECURITY_DESCRIPTOR sd;
  DWORD acl[(MB__ACL_BYTES + sizeof(DWORD) - 1) / sizeof(DWORD)]; /* DWORD-aligned ACL */
} mb__sd_t;

/* The SID inside a TOKEN_USER buffer (copied out: no type-punned access to the buffer). */
static PSID mb__token_user_sid(const void *buf) {
  TOKEN_USER tu;
  memcpy(&tu, buf, sizeof tu);
  return tu.User.Sid;
}

/* The current user's SID from the process token into sid (SECURITY_MAX_SID_SIZE bytes). */
static int mb__user_sid(PSID sid, const char *name) {
  /* TOKEN_USER holds a pointer: keep the buffer pointer-aligned. */
  ULONG_PTR buf[(sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE) / sizeof(ULONG_PTR) + 1];
  DWORD len = 0, e;
  HANDLE tok;
  BOOL ok;

  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "open process token for '%s'", name);
  }
  ok = GetTokenInformation(tok, TokenUser, buf, sizeof buf, &len);
  e = GetLastError();
  CloseHandle(tok);
  if (!ok || !CopySid(SECURITY_MAX_SID_SIZE, sid, mb__token_user_sid(buf))) {
    e = ok ? GetLastError() : e;
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "read user SID for '%s'", name);
  }
  return 0;
}

/* Look up the account `group` (UTF-8) into sid (SECURITY_MAX_SID_SIZE bytes). */
static int mb__account_sid(const char *group, PSID sid, const char *name) {
  wchar_t *wgroup = mb__utf8_to_wide(group), *domain = NULL;
  DWORD sid_len = SECURITY_MAX_SID_SIZE, dom_len = 0, e;
  SID_NAME_USE use;
  BOOL ok;

  if (wgroup == NULL) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "group name '%s' for '%s'", group, name);
  }
  /* First call: learn the domain name's length (the SID buffer is already large enough). */
  ok = LookupAccountNameW(NULL, wgroup, sid, &sid_len, NULL, &dom_len, &use);
  e = GetLastError();
  if (!ok && e == ERROR_INSUFFICIENT_BUFFER && dom_len > 0) {
    domain = malloc(dom_len * sizeof *domain);
    sid_len = SECURITY_MAX_SID_SIZE;
    ok = domain != NULL && LookupAccountNameW(NULL, wgroup, sid, &sid_len, domain, &dom_len, &use);
    e = domain == NULL ? ERROR_NOT_ENOUGH_MEMORY : GetLastError();
  }
  free(domain);
  free(wgroup);
  if (!ok)
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "group '%s' for '%s' does not exist",
                      group, name);
  return 0;
}

/*
 * Build a SECURITY_ATTRIBUTES with an explicit, protected DACL from access (NULL means
 * { 0600, NULL }): the owner (the process token's user), SYSTEM and Administrators get
 * `full`; group read bits (0040) grant `rd` and write bits (0020) `wr` to the account
 * access->group, if set; other bits (0004 / 0002) grant them to Authenticated Users. The
 * owner bits do not matter: the owner always has full access. The access masks are the
 * caller's, so the same builder serves sections and pipes. `name` is for error messages.
 */
static int mb__sd_build(mb__sd_t *s, const mb_os_access_t *access, DWORD full, DWORD rd, DWORD wr,
                        const char *name) {
  DWORD sid[5][SECURITY_MAX_SID_SIZE / sizeof(DWORD)];
  uint32_t mode = access ? access->mode : 0600;
  DWORD group_mask = ((mode & 0040) ? rd : 0) | ((mode & 0020) ? wr : 0);
  DWORD other_mask = ((mode & 0004) ? rd : 0) | ((mode & 0002) ? wr : 0);
  PACL acl = (PACL)s->acl;
  DWORD mask[5], len, e;
  int n = 0, i, rc;

  /* Owner, SYSTEM, Administrators: full access. */
  if ((rc = mb__user_sid(sid[n], name)) != 0)
    return rc;
  mask[n++] = full;
  len = SECURITY_MAX_SID_SIZE;
  if (!CreateWellKnownSid(WinLocalSystemSid, NULL, sid[n], &len))
    goto fail;
  mask[n++] = full;
  len = SECURITY_MAX_SID_SIZE;
  if (!CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, sid[n], &len))
    goto fail;
  mask[n++] = full;

  if (group_mask != 0 && access->group != NULL && access->group[0] != '\0') {
    if ((rc = mb__account_sid(access->group, sid[n], name)) != 0)
      return rc;
    mask[n++] = group_mask;
  }
  if (other_mask != 0) {
    len = SECURITY_MAX_SID_SIZE;
    if (!CreateWellKnownSid(WinAuthenticatedUserSid, NULL, sid[n], &len))
      goto fail;
    mask[n++] = other_mask;
  }

  if (!InitializeAcl(acl, sizeof s->acl, ACL_REVISION))
    goto fail;
  for (i = 0; i < n; i++)
    if (!AddAccessAllowedAce(acl, ACL_REVISION, mask[i], sid[i]))
      goto fail;
  /* Protected: no ACEs inherited from the object directory are merged in. */
  if (!InitializeSecurityDescriptor(&s->sd, SECURITY_DESCRIPTOR_REVISION) ||
      !SetSecurityDescriptorDacl(&s->sd, TRUE, acl, FALSE) ||
      !SetSecurityDescriptorControl(&s->sd, SE_DACL_PROTECTED, SE_DACL_PROTECTED))
    goto fail;
  s->sa.nLength = sizeof s->sa;
  s->sa.lpSecurityDescriptor = &s->sd;
  s->sa.bInheritHandle = FALSE;
  return 0;

fail:
  e = GetLastError();
  return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "build security descriptor for '%s'",
                    name);
}

/* ---------------------------------------------------------------------------------------- */
/* Named shared sections                                                                      */

/* Rights in a section's DACL: everything for the owners, map-read / map-write for others. */
#define MB__SEC_RIGHTS_FULL SECTION_ALL_ACCESS
#define MB__SEC_RIGHTS_READ (SECTION_QUERY | SECTION_MAP_READ | READ_CONTROL)
#define MB__SEC_RIGHTS_WRITE SECTION_MAP_WRITE

static int mb__sec_is_open(const mb_os_section_t *sec) {
  return sec != NULL && sec->handle != 0 && sec->handle != -1;
}

/*
 * Walk the view at `view` region by region: *total receives the view's size, *committed its
 * MEM_COMMIT bytes, *reserved 1 if any page is only reserved. MB_EINVAL if view is not the
 * base of a mapped view.
 */
static int mb__view_scan(void *view, uint64_t *total, uint64_t *committed, int *reserved,
                         const char *name) {
  MEMORY_BASIC_INFORMATION mbi;
  char *p = view;
  uint64_t t = 0, c = 0;
  int r = 0;

  if (VirtualQuery(p, &mbi, sizeof mbi) == 0 || mbi.AllocationBase != view ||
      mbi.Type != MEM_MAPPED)
    return mb__errorf(MB_EINVAL, ERROR_INVALID_ADDRESS, "query view %p of section '%s'", view,
                      name);
  do {
    t += mbi.RegionSize;
    if (mbi.State == MEM_COMMIT)
      c += mbi.RegionSize;
    else
      r = 1;
    p += mbi.RegionSize;
  } while (VirtualQuery(p, &mbi, sizeof mbi) != 0 && mbi.AllocationBase == view &&
           mbi.State != MEM_FREE);
  *total = t;
  *committed = c;
  *reserved = r;
  return 0;
}

/*
 * Enable SeLockMemoryPrivilege in this process's token, which SEC_LARGE_PAGES needs.
 * AdjustTokenPrivileges succeeds with ERROR_NOT_ALL_ASSIGNED when the account does not hold
 * the privilege at all: that is MB_EACCES, naming the grant that is missing.
 */
static int mb__lock_memory_privilege(void) {
  TOKEN_PRIVILEGES tp;
  HANDLE tok;
  DWORD e;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, &tok)) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EACCES), (long)e, "open the process token");
  }
  memset(&tp, 0, sizeof tp);
  tp.PrivilegeCount = 1;
  tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
  if (!LookupPrivilegeValueW(NULL, L"SeLockMemoryPrivilege", &tp.Privileges[0].Luid) ||
      !AdjustTokenPrivileges(tok, FALSE, &tp, 0, NULL, NULL)) {
    e = GetLastError();
    CloseHandle(tok);
    return mb__errorf(mb__from_win(e, MB_EACCES), (long)e, "enable SeLockMemoryPrivilege");
  }
  e = GetLastError();
  CloseHandle(tok);
  if (e == ERROR_NOT_ALL_ASSIGNED)
    return mb__errorf(MB_EACCES, (long)e,
                      "the account does not hold SeLockMemoryPrivilege (\"Lock pages in "
                      "memory\"): install the service with scripts/install-service, which "
                      "grants it, or grant it in secpol.msc");
  return 0;
}

int mb_os_large_pages(size_t *page_size) {
  *page_size = (size_t)GetLargePageMinimum();
  if (*page_size == 0)
    return mb__errorf(MB_ENOTSUP, 0, "this system has no large pages (GetLargePageMinimum 0)");
  return mb__lock_memory_privilege();
}

int mb_os_hugetlbfs_dir(char *buf, size_t size) {
  (void)buf;
  (void)size;
  return mb__errorf(MB_ENOTSUP, 0, "hugetlbfs is Linux's");
}

int mb_os_large_purge(const char *prefix, unsigned *removed, char *dir, size_t dir_size) {
  (void)prefix;
  *removed = 0;
  if (dir != NULL && dir_size > 0)
    dir[0] = '\0';
  return 0;
}

/* MapViewOfFile, with FILE_MAP_LARGE_PAGES for a large-page section where the OS knows it. */
static void *mb__map_view(int flags, HANDLE h, DWORD access, SIZE_T size) {
  void *p = NULL;
  if (flags & MB_OS_SEC_LARGE_PAGES) {
    p = MapViewOfFile(h, access | FILE_MAP_LARGE_PAGES, 0, 0, size);
    if (p != NULL || GetLastError() != ERROR_INVALID_PARAMETER)
      return p;
  }
  return MapViewOfFile(h, access, 0, 0, size);
}

/*
 * Create the section. CreateFileMappingW opens an existing object of the same name instead
 * of failing (GetLastError() == ERROR_ALREADY_EXISTS): that handle is closed and the call
 * fails with MB_EEXIST. ERROR_INVALID_HANDLE means the name belongs to an object of another
 * type (an event, a mutex), also MB_EEXIST.
 */
int mb_os_section_create(mb_os_section_t *sec, const char *name, uint64_t size, int flags,
                         const mb_os_access_t *access) {
  wchar_t wname[MB__WNAME_MAX];
  mb__sd_t sd;
  DWORD prot, e;
  HANDLE h;
  int rc;

  if ((rc = mb__object_wname(name, flags, wname, "section")) != 0)
    return rc;
  if (size == 0 || !mb__os_page_aligned(NULL, size))
    return mb__errorf(MB_EINVAL, 0, "create section '%s' of %llu bytes", name,
                      (unsigned long long)size);
  if ((rc = mb__sd_build(&sd, access, MB__SEC_RIGHTS_FULL, MB__SEC_RIGHTS_READ,
                         MB__SEC_RIGHTS_WRITE, name)) != 0)
    return rc;
  if (flags & MB_OS_SEC_LARGE_PAGES) {
    size_t large = 0;
    if ((rc = mb_os_large_pages(&large)) != 0)
      return rc;
    if ((flags & MB_OS_SEC_RESERVE) || size % large != 0)
      return mb__errorf(MB_EINVAL, 0,
                        "create section '%s' of %llu bytes with large pages: not a multiple of "
                        "%zu bytes, or reserve-then-commit",
                        name, (unsigned long long)size, large);
  }
  prot = PAGE_READWRITE | ((flags & MB_OS_SEC_RESERVE) ? SEC_RESERVE : SEC_COMMIT) |
         ((flags & MB_OS_SEC_LARGE_PAGES) ? SEC_LARGE_PAGES : 0);
  h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sd.sa, prot, (DWORD)(size >> 32),
                         (DWORD)(size & 0xFFFFFFFFu), wname);
  e = GetLastError();
  if (h != NULL && e == ERROR_ALREADY_EXISTS) {
    CloseHandle(h);
    return mb__errorf(MB_EEXIST, (long)e, "create section '%s'", name);
  }
  if (h == NULL)
    return mb__errorf(e == ERROR_INVALID_HANDLE ? MB_EEXIST : mb__from_win(e, MB_ENOSPC), (long)e,
                      "create section '%s' of %llu bytes", name, (unsigned long long)size);
  sec->handle = (intptr_t)h;
  sec->size = size;
  sec->flags =
      (flags & (MB_OS_SEC_RESERVE | MB_OS_SEC_GLOBAL | MB_OS_SEC_LARGE_PAGES)) | MB__SEC_WRITABLE;
  memcpy(sec->name, name, strlen(name) + 1);
  return 0;
}

/*
 * Open the section and learn its size: map a whole read-only view (size 0), add up the
 * regions of that allocation with VirtualQuery, unmap. That uses only documented calls and
 * FILE_MAP_READ, which every opener has (NtQuerySection would need SECTION_QUERY and ntdll).
 * A view is page-granular, and so are our sections. A view with reserved pages also tells
 * that the section is reserve-then-commit, so MB_OS_SEC_RESERVE is added if the caller did
 * not know it; a fully committed one reads the same either way.
 */
int mb_os_section_open(mb_os_section_t *sec, const char *name, int flags, int writable) {
  wchar_t wname[MB__WNAME_MAX];
  uint64_t total = 0, committed = 0;
  int rc, reserved = 0;
  void *view;
  DWORD e;
  HANDLE h;

  if ((rc = mb__object_wname(name, flags, wname, "section")) != 0)
    return rc;
  h = OpenFileMappingW(FILE_MAP_READ | (writable ? FILE_MAP_WRITE : 0), FALSE, wname);
  if (h == NULL) {
    e = GetLastError();
    /* ERROR_INVALID_HANDLE: the name is taken by an object that is not a section. */
    return mb__errorf(e == ERROR_INVALID_HANDLE ? MB_ENOENT : mb__from_win(e, MB_ENOMEM), (long)e,
                      "open section '%s'", name);
  }
  view = mb__map_view(flags, h, FILE_MAP_READ, 0);
  if (view == NULL) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "map section '%s' to read its size",
                      name);
  }
  rc = mb__view_scan(view, &total, &committed, &reserved, name);
  UnmapViewOfFile(view);
  if (rc != 0) {
    CloseHandle(h);
    return rc;
  }
  sec->handle = (intptr_t)h;
  sec->size = total;
  sec->flags = (flags & (MB_OS_SEC_RESERVE | MB_OS_SEC_GLOBAL | MB_OS_SEC_LARGE_PAGES)) |
               (reserved ? MB_OS_SEC_RESERVE : 0) | (writable ? MB__SEC_WRITABLE : 0);
  memcpy(sec->name, name, strlen(name) + 1);
  return 0;
}

int mb_os_section_map(const mb_os_section_t *sec, uint64_t size, int writable, void **addr) {
  void *p;
  if (!mb__sec_is_open(sec))
    return mb__errorf(MB_EINVAL, 0, "map a closed section");
  if (size == 0)
    size = sec->size;
  if (!mb__os_page_aligned(NULL, size) || (uint64_t)(SIZE_T)size != size)
    return mb__errorf(MB_EINVAL, 0, "map %llu bytes of section '%s'", (unsigned long long)size,
                      sec->name);
  if (size > sec->size)
    return mb__errorf(MB_ERANGE, 0, "map %llu bytes of section '%s' that holds %llu",
                      (unsigned long long)size, sec->name, (unsigned long long)sec->size);
  if (writable && !(sec->flags & MB__SEC_WRITABLE))
    return mb__errorf(MB_EACCES, 0, "map section '%s' writable: opened read-only", sec->name);
  /* FILE_MAP_WRITE is a read/write view. */
  p = mb__map_view(sec->flags, (HANDLE)sec->handle, writable ? FILE_MAP_WRITE : FILE_MAP_READ,
                   (SIZE_T)size);
  if (p == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "map section '%s'", sec->name);
  }
  *addr = p;
  return 0;
}

int mb_os_section_unmap(void *addr, uint64_t size) {
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "unmap %llu bytes at %p", (unsigned long long)size, addr);
  if (!UnmapViewOfFile(addr)) {
    DWORD e = GetLastError();
    return mb__errorf(e == ERROR_INVALID_ADDRESS ? MB_EINVAL : mb__from_win(e, MB_EOS), (long)e,
                      "unmap view at %p", addr);
  }
  return 0;
}

/* Check that view is given and [offset, offset+len) is a page-aligned range in the section. */
static int mb__section_range(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len,
                             const char *what) {
  if (!mb__sec_is_open(sec))
    return mb__errorf(MB_EINVAL, 0, "%s in a closed section", what);
  if (view == NULL || !mb__os_page_aligned(view, 0))
    return mb__errorf(MB_EINVAL, 0, "%s in section '%s': view %p is not page-aligned", what,
                      sec->name, view);
  return mb__os_section_range(sec, offset, len, what);
}

/*
 * Commit pages of a SEC_RESERVE section through the caller's view. The pages are committed
 * in the section itself (once, for every process); committing them again through another
 * view only makes them accessible there and charges nothing. The view must be writable and
 * cover the range: a read-only view is MB_EACCES, a view too short for the range MB_ERANGE.
 */
int mb_os_section_commit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len) {
  MEMORY_BASIC_INFORMATION first, last;
  char *start = (char *)view + offset;
  int rc;

  if ((rc = mb__section_range(sec, view, offset, len, "commit")) != 0)
    return rc;
  if (!(sec->flags & MB_OS_SEC_RESERVE))
    return 0;
  if (VirtualQuery(view, &first, sizeof first) == 0 || first.AllocationBase != view ||
      first.Type != MEM_MAPPED)
    return mb__errorf(MB_EINVAL, ERROR_INVALID_ADDRESS, "commit in section '%s': %p is not a view",
                      sec->name, view);
  if (!(first.AllocationProtect & (PAGE_READWRITE | PAGE_WRITECOPY)))
    return mb__errorf(MB_EACCES, ERROR_ACCESS_DENIED,
                      "commit in section '%s': the view at %p is read-only", sec->name, view);
  if (VirtualQuery(start + len - 1, &last, sizeof last) == 0 || last.AllocationBase != view)
    return mb__errorf(MB_ERANGE, ERROR_INVALID_ADDRESS,
                      "commit [%llu, +%llu) of section '%s': beyond the view at %p",
                      (unsigned long long)offset, (unsigned long long)len, sec->name, view);
  if (mb__os_injected_commit_failure())
    return mb__errorf(MB_ENOSPC, 0, "commit [%llu, +%llu) of section '%s' (injected failure)",
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  if (VirtualAlloc(start, (SIZE_T)len, MEM_COMMIT, PAGE_READWRITE) == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOSPC), (long)e, "commit [%llu, +%llu) of section '%s'",
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  }
  return 0;
}

/* Pages of a section can be committed but never decommitted on Windows. */
int mb_os_section_decommit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len) {
  int rc;
  if ((rc = mb__section_range(sec, view, offset, len, "decommit")) != 0)
    return rc;
  return mb__errorf(MB_ENOTSUP, 0, "decommit [%llu, +%llu) of section '%s'",
                    (unsigned long long)offset, (unsigned long long)len, sec->name);
}

/*
 * A fully committed section is charged whole at creation. For a SEC_RESERVE one, count the
 * MEM_COMMIT regions of the view: the commit state is the section's, so pages committed by
 * another process show up in this view too.
 */
int mb_os_populate_write(void *addr, uint64_t size) {
  /* The section's pages were committed when it was created; a view maps them on first touch
   * and Windows has no call that maps a range of a pagefile-backed view for writing at once
   * (PrefetchVirtualMemory reads file pages in; VirtualLock pins them). */
  (void)addr;
  if (size == 0)
    return 0;
  return mb__errorf(MB_ENOTSUP, 0,
                    "populate %llu bytes: Windows maps a view's pages on first touch",
                    (unsigned long long)size);
}

int mb_os_section_write(const mb_os_section_t *sec, uint64_t offset, const void *data, size_t len) {
  /* A pagefile-backed section is reached through views only (WriteFile takes no section). */
  (void)data;
  return mb__errorf(MB_ENOTSUP, 0,
                    "write %zu bytes at offset %llu of section '%s': Windows writes sections "
                    "through views",
                    len, (unsigned long long)offset, sec->name);
}

uint64_t mb_os_page_faults(void) {
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc))
    return 0;
  return (uint64_t)pmc.PageFaultCount;
}

int mb_os_section_committed(const mb_os_section_t *sec, void *view, uint64_t *bytes) {
  uint64_t total = 0, committed = 0;
  int rc, reserved = 0;

  if (!mb__sec_is_open(sec))
    return mb__errorf(MB_EINVAL, 0, "committed bytes of a closed section");
  if (!(sec->flags & MB_OS_SEC_RESERVE)) {
    *bytes = sec->size;
    return 0;
  }
  if (view == NULL)
    return mb__errorf(MB_EINVAL, 0, "committed bytes of section '%s': no view", sec->name);
  if ((rc = mb__view_scan(view, &total, &committed, &reserved, sec->name)) != 0)
    return rc;
  *bytes = committed;
  return 0;
}

void mb_os_section_close(mb_os_section_t *sec) {
  if (mb__sec_is_open(sec))
    CloseHandle((HANDLE)sec->handle);
  if (sec != NULL)
    sec->handle = -1;
}

/* Names vanish with their last handle: nothing to remove, but the name is still checked. */
int mb_os_section_unlink(const char *name, int flags) {
  wchar_t wname[MB__WNAME_MAX];
  return mb__object_wname(name, flags, wname, "section");
}

int mb_os_section_os_name(const char *name, int flags, char *buf, size_t size) {
  const char *prefix = (flags & MB_OS_SEC_GLOBAL) ? "Global\\" : "Local\\";
  size_t n = 0;
  int rc = mb__os_check_name(name, "section", &n);
  if (rc != 0)
    return rc;
  if (strlen(prefix) + n >= size)
    return mb__errorf(MB_ERANGE, 0, "section name '%s%s' into %zu bytes", prefix, name, size);
  memcpy(buf, prefix, strlen(prefix));
  memcpy(buf + strlen(prefix), name, n + 1);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Single-instance lock, runtime directory                                                    */

/*
 * The lock is the existence of a named mutex: whoever creates it holds the lock, and anyone
 * who finds it already there (ERROR_ALREADY_EXISTS) gets MB_EBUSY and closes the handle at
 * once. The kernel destroys the object with its last handle - at mb_os_lock_release or when
 * the holder dies - so a crashed broker never leaves it behind. Mutex ownership is not used:
 * it belongs to a thread, so the lock would break when the taking thread exits and could
 * not be released from another thread, while this lock is the process's.
 *
 * The mutex is always Global\: a service publishes in Global\ and a console broker in Local\,
 * yet both must see one lock. CreateMutex in Global\ needs no privilege (unlike a section).
 * When another user's process created it, its default DACL lets us neither open nor create
 * it: ERROR_ACCESS_DENIED, which means held by someone else, so MB_EBUSY too.
 *
 * The mutex's name is case-folded (ASCII lower case after the prefix, "Global\foo"): kernel object
 * names are case-sensitive, but the instance's pipe and record file are not, so instances "Foo" and
 * "foo" must be one lock.
 *
 * The holder's record is a file in %ProgramData%\membroker\locks (mb__data_prepare_w: a
 * folder where every user may create files and read all of them, and SYSTEM and
 * Administrators do anything), created with FILE_FLAG_DELETE_ON_CLOSE and kept open with the
 * lock: the file goes with the handle, so a crashed holder leaves no record; nobody else may
 * write it while it is open.
 */
typedef struct mb__lock_s {
  HANDLE mutex;
  HANDLE record; /* INVALID_HANDLE_VALUE when the record could not be written */
} mb__lock_t;

/*
 * FOLDERID_ProgramData, {62AB5D82-FDC1-4DC3-A9DD-070D1D495D97}. SHGetKnownFolderPath (shell32)
 * and CoTaskMemFree (ole32) are looked up at run time: only the broker asks for this folder,
 * and the client library must not pull those DLLs into every game server.
 */
static const GUID mb__folderid_programdata = {
    0x62AB5D82, 0xFDC1, 0x4DC3, {0xA9, 0xDD, 0x07, 0x0D, 0x1D, 0x49, 0x5D, 0x97}};
typedef HRESULT(WINAPI *mb__shgetkfp_fn)(const GUID *, DWORD, HANDLE, PWSTR *);
typedef void(WINAPI *mb__cotaskmemfree_fn)(void *);

/* The ProgramData folder from the shell (what services see too), into w[MAX_PATH]. 1 if found. */
static int mb__known_programdata(wchar_t *w) {
  HMODULE shell = LoadLibraryW(L"shell32.dll"), ole = LoadLibraryW(L"ole32.dll");
  mb__shgetkfp_fn get = NULL;
  mb__cotaskmemfree_fn mfree = NULL;
  PWSTR path = NULL;
  int ok = 0;
  if (shell != NULL)
    get = (mb__shgetkfp_fn)(void (*)(void))GetProcAddress(shell, "SHGetKnownFolderPath");
  if (ole != NULL)
    mfree = (mb__cotaskmemfree_fn)(void (*)(void))GetProcAddress(ole, "CoTaskMemFree");
  if (get != NULL && mfree != NULL && get(&mb__folderid_programdata, 0, NULL, &path) == S_OK) {
    if (path != NULL && wcslen(path) > 0 && wcslen(path) < MAX_PATH) {
      wcscpy(w, path);
      ok = 1;
    }
  }
  if (path != NULL && mfree != NULL)
    mfree(path);
  if (ole != NULL)
    FreeLibrary(ole);
  if (shell != NULL)
    FreeLibrary(shell);
  return ok;
}

/*
 * The machine-wide directory of the broker's own files, "<ProgramData>\membroker", into
 * w[count]. The ProgramData folder comes from the shell (SHGetKnownFolderPath), else from where
 * Windows itself keeps it (the ProfileList key's ProgramData value; RRF_RT_REG_SZ expands a
 * REG_EXPAND_SZ "%SystemDrive%\ProgramData"), else from %ProgramData%: a service and a console
 * user must agree on it, and Wine gives services %ProgramData% = C:\users\Public.
 */
static int mb__data_wdir(wchar_t *w, size_t count) {
  DWORD bytes = (DWORD)(count * sizeof *w), n = 0, e = 0;
  if (count >= MAX_PATH && mb__known_programdata(w)) {
    n = (DWORD)wcslen(w);
  } else if ((e = RegGetValueW(HKEY_LOCAL_MACHINE,
                               L"SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList",
                               L"ProgramData", RRF_RT_REG_SZ, NULL, w, &bytes)) == ERROR_SUCCESS &&
             bytes >= 2 * sizeof *w) {
    n = (DWORD)wcslen(w);
  } else if ((n = GetEnvironmentVariableW(L"ProgramData", w, (DWORD)count)) == 0 || n >= count) {
    e = n == 0 ? GetLastError() : ERROR_INSUFFICIENT_BUFFER;
    return mb__errorf(
        n == 0 ? MB_ENOENT : MB_ERANGE, (long)e,
        "no ProgramData folder (not from the shell, the registry or %%ProgramData%%)");
  }
  while (n > 0 && (w[n - 1] == L'\\' || w[n - 1] == L'/'))
    n--;
  if (n + 11 > count)
    return mb__errorf(MB_ERANGE, 0, "the ProgramData folder's path is too long");
  memcpy(w + n, L"\\membroker", 11 * sizeof *w);
  return 0;
}

/*
 * The machine data directory's security (mb_os_data_dir_prepare). The default ACL of
 * ProgramData lets any user create a folder there and own it, and an owner may change its
 * ACL or swap it for a junction: a LocalSystem service that then creates, truncates, renames
 * or deletes files "in its folder" would do so wherever the junction points. So the service's
 * folders get an explicit protected DACL and Administrators as owner, and a folder found
 * already there is used only if it is no reparse point and SYSTEM or Administrators own it
 * (or this process's own user: mb__secure_dir).
 *
 *   <data dir>           SYSTEM, Administrators full control; Users read & execute
 *   <data dir>\<inst>    the same (an instance's log files)
 *   <data dir>\locks     the same for SYSTEM and Administrators; Users may list the folder
 *                        and add files (0x1200ab: FILE_ADD_FILE, never FILE_ADD_SUBDIRECTORY)
 *                        and read every file (inherit-only 0x1200a9), and CREATOR OWNER gets
 *                        full control of the files it created: a console broker's record.
 *
 * A user who is neither SYSTEM nor an Administrator cannot create these folders: the
 * descriptor names Administrators as owner, which such a token may not set
 * (ERROR_INVALID_OWNER), so nothing is created in that user's name.
 */
#define MB__SDDL_DATA L"O:BAG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)"
#define MB__SDDL_LOCKS                                                                             \
  L"O:BAG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200ab;;;BU)(A;OIIO;0x1200a9;;;BU)"           \
  L"(A;OIIO;FA;;;CO)"

/* The folder of lock records, inside the data dir. */
#define MB__LOCKS_DIR L"locks"

/* What to do with a folder that exists already (mb__secure_dir). */
enum { MB__DIR_CHECK = 0, MB__DIR_APPLY = 1 };

static int mb__from_win_io(DWORD e);

/* UTF-8 of w for messages (best-effort: "?" if it does not convert). */
static void mb__wide_msg(const wchar_t *w, char *buf, size_t size) {
  if (WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)size, NULL, NULL) <= 0)
    snprintf(buf, size, "?");
}

/*
 * Make the folder w safe to use for the service's files, or refuse it: create it with the
 * descriptor `sddl` if it is missing; if it exists, refuse a reparse point or a folder owned by
 * anyone but SYSTEM, Administrators or this process's own user (MB_EACCES, saying to remove
 * it: a folder of its own user gives nobody else a hold on this process; for the LocalSystem
 * service that user is SYSTEM, and under Wine, which keeps no owner of files and reads every
 * one back as owned by the one user all its processes run as, it is that user), and with
 * MB__DIR_APPLY set the descriptor's owner and DACL on it again (a folder an older version
 * created with ProgramData's inherited ACL, which lets users add folders). The parent must exist
 * and have been checked.
 */
static int mb__secure_dir(const wchar_t *w, const wchar_t *sddl, int how) {
  PSECURITY_DESCRIPTOR want = NULL, have = NULL;
  ULONG_PTR self[SECURITY_MAX_SID_SIZE / sizeof(ULONG_PTR) + 1];
  SECURITY_ATTRIBUTES sa;
  PSID owner = NULL;
  PACL dacl = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  char u8[3 * (MAX_PATH + 16)];
  DWORD attr, e = 0;
  int rc = 0;

  mb__wide_msg(w, u8, sizeof u8);
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &want, NULL)) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "build the descriptor of folder '%s'",
                      u8);
  }
  attr = GetFileAttributesW(w);
  if (attr == INVALID_FILE_ATTRIBUTES) {
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = want;
    sa.bInheritHandle = FALSE;
    if (CreateDirectoryW(w, &sa))
      goto done;
    e = GetLastError();
    if (e != ERROR_ALREADY_EXISTS) { /* else another process made it just now: check it */
      rc = mb__errorf(e == ERROR_INVALID_OWNER ? MB_EACCES : mb__from_win_io(e), (long)e,
                      "create folder '%s' (it must be created by the service, SYSTEM, or an "
                      "administrator: `membroker install` does it)",
                      u8);
      goto done;
    }
    attr = GetFileAttributesW(w);
  }
  if (attr == INVALID_FILE_ATTRIBUTES || !(attr & FILE_ATTRIBUTE_DIRECTORY)) {
    e = attr == INVALID_FILE_ATTRIBUTES ? GetLastError() : 0;
    rc = mb__errorf(attr == INVALID_FILE_ATTRIBUTES ? mb__from_win_io(e) : MB_EEXIST, (long)e,
                    "folder '%s': %s", u8,
                    attr == INVALID_FILE_ATTRIBUTES ? "cannot read its attributes"
                                                    : "a file has that name; remove it");
    goto done;
  }
  if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
    rc = mb__errorf(MB_EACCES, 0,
                    "folder '%s' is a junction or link (a reparse point), which the service "
                    "will not follow: remove it; the service recreates it",
                    u8);
    goto done;
  }
  e = GetNamedSecurityInfoW(w, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                            &have);
  if (e != ERROR_SUCCESS) {
    rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "read the owner of folder '%s'", u8);
    goto done;
  }
  if (owner == NULL ||
      !(IsWellKnownSid(owner, WinLocalSystemSid) ||
        IsWellKnownSid(owner, WinBuiltinAdministratorsSid) ||
        (mb__user_sid((PSID)self, "data folder") == 0 && EqualSid(owner, (PSID)self)))) {
    wchar_t *sid = NULL;
    char who[200];
    if (owner != NULL && ConvertSidToStringSidW(owner, &sid)) {
      mb__wide_msg(sid, who, sizeof who);
      LocalFree(sid);
    } else {
      snprintf(who, sizeof who, "nobody");
    }
    rc = mb__errorf(MB_EACCES, 0,
                    "folder '%s' is owned by %s, not by SYSTEM or Administrators, so another "
                    "user may control what the service writes there: remove it; the service "
                    "recreates it",
                    u8, who);
    goto done;
  }
  if (how == MB__DIR_APPLY) {
    PSID want_owner = NULL;
    if (!GetSecurityDescriptorDacl(want, &present, &dacl, &defaulted) ||
        !GetSecurityDescriptorOwner(want, &want_owner, &defaulted)) {
      e = GetLastError();
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "the DACL for folder '%s'", u8);
      goto done;
    }
    e = SetNamedSecurityInfoW((wchar_t *)w, SE_FILE_OBJECT,
                              OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION |
                                  PROTECTED_DACL_SECURITY_INFORMATION,
                              want_owner, NULL, dacl, NULL);
    if (e != ERROR_SUCCESS)
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e,
                      "set the owner and access of folder '%s' (Administrators; SYSTEM and "
                      "Administrators only)",
                      u8);
  }
done:
  if (have != NULL)
    LocalFree(have);
  LocalFree(want);
  return rc;
}

/*
 * Prepare <data dir> and <data dir>\locks, then <data dir>\<sub> when sub is not NULL (a
 * checked portable name), as mb__secure_dir does with `how`; the last folder's path into
 * w[count].
 */
static int mb__data_prepare_w(const char *sub, int how, wchar_t *w, size_t count) {
  size_t len, i;
  int rc;
  if ((rc = mb__data_wdir(w, count)) != 0 || (rc = mb__secure_dir(w, MB__SDDL_DATA, how)) != 0)
    return rc;
  len = wcslen(w);
  if (len + wcslen(MB__LOCKS_DIR) + 2 > count || (sub != NULL && len + strlen(sub) + 2 > count))
    return mb__errorf(MB_ERANGE, 0, "a folder under the ProgramData folder is too long");
  w[len] = L'\\';
  wcscpy(w + len + 1, MB__LOCKS_DIR);
  if ((rc = mb__secure_dir(w, MB__SDDL_LOCKS, how)) != 0)
    return rc;
  if (sub == NULL) {
    w[len] = L'\0';
    return 0;
  }
  for (i = 0; sub[i] != '\0'; i++)
    w[len + 1 + i] = (wchar_t)(unsigned char)sub[i];
  w[len + 1 + i] = L'\0';
  return mb__secure_dir(w, MB__SDDL_DATA, how);
}

int mb_os_data_dir_prepare(const char *sub, char *buf, size_t size) {
  wchar_t w[MAX_PATH + 16];
  size_t n;
  int rc;
  if (buf != NULL && size > 0)
    buf[0] = '\0';
  if (sub != NULL) {
    if ((rc = mb__os_check_name(sub, "data folder", &n)) != 0)
      return rc;
    if (_stricmp(sub, "locks") == 0)
      return mb__errorf(MB_EINVAL, 0,
                        "'%s' names the lock records' folder of the data directory; an "
                        "instance of that name needs a log.file of its own",
                        sub);
  }
  if ((rc = mb__data_prepare_w(sub, MB__DIR_APPLY, w, MAX_PATH + 16)) != 0)
    return rc;
  return buf == NULL ? 0 : mb__wide_to_utf8(w, buf, size, "data folder");
}

/* <data dir>\locks\<name> into w[count]. */
static int mb__lock_wpath(const char *name, wchar_t *w, size_t count) {
  size_t len, i;
  int rc;
  if ((rc = mb__data_wdir(w, count)) != 0)
    return rc;
  len = wcslen(w);
  if (len + wcslen(MB__LOCKS_DIR) + strlen(name) + 3 > count)
    return mb__errorf(MB_ERANGE, 0, "lock file path for '%s' is too long", name);
  w[len++] = L'\\';
  wcscpy(w + len, MB__LOCKS_DIR);
  len += wcslen(MB__LOCKS_DIR);
  w[len++] = L'\\';
  for (i = 0; name[i] != '\0'; i++) /* a checked portable name: ASCII */
    w[len++] = (wchar_t)(unsigned char)name[i];
  w[len] = L'\0';
  return 0;
}

int mb_os_data_dir(char *buf, size_t size) {
  wchar_t w[MAX_PATH + 16];
  int rc;
  if (size > 0)
    buf[0] = '\0';
  if ((rc = mb__data_wdir(w, MAX_PATH + 16)) != 0)
    return rc;
  return mb__wide_to_utf8(w, buf, size, "ProgramData folder");
}

int mb_os_lock_path(const char *name, char *buf, size_t size) {
  wchar_t w[MAX_PATH + 16];
  size_t n;
  int rc;
  if ((rc = mb__os_check_name(name, "lock", &n)) != 0 ||
      (rc = mb__lock_wpath(name, w, MAX_PATH + 16)) != 0)
    return rc;
  return mb__wide_to_utf8(w, buf, size, "lock file path");
}

int mb_os_lock_holder(const char *name, mb_os_lock_holder_t *holder) {
  wchar_t w[MAX_PATH + 16];
  char text[128];
  DWORD got = 0;
  HANDLE f;
  size_t n;
  text[0] = '\0';
  if (mb__os_check_name(name, "lock", &n) == 0 && mb__lock_wpath(name, w, MAX_PATH + 16) == 0) {
    /* The holder has it open for writing (and delete-on-close): share both. */
    f = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                    OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f != INVALID_HANDLE_VALUE) {
      if (!ReadFile(f, text, (DWORD)sizeof text - 1, &got, NULL))
        got = 0;
      CloseHandle(f);
    }
  }
  text[got] = '\0';
  return mb__os_lock_believe(text, "Windows service", holder);
}

/*
 * Write this process's record for a lock just taken; INVALID_HANDLE_VALUE if it cannot. The
 * folders are prepared first (mb__data_prepare_w; a service also sets their DACL again), and a
 * file already there under the name is deleted, not truncated: it may be a user's file or a
 * hard link to another file, and the record is then created anew (CREATE_NEW, without
 * following a reparse point). A file that cannot be deleted leaves no record.
 */
static HANDLE mb__lock_record_write(const char *name, int flags) {
  wchar_t w[MAX_PATH + 16];
  char rec[96];
  DWORD len, put = 0;
  HANDLE f;
  if (mb__data_prepare_w(NULL, (flags & MB_OS_LOCK_SERVICE) ? MB__DIR_APPLY : MB__DIR_CHECK, w,
                         MAX_PATH + 16) != 0 ||
      mb__lock_wpath(name, w, MAX_PATH + 16) != 0)
    return INVALID_HANDLE_VALUE;
  if (!DeleteFileW(w) && GetLastError() != ERROR_FILE_NOT_FOUND)
    return INVALID_HANDLE_VALUE;
  f = CreateFileW(w, GENERIC_WRITE | DELETE, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL, CREATE_NEW,
                  FILE_ATTRIBUTE_NORMAL | FILE_FLAG_DELETE_ON_CLOSE | FILE_FLAG_OPEN_REPARSE_POINT,
                  NULL);
  if (f == INVALID_HANDLE_VALUE)
    return f;
  len = (DWORD)mb__os_lock_record(rec, sizeof rec, flags);
  if (!WriteFile(f, rec, len, &put, NULL) || put != len) {
    CloseHandle(f); /* deletes it */
    return INVALID_HANDLE_VALUE;
  }
  return f;
}

int mb_os_lock_take(const char *name, int flags, intptr_t *lock) {
  wchar_t wname[MB__WNAME_MAX];
  mb_os_lock_holder_t who;
  mb__lock_t *l;
  size_t i;
  HANDLE h;
  DWORD e;
  int rc;

  if ((rc = mb__object_wname(name, MB_OS_SEC_GLOBAL, wname, "lock")) != 0)
    return rc;
  for (i = 7; wname[i] != L'\0'; i++) /* case-folded after "Global\\": see above */
    if (wname[i] >= L'A' && wname[i] <= L'Z')
      wname[i] = (wchar_t)(wname[i] - L'A' + L'a');
  h = CreateMutexW(NULL, FALSE, wname);
  e = GetLastError();
  if (h != NULL && e == ERROR_ALREADY_EXISTS)
    CloseHandle(h);
  if ((h != NULL && e == ERROR_ALREADY_EXISTS) || (h == NULL && e == ERROR_ACCESS_DENIED)) {
    (void)mb_os_lock_holder(name, &who);
    return mb__errorf(MB_EBUSY, (long)e, "lock 'Global\\%s' is held by another process (%s)", name,
                      who.what);
  }
  if (h == NULL)
    /* ERROR_INVALID_HANDLE: the name belongs to another kind of object. */
    return mb__errorf(e == ERROR_INVALID_HANDLE ? MB_EEXIST : mb__from_win(e, MB_ENOMEM), (long)e,
                      "lock 'Global\\%s'", name);
  if ((l = malloc(sizeof *l)) == NULL) {
    CloseHandle(h);
    return mb__errorf(MB_ENOMEM, 0, "lock 'Global\\%s'", name);
  }
  l->mutex = h;
  l->record = mb__lock_record_write(name, flags); /* best-effort: see above */
  *lock = (intptr_t)l;
  return 0;
}

void mb_os_lock_release(intptr_t lock) {
  mb__lock_t *l = (mb__lock_t *)lock;
  if (lock == 0 || lock == -1)
    return;
  if (l->record != INVALID_HANDLE_VALUE)
    CloseHandle(l->record); /* the record goes first, while the lock is still held */
  CloseHandle(l->mutex);
  free(l);
}

/* ---------------------------------------------------------------------------------------- */
/* Control pipe security                                                                      */

/* Rights in the pipe's DACL. Others may read and write data but not create instances:
 * FILE_CREATE_PIPE_INSTANCE is FILE_APPEND_DATA, part of FILE_GENERIC_WRITE, so the write
 * mask is spelled out. SYNCHRONIZE and READ_CONTROL come with FILE_GENERIC_READ. */
#define MB__PIPE_RIGHTS_FULL FILE_ALL_ACCESS
#define MB__PIPE_RIGHTS_READ FILE_GENERIC_READ
#define MB__PIPE_RIGHTS_WRITE (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE)

/*
 * Why SetSecurityInfo on the first instance is enough: a named pipe has one security
 * descriptor for all its instances ("controls access to both client and server ends of the
 * named pipe", Named Pipe Security and Access Rights). It is set when the first instance is
 * created; a later CreateNamedPipe of the same name is access-checked against it (the caller
 * needs FILE_CREATE_PIPE_INSTANCE) and does not replace it. So the instances libuv creates
 * later (uv_listen, after each accept) share this DACL; Wine behaves the same here.
 * Why not the token's default DACL instead: it is process-wide, so every object any thread
 * creates meanwhile without a descriptor would get pipe-shaped rights, and it buys little:
 * libuv creates the first instance with FILE_FLAG_FIRST_PIPE_INSTANCE (a squatter's pipe
 * makes bind fail, we never join it), and until this call the pipe has the default
 * descriptor, which lets nobody but the broker's user, SYSTEM and Administrators write to it
 * or create instances (Everyone may at most open it read-only, and a read-only client cannot
 * send a request). The pipe lives as long as one instance does, and libuv always keeps
 * instances open while listening, so the descriptor is never lost.
 */
int mb_os_pipe_secure(intptr_t handle, const char *path, const mb_os_access_t *access) {
  mb__sd_t sd;
  DWORD e;
  int rc;
  (void)path;
  if (handle == 0 || handle == -1)
    return mb__errorf(MB_EINVAL, 0, "secure the control pipe: no handle");
  if ((rc = mb__sd_build(&sd, access, MB__PIPE_RIGHTS_FULL, MB__PIPE_RIGHTS_READ,
                         MB__PIPE_RIGHTS_WRITE, "control pipe")) != 0)
    return rc;
  e = SetSecurityInfo((HANDLE)handle, SE_KERNEL_OBJECT,
                      DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL, NULL,
                      (PACL)sd.acl, NULL);
  if (e != ERROR_SUCCESS)
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "set the DACL of the control pipe");
  return 0;
}

/* The SID of a SID_AND_ATTRIBUTES entry at byte offset `at` of a token buffer. */
static SID_AND_ATTRIBUTES mb__sid_attr(const void *buf, size_t at) {
  SID_AND_ATTRIBUTES sa;
  memcpy(&sa, (const char *)buf + at, sizeof sa);
  return sa;
}

/*
 * Read a token information class into a new buffer (free() it); NULL on failure. The
 * buffer is malloc'ed, so suitably aligned for the structures it holds.
 */
static void *mb__token_info(HANDLE tok, TOKEN_INFORMATION_CLASS cls) {
  DWORD len = 0;
  void *buf;
  GetTokenInformation(tok, cls, NULL, 0, &len);
  if (len == 0 || (buf = malloc(len)) == NULL)
    return NULL;
  if (!GetTokenInformation(tok, cls, buf, len, &len)) {
    free(buf);
    return NULL;
  }
  return buf;
}

/*
 * The client's process token decides. Only TOKEN_QUERY is needed, which a service running
 * as LocalSystem has on every token and a broker of an ordinary user on its own processes.
 * Administrators must be an enabled group: in a UAC-filtered token it is deny-only, and such
 * a client is not an administrator. Any failure (process gone, access denied) is "no".
 * The pid is the client's at connect time; a client that hands its handle to another
 * process is judged as the process that opened the pipe.
 */
uint64_t mb_os_fd_limit(void) {
  return 0; /* handles: no per-process descriptor limit to watch */
}

void mb_os_heap_trim(void) {
  (void)HeapCompact(GetProcessHeap(), 0); /* coalesces and decommits free blocks */
}

int mb_os_pipe_peer_admin(intptr_t conn, long *uid) {
  DWORD sys[SECURITY_MAX_SID_SIZE / sizeof(DWORD)], adm[SECURITY_MAX_SID_SIZE / sizeof(DWORD)];
  DWORD self[SECURITY_MAX_SID_SIZE / sizeof(DWORD)], len, i, count;
  void *user = NULL, *groups = NULL;
  ULONG pid = 0;
  HANDLE proc, tok = NULL;
  int admin = 0;

  *uid = -1;
  if (!GetNamedPipeClientProcessId((HANDLE)conn, &pid))
    return 0;
  if ((proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid)) == NULL)
    return 0;
  if (!OpenProcessToken(proc, TOKEN_QUERY, &tok))
    tok = NULL;
  CloseHandle(proc);
  if (tok == NULL)
    return 0;
  len = sizeof sys;
  if (!CreateWellKnownSid(WinLocalSystemSid, NULL, sys, &len))
    goto done;
  len = sizeof adm;
  if (!CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, adm, &len))
    goto done;
  if ((user = mb__token_info(tok, TokenUser)) != NULL) {
    PSID u = mb__token_user_sid(user);
    if (EqualSid(u, sys) || (mb__user_sid(self, "peer check") == 0 && EqualSid(u, self))) {
      admin = 1;
      goto done;
    }
  }
  if ((groups = mb__token_info(tok, TokenGroups)) != NULL) {
    memcpy(&count, groups, sizeof count); /* TOKEN_GROUPS.GroupCount */
    for (i = 0; i < count; i++) {
      SID_AND_ATTRIBUTES g =
          mb__sid_attr(groups, offsetof(TOKEN_GROUPS, Groups) + i * sizeof(SID_AND_ATTRIBUTES));
      if ((g.Attributes & SE_GROUP_ENABLED) && !(g.Attributes & SE_GROUP_USE_FOR_DENY_ONLY) &&
          EqualSid(g.Sid, adm)) {
        admin = 1;
        break;
      }
    }
  }
done:
  free(user);
  free(groups);
  CloseHandle(tok);
  return admin;
}

int mb_os_security_describe(intptr_t handle, const char *path, char *buf, size_t size) {
  const SECURITY_INFORMATION what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
  PSECURITY_DESCRIPTOR psd = NULL;
  wchar_t *sddl = NULL;
  DWORD e;
  int rc;
  (void)path;
  e = GetSecurityInfo((HANDLE)handle, SE_KERNEL_OBJECT, what, NULL, NULL, NULL, NULL, &psd);
  if (e != ERROR_SUCCESS)
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "read a security descriptor");
  if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(psd, SDDL_REVISION_1, what, &sddl,
                                                            NULL)) {
    e = GetLastError();
    LocalFree(psd);
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "convert a security descriptor");
  }
  rc = mb__wide_to_utf8(sddl, buf, size, "security descriptor");
  LocalFree(sddl);
  LocalFree(psd);
  return rc;
}

/*
 * A client open of the pipe with READ_CONTROL alone: enough for GetSecurityInfo, and it asks
 * for no data access, so it passes any DACL that lets this user read the descriptor. It
 * takes a free instance like any client; while all are taken, wait for one (up to 5 s).
 */
int mb_os_pipe_describe(const char *name, char *buf, size_t size) {
  uint64_t deadline = mb_os_mono_ns() + 5000000000u;
  wchar_t *wname;
  HANDLE h;
  DWORD e;
  int rc;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "describe the control pipe: no name");
  if ((wname = mb__utf8_to_wide(name)) == NULL) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "pipe name '%s'", name);
  }
  for (;;) {
    h = CreateFileW(wname, READ_CONTROL, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h != INVALID_HANDLE_VALUE)
      break;
    e = GetLastError();
    if (e != ERROR_PIPE_BUSY || mb_os_mono_ns() >= deadline)
      break;
    WaitNamedPipeW(wname, 50);
  }
  free(wname);
  if (h == INVALID_HANDLE_VALUE)
    return mb__errorf(e == ERROR_PIPE_BUSY ? MB_EBUSY : mb__from_win(e, MB_EOS), (long)e,
                      "open pipe '%s' to read its security descriptor", name);
  rc = mb_os_security_describe((intptr_t)h, NULL, buf, size);
  CloseHandle(h);
  return rc;
}

/*
 * %MEMBROKER_RUNTIME_DIR% if set, else GetTempPathW (the user's temp directory;
 * C:\Windows\Temp for a service running as SYSTEM), without a trailing backslash unless it
 * is a drive root, created if missing (its parent must exist).
 */
int mb_os_runtime_dir(char *buf, size_t size) {
  wchar_t w[MAX_PATH + 2];
  char u8[3 * (MAX_PATH + 2)]; /* a UTF-16 unit is at most 3 UTF-8 bytes */
  DWORD n = GetEnvironmentVariableW(L"MEMBROKER_RUNTIME_DIR", w, MAX_PATH + 1), e;
  int rc;

  if (n == 0 || n > MAX_PATH) {
    if (n > MAX_PATH)
      return mb__errorf(MB_ERANGE, 0, "MEMBROKER_RUNTIME_DIR is longer than %d characters",
                        MAX_PATH);
    n = GetTempPathW(MAX_PATH + 1, w);
    if (n == 0 || n > MAX_PATH) {
      e = n == 0 ? GetLastError() : ERROR_INSUFFICIENT_BUFFER;
      return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "find the temp directory");
    }
  }
  while (n > 1 && (w[n - 1] == L'\\' || w[n - 1] == L'/') && !(n == 3 && w[1] == L':'))
    w[--n] = L'\0';
  if ((rc = mb__wide_to_utf8(w, u8, sizeof u8, "runtime directory")) != 0)
    return rc;
  if (!CreateDirectoryW(w, NULL) && (e = GetLastError()) != ERROR_ALREADY_EXISTS)
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "create runtime directory '%s'", u8);
  if (buf == NULL || strlen(u8) + 1 > size)
    return mb__errorf(MB_ERANGE, 0, "runtime directory '%s' is longer than %zu bytes", u8, size);
  memcpy(buf, u8, strlen(u8) + 1);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Processes                                                                                  */

static uint64_t mb__filetime_u64(const FILETIME *ft) {
  return ((uint64_t)ft->dwHighDateTime << 32) | ft->dwLowDateTime;
}

/* Read from the thread's TEB: no system call, and Windows has no fork. */
uint32_t mb_os_pid(void) {
  return (uint32_t)GetCurrentProcessId();
}

int mb_os_atfork_child(void (*fn)(void)) {
  (void)fn; /* no fork on Windows */
  return 0;
}

void mb_os_proc_self(mb_os_procid_t *id) {
  FILETIME created, exited, kernel, user;
  id->pid = (uint32_t)GetCurrentProcessId();
  /* Cannot fail on the current-process pseudo handle. */
  if (GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user))
    id->start_time = mb__filetime_u64(&created);
  else
    id->start_time = 0;
}

/*
 * Open process `pid` for querying and learn whether it still runs and when it started. A
 * process object outlives the process while handles to it are open, so a successful
 * OpenProcess does not mean "running": WaitForSingleObject(h, 0) decides (GetExitCodeProcess
 * when SYNCHRONIZE is refused, with the usual STILL_ACTIVE ambiguity). MB_ESRCH if there is
 * no such process or it has exited.
 */
static int mb__proc_probe(uint32_t pid, uint64_t *start) {
  FILETIME created, exited, kernel, user;
  HANDLE h;
  DWORD e, code;
  int running;

  h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, pid);
  if (h == NULL && GetLastError() == ERROR_ACCESS_DENIED)
    h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (h == NULL) {
    e = GetLastError();
    /* A pid that names no process is ERROR_INVALID_PARAMETER. */
    return mb__errorf(e == ERROR_INVALID_PARAMETER ? MB_ESRCH : mb__from_win(e, MB_ENOMEM), (long)e,
                      "query process %u", (unsigned)pid);
  }
  switch (WaitForSingleObject(h, 0)) {
  case WAIT_OBJECT_0:
    running = 0;
    break;
  case WAIT_TIMEOUT:
    running = 1;
    break;
  default: /* no SYNCHRONIZE right */
    running = GetExitCodeProcess(h, &code) && code == STILL_ACTIVE;
    break;
  }
  if (running && !GetProcessTimes(h, &created, &exited, &kernel, &user)) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "read start time of process %u",
                      (unsigned)pid);
  }
  CloseHandle(h);
  if (!running)
    return mb__errorf(MB_ESRCH, 0, "process %u has exited", (unsigned)pid);
  *start = mb__filetime_u64(&created);
  return 0;
}

int mb_os_proc_query(uint32_t pid, mb_os_procid_t *id) {
  uint64_t start;
  int rc = mb__proc_probe(pid, &start);
  if (rc != 0)
    return rc;
  id->pid = pid;
  id->start_time = start;
  return 0;
}

int mb_os_proc_alive(const mb_os_procid_t *id) {
  uint64_t start;
  int rc = mb__proc_probe(id->pid, &start);
  if (rc == MB_ESRCH)
    return 0;
  if (rc != 0)
    return rc;
  return start == id->start_time;
}

/*
 * A watch is a small heap struct around the process HANDLE: the handle keeps the process
 * object, so the pid cannot be reused while we hold it, and it is signaled when the process
 * exits. The start time read through that very handle proves it is the process meant. `wait`
 * is the thread pool's wait on it (mb_os_proc_watch_notify), NULL when none is registered.
 */
typedef struct mb__proc_watch_s {
  HANDLE proc;
  HANDLE wait;
  uint32_t pid;
  void (*fn)(void *arg);
  void *arg;
} mb__proc_watch_t;

int mb_os_proc_watch(const mb_os_procid_t *id, intptr_t *watch) {
  FILETIME created, exited, kernel, user;
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, id->pid);
  mb__proc_watch_t *w;
  DWORD e;
  if (h == NULL) {
    e = GetLastError();
    return mb__errorf(e == ERROR_INVALID_PARAMETER ? MB_ESRCH : mb__from_win(e, MB_EOS), (long)e,
                      "watch process %u", (unsigned)id->pid);
  }
  if (!GetProcessTimes(h, &created, &exited, &kernel, &user)) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "read start time of process %u",
                      (unsigned)id->pid);
  }
  if (mb__filetime_u64(&created) != id->start_time || WaitForSingleObject(h, 0) == WAIT_OBJECT_0) {
    CloseHandle(h);
    return mb__errorf(MB_ESRCH, 0, "watch process %u: it has exited", (unsigned)id->pid);
  }
  if ((w = calloc(1, sizeof *w)) == NULL) {
    CloseHandle(h);
    return mb__errorf(MB_ENOMEM, 0, "watch process %u", (unsigned)id->pid);
  }
  w->proc = h;
  w->pid = id->pid;
  *watch = (intptr_t)w;
  return 0;
}

int mb_os_proc_watch_exited(intptr_t watch) {
  return WaitForSingleObject(((const mb__proc_watch_t *)watch)->proc, 0) == WAIT_OBJECT_0;
}

int mb_os_proc_watch_fd(intptr_t watch) {
  (void)watch;
  return -1;
}

/* The thread pool's callback: the process handle is signaled (no timeout was asked for). */
static VOID CALLBACK mb__proc_watch_fired(PVOID ctx, BOOLEAN timed_out) {
  const mb__proc_watch_t *w = ctx;
  (void)timed_out;
  w->fn(w->arg);
}

int mb_os_proc_watch_notify(intptr_t watch, void (*fn)(void *arg), void *arg) {
  mb__proc_watch_t *w = (mb__proc_watch_t *)watch;
  DWORD e;
  if (w->wait != NULL) {
    /* INVALID_HANDLE_VALUE: wait for a callback in progress to return. */
    (void)UnregisterWaitEx(w->wait, INVALID_HANDLE_VALUE);
    w->wait = NULL;
  }
  w->fn = fn;
  w->arg = arg;
  if (fn == NULL)
    return 0;
  if (!RegisterWaitForSingleObject(&w->wait, w->proc, mb__proc_watch_fired, w, INFINITE,
                                   WT_EXECUTEONLYONCE)) {
    e = GetLastError();
    w->wait = NULL;
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "wait for the exit of process %u",
                      (unsigned)w->pid);
  }
  return 0;
}

void mb_os_proc_watch_close(intptr_t watch) {
  mb__proc_watch_t *w = (mb__proc_watch_t *)watch;
  if (w == NULL)
    return;
  (void)mb_os_proc_watch_notify(watch, NULL, NULL);
  CloseHandle(w->proc);
  free(w);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct mb__thread_start_s {
  void (*fn)(void *);
  void *arg;
} mb__thread_start_t;

static unsigned __stdcall mb__thread_main(void *p) {
  mb__thread_start_t s = *(mb__thread_start_t *)p;
  free(p);
  s.fn(s.arg);
  return 0;
}

/* _beginthreadex, not CreateThread: the C runtime's per-thread state is set up for it. */
int mb_os_thread_start(mb_os_thread_t *t, void (*fn)(void *), void *arg) {
  mb__thread_start_t *s = malloc(sizeof *s);
  uintptr_t h;
  if (s == NULL)
    return mb__errorf(MB_ENOMEM, 0, "start a thread");
  s->fn = fn;
  s->arg = arg;
  if ((h = _beginthreadex(NULL, 0, mb__thread_main, s, 0, NULL)) == 0) {
    int e = errno;
    free(s);
    return mb__errorf(MB_EOS, e, "start a thread");
  }
  t->handle = (intptr_t)h;
  return 0;
}

void mb_os_thread_join(mb_os_thread_t *t) {
  WaitForSingleObject((HANDLE)t->handle, INFINITE);
  CloseHandle((HANDLE)t->handle);
  t->handle = 0;
}

/* Fiber-local, not thread-local, storage: only FlsAlloc takes a callback, which runs when a
 * thread exits (for threads that never use fibers, a fiber-local slot is a thread's). */
int mb_os_tls_create(mb_os_tls_t *tls, void (*on_exit)(void *value)) {
  DWORD k = FlsAlloc((PFLS_CALLBACK_FUNCTION)(void (*)(void))on_exit);
  if (k == FLS_OUT_OF_INDEXES)
    return mb__errorf(MB_ENOMEM, (long)GetLastError(), "create a thread-local key");
  tls->key = (intptr_t)k;
  return 0;
}

void *mb_os_tls_get(const mb_os_tls_t *tls) {
  return FlsGetValue((DWORD)tls->key);
}

void mb_os_tls_set(const mb_os_tls_t *tls, void *value) {
  FlsSetValue((DWORD)tls->key, value);
}

/* ---------------------------------------------------------------------------------------- */
/* Private locks and heaps: an SRWLOCK taken exclusively; HeapCreate and friends.            */

_Static_assert(sizeof(SRWLOCK) <= sizeof(mb_os_mutex_t), "mb_os_mutex_t too small");

int mb_os_mutex_init(mb_os_mutex_t *m) {
  InitializeSRWLock((SRWLOCK *)(void *)m);
  return 0;
}

void mb_os_mutex_lock(mb_os_mutex_t *m) {
  AcquireSRWLockExclusive((SRWLOCK *)(void *)m);
}

void mb_os_mutex_unlock(mb_os_mutex_t *m) {
  ReleaseSRWLockExclusive((SRWLOCK *)(void *)m);
}

void mb_os_mutex_destroy(mb_os_mutex_t *m) {
  (void)m; /* an SRWLOCK needs no cleanup */
}

/* A heap is its HANDLE; the low bit of the pointer we hand out says HEAP_NO_SERIALIZE
 * (heap handles are at least 4-aligned), which HeapLock must not be used with. */
static HANDLE mb__heap_handle(mb_os_heap_t *heap) {
  return (HANDLE)((uintptr_t)heap & ~(uintptr_t)1);
}

static DWORD mb__heap_flags(mb_os_heap_t *heap) {
  return ((uintptr_t)heap & 1) ? HEAP_NO_SERIALIZE : 0;
}

int mb_os_heap_create(unsigned flags, size_t initial, size_t maximum, mb_os_heap_t **heap) {
  DWORD f = (flags & MB_OS_HEAP_NO_SERIALIZE) ? HEAP_NO_SERIALIZE : 0;
  HANDLE h;
  (void)maximum; /* growable: a fixed-size heap refuses blocks over 512 KiB */
  if ((h = HeapCreate(f, initial, 0)) == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "HeapCreate (initial %zu bytes)",
                      initial);
  }
  *heap = (mb_os_heap_t *)((uintptr_t)h | (f ? 1u : 0u));
  return 0;
}

int mb_os_heap_alloc(mb_os_heap_t *heap, size_t size, void **p) {
  void *q;
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0, "heap alloc of 0 bytes");
  /* HeapAlloc sets no last error without HEAP_GENERATE_EXCEPTIONS. */
  if ((q = HeapAlloc(mb__heap_handle(heap), mb__heap_flags(heap), size)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "HeapAlloc of %zu bytes", size);
  *p = q;
  return 0;
}

/* HeapValidate of one block: whether p is a live block of the heap, as far as it can tell. */
static int mb__heap_block(mb_os_heap_t *heap, const void *p, const char *what) {
  if (p == NULL || ((uintptr_t)p & 7) != 0 ||
      !HeapValidate(mb__heap_handle(heap), mb__heap_flags(heap), p))
    return mb__errorf(MB_EINVAL, 0, "%s %p: not a block of this heap (HeapValidate)", what, p);
  return 0;
}

int mb_os_heap_realloc(mb_os_heap_t *heap, void *p, size_t size, void **np) {
  void *q;
  int rc;
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0, "heap realloc of %p to 0 bytes", p);
  if ((rc = mb__heap_block(heap, p, "heap realloc of")) != 0)
    return rc;
  if ((q = HeapReAlloc(mb__heap_handle(heap), mb__heap_flags(heap), p, size)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "HeapReAlloc of %p to %zu bytes", p, size);
  *np = q;
  return 0;
}

int mb_os_heap_free(mb_os_heap_t *heap, void *p) {
  int rc;
  if ((rc = mb__heap_block(heap, p, "heap free of")) != 0)
    return rc;
  if (!HeapFree(mb__heap_handle(heap), mb__heap_flags(heap), p)) {
    DWORD e = GetLastError();
    return mb__errorf(MB_EINVAL, (long)e, "HeapFree of %p", p);
  }
  return 0;
}

int mb_os_heap_size(mb_os_heap_t *heap, const void *p, size_t *size) {
  SIZE_T n;
  int rc;
  if ((rc = mb__heap_block(heap, p, "heap size of")) != 0)
    return rc;
  if ((n = HeapSize(mb__heap_handle(heap), mb__heap_flags(heap), p)) == (SIZE_T)-1)
    return mb__errorf(MB_EINVAL, 0, "HeapSize of %p", p);
  *size = n;
  return 0;
}

int mb_os_heap_compact(mb_os_heap_t *heap, size_t *largest_free) {
  SIZE_T n;
  SetLastError(NO_ERROR);
  n = HeapCompact(mb__heap_handle(heap), mb__heap_flags(heap));
  if (n == 0 && GetLastError() != NO_ERROR) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "HeapCompact");
  }
  if (largest_free != NULL)
    *largest_free = n;
  return 0;
}

int mb_os_heap_validate(mb_os_heap_t *heap) {
  if (!HeapValidate(mb__heap_handle(heap), mb__heap_flags(heap), NULL))
    return mb__errorf(MB_EIO, 0, "HeapValidate: the heap is damaged");
  return 0;
}

/* Committed and reserved bytes: the regions of a HeapWalk (under HeapLock when serialized). */
int mb_os_heap_committed(mb_os_heap_t *heap, uint64_t *committed, uint64_t *reserved) {
  HANDLE h = mb__heap_handle(heap);
  PROCESS_HEAP_ENTRY e;
  uint64_t c = 0, r = 0;
  int locked = mb__heap_flags(heap) == 0 && HeapLock(h);
  memset(&e, 0, sizeof e);
  while (HeapWalk(h, &e))
    if (e.wFlags & PROCESS_HEAP_REGION) {
      c += e.Region.dwCommittedSize;
      r += e.Region.dwCommittedSize + e.Region.dwUnCommittedSize;
    }
  if (locked)
    HeapUnlock(h);
  *committed = c;
  if (reserved != NULL)
    *reserved = r;
  return 0;
}

void mb_os_heap_destroy(mb_os_heap_t *heap) {
  if (heap != NULL)
    HeapDestroy(mb__heap_handle(heap));
}

/* Put `count` copies of c at out[*n] and advance *n (with out == NULL only count). */
static void mb__put(wchar_t *out, size_t *n, wchar_t c, size_t count) {
  for (; count > 0; count--, (*n)++)
    if (out)
      out[*n] = c;
}

/*
 * Append arg to a command line as the MSVCRT (and CommandLineToArgvW) parser reads it back:
 * an argument without blanks or quotes is copied as is; otherwise it is put in quotes, a
 * quote inside is written \", and backslashes are doubled where they come before a quote
 * (an inner one or the closing one) and copied as they are elsewhere. With out == NULL only
 * count. Returns the number of characters.
 */
static size_t mb__quote_arg(const wchar_t *arg, wchar_t *out) {
  size_t n = 0;
  if (arg[0] != L'\0' && wcspbrk(arg, L" \t\n\v\"") == NULL) {
    n = wcslen(arg);
    if (out)
      memcpy(out, arg, n * sizeof *out);
    return n;
  }
  mb__put(out, &n, L'"', 1);
  for (;; arg++) {
    size_t slashes = 0;
    while (*arg == L'\\') {
      arg++;
      slashes++;
    }
    if (*arg == L'\0') {
      mb__put(out, &n, L'\\', 2 * slashes); /* they precede the closing quote */
      break;
    }
    mb__put(out, &n, L'\\', *arg == L'"' ? 2 * slashes + 1 : slashes);
    mb__put(out, &n, *arg, 1);
  }
  mb__put(out, &n, L'"', 1);
  return n;
}

/*
 * Build the command line for argv (wide strings, count argc) into a new buffer. The program
 * name follows other rules (it ends at the first blank unless quoted, and backslashes are
 * plain characters), so it is always quoted as is; it cannot hold a quote (a path cannot).
 */
static wchar_t *mb__command_line(wchar_t **wargv, int argc) {
  size_t len = wcslen(wargv[0]) + 3, pos;
  wchar_t *cmd;
  int i;

  for (i = 1; i < argc; i++)
    len += 1 + mb__quote_arg(wargv[i], NULL);
  cmd = malloc(len * sizeof *cmd);
  if (cmd == NULL)
    return NULL;
  pos = 0;
  cmd[pos++] = L'"';
  memcpy(cmd + pos, wargv[0], wcslen(wargv[0]) * sizeof *cmd);
  pos += wcslen(wargv[0]);
  cmd[pos++] = L'"';
  for (i = 1; i < argc; i++) {
    cmd[pos++] = L' ';
    pos += mb__quote_arg(wargv[i], cmd + pos);
  }
  cmd[pos] = L'\0';
  return cmd;
}

int mb_os_spawn(const char *const argv[], mb_os_child_t *child) {
  return mb_os_spawn_redirect(argv, NULL, child);
}

/*
 * Start the child with CreateProcessW. Its standard handles are inheritable duplicates of
 * ours - or, with out_path, of one handle to that file for stdout and stderr (shared file
 * position, as 2>&1) - and a PROC_THREAD_ATTRIBUTE_HANDLE_LIST limits inheritance to exactly
 * those three, so no other inheritable handle of this process (or of a thread spawning at
 * the same time) leaks into the child. A missing standard handle (a service has none) stays
 * NULL.
 */
int mb_os_spawn_redirect(const char *const argv[], const char *out_path, mb_os_child_t *child) {
  static const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  STARTUPINFOEXW si;
  PROCESS_INFORMATION pi;
  HANDLE std[3] = {NULL, NULL, NULL}, inherit[3], out = INVALID_HANDLE_VALUE;
  LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
  wchar_t **wargv = NULL, *cmd = NULL;
  SIZE_T attrs_size = 0;
  DWORD e = 0, create_flags = 0;
  int argc, i, ndup = 0, ninherit = 0, rc = 0;
  BOOL ok;

  if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "spawn: no program");
  if (strchr(argv[0], '"') != NULL)
    return mb__errorf(MB_EINVAL, 0, "spawn '%s': a quote in the program path", argv[0]);
  for (argc = 0; argv[argc] != NULL; argc++) {
  }
  wargv = calloc((size_t)argc, sizeof *wargv);
  if (wargv == NULL)
    return mb__errorf(MB_ENOMEM, 0, "spawn '%s'", argv[0]);
  for (i = 0; i < argc; i++)
    if ((wargv[i] = mb__utf8_to_wide(argv[i])) == NULL) {
      e = GetLastError();
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s': argument %d", argv[0], i);
      goto done;
    }
  if ((cmd = mb__command_line(wargv, argc)) == NULL) {
    rc = mb__errorf(MB_ENOMEM, 0, "spawn '%s': command line", argv[0]);
    goto done;
  }

  if (out_path != NULL) {
    /* Not inheritable itself: the loop below makes the inheritable duplicates. */
    wchar_t *wout = mb__utf8_to_wide(out_path);
    if (wout == NULL) {
      e = GetLastError();
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s': output path '%s'", argv[0],
                      out_path);
      goto done;
    }
    out = CreateFileW(wout, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                      NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    e = GetLastError();
    free(wout);
    if (out == INVALID_HANDLE_VALUE) {
      rc = mb__errorf(mb__from_win(e, MB_EOS), (long)e, "spawn '%s': create output file '%s'",
                      argv[0], out_path);
      goto done;
    }
  }

  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si.StartupInfo;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  for (i = 0; i < 3; i++) {
    HANDLE h = i > 0 && out != INVALID_HANDLE_VALUE ? out : GetStdHandle(std_ids[i]);
    if (h == NULL || h == INVALID_HANDLE_VALUE)
      continue;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &std[i], 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
      std[i] = NULL;
      if (h != out)
        continue; /* one of ours that is not duplicable: the child goes without it */
      e = GetLastError();
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s': output file '%s'", argv[0],
                      out_path);
      goto done;
    }
    ndup++;
    /* Windows 7 console handles are pseudo handles (low bits 11) that a handle list refuses;
     * the child reaches them through the shared console. Real handles are multiples of 4. */
    if (((uintptr_t)std[i] & 3) != 3)
      inherit[ninherit++] = std[i];
  }
  si.StartupInfo.hStdInput = std[0];
  si.StartupInfo.hStdOutput = std[1];
  si.StartupInfo.hStdError = std[2];

  if (ninherit > 0) {
    InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size);
    attrs = malloc(attrs_size);
    if (attrs == NULL || !InitializeProcThreadAttributeList(attrs, 1, 0, &attrs_size)) {
      e = attrs == NULL ? ERROR_NOT_ENOUGH_MEMORY : GetLastError();
      free(attrs);
      attrs = NULL;
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s': attribute list", argv[0]);
      goto done;
    }
    if (!UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit,
                                   (SIZE_T)ninherit * sizeof inherit[0], NULL, NULL)) {
      e = GetLastError();
      rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s': handle list", argv[0]);
      goto done;
    }
    si.lpAttributeList = attrs;
    si.StartupInfo.cb = sizeof si;
    create_flags |= EXTENDED_STARTUPINFO_PRESENT;
  }

  ok = CreateProcessW(wargv[0], cmd, NULL, NULL, ndup > 0, create_flags, NULL, NULL,
                      &si.StartupInfo, &pi);
  if (!ok) {
    e = GetLastError();
    rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "spawn '%s'", argv[0]);
    goto done;
  }
  CloseHandle(pi.hThread);
  child->handle = (intptr_t)pi.hProcess;
  child->pid = (uint32_t)pi.dwProcessId;

done:
  if (attrs != NULL) {
    DeleteProcThreadAttributeList(attrs);
    free(attrs);
  }
  for (i = 0; i < 3; i++)
    if (std[i] != NULL)
      CloseHandle(std[i]);
  if (out != INVALID_HANDLE_VALUE)
    CloseHandle(out);
  free(cmd);
  if (wargv != NULL)
    for (i = 0; i < argc; i++)
      free(wargv[i]);
  free(wargv);
  return rc;
}

static int mb__child_is_open(const mb_os_child_t *child) {
  return child != NULL && child->handle != 0 && child->handle != -1;
}

/* Wait for the child; on success read its exit code and close the process handle. */
int mb_os_child_wait(mb_os_child_t *child, int timeout_ms, int *exit_code) {
  DWORD r, code, e;
  if (!mb__child_is_open(child))
    return mb__errorf(MB_ESRCH, 0, "wait for a child that was already reaped");
  r = WaitForSingleObject((HANDLE)child->handle, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
  if (r == WAIT_TIMEOUT)
    return mb__errorf(MB_ETIMEOUT, 0, "process %u still running after %d ms", (unsigned)child->pid,
                      timeout_ms);
  if (r != WAIT_OBJECT_0) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "wait for process %u",
                      (unsigned)child->pid);
  }
  if (!GetExitCodeProcess((HANDLE)child->handle, &code)) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "exit code of process %u",
                      (unsigned)child->pid);
  }
  CloseHandle((HANDLE)child->handle);
  child->handle = -1;
  child->pid = 0;
  *exit_code = (int)code;
  return 0;
}

/*
 * TerminateProcess with exit code 137 (128 + SIGKILL, what POSIX reports). A child that has
 * exited but not been waited for is not an error, as with kill() on a zombie.
 */
int mb_os_child_kill(mb_os_child_t *child) {
  DWORD e;
  if (!mb__child_is_open(child))
    return mb__errorf(MB_ESRCH, 0, "kill a child that was already reaped");
  if (TerminateProcess((HANDLE)child->handle, MB__KILL_EXIT_CODE))
    return 0;
  e = GetLastError();
  if (WaitForSingleObject((HANDLE)child->handle, 0) == WAIT_OBJECT_0)
    return 0;
  return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "kill process %u", (unsigned)child->pid);
}

/* GetModuleFileNameW into a buffer that grows to the longest path, then UTF-8. */
int mb_os_self_exe(char *buf, size_t size) {
  DWORD cap = MAX_PATH, n, e;
  wchar_t *w = NULL;
  int rc;

  if (buf == NULL || size == 0)
    return mb__errorf(MB_ERANGE, 0, "executable path into %zu bytes", size);
  for (;;) {
    wchar_t *nw = realloc(w, cap * sizeof *w);
    if (nw == NULL) {
      free(w);
      return mb__errorf(MB_ENOMEM, 0, "executable path");
    }
    w = nw;
    n = GetModuleFileNameW(NULL, w, cap);
    if (n == 0) {
      e = GetLastError();
      free(w);
      return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "executable path");
    }
    if (n < cap)
      break;
    if (cap >= 32768) { /* longer than any Windows path */
      free(w);
      return mb__errorf(MB_ERANGE, ERROR_INSUFFICIENT_BUFFER, "executable path");
    }
    cap *= 2;
  }
  rc = mb__wide_to_utf8(w, buf, size, "executable path");
  free(w);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Environment and installed services                                                       */

/* Both copies of the environment: Win32's (what CreateProcessW hands children) and the C
 * runtime's (what getenv reads), which _wputenv keeps in step. */
int mb_os_env_set(const char *name, const char *value) {
  wchar_t *wn = NULL, *wv = NULL, *wboth = NULL;
  size_t nn, nv;
  DWORD e = 0;
  int rc = 0;

  if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL)
    return mb__errorf(MB_EINVAL, 0, "environment variable name '%s'", name ? name : "(null)");
  if ((wn = mb__utf8_to_wide(name)) == NULL ||
      (value != NULL && (wv = mb__utf8_to_wide(value)) == NULL)) {
    e = GetLastError();
    rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "environment variable %s", name);
    goto done;
  }
  nn = wcslen(wn);
  nv = wv != NULL ? wcslen(wv) : 0;
  if ((wboth = malloc((nn + nv + 2) * sizeof *wboth)) == NULL) {
    rc = mb__errorf(MB_ENOMEM, 0, "environment variable %s", name);
    goto done;
  }
  memcpy(wboth, wn, nn * sizeof *wboth);
  wboth[nn] = L'=';
  memcpy(wboth + nn + 1, wv != NULL ? wv : L"", (nv + 1) * sizeof *wboth);
  if (!SetEnvironmentVariableW(wn, wv)) {
    e = GetLastError();
    rc = mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "set environment variable %s", name);
  } else if (_wputenv(wboth) != 0) {
    rc = mb__errorf(MB_ENOMEM, errno, "set environment variable %s in the C runtime", name);
  }
done:
  free(wboth);
  free(wv);
  free(wn);
  return rc;
}

typedef LPWSTR *(WINAPI *mb__cmdline_to_argv_fn)(LPCWSTR, int *);

/* The arguments of GetCommandLineW, split by CommandLineToArgvW and made UTF-8: the pointer
 * array and the strings in one block, kept for the life of the process. */
int mb_os_utf8_argv(int *argc, char ***argv) {
  HMODULE shell = LoadLibraryW(L"shell32.dll");
  mb__cmdline_to_argv_fn split = NULL;
  wchar_t **w = NULL;
  char **out = NULL, *p;
  size_t bytes;
  int n = 0, i, k;
  DWORD e;
  if (shell != NULL)
    split = (mb__cmdline_to_argv_fn)(void (*)(void))GetProcAddress(shell, "CommandLineToArgvW");
  if (split == NULL || (w = split(GetCommandLineW(), &n)) == NULL || n < 1) {
    e = GetLastError();
    if (w != NULL)
      LocalFree(w);
    if (shell != NULL)
      FreeLibrary(shell);
    return mb__errorf(MB_EOS, (long)e, "split the command line into UTF-8 arguments");
  }
  bytes = (size_t)(n + 1) * sizeof *out;
  for (i = 0; i < n; i++) {
    if ((k = WideCharToMultiByte(CP_UTF8, 0, w[i], -1, NULL, 0, NULL, NULL)) <= 0)
      break;
    bytes += (size_t)k;
  }
  if (i < n || (out = malloc(bytes)) == NULL) {
    e = GetLastError();
    LocalFree(w);
    FreeLibrary(shell);
    return i < n ? mb__errorf(MB_EOS, (long)e, "argument %d is not valid UTF-16", i)
                 : mb__errorf(MB_ENOMEM, 0, "the UTF-8 arguments (%zu bytes)", bytes);
  }
  p = (char *)(out + n + 1);
  for (i = 0; i < n; i++) {
    k = WideCharToMultiByte(CP_UTF8, 0, w[i], -1, p, (int)(bytes - (size_t)(p - (char *)out)), NULL,
                            NULL);
    out[i] = p;
    p += k;
  }
  out[n] = NULL;
  LocalFree(w);
  FreeLibrary(shell);
  *argc = n;
  *argv = out;
  return 0;
}

int mb_os_env_get(const char *name, char *buf, size_t size) {
  wchar_t *wn = NULL, *wv = NULL;
  DWORD n, cap = 256, e;
  int rc = 0;

  if (size > 0)
    buf[0] = '\0';
  if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL)
    return mb__errorf(MB_EINVAL, 0, "environment variable name '%s'", name ? name : "(null)");
  if ((wn = mb__utf8_to_wide(name)) == NULL) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "environment variable %s", name);
  }
  /* The value may change between the two calls: ask again while it grows. */
  for (;;) {
    free(wv);
    if ((wv = malloc(cap * sizeof *wv)) == NULL) {
      rc = mb__errorf(MB_ENOMEM, 0, "environment variable %s", name);
      goto done;
    }
    SetLastError(0);
    n = GetEnvironmentVariableW(wn, wv, cap);
    if (n == 0 && (e = GetLastError()) != 0) {
      rc = e == ERROR_ENVVAR_NOT_FOUND
               ? mb__errorf(MB_ENOENT, 0, "environment variable %s is not set", name)
               : mb__errorf(mb__from_win(e, MB_EOS), (long)e, "read environment variable %s", name);
      goto done;
    }
    if (n < cap)
      break;
    cap = n; /* n counts the terminating NUL when the buffer is too small */
  }
  wv[n] = L'\0';
  if ((rc = mb__wide_to_utf8(wv, buf, size, "environment variable")) != 0) {
    if (size > 0)
      buf[0] = '\0';
    if (rc == MB_ERANGE)
      rc = mb__errorf(MB_ERANGE, 0, "environment variable %s is longer than %zu bytes", name,
                      size > 0 ? size - 1 : 0);
  }
done:
  free(wv);
  free(wn);
  return rc;
}

/*
 * The program's file name in a service's command line (QueryServiceConfigW's binary path):
 * the quoted part when it starts with '"'; else everything up to the first ".exe" that ends
 * the line or is followed by a space (an unquoted path may hold spaces, as Windows itself
 * allows), or up to the first space. *len receives the length of the last component.
 */
static const wchar_t *mb__service_program(const wchar_t *cmd, size_t *len) {
  const wchar_t *start = cmd, *end, *p, *base;
  if (*start == L'"') {
    start++;
    end = wcschr(start, L'"');
    if (end == NULL)
      end = start + wcslen(start);
  } else {
    end = NULL;
    for (p = start; *p != L'\0'; p++)
      if (_wcsnicmp(p, L".exe", 4) == 0 && (p[4] == L'\0' || p[4] == L' ')) {
        end = p + 4;
        break;
      }
    if (end == NULL) {
      end = wcschr(start, L' ');
      if (end == NULL)
        end = start + wcslen(start);
    }
  }
  base = start;
  for (p = start; p < end; p++)
    if (*p == L'\\' || *p == L'/')
      base = p + 1;
  *len = (size_t)(end - base);
  return base;
}

/*
 * The next argument of a command line from *p, Windows argv rules (as the C runtime splits a
 * program's command line): blanks separate arguments, '"' starts and ends quoting, 2n
 * backslashes before '"' are n backslashes and the quote counts, 2n+1 are n backslashes and a
 * literal '"'; other backslashes are literal. Into out (count wide characters, truncated to
 * fit); *p moves past it. 0 when there is no argument left.
 */
static int mb__cmdline_arg(const wchar_t **p, wchar_t *out, size_t count) {
  const wchar_t *s = *p;
  size_t n = 0, bs;
  int quoted = 0;

#define MB__PUT(c)                                                                                 \
  do {                                                                                             \
    if (n + 1 < count)                                                                             \
      out[n++] = (c);                                                                              \
  } while (0)
  while (*s == L' ' || *s == L'\t')
    s++;
  if (*s == L'\0')
    return 0;
  while (*s != L'\0' && (quoted || (*s != L' ' && *s != L'\t'))) {
    if (*s == L'\\') {
      for (bs = 0; *s == L'\\'; s++)
        bs++;
      if (*s == L'"') {
        for (; bs >= 2; bs -= 2)
          MB__PUT(L'\\');
        if (bs == 1) {
          MB__PUT(L'"');
          s++;
        }
      } else {
        for (; bs > 0; bs--)
          MB__PUT(L'\\');
      }
    } else if (*s == L'"') {
      quoted = !quoted;
      s++;
    } else {
      MB__PUT(*s);
      s++;
    }
  }
#undef MB__PUT
  out[n] = L'\0';
  *p = s;
  return 1;
}

/*
 * One service's configuration: 1 if its program is wexe (case-insensitive), with the value of
 * its last -c / --config argument in svc->config ("" if none or too long); 0 if not, or if it
 * cannot be queried.
 */
static int mb__service_runs(SC_HANDLE h, const wchar_t *wexe, mb_os_service_t *svc) {
  QUERY_SERVICE_CONFIGW *cfg = NULL;
  DWORD need = 8192; /* most configurations fit in 8 KiB; a bigger one says what it needs */
  const wchar_t *prog, *p;
  wchar_t *arg = NULL, *val = NULL;
  size_t len, cap;
  int match = 0;

  svc->config[0] = '\0';
  if ((cfg = malloc(need)) != NULL && !QueryServiceConfigW(h, cfg, need, &need)) {
    DWORD e = GetLastError();
    free(cfg);
    cfg = NULL;
    if (e == ERROR_INSUFFICIENT_BUFFER && (cfg = malloc(need)) != NULL &&
        !QueryServiceConfigW(h, cfg, need, &need)) {
      free(cfg);
      cfg = NULL;
    }
  }
  if (cfg == NULL || cfg->lpBinaryPathName == NULL) {
    free(cfg);
    return 0;
  }
  prog = mb__service_program(cfg->lpBinaryPathName, &len);
  match = len == wcslen(wexe) && _wcsnicmp(prog, wexe, len) == 0;
  cap = wcslen(cfg->lpBinaryPathName) + 1;
  if (match && (arg = malloc(cap * sizeof *arg)) != NULL &&
      (val = malloc(cap * sizeof *val)) != NULL) {
    /* The arguments begin after the program (and its closing quote). */
    p = prog + len;
    if (*p == L'"')
      p++;
    while (mb__cmdline_arg(&p, arg, cap)) {
      if (wcscmp(arg, L"-c") != 0 && wcscmp(arg, L"--config") != 0)
        continue;
      if (!mb__cmdline_arg(&p, val, cap))
        break;
      if (mb__wide_to_utf8(val, svc->config, sizeof svc->config, "service config path") != 0)
        svc->config[0] = '\0';
    }
  }
  free(val);
  free(arg);
  free(cfg);
  return match;
}

/* A service's state from QueryServiceStatusEx into svc (status_known 0 if it cannot be read). */
static void mb__service_status(SC_HANDLE h, mb_os_service_t *svc) {
  SERVICE_STATUS_PROCESS st;
  DWORD need = 0;
  svc->state = MB_OS_SVC_OTHER;
  svc->status_known = 0;
  svc->exit_code = svc->service_exit_code = 0;
  if (!QueryServiceStatusEx(h, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof st, &need))
    return;
  svc->status_known = 1;
  svc->exit_code = st.dwWin32ExitCode;
  svc->service_exit_code = st.dwServiceSpecificExitCode;
  switch (st.dwCurrentState) {
  case SERVICE_STOPPED:
    svc->state = MB_OS_SVC_STOPPED;
    break;
  case SERVICE_START_PENDING:
    svc->state = MB_OS_SVC_STARTING;
    break;
  case SERVICE_RUNNING:
    svc->state = MB_OS_SVC_RUNNING;
    break;
  case SERVICE_STOP_PENDING:
    svc->state = MB_OS_SVC_STOPPING;
    break;
  default:
    break;
  }
}

int mb_os_services_list(const char *exe, mb_os_service_t **out, int *count) {
  ENUM_SERVICE_STATUS_PROCESSW *list;
  DWORD cap = 0, need = 0, got = 0, resume = 0, i, e;
  BYTE *mem = NULL;
  wchar_t *wexe;
  SC_HANDLE scm;
  mb_os_service_t *svcs = NULL, one;
  int n = 0, room = 0, rc = 0, rounds;
  BOOL ok;

  *out = NULL;
  *count = 0;
  if ((wexe = mb__utf8_to_wide(exe)) == NULL) {
    e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "program name '%s'", exe);
  }
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE);
  if (scm == NULL) {
    e = GetLastError();
    free(wexe);
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "open the service control manager");
  }
  /* ERROR_MORE_DATA: this batch is in the buffer (maybe none), the resume handle says where
   * the next begins, and `need` how big the buffer should be. */
  for (rounds = 0; rounds < 10000 && rc == 0; rounds++) {
    ok = EnumServicesStatusExW(scm, SC_ENUM_PROCESS_INFO, SERVICE_WIN32, SERVICE_STATE_ALL, mem,
                               cap, &need, &got, &resume, NULL);
    e = ok ? 0 : GetLastError();
    if (!ok && e != ERROR_MORE_DATA) {
      rc = mb__errorf(mb__from_win(e, MB_EOS), (long)e, "list the installed services");
      break;
    }
    list = (ENUM_SERVICE_STATUS_PROCESSW *)mem;
    for (i = 0; i < got && rc == 0; i++) {
      SC_HANDLE h =
          OpenServiceW(scm, list[i].lpServiceName, SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS);
      if (h == NULL)
        h = OpenServiceW(scm, list[i].lpServiceName, SERVICE_QUERY_CONFIG);
      if (h == NULL)
        continue;
      memset(&one, 0, sizeof one);
      if (!mb__service_runs(h, wexe, &one) ||
          mb__wide_to_utf8(list[i].lpServiceName, one.name, sizeof one.name, "service name") != 0) {
        CloseServiceHandle(h);
        continue;
      }
      mb__service_status(h, &one);
      CloseServiceHandle(h);
      if (n == room) {
        int nroom = room ? 2 * room : 8;
        mb_os_service_t *grown = realloc(svcs, (size_t)nroom * sizeof *svcs);
        if (grown == NULL) {
          rc = mb__errorf(MB_ENOMEM, 0, "list the installed services");
          break;
        }
        svcs = grown;
        room = nroom;
      }
      svcs[n++] = one;
    }
    if (ok || rc != 0)
      break;
    if (need > cap) {
      BYTE *nm = realloc(mem, need);
      if (nm == NULL) {
        rc = mb__errorf(MB_ENOMEM, 0, "list the installed services");
        break;
      }
      mem = nm;
      cap = need;
    }
  }
  free(mem);
  free(wexe);
  CloseServiceHandle(scm);
  if (rc != 0) {
    free(svcs);
    return rc;
  }
  *out = svcs;
  *count = n;
  return 0;
}

int mb_os_service_manager(void) {
  return MB_OS_SVCMGR_SCM;
}

/* ---------------------------------------------------------------------------------------- */
/* Control pipe client: the named pipe, overlapped                                            */

int mb_os_objects_list(int kind, const char *prefix, void (*fn)(void *arg, const char *name),
                       void *arg) {
  WIN32_FIND_DATAW fd;
  wchar_t pattern[MAX_PATH + 16];
  HANDLE h;
  DWORD e;
  char name[MB_OS_NAME_MAX + 8];
  size_t plen = strlen(prefix), n;
  int rc;
  if (kind == MB_OS_LIST_SECTIONS)
    return mb__errorf(MB_ENOTSUP, 0, "Windows does not list its section names (open one by name)");
  if (kind == MB_OS_LIST_PIPES) {
    wcscpy(pattern, L"\\\\.\\pipe\\*");
  } else if (kind == MB_OS_LIST_LOCKS) {
    /* "<data>\locks\*": the record path of lock "*" */
    if ((rc = mb__lock_wpath("x", pattern, MAX_PATH + 16)) != 0)
      return rc;
    pattern[wcslen(pattern) - 1] = L'*';
  } else {
    return mb__errorf(MB_EINVAL, 0, "mb_os_objects_list: no kind %d", kind);
  }
  h = FindFirstFileW(pattern, &fd);
  if (h == INVALID_HANDLE_VALUE) {
    e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_NO_MORE_FILES || e == ERROR_PATH_NOT_FOUND)
      return 0;
    if (kind == MB_OS_LIST_PIPES && (e == ERROR_BAD_DEV_TYPE || e == ERROR_INVALID_FUNCTION ||
                                     e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_PARAMETER))
      return mb__errorf(MB_ENOTSUP, (long)e, "this system does not list \\\\.\\pipe\\");
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "list %ls", pattern);
  }
  do {
    if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY && kind == MB_OS_LIST_LOCKS)
      continue;
    if (WideCharToMultiByte(CP_UTF8, 0, fd.cFileName, -1, name, (int)sizeof name, NULL, NULL) <=
            0 ||
        strncmp(name, prefix, plen) != 0 || mb__os_check_name(name, "object", &n) != 0)
      continue;
    fn(arg, name);
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  return 0;
}

int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path) {
  int n = snprintf(buf, size, "\\\\.\\pipe\\membroker-%s", instance);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ENAMETOOLONG, 0, "pipe name for instance '%s' is too long", instance);
  if (is_path)
    *is_path = 0;
  return 0;
}

int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms) {
  wchar_t wname[MB_PIPE_NAME_MAX];
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
  int grace_ms = timeout_ms < 0 ? 0 : timeout_ms < 250 ? timeout_ms : 250;
  uint64_t grace = mb_os_mono_ns() + (uint64_t)grace_ms * 1000000u;
  HANDLE h, ev;
  DWORD e, mode = PIPE_READMODE_BYTE;
  memset(c, 0, sizeof *c);
  c->h = -1;
  if (MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, MB_PIPE_NAME_MAX) == 0)
    return mb__errorf(MB_ENAMETOOLONG, (long)GetLastError(), "pipe name '%s'", name);
  for (;;) {
    /* Not GENERIC_WRITE: it includes FILE_CREATE_PIPE_INSTANCE (FILE_APPEND_DATA), which the
     * pipe's DACL grants only to the broker's user, SYSTEM and Administrators (os.h,
     * mb_os_pipe_secure). FILE_WRITE_ATTRIBUTES is for SetNamedPipeHandleState. */
    h = CreateFileW(wname, GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES, 0, NULL,
                    OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    if (h != INVALID_HANDLE_VALUE)
      break;
    e = GetLastError();
    if (e == ERROR_PIPE_BUSY && mb_os_mono_ns() < deadline) {
      WaitNamedPipeW(wname, 50);
      continue;
    }
    /* Seen under Wine with a busy server: the name is briefly missing while every instance
     * is taken. A pipe that stays missing for the grace period is not there. */
    if ((e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) && mb_os_mono_ns() < grace) {
      Sleep(10);
      continue;
    }
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
      return mb__errorf(MB_ENOTRUNNING, (long)e, "connect to '%s'", name);
    if (e == ERROR_ACCESS_DENIED)
      return mb__errorf(MB_EACCES, (long)e, "connect to '%s'", name);
    if (e == ERROR_PIPE_BUSY)
      return mb__errorf(MB_EBUSY, (long)e, "connect to '%s': every pipe instance is busy", name);
    return mb__errorf(MB_EOS, (long)e, "connect to '%s'", name);
  }
  SetNamedPipeHandleState(h, &mode, NULL, NULL);
  if ((ev = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(MB_EOS, (long)e, "create an event for '%s'", name);
  }
  c->h = (intptr_t)h;
  c->ev = (intptr_t)ev;
  return 0;
}

/* Wait for an overlapped operation; on timeout cancel it and take what it did. */
static int mb__win_finish(mb_pipe_conn_t *c, OVERLAPPED *ov, int ms, DWORD *done) {
  if (WaitForSingleObject(ov->hEvent, ms < 0 ? INFINITE : (DWORD)ms) != WAIT_OBJECT_0) {
    CancelIo((HANDLE)c->h);
    if (GetOverlappedResult((HANDLE)c->h, ov, done, TRUE) && *done > 0)
      return 0;
    return mb__errorf(MB_ETIMEOUT, 0, "no answer from the broker in time");
  }
  if (!GetOverlappedResult((HANDLE)c->h, ov, done, FALSE))
    return -1;
  return 0;
}

int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    OVERLAPPED ov;
    DWORD done = 0, chunk = len > 0x10000000 ? 0x10000000 : (DWORD)len, e;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = (HANDLE)c->ev;
    ResetEvent(ov.hEvent);
    if (!WriteFile((HANDLE)c->h, p, chunk, NULL, &ov) && GetLastError() != ERROR_IO_PENDING) {
      e = GetLastError();
      return mb__errorf(e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE ? MB_EIO : MB_EOS, (long)e,
                        "write to the broker");
    }
    if (!GetOverlappedResult((HANDLE)c->h, &ov, &done, TRUE)) {
      e = GetLastError();
      return mb__errorf(e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE ? MB_EIO : MB_EOS, (long)e,
                        "write to the broker");
    }
    p += done;
    len -= done;
  }
  return 0;
}

int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n) {
  OVERLAPPED ov;
  DWORD done = 0, e;
  int rc;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = (HANDLE)c->ev;
  ResetEvent(ov.hEvent);
  if (size > 0x10000000)
    size = 0x10000000;
  if (!ReadFile((HANDLE)c->h, data, (DWORD)size, NULL, &ov) &&
      (e = GetLastError()) != ERROR_IO_PENDING) {
    if (e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED) {
      *n = 0;
      return 0;
    }
    return mb__errorf(MB_EOS, (long)e, "read from the broker");
  }
  rc = mb__win_finish(c, &ov, mb__os_ms_left(deadline_ns), &done);
  if (rc == -1) {
    e = GetLastError();
    if (e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED) {
      *n = 0;
      return 0;
    }
    return mb__errorf(MB_EOS, (long)e, "read from the broker");
  }
  if (rc != 0)
    return rc;
  *n = done;
  return 0;
}

void mb__pipe_close(mb_pipe_conn_t *c) {
  if (c->h != -1)
    CloseHandle((HANDLE)c->h);
  if (c->ev)
    CloseHandle((HANDLE)c->ev);
  c->h = -1;
  c->ev = 0;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = c->skip = 0;
}

/* Windows has no SIGPIPE: a write to a closed pipe fails with ERROR_NO_DATA. */
void mb_os_ignore_sigpipe(void) {}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

/* A file error as our code: what mb__from_win says, with MB_EIO for the unknown ones. */
static int mb__from_win_io(DWORD e) {
  int rc = mb__from_win(e, MB_ENOMEM);
  return rc == MB_EOS ? MB_EIO : rc;
}

/* A UTF-8 path as a new UTF-16 string in *w (free() it); `what` for the message. */
static int mb__path_wide(const char *path, const char *what, wchar_t **w) {
  if ((*w = mb__utf8_to_wide(path)) == NULL) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_ENOMEM), (long)e, "%s '%s': convert the path", what, path);
  }
  return 0;
}

int mb_os_file_open(const char *path, const char *mode, FILE **f) {
  wchar_t wmode[8], *w;
  FILE *fp;
  size_t i;
  int rc, e;
  for (i = 0; mode[i] != '\0' && i + 1 < sizeof wmode / sizeof wmode[0]; i++)
    wmode[i] = (wchar_t)(unsigned char)mode[i];
  wmode[i] = L'\0';
  if ((rc = mb__path_wide(path, "open", &w)) != 0)
    return rc;
  fp = _wfopen(w, wmode);
  e = errno;
  free(w);
  if (fp == NULL)
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "open '%s'", path);
  *f = fp;
  return 0;
}

int mb_os_file_append(const char *path, FILE **f) {
  BY_HANDLE_FILE_INFORMATION bi;
  wchar_t *w;
  HANDLE h;
  FILE *fp;
  DWORD e;
  int rc, fd;
  if ((rc = mb__path_wide(path, "open", &w)) != 0)
    return rc;
  /* The reparse point itself, not what it names: then its attributes say what it is. */
  h = CreateFileW(w, FILE_APPEND_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
                  FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_ALWAYS,
                  FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return mb__errorf(mb__from_win_io(e), (long)e, "open '%s'", path);
  if (!GetFileInformationByHandle(h, &bi)) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(mb__from_win_io(e), (long)e, "open '%s'", path);
  }
  if ((bi.dwFileAttributes & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY)) ||
      bi.nNumberOfLinks > 1) {
    CloseHandle(h);
    return mb__errorf(MB_EACCES, 0,
                      "open '%s': it is a link (a reparse point or a file with other names: "
                      "hard links) or a folder, which a log is not written through",
                      path);
  }
  if ((fd = _open_osfhandle((intptr_t)h, _O_APPEND | _O_TEXT)) < 0) {
    CloseHandle(h);
    return mb__errorf(MB_ENOMEM, 0, "open '%s'", path);
  }
  if ((fp = _fdopen(fd, "a")) == NULL) {
    int ce = errno;
    _close(fd);
    return mb__errorf(mb__os_from_errno(ce, MB_EIO), ce, "open '%s'", path);
  }
  *f = fp;
  return 0;
}

int mb_os_file_sync(FILE *f) {
  HANDLE h;
  if (fflush(f) != 0) {
    int e = errno;
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "write a file");
  }
  h = (HANDLE)_get_osfhandle(_fileno(f));
  if (h == INVALID_HANDLE_VALUE || !FlushFileBuffers(h)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win_io(e), (long)e, "sync a file to disk");
  }
  return 0;
}

int mb_os_file_replace(const char *from, const char *to) {
  wchar_t *wf, *wt;
  DWORD e = 0;
  int rc;
  if (mb__os_injected_rename_failure())
    return mb__errorf(MB_EBUSY, 0, "rename '%s' to '%s' (injected failure)", from, to);
  if ((rc = mb__path_wide(from, "rename", &wf)) != 0)
    return rc;
  if ((rc = mb__path_wide(to, "rename", &wt)) != 0) {
    free(wf);
    return rc;
  }
  if (!MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    e = GetLastError();
  free(wf);
  free(wt);
  if (e != 0)
    return mb__errorf(mb__from_win_io(e), (long)e, "rename '%s' to '%s'", from, to);
  return 0;
}

int mb_os_file_remove(const char *path) {
  wchar_t *w;
  DWORD e = 0;
  int rc;
  if ((rc = mb__path_wide(path, "remove", &w)) != 0)
    return rc;
  if (!DeleteFileW(w))
    e = GetLastError();
  free(w);
  if (e != 0)
    return mb__errorf(mb__from_win_io(e), (long)e, "remove '%s'", path);
  return 0;
}

int mb_os_dir_create(const char *path) {
  wchar_t *w;
  DWORD e = 0, attr = 0;
  int rc;
  if ((rc = mb__path_wide(path, "create directory", &w)) != 0)
    return rc;
  if (!CreateDirectoryW(w, NULL)) {
    e = GetLastError();
    attr = GetFileAttributesW(w);
  }
  free(w);
  if (e == 0 || (e == ERROR_ALREADY_EXISTS && attr != INVALID_FILE_ATTRIBUTES &&
                 (attr & FILE_ATTRIBUTE_DIRECTORY)))
    return 0;
  return mb__errorf(mb__from_win_io(e), (long)e, "create directory '%s'", path);
}

int mb_os_path_kind(const char *path, int follow, mb_os_path_kind_t *kind) {
  wchar_t *w;
  DWORD attr, e = 0;
  int rc;
  *kind = MB_OS_PATH_NONE;
  if ((rc = mb__path_wide(path, "stat", &w)) != 0)
    return rc;
  attr = GetFileAttributesW(w);
  if (attr == INVALID_FILE_ATTRIBUTES)
    e = GetLastError();
  if (e == 0 && follow && (attr & FILE_ATTRIBUTE_REPARSE_POINT)) {
    /* The target's attributes: open it (no access needed) and ask the handle. */
    HANDLE h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    BY_HANDLE_FILE_INFORMATION info;
    if (h == INVALID_HANDLE_VALUE) {
      e = GetLastError();
    } else {
      if (GetFileInformationByHandle(h, &info))
        attr = info.dwFileAttributes & ~(DWORD)FILE_ATTRIBUTE_REPARSE_POINT;
      else
        e = GetLastError();
      CloseHandle(h);
    }
  }
  free(w);
  if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND || e == ERROR_INVALID_NAME ||
      e == ERROR_BAD_NETPATH || e == ERROR_DIRECTORY)
    return 0;
  if (e != 0)
    return mb__errorf(mb__from_win_io(e), (long)e, "stat '%s'", path);
  if (!follow && (attr & FILE_ATTRIBUTE_REPARSE_POINT))
    *kind = MB_OS_PATH_LINK;
  else if (attr & FILE_ATTRIBUTE_DIRECTORY)
    *kind = MB_OS_PATH_DIR;
  else if (attr & FILE_ATTRIBUTE_DEVICE)
    *kind = MB_OS_PATH_OTHER;
  else
    *kind = MB_OS_PATH_FILE;
  return 0;
}

int mb_os_path_writable(const char *path) {
  wchar_t *w;
  int rc, e = 0;
  if ((rc = mb__path_wide(path, "write", &w)) != 0)
    return rc;
  if (_waccess(w, 2) != 0)
    e = errno;
  free(w);
  if (e != 0)
    return mb__errorf(mb__os_from_errno(e, MB_EACCES), e, "write '%s'", path);
  return 0;
}

int mb_os_group_exists(const char *name) {
  unsigned char sid[SECURITY_MAX_SID_SIZE];
  int rc;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "no group name");
  if ((rc = mb__account_sid(name, (PSID)sid, "")) == 0)
    return 0;
  if (mb_last_os_error() == ERROR_NONE_MAPPED)
    return mb__errorf(MB_ENOENT, ERROR_NONE_MAPPED, "group '%s' does not exist", name);
  return rc;
}

int mb_os_group_may_give(const char *name) {
  return mb_os_group_exists(name); /* an ACL may name any account that exists */
}

int mb_os_dir_remove(const char *path) {
  wchar_t *w;
  DWORD e = 0;
  int rc;
  if ((rc = mb__path_wide(path, "remove directory", &w)) != 0)
    return rc;
  if (!RemoveDirectoryW(w))
    e = GetLastError();
  free(w);
  if (e != 0)
    return mb__errorf(mb__from_win_io(e), (long)e, "remove directory '%s'", path);
  return 0;
}

void mb_os_file_discard(const char *path) {
  DWORD e = GetLastError();
  int ce = errno;
  wchar_t *w = mb__utf8_to_wide(path);
  if (w != NULL)
    DeleteFileW(w);
  free(w);
  errno = ce;
  SetLastError(e);
}

int mb_os_file_create(const char *path, FILE **f) {
  return mb_os_file_open(path, "wb", f);
}

int mb_os_file_tell(FILE *f, uint64_t *pos) {
  __int64 o = _ftelli64(f);
  if (o < 0) {
    int e = errno;
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "find the position in a file");
  }
  *pos = (uint64_t)o;
  return 0;
}

int mb_os_file_seek(FILE *f, uint64_t pos) {
  if (pos > (uint64_t)INT64_MAX)
    return mb__errorf(MB_EINVAL, 0, "move to byte %llu of a file", (unsigned long long)pos);
  if (_fseeki64(f, (__int64)pos, SEEK_SET) != 0) {
    int e = errno;
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "move to byte %llu of a file",
                      (unsigned long long)pos);
  }
  return 0;
}

int mb_os_file_seek_end(FILE *f, uint64_t *size) {
  __int64 o;
  if (_fseeki64(f, 0, SEEK_END) != 0 || (o = _ftelli64(f)) < 0) {
    int e = errno;
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "move to the end of a file");
  }
  if (size != NULL)
    *size = (uint64_t)o;
  return 0;
}

int mb_os_read_file(const char *path, uint64_t max, char **data, size_t *len) {
  BY_HANDLE_FILE_INFORMATION bi;
  LARGE_INTEGER sz;
  wchar_t *w;
  HANDLE h;
  DWORD e, type;
  char *buf;
  size_t size, got = 0;
  int rc;
  if ((rc = mb__path_wide(path, "open", &w)) != 0)
    return rc;
  /* FILE_FLAG_BACKUP_SEMANTICS opens a directory too, so it is named as one below. A pipe
   * or device opens without waiting and is refused by its type. */
  h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return mb__errorf(mb__from_win_io(e), (long)e, "open '%s'", path);
  type = GetFileType(h);
  if (type != FILE_TYPE_DISK) {
    CloseHandle(h);
    return mb__errorf(MB_EINVAL, 0, "read '%s': it is %s, not a regular file", path,
                      type == FILE_TYPE_PIPE ? "a pipe" : "a device");
  }
  if (!GetFileInformationByHandle(h, &bi) || !GetFileSizeEx(h, &sz)) {
    e = GetLastError();
    CloseHandle(h);
    return mb__errorf(mb__from_win_io(e), (long)e, "stat '%s'", path);
  }
  if (bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
    CloseHandle(h);
    return mb__errorf(MB_EINVAL, 0, "read '%s': it is a directory, not a regular file", path);
  }
  if ((rc = mb__os_read_buffer(path, (uint64_t)sz.QuadPart, max, &buf)) != 0) {
    CloseHandle(h);
    return rc;
  }
  size = (size_t)sz.QuadPart;
  while (got < size) {
    DWORD n = 0, want = size - got > (1u << 30) ? (1u << 30) : (DWORD)(size - got);
    if (!ReadFile(h, buf + got, want, &n, NULL)) {
      e = GetLastError();
      free(buf);
      CloseHandle(h);
      return mb__errorf(mb__from_win_io(e), (long)e, "read '%s'", path);
    }
    if (n == 0)
      break; /* it shrank */
    got += n;
  }
  CloseHandle(h);
  buf[got] = '\0';
  *data = buf;
  *len = got;
  return 0;
}

const char *mb_os_error_text(long os_code, char *buf, size_t size) {
  wchar_t wbuf[512];
  DWORD n;
  int k;
  if (size == 0)
    return buf;
  if (os_code == 0) { /* no OS error: not "The operation completed successfully" */
    snprintf(buf, size, "os error 0");
    return buf;
  }
  n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                     (DWORD)os_code, 0, wbuf, sizeof wbuf / sizeof wbuf[0], NULL);
  while (n > 0 && (wbuf[n - 1] == L'\r' || wbuf[n - 1] == L'\n' || wbuf[n - 1] == L' ' ||
                   wbuf[n - 1] == L'.'))
    n--;
  if (n == 0 ||
      (k = WideCharToMultiByte(CP_UTF8, 0, wbuf, (int)n, buf, (int)size - 1, NULL, NULL)) <= 0) {
    snprintf(buf, size, "os error %ld", os_code);
    return buf;
  }
  buf[k] = '\0';
  return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Clocks, memory status                                                                      */

/*
 * QueryPerformanceCounter in nanoseconds. counter * 1e9 would overflow after ~15 minutes at
 * 10 MHz, so whole seconds and the remainder are converted apart; the remainder is below the
 * frequency, so remainder * 1e9 fits in 64 bits for any frequency below 18 GHz.
 */
uint64_t mb_os_mono_ns(void) {
  LARGE_INTEGER now;
  uint64_t freq, c;
  mb__init();
  QueryPerformanceCounter(&now);
  freq = (uint64_t)mb__qpc_freq.QuadPart;
  c = (uint64_t)now.QuadPart;
  return (c / freq) * 1000000000u + (c % freq) * 1000000000u / freq;
}

uint64_t mb_os_wall_ns(void) {
  FILETIME ft;
  uint64_t t;
  mb__init();
  mb__wall_fn(&ft);
  t = mb__filetime_u64(&ft);
  return t < MB__EPOCH_DIFF_100NS ? 0 : (t - MB__EPOCH_DIFF_100NS) * 100u;
}

void mb_os_time_split(uint64_t wall_ns, int local, mb_os_tm_t *tm) {
  __time64_t secs = (__time64_t)(wall_ns / 1000000000u);
  struct tm t;
  int ok = (local ? _localtime64_s(&t, &secs) : _gmtime64_s(&t, &secs)) == 0;
  mb__os_tm_fill(ok ? &t : NULL, wall_ns, tm);
}

void mb_os_yield(void) {
  (void)SwitchToThread();
}

/*
 * Sleep() may wake a little early (before the next timer tick): sleep again for the rest.
 * Each Sleep stays below INFINITE, which would never return.
 */
void mb_os_sleep_ms(unsigned ms) {
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)ms * 1000000u, now;
  while ((now = mb_os_mono_ns()) < deadline) {
    uint64_t left = (deadline - now + 999999u) / 1000000u;
    Sleep(left >= INFINITE ? INFINITE - 1 : (DWORD)left);
  }
}

int mb_os_memstatus(mb_os_memstatus_t *st) {
  MEMORYSTATUSEX ms;
  ms.dwLength = sizeof ms;
  if (!GlobalMemoryStatusEx(&ms)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "query memory status");
  }
  st->total = ms.ullTotalPhys;
  st->available = ms.ullAvailPhys;
  return 0;
}

int mb_os_commit_caps(mb_os_commit_caps_t *caps) {
  MEMORYSTATUSEX ms;
  memset(caps, 0, sizeof *caps);
  caps->commit_limit = caps->section_space = UINT64_MAX;
  ms.dwLength = sizeof ms;
  if (!GlobalMemoryStatusEx(&ms)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "query memory status");
  }
  caps->physical = ms.ullTotalPhys;
  if (ms.ullTotalPageFile != 0) {
    caps->commit_limit = ms.ullTotalPageFile;
    snprintf(caps->commit_what, sizeof caps->commit_what,
             "the commit limit (physical memory and page files)");
  }
  return 0;
}

int mb_os_self_rss(uint64_t *rss) {
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) {
    DWORD e = GetLastError();
    return mb__errorf(mb__from_win(e, MB_EOS), (long)e, "query working set");
  }
  *rss = pmc.WorkingSetSize;
  return 0;
}

#endif /* MB_OS_WIN */
