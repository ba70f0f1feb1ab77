/*
 * maps.c - game data maps (see maps.h): load a GMAP file into a read-only shared section,
 * publish it in the map directory, unload it.
 *
 * The load fills the section a piece (1 MiB) at a time, and each piece is added to the
 * checksum (XXH3-64, gmap.h) while it is still in the cache; the file's own header.checksum
 * must match (GMAP version 2). Where the OS can write a section through its handle (Linux:
 * pwrite on the shm descriptor, mb_os_section_write), a piece is read into a buffer, hashed
 * and written: no page fault, and tmpfs does not zero the pages first (~30% less than the
 * view below, measured). Elsewhere (Windows) the section's pages are made present in bulk
 * where the OS can (mb_os_populate_write) and the file is read straight into the view.
 *
 * The file is read with libuv's synchronous file calls (a NULL callback: they run on the
 * calling thread and use no loop, so the worker passes none): they take UTF-8 paths and
 * 64-bit sizes and offsets on every OS, where stdio's ftell is 32 bits on Windows and fopen
 * takes the ANSI code page there.
 *
 * Directory entry protocol (layout.h): the broker writes seq, then (after a fence) the name
 * and the fields, then stores state READY; an unload stores FREE first. A reader loads seq
 * and state, the fields, a fence, then state and seq again, and keeps what it read only when
 * both are unchanged and READY; with the fences on both sides a reader that saw any field of
 * a newer load sees its seq too.
 */
#include "maps.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker.h"
#include "gmap.h"
#include "hash.h"
#include "log.h"
#include "svc.h"
#include "uverr.h"

#define MB_MAP_READ_CHUNK (1u << 20) /* bytes per read call: checksummed while in the cache */
#define MB_MAP_SEQ_TRIES 32          /* seqs tried past names a dead broker's game servers hold */

/* File type bits of uv_stat_t.st_mode: libuv gives the POSIX values on every OS. */
#define MB_MAP_IFMT 0170000u
#define MB_MAP_IFREG 0100000u

void (*mb__map_load_test_hook)(const char *path);
int mb__map_load_mode = MB_MAP_LOAD_AUTO;

struct mb_map_load_s {
  /* in (set by begin) */
  int slot;
  char name[MB_MAP_NAME_MAX];
  char path[MB_CONFIG_PATH_MAX];
  char instance[MB_INSTANCE_MAX];
  int sec_flags;
  uint32_t mode; /* sections.mode less its write bits: nobody opens a map to write */
  char group[64];
  const mb_state_t *state; /* commit limit and total, read atomically */
  uint64_t start_ns;
  /* in: the first seq to try; out: the one used */
  uint32_t seq;
  /* out (run) */
  int rc;
  long os_code; /* the OS's error behind rc, or 0 */
  int bad_input;
  const char *tail; /* msg's own ending (mb__errorf_as), or NULL: rc's sentence */
  char msg[600];
  mb_os_section_t sec; /* created, filled and checked when rc == 0 */
  uint64_t size;
  uint64_t checksum;
  mb_gmap_header_t hdr;
};

/* ---- the job --------------------------------------------------------------------------------- */

/*
 * Cut the ": <ending>" (and the " (os error N)" after it) that mb__errorf or mb__errorf_as put
 * at the end of msg, so that the message can be recorded again without saying it twice. The
 * ending is this thread's last (mb__error_tail): returned when it is not rc's own sentence
 * and was cut (give it to mb__errorf_as again), else NULL.
 */
static const char *mb__cut_reason(char *msg, int rc) {
  const char *own = mb__error_tail(rc);
  char tail[160];
  size_t n = strlen(msg), k, i;
  snprintf(tail, sizeof tail, ": %s", own);
  k = strlen(tail);
  for (i = n; i-- > 0;) {
    if (strncmp(msg + i, tail, k) != 0)
      continue;
    if (msg[i + k] == '\0' || strncmp(msg + i + k, " (os error ", 11) == 0) {
      msg[i] = '\0';
      return own != mb_strerror(rc) ? own : NULL;
    }
    return NULL;
  }
  return NULL;
}

/* Record again, for this thread, a message (rc, os) that mb__cut_reason left `tail` of. */
static int mb__reraise(int rc, long os, const char *tail, const char *msg) {
  if (tail != NULL)
    return mb__errorf_as(rc, tail, "%s", msg);
  return mb__errorf(rc, os, "%s", msg);
}

static void mb__job_fail(mb_map_load_t *job, int rc, int bad_input, const char *fmt, ...)
    MB_PRINTF(4, 5);

/* Record the job's failure: its code, whom to blame and its message. */
static void mb__job_fail(mb_map_load_t *job, int rc, int bad_input, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->msg, sizeof job->msg, fmt, ap);
  va_end(ap);
  job->tail = mb__cut_reason(job->msg, rc);
  job->rc = rc;
  job->bad_input = bad_input;
}

/* 1 if two stat results say the file is the same and unchanged: device, inode, size, and the
 * modification and change times (a coarse clock can give one write the same mtime as the
 * last: writers should write a new file and rename it over the map, see README). */
static int mb__same_file(const uv_stat_t *a, const uv_stat_t *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Close a load's section and remove its name (game servers that map it keep reading it). */
static void mb__map_section_drop(mb_os_section_t *sec, const char *instance, const char *name,
                                 uint32_t seq, int flags) {
  char obj[MB_OS_NAME_MAX + 1];
  mb_os_section_close(sec);
  if (mb__map_object_name(obj, sizeof obj, instance, name, seq) == 0)
    mb_os_section_unlink(obj, flags);
}

/*
 * Create the job's section of `size` bytes under the first free name from job->seq on. A
 * name that exists belongs to a broker of this instance that died (this one holds the
 * instance lock and never reuses a seq): it is removed and tried again, and where the OS
 * keeps it while others hold it (Windows: a game server of the dead broker maps it) the next
 * seq is taken.
 */
static int mb__job_create(mb_map_load_t *job, uint64_t size) {
  char obj[MB_OS_NAME_MAX + 1];
  mb_os_access_t acc;
  int rc = MB_EEXIST, tries, again;
  acc.mode = job->mode;
  acc.group = job->group[0] ? job->group : NULL;
  for (tries = 0; tries < MB_MAP_SEQ_TRIES && rc == MB_EEXIST; tries++) {
    if ((rc = mb__map_object_name(obj, sizeof obj, job->instance, job->name, job->seq)) != 0)
      return rc;
    for (again = 0; again < 2; again++) {
      rc = mb_os_section_create(&job->sec, obj, size, job->sec_flags, &acc);
      if (rc != MB_EEXIST || mb_os_section_unlink(obj, job->sec_flags) != 0)
        break;
    }
    if (rc == MB_EEXIST)
      job->seq++;
  }
  return rc;
}

/*
 * Read the open file `fd`, `size` bytes as stat said, into view[0..size) and prove it ended
 * there: a read that ends early or a byte past the end means the file changed meanwhile.
 * Each piece goes into the image's checksum `hash` as it arrives. With a `bounce` buffer
 * (MB_MAP_READ_CHUNK bytes) a piece is read there and written into the section through its
 * handle; without, it is read into the view.
 * 0, or the failure recorded in the job.
 */
static int mb__job_read(mb_map_load_t *job, uv_file fd, unsigned char *view, uint64_t size,
                        mb_hash_t *hash, unsigned char *bounce) {
  uint64_t off = 0;
  unsigned char extra;
  uv_fs_t req;
  uv_buf_t buf;
  int r, rc;
  while (off < size) {
    uint64_t n = size - off < MB_MAP_READ_CHUNK ? size - off : MB_MAP_READ_CHUNK;
    buf = uv_buf_init(bounce != NULL ? (char *)bounce : (char *)view + off, (unsigned)n);
    r = uv_fs_read(NULL, &req, fd, &buf, 1, (int64_t)off, NULL);
    uv_fs_req_cleanup(&req);
    if (r == UV_EINTR)
      continue;
    if (r < 0) {
      mb__job_fail(job, mb__from_uv(r), 0, "map '%s': cannot read '%s' at offset %llu: %s",
                   job->name, job->path, (unsigned long long)off, uv_strerror(r));
      return -1;
    }
    if (r == 0) {
      mb__job_fail(job, MB_EINVAL, 1,
                   "map '%s': '%s' changed while it was being loaded (it was %llu bytes and "
                   "ended after %llu); try again once it is written",
                   job->name, job->path, (unsigned long long)size, (unsigned long long)off);
      return -1;
    }
    if (bounce != NULL) {
      mb__gmap_checksum_more(hash, off, bounce, (uint64_t)r);
      if ((rc = mb_os_section_write(&job->sec, off, bounce, (size_t)r)) != 0) {
        job->os_code = mb_last_os_error();
        mb__job_fail(job, rc, 0, "map '%s': %s", job->name, mb_last_error());
        return -1;
      }
    } else {
      mb__gmap_checksum_more(hash, off, view + off, (uint64_t)r);
    }
    off += (uint64_t)r;
  }
  do {
    buf = uv_buf_init((char *)&extra, 1);
    r = uv_fs_read(NULL, &req, fd, &buf, 1, (int64_t)size, NULL);
    uv_fs_req_cleanup(&req);
  } while (r == UV_EINTR);
  if (r > 0) {
    mb__job_fail(job, MB_EINVAL, 1,
                 "map '%s': '%s' changed while it was being loaded (it grew past %llu bytes); try "
                 "again once it is written",
                 job->name, job->path, (unsigned long long)size);
    return -1;
  }
  if (r < 0) {
    mb__job_fail(job, mb__from_uv(r), 0, "map '%s': cannot read '%s' at offset %llu: %s", job->name,
                 job->path, (unsigned long long)size, uv_strerror(r));
    return -1;
  }
  return 0;
}

void mb__map_load_run(mb_map_load_t *job) {
  static const unsigned char nothing = 0;
  uv_fs_t req;
  uv_stat_t st0, st1;
  uv_file fd;
  unsigned char *view = NULL, *bounce = NULL;
  uint64_t size, secsize, limit, sum;
  mb_hash_t hash;
  int r, rc;

  memset(&st0, 0, sizeof st0);
  memset(&st1, 0, sizeof st1);
  job->rc = 0;
  job->bad_input = 0;
  job->msg[0] = '\0';

  /* A regular file only: opening a FIFO would block, a device has no size. */
  r = uv_fs_stat(NULL, &req, job->path, NULL);
  if (r == 0)
    st0 = req.statbuf;
  uv_fs_req_cleanup(&req);
  if (r < 0) {
    mb__job_fail(job, mb__from_uv(r), r != UV_ENOMEM, "map '%s': cannot open '%s': %s%s", job->name,
                 job->path, uv_strerror(r), r == UV_ENOENT ? mb__svc_sandbox_hint(job->path) : "");
    return;
  }
  if ((st0.st_mode & MB_MAP_IFMT) != MB_MAP_IFREG) {
    mb__job_fail(job, MB_EINVAL, 1, "map '%s': '%s' is not a regular file", job->name, job->path);
    return;
  }
  /* Non-blocking, so a FIFO swapped in after the check above cannot hold the open (and the
   * broker's stop) forever; the fstat below refuses it. */
  fd = uv_fs_open(NULL, &req, job->path, UV_FS_O_RDONLY | UV_FS_O_NONBLOCK, 0, NULL);
  uv_fs_req_cleanup(&req);
  if (fd < 0) {
    mb__job_fail(job, mb__from_uv(fd), fd != UV_ENOMEM && fd != UV_EMFILE,
                 "map '%s': cannot open '%s': %s%s", job->name, job->path, uv_strerror(fd),
                 fd == UV_ENOENT ? mb__svc_sandbox_hint(job->path) : "");
    return;
  }
  r = uv_fs_fstat(NULL, &req, fd, NULL);
  if (r == 0)
    st0 = req.statbuf;
  uv_fs_req_cleanup(&req);
  if (r < 0) {
    mb__job_fail(job, mb__from_uv(r), 0, "map '%s': cannot stat '%s': %s", job->name, job->path,
                 uv_strerror(r));
    goto done;
  }
  if ((st0.st_mode & MB_MAP_IFMT) != MB_MAP_IFREG) {
    mb__job_fail(job, MB_EINVAL, 1, "map '%s': '%s' is not a regular file", job->name, job->path);
    goto done;
  }
  size = st0.st_size;
  if (size == 0) { /* the validator says what an empty file lacks */
    if (mb_gmap_check(&nothing, 0, job->path) != 0)
      mb__job_fail(job, MB_EINVAL, 1, "map '%s': %s", job->name, mb_last_error());
    else
      mb__job_fail(job, MB_EINVAL, 1, "map '%s': '%s' is empty", job->name, job->path);
    goto done;
  }

  if (size > mb__gmap_image_size(UINT32_MAX, UINT32_MAX)) {
    mb__job_fail(job, MB_EINVAL, 1,
                 "map '%s': '%s' is %llu bytes, more than any GMAP file can hold (%llu)", job->name,
                 job->path, (unsigned long long)size,
                 (unsigned long long)mb__gmap_image_size(UINT32_MAX, UINT32_MAX));
    goto done;
  }
  /* The header first (64 bytes) against the file's real size: a version 1, forged-size or
   * truncated file is refused here, before any shared memory is taken or the body read. The
   * whole check runs again on the section's bytes below (the file may change meanwhile). */
  {
    unsigned char head[MB_GMAP_HEADER_SIZE];
    uint64_t want = size < sizeof head ? size : sizeof head, got = 0;
    while (got < want) {
      uv_buf_t ub = uv_buf_init((char *)head + got, (unsigned)(want - got));
      r = uv_fs_read(NULL, &req, fd, &ub, 1, (int64_t)got, NULL);
      uv_fs_req_cleanup(&req);
      if (r < 0) {
        mb__job_fail(job, mb__from_uv(r), 0, "map '%s': cannot read '%s' at offset %llu: %s",
                     job->name, job->path, (unsigned long long)got, uv_strerror(r));
        goto done;
      }
      if (r == 0)
        break;
      got += (uint64_t)r;
    }
    if ((rc = mb__gmap_check_header(head, got < want ? got : size, job->path)) != 0) {
      mb__job_fail(job, rc, 1, "map '%s': %s", job->name, mb_last_error());
      goto done;
    }
  }
  /* Refuse early what the commit limit cannot take (finish charges it exactly). */
  secsize = mb__round_up(size, mb_os_mem_config()->page_size);
  limit = mb_load64(&job->state->game.commit_limit);
  if (limit != 0 && mb_load64(&job->state->game.committed_total) + secsize > limit) {
    mb__job_fail(job, MB_ENOSPC, 1,
                 "map '%s': '%s' needs %llu bytes, more than limits.max_committed (%llu) leaves "
                 "(%llu committed)",
                 job->name, job->path, (unsigned long long)secsize, (unsigned long long)limit,
                 (unsigned long long)mb_load64(&job->state->game.committed_total));
    goto done;
  }

  if (mb__map_load_test_hook != NULL)
    mb__map_load_test_hook(job->path);
  if ((rc = mb__job_create(job, secsize)) != 0) {
    job->os_code = mb_last_os_error();
    mb__job_fail(job, rc, 0, "map '%s': %s", job->name, mb_last_error());
    goto done;
  }
  if ((rc = mb_os_section_map(&job->sec, 0, 1, (void **)&view)) != 0) {
    job->os_code = mb_last_os_error();
    mb__job_fail(job, rc, 0, "map '%s': %s", job->name, mb_last_error());
    goto done;
  }
  if (mb__map_load_mode == MB_MAP_LOAD_AUTO && mb_os_section_write(&job->sec, 0, NULL, 0) == 0 &&
      (bounce = malloc(MB_MAP_READ_CHUNK)) == NULL) {
    mb__job_fail(job, MB_ENOMEM, 0, "map '%s': a read buffer of %u bytes", job->name,
                 MB_MAP_READ_CHUNK);
    goto done;
  }
  /* Best effort: where the OS cannot populate in bulk, the read faults the pages in. */
  if (bounce == NULL && mb__map_load_mode != MB_MAP_LOAD_VIEW_FAULTS)
    (void)mb_os_populate_write(view, size);
  mb__hash_init(&hash);
  if (mb__job_read(job, fd, view, size, &hash, bounce) != 0)
    goto done;
  r = uv_fs_fstat(NULL, &req, fd, NULL);
  if (r == 0)
    st1 = req.statbuf;
  uv_fs_req_cleanup(&req);
  if (r < 0) {
    mb__job_fail(job, mb__from_uv(r), 0, "map '%s': cannot stat '%s': %s", job->name, job->path,
                 uv_strerror(r));
    goto done;
  }
  if (!mb__same_file(&st0, &st1)) {
    mb__job_fail(job, MB_EINVAL, 1,
                 "map '%s': '%s' changed while it was being loaded (written to during the "
                 "read); try again once it is written",
                 job->name, job->path);
    goto done;
  }
  /* The section's bytes are what clients will see: check those. */
  if ((rc = mb_gmap_check(view, size, job->path)) != 0) {
    mb__job_fail(job, rc, 1, "map '%s': %s", job->name, mb_last_error());
    goto done;
  }
  sum = mb__hash_end(&hash);
  if (sum != mb__gmap_stored_checksum(view)) {
    mb__job_fail(job, MB_EIO, 1,
                 "map '%s': '%s': checksum mismatch: header.checksum is %016llx, the bytes give "
                 "%016llx (" MB_HASH_NAME "): the file is corrupt or was changed after it was "
                 "written",
                 job->name, job->path, (unsigned long long)mb__gmap_stored_checksum(view),
                 (unsigned long long)sum);
    job->tail = MB_GMAP_TAIL_CHECKSUM;
    goto done;
  }
  job->size = size;
  job->checksum = sum;
  mb__gmap_header(view, &job->hdr);

done:
  free(bounce);
  if (view != NULL)
    mb_os_section_unmap(view, job->sec.size);
  uv_fs_close(NULL, &req, fd, NULL);
  uv_fs_req_cleanup(&req);
  if (job->rc != 0 && job->sec.handle > 0) {
    mb__map_section_drop(&job->sec, job->instance, job->name, job->seq, job->sec_flags);
  }
}

/* ---- begin, finish, unload ---------------------------------------------------------------------
 */

/* The loaded (or, with loading, also the loading) slot of map `name`, or -1. */
static int mb__slot_of(const mb_broker_t *b, const char *name, int loading) {
  int i;
  for (i = 0; i < MB_MAPS_MAX; i++) {
    const mb_map_slot_t *s = &b->maps[i];
    if ((s->state == MB_MAP_SLOT_LOADED || (loading && s->state == MB_MAP_SLOT_LOADING)) &&
        strcmp(s->name, name) == 0)
      return i;
  }
  return -1;
}

int mb__map_load_begin(mb_broker_t *b, const char *name, const char *path, mb_map_load_t **job) {
  mb_map_load_t *j;
  mb_map_desc_t *d;
  int i;
  if (name == NULL || !mb__name_ok(name, MB_MAP_NAME_MAX, 0))
    return mb__errorf(MB_EINVAL, 0, "map name '%.64s': use 1..%d characters of a-z 0-9 _ -",
                      name ? name : "", MB_MAP_NAME_MAX - 1);
  if (path == NULL || path[0] == '\0' || strlen(path) >= MB_CONFIG_PATH_MAX)
    return mb__errorf(MB_EINVAL, 0, "map '%s': the path must be 1..%d bytes", name,
                      MB_CONFIG_PATH_MAX - 1);
  if ((i = mb__slot_of(b, name, 1)) >= 0) {
    if (b->maps[i].state == MB_MAP_SLOT_LOADING)
      return mb__errorf(MB_EBUSY, 0, "map '%s' is being loaded", name);
    return mb__errorf(MB_EEXIST, 0, "map '%s' is loaded; unload it first", name);
  }
  for (i = 0; i < MB_MAPS_MAX && b->maps[i].state != MB_MAP_SLOT_FREE; i++)
    ;
  if (i == MB_MAPS_MAX)
    return mb__errorf(MB_EFULL, 0, "map '%s': %d maps are loaded or loading, the most there may be",
                      name, MB_MAPS_MAX);
  if ((j = calloc(1, sizeof *j)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "map '%s': the load's job", name);
  j->slot = i;
  snprintf(j->name, sizeof j->name, "%s", name);
  snprintf(j->path, sizeof j->path, "%s", path);
  snprintf(j->instance, sizeof j->instance, "%s", b->cfg.instance);
  snprintf(j->group, sizeof j->group, "%s", b->cfg.section_group);
  j->sec_flags = b->flags;
  j->mode = b->cfg.section_mode & 0444u;
  j->state = b->state;
  j->start_ns = mb_os_mono_ns();
  j->seq = b->map_seq++;
  j->sec.handle = -1;
  j->rc = MB_EINTERNAL;
  snprintf(j->msg, sizeof j->msg, "map '%s': the load did not run", name);

  /* The entry stays FREE (readers skip it) but names the section to be, so a broker that
   * dies during the load leaves a name its successor can purge. */
  d = &b->state->maps[i];
  mb_store32(&d->state, MB_MAP_FREE);
  mb_store32(&d->seq, j->seq);
  mb_fence();
  mb__name_set(d->name, name);
  b->maps[i].state = MB_MAP_SLOT_LOADING;
  snprintf(b->maps[i].name, sizeof b->maps[i].name, "%s", name);
  *job = j;
  return 0;
}

const char *mb__map_load_name(const mb_map_load_t *job) {
  return job->name;
}

int mb__map_load_finish(mb_broker_t *b, mb_map_load_t *job, int *bad_input, int *slot) {
  mb_map_slot_t *s = &b->maps[job->slot];
  mb_map_desc_t *d = &b->state->maps[job->slot];
  mb_state_t *st = b->state;
  uint64_t ms = (mb_os_mono_ns() - job->start_ns) / 1000000u;
  int rc = job->rc, blame = job->bad_input;
  long job_os = job->os_code;
  const char *tail = job->tail;
  char msg[sizeof job->msg];

  if (job->seq >= b->map_seq)
    b->map_seq = job->seq + 1;
  if (rc == 0) {
    /* Charge the section; refuse it if the limit was reached meanwhile. */
    if (mb__commit_charge(st, job->sec.size) != 0) {
      uint64_t limit = mb_load64(&st->game.commit_limit);
      mb__job_fail(job, MB_ENOSPC, 1,
                   "map '%s': '%s' needs %llu bytes, more than limits.max_committed (%llu) leaves",
                   job->name, job->path, (unsigned long long)job->sec.size,
                   (unsigned long long)limit);
      mb__map_section_drop(&job->sec, job->instance, job->name, job->seq, job->sec_flags);
      rc = job->rc;
      blame = 1;
    }
  }
  if (rc != 0) {
    mb_store32(&d->seq, job->seq); /* the name a dead broker's successor would purge */
    s->state = MB_MAP_SLOT_FREE;
    s->name[0] = '\0';
    memcpy(msg, job->msg, sizeof msg);
    free(job);
    mb_log_warn("%s", msg);
    if (bad_input)
      *bad_input = blame;
    return mb__reraise(rc, job_os, tail, msg);
  }

  s->state = MB_MAP_SLOT_LOADED;
  s->seq = job->seq;
  snprintf(s->path, sizeof s->path, "%s", job->path);
  s->sec = job->sec;
  s->size = job->size;
  s->charged = job->sec.size;
  mb_store32(&d->seq, job->seq);
  mb_fence();
  mb__name_set(d->name, job->name);
  mb_store64(&d->size, job->size);
  mb_store64(&d->checksum, job->checksum);
  mb_store64(&d->loaded_wall_ns, mb_os_wall_ns());
  mb_store32(&d->width, job->hdr.width);
  mb_store32(&d->height, job->hdr.height);
  mb_store32(&d->tile_count, job->hdr.tile_count);
  mb_store32(&d->object_count, job->hdr.object_count);
  mb_store32(&d->state, MB_MAP_READY);
  mb_log_info("map    %-10s loaded from '%s': %llu bytes, %u x %u tiles, %u objects, seq %u, "
              "checksum %016llx, in %llu ms",
              job->name, job->path, (unsigned long long)job->size, (unsigned)job->hdr.width,
              (unsigned)job->hdr.height, (unsigned)job->hdr.object_count, (unsigned)job->seq,
              (unsigned long long)job->checksum, (unsigned long long)ms);
  if (slot)
    *slot = job->slot;
  if (bad_input)
    *bad_input = 0;
  free(job);
  return 0;
}

int mb__map_load(mb_broker_t *b, const char *name, const char *path, int *bad_input, int *slot) {
  mb_map_load_t *job;
  int rc = mb__map_load_begin(b, name, path, &job);
  if (rc != 0) {
    if (bad_input)
      *bad_input = rc != MB_ENOMEM;
    return rc;
  }
  mb__map_load_run(job);
  return mb__map_load_finish(b, job, bad_input, slot);
}

/* Take slot i out of the directory and let go of its section. */
static void mb__slot_unload(mb_broker_t *b, int i, const char *why) {
  mb_map_slot_t *s = &b->maps[i];
  mb_store32(&b->state->maps[i].state, MB_MAP_FREE);
  mb__map_section_drop(&s->sec, b->cfg.instance, s->name, s->seq, b->flags);
  mb_add64(&b->state->game.committed_total, (uint64_t)0 - s->charged);
  mb_log_info("map    %-10s unloaded (seq %u, %llu bytes)%s", s->name, (unsigned)s->seq,
              (unsigned long long)s->size, why);
  memset(s, 0, sizeof *s);
  s->sec.handle = -1;
}

int mb__map_unload(mb_broker_t *b, const char *name) {
  int i = name ? mb__slot_of(b, name, 0) : -1;
  if (i < 0) {
    if (name && mb__slot_of(b, name, 1) >= 0)
      return mb__errorf(MB_EBUSY, 0,
                        "map '%.64s' is being loaded: unload it once the load has answered", name);
    return mb__errorf(MB_ENOENT, 0, "no map '%.64s' is loaded", name ? name : "");
  }
  mb__slot_unload(b, i, "");
  return 0;
}

/* ---- start, stop, purge ------------------------------------------------------------------------
 */

int mb__maps_start(mb_broker_t *b) {
  int i, rc;
  for (i = 0; i < MB_MAPS_MAX; i++) {
    memset(&b->state->maps[i], 0, sizeof b->state->maps[i]);
    memset(&b->maps[i], 0, sizeof b->maps[i]);
    b->maps[i].sec.handle = -1;
  }
  /* Each run numbers its loads from its own start (ms of the wall clock), so a game server
   * still reading a dead broker's directory never finds this run's sections under its names. */
  if (b->map_seq == 0)
    b->map_seq = (uint32_t)(mb_os_wall_ns() / 1000000u) | 1u;
  for (i = 0; i < b->cfg.nmaps; i++) {
    const mb_map_cfg_t *m = &b->cfg.maps[i];
    if ((rc = mb__map_load(b, m->name, m->path, NULL, NULL)) != 0) {
      char msg[700];
      long os = mb_last_os_error();
      const char *tail;
      snprintf(msg, sizeof msg, "maps[%d]: %s", i, mb_last_error());
      tail = mb__cut_reason(msg, rc);
      mb__maps_stop(b);
      return mb__reraise(rc, os, tail, msg);
    }
  }
  return 0;
}

void mb__maps_stop(mb_broker_t *b) {
  int i;
  if (b->state == NULL)
    return;
  for (i = 0; i < MB_MAPS_MAX; i++)
    if (b->maps[i].state == MB_MAP_SLOT_LOADED)
      mb__slot_unload(b, i, " at stop");
}

void mb__maps_purge_stale(mb_broker_t *b, const mb_state_t *old) {
  char name[MB_MAP_NAME_MAX], obj[MB_OS_NAME_MAX + 1];
  int i;
  for (i = 0; i < MB_MAPS_MAX; i++) {
    const mb_map_desc_t *d = &old->maps[i];
    mb__name_get(d->name, name);
    if (!mb__name_ok(name, MB_MAP_NAME_MAX, 0) ||
        mb__map_object_name(obj, sizeof obj, b->cfg.instance, name, mb_load32(&d->seq)) != 0)
      continue;
    if (mb_os_section_unlink(obj, b->flags) == 0 && mb_os_mem_config()->names_persist)
      mb_log_warn("removed map section '%s' of a broker that died", obj);
  }
}

void mb__maps_totals(const mb_broker_t *b, uint32_t *count, uint64_t *bytes) {
  int i;
  *count = 0;
  *bytes = 0;
  for (i = 0; i < MB_MAPS_MAX; i++) {
    if (b->maps[i].state != MB_MAP_SLOT_LOADED)
      continue;
    ++*count;
    *bytes += b->maps[i].size;
  }
}
