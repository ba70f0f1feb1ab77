/*
 * config.c - the broker's configuration: one table of options, the JSON file over it.
 *
 * Every scalar option is one row of cfg_opts[] (key path, type, field, default, range), every
 * field of a region one row of region_opts[], of a pool one row of pool_opts[] and of a map
 * one row of map_opts[]; the lists ("regions", "pools", "maps") are rows of cfg_lists[].
 * Defaults, parsing, validation and the effective-config JSON are all driven by those rows
 * (after mimalloc's options.c). Only what spans several options is code: the list bounds,
 * required keys and unique names (parse_list, shared by the lists), a slot bigger than its
 * region, a pool bigger than CFG_POOL_BYTES_MAX, the commit limit against what the regions
 * (slot tables included) and pools commit at start, and map paths made relative to the config
 * file (mb__config_load). What a start checks on the machine (groups, directories, the log
 * file, maps, slot tables against physical memory) is mb__config_check_host: it only looks
 * (stat, access, a group lookup, reading a map), never creates or changes anything, so
 * --check-config can run beside a live broker and a crash in it leaves nothing behind.
 *
 * Parsing goes into a local copy that is copied out only on success, so a bad file never
 * leaves a half-filled config. Each error is one message:
 *   <source>: <key path>: <what is wrong>: invalid configuration
 * (the last part is added by mb__errorf), e.g.
 *   membroker.json: pipe.max_line: "32MiB" is out of range (allowed: 1 KiB..16 MiB)
 *   membroker.json: unknown key "regoins" (did you mean "regions"?)
 *   membroker.json: line 3, column 5: JSON syntax error near '}'
 */
#include "config.h"
#include "pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gmap.h"
#include "http.h"
#include "os.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

#define CFG_SIZE_LIMIT UINT64_C(0x7FFFFFFFFFFFFFFF)   /* sizes are below 2^63 bytes */
#define CFG_EXACT_MAX UINT64_C(0x20000000000000)      /* 2^53: a JSON number is exact up to it */
#define CFG_PRINT_EXACT_MAX UINT64_C(999999999999999) /* cJSON prints numbers this big exactly */
#define CFG_FILE_MAX (1024 * 1024)                    /* largest config file read */
#define CFG_MS_MAX 86400000u                          /* one day, for the client timeouts */
#define CFG_PATH_LEN 96                               /* key paths: "regions[15].slot_size" */
#define CFG_QUOTE_LEN 200                             /* a quoted value in a message */
#define CFG_POOL_CAPACITY_MAX 16777216u               /* objects in one pool (2^24) */
#define CFG_POOL_BYTES_MAX (64 * GIB)                 /* blocks of one pool, alignment included */
#define CFG_NAME_SLOT MB_REGION_NAME_MAX              /* bytes of one name of an OPT_NAMES field */

_Static_assert(CFG_POOL_CAPACITY_MAX <= MB_POOL_CAPACITY_MAX,
               "a pool's capacity fits the free stack's head word (layout.h)");

/* Field sizes are copied as 4- or 8-byte unsigned integers, whatever their C type. */
_Static_assert(sizeof(int) == 4, "int fields are stored as 4 bytes");
_Static_assert(sizeof(mb_log_level_t) == 4, "enum fields are stored as 4 bytes");

typedef enum {
  OPT_BOOL, /* true / false, stored as 0 / 1 */
  OPT_UINT, /* a JSON integer */
  OPT_SIZE, /* a JSON integer (bytes) or a size string such as "64MiB" */
  OPT_MODE, /* an octal permission string such as "0660"; `max` holds the allowed bits */
  OPT_ENUM, /* one of `names`, stored as its index */
  OPT_NAME, /* an identifier: [A-Za-z0-9_-] ([a-z0-9_-] with OPT_LOWER), 1..size-1 chars */
  OPT_TEXT, /* free text without control characters, 1..size-1 bytes */
  /* an array of distinct OPT_NAMEs, each in a CFG_NAME_SLOT-byte slot of the field */
  OPT_NAMES,
} opt_type_t;

enum {
  OPT_NULLABLE = 1u << 0, /* strings: null is allowed and stored as "" */
  OPT_REQUIRED = 1u << 1, /* the key must be present (region and pool fields) */
  OPT_ZERO_OK = 1u << 2,  /* numbers: 0 is allowed besides min..max */
  OPT_POW2 = 1u << 3,     /* numbers: a non-zero value must be a power of two */
  OPT_LOWER = 1u << 4,    /* OPT_NAME: lower-case letters only */
};

/* One option: where it lives in the JSON, where it lives in the struct, what it accepts. */
typedef struct opt_s {
  const char *section;      /* enclosing object ("log", ...), NULL at the top of the table */
  const char *key;          /* key inside that object */
  opt_type_t type;          /* what the JSON value must be */
  unsigned flags;           /* OPT_* */
  size_t offset;            /* of the field in the struct the table describes */
  size_t size;              /* bytes of the field: 4 or 8 for numbers, array size for text */
  uint64_t def;             /* default of numbers, booleans, enums and modes */
  const char *sdef;         /* default of strings (NULL: "") */
  uint64_t min, max;        /* OPT_UINT, OPT_SIZE: accepted range; OPT_MODE: allowed bits */
  uint64_t multiple;        /* OPT_SIZE: the value must be a multiple of this (0: any) */
  const char *const *names; /* OPT_ENUM: accepted strings, NULL-terminated; index = value */
} opt_t;

#define CFG_FIELD(f) .offset = offsetof(mb_config_t, f), .size = sizeof(((mb_config_t *)0)->f)
#define REG_FIELD(f)                                                                               \
  .offset = offsetof(mb_region_cfg_t, f), .size = sizeof(((mb_region_cfg_t *)0)->f)
#define POOL_FIELD(f) .offset = offsetof(mb_pool_cfg_t, f), .size = sizeof(((mb_pool_cfg_t *)0)->f)
#define MAP_FIELD(f) .offset = offsetof(mb_map_cfg_t, f), .size = sizeof(((mb_map_cfg_t *)0)->f)

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const commit_names[] = {"start", "lazy", NULL};

/* The scalar options of mb_config_t, in the order of the effective-config JSON. */
/* clang-format off */
static const opt_t cfg_opts[] = {
  {.key = "instance", .type = OPT_NAME, CFG_FIELD(instance), .sdef = "default"},
  {.section = "log", .key = "level", .type = OPT_ENUM, CFG_FIELD(log_level),
   .def = MB_LOG_INFO, .names = log_level_names},
  {.section = "log", .key = "file", .type = OPT_TEXT, .flags = OPT_NULLABLE,
   CFG_FIELD(log_file)},
  {.section = "log", .key = "event_log", .type = OPT_BOOL, CFG_FIELD(log_event_log),
   .def = 1},
  {.section = "log", .key = "max_bytes", .type = OPT_SIZE, .flags = OPT_ZERO_OK,
   CFG_FIELD(log_max_bytes), .def = 10 * MIB, .min = 4 * KIB, .max = TIB},
  {.section = "log", .key = "keep", .type = OPT_UINT, CFG_FIELD(log_keep), .def = 5, .min = 0,
   .max = 99},
  {.section = "clients", .key = "heartbeat_timeout_ms", .type = OPT_UINT,
   CFG_FIELD(heartbeat_timeout_ms), .def = 10000, .min = 0, .max = CFG_MS_MAX},
  {.section = "clients", .key = "grace_period_ms", .type = OPT_UINT,
   CFG_FIELD(grace_period_ms), .def = 30000, .min = 0, .max = CFG_MS_MAX},
  {.section = "clients", .key = "max", .type = OPT_UINT,
   CFG_FIELD(max_clients), .def = 64, .min = 1, .max = MB_CLIENTS_MAX},
  {.section = "pipe", .key = "mode", .type = OPT_MODE,
   CFG_FIELD(pipe_mode), .def = 0660, .max = 0666},
  {.section = "pipe", .key = "operators_group", .type = OPT_TEXT, .flags = OPT_NULLABLE,
   CFG_FIELD(pipe_operators_group)},
  {.section = "pipe", .key = "max_line", .type = OPT_SIZE,
   CFG_FIELD(pipe_max_line), .def = 64 * KIB, .min = KIB, .max = 16 * MIB},
  {.section = "pipe", .key = "max_connections", .type = OPT_UINT,
   CFG_FIELD(pipe_max_connections), .def = 1024, .min = 1, .max = 100000},
  {.section = "pipe", .key = "admin_reserve", .type = OPT_UINT,
   CFG_FIELD(pipe_admin_reserve), .def = 4, .min = 0, .max = 1000},
  {.section = "pipe", .key = "idle_timeout_ms", .type = OPT_UINT, .flags = OPT_ZERO_OK,
   CFG_FIELD(pipe_idle_timeout_ms), .def = 300000, .min = 1000, .max = CFG_MS_MAX},
  {.section = "pipe", .key = "line_timeout_ms", .type = OPT_UINT, .flags = OPT_ZERO_OK,
   CFG_FIELD(pipe_line_timeout_ms), .def = 10000, .min = 100, .max = CFG_MS_MAX},
  {.section = "sections", .key = "mode", .type = OPT_MODE,
   CFG_FIELD(section_mode), .def = 0660, .max = 0666},
  {.section = "sections", .key = "group", .type = OPT_TEXT, .flags = OPT_NULLABLE,
   CFG_FIELD(section_group)},
  {.section = "limits", .key = "max_committed", .type = OPT_SIZE,
   CFG_FIELD(max_committed), .def = 0, .min = 0, .max = CFG_SIZE_LIMIT},
  {.section = "persist", .key = "dir", .type = OPT_TEXT, .flags = OPT_NULLABLE,
   CFG_FIELD(persist_dir)},
  {.section = "persist", .key = "regions", .type = OPT_NAMES, .flags = OPT_LOWER,
   CFG_FIELD(persist_regions)},
  {.section = "persist", .key = "interval_ms", .type = OPT_UINT,
   CFG_FIELD(persist_interval_ms), .def = 5000, .min = 100, .max = 3600000},
  {.section = "metrics", .key = "listen", .type = OPT_TEXT, .flags = OPT_NULLABLE,
   CFG_FIELD(metrics_listen)},
};

/* The fields of one entry of "regions". */
static const opt_t region_opts[] = {
  {.key = "name", .type = OPT_NAME, .flags = OPT_REQUIRED | OPT_LOWER, REG_FIELD(name)},
  {.key = "size", .type = OPT_SIZE, .flags = OPT_REQUIRED, REG_FIELD(size),
   .min = 64 * KIB, .max = CFG_SIZE_LIMIT, .multiple = 64 * KIB},
  {.key = "commit", .type = OPT_ENUM, REG_FIELD(lazy), .def = 0, .names = commit_names},
  {.key = "slot_size", .type = OPT_SIZE, .flags = OPT_ZERO_OK | OPT_POW2, REG_FIELD(slot_size),
   .def = 0, .min = 64, .max = MIB},
  {.key = "large_pages", .type = OPT_BOOL, REG_FIELD(large_pages), .def = 0},
};

/* The fields of one entry of "pools". */
static const opt_t pool_opts[] = {
  {.key = "name", .type = OPT_NAME, .flags = OPT_REQUIRED | OPT_LOWER, POOL_FIELD(name)},
  {.key = "object_size", .type = OPT_SIZE, .flags = OPT_REQUIRED, POOL_FIELD(object_size),
   .min = 8, .max = MIB},
  {.key = "align", .type = OPT_SIZE, .flags = OPT_POW2, POOL_FIELD(align),
   .def = 16, .min = 8, .max = 4 * KIB},
  {.key = "capacity", .type = OPT_UINT, .flags = OPT_REQUIRED, POOL_FIELD(capacity),
   .min = 1, .max = CFG_POOL_CAPACITY_MAX},
  {.key = "debug", .type = OPT_BOOL, POOL_FIELD(debug), .def = 0},
};

/* The fields of one entry of "maps". */
static const opt_t map_opts[] = {
  {.key = "name", .type = OPT_NAME, .flags = OPT_REQUIRED | OPT_LOWER, MAP_FIELD(name)},
  {.key = "path", .type = OPT_TEXT, .flags = OPT_REQUIRED, MAP_FIELD(path)},
};
/* clang-format on */

#define NOPTS(t) (sizeof(t) / sizeof((t)[0]))

/* Options present are recorded as bits of a uint32_t; key lists are fixed arrays. */
_Static_assert(NOPTS(cfg_opts) <= 32 && NOPTS(region_opts) <= 32 && NOPTS(pool_opts) <= 32 &&
                   NOPTS(map_opts) <= 32,
               "too many options");

/* The default regions, also the content of config/membroker.json. */
static const mb_region_cfg_t default_regions[] = {
    {"world", 64 * MIB, 0, 0, 0},
    {"players", 32 * MIB, 1, 1024, 0},
    {"npc", 16 * MIB, 0, 0, 0},
};

/* Keys allowed besides the options and the lists: strings, ignored. */
static const char *const top_extra_keys[] = {"$schema", "comment"};

/* ---- messages ----------------------------------------------------------------------------- */

static int cfg_err(const char *src, const char *path, const char *fmt, ...) MB_PRINTF(3, 4);

/*
 * Record the one message of a config error, "<src>: <path>: <text>" (no path part when path
 * is NULL or empty), and return MB_ECONFIG. mb__errorf appends ": invalid configuration".
 */
static int cfg_err(const char *src, const char *path, const char *fmt, ...) {
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (path == NULL || path[0] == '\0')
    return mb__errorf(MB_ECONFIG, 0, "%s: %s", src, text);
  return mb__errorf(MB_ECONFIG, 0, "%s: %s: %s", src, path, text);
}

/*
 * Write s to out in double quotes for a message: at most 48 bytes of it (then "..."), with
 * quotes, backslashes and control characters escaped. UTF-8 passes through unchanged.
 */
static void quote(char *out, size_t size, const char *s) {
  size_t o = 0, i;
  if (size < 8) {
    if (size > 0)
      out[0] = '\0';
    return;
  }
  out[o++] = '"';
  for (i = 0; s[i] != '\0' && o + 8 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == 48) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(out + o, size - o, "\\x%02X", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '"';
  out[o] = '\0';
}

/* Write a JSON number for a message: integers in full, others with 15 significant digits. */
static void fmt_number(char *out, size_t size, double d) {
  snprintf(out, size, "%.15g", d);
}

/* Write a byte count in its largest exact binary unit ("64 KiB"), else in bytes ("100 B"). */
static void fmt_size(char *out, size_t size, uint64_t v) {
  static const struct {
    const char *name;
    uint64_t mult;
  } units[] = {{"TiB", TIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}};
  size_t i;
  for (i = 0; v != 0 && i < NOPTS(units); i++) {
    if (v % units[i].mult == 0) {
      snprintf(out, size, "%llu %s", (unsigned long long)(v / units[i].mult), units[i].name);
      return;
    }
  }
  snprintf(out, size, "%llu B", (unsigned long long)v);
}

/* Describe a JSON value for "expected X, got Y": its kind and, when short, its value. */
static void describe(char *out, size_t size, const cJSON *it) {
  char v[CFG_QUOTE_LEN];
  if (cJSON_IsNull(it)) {
    snprintf(out, size, "null");
  } else if (cJSON_IsBool(it)) {
    snprintf(out, size, "a boolean (%s)", cJSON_IsTrue(it) ? "true" : "false");
  } else if (cJSON_IsNumber(it)) {
    fmt_number(v, sizeof v, it->valuedouble);
    snprintf(out, size, "a number (%s)", v);
  } else if (cJSON_IsString(it)) {
    quote(v, sizeof v, it->valuestring);
    snprintf(out, size, "a string (%s)", v);
  } else if (cJSON_IsArray(it)) {
    snprintf(out, size, "an array");
  } else if (cJSON_IsObject(it)) {
    snprintf(out, size, "an object");
  } else {
    snprintf(out, size, "an invalid value");
  }
}

/* Error "expected <what>, got <the value's kind>". */
static int type_err(const char *src, const char *path, const char *what, const cJSON *it) {
  char got[CFG_QUOTE_LEN + 32];
  describe(got, sizeof got, it);
  return cfg_err(src, path, "expected %s, got %s", what, got);
}

/*
 * Join a key to an object's path: "" + "instance" = "instance", "pipe" + "mode" = "pipe.mode".
 * Truncated to fit `size` (key paths are short: only known keys are joined).
 */
static void join(char *out, size_t size, const char *prefix, const char *key) {
  size_t n = 0, k = strlen(key);
  if (prefix != NULL && prefix[0] != '\0') {
    n = strlen(prefix);
    if (n > size - 2)
      n = size - 2;
    memcpy(out, prefix, n);
    out[n++] = '.';
  }
  if (k > size - 1 - n)
    k = size - 1 - n;
  memcpy(out + n, key, k);
  out[n + k] = '\0';
}

/* Append s to the string in buf (of `size` bytes), as much of it as fits. */
static void append(char *buf, size_t size, const char *s) {
  size_t n = strlen(buf), k = strlen(s);
  if (k > size - 1 - n)
    k = size - 1 - n;
  memcpy(buf + n, s, k);
  buf[n + k] = '\0';
}

/*
 * The optimal-string-alignment edit distance of a and b (insertions, deletions,
 * substitutions and swaps of neighbours each count 1), or 99 if either is over 63 bytes.
 */
static int edit_distance(const char *a, const char *b) {
  int rows[3][64], *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *t;
  size_t la = strlen(a), lb = strlen(b), i, j;
  if (la > 63 || lb > 63)
    return 99;
  for (j = 0; j <= lb; j++)
    prev[j] = (int)j;
  for (i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (j = 1; j <= lb; j++) {
      int cost = a[i - 1] != b[j - 1], best = prev[j - 1] + cost;
      if (prev[j] + 1 < best)
        best = prev[j] + 1;
      if (cur[j - 1] + 1 < best)
        best = cur[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < best)
        best = prev2[j - 2] + 1;
      cur[j] = best;
    }
    t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb];
}

/*
 * The candidate closest to `word` if it is close enough to be a likely typo: an edit
 * distance of at most 2 and at most half the candidate's length (so "foo" does not suggest
 * "log"). NULL if none is.
 */
static const char *closest(const char *word, const char *const *cands, size_t n) {
  const char *best = NULL;
  int bestd = 3;
  size_t i;
  for (i = 0; i < n; i++) {
    int d = edit_distance(word, cands[i]);
    if (d < bestd && (size_t)d * 2 <= strlen(cands[i])) {
      bestd = d;
      best = cands[i];
    }
  }
  return best;
}

/* ---- storing values in the struct an option table describes ------------------------------ */

/* Store v in the 4- or 8-byte numeric field of o. */
static void store_num(void *base, const opt_t *o, uint64_t v) {
  unsigned char *p = (unsigned char *)base + o->offset;
  if (o->size == 8) {
    memcpy(p, &v, 8);
  } else {
    uint32_t w = (uint32_t)v;
    memcpy(p, &w, 4);
  }
}

/* Read the 4- or 8-byte numeric field of o. */
static uint64_t load_num(const void *base, const opt_t *o) {
  const unsigned char *p = (const unsigned char *)base + o->offset;
  uint64_t v;
  uint32_t w;
  if (o->size == 8) {
    memcpy(&v, p, 8);
    return v;
  }
  memcpy(&w, p, 4);
  return w;
}

/* Store s (already checked to fit) in the text field of o, zero-filling the rest. */
static void store_str(void *base, const opt_t *o, const char *s) {
  char *p = (char *)base + o->offset;
  memset(p, 0, o->size);
  if (s != NULL)
    memcpy(p, s, strlen(s));
}

/* Set every field the table describes to its default. */
static void apply_defaults(void *base, const opt_t *opts, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (opts[i].type == OPT_NAME || opts[i].type == OPT_TEXT)
      store_str(base, &opts[i], opts[i].sdef);
    else if (opts[i].type == OPT_NAMES)
      memset((char *)base + opts[i].offset, 0, opts[i].size); /* an empty list */
    else
      store_num(base, &opts[i], opts[i].def);
  }
}

/* ---- checking one value ------------------------------------------------------------------- */

/* Write the accepted range of a numeric option: "1..256", "0 or 64 B..1 MiB", "at least ...". */
static void fmt_range(char *out, size_t size, const opt_t *o) {
  char lo[48], hi[48];
  const char *zero = (o->flags & OPT_ZERO_OK) ? "0 or " : "";
  if (o->type == OPT_SIZE) {
    fmt_size(lo, sizeof lo, o->min);
    fmt_size(hi, sizeof hi, o->max);
  } else {
    snprintf(lo, sizeof lo, "%llu", (unsigned long long)o->min);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)o->max);
  }
  if (o->max >= CFG_SIZE_LIMIT)
    snprintf(out, size, "%sat least %s", zero, lo);
  else
    snprintf(out, size, "%s%s..%s", zero, lo, hi);
}

/* Check a number against the option's range, multiple and power-of-two rules. `shown` is the
 * value as written in the file, for the message. */
static int check_num(const char *src, const char *path, const opt_t *o, uint64_t v,
                     const char *shown) {
  char range[120], m[48];
  if (!(v == 0 && (o->flags & OPT_ZERO_OK)) && (v < o->min || v > o->max)) {
    fmt_range(range, sizeof range, o);
    return cfg_err(src, path, "%s is out of range (allowed: %s)", shown, range);
  }
  if (o->multiple != 0 && v % o->multiple != 0) {
    fmt_size(m, sizeof m, o->multiple);
    return cfg_err(src, path, "%s is not a multiple of %s (%llu bytes)", shown, m,
                   (unsigned long long)o->multiple);
  }
  if ((o->flags & OPT_POW2) && (v & (v - 1)) != 0)
    return cfg_err(src, path, "%s is not a power of two", shown);
  return 0;
}

/*
 * Convert a JSON number to an unsigned integer: refuse negatives, fractions and anything
 * above 2^53 (a double is not exact there; 1e30 is refused, never wrapped).
 */
static int get_integer(const char *src, const char *path, const opt_t *o, const cJSON *it,
                       uint64_t *out) {
  double d = it->valuedouble;
  char shown[64], range[120];
  uint64_t v;
  fmt_number(shown, sizeof shown, d);
  fmt_range(range, sizeof range, o);
  if (d < 0)
    return cfg_err(src, path, "%s is negative (allowed: %s)", shown, range);
  if (!(d <= (double)CFG_EXACT_MAX)) { /* also NaN and infinity */
    if (o->max < CFG_EXACT_MAX)
      return cfg_err(src, path, "%s is out of range (allowed: %s)", shown, range);
    return cfg_err(src, path,
                   "%s is too large for a JSON number (above 2^53); write it as a size string "
                   "such as \"8TiB\"",
                   shown);
  }
  v = (uint64_t)d;
  if ((double)v != d)
    return cfg_err(src, path, "%s is not an integer", shown);
  *out = v;
  return 0;
}

/*
 * Parse a size string: decimal digits, optional spaces, an optional binary unit (B, KiB,
 * MiB, GiB, TiB; case-sensitive). Decimal-looking units (KB, MB, k, ...) are refused with
 * the binary unit to use instead, as are fractions, signs and values of 2^63 bytes or more.
 */
static int get_size_string(const char *src, const char *path, const char *s, uint64_t *out) {
  static const struct {
    const char *name;
    uint64_t mult;
  } units[] = {{"", 1}, {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}, {"TiB", TIB}};
  static const char *const decimal[] = {"k", "kb", "m", "mb", "g", "gb", "t", "tb"};
  static const char binary_of[] = {'K', 'K', 'M', 'M', 'G', 'G', 'T', 'T'};
  char q[CFG_QUOTE_LEN];
  const char *p = s;
  uint64_t v = 0;
  size_t i, ndigits = 0;

  quote(q, sizeof q, s);
  if (*p == '\0')
    return cfg_err(src, path, "\"\" is empty (expected a size such as \"64MiB\")");
  if (*p == '-')
    return cfg_err(src, path, "%s is negative", q);
  for (; *p >= '0' && *p <= '9'; p++, ndigits++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (CFG_SIZE_LIMIT - d) / 10)
      return cfg_err(src, path, "%s is too large (sizes must be below 2^63 bytes)", q);
    v = v * 10 + d;
  }
  if (ndigits > 0 && (*p == '.' || *p == ','))
    return cfg_err(src, path,
                   "%s is not a whole number (fractions are not allowed; use a smaller unit, "
                   "e.g. \"1536MiB\" for 1.5 GiB)",
                   q);
  if (ndigits == 0)
    return cfg_err(src, path, "%s is not a size (use bytes or B/KiB/MiB/GiB/TiB)", q);
  while (*p == ' ')
    p++;
  for (i = 0; i < NOPTS(units); i++) {
    if (strcmp(p, units[i].name) == 0) {
      if (v > CFG_SIZE_LIMIT / units[i].mult)
        return cfg_err(src, path, "%s is too large (sizes must be below 2^63 bytes)", q);
      *out = v * units[i].mult;
      return 0;
    }
  }
  for (i = 1; i < NOPTS(units); i++) {
    const char *a = p, *b = units[i].name;
    while (*a && *b && (*a | 0x20) == (*b | 0x20))
      a++, b++;
    if (*a == '\0' && *b == '\0')
      return cfg_err(src, path, "%s: write the unit as \"%s\" (units are case-sensitive)", q,
                     units[i].name);
  }
  for (i = 0; i < NOPTS(decimal); i++) {
    const char *a = p, *b = decimal[i];
    while (*a && *b && (*a | 0x20) == *b)
      a++, b++;
    if (*a == '\0' && *b == '\0')
      return cfg_err(src, path,
                     "%s: \"%s\" is not accepted, write \"%ciB\" (units are binary: B, KiB, MiB, "
                     "GiB, TiB)",
                     q, p, binary_of[i]);
  }
  return cfg_err(src, path, "%s is not a size (use bytes or B/KiB/MiB/GiB/TiB)", q);
}

/* Check an identifier: 1..size-1 characters of [A-Za-z0-9_-] ([a-z0-9_-] with OPT_LOWER). */
static int check_name(const char *src, const char *path, const opt_t *o, const char *s) {
  char q[CFG_QUOTE_LEN];
  if (mb__name_ok(s, o->size, (o->flags & OPT_LOWER) ? 0 : MB_NAME_UPPER))
    return 0;
  quote(q, sizeof q, s);
  return cfg_err(src, path, "%s is not a valid name (use 1..%zu characters of %s)", q, o->size - 1,
                 (o->flags & OPT_LOWER) ? "a-z 0-9 _ -" : "A-Z a-z 0-9 _ -");
}

/* Check free text: not empty, fits the field, no control characters. */
static int check_text(const char *src, const char *path, const opt_t *o, const char *s) {
  char q[CFG_QUOTE_LEN];
  size_t i, n = strlen(s);
  quote(q, sizeof q, s);
  if (n == 0)
    return cfg_err(src, path, "\"\" is empty%s", (o->flags & OPT_NULLABLE) ? " (use null)" : "");
  if (n >= o->size)
    return cfg_err(src, path, "%s is too long (at most %zu bytes)", q, o->size - 1);
  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return cfg_err(src, path, "%s contains a control character", q);
  return 0;
}

/* Parse an octal mode string of 1..4 digits and check it has no bits outside o->max. */
static int get_mode(const char *src, const char *path, const opt_t *o, const char *s,
                    uint64_t *out) {
  char q[CFG_QUOTE_LEN];
  size_t i, n = strlen(s);
  uint64_t v = 0;
  quote(q, sizeof q, s);
  for (i = 0; i < n && n <= 4; i++) {
    if (s[i] < '0' || s[i] > '7')
      break;
    v = v * 8 + (uint64_t)(s[i] - '0');
  }
  if (n == 0 || n > 4 || i < n)
    return cfg_err(src, path, "%s is not an octal mode (use a string such as \"0660\")", q);
  if (v & ~o->max)
    return cfg_err(src, path, "%s has bits outside 0%03llo (only read and write bits are allowed)",
                   q, (unsigned long long)o->max);
  *out = v;
  return 0;
}

/* Match an enum string; on failure list the accepted strings and suggest a close one. */
static int get_enum(const char *src, const char *path, const opt_t *o, const char *s,
                    uint64_t *out) {
  char q[CFG_QUOTE_LEN], list[200];
  const char *near;
  size_t i, n = 0;
  for (i = 0; o->names[i] != NULL; i++, n++) {
    if (strcmp(s, o->names[i]) == 0) {
      *out = i;
      return 0;
    }
  }
  list[0] = '\0';
  for (i = 0; i < n; i++) {
    append(list, sizeof list, i ? ", \"" : "\"");
    append(list, sizeof list, o->names[i]);
    append(list, sizeof list, "\"");
  }
  quote(q, sizeof q, s);
  near = closest(s, o->names, n);
  if (near != NULL)
    return cfg_err(src, path, "%s is not one of %s (did you mean \"%s\"?)", q, list, near);
  return cfg_err(src, path, "%s is not one of %s", q, list);
}

/* What an option's value must look like, for type errors. */
static const char *expected(const opt_t *o) {
  switch (o->type) {
  case OPT_BOOL:
    return "true or false";
  case OPT_UINT:
    return "an integer";
  case OPT_SIZE:
    return "a size (an integer or a string such as \"64MiB\")";
  case OPT_MODE:
    return "a string (an octal mode such as \"0660\")";
  case OPT_ENUM:
    return "a string";
  case OPT_NAME:
    return "a string";
  case OPT_TEXT:
    return (o->flags & OPT_NULLABLE) ? "a string or null" : "a string";
  case OPT_NAMES:
    return "an array of names";
  }
  return "a value";
}

/*
 * An OPT_NAMES value: an array of at most size / CFG_NAME_SLOT names, each a valid OPT_NAME
 * (path[i] in messages) and listed once, stored slot by slot with the unused slots zero.
 */
static int get_names(const char *src, const char *path, const opt_t *o, const cJSON *it,
                     void *base) {
  char *field = (char *)base + o->offset, kp[CFG_PATH_LEN];
  size_t n = 0, j, max = o->size / CFG_NAME_SLOT;
  opt_t one = *o;
  const cJSON *e;
  int rc;
  if (!cJSON_IsArray(it))
    return type_err(src, path, expected(o), it);
  if ((size_t)cJSON_GetArraySize(it) > max)
    return cfg_err(src, path, "%d names given, at most %zu are allowed", cJSON_GetArraySize(it),
                   max);
  one.type = OPT_NAME;
  one.size = CFG_NAME_SLOT;
  memset(field, 0, o->size);
  for (e = it->child; e != NULL; e = e->next, n++) {
    snprintf(kp, sizeof kp, "%s[%zu]", path, n);
    if (!cJSON_IsString(e))
      return type_err(src, kp, "a string", e);
    if ((rc = check_name(src, kp, &one, e->valuestring)) != 0)
      return rc;
    for (j = 0; j < n; j++)
      if (strcmp(field + j * CFG_NAME_SLOT, e->valuestring) == 0)
        return cfg_err(src, kp, "\"%s\" is already %s[%zu]", e->valuestring, path, j);
    memcpy(field + n * CFG_NAME_SLOT, e->valuestring, strlen(e->valuestring));
  }
  return 0;
}

/* Check the JSON value `it` against option o and store it in the struct at base. */
static int apply_opt(const char *src, const char *path, const opt_t *o, const cJSON *it,
                     void *base) {
  char shown[CFG_QUOTE_LEN];
  uint64_t v = 0;
  int rc;
  switch (o->type) {
  case OPT_BOOL:
    if (!cJSON_IsBool(it))
      return type_err(src, path, expected(o), it);
    store_num(base, o, cJSON_IsTrue(it) ? 1 : 0);
    return 0;
  case OPT_UINT:
  case OPT_SIZE:
    if (cJSON_IsNumber(it)) {
      fmt_number(shown, sizeof shown, it->valuedouble);
      rc = get_integer(src, path, o, it, &v);
    } else if (o->type == OPT_SIZE && cJSON_IsString(it)) {
      quote(shown, sizeof shown, it->valuestring);
      rc = get_size_string(src, path, it->valuestring, &v);
    } else {
      return type_err(src, path, expected(o), it);
    }
    if (rc == 0)
      rc = check_num(src, path, o, v, shown);
    if (rc == 0)
      store_num(base, o, v);
    return rc;
  case OPT_MODE:
  case OPT_ENUM:
    if (!cJSON_IsString(it))
      return type_err(src, path, expected(o), it);
    rc = o->type == OPT_MODE ? get_mode(src, path, o, it->valuestring, &v)
                             : get_enum(src, path, o, it->valuestring, &v);
    if (rc == 0)
      store_num(base, o, v);
    return rc;
  case OPT_NAME:
  case OPT_TEXT:
    if (cJSON_IsNull(it) && (o->flags & OPT_NULLABLE)) {
      store_str(base, o, NULL);
      return 0;
    }
    if (!cJSON_IsString(it))
      return type_err(src, path, expected(o), it);
    rc = o->type == OPT_NAME ? check_name(src, path, o, it->valuestring)
                             : check_text(src, path, o, it->valuestring);
    if (rc == 0)
      store_str(base, o, it->valuestring);
    return rc;
  case OPT_NAMES:
    return get_names(src, path, o, it, base);
  }
  return cfg_err(src, path, "internal error: option type %d", (int)o->type);
}

/* ---- objects ------------------------------------------------------------------------------ */

/*
 * Check the keys of object `obj` at `path`: each must be in known[] (else "unknown key",
 * with the closest known key if one is near) and appear once (cJSON keeps both copies of a
 * duplicate, so compare with the earlier siblings).
 */
static int check_keys(const char *src, const char *path, const cJSON *obj, const char *const *known,
                      size_t nknown) {
  const cJSON *it, *prev;
  char q[CFG_QUOTE_LEN], kp[CFG_PATH_LEN];
  const char *near;
  size_t i;
  for (it = obj->child; it != NULL; it = it->next) {
    for (i = 0; i < nknown && strcmp(it->string, known[i]) != 0; i++)
      ;
    if (i == nknown) {
      quote(q, sizeof q, it->string);
      near = closest(it->string, known, nknown);
      if (near != NULL)
        return cfg_err(src, path, "unknown key %s (did you mean \"%s\"?)", q, near);
      return cfg_err(src, path, "unknown key %s", q);
    }
    for (prev = obj->child; prev != it; prev = prev->next) {
      if (strcmp(prev->string, it->string) == 0) {
        join(kp, sizeof kp, path, it->string);
        return cfg_err(src, kp, "duplicate key (each key may appear once per object)");
      }
    }
  }
  return 0;
}

/* Does option o live in the object `section` (NULL: the top of its table)? */
static int in_section(const opt_t *o, const char *section) {
  if (o->section == NULL || section == NULL)
    return o->section == section;
  return strcmp(o->section, section) == 0;
}

/* The index of the option of opts[] at `section`.`key`, or n if there is none. */
static size_t find_opt(const opt_t *opts, size_t n, const char *section, const char *key) {
  size_t i;
  for (i = 0; i < n; i++)
    if (in_section(&opts[i], section) && strcmp(opts[i].key, key) == 0)
      break;
  return i;
}

/*
 * Apply the object `obj` at `path` to the options of `section` in opts[] (stored at base).
 * Besides those options only "comment" (a string) is allowed. *seen gets bit i set for every
 * option opts[i] present.
 */
static int parse_fields(const char *src, const char *path, const cJSON *obj, const opt_t *opts,
                        size_t n, const char *section, void *base, uint32_t *seen) {
  const char *known[33]; /* <= 32 options (static-asserted) + "comment" */
  char kp[CFG_PATH_LEN];
  const cJSON *it;
  size_t i, nknown = 0;
  int rc;
  for (i = 0; i < n; i++)
    if (in_section(&opts[i], section))
      known[nknown++] = opts[i].key;
  known[nknown++] = "comment";
  if ((rc = check_keys(src, path, obj, known, nknown)) != 0)
    return rc;
  for (it = obj->child; it != NULL; it = it->next) {
    join(kp, sizeof kp, path, it->string);
    if (strcmp(it->string, "comment") == 0) {
      if (!cJSON_IsString(it))
        return type_err(src, kp, "a string", it);
      continue;
    }
    i = find_opt(opts, n, section, it->string); /* found: check_keys passed */
    if ((rc = apply_opt(src, kp, &opts[i], it, base)) != 0)
      return rc;
    *seen |= UINT32_C(1) << i;
  }
  return 0;
}

/* ---- lists of objects ("regions", "pools", "maps") ----------------------------------------- */

uint64_t mb__config_slot_table(const mb_region_cfg_t *r) {
  uint32_t page = (uint32_t)mb_os_mem_config()->page_size;
  uint64_t slots = r->slot_size ? r->size / r->slot_size : 0;
  if (slots == 0)
    return 0;
  /* What mb__region_create adds to the section, rounded to whole pages as it does. */
  return mb__round_up(r->size + mb__region_table_size(r->size, page, slots, page), page) - r->size;
}

/* A region's slots must fit in the region; large pages are committed at start. */
static int check_region(const char *src, const char *path, const void *item) {
  const mb_region_cfg_t *r = item;
  char kp[CFG_PATH_LEN], a[48], b[48];
  if (r->large_pages && r->lazy) {
    join(kp, sizeof kp, path, "large_pages");
    return cfg_err(src, kp,
                   "true needs \"commit\": \"start\": large pages are committed whole when the "
                   "broker starts, never page by page");
  }
  if (r->slot_size <= r->size)
    return 0;
  fmt_size(a, sizeof a, r->slot_size);
  fmt_size(b, sizeof b, r->size);
  join(kp, sizeof kp, path, "slot_size");
  return cfg_err(src, kp, "%s is larger than the region (%s)", a, b);
}

/* A pool's blocks (each object rounded up to the alignment) must fit CFG_POOL_BYTES_MAX. */
static int check_pool(const char *src, const char *path, const void *item) {
  const mb_pool_cfg_t *p = item;
  uint64_t stride = mb__round_up(p->object_size, p->align); /* as mb__pool_layout */
  uint64_t total = stride * p->capacity;
  char obj[48], each[48], need[48], max[48], aligned[96] = "";
  if (total <= CFG_POOL_BYTES_MAX)
    return 0;
  fmt_size(obj, sizeof obj, p->object_size);
  fmt_size(need, sizeof need, total);
  fmt_size(max, sizeof max, CFG_POOL_BYTES_MAX);
  if (stride != p->object_size) {
    fmt_size(each, sizeof each, stride);
    snprintf(aligned, sizeof aligned, " (%s each with align %u)", each, (unsigned)p->align);
  }
  return cfg_err(src, path, "%u objects of %s%s need %s, more than a pool may hold (%s)",
                 (unsigned)p->capacity, obj, aligned, need, max);
}

/* One list of objects in mb_config_t: an array of entries with a count beside it. */
typedef struct list_s {
  const char *key;     /* top-level key, also the plural in messages ("regions") */
  const char *noun;    /* one entry, in messages ("region") */
  int min, max;        /* entries allowed; max is the array's length */
  const opt_t *opts;   /* the fields of one entry; one of them is the unique "name" */
  size_t nopts;        /* rows of opts */
  size_t item_size;    /* bytes of one entry */
  size_t items_offset; /* of the array in mb_config_t */
  size_t count_offset; /* of its int count in mb_config_t */
  /* What spans fields of one entry, after its fields and required keys; NULL: nothing. */
  int (*check)(const char *src, const char *path, const void *item);
} list_t;

#define CFG_LIST(k, n, lo, arr, cnt, o, chk)                                                       \
  {                                                                                                \
    .key = k, .noun = n, .min = lo, .max = (int)NOPTS(((mb_config_t *)0)->arr), .opts = o,         \
    .nopts = NOPTS(o), .item_size = sizeof(((mb_config_t *)0)->arr[0]),                            \
    .items_offset = offsetof(mb_config_t, arr), .count_offset = offsetof(mb_config_t, cnt),        \
    .check = chk                                                                                   \
  }

/* The lists, in the order of the effective-config JSON. */
static const list_t cfg_lists[] = {
    CFG_LIST("regions", "region", 1, regions, nregions, region_opts, check_region),
    CFG_LIST("pools", "pool", 0, pools, npools, pool_opts, check_pool),
    CFG_LIST("maps", "map", 0, maps, nmaps, map_opts, NULL),
};

/* The count of list l in cfg. */
static int *list_count(mb_config_t *cfg, const list_t *l) {
  return (int *)(void *)((char *)cfg + l->count_offset);
}

/*
 * Replace the list l of cfg with the array `arr`: l->min..l->max objects, each with its
 * fields (defaults for the missing ones), its required keys, l->check, and a name no earlier
 * entry has. The unused entries are zeroed.
 */
static int parse_list(const char *src, const cJSON *arr, const list_t *l, mb_config_t *cfg) {
  unsigned char *items = (unsigned char *)cfg + l->items_offset;
  size_t name_off = l->opts[find_opt(l->opts, l->nopts, NULL, "name")].offset, k;
  char path[CFG_PATH_LEN], kp[CFG_PATH_LEN], what[64];
  const cJSON *it;
  int n, i = 0, j, rc;
  if (!cJSON_IsArray(arr)) {
    snprintf(what, sizeof what, "an array of %s objects", l->noun);
    return type_err(src, l->key, what, arr);
  }
  n = cJSON_GetArraySize(arr);
  if (n == 0 && l->min > 0)
    return cfg_err(src, l->key, "the list is empty (give %d..%d %s)", l->min, l->max, l->key);
  if (n > l->max)
    return cfg_err(src, l->key, "%d %s given, at most %d are allowed", n, l->key, l->max);
  memset(items, 0, l->item_size * (size_t)l->max);
  *list_count(cfg, l) = n;
  for (it = arr->child; it != NULL; it = it->next, i++) {
    unsigned char *item = items + (size_t)i * l->item_size;
    const char *name = (const char *)item + name_off;
    uint32_t seen = 0;
    snprintf(path, sizeof path, "%s[%d]", l->key, i);
    if (!cJSON_IsObject(it))
      return type_err(src, path, "an object", it);
    apply_defaults(item, l->opts, l->nopts);
    if ((rc = parse_fields(src, path, it, l->opts, l->nopts, NULL, item, &seen)) != 0)
      return rc;
    for (k = 0; k < l->nopts; k++)
      if ((l->opts[k].flags & OPT_REQUIRED) && !(seen & (UINT32_C(1) << k)))
        return cfg_err(src, path, "missing required key \"%s\"", l->opts[k].key);
    if (l->check != NULL && (rc = l->check(src, path, item)) != 0)
      return rc;
    for (j = 0; j < i; j++) {
      if (strcmp((const char *)items + (size_t)j * l->item_size + name_off, name) == 0) {
        join(kp, sizeof kp, path, "name");
        return cfg_err(src, kp, "\"%s\" is already the name of %s[%d]", name, l->key, j);
      }
    }
  }
  return 0;
}

/*
 * persist.regions: each names a region of this config that can be saved (committed at start,
 * or with slots: of a lazy region without slots only the game servers know which pages are
 * in use), and saving needs persist.dir.
 */
static int check_persist(const char *src, const mb_config_t *cfg) {
  const char *names[MB_REGIONS_MAX], *near;
  char kp[CFG_PATH_LEN], list[MB_REGIONS_MAX * (MB_REGION_NAME_MAX + 2)] = "";
  int i, j;
  for (j = 0; j < cfg->nregions; j++) {
    names[j] = cfg->regions[j].name;
    append(list, sizeof list, j ? ", " : "");
    append(list, sizeof list, names[j]);
  }
  for (i = 0; i < MB_REGIONS_MAX && cfg->persist_regions[i][0] != '\0'; i++) {
    const char *name = cfg->persist_regions[i];
    snprintf(kp, sizeof kp, "persist.regions[%d]", i);
    if (cfg->persist_dir[0] == '\0')
      return cfg_err(src, "persist.regions",
                     "regions to save are given but persist.dir is not (nothing is saved "
                     "without it)");
    for (j = 0; j < cfg->nregions && strcmp(names[j], name) != 0; j++)
      ;
    if (j == cfg->nregions) {
      near = closest(name, names, (size_t)cfg->nregions);
      if (near != NULL)
        return cfg_err(src, kp, "\"%s\" is not a region of this config (did you mean \"%s\"?)",
                       name, near);
      return cfg_err(src, kp, "\"%s\" is not a region of this config (regions: %s)", name, list);
    }
    if (cfg->regions[j].lazy && cfg->regions[j].slot_size == 0)
      return cfg_err(src, kp,
                     "\"%s\" is lazy and has no slots: only the game servers know which of its "
                     "pages are in use, so it cannot be saved (save a region committed at "
                     "start or one with slots)",
                     name);
  }
  return 0;
}

/*
 * Apply the top-level object: its own options, the sections, the lists ("regions",
 * "pools", "maps"), and the ignored string keys "$schema" and "comment". Then the checks that
 * span options.
 */
static int parse_root(const char *src, const cJSON *root, mb_config_t *cfg) {
  const char *known[NOPTS(cfg_opts) + NOPTS(top_extra_keys) + NOPTS(cfg_lists)];
  const cJSON *it;
  size_t i, j, nknown = 0, first_section;
  uint32_t seen = 0;
  uint64_t start = 0;
  char a[48], b[48], why[200];
  int rc;

  /* Known keys: top-level options, each section once, the extra keys, the lists. */
  for (i = 0; i < NOPTS(cfg_opts); i++)
    if (cfg_opts[i].section == NULL)
      known[nknown++] = cfg_opts[i].key;
  first_section = nknown;
  for (i = 0; i < NOPTS(cfg_opts); i++) {
    if (cfg_opts[i].section == NULL)
      continue;
    for (j = first_section; j < nknown && strcmp(known[j], cfg_opts[i].section) != 0; j++)
      ;
    if (j == nknown)
      known[nknown++] = cfg_opts[i].section;
  }
  for (i = 0; i < NOPTS(top_extra_keys); i++)
    known[nknown++] = top_extra_keys[i];
  for (i = 0; i < NOPTS(cfg_lists); i++)
    known[nknown++] = cfg_lists[i].key;
  if ((rc = check_keys(src, "", root, known, nknown)) != 0)
    return rc;

  for (it = root->child; it != NULL; it = it->next) {
    const char *key = it->string;
    for (j = 0; j < NOPTS(cfg_lists) && strcmp(key, cfg_lists[j].key) != 0; j++)
      ;
    if (strcmp(key, "$schema") == 0 || strcmp(key, "comment") == 0) {
      if (!cJSON_IsString(it))
        return type_err(src, key, "a string", it);
    } else if (j < NOPTS(cfg_lists)) {
      if ((rc = parse_list(src, it, &cfg_lists[j], cfg)) != 0)
        return rc;
    } else {
      for (i = 0; i < NOPTS(cfg_opts); i++)
        if (cfg_opts[i].section != NULL && strcmp(cfg_opts[i].section, key) == 0)
          break;
      if (i < NOPTS(cfg_opts)) { /* a section */
        if (!cJSON_IsObject(it))
          return type_err(src, key, "an object", it);
        rc = parse_fields(src, key, it, cfg_opts, NOPTS(cfg_opts), key, cfg, &seen);
      } else { /* a top-level option: check_keys passed */
        i = find_opt(cfg_opts, NOPTS(cfg_opts), NULL, key);
        rc = apply_opt(src, key, &cfg_opts[i], it, cfg);
      }
      if (rc != 0)
        return rc;
    }
  }

  if ((rc = check_persist(src, cfg)) != 0)
    return rc;
  if (cfg->metrics_listen[0] != '\0' &&
      mb__http_listen_parse(cfg->metrics_listen, NULL, NULL, why, sizeof why) != 0)
    return cfg_err(src, "metrics.listen", "%s", why);

  /* A commit limit below what the regions and pools commit at start could never be met. */
  if (cfg->max_committed != 0) {
    for (i = 0; i < (size_t)cfg->nregions; i++) {
      uint64_t r = (cfg->regions[i].lazy ? 0 : cfg->regions[i].size) +
                   mb__config_slot_table(&cfg->regions[i]);
      start = start + r < start ? UINT64_MAX : start + r;
    }
    for (i = 0; i < (size_t)cfg->npools; i++) {
      mb_pool_desc_t d;
      memset(&d, 0, sizeof d);
      if (mb__pool_layout(&d, cfg->pools[i].object_size, cfg->pools[i].align,
                          cfg->pools[i].capacity, mb_os_mem_config()->page_size) == 0)
        start = start + d.section_size < start ? UINT64_MAX : start + d.section_size;
    }
    if (start > cfg->max_committed) {
      fmt_size(a, sizeof a, cfg->max_committed);
      fmt_size(b, sizeof b, start);
      return cfg_err(src, "limits.max_committed",
                     "%s is less than the %s the regions (slot tables included) and pools "
                     "commit at start",
                     a, b);
    }
  }
  if (cfg->pipe_admin_reserve >= cfg->pipe_max_connections)
    return cfg_err(src, "pipe.admin_reserve",
                   "%u must be less than pipe.max_connections (%u): the rest are for everyone",
                   (unsigned)cfg->pipe_admin_reserve, (unsigned)cfg->pipe_max_connections);
  return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

void mb__config_defaults(mb_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  apply_defaults(cfg, cfg_opts, NOPTS(cfg_opts));
  memcpy(cfg->regions, default_regions, sizeof default_regions);
  cfg->nregions = (int)NOPTS(default_regions);
}

/* The 1-based line and column (in characters, not bytes) of byte `off` of text. */
static void text_pos(const char *text, size_t off, unsigned *line, unsigned *col) {
  size_t i;
  *line = 1;
  *col = 1;
  for (i = 0; i < off; i++) {
    if (text[i] == '\n') {
      ++*line;
      *col = 1;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      ++*col;
    }
  }
}

/*
 * Error for a JSON syntax error at byte `off` of the `len` bytes of text: its line and
 * column, and the text there (or "unexpected end of the file").
 */
static int syntax_err(const char *src, const char *text, size_t len, size_t off) {
  char near[40];
  size_t i, n = 0;
  unsigned line, col;
  if (off > len)
    off = len;
  text_pos(text, off, &line, &col);
  if (off == len)
    return cfg_err(src, NULL, "line %u, column %u: JSON syntax error: unexpected end of the file",
                   line, col);
  for (i = off; i < len && n < 20 && text[i] != '\n' && text[i] != '\r'; i++)
    near[n++] = ((unsigned char)text[i] < 0x20) ? ' ' : text[i];
  near[n] = '\0';
  return cfg_err(src, NULL, "line %u, column %u: JSON syntax error near '%s'", line, col, near);
}

int mb__config_parse(mb_config_t *cfg, const char *text, size_t len, const char *source) {
  const char *src = source != NULL ? source : "<config>";
  const char *end = NULL, *nul;
  mb_config_t tmp;
  cJSON *root;
  char *buf, got[CFG_QUOTE_LEN + 32];
  size_t i;
  unsigned line, col;
  int rc;

  if (cfg == NULL || (text == NULL && len != 0) || len == (size_t)-1)
    return mb__errorf(MB_EINVAL, 0, "%s: parse config: bad arguments", src);
  if (len == 0)
    return cfg_err(src, NULL, "the file is empty");
  for (i = 0; i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n');
       i++)
    ;
  if (i == len)
    return cfg_err(src, NULL, "the file is empty (whitespace only)");
  /* cJSON would stop at a NUL (or skip it as whitespace): refuse it here. */
  nul = memchr(text, '\0', len);
  if (nul != NULL) {
    text_pos(text, (size_t)(nul - text), &line, &col);
    return cfg_err(src, NULL, "line %u, column %u: a NUL byte (is this a text file?)", line, col);
  }

  /* cJSON wants the NUL inside the length to accept the end with require_null_terminated. */
  buf = malloc(len + 1);
  if (buf == NULL)
    return mb__errorf(MB_ENOMEM, 0, "%s: parse config: %zu bytes", src, len + 1);
  memcpy(buf, text, len);
  buf[len] = '\0';
  root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
  if (root == NULL) {
    rc = syntax_err(src, buf, len, end != NULL && end >= buf ? (size_t)(end - buf) : 0);
    free(buf);
    return rc;
  }
  free(buf);
  if (!cJSON_IsObject(root)) {
    describe(got, sizeof got, root);
    cJSON_Delete(root);
    return cfg_err(src, NULL, "the top level must be an object ({...}), got %s", got);
  }
  mb__config_defaults(&tmp);
  rc = parse_root(src, root, &tmp);
  cJSON_Delete(root);
  if (rc == 0)
    memcpy(cfg, &tmp, sizeof tmp);
  return rc;
}

/*
 * Read the whole file at path into a malloc'ed buffer (at most CFG_FILE_MAX bytes), through
 * the platform layer (UTF-8 paths on Windows; a FIFO or directory is refused, not waited on).
 */
static int read_file(const char *path, char **out, size_t *outlen) {
  char why[256];
  long os;
  int rc = mb_os_read_file(path, CFG_FILE_MAX, out, outlen);
  if (rc == 0)
    return 0;
  if (rc == MB_ERANGE)
    return cfg_err(path, NULL, "the file is larger than %d bytes", CFG_FILE_MAX);
  if (rc == MB_ENOMEM)
    return mb__errorf(MB_ENOMEM, 0, "%s: read config: %s", path, mb_last_error());
  /* The OS's own words when it refused ("No such file or directory"), else the layer's
   * ("read 'PATH': it is a directory, not a regular file: ..."). */
  if ((os = mb_last_os_error()) != 0)
    mb_os_error_text(os, why, sizeof why);
  else
    snprintf(why, sizeof why, "%s", mb_last_error());
  return mb__errorf(MB_ECONFIG, os, "%s: cannot %s the file (%s)", path,
                    strncmp(mb_last_error(), "open ", 5) == 0 ? "open" : "read", why);
}

/* Is p absolute: "/x", "\\x", or a drive letter ("C:x")? The same on every OS. */
static int path_absolute(const char *p) {
  return p[0] == '/' || p[0] == '\\' ||
         (((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':');
}

int mb__config_resolve_path(const char *cfg_path, const char *path, char *out, size_t size) {
  const char *slash = strrchr(cfg_path, '/'), *back = strrchr(cfg_path, '\\');
  size_t dir = 0, n = strlen(path);
  if (back != NULL && (slash == NULL || back > slash))
    slash = back;
  if (slash != NULL && !path_absolute(path))
    dir = (size_t)(slash - cfg_path) + 1; /* with its separator */
  if (size == 0 || dir + n >= size) {
    if (size > 0)
      out[0] = '\0';
    return mb__errorf(MB_ENAMETOOLONG, 0,
                      "'%.200s' is too long once joined to the directory of '%.200s' (at most "
                      "%zu bytes in all)",
                      path, cfg_path, size ? size - 1 : 0);
  }
  memmove(out + dir, path, n + 1); /* out may be path itself */
  memcpy(out, cfg_path, dir);
  return 0;
}

/* Make the relative map paths of cfg relative to the directory of the config file `path`. */
static int resolve_map_paths(mb_config_t *cfg, const char *path) {
  char kp[CFG_PATH_LEN], q[CFG_QUOTE_LEN], was[MB_CONFIG_PATH_MAX];
  int i;
  for (i = 0; i < cfg->nmaps; i++) {
    char *p = cfg->maps[i].path;
    memcpy(was, p, sizeof was);
    if (mb__config_resolve_path(path, was, p, sizeof cfg->maps[i].path) != 0) {
      snprintf(kp, sizeof kp, "maps[%d].path", i);
      quote(q, sizeof q, was);
      return cfg_err(path, kp,
                     "%s is too long once joined to the config file's directory (at "
                     "most %zu bytes in all)",
                     q, sizeof cfg->maps[i].path - 1);
    }
  }
  return 0;
}

int mb__config_load(mb_config_t *cfg, const char *path) {
  mb_config_t tmp;
  char *text = NULL;
  size_t len = 0;
  int rc;
  if (cfg == NULL || path == NULL)
    return mb__errorf(MB_EINVAL, 0, "load config: no config or no path");
  if (strlen(path) >= MB_CONFIG_PATH_MAX)
    return mb__errorf(MB_ECONFIG, 0, "%.60s...: the path is longer than %d bytes", path,
                      MB_CONFIG_PATH_MAX - 1);
  if ((rc = read_file(path, &text, &len)) != 0)
    return rc;
  rc = mb__config_parse(&tmp, text, len, path);
  free(text);
  if (rc == 0)
    rc = resolve_map_paths(&tmp, path);
  if (rc == 0 && tmp.persist_dir[0] != '\0' &&
      mb__config_resolve_path(path, tmp.persist_dir, tmp.persist_dir, sizeof tmp.persist_dir) != 0)
    rc = cfg_err(path, "persist.dir",
                 "too long once joined to the config file's directory (at most %zu bytes in all)",
                 sizeof tmp.persist_dir - 1);
  if (rc == 0 && tmp.log_file[0] != '\0' &&
      mb__config_resolve_path(path, tmp.log_file, tmp.log_file, sizeof tmp.log_file) != 0)
    rc = cfg_err(path, "log.file",
                 "too long once joined to the config file's directory (at most %zu bytes in all)",
                 sizeof tmp.log_file - 1);
  if (rc == 0) {
    memset(tmp.path, 0, sizeof tmp.path);
    memcpy(tmp.path, path, strlen(path));
    memcpy(cfg, &tmp, sizeof tmp);
  }
  return rc;
}

/* The JSON value of option o in the struct at base; NULL when out of memory. */
static cJSON *opt_to_json(const opt_t *o, const void *base) {
  const char *s = (const char *)base + o->offset;
  uint64_t v;
  char num[32];
  size_t n = 0;
  switch (o->type) {
  case OPT_BOOL:
    return cJSON_CreateBool(load_num(base, o) != 0);
  case OPT_UINT:
  case OPT_SIZE:
    v = load_num(base, o);
    if (v <= CFG_PRINT_EXACT_MAX)
      return cJSON_CreateNumber((double)v);
    /* cJSON prints 15 significant digits: larger sizes become strings ("8192 TiB"). */
    fmt_size(num, sizeof num, v);
    return cJSON_CreateString(num);
  case OPT_MODE:
    snprintf(num, sizeof num, "0%03llo", (unsigned long long)load_num(base, o));
    return cJSON_CreateString(num);
  case OPT_ENUM:
    v = load_num(base, o);
    while (o->names[n] != NULL)
      n++;
    return v < n ? cJSON_CreateString(o->names[v]) : cJSON_CreateNull();
  case OPT_NAME:
  case OPT_TEXT:
    if (s[0] == '\0' && (o->flags & OPT_NULLABLE))
      return cJSON_CreateNull();
    return cJSON_CreateString(s);
  case OPT_NAMES: {
    cJSON *arr = cJSON_CreateArray(), *name;
    for (n = 0; arr != NULL && n < o->size / CFG_NAME_SLOT && s[n * CFG_NAME_SLOT] != '\0'; n++) {
      if ((name = cJSON_CreateString(s + n * CFG_NAME_SLOT)) == NULL ||
          !cJSON_AddItemToArray(arr, name)) {
        cJSON_Delete(name);
        cJSON_Delete(arr);
        return NULL;
      }
    }
    return arr;
  }
  }
  return cJSON_CreateNull();
}

/* Add the options of opts[] (stored at base) to obj, sections as nested objects. */
static int add_opts(cJSON *obj, const opt_t *opts, size_t n, const void *base) {
  size_t i;
  for (i = 0; i < n; i++) {
    cJSON *parent = obj, *v;
    if (opts[i].section != NULL) {
      parent = cJSON_GetObjectItemCaseSensitive(obj, opts[i].section);
      if (parent == NULL && (parent = cJSON_AddObjectToObject(obj, opts[i].section)) == NULL)
        return -1;
    }
    if ((v = opt_to_json(&opts[i], base)) == NULL)
      return -1;
    if (!cJSON_AddItemToObject(parent, opts[i].key, v)) {
      cJSON_Delete(v);
      return -1;
    }
  }
  return 0;
}

cJSON *mb__config_to_json(const mb_config_t *cfg) {
  cJSON *root = cJSON_CreateObject(), *arr, *r;
  const unsigned char *items;
  size_t k;
  int i, n;
  if (root == NULL)
    return NULL;
  if (add_opts(root, cfg_opts, NOPTS(cfg_opts), cfg) != 0)
    goto oom;
  for (k = 0; k < NOPTS(cfg_lists); k++) { /* every list, [] when empty */
    const list_t *l = &cfg_lists[k];
    items = (const unsigned char *)cfg + l->items_offset;
    memcpy(&n, (const char *)cfg + l->count_offset, sizeof n);
    if ((arr = cJSON_AddArrayToObject(root, l->key)) == NULL)
      goto oom;
    for (i = 0; i < n && i < l->max; i++) {
      if ((r = cJSON_CreateObject()) == NULL)
        goto oom;
      if (!cJSON_AddItemToArray(arr, r)) {
        cJSON_Delete(r);
        goto oom;
      }
      if (add_opts(r, l->opts, l->nopts, items + (size_t)i * l->item_size) != 0)
        goto oom;
    }
  }
  return root;
oom:
  cJSON_Delete(root);
  return NULL;
}

/* ---- checks against this machine (mb__config_check_host) ----------------------------------- */

/* a + b, UINT64_MAX when that does not fit (16 regions of 2^63 bytes do not). */
static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a + b < a ? UINT64_MAX : a + b;
}

/* v in the largest binary unit it reaches, one decimal: "17.0 GiB", "512.0 KiB", "100 B". */
static void fmt_approx(char *out, size_t size, uint64_t v) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double d = (double)v;
  int u = -1;
  while (d >= 1024.0 && u + 1 < (int)NOPTS(units)) {
    d /= 1024.0;
    u++;
  }
  if (u < 0)
    snprintf(out, size, "%llu B", (unsigned long long)v);
  else
    snprintf(out, size, "%.1f %s", d, units[u]);
}

/* Append one line ("what could not be checked, and why") to the caller's list of skips. */
static void skip_note(char *buf, size_t size, const char *fmt, ...) MB_PRINTF(3, 4);
static void skip_note(char *buf, size_t size, const char *fmt, ...) {
  char line[CFG_PATH_LEN + 2 * MB_CONFIG_PATH_MAX + 200];
  va_list ap;
  if (buf == NULL || size == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  append(buf, size, line);
  append(buf, size, "\n");
}

/* The directory part of `path` into out: "/a" of "/a/b", "/" of "/b", "C:\" of "C:\b", "." of
 * "b". Trailing separators of path are ignored ("/a/b/" gives "/a"). */
static void parent_dir(const char *path, char *out, size_t size) {
  size_t n = strlen(path), cut;
  while (n > 1 && (path[n - 1] == '/' || path[n - 1] == '\\'))
    n--;
  for (cut = n; cut > 0 && path[cut - 1] != '/' && path[cut - 1] != '\\'; cut--)
    ;
  if (cut == 0) {
    snprintf(out, size, ".");
    return;
  }
  cut--; /* at the separator */
  if (cut == 0 || (cut == 2 && path[1] == ':'))
    cut++; /* keep the root's separator */
  snprintf(out, size, "%.*s", (int)cut, path);
}

/* The OS's words for the last failure when it gave a code, else the layer's message. */
static const char *last_why(char *buf, size_t size) {
  long os = mb_last_os_error();
  if (os != 0)
    return mb_os_error_text(os, buf, size);
  snprintf(buf, size, "%s", mb_last_error());
  return buf;
}

/*
 * `key` names a path the broker creates or writes: a directory it creates if missing
 * (want_dir: persist.dir) or a file it creates or appends to, never through a link (log.file).
 * What is there must be of that kind, or be creatable: its parent a directory that exists.
 * Whether this user may write there is not the broker's question (a service runs as another
 * account): a refusal for lack of permission is noted in `skipped`, not an error; so is
 * everything when `start` is set (the start itself then does the real thing).
 */
static int check_target(const char *src, const char *key, const char *path, int want_dir, int start,
                        char *skipped, size_t ssize) {
  char parent[MB_CONFIG_PATH_MAX], why[256];
  const char *what = want_dir ? "directory" : "file";
  mb_os_path_kind_t k, pk;
  int rc = mb_os_path_kind(path, want_dir, &k);
  if (rc == MB_EACCES) {
    skip_note(skipped, ssize, "%s '%s': not checked: this user may not look there (%s)", key, path,
              last_why(why, sizeof why));
    return 0;
  }
  if (rc != 0)
    return mb__errorf(MB_ECONFIG, mb_last_os_error(), "%s: %s '%s': %s", src, key, path,
                      last_why(why, sizeof why));
  switch (k) {
  case MB_OS_PATH_DIR:
  case MB_OS_PATH_FILE:
    if ((k == MB_OS_PATH_DIR) != want_dir)
      return mb__errorf(MB_ECONFIG, 0, "%s: %s '%s': is a %s, not a %s", src, key, path,
                        want_dir ? "file" : "directory", what);
    if (!start && mb_os_path_writable(path) != 0)
      skip_note(skipped, ssize,
                "%s '%s': not checked whether the broker may write it: this user may not (%s)", key,
                path, last_why(why, sizeof why));
    return 0;
  case MB_OS_PATH_LINK:
    return mb__errorf(MB_ECONFIG, 0,
                      "%s: %s '%s': is a symbolic link (the broker writes its log only to a "
                      "regular file, never through a link)",
                      src, key, path);
  case MB_OS_PATH_OTHER:
    return mb__errorf(MB_ECONFIG, 0, "%s: %s '%s': is not a %s (a FIFO, socket or device)", src,
                      key, path, want_dir ? "directory" : "regular file");
  case MB_OS_PATH_NONE:
    break;
  }
  parent_dir(path, parent, sizeof parent);
  rc = mb_os_path_kind(parent, 1, &pk);
  if (rc == MB_EACCES) {
    skip_note(skipped, ssize, "%s '%s': not checked: this user may not look into '%s' (%s)", key,
              path, parent, last_why(why, sizeof why));
    return 0;
  }
  if (rc != 0)
    return mb__errorf(MB_ECONFIG, mb_last_os_error(), "%s: %s '%s': parent directory '%s': %s", src,
                      key, path, parent, last_why(why, sizeof why));
  if (pk == MB_OS_PATH_NONE)
    return mb__errorf(MB_ECONFIG, 0, "%s: %s '%s': parent directory '%s' does not exist", src, key,
                      path, parent);
  if (pk != MB_OS_PATH_DIR)
    return mb__errorf(MB_ECONFIG, 0, "%s: %s '%s': parent '%s' is not a directory", src, key, path,
                      parent);
  if (!start && mb_os_path_writable(parent) != 0)
    skip_note(skipped, ssize,
              "%s '%s': not checked whether the broker may create it: this user may not write "
              "'%s' (%s)",
              key, path, parent, last_why(why, sizeof why));
  return 0;
}

/* The group `key` names must exist (a start gives its objects to it). */
static int check_group(const char *src, const char *key, const char *group, int start,
                       char *skipped, size_t ssize) {
  int rc;
  if (group[0] == '\0')
    return 0;
  if ((rc = mb_os_group_exists(group)) != 0)
    return mb__errorf(MB_ECONFIG, rc == MB_ENOENT ? 0 : mb_last_os_error(), "%s: %s '%s': %s", src,
                      key, group,
                      rc == MB_ENOENT ? "no such group on this machine" : mb_last_error());
  /* This user may give its objects to the group (root, a member; on Windows anyone): so may
   * the broker when it runs as this user, and there is nothing left to check. */
  if (!start && mb_os_group_may_give(group) != 0)
    skip_note(skipped, ssize,
              "%s '%s': the group exists; whether the broker may give its objects to it (a "
              "member of it, or root) is checked at start: %s",
              key, group, mb_last_error());
  return 0;
}

/* Each region's slot table, then all of them, against CFG_TABLE_SHARE_PCT of physical
 * memory (they are committed at start, whatever the region's commit mode). */
static int check_tables(const char *src, const mb_config_t *cfg, char *skipped, size_t ssize) {
  mb_os_memstatus_t ms;
  uint64_t total = 0, cap;
  char need[48], phys[48], kp[CFG_PATH_LEN];
  int i;
  for (i = 0; i < cfg->nregions; i++)
    total = sat_add(total, mb__config_slot_table(&cfg->regions[i]));
  if (total == 0)
    return 0;
  if (mb_os_memstatus(&ms) != 0 || ms.total == 0) {
    skip_note(skipped, ssize, "slot tables: not checked against physical memory: %s",
              mb_last_error());
    return 0;
  }
  cap = ms.total / 100 * MB_CONFIG_TABLE_SHARE_PCT;
  fmt_approx(phys, sizeof phys, ms.total);
  for (i = 0; i < cfg->nregions; i++) {
    uint64_t t = mb__config_slot_table(&cfg->regions[i]);
    if (t > cap) {
      fmt_approx(need, sizeof need, t);
      snprintf(kp, sizeof kp, "regions[%d]", i);
      return cfg_err(src, kp,
                     "region '%s': slot tables need %s, more than %d %% of this machine's %s "
                     "(use larger slots or a smaller region)",
                     cfg->regions[i].name, need, MB_CONFIG_TABLE_SHARE_PCT, phys);
    }
  }
  if (total > cap) {
    fmt_approx(need, sizeof need, total);
    return cfg_err(src, "regions",
                   "slot tables need %s in all, more than %d %% of this machine's %s (use "
                   "larger slots or smaller regions)",
                   need, MB_CONFIG_TABLE_SHARE_PCT, phys);
  }
  return 0;
}

/* Read and check map i as a start loads it; its section's size into *bytes. A file this user
 * may not read (the broker's account may) is not an error: it is noted in `skipped`, and
 * *bytes is 0 (its size is not counted in what a start commits). */
static int check_map(const char *src, const mb_config_t *cfg, int i, uint64_t *bytes, char *skipped,
                     size_t ssize) {
  const mb_map_cfg_t *m = &cfg->maps[i];
  char why[256], *data = NULL;
  size_t len = 0;
  int rc = mb_os_read_file(m->path, mb__gmap_image_size(UINT32_MAX, UINT32_MAX), &data, &len);
  *bytes = 0;
  if (rc == MB_EACCES) {
    skip_note(skipped, ssize,
              "maps[%d].path '%s': not checked: this user may not read it (%s); its size is not "
              "counted in what a start commits",
              i, m->path, last_why(why, sizeof why));
    return 0;
  }
  if (rc != 0)
    return mb__errorf(MB_ECONFIG, mb_last_os_error(), "%s: maps[%d].path '%s': %s", src, i, m->path,
                      mb_last_os_error() != 0 ? last_why(why, sizeof why) : mb_last_error());
  rc = mb_gmap_check(data, len, m->path);
  free(data);
  if (rc != 0)
    return mb__errorf(MB_ECONFIG, 0, "%s: maps[%d].path '%s': not a valid GMAP file: %s", src, i,
                      m->path, mb_last_error());
  *bytes = mb__round_up(len, mb_os_mem_config()->page_size);
  return 0;
}

/*
 * What a start commits against what this machine can give (mb_os_commit_caps): physical
 * memory, the OS commit limit where there is one, the shared-memory file system's size; the
 * smallest of them is the cap. A region committed at start that alone passes it is named
 * (regions[i]); else `all` (control block, regions committed at
 * start, slot tables, pools, maps) passing it is refused as a whole. These are the machine's
 * capacities, not what is free now: a start may still find less (other brokers, other
 * programs) and then refuses with the commit's own error. Slot tables are held, besides, to
 * MB_CONFIG_TABLE_SHARE_PCT % of physical memory on their own (check_tables).
 */
static int check_capacity(const char *src, const mb_config_t *cfg, uint64_t all, char *skipped,
                          size_t ssize) {
  mb_os_commit_caps_t caps;
  uint64_t cap;
  char what[160], capn[48], need[48], kp[CFG_PATH_LEN];
  int i;
  if (mb_os_commit_caps(&caps) != 0 || caps.physical == 0) {
    skip_note(skipped, ssize, "what a start commits: not checked against this machine: %s",
              mb_last_error());
    return 0;
  }
  cap = caps.physical;
  fmt_approx(capn, sizeof capn, cap);
  snprintf(what, sizeof what, "this machine's physical memory, %s", capn);
  if (caps.commit_limit < cap) {
    cap = caps.commit_limit;
    fmt_approx(capn, sizeof capn, cap);
    snprintf(what, sizeof what, "%s, %s", caps.commit_what, capn);
  }
  if (caps.section_space < cap) {
    cap = caps.section_space;
    fmt_approx(capn, sizeof capn, cap);
    snprintf(what, sizeof what, "%s, %s", caps.section_what, capn);
  }
  if (all <= cap)
    return 0;
  for (i = 0; i < cfg->nregions; i++) {
    const mb_region_cfg_t *r = &cfg->regions[i];
    if (!r->lazy && r->size > cap) {
      fmt_approx(need, sizeof need, r->size);
      snprintf(kp, sizeof kp, "regions[%d]", i);
      return cfg_err(src, kp,
                     "region '%s' is committed at start: %s, more than %s (use \"commit\": "
                     "\"lazy\" or a smaller region)",
                     r->name, need, what);
    }
  }
  fmt_approx(need, sizeof need, all);
  return cfg_err(src, "regions",
                 "a start commits %s (control block, regions committed at start, slot tables, "
                 "pools, maps), more than %s",
                 need, what);
}

int mb__config_check_log_file(const mb_config_t *cfg) {
  if (cfg->log_file[0] == '\0')
    return 0;
  return check_target(cfg->path[0] ? cfg->path : "<config>", "log.file", cfg->log_file, 0, 0, NULL,
                      0);
}

int mb__config_check_host(const mb_config_t *cfg, int flags, char *skipped, size_t size) {
  const char *src = cfg->path[0] ? cfg->path : "<config>";
  int start = (flags & MB_CONFIG_CHECK_START) != 0, rc, i;
  uint64_t ctl, regions = 0, tables = 0, pools = 0, maps = 0, rounding = 0, all;
  size_t lp = mb_os_mem_config()->large_page_size, pg = mb_os_mem_config()->page_size;
  char a[48], b[48], c[48], d[48], e[48], f[48], g[48], h[48], lps[48], rnd[200] = "";

  if (skipped != NULL && size > 0)
    skipped[0] = '\0';
  if ((rc = check_group(src, "sections.group", cfg->section_group, start, skipped, size)) != 0 ||
      (rc = check_group(src, "pipe.operators_group", cfg->pipe_operators_group, start, skipped,
                        size)) != 0)
    return rc;
  if (cfg->persist_dir[0] != '\0' &&
      (rc = check_target(src, "persist.dir", cfg->persist_dir, 1, start, skipped, size)) != 0)
    return rc;
  /* At start the service glue has opened the log already (or logs to stderr). */
  if (!start && cfg->log_file[0] != '\0' &&
      (rc = check_target(src, "log.file", cfg->log_file, 0, start, skipped, size)) != 0)
    return rc;
  if ((rc = check_tables(src, cfg, skipped, size)) != 0)
    return rc;
  if (start)
    return 0; /* the start loads the maps and checks the limit on what it committed */

  /* What the start commits before it is ready, as mb__broker_start counts it. */
  ctl = mb__round_up(sizeof(mb_state_t), mb_os_mem_config()->alloc_granularity);
  for (i = 0; i < cfg->nregions; i++) {
    regions = sat_add(regions, cfg->regions[i].lazy ? 0 : cfg->regions[i].size);
    tables = sat_add(tables, mb__config_slot_table(&cfg->regions[i]));
    /* A large-page region is committed in whole large pages where the host has them: the
     * worst case, so a config this passes is not refused at start on a host that has them. */
    if (cfg->regions[i].large_pages && !cfg->regions[i].lazy && lp > pg) {
      uint64_t sec =
          mb__round_up(sat_add(cfg->regions[i].size, mb__config_slot_table(&cfg->regions[i])), pg);
      rounding = sat_add(rounding, mb__round_up(sec, lp) - sec);
    }
  }
  for (i = 0; i < cfg->npools; i++) {
    mb_pool_desc_t pd;
    memset(&pd, 0, sizeof pd);
    if (mb__pool_layout(&pd, cfg->pools[i].object_size, cfg->pools[i].align, cfg->pools[i].capacity,
                        mb_os_mem_config()->page_size) == 0)
      pools = sat_add(pools, pd.section_size);
  }
  for (i = 0; i < cfg->nmaps; i++) {
    uint64_t bytes = 0;
    if ((rc = check_map(src, cfg, i, &bytes, skipped, size)) != 0)
      return rc;
    maps = sat_add(maps, bytes);
  }
  all = sat_add(sat_add(sat_add(ctl, regions), sat_add(tables, pools)), sat_add(maps, rounding));
  if ((rc = check_capacity(src, cfg, all, skipped, size)) != 0)
    return rc;
  if (cfg->max_committed != 0 && all > cfg->max_committed) {
    if (rounding != 0) {
      fmt_approx(h, sizeof h, rounding);
      fmt_size(lps, sizeof lps, lp);
      snprintf(rnd, sizeof rnd,
               ", large-page rounding %s: the large_pages regions rounded up to whole %s pages", h,
               lps);
    }
    fmt_size(a, sizeof a, cfg->max_committed);
    fmt_approx(b, sizeof b, all);
    fmt_approx(c, sizeof c, ctl);
    fmt_approx(d, sizeof d, regions);
    fmt_approx(e, sizeof e, tables);
    fmt_approx(f, sizeof f, pools);
    fmt_approx(g, sizeof g, maps);
    return cfg_err(src, "limits.max_committed",
                   "%s is less than the %s a start commits (control block %s, regions %s, slot "
                   "tables %s, pools %s, maps %s%s)",
                   a, b, c, d, e, f, g, rnd);
  }
  return 0;
}

const char *mb__log_level_name(mb_log_level_t l) {
  if ((unsigned)l < NOPTS(log_level_names) - 1)
    return log_level_names[l];
  return "unknown";
}
