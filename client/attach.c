/*
 * attach.c - a client's attachment to the broker (membroker.h): attach (finding the broker's
 * control block in the Global\ or Local\ namespace, mapping it, taking an entry of the client
 * table), detach, close, reattach, the heartbeat thread, mb_tick, and the client's log.
 *
 * The entry's transitions (claim, takeover, publish, leave, hand-off) are the client-table
 * protocol of common/clients.h, with its crash points; this file drives them for one client.
 * The library holds no lock of its own: slots are claimed lock-free (slots.c); the player map
 * is private to the mb_client_t, which one thread uses at a time. The heartbeat thread touches
 * only the entry's heartbeat word, and only while the entry is this process's.
 */
#include "membroker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "counters.h"
#include "error.h"
#include "layout.h"
#include "os.h"
#include "pool.h"
#include "private.h"
#include "slots.h"

#define MB__BROKER_CHECK_NS (1000u * 1000000u)  /* how often mb_tick asks the OS of the broker */
#define MB__LOG_REPEAT_NS (10000ull * 1000000u) /* one repeated log message in 10 s */

MB_LAYOUT_ASSERT((int)MB_SERVER_STOPPED == (int)MB_STATUS_STOPPED &&
                     (int)MB_SERVER_RUNNING == (int)MB_STATUS_RUNNING &&
                     (int)MB_SERVER_SHUTTING_DOWN == (int)MB_STATUS_SHUTTING_DOWN &&
                     (int)MB_SERVER_DRAINING == (int)MB_STATUS_DRAINING,
                 "public server status values match the layout");
MB_LAYOUT_ASSERT(MB_MESSAGE_MAX == MB_STATUS_MSG_MAX, "message size");

/* Attachments of this process, numbered (the entry word tells them apart). */
static mb_au32 mb__seq_next;

/* ---- logging ------------------------------------------------------------------------------ */

/*
 * Hand a message to opts.log. The same text again within 10 s is counted, not repeated; the
 * count is told with that same text once it may be said again, or on its own line before a
 * different message.
 */
static void mb__clog(mb_client_t *c, int level, const char *fmt, ...) MB_PRINTF(3, 4);
static void mb__clog(mb_client_t *c, int level, const char *fmt, ...) {
  char msg[512], more[sizeof msg + 64];
  uint64_t now = mb_os_mono_ns();
  int same;
  va_list ap;
  if (c->opts.log == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  same = c->last_log_ns != 0 && strcmp(msg, c->last_log) == 0;
  if (same && now - c->last_log_ns < MB__LOG_REPEAT_NS) {
    c->log_suppressed++;
    return;
  }
  if (same && c->log_suppressed) {
    snprintf(more, sizeof more, "%s (%lu times more since it was last said)", msg,
             c->log_suppressed);
    c->opts.log(c->opts.log_user, level, more);
  } else {
    if (c->log_suppressed) {
      snprintf(more, sizeof more, "membroker: the last message came %lu times more",
               c->log_suppressed);
      c->opts.log(c->opts.log_user, level, more);
    }
    c->opts.log(c->opts.log_user, level, msg);
  }
  memcpy(c->last_log, msg, sizeof msg);
  c->last_log_ns = now;
  c->log_suppressed = 0;
}

/* ---- heartbeat ---------------------------------------------------------------------------- */

/* "stopped" or "shutting down" if the block's broker says so (a restarted broker has a block
 * of its own, so this is how a client sees it went), else NULL. */
const char *mb__stopping(const mb_state_t *st) {
  uint32_t status = mb_load32(&st->game.server_status);
  return status == MB_STATUS_STOPPED         ? "stopped"
         : status == MB_STATUS_SHUTTING_DOWN ? "shutting down"
                                             : NULL;
}

static void mb__hb_main(void *arg) {
  mb_client_t *c = arg;
  uint64_t period = (uint64_t)c->opts.heartbeat_ms * 1000000u, next = mb_os_mono_ns() + period;
  while (!mb_load32(&c->hb_stop)) {
    uint64_t now = mb_os_mono_ns();
    if (now >= next) {
      if (mb__entry_mine(c))
        mb_store64(&c->entry->heartbeat_ns, now);
      next = now + period;
    }
    mb__mem_publish(c, 0); /* once a second, shared with mb_tick */
    mb_os_sleep_ms(c->opts.heartbeat_ms < 20 ? c->opts.heartbeat_ms : 20);
  }
}

void mb__hb_stop(mb_client_t *c) {
  if (!c->hb_running)
    return;
  mb_store32(&c->hb_stop, 1);
  mb_os_thread_join(&c->hb);
  c->hb_running = 0;
}

/* ---- attach ------------------------------------------------------------------------------- */

void mb_attach_options_init(mb_attach_options_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->size = (uint32_t)sizeof *opts;
}

/* Undo the mappings of an attachment (not its table entry). */
void mb__unmap(mb_client_t *c) {
  mb__hb_stop(c);
  mb__pools_unmap(c);
  mb__regions_unmap(c);
  mb__pmap_clear(c);
  if (c->st != NULL) {
    mb_os_section_unmap(c->st, c->state_sec.size);
    mb_os_section_close(&c->state_sec);
  }
  c->st = NULL;
  c->entry = NULL;
  c->slot_region = -1;
}

/* The broker's process still runs: 1, 0, or < 0 if the OS does not say. */
static int mb__broker_alive(mb_client_t *c) {
  return mb_os_proc_alive(&c->broker);
}

/* One attempt to attach in the namespace c->sec_flags; on failure nothing is left mapped or
 * claimed. *absent is set to 1 (and the result is MB_ENOENT) when there is no control block
 * there at all. */
static int mb__attach_in(mb_client_t *c, int *absent) {
  char obj[MB_OS_NAME_MAX + 1];
  mb_state_t *st;
  mb_client_entry_t *e;
  uint32_t index = 0;
  const char *why;
  int rc, taken_over = 0, i, clashes = 0;
  uint64_t now;

  *absent = 0;
  if ((rc = mb__object_name(obj, sizeof obj, c->instance, NULL)) != 0)
    return rc;
  rc = mb_os_section_open(&c->state_sec, obj, c->sec_flags, 1);
  if (rc == MB_ENOENT)
    *absent = 1;
  if (rc != 0)
    return rc;
  if (c->state_sec.size < 64) {
    mb_os_section_close(&c->state_sec);
    return mb__errorf(MB_EBADMAGIC, 0, "'%s' is %llu bytes: not a control block", obj,
                      (unsigned long long)c->state_sec.size);
  }
  if ((rc = mb_os_section_map(&c->state_sec, 0, 1, (void **)&st)) != 0) {
    mb_os_section_close(&c->state_sec);
    return rc;
  }
  c->st = st;
  if ((rc = mb__state_check(st, c->state_sec.size)) != 0)
    goto fail;
  /* The counts, once, checked again on the copy (the block may have changed since). */
  c->max_clients = st->max_clients;
  c->region_count = st->region_count;
  c->pool_count = st->pool_count;
  if (c->max_clients == 0 || c->max_clients > MB_CLIENTS_MAX || c->region_count > MB_REGIONS_MAX ||
      c->pool_count > MB_POOLS_MAX) {
    rc = mb__errorf(MB_ECORRUPT, 0, "control block: max_clients %u, region_count %u, pool_count %u",
                    (unsigned)c->max_clients, (unsigned)c->region_count, (unsigned)c->pool_count);
    goto fail;
  }
  c->broker.pid = st->broker_pid;
  c->broker.start_time = st->broker_start_time;
  c->generation = mb_load64(&st->generation);
  if ((why = mb__stopping(st)) != NULL) {
    rc = mb__errorf(MB_ENOTRUNNING, 0, "the broker of instance '%s' is %s", c->instance, why);
    goto fail;
  }
  if (mb__broker_alive(c) == 0) {
    rc = mb__errorf(MB_ENOTRUNNING, 0, "the broker of instance '%s' (pid %u) is gone", c->instance,
                    (unsigned)c->broker.pid);
    goto fail;
  }
  c->slot_region = -1;
  for (i = 0; i < (int)c->region_count; i++)
    if (st->regions[i].slot_size != 0) {
      c->slot_region = i;
      break;
    }
  /* Map the slotted region before taking an entry: a failure here leaves nothing claimed. */
  if (c->slot_region >= 0 && (rc = mb__region_map(c, c->slot_region)) != 0)
    goto fail;

  /* Numbered per process and mixed with its start time, so a later process that happens to
   * get the same pid does not repeat an old word. */
  c->seq =
      (mb_add32(&mb__seq_next, 1) + 1 + (uint32_t)c->self.start_time * 2654435761u) & 0xFFFFFFu;
  for (;;) {
    if ((rc = mb__client_claim(st, c->max_clients, c->name,
                               MB_CLIENT_WORD(MB_CLIENT_CLAIMED, c->seq, c->self.pid), &index,
                               &taken_over)) != 0)
      goto fail;
    e = &st->clients[index];
    c->index = index;
    c->entry = e;
    now = mb_os_mono_ns();
    mb__client_fill(e, c->self.start_time, now, taken_over, c->name);
    if (taken_over || !mb__client_name_clash(st, c->max_clients, index, c->name))
      break;
    /* Another process attaches under this name right now: step back, let it finish, and
     * look again (we then find its entry: live, or ours to take over). */
    mb__client_free(st, index, NULL, 0, NULL, 0, NULL);
    if (++clashes > 50) {
      rc = mb__errorf(MB_EBUSY, 0, "another process keeps attaching as '%s' at the same time",
                      c->name);
      goto fail;
    }
    mb_os_sleep_ms(1 + (unsigned)(mb_os_mono_ns() % 4));
  }
  c->word = MB_CLIENT_WORD(MB_CLIENT_ATTACHED, c->seq, c->self.pid);
  if (!taken_over && c->slot_region >= 0)
    mb__drop_foreign_slots(c);
  if (taken_over && c->slot_region >= 0 && (rc = mb__adopt_slots(c)) != 0) {
    /* Give the entry back as it was found: dead, its slots kept for the grace period. */
    mb__client_claimed_to_dead(e, c->word, MB_DEAD_ABANDONED, mb_os_mono_ns());
    goto fail;
  }
  if (!mb__client_publish(e, c->word)) {
    /* The broker took it for abandoned (we were stopped for seconds): it is DEAD with our
     * pid now, and the next attempt takes it over. */
    rc = mb__errorf(MB_EBUSY, 0, "the broker reclaimed entry %u while '%s' attached",
                    (unsigned)index, c->name);
    goto fail;
  }
  c->broker_checked_ns = now;
  c->attach_seq++;
  c->pool_holder = MB_POOL_HOLDER(index + 1, c->seq, c->self.pid);
  mb__mem_reset(c);
  if (taken_over)
    mb__clog(c, MB_CLIENT_LOG_INFO, "membroker: '%s' took back its entry %u with %llu slots",
             c->name, (unsigned)index, (unsigned long long)mb_load64(&e->slots_held));
  return 0;

fail:
  mb__unmap(c);
  return rc;
}

/*
 * One attempt to attach, in the namespaces opts.flags allows. With neither MB_ATTACH_GLOBAL nor
 * MB_ATTACH_LOCAL, where the OS has two (mem_config()->sec_namespaces: Windows), Global\ (a
 * broker run as a service) is tried first, then Local\ (a console broker of this session);
 * c->sec_flags keeps the namespace where the control block was found, and every later object
 * (regions, pools, maps) is opened there. A block that exists but cannot be used (access
 * denied, bad magic, other layout, table full, name taken) ends the search with that error:
 * it is the answer, never masked by the other namespace. A block whose broker is stopping or
 * gone (MB_ENOTRUNNING) lets the search go on, since a broker may run in the other namespace;
 * if none does, that first answer stands. If there is no block anywhere: MB_ENOTRUNNING
 * naming every name tried.
 */
static int mb__attach_once(mb_client_t *c) {
  int spaces[2], nspaces = 0, i, rc, absent, first_rc = 0;
  char obj[MB_OS_NAME_MAX + 1], tried[2][MB_OS_NAME_MAX + 16], first_msg[512];

  if (c->opts.flags & MB_ATTACH_GLOBAL)
    spaces[nspaces++] = MB_OS_SEC_GLOBAL;
  else if ((c->opts.flags & MB_ATTACH_LOCAL) || !mb_os_mem_config()->sec_namespaces)
    spaces[nspaces++] = 0;
  else {
    spaces[nspaces++] = MB_OS_SEC_GLOBAL;
    spaces[nspaces++] = 0;
  }
  if ((rc = mb__object_name(obj, sizeof obj, c->instance, NULL)) != 0)
    return rc;
  for (i = 0; i < nspaces; i++) {
    c->sec_flags = spaces[i];
    if ((rc = mb_os_section_os_name(obj, spaces[i], tried[i], sizeof tried[i])) != 0)
      return rc;
    rc = mb__attach_in(c, &absent);
    if (rc == 0)
      return 0;
    if (absent)
      continue;
    if (rc != MB_ENOTRUNNING)
      return rc;
    if (first_rc == 0) {
      first_rc = rc;
      snprintf(first_msg, sizeof first_msg, "%s", mb_last_error());
    }
  }
  c->sec_flags = spaces[0];
  if (first_rc != 0) {
    /* That answer again, without the ": <sentence>" mb__errorf appends once more. */
    const char *tail = mb_strerror(first_rc);
    size_t n = strlen(first_msg), k = strlen(tail);
    if (n >= k + 2 && strcmp(first_msg + n - k, tail) == 0 && first_msg[n - k - 2] == ':')
      first_msg[n - k - 2] = '\0';
    return mb__errorf(first_rc, 0, "%s", first_msg);
  }
  if (nspaces == 2)
    return mb__errorf(MB_ENOTRUNNING, 0, "no broker runs for instance '%s' (tried %s and %s)",
                      c->instance, tried[0], tried[1]);
  return mb__errorf(MB_ENOTRUNNING, 0, "no broker runs for instance '%s' (no control block %s%s)",
                    c->instance, tried[0],
                    !mb_os_mem_config()->sec_namespaces  ? ""
                    : (c->opts.flags & MB_ATTACH_GLOBAL) ? "; MB_ATTACH_GLOBAL looks nowhere else"
                                                         : "; MB_ATTACH_LOCAL looks nowhere else");
}

/* Attach with retries while the broker is not running, up to opts.timeout_ms. */
static int mb__attach_retry(mb_client_t *c) {
  uint64_t start = mb_os_mono_ns(), limit = (uint64_t)c->opts.timeout_ms * 1000000u;
  unsigned delay = 10, tries = 0;
  int rc;
  for (;;) {
    rc = mb__attach_once(c);
    tries++;
    uint64_t spent;
    if (rc != MB_ENOTRUNNING && rc != MB_EBUSY)
      break;
    if ((spent = mb_os_mono_ns() - start) >= limit)
      break;
    mb__clog(c, MB_CLIENT_LOG_WARN, "membroker: attach '%s' to instance '%s': %s; retrying",
             c->name, c->instance, mb_last_error());
    /* Back off, but try once more at the deadline itself. */
    if ((uint64_t)delay * 1000000u > limit - spent)
      mb_os_sleep_ms((unsigned)((limit - spent + 999999u) / 1000000u));
    else
      mb_os_sleep_ms(delay);
    delay = delay * 2 > 1000 ? 1000 : delay * 2;
  }
  if (rc != 0)
    return rc;
  if (c->opts.heartbeat_ms != 0) {
    mb_store32(&c->hb_stop, 0);
    if ((rc = mb_os_thread_start(&c->hb, mb__hb_main, c)) != 0) {
      mb__clog(c, MB_CLIENT_LOG_WARN, "membroker: no heartbeat thread: %s; call mb_tick",
               mb_last_error());
      rc = 0; /* attached all the same: mb_tick still beats */
    } else {
      c->hb_running = 1;
    }
  }
  if (tries > 1)
    mb__clog(c, MB_CLIENT_LOG_INFO, "membroker: '%s' attached to instance '%s' (generation %llu)",
             c->name, c->instance, (unsigned long long)c->generation);
  return 0;
}

/* Options must come from mb_attach_options_init (their size tells the version). */
static int mb__check_opts(const mb_attach_options_t *opts) {
  if (opts != NULL && (opts->size < sizeof(uint32_t) * 4 || opts->size > sizeof *opts))
    return mb__errorf(MB_EINVAL, 0,
                      "attach options: size %u, expected %u (call "
                      "mb_attach_options_init)",
                      (unsigned)opts->size, (unsigned)sizeof *opts);
  if (opts != NULL && (opts->flags & MB_ATTACH_GLOBAL) && (opts->flags & MB_ATTACH_LOCAL))
    return mb__errorf(MB_EINVAL, 0,
                      "attach options: MB_ATTACH_GLOBAL and MB_ATTACH_LOCAL exclude each other");
  if (opts != NULL && (opts->flags & ~(uint32_t)(MB_ATTACH_GLOBAL | MB_ATTACH_LOCAL)) != 0)
    return mb__errorf(MB_EINVAL, 0, "attach options: unknown flags 0x%x",
                      (unsigned)(opts->flags & ~(uint32_t)(MB_ATTACH_GLOBAL | MB_ATTACH_LOCAL)));
  return 0;
}

/* Take checked options (NULL: keep the current ones). */
static void mb__apply_opts(mb_client_t *c, const mb_attach_options_t *opts) {
  if (opts == NULL)
    return;
  memcpy(&c->opts, opts, opts->size);
  c->opts.size = (uint32_t)sizeof c->opts;
  /* c->sec_flags is chosen by each attach (mb__attach_once): where the broker is found. */
}

int mb_attach(const char *instance, const char *name, const mb_attach_options_t *opts,
              mb_client_t **client) {
  mb_client_t *c;
  int rc;
  if (client == NULL || name == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_attach: client and name are required");
  *client = NULL;
  if (instance == NULL)
    instance = "default";
  if (!mb__name_ok(instance, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    return mb__errorf(MB_EINVAL, 0, "instance '%s': 1 to %d characters of A-Z a-z 0-9 . _ -",
                      instance, MB_INSTANCE_MAX - 1);
  if (!mb__name_ok(name, MB_CLIENT_NAME_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    return mb__errorf(MB_EINVAL, 0, "client name '%s': 1 to %d characters of A-Z a-z 0-9 . _ -",
                      name, MB_CLIENT_NAME_MAX - 1);
  if ((c = calloc(1, sizeof *c)) == NULL)
    return mb__errorf(MB_ENOMEM, 0, "mb_attach");
  if ((rc = mb_os_mutex_init(&c->mem_lock)) != 0) {
    free(c);
    return rc;
  }
  snprintf(c->instance, sizeof c->instance, "%s", instance);
  snprintf(c->name, sizeof c->name, "%s", name);
  mb_attach_options_init(&c->opts);
  c->slot_region = -1;
  mb_os_proc_self(&c->self);
  if ((rc = mb__check_opts(opts)) != 0 ||
      (mb__apply_opts(c, opts), rc = mb__attach_retry(c)) != 0) {
    mb_os_mutex_destroy(&c->mem_lock);
    free(c);
    return rc;
  }
  *client = c;
  return 0;
}

/* The entry, which we hold CLAIMED, becomes DEAD (reason CLOSED) with what it holds, for
 * the grace period: the broker frees it then, or an attach under its name takes it over. */
static void mb__claimed_to_dead(mb_client_t *c) {
  mb__client_claimed_to_dead(c->entry, c->word, MB_DEAD_CLOSED, mb_os_mono_ns());
}

/*
 * Leave the table: {ATTACHED, ours} -> {CLAIMED, ours}, its slots are freed and it becomes
 * FREE. MB_ESTALE if it is no longer ours (reaped, taken over, broker restarted): then
 * nothing in shared memory is touched.
 */
static int mb__leave(mb_client_t *c) {
  uint32_t i;
  int unmapped = 0;
  if (c->st == NULL)
    return 0;
  if (!mb__client_let_go(c->entry, c->word))
    return mb__errorf(MB_ESTALE, 0,
                      "client '%s' was no longer attached (reaped by the broker, "
                      "or the broker restarted)",
                      c->name);
  /* Every pool must be mapped to give back what the entry holds in it (a restart that never
   * opened a pool still holds its predecessor's objects there). One that cannot be mapped
   * leaves the entry DEAD instead, for the broker (which maps them all) to free. */
  mb_os_mutex_lock(&c->mem_lock);
  for (i = 0; i < c->pool_count; i++)
    if (mb__pool_map_index(c, i, 0) != 0) /* mb__client_free gives back cached ones too */
      unmapped = 1;
  mb_os_mutex_unlock(&c->mem_lock);
  if (unmapped) {
    mb__claimed_to_dead(c);
    return 0;
  }
  mb__counter_fold(c->st, c->index); /* what it added stays counted, in the base */
  mb__client_free(c->st, c->index, c->regions, (int)c->region_count, c->pools_map, MB_POOLS_MAX,
                  NULL);
  return 0;
}

/*
 * Let the entry go, keeping it: {ATTACHED, ours} -> {CLAIMED, ours} -> DEAD (reason CLOSED)
 * with its slots, for the grace period. An attach under the same name - from another process
 * or this one - takes it over. Nothing happens if it is no longer ours.
 */
static void mb__hand_off(mb_client_t *c) {
  if (c->st == NULL || !mb__client_let_go(c->entry, c->word))
    return;
  mb__claimed_to_dead(c);
}

int mb_detach(mb_client_t *client) {
  int rc;
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_detach: no client");
  if ((rc = mb__forked(client)) != 0) /* the parent's entry, caches and maps: not ours */
    return rc;
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  rc = mb__leave(client);
  mb__unmap(client);
  mb__pools_free(client);
  mb__maps_close_all(client);
  mb_os_mutex_destroy(&client->mem_lock);
  free(client);
  return rc;
}

int mb_close(mb_client_t *client) {
  int rc;
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_close: no client");
  if ((rc = mb__forked(client)) != 0) /* the parent's entry, caches and maps: not ours */
    return rc;
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  mb__hand_off(client);
  mb__unmap(client);
  mb__pools_free(client);
  mb__maps_close_all(client);
  mb_os_mutex_destroy(&client->mem_lock);
  free(client);
  return 0;
}

int mb_reattach(mb_client_t *client, const mb_attach_options_t *opts) {
  int rc;
  if (client == NULL)
    return mb__errorf(MB_EINVAL, 0, "mb_reattach: no client");
  if ((rc = mb__forked(client)) != 0) /* the parent's entry, caches and maps: not ours */
    return rc;
  if ((rc = mb__check_opts(opts)) != 0)
    return rc;
  /* The heartbeat thread reads the options: stop it before they change. The entry is handed
   * off (kept, DEAD) and taken back by the attach below if the broker is the same. */
  mb__hb_stop(client);
  mb__tcaches_release(client, NULL);
  mb__hand_off(client);
  mb__unmap(client);
  mb__apply_opts(client, opts);
  return mb__attach_retry(client);
}

/*
 * MB_EINVAL for a client handle used in a fork() child of the process that attached it (its
 * pid is c->self.pid; mb_os_pid is a cached value, no system call): the child shares the
 * parent's entry word and a copy of its thread caches, so anything it gave back or freed would
 * be handed to both. The child attaches anew (mb_attach). 0 in the attaching process.
 */
int mb__forked(const mb_client_t *c) {
  uint32_t now = mb_os_pid();
  if (c->self.pid == now)
    return 0;
  return mb__errorf(MB_EINVAL, 0,
                    "client '%s' was attached by process %u and inherited over fork() by process "
                    "%u: attach anew in the child (mb_attach); a handle from the parent must not "
                    "be used",
                    c->name, (unsigned)c->self.pid, (unsigned)now);
}

/* The attachment or MB_ENOTRUNNING for a client left detached by a failed reattach. */
int mb__need(const mb_client_t *c) {
  int rc;
  if (c == NULL)
    return mb__errorf(MB_EINVAL, 0, "no client");
  if ((rc = mb__forked(c)) != 0)
    return rc;
  if (c->st == NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "client '%s' is not attached: call mb_reattach", c->name);
  return 0;
}

/* MB_ESTALE for an entry that is no longer this attachment's, saying what became of it. */
int mb__stale(const mb_client_t *c) {
  uint64_t w = mb_load64(&c->entry->word);
  if (w == MB_CLIENT_WORD_AS(c->word, MB_CLIENT_DEAD))
    return mb__errorf(MB_ESTALE, 0, "client '%s' was declared dead by the broker: %s", c->name,
                      mb__dead_reason_why(mb_load32(&c->entry->dead_reason)));
  return mb__errorf(MB_ESTALE, 0,
                    "client '%s' is no longer attached: its entry was reaped or "
                    "taken over",
                    c->name);
}

int mb_tick(mb_client_t *c) {
  const char *why;
  uint64_t now;
  int rc;
  if ((rc = mb__need(c)) != 0)
    return rc;
  if (!mb__entry_mine(c))
    return mb__stale(c);
  now = mb_os_mono_ns();
  mb_store64(&c->entry->heartbeat_ns, now);
  mb__mem_publish(c, 0);
  /* A restarted broker has a block of its own; the one we map says stopped or shutting
   * down (or its broker is gone), so a restart is seen as "not running" here. */
  if ((why = mb__stopping(c->st)) != NULL)
    return mb__errorf(MB_ENOTRUNNING, 0, "the broker is %s", why);
  if (now - c->broker_checked_ns >= MB__BROKER_CHECK_NS) {
    c->broker_checked_ns = now;
    if (mb__broker_alive(c) == 0)
      return mb__errorf(MB_ENOTRUNNING, 0, "the broker (pid %u) is gone", (unsigned)c->broker.pid);
  }
  return 0;
}
