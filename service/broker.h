/*
 * broker.h - the broker's memory: the single-instance lock, the control block
 * (SharedGameState) and the regions, from start to stop.
 */
#ifndef MB_BROKER_H
#define MB_BROKER_H

#include "config.h"
#include "layout.h"
#include "os.h"
#include "slots.h"

typedef struct mb_broker_s {
  mb_config_t cfg;
  int flags; /* MB_OS_SEC_GLOBAL for a Windows service, else 0 */
  intptr_t lock;
  mb_os_section_t state_sec;
  mb_state_t *state;
  int nregions;
  mb_region_map_t regions[MB_REGIONS_MAX];
  mb_os_procid_t self;
  uint64_t start_mono_ns;
  uint64_t start_wall_ns;
  int stale_purged; /* objects of a dead broker found and purged at start */
} mb_broker_t;

/*
 * Bring the broker's memory up: take the instance lock (MB_EBUSY: another broker runs), purge
 * objects a dead broker left behind, create the regions and the control block, and publish
 * it with server status "running". On failure everything made so far is released again and
 * the detail message says what failed.
 */
int mb__broker_start(mb_broker_t *b, const mb_config_t *cfg, int flags);

/* Once a second: refresh the broker heartbeat in the control block. */
void mb__broker_tick(mb_broker_t *b);

/* Server status "shutting down" (what game servers see first). */
void mb__broker_begin_stop(mb_broker_t *b);

/* Release everything (after mb__broker_begin_stop); the instance lock last. */
void mb__broker_stop(mb_broker_t *b);

/* Find a region by name, or NULL. */
mb_region_map_t *mb__broker_region(mb_broker_t *b, const char *name);

/* Compact every slotted region; *freed receives the bytes given back. */
int mb__broker_compact(mb_broker_t *b, uint64_t *freed);

/* Sum of committed bytes over all regions (data) and the control block. */
uint64_t mb__broker_committed(const mb_broker_t *b);

#endif /* MB_BROKER_H */
