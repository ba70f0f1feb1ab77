/*
 * gmap.h - internal helpers for GMAP files (game data maps; the format and mb_gmap_check are
 * in membroker.h): where each part of an image lies, reading a tile or an object out of a
 * checked image, a deterministic writer for the tool, the tests and the benchmarks, and the
 * file's checksum (version 2: XXH3-64 in the header), which the broker verifies on load.
 *
 * A GMAP file is little-endian: header (64 bytes) at offset 0, then tile_count tiles of 4
 * bytes (tile (x, y) is number y * width + x), then object_count objects of 32 bytes, and
 * nothing after them. The structs of membroker.h overlay those bytes on a little-endian host
 * (gmap.c asserts their sizes and offsets, and refuses a big-endian build).
 */
#ifndef MB_GMAP_H
#define MB_GMAP_H

#include <stdint.h>

#include "hash.h"
#include "membroker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the messages of a GMAP file of another version and of one whose checksum does not match
 * end (mb__errorf_as): their codes stay MB_EVERSION and MB_EIO (version_mismatch, io_error),
 * whose own sentences speak of the shared-memory layout and of I/O. */
#define MB_GMAP_TAIL_VERSION "unsupported GMAP format version"
#define MB_GMAP_TAIL_CHECKSUM "corrupt GMAP file (checksum mismatch)"

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
 * The checksum of a GMAP image (version 2): XXH3-64 (hash.h) of data[0..size) with the 8
 * bytes of header.checksum read as 0. mb__gmap_stored_checksum reads header.checksum (data
 * holds at least the header). mb__gmap_verify compares the two: 0, or MB_EIO ("<what>:
 * checksum mismatch: header.checksum is X, the bytes give Y ...") when they differ; *sum (if
 * not NULL) receives the computed one either way. The message ends in MB_GMAP_TAIL_CHECKSUM. size
 * is at least the header's (checked).
 */
#define MB_GMAP_CHECKSUM_OFFSET 24u
uint64_t mb__gmap_checksum(const void *data, uint64_t size);
/* The same a piece at a time: the image's bytes at offset `off`, n of them, the pieces in
 * order from offset 0 (after mb__hash_init; mb__hash_end gives the checksum). */
void mb__gmap_checksum_more(mb_hash_t *h, uint64_t off, const void *data, uint64_t n);
uint64_t mb__gmap_stored_checksum(const void *data);
int mb__gmap_verify(const void *data, uint64_t size, const char *what, uint64_t *sum);

/*
 * Convert a version 1 image in place into version 2: the version word, and the checksum put
 * into the header. The image is checked as the validator would a version 2 one first; on any
 * failure data is as it was. MB_EEXIST ("already version 2") for a valid version 2 image; the
 * validator's errors for anything else.
 */
int mb__gmap_upgrade(void *data, uint64_t size, const char *what);

/*
 * The checks that need the header only, for a reader that has read the first 64 bytes of a
 * file of `size` bytes (its real size) and not the rest: mb__gmap_check_header runs
 * mb_gmap_check's checks (signature, version, counts against size, reserved words);
 * mb__gmap_upgrade_check those of mb__gmap_upgrade (a version 1 header, its reserved words
 * named by their version 1 index). Both read min(size, 64) bytes of `header` and nothing
 * else, so a v1, forged-size or truncated file is refused before its body is read. The
 * checksum is not among them (it needs the whole image). Same errors as the full checks.
 */
int mb__gmap_check_header(const void *header, uint64_t size, const char *what);
int mb__gmap_upgrade_check(const void *header, uint64_t size, const char *what);

#ifdef __cplusplus
}
#endif

#endif /* MB_GMAP_H */
