/*
 * dispatch: wakes suspended HTTP requests when what they wait for happens.
 *
 * A launcher's long-poll and a user's log follow are suspended
 * libmicrohttpd connections. Each registers a waiter here, then sleeps
 * without a thread; a notify resumes the matching waiters at once (a run
 * queued, a message for a launcher, new log bytes, a run's end), and
 * dispatch_expire resumes those whose deadline passed.
 *
 * Lost wake-ups are avoided with a generation counter: a request reads
 * dispatch_gen() before it looks at the store, and dispatch_wait() refuses
 * to suspend if any notify happened since. Owns the waiter list; the waiters
 * themselves belong to their requests. Thread-safe.
 */
#ifndef DAVIT_SERVER_DISPATCH_H
#define DAVIT_SERVER_DISPATCH_H

#include <microhttpd.h>
#include <stdint.h>

enum waiter_kind { WAIT_POLL, WAIT_RUN };

struct waiter {
    struct waiter *prev, *next;
    struct MHD_Connection *conn;
    enum waiter_kind kind;
    char pool_id[40];    /* WAIT_POLL */
    int64_t launcher_id; /* WAIT_POLL */
    int64_t run_id;      /* WAIT_RUN */
    int64_t deadline_ms;
    int linked;
    int timed_out; /* set when resumed by the deadline or shutdown */
};

struct dispatch;

/* NULL when out of memory. */
struct dispatch *dispatch_new(void);
void dispatch_free(struct dispatch *d);

uint64_t dispatch_gen(struct dispatch *d);

/*
 * Suspends w->conn (from inside its access handler or content reader) until a
 * matching notify or the deadline. Returns 1 when suspended, 0 when a notify
 * happened since gen was read (look again), -1 when shutting down.
 */
int dispatch_wait(struct dispatch *d, struct waiter *w, uint64_t gen);

void dispatch_notify_pool(struct dispatch *d, const char *pool_id);
void dispatch_notify_launcher(struct dispatch *d, int64_t launcher_id);
void dispatch_notify_run(struct dispatch *d, int64_t run_id);
/* Every waiter, e.g. after lease expiry requeued runs of unknown pools. */
void dispatch_notify_all(struct dispatch *d);

/* Resumes waiters whose deadline is at or before now_ms (timed_out set). */
void dispatch_expire(struct dispatch *d, int64_t now_ms);

/* Unlinks w if it is still waiting (the request ended). */
void dispatch_forget(struct dispatch *d, struct waiter *w);

/* Resumes every waiter (timed_out set) and refuses new waits. */
void dispatch_shutdown(struct dispatch *d);

/* True once dispatch_shutdown() was called: a resumed request answers 503. */
int dispatch_closing(struct dispatch *d);

#endif
