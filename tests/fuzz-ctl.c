/*
 * fuzz-ctl.c - libFuzzer target for the control protocol: the request parser and the
 * dispatcher (mb__ctl_handle_request, mb__ctl_handle_line) with every command of the table,
 * run against one small broker that is started once per process.
 *
 * An input is what a client writes to the control pipe: it is split on '\n' as the pipe
 * server splits it (a final line without a newline is answered too, as at end of input), and
 * a line longer than pipe.max_line gets the server's too_large answer instead. Each line is
 * copied into a buffer of its own exact size, so a read past its end is caught by
 * AddressSanitizer. A line that ends in a space or a tab (which the dispatcher trims anyway)
 * is answered as a peer that is not an administrator, any other line as an administrator, so
 * one mutation flips a line between the two.
 *
 * Besides crashes, leaks and undefined behaviour, the target checks what the protocol
 * promises about every answer: one line (no newline inside), valid UTF-8 without NUL, a JSON
 * object with "id" and a boolean "ok", and for an error an "error" object whose "code" is
 * one of the protocol's codes and whose "message" is a string. And a line the quick path
 * (mb__ctl_quick) answers must get there the very bytes the full path gives it. A broken
 * promise aborts.
 *
 * `shutdown` only sets stop_after (nothing is stopped); `watch` only returns effects (its id
 * text is freed here). What `set-status` and `set-message` change is put back after each
 * input, so an input's answers do not depend on the inputs before it. The broker is torn down
 * at exit (atexit), so a finished run leaves nothing in /dev/shm; its lock file goes to
 * $MEMBROKER_RUNTIME_DIR (scripts/test.sh points it into the build folder). A crash skips
 * atexit: the instance name is printed at start ("fuzz-ctl: broker instance 'fz123' started")
 * so the caller can remove what it left (/dev/shm/membroker.fz123.*); scripts/test.sh does.
 *
 *   build/fuzz/fuzz-ctl -dict=tests/corpus/ctl.dict CORPUS_COPY_DIR   fuzz (writes to the dir)
 *   build/fuzz/fuzz-ctl FILE...                                        replay inputs
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "atomics.h"
#include "broker.h"
#include "ctl.h"
#include "log.h"

#define FZ_MAX_LINE 1024 /* pipe.max_line: its smallest allowed value, so fuzzing reaches it */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mb_broker_t fz_broker;
static int fz_started;

/* Stop the broker: its shared-memory objects are unlinked and its lock released. */
static void fz_stop(void) {
  if (!fz_started)
    return;
  fz_started = 0;
  mb__broker_begin_stop(&fz_broker);
  mb__broker_stop(&fz_broker);
  mb__log_close();
}

/* A broken protocol promise: say which, with the answer, and abort (libFuzzer saves the input). */
static void fz_fail(const char *what, const char *answer) {
  fprintf(stderr, "fuzz-ctl: broken promise: %s\nanswer: %s\n", what, answer);
  abort();
}

/* The request-level error codes the protocol documents (README.md), written out here rather
 * than taken from MB_CTL_ERROR_MAP, so a changed or unknown code is caught. A handler's error
 * is named by mb_err_name() of its MB_E* code (except invalid_argument, answered bad_args). */
static const char *const fz_codes[] = {"bad_json", "bad_request", "unknown_command",
                                       "bad_args", "forbidden",   "too_large",
                                       "busy",     "internal"};

/* 1 if `code` is the name of an MB_E* code a handler may answer with. */
static int fz_handler_code(const char *code) {
  int e;
  for (e = -1; e >= -64; e--) {
    const char *name = mb_err_name(e);
    if (e != MB_EINVAL && strcmp(name, "unknown") != 0 && strcmp(name, code) == 0)
      return 1;
  }
  return 0;
}

/* Check one answer line against what protocol.h promises. */
static void fz_check(const char *answer) {
  const cJSON *ok, *err, *code, *msg;
  cJSON *r;
  size_t n = strlen(answer);
  if (memchr(answer, '\n', n) != NULL)
    fz_fail("the answer holds a newline: it would be two lines on the pipe", answer);
  if (mb__utf8_invalid(answer, n, 0) != n)
    fz_fail("the answer is not valid UTF-8", answer);
  if ((r = cJSON_ParseWithLength(answer, n)) == NULL)
    fz_fail("the answer is not JSON", answer);
  if (!cJSON_IsObject(r))
    fz_fail("the answer is not a JSON object", answer);
  if (cJSON_GetObjectItemCaseSensitive(r, "id") == NULL)
    fz_fail("the answer has no \"id\"", answer);
  ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
  if (!cJSON_IsBool(ok))
    fz_fail("the answer's \"ok\" is not a boolean", answer);
  if (cJSON_IsFalse(ok)) {
    size_t i;
    int known = 0;
    err = cJSON_GetObjectItemCaseSensitive(r, "error");
    code = cJSON_GetObjectItemCaseSensitive(err, "code");
    msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (!cJSON_IsObject(err) || !cJSON_IsString(code) || !cJSON_IsString(msg))
      fz_fail("an error answer without error.code and error.message strings", answer);
    for (i = 0; i < sizeof fz_codes / sizeof fz_codes[0]; i++)
      known |= strcmp(code->valuestring, fz_codes[i]) == 0;
    if (!known && !fz_handler_code(code->valuestring))
      fz_fail("an error answer with an unknown code", answer);
  } else if (cJSON_GetObjectItemCaseSensitive(r, "result") == NULL) {
    fz_fail("an ok answer without \"result\"", answer);
  }
  cJSON_Delete(r);
}

/*
 * Answer one line (copied to a buffer of exactly its size) and check the answer. An
 * administrator's line goes through mb__ctl_handle_request (the pipe server's entry, with
 * effects), any other through mb__ctl_handle_line (the one without).
 */
static void fz_line(const char *line, size_t len, int admin) {
  mb_ctl_effects_t fx;
  char *copy = malloc(len ? len : 1), *answer, quick[MB_CTL_QUICK_MAX];
  size_t nquick;
  int stop = 0;
  if (copy == NULL)
    abort();
  memcpy(copy, line, len);
  nquick = mb__ctl_quick(&fz_broker, copy, len, quick);
  if (admin) {
    answer = mb__ctl_handle_request(&fz_broker, copy, len, 1, &fx);
    if (fx.watch != 1 && fx.watch_id != NULL)
      fz_fail("watch_id set without watch == 1", answer ? answer : "(none)");
    cJSON_free(fx.watch_id);
  } else {
    answer = mb__ctl_handle_line(&fz_broker, copy, len, 0, &stop);
    if (stop)
      fz_fail("a peer that is not an administrator stopped the broker", answer ? answer : "-");
  }
  if (answer != NULL)
    fz_check(answer);
  if (nquick > 0 && (answer == NULL || strlen(answer) != nquick || memcmp(answer, quick, nquick)))
    fz_fail("the quick path's answer differs from the full path's", answer ? answer : "(none)");
  cJSON_free(answer);
  free(copy);
}

/* Start the one broker of this process: a unique instance, two tiny regions. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  mb_config_t cfg;
  mb_os_procid_t self;
  (void)argc;
  (void)argv;
  mb__log_open(MB_LOG_ERROR, "");
  mb_os_proc_self(&self);
  mb__config_defaults(&cfg);
  snprintf(cfg.instance, sizeof cfg.instance, "fz%u", (unsigned)self.pid);
  cfg.pipe_max_line = FZ_MAX_LINE;
  cfg.nregions = 2;
  memset(cfg.regions, 0, sizeof cfg.regions);
  snprintf(cfg.regions[0].name, sizeof cfg.regions[0].name, "world");
  cfg.regions[0].size = 64 * 1024;
  snprintf(cfg.regions[1].name, sizeof cfg.regions[1].name, "players");
  cfg.regions[1].size = 256 * 1024;
  cfg.regions[1].lazy = 1;
  cfg.regions[1].slot_size = 1024;
  if (mb__broker_start(&fz_broker, &cfg, 0) != 0) {
    fprintf(stderr, "fuzz-ctl: cannot start the broker: %s\n", mb_last_error());
    exit(1);
  }
  fz_started = 1;
  atexit(fz_stop);
  fprintf(stderr, "fuzz-ctl: broker instance '%s' started\n", cfg.instance);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  size_t pos = 0;
  while (pos < size) {
    const char *nl = memchr(text + pos, '\n', size - pos);
    size_t n = nl ? (size_t)(nl - (text + pos)) : size - pos;
    if (n > FZ_MAX_LINE) {
      char *answer = mb__ctl_error_line(MB_CTL_ETOO_LARGE, "request line too long: skipped");
      if (answer == NULL)
        abort();
      fz_check(answer);
      cJSON_free(answer);
    } else {
      int admin = !(n > 0 && (text[pos + n - 1] == ' ' || text[pos + n - 1] == '\t'));
      fz_line(text + pos, n, admin);
    }
    pos += n + 1;
  }
  /* Put back what set-status and set-message changed. */
  mb_store32(&fz_broker.state->game.server_status, MB_STATUS_RUNNING);
  if (mb__state_write_msg(fz_broker.state, "") != 0)
    abort();
  return 0;
}
