#include "server/dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct dispatch {
    pthread_mutex_t mu;
    uint64_t gen;
    struct waiter *head;
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

static void unlink_waiter(struct dispatch *d, struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        d->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
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
    w->timed_out = 0;
    w->prev = NULL;
    w->next = d->head;
    if (d->head)
        d->head->prev = w;
    d->head = w;
    w->linked = 1;
    /* Suspending under the lock orders it before any resume of this waiter:
     * libmicrohttpd drops a resume that comes before its suspend. */
    MHD_suspend_connection(w->conn);
    pthread_mutex_unlock(&d->mu);
    return 1;
}

/* Resumes the waiters for which match() is true; called with the lock held. */
static void wake(struct dispatch *d, int (*match)(const struct waiter *, const void *),
                 const void *arg, int timed_out)
{
    d->gen++;
    struct waiter *w = d->head;
    while (w) {
        struct waiter *next = w->next;
        if (match(w, arg)) {
            unlink_waiter(d, w);
            w->timed_out = timed_out;
            MHD_resume_connection(w->conn);
        }
        w = next;
    }
}

static int match_pool(const struct waiter *w, const void *arg)
{
    return w->kind == WAIT_POLL && strcmp(w->pool_id, arg) == 0;
}

static int match_launcher(const struct waiter *w, const void *arg)
{
    return w->kind == WAIT_POLL && w->launcher_id == *(const int64_t *)arg;
}

static int match_run(const struct waiter *w, const void *arg)
{
    return w->kind == WAIT_RUN && w->run_id == *(const int64_t *)arg;
}

static int match_all(const struct waiter *w, const void *arg)
{
    (void)w;
    (void)arg;
    return 1;
}

static int match_expired(const struct waiter *w, const void *arg)
{
    return w->deadline_ms <= *(const int64_t *)arg;
}

void dispatch_notify_pool(struct dispatch *d, const char *pool_id)
{
    pthread_mutex_lock(&d->mu);
    wake(d, match_pool, pool_id, 0);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_launcher(struct dispatch *d, int64_t launcher_id)
{
    pthread_mutex_lock(&d->mu);
    wake(d, match_launcher, &launcher_id, 0);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_run(struct dispatch *d, int64_t run_id)
{
    pthread_mutex_lock(&d->mu);
    wake(d, match_run, &run_id, 0);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_notify_all(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    wake(d, match_all, NULL, 0);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_expire(struct dispatch *d, int64_t now_ms)
{
    pthread_mutex_lock(&d->mu);
    int any = 0;
    for (struct waiter *w = d->head; w && !any; w = w->next)
        any = w->deadline_ms <= now_ms;
    if (any)
        wake(d, match_expired, &now_ms, 1);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_forget(struct dispatch *d, struct waiter *w)
{
    pthread_mutex_lock(&d->mu);
    if (w->linked)
        unlink_waiter(d, w);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_shutdown(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    d->closing = 1;
    wake(d, match_all, NULL, 1);
    pthread_mutex_unlock(&d->mu);
}

int dispatch_closing(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    int closing = d->closing;
    pthread_mutex_unlock(&d->mu);
    return closing;
}
