/*
 * maps.h - game data maps: GMAP files the broker loads into read-only shared sections that
 * every game server maps (one copy in memory for all), listed in the control block's map
 * directory (layout.h, mb_map_desc_t).
 *
 * A load is a snapshot: the file's bytes are copied into a new section
 * membroker.<instance>.map.<name>.<seq>, checked there (mb_gmap_check, so what clients see
 * is exactly what was checked) and published; the file may change or vanish afterwards. A
 * file whose size or modification time changes while it is read is refused. Each load has a
 * new seq, so a reload never meets the sections of earlier loads that game servers still
 * map; an unload takes the map out of the directory and removes the section's name, and
 * game servers that have it mapped keep reading it until they close it.
 *
 * A load runs in three steps so that the slow part (reading and checking the file) can run
 * on a worker thread while the broker's loop goes on serving: mb__map_load_begin and
 * mb__map_load_finish on the broker's thread, mb__map_load_run on any thread in between.
 * mb__map_load does all three at once. Everything else here runs on the broker's thread.
 */
#ifndef MB_MAPS_H
#define MB_MAPS_H

#include <stdint.h>

#include "config.h"
#include "layout.h"
#include "os.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mb_broker_s;

enum {
  MB_MAP_SLOT_FREE = 0,
  MB_MAP_SLOT_LOADING = 1, /* a load in flight holds the directory entry */
  MB_MAP_SLOT_LOADED = 2,
};

/* The broker's own record of directory entry i (mb_broker_t.maps[i]). */
typedef struct mb_map_slot_s {
  int state; /* MB_MAP_SLOT_* */
  uint32_t seq;
  char name[MB_MAP_NAME_MAX];
  char path[MB_CONFIG_PATH_MAX]; /* the file it was loaded from */
  mb_os_section_t sec;           /* open while loaded (on Windows it keeps the object alive) */
  uint64_t size;                 /* bytes of the image */
  uint64_t charged;              /* bytes counted in committed_total: the section's size */
} mb_map_slot_t;

/* A load in progress (maps.c). */
typedef struct mb_map_load_s mb_map_load_t;

/*
 * Start loading the GMAP file `path` as map `name` (1..31 of a-z 0-9 _ -): reserve a
 * directory entry and make the job. MB_EINVAL (a bad name or path), MB_EEXIST (a map of that
 * name is loaded: unload it first), MB_EBUSY (it is being loaded), MB_EFULL (MB_MAPS_MAX maps
 * loaded or loading), MB_ENOMEM; each with a message naming the map. *job is written only
 * on success.
 */
int mb__map_load_begin(struct mb_broker_s *b, const char *name, const char *path,
                       mb_map_load_t **job);

/*
 * The slow part, on any thread: read the file into a new section, check it and compute its
 * checksum. Touches nothing but the job (and reads the commit limit and total atomically).
 */
void mb__map_load_run(mb_map_load_t *job);

/*
 * Publish the map (directory entry READY, charged to committed_total against
 * limits.max_committed), or undo what the job made; log the outcome; free the job. Returns 0
 * or the load's MB_E* code with its message (mb_last_error). *bad_input (may be NULL) is 1
 * when the request or the file is at fault (a bad or changed file, a name in use, the commit
 * limit) and 0 when the OS failed. *slot (may be NULL) receives the entry on success.
 */
int mb__map_load_finish(struct mb_broker_s *b, mb_map_load_t *job, int *bad_input, int *slot);

/* The name of the map a job loads (valid until mb__map_load_finish). */
const char *mb__map_load_name(const mb_map_load_t *job);

/* begin + run + finish on this thread. */
int mb__map_load(struct mb_broker_s *b, const char *name, const char *path, int *bad_input,
                 int *slot);

/*
 * Unload map `name`: its directory entry turns FREE first, then the broker lets go of the
 * section and removes its name (game servers that map it keep it until they close it).
 * MB_ENOENT if no map of that name is loaded (also while it is being loaded).
 */
int mb__map_unload(struct mb_broker_s *b, const char *name);

/*
 * At start, before the control block is published: clear the map directory and load every
 * map of the config, in order. On failure the maps loaded so far are unloaded and the
 * message names the map, its config entry, the file and what is wrong with it.
 */
int mb__maps_start(struct mb_broker_s *b);

/* Unload every map (broker stop, or a failed start). No load may be in flight. */
void mb__maps_stop(struct mb_broker_s *b);

/*
 * Remove the map sections a dead broker of this instance left (POSIX shared memory outlives
 * its creator), as its control block `old` (same layout version) lists them: every entry
 * that names a map, whatever its state (an entry is FREE once unloaded or while a load was
 * in flight, but keeps its name and seq).
 */
void mb__maps_purge_stale(struct mb_broker_s *b, const mb_state_t *old);

/*
 * For tests (failure injection, as mb_os_inject_commit_failures): when set, mb__map_load_run
 * calls it with the file's path once it has opened the file and taken its size and before it
 * reads it, so a test can change the file at exactly that moment. Process-wide; NULL (the
 * default) turns it off.
 */
extern void (*mb__map_load_test_hook)(const char *path);

/*
 * How a load fills its section (maps.c): MB_MAP_LOAD_AUTO (the default) writes through the
 * section's handle where the OS can, else reads into a populated view; the others force the
 * view, populated in bulk first or faulted in page by page by the read. For bench-map's
 * side-by-side figures and the tests of each path. Process-wide.
 */
enum { MB_MAP_LOAD_AUTO = 0, MB_MAP_LOAD_VIEW_POPULATE = 1, MB_MAP_LOAD_VIEW_FAULTS = 2 };
extern int mb__map_load_mode;

/* Maps loaded now and the bytes of their images. */
void mb__maps_totals(const struct mb_broker_s *b, uint32_t *count, uint64_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* MB_MAPS_H */
