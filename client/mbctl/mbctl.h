/*
 * mbctl.h - what the files of mbctl share: its command table (from common/commands.def),
 * the printers (show.c) and the not-running hint (hint.c). Internal to the mbctl program.
 */
#ifndef MBCTL_H
#define MBCTL_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "layout.h"
#include "os.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_RUNNING = 3 };

/* One command as mbctl knows it (a commands.def line without its handler). */
typedef struct mbctl_cmd_s {
  const char *name;
  int admin;
  const mb_cmd_arg_t *args; /* ends with name == NULL */
  const char *help;
} mbctl_cmd_t;

/* The command of that name, or NULL. */
const mbctl_cmd_t *mbctl_command(const char *name);

/* "map-load NAME PATH", "status [SECTION...]": the command and its positional arguments as
 * typed (options like watch's --interval are left out), into buf. */
const char *mbctl_synopsis(const mbctl_cmd_t *c, char *buf, size_t size);

/* "string", "unsigned", ...: an argument type for help. */
const char *mbctl_arg_type_name(mb_cmd_arg_type_t type);

/* show.c: a successful result for humans (print_json when the command has no printer), a
 * JSON value as is, one watch event as a line. */
void print_result(const char *cmd, const cJSON *res, const char *instance);
void print_json(const cJSON *v);
void print_watch_line(const cJSON *res);

/* show.c: text from the broker made safe for a terminal: control characters (C0, DEL, C1) and
 * bytes that are not valid UTF-8 escaped as \n, \r, \t, \xNN, \u00NN. Every text printer uses
 * it (JSON output does not: it stays exact). Returns one of 16 rotating static buffers; text
 * longer than MBCTL_TEXT_MAX - 4 bytes once escaped is cut and ends in "...". */
#define MBCTL_TEXT_MAX 16384
const char *mbctl_text(const char *s);

/* local.c: `instances` - the brokers of this host (instance, pid, running or stale, pipe, state
 * object), as a table or (json) a JSON array; EXIT_OK, also when there are none. */
int mbctl_instances(int json);

/* local.c: after `shutdown` answered `res` ({"pid", "start_time"}), wait until that process
 * has exited (or, from a broker that does not name it, until its pipe is gone), timeout_ms at
 * most: EXIT_OK with a line saying so (none when quiet: --json, whose stdout is the answer),
 * EXIT_FAILED with a message on stderr on timeout. */
int mbctl_wait_exit(const cJSON *res, const char *instance, const char *pipe, int timeout_ms,
                    int quiet);

/* local.c: the name among names[0..n) that `word` is most likely a typo of (a small edit
 * distance; case is ignored: STATUS is status), or NULL if none is close. */
const char *mbctl_did_you_mean(const char *word, const char *const *names, size_t n);

/* hint.c: after "membroker is not running for instance X", how to start it. */
void print_start_hint(FILE *fp, const char *instance);

#endif /* MBCTL_H */
