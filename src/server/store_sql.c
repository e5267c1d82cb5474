/*
 * The store's statement and transaction helpers (store_int.h), and the
 * accounting of database failures that every operation goes through.
 */
#include "server/store_int.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What the last store operation of this thread failed for (see st_fail). */
static __thread int last_nospace;

int store_failed_for_space(void)
{
    return last_nospace;
}

void st_lock(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    last_nospace = 0;
}

void st_unlock(struct store *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* The reason of the database's last failure. SQLite's unix VFS turns a
 * short write with ENOSPC into SQLITE_FULL; fsync, truncate and -shm growth
 * report SQLITE_IOERR_* with the errno kept aside. */
static enum st_reason failure_reason(sqlite3 *db)
{
    switch (sqlite3_extended_errcode(db) & 0xff) {
    case SQLITE_FULL:
        return ST_R_FULL;
    case SQLITE_IOERR:
        return sqlite3_system_errno(db) == ENOSPC ? ST_R_FULL : ST_R_IO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ST_R_BUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ST_R_CORRUPT;
    default:
        return ST_R_OTHER;
    }
}

/* Counts a failure; STORE_NOSPACE or STORE_ERR. Called under the lock. */
static int failure_count(struct store *s)
{
    enum st_reason why = failure_reason(s->db);
    s->errors[why]++;
    if (why != ST_R_FULL)
        return STORE_ERR;
    s->full = 1;
    last_nospace = 1;
    return STORE_NOSPACE;
}

int st_fail(struct store *s, const char *what)
{
    int rc = failure_count(s);
    log_event(LOG_ERROR, "store failed", "op", what, "reason",
              rc == STORE_NOSPACE ? STORE_NOSPACE_TEXT : sqlite3_errmsg(s->db), "detail",
              rc == STORE_NOSPACE ? sqlite3_errmsg(s->db) : NULL, NULL);
    return rc;
}

/* A write that changed something committed: the disk has room again. */
static void write_succeeded(struct store *s)
{
    s->full = 0;
}

sqlite3_stmt *st_prep(struct store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        st_fail(s, sql);
        return NULL;
    }
    return st;
}

int st_exec(struct store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = failure_count(s);
        log_event(LOG_ERROR, "store failed", "op", sql, "reason",
                  rc == STORE_NOSPACE ? STORE_NOSPACE_TEXT : msg, NULL);
        sqlite3_free(msg);
        return rc;
    }
    return STORE_OK;
}

static int st_begin(struct store *s)
{
    int rc = st_exec(s, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        s->changes_at_begin = sqlite3_total_changes64(s->db);
    return rc;
}

static void st_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* proves_space: a change committed ends the degraded state (st_end_small). */
static int st_commit(struct store *s, int proves_space)
{
    int rc = st_exec(s, "COMMIT");
    if (rc < 0) {
        st_rollback(s);
        return rc;
    }
    /* A transaction that wrote nothing commits even on a full disk. */
    if (proves_space && sqlite3_total_changes64(s->db) > s->changes_at_begin)
        write_succeeded(s);
    return STORE_OK;
}

int st_step_one(struct store *s, sqlite3_stmt *st, const char *what)
{
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        return STORE_OK;
    if (step == SQLITE_DONE)
        return STORE_NOTFOUND;
    return st_fail(s, what);
}

int st_begin_locked(struct store *s)
{
    st_lock(s);
    int rc = st_begin(s);
    if (rc < 0)
        st_unlock(s);
    return rc;
}

static int end(struct store *s, int rc, int proves_space)
{
    /* Some paths only keep STORE_ERR: the cause is not lost. */
    if (rc == STORE_ERR && last_nospace)
        rc = STORE_NOSPACE;
    if (rc >= 0)
        rc = st_commit(s, proves_space);
    else
        st_rollback(s);
    st_unlock(s);
    return rc;
}

int st_end(struct store *s, int rc)
{
    return end(s, rc, 1);
}

int st_end_small(struct store *s, int rc)
{
    return end(s, rc, 0);
}

int st_done(struct store *s, sqlite3_stmt *st)
{
    if (!st)
        return STORE_ERR;
    /* Every write runs inside st_begin_locked/st_end: st_commit() tells
     * whether it changed something (write_succeeded). */
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : st_fail(s, sqlite3_sql(st));
    sqlite3_finalize(st);
    return rc;
}

void st_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

void st_col_copy(sqlite3_stmt *st, int col, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, size, "%s", t ? (const char *)t : "");
}

json_t *st_row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        json_t *v = NULL;
        size_t nlen = strlen(name);
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_NULL:
            v = json_null();
            break;
        default:
            if (nlen > 5 && strcmp(name + nlen - 5, "_json") == 0) {
                v = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
                char key[ST_COLUMN_NAME_MAX];
                snprintf(key, sizeof(key), "%.*s", (int)(nlen - 5), name);
                if (json_object_set_new(o, key, v ? v : json_null()) < 0)
                    goto fail;
                continue;
            }
            v = json_string((const char *)sqlite3_column_text(st, i));
        }
        if (!v || json_object_set_new(o, name, v) < 0)
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

int st_rows_json(struct store *s, sqlite3_stmt *st, json_t **out)
{
    json_t *arr = json_array();
    int rc;
    if (!st || !arr)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = st_row_json(st);
        if (!row || json_array_append_new(arr, row) < 0)
            goto fail;
    }
    if (rc != SQLITE_DONE) {
        st_fail(s, sqlite3_sql(st));
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    return STORE_OK;
fail:
    sqlite3_finalize(st);
    json_decref(arr);
    return STORE_ERR;
}

int st_row_one_json(struct store *s, sqlite3_stmt *st, json_t **out)
{
    json_t *arr = NULL;
    int rc = st_rows_json(s, st, &arr);
    if (rc < 0)
        return rc;
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return STORE_NOTFOUND;
    }
    *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return STORE_OK;
}
