/*
 * run.c - the broker's event loop (libuv): start the broker's memory, tick (heartbeat and
 * client sweep) every MB_BROKER_TICK_MS, sweep at once when a client's process exits
 * (watch.h), save the state every persist.interval_ms (when persist.dir is set), stop
 * cleanly on request. Portable: signals go through uv_signal
 * (Ctrl-C on Windows consoles), cross-thread stop requests (the SCM handler) through uv_async.
 * The signals besides a stop (SIGHUP and SIGUSR1 reopen the log, SIGUSR2 logs a status line)
 * and the systemd watchdog's period come from the service glue (svc.h): the loop sends the
 * watchdog's pings from a timer, so a loop that is stuck stops them.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "broker.h"
#include "ctl.h"
#include "http.h"
#include "log.h"
#include "svc.h"
#include "watch.h"

typedef struct mb_run_s {
  uv_loop_t loop;
  uv_timer_t tick;
  uv_timer_t persist; /* saves the state every persist.interval_ms (persist.h) */
  uv_async_t stop;
  uv_signal_t sigint, sigterm;
  uv_signal_t sigreopen, sigreopen2, sigstatus; /* mb__svc_signals: started when not 0 */
  uv_timer_t watchdog;                          /* WATCHDOG=1 every mb__svc_watchdog_ms */
  mb_svc_signals_t sigs;                        /* which signal is which (the glue's) */
  mb_broker_t broker;
  mb_watch_t watch; /* the loop waits for client exits (watch.h) */
  int stopping;
} mb_run_t;

/* The running loop, for mb__run_request_stop. It is set and cleared under mb__running_lock,
 * and a stop request sends under it too, so a request from another thread (the SCM's control
 * handler) never reaches the stop handle after the loop has begun to close it. */
static mb_run_t *mb__running;
static mb_os_mutex_t mb__running_lock;
static int mb__running_lock_ready;

static void mb__set_running(mb_run_t *run) {
  mb_os_mutex_lock(&mb__running_lock);
  mb__running = run;
  mb_os_mutex_unlock(&mb__running_lock);
}

static void mb__on_tick(uv_timer_t *t) {
  mb_run_t *run = t->data;
  mb__broker_tick(&run->broker);
}

static void mb__on_persist(uv_timer_t *t) {
  mb_run_t *run = t->data;
  (void)mb__persist_flush(&run->broker); /* a failure is counted and logged */
}

static void mb__close_cb(uv_handle_t *h) {
  (void)h;
}

/* SIGHUP / SIGUSR1: reopen the log file (a failure keeps the old file and is logged). With no
 * log file (stderr, the journal) there is nothing to reopen: said once at info, so an operator
 * who sent the signal sees it was taken, then at debug (a reload per logrotate run would
 * otherwise add a line each time). */
static void mb__on_reopen(uv_signal_t *s, int signum) {
  mb_run_t *run = s->data;
  const char *name = signum == run->sigs.reopen ? run->sigs.reopen_name : run->sigs.reopen2_name;
  static int said;
  if (mb__log_path()[0] == '\0') {
    mb__log(said ? MB_LOG_DEBUG : MB_LOG_INFO,
            "%s: no log file to reopen: the log goes to stderr%s", name,
            said ? "" : " (this is said at debug level from now on)");
    said = 1;
    return;
  }
  mb_log_info("%s: reopening the log file", name);
  (void)mb__log_reopen();
}

/* SIGUSR2: one status line, for an operator without mbctl at hand. */
static void mb__on_status(uv_signal_t *s, int signum) {
  mb_run_t *run = s->data;
  const mb_state_t *st = run->broker.state;
  uint64_t rss = 0;
  (void)signum;
  if (st == NULL)
    return;
  mb_os_self_rss(&rss);
  mb_log_info("%s: instance %s, %llu players, %llu npcs, %u clients attached, %llu bytes "
              "committed, resident %llu KiB",
              run->sigs.status_name, run->broker.cfg.instance,
              (unsigned long long)mb_load64(&st->game.total_players),
              (unsigned long long)mb_load64(&st->game.total_npcs),
              (unsigned)mb_load32(&st->clients_attached),
              (unsigned long long)mb__broker_committed(&run->broker),
              (unsigned long long)(rss / 1024));
}

/* The systemd watchdog: the loop is alive. */
static void mb__on_watchdog(uv_timer_t *t) {
  (void)t;
  mb__svc_notify("WATCHDOG=1");
}

/* Close every handle of the loop (each once: mb__stop_loop and mb__abandon_loop). */
static void mb__close_handles(mb_run_t *run) {
  uv_close((uv_handle_t *)&run->tick, mb__close_cb);
  uv_close((uv_handle_t *)&run->persist, mb__close_cb);
  uv_close((uv_handle_t *)&run->watchdog, mb__close_cb);
  uv_close((uv_handle_t *)&run->stop, mb__close_cb);
  uv_close((uv_handle_t *)&run->sigint, mb__close_cb);
  uv_close((uv_handle_t *)&run->sigterm, mb__close_cb);
  uv_close((uv_handle_t *)&run->sigreopen, mb__close_cb);
  uv_close((uv_handle_t *)&run->sigreopen2, mb__close_cb);
  uv_close((uv_handle_t *)&run->sigstatus, mb__close_cb);
}

/* Begin the stop: game servers see "shutting down" first; then the loop's handles close. */
static void mb__stop_loop(mb_run_t *run, const char *why) {
  if (run->stopping)
    return;
  run->stopping = 1;
  mb__set_running(NULL);
  mb_log_info("stopping (%s)", why);
  mb__broker_begin_stop(&run->broker);
  mb__ctl_stop();
  mb__http_stop();
  mb__watch_stop(&run->watch);
  mb__close_handles(run);
}

static void mb__on_stop(uv_async_t *a) {
  mb__stop_loop(a->data, "stop requested");
}

static void mb__on_signal(uv_signal_t *s, int signum) {
  mb__stop_loop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

#ifndef MB_VERSION
#define MB_VERSION "0.0.0"
#endif

void mb__run_log_start(const char *mode, const char *config_path) {
  mb_log_info("membroker %s starting (%s mode, config %s)", MB_VERSION, mode,
              config_path ? config_path : "built-in defaults");
}

void mb__run_request_stop(void) {
  if (!mb__running_lock_ready)
    return; /* no loop has run yet */
  mb_os_mutex_lock(&mb__running_lock);
  if (mb__running != NULL)
    uv_async_send(&mb__running->stop);
  mb_os_mutex_unlock(&mb__running_lock);
}

/* Close the loop's handles and let their close callbacks run (start failed: nothing runs). */
static void mb__abandon_loop(mb_run_t *run) {
  run->stopping = 1;
  mb__set_running(NULL);
  mb__close_handles(run);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  uv_loop_close(&run->loop);
}

int mb__run(const mb_config_t *cfg, int flags, const mb_run_hooks_t *hooks) {
  static mb_run_t run;
  uint64_t t0 = mb_os_mono_ns(), rss = 0, watchdog_ms;
  mb_svc_signals_t *sigs = &run.sigs;
  int rc;

  memset(&run, 0, sizeof run);
  if (hooks && hooks->starting)
    hooks->starting(hooks->ctx, 1);
  if (!mb__running_lock_ready) {
    if (mb_os_mutex_init(&mb__running_lock) != 0) {
      mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot start: %s", mb_last_error());
      return 1;
    }
    mb__running_lock_ready = 1;
  }
  /* The loop and its signal handlers come first: a SIGTERM or a stop request that arrives
   * while the broker starts waits in the loop and stops it cleanly once it runs. */
  if ((rc = uv_loop_init(&run.loop)) != 0) {
    mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot start the event loop: %s",
                 uv_strerror(rc));
    return 1;
  }
  uv_timer_init(&run.loop, &run.tick);
  uv_timer_init(&run.loop, &run.persist);
  uv_async_init(&run.loop, &run.stop, mb__on_stop);
  uv_timer_init(&run.loop, &run.watchdog);
  uv_signal_init(&run.loop, &run.sigint);
  uv_signal_init(&run.loop, &run.sigterm);
  uv_signal_init(&run.loop, &run.sigreopen);
  uv_signal_init(&run.loop, &run.sigreopen2);
  uv_signal_init(&run.loop, &run.sigstatus);
  run.tick.data = run.persist.data = run.stop.data = run.sigint.data = run.sigterm.data = &run;
  run.sigreopen.data = run.sigreopen2.data = run.sigstatus.data = run.watchdog.data = &run;
  uv_signal_start(&run.sigint, mb__on_signal, SIGINT);
  uv_signal_start(&run.sigterm, mb__on_signal, SIGTERM);
  /* Handled, so none of them ends the broker any more (SIGHUP did, with 129). */
  mb__svc_signals(sigs);
  if (sigs->reopen != 0)
    uv_signal_start(&run.sigreopen, mb__on_reopen, sigs->reopen);
  if (sigs->reopen2 != 0)
    uv_signal_start(&run.sigreopen2, mb__on_reopen, sigs->reopen2);
  if (sigs->status != 0)
    uv_signal_start(&run.sigstatus, mb__on_status, sigs->status);
  mb__set_running(&run);

  /* `membroker run` logs to stderr: a log.file it does not write is said, not lost silently,
   * with what a service start (which writes it, and refuses one it cannot open) would say. */
  if (cfg->log_file[0] != '\0' && mb__log_path()[0] == '\0') {
    if (mb__config_check_log_file(cfg) != 0)
      mb_log_warn("log.file '%s' is not written: this broker logs to stderr (membroker run); a "
                  "service start would refuse it: %s",
                  cfg->log_file, mb_last_error());
    else
      mb_log_warn("log.file '%s' is not written: this broker logs to stderr (membroker run); "
                  "membroker service writes it",
                  cfg->log_file);
  }
  /* What --check-config checks on this machine, before anything is made: the same message. */
  if (mb__config_check_host(cfg, MB_CONFIG_CHECK_START, NULL, 0) != 0) {
    mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot start: %s", mb_last_error());
    mb__abandon_loop(&run);
    return 1;
  }
  if ((rc = mb__broker_start(&run.broker, cfg, flags)) != 0) {
    mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot start: %s", mb_last_error());
    mb__abandon_loop(&run);
    return 1;
  }
  if (hooks && hooks->starting)
    hooks->starting(hooks->ctx, 2);
  if ((rc = mb__ctl_start(&run.loop, &run.broker, mb__run_request_stop)) != 0) {
    mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot open the control pipe: %s",
                 mb_last_error());
    mb__broker_stop(&run.broker);
    mb__abandon_loop(&run);
    return 1;
  }
  /* The optional /metrics listener (http.h). One that cannot listen (its port taken) does not
   * stop the start: the game world is up, the error is logged and the listen retried (http.h);
   * only a value that is no address (config.c refuses it first) is a start error. */
  if (cfg->metrics_listen[0] != '\0' &&
      mb__http_start(&run.loop, &run.broker, cfg->metrics_listen) != 0) {
    mb_log_event(MB_EV_START_FAILED, MB_LOG_ERROR, "cannot start: %s", mb_last_error());
    mb__ctl_stop();
    mb__broker_stop(&run.broker);
    mb__abandon_loop(&run);
    return 1;
  }
  /* Death from the OS: an exiting client is seen at once; the tick's sweep stays the
   * fallback (a platform or process without a waitable watch is polled each tick). */
  if (mb__watch_start(&run.watch, &run.loop, &run.broker) != 0)
    mb_log_warn("client exits are seen at each sweep only (every %d ms): %s", MB_BROKER_TICK_MS,
                mb_last_error());
  uv_timer_start(&run.tick, mb__on_tick, MB_BROKER_TICK_MS, MB_BROKER_TICK_MS);
  if (run.broker.persist.enabled)
    uv_timer_start(&run.persist, mb__on_persist, run.broker.persist.interval_ms,
                   run.broker.persist.interval_ms);

  if ((watchdog_ms = mb__svc_watchdog_ms()) != 0) {
    mb_log_info("systemd watchdog: WATCHDOG=1 every %llu ms", (unsigned long long)watchdog_ms);
    uv_timer_start(&run.watchdog, mb__on_watchdog, watchdog_ms, watchdog_ms);
  }

  mb_os_self_rss(&rss);
  mb_log_info("ready in %.1f ms: instance %s, %llu bytes committed, resident %llu KiB",
              (double)(mb_os_mono_ns() - t0) / 1e6, cfg->instance,
              (unsigned long long)mb__broker_committed(&run.broker),
              (unsigned long long)(rss / 1024));
  if (hooks && hooks->ready)
    hooks->ready(hooks->ctx);

  uv_run(&run.loop, UV_RUN_DEFAULT);

  mb__set_running(NULL);
  if (hooks && hooks->stopping)
    hooks->stopping(hooks->ctx, 1);
  /* The last save, a step of its own (an SCM checkpoint: at PRESHUTDOWN it is what must be
   * done before Windows goes down). Once it is done, mb__broker_stop's own save has nothing
   * left to do; after a failure it tries once more. */
  if (run.broker.persist.enabled) {
    uint64_t s0 = mb_os_mono_ns();
    if (mb__persist_flush(&run.broker) == 0) {
      mb_log_info("state saved in %s before stopping (%.1f ms)", run.broker.persist.dir,
                  (double)(mb_os_mono_ns() - s0) / 1e6);
      run.broker.persist.enabled = 0;
    }
  }
  if (hooks && hooks->stopping)
    hooks->stopping(hooks->ctx, 2);
  mb__broker_stop(&run.broker);
  if (hooks && hooks->stopping)
    hooks->stopping(hooks->ctx, 3);
  uv_loop_close(&run.loop);
  mb_log_info("stopped");
  return 0;
}
