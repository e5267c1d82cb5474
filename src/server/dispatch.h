/*
 * dispatch: wakes suspended HTTP requests when what they wait for happens.
 *
 * A launcher's long-poll and a user's log follow are suspended
 * libmicrohttpd connections. Each registers a waiter here, then sleeps
 * without a thread; a notify resumes the matching waiters at once (a run
 * queued, a message for a launcher, new log bytes, a run's end), and
 * dispatch_expire resumes those whose deadline passed.
 *
 * One wake-up per queued run: a queued run resumes exactly one poll waiter
 * of its pool, the oldest of those that had room for a run when they went to
 * sleep (FIFO), and hands it the wake-up (w->handed). That waiter's next
 * poll claims; it then gives the hand-off back with dispatch_handoff_done().
 * A hand-off is never dropped while it may still be owed: a waiter whose
 * request ends before it gave it back (dispatch_forget), or whose poll found
 * it had no room after all, passes it to the next waiter of the pool. A poll
 * that had room and claimed nothing found the queue empty (another poller
 * took the run): the hand-off ends there.
 *
 * Lost wake-ups are avoided with a generation counter: a request reads
 * dispatch_gen() before it looks at the store, and dispatch_wait() refuses
 * to suspend if any notify happened since. Owns the waiter lists; the
 * waiters themselves belong to their requests. Thread-safe.
 */
#ifndef DAVIT_SERVER_DISPATCH_H
#define DAVIT_SERVER_DISPATCH_H

#include <microhttpd.h>
#include <stdint.h>

enum waiter_kind { WAIT_POLL, WAIT_RUN };

struct waiter_list;

/* Filled by the request before dispatch_wait(); the links are dispatch's. */
struct waiter {
    struct waiter *prev, *next;   /* on the list *on */
    struct waiter *lprev, *lnext; /* WAIT_POLL: its launcher's hash bucket */
    struct waiter_list *on;       /* NULL when not waiting */
    struct MHD_Connection *conn;
    enum waiter_kind kind;
    char pool_id[40];    /* WAIT_POLL */
    int64_t launcher_id; /* WAIT_POLL */
    int takes_runs;      /* WAIT_POLL: its last poll had room for a run */
    int64_t run_id;      /* WAIT_RUN */
    int64_t deadline_ms;
    int linked;
    int timed_out; /* set when resumed by the deadline or shutdown */
    int handed;    /* resumed for a queued run: owes dispatch_handoff_done() */
};

struct dispatch;

/* NULL when out of memory. */
struct dispatch *dispatch_new(void);
void dispatch_free(struct dispatch *d);

uint64_t dispatch_gen(struct dispatch *d);

/*
 * Suspends w->conn (from inside its access handler or content reader) until a
 * matching notify or the deadline. A poll waiter with takes_runs set joins
 * the back of its pool's queue for runs; without, only notifies for its
 * launcher or its whole pool wake it. Returns 1 when suspended, 0 when a
 * notify happened since gen was read (look again), -1 when shutting down or
 * out of memory (answer 503).
 */
int dispatch_wait(struct dispatch *d, struct waiter *w, uint64_t gen);

/* n runs of the pool were queued (or requeued): resumes up to n of its poll
 * waiters that take runs, oldest first, each handed one run. */
void dispatch_notify_runs(struct dispatch *d, const char *pool_id, int n);
/* Every launcher of the pool has a message (cycle, token reset): resumes
 * every poll waiter of the pool. */
void dispatch_notify_pool(struct dispatch *d, const char *pool_id);
void dispatch_notify_launcher(struct dispatch *d, int64_t launcher_id);
void dispatch_notify_run(struct dispatch *d, int64_t run_id);
/* Every waiter, e.g. after lease expiry requeued runs of unknown pools. */
void dispatch_notify_all(struct dispatch *d);

/*
 * Gives back the run hand-off of w after its poll (no-op when w was not
 * handed one). pass_on: the poll claimed nothing because it had no room
 * (draining, cycling, full): the run is still queued and goes to the next
 * waiter of the pool.
 */
void dispatch_handoff_done(struct dispatch *d, struct waiter *w, int pass_on);

/*
 * Claim at submit (one durable commit per dispatch, docs/server.md): takes the
 * oldest waiter of the pool that takes runs off its list, still suspended, so
 * that the submit can record the new run as assigned to w->launcher_id in the
 * same transaction as its insert. NULL when no such waiter sleeps (the submit
 * queues the run and calls dispatch_notify_runs after its commit). The caller
 * must give the waiter back with dispatch_deliver() as soon as its
 * transaction ended, whatever its outcome: until then neither its deadline
 * nor a shutdown resumes it.
 */
struct waiter *dispatch_reserve(struct dispatch *d, const char *pool_id);
/* Resumes a reserved waiter, with no hand-off owed: its poll finds the run
 * recorded as assigned to it (or, if the claim did not happen, looks again). */
void dispatch_deliver(struct dispatch *d, struct waiter *w);

/* Resumes waiters whose deadline is at or before now_ms (timed_out set). */
void dispatch_expire(struct dispatch *d, int64_t now_ms);

/* Unlinks w if it is still waiting (the request ended); a hand-off it still
 * holds passes to the next waiter of its pool. */
void dispatch_forget(struct dispatch *d, struct waiter *w);

/* Resumes every waiter (timed_out set) and refuses new waits. */
void dispatch_shutdown(struct dispatch *d);

/* True once dispatch_shutdown() was called: a resumed request answers 503. */
int dispatch_closing(struct dispatch *d);

/* Poll waiters resumed by a notify or a hand-off, not by their deadline:
 * davit_dispatch_wakeups_total. */
uint64_t dispatch_wakeups(struct dispatch *d);
/* Poll waiters asleep now: davit_dispatch_waiters. */
uint64_t dispatch_waiting(struct dispatch *d);

#endif
