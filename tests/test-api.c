/*
 * test-api.c - the client API's promises about shared pools (membroker.h): mb_pool_stats gives
 * the figures of the broker's `pools` command under the same names and values (mbctl pools
 * --json, the real mbctl against a broker child), its struct holds to common/stats.h's list,
 * and mb_pool_next lets the object it just returned be freed during the walk.
 */
#include "childbroker.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "membroker.h"
#include "stats.h"

#ifndef MB_MBCTL_EXE
#error "MB_MBCTL_EXE must name the mbctl executable (CMake: $<TARGET_FILE:mbctl>)"
#endif

#define T_MBCTL_MS 30000
#define MBCTL(out, size, ...) mb_test_run_exe(MB_MBCTL_EXE, T_MBCTL_MS, out, size, __VA_ARGS__)

static char out[64 * 1024];

/* The test broker's config: the fixture's regions, pool "bullets" (48-byte objects aligned to
 * 16, 1000 of them) and debug pool "shells" (8), no heartbeat timeout (the test process attaches
 * and does not beat). */
static void api_config(mb_config_t *cfg) {
  fx_pool(cfg, "bullets", 48, 16, 1000);
  cfg->pools[fx_pool(cfg, "shells", 32, 8, 8)].debug = 1;
  cfg->heartbeat_timeout_ms = 0;
}

BROKER_CONFIG(api, api_config)

/* ---- mb_shared_pool_stats_t against the list ----------------------------------------------- */

/*
 * The header's figures by name, in the header's order: the public header cannot include
 * common/stats.h (it is not installed), so its fields are written out there and held to the
 * list here. A figure added to MB_POOL_STATS with a key fails pool_stats_struct_follows_list
 * until the header has it, at the same place.
 */
typedef struct {
  const char *key;
  size_t offset;
} api_field_t;
#define API_FIELD(f)                                                                               \
  { #f, offsetof(mb_shared_pool_stats_t, f) }
static const api_field_t api_fields[] = {
    API_FIELD(object_size), API_FIELD(align),     API_FIELD(capacity),  API_FIELD(in_use),
    API_FIELD(free),        API_FIELD(allocated), API_FIELD(freed),     API_FIELD(peak),
    API_FIELD(min_free),    API_FIELD(misses),    API_FIELD(reclaimed), API_FIELD(errors),
    API_FIELD(refills),     API_FIELD(bytes),     API_FIELD(debug),
};
#define API_NFIELDS (sizeof api_fields / sizeof api_fields[0])
static const mb_stat_info_t list_pool_stats[] = {MB_POOL_STATS(MB_STAT_INFO)};
#define API_NLIST (sizeof list_pool_stats / sizeof list_pool_stats[0])

static uint64_t field_of(const mb_shared_pool_stats_t *st, size_t i) {
  uint64_t v;
  memcpy(&v, (const char *)st + api_fields[i].offset, sizeof v);
  return v;
}

/* Every keyed entry of MB_POOL_STATS, in list order, is a 64-bit field of the struct, one
 * after the other after size and version, and the struct has nothing else. */
TEST(pool_stats_struct_follows_list) {
  size_t i, k = 0;
  ASSERT_EQ(offsetof(mb_shared_pool_stats_t, size), 0);
  ASSERT_EQ(offsetof(mb_shared_pool_stats_t, version), 4);
  for (i = 0; i < API_NLIST; i++) {
    if (list_pool_stats[i].key == NULL)
      continue; /* kept in shared memory, not reported */
    if (k >= API_NFIELDS)
      FAIL("MB_POOL_STATS has '%s', mb_shared_pool_stats_t (membroker.h) does not: add it "
           "after '%s' and bump MB_SHARED_POOL_STATS_VERSION",
           list_pool_stats[i].key, api_fields[API_NFIELDS - 1].key);
    if (strcmp(list_pool_stats[i].key, api_fields[k].key) != 0)
      FAIL("figure %u of MB_POOL_STATS is '%s', of mb_shared_pool_stats_t '%s'", (unsigned)k,
           list_pool_stats[i].key, api_fields[k].key);
    ASSERT_EQ(api_fields[k].offset, 8 + 8 * k);
    k++;
  }
  ASSERT_EQ(k, API_NFIELDS);
  ASSERT_EQ(sizeof(mb_shared_pool_stats_t), 8 + 8 * API_NFIELDS);
  ASSERT_EQ(sizeof(mb_shared_pool_stats_t), 128); /* version 1, as the header says */
}

/* The pool named `name` in `pools --json` (an array of objects). */
static cJSON *pool_json(cJSON *arr, const char *name) {
  cJSON *p;
  cJSON_ArrayForEach(p, arr) {
    cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return p;
  }
  FAIL("pool '%s' is not in pools --json:\n%s", name, out);
  return NULL;
}

/* Each figure of st equals the same key of the pool's object in mbctl pools --json (a FLAG is
 * the JSON true / false, 1 / 0 in the struct), and the JSON has no figure the struct lacks. */
static void same_as_mbctl(const tbroker_t *t, const char *name, const mb_shared_pool_stats_t *st) {
  cJSON *arr, *p, *item;
  size_t i;
  int n = 0;
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t->instance, "pools", "--json", NULL), 0, out);
  arr = cJSON_Parse(out);
  if (!cJSON_IsArray(arr))
    FAIL("pools --json is not an array:\n%s", out);
  p = pool_json(arr, name);
  for (i = 0; i < API_NFIELDS; i++) {
    uint64_t want;
    item = cJSON_GetObjectItemCaseSensitive(p, api_fields[i].key);
    if (item == NULL)
      FAIL("pools --json has no '%s' for pool '%s':\n%s", api_fields[i].key, name, out);
    want = cJSON_IsBool(item) ? (uint64_t)cJSON_IsTrue(item) : (uint64_t)item->valuedouble;
    if (field_of(st, i) != want)
      FAIL("pool '%s': mb_pool_stats says %s = %llu, mbctl pools --json %llu", name,
           api_fields[i].key, (unsigned long long)field_of(st, i), (unsigned long long)want);
  }
  cJSON_ArrayForEach(item, p) n++;
  ASSERT_EQ(n, (int)API_NFIELDS + 1); /* + name */
  cJSON_Delete(arr);
}

/*
 * A game server's figures are the broker's: after allocations through thread caches (refills),
 * frees, a refused double free (errors) and a full debug pool (misses), mb_pool_stats of each
 * pool equals mbctl pools --json key by key. Bad arguments are refused with a message.
 */
TEST(pool_stats_match_mbctl) {
  tbroker_t t = {0};
  mb_client_t *cl = NULL;
  mb_pool_t *bullets = NULL, *shells = NULL;
  mb_shared_pool_stats_t st;
  void *obj[40], *x;
  int i;
  broker_up_config(&t, "ps", "api");
  ASSERT_OK(mb_attach(t.instance, "zone-1", NULL, &cl));
  ASSERT_OK(mb_pool_open(cl, "bullets", 0, &bullets));
  ASSERT_OK(mb_pool_open(cl, "shells", 0, &shells));
  for (i = 0; i < 40; i++)
    ASSERT_OK(mb_pool_alloc(bullets, &obj[i]));
  for (i = 0; i < 10; i++)
    ASSERT_OK(mb_pool_free(bullets, obj[i]));
  ASSERT_ERR(mb_pool_free(bullets, obj[0]), MB_EINVAL); /* a double free */
  for (i = 0; i < 8; i++)
    ASSERT_OK(mb_pool_alloc(shells, &obj[i]));
  ASSERT_ERR(mb_pool_alloc(shells, &x), MB_EFULL);
  ASSERT_OK(mb_pool_free(shells, obj[0]));

  memset(&st, 0xAB, sizeof st);
  st.size = (uint32_t)sizeof st;
  ASSERT_OK(mb_pool_stats(bullets, &st));
  ASSERT_EQ(st.size, sizeof st);
  ASSERT_EQ(st.version, MB_SHARED_POOL_STATS_VERSION);
  ASSERT_EQ_U64(st.object_size, 48);
  ASSERT_EQ_U64(st.align, 16);
  ASSERT_EQ_U64(st.capacity, 1000);
  ASSERT_EQ_U64(st.allocated, 64); /* two refills of 32 into this thread's cache */
  ASSERT_EQ_U64(st.refills, 2);
  ASSERT_EQ_U64(st.errors, 1);
  ASSERT_EQ_U64(st.debug, 0);
  same_as_mbctl(&t, "bullets", &st);

  st.size = (uint32_t)sizeof st;
  ASSERT_OK(mb_pool_stats(shells, &st));
  ASSERT_EQ_U64(st.capacity, 8);
  ASSERT_EQ_U64(st.in_use, 7);
  ASSERT_EQ_U64(st.free, 1);
  ASSERT_EQ_U64(st.peak, 8);
  ASSERT_EQ_U64(st.min_free, 0);
  ASSERT_EQ_U64(st.misses, 1);
  ASSERT_EQ_U64(st.debug, 1);
  same_as_mbctl(&t, "shells", &st);

  /* Bad use. */
  st.size = 64;
  ASSERT_ERR(mb_pool_stats(bullets, &st), MB_EINVAL);
  ASSERT_CONTAINS(mb_last_error(), "stats->size must be sizeof(mb_shared_pool_stats_t) (128)");
  ASSERT_ERR(mb_pool_stats(bullets, NULL), MB_EINVAL);
  st.size = (uint32_t)sizeof st;
  ASSERT_ERR(mb_pool_stats(NULL, &st), MB_EINVAL);
  ASSERT_OK(mb_detach(cl));
  broker_down(&t);
}

/* ---- mb_pool_next ---------------------------------------------------------------------------- */

#define WALK_N 200

/* Index of obj among the n objects of objs, or -1. */
static int find_obj(void *const *objs, int n, const void *obj) {
  int i;
  for (i = 0; i < n; i++)
    if (objs[i] == obj)
      return i;
  return -1;
}

/*
 * Freeing the object mb_pool_next just returned is allowed (membroker.h): with a hole-ridden
 * pool (every third object freed first), a walk that frees every other object it is given
 * still visits each object it holds exactly once, and the objects it did not free are then
 * exactly what a second walk finds. Through a cached handle and an uncached one.
 */
static void walk_freeing(unsigned flags, const char *tag) {
  mb_config_t cfg;
  mb_broker_t b;
  mb_client_t *c;
  mb_pool_t *p;
  static void *objs[WALK_N];
  static int seen[WALK_N], kept[WALK_N];
  uint64_t cursor = 0;
  void *o;
  int i, k, visits = 0, held = 0, rc;
  fx_config_pid(&cfg, "w", tag);
  fx_pool(&cfg, "obj", 64, 64, WALK_N + 16);
  cfg.heartbeat_timeout_ms = 0;
  mb__log_open(MB_LOG_ERROR, "");
  ASSERT_OK(mb__broker_start(&b, &cfg, 0));
  ASSERT_OK(mb_attach(cfg.instance, "walker", NULL, &c));
  ASSERT_OK(mb_pool_open(c, "obj", flags, &p));
  for (i = 0; i < WALK_N; i++)
    ASSERT_OK(mb_pool_alloc(p, &objs[i]));
  for (i = 0; i < WALK_N; i += 3) {
    ASSERT_OK(mb_pool_free(p, objs[i]));
    objs[i] = NULL;
  }
  memset(seen, 0, sizeof seen);
  memset(kept, 0, sizeof kept);
  while ((rc = mb_pool_next(p, &cursor, &o)) == 0) {
    if ((k = find_obj(objs, WALK_N, o)) < 0)
      FAIL("walk %s: mb_pool_next gave %p, not an object this client holds", tag, o);
    seen[k]++;
    if (visits++ % 2 == 0)
      ASSERT_OK(mb_pool_free(p, o)); /* the current object */
    else
      kept[k] = 1;
  }
  ASSERT_ERR(rc, MB_ENOENT);
  for (i = 0; i < WALK_N; i++) {
    if (objs[i] == NULL && seen[i] != 0)
      FAIL("walk %s: object %d was freed before the walk and visited", tag, i);
    if (objs[i] != NULL && seen[i] != 1)
      FAIL("walk %s: object %d visited %d times (want 1)", tag, i, seen[i]);
    held += kept[i];
  }
  ASSERT_EQ(visits, WALK_N - (WALK_N + 2) / 3);
  /* A second walk: exactly the ones kept. */
  cursor = 0;
  while ((rc = mb_pool_next(p, &cursor, &o)) == 0) {
    k = find_obj(objs, WALK_N, o);
    if (k < 0 || !kept[k])
      FAIL("walk %s: the second walk gave object %d, which was freed", tag, k);
    held--;
  }
  ASSERT_ERR(rc, MB_ENOENT);
  ASSERT_EQ(held, 0);
  ASSERT_OK(mb_detach(c));
  mb__broker_stop(&b);
}

TEST(pool_walk_free_current) {
  walk_freeing(0, "c");
  walk_freeing(MB_POOL_NO_CACHE, "u");
}

/* ---- UTF-8 arguments (mb_os_utf8_argv) ------------------------------------------------------ */

/*
 * Text outside the ANSI code page typed on the command line reaches the broker intact: mbctl's
 * set-message with Latin, Greek, CJK and an emoji is what status --json reads back, and gmaptool
 * creates and reads a map whose file name has them. On Windows (Wine) main's argv would carry
 * '?' for them; mb_os_utf8_argv takes the wide command line instead.
 */
TEST(utf8_arguments_reach_the_broker) {
  static const char msg[] = "zon\xC3\xA9-1 \xCE\xB1\xCE\xB2 \xE6\x97\xA5\xE6\x9C\xAC "
                            "\xF0\x9F\x8E\xAE ok";
  tbroker_t t = {0};
  char path[160], want[400];
  cJSON *j, *m;
  broker_up_config(&t, "u8", "api");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-message", msg, NULL), 0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "server", "--json", NULL),
              0, out);
  j = cJSON_Parse(out);
  m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "server"), "message");
  if (!cJSON_IsString(m))
    FAIL("no server.message in status --json:\n%s", out);
  ASSERT_STR_EQ(m->valuestring, msg);
  cJSON_Delete(j);
  broker_down(&t);

  mb_test_name(path, sizeof path, "\xC3\xA9\xCE\xB1\xE6\x97\xA5.gmap");
  ASSERT_EXIT(mb_test_run_exe(MB_GMAPTOOL_EXE, T_MBCTL_MS, out, sizeof out, "create", path,
                              "--width", "4", "--height", "2", NULL),
              0, out);
  snprintf(want, sizeof want, "created     %s: 4 x 2 tiles", path);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(
      mb_test_run_exe(MB_GMAPTOOL_EXE, T_MBCTL_MS, out, sizeof out, "info", path, "--json", NULL),
      0, out);
  j = cJSON_Parse(out);
  m = cJSON_GetObjectItemCaseSensitive(j, "path");
  if (!cJSON_IsString(m))
    FAIL("no path in gmaptool info --json:\n%s", out);
  ASSERT_STR_EQ(m->valuestring, path);
  cJSON_Delete(j);
  mb_os_file_discard(path);
}
