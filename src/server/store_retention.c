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

/* Runs the statement, binding its nbind first parameters (?1 to a, ?2 to b: PostgreSQL refuses
 * a value for a parameter the statement lacks), and counts the rows it returns. */
static int step_count(struct store *s, struct st_stmt *st, int nbind, int64_t a, int64_t b,
                      int *count)
{
    if (!st)
        return STORE_ERR;
    if (nbind >= 1)
        st_bind_i64(s, st, 1, a);
    if (nbind >= 2)
        st_bind_i64(s, st, 2, b);
    int step, n = 0;
    while ((step = st_step(s, st)) == ST_ROW)
        n++;
    int rc = step == ST_DONE ? STORE_OK : st_fail(s, st_sql(s, st));
    st_finish(s, st);
    if (count)
        *count = n;
    return rc;
}

/* The batch, chosen once: ?1 is the cutoff, ?2 the most runs to delete. */
static const char expiring_sql[] =
    "SELECT id"
    "  FROM runs"
    " WHERE ended_ms < ?1 AND state IN " ST_TERMINAL_STATES " ORDER BY ended_ms"
    " LIMIT ?2";

/* Every step for one run of the batch (?1): the log queue, the messages, the run. */
static const char *const expire_sql[] = {
    "INSERT INTO log_purge(run_id) VALUES(?1) ON CONFLICT DO NOTHING",
    "DELETE FROM messages WHERE run_id = ?1",
    "DELETE FROM runs WHERE id = ?1",
};

int store_expire_runs(struct store *s, int64_t cutoff_ms, int max, int *deleted)
{
    *deleted = 0;
    struct st_ids ids = {0};
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, expiring_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, cutoff_ms);
    st_bind_i64(s, st, 2, max);
    int step;
    while ((step = st_step(s, st)) == ST_ROW)
        if (st_ids_add(&ids, st_col_i64(s, st, 0)) < 0)
            break;
    rc = step == ST_DONE ? STORE_OK : step == ST_ROW ? STORE_ERR : st_fail(s, "expire runs");
    st_finish(s, st);
    for (size_t i = 0; i < ids.n && rc == STORE_OK; i++)
        for (size_t j = 0; j < sizeof(expire_sql) / sizeof(expire_sql[0]) && rc == STORE_OK; j++)
            rc = step_count(s, st_stmt(s, expire_sql[j]), 1, ids.v[i], 0, NULL);
    if (rc == STORE_OK)
        *deleted = (int)ids.n;
done:
    free(ids.v);
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
    "INSERT INTO log_purge(run_id) VALUES(?1) ON CONFLICT DO NOTHING",
    "UPDATE runs SET log_bytes = 0, log_deleted_ms = ?2 WHERE id = ?1",
};

int store_trim_logs(struct store *s, int64_t max_total, int max, int *trimmed)
{
    *trimmed = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, "SELECT CAST(coalesce(sum(log_bytes), 0) AS BIGINT) FROM runs");
    if (!st || (rc = st_step_one(s, st, "log total")) < 0) {
        st_finish(s, st);
        rc = rc < 0 ? rc : STORE_ERR;
        goto done;
    }
    int64_t excess = st_col_i64(s, st, 0) - max_total;
    st_finish(s, st);
    st = st_stmt(s, trim_candidates_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_int(s, st, 1, max);
    int64_t ids[STORE_TRIM_MAX];
    int n = 0, step = ST_ROW;
    while (excess > 0 && n < max && n < STORE_TRIM_MAX && (step = st_step(s, st)) == ST_ROW) {
        ids[n++] = st_col_i64(s, st, 0);
        excess -= st_col_i64(s, st, 1);
    }
    rc = step == ST_ROW || step == ST_DONE ? STORE_OK : st_fail(s, "log trim");
    st_finish(s, st);
    for (int i = 0; i < n && rc == STORE_OK; i++) {
        for (size_t j = 0; j < sizeof(trim_sql) / sizeof(trim_sql[0]) && rc == STORE_OK; j++)
            rc = step_count(s, st_stmt(s, trim_sql[j]), (int)j + 1, ids[i], store_now_ms(), NULL);
    }
    if (rc == STORE_OK)
        *trimmed = n;
done:
    return st_end(s, rc);
}

/* At most ?1 chunks of the queued runs. */
static const char purge_chunks_sql[] = "DELETE FROM log_chunks"
                                       " WHERE (run_id, off) IN (SELECT c.run_id, c.off"
                                       "                   FROM log_purge q"
                                       "                   JOIN log_chunks c ON c.run_id = q.run_id"
                                       "                  LIMIT ?1)"
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
    rc = step_count(s, st_stmt(s, purge_chunks_sql), 1, max, 0, &n);
    if (rc == STORE_OK)
        rc = step_count(s, st_stmt(s, purge_done_sql), 0, 0, 0, NULL);
    if (rc == STORE_OK)
        *freed = n;
    return st_end(s, rc);
}

int store_vacuum(struct store *s, int max_pages, int checkpoint, int *more)
{
    *more = 0;
    st_lock(s);
    int rc = st_sound(s);
    if (rc == STORE_OK && s->drv->vacuum(s, max_pages, checkpoint, more) < 0)
        rc = st_fail(s, "vacuum");
    st_unlock(s);
    return rc;
}

int64_t store_used_bytes(struct store *s)
{
    st_lock(s);
    int64_t v = s->drv->used_bytes(s);
    if (v < 0)
        st_fail(s, "database size");
    st_unlock(s);
    return v < 0 ? -1 : v;
}
