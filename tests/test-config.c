/*
 * test-config.c - the configuration: the defaults and the shipped config/membroker.json, a
 * full custom file, every accepted size form, object pools, the effective-config round trip,
 * and a table of bad configs, each refused with MB_ECONFIG and one message naming the file, the key
 * path and the problem; then what a start checks on this machine (groups, persist.dir,
 * log.file, maps, slot tables against physical memory, the commit limit) as `membroker
 * --check-config` and a start report it (MB_BROKER_EXE).
 */
#include "task.h"

#include "config.h"
#include "fixture.h"
#include "gmap.h"

#ifndef MB_SOURCE_DIR
#error "MB_SOURCE_DIR must name the source tree (target_compile_definitions in CMake)"
#endif
#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

/* Parse a NUL-terminated text as "test.json". */
static int parse(mb_config_t *cfg, const char *text) {
  return mb__config_parse(cfg, text, strlen(text), "test.json");
}

/* Write `len` bytes to a file named after this test process; returns the name in buf. */
static const char *write_temp(char *buf, size_t size, const char *tag, const char *text,
                              size_t len) {
  char name[64];
  FILE *f;
  mb_test_name(name, sizeof name, tag);
  snprintf(buf, size, "%s.json", name);
  f = fopen(buf, "wb");
  if (f == NULL)
    FAIL("cannot create %s", buf);
  if (len > 0 && fwrite(text, 1, len, f) != len)
    FAIL("cannot write %s", buf);
  fclose(f);
  return buf;
}

/* Two configs are equal field by field (reported by name) and byte for byte. */
static void assert_cfg_eq(const mb_config_t *a, const mb_config_t *b) {
  int i;
  ASSERT_STR_EQ(a->path, b->path);
  ASSERT_STR_EQ(a->instance, b->instance);
  ASSERT_EQ(a->log_level, b->log_level);
  ASSERT_STR_EQ(a->log_file, b->log_file);
  ASSERT_EQ(a->log_event_log, b->log_event_log);
  ASSERT_EQ(a->log_max_bytes, b->log_max_bytes);
  ASSERT_EQ(a->log_keep, b->log_keep);
  ASSERT_EQ(a->heartbeat_timeout_ms, b->heartbeat_timeout_ms);
  ASSERT_EQ(a->grace_period_ms, b->grace_period_ms);
  ASSERT_EQ(a->max_clients, b->max_clients);
  ASSERT_EQ(a->pipe_mode, b->pipe_mode);
  ASSERT_STR_EQ(a->pipe_operators_group, b->pipe_operators_group);
  ASSERT_EQ_U64(a->pipe_max_line, b->pipe_max_line);
  ASSERT_EQ(a->pipe_max_connections, b->pipe_max_connections);
  ASSERT_EQ(a->pipe_admin_reserve, b->pipe_admin_reserve);
  ASSERT_EQ(a->pipe_idle_timeout_ms, b->pipe_idle_timeout_ms);
  ASSERT_EQ(a->pipe_line_timeout_ms, b->pipe_line_timeout_ms);
  ASSERT_EQ(a->section_mode, b->section_mode);
  ASSERT_STR_EQ(a->section_group, b->section_group);
  ASSERT_EQ_U64(a->max_committed, b->max_committed);
  ASSERT_EQ(a->nregions, b->nregions);
  for (i = 0; i < a->nregions; i++) {
    ASSERT_STR_EQ(a->regions[i].name, b->regions[i].name);
    ASSERT_EQ_U64(a->regions[i].size, b->regions[i].size);
    ASSERT_EQ(a->regions[i].lazy, b->regions[i].lazy);
    ASSERT_EQ(a->regions[i].slot_size, b->regions[i].slot_size);
  }
  ASSERT_EQ(a->npools, b->npools);
  for (i = 0; i < a->npools; i++) {
    ASSERT_STR_EQ(a->pools[i].name, b->pools[i].name);
    ASSERT_EQ(a->pools[i].object_size, b->pools[i].object_size);
    ASSERT_EQ(a->pools[i].align, b->pools[i].align);
    ASSERT_EQ(a->pools[i].capacity, b->pools[i].capacity);
    ASSERT_EQ(a->pools[i].debug, b->pools[i].debug);
  }
  ASSERT_EQ(memcmp(a, b, sizeof *a), 0);
}

/* cfg -> JSON -> text -> cfg gives cfg back (path aside: parsed text has none). */
static void assert_round_trip(const mb_config_t *cfg) {
  mb_config_t back, want;
  cJSON *json = mb__config_to_json(cfg);
  char *text;
  ASSERT(json != NULL);
  text = cJSON_PrintUnformatted(json);
  ASSERT(text != NULL);
  memset(&back, 0xAB, sizeof back);
  ASSERT_OK(mb__config_parse(&back, text, strlen(text), "effective"));
  want = *cfg;
  memset(want.path, 0, sizeof want.path);
  assert_cfg_eq(&back, &want);
  cJSON_free(text);
  cJSON_Delete(json);
}

TEST(defaults) {
  mb_config_t c;
  size_t i;
  memset(&c, 0x5A, sizeof c);
  mb__config_defaults(&c);
  ASSERT_STR_EQ(c.path, "");
  ASSERT_STR_EQ(c.instance, "default");
  ASSERT_EQ(c.log_level, MB_LOG_INFO);
  ASSERT_STR_EQ(c.log_file, "");
  ASSERT_EQ(c.log_event_log, 1);
  ASSERT_EQ(c.log_max_bytes, 10 * 1024 * 1024);
  ASSERT_EQ(c.log_keep, 5);
  ASSERT_EQ(c.heartbeat_timeout_ms, 10000);
  ASSERT_EQ(c.grace_period_ms, 30000);
  ASSERT_EQ(c.max_clients, 64);
  ASSERT_EQ(c.pipe_mode, 0660);
  ASSERT_STR_EQ(c.pipe_operators_group, "");
  ASSERT_EQ_U64(c.pipe_max_line, 64 * KIB);
  ASSERT_EQ(c.pipe_max_connections, 1024);
  ASSERT_EQ(c.pipe_admin_reserve, 4);
  ASSERT_EQ(c.pipe_idle_timeout_ms, 300000);
  ASSERT_EQ(c.pipe_line_timeout_ms, 10000);
  ASSERT_EQ(c.section_mode, 0660);
  ASSERT_STR_EQ(c.section_group, "");
  ASSERT_EQ_U64(c.max_committed, 0);
  ASSERT_EQ(c.nregions, 3);
  ASSERT_STR_EQ(c.regions[0].name, "world");
  ASSERT_EQ_U64(c.regions[0].size, 64 * MIB);
  ASSERT_EQ(c.regions[0].lazy, 0);
  ASSERT_EQ(c.regions[0].slot_size, 0);
  ASSERT_STR_EQ(c.regions[1].name, "players");
  ASSERT_EQ_U64(c.regions[1].size, 32 * MIB);
  ASSERT_EQ(c.regions[1].lazy, 1);
  ASSERT_EQ(c.regions[1].slot_size, 1024);
  ASSERT_STR_EQ(c.regions[2].name, "npc");
  ASSERT_EQ_U64(c.regions[2].size, 16 * MIB);
  ASSERT_EQ(c.regions[2].lazy, 0);
  ASSERT_EQ(c.regions[2].slot_size, 0);
  /* No pools, and every byte of the pool array zero. */
  ASSERT_EQ(c.npools, 0);
  for (i = 0; i < sizeof c.pools; i++)
    ASSERT_EQ(((const unsigned char *)c.pools)[i], 0);
  /* The defaults pass their own validation. */
  assert_round_trip(&c);
}

TEST(empty_object_is_defaults) {
  mb_config_t c, d;
  mb__config_defaults(&d);
  ASSERT_OK(parse(&c, "{}"));
  assert_cfg_eq(&c, &d);
  /* A UTF-8 byte order mark, the ignored keys and trailing whitespace are fine. */
  ASSERT_OK(parse(&c, "\xEF\xBB\xBF{ \"comment\": \"x\", \"$schema\": \"y\" }\r\n"));
  assert_cfg_eq(&c, &d);
}

TEST(shipped_file_equals_defaults) {
  const char *path = MB_SOURCE_DIR "/config/membroker.json";
  mb_config_t c, d;
  mb__config_defaults(&d);
  ASSERT_OK(mb__config_load(&c, path));
  ASSERT_STR_EQ(c.path, path);
  memset(c.path, 0, sizeof c.path);
  assert_cfg_eq(&c, &d);
}

TEST(full_custom_config) {
  static const char text[] =
      "{\n"
      "  \"$schema\": \"https://example.invalid/membroker.schema.json\",\n"
      "  \"comment\": \"test\",\n"
      "  \"instance\": \"World-2_eu\",\n"
      "  \"log\": {\"level\": \"debug\", \"file\": \"/var/log/membroker.log\", "
      "\"event_log\": false, \"max_bytes\": \"4KiB\", \"keep\": 0},\n"
      "  \"clients\": {\"heartbeat_timeout_ms\": 0, \"grace_period_ms\": 86400000, "
      "\"max\": 256, \"comment\": \"c\"},\n"
      "  \"pipe\": {\"mode\": \"0600\", \"operators_group\": \"ops\", \"max_line\": \"1 MiB\",\n"
      "           \"max_connections\": 100000},\n"
      "  \"sections\": {\"mode\": \"640\", \"group\": \"game servers\"},\n"
      "  \"limits\": {\"max_committed\": \"8GiB\"},\n"
      "  \"regions\": [\n"
      "    {\"name\": \"map\", \"size\": \"1GiB\"},\n"
      "    {\"name\": \"slots-2\", \"size\": 131072, \"commit\": \"start\", \"slot_size\": 64},\n"
      "    {\"name\": \"big_lazy\", \"size\": \"4 TiB\", \"commit\": \"lazy\", "
      "\"slot_size\": \"1MiB\", \"comment\": \"r\"},\n"
      "    {\"name\": \"exact\", \"size\": \"64KiB\", \"slot_size\": 65536}\n"
      "  ]\n"
      "}\n";
  mb_config_t c;
  ASSERT_OK(parse(&c, text));
  ASSERT_STR_EQ(c.path, "");
  ASSERT_STR_EQ(c.instance, "World-2_eu");
  ASSERT_EQ(c.log_level, MB_LOG_DEBUG);
  ASSERT_STR_EQ(c.log_file, "/var/log/membroker.log");
  ASSERT_EQ(c.log_event_log, 0);
  ASSERT_EQ(c.log_max_bytes, 4096);
  ASSERT_EQ(c.log_keep, 0);
  ASSERT_EQ(c.heartbeat_timeout_ms, 0);
  ASSERT_EQ(c.grace_period_ms, 86400000);
  ASSERT_EQ(c.max_clients, 256);
  ASSERT_EQ(c.pipe_mode, 0600);
  ASSERT_STR_EQ(c.pipe_operators_group, "ops");
  ASSERT_EQ_U64(c.pipe_max_line, MIB);
  ASSERT_EQ(c.pipe_max_connections, 100000);
  ASSERT_EQ(c.section_mode, 0640);
  ASSERT_STR_EQ(c.section_group, "game servers");
  ASSERT_EQ_U64(c.max_committed, 8 * GIB); /* big_lazy's slot table alone takes 4 GiB */
  ASSERT_EQ(c.nregions, 4);
  ASSERT_STR_EQ(c.regions[0].name, "map");
  ASSERT_EQ_U64(c.regions[0].size, GIB);
  ASSERT_EQ(c.regions[0].lazy, 0);
  ASSERT_EQ(c.regions[0].slot_size, 0);
  /* Slots on a region committed at start are allowed. */
  ASSERT_STR_EQ(c.regions[1].name, "slots-2");
  ASSERT_EQ_U64(c.regions[1].size, 128 * KIB);
  ASSERT_EQ(c.regions[1].lazy, 0);
  ASSERT_EQ(c.regions[1].slot_size, 64);
  ASSERT_STR_EQ(c.regions[2].name, "big_lazy");
  ASSERT_EQ_U64(c.regions[2].size, 4 * TIB);
  ASSERT_EQ(c.regions[2].lazy, 1);
  ASSERT_EQ(c.regions[2].slot_size, MIB);
  ASSERT_STR_EQ(c.regions[3].name, "exact");
  ASSERT_EQ(c.regions[3].slot_size, 64 * KIB);
  assert_round_trip(&c);
}

TEST(partial_config_keeps_other_defaults) {
  mb_config_t c, d;
  mb__config_defaults(&d);
  ASSERT_OK(parse(&c, "{\"clients\": {\"max\": 8}, \"log\": {\"file\": null}}"));
  d.max_clients = 8;
  assert_cfg_eq(&c, &d);
  /* A "regions" list replaces the default list entirely. */
  ASSERT_OK(parse(&c, "{\"regions\": [{\"name\": \"only\", \"size\": 65536}]}"));
  ASSERT_EQ(c.nregions, 1);
  ASSERT_STR_EQ(c.regions[0].name, "only");
  ASSERT_STR_EQ(c.regions[1].name, "");
  ASSERT_EQ_U64(c.regions[1].size, 0);
}

TEST(sizes_in_every_form) {
  static const struct {
    const char *value; /* JSON value of limits.max_committed */
    uint64_t bytes;
  } sizes[] = {
      {"0", 0},
      {"65536", 64 * KIB},
      {"\"65536\"", 64 * KIB},
      {"\"512B\"", 512},
      {"\"512 B\"", 512},
      {"\"1KiB\"", KIB},
      {"\"1 KiB\"", KIB},
      {"\"1   KiB\"", KIB},
      {"\"64MiB\"", 64 * MIB},
      {"\"2GiB\"", 2 * GIB},
      {"\"3TiB\"", 3 * TIB},
      {"\"0B\"", 0},
      {"1e6", 1000000},
      {"9007199254740992", UINT64_C(9007199254740992)},
      {"\"9223372036854775807\"", UINT64_C(9223372036854775807)},
      {"\"8388607TiB\"", UINT64_C(8388607) * TIB},
      {"\"0001KiB\"", KIB},
  };
  char text[256];
  mb_config_t c;
  size_t i;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    snprintf(text, sizeof text,
             "{\"regions\": [{\"name\": \"r\", \"size\": 65536, \"commit\": \"lazy\"}],"
             " \"limits\": {\"max_committed\": %s}}",
             sizes[i].value);
    if (parse(&c, text) != 0)
      FAIL("size %s: %s", sizes[i].value, mb_last_error());
    if (c.max_committed != sizes[i].bytes)
      FAIL("size %s: got %llu, want %llu", sizes[i].value, (unsigned long long)c.max_committed,
           (unsigned long long)sizes[i].bytes);
    /* Above 2^53 the effective config writes a string, so it still reads back exactly. */
    assert_round_trip(&c);
  }
  /* The same syntax for region sizes, slot sizes and the pipe's line limit. */
  ASSERT_OK(parse(&c, "{\"pipe\": {\"max_line\": \"16MiB\"}, \"regions\": [{\"name\": \"a\","
                      " \"size\": \"1 GiB\", \"slot_size\": \"512 B\"}]}"));
  ASSERT_EQ_U64(c.pipe_max_line, 16 * MIB);
  ASSERT_EQ_U64(c.regions[0].size, GIB);
  ASSERT_EQ(c.regions[0].slot_size, 512);
}

TEST(effective_config_json) {
  mb_config_t c;
  cJSON *j, *pipe, *regions;
  ASSERT_OK(parse(&c, "{\"pipe\": {\"mode\": \"0640\", \"max_line\": \"2MiB\"},"
                      " \"sections\": {\"group\": \"game\"}}"));
  j = mb__config_to_json(&c);
  ASSERT(j != NULL);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(j, "instance")->valuestring, "default");
  pipe = cJSON_GetObjectItemCaseSensitive(j, "pipe");
  ASSERT(cJSON_IsObject(pipe));
  /* Sizes as integers, modes as octal strings, unset strings as null. */
  ASSERT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(pipe, "max_line")));
  ASSERT_EQ_U64(cJSON_GetObjectItemCaseSensitive(pipe, "max_line")->valuedouble, 2 * MIB);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(pipe, "mode")->valuestring, "0640");
  ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(pipe, "operators_group")));
  ASSERT_STR_EQ(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "sections"), "group")
          ->valuestring,
      "game");
  ASSERT_STR_EQ(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "log"), "level")
          ->valuestring,
      "info");
  regions = cJSON_GetObjectItemCaseSensitive(j, "regions");
  ASSERT_EQ(cJSON_GetArraySize(regions), 3);
  ASSERT_STR_EQ(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(regions, 1), "commit")->valuestring,
      "lazy");
  ASSERT_EQ(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(regions, 1), "slot_size")->valuedouble,
      1024);
  /* "pools" is always there, right after "regions": [] when there are none. */
  ASSERT(regions->next != NULL);
  ASSERT_STR_EQ(regions->next->string, "pools");
  ASSERT(cJSON_IsArray(regions->next));
  ASSERT_EQ(cJSON_GetArraySize(regions->next), 0);
  cJSON_Delete(j);
  assert_round_trip(&c);
}

/* The tests' config fixture (fixture.h): the text it writes for the membroker executable
 * parses back to the very config it was built from, overrides included, and a bad member
 * appended to it is refused by name. */
TEST(fixture_text_parses_back) {
  mb_config_t c, back;
  char *text;
  fx_config_pid(&c, "t", "fx");
  ASSERT_EQ(c.nregions, 2);
  ASSERT_STR_EQ(c.regions[0].name, "world");
  ASSERT_EQ_U64(c.regions[0].size, FX_WORLD_SIZE);
  ASSERT_EQ(c.regions[0].lazy, 0);
  ASSERT_STR_EQ(c.regions[1].name, "players");
  ASSERT_EQ_U64(c.regions[1].size, FX_PLAYERS_SIZE);
  ASSERT_EQ(c.regions[1].lazy, 1);
  ASSERT_EQ(c.regions[1].slot_size, FX_SLOT_SIZE);
  fx_region(&c, "npc", 64 * KIB, 0, 0);
  fx_region(&c, "players", 256 * KIB, 1, 4096); /* changed in place, not appended */
  fx_region_drop(&c, "world");
  ASSERT_EQ(c.nregions, 2);
  ASSERT_STR_EQ(c.regions[0].name, "players");
  ASSERT_EQ_U64(c.regions[0].size, 256 * KIB);
  ASSERT_EQ(c.regions[0].slot_size, 4096);
  ASSERT_STR_EQ(c.regions[1].name, "npc");
  c.pools[fx_pool(&c, "bolts", 64, 16, 100)].debug = 1;
  fx_log(&c, MB_LOG_DEBUG, "fx.log");
  c.heartbeat_timeout_ms = 0;
  text = fx_config_text(&c, NULL);
  memset(&back, 0xAB, sizeof back);
  ASSERT_OK(parse(&back, text));
  assert_cfg_eq(&back, &c);
  free(text);
  text = fx_config_text(&c, "\"regoins\": []");
  ASSERT_ERR(parse(&back, text), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "unknown key \"regoins\" (did you mean \"regions\"?)");
  free(text);
}

TEST(pools_two_pools) {
  static const char text[] =
      "{\n"
      "  \"pools\": [\n"
      "    {\"name\": \"bullets\", \"object_size\": \"64B\", \"capacity\": 100000},\n"
      "    {\"name\": \"npc-state_2\", \"object_size\": 1000, \"align\": \"4KiB\",\n"
      "     \"capacity\": 16777216, \"debug\": true, \"comment\": \"p\"}\n"
      "  ]\n"
      "}\n";
  mb_config_t c, d;
  cJSON *j, *pools, *p;
  ASSERT_OK(parse(&c, text));
  ASSERT_EQ(c.npools, 2);
  ASSERT_STR_EQ(c.pools[0].name, "bullets");
  ASSERT_EQ(c.pools[0].object_size, 64);
  ASSERT_EQ(c.pools[0].align, 16); /* the default */
  ASSERT_EQ(c.pools[0].capacity, 100000);
  ASSERT_EQ(c.pools[0].debug, 0);
  ASSERT_STR_EQ(c.pools[1].name, "npc-state_2");
  ASSERT_EQ(c.pools[1].object_size, 1000);
  ASSERT_EQ(c.pools[1].align, 4096);
  ASSERT_EQ(c.pools[1].capacity, 16777216); /* 4 KiB blocks: exactly 64 GiB */
  ASSERT_EQ(c.pools[1].debug, 1);
  ASSERT_STR_EQ(c.pools[2].name, "");
  ASSERT_EQ(c.pools[2].capacity, 0);
  /* Everything else keeps its default, regions included. */
  mb__config_defaults(&d);
  d.npools = c.npools;
  memcpy(d.pools, c.pools, sizeof d.pools);
  assert_cfg_eq(&c, &d);
  /* The effective config lists them, every field present, and reads back the same. */
  j = mb__config_to_json(&c);
  ASSERT(j != NULL);
  pools = cJSON_GetObjectItemCaseSensitive(j, "pools");
  ASSERT_EQ(cJSON_GetArraySize(pools), 2);
  p = cJSON_GetArrayItem(pools, 1);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring, "npc-state_2");
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "object_size")->valuedouble, 1000);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "align")->valuedouble, 4096);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "capacity")->valuedouble, 16777216);
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "debug")));
  p = cJSON_GetArrayItem(pools, 0);
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "align")->valuedouble, 16);
  ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "debug")));
  cJSON_Delete(j);
  assert_round_trip(&c);
}

TEST(pools_limits_accepted) {
  char text[4096];
  size_t o;
  mb_config_t c, d;
  int i;
  /* An empty list is allowed (unlike regions) and means no pools. */
  mb__config_defaults(&d);
  ASSERT_OK(parse(&c, "{\"pools\": []}"));
  assert_cfg_eq(&c, &d);
  /* The edges of every range, and a pool of exactly 64 GiB. */
  ASSERT_OK(parse(&c, "{\"pools\": ["
                      "{\"name\": \"abcdefghijklmnopqrstuvwxyz01234\", \"object_size\": 8,"
                      " \"align\": 8, \"capacity\": 1},"
                      "{\"name\": \"max\", \"object_size\": \"1 MiB\", \"align\": 4096,"
                      " \"capacity\": 65536}]}"));
  ASSERT_EQ(c.npools, 2);
  ASSERT_EQ(c.pools[0].object_size, 8);
  ASSERT_EQ(c.pools[0].align, 8);
  ASSERT_EQ(c.pools[0].capacity, 1);
  ASSERT_EQ(c.pools[1].object_size, MIB);
  ASSERT_EQ(c.pools[1].capacity, 65536);
  assert_round_trip(&c);
  /* 16 pools, the most there may be. */
  o = (size_t)snprintf(text, sizeof text, "{\"pools\": [");
  for (i = 0; i < 16; i++)
    o += (size_t)snprintf(text + o, sizeof text - o,
                          "%s{\"name\": \"p%d\", \"object_size\": %d, \"capacity\": %d}",
                          i ? ", " : "", i, 8 << (i % 8), i + 1);
  snprintf(text + o, sizeof text - o, "]}");
  ASSERT_OK(parse(&c, text));
  ASSERT_EQ(c.npools, 16);
  ASSERT_STR_EQ(c.pools[15].name, "p15");
  ASSERT_EQ(c.pools[15].object_size, 8 << 7);
  ASSERT_EQ(c.pools[15].capacity, 16);
  assert_round_trip(&c);
}

TEST(log_level_names) {
  ASSERT_STR_EQ(mb__log_level_name(MB_LOG_ERROR), "error");
  ASSERT_STR_EQ(mb__log_level_name(MB_LOG_WARN), "warn");
  ASSERT_STR_EQ(mb__log_level_name(MB_LOG_INFO), "info");
  ASSERT_STR_EQ(mb__log_level_name(MB_LOG_DEBUG), "debug");
  ASSERT_STR_EQ(mb__log_level_name((mb_log_level_t)7), "unknown");
}

/* A region entry, for lists of many. */
#define R "{\"name\":\"r\",\"size\":65536}"
#define R4 R "," R "," R "," R
#define R17 R4 "," R4 "," R4 "," R4 "," R
/* A pool entry, for lists of many (the duplicate names are not reached: the count is). */
#define P "{\"name\":\"p\",\"object_size\":64,\"capacity\":1}"
#define P4 P "," P "," P "," P
#define P17 P4 "," P4 "," P4 "," P4 "," P

/* A map entry, for lists of many (the duplicate names are not reached: the count is). */
#define M "{\"name\":\"m\",\"path\":\"m.gmap\"}"
#define M4 M "," M "," M "," M
#define M17 M4 "," M4 "," M4 "," M4 "," M

/* Bad configs: the text and parts of the one message it must give. */
static const struct {
  const char *json;
  const char *expect[3];
} bad_configs[] = {
    /* not a JSON object at all */
    {"", {"bad.json: the file is empty"}},
    {" \n\t\r\n ", {"bad.json: the file is empty (whitespace only)"}},
    {"{\n  \"instance\": \"a\",\n  \"log\": {\n    \"level\" \"info\"\n  }\n}",
     {"bad.json: line 4, column 13: JSON syntax error near '\"info\"'"}},
    {"{\"log\": {}} x", {"bad.json: line 1, column 13: JSON syntax error near 'x'"}},
    {"{\"log\": {}}\n}", {"line 2, column 1: JSON syntax error near '}'"}},
    {"{\"clients\": {\"max\": 1", {"line 1, column 22: JSON syntax error: unexpected end"}},
    /* columns count characters: the \xC3\xA9 of "café" is one */
    {"{\"instance\": \"caf\xC3\xA9\" x}", {"line 1, column 21: JSON syntax error near 'x}'"}},
    {"[1, 2]", {"bad.json: the top level must be an object ({...}), got an array"}},
    {"\"x\"", {"the top level must be an object", "got a string (\"x\")"}},
    /* keys */
    {"{\"regoins\": []}", {"bad.json: unknown key \"regoins\" (did you mean \"regions\"?)"}},
    {"{\"Instance\": \"x\"}", {"unknown key \"Instance\" (did you mean \"instance\"?)"}},
    {"{\"frobnicate\": 1}", {"bad.json: unknown key \"frobnicate\": invalid configuration"}},
    {"{\"pipe\": {\"max_lien\": 1024}}",
     {"bad.json: pipe: unknown key \"max_lien\" (did you mean \"max_line\"?)"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"slotsize\": 64}]}",
     {"regions[0]: unknown key \"slotsize\" (did you mean \"slot_size\"?)"}},
    {"{\"log\": {\"level\": \"info\", \"level\": \"debug\"}}",
     {"bad.json: log.level: duplicate key"}},
    {"{\"instance\": \"a\", \"log\": {}, \"instance\": \"b\"}",
     {"bad.json: instance: duplicate key"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"name\": \"b\"}]}",
     {"regions[0].name: duplicate key"}},
    /* types */
    {"{\"log\": []}", {"bad.json: log: expected an object, got an array"}},
    {"{\"log\": {\"event_log\": \"yes\"}}",
     {"log.event_log: expected true or false, got a string (\"yes\")"}},
    {"{\"log\": {\"max_bytes\": \"1KiB\"}}", {"log.max_bytes", "1KiB", "out of range"}},
    {"{\"log\": {\"keep\": 100}}", {"log.keep", "100", "out of range"}},
    {"{\"clients\": {\"max\": \"64\"}}",
     {"bad.json: clients.max: expected an integer, got a string (\"64\")"}},
    {"{\"clients\": {\"max\": null}}", {"clients.max: expected an integer, got null"}},
    {"{\"instance\": 5}", {"instance: expected a string, got a number (5)"}},
    {"{\"log\": {\"file\": 1}}", {"log.file: expected a string or null, got a number (1)"}},
    {"{\"comment\": false}", {"comment: expected a string, got a boolean (false)"}},
    {"{\"regions\": {}}", {"regions: expected an array of region objects, got an object"}},
    {"{\"regions\": [5]}", {"regions[0]: expected an object, got a number (5)"}},
    /* numbers */
    {"{\"clients\": {\"max\": -1}}", {"bad.json: clients.max: -1 is negative (allowed: 1..256)"}},
    {"{\"clients\": {\"heartbeat_timeout_ms\": 1.5}}",
     {"clients.heartbeat_timeout_ms: 1.5 is not an integer"}},
    {"{\"clients\": {\"max\": 257}}", {"clients.max: 257 is out of range (allowed: 1..256)"}},
    {"{\"clients\": {\"max\": 0}}", {"clients.max: 0 is out of range (allowed: 1..256)"}},
    {"{\"clients\": {\"grace_period_ms\": 1e30}}",
     {"clients.grace_period_ms: 1e+30 is out of range (allowed: 0..86400000)"}},
    {"{\"clients\": {\"grace_period_ms\": 86400001}}", {"86400001 is out of range"}},
    {"{\"pipe\": {\"max_connections\": 4294967297}}",
     {"pipe.max_connections: 4294967297 is out of range (allowed: 1..100000)"}},
    {"{\"pipe\": {\"max_connections\": 4}}",
     {"pipe.admin_reserve: 4 must be less than pipe.max_connections (4)"}},
    {"{\"pipe\": {\"line_timeout_ms\": 50}}",
     {"pipe.line_timeout_ms: 50 is out of range (allowed: 0 or 100..86400000)"}},
    {"{\"pipe\": {\"idle_timeout_ms\": 999}}", {"pipe.idle_timeout_ms: 999 is out of range"}},
    {"{\"limits\": {\"max_committed\": 1e30}}",
     {"limits.max_committed: 1e+30 is too large for a JSON number"}},
    /* sizes */
    {"{\"regions\": [{\"name\": \"a\", \"size\": \"64XB\"}]}",
     {"bad.json: regions[0].size: \"64XB\" is not a size (use bytes or B/KiB/MiB/GiB/TiB): "
      "invalid configuration"}},
    {"{\"pipe\": {\"max_line\": \"64MB\"}}",
     {"pipe.max_line: \"64MB\": \"MB\" is not accepted, write \"MiB\""}},
    {"{\"pipe\": {\"max_line\": \"64k\"}}", {"\"k\" is not accepted, write \"KiB\""}},
    {"{\"pipe\": {\"max_line\": \"64kib\"}}", {"write the unit as \"KiB\""}},
    {"{\"pipe\": {\"max_line\": \"1.5MiB\"}}", {"\"1.5MiB\" is not a whole number"}},
    {"{\"pipe\": {\"max_line\": \"-1MiB\"}}", {"pipe.max_line: \"-1MiB\" is negative"}},
    {"{\"pipe\": {\"max_line\": -65536}}", {"pipe.max_line: -65536 is negative"}},
    {"{\"pipe\": {\"max_line\": \"\"}}", {"pipe.max_line: \"\" is empty"}},
    {"{\"pipe\": {\"max_line\": \"MiB\"}}", {"\"MiB\" is not a size"}},
    {"{\"pipe\": {\"max_line\": \"32MiB\"}}",
     {"pipe.max_line: \"32MiB\" is out of range (allowed: 1 KiB..16 MiB)"}},
    {"{\"limits\": {\"max_committed\": \"8388608TiB\"}}",
     {"\"8388608TiB\" is too large (sizes must be below 2^63 bytes)"}},
    {"{\"limits\": {\"max_committed\": \"99999999999999999999\"}}", {"is too large"}},
    {"{\"limits\": {\"max_committed\": true}}",
     {"limits.max_committed: expected a size (an integer or a string such as \"64MiB\")"}},
    {"{\"limits\": {\"max_committed\": \"1MiB\"}}",
     {"limits.max_committed: 1 MiB is less than the 82464 KiB the regions (slot tables included) "
      "and pools commit at start"}},
    /* 81 MiB holds the regions; a pool of 65536 x 256 B (16 MiB, 64 KiB of intent records,
     * 768 KiB of links and stamps, in whole pages) does not fit beside them. */
    {"{\"limits\": {\"max_committed\": \"81MiB\"}, \"pools\": [{\"name\": \"p\", "
     "\"object_size\": 256, \"capacity\": 65536}]}",
     {"limits.max_committed: 81 MiB is less than the 99936 KiB the regions (slot tables "
      "included) and pools commit at start"}},
    /* regions */
    {"{\"regions\": []}", {"bad.json: regions: the list is empty (give 1..16 regions)"}},
    {"{\"regions\": [" R17 "]}", {"regions: 17 regions given, at most 16 are allowed"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 100000}]}",
     {"regions[0].size: 100000 is not a multiple of 64 KiB (65536 bytes)"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 0}]}",
     {"regions[0].size: 0 is out of range (allowed: at least 64 KiB)"}},
    {"{\"regions\": [{\"name\": \"a\"}]}", {"bad.json: regions[0]: missing required key \"size\""}},
    {"{\"regions\": [{\"size\": 65536}]}", {"regions[0]: missing required key \"name\""}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"slot_size\": 1000}]}",
     {"regions[0].slot_size: 1000 is not a power of two"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"slot_size\": 32}]}",
     {"regions[0].slot_size: 32 is out of range (allowed: 0 or 64 B..1 MiB)"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"slot_size\": \"2MiB\"}]}",
     {"regions[0].slot_size: \"2MiB\" is out of range"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": \"64KiB\", \"slot_size\": \"1MiB\"}]}",
     {"regions[0].slot_size: 1 MiB is larger than the region (64 KiB)"}},
    {"{\"regions\": [" R ", {\"name\": \"b\", \"size\": 65536}, " R "]}",
     {"bad.json: regions[2].name: \"r\" is already the name of regions[0]"}},
    {"{\"regions\": [{\"name\": \"World\", \"size\": 65536}]}",
     {"regions[0].name: \"World\" is not a valid name (use 1..31 characters of a-z 0-9 _ -)"}},
    {"{\"regions\": [{\"name\": \"\", \"size\": 65536}]}",
     {"regions[0].name: \"\" is not a valid name"}},
    {"{\"regions\": [{\"name\": \"a\", \"size\": 65536, \"commit\": \"eager\"}]}",
     {"regions[0].commit: \"eager\" is not one of \"start\", \"lazy\""}},
    /* pools */
    {"{\"pools\": {}}", {"bad.json: pools: expected an array of pool objects, got an object"}},
    {"{\"pools\": null}", {"pools: expected an array of pool objects, got null"}},
    {"{\"pools\": [\"bullets\"]}", {"pools[0]: expected an object, got a string (\"bullets\")"}},
    {"{\"pools\": [" P17 "]}", {"bad.json: pools: 17 pools given, at most 16 are allowed"}},
    {"{\"pools\": [{\"object_size\": 64, \"capacity\": 1}]}",
     {"bad.json: pools[0]: missing required key \"name\""}},
    {"{\"pools\": [{\"name\": \"a\", \"capacity\": 1}]}",
     {"pools[0]: missing required key \"object_size\""}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64}]}",
     {"pools[0]: missing required key \"capacity\""}},
    {"{\"pools\": [{\"name\": \"bullets\", \"object_size\": 64, \"capacity\": 1},"
     " {\"name\": \"npc\", \"object_size\": 64, \"capacity\": 1},"
     " {\"name\": \"bullets\", \"object_size\": 8, \"capacity\": 2}]}",
     {"bad.json: pools[2].name: \"bullets\" is already the name of pools[0]: invalid"}},
    {"{\"pools\": [{\"name\": \"Bullets\", \"object_size\": 64, \"capacity\": 1}]}",
     {"pools[0].name: \"Bullets\" is not a valid name (use 1..31 characters of a-z 0-9 _ -)"}},
    {"{\"pools\": [{\"name\": \"abcdefghijklmnopqrstuvwxyz012345\", \"object_size\": 64,"
     " \"capacity\": 1}]}",
     {"pools[0].name: \"abcdefghij", "is not a valid name"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 4, \"capacity\": 1}]}",
     {"pools[0].object_size: 4 is out of range (allowed: 8 B..1 MiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": \"2MiB\", \"capacity\": 1}]}",
     {"pools[0].object_size: \"2MiB\" is out of range (allowed: 8 B..1 MiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": \"64KB\", \"capacity\": 1}]}",
     {"pools[0].object_size: \"64KB\": \"KB\" is not accepted, write \"KiB\""}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"align\": 8192, "
     "\"capacity\": 1}]}",
     {"bad.json: pools[0].align: 8192 is out of range (allowed: 8 B..4 KiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"align\": \"1MiB\", "
     "\"capacity\": 1}]}",
     {"pools[0].align: \"1MiB\" is out of range (allowed: 8 B..4 KiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"align\": 4, \"capacity\": 1}]}",
     {"pools[0].align: 4 is out of range (allowed: 8 B..4 KiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"align\": 24, \"capacity\": 1}]}",
     {"pools[0].align: 24 is not a power of two"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": 0}]}",
     {"pools[0].capacity: 0 is out of range (allowed: 1..16777216)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": 16777217}]}",
     {"pools[0].capacity: 16777217 is out of range (allowed: 1..16777216)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": \"1000\"}]}",
     {"pools[0].capacity: expected an integer, got a string (\"1000\")"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": 1, \"debug\": 1}]}",
     {"pools[0].debug: expected true or false, got a number (1)"}},
    {"{\"pools\": [" P ", {\"name\": \"big\", \"object_size\": \"1MiB\", "
     "\"capacity\": 16777216}]}",
     {"bad.json: pools[1]: 16777216 objects of 1 MiB need 16 TiB, more than a pool may hold "
      "(64 GiB): invalid configuration"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 4097, \"align\": 4096, "
     "\"capacity\": 10000000}]}",
     {"pools[0]: 10000000 objects of 4097 B (8 KiB each with align 4096) need 78125 MiB, more "
      "than a pool may hold (64 GiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": \"1MiB\", \"capacity\": 65537}]}",
     {"pools[0]: 65537 objects of 1 MiB need 65537 MiB, more than a pool may hold (64 GiB)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": 1, \"algin\": 64}]}",
     {"bad.json: pools[0]: unknown key \"algin\" (did you mean \"align\"?)"}},
    {"{\"pools\": [{\"name\": \"a\", \"object_size\": 64, \"capacity\": 1, \"size\": 64}]}",
     {"pools[0]: unknown key \"size\": invalid configuration"}},
    {"{\"pools\": [{\"name\": \"a\", \"name\": \"b\", \"object_size\": 64, \"capacity\": 1}]}",
     {"pools[0].name: duplicate key (each key may appear once per object)"}},
    {"{\"pool\": []}", {"bad.json: unknown key \"pool\" (did you mean \"pools\"?)"}},
    {"{\"pools\": [], \"pools\": []}", {"bad.json: pools: duplicate key"}},
    /* persist */
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [\"playrs\"]}}",
     {"bad.json: persist.regions[0]: \"playrs\" is not a region of this config (did you mean "
      "\"players\"?)"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [\"world\", \"loot\"]}}",
     {"persist.regions[1]: \"loot\" is not a region of this config (regions: world, players, "
      "npc)"}},
    {"{\"persist\": {\"regions\": [\"players\"]}}",
     {"bad.json: persist.regions: regions to save are given but persist.dir is not"}},
    {"{\"regions\": [{\"name\": \"loot\", \"size\": 65536, \"commit\": \"lazy\"}],"
     " \"persist\": {\"dir\": \"s\", \"regions\": [\"loot\"]}}",
     {"persist.regions[0]: \"loot\" is lazy and has no slots", "cannot be saved"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [\"players\", \"players\"]}}",
     {"bad.json: persist.regions[1]: \"players\" is already persist.regions[0]"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": \"players\"}}",
     {"persist.regions: expected an array of names, got a string (\"players\")"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [1]}}",
     {"persist.regions[0]: expected a string, got a number (1)"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [\"Players\"]}}",
     {"persist.regions[0]: \"Players\" is not a valid name (use 1..31 characters of a-z 0-9 _ -)"}},
    {"{\"persist\": {\"dir\": \"s\", \"regions\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\","
     " \"g\", \"h\", \"i\", \"j\", \"k\", \"l\", \"m\", \"n\", \"o\", \"p\", \"q\"]}}",
     {"persist.regions: 17 names given, at most 16 are allowed"}},
    {"{\"persist\": {\"dir\": \"s\", \"interval_ms\": 99}}",
     {"bad.json: persist.interval_ms: 99 is out of range (allowed: 100..3600000)"}},
    {"{\"persist\": {\"dir\": \"s\", \"interval_ms\": 3600001}}",
     {"persist.interval_ms: 3600001 is out of range"}},
    {"{\"persist\": {\"dir\": \"\"}}", {"bad.json: persist.dir: \"\" is empty (use null)"}},
    {"{\"persist\": {\"dir\": 5}}", {"persist.dir: expected a string or null, got a number (5)"}},
    {"{\"persist\": {\"dri\": \"s\"}}",
     {"bad.json: persist: unknown key \"dri\" (did you mean \"dir\"?)"}},
    {"{\"persist\": [\"s\"]}", {"bad.json: persist: expected an object, got an array"}},
    /* maps */
    {"{\"maps\": {}}", {"bad.json: maps: expected an array of map objects, got an object"}},
    {"{\"maps\": [" M17 "]}", {"bad.json: maps: 17 maps given, at most 16 are allowed"}},
    {"{\"maps\": [{\"name\": \"a\"}]}", {"bad.json: maps[0]: missing required key \"path\""}},
    {"{\"maps\": [{\"path\": \"a.gmap\"}]}", {"maps[0]: missing required key \"name\""}},
    {"{\"maps\": [" M ", " M "]}",
     {"bad.json: maps[1].name: \"m\" is already the name of maps[0]"}},
    {"{\"maps\": [{\"name\": \"World\", \"path\": \"w.gmap\"}]}",
     {"maps[0].name: \"World\" is not a valid name (use 1..31 characters of a-z 0-9 _ -)"}},
    {"{\"maps\": [{\"name\": \"w\", \"path\": \"\"}]}", {"maps[0].path: \"\" is empty"}},
    {"{\"maps\": [{\"name\": \"w\", \"path\": null}]}",
     {"maps[0].path: expected a string, got null"}},
    {"{\"maps\": [{\"name\": \"w\", \"path\": \"a\\tb\"}]}",
     {"maps[0].path: \"a\\x09b\" contains a control character"}},
    {"{\"maps\": [{\"name\": \"w\", \"pth\": \"w.gmap\"}]}",
     {"bad.json: maps[0]: unknown key \"pth\" (did you mean \"path\"?)"}},
    {"{\"map\": []}", {"bad.json: unknown key \"map\" (did you mean \"maps\"?)"}},
    /* names, enums, modes, text */
    {"{\"instance\": \"my instance\"}",
     {"bad.json: instance: \"my instance\" is not a valid name (use 1..31 characters of "
      "A-Z a-z 0-9 _ -)"}},
    {"{\"instance\": \"abcdefghijklmnopqrstuvwxyz012345\"}", {"instance: \"abcdefghij", "1..31"}},
    {"{\"log\": {\"level\": \"verbose\"}}",
     {"log.level: \"verbose\" is not one of \"error\", \"warn\", \"info\", \"debug\": invalid"}},
    {"{\"log\": {\"level\": \"dbug\"}}", {"(did you mean \"debug\"?)"}},
    {"{\"pipe\": {\"mode\": \"rw-rw----\"}}",
     {"pipe.mode: \"rw-rw----\" is not an octal mode (use a string such as \"0660\")"}},
    {"{\"pipe\": {\"mode\": \"0777\"}}", {"pipe.mode: \"0777\" has bits outside 0666"}},
    {"{\"sections\": {\"mode\": \"4660\"}}", {"sections.mode: \"4660\" has bits outside 0666"}},
    {"{\"sections\": {\"mode\": 432}}",
     {"sections.mode: expected a string (an octal mode such as \"0660\"), got a number (432)"}},
    {"{\"log\": {\"file\": \"\"}}", {"log.file: \"\" is empty (use null)"}},
    {"{\"sections\": {\"group\": \"a\\nb\"}}",
     {"sections.group: \"a\\x0Ab\" contains a control character"}},
};

TEST(bad_configs_table) {
  size_t i, k, n = sizeof bad_configs / sizeof bad_configs[0];
  mb_config_t c, before;
  ASSERT_GE(n, 20);
  /* Start from a non-default config: a failure must leave every byte of it alone. */
  ASSERT_OK(parse(&c, "{\"instance\": \"keep\", \"regions\": [{\"name\": \"x\", \"size\": 65536}],"
                      " \"pools\": [{\"name\": \"keep\", \"object_size\": 64, \"capacity\": 1}]}"));
  ASSERT_EQ(c.npools, 1);
  before = c;
  for (i = 0; i < n; i++) {
    const char *json = bad_configs[i].json, *msg, *tail = ": invalid configuration";
    int rc = mb__config_parse(&c, json, strlen(json), "bad.json");
    msg = mb_last_error();
    if (rc != MB_ECONFIG)
      FAIL("bad_configs[%zu] %s: expected bad_config, got %s: %s", i, json, mb_err_name(rc), msg);
    if (strncmp(msg, "bad.json: ", 10) != 0 || strchr(msg, '\n') != NULL ||
        strlen(msg) < strlen(tail) || strcmp(msg + strlen(msg) - strlen(tail), tail) != 0)
      FAIL("bad_configs[%zu] %s: not one line \"bad.json: ...%s\": %s", i, json, tail, msg);
    for (k = 0; k < 3 && bad_configs[i].expect[k] != NULL; k++)
      if (strstr(msg, bad_configs[i].expect[k]) == NULL)
        FAIL("bad_configs[%zu] %s:\n  message  %s\n  lacks    %s", i, json, msg,
             bad_configs[i].expect[k]);
    if (memcmp(&c, &before, sizeof c) != 0)
      FAIL("bad_configs[%zu] %s: the config was changed", i, json);
  }
}

TEST(unknown_key_without_a_close_match) {
  mb_config_t c;
  ASSERT_ERR(parse(&c, "{\"log\": {\"foo\": 1}}"), MB_ECONFIG);
  ASSERT_STR_EQ(mb_last_error(), "test.json: log: unknown key \"foo\": invalid configuration");
}

TEST(nul_byte) {
  static const char text[] = "{\n  \"instance\": \"a\0b\"\n}";
  mb_config_t c;
  ASSERT_ERR(mb__config_parse(&c, text, sizeof text - 1, "nul.json"), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "nul.json: line 2, column 17: a NUL byte");
}

TEST(load_missing_file) {
  mb_config_t c;
  char name[64], path[MB_CONFIG_PATH_MAX];
  mb_test_name(name, sizeof name, "missing");
  snprintf(path, sizeof path, "%s/no-such-dir/%s.json", MB_SOURCE_DIR, name);
  mb__config_defaults(&c);
  ASSERT_ERR(mb__config_load(&c, path), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), ": cannot open the file (");
  ASSERT_NE(mb_last_os_error(), 0);
  ASSERT_STR_EQ(c.path, "");
}

TEST(load_empty_and_whitespace_files) {
  mb_config_t c;
  char path[MB_CONFIG_PATH_MAX];
  write_temp(path, sizeof path, "empty", "", 0);
  ASSERT_ERR(mb__config_load(&c, path), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), path);
  ASSERT_CONTAINS(mb_last_error(), ": the file is empty: invalid configuration");
  remove(path);
  write_temp(path, sizeof path, "blank", "\r\n  \n", 5);
  ASSERT_ERR(mb__config_load(&c, path), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), ": the file is empty (whitespace only)");
  remove(path);
}

TEST(load_file_errors_name_the_file) {
  static const char text[] = "{\r\n  \"clients\": {\r\n    \"max\": 1000\r\n  }\r\n}\r\n";
  mb_config_t c;
  char path[MB_CONFIG_PATH_MAX], want[MB_CONFIG_PATH_MAX + 64];
  write_temp(path, sizeof path, "crlf", text, sizeof text - 1);
  ASSERT_ERR(mb__config_load(&c, path), MB_ECONFIG);
  snprintf(want, sizeof want, "%s: clients.max: 1000 is out of range (allowed: 1..256)", path);
  ASSERT_CONTAINS(mb_last_error(), want);
  remove(path);
  /* A directory is not a config file (open or read fails, by OS). */
  ASSERT_ERR(mb__config_load(&c, MB_SOURCE_DIR "/config"), MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), MB_SOURCE_DIR "/config: cannot ");
}

TEST(load_good_file_sets_path) {
  static const char text[] = "{\"instance\": \"t1\"}";
  mb_config_t c;
  char path[MB_CONFIG_PATH_MAX];
  write_temp(path, sizeof path, "good", text, sizeof text - 1);
  ASSERT_OK(mb__config_load(&c, path));
  ASSERT_STR_EQ(c.path, path);
  ASSERT_STR_EQ(c.instance, "t1");
  remove(path);
}

/* persist: defaults (off), a full section, its effective JSON, and persist.dir made relative to
 * the config file's directory when loaded from a file. */
TEST(persist_section) {
  static const char text[] = "{\"persist\": {\"dir\": \"state\", \"regions\": [\"players\", "
                             "\"world\"], \"interval_ms\": 250}}";
  mb_config_t c;
  cJSON *j, *p, *r;
  char path[MB_CONFIG_PATH_MAX], dotted[MB_CONFIG_PATH_MAX + 2];
  mb__config_defaults(&c);
  ASSERT_STR_EQ(c.persist_dir, "");
  ASSERT_STR_EQ(c.persist_regions[0], "");
  ASSERT_EQ(c.persist_interval_ms, 5000);
  ASSERT_OK(parse(&c, text));
  ASSERT_STR_EQ(c.persist_dir, "state");
  ASSERT_STR_EQ(c.persist_regions[0], "players");
  ASSERT_STR_EQ(c.persist_regions[1], "world");
  ASSERT_STR_EQ(c.persist_regions[2], "");
  ASSERT_EQ(c.persist_interval_ms, 250);
  j = mb__config_to_json(&c);
  ASSERT(j != NULL);
  p = cJSON_GetObjectItemCaseSensitive(j, "persist");
  ASSERT(cJSON_IsObject(p));
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(p, "dir")->valuestring, "state");
  r = cJSON_GetObjectItemCaseSensitive(p, "regions");
  ASSERT(cJSON_IsArray(r));
  ASSERT_EQ(cJSON_GetArraySize(r), 2);
  ASSERT_STR_EQ(cJSON_GetArrayItem(r, 1)->valuestring, "world");
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "interval_ms")->valuedouble, 250);
  cJSON_Delete(j);
  assert_round_trip(&c);
  /* Off: dir null and no regions, in the effective config too. */
  mb__config_defaults(&c);
  j = mb__config_to_json(&c);
  p = cJSON_GetObjectItemCaseSensitive(j, "persist");
  ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "dir")));
  ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "regions")), 0);
  cJSON_Delete(j);
  /* From a file: relative to its directory; an absolute one stays. */
  write_temp(path, sizeof path, "persist", text, sizeof text - 1);
  snprintf(dotted, sizeof dotted, "./%s", path);
  ASSERT_OK(mb__config_load(&c, dotted));
  ASSERT_STR_EQ(c.persist_dir, "./state");
  ASSERT_OK(mb__config_load(&c, path));
  ASSERT_STR_EQ(c.persist_dir, "state");
  remove(path);
  {
    static const char abs_text[] = "{\"persist\": {\"dir\": \"/var/lib/mb\"}}";
    write_temp(path, sizeof path, "persist-abs", abs_text, sizeof abs_text - 1);
  }
  snprintf(dotted, sizeof dotted, "./%s", path);
  ASSERT_OK(mb__config_load(&c, dotted));
  ASSERT_STR_EQ(c.persist_dir, "/var/lib/mb");
  remove(path);
}

/* log.file from a file: relative to the config file's directory (a service does not run in
 * the operator's folder), like persist.dir; an absolute one stays. */
TEST(log_file_relative_to_config) {
  static const char rel[] = "{\"log\": {\"file\": \"logs/mb.log\"}}";
  static const char abs[] = "{\"log\": {\"file\": \"/var/log/mb.log\"}}";
  char path[600], dotted[700];
  mb_config_t c;
  write_temp(path, sizeof path, "logrel", rel, sizeof rel - 1);
  snprintf(dotted, sizeof dotted, "./%s", path);
  ASSERT_OK(mb__config_load(&c, dotted));
  ASSERT_STR_EQ(c.log_file, "./logs/mb.log");
  remove(path);
  write_temp(path, sizeof path, "logabs", abs, sizeof abs - 1);
  ASSERT_OK(mb__config_load(&c, path));
  ASSERT_STR_EQ(c.log_file, "/var/log/mb.log");
  remove(path);
}

/* maps: none by default ("maps": [] in the effective config, after "pools"); 16 maps with
 * their names and paths as written, and the round trip. */
TEST(maps_listed) {
  char text[4096];
  size_t o;
  mb_config_t c;
  cJSON *j, *maps;
  int i;
  mb__config_defaults(&c);
  ASSERT_EQ(c.nmaps, 0);
  j = mb__config_to_json(&c);
  maps = cJSON_GetObjectItemCaseSensitive(j, "maps");
  ASSERT(cJSON_IsArray(maps));
  ASSERT_EQ(cJSON_GetArraySize(maps), 0);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(j, "pools")->next->string, "maps");
  cJSON_Delete(j);
  ASSERT_OK(parse(&c, "{\"maps\": [{\"name\": \"world1\", \"path\": \"maps/world1.gmap\","
                      " \"comment\": \"the overworld\"},"
                      " {\"name\": \"dungeon_2\", \"path\": \"/srv/maps/d2.gmap\"}]}"));
  ASSERT_EQ(c.nmaps, 2);
  ASSERT_STR_EQ(c.maps[0].name, "world1");
  ASSERT_STR_EQ(c.maps[0].path, "maps/world1.gmap"); /* parsed text: not resolved */
  ASSERT_STR_EQ(c.maps[1].name, "dungeon_2");
  ASSERT_STR_EQ(c.maps[1].path, "/srv/maps/d2.gmap");
  j = mb__config_to_json(&c);
  maps = cJSON_GetObjectItemCaseSensitive(j, "maps");
  ASSERT_EQ(cJSON_GetArraySize(maps), 2);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(maps, 1), "path")->valuestring,
                "/srv/maps/d2.gmap");
  cJSON_Delete(j);
  assert_round_trip(&c);
  o = (size_t)snprintf(text, sizeof text, "{\"maps\": [");
  for (i = 0; i < 16; i++)
    o += (size_t)snprintf(text + o, sizeof text - o,
                          "%s{\"name\": \"m%d\", \"path\": \"m%d.gmap\"}", i ? ", " : "", i, i);
  snprintf(text + o, sizeof text - o, "]}");
  ASSERT_OK(parse(&c, text));
  ASSERT_EQ(c.nmaps, 16);
  ASSERT_STR_EQ(c.maps[15].path, "m15.gmap");
  assert_round_trip(&c);
}

/* Loaded from a file, a relative map path becomes relative to the file's directory (shown so
 * by the effective config); an absolute one ("/x", "\x", "C:x") is kept; a join that does not
 * fit is refused, naming the entry. */
TEST(maps_paths_relative_to_the_config_file) {
  char text[2048], path[MB_CONFIG_PATH_MAX], want[MB_CONFIG_PATH_MAX + 64], name[64], out[96];
  char longp[511]; /* 510 bytes: fits the field, not once "./" is put before it */
  mb_config_t c, before;
  cJSON *j;
  FILE *f;
  mb_test_name(name, sizeof name, "mapsdir");
  snprintf(path, sizeof path, "./%s.json", name); /* the build tree, with a directory part */
  snprintf(text, sizeof text,
           "{\"maps\": [{\"name\": \"a\", \"path\": \"maps/a.gmap\"},"
           " {\"name\": \"b\", \"path\": \"/abs/b.gmap\"},"
           " {\"name\": \"c\", \"path\": \"\\\\\\\\server\\\\c.gmap\"},"
           " {\"name\": \"d\", \"path\": \"D:\\\\maps\\\\d.gmap\"}]}");
  if ((f = fopen(path, "wb")) == NULL)
    FAIL("cannot create %s", path);
  fputs(text, f);
  fclose(f);
  ASSERT_OK(mb__config_load(&c, path));
  remove(path);
  snprintf(want, sizeof want, "./maps/a.gmap");
  ASSERT_STR_EQ(c.maps[0].path, want);
  ASSERT_STR_EQ(c.maps[1].path, "/abs/b.gmap");
  ASSERT_STR_EQ(c.maps[2].path, "\\\\server\\c.gmap");
  ASSERT_STR_EQ(c.maps[3].path, "D:\\maps\\d.gmap");
  j = mb__config_to_json(&c);
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "maps"), 0), "path")
                    ->valuestring,
                want);
  cJSON_Delete(j);

  /* A config file without a directory part: paths stay as written (the current directory). */
  snprintf(out, sizeof out, "%s.json", name);
  if ((f = fopen(out, "wb")) == NULL)
    FAIL("cannot create %s", out);
  fputs("{\"maps\": [{\"name\": \"a\", \"path\": \"a.gmap\"}]}", f);
  fclose(f);
  ASSERT_OK(mb__config_load(&c, out));
  ASSERT_STR_EQ(c.maps[0].path, "a.gmap");
  remove(out);
  /* Backslashes separate too (Windows paths). */
  ASSERT_OK(mb__config_resolve_path("C:\\mb\\membroker.json", "maps\\a.gmap", want, sizeof want));
  ASSERT_STR_EQ(want, "C:\\mb\\maps\\a.gmap");
  ASSERT_OK(mb__config_resolve_path("", "maps/a.gmap", want, sizeof want));
  ASSERT_STR_EQ(want, "maps/a.gmap");
  ASSERT_ERR(mb__config_resolve_path("dir/x.json", "abcdef", want, 8), MB_ENAMETOOLONG);

  /* Too long once joined: refused as a whole, naming the entry. */
  memset(longp, 'p', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  snprintf(text, sizeof text, "{\"maps\": [{\"name\": \"a\", \"path\": \"%s\"}]}", longp);
  if ((f = fopen(path, "wb")) == NULL)
    FAIL("cannot create %s", path);
  fputs(text, f);
  fclose(f);
  mb__config_defaults(&c);
  before = c;
  ASSERT_ERR(mb__config_load(&c, path), MB_ECONFIG);
  remove(path);
  ASSERT_CONTAINS(mb_last_error(), "maps[0].path: \"pppp");
  ASSERT_CONTAINS(mb_last_error(), "is too long once joined to the config file's directory");
  ASSERT_EQ(memcmp(&c, &before, sizeof c), 0);
}

/* ---- what a start checks on this machine: --check-config and the start (issue 14) ---------- */

#define T_EXE_MS 60000 /* one membroker run, at most (Wine) */
static char exe_out[16384];

/* Write `text` as "mbt.<pid>.<tag>.json" in the working directory (so relative paths in it stay
 * as written) and run `membroker ARG FILE` (ARG "--check-config", or "run" with "-c"): its exit
 * code; what it printed is in exe_out. */
static int run_broker(const char *arg, const char *tag, const char *text) {
  char file[128];
  int code;
  write_temp(file, sizeof file, tag, text, strlen(text));
  if (strcmp(arg, "run") == 0)
    code =
        mb_test_run_exe(MB_BROKER_EXE, T_EXE_MS, exe_out, sizeof exe_out, "run", "-c", file, NULL);
  else
    code = mb_test_run_exe(MB_BROKER_EXE, T_EXE_MS, exe_out, sizeof exe_out, arg, file, NULL);
  remove(file);
  return code;
}

/* --check-config FILE refuses it (exit 1) with a message that holds `want`. */
static void check_refuses(const char *tag, const char *text, const char *want) {
  ASSERT_EXIT(run_broker("--check-config", tag, text), 1, exe_out);
  if (strstr(exe_out, want) == NULL)
    FAIL("membroker --check-config printed:\n%s\nwhich lacks:\n%s", exe_out, want);
  ASSERT(strstr(exe_out, ": valid (") == NULL);
}

/* A group that does not exist, in either key that names one: refused, naming key and value
 * (it said valid, and the start failed later). */
TEST(check_config_group_missing) {
  check_refuses("grp", "{\"sections\": {\"group\": \"mbt-no-such-group\"}}",
                "sections.group 'mbt-no-such-group': no such group on this machine: invalid "
                "configuration\n");
  check_refuses("opgrp", "{\"pipe\": {\"operators_group\": \"mbt-no-such-group\"}}",
                "pipe.operators_group 'mbt-no-such-group': no such group on this machine");
}

/* persist.dir whose parent is missing (a start creates the directory, not its parents), and one
 * that is a file. */
TEST(check_config_persist_dir) {
  char name[64], text[512], want[512], file[128];
  FILE *f;
  mb_test_name(name, sizeof name, "nope");
  snprintf(text, sizeof text, "{\"persist\": {\"dir\": \"%s/x\"}}", name);
  snprintf(want, sizeof want,
           "persist.dir '%s/x': parent directory '%s' does not exist: invalid configuration\n",
           name, name);
  check_refuses("pdir", text, want);

  mb_test_name(file, sizeof file, "pfile");
  ASSERT((f = fopen(file, "wb")) != NULL);
  fclose(f);
  snprintf(text, sizeof text, "{\"persist\": {\"dir\": \"%s\"}}", file);
  snprintf(want, sizeof want, "persist.dir '%s': is a file, not a directory", file);
  check_refuses("pdir2", text, want);
  remove(file);
}

/* log.file that cannot be opened: its folder is missing, or it is a directory (a service start
 * refuses both; it said valid). */
TEST(check_config_log_file) {
  char name[64], text[512], want[512];
  mb_test_name(name, sizeof name, "nolog");
  snprintf(text, sizeof text, "{\"log\": {\"file\": \"%s/broker.log\"}}", name);
  snprintf(want, sizeof want,
           "log.file '%s/broker.log': parent directory '%s' does not exist: invalid "
           "configuration\n",
           name, name);
  check_refuses("logf", text, want);

  mb_test_name(name, sizeof name, "logdir");
  ASSERT_OK(mb_os_dir_create(name));
  snprintf(text, sizeof text, "{\"log\": {\"file\": \"%s\"}}", name);
  snprintf(want, sizeof want, "log.file '%s': is a directory, not a file: invalid configuration\n",
           name);
  check_refuses("logd", text, want);
  ASSERT_OK(mb_os_dir_remove(name));
}

/* A map file that is missing, not GMAP, or a directory: refused as a start refuses it. */
TEST(check_config_map_file) {
  char name[64], text[512], want[600];
  FILE *f;
  mb_test_name(name, sizeof name, "missing.gmap");
  snprintf(text, sizeof text, "{\"maps\": [{\"name\": \"w\", \"path\": \"%s\"}]}", name);
  snprintf(want, sizeof want, "maps[0].path '%s': ", name);
  check_refuses("mapm", text, want);
  ASSERT_CONTAINS(exe_out, ": invalid configuration (os error 2)\n");

  ASSERT((f = fopen(name, "wb")) != NULL);
  fputs("not a map", f);
  fclose(f);
  snprintf(want, sizeof want, "maps[0].path '%s': not a valid GMAP file: %s: ", name, name);
  check_refuses("mapb", text, want);
  remove(name);

  ASSERT_OK(mb_os_dir_create(name));
  snprintf(want, sizeof want, "maps[0].path '%s': read '%s': it is a directory, not a regular file",
           name, name);
  check_refuses("mapd", text, want);
  ASSERT_OK(mb_os_dir_remove(name));

  /* A valid map passes, and counts against the commit limit (below). */
  ASSERT_OK(mb__gmap_write(name, 256, 256, 0, 1)); /* 256 KiB of tiles + the header */
  ASSERT_EXIT(run_broker("--check-config", "mapok", text), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (instance default, 3 regions, 0 pools, 1 maps)\n");
  snprintf(text, sizeof text,
           "{\"regions\": [{\"name\": \"r\", \"size\": 65536, \"commit\": \"lazy\"}],"
           " \"limits\": {\"max_committed\": \"256KiB\"},"
           " \"maps\": [{\"name\": \"w\", \"path\": \"%s\"}]}",
           name);
  check_refuses("maplim", text, "limits.max_committed: 256 KiB is less than the ");
  ASSERT_CONTAINS(exe_out, " a start commits (control block ");
  ASSERT_CONTAINS(exe_out, ", regions 0 B, slot tables 0 B, pools 0 B, maps 260.0 KiB): invalid "
                           "configuration\n");
  remove(name);
}

/* Slot tables: their size (what the broker commits at start whatever the commit mode), the
 * commit limit counting them at parse, and a share of physical memory refused by --check-config
 * and by the start, with the number. */
TEST(check_config_slot_tables) {
  mb_region_cfg_t r = {"world", TIB, 1, 1024, 0};
  mb_config_t c;
  const char *huge = "{\"regions\": [{\"name\": \"huge\", \"size\": \"8TiB\", \"commit\": \"lazy\","
                     " \"slot_size\": 64}]}";
  if (mb_os_mem_config()->page_size != 4096)
    SKIP("the figures below are for 4 KiB pages");
  /* 1 TiB of 1 KiB slots: 2^28 page words (1 GiB) and 2^30 slots of 16 bytes (16 GiB). */
  ASSERT_EQ_U64(mb__config_slot_table(&r), 17 * GIB);
  r.slot_size = 0;
  ASSERT_EQ_U64(mb__config_slot_table(&r), 0);

  ASSERT_ERR(parse(&c, "{\"regions\": [{\"name\": \"world\", \"size\": \"1TiB\", \"commit\": "
                       "\"lazy\", \"slot_size\": \"1KiB\"}], \"limits\": {\"max_committed\": "
                       "\"16GiB\"}}"),
             MB_ECONFIG);
  ASSERT_CONTAINS(mb_last_error(), "limits.max_committed: 16 GiB is less than the 17 GiB the "
                                   "regions (slot tables included) and pools commit at start");

  /* 8 TiB of 64-byte slots: 2 TiB of slots and 8 GiB of page words, past any test machine's
   * quarter. */
  check_refuses("huge", huge,
                "regions[0]: region 'huge': slot tables need 2.0 TiB, more than 25 % of this "
                "machine's ");
  ASSERT_CONTAINS(exe_out, "(use larger slots or a smaller region): invalid configuration\n");
  ASSERT_EXIT(run_broker("run", "hugerun", huge), 1, exe_out);
  ASSERT_CONTAINS(exe_out, "cannot start: ");
  ASSERT_CONTAINS(exe_out, "region 'huge': slot tables need 2.0 TiB, more than 25 % of this "
                           "machine's ");
}

/* A good config says valid and exits 0; what this user may not check is listed as such, never
 * as an error. */
TEST(check_config_valid) {
  char name[64], text[512];
  mb_test_name(name, sizeof name, "state");
  snprintf(text, sizeof text, "{\"persist\": {\"dir\": \"%s\"}, \"log\": {\"file\": \"%s.log\"}}",
           name, name);
  ASSERT_EXIT(run_broker("--check-config", "valid", text), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (instance default, 3 regions, 0 pools, 0 maps)\n");
  ASSERT(strstr(exe_out, "invalid") == NULL);
  /* Nothing was made by the check. */
  {
    mb_os_path_kind_t k;
    ASSERT_OK(mb_os_path_kind(name, 1, &k));
    ASSERT_EQ(k, MB_OS_PATH_NONE);
  }
}

/* `membroker run` logs to stderr and does not write log.file: it says so at start, with what a
 * service start (which refuses a file it cannot open) would say, instead of dropping the file
 * silently. (The slot tables then refuse the start, so no broker is left running.) */
TEST(run_says_log_file_is_not_written) {
  char name[64], text[512], want[512];
  mb_test_name(name, sizeof name, "nolog");
  snprintf(text, sizeof text,
           "{\"log\": {\"file\": \"%s/broker.log\"}, \"regions\": [{\"name\": \"huge\", "
           "\"size\": \"8TiB\", \"commit\": \"lazy\", \"slot_size\": 64}]}",
           name);
  ASSERT_EXIT(run_broker("run", "runlog", text), 1, exe_out);
  snprintf(want, sizeof want,
           "log.file '%s/broker.log' is not written: this broker logs to stderr (membroker run); a "
           "service start would refuse it: ",
           name);
  ASSERT_CONTAINS(exe_out, want);
  snprintf(want, sizeof want, "parent directory '%s' does not exist", name);
  ASSERT_CONTAINS(exe_out, want);
  ASSERT_CONTAINS(exe_out, "cannot start: ");
}

/* ---- review rv14: the machine's capacity, maps and groups this user cannot check, arguments - */

/* The smallest of what this machine can commit (mb_os_commit_caps), as --check-config takes it. */
static uint64_t machine_cap(void) {
  mb_os_commit_caps_t caps;
  uint64_t cap;
  mb_os_memstatus_t ms;
  ASSERT_OK(mb_os_commit_caps(&caps));
  ASSERT_OK(mb_os_memstatus(&ms));
  ASSERT_EQ_U64(caps.physical, ms.total);
  ASSERT(caps.physical > 0);
  ASSERT(caps.commit_limit > 0 && caps.section_space > 0);
  ASSERT((caps.commit_limit == UINT64_MAX) == (caps.commit_what[0] == '\0'));
  ASSERT((caps.section_space == UINT64_MAX) == (caps.section_what[0] == '\0'));
  if (MB_OS_POSIX) /* sections live in /dev/shm, which has a size */
    ASSERT(caps.section_space != UINT64_MAX);
  cap = caps.physical;
  if (caps.commit_limit < cap)
    cap = caps.commit_limit;
  if (caps.section_space < cap)
    cap = caps.section_space;
  return cap;
}

/* A start commits more than the machine can give: one region committed at start (it said valid
 * for 64 TiB, and the start failed "commit refused (os error 28)"), and two regions that fit
 * alone but not together; a lazy region of the same size reserves only and passes. */
TEST(check_config_machine_capacity) {
  char text[512], want[200];
  uint64_t cap = machine_cap(), half = (cap / 2 + 65536) / 65536 * 65536;
  check_refuses("cap1", "{\"regions\": [{\"name\": \"w\", \"size\": \"64TiB\"}]}",
                "regions[0]: region 'w' is committed at start: 64.0 TiB, more than ");
  ASSERT_CONTAINS(exe_out, "(use \"commit\": \"lazy\" or a smaller region): invalid "
                           "configuration\n");
  snprintf(text, sizeof text,
           "{\"regions\": [{\"name\": \"a\", \"size\": %llu}, {\"name\": \"b\", \"size\": %llu}]}",
           (unsigned long long)half, (unsigned long long)half);
  snprintf(want, sizeof want, "regions: a start commits ");
  check_refuses("cap2", text, want);
  ASSERT_CONTAINS(exe_out, " (control block, regions committed at start, slot tables, pools, "
                           "maps), more than ");
  ASSERT_EXIT(run_broker("--check-config", "cap3",
                         "{\"regions\": [{\"name\": \"w\", \"size\": \"64TiB\", \"commit\": "
                         "\"lazy\"}]}"),
              0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (");
}

#if MB_OS_POSIX
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* As user nobody: --check-config's checks on the config file argv[0], whose map file nobody may
 * not read and whose sections.group is "root": valid, both listed as not checked (exit 10). */
CHILD(check_as_nobody) {
  static mb_config_t cfg;
  char skipped[4096];
  if (argc != 1)
    return 100;
  if (mb__config_load(&cfg, argv[0]) != 0) {
    printf("load: %s\n", mb_last_error());
    return 101;
  }
  if (mb__config_check_host(&cfg, 0, skipped, sizeof skipped) != 0) {
    printf("check: %s\n", mb_last_error());
    return 102;
  }
  if (strstr(skipped, "maps[0].path '") == NULL ||
      strstr(skipped, "': not checked: this user may not read it (") == NULL ||
      strstr(skipped, "sections.group 'root': the group exists; whether the broker may give its "
                      "objects to it") == NULL) {
    printf("not checked:\n%s", skipped);
    return 103;
  }
  return 10;
}

/* A map file only the broker's account may read is "not checked" for another user, as
 * persist.dir and log.file are (it was "invalid", exit 1); a group the user is not in is
 * listed too; the same file and group as root are checked, and nothing is listed. */
TEST(check_config_not_checked_for_this_user) {
#if MB_OS_POSIX
  char map[64], cfgfile[128], text[800], abs[600], cwd[400];
  int code = -1;
  if (geteuid() != 0)
    SKIP("needs root, to make a map file only root may read and to run a child as nobody");
  ASSERT(getcwd(cwd, sizeof cwd) != NULL);
  mb_test_name(map, sizeof map, "secret.gmap");
  snprintf(abs, sizeof abs, "%s/%s", cwd, map);
  ASSERT_OK(mb__gmap_write(abs, 16, 16, 0, 1));
  ASSERT(chmod(abs, 0600) == 0);
  snprintf(text, sizeof text,
           "{\"sections\": {\"group\": \"root\"}, \"maps\": [{\"name\": \"m\", \"path\": \"%s\"}]}",
           abs);
  write_temp(cfgfile, sizeof cfgfile, "nobody", text, strlen(text));
  ASSERT(chmod(cfgfile, 0644) == 0);
  /* Root reads the map and may give objects to root: valid, nothing unchecked. */
  ASSERT_EXIT(mb_test_run_exe(MB_BROKER_EXE, T_EXE_MS, exe_out, sizeof exe_out, "--check-config",
                              cfgfile, NULL),
              0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (");
  ASSERT(strstr(exe_out, "not checked") == NULL);
  if (mb_test_run_as_nobody("check_as_nobody", cfgfile, &code) != 0) {
    remove(cfgfile);
    remove(abs);
    SKIP("cannot run a child as another user here");
  }
  remove(cfgfile);
  remove(abs);
  ASSERT_EQ(code, 10);
#else
  SKIP("POSIX permissions and groups (on Windows an ACL may name any group that exists)");
#endif
}

/* sections.group naming this user's own group: root or not, the user may give objects to it,
 * so it is not listed as "not checked" (it was, even for root). */
TEST(check_config_own_group_checked) {
#if MB_OS_POSIX
  char text[256];
  struct group *g = getgrgid(getegid());
  if (g == NULL)
    SKIP("this process's group has no name");
  snprintf(text, sizeof text, "{\"sections\": {\"group\": \"%s\"}}", g->gr_name);
  ASSERT_EXIT(run_broker("--check-config", "owngrp", text), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (");
  ASSERT(strstr(exe_out, "sections.group") == NULL);
#else
  SKIP("POSIX groups (on Windows an ACL may name any group that exists: never listed)");
#endif
}

/* membroker's arguments: a FILE after --check-config's is refused naming it (it was ignored);
 * --check-config -c FILE and --check-config --config FILE take the file as `run -c` does; two
 * -c refused (the second won silently), as are two files and --check-config with `run`. */
TEST(broker_arguments) {
  char file[128];
  const char *good = "{\"regions\": [{\"name\": \"r\", \"size\": 65536}]}";
  write_temp(file, sizeof file, "args", good, strlen(good));
#define BROKER(...) mb_test_run_exe(MB_BROKER_EXE, T_EXE_MS, exe_out, sizeof exe_out, __VA_ARGS__)
  ASSERT_EXIT(BROKER("--check-config", file, "extra", NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "membroker: unexpected argument 'extra': --check-config takes one FILE");
  ASSERT_EXIT(BROKER("--check-config", "-c", file, NULL), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (instance default, 1 regions, 0 pools, 0 maps)\n");
  ASSERT_EXIT(BROKER("--check-config", "--config", file, NULL), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (instance default, 1 regions, 0 pools, 0 maps)\n");
  ASSERT_EXIT(BROKER("-c", file, "--check-config", NULL), 0, exe_out);
  ASSERT_CONTAINS(exe_out, ": valid (");
  ASSERT_EXIT(BROKER("run", "-c", file, "-c", "other.json", NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "membroker: -c given twice (");
  ASSERT_CONTAINS(exe_out, "then 'other.json'): give one\n");
  ASSERT_EXIT(BROKER("run", "--config", file, "-c", "other.json", NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "membroker: -c given twice (");
  ASSERT_EXIT(BROKER("--check-config", file, "-c", "other.json", NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "membroker: two config files (");
  ASSERT_EXIT(BROKER("--check-config", "-c", NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "membroker: -c needs a FILE");
  ASSERT_EXIT(BROKER("run", "--check-config", file, NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "--check-config takes only a FILE (or -c FILE), not 'run'");
  ASSERT_EXIT(BROKER("--check-config", file, "--check-config", file, NULL), 2, exe_out);
  ASSERT_CONTAINS(exe_out, "--check-config given twice");
#undef BROKER
  remove(file);
}
