/*
 * poolcache.c - shared pools seen by a client (membroker.h): pool handles, mapping a pool's
 * section, the per-thread caches of free blocks with their fast paths, and giving cached
 * blocks back at detach, close, reattach and thread exit. The pool itself (free list, stamps,
 * intent records) and its crash points are common/pool.c's.
 */
#include "membroker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layout.h"
#include "os.h"
#include "pool.h"
#include "private.h"

/* ---- shared pools ------------------------------------------------------------------------- */

#define MB__TCACHE_MAX 64 /* free blocks a thread keeps per pool */

/*
 * A thread's cache of free blocks of one pool (stamped MB_STAMP_CACHED | owner in shared
 * memory, so the broker can take them back if the process dies). A thread's caches form a
 * list hung on a thread-local slot whose exit callback gives their blocks back; the caches of
 * one client form a second list, so detach, close and reattach can give back the blocks of
 * every thread. Both lists and `pool` change under mb__tc_lock; the owning thread reads its
 * cache without it (pool calls must not run while their client detaches or reattaches).
 */
typedef struct mb__tcache_s {
  /* What the fast paths read, copied from the pool's mapping and the client when the cache
   * is bound to a pool (valid while `pool` is set: caches are let go at detach, close,
   * reattach and a change of the handle's flags). These fields up to idx[] are also
   * membroker.h's mb_pool_tcache_t (ABI MB_POOL_TCACHE_ABI, read by the inline fast path):
   * same order, same offsets, asserted below. */
  uint32_t abi; /* MB_POOL_TCACHE_ABI */
  uint32_t n;
  mb_pool_t *pool;           /* NULL: its client let go; the entry can be reused */
  const mb_au64 *entry_word; /* the client's entry word in shared memory ... */
  uint64_t word;             /* ... and its value while the entry is this attachment's */
  mb_au32 *stamps;
  unsigned char *blocks;
  uint64_t span;
  uint32_t stride;
  int32_t shift;
  uint32_t owner; /* MB_STAMP_OWNER of the client's blocks */
  uint32_t cap;   /* MB__TCACHE_MAX */
  uint32_t idx[MB__TCACHE_MAX];
  /* the library's own */
  int mag;                    /* pool->mag: an uncached handle's calls go to the record's magazine
                                 (0 in a fork child: every call asks the library, which refuses) */
  uint32_t rec;               /* the thread's intent record in the pool (pool.c) */
  uint64_t holder;            /* ... held under this attachment's MB_POOL_HOLDER */
  struct mb__tcache_s *tnext; /* this thread's caches */
  struct mb__tcache_s *cnext, *cprev; /* the client's caches */
} mb__tcache_t;

/* The inline fast path's view (membroker.h, mb_pool_tcache_t) is this struct's start. */
#define MB__TC_SAME(f)                                                                             \
  MB_LAYOUT_ASSERT(offsetof(mb__tcache_t, f) == offsetof(mb_pool_tcache_t, f) &&                   \
                       sizeof(((mb__tcache_t *)0)->f) == sizeof(((mb_pool_tcache_t *)0)->f),       \
                   "mb_pool_tcache_t ABI: " #f)
MB__TC_SAME(abi);
MB__TC_SAME(n);
MB__TC_SAME(pool);
MB__TC_SAME(entry_word);
MB__TC_SAME(word);
MB__TC_SAME(stamps);
MB__TC_SAME(blocks);
MB__TC_SAME(span);
MB__TC_SAME(stride);
MB__TC_SAME(shift);
MB__TC_SAME(owner);
MB__TC_SAME(cap);
MB__TC_SAME(idx);
MB_LAYOUT_ASSERT(MB__TCACHE_MAX == MB_POOL_TCACHE_MAX && MB_STAMP_IN_USE == MB_POOL_TCACHE_IN_USE &&
                     MB_STAMP_CACHED == MB_POOL_TCACHE_CACHED &&
                     sizeof(mb_au32) == sizeof(uint32_t) && sizeof(mb_au64) == sizeof(uint64_t),
                 "mb_pool_tcache_t ABI: constants");

/* A handle names its pool; the mapping belongs to the attachment and is made on first use.
 * map/seq cache the mapping for the fast path: valid while seq == client->attach_seq. */
struct mb_pool_s {
  mb_client_t *client;
  mb_pool_map_t *map;
  mb_au64 seq;    /* the attach_seq map was set for (release, after the fields; 0: not yet) */
  uint32_t owner; /* the client's table index + 1, with map */
  int uncached;   /* with map: MB_POOL_NO_CACHE, or a debug pool */
  int mag;        /* with map: MB_POOL_NO_CACHE on a pool that is not a debug pool: the
                     thread's magazine in shared memory (pool.c) */
  unsigned flags; /* MB_POOL_* given to mb_pool_open */
  char name[MB_POOL_NAME_MAX];
};

static mb_os_tls_t mb__tc_key;    /* its value: the thread's first cache */
static mb_os_mutex_t mb__tc_lock; /* the lists and every cache's `pool` */
static mb_au32 mb__tc_ready;      /* 0 not yet, 1 being set up, 2 ready, 3 failed */
static MB_THREAD_LOCAL_FAST mb__tcache_t *mb__tc_last; /* the cache this thread used last */

/* Unmap the pools; their handles stay and map again on next use (after a reattach). */
void mb__pools_unmap(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_POOLS_MAX; i++) {
    mb_pool_map_t *p = &c->pools_map[i];
    if (p->base == NULL)
      continue;
    mb__pool_intent_release(p, p->rec, c->pool_holder);
    mb_os_section_unmap(p->base, c->pool_len[i]);
    mb_os_section_close(&p->sec);
    memset(p, 0, sizeof *p);
  }
}

/* Free the pool handles (detach, close). */
void mb__pools_free(mb_client_t *c) {
  int i;
  for (i = 0; i < MB_POOLS_MAX; i++) {
    free(c->pools[i]);
    c->pools[i] = NULL;
  }
}

/*
 * Give every block of cache t back to its pool (caller holds mb__tc_lock), if the client's
 * entry is still this attachment's: once it was reaped (or taken over), its cached blocks are
 * the broker's (or the successor's) to give back, and may be another client's by now. Each
 * block goes back only if it is still stamped cached by this client (a CAS from that value).
 */
static void mb__tcache_flush(mb__tcache_t *t) {
  mb_pool_map_t *p = t->pool ? t->pool->map : NULL;
  uint32_t k;
  /* A fork child's copy of a cache is the parent's blocks: never given back from here. */
  if (p != NULL && p->base != NULL && mb_load64(t->entry_word) == t->word &&
      t->pool->client->self.pid == mb_os_pid()) {
    for (k = 0; k < t->n; k += MB_POOL_CHAIN)
      mb__pool_give(p, t->rec, t->idx + k, t->n - k < MB_POOL_CHAIN ? t->n - k : MB_POOL_CHAIN,
                    MB_STAMP_CACHED | t->owner, NULL);
    mb__pool_mag_flush(p, t->rec, t->owner); /* an uncached handle's magazine (one load if empty) */
  }
  t->n = 0;
}

/* Unlink t from its client's list and orphan it (caller holds mb__tc_lock). */
static void mb__tcache_orphan(mb__tcache_t *t) {
  mb_client_t *c = t->pool->client;
  if (t->pool->map != NULL && t->pool->map->base != NULL)
    mb__pool_intent_release(t->pool->map, t->rec, t->holder);
  if (t->cprev)
    t->cprev->cnext = t->cnext;
  else
    c->tcaches = t->cnext;
  if (t->cnext)
    t->cnext->cprev = t->cprev;
  t->cnext = t->cprev = NULL;
  t->pool = NULL;
}

/* The thread-local slot's exit callback: give back and free every cache of the thread. */
static void mb__tcache_thread_exit(void *head) {
  mb__tcache_t *t = head, *next;
  mb_os_mutex_lock(&mb__tc_lock);
  for (; t != NULL; t = next) {
    next = t->tnext;
    if (t->pool != NULL && t->pool->client->self.pid == mb_os_pid()) { /* not a fork copy */
      mb__tcache_flush(t);
      mb__tcache_orphan(t);
    }
    free(t);
  }
  mb_os_mutex_unlock(&mb__tc_lock);
  mb__tc_last = NULL;
}

/*
 * In a fork() child (mb_os_atfork_child; the child's one thread is the copy of the forking
 * one, with its thread-local values): the thread's caches are copies of the parent's, whose
 * blocks the parent hands out too. Every fast path must miss on them - n = 0 for allocs, cap
 * = 0 for frees (the inline code compares n with cap) - so each call goes to the slow path,
 * which refuses a client attached by another process (mb__forked). They are never given
 * back (mb__tcache_flush); the child frees them at its thread's exit. The lock may have been
 * held by another of the parent's threads at the fork: the child, alone, starts it afresh.
 */
static void mb__tcache_fork_child(void) {
  mb__tcache_t *t;
  (void)mb_os_mutex_init(&mb__tc_lock);
  mb__tc_last = NULL;
  for (t = mb_os_tls_get(&mb__tc_key); t != NULL; t = t->tnext) {
    t->n = 0;
    t->cap = 0;
    t->mag = 0;
  }
}

/* Set up the key and the lock once per process. 0, or the error that made it impossible. */
static int mb__tcache_init(void) {
  uint32_t s = mb_load32(&mb__tc_ready);
  while (s != 2) {
    if (s == 3)
      return mb__errorf(MB_EOS, 0, "thread caches cannot be set up in this process");
    if (s == 0 && mb_cas32(&mb__tc_ready, &s, 1)) {
      int ok = mb_os_mutex_init(&mb__tc_lock) == 0;
      if (ok && mb_os_tls_create(&mb__tc_key, mb__tcache_thread_exit) != 0) {
        mb_os_mutex_destroy(&mb__tc_lock);
        ok = 0;
      }
      if (ok && mb_os_atfork_child(mb__tcache_fork_child) != 0) {
        mb_os_mutex_destroy(&mb__tc_lock); /* the key stays unused: there is no delete */
        ok = 0;
      }
      mb_store32(&mb__tc_ready, ok ? 2 : 3);
    } else {
      mb_os_sleep_ms(0);
    }
    s = mb_load32(&mb__tc_ready);
  }
  return 0;
}

/* This thread's cache for `pool`, made (or an orphan reused) on first use. */
static int mb__tcache_get(mb_pool_t *pool, mb__tcache_t **out) {
  mb__tcache_t *head, *t, *spare = NULL;
  mb_client_t *c = pool->client;
  int rc;
  if ((rc = mb__tcache_init()) != 0)
    return rc;
  head = mb_os_tls_get(&mb__tc_key);
  for (t = head; t != NULL; t = t->tnext) {
    if (t->pool == pool) {
      *out = mb__tc_last = t;
      return 0;
    }
    if (t->pool == NULL && spare == NULL)
      spare = t;
  }
  if ((t = spare) == NULL) {
    if ((t = calloc(1, sizeof *t)) == NULL)
      return mb__errorf(MB_ENOMEM, 0, "thread cache of pool '%s'", pool->name);
    t->tnext = head;
    mb_os_tls_set(&mb__tc_key, t);
  }
  /* Every take and give of this thread goes through its own intent record. */
  if ((rc = mb__pool_intent_claim(pool->map, c->pool_holder, &t->rec)) != 0)
    return rc;
  mb_os_mutex_lock(&mb__tc_lock);
  t->holder = c->pool_holder;
  t->abi = MB_POOL_TCACHE_ABI;
  t->cap = MB__TCACHE_MAX;
  t->pool = pool;
  t->n = 0;
  t->owner = pool->owner;
  t->entry_word = &c->entry->word;
  t->word = c->word;
  t->stamps = pool->map->stamps;
  t->blocks = pool->map->blocks;
  t->span = pool->map->span;
  t->stride = pool->map->stride;
  t->shift = pool->uncached ? -1 : pool->map->shift; /* -1: mb_pool_free's fast path never
                                                       caches for an uncached handle */
  t->mag = pool->mag;
  t->cprev = NULL;
  t->cnext = c->tcaches;
  if (c->tcaches)
    c->tcaches->cprev = t;
  c->tcaches = t;
  mb_os_mutex_unlock(&mb__tc_lock);
  *out = mb__tc_last = t;
  return 0;
}

/* Give back the blocks of every thread's cache of client c (of one pool, or all with NULL)
 * and let the caches go: detach, close, reattach, a change of a handle's flags. */
void mb__tcaches_release(mb_client_t *c, const mb_pool_t *pool) {
  mb__tcache_t *t, *next;
  if (c->tcaches == NULL || mb_load32(&mb__tc_ready) != 2)
    return;
  mb_os_mutex_lock(&mb__tc_lock);
  for (t = c->tcaches; t != NULL; t = next) {
    next = t->cnext;
    if (pool != NULL && t->pool != pool)
      continue;
    mb__tcache_flush(t);
    mb__tcache_orphan(t);
  }
  mb_os_mutex_unlock(&mb__tc_lock);
}

/* Map pool i of the current attachment's directory, once (caller holds mem_lock). With
 * release_cached, the first map of an attachment gives back the blocks a predecessor of this
 * name left in its thread caches (it died with them; this process's caches are empty: they
 * were let go before any remap). */
int mb__pool_map_index(mb_client_t *c, uint32_t i, int release_cached) {
  char obj[MB_OS_NAME_MAX + 1];
  int rc;
  if (c->pools_map[i].base == NULL) {
    mb_pool_map_t *p = &c->pools_map[i];
    mb_pool_desc_t d; /* checked on a copy: the block's is writable by the whole group */
    void *base;
    memcpy(&d, &c->st->pools[i], offsetof(mb_pool_desc_t, head));
    if ((rc = mb__pool_desc_check(&d, 0)) != 0 ||
        (rc = mb__pool_object_name(obj, sizeof obj, c->instance, d.name)) != 0 ||
        (rc = mb_os_section_open(&p->sec, obj, c->sec_flags, 1)) != 0)
      return rc;
    if (p->sec.size < d.section_size) {
      mb_os_section_close(&p->sec);
      return mb__errorf(MB_ECORRUPT, 0, "pool '%s' holds %llu bytes, its descriptor says %llu",
                        d.name, (unsigned long long)p->sec.size,
                        (unsigned long long)d.section_size);
    }
    if ((rc = mb_os_section_map(&p->sec, p->sec.size, 1, &base)) != 0) {
      mb_os_section_close(&p->sec);
      return rc;
    }
    c->pool_len[i] = p->sec.size;
    p->base = base;
    p->desc = &d; /* bound from the checked copy, then the live descriptor */
    mb__pool_bind(p);
    p->desc = &c->st->pools[i];
    /* This process's own record: what it gives back outside a thread's calls goes through
     * it (a predecessor's caches here, the entry's blocks at detach). */
    if ((rc = mb__pool_intent_claim(p, c->pool_holder, &p->rec)) != 0) {
      mb_os_section_unmap(base, c->pool_len[i]);
      mb_os_section_close(&p->sec);
      memset(p, 0, sizeof *p);
      return rc;
    }
    if (release_cached)
      mb__pool_release_owner(p, c->index + 1, 1);
  }
  return 0;
}

/* Find the pool `name` in the directory (its index into *index) and map it (caller holds
 * mem_lock). MB_ENOENT if the broker has no such pool. */
static int mb__pool_map(mb_client_t *c, const char *name, uint32_t *index) {
  uint32_t i;
  for (i = 0; i < c->pool_count; i++)
    if (strncmp(c->st->pools[i].name, name, MB_POOL_NAME_MAX) == 0)
      break;
  if (i >= c->pool_count)
    return mb__errorf(MB_ENOENT, 0, "the broker of instance '%s' has no pool '%s'", c->instance,
                      name);
  *index = i;
  return mb__pool_map_index(c, i, 1);
}

int mb_pool_open(mb_client_t *c, const char *name, unsigned flags, mb_pool_t **pool) {
  uint32_t i = 0; /* set by mb__pool_map on success (gcc -O2 cannot tell) */
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (name == NULL || pool == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_open: name and pool are required");
  if (flags & ~(unsigned)MB_POOL_NO_CACHE)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_open: unknown flags 0x%x", flags);
  mb_os_mutex_lock(&c->mem_lock);
  rc = mb__pool_map(c, name, &i);
  mb_os_mutex_unlock(&c->mem_lock);
  if (rc != 0)
    return rc;
  if (c->pools[i] == NULL) {
    if ((c->pools[i] = calloc(1, sizeof *c->pools[i])) == NULL)
      return mb__errorf(MB_ENOMEM, 0, "mb_pool_open '%s'", name);
    c->pools[i]->client = c;
    snprintf(c->pools[i]->name, sizeof c->pools[i]->name, "%s", name);
  }
  if (c->pools[i]->flags != flags) {
    mb__tcaches_release(c, c->pools[i]); /* with or without caches from now on */
    c->pools[i]->flags = flags;
    mb_store64(&c->pools[i]->seq, 0); /* the next call works out `uncached` again */
  }
  *pool = c->pools[i];
  return 0;
}

/* The pool's mapping in the current attachment (cached in the handle), after the checks
 * every pool call makes: the client is attached and the entry still its own. */
static int mb__pool_need(mb_pool_t *pool, mb_pool_map_t **map) {
  mb_client_t *c;
  uint32_t i = 0; /* set by mb__pool_map on success */
  int rc;
  *map = NULL;
  if (pool == NULL)
    return mb__errorf(MB_EINVAL, 0, "no pool");
  c = pool->client;
  if (c->st == NULL || c->self.pid != mb_os_pid())
    return mb__need(c);
  if (!mb__entry_mine(c))
    return mb__stale(c);
  if (mb_load64(&pool->seq) != c->attach_seq) {
    /* The first call after an attach: threads may race here, so one sets the handle up under
     * the client's lock and publishes it with seq (release; read with acquire above). */
    mb_os_mutex_lock(&c->mem_lock);
    rc = 0;
    if (mb_load64(&pool->seq) != c->attach_seq && (rc = mb__pool_map(c, pool->name, &i)) == 0) {
      pool->map = &c->pools_map[i];
      pool->owner = c->index + 1;
      /* Blocks go straight to and from the shared pool when the handle asked for it or the
       * pool is a debug pool (each free checked with a CAS and poisoned, each alloc checks
       * the poison). */
      pool->uncached = (pool->flags & MB_POOL_NO_CACHE) || (pool->map->flags & MB_POOL_F_DEBUG);
      pool->mag = pool->uncached && !(pool->map->flags & MB_POOL_F_DEBUG);
      mb_store64(&pool->seq, c->attach_seq);
    }
    mb_os_mutex_unlock(&c->mem_lock);
    if (rc != 0)
      return rc;
  }
  *map = pool->map;
  return 0;
}

MB_COLD static int mb__pool_alloc_slow(mb_pool_t *pool, void **obj) {
  mb_pool_map_t *p;
  mb__tcache_t *t;
  uint32_t idx, got, owner;
  int rc;
  if (obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_alloc: no object pointer");
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  owner = pool->owner;
  if ((t = mb__tc_last) == NULL || t->pool != pool) {
    if ((rc = mb__tcache_get(pool, &t)) != 0) /* the record, even without caching */
      return rc;
  }
  if (pool->mag) {
    if ((rc = mb__pool_mag_take(p, t->rec, MB_STAMP_IN_USE | owner, &idx)) != 0)
      return rc;
  } else if (pool->uncached) {
    if ((rc = mb__pool_take(p, t->rec, MB_STAMP_IN_USE | owner, 1, &idx, &got)) != 0)
      return rc;
  } else {
    if (t->n == 0) {
      if ((rc = mb__pool_take(p, t->rec, MB_STAMP_CACHED | owner, MB_POOL_CHAIN, t->idx, &got)) !=
          0)
        return rc;
      t->n = got;
    }
    idx = t->idx[--t->n];
    mb_store32(&p->stamps[idx], MB_STAMP_IN_USE | owner);
  }
  *obj = mb__pool_block(p, idx);
  return 0;
}

/*
 * The fast paths: the thread's last cache is this pool's (so bound in this attachment: caches
 * are let go at detach and reattach) and the entry is still ours. Anything else - no cache
 * yet, empty or full, another pool, a stale entry, a bad argument - takes the slow path,
 * which checks everything again and says what is wrong.
 */
int mb_pool_alloc(mb_pool_t *pool, void **obj) {
  mb__tcache_t *t = mb__tc_last;
  uint32_t n;
  /* n is read once, before the entry word's acquire load (which would force a second read). */
  if (t != NULL && t->pool == pool && pool != NULL && (n = t->n) > 0 && obj != NULL &&
      mb_load64(t->entry_word) == t->word) {
    uint32_t idx = t->idx[n - 1];
    t->n = n - 1;
    mb_store32(&t->stamps[idx], MB_STAMP_IN_USE | t->owner);
    *obj = t->blocks + (size_t)idx * t->stride;
    return 0;
  }
  /* An uncached handle's: straight to the thread's magazine (pool.c). */
  if (t != NULL && t->mag && t->pool == pool && pool != NULL && obj != NULL &&
      mb_load64(t->entry_word) == t->word) {
    uint32_t idx;
    int rc = mb__pool_mag_take(pool->map, t->rec, MB_STAMP_IN_USE | t->owner, &idx);
    if (rc == 0)
      *obj = t->blocks + (size_t)idx * t->stride;
    return rc;
  }
  return mb__pool_alloc_slow(pool, obj);
}

MB_COLD static int mb__pool_free_slow(mb_pool_t *pool, void *obj) {
  mb_pool_map_t *p;
  mb__tcache_t *t;
  uint32_t idx, s, owner;
  int rc;
  if ((rc = mb__pool_need(pool, &p)) != 0 || (rc = mb__pool_index(p, obj, &idx)) != 0)
    return rc;
  if ((t = mb__tc_last) == NULL || t->pool != pool) {
    if ((rc = mb__tcache_get(pool, &t)) != 0)
      return rc;
  }
  if (pool->mag)
    return mb__pool_mag_give(p, t->rec, pool->owner, idx);
  if (pool->uncached)
    return mb__pool_give(p, t->rec, &idx, 1, MB_STAMP_IN_USE, NULL);
  /* A block of our own: a plain check and store (two threads freeing one block at once are
   * caught only by a debug pool, which has no caches). Another client's: a CAS from the
   * stamp seen, so a broker giving that client's blocks back at the same moment cannot
   * also push it. Either way a block that is not in use is refused. */
  owner = pool->owner;
  s = mb_load32(&p->stamps[idx]);
  if (!(s & MB_STAMP_IN_USE) || MB_STAMP_OWNER(s) == 0xFFFFu ||
      (MB_STAMP_OWNER(s) == owner ? (mb_store32(&p->stamps[idx], MB_STAMP_CACHED | owner), 0)
                                  : !mb_cas32(&p->stamps[idx], &s, MB_STAMP_CACHED | owner))) {
    mb_add64(&p->desc->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%.*s': block %u is not in use (double free?)",
                      MB_POOL_NAME_MAX - 1, p->desc->name, (unsigned)idx);
  }
  if (t->n == MB__TCACHE_MAX) { /* full: the older half goes back as one chain */
    mb__pool_give(p, t->rec, t->idx, MB_POOL_CHAIN, MB_STAMP_CACHED | owner, NULL);
    memmove(t->idx, t->idx + MB_POOL_CHAIN, (MB__TCACHE_MAX - MB_POOL_CHAIN) * sizeof t->idx[0]);
    t->n -= MB_POOL_CHAIN;
  }
  t->idx[t->n++] = idx;
  return 0;
}

int mb_pool_free(mb_pool_t *pool, void *obj) {
  mb__tcache_t *t = mb__tc_last;
  uint32_t n;
  if (obj == NULL)
    return 0;
  if (t != NULL && t->pool == pool && pool != NULL && (n = t->n) < MB__TCACHE_MAX &&
      t->shift >= 0 && mb_load64(t->entry_word) == t->word) {
    /* One unsigned subtraction: below the first block wraps to a huge offset. */
    uint64_t off = (uint64_t)((uintptr_t)obj - (uintptr_t)t->blocks);
    if (off < t->span && (off & (t->stride - 1)) == 0) {
      uint32_t idx = (uint32_t)(off >> t->shift), mine = t->owner;
      if (mb_load32(&t->stamps[idx]) == (MB_STAMP_IN_USE | mine)) { /* another's: slow path */
        t->idx[n] = idx;
        t->n = n + 1;
        mb_store32(&t->stamps[idx], MB_STAMP_CACHED | mine);
        return 0;
      }
    }
  }
  if (t != NULL && t->mag && t->pool == pool && pool != NULL &&
      mb_load64(t->entry_word) == t->word) {
    uint32_t idx; /* a pointer that is no block's: the slow path says what is wrong */
    if (mb__pool_index(pool->map, obj, &idx) == 0)
      return mb__pool_mag_give(pool->map, t->rec, t->owner, idx);
  }
  return mb__pool_free_slow(pool, obj);
}

/* The out-of-line calls behind membroker.h's inline fast path: the call, then the thread's
 * cache of `pool` (the one the fast paths would use next) for the caller's next inline try. */
static void mb__tc_hand(const mb_pool_t *pool, mb_pool_tcache_t **tc, unsigned abi) {
  mb__tcache_t *t = mb__tc_last;
  if (tc != NULL)
    *tc = abi == MB_POOL_TCACHE_ABI && t != NULL && t->pool == pool ? (mb_pool_tcache_t *)(void *)t
                                                                    : NULL;
}

int mb_pool_alloc_tc(mb_pool_t *pool, void **obj, mb_pool_tcache_t **tc, unsigned abi) {
  int rc = mb_pool_alloc(pool, obj);
  mb__tc_hand(pool, tc, abi);
  return rc;
}

int mb_pool_free_tc(mb_pool_t *pool, void *obj, mb_pool_tcache_t **tc, unsigned abi) {
  int rc = mb_pool_free(pool, obj);
  mb__tc_hand(pool, tc, abi);
  return rc;
}

int mb_pool_flush(mb_pool_t *pool) {
  mb__tcache_t *t;
  mb_pool_map_t *p;
  int rc;
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  if (mb_load32(&mb__tc_ready) != 2)
    return 0;
  for (t = mb_os_tls_get(&mb__tc_key); t != NULL; t = t->tnext)
    if (t->pool == pool) {
      mb_os_mutex_lock(&mb__tc_lock);
      mb__tcache_flush(t);
      mb_os_mutex_unlock(&mb__tc_lock);
    }
  return 0;
}

int mb_pool_next(mb_pool_t *pool, uint64_t *cursor, void **obj) {
  mb_pool_map_t *p;
  uint32_t owner, cap;
  int rc;
  if (cursor == NULL || obj == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_pool_next: cursor and obj are required");
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  owner = MB_STAMP_IN_USE | (pool->client->index + 1);
  cap = (uint32_t)(p->span / p->stride); /* the map's copy, checked when it was mapped */
  for (; *cursor < cap; (*cursor)++) {
    if (mb_load32(&p->stamps[*cursor]) == owner) {
      *obj = mb__pool_block(p, (uint32_t)(*cursor)++);
      return 0;
    }
  }
  return mb__errorf(MB_ENOENT, 0, "no more objects");
}

/*
 * The figures of MB_POOL_STATS (stats.h) as the broker's report works them out (service/
 * report.c, mb__pool): allocated and freed are the intent records' sums (the truth, which the
 * broker's own figures are too), peak is raised to in_use, and the fixed figures come from
 * this mapping's checked copies (capacity, stride, the debug flag) or the descriptor.
 */
int mb_pool_stats(mb_pool_t *pool, mb_shared_pool_stats_t *st) {
  mb_pool_map_t *p;
  mb_shared_pool_stats_t v;
  uint64_t peak;
  int rc;
  if (st == NULL || st->size < sizeof v)
    return mb__errorf(MB_EINVAL, 0,
                      "mb_pool_stats: stats->size must be sizeof(mb_shared_pool_stats_t) (%u), "
                      "got %u",
                      (unsigned)sizeof v, st == NULL ? 0u : (unsigned)st->size);
  if ((rc = mb__pool_need(pool, &p)) != 0)
    return rc;
  memset(&v, 0, sizeof v);
  v.size = (uint32_t)sizeof v;
  v.version = MB_SHARED_POOL_STATS_VERSION;
  mb__pool_totals(p, &v.allocated, &v.freed);
  v.in_use = v.allocated - v.freed; /* mb__pool_totals: freed <= allocated */
  peak = mb_load64(&p->desc->peak);
  v.peak = peak > v.in_use ? peak : v.in_use;
  v.misses = mb_load64(&p->desc->misses);
  v.reclaimed = mb_load64(&p->desc->reclaimed);
  v.errors = mb_load64(&p->desc->errors);
  v.refills = mb_load64(&p->desc->refills);
  v.object_size = p->desc->object_size;
  v.align = p->desc->align;
  v.capacity = p->capacity;
  v.free = v.capacity > v.in_use ? v.capacity - v.in_use : 0;
  v.min_free = v.capacity > v.peak ? v.capacity - v.peak : 0;
  v.bytes = (uint64_t)p->capacity * p->stride;
  v.debug = (p->flags & MB_POOL_F_DEBUG) != 0;
  memcpy(st, &v, sizeof v);
  return 0;
}
