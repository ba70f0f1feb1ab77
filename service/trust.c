/*
 * trust.c - the broker's private copies of the control block's fixed fields and the check
 * that holds the block to them (see trust.h).
 *
 * Owns: b->trust. Reads the control block field by field (atomically where the field is an
 * atomic; a plain field is copied by bytes and compared, never used as a size or an index)
 * and writes back only what the broker itself published. Never follows an offset, count or
 * index read from shared memory: loops run over the broker's configuration.
 *
 * Crash points of the multi-step writes here (the broker dying between two steps): a forged
 * entry made dead (CAS to CLAIMED, time and reason, CAS to DEAD), a header or descriptor
 * written back field by field, a map entry republished (FREE, fields, READY) - the control
 * block belongs to this broker and goes with it: the next broker purges it and publishes a
 * new one from its own config, so no step is left for anyone to finish. A client that takes
 * the entry while the broker works on it makes the broker's CAS fail: the client's stands.
 */
#include "trust.h"

#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "log.h"

static const char *const mb__damage_keys[] = {
#define MB__X(name, key) key,
    MB_DAMAGE_MAP(MB__X)
#undef MB__X
};

const char *mb__damage_key(int k) {
  return k >= 0 && k < MB_DAMAGE_KINDS ? mb__damage_keys[k] : "unknown";
}

uint64_t mb__damage_total(const mb_broker_t *b) {
  uint64_t n = 0;
  int k;
  for (k = 0; k < MB_DAMAGE_KINDS; k++)
    n += b->trust.damage[k];
  return n;
}

/* The fixed parts: a region descriptor up to its statistics (stats.h), a pool's up to its
 * stack. */
#define MB_REGION_FIXED offsetof(mb_region_desc_t, stats_room)
#define MB_POOL_FIXED offsetof(mb_pool_desc_t, head)

void mb__trust_init(mb_broker_t *b) {
  mb_trust_t *t = &b->trust;
  int i;
  memcpy(t->header, b->state, sizeof t->header);
  /* `initialised` is stored last, at publication: the copy holds the value it will have. */
  {
    uint32_t ready = MB_STATE_READY;
    memcpy(t->header + offsetof(mb_state_t, initialised), &ready, sizeof ready);
  }
  t->pool_count = b->state->pool_count;
  t->commit_limit = b->cfg.max_committed;
  for (i = 0; i < b->nregions; i++)
    memcpy(&t->regions[i], b->regions[i].desc, MB_REGION_FIXED);
  for (i = 0; i < b->npools; i++)
    memcpy(&t->pools[i], b->pools[i].desc, MB_POOL_FIXED);
  t->ready = 1;
}

void mb__trust_set_status(mb_broker_t *b, uint32_t status) {
  b->trust.server_status = status;
  if (b->state != NULL)
    mb_store32(&b->state->game.server_status, status);
}

/* Count a finding of kind k; the message (already formatted) is logged at once for the
 * first of its kind, then at most once per MB_TRUST_REPORT_EVERY_MS with the count since. */
static void mb__damage(mb_broker_t *b, int k, const char *what) {
  mb_trust_t *t = &b->trust;
  uint64_t now = mb_os_mono_ns();
  t->damage[k]++;
  t->pending[k]++;
  if (t->reported_ns[k] != 0 &&
      now - t->reported_ns[k] < (uint64_t)MB_TRUST_REPORT_EVERY_MS * 1000000u)
    return;
  mb_log_warn("control block damaged (%s): %s; %llu finding%s of this kind since the last "
              "report, %llu ever",
              mb__damage_key(k), what, (unsigned long long)t->pending[k],
              t->pending[k] == 1 ? "" : "s", (unsigned long long)t->damage[k]);
  t->pending[k] = 0;
  t->reported_ns[k] = now;
}

/* Header: every field the broker wrote once, compared as bytes and written back. */
static int mb__check_header(mb_broker_t *b) {
  static const struct {
    size_t off, size;
    const char *name;
  } f[] = {
      {offsetof(mb_state_t, magic), 8, "magic"},
      {offsetof(mb_state_t, layout_version), 4, "layout_version"},
      {offsetof(mb_state_t, header_size), 4, "header_size"},
      {offsetof(mb_state_t, total_size), 8, "total_size"},
      {offsetof(mb_state_t, broker_pid), 4, "broker_pid"},
      {offsetof(mb_state_t, max_clients), 4, "max_clients"},
      {offsetof(mb_state_t, broker_start_time), 8, "broker_start_time"},
      {offsetof(mb_state_t, created_wall_ns), 8, "created_wall_ns"},
      {offsetof(mb_state_t, initialised), 4, "initialised"},
      {offsetof(mb_state_t, region_count), 4, "region_count"},
  };
  mb_state_t *st = b->state;
  unsigned char *raw = (unsigned char *)st;
  char what[160];
  uint64_t gen, limit;
  uint32_t pools;
  size_t i;
  int found = 0;
  for (i = 0; i < sizeof f / sizeof f[0]; i++) {
    unsigned char now[8];
    memcpy(now, raw + f[i].off, f[i].size);
    if (memcmp(now, b->trust.header + f[i].off, f[i].size) == 0)
      continue;
    if (f[i].off == offsetof(mb_state_t, initialised))
      mb_store32(&st->initialised, MB_STATE_READY);
    else
      memcpy(raw + f[i].off, b->trust.header + f[i].off, f[i].size);
    snprintf(what, sizeof what, "header field %s was overwritten: restored", f[i].name);
    mb__damage(b, MB_DAMAGE_HEADER, what);
    found++;
  }
  memcpy(&gen, b->trust.header + offsetof(mb_state_t, generation), sizeof gen);
  if (mb_load64(&st->generation) != gen) {
    mb_store64(&st->generation, gen);
    mb__damage(b, MB_DAMAGE_HEADER, "header field generation was overwritten: restored");
    found++;
  }
  memcpy(&pools, (const void *)&st->pool_count, sizeof pools);
  if (pools != b->trust.pool_count) {
    memcpy((void *)&st->pool_count, &b->trust.pool_count, sizeof pools);
    mb__damage(b, MB_DAMAGE_HEADER, "pool_count was overwritten: restored");
    found++;
  }
  if ((limit = mb_load64(&st->game.commit_limit)) != b->trust.commit_limit) {
    mb_store64(&st->game.commit_limit, b->trust.commit_limit);
    snprintf(what, sizeof what,
             "commit_limit %llu was written, limits.max_committed is %llu: "
             "restored",
             (unsigned long long)limit, (unsigned long long)b->trust.commit_limit);
    mb__damage(b, MB_DAMAGE_HEADER, what);
    found++;
  }
  return found;
}

/*
 * The map directory against the broker's own records (b->maps, maps.h): a loaded map's entry
 * is READY with its seq, size and name; every other entry is FREE (a load in flight keeps
 * its seq). A READY entry that differs is published again as maps.c does (FREE, the fields,
 * READY), so a reader that checks state and seq around its copy never takes a mix. The GMAP
 * figures (width, height, counts, checksum) are for listings only and are not checked.
 */
static int mb__check_maps(mb_broker_t *b) {
  char what[160], name[MB_MAP_NAME_MAX];
  int i, found = 0;
  for (i = 0; i < MB_MAPS_MAX; i++) {
    const mb_map_slot_t *s = &b->maps[i];
    mb_map_desc_t *d = &b->state->maps[i];
    uint32_t state = mb_load32(&d->state);
    if (s->state != MB_MAP_SLOT_LOADED) {
      if (state == MB_MAP_FREE)
        continue;
      mb_store32(&d->state, MB_MAP_FREE);
      snprintf(what, sizeof what, "map directory entry %d: state %u, no map is loaded there: freed",
               i, (unsigned)state);
      mb__damage(b, MB_DAMAGE_DIRECTORY, what);
      found++;
      continue;
    }
    mb__name_get(d->name, name);
    if (state == MB_MAP_READY && mb_load32(&d->seq) == s->seq && mb_load64(&d->size) == s->size &&
        strcmp(name, s->name) == 0)
      continue;
    mb_store32(&d->state, MB_MAP_FREE);
    mb_store32(&d->seq, s->seq);
    mb_fence();
    mb__name_set(d->name, s->name);
    mb_store64(&d->size, s->size);
    mb_store32(&d->state, MB_MAP_READY);
    snprintf(what, sizeof what, "map directory entry %d (map '%s') was overwritten: restored", i,
             s->name);
    mb__damage(b, MB_DAMAGE_DIRECTORY, what);
    found++;
  }
  return found;
}

/* The fixed part of one descriptor (`size` bytes at `live`), compared as bytes with the
 * private copy and written back if a client changed it. 1 if it was. */
static int mb__restore_fixed(mb_broker_t *b, void *live, const void *copy, size_t size,
                             const char *kind, const char *name) {
  unsigned char now[MB_REGION_FIXED > MB_POOL_FIXED ? MB_REGION_FIXED : MB_POOL_FIXED];
  char what[160];
  memcpy(now, live, size);
  if (memcmp(now, copy, size) == 0)
    return 0;
  memcpy(live, copy, size);
  snprintf(what, sizeof what, "descriptor of %s '%s' was overwritten: restored", kind, name);
  mb__damage(b, MB_DAMAGE_DIRECTORY, what);
  return 1;
}

/* Region and pool descriptors: the fixed parts, compared as bytes and written back. */
static int mb__check_directory(mb_broker_t *b) {
  int i, found = 0;
  for (i = 0; i < b->nregions; i++)
    found += mb__restore_fixed(b, b->state->regions + i, &b->trust.regions[i], MB_REGION_FIXED,
                               "region", b->cfg.regions[i].name);
  for (i = 0; i < b->npools; i++)
    found += mb__restore_fixed(b, b->state->pools + i, &b->trust.pools[i], MB_POOL_FIXED, "pool",
                               b->cfg.pools[i].name);
  /* Entries past the configured ones are not read by anyone who trusts the counts; a
   * region_count or pool_count forged to reach them was restored above. */
  return found + mb__check_maps(b);
}

/*
 * Entry i holds a word no client writes (an unknown state; ATTACHED by pid 0): make it
 * DEAD with reason ABANDONED, by one CAS from exactly `w` to CLAIMED (a real client that
 * takes it meanwhile wins), then the time and the reason, then DEAD. Its slots and blocks
 * are reaped after the grace period like any dead client's.
 */
static int mb__entry_kill(mb_broker_t *b, uint32_t i, uint64_t w, uint64_t now, const char *why) {
  mb_client_entry_t *e = &b->state->clients[i];
  uint64_t expected = w, claimed = MB_CLIENT_WORD_AS(w, MB_CLIENT_CLAIMED);
  char what[256];
  if (!mb_cas64(&e->word, &expected, claimed))
    return 0;
  mb_store64(&e->dead_since_ns, now);
  mb_store32(&e->dead_reason, MB_DEAD_ABANDONED);
  expected = claimed;
  (void)mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD));
  snprintf(what, sizeof what, "client entry %u: %s: marked dead, freed after the grace period",
           (unsigned)i, why);
  mb__damage(b, MB_DAMAGE_CLIENTS, what);
  return 1;
}

/* A time in the entry that runs ahead of the broker's clock: clamped to now (one CAS from
 * the value judged, so a legitimate store meanwhile stands). */
static int mb__entry_clamp(mb_broker_t *b, uint32_t i, mb_au64 *field, uint64_t now,
                           const char *name) {
  uint64_t v = mb_load64(field), slack = (uint64_t)MB_TRUST_CLOCK_SLACK_MS * 1000000u;
  char what[160];
  if (v <= now || v - now <= slack)
    return 0;
  if (!mb_cas64(field, &v, now))
    return 0;
  snprintf(what, sizeof what, "client entry %u: %s %llu ms in the future: set to now", (unsigned)i,
           name, (unsigned long long)((v - now) / 1000000u));
  mb__damage(b, MB_DAMAGE_CLIENTS, what);
  return 1;
}

/* The client table, entries the configuration allows only. */
static int mb__check_clients(mb_broker_t *b) {
  mb_state_t *st = b->state;
  uint64_t now = mb_os_mono_ns();
  uint32_t i;
  int found = 0;
  for (i = 0; i < b->cfg.max_clients && i < MB_CLIENTS_MAX; i++) {
    mb_client_entry_t *e = &st->clients[i];
    uint64_t w = mb_load64(&e->word), last;
    uint32_t s = MB_CLIENT_WORD_STATE(w);
    char what[160];
    if (s > MB_CLIENT_DEAD) {
      mb_os_procid_t id;
      id.pid = MB_CLIENT_WORD_PID(w);
      id.start_time = mb_load64(&e->start_time);
      if (id.pid != 0 && mb_os_proc_alive(&id) == 1) {
        /* Its process lives: a forged state byte on a live client. Attached again (one CAS
         * from exactly w), never made dead: its blocks and slots are in use. */
        uint64_t expected = w;
        if (mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_ATTACHED))) {
          snprintf(what, sizeof what, "client entry %u: state %u on a live process: attached again",
                   (unsigned)i, (unsigned)s);
          mb__damage(b, MB_DAMAGE_CLIENTS, what);
          found++;
        }
        continue;
      }
      snprintf(what, sizeof what, "state %u", (unsigned)s);
      found += mb__entry_kill(b, i, w, now, what);
      continue;
    }
    if (s == MB_CLIENT_FREE)
      continue;
    if (s == MB_CLIENT_ATTACHED && MB_CLIENT_WORD_PID(w) == 0) {
      found += mb__entry_kill(b, i, w, now, "attached by pid 0");
      continue;
    }
    if (s == MB_CLIENT_ATTACHED)
      found += mb__entry_clamp(b, i, &e->heartbeat_ns, now, "heartbeat");
    if (s == MB_CLIENT_DEAD) {
      uint32_t reason = mb_load32(&e->dead_reason);
      found += mb__entry_clamp(b, i, &e->dead_since_ns, now, "dead_since");
      if (reason == MB_DEAD_NONE || reason > MB_DEAD_RESTORED) {
        if (mb_cas32(&e->dead_reason, &reason, MB_DEAD_ABANDONED)) {
          snprintf(what, sizeof what, "client entry %u: dead_reason %u: set to abandoned",
                   (unsigned)i, (unsigned)reason);
          mb__damage(b, MB_DAMAGE_CLIENTS, what);
          found++;
        }
      }
    }
    /* A name fills 31 bytes at most: the last byte of the last word is always 0. */
    last = mb_load64(&e->name[MB_CLIENT_NAME_MAX / 8 - 1]);
    if ((last >> 56) != 0) {
      uint64_t fixed = last & ~(UINT64_C(0xFF) << 56);
      if (mb_cas64(&e->name[MB_CLIENT_NAME_MAX / 8 - 1], &last, fixed)) {
        snprintf(what, sizeof what, "client entry %u: name not NUL-terminated: cut to 31 bytes",
                 (unsigned)i);
        mb__damage(b, MB_DAMAGE_CLIENTS, what);
        found++;
      }
    }
  }
  return found;
}

/* The status message: a writer holds it (odd seq) for microseconds; the same odd value at
 * two checks a tick apart is a writer that will not publish (died, or forged): released by
 * moving seq to the next even value (one CAS), so readers and writers carry on. */
static int mb__check_message(mb_broker_t *b) {
  mb_state_t *st = b->state;
  uint32_t s = mb_load32(&st->msg.seq);
  char what[160];
  if (!(s & 1u)) {
    b->trust.msg_odd = 0;
    return 0;
  }
  if (s != b->trust.msg_odd) {
    b->trust.msg_odd = s;
    return 0;
  }
  b->trust.msg_odd = 0;
  if (!mb_cas32(&st->msg.seq, &s, s + 1))
    return 0;
  snprintf(what, sizeof what, "status message held mid-write (seq %u, writer pid %llu): released",
           (unsigned)s, (unsigned long long)mb_load64(&st->msg.writer_pid));
  mb__damage(b, MB_DAMAGE_MESSAGE, what);
  return 1;
}

int mb__trust_check(mb_broker_t *b) {
  uint32_t status;
  int found = 0;
  if (b->state == NULL || !b->trust.ready)
    return 0;
  found += mb__check_header(b);
  found += mb__check_directory(b);
  status = mb_load32(&b->state->game.server_status);
  if (status != b->trust.server_status) {
    char what[160];
    mb_store32(&b->state->game.server_status, b->trust.server_status);
    snprintf(what, sizeof what, "server_status %u written, the broker says %u: restored",
             (unsigned)status, (unsigned)b->trust.server_status);
    mb__damage(b, MB_DAMAGE_STATUS, what);
    found++;
  }
  found += mb__check_clients(b);
  found += mb__check_message(b);
  return found;
}
