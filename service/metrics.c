/*
 * metrics.c - the Prometheus text exposition of the broker (metrics.h): the `metrics` command
 * and the /metrics listener both print what this file renders.
 *
 * Owns: metric names, types, help and labels. The figures come from the one status-report
 * builder (report.h), so every value equals what `status --json` says at the same moment, and
 * names and label values pass the report's checks (region and pool names from the broker's
 * private copies, text from clients made valid UTF-8). The per-region, per-pool, private-memory,
 * client and persist families are generated from the statistics lists of common/stats.h
 * (membroker_<list>_<key> + mb_stat_metric_suffix); nothing here lists those figures by hand.
 * Never labels a sample with a client's or a player's name: clients are counted by state.
 * Never changes the broker.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "http.h"
#include "report.h"
#include "stats.h"

/* A growing text buffer; `failed` once an allocation failed (later writes are dropped). */
typedef struct mb__mbuf_s {
  char *p;
  size_t len, cap;
  int failed;
  int om;             /* OpenMetrics */
  const char *broker; /* the instance: label broker="<instance>" on every sample */
} mb__mbuf_t;

static void mb__put(mb__mbuf_t *m, const char *s, size_t n) {
  if (m->failed)
    return;
  if (m->len + n + 1 > m->cap) {
    size_t cap = m->cap ? m->cap : 8192;
    char *p;
    while (cap < m->len + n + 1)
      cap *= 2;
    if ((p = realloc(m->p, cap)) == NULL) {
      m->failed = 1;
      return;
    }
    m->p = p;
    m->cap = cap;
  }
  memcpy(m->p + m->len, s, n);
  m->len += n;
  m->p[m->len] = '\0';
}

static void mb__puts(mb__mbuf_t *m, const char *s) {
  mb__put(m, s, strlen(s));
}

static void mb__printf(mb__mbuf_t *m, const char *fmt, ...) MB_PRINTF(2, 3);
static void mb__printf(mb__mbuf_t *m, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf) {
    m->failed = 1; /* only our own names and numbers go through here: never this long */
    return;
  }
  mb__put(m, buf, (size_t)n);
}

/* A label value as the exposition formats want it: backslash, double quote and line feed
 * escaped (\\, \", \n); everything else as is (the report made it valid UTF-8). */
static void mb__label_value(mb__mbuf_t *m, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      mb__puts(m, "\\\\");
    else if (*s == '"')
      mb__puts(m, "\\\"");
    else if (*s == '\n')
      mb__puts(m, "\\n");
    else
      mb__put(m, s, 1);
  }
}

/* HELP text: backslash and line feed escaped (both formats accept that). */
static void mb__help_text(mb__mbuf_t *m, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      mb__puts(m, "\\\\");
    else if (*s == '\n')
      mb__puts(m, "\\n");
    else
      mb__put(m, s, 1);
  }
}

/*
 * The HELP and TYPE lines of family `name` (the full name of its samples, "_total" included
 * for a counter): type "counter" or "gauge". OpenMetrics names a counter family without its
 * "_total".
 */
static void mb__family(mb__mbuf_t *m, const char *name, const char *type, const char *help) {
  size_t n = strlen(name);
  int cut = m->om && strcmp(type, "counter") == 0 && n > 6 && strcmp(name + n - 6, "_total") == 0;
  int fam = cut ? (int)(n - 6) : (int)n;
  mb__printf(m, "# HELP %.*s ", fam, name);
  mb__help_text(m, help);
  mb__printf(m, "\n# TYPE %.*s %s\n", fam, name, type);
}

/*
 * A number as both formats write it: whole numbers without a fraction or exponent, others in
 * the shortest of %.15g, %.16g and %.17g that reads back as the same double (3.128, not
 * 3.1280000000000001; %.17g always does).
 */
static void mb__value(mb__mbuf_t *m, double v) {
  char buf[40];
  int prec;
  if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
    mb__printf(m, "%.0f\n", v);
    return;
  }
  for (prec = 15; prec < 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      break;
  }
  mb__printf(m, "%.*g\n", prec, v);
}

/* One sample: name{broker="<instance>",label="value"} v (label NULL: the broker label only). */
static void mb__sample(mb__mbuf_t *m, const char *name, const char *label, const char *lvalue,
                       double v) {
  mb__puts(m, name);
  mb__puts(m, "{broker=\"");
  mb__label_value(m, m->broker);
  mb__puts(m, "\"");
  if (label != NULL) {
    mb__printf(m, ",%s=\"", label);
    mb__label_value(m, lvalue);
    mb__puts(m, "\"");
  }
  mb__puts(m, "} ");
  mb__value(m, v);
}

/* A family with one sample and no labels. */
static void mb__single(mb__mbuf_t *m, const char *name, const char *type, const char *help,
                       double v) {
  mb__family(m, name, type, help);
  mb__sample(m, name, NULL, NULL, v);
}

static double mb__jnum(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsNumber(v))
    return v->valuedouble;
  return cJSON_IsTrue(v) ? 1 : 0;
}

static const char *mb__jstr(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/*
 * membroker_<list>_<key><suffix> of stats entry s into buf (stats.h). One exception, for the
 * naming conventions (promtool's lint: "_count" is a histogram's or summary's): a gauge whose key
 * ends in "_count" is named by the plural of what it counts, "slot_count" -> "slots".
 */
static const char *mb__stat_name(char *buf, size_t size, const char *list,
                                 const mb_stat_info_t *s) {
  size_t n = strlen(s->key);
  if (s->kind != MB_STAT_COUNTER && n > 6 && strcmp(s->key + n - 6, "_count") == 0)
    snprintf(buf, size, "membroker_%s_%.*ss%s", list, (int)(n - 6), s->key,
             mb_stat_metric_suffix(s));
  else
    snprintf(buf, size, "membroker_%s_%s%s", list, s->key, mb_stat_metric_suffix(s));
  return buf;
}

static const char *mb__stat_type(const mb_stat_info_t *s) {
  return s->kind == MB_STAT_COUNTER ? "counter" : "gauge";
}

/*
 * The families of stats list `info` (n entries) over the objects of array `arr` (the report's
 * regions or pools), one sample per object labelled label="<its name>", in the report's order.
 * A list whose array is empty writes nothing (a family without samples says nothing).
 */
static void mb__per_object(mb__mbuf_t *m, const char *list, const char *label,
                           const mb_stat_info_t *info, size_t n, const cJSON *arr) {
  char name[128], help[256];
  const cJSON *o;
  size_t i;
  if (cJSON_GetArraySize(arr) == 0)
    return;
  for (i = 0; i < n; i++) {
    if (info[i].key == NULL)
      continue;
    mb__stat_name(name, sizeof name, list, &info[i]);
    snprintf(help, sizeof help, "%s: %s%s", list, info[i].help,
             info[i].kind == MB_STAT_FLAG ? " (1 yes, 0 no)" : "");
    mb__family(m, name, mb__stat_type(&info[i]), help);
    cJSON_ArrayForEach(o, arr) {
      mb__sample(m, name, label, mb__jstr(o, "name"), mb__jnum(o, info[i].key));
    }
  }
}

static const mb_stat_info_t mb__m_region_stats[] = {MB_REGION_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__m_pool_stats[] = {MB_POOL_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__m_mem_stats[] = {MB_MEM_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__m_client_stats[] = {MB_CLIENT_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__m_persist_stats[] = {MB_PERSIST_STATS(MB_STAT_INFO)};
#define MB__N(a) (sizeof(a) / sizeof((a)[0]))

static void mb__server_families(mb__mbuf_t *m, const cJSON *srv) {
  static const char *const statuses[] = {"stopped", "running", "shutting_down", "draining"};
  const char *status = mb__jstr(srv, "status");
  const cJSON *damage = cJSON_GetObjectItemCaseSensitive(srv, "damage"), *d;
  char layout[16], stats[16];
  size_t i;
  mb__single(m, "membroker_up", "gauge",
             "1 while the broker answers (a textfile written by "
             "mbctl metrics --textfile says 0 when it does not)",
             1);
  snprintf(layout, sizeof layout, "%u", (unsigned)MB_LAYOUT_VERSION);
  snprintf(stats, sizeof stats, "%u", (unsigned)MB_STATS_VERSION);
  /* OpenMetrics has a type for this: the family "membroker_build" of type info, whose one
   * sample is membroker_build_info; the 0.0.4 format calls it a gauge of value 1. */
  if (m->om)
    mb__puts(m, "# HELP membroker_build the broker's version, shared-memory layout version, "
                "statistics version and OS\n# TYPE membroker_build info\n");
  else
    mb__family(m, "membroker_build_info", "gauge",
               "the broker's version, shared-memory layout version, statistics version and OS");
  mb__puts(m, "membroker_build_info{broker=\"");
  mb__label_value(m, m->broker);
  mb__puts(m, "\",version=\"");
  mb__label_value(m, mb__version());
  mb__printf(m, "\",layout_version=\"%s\",stats_version=\"%s\",os=\"%s\"} 1\n", layout, stats,
             MB_OS_NAME);
  mb__single(m, "membroker_start_time_seconds", "gauge",
             "when the broker started, seconds since 1970", mb__jnum(srv, "started_ms") / 1000.0);
  mb__single(m, "membroker_last_update_time_seconds", "gauge",
             "when a game server last updated the shared state, seconds since 1970 (0: never)",
             mb__jnum(srv, "last_update_ms") / 1000.0);
  mb__family(m, "membroker_server_status", "gauge",
             "the server status game servers see: 1 for the current one, 0 for the others");
  for (i = 0; i < MB__N(statuses); i++)
    mb__sample(m, "membroker_server_status", "status", statuses[i],
               strcmp(status, statuses[i]) == 0);
  mb__single(m, "membroker_players", "gauge", "players (the shared counter)",
             mb__jnum(srv, "players"));
  mb__single(m, "membroker_npcs", "gauge", "NPCs (the shared counter)", mb__jnum(srv, "npcs"));
  if (cJSON_IsObject(damage)) {
    mb__family(m, "membroker_damage_total", "counter",
               "forged or damaged shared fields the broker found and repaired, by kind");
    cJSON_ArrayForEach(d, damage) {
      if (d->string != NULL && strcmp(d->string, "total") != 0)
        mb__sample(m, "membroker_damage_total", "kind", d->string, mb__jnum(damage, d->string));
    }
  }
}

static void mb__memory_families(mb__mbuf_t *m, const cJSON *mem) {
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(mem, "limit");
  mb__single(m, "membroker_committed_bytes", "gauge",
             "bytes committed now: every region and the control block", mb__jnum(mem, "committed"));
  mb__single(m, "membroker_committed_peak_bytes", "gauge",
             "every region at its own peak (an upper bound of the peak committed)",
             mb__jnum(mem, "committed_peak"));
  if (cJSON_IsNumber(limit))
    mb__single(m, "membroker_commit_limit_bytes", "gauge",
               "limits.max_committed (absent when there is no limit)", limit->valuedouble);
  mb__single(m, "membroker_resident_memory_bytes", "gauge", "the broker process's resident set",
             mb__jnum(mem, "rss"));
  mb__single(m, "membroker_system_memory_bytes", "gauge", "the host's physical memory",
             mb__jnum(mem, "system_total"));
  mb__single(m, "membroker_system_memory_available_bytes", "gauge",
             "the host's available physical memory", mb__jnum(mem, "system_available"));
  mb__single(m, "membroker_maps", "gauge", "game data maps loaded now", mb__jnum(mem, "maps"));
  mb__single(m, "membroker_map_bytes", "gauge", "bytes of the loaded maps' images",
             mb__jnum(mem, "map_bytes"));
}

/* Persist: enabled always; the PERSIST list's counters, the interval and the age of the last
 * save only when persist.dir is set. */
static void mb__persist_families(mb__mbuf_t *m, const cJSON *mem) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(mem, "persist"), *ago;
  char name[128], help[256];
  size_t i;
  mb__single(m, "membroker_persist_enabled", "gauge", "1 when persist.dir is set",
             cJSON_IsObject(p));
  if (!cJSON_IsObject(p))
    return;
  for (i = 0; i < MB__N(mb__m_persist_stats); i++) {
    const mb_stat_info_t *s = &mb__m_persist_stats[i];
    if (s->key == NULL)
      continue;
    snprintf(help, sizeof help, "persist: %s", s->help);
    mb__single(m, mb__stat_name(name, sizeof name, "persist", s), mb__stat_type(s), help,
               mb__jnum(p, s->key));
  }
  mb__single(m, "membroker_persist_interval_seconds", "gauge", "persist.interval_ms in seconds",
             mb__jnum(p, "interval_ms") / 1000.0);
  ago = cJSON_GetObjectItemCaseSensitive(p, "last_flush_ms_ago");
  if (cJSON_IsNumber(ago))
    mb__single(m, "membroker_persist_last_save_age_seconds", "gauge",
               "seconds since the last save that completed (absent before the first)",
               ago->valuedouble / 1000.0);
}

/*
 * A figure of the CLIENT or MEM list summed over the entries present now: an entry that goes
 * (reaped, detached, restarted) takes its part of the sum with it, so even a COUNTER's sum
 * goes down while the broker runs. Prometheus would take that for a reset and count the whole
 * sum again in rate() and increase(): such a sum is a gauge, named without "_total".
 */
static const char *mb__sum_name(char *buf, size_t size, const char *list, const mb_stat_info_t *s) {
  mb_stat_info_t g = *s;
  if (g.kind == MB_STAT_COUNTER)
    g.kind = MB_STAT_GAUGE;
  return mb__stat_name(buf, size, list, &g);
}

/*
 * What the broker itself counted while it runs (broker.h, its own memory, never shared):
 * clients it found dead, by reason (one sample per reason of MB_DEAD_REASONS that the broker
 * gives, MB_BROKER_FINDS_DEAD, 0 from the start, so increase() sees the first death), and
 * clients it found hung.
 */
static void mb__event_families(mb__mbuf_t *m, const mb_broker_t *b) {
  uint32_t r;
  mb__family(m, "membroker_client_deaths_total", "counter",
             "clients the broker found dead since it started, by reason (exited: the OS says "
             "its process is gone; abandoned: it died while attaching or detaching)");
  for (r = 0; r < MB_BROKER_DEAD_REASONS; r++)
    if (MB_BROKER_FINDS_DEAD(r))
      mb__sample(m, "membroker_client_deaths_total", "reason", mb__dead_reason_key(r),
                 (double)b->deaths[r]);
  mb__single(m, "membroker_client_hangs_total", "counter",
             "times the broker found a client hung (heartbeat overdue, process alive) since it "
             "started",
             (double)b->hangs);
}

/* Clients by state (never per client), the table's size, the CLIENT list summed over the
 * table, and the private memory (MB_MEM_STATS) game servers publish, summed over every entry
 * (gauges: mb__sum_name). */
static void mb__client_families(mb__mbuf_t *m, const cJSON *cl, const cJSON *heaps) {
  const cJSON *table = cJSON_GetObjectItemCaseSensitive(cl, "table"), *e, *h, *x;
  double attached = 0, hung = 0, claimed = 0, dead = 0;
  char name[128], help[256];
  size_t i;
  cJSON_ArrayForEach(e, table) {
    const char *st = mb__jstr(e, "state");
    if (strcmp(st, "attached") == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "hung")))
      hung++;
    else if (strcmp(st, "attached") == 0)
      attached++;
    else if (strcmp(st, "claimed") == 0)
      claimed++;
    else if (strcmp(st, "dead") == 0)
      dead++;
  }
  mb__family(m, "membroker_clients", "gauge",
             "client-table entries by state: attached (beating), hung (attached, heartbeat "
             "overdue), claimed (attaching or detaching), dead (freed after the grace period)");
  mb__sample(m, "membroker_clients", "state", "attached", attached);
  mb__sample(m, "membroker_clients", "state", "hung", hung);
  mb__sample(m, "membroker_clients", "state", "claimed", claimed);
  mb__sample(m, "membroker_clients", "state", "dead", dead);
  mb__single(m, "membroker_clients_max", "gauge", "clients.max: entries of the client table",
             mb__jnum(cl, "max"));
  for (i = 0; i < MB__N(mb__m_client_stats); i++) {
    const mb_stat_info_t *s = &mb__m_client_stats[i];
    double sum = 0;
    if (s->key == NULL)
      continue;
    cJSON_ArrayForEach(e, table) sum += mb__jnum(e, s->key);
    snprintf(help, sizeof help, "client: %s, summed over the client-table entries present now",
             s->help);
    mb__single(m, mb__sum_name(name, sizeof name, "client", s), "gauge", help, sum);
  }
  for (i = 0; i < MB__N(mb__m_mem_stats); i++) {
    const mb_stat_info_t *s = &mb__m_mem_stats[i];
    double sum = 0;
    if (s->key == NULL)
      continue;
    cJSON_ArrayForEach(h, heaps) {
      cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(h, "entries")) sum +=
          mb__jnum(x, s->key);
    }
    snprintf(help, sizeof help,
             "private: %s, summed over the pools and heaps the game servers attached now publish",
             s->help);
    mb__single(m, mb__sum_name(name, sizeof name, "private", s), "gauge", help, sum);
  }
}

int mb__metrics_render(const mb_broker_t *b, int openmetrics, char **text, size_t *len) {
  mb__mbuf_t m = {NULL, 0, 0, 0, openmetrics != 0, b->cfg.instance};
  cJSON *rep = mb__report(b, MB_REPORT_ALL);
  cJSON *heaps = rep != NULL ? mb__report_heaps(b, NULL) : NULL;
  unsigned max = b->cfg.pipe_max_connections;
  mb_ctl_stats_t pipe;
  *text = NULL;
  *len = 0;
  if (rep == NULL || heaps == NULL) {
    cJSON_Delete(rep);
    cJSON_Delete(heaps);
    return mb__errorf(MB_ENOMEM, 0, "metrics: out of memory building the status report");
  }
  mb__server_families(&m, cJSON_GetObjectItemCaseSensitive(rep, "server"));
  mb__memory_families(&m, cJSON_GetObjectItemCaseSensitive(rep, "memory"));
  mb__per_object(&m, "region", "region", mb__m_region_stats, MB__N(mb__m_region_stats),
                 cJSON_GetObjectItemCaseSensitive(rep, "regions"));
  mb__per_object(&m, "pool", "pool", mb__m_pool_stats, MB__N(mb__m_pool_stats),
                 cJSON_GetObjectItemCaseSensitive(rep, "pools"));
  mb__client_families(&m, cJSON_GetObjectItemCaseSensitive(rep, "clients"), heaps);
  mb__event_families(&m, b);
  mb__persist_families(&m, cJSON_GetObjectItemCaseSensitive(rep, "memory"));
  mb__ctl_stats(&pipe);
#define MB__X(type, field, metric, kind, help)                                                     \
  mb__single(&m, "membroker_pipe_" metric, kind, help, (double)pipe.field);
  MB_CTL_STATS(MB__X)
#undef MB__X
  mb__single(&m, "membroker_pipe_connections_max", "gauge", "pipe.max_connections", max);
  if (b->cfg.metrics_listen[0] != '\0') /* absent when metrics.listen is off */
    mb__single(&m, "membroker_metrics_listener_up", "gauge",
               "1 while the /metrics listener listens, 0 while it retries its address (taken)",
               mb__http_state() == MB_HTTP_LISTENING);
  if (openmetrics)
    mb__puts(&m, "# EOF\n");
  cJSON_Delete(rep);
  cJSON_Delete(heaps);
  if (m.failed || m.p == NULL) {
    free(m.p);
    return mb__errorf(MB_ENOMEM, 0, "metrics: out of memory rendering the exposition text");
  }
  *text = m.p;
  *len = m.len;
  return 0;
}
