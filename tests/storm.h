/*
 * storm.h - the truth after a kill storm, read from the shared sections (tests/storm.c), for
 * test-killstorm.c and test-slotstorm.c. Each helper reads a pool or region that nobody else
 * uses meanwhile (every client gone or stopped), and bounds every walk.
 */
#ifndef MB_TESTS_STORM_H
#define MB_TESTS_STORM_H

#include <stdint.h>

#include "broker.h"
#include "pool.h"

/* Blocks in the pool's free stack (walked). */
uint64_t mb_storm_free_stack_blocks(mb_pool_map_t *p);
/* Blocks never handed out (above the bump index). */
uint64_t mb_storm_never_used(mb_pool_map_t *p);
/* Blocks whose stamp is not MB_STAMP_FREE (held, cached, being given). */
uint64_t mb_storm_held_blocks(mb_pool_map_t *p);
/* allocated - freed, from the intent records (mb__pool_totals). */
int64_t mb_storm_counted_out(mb_pool_map_t *p);

/* What a slotted region's slot table says against what its counters say. */
typedef struct mb_storm_slots_s {
  uint64_t owned;       /* slots with an owner */
  uint64_t busy;        /* pages left locked */
  uint64_t users_wrong; /* pages whose user count is not the owned slots on them */
  uint64_t users_extra; /* sum of (user count - owned slots) over those pages */
  uint64_t committed;   /* pages marked committed */
} mb_storm_slots_t;

void mb_storm_look(mb_region_map_t *r, mb_storm_slots_t *t);

/* Spin for `us` microseconds (a random instant to kill at, not a wait for a condition). */
void mb_storm_spin_us(uint64_t us);

/*
 * Spawn CHILD(child) of this test binary with args a0..a2 (NULL-terminated; a2 may be NULL),
 * retrying a spawn the OS refuses for a while: under Wine a storm's hundreds of process starts
 * now and then get ERROR_INTERNAL_ERROR (1359) from CreateProcess. Fails the test after 5 s of
 * refusals.
 */
void mb_storm_spawn(mb_os_child_t *k, const char *child, const char *a0, const char *a1,
                    const char *a2);

/* xorshift32 */
uint32_t mb_storm_rnd(uint32_t *s);

#endif
