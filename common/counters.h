/*
 * counters.h - the shared counters (players, NPCs) derived from per-entry shares.
 *
 * A counter's truth is  base + sum of the shares of the client entries not FREE  (all values
 * modulo 2^64, shares signed in two's complement): mb_state_t.players_base / npcs_base and
 * mb_client_entry_t.added_players / added_npcs. game.total_players / total_npcs only show it.
 *
 * Steps and crash points:
 * - add (client, mb_counter_add): 1. one atomic add of the delta on its own entry's share (the
 *   truth changes here, at once and whole); 2. one atomic add on the shown total. Killed
 *   between 1 and 2: the total is one delta off the truth until the broker's reconcile (below)
 *   puts it right. A client whose entry is no longer its own adds to the base instead. The
 *   range check (no counter below 0 or past 2^64-1) reads the shown total, and the truth when
 *   that fails; it is not atomic with the adds. The shown total adds modulo 2^64, so that adds
 *   in flight land exactly: 0 shown while an add of 1 is between its steps, a remove of 1
 *   shows 2^64-1 until that add lands (or, had it been killed, the reconcile).
 * - set to V (mb_counter_set, set-counter): 1. base = V - sum of shares; 2. total = V. Shares
 *   are not touched, so an add racing a set is never lost: it counts after the set. Killed
 *   between 1 and 2, or two sets at once: the total differs from the truth until a reconcile.
 * - fold (an entry freed: the broker's reap, a client's own detach): 1. the share exchanged
 *   with 0; 2. the value taken added to the base. A kill between 1 and 2 (two adjacent atomic
 *   instructions) loses that share from the truth: the one window left, and only in a client's
 *   own detach (a broker killed there restarts from its last save, which holds the base).
 *   The entry must be the folder's alone (CLAIMED by it): an add that checked the entry was
 *   its own just before a reap and lands after the fold is left in a FREE entry's share,
 *   outside the truth (a client still adding while the broker reaps it: not a live one).
 * - reconcile (broker, each tick): 1. read the total; 2. truth = base + shares; 3. if the two
 *   differ, and did by the same figures at the previous tick too (an add between its two steps
 *   is not a difference to correct), CAS the total from the value of 1 to the truth: it fails
 *   harmlessly when a client changed the total meanwhile, and is tried again next tick. So the
 *   shown total equals the truth within two ticks of the last change (exact when quiescent).
 * - persist saves the base (what no attached game server counts: each counts its own again
 *   after a restart); a restore puts it into base and total, with every share 0.
 */
#ifndef MB_COUNTERS_H
#define MB_COUNTERS_H

#include "layout.h"

/* What the broker's reconcile saw at its previous tick, per counter. */
typedef struct mb_counter_seen_s {
  uint64_t shown, truth;
  int valid;
} mb_counter_seen_t;

mb_au64 *mb__counter_total(mb_state_t *st, int npcs);
mb_au64 *mb__counter_base(mb_state_t *st, int npcs);
/* Sum of the shares of the entries not FREE among the first max_clients (clamped), mod 2^64. */
uint64_t mb__counter_shares(const mb_state_t *st, uint32_t max_clients, int npcs);
/* base + shares. */
uint64_t mb__counter_truth(mb_state_t *st, uint32_t max_clients, int npcs);
/* Set the truth to `value`: base = value - shares, then the total. */
void mb__counter_set(mb_state_t *st, uint32_t max_clients, int npcs, uint64_t value);
/* Fold the shares of entry `index` into the bases (before the entry is freed). */
void mb__counter_fold(mb_state_t *st, uint32_t index);
/* The broker's tick: put the shown total right (see above). 1 if it corrected it. */
int mb__counter_reconcile(mb_state_t *st, uint32_t max_clients, int npcs, mb_counter_seen_t *seen);

#endif
