/*
 * Retention: deleting old runs and logs, and giving the space back to the
 * filesystem. Every operation is one short transaction over a bounded batch,
 * so that the sweep (server.c) never holds the store's lock for long: a
 * run's log of a gigabyte goes a few chunks at a time.
 */
#include "server/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs the statement, binding ?1 and ?2 when it has them, and counts the
 * rows it returns. */
static int step_count(struct store *s, sqlite3_stmt *st, int64_t a, int64_t b, int *count)
{
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    int step, n = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        n++;
    int rc = step == SQLITE_DONE ? STORE_OK : st_fail(s, sqlite3_sql(st));
    st_finish(s, st);
    if (count)
        *count = n;
    return rc;
}

/*
 * The batch is chosen once, into a temporary table, and every step works on
 * it: the log queue, the messages, the runs. ?1 is the cutoff, ?2 the most
 * runs to delete.
 */
static const char *const expire_sql[] = {
    "CREATE TEMP TABLE IF NOT EXISTS expiring(id INTEGER PRIMARY KEY)",
    "DELETE FROM temp.expiring",
    "INSERT INTO temp.expiring"
    " SELECT id"
    "   FROM runs"
    "  WHERE ended_ms < ?1 AND state IN " ST_TERMINAL_STATES "  ORDER BY ended_ms"
    "  LIMIT ?2",
    "INSERT OR IGNORE INTO log_purge(run_id) SELECT id FROM temp.expiring",
    "DELETE FROM messages WHERE run_id IN temp.expiring",
    "DELETE FROM runs WHERE id IN temp.expiring RETURNING id",
};

int store_expire_runs(struct store *s, int64_t cutoff_ms, int max, int *deleted)
{
    *deleted = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    /* The last step's count is the number of runs deleted. */
    for (size_t i = 0; i < sizeof(expire_sql) / sizeof(expire_sql[0]) && rc == STORE_OK; i++)
        rc = step_count(s, st_stmt(s, expire_sql[i]), cutoff_ms, max, deleted);
    if (rc < 0)
        *deleted = 0;
    return st_end(s, rc);
}

/* Oldest ended runs first, just enough of them to come under the cap. */
static const char trim_candidates_sql[] =
    "SELECT id, log_bytes"
    "  FROM runs"
    " WHERE ended_ms IS NOT NULL AND log_bytes > 0 AND state IN " ST_TERMINAL_STATES
    " ORDER BY ended_ms, id"
    " LIMIT ?";

/* One run's log: ?1 the run, ?2 now. */
static const char *const trim_sql[] = {
    "INSERT OR IGNORE INTO log_purge(run_id) VALUES(?1)",
    "UPDATE runs SET log_bytes = 0, log_deleted_ms = ?2 WHERE id = ?1",
};

int store_trim_logs(struct store *s, int64_t max_total, int max, int *trimmed)
{
    *trimmed = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_stmt(s, "SELECT coalesce(sum(log_bytes), 0) FROM runs");
    if (!st || (rc = st_step_one(s, st, "log total")) < 0) {
        st_finish(s, st);
        rc = rc < 0 ? rc : STORE_ERR;
        goto done;
    }
    int64_t excess = sqlite3_column_int64(st, 0) - max_total;
    st_finish(s, st);
    st = st_stmt(s, trim_candidates_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    sqlite3_bind_int(st, 1, max);
    int64_t ids[STORE_TRIM_MAX];
    int n = 0, step = SQLITE_ROW;
    while (excess > 0 && n < max && n < STORE_TRIM_MAX && (step = sqlite3_step(st)) == SQLITE_ROW) {
        ids[n++] = sqlite3_column_int64(st, 0);
        excess -= sqlite3_column_int64(st, 1);
    }
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? STORE_OK : st_fail(s, "log trim");
    st_finish(s, st);
    for (int i = 0; i < n && rc == STORE_OK; i++) {
        for (size_t j = 0; j < sizeof(trim_sql) / sizeof(trim_sql[0]) && rc == STORE_OK; j++)
            rc = step_count(s, st_stmt(s, trim_sql[j]), ids[i], store_now_ms(), NULL);
    }
    if (rc == STORE_OK)
        *trimmed = n;
done:
    return st_end(s, rc);
}

/* At most ?2 chunks of the queued runs. */
static const char purge_chunks_sql[] = "DELETE FROM log_chunks"
                                       " WHERE rowid IN (SELECT c.rowid"
                                       "                   FROM log_purge q"
                                       "                   JOIN log_chunks c ON c.run_id = q.run_id"
                                       "                  LIMIT ?2)"
                                       " RETURNING 1";
/* Runs whose chunks are all gone leave the queue. */
static const char purge_done_sql[] =
    "DELETE FROM log_purge"
    " WHERE NOT EXISTS (SELECT 1 FROM log_chunks c WHERE c.run_id = log_purge.run_id)";

int store_purge_logs(struct store *s, int max, int *freed)
{
    *freed = 0;
    int rc = st_begin_locked(s), n = 0;
    if (rc < 0)
        return rc;
    /* Chunks of queued runs, a few at a time; a run leaves the queue once
     * it has none left. */
    rc = step_count(s, st_stmt(s, purge_chunks_sql), 0, max, &n);
    if (rc == STORE_OK)
        rc = step_count(s, st_stmt(s, purge_done_sql), 0, 0, NULL);
    if (rc == STORE_OK)
        *freed = n;
    return st_end(s, rc);
}

/* PRAGMA freelist_count, or -1 (logged). */
static int64_t freelist_count(struct store *s)
{
    int64_t n = -1;
    sqlite3_stmt *st = st_stmt(s, "PRAGMA freelist_count");
    if (st && st_step_one(s, st, "freelist count") == STORE_OK)
        n = sqlite3_column_int64(st, 0);
    st_finish(s, st);
    return n;
}

int store_vacuum(struct store *s, int max_pages, int checkpoint, int *more)
{
    char sql[64];
    *more = 0;
    st_lock(s);
    int64_t before = freelist_count(s), after = -1;
    /* Outside a transaction: incremental_vacuum commits on its own, and a
     * checkpoint cannot run inside one. */
    snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", max_pages);
    int rc = before < 0 ? STORE_ERR : st_exec(s, sql);
    if (rc == STORE_OK && (after = freelist_count(s)) < 0)
        rc = STORE_ERR;
    /* No progress: the database is not in incremental mode (its one-time
     * conversion failed), and looping would not help. */
    *more = rc == STORE_OK && after > 0 && after < before;
    /* TRUNCATE: the pages move from the WAL into davit.db, which shrinks to
     * its pages in use, and the WAL is cut to nothing. */
    if (rc == STORE_OK && checkpoint && !*more)
        rc = st_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
    st_unlock(s);
    return rc;
}

static const char used_bytes_sql[] =
    "SELECT (page_count - freelist_count) * page_size"
    "  FROM pragma_page_count, pragma_freelist_count, pragma_page_size";

int64_t store_used_bytes(struct store *s)
{
    st_lock(s);
    int64_t v = -1;
    sqlite3_stmt *st = st_stmt(s, used_bytes_sql);
    if (st && st_step_one(s, st, "database size") == STORE_OK)
        v = sqlite3_column_int64(st, 0);
    st_finish(s, st);
    st_unlock(s);
    return v;
}
