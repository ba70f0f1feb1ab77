/*
 * bench-client.c - what the client library costs a game server, beside what the OS charges
 * for the same memory: attach + detach, player connect + disconnect on a fresh page (commit
 * and first touch) and on a page already committed (reuse), a shared-section page commit
 * alone, and a first touch of private memory. A benchmark, not a test: it prints medians over
 * rounds and the ratios (scripts/bench.sh). Portable (platform layer only).
 *
 *   bench-client [ROUNDS]        default 7
 *
 * A broker runs in this process (instance "bench<pid>") with a lazy region whose slots are
 * one page each, so every fresh connect commits and touches exactly one page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_BENCH_NAME "bench-client"
#include "bench.h"
#include "broker.h"
#include "log.h"
#include "membroker.h"

#define PAGES 4096 /* pages per round of the page benchmarks (16 MiB with 4 KiB pages) */

/* ns per attach + detach. */
static double bench_attach(const char *instance, int n) {
  uint64_t t0 = mb_os_mono_ns();
  int i, rc;
  for (i = 0; i < n; i++) {
    mb_client_t *c;
    if ((rc = mb_attach(instance, "bench", NULL, &c)) != 0)
      die("attach", rc);
    if ((rc = mb_detach(c)) != 0)
      die("detach", rc);
  }
  return (double)(mb_os_mono_ns() - t0) / n;
}

/* The first writes to a page: its first and last byte, as a connect's caller writes its slot
 * (the slot is the page here). Every case writes the same bytes, so none pays for a cache line
 * the others do not touch. */
static void touch_page(unsigned char *p, size_t page) {
  ((volatile unsigned char *)p)[0] = 1;
  ((volatile unsigned char *)p)[page - 1] = 1;
}

/* ns per connect + first write of a player whose slot is on a fresh page (commit + touch);
 * then disconnect them all and give the pages back (not timed). */
static double bench_connect_fresh(mb_broker_t *b, mb_client_t *c, size_t page) {
  uint64_t t0, t, freed;
  int i, rc;
  void *slot;
  t0 = mb_os_mono_ns();
  for (i = 0; i < PAGES; i++) {
    if ((rc = mb_player_connect(c, (uint64_t)i, &slot)) != 0)
      die("connect", rc);
    touch_page(slot, page);
  }
  t = mb_os_mono_ns() - t0;
  for (i = 0; i < PAGES; i++)
    if ((rc = mb_player_disconnect(c, (uint64_t)i)) != 0)
      die("disconnect", rc);
  if ((rc = mb__broker_compact(b, &freed)) != 0 && rc != MB_ENOTSUP)
    die("compact", rc);
  return (double)t / PAGES;
}

/* ns per connect + write + disconnect of a player whose slot's page stays committed. */
static double bench_connect_reuse(mb_client_t *c, int n) {
  uint64_t t0;
  void *keep, *slot;
  int i, rc;
  if ((rc = mb_player_connect(c, 999999, &keep)) != 0) /* holds the page */
    die("connect", rc);
  t0 = mb_os_mono_ns();
  for (i = 0; i < n; i++) {
    if ((rc = mb_player_connect(c, 1, &slot)) != 0)
      die("connect", rc);
    ((volatile char *)slot)[0] = 1;
    if ((rc = mb_player_disconnect(c, 1)) != 0)
      die("disconnect", rc);
  }
  t0 = mb_os_mono_ns() - t0;
  mb_player_disconnect(c, 999999);
  return (double)t0 / n;
}

/* ns per page: commit one page of a reserve-then-commit shared section and touch it. */
static double bench_section_commit(const char *instance, size_t page) {
  char name[MB_OS_NAME_MAX + 1];
  mb_os_section_t s;
  unsigned char *v;
  uint64_t t0, t;
  int i, rc;
  snprintf(name, sizeof name, "membroker.%s.raw", instance);
  if ((rc = mb_os_section_create(&s, name, (uint64_t)PAGES * page, MB_OS_SEC_RESERVE, NULL)) != 0)
    die("create section", rc);
  if ((rc = mb_os_section_map(&s, 0, 1, (void **)&v)) != 0)
    die("map section", rc);
  t0 = mb_os_mono_ns();
  for (i = 0; i < PAGES; i++) {
    if ((rc = mb_os_section_commit(&s, v, (uint64_t)i * page, page)) != 0)
      die("commit", rc);
    touch_page(v + (size_t)i * page, page);
  }
  t = mb_os_mono_ns() - t0;
  mb_os_section_unmap(v, s.size);
  mb_os_section_close(&s);
  mb_os_section_unlink(name, 0);
  return (double)t / PAGES;
}

/* ns per page: as bench_section_commit, on a section made once and mapped twice (as a region
 * is, by the broker and the game server) whose pages were committed and decommitted before,
 * as compaction leaves a region's pages: what the OS charges on the pages a connect gets. */
static double bench_section_recommit(mb_os_section_t *s, unsigned char *v, size_t page) {
  uint64_t t0, t;
  int i, rc;
  t0 = mb_os_mono_ns();
  for (i = 0; i < PAGES; i++) {
    if ((rc = mb_os_section_commit(s, v, (uint64_t)i * page, page)) != 0)
      die("commit", rc);
    touch_page(v + (size_t)i * page, page);
  }
  t = mb_os_mono_ns() - t0;
  if (mb_os_mem_config()->shared_decommit &&
      (rc = mb_os_section_decommit(s, v, 0, (uint64_t)PAGES * page)) != 0)
    die("decommit", rc);
  return (double)t / PAGES;
}

/* ns per page: first touch of committed private memory (the OS's page fault alone). */
static double bench_private_touch(size_t page) {
  void *p;
  uint64_t t0, t;
  int i, rc;
  if ((rc = mb_os_reserve((size_t)PAGES * page, &p)) != 0 ||
      (rc = mb_os_commit(p, (size_t)PAGES * page)) != 0)
    die("reserve/commit private", rc);
  t0 = mb_os_mono_ns();
  for (i = 0; i < PAGES; i++)
    touch_page((unsigned char *)p + (size_t)i * page, page);
  t = mb_os_mono_ns() - t0;
  mb_os_release(p, (size_t)PAGES * page);
  return (double)t / PAGES;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 7, r, rc;
  size_t page = mb_os_mem_config()->page_size;
  double att[64], fresh[64], reuse[64], commit[64], touch[64], ratio[64], recommit[64];
  char raw_name[MB_OS_NAME_MAX + 1];
  mb_os_section_t raw;
  unsigned char *raw_v, *raw_v2;
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;

  if (rounds < 1 || rounds > 64) {
    fprintf(stderr, "usage: bench-client [ROUNDS 1..64]\n");
    return 2;
  }
  bench_config(&cfg, "bench");
  mb__log_open(MB_LOG_ERROR, "");
  bench_only_region(&cfg, "players", (uint64_t)PAGES * page, 1, (uint32_t)page);
  if ((rc = mb__broker_start(&b, &cfg, 0)) != 0)
    die("start broker", rc);
  if ((rc = mb_attach(cfg.instance, "sim", NULL, &c)) != 0)
    die("attach", rc);

  snprintf(raw_name, sizeof raw_name, "membroker.%s.raw2", cfg.instance);
  if ((rc = mb_os_section_create(&raw, raw_name, (uint64_t)PAGES * page, MB_OS_SEC_RESERVE,
                                 NULL)) != 0 ||
      (rc = mb_os_section_map(&raw, 0, 1, (void **)&raw_v)) != 0 ||
      (rc = mb_os_section_map(&raw, 0, 1, (void **)&raw_v2)) != 0)
    die("second raw section", rc);
  bench_section_recommit(&raw, raw_v, page); /* its pages committed and decommitted once */

  /* Interleaved rounds: each measurement sees the same machine state. */
  for (r = 0; r < rounds; r++) {
    att[r] = bench_attach(cfg.instance, 2000);
    /* The connect and its reference take turns at running first: what ran before (the
     * attaches' maps and unmaps) costs the next case a few per cent, here one, there the other. */
    if (r % 2 == 0)
      fresh[r] = bench_connect_fresh(&b, c, page);
    commit[r] = bench_section_commit(cfg.instance, page);
    if (r % 2 == 1)
      fresh[r] = bench_connect_fresh(&b, c, page);
    reuse[r] = bench_connect_reuse(c, 200000);
    touch[r] = bench_private_touch(page);
    recommit[r] = bench_section_recommit(&raw, raw_v, page);
    ratio[r] = fresh[r] / commit[r];
  }
  {
    double a = median(att, rounds), f = median(fresh, rounds), u = median(reuse, rounds);
    double m = median(commit, rounds), t = median(touch, rounds);
    printf("%-52s %10s %8s\n", "client library (medians of rounds)", "ns/op", "ratio");
    printf("%-52s %10.0f %8s\n", "attach + detach", a, "");
    printf("%-52s %10.0f %8.2f  (to a page commit + touch alone; median of rounds' ratios)\n",
           "player connect + first touch, fresh page", f, median(ratio, rounds));
    printf("%-52s %10.0f %8.2f  (to a private first touch)\n", "  same, to a private first touch",
           f, f / t);
    printf("%-52s %10.1f %8s\n", "player connect + write + disconnect, page reused", u, "");
    printf("%-52s %10.0f %8s\n", "shared section page: commit + first touch", m, "");
    printf("%-52s %10.0f %8.2f  (to a page commit + touch alone)\n",
           "  same, pages decommitted before, two views", median(recommit, rounds),
           median(recommit, rounds) / m);
    printf("%-52s %10.0f %8s\n", "private page: first touch", t, "");
    printf("(%d rounds; %d pages of %zu bytes per page round; %s)\n", rounds, PAGES, page,
           mb_os_mem_config()->shared_decommit ? "compact decommits" : "no shared decommit");
    printf("%-4s issue  %-52s %8.3f <= 1.0\n", median(ratio, rounds) <= 1.0 ? "PASS" : "MISS",
           "player connect + first touch / commit + touch", median(ratio, rounds));
  }
  mb_os_section_unmap(raw_v2, raw.size);
  mb_os_section_unmap(raw_v, raw.size);
  mb_os_section_close(&raw);
  mb_os_section_unlink(raw_name, 0);
  mb_detach(c);
  mb__broker_stop(&b);
  return 0;
}
