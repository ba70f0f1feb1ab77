/*
 * gmaptool.c - make and inspect GMAP files (game data maps, membroker.h) offline: the same
 * validator the broker runs before it loads a map (mb_gmap_check), and the deterministic
 * writer of the tests and benchmarks (mb__gmap_write, gmap.h).
 *
 *   gmaptool create FILE --width W --height H [--objects N] [--seed S]
 *   gmaptool info FILE [--json]
 *   gmaptool tile FILE X Y [--json]
 *   gmaptool object FILE I [--json]
 *   gmaptool upgrade OLD NEW
 *
 * The read commands read the file's header first and check it against the file's size, then
 * read the rest and check it all (structure and checksum), so what they print comes only from
 * a file the broker would accept, and a forged size costs 64 bytes of reading. upgrade
 * converts a file of an older GMAP version (1, no checksum) into the current one. Exit codes: 0 ok,
 * 1 the command failed (the file cannot be read or written, is not a valid GMAP file, or has no
 * such tile or object), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "gmap.h"
#include "hash.h"
#include "os.h"

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *fp) {
  fprintf(fp, "usage: gmaptool COMMAND FILE [ARGS] [OPTIONS]\n"
              "       (options may also stand before the command; -- ends them)\n"
              "\n"
              "commands:\n"
              "  create FILE --width W --height H [--objects N] [--seed S]\n"
              "                          write a valid GMAP file whose tiles and objects are a\n"
              "                          function of their position and the seed\n"
              "  info FILE               check FILE as the broker does; print its header, the\n"
              "                          sizes of its parts and its checksum (XXH3-64)\n"
              "  tile FILE X Y           print the tile at column X, row Y (from 0)\n"
              "  object FILE I           print object number I (from 0)\n"
              "  upgrade OLD NEW         write GMAP version 1 file OLD as a version 2 file NEW\n"
              "                          (the same tiles and objects, with a checksum)\n"
              "\n"
              "options:\n"
              "  --width W, --height H   create: the map's size in tiles, 1..4294967295 each,\n"
              "                          W x H at most 4294967295\n"
              "  --objects N             create: number of objects (default 0)\n"
              "  --seed S                create: the contents' seed, 0..4294967295 (default 0)\n"
              "  --json                  info, tile, object: print the result as JSON\n"
              "  --help, --version\n"
              "\n"
              "exit codes: 0 ok, 1 command failed (unreadable or invalid file, no such tile or\n"
              "object), 2 usage\n");
}

/* ---- small helpers --------------------------------------------------------------------------- */

/* A whole decimal number 0..UINT32_MAX (no sign, no spaces): 0, or -1 if s is not one. */
static int parse_u32(const char *s, uint32_t *out) {
  uint64_t v = 0;
  const char *c = s;
  if (*c == '\0')
    return -1;
  for (; *c != '\0'; c++) {
    if (*c < '0' || *c > '9')
      return -1;
    v = v * 10 + (uint64_t)(*c - '0');
    if (v > UINT32_MAX)
      return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* "39.3 KiB" - into one of four rotating buffers, so a printf can use several. */
static const char *bytes(uint64_t v) {
  static char bufs[4][32];
  static int next;
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  char *b = bufs[next++ & 3];
  double d = (double)v;
  int u = 0;
  while (d >= 1024 && u < 4) {
    d /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(b, 32, "%llu B", (unsigned long long)v);
  else
    snprintf(b, 32, "%.1f %s", d, units[u]);
  return b;
}

/* Print j on stdout and flush it, so a message on stderr that follows comes after it even
 * when both go to one file. */
static void print_json(cJSON *j) {
  char *text = cJSON_Print(j);
  if (text != NULL)
    printf("%s\n", text);
  cJSON_free(text);
  fflush(stdout);
}

/*
 * Read the GMAP file `path` into *data (malloc'ed; *size bytes), header first: its 64 bytes
 * and the file's real size go through `check` (mb__gmap_check_header, or
 * mb__gmap_upgrade_check) before anything else is read or allocated, so a version 1, forged
 * or truncated file is refused after 64 bytes whatever its size. Anything but a regular file
 * is refused first by mb_os_read_file, without reading or waiting on it.
 * Returns 0; -1 after printing why the file cannot be read; or -2 when `check` refused the
 * header: nothing printed, *check_rc its code (mb_last_error says why), *size the file's size,
 * *data NULL.
 */
static int read_gmap(const char *path, int (*check)(const void *, uint64_t, const char *),
                     unsigned char **data, uint64_t *size, int *check_rc, char *why, size_t wsize,
                     int *err) {
  char os_why[256];
  unsigned char head[MB_GMAP_HEADER_SIZE], *buf;
  uint64_t len, done;
  FILE *f;
  size_t n;
  long os;
  int r0;
  *data = NULL;
  *size = 0;
  {
    /* What it is, first: the whole-file reader with a limit of 0 bytes refuses anything but
     * a regular file without reading it or waiting on it (and says what it is), and a
     * regular file that is not empty with MB_ERANGE, before it allocates or reads a byte. */
    char *none;
    size_t got;
    r0 = mb_os_read_file(path, 0, &none, &got);
    if (r0 == 0)
      free(none); /* empty: the check below says what an empty file lacks */
    else if (r0 != MB_ERANGE)
      goto os_failed;
  }
  if ((r0 = mb_os_file_open(path, "rb", &f)) != 0)
    goto os_failed;
  n = fread(head, 1, sizeof head, f);
  if (ferror(f) || mb_os_file_seek_end(f, &len) != 0) {
    snprintf(why, wsize, "cannot read '%s': %s", path,
             mb_os_errno_text(errno != 0 ? errno : EIO, os_why, sizeof os_why));
    *err = MB_EIO;
    fclose(f);
    return -1;
  }
  if (n < sizeof head && len > n)
    len = n; /* shrank under us: check what there is */
  if ((*check_rc = check(head, len, path)) != 0) {
    fclose(f);
    *size = len;
    return -2;
  }
  if ((buf = malloc((size_t)len > 0 ? (size_t)len : 1)) == NULL || (uint64_t)(size_t)len != len) {
    snprintf(why, wsize, "'%s' (%llu bytes) does not fit in memory", path, (unsigned long long)len);
    *err = MB_ENOMEM;
    free(buf);
    fclose(f);
    return -1;
  }
  memcpy(buf, head, sizeof head);
  done = sizeof head;
  if (mb_os_file_seek(f, done) != 0) {
    snprintf(why, wsize, "cannot read '%s': %s", path, mb_last_error());
    *err = MB_EIO;
    free(buf);
    fclose(f);
    return -1;
  }
  while (done < len) {
    size_t want = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);
    if ((n = fread(buf + done, 1, want, f)) == 0)
      break;
    done += n;
  }
  if (ferror(f)) {
    snprintf(why, wsize, "cannot read '%s': %s", path,
             mb_os_errno_text(errno != 0 ? errno : EIO, os_why, sizeof os_why));
    *err = MB_EIO;
    free(buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  *data = buf;
  *size = done; /* short if it shrank: the full check after this says so */
  return 0;

os_failed:
  *err = r0;
  if ((os = mb_last_os_error()) != 0)
    snprintf(why, wsize, "cannot %s '%s': %s",
             strncmp(mb_last_error(), "open ", 5) == 0 ? "open" : "read", path,
             mb_os_error_text(os, os_why, sizeof os_why));
  else
    snprintf(why, wsize, "%s", mb_last_error());
  return -1;
}

/* With --json, a failure as one object on stdout:
 * {"path": PATH, "valid": false, ["size": N,] "error": {"code": CODE, "message": MESSAGE}};
 * the size only when the file was read (size_known). */
static void print_json_failure(const char *path, int size_known, uint64_t size, int rc,
                               const char *message) {
  cJSON *j = cJSON_CreateObject(), *e = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "path", path);
  cJSON_AddBoolToObject(j, "valid", 0);
  if (size_known)
    cJSON_AddNumberToObject(j, "size", (double)size);
  cJSON_AddStringToObject(e, "code", mb_err_name(rc));
  cJSON_AddStringToObject(e, "message", message);
  cJSON_AddItemToObject(j, "error", e);
  print_json(j);
  cJSON_Delete(j);
}

/* Read and check `path`: 0 with the image and its header, or EXIT_FAILED after saying why on
 * stderr. With --json every failure, a file that cannot be read (missing, a directory, a FIFO,
 * a device) as much as one that is not valid GMAP, is also one JSON object on stdout, first
 * (print_json_failure), so a script parsing stdout always gets a document. */
static int load(const char *path, int json, unsigned char **data, uint64_t *size,
                mb_gmap_header_t *h) {
  char why[1024];
  int rc = 0, r, err = 0;
  if ((r = read_gmap(path, mb__gmap_check_header, data, size, &rc, why, sizeof why, &err)) == -1) {
    if (json)
      print_json_failure(path, 0, 0, err, why);
    fprintf(stderr, "gmaptool: %s\n", why);
    return EXIT_FAILED;
  }
  if (r == -2 || (rc = mb_gmap_check(*data, *size, path)) != 0 ||
      (rc = mb__gmap_verify(*data, *size, path, NULL)) != 0) {
    if (json)
      print_json_failure(path, 1, *size, rc, mb_last_error());
    fprintf(stderr, "gmaptool: not a valid GMAP file: %s (%s)\n", mb_last_error(), mb_err_name(rc));
    free(*data);
    *data = NULL;
    return EXIT_FAILED;
  }
  mb__gmap_header(*data, h);
  return 0;
}

/* ---- commands -------------------------------------------------------------------------------- */

static int cmd_create(const char *path, uint32_t width, uint32_t height, uint32_t objects,
                      uint32_t seed) {
  if (mb__gmap_write(path, width, height, objects, seed) != 0) {
    fprintf(stderr, "gmaptool: create failed: %s\n", mb_last_error());
    return EXIT_FAILED;
  }
  printf("created     %s: %u x %u tiles, %u objects, %llu bytes (%s), seed %u\n", path,
         (unsigned)width, (unsigned)height, (unsigned)objects,
         (unsigned long long)mb__gmap_image_size(width * height, objects),
         bytes(mb__gmap_image_size(width * height, objects)), (unsigned)seed);
  return EXIT_OK;
}

static int cmd_info(const char *path, int json) {
  unsigned char *data;
  uint64_t size, tile_bytes, object_bytes, sum;
  mb_gmap_header_t h;
  char hex[24];
  int rc;
  if ((rc = load(path, json, &data, &size, &h)) != 0)
    return rc;
  tile_bytes = (uint64_t)h.tile_count * MB_GMAP_TILE_SIZE;
  object_bytes = (uint64_t)h.object_count * MB_GMAP_OBJECT_SIZE;
  sum = mb__gmap_stored_checksum(data); /* load() verified it */
  snprintf(hex, sizeof hex, "0x%016llx", (unsigned long long)sum);
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", path);
    cJSON_AddBoolToObject(j, "valid", 1);
    cJSON_AddNumberToObject(j, "size", (double)size);
    cJSON_AddNumberToObject(j, "version", h.version);
    cJSON_AddNumberToObject(j, "width", h.width);
    cJSON_AddNumberToObject(j, "height", h.height);
    cJSON_AddNumberToObject(j, "tiles", h.tile_count);
    cJSON_AddNumberToObject(j, "objects", h.object_count);
    cJSON_AddNumberToObject(j, "header_bytes", MB_GMAP_HEADER_SIZE);
    cJSON_AddNumberToObject(j, "tiles_offset", (double)MB_GMAP_TILES_OFFSET);
    cJSON_AddNumberToObject(j, "tile_bytes", (double)tile_bytes);
    cJSON_AddNumberToObject(j, "objects_offset", (double)MB_GMAP_OBJECTS_OFFSET(&h));
    cJSON_AddNumberToObject(j, "object_bytes", (double)object_bytes);
    cJSON_AddStringToObject(j, "checksum", hex + 2); /* as `maps` has it: no 0x */
    print_json(j);
    cJSON_Delete(j);
  } else {
    printf("file        %s\n", path);
    printf("format      GMAP version %u, valid\n", (unsigned)h.version);
    printf("map         %u x %u tiles (%u), %u objects\n", (unsigned)h.width, (unsigned)h.height,
           (unsigned)h.tile_count, (unsigned)h.object_count);
    printf("size        %llu bytes (%s)\n", (unsigned long long)size, bytes(size));
    printf("header      %u bytes at offset 0\n", MB_GMAP_HEADER_SIZE);
    printf("tiles       %llu bytes at offset %llu (%u bytes each)\n",
           (unsigned long long)tile_bytes, (unsigned long long)MB_GMAP_TILES_OFFSET,
           MB_GMAP_TILE_SIZE);
    printf("objects     %llu bytes at offset %llu (%u bytes each)\n",
           (unsigned long long)object_bytes, (unsigned long long)MB_GMAP_OBJECTS_OFFSET(&h),
           MB_GMAP_OBJECT_SIZE);
    printf("checksum    %s (" MB_HASH_NAME ", verified)\n", hex);
  }
  free(data);
  return EXIT_OK;
}

static int cmd_tile(const char *path, uint32_t x, uint32_t y, int json) {
  unsigned char *data;
  uint64_t size, index, offset;
  mb_gmap_header_t h;
  mb_gmap_tile_t t;
  int rc;
  if ((rc = load(path, json, &data, &size, &h)) != 0)
    return rc;
  if (mb__gmap_tile(data, &h, x, y, &t) != 0) {
    fprintf(stderr, "gmaptool: %s: %s\n", path, mb_last_error());
    free(data);
    return EXIT_FAILED;
  }
  index = (uint64_t)y * h.width + x;
  offset = MB_GMAP_TILES_OFFSET + index * MB_GMAP_TILE_SIZE;
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "x", x);
    cJSON_AddNumberToObject(j, "y", y);
    cJSON_AddNumberToObject(j, "index", (double)index);
    cJSON_AddNumberToObject(j, "offset", (double)offset);
    cJSON_AddNumberToObject(j, "tile_id", t.tile_id);
    cJSON_AddNumberToObject(j, "elevation", t.elevation);
    cJSON_AddNumberToObject(j, "flags", t.flags);
    print_json(j);
    cJSON_Delete(j);
  } else {
    printf("tile        (%u, %u), number %llu at offset %llu\n", (unsigned)x, (unsigned)y,
           (unsigned long long)index, (unsigned long long)offset);
    printf("tile_id     %u\n", (unsigned)t.tile_id);
    printf("elevation   %u\n", (unsigned)t.elevation);
    printf("flags       0x%02x\n", (unsigned)t.flags);
  }
  free(data);
  return EXIT_OK;
}

static cJSON *vec3(float a, float b, float c) {
  const double v[3] = {a, b, c};
  return cJSON_CreateDoubleArray(v, 3);
}

static int cmd_object(const char *path, uint32_t i, int json) {
  unsigned char *data;
  uint64_t size, offset;
  mb_gmap_header_t h;
  mb_gmap_object_t o;
  int rc;
  if ((rc = load(path, json, &data, &size, &h)) != 0)
    return rc;
  if (mb__gmap_object(data, &h, i, &o) != 0) {
    fprintf(stderr, "gmaptool: %s: %s\n", path, mb_last_error());
    free(data);
    return EXIT_FAILED;
  }
  offset = MB_GMAP_OBJECTS_OFFSET(&h) + (uint64_t)i * MB_GMAP_OBJECT_SIZE;
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "index", i);
    cJSON_AddNumberToObject(j, "offset", (double)offset);
    cJSON_AddNumberToObject(j, "object_id", o.object_id);
    cJSON_AddItemToObject(j, "pos", vec3(o.pos_x, o.pos_y, o.pos_z));
    cJSON_AddItemToObject(j, "rot", vec3(o.rot_x, o.rot_y, o.rot_z));
    cJSON_AddNumberToObject(j, "properties", o.properties);
    print_json(j);
    cJSON_Delete(j);
  } else {
    printf("object      %u at offset %llu\n", (unsigned)i, (unsigned long long)offset);
    printf("object_id   %u\n", (unsigned)o.object_id);
    printf("position    (%g, %g, %g)\n", (double)o.pos_x, (double)o.pos_y, (double)o.pos_z);
    printf("rotation    (%g, %g, %g)\n", (double)o.rot_x, (double)o.rot_y, (double)o.rot_z);
    printf("properties  %u (0x%08x)\n", (unsigned)o.properties, (unsigned)o.properties);
  }
  free(data);
  return EXIT_OK;
}

/*
 * Write version 1 file `from` as a version 2 file `to`. The image goes to "<to>.tmp" (in
 * to's directory), is flushed to stable storage (fsync / FlushFileBuffers), and only then
 * renamed over `to` in one step (mb_os_file_replace), so `to` - which may be `from` itself,
 * under any spelling - is the old file or the whole new one, never a part: a failure (full
 * disk, file size limit, a kill) leaves it as it was and at most "<to>.tmp" behind (removed
 * on a failure this process sees). A failure names the file and the OS's reason.
 */
static int cmd_upgrade(const char *from, const char *to) {
  unsigned char *data;
  uint64_t size, done = 0;
  char tmp[4096], why[1024];
  FILE *f;
  int rc = 0, e = 0, err = 0;
  if (read_gmap(from, mb__gmap_upgrade_check, &data, &size, &rc, why, sizeof why, &err) == -1) {
    fprintf(stderr, "gmaptool: %s\n", why);
    return EXIT_FAILED;
  }
  if (rc != 0 || (rc = mb__gmap_upgrade(data, size, from)) != 0) {
    fprintf(stderr, "gmaptool: upgrade: %s (%s)\n", mb_last_error(), mb_err_name(rc));
    free(data);
    return EXIT_FAILED;
  }
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", to) >= sizeof tmp) {
    fprintf(stderr, "gmaptool: upgrade: '%s': path too long\n", to);
    free(data);
    return EXIT_FAILED;
  }
  if (mb_os_file_create(tmp, &f) != 0) {
    fprintf(stderr, "gmaptool: upgrade: cannot create '%s' (next to '%s'): %s; '%s' is unchanged\n",
            tmp, to, mb_last_error(), to);
    free(data);
    return EXIT_FAILED;
  }
  while (done < size) {
    size_t n = size - done > (1u << 30) ? (1u << 30) : (size_t)(size - done);
    errno = 0;
    if (fwrite(data + done, 1, n, f) != n) {
      e = errno != 0 ? errno : EIO;
      break;
    }
    done += n;
  }
  if (done == size && (rc = mb_os_file_sync(f)) != 0)
    snprintf(why, sizeof why, "%s", mb_last_error());
  else if (done != size)
    mb_os_errno_text(e, why, sizeof why);
  errno = 0;
  if (fclose(f) != 0 && done == size && rc == 0) {
    rc = MB_EIO;
    mb_os_errno_text(errno != 0 ? errno : EIO, why, sizeof why);
  }
  if (done != size || rc != 0) {
    fprintf(stderr, "gmaptool: upgrade: cannot write '%s': %s; '%s' is unchanged\n", tmp, why, to);
    mb_os_file_discard(tmp);
    free(data);
    return EXIT_FAILED;
  }
  if (mb_os_file_replace(tmp, to) != 0) {
    fprintf(stderr, "gmaptool: upgrade: cannot rename '%s' to '%s': %s; '%s' is unchanged\n", tmp,
            to, mb_last_error(), to);
    mb_os_file_discard(tmp);
    free(data);
    return EXIT_FAILED;
  }
  printf("upgraded    %s -> %s: GMAP version %u, %llu bytes, checksum 0x%016llx (" MB_HASH_NAME
         ")\n",
         from, to, MB_GMAP_VERSION, (unsigned long long)size,
         (unsigned long long)mb__gmap_stored_checksum(data));
  free(data);
  return EXIT_OK;
}

/* ---- command line ---------------------------------------------------------------------------- */

/* The value options of create, in the order of `vals` in main. */
static const char *const value_opts[] = {"--width", "--height", "--objects", "--seed"};
#define N_VALUE_OPTS 4

/* What a command takes: its name and the number of arguments after it, FILE included. */
static const struct {
  const char *name, *args;
  int argc;
} commands[] = {
    {"create", "FILE --width W --height H [--objects N] [--seed S]", 1},
    {"info", "FILE [--json]", 1},
    {"tile", "FILE X Y [--json]", 3},
    {"object", "FILE I [--json]", 2},
    {"upgrade", "OLD NEW", 2},
};

/* The argument `what` (a name for messages) as a number, or a usage message and -1. */
static int arg_u32(const char *what, const char *s, uint32_t *out) {
  if (parse_u32(s, out) == 0)
    return 0;
  fprintf(stderr, "gmaptool: %s must be a whole number from 0 to 4294967295, got '%s'\n", what, s);
  return -1;
}

int main(int argc, char **argv) {
  static char *pos[8];
  int npos = 0, json = 0, opts_done = 0, i, k, cmd = -1;
  int given[N_VALUE_OPTS] = {0};
  uint32_t vals[N_VALUE_OPTS] = {0, 0, 0, 0}; /* width, height, objects, seed */
  uint32_t a, b;

  /* UTF-8 arguments (Windows: main's argv is the ANSI code page); on failure, main's own. */
  (void)mb_os_utf8_argv(&argc, &argv);

  /* Options may stand before or after the command; "--" ends them (for a file named "-x"). */
  for (i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!opts_done && s[0] == '-' && s[1] != '\0') {
      if (strcmp(s, "--") == 0) {
        opts_done = 1;
        continue;
      }
      if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
      }
      if (strcmp(s, "--version") == 0) {
        printf("gmaptool %s (GMAP version %u)\n", MB_VERSION, MB_GMAP_VERSION);
        return EXIT_OK;
      }
      if (strcmp(s, "--json") == 0) {
        json = 1;
        continue;
      }
      for (k = 0; k < N_VALUE_OPTS; k++)
        if (strcmp(s, value_opts[k]) == 0)
          break;
      if (k == N_VALUE_OPTS) {
        fprintf(stderr, "gmaptool: unknown option '%s'\n\n", s);
        usage(stderr);
        return EXIT_USAGE;
      }
      if (i + 1 == argc) {
        fprintf(stderr, "gmaptool: %s needs a value\n", s);
        return EXIT_USAGE;
      }
      if (parse_u32(argv[i + 1], &vals[k]) != 0 || (k < 2 && vals[k] == 0)) {
        fprintf(stderr, "gmaptool: %s needs a whole number from %d to 4294967295, got '%s'\n", s,
                k < 2 ? 1 : 0, argv[i + 1]);
        return EXIT_USAGE;
      }
      given[k] = 1;
      i++;
    } else if (npos < (int)(sizeof pos / sizeof pos[0])) {
      pos[npos++] = argv[i];
    } else {
      fprintf(stderr, "gmaptool: too many arguments\n");
      return EXIT_USAGE;
    }
  }
  if (npos == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  for (k = 0; k < (int)(sizeof commands / sizeof commands[0]); k++)
    if (strcmp(pos[0], commands[k].name) == 0)
      cmd = k;
  if (cmd < 0) {
    fprintf(stderr, "gmaptool: unknown command '%s' (create, info, tile, object, upgrade)\n",
            pos[0]);
    fprintf(stderr, "run 'gmaptool --help' for usage\n");
    return EXIT_USAGE;
  }
  if (npos - 1 != commands[cmd].argc) {
    fprintf(stderr, "gmaptool: %s takes %s\n", commands[cmd].name, commands[cmd].args);
    return EXIT_USAGE;
  }

  if (strcmp(pos[0], "create") == 0) {
    if (json) {
      fprintf(stderr, "gmaptool: --json is an option of info, tile and object\n");
      return EXIT_USAGE;
    }
    if (!given[0] || !given[1]) {
      fprintf(stderr, "gmaptool: create needs --width and --height\n");
      return EXIT_USAGE;
    }
    if ((uint64_t)vals[0] * vals[1] > UINT32_MAX) {
      fprintf(stderr,
              "gmaptool: --width %u x --height %u is %llu tiles, more than a GMAP file holds "
              "(4294967295)\n",
              (unsigned)vals[0], (unsigned)vals[1], (unsigned long long)vals[0] * vals[1]);
      return EXIT_USAGE;
    }
    return cmd_create(pos[1], vals[0], vals[1], vals[2], vals[3]);
  }
  for (k = 0; k < N_VALUE_OPTS; k++)
    if (given[k]) {
      fprintf(stderr, "gmaptool: %s is an option of create\n", value_opts[k]);
      return EXIT_USAGE;
    }
  if (strcmp(pos[0], "info") == 0)
    return cmd_info(pos[1], json);
  if (strcmp(pos[0], "upgrade") == 0) {
    if (json) {
      fprintf(stderr, "gmaptool: --json is an option of info, tile and object\n");
      return EXIT_USAGE;
    }
    return cmd_upgrade(pos[1], pos[2]);
  }
  if (strcmp(pos[0], "tile") == 0) {
    if (arg_u32("X", pos[2], &a) != 0 || arg_u32("Y", pos[3], &b) != 0)
      return EXIT_USAGE;
    return cmd_tile(pos[1], a, b, json);
  }
  if (arg_u32("I", pos[2], &a) != 0)
    return EXIT_USAGE;
  return cmd_object(pos[1], a, json);
}
