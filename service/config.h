/*
 * config.h - the broker's configuration: defaults, the JSON file, the effective config.
 *
 * One table of scalar options (config.c) holds every key path with its type, default and
 * range; the JSON file (config/membroker.json, schema in config/README.md) overrides it.
 * Loading either succeeds completely or leaves the caller's config untouched: a bad file
 * gives MB_ECONFIG and one detail message (mb_last_error()) naming the file, the key path
 * and what is wrong, e.g.
 *   membroker.json: regions[1].size: "64XB" is not a size (use bytes or
 *   B/KiB/MiB/GiB/TiB): invalid configuration
 */
#ifndef MB_CONFIG_H
#define MB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_CONFIG_PATH_MAX 512

typedef enum { MB_LOG_ERROR = 0, MB_LOG_WARN, MB_LOG_INFO, MB_LOG_DEBUG } mb_log_level_t;

typedef struct mb_region_cfg_s {
  char name[MB_REGION_NAME_MAX]; /* [a-z0-9_-], 1..31 chars */
  uint64_t size;                 /* bytes, > 0, multiple of 65536 */
  int lazy;                      /* "commit": "lazy" (1) or "start" (0, default) */
  uint32_t slot_size;            /* 0 = no slots; else power of two, 64 B .. 1 MiB, <= size */
  int large_pages; /* "large_pages": bool, default false; only with "commit": "start" */
} mb_region_cfg_t;

typedef struct mb_pool_cfg_s {
  char name[MB_POOL_NAME_MAX]; /* [a-z0-9_-], 1..31 chars, unique among pools */
  uint32_t object_size;        /* bytes, 8 .. 1 MiB */
  uint32_t align;              /* power of two, 8 .. 4096, default 16 */
  uint32_t capacity;           /* objects, 1 .. 16777216 */
  int debug;                   /* bool, default false: check frees, poison freed blocks */
} mb_pool_cfg_t;

typedef struct mb_map_cfg_s {
  char name[MB_MAP_NAME_MAX];    /* [a-z0-9_-], 1..31 chars, unique among maps */
  char path[MB_CONFIG_PATH_MAX]; /* the GMAP file; a relative path is made relative to the
                                    config file's directory by mb__config_load */
} mb_map_cfg_t;

typedef struct mb_config_s {
  char path[MB_CONFIG_PATH_MAX];        /* file it was loaded from ("" for defaults) */
  char instance[MB_INSTANCE_MAX];       /* [A-Za-z0-9_-], 1..31 chars, default "default" */
  mb_log_level_t log_level;             /* "log": {"level": "error|warn|info|debug"} default info */
  char log_file[MB_CONFIG_PATH_MAX];    /* "log": {"file": null|"path"} default "" (stderr) */
  int log_event_log;                    /* "log": {"event_log": bool} Windows service; default 1 */
  uint64_t log_max_bytes;               /* "log": {"max_bytes": size} 0 or 4 KiB..1 TiB, 10 MiB */
  uint32_t log_keep;                    /* "log": {"keep": N} rotated files kept, 0..99, 5 */
  uint32_t heartbeat_timeout_ms;        /* "clients": {"heartbeat_timeout_ms": N} 0 = off */
  uint32_t grace_period_ms;             /* "clients": {"grace_period_ms": N} default 30000 */
  uint32_t max_clients;                 /* "clients": {"max": N} 1..MB_CLIENTS_MAX, default 64 */
  uint32_t pipe_mode;                   /* "pipe": {"mode": "0660"} octal, 0666 bits at most */
  char pipe_operators_group[64];        /* "pipe": {"operators_group": null|"name"} default "" */
  uint64_t pipe_max_line;               /* "pipe": {"max_line": size} 1 KiB .. 16 MiB, 64 KiB */
  uint32_t pipe_max_connections;        /* "pipe": {"max_connections": N} 1..100000, 1024 */
  uint32_t pipe_admin_reserve;          /* "pipe": {"admin_reserve": N} < max_connections, 4 */
  uint32_t pipe_idle_timeout_ms;        /* "pipe": {"idle_timeout_ms": N} 0 = never, 300000 */
  uint32_t pipe_line_timeout_ms;        /* "pipe": {"line_timeout_ms": N} 0 = never, 10000 */
  uint32_t section_mode;                /* "sections": {"mode": "0660"} default 0660 */
  char section_group[64];               /* "sections": {"group": null|"name"} default "" */
  uint64_t max_committed;               /* "limits": {"max_committed": size} 0 = no limit */
  char persist_dir[MB_CONFIG_PATH_MAX]; /* "persist": {"dir": null|"path"} "" = not saved */
  char persist_regions[MB_REGIONS_MAX][MB_REGION_NAME_MAX]; /* "persist": {"regions": [..]} */
  uint32_t persist_interval_ms; /* "persist": {"interval_ms": N} 100..3600000, default 5000 */
  char metrics_listen[64]; /* "metrics": {"listen": null|"HOST:PORT"} default "" (no listener) */
  int nregions;
  mb_region_cfg_t regions[MB_REGIONS_MAX];
  int npools; /* "pools": [...] default none */
  mb_pool_cfg_t pools[MB_POOLS_MAX];
  int nmaps; /* "maps": [...] default none: game data maps loaded at start */
  mb_map_cfg_t maps[MB_MAPS_MAX];
} mb_config_t;

/*
 * Fill cfg with the built-in defaults, including the three default regions (world 64 MiB
 * committed at start, players 32 MiB lazy with 1 KiB slots, npc 16 MiB committed at start).
 * Every byte of cfg is written (unused bytes are zero), so two configs compare with memcmp.
 */
void mb__config_defaults(mb_config_t *cfg);

/*
 * Parse `len` bytes of JSON text over the defaults. `source` names the text in error
 * messages (normally the file name; NULL gives "<config>"). On success cfg holds the
 * defaults overridden by the text, cfg->path is "" and 0 is returned. On failure cfg is not
 * touched and MB_ECONFIG is returned with one message naming source, key path and problem
 * (MB_EINVAL for a NULL cfg, MB_ENOMEM if a copy of the text cannot be allocated).
 */
int mb__config_parse(mb_config_t *cfg, const char *text, size_t len, const char *source);

/*
 * Read the file at `path` (at most 1 MiB) and parse it as mb__config_parse() does, then set
 * cfg->path and make every relative map path and persist.dir relative to the file's
 * directory (the part of `path` up to its last '/' or '\'); a path is absolute when it starts
 * with '/' or '\' or a drive letter ("C:"). A missing or unreadable file is MB_ECONFIG too,
 * with the OS reason in the message and the errno value in mb_last_os_error().
 */
int mb__config_load(mb_config_t *cfg, const char *path);

/*
 * `path` made relative to the directory of the config file `cfg_path` (what precedes its last
 * '/' or '\'), into out[size] (out may be path): as it is when it is absolute or cfg_path has
 * no directory part. MB_ENAMETOOLONG if it does not fit (out is then "").
 */
int mb__config_resolve_path(const char *cfg_path, const char *path, char *out, size_t size);

/*
 * The effective config as JSON in the file's schema (every key present, sizes as integers,
 * modes as octal strings, unset strings as null), so printing it and parsing the text gives
 * the same config back. Sizes of 10^15 bytes or more, which cJSON would print rounded, are
 * size strings instead ("8192 TiB"). The caller frees it with cJSON_Delete; NULL when out
 * of memory.
 */
cJSON *mb__config_to_json(const mb_config_t *cfg);

/* Slot tables may take at most this share (percent) of the machine's physical memory. */
#define MB_CONFIG_TABLE_SHARE_PCT 25

/*
 * The bytes region r's slot table adds to its section, committed at start whatever r's commit
 * mode and charged against limits.max_committed (0 without slots). Uses the page size.
 */
uint64_t mb__config_slot_table(const mb_region_cfg_t *r);

/* mb__config_check_host flags. */
#define MB_CONFIG_CHECK_START 1 /* called by the start itself: see below */

/*
 * What a start checks against this machine, checked without starting and without changing
 * anything (mb__config_load checks only the text). In order, the first failure is returned:
 *  - sections.group and pipe.operators_group: the group exists;
 *  - persist.dir: a directory, or its parent is one (a start creates it);
 *  - log.file: a regular file (not a link), or its parent is a directory;
 *  - slot tables (mb__config_slot_table): none, nor all of them, more than
 *    MB_CONFIG_TABLE_SHARE_PCT % of physical memory (mb_os_memstatus);
 *  - maps[i].path: read and checked whole (mb_gmap_check), as a start loads it;
 *  - what a start commits (control block, regions committed at start, slot tables, pools,
 *    maps): at most what this machine can give (mb_os_commit_caps: physical memory, the OS
 *    commit limit, the size of the shared-memory file system; the capacity, not what is free
 *    now), and at most limits.max_committed.
 *  - the share of slot tables and the capacity are per broker: other brokers on the machine
 *    are not counted.
 * Failure: MB_ECONFIG, one message "<file>: <key> '<value>': <why>: invalid configuration".
 * What needs the broker's privileges is not an error: whether the broker's account may write
 * log.file / persist.dir or read a map file (a refusal for this user), or give its objects to
 * the group (when this user may not: not root, not a member); each
 * such check skipped is one line in skipped[size] ("" if none; skipped may be NULL).
 * With MB_CONFIG_CHECK_START (the start's own call, before it makes anything) only the
 * groups, persist.dir and the slot-table share are checked: the start opens the log, loads
 * the maps and checks the limit itself, with the real figures.
 */
int mb__config_check_host(const mb_config_t *cfg, int flags, char *skipped, size_t size);

/* The log.file check of mb__config_check_host alone (0 when log.file is not set), for a
 * `membroker run` that does not write it but says what a service start would. */
int mb__config_check_log_file(const mb_config_t *cfg);

/* "error", "warn", "info" or "debug" ("unknown" for any other value). */
const char *mb__log_level_name(mb_log_level_t l);

#ifdef __cplusplus
}
#endif

#endif /* MB_CONFIG_H */
