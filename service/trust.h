/*
 * trust.h - the broker's private copies of what it published, and the check that holds the
 * control block to them (DESIGN.md, "Failure and trust model").
 *
 * Every section the broker publishes is writable by the game servers' group, so any member
 * can write anything into the control block at any moment. The broker therefore keeps a
 * private copy of every fixed field it wrote (header, region and pool directory, server
 * status, commit limit) and uses only those copies; what clients legitimately write (entry
 * words, times, names, the status message) it range-checks before use. mb__trust_check,
 * called at every tick before the sweep, compares the block with the copies: a forged fixed
 * field is written back, a forged client entry is made DEAD (so its slots and blocks are
 * reaped after the grace period) or its field clamped, a message stuck mid-write is
 * released. Each finding is counted by kind (shown as `damage` by `status`) and logged as a
 * warning, at once and then at most once per MB_TRUST_REPORT_EVERY_MS per kind.
 *
 * What this file never does: follow an offset, count or index read from shared memory.
 */
#ifndef MB_TRUST_H
#define MB_TRUST_H

#include "layout.h"

/* What was found forged (the `damage` object of `status`). */
#define MB_DAMAGE_MAP(X)                                                                           \
  X(HEADER, "header")        /* the block's header or commit limit */                              \
  X(DIRECTORY, "directory")  /* a region, pool or map descriptor's fixed fields */                 \
  X(STATUS, "server_status") /* server_status other than the broker's */                           \
  X(CLIENTS, "clients")      /* a client entry: state, pid, time, reason or name */                \
  X(MESSAGE, "message")      /* the status message held mid-write */

enum mb_damage_kind {
#define MB__X(name, key) MB_DAMAGE_##name,
  MB_DAMAGE_MAP(MB__X)
#undef MB__X
      MB_DAMAGE_KINDS
};

/* A damage kind is logged at once, then at most once per this, with the count since. */
#define MB_TRUST_REPORT_EVERY_MS 60000

/* A time a client wrote (heartbeat) or the broker wrote (dead since) may run ahead of the
 * broker's own clock read by this much (taken at another instant); beyond, it is forged. */
#define MB_TRUST_CLOCK_SLACK_MS 1000

typedef struct mb_trust_s {
  int ready;                                /* the copies below are taken */
  unsigned char header[64];                 /* bytes 0..63 of the block as published */
  uint32_t pool_count;                      /* the client table's pool_count */
  uint64_t commit_limit;                    /* game.commit_limit */
  uint32_t server_status;                   /* what the broker says (start, set-status, stop) */
  uint32_t msg_odd;                         /* odd message seq seen at the last check (0: none) */
  mb_region_desc_t regions[MB_REGIONS_MAX]; /* fixed parts as created (live counters unused) */
  mb_pool_desc_t pools[MB_POOLS_MAX];       /* fixed parts as created (live counters unused) */
  uint64_t damage[MB_DAMAGE_KINDS];         /* findings, ever */
  uint64_t pending[MB_DAMAGE_KINDS];        /* findings not logged yet */
  uint64_t reported_ns[MB_DAMAGE_KINDS];    /* monotonic time of the last log line (0: never) */
} mb_trust_t;

struct mb_broker_s;

/* Take the private copies of the block b has filled in (before it publishes it). */
void mb__trust_init(struct mb_broker_s *b);

/* Store the server status the broker stands for (start, set-status, stop) and remember it:
 * any other value found later is forged and is written back. */
void mb__trust_set_status(struct mb_broker_s *b, uint32_t status);

/*
 * Hold the control block to the private copies and range-check the client table (see the
 * file comment). Never follows a value read from shared memory; safe at any moment after
 * mb__trust_init. Returns the number of findings.
 */
int mb__trust_check(struct mb_broker_s *b);

/* The key of damage kind k in the report ("header", ...). */
const char *mb__damage_key(int k);

/* Findings, ever, over all kinds. */
uint64_t mb__damage_total(const struct mb_broker_s *b);

#endif /* MB_TRUST_H */
