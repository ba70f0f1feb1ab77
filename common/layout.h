/*
 * layout.h - every byte that crosses a process boundary.
 *
 * The broker creates these blocks; game servers (the client library) and mbctl read them.
 * Rules:
 *  - fixed-width types only, no pointers (offsets from the start of the block), no per-OS
 *    fields; sizes and key offsets are static-asserted below;
 *  - fields that change after the block is published are mb_au32 / mb_au64 (atomics.h);
 *    plain fields are written once by the broker before it publishes the block with a
 *    release store of `initialised`, and only read after an acquire load of it;
 *  - a reader checks magic, layout version, header size and total size and refuses a
 *    mismatch with a distinct error (mb__state_check);
 *  - hot counters sit on their own 64-byte cache lines.
 *
 * Object names (portable; the platform layer adds "/" or "Local\" / "Global\"):
 *   control block   membroker.<instance>.state
 *   region          membroker.<instance>.region.<name>
 */
#ifndef MB_LAYOUT_H
#define MB_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "MBSTATE1" read as a little-endian 64-bit integer. */
#define MB_STATE_MAGIC UINT64_C(0x3145544154534D42)
/* Bumped whenever any struct in this file changes (a field's size or offset): tests/test-protocol.c
 * pins a fingerprint of every field to each version and fails on a change without a bump. */
#define MB_LAYOUT_VERSION 8u
/* Value of `initialised` once the block is complete. */
#define MB_STATE_READY 0x59444552u /* "REDY" */

#define MB_INSTANCE_MAX 32    /* bytes of an instance name, NUL included */
#define MB_REGION_NAME_MAX 32 /* bytes of a region name, NUL included */
#define MB_CLIENT_NAME_MAX 32 /* bytes of a client name, NUL included */
#define MB_REGIONS_MAX 16
#define MB_POOL_NAME_MAX 32 /* bytes of a pool name, NUL included */
#define MB_POOLS_MAX 16
#define MB_CLIENTS_MAX 256
#define MB_STATUS_MSG_MAX 256 /* bytes of the status message, NUL included */

/* server_status values (the seed's 0/1/2, plus draining). */
enum mb_server_status {
  MB_STATUS_STOPPED = 0,
  MB_STATUS_RUNNING = 1,
  MB_STATUS_SHUTTING_DOWN = 2,
  MB_STATUS_DRAINING = 3,
};

/* mb_region_desc_t.flags */
enum {
  MB_REGION_LAZY = 1u << 0, /* reserved at start, committed page by page on demand */
  /* the section has large pages (MB_OS_SEC_LARGE_PAGES): map it with that flag */
  MB_REGION_LARGE_PAGES = 1u << 1,
};

/*
 * One region of the directory. The region's section holds `size` data bytes at offset 0 and,
 * for a slotted region, a slot table at `table_offset`:
 *   mb_au32 pages[page_count]          per data page: users | COMMITTED, or locked (BUSY | holder)
 *   (pad to 8)
 *   mb_slot_t slots[slot_count]        per slot: owner and player id
 */
typedef struct mb_region_desc_s {
  char name[MB_REGION_NAME_MAX]; /* NUL-terminated */
  uint64_t size;                 /* data bytes reserved (the section's data part) */
  uint64_t section_size;         /* whole section: data + slot table */
  uint64_t table_offset;         /* 0 if the region has no slots */
  uint64_t slot_count;
  uint32_t slot_size; /* 0: no slots */
  uint32_t flags;     /* MB_REGION_* */
  uint32_t page_size; /* commit granularity the page table counts in */
  uint32_t reserved0;
  /* 80: statistics, from MB_REGION_STATS (stats.h), in MB_REGION_STATS_ROOM words (the rest
   * reserved, zero): committed (data bytes committed now, exact, a multiple of page_size),
   * peak_committed, slots_used, commit_failures */
  union {
    struct {
      MB_REGION_STATS(MB_STAT_FIELD)
    };
    mb_au64 stats_room[MB_REGION_STATS_ROOM];
  };
  /* 144 */
  mb_au64 free_hint; /* slots below it were in use when last looked at: claims start
                        here (a hint only: a claim that finds nothing scans from 0) */
  mb_au64 reserved1;
} mb_region_desc_t;

/*
 * Page word of a slotted region (slots.c has the protocol). Not busy: users (slots in use that
 * lie on the page) | COMMITTED. Busy: the page is locked for a moment by the process named in
 * HOLDER (a client's table index + 1, or MB_PAGE_HOLDER_BROKER) while it claims or releases a
 * slot on it, commits it or decommits it; CHARGED and COMMITTED then say how far a commit got,
 * so the lock of a holder that died can be undone or finished by whoever clears it.
 */
#define MB_PAGE_USERS_MASK 0x0000FFFFu
#define MB_PAGE_HOLDER_SHIFT 16
#define MB_PAGE_HOLDER_MASK (0x1FFu << MB_PAGE_HOLDER_SHIFT)
#define MB_PAGE_HOLDER(v) (((v) >> MB_PAGE_HOLDER_SHIFT) & 0x1FFu)
#define MB_PAGE_HOLDER_BROKER 0x1FFu
#define MB_PAGE_CHARGED (1u << 29)   /* busy: its commit is charged (commit total, region) */
#define MB_PAGE_COMMITTED (1u << 30) /* the page holds memory */
#define MB_PAGE_BUSY (1u << 31)      /* locked by HOLDER: wait (bounded) */

/* Slot entry of a slotted region. owner: 0 free, else client table index + 1. player: the
 * player's id + 1, set once the slot's bytes are clear (0: none yet, a claim cut short). */
typedef struct mb_slot_s {
  mb_au64 owner;
  mb_au64 player;
} mb_slot_t;

/*
 * Client entry state. An entry's state, the pid of the process that holds it and the
 * sequence number of that attachment share one 64-bit word (MB_CLIENT_WORD), and every
 * change is one CAS on the whole word. The transitions, who makes them, who writes which
 * field and the crash points: the client table protocol, clients.h.
 */
enum mb_client_state {
  MB_CLIENT_FREE = 0,
  MB_CLIENT_CLAIMED = 1,  /* held by one process for a moment: being filled in or freed */
  MB_CLIENT_ATTACHED = 2, /* live */
  MB_CLIENT_DEAD = 3,     /* process gone (or let go); slots kept for the grace period. A client
                             that only misses heartbeats stays ATTACHED (the broker shows it
                             hung) */
};

/* The entry word: state in bits 0..7, attachment sequence in bits 8..31, pid in bits 32..63. */
#define MB_CLIENT_WORD(state, seq, pid)                                                            \
  ((uint64_t)(state) | ((uint64_t)((seq)&0xFFFFFFu) << 8) | ((uint64_t)(pid) << 32))
#define MB_CLIENT_WORD_STATE(w) ((uint32_t)((w)&0xFFu))
#define MB_CLIENT_WORD_PID(w) ((uint32_t)((w) >> 32))
/* The same holder (pid and sequence) in another state. */
#define MB_CLIENT_WORD_AS(w, state) (((w) & ~(uint64_t)0xFFu) | (uint64_t)(state))

/* Why an entry is DEAD (mb_client_entry_t.dead_reason): MB_DEAD_<NAME> of MB_DEAD_REASONS
 * (stats.h): EXITED the OS says the process exited; HEARTBEAT not given any more (a silent
 * client is hung, not dead); ABANDONED a process died while it held the entry CLAIMED; CLOSED
 * the client let go to come back (mb_close, mb_reattach); RESTORED restored from persist_dir
 * by a restarted broker: kept for its client to take back within the grace period. */
enum mb_client_dead_reason {
#define MB__X(name, value, key, why) MB_DEAD_##name = value,
  MB_DEAD_REASONS(MB__X)
#undef MB__X
};

/* The JSON name of dead reason r ("exited", ...) and the words that end the broker's log line
 * about it; "unknown" for NONE and for values no reason has. */
static inline const char *mb__dead_reason_text(uint32_t r, int why) {
  static const char *const texts[][2] = {
#define MB__X(name, value, key, why) [value] = {key, why},
      MB_DEAD_REASONS(MB__X)
#undef MB__X
  };
  return r < sizeof texts / sizeof texts[0] && texts[r][0] ? texts[r][why != 0] : "unknown";
}
static inline const char *mb__dead_reason_key(uint32_t r) {
  return mb__dead_reason_text(r, 0);
}
static inline const char *mb__dead_reason_why(uint32_t r) {
  return mb__dead_reason_text(r, 1);
}

/* One attached game server (filled in by the client library). Slots of a slotted region
 * record their owner as the entry's index + 1, so a client that takes an entry over owns
 * its slots at once. */
typedef struct mb_client_entry_s {
  mb_au64 word;           /* MB_CLIENT_WORD(state, seq, pid) */
  mb_au64 start_time;     /* process start time of the holder (mb_os_procid_t) */
  mb_au64 attach_wall_ns; /* when it attached */
  mb_au64 heartbeat_ns;   /* monotonic clock of its last heartbeat */
  mb_au64 dead_since_ns;  /* monotonic clock when it became DEAD */
  mb_au64 slots_held;
  mb_au64 name[MB_CLIENT_NAME_MAX / 8]; /* NUL-terminated UTF-8, copied word by word */
  mb_au32 dead_reason;                  /* enum mb_client_dead_reason, with DEAD */
  mb_au32 takeovers;                    /* times the entry was taken over by a restart */
  mb_au64 reserved[3];
  /* What this attachment's holder added to the shared counters (mb_counter_add), net, as
   * signed 64-bit values (two's complement): part of the counter's truth (counters.h), left
   * out of what persist saves, since a game server counts its players again when it attaches
   * to a new broker (a new generation). Kept across a takeover; folded into the counter's base
   * when the entry is freed. */
  mb_au64 added_players;
  mb_au64 added_npcs;
} mb_client_entry_t;

/* mb_pool_desc_t.flags */
enum {
  MB_POOL_F_DEBUG = 1u << 0, /* check every free and poison freed blocks (slower) */
};

/* Block stamp of a shared pool (mb_pool_desc_t, stamps array): who holds the block. */
#define MB_STAMP_FREE 0u                /* in the pool's free stack, or never handed out */
#define MB_STAMP_IN_USE (1u << 31)      /* | owner: allocated by client `owner` */
#define MB_STAMP_CACHED (1u << 30)      /* | owner: free, in a thread cache of client `owner` */
#define MB_STAMP_OWNER(s) ((s)&0xFFFFu) /* client table index + 1 */
/* | (intent record << 16) | owner: being given back through that record of client `owner`
 * (pool.c: in the free stack once the record's push landed, else not yet) */
#define MB_STAMP_GIVING (1u << 29)
#define MB_STAMP_REC(s) (((s) >> 16) & 0x3FFu) /* the intent record of a GIVING or MAG stamp */
/* MB_STAMP_CACHED | MB_STAMP_MAG | (intent record << 16) | owner: free, in that record's
 * magazine (mb_pool_mag_t), or taken out of it by a call that has not stamped it yet */
#define MB_STAMP_MAG (1u << 28)
#define MB_STAMP_BROKER 0xFFFEu /* owner of the blocks the broker gives back */

/*
 * One fixed-size object pool, shared by every attached process. Its section
 * (membroker.<instance>.pool.<name>, committed at start) holds, at the offsets below:
 *   mb_pool_intent_t intents[MB_POOL_INTENTS]   at offset 0: one record per thread (and per
 *                              process, and the broker's, record 0) that takes or gives
 *                              blocks: what it is doing and its counts (pool.c)
 *   mb_pool_mag_t mags[MB_POOL_INTENTS]  at mags_offset: record r's magazine, free blocks
 *                              of r's uncached (MB_POOL_NO_CACHE) calls, which any taker
 *                              may take when the stack and bump are empty (pool.c)
 *   mb_au64 links[capacity]    per free block: next block of its chain + 1 (0: chain end) in
 *                              the low 32 bits; for a chain's first block, the first block of
 *                              the next chain + 1 in the high 32 bits
 *   mb_au32 stamps[capacity]   MB_STAMP_* of each block
 *   blocks                     capacity * stride bytes, aligned to `align` (and a page)
 * The free blocks form a stack of chains (a chain: up to MB_POOL_CHAIN blocks linked through
 * `links`), so a whole chain moves in one CAS. `head` is the stack: (ABA tag << 35) | (writer
 * << 25) | (first block of the top chain + 1), where writer is the intent record of the CAS
 * that put it there and the tag (29 bits) counts the CASes on head (pool.c). Blocks at or above
 * `bump`'s low 25 bits were never handed out and are in no chain: they are taken by advancing
 * it with a CAS, which names its writer the same way.
 */
#define MB_POOL_CHAIN 32
#define MB_POOL_INTENTS 1024 /* intent records of a pool: threads using it at once, all clients */
#define MB_POOL_CAPACITY_MAX (1u << 24) /* blocks of a pool: "block + 1" fits the low 25 bits */
#define MB_POOL_LOW_BITS 25
#define MB_POOL_TAG_SHIFT 35 /* 25 low bits, 10 writer bits, then the tag */
#define MB_POOL_WORD_LOW(w) ((uint32_t)((w) & ((1u << MB_POOL_LOW_BITS) - 1)))
#define MB_POOL_WORD_REC(w) ((uint32_t)((w) >> MB_POOL_LOW_BITS) & 0x3FFu)
#define MB_POOL_WORD_TAG(w) ((uint64_t)(w) >> MB_POOL_TAG_SHIFT)

/*
 * Record r's magazine: free blocks (stamped MB_STAMP_CACHED | MB_STAMP_MAG | r << 16 | r's
 * owner) in slot[0, count), where count is the low bits of `word`, a word of head's form
 * (tag, writer record, low).
 * Only r's holder writes slot[]; r's holder pushes and pops at the top, and anyone may take
 * the top block with a CAS on word when the pool has no other free block (pool.c).
 */
#define MB_POOL_MAG 62
typedef struct mb_pool_mag_s {
  mb_au64 word;
  mb_au32 slot[MB_POOL_MAG];
} mb_pool_mag_t;

/*
 * An intent record (pool.c has the protocol and the crash points). Written by the one thread
 * that holds it (holder); read and completed by the broker's reaper, or by a restart of the
 * same client, once the holder is dead. taken and given count blocks through this record,
 * ever: the pool's allocated and freed are their sums.
 */
typedef struct mb_pool_intent_s {
  mb_au64 holder; /* 0: free; else MB_POOL_HOLDER(owner, attachment seq, pid) */
  mb_au64 op;     /* (seq << 32) | (state << 8) | kind (pool.c: MB__OP_*) */
  mb_au64 first;  /* the block the op starts at: the chain it pops or pushes, or bump's */
  mb_au64 count;  /* blocks of a push or a bump take */
  mb_au64 base;   /* taken (a take) or given (a give) before the op */
  mb_au64 next;   /* the exact word its CAS installs in head or bump (pool.c: landed?) */
  mb_au64 taken;  /* blocks taken from the pool through this record, ever */
  mb_au64 given;  /* blocks given back to the pool through it, ever */
} mb_pool_intent_t;
#define MB_POOL_HOLDER(owner, seq, pid)                                                            \
  (((uint64_t)(pid) << 32) | ((uint64_t)((seq)&0xFFFFu) << 16) | ((owner)&0xFFFFu))
#define MB_POOL_HOLDER_OWNER(h) ((uint32_t)((h)&0xFFFFu))
typedef struct mb_pool_desc_s {
  char name[MB_POOL_NAME_MAX]; /* NUL-terminated */
  uint64_t section_size;
  uint64_t links_offset;
  uint64_t stamps_offset;
  uint64_t blocks_offset;
  uint32_t object_size; /* bytes the user asked for */
  uint32_t stride;      /* object_size rounded up to align: block i is at blocks + i * stride */
  uint32_t align;
  uint32_t capacity;
  uint32_t flags; /* MB_POOL_F_* */
  uint32_t reserved0[9];
  uint64_t mags_offset; /* mb_pool_mag_t mags[MB_POOL_INTENTS] */
  /* 128: the free stack, alone on its cache line */
  mb_au64 head;
  mb_au64 bump;
  mb_au64 reserved1[6];
  /* 192: statistics, from MB_POOL_STATS (stats.h), in MB_POOL_STATS_ROOM words (the rest
   * reserved, zero). allocated and freed are published copies (the broker's tick, a reap) of
   * the sums of the intent records' taken and given, which are the truth (mb__pool_totals):
   * out of the pool now is allocated - freed. intents_used: intent records claimed so far (the
   * highest index + 1), read by mb__pool_totals. peak: the highest allocated - freed seen
   * (capacity - peak: the lowest free). */
  union {
    struct {
      MB_POOL_STATS(MB_STAT_FIELD)
    };
    mb_au64 stats_room[MB_POOL_STATS_ROOM];
  };
} mb_pool_desc_t;

/*
 * A game server's private memory (in-process pools and heaps it registered with
 * mb_track_lpool / mb_track_heap), published by the client library into the row of the
 * state block that belongs to its client-table entry, so the broker can show it. The client
 * writes an entry's name before it stores `kind` (release); readers take the name only for
 * a kind they read (acquire). Figures are copied from the pool or heap's own statistics.
 */
#define MB_CLIENT_MEM_MAX 10
enum mb_mem_kind {
  MB_MEM_NONE = 0,  /* the entry is unused */
  MB_MEM_LPOOL = 1, /* an in-process pool (mb_lpool_t) */
  MB_MEM_HEAP = 2,  /* a per-purpose heap (mb_heap_t) */
};
typedef struct mb_mem_entry_s {
  mb_au64 name[4]; /* NUL-terminated, word by word (31 bytes at most) */
  mb_au32 kind;    /* enum mb_mem_kind */
  mb_au32 detail;  /* heap: its purpose (MB_HEAP_*, 0 is game objects); pool: object size */
  /* the figures, from MB_MEM_STATS (stats.h), in MB_MEM_STATS_ROOM words (the rest reserved,
   * zero): in_use (bytes; a pool: objects in use x block size), peak, committed, allocs,
   * frees, failures, objects */
  union {
    struct {
      MB_MEM_STATS(MB_STAT_FIELD)
    };
    mb_au64 stats_room[MB_MEM_STATS_ROOM];
  };
} mb_mem_entry_t;
/* The same figures as plain numbers: what a client reads from its pool or heap to publish,
 * what the broker reads from the row to report. */
typedef struct mb_mem_figures_s {
  MB_MEM_STATS(MB_STAT_FIGURE)
} mb_mem_figures_t;
typedef struct mb_client_mem_s {
  mb_au64 published_ns; /* wall clock of the last publication; 0: never */
  mb_au64 reserved[7];
  mb_mem_entry_t entries[MB_CLIENT_MEM_MAX];
} mb_client_mem_t;

/*
 * A game data map the broker loaded (the `maps` config, map-load): the file's bytes, checked
 * as a GMAP image (membroker.h), in a read-only section membroker.<instance>.map.<name>.<seq>
 * (seq makes every load a new object, so a reload never meets the old one's open handles).
 * The broker writes the fields, then stores state READY (release); an unload stores FREE
 * first. Readers load state (acquire), then the fields, then state and seq again.
 */
#define MB_MAPS_MAX 16
#define MB_MAP_NAME_MAX 32 /* bytes of a map name, NUL included */
enum mb_map_state {
  MB_MAP_FREE = 0,
  MB_MAP_READY = 1,
};
typedef struct mb_map_desc_s {
  mb_au64 name[4];        /* NUL-terminated, word by word (mb__name_get) */
  mb_au32 state;          /* enum mb_map_state */
  mb_au32 seq;            /* the load's number: part of the section name */
  mb_au64 size;           /* bytes of the image (the file) */
  mb_au64 checksum;       /* XXH3-64 of the image (GMAP header.checksum, verified) */
  mb_au64 loaded_wall_ns; /* when it was loaded */
  mb_au32 width;          /* the GMAP header's, for listings */
  mb_au32 height;
  mb_au32 tile_count;
  mb_au32 object_count;
  mb_au64 reserved[6];
} mb_map_desc_t;

/* The control block: the seed's SharedGameState and everything a client needs to find. */
typedef struct mb_state_s {
  /* 0: header (plain fields written once before `initialised`) */
  uint64_t magic;          /* MB_STATE_MAGIC */
  uint32_t layout_version; /* MB_LAYOUT_VERSION */
  uint32_t header_size;    /* offsetof(mb_state_t, game) */
  uint64_t total_size;     /* sizeof(mb_state_t) */
  uint32_t broker_pid;
  uint32_t max_clients; /* configured limit, <= MB_CLIENTS_MAX */
  uint64_t broker_start_time;
  uint64_t created_wall_ns;
  mb_au32 initialised; /* MB_STATE_READY once complete */
  uint32_t region_count;
  mb_au64 generation; /* unique per broker start: start time in ms since 1970, or the dead
                         predecessor's generation + 1 if that is larger */

  /* 64: game state */
  struct {
    mb_au32 server_status; /* enum mb_server_status */
    mb_au32 reserved0;
    mb_au64 total_players;
    mb_au64 total_npcs;
    mb_au64 last_update_wall_ns; /* last change of any game field or message */
    mb_au64 broker_heartbeat_ns; /* monotonic clock, refreshed by the broker at every tick
                                    (MB_BROKER_TICK_MS, 250 ms) */
    mb_au64 committed_total;     /* bytes committed: control block + every region, exact */
    mb_au64 commit_limit;        /* limits.max_committed; 0 = none. A commit past it fails */
    mb_au64 committed_peak;      /* highest committed_total seen */
  } game;

  /* 128: status message under a sequence counter: odd while a writer is in it. */
  struct {
    mb_au32 seq;
    mb_au32 len;               /* bytes, without NUL */
    mb_au64 writer_pid;        /* process that holds the writer side (seq odd) */
    mb_au64 writer_start_time; /* and its start time, so a dead writer can be replaced */
    mb_au64 reserved[5];
    mb_au64 text[MB_STATUS_MSG_MAX / 8]; /* UTF-8, NUL-terminated */
  } msg;

  /* 448: region directory */
  mb_region_desc_t regions[MB_REGIONS_MAX];

  /* client table */
  mb_au32 clients_attached;
  uint32_t pool_count;
  /* The counters' base: what nobody in the table holds as a share (counters.h). A counter's
   * truth is its base plus the shares of the entries not FREE; total_players / total_npcs
   * show it, corrected by the broker's tick. Written by the broker and by a set. */
  mb_au64 players_base;
  mb_au64 npcs_base;
  mb_au32 reserved2[10];
  mb_client_entry_t clients[MB_CLIENTS_MAX];

  /* pool directory */
  mb_pool_desc_t pools[MB_POOLS_MAX];

  /* private memory of each client, by client-table index */
  mb_client_mem_t client_mem[MB_CLIENTS_MAX];

  /* map directory */
  mb_map_desc_t maps[MB_MAPS_MAX];
} mb_state_t;

/* ---- static checks: any change here must bump MB_LAYOUT_VERSION --------------------------- */
#ifdef __cplusplus
#define MB_LAYOUT_ASSERT(cond, msg) static_assert(cond, msg)
#define MB_ALIGNOF(t) alignof(t)
#else
#define MB_LAYOUT_ASSERT(cond, msg) _Static_assert(cond, msg)
#define MB_ALIGNOF(t) _Alignof(t)
#endif
MB_LAYOUT_ASSERT(sizeof(mb_au32) == 4 && sizeof(mb_au64) == 8, "atomic sizes");
MB_LAYOUT_ASSERT(MB_ALIGNOF(mb_au64) == 8, "64-bit atomics aligned");
MB_LAYOUT_ASSERT(sizeof(mb_region_desc_t) == 80 + MB_REGION_STATS_ROOM * 8 + 16,
                 "region descriptor size");
MB_LAYOUT_ASSERT(offsetof(mb_region_desc_t, stats_room) == 80, "region statistics offset");
MB_LAYOUT_ASSERT((0 MB_REGION_STATS(MB_STAT_COUNT_SHM)) <= MB_REGION_STATS_ROOM,
                 "region statistics fit their room");
MB_LAYOUT_ASSERT((0 MB_POOL_STATS(MB_STAT_COUNT_SHM)) <= MB_POOL_STATS_ROOM,
                 "pool statistics fit their room");
MB_LAYOUT_ASSERT((0 MB_MEM_STATS(MB_STAT_COUNT_SHM)) <= MB_MEM_STATS_ROOM,
                 "private memory figures fit their room");
/* The client-table entry places its statistics itself: each listed field is there, as wide as
 * its entry says. */
#define MB__STAT_WIDTH_ROW64 8
#define MB__STAT_WIDTH_ROW32 4
#define MB__X(where, field, ...)                                                                   \
  MB_LAYOUT_ASSERT(sizeof(((mb_client_entry_t *)0)->field) == MB__STAT_WIDTH_##where,              \
                   "client statistic " #field);
MB_CLIENT_STATS(MB__X)
#undef MB__X
MB_LAYOUT_ASSERT(sizeof(mb_slot_t) == 16, "slot size");
MB_LAYOUT_ASSERT(sizeof(mb_client_entry_t) == 128, "client entry size");
MB_LAYOUT_ASSERT(offsetof(mb_client_entry_t, name) == 48, "client name offset");
MB_LAYOUT_ASSERT(offsetof(mb_client_entry_t, dead_reason) == 80, "client dead reason offset");
MB_LAYOUT_ASSERT(offsetof(mb_client_entry_t, added_players) == 112, "client counter shares");
MB_LAYOUT_ASSERT(MB_CLIENTS_MAX < MB_PAGE_HOLDER_BROKER, "a page holder fits its field");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, generation) == 56, "generation offset");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, game) == 64, "game state on its own line");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, msg) == 128, "message on its own line");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, msg.text) == 192, "message text offset");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, regions) == 448, "region directory offset");
/* The directories follow one another without padding; their descriptors' sizes follow from the
 * statistics rooms above (a room that grows moves every later offset: bump the layout version,
 * tests/test-protocol.c says so). */
#define MB__OFF_CLIENT_COUNT (448 + MB_REGIONS_MAX * sizeof(mb_region_desc_t))
#define MB__OFF_CLIENTS (MB__OFF_CLIENT_COUNT + 64)
#define MB__OFF_POOLS (MB__OFF_CLIENTS + MB_CLIENTS_MAX * sizeof(mb_client_entry_t))
#define MB__OFF_CLIENT_MEM (MB__OFF_POOLS + MB_POOLS_MAX * sizeof(mb_pool_desc_t))
#define MB__OFF_MAPS (MB__OFF_CLIENT_MEM + MB_CLIENTS_MAX * sizeof(mb_client_mem_t))
MB_LAYOUT_ASSERT(offsetof(mb_state_t, clients_attached) == MB__OFF_CLIENT_COUNT, "client count");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, players_base) == MB__OFF_CLIENT_COUNT + 8, "counter bases");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, clients) == MB__OFF_CLIENTS, "client table offset");
MB_LAYOUT_ASSERT(sizeof(mb_pool_desc_t) == 192 + MB_POOL_STATS_ROOM * 8, "pool descriptor size");
MB_LAYOUT_ASSERT(offsetof(mb_pool_desc_t, head) == 128, "pool free stack on its own line");
MB_LAYOUT_ASSERT(offsetof(mb_pool_desc_t, stats_room) == 192, "pool statistics");
MB_LAYOUT_ASSERT(offsetof(mb_pool_desc_t, allocated) == 192, "pool statistics: allocated first");
MB_LAYOUT_ASSERT(sizeof(mb_pool_intent_t) == 64, "intent record: one cache line");
MB_LAYOUT_ASSERT(sizeof(mb_pool_mag_t) == 256, "magazine: four cache lines of its own");
MB_LAYOUT_ASSERT(MB_POOL_MAG >= MB_POOL_CHAIN + 1, "a magazine takes a chain when it is empty");
MB_LAYOUT_ASSERT(MB_POOL_INTENTS == 1024,
                 "a GIVING stamp and a head word name a record in 10 bits (any 10 bits: a record)");
MB_LAYOUT_ASSERT(MB_POOL_CAPACITY_MAX < (1u << MB_POOL_LOW_BITS) - 1,
                 "block + 1 and bump fit a head word's low bits, below the all-ones of no word");
MB_LAYOUT_ASSERT(MB_POOL_TAG_SHIFT == MB_POOL_LOW_BITS + 10, "head word: low, writer, tag");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, pools) == MB__OFF_POOLS, "pool directory offset");
MB_LAYOUT_ASSERT(MB_CLIENT_NAME_MAX == 32, "names are four words (mb__name_get)");
MB_LAYOUT_ASSERT(sizeof(mb_mem_entry_t) == 40 + MB_MEM_STATS_ROOM * 8, "private memory entry size");
MB_LAYOUT_ASSERT(offsetof(mb_mem_entry_t, stats_room) == 40, "private memory figures offset");
MB_LAYOUT_ASSERT(sizeof(mb_client_mem_t) == 64 + MB_CLIENT_MEM_MAX * sizeof(mb_mem_entry_t),
                 "private memory row size");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, client_mem) == MB__OFF_CLIENT_MEM,
                 "private memory table offset");
MB_LAYOUT_ASSERT(sizeof(mb_map_desc_t) == 128, "map descriptor size");
MB_LAYOUT_ASSERT(offsetof(mb_state_t, maps) == MB__OFF_MAPS, "map directory offset");
MB_LAYOUT_ASSERT(sizeof(mb_state_t) == MB__OFF_MAPS + MB_MAPS_MAX * sizeof(mb_map_desc_t),
                 "state block size");

/* ---- helpers shared by broker and client (state.c) ------------------------------------------ */

/* The names of the instance's shared objects, for broker and client alike; MB_ENAMETOOLONG if
 * the name does not fit. "membroker.<instance>.state" (region NULL) or
 * "membroker.<instance>.region.<name>"; "membroker.<instance>.pool.<name>";
 * "membroker.<instance>.map.<name>.<seq>" (load `seq` of map `name`, mb_map_desc_t). */
int mb__object_name(char *buf, size_t size, const char *instance, const char *region);
int mb__pool_object_name(char *buf, size_t size, const char *instance, const char *pool);
int mb__map_object_name(char *buf, size_t size, const char *instance, const char *name,
                        uint32_t seq);

/* Check a mapped block of `mapped` bytes: magic (MB_EBADMAGIC), version (MB_EVERSION), header
 * and total size (MB_EVERSION), that it is initialised (MB_ENOTRUNNING if not yet), and that
 * its counts (max_clients, region_count, pool_count) are in range (MB_ECORRUPT). A reader
 * copies the counts once after this check and never reads them again. */
int mb__state_check(const mb_state_t *st, uint64_t mapped);

/*
 * Check the fixed fields of a region or pool descriptor read from the control block (any
 * member of the game servers' group can write them) before anything is located by them:
 * name NUL-terminated, sizes and counts consistent, every offset and array inside
 * `section` bytes (the section as the OS reports it; 0 when not opened yet: the
 * descriptor's own section_size is used). Returns 0, or MB_ECORRUPT naming the field.
 */
int mb__region_desc_check(const mb_region_desc_t *d, uint64_t section);
int mb__pool_desc_check(const mb_pool_desc_t *d, uint64_t section);

/*
 * Read the status message into buf (>= MB_STATUS_MSG_MAX bytes), never torn. Returns its
 * length, or MB_EBUSY (buf then "") if no consistent copy could be had within ~10 ms: a
 * writer is in the middle of it, or died there and no writer has replaced it yet.
 */
int mb__state_read_msg(const mb_state_t *st, char *buf);

/*
 * The one UTF-8 rule of the project (the pipe, the broker's reports, mb_set_message, mbctl's
 * escaping all use it): offset of the first byte of s[0..n) that is not valid UTF-8 (overlong
 * forms, surrogates and code points past U+10FFFF are invalid; so is NUL when nul_ok is 0), or n if
 * all of it is.
 */
size_t mb__utf8_invalid(const char *s, size_t n, int nul_ok);

/*
 * Replace the status message (cut to MB_STATUS_MSG_MAX - 1 bytes at a UTF-8 boundary). Any
 * process may write: writers take turns through the sequence counter, and one that died
 * mid-write is replaced once the OS says it is gone (never merely because it is slow).
 * Returns 0, or MB_EBUSY if a live writer held the message for over a second.
 */
int mb__state_write_msg(mb_state_t *st, const char *text);

/* The name of client entry e into buf (MB_CLIENT_NAME_MAX bytes, always NUL-terminated). The
 * words are read one by one: a name changing under the reader may come out mixed. */
/* A 32-byte name kept as four atomic words: read into buf[32] / written from a string. */
void mb__name_get(const mb_au64 *words, char *buf);
void mb__name_set(mb_au64 *words, const char *name);

void mb__client_name_get(const mb_client_entry_t *e, char *buf);

/* Write `name` (at most MB_CLIENT_NAME_MAX - 1 bytes) into entry e, NUL-padded. */
void mb__client_name_set(mb_client_entry_t *e, const char *name);

/* The slot table of a slotted region inside its mapped section at `base`. */
static inline mb_au32 *mb__region_pages(const mb_region_desc_t *d, void *base) {
  return (mb_au32 *)((unsigned char *)base + d->table_offset);
}
static inline mb_slot_t *mb__region_slots(const mb_region_desc_t *d, void *base) {
  uint64_t pages = d->size / d->page_size;
  uint64_t off = d->table_offset + ((pages * 4 + 7) & ~(uint64_t)7);
  return (mb_slot_t *)((unsigned char *)base + off);
}
/* Bytes the slot table needs (rounded up to `round`). */
/* The pages [*first, *last] that slot `index` of `slot_size` bytes lies on. */
static inline void mb__slot_page_range(uint64_t index, uint64_t slot_size, uint64_t page_size,
                                       uint64_t *first, uint64_t *last) {
  *first = index * slot_size / page_size;
  *last = (index * slot_size + slot_size - 1) / page_size;
}

/* v rounded up to a multiple of `to` (> 0). */
static inline uint64_t mb__round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

static inline uint64_t mb__region_table_size(uint64_t size, uint32_t page_size, uint64_t slots,
                                             uint64_t round) {
  uint64_t pages = size / page_size;
  return mb__round_up(((pages * 4 + 7) & ~(uint64_t)7) + slots * sizeof(mb_slot_t), round);
}

#ifdef __cplusplus
}
#endif

#endif /* MB_LAYOUT_H */
