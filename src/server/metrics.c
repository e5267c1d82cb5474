/* The server's in-memory metrics and GET /metrics. */
#include "server/metrics.h"

#include "server/fanout.h"
#include "server/request.h"
#include "server/state.h"
#include "server/watch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_BUCKETS 14

/* Dispatch latency: queued (or requeued) until a launcher's poll claims it. */
struct metrics {
    pthread_mutex_t mu;
    uint64_t buckets[METRICS_BUCKETS]; /* cumulative counts are built at render time */
    uint64_t count;
    double sum_s;
    uint64_t requests;
};

static const double bucket_s[METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,    1,     2.5,  5,     10,   30};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void metrics_observe_dispatch(struct metrics *m, int64_t ms)
{
    double s = (double)ms / 1000.0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < METRICS_BUCKETS; i++)
        if (s <= bucket_s[i]) {
            m->buckets[i]++;
            break;
        }
    m->count++;
    m->sum_s += s;
    pthread_mutex_unlock(&m->mu);
}

void metrics_count_request(struct metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->requests++;
    pthread_mutex_unlock(&m->mu);
}

int metrics_render(struct metrics *m, struct dbuf *out)
{
    /* A copy under the lock, formatted after: a scrape never holds up a
     * poll recording its latency. */
    struct metrics snap;
    pthread_mutex_lock(&m->mu);
    memcpy(snap.buckets, m->buckets, sizeof(snap.buckets));
    snap.count = m->count;
    snap.sum_s = m->sum_s;
    snap.requests = m->requests;
    pthread_mutex_unlock(&m->mu);
    m = &snap;
    dbuf_printf(out, "# HELP davit_dispatch_latency_seconds Time from a run being queued until"
                     " a launcher's poll claims it.\n"
                     "# TYPE davit_dispatch_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        cum += m->buckets[i];
        dbuf_printf(out, "davit_dispatch_latency_seconds_bucket{le=\"%g\"} %llu\n", bucket_s[i],
                    (unsigned long long)cum);
    }
    dbuf_printf(out,
                "davit_dispatch_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                "davit_dispatch_latency_seconds_sum %.6f\n"
                "davit_dispatch_latency_seconds_count %llu\n"
                "# HELP davit_http_requests_total HTTP requests served.\n"
                "# TYPE davit_http_requests_total counter\n"
                "davit_http_requests_total %llu\n",
                (unsigned long long)m->count, m->sum_s, (unsigned long long)m->count,
                (unsigned long long)m->requests);
    return 0;
}

/* davit_server_info and davit_store_up: which replica answers, on what store, and whether its
 * database answers now. The replica name is checked by config (no quoting needed). */
static int render_server(struct req *r, int up, struct dbuf *b)
{
    return dbuf_printf(b,
                       "# HELP davit_server_info This server: its replica name, store and"
                       " version.\n"
                       "# TYPE davit_server_info gauge\n"
                       "davit_server_info{replica=\"%s\",store=\"%s\",version=\"%s\"} 1\n"
                       "# HELP davit_store_up 1 when the database answered this scrape, else 0.\n"
                       "# TYPE davit_store_up gauge\n"
                       "davit_store_up %d\n",
                       r->srv->cfg.replica_name, store_kind(r->srv->store), DAVIT_VERSION, up);
}

int h_metrics(struct req *r)
{
    struct dbuf b = DBUF_INIT(4 * 1024 * 1024);
    /* A database that does not answer leaves out its series, not the scrape: davit_store_up 0
     * says why, and the in-memory ones still count. */
    int up = store_ping(r->srv->store) == STORE_OK;
    if (render_server(r, up, &b) < 0 ||
        (up && (store_metrics(r->srv->store, r->srv->cfg.lease_ms, &b) < 0 ||
                store_errors_render(r->srv->store, &b) < 0)) ||
        metrics_render(r->srv->metrics, &b) < 0 || fanout_render(r->srv->fanout, &b) < 0 ||
        watch_render(r->srv->watch, &b) < 0 ||
        dbuf_printf(&b,
                    "# HELP davit_dispatch_wakeups_total Poll waiters resumed by a notify"
                    " (not by their deadline).\n"
                    "# TYPE davit_dispatch_wakeups_total counter\n"
                    "davit_dispatch_wakeups_total %llu\n"
                    "# HELP davit_dispatch_waiters Launcher polls waiting now.\n"
                    "# TYPE davit_dispatch_waiters gauge\n"
                    "davit_dispatch_waiters %llu\n",
                    (unsigned long long)dispatch_wakeups(r->srv->disp),
                    (unsigned long long)dispatch_waiting(r->srv->disp)) < 0) {
        dbuf_free(&b);
        return reply_error(r, 500, "metrics: the database failed");
    }
    size_t len = b.len;
    char *text = dbuf_take(&b);
    r->resp = text ? MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r->resp) {
        free(text);
        return reply_error(r, 500, "out of memory");
    }
    r->status = 200;
    MHD_add_response_header(r->resp, "Content-Type", "text/plain; version=0.0.4");
    return HANDLER_DONE;
}
