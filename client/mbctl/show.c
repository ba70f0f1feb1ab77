/*
 * show.c - mbctl's human output: one printer per command that wants one (the table in
 * print_result; a command without one prints its result as JSON), the tables they share
 * (status, regions, clients, pools, heaps, maps), the watch line, and the formatting helpers.
 * Printing only: nothing here talks to the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mbctl.h"

/* ---- small formatting helpers ------------------------------------------------------------ */

static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/*
 * The broker's text (a status message, a client name, a map path, an error message) for a
 * terminal: \n, \r, \t as such, other C0 controls and DEL as \xNN, C1 controls (U+0080..U+009F)
 * as \u00NN, bytes that are not valid UTF-8 (mb__utf8_invalid, the project's one rule) as \xNN;
 * everything else as is. Into one of 16 rotating buffers, so a printf can use several; text
 * that would not fit ends in "...".
 */
const char *mbctl_text(const char *s) {
  static char bufs[16][MBCTL_TEXT_MAX];
  static int next;
  char *b = bufs[next++ & 15], *o = b, *end = b + MBCTL_TEXT_MAX - 4;
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), i = 0, len;
  while (i < n) {
    unsigned c = p[i];
    char esc[8];
    len = 1;
    if (c >= 0x80 && mb__utf8_invalid(s + i, n - i, 0) > 0) /* a whole valid character */
      len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c == '\n' || c == '\r' || c == '\t')
      snprintf(esc, sizeof esc, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
    else if (c < 0x20 || c == 0x7F || (c >= 0x80 && len == 1))
      snprintf(esc, sizeof esc, "\\x%02x", c);
    else if (c == 0xC2 && p[i + 1] < 0xA0) /* C1 control */
      snprintf(esc, sizeof esc, "\\u%04x", (unsigned)p[i + 1]);
    else
      esc[0] = '\0';
    if (esc[0] != '\0') {
      size_t k = strlen(esc);
      if (o + k > end)
        break;
      memcpy(o, esc, k);
      o += k;
    } else {
      if (o + len > end)
        break;
      memcpy(o, s + i, len);
      o += len;
    }
    i += len;
  }
  if (i < n)
    memcpy(o, "...", 3), o += 3;
  *o = '\0';
  return b;
}

/* A string member, escaped for the terminal (mbctl_text); "-" when there is none. */
static const char *str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? mbctl_text(v->valuestring) : "-";
}

/* "64.0 MiB" - into one of four rotating buffers, so a printf can use several. */
static const char *bytes(double v) {
  static char bufs[4][32];
  static int next;
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  char *b = bufs[next++ & 3];
  int u = 0;
  if (v < 0) {
    snprintf(b, 32, "-");
    return b;
  }
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(b, 32, "%.0f B", v);
  else
    snprintf(b, 32, "%.1f %s", v, units[u]);
  return b;
}

/* "3m 05s" - into one of four rotating buffers, like bytes(). */
static const char *duration(double ms) {
  static char bufs[4][48];
  static int next;
  char *b = bufs[next++ & 3];
  unsigned long long s = ms < 0 ? 0 : (unsigned long long)(ms / 1000);
  if (s >= 86400)
    snprintf(b, 48, "%llud %02lluh %02llum", s / 86400, s / 3600 % 24, s / 60 % 60);
  else if (s >= 3600)
    snprintf(b, 48, "%lluh %02llum %02llus", s / 3600, s / 60 % 60, s % 60);
  else if (s >= 60)
    snprintf(b, 48, "%llum %02llus", s / 60, s % 60);
  else
    snprintf(b, 48, "%.1fs", ms < 0 ? 0 : ms / 1000);
  return b;
}

/* ---- human output ------------------------------------------------------------------------ */

static void print_server(const cJSON *s) {
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(s, "config_path");
  printf("membroker   instance '%s', %s\n", str(s, "instance"), str(s, "status"));
  printf("message     \"%s\"\n", str(s, "message"));
  printf("game        %.0f players, %.0f NPCs\n", num(s, "players"), num(s, "npcs"));
  printf("uptime      %s (pid %.0f, generation %.0f, run %s)\n", duration(num(s, "uptime_ms")),
         num(s, "pid"), num(s, "generation"), str(s, "run_id"));
  printf("version     %s (%s)\n", str(s, "version"), str(s, "build"));
  printf("config      %s\n",
         cJSON_IsString(path) ? mbctl_text(path->valuestring) : "built-in defaults");
}

static void print_memory(const cJSON *m) {
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(m, "limit");
  printf("committed   %s (peak %s, limit %s)\n", bytes(num(m, "committed")),
         bytes(num(m, "committed_peak")),
         cJSON_IsNumber(limit) ? bytes(limit->valuedouble) : "none");
  printf("resident    %s (broker process)\n", bytes(num(m, "rss")));
  if (num(m, "maps") > 0)
    printf("maps        %.0f loaded, %s\n", num(m, "maps"), bytes(num(m, "map_bytes")));
  printf("system      %s total, %s available\n", bytes(num(m, "system_total")),
         bytes(num(m, "system_available")));
}

/* The columns of the statistics tables come from the lists (stats.h): an entry with a column
 * shows under its header, in list order, each after a space. */
static const mb_stat_info_t region_stats[] = {MB_REGION_STATS(MB_STAT_INFO)};
static const mb_stat_info_t pool_stats[] = {MB_POOL_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mem_stats[] = {MB_MEM_STATS(MB_STAT_INFO)};
#define NSTATS(a) (sizeof(a) / sizeof((a)[0]))

static void print_stat_headers(const mb_stat_info_t *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (s[i].col != MB_COL_NONE)
      printf(" %*s", s[i].width, s[i].header);
  printf("\n");
}

/* The cells of object o for the columns of list s. */
static void print_stat_cells(const cJSON *o, const mb_stat_info_t *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    char cell[48];
    double v = num(o, s[i].key);
    switch (s[i].col) {
    case MB_COL_NONE:
      continue;
    case MB_COL_BYTES:
      snprintf(cell, sizeof cell, "%s", bytes(v));
      break;
    case MB_COL_BYTES0:
      snprintf(cell, sizeof cell, "%s", v > 0 ? bytes(v) : "-");
      break;
    case MB_COL_YESNO:
      snprintf(cell, sizeof cell, "%s",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, s[i].key)) ? "yes" : "no");
      break;
    case MB_COL_OF: /* over the figure listed just before */
      if (i > 0 && num(o, s[i - 1].key) > 0)
        snprintf(cell, sizeof cell, "%.0f/%.0f", v, num(o, s[i - 1].key));
      else
        snprintf(cell, sizeof cell, "-");
      break;
    default:
      snprintf(cell, sizeof cell, "%.0f", v);
      break;
    }
    printf(" %*s", s[i].width, cell);
  }
  printf("\n");
}

static void print_regions(const cJSON *arr) {
  const cJSON *r;
  printf("%-12s", "REGION");
  print_stat_headers(region_stats, NSTATS(region_stats));
  cJSON_ArrayForEach(r, arr) {
    printf("%-12s", str(r, "name"));
    print_stat_cells(r, region_stats, NSTATS(region_stats));
  }
}

/* The pool table; with no pools, the header and a line that says so. */
static void print_pools(const cJSON *arr) {
  const cJSON *p;
  printf("%-12s", "POOL");
  print_stat_headers(pool_stats, NSTATS(pool_stats));
  if (cJSON_GetArraySize(arr) == 0)
    printf("no pools configured\n");
  cJSON_ArrayForEach(p, arr) {
    printf("%-12s", str(p, "name"));
    print_stat_cells(p, pool_stats, NSTATS(pool_stats));
  }
}

/* The private pools and heaps table, a row per pool or heap; with none, the header and a line
 * that says so. */
static void print_heaps(const cJSON *arr) {
  const cJSON *c, *e;
  int rows = 0;
  printf("%-16s %-16s %-4s", "CLIENT", "NAME", "KIND");
  print_stat_headers(mem_stats, NSTATS(mem_stats));
  cJSON_ArrayForEach(c, arr) {
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(c, "entries")) {
      printf("%-16s %-16s %-4s", str(c, "client"), str(e, "name"), str(e, "kind"));
      print_stat_cells(e, mem_stats, NSTATS(mem_stats));
      rows++;
    }
  }
  if (rows == 0)
    printf("no private pools or heaps published\n");
}

/* The map table; with no maps, the header and a line that says so. */
static void print_maps(const cJSON *arr) {
  const cJSON *m;
  printf("%-12s %10s %7s %7s %9s %10s %-16s %10s  %s\n", "MAP", "SIZE", "WIDTH", "HEIGHT",
         "OBJECTS", "SEQ", "CHECKSUM", "LOADED", "PATH");
  if (cJSON_GetArraySize(arr) == 0)
    printf("no maps loaded\n");
  cJSON_ArrayForEach(m, arr) {
    char ago[48];
    snprintf(ago, sizeof ago, "%s ago", duration(num(m, "loaded_ms_ago")));
    printf("%-12s %10s %7.0f %7.0f %9.0f %10.0f %-16s %10s  %s\n", str(m, "name"),
           bytes(num(m, "size")), num(m, "width"), num(m, "height"), num(m, "objects"),
           num(m, "seq"), str(m, "checksum"), ago, str(m, "path"));
  }
}

static void print_clients(const cJSON *c) {
  const cJSON *table = cJSON_GetObjectItemCaseSensitive(c, "table"), *e;
  double hb_ms = num(c, "heartbeat_timeout_ms");
  char hung[32] = "";
  if (num(c, "hung") > 0)
    snprintf(hung, sizeof hung, ", %.0f hung", num(c, "hung"));
  printf("clients     %.0f attached%s (at most %.0f; heartbeat timeout %s, grace period %s)\n",
         num(c, "attached"), hung, num(c, "max"), hb_ms > 0 ? duration(hb_ms) : "off",
         duration(num(c, "grace_period_ms")));
  if (cJSON_GetArraySize(table) == 0)
    return;
  printf("%5s %-9s %8s %-24s %10s %6s %10s %8s  %s\n", "INDEX", "STATE", "PID", "NAME", "HEARTBEAT",
         "SLOTS", "PRIVATE", "RESTARTS", "NOTE");
  cJSON_ArrayForEach(e, table) {
    const cJSON *priv = cJSON_GetObjectItemCaseSensitive(e, "private");
    double hb = num(e, "heartbeat_age_ms");
    int is_hung = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "hung"));
    char age[32] = "-", note[96] = "", mine[16] = "-";
    if (hb >= 0)
      snprintf(age, sizeof age, "%s ago", duration(hb));
    /* committed bytes of its private pools and heaps; '-' when it shows none */
    if (num(priv, "pools") + num(priv, "heaps") > 0)
      snprintf(mine, sizeof mine, "%s", bytes(num(priv, "committed")));
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "dead_reason")))
      snprintf(note, sizeof note, "%s; slots freed in %s unless it comes back",
               str(e, "dead_reason"), duration(num(e, "freed_in_ms")));
    else if (is_hung)
      snprintf(note, sizeof note, "hung for %s: all kept; dead once its process exits",
               duration(num(e, "hung_for_ms")));
    printf("%5.0f %-9s %8.0f %-24s %10s %6.0f %10s %8.0f  %s\n", num(e, "index"),
           is_hung ? "hung" : str(e, "state"), num(e, "pid"), str(e, "name"), age,
           num(e, "slots_held"), mine, num(e, "restarts"), note);
  }
}

static void print_status(const cJSON *res) {
  const cJSON *s, *pools = cJSON_GetObjectItemCaseSensitive(res, "pools");
  int first = 1;
  if ((s = cJSON_GetObjectItemCaseSensitive(res, "server")) != NULL) {
    print_server(s);
    first = 0;
  }
  if ((s = cJSON_GetObjectItemCaseSensitive(res, "memory")) != NULL) {
    print_memory(s);
    first = 0;
  }
  if ((s = cJSON_GetObjectItemCaseSensitive(res, "clients")) != NULL) {
    print_clients(s);
    first = 0;
  }
  if (pools != NULL && cJSON_GetArraySize(pools) == 0) {
    printf("pools       none\n");
    first = 0;
  }
  if ((s = cJSON_GetObjectItemCaseSensitive(res, "regions")) != NULL) {
    if (!first)
      printf("\n");
    print_regions(s);
    first = 0;
  }
  /* The pool table follows the region table. */
  if (cJSON_GetArraySize(pools) > 0) {
    if (!first)
      printf("\n");
    print_pools(pools);
  }
}

void print_json(const cJSON *v) {
  char *text = cJSON_Print(v);
  if (text) {
    printf("%s\n", text);
    cJSON_free(text);
  }
}

/* ---- one printer per command ------------------------------------------------------------ */

static void show_ping(const cJSON *res, const char *instance) {
  (void)instance;
  printf("%s\n", cJSON_IsString(res) ? mbctl_text(res->valuestring) : "pong");
}

static void show_version(const cJSON *res, const char *instance) {
  (void)instance;
  printf("membroker %s (layout %.0f, %s)\n", str(res, "version"), num(res, "layout_version"),
         str(res, "build"));
}

static void show_status(const cJSON *res, const char *instance) {
  (void)instance;
  print_status(res);
}

static void show_regions(const cJSON *res, const char *instance) {
  (void)instance;
  print_regions(res);
}

static void show_clients(const cJSON *res, const char *instance) {
  (void)instance;
  print_clients(res);
}

static void show_pools(const cJSON *res, const char *instance) {
  (void)instance;
  print_pools(res);
}

static void show_heaps(const cJSON *res, const char *instance) {
  (void)instance;
  print_heaps(res);
}

static void show_maps(const cJSON *res, const char *instance) {
  (void)instance;
  print_maps(res);
}

static void show_map_load(const cJSON *res, const char *instance) {
  (void)instance;
  printf("map '%s' loaded from %s: %s, %.0f x %.0f tiles, %.0f objects (seq %.0f, checksum "
         "%s)\n",
         str(res, "name"), str(res, "path"), bytes(num(res, "size")), num(res, "width"),
         num(res, "height"), num(res, "objects"), num(res, "seq"), str(res, "checksum"));
}

static void show_map_unload(const cJSON *res, const char *instance) {
  (void)instance;
  printf("map '%s' unloaded\n", str(res, "name"));
}

static void show_set_status(const cJSON *res, const char *instance) {
  (void)instance;
  printf("server status: %s (was %s)\n", str(res, "status"), str(res, "previous"));
}

static void show_set_message(const cJSON *res, const char *instance) {
  (void)instance;
  printf("status message: \"%s\"\n", str(res, "message"));
}

static void show_set_counter(const cJSON *res, const char *instance) {
  (void)instance;
  printf("%s: %.0f (was %.0f)\n", str(res, "counter"), num(res, "value"), num(res, "previous"));
}

static void show_compact(const cJSON *res, const char *instance) {
  (void)instance;
  if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res, "supported")))
    printf("compact: not supported on this platform (nothing freed)\n");
  else
    printf("compact: %s given back\n", bytes(num(res, "freed_bytes")));
}

static void show_shutdown(const cJSON *res, const char *instance) {
  (void)res;
  printf("membroker '%s' is stopping\n", instance);
}

/* player: where the player is, who holds it, then the slot's first bytes as a hex dump
 * (offset, 16 bytes, their printable ASCII). */
static void show_player(const cJSON *res, const char *instance) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(res, "client");
  const char *hex = str(res, "hex");
  size_t n = strlen(hex) / 2, i, j;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "player");
  (void)instance;
  if (cJSON_IsString(id)) /* above 2^53: the broker sends it as a decimal string */
    printf("player      %s\n", mbctl_text(id->valuestring));
  else
    printf("player      %.0f\n", num(res, "player"));
  printf("slot        %.0f of region '%s' (offset %.0f, %.0f bytes)\n", num(res, "slot"),
         str(res, "region"), num(res, "offset"), num(res, "slot_size"));
  if (cJSON_IsObject(c))
    printf("held by     client %.0f '%s' (pid %.0f, %s)\n", num(c, "index"), str(c, "name"),
           num(c, "pid"), str(c, "state"));
  else
    printf("held by     nobody the client table names (a forged owner)\n");
  if (strcmp(hex, "-") == 0 || n == 0) {
    printf("bytes       %s\n", num(res, "slot_size") > 0 && strcmp(hex, "") == 0
                                   ? "none shown (--bytes 0, or the slot is changing right now)"
                                   : "none shown");
    return;
  }
  printf("bytes       the first %zu of %.0f\n", n, num(res, "slot_size"));
  for (i = 0; i < n; i += 16) {
    char ascii[17];
    printf("%08zx ", i);
    for (j = 0; j < 16; j++) {
      unsigned v = 0;
      if (i + j < n && sscanf(hex + 2 * (i + j), "%2x", &v) == 1) {
        printf("%s%02x", j == 8 ? "  " : " ", v);
        ascii[j] = v >= 0x20 && v < 0x7f ? (char)v : '.';
      } else {
        printf("%s  ", j == 8 ? "   " : " ");
        ascii[j] = '\0';
      }
    }
    ascii[16] = '\0';
    printf("  |%s|\n", ascii);
  }
}

static void show_evict(const cJSON *res, const char *instance) {
  (void)instance;
  printf("evicted client %.0f '%s' (pid %.0f, dead: %s%s): %.0f slot%s and %.0f pool object%s "
         "freed\n",
         num(res, "index"), str(res, "client"), num(res, "pid"), str(res, "dead_reason"),
         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "marked")) ? ", found dead now" : "",
         num(res, "slots_freed"), num(res, "slots_freed") == 1 ? "" : "s",
         num(res, "pool_objects_freed"), num(res, "pool_objects_freed") == 1 ? "" : "s");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "pending")))
    printf("a page of another of its slots was held by another process: the broker's next sweep "
           "frees the rest\n");
}

static void show_save(const cJSON *res, const char *instance) {
  const cJSON *f;
  (void)instance;
  printf("saved: flush %.0f to %s, %d files, %.0f bytes in %.1f ms\n", num(res, "flush"),
         str(res, "dir"), cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "files")),
         num(res, "bytes"), num(res, "duration_ms"));
  cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(res, "files"))
      printf("  %12.0f  %s\n", num(f, "bytes"), str(f, "file"));
}

/* One command of the broker's help answer: its synopsis (from mbctl's table when mbctl knows
 * it, else its name and argument names), its help line, and with `detail` its arguments. */
static void show_help_entry(const cJSON *c, int detail) {
  const mbctl_cmd_t *known = mbctl_command(str(c, "name"));
  const int admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "admin"));
  char syn[256];
  const cJSON *a;
  if (known != NULL) {
    mbctl_synopsis(known, syn, sizeof syn);
  } else {
    size_t at = (size_t)snprintf(syn, sizeof syn, "%s", str(c, "name"));
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(c, "args")) {
      if (cJSON_IsString(a) && at < sizeof syn)
        at += (size_t)snprintf(syn + at, sizeof syn - at, " [%s]", mbctl_text(a->valuestring));
    }
  }
  if (!detail) {
    printf("  %-28s %s%s\n", syn, str(c, "help"), admin ? " (admin)" : "");
    return;
  }
  printf("%s%s\n  %s\n", syn, admin ? "   (administrators only)" : "", str(c, "help"));
  if (known != NULL && known->args[0].name != NULL) {
    const mb_cmd_arg_t *arg;
    printf("arguments:\n");
    for (arg = known->args; arg->name; arg++) {
      printf("  %-12s %s, %s", arg->name, mbctl_arg_type_name(arg->type),
             arg->required ? "required" : "optional");
      if (arg->values != NULL)
        printf(": %s", arg->values);
      if (strncmp(arg->cli, "--", 2) == 0)
        printf(" (mbctl %s)", arg->cli);
      printf("\n");
    }
  }
}

/* help -> every command, one line each; help COMMAND -> that one with its arguments. */
static void show_help(const cJSON *res, const char *instance) {
  const cJSON *c;
  (void)instance;
  if (cJSON_IsObject(res)) {
    show_help_entry(res, 1);
    return;
  }
  cJSON_ArrayForEach(c, res) {
    show_help_entry(c, 0);
  }
}

/* metrics: the exposition text as the broker rendered it, byte for byte (a format for
 * scrapers, like --json: not escaped; the broker escapes its label values). */
static void show_metrics(const cJSON *res, const char *instance) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(res, "text");
  (void)instance;
  fputs(cJSON_IsString(t) ? t->valuestring : "-", stdout);
}

/* The printers, by command; a command without one prints its result as JSON. */
static const struct {
  const char *cmd;
  void (*show)(const cJSON *res, const char *instance);
} printers[] = {
    {"ping", show_ping},
    {"version", show_version},
    {"status", show_status},
    {"regions", show_regions},
    {"clients", show_clients},
    {"pools", show_pools},
    {"heaps", show_heaps},
    {"maps", show_maps},
    {"map-load", show_map_load},
    {"map-unload", show_map_unload},
    {"set-status", show_set_status},
    {"set-message", show_set_message},
    {"set-counter", show_set_counter},
    {"compact", show_compact},
    {"shutdown", show_shutdown},
    {"player", show_player},
    {"evict", show_evict},
    {"save", show_save},
    {"help", show_help},
    {"metrics", show_metrics},
};

void print_result(const char *cmd, const cJSON *res, const char *instance) {
  size_t i;
  for (i = 0; i < sizeof printers / sizeof printers[0]; i++) {
    if (strcmp(printers[i].cmd, cmd) == 0) {
      printers[i].show(res, instance);
      return;
    }
  }
  print_json(res);
}

/* One watch event for humans: time, status, players, NPCs, committed, clients and the
 * committed bytes of each region; a section the watch did not ask for shows as '-'. */
void print_watch_line(const cJSON *res) {
  const cJSON *srv = cJSON_GetObjectItemCaseSensitive(res, "server");
  const cJSON *mem = cJSON_GetObjectItemCaseSensitive(res, "memory");
  const cJSON *cli = cJSON_GetObjectItemCaseSensitive(res, "clients");
  const cJSON *regs = cJSON_GetObjectItemCaseSensitive(res, "regions"), *r;
  char when[16];
  mb_os_tm_t tm;
  mb_os_time_split(mb_os_wall_ns(), 1, &tm);
  snprintf(when, sizeof when, "%02d:%02d:%02d", tm.hour, tm.min, tm.sec);
  printf("%s %-8s", when, srv ? str(srv, "status") : "-");
  if (srv)
    printf("  players %.0f  npcs %.0f", num(srv, "players"), num(srv, "npcs"));
  else
    printf("  players -  npcs -");
  printf("  committed %s", mem ? bytes(num(mem, "committed")) : "-");
  if (cli)
    printf("  clients %.0f", num(cli, "attached"));
  else
    printf("  clients -");
  cJSON_ArrayForEach(r, regs) {
    printf("  %s %s", str(r, "name"), bytes(num(r, "committed")));
  }
  printf("\n");
}
