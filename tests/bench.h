/*
 * bench.h - what the benchmarks (bench-*.c) share: sorting and medians of measurements, and
 * giving up on an error. Header-only (static inline), so each benchmark stays one source file.
 * Define MB_BENCH_NAME (the program's name, "bench-map") before including it.
 */
#ifndef MB_BENCH_H
#define MB_BENCH_H

#include <stdio.h>
#include <stdlib.h>

#include "error.h"

#ifndef MB_BENCH_NAME
#error "define MB_BENCH_NAME (the benchmark's name) before including bench.h"
#endif

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sort v[0..n) in ascending order. */
static inline void sort_doubles(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
}

/* The median of v[0..n) (n >= 1; the mean of the middle two when n is even). Sorts v. */
static inline double median(double *v, int n) {
  sort_doubles(v, n);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Print "<MB_BENCH_NAME>: what: <error> (<detail>)" for the MB_E* code rc, or
 * "<MB_BENCH_NAME>: what: failed ()" when rc is 0 (a failure without a code), and exit 1.
 */
static inline void die(const char *what, int rc) {
  fprintf(stderr, MB_BENCH_NAME ": %s: %s (%s)\n", what, rc ? mb_strerror(rc) : "failed",
          rc ? mb_last_error() : "");
  exit(1);
}

#endif /* MB_BENCH_H */
