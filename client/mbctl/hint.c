/*
 * hint.c - mbctl's "not running" hint: after "membroker is not running for instance X", how
 * to start it in the terms of the host's service manager (the installed Windows services that
 * run membroker.exe and what each is doing, with the instance its config names; or the
 * systemd unit), and the console alternative. Reads service configs with cJSON; never talks
 * to the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mbctl.h"

/* What mbctl learns of one installed membroker service from its config (cJSON, no service/). */
typedef struct hint_svc_s {
  const mb_os_service_t *svc;
  char instance[MB_INSTANCE_MAX];      /* "" when the config could not be read */
  char why[160];                       /* why not, when instance is "" */
  char log_file[MB_OS_SVC_CONFIG_MAX]; /* "log": {"file": ...}, "" for the default */
} hint_svc_t;

/*
 * The instance and log.file of the config at s->svc->config, as the service reads them: no
 * config is the built-in defaults (instance "default"); a config without "instance" is
 * "default" too. A config that cannot be read or parsed leaves instance "" and says why.
 */
static void hint_read_config(hint_svc_t *s) {
  const char *path = s->svc->config;
  const cJSON *v, *log;
  cJSON *root;
  FILE *f = NULL;
  char *text;
  size_t len;

  snprintf(s->instance, sizeof s->instance, "default");
  s->log_file[0] = '\0';
  s->why[0] = '\0';
  if (path[0] == '\0')
    return;
  s->instance[0] = '\0';
  if (mb_os_file_open(path, "rb", &f) != 0) {
    snprintf(s->why, sizeof s->why, "%s", mb_last_error());
    return;
  }
  text = malloc((1u << 20) + 1);
  len = text != NULL ? fread(text, 1, 1u << 20, f) : 0;
  fclose(f);
  if (text == NULL) {
    snprintf(s->why, sizeof s->why, "out of memory");
    return;
  }
  text[len] = '\0';
  root = cJSON_Parse(text);
  free(text);
  if (!cJSON_IsObject(root)) {
    snprintf(s->why, sizeof s->why, "not valid JSON");
    cJSON_Delete(root);
    return;
  }
  v = cJSON_GetObjectItemCaseSensitive(root, "instance");
  if (v == NULL || cJSON_IsNull(v))
    snprintf(s->instance, sizeof s->instance, "default");
  else if (cJSON_IsString(v) &&
           mb__name_ok(v->valuestring, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    snprintf(s->instance, sizeof s->instance, "%s", v->valuestring);
  else
    snprintf(s->why, sizeof s->why, "its \"instance\" is not an instance name");
  log = cJSON_GetObjectItemCaseSensitive(root, "log");
  v = cJSON_GetObjectItemCaseSensitive(log, "file");
  if (cJSON_IsString(v))
    snprintf(s->log_file, sizeof s->log_file, "%s", v->valuestring);
  cJSON_Delete(root);
}

static const char *hint_state(const mb_os_service_t *svc) {
  switch (svc->state) {
  case MB_OS_SVC_STOPPED:
    return "stopped";
  case MB_OS_SVC_STARTING:
    return "starting";
  case MB_OS_SVC_RUNNING:
    return "running";
  case MB_OS_SVC_STOPPING:
    return "stopping";
  default:
    return svc->status_known ? "paused" : "state unknown";
  }
}

/* The service's log file: log.file, else %ProgramData%\membroker\<instance>\membroker.log. */
static const char *hint_log_path(const hint_svc_t *s, char *buf, size_t size) {
  char dir[512];
  const char *instance = s->instance[0] != '\0' ? s->instance : "<instance>";
  if (s->log_file[0] != '\0')
    snprintf(buf, size, "%s", s->log_file);
  else if (mb_os_data_dir(dir, sizeof dir) == 0)
    snprintf(buf, size, "%s\\%s\\membroker.log", dir, instance);
  else
    snprintf(buf, size, "%%ProgramData%%\\membroker\\%s\\membroker.log", instance);
  return buf;
}

/*
 * After a stopped service's line: why its last start failed (WIN32_EXIT_CODE 1066 and the
 * service exit code, with where the service logged the reason), or the Windows error its last
 * run ended with. Nothing after a clean stop or when it never started. `who` begins the line.
 */
static void hint_last_stop(FILE *fp, const hint_svc_t *s, const char *who) {
  const mb_os_service_t *svc = s->svc;
  char where[3 * MB_OS_SVC_CONFIG_MAX], dir[512], log[2 * MB_OS_SVC_CONFIG_MAX];

  if (svc->state != MB_OS_SVC_STOPPED)
    return;
  if (svc->exit_code == 1066 /* ERROR_SERVICE_SPECIFIC_ERROR */) {
    unsigned long n = svc->service_exit_code;
    if (n == 2) {
      if (mb_os_data_dir(dir, sizeof dir) == 0)
        snprintf(where, sizeof where, "%s\\%s.log", dir, svc->name);
      else
        snprintf(where, sizeof where, "%%ProgramData%%\\membroker\\%s.log", svc->name);
    } else if (n == 3) {
      snprintf(where, sizeof where,
               "the Application event log, source %s, event 1004 (the log file %s could not "
               "be opened)",
               svc->name, hint_log_path(s, log, sizeof log));
    } else {
      hint_log_path(s, where, sizeof where);
    }
    fprintf(fp,
            "%s last start failed with service exit code %lu (%s): see %s "
            "(`sc.exe query %s` shows the code)\n",
            who, n,
            n == 2   ? "config error"
            : n == 1 ? "could not start"
            : n == 3 ? "log file"
                     : "unknown code",
            where, svc->name);
  } else if (svc->exit_code != 0 && svc->exit_code != 1077 /* ERROR_SERVICE_NEVER_STARTED */) {
    fprintf(fp, "%s last run ended with Windows error %lu (`sc.exe query %s`); its log: %s\n", who,
            svc->exit_code, svc->name, hint_log_path(s, where, sizeof where));
  }
}

/* The hint for the service that serves this instance: what it is doing and what to do. */
static void hint_for_service(FILE *fp, const hint_svc_t *s) {
  const mb_os_service_t *svc = s->svc;
  char where[2 * MB_OS_SVC_CONFIG_MAX];
  const char *config = svc->config[0] != '\0' ? svc->config : "none: built-in defaults";

  switch (svc->state) {
  case MB_OS_SVC_STOPPED:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is stopped: start it with "
            "`sc.exe start %s`\n",
            svc->name, config, s->instance, svc->name);
    hint_last_stop(fp, s, "its");
    break;
  case MB_OS_SVC_RUNNING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is running, but its pipe did not "
            "answer: is it still starting, or stuck? check `sc.exe query %s` and its log %s\n",
            svc->name, config, s->instance, svc->name, hint_log_path(s, where, sizeof where));
    break;
  case MB_OS_SVC_STARTING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is starting: try again shortly, "
            "or check `sc.exe query %s` and its log %s\n",
            svc->name, config, s->instance, svc->name, hint_log_path(s, where, sizeof where));
    break;
  case MB_OS_SVC_STOPPING:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' and is stopping: once it has stopped "
            "(`sc.exe query %s`), start it with `sc.exe start %s`\n",
            svc->name, config, s->instance, svc->name, svc->name);
    break;
  default:
    fprintf(fp,
            "service %s (config %s) serves instance '%s' (%s): check `sc.exe query %s`; start "
            "it with `sc.exe start %s`\n",
            svc->name, config, s->instance, hint_state(svc), svc->name, svc->name);
    break;
  }
}

/*
 * How to start the broker, after "membroker is not running for instance X": the commands of
 * this OS's service manager. Windows: the installed services whose program is membroker.exe,
 * each with the instance its config names; the one for X with what it is doing (stopped:
 * `sc.exe start NAME`, and why its last start failed and where that is logged; running: its
 * pipe did not answer), or, when none serves X, the installed ones with their instances and
 * how to install one. `sc.exe`, never `sc`: in PowerShell `sc` is Set-Content. Linux: the
 * shipped systemd unit. Either way the console alternative, `membroker run`.
 */
void print_start_hint(FILE *fp, const char *instance) {
  mb_os_service_t *list = NULL;
  hint_svc_t *hs = NULL;
  int n = 0, i, mine = 0;
  if (mb_os_service_manager() == MB_OS_SVCMGR_SYSTEMD) {
    fprintf(fp, "start it with `systemctl start membroker` (the systemd unit, "
                "lib/systemd/system/membroker.service) or in the foreground with `membroker run -c "
                "FILE`\n");
    return;
  }
  if (mb_os_services_list("membroker.exe", &list, &n) != 0) {
    fprintf(fp,
            "start its service with `sc.exe start NAME` (the installed services could not be "
            "listed: %s) or in a console with `membroker run -c FILE`\n",
            mb_last_error());
    return;
  }
  if (n == 0) {
    fprintf(fp, "no service runs membroker.exe: install one with `membroker install` (or "
                "scripts\\install-service.cmd) and start it with `sc.exe start membroker`, or "
                "run it in a console with `membroker run -c FILE`\n");
    return;
  }
  if ((hs = calloc((size_t)n, sizeof *hs)) == NULL) {
    fprintf(fp, "start its service with `sc.exe start NAME` or in a console with "
                "`membroker run -c FILE`\n");
    free(list);
    return;
  }
  for (i = 0; i < n; i++) {
    hs[i].svc = &list[i];
    hint_read_config(&hs[i]);
    if (strcmp(hs[i].instance, instance) == 0) {
      hint_for_service(fp, &hs[i]);
      mine++;
    }
  }
  if (mine > 1)
    fprintf(fp, "(%d services serve instance '%s': only one can run at a time)\n", mine, instance);
  if (mine == 0) {
    fprintf(fp, "installed:");
    for (i = 0; i < n; i++) {
      if (hs[i].instance[0] != '\0')
        fprintf(fp, "%s %s (instance %s, %s)", i ? "," : "", list[i].name, hs[i].instance,
                hint_state(&list[i]));
      else
        fprintf(fp, "%s %s (config %s cannot be read: %s; %s)", i ? "," : "", list[i].name,
                list[i].config, hs[i].why, hint_state(&list[i]));
    }
    fprintf(fp,
            "; none is for instance '%s': install one with `membroker install --name NAME -c "
            "CONFIG` (a config with \"instance\": \"%s\") and start it with `sc.exe start NAME`, "
            "or run it in a console with `membroker run -c FILE`\n",
            instance, instance);
    /* A config mbctl cannot read may be the one meant, broken by a typo: say how it failed. */
    for (i = 0; i < n; i++) {
      char who[MB_OS_SVC_NAME_MAX * 3 + 16];
      if (hs[i].instance[0] != '\0')
        continue;
      snprintf(who, sizeof who, "service %s:", list[i].name);
      hint_last_stop(fp, &hs[i], who);
    }
  }
  free(hs);
  free(list);
}
