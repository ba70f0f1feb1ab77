/*
 * main.c - the membroker command line.
 *
 *   membroker run [-c FILE]             run in the foreground until Ctrl-C / SIGTERM
 *   membroker -c FILE                   the same (-c and --config are one option everywhere)
 *   membroker service [-c FILE] [-n NAME]  run under the service manager (sc create / systemd)
 *   membroker install [--name N] [-c FILE] [--start auto|delayed|demand]
 *                     [--account A [--password P]]
 *   membroker uninstall [--name N]      register / remove the Windows service (svc_install.c)
 *   membroker --check-config FILE       validate a config file; exit 0 (valid) or 1
 *   membroker --check-config -c FILE    the same (-c / --config name the file as everywhere)
 * A usage error exits 2 with one line saying what was wrong: an option given twice (a second
 * -c does not silently win), an argument --check-config does not take.
 *   membroker --help | --version
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "os.h"
#include "svc.h"

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif
#ifndef MB_DEFAULT_CONFIG
#define MB_DEFAULT_CONFIG ""
#endif

static void mb__usage(FILE *fp) {
  fprintf(fp,
          "usage: membroker [run] -c FILE   (or --config FILE)\n"
          "       membroker run\n"
          "       membroker service [-c FILE] [-n SERVICE_NAME]\n"
          "       membroker install [-n NAME] [-c FILE] [--start auto|delayed|demand]\n"
          "                         [--account LocalSystem|\"NT SERVICE\\NAME\"|USER "
          "[--password P]] [--force]\n"
          "       membroker uninstall [-n NAME]\n"
          "       membroker --check-config FILE   (or --check-config -c FILE)\n"
          "       membroker --help | --version\n"
          "\n"
          "  run             run in the foreground; Ctrl-C or SIGTERM stops it cleanly\n"
          "  service         run under the Windows Service Control Manager (or systemd)\n"
          "  install         register the Windows service NAME (elevated): validate the config,\n"
          "                  create it, set recovery and the event-log source, read it all back\n"
          "  uninstall       stop and remove the Windows service NAME and its event-log source\n"
          "  -c, --config    configuration file (default: built-in defaults%s%s;\n"
          "                  install: an absolute path, default <exe dir>\\..\\config\\"
          "membroker.json)\n"
          "  -n, --name      service name registered with sc create (default: membroker)\n"
          "  --start         install: auto (default), delayed (auto, shortly after boot), demand\n"
          "  --account       install: the account it runs as (default LocalSystem)\n"
          "  --password      install: the password of a user --account\n"
          "  --force         install: even if another membroker service has this config's\n"
          "                  instance (only one of them can run at a time)\n"
          "  --check-config  validate FILE and what a start checks on this machine (groups,\n"
          "                  directories, the log file, maps, slot tables against memory, the\n"
          "                  commit limit); exit 0 if it is valid, 1 if not. Checks that need\n"
          "                  the broker's privileges are listed as not checked.\n",
          MB_DEFAULT_CONFIG[0] ? ", or " : "", MB_DEFAULT_CONFIG);
}

/* Load `path`, or the defaults when it is NULL. Prints the reason and returns 1 on error. */
static int mb__load(mb_config_t *cfg, const char *path) {
  if (path == NULL) {
    mb__config_defaults(cfg);
    return 0;
  }
  if (mb__config_load(cfg, path) != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    return 1;
  }
  return 0;
}

/*
 * --check-config FILE: the file (mb__config_load), then what a start checks on this machine
 * (mb__config_check_host: groups, persist.dir, log.file, maps, slot tables, the commit limit).
 * Valid: one line on stdout, then the checks skipped because they need the broker's
 * privileges, one a line after "not checked ...:"; exit 0. Invalid: the reason on stderr,
 * exit 1.
 */
static int mb__check_config(const char *path) {
  static mb_config_t cfg;
  char skipped[4096];
  const char *p, *nl;
  if (mb__config_load(&cfg, path) != 0 ||
      mb__config_check_host(&cfg, 0, skipped, sizeof skipped) != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    return 1;
  }
  printf("%s: valid (instance %s, %d regions, %d pools, %d maps%s%s)\n", path, cfg.instance,
         cfg.nregions, cfg.npools, cfg.nmaps, cfg.metrics_listen[0] ? ", metrics on " : "",
         cfg.metrics_listen);
  if (skipped[0] != '\0') {
    printf("not checked (needs the broker's privileges; a start checks it):\n");
    for (p = skipped; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
      printf("  %.*s\n", (int)(nl - p), p);
  }
  return 0;
}

static int mb__is_opt(const char *a, const char *shortname, const char *longname) {
  return strcmp(a, shortname) == 0 || strcmp(a, longname) == 0;
}

/*
 * The value of the option at argv[*i] into *val: advances *i past it. Prints why and returns 2
 * (a usage error) when the option is the last argument or its value is empty ("membroker: OPT
 * needs WHAT"), or when *val was set already by this option or its other spelling ("membroker:
 * -c given twice ('A', then 'B'): give one"): a second -c must not silently win over the first.
 */
static int mb__optval(int argc, char **argv, int *i, const char *what, const char **val) {
  if (*i + 1 >= argc || argv[*i + 1][0] == '\0') {
    fprintf(stderr, "membroker: %s needs %s (see membroker --help)\n", argv[*i], what);
    return 2;
  }
  if (*val != NULL) {
    fprintf(stderr, "membroker: %s given twice ('%s', then '%s'): give one\n", argv[*i], *val,
            argv[*i + 1]);
    return 2;
  }
  *i += 1;
  *val = argv[*i];
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = NULL, *config = NULL, *name = NULL;
  const char *check = NULL; /* --check-config's FILE, when it is given right after it */
  int check_seen = 0;
  const char *start = NULL, *account = NULL, *password = NULL; /* install only */
  int force = 0;                                               /* install only */
  mb_config_t cfg;
  int i, rc;

  /* UTF-8 arguments (Windows: main's argv is the ANSI code page); on failure, main's own. */
  (void)mb_os_utf8_argv(&argc, &argv);

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      mb__usage(stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("membroker %s (layout %u)\n", MB_VERSION, (unsigned)MB_LAYOUT_VERSION);
      return 0;
    } else if (strcmp(a, "--check-config") == 0) {
      /* --check-config FILE; or --check-config -c FILE, the file given as everywhere else. */
      if (check_seen) {
        fprintf(stderr, "membroker: --check-config given twice: give it one FILE\n");
        return 2;
      }
      check_seen = 1;
      if (i + 1 < argc && !mb__is_opt(argv[i + 1], "-c", "--config") &&
          (rc = mb__optval(argc, argv, &i, "a FILE", &check)) != 0)
        return rc;
    } else if (mb__is_opt(a, "-c", "--config")) {
      if ((rc = mb__optval(argc, argv, &i, "a FILE", &config)) != 0)
        return rc;
    } else if (mb__is_opt(a, "-n", "--name")) {
      if ((rc = mb__optval(argc, argv, &i, "a NAME", &name)) != 0)
        return rc;
    } else if (strcmp(a, "--start") == 0) {
      if ((rc = mb__optval(argc, argv, &i, "a value: auto, delayed or demand", &start)) != 0)
        return rc;
    } else if (strcmp(a, "--account") == 0) {
      if ((rc = mb__optval(argc, argv, &i, "an ACCOUNT", &account)) != 0)
        return rc;
    } else if (strcmp(a, "--password") == 0) {
      if ((rc = mb__optval(argc, argv, &i, "a PASSWORD", &password)) != 0)
        return rc;
    } else if (strcmp(a, "--force") == 0) {
      force = 1;
    } else if (mode == NULL && (strcmp(a, "install") == 0 || strcmp(a, "uninstall") == 0)) {
      mode = a;
    } else if (mode == NULL && (strcmp(a, "run") == 0 || strcmp(a, "service") == 0)) {
      mode = a;
    } else if (check_seen && a[0] != '-') {
      /* `--check-config FILE extra`: one FILE, nothing else (it was ignored). */
      fprintf(stderr,
              "membroker: unexpected argument '%s': --check-config takes one FILE (see "
              "membroker --help)\n",
              a);
      return 2;
    } else {
      fprintf(stderr, "membroker: unknown argument '%s'\n\n", a);
      mb__usage(stderr);
      return 2;
    }
  }
  if (check_seen) {
    if (mode != NULL || name != NULL || start != NULL || account != NULL || password != NULL ||
        force) {
      fprintf(stderr, "membroker: --check-config takes only a FILE (or -c FILE), not '%s'\n",
              mode != NULL       ? mode
              : name != NULL     ? "--name"
              : start != NULL    ? "--start"
              : account != NULL  ? "--account"
              : password != NULL ? "--password"
                                 : "--force");
      return 2;
    }
    if (check != NULL && config != NULL) {
      fprintf(stderr,
              "membroker: two config files ('%s' after --check-config, '%s' after -c): give "
              "one\n",
              check, config);
      return 2;
    }
    if (check == NULL && config == NULL) {
      fprintf(stderr, "membroker: --check-config needs a FILE (see membroker --help)\n");
      return 2;
    }
    return mb__check_config(check != NULL ? check : config);
  }
  if (name == NULL)
    name = "membroker";
  /* `membroker --config FILE` (config/README's form) runs in the foreground, as `run` does. */
  if (mode == NULL && config != NULL)
    mode = "run";
  if (mode == NULL) {
    mb__usage(stderr);
    return 2;
  }
  if ((start != NULL || account != NULL || password != NULL || force) &&
      strcmp(mode, "install") != 0) {
    fprintf(stderr,
            "membroker: --start, --account, --password and --force are for membroker install\n");
    return 2;
  }
  if (strcmp(mode, "install") == 0) {
    mb_svc_install_opts_t opts = {name, config, start, account, password, force};
    return mb__svc_install(&opts);
  }
  if (strcmp(mode, "uninstall") == 0) {
    if (config != NULL) {
      fprintf(stderr, "membroker: uninstall takes no config (-c); only --name\n");
      return 2;
    }
    return mb__svc_uninstall(name);
  }
  /* The service glue loads the config itself: under the SCM, a config error must still be
   * reported to the SCM and logged (svc.h). */
  if (strcmp(mode, "service") == 0)
    return mb__svc_main(name, config);
  if (mb__load(&cfg, config) != 0)
    return 1;
  if (mb__log_open(cfg.log_level, "") != 0) {
    fprintf(stderr, "membroker: %s\n", mb_last_error());
    return 1;
  }
  mb__run_log_start(mode, config);
  rc = mb__run(&cfg, 0, NULL);
  mb__log_close();
  return rc;
}
