/*
 * The server's background threads. Lease expiry (the reaper) ticks every
 * 100 ms. The retention sweep has a thread of its own, so that deleting and
 * vacuuming never delays lease expiry; each of its store calls is one small
 * batch, and the store's lock is free between batches, for the requests.
 */
#include "server/background.h"

#include "common/clock.h"

#include "server/challenges.h"
#include "server/request.h"
#include "server/state.h"
#include "server/fanout.h"
#include "server/watch.h"

#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bgthread {
    struct server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    int stop, kicked;
    int secrets_kicked; /* sweeper: a checkpoint alone is asked for */
};

/* Sleeps on t->cond (t->mu held) until the CLOCK_MONOTONIC time at_ms. */
static void bg_wait_until(struct bgthread *t, int64_t at_ms)
{
    struct timespec ts = clock_mono_timespec(at_ms);
    pthread_cond_timedwait(&t->cond, &t->mu, &ts);
}

static void log_run_state(int64_t id, const char *state, const char *reason)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_event(LOG_WARN, "run state", "run", ids, "state", state, "reason", reason, NULL);
}

static void *reaper_main(void *arg)
{
    struct bgthread *rp = arg;
    struct server *srv = rp->srv;
    int tick = 0;
    pthread_mutex_lock(&rp->mu);
    while (!rp->stop) {
        bg_wait_until(rp, clock_mono_ms() + 100);
        if (rp->stop)
            break;
        pthread_mutex_unlock(&rp->mu);
        dispatch_expire(srv->disp, store_now_ms());
        watch_expire(srv->watch, store_now_ms());
        tick++;
        /* A lease runs from the launcher's last request, a poll included;
         * a poll held here does not extend it. Polls are at most 2/3 of the
         * lease, so a live launcher always polls again in time, and a dead
         * or frozen one is found within the lease whatever it left pending. */
        if (tick % 5 == 0) {
            struct store_reap r;
            if (store_reap(srv->store, srv->cfg.lease_ms, srv->cfg.grace_ms, &r) == STORE_OK &&
                (r.requeued || r.lost)) {
                for (int i = 0; i < r.requeued && i < STORE_REAP_IDS; i++)
                    log_run_state(r.requeued_ids[i], "queued", "the launcher's lease expired");
                for (int i = 0; i < r.lost && i < STORE_REAP_IDS; i++)
                    log_run_state(r.lost_ids[i], "lost", "the launcher did not come back");
                if (r.requeued > STORE_REAP_IDS || r.lost > STORE_REAP_IDS) {
                    char rq[16], lost[16];
                    snprintf(rq, sizeof(rq), "%d", r.requeued);
                    snprintf(lost, sizeof(lost), "%d", r.lost);
                    log_event(LOG_WARN, "leases expired", "requeued", rq, "lost", lost, NULL);
                }
                fanout_all(srv->fanout);
            }
        }
        pthread_mutex_lock(&rp->mu);
    }
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

#define SWEEP_RUNS   100  /* runs deleted per transaction */
#define SWEEP_TRIMS  16   /* logs deleted per transaction */
#define SWEEP_CHUNKS 32   /* log rows freed per transaction (each <= 256 KiB) */
#define SWEEP_PAGES  2048 /* pages given back per incremental vacuum (8 MiB) */
/* Free space that ends a full disk's report: room for the largest log chunk. */
#define SWEEP_PROBE_FREE (BODY_CAP_LOG + (1 << 20))

/* How often, at most, a result's kick cuts the WAL: each cut copies the WAL
 * into the database and fsyncs it under the store's lock, which at hundreds of
 * results a second cost more than half the server's time (docs/benchmarks.md). */
#define SECRETS_CHECKPOINT_EVERY_MS 1000

static void kick(struct server *srv, int full)
{
    struct bgthread *sw = srv->sweeper;
    if (!sw)
        return;
    pthread_mutex_lock(&sw->mu);
    if (full)
        sw->kicked = 1;
    else
        sw->secrets_kicked = 1;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->mu);
}

void sweep_kick(struct server *srv)
{
    kick(srv, 1);
}

void sweep_kick_secrets(struct server *srv)
{
    kick(srv, 0);
}

static int sweep_stopping(struct bgthread *sw)
{
    pthread_mutex_lock(&sw->mu);
    int stop = sw->stop;
    pthread_mutex_unlock(&sw->mu);
    return stop;
}

/* One sweep: old runs, then logs over the cap, then the chunks they leave,
 * then the free pages. Stops at the first failure (logged by the store) and
 * tries again at the next sweep. */
static void sweep_once(struct bgthread *sw, int first)
{
    struct store *st = sw->srv->store;
    const struct server_config *c = &sw->srv->cfg;
    int runs = 0, logs = 0, chunks = 0, n, more, rc = STORE_OK;
    /* A full disk is reported until a write succeeds; on a quiet server
     * nothing else may write. */
    store_space_probe(st, SWEEP_PROBE_FREE);
    /* Ended runs' secrets leave the WAL file within one sweep (docs/security.md). */
    store_secrets_checkpoint(st);
    /* Expired browser sessions (docs/security.md); a failure is logged and retried. */
    (void)store_web_sessions_expire(st, &n);
    /* Used registration challenges past their expiry (and a margin for other servers' clocks):
     * no challenge is good then anyway. */
    (void)store_challenge_uses_expire(st, store_now_ms() - CHALLENGES_SKEW_MS, &n);
    if (c->retention_max_age_ms > 0)
        do {
            rc = store_expire_runs(st, store_now_ms() - c->retention_max_age_ms, SWEEP_RUNS, &n);
            runs += n;
        } while (rc == STORE_OK && n == SWEEP_RUNS && !sweep_stopping(sw));
    if (rc == STORE_OK && c->retention_max_log_bytes > 0)
        do {
            rc = store_trim_logs(st, c->retention_max_log_bytes, SWEEP_TRIMS, &n);
            logs += n;
        } while (rc == STORE_OK && n == SWEEP_TRIMS && !sweep_stopping(sw));
    if (rc == STORE_OK)
        do {
            rc = store_purge_logs(st, SWEEP_CHUNKS, &n);
            chunks += n;
        } while (rc == STORE_OK && n == SWEEP_CHUNKS && !sweep_stopping(sw));
    /* Only real work vacuums, and the first sweep: pages may have been freed
     * before a restart. */
    if (rc == STORE_OK && (first || runs || logs || chunks))
        do
            rc = store_vacuum(st, SWEEP_PAGES, 1, &more);
        while (rc == STORE_OK && more && !sweep_stopping(sw));
    if (runs || logs) {
        char r[16], l[16], used[24];
        snprintf(r, sizeof(r), "%d", runs);
        snprintf(l, sizeof(l), "%d", logs);
        snprintf(used, sizeof(used), "%lld", (long long)store_used_bytes(st));
        log_event(LOG_INFO, "retention sweep", "runs_deleted", r, "logs_deleted", l,
                  "db_bytes_in_use", used, NULL);
    }
}

static void *sweeper_main(void *arg)
{
    struct bgthread *sw = arg;
    int first = 1;
    int64_t next_full = 0, next_cut = 0; /* CLOCK_MONOTONIC ms */
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        int64_t now = clock_mono_ms();
        int full = first || sw->kicked || now >= next_full;
        int cut = sw->secrets_kicked && now >= next_cut;
        if (!full && !cut) {
            bg_wait_until(sw, sw->secrets_kicked && next_cut < next_full ? next_cut : next_full);
            continue;
        }
        /* Cleared before the work: a kick during it is not lost. */
        sw->kicked = 0;
        sw->secrets_kicked = 0;
        pthread_mutex_unlock(&sw->mu);
        if (full)
            sweep_once(sw, first); /* checkpoints too */
        else
            store_secrets_checkpoint(sw->srv->store);
        now = clock_mono_ms();
        next_cut = now + SECRETS_CHECKPOINT_EVERY_MS;
        if (full)
            next_full = now + sw->srv->cfg.sweep_interval_ms;
        first = 0;
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

static struct bgthread *bg_start(struct server *srv, void *(*fn)(void *))
{
    struct bgthread *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->srv = srv;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    /* A tick must not stall when someone steps the wall clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, fn, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

struct bgthread *reaper_start(struct server *srv)
{
    return bg_start(srv, reaper_main);
}

struct bgthread *sweeper_start(struct server *srv)
{
    return bg_start(srv, sweeper_main);
}

void bg_stop(struct bgthread *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
