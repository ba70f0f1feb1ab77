/*
 * bench-pages.c - large pages against normal ones (issue 15; scripts/bench.sh, bench_pages):
 * a 64 MiB shared section made the way the broker makes a region (mb_os_section_create,
 * committed at start), then
 *  - commit + first touch: create, map, write one byte per 4 KiB (what a region costs before
 *    a game server has used it once);
 *  - a random walk: a dependent chain through the 64 MiB, one 64-byte line a step in a random
 *    cyclic order (Sattolo), so every step pays the TLB and cache miss a game server's random
 *    access would: ns per step.
 * Normal and large pages are interleaved in each round; the table shows medians over rounds.
 * Large pages come from MB_OS_SEC_LARGE_PAGES (Linux: hugetlbfs, MEMBROKER_HUGETLBFS; the
 * script reserves huge pages first). Where the OS refuses them the large row says why instead.
 *
 *   bench-pages [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

#define BP_SIZE (64ull * 1024 * 1024)
#define BP_LINE 64u
#define BP_STEPS (4u * 1024 * 1024)
#define BP_ROUNDS_MAX 51

typedef struct bp_result_s {
  double commit_ms, walk_ns;
} bp_result_t;

static uint64_t bp_rng = 88172645463325252ull;
static uint64_t bp_next(void) { /* xorshift64 */
  bp_rng ^= bp_rng << 13;
  bp_rng ^= bp_rng >> 7;
  bp_rng ^= bp_rng << 17;
  return bp_rng;
}

/* One round of one kind: 0 and the figures, or the MB_E* code (mb_last_error says why). */
static int bp_round(int large, const uint32_t *order, bp_result_t *out) {
  char name[64];
  mb_os_section_t sec;
  unsigned char *base;
  uint64_t t0, t1, off, i;
  uint32_t at = 0;
  mb_os_procid_t self;
  int rc;
  mb_os_proc_self(&self);
  snprintf(name, sizeof name, "membroker.bench%u.pages%d", (unsigned)self.pid, large);
  mb_os_section_unlink(name, large ? MB_OS_SEC_LARGE_PAGES : 0);
  t0 = mb_os_mono_ns();
  if ((rc = mb_os_section_create(&sec, name, BP_SIZE, large ? MB_OS_SEC_LARGE_PAGES : 0, NULL)) !=
      0)
    return rc;
  if ((rc = mb_os_section_map(&sec, 0, 1, (void **)&base)) != 0) {
    mb_os_section_unlink(name, sec.flags);
    mb_os_section_close(&sec);
    return rc;
  }
  for (off = 0; off < BP_SIZE; off += 4096)
    base[off] = 1;
  t1 = mb_os_mono_ns();
  out->commit_ms = (double)(t1 - t0) / 1e6;
  /* The chain: line order[k] holds the index of line order[k + 1] (not timed). */
  for (i = 0; i < BP_SIZE / BP_LINE; i++)
    memcpy(base + (uint64_t)order[i] * BP_LINE, &order[(i + 1) % (BP_SIZE / BP_LINE)], 4);
  t0 = mb_os_mono_ns();
  for (i = 0; i < BP_STEPS; i++)
    memcpy(&at, base + (uint64_t)at * BP_LINE, 4);
  t1 = mb_os_mono_ns();
  out->walk_ns = (double)(t1 - t0) / BP_STEPS + (at == 0xFFFFFFFFu); /* keep `at` live */
  mb_os_section_unmap(base, sec.size);
  mb_os_section_unlink(name, sec.flags);
  mb_os_section_close(&sec);
  return 0;
}

static int bp_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double bp_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bp_cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5, r, k, nl = 0;
  double commit[2][BP_ROUNDS_MAX], walk[2][BP_ROUNDS_MAX];
  uint64_t lines = BP_SIZE / BP_LINE, i;
  uint32_t *order = malloc(lines * sizeof *order);
  size_t lp = 0;
  char why[512] = "";
  const char *kind[2];
  char lpname[32];

  if (order == NULL || rounds < 1 || rounds > BP_ROUNDS_MAX) {
    fprintf(stderr, "usage: bench-pages [ROUNDS 1..%d]\n", BP_ROUNDS_MAX);
    return 2;
  }
  for (i = 0; i < lines; i++)
    order[i] = (uint32_t)i;
  for (i = lines - 1; i > 0; i--) { /* Sattolo: one cycle through every line */
    uint64_t j = bp_next() % i;
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  if (mb_os_large_pages(&lp) != 0 && lp == 0)
    snprintf(why, sizeof why, "%s", mb_last_error());
  for (r = 0; r < rounds; r++) {
    for (k = 0; k < 2; k++) {
      bp_result_t res;
      int rc;
      if (k == 1 && why[0] != '\0')
        continue;
      rc = bp_round(k, order, &res);
      if (rc != 0) {
        if (k == 0) {
          fprintf(stderr, "bench-pages: %s\n", mb_last_error());
          return 1;
        }
        snprintf(why, sizeof why, "%s", mb_last_error());
        continue;
      }
      commit[k][k ? nl : r] = res.commit_ms;
      walk[k][k ? nl : r] = res.walk_ns;
      nl += k;
    }
  }
  snprintf(lpname, sizeof lpname, "%zu KiB", lp >> 10);
  kind[0] = "4 KiB";
  kind[1] = lpname;
  printf("large pages: a 64 MiB shared section, medians of %d interleaved rounds\n", rounds);
  printf("%-10s %22s %16s %24s\n", "pages", "commit + first touch", "per 4 KiB",
         "random walk, per step");
  {
    double c0 = bp_median(commit[0], rounds), w0 = bp_median(walk[0], rounds);
    printf("%-10s %19.2f ms %13.3f us %21.1f ns\n", kind[0], c0, c0 * 1e3 / (BP_SIZE / 4096), w0);
    if (nl == rounds) {
      double c1 = bp_median(commit[1], nl), w1 = bp_median(walk[1], nl);
      printf("%-10s %19.2f ms %13.3f us %21.1f ns\n", kind[1], c1, c1 * 1e3 / (BP_SIZE / 4096), w1);
      printf("large / 4 KiB: commit + first touch %.2fx, random walk %.2fx\n", c1 / c0, w1 / w0);
    } else {
      printf("%-10s row missing: large pages refused: %s\n", lp ? kind[1] : "large", why);
    }
  }
  free(order);
  return 0;
}
