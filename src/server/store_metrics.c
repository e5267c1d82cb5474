/*
 * Prometheus metrics from the store: database failures, and gauges of runs
 * and launchers.
 *
 * Runs by pool and state are counted in a TEMP table that TEMP triggers on
 * runs keep up to date, in the same transaction as every insert, state
 * change and delete; it is built with one scan of runs on the first scrape
 * after start (connection-scoped, so it is rebuilt by every start and can
 * never drift from the runs it counts, and costs no schema migration and no
 * fsync: a TEMP table is not in the WAL). A scrape then reads
 * pools x states rows instead of every run. The rows are copied out under
 * the store's lock and formatted after it is released.
 *
 * With a shared driver (PostgreSQL, several servers) the runs change behind this connection's
 * back, so the gauges are counted by queries instead (the TEMP table and triggers, SQLite's own
 * SQL, are made only on a driver that is not shared).
 */
#include "server/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const reason_names[ST_R_COUNT] = {"full", "io", "busy", "corrupt", "other"};

int store_errors_render(struct store *s, struct dbuf *out)
{
    uint64_t n[ST_R_COUNT];
    st_lock(s);
    memcpy(n, s->errors, sizeof(n));
    uint64_t commits = s->commits, syncs = s->syncs;
    st_unlock(s);
    dbuf_printf(out,
                "# HELP davit_store_commits_total Transactions committed with changes (group"
                " commit shares one among the writers that come together).\n"
                "# TYPE davit_store_commits_total counter\n"
                "davit_store_commits_total %llu\n"
                "# HELP davit_store_syncs_total Syncs that made commits durable (SQLite: an"
                " fdatasync of the WAL, which may cover several commits; 0 on PostgreSQL, whose"
                " commits are durable by themselves).\n"
                "# TYPE davit_store_syncs_total counter\n"
                "davit_store_syncs_total %llu\n",
                (unsigned long long)commits, (unsigned long long)syncs);
    dbuf_printf(out, "# HELP davit_store_errors_total Database failures by reason"
                     " (full: no space left on the data directory's filesystem).\n"
                     "# TYPE davit_store_errors_total counter\n");
    for (int i = 0; i < ST_R_COUNT; i++)
        dbuf_printf(out, "davit_store_errors_total{reason=\"%s\"} %llu\n", reason_names[i],
                    (unsigned long long)n[i]);
    return 0;
}

static const char counts_exist_sql[] =
    "SELECT count(*) FROM temp.sqlite_master WHERE type = 'table' AND name = 'run_counts'";

/* Run inside one write transaction: no run changes between the scan and the
 * triggers. A run's pool never changes; its state does. */
static const char counts_create_sql[] =
    "CREATE TEMP TABLE run_counts(\n"
    "    pool_id TEXT NOT NULL,\n"
    "    state   TEXT NOT NULL,\n"
    "    n       INTEGER NOT NULL,\n"
    "    PRIMARY KEY (pool_id, state)) WITHOUT ROWID;\n"
    "INSERT INTO temp.run_counts(pool_id, state, n)\n"
    "    SELECT pool_id, state, count(*) FROM main.runs GROUP BY pool_id, state;\n"
    "CREATE TEMP TRIGGER run_counts_insert AFTER INSERT ON main.runs BEGIN\n"
    "    INSERT INTO run_counts(pool_id, state, n) VALUES(NEW.pool_id, NEW.state, 1)\n"
    "        ON CONFLICT(pool_id, state) DO UPDATE SET n = n + 1;\n"
    "END;\n"
    "CREATE TEMP TRIGGER run_counts_update AFTER UPDATE OF state, pool_id ON main.runs\n"
    "    WHEN OLD.state IS NOT NEW.state OR OLD.pool_id IS NOT NEW.pool_id BEGIN\n"
    "    UPDATE run_counts SET n = n - 1 WHERE pool_id = OLD.pool_id AND state = OLD.state;\n"
    "    INSERT INTO run_counts(pool_id, state, n) VALUES(NEW.pool_id, NEW.state, 1)\n"
    "        ON CONFLICT(pool_id, state) DO UPDATE SET n = n + 1;\n"
    "END;\n"
    "CREATE TEMP TRIGGER run_counts_delete AFTER DELETE ON main.runs BEGIN\n"
    "    UPDATE run_counts SET n = n - 1 WHERE pool_id = OLD.pool_id AND state = OLD.state;\n"
    "END;\n";

static int counts_ready(struct store *s, int *ready)
{
    struct st_stmt *st = st_prep(s, counts_exist_sql);
    if (!st)
        return STORE_ERR;
    int rc = st_step_one(s, st, "metrics counts");
    *ready = rc == STORE_OK && st_col_int(s, st, 0) > 0;
    st_finish(s, st);
    return rc < 0 ? rc : STORE_OK;
}

int store_metrics_prepare(struct store *s)
{
    int ready = 0;
    if (s->drv->shared)
        return STORE_OK; /* counted by queries */
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = counts_ready(s, &ready);
    if (rc == STORE_OK && !ready)
        rc = st_exec(s, counts_create_sql);
    return st_end(s, rc);
}

/* One gauge row, copied out under the lock. */
struct gauge_row {
    char pool[sizeof(((struct store_pool *)0)->name)];
    char state[16]; /* "" for a gauge without a state label */
    long long n;
};

struct gauge {
    const char *name, *help, *sql;
    struct gauge_row *rows;
    size_t n;
};

/* Each gauge's rows: pool, state (or NULL), value; ?1 is the gauge's argument. */
static const char runs_gauge_sql[] = "SELECT p.name, c.state, c.n"
                                     "  FROM temp.run_counts c"
                                     "  JOIN pools p ON p.id = c.pool_id"
                                     " WHERE c.n > 0 AND ?1 = ?1"
                                     " ORDER BY 1, 2";

static const char pending_gauge_sql[] =
    "SELECT p.name, NULL, coalesce(c.n, 0)"
    "  FROM pools p"
    "  LEFT JOIN temp.run_counts c ON c.pool_id = p.id AND c.state = 'queued'"
    " WHERE ?1 = ?1"
    " ORDER BY 1";

/* The same two with a shared driver: counted by queries, by the index of runs on (pool_id,
 * state). */
static const char runs_query_sql[] = "SELECT p.name, r.state, count(*)"
                                     "  FROM runs r"
                                     "  JOIN pools p ON p.id = r.pool_id"
                                     " WHERE ?1 = ?1"
                                     " GROUP BY p.name, r.state"
                                     " ORDER BY 1, 2";

static const char pending_query_sql[] =
    "SELECT p.name, NULL,"
    "       (SELECT count(*) FROM runs r WHERE r.pool_id = p.id AND r.state = 'queued')"
    "  FROM pools p"
    " WHERE ?1 = ?1"
    " ORDER BY 1";

/* Launchers seen since ?1 (now minus the lease): one row per live launcher
 * is read, by the index of runs on launcher_id, not the runs. */
static const char workers_gauge_sql[] =
    "SELECT p.name,"
    "       CASE WHEN l.revoked <> 0 OR l.cycle_deadline_ms IS NOT NULL THEN 'exiting'"
    "            WHEN l.draining <> 0 THEN 'draining'"
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

/* Copies the gauge's rows out; called with the lock held. */
static int gauge_read(struct store *s, struct gauge *g, int64_t arg)
{
    struct st_stmt *st = st_prep(s, g->sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, arg);
    size_t cap = 0;
    int step;
    while ((step = st_step(s, st)) == ST_ROW) {
        if (g->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct gauge_row *rows = realloc(g->rows, ncap * sizeof(*rows));
            if (!rows)
                break;
            g->rows = rows;
            cap = ncap;
        }
        struct gauge_row *r = &g->rows[g->n++];
        st_col_copy(s, st, 0, r->pool, sizeof(r->pool));
        st_col_copy(s, st, 1, r->state, sizeof(r->state));
        r->n = st_col_i64(s, st, 2);
    }
    st_finish(s, st);
    return step == ST_DONE ? STORE_OK : STORE_ERR;
}

static void gauge_render(const struct gauge *g, struct dbuf *out)
{
    dbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", g->name, g->help, g->name);
    for (size_t i = 0; i < g->n; i++) {
        const struct gauge_row *r = &g->rows[i];
        if (r->state[0])
            dbuf_printf(out, "%s{pool=\"%s\",state=\"%s\"} %lld\n", g->name, r->pool, r->state,
                        r->n);
        else
            dbuf_printf(out, "%s{pool=\"%s\"} %lld\n", g->name, r->pool, r->n);
    }
}

int store_metrics(struct store *s, int64_t lease_ms, struct dbuf *out)
{
    struct gauge g[] = {
        {"davit_runs", "Runs by pool and state.", runs_gauge_sql, NULL, 0},
        {"davit_runs_pending",
         "Queued runs waiting for a worker, per pool (the autoscaling signal).", pending_gauge_sql,
         NULL, 0},
        {"davit_workers", "Launchers by pool and state.", workers_gauge_sql, NULL, 0},
    };
    const size_t ng = sizeof(g) / sizeof(g[0]);
    int ready = 0, rc = STORE_OK;
    if (s->drv->shared) {
        g[0].sql = runs_query_sql;
        g[1].sql = pending_query_sql;
    } else {
        st_lock(s);
        rc = counts_ready(s, &ready);
        st_unlock(s);
        if (rc == STORE_OK && !ready) /* the first scrape after start: one scan */
            rc = store_metrics_prepare(s);
    }
    if (rc == STORE_OK) {
        int64_t since = store_now_ms() - lease_ms;
        st_lock(s);
        for (size_t i = 0; i < ng && rc == STORE_OK; i++)
            rc = gauge_read(s, &g[i], i == 2 ? since : 0);
        st_unlock(s);
    }
    for (size_t i = 0; i < ng; i++) {
        if (rc == STORE_OK)
            gauge_render(&g[i], out);
        free(g[i].rows);
    }
    return rc;
}
