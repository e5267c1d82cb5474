/* Launchers, their sessions and messages, dispatch, lease expiry and metrics. */
#include "server/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_challenge_create(struct store *s, const char *pool_id, const char *id, const char *nonce,
                           int64_t expires_ms)
{
    st_lock(s);
    int rc = STORE_ERR;
    sqlite3_stmt *st = st_prep(s, "INSERT INTO challenges(id, pool_id, nonce, expires_ms)"
                                  " VALUES(?,?,?,?)");
    if (st) {
        st_bind_text(st, 1, id);
        st_bind_text(st, 2, pool_id);
        st_bind_text(st, 3, nonce);
        sqlite3_bind_int64(st, 4, expires_ms);
        rc = st_done(s, st);
    }
    st_unlock(s);
    return rc;
}

int store_challenge_take(struct store *s, const char *id, const char *pool_id, char *nonce,
                         size_t noncesz)
{
    st_lock(s);
    int rc = STORE_ERR;
    /* Deleting it whatever the outcome makes every challenge single-use. */
    sqlite3_stmt *st = st_prep(s, "DELETE FROM challenges WHERE id = ? RETURNING pool_id, nonce,"
                                  " expires_ms");
    if (st) {
        st_bind_text(st, 1, id);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            char pid[40];
            st_col_copy(st, 0, pid, sizeof(pid));
            st_col_copy(st, 1, nonce, noncesz);
            int64_t exp = sqlite3_column_int64(st, 2);
            rc = strcmp(pid, pool_id) == 0 && exp >= store_now_ms() ? STORE_OK : STORE_NOTFOUND;
            step = sqlite3_step(st);
        } else if (step == SQLITE_DONE) {
            rc = STORE_NOTFOUND;
        }
        if (step != SQLITE_DONE) {
            st_fail(s, "challenge take");
            rc = STORE_ERR;
        }
        sqlite3_finalize(st);
    }
    st_unlock(s);
    return rc;
}

int store_launcher_register(struct store *s, const char *pool_id,
                            const struct store_launcher_info *info, const char *session_hash,
                            int64_t session_expires_ms, int64_t *launcher_id)
{
    int64_t now = store_now_ms();
    st_lock(s);
    int rc = st_begin(s);
    if (rc < 0)
        goto out;
    *launcher_id = 0;
    sqlite3_stmt *st;
    if (info->reuse_id > 0) {
        /* A restarted launcher keeps its identity, and with it its runs. */
        st = st_prep(s, "UPDATE launchers SET hostname = ?, version = ?, arch = ?, capacity = ?,"
                        " metadata_json = ?, last_seen_ms = ? WHERE id = ? AND pool_id = ?"
                        " AND revoked = 0 RETURNING id");
        if (!st)
            goto fail_err;
        sqlite3_bind_int64(st, 7, info->reuse_id);
        st_bind_text(st, 8, pool_id);
    } else {
        st = st_prep(s, "INSERT INTO launchers(hostname, version, arch, capacity, metadata_json,"
                        " last_seen_ms, registered_ms, pool_id) VALUES(?,?,?,?,?,?,?6,?7)"
                        " RETURNING id");
        if (!st)
            goto fail_err;
        st_bind_text(st, 7, pool_id);
    }
    st_bind_text(st, 1, info->hostname);
    st_bind_text(st, 2, info->version);
    st_bind_text(st, 3, info->arch);
    sqlite3_bind_int64(st, 4, info->capacity);
    st_bind_text(st, 5, info->metadata_json);
    sqlite3_bind_int64(st, 6, now);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *launcher_id = sqlite3_column_int64(st, 0);
        step = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        goto fail_err;
    if (*launcher_id == 0) {
        rc = STORE_NOTFOUND; /* reuse_id is not a live launcher of this pool */
        goto fail;
    }
    if (info->reuse_id > 0) {
        /* A cycle ends the session it was sent to, not the identity: a launcher
         * that registers again (restarted by its supervisor with the same state
         * directory) is a fresh, healthy worker. An admin's drain stays. */
        st = st_prep(s, "UPDATE launchers SET cycle_deadline_ms = NULL WHERE id = ?");
        if (!st)
            goto fail_err;
        sqlite3_bind_int64(st, 1, *launcher_id);
        if ((rc = st_done(s, st)) < 0)
            goto fail;
        st = st_prep(s, "DELETE FROM messages WHERE launcher_id = ? AND type = 'cycle'");
        if (!st)
            goto fail_err;
        sqlite3_bind_int64(st, 1, *launcher_id);
        if ((rc = st_done(s, st)) < 0)
            goto fail;
    }
    st = st_prep(s, "INSERT INTO sessions(token_hash, launcher_id, pool_id, expires_ms)"
                    " VALUES(?,?,?,?)");
    if (!st)
        goto fail_err;
    st_bind_text(st, 1, session_hash);
    sqlite3_bind_int64(st, 2, *launcher_id);
    st_bind_text(st, 3, pool_id);
    sqlite3_bind_int64(st, 4, session_expires_ms);
    if ((rc = st_done(s, st)) < 0 || (rc = st_commit(s)) < 0)
        goto fail;
    goto out;
fail_err:
    st_fail(s, "launcher register");
    rc = STORE_ERR;
fail:
    st_rollback(s);
out:
    st_unlock(s);
    return rc;
}

int store_session_auth(struct store *s, const char *session_hash, struct store_session *out)
{
    int64_t now = store_now_ms();
    st_lock(s);
    int rc = STORE_ERR;
    sqlite3_stmt *st = st_prep(s, "UPDATE launchers SET last_seen_ms = ?1 WHERE id ="
                                  " (SELECT launcher_id FROM sessions WHERE token_hash = ?2"
                                  " AND expires_ms > ?1) RETURNING id, pool_id, revoked");
    if (st) {
        sqlite3_bind_int64(st, 1, now);
        st_bind_text(st, 2, session_hash);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            out->launcher_id = sqlite3_column_int64(st, 0);
            st_col_copy(st, 1, out->pool_id, sizeof(out->pool_id));
            out->revoked = sqlite3_column_int(st, 2);
            step = sqlite3_step(st);
            rc = STORE_OK;
        } else if (step == SQLITE_DONE) {
            rc = STORE_NOTFOUND;
        }
        if (step != SQLITE_DONE) {
            st_fail(s, "session auth");
            rc = STORE_ERR;
        }
        sqlite3_finalize(st);
    }
    st_unlock(s);
    return rc;
}

int store_launcher_list_json(struct store *s, const char *pool_name, int64_t lease_ms, json_t **out)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(
        s,
        "SELECT l.id, p.name AS pool, CASE"
        " WHEN l.revoked OR l.cycle_deadline_ms IS NOT NULL THEN 'exiting'"
        " WHEN l.last_seen_ms < ?2 THEN 'offline'"
        " WHEN l.draining THEN 'draining'"
        " WHEN EXISTS (SELECT 1 FROM runs r WHERE r.launcher_id = l.id AND r.state "
        "IN " ST_ON_LAUNCHER ") THEN 'busy' ELSE 'idle' END AS state,"
        " l.hostname, l.version, l.arch, l.capacity, l.metadata_json, " ST_TIME(
            "l.last_seen_ms") " AS last_seen_at, " ST_TIME("l.registered_ms") " AS registered_at,"
                                                                              " (SELECT "
                                                                              "json_group_array(r."
                                                                              "id) FROM runs r "
                                                                              "WHERE r.launcher_id "
                                                                              "= l.id"
                                                                              " AND r.state "
                                                                              "IN " ST_ON_LAUNCHER
                                                                              ") AS runs_json"
                                                                              " FROM launchers l "
                                                                              "JOIN pools p ON "
                                                                              "p.id = l.pool_id"
                                                                              " WHERE (?1 IS NULL "
                                                                              "OR p.name = ?1) AND "
                                                                              "(l.last_seen_ms >= "
                                                                              "?2"
                                                                              " OR EXISTS (SELECT 1"
                                                                              " FROM runs r WHERE"
                                                                              " r.launcher_id ="
                                                                              " l.id AND r.state"
                                                                              " IN " ST_ON_LAUNCHER
                                                                              ")) ORDER BY l.id");
    if (st) {
        int64_t now = store_now_ms();
        st_bind_text(st, 1, pool_name);
        /* Gone once its lease ends, unless it still holds runs: then it shows
         * as offline until it comes back or they are lost. */
        sqlite3_bind_int64(st, 2, now - lease_ms);
    }
    int rc = st_rows_json(s, st, out);
    st_unlock(s);
    return rc;
}

int store_launcher_exit(struct store *s, int64_t id, int *gone)
{
    *gone = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    /* Kept while it still holds runs: they need it to be reported or lost. */
    static const char *const sql[] = {
        "DELETE FROM sessions WHERE launcher_id = ?1 AND NOT EXISTS (SELECT 1 FROM runs"
        " WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
        "DELETE FROM messages WHERE launcher_id = ?1 AND NOT EXISTS (SELECT 1 FROM runs"
        " WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
        "DELETE FROM launchers WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM runs"
        " WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
    };
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && rc == STORE_OK; i++) {
        sqlite3_stmt *st = st_prep(s, sql[i]);
        if (!st) {
            rc = STORE_ERR;
            break;
        }
        sqlite3_bind_int64(st, 1, id);
        rc = st_done(s, st);
        if (rc == STORE_OK && i == 2)
            *gone = sqlite3_changes(s->db) > 0;
    }
    return st_end(s, rc);
}

int store_launcher_drain(struct store *s, int64_t id, int on, char *pool_id_out)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_prep(s, "UPDATE launchers SET draining = ? WHERE id = ? RETURNING"
                                  " pool_id");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    sqlite3_bind_int(st, 1, on);
    sqlite3_bind_int64(st, 2, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        st_col_copy(st, 0, pool_id_out, 40);
        step = sqlite3_step(st);
        rc = STORE_OK;
    } else {
        rc = STORE_NOTFOUND;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        rc = STORE_ERR;
        goto done;
    }
    if (rc < 0 || (rc = st_message(s, id, on ? "drain" : "undrain", 0, 0)) < 0)
        goto done;
done:
    return st_end(s, rc);
}

/* ---- polling and dispatch ---- */

struct launcher_row {
    char pool_id[40];
    char arch[16];
    int64_t capacity, active;
    int draining, cycling, revoked;
};

static int launcher_row_get(struct store *s, int64_t id, struct launcher_row *l)
{
    sqlite3_stmt *st =
        st_prep(s, "SELECT pool_id, arch, capacity, draining,"
                   " cycle_deadline_ms IS NOT NULL, revoked, (SELECT count(*)"
                   " FROM runs r WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER
                   ") FROM launchers l WHERE id = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    int rc = st_step_one(s, st, "launcher get");
    if (rc == STORE_OK) {
        st_col_copy(st, 0, l->pool_id, sizeof(l->pool_id));
        st_col_copy(st, 1, l->arch, sizeof(l->arch));
        l->capacity = sqlite3_column_int64(st, 2);
        l->draining = sqlite3_column_int(st, 3);
        l->cycling = sqlite3_column_int(st, 4);
        l->revoked = sqlite3_column_int(st, 5);
        l->active = sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Claims the oldest queued run of the pool for the launcher: FIFO per pool. */
static int claim_one(struct store *s, int64_t launcher_id, const char *pool_id, int64_t *run_id_out,
                     int64_t *dispatch_ms)
{
    int64_t now = store_now_ms();
    sqlite3_stmt *st = st_prep(s, "UPDATE runs SET state = 'assigned', launcher_id = ?1,"
                                  " assigned_ms = ?2, attempts = attempts + 1"
                                  " WHERE id = (SELECT id FROM runs WHERE pool_id = ?3"
                                  " AND state = 'queued' ORDER BY id LIMIT 1)"
                                  " RETURNING id, queued_ms");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, launcher_id);
    sqlite3_bind_int64(st, 2, now);
    st_bind_text(st, 3, pool_id);
    int64_t run_id = 0;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        run_id = sqlite3_column_int64(st, 0);
        *dispatch_ms = now - sqlite3_column_int64(st, 1);
        step = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        st_fail(s, "claim run");
        return STORE_ERR;
    }
    if (run_id == 0)
        return STORE_NOTFOUND;
    *run_id_out = run_id;
    return st_message(s, launcher_id, "run", run_id, 0);
}

/* The "run" message's body: the spec with its secrets, and the worker to use. */
static json_t *run_message(struct store *s, int64_t launcher_id, int64_t run_id, const char *arch)
{
    json_t *msg = NULL, *spec = NULL, *secrets = NULL, *worker = NULL;
    sqlite3_stmt *st = st_prep(s, "SELECT r.spec_json, r.secrets_json, r.attempts, p.name"
                                  " FROM runs r JOIN pools p ON p.id = r.pool_id WHERE r.id = ?"
                                  " AND r.launcher_id = ? AND r.state IN " ST_ON_LAUNCHER);
    if (!st)
        return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, launcher_id);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    spec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    if (!spec)
        goto out;
    if (sqlite3_column_type(st, 1) == SQLITE_TEXT) {
        secrets = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (!secrets || json_object_set_new(spec, "secrets", secrets) < 0)
            goto out;
    }
    char pool[72];
    st_col_copy(st, 3, pool, sizeof(pool));
    int64_t attempt = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    st = st_prep(s, "SELECT id, kind, arch, version, sha256, signature, size FROM releases"
                    " WHERE kind = 'worker' AND arch = ? ORDER BY id DESC LIMIT 1");
    if (!st)
        goto out;
    st_bind_text(st, 1, arch);
    if (sqlite3_step(st) == SQLITE_ROW) {
        struct store_release r;
        r.id = sqlite3_column_int64(st, 0);
        st_col_copy(st, 1, r.kind, sizeof(r.kind));
        st_col_copy(st, 2, r.arch, sizeof(r.arch));
        st_col_copy(st, 3, r.version, sizeof(r.version));
        st_col_copy(st, 4, r.sha256, sizeof(r.sha256));
        st_col_copy(st, 5, r.signature, sizeof(r.signature));
        r.size = sqlite3_column_int64(st, 6);
        worker = store_release_json(&r);
    }
    msg = json_pack("{s:s, s:{s:I, s:s, s:I, s:O}, s:O}", "type", "run", "run", "id",
                    (json_int_t)run_id, "pool", pool, "attempt", (json_int_t)attempt, "spec", spec,
                    "worker", worker ? worker : json_null());
out:
    sqlite3_finalize(st);
    json_decref(spec);
    json_decref(worker);
    return msg;
}

/* Builds the pending messages; drops run messages whose run moved on. */
static int pending_messages(struct store *s, int64_t launcher_id, const char *arch, json_t *arr)
{
    sqlite3_stmt *st =
        st_prep(s, "SELECT id, type, run_id, deadline_ms, " ST_TIME(
                       "deadline_ms") " FROM messages WHERE launcher_id = ? ORDER BY id LIMIT 100");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, launcher_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        int64_t run_id = sqlite3_column_int64(st, 2);
        json_t *m;
        if (strcmp(type, "run") == 0) {
            m = run_message(s, launcher_id, run_id, arch);
            if (!m)
                continue; /* requeued or ended meanwhile; acked with the next ones */
        } else if (strcmp(type, "cancel") == 0) {
            m = json_pack("{s:s, s:I}", "type", type, "run_id", (json_int_t)run_id);
        } else if (strcmp(type, "cycle") == 0) {
            m = json_pack("{s:s, s:s, s:I}", "type", type, "deadline",
                          (const char *)sqlite3_column_text(st, 4), "deadline_ms",
                          (json_int_t)sqlite3_column_int64(st, 3));
        } else if (strcmp(type, "exit") == 0) {
            m = json_pack("{s:s, s:s}", "type", type, "reason", "the pool's token was reset");
        } else {
            m = json_pack("{s:s}", "type", type);
        }
        if (!m || json_object_set_new(m, "id", json_integer(id)) < 0 ||
            json_array_append_new(arr, m) < 0) {
            sqlite3_finalize(st);
            return STORE_ERR;
        }
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? STORE_OK : STORE_ERR;
}

/* A stopping launcher's assigned, unstarted runs go back to the queue now
 * rather than when its lease ends, which a draining launcher never lets
 * happen since it keeps polling. */
static int give_back(struct store *s, int64_t launcher_id, int *requeued)
{
    int rc;
    sqlite3_stmt *st =
        st_prep(s, "UPDATE runs SET state = 'queued', launcher_id = NULL, assigned_ms = NULL"
                   " WHERE launcher_id = ? AND state = 'assigned' AND NOT cancel_requested");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, launcher_id);
    if ((rc = st_done(s, st)) < 0)
        return rc;
    *requeued = sqlite3_changes(s->db);
    st = st_prep(s, "DELETE FROM messages WHERE launcher_id = ?1 AND type = 'run' AND run_id NOT IN"
                    " (SELECT id FROM runs WHERE launcher_id = ?1)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, launcher_id);
    return st_done(s, st);
}

int store_poll(struct store *s, int64_t launcher_id, int64_t ack, int draining, json_t **messages,
               struct store_claims *claimed, int *requeued)
{
    struct launcher_row l;
    json_t *arr = json_array();
    claimed->n = 0;
    *requeued = 0;
    if (!arr)
        return STORE_ERR;
    st_lock(s);
    int rc = st_begin(s);
    if (rc < 0)
        goto out;
    sqlite3_stmt *st = st_prep(s, "DELETE FROM messages WHERE launcher_id = ? AND id <= ?");
    if (!st) {
        rc = STORE_ERR;
        goto fail;
    }
    sqlite3_bind_int64(st, 1, launcher_id);
    sqlite3_bind_int64(st, 2, ack);
    if ((rc = st_done(s, st)) < 0 || (draining && (rc = give_back(s, launcher_id, requeued)) < 0) ||
        (rc = launcher_row_get(s, launcher_id, &l)) < 0)
        goto fail;
    /* A launcher's own drain is not stored: it ends with the process, while
     * an admin's drain (l.draining) outlives restarts. */
    if (!draining && !l.draining && !l.cycling && !l.revoked) {
        while (l.active < l.capacity && claimed->n < STORE_CLAIMS_MAX) {
            rc = claim_one(s, launcher_id, l.pool_id, &claimed->run_id[claimed->n],
                           &claimed->dispatch_ms[claimed->n]);
            if (rc == STORE_NOTFOUND)
                break;
            if (rc < 0)
                goto fail;
            claimed->n++;
            l.active++;
        }
    }
    if ((rc = pending_messages(s, launcher_id, l.arch, arr)) < 0 || (rc = st_commit(s)) < 0)
        goto fail;
    *messages = arr;
    arr = NULL;
    goto out;
fail:
    st_rollback(s);
out:
    st_unlock(s);
    json_decref(arr);
    return rc;
}

int store_reap(struct store *s, int64_t lease_ms, int64_t grace_ms, struct store_reap *r)
{
    int64_t now = store_now_ms();
    memset(r, 0, sizeof(*r));
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct {
        const char *sql;
        int64_t cutoff;
        int *count;
        int64_t *ids;
    } steps[] = {
        /* A run canceled before its launcher started it needs no launcher to end. */
        {"UPDATE runs SET state = 'canceled', ended_ms = ?2, secrets_json = NULL,"
         " reason = 'canceled before it started' WHERE state = 'assigned' AND cancel_requested"
         " AND launcher_id IN (SELECT id FROM launchers WHERE last_seen_ms < ?1)",
         now - lease_ms, NULL, NULL},
        {"UPDATE runs SET state = 'queued', launcher_id = NULL, assigned_ms = NULL,"
         " queued_ms = ?2 WHERE state = 'assigned'"
         " AND launcher_id IN (SELECT id FROM launchers WHERE last_seen_ms < ?1) RETURNING id",
         now - lease_ms, &r->requeued, r->requeued_ids},
        {"UPDATE runs SET state = 'lost', ended_ms = ?2, secrets_json = NULL,"
         " reason = 'the launcher was not seen within the lease and grace period'"
         " WHERE state IN ('preparing', 'running')"
         " AND launcher_id IN (SELECT id FROM launchers WHERE last_seen_ms < ?1)"
         " RETURNING id",
         now - lease_ms - grace_ms, &r->lost, r->lost_ids},
        {"DELETE FROM messages WHERE type = 'run' AND run_id NOT IN"
         " (SELECT id FROM runs WHERE state IN " ST_ON_LAUNCHER ") AND ?1 = ?1 AND ?2 = ?2",
         0, NULL, NULL},
        {"DELETE FROM challenges WHERE expires_ms < ?2 AND ?1 = ?1", 0, NULL, NULL},
        {"DELETE FROM sessions WHERE expires_ms < ?2 AND ?1 = ?1", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sqlite3_stmt *st = st_prep(s, steps[i].sql);
        if (!st) {
            rc = STORE_ERR;
            goto done;
        }
        sqlite3_bind_int64(st, 1, steps[i].cutoff);
        sqlite3_bind_int64(st, 2, now);
        int step, n = 0;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            if (steps[i].ids && n < STORE_REAP_IDS)
                steps[i].ids[n] = sqlite3_column_int64(st, 0);
            n++;
        }
        if (step != SQLITE_DONE)
            st_fail(s, "reap");
        sqlite3_finalize(st);
        if (step != SQLITE_DONE) {
            rc = STORE_ERR;
            goto done;
        }
        if (steps[i].count)
            *steps[i].count = n;
    }
done:
    return st_end(s, rc);
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

int store_metrics(struct store *s, int64_t lease_ms, struct dbuf *out)
{
    st_lock(s);
    int rc = metrics_query(s, out, "davit_runs", "Runs by pool and state.",
                           "SELECT p.name, r.state, count(*) FROM runs r JOIN pools p"
                           " ON p.id = r.pool_id WHERE ?1 = ?1 GROUP BY p.name, r.state"
                           " ORDER BY 1, 2",
                           0);
    if (rc == STORE_OK)
        rc = metrics_query(s, out, "davit_runs_pending",
                           "Queued runs waiting for a worker, per pool (the autoscaling signal).",
                           "SELECT p.name, NULL, (SELECT count(*) FROM runs r WHERE r.pool_id ="
                           " p.id AND r.state = 'queued') FROM pools p WHERE ?1 = ?1 ORDER BY 1",
                           0);
    if (rc == STORE_OK)
        rc = metrics_query(
            s, out, "davit_workers", "Launchers by pool and state.",
            "SELECT p.name, CASE WHEN l.revoked OR l.cycle_deadline_ms IS NOT NULL THEN 'exiting'"
            " WHEN l.draining THEN 'draining' WHEN EXISTS (SELECT 1 FROM runs r WHERE"
            " r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER ") THEN 'busy' ELSE 'idle' END"
            " AS st, count(*) FROM launchers l JOIN pools p ON p.id = l.pool_id"
            " WHERE l.last_seen_ms >= ?1 GROUP BY 1, 2 ORDER BY 1, 2",
            store_now_ms() - lease_ms);
    st_unlock(s);
    return rc;
}
