/*
 * clients.c - the client table protocol (see clients.h, which states it: the states, who
 * writes what, the crash points). Every change of an entry's word made by the client library
 * or the broker's sweep is here; what each side does around it (mapping, logging, the
 * broker's watches and hung marks, giving back pool blocks) stays with that side. Nothing
 * here prints; what is read from the table is range-checked or compared, never followed.
 */
#include "clients.h"

#include <string.h>

int mb__client_claim(mb_state_t *st, uint32_t max, const char *cname, uint64_t mine,
                     uint32_t *index, int *taken_over) {
  uint32_t i, free_at;
  uint64_t deadline = 0;
  char name[MB_CLIENT_NAME_MAX];
  for (;;) {
    int seen_claimed = 0;
    free_at = UINT32_MAX;
    for (i = 0; i < max; i++) {
      mb_client_entry_t *e = &st->clients[i];
      uint64_t w = mb_load64(&e->word);
      uint32_t s = MB_CLIENT_WORD_STATE(w);
      if (s == MB_CLIENT_FREE) {
        if (free_at == UINT32_MAX)
          free_at = i;
        continue;
      }
      mb__client_name_get(e, name);
      if (strcmp(name, cname) != 0)
        continue;
      if (s == MB_CLIENT_CLAIMED) {
        seen_claimed = 1; /* the broker or another process holds it for a moment */
        continue;
      }
      if (s == MB_CLIENT_ATTACHED) {
        mb_os_procid_t old;
        int alive;
        old.pid = MB_CLIENT_WORD_PID(w);
        old.start_time = mb_load64(&e->start_time);
        if (mb_load64(&e->word) != w) { /* the start time may be another holder's */
          seen_claimed = 1;
          continue;
        }
        alive = mb_os_proc_alive(&old);
        if (alive == 1)
          return mb__errorf(MB_EEXIST, 0,
                            "client name '%s' is attached by process %u, which is running", cname,
                            (unsigned)old.pid);
        if (alive < 0)
          return mb__errorf(MB_EEXIST, 0,
                            "client name '%s' is attached by process %u, and the OS does not "
                            "say whether it still runs",
                            cname, (unsigned)old.pid);
      }
      if (mb_cas64(&e->word, &w, mine)) {
        *index = i;
        *taken_over = 1;
        return 0;
      }
      seen_claimed = 1; /* it changed under us: look again */
    }
    if (!seen_claimed) {
      for (i = free_at; i < max; i++) {
        uint64_t w = MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0);
        if (mb_cas64(&st->clients[i].word, &w, mine)) {
          *index = i;
          *taken_over = 0;
          return 0;
        }
      }
      return mb__errorf(MB_EFULL, 0, "the broker's client table is full (%u entries)",
                        (unsigned)max);
    }
    if (deadline == 0)
      deadline = mb_os_mono_ns() + (uint64_t)MB_CLIENT_CLAIMED_WAIT_MS * 1000000u;
    else if (mb_os_mono_ns() > deadline)
      return mb__errorf(MB_EBUSY, 0, "the entry of client '%s' stays claimed by another process",
                        cname);
    mb_os_sleep_ms(1);
  }
}

int mb__client_name_clash(const mb_state_t *st, uint32_t max, uint32_t index, const char *cname) {
  uint32_t i;
  char name[MB_CLIENT_NAME_MAX];
  mb_fence();
  for (i = 0; i < max; i++) {
    const mb_client_entry_t *e = &st->clients[i];
    if (i == index || MB_CLIENT_WORD_STATE(mb_load64(&e->word)) == MB_CLIENT_FREE)
      continue;
    mb__client_name_get(e, name);
    if (strcmp(name, cname) == 0)
      return 1;
  }
  return 0;
}

void mb__client_fill(mb_client_entry_t *e, uint64_t start_time, uint64_t now, int taken_over,
                     const char *name) {
  mb_store64(&e->start_time, start_time);
  mb_store64(&e->attach_wall_ns, mb_os_wall_ns());
  mb_store64(&e->heartbeat_ns, now);
  mb_store64(&e->dead_since_ns, 0);
  mb_store32(&e->dead_reason, MB_DEAD_NONE);
  if (taken_over) {
    mb_add32(&e->takeovers, 1);
    return;
  }
  mb_store64(&e->slots_held, 0);
  mb_store32(&e->takeovers, 0);
  mb__client_name_set(e, name);
}

int mb__client_publish(mb_client_entry_t *e, uint64_t word) {
  uint64_t claimed = MB_CLIENT_WORD_AS(word, MB_CLIENT_CLAIMED);
  return mb_cas64(&e->word, &claimed, word);
}

int mb__client_let_go(mb_client_entry_t *e, uint64_t word) {
  uint64_t w = word;
  return mb_cas64(&e->word, &w, MB_CLIENT_WORD_AS(word, MB_CLIENT_CLAIMED));
}

void mb__client_claimed_to_dead(mb_client_entry_t *e, uint64_t word, uint32_t reason,
                                uint64_t now) {
  mb_store64(&e->dead_since_ns, now);
  mb_store32(&e->dead_reason, reason);
  mb_store64(&e->word, MB_CLIENT_WORD_AS(word, MB_CLIENT_DEAD));
}

/* The shared-memory part of the broker's mb__client_dead (which logs what it did). */
int mb__client_mark_dead(mb_state_t *st, uint32_t i, uint64_t w, uint32_t reason, uint64_t now,
                         char *name, uint64_t *held) {
  mb_client_entry_t *e = &st->clients[i];
  uint64_t expected = w;
  if (MB_CLIENT_WORD_STATE(w) == MB_CLIENT_ATTACHED &&
      !mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_CLAIMED)))
    return 0; /* it detached or was taken over meanwhile */
  mb__client_name_get(e, name);
  *held = mb_load64(&e->slots_held);
  mb_store64(&e->dead_since_ns, now);
  mb_store32(&e->dead_reason, reason);
  if (MB_CLIENT_WORD_STATE(w) == MB_CLIENT_ATTACHED) {
    mb_store64(&e->word, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD));
  } else {
    /* A CLAIMED holder that is gone: a CAS, in case it was only slow and publishes now. */
    expected = w;
    if (!mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_DEAD)))
      return 0;
  }
  return 1;
}

int mb__client_reap_claim(mb_state_t *st, uint32_t i, uint64_t w, const mb_os_procid_t *id,
                          uint64_t grace_ns, uint64_t now) {
  mb_client_entry_t *e = &st->clients[i];
  uint64_t since = mb_load64(&e->dead_since_ns), expected = w;
  /* "Abandoned" says its process died in a claim, or the entry held a word no client
   * writes (trust.c). Its process alive after all (a forged state byte): never reaped -
   * its blocks and slots are still in use. Dead by the OS's word only. */
  int abandoned_alive =
      mb_load32(&e->dead_reason) == MB_DEAD_ABANDONED && id->pid != 0 && mb_os_proc_alive(id) == 1;
  return now >= since && now - since >= grace_ns && !abandoned_alive &&
         mb_cas64(&e->word, &expected, MB_CLIENT_WORD_AS(w, MB_CLIENT_CLAIMED));
}

int mb__client_free(mb_state_t *st, uint32_t index, mb_region_map_t *regions, int nregions,
                    mb_pool_map_t *pools, int npools, uint64_t *freed) {
  mb_client_entry_t *e = &st->clients[index];
  uint64_t total = 0, n, word = mb_load64(&e->word);
  size_t w;
  int i, left = 0;
  for (i = 0; i < nregions; i++) {
    if (regions[i].base == NULL || regions[i].slot_size == 0)
      continue;
    /* Pages the entry's process left locked (it died in a claim or release), and, in the
     * broker, those of other dead processes, which its releases would wait for. */
    mb__slots_unlock_holder(&regions[i], index + 1);
    if (regions[i].holder == MB_PAGE_HOLDER_BROKER)
      mb__slots_repair(&regions[i], 0, NULL);
    n = 0;
    if (mb__slot_release_owner(&regions[i], index + 1, &n) != 0)
      left = 1; /* a page of one of its slots is held by another process right now */
    total += n;
  }
  for (i = 0; i < npools; i++)
    if (pools[i].base != NULL)
      total += mb__pool_release_owner(&pools[i], index + 1, 0);
  /* Its shares were folded into the counters' bases by the caller (mb__counter_fold, which
   * every path that frees an entry calls first): zero here, cleared for the next holder. */
  mb_store64(&e->added_players, 0);
  mb_store64(&e->added_npcs, 0);
  mb_store64(&e->start_time, 0);
  mb_store64(&e->attach_wall_ns, 0);
  mb_store64(&e->heartbeat_ns, 0);
  mb_store64(&e->dead_since_ns, 0);
  mb_store64(&e->slots_held, 0);
  mb_store32(&e->dead_reason, MB_DEAD_NONE);
  mb_store32(&e->takeovers, 0);
  for (w = 0; w < MB_CLIENT_NAME_MAX / 8; w++)
    mb_store64(&e->name[w], 0);
  for (w = 0; w < MB_CLIENT_MEM_MAX; w++)
    mb_store32(&st->client_mem[index].entries[w].kind, MB_MEM_NONE);
  mb_store64(&st->client_mem[index].published_ns, 0);
  if (freed)
    *freed = total;
  if (left) {
    /* A FREE entry would hand the slots (with their players) to the next client attaching
     * at this index. DEAD without a name or process instead: nobody takes it over, its grace
     * is over (dead since 1 ns), and the broker's next sweep frees it again. */
    mb_store32(&e->dead_reason, MB_DEAD_ABANDONED);
    mb_store64(&e->dead_since_ns, 1);
    mb_store64(&e->word, MB_CLIENT_WORD(MB_CLIENT_DEAD, (uint32_t)(word >> 8), 0));
    return 1;
  }
  mb_store64(&e->word, MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0)); /* release: cleared fields first */
  return 0;
}
