/*
 * persist.h - the broker's saved state (config "persist"): snapshots of the game state in
 * the control block and of chosen regions, written to files on an interval and at stop, and
 * read back when the broker starts, so a restart (or a crash after a flush) keeps players,
 * NPCs, the status message and the player slots.
 *
 * The shared sections stay what they are; a flush copies them into files in persist.dir:
 *   <instance>.state          the counters (players, NPCs), the status message, the names of
 *                             the region files the flush wrote
 *   <instance>.region.<name>  one region: the slots held, with the names of the game servers
 *                             that hold them, and the pages in use (of a slotted region the
 *                             pages of held slots, of one without slots every page that is not
 *                             all zero), as a page bitmap and the pages' bytes
 * Each file is a header (mb_persist_header_t: magic, format and layout version, instance,
 * the generation of the broker that wrote it, the flush's number and time, the body's size
 * and an XXH3-64 checksum of header and body) and a body, in the host's byte order
 * (little-endian on every supported target). A file is written as <file>.tmp, synced, and
 * renamed over the old one: a crash leaves the old file or the new one, never a mix. A region
 * file is whole by itself (its slots, their holders and their bytes are of one moment), so
 * region files and a state file of different flushes still restore consistently.
 *
 * A flush copies live memory while game servers write to it: a slot written during the flush
 * may be saved torn (half old, half new bytes); the counters are read atomically and the
 * message is never read torn.
 */
#ifndef MB_PERSIST_H
#define MB_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "layout.h"

/* 2: XXH3-64 checksums (hash.h). 1 (FNV-1a) is refused with a message: see README. */
#define MB_PERSIST_FORMAT 2u
#define MB_PERSIST_MAGIC_STATE "MBPSTATE"  /* 8 bytes, no NUL */
#define MB_PERSIST_MAGIC_REGION "MBPREGON" /* 8 bytes, no NUL */
#define MB_PERSIST_PATH_MAX 1200           /* a resolved directory plus a file name */

/* The first 128 bytes of every file. */
typedef struct mb_persist_header_s {
  char magic[8];                  /* MB_PERSIST_MAGIC_STATE or MB_PERSIST_MAGIC_REGION */
  uint32_t format_version;        /* MB_PERSIST_FORMAT */
  uint32_t layout_version;        /* MB_LAYOUT_VERSION of the broker that wrote it */
  uint32_t header_size;           /* sizeof(mb_persist_header_t) */
  uint32_t reserved0;             /* 0 */
  char instance[MB_INSTANCE_MAX]; /* NUL-terminated */
  char name[MB_REGION_NAME_MAX];  /* the region's name; "" in the state file */
  uint64_t generation;            /* of the broker that wrote it */
  uint64_t flush_seq;             /* that broker's flush number, from 1 */
  uint64_t wall_ns;               /* when the flush began (wall clock, ns since 1970) */
  uint64_t body_size;             /* bytes after the header; the file is header + body */
  uint64_t checksum;              /* XXH3-64 of the header (with this field 0) and body */
} mb_persist_header_t;

/* The state file's body: this, then nregions names of MB_REGION_NAME_MAX bytes. */
typedef struct mb_persist_game_s {
  uint64_t total_players;
  uint64_t total_npcs;
  uint64_t last_update_wall_ns;
  uint32_t server_status; /* as it was (not restored: a new broker runs) */
  uint32_t msg_len;       /* bytes of msg before its NUL */
  char msg[MB_STATUS_MSG_MAX];
  uint32_t nregions; /* region files written by the same flush */
  uint32_t reserved;
} mb_persist_game_t;

/*
 * A region file's body: this; owner_count names of MB_CLIENT_NAME_MAX bytes (the game
 * servers holding slots); slot_records mb_persist_slot_t in rising slot order; the page
 * bitmap, (size / page_size + 63) / 64 words (bit p of word p / 64: page p is in the file);
 * then pages_written pages of page_size bytes, in page order.
 */
typedef struct mb_persist_region_s {
  uint64_t size;       /* data bytes of the region */
  uint64_t slot_count; /* 0 without slots */
  uint32_t slot_size;  /* 0 without slots */
  uint32_t page_size;
  uint32_t flags; /* MB_REGION_* as it was */
  uint32_t owner_count;
  uint64_t slot_records;
  uint64_t pages_written;
} mb_persist_region_t;

typedef struct mb_persist_slot_s {
  uint64_t index;  /* slot number */
  uint64_t player; /* player id + 1 (never 0) */
  uint32_t owner;  /* index into the file's owner names */
  uint32_t reserved;
} mb_persist_slot_t;

/* The broker's side of saving (in mb_broker_t). Used by the loop thread only. */
typedef struct mb_persist_s {
  int enabled;                   /* persist.dir is set */
  uint32_t interval_ms;          /* persist.interval_ms */
  char dir[MB_PERSIST_PATH_MAX]; /* persist.dir resolved against the config file's folder */
  uint64_t seq;                  /* flushes begun by this broker */
  /* flushes (that completed), failures (that failed): MB_PERSIST_STATS, stats.h */
  MB_PERSIST_STATS(MB_STAT_PRIV_FIELD)
  uint64_t last_flush_ns;        /* monotonic clock of the last completed flush; 0: none */
  uint64_t failed_in_row;        /* failures since the last completed flush */
  uint64_t warn_ns;              /* when a failure was last logged */
  unsigned long warn_suppressed; /* failures not logged since */
  char msg[MB_STATUS_MSG_MAX];   /* the message as last read whole */
} mb_persist_t;

/* What mb__persist_open found and checked, for mb__persist_restore. */
typedef struct mb_persist_image_s mb_persist_image_t;

struct mb_broker_s;

/*
 * persist.dir of cfg as the broker uses it (mb__config_load made a relative one relative to
 * the config file's directory), without trailing separators; "" when persistence is off.
 * MB_ENAMETOOLONG if it does not fit in size with a file name after it.
 */
int mb__persist_dir(const mb_config_t *cfg, char *out, size_t size);

/* "<dir>/<instance>.state" (region NULL) or "<dir>/<instance>.region.<region>". */
int mb__persist_path(const char *dir, const char *instance, const char *region, char *out,
                     size_t size);

/*
 * At start, before any object is made: fill p from cfg, create persist.dir if missing, and
 * check every saved file that would be restored, whole: header (magic, format version,
 * layout version, instance, region), size against the header, checksum, and the contents
 * against cfg (region size, slot size, page size, slot table, game servers against
 * clients.max). *img receives what is to be restored, or NULL when there is nothing (no
 * state file: a fresh start, logged; or persistence is off). On failure nothing is restored
 * and the one message names the file, what is wrong and what to do (move the file away).
 * A region file that is missing is logged and its region starts empty.
 */
int mb__persist_open(mb_persist_t *p, const mb_config_t *cfg, mb_persist_image_t **img);

/*
 * Restore img into the broker b, whose regions exist and whose control block is filled in but
 * not yet published: the counters and the message; in each restored region its pages
 * (committed and charged as a game server's claim would) and its slot table; and one client
 * entry per game server that held slots, DEAD with reason MB_DEAD_RESTORED and dead since
 * now, so that a game server attaching under its name within the grace period takes its
 * slots back, and the sweep frees them after it. *saved_generation receives the highest
 * generation of the files (the new broker's must be higher). Any failure (the commit limit,
 * a file changed since it was checked) fails the start.
 */
int mb__persist_restore(struct mb_broker_s *b, mb_persist_image_t *img, uint64_t *saved_generation);

/* Free what mb__persist_open returned (NULL is ignored). */
void mb__persist_image_free(mb_persist_image_t *img);

/*
 * Flush now (the interval timer, and mb__broker_stop before the sections go): write every
 * region of persist.regions and then the state file, each as <file>.tmp, synced, renamed
 * over the old file. One debug line per flush; a failure is counted, logged as a warning (at
 * most one line a minute, with the count), leaves the files of the last good flush in place
 * and returns its code. 0 and nothing done when persistence is off.
 */
int mb__persist_flush(struct mb_broker_s *b);

/* Read the header of a saved file as it is (no check), for tests and diagnostics. */
int mb__persist_read_header(const char *path, mb_persist_header_t *h);

#endif /* MB_PERSIST_H */
