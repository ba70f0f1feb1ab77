/*
 * cmd_admin.c - the commands that change the broker, for administrators only (commands.def
 * says so; the dispatcher enforces it): set-status, set-message, set-counter, compact,
 * evict, save, shutdown. Each logs what it changed. Handlers as in cmd.h: argument errors are
 * bad_args, a failure below them its MB_E* code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "clients.h"
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

/* shutdown -> {"stopping": true, "pid", "start_time"}; the stop is requested once this answer
 * is written. pid and start_time (mb_os_procid_t's, as a decimal string: a Windows start time
 * passes 2^53) name the broker's process, so `mbctl shutdown --wait` waits for exactly it. */
int mb__cmd_shutdown(mb_ctl_call_t *call) {
  char start[24];
  snprintf(start, sizeof start, "%llu", (unsigned long long)call->broker->self.start_time);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddBoolToObject(call->result, "stopping", 1) ||
      !cJSON_AddNumberToObject(call->result, "pid", call->broker->self.pid) ||
      !cJSON_AddStringToObject(call->result, "start_time", start))
    return mb__ctl_oom(call, "shutdown");
  mb_log_info("shutdown requested over the control pipe");
  call->stop_after = 1;
  return 0;
}

/*
 * The index in "#N" (the text after '#': 1 to 20 decimal digits) into *out; 0, or -1 when it
 * is not such a number, -2 when it is one but passes UINT64_MAX.
 */
static int mb__index_text(const char *s, uint64_t *out) {
  uint64_t n = 0;
  size_t i;
  if (s[0] == '\0')
    return -1;
  for (i = 0; s[i]; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (d > 9)
      return -1;
    if (n > (UINT64_MAX - d) / 10)
      n = UINT64_MAX; /* keeps reading: a letter later still makes it "not a number" */
    else if (n != UINT64_MAX)
      n = n * 10 + d;
  }
  *out = n;
  return n == UINT64_MAX ? -2 : 0;
}

/*
 * evict {"client": NAME, "#INDEX" or INDEX} -> {"client", "index", "pid", "dead_reason", "marked",
 * "slots_freed", "pool_objects_freed", "pending"}: a dead client's entry freed now, as the reaper
 * does after the grace period (mb__broker_evict; its takeover by name is then no longer
 * possible). Which entry is never a guess: a JSON number or a string "#N" is the index N (as
 * `clients` shows it; mbctl evict --index N); any other string is a name, also one of digits
 * only (a client may be named "2"). A live process's entry is refused (busy): its slots are in
 * use.
 */
int mb__cmd_evict(mb_ctl_call_t *call) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->args, "client");
  mb_broker_t *b = call->broker;
  mb_broker_evicted_t ev;
  uint32_t i, index = UINT32_MAX;
  uint64_t n = 0;
  char name[MB_CLIENT_NAME_MAX];
  int rc;
  if (v == NULL)
    return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                        "missing 'client' (a client's name, or its index as a number or \"#N\")");
  if (cJSON_IsNumber(v)) {
    if (!(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
      return mb__ctl_fail(
          call, MB_CTL_EBAD_ARGS,
          "'client' as a number is an index: a whole number from 0 to %u, got %.17g",
          b->cfg.max_clients ? (unsigned)b->cfg.max_clients - 1 : 0, v->valuedouble);
    n = (uint64_t)v->valuedouble;
    if (n >= b->cfg.max_clients)
      return mb__ctl_fail(
          call, MB_ENOENT, "no client index %llu: the table has %u entries (0 to %u)",
          (unsigned long long)n, (unsigned)b->cfg.max_clients, (unsigned)b->cfg.max_clients - 1);
    index = (uint32_t)n;
  } else if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
    return mb__ctl_fail(
        call, MB_CTL_EBAD_ARGS,
        "'client' must be a client's name, or its index as a number or \"#N\", got %s",
        cJSON_IsString(v) ? "\"\"" : mb__ctl_jtype(v));
  } else if (v->valuestring[0] == '#') {
    if ((rc = mb__index_text(v->valuestring + 1, &n)) == -1)
      return mb__ctl_fail(call, MB_CTL_EBAD_ARGS,
                          "'client' '%.64s': after '#' comes an index, a whole number from 0 to %u",
                          v->valuestring, (unsigned)b->cfg.max_clients - 1);
    if (rc != 0 || n >= b->cfg.max_clients)
      return mb__ctl_fail(
          call, MB_ENOENT, "no client index %.64s: the table has %u entries (0 to %u)",
          v->valuestring + 1, (unsigned)b->cfg.max_clients, (unsigned)b->cfg.max_clients - 1);
    index = (uint32_t)n;
  } else {
    for (i = 0; i < b->cfg.max_clients && index == UINT32_MAX; i++) {
      uint32_t s = MB_CLIENT_WORD_STATE(mb_load64(&b->state->clients[i].word));
      mb__client_name_get(&b->state->clients[i], name);
      if (s != MB_CLIENT_FREE && strcmp(name, v->valuestring) == 0)
        index = i;
    }
    if (index == UINT32_MAX)
      return mb__ctl_fail(call, MB_ENOENT,
                          "no client named '%.64s' (see `clients` for the names; an index is "
                          "given as #N, mbctl evict --index N)",
                          v->valuestring);
  }
  if ((rc = mb__broker_evict(b, index, &ev)) != 0)
    return mb__ctl_fail_rc(call, rc);
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "client", ev.name) ||
      !cJSON_AddNumberToObject(call->result, "index", index) ||
      !cJSON_AddNumberToObject(call->result, "pid", ev.pid) ||
      !cJSON_AddStringToObject(call->result, "dead_reason", mb__dead_reason_key(ev.reason)) ||
      !cJSON_AddBoolToObject(call->result, "marked", ev.marked) ||
      !cJSON_AddNumberToObject(call->result, "slots_freed", (double)ev.slots) ||
      !cJSON_AddNumberToObject(call->result, "pool_objects_freed", (double)ev.blocks) ||
      !cJSON_AddBoolToObject(call->result, "pending", ev.pending))
    return mb__ctl_oom(call, "evict");
  return 0;
}

/* Add {"file", "bytes"} of the saved file `path` to array `files` when the flush numbered seq
 * wrote it (its header says so); its size to *total. 0, or -1 out of memory. */
static int mb__saved_file(cJSON *files, const char *path, uint64_t seq, uint64_t *total) {
  mb_persist_header_t h;
  cJSON *f;
  uint64_t size;
  if (mb__persist_read_header(path, &h) != 0 || h.flush_seq != seq)
    return 0;
  size = h.header_size + h.body_size;
  *total += size;
  if ((f = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(files, f))
    return cJSON_Delete(f), -1;
  if (!cJSON_AddStringToObject(f, "file", path) ||
      !cJSON_AddNumberToObject(f, "bytes", (double)size))
    return -1;
  return 0;
}

/*
 * save -> {"dir", "flush", "files": [{"file", "bytes"}], "bytes", "duration_ms"}: the state
 * persisted now by the same flush that runs on the interval and at stop (mb__persist_flush:
 * each file written whole, then renamed over the old one). Persistence off (no persist.dir) is
 * not_supported, a failed flush its code with the flush's message (the old files stay); a
 * persist.dir that is gone or is no longer a directory is said so (not_found, io_error).
 */
int mb__cmd_save(mb_ctl_call_t *call) {
  mb_broker_t *b = call->broker;
  mb_persist_t *p = &b->persist;
  uint64_t t0, t1, total = 0;
  char path[MB_PERSIST_PATH_MAX];
  cJSON *files;
  int rc, i;
  if (!p->enabled)
    return mb__ctl_fail(call, MB_ENOTSUP,
                        "persistence is off: set persist.dir in the config to save the state");
  t0 = mb_os_mono_ns();
  if ((rc = mb__persist_flush(b)) != 0) {
    char why[512];
    mb_os_path_kind_t kind = MB_OS_PATH_DIR;
    snprintf(why, sizeof why, "%s", mb_last_error());
    /* A dir that was moved away or replaced since the start: say so, and claim nothing of
     * files that are not where they were. */
    if (mb_os_path_kind(p->dir, 1, &kind) == 0 && kind != MB_OS_PATH_DIR)
      return mb__ctl_fail(call, kind == MB_OS_PATH_NONE ? MB_ENOENT : MB_EIO,
                          "save failed: persist.dir '%s' %s (was it moved or replaced since the "
                          "start?): %s",
                          p->dir,
                          kind == MB_OS_PATH_NONE ? "no longer exists" : "is not a directory", why);
    return mb__ctl_fail(call, rc,
                        "save failed (a file is replaced only once its new copy is written "
                        "whole: what persist.dir holds is the last good save): %s",
                        why);
  }
  t1 = mb_os_mono_ns();
  if ((call->result = cJSON_CreateObject()) == NULL ||
      !cJSON_AddStringToObject(call->result, "dir", p->dir) ||
      !cJSON_AddNumberToObject(call->result, "flush", (double)p->seq) ||
      (files = cJSON_AddArrayToObject(call->result, "files")) == NULL)
    return mb__ctl_oom(call, "save");
  for (i = 0; i < MB_REGIONS_MAX && b->cfg.persist_regions[i][0] != '\0'; i++)
    if (mb__persist_path(p->dir, b->cfg.instance, b->cfg.persist_regions[i], path, sizeof path) ==
            0 &&
        mb__saved_file(files, path, p->seq, &total) != 0)
      return mb__ctl_oom(call, "save");
  if (mb__persist_path(p->dir, b->cfg.instance, NULL, path, sizeof path) == 0 &&
      mb__saved_file(files, path, p->seq, &total) != 0)
    return mb__ctl_oom(call, "save");
  if (!cJSON_AddNumberToObject(call->result, "bytes", (double)total) ||
      !cJSON_AddNumberToObject(call->result, "duration_ms", (double)(t1 - t0) / 1e6))
    return mb__ctl_oom(call, "save");
  mb_log_info("state saved on request (control pipe): flush %llu, %d files, %llu bytes in %.1f ms",
              (unsigned long long)p->seq, cJSON_GetArraySize(files), (unsigned long long)total,
              (double)(t1 - t0) / 1e6);
  return 0;
}
