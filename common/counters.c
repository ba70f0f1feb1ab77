/*
 * counters.c - the shared counters derived from per-entry shares (see counters.h, which has the
 * protocol and its crash points).
 */
#include "counters.h"

#include "atomics.h"

mb_au64 *mb__counter_total(mb_state_t *st, int npcs) {
  return npcs ? &st->game.total_npcs : &st->game.total_players;
}

mb_au64 *mb__counter_base(mb_state_t *st, int npcs) {
  return npcs ? &st->npcs_base : &st->players_base;
}

uint64_t mb__counter_shares(const mb_state_t *st, uint32_t max_clients, int npcs) {
  uint64_t sum = 0;
  uint32_t i;
  if (max_clients > MB_CLIENTS_MAX)
    max_clients = MB_CLIENTS_MAX;
  for (i = 0; i < max_clients; i++) {
    const mb_client_entry_t *e = &st->clients[i];
    if (MB_CLIENT_WORD_STATE(mb_load64(&e->word)) != MB_CLIENT_FREE)
      sum += mb_load64(npcs ? &e->added_npcs : &e->added_players);
  }
  return sum;
}

uint64_t mb__counter_truth(mb_state_t *st, uint32_t max_clients, int npcs) {
  uint64_t base = mb_load64(mb__counter_base(st, npcs));
  return base + mb__counter_shares(st, max_clients, npcs);
}

void mb__counter_set(mb_state_t *st, uint32_t max_clients, int npcs, uint64_t value) {
  mb_store64(mb__counter_base(st, npcs), value - mb__counter_shares(st, max_clients, npcs));
  mb_store64(mb__counter_total(st, npcs), value);
}

static uint64_t mb__take64(mb_au64 *a) {
  uint64_t v = mb_load64(a);
  while (!mb_cas64(a, &v, 0))
    ;
  return v;
}

void mb__counter_fold(mb_state_t *st, uint32_t index) {
  mb_client_entry_t *e;
  if (index >= MB_CLIENTS_MAX)
    return;
  e = &st->clients[index];
  mb_add64(&st->players_base, mb__take64(&e->added_players));
  mb_add64(&st->npcs_base, mb__take64(&e->added_npcs));
}

int mb__counter_reconcile(mb_state_t *st, uint32_t max_clients, int npcs, mb_counter_seen_t *seen) {
  mb_au64 *total = mb__counter_total(st, npcs);
  uint64_t shown = mb_load64(total);
  uint64_t truth = mb__counter_truth(st, max_clients, npcs);
  int fix = shown != truth && seen->valid && seen->shown == shown && seen->truth == truth;
  seen->shown = shown;
  seen->truth = truth;
  seen->valid = 1;
  if (fix && mb_cas64(total, &shown, truth)) {
    seen->valid = 0;
    return 1;
  }
  return 0;
}
