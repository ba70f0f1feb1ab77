/*
 * test-mbctl.c - the operator CLI as an operator runs it: the real mbctl executable
 * (MB_MBCTL_EXE, set by CMake) started as a separate process with its stdout and stderr in a
 * file (mb_os_spawn_redirect), against a broker child (CHILD serve, childbroker.c). Checks the
 * exit codes (0 ok, 1 command failed, 2 usage, 3 not running) and what it prints: the
 * overview, --json, chosen sections, set-message, watch, and the messages of each failure.
 */
#include "childbroker.h"

#include "gmap.h"
#include "membroker.h"

#if MB_OS_POSIX
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#if MB_OS_WIN
#include <windows.h>

#include "scm.h"
#endif

#ifndef MB_MBCTL_EXE
#error "MB_MBCTL_EXE must name the mbctl executable (CMake: $<TARGET_FILE:mbctl>)"
#endif

#define T_MBCTL_MS 30000 /* one mbctl run, at most (Wine, sanitizers) */
#define T_OUT_MAX (256 * 1024)

/* Run mbctl with the given arguments (a NULL-terminated list; mb_test_run_exe, task.h): its
 * exit code, what it printed into out[0..size). */
#define MBCTL(out, size, ...) mb_test_run_exe(MB_MBCTL_EXE, T_MBCTL_MS, out, size, __VA_ARGS__)

#define ASSERT_NOT_CONTAINS(haystack, needle)                                                      \
  do {                                                                                             \
    if (strstr((haystack), (needle)) != NULL)                                                      \
      FAIL("%s must not contain \"%s\": \"%s\"", #haystack, (needle), (haystack));                 \
  } while (0)

/* The number of lines in s (each ends with "\n"). */
static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static cJSON *parse_json(const char *text) {
  cJSON *j = cJSON_Parse(text);
  if (j == NULL || !cJSON_IsObject(j))
    FAIL("mbctl's output is not a JSON object:\n%s", text);
  return j;
}

static char out[T_OUT_MAX];

/* ---- tests --------------------------------------------------------------------------------- */

TEST(status_overview) {
  tbroker_t t = {0};
  char want[128];
  broker_up(&t, "ov");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 0, out);
  snprintf(want, sizeof want, "membroker   instance '%s', running\n", t.instance);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "message     \"\"\n");
  ASSERT_CONTAINS(out, "game        0 players, 0 NPCs\n");
  ASSERT_CONTAINS(out, "config      built-in defaults\n");
  ASSERT_CONTAINS(out, "committed   ");
  ASSERT_CONTAINS(out, "clients     0 attached (at most 64");
  ASSERT_CONTAINS(out, "REGION");
  ASSERT_CONTAINS(out, "\nworld ");
  ASSERT_CONTAINS(out, "\nplayers ");
  ASSERT_CONTAINS(out, " 0/1024 ");  /* players: 1 MiB of 1 KiB slots, none used */
  ASSERT_CONTAINS(out, "256.0 KiB"); /* world, reserved and committed */
  /* The options may follow the command too. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--instance", t.instance, NULL), 0, out);
  ASSERT_CONTAINS(out, want);
  broker_down(&t);
}

TEST(status_json) {
  static const char *const sections[] = {"server", "memory", "regions", "clients", "pools"};
  tbroker_t t = {0};
  cJSON *j;
  size_t i;
  broker_up(&t, "json");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "--json", NULL), 0, out);
  j = parse_json(out);
  for (i = 0; i < sizeof sections / sizeof sections[0]; i++)
    if (jget(j, sections[i]) == NULL)
      FAIL("status --json has no \"%s\":\n%s", sections[i], out);
  ASSERT_STR_EQ(jstr(j, "server.instance"), t.instance);
  ASSERT_STR_EQ(jstr(j, "server.status"), "running");
  ASSERT(cJSON_IsArray(jget(j, "regions")));
  ASSERT_EQ(cJSON_GetArraySize(jget(j, "regions")), 2);
  ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(jget(j, "regions"), 0), "name"), "world");
  ASSERT_EQ(jnum(cJSON_GetArrayItem(jget(j, "regions"), 1), "slot_count"), 1024);
  cJSON_Delete(j);
  broker_down(&t);
}

TEST(status_sections) {
  tbroker_t t = {0};
  cJSON *j;
  broker_up(&t, "sect");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "memory", NULL), 0, out);
  ASSERT_CONTAINS(out, "committed   ");
  ASSERT_CONTAINS(out, "resident    ");
  ASSERT_CONTAINS(out, "system      ");
  ASSERT_NOT_CONTAINS(out, "membroker");
  ASSERT_NOT_CONTAINS(out, "REGION");
  ASSERT_NOT_CONTAINS(out, "clients");
  ASSERT_EQ(count_lines(out), 3);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "--json", "status", "memory", NULL),
              0, out);
  j = parse_json(out);
  ASSERT_EQ(cJSON_GetArraySize(j), 1);
  ASSERT_GT(jnum(j, "memory.committed"), 0);
  cJSON_Delete(j);
  /* Two sections, in the overview's order. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "regions", "server", NULL),
              0, out);
  ASSERT_CONTAINS(out, "membroker   instance");
  ASSERT_CONTAINS(out, "REGION");
  ASSERT_NOT_CONTAINS(out, "resident");
  ASSERT_LT(strstr(out, "membroker") - out, strstr(out, "REGION") - out);
  /* An unknown section is the broker's bad_args. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "disks", NULL), 1, out);
  ASSERT_CONTAINS(out, "bad_args");
  ASSERT_CONTAINS(out, "disks");
  broker_down(&t);
}

/* No pools configured: `mbctl pools` prints the table's header and says so, status has a
 * "pools none" line (and no pool table), --json is the empty array; help lists the command. */
TEST(pools) {
  static const char *const header[] = {"POOL",      "OBJECT", "CAPACITY", "IN USE",
                                       "FREE",      "PEAK",   "MIN FREE", "MISSES",
                                       "RECLAIMED", "ERRORS", "REFILLS",  "DEBUG"};
  tbroker_t t = {0};
  cJSON *j;
  size_t i;
  broker_up(&t, "pools");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "pools", NULL), 0, out);
  ASSERT_EQ(strncmp(out, "POOL ", 5), 0);
  for (i = 0; i < sizeof header / sizeof header[0]; i++)
    ASSERT_CONTAINS(out, header[i]);
  ASSERT_CONTAINS(out, "\nno pools configured\n");
  ASSERT_EQ(count_lines(out), 2);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "pools", "--json", NULL), 0, out);
  j = cJSON_Parse(out);
  if (!cJSON_IsArray(j))
    FAIL("pools --json is not a JSON array:\n%s", out);
  ASSERT_EQ(cJSON_GetArraySize(j), 0);
  cJSON_Delete(j);
  /* The overview: one line, no table. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 0, out);
  ASSERT_CONTAINS(out, "\npools       none\n");
  ASSERT_NOT_CONTAINS(out, "POOL ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "pools", NULL), 0, out);
  ASSERT_STR_EQ(out, "pools       none\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "help", NULL), 0, out);
  ASSERT_CONTAINS(out, "\n  pools ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "pools", "extra", NULL), 2, out);
  ASSERT_CONTAINS(out, "takes no arguments");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--help", NULL), 0, out);
  ASSERT_CONTAINS(out, "  pools   ");
  broker_down(&t);
}

/*
 * Game data maps: `mbctl maps` with none is the header and a line that says so; map-load
 * prints what it loaded, the table a row per map, --json the raw array, status a maps line;
 * a refused load exits 1 with the broker's message; map-unload; usage.
 */
TEST(maps) {
  static const char *const header[] = {"MAP", "SIZE",     "WIDTH",  "HEIGHT", "OBJECTS",
                                       "SEQ", "CHECKSUM", "LOADED", "PATH"};
  tbroker_t t = {0};
  char path[128], name[96];
  cJSON *j;
  size_t i;
  snprintf(path, sizeof path, "%s.gmap", mb_test_name(name, sizeof name, "mbctl"));
  ASSERT_OK(mb__gmap_write(path, 128, 64, 3, 1));
  broker_up(&t, "maps");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "maps", NULL), 0, out);
  ASSERT_EQ(strncmp(out, "MAP ", 4), 0);
  for (i = 0; i < sizeof header / sizeof header[0]; i++)
    ASSERT_CONTAINS(out, header[i]);
  ASSERT_CONTAINS(out, "\nno maps loaded\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-load", "w1", path, NULL), 0,
              out);
  ASSERT_CONTAINS(out, "map 'w1' loaded from ");
  ASSERT_CONTAINS(out, "128 x 64 tiles, 3 objects (seq ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "maps", NULL), 0, out);
  ASSERT_CONTAINS(out, "\nw1 ");
  ASSERT_CONTAINS(out, "32.2 KiB");
  ASSERT_CONTAINS(out, path);
  ASSERT_EQ(count_lines(out), 2);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "maps", "--json", NULL), 0, out);
  j = cJSON_Parse(out);
  if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 1)
    FAIL("maps --json is not an array of one map:\n%s", out);
  ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(j, 0), "name"), "w1");
  ASSERT_EQ(jnum(cJSON_GetArrayItem(j, 0), "width"), 128);
  ASSERT_EQ(strlen(jstr(cJSON_GetArrayItem(j, 0), "checksum")), 16);
  /* seq is a wall-clock number (ms, 32 bits: up to 10 digits): the table's columns still line
   * up, the checksum under CHECKSUM and the seq ending where SEQ ends. */
  {
    char sum[17], seq[16];
    const char *row, *hc, *hs;
    snprintf(sum, sizeof sum, "%s", jstr(cJSON_GetArrayItem(j, 0), "checksum"));
    snprintf(seq, sizeof seq, "%.0f", jnum(cJSON_GetArrayItem(j, 0), "seq"));
    ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "maps", NULL), 0, out);
    row = strstr(out, "\nw1 ");
    hc = strstr(out, "CHECKSUM");
    hs = strstr(out, " SEQ ");
    ASSERT(row != NULL && hc != NULL && hs != NULL && strstr(row, sum) != NULL);
    ASSERT_EQ(strstr(row, sum) - (row + 1), hc - out);
    ASSERT(strstr(row, seq) != NULL);
    ASSERT_EQ(strstr(row, seq) + strlen(seq) - (row + 1), hs + 4 - out);
  }
  cJSON_Delete(j);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "memory", NULL), 0, out);
  ASSERT_CONTAINS(out, "maps        1 loaded, 32.2 KiB\n");
  /* Refused: a loaded name (its own code, already_exists), a file that is not GMAP. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-load", "w1", path, NULL), 1,
              out);
  ASSERT_CONTAINS(out, "map-load failed: already_exists: map 'w1' is loaded; unload it first");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-load", "w2", ".", NULL), 1,
              out);
  ASSERT_CONTAINS(out, "is not a regular file");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-unload", "w1", NULL), 0, out);
  ASSERT_CONTAINS(out, "map 'w1' unloaded\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-unload", "w1", NULL), 1, out);
  ASSERT_CONTAINS(out, "no map 'w1' is loaded");
  /* Usage. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-load", "w1", NULL), 2, out);
  ASSERT_CONTAINS(out, "map-load needs two arguments: NAME PATH");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-unload", NULL), 2, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--help", NULL), 0, out);
  ASSERT_CONTAINS(out, "  map-load NAME PATH ");
  broker_down(&t);
  remove(path);
}

/* The broker child's control block, mapped writable in this process (the test plays a game
 * server that publishes its private memory, as the client library would). */
typedef struct {
  mb_os_section_t sec;
  mb_state_t *st;
} tstate_t;

static void state_open(tstate_t *m, const tbroker_t *t) {
  char obj[MB_OS_NAME_MAX + 1];
  ASSERT_OK(mb__object_name(obj, sizeof obj, t->instance, NULL));
  ASSERT_OK(mb_os_section_open(&m->sec, obj, 0, 1));
  ASSERT_OK(mb_os_section_map(&m->sec, 0, 1, (void **)&m->st));
  ASSERT_OK(mb__state_check(m->st, m->sec.size));
}

/* Give back entry i (free, its row cleared) and unmap. */
static void state_close(tstate_t *m, uint32_t i) {
  memset((void *)&m->st->client_mem[i], 0, sizeof m->st->client_mem[i]);
  mb_store64(&m->st->clients[i].word, MB_CLIENT_WORD(MB_CLIENT_FREE, 0, 0));
  mb_os_section_unmap(m->st, m->sec.size);
  mb_os_section_close(&m->sec);
}

/*
 * `mbctl heaps`: nothing published is the header and a line that says so; a client's pool
 * and heap are a row each (human sizes), also with the client named; --json is the raw
 * array; `mbctl clients` shows the committed sum in its PRIVATE column; usage and help.
 */
TEST(heaps) {
  static const char *const header[] = {"CLIENT",    "NAME",   "KIND",  "IN USE",  "PEAK",
                                       "COMMITTED", "ALLOCS", "FREES", "FAILURES"};
  tbroker_t t = {0};
  tstate_t m;
  char want[256];
  const cJSON *c;
  cJSON *j;
  size_t i;
  broker_up(&t, "heaps");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", NULL), 0, out);
  ASSERT_EQ(strncmp(out, "CLIENT ", 7), 0);
  for (i = 0; i < sizeof header / sizeof header[0]; i++)
    ASSERT_CONTAINS(out, header[i]);
  ASSERT_CONTAINS(out, "\nno private pools or heaps published\n");
  ASSERT_EQ(count_lines(out), 2);

  /* zone-1 publishes a pool of 48-byte objects (3 in use, 5 at most) and a heap. */
  state_open(&m, &t);
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, "zone-1");
  fake_mem(m.st, 0, 0, MB_MEM_LPOOL, "bullets", 48, 3 * 48, 5 * 48, 65536, 5, 2, 1, 3);
  fake_mem(m.st, 0, 1, MB_MEM_HEAP, "net", 0, 400, 600, 131072, 3, 1, 0, 2);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", NULL), 0, out);
  ASSERT_EQ(count_lines(out), 3);
  snprintf(want, sizeof want, "\n%-16s %-16s %-4s %10s %10s %10s %9s %9s %8s\n", "zone-1",
           "bullets", "pool", "144 B", "240 B", "64.0 KiB", "5", "2", "1");
  ASSERT_CONTAINS(out, want);
  snprintf(want, sizeof want, "\n%-16s %-16s %-4s %10s %10s %10s %9s %9s %8s\n", "zone-1", "net",
           "heap", "400 B", "600 B", "128.0 KiB", "3", "1", "0");
  ASSERT_CONTAINS(out, want);
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, "zone-1");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", "zone-1", NULL), 0, out);
  ASSERT_EQ(count_lines(out), 3);
  ASSERT_CONTAINS(out, "\nzone-1           net ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", "zone-9", NULL), 0, out);
  ASSERT_CONTAINS(out, "\nno private pools or heaps published\n");

  /* --json: the raw array. */
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, "zone-1");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", "--json", NULL), 0, out);
  j = cJSON_Parse(out);
  if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 1)
    FAIL("heaps --json is not an array of one client:\n%s", out);
  c = cJSON_GetArrayItem(j, 0);
  ASSERT_STR_EQ(jstr(c, "client"), "zone-1");
  ASSERT_EQ(jnum(c, "index"), 0);
  ASSERT_EQ(cJSON_GetArraySize(jget(c, "entries")), 2);
  ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(jget(c, "entries"), 0), "kind"), "pool");
  ASSERT_EQ(jnum(cJSON_GetArrayItem(jget(c, "entries"), 0), "object_size"), 48);
  ASSERT_EQ(jnum(cJSON_GetArrayItem(jget(c, "entries"), 0), "in_use"), 144);
  ASSERT_EQ(jnum(cJSON_GetArrayItem(jget(c, "entries"), 1), "committed"), 131072);
  cJSON_Delete(j);

  /* clients: the committed bytes of its pools and heaps; --json has the sums. */
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, "zone-1");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "clients", NULL), 0, out);
  ASSERT_CONTAINS(out, " PRIVATE ");
  ASSERT_CONTAINS(out, " zone-1 ");
  ASSERT_CONTAINS(out, " 192.0 KiB ");
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, "zone-1");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "clients", "--json", NULL), 0, out);
  j = parse_json(out);
  c = cJSON_GetArrayItem(jget(j, "table"), 0);
  ASSERT_EQ(jnum(c, "private.in_use"), 544);
  ASSERT_EQ(jnum(c, "private.committed"), 196608);
  ASSERT_EQ(jnum(c, "private.pools"), 1);
  ASSERT_EQ(jnum(c, "private.heaps"), 1);
  cJSON_Delete(j);
  state_close(&m, 0);

  /* Usage and help. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "heaps", "a", "b", NULL), 2, out);
  ASSERT_CONTAINS(out, "heaps takes at most one argument");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "help", NULL), 0, out);
  ASSERT_CONTAINS(out, "\n  heaps ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--help", NULL), 0, out);
  ASSERT_CONTAINS(out, "  heaps [CLIENT]   ");
  broker_down(&t);
}

TEST(set_message) {
  tbroker_t t = {0};
  cJSON *j;
  broker_up(&t, "msg");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-message", "hi", NULL), 0, out);
  ASSERT_CONTAINS(out, "status message: \"hi\"");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 0, out);
  ASSERT_CONTAINS(out, "message     \"hi\"\n");
  /* Several arguments are one message; "--" lets it start with '-'. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-message", "--", "-maintenance",
                    "at 06:00", NULL),
              0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "server", "--json", NULL),
              0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "server.message"), "-maintenance at 06:00");
  cJSON_Delete(j);
  /* "" clears it. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-message", "", NULL), 0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "server", NULL), 0, out);
  ASSERT_CONTAINS(out, "message     \"\"\n");
  broker_down(&t);
}

/*
 * Text from the broker is escaped on a terminal: a status message and a client name holding
 * ESC[2J (clear screen), a newline, a CR, DEL and a C1 CSI are printed as \x1b[2J, \n, \r, \x7f,
 * \u009b by `mbctl status` and `mbctl clients`, so they cannot move the cursor or forge a line;
 * an error message too. --json keeps them exact.
 */
TEST(control_characters_escaped) {
  static const char typed[] = "\x1b[2Jdown\nfake line\rX\x7f";
  static const char msg[] = "\x1b[2Jdown\nfake line\rX\x7f\xC2\x9B\xC3\xA9";
  static const char msg_shown[] =
      "message     \"\\x1b[2Jdown\\nfake line\\rX\\x7f\\u009b\xC3\xA9\"\n";
  static const char name[] = "\x1b[2Jz\nq\r";
  tbroker_t t = {0};
  tstate_t m;
  cJSON *j;
  broker_up(&t, "tty");
  /* ASCII controls typed on the command line (mbctl's arguments on Windows are in the ANSI
   * code page, so the non-ASCII text below is written into the control block instead). */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-message", typed, NULL), 0, out);
  ASSERT_CONTAINS(out, "status message: \"\\x1b[2Jdown\\nfake line\\rX\\x7f\"\n");
  ASSERT_NOT_CONTAINS(out, "\x1b");
  state_open(&m, &t);
  ASSERT_OK(mb__state_write_msg(m.st, msg));
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 0, out);
  ASSERT_CONTAINS(out, msg_shown);
  ASSERT_NOT_CONTAINS(out, "\x1b");
  ASSERT_NOT_CONTAINS(out, "\r");
  ASSERT_NOT_CONTAINS(out, "\x7f");
  ASSERT_NOT_CONTAINS(out, "\xC2\x9B");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "server", "--json", NULL),
              0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "server.message"), msg);
  cJSON_Delete(j);

  /* A client name, as a group member could write it into the table. */
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, name);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "clients", NULL), 0, out);
  ASSERT_CONTAINS(out, " \\x1b[2Jz\\nq\\r ");
  ASSERT_NOT_CONTAINS(out, "\x1b");
  ASSERT_NOT_CONTAINS(out, "\r");
  fake_client(m.st, 0, MB_CLIENT_ATTACHED, name);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "clients", "--json", NULL), 0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(jget(j, "table"), 0), "name"), name);
  cJSON_Delete(j);
  state_close(&m, 0);

  /* An error message that quotes what it was given. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "map-unload", "\x1b[2Jm", NULL), 1,
              out);
  ASSERT_CONTAINS(out, "\\x1b[2Jm");
  ASSERT_NOT_CONTAINS(out, "\x1b");
  broker_down(&t);
}

TEST(set_counter) {
  tbroker_t t = {0};
  cJSON *j;
  broker_up(&t, "cnt");
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "players", "24", NULL), 0,
      out);
  ASSERT_CONTAINS(out, "players: 24 (was 0)");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "npcs", "48", NULL),
              0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 0, out);
  ASSERT_CONTAINS(out, "game        24 players, 48 NPCs\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "--json", "set-counter", "players",
                    "0", NULL),
              0, out);
  j = parse_json(out);
  ASSERT_EQ(jnum(j, "previous"), 24);
  cJSON_Delete(j);
  /* Usage errors (exit 2), and the broker's refusal of a counter it does not have (exit 1). */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "players", NULL), 2,
              out);
  ASSERT_CONTAINS(out, "set-counter needs two arguments");
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "players", "x3", NULL), 2,
      out);
  ASSERT_CONTAINS(out, "'x3' is not a whole number");
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "players", "12x", NULL), 2,
      out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-counter", "gold", "1", NULL), 1,
              out);
  ASSERT_CONTAINS(out, "'counter' must be \"players\" or \"npcs\", got \"gold\"");
  broker_down(&t);
}

TEST(watch_lines) {
  tbroker_t t = {0};
  const char *line;
  int n = 0;
  broker_up(&t, "watch");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "watch", "--count", "2",
                    "--interval", "50", NULL),
              0, out);
  ASSERT_EQ(count_lines(out), 2);
  for (line = out; *line; line = strchr(line, '\n') + 1) {
    ASSERT_CONTAINS(line, " running ");
    ASSERT_CONTAINS(line, "players 0");
    ASSERT_CONTAINS(line, "world 256.0 KiB");
  }
  /* --json: each line is the broker's event, as it came; sections chosen. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "--json", "watch", "--count", "3",
                    "--interval", "50", "server", NULL),
              0, out);
  ASSERT_EQ(count_lines(out), 3);
  for (line = out; *line; n++) {
    char *nl = strchr(line, '\n');
    cJSON *ev;
    *nl = '\0';
    ev = parse_json(line);
    ASSERT_STR_EQ(jstr(ev, "event"), "status");
    ASSERT_EQ(jnum(ev, "id"), 1);
    ASSERT_STR_EQ(jstr(ev, "result.server.instance"), t.instance);
    ASSERT_EQ(cJSON_GetArraySize(jget(ev, "result")), 1);
    cJSON_Delete(ev);
    line = nl + 1;
  }
  ASSERT_EQ(n, 3);
  /* An interval the broker refuses is its bad_args, and no line is printed. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "watch", "--count", "2",
                    "--interval", "49", NULL),
              1, out);
  ASSERT_CONTAINS(out, "bad_args");
  ASSERT_CONTAINS(out, "interval_ms");
  fresh_status(&t);
  broker_down(&t);
}

TEST(not_running) {
  char inst[64], want[160];
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(inst, sizeof inst, "p%unosuch", (unsigned)self.pid);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst, "status", NULL), 3, out);
  snprintf(want, sizeof want, "membroker is not running for instance '%s'", inst);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "membroker run"); /* how to start it */
  ASSERT_CONTAINS(out, "-c FILE");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst, "watch", "--count", "1", NULL), 3, out);
  ASSERT_CONTAINS(out, want);
}

/* Usage errors exit 2 before any connection is tried (no broker runs here). */
TEST(usage_errors) {
  ASSERT_EXIT(MBCTL(out, sizeof out, "--bogus", NULL), 2, out);
  ASSERT_STR_EQ(out, "mbctl: unknown option '--bogus'\nrun 'mbctl --help' for usage\n");
  /* A negative number is a word, refused by what takes it in one line. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", "-1", NULL), 2, out);
  ASSERT_STR_EQ(out, "mbctl: player: '-1' is not a whole number from 0 to 18446744073709551614\n"
                     "run 'mbctl --help' for usage\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", "18446744073709551615", NULL), 2, out);
  ASSERT_CONTAINS(out,
                  "'18446744073709551615' is not a whole number from 0 to 18446744073709551614");
  ASSERT_EXIT(MBCTL(out, sizeof out, "evict", "--index", "-1", NULL), 2, out);
  ASSERT_STR_EQ(out, "mbctl: evict: --index needs a whole number (INDEX of `clients`), got '-1'\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "evict", "zone-1", "--index", "1", NULL), 2, out);
  ASSERT_CONTAINS(out, "evict takes a CLIENT name or --index N, not both");
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--index", "1", NULL), 2, out);
  ASSERT_CONTAINS(out, "--index is an option of evict");
  ASSERT_EXIT(MBCTL(out, sizeof out, NULL), 2, out);
  ASSERT_CONTAINS(out, "usage: mbctl");
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--count", "2", NULL), 2, out);
  ASSERT_CONTAINS(out, "options of watch");
  ASSERT_EXIT(MBCTL(out, sizeof out, "watch", "--interval", "fast", NULL), 2, out);
  ASSERT_CONTAINS(out, "'fast'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--timeout", "-5", "status", NULL), 2, out);
  ASSERT_CONTAINS(out, "--timeout needs a positive number, got '-5'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--instance", NULL), 2, out);
  ASSERT_CONTAINS(out, "--instance needs a value");
  ASSERT_EXIT(MBCTL(out, sizeof out, "set-status", NULL), 2, out);
  ASSERT_CONTAINS(out, "set-status needs one argument: running|draining");
  ASSERT_EXIT(MBCTL(out, sizeof out, "ping", "extra", NULL), 2, out);
  ASSERT_CONTAINS(out, "takes no arguments");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--help", NULL), 0, out);
  ASSERT_CONTAINS(out, "exit codes: 0 ok, 1 command failed, 2 usage, 3 broker not running");
}

TEST(command_fails) {
  tbroker_t t = {0};
  broker_up(&t, "fail");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-status", "bogus", NULL), 1,
              out);
  ASSERT_CONTAINS(out, "set-status failed: bad_args");
  ASSERT_CONTAINS(out, "bogus");
  /* With --json the error response goes to stdout, the message to stderr: both are here. */
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "--json", "set-status", "bogus", NULL), 1,
      out);
  ASSERT_CONTAINS(out, "\"code\":\t\"bad_args\"");
  ASSERT_CONTAINS(out, "set-status failed: bad_args");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "set-status", "draining", NULL), 0,
              out);
  ASSERT_CONTAINS(out, "server status: draining (was running)");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", "server", NULL), 0, out);
  ASSERT_CONTAINS(out, "', draining\n");
  broker_down(&t);
}

TEST(ping_version_shutdown) {
  tbroker_t t = {0};
  broker_up(&t, "down");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "ping", NULL), 0, out);
  ASSERT_STR_EQ(out, "pong\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "version", NULL), 0, out);
  ASSERT_CONTAINS(out, "membroker ");
  ASSERT_CONTAINS(out, "(layout ");
  ASSERT_CONTAINS(out, MB_OS_WIN ? ", windows)\n" : ", posix)\n"); /* the build id's MB_OS_NAME */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "shutdown", NULL), 0, out);
  ASSERT_CONTAINS(out, "is stopping");
  ASSERT_EQ(broker_wait_exit(&t), 0);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "status", NULL), 3, out);
}

/* The redirection itself: a file that cannot be created fails the spawn, and no child runs. */
TEST(output_file_cannot_be_created) {
  const char *argv[3];
  char exe[1024], dir[512], path[700];
  mb_os_child_t child;
  argv[0] = mb_test_exe_path(MB_MBCTL_EXE, exe, sizeof exe);
  argv[1] = "--version";
  argv[2] = NULL;
  ASSERT_OK(mb_os_runtime_dir(dir, sizeof dir));
  snprintf(path, sizeof path, "%s/mbt-no-such-dir/mbctl.out", dir);
  ASSERT_ERR(mb_os_spawn_redirect(argv, path, &child), MB_ENOENT);
  ASSERT_CONTAINS(mb_last_error(), "mbt-no-such-dir");
  /* And with a good file, the version line lands in it. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--version", NULL), 0, out);
  ASSERT_CONTAINS(out, "mbctl ");
}

/* mbctl run with MEMBROKER_INSTANCE set to `value` (NULL: unset) for it alone: its exit code. */
static int mbctl_with_env(const char *value, const char *arg0, const char *arg1, const char *arg2) {
  int code;
  ASSERT_OK(mb_os_env_set("MEMBROKER_INSTANCE", value));
  code = MBCTL(out, sizeof out, arg0, arg1, arg2, NULL);
  ASSERT_OK(mb_os_env_set("MEMBROKER_INSTANCE", NULL));
  return code;
}

/* Without --instance, MEMBROKER_INSTANCE picks the instance; --instance wins over it; a bad
 * value is refused (usage, exit 2) with a message naming the variable. */
TEST(instance_from_environment) {
  tbroker_t t = {0};
  char want[160], other[64];
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(other, sizeof other, "p%uelsewhere", (unsigned)self.pid);
  broker_up(&t, "env");
  ASSERT_EXIT(mbctl_with_env(t.instance, "status", "server", NULL), 0, out);
  snprintf(want, sizeof want, "membroker   instance '%s', running\n", t.instance);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(mbctl_with_env(other, "--instance", t.instance, "ping"), 0, out);
  ASSERT_STR_EQ(out, "pong\n");
  ASSERT_EXIT(mbctl_with_env(other, "ping", NULL, NULL), 3, out);
  snprintf(want, sizeof want, "membroker is not running for instance '%s'", other);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(mbctl_with_env("bad/name", "ping", NULL, NULL), 2, out);
  ASSERT_CONTAINS(out, "mbctl: MEMBROKER_INSTANCE 'bad/name' is not an instance name");
  {
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_EXIT(mbctl_with_env(longname, "ping", NULL, NULL), 2, out);
    ASSERT_CONTAINS(out, "mbctl: MEMBROKER_INSTANCE: environment variable MEMBROKER_INSTANCE is "
                         "longer than 255 bytes");
  }
  ASSERT_EXIT(mbctl_with_env(NULL, "--instance", "bad name", "ping"), 2, out);
  ASSERT_CONTAINS(out, "mbctl: --instance 'bad name' is not an instance name");
  /* Empty counts as unset: the instance is "default" again (which may or may not run here). */
  if (mbctl_with_env("", "ping", NULL, NULL) == 3)
    ASSERT_CONTAINS(out, "instance 'default'");
  ASSERT_NOT_CONTAINS(out, other);
  broker_down(&t);
}

#if MB_OS_WIN
#ifndef MB_BROKER_EXE
#error "MB_BROKER_EXE must name the membroker executable (CMake: $<TARGET_FILE:membroker>)"
#endif
#define T_SVC_MS 60000 /* a service starting or stopping under Wine's SCM */

/* The services the hint test created: stopped and deleted at exit, even when it fails. */
static wchar_t hint_svcs[8][64];
static int hint_nsvcs;

static void hint_cleanup(void) {
  int i;
  for (i = 0; i < hint_nsvcs; i++) {
    if (hint_svcs[i][0] == L'\0')
      continue;
    wcscpy(svc_name, hint_svcs[i]);
    delete_service();
    hint_svcs[i][0] = L'\0';
  }
}

/* `sc.exe create NAME binPath= PATH`: 1 if it was created (and is deleted at exit). */
static int hint_create(const char *name, const char *binpath) {
  wchar_t args[4096], wname[64], wpath[3000];
  static int registered;
  if (hint_nsvcs == 8)
    FAIL("more than 8 test services");
  if (!registered++)
    atexit(hint_cleanup);
  widen(name, wname, 64);
  widen(binpath, wpath, 3000);
  _snwprintf(args, 4096, L"create %ls binPath= \"%ls\"", wname,
             wpath); /* sc takes the value whole; \" inside it is a literal quote */
  args[4095] = L'\0';
  if (run_sc(args) != 0)
    return 0;
  wcscpy(hint_svcs[hint_nsvcs++], wname);
  return 1;
}

/* sc.exe stop (when it runs, waiting for STOPPED) and sc.exe delete of every test service. */
static void hint_delete_all(void) {
  SERVICE_STATUS_PROCESS st;
  wchar_t args[128];
  int i;
  for (i = 0; i < hint_nsvcs; i++) {
    if (hint_svcs[i][0] == L'\0')
      continue;
    if (query_status(hint_svcs[i], &st) == 0 && st.dwCurrentState != SERVICE_STOPPED) {
      _snwprintf(args, 128, L"stop %ls", hint_svcs[i]);
      (void)run_sc(args);
      wait_state(hint_svcs[i], SERVICE_STOPPED, &st, T_SVC_MS, "");
    }
    _snwprintf(args, 128, L"delete %ls", hint_svcs[i]);
    ASSERT_EQ(run_sc(args), 0);
    hint_svcs[i][0] = L'\0';
  }
  hint_nsvcs = 0;
}

/* A config for `instance` logging to `log`. bad 1: with an unknown key (a config error the
 * service reports); 2: not even JSON (a missing brace, which mbctl cannot read either). */
static void hint_config(const char *path, const char *instance, const char *log, int bad) {
  mb_config_t cfg;
  char *text;
  fx_config(&cfg, instance);
  fx_region_drop(&cfg, "players");
  fx_log(&cfg, MB_LOG_INFO, log);
  cfg.log_event_log = 0;
  text = fx_config_text(&cfg, bad ? "\"regoins\": []" : NULL);
  if (bad == 2)
    *strrchr(text, '}') = '\0';
  fx_write_text(path, text);
  free(text);
}

/*
 * Five real membroker.exe services, each for its own instance: a and b running, c installed
 * and never started, d and e stopped by a config error (service exit code 2; e's config is not
 * even JSON, so mbctl cannot read its instance either). The hint names the one
 * for the instance asked about, with what to do; for an instance none serves, it lists them
 * all with their instances and states.
 */
static void hint_real_services(void) {
  char exe[1024], dir[600], cfg[5][700], log[5][700], inst[6][32], name[5][32];
  char bin[3000], want[1200], data[600];
  SERVICE_STATUS_PROCESS st;
  wchar_t wname[32], args[128];
  unsigned pid;
  int i;
  mb_os_procid_t self;

  mb_os_proc_self(&self);
  pid = (unsigned)self.pid;
  windows_path(MB_BROKER_EXE, exe, sizeof exe);
  temp_dir(dir, sizeof dir);
  for (i = 0; i < 6; i++)
    snprintf(inst[i], sizeof inst[i], "p%uh%c", pid, 'a' + i);
  for (i = 0; i < 5; i++) {
    snprintf(name[i], sizeof name[i], "mbth%u%c", pid, 'a' + i);
    snprintf(cfg[i], sizeof cfg[i], "%smbt.%u.h%c.json", dir, pid, 'a' + i);
    snprintf(log[i], sizeof log[i], "%smbt.%u.h%c.log", dir, pid, 'a' + i);
    remove(log[i]);
    hint_config(cfg[i], inst[i], log[i], i == 3 ? 1 : i == 4 ? 2 : 0);
    snprintf(bin, sizeof bin, "\\\"%s\\\" service -c \\\"%s\\\" -n %s", exe, cfg[i], name[i]);
    if (!hint_create(name[i], bin))
      FAIL("sc.exe create %s failed", name[i]);
  }
  for (i = 0; i < 5; i++) {
    if (i == 2)
      continue; /* c stays as installed: stopped, never started */
    widen(name[i], wname, 32);
    _snwprintf(args, 128, L"start %ls", wname);
    (void)run_sc(args); /* d may fail at once or after START_PENDING */
    wait_state(wname, i >= 3 ? SERVICE_STOPPED : SERVICE_RUNNING, &st, T_SVC_MS, log[i]);
    if (i < 2 && st.dwCurrentState != SERVICE_RUNNING) {
      dump_log(log[i]);
      FAIL("service %s stopped while starting: exit %lu, service-specific %lu", name[i],
           (unsigned long)st.dwWin32ExitCode, (unsigned long)st.dwServiceSpecificExitCode);
    }
    if (i >= 3 &&
        (st.dwWin32ExitCode != ERROR_SERVICE_SPECIFIC_ERROR || st.dwServiceSpecificExitCode != 2))
      FAIL("service %s: exit %lu, service-specific %lu; wanted 1066 and 2 (config error)", name[i],
           (unsigned long)st.dwWin32ExitCode, (unsigned long)st.dwServiceSpecificExitCode);
  }
  /* They serve what their configs say. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst[0], "ping", NULL), 0, out);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst[1], "ping", NULL), 0, out);

  /* f: no service serves it; all are named with their instances and states, and the one whose
   * config cannot be read with how its last start failed. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst[5], "status", NULL), 3, out);
  printf("%s", out);
  for (i = 0; i < 4; i++) {
    snprintf(want, sizeof want, "%s (instance %s, %s)", name[i], inst[i],
             i < 2 ? "running" : "stopped");
    ASSERT_CONTAINS(out, want);
  }
  snprintf(want, sizeof want, "%s (config %s cannot be read: not valid JSON; stopped)", name[4],
           cfg[4]);
  ASSERT_CONTAINS(out, want);
  snprintf(want, sizeof want,
           "service %s: last start failed with service exit code 2 (config error)", name[4]);
  ASSERT_CONTAINS(out, want);
  snprintf(want, sizeof want, "none is for instance '%s'", inst[5]);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "membroker install --name NAME -c CONFIG");
  ASSERT_NOT_CONTAINS(out, "sc.exe start mbth");
  ASSERT_NOT_CONTAINS(out, "`sc start");

  /* c: stopped, never started: start it. No other service is named. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst[2], "status", NULL), 3, out);
  printf("%s", out);
  snprintf(want, sizeof want, "start it with `sc.exe start %s`", name[2]);
  ASSERT_CONTAINS(out, want);
  ASSERT_NOT_CONTAINS(out, name[0]);
  ASSERT_NOT_CONTAINS(out, name[1]);
  ASSERT_NOT_CONTAINS(out, name[3]);
  ASSERT_NOT_CONTAINS(out, name[4]);
  ASSERT_NOT_CONTAINS(out, "last start failed");

  /* d: its last start failed with a config error, logged under the service's name. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst[3], "status", NULL), 3, out);
  printf("%s", out);
  snprintf(want, sizeof want, "start it with `sc.exe start %s`", name[3]);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "its last start failed with service exit code 2 (config error)");
  ASSERT_OK(mb_os_data_dir(data, sizeof data));
  snprintf(want, sizeof want, "see %s\\%s.log", data, name[3]);
  ASSERT_CONTAINS(out, want);
  snprintf(want, sizeof want, "%s\\%s.log", data, name[3]);
  if (!file_contains(want, "regoins"))
    FAIL("the log the hint names, %s, does not say what was wrong", want);
  ASSERT_NOT_CONTAINS(out, name[0]);

  hint_delete_all();
  for (i = 0; i < 5; i++) {
    remove(cfg[i]);
    remove(log[i]);
  }
}
#endif

/*
 * "Not running" says how to start the broker with this OS's service manager. Linux: the
 * systemd unit (systemctl), never sc. Windows: the installed services whose program is
 * membroker.exe - quoted path or not, any case, with arguments - and none other, each with the
 * instance its config (-c) names; the one for the instance asked about with `sc.exe start
 * NAME` and why its last start failed (hint_real_services).
 */
TEST(not_running_hint_names_the_service_manager) {
  char inst[64];
  mb_os_procid_t self;
  mb_os_proc_self(&self);
  snprintf(inst, sizeof inst, "p%unosvc", (unsigned)self.pid);
  if (mb_os_service_manager() == MB_OS_SVCMGR_SYSTEMD) {
    ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst, "status", NULL), 3, out);
    ASSERT_CONTAINS(out, "systemctl start membroker");
    ASSERT_CONTAINS(out, "membroker run -c FILE");
    ASSERT_NOT_CONTAINS(out, "sc start");
    ASSERT_NOT_CONTAINS(out, "sc.exe");
    ASSERT_NOT_CONTAINS(out, "`sc ");
    return;
  }
#if MB_OS_WIN
  {
    /* Four services (created, never started): two run membroker.exe, two only look alike.
     * The first's -c is unquoted with a blank: its config is "C:\mb", which cannot be read;
     * the second has no -c: the built-in defaults, instance "default". */
    static const char *const paths[4] = {
        "C:\\Program Files\\mb test\\MemBroker.EXE service -c C:\\mb test\\membroker.json",
        "\\\"C:\\mb dir\\membroker.exe\\\" service -n x",
        "C:\\mb\\membroker.exe.bak service",
        "C:\\mb\\notmembroker.exe service",
    };
    char names[4][64], want[256];
    int i, code;
    for (i = 0; i < 4; i++) {
      snprintf(names[i], sizeof names[i], "mbt%u%c", (unsigned)self.pid, 'a' + i);
      if (!hint_create(names[i], paths[i]))
        FAIL("sc create %s binPath= %s failed", names[i], paths[i]);
    }
    code = MBCTL(out, sizeof out, "--instance", inst, "status", NULL);
    hint_delete_all();
    ASSERT_EXIT(code, 3, out);
    printf("%s", out);
    snprintf(want, sizeof want, "%s (config C:\\mb cannot be read", names[0]);
    ASSERT_CONTAINS(out, want);
    snprintf(want, sizeof want, "%s (instance default, stopped)", names[1]);
    ASSERT_CONTAINS(out, want);
    snprintf(want, sizeof want, "none is for instance '%s'", inst);
    ASSERT_CONTAINS(out, want);
    ASSERT_NOT_CONTAINS(out, names[2]);
    ASSERT_NOT_CONTAINS(out, names[3]);
    ASSERT_NOT_CONTAINS(out, "`sc start");
    ASSERT_CONTAINS(out, "membroker run -c FILE");
    ASSERT_NOT_CONTAINS(out, "systemctl");
    /* Without them: whatever else is installed, and how to install one. */
    ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", inst, "status", NULL), 3, out);
    ASSERT_CONTAINS(out, "membroker install");
    ASSERT_NOT_CONTAINS(out, names[0]);
  }
  hint_real_services();
#else
  FAIL("no service manager this test knows");
#endif
}

/* The commands of common/commands.def: name and one-line help. */
#define MB_ARG(name, type, req, cli, values)
#define MB_CMD(name, handler, admin, args, help) {name, help},
static const struct {
  const char *name, *help;
} def_cmds[] = {
#include "commands.def"
};
#undef MB_CMD
#undef MB_ARG

/* mbctl's usage lists every command of commands.def, each at the start of its line. */
TEST(usage_lists_every_command) {
  char want[80], want_nl[80];
  size_t i;
  ASSERT_EXIT(MBCTL(out, sizeof out, "--help", NULL), 0, out);
  for (i = 0; i < sizeof def_cmds / sizeof def_cmds[0]; i++) {
    snprintf(want, sizeof want, "\n  %s ", def_cmds[i].name);
    snprintf(want_nl, sizeof want_nl, "\n  %s\n", def_cmds[i].name);
    if (strstr(out, want) == NULL && strstr(out, want_nl) == NULL)
      FAIL("mbctl --help does not list '%s':\n%s", def_cmds[i].name, out);
  }
}

/* mbctl help: the commands with their one-line help; help COMMAND: one command and its
 * arguments - from mbctl's own table, so no broker is needed (none runs for this instance);
 * --json gives the broker's help object; an unknown one is a usage error with the closest
 * name. */
TEST(help_command) {
  size_t i;
  cJSON *j;
  const char *none = "p0nohelpbroker";
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", none, "help", NULL), 0, out);
  for (i = 0; i < sizeof def_cmds / sizeof def_cmds[0]; i++) {
    ASSERT_CONTAINS(out, def_cmds[i].name);
    ASSERT_CONTAINS(out, def_cmds[i].help);
  }
  ASSERT_CONTAINS(out, "\n  map-load NAME PATH ");
  ASSERT_CONTAINS(out, "\n  instances ");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", none, "help", "set-counter", NULL), 0, out);
  ASSERT_CONTAINS(out, "set-counter players|npcs N");
  ASSERT_CONTAINS(out, "arguments:\n");
  ASSERT_CONTAINS(out, "  counter ");
  ASSERT_CONTAINS(out, "0..1000000000000000");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", none, "help", "evict", NULL), 0, out);
  ASSERT_CONTAINS(out, "evict CLIENT   (administrators only)\n");
  ASSERT_NOT_CONTAINS(out, "not running");
  /* --json: the object the broker's help gives for one command, the array for all. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", none, "--json", "help", "player", NULL), 0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "name"), "player");
  ASSERT(cJSON_IsFalse(jget(j, "admin")));
  ASSERT_EQ(cJSON_GetArraySize(jget(j, "args")), 2);
  ASSERT_STR_EQ(cJSON_GetArrayItem(jget(j, "args"), 0)->valuestring, "player");
  cJSON_Delete(j);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--json", "help", "instances", NULL), 0, out);
  j = parse_json(out);
  ASSERT_STR_EQ(jstr(j, "name"), "instances");
  cJSON_Delete(j);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--json", "help", NULL), 0, out);
  j = cJSON_Parse(out);
  if (!cJSON_IsArray(j) ||
      cJSON_GetArraySize(j) != (int)(sizeof def_cmds / sizeof def_cmds[0]) + 1 /* instances */)
    FAIL("help --json is not the array of every command:\n%s", out);
  cJSON_Delete(j);
  ASSERT_EXIT(MBCTL(out, sizeof out, "help", "stauts", NULL), 2, out);
  ASSERT_STR_EQ(out, "mbctl: help: no command 'stauts'; did you mean 'status'?\n"
                     "run 'mbctl --help' for the commands\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "help", "fly", NULL), 2, out);
  ASSERT_CONTAINS(out, "mbctl: help: no command 'fly'\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "help", "a", "b", NULL), 2, out);
  ASSERT_CONTAINS(out, "help takes at most one argument");
}

/* ---- operators' verbs: did you mean, instances, player, evict, save, shutdown --wait ------- */

/* An unknown command is a usage error (exit 2) before any connection, with the closest name
 * when one is a likely typo; the words after it are not what is complained of. */
TEST(unknown_command_did_you_mean) {
  ASSERT_EXIT(MBCTL(out, sizeof out, "stauts", NULL), 2, out);
  ASSERT_CONTAINS(out, "mbctl: unknown command 'stauts'; did you mean 'status'?\n");
  ASSERT_NOT_CONTAINS(out, "takes no arguments");
  ASSERT_EXIT(MBCTL(out, sizeof out, "stauts", "server", NULL), 2, out);
  ASSERT_CONTAINS(out, "mbctl: unknown command 'stauts'; did you mean 'status'?\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "shutdwon", NULL), 2, out);
  ASSERT_CONTAINS(out, "did you mean 'shutdown'?");
  ASSERT_EXIT(MBCTL(out, sizeof out, "instance", NULL), 2, out); /* mbctl's own commands too */
  ASSERT_CONTAINS(out, "did you mean 'instances'?");
  ASSERT_EXIT(MBCTL(out, sizeof out, "STATUS", NULL), 2, out); /* case: a Windows habit */
  ASSERT_CONTAINS(out, "mbctl: unknown command 'STATUS'; did you mean 'status'?\n");
  ASSERT_EXIT(MBCTL(out, sizeof out, "Shutdwon", NULL), 2, out);
  ASSERT_CONTAINS(out, "did you mean 'shutdown'?");
  ASSERT_EXIT(MBCTL(out, sizeof out, "xyzzyplugh", NULL), 2, out);
  ASSERT_CONTAINS(out, "mbctl: unknown command 'xyzzyplugh'\n");
  ASSERT_NOT_CONTAINS(out, "did you mean");
  /* Options of one command given to another. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--wait", NULL), 2, out);
  ASSERT_CONTAINS(out, "--wait is an option of shutdown");
  ASSERT_EXIT(MBCTL(out, sizeof out, "status", "--bytes", "4", NULL), 2, out);
  ASSERT_CONTAINS(out, "--bytes is an option of player");
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", "1", "--bytes", "-4", NULL), 2, out);
  ASSERT_CONTAINS(out, "--bytes needs a whole number from 0 to 65536, got '-4'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", "1", "--bytes", "65537", NULL), 2, out);
  ASSERT_CONTAINS(out, "got '65537'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", "one", NULL), 2, out);
  ASSERT_CONTAINS(out, "player: 'one' is not a whole number");
  ASSERT_EXIT(MBCTL(out, sizeof out, "player", NULL), 2, out);
  ASSERT_CONTAINS(out, "player needs one argument: ID");
  ASSERT_EXIT(MBCTL(out, sizeof out, "evict", NULL), 2, out);
  ASSERT_CONTAINS(out, "evict needs one argument: CLIENT");
  ASSERT_EXIT(MBCTL(out, sizeof out, "instances", "extra", NULL), 2, out);
  ASSERT_CONTAINS(out, "'instances' takes no arguments");
  /* help for mbctl's own command needs no broker. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", "p0nosuchbroker", "help", "instances", NULL), 0,
              out);
  ASSERT_CONTAINS(out, "instances\n  the brokers on this host");
}

/* The row of `instance` in mbctl instances --json's array, or NULL. */
static const cJSON *instance_row(const cJSON *arr, const char *instance) {
  const cJSON *o;
  cJSON_ArrayForEach(o, arr) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "instance");
    if (cJSON_IsString(n) && strcmp(n->valuestring, instance) == 0)
      return o;
  }
  return NULL;
}

/* instances: a running broker child is listed with its pid, running, its pipe and state
 * object; once it has stopped it is not; a socket file a dead broker left (POSIX) is stale. */
TEST(instances_lists_the_brokers) {
  tbroker_t t = {0};
  char want[512], obj[MB_OS_NAME_MAX + 1];
  const cJSON *row;
  cJSON *j;
  broker_up(&t, "inst");
  ASSERT_EXIT(MBCTL(out, sizeof out, "instances", NULL), 0, out);
  ASSERT_CONTAINS(out, "INSTANCE ");
  snprintf(want, sizeof want, "\n%-20s %8u  running   %-40s  ", t.instance, (unsigned)t.child.pid,
           t.pipe);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--json", "instances", NULL), 0, out);
  j = cJSON_Parse(out);
  if (!cJSON_IsArray(j))
    FAIL("instances --json is not an array:\n%s", out);
  if ((row = instance_row(j, t.instance)) == NULL)
    FAIL("instances --json does not list '%s':\n%s", t.instance, out);
  ASSERT_EQ(jnum(row, "pid"), t.child.pid);
  ASSERT_STR_EQ(jstr(row, "state"), "running");
  ASSERT_STR_EQ(jstr(row, "pipe"), t.pipe);
  /* (null: Wine 8 does not list \\.\pipe\; the lock named the instance) */
  ASSERT(cJSON_IsTrue(jget(row, "pipe_found")) ||
         (MB_OS_WIN && cJSON_IsNull(jget(row, "pipe_found"))));
  ASSERT(cJSON_IsTrue(jget(row, "state_found")));
  ASSERT_OK(mb__object_name(obj, sizeof obj, t.instance, NULL));
  ASSERT_CONTAINS(jstr(row, "state_object"), obj);
  cJSON_Delete(j);
  broker_down(&t);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--json", "instances", NULL), 0, out);
  j = cJSON_Parse(out);
  ASSERT(cJSON_IsArray(j));
  if (instance_row(j, t.instance) != NULL)
    FAIL("instances still lists '%s' after its broker stopped:\n%s", t.instance, out);
  cJSON_Delete(j);
  /* Nothing listed: one line says so (only when this host has no broker at all). */
  ASSERT_EXIT(MBCTL(out, sizeof out, "instances", NULL), 0, out);
  if (strstr(out, "INSTANCE ") == NULL)
    ASSERT_STR_EQ(out, "no membroker instances on this host\n");
#if MB_OS_POSIX
  {
    /* A socket file left by a dead broker: stale, no pid. */
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(t.pipe) >= sizeof sa.sun_path)
      FAIL("socket path too long: %s", t.pipe);
    memcpy(sa.sun_path, t.pipe, strlen(t.pipe) + 1);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    ASSERT_EXIT(MBCTL(out, sizeof out, "instances", NULL), 0, out);
    remove(t.pipe);
    snprintf(want, sizeof want, "\n%-20s %8s  stale     %-40s  ", t.instance, "-", t.pipe);
    ASSERT_CONTAINS(out, want);
  }
#endif
}

/* player, evict, save through mbctl against a broker child, with this process as a game
 * server: the hex dump, the refusal of a live client, the eviction of a closed one, the
 * errors' messages and exit codes. */
TEST(player_evict_save) {
  tbroker_t t = {0};
  mb_client_t *live, *closed;
  mb_os_procid_t self;
  unsigned char *slot;
  char want[200];
  mb_os_proc_self(&self);
  broker_up(&t, "pes");
  ASSERT_OK(mb_attach(t.instance, "zone-8", NULL, &live));
  ASSERT_OK(mb_attach(t.instance, "zone-9", NULL, &closed));
  ASSERT_OK(mb_player_connect(live, 42, (void **)&slot));
  memcpy(slot, "*hello, operator", 16);
  ASSERT_OK(mb_player_connect(closed, 43, (void **)&slot));
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "player", "42", "--bytes", "20", NULL), 0,
      out);
  ASSERT_CONTAINS(out, "player      42\n");
  ASSERT_CONTAINS(out, "slot        0 of region 'players' (offset 0, 1024 bytes)\n");
  snprintf(want, sizeof want, "held by     client 0 'zone-8' (pid %u, attached)\n",
           (unsigned)self.pid);
  ASSERT_CONTAINS(out, want);
  ASSERT_CONTAINS(out, "bytes       the first 20 of 1024\n");
  ASSERT_CONTAINS(out, "00000000  2a 68 65 6c 6c 6f 2c 20  6f 70 65 72 61 74 6f 72  "
                       "|*hello, operator|\n");
  ASSERT_CONTAINS(out, "00000010  00 00 00 00");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "player", "44", NULL), 1, out);
  ASSERT_CONTAINS(out, "player failed: not_found: no slot holds player 44");
  /* A SteamID64: past 2^53, looked up exactly (sent as a decimal string). */
  ASSERT_OK(mb_player_connect(live, 76561197960287930ull, (void **)&slot));
  memcpy(slot, "steam", 5);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "player", "76561197960287930",
                    "--bytes", "5", NULL),
              0, out);
  ASSERT_CONTAINS(out, "player      76561197960287930\n");
  ASSERT_CONTAINS(out, "|steam|");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "--json", "player",
                    "76561197960287930", NULL),
              0, out);
  ASSERT_CONTAINS(out, "\"player\":\t\"76561197960287930\"");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "player", "76561197960287931", NULL),
              1, out);
  ASSERT_CONTAINS(out, "no slot holds player 76561197960287931");

  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "zone-8", NULL), 1, out);
  snprintf(want, sizeof want, "evict failed: busy: client 'zone-8' (pid %u) is alive",
           (unsigned)self.pid);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "--index", "0", NULL), 1,
              out);
  ASSERT_CONTAINS(out, want); /* index 0 is zone-8 */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "nobody", NULL), 1, out);
  ASSERT_CONTAINS(out, "evict failed: not_found: no client named 'nobody'");
  /* A bare number is a name; the index as typed when it is out of range. */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "0", NULL), 1, out);
  ASSERT_CONTAINS(out, "evict failed: not_found: no client named '0'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "-1", NULL), 1, out);
  ASSERT_EQ(count_lines(out), 1);
  ASSERT_CONTAINS(out, "evict failed: not_found: no client named '-1'");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "--index",
                    "99999999999999999999", NULL),
              1, out);
  ASSERT_CONTAINS(out, "evict failed: not_found: no client index 99999999999999999999: the table "
                       "has ");
  ASSERT_OK(mb_close(closed)); /* DEAD, closed: kept for the grace period */
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "evict", "zone-9", NULL), 0, out);
  snprintf(want, sizeof want,
           "evicted client 1 'zone-9' (pid %u, dead: closed): 1 slot and 0 pool objects freed\n",
           (unsigned)self.pid);
  ASSERT_CONTAINS(out, want);
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "player", "43", NULL), 1, out);
  ASSERT_CONTAINS(out, "no slot holds player 43");

  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "save", NULL), 1, out);
  ASSERT_CONTAINS(out, "save failed: not_supported: persistence is off: set persist.dir");
  ASSERT_OK(mb_detach(live));
  broker_down(&t);
}

/* shutdown --wait returns once the broker's process has exited, and says so. */
TEST(shutdown_wait) {
  tbroker_t t = {0};
  char want[128];
  int code = -1;
  broker_up(&t, "swait");
  ASSERT_EXIT(MBCTL(out, sizeof out, "--instance", t.instance, "shutdown", "--wait", NULL), 0, out);
  ASSERT_CONTAINS(out, "is stopping\n");
  snprintf(want, sizeof want, "membroker '%s' has stopped (pid %u exited after ", t.instance,
           (unsigned)t.child.pid);
  ASSERT_CONTAINS(out, want);
  /* Gone already: the wait for it ends at once. */
  ASSERT_OK(mb_os_child_wait(&t.child, 0, &code));
  ASSERT_EQ(code, 0);
  /* With --json stdout is the answer alone (the exit code says it has stopped). */
  memset(&t, 0, sizeof t);
  broker_up(&t, "swaitj");
  ASSERT_EXIT(
      MBCTL(out, sizeof out, "--instance", t.instance, "--json", "shutdown", "--wait", NULL), 0,
      out);
  snprintf(want, sizeof want, "\"pid\":\t%u", (unsigned)t.child.pid);
  ASSERT_CONTAINS(out, want);
  ASSERT_NOT_CONTAINS(out, "has stopped");
  ASSERT_OK(mb_os_child_wait(&t.child, 0, &code));
  ASSERT_EQ(code, 0);
}
