/*
 * mbctl.c - the operator CLI: one request over the control pipe, the answer as a readable
 * overview (default) or as JSON (--json, for scripts). This file: the options, the command
 * table (common/commands.def) with usage and the building of a request from argv, the
 * exchange with the broker and the watch stream; show.c prints results, hint.c says how to
 * start a broker that is not running.
 *
 *   mbctl [--instance NAME] [--json] [--timeout MS] COMMAND [ARGS]
 *   (the instance is --instance, else $MEMBROKER_INSTANCE, else "default")
 *   mbctl watch [--interval MS] [--count N] [SECTION...]   a live view, one line per event
 *   mbctl help [COMMAND]                                     the commands (mbctl's own table)
 *   mbctl instances                                          the brokers of this host (local.c)
 *   mbctl shutdown --wait [--timeout MS]                     stop, and wait for the exit
 *
 * A command neither commands.def nor mbctl itself knows is a usage error with the closest
 * name ("did you mean"), never sent: mbctl and the broker ship together.
 *
 * Exit codes: 0 ok, 1 the command failed (error code and message printed), 2 usage,
 * 3 the broker is not running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mbctl.h"

/* shutdown --wait without --timeout: how long the broker may take to save and stop. */
#define WAIT_DEFAULT_MS 60000

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif

/* ---- the command table ------------------------------------------------------------------- */

#define MB_ARG MB_CMD_ARG_INIT
#define MB_CMD(name, handler, admin, args, help) {name, admin, MB_CMD_ARGS(args), help},
static const mbctl_cmd_t commands[] = {
#include "commands.def"
};
#undef MB_CMD
#undef MB_ARG

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The commands mbctl runs itself, without a broker (local.c); listed in its usage. */
static const struct {
  const char *name, *synopsis, *help;
} local_cmds[] = {
    {"instances", "instances",
     "the brokers on this host: instance, pid, running or stale, pipe, state object (no broker "
     "needed)"},
};
#define NLOCAL (sizeof local_cmds / sizeof local_cmds[0])

const mbctl_cmd_t *mbctl_command(const char *name) {
  size_t i;
  for (i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

const char *mbctl_arg_type_name(mb_cmd_arg_type_t type) {
  switch (type) {
  case MB_CMD_ARG_STRING:
    return "string";
  case MB_CMD_ARG_UNSIGNED:
    return "whole number";
  case MB_CMD_ARG_INT:
    return "integer";
  case MB_CMD_ARG_ENUM:
    return "one of";
  case MB_CMD_ARG_LIST:
    return "list of strings";
  case MB_CMD_ARG_TEXT:
    return "text";
  }
  return "?";
}

/* 1 if the argument is taken from a positional word (not from an option of mbctl). */
static int positional(const mb_cmd_arg_t *a) {
  return strncmp(a->cli, "--", 2) != 0;
}

/* How a positional argument is shown: NAME, [CLIENT], [SECTION...], running|draining. */
static const char *arg_synopsis(const mb_cmd_arg_t *a, char *buf, size_t size) {
  const char *what = a->type == MB_CMD_ARG_ENUM && a->values ? a->values : a->cli;
  const char *more = a->type == MB_CMD_ARG_LIST ? "..." : "";
  if (a->required)
    snprintf(buf, size, "%s%s", what, more);
  else
    snprintf(buf, size, "[%s%s]", what, more);
  return buf;
}

const char *mbctl_synopsis(const mbctl_cmd_t *c, char *buf, size_t size) {
  const mb_cmd_arg_t *a;
  char one[96];
  size_t at = (size_t)snprintf(buf, size, "%s", c->name);
  for (a = c->args; a->name && at < size; a++)
    if (positional(a))
      at += (size_t)snprintf(buf + at, size - at, " %s", arg_synopsis(a, one, sizeof one));
  return buf;
}

/* "  synopsis                     help (admin)", the help wrapped at 100 columns. */
static void usage_line(FILE *fp, const mbctl_cmd_t *c) {
  char syn[160], text[320];
  const char *p = text;
  int col = 31;
  snprintf(text, sizeof text, "%s%s", c->help, c->admin ? " (admin)" : "");
  fprintf(fp, "  %-28s", mbctl_synopsis(c, syn, sizeof syn));
  if (strlen(syn) > 28)
    fprintf(fp, "\n%31s", "");
  else
    fprintf(fp, " ");
  while (*p) {
    size_t n = strcspn(p, " ");
    if (col > 31 && col + 1 + (int)n > 100) {
      fprintf(fp, "\n%31s", "");
      col = 31;
    } else if (col > 31) {
      fputc(' ', fp);
      col++;
    }
    fprintf(fp, "%.*s", (int)n, p);
    col += (int)n;
    p += n;
    while (*p == ' ')
      p++;
  }
  fputc('\n', fp);
}

static const mb_cmd_arg_t no_local_args[] = {{NULL, MB_CMD_ARG_STRING, 0, NULL, NULL}};

static void usage(FILE *fp) {
  size_t i;
  fprintf(fp, "usage: mbctl [--instance NAME] [--json] [--timeout MS] [--] COMMAND [ARGS]\n"
              "       (options may also follow the command; -- ends them)\n"
              "\n"
              "commands:\n");
  for (i = 0; i < NCOMMANDS; i++)
    usage_line(fp, &commands[i]);
  for (i = 0; i < NLOCAL; i++) {
    mbctl_cmd_t local = {local_cmds[i].name, 0, no_local_args, local_cmds[i].help};
    usage_line(fp, &local);
  }
  fprintf(fp,
          "\n"
          "options:\n"
          "  --instance NAME  broker instance (default: $MEMBROKER_INSTANCE if set, else\n"
          "                   default)\n"
          "  --json           print the result as JSON\n"
          "  --timeout MS     how long to wait for the answer (default 10000)\n"
          "  --interval MS    watch: time between lines, %s (default %d)\n"
          "  --count N        watch: stop after N lines\n"
          "  --openmetrics    metrics: OpenMetrics 1.0.0 instead of Prometheus text 0.0.4\n"
          "  --textfile DIR   metrics: write DIR/membroker_<instance>.prom atomically for a\n"
          "                   textfile collector (membroker_up 0 when no answer comes)\n"
          "                   (watch --json prints the raw event lines)\n"
          "  --bytes N        player: how many of the slot's bytes to show, %s (default %d)\n"
          "  --index N        evict: the client at INDEX N of `clients` (a bare CLIENT is\n"
          "                   always a name, also one of digits only)\n"
          "  --wait           shutdown: wait until the broker's process has exited, --timeout\n"
          "                   MS at most (default %d); exit 1 if it has not\n"
          "\n"
          "exit codes: 0 ok, 1 command failed, 2 usage, 3 broker not running\n"
          "\n"
          "environment:\n"
          "  MEMBROKER_INSTANCE     the instance when --instance is not given\n"
          "  MEMBROKER_RUNTIME_DIR  where the broker's socket is (Linux; as the broker's)\n",
          MB_CMD_RANGE(MB_CTL_WATCH_MIN_MS, MB_CTL_WATCH_MAX_MS), MB_CTL_WATCH_DEFAULT_MS,
          MB_CMD_RANGE(0, MB_CTL_PLAYER_BYTES_MAX), MB_CTL_PLAYER_BYTES_DEFAULT, WAIT_DEFAULT_MS);
}

/* The values of mbctl's options that become arguments of a request (commands.def's cli
 * "--interval", "--openmetrics", "--bytes"); 0 / -1 when not given. */
typedef struct {
  long interval_ms;
  int openmetrics;
  long bytes; /* -1: not given */
} req_opts_t;

static const char *jstr(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? mbctl_text(v->valuestring) : "-";
}

/*
 * The watch stream after the broker's ok: print each event (raw with --json) until `count`
 * events (0: no limit) or the broker ends the stream. EXIT_OK when it did (or count was
 * reached), EXIT_FAILED when an event is overdue (interval + timeout) or unreadable.
 */
static int run_watch(mb_pipe_conn_t *conn, int json, long count, long interval_ms, int timeout_ms) {
  long seen = 0;
  char *line;
  size_t len;
  int rc;
  while (count <= 0 || seen < count) {
    cJSON *ev;
    const cJSON *res;
    rc = mb__pipe_read_line(conn, &line, &len, 64u << 20,
                            mb_os_mono_ns() + (uint64_t)(interval_ms + timeout_ms) * 1000000u);
    if (rc == MB_EIO) {
      printf("broker stopped\n");
      fflush(stdout);
      return EXIT_OK;
    }
    if (rc != 0) {
      fprintf(stderr, "mbctl: watch: %s\n", mb_last_error());
      return EXIT_FAILED;
    }
    ev = cJSON_Parse(line);
    res = cJSON_GetObjectItemCaseSensitive(ev, "result");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ev, "event")) || !cJSON_IsObject(res)) {
      cJSON_Delete(ev);
      fprintf(stderr, "mbctl: watch: the broker sent a line that is not a status event\n");
      return EXIT_FAILED;
    }
    if (json)
      printf("%s\n", line);
    else
      print_watch_line(res);
    fflush(stdout);
    cJSON_Delete(ev);
    seen++;
  }
  return EXIT_OK;
}

/* ---- request ----------------------------------------------------------------------------- */

static const char *const counts[] = {"no", "one", "two", "three", "four"};

/* "one argument", "two arguments" */
static const char *n_arguments(int n, char *buf, size_t size) {
  if (n >= 0 && n < (int)(sizeof counts / sizeof counts[0]))
    snprintf(buf, size, "%s argument%s", counts[n], n == 1 ? "" : "s");
  else
    snprintf(buf, size, "%d arguments", n);
  return buf;
}

/*
 * The number in `word` for argument `a` (UNSIGNED or INT, within its "LO..HI" values) added to
 * `obj` as a JSON number, or as a decimal string when it passes 2^53 (a double would round
 * it: a SteamID64 player id); -1 with a one-line usage message when it is not one.
 */
static int add_number(cJSON *obj, const char *cmd, const mb_cmd_arg_t *a, const char *word) {
  char *end = NULL;
  if (a->type == MB_CMD_ARG_UNSIGNED) {
    unsigned long long lo = 0, hi = 9007199254740991ull, v;
    if (a->values != NULL)
      sscanf(a->values, "%llu..%llu", &lo, &hi);
    errno = 0;
    v = strtoull(word, &end, 10);
    if (word[0] < '0' || word[0] > '9' || *end != '\0' || errno != 0 || v < lo || v > hi) {
      fprintf(stderr, "mbctl: %s: '%s' is not a whole number from %llu to %llu\n", cmd,
              mbctl_text(word), lo, hi);
      return -1;
    }
    if (v <= 9007199254740992ull)
      cJSON_AddNumberToObject(obj, a->name, (double)v);
    else
      cJSON_AddStringToObject(obj, a->name, word);
    return 0;
  } else {
    long long lo = -9007199254740991ll, hi = 9007199254740991ll, v;
    if (a->values != NULL)
      sscanf(a->values, "%lld..%lld", &lo, &hi);
    errno = 0;
    v = strtoll(word, &end, 10);
    if (end == word || *end != '\0' || errno != 0 || v < lo || v > hi) {
      fprintf(stderr, "mbctl: %s: '%s' is not a whole number from %lld to %lld\n", cmd,
              mbctl_text(word), lo, hi);
      return -1;
    }
    cJSON_AddNumberToObject(obj, a->name, (double)v);
    return 0;
  }
}

/* argv[from..argc) joined by spaces, malloc'd (NULL: out of memory). */
static char *join_words(int argc, char **argv, int from) {
  size_t n = 1;
  int i;
  char *text;
  for (i = from; i < argc; i++)
    n += strlen(argv[i]) + 1;
  if ((text = malloc(n)) == NULL)
    return NULL;
  text[0] = '\0';
  for (i = from; i < argc; i++) {
    if (i > from)
      strcat(text, " ");
    strcat(text, argv[i]);
  }
  return text;
}

/*
 * Build the request for argv[0..argc) (the command and its arguments) from the command's
 * commands.def line: each positional argument takes the next word in order (a LIST the
 * remaining words as an array, a TEXT the remaining words joined by spaces, a number checked
 * against its range); an argument bound to an option takes its value (interval_ms > 0 is
 * --interval). NULL = usage error, already said on stderr.
 */
static cJSON *build_request(int argc, char **argv, const req_opts_t *o) {
  const char *cmd = argv[0];
  const mbctl_cmd_t *c = mbctl_command(cmd); /* known: main refused an unknown command */
  const mb_cmd_arg_t *args = c->args, *a;
  cJSON *req = cJSON_CreateObject(), *args_obj = cJSON_CreateObject();
  int w = 1, npos = 0, nreq = 0, unbounded = 0, i;
  char buf[256], one[96], count[32];
  size_t at = 0;

  cJSON_AddNumberToObject(req, "id", 1);
  cJSON_AddStringToObject(req, "cmd", cmd);
  for (a = args; a->name; a++) {
    if (!positional(a))
      continue;
    npos++;
    nreq += a->required;
    unbounded |= a->type == MB_CMD_ARG_LIST || a->type == MB_CMD_ARG_TEXT;
  }
  if (argc - 1 < nreq) {
    buf[0] = '\0';
    for (a = args; a->name; a++)
      if (positional(a) && a->required && at < sizeof buf)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", at ? " " : "",
                               arg_synopsis(a, one, sizeof one));
    fprintf(stderr, "mbctl: %s needs %s: %s\n", cmd, n_arguments(nreq, count, sizeof count), buf);
    goto usage;
  }
  if (!unbounded && argc - 1 > npos) {
    if (npos == 0)
      fprintf(stderr, "mbctl: '%s' takes no arguments\n", cmd);
    else
      fprintf(stderr, "mbctl: %s takes at most %s: %s\n", cmd,
              n_arguments(npos, count, sizeof count),
              mbctl_synopsis(c, buf, sizeof buf) + strlen(cmd) + 1);
    goto usage;
  }
  for (a = args; a->name; a++) {
    if (!positional(a)) {
      if (strcmp(a->cli, "--interval") == 0 && o->interval_ms > 0)
        cJSON_AddNumberToObject(args_obj, a->name, (double)o->interval_ms);
      if (strcmp(a->cli, "--openmetrics") == 0 && o->openmetrics)
        cJSON_AddStringToObject(args_obj, a->name, "openmetrics");
      if (strcmp(a->cli, "--bytes") == 0 && o->bytes >= 0)
        cJSON_AddNumberToObject(args_obj, a->name, (double)o->bytes);
      continue;
    }
    if (w >= argc)
      continue; /* an optional argument not given */
    switch (a->type) {
    case MB_CMD_ARG_LIST: {
      cJSON *arr = cJSON_AddArrayToObject(args_obj, a->name);
      for (i = w; i < argc; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(argv[i]));
      w = argc;
      break;
    }
    case MB_CMD_ARG_TEXT: {
      char *text = join_words(argc, argv, w);
      if (text == NULL) {
        fprintf(stderr, "mbctl: out of memory\n");
        goto usage;
      }
      cJSON_AddStringToObject(args_obj, a->name, text);
      free(text);
      w = argc;
      break;
    }
    case MB_CMD_ARG_UNSIGNED:
    case MB_CMD_ARG_INT:
      if (add_number(args_obj, cmd, a, argv[w]) != 0)
        goto usage;
      w++;
      break;
    case MB_CMD_ARG_STRING:
    case MB_CMD_ARG_ENUM:
      cJSON_AddStringToObject(args_obj, a->name, argv[w++]);
      break;
    }
  }
  cJSON_AddItemToObject(req, "args", args_obj);
  return req;
usage:
  cJSON_Delete(args_obj);
  cJSON_Delete(req);
  return NULL;
}

/* What a textfile says while the broker does not answer: node_exporter and windows_exporter
 * serve a file as it is, however old, so a stale file would show the last figures as current.
 * The broker label is the instance, as in the broker's own text (several brokers' files share
 * one collector directory): "%s" is the instance, a checked name that needs no escaping. */
#define DOWN_FMT                                                                                   \
  "# HELP membroker_up 1 while the broker answers (a textfile written by mbctl metrics "           \
  "--textfile says 0 when it does not)\n"                                                          \
  "# TYPE membroker_up gauge\n"                                                                    \
  "membroker_up{broker=\"%s\"} 0\n"

/*
 * metrics --textfile DIR: write `text` (NULL: the down text, DOWN_FMT) to
 * DIR/membroker_<instance>.prom for a textfile collector, atomically: a temporary file in DIR
 * (".membroker_<instance>.prom.<pid>.tmp", which the collectors skip: not *.prom; the pid keeps two
 * runs that overlap apart) is written and synced, then renamed over the old file, so a collector
 * reads the old file whole or the new one whole. A rename refused as busy (Windows: the collector
 * is reading the old file without sharing it for delete) is tried again, up to 20 times 50 ms
 * apart. 0, or -1 with a message.
 */
static int write_textfile(const char *dir, const char *instance, const char *text) {
  char path[1024], tmp[1060], down[sizeof(DOWN_FMT) + MB_INSTANCE_MAX];
  FILE *f = NULL;
  mb_os_procid_t self;
  size_t n;
  int rc, tries = 0;
  mb_os_proc_self(&self);
  if (text == NULL) {
    snprintf(down, sizeof down, DOWN_FMT, instance);
    text = down;
  }
  n = strlen(text);
  if ((size_t)snprintf(path, sizeof path, "%s/membroker_%s.prom", dir, instance) >= sizeof path ||
      (size_t)snprintf(tmp, sizeof tmp, "%s/.membroker_%s.prom.%u.tmp", dir, instance,
                       (unsigned)self.pid) >= sizeof tmp) {
    fprintf(stderr, "mbctl: --textfile: the directory name is too long\n");
    return -1;
  }
  if ((rc = mb_os_file_create(tmp, &f)) != 0) {
    fprintf(stderr, "mbctl: --textfile: cannot create %s: %s\n", tmp, mb_last_error());
    return -1;
  }
  if (fwrite(text, 1, n, f) != n || (rc = mb_os_file_sync(f)) != 0 || fclose(f) != 0) {
    if (f != NULL && rc != 0)
      fclose(f);
    fprintf(stderr, "mbctl: --textfile: cannot write %s: %s\n", tmp,
            rc ? mb_last_error() : "write failed");
    mb_os_file_discard(tmp);
    return -1;
  }
  while ((rc = mb_os_file_replace(tmp, path)) == MB_EBUSY && ++tries < 20)
    mb_os_sleep_ms(50);
  if (rc != 0) {
    fprintf(stderr, "mbctl: --textfile: cannot rename %s over %s: %s\n", tmp, path,
            mb_last_error());
    mb_os_file_discard(tmp);
    return -1;
  }
  return 0;
}

/* The help entry of one command, as the broker's help gives it: {"name", "admin", "args":
 * [names], "help"}. */
static cJSON *help_entry(const char *name, int admin, const mb_cmd_arg_t *args, const char *help) {
  cJSON *o = cJSON_CreateObject(), *arr;
  const mb_cmd_arg_t *a;
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddBoolToObject(o, "admin", admin);
  arr = cJSON_AddArrayToObject(o, "args");
  for (a = args; a->name; a++)
    cJSON_AddItemToArray(arr, cJSON_CreateString(a->name));
  cJSON_AddStringToObject(o, "help", help);
  return o;
}

/*
 * help [COMMAND], answered from mbctl's own table (commands.def, compiled in, plus the commands
 * mbctl runs itself): no broker is asked, so help works while the broker is down (when it is
 * needed most). The same JSON as the broker's help (--json), or its text. An unknown COMMAND
 * is a usage error with the closest name.
 */
static int run_help(int cmdc, char **cmdv, int json) {
  cJSON *res;
  size_t k;
  if (cmdc > 2) {
    fprintf(stderr, "mbctl: help takes at most one argument: [COMMAND]\n"
                    "run 'mbctl --help' for usage\n");
    return EXIT_USAGE;
  }
  if (cmdc == 1) {
    res = cJSON_CreateArray();
    for (k = 0; k < NCOMMANDS; k++)
      cJSON_AddItemToArray(
          res, help_entry(commands[k].name, commands[k].admin, commands[k].args, commands[k].help));
    for (k = 0; k < NLOCAL; k++)
      cJSON_AddItemToArray(res,
                           help_entry(local_cmds[k].name, 0, no_local_args, local_cmds[k].help));
  } else {
    const mbctl_cmd_t *c = mbctl_command(cmdv[1]);
    res = NULL;
    if (c != NULL)
      res = help_entry(c->name, c->admin, c->args, c->help);
    for (k = 0; k < NLOCAL && res == NULL; k++)
      if (strcmp(cmdv[1], local_cmds[k].name) == 0)
        res = help_entry(local_cmds[k].name, 0, no_local_args, local_cmds[k].help);
    if (res == NULL) {
      const char *names[NCOMMANDS + NLOCAL], *near;
      size_t nn = 0;
      for (k = 0; k < NCOMMANDS; k++)
        names[nn++] = commands[k].name;
      for (k = 0; k < NLOCAL; k++)
        names[nn++] = local_cmds[k].name;
      if ((near = mbctl_did_you_mean(cmdv[1], names, nn)) != NULL)
        fprintf(stderr, "mbctl: help: no command '%s'; did you mean '%s'?\n", mbctl_text(cmdv[1]),
                near);
      else
        fprintf(stderr, "mbctl: help: no command '%s'\n", mbctl_text(cmdv[1]));
      fprintf(stderr, "run 'mbctl --help' for the commands\n");
      return EXIT_USAGE;
    }
  }
  if (json)
    print_json(res);
  else
    print_result("help", res, "");
  fflush(stdout);
  cJSON_Delete(res);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  const char *instance = NULL, *instance_from = "--instance";
  char env[256]; /* $MEMBROKER_INSTANCE: room to name a bad value that is too long */
  int json = 0, timeout_ms = 10000, i, rc, is_path = 0, opts_done = 0, cmdc = 0;
  int openmetrics = 0, wait = 0, timeout_given = 0;
  const char *bytes_arg = NULL; /* player --bytes N */
  const char *index_arg = NULL; /* evict --index N */
  req_opts_t ropts;
  const char *textfile = NULL; /* metrics --textfile DIR */
  int down = 0; /* --textfile: a failure to get an answer writes the down text (at `done`) */
  long interval_ms = 0, count = 0;
  static char *cmdv[256];
  char pipe[MB_PIPE_NAME_MAX], *text, *line;
  mb_pipe_conn_t conn;
  cJSON *req, *resp = NULL;
  const cJSON *ok, *err;
  size_t len;
  int code = EXIT_FAILED;

  /* UTF-8 arguments (Windows: main's argv is the ANSI code page); on failure, main's own. */
  (void)mb_os_utf8_argv(&argc, &argv);

  /* Options may stand before or after the command; "--" ends them (for a message that
   * starts with '-'). Everything else is the command and its arguments, in order. */
  for (i = 1; i < argc; i++) {
    /* "-1" is a word (a bad player id or client name, said so by what takes it), not an
     * option. */
    if (!opts_done && argv[i][0] == '-' && argv[i][1] != '\0' &&
        (argv[i][1] < '0' || argv[i][1] > '9')) {
      if (strcmp(argv[i], "--") == 0) {
        opts_done = 1;
      } else if (strcmp(argv[i], "--json") == 0) {
        json = 1;
      } else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc) {
        instance = argv[++i];
      } else if (strcmp(argv[i], "--openmetrics") == 0) {
        openmetrics = 1;
      } else if (strcmp(argv[i], "--wait") == 0) {
        wait = 1;
      } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
        bytes_arg = argv[++i];
      } else if (strcmp(argv[i], "--index") == 0 && i + 1 < argc) {
        index_arg = argv[++i];
      } else if (strcmp(argv[i], "--textfile") == 0 && i + 1 < argc) {
        textfile = argv[++i];
      } else if ((strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--interval") == 0 ||
                  strcmp(argv[i], "--count") == 0) &&
                 i + 1 < argc) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (*end != '\0' || end == argv[i + 1] || v <= 0 || v > 100000000) {
          fprintf(stderr, "mbctl: %s needs a positive number, got '%s'\n", argv[i], argv[i + 1]);
          return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--timeout") == 0)
          timeout_ms = (int)v, timeout_given = 1;
        else if (strcmp(argv[i], "--interval") == 0)
          interval_ms = v;
        else
          count = v;
        i++;
      } else if (i + 1 == argc &&
                 (strcmp(argv[i], "--instance") == 0 || strcmp(argv[i], "--timeout") == 0 ||
                  strcmp(argv[i], "--textfile") == 0 || strcmp(argv[i], "--interval") == 0 ||
                  strcmp(argv[i], "--count") == 0 || strcmp(argv[i], "--bytes") == 0 ||
                  strcmp(argv[i], "--index") == 0)) {
        fprintf(stderr, "mbctl: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
      } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
      } else if (strcmp(argv[i], "--version") == 0) {
        printf("mbctl %s\n", MB_VERSION);
        return EXIT_OK;
      } else {
        fprintf(stderr, "mbctl: unknown option '%s'\nrun 'mbctl --help' for usage\n",
                mbctl_text(argv[i]));
        return EXIT_USAGE;
      }
    } else if (cmdc < (int)(sizeof cmdv / sizeof cmdv[0])) {
      cmdv[cmdc++] = argv[i];
    }
  }
  if (cmdc == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  /* The instance: --instance, else $MEMBROKER_INSTANCE (empty counts as unset), else
   * "default". A bad name is refused here, naming where it came from. */
  if (instance == NULL) {
    int erc = mb_os_env_get("MEMBROKER_INSTANCE", env, sizeof env);
    if (erc == 0 && env[0] != '\0') {
      instance = env;
      instance_from = "MEMBROKER_INSTANCE";
    } else if (erc == 0 || erc == MB_ENOENT) {
      instance = "default";
    } else {
      fprintf(stderr, "mbctl: MEMBROKER_INSTANCE: %s\n", mb_last_error());
      return EXIT_USAGE;
    }
  }
  if (!mb__name_ok(instance, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT)) {
    fprintf(stderr,
            "mbctl: %s '%s' is not an instance name: 1 to %d characters of A-Z a-z 0-9 . _ -\n",
            instance_from, instance, MB_INSTANCE_MAX - 1);
    return EXIT_USAGE;
  }
  /* A command nobody knows: a usage error naming the closest one, before any connection. */
  if (mbctl_command(cmdv[0]) == NULL) {
    const char *names[NCOMMANDS + NLOCAL], *near;
    size_t k, nn = 0;
    for (k = 0; k < NCOMMANDS; k++)
      names[nn++] = commands[k].name;
    for (k = 0; k < NLOCAL; k++)
      names[nn++] = local_cmds[k].name;
    for (k = 0; k < NLOCAL && strcmp(cmdv[0], local_cmds[k].name) != 0; k++)
      ;
    if (k == NLOCAL) {
      if ((near = mbctl_did_you_mean(cmdv[0], names, nn)) != NULL)
        fprintf(stderr, "mbctl: unknown command '%s'; did you mean '%s'?\n", mbctl_text(cmdv[0]),
                near);
      else
        fprintf(stderr, "mbctl: unknown command '%s'\n", mbctl_text(cmdv[0]));
      fprintf(stderr, "run 'mbctl --help' for the commands\n");
      return EXIT_USAGE;
    }
  }
  if (bytes_arg && strcmp(cmdv[0], "player") != 0) {
    fprintf(stderr, "mbctl: --bytes is an option of player\n");
    return EXIT_USAGE;
  }
  if (index_arg && strcmp(cmdv[0], "evict") != 0) {
    fprintf(stderr, "mbctl: --index is an option of evict\n");
    return EXIT_USAGE;
  }
  if (index_arg && cmdc > 1) {
    fprintf(stderr, "mbctl: evict takes a CLIENT name or --index N, not both\n");
    return EXIT_USAGE;
  }
  if (wait && strcmp(cmdv[0], "shutdown") != 0) {
    fprintf(stderr, "mbctl: --wait is an option of shutdown\n");
    return EXIT_USAGE;
  }
  ropts.interval_ms = interval_ms;
  ropts.openmetrics = openmetrics;
  ropts.bytes = -1;
  if (bytes_arg) {
    char *end;
    long v = strtol(bytes_arg, &end, 10);
    if (*end != '\0' || end == bytes_arg || bytes_arg[0] < '0' || bytes_arg[0] > '9' ||
        v > MB_CTL_PLAYER_BYTES_MAX) {
      fprintf(stderr, "mbctl: --bytes needs a whole number from 0 to %d, got '%s'\n",
              MB_CTL_PLAYER_BYTES_MAX, mbctl_text(bytes_arg));
      return EXIT_USAGE;
    }
    ropts.bytes = v;
  }
  if (strcmp(cmdv[0], "help") == 0)
    return run_help(cmdc, cmdv, json);
  if (strcmp(cmdv[0], "instances") == 0) {
    if (cmdc > 1) {
      fprintf(stderr, "mbctl: 'instances' takes no arguments\n");
      return EXIT_USAGE;
    }
    return mbctl_instances(json);
  }
  if ((interval_ms || count) && strcmp(cmdv[0], "watch") != 0) {
    fprintf(stderr, "mbctl: --interval and --count are options of watch\n");
    return EXIT_USAGE;
  }
  if ((openmetrics || textfile) && strcmp(cmdv[0], "metrics") != 0) {
    fprintf(stderr, "mbctl: --openmetrics and --textfile are options of metrics\n");
    return EXIT_USAGE;
  }
  if (textfile && (openmetrics || json)) {
    fprintf(stderr, "mbctl: metrics --textfile writes the Prometheus text format: it takes "
                    "neither --openmetrics nor --json\n");
    return EXIT_USAGE;
  }
  if (textfile && textfile[0] == '\0') {
    fprintf(stderr, "mbctl: --textfile needs a directory, got ''\n");
    return EXIT_USAGE;
  }
  if (index_arg) {
    char idx[48];
    if (index_arg[strspn(index_arg, "0123456789")] != '\0' || index_arg[0] == '\0' ||
        strlen(index_arg) > 40) {
      fprintf(stderr, "mbctl: evict: --index needs a whole number (INDEX of `clients`), got '%s'\n",
              mbctl_text(index_arg));
      return EXIT_USAGE;
    }
    /* "#N": the broker checks N against its table and names it as typed, however large. */
    snprintf(idx, sizeof idx, "#%s", index_arg);
    req = cJSON_CreateObject();
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "cmd", "evict");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "args"), "client", idx);
  } else {
    req = build_request(cmdc, cmdv, &ropts);
  }
  if (req == NULL) {
    fprintf(stderr, "run 'mbctl --help' for usage\n");
    return EXIT_USAGE;
  }
  /* From here every exit goes through `done`, which frees what was made (the sanitizer
   * build's leak check turns a leak at exit into a failed exit code). */
  memset(&conn, 0, sizeof conn);
  conn.h = -1;
  if (mb__pipe_name(instance, pipe, sizeof pipe, &is_path) != 0) {
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    code = EXIT_USAGE;
    goto done;
  }
  /* From here on, whatever keeps the answer from us (not running, refused, busy, a timeout,
   * a broken or refused answer) leaves the textfile saying down, never the last good figures. */
  down = textfile != NULL;
  if ((rc = mb__pipe_connect(&conn, pipe, timeout_ms)) != 0) {
    if (rc == MB_ENOTRUNNING) {
      fprintf(stderr, "membroker is not running for instance '%s' (no pipe at %s)\n", instance,
              pipe);
      print_start_hint(stderr, instance);
      code = EXIT_NOT_RUNNING;
      goto done;
    }
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    goto done;
  }
  text = cJSON_PrintUnformatted(req);
  rc = text ? mb__pipe_write(&conn, text, strlen(text)) : MB_ENOMEM;
  if (rc == 0)
    rc = mb__pipe_write(&conn, "\n", 1);
  cJSON_free(text);
  if (rc == 0)
    rc = mb__pipe_read_line(&conn, &line, &len, 64u << 20,
                            mb_os_mono_ns() + (uint64_t)timeout_ms * 1000000u);
  if (rc != 0) {
    fprintf(stderr, "mbctl: %s\n", mb_last_error());
    goto done;
  }
  resp = cJSON_Parse(line);
  if (strcmp(cmdv[0], "watch") != 0)
    mb__pipe_close(&conn); /* watch reads on: its events follow the answer */
  ok = cJSON_GetObjectItemCaseSensitive(resp, "ok");
  if (resp == NULL || !cJSON_IsBool(ok)) {
    fprintf(stderr, "mbctl: the broker's answer is not a protocol response\n");
    goto done;
  }
  if (cJSON_IsFalse(ok)) {
    err = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (json)
      print_json(resp);
    fprintf(stderr, "mbctl: %s failed: %s: %s\n", cmdv[0], jstr(err, "code"), jstr(err, "message"));
    goto done;
  }
  if (strcmp(cmdv[0], "watch") == 0) {
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(resp, "result"), "interval_ms");
    code = run_watch(&conn, json, count, cJSON_IsNumber(iv) ? (long)iv->valuedouble : 60000,
                     timeout_ms);
    goto done;
  }
  if (textfile) {
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp, "result"), "text");
    if (!cJSON_IsString(t)) {
      fprintf(stderr, "mbctl: metrics: the broker's answer has no text\n");
      goto done;
    }
    down = 0; /* an answer came: a failure to write it is not the broker's */
    if (write_textfile(textfile, instance, t->valuestring) != 0)
      goto done;
    code = EXIT_OK;
    goto done;
  }
  if (json)
    print_json(cJSON_GetObjectItemCaseSensitive(resp, "result"));
  else
    print_result(cmdv[0], cJSON_GetObjectItemCaseSensitive(resp, "result"), instance);
  fflush(stdout);
  code = EXIT_OK;
  if (wait)
    code = mbctl_wait_exit(cJSON_GetObjectItemCaseSensitive(resp, "result"), instance, pipe,
                           timeout_given ? timeout_ms : WAIT_DEFAULT_MS, json);
done:
  if (down && code != EXIT_OK && write_textfile(textfile, instance, NULL) == 0)
    fprintf(stderr, "mbctl: wrote membroker_up 0 to %s/membroker_%s.prom\n", textfile, instance);
  mb__pipe_close(&conn);
  cJSON_Delete(resp);
  cJSON_Delete(req);
  return code;
}
