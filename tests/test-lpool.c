/*
 * test-lpool.c - in-process pools (mb_lpool_*): growth chunk by chunk up to max_objects and
 * exhaustion counted as a miss, statistics exact after a random workload checked against a
 * reference count (every block stamped, so none is ever handed out twice), every misuse
 * MB_POOL_DEBUG catches with its error and the pool usable afterwards, the cheap checks
 * without it, a refused commit, and two threads on a MB_POOL_THREADSAFE pool.
 */
#include "task.h"

#include "membroker.h"

#define STAMP_MAGIC 0x5354414d50ull /* "STAMP" */

/* What a test writes into each object it holds: who holds it. */
typedef struct stamp_s {
  uint64_t magic;
  uint64_t serial; /* unique per allocation */
  uint64_t owner;
} stamp_t;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) { /* xorshift64: the same sequence on every OS */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void stats_of(mb_lpool_t *p, mb_pool_stats_t *st) {
  ASSERT_OK(mb_lpool_stats(p, st));
}

TEST(create_errors) {
  mb_lpool_t *p = NULL;
  ASSERT_ERR(mb_lpool_create("x", 0, 0, 0, 10, 0, &p), MB_EINVAL);
  ASSERT_ERR(mb_lpool_create("x", 16, 0, 0, 0, 0, &p), MB_EINVAL);
  ASSERT_ERR(mb_lpool_create("x", 16, 24, 0, 10, 0, &p), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "alignment 24");
  ASSERT_ERR(mb_lpool_create("x", 16, 0, 0, 10, 0x80, &p), MB_EINVAL);
  ASSERT_ERR(mb_lpool_create("bad name", 16, 0, 0, 10, 0, &p), MB_EINVAL);
  ASSERT_ERR(mb_lpool_create("a-name-that-is-longer-than-31-bytes", 16, 0, 0, 10, 0, &p),
             MB_EINVAL);
  ASSERT_ERR(mb_lpool_create(NULL, 16, 0, 0, 10, 0, &p), MB_EINVAL);
  ASSERT(p == NULL);
  ASSERT_OK(mb_lpool_create("ok", 1, 1, 1, 1, 0, &p)); /* the smallest pool there is */
  mb_lpool_destroy(p);
  mb_lpool_destroy(NULL);
}

/* 35 objects of 64 bytes, 10 per chunk: four chunks, then a miss. */
static void growth(unsigned flags) {
  mb_lpool_t *p;
  mb_pool_stats_t st;
  void *obj[36];
  size_t i, k;
  ASSERT_OK(mb_lpool_create("grow", 64, 64, 10, 35, flags, &p));
  stats_of(p, &st);
  ASSERT_EQ_U64(st.chunks, 1); /* the first chunk comes with the pool */
  ASSERT_EQ_U64(st.capacity, 35);
  ASSERT_EQ_U64(st.block_size, 64);
  for (i = 0; i < 35; i++) {
    ASSERT_OK(mb_lpool_alloc(p, &obj[i]));
    ASSERT_EQ((uintptr_t)obj[i] % 64, 0);
    for (k = 0; k < 64; k++) /* never used before: fresh zero pages */
      ASSERT_EQ(((unsigned char *)obj[i])[k], 0);
    for (k = 0; k < i; k++)
      ASSERT(obj[k] != obj[i]);
    memset(obj[i], (int)i + 1, 64);
    stats_of(p, &st);
    ASSERT_EQ_U64(st.chunks, i / 10 + 1); /* a chunk at a time, only when needed */
  }
  ASSERT_EQ_U64(st.committed, 4 * ((640 + mb_os_mem_config()->page_size - 1) /
                                   mb_os_mem_config()->page_size * mb_os_mem_config()->page_size));
  ASSERT_ERR(mb_lpool_alloc(p, &obj[35]), MB_EFULL);
  ASSERT_CONTAINS(mb_last_error(), "pool 'grow': all 35 objects are in use");
  ASSERT_ERR(mb_lpool_alloc(p, &obj[35]), MB_EFULL);
  stats_of(p, &st);
  ASSERT_EQ_U64(st.misses, 2);
  ASSERT_EQ_U64(st.in_use, 35);
  ASSERT_EQ_U64(st.peak, 35);
  ASSERT_EQ_U64(st.min_free, 0);
  ASSERT_EQ_U64(st.allocs, 35);
  for (i = 0; i < 35; i++) {
    ASSERT_EQ(((unsigned char *)obj[i])[63], (unsigned char)(i + 1)); /* nobody else wrote */
    ASSERT_OK(mb_lpool_free(p, obj[i]));
  }
  /* Everything comes back, without another chunk. */
  for (i = 0; i < 35; i++)
    ASSERT_OK(mb_lpool_alloc(p, &obj[i]));
  ASSERT_ERR(mb_lpool_alloc(p, &obj[35]), MB_EFULL);
  stats_of(p, &st);
  ASSERT_EQ_U64(st.chunks, 4);
  ASSERT_EQ_U64(st.allocs, 70);
  ASSERT_EQ_U64(st.frees, 35);
  ASSERT_EQ_U64(st.misses, 3);
  mb_lpool_destroy(p);
}

TEST(growth_and_exhaustion) {
  growth(0);
}

TEST(growth_and_exhaustion_debug_threadsafe) {
  growth(MB_POOL_DEBUG | MB_POOL_THREADSAFE);
}

/* A random alloc/free sequence, checked against a reference count and per-object stamps. */
static void random_workload(unsigned flags) {
  enum { MAX = 3000, STEPS = 200000 };
  static stamp_t *held[MAX];
  static stamp_t *by_serial_ptr[STEPS + 1];
  mb_lpool_t *p;
  mb_pool_stats_t st;
  uint64_t allocs = 0, frees = 0, misses = 0, peak = 0, serial = 0;
  size_t n = 0, i, step;
  ASSERT_OK(mb_lpool_create("random", sizeof(stamp_t), 8, 64, MAX, flags, &p));
  for (step = 0; step < STEPS; step++) {
    /* Lean towards allocating in some phases and freeing in others. */
    int want_alloc = (rng() % 100) < ((step / 20000) % 2 ? 70u : 35u);
    if (want_alloc) {
      stamp_t *s;
      int rc = mb_lpool_alloc(p, (void **)&s);
      if (n == MAX) {
        ASSERT_EQ(rc, MB_EFULL);
        misses++;
        continue;
      }
      ASSERT_OK(rc);
      /* Never handed out twice: a block still stamped as held by someone is an error. */
      if (s->magic == STAMP_MAGIC && s->serial <= serial && by_serial_ptr[s->serial] == s)
        FAIL("block %p handed out twice (serial %llu still holds it)", (void *)s,
             (unsigned long long)s->serial);
      s->magic = STAMP_MAGIC;
      s->serial = ++serial;
      s->owner = n;
      by_serial_ptr[serial] = s;
      held[n++] = s;
      allocs++;
      if (n > peak)
        peak = n;
    } else if (n > 0) {
      stamp_t *s;
      i = (size_t)(rng() % n);
      s = held[i];
      ASSERT_EQ_U64(s->magic, STAMP_MAGIC);
      ASSERT(by_serial_ptr[s->serial] == s);
      by_serial_ptr[s->serial] = NULL;
      held[i] = held[--n];
      held[i]->owner = i;
      ASSERT_OK(mb_lpool_free(p, s));
      frees++;
    }
  }
  stats_of(p, &st);
  ASSERT_EQ_U64(st.allocs, allocs);
  ASSERT_EQ_U64(st.frees, frees);
  ASSERT_EQ_U64(st.in_use, n);
  ASSERT_EQ_U64(st.peak, peak);
  ASSERT_EQ_U64(st.misses, misses);
  ASSERT_EQ_U64(st.min_free, MAX - peak);
  ASSERT_EQ_U64(st.errors, 0);
  ASSERT_GT(misses, 0);   /* the workload did reach the limit */
  for (i = 0; i < n; i++) /* every held block still carries its own stamp */
    ASSERT(by_serial_ptr[held[i]->serial] == held[i]);
  mb_lpool_destroy(p);
}

TEST(random_workload_stats_exact) {
  random_workload(0);
}

TEST(random_workload_stats_exact_debug) {
  random_workload(MB_POOL_DEBUG);
}

TEST(debug_catches_misuse) {
  mb_lpool_t *p;
  mb_pool_stats_t st;
  char *a, *b, *c, *d, *q;
  char local[64];
  char addr[40];
  size_t i;
  void *rest[64];
  ASSERT_OK(mb_lpool_create("dbg", 48, 16, 8, 20, MB_POOL_DEBUG, &p));
  ASSERT_OK(mb_lpool_alloc(p, (void **)&a));
  ASSERT_OK(mb_lpool_alloc(p, (void **)&b));
  ASSERT_OK(mb_lpool_alloc(p, (void **)&c));

  /* Not a block of this pool: outside, and misaligned inside. */
  ASSERT_ERR(mb_lpool_free(p, local), MB_EINVAL);
  snprintf(addr, sizeof addr, "%p", (void *)local);
  ASSERT_CONTAINS(mb_last_error(), addr);
  ASSERT_CONTAINS(mb_last_error(), "pool 'dbg'");
  ASSERT_CONTAINS(mb_last_error(), "outside its chunks");
  ASSERT_ERR(mb_lpool_free(p, a + 8), MB_EINVAL);
  snprintf(addr, sizeof addr, "%p", (void *)(a + 8));
  ASSERT_CONTAINS(mb_last_error(), addr);
  ASSERT_CONTAINS(mb_last_error(), "not the start of an object");
  /* A block of the chunk that was never handed out. */
  ASSERT_ERR(mb_lpool_free(p, c + 48), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "never allocated");

  /* Double free. */
  ASSERT_OK(mb_lpool_free(p, a));
  ASSERT_ERR(mb_lpool_free(p, a), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "double free");
  ASSERT_CONTAINS(mb_last_error(), "pool 'dbg' (block 0)");
  for (i = 8; i < 48; i++) /* freed: poisoned (after the free-list link) */
    ASSERT_EQ((unsigned char)a[i], MB_LPOOL_POISON);

  /* Use after free: a write into the payload of a freed block. */
  a[20] = 'x';
  ASSERT_ERR(mb_lpool_alloc(p, (void **)&q), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "use after free detected in pool 'dbg' block 0");
  ASSERT_CONTAINS(mb_last_error(), "byte 20 is 0x78");
  /* The quarantined block is refused from then on, also as a free. */
  ASSERT_ERR(mb_lpool_free(p, a), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "quarantined");

  /* Use after free through the free-list link itself. */
  ASSERT_OK(mb_lpool_free(p, c));
  ASSERT_OK(mb_lpool_free(p, b)); /* the list: b -> c */
  memset(b, 0x41, 8);
  ASSERT_ERR(mb_lpool_alloc(p, (void **)&q), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "use after free detected in pool 'dbg' block 1");
  ASSERT_CONTAINS(mb_last_error(), "link was overwritten");
  /* The list was rebuilt: c is still there and is handed out next. */
  ASSERT_OK(mb_lpool_alloc(p, (void **)&d));
  ASSERT(d == c);

  stats_of(p, &st);
  ASSERT_EQ_U64(st.errors, 7);
  ASSERT_EQ_U64(st.quarantined, 2);
  ASSERT_EQ_U64(st.in_use, 3); /* c, and the two quarantined blocks */
  ASSERT_EQ_U64(st.allocs, 4);
  ASSERT_EQ_U64(st.frees, 3);

  /* Still usable: the 17 other objects come out, distinct, never a quarantined one. */
  for (i = 0; i < 17; i++) {
    size_t k;
    ASSERT_OK(mb_lpool_alloc(p, &rest[i]));
    ASSERT(rest[i] != a && rest[i] != b && rest[i] != c);
    for (k = 0; k < i; k++)
      ASSERT(rest[k] != rest[i]);
  }
  ASSERT_ERR(mb_lpool_alloc(p, &rest[17]), MB_EFULL);
  for (i = 0; i < 17; i++)
    ASSERT_OK(mb_lpool_free(p, rest[i]));
  ASSERT_OK(mb_lpool_free(p, d));
  stats_of(p, &st);
  ASSERT_EQ_U64(st.in_use, 2);
  mb_lpool_destroy(p);
}

/* Without MB_POOL_DEBUG: the cheap checks still refuse what could reach beyond the pool. */
TEST(plain_pool_range_checks) {
  mb_lpool_t *p;
  mb_pool_stats_t st;
  char local[32];
  char *a, *b, *q;
  ASSERT_OK(mb_lpool_create("plain", 32, 0, 4, 100, 0, &p));
  ASSERT_ERR(mb_lpool_free(p, local), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "outside its chunks");
  ASSERT_ERR(mb_lpool_free(p, NULL), MB_EINVAL);
  ASSERT_ERR(mb_lpool_free(p, (char *)p + 1), MB_EINVAL); /* a heap address */
  ASSERT_OK(mb_lpool_alloc(p, (void **)&a));
  ASSERT_OK(mb_lpool_free(p, a));
  ASSERT_ERR(mb_lpool_free(p, a), MB_EINVAL); /* more frees than allocations */
  ASSERT_CONTAINS(mb_last_error(), "double free");
  /* A write after free that points the free-list link outside the pool: refused at alloc, the
   * list is abandoned, and the pool goes on with fresh blocks. */
  ASSERT_OK(mb_lpool_alloc(p, (void **)&a));
  ASSERT_OK(mb_lpool_alloc(p, (void **)&b));
  ASSERT_OK(mb_lpool_free(p, a));
  ASSERT_OK(mb_lpool_free(p, b));
  {
    char *evil = local;
    memcpy(b, &evil, sizeof evil); /* b is the head of the list: b -> a */
  }
  ASSERT_ERR(mb_lpool_alloc(p, (void **)&q), MB_EIO); /* the link is checked, not followed */
  ASSERT_CONTAINS(mb_last_error(), "points outside the pool");
  ASSERT_OK(mb_lpool_alloc(p, (void **)&q)); /* a fresh block */
  ASSERT((char *)q != local && q != a && q != b);
  stats_of(p, &st);
  ASSERT_EQ_U64(st.errors, 5);
  mb_lpool_destroy(p);
}

TEST(commit_refused_is_a_miss) {
  mb_lpool_t *p;
  mb_pool_stats_t st;
  void *o[3];
  ASSERT_OK(mb_lpool_create("commit", 64, 0, 2, 10, 0, &p));
  ASSERT_OK(mb_lpool_alloc(p, &o[0]));
  ASSERT_OK(mb_lpool_alloc(p, &o[1]));
  mb_os_inject_commit_failures(1);
  ASSERT_ERR(mb_lpool_alloc(p, &o[2]), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "pool 'commit': commit chunk 1");
  ASSERT_OK(mb_lpool_alloc(p, &o[2])); /* the next try commits */
  stats_of(p, &st);
  ASSERT_EQ_U64(st.misses, 1);
  ASSERT_EQ_U64(st.chunks, 2);
  ASSERT_EQ_U64(st.in_use, 3);
  mb_lpool_destroy(p);
}

typedef struct worker_s {
  mb_lpool_t *pool;
  uint64_t id;
  uint64_t ops;
  int failed;
} worker_t;

/* Allocate batches of 1..64 objects, stamp them, check the stamps, free them. */
static void worker(void *arg) {
  worker_t *w = arg;
  stamp_t *held[64];
  uint64_t serial = 0, x = 0x2545F4914F6CDD1Dull * (w->id + 1);
  while (w->ops < 100000 && !w->failed) {
    int n, i;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    n = 1 + (int)(x % 64);
    for (i = 0; i < n; i++) {
      if (mb_lpool_alloc(w->pool, (void **)&held[i]) != 0) {
        w->failed = 1;
        n = i;
        break;
      }
      held[i]->magic = STAMP_MAGIC;
      held[i]->owner = w->id;
      held[i]->serial = ++serial;
    }
    for (i = 0; i < n; i++) {
      if (held[i]->magic != STAMP_MAGIC || held[i]->owner != w->id ||
          held[i]->serial != serial - (uint64_t)(n - 1 - i))
        w->failed = 2; /* another thread got the same block */
      if (mb_lpool_free(w->pool, held[i]) != 0)
        w->failed = 3;
      w->ops++;
    }
  }
}

TEST(two_threads_threadsafe) {
  mb_lpool_t *p;
  mb_pool_stats_t st;
  mb_os_thread_t t[2];
  worker_t w[2];
  int k;
  ASSERT_OK(mb_lpool_create("mt", sizeof(stamp_t), 0, 32, 128, MB_POOL_THREADSAFE, &p));
  for (k = 0; k < 2; k++) {
    memset(&w[k], 0, sizeof w[k]);
    w[k].pool = p;
    w[k].id = (uint64_t)k + 1;
    ASSERT_OK(mb_os_thread_start(&t[k], worker, &w[k]));
  }
  for (k = 0; k < 2; k++)
    mb_os_thread_join(&t[k]);
  for (k = 0; k < 2; k++)
    ASSERT_EQ(w[k].failed, 0);
  stats_of(p, &st);
  ASSERT_EQ_U64(st.allocs, w[0].ops + w[1].ops);
  ASSERT_EQ_U64(st.frees, st.allocs);
  ASSERT_EQ_U64(st.in_use, 0);
  ASSERT_LE(st.peak, 128);
  ASSERT_EQ_U64(st.errors, 0);
  mb_lpool_destroy(p);
}
