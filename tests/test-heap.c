/*
 * test-heap.c - per-purpose heaps (mb_heap_*) on the OS's heap (HeapCreate on Windows, the
 * boundary-tag heap elsewhere), and that boundary-tag heap itself (mb__theap_*, built on every
 * OS): contents kept across realloc, statistics exact after a random workload checked
 * against a reference, validate, bad input refused, the maximum enforced, compact giving
 * pages back, a NO_SERIALIZE heap from one thread and a serialized one from two.
 */
#include "task.h"

#include "membroker.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Fill / check n bytes of p with a pattern derived from seed. */
static void fill(void *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++)
    ((unsigned char *)p)[i] = (unsigned char)(seed * 31u + i * 7u);
}

static int intact(const void *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != (unsigned char)(seed * 31u + i * 7u))
      return 0;
  return 1;
}

TEST(create_errors) {
  mb_heap_t *h = NULL;
  ASSERT_ERR(mb_heap_create("x", 7, 0, 0, 0, &h), MB_EINVAL);
  ASSERT_ERR(mb_heap_create("x", MB_HEAP_TEMP, 0x10, 0, 0, &h), MB_EINVAL);
  ASSERT_ERR(mb_heap_create("bad name", MB_HEAP_TEMP, 0, 0, 0, &h), MB_EINVAL);
  ASSERT_ERR(mb_heap_create("x", MB_HEAP_TEMP, 0, 1 << 20, 1 << 16, &h), MB_EINVAL);
  ASSERT(h == NULL);
}

TEST(alloc_realloc_free_keeps_contents) {
  int purpose;
  for (purpose = MB_HEAP_GAME_OBJECTS; purpose <= MB_HEAP_LOG; purpose++) {
    mb_heap_t *h;
    mb_heap_stats_t st;
    unsigned char *p, *q;
    size_t size = 24, i;
    ASSERT_OK(mb_heap_create("objects", purpose, 0, 64 * 1024, 0, &h));
    ASSERT_OK(mb_heap_alloc(h, size, (void **)&p));
    ASSERT_EQ((uintptr_t)p % 16, 0);
    fill(p, size, 1);
    /* Grow step by step to 1 MiB and back, with another block in the way half the time. */
    for (i = 0; i < 16; i++) {
      void *other = NULL;
      size_t next = size * 2;
      if (i % 2)
        ASSERT_OK(mb_heap_alloc(h, 100, &other));
      ASSERT_OK(mb_heap_realloc(h, p, next, (void **)&q));
      ASSERT_EQ((uintptr_t)q % 16, 0);
      ASSERT(intact(q, size, 1));
      fill(q, next, 1);
      p = q;
      size = next;
      ASSERT_OK(mb_heap_free(h, other));
    }
    while (size > 24) {
      size /= 3;
      ASSERT_OK(mb_heap_realloc(h, p, size, (void **)&q));
      ASSERT(intact(q, size, 1));
      p = q;
    }
    ASSERT_OK(mb_heap_validate(h));
    ASSERT_OK(mb_heap_stats(h, &st));
    ASSERT_EQ(st.purpose, purpose);
    ASSERT_EQ_U64(st.bytes_in_use, size);
    ASSERT_EQ_U64(st.peak_in_use, 24u * 65536u + 100u); /* the last doubling, with `other` */
    ASSERT_EQ_U64(st.blocks, 1);
    ASSERT_EQ_U64(st.allocations, 1 + 8);
    ASSERT_EQ_U64(st.frees, 8);
    ASSERT_EQ_U64(st.failures, 0);
    ASSERT_GT(st.committed, 0);
    ASSERT_OK(mb_heap_free(h, p));
    mb_heap_destroy(h);
  }
}

/* A random workload of alloc / realloc / free with contents checked, validate along the way,
 * and every statistic compared with a reference. */
static void random_workload(unsigned flags) {
  enum { SLOTS = 500, STEPS = 30000 };
  static unsigned char *blk[SLOTS];
  static size_t len[SLOTS];
  static unsigned seed[SLOTS];
  mb_heap_t *h;
  mb_heap_stats_t st;
  uint64_t in_use = 0, peak = 0, blocks = 0, allocs = 0, reallocs = 0, frees = 0;
  size_t step, i;
  memset(blk, 0, sizeof blk);
  ASSERT_OK(mb_heap_create("random", MB_HEAP_NETWORK, flags, 0, 0, &h));
  for (step = 0; step < STEPS; step++) {
    size_t size = 1 + (size_t)(rng() % ((rng() % 8) == 0 ? 65536 : 512));
    i = (size_t)(rng() % SLOTS);
    if (blk[i] == NULL) {
      ASSERT_OK(mb_heap_alloc(h, size, (void **)&blk[i]));
      len[i] = size;
      seed[i] = (unsigned)step;
      fill(blk[i], size, seed[i]);
      in_use += size;
      blocks++;
      allocs++;
    } else if (rng() % 2) {
      unsigned char *q;
      if (!intact(blk[i], len[i], seed[i]))
        FAIL("block %zu damaged before realloc", i);
      ASSERT_OK(mb_heap_realloc(h, blk[i], size, (void **)&q));
      if (!intact(q, len[i] < size ? len[i] : size, seed[i]))
        FAIL("block %zu: contents lost by realloc from %zu to %zu", i, len[i], size);
      in_use = in_use - len[i] + size;
      blk[i] = q;
      len[i] = size;
      seed[i] = (unsigned)step;
      fill(q, size, seed[i]);
      reallocs++;
    } else {
      if (!intact(blk[i], len[i], seed[i]))
        FAIL("block %zu damaged before free", i);
      ASSERT_OK(mb_heap_free(h, blk[i]));
      blk[i] = NULL;
      in_use -= len[i];
      blocks--;
      frees++;
    }
    if (in_use > peak)
      peak = in_use;
    if (step % 3000 == 0)
      ASSERT_OK(mb_heap_validate(h));
  }
  ASSERT_OK(mb_heap_validate(h));
  ASSERT_OK(mb_heap_stats(h, &st));
  ASSERT_EQ_U64(st.bytes_in_use, in_use);
  ASSERT_EQ_U64(st.peak_in_use, peak);
  ASSERT_EQ_U64(st.blocks, blocks);
  ASSERT_EQ_U64(st.allocations, allocs);
  ASSERT_EQ_U64(st.reallocations, reallocs);
  ASSERT_EQ_U64(st.frees, frees);
  ASSERT_EQ_U64(st.failures, 0);
  ASSERT_EQ_U64(st.flags, flags);
  for (i = 0; i < SLOTS; i++)
    if (blk[i] != NULL) {
      ASSERT(intact(blk[i], len[i], seed[i]));
      ASSERT_OK(mb_heap_free(h, blk[i]));
    }
  ASSERT_OK(mb_heap_stats(h, &st));
  ASSERT_EQ_U64(st.bytes_in_use, 0);
  ASSERT_EQ_U64(st.blocks, 0);
  ASSERT_OK(mb_heap_validate(h));
  mb_heap_destroy(h);
}

TEST(random_workload_validate_stats) {
  random_workload(0);
}

/* The same from the one thread that uses a NO_SERIALIZE heap. */
TEST(no_serialize_one_thread) {
  random_workload(MB_HEAP_NO_SERIALIZE);
}

TEST(bad_input) {
  mb_heap_t *h, *other;
  mb_heap_stats_t st;
  char local[64];
  void *p, *q, *r;
  ASSERT_OK(mb_heap_create("net", MB_HEAP_NETWORK, 0, 0, 0, &h));
  ASSERT_OK(mb_heap_create("log", MB_HEAP_LOG, 0, 0, 0, &other));
  ASSERT_ERR(mb_heap_alloc(h, 0, &p), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "heap 'net'");
  ASSERT_ERR(mb_heap_alloc(h, MB_HEAP_MAX_ALLOC + 1, &p), MB_ERANGE);
  ASSERT_ERR(mb_heap_alloc(h, (size_t)-1, &p), MB_ERANGE);
  ASSERT_OK(mb_heap_alloc(h, 100, &p));
  fill(p, 100, 9);
  ASSERT_ERR(mb_heap_realloc(h, p, 0, &q), MB_EINVAL);
  ASSERT_ERR(mb_heap_realloc(h, p, (size_t)-16, &q), MB_ERANGE); /* would overflow */
  ASSERT(intact(p, 100, 9));                                     /* p untouched */
  ASSERT_OK(mb_heap_free(h, NULL));
  ASSERT_ERR(mb_heap_free(h, local), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "not a block of this heap");
  ASSERT_OK(mb_heap_alloc(other, 100, &r));
  ASSERT_ERR(mb_heap_free(h, r), MB_EINVAL); /* a block of another heap */
  ASSERT_ERR(mb_heap_realloc(h, r, 200, &q), MB_EINVAL);
  ASSERT_OK(mb_heap_free(other, r));
  ASSERT_OK(mb_heap_free(h, p));
  ASSERT_OK(mb_heap_validate(h));
  ASSERT_OK(mb_heap_stats(h, &st));
  ASSERT_EQ_U64(st.failures, 8);
  ASSERT_EQ_U64(st.bytes_in_use, 0);
  mb_heap_destroy(other);
  mb_heap_destroy(h);
}

/* A double free: the block tags say it is free (POSIX); HeapValidate says so too (Windows). */
TEST(double_free_refused) {
  mb_heap_t *h;
  void *p, *keep;
  ASSERT_OK(mb_heap_create("twice", MB_HEAP_TEMP, 0, 0, 0, &h));
  ASSERT_OK(mb_heap_alloc(h, 200, &keep));
  ASSERT_OK(mb_heap_alloc(h, 200, &p));
  ASSERT_OK(mb_heap_free(h, p));
  ASSERT_ERR(mb_heap_free(h, p), MB_EINVAL);
  ASSERT_OK(mb_heap_validate(h));
  ASSERT_OK(mb_heap_free(h, keep));
  mb_heap_destroy(h);
}

TEST(maximum_enforced) {
  mb_heap_t *h;
  mb_heap_stats_t st;
  void *a, *b, *c;
  ASSERT_OK(mb_heap_create("capped", MB_HEAP_TEMP, 0, 4096, 64 * 1024, &h));
  ASSERT_OK(mb_heap_alloc(h, 40 * 1024, &a));
  ASSERT_ERR(mb_heap_alloc(h, 30 * 1024, &b), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "would pass its maximum of 65536 (40960 in use)");
  ASSERT_OK(mb_heap_alloc(h, 24 * 1024, &b)); /* exactly up to the maximum */
  ASSERT_ERR(mb_heap_alloc(h, 1, &c), MB_ENOSPC);
  fill(a, 40 * 1024, 3);
  ASSERT_ERR(mb_heap_realloc(h, a, 40 * 1024 + 1, &c), MB_ENOSPC);
  ASSERT(intact(a, 40 * 1024, 3));                 /* a is still valid */
  ASSERT_OK(mb_heap_realloc(h, a, 10 * 1024, &c)); /* shrinking is always fine */
  ASSERT(intact(c, 10 * 1024, 3));
  ASSERT_OK(mb_heap_alloc(h, 30 * 1024, &a));
  ASSERT_OK(mb_heap_stats(h, &st));
  ASSERT_EQ_U64(st.bytes_in_use, 64 * 1024);
  ASSERT_EQ_U64(st.peak_in_use, 64 * 1024);
  ASSERT_EQ_U64(st.maximum, 64 * 1024);
  ASSERT_EQ_U64(st.failures, 3);
  ASSERT_OK(mb_heap_free(h, a));
  ASSERT_OK(mb_heap_free(h, b));
  ASSERT_OK(mb_heap_free(h, c));
  mb_heap_destroy(h);
}

/* Compact: on the OS heap it runs and reports the largest free block (POSIX: it also gives
 * the pages back - checked on the boundary-tag heap below, on every OS). */
TEST(compact) {
  mb_heap_t *h;
  mb_heap_stats_t before, after;
  void *p[64];
  size_t largest = 0;
  int i;
  ASSERT_OK(mb_heap_create("temp", MB_HEAP_TEMP, 0, 0, 0, &h));
  for (i = 0; i < 64; i++) {
    ASSERT_OK(mb_heap_alloc(h, 64 * 1024, &p[i]));
    memset(p[i], i, 64 * 1024);
  }
  for (i = 1; i < 64; i++)
    ASSERT_OK(mb_heap_free(h, p[i]));
  ASSERT_OK(mb_heap_stats(h, &before));
  ASSERT_OK(mb_heap_compact(h, &largest));
  ASSERT_OK(mb_heap_stats(h, &after));
  ASSERT_OK(mb_heap_validate(h));
  ASSERT_EQ(((unsigned char *)p[0])[65535], 0);
  if (MB_OS_POSIX) {
    ASSERT_LT(after.committed, before.committed);
    ASSERT_LE(after.committed, 256 * 1024);
  }
  printf("# compact: committed %llu -> %llu bytes, largest free block %zu\n",
         (unsigned long long)before.committed, (unsigned long long)after.committed, largest);
  ASSERT_OK(mb_heap_free(h, p[0]));
  mb_heap_destroy(h);
}

typedef struct hworker_s {
  mb_heap_t *heap;
  unsigned id;
  int failed;
} hworker_t;

static void hworker(void *arg) {
  hworker_t *w = arg;
  void *held[32];
  unsigned round, i;
  for (round = 0; round < 2000 && !w->failed; round++) {
    for (i = 0; i < 32; i++) {
      if (mb_heap_alloc(w->heap, 16 + (round * 7 + i * 13) % 900, &held[i]) != 0) {
        w->failed = 1;
        return;
      }
      memset(held[i], (int)(w->id * 64 + i), 16);
    }
    for (i = 0; i < 32; i++) {
      if (((unsigned char *)held[i])[15] != (unsigned char)(w->id * 64 + i))
        w->failed = 2;
      if (mb_heap_free(w->heap, held[i]) != 0)
        w->failed = 3;
    }
  }
}

TEST(two_threads_serialized) {
  mb_heap_t *h;
  mb_heap_stats_t st;
  mb_os_thread_t t[2];
  hworker_t w[2];
  int k;
  ASSERT_OK(mb_heap_create("shared", MB_HEAP_GAME_OBJECTS, 0, 0, 0, &h));
  for (k = 0; k < 2; k++) {
    w[k].heap = h;
    w[k].id = (unsigned)k + 1;
    w[k].failed = 0;
    ASSERT_OK(mb_os_thread_start(&t[k], hworker, &w[k]));
  }
  for (k = 0; k < 2; k++)
    mb_os_thread_join(&t[k]);
  ASSERT_EQ(w[0].failed, 0);
  ASSERT_EQ(w[1].failed, 0);
  ASSERT_OK(mb_heap_stats(h, &st));
  ASSERT_EQ_U64(st.allocations, 2 * 2000 * 32);
  ASSERT_EQ_U64(st.frees, 2 * 2000 * 32);
  ASSERT_EQ_U64(st.bytes_in_use, 0);
  ASSERT_EQ_U64(st.blocks, 0);
  ASSERT_OK(mb_heap_validate(h));
  mb_heap_destroy(h);
}

/* ---- the boundary-tag heap itself (mb_os_heap_* on POSIX), on every OS ---------------------- */

TEST(tagheap_validate_catches_damage) {
  mb__theap_t *h;
  unsigned char *a, *b, *c;
  unsigned char saved[8];
  ASSERT_OK(mb__theap_create(0, 0, 0, &h));
  ASSERT_OK(mb__theap_alloc(h, 100, (void **)&a));
  ASSERT_OK(mb__theap_alloc(h, 100, (void **)&b));
  ASSERT_OK(mb__theap_alloc(h, 100, (void **)&c));
  ASSERT_OK(mb__theap_free(h, b)); /* a free block between two used ones */
  ASSERT_OK(mb__theap_validate(h));
  /* An overrun of a: a block for 100 bytes is 144 bytes, whose footer is at payload + 104. */
  memcpy(saved, a + 104, 8);
  memset(a + 104, 0x77, 8);
  ASSERT_ERR(mb__theap_validate(h), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "footer damaged");
  memcpy(a + 104, saved, 8);
  ASSERT_OK(mb__theap_validate(h));
  /* A smashed header (an underrun of c). */
  memcpy(saved, c - MB__THEAP_HEADER, 8);
  memset(c - MB__THEAP_HEADER, 0x33, 8);
  ASSERT_ERR(mb__theap_validate(h), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "header damaged");
  ASSERT_ERR(mb__theap_free(h, c), MB_EINVAL); /* not freed: its tags do not check */
  ASSERT_CONTAINS(mb_last_error(), "tags do not check");
  memcpy(c - MB__THEAP_HEADER, saved, 8);
  ASSERT_OK(mb__theap_validate(h));
  /* Damaged free-list links (a write after free into b). */
  memcpy(saved, b, 8);
  memset(b, 0x55, 8);
  ASSERT_ERR(mb__theap_validate(h), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "free list");
  memcpy(b, saved, 8);
  ASSERT_OK(mb__theap_validate(h));
  ASSERT_ERR(mb__theap_free(h, b), MB_EINVAL); /* a double free */
  ASSERT_CONTAINS(mb_last_error(), "double free");
  ASSERT_ERR(mb__theap_free(h, a + 16), MB_EINVAL); /* inside a block */
  ASSERT_OK(mb__theap_free(h, a));
  ASSERT_OK(mb__theap_free(h, c));
  ASSERT_OK(mb__theap_validate(h));
  mb__theap_destroy(h);
}

TEST(tagheap_compact_returns_pages) {
  mb__theap_t *h;
  void *p[40], *keep;
  uint64_t c0, c1, c2, reserved;
  size_t largest = 0, ps = mb_os_mem_config()->page_size;
  int i;
  ASSERT_OK(mb__theap_create(MB_OS_HEAP_NO_SERIALIZE, 2 * ps, 1 << 20, &h));
  ASSERT_OK(mb__theap_committed(h, &c0, &reserved));
  ASSERT_EQ_U64(c0, 2 * ps);
  ASSERT_GE(reserved, 2u << 20);
  ASSERT_OK(mb__theap_alloc(h, 1000, &keep));
  for (i = 0; i < 40; i++) {
    ASSERT_OK(mb__theap_alloc(h, 20000, &p[i]));
    memset(p[i], 0xEE, 20000);
  }
  ASSERT_OK(mb__theap_committed(h, &c1, NULL));
  ASSERT_GE(c1, 40u * 20000u);
  for (i = 0; i < 40; i++)
    ASSERT_OK(mb__theap_free(h, p[i]));
  ASSERT_OK(mb__theap_compact(h, &largest));
  ASSERT_OK(mb__theap_committed(h, &c2, NULL));
  ASSERT_EQ_U64(c2, 2 * ps);              /* down to what `initial` keeps */
  ASSERT_EQ(largest, 2 * ps - 1040 - 40); /* the free block after `keep`, less its tags */
  ASSERT_OK(mb__theap_validate(h));
  /* The space comes back on demand. */
  ASSERT_OK(mb__theap_alloc(h, 100000, &p[0]));
  memset(p[0], 1, 100000);
  ASSERT_OK(mb__theap_validate(h));
  /* The maximum's reservation: a block larger than the heap could ever hold is refused. */
  ASSERT_ERR(mb__theap_alloc(h, 4u << 20, &p[1]), MB_ENOSPC);
  mb__theap_destroy(h);
}
