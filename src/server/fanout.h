/*
 * fanout: the wake-ups of one server, carried to the other servers that share its database
 * (docs/server.md, "Several servers").
 *
 * Each call below is one kind of change that a handler or the reaper has just committed. It
 * wakes this server's waiters exactly as dispatch.h and watch.h did before replicas (the same
 * notifies, in the same number: one wake-up per queued run), then publishes the change to the
 * other servers with store_publish (ids only, store.h's payload grammar). A listener
 * (store_listen) turns the other servers' payloads, and the store's periodic re-check, into
 * local notifies only: nothing received is published again.
 *
 * On a store that is not shared (SQLite) nothing is published, nothing is listened to and no
 * thread is started: every call is its local notifies and nothing else.
 *
 * Log growth ("u:RUN") and view changes ("w:POOL") are published at most once per
 * FANOUT_DEBOUNCE_MS per payload, since a NOTIFY takes a global lock at commit: the first at
 * once, those that follow within the window as one publish at its end (a thread of fanout's
 * own), so the last bytes of a log are always announced. A run's end and everything else is
 * published at once.
 *
 * Ownership: fanout_new borrows the store, dispatch, watch and keycache, which must outlive the
 * fanout (the listener runs until store_close). Thread-safe. Publishing failures are logged by
 * the store and otherwise ignored: the re-check covers what another server missed.
 */
#ifndef DAVIT_SERVER_FANOUT_H
#define DAVIT_SERVER_FANOUT_H

#include <stddef.h>
#include <stdint.h>

struct dbuf;
struct dispatch;
struct keycache;
struct store;
struct watch;
struct fanout;

/* The window of the debounced payloads. */
#define FANOUT_DEBOUNCE_MS 100

/* NULL when out of memory. Publishes nothing until fanout_start. */
struct fanout *fanout_new(struct store *s, struct dispatch *d, struct watch *w,
                          struct keycache *keys);
/*
 * On a shared store: starts listening (store_listen) and the debounce thread. 0, or -1 with
 * err filled (one line). Nothing to do, 0, on SQLite.
 */
int fanout_start(struct fanout *f, char *err, size_t errsz);
/* Publishes what the debounce still holds and stops its thread (a later call would publish at
 * once). Call after the HTTP threads and the reaper stopped, before store_close: nothing may
 * publish once the store is closed. NULL is fine. */
void fanout_stop(struct fanout *f);
/* After store_close (which ends the listener). NULL is fine. */
void fanout_free(struct fanout *f);

/* 1 when the store is shared by several servers (store_kind is not "sqlite"). */
int fanout_shared(struct store *s);

/*
 * queued runs of the pool were queued or requeued (each wakes one poll that takes runs:
 * dispatch_notify_runs), and changed other runs of the pool changed (claimed, assigned at
 * submit): the pool's view is bumped when queued + changed > 0. Publishes "r:POOL:N" when
 * queued > 0, and "w:POOL" (debounced) when the view was bumped.
 */
void fanout_runs(struct fanout *f, const char *pool_id, int queued, int changed);
/* What the pool's view shows changed (a launcher registered or exited, a pool made, a run's
 * state): watch_bump, "w:POOL" (debounced). */
void fanout_view(struct fanout *f, const char *pool_id);
/* Every pool's view may have changed (a run canceled or deleted, a pool deleted, whose pool is
 * not known): watch_bump_all, "w". */
void fanout_view_all(struct fanout *f);
/* Every launcher of the pool has a message, or its key changed (cycle, reset): notify_pool and
 * the pool's view, "p:POOL" (other servers also drop their decoded key of the pool). */
void fanout_pool(struct fanout *f, const char *pool_id);
/* Launcher has a message or room again (a drain, a cancel, a run's end): notify_launcher,
 * "l:ID". */
void fanout_launcher(struct fanout *f, int64_t launcher_id);
/* The run's state changed or it ended or went away: notify_run (a log follow ends), "u:RUN"
 * at once. */
void fanout_run(struct fanout *f, int64_t run_id);
/* The run's log grew: notify_run, "u:RUN" (debounced). */
void fanout_log(struct fanout *f, int64_t run_id);
/* Anything may have changed (lease expiry): notify_all and every view, "a". */
void fanout_all(struct fanout *f);

/*
 * The listener (store_listen's fn, on the store's thread; arg is the fanout): another server's
 * payload, or the store's re-check, made local notifies, never published again:
 *   "r:POOL:N" dispatch_notify_runs(N) (no view: the re-check repeats it every second while
 *   runs wait; the publisher sends "w:POOL" too)   "p:POOL" notify_pool, view, key
 *   "l:ID" notify_launcher   "u:RUN" notify_run   "w:POOL" the pool's view   "w" every view
 *   "a" notify_all and every view.
 * Anything else is ignored.
 */
void fanout_receive(void *arg, const char *payload);

/* Appends davit_fanout_published_total and davit_fanout_received_total. 0, or -1 out of
 * memory. */
int fanout_render(struct fanout *f, struct dbuf *out);

#endif
