#include "launcher/supervisor.h"

#include "common/clock.h"
#include "common/crypto.h"
#include "common/diskspace.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/secure.h"
#include "launcher/container.h"
#include "launcher/docker_auth.h"
#include "launcher/rundir_write.h"
#include "launcher/spool_tail.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

/* The worker SIGKILLs a phase kill_grace after SIGTERM; the launcher waits
 * this much longer, so that the worker can still write its result. */
#define KILL_SLACK_MS    2000
#define POLL_INOTIFY_MS  1000 /* inotify says when the spool grows; this is a safety net */
#define POLL_FALLBACK_MS 100
#define WAIT_RETRY_MS    1000
#define ORPHAN_GRACE_MS  (10LL * 1000)

/* davit-worker's exit code when it cannot write the spool (docs/worker.md). */
#define WORKER_EXIT_SPOOL 70

struct run {
    struct run_state rs;
    char dir[4200];
    char spool[4300];
    int64_t kill_grace_ms;
    int abandon; /* nobody waits for it: stop it at once (sup_adopt's stop) */
    /* what following it found */
    int have_result;
    struct run_result r;             /* from the R record */
    char phase[SPOOL_PHASE_MAX + 1]; /* the phase running last */
    int phase_exit;                  /* its E record's exit status; -1 while it runs */
    const char *deadline;            /* set when a launcher deadline stopped it */
    int canceled;
    int exited;
    long status;
    int tampered; /* spool_error says how ("spool tampered: …") */
    char spool_error[512];
    uint64_t spool_end; /* after the last complete record read */
};

int sup_poll_cancel(struct supervisor *s)
{
    char who[sizeof(s->cancel_who)], by[sizeof(s->cancel_by)];
    int c = s->hooks->cancel(s->hooks->arg, who, by, sizeof(who));
    if (c != SUP_GO_ON && s->cancel == SUP_GO_ON) {
        snprintf(s->cancel_who, sizeof(s->cancel_who), "%s", who);
        snprintf(s->cancel_by, sizeof(s->cancel_by), "%s", by);
    }
    if (c > s->cancel)
        s->cancel = c;
    return s->cancel != SUP_GO_ON;
}

static int abort_cb(void *arg)
{
    return sup_poll_cancel(arg);
}

static void note(struct supervisor *s, struct run *run, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message for the user: logged, and handed to the hooks (exec prints it). */
static void note(struct supervisor *s, struct run *run, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_event(LOG_INFO, msg, "run", run->rs.run_id, (const char *)NULL);
    if (s->hooks->note)
        s->hooks->note(s->hooks->arg, msg);
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
        run->phase_exit = -1;
    } else if (r->type == SPOOL_PHASE_END) {
        char v[32];
        if (spool_kv(r->data, r->len, "exit", v, sizeof(v)) == 0)
            run->phase_exit = atoi(v);
    }
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

/* What the follow loop keeps from one turn to the next. */
struct follow {
    struct follow_ctx ctx;
    struct spool_tail t;
    struct docker_wait *w; /* NULL while the wait is to be begun again */
    int ino;               /* inotify on the run directory, or -1 */
    int stopping, killed, spool_ok;
    int64_t run_deadline, logs_deadline, kill_at; /* monotonic; 0 none */
    int64_t wait_retry_at, result_at;
    int64_t hook_wait; /* the longest wait the tick hook allows */
};

/* SIGKILL now: nothing more is waited for. */
static void kill_now(struct supervisor *s, struct run *run, struct follow *f)
{
    signal_container(s, run, "SIGKILL");
    f->killed = 1;
}

/* Reads from the spool's start, so that an adopted run still sees its R
 * record; the hooks skip what they handled before (by seq). */
static int follow_open(struct supervisor *s, struct run *run, struct follow *f, char *err,
                       size_t errsz)
{
    const struct launcher_config *cfg = s->cfg;
    char werr[1024];
    int64_t now = clock_mono_ms();

    memset(f, 0, sizeof(*f));
    f->ctx = (struct follow_ctx){s, run};
    run->phase_exit = -1; /* until an E record says otherwise */
    f->ino = -1;
    f->spool_ok = 1;
    f->hook_wait = POLL_INOTIFY_MS;
    if (spool_tail_init(&f->t, run->spool, 0, err, errsz) < 0)
        return -1;
    if (run->rs.has_key) {
        spool_tail_set_key(&f->t, run->rs.key);
        spool_tail_on_checked(&f->t, s->hooks->checked, s->hooks->arg);
    } else {
        /* A spool that cannot be verified is not believed at all. */
        snprintf(run->spool_error, sizeof(run->spool_error),
                 "the run's state has no spool key, so its spool cannot be verified");
        f->spool_ok = 0;
        kill_now(s, run, f);
    }
    f->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (f->ino >= 0 && inotify_add_watch(f->ino, run->dir, IN_MODIFY | IN_CREATE) < 0) {
        close(f->ino);
        f->ino = -1;
    }
    if (cfg->run_timeout_ms) {
        /* An adopted run keeps the deadline it started with. */
        int64_t elapsed = run->rs.started_ms ? clock_wall_ms() - run->rs.started_ms : 0;
        f->run_deadline = now + cfg->run_timeout_ms - (elapsed > 0 ? elapsed : 0);
    }
    if (cfg->logs_timeout_ms)
        f->logs_deadline = now + cfg->logs_timeout_ms;
    if (docker_wait_begin(s->docker, run->rs.container, &f->w, werr, sizeof(werr)) < 0) {
        log_event(LOG_WARN, "cannot wait for the container; retrying", "run", run->rs.run_id,
                  "error", werr, (const char *)NULL);
        f->wait_retry_at = now + WAIT_RETRY_MS;
    }
    return 0;
}

static void follow_close(struct follow *f)
{
    docker_wait_end(f->w);
    if (f->ino >= 0)
        close(f->ino);
    spool_tail_free(&f->t);
}

/* Until the next deadline: the spool grows, a hook has news, or the container stops. */
static void follow_wait(struct supervisor *s, struct run *run, struct follow *f)
{
    char werr[1024], buf[4096];
    int64_t now = clock_mono_ms();
    int64_t timeout = f->ino >= 0 ? POLL_INOTIFY_MS : POLL_FALLBACK_MS;
    if (f->hook_wait < timeout)
        timeout = f->hook_wait < 0 ? 0 : f->hook_wait;
    if (!f->stopping && !run->have_result) {
        timeout = clamp_wait(timeout, f->run_deadline, now);
        timeout = clamp_wait(timeout, f->logs_deadline, now);
    }
    timeout = clamp_wait(timeout, f->killed ? 0 : f->kill_at, now);
    timeout = clamp_wait(timeout, f->w ? 0 : f->wait_retry_at, now);

    struct curl_waitfd fds[2];
    unsigned nfds = 0;
    if (f->ino >= 0)
        fds[nfds++] = (struct curl_waitfd){f->ino, CURL_WAIT_POLLIN, 0};
    if (s->wake_fd >= 0)
        fds[nfds++] = (struct curl_waitfd){s->wake_fd, CURL_WAIT_POLLIN, 0};
    if (f->w) {
        int wr = docker_wait_step(f->w, fds, nfds, (int)timeout, &run->status, werr, sizeof(werr));
        if (wr < 0) {
            log_event(LOG_WARN, "lost the wait for the container; retrying", "run", run->rs.run_id,
                      "error", werr, (const char *)NULL);
            docker_wait_end(f->w);
            f->w = NULL;
            f->wait_retry_at = clock_mono_ms() + WAIT_RETRY_MS;
        } else if (wr == 1) {
            run->exited = 1;
        }
    } else {
        struct pollfd pfd[2];
        for (unsigned i = 0; i < nfds; i++)
            pfd[i] = (struct pollfd){fds[i].fd, POLLIN, 0};
        poll(pfd, nfds, (int)timeout);
        if (clock_mono_ms() >= f->wait_retry_at &&
            docker_wait_begin(s->docker, run->rs.container, &f->w, werr, sizeof(werr)) < 0)
            f->wait_retry_at = clock_mono_ms() + WAIT_RETRY_MS;
    }
    if (f->ino >= 0)
        while (read(f->ino, buf, sizeof(buf)) > 0)
            ;
}

/* Reads the new records; a spool that cannot be followed stops the run. */
static void follow_read(struct supervisor *s, struct run *run, struct follow *f)
{
    if (!f->spool_ok)
        return;
    int n = spool_tail_read(&f->t, on_record, &f->ctx, run->spool_error, sizeof(run->spool_error));
    if (n < 0) {
        log_event(LOG_ERROR, "cannot follow the spool; stopping the run", "run", run->rs.run_id,
                  "error", run->spool_error, (const char *)NULL);
        run->tampered = f->t.tampered;
        f->spool_ok = 0;
        kill_now(s, run, f);
    }
    if (n > 0)
        f->logs_deadline = s->cfg->logs_timeout_ms ? clock_mono_ms() + s->cfg->logs_timeout_ms : 0;
}

/* Whether a cancel or a launcher deadline stops the run now; says why. */
static int stop_due(struct supervisor *s, struct run *run, struct follow *f, int64_t now)
{
    const struct launcher_config *cfg = s->cfg;
    char d[32];
    if (run->abandon)
        return 1;
    if (s->cancel) {
        run->canceled = 1;
        note(s, run, "canceled by %s: stopping the container (SIGTERM, SIGKILL after %s)",
             s->cancel_who, duration_format(run->kill_grace_ms + KILL_SLACK_MS, d, sizeof(d)));
        return 1;
    }
    if (f->run_deadline && now >= f->run_deadline) {
        run->deadline = "run timeout";
        note(s, run, "run timeout (%s, DAVIT_LAUNCHER_RUN_TIMEOUT) expired: stopping the container",
             duration_format(cfg->run_timeout_ms, d, sizeof(d)));
        return 1;
    }
    if (f->logs_deadline && now >= f->logs_deadline) {
        run->deadline = "no output";
        note(s, run, "no output for %s (DAVIT_LAUNCHER_LOGS_TIMEOUT): stopping the container",
             duration_format(cfg->logs_timeout_ms, d, sizeof(d)));
        return 1;
    }
    return 0;
}

/* Enforces the deadlines and cancel: SIGTERM, then SIGKILL when the grace is over. */
static void follow_enforce(struct supervisor *s, struct run *run, struct follow *f)
{
    int64_t now = clock_mono_ms();
    sup_poll_cancel(s);
    if (run->have_result) {
        /* The worker is done; it only has to exit. */
        if (!f->result_at)
            f->result_at = now;
        if (!f->killed && now - f->result_at > run->kill_grace_ms + KILL_SLACK_MS)
            kill_now(s, run, f);
        return;
    }
    if (!f->stopping) {
        f->stopping = stop_due(s, run, f, now);
        if (f->stopping) {
            /* Gracefully: SIGTERM now, SIGKILL after the grace. */
            signal_container(s, run, "SIGTERM");
            f->kill_at = now + run->kill_grace_ms + KILL_SLACK_MS;
        }
    } else if (!f->killed && (now >= f->kill_at || s->cancel == SUP_KILL)) {
        note(s, run, "the container is still running: sending SIGKILL");
        kill_now(s, run, f);
    }
}

/*
 * Follows the spool until the container has stopped, handing the records to
 * the hooks as they arrive; enforces the launcher's deadlines and
 * cancellation. Returns 0, or -1 with err when following is impossible.
 */
static int follow(struct supervisor *s, struct run *run, char *err, size_t errsz)
{
    struct follow f;
    if (follow_open(s, run, &f, err, errsz) < 0)
        return -1;
    for (;;) {
        follow_wait(s, run, &f);
        /* After the wait said "stopped", this read sees everything the worker wrote. */
        follow_read(s, run, &f);
        run->spool_end = f.t.offset;
        f.hook_wait = s->hooks->tick(s->hooks->arg, &run->rs, f.t.offset);
        if (run->exited)
            break;
        follow_enforce(s, run, &f);
    }
    if (spool_tail_pending(&f.t))
        log_event(LOG_WARN, "the spool ends in a partial record", "run", run->rs.run_id,
                  (const char *)NULL);
    follow_close(&f);
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

/* The worker's R record, corrected by what the launcher knows the worker does not. */
static void from_worker(struct supervisor *s, struct run *run, int oom, struct run_result *res)
{
    char reason[1024];
    *res = run->r;
    /* The worker saw the Engine's SIGTERM; the user sent something else. */
    if (run->canceled && res->outcome == OUTCOME_CANCELED)
        snprintf(res->reason, sizeof(res->reason), "canceled by %s", s->cancel_by);
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
        /* The outcome is the launcher's, but the phase's exit status is what the
         * worker saw when the launcher's stop killed it (137 after SIGKILL). */
        set_result(res, OUTCOME_TIMED_OUT, run->phase,
                   run->have_result ? run->r.exit_status : run->phase_exit, reason);
    } else if (run->have_result) {
        from_worker(s, run, oom, res);
    } else if (run->canceled) {
        snprintf(reason, sizeof(reason), "canceled by %s", s->cancel_by);
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

/* Follows a run to its end; the result goes to res. */
static int carry(struct supervisor *s, struct run *run, struct run_result *res, char *err,
                 size_t errsz)
{
    if (follow(s, run, err, errsz) < 0) {
        signal_container(s, run, "SIGKILL");
        return -1;
    }
    decide(s, run, res);
    res->spool_end = run->spool_end;
    log_event(LOG_INFO, "run ended", "run", run->rs.run_id, "outcome", outcome_name(res->outcome),
              "reason", res->reason, (const char *)NULL);
    return 0;
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
        secure_free_str(auth);
        return -1;
    }
    secure_free_str(auth); /* the registry's credentials, base64 */
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

/* Ends a run that did not start, with reason: a cancel says who asked. Returns 1 (sup_run's). */
static int not_started(struct supervisor *s, struct run *run, struct run_state *rs,
                       const char *reason, struct run_result *res)
{
    char why[1024];
    if (s->cancel) {
        snprintf(why, sizeof(why), "canceled by %s before the run started", s->cancel_who);
        set_result(res, OUTCOME_CANCELED, "", -1, why);
    } else {
        set_result(res, OUTCOME_FAILED, "", -1, reason);
    }
    log_event(LOG_INFO, "run ended", "run", run->rs.run_id, "outcome", outcome_name(res->outcome),
              "reason", res->reason, (const char *)NULL);
    res->spool_end = 0;
    hand_back(run, rs);
    return 1;
}

/* Creates the run's container from body and starts it. Returns 0, or -1 with reason. */
static int create_start(struct supervisor *s, struct run *run, json_t *body, char *reason,
                        size_t size)
{
    char name[128];
    container_name(run->rs.run_id, name, sizeof(name));
    if (rundir_write_key(run->dir, run->rs.key, reason, size) < 0 ||
        docker_container_create(s->docker, name, body, run->rs.container, reason, size) < 0 ||
        state_run_save(s->state, &run->rs, reason, size) < 0 ||
        docker_container_start(s->docker, run->rs.container, reason, size) < 0)
        return -1;
    return 0;
}

int sup_run(struct supervisor *s, const struct runspec *spec, struct run_state *rs,
            const char *worker_path, struct run_result *res, char *err, size_t errsz)
{
    struct run run;
    struct runspec_var masked[CONFIG_MAX_ENVS];
    char reason[1024] = "";

    memset(&run, 0, sizeof(run));
    run.rs = *rs;
    run_paths(s, &run);
    run.kill_grace_ms = spec->kill_grace_ms;
    run.rs.kill_grace_ms = spec->kill_grace_ms;

    /* State first, so that a crash from here on leaves something to clean up. */
    size_t n_masked = container_masked_envs(s->cfg, masked, CONFIG_MAX_ENVS);
    if (new_key(&run.rs, err, errsz) < 0 || state_run_save(s->state, &run.rs, err, errsz) < 0 ||
        rundir_write(run.dir, spec, run.rs.run_id, masked, n_masked, err, errsz) < 0) {
        hand_back(&run, rs);
        return -1;
    }
    log_event(LOG_INFO, "run prepared", "run", run.rs.run_id, "image", spec->image, "dir", run.dir,
              (const char *)NULL);

    docker_set_abort(s->docker, abort_cb, s);
    int ok = ensure_image(s, &run, spec->image, reason, sizeof(reason)) == 0;
    docker_set_abort(s->docker, NULL, NULL);
    if (!ok || sup_poll_cancel(s))
        return not_started(s, &run, rs, reason, res);
    struct container_params cp = {spec,        s->cfg,  run.rs.run_id, s->state->launcher_id,
                                  worker_path, run.dir, s->pool_id,    s->pool_name};
    json_t *body = container_body(&cp);
    if (!body) {
        snprintf(err, errsz, "out of memory");
        hand_back(&run, rs);
        return -1;
    }
    ok = create_start(s, &run, body, reason, sizeof(reason)) == 0;
    json_decref(body);
    if (!ok)
        return not_started(s, &run, rs, reason, res);
    run.rs.started_ms = clock_wall_ms();
    if (state_run_save(s->state, &run.rs, reason, sizeof(reason)) < 0)
        log_event(LOG_WARN, "cannot save the run's state", "run", run.rs.run_id, "error", reason,
                  (const char *)NULL);
    log_event(LOG_INFO, "run started", "run", run.rs.run_id, "container", run.rs.container,
              (const char *)NULL);
    int rc = carry(s, &run, res, err, errsz);
    hand_back(&run, rs);
    return rc;
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

int sup_adopt(struct supervisor *s, struct run_state *rs, int stop, struct run_result *res,
              char *err, size_t errsz)
{
    struct run run;
    memset(&run, 0, sizeof(run));
    run.rs = *rs;
    run_paths(s, &run);
    run.kill_grace_ms = rs->kill_grace_ms > 0 ? rs->kill_grace_ms : ORPHAN_GRACE_MS;
    run.abandon = stop;
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
