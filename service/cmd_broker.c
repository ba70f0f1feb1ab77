/*
 * cmd_broker.c - the broker's own commands: ping, help, version, status, regions, clients,
 * pools, heaps, config, set-status, set-message, set-counter, compact, shutdown, watch, unwatch,
 * maps, map-load, map-unload. Each handler reads call->args (already checked by the dispatcher to
 * hold only the names its table entry lists), leaves its answer in call->result, or fails with
 * mb__ctl_fail naming what was wrong; map-load hands its slow part off (mb_ctl_work_t).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "report.h"

/* The result when it could not be built: nothing else is worth saying. */
static int mb__oom(mb_ctl_call_t *call, const char *what) {
  return mb__ctl_fail(call, MB_CTL_EINTERNAL, "out of memory building the %s answer", what);
}

int mb__cmd_ping(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateString("pong")) == NULL)
    return mb__oom(call, "ping");
  return 0;
}

/* help -> [{"name": "status", "admin": false, "args": ["sections"]}, ...] */
int mb__cmd_help(mb_ctl_call_t *call) {
  const mb_ctl_cmd_t *c;
  cJSON *arr = cJSON_CreateArray();
  for (c = mb__ctl_commands(); arr && c->name; c++) {
    cJSON *o = cJSON_CreateObject(), *args;
    const char *p = c->args;
    if (o == NULL || !cJSON_AddItemToArray(arr, o) ||
        !cJSON_AddStringToObject(o, "name", c->name) ||
        !cJSON_AddBoolToObject(o, "admin", c->needs_admin) ||
        (args = cJSON_AddArrayToObject(o, "args")) == NULL) {
      cJSON_Delete(arr);
      return mb__oom(call, "help");
    }
    while (*p) {
      char name[64];
      size_t n = strcspn(p, " ");
      cJSON *s;
      snprintf(name, sizeof name, "%.*s", (int)n, p);
      if ((s = cJSON_CreateString(name)) == NULL || !cJSON_AddItemToArray(args, s)) {
        cJSON_Delete(s);
        cJSON_Delete(arr);
        return mb__oom(call, "help");
      }
      p += n + (p[n] == ' ');
    }
  }
  if (arr == NULL)
    return mb__oom(call, "help");
  call->result = arr;
  return 0;
}

int mb__cmd_version(mb_ctl_call_t *call) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddStringToObject(o, "version", mb__version()) ||
      !cJSON_AddNumberToObject(o, "layout_version", MB_LAYOUT_VERSION) ||
      !cJSON_AddStringToObject(o, "build", mb__build_id())) {
    cJSON_Delete(o);
    return mb__oom(call, "version");
  }
  call->result = o;
  return 0;
}

/* The "sections" argument of status and watch as MB_REPORT_* bits in *out (all sections when
 * it is absent or empty). 0, or the value of mb__ctl_fail. */
static int mb__sections_arg(mb_ctl_call_t *call, unsigned *out) {
  const cJSON *secs = cJSON_GetObjectItemCaseSensitive(call->args, "sections"), *s;
  unsigned mask = 0;
  if (secs != NULL) {
    if (!cJSON_IsArray(secs))
      return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                          "'sections' must be an array of section names (%s), got %s",
                          mb__report_section_list(), mb__ctl_jtype(secs));
    cJSON_ArrayForEach(s, secs) {
      unsigned bit;
      if (!cJSON_IsString(s))
        return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'sections' must hold strings, got %s",
                            mb__ctl_jtype(s));
      if ((bit = mb__report_section(s->valuestring)) == 0)
        return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "unknown section '%.64s' (sections: %s)",
                            s->valuestring, mb__report_section_list());
      mask |= bit;
    }
  }
  *out = mask ? mask : MB_REPORT_ALL;
  return 0;
}

/* status [sections: ["memory", "clients"]] - the report, all sections when none are named. */
int mb__cmd_status(mb_ctl_call_t *call) {
  unsigned mask;
  if (mb__sections_arg(call, &mask) != 0)
    return -1;
  if ((call->result = mb__report(call->broker, mask)) == NULL)
    return mb__oom(call, "status");
  return 0;
}

/*
 * watch [interval_ms: 50..60000, default 1000] [sections as for status]
 *   -> {"watching": true, "interval_ms": N}
 * The connection then streams the status report with those sections every interval_ms (the
 * pipe server does that from call->watch*); a later watch replaces the stream.
 */
int mb__cmd_watch(mb_ctl_call_t *call) {
  const cJSON *iv = cJSON_GetObjectItemCaseSensitive(call->args, "interval_ms");
  unsigned mask, ms = MB_CTL_WATCH_DEFAULT_MS;
  if (iv != NULL) {
    if (!cJSON_IsNumber(iv))
      return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                          "'interval_ms' must be an integer from %d to %d, got %s",
                          MB_CTL_WATCH_MIN_MS, MB_CTL_WATCH_MAX_MS, mb__ctl_jtype(iv));
    if (!(iv->valuedouble >= MB_CTL_WATCH_MIN_MS && iv->valuedouble <= MB_CTL_WATCH_MAX_MS) ||
        iv->valuedouble != (double)(unsigned)iv->valuedouble)
      return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                          "'interval_ms' must be an integer from %d to %d, got %.17g",
                          MB_CTL_WATCH_MIN_MS, MB_CTL_WATCH_MAX_MS, iv->valuedouble);
    ms = (unsigned)iv->valuedouble;
  }
  if (mb__sections_arg(call, &mask) != 0)
    return -1;
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "watching", 1) ||
      !cJSON_AddNumberToObject(call->result, "interval_ms", ms))
    return mb__oom(call, "watch");
  call->watch = 1;
  call->watch_interval_ms = ms;
  call->watch_sections = mask;
  return 0;
}

/* unwatch -> {"watching": false}; ends the connection's stream (if any). */
int mb__cmd_unwatch(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "watching", 0))
    return mb__oom(call, "unwatch");
  call->watch = -1;
  return 0;
}

int mb__cmd_regions(mb_ctl_call_t *call) {
  if ((call->result = mb__report_regions(call->broker)) == NULL)
    return mb__oom(call, "regions");
  return 0;
}

int mb__cmd_clients(mb_ctl_call_t *call) {
  if ((call->result = mb__report_clients(call->broker)) == NULL)
    return mb__oom(call, "clients");
  return 0;
}

/* pools -> the pool directory: one object per pool (mb__report_pools), [] when none. */
int mb__cmd_pools(mb_ctl_call_t *call) {
  if ((call->result = mb__report_pools(call->broker)) == NULL)
    return mb__oom(call, "pools");
  return 0;
}

/*
 * heaps [client: name] -> the private pools and heaps of each attached client that publishes
 * some (mb__report_heaps), of that client only when named; [] when none (or no such client).
 */
int mb__cmd_heaps(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "client");
  if (v != NULL && !cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'client' must be a string (a client name), got %s",
                        mb__ctl_jtype(v));
  if ((call->result = mb__report_heaps(call->broker, v ? v->valuestring : NULL)) == NULL)
    return mb__oom(call, "heaps");
  return 0;
}

int mb__cmd_config(mb_ctl_call_t *call) {
  if ((call->result = mb__config_to_json(&call->broker->cfg)) == NULL)
    return mb__oom(call, "config");
  return 0;
}

/* set-status {"status": "running" | "draining"} -> {"status": new, "previous": old} */
int mb__cmd_set_status(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "status");
  mb_state_t *st = call->broker->state;
  uint32_t want, old;
  cJSON *o;
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing 'status' (\"running\" or \"draining\")");
  if (!cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'status' must be \"running\" or \"draining\", got %s", mb__ctl_jtype(v));
  if (strcmp(v->valuestring, "running") == 0)
    want = MB_STATUS_RUNNING;
  else if (strcmp(v->valuestring, "draining") == 0)
    want = MB_STATUS_DRAINING;
  else
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'status' must be \"running\" or \"draining\", got \"%.64s\"",
                        v->valuestring);
  old = call->broker->trust
            .server_status; /* the broker's own idea: the block's is writable by clients */
  mb__trust_set_status(call->broker, want);
  mb_store64(&st->game.last_update_wall_ns, mb_os_wall_ns());
  if (old != want)
    mb_log_info("server status %s -> %s (control pipe)", mb__status_name(old),
                mb__status_name(want));
  o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddStringToObject(o, "status", mb__status_name(want)) ||
      !cJSON_AddStringToObject(o, "previous", mb__status_name(old))) {
    cJSON_Delete(o);
    return mb__oom(call, "set-status");
  }
  call->result = o;
  return 0;
}

/* set-message {"message": "..."} (UTF-8, at most MB_STATUS_MSG_MAX - 1 bytes) */
int mb__cmd_set_message(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "message");
  mb_state_t *st = call->broker->state;
  size_t n;
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing 'message' (a string)");
  if (!cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'message' must be a string, got %s",
                        mb__ctl_jtype(v));
  if ((n = strlen(v->valuestring)) > MB_STATUS_MSG_MAX - 1)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'message' is %zu bytes, at most %d allowed", n,
                        MB_STATUS_MSG_MAX - 1);
  if (mb__state_write_msg(st, v->valuestring) != 0)
    return mb__ctl_fail(call, MB_CTL_EBUSY, "%s", mb_last_error());
  mb_store64(&st->game.last_update_wall_ns, mb_os_wall_ns());
  mb_log_info("status message set (control pipe): \"%s\"", v->valuestring);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "message", v->valuestring))
    return mb__oom(call, "set-message");
  return 0;
}

/*
 * set-counter {"counter": "players" | "npcs", "value": N} -> {"counter", "value", "previous"}:
 * for what no rule can put right (a game server's bug, a count from before an upgrade). N is a
 * whole number, 0..10^15 (exact through JSON). The counter's base becomes N less the attached
 * clients' shares, which are left alone (counters.h), so the shown value is N at once and adds
 * racing the set count on top of it.
 */
int mb__cmd_set_counter(mb_ctl_call_t *call) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(call->args, "counter");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "value");
  mb_state_t *st = call->broker->state;
  mb_au64 *counter;
  uint64_t value, old;
  int npcs;
  if (c == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing 'counter' (\"players\" or \"npcs\")");
  if (!cJSON_IsString(c))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'counter' must be \"players\" or \"npcs\", got %s",
                        mb__ctl_jtype(c));
  if (strcmp(c->valuestring, "players") == 0)
    npcs = 0;
  else if (strcmp(c->valuestring, "npcs") == 0)
    npcs = 1;
  else
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'counter' must be \"players\" or \"npcs\", got \"%.64s\"", c->valuestring);
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing 'value' (a whole number, 0 or more)");
  if (!cJSON_IsNumber(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'value' must be a whole number, got %s",
                        mb__ctl_jtype(v));
  if (!(v->valuedouble >= 0 && v->valuedouble <= 1e15) ||
      v->valuedouble != (double)(uint64_t)v->valuedouble)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'value' must be a whole number from 0 to 1000000000000000, got %.17g",
                        v->valuedouble);
  value = (uint64_t)v->valuedouble;
  counter = npcs ? &st->game.total_npcs : &st->game.total_players;
  old = mb_load64(counter);
  mb__counter_set(st, call->broker->cfg.max_clients, npcs, value); /* base: value - shares */
  mb_store64(&st->game.last_update_wall_ns, mb_os_wall_ns());
  mb_log_info("counter %s set to %llu, was %llu (control pipe)", c->valuestring,
              (unsigned long long)value, (unsigned long long)old);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "counter", c->valuestring) ||
      !cJSON_AddNumberToObject(call->result, "value", (double)value) ||
      !cJSON_AddNumberToObject(call->result, "previous", (double)old))
    return mb__oom(call, "set-counter");
  return 0;
}

/* compact -> {"freed_bytes": N, "supported": bool} */
int mb__cmd_compact(mb_ctl_call_t *call) {
  uint64_t freed = 0;
  int rc = mb__broker_compact(call->broker, &freed), supported = rc != MB_ENOTSUP;
  if (rc != 0 && rc != MB_ENOTSUP)
    return mb__ctl_fail(call, MB_CTL_EINTERNAL, "compact failed: %s", mb_last_error());
  if (freed)
    mb_log_info("compact: %llu bytes given back (control pipe)", (unsigned long long)freed);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddNumberToObject(call->result, "freed_bytes", (double)freed) ||
      !cJSON_AddBoolToObject(call->result, "supported", supported))
    return mb__oom(call, "compact");
  return 0;
}

/* shutdown -> {"stopping": true}; the stop is requested once this answer is written. */
int mb__cmd_shutdown(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "stopping", 1))
    return mb__oom(call, "shutdown");
  mb_log_info("shutdown requested over the control pipe");
  call->stop_after = 1;
  return 0;
}

/* ---- game data maps ------------------------------------------------------------------------ */

/* maps -> every loaded map (mb__report_maps), [] when none. */
int mb__cmd_maps(mb_ctl_call_t *call) {
  if ((call->result = mb__report_maps(call->broker)) == NULL)
    return mb__oom(call, "maps");
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

/* Publish the map (or undo the load) and answer with its maps entry or the load's error. */
static int mb__map_work_done(mb_ctl_work_t *w, mb_ctl_call_t *call) {
  mb__map_work_t *mw = (mb__map_work_t *)w;
  int bad_input = 0, slot = -1;
  int rc = mb__map_load_finish(call->broker, mw->job, &bad_input, &slot);
  free(mw);
  if (rc != 0)
    return mb__ctl_fail(call, bad_input ? MB_CTL_EBAD_ARGS : MB_CTL_EINTERNAL, "%s",
                        mb_last_error());
  if ((call->result = mb__report_map(call->broker, slot)) == NULL)
    return mb__oom(call, "map-load");
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
    return mb__ctl_fail(call,
                        rc == MB_EBUSY    ? MB_CTL_EBUSY
                        : rc == MB_ENOMEM ? MB_CTL_EINTERNAL
                                          : MB_CTL_EBAD_ARGS,
                        "%s", mb_last_error());
  if ((mw = calloc(1, sizeof *mw)) == NULL) {
    mb__map_load_finish(call->broker, job, NULL, NULL); /* never ran: undone */
    return mb__oom(call, "map-load");
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
  if (mb__string_arg(call, "name", "the map's name", &name) != 0)
    return -1;
  if (mb__map_unload(call->broker, name) != 0)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "%s", mb_last_error());
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "name", name) ||
      !cJSON_AddBoolToObject(call->result, "unloaded", 1))
    return mb__oom(call, "map-unload");
  return 0;
}
