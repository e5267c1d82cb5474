/* Prometheus metrics from the store: database failures, and gauges of runs and launchers. */
#include "server/store_int.h"

#include <string.h>

static const char *const reason_names[ST_R_COUNT] = {"full", "io", "busy", "corrupt", "other"};

int store_errors_render(struct store *s, struct dbuf *out)
{
    uint64_t n[ST_R_COUNT];
    st_lock(s);
    memcpy(n, s->errors, sizeof(n));
    st_unlock(s);
    dbuf_printf(out, "# HELP davit_store_errors_total Database failures by reason"
                     " (full: no space left on the data directory's filesystem).\n"
                     "# TYPE davit_store_errors_total counter\n");
    for (int i = 0; i < ST_R_COUNT; i++)
        dbuf_printf(out, "davit_store_errors_total{reason=\"%s\"} %llu\n", reason_names[i],
                    (unsigned long long)n[i]);
    return 0;
}

static int metrics_query(struct store *s, struct dbuf *out, const char *name, const char *help,
                         const char *sql, int64_t arg)
{
    sqlite3_stmt *st = st_prep(s, sql);
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, arg);
    dbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *pool = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        if (state)
            dbuf_printf(out, "%s{pool=\"%s\",state=\"%s\"} %lld\n", name, pool, state,
                        (long long)sqlite3_column_int64(st, 2));
        else
            dbuf_printf(out, "%s{pool=\"%s\"} %lld\n", name, pool,
                        (long long)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? STORE_OK : STORE_ERR;
}

/* Each gauge's rows: pool, state (or NULL), value; ?1 is the gauge's argument. */
static const char runs_gauge_sql[] = "SELECT p.name, r.state, count(*)"
                                     "  FROM runs r"
                                     "  JOIN pools p ON p.id = r.pool_id"
                                     " WHERE ?1 = ?1"
                                     " GROUP BY p.name, r.state"
                                     " ORDER BY 1, 2";

static const char pending_gauge_sql[] =
    "SELECT p.name, NULL,"
    "       (SELECT count(*) FROM runs r WHERE r.pool_id = p.id AND r.state = 'queued')"
    "  FROM pools p"
    " WHERE ?1 = ?1"
    " ORDER BY 1";

/* Launchers seen since ?1 (now minus the lease). */
static const char workers_gauge_sql[] =
    "SELECT p.name,"
    "       CASE WHEN l.revoked OR l.cycle_deadline_ms IS NOT NULL THEN 'exiting'"
    "            WHEN l.draining THEN 'draining'"
    "            WHEN EXISTS (SELECT 1"
    "                           FROM runs r"
    "                          WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER ")"
    "            THEN 'busy'"
    "            ELSE 'idle' END AS st,"
    "       count(*)"
    "  FROM launchers l"
    "  JOIN pools p ON p.id = l.pool_id"
    " WHERE davit_seen(l.id, l.last_seen_ms) >= ?1"
    " GROUP BY 1, 2"
    " ORDER BY 1, 2";

int store_metrics(struct store *s, int64_t lease_ms, struct dbuf *out)
{
    st_lock(s);
    int rc = metrics_query(s, out, "davit_runs", "Runs by pool and state.", runs_gauge_sql, 0);
    if (rc == STORE_OK)
        rc = metrics_query(s, out, "davit_runs_pending",
                           "Queued runs waiting for a worker, per pool (the autoscaling signal).",
                           pending_gauge_sql, 0);
    if (rc == STORE_OK)
        rc = metrics_query(s, out, "davit_workers", "Launchers by pool and state.",
                           workers_gauge_sql, store_now_ms() - lease_ms);
    st_unlock(s);
    return rc;
}
