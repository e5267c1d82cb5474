/* One run of the daemon, in a thread of its own (job.h). */
#include "launcher/job.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/outcome.h"
#include "common/runspec.h"
#include "launcher/admission.h"
#include "launcher/backend.h"
#include "launcher/backoff.h"
#include "launcher/docker.h"
#include "launcher/metrics.h"
#include "launcher/printer.h"
#include "launcher/release.h"
#include "launcher/shipper.h"
#include "launcher/supervisor.h"
#include "launcher/unseal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* A server call from a run's thread (see backend_set_call_timeout). */
#define RUN_CALL_TIMEOUT_S 10

#define IDLE_TICK_MS 1000

struct job {
    struct job_env *env;
    int64_t id;
    json_t *msg;         /* the run message (owned; it holds secrets); NULL when adopted */
    struct run_state rs; /* an adopted run's state */
    int adopted;
    pthread_t thread;
    int cancel_fd;      /* eventfd that wakes the run's supervisor */
    pthread_mutex_t mu; /* guards cancel and cancel_reason */
    int cancel;         /* 0, or an enum job_stop */
    char cancel_reason[256];
    atomic_int done;
};

/* What the job's thread carries. */
struct ctx {
    struct job *r;
    struct job_env *env;
    struct backend *b;
    uint64_t gen;
    struct docker *docker;
    struct shipper sh;
    struct printer printer;
    int print;
    int gone;  /* the server says the run is not ours (any more) */
    int stuck; /* reporting is impossible (registration refused) */
    char rid[24];
    char pool_name[128]; /* the session's, for the container's labels */
    int ship_failing;    /* the last shipment failed with ship_error */
    char ship_error[1024];
    char tampered[256];      /* the shipper found the spool rewritten: the result's reason */
    int64_t offset_saved_ms; /* when the acknowledged offset was last saved; 0 never */
    uint64_t counted_acked;  /* the acknowledged offset metrics.h has counted */
    int64_t lag;             /* this run's share of metrics.h's ship lag */
};

/*
 * The acknowledged offset is saved at most this often while a log ships: a
 * save is an fsync (4 ms median, 14 ms p90 here), once per batch it cost more
 * than the batch's own upload. An older offset is safe: after a restart the
 * launcher sends those bytes again and the server acknowledges what it has.
 */
#define OFFSET_SAVE_MS 1000

static void save(struct ctx *c, const struct run_state *rs)
{
    char err[1024];
    if (state_run_save(c->env->state, rs, err, sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot save the run's state", "run", c->rid, "error", err,
                  (const char *)NULL);
}

/* A 401: get a session again. Returns 0 to retry the call, -1 when reporting is impossible. */
static int refresh(struct ctx *c)
{
    char err[1024];
    int rc = session_renew(c->env->session, c->b, &c->gen, err, sizeof(err));
    if (rc == BACKEND_UNAUTHORIZED) {
        c->stuck = 1;
        return -1;
    }
    if (rc != BACKEND_OK)
        log_event(LOG_WARN, "cannot register again; retrying", "run", c->rid, "error", err,
                  (const char *)NULL);
    return 0;
}

/* Sleeps ms, waking early when the daemon is leaving. Returns -1 then. */
static int nap(struct ctx *c, int64_t ms)
{
    while (ms > 0 && !atomic_load(&c->env->abandon)) {
        int step = ms > 200 ? 200 : (int)ms;
        poll(NULL, 0, step);
        ms -= step;
    }
    return atomic_load(&c->env->abandon) ? -1 : 0;
}

/*
 * Sends an event, taking the next seq (saved first, so that a retry after a
 * restart is idempotent). The result is retried until the server takes it;
 * other events are tried a few times only, not to hold up the run.
 */
static int send_event(struct ctx *c, struct run_state *rs, json_t *ev, int final)
{
    char err[1024];
    struct backoff bo;
    int rc = -1;
    backoff_init(&bo, BACKOFF_BASE_MS, BACKOFF_MAX_MS, backoff_seed());
    rs->event_seq++;
    save(c, rs);
    json_object_set_new(ev, "seq", json_integer((json_int_t)rs->event_seq));
    for (int attempt = 0; !c->gone && !c->stuck; attempt++) {
        int s = backend_event(c->b, c->r->id, ev, NULL, err, sizeof(err));
        if (s == BACKEND_OK) {
            rc = 0;
            break;
        }
        if (s == BACKEND_FORBIDDEN || s == BACKEND_CONFLICT) {
            log_event(LOG_WARN, "the server no longer gives this run to this launcher: stopping it",
                      "run", c->rid, "error", err, (const char *)NULL);
            c->gone = 1;
            job_cancel(c->r, JOB_KILL, "the server (the run is no longer this launcher's)");
            break;
        }
        if (s == BACKEND_UNAUTHORIZED) {
            if (refresh(c) < 0)
                break;
            continue;
        }
        if (s == BACKEND_REJECTED || (!final && attempt >= 2)) {
            log_event(LOG_WARN, "event not sent", "run", c->rid, "error", err, (const char *)NULL);
            break;
        }
        log_event(LOG_WARN, "cannot send an event; retrying", "run", c->rid, "error", err,
                  (const char *)NULL);
        if (nap(c, backoff_next(&bo)) < 0)
            break;
    }
    json_decref(ev);
    return rc;
}

static void on_record(void *arg, struct run_state *rs, const struct spool_record *r)
{
    struct ctx *c = arg;
    if (r->seq <= rs->seq)
        return; /* handled before a restart */
    rs->seq = r->seq;
    if (c->print) {
        printer_record(&c->printer, r);
        printer_flush(&c->printer);
    }
    if (r->type == SPOOL_PHASE_START && !c->gone)
        send_event(c, rs, json_pack("{s:s, s:s}", "type", "running", "phase", r->phase), 0);
}

/* Bytes the spool's tail checked: the shipper sends them without reading them again. */
static void on_checked(void *arg, uint64_t offset, const char *data, size_t len)
{
    shipper_verified(&((struct ctx *)arg)->sh, offset, data, len);
}

/* metrics.h: the bytes acknowledged since the last call, and this run's unshipped bytes. */
static void count_shipping(struct ctx *c, uint64_t avail)
{
    if (c->sh.acked > c->counted_acked) {
        metrics_shipped(c->sh.acked - c->counted_acked);
        c->counted_acked = c->sh.acked;
    }
    int64_t lag = avail > c->sh.acked ? (int64_t)(avail - c->sh.acked) : 0;
    metrics_lag_add(lag - c->lag);
    c->lag = lag;
}

static int64_t ship_step(struct ctx *c, struct run_state *rs, uint64_t avail);

/* Ships one batch if one is due; returns how long until the next is. */
static int64_t ship(struct ctx *c, struct run_state *rs, uint64_t avail)
{
    int64_t due = ship_step(c, rs, avail);
    count_shipping(c, avail);
    return due;
}

static int64_t ship_step(struct ctx *c, struct run_state *rs, uint64_t avail)
{
    char err[1024];
    int64_t now = clock_mono_ms();
    if (!c->sh.has_key && rs->has_key)
        shipper_set_key(&c->sh, rs->key);
    int64_t due = shipper_due(&c->sh, avail, now);
    if (due != 0 || c->gone || c->stuck)
        return due;
    int s = shipper_step(&c->sh, c->b, avail, now, err, sizeof(err));
    switch (s) {
    case SHIP_SENT:
        rs->offset = c->sh.acked;
        if (!c->offset_saved_ms || now - c->offset_saved_ms >= OFFSET_SAVE_MS) {
            save(c, rs);
            c->offset_saved_ms = now;
        }
        if (c->ship_failing)
            log_event(LOG_INFO, "the server takes the log again", "run", c->rid,
                      (const char *)NULL);
        c->ship_failing = 0;
        break;
    case SHIP_RETRY:
        /* One line per cause, not one per retry: the error names it (a full
         * disk on the server is "HTTP 507: the server's storage is full"). */
        if (!c->ship_failing || strcmp(c->ship_error, err) != 0)
            log_event(LOG_WARN, "cannot ship the log; the spool keeps it, retrying", "run", c->rid,
                      "error", err, (const char *)NULL);
        c->ship_failing = 1;
        snprintf(c->ship_error, sizeof(c->ship_error), "%s", err);
        break;
    case SHIP_UNAUTHORIZED:
        refresh(c);
        break;
    case SHIP_GONE:
        log_event(LOG_WARN, "the server no longer gives this run to this launcher: stopping it",
                  "run", c->rid, "error", err, (const char *)NULL);
        c->gone = 1;
        job_cancel(c->r, JOB_KILL, "the server (the run is no longer this launcher's)");
        break;
    case SHIP_FULL:
        log_event(LOG_WARN, "the server's log cap is reached; the rest is not shipped", "run",
                  c->rid, "error", err, (const char *)NULL);
        break;
    case SHIP_ERROR:
        log_event(LOG_ERROR, "cannot read the spool", "run", c->rid, "error", err,
                  (const char *)NULL);
        c->sh.retry_at = now + backoff_next(&c->sh.bo);
        break;
    case SHIP_TAMPERED:
        log_event(LOG_ERROR, "the run's code rewrote its spool: stopping it", "run", c->rid,
                  "error", err, (const char *)NULL);
        snprintf(c->tampered, sizeof(c->tampered), "%s", err);
        job_cancel(c->r, JOB_KILL, "the launcher (spool tampered)");
        break;
    }
    return shipper_due(&c->sh, avail, clock_mono_ms());
}

static int64_t on_tick(void *arg, struct run_state *rs, uint64_t spool_end)
{
    int64_t due = ship(arg, rs, spool_end);
    return due < 0 || due > IDLE_TICK_MS ? IDLE_TICK_MS : due;
}

/* What job_cancel asked; the reason names the canceller for both the notes and the result. */
static int cancel_asked(struct job *r, char *reason, size_t size)
{
    pthread_mutex_lock(&r->mu);
    int how = r->cancel;
    if (how)
        snprintf(reason, size, "%s", r->cancel_reason);
    pthread_mutex_unlock(&r->mu);
    return how;
}

static int on_cancel(void *arg, char *who, char *by, size_t size)
{
    struct job *r = ((struct ctx *)arg)->r;
    uint64_t v;
    while (read(r->cancel_fd, &v, sizeof(v)) > 0) /* drained: the news is in r */
        ;
    int how = cancel_asked(r, who, size);
    if (how)
        snprintf(by, size, "%s", who);
    return how == JOB_KILL ? SUP_KILL : how == JOB_CANCEL ? SUP_CANCEL : SUP_GO_ON;
}

/* Ships what is left of the spool after the container stopped. */
static void flush(struct ctx *c, struct run_state *rs, uint64_t spool_end)
{
    while (!c->gone && !c->stuck && !atomic_load(&c->env->abandon)) {
        int64_t due = ship(c, rs, spool_end);
        if (due < 0)
            return;
        if (due > 0 && nap(c, due) < 0)
            return;
    }
}

static int release_download(void *arg, const struct release *rel, int fd, char *err, size_t errsz)
{
    struct ctx *c = arg;
    return backend_download(c->b, rel->url, fd, rel->size, err, errsz) == BACKEND_OK ? 0 : -1;
}

static int release_from_json(const json_t *w, struct release *rel)
{
    const char *kind = "worker", *arch, *version, *sha, *sig, *url;
    json_int_t id, size;
    memset(rel, 0, sizeof(*rel));
    if (json_unpack((json_t *)w, "{s:I, s?s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", &id, "kind",
                    &kind, "arch", &arch, "version", &version, "sha256", &sha, "signature", &sig,
                    "size", &size, "url", &url) < 0)
        return -1;
    snprintf(rel->kind, sizeof(rel->kind), "%s", kind);
    snprintf(rel->arch, sizeof(rel->arch), "%s", arch);
    snprintf(rel->version, sizeof(rel->version), "%s", version);
    snprintf(rel->sha256, sizeof(rel->sha256), "%s", sha);
    snprintf(rel->signature, sizeof(rel->signature), "%s", sig);
    snprintf(rel->url, sizeof(rel->url), "%s", url);
    rel->size = size;
    return 0;
}

/* The run's worker binary into worker: the local one, or the verified release. 0, or -1 with
 * reason. */
static int prepare_worker(struct ctx *c, const json_t *w, char *worker, size_t size, char *reason,
                          size_t rsz)
{
    struct release rel;
    if (c->env->cfg->worker_binary) {
        /* A local worker instead of the release: for development, and for a launcher under
         * emulation whose containers are of another architecture (tests/release). */
        snprintf(worker, size, "%s", c->env->cfg->worker_binary); /* resolved at start */
        return 0;
    }
    if (!w || json_is_null(w)) {
        snprintf(reason, rsz,
                 "no worker release is published for %s (davit release publish FILE --arch %s)",
                 c->env->session->arch, c->env->session->arch);
        return -1;
    }
    if (release_from_json(w, &rel) < 0) {
        snprintf(reason, rsz, "the run message's worker release is malformed");
        return -1;
    }
    pthread_mutex_lock(&c->env->release_mu);
    int rc = release_fetch(c->env->workers_dir, &rel, c->env->cred->release_key, release_download,
                           c, worker, size, reason, rsz);
    pthread_mutex_unlock(&c->env->release_mu);
    if (rc < 0) {
        log_event(LOG_ERROR, "worker release refused", "run", c->rid, "error", reason,
                  (const char *)NULL);
        return -1;
    }
    log_event(LOG_INFO, rc == 1 ? "worker release from the cache" : "worker release downloaded",
              "run", c->rid, "version", rel.version, "sha256", rel.sha256, (const char *)NULL);
    return 0;
}

/*
 * Prepares a new run: the spec and the verified worker. Returns 0 with
 * *spec and worker set, or -1 with reason (the run fails without a
 * container).
 */
static int prepare(struct ctx *c, struct runspec **spec, char *worker, size_t size, char *reason,
                   size_t rsz)
{
    json_t *run = json_object_get(c->r->msg, "run");
    const json_t *msg_spec = json_object_get(run, "spec");
    /* The signature first: a refused image or hook is refused on the spec as signed. */
    if (unseal_verify(msg_spec, c->env->cred, spec, reason, rsz) < 0)
        return -1;
    /* Before the secrets are opened, so that a refused run never has them in the clear here; the
     * hook sees each secret's name with "***" (admission.c). */
    if (admission_check(c->env->cfg, *spec, c->r->id, c->pool_name, reason, rsz) < 0)
        return -1;
    if (prepare_worker(c, json_object_get(c->r->msg, "worker"), worker, size, reason, rsz) < 0)
        return -1;
    /* Last, just before the run directory is written (sup_run); runspec_free wipes them. */
    return unseal_open(msg_spec, c->env->cred, *spec, reason, rsz);
}

static void result_from_state(const struct run_state *rs, struct run_result *res)
{
    memset(res, 0, sizeof(*res));
    if (outcome_parse(rs->result_outcome, &res->outcome) < 0)
        res->outcome = OUTCOME_FAILED;
    res->exit_status = rs->result_exit;
    snprintf(res->reason, sizeof(res->reason), "%s", rs->result_reason);
}

/*
 * The log is shipped: keeps the result in the run's state, then removes the
 * container and the run directory before the result is reported, so that a
 * run reported ended has nothing left behind on this machine, and a restart
 * in between still reports it (docs/launcher.md, "Restarts and adoption").
 */
static void finish(struct ctx *c, struct supervisor *sup, struct run_state *rs,
                   const struct run_result *res)
{
    char err[1024];
    rs->has_result = 1;
    snprintf(rs->result_outcome, sizeof(rs->result_outcome), "%s", outcome_name(res->outcome));
    rs->result_exit = res->exit_status;
    snprintf(rs->result_reason, sizeof(rs->result_reason), "%s%s", res->reason,
             c->sh.full ? " (the log was cut at the server's cap)" : "");
    /* Whatever the worker recorded: the run's code rewrote its log. */
    if (c->tampered[0]) {
        snprintf(rs->result_outcome, sizeof(rs->result_outcome), "%s",
                 outcome_name(OUTCOME_FAILED));
        rs->result_exit = -1;
        snprintf(rs->result_reason, sizeof(rs->result_reason), "%s", c->tampered);
    }
    save(c, rs);
    struct backoff bo;
    backoff_init(&bo, BACKOFF_BASE_MS, BACKOFF_MAX_MS, backoff_seed());
    for (int attempt = 0; sup_remove(sup, rs, err, sizeof(err)) < 0; attempt++) {
        if (attempt == 2 || nap(c, backoff_next(&bo)) < 0) {
            /* Reported anyway: the state still names the container, and the
             * clean-up after the report, or the next start, tries again. */
            log_event(LOG_WARN, "cannot remove the run's container or directory before reporting",
                      "run", c->rid, "error", err, (const char *)NULL);
            break;
        }
    }
    save(c, rs);
}

/* Reports the result kept in rs (finish), until the server takes it. */
static void report(struct ctx *c, struct run_state *rs)
{
    json_t *ev = json_pack("{s:s, s:s, s:s}", "type", "result", "outcome", rs->result_outcome,
                           "reason", rs->result_reason);
    if (ev && rs->result_exit >= 0)
        json_object_set_new(ev, "exit_code", json_integer(rs->result_exit));
    send_event(c, rs, ev, 1);
}

/* An adopted run whose container cannot be followed: returns 1 with res to report. */
static int adopt_check(struct ctx *c, struct run_state *rs, struct run_result *res)
{
    char err[1024];
    json_t *info = NULL;
    memset(res, 0, sizeof(*res));
    res->outcome = OUTCOME_FAILED;
    res->exit_status = -1;
    int found = rs->container[0]
                    ? docker_container_inspect(c->docker, rs->container, &info, err, sizeof(err))
                    : 0;
    const char *st = json_string_value(json_object_get(json_object_get(info, "State"), "Status"));
    int created = st && strcmp(st, "created") == 0;
    json_decref(info);
    if (found == 1 && !created)
        return 0;
    snprintf(res->reason, sizeof(res->reason), "%s",
             found < 0 ? err
             : created ? "davit-launcher stopped before the run's container started"
                       : "davit-launcher stopped before the run's container was created, or "
                         "after it was removed");
    return 1;
}

/*
 * The thread's own clients and the shipper. Returns 0, or -1 after logging
 * why (the run is kept for the next start).
 */
static int open_ctx(struct ctx *c, const struct run_state *rs)
{
    struct job_env *env = c->env;
    char dir[4200], spool[4300], err[2048];
    state_run_dir(env->state, rs->run_id, dir, sizeof(dir));
    snprintf(spool, sizeof(spool), "%s/%s", dir, SPOOL_FILE);
    c->counted_acked = rs->offset; /* shipped by an earlier start */
    if (shipper_init(&c->sh, c->r->id, spool, rs->offset, backoff_seed()) < 0)
        snprintf(err, sizeof(err), "out of memory"); /* shipper_init sets no err */
    if (!c->sh.path ||
        backend_open(&c->b, env->cred, env->cfg->ca_file, env->cfg->debug, err, sizeof(err)) < 0 ||
        docker_open(&c->docker, env->cfg->docker_host, env->cfg->docker_timeout_ms, env->cfg->debug,
                    err, sizeof(err)) < 0) {
        log_event(LOG_ERROR, "cannot carry the run", "run", c->rid, "error", err,
                  (const char *)NULL);
        return -1;
    }
    /* The follow loop waits on these calls: keep them short (backend.h). */
    backend_set_call_timeout(c->b, RUN_CALL_TIMEOUT_S);
    session_use(env->session, c->b, &c->gen, c->pool_name, sizeof(c->pool_name));
    c->print = env->cfg->run_logs_stdout;
    printer_init(&c->printer, stdout, PRINTER_JSON, c->rid);
    return 0;
}

/*
 * A new run: prepared and carried, or ended before its start, with the
 * reason as the run's log. ping is docker_ping's answer (its error in err).
 */
static void carry_new(struct ctx *c, struct supervisor *sup, struct run_state *rs,
                      struct runspec **spec, int ping, struct run_result *res, char *err,
                      size_t errsz)
{
    char worker[4200];
    save(c, rs);
    send_event(c, rs, json_pack("{s:s}", "type", "preparing"), 0);
    int cancel = cancel_asked(c->r, err, errsz), started = 0;
    res->outcome = OUTCOME_FAILED;
    res->exit_status = -1;
    if (cancel) {
        res->outcome = OUTCOME_CANCELED;
        snprintf(res->reason, sizeof(res->reason), "canceled by %s before the run started", err);
    } else if (ping < 0) {
        snprintf(res->reason, sizeof(res->reason), "%s", err);
    } else if (prepare(c, spec, worker, sizeof(worker), res->reason, sizeof(res->reason)) == 0) {
        /* The secrets are in spec now; the message is not needed any more. */
        json_decref(c->r->msg);
        c->r->msg = NULL;
        int rc = sup_run(sup, *spec, rs, worker, res, err, errsz);
        if (rc < 0) {
            res->outcome = OUTCOME_FAILED;
            res->exit_status = -1;
            snprintf(res->reason, sizeof(res->reason), "davit-launcher: %s", err);
        }
        started = rc != 1;
    }
    /* The reason goes into the run's log too, as the launcher's section. */
    if (!started)
        sup_not_started(sup, rs, res);
}

/* An adopted run, followed to its end. Returns 0, or -1 when it cannot be (kept for the next
 * start). */
static int carry_adopted(struct ctx *c, struct supervisor *sup, struct run_state *rs, int ping,
                         struct run_result *res, char *err, size_t errsz)
{
    if (rs->has_result) {
        /* Shipped and cleaned up before a restart; only the report is left. */
        result_from_state(rs, res);
        return 0;
    }
    if (ping == 0 && adopt_check(c, rs, res) == 1)
        return 0;
    if (ping == 0) {
        log_event(LOG_INFO, "adopted run", "run", rs->run_id, "container", rs->container,
                  (const char *)NULL);
        if (sup_adopt(sup, rs, 0, res, err, errsz) == 0)
            return 0;
    }
    log_event(LOG_ERROR, "cannot follow the adopted run", "run", c->rid, "error", err,
              (const char *)NULL);
    return -1;
}

static void *run_thread(void *arg)
{
    struct job *r = arg;
    struct job_env *env = r->env;
    struct ctx c = {.r = r, .env = env};
    struct run_state rs;
    struct run_result res;
    struct runspec *spec = NULL;
    char err[2048];
    const struct sup_hooks hooks = {&c, on_record, on_tick, on_cancel, NULL, on_checked};

    snprintf(c.rid, sizeof(c.rid), "%" PRId64, r->id);
    memset(&res, 0, sizeof(res));
    metrics_active_add(1);
    if (r->adopted) {
        rs = r->rs;
    } else {
        memset(&rs, 0, sizeof(rs));
        snprintf(rs.run_id, sizeof(rs.run_id), "r%" PRId64 "-%.12s", r->id,
                 env->state->launcher_id);
        rs.server_id = r->id;
    }
    if (open_ctx(&c, &rs) < 0)
        goto out;
    struct supervisor sup = {.cfg = env->cfg,
                             .docker = c.docker,
                             .state = env->state,
                             .wake_fd = r->cancel_fd,
                             .hooks = &hooks,
                             .pool_id = env->cred->pool_id,
                             .pool_name = c.pool_name};
    int ping = docker_ping(c.docker, err, sizeof(err));
    if (!r->adopted)
        carry_new(&c, &sup, &rs, &spec, ping, &res, err, sizeof(err));
    else if (carry_adopted(&c, &sup, &rs, ping, &res, err, sizeof(err)) < 0)
        goto out;
    if (!c.gone && !rs.has_result) {
        flush(&c, &rs, res.spool_end);
        if (atomic_load(&env->abandon))
            goto out;
        if (!c.gone && !c.stuck)
            finish(&c, &sup, &rs, &res);
    }
    if (!c.gone && !c.stuck && rs.has_result)
        report(&c, &rs);
    if (c.stuck || atomic_load(&env->abandon))
        goto out; /* the next start with a valid token reports it */
    log_event(LOG_INFO, c.gone ? "run dropped" : "run reported", "run", c.rid, "outcome",
              outcome_name(res.outcome), (const char *)NULL);
    if (!c.gone)
        metrics_run_ended(res.outcome);
    sup_cleanup(&sup, &rs);
out:
    metrics_lag_add(-c.lag);
    metrics_active_add(-1);
    explicit_bzero(rs.key, sizeof(rs.key)); /* the run's spool key */
    runspec_free(spec);
    shipper_free(&c.sh);
    docker_close(c.docker);
    backend_close(c.b);
    atomic_store(&r->done, 1);
    if (env->ended)
        env->ended(env->ended_arg);
    return NULL;
}

int job_start(struct job_env *env, int64_t id, json_t *msg, const struct run_state *adopted,
              struct job **out, char *err, size_t errsz)
{
    struct job *r = calloc(1, sizeof(*r));
    if (!r) {
        json_decref(msg);
        snprintf(err, errsz, "run %" PRId64 ": out of memory", id);
        return -1;
    }
    r->env = env;
    r->id = id;
    r->msg = msg;
    if (adopted) {
        r->rs = *adopted;
        r->adopted = 1;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->cancel_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    /* pthread_create returns its error; it does not set errno. */
    int e = r->cancel_fd < 0 ? errno : pthread_create(&r->thread, NULL, run_thread, r);
    if (e != 0) {
        snprintf(err, errsz, "run %" PRId64 ": cannot start its thread: %s", id, strerror(e));
        if (r->cancel_fd >= 0)
            close(r->cancel_fd);
        pthread_mutex_destroy(&r->mu);
        json_decref(r->msg);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void job_cancel(struct job *r, enum job_stop how, const char *reason)
{
    pthread_mutex_lock(&r->mu);
    if (!r->cancel_reason[0])
        snprintf(r->cancel_reason, sizeof(r->cancel_reason), "%s", reason);
    if ((int)how > r->cancel)
        r->cancel = (int)how;
    pthread_mutex_unlock(&r->mu);
    uint64_t one = 1;
    if (write(r->cancel_fd, &one, sizeof(one)) < 0)
        log_event(LOG_WARN, "cannot wake a run", (const char *)NULL);
}

int64_t job_run_id(const struct job *j)
{
    return j->id;
}

int job_ended(struct job *j)
{
    return atomic_load(&j->done);
}

void job_join(struct job *r)
{
    pthread_join(r->thread, NULL);
    close(r->cancel_fd);
    pthread_mutex_destroy(&r->mu);
    json_decref(r->msg);
    free(r);
}
