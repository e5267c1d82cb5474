#include "launcher/supervisor.h"

#include "common/clock.h"
#include "common/crypto.h"
#include "common/diskspace.h"
#include "common/duration.h"
#include "common/log.h"
#include "launcher/container.h"
#include "launcher/docker_auth.h"
#include "launcher/rundir_write.h"
#include "launcher/spool_tail.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The worker SIGKILLs a phase kill_grace after SIGTERM; the launcher waits
 * this much longer, so that the worker can still write its result. */
#define KILL_SLACK_MS    2000
#define POLL_INOTIFY_MS  1000 /* inotify says when the spool grows; this is a safety net */
#define POLL_FALLBACK_MS 100
#define WAIT_RETRY_MS    1000
#define ORPHAN_GRACE_MS  (10LL * 1000)
#define MAX_LEFTOVERS    256

/* davit-worker's exit code when it cannot write the spool (docs/worker.md). */
#define WORKER_EXIT_SPOOL 70

struct run {
    struct run_state rs;
    char dir[4200];
    char spool[4300];
    int64_t kill_grace_ms;
    int print;   /* show its records: the run exec was asked for */
    int abandon; /* a leftover of another spec: stop it at once */
    /* what following it found */
    int have_result;
    struct run_result r;             /* from the R record */
    char phase[SPOOL_PHASE_MAX + 1]; /* the phase running last */
    const char *deadline;            /* set when a launcher deadline stopped it */
    int canceled;
    int exited;
    long status;
    int tampered; /* spool_error says how ("spool tampered: …") */
    char spool_error[512];
    uint64_t spool_end; /* after the last complete record read */
};

int sup_poll_signals(struct supervisor *s)
{
    struct signalfd_siginfo si;
    if (s->hooks) {
        /* An eventfd: drained, then the hooks say what was asked. */
        while (s->sigfd >= 0 && read(s->sigfd, &si, sizeof(si)) > 0)
            ;
        int c = s->hooks->cancel(s->hooks->arg, s->cancel_reason, sizeof(s->cancel_reason));
        if (c && !s->cancel_signal)
            s->cancel_signal = SIGTERM;
        if (c > 1)
            s->n_signals = 2;
        return s->cancel_signal != 0;
    }
    while (s->sigfd >= 0 && read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (!s->cancel_signal)
            s->cancel_signal = (int)si.ssi_signo;
        s->n_signals++;
    }
    return s->cancel_signal != 0;
}

static const char *sig_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* Who canceled: "SIGTERM", or the daemon's reason ("the user"). */
static const char *cancel_who(const struct supervisor *s)
{
    return s->cancel_reason[0] ? s->cancel_reason : sig_name(s->cancel_signal);
}

/* The same for a result's reason: "SIGTERM to davit-launcher", or the daemon's reason. */
static const char *cancel_by(const struct supervisor *s, char *buf, size_t size)
{
    if (s->cancel_reason[0])
        return s->cancel_reason;
    snprintf(buf, size, "%s to davit-launcher", sig_name(s->cancel_signal));
    return buf;
}

static int abort_cb(void *arg)
{
    return sup_poll_signals(arg);
}

static void note(struct supervisor *s, struct run *run, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message for the user, on stdout with the run's records; also logged. */
static void note(struct supervisor *s, struct run *run, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_event(LOG_INFO, msg, "run", run->rs.run_id, (const char *)NULL);
    if (run->print) {
        printer_note(s->printer, msg);
        printer_flush(s->printer);
    }
}

static void set_result(struct run_result *res, enum outcome o, const char *phase, int exit_status,
                       const char *reason)
{
    res->outcome = o;
    snprintf(res->phase, sizeof(res->phase), "%s", phase ? phase : "");
    res->exit_status = exit_status;
    res->duration_ms = 0;
    snprintf(res->reason, sizeof(res->reason), "%s", reason);
}

/* "outcome=failed phase=plan exit=1 duration_ms=12 reason=…" */
static void parse_result(const struct spool_record *r, struct run_result *res)
{
    char v[1024];
    set_result(res, OUTCOME_FAILED, "", -1, "");
    if (spool_kv(r->data, r->len, "outcome", v, sizeof(v)) == 0 &&
        outcome_parse(v, &res->outcome) < 0)
        res->outcome = OUTCOME_FAILED;
    if (spool_kv(r->data, r->len, "phase", v, sizeof(v)) == 0 && strcmp(v, SPOOL_NO_PHASE) != 0)
        snprintf(res->phase, sizeof(res->phase), "%s", v);
    if (spool_kv(r->data, r->len, "exit", v, sizeof(v)) == 0)
        res->exit_status = atoi(v);
    if (spool_kv(r->data, r->len, "duration_ms", v, sizeof(v)) == 0)
        res->duration_ms = strtoll(v, NULL, 10);
    spool_kv(r->data, r->len, "reason", res->reason, sizeof(res->reason));
}

struct follow_ctx {
    struct supervisor *s;
    struct run *run;
};

static int on_record(const struct spool_record *r, void *arg)
{
    struct follow_ctx *ctx = arg;
    struct run *run = ctx->run;
    if (r->type == SPOOL_RESULT) {
        parse_result(r, &run->r);
        run->have_result = 1;
    } else if (r->type == SPOOL_PHASE_START) {
        snprintf(run->phase, sizeof(run->phase), "%s", r->phase);
    }
    /* A closed stdout does not stop the run; the result still decides the exit code. */
    if (run->print)
        printer_record(ctx->s->printer, r);
    if (ctx->s->hooks)
        ctx->s->hooks->record(ctx->s->hooks->arg, &run->rs, r);
    return 0;
}

static void signal_container(struct supervisor *s, struct run *run, const char *sig)
{
    char err[1024];
    if (docker_container_kill(s->docker, run->rs.container, sig, err, sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot signal the container", "run", run->rs.run_id, "error", err,
                  (const char *)NULL);
}

static int64_t clamp_wait(int64_t timeout, int64_t at, int64_t now)
{
    if (!at)
        return timeout;
    int64_t left = at - now;
    if (left < 0)
        left = 0;
    return left < timeout ? left : timeout;
}

/* Stops the container gracefully: SIGTERM now, SIGKILL at *kill_at. */
static void begin_stop(struct supervisor *s, struct run *run, int64_t now, int64_t *kill_at)
{
    signal_container(s, run, "SIGTERM");
    *kill_at = now + run->kill_grace_ms + KILL_SLACK_MS;
}

/*
 * Follows the spool until the container has stopped, printing and saving
 * the offset as records arrive; enforces the launcher's deadlines and
 * cancellation. Returns 0, or -1 with err when following is impossible.
 */
static int follow(struct supervisor *s, struct run *run, char *err, size_t errsz)
{
    const struct launcher_config *cfg = s->cfg;
    struct follow_ctx ctx = {s, run};
    struct spool_tail t;
    struct docker_wait *w = NULL;
    char werr[1024], buf[4096];
    int ino = -1, stopping = 0, killed = 0, spool_ok = 1;
    int64_t now = clock_mono_ms(), run_deadline = 0, logs_deadline = 0, kill_at = 0;
    int64_t wait_retry_at = 0, result_at = 0, hook_wait = POLL_INOTIFY_MS;

    /* The daemon reads from the start, so that an adopted run still sees its
     * R record; its hooks skip what they handled before (by seq). */
    if (spool_tail_init(&t, run->spool, s->hooks ? 0 : run->rs.offset, err, errsz) < 0)
        return -1;
    t.seq = s->hooks ? 0 : run->rs.seq;
    if (run->rs.has_key) {
        spool_tail_set_key(&t, run->rs.key);
    } else {
        /* A spool that cannot be verified is not believed at all. */
        snprintf(run->spool_error, sizeof(run->spool_error),
                 "the run's state has no spool key, so its spool cannot be verified");
        spool_ok = 0;
        signal_container(s, run, "SIGKILL");
        killed = 1;
    }
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino >= 0 && inotify_add_watch(ino, run->dir, IN_MODIFY | IN_CREATE) < 0) {
        close(ino);
        ino = -1;
    }
    if (cfg->run_timeout_ms) {
        /* An adopted run keeps the deadline it started with. */
        int64_t elapsed = run->rs.started_ms ? clock_wall_ms() - run->rs.started_ms : 0;
        run_deadline = now + cfg->run_timeout_ms - (elapsed > 0 ? elapsed : 0);
    }
    if (cfg->logs_timeout_ms)
        logs_deadline = now + cfg->logs_timeout_ms;
    if (docker_wait_begin(s->docker, run->rs.container, &w, werr, sizeof(werr)) < 0) {
        log_event(LOG_WARN, "cannot wait for the container; retrying", "run", run->rs.run_id,
                  "error", werr, (const char *)NULL);
        wait_retry_at = now + WAIT_RETRY_MS;
    }

    for (;;) {
        now = clock_mono_ms();
        int64_t timeout = ino >= 0 ? POLL_INOTIFY_MS : POLL_FALLBACK_MS;
        if (hook_wait < timeout)
            timeout = hook_wait < 0 ? 0 : hook_wait;
        if (!stopping && !run->have_result) {
            timeout = clamp_wait(timeout, run_deadline, now);
            timeout = clamp_wait(timeout, logs_deadline, now);
        }
        timeout = clamp_wait(timeout, killed ? 0 : kill_at, now);
        timeout = clamp_wait(timeout, w ? 0 : wait_retry_at, now);

        struct curl_waitfd fds[2];
        unsigned nfds = 0;
        if (ino >= 0)
            fds[nfds++] = (struct curl_waitfd){ino, CURL_WAIT_POLLIN, 0};
        if (s->sigfd >= 0)
            fds[nfds++] = (struct curl_waitfd){s->sigfd, CURL_WAIT_POLLIN, 0};
        if (w) {
            int wr = docker_wait_step(w, fds, nfds, (int)timeout, &run->status, werr, sizeof(werr));
            if (wr < 0) {
                log_event(LOG_WARN, "lost the wait for the container; retrying", "run",
                          run->rs.run_id, "error", werr, (const char *)NULL);
                docker_wait_end(w);
                w = NULL;
                wait_retry_at = clock_mono_ms() + WAIT_RETRY_MS;
            } else if (wr == 1) {
                run->exited = 1;
            }
        } else {
            struct pollfd pfd[2];
            for (unsigned i = 0; i < nfds; i++)
                pfd[i] = (struct pollfd){fds[i].fd, POLLIN, 0};
            poll(pfd, nfds, (int)timeout);
            if (clock_mono_ms() >= wait_retry_at &&
                docker_wait_begin(s->docker, run->rs.container, &w, werr, sizeof(werr)) < 0)
                wait_retry_at = clock_mono_ms() + WAIT_RETRY_MS;
        }
        if (ino >= 0)
            while (read(ino, buf, sizeof(buf)) > 0)
                ;

        /* After the wait said "stopped", this read sees everything the worker wrote. */
        if (spool_ok) {
            int n =
                spool_tail_read(&t, on_record, &ctx, run->spool_error, sizeof(run->spool_error));
            if (n < 0) {
                log_event(LOG_ERROR, "cannot follow the spool; stopping the run", "run",
                          run->rs.run_id, "error", run->spool_error, (const char *)NULL);
                run->tampered = t.tampered;
                spool_ok = 0;
                signal_container(s, run, "SIGKILL");
                killed = 1;
            }
            if (n > 0 && !s->hooks) {
                char serr[1024];
                if (run->print)
                    printer_flush(s->printer);
                run->rs.offset = t.offset;
                run->rs.seq = t.seq;
                if (state_run_save(s->state, &run->rs, serr, sizeof(serr)) < 0)
                    log_event(LOG_WARN, "cannot save the spool offset", "run", run->rs.run_id,
                              "error", serr, (const char *)NULL);
            }
            if (n > 0)
                logs_deadline = cfg->logs_timeout_ms ? clock_mono_ms() + cfg->logs_timeout_ms : 0;
        }
        run->spool_end = t.offset;
        if (s->hooks)
            hook_wait = s->hooks->tick(s->hooks->arg, &run->rs, t.offset);
        if (run->exited)
            break;

        now = clock_mono_ms();
        sup_poll_signals(s);
        if (run->have_result) {
            /* The worker is done; it only has to exit. */
            if (!result_at)
                result_at = now;
            if (!killed && now - result_at > run->kill_grace_ms + KILL_SLACK_MS) {
                signal_container(s, run, "SIGKILL");
                killed = 1;
            }
            continue;
        }
        if (!stopping) {
            char d[32];
            if (run->abandon) {
                stopping = 1;
            } else if (s->cancel_signal) {
                run->canceled = 1;
                stopping = 1;
                note(s, run, "canceled by %s: stopping the container (SIGTERM, SIGKILL after %s)",
                     cancel_who(s),
                     duration_format(run->kill_grace_ms + KILL_SLACK_MS, d, sizeof(d)));
            } else if (run_deadline && now >= run_deadline) {
                run->deadline = "run timeout";
                stopping = 1;
                note(s, run,
                     "run timeout (%s, DAVIT_LAUNCHER_RUN_TIMEOUT) expired: stopping the "
                     "container",
                     duration_format(cfg->run_timeout_ms, d, sizeof(d)));
            } else if (logs_deadline && now >= logs_deadline) {
                run->deadline = "no output";
                stopping = 1;
                note(s, run,
                     "no output for %s (DAVIT_LAUNCHER_LOGS_TIMEOUT): stopping the "
                     "container",
                     duration_format(cfg->logs_timeout_ms, d, sizeof(d)));
            }
            if (stopping)
                begin_stop(s, run, now, &kill_at);
        } else if (!killed && (now >= kill_at || s->n_signals > 1)) {
            note(s, run, "the container is still running: sending SIGKILL");
            signal_container(s, run, "SIGKILL");
            killed = 1;
        }
    }
    if (spool_tail_pending(&t))
        log_event(LOG_WARN, "the spool ends in a partial record", "run", run->rs.run_id,
                  (const char *)NULL);
    docker_wait_end(w);
    if (ino >= 0)
        close(ino);
    spool_tail_free(&t);
    return 0;
}

/*
 * The worker could not write its spool: when the state directory's
 * filesystem is full, that is the reason, named (docs/launcher.md).
 * Returns 1 with reason filled, 0 when space is not the cause.
 */
static int out_of_space(const char *dir, char *reason, size_t size)
{
    struct diskspace ds;
    char left[32];
    if (diskspace_get(dir, &ds) < 0 || !diskspace_full(&ds))
        return 0;
    snprintf(reason, size,
             "no space left on the launcher's state directory (%s has %s free): the worker could "
             "not write the run's spool",
             dir, diskspace_format(ds.free_bytes, left, sizeof(left)));
    return 1;
}

/* True when the worker's exit code says it recorded a result (outcome.h). */
static int worker_recorded(long status)
{
    static const enum outcome recorded[] = {OUTCOME_FINISHED, OUTCOME_FAILED, OUTCOME_TIMED_OUT,
                                            OUTCOME_CANCELED};
    for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++)
        if (status == outcome_exit_code(recorded[i]))
            return 1;
    return 0;
}

/* The outcome, from the R record, the launcher's own actions, and the Engine's view. */
static void decide(struct supervisor *s, struct run *run, struct run_result *res)
{
    char err[1024], reason[1024];
    json_t *info = NULL;
    int oom = 0;
    const char *derr = NULL;

    if (docker_container_inspect(s->docker, run->rs.container, &info, err, sizeof(err)) == 1) {
        json_t *st = json_object_get(info, "State");
        oom = json_is_true(json_object_get(st, "OOMKilled"));
        derr = json_string_value(json_object_get(st, "Error"));
        json_t *code = json_object_get(st, "ExitCode");
        if (json_is_integer(code))
            run->status = (long)json_integer_value(code);
    }
    if (run->tampered) {
        /* Nothing the run's code may have written decides its outcome. */
        set_result(res, OUTCOME_FAILED, run->phase, -1, run->spool_error);
    } else if (!run->have_result && !run->spool_error[0] && worker_recorded(run->status)) {
        snprintf(reason, sizeof(reason),
                 "spool tampered: the worker exited with code %ld, which says it recorded a "
                 "result, but the spool has no result record",
                 run->status);
        set_result(res, OUTCOME_FAILED, run->phase, -1, reason);
    } else if (run->deadline) {
        char d[32];
        int64_t ms = strcmp(run->deadline, "run timeout") == 0 ? s->cfg->run_timeout_ms
                                                               : s->cfg->logs_timeout_ms;
        snprintf(reason, sizeof(reason), "launcher: %s (%s) expired", run->deadline,
                 duration_format(ms, d, sizeof(d)));
        set_result(res, OUTCOME_TIMED_OUT, run->phase, -1, reason);
    } else if (run->have_result) {
        *res = run->r;
        /* The worker saw the Engine's SIGTERM; the user sent something else. */
        if (run->canceled && res->outcome == OUTCOME_CANCELED)
            snprintf(res->reason, sizeof(res->reason), "canceled by %s",
                     cancel_by(s, reason, sizeof(reason)));
        /* Only a cancel this launcher carried out is "canceled": a SIGTERM it
         * did not send came from the Engine stopping the container. */
        if (!run->canceled && res->outcome == OUTCOME_CANCELED) {
            res->outcome = OUTCOME_FAILED;
            snprintf(reason, sizeof(reason),
                     "the Docker Engine stopped the run's container (the Engine restarted or shut "
                     "down, or someone ran docker stop); the worker said: %s",
                     run->r.reason);
            snprintf(res->reason, sizeof(res->reason), "%s", reason);
        }
        if (oom && res->outcome == OUTCOME_FAILED) {
            snprintf(reason, sizeof(reason), "out of memory (OOMKilled): %s", run->r.reason);
            snprintf(res->reason, sizeof(res->reason), "%s", reason);
        }
    } else if (run->canceled) {
        char by[128];
        snprintf(reason, sizeof(reason), "canceled by %s", cancel_by(s, by, sizeof(by)));
        set_result(res, OUTCOME_CANCELED, run->phase, -1, reason);
    } else if (oom) {
        set_result(res, OUTCOME_FAILED, run->phase, -1, "out of memory (OOMKilled)");
    } else if (run->spool_error[0]) {
        set_result(res, OUTCOME_FAILED, run->phase, -1, run->spool_error);
    } else if (run->status == WORKER_EXIT_SPOOL &&
               out_of_space(s->state->dir, reason, sizeof(reason))) {
        set_result(res, OUTCOME_FAILED, run->phase, -1, reason);
    } else {
        snprintf(reason, sizeof(reason),
                 "the worker exited with code %ld without recording a result%s%s", run->status,
                 derr && *derr ? ": " : "", derr && *derr ? derr : "");
        set_result(res, OUTCOME_FAILED, run->phase, -1, reason);
    }
    if (!run->have_result || run->deadline)
        res->duration_ms = run->rs.started_ms ? clock_wall_ms() - run->rs.started_ms : 0;
    json_decref(info);
}

/* Removes the container, the run directory and the run's state. */
static void cleanup(struct supervisor *s, struct run *run)
{
    char err[1024];
    if (sup_remove(s, &run->rs, err, sizeof(err)) < 0) {
        log_event(LOG_WARN, "cannot clean up the run", "run", run->rs.run_id, "error", err,
                  (const char *)NULL);
        if (run->rs.container[0])
            return; /* the state is kept so that the next start tries again */
    }
    if (state_run_forget(s->state, run->rs.run_id, err, sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot remove the run's state", "run", run->rs.run_id, "error", err,
                  (const char *)NULL);
}

static void run_paths(struct supervisor *s, struct run *run)
{
    state_run_dir(s->state, run->rs.run_id, run->dir, sizeof(run->dir));
    snprintf(run->spool, sizeof(run->spool), "%s/%s", run->dir, SPOOL_FILE);
}

/* Follows a run to its end and cleans it up; the result goes to res. */
static int carry(struct supervisor *s, struct run *run, struct run_result *res, char *err,
                 size_t errsz)
{
    if (follow(s, run, err, errsz) < 0) {
        signal_container(s, run, "SIGKILL");
        if (!s->hooks)
            cleanup(s, run);
        return -1;
    }
    decide(s, run, res);
    res->spool_end = run->spool_end;
    log_event(LOG_INFO, "run ended", "run", run->rs.run_id, "outcome", outcome_name(res->outcome),
              "reason", res->reason, (const char *)NULL);
    /* The daemon ships the rest of the spool and reports before it cleans up. */
    if (!s->hooks)
        cleanup(s, run);
    return 0;
}

static int valid_run_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n > 0 && n < STATE_ID_MAX && id[0] != '.' &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/*
 * Deals with what a previous launcher using this state directory left:
 * adopts the run of this spec, stops and removes the others, and deletes
 * state with no container. Sets *adopted when res holds the adopted run's
 * result.
 */
static int recover(struct supervisor *s, const struct runspec *spec, const char *sha,
                   struct run_result *res, int *adopted, char *err, size_t errsz)
{
    char label[128], ids[MAX_LEFTOVERS][STATE_ID_MAX], lerr[1024];
    char seen[MAX_LEFTOVERS][STATE_ID_MAX];
    size_t n_seen = 0;
    json_t *list = NULL, *c;
    size_t i;

    snprintf(label, sizeof(label), "%s=%s", LABEL_LAUNCHER, s->state->launcher_id);
    if (docker_container_list(s->docker, label, &list, err, errsz) < 0)
        return -1;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *run_id =
            json_string_value(json_object_get(json_object_get(c, "Labels"), LABEL_RUN));
        const char *cstate = json_string_value(json_object_get(c, "State"));
        struct run run;
        struct run_result r;

        if (!id)
            continue;
        memset(&run, 0, sizeof(run));
        if (!valid_run_id(run_id)) {
            docker_container_remove(s->docker, id, lerr, sizeof(lerr));
            continue;
        }
        if (n_seen < MAX_LEFTOVERS)
            snprintf(seen[n_seen++], STATE_ID_MAX, "%s", run_id);
        int loaded = state_run_load(s->state, run_id, &run.rs, lerr, sizeof(lerr));
        if (loaded < 0)
            log_event(LOG_WARN, "unreadable run state", "run", run_id, "error", lerr,
                      (const char *)NULL);
        if (loaded != 1) {
            memset(&run.rs, 0, sizeof(run.rs));
            snprintf(run.rs.run_id, sizeof(run.rs.run_id), "%s", run_id);
        }
        int same = loaded == 1 && strcmp(run.rs.container, id) == 0;
        snprintf(run.rs.container, sizeof(run.rs.container), "%s", id);
        run_paths(s, &run);
        run.kill_grace_ms = ORPHAN_GRACE_MS;
        int created = cstate && strcmp(cstate, "created") == 0;

        if (same && !*adopted && !created && strcmp(run.rs.spec_sha256, sha) == 0) {
            run.print = 1;
            run.kill_grace_ms = spec->kill_grace_ms;
            printer_set_run(s->printer, run.rs.run_id);
            note(s, &run, "adopted run %s (container %.12s, %s), continuing from spool offset %llu",
                 run.rs.run_id, id, cstate ? cstate : "?", (unsigned long long)run.rs.offset);
            if (carry(s, &run, res, err, errsz) < 0)
                goto fail;
            *adopted = 1;
            continue;
        }
        if (created) {
            cleanup(s, &run);
            log_event(LOG_INFO, "removed a container that never started", "run", run_id,
                      (const char *)NULL);
            continue;
        }
        /* Another spec's run: the user of exec can no longer see it, so stop it. */
        run.abandon = cstate && strcmp(cstate, "exited") != 0 && strcmp(cstate, "dead") != 0;
        if (carry(s, &run, &r, lerr, sizeof(lerr)) < 0) {
            log_event(LOG_WARN, "cannot collect a run left behind", "run", run_id, "error", lerr,
                      (const char *)NULL);
            continue;
        }
        log_event(LOG_WARN,
                  run.abandon ? "stopped and removed a run left behind"
                              : "collected and removed a run left behind",
                  "run", run_id, "outcome", outcome_name(r.outcome), "reason", r.reason,
                  (const char *)NULL);
    }

    /* State and run directories whose container is gone. */
    int n = state_run_list(s->state, ids, MAX_LEFTOVERS, err, errsz);
    if (n < 0)
        goto fail;
    for (int k = 0; k < n; k++) {
        int handled = 0;
        for (size_t j = 0; j < n_seen; j++)
            handled |= strcmp(seen[j], ids[k]) == 0;
        if (handled)
            continue;
        struct run run;
        memset(&run, 0, sizeof(run));
        snprintf(run.rs.run_id, sizeof(run.rs.run_id), "%s", ids[k]);
        run_paths(s, &run);
        cleanup(s, &run);
        log_event(LOG_INFO, "removed the state of a run without a container", "run", ids[k],
                  (const char *)NULL);
    }
    json_decref(list);
    return 0;
fail:
    json_decref(list);
    return -1;
}

/* Makes sure the image is there, pulling it if needed. Returns 0, or -1 with reason. */
static int ensure_image(struct supervisor *s, struct run *run, const char *image, char *reason,
                        size_t size)
{
    char err[1024];
    char *auth = NULL;
    int present = docker_image_present(s->docker, image, err, sizeof(err));
    if (present < 0) {
        snprintf(reason, size, "%s", err);
        return -1;
    }
    if (present)
        return 0;
    note(s, run, "image %s is not present locally: pulling it", image);
    if (docker_auth_header(s->cfg->docker_config_dir, image, &auth, err, sizeof(err)) < 0 ||
        docker_image_pull(s->docker, image, auth, s->cfg->pull_timeout_ms, err, sizeof(err)) < 0) {
        snprintf(reason, size, "image \"%s\" is not present locally and could not be pulled: %s",
                 image, err);
        free(auth);
        return -1;
    }
    free(auth);
    return 0;
}

/* Gives the caller the run's final state; the run's own copy of the key is wiped. */
static void hand_back(struct run *run, struct run_state *rs)
{
    *rs = run->rs;
    explicit_bzero(run->rs.key, sizeof(run->rs.key));
}

/* Gives rs a fresh spool key unless it has one. Returns 0, or -1 with err. */
static int new_key(struct run_state *rs, char *err, size_t errsz)
{
    if (rs->has_key)
        return 0;
    if (crypto_random(rs->key, sizeof(rs->key)) < 0) {
        snprintf(err, errsz, "cannot make the run's spool key: no randomness");
        return -1;
    }
    rs->has_key = 1;
    return 0;
}

/* Carries a new run whose state rs the caller made; rs gets its final state. */
static int start_new(struct supervisor *s, const struct runspec *spec, struct run_state *rs,
                     const char *worker_path, struct run_result *res, int *exit_code, char *err,
                     size_t errsz)
{
    struct run run;
    struct runspec_var masked[CONFIG_MAX_ENVS];
    char name[128], reason[1024];
    json_t *body = NULL;

    memset(&run, 0, sizeof(run));
    run.rs = *rs;
    run_paths(s, &run);
    run.kill_grace_ms = spec->kill_grace_ms;
    run.rs.kill_grace_ms = spec->kill_grace_ms;
    run.print = !s->hooks;
    if (run.print)
        printer_set_run(s->printer, run.rs.run_id);
    container_name(run.rs.run_id, name, sizeof(name));

    /* State first, so that a crash from here on leaves something to clean up. */
    size_t n_masked = container_masked_envs(s->cfg, masked, CONFIG_MAX_ENVS);
    if (new_key(&run.rs, err, errsz) < 0 || state_run_save(s->state, &run.rs, err, errsz) < 0 ||
        rundir_write(run.dir, spec, run.rs.run_id, masked, n_masked, err, errsz) < 0) {
        *exit_code = EXIT_INTERNAL;
        if (!s->hooks)
            cleanup(s, &run);
        hand_back(&run, rs);
        return -1;
    }
    log_event(LOG_INFO, "run prepared", "run", run.rs.run_id, "image", spec->image, "dir", run.dir,
              (const char *)NULL);

    docker_set_abort(s->docker, abort_cb, s);
    int ok = ensure_image(s, &run, spec->image, reason, sizeof(reason)) == 0;
    docker_set_abort(s->docker, NULL, NULL);
    if (!ok)
        goto not_started;
    if (sup_poll_signals(s))
        goto not_started;

    struct container_params cp = {spec,        s->cfg,  run.rs.run_id, s->state->launcher_id,
                                  worker_path, run.dir, s->pool_id,    s->pool_name};
    body = container_body(&cp);
    if (!body) {
        snprintf(err, errsz, "out of memory");
        *exit_code = EXIT_INTERNAL;
        if (!s->hooks)
            cleanup(s, &run);
        hand_back(&run, rs);
        return -1;
    }
    if (rundir_write_key(run.dir, run.rs.key, reason, sizeof(reason)) < 0 ||
        docker_container_create(s->docker, name, body, run.rs.container, reason, sizeof(reason)) <
            0)
        goto not_started;
    json_decref(body);
    body = NULL;
    if (state_run_save(s->state, &run.rs, reason, sizeof(reason)) < 0 ||
        docker_container_start(s->docker, run.rs.container, reason, sizeof(reason)) < 0)
        goto not_started;
    run.rs.started_ms = clock_wall_ms();
    if (state_run_save(s->state, &run.rs, reason, sizeof(reason)) < 0)
        log_event(LOG_WARN, "cannot save the run's state", "run", run.rs.run_id, "error", reason,
                  (const char *)NULL);
    log_event(LOG_INFO, "run started", "run", run.rs.run_id, "container", run.rs.container,
              (const char *)NULL);
    int rc = carry(s, &run, res, err, errsz);
    hand_back(&run, rs);
    if (rc < 0) {
        *exit_code = EXIT_INTERNAL;
        return -1;
    }
    return 0;

not_started:
    json_decref(body);
    if (s->cancel_signal) {
        snprintf(reason, sizeof(reason), "canceled by %s before the run started", cancel_who(s));
        set_result(res, OUTCOME_CANCELED, "", -1, reason);
    } else {
        set_result(res, OUTCOME_FAILED, "", -1, reason);
    }
    log_event(LOG_INFO, "run ended", "run", run.rs.run_id, "outcome", outcome_name(res->outcome),
              "reason", res->reason, (const char *)NULL);
    res->spool_end = 0;
    hand_back(&run, rs);
    if (s->hooks) /* the daemon ships it; exec has printed it already */
        sup_not_started(s, rs, res);
    if (!s->hooks)
        cleanup(s, &run);
    return 0;
}

void sup_not_started(struct supervisor *s, struct run_state *rs, struct run_result *res)
{
    char dir[4200], err[1024];
    res->spool_end = 0;
    state_run_dir(s->state, rs->run_id, dir, sizeof(dir));
    if (new_key(rs, err, sizeof(err)) < 0 || state_run_save(s->state, rs, err, sizeof(err)) < 0 ||
        rundir_spool_section(dir, rs->key, res->outcome, res->reason, &res->spool_end, err,
                             sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot write the launcher's section of the log", "run", rs->run_id,
                  "error", err, (const char *)NULL);
}

int sup_exec(struct supervisor *s, const struct runspec *spec, const char *spec_sha256,
             const char *worker_path, struct run_result *res, int *exit_code, char *err,
             size_t errsz)
{
    int adopted = 0;
    if (recover(s, spec, spec_sha256, res, &adopted, err, errsz) < 0) {
        *exit_code = EXIT_INTERNAL;
        return -1;
    }
    if (adopted)
        return 0;
    if (sup_poll_signals(s)) {
        char reason[128];
        snprintf(reason, sizeof(reason), "canceled by %s before the run started", cancel_who(s));
        set_result(res, OUTCOME_CANCELED, "", -1, reason);
        return 0;
    }
    struct run_state rs;
    memset(&rs, 0, sizeof(rs));
    if (state_new_run_id(rs.run_id, sizeof(rs.run_id), "exec") < 0) {
        snprintf(err, errsz, "cannot make a run id: %s", strerror(errno));
        *exit_code = EXIT_INTERNAL;
        return -1;
    }
    snprintf(rs.spec_sha256, sizeof(rs.spec_sha256), "%s", spec_sha256);
    return start_new(s, spec, &rs, worker_path, res, exit_code, err, errsz);
}

int sup_run(struct supervisor *s, const struct runspec *spec, struct run_state *rs,
            const char *worker_path, struct run_result *res, char *err, size_t errsz)
{
    int xc;
    return start_new(s, spec, rs, worker_path, res, &xc, err, errsz);
}

int sup_adopt(struct supervisor *s, struct run_state *rs, struct run_result *res, char *err,
              size_t errsz)
{
    struct run run;
    memset(&run, 0, sizeof(run));
    run.rs = *rs;
    run_paths(s, &run);
    run.kill_grace_ms = rs->kill_grace_ms > 0 ? rs->kill_grace_ms : ORPHAN_GRACE_MS;
    log_event(LOG_INFO, "adopted run", "run", rs->run_id, "container", rs->container,
              (const char *)NULL);
    int rc = carry(s, &run, res, err, errsz);
    hand_back(&run, rs);
    return rc;
}

int sup_remove(struct supervisor *s, struct run_state *rs, char *err, size_t errsz)
{
    char dir[4200];
    if (rs->container[0] && docker_container_remove(s->docker, rs->container, err, errsz) < 0)
        return -1;
    rs->container[0] = '\0';
    state_run_dir(s->state, rs->run_id, dir, sizeof(dir));
    return rundir_remove(dir, err, errsz);
}

void sup_cleanup(struct supervisor *s, const struct run_state *rs)
{
    struct run run;
    memset(&run, 0, sizeof(run));
    run.rs = *rs;
    run_paths(s, &run);
    cleanup(s, &run);
    explicit_bzero(run.rs.key, sizeof(run.rs.key));
}
