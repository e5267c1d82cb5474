/*
 * davit autoscale: one pool against one AWS Auto Scaling group, Azure scale
 * set or GCP managed instance group (docs/autoscale.md; the cloud behind a
 * struct provider, provider.h). A tick reads the group (the cloud) and the
 * pool (the davit API), answers AWS's termination lifecycle hook, plans (autoscale.c) and
 * carries the plan out; with --every it ticks until SIGTERM or SIGINT.
 * Every decision is one log line with its reason, counted in /metrics
 * (--metrics-listen).
 */
#include "cli/cloud_http.h"
#include "cli/args.h"
#include "cli/autoscale.h"
#include "cli/provider.h"
#include "cli/cli.h"
#include "cli/client.h"

#include "common/clock.h"
#include "common/duration.h"
#include "common/env.h"
#include "common/log.h"
#include "common/outcome.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The cloud refused a call or the credentials (docs/autoscale.md, "Exit codes"). */
#define EXIT_CLOUD 8

/* The lifecycle hook's wait: from half a second, doubling up to 15 s. */
#define HOOK_PAUSE_FIRST_MS 500
#define HOOK_PAUSE_CAP_MS   15000
/* Instances in Terminating:Wait remembered across ticks (when each was first seen). */
#define SEEN_MAX 256
/* Workers read from the scaling endpoint, at most. */
#define WORKERS_MAX 4096

/* What /metrics counts, beyond the plan's kinds (enum as_kind comes first). */
enum {
    M_UNDRAINED_BUSY = AS_STRAY + 1, /* a scale-in candidate was busy after all */
    M_HOOK_COMPLETED,                /* a lifecycle action completed: its worker drained */
    M_HOOK_TIMEOUT,                  /* completed as the hook's timeout neared */
    M_HOOK_WAITING,                  /* a tick left a lifecycle action waiting */
    M_COUNT
};
static const char *const metric_names[M_COUNT] = {"steady",
                                                  "hold",
                                                  "scale_out",
                                                  "scale_in",
                                                  "stray",
                                                  "undrained_busy",
                                                  "lifecycle_completed",
                                                  "lifecycle_timeout",
                                                  "lifecycle_waiting"};

struct metrics {
    pthread_mutex_t mu;
    uint64_t decisions[M_COUNT];
    uint64_t errors, ticks;
    int64_t desired, pending, busy, idle, drained, last_tick_ms;
};

struct seen {
    char id[AS_ID_SIZE];
    int64_t ms;    /* first seen waiting */
    int64_t hb_ms; /* its last heartbeat, or -1: none yet */
};

struct ctx {
    struct cli *c;
    const char *pool, *group;
    struct as_options opt;
    int64_t every_ms;
    int dry_run;
    struct provider prov;
    struct prov_config cfg;
    const char *provider; /* "aws", "azure", "gcp" */
    const char *aws_endpoint, *azure_endpoint, *gcp_endpoint;
    struct metrics m;
    sigset_t stop_set;
    int stop;
    int auth_failed; /* the last cloud error was the cloud refusing the credentials */
    struct seen seen[SEEN_MAX];
    size_t n_seen;
    /* With --every: the live instances seen with no worker, and since when (ms, wall clock). */
    struct seen workerless[PROV_MAX_INSTANCES];
    size_t n_workerless;
};

/* ---- /metrics ---- */

static char *metrics_text(struct metrics *m)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->mu);
    fputs("# HELP davit_autoscale_decisions_total Decisions taken, by kind (docs/autoscale.md).\n"
          "# TYPE davit_autoscale_decisions_total counter\n",
          f);
    for (int i = 0; i < M_COUNT; i++)
        fprintf(f, "davit_autoscale_decisions_total{decision=\"%s\"} %llu\n", metric_names[i],
                (unsigned long long)m->decisions[i]);
    fprintf(f,
            "# HELP davit_autoscale_errors_total Ticks that failed (the cloud or the davit API).\n"
            "# TYPE davit_autoscale_errors_total counter\n"
            "davit_autoscale_errors_total %llu\n"
            "# HELP davit_autoscale_ticks_total Ticks run.\n"
            "# TYPE davit_autoscale_ticks_total counter\n"
            "davit_autoscale_ticks_total %llu\n"
            "# HELP davit_autoscale_group_desired The group's desired capacity at the last tick.\n"
            "# TYPE davit_autoscale_group_desired gauge\n"
            "davit_autoscale_group_desired %lld\n"
            "# HELP davit_autoscale_workers The group's workers at the last tick, by state.\n"
            "# TYPE davit_autoscale_workers gauge\n"
            "davit_autoscale_workers{state=\"busy\"} %lld\n"
            "davit_autoscale_workers{state=\"idle\"} %lld\n"
            "davit_autoscale_workers{state=\"drained\"} %lld\n"
            "# HELP davit_autoscale_pending_runs The pool's queued runs at the last tick.\n"
            "# TYPE davit_autoscale_pending_runs gauge\n"
            "davit_autoscale_pending_runs %lld\n"
            "# HELP davit_autoscale_last_tick_seconds When the last tick ended (Unix time).\n"
            "# TYPE davit_autoscale_last_tick_seconds gauge\n"
            "davit_autoscale_last_tick_seconds %.3f\n",
            (unsigned long long)m->errors, (unsigned long long)m->ticks, (long long)m->desired,
            (long long)m->busy, (long long)m->idle, (long long)m->drained, (long long)m->pending,
            (double)m->last_tick_ms / 1000.0);
    pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    struct metrics *m = cls;
    unsigned status = MHD_HTTP_OK;
    char *text = NULL;
    if (strcmp(method, "GET") != 0)
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    else if (strcmp(url, "/metrics") != 0)
        status = MHD_HTTP_NOT_FOUND;
    else if (!(text = metrics_text(m)))
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (text)
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Serves /metrics on addr ("HOST:PORT"; port 0 picks one, logged). NULL with err on failure. */
static struct MHD_Daemon *metrics_start(struct metrics *m, const char *addr, char *err,
                                        size_t errsz)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1]) {
        snprintf(err, errsz, "--metrics-listen: expected HOST:PORT");
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) {
        snprintf(err, errsz, "--metrics-listen %s: cannot resolve the address", addr);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     (res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, 0, NULL, NULL, on_metrics, m, MHD_OPTION_SOCK_ADDR, res->ai_addr,
                         MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!d) {
        snprintf(err, errsz, "--metrics-listen %s: cannot listen (%s)", addr, strerror(errno));
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char port[16];
    snprintf(port, sizeof(port), "%u", info ? (unsigned)info->port : 0U);
    log_event(LOG_INFO, "metrics listening", "host", host, "port", port, NULL);
    return d;
}

static void count(struct ctx *x, int metric)
{
    pthread_mutex_lock(&x->m.mu);
    x->m.decisions[metric]++;
    pthread_mutex_unlock(&x->m.mu);
}

/* One decision: one log line with its reason, and its counter. */
static void decide(struct ctx *x, int metric, const char *reason, const char *instance,
                   int64_t worker, const char *desired)
{
    char w[24];
    snprintf(w, sizeof(w), "%lld", (long long)worker);
    log_event(LOG_INFO, "autoscale decision", "decision", metric_names[metric], "pool", x->pool,
              "group", x->group, "instance", instance && *instance ? instance : NULL, "worker",
              worker > 0 ? w : NULL, "desired", desired, "reason", reason, "dry_run",
              x->dry_run ? "true" : NULL, NULL);
    count(x, metric);
}

/* Waits ms, or less when asked to stop (SIGTERM, SIGINT): 1 then. */
static int pause_ms(struct ctx *x, int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    if (sigtimedwait(&x->stop_set, NULL, &ts) > 0)
        x->stop = 1;
    return x->stop;
}

/* ---- the pool, from the davit API ---- */

struct pool_state {
    struct as_pool p;
    struct as_worker *w;
    size_t unlabelled; /* workers with no instance_id metadata */
};

static int pool_read(struct ctx *x, struct pool_state *out)
{
    memset(out, 0, sizeof(*out));
    char path[256];
    char *name = client_escape(x->pool);
    json_t *body = NULL;
    if (!name) {
        fprintf(stderr, "davit autoscale: out of memory\n");
        return EXIT_INTERNAL;
    }
    snprintf(path, sizeof(path), "/api/v1/pools/%s/scaling", name);
    free(name);
    int rc = client_call(x->c, "GET", path, NULL, NULL, 0, &body, NULL);
    if (rc)
        return rc;
    json_t *ws = json_object_get(body, "workers");
    json_t *pending = json_object_get(body, "pending");
    size_t n = json_array_size(ws);
    if (!json_is_integer(pending) || !json_is_array(ws) || n > WORKERS_MAX ||
        !(out->w = calloc(n ? n : 1, sizeof(*out->w)))) {
        fprintf(stderr, "davit autoscale: the server's scaling answer for pool %s is not one\n",
                x->pool);
        json_decref(body);
        return EXIT_API;
    }
    out->p.pending = json_integer_value(pending);
    out->p.workers = out->w;
    size_t i;
    json_t *o;
    json_array_foreach(ws, i, o)
    {
        struct as_worker *w = &out->w[out->p.n_workers];
        const char *iid =
            json_string_value(json_object_get(json_object_get(o, "metadata"), "instance_id"));
        const char *idle = json_string_value(json_object_get(o, "idle_since"));
        /* A state this version does not know counts as busy: never scaled in, never a stray. */
        w->state = autoscale_worker_state_or_busy(json_string_value(json_object_get(o, "state")));
        w->id = json_integer_value(json_object_get(o, "id"));
        w->idle_since_ms = idle && w->state != AS_BUSY ? cloud_http_time(idle) : -1;
        /* The runs it holds and takes at once: 0 from a server that does not say (before
         * "capacity"), read as one run for a busy worker and as no capacity reported. */
        w->runs = json_integer_value(json_object_get(o, "runs"));
        w->slots = json_integer_value(json_object_get(o, "capacity"));
        snprintf(w->instance_id, sizeof(w->instance_id), "%s", iid ? iid : "");
        out->unlabelled += !w->instance_id[0];
        out->p.n_workers++;
    }
    json_decref(body);
    return 0;
}

static const struct as_worker *pool_worker(const struct pool_state *s, const char *instance)
{
    for (size_t i = 0; i < s->p.n_workers; i++)
        if (strcmp(s->w[i].instance_id, instance) == 0)
            return &s->w[i];
    return NULL;
}

/* Drains (on 1) or undrains worker id; *after gets its state from the server's answer. */
static int drain(struct ctx *x, int64_t id, int on, enum as_worker_state *after)
{
    char path[96];
    json_t *req = json_object(), *resp = NULL;
    snprintf(path, sizeof(path), "/api/v1/workers/%lld/%s", (long long)id,
             on ? "drain" : "undrain");
    int rc = req ? client_call_json(x->c, "POST", path, req, &resp) : EXIT_INTERNAL;
    json_decref(req);
    if (rc == 0 &&
        autoscale_worker_state(json_string_value(json_object_get(resp, "state")), after) < 0) {
        fprintf(stderr, "davit autoscale: the server's drain answer for worker %lld has no state\n",
                (long long)id);
        rc = EXIT_API;
    }
    json_decref(resp);
    return rc;
}

/* ---- a tick ---- */

/* With --every, remembers since when each live instance of g has had no worker and sets its
 * workerless_since_ms, so that a stray is one with no worker for --stray-after, not one launched
 * that long ago that lost its worker a moment ago. One tick alone has no history: the launch
 * time counts then (docs/autoscale.md, "Strays"). */
static void track_workerless(struct ctx *x, struct prov_group *g, const int *workerless,
                             int64_t now_ms)
{
    struct seen *next = calloc(PROV_MAX_INSTANCES, sizeof(*next));
    size_t n = 0;
    if (!next) /* without history this tick: the launch time alone */
        return;
    for (size_t i = 0; i < g->n_instances && n < PROV_MAX_INSTANCES; i++) {
        if (!workerless[i])
            continue;
        int64_t since = now_ms;
        for (size_t j = 0; j < x->n_workerless; j++)
            if (strcmp(x->workerless[j].id, g->instances[i].id) == 0)
                since = x->workerless[j].ms;
        snprintf(next[n].id, AS_ID_SIZE, "%s", g->instances[i].id);
        next[n++].ms = since;
        g->instances[i].workerless_since_ms = since;
    }
    memcpy(x->workerless, next, n * sizeof(*next));
    x->n_workerless = n;
    free(next);
}

static int cloud_failed(struct ctx *x, int rc, const char *err)
{
    x->auth_failed = rc == PROV_EAUTH;
    fprintf(stderr, "davit autoscale: %s%s%s\n", rc == PROV_EAUTH ? x->prov.name : "",
            rc == PROV_EAUTH ? " refused the credentials: " : "", err);
    return EXIT_CLOUD;
}

/* The record of instance id waiting, made at now when new; NULL when the table is full (then it
 * is treated as new at every tick: heartbeated at once). */
static struct seen *seen_of(struct ctx *x, const char *id, int64_t now)
{
    for (size_t i = 0; i < x->n_seen; i++)
        if (strcmp(x->seen[i].id, id) == 0)
            return &x->seen[i];
    if (x->n_seen >= SEEN_MAX)
        return NULL;
    struct seen *s = &x->seen[x->n_seen++];
    snprintf(s->id, AS_ID_SIZE, "%s", id);
    s->ms = now;
    s->hb_ms = -1;
    return s;
}

/* Forgets the instances no longer waiting. */
static void seen_prune(struct ctx *x, const struct prov_group *g)
{
    size_t k = 0;
    for (size_t i = 0; i < x->n_seen; i++) {
        int still = 0;
        for (size_t j = 0; j < g->n_instances && !still; j++)
            still = strcmp(g->instances[j].id, x->seen[i].id) == 0 &&
                    strcmp(g->instances[j].lifecycle, "Terminating:Wait") == 0;
        if (still)
            x->seen[k++] = x->seen[i];
    }
    x->n_seen = k;
}

struct waiting {
    char id[AS_ID_SIZE];
    struct seen *seen;   /* or NULL */
    int64_t deadline_ms; /* complete it by then even with runs left */
    int64_t hb_due_ms;   /* record a heartbeat by then */
    int drained, done;
};

/*
 * The termination lifecycle hook: every instance in Terminating:Wait gets its worker drained,
 * and its action completed (CONTINUE) once the worker holds no runs, has gone, or the hook's
 * global timeout nears; meanwhile a heartbeat every heartbeat timeout (less a margin) holds it,
 * the first at once since when it began waiting is not known (autoscale.h, "The lifecycle
 * hook's timing"). Between checks a pause that doubles. With --every, a tick waits at most
 * the interval and leaves the rest to the next. *acted is set when an action was completed.
 * AWS only: Azure's and GCP's instances drain themselves (docs/autoscale.md, "Guards").
 */
static int lifecycle(struct ctx *x, struct prov_group *g, int *acted)
{
    char err[512];
    struct waiting *wt = NULL;
    size_t n = 0;
    int rc = 0;
    *acted = 0;
    if (!x->prov.termination_hook)
        return 0;
    seen_prune(x, g);
    for (size_t i = 0; i < g->n_instances; i++)
        n += strcmp(g->instances[i].lifecycle, "Terminating:Wait") == 0;
    if (n == 0)
        return 0;
    struct prov_hook hook;
    if ((rc = x->prov.termination_hook(&x->prov, &hook, err, sizeof(err))) < 0)
        return cloud_failed(x, rc, err);
    if (!hook.name[0]) {
        log_event(LOG_WARN, "instances in Terminating:Wait but the group has no termination hook",
                  "group", x->group, NULL);
        return 0;
    }
    if (!(wt = calloc(n, sizeof(*wt)))) {
        fprintf(stderr, "davit autoscale: out of memory\n");
        return EXIT_INTERNAL;
    }
    int64_t now = clock_mono_ms(), start = now;
    size_t k = 0;
    for (size_t i = 0; i < g->n_instances; i++) {
        if (strcmp(g->instances[i].lifecycle, "Terminating:Wait") != 0)
            continue;
        snprintf(wt[k].id, sizeof(wt[k].id), "%s", g->instances[i].id);
        /* On the monotonic clock, from when this process first saw it waiting. */
        struct seen *s = seen_of(x, wt[k].id, now);
        wt[k].seen = s;
        wt[k].deadline_ms = autoscale_hook_deadline(s ? s->ms : now, hook.heartbeat_timeout_ms);
        wt[k].hb_due_ms = s && s->hb_ms >= 0
                              ? autoscale_hook_heartbeat_due(s->hb_ms, hook.heartbeat_timeout_ms)
                              : now;
        k++;
    }
    int64_t pause = 0;
    for (size_t left = n; left > 0 && !x->stop;) {
        struct pool_state ps;
        if ((rc = pool_read(x, &ps)) != 0)
            break;
        now = clock_mono_ms();
        for (size_t i = 0; i < n; i++) {
            if (wt[i].done)
                continue;
            const struct as_worker *w = pool_worker(&ps, wt[i].id);
            enum as_worker_state st = w ? w->state : AS_DRAINED;
            if (w && !wt[i].drained && (st == AS_IDLE || st == AS_BUSY)) {
                if (!x->dry_run && (rc = drain(x, w->id, 1, &st)) != 0)
                    break;
                wt[i].drained = 1;
            }
            const char *why = NULL;
            int metric = M_HOOK_COMPLETED;
            if (!w && ps.unlabelled > 0) {
                /* It may be one of theirs: not completed nor held, AWS's heartbeat timeout (the
                 * hook's own bound) ends it. Said again at every tick. */
                log_event(LOG_WARN,
                          "terminating instance has no worker, but workers of the pool have no "
                          "instance_id metadata: its lifecycle action is left to the hook's "
                          "timeout",
                          "group", x->group, "instance", wt[i].id, NULL);
                decide(x, AS_HOLD, "terminating instance may hold a worker with no instance_id",
                       wt[i].id, 0, NULL);
                wt[i].done = 1;
                left--;
                continue;
            }
            if (!w)
                why = "terminating instance has no worker";
            else if (st == AS_DRAINED)
                why = "terminating instance's worker is drained: no run is left on it";
            else if (now >= wt[i].deadline_ms) {
                why = "the lifecycle hook's global timeout nears and the worker still holds runs";
                metric = M_HOOK_TIMEOUT;
            }
            if (!why && now >= wt[i].hb_due_ms && !x->dry_run) {
                /* Still busy: hold the instance for another heartbeat timeout. */
                if ((rc = x->prov.heartbeat_termination(&x->prov, hook.name, wt[i].id, err,
                                                        sizeof(err))) < 0) {
                    rc = cloud_failed(x, rc, err);
                    break;
                }
                log_event(LOG_INFO, "lifecycle heartbeat: the worker still holds runs", "group",
                          x->group, "instance", wt[i].id, NULL);
                if (wt[i].seen)
                    wt[i].seen->hb_ms = now;
                wt[i].hb_due_ms = autoscale_hook_heartbeat_due(now, hook.heartbeat_timeout_ms);
            }
            if (!why)
                continue;
            if (!x->dry_run && (rc = x->prov.complete_termination(&x->prov, hook.name, wt[i].id,
                                                                  err, sizeof(err))) < 0) {
                rc = cloud_failed(x, rc, err);
                break;
            }
            decide(x, metric, why, wt[i].id, w ? w->id : 0, NULL);
            wt[i].done = 1;
            *acted = 1;
            left--;
        }
        free(ps.w);
        if (rc != 0 || left == 0)
            break;
        if (x->dry_run) {
            decide(x, M_HOOK_WAITING, "dry run: the lifecycle actions are left waiting", NULL, 0,
                   NULL);
            break;
        }
        /* Until the nearest deadline of those still waiting; with --every, at most one
         * interval: the next tick takes over. */
        int64_t until = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            if (wt[i].done)
                continue;
            if (wt[i].deadline_ms < until)
                until = wt[i].deadline_ms;
            if (!x->dry_run && wt[i].hb_due_ms < until)
                until = wt[i].hb_due_ms;
        }
        int budget = x->every_ms > 0 && start + x->every_ms < until;
        if (budget)
            until = start + x->every_ms;
        pause = autoscale_backoff(pause, HOOK_PAUSE_FIRST_MS, HOOK_PAUSE_CAP_MS, now, until);
        if (pause == 0 && budget) {
            decide(x, M_HOOK_WAITING,
                   "workers of terminating instances still hold runs: the next tick waits on", NULL,
                   0, NULL);
            break;
        }
        /* pause 0 otherwise: a deadline is reached, and the next pass completes its action or
         * records its heartbeat. */
        if (pause > 0 && pause_ms(x, pause))
            break;
    }
    free(wt);
    return rc;
}

/* Whether instance id has left the group (absent, or no longer live): 1, 0 when it is still
 * live, -1 when the group cannot be read. */
static int instance_gone(struct ctx *x, const char *id)
{
    char err[512];
    struct prov_group g;
    if (x->prov.describe(&x->prov, &g, err, sizeof(err)) < 0) {
        log_event(LOG_WARN, "cannot read the group again", "group", x->group, "reason", err, NULL);
        return -1;
    }
    int gone = 1;
    for (size_t i = 0; i < g.n_instances; i++)
        if (strcmp(g.instances[i].id, id) == 0)
            gone = !autoscale_instance_live(g.instances[i].lifecycle);
    prov_group_free(&g);
    return gone;
}

/* Scale-in of one idle worker: drain, then terminate only if the answer shows it drained. */
static int scale_in(struct ctx *x, const struct as_decision *d)
{
    char err[512];
    enum as_worker_state after;
    if (x->dry_run) {
        decide(x, AS_SCALE_IN, d->reason, d->instance_id, d->worker_id, NULL);
        return 0;
    }
    int rc = drain(x, d->worker_id, 1, &after);
    if (rc)
        return rc;
    if (!autoscale_after_drain(after)) {
        /* It took a run between the read and the drain: it stays, and takes runs again. */
        if ((rc = drain(x, d->worker_id, 0, &after)) != 0)
            return rc;
        decide(x, M_UNDRAINED_BUSY, "the drain's answer shows the worker busy: undrained and kept",
               d->instance_id, d->worker_id, NULL);
        return 0;
    }
    rc = x->prov.terminate(&x->prov, d->instance_id, 1, err, sizeof(err));
    if (rc < 0) {
        /* A failed call may still have acted (the connection lost after the cloud took it): the
         * group says. Still live: not terminated, so it must not stay drained for nothing. Gone
         * or terminating: its worker stays drained. Unknown: drained, the safe side. */
        int gone = instance_gone(x, d->instance_id);
        if (gone == 0)
            drain(x, d->worker_id, 0, &after);
        if (gone != 1)
            return cloud_failed(x, rc, err);
        log_event(LOG_WARN, "the terminate call failed but the instance is leaving", "instance",
                  d->instance_id, "reason", err, NULL);
    }
    decide(x, AS_SCALE_IN, d->reason, d->instance_id, d->worker_id, NULL);
    return 0;
}

static int carry_out(struct ctx *x, const struct prov_group *g, const struct as_plan *plan)
{
    char err[512], desired[48];
    int rc = 0;
    for (size_t i = 0; i < plan->n && rc == 0; i++) {
        const struct as_decision *d = &plan->d[i];
        switch (d->kind) {
        case AS_STEADY:
            decide(x, d->kind, d->reason, NULL, 0, NULL);
            break;
        case AS_HOLD:
            if (plan->unlabelled > 0 && d->instance_id[0])
                log_event(LOG_WARN,
                          "workers of the pool have no instance_id metadata: instances with no "
                          "worker are not terminated (start launchers with davit-launcher-boot, "
                          "or set DAVIT_METADATA_instance_id)",
                          "pool", x->pool, "group", x->group, NULL);
            decide(x, d->kind, d->reason, d->instance_id, 0, NULL);
            break;
        case AS_SCALE_OUT:
            snprintf(desired, sizeof(desired), "%d->%d", g->desired, d->new_desired);
            if (!x->dry_run &&
                (rc = x->prov.set_desired(&x->prov, d->new_desired, err, sizeof(err))) < 0)
                return cloud_failed(x, rc, err);
            decide(x, d->kind, d->reason, NULL, 0, desired);
            break;
        case AS_STRAY:
            if (!x->dry_run && (rc = x->prov.terminate(&x->prov, d->instance_id, d->decrement, err,
                                                       sizeof(err))) < 0)
                return cloud_failed(x, rc, err);
            decide(x, d->kind, d->reason, d->instance_id, 0, NULL);
            break;
        case AS_SCALE_IN:
            rc = scale_in(x, d);
            break;
        }
    }
    return rc;
}

static int tick(struct ctx *x)
{
    char err[512];
    struct prov_group g;
    struct pool_state ps = {0};
    int acted = 0, *want = NULL;
    int rc = x->prov.describe(&x->prov, &g, err, sizeof(err));
    if (rc < 0)
        return cloud_failed(x, rc, err);
    if ((rc = lifecycle(x, &g, &acted)) != 0 || x->stop)
        goto out;
    if (acted) { /* the group changed while the hook waited: read it again */
        prov_group_free(&g);
        if ((rc = x->prov.describe(&x->prov, &g, err, sizeof(err))) < 0) {
            rc = cloud_failed(x, rc, err);
            goto out;
        }
    }
    if ((rc = pool_read(x, &ps)) != 0)
        goto out;
    /* The launch times of the live instances with no worker, the only ones that may be strays
     * (no call when every instance has its worker: GCP makes one per instance). */
    want = calloc(g.n_instances ? g.n_instances : 1, sizeof(*want));
    if (!want) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < g.n_instances; i++)
        want[i] = autoscale_instance_live(g.instances[i].lifecycle) &&
                  !pool_worker(&ps, g.instances[i].id);
    if ((rc = x->prov.launch_times(&x->prov, &g, want, err, sizeof(err))) < 0) {
        rc = cloud_failed(x, rc, err);
        goto out;
    }
    if (x->every_ms > 0)
        track_workerless(x, &g, want, clock_wall_ms());
    struct as_group ag = {g.min, g.max, g.desired, g.instances, g.n_instances};
    struct as_plan *plan = malloc(sizeof(*plan));
    if (!plan) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    autoscale_plan(&ag, &ps.p, &x->opt, clock_wall_ms(), plan);
    pthread_mutex_lock(&x->m.mu);
    x->m.desired = g.desired;
    x->m.pending = ps.p.pending;
    x->m.busy = plan->busy;
    x->m.idle = plan->idle;
    x->m.drained = plan->drained;
    pthread_mutex_unlock(&x->m.mu);
    rc = carry_out(x, &g, plan);
    free(plan);
out:
    free(want);
    free(ps.w);
    prov_group_free(&g);
    pthread_mutex_lock(&x->m.mu);
    x->m.ticks++;
    x->m.errors += rc != 0;
    x->m.last_tick_ms = clock_wall_ms();
    pthread_mutex_unlock(&x->m.mu);
    return rc;
}

/* ---- options ---- */

static int read_duration(struct cli *c, const char *opt, const char *v, int64_t *ms)
{
    if (duration_parse(v, ms) < 0)
        return cli_usage(c, "--%s: not a duration (like 90s, 5m)", opt);
    return 0;
}

/* A count option (--max-create, --min, --max, --slots-per-instance): lo to hi. */
static int read_count(struct cli *c, const char *opt, const char *v, long long lo, long long hi,
                      int *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi)
        return cli_usage(c, "--%s: a number from %lld to %lld", opt, lo, hi);
    *out = (int)n;
    return 0;
}

/* The provider's variables' defaults, then the options over them. */
static int read_env(struct ctx *x, const char **listen, int *has_max)
{
    char err[256];
    long long n, min, max, slots;
    struct prov_config *cfg = &x->cfg;
    x->pool = env_get("AUTOSCALE_POOL", NULL, 0);
    x->provider = env_get("AUTOSCALE_PROVIDER", NULL, 0);
    cfg->group = env_get("AUTOSCALE_GROUP", NULL, 0);
    if (!cfg->group)
        cfg->group = env_get("AUTOSCALE_SCALE_SET", NULL, 0);
    cfg->region = env_get("AUTOSCALE_REGION", NULL, 0);
    cfg->subscription = env_get("AUTOSCALE_SUBSCRIPTION", NULL, 0);
    cfg->resource_group = env_get("AUTOSCALE_RESOURCE_GROUP", NULL, 0);
    cfg->project = env_get("AUTOSCALE_PROJECT", NULL, 0);
    cfg->ca_file = env_get("AUTOSCALE_CA_FILE", NULL, 0);
    *listen = env_get("AUTOSCALE_METRICS_LISTEN", NULL, 0);
    x->aws_endpoint = env_get("AUTOSCALE_AWS_ENDPOINT", NULL, 0);
    x->azure_endpoint = env_get("AUTOSCALE_AZURE_ENDPOINT", NULL, 0);
    x->gcp_endpoint = env_get("AUTOSCALE_GCP_ENDPOINT", NULL, 0);
    *has_max = env_get("AUTOSCALE_MAX", NULL, 0) != NULL;
    if (env_int("AUTOSCALE_MAX_CREATE", 5, 1000, &n, err, sizeof(err)) < 0 ||
        env_int("AUTOSCALE_MIN", 0, 100000, &min, err, sizeof(err)) < 0 ||
        env_int("AUTOSCALE_MAX", 0, 100000, &max, err, sizeof(err)) < 0 ||
        env_int("AUTOSCALE_SLOTS_PER_INSTANCE", 0, 64, &slots, err, sizeof(err)) < 0 ||
        env_duration("AUTOSCALE_SCALE_DOWN_DELAY", 5 * 60 * 1000, &x->opt.scale_down_delay_ms, err,
                     sizeof(err)) < 0 ||
        env_duration("AUTOSCALE_STRAY_AFTER", 10 * 60 * 1000, &x->opt.stray_after_ms, err,
                     sizeof(err)) < 0 ||
        env_duration("AUTOSCALE_EVERY", 0, &x->every_ms, err, sizeof(err)) < 0 ||
        env_bool("AUTOSCALE_DRY_RUN", 0, &x->dry_run, err, sizeof(err)) < 0)
        return cli_usage(x->c, "%s", err);
    x->opt.max_create = (int)n;
    x->opt.slots_per_instance = slots; /* 0: what the workers report */
    cfg->min = (int)min;
    cfg->max = (int)max;
    return 0;
}

static int read_options(struct ctx *x, int argc, char **argv, const char **listen)
{
    struct prov_config *cfg = &x->cfg;
    int o, rc, has_max;
    if ((rc = read_env(x, listen, &has_max)) != 0)
        return rc;
    optind = 0;
    while ((o = cli_getopt(x->c, argc, argv)) != -1) {
        switch (o) {
        case 'p':
            x->pool = optarg;
            break;
        case 'P':
            x->provider = optarg;
            break;
        case 'g':
        case 'G':
            cfg->group = optarg;
            break;
        case 'r':
            cfg->region = optarg;
            break;
        case 'S':
            cfg->subscription = optarg;
            break;
        case 'R':
            cfg->resource_group = optarg;
            break;
        case 'j':
            cfg->project = optarg;
            break;
        case 'C':
            cfg->ca_file = optarg;
            break;
        case 'i':
            if ((rc = read_count(x->c, "min", optarg, 0, 100000, &cfg->min)))
                return rc;
            break;
        case 'x':
            if ((rc = read_count(x->c, "max", optarg, 0, 100000, &cfg->max)))
                return rc;
            has_max = 1;
            break;
        case 'm':
            if ((rc = read_count(x->c, "max-create", optarg, 1, 1000, &x->opt.max_create)))
                return rc;
            break;
        case 'N': {
            int k = 0;
            if ((rc = read_count(x->c, "slots-per-instance", optarg, 1, 64, &k)))
                return rc;
            x->opt.slots_per_instance = k;
            break;
        }
        case 'd':
            if ((rc = read_duration(x->c, "scale-down-delay", optarg, &x->opt.scale_down_delay_ms)))
                return rc;
            break;
        case 's':
            if ((rc = read_duration(x->c, "stray-after", optarg, &x->opt.stray_after_ms)))
                return rc;
            break;
        case 'e':
            if ((rc = read_duration(x->c, "every", optarg, &x->every_ms)))
                return rc;
            break;
        case 'l':
            *listen = optarg;
            break;
        case 'a':
            x->aws_endpoint = optarg;
            break;
        case 'z':
            x->azure_endpoint = optarg;
            break;
        case 'c':
            x->gcp_endpoint = optarg;
            break;
        case 'n':
            x->dry_run = 1;
            break;
        }
    }
    if (optind != argc)
        return cli_usage(x->c, "takes no arguments besides its options");
    if (!x->provider)
        x->provider = "aws";
    int aws = strcmp(x->provider, "aws") == 0;
    if (!aws && strcmp(x->provider, "azure") != 0 && strcmp(x->provider, "gcp") != 0)
        return cli_usage(x->c, "--provider: aws, azure or gcp");
    if (!x->pool || !cfg->group)
        return cli_usage(x->c, "%s is required (or DAVIT_AUTOSCALE_%s)",
                         !x->pool ? "--pool NAME" : "--group NAME", !x->pool ? "POOL" : "GROUP");
    int azure = strcmp(x->provider, "azure") == 0;
    if (azure && (!cfg->subscription || !cfg->resource_group))
        return cli_usage(x->c, "--provider azure: %s is required (or DAVIT_AUTOSCALE_%s)",
                         !cfg->subscription ? "--subscription ID" : "--resource-group NAME",
                         !cfg->subscription ? "SUBSCRIPTION" : "RESOURCE_GROUP");
    if (!aws && !azure && (!cfg->project || !cfg->region))
        return cli_usage(x->c, "--provider gcp: %s is required (or DAVIT_AUTOSCALE_%s)",
                         !cfg->project ? "--project ID" : "--region R",
                         !cfg->project ? "PROJECT" : "REGION");
    if (!aws && !has_max)
        return cli_usage(x->c,
                         "--provider %s: --max is required (or DAVIT_AUTOSCALE_MAX): the %s has "
                         "no maximum of its own",
                         x->provider,
                         x->provider[1] == 'z' ? "scale set" : "managed instance group");
    if (!aws && cfg->max < cfg->min)
        return cli_usage(x->c, "--max %d is below --min %d", cfg->max, cfg->min);
    if (x->every_ms > 0 && x->every_ms < 1000)
        return cli_usage(x->c, "--every: at least 1s");
    cfg->endpoint = aws ? x->aws_endpoint : azure ? x->azure_endpoint : x->gcp_endpoint;
    return 0;
}

int cli_autoscale(struct cli *c, int argc, char **argv)
{
    char err[512];
    const char *listen = NULL;
    struct MHD_Daemon *mhd = NULL;
    struct ctx *x = calloc(1, sizeof(*x));
    int opened = 0;
    if (!x) {
        fprintf(stderr, "davit autoscale: out of memory\n");
        return EXIT_INTERNAL;
    }
    x->c = c;
    pthread_mutex_init(&x->m.mu, NULL);
    int rc = read_options(x, argc, argv, &listen);
    if (rc)
        goto out;
    x->group = x->cfg.group;
    log_setup(LOG_TEXT, 0, NULL);
    /* Blocked before any thread starts (they inherit it): only pause_ms takes them. */
    sigemptyset(&x->stop_set);
    sigaddset(&x->stop_set, SIGTERM);
    sigaddset(&x->stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &x->stop_set, NULL);
    int (*open_provider)(struct provider *, const struct prov_config *, char *, size_t) =
        x->provider[0] == 'a' && x->provider[1] == 'w' ? aws_provider_open
        : x->provider[0] == 'a'                        ? azure_provider_open
                                                       : gcp_provider_open;
    if (open_provider(&x->prov, &x->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit autoscale: %s\n", err);
        rc = EXIT_CLOUD;
        goto out;
    }
    opened = 1;
    if (listen && !(mhd = metrics_start(&x->m, listen, err, sizeof(err)))) {
        fprintf(stderr, "davit autoscale: %s\n", err);
        rc = EXIT_USAGE;
        goto out;
    }
    for (;;) {
        int64_t start = clock_mono_ms();
        x->auth_failed = 0;
        rc = tick(x);
        if (x->every_ms == 0 || x->stop)
            break;
        /* Credentials from the environment do not renew: stop, loudly. Any other failure is
         * logged and the next tick tries again. */
        if (x->auth_failed && !x->prov.renewable)
            break;
        if (x->prov.renewable && x->prov.refresh(&x->prov, err, sizeof(err)) < 0)
            log_event(LOG_WARN, "instance credentials not renewed", "provider", x->prov.name,
                      "reason", err, NULL);
        int64_t left = start + x->every_ms - clock_mono_ms();
        if (left > 0 && pause_ms(x, left))
            break;
    }
    if (x->stop)
        rc = 0;
out:
    if (mhd)
        MHD_stop_daemon(mhd);
    if (opened)
        x->prov.close(&x->prov);
    pthread_mutex_destroy(&x->m.mu);
    free(x);
    return rc;
}
