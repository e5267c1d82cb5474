/*
 * What servers sharing one store agree on without a table of their own: a meta value the first
 * server sets (store_meta_put_new), and the registration challenges used up (challenge_uses,
 * migration 8; challenges.h says why a challenge is otherwise stateless).
 */
#include "server/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char meta_put_new_sql[] = "INSERT INTO meta(key, value) VALUES(?, ?)"
                                       " ON CONFLICT(key) DO NOTHING";

int store_meta_put_new(struct store *s, const char *key, const char *val, char **stored)
{
    *stored = NULL;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, meta_put_new_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, key);
    st_bind_text(s, st, 2, val);
    rc = st_done(s, st);
done:
    /* Committed before the read: what it reads is what every server reads from now on. */
    rc = st_end_small(s, rc);
    if (rc < 0)
        return rc;
    rc = store_meta_get(s, key, stored);
    /* Inserted or found: a row is there; none means it was deleted under us. */
    return rc == STORE_NOTFOUND ? STORE_ERR : rc;
}

static const char challenge_use_sql[] = "INSERT INTO challenge_uses(id, expires_ms) VALUES(?, ?)"
                                        " ON CONFLICT(id) DO NOTHING";

int st_challenge_use(struct store *s, const char *id, int64_t expires_ms)
{
    struct st_stmt *st = st_stmt(s, challenge_use_sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, id);
    st_bind_i64(s, st, 2, expires_ms);
    int rc = st_done(s, st);
    /* Nothing inserted: a registration (on this server or another) used it already. On
     * PostgreSQL the insert waits for a concurrent one's transaction, then does nothing. */
    if (rc == STORE_OK && st_changes(s) != 1)
        rc = STORE_CONFLICT;
    return rc;
}

static const char challenge_expire_sql[] = "DELETE FROM challenge_uses WHERE expires_ms < ?";

int store_challenge_uses_expire(struct store *s, int64_t now_ms, int *deleted)
{
    *deleted = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, challenge_expire_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, now_ms);
    if ((rc = st_done(s, st)) == STORE_OK)
        *deleted = (int)st_changes(s);
done:
    return st_end_small(s, rc);
}
