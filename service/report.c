/*
 * report.c - the status report (see report.h). Everything is read from the control block
 * and the broker's own fields with atomic loads; nothing here changes state. Sizes, counts
 * and the other fixed fields come from the broker's private copies (cfg, b->trust), never
 * from the block, which any game server can write (trust.h); what is read from the block
 * (states, times, names, counters) is range-checked or shown as a number only. The figures of
 * regions, pools, private memory, client entries and persist come from the lists in stats.h:
 * one loop per kind, a key per entry.
 */
#include "report.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "os.h"

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif

#ifndef MB_BUILD_ID
#if defined(__clang__)
#define MB_STR2(x) #x
#define MB_STR(x) MB_STR2(x)
#define MB_BUILD_ID                                                                                \
  "clang " MB_STR(__clang_major__) "." MB_STR(__clang_minor__) "." MB_STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define MB_BUILD_ID "gcc " __VERSION__
#elif defined(_MSC_VER)
#define MB_BUILD_ID "msvc"
#else
#define MB_BUILD_ID "cc"
#endif
#endif

static const struct {
  const char *name;
  unsigned bit;
} mb__sections[] = {
    {"server", MB_REPORT_SERVER},   {"memory", MB_REPORT_MEMORY}, {"regions", MB_REPORT_REGIONS},
    {"clients", MB_REPORT_CLIENTS}, {"pools", MB_REPORT_POOLS},
};

unsigned mb__report_section(const char *name) {
  size_t i;
  for (i = 0; i < sizeof mb__sections / sizeof mb__sections[0]; i++)
    if (strcmp(mb__sections[i].name, name) == 0)
      return mb__sections[i].bit;
  return 0;
}

const char *mb__report_section_list(void) {
  return "server, memory, regions, clients, pools";
}

const char *mb__status_name(uint32_t status) {
  switch (status) {
  case MB_STATUS_STOPPED:
    return "stopped";
  case MB_STATUS_RUNNING:
    return "running";
  case MB_STATUS_SHUTTING_DOWN:
    return "shutting_down";
  case MB_STATUS_DRAINING:
    return "draining";
  default:
    return "unknown";
  }
}

const char *mb__version(void) {
  return MB_VERSION;
}

const char *mb__build_id(void) {
  return MB_BUILD_ID ", " MB_OS_NAME;
}

static uint64_t mb__mix(uint64_t x) {
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

void mb__run_id(const mb_broker_t *b, char out[17]) {
  uint64_t h = mb__mix(b->start_wall_ns);
  h = mb__mix(h ^ b->self.pid);
  h = mb__mix(h ^ b->self.start_time);
  h = mb__mix(h ^ (b->state ? mb_load64(&b->state->generation) : 0));
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Builders record a failed allocation in *ok and carry on; the caller checks once. */
static void mb__num(cJSON *o, const char *key, uint64_t v, int *ok) {
  if (cJSON_AddNumberToObject(o, key, (double)v) == NULL)
    *ok = 0;
}

/* ---- the statistics lists (stats.h) ------------------------------------------------------- */

enum { MB_REGION_STATS(MB_STAT_ENUM_REGION) MB_REGION_FIGS };
enum { MB_POOL_STATS(MB_STAT_ENUM_POOL) MB_POOL_FIGS };
static const mb_stat_info_t mb__region_stats[] = {MB_REGION_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__pool_stats[] = {MB_POOL_STATS(MB_STAT_INFO)};
static const mb_stat_info_t mb__mem_stats[] = {MB_MEM_STATS(MB_STAT_INFO)};

/* v[i] = the SHM word `lv` of entry i (an atomic load); nothing for the other entries, whose
 * value the report works out itself. */
#define MB__LOAD(where, i, lv) MB__LOAD_##where(i, lv)
#define MB__LOAD_SHM(i, lv) v[i] = mb_load64(&(lv));
#define MB__LOAD_FIX(i, lv)

/* Add the n figures of list `info` with values v[] to o, in list order: a FLAG as a bool, the
 * others as numbers; entries without a key are left out. */
static void mb__figures(cJSON *o, const mb_stat_info_t *info, size_t n, const uint64_t *v,
                        int *ok) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (info[i].key == NULL)
      continue;
    if (info[i].kind != MB_STAT_FLAG)
      mb__num(o, info[i].key, v[i], ok);
    else if (cJSON_AddBoolToObject(o, info[i].key, v[i] != 0) == NULL)
      *ok = 0;
  }
}

/*
 * Add text that another process wrote (a client name, the status message) as a string:
 * bytes that are not valid UTF-8 become '?', so the response stays valid JSON text.
 */
static void mb__text(cJSON *o, const char *key, char *s, int *ok) {
  size_t n = strlen(s), at = 0;
  while ((at += mb__utf8_invalid(s + at, n - at, 0)) < n)
    s[at++] = '?';
  if (cJSON_AddStringToObject(o, key, s) == NULL)
    *ok = 0;
}

static cJSON *mb__obj(cJSON *parent, const char *key, int *ok) {
  cJSON *o = cJSON_AddObjectToObject(parent, key);
  if (o == NULL)
    *ok = 0;
  return o;
}

/* damage: {total, header, directory, server_status, clients, message}: what the broker found
 * forged in the control block and repaired or set aside (trust.h), counted since it started. */
static void mb__damage_report(const mb_broker_t *b, cJSON *o, int *ok) {
  cJSON *d = mb__obj(o, "damage", ok);
  int k;
  if (d == NULL)
    return;
  mb__num(d, "total", mb__damage_total(b), ok);
  for (k = 0; k < MB_DAMAGE_KINDS; k++)
    mb__num(d, mb__damage_key(k), b->trust.damage[k], ok);
}

static void mb__server(const mb_broker_t *b, cJSON *o, int *ok) {
  const mb_state_t *st = b->state;
  char msg[MB_STATUS_MSG_MAX], run_id[17], inst[MB_INSTANCE_MAX];
  mb__state_read_msg(st, msg);
  mb__run_id(b, run_id);
  if (cJSON_AddStringToObject(o, "status", mb__status_name(b->trust.server_status)) == NULL)
    *ok = 0;
  mb__text(o, "message", msg, ok);
  mb__num(o, "players", mb_load64(&st->game.total_players), ok);
  mb__num(o, "npcs", mb_load64(&st->game.total_npcs), ok);
  mb__num(o, "uptime_ms", (mb_os_mono_ns() - b->start_mono_ns) / 1000000u, ok);
  mb__num(o, "started_ms", b->start_wall_ns / 1000000u, ok);
  mb__num(o, "last_update_ms", mb_load64(&st->game.last_update_wall_ns) / 1000000u, ok);
  mb__num(o, "generation", mb_load64(&st->generation), ok);
  mb__num(o, "pid", b->self.pid, ok);
  memcpy(inst, b->cfg.instance, sizeof inst);
  inst[sizeof inst - 1] = '\0';
  mb__text(o, "instance", inst, ok);
  if (cJSON_AddStringToObject(o, "run_id", run_id) == NULL ||
      cJSON_AddStringToObject(o, "version", mb__version()) == NULL ||
      cJSON_AddStringToObject(o, "build", mb__build_id()) == NULL)
    *ok = 0;
  mb__num(o, "stats_version", MB_STATS_VERSION, ok);
  if (b->cfg.path[0]) {
    char path[MB_CONFIG_PATH_MAX];
    memcpy(path, b->cfg.path, sizeof path);
    path[sizeof path - 1] = '\0';
    mb__text(o, "config_path", path, ok);
  } else if (cJSON_AddNullToObject(o, "config_path") == NULL) {
    *ok = 0;
  }
  mb__damage_report(b, o, ok);
}

/* persist: {dir, interval_ms, last_flush_ms_ago (null: none yet), flushes, failures}, or
 * null when persist.dir is not set. */
static void mb__persist_status(const mb_broker_t *b, cJSON *o, int *ok) {
  const mb_persist_t *p = &b->persist;
  char dir[MB_PERSIST_PATH_MAX];
  cJSON *s;
  if (!p->enabled) {
    if (cJSON_AddNullToObject(o, "persist") == NULL)
      *ok = 0;
    return;
  }
  if ((s = mb__obj(o, "persist", ok)) == NULL)
    return;
  memcpy(dir, p->dir, sizeof dir);
  mb__text(s, "dir", dir, ok);
  mb__num(s, "interval_ms", p->interval_ms, ok);
  if (p->last_flush_ns != 0)
    mb__num(s, "last_flush_ms_ago", (mb_os_mono_ns() - p->last_flush_ns) / 1000000u, ok);
  else if (cJSON_AddNullToObject(s, "last_flush_ms_ago") == NULL)
    *ok = 0;
#define MB__X(where, field, key, ...) mb__num(s, key, p->field, ok);
  MB_PERSIST_STATS(MB__X)
#undef MB__X
}

static void mb__memory(const mb_broker_t *b, cJSON *o, int *ok) {
  mb_os_memstatus_t ms = {0, 0};
  uint64_t rss = 0, committed = mb__broker_committed(b);
  uint64_t peak = mb_load64(&b->state->game.committed_peak);
  mb_os_memstatus(&ms);
  mb_os_self_rss(&rss);
  mb__num(o, "system_total", ms.total, ok);
  mb__num(o, "system_available", ms.available, ok);
  mb__num(o, "committed", committed, ok);
  mb__num(o, "committed_peak", peak, ok);
  if (b->cfg.max_committed)
    mb__num(o, "limit", b->cfg.max_committed, ok);
  else if (cJSON_AddNullToObject(o, "limit") == NULL)
    *ok = 0;
  mb__num(o, "rss", rss, ok);
  mb__persist_status(b, o, ok);
  {
    uint32_t maps;
    uint64_t map_bytes;
    mb__maps_totals(b, &maps, &map_bytes);
    mb__num(o, "maps", maps, ok);
    mb__num(o, "map_bytes", map_bytes, ok);
  }
}

static cJSON *mb__regions(const mb_broker_t *b, int *ok) {
  cJSON *arr = cJSON_CreateArray();
  int i;
  if (arr == NULL) {
    *ok = 0;
    return NULL;
  }
  for (i = 0; i < b->nregions; i++) {
    const mb_region_desc_t *f = &b->trust.regions[i], *d = b->regions[i].desc;
    cJSON *r = cJSON_CreateObject();
    char name[MB_REGION_NAME_MAX];
    uint64_t v[MB_REGION_FIGS] = {0}; /* a FIX entry nobody sets reads 0 */
    if (r == NULL || !cJSON_AddItemToArray(arr, r)) {
      cJSON_Delete(r);
      *ok = 0;
      break;
    }
    memcpy(name, f->name, sizeof name);
    name[sizeof name - 1] = '\0';
    mb__text(r, "name", name, ok);
#define MB__X(where, field, ...) MB__LOAD(where, MB_REGION_FIG_##field, d->field)
    MB_REGION_STATS(MB__X)
#undef MB__X
    v[MB_REGION_FIG_reserved] = f->size;
    v[MB_REGION_FIG_lazy] = (f->flags & MB_REGION_LAZY) != 0;
    v[MB_REGION_FIG_page_size] = (f->flags & MB_REGION_LARGE_PAGES)
                                     ? mb_os_mem_config()->large_page_size
                                     : mb_os_mem_config()->page_size;
    v[MB_REGION_FIG_slot_count] = f->slot_count;
    v[MB_REGION_FIG_slot_size] = f->slot_size;
    /* The slot table follows the data in the section (broker.c), in whole normal pages, committed
     * at start; with large pages the section is longer (rounded), which `committed` counts. */
    v[MB_REGION_FIG_table_bytes] =
        f->slot_count ? mb__round_up(f->size + mb__region_table_size(f->size, f->page_size,
                                                                     f->slot_count, f->page_size),
                                     f->page_size) -
                            f->size
                      : 0;
    mb__figures(r, mb__region_stats, MB_REGION_FIGS, v, ok);
  }
  return arr;
}

static const char *mb__client_state_name(uint32_t s) {
  switch (s) {
  case MB_CLIENT_CLAIMED:
    return "claimed";
  case MB_CLIENT_ATTACHED:
    return "attached";
  case MB_CLIENT_DEAD:
    return "dead";
  default:
    return "unknown";
  }
}

/* a - b, 0 when b > a: counters read one by one may be a moment apart. */
static uint64_t mb__sub0(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

/* One entry of a client's private-memory row as read (mb__mem_row). */
typedef struct mb__mem_s {
  char name[MB_CLIENT_NAME_MAX];
  uint32_t kind; /* MB_MEM_LPOOL or MB_MEM_HEAP */
  uint32_t detail;
  mb_mem_figures_t fig; /* MB_MEM_STATS */
} mb__mem_t;

/*
 * The private pools and heaps client i publishes, into out[] (row order, unused entries left
 * out), when its entry word is `word` and that word is ATTACHED. Each entry's kind is loaded
 * (acquire) before its name and figures, which the client wrote before it stored the kind.
 * The word is read again afterwards: an attachment that ended or changed meanwhile may have
 * left a row that is half another's, and counts as showing nothing. Peak is at least in_use
 * (the two are stored one after the other). Returns the number of entries; *published gets
 * the row's publication time (wall clock ns, 0: never).
 */
static int mb__mem_row(const mb_state_t *st, uint32_t i, uint64_t word,
                       mb__mem_t out[MB_CLIENT_MEM_MAX], uint64_t *published) {
  const mb_client_mem_t *row = &st->client_mem[i];
  int j, n = 0;
  *published = 0;
  if (MB_CLIENT_WORD_STATE(word) != MB_CLIENT_ATTACHED)
    return 0;
  for (j = 0; j < MB_CLIENT_MEM_MAX; j++) {
    const mb_mem_entry_t *e = &row->entries[j];
    mb__mem_t *m = &out[n];
    m->kind = mb_load32(&e->kind);
    if (m->kind != MB_MEM_LPOOL && m->kind != MB_MEM_HEAP)
      continue;
    mb__name_get(e->name, m->name);
    m->detail = mb_load32(&e->detail);
#define MB__X(where, field, ...) m->fig.field = mb_load64(&e->field);
    MB_MEM_STATS(MB__X)
#undef MB__X
    if (m->fig.peak < m->fig.in_use)
      m->fig.peak = m->fig.in_use;
    n++;
  }
  *published = mb_load64(&row->published_ns);
  if (mb_load64(&st->clients[i].word) != word) {
    *published = 0;
    return 0;
  }
  return n;
}

/* The `private` member of a clients-table entry: the sums of what its row shows. */
static void mb__private_sums(const mb_state_t *st, uint32_t i, uint64_t word, cJSON *c, int *ok) {
  mb__mem_t mem[MB_CLIENT_MEM_MAX];
  uint64_t published, in_use = 0, committed = 0, pools = 0, heaps = 0;
  int j, n = mb__mem_row(st, i, word, mem, &published);
  cJSON *o = mb__obj(c, "private", ok);
  for (j = 0; j < n; j++) {
    in_use += mem[j].fig.in_use;
    committed += mem[j].fig.committed;
    pools += mem[j].kind == MB_MEM_LPOOL;
    heaps += mem[j].kind == MB_MEM_HEAP;
  }
  if (o == NULL)
    return;
  mb__num(o, "in_use", in_use, ok);
  mb__num(o, "committed", committed, ok);
  mb__num(o, "pools", pools, ok);
  mb__num(o, "heaps", heaps, ok);
}

static cJSON *mb__clients(const mb_broker_t *b, int *ok) {
  const mb_state_t *st = b->state;
  cJSON *o = cJSON_CreateObject(), *table;
  uint64_t now = mb_os_mono_ns();
  uint32_t i, attached = 0, hung = 0;
  uint32_t max = b->cfg.max_clients <= MB_CLIENTS_MAX ? b->cfg.max_clients : MB_CLIENTS_MAX;
  if (o == NULL) {
    *ok = 0;
    return NULL;
  }
  /* Counted from the table as it is now (the block's clients_attached follows each sweep);
   * hung ones are attached too. */
  for (i = 0; i < max; i++) {
    uint64_t word = mb_load64(&st->clients[i].word);
    attached += MB_CLIENT_WORD_STATE(word) == MB_CLIENT_ATTACHED;
    hung += MB_CLIENT_WORD_STATE(word) == MB_CLIENT_ATTACHED &&
            mb__broker_client_hung(b, i, word, NULL);
  }
  mb__num(o, "attached", attached, ok);
  mb__num(o, "hung", hung, ok);
  mb__num(o, "max", max, ok);
  mb__num(o, "heartbeat_timeout_ms", b->cfg.heartbeat_timeout_ms, ok);
  mb__num(o, "grace_period_ms", b->cfg.grace_period_ms, ok);
  if ((table = cJSON_AddArrayToObject(o, "table")) == NULL) {
    *ok = 0;
    return o;
  }
  for (i = 0; i < max; i++) {
    const mb_client_entry_t *e = &st->clients[i];
    uint64_t word = mb_load64(&e->word);
    uint32_t state = MB_CLIENT_WORD_STATE(word);
    uint64_t hb, dead;
    char name[MB_CLIENT_NAME_MAX];
    cJSON *c;
    if (state == MB_CLIENT_FREE)
      continue;
    if ((c = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(table, c)) {
      cJSON_Delete(c);
      *ok = 0;
      break;
    }
    mb__client_name_get(e, name);
    hb = mb_load64(&e->heartbeat_ns);
    dead = mb_load64(&e->dead_since_ns);
    mb__num(c, "index", i, ok);
    if (cJSON_AddStringToObject(c, "state", mb__client_state_name(state)) == NULL)
      *ok = 0;
    mb__num(c, "pid", MB_CLIENT_WORD_PID(word), ok);
    mb__text(c, "name", name, ok);
    mb__num(c, "attached_ms", mb_load64(&e->attach_wall_ns) / 1000000u, ok);
    if (hb && hb <= now)
      mb__num(c, "heartbeat_age_ms", (now - hb) / 1000000u, ok);
    else if (cJSON_AddNullToObject(c, "heartbeat_age_ms") == NULL)
      *ok = 0;
#define MB__LOAD_ROW64 mb_load64
#define MB__LOAD_ROW32 mb_load32
#define MB__X(where, field, key, ...) mb__num(c, key, MB__LOAD_##where(&e->field), ok);
    MB_CLIENT_STATS(MB__X)
#undef MB__X
    if (state == MB_CLIENT_ATTACHED) {
      uint64_t since;
      int is_hung = mb__broker_client_hung(b, i, word, &since);
      if (cJSON_AddBoolToObject(c, "hung", is_hung) == NULL ||
          cJSON_AddStringToObject(c, "watch", mb__broker_client_watch(b, i, word)) == NULL)
        *ok = 0;
      if (is_hung)
        mb__num(c, "hung_for_ms", since <= now ? (now - since) / 1000000u : 0, ok);
    }
    if (state == MB_CLIENT_DEAD) {
      uint64_t grace = (uint64_t)b->cfg.grace_period_ms * 1000000u;
      uint64_t age = dead && dead <= now ? now - dead : 0;
      if (cJSON_AddStringToObject(c, "dead_reason",
                                  mb__dead_reason_key(mb_load32(&e->dead_reason))) == NULL)
        *ok = 0;
      mb__num(c, "dead_for_ms", age / 1000000u, ok);
      mb__num(c, "freed_in_ms", (age < grace ? grace - age : 0) / 1000000u, ok);
    }
    mb__private_sums(st, i, word, c, ok);
  }
  return o;
}

/*
 * One pool: its name, then the figures of MB_POOL_STATS: the statistics words, and what
 * follows from them and the descriptor's fixed fields. The counters are loaded one at a time
 * while clients allocate, so in_use is read before peak (peak is raised after in_use) and
 * the free counts never go below 0.
 */
static void mb__pool(const mb_broker_t *b, uint32_t k, const mb_pool_desc_t *fx,
                     const mb_pool_desc_t *d, cJSON *o, int *ok) {
  uint64_t v[MB_POOL_FIGS] = {0}, allocated = 0, freed = 0, cap = fx->capacity, in_use, peak;
  int own = (int)k < b->npools && b->pools[k].base != NULL;
  char name[MB_POOL_NAME_MAX];
  if (own)
    mb__pool_totals(&b->pools[k], &allocated, &freed); /* the intent records' sums: exact */
#define MB__X(where, field, ...) MB__LOAD(where, MB_POOL_FIG_##field, d->field)
  MB_POOL_STATS(MB__X) /* allocated and freed are loaded before peak */
#undef MB__X
  if (!own) { /* not the broker's own: what was published */
    allocated = v[MB_POOL_FIG_allocated];
    freed = v[MB_POOL_FIG_freed];
    if (freed > allocated)
      freed = allocated;
  }
  in_use = allocated - freed;
  peak = v[MB_POOL_FIG_peak] > in_use ? v[MB_POOL_FIG_peak] : in_use;
  v[MB_POOL_FIG_object_size] = fx->object_size;
  v[MB_POOL_FIG_align] = fx->align;
  v[MB_POOL_FIG_capacity] = cap;
  v[MB_POOL_FIG_in_use] = in_use;
  v[MB_POOL_FIG_free] = mb__sub0(cap, in_use);
  v[MB_POOL_FIG_allocated] = allocated;
  v[MB_POOL_FIG_freed] = freed;
  v[MB_POOL_FIG_peak] = peak;
  v[MB_POOL_FIG_min_free] = mb__sub0(cap, peak);
  v[MB_POOL_FIG_bytes] = cap * fx->stride;
  v[MB_POOL_FIG_debug] = (fx->flags & MB_POOL_F_DEBUG) != 0;
  memcpy(name, fx->name, sizeof name);
  name[sizeof name - 1] = '\0';
  mb__text(o, "name", name, ok);
  mb__figures(o, mb__pool_stats, MB_POOL_FIGS, v, ok);
}

static cJSON *mb__pools(const mb_broker_t *b, int *ok) {
  const mb_state_t *st = b->state;
  uint32_t i, n = (uint32_t)b->npools;
  cJSON *arr = cJSON_CreateArray();
  if (arr == NULL) {
    *ok = 0;
    return NULL;
  }
  for (i = 0; i < n; i++) {
    cJSON *p = cJSON_CreateObject();
    if (p == NULL || !cJSON_AddItemToArray(arr, p)) {
      cJSON_Delete(p);
      *ok = 0;
      break;
    }
    mb__pool(b, i, &b->trust.pools[i], &st->pools[i], p, ok);
  }
  return arr;
}

/* One published pool or heap: name, kind, object_size (pools) or purpose (heaps), figures. */
static void mb__mem_entry(const mb__mem_t *m, cJSON *o, int *ok) {
  const uint64_t f[] = {
#define MB__X(where, field, ...) m->fig.field,
      MB_MEM_STATS(MB__X)
#undef MB__X
  };
  char name[MB_CLIENT_NAME_MAX];
  memcpy(name, m->name, sizeof name);
  mb__text(o, "name", name, ok);
  if (cJSON_AddStringToObject(o, "kind", m->kind == MB_MEM_LPOOL ? "pool" : "heap") == NULL)
    *ok = 0;
  if (m->kind == MB_MEM_LPOOL) {
    mb__num(o, "object_size", m->detail, ok);
  } else {
    static const char *const purposes[] = {"game_objects", "network", "temp", "log"};
    const char *purpose = m->detail < 4 ? purposes[m->detail] : "other";
    if (cJSON_AddStringToObject(o, "purpose", purpose) == NULL)
      *ok = 0;
  }
  mb__figures(o, mb__mem_stats, sizeof f / sizeof f[0], f, ok);
}

/* The heaps answer (see mb__report_heaps). */
static cJSON *mb__heaps(const mb_broker_t *b, const char *client, int *ok) {
  const mb_state_t *st = b->state;
  uint32_t i, max = b->cfg.max_clients <= MB_CLIENTS_MAX ? b->cfg.max_clients : MB_CLIENTS_MAX;
  uint64_t now = mb_os_wall_ns();
  cJSON *arr = cJSON_CreateArray();
  if (arr == NULL) {
    *ok = 0;
    return NULL;
  }
  for (i = 0; i < max && *ok; i++) {
    const mb_client_entry_t *e = &st->clients[i];
    uint64_t word = mb_load64(&e->word), published;
    mb__mem_t mem[MB_CLIENT_MEM_MAX];
    char name[MB_CLIENT_NAME_MAX];
    cJSON *c, *entries;
    int j, n;
    if (MB_CLIENT_WORD_STATE(word) != MB_CLIENT_ATTACHED)
      continue;
    mb__client_name_get(e, name);
    if (client != NULL && strcmp(name, client) != 0)
      continue;
    if ((n = mb__mem_row(st, i, word, mem, &published)) == 0)
      continue;
    if ((c = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(arr, c)) {
      cJSON_Delete(c);
      *ok = 0;
      break;
    }
    mb__text(c, "client", name, ok);
    mb__num(c, "index", i, ok);
    mb__num(c, "pid", MB_CLIENT_WORD_PID(word), ok);
    if (published)
      mb__num(c, "published_ms_ago", mb__sub0(now, published) / 1000000u, ok);
    else if (cJSON_AddNullToObject(c, "published_ms_ago") == NULL)
      *ok = 0;
    if ((entries = cJSON_AddArrayToObject(c, "entries")) == NULL) {
      *ok = 0;
      break;
    }
    for (j = 0; j < n; j++) {
      cJSON *m = cJSON_CreateObject();
      if (m == NULL || !cJSON_AddItemToArray(entries, m)) {
        cJSON_Delete(m);
        *ok = 0;
        break;
      }
      mb__mem_entry(&mem[j], m, ok);
    }
  }
  return arr;
}

cJSON *mb__report_heaps(const mb_broker_t *b, const char *client) {
  int ok = 1;
  cJSON *r = mb__heaps(b, client, &ok);
  if (!ok) {
    cJSON_Delete(r);
    return NULL;
  }
  return r;
}

cJSON *mb__report_regions(const mb_broker_t *b) {
  int ok = 1;
  cJSON *r = mb__regions(b, &ok);
  if (!ok) {
    cJSON_Delete(r);
    return NULL;
  }
  return r;
}

cJSON *mb__report_clients(const mb_broker_t *b) {
  int ok = 1;
  cJSON *r = mb__clients(b, &ok);
  if (!ok) {
    cJSON_Delete(r);
    return NULL;
  }
  return r;
}

cJSON *mb__report_pools(const mb_broker_t *b) {
  int ok = 1;
  cJSON *r = mb__pools(b, &ok);
  if (!ok) {
    cJSON_Delete(r);
    return NULL;
  }
  return r;
}

cJSON *mb__report_map(const mb_broker_t *b, int i) {
  const mb_map_slot_t *s;
  const mb_map_desc_t *d;
  char path[MB_CONFIG_PATH_MAX], sum[17];
  uint64_t now = mb_os_wall_ns(), at;
  cJSON *o;
  int ok = 1;
  if (i < 0 || i >= MB_MAPS_MAX || b->maps[i].state != MB_MAP_SLOT_LOADED)
    return NULL;
  s = &b->maps[i];
  d = &b->state->maps[i];
  if ((o = cJSON_CreateObject()) == NULL)
    return NULL;
  if (cJSON_AddStringToObject(o, "name", s->name) == NULL)
    ok = 0;
  memcpy(path, s->path, sizeof path);
  path[sizeof path - 1] = '\0';
  mb__text(o, "path", path, &ok);
  mb__num(o, "size", s->size, &ok);
  mb__num(o, "width", mb_load32(&d->width), &ok);
  mb__num(o, "height", mb_load32(&d->height), &ok);
  mb__num(o, "tiles", mb_load32(&d->tile_count), &ok);
  mb__num(o, "objects", mb_load32(&d->object_count), &ok);
  snprintf(sum, sizeof sum, "%016llx", (unsigned long long)mb_load64(&d->checksum));
  if (cJSON_AddStringToObject(o, "checksum", sum) == NULL)
    ok = 0;
  at = mb_load64(&d->loaded_wall_ns);
  mb__num(o, "loaded_ms_ago", mb__sub0(now, at) / 1000000u, &ok);
  mb__num(o, "seq", s->seq, &ok);
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *mb__report_maps(const mb_broker_t *b) {
  cJSON *arr = cJSON_CreateArray(), *m;
  int i;
  for (i = 0; arr != NULL && i < MB_MAPS_MAX; i++) {
    if (b->maps[i].state != MB_MAP_SLOT_LOADED)
      continue;
    if ((m = mb__report_map(b, i)) == NULL || !cJSON_AddItemToArray(arr, m)) {
      cJSON_Delete(m);
      cJSON_Delete(arr);
      return NULL;
    }
  }
  return arr;
}

cJSON *mb__report(const mb_broker_t *b, unsigned sections) {
  cJSON *rep = cJSON_CreateObject(), *o;
  int ok = rep != NULL;
  if (ok && (sections & MB_REPORT_SERVER) && (o = mb__obj(rep, "server", &ok)) != NULL)
    mb__server(b, o, &ok);
  if (ok && (sections & MB_REPORT_MEMORY) && (o = mb__obj(rep, "memory", &ok)) != NULL)
    mb__memory(b, o, &ok);
  if (ok && (sections & MB_REPORT_REGIONS) &&
      ((o = mb__regions(b, &ok)) == NULL || !cJSON_AddItemToObject(rep, "regions", o))) {
    cJSON_Delete(o);
    ok = 0;
  }
  if (ok && (sections & MB_REPORT_CLIENTS) &&
      ((o = mb__clients(b, &ok)) == NULL || !cJSON_AddItemToObject(rep, "clients", o))) {
    cJSON_Delete(o);
    ok = 0;
  }
  if (ok && (sections & MB_REPORT_POOLS) &&
      ((o = mb__pools(b, &ok)) == NULL || !cJSON_AddItemToObject(rep, "pools", o))) {
    cJSON_Delete(o);
    ok = 0;
  }
  if (!ok) {
    cJSON_Delete(rep);
    return NULL;
  }
  return rep;
}
