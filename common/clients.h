/*
 * clients.h - the client table protocol: how an entry of mb_state_t.clients (layout.h) passes
 * between FREE, CLAIMED, ATTACHED and DEAD, who makes each step, and what a process killed in
 * the middle of one leaves behind. The client library (client/attach.c) and the broker
 * (service/broker.c, its sweep) make their changes of an entry's word through these functions;
 * the three other writers are named at the end of the list below.
 *
 * The word. An entry's state, the pid of the process that holds it and the sequence number of
 * that attachment share one 64-bit word (MB_CLIENT_WORD), and every change is one CAS on the
 * whole word, so a process acts only on the exact holder it judged (a restart that took the
 * entry over meanwhile makes the CAS fail):
 *   {FREE}                  -> {CLAIMED, seq, self}   a client attaches (mb__client_claim):
 *                                                     fills the entry in (mb__client_fill),
 *   {CLAIMED, seq, self}    -> {ATTACHED, seq, self}  ... and publishes it (mb__client_publish)
 *   {CLAIMED, seq, self}    -> {DEAD, seq, self}      ... or, a takeover that could not adopt
 *                                                     the slots it took over, gives the entry
 *                                                     back as found (mb__client_claimed_to_dead,
 *                                                     reason ABANDONED)
 *   {ATTACHED, s, P}        -> {CLAIMED, s, P}        the broker: the OS says P exited; it
 *   {CLAIMED, s, P}         -> {DEAD, s, P}           writes why and when, then publishes DEAD
 *                                                     (mb__client_mark_dead)
 *   {CLAIMED, s, P}         -> {DEAD, s, P}           ... also when P died holding it CLAIMED
 *   {DEAD, s, P}            -> {CLAIMED, seq, self}   a client of the same name takes it over,
 *   {ATTACHED, s, P}        -> {CLAIMED, seq, self}   slots and all (from ATTACHED only when
 *                                                     the OS says P is gone: mb__client_claim)
 *   {ATTACHED, seq, self}   -> {CLAIMED, seq, self}   detach (frees its slots, then FREE), or
 *                                                     close / reattach (then DEAD: kept)
 *                                                     (mb__client_let_go, then mb__client_free
 *                                                     or mb__client_claimed_to_dead)
 *   {DEAD, s, P}            -> {CLAIMED, s, P} -> FREE   the broker, after the grace period
 *                                                     (mb__client_reap_claim, mb__client_free)
 * CLAIMED is held for microseconds; one that stays (its holder died) is turned DEAD by the
 * broker after MB_CLAIM_STALE_MS (broker.h). The sequence number tells two attachments of one
 * process apart. clients_attached is counted by the broker's sweep. Three more writers of the
 * word stand outside this file: a restarted broker's restore (service/persist.c: DEAD, reason
 * RESTORED, no pid); the broker's repair of forged words (service/trust.c); and the settling of
 * a gone holder's page locks (common/slots.c, mb__settle_client, reached from the broker's
 * slot repair and from mb__client_free), which holds a FREE entry as {CLAIMED, 0, 0} or a DEAD
 * one as {CLAIMED, s, P} while it unlocks that index's pages, then stores the word it found
 * back (one CAS from the exact word judged, so no attach can start locking pages meanwhile).
 *
 * Who writes what. Only the holder of the word writes the entry's other fields: the client
 * while it holds it CLAIMED or ATTACHED (heartbeat, slots_held, counter shares, its memory
 * row), the broker while it holds it CLAIMED (dead_since_ns, dead_reason, the clearing in
 * mb__client_free). One exception: marking a gone CLAIMED holder dead (mb__client_mark_dead)
 * writes dead_since_ns and dead_reason before its CAS, so without holding the entry; if the
 * holder was only slow and publishes ATTACHED first, the CAS fails and those two fields stay
 * on a live entry - harmless, since every step to DEAD writes both again and nothing reads
 * them of an entry that is not DEAD. The broker's sweep, a claim and the reaper, when they act
 * on another field as belonging to a holder (the start time that names the holder's process),
 * read the word before and after it and look again if the word changed; slots.c's
 * mb__holder_gone reads word and start time once (at worst a page lock is waited for a little
 * longer, MB_EBUSY). A name read while it changes may come out mixed (mb__client_name_get),
 * which at worst makes a claim look again or fail its CAS. Indexes come from the caller's own
 * count (max), never from the table; any process of the group can write an entry, so what
 * is read is only compared, never followed.
 *
 * A slot never passes to another client with its player: an entry is stored FREE only when it
 * owns no slot (mb__client_free stores it DEAD, nameless and due for the next sweep, when a
 * release could not be done), and a client that claims a FREE entry gives back any slot that
 * index still owns (forged), player cleared first, before it publishes ATTACHED
 * (client/players.c, mb__drop_foreign_slots).
 *
 * Crash points (a process killed between two instructions) and what is found afterwards:
 *  1. a claimer killed after its CAS to CLAIMED, before it publishes ATTACHED: the entry stays
 *     {CLAIMED, seq, P} with P gone; the broker's sweep turns it DEAD (reason ABANDONED) after
 *     MB_CLAIM_STALE_MS, and it is taken over by name or reaped like any dead entry. Fields
 *     half filled in are overwritten by the next claim (mb__client_fill) or cleared at the
 *     reap.
 *  2. a claimer that saw its name clash (mb__client_name_clash) frees its fresh entry again
 *     (mb__client_free, nothing to release); killed there: as 1.
 *  3. the broker killed while it holds an entry CLAIMED (marking it dead, or reaping it): the
 *     restarted broker publishes a new block; the old one is gone with it.
 *  4. a client killed between mb__client_let_go and what follows it (detach: releasing its
 *     slots and blocks, then FREE; close / reattach: DEAD): as 1, the slots and blocks still
 *     owned are freed at the reap.
 *  5. freeing an entry (mb__client_free; the caller holds it CLAIMED): settle its index's
 *     page locks, release its slots and pool blocks, clear the fields, store FREE - or DEAD
 *     if a slot is left. Killed before the store: the entry stays CLAIMED by a gone process,
 *     which the broker's sweep turns DEAD (MB_CLAIM_STALE_MS) and reaps; the slots still
 *     owned are released then. Slots released before the kill are free.
 *  6. the entry's counter shares are folded into the bases by whoever frees it, before
 *     mb__client_free (mb__counter_fold: counters.h has its steps and its one window).
 */
#ifndef MB_CLIENTS_H
#define MB_CLIENTS_H

#include "layout.h"
#include "os.h"
#include "pool.h"
#include "slots.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How long a claim waits for an entry of its name that another process holds CLAIMED. */
#define MB_CLIENT_CLAIMED_WAIT_MS 200

/*
 * Take an entry of st's table (its first `max` entries) for client `name`: take over the one
 * of that name if its process is gone (DEAD, or ATTACHED by a process the OS says exited), else
 * claim a FREE one. Each is one CAS from the exact word judged, so a holder that changed
 * meanwhile makes it fail and the table is read again. *index receives the entry and
 * *taken_over whether it was the name's before; the entry is left `mine` ({CLAIMED, seq,
 * self}). MB_EEXIST if the name is attached by a running process (or one the OS cannot say
 * of), MB_EFULL if no entry is free, MB_EBUSY if an entry of the name stays CLAIMED by
 * another process for MB_CLIENT_CLAIMED_WAIT_MS.
 */
int mb__client_claim(mb_state_t *st, uint32_t max, const char *name, uint64_t mine, uint32_t *index,
                     int *taken_over);

/*
 * Fill in entry e just claimed (held CLAIMED): the holder's start time, attach time, a first
 * heartbeat at `now` (monotonic), no death; a takeover counts itself and keeps the rest (the
 * slots and counter shares it took over), a fresh claim starts from zero under `name`.
 */
void mb__client_fill(mb_client_entry_t *e, uint64_t start_time, uint64_t now, int taken_over,
                     const char *name);

/*
 * After a fresh claim of entry `index` has written `name`: is another entry of the same name
 * (among the first `max`) being attached at this moment? Both sides write their name, fence,
 * then look, so at least one of two simultaneous attaches sees the other and backs off.
 */
int mb__client_name_clash(const mb_state_t *st, uint32_t max, uint32_t index, const char *name);

/* Publish entry e, held {CLAIMED, seq, self}, as `word` ({ATTACHED, seq, self}): 1, or 0 if
 * it is no longer held so (the broker took it for abandoned: it is DEAD now). */
int mb__client_publish(mb_client_entry_t *e, uint64_t word);

/* Take entry e from `word` ({ATTACHED, seq, self}) to {CLAIMED, seq, self}: 1, or 0 if it is
 * no longer `word` (reaped, taken over, broker restarted) - nothing is touched then. */
int mb__client_let_go(mb_client_entry_t *e, uint64_t word);

/* Entry e, held CLAIMED by the holder of `word`, becomes DEAD with `reason`, dead since `now`
 * (monotonic), with what it holds, for the grace period: the broker frees it then, or an attach
 * under its name takes it over. */
void mb__client_claimed_to_dead(mb_client_entry_t *e, uint64_t word, uint32_t reason, uint64_t now);

/*
 * The broker: entry i, whose word was `w` (ATTACHED, or CLAIMED by a process that is gone),
 * becomes DEAD with `reason`. From ATTACHED it is taken CLAIMED first (one CAS from exactly `w`,
 * so a restart that took it over meanwhile wins), when and why are written, then DEAD is
 * published; a CLAIMED one is published DEAD with a CAS, in case its holder was only slow.
 * name (MB_CLIENT_NAME_MAX bytes) and *held receive the entry's name and slots while held.
 * Returns 1 if it did, 0 if the word changed meanwhile.
 */
int mb__client_mark_dead(mb_state_t *st, uint32_t i, uint64_t w, uint32_t reason, uint64_t now,
                         char *name, uint64_t *held);

/*
 * The broker: take DEAD entry i, whose word was `w` and whose holder is `id`, CLAIMED for
 * freeing if its grace period (grace_ns after dead_since_ns) is over at `now`. An entry DEAD
 * as ABANDONED whose process the OS says is alive is never taken: that reason also covers a
 * word no client writes (trust.c), and a live process's blocks and slots are in use. Returns 1
 * if the caller now holds it CLAIMED (and must free it: mb__client_free), else 0.
 */
int mb__client_reap_claim(mb_state_t *st, uint32_t i, uint64_t w, const mb_os_procid_t *id,
                          uint64_t grace_ns, uint64_t now);

/*
 * Free client entry `index` of st's table, which the caller holds CLAIMED: release every slot
 * the entry owns in the given regions (those without slots are skipped) and every block it
 * holds in the given pools (those not mapped are skipped), settle pages the entry's holder
 * left locked (mb__slots_unlock_holder), clear the entry (its counter shares too, which the
 * caller folded into the bases first: mb__counter_fold) and store FREE, after which the caller
 * must not touch it; returns 0. If a slot could not be released (its page held by another
 * process), the entry is stored DEAD instead - no name, pid 0, reason ABANDONED, dead since
 * 1 ns, so nobody takes it over and the broker's next sweep frees it again - and 1 is
 * returned: a FREE entry would give its slots, with their players, to the next client attaching
 * at that index. *freed (may be NULL) receives the number of slots and blocks released.
 */
int mb__client_free(mb_state_t *st, uint32_t index, mb_region_map_t *regions, int nregions,
                    mb_pool_map_t *pools, int npools, uint64_t *freed);

#ifdef __cplusplus
}
#endif

#endif /* MB_CLIENTS_H */
