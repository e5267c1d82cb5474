/*
 * store_drv: the database drivers under the store. The store's operations (store_*.c) are
 * written once, in SQL that SQLite and PostgreSQL both run, against the st_* calls of
 * store_int.h; those calls reach the database through the driver of the store's connection.
 * One driver per database: store_sqlite.c (the default, a file in --data-dir) and store_pg.c
 * (libpq, chosen by a postgres:// or postgresql:// URL). Not for use outside the store.
 *
 * The SQL both run (docs/hacking.md, "The store"):
 * - placeholders are ? or ?N (the PostgreSQL driver rewrites them to $N);
 * - a parameter whose type its context does not fix is cast: CAST(? AS BIGINT), CAST(? AS TEXT);
 * - integers are 64-bit (BIGINT in PostgreSQL's schema); no integer is used as a boolean and no
 *   comparison is selected as a column (CASE WHEN ... THEN 1 ELSE 0 END);
 * - INSERT ... ON CONFLICT, RETURNING, IS [NOT] DISTINCT FROM, UPDATE ... FROM, FILTER (WHERE);
 * - functions: the standard ones both have (count, sum, min and max of one argument, coalesce,
 *   length, substr, lower, abs, CAST), and davit's own, defined in both databases:
 *   davit_iso(ms) (ISO 8601 text of milliseconds since the epoch, NULL for NULL),
 *   davit_seen(launcher_id[, fallback]) (a launcher's last-seen milliseconds),
 *   json_group_array(x) (a JSON array of the group's values, as text).
 *
 * Every driver call is made under the store's lock (st_lock / st_begin_locked), on the store's
 * one connection; a driver keeps its own state in s->conn.
 */
#ifndef DAVIT_SERVER_STORE_DRV_H
#define DAVIT_SERVER_STORE_DRV_H

#include <stddef.h>
#include <stdint.h>

struct store;
/* A prepared statement of some driver. */
struct st_stmt;

/* What st_step gives. */
enum { ST_DONE = 0, ST_ROW = 1 };

/* A result column's type, as st_row_json maps it to JSON. */
enum st_type { ST_T_NULL, ST_T_INT, ST_T_REAL, ST_T_TEXT, ST_T_BLOB };

/* Why the database failed (for /metrics and STORE_NOSPACE). */
enum st_reason { ST_R_FULL, ST_R_IO, ST_R_BUSY, ST_R_CORRUPT, ST_R_OTHER, ST_R_COUNT };

/*
 * A driver. Every function pointer is set (a driver without the feature implements it as
 * nothing), except sync (see there). Errors: a call returning int gives 0 on success and -1 on
 * failure, the failure then told by reason() and message() until the next call.
 */
struct st_driver {
    const char *name; /* "sqlite" or "postgres": logs, /metrics, /healthz */
    /*
     * 1 when several servers may share the database (PostgreSQL): the store then keeps
     * nothing in one process's memory that another server needs (launchers' last-seen times
     * are written, gauges are counted by queries, and the lease reaper takes reaper_lock).
     */
    int shared;

    /*
     * Connects to where (a path or a URL; the URL may hold a password: never logged or put in
     * err), applies the schema's migrations it lacks (the same numbering for every driver,
     * STORE_SCHEMA_VERSION) and sets s->conn. *from gets the version found (0 for a new
     * database). -1 with err filled (one line, naming the database without a password) on
     * failure, also when the database's schema is newer than this build.
     */
    int (*open)(struct store *s, const char *where, int *from, char *err, size_t errsz);
    /* Closes the connection (and anything it started, such as a listener); s->conn NULL is
     * fine. */
    void (*close)(struct store *s);

    /*
     * Statements. prepare: sql must outlive the statement; keep 1 asks the driver to keep it
     * prepared across uses (sql then has static storage: the key, by address); finish ends a
     * use (reset and unbound when kept, freed otherwise). NULL on failure.
     */
    struct st_stmt *(*prepare)(struct store *s, const char *sql, int keep);
    void (*finish)(struct store *s, struct st_stmt *st);
    void (*free_all)(struct store *s); /* frees every kept statement (close) */
    /* Binds parameter i (from 1). text and blob are copied. NULL text binds SQL NULL. */
    void (*bind_i64)(struct st_stmt *st, int i, int64_t v);
    void (*bind_text)(struct st_stmt *st, int i, const char *v);
    void (*bind_blob)(struct st_stmt *st, int i, const void *p, size_t n);
    void (*bind_null)(struct st_stmt *st, int i);
    /* Runs the statement (first call) or moves to its next row: ST_ROW, ST_DONE, or -1. */
    int (*step)(struct store *s, struct st_stmt *st);
    /* The current row. col_text: NULL for NULL; valid until the next step or finish. */
    int (*col_count)(struct st_stmt *st);
    const char *(*col_name)(struct st_stmt *st, int i);
    enum st_type (*col_type)(struct st_stmt *st, int i);
    int64_t (*col_i64)(struct st_stmt *st, int i); /* 0 for NULL; a boolean is 0 or 1 */
    double (*col_double)(struct st_stmt *st, int i);
    const char *(*col_text)(struct st_stmt *st, int i);
    const void *(*col_blob)(struct st_stmt *st, int i, size_t *n);
    const char *(*sql)(struct st_stmt *st); /* its text, for logs */
    /* Rows changed by the last statement stepped to its end; rows changed since open. */
    int64_t (*changes)(struct store *s);
    int64_t (*total_changes)(struct store *s);
    /* Runs sql (one or more statements, no results). */
    int (*exec)(struct store *s, const char *sql);
    /* 1 while a transaction is open on the connection (0 after the database rolled one back
     * on its own). */
    int (*in_txn)(struct store *s);
    /* The last failure: its reason, and a message without request content. */
    enum st_reason (*reason)(struct store *s);
    const char *(*message)(struct store *s);

    /* ---- what differs between the databases beyond SQL ---- */

    /* 0 when the database answers now (/healthz). Under the lock, except for a shared
     * driver's, which has its own connection and is called without it. */
    int (*ping)(struct store *s);
    /* Inside a write operation: 1 when this server may expire leases now (PostgreSQL: a
     * transaction-level advisory lock, so one server at a time), 0 when another one does, -1
     * on failure. */
    int (*reaper_lock)(struct store *s);
    /*
     * Cross-server wake-ups. publish: sends payload (at most STORE_WAKE_MAX bytes) to every
     * other server on the database, after the current transaction commits (PostgreSQL:
     * NOTIFY on channel "davit"). listen: starts delivering, on a thread of the driver's with
     * its own connection, every payload another server published, and about once a second
     * the re-check payloads (store.h, store_listen) that cover a lost notification. SQLite:
     * both do nothing.
     */
    int (*publish)(struct store *s, const char *payload);
    int (*listen)(struct store *s, void (*fn)(void *arg, const char *payload), void *arg);
    /* Housekeeping (store_retention.c, store_space.c): SQLite frees pages and cuts its WAL;
     * PostgreSQL leaves it to autovacuum (nothing to do, *more 0). */
    int (*vacuum)(struct store *s, int max_pages, int checkpoint, int *more);
    int (*secrets_checkpoint)(struct store *s); /* see store_secrets_checkpoint */
    int64_t (*used_bytes)(struct store *s);     /* the bytes the database's data takes */
    /* A path on the filesystem that holds the database (the space probe's statvfs), or NULL
     * when it is not on this machine. */
    const char *(*fs_path)(struct store *s);

    /* ---- hooks added by h18-driver (issue 18) ---- */

    /*
     * Log read-back: copies want bytes, from byte skip on, of the log chunk (run_id, off) of
     * table log_chunks (a row the caller has just seen). Into to when it is set (it has room
     * for want); otherwise in pieces through sink (which gives -1 to stop). 0, -1 on the
     * database's failure (reason/message tell), -2 when sink failed. SQLite reads only the
     * pages that hold the bytes (incremental blob I/O); PostgreSQL may select
     * substr(data, skip + 1, want).
     */
    int (*log_read)(struct store *s, int64_t run_id, int64_t off, size_t skip, size_t want,
                    char *to, int (*sink)(void *arg, const void *p, size_t n), void *arg);
    /*
     * The lock clause that ends the claim's subquery (store_dispatch.c), which picks the
     * oldest queued run of a pool: "" for SQLite (one writer at a time), " FOR UPDATE SKIP
     * LOCKED" for PostgreSQL, so that servers claiming at once never take the same run.
     * Static text, read once at open.
     */
    const char *claim_lock;
    /* The statement that opens the shared transaction of group commit (store_sql.c): SQLite's
     * "BEGIN IMMEDIATE" (take the write lock now, not at the first write), PostgreSQL's
     * "BEGIN". Static text. */
    const char *begin;

    /* ---- added by h18-fixops (issue 18 review, H3) ---- */

    /*
     * The lock clause that ends a read a write operation decides on (a run's state and
     * launcher in cancel, events, log append, delete): " FOR UPDATE" for PostgreSQL, so that
     * another server's write to the row waits for this transaction and the read sees what it
     * committed (its default isolation does not serialise read-then-write); "" for SQLite
     * (BEGIN IMMEDIATE already holds the database). Static text. Statements are kept by
     * address (st_stmt): an operation file keeps one text per lock, chosen by this.
     */
    const char *row_lock;

    /* ---- added by issue 11 (durability outside the store's lock) ---- */

    /*
     * Makes every transaction committed so far durable (on disk, through a power cut). NULL
     * when a COMMIT is durable by itself (PostgreSQL). SQLite commits with synchronous=NORMAL,
     * which writes the WAL without syncing it, and this fdatasyncs the WAL file. Group commit
     * (store_sql.c) calls it without the store's lock, so that the next batch runs while the
     * disk flushes the last one, and answers an operation only after a sync that began after
     * its commit has ended. It touches no connection state. 0, or -1 with errno set.
     */
    int (*sync)(struct store *s);
};

extern const struct st_driver st_sqlite_driver;
#ifdef DAVIT_HAVE_POSTGRES
extern const struct st_driver st_pg_driver;
#endif

#endif
