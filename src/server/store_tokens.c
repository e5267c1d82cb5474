/*
 * Named API tokens with roles, and browser sessions (docs/security.md,
 * "Roles" and "Browser sessions"). Only hashes of tokens and session ids are
 * stored: a copy of the database signs no one in.
 */
#include "server/store_int.h"

#include <stdio.h>
#include <string.h>

static const char token_insert_sql[] =
    "INSERT INTO api_tokens(name, role, token_hash, created_ms) VALUES(?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
    " RETURNING 1";

int store_token_create(struct store *s, const char *name, const char *role, const char *token_hash)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, token_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, name);
    st_bind_text(s, st, 2, role);
    st_bind_text(s, st, 3, token_hash);
    st_bind_i64(s, st, 4, store_now_ms());
    /* No row back: the name is taken, not a database failure. */
    rc = st_step_one(s, st, "token create");
    if (rc == STORE_NOTFOUND)
        rc = STORE_CONFLICT;
    st_finish(s, st);
done:
    return st_end_small(s, rc);
}

static const char token_list_sql[] = "SELECT name, role,"
                                     "       davit_iso(created_ms) AS created_at,"
                                     "       davit_iso(last_used_ms) AS last_used_at"
                                     "  FROM api_tokens"
                                     " ORDER BY name";

int store_token_list_json(struct store *s, json_t **out)
{
    st_lock(s);
    int rc = st_rows_json(s, st_stmt(s, token_list_sql), out);
    st_unlock(s);
    return rc;
}

/* The sessions go first: they match their token by its hash, so that they
 * die with it even if a statement here failed half way (it cannot: one
 * transaction). The last statement's changes tell whether the token was. */
static const char *const token_revoke_sql[] = {
    "DELETE FROM web_sessions"
    " WHERE token_hash = (SELECT token_hash FROM api_tokens WHERE name = ?1)",
    "DELETE FROM api_tokens WHERE name = ?1",
};

int store_token_revoke(struct store *s, const char *name)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(token_revoke_sql) / sizeof(token_revoke_sql[0]); i++) {
        struct st_stmt *st = st_stmt(s, token_revoke_sql[i]);
        if (!st) {
            rc = STORE_ERR;
            goto done;
        }
        st_bind_text(s, st, 1, name);
        if ((rc = st_done(s, st)) < 0)
            goto done;
    }
    if (st_changes(s) == 0)
        rc = STORE_NOTFOUND;
done:
    return st_end_small(s, rc);
}

/* Runs one UPDATE bound to key (?1), now (?2) and, when ab is set, a and b (?3, ?4), as a
 * small write: the record of a use, which may fail without failing the request (logged). */
static void touch(struct store *s, const char *sql, const char *key, int ab, int64_t a, int64_t b)
{
    if (st_begin_locked(s) < 0)
        return;
    int rc = STORE_ERR;
    struct st_stmt *st = st_stmt(s, sql);
    if (st) {
        st_bind_text(s, st, 1, key);
        st_bind_i64(s, st, 2, store_now_ms());
        if (ab) {
            st_bind_i64(s, st, 3, a);
            st_bind_i64(s, st, 4, b);
        }
        rc = st_done(s, st);
    }
    st_end_small(s, rc);
}

static const char token_check_sql[] =
    "SELECT name, role, coalesce(last_used_ms, 0) FROM api_tokens WHERE token_hash = ?";

static const char token_touch_sql[] =
    "UPDATE api_tokens SET last_used_ms = ?2 WHERE token_hash = ?1";

int store_token_auth(struct store *s, const char *token_hash, int64_t touch_ms,
                     struct store_principal *out)
{
    int64_t last = 0;
    st_lock_dirty(s); /* a token is handed out only after the commit that stored it */
    struct st_stmt *st = st_stmt(s, token_check_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(s, st, 1, token_hash);
        rc = st_step_one(s, st, "token check");
        if (rc == STORE_OK) {
            st_col_copy(s, st, 0, out->name, sizeof(out->name));
            st_col_copy(s, st, 1, out->role, sizeof(out->role));
            last = st_col_i64(s, st, 2);
        }
        st_finish(s, st);
    }
    st_unlock(s);
    if (rc == STORE_OK && store_now_ms() - last >= touch_ms)
        touch(s, token_touch_sql, token_hash, 0, 0, 0);
    return rc;
}

static const char session_insert_sql[] =
    "INSERT INTO web_sessions(id_hash, token_hash, csrf, created_ms, last_used_ms, expires_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?4,"
    "        CAST(?4 AS BIGINT) + CASE WHEN CAST(?5 AS BIGINT) < CAST(?6 AS BIGINT) THEN ?5 ELSE "
    "?6 END)";

int store_web_session_create(struct store *s, const char *id_hash, const char *token_hash,
                             const char *csrf, int64_t idle_ms, int64_t max_ms)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, session_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, id_hash);
    st_bind_text(s, st, 2, token_hash);
    st_bind_text(s, st, 3, csrf);
    st_bind_i64(s, st, 4, store_now_ms());
    st_bind_i64(s, st, 5, idle_ms);
    st_bind_i64(s, st, 6, max_ms);
    rc = st_done(s, st);
done:
    return st_end_small(s, rc);
}

/* A session of a revoked token matches no token: it is dead even before revoke's
 * delete (and the admin token of the first start is matched by its hash, ?3). */
static const char session_check_sql[] =
    "SELECT coalesce(t.name, 'admin'), coalesce(t.role, 'admin'), w.csrf, w.last_used_ms"
    "  FROM web_sessions w"
    "  LEFT JOIN api_tokens t ON t.token_hash = w.token_hash"
    " WHERE w.id_hash = ?1 AND w.expires_ms > ?2"
    "   AND (t.name IS NOT NULL OR w.token_hash = ?3)";

static const char session_touch_sql[] =
    "UPDATE web_sessions"
    "   SET last_used_ms = ?2,"
    "       expires_ms = CASE WHEN created_ms + ?4 < CAST(?2 AS BIGINT) + CAST(?3 AS BIGINT)"
    "                         THEN created_ms + ?4 ELSE CAST(?2 AS BIGINT) + CAST(?3 AS BIGINT) END"
    " WHERE id_hash = ?1";

int store_web_session_auth(struct store *s, const char *id_hash, const char *admin_hash,
                           int64_t idle_ms, int64_t max_ms, int64_t touch_ms,
                           struct store_web_session *out)
{
    int64_t last = 0;
    st_lock_dirty(s); /* a session id is handed out only after the commit that stored it */
    struct st_stmt *st = st_stmt(s, session_check_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(s, st, 1, id_hash);
        st_bind_i64(s, st, 2, store_now_ms());
        st_bind_text(s, st, 3, admin_hash);
        rc = st_step_one(s, st, "browser session check");
        if (rc == STORE_OK) {
            st_col_copy(s, st, 0, out->who.name, sizeof(out->who.name));
            st_col_copy(s, st, 1, out->who.role, sizeof(out->who.role));
            st_col_copy(s, st, 2, out->csrf, sizeof(out->csrf));
            last = st_col_i64(s, st, 3);
        }
        st_finish(s, st);
    }
    st_unlock(s);
    if (rc == STORE_OK && store_now_ms() - last >= touch_ms)
        touch(s, session_touch_sql, id_hash, 1, idle_ms, max_ms);
    return rc;
}

static const char session_delete_sql[] = "DELETE FROM web_sessions WHERE id_hash = ?";

int store_web_session_delete(struct store *s, const char *id_hash)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, session_delete_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, id_hash);
    if ((rc = st_done(s, st)) == STORE_OK && st_changes(s) == 0)
        rc = STORE_NOTFOUND;
done:
    return st_end_small(s, rc);
}

static const char sessions_expire_sql[] = "DELETE FROM web_sessions WHERE expires_ms <= ?";

int store_web_sessions_expire(struct store *s, int *deleted)
{
    *deleted = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, sessions_expire_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, store_now_ms());
    if ((rc = st_done(s, st)) == STORE_OK)
        *deleted = st_changes(s);
done:
    return st_end_small(s, rc);
}
