/* Pools: their keys, listing, deletion, token reset and cycle. */
#include "server/store_int.h"

#include "common/hex.h"
#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_pool_clear(struct store_pool *p)
{
    free(p->pubkey_pem);
    p->pubkey_pem = NULL;
}

/* A pool id is "pool-" and this many random bytes in hex: 64 bits make a
 * collision among an installation's pools as good as impossible. */
#define POOL_ID_RANDOM_BYTES 8

static const char pool_insert_sql[] =
    "INSERT INTO pools(id, name, keytype, pubkey_pem, secret_hash, created_ms)"
    " VALUES(?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
    " RETURNING 1";

int store_pool_create(struct store *s, struct store_pool *p)
{
    unsigned char raw[POOL_ID_RANDOM_BYTES];
    if (crypto_random(raw, sizeof(raw)) < 0)
        return STORE_ERR;
    _Static_assert(sizeof("pool-") + 2 * POOL_ID_RANDOM_BYTES <= STORE_POOL_ID_SIZE,
                   "a pool id fits STORE_POOL_ID_SIZE");
    memcpy(p->id, "pool-", 5);
    hex_encode(raw, sizeof(raw), p->id + 5);
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, pool_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, p->id);
    st_bind_text(s, st, 2, p->name);
    st_bind_text(s, st, 3, p->keytype);
    st_bind_text(s, st, 4, p->pubkey_pem);
    st_bind_text(s, st, 5, p->secret_hash);
    st_bind_i64(s, st, 6, store_now_ms());
    /* No row back: the name is taken (the id is fresh), not a database failure. */
    rc = st_step_one(s, st, "pool create");
    if (rc == STORE_NOTFOUND)
        rc = STORE_CONFLICT;
    st_finish(s, st);
done:
    return st_end_small(s, rc);
}

static const char pool_by_id_sql[] = "SELECT id, name, keytype, secret_hash, pubkey_pem"
                                     "  FROM pools"
                                     " WHERE id = ?";
static const char pool_by_name_sql[] = "SELECT id, name, keytype, secret_hash, pubkey_pem"
                                       "  FROM pools"
                                       " WHERE name = ?";

int store_pool_get(struct store *s, const char *key, int by_id, struct store_pool *out)
{
    int rc = STORE_ERR;
    memset(out, 0, sizeof(*out));
    /* Dirty (no commit first; the submit path): an uncommitted create or reset is seen only
     * by a request that knows its name or secret, which its creator learns after the commit. */
    st_lock_dirty(s);
    struct st_stmt *st = st_stmt(s, by_id ? pool_by_id_sql : pool_by_name_sql);
    if (!st)
        goto out;
    st_bind_text(s, st, 1, key);
    rc = st_step_one(s, st, "pool get");
    if (rc == STORE_OK) {
        st_col_copy(s, st, 0, out->id, sizeof(out->id));
        st_col_copy(s, st, 1, out->name, sizeof(out->name));
        st_col_copy(s, st, 2, out->keytype, sizeof(out->keytype));
        st_col_copy(s, st, 3, out->secret_hash, sizeof(out->secret_hash));
        out->pubkey_pem = strdup(st_col_text(s, st, 4));
        rc = out->pubkey_pem ? STORE_OK : STORE_ERR;
    }
    st_finish(s, st);
out:
    st_unlock(s);
    return rc;
}

/* A pool as the API shows it; the statements append a WHERE or ORDER BY. */
#define POOL_COLUMNS                                                                               \
    "SELECT p.id, p.name, p.keytype,"                                                              \
    "       davit_iso(p.created_ms) AS created_at,"                                                \
    "       (SELECT count(*)"                                                                      \
    "          FROM runs r"                                                                        \
    "         WHERE r.pool_id = p.id AND r.state = 'queued') AS pending,"                          \
    "       (SELECT count(*)"                                                                      \
    "          FROM runs r"                                                                        \
    "         WHERE r.pool_id = p.id AND r.state IN " ST_ON_LAUNCHER ") AS active,"                \
    "       (SELECT count(*)"                                                                      \
    "          FROM launchers l"                                                                   \
    "         WHERE l.pool_id = p.id AND l.revoked = 0) AS workers"                                \
    "  FROM pools p"

static const char pool_list_sql[] = POOL_COLUMNS " ORDER BY p.name";
static const char pool_show_sql[] = POOL_COLUMNS " WHERE p.name = ?";

int store_pool_list_json(struct store *s, json_t **out)
{
    st_lock(s);
    int rc = st_rows_json(s, st_stmt(s, pool_list_sql), out);
    st_unlock(s);
    return rc;
}

int store_pool_show_json(struct store *s, const char *name, json_t **out)
{
    st_lock(s);
    struct st_stmt *st = st_stmt(s, pool_show_sql);
    if (st)
        st_bind_text(s, st, 1, name);
    int rc = st_row_one_json(s, st, out);
    st_unlock(s);
    return rc;
}

/* Looks the pool id up by name inside a transaction. */
static int pool_id_by_name(struct store *s, const char *name, char *id, size_t idsz)
{
    struct st_stmt *st = st_stmt(s, "SELECT id FROM pools WHERE name = ?");
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, name);
    int rc = st_step_one(s, st, "pool id");
    if (rc == STORE_OK)
        st_col_copy(s, st, 0, id, idsz);
    st_finish(s, st);
    return rc;
}

/*
 * Begins a write on the pool called name: takes the lock, begins, looks up
 * its id (STORE_POOL_ID_SIZE bytes). On failure (no such pool) it has
 * already ended the transaction and returns the error.
 */
static int begin_on_pool(struct store *s, const char *name, char *id)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = pool_id_by_name(s, name, id, STORE_POOL_ID_SIZE);
    return rc < 0 ? st_end(s, rc) : rc;
}

static int exec_bound(struct store *s, const char *sql, const char *arg)
{
    struct st_stmt *st = st_stmt(s, sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, arg);
    return st_done(s, st);
}

/* exec_bound with ?2 bound to v. */
static int exec_bound_i64(struct store *s, const char *sql, const char *arg, int64_t v)
{
    struct st_stmt *st = st_stmt(s, sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, arg);
    st_bind_i64(s, st, 2, v);
    return st_done(s, st);
}

static const char pool_active_runs_sql[] = "SELECT count(*)"
                                           "  FROM runs"
                                           " WHERE pool_id = ? AND state IN " ST_ACTIVE_STATES;

/* Everything of the pool, in this order; each binds the pool's id. */
static const char *const pool_delete_sql[] = {
    /* Freed later in small batches (store_purge_logs), like a deleted run's. */
    "INSERT INTO log_purge(run_id) SELECT id FROM runs WHERE pool_id = ? ON CONFLICT DO NOTHING",
    "DELETE FROM runs WHERE pool_id = ?",
    "DELETE FROM messages WHERE launcher_id IN (SELECT id FROM launchers WHERE pool_id = ?)",
    "DELETE FROM sessions WHERE pool_id = ?",
    "DELETE FROM launchers WHERE pool_id = ?",
    "DELETE FROM pools WHERE id = ?",
};

int store_pool_delete(struct store *s, const char *name)
{
    char id[STORE_POOL_ID_SIZE];
    int rc = begin_on_pool(s, name, id);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, pool_active_runs_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, id);
    int64_t active = st_step(s, st) == ST_ROW ? st_col_i64(s, st, 0) : -1;
    st_finish(s, st);
    if (active != 0) {
        rc = active < 0 ? STORE_ERR : STORE_CONFLICT;
        goto done;
    }
    for (size_t i = 0; i < sizeof(pool_delete_sql) / sizeof(pool_delete_sql[0]); i++) {
        rc = exec_bound(s, pool_delete_sql[i], id);
        if (rc < 0)
            goto done;
    }
done:
    return st_end(s, rc);
}

/* Launchers silent for longer than this are gone (an autoscaling group's old
 * machines): they get no more messages, and are not counted as told. */
#define LAUNCHER_GONE_MS (24LL * 3600 * 1000)

static const char message_pool_sql[] =
    "INSERT INTO messages(launcher_id, type, deadline_ms, created_ms)"
    " SELECT id, ?, ?, ?3"
    "  FROM launchers"
    " WHERE pool_id = ? AND revoked = 0 AND davit_seen(id, last_seen_ms) >= CAST(?3 AS BIGINT) - "
    "CAST(?5 AS BIGINT)";

/* Queues a message of type for every unrevoked, recently seen launcher of pool id. */
static int message_pool(struct store *s, const char *pool_id, const char *type, int64_t deadline_ms,
                        int *count)
{
    struct st_stmt *st = st_stmt(s, message_pool_sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, type);
    if (deadline_ms > 0)
        st_bind_i64(s, st, 2, deadline_ms);
    st_bind_i64(s, st, 3, store_now_ms());
    st_bind_text(s, st, 4, pool_id);
    st_bind_i64(s, st, 5, LAUNCHER_GONE_MS);
    int rc = st_done(s, st);
    if (count)
        *count = st_changes(s);
    return rc;
}

static const char pool_reset_sql[] =
    "UPDATE pools SET pubkey_pem = ?, keytype = ?, secret_hash = ?, reset_ms = ?"
    " WHERE id = ?";

/* After a reset: the pool's launchers are void (an open challenge, in memory, fails against
 * the new key). */
static const char *const pool_revoke_sql[] = {
    "UPDATE launchers SET revoked = 1 WHERE pool_id = ?",
};

int store_pool_reset(struct store *s, const char *name, const char *pubkey_pem, const char *keytype,
                     const char *secret_hash, char *pool_id_out)
{
    int rc = begin_on_pool(s, name, pool_id_out);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, pool_reset_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, pubkey_pem);
    st_bind_text(s, st, 2, keytype);
    st_bind_text(s, st, 3, secret_hash);
    st_bind_i64(s, st, 4, store_now_ms());
    st_bind_text(s, st, 5, pool_id_out);
    if ((rc = st_done(s, st)) < 0 || (rc = message_pool(s, pool_id_out, "exit", 0, NULL)) < 0)
        goto done;
    for (size_t i = 0; i < sizeof(pool_revoke_sql) / sizeof(pool_revoke_sql[0]) && rc == STORE_OK;
         i++)
        rc = exec_bound(s, pool_revoke_sql[i], pool_id_out);
done:
    return st_end(s, rc);
}

static const char pool_cycle_sql[] = "UPDATE launchers SET cycle_deadline_ms = ?"
                                     " WHERE pool_id = ? AND revoked = 0";
/* ?2: now, in whole seconds (as milliseconds). */
static const char pool_cycled_sql[] = "UPDATE pools SET cycled_ms = ?2 WHERE id = ?1";

int store_pool_cycle(struct store *s, const char *name, int64_t deadline_ms, char *pool_id_out,
                     int *count)
{
    int rc = begin_on_pool(s, name, pool_id_out);
    if (rc < 0)
        return rc;
    if ((rc = message_pool(s, pool_id_out, "cycle", deadline_ms, count)) < 0)
        goto done;
    struct st_stmt *st = st_stmt(s, pool_cycle_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, deadline_ms);
    st_bind_text(s, st, 2, pool_id_out);
    if ((rc = st_done(s, st)) == STORE_OK)
        rc = exec_bound_i64(s, pool_cycled_sql, pool_id_out, store_now_ms() / 1000 * 1000);
done:
    return st_end(s, rc);
}
