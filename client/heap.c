/*
 * heap.c - per-purpose private heaps of a game server (mb_heap_*, membroker.h): game
 * objects, network buffers, temporary data, log data, each its own heap.
 *
 * The memory comes from the platform layer's heap (mb_os_heap_*: HeapCreate and friends on
 * Windows, common/tagheap.c's boundary-tag heap elsewhere). This file keeps what must be the
 * same on every OS: argument checks, the maximum (bytes in use, counted as the sizes asked
 * for, which is what HeapSize reports) and the statistics. Counters are atomic, so a
 * serialized heap used by several threads keeps them exact; the maximum is claimed with a
 * compare-and-swap before the OS heap is asked, so two threads cannot both pass it.
 */
#include "membroker.h"
#include "private.h"

#include "atomics.h"
#include "error.h"
#include "os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_NAME_MAX 31

struct mb_heap_s {
  mb_os_heap_t *os;
  int purpose;
  unsigned flags;
  uint64_t maximum;
  mb_au64 in_use, peak, blocks, allocs, reallocs, frees, failures;
  char name[HP_NAME_MAX + 1];
};

/* Record a failure of the OS heap again with the heap's name in front, and count it. */
static int hp_fail(mb_heap_t *h, int rc, const char *what) {
  char detail[400];
  long os = mb_last_os_error();
  snprintf(detail, sizeof detail, "%s", mb_last_error());
  mb_add64_relaxed(&h->failures, 1);
  return mb__errorf(rc, os, "heap '%s': %s (%s)", h->name, what, detail);
}

/* Claim `delta` more bytes in use against the maximum. */
static int hp_claim(mb_heap_t *h, size_t delta) {
  uint64_t cur = mb_load64_relaxed(&h->in_use);
  if (h->maximum == 0) {
    cur = mb_add64(&h->in_use, delta) + delta;
  } else {
    do {
      if (delta > h->maximum || cur > h->maximum - delta) {
        mb_add64_relaxed(&h->failures, 1);
        return mb__errorf(MB_ENOSPC, 0,
                          "heap '%s': %zu more bytes would pass its maximum of "
                          "%llu (%llu in use)",
                          h->name, delta, (unsigned long long)h->maximum, (unsigned long long)cur);
      }
    } while (!mb_cas64(&h->in_use, &cur, cur + delta));
    cur += delta;
  }
  mb_max64(&h->peak, cur);
  return 0;
}

static void hp_unclaim(mb_heap_t *h, size_t delta) {
  mb_add64(&h->in_use, (uint64_t)0 - delta);
}

static int hp_size_ok(mb_heap_t *h, size_t size, const char *what) {
  if (size == 0 || size > MB_HEAP_MAX_ALLOC) {
    mb_add64_relaxed(&h->failures, 1);
    return mb__errorf(size == 0 ? MB_EINVAL : MB_ERANGE, 0, "heap '%s': %s of %zu bytes (1..%zu)",
                      h->name, what, size, (size_t)MB_HEAP_MAX_ALLOC);
  }
  return 0;
}

int mb_heap_create(const char *name, int purpose, unsigned flags, size_t initial, size_t maximum,
                   mb_heap_t **heap) {
  mb_heap_t *h;
  size_t len;
  int rc;
  if (heap == NULL)
    return mb__errorf(MB_EINVAL, 0, "create heap: no result pointer");
  if ((rc = mb__os_check_name(name, "heap", &len)) != 0)
    return rc;
  if (len > HP_NAME_MAX || purpose < MB_HEAP_GAME_OBJECTS || purpose > MB_HEAP_LOG ||
      (flags & ~(unsigned)MB_HEAP_NO_SERIALIZE) != 0 || (maximum != 0 && initial > maximum) ||
      maximum > MB_HEAP_MAX_ALLOC || initial > MB_HEAP_MAX_ALLOC)
    return mb__errorf(MB_EINVAL, 0,
                      "create heap '%s': name (up to %d bytes), purpose %d, flags "
                      "0x%x or initial %zu / maximum %zu invalid",
                      name, HP_NAME_MAX, purpose, flags, initial, maximum);
  if ((h = calloc(1, sizeof *h)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "create heap '%s'", name);
  memcpy(h->name, name, len + 1);
  h->purpose = purpose;
  h->flags = flags;
  h->maximum = maximum;
  if ((rc = mb_os_heap_create((flags & MB_HEAP_NO_SERIALIZE) ? MB_OS_HEAP_NO_SERIALIZE : 0, initial,
                              maximum, &h->os)) != 0) {
    rc = hp_fail(h, rc, "create");
    free(h);
    return rc;
  }
  *heap = h;
  return 0;
}

int mb_heap_alloc(mb_heap_t *h, size_t size, void **p) {
  int rc;
  if ((rc = hp_size_ok(h, size, "alloc")) != 0 || (rc = hp_claim(h, size)) != 0)
    return rc;
  if ((rc = mb_os_heap_alloc(h->os, size, p)) != 0) {
    hp_unclaim(h, size);
    return hp_fail(h, rc, "alloc");
  }
  mb_add64_relaxed(&h->blocks, 1);
  mb_add64_relaxed(&h->allocs, 1);
  return 0;
}

int mb_heap_realloc(mb_heap_t *h, void *p, size_t size, void **np) {
  size_t old;
  int rc;
  if (p == NULL)
    return mb_heap_alloc(h, size, np);
  if ((rc = hp_size_ok(h, size, "realloc")) != 0)
    return rc;
  if ((rc = mb_os_heap_size(h->os, p, &old)) != 0)
    return hp_fail(h, rc, "realloc");
  if (size > old && (rc = hp_claim(h, size - old)) != 0)
    return rc;
  if ((rc = mb_os_heap_realloc(h->os, p, size, np)) != 0) {
    if (size > old)
      hp_unclaim(h, size - old);
    return hp_fail(h, rc, "realloc");
  }
  if (size < old)
    hp_unclaim(h, old - size);
  mb_add64_relaxed(&h->reallocs, 1);
  return 0;
}

int mb_heap_free(mb_heap_t *h, void *p) {
  size_t size;
  int rc;
  if (p == NULL)
    return 0;
  if ((rc = mb_os_heap_size(h->os, p, &size)) != 0 || (rc = mb_os_heap_free(h->os, p)) != 0)
    return hp_fail(h, rc, "free");
  hp_unclaim(h, size);
  mb_add64_relaxed(&h->blocks, (uint64_t)0 - 1);
  mb_add64_relaxed(&h->frees, 1);
  return 0;
}

int mb_heap_compact(mb_heap_t *h, size_t *largest_free) {
  int rc = mb_os_heap_compact(h->os, largest_free);
  return rc == 0 ? 0 : hp_fail(h, rc, "compact");
}

int mb_heap_validate(mb_heap_t *h) {
  char detail[400];
  int rc = mb_os_heap_validate(h->os);
  if (rc == 0)
    return 0;
  snprintf(detail, sizeof detail, "%s", mb_last_error());
  return mb__errorf(rc, 0, "heap '%s' is damaged: %s", h->name, detail);
}

int mb_heap_stats(mb_heap_t *h, mb_heap_stats_t *st) {
  uint64_t committed = 0, reserved = 0;
  int rc;
  if (h == NULL || st == NULL)
    return mb__errorf(MB_EINVAL, 0, "heap stats: no heap or no result");
  if ((rc = mb_os_heap_committed(h->os, &committed, &reserved)) != 0)
    return rc;
  memset(st, 0, sizeof *st);
  st->purpose = h->purpose;
  st->flags = h->flags;
  st->maximum = h->maximum;
  st->bytes_in_use = mb_load64_relaxed(&h->in_use);
  st->peak_in_use = mb_load64_relaxed(&h->peak);
  st->blocks = mb_load64_relaxed(&h->blocks);
  st->allocations = mb_load64_relaxed(&h->allocs);
  st->reallocations = mb_load64_relaxed(&h->reallocs);
  st->frees = mb_load64_relaxed(&h->frees);
  st->failures = mb_load64_relaxed(&h->failures);
  st->committed = committed;
  st->reserved = reserved;
  return 0;
}

const char *mb_heap_name(const mb_heap_t *h) {
  return h ? h->name : "";
}

int mb__heap_threadsafe(const mb_heap_t *h) {
  return (h->flags & MB_HEAP_NO_SERIALIZE) == 0;
}

void mb_heap_destroy(mb_heap_t *h) {
  if (h == NULL)
    return;
  mb_os_heap_destroy(h->os);
  free(h);
}
