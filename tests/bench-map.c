/*
 * bench-map.c - what a game data map costs, beside reading the file the plain way: the broker's
 * load of a 256 MiB GMAP file (read into a shared section, checked, its XXH3-64 checksum
 * verified) as the broker does it (written into the section through its handle where the OS
 * can) and through a view (populated in bulk first, or faulted in by the read), with the
 * page faults each takes (getrusage counts a populated page as a fault too); a game server's
 * mb_map_open; a plain open + read of the whole file into private memory (malloc, fresh pages: its
 * faults counted too); and random tile reads through mb_map_tile beside direct indexing in the read
 * buffer. The aim (PERF.md): the load at most 1.3x the plain read, in the same run: PASS or MISS. A
 * benchmark, not a test: it prints medians over interleaved rounds and the ratios
 * (scripts/bench.sh). Portable (platform layer, stdio).
 *
 *   bench-map [ROUNDS [DIR]]      default 5 rounds; the map file is written to DIR (".")
 *
 * A broker runs in this process (instance "bmap<pid>"); the client attaches to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_BENCH_NAME "bench-map"
#include "bench.h"
#include "broker.h"
#include "gmap.h"
#include "log.h"
#include "maps.h"
#include "membroker.h"
#include "persist.h"

#define SIDE 8192u       /* tiles per side: 8192 x 8192 x 4 bytes = 256 MiB of tiles */
#define OBJECTS 1000u    /* a few objects after them */
#define READS 20000000u  /* random tile reads per measurement */
#define CHUNK (8u << 20) /* bytes per fread of the plain read */
#define MAX_ROUNDS 32
#define STATE_BYTES (64u << 20) /* the saved region of the persist figures */

/* xorshift64: the same sequence of coordinates for both readers. */
static uint64_t next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* The whole file into malloc'd memory with stdio, unbuffered (fread of large chunks is one
 * read() each). *ns receives the time it took, open to close, *faults the page faults. */
static unsigned char *plain_read(const char *path, uint64_t size, double *ns, double *faults) {
  uint64_t f0 = mb_os_page_faults(), t0 = mb_os_mono_ns(), off = 0;
  unsigned char *buf;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "bench-map: cannot open %s\n", path);
    exit(1);
  }
  setvbuf(f, NULL, _IONBF, 0);
  if ((buf = malloc((size_t)size)) == NULL) {
    fprintf(stderr, "bench-map: out of memory for %llu bytes\n", (unsigned long long)size);
    exit(1);
  }
  while (off < size) {
    size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK, r = fread(buf + off, 1, n, f);
    if (r == 0) {
      fprintf(stderr, "bench-map: short read of %s\n", path);
      exit(1);
    }
    off += r;
  }
  fclose(f);
  *ns = (double)(mb_os_mono_ns() - t0);
  *faults = (double)(mb_os_page_faults() - f0);
  return buf;
}

/* ns per random tile read through the client API. */
static double reads_map(const mb_map_t *m, uint64_t *sum) {
  uint64_t s = 88172645463325252ull, t0 = mb_os_mono_ns(), acc = 0;
  const mb_gmap_tile_t *t;
  uint32_t i;
  for (i = 0; i < READS; i++) {
    uint64_t r = next(&s);
    if (mb_map_tile(m, (uint32_t)r & (SIDE - 1), (uint32_t)(r >> 32) & (SIDE - 1), &t) != 0)
      die("mb_map_tile", MB_ERANGE);
    acc += t->tile_id;
  }
  *sum += acc;
  return (double)(mb_os_mono_ns() - t0) / READS;
}

/* ns per random tile read by indexing an image directly (no bounds check): the read buffer,
 * or the map's own memory (what the API call adds, apart from the memory it reads). */
static double reads_direct(const unsigned char *buf, uint64_t *sum) {
  uint64_t s = 88172645463325252ull, t0 = mb_os_mono_ns(), acc = 0;
  const mb_gmap_tile_t *tiles = (const mb_gmap_tile_t *)(buf + MB_GMAP_TILES_OFFSET);
  uint32_t i;
  for (i = 0; i < READS; i++) {
    uint64_t r = next(&s);
    acc += tiles[(size_t)((uint32_t)(r >> 32) & (SIDE - 1)) * SIDE + ((uint32_t)r & (SIDE - 1))]
               .tile_id;
  }
  *sum += acc;
  return (double)(mb_os_mono_ns() - t0) / READS;
}

/* ns to read one byte of every page of the map once (a game server's first pass: each page
 * is mapped into the process on first touch). */
static double touch_map(const mb_map_t *m, uint64_t size, uint64_t *sum) {
  const volatile unsigned char *p = (const volatile unsigned char *)mb_map_header(m);
  size_t page = mb_os_mem_config()->page_size;
  uint64_t t0 = mb_os_mono_ns(), off, acc = 0;
  for (off = 0; off < size; off += page)
    acc += p[off];
  *sum += acc;
  return (double)(mb_os_mono_ns() - t0);
}

/*
 * Saved state (persist.c): a broker whose 64 MiB region "world" (committed at start, every
 * page written, so every page is saved) is saved with mb__persist_flush, then restored by a
 * broker start, beside a start with nothing saved; and XXH3-64 over 64 MiB, the checksum's
 * share of either. Medians of `rounds`. Files go to <dir>/bench-persist-<pid>.
 */
static void bench_persist(int rounds, const char *dir, const mb_os_procid_t *self) {
  double save[MAX_ROUNDS], restore[MAX_ROUNDS], fresh[MAX_ROUNDS], sum[MAX_ROUNDS];
  static const char *const files[] = {NULL, "world"};
  char path[MB_PERSIST_PATH_MAX], tmp[MB_PERSIST_PATH_MAX + 8];
  static mb_broker_t pb;
  mb_config_t pc;
  uint64_t t0, sink = 0, i;
  size_t f;
  int r, rc;

  bench_config(&pc, "bper");
  bench_only_region(&pc, "world", STATE_BYTES, 0, 0);
  snprintf(pc.persist_dir, sizeof pc.persist_dir, "%s/bench-persist-%u", dir, (unsigned)self->pid);
  snprintf(pc.persist_regions[0], sizeof pc.persist_regions[0], "world");
  pc.persist_interval_ms = 3600000; /* only the flushes below (and the one at stop) */

  for (r = 0; r < rounds; r++) {
    unsigned char *w;
    /* nothing saved: a fresh start */
    for (f = 0; f < 2; f++)
      if (mb__persist_path(pc.persist_dir, pc.instance, files[f], path, sizeof path) == 0)
        (void)mb_os_file_remove(path);
    t0 = mb_os_mono_ns();
    if ((rc = mb__broker_start(&pb, &pc, 0)) != 0)
      die("start a broker with persist", rc);
    fresh[r] = (double)(mb_os_mono_ns() - t0);
    w = (unsigned char *)pb.regions[0].base;
    for (i = 0; i < STATE_BYTES; i += 64)
      w[i] = (unsigned char)(i / 64 * 7 + (uint64_t)r + 1);
    t0 = mb_os_mono_ns();
    if ((rc = mb__persist_flush(&pb)) != 0)
      die("persist flush", rc);
    save[r] = (double)(mb_os_mono_ns() - t0);
    mb__broker_stop(&pb); /* saves once more */
    t0 = mb_os_mono_ns();
    if ((rc = mb__broker_start(&pb, &pc, 0)) != 0)
      die("start a broker that restores", rc);
    restore[r] = (double)(mb_os_mono_ns() - t0);
    if (((unsigned char *)pb.regions[0].base)[64] != (unsigned char)(7 + r + 1))
      die("the restored region differs from the saved one", 0);
    mb__broker_stop(&pb);
  }
  {
    unsigned char *buf = malloc(STATE_BYTES);
    if (buf == NULL)
      die("memory for the checksum figure", MB_ENOMEM);
    memset(buf, 0x5A, STATE_BYTES);
    for (r = 0; r < rounds; r++) {
      t0 = mb_os_mono_ns();
      sink += mb__hash64(buf, STATE_BYTES);
      sum[r] = (double)(mb_os_mono_ns() - t0);
    }
    free(buf);
  }
  for (f = 0; f < 2; f++)
    if (mb__persist_path(pc.persist_dir, pc.instance, files[f], path, sizeof path) == 0) {
      snprintf(tmp, sizeof tmp, "%s.tmp", path);
      (void)mb_os_file_remove(path);
      (void)mb_os_file_remove(tmp);
    }
  (void)mb_os_dir_remove(pc.persist_dir);
  printf("%-56s %12s\n", "saved state, 64 MiB region (medians of rounds)", "");
  printf("%-56s %9.1f ms\n", "persist: save (mb__persist_flush: copy, XXH3-64, sync)",
         median(save, rounds) / 1e6);
  printf("%-56s %9.1f ms\n", "persist: broker start that restores it",
         median(restore, rounds) / 1e6);
  printf("%-56s %9.1f ms\n", "  a broker start with nothing saved", median(fresh, rounds) / 1e6);
  printf("%-56s %9.1f ms  (checksum sink %llu)\n", "  XXH3-64 over 64 MiB (resident)",
         median(sum, rounds) / 1e6, (unsigned long long)(sink & 0xF));
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5, r, rc;
  const char *dir = argc > 2 ? argv[2] : ".";
  double load[MAX_ROUNDS], open_[MAX_ROUNDS], plain[MAX_ROUNDS], touch[MAX_ROUNDS];
  double rmap[MAX_ROUNDS], rdirect[MAX_ROUNDS], rmapdirect[MAX_ROUNDS], sum[MAX_ROUNDS];
  double ratio_open[MAX_ROUNDS], ratio_reads[MAX_ROUNDS], ratio_load[MAX_ROUNDS];
  double load_v[2][MAX_ROUNDS], ratio_load_v[2][MAX_ROUNDS], fl[MAX_ROUNDS], fl_v[2][MAX_ROUNDS];
  double fplain[MAX_ROUNDS];
  uint64_t size = mb__gmap_image_size(SIDE * SIDE, OBJECTS), sink = 0, t0;
  char path[1024];
  mb_os_procid_t self;
  mb_config_t cfg;
  static mb_broker_t b;
  mb_client_t *c;

  if (rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "usage: bench-map [ROUNDS 1..%d [DIR]]\n", MAX_ROUNDS);
    return 2;
  }
  mb_os_proc_self(&self);
  snprintf(path, sizeof path, "%s/bench-map-%u.gmap", dir, (unsigned)self.pid);
  t0 = mb_os_mono_ns();
  if ((rc = mb__gmap_write(path, SIDE, SIDE, OBJECTS, 1)) != 0)
    die("write the map file", rc);
  printf("game data map: %u x %u tiles, %u objects, %llu bytes (%s, written in %.0f ms)\n", SIDE,
         SIDE, OBJECTS, (unsigned long long)size, path, (double)(mb_os_mono_ns() - t0) / 1e6);

  bench_config(&cfg, "bmap");
  mb__log_open(MB_LOG_ERROR, "");
  bench_only_region(&cfg, "world", 64 * 1024, 0, 0);
  if ((rc = mb__broker_start(&b, &cfg, 0)) != 0)
    die("start broker", rc);
  if ((rc = mb_attach(cfg.instance, "bench", NULL, &c)) != 0)
    die("attach", rc);

  /* Interleaved rounds: every measurement of a round sees the same machine state. */
  for (r = 0; r < rounds; r++) {
    mb_map_t *m;
    unsigned char *buf;
    uint64_t f0;
    int v;
    /* The load through a view (v 0: populated in bulk first; v 1: faulted in by the read),
     * then the broker's own way, which the rest of the round uses. */
    for (v = 0; v < 2; v++) {
      mb__map_load_mode = v == 0 ? MB_MAP_LOAD_VIEW_POPULATE : MB_MAP_LOAD_VIEW_FAULTS;
      f0 = mb_os_page_faults();
      t0 = mb_os_mono_ns();
      if ((rc = mb__map_load(&b, "world", path, NULL, NULL)) != 0)
        die("map-load", rc);
      load_v[v][r] = (double)(mb_os_mono_ns() - t0);
      fl_v[v][r] = (double)(mb_os_page_faults() - f0);
      if ((rc = mb__map_unload(&b, "world")) != 0)
        die("map-unload", rc);
    }
    mb__map_load_mode = MB_MAP_LOAD_AUTO;
    f0 = mb_os_page_faults();
    t0 = mb_os_mono_ns();
    if ((rc = mb__map_load(&b, "world", path, NULL, NULL)) != 0)
      die("map-load", rc);
    load[r] = (double)(mb_os_mono_ns() - t0);
    fl[r] = (double)(mb_os_page_faults() - f0);
    t0 = mb_os_mono_ns();
    if ((rc = mb_map_open(c, "world", &m)) != 0)
      die("mb_map_open", rc);
    open_[r] = (double)(mb_os_mono_ns() - t0);
    touch[r] = touch_map(m, size, &sink);
    buf = plain_read(path, size, &plain[r], &fplain[r]);
    if (memcmp(buf, mb_map_header(m), 4096) != 0) {
      fprintf(stderr, "bench-map: the map and the file differ\n");
      return 1;
    }
    rmap[r] = reads_map(m, &sink);
    rdirect[r] = reads_direct(buf, &sink);
    rmapdirect[r] = reads_direct((const unsigned char *)mb_map_header(m), &sink);
    t0 = mb_os_mono_ns();
    sink += mb__gmap_checksum(buf, size);
    sum[r] = (double)(mb_os_mono_ns() - t0);
    ratio_open[r] = plain[r] / open_[r];
    ratio_load[r] = load[r] / plain[r];
    ratio_load_v[0][r] = load_v[0][r] / plain[r];
    ratio_load_v[1][r] = load_v[1][r] / plain[r];
    ratio_reads[r] = rmap[r] / rdirect[r];
    free(buf);
    mb_map_close(m);
    if ((rc = mb__map_unload(&b, "world")) != 0)
      die("map-unload", rc);
  }
  {
    double l = median(load, rounds), o = median(open_, rounds), p = median(plain, rounds);
    double t = median(touch, rounds), rm = median(rmap, rounds), rd = median(rdirect, rounds);
    double rl = median(ratio_load, rounds), pages = (double)size / mb_os_mem_config()->page_size;
    printf("%-56s %12s %9s\n", "game data map (medians of rounds)", "", "ratio");
    printf("%-56s %9.1f ms %9.2f  (load / plain read) %s (aim <= 1.30)\n",
           "broker: map-load (read, check, XXH3-64, fill)", l / 1e6, rl,
           rl <= 1.30 ? "PASS" : "MISS");
    printf("%-56s %9.0f faults (%.3f per page)\n", "  page faults per load", median(fl, rounds),
           median(fl, rounds) / pages);
    printf("%-56s %9.1f ms %9.2f  (%.0f faults)\n", "  load into a view populated in bulk first",
           median(load_v[0], rounds) / 1e6, median(ratio_load_v[0], rounds),
           median(fl_v[0], rounds));
    printf("%-56s %9.1f ms %9.2f  (%.0f faults)\n", "  load into a view faulted in by the read",
           median(load_v[1], rounds) / 1e6, median(ratio_load_v[1], rounds),
           median(fl_v[1], rounds));
    printf("%-56s %9.1f ms  (%.1f GB/s)\n", "  the checksum alone (XXH3-64, resident buffer)",
           median(sum, rounds) / 1e6, (double)size / median(sum, rounds));
    printf("%-56s %9.3f ms\n", "client: mb_map_open", o / 1e6);
    printf("%-56s %9.1f ms %9.0f  (read / open)\n", "plain: open + read() of the file into malloc",
           p / 1e6, median(ratio_open, rounds));
    printf("%-56s %9.0f faults\n", "  page faults of the plain read (fresh malloc)",
           median(fplain, rounds));
    printf("%-56s %9.1f ms\n", "client: first touch of every page of the map", t / 1e6);
    printf("%-56s %9.1f M/s %8.2f  (ns per read, map / direct)\n",
           "random tile reads: mb_map_tile (bounds-checked)", 1e3 / rm,
           median(ratio_reads, rounds));
    printf("%-56s %9.1f M/s\n", "random tile reads: direct index in the read() buffer", 1e3 / rd);
    printf("%-56s %9.1f M/s\n", "random tile reads: direct index in the map's memory",
           1e3 / median(rmapdirect, rounds));
    printf("(%d rounds; %u random reads each; page cache warm after the first write; "
           "checksum sink %llu)\n",
           rounds, READS, (unsigned long long)(sink & 0xF));
  }
  mb_detach(c);
  mb__broker_stop(&b);
  remove(path);
  bench_persist(rounds, dir, &self);
  return 0;
}
