/*
 * fixture.c - the standard small broker config of the tests and its config file (see
 * fixture.h). Compiled into each test binary that starts a broker.
 */
#include "fixture.h"

#include "task.h"

#include <cjson/cJSON.h>

#define FX_FILES_MAX 64

static char fx_files[FX_FILES_MAX][1024];
static int fx_nfiles;
static int fx_atexit_set;

void fx_config(mb_config_t *cfg, const char *instance) {
  mb__config_defaults(cfg);
  if (snprintf(cfg->instance, sizeof cfg->instance, "%s", instance) >= (int)sizeof cfg->instance)
    FAIL("instance name too long: %s", instance);
  fx_no_regions(cfg);
  fx_region(cfg, "world", FX_WORLD_SIZE, 0, 0);
  fx_region(cfg, "players", FX_PLAYERS_SIZE, 1, FX_SLOT_SIZE);
}

void fx_config_pid(mb_config_t *cfg, const char *prefix, const char *tag) {
  char instance[MB_INSTANCE_MAX + 1];
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(instance, sizeof instance, "%s%u%s", prefix, (unsigned)self.pid, tag);
  fx_config(cfg, instance);
}

static int fx_region_index(const mb_config_t *cfg, const char *name) {
  int i;
  for (i = 0; i < cfg->nregions; i++)
    if (strcmp(cfg->regions[i].name, name) == 0)
      return i;
  return -1;
}

int fx_region(mb_config_t *cfg, const char *name, uint64_t size, int lazy, uint32_t slot_size) {
  int i = fx_region_index(cfg, name);
  mb_region_cfg_t *r;
  if (i < 0) {
    if (cfg->nregions >= MB_REGIONS_MAX)
      FAIL("fx_region(%s): already %d regions", name, cfg->nregions);
    i = cfg->nregions++;
  }
  r = &cfg->regions[i];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  r->size = size;
  r->lazy = lazy;
  r->slot_size = slot_size;
  return i;
}

void fx_region_drop(mb_config_t *cfg, const char *name) {
  int i = fx_region_index(cfg, name);
  if (i < 0)
    FAIL("fx_region_drop(%s): no such region", name);
  memmove(&cfg->regions[i], &cfg->regions[i + 1],
          (size_t)(cfg->nregions - i - 1) * sizeof cfg->regions[0]);
  cfg->nregions--;
  memset(&cfg->regions[cfg->nregions], 0, sizeof cfg->regions[0]);
}

void fx_log(mb_config_t *cfg, mb_log_level_t level, const char *file) {
  cfg->log_level = level;
  if (snprintf(cfg->log_file, sizeof cfg->log_file, "%s", file ? file : "") >=
      (int)sizeof cfg->log_file)
    FAIL("log file path too long: %s", file);
}

void fx_no_regions(mb_config_t *cfg) {
  cfg->nregions = 0;
  memset(cfg->regions, 0, sizeof cfg->regions);
}

int fx_pool(mb_config_t *cfg, const char *name, uint32_t object_size, uint32_t align,
            uint32_t capacity) {
  int i;
  mb_pool_cfg_t *p;
  for (i = 0; i < cfg->npools; i++)
    if (strcmp(cfg->pools[i].name, name) == 0)
      break;
  if (i == cfg->npools) {
    if (cfg->npools >= MB_POOLS_MAX)
      FAIL("fx_pool(%s): already %d pools", name, cfg->npools);
    cfg->npools++;
  }
  p = &cfg->pools[i];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->object_size = object_size;
  p->align = align;
  p->capacity = capacity;
  return i;
}

char *fx_config_text(const mb_config_t *cfg, const char *extra) {
  cJSON *doc = mb__config_to_json(cfg);
  char *text, *out, *end;
  size_t n;
  if (doc == NULL)
    FAIL("mb__config_to_json: out of memory");
  text = cJSON_Print(doc);
  cJSON_Delete(doc);
  if (text == NULL)
    FAIL("cJSON_Print: out of memory");
  /* Room for the text, ",\n\t<extra>\n}\n" and its NUL. */
  n = strlen(text) + (extra ? strlen(extra) : 0) + 8;
  if ((out = malloc(n)) == NULL)
    FAIL("out of memory");
  memcpy(out, text, strlen(text) + 1);
  cJSON_free(text);
  if ((end = strrchr(out, '}')) == NULL)
    FAIL("the config text has no closing brace: %s", out);
  if (extra != NULL)
    snprintf(end, n - (size_t)(end - out), ",\n\t%s\n}\n", extra);
  else
    snprintf(end, n - (size_t)(end - out), "}\n");
  return out;
}

/* atexit: remove every file the fixture wrote. */
static void fx_remove_files(void) {
  int i;
  for (i = 0; i < fx_nfiles; i++)
    remove(fx_files[i]);
  fx_nfiles = 0;
}

void fx_write_text(const char *path, const char *text) {
  FILE *fp;
  int i;
  for (i = 0; i < fx_nfiles && strcmp(fx_files[i], path) != 0; i++)
    ;
  if (i == fx_nfiles) {
    if (fx_nfiles == FX_FILES_MAX || strlen(path) >= sizeof fx_files[0])
      FAIL("fx_write_text(%s): too many files or too long a path", path);
    if (!fx_atexit_set)
      fx_atexit_set = atexit(fx_remove_files) == 0;
    snprintf(fx_files[fx_nfiles++], sizeof fx_files[0], "%s", path);
  }
  if ((fp = fopen(path, "w")) == NULL)
    FAIL("cannot write %s", path);
  if (fputs(text, fp) < 0 || fclose(fp) != 0)
    FAIL("cannot write %s", path);
}

void fx_write_config(const char *path, const mb_config_t *cfg, const char *extra) {
  char *text = fx_config_text(cfg, extra);
  fx_write_text(path, text);
  free(text);
}
