/*
 * store_int: what the store's files share (store*.c, listed in
 * docs/hacking.md). Not for use outside the store.
 */
#ifndef DAVIT_SERVER_STORE_INT_H
#define DAVIT_SERVER_STORE_INT_H

#include "server/store.h"

#include <pthread.h>
#include <sqlite3.h>

/* Why a database call failed, for /metrics (store_errors_render). */
enum st_reason { ST_R_FULL, ST_R_IO, ST_R_BUSY, ST_R_CORRUPT, ST_R_OTHER, ST_R_COUNT };

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
    struct st_waiter *next;
};

/* Launchers' last-seen times, in memory (store_seen.c); its own lock, taken after mu. */
struct st_seen {
    pthread_mutex_t mu;
    int64_t *ids, *ms; /* open addressing, linear probing; id 0 is an empty slot */
    size_t cap, n;
    int64_t start_ms; /* what a launcher not seen since the start counts as */
};

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_cond_t committed_cond; /* a batch was committed or failed (waiters) */
    /* Writers between wanting mu and having it (atomic): while there are some, the
     * operation that ends leaves the commit to them, so that their changes share it. */
    int entering;
    /* All below under mu. */
    uint64_t errors[ST_R_COUNT];
    uint64_t commits; /* COMMITs that wrote something: one fsync each (davit_store_commits_total) */
    int full;         /* the last write failed for lack of space */
    int64_t changes_at_begin; /* sqlite3_total_changes64() when the operation began */
    /* Group commit (store_sql.c): the shared transaction and its operations. */
    int txn_open;                   /* BEGIN IMMEDIATE was run, COMMIT not yet */
    uint64_t batch;                 /* the number of the open (or last) transaction */
    int batch_ops;                  /* operations in it so far */
    int batch_proves_space;         /* an operation in it that proves space changed something */
    int64_t batch_changes_at_begin; /* sqlite3_total_changes64() at its BEGIN */
    struct st_waiter *waiters;      /* operations waiting for their batch's commit */
    struct {
        const char *sql; /* the key: the statement's text, by address (static storage) */
        sqlite3_stmt *st;
    } stmts[ST_STMT_CACHE];
    int nstmts;
    struct st_seen seen;
    int64_t waiting[ST_WAITING_MAX];
    int nwaiting;
    /* A run's secrets were deleted since the last TRUNCATE checkpoint: their old pages may
     * still be in the WAL file (store_secrets_checkpoint). */
    int secrets_purged;
};

/* Terminal run states: the run holds nothing and may be deleted. */
#define ST_TERMINAL_STATES "('finished','failed','canceled','timed_out','lost')"

/* Run states that still hold a launcher's capacity or the queue. */
#define ST_ACTIVE_STATES "('queued','assigned','preparing','running')"
#define ST_ON_LAUNCHER   "('assigned','preparing','running')"

/*
 * strftime()'s format for the times the API shows: ISO 8601, UTC, with
 * milliseconds. In SQL: strftime(ST_ISO8601, col / 1000.0, 'unixepoch')
 * for a column of milliseconds. (A string, not a function-like macro, so
 * that clang-format keeps SQL one clause a line.)
 */
#define ST_ISO8601 "'%Y-%m-%dT%H:%M:%fZ'"

/* ---- schema (store_schema.c) ---- */

/*
 * Brings the database to STORE_SCHEMA_VERSION: applies the migrations it
 * lacks, in order, each in one transaction. *from gets the version found
 * (0 for a new database). -1 with err filled when the database is newer
 * than this build or a migration fails (that migration left no trace).
 */
int st_schema_migrate(sqlite3 *db, const char *path, int *from, char *err, size_t errsz);
/*
 * Sets auto_vacuum=INCREMENTAL, converting a database made without it once
 * (VACUUM). Best effort: a failure is logged, retried at the next open.
 * Must run before journal_mode is set.
 */
void st_schema_vacuum_mode(sqlite3 *db, const char *path);
/* Runs sql at open; on failure fills err ("store: PATH: SQL: reason"), -1. */
int st_exec_or_err(sqlite3 *db, const char *path, const char *sql, char *err, size_t errsz);

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
 * Prepares sql for one use; logs and returns NULL on failure. The caller finalizes it
 * (sqlite3_finalize, or a helper below that ends a statement).
 */
sqlite3_stmt *st_prep(struct store *s, const char *sql);
/*
 * The connection's prepared statement for sql, kept across calls and keyed by sql's address:
 * sql must be a string with static storage (a static const array or a literal). Logs and
 * returns NULL on failure. End it with st_finish (or a helper below), never sqlite3_finalize:
 * the cache owns it until store_close.
 */
sqlite3_stmt *st_stmt(struct store *s, const char *sql);
/* Ends a statement from st_stmt (reset, bindings cleared) or st_prep (finalized). NULL is fine. */
void st_finish(struct store *s, sqlite3_stmt *st);
/* Finalizes every kept statement (store_close, before sqlite3_close). */
void st_stmts_free(struct store *s);
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
int st_step_one(struct store *s, sqlite3_stmt *st, const char *what);
/* Steps stmt expecting SQLITE_DONE; ends it (st_finish). STORE_OK or STORE_ERR. */
int st_done(struct store *s, sqlite3_stmt *st);
/* Binds a text value or NULL. */
void st_bind_text(sqlite3_stmt *st, int i, const char *v);
/* The current row as a JSON object keyed by column name. Columns named
 * *_json holding text are parsed as JSON. NULL on OOM. */
json_t *st_row_json(sqlite3_stmt *st);
/* Steps through every row into a JSON array, then ends st (st_finish). STORE_OK/ERR. */
int st_rows_json(struct store *s, sqlite3_stmt *st, json_t **out);
/* The first row only, as an object; STORE_NOTFOUND when there is none. */
int st_row_one_json(struct store *s, sqlite3_stmt *st, json_t **out);
/*
 * Logs a database failure naming what was being done, and counts it by
 * reason. Returns STORE_NOSPACE when the filesystem is full (SQLITE_FULL, or
 * an I/O error with ENOSPC), else STORE_ERR; either way the failure is
 * remembered for store_failed_for_space() on this thread.
 */
int st_fail(struct store *s, const char *what);
/* Copies a text column (or "" for NULL), truncated to size. */
void st_col_copy(sqlite3_stmt *st, int col, char *out, size_t size);
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
/* Sets up the table and the SQL function davit_seen on s->db; now_ms: the open. -1 on failure
 * (out of memory). */
int st_seen_init(struct store *s, int64_t now_ms);
void st_seen_free(struct store *s);
/* The launcher was seen at now_ms. Never fails: without memory to grow, the table keeps its
 * entries and the launcher counts as seen at the open (logged). */
void st_seen_touch(struct store *s, int64_t launcher_id, int64_t now_ms);
/* The launcher's last-seen time (milliseconds since the epoch). */
int64_t st_seen_ms(struct store *s, int64_t launcher_id);
/* The launcher is gone (its row deleted). */
void st_seen_forget(struct store *s, int64_t launcher_id);
/*
 * Writes to launchers.last_seen_ms the times kept in memory that are newer by more than
 * older_ms (inside a write operation): a coarse copy, for what must survive a restart (the day
 * after which a launcher is gone, what the workers list shows), never for leases.
 */
int st_seen_persist(struct store *s, int64_t older_ms);
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
