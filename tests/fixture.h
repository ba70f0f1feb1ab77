/*
 * fixture.h - the one broker config of the tests: the standard small config as an mb_config_t
 * (for a broker started in the test process or in a child) and as a JSON file (for the
 * membroker executable), with named overrides for what tests vary. Owns the test config's
 * facts - the instance naming and the two standard regions - so no test writes its own.
 *
 * The standard small config: the built-in defaults (config.c) with
 *   instance  as given (fx_config) or "<prefix><pid><tag>" (fx_config_pid), unique to the
 *             test process so tests in parallel never meet,
 *   regions   world   256 KiB committed at start,
 *             players 1 MiB lazy, 1 KiB slots,
 *   no pools, no maps, persist off, log to stderr.
 * A test changes what it needs afterwards: fx_region / fx_region_drop / fx_no_regions,
 * fx_pool, and the config's named fields for the rest (heartbeat_timeout_ms, grace_period_ms,
 * max_clients, persist_dir, log_file, pipe_mode, ...). Configs that are themselves under test
 * (test-config.c's bad input) are written there, not here.
 *
 * Files written with fx_write_config / fx_write_text are removed when the test process exits
 * (atexit, so also after a failed assertion). Every helper fails the test (FAIL, task.h)
 * instead of returning an error.
 */
#ifndef MB_TEST_FIXTURE_H
#define MB_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define FX_WORLD_SIZE (256 * 1024)    /* region "world", committed at start */
#define FX_PLAYERS_SIZE (1024 * 1024) /* region "players", lazy */
#define FX_SLOT_SIZE 1024             /* the slots of "players" */

/* The standard small config for instance `instance` (1..31 of [A-Za-z0-9_-]). */
void fx_config(mb_config_t *cfg, const char *instance);

/* fx_config for instance "<prefix><pid><tag>" (this process's id). */
void fx_config_pid(mb_config_t *cfg, const char *prefix, const char *tag);

/*
 * Region `name` with the given size, commit mode (lazy 1: commit on use; 0: at start) and
 * slot size (0: no slots): the region of that name is changed in place, else one is appended.
 * Returns its index in cfg->regions.
 */
int fx_region(mb_config_t *cfg, const char *name, uint64_t size, int lazy, uint32_t slot_size);

/* Remove region `name` (the ones after it move up); fails the test if there is none. */
void fx_region_drop(mb_config_t *cfg, const char *name);

/* Log at `level` to the file `file` ("" or NULL: stderr, the default). */
void fx_log(mb_config_t *cfg, mb_log_level_t level, const char *file);

/* No regions at all (a broker that publishes only its control block, or a test that lists its
 * own regions in its own order with fx_region). */
void fx_no_regions(mb_config_t *cfg);

/*
 * Pool `name` of `capacity` objects of object_size bytes aligned to `align` (debug off): the
 * pool of that name is changed in place, else one is appended. Returns its index in cfg->pools.
 */
int fx_pool(mb_config_t *cfg, const char *name, uint32_t object_size, uint32_t align,
            uint32_t capacity);

/*
 * cfg as the text of a config file (the file's schema, every key present, as the `config`
 * command prints it), and, when `extra` is not NULL, the JSON members in `extra` added at the
 * end of the top object (e.g. "\"regoins\": []" for a config the broker must refuse). The
 * caller frees the text with free().
 */
char *fx_config_text(const mb_config_t *cfg, const char *extra);

/* Write fx_config_text(cfg, extra) to `path` (removed at exit). */
void fx_write_config(const char *path, const mb_config_t *cfg, const char *extra);

/* Write `text` to `path` as it is (removed at exit): for a file that is not a config at all. */
void fx_write_text(const char *path, const char *text);

#endif /* MB_TEST_FIXTURE_H */
