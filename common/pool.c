/*
 * pool.c - lock-free fixed-size object pools in shared memory (see pool.h).
 *
 * The free stack's head is (tag << 32) | (first block of the top chain + 1). A pop reads the
 * head, then the next chain from the top chain's first block, and CASes the head to it with
 * tag + 1; if another process popped and pushed in between, the tag differs and the CAS
 * fails, so a stale "next chain" is never installed (ABA). links[] lives apart from the
 * blocks, so reading a link of a block another process holds is harmless.
 */
#include "pool.h"

#include <string.h>

#define MB_POOL_POISON 0xDB

int mb__pool_layout(mb_pool_desc_t *d, uint32_t object_size, uint32_t align, uint32_t capacity,
                    size_t page_size) {
  uint64_t stride, blocks;
  if (object_size == 0 || capacity == 0 || align == 0 || (align & (align - 1)) != 0 ||
      align > page_size)
    return mb__errorf(MB_EINVAL, 0, "pool '%s': object size %u, alignment %u, capacity %u", d->name,
                      (unsigned)object_size, (unsigned)align, (unsigned)capacity);
  stride = mb__round_up(object_size, align);
  if (stride > UINT32_MAX)
    return mb__errorf(MB_ERANGE, 0, "pool '%s': objects of %u bytes are too large", d->name,
                      (unsigned)object_size);
  d->object_size = object_size;
  d->stride = (uint32_t)stride;
  d->align = align;
  d->capacity = capacity;
  d->links_offset = 0;
  d->stamps_offset = (uint64_t)capacity * sizeof(mb_au64);
  d->blocks_offset =
      mb__round_up(d->stamps_offset + (uint64_t)capacity * sizeof(mb_au32), page_size);
  blocks = stride * capacity;
  d->section_size = mb__round_up(d->blocks_offset + blocks, page_size);
  return 0;
}

void mb__pool_bind(mb_pool_map_t *p) {
  p->links = (mb_au64 *)(p->base + p->desc->links_offset);
  p->stamps = (mb_au32 *)(p->base + p->desc->stamps_offset);
  p->blocks = p->base + p->desc->blocks_offset;
  p->stride = p->desc->stride;
  p->span = (uint64_t)p->stride * p->desc->capacity;
  for (p->shift = 0; p->shift < 32 && (1u << p->shift) != p->stride; p->shift++) {
  }
  if (p->shift == 32)
    p->shift = -1;
}

/* Count n blocks out of the pool and raise the peak to what is out now. allocated is added
 * before freed is read (mb__pool_in_use), so the difference never passes the capacity. */
static void mb__pool_count_out(mb_pool_desc_t *d, uint32_t n) {
  uint64_t now = mb_add64(&d->allocated, n) + n;
  mb_max64(&d->peak, now - mb_load64(&d->freed));
}

/* Link idx[0..n) into a chain and push it on the free stack. */
static void mb__push_chain(mb_pool_map_t *p, const uint32_t *idx, uint32_t n) {
  mb_pool_desc_t *d = p->desc;
  uint64_t h = mb_load64(&d->head);
  uint32_t k, first = idx[0];
  for (k = 0; k + 1 < n; k++)
    mb_store64(&p->links[idx[k]], (uint64_t)idx[k + 1] + 1);
  if (n > 1)
    mb_store64(&p->links[idx[n - 1]], 0);
  for (;;) {
    uint64_t low = n > 1 ? (uint64_t)idx[1] + 1 : 0;
    mb_store64(&p->links[first], ((h & 0xFFFFFFFFu) << 32) | low);
    if (mb_cas64(&d->head, &h, (((h >> 32) + 1) << 32) | ((uint64_t)first + 1)))
      return;
  }
}

/* Pop the top chain into out[] (at most MB_POOL_CHAIN); its length, or 0 if the stack is
 * empty. */
static uint32_t mb__pop_chain(mb_pool_map_t *p, uint32_t *out) {
  mb_pool_desc_t *d = p->desc;
  uint64_t h = mb_load64(&d->head);
  uint32_t n = 0, i;
  for (;;) {
    uint64_t first1 = h & 0xFFFFFFFFu, next;
    if (first1 == 0 || first1 > d->capacity)
      return 0;
    next = mb_load64(&p->links[first1 - 1]) >> 32;
    if (mb_cas64(&d->head, &h, (((h >> 32) + 1) << 32) | next))
      break;
  }
  /* The chain is ours now: walk it. */
  i = (uint32_t)(h & 0xFFFFFFFFu) - 1;
  for (;;) {
    uint64_t low = mb_load64(&p->links[i]) & 0xFFFFFFFFu;
    out[n++] = i;
    if (low == 0 || low > d->capacity || n == MB_POOL_CHAIN)
      break;
    i = (uint32_t)low - 1;
  }
  return n;
}

/* 1 if block i holds nothing but poison (or, never used, nothing but zero). */
static int mb__poison_intact(const mb_pool_map_t *p, uint32_t i) {
  const unsigned char *b = mb__pool_block(p, i);
  uint32_t k, stride = p->desc->stride;
  for (k = 0; k < stride; k++)
    if (b[k] != MB_POOL_POISON)
      return 0;
  return 1;
}

int mb__pool_take(mb_pool_map_t *p, uint32_t stamp, uint32_t want, uint32_t *out, uint32_t *got) {
  mb_pool_desc_t *d = p->desc;
  uint32_t n, k, chain[MB_POOL_CHAIN], bad = UINT32_MAX;
  if (want == 0 || want > MB_POOL_CHAIN)
    want = want == 0 ? 1 : MB_POOL_CHAIN;
  n = mb__pop_chain(p, chain);
  if (n > 0) {
    if (n > want) { /* keep what we want, the rest back as one chain */
      mb__push_chain(p, chain + want, n - want);
      n = want;
    }
    memcpy(out, chain, n * sizeof *out);
    if (d->flags & MB_POOL_F_DEBUG)
      for (k = 0; k < n && bad == UINT32_MAX; k++)
        if (!mb__poison_intact(p, out[k]))
          bad = k;
  } else {
    uint64_t b = mb_load64(&d->bump);
    for (;;) {
      if (b >= d->capacity) {
        mb_add64(&d->misses, 1);
        return mb__errorf(MB_EFULL, 0, "pool '%s': all %u objects are in use", d->name,
                          (unsigned)d->capacity);
      }
      n = d->capacity - b < want ? (uint32_t)(d->capacity - b) : want;
      if (mb_cas64(&d->bump, &b, b + n))
        break;
    }
    for (k = 0; k < n; k++)
      out[k] = (uint32_t)b + k;
  }
  if (bad != UINT32_MAX) {
    /* Written after its free: set it aside for good, give the others back. */
    uint32_t victim = out[bad];
    mb_store32(&p->stamps[victim], MB_STAMP_IN_USE | 0xFFFFu);
    mb_add64(&d->errors, 1);
    mb__pool_count_out(d, 1);
    out[bad] = out[n - 1];
    if (n > 1)
      mb__push_chain(p, out, n - 1);
    return mb__errorf(MB_EIO, 0,
                      "pool '%s': block %u was written after it was freed (use after free); "
                      "it is set aside",
                      d->name, (unsigned)victim);
  }
  for (k = 0; k < n; k++)
    mb_store32(&p->stamps[out[k]], stamp);
  mb__pool_count_out(d, n);
  *got = n;
  return 0;
}

int mb__pool_give(mb_pool_map_t *p, const uint32_t *idx, uint32_t n, uint32_t expect,
                  uint32_t *given) {
  mb_pool_desc_t *d = p->desc;
  uint32_t ok[MB_POOL_CHAIN], m = 0, k, bad = UINT32_MAX;
  if (n > MB_POOL_CHAIN)
    n = MB_POOL_CHAIN;
  for (k = 0; k < n; k++) {
    uint32_t s = mb_load32(&p->stamps[idx[k]]);
    int fits =
        MB_STAMP_OWNER(expect) != 0 ? s == expect : (s & expect) && MB_STAMP_OWNER(s) != 0xFFFFu;
    /* Claim the free: only one of two frees of a block can move its stamp. */
    if (!fits || !mb_cas32(&p->stamps[idx[k]], &s, MB_STAMP_FREE)) {
      if (bad == UINT32_MAX)
        bad = idx[k];
      continue;
    }
    ok[m++] = idx[k];
  }
  if (m > 0) {
    if (d->flags & MB_POOL_F_DEBUG)
      for (k = 0; k < m; k++)
        memset(mb__pool_block(p, ok[k]), MB_POOL_POISON, d->stride);
    /* Counted out before they can be taken again, so allocated - freed never counts a
     * block twice (and peak never passes the capacity). */
    mb_add64(&d->freed, m);
    mb__push_chain(p, ok, m);
  }
  if (given)
    *given = m;
  if (bad != UINT32_MAX && MB_STAMP_OWNER(expect) == 0) {
    mb_add64(&d->errors, 1);
    return mb__errorf(MB_EINVAL, 0, "pool '%s': block %u is not in use (double free?)", d->name,
                      (unsigned)bad);
  }
  return 0; /* with an exact stamp, a block that changed hands is simply not ours to give */
}

int mb__pool_index(const mb_pool_map_t *p, const void *obj, uint32_t *idx) {
  const mb_pool_desc_t *d = p->desc;
  const unsigned char *o = obj;
  uint64_t off;
  if (o < p->blocks || o >= p->blocks + p->span)
    return mb__errorf(MB_EINVAL, 0, "pool '%s': %p is not a block of this pool", d->name, obj);
  off = (uint64_t)(o - p->blocks);
  if (p->shift >= 0 && (off & (d->stride - 1)) == 0) {
    *idx = (uint32_t)(off >> p->shift);
    return 0;
  }
  if (off % d->stride != 0)
    return mb__errorf(
        MB_EINVAL, 0, "pool '%s': %p points %llu bytes into block %llu, not at its start", d->name,
        obj, (unsigned long long)(off % d->stride), (unsigned long long)(off / d->stride));
  *idx = (uint32_t)(off / d->stride);
  return 0;
}

/* Give back the blocks idx[0..n) whose stamp is still exactly `stamp`; how many went. */
static uint32_t mb__pool_give_exact(mb_pool_map_t *p, const uint32_t *idx, uint32_t n,
                                    uint32_t stamp) {
  uint32_t given = 0;
  mb__pool_give(p, idx, n, stamp, &given);
  return given;
}

/*
 * The blocks are batched by the stamp they were seen with and given back only if they still
 * have it (a CAS from that exact value): a block freed and taken again by another client
 * between the scan and the give is left alone.
 */
uint64_t mb__pool_release_owner(mb_pool_map_t *p, uint32_t owner, int cached_only) {
  const mb_pool_desc_t *d = p->desc;
  uint32_t used[MB_POOL_CHAIN], cached[MB_POOL_CHAIN], nu = 0, nc = 0, i, cap = d->capacity;
  uint64_t bump = mb_load64(&d->bump), total = 0;
  if (bump < cap)
    cap = (uint32_t)bump; /* blocks above bump were never handed out */
  for (i = 0; i < cap; i++) {
    uint32_t s = mb_load32(&p->stamps[i]);
    if (s == (MB_STAMP_CACHED | owner)) {
      cached[nc++] = i;
      if (nc == MB_POOL_CHAIN) {
        total += mb__pool_give_exact(p, cached, nc, MB_STAMP_CACHED | owner);
        nc = 0;
      }
    } else if (!cached_only && s == (MB_STAMP_IN_USE | owner)) {
      used[nu++] = i;
      if (nu == MB_POOL_CHAIN) {
        total += mb__pool_give_exact(p, used, nu, MB_STAMP_IN_USE | owner);
        nu = 0;
      }
    }
  }
  if (nc > 0)
    total += mb__pool_give_exact(p, cached, nc, MB_STAMP_CACHED | owner);
  if (nu > 0)
    total += mb__pool_give_exact(p, used, nu, MB_STAMP_IN_USE | owner);
  return total;
}
