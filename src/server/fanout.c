/* Local wake-ups, published to the servers that share the database (fanout.h). */
#include "server/fanout.h"

#include "server/dispatch.h"
#include "server/keycache.h"
#include "server/store.h"
#include "server/watch.h"

#include "common/clock.h"
#include "common/dbuf.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buckets of the debounce table, by a hash of the payload. */
#define DEBOUNCE_BUCKETS 256
/* The most wake-ups one "r:" payload asks for. */
#define FANOUT_RUNS_MAX 1000000
/* Payloads published per pass of the debounce thread (the rest wait for the next pass). */
#define FLUSH_BATCH 64

/* One debounced payload: published at last_ms; pending: asked again since, not yet sent. */
struct pending {
    struct pending *next;
    int64_t last_ms;
    int pending;
    char payload[STORE_WAKE_MAX + 1];
};

struct fanout {
    struct store *store;
    struct dispatch *disp;
    struct watch *watch;
    struct keycache *keys;
    /* Set by fanout_start before any request runs, never changed after: read without the
     * lock, so that on SQLite a call costs its local notifies alone. */
    int shared;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC: the debounce thread's */
    pthread_t thread;
    int thread_started, stop;
    struct pending *bucket[DEBOUNCE_BUCKETS];
    uint64_t published, received;
    char batch[FLUSH_BATCH][STORE_WAKE_MAX + 1]; /* the debounce thread's alone */
};

int fanout_shared(struct store *s)
{
    return strcmp(store_kind(s), "sqlite") != 0;
}

struct fanout *fanout_new(struct store *s, struct dispatch *d, struct watch *w,
                          struct keycache *keys)
{
    struct fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->store = s;
    f->disp = d;
    f->watch = w;
    f->keys = keys;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

/* Sends one payload to the other servers (after the commit of what it announces). */
static void publish(struct fanout *f, const char *payload)
{
    if (store_publish(f->store, payload) < 0)
        return; /* logged by the store; the re-check covers it */
    pthread_mutex_lock(&f->mu);
    f->published++;
    pthread_mutex_unlock(&f->mu);
}

/* FNV-1a of the payload. */
static struct pending **bucket_of(struct fanout *f, const char *payload)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)payload; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &f->bucket[h % DEBOUNCE_BUCKETS];
}

/*
 * Publishes payload at once when it was not published within the last FANOUT_DEBOUNCE_MS;
 * otherwise marks it for the debounce thread, which sends it once at the window's end however
 * often it was asked meanwhile.
 */
static void publish_debounced(struct fanout *f, const char *payload)
{
    int64_t now = clock_mono_ms();
    int now_send = 0;
    pthread_mutex_lock(&f->mu);
    struct pending **b = bucket_of(f, payload), *e = *b;
    while (e && strcmp(e->payload, payload) != 0)
        e = e->next;
    if (f->stop || !f->thread_started) {
        now_send = 1; /* no thread to send it later */
    } else if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            snprintf(e->payload, sizeof(e->payload), "%s", payload);
            e->last_ms = now;
            e->next = *b;
            *b = e;
            pthread_cond_signal(&f->cond); /* it forgets the entry once the window passed */
        }
        now_send = 1; /* out of memory: not debounced, still sent */
    } else if (!e->pending && now - e->last_ms >= FANOUT_DEBOUNCE_MS) {
        e->last_ms = now;
        now_send = 1;
    } else if (!e->pending) {
        e->pending = 1;
        pthread_cond_signal(&f->cond);
    }
    pthread_mutex_unlock(&f->mu);
    if (now_send)
        publish(f, payload);
}

/*
 * One pass over the table (f->mu held): copies into out the pending payloads whose window has
 * passed (up to FLUSH_BATCH, marked sent now), forgets those idle for a window, and sets *next_ms
 * to the earliest time an entry needs looking at again (INT64_MAX when the table is empty).
 * Returns how many were copied. flush_all: every pending one, whatever its window.
 */
static int collect(struct fanout *f, int64_t now, int flush_all,
                   char out[FLUSH_BATCH][STORE_WAKE_MAX + 1], int64_t *next_ms)
{
    int n = 0;
    *next_ms = INT64_MAX;
    for (size_t i = 0; i < DEBOUNCE_BUCKETS; i++) {
        for (struct pending **pp = &f->bucket[i]; *pp;) {
            struct pending *e = *pp;
            int64_t due = e->last_ms + FANOUT_DEBOUNCE_MS;
            if (e->pending && (flush_all || now >= due) && n < FLUSH_BATCH) {
                memcpy(out[n++], e->payload, sizeof(e->payload));
                e->pending = 0;
                e->last_ms = now;
                due = now + FANOUT_DEBOUNCE_MS;
            } else if (!e->pending && now >= due) {
                *pp = e->next;
                free(e);
                continue;
            }
            if (due < *next_ms)
                *next_ms = due;
            pp = &e->next;
        }
    }
    return n;
}

static void *debounce_main(void *arg)
{
    struct fanout *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        int stopping = f->stop;
        int64_t next;
        int n = collect(f, clock_mono_ms(), stopping, f->batch, &next);
        if (n > 0) {
            pthread_mutex_unlock(&f->mu);
            for (int i = 0; i < n; i++)
                publish(f, f->batch[i]);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        if (stopping)
            break;
        if (next == INT64_MAX) {
            pthread_cond_wait(&f->cond, &f->mu);
        } else {
            struct timespec ts = clock_mono_timespec(next);
            pthread_cond_timedwait(&f->cond, &f->mu, &ts);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* A payload id: a whole number from 1 up, and nothing after it. */
static int parse_id(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v < 1)
        return -1;
    *out = v;
    return 0;
}

/* A pool id of n bytes (not NUL-terminated in s) into out. */
static int parse_pool(const char *s, size_t n, char out[STORE_POOL_ID_SIZE])
{
    if (n == 0 || n >= STORE_POOL_ID_SIZE || memchr(s, ':', n))
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* A payload this build does not know (a newer server's) is ignored: the re-check covers what
 * it meant. */
void fanout_receive(void *arg, const char *p)
{
    struct fanout *f = arg;
    char pool[STORE_POOL_ID_SIZE];
    int64_t id;
    pthread_mutex_lock(&f->mu);
    f->received++;
    pthread_mutex_unlock(&f->mu);
    if (p[0] == 'a' && p[1] == '\0') {
        dispatch_notify_all(f->disp);
        watch_bump_all(f->watch);
    } else if (p[0] == 'w' && p[1] == '\0') {
        watch_bump_all(f->watch);
    } else if (p[0] == '\0' || p[1] != ':') {
        return;
    } else if (p[0] == 'r') {
        const char *colon = strrchr(p + 2, ':');
        if (!colon || parse_pool(p + 2, (size_t)(colon - (p + 2)), pool) < 0 ||
            parse_id(colon + 1, &id) < 0)
            return;
        /* The re-check sends a pool's whole backlog: more wake-ups than polls asleep do nothing.
         * No view bump: the re-check repeats "r:" every second while runs wait, and the UI's
         * views would refresh with it; the publisher sends "w:" for the view. */
        dispatch_notify_runs(f->disp, pool, id > FANOUT_RUNS_MAX ? FANOUT_RUNS_MAX : (int)id);
    } else if (p[0] == 'p' || p[0] == 'w') {
        if (parse_pool(p + 2, strlen(p + 2), pool) < 0)
            return;
        if (p[0] == 'p') {
            keycache_forget(f->keys, pool); /* its key was reset there: frees the old one */
            dispatch_notify_pool(f->disp, pool);
        }
        watch_bump(f->watch, pool);
    } else if (p[0] == 'l' && parse_id(p + 2, &id) == 0) {
        dispatch_notify_launcher(f->disp, id);
    } else if (p[0] == 'u' && parse_id(p + 2, &id) == 0) {
        dispatch_notify_run(f->disp, id);
    }
}

int fanout_start(struct fanout *f, char *err, size_t errsz)
{
    if (!fanout_shared(f->store))
        return 0;
    f->shared = 1;
    int rc = pthread_create(&f->thread, NULL, debounce_main, f);
    if (rc != 0) {
        snprintf(err, errsz, "fanout: no thread for the debounced wake-ups: %s", strerror(rc));
        return -1;
    }
    pthread_mutex_lock(&f->mu);
    f->thread_started = 1;
    pthread_mutex_unlock(&f->mu);
    if (store_listen(f->store, fanout_receive, f) < 0) {
        snprintf(err, errsz, "fanout: cannot listen to the other servers' wake-ups (%s)",
                 store_kind(f->store));
        return -1;
    }
    return 0;
}

void fanout_stop(struct fanout *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    int started = f->thread_started;
    f->stop = 1;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (started)
        pthread_join(f->thread, NULL); /* it sends what is pending first */
    pthread_mutex_lock(&f->mu);
    f->thread_started = 0;
    pthread_mutex_unlock(&f->mu);
}

void fanout_free(struct fanout *f)
{
    if (!f)
        return;
    fanout_stop(f);
    for (size_t i = 0; i < DEBOUNCE_BUCKETS; i++) {
        while (f->bucket[i]) {
            struct pending *e = f->bucket[i];
            f->bucket[i] = e->next;
            free(e);
        }
    }
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Formats and publishes a payload (debounced or at once) when the store is shared; nothing,
 * not even the formatting, on SQLite. */
static void wake_send(struct fanout *f, int debounced, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wake_send(struct fanout *f, int debounced, const char *fmt, ...)
{
    if (!f->shared)
        return;
    char p[STORE_WAKE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(p))
        return; /* ids are short: never happens, and a cut payload would name another id */
    if (debounced)
        publish_debounced(f, p);
    else
        publish(f, p);
}

void fanout_runs(struct fanout *f, const char *pool_id, int queued, int changed)
{
    if (queued > 0)
        dispatch_notify_runs(f->disp, pool_id, queued);
    watch_bump_n(f->watch, pool_id, queued + changed);
    if (queued > 0)
        wake_send(f, 0, "r:%s:%d", pool_id, queued);
    if (queued + changed > 0)
        wake_send(f, 1, "w:%s", pool_id);
}

void fanout_view(struct fanout *f, const char *pool_id)
{
    watch_bump(f->watch, pool_id);
    wake_send(f, 1, "w:%s", pool_id);
}

void fanout_view_all(struct fanout *f)
{
    watch_bump_all(f->watch);
    wake_send(f, 0, "w");
}

void fanout_pool(struct fanout *f, const char *pool_id)
{
    dispatch_notify_pool(f->disp, pool_id);
    watch_bump(f->watch, pool_id);
    wake_send(f, 0, "p:%s", pool_id);
}

void fanout_launcher(struct fanout *f, int64_t launcher_id)
{
    dispatch_notify_launcher(f->disp, launcher_id);
    wake_send(f, 0, "l:%" PRId64, launcher_id);
}

void fanout_run(struct fanout *f, int64_t run_id)
{
    dispatch_notify_run(f->disp, run_id);
    wake_send(f, 0, "u:%" PRId64, run_id);
}

void fanout_log(struct fanout *f, int64_t run_id)
{
    dispatch_notify_run(f->disp, run_id);
    wake_send(f, 1, "u:%" PRId64, run_id);
}

void fanout_all(struct fanout *f)
{
    dispatch_notify_all(f->disp);
    watch_bump_all(f->watch);
    wake_send(f, 0, "a");
}

int fanout_render(struct fanout *f, struct dbuf *out)
{
    pthread_mutex_lock(&f->mu);
    uint64_t pub = f->published, rec = f->received;
    pthread_mutex_unlock(&f->mu);
    return dbuf_printf(out,
                       "# HELP davit_fanout_published_total Wake-ups published to the other"
                       " servers on the database.\n"
                       "# TYPE davit_fanout_published_total counter\n"
                       "davit_fanout_published_total %llu\n"
                       "# HELP davit_fanout_received_total Wake-ups received from the other"
                       " servers, and the store's re-checks.\n"
                       "# TYPE davit_fanout_received_total counter\n"
                       "davit_fanout_received_total %llu\n",
                       (unsigned long long)pub, (unsigned long long)rec) < 0
               ? -1
               : 0;
}
