/* Launchers: their registration, sessions, listing, drain and exit. */
#include "server/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A restarted launcher keeps its identity, and with it its runs. */
static const char launcher_reuse_sql[] =
    "UPDATE launchers"
    "   SET hostname = ?, version = ?, arch = ?, capacity = ?, metadata_json = ?, last_seen_ms = ?,"
    "       ephemeral = CASE WHEN CAST(?9 AS BIGINT) = 0 THEN 0"
    "                        WHEN ephemeral > 1 THEN ephemeral ELSE 1 END"
    " WHERE id = ?7 AND pool_id = ?8 AND revoked = 0"
    " RETURNING id";

static const char launcher_insert_sql[] =
    "INSERT INTO launchers(hostname, version, arch, capacity, metadata_json,"
    "                      last_seen_ms, registered_ms, pool_id, ephemeral)"
    " VALUES(?, ?, ?, ?, ?, ?, ?6, ?7, CASE WHEN CAST(?8 AS BIGINT) <> 0 THEN 1 ELSE 0 END)"
    " RETURNING id";

/*
 * A cycle ends the session it was sent to, not the identity: a launcher that
 * registers again (restarted by its supervisor with the same state
 * directory) is a fresh, healthy worker. An admin's drain stays.
 */
static const char *const launcher_uncycle_sql[] = {
    "UPDATE launchers SET cycle_deadline_ms = NULL WHERE id = ?",
    "DELETE FROM messages WHERE launcher_id = ? AND type = 'cycle'",
};

static const char session_insert_sql[] =
    "INSERT INTO sessions(token_hash, launcher_id, pool_id, expires_ms)"
    " VALUES(?, ?, ?, ?)";

/* Updates (reuse_id) or inserts the launcher's row; *id gets its id, or 0
 * when reuse_id is not a live launcher of the pool. Inside a transaction. */
static int launcher_upsert(struct store *s, const char *pool_id,
                           const struct store_launcher_info *info, int64_t *id)
{
    *id = 0;
    struct st_stmt *st = st_stmt(s, info->reuse_id > 0 ? launcher_reuse_sql : launcher_insert_sql);
    if (!st)
        return STORE_ERR;
    if (info->reuse_id > 0) {
        st_bind_i64(s, st, 7, info->reuse_id);
        st_bind_text(s, st, 8, pool_id);
    } else {
        st_bind_text(s, st, 7, pool_id);
    }
    st_bind_text(s, st, 1, info->hostname);
    st_bind_text(s, st, 2, info->version);
    st_bind_text(s, st, 3, info->arch);
    st_bind_i64(s, st, 4, info->capacity);
    st_bind_text(s, st, 5, info->metadata_json);
    st_bind_i64(s, st, 6, store_now_ms());
    /* An ephemeral launcher restarted with its identity stays spent (2) if it was. The insert
     * takes it as ?8: its parameters have no gap (PostgreSQL cannot type a missing one). */
    st_bind_int(s, st, info->reuse_id > 0 ? 9 : 8, info->ephemeral ? 1 : 0);
    int step = st_step(s, st);
    if (step == ST_ROW) {
        *id = st_col_i64(s, st, 0);
        step = st_step(s, st);
    }
    int rc = step == ST_DONE ? STORE_OK : st_fail(s, "launcher register");
    st_finish(s, st);
    return rc;
}

int store_launcher_register(struct store *s, const char *pool_id,
                            const struct store_launcher_info *info, const char *session_hash,
                            int64_t session_expires_ms, int64_t *launcher_id)
{
    return store_launcher_register_challenge(s, pool_id, info, NULL, 0, session_hash,
                                             session_expires_ms, launcher_id);
}

int store_launcher_register_challenge(struct store *s, const char *pool_id,
                                      const struct store_launcher_info *info,
                                      const char *challenge_id, int64_t challenge_expires_ms,
                                      const char *session_hash, int64_t session_expires_ms,
                                      int64_t *launcher_id)
{
    *launcher_id = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    /* In the registration's own commit: a challenge is used exactly when a launcher registered
     * with it (challenges.h), and registering costs no extra commit. */
    if (challenge_id && (rc = st_challenge_use(s, challenge_id, challenge_expires_ms)) < 0)
        goto done;
    if ((rc = launcher_upsert(s, pool_id, info, launcher_id)) < 0)
        goto done;
    if (*launcher_id == 0) {
        rc = STORE_NOTFOUND; /* reuse_id is not a live launcher of this pool */
        goto done;
    }
    for (size_t i = 0;
         info->reuse_id > 0 && i < sizeof(launcher_uncycle_sql) / sizeof(launcher_uncycle_sql[0]);
         i++) {
        struct st_stmt *st = st_stmt(s, launcher_uncycle_sql[i]);
        if (!st) {
            rc = STORE_ERR;
            goto done;
        }
        st_bind_i64(s, st, 1, *launcher_id);
        if ((rc = st_done(s, st)) < 0)
            goto done;
    }
    struct st_stmt *st = st_stmt(s, session_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, session_hash);
    st_bind_i64(s, st, 2, *launcher_id);
    st_bind_text(s, st, 3, pool_id);
    st_bind_i64(s, st, 4, session_expires_ms);
    /* Seen now, under the lock: the reaper never sees it registered but not seen. */
    if ((rc = st_done(s, st)) == STORE_OK)
        st_seen_touch(s, *launcher_id, store_now_ms());
done:
    return st_end(s, rc);
}

static const char session_check_sql[] = "SELECT l.id, l.pool_id, l.revoked"
                                        "  FROM sessions x"
                                        "  JOIN launchers l ON l.id = x.launcher_id"
                                        " WHERE x.token_hash = ? AND x.expires_ms > ?";

/* The lease renewal is in memory (under the lock, so that a reap runs wholly before or after
 * it): a read, no transaction, nothing written. */
int store_session_auth(struct store *s, const char *session_hash, struct store_session *out)
{
    /* Dirty: a session only an uncommitted registration holds is one nobody knows yet. */
    st_lock_dirty(s);
    struct st_stmt *st = st_stmt(s, session_check_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(s, st, 1, session_hash);
        st_bind_i64(s, st, 2, store_now_ms());
        rc = st_step_one(s, st, "session check");
        if (rc == STORE_OK) {
            out->launcher_id = st_col_i64(s, st, 0);
            st_col_copy(s, st, 1, out->pool_id, sizeof(out->pool_id));
            out->revoked = st_col_int(s, st, 2);
            st_seen_touch(s, out->launcher_id, store_now_ms());
        }
        st_finish(s, st);
    }
    st_unlock(s);
    return rc;
}

/*
 * Gone once its lease ends (?2 is now minus the lease), unless it still
 * holds runs: then it shows as offline until it comes back or they are lost.
 */
static const char launcher_list_sql[] =
    "SELECT l.id, p.name AS pool,"
    "       CASE WHEN l.revoked <> 0 OR l.cycle_deadline_ms IS NOT NULL THEN 'exiting'"
    "            WHEN davit_seen(l.id, l.last_seen_ms) < ?2 THEN 'offline'"
    "            WHEN l.draining <> 0 THEN 'draining'"
    "            WHEN EXISTS (SELECT 1"
    "                           FROM runs r"
    "                          WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER ")"
    "            THEN 'busy'"
    "            ELSE 'idle' END AS state,"
    "       l.hostname, l.version, l.arch, l.capacity, l.metadata_json,"
    "       davit_iso(davit_seen(l.id, l.last_seen_ms)) AS last_seen_at,"
    "       davit_iso(l.registered_ms) AS registered_at,"
    "       (SELECT json_group_array(r.id)"
    "          FROM runs r"
    "         WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER ") AS runs_json"
    "  FROM launchers l"
    "  JOIN pools p ON p.id = l.pool_id"
    " WHERE (CAST(?1 AS TEXT) IS NULL OR p.name = ?1)"
    "   AND (davit_seen(l.id, l.last_seen_ms) >= ?2"
    "        OR EXISTS (SELECT 1"
    "                     FROM runs r"
    "                    WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER "))"
    " ORDER BY l.id";

int store_launcher_list_json(struct store *s, const char *pool_name, int64_t lease_ms, json_t **out)
{
    st_lock(s);
    struct st_stmt *st = st_stmt(s, launcher_list_sql);
    if (st) {
        st_bind_text(s, st, 1, pool_name);
        st_bind_i64(s, st, 2, store_now_ms() - lease_ms);
    }
    int rc = st_rows_json(s, st, out);
    st_unlock(s);
    return rc;
}

/* Kept while it still holds runs: they need it to be reported or lost. The
 * last statement's changes tell whether the launcher went. */
static const char *const launcher_exit_sql[] = {
    "DELETE FROM sessions"
    " WHERE launcher_id = ?1"
    "   AND NOT EXISTS (SELECT 1 FROM runs WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
    "DELETE FROM messages"
    " WHERE launcher_id = ?1"
    "   AND NOT EXISTS (SELECT 1 FROM runs WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
    "DELETE FROM launchers"
    " WHERE id = ?1"
    "   AND NOT EXISTS (SELECT 1 FROM runs WHERE launcher_id = ?1 AND state IN " ST_ON_LAUNCHER ")",
};

/* On PostgreSQL (drv->row_lock) the exit first waits for another server's claim or poll of
 * this launcher (they lock its row, store_dispatch.c): the statements above, each a new one,
 * then see the runs that claim gave it, and keep the launcher. Without it the exit did not see
 * a claim still committing and deleted a launcher that held a run. */
static const char launcher_exit_lock_sql[] = "SELECT id FROM launchers WHERE id = ? FOR UPDATE";

int store_launcher_exit(struct store *s, int64_t id, int *gone)
{
    const size_t n = sizeof(launcher_exit_sql) / sizeof(launcher_exit_sql[0]);
    *gone = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    if (s->drv->row_lock[0]) {
        struct st_stmt *st = st_stmt(s, launcher_exit_lock_sql);
        if (!st) {
            rc = STORE_ERR;
        } else {
            st_bind_i64(s, st, 1, id);
            rc = st_step_one(s, st, "launcher lock");
            st_finish(s, st);
        }
    }
    for (size_t i = 0; i < n && rc == STORE_OK; i++) {
        struct st_stmt *st = st_stmt(s, launcher_exit_sql[i]);
        if (!st) {
            rc = STORE_ERR;
            break;
        }
        st_bind_i64(s, st, 1, id);
        rc = st_done(s, st);
        if (rc == STORE_OK && i == n - 1)
            *gone = st_changes(s) > 0;
    }
    rc = st_end(s, rc);
    if (rc == STORE_OK && *gone)
        st_seen_forget(s, id);
    return rc;
}

static const char launcher_drain_sql[] = "UPDATE launchers"
                                         "   SET draining = ?"
                                         " WHERE id = ?"
                                         " RETURNING pool_id";

int store_launcher_drain(struct store *s, int64_t id, int on, char *pool_id_out, json_t **state)
{
    *state = NULL;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, launcher_drain_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_int(s, st, 1, on);
    st_bind_i64(s, st, 2, id);
    int step = st_step(s, st);
    if (step == ST_ROW) {
        st_col_copy(s, st, 0, pool_id_out, STORE_POOL_ID_SIZE);
        step = st_step(s, st);
        rc = STORE_OK;
    } else {
        rc = STORE_NOTFOUND;
    }
    st_finish(s, st);
    if (step != ST_DONE) {
        rc = STORE_ERR;
        goto done;
    }
    if (rc < 0 || (rc = st_message(s, id, on ? "drain" : "undrain", 0, 0)) < 0)
        goto done;
    /* In the same transaction: no poll claims a run between the drain and this answer, so
     * "drained" means no run will start there (docs/server.md, "Scaling"). */
    rc = st_worker_state_json(s, id, state);
done:
    rc = st_end(s, rc);
    if (rc < 0) {
        json_decref(*state);
        *state = NULL;
    }
    return rc;
}
