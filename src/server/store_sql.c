/*
 * The store's statement and transaction helpers (store_int.h): the kept prepared statements,
 * group commit, and the accounting of database failures that every operation goes through.
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

void st_lock_dirty(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    last_nospace = 0;
}

void st_lock(struct store *s)
{
    st_lock_dirty(s);
    st_flush(s);
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

sqlite3_stmt *st_stmt(struct store *s, const char *sql)
{
    for (int i = 0; i < s->nstmts; i++)
        if (s->stmts[i].sql == sql)
            return s->stmts[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        st_fail(s, sql);
        return NULL;
    }
    if (s->nstmts < ST_STMT_CACHE) {
        s->stmts[s->nstmts].sql = sql;
        s->stmts[s->nstmts].st = st;
        s->nstmts++;
    }
    return st;
}

void st_finish(struct store *s, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < s->nstmts; i++) {
        if (s->stmts[i].st == st) {
            /* Reset at once: a statement left stepped would keep its read open. */
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    }
    sqlite3_finalize(st);
}

void st_stmts_free(struct store *s)
{
    for (int i = 0; i < s->nstmts; i++)
        sqlite3_finalize(s->stmts[i].st);
    s->nstmts = 0;
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

int st_step_one(struct store *s, sqlite3_stmt *st, const char *what)
{
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        return STORE_OK;
    if (step == SQLITE_DONE)
        return STORE_NOTFOUND;
    return st_fail(s, what);
}

/* ---- group commit (docs/hacking.md, "The store") ---- */

/* The shared transaction's statements (kept prepared), and one operation's savepoint. */
static const char begin_sql[] = "BEGIN IMMEDIATE";
static const char commit_sql[] = "COMMIT";
static const char savepoint_sql[] = "SAVEPOINT op";
static const char release_sql[] = "RELEASE op";
static const char rollback_to_sql[] = "ROLLBACK TO op";

/* Steps a kept statement without results. STORE_OK, or the failure counted and logged. */
static int st_run(struct store *s, const char *sql)
{
    sqlite3_stmt *st = st_stmt(s, sql);
    if (!st)
        return STORE_ERR;
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : st_fail(s, sql);
    st_finish(s, st);
    return rc;
}

/* The open batch has ended with rc (committed, or rolled back whole): answers its waiters. */
static void batch_resolve(struct store *s, int rc)
{
    struct st_waiter **pp = &s->waiters;
    while (*pp) {
        struct st_waiter *w = *pp;
        if (w->batch == s->batch) {
            w->rc = rc;
            w->done = 1;
            *pp = w->next;
        } else {
            pp = &w->next;
        }
    }
    s->txn_open = 0;
    s->batch_ops = 0;
    s->batch_proves_space = 0;
    pthread_cond_broadcast(&s->committed_cond);
}

/* The leader's part: commits the open batch, one fsync for all its operations. */
static void batch_commit(struct store *s)
{
    int wrote = sqlite3_total_changes64(s->db) > s->batch_changes_at_begin;
    int rc = st_run(s, commit_sql);
    if (rc < 0) {
        /* Not durable: every operation of the batch gets the error. */
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    } else if (wrote) {
        s->commits++;
        if (s->batch_proves_space)
            write_succeeded(s);
    }
    batch_resolve(s, rc);
}

void st_flush(struct store *s)
{
    if (s->txn_open)
        batch_commit(s);
}

int st_begin_locked(struct store *s)
{
    __atomic_add_fetch(&s->entering, 1, __ATOMIC_SEQ_CST);
    st_lock_dirty(s);
    __atomic_sub_fetch(&s->entering, 1, __ATOMIC_SEQ_CST);
    int rc = STORE_OK;
    if (!s->txn_open) {
        if ((rc = st_run(s, begin_sql)) < 0)
            goto fail;
        s->txn_open = 1;
        s->batch++;
        s->batch_changes_at_begin = sqlite3_total_changes64(s->db);
    }
    if ((rc = st_run(s, savepoint_sql)) < 0) {
        /* The shared transaction is unusable: end it, so that its operations learn it. */
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        batch_resolve(s, rc);
        goto fail;
    }
    s->batch_ops++;
    s->changes_at_begin = sqlite3_total_changes64(s->db);
    return STORE_OK;
fail:
    st_unlock(s);
    return rc;
}

/* Ends this operation's savepoint: kept on success, undone on failure. The operation's
 * result (rc, or the failure to keep it); the batch may have been lost meanwhile. */
static int op_close(struct store *s, int rc)
{
    if (sqlite3_get_autocommit(s->db)) {
        /* SQLite rolled the whole transaction back on its own (a full disk, an I/O error:
         * https://sqlite.org/lang_transaction.html): every change of the batch is gone. */
        if (s->txn_open)
            batch_resolve(s, rc < 0 ? rc : STORE_ERR);
        return rc < 0 ? rc : STORE_ERR;
    }
    if (rc >= 0 && (rc = st_run(s, release_sql)) >= 0)
        return rc;
    if (st_run(s, rollback_to_sql) < 0 || st_run(s, release_sql) < 0) {
        /* The savepoint cannot be undone: the batch cannot be kept either. */
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        batch_resolve(s, rc);
    }
    return rc;
}

static int end(struct store *s, int rc, int proves_space)
{
    /* Some paths only keep STORE_ERR: the cause is not lost. */
    if (rc == STORE_ERR && last_nospace)
        rc = STORE_NOSPACE;
    int changed = rc >= 0 && sqlite3_total_changes64(s->db) > s->changes_at_begin;
    rc = op_close(s, rc);
    if (!s->txn_open)
        goto out; /* the batch ended already (its waiters have been told) */
    if (changed && proves_space)
        s->batch_proves_space = 1;
    int batch_wrote = sqlite3_total_changes64(s->db) > s->batch_changes_at_begin;
    /* Leader: no other writer is about to join, so nothing is gained by waiting. */
    int lead = __atomic_load_n(&s->entering, __ATOMIC_SEQ_CST) == 0 || s->batch_ops >= ST_BATCH_MAX;
    if (!batch_wrote) {
        /* The operation saw committed state only: it needs no commit of its own. */
        if (lead)
            batch_commit(s);
        goto out;
    }
    struct st_waiter w = {s->batch, STORE_OK, 0, s->waiters};
    /* On this stack until done: batch_resolve unlinks it before it sets done. */
    // cppcheck-suppress autoVariables
    s->waiters = &w;
    if (lead)
        batch_commit(s);
    while (!w.done)
        pthread_cond_wait(&s->committed_cond, &s->mu);
    if (w.rc < 0) {
        rc = w.rc;
        if (rc == STORE_NOSPACE)
            last_nospace = 1; /* for store_failed_for_space() on this thread */
    }
out:
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
    /* Every write runs inside st_begin_locked/st_end: the commit tells
     * whether it changed something (write_succeeded). */
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : st_fail(s, sqlite3_sql(st));
    st_finish(s, st);
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
    st_finish(s, st);
    *out = arr;
    return STORE_OK;
fail:
    st_finish(s, st);
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
