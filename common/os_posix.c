/*
 * os_posix.c - the platform layer on Linux (see os.h for every contract).
 *
 * Virtual memory: a reservation is a PROT_NONE, MAP_NORESERVE private mapping; commit makes
 * pages writable (charged then under strict overcommit); decommit maps fresh PROT_NONE
 * pages over the range, which drops the pages and their charge.
 *
 * Shared sections are POSIX shared-memory objects (tmpfs under /dev/shm). A reserve-then-
 * commit section is a sparse object: ftruncate sets its size and allocates nothing. Commit
 * is fallocate() on the object, so a full /dev/shm is reported as MB_ENOSPC at commit time;
 * a first touch of committed pages can never SIGBUS. Decommit punches a hole, which also
 * zaps the pages from every mapping. Committed bytes are the object's allocated blocks.
 *
 * Large-page sections (MB_OS_SEC_LARGE_PAGES) are files on a hugetlbfs mount (MEMBROKER_HUGETLBFS
 * or the first mount of the default huge page size in /proc/mounts), so every process opens them
 * by name as it does a shared-memory object. Creation reserves the huge pages with fallocate:
 * a machine without free huge pages refuses there (MB_ENOSPC), never with a SIGBUS at first touch.
 * Transparent huge pages for shmem are not used: /dev/shm is a tmpfs mount whose huge= option
 * (not shmem_enabled) decides, and it cannot be asked for per object.
 */
#include "os_setup.h"

#if MB_OS_POSIX

#define _GNU_SOURCE 1

#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <mntent.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static size_t mb__huge_page_size(void);

/* Internal flag kept in mb_os_section_t.flags: the handle was opened writable. */
#define MB__SEC_WRITABLE (1 << 8)

const mb_os_mem_config_t *mb_os_mem_config(void) {
  static mb_os_mem_config_t cfg;
  if (cfg.page_size == 0) {
    long ps = sysconf(_SC_PAGESIZE);
    cfg.shared_decommit = 1;
    cfg.names_persist = 1;
    cfg.view_commit = 0;
    cfg.sec_namespaces = 0;
    cfg.large_page_size = mb__huge_page_size();
    cfg.alloc_granularity = ps > 0 ? (size_t)ps : 4096;
    /* Written last: a racing first call computes the same values. */
    __atomic_store_n(&cfg.page_size, ps > 0 ? (size_t)ps : 4096, __ATOMIC_RELEASE);
  }
  return &cfg;
}

/* ---------------------------------------------------------------------------------------- */

int mb_os_reserve(size_t size, void **addr) {
  void *p;
  if (size == 0 || !mb__os_page_aligned(NULL, size))
    return mb__errorf(MB_EINVAL, 0, "reserve %zu bytes", size);
  p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return mb__errorf(mb__os_from_errno(errno, MB_ENOMEM), errno, "reserve %zu bytes", size);
  *addr = p;
  return 0;
}

/* 1 if every page of [addr, addr+size) is mapped in this process. */
static int mb__is_mapped(void *addr, size_t size) {
  /* msync fails with ENOMEM on an unmapped range and does nothing on anonymous memory. */
  return msync(addr, size, MS_ASYNC) == 0;
}

int mb_os_commit(void *addr, size_t size) {
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "commit %zu bytes at %p", size, addr);
  if (!mb__is_mapped(addr, size))
    return mb__errorf(MB_ERANGE, errno, "commit %zu bytes at %p outside a reservation", size, addr);
  if (mb__os_injected_commit_failure())
    return mb__errorf(MB_ENOSPC, 0, "commit %zu bytes at %p (injected failure)", size, addr);
  if (mprotect(addr, size, PROT_READ | PROT_WRITE) != 0)
    return mb__errorf(errno == ENOMEM ? MB_ENOSPC : mb__os_from_errno(errno, MB_EOS), errno,
                      "commit %zu bytes at %p", size, addr);
  return 0;
}

int mb_os_decommit(void *addr, size_t size) {
  void *p;
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "decommit %zu bytes at %p", size, addr);
  if (!mb__is_mapped(addr, size))
    return mb__errorf(MB_ERANGE, errno, "decommit %zu bytes at %p outside a reservation", size,
                      addr);
  p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "decommit %zu bytes at %p", size,
                      addr);
  return 0;
}

int mb_os_release(void *addr, size_t size) {
  if (addr == NULL || size == 0 || !mb__os_page_aligned(addr, size))
    return mb__errorf(MB_EINVAL, 0, "release %zu bytes at %p", size, addr);
  if (munmap(addr, size) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "release %zu bytes at %p", size,
                      addr);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */

/* Check a portable name and build "/<name>" into path (MB_OS_NAME_MAX + 2 bytes). */
static int mb__shm_path(const char *name, char *path) {
  size_t n;
  int rc = mb__os_check_name(name, "section", &n);
  if (rc != 0)
    return rc;
  path[0] = '/';
  memcpy(path + 1, name, n + 1);
  return 0;
}

/*
 * Read the small text file `path` (a /proc file: its size is not known before reading) into
 * buf, NUL-terminated. 0, or the MB_E* code with "open PATH" / "read PATH" as the message.
 */
static int mb__read_text(const char *path, char *buf, size_t size) {
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "open %s", path);
  n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0)
    return mb__errorf(MB_EIO, n < 0 ? errno : 0, "read %s", path);
  buf[n] = '\0';
  return 0;
}

/* The kB figure `key` ("MemTotal:") of /proc/meminfo's text, in bytes; -1 if absent. */
static int mb__meminfo(const char *text, const char *key, uint64_t *out) {
  const char *p = strstr(text, key);
  if (p == NULL)
    return -1;
  *out = strtoull(p + strlen(key), NULL, 10) * 1024u;
  return 0;
}

/* The default huge page size (Hugepagesize in /proc/meminfo), or 0. */
static size_t mb__huge_page_size(void) {
  static size_t size;
  char info[4096];
  uint64_t bytes;
  if (size == 0 && mb__read_text("/proc/meminfo", info, sizeof info) == 0 &&
      mb__meminfo(info, "Hugepagesize:", &bytes) == 0)
    size = (size_t)bytes;
  return size;
}

/* A huge-page count of /proc/meminfo ("HugePages_Free" ...), or -1. */
static long mb__meminfo_long(const char *key) {
  char info[4096], want[64];
  const char *p;
  if (mb__read_text("/proc/meminfo", info, sizeof info) != 0)
    return -1;
  snprintf(want, sizeof want, "\n%s:", key);
  p = strstr(info, want);
  return p != NULL ? strtol(p + strlen(want), NULL, 10) : -1;
}

int mb_os_hugetlbfs_dir(char *buf, size_t size) {
  const char *env = getenv("MEMBROKER_HUGETLBFS");
  char found[PATH_MAX] = "";
  if (env != NULL && env[0] != '\0') {
    if (strlen(env) >= sizeof found)
      return mb__errorf(MB_ERANGE, 0, "MEMBROKER_HUGETLBFS '%s' is too long", env);
    memcpy(found, env, strlen(env) + 1);
  } else {
    FILE *m = setmntent("/proc/mounts", "re");
    struct mntent ent;
    char strings[4096];
    char want[32];
    snprintf(want, sizeof want, "pagesize=%zuM", mb__huge_page_size() >> 20);
    while (m != NULL && getmntent_r(m, &ent, strings, sizeof strings) != NULL) {
      const char *ps;
      if (strcmp(ent.mnt_type, "hugetlbfs") != 0 || strlen(ent.mnt_dir) >= sizeof found)
        continue;
      /* A mount of another page size (pagesize=1024M) is not the default's. */
      ps = strstr(ent.mnt_opts, "pagesize=");
      if (ps != NULL && strncmp(ps, want, strlen(want)) != 0)
        continue;
      memcpy(found, ent.mnt_dir, strlen(ent.mnt_dir) + 1);
      break;
    }
    if (m != NULL)
      endmntent(m);
    if (found[0] == '\0')
      return mb__errorf(MB_ENOTSUP, 0,
                        "no hugetlbfs mount of %zu KiB pages in /proc/mounts (mount one, e.g. "
                        "`mount -t hugetlbfs none /dev/hugepages`, or name it in "
                        "MEMBROKER_HUGETLBFS)",
                        mb__huge_page_size() >> 10);
  }
  {
    struct statfs fs;
    if (statfs(found, &fs) != 0)
      return mb__errorf(MB_ENOTSUP, errno, "hugetlbfs directory '%s' cannot be read", found);
    if ((unsigned long)fs.f_type != 0x958458f6ul) /* HUGETLBFS_MAGIC */
      return mb__errorf(MB_ENOTSUP, 0, "'%s' is not a hugetlbfs mount", found);
  }
  if (strlen(found) >= size)
    return mb__errorf(MB_ERANGE, 0, "hugetlbfs directory '%s' into %zu bytes", found, size);
  memcpy(buf, found, strlen(found) + 1);
  return 0;
}

int mb_os_large_pages(size_t *page_size) {
  char dir[PATH_MAX];
  long free_pages;
  int rc;
  *page_size = mb__huge_page_size();
  if (*page_size == 0)
    return mb__errorf(MB_ENOTSUP, 0,
                      "this kernel has no huge pages (no Hugepagesize in "
                      "/proc/meminfo)");
  if ((rc = mb_os_hugetlbfs_dir(dir, sizeof dir)) != 0)
    return rc;
  free_pages = mb__meminfo_long("HugePages_Free");
  if (free_pages == 0)
    return mb__errorf(MB_ENOSPC, 0,
                      "no free huge pages (HugePages_Free 0, HugePages_Total %ld): reserve them "
                      "with vm.nr_hugepages",
                      mb__meminfo_long("HugePages_Total"));
  return 0;
}

int mb_os_large_purge(const char *prefix, unsigned *removed, char *dir, size_t dir_size) {
  char found[PATH_MAX];
  size_t n = strlen(prefix);
  struct dirent *e;
  DIR *d;
  int rc = 0;
  *removed = 0;
  if (dir != NULL && dir_size > 0)
    dir[0] = '\0';
  if (mb_os_hugetlbfs_dir(found, sizeof found) != 0)
    return 0; /* no mount: no huge-page files to remove */
  if (dir != NULL && dir_size > 0)
    snprintf(dir, dir_size, "%s", found);
  if ((d = opendir(found)) == NULL)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "read hugetlbfs directory '%s'",
                      found);
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, n) != 0)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
      (*removed)++;
    } else if (errno != ENOENT) {
      rc = mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "remove '%s/%s'", found, e->d_name);
      break;
    }
  }
  closedir(d);
  return rc;
}

/* The file of a large-page section: "<hugetlbfs dir>/<name>" into path (PATH_MAX bytes). */
static int mb__huge_path(const char *name, char *path) {
  char dir[PATH_MAX];
  size_t n;
  int rc = mb__os_check_name(name, "section", &n);
  if (rc != 0 || (rc = mb_os_hugetlbfs_dir(dir, sizeof dir)) != 0)
    return rc;
  size_t d = strlen(dir);
  if (d + 1 + n >= PATH_MAX)
    return mb__errorf(MB_ENAMETOOLONG, 0, "section '%s' in hugetlbfs '%s'", name, dir);
  memcpy(path, dir, d);
  path[d] = '/';
  memcpy(path + d + 1, name, n + 1);
  return 0;
}

/* Open the object of a section: shm_open, or open on hugetlbfs with MB_OS_SEC_LARGE_PAGES. */
static int mb__sec_open_fd(const char *name, int flags, int oflags, mode_t mode, int *fd) {
  char path[PATH_MAX];
  int rc = (flags & MB_OS_SEC_LARGE_PAGES) ? mb__huge_path(name, path) : mb__shm_path(name, path);
  if (rc != 0)
    return rc;
  *fd = (flags & MB_OS_SEC_LARGE_PAGES) ? open(path, oflags | O_CLOEXEC | O_NOFOLLOW, mode)
                                        : shm_open(path, oflags | O_CLOEXEC, mode);
  return 0;
}

static int mb__group_gid(const char *name, gid_t *gid, const char *what);

/* Apply mode (ignoring the umask) and group to a freshly created object. */
static int mb__apply_access(int fd, const char *name, const mb_os_access_t *access) {
  mode_t mode = access ? (mode_t)(access->mode & 0666) : 0600;
  if (fchmod(fd, mode) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "set mode %03o on '%s'",
                      (unsigned)mode, name);
  if (access && access->group && access->group[0]) {
    gid_t gid;
    int rc = mb__group_gid(access->group, &gid, name);
    if (rc != 0)
      return rc;
    if (fchown(fd, (uid_t)-1, gid) != 0)
      return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "give '%s' to group '%s'", name,
                        access->group);
  }
  return 0;
}

int mb_os_section_create(mb_os_section_t *sec, const char *name, uint64_t size, int flags,
                         const mb_os_access_t *access) {
  char path[MB_OS_NAME_MAX + 2];
  int fd, rc;

  size_t huge = 0;
  long free_pages;
  const int large = (flags & MB_OS_SEC_LARGE_PAGES) != 0;

  if ((rc = mb__shm_path(name, path)) != 0)
    return rc;
  if (size == 0 || !mb__os_page_aligned(NULL, size) || size > (uint64_t)INT64_MAX)
    return mb__errorf(MB_EINVAL, 0, "create section '%s' of %llu bytes", name,
                      (unsigned long long)size);
  if (large) {
    if ((rc = mb_os_large_pages(&huge)) != 0 && rc != MB_ENOSPC)
      return rc;
    if ((flags & MB_OS_SEC_RESERVE) || huge == 0 || size % huge != 0)
      return mb__errorf(MB_EINVAL, 0,
                        "create section '%s' of %llu bytes with large pages: not a multiple of "
                        "%zu bytes, or reserve-then-commit",
                        name, (unsigned long long)size, huge);
  }
  /* Read before fallocate takes them: what was free is what the message must say. */
  free_pages = large ? mb__meminfo_long("HugePages_Free") : -1;
  if ((rc = mb__sec_open_fd(name, flags, O_RDWR | O_CREAT | O_EXCL, 0600, &fd)) != 0)
    return rc;
  if (fd < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "create section '%s'%s", name,
                      large ? " on hugetlbfs" : "");
  if ((rc = mb__apply_access(fd, name, access)) != 0)
    goto fail;
  if (ftruncate(fd, (off_t)size) != 0) {
    rc = mb__errorf(mb__os_from_errno(errno, MB_ENOSPC), errno, "size section '%s' to %llu bytes",
                    name, (unsigned long long)size);
    goto fail;
  }
  /* hugetlbfs: fallocate takes the huge pages now (ENOSPC when too few are free). */
  if (!(flags & MB_OS_SEC_RESERVE) && fallocate(fd, 0, 0, (off_t)size) != 0) {
    rc = errno == ENOSPC && large
             ? mb__errorf(MB_ENOSPC, errno,
                          "section '%s' of %llu bytes needs %llu huge pages of %zu KiB, %ld "
                          "free of %ld (vm.nr_hugepages)",
                          name, (unsigned long long)size, (unsigned long long)(size / huge),
                          huge >> 10, free_pages, mb__meminfo_long("HugePages_Total"))
             : mb__errorf(errno == ENOSPC ? MB_ENOSPC : mb__os_from_errno(errno, MB_EOS), errno,
                          "commit section '%s' of %llu bytes", name, (unsigned long long)size);
    goto fail;
  }
  sec->handle = fd;
  sec->size = size;
  sec->flags =
      (flags & (MB_OS_SEC_RESERVE | MB_OS_SEC_GLOBAL | MB_OS_SEC_LARGE_PAGES)) | MB__SEC_WRITABLE;
  memcpy(sec->name, name, strlen(name) + 1);
  return 0;

fail:
  close(fd);
  mb_os_section_unlink(name, flags);
  return rc;
}

int mb_os_section_open(mb_os_section_t *sec, const char *name, int flags, int writable) {
  struct stat st;
  int fd, rc;

  if ((rc = mb__sec_open_fd(name, flags, writable ? O_RDWR : O_RDONLY, 0, &fd)) != 0)
    return rc;
  if (fd < 0 && (flags & MB_OS_SEC_LARGE_PAGES)) {
    char path[PATH_MAX];
    int e = errno;
    if (mb__huge_path(name, path) != 0)
      path[0] = '\0';
    return mb__errorf(mb__os_from_errno(e, MB_EOS), e, "open large-page section '%s' as '%s'", name,
                      path);
  }
  if (fd < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "open section '%s'", name);
  if (fstat(fd, &st) != 0) {
    rc = mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "stat section '%s'", name);
    close(fd);
    return rc;
  }
  sec->handle = fd;
  sec->size = (uint64_t)st.st_size;
  sec->flags = (flags & (MB_OS_SEC_RESERVE | MB_OS_SEC_GLOBAL | MB_OS_SEC_LARGE_PAGES)) |
               (writable ? MB__SEC_WRITABLE : 0);
  memcpy(sec->name, name, strlen(name) + 1);
  return 0;
}

int mb_os_section_map(const mb_os_section_t *sec, uint64_t size, int writable, void **addr) {
  void *p;
  if (size == 0)
    size = sec->size;
  if (!mb__os_page_aligned(NULL, size))
    return mb__errorf(MB_EINVAL, 0, "map %llu bytes of section '%s': not a multiple of the page",
                      (unsigned long long)size, sec->name);
  if (size > sec->size)
    return mb__errorf(MB_ERANGE, 0, "map %llu bytes of section '%s' that holds %llu",
                      (unsigned long long)size, sec->name, (unsigned long long)sec->size);
  if (writable && !(sec->flags & MB__SEC_WRITABLE))
    return mb__errorf(MB_EACCES, 0, "map section '%s' writable: opened read-only", sec->name);
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0, "map section '%s': it is empty", sec->name);
  p = mmap(NULL, (size_t)size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
           (int)sec->handle, 0);
  if (p == MAP_FAILED)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "map section '%s'", sec->name);
  *addr = p;
  return 0;
}

int mb_os_section_unmap(void *addr, uint64_t size) {
  if (addr == NULL || size == 0)
    return mb__errorf(MB_EINVAL, 0, "unmap %llu bytes at %p", (unsigned long long)size, addr);
  if (munmap(addr, (size_t)size) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "unmap view at %p", addr);
  return 0;
}

int mb_os_section_commit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len) {
  int rc;
  (void)view;
  if ((rc = mb__os_section_range(sec, offset, len, "commit")) != 0)
    return rc;
  if (!(sec->flags & MB_OS_SEC_RESERVE))
    return 0;
  if (mb__os_injected_commit_failure())
    return mb__errorf(MB_ENOSPC, 0, "commit [%llu, +%llu) of section '%s' (injected failure)",
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  do {
    rc = fallocate((int)sec->handle, 0, (off_t)offset, (off_t)len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return mb__errorf(errno == ENOSPC ? MB_ENOSPC : mb__os_from_errno(errno, MB_EOS), errno,
                      "commit [%llu, +%llu) of section '%s'", (unsigned long long)offset,
                      (unsigned long long)len, sec->name);
  return 0;
}

int mb_os_section_decommit(const mb_os_section_t *sec, void *view, uint64_t offset, uint64_t len) {
  int rc;
  (void)view;
  if ((rc = mb__os_section_range(sec, offset, len, "decommit")) != 0)
    return rc;
  if (fallocate((int)sec->handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                (off_t)len) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "decommit [%llu, +%llu) of '%s'",
                      (unsigned long long)offset, (unsigned long long)len, sec->name);
  return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 (uapi mman-common.h); older kernels: EINVAL */
#endif

int mb_os_populate_write(void *addr, uint64_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t len = (size_t)((size + page - 1) / page * page);
  int rc;
  if (size == 0)
    return 0;
  do {
    rc = madvise(addr, len, MADV_POPULATE_WRITE);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0)
    return 0;
  if (errno == EINVAL || errno == ENOSYS)
    return mb__errorf(MB_ENOTSUP, errno, "populate %zu bytes: MADV_POPULATE_WRITE needs Linux 5.14",
                      len);
  return mb__errorf(errno == ENOMEM ? MB_ENOSPC : mb__os_from_errno(errno, MB_EOS), errno,
                    "populate %zu bytes at %p", len, addr);
}

int mb_os_section_write(const mb_os_section_t *sec, uint64_t offset, const void *data, size_t len) {
  const char *p = (const char *)data;
  if (len == 0)
    return 0;
  if (offset > sec->size || len > sec->size - offset)
    return mb__errorf(MB_ERANGE, 0, "write [%llu, +%zu) of section '%s' of %llu bytes",
                      (unsigned long long)offset, len, sec->name, (unsigned long long)sec->size);
  while (len > 0) {
    ssize_t n = pwrite((int)sec->handle, p, len, (off_t)offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      return mb__errorf(e == ENOSPC ? MB_ENOSPC : mb__os_from_errno(e, MB_EOS), e,
                        "write %zu bytes at offset %llu of section '%s'", len,
                        (unsigned long long)offset, sec->name);
    }
    p += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}

uint64_t mb_os_page_faults(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

int mb_os_section_committed(const mb_os_section_t *sec, void *view, uint64_t *bytes) {
  struct stat st;
  (void)view;
  if (fstat((int)sec->handle, &st) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "stat section '%s'", sec->name);
  *bytes = (uint64_t)st.st_blocks * 512u;
  return 0;
}

void mb_os_section_close(mb_os_section_t *sec) {
  if (sec->handle > 0)
    close((int)sec->handle);
  sec->handle = -1;
}

int mb_os_section_unlink(const char *name, int flags) {
  char path[PATH_MAX];
  int rc;
  if (flags & MB_OS_SEC_LARGE_PAGES) {
    if ((rc = mb__huge_path(name, path)) != 0)
      return rc == MB_ENOTSUP ? MB_ENOENT : rc; /* no mount: nothing there to remove */
    if (unlink(path) != 0)
      return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "unlink section '%s'", path);
    return 0;
  }
  if ((rc = mb__shm_path(name, path)) != 0)
    return rc;
  if (shm_unlink(path) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "unlink section '%s'", name);
  return 0;
}

int mb_os_section_os_name(const char *name, int flags, char *buf, size_t size) {
  char path[MB_OS_NAME_MAX + 2];
  int rc;
  (void)flags;
  if ((rc = mb__shm_path(name, path)) != 0)
    return rc;
  if (strlen(path) >= size)
    return mb__errorf(MB_ERANGE, 0, "section name '%s' into %zu bytes", path, size);
  memcpy(buf, path, strlen(path) + 1);
  return 0;
}

int mb_os_runtime_dir(char *buf, size_t size) {
  const char *dir = getenv("MEMBROKER_RUNTIME_DIR");
  struct stat st;
  if (dir == NULL || dir[0] == '\0') {
    /* The system broker's directory (systemd's RuntimeDirectory=) when it exists, so
     * clients and mbctl of any user find a broker run as its own service user. */
    if (geteuid() == 0 || (stat("/run/membroker", &st) == 0 && S_ISDIR(st.st_mode)))
      dir = "/run/membroker";
    else if ((dir = getenv("XDG_RUNTIME_DIR")) == NULL || dir[0] == '\0')
      dir = "/tmp";
  }
  if (strlen(dir) + 1 > size)
    return mb__errorf(MB_ERANGE, 0, "runtime directory '%s' is too long", dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "create runtime directory '%s'",
                      dir);
  memcpy(buf, dir, strlen(dir) + 1);
  return 0;
}

/*
 * The lock is flock() on <runtime dir>/<name>, and the file is removed when the lock is
 * released, so instances that come and go leave nothing behind. Removing a lock file is safe
 * only with the check below: a process that opened the file just before its holder removed
 * it could lock the removed inode while a third creates and locks a new file. So after
 * flock, the path must still name the inode we locked; if not, start over.
 *
 * The file holds its holder's record (os.h), rewritten by each new holder: a crashed holder's
 * line stays until then, and mb_os_lock_holder does not believe it (its pid is dead). A file
 * another user left behind (0644, not writable for us) is locked read-only: the lock works,
 * the record cannot be written.
 */
typedef struct mb__lock_s {
  int fd;
  char path[1];
} mb__lock_t;

/*
 * The directory of the shared-memory namespace (where shm_open puts its objects on Linux).
 * The lock lives beside the objects it guards, not in the runtime directory: that one
 * differs between a systemd service (/run/membroker) and a user's console broker
 * ($XDG_RUNTIME_DIR, /tmp), and two brokers that took two locks would both own one set of
 * objects.
 */
#define MB__SHM_DIR "/dev/shm"

int mb_os_objects_list(int kind, const char *prefix, void (*fn)(void *arg, const char *name),
                       void *arg) {
  char dir[512], path[1100], name[MB_OS_NAME_MAX + 8];
  size_t plen = strlen(prefix), n;
  struct dirent *de;
  struct stat st;
  DIR *d;
  int rc;
  if (kind == MB_OS_LIST_SECTIONS || kind == MB_OS_LIST_LOCKS) { /* locks live beside them */
    snprintf(dir, sizeof dir, "%s", MB__SHM_DIR);
  } else if (kind == MB_OS_LIST_PIPES) {
    if ((rc = mb_os_runtime_dir(dir, sizeof dir)) != 0)
      return rc;
  } else {
    return mb__errorf(MB_EINVAL, 0, "mb_os_objects_list: no kind %d", kind);
  }
  if ((d = opendir(dir)) == NULL) {
    if (errno == ENOENT)
      return 0;
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "list the directory %s", dir);
  }
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, prefix, plen) != 0 || (n = strlen(de->d_name)) >= sizeof name)
      continue;
    memcpy(name, de->d_name, n + 1);
    if (kind == MB_OS_LIST_PIPES) {
      if (n < 5 || strcmp(name + n - 5, ".sock") != 0)
        continue;
      name[n - 5] = '\0';
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        continue;
    }
    if (mb__os_check_name(name, "object", &n) != 0)
      continue;
    fn(arg, name);
  }
  closedir(d);
  return 0;
}

int mb_os_lock_path(const char *name, char *buf, size_t size) {
  char path[MB_OS_NAME_MAX + 2];
  int rc, n;
  if ((rc = mb__shm_path(name, path)) != 0)
    return rc;
  n = snprintf(buf, size, "%s%s", MB__SHM_DIR, path);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ERANGE, 0, "lock file path '%s%s' is longer than %zu bytes", MB__SHM_DIR,
                      path, size);
  return 0;
}

/*
 * Open the lock file `file` (flags as for open(2), O_CREAT allowed) without blocking and
 * without following a link, and make sure it is a regular file: the directory is writable by
 * everyone (sticky), and a FIFO planted under the name would hang an open or a read. Returns
 * the descriptor, or -1 with errno set (EINVAL for something that is not a regular file).
 */
static int mb__lock_open(const char *file, int flags) {
  struct stat st;
  int fd = open(file, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0)
    return -1;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

int mb_os_lock_holder(const char *name, mb_os_lock_holder_t *holder) {
  char file[700], text[128];
  ssize_t n = -1;
  int fd;
  text[0] = '\0';
  if (mb_os_lock_path(name, file, sizeof file) == 0 && (fd = mb__lock_open(file, O_RDONLY)) >= 0) {
    n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
  }
  text[n > 0 ? n : 0] = '\0';
  return mb__os_lock_believe(text, "service", holder);
}

int mb_os_lock_take(const char *name, int flags, intptr_t *lock) {
  char file[700], rec[96];
  struct stat held, named;
  mb_os_lock_holder_t who;
  mb__lock_t *l;
  int fd, rc, tries, writable;
  size_t n;

  if ((rc = mb_os_lock_path(name, file, sizeof file)) != 0)
    return rc;
  for (tries = 0;; tries++) {
    writable = 1;
    fd = mb__lock_open(file, O_RDWR | O_CREAT);
    if (fd < 0 && errno == EACCES) { /* another user's file */
      writable = 0;
      fd = mb__lock_open(file, O_RDONLY);
    }
    if (fd < 0 && errno == EINVAL)
      return mb__errorf(MB_EEXIST, 0,
                        "lock file '%s' is not a regular file (someone else made it): remove it",
                        file);
    if (fd < 0)
      return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "open lock file '%s'", file);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      if (e != EWOULDBLOCK)
        return mb__errorf(mb__os_from_errno(e, MB_EOS), e, "lock '%s'", file);
      (void)mb_os_lock_holder(name, &who);
      return mb__errorf(MB_EBUSY, e, "lock '%s' is held by another process (%s)", file, who.what);
    }
    if (fstat(fd, &held) == 0 && stat(file, &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino)
      break;
    close(fd); /* its holder removed it meanwhile: lock the file that is there now */
    if (tries == 100)
      return mb__errorf(MB_EBUSY, 0, "lock '%s': the file keeps being replaced", file);
  }
  if ((l = malloc(sizeof *l + strlen(file))) == NULL) {
    close(fd);
    return mb__errorf(MB_ENOMEM, 0, "lock '%s'", file);
  }
  /* Who holds it, for the next taker's message: one write into an emptied file (a reader
   * that comes between sees nothing, or the whole line). Best-effort. */
  n = mb__os_lock_record(rec, sizeof rec, flags);
  if (writable && ftruncate(fd, 0) == 0 && pwrite(fd, rec, n, 0) != (ssize_t)n)
    (void)ftruncate(fd, 0);
  l->fd = fd;
  memcpy(l->path, file, strlen(file) + 1);
  *lock = (intptr_t)l;
  return 0;
}

void mb_os_lock_release(intptr_t lock) {
  mb__lock_t *l = (mb__lock_t *)lock;
  if (lock == 0 || lock == -1)
    return;
  unlink(l->path); /* while still holding it: see mb_os_lock_take */
  close(l->fd);
  free(l);
}

/* ---------------------------------------------------------------------------------------- */

/* The gid of group `name` into *gid. MB_ENOENT if there is no such group. */
static int mb__group_gid(const char *name, gid_t *gid, const char *what) {
  struct group gr, *res = NULL;
  char buf[4096];
  int e = getgrnam_r(name, &gr, buf, sizeof buf, &res);
  if (e != 0 || res == NULL)
    return what != NULL ? mb__errorf(MB_ENOENT, e, "group '%s' for '%s' does not exist", name, what)
                        : mb__errorf(MB_ENOENT, e, "group '%s' does not exist", name);
  *gid = gr.gr_gid;
  return 0;
}

/*
 * The socket file decides who may connect (connect(2) needs write permission on it). The
 * broker calls this before listen(), and a connect to a socket that does not listen yet is
 * refused, so there is no window with the mode libuv created the file with.
 */
int mb_os_pipe_secure(intptr_t handle, const char *path, const mb_os_access_t *access) {
  mode_t mode = access ? (mode_t)(access->mode & 0666) : 0600;
  gid_t gid = getegid();
  int rc;
  (void)handle;
  if (path == NULL || path[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "secure the control socket: no path");
  if (access && access->group && access->group[0] &&
      (rc = mb__group_gid(access->group, &gid, path)) != 0)
    return rc;
  if (chown(path, (uid_t)-1, gid) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "give control socket '%s' to gid %u",
                      path, (unsigned)gid);
  if (chmod(path, mode) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno,
                      "set mode %03o on control socket '%s'", (unsigned)mode, path);
  return 0;
}

uint64_t mb_os_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 0;
  return (uint64_t)rl.rlim_cur;
}

void mb_os_heap_trim(void) {
#if defined(__GLIBC__)
  (void)malloc_trim(0);
#endif
}

int mb_os_pipe_peer_admin(intptr_t conn, long *uid) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  *uid = -1;
  if (getsockopt((int)conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return 0; /* unknown peer: not an administrator */
  *uid = (long)cred.uid;
  return cred.uid == 0 || cred.uid == geteuid();
}

int mb_os_security_describe(intptr_t handle, const char *path, char *buf, size_t size) {
  struct stat st;
  int n;
  if ((path != NULL ? stat(path, &st) : fstat((int)handle, &st)) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "stat '%s'", path ? path : "(fd)");
  n = snprintf(buf, size, "%o %ld %ld", (unsigned)(st.st_mode & 07777), (long)st.st_uid,
               (long)st.st_gid);
  if (n < 0 || (size_t)n >= size)
    return mb__errorf(MB_ERANGE, 0, "security description longer than %zu bytes", size);
  return 0;
}

int mb_os_pipe_describe(const char *name, char *buf, size_t size) {
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "describe the control pipe: no name");
  return mb_os_security_describe(-1, name, buf, size);
}

/* ---------------------------------------------------------------------------------------- */

/*
 * Read state and start time (field 22, clock ticks since boot) of /proc/<pid>/stat.
 * The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
 */
static int mb__proc_stat(uint32_t pid, char *state, uint64_t *start) {
  char path[64], buf[1024];
  const char *p;
  ssize_t n;
  int fd, field;

  snprintf(path, sizeof path, "/proc/%u/stat", (unsigned)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return mb__errorf(errno == ENOENT ? MB_ESRCH : mb__os_from_errno(errno, MB_EOS), errno,
                      "query process %u", (unsigned)pid);
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return mb__errorf(MB_ESRCH, n < 0 ? errno : 0, "read %s", path);
  buf[n] = '\0';
  p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ')
    return mb__errorf(MB_EIO, 0, "parse %s", path);
  p += 2;
  *state = *p;
  /* p points at field 3; skip to field 22. */
  for (field = 3; field < 22 && p != NULL; field++) {
    p = strchr(p, ' ');
    if (p)
      p++;
  }
  if (p == NULL)
    return mb__errorf(MB_EIO, 0, "parse %s", path);
  *start = strtoull(p, NULL, 10);
  return 0;
}

void mb_os_proc_self(mb_os_procid_t *id) {
  char state;
  uint64_t start = 0;
  id->pid = (uint32_t)getpid();
  if (mb__proc_stat(id->pid, &state, &start) != 0)
    start = 0; /* /proc not mounted: identity degrades to the pid alone */
  id->start_time = start;
}

/* mb_os_pid's cache: set once, and again in every fork child by the handler. */
static volatile uint32_t mb__pid_cached;
static pthread_once_t mb__pid_once = PTHREAD_ONCE_INIT;

static void mb__pid_fork_child(void) {
  mb__pid_cached = (uint32_t)getpid();
}

static void mb__pid_init(void) {
  mb__pid_cached = (uint32_t)getpid();
  (void)pthread_atfork(NULL, NULL, mb__pid_fork_child); /* ENOMEM: fork children then keep
                                                           the parent's value */
}

uint32_t mb_os_pid(void) {
  (void)pthread_once(&mb__pid_once, mb__pid_init);
  return mb__pid_cached;
}

int mb_os_atfork_child(void (*fn)(void)) {
  int rc = pthread_atfork(NULL, NULL, fn);
  return rc == 0 ? 0 : mb__errorf(MB_ENOMEM, rc, "register a fork handler");
}

/*
 * The `Threads:` count of /proc/<pid>/status: the threads of the group not yet released,
 * a zombie leader included. 0 when the file cannot be read or parsed (the process is gone).
 */
static long mb__proc_threads(uint32_t pid) {
  char path[64], buf[4096];
  const char *p;
  snprintf(path, sizeof path, "/proc/%u/status", (unsigned)pid);
  if (mb__read_text(path, buf, sizeof buf) != 0)
    return 0;
  p = strstr(buf, "\nThreads:");
  return p != NULL ? strtol(p + 9, NULL, 10) : 0;
}

/*
 * A `Z` in /proc/<pid>/stat is the state of the thread-group leader, not of the process: a
 * main thread that called pthread_exit() stays a zombie while the group's other threads run
 * (proc(5); the kernel releases a zombie leader only once its group is empty). Such a process
 * is alive. Its status `Threads:` still counts the zombie leader, so more than one thread
 * means another one lives; a process that has really exited is a leader alone (1) or gone
 * (0). A thread caught between its exit and its release counts for one more sweep at most:
 * the error is "alive" a moment too long, never "dead" too early. This agrees with a pidfd,
 * which polls readable only when the leader is a zombie and its group is empty.
 */
int mb_os_proc_query(uint32_t pid, mb_os_procid_t *id) {
  char state;
  uint64_t start;
  int rc = mb__proc_stat(pid, &state, &start);
  if (rc != 0)
    return rc;
  if (state == 'X' || (state == 'Z' && mb__proc_threads(pid) <= 1))
    return mb__errorf(MB_ESRCH, 0, "process %u has exited", (unsigned)pid);
  id->pid = pid;
  id->start_time = start;
  return 0;
}

int mb_os_proc_alive(const mb_os_procid_t *id) {
  mb_os_procid_t now;
  int rc = mb_os_proc_query(id->pid, &now);
  if (rc == MB_ESRCH)
    return 0;
  if (rc != 0)
    return rc;
  return now.start_time == id->start_time;
}

/*
 * A watch is a small heap struct: the pidfd (-1 where pidfd_open is missing: then liveness
 * is asked of /proc each time) and the identity. pidfd_open refers to the process that has
 * the pid at the time of the call; the start time read after it proves it is the one meant
 * (if the pid had been reused in between, the start time differs and the watch is refused).
 * A pidfd polls readable once the whole process has exited, zombie or reaped (not while a
 * zombie leader's other threads run: mb_os_proc_query agrees).
 */
typedef struct mb__proc_watch_s {
  int fd;
  mb_os_procid_t id;
} mb__proc_watch_t;

int mb_os_proc_watch(const mb_os_procid_t *id, intptr_t *watch) {
  mb__proc_watch_t *w;
  int fd = -1, alive;
#ifdef SYS_pidfd_open
  fd = (int)syscall(SYS_pidfd_open, (pid_t)id->pid, 0);
  if (fd < 0 && errno == ESRCH)
    return mb__errorf(MB_ESRCH, errno, "watch process %u: no such process", (unsigned)id->pid);
  if (fd >= 0)
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if ((alive = mb_os_proc_alive(id)) != 1) {
    if (fd >= 0)
      close(fd);
    return alive < 0
               ? alive
               : mb__errorf(MB_ESRCH, 0, "watch process %u: it has exited", (unsigned)id->pid);
  }
  if ((w = malloc(sizeof *w)) == NULL) {
    if (fd >= 0)
      close(fd);
    return mb__errorf(MB_ENOMEM, 0, "watch process %u", (unsigned)id->pid);
  }
  w->fd = fd;
  w->id = *id;
  *watch = (intptr_t)w;
  return 0;
}

int mb_os_proc_watch_exited(intptr_t watch) {
  const mb__proc_watch_t *w = (const mb__proc_watch_t *)watch;
  if (w->fd >= 0) {
    struct pollfd p;
    p.fd = w->fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }
  return mb_os_proc_alive(&w->id) == 0;
}

int mb_os_proc_watch_fd(intptr_t watch) {
  return ((const mb__proc_watch_t *)watch)->fd;
}

int mb_os_proc_watch_notify(intptr_t watch, void (*fn)(void *arg), void *arg) {
  (void)arg;
  if (fn == NULL)
    return 0; /* nothing was ever registered */
  return mb__errorf(MB_ENOTSUP, 0, "watch process %u: no exit notification on this OS (%s)",
                    (unsigned)((const mb__proc_watch_t *)watch)->id.pid,
                    ((const mb__proc_watch_t *)watch)->fd >= 0
                        ? "poll its pidfd instead"
                        : "and no pidfd: pidfd_open is missing or refused; ask at intervals");
}

void mb_os_proc_watch_close(intptr_t watch) {
  mb__proc_watch_t *w = (mb__proc_watch_t *)watch;
  if (w == NULL)
    return;
  if (w->fd >= 0)
    close(w->fd);
  free(w);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct mb__thread_start_s {
  void (*fn)(void *);
  void *arg;
} mb__thread_start_t;

static void *mb__thread_main(void *p) {
  mb__thread_start_t s = *(mb__thread_start_t *)p;
  free(p);
  s.fn(s.arg);
  return NULL;
}

int mb_os_thread_start(mb_os_thread_t *t, void (*fn)(void *), void *arg) {
  pthread_t th;
  mb__thread_start_t *s = malloc(sizeof *s);
  int e;
  if (s == NULL)
    return mb__errorf(MB_ENOMEM, 0, "start a thread");
  s->fn = fn;
  s->arg = arg;
  if ((e = pthread_create(&th, NULL, mb__thread_main, s)) != 0) {
    free(s);
    return mb__errorf(mb__os_from_errno(e, MB_EOS), e, "start a thread");
  }
  t->handle = (intptr_t)th;
  return 0;
}

void mb_os_thread_join(mb_os_thread_t *t) {
  pthread_join((pthread_t)t->handle, NULL);
  t->handle = 0;
}

int mb_os_tls_create(mb_os_tls_t *tls, void (*on_exit)(void *value)) {
  pthread_key_t k;
  int e = pthread_key_create(&k, on_exit);
  if (e != 0)
    return mb__errorf(e == ENOMEM ? MB_ENOMEM : MB_EOS, e, "create a thread-local key");
  tls->key = (intptr_t)k;
  return 0;
}

void *mb_os_tls_get(const mb_os_tls_t *tls) {
  return pthread_getspecific((pthread_key_t)tls->key);
}

void mb_os_tls_set(const mb_os_tls_t *tls, void *value) {
  pthread_setspecific((pthread_key_t)tls->key, value);
}

/* ---------------------------------------------------------------------------------------- */
/* Private locks and heaps: a pthread mutex; the heap is common/tagheap.c's boundary-tag heap.   */

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(mb_os_mutex_t), "mb_os_mutex_t too small");

int mb_os_mutex_init(mb_os_mutex_t *m) {
  int e = pthread_mutex_init((pthread_mutex_t *)(void *)m, NULL);
  return e == 0 ? 0 : mb__errorf(mb__os_from_errno(e, MB_EOS), e, "create a mutex");
}

void mb_os_mutex_lock(mb_os_mutex_t *m) {
  pthread_mutex_lock((pthread_mutex_t *)(void *)m);
}

void mb_os_mutex_unlock(mb_os_mutex_t *m) {
  pthread_mutex_unlock((pthread_mutex_t *)(void *)m);
}

void mb_os_mutex_destroy(mb_os_mutex_t *m) {
  pthread_mutex_destroy((pthread_mutex_t *)(void *)m);
}

int mb_os_heap_create(unsigned flags, size_t initial, size_t maximum, mb_os_heap_t **heap) {
  return mb__theap_create(flags, initial, maximum, (mb__theap_t **)heap);
}

int mb_os_heap_alloc(mb_os_heap_t *heap, size_t size, void **p) {
  return mb__theap_alloc((mb__theap_t *)heap, size, p);
}

int mb_os_heap_realloc(mb_os_heap_t *heap, void *p, size_t size, void **np) {
  return mb__theap_realloc((mb__theap_t *)heap, p, size, np);
}

int mb_os_heap_free(mb_os_heap_t *heap, void *p) {
  return mb__theap_free((mb__theap_t *)heap, p);
}

int mb_os_heap_size(mb_os_heap_t *heap, const void *p, size_t *size) {
  return mb__theap_size((mb__theap_t *)heap, p, size);
}

int mb_os_heap_compact(mb_os_heap_t *heap, size_t *largest_free) {
  return mb__theap_compact((mb__theap_t *)heap, largest_free);
}

int mb_os_heap_validate(mb_os_heap_t *heap) {
  return mb__theap_validate((mb__theap_t *)heap);
}

int mb_os_heap_committed(mb_os_heap_t *heap, uint64_t *committed, uint64_t *reserved) {
  return mb__theap_committed((mb__theap_t *)heap, committed, reserved);
}

void mb_os_heap_destroy(mb_os_heap_t *heap) {
  mb__theap_destroy((mb__theap_t *)heap);
}

int mb_os_spawn(const char *const argv[], mb_os_child_t *child) {
  return mb_os_spawn_redirect(argv, NULL, child);
}

/*
 * The redirection is two file actions run in the child before exec: open out_path as fd 1
 * (without O_CLOEXEC, so it survives the exec), then dup2 it to fd 2. glibc's posix_spawn
 * reports a failed file action (or exec) as its return value, so a bad path is an error here
 * and not a child that exits 127.
 */
int mb_os_spawn_redirect(const char *const argv[], const char *out_path, mb_os_child_t *child) {
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int e;
  if (argv == NULL || argv[0] == NULL)
    return mb__errorf(MB_EINVAL, 0, "spawn: no program");
  if (out_path != NULL) {
    if ((e = posix_spawn_file_actions_init(&fa)) != 0)
      return mb__errorf(mb__os_from_errno(e, MB_ENOMEM), e, "spawn '%s': file actions", argv[0]);
    if ((e = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path,
                                              O_WRONLY | O_CREAT | O_TRUNC, 0666)) != 0 ||
        (e = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO)) != 0) {
      posix_spawn_file_actions_destroy(&fa);
      return mb__errorf(mb__os_from_errno(e, MB_ENOMEM), e, "spawn '%s': file actions", argv[0]);
    }
  }
  e = posix_spawn(&pid, argv[0], out_path ? &fa : NULL, NULL, (char *const *)argv, environ);
  if (out_path != NULL)
    posix_spawn_file_actions_destroy(&fa);
  if (e != 0)
    return mb__errorf(mb__os_from_errno(e, MB_EOS), e, "spawn '%s'%s%s", argv[0],
                      out_path ? " with its output to " : "", out_path ? out_path : "");
  child->handle = -1;
  child->pid = (uint32_t)pid;
  return 0;
}

static int mb__decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

int mb_os_child_wait(mb_os_child_t *child, int timeout_ms, int *exit_code) {
  uint64_t deadline =
      timeout_ms < 0 ? UINT64_MAX : mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u;
  unsigned nap = 1;
  int status;

  for (;;) {
    pid_t r = waitpid((pid_t)child->pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
    if (r == (pid_t)child->pid) {
      *exit_code = mb__decode_status(status);
      child->pid = 0;
      return 0;
    }
    if (r < 0 && errno != EINTR)
      return mb__errorf(mb__os_from_errno(errno, MB_ESRCH), errno, "wait for process %u",
                        (unsigned)child->pid);
    if (r == 0) {
      if (mb_os_mono_ns() >= deadline)
        return mb__errorf(MB_ETIMEOUT, 0, "process %u still running after %d ms",
                          (unsigned)child->pid, timeout_ms);
      /* Poll with a growing nap, capped at 10 ms, until the deadline. */
      mb_os_sleep_ms(nap);
      if (nap < 10)
        nap *= 2;
    }
  }
}

int mb_os_child_kill(mb_os_child_t *child) {
  if (child->pid == 0 || kill((pid_t)child->pid, SIGKILL) != 0)
    return mb__errorf(MB_ESRCH, child->pid ? errno : 0, "kill process %u", (unsigned)child->pid);
  return 0;
}

int mb_os_self_exe(char *buf, size_t size) {
  ssize_t n = readlink("/proc/self/exe", buf, size);
  if (n < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "read /proc/self/exe");
  if ((size_t)n >= size)
    return mb__errorf(MB_ERANGE, 0, "executable path longer than %zu bytes", size);
  buf[n] = '\0';
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Environment and installed services                                                       */

int mb_os_env_set(const char *name, const char *value) {
  if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL)
    return mb__errorf(MB_EINVAL, 0, "environment variable name '%s'", name ? name : "(null)");
  if ((value != NULL ? setenv(name, value, 1) : unsetenv(name)) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_ENOMEM), errno, "set environment variable %s",
                      name);
  return 0;
}

int mb_os_env_get(const char *name, char *buf, size_t size) {
  const char *v;
  size_t n;
  if (size > 0)
    buf[0] = '\0';
  if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL)
    return mb__errorf(MB_EINVAL, 0, "environment variable name '%s'", name ? name : "(null)");
  if ((v = getenv(name)) == NULL)
    return mb__errorf(MB_ENOENT, 0, "environment variable %s is not set", name);
  if ((n = strlen(v)) >= size)
    return mb__errorf(MB_ERANGE, 0, "environment variable %s is longer than %zu bytes", name,
                      size > 0 ? size - 1 : 0);
  memcpy(buf, v, n + 1);
  return 0;
}

int mb_os_utf8_argv(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

/* systemd units are not found by program name: there is never one to name. */
int mb_os_services_list(const char *exe, mb_os_service_t **list, int *count) {
  (void)exe;
  *list = NULL;
  *count = 0;
  return 0;
}

int mb_os_service_manager(void) {
  return MB_OS_SVCMGR_SYSTEMD;
}

/* ---------------------------------------------------------------------------------------- */
/* Control pipe client: a Unix stream socket                                                  */

int mb__pipe_name(const char *instance, char *buf, size_t size, int *is_path) {
  char dir[512];
  struct sockaddr_un sa;
  int rc, n;
  if ((rc = mb_os_runtime_dir(dir, sizeof dir)) != 0)
    return rc;
  n = snprintf(buf, size, "%s/membroker-%s.sock", dir, instance);
  if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof sa.sun_path)
    return mb__errorf(MB_ENAMETOOLONG, 0,
                      "socket path '%s/membroker-%s.sock' is longer than %zu bytes", dir, instance,
                      sizeof sa.sun_path - 1);
  if (is_path)
    *is_path = 1;
  return 0;
}

int mb__pipe_connect(mb_pipe_conn_t *c, const char *name, int timeout_ms) {
  struct sockaddr_un sa;
  size_t n = strlen(name);
  int fd, e;
  (void)timeout_ms; /* a Unix socket connect never waits for a free instance */
  memset(c, 0, sizeof *c);
  c->h = -1;
  if (n >= sizeof sa.sun_path)
    return mb__errorf(MB_ENAMETOOLONG, 0, "socket path '%s' is too long", name);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, name, n);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return mb__errorf(MB_EOS, errno, "create a socket");
  while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if ((e = errno) == EINTR)
      continue;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
      return mb__errorf(MB_ENOTRUNNING, e, "connect to '%s'", name);
    if (e == EACCES || e == EPERM)
      return mb__errorf(MB_EACCES, e, "connect to '%s'", name);
    return mb__errorf(MB_EOS, e, "connect to '%s'", name);
  }
  c->h = fd;
  return 0;
}

int mb__pipe_write(mb_pipe_conn_t *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send((int)c->h, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return mb__errorf(errno == EPIPE || errno == ECONNRESET ? MB_EIO : MB_EOS, errno,
                        "write to the broker");
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mb__pipe_read(mb_pipe_conn_t *c, void *data, size_t size, uint64_t deadline_ns, size_t *n) {
  struct pollfd pfd;
  ssize_t r;
  int rc;
  pfd.fd = (int)c->h;
  pfd.events = POLLIN;
  for (;;) {
    pfd.revents = 0;
    rc = poll(&pfd, 1, mb__os_ms_left(deadline_ns));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      return mb__errorf(MB_EOS, errno, "wait for the broker");
    if (rc == 0)
      return mb__errorf(MB_ETIMEOUT, 0, "no answer from the broker in time");
    r = recv((int)c->h, data, size, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      if (errno == ECONNRESET) {
        *n = 0;
        return 0;
      }
      return mb__errorf(MB_EOS, errno, "read from the broker");
    }
    *n = (size_t)r;
    return 0;
  }
}

void mb__pipe_close(mb_pipe_conn_t *c) {
  if (c->h >= 0)
    close((int)c->h);
  c->h = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = c->skip = 0;
}

void mb_os_ignore_sigpipe(void) {
  signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

void mb_os_file_discard(const char *path) {
  int e = errno;
  (void)unlink(path);
  errno = e;
}

int mb_os_file_create(const char *path, FILE **f) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "open '%s'", path);
  *f = fp;
  return 0;
}

int mb_os_file_tell(FILE *f, uint64_t *pos) {
  off_t o = ftello(f);
  if (o < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "find the position in a file");
  *pos = (uint64_t)o;
  return 0;
}

int mb_os_file_seek(FILE *f, uint64_t pos) {
  if (pos > (uint64_t)INT64_MAX || fseeko(f, (off_t)pos, SEEK_SET) != 0)
    return mb__errorf(pos > (uint64_t)INT64_MAX ? MB_EINVAL : mb__os_from_errno(errno, MB_EIO),
                      pos > (uint64_t)INT64_MAX ? 0 : errno, "move to byte %llu of a file",
                      (unsigned long long)pos);
  return 0;
}

int mb_os_file_seek_end(FILE *f, uint64_t *size) {
  off_t o;
  if (fseeko(f, 0, SEEK_END) != 0 || (o = ftello(f)) < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "move to the end of a file");
  if (size != NULL)
    *size = (uint64_t)o;
  return 0;
}

/* What a file that is not a regular one is, for messages. */
static const char *mb__file_kind(mode_t m) {
  if (S_ISDIR(m))
    return "a directory";
  if (S_ISFIFO(m))
    return "a FIFO (named pipe)";
  if (S_ISSOCK(m))
    return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m))
    return "a device";
  return "not a regular file";
}

int mb_os_read_file(const char *path, uint64_t max, char **data, size_t *len) {
  struct stat st;
  char *buf;
  size_t size, got = 0;
  int fd, e, rc;
  /* O_NONBLOCK: opening a FIFO with no writer would wait; fstat refuses it right after. */
  if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "open '%s'", path);
  if (fstat(fd, &st) != 0) {
    e = errno;
    close(fd);
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "stat '%s'", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return mb__errorf(MB_EINVAL, 0, "read '%s': it is %s, not a regular file", path,
                      mb__file_kind(st.st_mode));
  }
  if ((rc = mb__os_read_buffer(path, (uint64_t)st.st_size, max, &buf)) != 0) {
    close(fd);
    return rc;
  }
  size = (size_t)st.st_size;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got > (1u << 30) ? (1u << 30) : size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      e = errno;
      free(buf);
      close(fd);
      return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "read '%s'", path);
    }
    if (n == 0)
      break; /* it shrank */
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  *data = buf;
  *len = got;
  return 0;
}

/* strerror, not strerror_r: _GNU_SOURCE changes what strerror_r returns, and glibc's strerror
 * gives a constant string for every known code. */
/* An OS code is an errno value here: one text for both. */
const char *mb_os_error_text(long os_code, char *buf, size_t size) {
  if (os_code > 0 && os_code <= INT_MAX)
    return mb_os_errno_text((int)os_code, buf, size);
  if (size > 0)
    snprintf(buf, size, "os error %ld", os_code);
  return buf;
}

int mb_os_file_open(const char *path, const char *mode, FILE **f) {
  FILE *fp;
  if (mode[0] == 'w') {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0)
      return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "open '%s'", path);
    if ((fp = fdopen(fd, mode)) == NULL) {
      int e = errno;
      close(fd);
      return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "open '%s'", path);
    }
  } else if ((fp = fopen(path, mode)) == NULL) {
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "open '%s'", path);
  }
  *f = fp;
  return 0;
}

int mb_os_file_append(const char *path, FILE **f) {
  struct stat st;
  FILE *fp;
  int e, fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) {
    e = errno;
    if (e == ELOOP)
      return mb__errorf(MB_EACCES, e,
                        "open '%s': it is a symbolic link, which a log is not written through",
                        path);
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "open '%s'", path);
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1) {
    e = errno;
    close(fd);
    return mb__errorf(MB_EACCES, 0,
                      "open '%s': it is not a plain file of one name (a hard link or a special "
                      "file), which a log is not written through",
                      path);
  }
  if ((fp = fdopen(fd, "a")) == NULL) {
    e = errno;
    close(fd);
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "open '%s'", path);
  }
  *f = fp;
  return 0;
}

int mb_os_file_sync(FILE *f) {
  if (fflush(f) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "write a file");
  if (fsync(fileno(f)) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "sync a file to disk");
  return 0;
}

int mb_os_file_replace(const char *from, const char *to) {
  const char *slash = strrchr(to, '/');
  char dir[4096];
  int fd;
  if (mb__os_injected_rename_failure())
    return mb__errorf(MB_EBUSY, 0, "rename '%s' to '%s' (injected failure)", from, to);
  if (rename(from, to) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "rename '%s' to '%s'", from, to);
  /* The rename lives in the directory: sync it, so the new name is on disk too. */
  if (slash == NULL) {
    snprintf(dir, sizeof dir, ".");
  } else if ((size_t)(slash - to) + 2 > sizeof dir) {
    return 0; /* renamed; no directory sync for a path this long */
  } else {
    memcpy(dir, to, (size_t)(slash - to) + 1);
    dir[slash == to ? 1 : slash - to] = '\0';
  }
  if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "open directory '%s'", dir);
  if (fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    close(fd);
    return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "sync directory '%s'", dir);
  }
  close(fd);
  return 0;
}

int mb_os_file_remove(const char *path) {
  if (unlink(path) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "remove '%s'", path);
  return 0;
}

int mb_os_dir_create(const char *path) {
  struct stat st;
  if (mkdir(path, 0750) == 0)
    return 0;
  if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return 0;
  return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "create directory '%s'", path);
}

int mb_os_dir_remove(const char *path) {
  if (rmdir(path) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "remove directory '%s'", path);
  return 0;
}

int mb_os_path_kind(const char *path, int follow, mb_os_path_kind_t *kind) {
  struct stat st;
  *kind = MB_OS_PATH_NONE;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    return mb__errorf(mb__os_from_errno(errno, MB_EIO), errno, "stat '%s'", path);
  }
  if (S_ISREG(st.st_mode))
    *kind = MB_OS_PATH_FILE;
  else if (S_ISDIR(st.st_mode))
    *kind = MB_OS_PATH_DIR;
  else if (S_ISLNK(st.st_mode))
    *kind = MB_OS_PATH_LINK;
  else
    *kind = MB_OS_PATH_OTHER;
  return 0;
}

int mb_os_path_writable(const char *path) {
  if (access(path, W_OK) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EACCES), errno, "write '%s'", path);
  return 0;
}

int mb_os_group_exists(const char *name) {
  gid_t gid;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "no group name");
  return mb__group_gid(name, &gid, NULL);
}

int mb_os_group_may_give(const char *name) {
  gid_t gid, *list = NULL;
  int n, i, rc, found = 0;
  if (name == NULL || name[0] == '\0')
    return mb__errorf(MB_EINVAL, 0, "no group name");
  if ((rc = mb__group_gid(name, &gid, NULL)) != 0)
    return rc;
  if (geteuid() == 0 || getegid() == gid)
    return 0;
  if ((n = getgroups(0, NULL)) > 0 && (list = malloc((size_t)n * sizeof *list)) != NULL &&
      (n = getgroups(n, list)) > 0)
    for (i = 0; i < n && !found; i++)
      found = list[i] == gid;
  free(list);
  if (found)
    return 0;
  return mb__errorf(MB_EACCES, 0, "this user (uid %u) is not in group '%s' (gid %u)",
                    (unsigned)geteuid(), name, (unsigned)gid);
}

int mb_os_data_dir(char *buf, size_t size) {
  if (size > 0)
    buf[0] = '\0';
  return mb__errorf(MB_ENOTSUP, 0, "no machine-wide data directory on POSIX (log to stderr)");
}

int mb_os_data_dir_prepare(const char *sub, char *buf, size_t size) {
  (void)sub;
  if (buf != NULL && size > 0)
    buf[0] = '\0';
  return mb__errorf(MB_ENOTSUP, 0, "no machine-wide data directory on POSIX (log to stderr)");
}

/* ---------------------------------------------------------------------------------------- */

uint64_t mb_os_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mb_os_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mb_os_time_split(uint64_t wall_ns, int local, mb_os_tm_t *tm) {
  time_t secs = (time_t)(wall_ns / 1000000000u);
  struct tm t;
  int ok = (local ? localtime_r(&secs, &t) : gmtime_r(&secs, &t)) != NULL;
  mb__os_tm_fill(ok ? &t : NULL, wall_ns, tm);
}

void mb_os_yield(void) {
  (void)sched_yield();
}

void mb_os_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Read "Key:   N kB" from /proc/meminfo into *out (bytes). */
int mb_os_memstatus(mb_os_memstatus_t *st) {
  char buf[4096];
  int rc = mb__read_text("/proc/meminfo", buf, sizeof buf);
  if (rc != 0)
    return rc;
  if (mb__meminfo(buf, "MemTotal:", &st->total) != 0 ||
      mb__meminfo(buf, "MemAvailable:", &st->available) != 0)
    return mb__errorf(MB_EIO, 0, "parse /proc/meminfo");
  return 0;
}

int mb_os_commit_caps(mb_os_commit_caps_t *caps) {
  char buf[256];
  struct statvfs sv;
  uint64_t limit = 0;
  int rc;
  mb_os_memstatus_t ms;
  memset(caps, 0, sizeof *caps);
  caps->commit_limit = caps->section_space = UINT64_MAX;
  if ((rc = mb_os_memstatus(&ms)) != 0)
    return rc;
  caps->physical = ms.total;
  /* vm.overcommit_memory: only mode 2 (never overcommit) refuses a page past CommitLimit. */
  if (mb__read_text("/proc/sys/vm/overcommit_memory", buf, sizeof buf) == 0) {
    if (buf[0] == '2') {
      char info[4096];
      if ((rc = mb__read_text("/proc/meminfo", info, sizeof info)) != 0)
        return rc;
      if (mb__meminfo(info, "CommitLimit:", &limit) != 0)
        return mb__errorf(MB_EIO, 0, "parse /proc/meminfo: no CommitLimit");
      caps->commit_limit = limit;
      snprintf(caps->commit_what, sizeof caps->commit_what,
               "the commit limit (CommitLimit, vm.overcommit_memory 2)");
    }
  }
  if (statvfs(MB__SHM_DIR, &sv) != 0)
    return mb__errorf(mb__os_from_errno(errno, MB_EOS), errno, "statvfs %s", MB__SHM_DIR);
  if (sv.f_blocks != 0) {
    caps->section_space = (uint64_t)sv.f_blocks * (uint64_t)sv.f_frsize;
    snprintf(caps->section_what, sizeof caps->section_what, "the size of " MB__SHM_DIR);
  }
  return 0;
}

int mb_os_self_rss(uint64_t *rss) {
  char buf[128];
  unsigned long long size = 0, resident = 0;
  int rc = mb__read_text("/proc/self/statm", buf, sizeof buf);
  if (rc != 0)
    return rc;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
    return mb__errorf(MB_EIO, 0, "parse /proc/self/statm");
  *rss = (uint64_t)resident * mb_os_mem_config()->page_size;
  return 0;
}

#endif /* MB_OS_POSIX */
