/*
 * A pool's scaling state (GET /api/v1/pools/NAME/scaling): its queue and its
 * workers as an autoscaler counts them, and one worker's state for the drain
 * answer.
 */
#include "server/store_int.h"

#include <stdint.h>
#include <string.h>

/*
 * A worker as an autoscaler sees it. Drained workers are never capacity:
 * an admin's drain, a cycle or a revoked key all stop it taking runs, so
 * each shows as draining (runs left) or drained (none). A worker past its
 * lease that still holds runs shows as busy: its machine must not go while
 * its runs may still report. A spent ephemeral launcher (its one run had) with
 * no run left is drained: it takes no more, so it is no capacity. idle_since is when its last run
 * ended, or when it registered; null while it is busy. capacity is the runs its launcher takes at
 * once, as it registered.
 *
 * ?1 the pool's id or NULL, ?2 the oldest last-seen time still alive,
 * ?3 one launcher's id or NULL.
 */
#define SCALING_WORKERS_SQL                                                                        \
    "WITH w AS ("                                                                                  \
    "  SELECT l.id,"                                                                               \
    "         CASE WHEN l.draining <> 0 OR l.revoked <> 0 OR l.cycle_deadline_ms IS NOT NULL"      \
    "              THEN 1 ELSE 0 END AS off,"                                                      \
    "         (SELECT count(*)"                                                                    \
    "            FROM runs r"                                                                      \
    "           WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER ") AS runs,"            \
    "         (SELECT CASE WHEN max(r.ended_ms) > l.registered_ms THEN max(r.ended_ms)"            \
    "                      ELSE l.registered_ms END"                                               \
    "            FROM runs r WHERE r.launcher_id = l.id) AS idle_ms,"                              \
    "         l.metadata_json, l.last_seen_ms, l.ephemeral, l.capacity"                            \
    "    FROM launchers l"                                                                         \
    "   WHERE (CAST(?1 AS TEXT) IS NULL OR l.pool_id = ?1)"                                        \
    "     AND (CAST(?3 AS BIGINT) IS NULL OR l.id = ?3))"                                          \
    "SELECT id,"                                                                                   \
    "       CASE WHEN off <> 0 THEN CASE WHEN runs > 0 THEN 'draining' ELSE 'drained' END"         \
    "            WHEN runs > 0 THEN 'busy'"                                                        \
    "            WHEN ephemeral = 2 THEN 'drained'"                                                \
    "            ELSE 'idle' END AS state,"                                                        \
    "       CASE WHEN runs > 0 THEN NULL"                                                          \
    "            ELSE davit_iso(idle_ms) END AS idle_since,"                                       \
    "       runs, capacity, metadata_json"                                                         \
    "  FROM w"                                                                                     \
    " WHERE runs > 0 OR davit_seen(id, last_seen_ms) >= ?2"                                        \
    " ORDER BY id"

static const char scaling_workers_sql[] = SCALING_WORKERS_SQL;

static const char scaling_pool_sql[] = "SELECT p.id,"
                                       "       (SELECT count(*)"
                                       "          FROM runs r"
                                       "         WHERE r.pool_id = p.id AND r.state = 'queued')"
                                       "  FROM pools p"
                                       " WHERE p.name = ?";

/*
 * Adds up the workers' states into out's counters, and demand: the pending
 * runs plus the runs of busy workers, in runs (not workers), so that an
 * autoscaler dividing it by the runs a launcher takes keeps the launchers
 * whose runs are still going (scaling on pending alone drops them as soon
 * as the queue empties). Draining workers' runs are not counted: those
 * launchers are going away whatever the count says. And slots: the
 * capacity of the workers that take runs (busy and idle), in runs, so that
 * demand - slots is what the pool lacks.
 */
static int count_states(json_t *out, json_t *workers, json_int_t pending)
{
    static const char *const keys[] = {"busy", "idle", "draining", "drained"};
    enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
    json_int_t n[NKEYS] = {0}, demand = pending, slots = 0;
    size_t i;
    json_t *w;
    json_array_foreach(workers, i, w)
    {
        const char *state = json_string_value(json_object_get(w, "state"));
        for (size_t k = 0; state && k < NKEYS; k++)
            if (strcmp(state, keys[k]) == 0)
                n[k]++;
        int busy = state && strcmp(state, "busy") == 0;
        if (busy)
            demand += json_integer_value(json_object_get(w, "runs"));
        if (busy || (state && strcmp(state, "idle") == 0))
            slots += json_integer_value(json_object_get(w, "capacity"));
    }
    for (size_t k = 0; k < NKEYS; k++)
        if (json_object_set_new(out, keys[k], json_integer(n[k])) < 0)
            return -1;
    if (json_object_set_new(out, "slots", json_integer(slots)) < 0)
        return -1;
    return json_object_set_new(out, "demand", json_integer(demand));
}

int store_pool_scaling_json(struct store *s, const char *name, int64_t lease_ms, json_t **out)
{
    *out = NULL;
    char pool_id[STORE_POOL_ID_SIZE];
    json_int_t pending = 0;
    json_t *workers = NULL, *o = NULL;
    st_lock(s);
    struct st_stmt *st = st_stmt(s, scaling_pool_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(s, st, 1, name);
        rc = st_step_one(s, st, "pool scaling");
        if (rc == STORE_OK) {
            st_col_copy(s, st, 0, pool_id, sizeof(pool_id));
            pending = st_col_i64(s, st, 1);
        }
        st_finish(s, st);
    }
    if (rc == STORE_OK) {
        st = st_stmt(s, scaling_workers_sql);
        if (st) {
            st_bind_text(s, st, 1, pool_id);
            st_bind_i64(s, st, 2, store_now_ms() - lease_ms);
            st_bind_null(s, st, 3);
        }
        rc = st_rows_json(s, st, &workers);
    }
    st_unlock(s);
    if (rc < 0)
        return rc;
    o = json_pack("{s:I}", "pending", pending);
    if (!o || count_states(o, workers, pending) < 0)
        goto fail;
    if (json_object_set_new(o, "workers", workers) < 0) {
        workers = NULL;
        goto fail;
    }
    *out = o;
    return STORE_OK;
fail:
    json_decref(workers);
    json_decref(o);
    return STORE_ERR;
}

int st_worker_state_json(struct store *s, int64_t id, json_t **out)
{
    struct st_stmt *st = st_stmt(s, scaling_workers_sql);
    if (st) {
        st_bind_null(s, st, 1);
        st_bind_i64(s, st, 2, INT64_MIN); /* one asked for by id: alive or not */
        st_bind_i64(s, st, 3, id);
    }
    return st_row_one_json(s, st, out);
}
