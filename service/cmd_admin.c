/*
 * cmd_admin.c - the commands that change the broker, for administrators only (commands.def
 * says so; the dispatcher enforces it): set-status, set-message, set-counter, compact,
 * shutdown. Each logs what it changed. Handlers as in cmd.h: argument errors are bad_args, a
 * failure below them its MB_E* code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "report.h"

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
    return mb__ctl_oom(call, "set-status");
  }
  call->result = o;
  return 0;
}

/* set-message {"message": "..."} (UTF-8, at most MB_STATUS_MSG_MAX - 1 bytes) */
int mb__cmd_set_message(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "message");
  mb_state_t *st = call->broker->state;
  size_t n;
  int rc;
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "missing 'message' (a string)");
  if (!cJSON_IsString(v))
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'message' must be a string, got %s",
                        mb__ctl_jtype(v));
  if ((n = strlen(v->valuestring)) > MB_STATUS_MSG_MAX - 1)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS, "'message' is %zu bytes, at most %d allowed", n,
                        MB_STATUS_MSG_MAX - 1);
  if ((rc = mb__state_write_msg(st, v->valuestring)) != 0)
    return mb__ctl_fail_rc(call, rc);
  mb_store64(&st->game.last_update_wall_ns, mb_os_wall_ns());
  mb_log_info("status message set (control pipe): \"%s\"", v->valuestring);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "message", v->valuestring))
    return mb__ctl_oom(call, "set-message");
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
    return mb__ctl_oom(call, "set-counter");
  return 0;
}

/* compact -> {"freed_bytes": N, "supported": bool} */
int mb__cmd_compact(mb_ctl_call_t *call) {
  uint64_t freed = 0;
  int rc = mb__broker_compact(call->broker, &freed), supported = rc != MB_ENOTSUP;
  if (rc != 0 && rc != MB_ENOTSUP)
    return mb__ctl_fail(call, rc, "compact failed: %s", mb_last_error());
  if (freed)
    mb_log_info("compact: %llu bytes given back (control pipe)", (unsigned long long)freed);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddNumberToObject(call->result, "freed_bytes", (double)freed) ||
      !cJSON_AddBoolToObject(call->result, "supported", supported))
    return mb__ctl_oom(call, "compact");
  return 0;
}

/* shutdown -> {"stopping": true}; the stop is requested once this answer is written. */
int mb__cmd_shutdown(mb_ctl_call_t *call) {
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "stopping", 1))
    return mb__ctl_oom(call, "shutdown");
  mb_log_info("shutdown requested over the control pipe");
  call->stop_after = 1;
  return 0;
}
