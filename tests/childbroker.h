/*
 * childbroker.h - a broker in a child process for the tests that talk to it over its control
 * pipe (test-protocol.c, test-mbctl.c, test-api.c, test-metrics.c, ...), and the client-side
 * helpers they share.
 *
 * childbroker.c defines CHILD(serve): the test binary itself, run as a child, starts a small
 * broker (fx_config), a libuv loop and the control server, serves until `shutdown`, and
 * stops on its own when the parent test dies. The parent starts it with broker_up*() and
 * stops it with broker_down() (or a `shutdown` of its own, then broker_wait_exit()).
 *
 * Every helper fails the test (FAIL, task.h) instead of returning an error.
 */
#ifndef MB_CHILDBROKER_H
#define MB_CHILDBROKER_H

#include "task.h"

#include <cjson/cJSON.h>

#include "config.h"
#include "fixture.h"
#include "os.h"

#define T_READ_MS 10000 /* generous: Wine and sanitizers are slow */

/* A broker child as the parent sees it. Zero it before the first use. */
typedef struct {
  mb_os_child_t child;
  char instance[MB_INSTANCE_MAX];
  char pipe[MB_PIPE_NAME_MAX];
  int is_path; /* the pipe is a socket file (POSIX) */
} tbroker_t;

/*
 * A test file's own broker config: BROKER_CONFIG(name, fn) at file scope registers
 * void fn(mb_config_t *cfg), which the child applies to fx_config's config when started with
 * the option "config=name" (broker_spawn_ex). The test can call fn itself for a broker in its
 * own process, so the child's config and its own are written once.
 */
typedef void (*tbroker_config_fn)(mb_config_t *cfg);
void broker_config_register(const char *name, tbroker_config_fn fn);
#define BROKER_CONFIG(name, fn)                                                                    \
  MB_TEST_CTOR(mb_reg_broker_config_##name) {                                                      \
    broker_config_register(#name, fn);                                                             \
  }

/* Name the broker "p<pid><tag>" (unique to this test process) and find its pipe's name. */
void broker_name(tbroker_t *t, const char *tag);

/*
 * Start the broker child without waiting for it: pipe.max_line, pipe.max_connections, the
 * pipe's mode (octal text, "600") and pipe.operators_group (NULL: none). Names it with
 * broker_name(t, tag) unless t->instance is already set.
 */
void broker_spawn(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns,
                  const char *mode, const char *group);

/*
 * broker_spawn with lines up to 4096 bytes, no group, and the child's "key=value" options
 * `opts` (NULL-terminated, 5 at most, applied in order after the arguments): admin_reserve=N,
 * idle_ms=N, line_ms=N, max_line=N (pipe.*), nofile=N (RLIMIT_NOFILE, POSIX only), log=FILE
 * (log there at debug level), config=NAME (the test file's BROKER_CONFIG(NAME, fn) writer).
 * An unknown option or writer makes the child exit 100 with the option on stderr.
 */
void broker_spawn_ex(tbroker_t *t, const char *tag, const char *max_conns, const char *mode,
                     const char *const *opts);

/* Wait until the child's pipe answers; fails at once if the child exits first. */
void broker_wait_ready(tbroker_t *t);

/* broker_spawn + broker_wait_ready, with the defaults for what is not given (4096 bytes,
 * 1024 connections, mode 600, no group). */
void broker_up3(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns,
                const char *mode);
void broker_up2(tbroker_t *t, const char *tag, const char *max_line, const char *max_conns);
void broker_up(tbroker_t *t, const char *tag);

/* broker_spawn_ex + broker_wait_ready for a child with the test file's BROKER_CONFIG `config`
 * and the pipe as the built-in defaults (lines up to 64 KiB, 1024 connections, mode 660). */
void broker_up_config(tbroker_t *t, const char *tag, const char *config);

/* Wait for the child to exit (up to 20 s, else kill it and fail) and return its exit code. */
int broker_wait_exit(tbroker_t *t);

/* Send `shutdown`, expect ok, and expect the child to exit 0. */
void broker_down(tbroker_t *t);

/* A fresh client still gets a full status with this broker's instance name. */
void fresh_status(tbroker_t *t);

/* Client entry i in `state` under `name`, held by this process, as the client library fills
 * it in (an attached one with a fresh heartbeat). */
void fake_client(mb_state_t *st, uint32_t i, uint32_t state, const char *name);

/* Entry j of client i's private-memory row, written as the client library does: name and
 * figures first, the kind last (release); the row's publication time is now. */
void fake_mem(mb_state_t *st, uint32_t i, int j, uint32_t kind, const char *name, uint32_t detail,
              uint64_t in_use, uint64_t peak, uint64_t committed, uint64_t allocs, uint64_t frees,
              uint64_t failures, uint64_t objects);

/* Write all of text[0..len). */
void send_text(mb_pipe_conn_t *c, const char *text, size_t len);

/* Read one line (T_READ_MS at most) and parse it; fails unless it is a JSON object. */
cJSON *read_json(mb_pipe_conn_t *c);

/* Send `line` plus a newline and return the parsed response. */
cJSON *call(mb_pipe_conn_t *c, const char *line);

/* The member at a dotted path ("error.code"), or NULL. */
const cJSON *jget(const cJSON *j, const char *path);
/* The string at path, or NULL if it is missing or not a string. */
const char *jstr(const cJSON *j, const char *path);
/* The number at path; fails the test if it is missing or not a number. */
double jnum(const cJSON *j, const char *path);

/* The response is ok:true. */
void expect_ok(cJSON *r);
/* The response is an error with `code`, and a message of some length. */
void expect_error(cJSON *r, const char *code);
/* expect_error, a message that contains message_part, then r is deleted. */
void expect_fail(cJSON *r, const char *code, const char *message_part);

#endif /* MB_CHILDBROKER_H */
