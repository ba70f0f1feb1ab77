/*
 * test-gmap.c - GMAP files (game data maps): the validator mb_gmap_check on a table of
 * malformed images (each refused with its own code and a message that names the field) and
 * on valid ones, the layout of membroker.h's structs, the deterministic writer (every tile
 * and object as gmap.h predicts, its errors, the checksum it writes), the XXH3-64 checksum,
 * the refusal of version 1 files and their upgrade, and gmaptool run as an
 * operator runs it (MB_GMAPTOOL_EXE, set by CMake; under Wine for the Windows build), with
 * the exit code and output of each success and failure, and its refusal of a directory, a
 * FIFO and a device (issue 14).
 *
 * Every image is handed to the validator in a heap block of its exact size, so a read past
 * its end is caught by AddressSanitizer.
 */
#include "task.h"

#include <cjson/cJSON.h>

#include "gmap.h"
#include "testfile.h"

#if MB_OS_POSIX
#include <signal.h>
#include <sys/resource.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#ifndef MB_GMAPTOOL_EXE
#error "MB_GMAPTOOL_EXE must name the gmaptool executable (CMake: $<TARGET_FILE:gmaptool>)"
#endif

#define T_TOOL_MS 30000 /* one gmaptool run, at most (Wine, sanitizers) */
#define T_OUT_MAX (64 * 1024)
#define T_IMG_MAX 2048 /* bytes of the largest hand-made image */

/* ---- hand-made images ------------------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

/*
 * An image of `size` bytes into buf (T_IMG_MAX): a header with the given fields (reserved
 * all 0), then a byte pattern where tiles and objects go. size may be anything up to
 * T_IMG_MAX, shorter or longer than what the counts make.
 */
static void make_image(unsigned char *buf, size_t size, uint32_t sig, uint32_t version,
                       uint32_t width, uint32_t height, uint32_t tile_count,
                       uint32_t object_count) {
  unsigned char full[T_IMG_MAX];
  size_t i;
  memset(full, 0, sizeof full);
  put32(full + 0, sig);
  put32(full + 4, version);
  put32(full + 8, width);
  put32(full + 12, height);
  put32(full + 16, tile_count);
  put32(full + 20, object_count);
  for (i = MB_GMAP_HEADER_SIZE; i < sizeof full; i++)
    full[i] = (unsigned char)(i * 7 + 3);
  if (size > sizeof full)
    FAIL("image of %zu bytes is larger than %d", size, T_IMG_MAX);
  memcpy(buf, full, size);
}

/* mb_gmap_check on a copy of img[0..size) in a heap block of exactly that size. */
static int check_exact(const unsigned char *img, size_t size, const char *what) {
  unsigned char *copy = (unsigned char *)malloc(size > 0 ? size : 1);
  int rc;
  ASSERT(copy != NULL);
  memcpy(copy, img, size);
  rc = mb_gmap_check(size > 0 ? copy : NULL, size, what);
  free(copy);
  return rc;
}

#define SIG MB_GMAP_SIGNATURE
#define AUTO ((size_t)-1)                       /* the size the counts make */
#define IMG(tc, oc) (64 + 4 * (tc) + 32 * (oc)) /* that size */

typedef struct {
  const char *name;
  size_t size; /* AUTO: 64 + 4 * tile_count + 32 * object_count */
  uint32_t sig, version, width, height, tile_count, object_count;
  int reserved_index; /* -1: all reserved words 0 */
  uint32_t reserved_value;
  int code;
  const char *message; /* what mb_last_error() must contain after "t.gmap: " */
} bad_image_t;

static const bad_image_t bad_images[] = {
    {"empty", 0, SIG, 2, 1, 1, 1, 0, -1, 0, MB_EINVAL,
     "empty file (0 bytes): a GMAP file starts with a 64-byte header"},
    {"one byte", 1, SIG, 2, 1, 1, 1, 0, -1, 0, MB_EINVAL,
     "truncated header: 1 bytes, the header is 64"},
    {"63 bytes", 63, SIG, 2, 1, 1, 1, 0, -1, 0, MB_EINVAL,
     "truncated header: 63 bytes, the header is 64"},
    {"bad signature", AUTO, 0x12345678u, 1, 1, 1, 1, 0, -1, 0, MB_EBADMAGIC,
     "header.signature: 0x12345678 is not 'GMAP'"},
    {"byte-swapped signature", AUTO, 0x474D4150u, 1, 1, 1, 1, 0, -1, 0, MB_EBADMAGIC,
     "header.signature: 0x474D4150 is not 'GMAP' (it is 'GMAP' byte-swapped"},
    {"all zero header", 64, 0, 0, 0, 0, 0, 0, -1, 0, MB_EBADMAGIC,
     "header.signature: 0x00000000 is not 'GMAP'"},
    {"version 0", AUTO, SIG, 0, 1, 1, 1, 0, -1, 0, MB_EVERSION,
     "header.version: 0, only version 2 is known"},
    {"version 1 (no checksum)", AUTO, SIG, 1, 1, 1, 1, 0, -1, 0, MB_EVERSION,
     "header.version: 1, a format this version no longer reads (version 1 has no checksum; "
     "version 2 has an XXH3-64 one): convert the file with `gmaptool upgrade OLD NEW`"},
    {"version 3", AUTO, SIG, 3, 1, 1, 1, 0, -1, 0, MB_EVERSION,
     "header.version: 3, only version 2 is known"},
    {"version before width", 64, SIG, 3, 0, 0, 0, 0, -1, 0, MB_EVERSION, "header.version: 3"},
    {"width 0", 64, SIG, 2, 0, 5, 0, 0, -1, 0, MB_EINVAL, "header.width: 0"},
    {"height 0", 64, SIG, 2, 5, 0, 0, 0, -1, 0, MB_EINVAL, "header.height: 0"},
    {"tile_count not width x height", IMG(99, 0), SIG, 2, 10, 10, 99, 0, -1, 0, MB_EINVAL,
     "header.tile_count: 99, but width x height is 100"},
    {"width x height past 32 bits", 64, SIG, 2, 65536, 65536, 0, 0, -1, 0, MB_EINVAL,
     "header.tile_count: 0, but width x height is 4294967296 (more than a 32-bit tile_count"},
    {"width x height wraps to 32 bits", 64, SIG, 2, 65537, 65537, 131073u, 0, -1, 0, MB_EINVAL,
     "header.tile_count: 131073, but width x height is 4295098369"},
    {"tile bytes past the end", IMG(0, 0) + 396, SIG, 2, 10, 10, 100, 0, -1, 0, MB_EINVAL,
     "header.tile_count: 100 tiles need 400 bytes at offset 64, the file has only 396 bytes"},
    {"largest tile_count, header only", 64, SIG, 2, 0xFFFFFFFFu, 1, 0xFFFFFFFFu, 0, -1, 0,
     MB_EINVAL,
     "header.tile_count: 4294967295 tiles need 17179869180 bytes at offset 64, the file has "
     "only 0 bytes there"},
    {"object bytes past the end", IMG(6, 5) - 1, SIG, 2, 3, 2, 6, 5, -1, 0, MB_EINVAL,
     "header.object_count: 5 objects need 160 bytes at offset 88, the file has only 159 bytes"},
    {"object_count 0xFFFFFFFF", IMG(1, 0), SIG, 2, 1, 1, 1, 0xFFFFFFFFu, -1, 0, MB_EINVAL,
     "header.object_count: 4294967295 objects need 137438953440 bytes at offset 68, the file "
     "has only 0 bytes there"},
    {"trailing bytes", IMG(6, 5) + 3, SIG, 2, 3, 2, 6, 5, -1, 0, MB_EINVAL,
     "trailing bytes: 3 after the last object, which ends at offset 248: the file has 251 bytes"},
    {"trailing byte, no objects", IMG(1, 0) + 1, SIG, 2, 1, 1, 1, 0, -1, 0, MB_EINVAL,
     "trailing bytes: 1 after the last object, which ends at offset 68"},
    {"nonzero reserved[0]", AUTO, SIG, 2, 3, 2, 6, 5, 0, 1, MB_EINVAL,
     "header.reserved[0]: 0x00000001, must be 0 in version 2"},
    {"nonzero reserved[7]", AUTO, SIG, 2, 1, 1, 1, 0, 7, 0x80000000u, MB_EINVAL,
     "header.reserved[7]: 0x80000000, must be 0"},
    {"trailing bytes before reserved", IMG(1, 0) + 4, SIG, 2, 1, 1, 1, 0, 4, 7, MB_EINVAL,
     "trailing bytes: 4 after"},
};

/* ---- gmaptool as a child process ------------------------------------------------------------- */

/* A file name in the runtime directory unique to this test process: "<dir>/mbt.<pid>.<tag>". */
static const char *tmp_path(char *buf, size_t size, const char *tag) {
  char dir[512], name[128];
  ASSERT_OK(mb_os_runtime_dir(dir, sizeof dir));
  snprintf(buf, size, "%s/%s", dir, mb_test_name(name, sizeof name, tag));
  return buf;
}

/* Run gmaptool with the given arguments (a NULL-terminated list; mb_test_run_exe, task.h):
 * its exit code, what it printed into out[0..size). */
#define GMAPTOOL(out, size, ...) mb_test_run_exe(MB_GMAPTOOL_EXE, T_TOOL_MS, out, size, __VA_ARGS__)

/* The JSON object at the start of text (what follows it, e.g. a message, is ignored). */
static cJSON *parse_json(const char *text) {
  cJSON *j = cJSON_ParseWithOpts(text, NULL, 0);
  if (j == NULL || !cJSON_IsObject(j))
    FAIL("gmaptool's output does not start with a JSON object:\n%s", text);
  return j;
}

static double jnum(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v))
    FAIL("no number \"%s\" in the JSON", key);
  return v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsString(v))
    FAIL("no string \"%s\" in the JSON", key);
  return v->valuestring;
}

/* The whole file `path` (malloc'ed; *size bytes). */
static unsigned char *slurp(const char *path, uint64_t *size) {
  unsigned char *buf = NULL, *nbuf;
  size_t cap = 0, len = 0, n;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    FAIL("cannot open '%s'", path);
  do {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      if ((nbuf = (unsigned char *)realloc(buf, cap)) == NULL)
        FAIL("no memory for '%s'", path);
      buf = nbuf;
    }
    n = fread(buf + len, 1, cap - len, fp);
    len += n;
  } while (n > 0);
  fclose(fp);
  *size = len;
  return buf;
}

/* Write img[0..size) to `path`. */
static void spill(const char *path, const unsigned char *img, size_t size) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL || fwrite(img, 1, size, fp) != size)
    FAIL("cannot write '%s'", path);
  fclose(fp);
}

static char out[T_OUT_MAX];

/*
 * `gmaptool info --json PATH` on a file it cannot read prints, before its line on stderr, the
 * JSON object an invalid file gets: {"path": PATH, "valid": false, "error": {"code": CODE,
 * "message": ...}}, the message holding `msg` up to its line end (it printed nothing on stdout).
 */
static void json_refusal(const char *path, const char *code, const char *msg) {
  cJSON *j, *e;
  char want[700];
  size_t n = strcspn(msg, "\n");
  snprintf(want, sizeof want, "%.*s", (int)n, msg);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", "--json", path, NULL), 1, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "path"), path);
  ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "valid")));
  e = cJSON_GetObjectItemCaseSensitive(j, "error");
  ASSERT(cJSON_IsObject(e));
  ASSERT_STR_EQ(jstr(e, "code"), code);
  ASSERT_CONTAINS(jstr(e, "message"), want);
  cJSON_Delete(j);
}

/* ---- the validator --------------------------------------------------------------------------- */

/* Every malformed image is refused with its code, and a message that starts with `what` and
 * says what is wrong; the checks run in the file's order (the first failure is the one). */
TEST(check_refuses_malformed) {
  unsigned char img[T_IMG_MAX];
  size_t i;
  ASSERT_GE(sizeof bad_images / sizeof bad_images[0], 14);
  for (i = 0; i < sizeof bad_images / sizeof bad_images[0]; i++) {
    const bad_image_t *b = &bad_images[i];
    size_t size = b->size == AUTO ? IMG((size_t)b->tile_count, (size_t)b->object_count) : b->size;
    int rc;
    make_image(img, size, b->sig, b->version, b->width, b->height, b->tile_count, b->object_count);
    if (b->reserved_index >= 0)
      put32(img + 32 + 4 * b->reserved_index, b->reserved_value);
    rc = check_exact(img, size, "t.gmap");
    if (rc != b->code)
      FAIL("%s: expected %s, got %s: %s", b->name, mb_err_name(b->code), mb_err_name(rc),
           mb_last_error());
    if (strncmp(mb_last_error(), "t.gmap: ", 8) != 0 || strstr(mb_last_error(), b->message) == NULL)
      FAIL("%s: the message \"%s\" does not start with \"t.gmap: \" and contain \"%s\"", b->name,
           mb_last_error(), b->message);
    printf("# %-34s %-16s %s\n", b->name, mb_err_name(rc), mb_last_error());
  }
}

/* The smallest map, and one with objects, pass; so do maps at the edges of the counts. */
TEST(check_accepts_valid) {
  unsigned char img[T_IMG_MAX];
  make_image(img, IMG(1, 0), SIG, 2, 1, 1, 1, 0);
  ASSERT_OK(check_exact(img, IMG(1, 0), "one.gmap"));
  make_image(img, IMG(6, 5), SIG, 2, 3, 2, 6, 5);
  ASSERT_OK(check_exact(img, IMG(6, 5), "three-by-two.gmap"));
  make_image(img, IMG(300, 0), SIG, 2, 300, 1, 300, 0);
  ASSERT_OK(check_exact(img, IMG(300, 0), "row.gmap"));
  make_image(img, IMG(300, 0), SIG, 2, 1, 300, 300, 0);
  ASSERT_OK(check_exact(img, IMG(300, 0), "column.gmap"));
  make_image(img, IMG(4, 40), SIG, 2, 2, 2, 4, 40);
  ASSERT_OK(check_exact(img, IMG(4, 40), "objects.gmap"));
}

/* what NULL names the image "GMAP image"; no data with a size is refused, not read. */
TEST(check_arguments) {
  unsigned char img[T_IMG_MAX];
  make_image(img, 63, SIG, 2, 1, 1, 1, 0);
  ASSERT_ERR(check_exact(img, 63, NULL), MB_EINVAL);
  ASSERT_EQ(strncmp(mb_last_error(), "GMAP image: truncated header: 63 bytes", 38), 0);
  ASSERT_ERR(mb_gmap_check(NULL, 68, "n.gmap"), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "n.gmap: no data");
  ASSERT_ERR(mb_gmap_check(NULL, 0, "n.gmap"), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "n.gmap: empty file (0 bytes)");
}

/* membroker.h's structs lie over the file's little-endian bytes field by field. */
TEST(struct_layout) {
  unsigned char img[T_IMG_MAX];
  mb_gmap_header_t h;
  mb_gmap_tile_t t;
  mb_gmap_object_t o;
  float f = 1.5f;
  uint32_t fbits;
  ASSERT_EQ(sizeof(mb_gmap_header_t), 64);
  ASSERT_EQ(sizeof(mb_gmap_tile_t), 4);
  ASSERT_EQ(sizeof(mb_gmap_object_t), 32);
  make_image(img, IMG(6, 1), SIG, 2, 3, 2, 6, 1);
  ASSERT_EQ(memcmp(img, "GMAP", 4), 0); /* MB_GMAP_SIGNATURE is 'G' 'M' 'A' 'P' on disk */
  mb__gmap_header(img, &h);
  ASSERT_EQ(h.signature, MB_GMAP_SIGNATURE);
  ASSERT_EQ(h.version, 2);
  ASSERT_EQ(h.width, 3);
  ASSERT_EQ(h.height, 2);
  ASSERT_EQ(h.tile_count, 6);
  ASSERT_EQ(h.object_count, 1);
  /* tile (1, 1) is number 4, at offset 64 + 16 */
  img[80] = 0x34;
  img[81] = 0x12;
  img[82] = 200;
  img[83] = 0x81;
  ASSERT_OK(mb__gmap_tile(img, &h, 1, 1, &t));
  ASSERT_EQ(t.tile_id, 0x1234);
  ASSERT_EQ(t.elevation, 200);
  ASSERT_EQ(t.flags, 0x81);
  /* object 0 at offset 64 + 24 */
  put32(img + 88, 0xCAFEF00Du);
  memcpy(&fbits, &f, 4);
  put32(img + 88 + 4, fbits);
  put32(img + 88 + 24, fbits);
  put32(img + 88 + 28, 0x01020304u);
  ASSERT_OK(mb__gmap_object(img, &h, 0, &o));
  ASSERT_EQ_U64(o.object_id, 0xCAFEF00Du);
  ASSERT(o.pos_x == 1.5f);
  ASSERT(o.rot_z == 1.5f);
  ASSERT_EQ_U64(o.properties, 0x01020304u);
  /* Nothing outside the map is read. */
  ASSERT_ERR(mb__gmap_tile(img, &h, 3, 0, &t), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), "tile (3, 0) is outside the map's 3 x 2 tiles");
  ASSERT_ERR(mb__gmap_tile(img, &h, 0, 2, &t), MB_ERANGE);
  ASSERT_ERR(mb__gmap_tile(img, &h, 0xFFFFFFFFu, 0xFFFFFFFFu, &t), MB_ERANGE);
  ASSERT_ERR(mb__gmap_object(img, &h, 1, &o), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), "object 1 is past the map's 1 objects");
  ASSERT_EQ_U64(mb__gmap_image_size(0xFFFFFFFFu, 0xFFFFFFFFu),
                64 + 4 * UINT64_C(0xFFFFFFFF) + 32 * UINT64_C(0xFFFFFFFF));
}

/* ---- the writer ------------------------------------------------------------------------------ */

/* Write a map, read the file back: it passes the check, its size is what the counts make, and
 * every tile and object is what mb__gmap_expect_* predicts. */
static void write_and_compare(uint32_t width, uint32_t height, uint32_t objects, uint32_t seed) {
  char path[700];
  unsigned char *img;
  uint64_t size;
  mb_gmap_header_t h;
  mb_gmap_tile_t t, want_t;
  mb_gmap_object_t o, want_o;
  uint32_t x, y, i;
  tmp_path(path, sizeof path, "write.gmap");
  ASSERT_OK(mb__gmap_write(path, width, height, objects, seed));
  img = slurp(path, &size);
  remove(path);
  ASSERT_EQ_U64(size, mb__gmap_image_size(width * height, objects));
  ASSERT_OK(mb_gmap_check(img, size, path));
  mb__gmap_header(img, &h);
  ASSERT_EQ_U64(h.width, width);
  ASSERT_EQ_U64(h.height, height);
  ASSERT_EQ_U64(h.object_count, objects);
  for (y = 0; y < height; y++)
    for (x = 0; x < width; x++) {
      ASSERT_OK(mb__gmap_tile(img, &h, x, y, &t));
      mb__gmap_expect_tile(x, y, seed, &want_t);
      if (t.tile_id != want_t.tile_id || t.elevation != want_t.elevation || t.flags != want_t.flags)
        FAIL("seed %u tile (%u, %u): %u/%u/%u, expected %u/%u/%u", seed, x, y, t.tile_id,
             t.elevation, t.flags, want_t.tile_id, want_t.elevation, want_t.flags);
    }
  for (i = 0; i < objects; i++) {
    ASSERT_OK(mb__gmap_object(img, &h, i, &o));
    mb__gmap_expect_object(i, seed, &want_o);
    if (memcmp(&o, &want_o, sizeof o) != 0)
      FAIL("seed %u object %u differs: id %u pos (%g, %g, %g) rot z %g properties %u", seed, i,
           o.object_id, o.pos_x, o.pos_y, o.pos_z, o.rot_z, o.properties);
  }
  free(img);
}

TEST(write_reads_back) {
  mb_gmap_tile_t t;
  mb_gmap_object_t o;
  /* The formula of gmap.h, by hand. */
  mb__gmap_expect_tile(3, 1, 0, &t);
  ASSERT_EQ(t.tile_id, 3 * 31 + 17);
  ASSERT_EQ(t.elevation, 4);
  ASSERT_EQ(t.flags, 2);
  mb__gmap_expect_tile(3000, 5000, 0xFFFFFFFFu, &t);
  ASSERT_EQ(t.tile_id, (3000u * 31 + 5000u * 17 + 0xFFFFFFFFu) & 0xFFFF);
  ASSERT_EQ(t.elevation, (8000u + 0xFFFFFFFFu) & 0xFF);
  ASSERT_EQ(t.flags, (3000 ^ 5000) & 0xFF);
  mb__gmap_expect_object(400, 9, &o);
  ASSERT_EQ(o.object_id, 409);
  ASSERT(o.pos_x == 400.0f && o.pos_y == 800.0f && o.pos_z == 1200.0f);
  ASSERT(o.rot_x == 0.0f && o.rot_y == 0.0f && o.rot_z == 40.0f);
  ASSERT_EQ(o.properties, 2800);

  write_and_compare(1, 1, 0, 0);
  write_and_compare(3, 2, 5, 7);
  write_and_compare(37, 23, 11, 12345);
  /* Over the writer's 256 KiB chunks (360064 + 320000 bytes), with a seed that wraps. */
  write_and_compare(300, 300, 10000, 0xFFFFFFFFu);
  /* A row longer than a chunk. */
  write_and_compare(70000, 2, 3, 5);
}

/* The writer's bytes are little-endian whatever the host: the header and the first tile. */
TEST(write_bytes) {
  char path[700];
  unsigned char *img;
  uint64_t size;
  tmp_path(path, sizeof path, "bytes.gmap");
  ASSERT_OK(mb__gmap_write(path, 2, 1, 1, 0x01020304u));
  img = slurp(path, &size);
  remove(path);
  ASSERT_EQ_U64(size, 64 + 8 + 32);
  ASSERT_EQ(memcmp(img, "GMAP\2\0\0\0\2\0\0\0\1\0\0\0\2\0\0\0\1\0\0\0", 24), 0);
  /* the checksum at 24 (little-endian), then reserved[8], all 0 */
  ASSERT_EQ_U64((uint64_t)img[24] | (uint64_t)img[31] << 56,
                mb__gmap_checksum(img, size) & UINT64_C(0xFF000000000000FF));
  ASSERT_EQ_U64(mb__gmap_stored_checksum(img), mb__gmap_checksum(img, size));
  ASSERT_EQ(memcmp(img + 32, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32),
            0);
  /* tile (0, 0): tile_id 0x0304, elevation 0x04, flags 0 */
  ASSERT_EQ(memcmp(img + 64, "\x04\x03\x04\x00", 4), 0);
  /* object 0: object_id = seed, pos 0, rot 0, properties 0 */
  ASSERT_EQ(memcmp(img + 72, "\x04\x03\x02\x01", 4), 0);
  free(img);
}

/* Arguments it refuses, paths it cannot write: the message names the path and the reason. */
TEST(write_errors) {
  char path[700], dir[512];
  FILE *fp;
  ASSERT_ERR(mb__gmap_write(NULL, 1, 1, 0, 0), MB_EINVAL);
  tmp_path(path, sizeof path, "never.gmap");
  ASSERT_ERR(mb__gmap_write(path, 0, 1, 0, 0), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), "a map is at least 1 x 1");
  ASSERT_ERR(mb__gmap_write(path, 7, 0, 0, 0), MB_EINVAL);
  ASSERT_ERR(mb__gmap_write(path, 65536, 65536, 0, 0), MB_ERANGE);
  ASSERT_CONTAINS(mb_last_error(), "65536 x 65536 is 4294967296 tiles");
  ASSERT((fp = fopen(path, "rb")) == NULL); /* nothing was created */

  /* A folder that does not exist. */
  tmp_path(path, sizeof path, "no-such-dir/map.gmap");
  ASSERT_ERR(mb__gmap_write(path, 4, 4, 0, 0), MB_ENOENT);
  ASSERT_CONTAINS(mb_last_error(), "create GMAP file '");
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_GT(mb_last_os_error(), 0);
  /* A folder, not a file. */
  ASSERT_OK(mb_os_runtime_dir(dir, sizeof dir));
  ASSERT_NE(mb__gmap_write(dir, 4, 4, 0, 0), 0);
  ASSERT_CONTAINS(mb_last_error(), dir);
}

/* A device that refuses every write (Linux's /dev/full): the error says so, and the device
 * stays. */
TEST(write_error_full_device) {
#if MB_OS_POSIX
  FILE *fp;
  if ((fp = fopen("/dev/full", "rb")) == NULL)
    SKIP("no /dev/full here");
  fclose(fp);
  ASSERT_ERR(mb__gmap_write("/dev/full", 100, 100, 0, 0), MB_ENOSPC);
  ASSERT_CONTAINS(mb_last_error(), "write GMAP file '/dev/full': ");
  ASSERT((fp = fopen("/dev/full", "rb")) != NULL);
  fclose(fp);
#else
  SKIP("no device that refuses every write on Windows");
#endif
}

/* XXH3-64: xxHash's published value for no input; one call and pieces of any size agree
 * (sizes around XXH3's internal steps: 16, 128, 240 bytes, its 1 KiB stripe blocks). */
TEST(xxh3_64) {
  static unsigned char buf[5000];
  static const size_t cuts[] = {0, 1, 3, 16, 17, 128, 129, 240, 241, 1024, 1025, 4999, 5000};
  size_t i, k, step;
  mb_hash_t h;
  ASSERT_EQ_U64(mb__hash64("", 0), UINT64_C(0x2D06800538D394C2));
  ASSERT_EQ_U64(mb__hash64(NULL, 0), UINT64_C(0x2D06800538D394C2));
  for (i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 131 + (i >> 7));
  ASSERT(mb__hash64(buf, 1) != mb__hash64(buf + 1, 1));
  for (k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
    uint64_t want = mb__hash64(buf, cuts[k]);
    for (step = 1; step <= 700; step = step * 3 + 1) {
      size_t off = 0;
      mb__hash_init(&h);
      for (off = 0; off < cuts[k]; off += step)
        mb__hash_more(&h, buf + off, cuts[k] - off < step ? cuts[k] - off : step);
      ASSERT_EQ_U64(mb__hash_end(&h), want);
    }
  }
}

/* The GMAP checksum reads its own field as 0, whether the pieces cross it or not; a file the
 * writer made carries it; one changed byte anywhere else is a mismatch that names both. */
TEST(gmap_checksum) {
  char path[700];
  unsigned char *img;
  uint64_t size, sum, off;
  mb_hash_t h;
  tmp_path(path, sizeof path, "sum.gmap");
  ASSERT_OK(mb__gmap_write(path, 17, 9, 5, 3));
  img = slurp(path, &size);
  sum = mb__gmap_stored_checksum(img);
  ASSERT_EQ_U64(mb__gmap_checksum(img, size), sum);
  ASSERT_OK(mb__gmap_verify(img, size, "w.gmap", &off));
  ASSERT_EQ_U64(off, sum);
  for (off = 1; off < 40; off += 3) { /* two pieces, cut before, inside and after the field */
    mb__hash_init(&h);
    mb__gmap_checksum_more(&h, 0, img, off);
    mb__gmap_checksum_more(&h, off, img + off, size - off);
    ASSERT_EQ_U64(mb__hash_end(&h), sum);
  }
  img[30] ^= 0xFF; /* the field itself is not part of what it sums */
  ASSERT_EQ_U64(mb__gmap_checksum(img, size), sum);
  img[30] ^= 0xFF;
  img[size - 1] ^= 1;
  ASSERT_OK(mb_gmap_check(img, size, "w.gmap")); /* structure: still fine */
  ASSERT_ERR(mb__gmap_verify(img, size, "w.gmap", NULL), MB_EIO);
  ASSERT_CONTAINS(mb_last_error(), "w.gmap: checksum mismatch: header.checksum is ");
  ASSERT_CONTAINS(mb_last_error(), "(XXH3-64): the file is corrupt or was changed");
  free(img);
  remove(path);
}

/* ---- gmaptool -------------------------------------------------------------------------------- */

/* create, then info as text and JSON: the header, the sizes, the checksum of the bytes. */
TEST(tool_create_info) {
  char path[700], want[800], sum[24];
  unsigned char *img;
  uint64_t size;
  cJSON *j;
  tmp_path(path, sizeof path, "tool.gmap");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "40", "--height", "25",
                       "--objects", "7", "--seed", "9", NULL),
              0, out);
  snprintf(want, sizeof want, "created     %s: 40 x 25 tiles, 7 objects, 4288 bytes", path);
  ASSERT_CONTAINS(out, want);
  img = slurp(path, &size);
  ASSERT_EQ_U64(size, 4288);
  ASSERT_OK(mb_gmap_check(img, size, path));
  ASSERT_OK(mb__gmap_verify(img, size, path, NULL));
  snprintf(sum, sizeof sum, "0x%016llx", (unsigned long long)mb__gmap_stored_checksum(img));
  free(img);

  /* Options may come first. */
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, NULL), 0, out);
  snprintf(want, sizeof want, "file        %s\n", path);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "format      GMAP version 2, valid\n");
  ASSERT_CONTAINS(out, "map         40 x 25 tiles (1000), 7 objects\n");
  ASSERT_CONTAINS(out, "size        4288 bytes (4.2 KiB)\n");
  ASSERT_CONTAINS(out, "tiles       4000 bytes at offset 64 (4 bytes each)\n");
  ASSERT_CONTAINS(out, "objects     224 bytes at offset 4064 (32 bytes each)\n");
  snprintf(want, sizeof want, "checksum    %s (XXH3-64, verified)\n", sum);
  ASSERT_CONTAINS(out, want);

  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "--json", "info", path, NULL), 0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "path"), path);
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "valid")));
  ASSERT_EQ(jnum(j, "version"), 2);
  ASSERT_EQ(jnum(j, "width"), 40);
  ASSERT_EQ(jnum(j, "height"), 25);
  ASSERT_EQ(jnum(j, "tiles"), 1000);
  ASSERT_EQ(jnum(j, "objects"), 7);
  ASSERT_EQ(jnum(j, "size"), 4288);
  ASSERT_EQ(jnum(j, "tiles_offset"), 64);
  ASSERT_EQ(jnum(j, "tile_bytes"), 4000);
  ASSERT_EQ(jnum(j, "objects_offset"), 4064);
  ASSERT_EQ(jnum(j, "object_bytes"), 224);
  ASSERT_STR_EQ(jstr(j, "checksum"), sum + 2); /* as `maps`: no 0x */
  cJSON_Delete(j);
  remove(path);
}

/* tile and object print what the writer put there, as text and JSON. */
TEST(tool_tile_object) {
  char path[700], want[128];
  mb_gmap_tile_t t;
  mb_gmap_object_t o;
  const cJSON *pos;
  cJSON *j;
  tmp_path(path, sizeof path, "tile.gmap");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "40", "--height", "25",
                       "--objects", "7", "--seed", "9", NULL),
              0, out);

  mb__gmap_expect_tile(39, 24, 9, &t);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "39", "24", NULL), 0, out);
  ASSERT_CONTAINS(out, "tile        (39, 24), number 999 at offset 4060\n");
  snprintf(want, sizeof want, "tile_id     %u\nelevation   %u\nflags       0x%02x\n", t.tile_id,
           t.elevation, t.flags);
  ASSERT_CONTAINS(out, want);
  mb__gmap_expect_tile(3, 1, 9, &t);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "3", "1", "--json", NULL), 0, out);
  j = parse_json(out);
  ASSERT_EQ(jnum(j, "x"), 3);
  ASSERT_EQ(jnum(j, "y"), 1);
  ASSERT_EQ(jnum(j, "index"), 43);
  ASSERT_EQ(jnum(j, "offset"), 64 + 43 * 4);
  ASSERT_EQ(jnum(j, "tile_id"), t.tile_id);
  ASSERT_EQ(jnum(j, "elevation"), t.elevation);
  ASSERT_EQ(jnum(j, "flags"), t.flags);
  cJSON_Delete(j);

  mb__gmap_expect_object(6, 9, &o);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", path, "6", NULL), 0, out);
  ASSERT_CONTAINS(out, "object      6 at offset 4256\n");
  ASSERT_CONTAINS(out, "object_id   15\n");
  ASSERT_CONTAINS(out, "position    (6, 12, 18)\n");
  ASSERT_CONTAINS(out, "rotation    (0, 0, 6)\n");
  ASSERT_CONTAINS(out, "properties  42 (0x0000002a)\n");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", "--json", path, "6", NULL), 0, out);
  j = parse_json(out);
  ASSERT_EQ(jnum(j, "index"), 6);
  ASSERT_EQ(jnum(j, "object_id"), o.object_id);
  ASSERT_EQ(jnum(j, "properties"), o.properties);
  pos = cJSON_GetObjectItemCaseSensitive(j, "pos");
  ASSERT_EQ(cJSON_GetArraySize(pos), 3);
  ASSERT_EQ(cJSON_GetArrayItem(pos, 2)->valuedouble, 18);
  ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "rot")), 3);
  cJSON_Delete(j);
  remove(path);
}

/* Every way it refuses: usage (2) names the option or argument; a failure (1) names the file
 * and what is wrong with it. */
TEST(tool_errors) {
  unsigned char img[T_IMG_MAX];
  char path[700], bad[700], missing[700], nodir[700];
  const cJSON *e;
  cJSON *j;
  tmp_path(path, sizeof path, "err.gmap");
  tmp_path(bad, sizeof bad, "bad.gmap");
  tmp_path(missing, sizeof missing, "missing.gmap");
  tmp_path(nodir, sizeof nodir, "no-such-dir/x.gmap");

  /* usage */
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, NULL), 2, out);
  ASSERT_CONTAINS(out, "usage: gmaptool");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "--help", NULL), 0, out);
  ASSERT_CONTAINS(out, "usage: gmaptool");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "--version", NULL), 0, out);
  ASSERT_EQ(strncmp(out, "gmaptool ", 9), 0);
  ASSERT_CONTAINS(out, "(GMAP version 2)");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "frobnicate", path, NULL), 2, out);
  ASSERT_CONTAINS(out, "unknown command 'frobnicate'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, "--fast", NULL), 2, out);
  ASSERT_CONTAINS(out, "unknown option '--fast'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "4", NULL), 2, out);
  ASSERT_CONTAINS(out, "create needs --width and --height");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "0", "--height", "4", NULL), 2,
              out);
  ASSERT_CONTAINS(out, "--width needs a whole number from 1 to 4294967295, got '0'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "4", "--height", "-3", NULL), 2,
              out);
  ASSERT_CONTAINS(out, "--height needs a whole number from 1 to 4294967295, got '-3'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "4", "--height", "4",
                       "--objects", "12x", NULL),
              2, out);
  ASSERT_CONTAINS(out, "--objects needs a whole number from 0 to 4294967295, got '12x'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "4", "--height", "4", "--seed",
                       "4294967296", NULL),
              2, out);
  ASSERT_CONTAINS(out, "--seed needs a whole number from 0 to 4294967295, got '4294967296'");
  ASSERT_EXIT(
      GMAPTOOL(out, sizeof out, "create", path, "--width", "65536", "--height", "65536", NULL), 2,
      out);
  ASSERT_CONTAINS(out, "--width 65536 x --height 65536 is 4294967296 tiles");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", NULL), 2, out);
  ASSERT_CONTAINS(out, "--width needs a value");
  ASSERT_EXIT(
      GMAPTOOL(out, sizeof out, "create", path, "--width", "4", "--height", "4", "--json", NULL), 2,
      out);
  ASSERT_CONTAINS(out, "--json is an option of info, tile and object");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, "--seed", "3", NULL), 2, out);
  ASSERT_CONTAINS(out, "--seed is an option of create");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "3", NULL), 2, out);
  ASSERT_CONTAINS(out, "tile takes FILE X Y");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "3", "y", NULL), 2, out);
  ASSERT_CONTAINS(out, "Y must be a whole number from 0 to 4294967295, got 'y'");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", path, NULL), 2, out);
  ASSERT_CONTAINS(out, "object takes FILE I");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", path, "1.5", NULL), 2, out);
  ASSERT_CONTAINS(out, "I must be a whole number");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, "extra", NULL), 2, out);

  /* failures */
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", nodir, "--width", "4", "--height", "4", NULL), 1,
              out);
  ASSERT_CONTAINS(out, "gmaptool: create failed: create GMAP file '");
  ASSERT_CONTAINS(out, nodir);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", missing, NULL), 1, out);
  ASSERT_CONTAINS(out, "gmaptool: cannot open '");
  ASSERT_CONTAINS(out, missing);
  {
    char want[800];
    snprintf(want, sizeof want, "cannot open '%s': ", missing);
    json_refusal(missing, "not_found", want);
  }

  make_image(img, IMG(4, 0), SIG, 3, 2, 2, 4, 0); /* version 3 */
  spill(bad, img, IMG(4, 0));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", bad, NULL), 1, out);
  ASSERT_CONTAINS(out, "gmaptool: not a valid GMAP file: ");
  ASSERT_CONTAINS(out, ": header.version: 3, only version 2 is known");
  ASSERT_CONTAINS(out, "(version_mismatch)");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", bad, "--json", NULL), 1, out);
  j = parse_json(out);
  ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "valid")));
  e = cJSON_GetObjectItemCaseSensitive(j, "error");
  ASSERT_STR_EQ(jstr(e, "code"), "version_mismatch");
  ASSERT_CONTAINS(jstr(e, "message"), "header.version: 3");
  cJSON_Delete(j);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", bad, "0", "0", NULL), 1, out);
  ASSERT_CONTAINS(out, "header.version: 3");

  make_image(img, IMG(4, 0) + 5, SIG, 2, 2, 2, 4, 0); /* 5 bytes too many */
  spill(bad, img, IMG(4, 0) + 5);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", bad, "0", NULL), 1, out);
  ASSERT_CONTAINS(out, "trailing bytes: 5 after the last object");
  make_image(img, 0, SIG, 2, 2, 2, 4, 0); /* empty */
  spill(bad, img, 0);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", bad, NULL), 1, out);
  ASSERT_CONTAINS(out, ": empty file (0 bytes)");

  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "create", path, "--width", "40", "--height", "25",
                       "--objects", "7", NULL),
              0, out);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "40", "0", NULL), 1, out);
  ASSERT_CONTAINS(out, "tile (40, 0) is outside the map's 40 x 25 tiles");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "0", "25", NULL), 1, out);
  ASSERT_CONTAINS(out, "tile (0, 25) is outside the map's 40 x 25 tiles");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "tile", path, "4294967295", "4294967295", NULL), 1, out);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "object", path, "7", NULL), 1, out);
  ASSERT_CONTAINS(out, "object 7 is past the map's 7 objects");
  /* A file named like an option, after "--". */
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", "--", "--json", NULL), 1, out);
  ASSERT_CONTAINS(out, "cannot open '--json'");

  remove(path);
  remove(bad);
}

/* ---- gmaptool on what is not a regular file (issue 14) ------------------------------------- */

/*
 * Every subcommand that reads a file (info, info --json, tile, object) refuses `path` at once
 * with exit 1 and "gmaptool: read 'PATH': it is KIND, not a regular file: invalid argument":
 * it never waits on it (a FIFO without a writer), never reads it (a device without end) and
 * never sizes it (a directory).
 */
static void refuses_not_a_file(const char *path, const char *kind) {
  static const char *const cmds[][4] = {
      {"info", NULL}, {"info", "--json"}, {"tile", "0", "0"}, {"object", "0"}};
  char want[700];
  size_t i;
  snprintf(want, sizeof want,
           "gmaptool: read '%s': it is %s, not a regular file: invalid argument\n", path, kind);
  for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    const char *a1 = cmds[i][1], *a2 = a1 ? cmds[i][2] : NULL;
    ASSERT_EXIT(GMAPTOOL(out, sizeof out, cmds[i][0], path, a1, a2, NULL), 1, out);
    if (strstr(out, want) == NULL)
      FAIL("gmaptool %s '%s' printed:\n%s\nnot:\n%s", cmds[i][0], path, out, want);
    ASSERT(strstr(out, "TiB") == NULL && strstr(out, "width") == NULL); /* nothing was sized */
  }
  json_refusal(path, "invalid_argument", want + strlen("gmaptool: "));
}

/* A directory: refused on every OS (it was "8388608.0 TiB"). */
TEST(tool_refuses_directory) {
  char dir[512];
  ASSERT_OK(mb_os_runtime_dir(dir, sizeof dir));
  refuses_not_a_file(dir, "a directory");
}

/* A FIFO without a writer: refused at once (gmaptool waited forever). POSIX only. */
TEST(tool_refuses_fifo) {
#if MB_OS_POSIX
  char path[600];
  tmp_path(path, sizeof path, "fifo.gmap");
  unlink(path);
  if (mkfifo(path, 0600) != 0)
    SKIP("cannot make a FIFO here (%s)", strerror(errno));
  refuses_not_a_file(path, "a FIFO (named pipe)");
  unlink(path);
#else
  SKIP("no FIFOs in the Windows file system (a named pipe is not a path gmaptool can be given)");
#endif
}

/* A device without end: refused without reading (gmaptool read /dev/zero until memory ran
 * out). POSIX: /dev/zero; Windows: NUL, the device every Windows has. */
TEST(tool_refuses_device) {
#if MB_OS_POSIX
  refuses_not_a_file("/dev/zero", "a device");
#else
  refuses_not_a_file("NUL", "a device");
#endif
}

/* A version 1 file (no checksum) is refused, with the way forward; `gmaptool upgrade` writes
 * it as version 2, the same tiles and objects with the checksum; a changed byte is then
 * refused as a checksum mismatch. */
TEST(tool_upgrade) {
  char v1[700], v2[700], want[1000];
  unsigned char img[T_IMG_MAX], *got;
  uint64_t size;
  tmp_path(v1, sizeof v1, "v1.gmap");
  tmp_path(v2, sizeof v2, "v2.gmap");
  remove(v2);
  make_image(img, IMG(6, 5), SIG, 1, 3, 2, 6, 5);
  spill(v1, img, IMG(6, 5));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", v1, NULL), 1, out);
  snprintf(want, sizeof want,
           "%s: header.version: 1, a format this version no longer reads (version 1 has no "
           "checksum; version 2 has an XXH3-64 one): convert the file with `gmaptool upgrade "
           "OLD NEW`",
           v1);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "(version_mismatch)");

  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", v1, v2, NULL), 0, out);
  ASSERT_CONTAINS(out, "GMAP version 2, 248 bytes, checksum 0x");
  got = slurp(v2, &size);
  ASSERT_EQ_U64(size, IMG(6, 5));
  ASSERT_OK(mb_gmap_check(got, size, v2));
  ASSERT_OK(mb__gmap_verify(got, size, v2, NULL));
  ASSERT_EQ(got[4], 2);
  ASSERT_EQ(memcmp(got + 8, img + 8, 16), 0);               /* the counts */
  ASSERT_EQ(memcmp(got + 64, img + 64, IMG(6, 5) - 64), 0); /* tiles and objects */
  free(got);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", v2, NULL), 0, out);
  ASSERT_CONTAINS(out, "(XXH3-64, verified)");
  /* Already version 2; not GMAP at all. */
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", v2, v1, NULL), 1, out);
  ASSERT_CONTAINS(out, "already GMAP version 2");
  make_image(img, IMG(6, 5), 0x12345678u, 1, 3, 2, 6, 5);
  spill(v1, img, IMG(6, 5));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", v1, v1, NULL), 1, out);
  ASSERT_CONTAINS(out, "is not 'GMAP'");
  /* A version 1 file that is damaged is not upgraded (and left as it was). */
  make_image(img, IMG(6, 5) + 1, SIG, 1, 3, 2, 6, 5);
  spill(v1, img, IMG(6, 5) + 1);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", v1, v1, NULL), 1, out);
  ASSERT_CONTAINS(out, "trailing bytes: 1 after the last object");

  /* A byte changed after writing: the structure holds, the checksum does not. */
  got = slurp(v2, &size);
  got[100] ^= 0x40;
  spill(v2, got, (size_t)size);
  free(got);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", v2, NULL), 1, out);
  ASSERT_CONTAINS(out, ": checksum mismatch: header.checksum is ");
  remove(v1);
  remove(v2);
}

/* The fuzz seeds (tests/corpus/gmap, written by tests/corpus/make-gmap.sh) are of the current
 * format: the valid ones pass the check and the checksum, every other one is refused by one
 * of them. A format change that left them behind fails here: run the script. */
TEST(fuzz_corpus_is_current) {
  static const char *const valid[] = {"valid-1x1", "valid-20x1", "valid-3x2-5-objects",
                                      "valid-16x16-4-objects"};
  static const char *const invalid[] = {"bad-signature",
                                        "byte-swapped-signature",
                                        "checksum-mismatch",
                                        "checksum-zero",
                                        "object-count-huge",
                                        "objects-past-end",
                                        "reserved-nonzero",
                                        "tile-count-not-width-x-height",
                                        "tiles-past-end",
                                        "trailing-bytes",
                                        "truncated-header",
                                        "version-1-no-checksum",
                                        "version-3",
                                        "width-0",
                                        "width-x-height-past-32-bits"};
  char path[1024];
  unsigned char *img;
  uint64_t size;
  size_t i;
  for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    snprintf(path, sizeof path, "%s/tests/corpus/gmap/%s", MB_SOURCE_DIR, valid[i]);
    img = slurp(path, &size);
    if (mb_gmap_check(img, size, valid[i]) != 0 || mb__gmap_verify(img, size, valid[i], NULL) != 0)
      FAIL("%s: %s (run tests/corpus/make-gmap.sh)", path, mb_last_error());
    free(img);
  }
  for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    snprintf(path, sizeof path, "%s/tests/corpus/gmap/%s", MB_SOURCE_DIR, invalid[i]);
    img = slurp(path, &size);
    if (mb_gmap_check(img, size, invalid[i]) == 0 &&
        mb__gmap_verify(img, size, invalid[i], NULL) == 0)
      FAIL("%s is accepted: it is meant to be broken (run tests/corpus/make-gmap.sh)", path);
    free(img);
  }
}

/* ---- review 15m: upgrade in place, header first ------------------------------------------- */

/* A version 1 file of w x h tiles made from mb__gmap_write's version 2 one: *img (malloc'ed,
 * *size bytes) and the file `path`. */
static unsigned char *make_v1_file(const char *path, uint32_t w, uint32_t h, uint64_t *size) {
  unsigned char *img;
  ASSERT_OK(mb__gmap_write(path, w, h, 3, 5));
  img = slurp(path, size);
  put32(img + 4, 1);
  memset(img + MB_GMAP_CHECKSUM_OFFSET, 0, 8);
  spill(path, img, (size_t)*size);
  return img;
}

/* path's bytes are img[0..size) */
static void assert_file_is(const char *path, const unsigned char *img, uint64_t size) {
  uint64_t got_size;
  unsigned char *got = slurp(path, &got_size);
  ASSERT_EQ_U64(got_size, size);
  if (memcmp(got, img, (size_t)size) != 0)
    FAIL("'%s' was changed", path);
  free(got);
}

/* The same path under another spelling: DIR/./NAME. */
static void respell(char *buf, size_t size, const char *path) {
  const char *slash = strrchr(path, '/');
  ASSERT(slash != NULL);
  snprintf(buf, size, "%.*s/./%s", (int)(slash - path), path, slash + 1);
}

/*
 * `gmaptool upgrade F F` (the source is the target, under any spelling) never truncates the
 * source: the new image goes to F.tmp, is synced and renamed over F. A reader holding the old
 * file keeps the old bytes (POSIX); a write that fails (file size limit = a full disk) leaves
 * F as it was, no F.tmp, and says why. Review 15m #1: F was truncated, then lost.
 */
TEST(tool_upgrade_in_place_is_atomic) {
  char path[700], other[760], tmp[800];
  unsigned char *v1, *got;
  uint64_t size, got_size;
  tmp_path(path, sizeof path, "inplace.gmap");
  respell(other, sizeof other, path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  v1 = make_v1_file(path, 64, 64, &size);

  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", path, path, NULL), 0, out);
  got = slurp(path, &got_size);
  ASSERT_EQ_U64(got_size, size);
  ASSERT_OK(mb_gmap_check(got, got_size, path));
  ASSERT_OK(mb__gmap_verify(got, got_size, path, NULL));
  free(got);
  ASSERT_EQ(mb_os_file_remove(tmp), MB_ENOENT);

#if MB_OS_POSIX
  {
    struct rlimit old, lim;
    unsigned char held[64];
    FILE *fp;
    /* A reader of the old file still reads version 1 from it: it was replaced, not rewritten. */
    spill(path, v1, (size_t)size);
    ASSERT((fp = fopen(path, "rb")) != NULL);
    ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", other, path, NULL), 0, out);
    ASSERT_EQ(fread(held, 1, sizeof held, fp), sizeof held);
    fclose(fp);
    ASSERT_EQ(memcmp(held, v1, sizeof held), 0);

    /* The write fails half way (RLIMIT_FSIZE, inherited by gmaptool, as is SIGXFSZ ignored). */
    spill(path, v1, (size_t)size);
    ASSERT_OK(getrlimit(RLIMIT_FSIZE, &old));
    lim = old;
    lim.rlim_cur = 8192; /* room for gmaptool's output, not for the 16 KiB image */
    signal(SIGXFSZ, SIG_IGN);
    ASSERT_OK(setrlimit(RLIMIT_FSIZE, &lim));
    (void)GMAPTOOL(out, sizeof out, "upgrade", other, path, NULL);
    ASSERT_OK(setrlimit(RLIMIT_FSIZE, &old));
    signal(SIGXFSZ, SIG_DFL);
    ASSERT_CONTAINS(out, "gmaptool: upgrade: cannot write '");
    ASSERT_CONTAINS(out, "File too large");
    ASSERT_CONTAINS(out, "is unchanged");
    assert_file_is(path, v1, size);
    ASSERT_EQ(mb_os_file_remove(tmp), MB_ENOENT);
  }
#endif

  /* The temporary name cannot be created (a directory has it): refused, F as it was. */
  spill(path, v1, (size_t)size);
  ASSERT_OK(mb_os_dir_create(tmp));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", path, path, NULL), 1, out);
  ASSERT_CONTAINS(out, "gmaptool: upgrade: cannot create '");
  ASSERT_CONTAINS(out, "is unchanged");
  ASSERT_OK(mb_os_dir_remove(tmp));
  assert_file_is(path, v1, size);
  free(v1);
  remove(path);
}

/* A version 1 file's reserved words are named by their version 1 index (review 15m #10: the
 * upgrade named reserved[5] of version 1 "reserved[3] ... in version 2"). */
TEST(tool_upgrade_names_v1_reserved) {
  char path[700], want[900];
  unsigned char *v1;
  uint64_t size;
  tmp_path(path, sizeof path, "v1res.gmap");
  v1 = make_v1_file(path, 8, 8, &size);
  put32(v1 + MB_GMAP_CHECKSUM_OFFSET + 4 * 5, 1);
  spill(path, v1, (size_t)size);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", path, path, NULL), 1, out);
  snprintf(want, sizeof want, "%s: header.reserved[5]: 0x00000001, must be 0 in version 1", path);
  ASSERT_CONTAINS(out, want);
  assert_file_is(path, v1, size);
  put32(v1 + MB_GMAP_CHECKSUM_OFFSET + 4 * 5, 0);
  put32(v1 + MB_GMAP_CHECKSUM_OFFSET, 7);
  spill(path, v1, (size_t)size);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", path, path, NULL), 1, out);
  ASSERT_CONTAINS(out, "header.reserved[0]: 0x00000007, must be 0 in version 1");
  free(v1);
  remove(path);
}

/*
 * gmaptool reads a file's header and checks it against the file's real size before it reads
 * (or allocates) the rest: a 140 GiB sparse file with a version 1 header, or a version 2 one
 * whose counts do not make its size, is refused for what it is (review 15m #3: the tool
 * allocated and read the whole file first, or failed for want of memory).
 */
TEST(tool_checks_header_first) {
  const uint64_t big = UINT64_C(140) << 30;
  char path[700];
  unsigned char head[64];
  make_image(head, 64, SIG, 1, 4, 4, 16, 0);
  tmp_path(path, sizeof path, "sparse.gmap");
  tf_sparse_file(path, head, 64, big);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, NULL), 1, out);
  ASSERT_CONTAINS(out, "header.version: 1, a format this version no longer reads");
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "upgrade", path, path, NULL), 1, out);
  ASSERT_CONTAINS(out, "trailing bytes: ");
  make_image(head, 64, SIG, 2, 4, 4, 16, 0);
  tf_sparse_file(path, head, 64, big);
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, "--json", NULL), 1, out);
  ASSERT_CONTAINS(out, "trailing bytes: 150323855232 after the last object");
  ASSERT_CONTAINS(out, "\"size\":\t150323855360");
  remove(path);
}

/* `s` ends with `tail`, and says nothing of the shared-memory layout or of I/O. */
static void ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), k = strlen(tail);
  if (n < k || strcmp(s + n - k, tail) != 0)
    FAIL("'%s' does not end in '%s'", s, tail);
  ASSERT(strstr(s, "layout version mismatch") == NULL);
  ASSERT(strstr(s, "input/output error") == NULL);
}

/*
 * A GMAP version refusal ends in ": unsupported GMAP format version", a checksum mismatch in
 * ": corrupt GMAP file (checksum mismatch)"; their codes stay version_mismatch and io_error
 * (README's names). Review 15m #10: they ended in "layout version mismatch" and
 * "input/output error".
 */
TEST(refusals_end_in_what_happened) {
  unsigned char img[T_IMG_MAX];
  char path[700];
  make_image(img, IMG(6, 5), SIG, 3, 3, 2, 6, 5);
  ASSERT_ERR(mb_gmap_check(img, IMG(6, 5), "m"), MB_EVERSION);
  ends_with(mb_last_error(), ", only version 2 is known: " MB_GMAP_TAIL_VERSION);
  make_image(img, IMG(6, 5), SIG, 1, 3, 2, 6, 5);
  ASSERT_ERR(mb_gmap_check(img, IMG(6, 5), "m"), MB_EVERSION);
  ends_with(mb_last_error(), "`gmaptool upgrade OLD NEW`: " MB_GMAP_TAIL_VERSION);
  make_image(img, IMG(6, 5), SIG, 2, 3, 2, 6, 5);
  ASSERT_ERR(mb__gmap_verify(img, IMG(6, 5), "m", NULL), MB_EIO);
  ends_with(mb_last_error(), "after it was written: " MB_GMAP_TAIL_CHECKSUM);
  /* gmaptool prints them with the code's name after. */
  tmp_path(path, sizeof path, "tails.gmap");
  spill(path, img, IMG(6, 5));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, NULL), 1, out);
  ASSERT_CONTAINS(out, "after it was written: corrupt GMAP file (checksum mismatch) (io_error)");
  make_image(img, IMG(6, 5), SIG, 1, 3, 2, 6, 5);
  spill(path, img, IMG(6, 5));
  ASSERT_EXIT(GMAPTOOL(out, sizeof out, "info", path, NULL), 1, out);
  ASSERT_CONTAINS(out, "upgrade OLD NEW`: unsupported GMAP format version (version_mismatch)");
  remove(path);
}
