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

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* All below under mu. */
    uint64_t errors[ST_R_COUNT];
    int full;                 /* the last write failed for lack of space */
    int64_t changes_at_begin; /* sqlite3_total_changes64() when the transaction began */
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

/* For reads, which need no transaction: with the one connection under the
 * lock, no write comes between their statements. Writes: st_begin_locked. */
void st_lock(struct store *s);
void st_unlock(struct store *s);
/* Prepares sql; logs and returns NULL on failure. */
sqlite3_stmt *st_prep(struct store *s, const char *sql);
/* Runs a statement without results; STORE_OK or STORE_ERR (logged). */
int st_exec(struct store *s, const char *sql);
/*
 * The shape of every write operation, and the only way to open a
 * transaction (BEGIN IMMEDIATE): st_begin_locked() takes the lock and
 * begins (and on failure unlocks and returns the error); st_end() commits
 * when rc is not an error, rolls back otherwise, unlocks, and returns the
 * final result.
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
/* Steps stmt expecting SQLITE_DONE; finalizes it. STORE_OK or STORE_ERR. */
int st_done(struct store *s, sqlite3_stmt *st);
/* Binds a text value or NULL. */
void st_bind_text(sqlite3_stmt *st, int i, const char *v);
/* The current row as a JSON object keyed by column name. Columns named
 * *_json holding text are parsed as JSON. NULL on OOM. */
json_t *st_row_json(sqlite3_stmt *st);
/* Steps through every row into a JSON array, then finalizes. STORE_OK/ERR. */
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
/* Queues a message for a launcher (inside a transaction; store_dispatch.c). */
int st_message(struct store *s, int64_t launcher_id, const char *type, int64_t run_id,
               int64_t deadline_ms);

#endif
