/*
 * Named API tokens with roles, and browser sessions (docs/security.md,
 * "Roles" and "Browser sessions"). Only hashes of tokens and session ids are
 * stored: a copy of the database signs no one in.
 */
#include "server/store_int.h"

#include <stdio.h>
#include <string.h>

static const char token_insert_sql[] =
    "INSERT INTO api_tokens(name, role, token_hash, created_ms) VALUES(?, ?, ?, ?)";

int store_token_create(struct store *s, const char *name, const char *role, const char *token_hash)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_stmt(s, token_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, name);
    st_bind_text(st, 2, role);
    st_bind_text(st, 3, token_hash);
    sqlite3_bind_int64(st, 4, store_now_ms());
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = STORE_OK;
    else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY ||
             sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
        rc = STORE_CONFLICT; /* the name is taken: not a database failure */
    else
        rc = st_fail(s, "token create");
    st_finish(s, st);
done:
    return st_end_small(s, rc);
}

static const char token_list_sql[] =
    "SELECT name, role,"
    "       strftime(" ST_ISO8601 ", created_ms / 1000.0, 'unixepoch') AS created_at,"
    "       strftime(" ST_ISO8601 ", last_used_ms / 1000.0, 'unixepoch') AS last_used_at"
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
        sqlite3_stmt *st = st_stmt(s, token_revoke_sql[i]);
        if (!st) {
            rc = STORE_ERR;
            goto done;
        }
        st_bind_text(st, 1, name);
        if ((rc = st_done(s, st)) < 0)
            goto done;
    }
    if (sqlite3_changes(s->db) == 0)
        rc = STORE_NOTFOUND;
done:
    return st_end_small(s, rc);
}

/* Runs one UPDATE bound to key (?1), now (?2) and, when it has them, a and b (?3, ?4), as a
 * small write: the record of a use, which may fail without failing the request (logged). */
static void touch(struct store *s, const char *sql, const char *key, int64_t a, int64_t b)
{
    if (st_begin_locked(s) < 0)
        return;
    int rc = STORE_ERR;
    sqlite3_stmt *st = st_stmt(s, sql);
    if (st) {
        st_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, store_now_ms());
        if (sqlite3_bind_parameter_count(st) >= 4) {
            sqlite3_bind_int64(st, 3, a);
            sqlite3_bind_int64(st, 4, b);
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
    sqlite3_stmt *st = st_stmt(s, token_check_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(st, 1, token_hash);
        rc = st_step_one(s, st, "token check");
        if (rc == STORE_OK) {
            st_col_copy(st, 0, out->name, sizeof(out->name));
            st_col_copy(st, 1, out->role, sizeof(out->role));
            last = sqlite3_column_int64(st, 2);
        }
        st_finish(s, st);
    }
    st_unlock(s);
    if (rc == STORE_OK && store_now_ms() - last >= touch_ms)
        touch(s, token_touch_sql, token_hash, 0, 0);
    return rc;
}

static const char session_insert_sql[] =
    "INSERT INTO web_sessions(id_hash, token_hash, csrf, created_ms, last_used_ms, expires_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?4, ?4 + min(?5, ?6))";

int store_web_session_create(struct store *s, const char *id_hash, const char *token_hash,
                             const char *csrf, int64_t idle_ms, int64_t max_ms)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_stmt(s, session_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, id_hash);
    st_bind_text(st, 2, token_hash);
    st_bind_text(st, 3, csrf);
    sqlite3_bind_int64(st, 4, store_now_ms());
    sqlite3_bind_int64(st, 5, idle_ms);
    sqlite3_bind_int64(st, 6, max_ms);
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
    "   SET last_used_ms = ?2, expires_ms = min(created_ms + ?4, ?2 + ?3)"
    " WHERE id_hash = ?1";

int store_web_session_auth(struct store *s, const char *id_hash, const char *admin_hash,
                           int64_t idle_ms, int64_t max_ms, int64_t touch_ms,
                           struct store_web_session *out)
{
    int64_t last = 0;
    st_lock_dirty(s); /* a session id is handed out only after the commit that stored it */
    sqlite3_stmt *st = st_stmt(s, session_check_sql);
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(st, 1, id_hash);
        sqlite3_bind_int64(st, 2, store_now_ms());
        st_bind_text(st, 3, admin_hash);
        rc = st_step_one(s, st, "browser session check");
        if (rc == STORE_OK) {
            st_col_copy(st, 0, out->who.name, sizeof(out->who.name));
            st_col_copy(st, 1, out->who.role, sizeof(out->who.role));
            st_col_copy(st, 2, out->csrf, sizeof(out->csrf));
            last = sqlite3_column_int64(st, 3);
        }
        st_finish(s, st);
    }
    st_unlock(s);
    if (rc == STORE_OK && store_now_ms() - last >= touch_ms)
        touch(s, session_touch_sql, id_hash, idle_ms, max_ms);
    return rc;
}

static const char session_delete_sql[] = "DELETE FROM web_sessions WHERE id_hash = ?";

int store_web_session_delete(struct store *s, const char *id_hash)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_stmt(s, session_delete_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, id_hash);
    if ((rc = st_done(s, st)) == STORE_OK && sqlite3_changes(s->db) == 0)
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
    sqlite3_stmt *st = st_stmt(s, sessions_expire_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    sqlite3_bind_int64(st, 1, store_now_ms());
    if ((rc = st_done(s, st)) == STORE_OK)
        *deleted = sqlite3_changes(s->db);
done:
    return st_end_small(s, rc);
}
