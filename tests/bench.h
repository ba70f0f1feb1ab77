/*
 * bench.h - what the benchmarks (bench-*.c) share: sorting and medians of measurements, giving
 * up on an error, the broker config they start from, and the broker on a thread of its own
 * (mb__run, the production loop). Header-only (static inline), so each benchmark stays one
 * source file; every benchmark that includes it links mb_service. Define MB_BENCH_NAME (the
 * program's name, "bench-map") before including it.
 */
#ifndef MB_BENCH_H
#define MB_BENCH_H

#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "atomics.h"
#include "config.h"
#include "error.h"
#include "layout.h"
#include "os.h"
#include "svc.h"

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

/* ---- the broker's config -------------------------------------------------------------------- */

/*
 * cfg: the built-in defaults (config.c) for instance "<prefix><pid>" (this process's id, so two
 * runs never meet), with no heartbeat timeout: a benchmark's clients attach and do not beat.
 */
static inline void bench_config(mb_config_t *cfg, const char *prefix) {
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  mb__config_defaults(cfg);
  snprintf(cfg->instance, sizeof cfg->instance, "%s%u", prefix, (unsigned)self.pid);
  cfg->heartbeat_timeout_ms = 0;
}

/* Region `name` of `size` bytes (lazy 1: commit on use; slot_size 0: no slots) as the only
 * region of cfg. */
static inline void bench_only_region(mb_config_t *cfg, const char *name, uint64_t size, int lazy,
                                     uint32_t slot_size) {
  cfg->nregions = 1;
  memset(cfg->regions, 0, sizeof cfg->regions);
  snprintf(cfg->regions[0].name, sizeof cfg->regions[0].name, "%s", name);
  cfg->regions[0].size = size;
  cfg->regions[0].lazy = lazy;
  cfg->regions[0].slot_size = slot_size;
}

/* Pool `name` of `capacity` objects of object_size bytes aligned to `align`, after cfg's pools
 * (bench_config leaves none). Dies when cfg has room for no more. */
static inline void bench_add_pool(mb_config_t *cfg, const char *name, uint32_t object_size,
                                  uint32_t align, uint32_t capacity) {
  int i = cfg->npools;
  if (i >= (int)(sizeof cfg->pools / sizeof cfg->pools[0]))
    die("bench_add_pool: no room for another pool", 0);
  memset(&cfg->pools[i], 0, sizeof cfg->pools[i]);
  snprintf(cfg->pools[i].name, sizeof cfg->pools[i].name, "%s", name);
  cfg->pools[i].object_size = object_size;
  cfg->pools[i].align = align;
  cfg->pools[i].capacity = capacity;
  cfg->npools = i + 1;
}

/* ---- the broker on a thread of its own --------------------------------------------------------
 */

/* A broker run through mb__run on a thread: its config (kept by the caller until the stop),
 * the thread, 0/1/2 (starting, ready, loop ended) and mb__run's result. */
typedef struct {
  const mb_config_t *cfg;
  mb_os_thread_t thread;
  mb_au32 state;
  int rc;
} bench_broker_t;

static inline void bench_broker_ready(void *ctx) {
  mb_store32(&((bench_broker_t *)ctx)->state, 1);
}

static inline void bench_broker_thread(void *arg) {
  bench_broker_t *b = arg;
  mb_run_hooks_t hooks;
  memset(&hooks, 0, sizeof hooks);
  hooks.ready = bench_broker_ready;
  hooks.ctx = b;
  b->rc = mb__run(b->cfg, 0, &hooks);
  mb_store32(&b->state, 2);
}

/* Start the broker of cfg on a thread and wait until its state block is published and its loop
 * runs; dies if the thread does not start or mb__run ends first. */
static inline void bench_broker_start(bench_broker_t *b, const mb_config_t *cfg) {
  int rc;
  b->cfg = cfg;
  b->rc = 0;
  mb_store32(&b->state, 0);
  if ((rc = mb_os_thread_start(&b->thread, bench_broker_thread, b)) != 0)
    die("broker thread", rc);
  while (mb_load32(&b->state) == 0)
    mb_os_sleep_ms(1);
  if (mb_load32(&b->state) != 1)
    die("the broker did not start", 0);
}

/* Ask the loop to stop, join the thread and return mb__run's result (0: a clean stop). */
static inline int bench_broker_stop(bench_broker_t *b) {
  mb__run_request_stop();
  mb_os_thread_join(&b->thread);
  return b->rc;
}

/* ---- the broker's control block ---------------------------------------------------------------
 */

/* Map instance's control block (the state section) read-write into *st; dies if it cannot. */
static inline void bench_map_state(const char *instance, mb_os_section_t *sec, mb_state_t **st) {
  char name[MB_OS_NAME_MAX + 1];
  int rc;
  if ((rc = mb__object_name(name, sizeof name, instance, NULL)) != 0 ||
      (rc = mb_os_section_open(sec, name, 0, 0)) != 0 ||
      (rc = mb_os_section_map(sec, 0, 0, (void **)st)) != 0)
    die("map the control block", rc);
}

/* Undo bench_map_state. */
static inline void bench_unmap_state(mb_os_section_t *sec, mb_state_t *st) {
  mb_os_section_unmap(st, sec->size);
  mb_os_section_close(sec);
}

#endif /* MB_BENCH_H */
