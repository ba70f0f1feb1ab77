/*
 * cmd_info.c - the handlers of the commands that read the broker (commands.def, admin 0: the
 * status report's sections, help, version, the effective config) and of the watch stream's
 * start and stop. Each handler reads call->args (already checked by the dispatcher to hold
 * only the names its commands.def line lists), leaves its answer in call->result, or fails
 * with mb__ctl_fail naming what was wrong (cmd.h). It must never change the broker's state:
 * a command that does is admin in commands.def and its handler lives in cmd_admin.c (game
 * data maps, reading and changing, have their own area: cmd_maps.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "report.h"

int mb__cmd_ping(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateString("pong")) == NULL)
    return mb__ctl_oom(call, "ping");
  return 0;
}

/* The help entry of one command: {"name", "admin", "args": [names], "help"}. */
static cJSON *mb__help_entry(const mb_ctl_cmd_t *c) {
  const mb_cmd_arg_t *a;
  cJSON *o = cJSON_CreateObject(), *args, *s;
  if (o == NULL || !cJSON_AddStringToObject(o, "name", c->name) ||
      !cJSON_AddBoolToObject(o, "admin", c->needs_admin) ||
      (args = cJSON_AddArrayToObject(o, "args")) == NULL ||
      !cJSON_AddStringToObject(o, "help", c->help)) {
    cJSON_Delete(o);
    return NULL;
  }
  for (a = c->args; a->name; a++) {
    if ((s = cJSON_CreateString(a->name)) == NULL || !cJSON_AddItemToArray(args, s)) {
      cJSON_Delete(s);
      cJSON_Delete(o);
      return NULL;
    }
  }
  return o;
}

/*
 * help [command: name] -> [{"name": "status", "admin": false, "args": ["sections"],
 * "help": "..."}, ...], every command of commands.def in its order; with `command`, that
 * one's entry alone (not_found when there is no such command).
 */
int mb__cmd_help(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "command");
  const mb_ctl_cmd_t *c;
  cJSON *arr, *o;
  if (v != NULL && !cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'command' must be a string (a command name), got %s", mb__ctl_jtype(v));
  if (v != NULL) {
    if ((c = mb__ctl_command(v->valuestring)) == NULL)
      return mb__ctl_fail(call, MB_ENOENT, "no command '%.64s' (help lists them)", v->valuestring);
    if ((call->result = mb__help_entry(c)) == NULL)
      return mb__ctl_oom(call, "help");
    return 0;
  }
  if ((arr = cJSON_CreateArray()) == NULL)
    return mb__ctl_oom(call, "help");
  for (c = mb__ctl_commands(); c->name; c++) {
    if ((o = mb__help_entry(c)) == NULL || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      cJSON_Delete(arr);
      return mb__ctl_oom(call, "help");
    }
  }
  call->result = arr;
  return 0;
}

int mb__cmd_version(mb_ctl_call_t *call) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddStringToObject(o, "version", mb__version()) ||
      !cJSON_AddNumberToObject(o, "layout_version", MB_LAYOUT_VERSION) ||
      !cJSON_AddStringToObject(o, "build", mb__build_id())) {
    cJSON_Delete(o);
    return mb__ctl_oom(call, "version");
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
    return mb__ctl_oom(call, "status");
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
    return mb__ctl_oom(call, "watch");
  call->watch = 1;
  call->watch_interval_ms = ms;
  call->watch_sections = mask;
  return 0;
}

/* unwatch -> {"watching": false}; ends the connection's stream (if any). */
int mb__cmd_unwatch(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "watching", 0))
    return mb__ctl_oom(call, "unwatch");
  call->watch = -1;
  return 0;
}

int mb__cmd_regions(mb_ctl_call_t *call) {
  if ((call->result = mb__report_regions(call->broker)) == NULL)
    return mb__ctl_oom(call, "regions");
  return 0;
}

int mb__cmd_clients(mb_ctl_call_t *call) {
  if ((call->result = mb__report_clients(call->broker)) == NULL)
    return mb__ctl_oom(call, "clients");
  return 0;
}

/* pools -> the pool directory: one object per pool (mb__report_pools), [] when none. */
int mb__cmd_pools(mb_ctl_call_t *call) {
  if ((call->result = mb__report_pools(call->broker)) == NULL)
    return mb__ctl_oom(call, "pools");
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
    return mb__ctl_oom(call, "heaps");
  return 0;
}

int mb__cmd_config(mb_ctl_call_t *call) {
  if ((call->result = mb__config_to_json(&call->broker->cfg)) == NULL)
    return mb__ctl_oom(call, "config");
  return 0;
}
