/* The daemon's main thread (daemon.h). */
#include "launcher/daemon.h"

#include "common/clock.h"
#include "common/diskspace.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/outcome.h"
#include "launcher/admission.h"
#include "launcher/backend.h"
#include "launcher/backoff.h"
#include "launcher/config.h"
#include "launcher/container.h"
#include "launcher/credentials.h"
#include "launcher/docker.h"
#include "launcher/job.h"
#include "launcher/metrics.h"
#include "launcher/metrics_http.h"
#include "launcher/session.h"
#include "launcher/state.h"
#include "launcher/supervisor.h"
#include "launcher/unseal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Twice the most runs at once: room for runs that ended but are not reaped yet. */
#define MAX_RUNS      (2 * CONFIG_MAX_CONCURRENCY)
#define MAX_DECLINED  64
#define MAX_LEFTOVERS 256

/* What the main thread shares with the jobs. */
struct daemon {
    struct launcher_config cfg;
    struct credentials cred;
    struct state *state; /* &state_ once open */
    struct state state_;
    struct docker *docker; /* the main thread's */
    struct session sess;
    struct job_env env;
    int wake_fd;                  /* eventfd: a job has news for the main thread */
    struct metrics_http *metrics; /* DAVIT_METRICS_LISTEN; NULL: off */
    int have_cfg, have_sess;
};

/* The main thread's view. */
struct loop {
    struct daemon *d;
    struct backend *b;
    uint64_t gen;
    int sigfd;
    int n_signals;
    int aborted;
    struct job *runs[MAX_RUNS];
    size_t n_runs;
    int64_t declined[MAX_DECLINED]; /* runs offered while stopping: left to requeue */
    size_t n_declined;
    int64_t ack;
    int server_drain, cycling, cycle_canceled, token_reset;
    int64_t cycle_at; /* monotonic */
    char exit_reason[512];
    int64_t disk_checked_at; /* monotonic; the state directory's free space */
    int disk_low;
    int taken; /* runs taken (or adopted): an ephemeral launcher takes one */
    int spent; /* the server said "spent": this ephemeral identity had its run already */
};

/* How often the state directory's free space is looked at. */
#define DISK_CHECK_MS 5000

/* The job's end hook: wakes the main thread. Never fails. */
static void wake(void *arg)
{
    struct daemon *d = arg;
    uint64_t one = 1;
    if (write(d->wake_fd, &one, sizeof(one)) < 0)
        log_event(LOG_WARN, "cannot wake the main thread", (const char *)NULL);
}

/* Gives up a call when a signal or a run thread needs the main thread. */
static int main_abort(void *arg)
{
    struct loop *l = arg;
    struct pollfd p[2] = {{l->sigfd, POLLIN, 0}, {l->d->wake_fd, POLLIN, 0}};
    if (poll(p, 2, 0) > 0) {
        l->aborted = 1;
        return 1;
    }
    return 0;
}

static void cancel_all(struct loop *l, enum job_stop how, const char *reason)
{
    for (size_t i = 0; i < l->n_runs; i++)
        job_cancel(l->runs[i], how, reason);
}

static void on_signals(struct loop *l)
{
    struct signalfd_siginfo si;
    while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        const char *name = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
        l->n_signals++;
        if (l->n_signals == 1) {
            log_event(LOG_INFO,
                      "draining: finishing the runs in hand, taking no new ones (a second "
                      "signal cancels them)",
                      "signal", name, (const char *)NULL);
        } else if (l->n_signals == 2) {
            log_event(LOG_INFO, "canceling the runs in hand, then exiting", "signal", name,
                      (const char *)NULL);
            cancel_all(l, JOB_CANCEL, "davit-launcher's shutdown (a second signal)");
        } else {
            log_event(LOG_WARN, "leaving at once; the next start adopts the runs", "signal", name,
                      (const char *)NULL);
            atomic_store(&l->d->env.abandon, 1);
        }
    }
}

static void reap(struct loop *l)
{
    uint64_t v;
    while (read(l->d->wake_fd, &v, sizeof(v)) > 0)
        ;
    for (size_t i = 0; i < l->n_runs;) {
        if (job_ended(l->runs[i])) {
            job_join(l->runs[i]);
            l->runs[i] = l->runs[--l->n_runs];
        } else {
            i++;
        }
    }
}

static struct job *find_run(struct loop *l, int64_t id)
{
    for (size_t i = 0; i < l->n_runs; i++)
        if (job_run_id(l->runs[i]) == id)
            return l->runs[i];
    return NULL;
}

/*
 * Warns, once, when the state directory (spools, run directories, cached
 * workers) runs low on space, before a run fails for it, and says when
 * there is room again. Looked at every DISK_CHECK_MS, and now_please before
 * each run starts.
 */
static void check_disk(struct loop *l, int now_please)
{
    struct diskspace ds;
    char left[32], total[32];
    int64_t now = clock_mono_ms();
    if (!now_please && l->disk_checked_at && now - l->disk_checked_at < DISK_CHECK_MS)
        return;
    l->disk_checked_at = now;
    if (diskspace_get(l->d->state->dir, &ds) < 0)
        return;
    int low = diskspace_low(&ds);
    if (low && !l->disk_low)
        log_event(LOG_WARN,
                  "the state directory is running out of space: runs fail when their spool "
                  "cannot be written",
                  "dir", l->d->state->dir, "free",
                  diskspace_format(ds.free_bytes, left, sizeof(left)), "size",
                  diskspace_format(ds.total_bytes, total, sizeof(total)), (const char *)NULL);
    else if (!low && l->disk_low)
        log_event(LOG_INFO, "the state directory has room again", "dir", l->d->state->dir, "free",
                  diskspace_format(ds.free_bytes, left, sizeof(left)), (const char *)NULL);
    l->disk_low = low;
}

static int stopping(struct loop *l)
{
    return l->n_signals > 0 || l->cycling || l->token_reset || session_fatal(&l->d->sess, NULL, 0);
}

/* An ephemeral launcher that has its run: it takes no other, and exits once it is reported.
 * Not stopping(): its polls do not say "draining", which would give its run back. */
static int ephemeral_done(struct loop *l)
{
    return l->d->cfg.ephemeral && (l->taken > 0 || l->spent);
}

/* A run offered while stopping is left alone: the next poll says that this
 * launcher is draining, and the server puts the run back in the queue. */
static void decline(struct loop *l, int64_t id)
{
    for (size_t i = 0; i < l->n_declined; i++)
        if (l->declined[i] == id)
            return;
    char rid[24];
    snprintf(rid, sizeof(rid), "%" PRId64, id);
    log_event(LOG_INFO, "not taking a run while stopping; the server requeues it", "run", rid,
              (const char *)NULL);
    if (l->n_declined < MAX_DECLINED)
        l->declined[l->n_declined++] = id;
}

/* Reports a run that was never started as canceled. */
static void cancel_unstarted(struct loop *l, int64_t id)
{
    char err[1024];
    json_t *ev = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)1, "type", "result",
                           "outcome", "canceled", "reason", "canceled before the run started");
    if (backend_event(l->b, id, ev, NULL, err, sizeof(err)) != BACKEND_OK)
        log_event(LOG_WARN, "cannot report a canceled run", "error", err, (const char *)NULL);
    json_decref(ev);
}

static void on_message(struct loop *l, json_t *m)
{
    char err[1024], rid[24];
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type)
        return;
    if (strcmp(type, "run") == 0) {
        json_t *run = json_object_get(m, "run");
        int64_t id = json_integer_value(json_object_get(run, "id"));
        snprintf(rid, sizeof(rid), "%" PRId64, id);
        if (id <= 0 || find_run(l, id))
            return; /* delivered again: already ours */
        /* The server counts capacity: a run it sends may come just before
         * this loop has reaped the thread of one that already reported its
         * result, so only a stopping launcher (or a full table) declines. */
        if (stopping(l) || ephemeral_done(l) || l->n_runs == MAX_RUNS) {
            decline(l, id);
            return;
        }
        check_disk(l, 1);
        struct job *r;
        if (job_start(&l->d->env, id, json_incref(m), NULL, &r, err, sizeof(err)) < 0) {
            log_event(LOG_ERROR, "cannot start the run", "run", rid, "error", err,
                      (const char *)NULL);
            return;
        }
        l->runs[l->n_runs++] = r;
        l->taken++;
        log_event(LOG_INFO, "run received", "run", rid, (const char *)NULL);
    } else if (strcmp(type, "cancel") == 0) {
        int64_t id = json_integer_value(json_object_get(m, "run_id"));
        struct job *r = find_run(l, id);
        snprintf(rid, sizeof(rid), "%" PRId64, id);
        log_event(LOG_INFO, "cancel asked", "run", rid, (const char *)NULL);
        if (r) {
            job_cancel(r, JOB_CANCEL, "the user");
        } else {
            for (size_t i = 0; i < l->n_declined; i++)
                if (l->declined[i] == id)
                    cancel_unstarted(l, id);
        }
    } else if (strcmp(type, "drain") == 0 || strcmp(type, "undrain") == 0) {
        l->server_drain = type[0] == 'd';
        log_event(LOG_INFO,
                  l->server_drain ? "drained by the server: taking no new runs"
                                  : "undrained by the server: taking runs again",
                  (const char *)NULL);
    } else if (strcmp(type, "cycle") == 0 && !l->cycling) {
        json_t *dl = json_object_get(m, "deadline_ms");
        int64_t left = json_is_integer(dl) ? json_integer_value(dl) - clock_wall_ms() : 0;
        l->cycling = 1;
        l->cycle_at = clock_mono_ms() + (left > 0 ? left : 0);
        log_event(LOG_INFO, "cycling: finishing the runs in hand by the deadline, then exiting",
                  "deadline", json_string_value(json_object_get(m, "deadline")),
                  (const char *)NULL);
    } else if (strcmp(type, "spent") == 0 && l->d->cfg.ephemeral && !l->spent) {
        l->spent = 1;
        log_event(LOG_INFO, "ephemeral: the server says this launcher had its run already",
                  (const char *)NULL);
    } else if (strcmp(type, "exit") == 0 && !l->token_reset) {
        const char *why = json_string_value(json_object_get(m, "reason"));
        l->token_reset = 1;
        snprintf(l->exit_reason, sizeof(l->exit_reason), "%s",
                 why ? why : "the pool's token was reset");
        log_event(LOG_WARN, "told to exit: canceling the runs in hand", "reason", l->exit_reason,
                  (const char *)NULL);
        cancel_all(l, JOB_CANCEL, "davit-launcher's exit (the pool's token was reset)");
    }
}

/* Waits up to ms for a signal or a run's news. */
static void nap(struct loop *l, int64_t ms)
{
    struct pollfd p[2] = {{l->sigfd, POLLIN, 0}, {l->d->wake_fd, POLLIN, 0}};
    poll(p, 2, (int)(ms > 60000 ? 60000 : ms));
}

/*
 * The last poll of a graceful exit: acknowledges the messages handled, so
 * that a restart does not see them again, and tells the server that this
 * launcher is gone, so that it is not listed any more.
 */
static void final_poll(struct loop *l)
{
    json_t *msgs = NULL;
    char err[1024];
    backend_set_abort(l->b, NULL, NULL);
    if (backend_poll(l->b, l->ack, 0, POLL_EXITING, &msgs, err, sizeof(err)) != BACKEND_OK)
        log_event(LOG_WARN, "cannot tell the server that this launcher exits", "error", err,
                  (const char *)NULL);
    json_decref(msgs);
}

static int wind_down(struct loop *l);

/* Polls and dispatches until it is time to exit; returns the exit code. */
static int run_loop(struct loop *l)
{
    struct daemon *d = l->d;
    struct backoff bo;
    char err[1024];
    int unreachable = 0;
    backoff_init(&bo, BACKOFF_BASE_MS, BACKOFF_MAX_MS, backoff_seed());
    backend_set_abort(l->b, main_abort, l);
    for (;;) {
        on_signals(l);
        reap(l);
        check_disk(l, 0);
        if (atomic_load(&d->env.abandon))
            break;
        if (l->cycling && !l->cycle_canceled && clock_mono_ms() >= l->cycle_at && l->n_runs) {
            l->cycle_canceled = 1;
            log_event(LOG_INFO, "the cycle deadline passed: canceling the runs in hand",
                      (const char *)NULL);
            cancel_all(l, JOB_CANCEL, "the pool's cycle (its deadline passed)");
        }
        if (!l->token_reset && session_fatal(&d->sess, l->exit_reason, sizeof(l->exit_reason))) {
            l->token_reset = 1;
            cancel_all(l, JOB_CANCEL, "davit-launcher's exit (it cannot register any more)");
        }
        if ((stopping(l) || ephemeral_done(l)) && l->n_runs == 0)
            break;

        struct backend_session now;
        session_get(&d->sess, &now);
        int64_t wait_s = now.poll_timeout_s > 0 ? now.poll_timeout_s : 20;
        if (l->cycling && !l->cycle_canceled) {
            int64_t left = (l->cycle_at - clock_mono_ms() + 999) / 1000;
            wait_s = left < 1 ? 1 : left < wait_s ? left : wait_s;
        }
        json_t *msgs = NULL;
        l->aborted = 0;
        int rc = backend_poll(l->b, l->ack, (int)wait_s, stopping(l) ? POLL_DRAINING : POLL_TAKING,
                              &msgs, err, sizeof(err));
        if (l->aborted)
            continue;
        metrics_set_healthy(rc == BACKEND_OK);
        if (rc == BACKEND_OK) {
            if (unreachable)
                log_event(LOG_INFO, "the server answers again", (const char *)NULL);
            unreachable = 0;
            backoff_reset(&bo);
            size_t i;
            json_t *m;
            json_array_foreach(msgs, i, m)
            {
                on_message(l, m);
                json_int_t id = json_integer_value(json_object_get(m, "id"));
                if (id > l->ack)
                    l->ack = id;
            }
            json_decref(msgs);
            continue;
        }
        if (rc == BACKEND_UNAUTHORIZED) {
            rc = session_renew(&d->sess, l->b, &l->gen, err, sizeof(err));
            if (rc == BACKEND_OK)
                continue;
            if (rc == BACKEND_UNAUTHORIZED)
                continue; /* fatal: the loop winds down */
        }
        if (!unreachable)
            log_event(LOG_WARN, "cannot poll the server; retrying with backoff", "error", err,
                      (const char *)NULL);
        unreachable = 1;
        nap(l, backoff_next(&bo));
    }
    return wind_down(l);
}

/* The loop is over: says goodbye to the server when it may; returns the exit code. */
static int wind_down(struct loop *l)
{
    struct daemon *d = l->d;
    int fatal = session_fatal(&d->sess, NULL, 0);
    metrics_set_healthy(0);
    if (!atomic_load(&d->env.abandon) && !fatal)
        final_poll(l);
    if (atomic_load(&d->env.abandon))
        return DAEMON_EXIT_LEFT;
    if (l->token_reset) {
        if (fatal)
            return log_fail(EXIT_USAGE, "%s", l->exit_reason);
        return log_fail(EXIT_USAGE,
                        "the pool's token was reset: %s; start davit-launcher with the new "
                        "token (davit pool reset printed it)",
                        l->exit_reason);
    }
    if (l->cycling) {
        log_event(LOG_INFO, "cycled: exiting so that a fresh launcher replaces this one",
                  (const char *)NULL);
        return DAEMON_EXIT_CYCLED;
    }
    if (ephemeral_done(l) && !l->n_signals) {
        log_event(LOG_INFO, "ephemeral: the run is reported, exiting", (const char *)NULL);
        return DAEMON_EXIT_STOPPED;
    }
    log_event(LOG_INFO, "drained: exiting", (const char *)NULL);
    return DAEMON_EXIT_STOPPED;
}

/*
 * Picks up what a previous launcher with this state directory left: its
 * runs are followed again (from the acknowledged offset) and reported;
 * containers and state of anything else (davit-launcher exec) are removed.
 */
static int adopt(struct loop *l, struct supervisor *sup, char *err, size_t errsz)
{
    char label[128], ids[MAX_LEFTOVERS][STATE_ID_MAX], lerr[1024];
    json_t *list = NULL, *c;
    size_t i;
    struct run_state rs;

    snprintf(label, sizeof(label), "%s=%s", LABEL_LAUNCHER, l->d->state->launcher_id);
    if (docker_container_list(sup->docker, label, &list, err, errsz) < 0)
        return -1;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *run_id =
            json_string_value(json_object_get(json_object_get(c, "Labels"), LABEL_RUN));
        if (!id)
            continue;
        memset(&rs, 0, sizeof(rs));
        int loaded = run_id && strlen(run_id) < STATE_ID_MAX && !strchr(run_id, '/')
                         ? state_run_load(l->d->state, run_id, &rs, lerr, sizeof(lerr))
                         : 0;
        if (loaded == 1 && rs.server_id > 0)
            continue; /* adopted below, from its state */
        if (loaded != 1) {
            memset(&rs, 0, sizeof(rs));
            snprintf(rs.run_id, sizeof(rs.run_id), "%s", run_id && loaded == 0 ? run_id : "-");
        }
        snprintf(rs.container, sizeof(rs.container), "%s", id);
        sup_cleanup(sup, &rs);
        log_event(LOG_INFO, "removed a container that is not a run of this launcher", "container",
                  id, (const char *)NULL);
    }
    json_decref(list);

    int n = state_run_list(l->d->state, ids, MAX_LEFTOVERS, err, errsz);
    if (n < 0)
        return -1;
    for (int k = 0; k < n; k++) {
        char rid[24];
        memset(&rs, 0, sizeof(rs));
        int loaded = state_run_load(l->d->state, ids[k], &rs, lerr, sizeof(lerr));
        if (loaded != 1 || rs.server_id <= 0) {
            memset(&rs, 0, sizeof(rs));
            snprintf(rs.run_id, sizeof(rs.run_id), "%s", ids[k]);
            sup_cleanup(sup, &rs);
            continue;
        }
        snprintf(rid, sizeof(rid), "%" PRId64, rs.server_id);
        struct job *r;
        if (l->n_runs == MAX_RUNS ||
            job_start(&l->d->env, rs.server_id, NULL, &rs, &r, lerr, sizeof(lerr)) < 0) {
            log_event(LOG_ERROR, "cannot adopt a run", "run", rid, "error", lerr,
                      (const char *)NULL);
            continue;
        }
        l->runs[l->n_runs++] = r;
        l->taken++;
        log_event(LOG_INFO, "adopting a run left by the previous start", "run", rid, "container",
                  rs.container[0] ? rs.container : "-", (const char *)NULL);
    }
    return 0;
}

/* What the jobs share: filled in once, before the first job starts. */
static void jobs_env(struct daemon *d)
{
    d->env.cfg = &d->cfg;
    d->env.cred = &d->cred;
    d->env.state = d->state;
    d->env.session = &d->sess;
    d->env.ended = wake;
    d->env.ended_arg = d;
    snprintf(d->env.workers_dir, sizeof(d->env.workers_dir), "%s/workers", d->state->dir);
}

/* The first registration to go on. Returns 0, or -1 with err. */
static int register_first(struct loop *l, char *err, size_t errsz)
{
    struct session *sess = &l->d->sess;
    struct backend_session now;
    char lid[24], cap[8];
    if (session_renew(sess, l->b, &l->gen, err, errsz) != BACKEND_OK)
        return -1;
    session_get(sess, &now);
    snprintf(lid, sizeof(lid), "%" PRId64, now.launcher_id);
    snprintf(cap, sizeof(cap), "%d", sess->cfg->concurrency);
    log_event(LOG_INFO, "registered", "endpoint", sess->cred->endpoint, "pool", now.pool,
              "launcher", lid, "capacity", cap, "arch", sess->arch, "ephemeral",
              sess->cfg->ephemeral ? "yes" : "no", (const char *)NULL);
    metrics_set_healthy(1);
    return 0;
}

/*
 * Everything up to the first registration: configuration, credentials,
 * state directory, Docker Engine, session. Returns 0, or the exit code
 * after logging why; daemon_close is due either way.
 */
static int daemon_open(struct daemon *d, struct loop *l)
{
    char err[2048];
    if (config_load(&d->cfg, err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "configuration: %s", err);
    d->have_cfg = 1;
    log_setup(d->cfg.log_format, d->cfg.debug, stderr);
    if (d->cfg.worker_binary) {
        /* Checked once, here: runs then use it without the release's signature check. */
        char path[PATH_MAX], why[PATH_MAX + 64];
        if (fsutil_executable(d->cfg.worker_binary, path, why, sizeof(why)) < 0)
            return log_fail(EXIT_USAGE, "DAVIT_WORKER_BINARY %s", why);
        char *resolved = strdup(path);
        if (!resolved)
            return log_fail(EXIT_INTERNAL, "out of memory");
        free(d->cfg.worker_binary);
        d->cfg.worker_binary = resolved;
        log_event(LOG_WARN,
                  "DAVIT_WORKER_BINARY is set: every run uses this worker, not the signed release",
                  "path", resolved, (const char *)NULL);
    }
    if (admission_setup(&d->cfg, err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    /* Before registering: /healthz says 503 until then. */
    if (d->cfg.metrics_listen &&
        metrics_http_start(d->cfg.metrics_listen, d->cfg.metrics_listen_any, &d->metrics, err,
                           sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    if (credentials_load(&d->cred, err, sizeof(err)) < 0 || unseal_init(err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    if (state_open(&d->state_, d->cfg.state_dir, err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    d->state = &d->state_;
    if (docker_open(&d->docker, d->cfg.docker_host, d->cfg.docker_timeout_ms, d->cfg.debug, err,
                    sizeof(err)) < 0 ||
        docker_ping(d->docker, err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->wake_fd < 0)
        return log_fail(EXIT_INTERNAL, "%s", strerror(errno));
    d->have_sess = 1;
    if (session_init(&d->sess, &d->cfg, &d->cred, d->state, err, sizeof(err)) < 0 ||
        backend_open(&l->b, &d->cred, d->cfg.ca_file, d->cfg.debug, err, sizeof(err)) < 0)
        return log_fail(EXIT_INTERNAL, "%s", err);
    jobs_env(d);
    if (register_first(l, err, sizeof(err)) < 0)
        return log_fail(EXIT_USAGE, "%s", err);
    return 0;
}

static void daemon_close(struct daemon *d, struct loop *l)
{
    for (size_t i = 0; i < l->n_runs; i++)
        job_join(l->runs[i]);
    metrics_http_stop(d->metrics);
    backend_close(l->b);
    docker_close(d->docker);
    if (d->have_sess)
        session_free(&d->sess);
    if (d->state)
        state_close(d->state);
    credentials_free(&d->cred);
    if (d->have_cfg)
        config_free(&d->cfg);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    close(l->sigfd);
    pthread_mutex_destroy(&d->env.release_mu);
}

int daemon_main(void)
{
    struct daemon d;
    struct loop l;
    char err[2048];

    memset(&d, 0, sizeof(d));
    memset(&l, 0, sizeof(l));
    d.state_.lock_fd = -1;
    d.wake_fd = -1;
    l.d = &d;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (l.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        return log_fail(EXIT_INTERNAL, "signalfd: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&d.env.release_mu, NULL);

    int code = daemon_open(&d, &l);
    if (code != 0)
        goto done;
    struct supervisor sup = {.cfg = &d.cfg, .docker = d.docker, .state = d.state, .wake_fd = -1};
    if (adopt(&l, &sup, err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "%s", err);
        goto done;
    }
    code = run_loop(&l);
    if (atomic_load(&d.env.abandon)) {
        fflush(stdout);
        _exit(code); /* the jobs' containers are left for the next start */
    }
done:
    daemon_close(&d, &l);
    return code;
}
