/*
 * cmd_maps.c - the game data map commands: maps (read), map-load and map-unload
 * (administrators). map-load hands its slow part (reading and checking the file) off to a
 * worker (mb_ctl_work_t, cmd.h); maps.c does the loading. A load's failure answers with its
 * MB_E* code (mb__load_code): not_found for a missing file, already_exists for a loaded name,
 * busy for a name being loaded, bad_args for a bad name or a file that is not a valid map.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "report.h"

/* maps -> every loaded map (mb__report_maps), [] when none. */
int mb__cmd_maps(mb_ctl_call_t *call) {
  if ((call->result = mb__report_maps(call->broker)) == NULL)
    return mb__ctl_oom(call, "maps");
  return 0;
}

/* A map-load handed to a worker: the job and the work the pipe server runs. */
typedef struct mb__map_work_s {
  mb_ctl_work_t base; /* first: the pipe server hands it back as an mb_ctl_work_t */
  mb_map_load_t *job;
} mb__map_work_t;

static void mb__map_work_run(mb_ctl_work_t *w) {
  mb__map_load_run(((mb__map_work_t *)w)->job);
}

/*
 * The answer's code for a failed load: the codes a script acts on keep their names (not_found,
 * access_denied, already_exists, busy, table_full, no_space); any other fault of the file
 * itself (not a GMAP file, malformed, changed while it was read: bad_input) is bad_args, since
 * the path argument names a file that is not a map; the rest (the OS) keeps its code.
 */
static int mb__load_code(int rc, int bad_input) {
  if (rc == MB_ENOENT || rc == MB_EACCES || rc == MB_EEXIST || rc == MB_EBUSY || rc == MB_EFULL ||
      rc == MB_ENOSPC || !bad_input)
    return rc;
  return MB_CTL_EBAD_ARGS;
}

/* Publish the map (or undo the load) and answer with its maps entry or the load's error. */
static int mb__map_work_done(mb_ctl_work_t *w, mb_ctl_call_t *call) {
  mb__map_work_t *mw = (mb__map_work_t *)w;
  int bad_input = 0, slot = -1;
  int rc = mb__map_load_finish(call->broker, mw->job, &bad_input, &slot);
  free(mw);
  if (rc != 0)
    return mb__ctl_fail(call, mb__load_code(rc, bad_input), "%s", mb_last_error());
  if ((call->result = mb__report_map(call->broker, slot)) == NULL)
    return mb__ctl_oom(call, "map-load");
  return 0;
}

/* The string argument `key` of call into *out: 0, or the value of mb__ctl_fail. */
static int mb__string_arg(mb_ctl_call_t *call, const char *key, const char *what,
                          const char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, key);
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing '%s' (%s)", key, what);
  if (!cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'%s' must be a string (%s), got %s", key, what,
                        mb__ctl_jtype(v));
  *out = v->valuestring;
  return 0;
}

/*
 * map-load {"name": "world1", "path": "maps/world1.gmap"} -> the new map as `maps` lists it.
 * A relative path is relative to the directory of the broker's config file. The file is read
 * and checked on a worker thread (the answer comes when it is loaded); a name that is loaded
 * is refused (unload it first), one being loaded is busy.
 */
int mb__cmd_map_load(mb_ctl_call_t *call) {
  const char *name = NULL, *path = NULL;
  char full[MB_CONFIG_PATH_MAX];
  mb__map_work_t *mw;
  mb_map_load_t *job;
  int rc;
  if (mb__string_arg(call, "name", "the map's name", &name) != 0 ||
      mb__string_arg(call, "path", "the GMAP file", &path) != 0)
    return -1;
  if (strlen(path) >= sizeof full)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'path' is longer than %d bytes",
                        (int)sizeof full - 1);
  if (mb__config_resolve_path(call->broker->cfg.path, path, full, sizeof full) != 0)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "%s", mb_last_error());
  if ((rc = mb__map_load_begin(call->broker, name, full, &job)) != 0)
    return mb__ctl_fail_rc(call, rc);
  if ((mw = calloc(1, sizeof *mw)) == NULL) {
    mb__map_load_finish(call->broker, job, NULL, NULL); /* never ran: undone */
    return mb__ctl_oom(call, "map-load");
  }
  mw->base.run = mb__map_work_run;
  mw->base.done = mb__map_work_done;
  mw->job = job;
  call->work = &mw->base;
  return 0;
}

/* map-unload {"name": "world1"} -> {"name", "unloaded": true}. Game servers that have it
 * open keep reading it until they close it. */
int mb__cmd_map_unload(mb_ctl_call_t *call) {
  const char *name = NULL;
  int rc;
  if (mb__string_arg(call, "name", "the map's name", &name) != 0)
    return -1;
  if ((rc = mb__map_unload(call->broker, name)) != 0)
    return mb__ctl_fail_rc(call, rc);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "name", name) ||
      !cJSON_AddBoolToObject(call->result, "unloaded", 1))
    return mb__ctl_oom(call, "map-unload");
  return 0;
}
