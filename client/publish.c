/*
 * publish.c - private memory shown to the operator (membroker.h): the in-process pools and
 * heaps a game server tracks (mb_track_lpool, mb_track_heap) and their figures, published into
 * the row of the control block that belongs to the client's entry (by the app's thread, the
 * heartbeat thread or mb_tick). Statistics only: a kill mid-row leaves figures a second old.
 */
#include "membroker.h"

#include <string.h>

#include "error.h"
#include "layout.h"
#include "os.h"
#include "private.h"

#define MB__PUBLISH_NS (1000u * 1000000u) /* private memory: thread-safe figures, once a second */

/* ---- private memory shown to the operator -------------------------------------------------- */

MB_LAYOUT_ASSERT(MB_TRACK_MAX == MB_CLIENT_MEM_MAX, "one row entry per tracked pool or heap");

/* Copy the figures (and detail) of tracked[i] into row entry e, from one read of its
 * statistics; zeros if they cannot be read (caller holds mem_lock). */
static void mb__mem_fill(mb_client_t *c, int i, mb_mem_entry_t *e) {
  mb_mem_figures_t f = {0}; /* MB_MEM_STATS (stats.h) */
  uint32_t detail = 0;
  if (c->tracked[i].kind == MB_MEM_LPOOL) {
    mb_pool_stats_t ps;
    if (mb_lpool_stats(c->tracked[i].obj, &ps) == 0) {
      f.in_use = ps.in_use * ps.block_size;
      f.peak = ps.peak * ps.block_size;
      f.committed = ps.committed;
      f.allocs = ps.allocs;
      f.frees = ps.frees;
      f.failures = ps.misses + ps.errors;
      f.objects = ps.in_use;
      detail = (uint32_t)ps.object_size;
    }
  } else {
    mb_heap_stats_t hs;
    if (mb_heap_stats(c->tracked[i].obj, &hs) == 0) {
      f.in_use = hs.bytes_in_use;
      f.peak = hs.peak_in_use;
      f.committed = hs.committed;
      f.allocs = hs.allocations + hs.reallocations;
      f.frees = hs.frees;
      f.failures = hs.failures;
      f.objects = hs.blocks;
      detail = (uint32_t)hs.purpose;
    }
  }
  mb_store32(&e->detail, detail);
#define MB__X(where, field, ...) mb_store64_relaxed(&e->field, f.field);
  MB_MEM_STATS(MB__X)
#undef MB__X
}

/* Write row entry i's name, figures and kind for tracked[i] (MB_MEM_NONE clears it). Caller
 * holds mem_lock and the entry is ours. */
static void mb__mem_describe(mb_client_t *c, int i) {
  mb_mem_entry_t *e = &c->st->client_mem[c->index].entries[i];
  void *obj = c->tracked[i].obj;
  mb_store32(&e->kind, MB_MEM_NONE);
  if (c->tracked[i].kind == MB_MEM_NONE)
    return;
  mb__name_set(e->name,
               c->tracked[i].kind == MB_MEM_LPOOL ? mb_lpool_name(obj) : mb_heap_name(obj));
  mb__mem_fill(c, i, e);
  mb_store32(&e->kind, (uint32_t)c->tracked[i].kind); /* release: name and figures first */
}

/* A new attachment: its row starts empty, then shows what is tracked (attach runs on the
 * app's thread: all may be read). */
void mb__mem_reset(mb_client_t *c) {
  int i;
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++) /* one row entry per tracked slot (asserted above) */
    mb__mem_describe(c, i);
  mb_store64(&c->st->client_mem[c->index].published_ns, mb_os_wall_ns());
  mb_os_mutex_unlock(&c->mem_lock);
}

/* Refresh the figures of the tracked pools and heaps: all of them (mb_publish), or the
 * thread-safe ones at most once a second (the heartbeat thread and mb_tick, whichever
 * comes first). */
void mb__mem_publish(mb_client_t *c, int all) {
  mb_client_mem_t *row;
  uint64_t now = mb_os_mono_ns();
  int i;
  mb_os_mutex_lock(&c->mem_lock);
  if (!all && now - c->mem_published_ns < MB__PUBLISH_NS) {
    mb_os_mutex_unlock(&c->mem_lock);
    return;
  }
  if (!all)
    c->mem_published_ns = now;
  if (c->st != NULL && mb__entry_mine(c)) {
    row = &c->st->client_mem[c->index];
    for (i = 0; i < MB_TRACK_MAX; i++) {
      if (c->tracked[i].kind == MB_MEM_NONE || !(all || c->tracked[i].threadsafe))
        continue;
      if (mb_load32(&row->entries[i].kind) == MB_MEM_NONE)
        mb__mem_describe(c, i); /* tracked before this attachment, not described yet */
      else
        mb__mem_fill(c, i, &row->entries[i]);
    }
    mb_store64(&row->published_ns, mb_os_wall_ns());
  }
  mb_os_mutex_unlock(&c->mem_lock);
}

static int mb__track(mb_client_t *c, int kind, void *obj, int threadsafe) {
  int i, slot = -1, rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_track: no %s", kind == MB_MEM_LPOOL ? "pool" : "heap");
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++) {
    if (c->tracked[i].kind != MB_MEM_NONE && c->tracked[i].obj == obj) {
      mb_os_mutex_unlock(&c->mem_lock);
      return mb__errorf(MB_EINVAL, 0, "mb_track: %s '%s' is tracked already",
                        kind == MB_MEM_LPOOL ? "pool" : "heap",
                        kind == MB_MEM_LPOOL ? mb_lpool_name(obj) : mb_heap_name(obj));
    }
    if (c->tracked[i].kind == MB_MEM_NONE && slot < 0)
      slot = i;
  }
  if (slot < 0) {
    mb_os_mutex_unlock(&c->mem_lock);
    return mb__errorf(MB_EFULL, 0, "mb_track: client '%s' tracks %d pools and heaps already",
                      c->name, MB_TRACK_MAX);
  }
  c->tracked[slot].kind = kind;
  c->tracked[slot].obj = obj;
  c->tracked[slot].threadsafe = threadsafe;
  if (c->st != NULL && mb__entry_mine(c))
    mb__mem_describe(c, slot);
  mb_os_mutex_unlock(&c->mem_lock);
  return 0;
}

int mb_track_lpool(mb_client_t *c, mb_lpool_t *pool) {
  return mb__track(c, MB_MEM_LPOOL, pool, pool != NULL && mb__lpool_threadsafe(pool));
}

int mb_track_heap(mb_client_t *c, mb_heap_t *heap) {
  return mb__track(c, MB_MEM_HEAP, heap, heap != NULL && mb__heap_threadsafe(heap));
}

int mb_untrack(mb_client_t *c, const void *obj) {
  int i, rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < MB_TRACK_MAX; i++)
    if (c->tracked[i].kind != MB_MEM_NONE && c->tracked[i].obj == obj) {
      c->tracked[i].kind = MB_MEM_NONE;
      c->tracked[i].obj = NULL;
      if (c->st != NULL && mb__entry_mine(c))
        mb__mem_describe(c, i);
      mb_os_mutex_unlock(&c->mem_lock);
      return 0;
    }
  mb_os_mutex_unlock(&c->mem_lock);
  return mb__errorf(MB_ENOENT, 0, "mb_untrack: not a tracked pool or heap");
}

int mb_publish(mb_client_t *c) {
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (!mb__entry_mine(c))
    return mb__stale(c);
  mb__mem_publish(c, 1);
  return 0;
}
