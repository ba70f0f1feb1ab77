/*
 * stats.h - the statistics lists: every figure the broker reports about a region, a shared
 * pool, a game server's private pools and heaps, a client-table entry and persist, named once.
 *
 * Owns: the lists below and MB_STATS_VERSION. From one entry come the shared-memory field
 * (layout.h expands the SHM entries into the descriptors' statistics blocks), the JSON key
 * (service/report.c: one loop per kind), mbctl's column (client/mbctl/show.c: one loop per
 * table) and the name of its metric. Never holds code that reads or writes the figures: the
 * files that own a figure's increment (common/pool.c, common/slots.c, ...) keep it.
 *
 * An entry:  X(where, field, key, kind, col, width, header, help)
 *   where   SHM   a 64-bit word of the shared statistics block, generated from this entry
 *                 (mb_au64 field), read with an atomic load
 *           ROW64 / ROW32   a field of mb_client_entry_t that the client-table protocol places
 *                 (layout.h declares it; a static assert checks it is there, of that width)
 *           FIX   worked out by the report from the broker's private copy of the fixed fields,
 *                 or from the other figures (no shared field)
 *           PRIV  a field of the broker's own memory (generated: uint64_t field)
 *   field   the C name of the field (SHM, ROW*, PRIV) or of the figure (FIX)
 *   key     the JSON key (README documents it); NULL: kept in shared memory, not reported
 *   kind    COUNTER only grows; GAUGE goes up and down; BYTES a gauge counted in bytes;
 *           FLAG true or false (a JSON bool)
 *   col     how mbctl shows it: NONE (no column), NUM, BYTES (64.0 MiB), BYTES0 (as BYTES,
 *           '-' for 0), YESNO, OF ("used/total": this figure over the one listed just before
 *           it, '-' when that one is 0)
 *   width   the column's width (negative: left-aligned); header: the column's title
 *   help    one line, for README and the metrics' HELP
 *
 * The metric of an entry (issue 13) is membroker_<list>_<key>, with "_total" appended for a
 * COUNTER and "_bytes" for BYTES unless the key already ends in "bytes" (mb_stat_metric_suffix);
 * <list> is region, pool, private, client or persist. A FLAG is a gauge of 0 or 1. Entries
 * without a key have none.
 *
 * Order: an entry's place in its list is its place in the JSON object and among mbctl's
 * columns; SHM entries also keep their order in shared memory, so a new SHM entry goes after
 * the last SHM entry of its list. Adding a figure: one entry here plus its increment; bump
 * MB_STATS_VERSION and record the fingerprint test-protocol's stats_fingerprint prints (a new
 * SHM word takes a reserved word of its block, MB_*_STATS_ROOM below: the layout version
 * stays); README's pool table and command rows are checked against the lists too
 * (readme_statistics says what to add).
 *
 * Which increment a figure may use. A client may be killed at any instruction (DESIGN.md), and
 * the crash points of the multi-step operations are numbered MB__CRASH(n) in pool.c (the
 * client table's in clients.h, slots' in slots.c). A figure is one of:
 *  - exact under kills: derived from the truth or reconciled when a client is reaped, never a
 *    bare add in the client. allocated / freed are published copies of the intent records'
 *    taken / given (set at the record's commit step, redone by the reaper: pool.c), in_use and
 *    free follow from them; a region's committed moves with each page's COMMITTED bit under
 *    the page lock, slots_used is set again from the owners at every reap (slots.c). A new
 *    figure that must add up (an invariant a test checks after kills) goes this way: count it
 *    in the client's own row or intent record before the operation's first visible step,
 *    and have the reaper fold or redo it.
 *  - an event count: one mb_add64 on the block's word after the operation's last crash point
 *    that can undo it (refills after its pop landed and was checked, misses and errors where
 *    the call is refused), so a kill loses at most the one event it was counting and never
 *    counts one that did not happen. README says so in the figure's meaning ("A refill cut
 *    short by a kill is not counted").
 *  A gauge's peak is raised only from a true figure (pool.c: never above one).
 */
#ifndef MB_STATS_H
#define MB_STATS_H

#include <string.h>

/* Bumped whenever a list below gains, loses or changes an entry; shown as
 * server.stats_version in status. */
#define MB_STATS_VERSION 3u

enum mb_stat_kind {
  MB_STAT_COUNTER = 0,
  MB_STAT_GAUGE = 1,
  MB_STAT_BYTES = 2,
  MB_STAT_FLAG = 3,
};
enum mb_stat_col {
  MB_COL_NONE = 0,
  MB_COL_NUM = 1,
  MB_COL_BYTES = 2,
  MB_COL_BYTES0 = 3,
  MB_COL_YESNO = 4,
  MB_COL_OF = 5,
};

/* One entry as data, for the loops that print (MB_STAT_INFO builds an array of them). */
typedef struct mb_stat_info_s {
  const char *key;
  int kind; /* enum mb_stat_kind */
  int col;  /* enum mb_stat_col */
  int width;
  const char *header;
  const char *help;
} mb_stat_info_t;
/* What follows membroker_<list>_<key> in the metric of entry s: "_total" for a counter,
 * "_bytes" for a byte figure whose key does not end in "bytes" already, else "". */
static inline const char *mb_stat_metric_suffix(const mb_stat_info_t *s) {
  size_t n = s->key != NULL ? strlen(s->key) : 0;
  if (s->kind == MB_STAT_COUNTER)
    return "_total";
  if (s->kind == MB_STAT_BYTES && !(n >= 5 && strcmp(s->key + n - 5, "bytes") == 0))
    return "_bytes";
  return "";
}
#define MB_STAT_INFO(where, field, key, kind, col, width, header, help)                            \
  {key, MB_STAT_##kind, MB_COL_##col, width, header, help},

/* An index per entry: enum { MB_POOL_STATS(MB_STAT_ENUM_POOL) MB_POOL_FIGS }, and so on. */
#define MB_STAT_ENUM_REGION(where, field, ...) MB_REGION_FIG_##field,
#define MB_STAT_ENUM_POOL(where, field, ...) MB_POOL_FIG_##field,
#define MB_STAT_ENUM_MEM(where, field, ...) MB_MEM_FIG_##field,

/* The shared field of an SHM entry (nothing for the others), and a count of them. */
#define MB_STAT_FIELD(where, field, ...) MB__STAT_FIELD_##where(field)
#define MB__STAT_FIELD_SHM(field) mb_au64 field;
#define MB__STAT_FIELD_FIX(field)
#define MB__STAT_FIELD_PRIV(field)
/* A plain copy of a figure (uint64_t field), e.g. a private-memory entry as read or written. */
#define MB_STAT_FIGURE(where, field, ...) uint64_t field;
/* How many SHM words a list has: (0 MB_POOL_STATS(MB_STAT_COUNT_SHM)). */
#define MB_STAT_COUNT_SHM(where, ...) +MB__STAT_SHM_##where
#define MB__STAT_SHM_SHM 1
#define MB__STAT_SHM_FIX 0
#define MB__STAT_SHM_PRIV 0
#define MB__STAT_SHM_ROW64 0
#define MB__STAT_SHM_ROW32 0
#define MB_STAT_PRIV_FIELD(where, field, ...) MB__STAT_PRIV_FIELD_##where(field)
#define MB__STAT_PRIV_FIELD_PRIV(field) uint64_t field;

/*
 * A region of the directory (mb_region_desc_t). The shared words sit at the descriptor's
 * statistics block (offset 80, MB_REGION_STATS_ROOM words, 4 used, the rest reserved: 12 make the
 * descriptor 192 bytes, three cache lines, so no two descriptors share one). committed / peak:
 * exact, page by page (slots.c, broker.c).
 */
#define MB_REGION_STATS_ROOM 12
#define MB_REGION_STATS(X)                                                                         \
  X(FIX, reserved, "reserved", BYTES, BYTES, 11, "RESERVED", "bytes of address space reserved")    \
  X(SHM, committed, "committed", BYTES, BYTES, 11, "COMMITTED", "bytes committed now, exact")      \
  X(SHM, peak_committed, "peak", BYTES, BYTES, 11, "PEAK", "the highest committed seen")           \
  X(FIX, lazy, "lazy", FLAG, YESNO, -5, "LAZY", "committed page by page on demand")                \
  X(FIX, page_size, "page_size", BYTES, BYTES, 9, "PAGE",                                          \
    "bytes of the pages the OS backs the region with: large pages or normal ones")                 \
  X(FIX, slot_count, "slot_count", GAUGE, NONE, 0, NULL, "player slots of the region")             \
  X(SHM, slots_used, "slots_used", GAUGE, OF, 17, "SLOTS USED/TOTAL", "slots held by clients")     \
  X(FIX, slot_size, "slot_size", BYTES, BYTES0, 9, "SLOT", "bytes of a slot (0: no slots)")        \
  X(FIX, table_bytes, "table_bytes", BYTES, BYTES0, 9, "TABLE",                                    \
    "bytes of the slot table: committed at start, charged against limits.max_committed")           \
  X(SHM, commit_failures, "commit_failures", COUNTER, NUM, 8, "FAILURES",                          \
    "commits refused by the OS or by limits.max_committed")

/*
 * A shared pool (mb_pool_desc_t). The shared words sit at the descriptor's statistics block
 * (offset 192, MB_POOL_STATS_ROOM words, 8 used, the rest reserved). allocated and freed are
 * published copies of the intent records' sums (pool.c); in_use, free, min_free and bytes
 * follow from them and the fixed fields.
 */
#define MB_POOL_STATS_ROOM 16
#define MB_POOL_STATS(X)                                                                           \
  X(FIX, object_size, "object_size", BYTES, BYTES, 9, "OBJECT", "bytes of an object")              \
  X(FIX, align, "align", BYTES, NONE, 0, NULL, "alignment of the objects")                         \
  X(FIX, capacity, "capacity", GAUGE, NUM, 9, "CAPACITY", "objects the pool holds")                \
  X(FIX, in_use, "in_use", GAUGE, NUM, 9, "IN USE", "objects out of the pool now")                 \
  X(FIX, free, "free", GAUGE, NUM, 9, "FREE", "objects in the pool now")                           \
  X(SHM, allocated, "allocated", COUNTER, NONE, 0, NULL, "objects handed out")                     \
  X(SHM, freed, "freed", COUNTER, NONE, 0, NULL, "objects given back (reclaimed ones included)")   \
  X(SHM, intents_used, NULL, GAUGE, NONE, 0, NULL, "intent records claimed: the highest + 1")      \
  X(SHM, peak, "peak", GAUGE, NUM, 9, "PEAK", "the highest in_use seen")                           \
  X(FIX, min_free, "min_free", GAUGE, NUM, 9, "MIN FREE", "the lowest free seen")                  \
  X(SHM, misses, "misses", COUNTER, NUM, 8, "MISSES", "allocations refused: the pool was empty")   \
  X(SHM, reclaimed, "reclaimed", COUNTER, NUM, 9, "RECLAIMED",                                     \
    "objects taken back from dead clients")                                                        \
  X(SHM, errors, "errors", COUNTER, NUM, 7, "ERRORS",                                              \
    "frees refused: double free, foreign pointer, poison overwritten")                             \
  X(SHM, refills, "refills", COUNTER, NUM, 8, "REFILLS",                                           \
    "thread-cache refills: a chain of up to 32 objects taken at once")                             \
  X(FIX, bytes, "bytes", BYTES, NONE, 0, NULL, "bytes of the pool's blocks")                       \
  X(FIX, debug, "debug", FLAG, YESNO, 0, "DEBUG", "every free checked, freed blocks poisoned")

/*
 * One private pool or heap a game server publishes (mb_mem_entry_t, mb_track_lpool /
 * mb_track_heap). The figures sit at the entry's offset 40, MB_MEM_STATS_ROOM words, 7 used, the
 * rest reserved (a row holds MB_CLIENT_MEM_MAX entries, the table MB_CLIENTS_MAX rows: each
 * word of room costs 20 KiB of the state block).
 */
#define MB_MEM_STATS_ROOM 9
#define MB_MEM_STATS(X)                                                                            \
  X(SHM, in_use, "in_use", BYTES, BYTES, 10, "IN USE", "bytes in use")                             \
  X(SHM, peak, "peak", BYTES, BYTES, 10, "PEAK", "the highest in_use")                             \
  X(SHM, committed, "committed", BYTES, BYTES, 10, "COMMITTED", "bytes committed")                 \
  X(SHM, allocs, "allocs", COUNTER, NUM, 9, "ALLOCS",                                              \
    "successful allocations (and a heap's reallocations)")                                         \
  X(SHM, frees, "frees", COUNTER, NUM, 9, "FREES", "successful frees")                             \
  X(SHM, failures, "failures", COUNTER, NUM, 8, "FAILURES",                                        \
    "refused calls: full, out of memory, misuse caught")                                           \
  X(SHM, objects, "objects", GAUGE, NONE, 0, NULL, "a pool's objects in use, a heap's blocks")

/* A client-table entry (mb_client_entry_t: the client-table protocol places its fields). */
#define MB_CLIENT_STATS(X)                                                                         \
  X(ROW64, slots_held, "slots_held", GAUGE, NUM, 6, "SLOTS", "player slots the client holds")      \
  X(ROW32, takeovers, "restarts", COUNTER, NUM, 8, "RESTARTS",                                     \
    "times a restart of the client took its entry over")

/* Persist (the broker's own memory, mb_persist_t). */
#define MB_PERSIST_STATS(X)                                                                        \
  X(PRIV, flushes, "flushes", COUNTER, NONE, 0, NULL, "saves to persist.dir that completed")       \
  X(PRIV, failures, "failures", COUNTER, NONE, 0, NULL, "saves to persist.dir that failed")

/*
 * Why a client entry is DEAD (mb_client_entry_t.dead_reason): X(NAME, value, key, why).
 * key is the JSON `dead_reason`; why ends the broker's log line "client 'x' is dead: ...".
 * HEARTBEAT is not given any more (a silent client is hung, not dead): an older broker's; the
 * value stays reserved so reasons keep their numbers. NONE and unknown values read "unknown".
 */
#define MB_DEAD_REASONS(X)                                                                         \
  X(NONE, 0, "unknown", "unknown")                                                                 \
  X(EXITED, 1, "exited", "its process exited")                                                     \
  X(HEARTBEAT, 2, "heartbeat", "no heartbeat in time")                                             \
  X(ABANDONED, 3, "abandoned", "its process died while attaching or detaching")                    \
  X(CLOSED, 4, "closed", "it let go to come back (mb_close / mb_reattach)")                        \
  X(RESTORED, 5, "restored", "restored from persist_dir by a restarted broker")

#endif /* MB_STATS_H */
