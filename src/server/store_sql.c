/*
 * The store's statement and transaction helpers (store_int.h): the kept prepared statements,
 * group commit, and the accounting of database failures that every operation goes through.
 */
#include "server/store_int.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* What the last store operation of this thread failed for (see st_fail). */
static __thread int last_nospace, last_unavailable;

int store_failed_for_space(void)
{
    return last_nospace;
}

int store_failed_unavailable(void)
{
    return last_unavailable;
}

/* While this thread holds the lock through st_lock_dirty: a statement is to open the read's
 * savepoint first (pending), or has (open). */
static __thread int read_pending, read_savepoint;

static void lock_plain(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    last_nospace = 0;
    last_unavailable = 0;
}

void st_lock_dirty(struct store *s)
{
    lock_plain(s);
    /* On PostgreSQL a failed statement aborts the whole open transaction, and with it every
     * acknowledged-to-be operation of the batch: what runs inside the open batch outside an
     * operation's savepoint gets its own (SQLite's statements fail alone), opened by the first
     * statement (st_stmt): in-memory reads cost no round trip. */
    read_pending = s->drv->shared;
}

void st_lock(struct store *s)
{
    lock_plain(s);
    st_flush(s);
}

static int await_durable(struct store *s, uint64_t batch);

/* Ends the caller's read savepoint (st_lock_dirty), if it opened one. */
static void release_read(struct store *s)
{
    read_pending = 0;
    if (read_savepoint) {
        read_savepoint = 0;
        /* RELEASE keeps what the read wrote (a token's last use); in a transaction a failure
         * aborted it is refused, and ROLLBACK TO undoes the failure alone. When even that
         * fails the connection is gone, and the batch's commit tells its writers. */
        if (s->drv->exec(s, "RELEASE dirty_read") < 0 &&
            s->drv->exec(s, "ROLLBACK TO dirty_read") == 0)
            s->drv->exec(s, "RELEASE dirty_read");
    }
}

/* st_unlock without waiting for what the caller saw to be on disk: for end(), which waited
 * for its own batch, and whose reads saw nothing committed after it. */
static void unlock_now(struct store *s)
{
    release_read(s);
    pthread_mutex_unlock(&s->mu);
}

void st_unlock(struct store *s)
{
    /* What the caller read (it held the lock throughout) may come from a batch committed but
     * not yet on disk: nothing it answers may be lost to a power cut, as with a commit that
     * syncs before it returns. (st_lock_dirty's reads may also see the open batch, which is
     * not committed: what they answer does not depend on it.) The savepoint ends first: the
     * lock is let go while a sync runs. A failed sync is already logged, and refuses every
     * statement after it (st_stmt). */
    release_read(s);
    await_durable(s, s->written);
    pthread_mutex_unlock(&s->mu);
}

/* Counts a failure; STORE_NOSPACE or STORE_ERR. Called under the lock. */
static int failure_count(struct store *s)
{
    enum st_reason why = s->drv->reason(s);
    s->errors[why]++;
    if (why == ST_R_IO) {
        s->up_since_ms = clock_wall_ms(); /* lost connection, or a disk that failed */
        last_unavailable = 1;
    }
    if (why != ST_R_FULL)
        return STORE_ERR;
    s->full = 1;
    last_nospace = 1;
    return STORE_NOSPACE;
}

/* Whether a "store failed" line is written: at most ST_FAIL_LOG_MAX each ST_FAIL_LOG_MS, and a
 * count of those left out before the next. */
#define ST_FAIL_LOG_MAX 5
#define ST_FAIL_LOG_MS  (10 * 1000)
static int fail_log_pass(struct store *s)
{
    unsigned long long dropped;
    int pass =
        log_gate_pass(&s->fail_log, clock_mono_ms(), ST_FAIL_LOG_MS, ST_FAIL_LOG_MAX, &dropped);
    if (dropped) {
        char n[24], within[24];
        snprintf(n, sizeof(n), "%llu", dropped);
        snprintf(within, sizeof(within), "%d", ST_FAIL_LOG_MS / 1000);
        log_event(LOG_ERROR, "store failures left out of the log", "count", n, "within_s", within,
                  NULL);
    }
    return pass;
}

int st_fail(struct store *s, const char *what)
{
    int rc = failure_count(s);
    if (fail_log_pass(s))
        log_event(LOG_ERROR, "store failed", "op", what, "reason",
                  rc == STORE_NOSPACE ? STORE_NOSPACE_TEXT : s->drv->message(s), "detail",
                  rc == STORE_NOSPACE ? s->drv->message(s) : NULL, NULL);
    return rc;
}

/* A write that changed something committed: the disk has room again. */
static void write_succeeded(struct store *s)
{
    s->full = 0;
}

int st_sound(struct store *s)
{
    if (!s->sync_failed)
        return STORE_OK;
    last_unavailable = 1; /* logged once, by the sync that failed */
    return STORE_ERR;
}

struct st_stmt *st_prep(struct store *s, const char *sql)
{
    if (st_sound(s) < 0)
        return NULL;
    struct st_stmt *st = s->drv->prepare(s, sql, 0);
    if (!st)
        st_fail(s, sql);
    return st;
}

struct st_stmt *st_stmt(struct store *s, const char *sql)
{
    if (st_sound(s) < 0)
        return NULL;
    if (read_pending) {
        read_pending = 0;
        if (s->txn_open && s->drv->exec(s, "SAVEPOINT dirty_read") == 0)
            read_savepoint = 1;
    }
    struct st_stmt *st = s->drv->prepare(s, sql, 1);
    if (!st)
        st_fail(s, sql);
    return st;
}

void st_finish(struct store *s, struct st_stmt *st)
{
    if (st)
        s->drv->finish(s, st);
}

int st_exec(struct store *s, const char *sql)
{
    if (s->drv->exec(s, sql) < 0) {
        int rc = failure_count(s);
        if (fail_log_pass(s))
            log_event(LOG_ERROR, "store failed", "op", sql, "reason",
                      rc == STORE_NOSPACE ? STORE_NOSPACE_TEXT : s->drv->message(s), NULL);
        return rc;
    }
    return STORE_OK;
}

int st_step_one(struct store *s, struct st_stmt *st, const char *what)
{
    int step = st_step(s, st);
    if (step == ST_ROW)
        return STORE_OK;
    if (step == ST_DONE)
        return STORE_NOTFOUND;
    return st_fail(s, what);
}

/* ---- group commit (docs/hacking.md, "The store") ---- */

/* The shared transaction's statements (kept prepared), and one operation's savepoint. */
static const char commit_sql[] = "COMMIT";
static const char savepoint_sql[] = "SAVEPOINT op";
static const char release_sql[] = "RELEASE op";
static const char rollback_to_sql[] = "ROLLBACK TO op";

/* Steps a kept statement without results. STORE_OK, or the failure counted and logged. */
static int st_run(struct store *s, const char *sql)
{
    struct st_stmt *st = st_stmt(s, sql);
    if (!st)
        return STORE_ERR;
    int rc = st_step(s, st) == ST_DONE ? STORE_OK : st_fail(s, sql);
    st_finish(s, st);
    return rc;
}

/* Ends the shared transaction after a failure, when the database has not ended it on its own. */
static void rollback(struct store *s)
{
    if (s->drv->in_txn(s))
        s->drv->exec(s, "ROLLBACK");
}

/* The open batch has ended with rc (committed, or rolled back whole): answers its waiters.
 * unavailable: it failed for a lost connection, an I/O error or a failed sync. */
static void batch_resolve(struct store *s, int rc, int unavailable)
{
    struct st_waiter **pp = &s->waiters;
    while (*pp) {
        struct st_waiter *w = *pp;
        if (w->batch == s->batch) {
            w->rc = rc;
            w->unavailable = rc < 0 && unavailable;
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

/* The leader's part: commits the open batch, one sync for all its operations
 * (await_durable). */
static void batch_commit(struct store *s)
{
    int wrote = s->drv->total_changes(s) > s->batch_changes_at_begin;
    /* The commit may be made for other threads' operations (st_flush, await_durable): its
     * failure is their cause, not this thread's own operation's. */
    int nospace = last_nospace, unavailable = last_unavailable;
    last_nospace = last_unavailable = 0;
    int rc = st_run(s, commit_sql);
    int failed_unavailable = rc < 0 && last_unavailable;
    last_nospace = nospace;
    last_unavailable = unavailable;
    if (rc < 0) {
        /* Not durable: every operation of the batch gets the error. */
        rollback(s);
    } else if (wrote) {
        s->commits++;
        s->written = s->batch;
        if (!s->drv->sync)
            s->durable = s->batch; /* the COMMIT was durable by itself */
        if (s->batch_proves_space)
            write_succeeded(s);
    }
    batch_resolve(s, rc, failed_unavailable);
}

/*
 * Returns once every batch up to `batch` is on disk: STORE_OK, or STORE_ERR when a sync
 * failed (then and ever after: sync_failed). Under the lock, which it lets go while it syncs:
 * one thread syncs at a time, for every batch committed before it began, while the next batch
 * runs; the others wait for it, or sync after it for what was committed meanwhile. So a burst
 * of operations shares few syncs, and none of them is answered before its own is on disk.
 */
static int await_durable(struct store *s, uint64_t batch)
{
    while (s->durable < batch) {
        if (s->sync_failed)
            return STORE_ERR;
        if (s->syncing) {
            pthread_cond_wait(&s->synced_cond, &s->mu);
            continue;
        }
        s->syncing = 1;
        uint64_t upto = s->written;
        pthread_mutex_unlock(&s->mu);
        int rc = s->drv->sync(s), err = errno;
        pthread_mutex_lock(&s->mu);
        s->syncing = 0;
        if (rc < 0) {
            s->sync_failed = 1;
            s->errors[ST_R_IO]++;
            log_event(LOG_ERROR, "store failed", "op", "sync the database to disk", "reason",
                      strerror(err), "detail",
                      "no write is acknowledged any more: restart the server once the disk is"
                      " sound",
                      NULL);
        } else {
            s->syncs++;
            if (upto > s->durable)
                s->durable = upto;
        }
        /* The batch that gathered while the disk synced: committed now, for the next sync
         * (one without changes too: it would hold BEGIN IMMEDIATE's lock until the next op).
         * After a failed sync its COMMIT is refused (st_sound), and it is rolled back. */
        if (s->txn_open)
            batch_commit(s);
        pthread_cond_broadcast(&s->synced_cond);
    }
    return STORE_OK;
}

void st_flush(struct store *s)
{
    if (s->txn_open)
        batch_commit(s);
}

int st_begin_locked(struct store *s)
{
    __atomic_add_fetch(&s->entering, 1, __ATOMIC_SEQ_CST);
    lock_plain(s);
    __atomic_sub_fetch(&s->entering, 1, __ATOMIC_SEQ_CST);
    int rc = st_sound(s);
    if (rc < 0)
        goto fail;
    if (!s->txn_open) {
        if ((rc = st_run(s, s->drv->begin)) < 0)
            goto fail;
        s->txn_open = 1;
        s->batch++;
        s->batch_changes_at_begin = s->drv->total_changes(s);
    }
    if ((rc = st_run(s, savepoint_sql)) < 0) {
        /* The shared transaction is unusable: end it, so that its operations learn it. */
        rollback(s);
        batch_resolve(s, rc, last_unavailable);
        goto fail;
    }
    s->batch_ops++;
    s->changes_at_begin = s->drv->total_changes(s);
    return STORE_OK;
fail:
    st_unlock(s);
    return rc;
}

/* Ends this operation's savepoint: kept on success, undone on failure. The operation's
 * result (rc, or the failure to keep it); the batch may have been lost meanwhile. */
static int op_close(struct store *s, int rc)
{
    if (!s->drv->in_txn(s)) {
        /* SQLite rolled the whole transaction back on its own (a full disk, an I/O error:
         * https://sqlite.org/lang_transaction.html): every change of the batch is gone. */
        if (s->txn_open)
            batch_resolve(s, rc < 0 ? rc : STORE_ERR, last_unavailable);
        return rc < 0 ? rc : STORE_ERR;
    }
    if (rc >= 0 && (rc = st_run(s, release_sql)) >= 0)
        return rc;
    if (st_run(s, rollback_to_sql) < 0 || st_run(s, release_sql) < 0) {
        /* The savepoint cannot be undone: the batch cannot be kept either. */
        rollback(s);
        batch_resolve(s, rc, last_unavailable);
    }
    return rc;
}

static int end(struct store *s, int rc, int proves_space)
{
    /* Some paths only keep STORE_ERR: the cause is not lost. */
    if (rc == STORE_ERR && last_nospace)
        rc = STORE_NOSPACE;
    int changed = rc >= 0 && s->drv->total_changes(s) > s->changes_at_begin;
    rc = op_close(s, rc);
    if (!s->txn_open)
        goto out; /* the batch ended already (its waiters have been told) */
    if (changed && proves_space)
        s->batch_proves_space = 1;
    int batch_wrote = s->drv->total_changes(s) > s->batch_changes_at_begin;
    /* Leader: no other writer is about to join, so nothing is gained by waiting. While a sync
     * runs, the batch stays open for the writers that come meanwhile, and is committed when
     * the sync ends (await_durable): its own sync could not start before that anyway. */
    int lead = s->batch_ops >= ST_BATCH_MAX ||
               (__atomic_load_n(&s->entering, __ATOMIC_SEQ_CST) == 0 && !s->syncing);
    if (!batch_wrote) {
        /* The operation saw committed state only: it needs no commit of its own. */
        if (lead)
            batch_commit(s);
        goto out;
    }
    struct st_waiter w = {s->batch, STORE_OK, 0, 0, s->waiters};
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
        last_unavailable = w.unavailable;
    } else if (await_durable(s, w.batch) < 0) {
        rc = STORE_ERR; /* committed, but not known to be on disk: not acknowledged */
        last_unavailable = 1;
    }
    /* Its reads saw its own batch and those before it, all on disk now; the batches that
     * committed while it waited are for their own operations to wait for. */
    unlock_now(s);
    return rc;
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

int st_done(struct store *s, struct st_stmt *st)
{
    if (!st)
        return STORE_ERR;
    /* Every write runs inside st_begin_locked/st_end: the commit tells
     * whether it changed something (write_succeeded). */
    int rc = st_step(s, st) == ST_DONE ? STORE_OK : st_fail(s, st_sql(s, st));
    st_finish(s, st);
    return rc;
}

void st_col_copy(struct store *s, struct st_stmt *st, int col, char *out, size_t size)
{
    const char *t = st_col_text(s, st, col);
    snprintf(out, size, "%s", t ? t : "");
}

json_t *st_row_json(struct store *s, struct st_stmt *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    const struct st_driver *d = s->drv;
    int n = d->col_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = d->col_name(st, i);
        json_t *v = NULL;
        size_t nlen = strlen(name);
        switch (d->col_type(st, i)) {
        case ST_T_INT:
            v = json_integer(d->col_i64(st, i));
            break;
        case ST_T_REAL:
            v = json_real(d->col_double(st, i));
            break;
        case ST_T_NULL:
            v = json_null();
            break;
        default:
            if (nlen > 5 && strcmp(name + nlen - 5, "_json") == 0) {
                v = json_loads(d->col_text(st, i), 0, NULL);
                char key[ST_COLUMN_NAME_MAX];
                snprintf(key, sizeof(key), "%.*s", (int)(nlen - 5), name);
                if (json_object_set_new(o, key, v ? v : json_null()) < 0)
                    goto fail;
                continue;
            }
            v = json_string(d->col_text(st, i));
        }
        if (!v || json_object_set_new(o, name, v) < 0)
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

int st_rows_json(struct store *s, struct st_stmt *st, json_t **out)
{
    json_t *arr = json_array();
    int rc;
    if (!st || !arr)
        goto fail;
    while ((rc = st_step(s, st)) == ST_ROW) {
        json_t *row = st_row_json(s, st);
        if (!row || json_array_append_new(arr, row) < 0)
            goto fail;
    }
    if (rc != ST_DONE) {
        st_fail(s, st_sql(s, st));
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

int st_row_one_json(struct store *s, struct st_stmt *st, json_t **out)
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

static const char spec_get_sql[] = "SELECT spec_json FROM runs WHERE id = ?1";
static const char spec_set_sql[] = "UPDATE runs SET spec_json = ?2 WHERE id = ?1";

int st_spec_unseal(struct store *s, int64_t run_id)
{
    struct st_stmt *st = st_stmt(s, spec_get_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, run_id);
    int rc = st_step_one(s, st, "run spec");
    json_t *spec = rc == STORE_OK ? json_loads(st_col_text(s, st, 0), 0, NULL) : NULL;
    st_finish(s, st);
    if (rc == STORE_NOTFOUND)
        return STORE_OK;
    if (rc < 0)
        return STORE_ERR;
    char *text = NULL;
    if (!json_is_object(spec) || !json_object_get(spec, "sealed"))
        goto done; /* nothing sealed (or not an object: nothing to remove) */
    rc = STORE_ERR;
    if (json_object_del(spec, "sealed") < 0 || !(text = json_dumps(spec, JSON_COMPACT)))
        goto done;
    if ((st = st_stmt(s, spec_set_sql))) {
        st_bind_i64(s, st, 1, run_id);
        st_bind_text(s, st, 2, text);
        rc = st_done(s, st);
    }
done:
    free(text);
    json_decref(spec);
    return rc;
}

int st_ids_add(struct st_ids *ids, int64_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 16;
        int64_t *v = realloc(ids->v, cap * sizeof(*v));
        if (!v)
            return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

int st_ids_unseal(struct store *s, const struct st_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        if (st_spec_unseal(s, ids->v[i]) < 0)
            return STORE_ERR;
    return STORE_OK;
}
