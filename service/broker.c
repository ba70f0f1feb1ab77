/*
 * broker.c - the broker's memory from start to stop (see broker.h).
 *
 * Start order: instance lock; then for each object (regions first, control block last) purge
 * what a dead broker left under its name and create it afresh; fill the region directory;
 * publish the block with a release store of `initialised`. Nothing is ever written to fresh
 * data pages: they are zero already, and touching them would only make them resident.
 *
 * Liveness (the sweep): dead comes from the OS, hung from the heartbeat. The sweep opens a
 * process watch (pid + start time: a reused pid is refused) for each attachment it finds
 * ATTACHED and hands it to the loop (watch_ops, service/watch.c), which runs the sweep again
 * the moment the process exits; the tick's sweep asks every watch (or the pid) too, so a
 * missed wake-up costs at most a tick. A heartbeat older than the timeout only marks the
 * attachment hung, in the broker's private memory (nothing in shared memory changes, so
 * there is no step to be cut short); the mark belongs to that entry word and goes with it.
 * Crash points: the broker dies -> its watches and hung marks die with it; the restarted
 * broker publishes a new block, clients reattach, and its first sweep opens fresh watches.
 * The entry transitions the sweep makes (mark dead, reap) are the client table protocol of
 * common/clients.h, which lists their steps and crash points; this file decides when.
 * `evict` (mb__broker_evict) makes the same transitions with the same functions, only without
 * waiting for the grace period, on the loop thread like the sweep (never both at once): a
 * broker killed in the middle of one is crash point 3 of clients.h, its steps' own points are
 * 5 and 6 there. It never frees a process the OS says runs.
 * The info lines of a client's life (attached, took back, closed, detached: mb__client_seen)
 * are the sweep's view, kept in the broker's private memory (seen_word): nothing in shared
 * memory changes for them, so they add no crash point; a broker that restarts logs each
 * attachment it finds once more.
 */
#include "broker.h"

#include <stdio.h>
#include <string.h>

#include "clients.h"
#include "log.h"

/* How long to wait for a stale Windows object to vanish (its last handle is held by a game
 * server of the dead broker, which lets go once it sees the old block stopped). */
#define MB_STALE_WAIT_MS 5000

static void mb__access(const mb_broker_t *b, mb_os_access_t *acc) {
  acc->mode = b->cfg.section_mode;
  acc->group = b->cfg.section_group[0] ? b->cfg.section_group : NULL;
}

/*
 * If an object named `name` exists, it belongs to a broker that died (we hold the instance
 * lock): mark a control block stopped so game servers still mapping it let go, remember its
 * generation, then remove the name. Returns 0 when the name is free to create; MB_EBUSY, and
 * nothing is touched, when the block's broker is alive after all (a broker that took another
 * lock: the lock is not trusted with a live world).
 */
static int mb__purge_stale(mb_broker_t *b, const char *name, int is_state, uint64_t *prev_gen) {
  mb_os_section_t s;
  int rc = mb_os_section_open(&s, name, b->flags, 1);
  if (rc == MB_ENOENT)
    return 0;
  if (rc != 0) {
    mb_log_warn("stale object '%s' cannot be opened: %s", name, mb_last_error());
  } else {
    mb_state_t *old = NULL;
    if (is_state && s.size >= sizeof(mb_state_t) &&
        mb_os_section_map(&s, 0, 1, (void **)&old) == 0) {
      mb_os_procid_t owner;
      owner.pid = old->broker_pid;
      owner.start_time = old->broker_start_time;
      if (old->magic == MB_STATE_MAGIC && owner.pid != b->self.pid &&
          mb_os_proc_alive(&owner) == 1) {
        /* Holding the lock says no broker runs, but this block's broker does: two locks
         * (another lock location, another version). Replacing its block would wreck its
         * world under its game servers: refuse instead. */
        rc = mb__errorf(MB_EBUSY, 0,
                        "the control block '%s' belongs to a broker that is still running (pid "
                        "%u), though this one holds the instance lock: stop that broker first",
                        name, (unsigned)owner.pid);
        mb_os_section_unmap(old, s.size);
        mb_os_section_close(&s);
        return rc;
      }
      if (old->magic == MB_STATE_MAGIC && old->layout_version == MB_LAYOUT_VERSION) {
        *prev_gen = mb_load64(&old->generation);
        mb_log_warn("found the control block of a broker that died (pid %u, generation %llu): "
                    "marking it stopped and replacing it",
                    (unsigned)old->broker_pid, (unsigned long long)*prev_gen);
        mb_store32(&old->game.server_status, MB_STATUS_STOPPED);
        mb__maps_purge_stale(b, old);
      } else {
        mb_log_warn("found an unknown object under '%s' (not a layout %u block): replacing it",
                    name, (unsigned)MB_LAYOUT_VERSION);
      }
      mb_os_section_unmap(old, s.size);
    } else {
      mb_log_warn("found stale region object '%s' of a broker that died: replacing it", name);
    }
    mb_os_section_close(&s);
  }
  b->stale_purged++;
  rc = mb_os_section_unlink(name, b->flags);
  return rc == MB_ENOENT ? 0 : rc;
}

/*
 * Remove a large-page object a dead broker left under `name` (Linux: a file on hugetlbfs, which
 * mb__purge_stale's shared-memory name does not reach; Windows: the same name, already purged).
 */
static int mb__purge_large(mb_broker_t *b, const char *name) {
  int rc = mb_os_section_unlink(name, b->flags | MB_OS_SEC_LARGE_PAGES);
  if (rc == 0 && mb_os_mem_config()->names_persist) {
    mb_log_warn("found stale large-page region object '%s' of a broker that died: replaced it",
                name);
    b->stale_purged++;
  }
  return rc == MB_ENOENT || rc == MB_ENOTSUP ? 0 : rc;
}

/*
 * Remove every large-page region file of this instance a dead broker left (Linux: on the
 * hugetlbfs mount this broker would use), whatever the config says now: a region since dropped,
 * turned to normal pages or renamed would otherwise hold its huge pages until a reboot. Runs
 * with the instance lock held and after the control block was found not to be a live broker's,
 * so no running broker owns them. Game servers of the dead broker that still map a file keep its
 * pages until they unmap it (the file is gone, its pages are not): b->large_purged tells the
 * fallback warning so. Crash points: killed in the middle, the next start removes the rest.
 */
static int mb__purge_large_all(mb_broker_t *b) {
  char prefix[MB_OS_NAME_MAX + 1], dir[256];
  unsigned n = 0;
  int rc;
  if (snprintf(prefix, sizeof prefix, "membroker.%s.region.", b->cfg.instance) >=
      (int)sizeof prefix)
    return mb__errorf(MB_ENAMETOOLONG, 0, "instance name '%s' is too long", b->cfg.instance);
  rc = mb_os_large_purge(prefix, &n, dir, sizeof dir);
  if (n > 0) {
    mb_log_warn("removed %u large-page region file%s (%s*) a broker that died left in '%s'; "
                "their huge pages are free once no game server of it maps them",
                n, n == 1 ? "" : "s", prefix, dir);
    b->large_purged += n;
    b->stale_purged += (int)n;
  }
  return rc; /* its message names the file that could not be removed */
}

/* Create a section, waiting a while for a stale one whose name cannot be removed at once. */
static int mb__create(mb_broker_t *b, mb_os_section_t *s, const char *name, uint64_t size,
                      int flags) {
  mb_os_access_t acc;
  uint64_t deadline = mb_os_mono_ns() + (uint64_t)MB_STALE_WAIT_MS * 1000000u;
  int rc;
  mb__access(b, &acc);
  for (;;) {
    rc = mb_os_section_create(s, name, size, flags, &acc);
    if (rc != MB_EEXIST || mb_os_mono_ns() > deadline)
      break;
    mb_os_sleep_ms(50);
  }
  if (rc == MB_EEXIST)
    return mb__errorf(MB_EBUSY, 0,
                      "'%s' of a previous broker is still open in other processes (game servers "
                      "attached to it); stop them or retry",
                      name);
  return rc;
}

/* Slot owners above it are forged: client table index + 1 of the configured table. */
static uint32_t cfg_max_owner(const mb_broker_t *b) {
  return b->cfg.max_clients > 0 && b->cfg.max_clients <= MB_CLIENTS_MAX ? b->cfg.max_clients
                                                                        : MB_CLIENTS_MAX;
}

/* The length of mb_last_error() without its ": <mb_strerror(rc)> (os error N)" tail, which for
 * a large-page refusal only blurs the reason the message already gives ("commit limit reached"
 * where no limit is set). */
static int mb__detail_len(int rc) {
  const char *msg = mb_last_error(), *tail = strstr(msg, mb_strerror(rc));
  size_t n = strlen(msg);
  if (tail != NULL && tail - msg >= 2 && tail[-2] == ':')
    n = (size_t)(tail - msg) - 2;
  return (int)n;
}

/* "" for one, "s" for any other count: "1 slot", "2 slots". */
static const char *mb__plural(uint64_t n) {
  return n == 1 ? "" : "s";
}

/*
 * Create the section of a region configured with large_pages in large pages: the section rounded
 * up to whole large pages. Where they cannot be had (none on this machine, the privilege or a
 * hugetlbfs mount missing, too few free), the region gets normal pages after ONE warning naming
 * the region and the reason; *large says which it got. A stale large-page object of a dead broker
 * is purged first (on Linux it has a name of its own, on hugetlbfs). Crash points: a broker
 * killed after creating the object leaves it under its name; the next broker purges it here.
 */
static int mb__region_create_large(mb_broker_t *b, const char *region, const char *name,
                                   mb_os_section_t *sec, uint64_t section_size, int *large) {
  size_t lp = 0;
  int rc;
  *large = 0;
  rc = mb_os_large_pages(&lp);
  if (rc == 0 || rc == MB_ENOSPC) {
    uint64_t size = mb__round_up(section_size, lp);
    if ((rc = mb__purge_large(b, name)) == 0 &&
        (rc = mb__create(b, sec, name, size, b->flags | MB_OS_SEC_LARGE_PAGES)) == 0) {
      *large = 1;
      return 0;
    }
    if (rc == MB_EBUSY)
      return rc;
  }
  mb_log_warn("region '%s': large pages refused, using %zu-byte pages: %.*s%s", region,
              mb_os_mem_config()->page_size, mb__detail_len(rc), mb_last_error(),
              rc == MB_ENOSPC && b->large_purged > 0
                  ? "; the game servers of the broker that died may still map its large-page "
                    "regions and hold their huge pages: restart the broker once they have "
                    "reattached to get large pages"
                  : "");
  return mb__create(b, sec, name, section_size, b->flags);
}

/* Create region i: its section (data + slot table), mapped whole, and its descriptor. */
static int mb__region_create(mb_broker_t *b, int i, uint64_t *prev_gen) {
  const mb_region_cfg_t *rc_ = &b->cfg.regions[i];
  mb_region_desc_t *d = &b->state->regions[i];
  mb_region_map_t *r = &b->regions[i];
  uint32_t page = (uint32_t)mb_os_mem_config()->page_size;
  uint64_t slots = rc_->slot_size ? rc_->size / rc_->slot_size : 0;
  uint64_t table = slots ? mb__region_table_size(rc_->size, page, slots, page) : 0;
  uint64_t section_size = mb__round_up(rc_->size + table, page);
  /* The slot table as committed: whole normal pages after the data, large pages or not. */
  uint64_t table_bytes = slots ? section_size - rc_->size : 0;
  char name[MB_OS_NAME_MAX + 1];
  int rc, large = 0;

  if ((rc = mb__object_name(name, sizeof name, b->cfg.instance, rc_->name)) != 0 ||
      (rc = mb__purge_stale(b, name, 0, prev_gen)) != 0)
    return rc;
  if (rc_->large_pages && !rc_->lazy)
    rc = mb__region_create_large(b, rc_->name, name, &r->sec, section_size, &large);
  else
    rc = mb__create(b, &r->sec, name, section_size, b->flags | (rc_->lazy ? MB_OS_SEC_RESERVE : 0));
  if (rc != 0)
    return rc;
  if (r->sec.size > section_size)
    b->large_rounding += r->sec.size - section_size;
  section_size = r->sec.size;
  if ((rc = mb_os_section_map(&r->sec, 0, 1, (void **)&r->base)) != 0)
    goto fail;
  if (table && rc_->lazy &&
      (rc = mb_os_section_commit(&r->sec, r->base, rc_->size, section_size - rc_->size)) != 0)
    goto fail_unmap;

  memcpy(d->name, rc_->name, sizeof d->name);
  d->size = rc_->size;
  d->section_size = section_size;
  d->table_offset = slots ? rc_->size : 0;
  d->slot_count = slots;
  d->slot_size = rc_->slot_size;
  d->flags = (rc_->lazy ? MB_REGION_LAZY : 0) | (large ? MB_REGION_LARGE_PAGES : 0);
  d->page_size = page; /* the page table counts in normal pages, large pages or not */
  r->state = b->state;
  r->holder = MB_PAGE_HOLDER_BROKER;
  r->max_owner = cfg_max_owner(b);
  if ((rc = mb__region_bind(r, d, section_size)) != 0)
    goto fail_unmap;
  /* Charged now: a committed region whole, a lazy one's slot table. */
  mb_add64(&b->state->game.committed_total, rc_->lazy ? section_size - rc_->size : section_size);
  if (!rc_->lazy) {
    /* What the region holds: with large pages the section rounded up to whole large pages, less
     * its slot table (TABLE), so that a region's committed + table_bytes is what it costs. */
    uint64_t held = large ? section_size - table_bytes : d->size, p;
    mb_store64(&d->committed, held);
    mb_store64(&d->peak_committed, held);
    for (p = 0; slots && p < d->size / page; p++)
      mb_store32(&mb__region_pages(d, r->base)[p], MB_PAGE_COMMITTED);
  }
  {
    char dir[256] = "", where[300] = "";
    if (large && mb_os_hugetlbfs_dir(dir, sizeof dir) == 0)
      snprintf(where, sizeof where, " on hugetlbfs '%s'", dir);
    /* The slot table is committed whole at start, lazy or not (counted in committed_total, not
     * in the region's committed): its own figure, so a lazy region does not look free. */
    if (slots)
      mb_log_info("region %-10s %10llu bytes reserved, %10llu committed%s, slotted: %llu slot%s "
                  "of %u bytes, slot table %llu bytes committed%s%s",
                  d->name, (unsigned long long)d->size,
                  (unsigned long long)mb_load64(&d->committed), rc_->lazy ? ", lazy" : "",
                  (unsigned long long)slots, mb__plural(slots), (unsigned)d->slot_size,
                  (unsigned long long)table, large ? ", large pages" : "", where);
    else
      mb_log_info("region %-10s %10llu bytes reserved, %10llu committed%s%s%s", d->name,
                  (unsigned long long)d->size, (unsigned long long)mb_load64(&d->committed),
                  rc_->lazy ? ", lazy" : "", large ? ", large pages" : "", where);
  }
  return 0;

fail_unmap:
  mb_os_section_unmap(r->base, r->sec.size);
fail:
  mb_os_section_unlink(name, r->sec.flags);
  mb_os_section_close(&r->sec);
  r->base = NULL;
  return rc;
}

static void mb__region_destroy(mb_broker_t *b, int i) {
  mb_region_map_t *r = &b->regions[i];
  char name[MB_OS_NAME_MAX + 1];
  if (r->base == NULL)
    return;
  mb_os_section_unmap(r->base, r->sec.size);
  if (mb__object_name(name, sizeof name, b->cfg.instance, b->cfg.regions[i].name) == 0)
    mb_os_section_unlink(name, r->sec.flags);
  mb_os_section_close(&r->sec);
  r->base = NULL;
  r->desc = NULL;
}

/* Create pool i: its section (links, stamps, blocks), mapped whole, and its descriptor. The
 * section is committed (charged) at start and nothing in it is written: zero links and
 * stamps are an empty free stack and free blocks, and bump 0 says none was handed out. */
static int mb__pool_create(mb_broker_t *b, int i, uint64_t *prev_gen) {
  const mb_pool_cfg_t *pc = &b->cfg.pools[i];
  mb_pool_desc_t *d = &b->state->pools[i];
  mb_pool_map_t *p = &b->pools[i];
  char name[MB_OS_NAME_MAX + 1];
  int rc;
  memcpy(d->name, pc->name, sizeof d->name);
  if ((rc = mb__pool_layout(d, pc->object_size, pc->align, pc->capacity,
                            mb_os_mem_config()->page_size)) != 0 ||
      (rc = mb__pool_object_name(name, sizeof name, b->cfg.instance, pc->name)) != 0 ||
      (rc = mb__purge_stale(b, name, 0, prev_gen)) != 0 ||
      (rc = mb__create(b, &p->sec, name, d->section_size, b->flags)) != 0)
    return rc;
  if ((rc = mb_os_section_map(&p->sec, 0, 1, (void **)&p->base)) != 0) {
    mb_os_section_close(&p->sec);
    mb_os_section_unlink(name, b->flags);
    p->base = NULL;
    return rc;
  }
  d->flags = pc->debug ? MB_POOL_F_DEBUG : 0;
  p->desc = d;
  mb__pool_bind(p);
  mb__pool_intent_claim_broker(p, b->self.pid); /* record 0: the reaper's gives */
  mb_add64(&b->state->game.committed_total, d->section_size);
  mb_log_info("pool   %-10s %10u objects of %u bytes (stride %u), %llu bytes%s", d->name,
              (unsigned)d->capacity, (unsigned)d->object_size, (unsigned)d->stride,
              (unsigned long long)d->section_size, pc->debug ? ", debug" : "");
  return 0;
}

static void mb__pool_destroy(mb_broker_t *b, int i) {
  mb_pool_map_t *p = &b->pools[i];
  char name[MB_OS_NAME_MAX + 1];
  if (p->base == NULL)
    return;
  mb_os_section_unmap(p->base, p->sec.size);
  mb_os_section_close(&p->sec);
  if (mb__pool_object_name(name, sizeof name, b->cfg.instance, b->cfg.pools[i].name) == 0)
    mb_os_section_unlink(name, b->flags);
  memset(p, 0, sizeof *p);
}

/* Every map, pool and region made so far, last first. */
static void mb__objects_destroy(mb_broker_t *b) {
  int i;
  mb__maps_stop(b);
  for (i = b->npools; i-- > 0;)
    mb__pool_destroy(b, i);
  b->npools = 0;
  for (i = b->nregions; i-- > 0;)
    mb__region_destroy(b, i);
  b->nregions = 0;
}

int mb__broker_start(mb_broker_t *b, const mb_config_t *cfg, int flags) {
  char name[MB_OS_NAME_MAX + 1], lockname[MB_OS_NAME_MAX + 1];
  uint64_t prev_gen = 0, size, gen, saved_gen = 0;
  mb_persist_image_t *saved = NULL;
  mb_state_t *st;
  int rc, i;

  memset(b, 0, sizeof *b);
  b->cfg = *cfg;
  b->flags = flags & MB_OS_SEC_GLOBAL;
  b->lock = -1;
  b->start_mono_ns = mb_os_mono_ns();
  b->start_wall_ns = mb_os_wall_ns();
  mb_os_proc_self(&b->self);

  if ((rc = mb__object_name(name, sizeof name, cfg->instance, NULL)) != 0)
    return rc;
  /* One lock per instance on the machine, whatever the namespace (a console broker and a
   * service exclude each other); a second broker refuses before it makes anything, naming
   * the one that runs. */
  snprintf(lockname, sizeof lockname, "membroker.%s.lock", cfg->instance);
  if ((rc = mb_os_lock_take(lockname, flags & MB_OS_LOCK_SERVICE, &b->lock)) != 0) {
    mb_os_lock_holder_t who;
    if (rc != MB_EBUSY)
      return rc;
    (void)mb_os_lock_holder(lockname, &who);
    return mb__errorf(MB_EBUSY, 0, "another broker is already running for instance '%s' (%s)",
                      cfg->instance, who.what);
  }
  /* The saved state (persist.dir), checked whole before anything is made. */
  if ((rc = mb__persist_open(&b->persist, cfg, &saved)) != 0)
    goto fail_lock;

  /* The control block first, unpublished (initialised == 0), to hold the directory. */
  size = mb__round_up(sizeof(mb_state_t), mb_os_mem_config()->alloc_granularity);
  if ((rc = mb__purge_stale(b, name, 1, &prev_gen)) != 0 ||
      (rc = mb__create(b, &b->state_sec, name, size, b->flags)) != 0)
    goto fail_lock;
  if ((rc = mb_os_section_map(&b->state_sec, 0, 1, (void **)&b->state)) != 0)
    goto fail_state;
  st = b->state;
  if ((rc = mb__purge_large_all(b)) != 0)
    goto fail_map;

  for (i = 0; i < cfg->nregions; i++, b->nregions++) {
    if ((rc = mb__region_create(b, i, &prev_gen)) != 0) {
      mb__objects_destroy(b);
      goto fail_map;
    }
  }
  for (i = 0; i < cfg->npools; i++, b->npools++) {
    if ((rc = mb__pool_create(b, i, &prev_gen)) != 0) {
      mb__objects_destroy(b);
      goto fail_map;
    }
  }
  if ((rc = mb__maps_start(b)) != 0) { /* the config's maps, before anyone can see the block */
    mb__objects_destroy(b);
    goto fail_map;
  }
  mb_add64(&st->game.committed_total, b->state_sec.size);
  mb_store64(&st->game.committed_peak, mb_load64(&st->game.committed_total));
  if (cfg->max_committed != 0 && mb_load64(&st->game.committed_total) > cfg->max_committed) {
    char why[200] = "";
    if (b->large_rounding != 0)
      snprintf(why, sizeof why,
               " (%llu of them are large-page rounding: regions with large_pages are committed "
               "in whole %zu KiB pages)",
               (unsigned long long)b->large_rounding, mb_os_mem_config()->large_page_size >> 10);
    rc = mb__errorf(MB_ENOSPC, 0,
                    "the control block, slot tables, pools, regions and maps committed at start "
                    "take %llu bytes%s, more than limits.max_committed (%llu)",
                    (unsigned long long)mb_load64(&st->game.committed_total), why,
                    (unsigned long long)cfg->max_committed);
    mb__objects_destroy(b);
    goto fail_map;
  }

  st->magic = MB_STATE_MAGIC;
  st->layout_version = MB_LAYOUT_VERSION;
  st->header_size = (uint32_t)offsetof(mb_state_t, game);
  st->total_size = sizeof(mb_state_t);
  st->broker_pid = b->self.pid;
  st->broker_start_time = b->self.start_time;
  st->created_wall_ns = b->start_wall_ns;
  st->max_clients = cfg->max_clients;
  st->region_count = (uint32_t)cfg->nregions;
  st->pool_count = (uint32_t)cfg->npools;
  /* Unique per start: past the dead broker's (when its block was found) and past any
   * earlier start (the start time in ms), so a client can tell a restarted broker. */
  gen = b->start_wall_ns / 1000000u;
  if (gen <= prev_gen)
    gen = prev_gen + 1;
  mb_store64(&st->generation, gen);
  mb_store64(&st->game.broker_heartbeat_ns, mb_os_mono_ns());
  mb_store64(&st->game.commit_limit, cfg->max_committed);
  mb_store64(&st->game.last_update_wall_ns, b->start_wall_ns);
  (void)mb__state_write_msg(st, ""); /* unpublished block: no other writer exists */
  if (saved != NULL) {
    rc = mb__persist_restore(b, saved, &saved_gen);
    mb__persist_image_free(saved);
    saved = NULL;
    if (rc != 0) {
      mb__objects_destroy(b);
      goto fail_map;
    }
    if (gen <= saved_gen) /* past the broker that saved it, too */
      mb_store64(&st->generation, gen = saved_gen + 1);
  }
  mb__trust_init(b); /* the private copies of what is published */
  mb__trust_set_status(b, MB_STATUS_RUNNING);
  /* Publish: readers that see READY see everything above. */
  mb_store32(&st->initialised, MB_STATE_READY);
  mb_log_info("control block '%s' published: instance %s, generation %llu, %d regions", name,
              cfg->instance, (unsigned long long)gen, cfg->nregions);
  return 0;

fail_map:
  mb_os_section_unmap(b->state, b->state_sec.size);
  b->state = NULL;
fail_state:
  mb_os_section_close(&b->state_sec);
  mb_os_section_unlink(name, b->flags);
fail_lock:
  mb__persist_image_free(saved);
  mb_os_lock_release(b->lock);
  b->lock = -1;
  return rc;
}

/*
 * `value` is the counter now (read from shared memory: a value below the last one is a reset
 * or a forgery, taken as the new base and not reported). Returns 1 with *count = the rise
 * not reported yet if a report is due (the first rise at once, then once per
 * MB_BROKER_REPORT_EVERY_MS at most), else 0.
 */
static int mb__counter_due(mb_counter_watch_t *w, uint64_t value, uint64_t now, uint64_t *count) {
  if (value < w->seen) {
    w->seen = value;
    return 0;
  }
  w->pending += value - w->seen;
  w->seen = value;
  if (w->pending == 0 || (w->reported_ns != 0 &&
                          now - w->reported_ns < (uint64_t)MB_BROKER_REPORT_EVERY_MS * 1000000u))
    return 0;
  *count = w->pending;
  w->pending = 0;
  w->reported_ns = now;
  return 1;
}

/* Report rising failure counters of the regions and pools (see mb__broker_tick). Names come
 * from the broker's own config, never from shared memory. */
static void mb__broker_watch_counters(mb_broker_t *b) {
  uint64_t now = mb_os_mono_ns(), n;
  char by[96];
  int i;
  if (!b->watch_ready) {
    for (i = 0; i < b->nregions; i++)
      b->commit_watch[i].seen = mb_load64(&b->regions[i].desc->commit_failures);
    for (i = 0; i < b->npools; i++)
      b->miss_watch[i].seen = mb_load64(&b->pools[i].desc->misses);
    b->watch_ready = 1;
    return;
  }
  if (b->cfg.max_committed != 0)
    snprintf(by, sizeof by, "the OS or limits.max_committed (%llu bytes)",
             (unsigned long long)b->cfg.max_committed);
  else
    snprintf(by, sizeof by, "the OS");
  for (i = 0; i < b->nregions; i++)
    if (mb__counter_due(&b->commit_watch[i], mb_load64(&b->regions[i].desc->commit_failures), now,
                        &n))
      mb_log_event(MB_EV_COMMIT_REFUSED, MB_LOG_WARN,
                   "region '%s': %llu page commit%s refused by %s; %llu bytes committed in all",
                   b->cfg.regions[i].name, (unsigned long long)n, n == 1 ? "" : "s", by,
                   (unsigned long long)mb__broker_committed(b));
  for (i = 0; i < b->npools; i++)
    if (mb__counter_due(&b->miss_watch[i], mb_load64(&b->pools[i].desc->misses), now, &n))
      mb_log_event(MB_EV_POOL_EXHAUSTED, MB_LOG_WARN,
                   "pool '%s' is exhausted: %llu allocation%s refused (capacity %u objects)",
                   b->cfg.pools[i].name, (unsigned long long)n, n == 1 ? "" : "s",
                   (unsigned)b->cfg.pools[i].capacity);
}

/*
 * Check the slot tables: pages left locked by a holder that died or never existed are settled;
 * with `deep` (after a reap, at compact), page users and slots_used are recounted from the
 * owners and forged owners freed. What was wrong is logged.
 */
void mb__broker_slots_check(mb_broker_t *b, int deep) {
  int i;
  if (deep)
    b->slots_deep_again = 0;
  for (i = 0; i < b->nregions; i++) {
    mb_slots_repair_t res;
    if (b->regions[i].slot_size == 0)
      continue;
    mb__slots_repair(&b->regions[i], deep, &res);
    if (res.skipped) /* a page held right now (the broker never waits): again next tick */
      b->slots_deep_again = 1;
    if (res.pages_unlocked || res.users_fixed || res.owners_forged || res.owners_orphaned)
      mb_log_warn("region '%s': %llu page%s left locked by a dead or unknown holder settled, "
                  "%llu page word%s recounted from the slots, %llu slot%s with a forged owner "
                  "and %llu of freed entries given back",
                  b->cfg.regions[i].name, (unsigned long long)res.pages_unlocked,
                  res.pages_unlocked == 1 ? "" : "s", (unsigned long long)res.users_fixed,
                  res.users_fixed == 1 ? "" : "s", (unsigned long long)res.owners_forged,
                  res.owners_forged == 1 ? "" : "s", (unsigned long long)res.owners_orphaned);
  }
}

void mb__broker_tick(mb_broker_t *b) {
  int changed;
  if (b->state == NULL)
    return;
  mb__trust_check(b); /* before anything below reads the block */
  mb_store64(&b->state->game.broker_heartbeat_ns, mb_os_mono_ns());
  changed = mb__broker_sweep(b);
  mb__broker_slots_check(b, changed > 0 || b->slots_deep_again);
  mb__broker_watch_counters(b);
  mb__counter_reconcile(b->state, b->cfg.max_clients, 0, &b->counter_seen[0]);
  mb__counter_reconcile(b->state, b->cfg.max_clients, 1, &b->counter_seen[1]);
  {
    int i;
    for (i = 0; i < b->npools; i++) /* allocated / freed / peak from the intent records */
      mb__pool_publish(&b->pools[i]);
  }
}

static void mb__client_seen(mb_broker_t *b, uint32_t i, uint64_t w, uint32_t s);

/* Why a client is dead, in words: MB_DEAD_REASONS (stats.h), the list `status` names too. */
static const char *mb__dead_why(uint32_t reason) {
  return mb__dead_reason_why(reason);
}

/*
 * Entry i, whose word was `w` (ATTACHED, or CLAIMED by a process that is gone), becomes DEAD
 * with `reason` (mb__client_mark_dead: clients.h has the steps), and the death is logged.
 * Returns 1 if it did.
 */
static int mb__client_dead(mb_broker_t *b, uint32_t i, uint64_t w, uint32_t reason, uint64_t now) {
  char name[MB_CLIENT_NAME_MAX];
  uint64_t held = 0;
  /* An attachment that dies before a sweep has seen it: its "attached" line first, so the
   * log never shows a death (and a reap) of a client it never saw come. */
  if (MB_CLIENT_WORD_STATE(w) == MB_CLIENT_ATTACHED && b->clients[i].seen_word != w)
    mb__client_seen(b, i, w, MB_CLIENT_ATTACHED);
  if (!mb__client_mark_dead(b->state, i, w, reason, now, name, &held))
    return 0; /* it detached, was taken over or published meanwhile */
  if (reason < MB_BROKER_DEAD_REASONS)
    b->deaths[reason]++;
  mb_log_event(MB_EV_CLIENT_DIED, MB_LOG_WARN,
               "client '%s' (pid %u) is dead: %s; its %llu slot%s kept for %u ms", name,
               (unsigned)MB_CLIENT_WORD_PID(w), mb__dead_why(reason), (unsigned long long)held,
               held == 1 ? " is" : "s are", (unsigned)b->cfg.grace_period_ms);
  return 1;
}

/* Open a watch on client i's process for attachment w and hand it to the loop. 0, MB_ESRCH
 * (the process is gone already), or another code: the sweep polls this client instead. */
static int mb__watch_open(mb_broker_t *b, uint32_t i, uint64_t w, const mb_os_procid_t *id) {
  int rc = mb_os_proc_watch(id, &b->clients[i].watch);
  if (rc != 0) {
    b->clients[i].watch = 0;
    return rc;
  }
  b->clients[i].word = w;
  if (b->watch_ops != NULL) {
    if (b->watch_ops->arm(b->watch_ops->ctx, i, b->clients[i].watch) == 0)
      b->clients[i].armed = 1;
    else
      mb_log_debug("client %u (pid %u): the loop cannot wait for its exit, polled instead: %s",
                   (unsigned)i, (unsigned)id->pid, mb_last_error());
  }
  return 0;
}

/* Stop waiting for client i's process and close its watch (none: nothing to do). */
static void mb__watch_drop(mb_broker_t *b, uint32_t i) {
  if (b->clients[i].watch == 0)
    return;
  if (b->clients[i].armed && b->watch_ops != NULL)
    b->watch_ops->disarm(b->watch_ops->ctx, i, b->clients[i].watch);
  b->clients[i].armed = 0;
  mb_os_proc_watch_close(b->clients[i].watch);
  b->clients[i].watch = 0;
}

void mb__broker_set_watch_ops(mb_broker_t *b, const mb_broker_watch_ops_t *ops) {
  uint32_t i;
  for (i = 0; i < MB_CLIENTS_MAX; i++) {
    if (b->clients[i].armed && b->watch_ops != NULL)
      b->watch_ops->disarm(b->watch_ops->ctx, i, b->clients[i].watch);
    b->clients[i].armed = 0;
  }
  b->watch_ops = ops;
  for (i = 0; ops != NULL && i < MB_CLIENTS_MAX; i++)
    if (b->clients[i].watch != 0 && ops->arm(ops->ctx, i, b->clients[i].watch) == 0)
      b->clients[i].armed = 1;
}

int mb__broker_client_hung(const mb_broker_t *b, uint32_t i, uint64_t word, uint64_t *since_ns) {
  int hung = i < MB_CLIENTS_MAX && b->clients[i].hung_word != 0 && b->clients[i].hung_word == word;
  if (since_ns != NULL)
    *since_ns = hung ? b->clients[i].hung_ns : 0;
  return hung;
}

const char *mb__broker_client_watch(const mb_broker_t *b, uint32_t i, uint64_t word) {
  if (i >= MB_CLIENTS_MAX)
    return "pending";
  if (b->clients[i].watch != 0 && b->clients[i].word == word)
    return b->clients[i].armed ? "os" : "poll";
  return b->clients[i].watch_failed ? "poll" : "pending";
}

/*
 * Attachment w of client i is alive but its heartbeat (hb, monotonic ns) is `late`: say so
 * once when it starts (hung) and once when it ends (beats again). Nothing of the client's is
 * touched: a process that hangs in a debugger, is stopped or swaps keeps its players; it is
 * dead only when the OS says its process is gone.
 */
static void mb__client_hung(mb_broker_t *b, uint32_t i, uint64_t w, int late, uint64_t hb,
                            uint64_t now) {
  mb_client_entry_t *e = &b->state->clients[i];
  char name[MB_CLIENT_NAME_MAX];
  if (late == (b->clients[i].hung_word == w))
    return;
  mb__client_name_get(e, name);
  if (late) {
    b->clients[i].hung_word = w;
    b->clients[i].hung_ns = now;
    b->hangs++;
    mb_log_event(MB_EV_CLIENT_HUNG, MB_LOG_WARN,
                 "client '%s' (pid %u) is hung: no heartbeat for %llu ms (its process still "
                 "runs); it keeps its entry and %llu slot%s, and is dead only once its process "
                 "exits",
                 name, (unsigned)MB_CLIENT_WORD_PID(w),
                 (unsigned long long)(hb < now ? (now - hb) / 1000000u : 0),
                 (unsigned long long)mb_load64(&e->slots_held),
                 mb__plural(mb_load64(&e->slots_held)));
  } else {
    mb_log_info("client '%s' (pid %u) beats again after %llu ms hung", name,
                (unsigned)MB_CLIENT_WORD_PID(w),
                (unsigned long long)((now - b->clients[i].hung_ns) / 1000000u));
    b->clients[i].hung_word = 0;
    b->clients[i].hung_ns = 0;
  }
}

/*
 * Free entry i, which the caller holds CLAIMED (mb__client_reap_claim): the reaper's steps,
 * shared by the sweep and `evict` - its pool objects (counted as reclaimed), its counter shares
 * folded into the bases (counters.h), then mb__client_free (its slots, the entry stored FREE;
 * clients.h has the crash points). `when` ends the log line ("after its grace period"). out
 * (may be NULL) receives what was freed. Returns mb__client_free's: 0 freed, 1 a slot's page
 * was held by another process (the entry stays DEAD, nameless and due: the next sweep frees
 * the rest).
 */
static int mb__client_reap(mb_broker_t *b, uint32_t i, uint32_t pid, const char *when,
                           mb_broker_evicted_t *out) {
  mb_state_t *st = b->state;
  mb_client_entry_t *e = &st->clients[i];
  char name[MB_CLIENT_NAME_MAX];
  uint32_t reason = mb_load32(&e->dead_reason);
  uint64_t freed = 0, blocks = 0;
  int k, rc;
  mb__client_name_get(e, name);
  for (k = 0; k < b->npools; k++) {
    uint64_t n = mb__pool_release_owner(&b->pools[k], i + 1, 0);
    mb_add64(&b->pools[k].desc->reclaimed, n);
    mb__pool_publish(&b->pools[k]);
    blocks += n;
  }
  mb__counter_fold(st, i); /* its shares stay counted, in the base (counters.h) */
  /* A slot whose page another process holds right now (the broker never waits) leaves
   * the entry DEAD, nameless and due: the next sweep frees the rest. */
  if ((rc = mb__client_free(st, i, b->regions, b->nregions, NULL, 0, &freed)) == 0)
    mb_log_event(MB_EV_CLIENT_RECLAIMED, MB_LOG_INFO,
                 "client '%s' (pid %u, client %u) reaped %s (dead: %s): %llu slot%s and %llu "
                 "pool object%s freed",
                 name, (unsigned)pid, (unsigned)i, when, mb__dead_reason_key(reason),
                 (unsigned long long)freed, mb__plural(freed), (unsigned long long)blocks,
                 mb__plural(blocks));
  else
    mb_log_debug("client '%s' (pid %u): %llu slot%s and %llu pool object%s freed; a page of "
                 "another of its slots is held by another process, freed at a later sweep",
                 name, (unsigned)pid, (unsigned long long)freed, mb__plural(freed),
                 (unsigned long long)blocks, mb__plural(blocks));
  b->clients[i].seen_word = 0;
  if (out != NULL) {
    memcpy(out->name, name, sizeof out->name);
    out->pid = pid;
    out->reason = reason;
    out->pending = rc != 0;
    out->slots = freed;
    out->blocks = blocks;
  }
  return rc;
}

/*
 * The info lines of an entry's life as the sweep sees it (entry i holds word w, state s now):
 * a new attachment is "attached" or, when it took the entry over, "took back"; the attachment
 * said attached before and now FREE "detached", now DEAD as CLOSED "closed" (mb_close /
 * mb_reattach: it keeps its slots for the grace period). Deaths and reaps have their own
 * lines. Seen by the sweep (each tick and each exit the loop is told of), so an attachment
 * that comes and goes within one tick is not logged.
 */
static void mb__client_seen(mb_broker_t *b, uint32_t i, uint64_t w, uint32_t s) {
  mb_client_entry_t *e = &b->state->clients[i];
  uint64_t seen = b->clients[i].seen_word;
  if (s == MB_CLIENT_ATTACHED && seen != w) {
    uint32_t takeovers = mb_load32(&e->takeovers);
    mb__client_name_get(e, b->clients[i].seen_name);
    if (mb_load64(&e->word) != w) /* changed while its name was read: the next sweep */
      return;
    b->clients[i].seen_word = w;
    if (takeovers > 0)
      /* "holds N now": the new process may have added slots to those it took back before a
       * sweep saw it, so N is what the entry holds at this sweep, not what it was left. */
      mb_log_info("client '%s' (pid %u) took back its entry %u (reattach; restart %u): it holds "
                  "%llu slot%s now",
                  b->clients[i].seen_name, (unsigned)MB_CLIENT_WORD_PID(w), (unsigned)i,
                  (unsigned)takeovers, (unsigned long long)mb_load64(&e->slots_held),
                  mb__plural(mb_load64(&e->slots_held)));
    else
      mb_log_info("client '%s' (pid %u) attached as client %u", b->clients[i].seen_name,
                  (unsigned)MB_CLIENT_WORD_PID(w), (unsigned)i);
    return;
  }
  if (seen == 0 || seen == w || s == MB_CLIENT_CLAIMED)
    return; /* nothing new, or in the middle of a change */
  if (s == MB_CLIENT_FREE)
    mb_log_info("client '%s' (pid %u) detached from client %u", b->clients[i].seen_name,
                (unsigned)MB_CLIENT_WORD_PID(seen), (unsigned)i);
  else if (s == MB_CLIENT_DEAD && mb_load32(&e->dead_reason) == MB_DEAD_CLOSED &&
           MB_CLIENT_WORD_PID(w) == MB_CLIENT_WORD_PID(seen))
    mb_log_info("client '%s' (pid %u) closed without detaching: client %u keeps its %llu slot%s "
                "for %u ms",
                b->clients[i].seen_name, (unsigned)MB_CLIENT_WORD_PID(seen), (unsigned)i,
                (unsigned long long)mb_load64(&e->slots_held),
                mb__plural(mb_load64(&e->slots_held)), (unsigned)b->cfg.grace_period_ms);
  b->clients[i].seen_word = 0;
}

int mb__broker_sweep(mb_broker_t *b) {
  mb_state_t *st = b->state;
  uint64_t now = mb_os_mono_ns(), timeout = (uint64_t)b->cfg.heartbeat_timeout_ms * 1000000u;
  uint64_t grace = (uint64_t)b->cfg.grace_period_ms * 1000000u;
  uint32_t i, attached = 0;
  int changed = 0;
  if (st == NULL)
    return 0;
  for (i = 0; i < b->cfg.max_clients; i++) { /* the config's count: the block's is writable */
    mb_client_entry_t *e = &st->clients[i];
    uint64_t w = mb_load64(&e->word);
    uint32_t s = MB_CLIENT_WORD_STATE(w);
    mb_os_procid_t id;
    id.pid = MB_CLIENT_WORD_PID(w);
    id.start_time = mb_load64(&e->start_time);
    if (mb_load64(&e->word) != w) /* changing right now: its start time may not be w's */
      continue;
    /* A watch belongs to the attachment that holds the entry now, or is dropped; so does
     * the hung mark. */
    if (b->clients[i].watch != 0 && (s != MB_CLIENT_ATTACHED || b->clients[i].word != w))
      mb__watch_drop(b, i);
    if (s != MB_CLIENT_ATTACHED)
      b->clients[i].watch_failed = 0;
    if (b->clients[i].hung_word != 0 && b->clients[i].hung_word != w)
      b->clients[i].hung_word = b->clients[i].hung_ns = 0;
    if (s != MB_CLIENT_CLAIMED || b->clients[i].claimed_word != w) {
      b->clients[i].claimed_word = s == MB_CLIENT_CLAIMED ? w : 0;
      b->clients[i].claimed_ns = s == MB_CLIENT_CLAIMED ? now : 0;
    }

    if (s == MB_CLIENT_ATTACHED) {
      int dead = 0, rc;
      if (b->clients[i].watch == 0 && !b->clients[i].watch_failed) {
        if ((rc = mb__watch_open(b, i, w, &id)) == MB_ESRCH) {
          dead = 1;
        } else if (rc != 0) {
          b->clients[i].watch_failed = 1;
          mb_log_debug("client %u (pid %u): no process watch, polling instead: %s", (unsigned)i,
                       (unsigned)id.pid, mb_last_error());
        }
      }
      if (!dead)
        dead = b->clients[i].watch != 0 ? mb_os_proc_watch_exited(b->clients[i].watch)
                                        : mb_os_proc_alive(&id) == 0;
      if (dead) {
        if (mb__client_dead(b, i, w, MB_DEAD_EXITED, now)) {
          changed++;
          mb__watch_drop(b, i); /* it has said what it had to */
        }
      } else {
        /* A missed heartbeat says hung, never dead: only the OS says a process is gone. */
        uint64_t hb = mb_load64(&e->heartbeat_ns);
        mb__client_hung(b, i, w, timeout != 0 && hb < now && now - hb > timeout, hb, now);
        attached++;
      }
    } else if (s == MB_CLIENT_CLAIMED) {
      /* Held for microseconds normally; still held by the same holder seconds later while
       * that process is gone: it died there. (The broker's own CLAIMED never lasts a sweep.) */
      if (now - b->clients[i].claimed_ns > (uint64_t)MB_CLAIM_STALE_MS * 1000000u &&
          (id.pid == 0 || mb_os_proc_alive(&id) == 0))
        changed += mb__client_dead(b, i, w, MB_DEAD_ABANDONED, now);
    } else if (s == MB_CLIENT_DEAD) {
      /* After the grace period, unless it is ABANDONED by a process that still runs. */
      if (mb__client_reap_claim(st, i, w, &id, grace, now)) {
        mb__client_reap(b, i, id.pid, "after its grace period", NULL);
        changed++;
      }
    }
    mb__client_seen(b, i, w, s);
  }
  mb_store32(&st->clients_attached, attached);
  return changed;
}

int mb__broker_evict(mb_broker_t *b, uint32_t i, mb_broker_evicted_t *out) {
  mb_state_t *st = b->state;
  mb_client_entry_t *e;
  mb_os_procid_t id;
  uint64_t w, now = mb_os_mono_ns();
  uint32_t s;
  char name[MB_CLIENT_NAME_MAX];
  int alive;
  memset(out, 0, sizeof *out);
  if (st == NULL || i >= b->cfg.max_clients) /* the config's count: the block's is writable */
    return mb__errorf(MB_ENOENT, 0, "no client %u (the table has %u entries)", (unsigned)i,
                      (unsigned)b->cfg.max_clients);
  e = &st->clients[i];
  w = mb_load64(&e->word);
  s = MB_CLIENT_WORD_STATE(w);
  id.pid = MB_CLIENT_WORD_PID(w);
  id.start_time = mb_load64(&e->start_time);
  mb__client_name_get(e, name);
  if (mb_load64(&e->word) != w)
    return mb__errorf(MB_EBUSY, 0, "client %u is changing right now; try again", (unsigned)i);
  if (s == MB_CLIENT_FREE)
    return mb__errorf(MB_ENOENT, 0, "client %u is free: nothing to evict", (unsigned)i);
  /* Only the OS says dead (as for the sweep): a process that runs keeps its entry. */
  alive = id.pid != 0 ? mb_os_proc_alive(&id) : 0;
  if (alive != 0 && s != MB_CLIENT_DEAD)
    return mb__errorf(MB_EBUSY, 0,
                      "client '%s' (pid %u) %s: evict frees only a dead client's entry - its "
                      "slots and objects are in use; stop its process first (its death is then "
                      "seen at once and evict frees it without waiting for the grace period)",
                      name, (unsigned)id.pid,
                      alive < 0                ? "may be alive (the OS does not say)"
                      : s == MB_CLIENT_CLAIMED ? "is attaching or detaching right now"
                      : mb__broker_client_hung(b, i, w, NULL) ? "is hung but its process runs"
                                                              : "is alive");
  if (s == MB_CLIENT_ATTACHED || s == MB_CLIENT_CLAIMED) {
    /* Its process is gone and the sweep has not marked it yet: the sweep's own step. */
    if (!mb__client_dead(b, i, w, s == MB_CLIENT_ATTACHED ? MB_DEAD_EXITED : MB_DEAD_ABANDONED,
                         now))
      return mb__errorf(MB_EBUSY, 0, "client %u changed meanwhile; try again", (unsigned)i);
    mb__watch_drop(b, i);
    out->marked = 1;
    w = mb_load64(&e->word);
    if (MB_CLIENT_WORD_STATE(w) != MB_CLIENT_DEAD)
      return mb__errorf(MB_EBUSY, 0, "client %u changed meanwhile; try again", (unsigned)i);
  }
  /* DEAD: the reaper's claim with no grace left. An ABANDONED entry whose process runs is
   * never taken (clients.h), nor one taken over meanwhile. */
  if (mb_load32(&e->dead_reason) == MB_DEAD_ABANDONED && alive == 1)
    return mb__errorf(MB_EBUSY, 0,
                      "client '%s' (pid %u) is marked abandoned but its process runs: its slots "
                      "and objects may be in use; stop its process first",
                      name, (unsigned)id.pid);
  if (!mb__client_reap_claim(st, i, w, &id, 0, mb_os_mono_ns()))
    return mb__errorf(MB_EBUSY, 0, "client %u changed meanwhile (taken back?); try again",
                      (unsigned)i);
  mb__client_reap(b, i, id.pid, "on request (evict)", out);
  b->slots_deep_again = 1; /* as after the sweep's reaps: the next tick recounts the slots */
  return 0;
}

void mb__broker_begin_stop(mb_broker_t *b) {
  if (b->state == NULL)
    return;
  mb__trust_set_status(b, MB_STATUS_SHUTTING_DOWN);
  mb_store64(&b->state->game.last_update_wall_ns, mb_os_wall_ns());
}

void mb__broker_stop(mb_broker_t *b) {
  char name[MB_OS_NAME_MAX + 1];
  int i;
  if (b->state == NULL)
    return;
  mb__broker_begin_stop(b);
  (void)mb__persist_flush(b); /* the last save, while everything is still mapped */
  for (i = 0; i < MB_CLIENTS_MAX; i++)
    mb__watch_drop(b, i);
  b->watch_ops = NULL;
  mb__objects_destroy(b);
  /* The block itself last: game servers still mapping it keep seeing "shutting down". */
  mb_os_section_unmap(b->state, b->state_sec.size);
  b->state = NULL;
  mb_os_section_close(&b->state_sec);
  if (mb__object_name(name, sizeof name, b->cfg.instance, NULL) == 0)
    mb_os_section_unlink(name, b->flags);
  mb_os_lock_release(b->lock);
  b->lock = -1;
}

mb_region_map_t *mb__broker_region(mb_broker_t *b, const char *name) {
  int i;
  for (i = 0; i < b->nregions; i++)
    if (strcmp(b->cfg.regions[i].name, name) == 0)
      return &b->regions[i];
  return NULL;
}

int mb__broker_compact(mb_broker_t *b, uint64_t *freed) {
  uint64_t total = 0, f;
  int i, rc = 0;
  /* Between ticks a client may have written over a descriptor slots.c reads: repair first. */
  mb__trust_check(b);
  mb__broker_slots_check(b, 1); /* page users and slots_used from the owners, logged */
  for (i = 0; i < b->nregions; i++) {
    int r = mb__region_compact(&b->regions[i], &f);
    total += f;
    if (r != 0 && rc == 0)
      rc = r;
  }
  *freed = total;
  return rc;
}

uint64_t mb__broker_committed(const mb_broker_t *b) {
  return b->state ? mb_load64(&b->state->game.committed_total) : 0;
}
