#include "server/dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A FIFO of waiters: they join at the tail, the head is the oldest. */
struct waiter_list {
    struct waiter *head, *tail;
};

/*
 * A pool's poll waiters, in two lists so that handing a queued run to the
 * oldest waiter that can take it is O(1): those whose last poll had room
 * for a run, and the others (full, draining, cycling), which only messages
 * wake. Kept for the server's life once seen: pools are few.
 */
struct pool_waiters {
    struct pool_waiters *next;
    char id[40];
    struct waiter_list takers, others;
};

/* Buckets of poll waiters by launcher id: a launcher's notify (a result
 * freed capacity, a cancel) is O(1) whatever the number of waiters. */
#define LAUNCHER_BUCKETS 1024

struct dispatch {
    pthread_mutex_t mu;
    uint64_t gen;
    uint64_t wakeups;
    uint64_t polls_waiting;
    struct pool_waiters *pools;
    struct waiter_list followers; /* WAIT_RUN */
    struct waiter *by_launcher[LAUNCHER_BUCKETS];
    int closing;
};

struct dispatch *dispatch_new(void)
{
    struct dispatch *d = calloc(1, sizeof(*d));
    if (d)
        pthread_mutex_init(&d->mu, NULL);
    return d;
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    while (d->pools) {
        struct pool_waiters *p = d->pools;
        d->pools = p->next;
        free(p);
    }
    pthread_mutex_destroy(&d->mu);
    free(d);
}

uint64_t dispatch_gen(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t g = d->gen;
    pthread_mutex_unlock(&d->mu);
    return g;
}

uint64_t dispatch_wakeups(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->wakeups;
    pthread_mutex_unlock(&d->mu);
    return n;
}

uint64_t dispatch_waiting(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->polls_waiting;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static struct pool_waiters *pool_find(struct dispatch *d, const char *id)
{
    for (struct pool_waiters *p = d->pools; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

static struct waiter **bucket(struct dispatch *d, int64_t launcher_id)
{
    return &d->by_launcher[(uint64_t)launcher_id % LAUNCHER_BUCKETS];
}

static void list_push(struct waiter_list *l, struct waiter *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    w->on = l;
}

static void unlink_waiter(struct dispatch *d, struct waiter *w)
{
    struct waiter_list *l = w->on;
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    if (w->kind == WAIT_POLL) {
        d->polls_waiting--;
        if (w->lprev)
            w->lprev->lnext = w->lnext;
        else
            *bucket(d, w->launcher_id) = w->lnext;
        if (w->lnext)
            w->lnext->lprev = w->lprev;
    }
    w->prev = w->next = w->lprev = w->lnext = NULL;
    w->on = NULL;
    w->linked = 0;
}

int dispatch_wait(struct dispatch *d, struct waiter *w, uint64_t gen)
{
    pthread_mutex_lock(&d->mu);
    if (d->closing) {
        pthread_mutex_unlock(&d->mu);
        return -1;
    }
    if (d->gen != gen) {
        pthread_mutex_unlock(&d->mu);
        return 0;
    }
    if (w->kind == WAIT_POLL) {
        struct pool_waiters *p = pool_find(d, w->pool_id);
        if (!p) {
            p = calloc(1, sizeof(*p));
            if (!p) {
                pthread_mutex_unlock(&d->mu);
                return -1;
            }
            memcpy(p->id, w->pool_id, sizeof(p->id)); /* both are char[40] */
            p->next = d->pools;
            d->pools = p;
        }
        list_push(w->takes_runs ? &p->takers : &p->others, w);
        struct waiter **b = bucket(d, w->launcher_id);
        w->lprev = NULL;
        w->lnext = *b;
        if (*b)
            (*b)->lprev = w;
        *b = w;
        d->polls_waiting++;
    } else {
        list_push(&d->followers, w);
    }
    w->timed_out = 0;
    w->linked = 1;
    /* Suspending under the lock orders it before any resume of this waiter:
     * libmicrohttpd drops a resume that comes before its suspend. */
    MHD_suspend_connection(w->conn);
    pthread_mutex_unlock(&d->mu);
    return 1;
}

/* Resumes one waiter; called with the lock held. */
static void resume(struct dispatch *d, struct waiter *w, int timed_out)
{
    unlink_waiter(d, w);
    w->timed_out = timed_out;
    if (w->kind == WAIT_POLL && !timed_out)
        d->wakeups++;
    MHD_resume_connection(w->conn);
}

/* Resumes every waiter of l for which match() is true (NULL: all). */
static void wake_list(struct dispatch *d, struct waiter_list *l,
                      int (*match)(const struct waiter *, const void *), const void *arg,
                      int timed_out)
{
    struct waiter *w = l->head;
    while (w) {
        struct waiter *next = w->next;
        if (!match || match(w, arg))
            resume(d, w, timed_out);
        w = next;
    }
}

/*
 * Every list, for the rare wake-ups that concern all (requeues of unknown pools, expiry,
 * shutdown). The caller bumps gen if the store changed: an expiry changes nothing a poll
 * could find, and bumping gen for it (ten times a second with many launchers waiting) sent
 * every poll between its look and its wait, in every pool, back to the store.
 */
static void wake_every(struct dispatch *d, int (*match)(const struct waiter *, const void *),
                       const void *arg, int timed_out)
{
    for (struct pool_waiters *p = d->pools; p; p = p->next) {
        wake_list(d, &p->takers, match, arg, timed_out);
        wake_list(d, &p->others, match, arg, timed_out);
    }
    wake_list(d, &d->followers, match, arg, timed_out);
}

/* Hands n queued runs of pool p to its oldest waiters that take runs. */
static void hand_runs(struct dispatch *d, struct pool_waiters *p, int n)
{
    for (; n > 0 && p && p->takers.head; n--) {
        struct waiter *w = p->takers.head;
        w->handed = 1;
        resume(d, w, 0);
    }
}

struct waiter *dispatch_reserve(struct dispatch *d, const char *pool_id)
{
    pthread_mutex_lock(&d->mu);
    struct pool_waiters *p = d->closing ? NULL : pool_find(d, pool_id);
    struct waiter *w = p ? p->takers.head : NULL;
    if (w)
        unlink_waiter(d, w); /* still suspended: dispatch_deliver resumes it */
    pthread_mutex_unlock(&d->mu);
    return w;
}

void dispatch_deliver(struct dispatch *d, struct waiter *w)
{
    pthread_mutex_lock(&d->mu);
    w->handed = 0;
    w->timed_out = 0;
    d->wakeups++;
    MHD_resume_connection(w->conn);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_runs(struct dispatch *d, const char *pool_id, int n)
{
    pthread_mutex_lock(&d->mu);
    d->gen++;
    hand_runs(d, pool_find(d, pool_id), n);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_pool(struct dispatch *d, const char *pool_id)
{
    pthread_mutex_lock(&d->mu);
    d->gen++;
    struct pool_waiters *p = pool_find(d, pool_id);
    if (p) {
        wake_list(d, &p->takers, NULL, NULL, 0);
        wake_list(d, &p->others, NULL, NULL, 0);
    }
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_launcher(struct dispatch *d, int64_t launcher_id)
{
    pthread_mutex_lock(&d->mu);
    d->gen++;
    struct waiter *w = *bucket(d, launcher_id);
    while (w) {
        struct waiter *next = w->lnext;
        if (w->launcher_id == launcher_id)
            resume(d, w, 0);
        w = next;
    }
    pthread_mutex_unlock(&d->mu);
}

static int match_run(const struct waiter *w, const void *arg)
{
    return w->run_id == *(const int64_t *)arg;
}

void dispatch_notify_run(struct dispatch *d, int64_t run_id)
{
    pthread_mutex_lock(&d->mu);
    d->gen++;
    wake_list(d, &d->followers, match_run, &run_id, 0);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_all(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    d->gen++;
    wake_every(d, NULL, NULL, 0);
    pthread_mutex_unlock(&d->mu);
}

/* Called with the lock held: w's hand-off goes to the next waiter of its pool. */
static void pass_on(struct dispatch *d, struct waiter *w)
{
    w->handed = 0;
    if (d->closing)
        return;
    d->gen++;
    hand_runs(d, pool_find(d, w->pool_id), 1);
}

void dispatch_handoff_done(struct dispatch *d, struct waiter *w, int pass)
{
    pthread_mutex_lock(&d->mu);
    if (w->handed) {
        if (pass)
            pass_on(d, w);
        w->handed = 0;
    }
    pthread_mutex_unlock(&d->mu);
}

static int match_expired(const struct waiter *w, const void *arg)
{
    return w->deadline_ms <= *(const int64_t *)arg;
}

static int any_expired(const struct waiter_list *l, int64_t now_ms)
{
    for (const struct waiter *w = l->head; w; w = w->next)
        if (w->deadline_ms <= now_ms)
            return 1;
    return 0;
}

void dispatch_expire(struct dispatch *d, int64_t now_ms)
{
    pthread_mutex_lock(&d->mu);
    int any = any_expired(&d->followers, now_ms);
    for (struct pool_waiters *p = d->pools; p && !any; p = p->next)
        any = any_expired(&p->takers, now_ms) || any_expired(&p->others, now_ms);
    if (any)
        wake_every(d, match_expired, &now_ms, 1);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_forget(struct dispatch *d, struct waiter *w)
{
    pthread_mutex_lock(&d->mu);
    if (w->linked)
        unlink_waiter(d, w);
    if (w->handed) /* the request ended before its poll claimed */
        pass_on(d, w);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_shutdown(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    d->closing = 1;
    d->gen++;
    wake_every(d, NULL, NULL, 1);
    pthread_mutex_unlock(&d->mu);
}

int dispatch_closing(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    int closing = d->closing;
    pthread_mutex_unlock(&d->mu);
    return closing;
}
