/*
 * The store's connection: opening the database (settings, then the schema's
 * migrations, store_schema.c), closing it, and the key/value settings.
 */
#include "server/store_int.h"

#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t store_now_ms(void)
{
    return clock_wall_ms();
}

/* The driver for where: PostgreSQL for a postgres:// or postgresql:// URL, else SQLite (a
 * file). NULL with err filled when this build lacks the driver. */
static const struct st_driver *driver_for(const char *where, char *err, size_t errsz)
{
    if (strncmp(where, "postgres://", 11) == 0 || strncmp(where, "postgresql://", 13) == 0) {
#ifdef DAVIT_HAVE_POSTGRES
        return &st_pg_driver;
#else
        snprintf(err, errsz, "store: this davit was built without PostgreSQL support");
        return NULL;
#endif
    }
    (void)err;
    (void)errsz;
    return &st_sqlite_driver;
}

/* Opens the database through its driver, which applies the schema's migrations. *from gets the
 * schema version found. */
static int open_at(struct store **out, const char *where, int *from, char *err, size_t errsz)
{
    const struct st_driver *drv = driver_for(where, err, errsz);
    if (!drv)
        return STORE_ERR;
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsz, "store: out of memory");
        return STORE_ERR;
    }
    s->drv = drv;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->committed_cond, NULL);
    pthread_cond_init(&s->synced_cond, NULL);
    s->fail_log = (struct log_gate)LOG_GATE_INIT;
    /* Before the driver: its davit_seen reads the table. */
    if (st_seen_init(s, store_now_ms()) < 0) {
        snprintf(err, errsz, "store: launchers' liveness: out of memory");
        goto fail;
    }
    if (drv->open(s, where, from, err, errsz) < 0)
        goto fail;
    s->up_since_ms = store_now_ms();
    *out = s;
    return STORE_OK;
fail:
    store_close(s);
    return STORE_ERR;
}

int store_open(struct store **out, const char *path, char *err, size_t errsz)
{
    int from;
    return open_at(out, path, &from, err, errsz);
}

int store_migrate(const char *path, int *from, char *err, size_t errsz)
{
    struct store *s = NULL;
    int rc = open_at(&s, path, from, err, errsz);
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->conn) {
        /* What the workers list shows survives a clean restart (leases do not need it). */
        st_seen_save(s);
        st_lock(s); /* commits: nothing waits any more; what was done is kept */
        st_unlock(s);
    }
    s->drv->close(s);
    st_seen_free(s);
    pthread_cond_destroy(&s->committed_cond);
    pthread_cond_destroy(&s->synced_cond);
    pthread_mutex_destroy(&s->fail_log.mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_meta_get(struct store *s, const char *key, char **val)
{
    int rc = STORE_ERR;
    st_lock(s);
    struct st_stmt *st = st_stmt(s, "SELECT value FROM meta WHERE key = ?");
    if (!st)
        goto out;
    st_bind_text(s, st, 1, key);
    rc = st_step_one(s, st, "meta get");
    if (rc == STORE_OK) {
        *val = strdup(st_col_text(s, st, 0));
        rc = *val ? STORE_OK : STORE_ERR;
    }
    st_finish(s, st);
out:
    st_unlock(s);
    return rc;
}

int store_meta_set(struct store *s, const char *key, const char *val)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, "INSERT INTO meta(key, value) VALUES(?, ?)"
                                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, key);
    st_bind_text(s, st, 2, val);
    rc = st_done(s, st);
done:
    return st_end(s, rc);
}

const char *store_kind(struct store *s)
{
    return s->drv->name;
}

int store_ping(struct store *s)
{
    /* A shared store's ping has its own connection: /healthz must answer while an operation
     * waits (under the lock) for a row another server holds. */
    if (s->drv->shared)
        return s->drv->ping(s) < 0 ? STORE_ERR : STORE_OK;
    st_lock_dirty(s); /* a round trip only: nothing to commit first */
    int rc = st_sound(s) < 0 || s->drv->ping(s) < 0 ? STORE_ERR : STORE_OK;
    st_unlock(s);
    return rc;
}

int store_publish(struct store *s, const char *payload)
{
    if (strlen(payload) > STORE_WAKE_MAX)
        return STORE_ERR;
    /* Committed first: a NOTIFY inside the open batch would wait for its commit and vanish
     * with it; outside one, it is sent at once. */
    st_lock(s);
    int rc = s->drv->publish(s, payload) < 0 ? st_fail(s, "publish a wake-up") : STORE_OK;
    st_unlock(s);
    return rc < 0 ? STORE_ERR : rc;
}

int store_listen(struct store *s, void (*fn)(void *arg, const char *payload), void *arg)
{
    st_lock_dirty(s);
    int rc = s->drv->listen(s, fn, arg) < 0 ? st_fail(s, "listen for wake-ups") : STORE_OK;
    st_unlock(s);
    return rc < 0 ? STORE_ERR : rc;
}
