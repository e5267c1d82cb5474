/*
 * Release files kept in the store (release_blobs, migration 8), by their SHA-256: the servers
 * that share a store each serve every release, from a copy in their data directory that they
 * fetch from here when they lack it (releases.c). Only a shared store (PostgreSQL) keeps them:
 * on SQLite one server owns the database and the data directory on one disk, so its releases/
 * is the one copy, and a second one in the database would buy nothing but space (and keep the
 * database's files from shrinking under retention).
 */
#include "server/store_int.h"

#include <stdlib.h>
#include <string.h>

/* The same sha256 is the same bytes: a second put keeps the first. */
static const char blob_put_sql[] = "INSERT INTO release_blobs(sha256, data) VALUES(?, ?)"
                                   " ON CONFLICT(sha256) DO NOTHING";
static const char blob_get_sql[] = "SELECT data FROM release_blobs WHERE sha256 = ?";

int store_release_blob_put(struct store *s, const char *sha256, const void *data, size_t len)
{
    if (!s->drv->shared)
        return STORE_OK;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, blob_put_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, sha256);
    st_bind_blob(s, st, 2, data, len);
    rc = st_done(s, st);
done:
    return st_end(s, rc);
}

int store_release_blob_get(struct store *s, const char *sha256, void **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!s->drv->shared)
        return STORE_NOTFOUND;
    st_lock(s);
    struct st_stmt *st = st_stmt(s, blob_get_sql);
    if (!st) {
        st_unlock(s);
        return STORE_ERR;
    }
    st_bind_text(s, st, 1, sha256);
    int rc = st_step_one(s, st, "release blob get");
    if (rc == STORE_OK) {
        size_t n = 0;
        const void *p = s->drv->col_blob(st, 0, &n);
        *data = malloc(n ? n : 1);
        if (*data) {
            if (n)
                memcpy(*data, p, n);
            *len = n;
        } else {
            rc = STORE_ERR;
        }
    }
    st_finish(s, st);
    st_unlock(s);
    return rc;
}
