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
#include "slots.h"
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

/* Whole numbers up to this are exact in a JSON number (a double): 2^53. */
#define MB_JSON_EXACT_MAX 9007199254740992ull

/*
 * A player id (any uint64 but UINT64_MAX, as mb_player_connect takes) from a JSON value: a
 * number that is a whole number 0..2^53 (exact), or a string of 1 to 20 decimal digits (no
 * sign, spaces or leading zero) up to 18446744073709551614 - a SteamID64 passes 2^53. 0, or
 * -1 (neither a number nor a string), -2 (a number out of range or not whole), -3 (a string
 * that is not such a decimal).
 */
static int mb__player_id_arg(const cJSON *v, uint64_t *out) {
  const char *s;
  uint64_t n = 0;
  size_t i;
  if (cJSON_IsNumber(v)) {
    if (!(v->valuedouble >= 0 && v->valuedouble <= (double)MB_JSON_EXACT_MAX) ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
      return -2;
    *out = (uint64_t)v->valuedouble;
    return 0;
  }
  if (!cJSON_IsString(v))
    return -1;
  s = v->valuestring;
  if (s[0] == '\0' || strlen(s) > 20 || (s[0] == '0' && s[1] != '\0'))
    return -3;
  for (i = 0; s[i]; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (d > 9 || n > (UINT64_MAX - d) / 10)
      return -3;
    n = n * 10 + d;
  }
  if (n == UINT64_MAX)
    return -3;
  *out = n;
  return 0;
}

/*
 * player {"player": ID, "bytes": N} -> {"player" (a number up to 2^53, above it a decimal
 * string), "region", "slot", "slot_size", "offset",
 * "client": {"index", "name", "pid", "state"} or null, "bytes", "hex"}: the slot that holds
 * player ID (the first slotted region that has one), who holds it, and the slot's first
 * min(N, slot size) bytes (N default MB_CTL_PLAYER_BYTES_DEFAULT) as lowercase hex - "hex" is
 * "" while the slot's pages are being changed (a claim or release under way: ask again).
 * Read-only: the owner read from the table is range-checked against the config's client
 * count before its entry is looked at; the bytes are copied from pages the table says are
 * committed, committed in the broker's view first where views commit for themselves (as the
 * persist flush does). not_found when no slot holds the player.
 */
int mb__cmd_player(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "player");
  const cJSON *nb = cJSON_GetObjectItemCaseSensitive(call->args, "bytes");
  mb_broker_t *b = call->broker;
  uint64_t id, index = 0, want = MB_CTL_PLAYER_BYTES_DEFAULT, n, k;
  uint32_t owner = 0;
  int i, rc, found = 0;
  mb_region_map_t *r = NULL;
  cJSON *o, *c;
  char *hex, idtext[24];
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "missing 'player' (a player id from 0 to 18446744073709551614)");
  if ((rc = mb__player_id_arg(v, &id)) != 0)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "'player' must be a player id from 0 to 18446744073709551614 (a decimal "
                        "string, or a number up to 9007199254740992), got %s",
                        rc == -2   ? "a number that is not a whole number in that range"
                        : rc == -3 ? "a string that is not a decimal number in that range"
                                   : mb__ctl_jtype(v));
  if (nb != NULL) {
    if (!cJSON_IsNumber(nb) ||
        !(nb->valuedouble >= 0 && nb->valuedouble <= MB_CTL_PLAYER_BYTES_MAX) ||
        nb->valuedouble != (double)(uint64_t)nb->valuedouble)
      return mb__ctl_fail(
          call, MB_CTL_EBAD_ARGS, "'bytes' must be a whole number from 0 to %d, got %s",
          MB_CTL_PLAYER_BYTES_MAX, cJSON_IsNumber(nb) ? "another number" : mb__ctl_jtype(nb));
    want = (uint64_t)nb->valuedouble;
  }
  for (i = 0; i < b->nregions && !found; i++)
    if (b->regions[i].slot_size != 0 &&
        (found = mb__slot_find(&b->regions[i], id, &index, &owner)) != 0)
      r = &b->regions[i];
  if (!found)
    return mb__ctl_fail(call, MB_ENOENT, "no slot holds player %llu", (unsigned long long)id);
  n = want < r->slot_size ? want : r->slot_size;
  if ((o = cJSON_CreateObject()) == NULL)
    return mb__ctl_oom(call, "player");
  call->result = o;
  snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)id);
  if (!(id <= MB_JSON_EXACT_MAX ? cJSON_AddNumberToObject(o, "player", (double)id) != NULL
                                : cJSON_AddStringToObject(o, "player", idtext) != NULL) ||
      !cJSON_AddStringToObject(o, "region", r->name) ||
      !cJSON_AddNumberToObject(o, "slot", (double)index) ||
      !cJSON_AddNumberToObject(o, "slot_size", r->slot_size) ||
      !cJSON_AddNumberToObject(o, "offset", (double)(index * r->slot_size)))
    return mb__ctl_oom(call, "player");
  if (owner >= 1 && owner <= b->cfg.max_clients) {
    mb_client_entry_t *e = &b->state->clients[owner - 1];
    uint64_t w = mb_load64(&e->word);
    char name[MB_CLIENT_NAME_MAX];
    static const char *const states[] = {"free", "claimed", "attached", "dead"};
    uint32_t s = MB_CLIENT_WORD_STATE(w);
    mb__client_name_get(e, name);
    if ((c = cJSON_AddObjectToObject(o, "client")) == NULL ||
        !cJSON_AddNumberToObject(c, "index", owner - 1) ||
        !cJSON_AddStringToObject(c, "name", name) ||
        !cJSON_AddNumberToObject(c, "pid", MB_CLIENT_WORD_PID(w)) ||
        !cJSON_AddStringToObject(c, "state", s < 4 ? states[s] : "unknown"))
      return mb__ctl_oom(call, "player");
  } else if (!cJSON_AddNullToObject(o, "client")) { /* a forged owner: named by nobody */
    return mb__ctl_oom(call, "player");
  }
  if ((hex = malloc(2 * n + 1)) == NULL)
    return mb__ctl_oom(call, "player");
  hex[0] = '\0';
  if (found == 1) {
    const unsigned char *p = (const unsigned char *)mb__slot_ptr(r, index);
    uint64_t first = index * r->slot_size / r->page_size;
    uint64_t last = (index * r->slot_size + (n ? n : 1) - 1) / r->page_size; /* pages read */
    int ok = 1;
    if ((r->flags & MB_REGION_LAZY) && mb_os_mem_config()->view_commit)
      ok = mb_os_section_commit(&r->sec, r->base, first * r->page_size,
                                (last - first + 1) * r->page_size) == 0;
    for (k = 0; ok && k < n; k++)
      snprintf(hex + 2 * k, 3, "%02x", p[k]);
  }
  if (!cJSON_AddNumberToObject(o, "bytes", hex[0] ? (double)n : 0) ||
      !cJSON_AddStringToObject(o, "hex", hex)) {
    free(hex);
    return mb__ctl_oom(call, "player");
  }
  free(hex);
  return 0;
}
