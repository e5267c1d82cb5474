#include "server/watch.h"

#include "server/request.h"
#include "server/state.h"

#include "common/dbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct watch_list {
    struct watcher *head, *tail;
};

/* A pool's version and its watchers. Made when the pool is first watched and
 * kept for the server's life: pools are few, and a version handed out must
 * stay comparable. */
struct watch_pool {
    struct watch_pool *next;
    char id[40];
    uint64_t version;
    struct watch_list list;
};

struct watch {
    pthread_mutex_t mu;
    uint64_t version; /* bumped with every pool's: the global view's */
    struct watch_pool *pools;
    struct watch_list all; /* watchers of every pool */
    size_t parked, max_parked;
    int closing;
};

struct watch *watch_new(size_t max_parked)
{
    struct watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    w->max_parked = max_parked ? max_parked : 1;
    return w;
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    while (w->pools) {
        struct watch_pool *p = w->pools;
        w->pools = p->next;
        free(p);
    }
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static struct watch_pool *pool_find(struct watch *w, const char *id)
{
    for (struct watch_pool *p = w->pools; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

static void unlink_watcher(struct watch *w, struct watcher *x)
{
    struct watch_list *l = x->on;
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NULL;
    x->on = NULL;
    w->parked--;
}

/* Called with the lock held. */
static void wake_list(struct watch *w, struct watch_list *l, int64_t expire_at, int timed_out)
{
    struct watcher *x = l->head;
    while (x) {
        struct watcher *next = x->next;
        if (expire_at < 0 || x->deadline_ms <= expire_at) {
            unlink_watcher(w, x);
            x->timed_out = timed_out;
            MHD_resume_connection(x->conn);
        }
        x = next;
    }
}

static void wake_all(struct watch *w, int64_t expire_at, int timed_out)
{
    for (struct watch_pool *p = w->pools; p; p = p->next)
        wake_list(w, &p->list, expire_at, timed_out);
    wake_list(w, &w->all, expire_at, timed_out);
}

void watch_bump(struct watch *w, const char *pool_id)
{
    pthread_mutex_lock(&w->mu);
    w->version++;
    struct watch_pool *p = pool_find(w, pool_id);
    if (p) { /* else nobody holds a version of it yet */
        p->version = w->version;
        wake_list(w, &p->list, -1, 0);
    }
    wake_list(w, &w->all, -1, 0);
    pthread_mutex_unlock(&w->mu);
}

void watch_bump_n(struct watch *w, const char *pool_id, int n)
{
    if (n > 0)
        watch_bump(w, pool_id);
}

void watch_bump_all(struct watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->version++;
    for (struct watch_pool *p = w->pools; p; p = p->next)
        p->version = w->version;
    wake_all(w, -1, 0);
    pthread_mutex_unlock(&w->mu);
}

void watch_expire(struct watch *w, int64_t now_ms)
{
    pthread_mutex_lock(&w->mu);
    if (w->parked)
        wake_all(w, now_ms, 1);
    pthread_mutex_unlock(&w->mu);
}

void watch_shutdown(struct watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    wake_all(w, -1, 1);
    pthread_mutex_unlock(&w->mu);
}

int watch_render(struct watch *w, struct dbuf *out)
{
    pthread_mutex_lock(&w->mu);
    unsigned long long parked = w->parked, version = w->version;
    pthread_mutex_unlock(&w->mu);
    return dbuf_printf(out,
                       "# HELP davit_watch_waiters UI change-feed watches parked now.\n"
                       "# TYPE davit_watch_waiters gauge\n"
                       "davit_watch_waiters %llu\n"
                       "# HELP davit_watch_version Changes the UI's live views were told of.\n"
                       "# TYPE davit_watch_version counter\n"
                       "davit_watch_version %llu\n",
                       parked, version);
}

/* The request ended (answered, or its client went away). */
static void watch_forget(void *arg)
{
    struct req *r = arg;
    struct watch *w = r->srv->watch;
    pthread_mutex_lock(&w->mu);
    if (r->watcher.on)
        unlink_watcher(w, &r->watcher);
    pthread_mutex_unlock(&w->mu);
}

enum { PARK_ANSWER, PARK_PARKED, PARK_CLOSING, PARK_FULL, PARK_OOM };

/*
 * Answers (*version) when the version moved from x->since, the wait is over
 * or the server is closing; else parks x. Reading the version and suspending
 * under one lock leaves no gap for a bump to be missed in, and orders the
 * suspend before any resume (libmicrohttpd drops a resume that comes first).
 */
static int park(struct watch *w, struct watcher *x, int64_t now_ms, uint64_t *version)
{
    int rc = PARK_ANSWER;
    pthread_mutex_lock(&w->mu);
    struct watch_pool *p = NULL;
    if (x->pool_id[0] && !(p = pool_find(w, x->pool_id))) {
        p = calloc(1, sizeof(*p));
        if (!p) {
            rc = PARK_OOM;
            goto out;
        }
        memcpy(p->id, x->pool_id, sizeof(p->id)); /* both are char[40] */
        p->version = w->version;
        p->next = w->pools;
        w->pools = p;
    }
    *version = p ? p->version : w->version;
    if (w->closing)
        rc = PARK_CLOSING;
    else if (*version != x->since || x->timed_out || now_ms >= x->deadline_ms)
        rc = PARK_ANSWER;
    else if (w->parked >= w->max_parked)
        rc = PARK_FULL;
    else {
        struct watch_list *l = p ? &p->list : &w->all;
        x->next = NULL;
        x->prev = l->tail;
        if (l->tail)
            l->tail->next = x;
        else
            l->head = x;
        l->tail = x;
        x->on = l;
        w->parked++;
        MHD_suspend_connection(x->conn);
        rc = PARK_PARKED;
    }
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* A query number: digits only, at most max; -1 when it is not one. */
static long long query_num(const char *s, long long max)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    return *end || v > (unsigned long long)max ? -1 : (long long)v;
}

int h_watch(struct req *r)
{
    struct watcher *x = &r->watcher;
    if (r->calls == 1) {
        const char *pool = req_query(r, "pool"), *since = req_query(r, "since");
        const char *wait = req_query(r, "wait_s");
        long long n = since ? query_num(since, INT64_MAX) : 0;
        long long wait_s = wait ? query_num(wait, WATCH_WAIT_MAX_MS / 1000) : 0;
        if (n < 0)
            return reply_error(r, 400, "since: a version number (from a previous answer)");
        if (wait && wait_s < 0)
            return reply_error(r, 400, "wait_s: a number of seconds from 0 to %d",
                               WATCH_WAIT_MAX_MS / 1000);
        if (pool) {
            struct store_pool p = {0};
            int rc = store_pool_get(r->srv->store, pool, 0, &p);
            if (rc == 0)
                memcpy(x->pool_id, p.id, sizeof(x->pool_id));
            store_pool_clear(&p);
            if (rc < 0)
                return reply_store_error(r, rc, "pool");
        }
        x->conn = r->conn;
        x->since = since ? (uint64_t)n : UINT64_MAX; /* no since: answer at once */
        x->deadline_ms = store_now_ms() + (wait ? wait_s * 1000 : WATCH_WAIT_MAX_MS);
        req_on_end(r, watch_forget, r);
    }
    uint64_t version;
    switch (park(r->srv->watch, x, store_now_ms(), &version)) {
    case PARK_PARKED:
        return HANDLER_SUSPENDED;
    case PARK_CLOSING:
        return reply_error(r, 503, "server is shutting down");
    case PARK_FULL:
        return reply_error(r, 503, "too many watches open: retry later");
    case PARK_OOM:
        return reply_error(r, 500, "out of memory");
    default:
        return reply_json(r, 200, json_pack("{s:I}", "version", (json_int_t)version));
    }
}
