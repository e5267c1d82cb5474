/*
 * store_int: what the store's files share (store*.c, listed in
 * docs/hacking.md). Not for use outside the store.
 */
#ifndef DAVIT_SERVER_STORE_INT_H
#define DAVIT_SERVER_STORE_INT_H

#include "common/log.h"
#include "server/store.h"
#include "server/store_drv.h"

#include <pthread.h>

/* Runs whose last log upload failed for lack of space (kept in memory): a
 * bound on memory, far above the runs a disk-full episode catches in flight. */
#define ST_WAITING_MAX 256

/* A column's name, as a JSON key (st_row_json): ours are short identifiers. */
#define ST_COLUMN_NAME_MAX 64

/*
 * Prepared statements kept per connection (st_stmt): far more than the store's distinct
 * statements (about 70), so that every one stays prepared; past it a statement is prepared
 * for each use, as before.
 */
#define ST_STMT_CACHE 128

/*
 * The most operations one group commit holds (a bound only: every operation's thread waits
 * for its commit, so a batch holds at most one operation per thread, and the server has a
 * few threads).
 */
#define ST_BATCH_MAX 64

/* An operation waiting for the commit of its batch (on its thread's stack, under mu). */
struct st_waiter {
    uint64_t batch;
    int rc, done;
    int unavailable; /* the batch failed for a lost connection or an I/O error */
    struct st_waiter *next;
};

/* Launchers' last-seen times, in memory (store_seen.c); its own lock, taken after mu. */
struct st_seen {
    pthread_mutex_t mu;
    int64_t *ids, *ms; /* open addressing, linear probing; id 0 is an empty slot */
    int64_t *saved;    /* the time last written to launchers.last_seen_ms (shared drivers) */
    size_t cap, n;
    int64_t start_ms; /* what a launcher not seen since the start counts as */
};

struct store {
    const struct st_driver *drv; /* the database's driver (store_drv.h) */
    void *conn;                  /* the driver's state: its connection */
    /* The claim's statement with the driver's lock clause (store_dispatch.c), made at its
     * first use: kept prepared, keyed by this address. */
    char claim_sql[1024];
    pthread_mutex_t mu;
    pthread_cond_t committed_cond; /* a batch was committed or failed (waiters) */
    /* Writers between wanting mu and having it (atomic): while there are some, the
     * operation that ends leaves the commit to them, so that their changes share it. */
    int entering;
    /* All below under mu. */
    uint64_t errors[ST_R_COUNT];
    uint64_t commits;         /* COMMITs that wrote something (davit_store_commits_total) */
    int full;                 /* the last write failed for lack of space */
    int64_t changes_at_begin; /* drv->total_changes() when the operation began */
    /* Group commit (store_sql.c): the shared transaction and its operations. */
    int txn_open;                   /* BEGIN IMMEDIATE was run, COMMIT not yet */
    uint64_t batch;                 /* the number of the open (or last) transaction */
    int batch_ops;                  /* operations in it so far */
    int batch_proves_space;         /* an operation in it that proves space changed something */
    int64_t batch_changes_at_begin; /* drv->total_changes() at its BEGIN */
    struct st_waiter *waiters;      /* operations waiting for their batch's commit */
    /* Durability (store_drv.h, sync): batches are committed under the lock and synced outside
     * it, by one thread at a time; every batch up to `durable` is on disk. */
    pthread_cond_t synced_cond; /* a sync ended: durable moved, or sync_failed was set */
    uint64_t written;           /* the last batch committed with changes */
    uint64_t durable;           /* the last batch known to be on disk */
    int syncing;                /* a thread is in drv->sync, without the lock */
    /* A sync failed: what the disk holds is unknown (a failed fsync may drop the pages it
     * could not write), so no write is acknowledged again until the server restarts and
     * SQLite recovers from what is on disk. */
    int sync_failed;
    uint64_t syncs; /* drv->sync calls that succeeded (davit_store_syncs_total) */
    /* "store failed" lines: a database that is away fails every operation (the reaper's every
     * 500 ms among them), so the log says so a few times and then counts. */
    struct log_gate fail_log;
    struct st_seen seen;
    int64_t waiting[ST_WAITING_MAX];
    int nwaiting;
    /* A run's secrets were deleted since the last TRUNCATE checkpoint: their old pages may
     * still be in the WAL file (store_secrets_checkpoint). */
    int secrets_purged;
    /*
     * Since when the database has answered without a lost connection: the open, or the last
     * operation that failed for one (ST_R_IO). With a shared driver the reaper counts every
     * launcher as seen at this time at least: a launcher's last-seen time reaches the database
     * through the server it talks to, whose writes stopped while the database was away (or
     * before this server started), so an older time there proves nothing.
     */
    int64_t up_since_ms;
};

/* Terminal run states: the run holds nothing and may be deleted. */
#define ST_TERMINAL_STATES "('finished','failed','canceled','timed_out','lost')"

/* Run states that still hold a launcher's capacity or the queue. */
#define ST_ACTIVE_STATES "('queued','assigned','preparing','running')"
#define ST_ON_LAUNCHER   "('assigned','preparing','running')"

/* ---- the SQLite driver's schema (store_schema.c, called by store_sqlite.c) ---- */

struct sqlite3;

/*
 * Brings the database to STORE_SCHEMA_VERSION: applies the migrations it
 * lacks, in order, each in one transaction. *from gets the version found
 * (0 for a new database). -1 with err filled when the database is newer
 * than this build or a migration fails (that migration left no trace).
 */
int st_schema_migrate(struct sqlite3 *db, const char *path, int *from, char *err, size_t errsz);
/*
 * Sets auto_vacuum=INCREMENTAL, converting a database made without it once
 * (VACUUM). Best effort: a failure is logged, retried at the next open.
 * Must run before journal_mode is set.
 */
void st_schema_vacuum_mode(struct sqlite3 *db, const char *path);
/* The first column of sql's first row as an integer, or -1 on failure. */
int64_t st_query_int(struct sqlite3 *db, const char *sql);
/* Runs sql at open; on failure fills err ("store: PATH: SQL: reason"), -1. */
int st_exec_or_err(struct sqlite3 *db, const char *path, const char *sql, char *err, size_t errsz);

/* ---- statements and transactions (store_sql.c) ---- */

/*
 * For reads, which need no transaction of their own: with the one connection under the lock,
 * no write comes between their statements. st_lock first commits the shared transaction when
 * one is open (st_flush), so that the read sees committed state only: nothing it answers can
 * vanish with a batch whose commit fails. st_lock_dirty does not: for in-memory state, and for
 * reads whose answer does not outlive a failed commit (a session's check: its token was only
 * handed out after the commit that stored it). Writes: st_begin_locked.
 */
void st_lock(struct store *s);
void st_lock_dirty(struct store *s);
void st_unlock(struct store *s);
/* Commits the open shared transaction, if any, and answers its waiters (under the lock). */
void st_flush(struct store *s);
/*
 * Statements, through the store's driver (store_drv.h). The SQL is the portable kind described
 * there. st_prep prepares sql for one use; st_stmt gives the connection's statement for sql,
 * kept across calls and keyed by sql's address (sql must have static storage, or live as long
 * as the store). Both log and return NULL on failure. End either with st_finish (or a helper
 * below that ends a statement). NULL is fine for st_finish.
 */
struct st_stmt *st_prep(struct store *s, const char *sql);
struct st_stmt *st_stmt(struct store *s, const char *sql);
void st_finish(struct store *s, struct st_stmt *st);

/* Binds parameter i (from 1); text and blobs are copied; NULL text binds SQL NULL. */
static inline void st_bind_i64(struct store *s, struct st_stmt *st, int i, int64_t v)
{
    s->drv->bind_i64(st, i, v);
}
static inline void st_bind_int(struct store *s, struct st_stmt *st, int i, int v)
{
    s->drv->bind_i64(st, i, v);
}
static inline void st_bind_text(struct store *s, struct st_stmt *st, int i, const char *v)
{
    s->drv->bind_text(st, i, v);
}
static inline void st_bind_blob(struct store *s, struct st_stmt *st, int i, const void *p, size_t n)
{
    s->drv->bind_blob(st, i, p, n);
}
static inline void st_bind_null(struct store *s, struct st_stmt *st, int i)
{
    s->drv->bind_null(st, i);
}
/* Runs the statement or moves to its next row: ST_ROW, ST_DONE, or -1 (st_fail tells). */
static inline int st_step(struct store *s, struct st_stmt *st)
{
    return s->drv->step(s, st);
}
/* The current row's columns (from 0). A NULL integer reads 0, a NULL text NULL. */
static inline int64_t st_col_i64(struct store *s, struct st_stmt *st, int i)
{
    return s->drv->col_i64(st, i);
}
static inline int st_col_int(struct store *s, struct st_stmt *st, int i)
{
    return (int)s->drv->col_i64(st, i);
}
static inline const char *st_col_text(struct store *s, struct st_stmt *st, int i)
{
    return s->drv->col_text(st, i);
}
static inline int st_col_null(struct store *s, struct st_stmt *st, int i)
{
    return s->drv->col_type(st, i) == ST_T_NULL;
}
/* The statement's text, for logs. */
static inline const char *st_sql(struct store *s, struct st_stmt *st)
{
    return s->drv->sql(st);
}
/* Rows changed by the last statement stepped to its end. */
static inline int64_t st_changes(struct store *s)
{
    return s->drv->changes(s);
}
/* Runs a statement without results; STORE_OK or STORE_ERR (logged). */
int st_exec(struct store *s, const char *sql);
/*
 * The shape of every write operation (group commit, docs/hacking.md "The store"):
 * st_begin_locked() takes the lock, joins the shared transaction (BEGIN IMMEDIATE when none is
 * open) and opens a SAVEPOINT for this operation; on failure it unlocks and returns the error.
 * st_end() releases the savepoint when rc is not an error and rolls back to it otherwise (only
 * this operation's changes), then waits until the transaction that holds the operation is
 * committed (committing it itself when no other writer is about to join), unlocks, and returns
 * the final result: the commit's error when the commit failed, so that nothing is reported
 * stored that is not durable.
 */
int st_begin_locked(struct store *s);
int st_end(struct store *s, int rc);
/*
 * st_end for a small write (a lease renewal, a challenge used up, a pool's
 * row): its success does not end the degraded state, since a write that
 * small can pass in the WAL's slack on a disk still full (store_space_probe).
 */
int st_end_small(struct store *s, int rc);
/* Steps a lookup once: STORE_OK on a row (read it, then finalize),
 * STORE_NOTFOUND when there is none, STORE_ERR (logged with what) else. */
int st_step_one(struct store *s, struct st_stmt *st, const char *what);
/* Steps stmt expecting ST_DONE; ends it (st_finish). STORE_OK or STORE_ERR. */
int st_done(struct store *s, struct st_stmt *st);
/* The current row as a JSON object keyed by column name. Columns named
 * *_json holding text are parsed as JSON. NULL on OOM. */
json_t *st_row_json(struct store *s, struct st_stmt *st);
/* Steps through every row into a JSON array, then ends st (st_finish). STORE_OK/ERR. */
int st_rows_json(struct store *s, struct st_stmt *st, json_t **out);
/* The first row only, as an object; STORE_NOTFOUND when there is none. */
int st_row_one_json(struct store *s, struct st_stmt *st, json_t **out);
/*
 * Logs a database failure naming what was being done, and counts it by
 * reason. Returns STORE_NOSPACE when the filesystem is full (SQLITE_FULL, or
 * an I/O error with ENOSPC), else STORE_ERR; either way the failure is
 * remembered for store_failed_for_space() on this thread.
 */
int st_fail(struct store *s, const char *what);
/*
 * STORE_OK, or STORE_ERR once a sync has failed (sync_failed): from then on no statement runs
 * (st_stmt and st_prep refuse, and housekeeping that writes the database by other means asks
 * this first), since what the disk holds is unknown until a restart. Under the lock.
 */
int st_sound(struct store *s);
/* Copies a text column (or "" for NULL), truncated to size. */
void st_col_copy(struct store *s, struct st_stmt *st, int col, char *out, size_t size);
/*
 * Inside an operation: removes the sealed block (the wrapped key and the boxes) from the spec of
 * run id, as a run's end does (in C: no JSON function both databases share). STORE_OK when
 * there was none; STORE_ERR (logged) on failure.
 */
int st_spec_unseal(struct store *s, int64_t run_id);
/*
 * A growing list of ids, for statements whose every returned row needs work after they end.
 * st_ids_add: -1 out of memory. Free ids->v.
 */
struct st_ids {
    int64_t *v;
    size_t n, cap;
};
int st_ids_add(struct st_ids *ids, int64_t id);
/* st_spec_unseal for every id; STORE_OK or the first failure. */
int st_ids_unseal(struct store *s, const struct st_ids *ids);

/* ---- scaling (store_scaling.c) ---- */

/* One launcher as store_pool_scaling_json shows its workers, alive or not, under the lock.
 * STORE_NOTFOUND when there is no such launcher. */
int st_worker_state_json(struct store *s, int64_t id, json_t **out);

/* ---- a full disk (store_space.c) ---- */

/*
 * The runs whose last log upload failed for lack of space (under the lock):
 * set marks (on 1) or clears (on 0) one; waiting tells.
 */
void st_waiting_set(struct store *s, int64_t run_id, int on);
int st_waiting(struct store *s, int64_t run_id);
/* Adds "log_waiting" (a sentence, or null) to a run's JSON (under the lock). */
int st_waiting_json(struct store *s, json_t *run);
/* The latest release of kind for arch, under the lock (store_releases.c). */
int st_release_latest(struct store *s, const char *kind, const char *arch,
                      struct store_release *out);
/* ---- launchers' liveness, in memory (store_seen.c) ---- */

/*
 * A launcher's last-seen time lives in memory only: a lease renewal writes nothing to disk. A
 * launcher not seen since the store opened counts as seen at the open, so that a restart never
 * expires the lease of a launcher that is fine. SQL reads it as davit_seen(launcher_id), or
 * davit_seen(launcher_id, fallback) for the persisted time instead of the open's (lists, gauges).
 * The times are copied to launchers.last_seen_ms coarsely (st_seen_persist): by the reaper when
 * an hour old, and all of them at a clean close.
 */
/* Sets up the table; now_ms: the open. -1 on failure (out of memory). The drivers define the SQL
 * function davit_seen over it (st_seen_ms, st_seen_or). */
int st_seen_init(struct store *s, int64_t now_ms);
void st_seen_free(struct store *s);
/* The launcher was seen at now_ms. Never fails: without memory to grow, the table keeps its
 * entries and the launcher counts as seen at the open (logged). */
void st_seen_touch(struct store *s, int64_t launcher_id, int64_t now_ms);
/* The launcher's last-seen time (milliseconds since the epoch). */
int64_t st_seen_ms(struct store *s, int64_t launcher_id);
/* The launcher's last-seen time, or fallback when it was not seen since the open. */
int64_t st_seen_or(struct store *s, int64_t launcher_id, int64_t fallback);
/* The launcher is gone (its row deleted). */
void st_seen_forget(struct store *s, int64_t launcher_id);
/*
 * Writes to launchers.last_seen_ms the times kept in memory that are newer by more than
 * older_ms (inside a write operation): a coarse copy, for what must survive a restart (the day
 * after which a launcher is gone, what the workers list shows), never for leases. With a shared
 * driver the column is what every server's davit_seen reads, leases included: the reaper then
 * writes the times this server saw (ST_SEEN_SHARED_MS), in a few statements.
 */
int st_seen_persist(struct store *s, int64_t older_ms);
/* How much newer than the stored time a time kept in memory must be to be written, with a shared
 * driver (each reaper sweep): well within any lease. */
#define ST_SEEN_SHARED_MS 2000
/* Copies every time kept in memory (a clean close), in one write operation. */
int st_seen_save(struct store *s);

/*
 * Inside an operation: claims the oldest queued run of pool_id for the launcher when it may
 * take one now (store_poll's checks, bar the launcher's own drain), recorded in claimed (n
 * stays 0 otherwise). STORE_OK, or the store's error.
 */
int st_claim_for(struct store *s, int64_t launcher_id, const char *pool_id,
                 struct store_claims *claimed);
/* Queues a message for a launcher (inside a transaction; store_dispatch.c). */
int st_message(struct store *s, int64_t launcher_id, const char *type, int64_t run_id,
               int64_t deadline_ms);

/* Inside the registration's transaction: records that challenge id (good until expires_ms) is
 * used (store_challenges.c). STORE_CONFLICT when it was already. */
int st_challenge_use(struct store *s, const char *id, int64_t expires_ms);

#endif
