/*
 * local.c - what mbctl does without asking a broker: `instances` (the brokers of this host,
 * found from the named objects the platform layer lists), the wait of `shutdown --wait` for the
 * broker's process to exit, and the "did you mean" of an unknown command. Reads the OS and
 * the control blocks (read-only); never writes shared memory and never opens a broker's pipe.
 *
 * An instance is found by any of its named objects the platform lists (mb_os_objects_list):
 * its control block (POSIX), its pipe (POSIX; Windows where \\.\pipe\ can be listed) or its
 * single-instance lock's record (POSIX: left by a crashed broker too; Windows: only while
 * held) - then its control block, opened by name, says whose it is and whether that runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mbctl.h"

/* ---- instances --------------------------------------------------------------------------- */

/* One instance name found, and what was found of it. */
typedef struct {
  char name[MB_INSTANCE_MAX];
  int section; /* its control block's name is listed (POSIX) */
  int pipe;    /* its control pipe is listed */
  int lock;    /* its lock's record is listed */
} found_t;

typedef struct {
  found_t *list; /* grown as names are found (a host may hold many stale objects) */
  int n, cap;
  int oom;
} found_list_t;

enum { FOUND_SECTION, FOUND_PIPE, FOUND_LOCK };

static void found_add(found_list_t *f, const char *inst, size_t len, int what) {
  char name[MB_INSTANCE_MAX];
  int i;
  if (len == 0 || len >= sizeof name)
    return;
  memcpy(name, inst, len);
  name[len] = '\0';
  if (!mb__name_ok(name, MB_INSTANCE_MAX, MB_NAME_UPPER | MB_NAME_DOT))
    return;
  for (i = 0; i < f->n && strcmp(f->list[i].name, name) != 0; i++)
    ;
  if (i == f->n) {
    if (f->n == f->cap) {
      int cap = f->cap ? f->cap * 2 : 64;
      found_t *l = realloc(f->list, (size_t)cap * sizeof *l);
      if (l == NULL) {
        f->oom = 1;
        return;
      }
      f->list = l;
      f->cap = cap;
    }
    memset(&f->list[f->n], 0, sizeof f->list[0]);
    memcpy(f->list[f->n].name, name, len + 1);
    f->n++;
  }
  if (what == FOUND_PIPE)
    f->list[i].pipe = 1;
  else if (what == FOUND_LOCK)
    f->list[i].lock = 1;
  else
    f->list[i].section = 1;
}

/* "membroker.<instance>.state" (a region's "membroker.<i>.region.<r>" and the others do not
 * end in ".state", except a region or pool named "state": those have ".region." / ".pool."). */
static void on_section(void *arg, const char *name) {
  size_t n = strlen(name), p = strlen("membroker.");
  if (n <= p + 6 || strcmp(name + n - 6, ".state") != 0 || strstr(name, ".region.") != NULL ||
      strstr(name, ".pool.") != NULL || strstr(name, ".map.") != NULL)
    return;
  found_add(arg, name + p, n - p - 6, FOUND_SECTION);
}

/* "membroker.<instance>.lock" */
static void on_lock(void *arg, const char *name) {
  size_t n = strlen(name), p = strlen("membroker.");
  if (n <= p + 5 || strcmp(name + n - 5, ".lock") != 0)
    return;
  found_add(arg, name + p, n - p - 5, FOUND_LOCK);
}

/* "membroker-<instance>" */
static void on_pipe(void *arg, const char *name) {
  size_t p = strlen("membroker-");
  found_add(arg, name + p, strlen(name) - p, FOUND_PIPE);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const found_t *)a)->name, ((const found_t *)b)->name);
}

/* What one instance's control block says: its broker's pid, whether that process runs, its
 * server status; the block's OS name. found: 1 if a block could be read. */
typedef struct {
  int found;
  uint32_t pid;
  int alive; /* mb_os_proc_alive: 1, 0, or < 0 (the OS does not say) */
  uint32_t status;
  char object[MB_OS_NAME_MAX + 16];
} block_t;

static void read_block(const char *instance, block_t *out) {
  static const int flags[] = {MB_OS_SEC_GLOBAL, 0}; /* a service's, then a console broker's */
  char name[MB_OS_NAME_MAX + 1];
  size_t k;
  memset(out, 0, sizeof *out);
  if (mb__object_name(name, sizeof name, instance, NULL) != 0)
    return;
  if (mb_os_section_os_name(name, 0, out->object, sizeof out->object) != 0)
    snprintf(out->object, sizeof out->object, "%s", name);
  for (k = 0; k < sizeof flags / sizeof flags[0] && !out->found; k++) {
    mb_os_section_t s;
    mb_state_t *st = NULL;
    if (mb_os_section_open(&s, name, flags[k], 0) != 0)
      continue;
    if (s.size >= sizeof(mb_state_t) && mb_os_section_map(&s, 0, 0, (void **)&st) == 0) {
      if (mb__state_check(st, s.size) == 0 || st->magic == MB_STATE_MAGIC) {
        mb_os_procid_t id;
        id.pid = st->broker_pid;
        id.start_time = st->broker_start_time;
        out->found = 1;
        out->pid = id.pid;
        out->status = mb_load32(&st->game.server_status);
        out->alive = id.pid != 0 ? mb_os_proc_alive(&id) : 0;
        (void)mb_os_section_os_name(name, flags[k], out->object, sizeof out->object);
      }
      mb_os_section_unmap(st, s.size);
    }
    mb_os_section_close(&s);
  }
}

/* "running", "stopping" (shutting down), "stale" (its broker is gone: objects left behind - a
 * pipe without a block is one too, since a broker publishes its block before it listens and
 * removes it after it stops listening), "unknown" (the OS does not say). */
static const char *instance_state(const block_t *b) {
  if (!b->found)
    return "stale";
  if (b->alive < 0)
    return "unknown";
  if (b->alive == 0)
    return "stale";
  return b->status == MB_STATUS_SHUTTING_DOWN ? "stopping" : "running";
}

int mbctl_instances(int json) {
  found_list_t f = {NULL, 0, 0, 0};
  cJSON *arr = json ? cJSON_CreateArray() : NULL;
  int rc, i, code = EXIT_OK, pipes_listed = 1;
  /* Sections: POSIX lists them; Windows does not (not_supported), where the pipes name the
   * instances and each block is opened by name. */
  rc = mb_os_objects_list(MB_OS_LIST_SECTIONS, "membroker.", on_section, &f);
  if (rc == 0 || rc == MB_ENOTSUP) {
    /* Pipes: not listable under Wine (the locks name the live brokers there). */
    if ((rc = mb_os_objects_list(MB_OS_LIST_PIPES, "membroker-", on_pipe, &f)) == MB_ENOTSUP)
      pipes_listed = 0;
    if (rc == 0 || rc == MB_ENOTSUP)
      rc = mb_os_objects_list(MB_OS_LIST_LOCKS, "membroker.", on_lock, &f);
  }
  if (rc != 0) {
    fprintf(stderr, "mbctl: instances: %s\n", mb_last_error());
    code = EXIT_FAILED;
    goto done;
  }
  if (f.oom) {
    fprintf(stderr, "mbctl: instances: out of memory\n");
    code = EXIT_FAILED;
    goto done;
  }
  if (f.n > 1)
    qsort(f.list, (size_t)f.n, sizeof f.list[0], by_name);
  if (!json && f.n == 0) {
    printf("no membroker instances on this host\n");
    goto done;
  }
  if (!json)
    printf("%-20s %8s  %-8s  %-40s  %s\n", "INSTANCE", "PID", "STATE", "PIPE", "STATE OBJECT");
  for (i = 0; i < f.n; i++) {
    block_t b;
    char pipe[MB_PIPE_NAME_MAX];
    const char *state;
    read_block(f.list[i].name, &b);
    state = instance_state(&b);
    if (mb__pipe_name(f.list[i].name, pipe, sizeof pipe, NULL) != 0)
      snprintf(pipe, sizeof pipe, "?");
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddItemToArray(arr, o);
      cJSON_AddStringToObject(o, "instance", f.list[i].name);
      if (b.found)
        cJSON_AddNumberToObject(o, "pid", b.pid);
      else
        cJSON_AddNullToObject(o, "pid");
      cJSON_AddStringToObject(o, "state", state);
      cJSON_AddStringToObject(o, "pipe", pipe);
      if (pipes_listed)
        cJSON_AddBoolToObject(o, "pipe_found", f.list[i].pipe);
      else /* not known: the system does not list its pipes */
        cJSON_AddNullToObject(o, "pipe_found");
      cJSON_AddStringToObject(o, "state_object", b.object);
      cJSON_AddBoolToObject(o, "state_found", b.found);
    } else {
      char pid[16];
      snprintf(pid, sizeof pid, b.found ? "%u" : "-", (unsigned)b.pid);
      printf("%-20s %8s  %-8s  %-40s  %s\n", f.list[i].name, pid, state,
             f.list[i].pipe || !pipes_listed ? pipe : "-",
             b.found || f.list[i].section ? b.object : "-");
    }
  }
  if (json)
    print_json(arr);
done:
  cJSON_Delete(arr);
  free(f.list);
  return code;
}

/* ---- shutdown --wait --------------------------------------------------------------------- */

int mbctl_wait_exit(const cJSON *res, const char *instance, const char *pipe, int timeout_ms,
                    int quiet) {
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(res, "pid");
  const cJSON *start = cJSON_GetObjectItemCaseSensitive(res, "start_time");
  uint64_t t0 = mb_os_mono_ns(), deadline = t0 + (uint64_t)timeout_ms * 1000000u;
  mb_os_procid_t id;
  int by_pid = cJSON_IsNumber(pid) && cJSON_IsString(start);
  if (by_pid) {
    id.pid = (uint32_t)pid->valuedouble;
    id.start_time = strtoull(start->valuestring, NULL, 10);
  }
  for (;;) {
    int gone;
    if (by_pid) {
      gone = mb_os_proc_alive(&id) == 0;
    } else { /* a broker that does not say its pid: until its pipe is gone */
      mb_pipe_conn_t c;
      int rc = mb__pipe_connect(&c, pipe, 1000);
      gone = rc == MB_ENOTRUNNING;
      if (rc == 0)
        mb__pipe_close(&c);
    }
    if (gone) {
      double s = (double)(mb_os_mono_ns() - t0) / 1e9;
      if (quiet)
        return EXIT_OK;
      if (by_pid)
        printf("membroker '%s' has stopped (pid %u exited after %.1fs)\n", instance,
               (unsigned)id.pid, s);
      else
        printf("membroker '%s' has stopped (its pipe is gone after %.1fs)\n", instance, s);
      return EXIT_OK;
    }
    if (mb_os_mono_ns() >= deadline)
      break;
    mb_os_sleep_ms(20);
  }
  if (by_pid)
    fprintf(stderr,
            "mbctl: shutdown --wait: membroker '%s' (pid %u) is still running after %.1fs "
            "(--timeout %d)\n",
            instance, (unsigned)id.pid, timeout_ms / 1000.0, timeout_ms);
  else
    fprintf(stderr,
            "mbctl: shutdown --wait: membroker '%s' still answers on %s after %.1fs "
            "(--timeout %d)\n",
            instance, pipe, timeout_ms / 1000.0, timeout_ms);
  return EXIT_FAILED;
}

/* ---- did you mean ------------------------------------------------------------------------ */

/* The optimal string alignment distance of a and b (insert, delete, substitute, swap two
 * neighbours: "stauts" is one from "status"); words longer than 63 bytes count as far. */
static int edit_distance(const char *a, const char *b) {
  int d[64][64], la = (int)strlen(a), lb = (int)strlen(b), i, j;
  if (la > 63 || lb > 63)
    return 1000;
  for (i = 0; i <= la; i++)
    d[i][0] = i;
  for (j = 0; j <= lb; j++)
    d[0][j] = j;
  for (i = 1; i <= la; i++) {
    for (j = 1; j <= lb; j++) {
      int cost = a[i - 1] != b[j - 1], v = d[i - 1][j - 1] + cost;
      if (d[i - 1][j] + 1 < v)
        v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v)
        v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  }
  return d[la][lb];
}

const char *mbctl_did_you_mean(const char *word, const char *const *names, size_t n) {
  const char *best = NULL;
  int best_d = 1000;
  size_t i, len = strlen(word);
  char lower[64]; /* the names are lower case: STATUS and Status are status (Windows habits) */
  for (i = 0; i < len && i < sizeof lower - 1; i++)
    lower[i] = word[i] >= 'A' && word[i] <= 'Z' ? (char)(word[i] - 'A' + 'a') : word[i];
  lower[i] = '\0';
  if (len < sizeof lower)
    word = lower;
  for (i = 0; i < n; i++) {
    int d = edit_distance(word, names[i]);
    if (d < best_d) {
      best_d = d;
      best = names[i];
    }
  }
  /* Close enough to be a typo: at most 2 edits, and fewer than half the word's letters. */
  return best != NULL && best_d <= 2 && (size_t)best_d * 2 < len ? best : NULL;
}
