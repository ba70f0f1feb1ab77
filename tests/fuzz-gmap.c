/*
 * fuzz-gmap.c - libFuzzer target for the GMAP validator (mb_gmap_check, membroker.h): an
 * input is a whole file image, handed over in a heap block of its exact size (libFuzzer's
 * own copy), so a read past its end is caught by AddressSanitizer.
 *
 * Besides crashes and undefined behaviour, the target checks what the validator promises:
 *  - a refusal is MB_EBADMAGIC, MB_EVERSION or MB_EINVAL, with a message that starts with the
 *    name it was given;
 *  - an accepted image is exactly header + tile_count tiles + object_count objects, with
 *    tile_count = width x height and every reserved word 0, whose checksum verifies exactly
 *    when header.checksum is the image's, and every tile (by its x, y) and
 *    every object (by its number) can be read through gmap.h's helpers, each from inside the
 *    image; the tile and the object just past the end are refused with MB_ERANGE.
 * A broken promise aborts (libFuzzer saves the input).
 *
 *   build/fuzz/fuzz-gmap CORPUS_COPY_DIR   fuzz (writes to the dir; scripts/test.sh seeds it
 *                                          from tests/corpus/gmap/)
 *   build/fuzz/fuzz-gmap FILE...           replay inputs
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_WHAT "fuzz.gmap"

/* A broken promise: say which, and abort. */
static void fz_broken(const char *what, size_t size) {
  fprintf(stderr, "fuzz-gmap: broken promise: %s (input of %zu bytes; last error: %s)\n", what,
          size, mb_last_error());
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  volatile uint64_t sink = 0;
  mb_gmap_header_t h;
  mb_gmap_tile_t t;
  mb_gmap_object_t o;
  uint64_t want, i;
  uint32_t x, y;
  int rc, r;

  sink += mb__gmap_checksum(data, size);
  rc = mb_gmap_check(data, size, FZ_WHAT);
  if (rc != 0) {
    if (rc != MB_EBADMAGIC && rc != MB_EVERSION && rc != MB_EINVAL)
      fz_broken("refused with a code other than bad_magic, version_mismatch, invalid_argument",
                size);
    if (strncmp(mb_last_error(), FZ_WHAT ": ", strlen(FZ_WHAT) + 2) != 0)
      fz_broken("the message does not start with the name given", size);
    return 0;
  }

  /* Accepted: the header says exactly what the image holds. */
  if (size < MB_GMAP_HEADER_SIZE)
    fz_broken("accepted an image shorter than the header", size);
  mb__gmap_header(data, &h);
  want = mb__gmap_image_size(h.tile_count, h.object_count);
  if (h.signature != MB_GMAP_SIGNATURE || h.version != MB_GMAP_VERSION)
    fz_broken("accepted a bad signature or version", size);
  if (h.width == 0 || h.height == 0 || (uint64_t)h.width * h.height != h.tile_count)
    fz_broken("accepted a tile_count other than width x height", size);
  if (want != size)
    fz_broken("accepted an image whose size is not what its counts make", size);
  for (i = 0; i < 8; i++)
    if (h.reserved[i] != 0)
      fz_broken("accepted a nonzero reserved word", size);
  /* The checksum is verified apart (the broker's load): a match, or a mismatch that says so. */
  r = mb__gmap_verify(data, size, FZ_WHAT, NULL);
  if (r != 0 && (r != MB_EIO || strstr(mb_last_error(), "checksum mismatch") == NULL))
    fz_broken("the checksum verify failed other than with a mismatch", size);
  if ((r == 0) != (mb__gmap_checksum(data, size) == h.checksum))
    fz_broken("the checksum verify disagrees with the header's checksum", size);

  /* Every tile and object reads from inside the image (ASan watches the reads). */
  for (y = 0; y < h.height; y++)
    for (x = 0; x < h.width; x++) {
      if (mb__gmap_tile(data, &h, x, y, &t) != 0)
        fz_broken("a tile inside the map was refused", size);
      sink += t.tile_id + t.elevation + t.flags;
    }
  for (i = 0; i < h.object_count; i++) {
    if (mb__gmap_object(data, &h, (uint32_t)i, &o) != 0)
      fz_broken("an object of the map was refused", size);
    sink += o.object_id + o.properties;
  }
  r = mb__gmap_tile(data, &h, h.width, 0, &t);
  if (r != MB_ERANGE || mb__gmap_tile(data, &h, 0, h.height, &t) != MB_ERANGE)
    fz_broken("a tile outside the map was not refused", size);
  if (mb__gmap_object(data, &h, h.object_count, &o) != MB_ERANGE)
    fz_broken("the object past the last was not refused", size);
  (void)sink;
  return 0;
}
