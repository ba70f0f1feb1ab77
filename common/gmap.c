/*
 * gmap.c - GMAP files: the validator (mb_gmap_check, membroker.h), reading tiles and objects
 * out of a checked image, the deterministic writer and the file's checksum (gmap.h; the hash
 * itself is hash.c's).
 *
 * The validator decodes the header byte by byte (little-endian, whatever the host), so it
 * never depends on alignment or byte order; the structs of membroker.h are only laid over
 * bytes it has accepted, on a little-endian host (checked below).
 *
 * Crash points of the writer (mb__gmap_write): it writes the header with checksum 0, the
 * tiles and objects, and last seeks back and writes the checksum. A crash (or a full disk)
 * anywhere before that last write leaves a file whose checksum field is 0 or whose size is
 * short: the broker refuses it (checksum mismatch, or the size check), never loads half a
 * map. The writer truncates an existing file first, so it is for new files. `gmaptool
 * upgrade` (client/tools/gmaptool.c) never writes over its target: crash points there are
 * (1) while NEW.tmp is written or synced: NEW untouched, NEW.tmp partial (removed on a
 * failure the tool sees, else by hand); (2) at the rename: NEW is the old file or the whole
 * new one (rename and MoveFileEx are atomic; POSIX then syncs the directory).
 */
#include "gmap.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "layout.h" /* MB_LAYOUT_ASSERT */
#include "os.h"

/* ---- the layout of membroker.h's structs is the file's --------------------------------------- */

MB_LAYOUT_ASSERT(sizeof(mb_gmap_header_t) == MB_GMAP_HEADER_SIZE, "GMAP header size");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, signature) == 0, "GMAP header.signature");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, version) == 4, "GMAP header.version");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, width) == 8, "GMAP header.width");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, height) == 12, "GMAP header.height");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, tile_count) == 16, "GMAP header.tile_count");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, object_count) == 20, "GMAP header.object_count");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, checksum) == MB_GMAP_CHECKSUM_OFFSET,
                 "GMAP header.checksum");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_header_t, reserved) == 32, "GMAP header.reserved");
MB_LAYOUT_ASSERT(sizeof(((mb_gmap_header_t *)0)->reserved) == 32, "GMAP header.reserved[8]");
MB_LAYOUT_ASSERT(sizeof(mb_gmap_tile_t) == MB_GMAP_TILE_SIZE, "GMAP tile size");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_tile_t, tile_id) == 0, "GMAP tile.tile_id");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_tile_t, elevation) == 2, "GMAP tile.elevation");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_tile_t, flags) == 3, "GMAP tile.flags");
MB_LAYOUT_ASSERT(sizeof(mb_gmap_object_t) == MB_GMAP_OBJECT_SIZE, "GMAP object size");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, object_id) == 0, "GMAP object.object_id");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, pos_x) == 4, "GMAP object.pos_x");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, pos_y) == 8, "GMAP object.pos_y");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, pos_z) == 12, "GMAP object.pos_z");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, rot_x) == 16, "GMAP object.rot_x");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, rot_y) == 20, "GMAP object.rot_y");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, rot_z) == 24, "GMAP object.rot_z");
MB_LAYOUT_ASSERT(offsetof(mb_gmap_object_t, properties) == 28, "GMAP object.properties");
MB_LAYOUT_ASSERT(sizeof(float) == 4, "GMAP floats are IEEE 754 binary32");

/* The structs overlay little-endian bytes. GCC and clang say the byte order at compile time;
 * any other compiler is asked at run time (mb_gmap_check refuses on a big-endian host). */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GMAP files are little-endian: big-endian hosts are not supported"
#endif
#define MB_GMAP_HOST_LE 1
#else
static int mb__gmap_host_le(void) {
  const uint32_t one = 1;
  unsigned char b[4];
  memcpy(b, &one, 4);
  return b[0] == 1;
}
#define MB_GMAP_HOST_LE mb__gmap_host_le()
#endif

/* ---- little-endian encoding ------------------------------------------------------------------ */

static uint32_t mb__le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned char *mb__put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
  return p + 4;
}

static unsigned char *mb__putf(unsigned char *p, float f) {
  uint32_t v;
  memcpy(&v, &f, 4);
  return mb__put32(p, v);
}

/* ---- validation ------------------------------------------------------------------------------ */

uint64_t mb__gmap_image_size(uint32_t tile_count, uint32_t object_count) {
  return (uint64_t)MB_GMAP_HEADER_SIZE + (uint64_t)tile_count * MB_GMAP_TILE_SIZE +
         (uint64_t)object_count * MB_GMAP_OBJECT_SIZE;
}

/*
 * The checks run in the order of the file, and each reads only bytes the ones before it
 * proved present: the size against the header, the header's fields one by one, then the
 * sizes the counts imply against the file's size (in 64 bits: a count is 32 bits and an
 * element at most 32 bytes, so no product or sum can overflow), and last the reserved words.
 */
int mb_gmap_check(const void *data, uint64_t size, const char *what) {
  const unsigned char *p = (const unsigned char *)data;
  uint32_t sig, version, width, height, tile_count, object_count;
  uint64_t tiles, tile_bytes, object_off, object_bytes, end;
  int i;

  if (what == NULL)
    what = "GMAP image";
  if (!MB_GMAP_HOST_LE)
    return mb__errorf(MB_ENOTSUP, 0,
                      "%s: this host is big-endian: GMAP structs overlay little-endian files",
                      what);
  if (size == 0)
    return mb__errorf(MB_EINVAL, 0,
                      "%s: empty file (0 bytes): a GMAP file starts with a %u-byte header", what,
                      MB_GMAP_HEADER_SIZE);
  if (data == NULL)
    return mb__errorf(MB_EINVAL, 0, "%s: no data (NULL) for %llu bytes", what,
                      (unsigned long long)size);
  if (size < MB_GMAP_HEADER_SIZE)
    return mb__errorf(MB_EINVAL, 0, "%s: truncated header: %llu bytes, the header is %u", what,
                      (unsigned long long)size, MB_GMAP_HEADER_SIZE);

  sig = mb__le32(p + offsetof(mb_gmap_header_t, signature));
  if (sig != MB_GMAP_SIGNATURE) {
    /* 'GMAP' byte-swapped: written by a big-endian program that did not convert. */
    uint32_t swapped = (sig >> 24) | ((sig >> 8) & 0xFF00u) | ((sig << 8) & 0xFF0000u) | sig << 24;
    return mb__errorf(
        MB_EBADMAGIC, 0, "%s: header.signature: 0x%08X is not 'GMAP'%s", what, (unsigned)sig,
        swapped == MB_GMAP_SIGNATURE ? " (it is 'GMAP' byte-swapped: GMAP files are little-endian)"
                                     : "");
  }
  version = mb__le32(p + offsetof(mb_gmap_header_t, version));
  if (version == 1)
    return mb__errorf_as(MB_EVERSION, MB_GMAP_TAIL_VERSION,
                         "%s: header.version: 1, a format this version no longer reads (version 1 "
                         "has no checksum; version %u has an " MB_HASH_NAME " one): convert the "
                         "file with `gmaptool upgrade OLD NEW`",
                         what, MB_GMAP_VERSION);
  if (version != MB_GMAP_VERSION)
    return mb__errorf_as(MB_EVERSION, MB_GMAP_TAIL_VERSION,
                         "%s: header.version: %u, only version %u is known", what,
                         (unsigned)version, MB_GMAP_VERSION);
  width = mb__le32(p + offsetof(mb_gmap_header_t, width));
  height = mb__le32(p + offsetof(mb_gmap_header_t, height));
  if (width == 0)
    return mb__errorf(MB_EINVAL, 0, "%s: header.width: 0, a map is at least 1 tile wide", what);
  if (height == 0)
    return mb__errorf(MB_EINVAL, 0, "%s: header.height: 0, a map is at least 1 tile high", what);
  tile_count = mb__le32(p + offsetof(mb_gmap_header_t, tile_count));
  tiles = (uint64_t)width * (uint64_t)height;
  if (tiles != tile_count)
    return mb__errorf(MB_EINVAL, 0, "%s: header.tile_count: %u, but width x height is %llu%s", what,
                      (unsigned)tile_count, (unsigned long long)tiles,
                      tiles > UINT32_MAX ? " (more than a 32-bit tile_count can hold)" : "");

  tile_bytes = (uint64_t)tile_count * MB_GMAP_TILE_SIZE;
  if (tile_bytes > size - MB_GMAP_HEADER_SIZE)
    return mb__errorf(MB_EINVAL, 0,
                      "%s: header.tile_count: %u tiles need %llu bytes at offset %u, the file "
                      "has only %llu bytes there",
                      what, (unsigned)tile_count, (unsigned long long)tile_bytes,
                      MB_GMAP_HEADER_SIZE, (unsigned long long)(size - MB_GMAP_HEADER_SIZE));
  object_count = mb__le32(p + offsetof(mb_gmap_header_t, object_count));
  object_off = MB_GMAP_HEADER_SIZE + tile_bytes;
  object_bytes = (uint64_t)object_count * MB_GMAP_OBJECT_SIZE;
  if (object_bytes > size - object_off)
    return mb__errorf(MB_EINVAL, 0,
                      "%s: header.object_count: %u objects need %llu bytes at offset %llu, the "
                      "file has only %llu bytes there",
                      what, (unsigned)object_count, (unsigned long long)object_bytes,
                      (unsigned long long)object_off, (unsigned long long)(size - object_off));
  end = object_off + object_bytes;
  if (size != end)
    return mb__errorf(MB_EINVAL, 0,
                      "%s: trailing bytes: %llu after the last object, which ends at offset "
                      "%llu: the file has %llu bytes, header.tile_count and header.object_count "
                      "make %llu",
                      what, (unsigned long long)(size - end), (unsigned long long)end,
                      (unsigned long long)size, (unsigned long long)end);

  for (i = 0; i < 8; i++) {
    uint32_t r = mb__le32(p + offsetof(mb_gmap_header_t, reserved) + 4 * (size_t)i);
    if (r != 0)
      return mb__errorf(MB_EINVAL, 0, "%s: header.reserved[%d]: 0x%08X, must be 0 in version %u",
                        what, i, (unsigned)r, MB_GMAP_VERSION);
  }
  return 0;
}

/* ---- reading a checked image ----------------------------------------------------------------- */

void mb__gmap_header(const void *data, mb_gmap_header_t *h) {
  memcpy(h, data, sizeof *h);
}

int mb__gmap_tile(const void *data, const mb_gmap_header_t *h, uint32_t x, uint32_t y,
                  mb_gmap_tile_t *out) {
  uint64_t index;
  if (x >= h->width || y >= h->height)
    return mb__errorf(MB_ERANGE, 0, "tile (%u, %u) is outside the map's %u x %u tiles", (unsigned)x,
                      (unsigned)y, (unsigned)h->width, (unsigned)h->height);
  index = (uint64_t)y * h->width + x; /* < width * height = tile_count: checked */
  memcpy(out, (const unsigned char *)data + MB_GMAP_TILES_OFFSET + index * MB_GMAP_TILE_SIZE,
         sizeof *out);
  return 0;
}

int mb__gmap_object(const void *data, const mb_gmap_header_t *h, uint32_t index,
                    mb_gmap_object_t *out) {
  if (index >= h->object_count)
    return mb__errorf(MB_ERANGE, 0, "object %u is past the map's %u objects", (unsigned)index,
                      (unsigned)h->object_count);
  memcpy(out,
         (const unsigned char *)data + MB_GMAP_OBJECTS_OFFSET(h) +
             (uint64_t)index * MB_GMAP_OBJECT_SIZE,
         sizeof *out);
  return 0;
}

/* ---- the deterministic writer ---------------------------------------------------------------- */

void mb__gmap_expect_tile(uint32_t x, uint32_t y, uint32_t seed, mb_gmap_tile_t *out) {
  out->tile_id = (uint16_t)((x * 31u + y * 17u + seed) & 0xFFFFu);
  out->elevation = (uint8_t)((x + y + seed) & 0xFFu);
  out->flags = (uint8_t)((x ^ y) & 0xFFu);
}

void mb__gmap_expect_object(uint32_t i, uint32_t seed, mb_gmap_object_t *out) {
  out->object_id = i + seed;
  out->pos_x = (float)i;
  out->pos_y = (float)(2.0 * i);
  out->pos_z = (float)(3.0 * i);
  out->rot_x = 0.0f;
  out->rot_y = 0.0f;
  out->rot_z = (float)(i % 360u);
  out->properties = i * 7u;
}

/* Fail the write of `path`: `doing` with the errno e, after closing fp (if not NULL) and
 * removing the file unless it `existed` before the write. */
static int mb__gmap_write_fail(FILE *fp, const char *path, int existed, const char *doing, int e) {
  char text[128];
  if (e == 0)
    e = EIO;
  if (fp != NULL)
    fclose(fp);
  if (fp != NULL && !existed)
    mb_os_file_discard(path);
  return mb__errorf(mb__os_from_errno(e, MB_EIO), e, "%s GMAP file '%s': %s", doing, path,
                    mb_os_errno_text(e, text, sizeof text));
}

#define MB_GMAP_WBUF (256u * 1024u) /* bytes handed to fwrite at a time: a multiple of 32 */

/* Hand the buffer's `*used` bytes to stdio, and to the checksum; 0 or the errno (never 0 on
 * failure). */
static int mb__gmap_flush(FILE *fp, unsigned char *buf, size_t *used, mb_hash_t *hash) {
  if (*used == 0)
    return 0;
  mb__hash_more(hash, buf, *used);
  errno = 0;
  if (fwrite(buf, 1, *used, fp) != *used)
    return errno != 0 ? errno : EIO;
  *used = 0;
  return 0;
}

int mb__gmap_write(const char *path, uint32_t width, uint32_t height, uint32_t objects,
                   uint32_t seed) {
  unsigned char *buf, *p, sum[8];
  size_t used = 0;
  uint64_t tiles;
  uint32_t x, y, i;
  mb_hash_t hash;
  FILE *fp;
  int e, existed = 0;

  if (path == NULL)
    return mb__errorf(MB_EINVAL, 0, "write GMAP file: no path (NULL)");
  if (width == 0 || height == 0)
    return mb__errorf(MB_EINVAL, 0, "write GMAP file '%s': %u x %u tiles: a map is at least 1 x 1",
                      path, (unsigned)width, (unsigned)height);
  tiles = (uint64_t)width * height;
  if (tiles > UINT32_MAX)
    return mb__errorf(MB_ERANGE, 0,
                      "write GMAP file '%s': %u x %u is %llu tiles, more than a GMAP file holds "
                      "(tile_count is 32 bits: at most %lu)",
                      path, (unsigned)width, (unsigned)height, (unsigned long long)tiles,
                      (unsigned long)UINT32_MAX);
  if ((buf = (unsigned char *)malloc(MB_GMAP_WBUF)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "write GMAP file '%s': no memory for a %u-byte buffer", path,
                      MB_GMAP_WBUF);
  /* Whether the file is there already (then it is never removed: it may be a device). */
  if (mb_os_file_open(path, "rb", &fp) == 0) {
    existed = 1;
    fclose(fp);
  }
  if ((e = mb_os_file_create(path, &fp)) != 0) {
    free(buf);
    return mb__errorf(e, mb_last_os_error(), "create GMAP file '%s'", path);
  }
  /* stdio's own buffer would only be copied through: the chunks go out whole. */
  setvbuf(fp, NULL, _IONBF, 0);

  p = buf;
  p = mb__put32(p, MB_GMAP_SIGNATURE);
  p = mb__put32(p, MB_GMAP_VERSION);
  p = mb__put32(p, width);
  p = mb__put32(p, height);
  p = mb__put32(p, (uint32_t)tiles);
  p = mb__put32(p, objects);
  memset(p, 0, 40); /* checksum (0 until the end), reserved[8] */
  used = MB_GMAP_HEADER_SIZE;
  mb__hash_init(&hash); /* of every byte handed to stdio: the checksum field still 0 */

  /* Tiles a run at a time (as many of the row as the buffer has room for), with the formula
   * of mb__gmap_expect_tile stepped along x: tile_id grows by 31, elevation by 1. */
  for (y = 0; y < height; y++) {
    for (x = 0; x < width;) {
      uint32_t n = (uint32_t)((MB_GMAP_WBUF - used) / MB_GMAP_TILE_SIZE), k;
      uint32_t id = x * 31u + y * 17u + seed, elev = x + y + seed;
      if (n == 0) {
        if ((e = mb__gmap_flush(fp, buf, &used, &hash)) != 0)
          goto fail;
        continue;
      }
      if (n > width - x)
        n = width - x;
      p = buf + used;
      for (k = 0; k < n; k++, x++, id += 31u, elev++, p += MB_GMAP_TILE_SIZE) {
        p[0] = (unsigned char)id;
        p[1] = (unsigned char)(id >> 8);
        p[2] = (unsigned char)elev;
        p[3] = (unsigned char)(x ^ y);
      }
      used += (size_t)n * MB_GMAP_TILE_SIZE;
    }
  }
  for (i = 0; i < objects; i++) {
    mb_gmap_object_t o;
    if (used + MB_GMAP_OBJECT_SIZE > MB_GMAP_WBUF &&
        (e = mb__gmap_flush(fp, buf, &used, &hash)) != 0)
      goto fail;
    mb__gmap_expect_object(i, seed, &o);
    p = mb__put32(buf + used, o.object_id);
    p = mb__putf(p, o.pos_x);
    p = mb__putf(p, o.pos_y);
    p = mb__putf(p, o.pos_z);
    p = mb__putf(p, o.rot_x);
    p = mb__putf(p, o.rot_y);
    p = mb__putf(p, o.rot_z);
    mb__put32(p, o.properties);
    used += MB_GMAP_OBJECT_SIZE;
  }
  if ((e = mb__gmap_flush(fp, buf, &used, &hash)) != 0)
    goto fail;
  /* The checksum into the header, now that every byte is known. */
  p = mb__put32(sum, (uint32_t)mb__hash_end(&hash));
  mb__put32(p, (uint32_t)(mb__hash_end(&hash) >> 32));
  if (mb_os_file_seek(fp, MB_GMAP_CHECKSUM_OFFSET) != 0) {
    e = errno != 0 ? errno : EIO;
    goto fail;
  }
  errno = 0;
  if (fwrite(sum, 1, sizeof sum, fp) != sizeof sum) {
    e = errno != 0 ? errno : EIO;
    goto fail;
  }
  free(buf);
  errno = 0;
  if (fclose(fp) != 0) {
    e = errno;
    if (!existed)
      mb_os_file_discard(path);
    return mb__gmap_write_fail(NULL, path, existed, "close", e);
  }
  return 0;
fail:
  free(buf);
  return mb__gmap_write_fail(fp, path, existed, "write", e);
}

/* ---- checksum -------------------------------------------------------------------------------- */

void mb__gmap_checksum_more(mb_hash_t *h, uint64_t off, const void *data, uint64_t n) {
  static const unsigned char zero[8] = {0};
  const unsigned char *p = (const unsigned char *)data;
  const uint64_t f0 = MB_GMAP_CHECKSUM_OFFSET, f1 = MB_GMAP_CHECKSUM_OFFSET + 8;
  if (off < f1 && off + n > f0) { /* the piece overlaps the checksum field: zeros for it */
    uint64_t a = off < f0 ? f0 - off : 0, b = off + n < f1 ? n : f1 - off;
    mb__hash_more(h, p, a);
    mb__hash_more(h, zero, b - a);
    p += b;
    n -= b;
  }
  mb__hash_more(h, p, n);
}

uint64_t mb__gmap_checksum(const void *data, uint64_t size) {
  mb_hash_t h;
  mb__hash_init(&h);
  mb__gmap_checksum_more(&h, 0, data, size);
  return mb__hash_end(&h);
}

uint64_t mb__gmap_stored_checksum(const void *data) {
  const unsigned char *p = (const unsigned char *)data + MB_GMAP_CHECKSUM_OFFSET;
  return (uint64_t)mb__le32(p) | (uint64_t)mb__le32(p + 4) << 32;
}

int mb__gmap_verify(const void *data, uint64_t size, const char *what, uint64_t *sum) {
  uint64_t got = mb__gmap_checksum(data, size), want = mb__gmap_stored_checksum(data);
  if (what == NULL)
    what = "GMAP image";
  if (sum != NULL)
    *sum = got;
  if (got != want)
    return mb__errorf_as(MB_EIO, MB_GMAP_TAIL_CHECKSUM,
                         "%s: checksum mismatch: header.checksum is %016llx, the bytes give "
                         "%016llx (" MB_HASH_NAME "): the file is corrupt or was changed after it "
                         "was written",
                         what, (unsigned long long)want, (unsigned long long)got);
  return 0;
}

int mb__gmap_check_header(const void *header, uint64_t size, const char *what) {
  /* mb_gmap_check reads the header's 64 bytes only (fewer when size is smaller, and then
   * refuses before it reads any): the rest of the image is never touched. */
  return mb_gmap_check(header, size, what);
}

int mb__gmap_upgrade_check(const void *header, uint64_t size, const char *what) {
  const unsigned char *p = (const unsigned char *)header;
  unsigned char h2[MB_GMAP_HEADER_SIZE];
  int rc, i;
  if (what == NULL)
    what = "GMAP image";
  if (size >= MB_GMAP_HEADER_SIZE && mb__le32(p) == MB_GMAP_SIGNATURE &&
      mb__le32(p + offsetof(mb_gmap_header_t, version)) == MB_GMAP_VERSION) {
    if ((rc = mb_gmap_check(header, size, what)) != 0)
      return rc;
    return mb__errorf(MB_EEXIST, 0, "%s: already GMAP version %u", what, MB_GMAP_VERSION);
  }
  if (size >= MB_GMAP_HEADER_SIZE && mb__le32(p) == MB_GMAP_SIGNATURE &&
      mb__le32(p + offsetof(mb_gmap_header_t, version)) == 1) {
    /* Version 1 is version 2 with reserved[0..1] (now the checksum) 0 and reserved[2..9]
     * (now reserved[0..7]) 0: check its structure as version 2's, then its reserved words
     * under their version 1 names, on a copy of the header. */
    memcpy(h2, p, sizeof h2);
    mb__put32(h2 + offsetof(mb_gmap_header_t, version), MB_GMAP_VERSION);
    memset(h2 + MB_GMAP_CHECKSUM_OFFSET, 0, MB_GMAP_HEADER_SIZE - MB_GMAP_CHECKSUM_OFFSET);
    if ((rc = mb_gmap_check(h2, size, what)) != 0)
      return rc;
    for (i = 0; i < 10; i++) {
      uint32_t r = mb__le32(p + MB_GMAP_CHECKSUM_OFFSET + 4 * (size_t)i);
      if (r != 0)
        return mb__errorf(MB_EINVAL, 0,
                          "%s: header.reserved[%d]: 0x%08X, must be 0 in version 1 (a version 1 "
                          "file is read as version 2 with reserved[0..1] the checksum)",
                          what, i, (unsigned)r);
    }
    return 0;
  }
  return mb_gmap_check(header, size, what); /* says what it is instead */
}

int mb__gmap_upgrade(void *data, uint64_t size, const char *what) {
  unsigned char *p = (unsigned char *)data;
  uint64_t sum;
  int rc;
  if ((rc = mb__gmap_upgrade_check(data, size, what)) != 0)
    return rc;
  mb__put32(p + offsetof(mb_gmap_header_t, version), MB_GMAP_VERSION);
  sum = mb__gmap_checksum(data, size);
  p += MB_GMAP_CHECKSUM_OFFSET;
  p = mb__put32(p, (uint32_t)sum);
  mb__put32(p, (uint32_t)(sum >> 32));
  return 0;
}
