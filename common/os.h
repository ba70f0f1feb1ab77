/*
 * os.h - the platform layer: every operating-system primitive the broker, the client
 * library, mbctl, the tools and the tests use. One implementation per OS: os_win32.c (Win32
 * API) and os_posix.c (Linux); each is wrapped whole in #if MB_OS_WIN / #if MB_OS_POSIX.
 * os_common.c holds what both share without calling the OS. Outside these files (and the
 * service glue, service/svc_*.c) nothing calls the OS or includes its headers:
 * scripts/check-layers.sh fails the build when something does (README, "Layering").
 *
 * Common contract, unless a function says otherwise:
 *  - returns 0 on success or a negative MB_E* code (error.h) and leaves a detail message
 *    with the raw OS error for this thread (mb_last_error());
 *  - never prints, never aborts, never leaves a half-done object behind on failure (an out
 *    parameter is only written on success);
 *  - sizes and offsets of memory calls must be multiples of the page size, and addresses
 *    page-aligned, or the call fails with MB_EINVAL.
 *
 * Portable code branches on the capabilities in mb_os_mem_config_t, never on the OS.
 */
#ifndef MB_OS_H
#define MB_OS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "os_setup.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Memory configuration                                                                       */

typedef struct mb_os_mem_config_s {
  size_t page_size;         /* commit granularity (4096 on x86-64) */
  size_t alloc_granularity; /* reservation and view alignment (64 KiB on Windows) */
  /* 1 if mb_os_section_decommit() gives pages of a shared section back to the OS. */
  int shared_decommit;
  /* 1 if a named section outlives the processes that hold it until it is unlinked (POSIX
   * shared memory); 0 if it vanishes with its last handle (Windows). */
  int names_persist;
  /* 1 if each view of a reserve-then-commit section must commit pages itself before it
   * touches them, even pages another view committed (Windows: VirtualAlloc per view); 0 if
   * a page committed through one view is usable through all (POSIX). */
  int view_commit;
  /* 1 if named sections live in one of two namespaces that MB_OS_SEC_GLOBAL chooses between
   * (Windows: Global\ for a service, Local\ for a session); 0 if there is one namespace and
   * the flag is ignored (POSIX). */
  int sec_namespaces;
  /* The large page size (Windows: GetLargePageMinimum; Linux: the default huge page size), 0 if
   * none. Whether this process can have them is mb_os_large_pages's answer. */
  size_t large_page_size;
} mb_os_mem_config_t;

/* The machine's memory configuration, computed once; never fails. */
const mb_os_mem_config_t *mb_os_mem_config(void);

/* ------------------------------------------------------------------------------------------ */
/* Private virtual memory                                                                     */

/*
 * Reserve size bytes of address space, not accessible and not charged against the commit
 * limit. *addr receives an address aligned to alloc_granularity. size > 0.
 */
int mb_os_reserve(size_t size, void **addr);

/*
 * Commit [addr, addr+size) inside a reservation: the pages become readable and writable,
 * read as zero on first use, and are charged against the commit limit now (MB_ENOSPC if the
 * OS refuses). Committing a range that is not inside a reservation fails with MB_ERANGE.
 * Committing already committed pages is allowed and keeps their contents.
 */
int mb_os_commit(void *addr, size_t size);

/*
 * Decommit [addr, addr+size): the pages go back to the OS and become inaccessible; the
 * range stays reserved. A later commit gives zero pages.
 */
int mb_os_decommit(void *addr, size_t size);

/* Release a whole reservation made by mb_os_reserve (addr and size as returned / given). */
int mb_os_release(void *addr, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Named shared sections                                                                      */

/*
 * Names are portable: 1..MB_OS_NAME_MAX characters from [A-Za-z0-9._-], e.g.
 * "membroker.default.state". The layer maps them to "/<name>" (POSIX shared memory) or
 * "Local\<name>" / "Global\<name>" (MB_OS_SEC_GLOBAL) on Windows. A longer name fails with
 * MB_ENAMETOOLONG, an invalid character with MB_EINVAL.
 */
#define MB_OS_NAME_MAX 120

enum {
  /* Reserve-then-commit: the section's pages are charged and usable only once committed with
   * mb_os_section_commit (SEC_RESERVE on Windows; a sparse shared-memory object on Linux).
   * Without it every page is committed at creation. */
  MB_OS_SEC_RESERVE = 1 << 0,
  /* Windows: create / open in the Global\ namespace (a service); ignored elsewhere. */
  MB_OS_SEC_GLOBAL = 1 << 1,
  /* Large pages (mb_os_large_pages): the section is backed by large pages and committed whole
   * at creation (never with MB_OS_SEC_RESERVE). Windows: SEC_LARGE_PAGES, views mapped with
   * FILE_MAP_LARGE_PAGES; Linux: a file of that name on a hugetlbfs mount instead of a POSIX
   * shared-memory object. Every process opens, maps and unlinks such a section with the flag:
   * it names another object on Linux. */
  MB_OS_SEC_LARGE_PAGES = 1 << 2,
};

/*
 * Who may open a section (or connect to a pipe). Portable form of a security descriptor:
 *  - mode: POSIX permission bits for owner/group/other (only the 0666 bits matter). On
 *    Windows: the owner, SYSTEM and Administrators always get full access; group bits grant
 *    read/write to `group` (if set); other bits grant read/write to Authenticated Users.
 *  - group: a group name (POSIX group / Windows account name) or NULL for the caller's
 *    primary group (POSIX) / none (Windows).
 * A NULL mb_os_access_t* means { 0600, NULL }: the creating user (and SYSTEM/Administrators on
 * Windows) only.
 */
typedef struct mb_os_access_s {
  uint32_t mode;
  const char *group;
} mb_os_access_t;

/* An open section. Treat as opaque; `size` is the section's size in bytes. */
typedef struct mb_os_section_s {
  intptr_t handle; /* HANDLE or file descriptor; -1 once closed (0 is treated as closed too) */
  uint64_t size;
  int flags; /* MB_OS_SEC_* it was created or opened with */
  char name[MB_OS_NAME_MAX + 1];
} mb_os_section_t;

/*
 * Create the named section `name` of `size` bytes (> 0, multiple of the page size - of the
 * large page size with MB_OS_SEC_LARGE_PAGES, else MB_EINVAL) with the given access. Fails with
 * MB_EEXIST if an object with that name already exists (a stale one must be unlinked first - see
 * mb_os_section_unlink), MB_EACCES if not permitted, MB_ENOSPC if the OS cannot charge a fully
 * committed section. Pages read as zero.
 */
int mb_os_section_create(mb_os_section_t *sec, const char *name, uint64_t size, int flags,
                         const mb_os_access_t *access);

/*
 * What large pages this process could have for a section created with MB_OS_SEC_LARGE_PAGES:
 * *page_size receives the large page size (0 if the OS has none). Returns 0 if a creation may
 * succeed, or why it cannot, with a message saying so for an operator (the log's fallback
 * warning): MB_ENOTSUP no large pages here (Linux: no hugetlbfs mount found - MEMBROKER_HUGETLBFS
 * names one, else the first hugetlbfs mount of the default huge page size in /proc/mounts;
 * Windows: GetLargePageMinimum() is 0), MB_EACCES the privilege is missing (Windows:
 * SeLockMemoryPrivilege, which it tries to enable in the process token first), MB_ENOSPC none
 * free (Linux: HugePages_Free; vm.nr_hugepages reserves them). A 0 is a hint, not a promise: the
 * creation itself can still fail with MB_ENOSPC.
 */
int mb_os_large_pages(size_t *page_size);

/*
 * The directory of the hugetlbfs mount large-page sections live in (Linux; see
 * mb_os_large_pages), NUL-terminated into buf. MB_ENOTSUP where there is none (and always on
 * Windows), MB_ERANGE if it does not fit.
 */
int mb_os_hugetlbfs_dir(char *buf, size_t size);

/*
 * Remove every large-page section whose name starts with `prefix` (a dead broker's regions:
 * "membroker.<instance>.region."). Linux: the files of that prefix in the directory
 * mb_os_hugetlbfs_dir finds; their huge pages return to the free pool once no process maps them
 * any more. *removed receives how many were removed; dir (may be NULL) receives the directory
 * looked at ("" if none). Returns 0 also when there is no hugetlbfs mount (nothing to remove
 * there), MB_EOS (with the path) if a file cannot be removed. Windows: 0 with *removed 0 (a
 * large-page section dies with its last handle, as every section does).
 */
int mb_os_large_purge(const char *prefix, unsigned *removed, char *dir, size_t dir_size);

/*
 * Open an existing named section. flags: MB_OS_SEC_GLOBAL (Windows namespace) and
 * MB_OS_SEC_RESERVE if the caller knows it was created reserve-then-commit (needed on Windows
 * to know pages must be committed per view; harmless elsewhere). writable: 0 = read-only.
 * MB_ENOENT if it does not exist, MB_EACCES if not permitted. sec->size is the section size.
 */
int mb_os_section_open(mb_os_section_t *sec, const char *name, int flags, int writable);

/*
 * Map the first `size` bytes of the section (size 0 = the whole section) into this process.
 * *addr receives the view. size larger than the section fails with MB_ERANGE. writable must
 * not exceed what the section was opened with (MB_EACCES).
 */
int mb_os_section_map(const mb_os_section_t *sec, uint64_t size, int writable, void **addr);

/* Unmap a view made by mb_os_section_map (addr and the mapped size). */
int mb_os_section_unmap(void *addr, uint64_t size);

/*
 * Commit [offset, offset+len) of a reserve-then-commit section, mapped writable at `view`
 * (the address mb_os_section_map returned). After success the pages are charged and read as
 * zero until written; they are usable through this view at once. A process that touches
 * pages another process committed calls mb_os_section_commit on its own view first: that is
 * idempotent, cheap and never charges twice. MB_ENOSPC if the OS refuses (commit limit, full
 * /dev/shm), so a first touch can never fault. MB_ERANGE if outside the section. On a fully
 * committed section: no-op.
 */
int mb_os_section_commit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len);

/*
 * Give [offset, offset+len) of a section back to the OS (contents become zero). MB_ENOTSUP
 * where mem_config()->shared_decommit is 0.
 */
int mb_os_section_decommit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len);

/*
 * Bytes of the section that are committed (charged), exactly, in pages. `view` is a view of
 * the whole section (needed on Windows, ignored on Linux).
 */
int mb_os_section_committed(const mb_os_section_t *sec, void *view, uint64_t *bytes);

/*
 * Make the pages of [addr, addr+size) of a view mapped writable present in this process at
 * once, as writing them would (Linux: madvise MADV_POPULATE_WRITE, 5.14 and later), so that
 * filling them next takes no page fault per page: a bulk fault-in, about half the cost of
 * first touches one page at a time. addr is page-aligned; size is rounded up to pages. Best
 * effort: MB_ENOTSUP where the OS has no such call (older kernels; Windows, where the view's
 * pages are committed with the section and first touch maps them), and MB_ENOSPC when the
 * memory cannot be had; the view is then as it was and first touch still works. Never
 * changes the contents.
 */
int mb_os_populate_write(void *addr, uint64_t size);

/*
 * Write data[0..len) into the section at `offset` through its handle, not through a view
 * (POSIX: pwrite on the shared-memory descriptor). Filling a fresh section this way takes no
 * page fault and Linux's tmpfs does not zero a page the write covers whole: measured here,
 * ~30% less than reading the same bytes into a mapped view, populated or not. Views of the
 * section see the bytes at once. MB_ERANGE outside the section, MB_ENOSPC when the memory
 * cannot be had. MB_ENOTSUP where a section has no such write (Windows: fill a view), also
 * for len 0, so a caller can ask once whether to use it: len 0 gives 0 where it works.
 */
int mb_os_section_write(const mb_os_section_t *sec, uint64_t offset, const void *data, size_t len);

/* Page faults this process has taken so far (POSIX: getrusage minor + major; Windows:
 * GetProcessMemoryInfo's PageFaultCount, soft and hard). 0 where the OS cannot say. For
 * benchmarks: the difference across an operation is what it faulted. */
uint64_t mb_os_page_faults(void);

/* Close the section handle (views stay valid until unmapped). Safe on a closed section. */
void mb_os_section_close(mb_os_section_t *sec);

/*
 * Remove the name so a new section can be created under it. POSIX: shm_unlink (mappings
 * that exist stay valid). Windows: names vanish with the last handle, so this is a no-op that
 * returns 0. MB_ENOENT if there is nothing to remove (POSIX).
 */
int mb_os_section_unlink(const char *name, int flags);

/*
 * The name the OS knows the section `name` by, for messages, NUL-terminated into buf:
 * "Global\<name>" or "Local\<name>" (MB_OS_SEC_GLOBAL) on Windows, "/<name>" on POSIX. The
 * name is checked as for mb_os_section_open (MB_EINVAL, MB_ENAMETOOLONG); MB_ERANGE if it
 * does not fit in size bytes. Never touches the object.
 */
int mb_os_section_os_name(const char *name, int flags, char *buf, size_t size);

/*
 * The single-instance lock. One lock per name on the whole machine, whatever namespace the
 * taker publishes its sections in: Windows: a named mutex, always in Global\ (creating a mutex
 * there needs no privilege), so a console broker and a service see each other; POSIX: flock()
 * on /dev/shm/<name>, beside the shared objects it guards whoever runs the broker (a systemd
 * service and a user's console broker have different runtime directories), a file removed
 * again on release (a crashed holder leaves it; the next taker reuses it); something there
 * that is not a regular file (a planted FIFO) is refused with MB_EEXIST, never waited on.
 *
 * Its holder records who it is right after taking it, in the lock's record file
 * (mb_os_lock_path): one line "<pid> <start time> <service|console>" (mb_os_procid_t and the
 * mode from MB_OS_LOCK_SERVICE). POSIX: the flock'd file itself. Windows: a file in
 * %ProgramData%\membroker\locks\ (the folders prepared as mb_os_data_dir_prepare says; a
 * service also sets their DACL, a console user only checks them; a service and any console
 * user can read the records), opened delete-on-close and held open, so it goes with its
 * holder, even a crashed one; a file already under that name is deleted first and the record
 * created anew (never truncated, so a planted hard link is not followed).
 * Writing the record is best-effort: a lock whose record cannot be written is still held.
 * Windows: lock names differ only in case name one lock (the mutex's name is case-folded).
 */
enum {
  /* mb_os_lock_take: the taker is a service (recorded for whoever finds the lock held). */
  MB_OS_LOCK_SERVICE = 1 << 4,
};

/*
 * Take the single-instance lock `name` (a portable name as for sections), held until
 * mb_os_lock_release or until the process dies, whichever comes first - a crashed broker
 * never leaves it behind. flags: MB_OS_LOCK_SERVICE (else the holder is a console process);
 * MB_OS_SEC_GLOBAL is accepted and ignored (the lock is machine-wide). MB_EBUSY if another
 * live process holds it - on Windows also when it is held by another user's process, whose
 * mutex this user may not open - with a detail message that names the holder as
 * mb_os_lock_holder describes it: "lock 'NAME' is held by another process (pid 1234, Windows
 * service)".
 */
int mb_os_lock_take(const char *name, int flags, intptr_t *lock);

/* Release a lock taken with mb_os_lock_take (its record file goes first, then the lock). */
void mb_os_lock_release(intptr_t lock);

/* Who holds a single-instance lock, as its record says (mb_os_lock_holder). */
typedef struct mb_os_lock_holder_s {
  uint32_t pid; /* 0 when no believable record exists */
  int service;  /* 1 a service (MB_OS_LOCK_SERVICE), 0 a console process; 0 when pid is 0 */
  /* For messages: "pid 1234, Windows service" / "pid 99, service" (POSIX) / "pid 99, console",
   * or "starting; it has not said who it is yet" when pid is 0. */
  char what[64];
} mb_os_lock_holder_t;

/*
 * Read the record of lock `name` into *holder. It is believed only if it parses and the
 * process it names runs with that very start time (mb_os_proc_alive; a pid whose liveness the
 * OS will not tell counts as running): a record of a dead or reused pid - left by a crashed
 * holder for the next one to overwrite - is not. Returns 0 with holder->pid set, or MB_ENOENT
 * with holder->pid == 0 and holder->what saying "starting" when there is no believable record
 * (the holder has not written it yet, or nobody holds the lock). Never fails otherwise.
 */
int mb_os_lock_holder(const char *name, mb_os_lock_holder_t *holder);

/*
 * The path of lock `name`'s record file into buf (NUL-terminated), for diagnostics and tests:
 * POSIX /dev/shm/<name>; Windows %ProgramData%\membroker\locks\<name>. MB_ERANGE if it does
 * not fit, and the errors of finding %ProgramData%.
 */
int mb_os_lock_path(const char *name, char *buf, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Control pipe client (mbctl, the tests)                                                     */

/*
 * A blocking client of the control pipe, used by mbctl and the tests: the pipe's name for an
 * instance, a connection with a deadline on reads and a line reader. POSIX: a Unix stream
 * socket; reads wait with poll(); writes use MSG_NOSIGNAL, so a broker that went away is an
 * error, not a SIGPIPE. Windows: the named pipe opened with CreateFileW in overlapped mode, so
 * a read can wait with a deadline. The line buffering is portable (os_common.c).
 */
#define MB_PIPE_NAME_MAX 256

/*
 * The control pipe's name for `instance`: POSIX "<runtime dir>/membroker-<instance>.sock"
 * (mb_os_runtime_dir, created if missing), Windows "\\.\pipe\membroker-<instance>".
 * *is_path (may be NULL) receives 1 when the name is a file system path (a stale socket file
 * can be removed and its mode set), 0 for a name in the pipe namespace. MB_ENAMETOOLONG if
 * the name does not fit in `size` or in the OS limit (108 bytes for a Unix socket).
 */
int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path);

/* A blocking client connection with a receive buffer for whole lines. */
typedef struct mb_pipe_conn_s {
  intptr_t h;  /* socket fd or pipe HANDLE; -1 when closed */
  intptr_t ev; /* Windows: event for overlapped I/O */
  char *buf;   /* received bytes not yet returned as lines */
  size_t len, cap;
  size_t skip; /* bytes of the line last returned, dropped at the next read */
} mb_pipe_conn_t;

/*
 * Connect to the pipe `name` (from mb__pipe_name). MB_ENOTRUNNING when nobody listens (no
 * pipe, or a socket file left by a dead broker), MB_EACCES when this user may not connect,
 * MB_EBUSY when Windows offers no free pipe instance within timeout_ms.
 */
int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms);

/* Write all `len` bytes. MB_EIO when the broker closed the connection. */
int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len);

/*
 * Read what arrives, at most `size` bytes, waiting until deadline_ns (an mb_os_mono_ns()
 * value; 0 waits forever). *n receives the byte count; 0 means the broker closed the
 * connection. MB_ETIMEOUT when nothing came in time.
 */
int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n);

/*
 * Read one line (without its "\n") into *line, a NUL-terminated buffer owned by `c` and
 * valid until the next call; *len receives its length. MB_ETIMEOUT at the deadline,
 * MB_EIO when the connection ends before a whole line, MB_ERANGE past max bytes.
 * Portable (os_common.c), on top of mb__pipe_read.
 */
int mb__pipe_read_line(mb_pipe_conn_t *c, char **line, size_t *len, size_t max,
                       uint64_t deadline_ns);

/* Close the connection (safe on a closed one) and free its buffer. */
void mb__pipe_close(mb_pipe_conn_t *c);

/*
 * Whether the peer of the accepted connection `fd` (uv_fileno of a libuv pipe) is an
 * administrator: mb_os_pipe_peer_admin below. POSIX: SO_PEERCRED uid is 0 or the broker's
 * effective uid; *uid receives the peer's uid. Windows: the client process's token is
 * LocalSystem, an enabled Administrators member or the broker's user; *uid is -1.
 */
int mb__pipe_peer_admin(intptr_t fd, long *uid);

/*
 * The most descriptors this process may have open: POSIX, RLIMIT_NOFILE's soft limit (a
 * descriptor numbered at or above it cannot exist). 0 when there is no such per-process
 * limit to watch (Windows: handles are limited by memory; RLIM_INFINITY). Never fails.
 */
uint64_t mb_os_fd_limit(void);

/*
 * Give the allocator's free memory back to the OS, after a burst of allocations was freed
 * (the control pipe after a flood of clients leaves). glibc: malloc_trim(0) (free pages in
 * every arena, not just the top); Windows: HeapCompact on the process heap; elsewhere
 * nothing. Costs a walk of the heap (milliseconds for hundreds of MiB): call it after a
 * sharp drop, not routinely. Never fails, never frees memory still in use.
 */
void mb_os_heap_trim(void);

/* Internal, for the OS files (os_common.c): milliseconds left until deadline_ns (an
 * mb_os_mono_ns value; 0 means forever: -1), 0 once it has passed, capped at INT_MAX. */
int mb__os_ms_left(uint64_t deadline_ns);

/*
 * A server that writes to sockets: make a write to a connection the peer closed fail with an
 * error (EPIPE) instead of ending the process with SIGPIPE. POSIX: SIGPIPE is ignored,
 * process-wide; Windows: nothing to do (no such signal). Never fails.
 */
void mb_os_ignore_sigpipe(void);

/* ------------------------------------------------------------------------------------------ */
/* Control pipe security                                                                      */

/*
 * Restrict who may use the control pipe, after it is bound and before it listens. `handle`
 * is the bound server pipe (uv_fileno: the first instance's HANDLE on Windows, unused on
 * POSIX); `path` is the socket file (POSIX; ignored on Windows). `access` as for sections
 * (NULL = { 0600, NULL }), except:
 *  - Windows: the pipe gets an explicit protected DACL: the broker's user, SYSTEM and
 *    Administrators get full access; group (0060) and other (0006, Authenticated Users) bits
 *    grant read / write data only - never FILE_CREATE_PIPE_INSTANCE, so nobody but them can
 *    add an instance of the broker's pipe and impersonate it. Clients must therefore open
 *    the pipe with FILE_WRITE_DATA, not GENERIC_WRITE (which includes that right).
 *  - POSIX: chmod(path, mode & 0666) and chown to `group`, or to the broker's effective
 *    group when group is NULL (connect needs write permission on the socket file).
 * MB_ENOENT if the group does not exist, MB_EACCES if the OS refuses.
 */
int mb_os_pipe_secure(intptr_t handle, const char *path, const mb_os_access_t *access);

/*
 * Whether the peer of a connected control-pipe connection `conn` (an accepted libuv pipe's
 * uv_fileno) is an administrator: 1 yes, 0 no (also when its identity cannot be learned -
 * fail closed). POSIX: SO_PEERCRED uid is 0 or the broker's effective uid; *uid receives the
 * peer's uid. Windows: the client process's token (GetNamedPipeClientProcessId, then
 * OpenProcessToken) is LocalSystem, has BUILTIN\Administrators enabled (a filtered UAC
 * token does not), or has the broker's own user SID (the service account); *uid is -1.
 * Never fails otherwise.
 */
int mb_os_pipe_peer_admin(intptr_t conn, long *uid);

/*
 * Describe the access control of an object, for tests and diagnostics, into buf
 * (NUL-terminated). POSIX: "<mode octal> <uid> <gid>" of `path` when given (a socket file),
 * else of the descriptor `handle` (a section), e.g. "660 0 100". Windows: the SDDL of the
 * owner and DACL of `handle` (a section or pipe handle opened with READ_CONTROL; path is
 * unused), e.g. "O:S-1-5-...D:P(A;;FA;;;SY)...". MB_ERANGE if it does not fit.
 */
int mb_os_security_describe(intptr_t handle, const char *path, char *buf, size_t size);

/*
 * Describe the access control of the control pipe `name` (as mb__pipe_name gives it) like
 * mb_os_security_describe, for tests and diagnostics. POSIX: the socket file `name`, as
 * mb_os_security_describe(-1, name, ...). Windows: opens the pipe as a client asking for
 * READ_CONTROL only (no data access: the broker sees a connection that ends without a
 * request) and gives the SDDL of its owner and DACL, the one descriptor every instance of
 * the pipe shares. MB_ENOENT if no such pipe exists, MB_EBUSY if no instance is free within
 * 5 seconds, MB_EACCES if this user may not read the descriptor, MB_ERANGE if it does not fit.
 */
int mb_os_pipe_describe(const char *name, char *buf, size_t size);

/*
 * The directory for sockets and lock files, NUL-terminated, created if missing:
 * $MEMBROKER_RUNTIME_DIR if set; else POSIX: /run/membroker for root or when it exists (the
 * systemd unit's RuntimeDirectory), $XDG_RUNTIME_DIR or /tmp otherwise; Windows: the temp directory
 * (pipes need none). MB_ERANGE if it does not fit.
 */
int mb_os_runtime_dir(char *buf, size_t size);

/*
 * List the named objects of this host whose portable name starts with `prefix`, calling
 * fn(arg, name) once for each, name being the portable name (what mb_os_section_open,
 * mb_os_lock_take or mb__pipe_name's instance is built from):
 *  - MB_OS_LIST_SECTIONS: shared sections. POSIX: the entries of the shared-memory directory
 *    (/dev/shm). Windows: MB_ENOTSUP - an ordinary program cannot list the kernel's object
 *    namespace (open a section by the name you expect instead).
 *  - MB_OS_LIST_PIPES: control pipes, as "membroker-<instance>" (mb__pipe_name's name without
 *    its OS dressing). POSIX: the sockets "<name>.sock" in the runtime directory
 *    (mb_os_runtime_dir; only sockets, by lstat). Windows: the pipes of \\.\pipe\ (a
 *    FindFirstFileW listing of "\\.\pipe\*", which opens no pipe: no broker sees a
 *    connection); MB_ENOTSUP where the pipe device cannot be listed (Wine 8).
 *  - MB_OS_LIST_LOCKS: single-instance locks (mb_os_lock_take) by their record files
 *    (mb_os_lock_path). POSIX: the files of /dev/shm (a crashed holder leaves its file);
 *    Windows: the files of %ProgramData%\membroker\locks\ (delete-on-close: only while held).
 * Names that are not portable names (mb__os_check_name) are skipped. Reads directories only;
 * opens, creates or removes nothing. 0, or the error of the listing (the directory cannot be
 * read) with a message naming it; a missing directory lists nothing.
 */
enum { MB_OS_LIST_SECTIONS = 1, MB_OS_LIST_PIPES = 2, MB_OS_LIST_LOCKS = 3 };
int mb_os_objects_list(int kind, const char *prefix, void (*fn)(void *arg, const char *name),
                       void *arg);

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                  */

/*
 * A process identity that survives pid reuse: the pid plus the process's start time in
 * OS-specific ticks (Windows: creation FILETIME; Linux: start time in clock ticks since
 * boot). Two identities are the same process iff both fields are equal.
 */
typedef struct mb_os_procid_s {
  uint32_t pid;
  uint64_t start_time;
} mb_os_procid_t;

/* The calling process's identity. Never fails. */
void mb_os_proc_self(mb_os_procid_t *id);

/*
 * The calling process's id without a system call after the first (a cached value; POSIX
 * refreshes it in a fork child through a fork handler, so a child never sees its parent's).
 * For telling a handle inherited over fork() from one of this process. Never fails.
 */
uint32_t mb_os_pid(void);

/*
 * Run fn in the child of every later fork() of this process, in the child's one thread before
 * fork returns there (POSIX pthread_atfork; Windows has no fork: nothing is ever run). fn
 * must not take locks another thread may have held at the fork. 0, or MB_ENOMEM.
 */
int mb_os_atfork_child(void (*fn)(void));

/* The identity of the running process `pid`. MB_ESRCH if there is none. */
int mb_os_proc_query(uint32_t pid, mb_os_procid_t *id);

/*
 * 1 if the process `id` is still running, 0 if it has exited or its pid now belongs to
 * another process (start time differs), negative on error (e.g. MB_EACCES when the OS does
 * not say).
 */
int mb_os_proc_alive(const mb_os_procid_t *id);

/*
 * A watch on a process: the OS's own word that it exited, not a guess from a pid. *watch
 * receives a handle that refers to exactly the process `id` (Linux: a pidfd; Windows: a
 * process HANDLE with SYNCHRONIZE), so pid reuse cannot fool it. MB_ESRCH if `id` is not
 * running (already exited, or its pid belongs to another process now). Where the OS has no
 * such handle (Linux before 5.3) the watch falls back to mb_os_proc_alive.
 */
int mb_os_proc_watch(const mb_os_procid_t *id, intptr_t *watch);

/* 1 if the watched process has exited, 0 if it runs. Never blocks, never fails. */
int mb_os_proc_watch_exited(intptr_t watch);

/*
 * How an event loop learns of the exit without asking (capabilities, not OS; a caller tries
 * the descriptor first, then the notification, and else asks mb_os_proc_watch_exited at
 * intervals):
 *
 * mb_os_proc_watch_fd: a descriptor that polls readable once the process has exited, and
 * stays readable (Linux: the pidfd, for uv_poll / epoll); -1 when the watch has none (Windows;
 * Linux without pidfd_open). The watch owns it: stop polling it before mb_os_proc_watch_close.
 */
int mb_os_proc_watch_fd(intptr_t watch);

/*
 * mb_os_proc_watch_notify: have fn(arg) called once, on a thread of the OS's thread pool, when
 * the watched process exits (soon after the call if it has already). Windows:
 * RegisterWaitForSingleObject(WT_EXECUTEONLYONCE) on the process handle. fn must be short and
 * safe on any thread (an event loop's wake-up: uv_async_send) and must not call into this
 * watch. One registration per watch: a new one replaces the last. fn NULL cancels: it returns
 * once a call of fn in progress has finished, and fn is not called afterwards;
 * mb_os_proc_watch_close cancels the same way. Never cancel from inside fn. MB_ENOTSUP where
 * the OS has no such wait (POSIX: poll mb_os_proc_watch_fd); MB_ENOMEM / MB_EOS if refused.
 */
int mb_os_proc_watch_notify(intptr_t watch, void (*fn)(void *arg), void *arg);

/* Close a watch, cancelling its notification first (a no-op for 0). */
void mb_os_proc_watch_close(intptr_t watch);

/* A child process started by mb_os_spawn. */
typedef struct mb_os_child_s {
  intptr_t handle; /* process HANDLE (Windows) or unused (POSIX) */
  uint32_t pid;
} mb_os_child_t;

/*
 * Start `argv[0]` (a path, not searched in PATH) with arguments argv[1..] (NULL-terminated),
 * inheriting stdin/stdout/stderr and the environment. Windows: CreateProcessW with a properly
 * quoted command line. Same as mb_os_spawn_redirect(argv, NULL, child).
 */
int mb_os_spawn(const char *const argv[], mb_os_child_t *child);

/*
 * mb_os_spawn with the child's stdout and stderr both going to the file `out_path` (UTF-8),
 * created or truncated, as `PROGRAM >out_path 2>&1` would: one file position, so the two
 * streams interleave in the order the child writes them (each as the child's stdio buffers
 * it). stdin is inherited. out_path NULL: stdout and stderr are inherited too. POSIX: the
 * file is opened in the child before exec (mode 0666 less the umask); the child gets what
 * any exec passes on (descriptors without FD_CLOEXEC). Windows: inheritable duplicates of
 * one handle serve both, and the child inherits its three standard handles and nothing
 * else. A file that cannot be created fails the call (MB_ENOENT, MB_EACCES) and no child
 * runs.
 */
int mb_os_spawn_redirect(const char *const argv[], const char *out_path, mb_os_child_t *child);

/*
 * Wait up to timeout_ms (< 0: forever) for the child to exit. *exit_code receives its exit
 * code (POSIX: 128 + signal number if killed by a signal). MB_ETIMEOUT if still running; the
 * child is then still waitable. After success the child is reaped and must not be used again.
 */
int mb_os_child_wait(mb_os_child_t *child, int timeout_ms, int *exit_code);

/* Kill the child at once (TerminateProcess / SIGKILL). It must still be waited for. */
int mb_os_child_kill(mb_os_child_t *child);

/* The absolute path of the running executable, NUL-terminated. MB_ERANGE if it does not fit. */
int mb_os_self_exe(char *buf, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                    */

typedef struct mb_os_thread_s {
  intptr_t handle; /* HANDLE (Windows) / pthread_t (POSIX) */
} mb_os_thread_t;

/* Start fn(arg) on a new thread. MB_ENOMEM / MB_EOS if the OS refuses. */
int mb_os_thread_start(mb_os_thread_t *t, void (*fn)(void *), void *arg);

/* Wait for the thread to return and free it. */
void mb_os_thread_join(mb_os_thread_t *t);

/*
 * A thread-local slot with a callback when a thread that set it exits: on_exit(value) runs on
 * that thread (POSIX: a pthread key destructor; Windows: a fiber-local slot's callback, which
 * FlsAlloc calls at thread exit). Keys are few in a process: create one once and keep it.
 * MB_ENOMEM / MB_EOS if the OS has none left.
 */
typedef struct mb_os_tls_s {
  intptr_t key;
} mb_os_tls_t;

int mb_os_tls_create(mb_os_tls_t *tls, void (*on_exit)(void *value));
void *mb_os_tls_get(const mb_os_tls_t *tls);
void mb_os_tls_set(const mb_os_tls_t *tls, void *value);

/* ------------------------------------------------------------------------------------------ */
/* Private locks and heaps (in-process pools and heaps of the client library)                 */

/*
 * A mutex between the threads of one process (not shared memory, not recursive): an SRWLOCK
 * taken exclusively on Windows, a pthread_mutex_t (default type) on POSIX. Opaque storage
 * big enough for either; init before use, destroy when no thread holds or waits on it.
 * init fails only if the OS refuses (MB_ENOMEM / MB_EOS); lock and unlock never fail.
 */
typedef struct mb_os_mutex_s {
  union {
    void *p[8];
    uint64_t u[8];
  } opaque_;
} mb_os_mutex_t;

int mb_os_mutex_init(mb_os_mutex_t *m);
void mb_os_mutex_lock(mb_os_mutex_t *m);
void mb_os_mutex_unlock(mb_os_mutex_t *m);
void mb_os_mutex_destroy(mb_os_mutex_t *m);

/*
 * A private heap: variable-size blocks of 16-byte aligned memory, of this process only.
 * Windows: HeapCreate / HeapAlloc / HeapReAlloc / HeapFree / HeapSize / HeapCompact /
 * HeapValidate / HeapWalk / HeapDestroy. POSIX: the boundary-tag heap of common/tagheap.c
 * (mb__theap_*) over memory reserved with mb_os_reserve and committed as it grows.
 * Statistics and the maximum are kept by the caller (client/heap.c), the same on every OS.
 */
typedef struct mb_os_heap_s mb_os_heap_t;

enum {
  /* The heap takes no lock: only one thread uses it at a time (HEAP_NO_SERIALIZE). */
  MB_OS_HEAP_NO_SERIALIZE = 1 << 0,
};

/*
 * Create a heap with `initial` bytes committed at once (rounded up to pages; 0 = the OS's
 * minimum). `maximum` is the most the caller will keep allocated (0: no bound): POSIX sizes
 * its reservation from it (twice maximum plus slack, so fragmentation rarely refuses an
 * allocation below it; 64 GiB of address space when 0); Windows creates a growable heap
 * whatever it is (a fixed-size Windows heap refuses blocks over 512 KiB), and the caller
 * enforces it.
 */
int mb_os_heap_create(unsigned flags, size_t initial, size_t maximum, mb_os_heap_t **heap);

/* Allocate size > 0 bytes, 16-byte aligned, not zeroed. MB_ENOMEM / MB_ENOSPC if refused.
 * A block's size (mb_os_heap_size) is the size asked for, as HeapSize reports it. */
int mb_os_heap_alloc(mb_os_heap_t *heap, size_t size, void **p);

/*
 * Resize block p (of this heap) to size > 0 bytes, keeping its contents up to the smaller
 * size; *np receives the block, possibly moved. On failure p is untouched and still valid.
 * MB_EINVAL if p is not a live block of this heap (as far as the OS can tell).
 */
int mb_os_heap_realloc(mb_os_heap_t *heap, void *p, size_t size, void **np);

/*
 * Free block p. MB_EINVAL, and nothing is freed, if p is not a live block of this heap as far
 * as can be told: POSIX checks the reserved range, the block's tags and its in-use bit (a
 * double free is caught unless the block was handed out again); Windows asks HeapValidate
 * for that one block first.
 */
int mb_os_heap_free(mb_os_heap_t *heap, void *p);

/* The size of live block p: what it was allocated or last resized to. MB_EINVAL if p is not
 * a live block of this heap (as for mb_os_heap_free). */
int mb_os_heap_size(mb_os_heap_t *heap, const void *p, size_t *size);

/*
 * Coalesce free blocks and give whole free pages at the end back to the OS (POSIX: decommit
 * down to what `initial` and the last used block need; Windows: HeapCompact decides).
 * *largest_free (may be NULL) receives the size of the largest free block now committed.
 */
int mb_os_heap_compact(mb_os_heap_t *heap, size_t *largest_free);

/* Check every block of the heap: 0, or MB_EIO with what is wrong in the detail message. */
int mb_os_heap_validate(mb_os_heap_t *heap);

/* Bytes the heap has committed now (*reserved, may be NULL: address space it holds). */
int mb_os_heap_committed(mb_os_heap_t *heap, uint64_t *committed, uint64_t *reserved);

/* Destroy the heap and every block in it. NULL is ignored. */
void mb_os_heap_destroy(mb_os_heap_t *heap);

/*
 * Internal: the portable boundary-tag heap (common/tagheap.c) that is mb_os_heap_* on POSIX. It
 * is built on every OS so that its own tests run under Wine too; same contracts as above.
 * mb__theap_block_offset gives the tests where a block's tags lie (to damage them).
 */
typedef struct mb__theap_s mb__theap_t;
int mb__theap_create(unsigned flags, size_t initial, size_t maximum, mb__theap_t **heap);
int mb__theap_alloc(mb__theap_t *h, size_t size, void **p);
int mb__theap_realloc(mb__theap_t *h, void *p, size_t size, void **np);
int mb__theap_free(mb__theap_t *h, void *p);
int mb__theap_size(mb__theap_t *h, const void *p, size_t *size);
int mb__theap_compact(mb__theap_t *h, size_t *largest_free);
int mb__theap_validate(mb__theap_t *h);
int mb__theap_committed(mb__theap_t *h, uint64_t *committed, uint64_t *reserved);
void mb__theap_destroy(mb__theap_t *h);
#define MB__THEAP_HEADER 32 /* bytes of tags before each block's payload */

/* ------------------------------------------------------------------------------------------ */
/* Files (the broker's saved state and log, config and game data files)                      */

/*
 * Paths are UTF-8 (Windows converts them to UTF-16; "/" and "\" both separate there). Bulk
 * I/O is the C library's stdio on the FILE these calls open; these add what stdio lacks.
 */

/* fopen(path, mode) for a UTF-8 path (_wfopen on Windows). MB_ENOENT, MB_EACCES, ... A file
 * opened for writing ("w...") is created owner read-write, group read (0640 on POSIX, not the
 * umask's choice) and never through a symbolic link (POSIX: O_NOFOLLOW). */
int mb_os_file_open(const char *path, const char *mode, FILE **f);

/*
 * Open the file `path` for appending (text mode, created if missing: POSIX 0640), for a log
 * that a privileged service writes: never through a link. A path that is a symbolic link or
 * another reparse point (POSIX O_NOFOLLOW; Windows FILE_FLAG_OPEN_REPARSE_POINT, then the
 * handle's attributes), a file with other names (hard links: more than one) or anything but a
 * regular file is refused with MB_EACCES and a message naming it, and is left as it was.
 * Otherwise as mb_os_file_open(path, "a").
 */
int mb_os_file_append(const char *path, FILE **f);

/*
 * Write f's buffered data to the OS (fflush) and make the OS put the file's data on stable
 * storage before returning (fsync / FlushFileBuffers). f stays open. MB_EIO, MB_ENOSPC, ...
 */
int mb_os_file_sync(FILE *f);

/*
 * Replace the file `to` by the file `from` in one step: a reader sees the old file or the new
 * one, never a mix or none (POSIX rename; Windows MoveFileExW with MOVEFILE_REPLACE_EXISTING
 * | MOVEFILE_WRITE_THROUGH). Both are in the same directory. POSIX then fsyncs that
 * directory, so the new name survives a crash of the machine too.
 */
int mb_os_file_replace(const char *from, const char *to);

/* Remove the file `path`. MB_ENOENT if there is none. */
int mb_os_file_remove(const char *path);

/*
 * Remove the file `path` if it can be, best effort, for clean-up on a path that is failing
 * already: it never fails and leaves this thread's detail message (mb_last_error) and OS
 * error as they were, so the failure being reported is the one the caller saw.
 */
void mb_os_file_discard(const char *path);

/*
 * fopen(path, "wb") for a UTF-8 path, for a file other programs read (a GMAP file): created
 * with the OS's default permissions (POSIX 0666 less the umask), truncated if it exists, and
 * opened as it is when it is a device (/dev/full, NUL). Unlike mb_os_file_open's "w" it
 * follows a symbolic link as fopen does. MB_ENOENT, MB_EACCES, MB_ENOSPC, ...
 */
int mb_os_file_create(const char *path, FILE **f);

/* The position of f in bytes (64 bits on every OS; ftell is 32 on Windows). MB_EIO, ... */
int mb_os_file_tell(FILE *f, uint64_t *pos);

/* Move f to byte `pos` from the start of the file (64 bits on every OS). MB_EINVAL, ... */
int mb_os_file_seek(FILE *f, uint64_t pos);

/* Move f to its end; *size (may be NULL) receives the offset there, the file's size. */
int mb_os_file_seek_end(FILE *f, uint64_t *size);

/*
 * Read the whole file `path` (UTF-8) into a new buffer: *data (malloc'ed, free() it; a NUL
 * byte follows the last byte of the file and is not counted) and *len, its size. Sizes are
 * 64 bits on every OS. Only a regular file is read: a directory, FIFO, socket or device is
 * refused with MB_EINVAL and a message that says what it is, without reading it or waiting
 * on it (POSIX opens with O_NONBLOCK and checks with fstat; Windows asks GetFileType and the
 * file's attributes). A file larger than `max` bytes is refused with MB_ERANGE, one that
 * does not fit in this process's memory with MB_ENOMEM. Otherwise the errors of opening and
 * reading it (MB_ENOENT, MB_EACCES, MB_EIO, ...), with the OS's code (mb_last_os_error).
 * A file that grows while it is read is read up to the size it had when opened, one that
 * shrinks up to where it ends.
 */
int mb_os_read_file(const char *path, uint64_t max, char **data, size_t *len);

/*
 * The OS's own sentence for a raw OS error code (errno on POSIX, GetLastError on Windows; as
 * mb_last_os_error returns it), NUL-terminated into buf, without a trailing period or newline:
 * "No such file or directory". Returns buf. Never fails: 0 (no OS error) or an unknown code
 * gives "os error N".
 */
const char *mb_os_error_text(long os_code, char *buf, size_t size);

/*
 * The C library's sentence for an errno value `e` (as stdio and the C runtime set errno, on
 * every platform), NUL-terminated into buf, like mb_os_error_text: "No space left on device".
 * Returns buf. Never fails: 0 or an unknown value gives "os error N". For portable code that
 * calls the C library's file functions (gmap.c); an OS code goes to mb_os_error_text.
 */
const char *mb_os_errno_text(int e, char *buf, size_t size);

/*
 * Internal, shared by the OS files and the portable code that calls the C library (gmap.c):
 * an errno value as an MB_E* code, `dflt` for the ones without a better meaning.
 */
int mb__os_from_errno(int e, int dflt);

/*
 * Internal, for mb_os_read_file of each platform once it knows a regular file's `size`: refuse
 * a file past `max` (MB_ERANGE) or one this process cannot hold (MB_ENOMEM), else *buf gets
 * size + 1 malloc'd bytes (room for the NUL). The message names `path`.
 */
int mb__os_read_buffer(const char *path, uint64_t size, uint64_t max, char **buf);

/* Create the directory `path` (its parent must exist; POSIX mode 0750 less the umask). 0 if
 * it exists already as a directory; MB_EEXIST if something else has that name. */
int mb_os_dir_create(const char *path);

/* Remove the empty directory `path`. MB_ENOENT if there is none. */
int mb_os_dir_remove(const char *path);

/* What is at a path, for checks made before a start (mb_os_path_kind). */
typedef enum {
  MB_OS_PATH_NONE = 0, /* nothing: the path does not exist */
  MB_OS_PATH_FILE,     /* a regular file */
  MB_OS_PATH_DIR,      /* a directory */
  MB_OS_PATH_LINK,     /* a symbolic link or another reparse point (only when follow is 0) */
  MB_OS_PATH_OTHER,    /* a FIFO, socket, device, ... */
} mb_os_path_kind_t;

/*
 * What is at `path` (UTF-8) into *kind, without opening it (so a FIFO is never waited on) and
 * without changing anything. With `follow`, a link is followed (POSIX stat; Windows: the
 * target's attributes); without it a link is MB_OS_PATH_LINK (POSIX lstat; Windows: a
 * reparse point). A path that does not exist, or whose parent is not a directory, is
 * MB_OS_PATH_NONE and 0 is returned. Other failures (MB_EACCES when a directory on the way may
 * not be searched, ...) give their MB_E* code, with the OS code in mb_last_os_error().
 */
int mb_os_path_kind(const char *path, int follow, mb_os_path_kind_t *kind);

/*
 * 0 if this process may write to `path` (an existing file, or a directory to create files in)
 * as far as the OS's permission bits say, without opening or changing it: POSIX access(W_OK)
 * with the real ids; Windows: not read-only (_waccess; Windows ACLs are not evaluated).
 * MB_EACCES (with the OS's words in the message) if not, MB_ENOENT if it does not exist.
 */
int mb_os_path_writable(const char *path);

/*
 * 0 if the group `name` (a POSIX group; a Windows account or group name such as
 * "BUILTIN\Users") exists on this machine, as mb_os_section_create and mb_os_pipe_secure
 * look it up. MB_ENOENT with "group 'NAME' does not exist" if not; MB_EINVAL for an empty
 * name. Changes nothing.
 */
int mb_os_group_exists(const char *name);

/*
 * 0 if this process may give the objects it creates to the group `name` as
 * mb_os_section_create and mb_os_pipe_secure do. POSIX: the group exists and this process runs
 * as root (effective uid 0) or has the group as its effective or a supplementary group (what
 * chown(2) allows an owner); MB_EACCES ("this user is not in group 'G'") if not. Windows: an
 * ACL may name any account, so 0 whenever the group exists. MB_ENOENT if there is no such
 * group; MB_EINVAL for an empty name. Changes nothing.
 */
int mb_os_group_may_give(const char *name);

/*
 * The machine-wide directory for the broker's own files (the service's default log) into
 * buf, without a trailing separator; not created here. Windows: "%ProgramData%\membroker"
 * (the ProgramData folder from SHGetKnownFolderPath, loaded at run time; else the registry's
 * ProfileList value; else %ProgramData%), UTF-8 - the same directory the instance lock's
 * record is in, for a service and a console user alike.
 * POSIX: none, MB_ENOTSUP (a daemon logs to stderr, which systemd sends to the journal).
 * MB_ERANGE if it does not fit; MB_ENOENT if Windows names no ProgramData folder.
 */
int mb_os_data_dir(char *buf, size_t size);

/*
 * Prepare the data directory (mb_os_data_dir) for a service's files - and the lock records'
 * folder in it, and when `sub` is not NULL the folder <data dir>\<sub> (an instance's log
 * folder; a portable name, not "locks") - and put the path of the last folder prepared into
 * buf (the data dir's when sub is NULL; buf may be NULL when the path is not wanted).
 * A service calls it before it writes there: a folder that any user could own or redirect
 * would make it write wherever that user likes.
 * Windows: a missing folder is created owned by Administrators with an explicit protected
 * DACL - SYSTEM and Administrators full control, Users read & execute; in <data dir>\locks
 * Users may also add files (not folders), each file its creator's. Only SYSTEM or an
 * elevated administrator can create them: MB_EACCES otherwise, and nothing is created. A
 * folder that exists is refused with MB_EACCES and a message that names it and says to
 * remove it (the service recreates it) when it is a reparse point (a junction or link) or is
 * owned by anyone but SYSTEM, Administrators or this process's user (for the LocalSystem
 * service: SYSTEM; under Wine, which keeps no owners, its one user); otherwise it gets that
 * DACL again.
 * MB_EINVAL for a bad `sub`; the errors of mb_os_data_dir.
 * POSIX: none, MB_ENOTSUP (a daemon logs to the journal; its lock is in the runtime dir).
 */
int mb_os_data_dir_prepare(const char *sub, char *buf, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* Environment and installed services                                                        */

/*
 * Set the environment variable `name` of this process to `value` (UTF-8), or remove it when
 * value is NULL; children started later (mb_os_spawn) inherit it, and getenv() in this
 * process sees it. Windows: SetEnvironmentVariableW and the C runtime's copy (_wputenv);
 * POSIX: setenv / unsetenv. Not thread-safe against other threads reading the environment.
 * MB_EINVAL for an empty name or one with '='; MB_ENOMEM if the OS refuses.
 */
int mb_os_env_set(const char *name, const char *value);

/*
 * The value of the environment variable `name` of this process, UTF-8 and NUL-terminated, into
 * buf (size bytes); an empty value gives "". Windows: GetEnvironmentVariableW (the process's
 * environment, which mb_os_env_set changes too), so a value outside the ANSI code page reads
 * right; POSIX: getenv. Not thread-safe against other threads changing the environment.
 * MB_ENOENT if it is not set; MB_ERANGE if the value does not fit (buf is "" then); MB_EINVAL
 * for an empty name or one with '='.
 */
int mb_os_env_get(const char *name, char *buf, size_t size);

/*
 * The program's arguments as UTF-8, for a main() to call first: main's argv is the bytes the
 * C runtime made of the command line, which on Windows is the ANSI code page, where a name or
 * path outside it arrives as '?'. Windows: the process's command line (GetCommandLineW), split
 * by CommandLineToArgvW (shell32, looked up at run time) and converted to UTF-8 with
 * WideCharToMultiByte; *argc and *argv are replaced by the result, which lives until the
 * process exits (one allocation, never freed). POSIX: argv already holds the bytes given;
 * nothing changes. On failure (MB_ENOMEM, MB_EOS) *argc and *argv are left as they were, so a
 * caller may go on with them.
 */
int mb_os_utf8_argv(int *argc, char ***argv);

/* What an installed service is doing (mb_os_service_t.state). */
enum {
  MB_OS_SVC_STOPPED = 1,
  MB_OS_SVC_STARTING = 2, /* START_PENDING */
  MB_OS_SVC_RUNNING = 3,
  MB_OS_SVC_STOPPING = 4, /* STOP_PENDING */
  MB_OS_SVC_OTHER = 5,    /* paused, pausing, continuing, or not known */
};
#define MB_OS_SVC_NAME_MAX 257    /* a service name: 256 characters, UTF-16 units */
#define MB_OS_SVC_CONFIG_MAX 1024 /* the -c argument of its command line, UTF-8 */

/* One installed service (mb_os_services_list). */
typedef struct mb_os_service_s {
  char name[MB_OS_SVC_NAME_MAX * 3]; /* the key for `sc.exe start NAME`, UTF-8 */
  int state;                         /* MB_OS_SVC_* */
  unsigned long exit_code;           /* dwWin32ExitCode: 0, or why it last stopped; 1066
                                        (ERROR_SERVICE_SPECIFIC_ERROR): see service_exit_code */
  unsigned long service_exit_code;   /* dwServiceSpecificExitCode */
  int status_known;                  /* 0: this user may not query its status (state OTHER) */
  char config[MB_OS_SVC_CONFIG_MAX]; /* the value of the last -c / --config argument of its
                                        command line (Windows argv quoting undone); "" when it
                                        has none or it does not fit */
} mb_os_service_t;

/*
 * The installed system services whose program is `exe` (a file name such as "membroker.exe",
 * compared without regard to case with the last component of each service's binary path, its
 * arguments left out): a new array of them in *list (free() it; NULL when there are none) and
 * their number in *count, in the order the service manager lists them. For each: its name, its
 * state and last exit codes (QueryServiceStatusEx), and the config path its command line
 * passes with -c / --config (the installer writes `"<exe>" service -c "<cfg>" -n NAME`).
 * Windows: EnumServicesStatusExW over the Win32 services, then QueryServiceConfigW of each (a
 * service this user may not query is passed over). POSIX: none (*list NULL, *count 0), since
 * systemd units are not programs of one name. MB_EACCES if the service manager refuses to list
 * services; MB_ENOMEM. On error *list is NULL and *count 0.
 */
int mb_os_services_list(const char *exe, mb_os_service_t **list, int *count);

/* The service manager that runs system services on this OS, so that messages to operators can
 * name the right commands. Never fails. */
enum {
  MB_OS_SVCMGR_SCM = 1,     /* Windows: the service control manager (sc.exe) */
  MB_OS_SVCMGR_SYSTEMD = 2, /* Linux: systemd (systemctl) */
};
int mb_os_service_manager(void);

/* ------------------------------------------------------------------------------------------ */
/* Clocks, memory status, misc                                                                */

/* Monotonic clock in nanoseconds (arbitrary origin, never goes back). */
uint64_t mb_os_mono_ns(void);

/* Wall clock in nanoseconds since 1970-01-01 UTC. */
uint64_t mb_os_wall_ns(void);

/* A wall-clock time in calendar fields (mb_os_time_split). */
typedef struct mb_os_tm_s {
  int year;  /* e.g. 2026 */
  int month; /* 1..12 */
  int day;   /* 1..31 */
  int hour, min, sec;
  int msec; /* 0..999 */
} mb_os_tm_t;

/*
 * Split wall_ns (an mb_os_wall_ns value) into calendar fields: in UTC when local is 0 (a
 * log's timestamps), in the machine's local time zone otherwise (what an operator's clock
 * says). POSIX gmtime_r / localtime_r; Windows gmtime_s / localtime_s. Never fails: a time
 * the OS cannot convert gives 1970-01-01 00:00:00.000.
 */
void mb_os_time_split(uint64_t wall_ns, int local, mb_os_tm_t *tm);

/*
 * Internal, for mb_os_time_split of each platform: the calendar fields of `t` (a struct tm the
 * C library filled in, or NULL when it could not convert: 1970-01-01 00:00:00) and the
 * milliseconds of wall_ns into *tm.
 */
struct tm;
void mb__os_tm_fill(const struct tm *t, uint64_t wall_ns, mb_os_tm_t *tm);

/* Sleep at least ms milliseconds. */
void mb_os_sleep_ms(unsigned ms);

/* Give the rest of this time slice to another ready thread, if any (no sleep). */
void mb_os_yield(void);

/* Physical memory of the machine, in bytes. */
typedef struct mb_os_memstatus_s {
  uint64_t total;
  uint64_t available;
} mb_os_memstatus_t;

int mb_os_memstatus(mb_os_memstatus_t *st);

/*
 * What this machine can commit at most, for checks made before anything is committed
 * (membroker --check-config). Each figure is a capacity of the machine, not what is free now
 * (other programs come and go); UINT64_MAX where there is no such limit.
 *  - physical: physical memory (mb_os_memstatus's total).
 *  - commit_limit: the OS's commit limit, shared by every process. Linux: CommitLimit from
 *    /proc/meminfo when vm.overcommit_memory is 2; in modes 0 and 1 the kernel refuses no
 *    shared-memory page for want of commit, so UINT64_MAX. Windows: physical memory plus the
 *    page files (GlobalMemoryStatusEx's ullTotalPageFile).
 *  - section_space: what the file system shared sections live in holds. Linux: the size of
 *    the tmpfs at /dev/shm (statvfs), which a section's commit (fallocate) fills. Windows:
 *    UINT64_MAX (sections are charged to the commit limit).
 * commit_what / section_what say where each figure comes from, for messages ("the commit limit
 * (CommitLimit, vm.overcommit_memory 2)", "the size of /dev/shm"; "" when UINT64_MAX).
 * Returns 0, or the MB_E* code of the first query that failed (with its message); reads only.
 */
typedef struct mb_os_commit_caps_s {
  uint64_t physical;
  uint64_t commit_limit;
  uint64_t section_space;
  char commit_what[80];
  char section_what[80];
} mb_os_commit_caps_t;

int mb_os_commit_caps(mb_os_commit_caps_t *caps);

/* Resident memory of this process in bytes (Linux: VmRSS; Windows: working-set size). */
int mb_os_self_rss(uint64_t *rss);

/*
 * Failure injection for tests (SQLite's overridable system calls, in small): the next `count`
 * calls of mb_os_commit / mb_os_section_commit fail with MB_ENOSPC as they would at the OS
 * commit limit or with /dev/shm full, without calling the OS. 0 turns it off. Process-wide.
 */
void mb_os_inject_commit_failures(int count);

/* Internal, for the OS files: 1 if this commit is to fail by injection (consumes one). */
int mb__os_injected_commit_failure(void);

/*
 * Failure injection for tests: the next `count` calls of mb_os_file_replace fail with
 * MB_EBUSY, as a rename does on Windows while a reader holds the file open without
 * FILE_SHARE_DELETE, without calling the OS. 0 turns it off. Process-wide. Returns how many
 * injected failures were still to come (so a test learns how many renames were tried).
 */
int mb_os_inject_rename_failures(int count);

/* Internal, for the OS files: 1 if this rename is to fail by injection (consumes one). */
int mb__os_injected_rename_failure(void);

/* Names of things (instances, clients, regions, pools, maps, object names): which characters
 * a name may have besides a-z 0-9 _ - . */
enum {
  MB_NAME_UPPER = 1u << 0, /* A-Z */
  MB_NAME_DOT = 1u << 1,   /* '.' */
};
static inline int mb__name_char_ok(char c, unsigned allow) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         ((allow & MB_NAME_UPPER) && c >= 'A' && c <= 'Z') || ((allow & MB_NAME_DOT) && c == '.');
}
/* 1 if s is 1 to max - 1 characters that mb__name_char_ok(, allow) accepts. */
int mb__name_ok(const char *s, size_t max, unsigned allow);

/* Internal, for the OS files (os_common.c): checks both implementations make alike. */
int mb__os_page_aligned(const void *addr, uint64_t size);
/* A portable object name (1..MB_OS_NAME_MAX of [A-Za-z0-9._-]); *len receives its length. */
int mb__os_check_name(const char *name, const char *what, size_t *len);
/* [offset, offset+len) is non-empty, page-aligned (MB_EINVAL) and inside sec (MB_ERANGE). */
int mb__os_section_range(const mb_os_section_t *sec, uint64_t offset, uint64_t len,
                         const char *what);
/* The record of a lock's holder (mb_os_lock_take): this process's line "<pid> <start time>
 * <service|console>\n" (mode from MB_OS_LOCK_SERVICE in flags) into buf; returns its length. */
size_t mb__os_lock_record(char *buf, size_t size, int flags);
/* Parse a lock record (text, NUL-terminated) and believe it as mb_os_lock_holder says;
 * `service` is the OS's word for a service in holder->what. 0 or MB_ENOENT. */
int mb__os_lock_believe(const char *text, const char *service, mb_os_lock_holder_t *holder);

#ifdef __cplusplus
}
#endif

#endif /* MB_OS_H */
