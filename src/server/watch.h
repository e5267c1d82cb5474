/*
 * watch: a change feed for the web UI's live views (docs/ui.md, "Live
 * views"; GET /api/v1/watch in docs/server.md).
 *
 * An in-memory version per pool, and a global one: the handlers bump a
 * pool's (watch_bump) after a change that a view shows has been stored (a
 * launcher registers, exits or is drained, a run is queued, claimed, changes
 * state, ends), or every pool's (watch_bump_all) when they do not know the
 * pool (a run canceled or deleted, a pool deleted, leases expired). A heartbeat
 * or a poll that changes nothing bumps nothing: watchers sleep through them.
 *
 * A watch request that is up to date parks its connection (libmicrohttpd
 * suspend/resume, no thread) on its pool's list, or the global list, until a
 * bump of what it watches or its deadline. A bump resumes only the watchers
 * of its pool and the global ones. Versions live in memory: a restart starts them again, which
 * clients read as a change (a version different from theirs). Thread-safe. The watcher belongs to
 * its request; the lists and pool entries are watch's.
 */
#ifndef DAVIT_SERVER_WATCH_H
#define DAVIT_SERVER_WATCH_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

/* The longest a watch stays parked; wait_s= may ask for less. */
#define WATCH_WAIT_MAX_MS (25 * 1000)

struct watch_list;

/* One parked watch: lives in its struct req; the links are watch's. */
struct watcher {
    struct watcher *prev, *next;
    struct watch_list *on; /* NULL when not parked */
    struct MHD_Connection *conn;
    char pool_id[40]; /* "" watches every pool */
    uint64_t since;
    int64_t deadline_ms;
    int timed_out; /* resumed by its deadline or the shutdown */
};

struct dbuf;
struct req;
struct watch;

/* max_parked: the most watches parked at once (then 503). NULL when out of memory. */
struct watch *watch_new(size_t max_parked);
void watch_free(struct watch *w);

/* pool_id: the pool whose view changed (its id, not its name). */
void watch_bump(struct watch *w, const char *pool_id);
void watch_bump_all(struct watch *w);
/* watch_bump when n > 0: n runs of the pool changed (a poll's claims), else nothing. */
void watch_bump_n(struct watch *w, const char *pool_id, int n);

/* Resumes watchers whose deadline is at or before now_ms (the reaper's tick). */
void watch_expire(struct watch *w, int64_t now_ms);
/* Resumes every watcher and refuses new ones (answer 503). */
void watch_shutdown(struct watch *w);

/* Appends davit_watch_waiters (parked now) and davit_watch_version to out. 0, or -1 out of memory.
 */
int watch_render(struct watch *w, struct dbuf *out);

/* GET /api/v1/watch?pool=NAME&since=N&wait_s=S (role viewer). */
int h_watch(struct req *r);

#endif
