/*
 * report.h - the one status-report builder: `status` over the pipe, the `regions`, `clients`,
 * `pools` and `heaps` commands and mbctl's overview all come from these functions, so a field
 * has one name and one meaning everywhere.
 */
#ifndef MB_REPORT_H
#define MB_REPORT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "broker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Report sections, in report order. */
enum {
  MB_REPORT_SERVER = 1u << 0,
  MB_REPORT_MEMORY = 1u << 1,
  MB_REPORT_REGIONS = 1u << 2,
  MB_REPORT_CLIENTS = 1u << 3,
  MB_REPORT_POOLS = 1u << 4,
  MB_REPORT_ALL = (1u << 5) - 1,
};

/* The bit of section `name` ("server", "memory", ...), 0 if there is no such section. */
unsigned mb__report_section(const char *name);

/* "server, memory, regions, clients, pools" - for messages. */
const char *mb__report_section_list(void);

/*
 * The status report: an object with one member per selected section (MB_REPORT_* bits):
 *   server   status, message, players, npcs, uptime_ms, started_ms, last_update_ms,
 *            generation, pid, instance, run_id, version, build, stats_version
 *            (MB_STATS_VERSION), config_path
 *   memory   system_total, system_available, committed, committed_peak (every region at
 *            its own peak: an upper bound), limit (null: none), rss, maps (loaded now),
 *            map_bytes (their images' bytes)
 *   regions  array, see mb__report_regions
 *   clients  see mb__report_clients
 *   pools    array, see mb__report_pools (empty when no pools are configured)
 * Byte counts are integers; times are milliseconds (wall clock: since 1970). NULL when out
 * of memory. The caller frees it with cJSON_Delete.
 */
cJSON *mb__report(const mb_broker_t *b, unsigned sections);

/* Per region: name, then the figures of MB_REGION_STATS (stats.h), in list order. */
cJSON *mb__report_regions(const mb_broker_t *b);

/* Per shared pool: name, then the figures of MB_POOL_STATS (stats.h), in list order: what the
 * pool descriptor's statistics words hold (allocated and freed: the intent records' sums
 * when the pool is the broker's own) and what follows from them and the fixed fields. */
cJSON *mb__report_pools(const mb_broker_t *b);

/* {attached, hung, max, heartbeat_timeout_ms, grace_period_ms, table: [{index, state, pid,
 * name, attached_ms, heartbeat_age_ms, slots_held, restarts, [hung, [hung_for_ms,] watch,]
 * [dead_reason, dead_for_ms, freed_in_ms,] private: {in_use, committed, pools, heaps}}]} for
 * every table entry that is not free. An attached entry has `hung` (its heartbeat is older
 * than heartbeat_timeout_ms; `hung_for_ms`: since the broker found it so; it keeps
 * everything, and becomes dead only when its process exits) and `watch`, how its exit is
 * learnt: "os" (at once), "poll" (each sweep) or "pending" (the next sweep opens a watch);
 * `attached` counts hung ones too. A dead one has why, since when and when it is freed.
 * `private` sums the client's published private pools and heaps (mb__report_heaps); all
 * zeros unless the entry is attached. */
cJSON *mb__report_clients(const mb_broker_t *b);

/*
 * The private pools and heaps game servers publish (mb_track_lpool, mb_track_heap): one
 * object per attached client that shows at least one, in table order, {client, index, pid,
 * published_ms_ago (null: never), entries: [{name, kind ("pool" or "heap"), object_size
 * (pools only), in_use, peak, committed (bytes), allocs, frees, failures, objects}]}. Only
 * the client named `client` when it is not NULL ([] if there is none). NULL when out of
 * memory.
 */
cJSON *mb__report_heaps(const mb_broker_t *b, const char *client);

/*
 * Loaded map i of the directory: name, path (the file it was loaded from), size (bytes of the
 * image), width, height, tiles, objects, checksum (the GMAP file's XXH3-64, 16 hex digits),
 * loaded_ms_ago, seq (the load's number: part of its section's name). NULL when out of memory
 * or when entry i holds no loaded map.
 */
cJSON *mb__report_map(const mb_broker_t *b, int i);

/* Every loaded map (mb__report_map) in directory order; [] when none. NULL when out of memory. */
cJSON *mb__report_maps(const mb_broker_t *b);

/* "stopped", "running", "shutting_down", "draining" or "unknown". */
const char *mb__status_name(uint32_t status);

/* The broker's version ("0.1.0") and build id ("gcc 12.2.0, linux"). */
const char *mb__version(void);
const char *mb__build_id(void);

/* A 16-hex-digit id unique to this broker run (pid, start times and generation). */
void mb__run_id(const mb_broker_t *b, char out[17]);

#ifdef __cplusplus
}
#endif

#endif /* MB_REPORT_H */
