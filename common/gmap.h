/*
 * gmap.h - internal helpers for GMAP files (game data maps; the format and mb_gmap_check are
 * in membroker.h): where each part of an image lies, reading a tile or an object out of a
 * checked image, a deterministic writer for the tool, the tests and the benchmarks, and the
 * checksum the broker keeps of every map image.
 *
 * A GMAP file is little-endian: header (64 bytes) at offset 0, then tile_count tiles of 4
 * bytes (tile (x, y) is number y * width + x), then object_count objects of 32 bytes, and
 * nothing after them. The structs of membroker.h overlay those bytes on a little-endian host
 * (gmap.c asserts their sizes and offsets, and refuses a big-endian build).
 */
#ifndef MB_GMAP_H
#define MB_GMAP_H

#include <stdint.h>

#include "membroker.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_GMAP_HEADER_SIZE 64u
#define MB_GMAP_TILE_SIZE 4u
#define MB_GMAP_OBJECT_SIZE 32u

/* Offset of the first tile and of the first object of an image described by header h. */
#define MB_GMAP_TILES_OFFSET ((uint64_t)MB_GMAP_HEADER_SIZE)
#define MB_GMAP_OBJECTS_OFFSET(h)                                                                  \
  ((uint64_t)MB_GMAP_HEADER_SIZE + (uint64_t)(h)->tile_count * MB_GMAP_TILE_SIZE)

/* The size in bytes of a whole image with these counts (at most 64 + 4 * 2^32 + 32 * 2^32:
 * no overflow in 64 bits). */
uint64_t mb__gmap_image_size(uint32_t tile_count, uint32_t object_count);

/*
 * Copy the header of an image that mb_gmap_check accepted into *h (no alignment is assumed
 * of data). Never fails.
 */
void mb__gmap_header(const void *data, mb_gmap_header_t *h);

/*
 * Copy tile (x, y) / object number index of an image that mb_gmap_check accepted, whose
 * header is *h, into *out. MB_ERANGE ("tile (x, y) is outside the map's W x H tiles",
 * "object N is past the map's M objects") when it does not exist; *out is then untouched.
 * Nothing outside the image is read whatever the arguments.
 */
int mb__gmap_tile(const void *data, const mb_gmap_header_t *h, uint32_t x, uint32_t y,
                  mb_gmap_tile_t *out);
int mb__gmap_object(const void *data, const mb_gmap_header_t *h, uint32_t index,
                    mb_gmap_object_t *out);

/*
 * Write a valid GMAP file of width x height tiles and `objects` objects at `path` (created or
 * truncated), with stdio through a large buffer: the contents are a function of the
 * coordinates and `seed` only, so anyone can predict any byte:
 *
 *   tile (x, y):  tile_id    = (x * 31 + y * 17 + seed) & 0xFFFF   (in 32-bit unsigned math)
 *                 elevation  = (x + y + seed) & 0xFF
 *                 flags      = (x ^ y) & 0xFF
 *   object i:     object_id  = i + seed                            (32-bit unsigned, wraps)
 *                 pos        = ((float)i, (float)(2.0 * i), (float)(3.0 * i))
 *                 rot        = (0, 0, (float)(i % 360))
 *                 properties = i * 7                               (32-bit unsigned, wraps)
 *
 * mb__gmap_expect_tile and mb__gmap_expect_object compute exactly those values.
 * Errors: MB_EINVAL for a width or height of 0 or a NULL path, MB_ERANGE when width x height
 * passes UINT32_MAX (tile_count is 32 bits); when the file cannot be created or written, the
 * C library's errno as MB_ENOENT, MB_EACCES, MB_ENOSPC, MB_ENAMETOOLONG or else MB_EIO, with
 * the path and the errno text in the message. A file this call created is removed again if
 * it could not be written whole; one that was there before (truncated by now) is left, since
 * it may be a device or a file another program holds. Never prints.
 */
int mb__gmap_write(const char *path, uint32_t width, uint32_t height, uint32_t objects,
                   uint32_t seed);

/* The tile / object mb__gmap_write writes at (x, y) / number i for `seed` (see above). */
void mb__gmap_expect_tile(uint32_t x, uint32_t y, uint32_t seed, mb_gmap_tile_t *out);
void mb__gmap_expect_object(uint32_t i, uint32_t seed, mb_gmap_object_t *out);

/*
 * FNV-1a, 64-bit, over data[0..size) (offset basis 0xcbf29ce484222325, prime 0x100000001b3):
 * the checksum of a map image. size 0 gives the offset basis.
 */
uint64_t mb__gmap_fnv1a64(const void *data, uint64_t size);

/* FNV-1a 64 continued from hash h over data[0..size) (mb__gmap_fnv1a64 starts from
 * MB_FNV1A64_BASIS): a checksum built up a piece at a time. */
#define MB_FNV1A64_BASIS UINT64_C(0xcbf29ce484222325)
uint64_t mb__fnv1a64_more(uint64_t h, const void *data, uint64_t size);

#ifdef __cplusplus
}
#endif

#endif /* MB_GMAP_H */
