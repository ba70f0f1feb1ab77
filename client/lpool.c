/*
 * lpool.c - in-process pools of fixed-size objects (mb_lpool_*, membroker.h): a game
 * server's private objects, with the API shape and the statistics of the broker's shared
 * pools.
 *
 * One reservation holds every chunk the pool may ever have (address space only): chunk k
 * starts at lo + k * chunk_bytes and holds per_chunk blocks of `stride` bytes. The first
 * chunk is committed at creation, the next ones when the pool runs out. An allocation pops
 * the free list (a pointer stored in each free block: this is private memory), else takes
 * the next never-used block of the newest chunk (a bump pointer), else commits a chunk.
 *
 * Safety without MB_POOL_DEBUG: free refuses a pointer outside the committed chunks, and
 * every free-list link is range-checked before it is followed, so a double free or a write
 * after free can only ever hand out memory inside the pool - never beyond it.
 *
 * MB_POOL_DEBUG keeps a state byte per block after the blocks of its chunk (never used,
 * allocated, free, quarantined), so a free checks that the pointer starts a block and that
 * the block is allocated; freed blocks are filled with MB_LPOOL_POISON and checked when handed
 * out again. A block found written after free is quarantined and the allocation fails with
 * MB_EIO; the next one works.
 */
#include "membroker.h"
#include "private.h"

#include "error.h"
#include "os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_NAME_MAX 31
#define LP_DEFAULT_CHUNK ((size_t)64 * 1024)

enum { LP_NEVER = 0, LP_ALLOC = 1, LP_FREE = 2, LP_QUAR = 3 };

struct mb_lpool_s {
  /* the hot part */
  char *free;            /* the free list, through the first word of each free block */
  char *bump, *bump_end; /* never-used blocks of the newest chunk */
  char *lo;              /* the reservation: chunk 0 */
  uintptr_t span;        /* a block b is in the pool iff (uintptr)(b - lo) <= span */
  size_t stride;         /* bytes between blocks */
  unsigned flags;        /* MB_POOL_* */
  uint64_t allocs, frees, in_use, peak;
  /* the rest */
  uint64_t misses, errors, quarantined;
  size_t object_size, per_chunk, max_objects, chunk_bytes, nchunks, max_chunks, reserved;
  mb_os_mutex_t lock;
  char name[LP_NAME_MAX + 1];
};

/* ---- growth -------------------------------------------------------------------------------- */

/* Record the last failure again with the pool's name in front (the detail is copied first:
 * mb__errorf writes the buffer mb_last_error() reads). */
static int lp_wrap(int rc, const char *pool, const char *what, size_t n) {
  char detail[400];
  long os = mb_last_os_error();
  snprintf(detail, sizeof detail, "%s", mb_last_error());
  return mb__errorf(rc, os, "pool '%s': %s %zu (%s)", pool, what, n, detail);
}

/* Commit the next chunk and make its blocks the bump range. MB_EFULL if there is none. */
MB_COLD static int lp_grow(mb_lpool_t *p) {
  char *c;
  size_t first, n;
  int rc;
  if (p->nchunks == p->max_chunks) {
    p->misses++;
    return mb__errorf(MB_EFULL, 0, "pool '%s': all %zu objects are in use", p->name,
                      p->max_objects);
  }
  c = p->lo + p->nchunks * p->chunk_bytes;
  if ((rc = mb_os_commit(c, p->chunk_bytes)) != 0) {
    p->misses++;
    return lp_wrap(rc, p->name, "commit chunk", p->nchunks);
  }
  first = p->nchunks * p->per_chunk;
  n = p->max_objects - first < p->per_chunk ? p->max_objects - first : p->per_chunk;
  p->bump = c;
  p->bump_end = c + n * p->stride;
  p->nchunks++;
  p->span = (uintptr_t)(c + (n - 1) * p->stride - p->lo);
  return 0;
}

/* ---- debug bookkeeping ------------------------------------------------------------------- */

/* The state byte of block number `no`. */
static unsigned char *lp_state(mb_lpool_t *p, size_t no) {
  size_t chunk = no / p->per_chunk;
  return (unsigned char *)p->lo + chunk * p->chunk_bytes + p->per_chunk * p->stride +
         no % p->per_chunk;
}

/* The block number of b, or an MB_EINVAL (recorded) if b does not start a committed block. */
static int lp_locate(mb_lpool_t *p, const void *b, size_t *no, const char *what) {
  uintptr_t off = (uintptr_t)b - (uintptr_t)p->lo;
  size_t chunk, in;
  if ((const char *)b < p->lo || off > p->span)
    return mb__errorf(MB_EINVAL, 0,
                      "%s %p in pool '%s': not an object of this pool (outside "
                      "its chunks)",
                      what, b, p->name);
  chunk = (size_t)(off / p->chunk_bytes);
  in = (size_t)(off % p->chunk_bytes);
  if (in % p->stride != 0 || in / p->stride >= p->per_chunk)
    return mb__errorf(MB_EINVAL, 0,
                      "%s %p in pool '%s': not the start of an object (chunk %zu, "
                      "offset %zu, objects of %zu bytes)",
                      what, b, p->name, chunk, in, p->stride);
  *no = chunk * p->per_chunk + in / p->stride;
  return 0;
}

static char *lp_block(mb_lpool_t *p, size_t no) {
  return p->lo + (no / p->per_chunk) * p->chunk_bytes + (no % p->per_chunk) * p->stride;
}

/* Relink every block in state FREE (after a damaged link cut the list). */
static void lp_rebuild(mb_lpool_t *p) {
  size_t no, handed = p->nchunks == 0
                          ? 0
                          : (p->nchunks - 1) * p->per_chunk +
                                (size_t)(p->bump - (p->lo + (p->nchunks - 1) * p->chunk_bytes)) /
                                    p->stride;
  p->free = NULL;
  for (no = handed; no-- > 0;)
    if (*lp_state(p, no) == LP_FREE) {
      char *b = lp_block(p, no);
      memcpy(b, &p->free, sizeof p->free);
      p->free = b;
    }
}

static void lp_quarantine(mb_lpool_t *p, size_t no) {
  *lp_state(p, no) = LP_QUAR;
  p->quarantined++;
  p->errors++;
  if (++p->in_use > p->peak)
    p->peak = p->in_use;
}

/* ---- alloc and free ------------------------------------------------------------------------ */

/* A free-list link found pointing outside the pool (a write after free or a double free
 * without MB_POOL_DEBUG): abandon the rest of the list, never follow it. */
MB_COLD static int lp_bad_link(mb_lpool_t *p, char *b) {
  p->free = NULL;
  p->errors++;
  return mb__errorf(MB_EIO, 0,
                    "pool '%s': the free-list link in object %p points outside the "
                    "pool (written after free, or freed twice); the rest of the free list is "
                    "abandoned",
                    p->name, (void *)b);
}

static inline int lp_alloc(mb_lpool_t *p, void **obj) {
  char *b = p->free;
  if (b != NULL) {
    char *next;
    memcpy(&next, b, sizeof next);
    if (next != NULL && (uintptr_t)next - (uintptr_t)p->lo > p->span)
      return lp_bad_link(p, b);
    p->free = next;
  } else if (p->bump != p->bump_end) {
    b = p->bump;
    p->bump = b + p->stride;
  } else {
    int rc = lp_grow(p);
    if (rc != 0)
      return rc;
    b = p->bump;
    p->bump = b + p->stride;
  }
  p->allocs++;
  if (++p->in_use > p->peak)
    p->peak = p->in_use;
  *obj = b;
  return 0;
}

MB_COLD static int lp_bad_free(mb_lpool_t *p, void *obj) {
  p->errors++;
  if ((uintptr_t)obj - (uintptr_t)p->lo > p->span)
    return mb__errorf(MB_EINVAL, 0,
                      "free of %p in pool '%s': not an object of this pool (outside its chunks)",
                      obj, p->name);
  return mb__errorf(MB_EINVAL, 0, "free of %p in pool '%s': no object is allocated (a double free)",
                    obj, p->name);
}

static inline int lp_free(mb_lpool_t *p, void *obj) {
  if ((uintptr_t)obj - (uintptr_t)p->lo > p->span || p->in_use == p->quarantined)
    return lp_bad_free(p, obj);
  memcpy(obj, &p->free, sizeof p->free);
  p->free = obj;
  p->frees++;
  p->in_use--;
  return 0;
}

MB_COLD static int lp_alloc_debug(mb_lpool_t *p, void **obj) {
  size_t no, i;
  char *b = p->free, *next;
  int rc;
  if (b == NULL) {
    if ((rc = lp_alloc(p, obj)) != 0)
      return rc;
    lp_locate(p, *obj, &no, "alloc");
    *lp_state(p, no) = LP_ALLOC;
    return 0;
  }
  lp_locate(p, b, &no, "alloc"); /* only checked blocks are ever put on the list */
  memcpy(&next, b, sizeof next);
  if (next != NULL) {
    size_t nno;
    if (lp_locate(p, next, &nno, "alloc") != 0 || *lp_state(p, nno) != LP_FREE) {
      lp_quarantine(p, no);
      lp_rebuild(p);
      return mb__errorf(MB_EIO, 0,
                        "use after free detected in pool '%s' block %zu (%p): its "
                        "free-list link was overwritten; the block is quarantined",
                        p->name, no, (void *)b);
    }
  }
  for (i = sizeof(char *); i < p->stride; i++)
    if ((unsigned char)b[i] != MB_LPOOL_POISON) {
      p->free = next;
      lp_quarantine(p, no);
      return mb__errorf(MB_EIO, 0,
                        "use after free detected in pool '%s' block %zu (%p): byte "
                        "%zu is 0x%02x, not the poison 0x%02x; the block is quarantined",
                        p->name, no, (void *)b, i, (unsigned char)b[i], MB_LPOOL_POISON);
    }
  p->free = next;
  *lp_state(p, no) = LP_ALLOC;
  p->allocs++;
  if (++p->in_use > p->peak)
    p->peak = p->in_use;
  *obj = b;
  return 0;
}

MB_COLD static int lp_free_debug(mb_lpool_t *p, void *obj) {
  static const char *const what[] = {"it was never allocated", "", "a double free",
                                     "it is quarantined (written after a free)"};
  size_t no;
  unsigned char *st;
  int rc;
  if ((rc = lp_locate(p, obj, &no, "free of")) != 0) {
    p->errors++;
    return rc;
  }
  st = lp_state(p, no);
  if (*st != LP_ALLOC) {
    p->errors++;
    return mb__errorf(MB_EINVAL, 0, "free of %p in pool '%s' (block %zu): %s", obj, p->name, no,
                      what[*st & 3]);
  }
  memset(obj, MB_LPOOL_POISON, p->stride);
  memcpy(obj, &p->free, sizeof p->free);
  p->free = obj;
  *st = LP_FREE;
  p->frees++;
  p->in_use--;
  return 0;
}

/* The locked and the debug paths. */
MB_COLD static int lp_alloc_slow(mb_lpool_t *p, void **obj) {
  int rc;
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_lock(&p->lock);
  rc = (p->flags & MB_POOL_DEBUG) ? lp_alloc_debug(p, obj) : lp_alloc(p, obj);
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_unlock(&p->lock);
  return rc;
}

MB_COLD static int lp_free_slow(mb_lpool_t *p, void *obj) {
  int rc;
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_lock(&p->lock);
  rc = (p->flags & MB_POOL_DEBUG) ? lp_free_debug(p, obj) : lp_free(p, obj);
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_unlock(&p->lock);
  return rc;
}

int mb_lpool_alloc(mb_lpool_t *p, void **obj) {
  return p->flags == 0 ? lp_alloc(p, obj) : lp_alloc_slow(p, obj);
}

int mb_lpool_free(mb_lpool_t *p, void *obj) {
  return p->flags == 0 ? lp_free(p, obj) : lp_free_slow(p, obj);
}

/* ---- create, stats, destroy ---------------------------------------------------------------- */

int mb_lpool_create(const char *name, size_t object_size, size_t align, size_t objects_per_chunk,
                    size_t max_objects, unsigned flags, mb_lpool_t **pool) {
  const mb_os_mem_config_t *mc = mb_os_mem_config();
  size_t len, stride, per, chunk, reserve, nchunks;
  mb_lpool_t *p;
  int rc;

  if (pool == NULL)
    return mb__errorf(MB_EINVAL, 0, "create pool: no result pointer");
  if ((rc = mb__os_check_name(name, "pool", &len)) != 0)
    return rc;
  if (len > LP_NAME_MAX)
    return mb__errorf(MB_EINVAL, 0, "create pool '%s': name longer than %d bytes", name,
                      LP_NAME_MAX);
  if (align == 0)
    align = 16;
  if (align < sizeof(void *))
    align = sizeof(void *);
  if ((align & (align - 1)) != 0 || align > mc->page_size)
    return mb__errorf(MB_EINVAL, 0,
                      "create pool '%s': alignment %zu is not a power of two up "
                      "to the page size",
                      name, align);
  if (object_size == 0 || object_size > ((size_t)1 << 30) || max_objects == 0 ||
      (flags & ~(unsigned)(MB_POOL_DEBUG | MB_POOL_THREADSAFE)) != 0)
    return mb__errorf(MB_EINVAL, 0,
                      "create pool '%s': object size %zu (1..2^30), max objects "
                      "%zu (>0) or flags 0x%x invalid",
                      name, object_size, max_objects, flags);
  stride = object_size < sizeof(void *) ? sizeof(void *) : object_size;
  stride = (stride + align - 1) & ~(align - 1);
  per = objects_per_chunk != 0 ? objects_per_chunk : LP_DEFAULT_CHUNK / stride;
  if (per == 0)
    per = 1;
  if (per > max_objects)
    per = max_objects;
  if (per > ((size_t)1 << 40) / stride)
    return mb__errorf(MB_EINVAL, 0, "create pool '%s': %zu objects per chunk is too many", name,
                      per);
  chunk = per * stride + ((flags & MB_POOL_DEBUG) ? per : 0);
  chunk = (chunk + mc->page_size - 1) & ~(mc->page_size - 1);
  nchunks = max_objects / per + (max_objects % per != 0);
  if (nchunks > (((size_t)-1) / 2 - mc->alloc_granularity) / chunk)
    return mb__errorf(MB_ENOMEM, 0,
                      "create pool '%s': %zu objects of %zu bytes do not fit the "
                      "address space",
                      name, max_objects, stride);
  reserve = (nchunks * chunk + mc->alloc_granularity - 1) & ~(mc->alloc_granularity - 1);

  if ((p = calloc(1, sizeof *p)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "create pool '%s'", name);
  memcpy(p->name, name, len + 1);
  p->stride = stride;
  p->flags = flags;
  p->object_size = object_size;
  p->per_chunk = per;
  p->max_objects = max_objects;
  p->chunk_bytes = chunk;
  p->max_chunks = nchunks;
  p->reserved = reserve;
  if ((flags & MB_POOL_THREADSAFE) && (rc = mb_os_mutex_init(&p->lock)) != 0)
    goto fail;
  if ((rc = mb_os_reserve(reserve, (void **)&p->lo)) != 0) {
    rc = lp_wrap(rc, name, "reserve bytes:", reserve);
    goto fail_lock;
  }
  p->bump = p->bump_end = p->lo;
  if ((rc = lp_grow(p)) != 0) {
    mb_os_release(p->lo, p->reserved);
    goto fail_lock;
  }
  *pool = p;
  return 0;
fail_lock:
  if (flags & MB_POOL_THREADSAFE)
    mb_os_mutex_destroy(&p->lock);
fail:
  free(p);
  return rc;
}

int mb_lpool_stats(const mb_lpool_t *pool, mb_pool_stats_t *st) {
  mb_lpool_t *p = (mb_lpool_t *)pool; /* the lock is not part of the pool's value */
  if (p == NULL || st == NULL)
    return mb__errorf(MB_EINVAL, 0, "pool stats: no pool or no result");
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_lock(&p->lock);
  memset(st, 0, sizeof *st);
  st->capacity = p->max_objects;
  st->allocs = p->allocs;
  st->frees = p->frees;
  st->in_use = p->in_use;
  st->peak = p->peak;
  st->misses = p->misses;
  st->min_free = p->max_objects - p->peak;
  st->object_size = p->object_size;
  st->block_size = p->stride;
  st->committed = (uint64_t)p->nchunks * p->chunk_bytes;
  st->chunks = p->nchunks;
  st->errors = p->errors;
  st->quarantined = p->quarantined;
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_unlock(&p->lock);
  return 0;
}

const char *mb_lpool_name(const mb_lpool_t *p) {
  return p ? p->name : "";
}

int mb__lpool_threadsafe(const mb_lpool_t *p) {
  return (p->flags & MB_POOL_THREADSAFE) != 0;
}

void mb_lpool_destroy(mb_lpool_t *p) {
  if (p == NULL)
    return;
  mb_os_release(p->lo, p->reserved);
  if (p->flags & MB_POOL_THREADSAFE)
    mb_os_mutex_destroy(&p->lock);
  free(p);
}
