/*
 * mbctl.c - the operator CLI: one request over the control pipe, the answer as a readable
 * overview (default) or as JSON (--json, for scripts).
 *
 *   mbctl [--instance NAME] [--json] [--timeout MS] COMMAND [ARGS]
 *   (the instance is --instance, else $MEMBROKER_INSTANCE, else "default")
 *   mbctl watch [--interval MS] [--count N] [SECTION...]   a live view, one line per event
 *
 * Exit codes: 0 ok, 1 the command failed (error code and message printed), 2 usage,
 * 3 the broker is not running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ctlconn.h"
#include "layout.h"
#include "os.h"

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_RUNNING = 3 };

static void usage(FILE *fp) {
  fprintf(fp, "usage: mbctl [--instance NAME] [--json] [--timeout MS] [--] COMMAND [ARGS]\n"
              "       (options may also follow the command; -- ends them)\n"
              "\n"
              "commands:\n"
              "  ping                         check that the broker answers\n"
              "  version                      broker version, layout version and build\n"
              "  status [SECTION...]          overview; sections: server memory regions clients "
              "pools\n"
              "  regions                      memory regions: reserved, committed, slots\n"
              "  clients                      attached game servers\n"
              "  pools                        shared object pools: in use, free, peak, misses\n"
              "  heaps [CLIENT]               game servers' private pools and heaps: in use,\n"
              "                               peak, committed, allocs, frees, failures\n"
              "  maps                         game data maps: size, tiles, objects, checksum\n"
              "  config                       the effective configuration (JSON)\n"
              "  set-status running|draining  set the server status game servers see (admin)\n"
              "  set-message TEXT             set the status message, up to 255 bytes (admin)\n"
              "  set-counter players|npcs N   set a shared counter to N (admin), for counts no\n"
              "                               game server can put right\n"
              "  compact                      give unused slot pages back to the OS (admin)\n"
              "  map-load NAME PATH           load a GMAP file as map NAME (admin); a relative\n"
              "                               PATH is relative to the broker's config file\n"
              "  map-unload NAME              unload map NAME (admin); game servers keep what\n"
              "                               they have open\n"
              "  shutdown                     stop the broker (admin)\n"
              "  watch [SECTION...]           live view, one line per interval until Ctrl-C\n"
              "  help                         the broker's command list\n"
              "\n"
              "options:\n"
              "  --instance NAME  broker instance (default: $MEMBROKER_INSTANCE if set, else\n"
              "                   default)\n"
              "  --json           print the result as JSON\n"
              "  --timeout MS     how long to wait for the answer (default 10000)\n"
              "  --interval MS    watch: time between lines, 50..60000 (default 1000)\n"
              "  --count N        watch: stop after N lines\n"
              "                   (watch --json prints the raw event lines)\n"
              "\n"
              "exit codes: 0 ok, 1 command failed, 2 usage, 3 broker not running\n"
              "\n"
              "environment:\n"
              "  MEMBROKER_INSTANCE     the instance when --instance is not given\n"
              "  MEMBROKER_RUNTIME_DIR  where the broker's socket is (Linux; as the broker's)\n");
}

/* ---- "not running": how to start it ------------------------------------------------------ */

/* What mbctl learns of one installed membroker service from its config (cJSON, no service/). */
typedef struct hint_svc_s {
  const mb_os_service_t *svc;
  char instance[MB_INSTANCE_MAX];      /* "" when the config could not be read */
  char why[160];                       /* why not, when instance is "" */
  char log_file[MB_OS_SVC_CONFIG_MAX]; /* "log": {"file": ...}, "" for the default */
} hint_svc_t;

/*
 * The instance and log.file of the config at s->svc->config, as the service reads them: no
 * config is the built-in defaults (instance "default"); a config without "instance" is
 * "default" too. A config that cannot be read or parsed leaves instance "" and says why.
 */
static void hint_read_config(hint_svc_t *s) {
  const char *path = s->svc->config;
  const cJSON *v, *log;
  cJSON *root;
  FILE *f = NULL;
  char *text;
  size_t len;

  snprintf(s->instance, sizeof s->instance, "default");
  s->log_file[0] = '\0';
  s->why[0] = '\0';
  if (path[0] == '\0')
    return;
  s->instance[0] = '\0';
  if (mb_os_file_open(path, "rb", &f) != 0) {
    snprintf(s->why, sizeof s->why, "%s", mb_last_error());
    return;
  }
  text = malloc((1u << 20) + 1);
  len = text != NULL ? fread(text, 1, 1u << 20, f) : 0;
  fclose(f);
  if (text == NULL) {
    snprintf(s->why, sizeof s->why, "out of memory");
    return;
  }
  text[len] = '\0';
  root = cJSON_Parse(text);
  free(text);
  if (!cJSON_IsObject(root)) {
    snprintf(s->why, sizeof s->why, "not valid JSON");
    cJSON_Delete(root);
    return;
  }
  v = cJSON_GetObjectItemCaseSensitive(root, "instance");
  if (v == NULL || cJSON_IsNull(v))
    snprintf(s->instance, sizeof s->instance, "default");
  else if (cJSON_IsString(v) &&
           mb__name_ok(v->valuestring, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    snprintf(s->instance, sizeof s->instance, "%s", v->valuestring);
  else
    snprintf(s->why, sizeof s->why, "its \"instance\" is not an instance name");
  log = cJSON_GetObjectItemCaseSensitive(root, "log");
  v = cJSON_GetObjectItemCaseSensitive(log, "file");
  if (cJSON_IsString(v))
    snprintf(s->log_file, sizeof s->log_file, "%s", v->valuestring);
  cJSON_Delete(root);
}

static const char *hint_state(const mb_os_service_t *svc) {
  switch (svc->state) {
  case MB_OS_SVC_STOPPED:
    return "stopped";
  case MB_OS_SVC_STARTING:
    return "starting";
  case MB_OS_SVC_RUNNING:
    return "running";
  case MB_OS_SVC_STOPPING:
    return "stopping";
  default:
    return svc->status_known ? "paused" : "state unknown";
  }
}

/* The service's log file: log.file, else %ProgramData%\membroker\<instance>\membroker.log. */
static const char *hint_log_path(const hint_svc_t *s, char *buf, size_t size) {
  char dir[512];
  const char *instance = s->instance[0] != '\0' ? s->instance : "<instance>";
  if (s->log_file[0] != '\0')
    snprintf(buf, size, "%s", s->log_file);
  else if (mb_os_data_dir(dir, sizeof dir) == 0)
    snprintf(buf, size, "%s\\%s\\membroker.log", dir, instance);
  else
    snprintf(buf, size, "%%ProgramData%%\\membroker\\%s\\membroker.log", instance);
  return buf;
}

/*
 * After a stopped service's line: why its last start failed (WIN32_EXIT_CODE 1066 and the
 * service exit code, with where the service logged the reason), or the Windows error its last
 * run ended with. Nothing after a clean stop or when it never started. `who` begins the line.
 */
static void hint_last_stop(FILE *fp, const hint_svc_t *s, const char *who) {
  const mb_os_service_t *svc = s->svc;
  char where[3 * MB_OS_SVC_CONFIG_MAX], dir[512], log[2 * MB_OS_SVC_CONFIG_MAX];

  if (svc->state != MB_OS_SVC_STOPPED)
    return;
  if (svc->exit_code == 1066 /* ERROR_SERVICE_SPECIFIC_ERROR */) {
    unsigned long n = svc->service_exit_code;
    if (n == 2) {
      if (mb_os_data_dir(dir, sizeof dir) == 0)
        snprintf(where, sizeof where, "%s\\%s.log", dir, svc->name);
      else
        snprintf(where, sizeof where, "%%ProgramData%%\\membroker\\%s.log", svc->name);
    } else if (n == 3) {
      snprintf(where, sizeof where,
               "the Application event log, source %s, event 1004 (the log file %s could not "
               "be opened)",
               svc->name, hint_log_path(s, log, sizeof log));
    } else {
      hint_log_path(s, where, sizeof where);
    }
    fprintf(fp,
            "%s last start failed with service exit code %lu (%s): see %s "
            "(`sc.exe query %s` shows the code)\n",
            who, n,
            n == 2   ? "config error"
            : n == 1 ? "could not start"
            : n == 3 ? "log file"
                     : "unknown code",
            where, svc->name);
  } else if (svc->exit_code != 0 && svc->exit_code != 1077 /* ERROR_SERVICE_NEVER_STARTED */) {
    fprintf(fp, "%s last run ended with Windows error %lu (`sc.exe query %s`); its log: %s\n", who,
            svc->exit_code, svc->name, hint_log_path(s, where, sizeof where));
  }
}

/* The hint for the service that serves this instance: what it is doing and what to do. */
static void hint_for_service(FILE *fp, const hint_svc_t *s) {
  const mb_os_service_t *svc = s->svc;
  char where[2 * MB_OS_SVC_CONFIG_MAX];
  const char *config = svc->config[0] != '\0' ? svc->config : "none: built-in defaults";

  switch (svc->state) {
  case MB_OS_SVC_STOPPED:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is stopped: start it with "
            "`sc.exe start %s`\n",
            svc->name, config, s->instance, svc->name);
    hint_last_stop(fp, s, "its");
    break;
  case MB_OS_SVC_RUNNING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is running, but its pipe did not "
            "answer: is it still starting, or stuck? check `sc.exe query %s` and its log %s\n",
            svc->name, config, s->instance, svc->name, hint_log_path(s, where, sizeof where));
    break;
  case MB_OS_SVC_STARTING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is starting: try again shortly, "
            "or check `sc.exe query %s` and its log %s\n",
            svc->name, config, s->instance, svc->name, hint_log_path(s, where, sizeof where));
    break;
  case MB_OS_SVC_STOPPING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is stopping: once it has stopped "
            "(`sc.exe query %s`), start it with `sc.exe start %s`\n",
            svc->name, config, s->instance, svc->name, svc->name);
    break;
  default:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' (%s): check `sc.exe query %s`; start "
            "it with `sc.exe start %s`\n",
            svc->name, config, s->instance, hint_state(svc), svc->name, svc->name);
    break;
  }
}

/*
 * How to start the broker, after "membroker is not running for instance X": the commands of
 * this OS's service manager. Windows: the installed services whose program is membroker.exe,
 * each with the instance its config names; the one for X with what it is doing (stopped:
 * `sc.exe start NAME`, and why its last start failed and where that is logged; running: its
 * pipe did not answer), or, when none serves X, the installed ones with their instances and
 * how to install one. `sc.exe`, never `sc`: in PowerShell `sc` is Set-Content. Linux: the
 * shipped systemd unit. Either way the console alternative, `membroker run`.
 */
static void print_start_hint(FILE *fp, const char *instance) {
  mb_os_service_t *list = NULL;
  hint_svc_t *hs = NULL;
  int n = 0, i, mine = 0;
  if (mb_os_service_manager() == MB_OS_SVCMGR_SYSTEMD) {
    fprintf(fp, "start it with `systemctl start membroker` (the systemd unit, "
                "scripts/membroker.service) or in the foreground with `membroker run -c FILE`\n");
    return;
  }
  if (mb_os_services_list("membroker.exe", &list, &n) != 0) {
    fprintf(fp,
            "start its service with `sc.exe start NAME` (the installed services could not be "
            "listed: %s) or in a console with `membroker run -c FILE`\n",
            mb_last_error());
    return;
  }
  if (n == 0) {
    fprintf(fp, "no service runs membroker.exe: install one with `membroker install` (or "
                "scripts\\install-service.cmd) and start it with `sc.exe start membroker`, or "
                "run it in a console with `membroker run -c FILE`\n");
    return;
  }
  if ((hs = calloc((size_t)n, sizeof *hs)) == NULL) {
    fprintf(fp, "start its service with `sc.exe start NAME` or in a console with "
                "`membroker run -c FILE`\n");
    free(list);
    return;
  }
  for (i = 0; i < n; i++) {
    hs[i].svc = &list[i];
    hint_read_config(&hs[i]);
    if (strcmp(hs[i].instance, instance) == 0) {
      hint_for_service(fp, &hs[i]);
      mine++;
    }
  }
  if (mine > 1)
    fprintf(fp, "(%d services serve instance '%s': only one can run at a time)\n", mine, instance);
  if (mine == 0) {
    fprintf(fp, "installed:");
    for (i = 0; i < n; i++) {
      if (hs[i].instance[0] != '\0')
        fprintf(fp, "%s %s (instance %s, %s)", i ? "," : "", list[i].name, hs[i].instance,
                hint_state(&list[i]));
      else
        fprintf(fp, "%s %s (config %s cannot be read: %s; %s)", i ? "," : "", list[i].name,
                list[i].config, hs[i].why, hint_state(&list[i]));
    }
    fprintf(fp,
            "; none is for instance '%s': install one with `membroker install --name NAME -c "
            "CONFIG` (a config with \"instance\": \"%s\") and start it with `sc.exe start NAME`, "
            "or run it in a console with `membroker run -c FILE`\n",
            instance, instance);
    /* A config mbctl cannot read may be the one meant, broken by a typo: say how it failed. */
    for (i = 0; i < n; i++) {
      char who[MB_OS_SVC_NAME_MAX * 3 + 16];
      if (hs[i].instance[0] != '\0')
        continue;
      snprintf(who, sizeof who, "service %s:", list[i].name);
      hint_last_stop(fp, &hs[i], who);
    }
  }
  free(hs);
  free(list);
}

/* ---- small formatting helpers ------------------------------------------------------------ */

static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "-";
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
  printf("config      %s\n", cJSON_IsString(path) ? path->valuestring : "built-in defaults");
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
  printf("%-12s %10s %7s %7s %9s %5s %-16s %10s  %s\n", "MAP", "SIZE", "WIDTH", "HEIGHT", "OBJECTS",
         "SEQ", "CHECKSUM", "LOADED", "PATH");
  if (cJSON_GetArraySize(arr) == 0)
    printf("no maps loaded\n");
  cJSON_ArrayForEach(m, arr) {
    char ago[48];
    snprintf(ago, sizeof ago, "%s ago", duration(num(m, "loaded_ms_ago")));
    printf("%-12s %10s %7.0f %7.0f %9.0f %5.0f %-16s %10s  %s\n", str(m, "name"),
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

static void print_json(const cJSON *v) {
  char *text = cJSON_Print(v);
  if (text) {
    printf("%s\n", text);
    cJSON_free(text);
  }
}

/* Print a successful result for humans. */
static void print_result(const char *cmd, const cJSON *res, const char *instance) {
  if (strcmp(cmd, "ping") == 0) {
    printf("%s\n", cJSON_IsString(res) ? res->valuestring : "pong");
  } else if (strcmp(cmd, "version") == 0) {
    printf("membroker %s (layout %.0f, %s)\n", str(res, "version"), num(res, "layout_version"),
           str(res, "build"));
  } else if (strcmp(cmd, "status") == 0) {
    print_status(res);
  } else if (strcmp(cmd, "regions") == 0) {
    print_regions(res);
  } else if (strcmp(cmd, "clients") == 0) {
    print_clients(res);
  } else if (strcmp(cmd, "pools") == 0) {
    print_pools(res);
  } else if (strcmp(cmd, "heaps") == 0) {
    print_heaps(res);
  } else if (strcmp(cmd, "maps") == 0) {
    print_maps(res);
  } else if (strcmp(cmd, "map-load") == 0) {
    printf("map '%s' loaded from %s: %s, %.0f x %.0f tiles, %.0f objects (seq %.0f, checksum "
           "%s)\n",
           str(res, "name"), str(res, "path"), bytes(num(res, "size")), num(res, "width"),
           num(res, "height"), num(res, "objects"), num(res, "seq"), str(res, "checksum"));
  } else if (strcmp(cmd, "map-unload") == 0) {
    printf("map '%s' unloaded\n", str(res, "name"));
  } else if (strcmp(cmd, "set-status") == 0) {
    printf("server status: %s (was %s)\n", str(res, "status"), str(res, "previous"));
  } else if (strcmp(cmd, "set-message") == 0) {
    printf("status message: \"%s\"\n", str(res, "message"));
  } else if (strcmp(cmd, "set-counter") == 0) {
    printf("%s: %.0f (was %.0f)\n", str(res, "counter"), num(res, "value"), num(res, "previous"));
  } else if (strcmp(cmd, "compact") == 0) {
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res, "supported")))
      printf("compact: not supported on this platform (nothing freed)\n");
    else
      printf("compact: %s given back\n", bytes(num(res, "freed_bytes")));
  } else if (strcmp(cmd, "shutdown") == 0) {
    printf("membroker '%s' is stopping\n", instance);
  } else if (strcmp(cmd, "help") == 0 && cJSON_IsArray(res)) {
    const cJSON *c;
    cJSON_ArrayForEach(c, res) {
      printf("  %-14s%s\n", str(c, "name"),
             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "admin")) ? " (admin)" : "");
    }
  } else {
    print_json(res);
  }
}

/* One watch event for humans: time, status, players, NPCs, committed, clients and the
 * committed bytes of each region; a section the watch did not ask for shows as '-'. */
static void print_watch_line(const cJSON *res) {
  const cJSON *srv = cJSON_GetObjectItemCaseSensitive(res, "server");
  const cJSON *mem = cJSON_GetObjectItemCaseSensitive(res, "memory");
  const cJSON *cli = cJSON_GetObjectItemCaseSensitive(res, "clients");
  const cJSON *regs = cJSON_GetObjectItemCaseSensitive(res, "regions"), *r;
  char when[16] = "--:--:--";
  time_t now = time(NULL);
  const struct tm *tm = localtime(&now);
  if (tm)
    strftime(when, sizeof when, "%H:%M:%S", tm);
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

/*
 * The watch stream after the broker's ok: print each event (raw with --json) until `count`
 * events (0: no limit) or the broker ends the stream. EXIT_OK when it did (or count was
 * reached), EXIT_FAILED when an event is overdue (interval + timeout) or unreadable.
 */
static int run_watch(mb_pipe_conn_t *conn, int json, long count, long interval_ms, int timeout_ms) {
  long seen = 0;
  char *line;
  size_t len;
  int rc;
  while (count <= 0 || seen < count) {
    cJSON *ev;
    const cJSON *res;
    rc = mb__pipe_read_line(conn, &line, &len, 64u << 20,
                            mb_os_mono_ns() + (uint64_t)(interval_ms + timeout_ms) * 1000000u);
    if (rc == MB_EIO) {
      printf("broker stopped\n");
      fflush(stdout);
      return EXIT_OK;
    }
    if (rc != 0) {
      fprintf(stderr, "mbctl: watch: %s\n", mb_last_error());
      return EXIT_FAILED;
    }
    ev = cJSON_Parse(line);
    res = cJSON_GetObjectItemCaseSensitive(ev, "result");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ev, "event")) || !cJSON_IsObject(res)) {
      cJSON_Delete(ev);
      fprintf(stderr, "mbctl: watch: the broker sent a line that is not a status event\n");
      return EXIT_FAILED;
    }
    if (json)
      printf("%s\n", line);
    else
      print_watch_line(res);
    fflush(stdout);
    cJSON_Delete(ev);
    seen++;
  }
  return EXIT_OK;
}

/* ---- request ----------------------------------------------------------------------------- */

/* Build the request for argv[0..argc) (the command and its arguments); NULL = usage error.
 * interval_ms > 0 is watch's interval. */
static cJSON *build_request(int argc, char **argv, long interval_ms) {
  const char *cmd = argv[0];
  cJSON *req = cJSON_CreateObject(), *args = cJSON_CreateObject();
  int i;
  cJSON_AddNumberToObject(req, "id", 1);
  cJSON_AddStringToObject(req, "cmd", cmd);
  if (strcmp(cmd, "status") == 0 || strcmp(cmd, "watch") == 0) {
    if (interval_ms > 0)
      cJSON_AddNumberToObject(args, "interval_ms", (double)interval_ms);
    if (argc > 1) {
      cJSON *secs = cJSON_AddArrayToObject(args, "sections");
      for (i = 1; i < argc; i++)
        cJSON_AddItemToArray(secs, cJSON_CreateString(argv[i]));
    }
  } else if (strcmp(cmd, "heaps") == 0) {
    if (argc > 2) {
      fprintf(stderr, "mbctl: heaps takes at most one argument: the client name\n");
      goto usage;
    }
    if (argc == 2)
      cJSON_AddStringToObject(args, "client", argv[1]);
  } else if (strcmp(cmd, "map-load") == 0) {
    if (argc != 3) {
      fprintf(stderr, "mbctl: map-load needs two arguments: NAME PATH\n");
      goto usage;
    }
    cJSON_AddStringToObject(args, "name", argv[1]);
    cJSON_AddStringToObject(args, "path", argv[2]);
  } else if (strcmp(cmd, "map-unload") == 0) {
    if (argc != 2) {
      fprintf(stderr, "mbctl: map-unload needs one argument: NAME\n");
      goto usage;
    }
    cJSON_AddStringToObject(args, "name", argv[1]);
  } else if (strcmp(cmd, "set-status") == 0) {
    if (argc != 2) {
      fprintf(stderr, "mbctl: set-status needs one argument: running or draining\n");
      goto usage;
    }
    cJSON_AddStringToObject(args, "status", argv[1]);
  } else if (strcmp(cmd, "set-counter") == 0) {
    char *end = NULL;
    unsigned long long v;
    if (argc != 3) {
      fprintf(stderr, "mbctl: set-counter needs two arguments: players or npcs, and a number\n");
      goto usage;
    }
    errno = 0;
    v = strtoull(argv[2], &end, 10);
    if (argv[2][0] < '0' || argv[2][0] > '9' || *end != '\0' || errno != 0 ||
        v > 1000000000000000ull) {
      fprintf(stderr, "mbctl: set-counter: '%s' is not a whole number from 0 to 1000000000000000\n",
              argv[2]);
      goto usage;
    }
    cJSON_AddStringToObject(args, "counter", argv[1]);
    cJSON_AddNumberToObject(args, "value", (double)v);
  } else if (strcmp(cmd, "set-message") == 0) {
    size_t n = 0;
    char *text;
    if (argc < 2) {
      fprintf(stderr, "mbctl: set-message needs the TEXT (\"\" clears the message)\n");
      goto usage;
    }
    for (i = 1; i < argc; i++)
      n += strlen(argv[i]) + 1;
    if ((text = malloc(n)) == NULL)
      goto usage;
    text[0] = '\0';
    for (i = 1; i < argc; i++) {
      if (i > 1)
        strcat(text, " ");
      strcat(text, argv[i]);
    }
    cJSON_AddStringToObject(args, "message", text);
    free(text);
  } else if (argc > 1) {
    fprintf(stderr, "mbctl: '%s' takes no arguments\n", cmd);
    goto usage;
  }
  cJSON_AddItemToObject(req, "args", args);
  return req;
usage:
  cJSON_Delete(args);
  cJSON_Delete(req);
  return NULL;
}

int main(int argc, char **argv) {
  const char *instance = NULL, *instance_from = "--instance";
  int json = 0, timeout_ms = 10000, i, rc, is_path = 0, opts_done = 0, cmdc = 0;
  long interval_ms = 0, count = 0;
  static char *cmdv[256];
  char pipe[MB_PIPE_NAME_MAX], *text, *line;
  mb_pipe_conn_t conn;
  cJSON *req, *resp = NULL;
  const cJSON *ok, *err;
  size_t len;
  int code = EXIT_FAILED;

  /* Options may stand before or after the command; "--" ends them (for a message that
   * starts with '-'). Everything else is the command and its arguments, in order. */
  for (i = 1; i < argc; i++) {
    if (!opts_done && argv[i][0] == '-' && argv[i][1] != '\0') {
      if (strcmp(argv[i], "--") == 0) {
        opts_done = 1;
      } else if (strcmp(argv[i], "--json") == 0) {
        json = 1;
      } else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc) {
        instance = argv[++i];
      } else if ((strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--interval") == 0 ||
                  strcmp(argv[i], "--count") == 0) &&
                 i + 1 < argc) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (*end != '\0' || end == argv[i + 1] || v <= 0 || v > 100000000) {
          fprintf(stderr, "mbctl: %s needs a positive number, got '%s'\n", argv[i], argv[i + 1]);
          return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--timeout") == 0)
          timeout_ms = (int)v;
        else if (strcmp(argv[i], "--interval") == 0)
          interval_ms = v;
        else
          count = v;
        i++;
      } else if (i + 1 == argc &&
                 (strcmp(argv[i], "--instance") == 0 || strcmp(argv[i], "--timeout") == 0 ||
                  strcmp(argv[i], "--interval") == 0 || strcmp(argv[i], "--count") == 0)) {
        fprintf(stderr, "mbctl: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
      } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
      } else if (strcmp(argv[i], "--version") == 0) {
        printf("mbctl %s\n", MB_VERSION);
        return EXIT_OK;
      } else {
        fprintf(stderr, "mbctl: unknown option '%s'\n\n", argv[i]);
        usage(stderr);
        return EXIT_USAGE;
      }
    } else if (cmdc < (int)(sizeof cmdv / sizeof cmdv[0])) {
      cmdv[cmdc++] = argv[i];
    }
  }
  if (cmdc == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  /* The instance: --instance, else $MEMBROKER_INSTANCE (empty counts as unset), else
   * "default". A bad name is refused here, naming where it came from. */
  if (instance == NULL) {
    const char *env = getenv("MEMBROKER_INSTANCE");
    if (env != NULL && env[0] != '\0') {
      instance = env;
      instance_from = "MEMBROKER_INSTANCE";
    } else {
      instance = "default";
    }
  }
  if (!mb__name_ok(instance, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT)) {
    fprintf(stderr,
            "mbctl: %s '%s' is not an instance name: 1 to %d characters of A-Z a-z 0-9 . _ -\n",
            instance_from, instance, MB_INSTANCE_MAX - 1);
    return EXIT_USAGE;
  }
  if ((interval_ms || count) && strcmp(cmdv[0], "watch") != 0) {
    fprintf(stderr, "mbctl: --interval and --count are options of watch\n");
    return EXIT_USAGE;
  }
  req = build_request(cmdc, cmdv, interval_ms);
  if (req == NULL) {
    fprintf(stderr, "run 'mbctl --help' for usage\n");
    return EXIT_USAGE;
  }
  /* From here every exit goes through `done`, which frees what was made (the sanitizer
   * build's leak check turns a leak at exit into a failed exit code). */
  memset(&conn, 0, sizeof conn);
  conn.h = -1;
  if (mb__pipe_name(instance, pipe, sizeof pipe, &is_path) != 0) {
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    code = EXIT_USAGE;
    goto done;
  }
  if ((rc = mb__pipe_connect(&conn, pipe, timeout_ms)) != 0) {
    if (rc == MB_ENOTRUNNING) {
      fprintf(stderr, "membroker is not running for instance '%s' (no pipe at %s)\n", instance,
              pipe);
      print_start_hint(stderr, instance);
      code = EXIT_NOT_RUNNING;
      goto done;
    }
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    goto done;
  }
  text = cJSON_PrintUnformatted(req);
  rc = text ? mb__pipe_write(&conn, text, strlen(text)) : MB_ENOMEM;
  if (rc == 0)
    rc = mb__pipe_write(&conn, "\n", 1);
  cJSON_free(text);
  if (rc == 0)
    rc = mb__pipe_read_line(&conn, &line, &len, 64u << 20,
                            mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u);
  if (rc != 0) {
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    goto done;
  }
  resp = cJSON_Parse(line);
  if (strcmp(cmdv[0], "watch") != 0)
    mb__pipe_close(&conn); /* watch reads on: its events follow the answer */
  ok = cJSON_GetObjectItemCaseSensitive(resp, "ok");
  if (resp == NULL || !cJSON_IsBool(ok)) {
    fprintf(stderr, "mbctl: the broker's answer is not a protocol response\n");
    goto done;
  }
  if (cJSON_IsFalse(ok)) {
    err = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (json)
      print_json(resp);
    fprintf(stderr, "mbctl: %s failed: %s: %s\n", cmdv[0], str(err, "code"), str(err, "message"));
    goto done;
  }
  if (strcmp(cmdv[0], "watch") == 0) {
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(resp, "result"), "interval_ms");
    code = run_watch(&conn, json, count, cJSON_IsNumber(iv) ? (long)iv->valuedouble : 60000,
                     timeout_ms);
    goto done;
  }
  if (json)
    print_json(cJSON_GetObjectItemCaseSensitive(resp, "result"));
  else
    print_result(cmdv[0], cJSON_GetObjectItemCaseSensitive(resp, "result"), instance);
  code = EXIT_OK;
done:
  mb__pipe_close(&conn);
  cJSON_Delete(resp);
  cJSON_Delete(req);
  return code;
}
