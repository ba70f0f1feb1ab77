/*
 * commands.h - the types of the one command table, common/commands.def.
 *
 * commands.def lists every command of the control pipe once: its name, its handler in the
 * broker, whether it needs an administrator, its arguments and a one-line help. The broker's
 * dispatcher (service/protocol.c) builds its table from it, and so does mbctl
 * (client/mbctl/mbctl.c) for its usage, for building a request from argv and for `help`; a
 * test checks README's command table against it. Adding a command is one .def line and its
 * handler (and, if it wants one, a printer in mbctl).
 *
 * A file that includes commands.def defines MB_CMD and MB_ARG first (MB_CMD_NOARGS is here):
 *
 *   MB_CMD(name, handler, admin, args, help)
 *     name     the command, a string ("map-load")
 *     handler  the broker's function, int mb__cmd_X(mb_ctl_call_t *); mbctl ignores it
 *     admin    1: mutates the broker, administrators only
 *     args     MB_ARG(...) MB_ARG(...) (no commas between them), or MB_CMD_NOARGS
 *     help     one line for usage and help
 *   MB_ARG(name, type, required, cli, values)
 *     name     the JSON member of "args"
 *     type     STRING, UNSIGNED, INT, ENUM (a string, one of values), LIST (an array of
 *              strings: mbctl takes the rest of argv), TEXT (a string: mbctl joins the rest of
 *              argv with spaces)
 *     required REQ or OPT
 *     cli      how mbctl takes it: a metavar ("NAME") for the next positional word, in the
 *              order of the list, or an option of mbctl ("--interval")
 *     values   ENUM and LIST: the choices, '|'-separated; UNSIGNED and INT: "LO..HI" (mbctl
 *              refuses a positional number outside it); NULL otherwise
 *
 * The broker checks what its handlers check (types, ranges, choices); mbctl only checks what
 * it must to build the request (arity, numbers), so a broker's answer stays the authority.
 */
#ifndef MB_COMMANDS_H
#define MB_COMMANDS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mb_cmd_arg_type {
  MB_CMD_ARG_STRING,
  MB_CMD_ARG_UNSIGNED,
  MB_CMD_ARG_INT,
  MB_CMD_ARG_ENUM,
  MB_CMD_ARG_LIST,
  MB_CMD_ARG_TEXT
} mb_cmd_arg_type_t;

enum { MB_CMD_OPT = 0, MB_CMD_REQ = 1 };

/* One argument of a command (see MB_ARG above); a list of them ends with name == NULL. */
typedef struct mb_cmd_arg_s {
  const char *name;
  mb_cmd_arg_type_t type;
  int required;
  const char *cli;
  const char *values;
} mb_cmd_arg_t;

/* The usual expansion of MB_ARG into an mb_cmd_arg_t initializer (followed by a comma). */
#define MB_CMD_ARG_INIT(name, type, req, cli, values)                                              \
  {name, MB_CMD_ARG_##type, MB_CMD_##req, cli, values},

/* An argument list, as a pointer to a static array ending with {NULL}: MB_CMD_ARGS(args),
 * where args is the .def's MB_ARG sequence and MB_ARG is MB_CMD_ARG_INIT (its commas are
 * there once args is expanded, hence the variadic macro). */
#define MB_CMD_ARGS(...)                                                                           \
  (const mb_cmd_arg_t[]) {                                                                         \
    __VA_ARGS__{NULL, MB_CMD_ARG_STRING, 0, NULL, NULL},                                           \
  }

#define MB_CMD_NOARGS

/* "LO..HI", the values of an UNSIGNED or INT argument, from two macros of whole numbers. */
#define MB__CMD_STR(x) #x
#define MB_CMD_RANGE(lo, hi) MB__CMD_STR(lo) ".." MB__CMD_STR(hi)

/* watch's interval_ms: its range (commands.def) and its default, for the broker's handler and
 * mbctl's usage alike. Plain numbers: MB_CMD_RANGE spells them. */
#define MB_CTL_WATCH_MIN_MS 50
#define MB_CTL_WATCH_MAX_MS 60000
#define MB_CTL_WATCH_DEFAULT_MS 1000

/* player's bytes: how many of the slot's first bytes its answer shows as hex, at most and by
 * default (a slot is bigger or smaller: the answer shows min(slot size, bytes)). */
#define MB_CTL_PLAYER_BYTES_MAX 65536
#define MB_CTL_PLAYER_BYTES_DEFAULT 256

#ifdef __cplusplus
}
#endif

#endif /* MB_COMMANDS_H */
