/*
 * tagheap.c - a private boundary-tag heap over reserved virtual memory: mb_os_heap_* on POSIX
 * (os_posix.c forwards to it), built on every OS so its tests run under Wine as well.
 *
 * One reservation (mb_os_reserve) holds the heap; [base, end) is committed and tiled with
 * blocks, without gaps, in address order. Every block is a multiple of 16 bytes and carries:
 *
 *   +0   word    size | MB__TH_INUSE
 *   +8   req     the size asked for (used blocks; 0 when free)
 *   +16  check   (uintptr)block ^ word ^ key: a random per-heap key, so a pointer that is not
 *                a block (or a smashed header) is recognised before anything is changed
 *   +24  (zero)
 *   +32  payload (16-byte aligned); a free block keeps its list links here
 *   -8   footer  = word, so the block before can be found when coalescing
 *
 * Free blocks are coalesced at once with their free neighbours (never two free blocks in a
 * row) and kept in 256 segregated doubly linked lists: exact 16-byte classes below 1 KiB,
 * four classes per power of two above, with a bitmap of the non-empty ones, so a fit is found
 * with a few bit scans. When nothing fits, the committed end grows by at least 64 KiB
 * (mb_os_commit); compact gives whole free pages at the end back (mb_os_decommit).
 *
 * The heap takes its mutex around every call unless created with MB_OS_HEAP_NO_SERIALIZE.
 */
#include "os.h"

#include <stdlib.h>
#include <string.h>

#define TH_ALIGN 16u
#define TH_HDR ((size_t)MB__THEAP_HEADER)
#define TH_FTR 8u
#define TH_MIN 64u /* header + two links + footer, rounded to 16 */
#define TH_INUSE ((uint64_t)1)
#define TH_NBINS 256
#define TH_GROW_MIN ((size_t)64 * 1024)

typedef struct th_free_s {
  char *next, *prev; /* blocks (not payloads) of the same list */
} th_free_t;

struct mb__theap_s {
  mb_os_mutex_t lock;
  int serialize;
  char *base, *end; /* reservation start; end of the committed, tiled part */
  size_t reserved;  /* bytes of the reservation */
  size_t keep;      /* bytes compact never gives back (initial, page-rounded) */
  uint64_t key;
  uint64_t bitmap[TH_NBINS / 64];
  char *bins[TH_NBINS];
};

/* ---- bits ---------------------------------------------------------------------------------- */

static unsigned th_log2(uint64_t v) { /* v > 0 */
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanReverse64(&i, v);
  return (unsigned)i;
#else
  return 63u - (unsigned)__builtin_clzll(v);
#endif
}

static unsigned th_ctz(uint64_t v) { /* v > 0 */
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward64(&i, v);
  return (unsigned)i;
#else
  return (unsigned)__builtin_ctzll(v);
#endif
}

/* The list of a free block of `size` bytes (a multiple of 16, >= TH_MIN). */
static unsigned th_bin(size_t size) {
  unsigned l, i;
  if (size < 1024)
    return (unsigned)(size >> 4);
  l = th_log2(size);
  i = 64u + (l - 10u) * 4u + (unsigned)((size >> (l - 2u)) & 3u);
  return i < TH_NBINS ? i : TH_NBINS - 1;
}

/* ---- tags ---------------------------------------------------------------------------------- */

static uint64_t *th_word(char *b) {
  return (uint64_t *)(void *)b;
}
static size_t th_size(char *b) {
  return (size_t)(*th_word(b) & ~(uint64_t)(TH_ALIGN - 1));
}
static int th_used(char *b) {
  return (*th_word(b) & TH_INUSE) != 0;
}
static th_free_t *th_links(char *b) {
  return (th_free_t *)(void *)(b + TH_HDR);
}
static uint64_t th_check(const mb__theap_t *h, const char *b, uint64_t word) {
  return (uint64_t)(uintptr_t)b ^ word ^ h->key;
}

/* Write every tag of block b. */
static void th_set(mb__theap_t *h, char *b, size_t size, int used, size_t req) {
  uint64_t word = (uint64_t)size | (used ? TH_INUSE : 0);
  uint64_t *w = th_word(b);
  w[0] = word;
  w[1] = (uint64_t)req;
  w[2] = th_check(h, b, word);
  w[3] = 0;
  *(uint64_t *)(void *)(b + size - TH_FTR) = word;
}

/* The block size that holds a request of n bytes; 0 if n is too large to ever fit. */
static size_t th_need(size_t n) {
  size_t s;
  if (n > ((size_t)-1) / 4)
    return 0;
  s = (n + TH_HDR + TH_FTR + TH_ALIGN - 1) & ~(size_t)(TH_ALIGN - 1);
  return s < TH_MIN ? TH_MIN : s;
}

/* ---- free lists ---------------------------------------------------------------------------- */

static void th_push(mb__theap_t *h, char *b) {
  unsigned i = th_bin(th_size(b));
  th_free_t *l = th_links(b);
  l->prev = NULL;
  l->next = h->bins[i];
  if (l->next != NULL)
    th_links(l->next)->prev = b;
  h->bins[i] = b;
  h->bitmap[i / 64] |= (uint64_t)1 << (i % 64);
}

static void th_unlink(mb__theap_t *h, char *b) {
  unsigned i = th_bin(th_size(b));
  th_free_t *l = th_links(b);
  if (l->prev != NULL)
    th_links(l->prev)->next = l->next;
  else
    h->bins[i] = l->next;
  if (l->next != NULL)
    th_links(l->next)->prev = l->prev;
  if (h->bins[i] == NULL)
    h->bitmap[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* A free block of at least `size` bytes, taken off its list, or NULL. */
static char *th_find(mb__theap_t *h, size_t size) {
  unsigned i = th_bin(size);
  int scan;
  char *b;
  /* The class of `size` itself: exact below 1 KiB; above, look at a few of its blocks. */
  for (b = h->bins[i], scan = 0; b != NULL && scan < 8; b = th_links(b)->next, scan++)
    if (th_size(b) >= size) {
      th_unlink(h, b);
      return b;
    }
  /* Any block of a higher class is large enough. */
  for (i = i + 1; i < TH_NBINS; i = (i & ~63u) + 64) {
    uint64_t m = h->bitmap[i / 64] & (~(uint64_t)0 << (i % 64));
    if (m != 0) {
      b = h->bins[(i & ~63u) + th_ctz(m)];
      th_unlink(h, b);
      return b;
    }
  }
  return NULL;
}

/* Make free block b (off its list) a used block of `size` bytes for a request of req bytes;
 * the rest, if it can be a block, goes back as a free block. */
static void th_take(mb__theap_t *h, char *b, size_t size, size_t req) {
  size_t have = th_size(b);
  if (have - size >= TH_MIN) {
    th_set(h, b + size, have - size, 0, 0);
    th_push(h, b + size);
    have = size;
  }
  th_set(h, b, have, 1, req);
}

/* The block that ends where b starts, or NULL for the first block. */
static char *th_prev(mb__theap_t *h, char *b) {
  uint64_t w;
  if (b == h->base)
    return NULL;
  w = *(uint64_t *)(void *)(b - TH_FTR);
  return b - (size_t)(w & ~(uint64_t)(TH_ALIGN - 1));
}

/* Free block b (tags not yet written as free): coalesce with free neighbours, list it. */
static void th_release(mb__theap_t *h, char *b, size_t size) {
  char *p = th_prev(h, b), *n = b + size;
  th_set(h, b, size, 0, 0); /* a stale header left inside a merged block reads as free */
  if (p != NULL && !th_used(p)) {
    th_unlink(h, p);
    size += th_size(p);
    b = p;
  }
  if (n < h->end && !th_used(n)) {
    th_unlink(h, n);
    size += th_size(n);
  }
  th_set(h, b, size, 0, 0);
  th_push(h, b);
}

/* Commit at least `need` more bytes at the end; the new space joins the last block if free. */
static int th_grow(mb__theap_t *h, size_t need) {
  size_t ps = mb_os_mem_config()->page_size;
  size_t room = h->reserved - (size_t)(h->end - h->base);
  size_t grow = (need + ps - 1) & ~(ps - 1);
  char *last;
  int rc;
  if (grow > room)
    return mb__errorf(MB_ENOSPC, 0,
                      "heap of %zu reserved bytes: no room to commit %zu more (%zu committed)",
                      h->reserved, grow, (size_t)(h->end - h->base));
  if (grow < TH_GROW_MIN)
    grow = TH_GROW_MIN < room ? TH_GROW_MIN : room;
  if ((rc = mb_os_commit(h->end, grow)) != 0)
    return rc;
  last = th_prev(h, h->end);
  if (last != NULL && !th_used(last)) {
    th_unlink(h, last);
    h->end += grow;
    th_set(h, last, th_size(last) + grow, 0, 0);
    th_push(h, last);
  } else {
    char *b = h->end;
    h->end += grow;
    th_set(h, b, grow, 0, 0);
    th_push(h, b);
  }
  return 0;
}

/*
 * The block of payload p if p is a live block of this heap, else NULL with the error
 * recorded: outside the committed range or misaligned, tags that do not check, or a block
 * that is free (a double free, unless its memory was handed out again).
 */
static char *th_block(mb__theap_t *h, const void *p, const char *what, int *rc) {
  const char *c = (const char *)p;
  char *b;
  size_t size;
  if (c < h->base + TH_HDR || c >= h->end || (size_t)(c - h->base) % TH_ALIGN != 0) {
    *rc = mb__errorf(MB_EINVAL, 0, "%s %p: not a block of this heap (outside [%p, %p))", what, p,
                     (void *)h->base, (void *)h->end);
    return NULL;
  }
  b = (char *)c - TH_HDR;
  size = th_size(b);
  if (th_word(b)[2] != th_check(h, b, *th_word(b)) || size < TH_MIN ||
      size > (size_t)(h->end - b)) {
    *rc = mb__errorf(MB_EINVAL, 0, "%s %p: not a block of this heap (its tags do not check)", what,
                     p);
    return NULL;
  }
  if (!th_used(b)) {
    *rc = mb__errorf(MB_EINVAL, 0, "%s %p: the block is free (a double free?)", what, p);
    return NULL;
  }
  return b;
}

/* ---- the calls ----------------------------------------------------------------------------- */

static void th_lock(mb__theap_t *h) {
  if (h->serialize)
    mb_os_mutex_lock(&h->lock);
}

static void th_unlock(mb__theap_t *h) {
  if (h->serialize)
    mb_os_mutex_unlock(&h->lock);
}

int mb__theap_create(unsigned flags, size_t initial, size_t maximum, mb__theap_t **heap) {
  const mb_os_mem_config_t *mc = mb_os_mem_config();
  size_t ps = mc->page_size, gran = mc->alloc_granularity, reserve;
  mb__theap_t *h;
  int rc;

  if (maximum == 0)
    reserve = sizeof(void *) >= 8 ? (size_t)64 << 30 : (size_t)256 << 20;
  else if (maximum > ((size_t)-1) / 4)
    return mb__errorf(MB_ERANGE, 0, "create heap: maximum %zu is too large", maximum);
  else
    reserve = 2 * maximum + ((size_t)1 << 20);
  if (initial > reserve)
    return mb__errorf(MB_EINVAL, 0, "create heap: initial %zu is above its maximum %zu", initial,
                      maximum);
  reserve = (reserve + gran - 1) & ~(gran - 1);
  if ((h = calloc(1, sizeof *h)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "create heap");
  h->serialize = !(flags & MB_OS_HEAP_NO_SERIALIZE);
  if (h->serialize && (rc = mb_os_mutex_init(&h->lock)) != 0) {
    free(h);
    return rc;
  }
  if ((rc = mb_os_reserve(reserve, (void **)&h->base)) != 0)
    goto fail;
  h->reserved = reserve;
  h->end = h->base;
  h->keep = (initial + ps - 1) & ~(ps - 1);
  h->key = mb_os_mono_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)h ^ mb_os_wall_ns();
  h->key &= ~(uint64_t)0xF; /* any value works; keep the low bits clear for readability */
  if (h->keep > 0) {
    if ((rc = mb_os_commit(h->base, h->keep)) != 0) {
      mb_os_release(h->base, h->reserved);
      goto fail;
    }
    h->end = h->base + h->keep;
    th_set(h, h->base, h->keep, 0, 0);
    th_push(h, h->base);
  }
  *heap = h;
  return 0;
fail:
  if (h->serialize)
    mb_os_mutex_destroy(&h->lock);
  free(h);
  return rc;
}

int mb__theap_alloc(mb__theap_t *h, size_t size, void **p) {
  size_t need = th_need(size);
  char *b;
  int rc;
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0, "heap alloc of 0 bytes");
  if (need == 0 || need > h->reserved)
    return mb__errorf(MB_ENOSPC, 0, "heap alloc of %zu bytes: larger than the heap's %zu reserved",
                      size, h->reserved);
  th_lock(h);
  if ((b = th_find(h, need)) == NULL) {
    char *last = th_prev(h, h->end);
    size_t have = last != NULL && !th_used(last) ? th_size(last) : 0;
    if ((rc = th_grow(h, need - have)) != 0) {
      th_unlock(h);
      return rc;
    }
    b = th_find(h, need);
  }
  th_take(h, b, need, size);
  th_unlock(h);
  *p = b + TH_HDR;
  return 0;
}

int mb__theap_free(mb__theap_t *h, void *p) {
  char *b;
  int rc = 0;
  th_lock(h);
  if ((b = th_block(h, p, "heap free of", &rc)) != NULL)
    th_release(h, b, th_size(b));
  th_unlock(h);
  return rc;
}

int mb__theap_size(mb__theap_t *h, const void *p, size_t *size) {
  char *b;
  int rc = 0;
  th_lock(h);
  if ((b = th_block(h, p, "heap size of", &rc)) != NULL)
    *size = (size_t)th_word(b)[1];
  th_unlock(h);
  return rc;
}

int mb__theap_realloc(mb__theap_t *h, void *p, size_t size, void **np) {
  size_t need = th_need(size), have;
  char *b, *n;
  void *q;
  int rc = 0;
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0, "heap realloc of %p to 0 bytes", p);
  if (need == 0 || need > h->reserved)
    return mb__errorf(MB_ENOSPC, 0, "heap realloc of %p to %zu bytes: larger than the heap", p,
                      size);
  th_lock(h);
  if ((b = th_block(h, p, "heap realloc of", &rc)) == NULL)
    goto out;
  have = th_size(b);
  n = b + have;
  if (need > have && n == h->end)
    th_grow(h, need - have); /* the last block: on success a free block follows it */
  if (need > have && n < h->end && !th_used(n) && have + th_size(n) >= need) {
    th_unlink(h, n); /* absorb the free block behind */
    have += th_size(n);
    th_set(h, b, have, 1, size);
  }
  if (need <= have) {
    if (have - need >= TH_MIN) {
      char *r = b + need;
      th_set(h, b, need, 1, size);
      th_release(h, r, have - need);
    } else {
      th_set(h, b, have, 1, size);
    }
    *np = p;
    goto out;
  }
  th_unlock(h);
  /* Move: a new block, copy, free the old one (p stays valid if the new block is refused). */
  if ((rc = mb__theap_alloc(h, size, &q)) != 0)
    return rc;
  memcpy(q, p, (size_t)th_word(b)[1] < size ? (size_t)th_word(b)[1] : size);
  mb__theap_free(h, p);
  *np = q;
  return 0;
out:
  th_unlock(h);
  return rc;
}

int mb__theap_compact(mb__theap_t *h, size_t *largest_free) {
  size_t ps = mb_os_mem_config()->page_size, largest = 0;
  char *last;
  int rc = 0, w;
  th_lock(h);
  last = th_prev(h, h->end);
  if (last != NULL && !th_used(last)) {
    char *keep = h->base + h->keep;
    char *cut = (char *)(((uintptr_t)last + TH_MIN + ps - 1) & ~(uintptr_t)(ps - 1));
    if (cut < keep)
      cut = keep;
    if (cut < h->end) {
      if ((rc = mb_os_decommit(cut, (size_t)(h->end - cut))) != 0)
        goto out;
      th_unlink(h, last);
      h->end = cut;
      if (cut > last) {
        th_set(h, last, (size_t)(cut - last), 0, 0);
        th_push(h, last);
      }
    }
  }
  for (w = TH_NBINS / 64 - 1; w >= 0 && largest == 0; w--) {
    uint64_t m = h->bitmap[w];
    if (m != 0) {
      char *b;
      for (b = h->bins[w * 64 + th_log2(m)]; b != NULL; b = th_links(b)->next)
        if (th_size(b) - TH_HDR - TH_FTR > largest)
          largest = th_size(b) - TH_HDR - TH_FTR;
    }
  }
  if (largest_free != NULL)
    *largest_free = largest;
out:
  th_unlock(h);
  return rc;
}

int mb__theap_validate(mb__theap_t *h) {
  char *b, *prev = NULL;
  size_t nfree = 0, listed = 0;
  unsigned i;
  int rc = 0;
  th_lock(h);
  for (b = h->base; b < h->end; prev = b, b += th_size(b)) {
    size_t off = (size_t)(b - h->base), size = th_size(b);
    uint64_t *w = th_word(b);
    if (w[2] != th_check(h, b, w[0])) {
      rc = mb__errorf(MB_EIO, 0, "heap block at offset %zu: header damaged (check word)", off);
      goto out;
    }
    if (size < TH_MIN || size > (size_t)(h->end - b)) {
      rc = mb__errorf(MB_EIO, 0, "heap block at offset %zu: size %zu out of range", off, size);
      goto out;
    }
    if (*(uint64_t *)(void *)(b + size - TH_FTR) != w[0]) {
      rc = mb__errorf(MB_EIO, 0, "heap block at offset %zu (%zu bytes): footer damaged", off, size);
      goto out;
    }
    if (th_used(b) && (w[1] == 0 || w[1] > size - TH_HDR - TH_FTR)) {
      rc = mb__errorf(MB_EIO, 0, "heap block at offset %zu: size asked %llu does not fit", off,
                      (unsigned long long)w[1]);
      goto out;
    }
    if (!th_used(b)) {
      nfree++;
      if (prev != NULL && !th_used(prev)) {
        rc = mb__errorf(MB_EIO, 0, "heap blocks at offsets %zu and %zu: two free blocks in a row",
                        (size_t)(prev - h->base), off);
        goto out;
      }
    }
  }
  for (i = 0; i < TH_NBINS; i++) {
    char *back = NULL;
    int bit = (h->bitmap[i / 64] >> (i % 64)) & 1;
    if (bit != (h->bins[i] != NULL)) {
      rc = mb__errorf(MB_EIO, 0, "heap free list %u: bitmap says %s", i, bit ? "used" : "empty");
      goto out;
    }
    for (b = h->bins[i]; b != NULL; back = b, b = th_links(b)->next) {
      if (b < h->base || b >= h->end || (size_t)(b - h->base) % TH_ALIGN != 0 || th_used(b) ||
          th_word(b)[2] != th_check(h, b, th_word(b)[0]) || th_bin(th_size(b)) != i ||
          th_links(b)->prev != back || ++listed > nfree) {
        rc = mb__errorf(MB_EIO, 0, "heap free list %u: entry %p is not a free block of its class",
                        i, (void *)b);
        goto out;
      }
    }
  }
  if (listed != nfree)
    rc = mb__errorf(MB_EIO, 0, "heap: %zu free blocks, but %zu on the free lists", nfree, listed);
out:
  th_unlock(h);
  return rc;
}

int mb__theap_committed(mb__theap_t *h, uint64_t *committed, uint64_t *reserved) {
  th_lock(h);
  *committed = (uint64_t)(h->end - h->base);
  if (reserved != NULL)
    *reserved = h->reserved;
  th_unlock(h);
  return 0;
}

void mb__theap_destroy(mb__theap_t *h) {
  if (h == NULL)
    return;
  mb_os_release(h->base, h->reserved);
  if (h->serialize)
    mb_os_mutex_destroy(&h->lock);
  free(h);
}
