/* Runs, their events and their logs: the part of the store a run's life goes through. */
#include "server/store_int.h"

#include "common/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_terminal(const char *state)
{
    return strcmp(state, "finished") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "canceled") == 0 || strcmp(state, "timed_out") == 0 ||
           strcmp(state, "lost") == 0;
}

/* run_nonce and the sealing key's fingerprint come from the spec (docs/secrets.md): the nonce
 * is unique among the runs kept (index runs_nonce), and a reset fails the queued runs sealed
 * to an old key. A nonce taken gives no row: ON CONFLICT rather than a check before the
 * insert, because on PostgreSQL a check does not see another server's insert of the same
 * nonce that is still committing (the insert waits for it, then fails with a unique violation
 * where one server answers 409). */
static const char run_insert_sql[] =
    "INSERT INTO runs(pool_id, state, spec_json, secrets_json, created_ms, queued_ms,"
    "                 run_nonce, sealed_key)"
    " VALUES(?1, 'queued', ?2, ?3, ?4, ?4, ?5, ?6)"
    " ON CONFLICT DO NOTHING"
    " RETURNING id";

/* A member of the spec (obj.key, or key alone when obj is NULL) as the text the columns keep:
 * a string as is, NULL when absent or null, anything else as compact JSON. *out is malloc'd or
 * NULL; -1 when out of memory. */
static int spec_member(json_t *spec, const char *obj, const char *key, char **out)
{
    json_t *o = obj ? json_object_get(spec, obj) : spec;
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_true(v) || json_is_false(v))
        *out = strdup(json_is_true(v) ? "1" : "0"); /* what SQLite's json_extract gave */
    else if (json_is_string(v))
        *out = strdup(json_string_value(v));
    else
        *out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return *out ? 0 : -1;
}

/* Inside an operation: the insert; STORE_CONFLICT when its run_nonce is taken. */
static int run_insert(struct store *s, const char *pool_id, const char *spec_json,
                      const char *secrets_json, int64_t *id)
{
    int rc = STORE_ERR;
    char *nonce = NULL, *sealed_key = NULL;
    json_t *spec = json_loads(spec_json, 0, NULL);
    if (spec_member(spec, NULL, "run_nonce", &nonce) < 0 ||
        spec_member(spec, "sealed", "key_id", &sealed_key) < 0)
        goto done;
    struct st_stmt *st = st_stmt(s, run_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, pool_id);
    st_bind_text(s, st, 2, spec_json);
    st_bind_text(s, st, 3, secrets_json);
    st_bind_i64(s, st, 4, store_now_ms());
    st_bind_text(s, st, 5, nonce);
    st_bind_text(s, st, 6, sealed_key);
    rc = st_step_one(s, st, "run insert");
    if (rc == STORE_OK)
        *id = st_col_i64(s, st, 0);
    else if (rc == STORE_NOTFOUND)
        rc = nonce ? STORE_CONFLICT : STORE_ERR; /* only the nonce's index can refuse it */
    st_finish(s, st);
done:
    json_decref(spec);
    free(nonce);
    free(sealed_key);
    return rc;
}

int store_run_create(struct store *s, const char *pool_id, const char *spec_json,
                     const char *secrets_json, int64_t *id)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    return st_end(s, run_insert(s, pool_id, spec_json, secrets_json, id));
}

int store_run_create_claim(struct store *s, const char *pool_id, const char *spec_json,
                           const char *secrets_json, int64_t launcher_id, int64_t *id,
                           struct store_claims *claimed)
{
    claimed->n = 0;
    claimed->room = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = run_insert(s, pool_id, spec_json, secrets_json, id);
    if (rc == STORE_OK && launcher_id > 0)
        rc = st_claim_for(s, launcher_id, pool_id, claimed);
    return st_end(s, rc);
}

/* A run as the API shows it; the statements add columns, FROM and WHERE. */
#define RUN_COLUMNS                                                                                \
    "SELECT r.id, p.name AS pool, r.state, r.phase, r.launcher_id AS worker,"                      \
    "       davit_iso(r.created_ms) AS created_at,"                                                \
    "       davit_iso(r.assigned_ms) AS assigned_at,"                                              \
    "       davit_iso(r.started_ms) AS started_at,"                                                \
    "       davit_iso(r.ended_ms) AS ended_at,"                                                    \
    "       r.reason, r.exit_code, r.cancel_requested, r.log_bytes, r.attempts,"                   \
    "       davit_iso(r.log_deleted_ms) AS log_deleted_at"

static const char run_show_sql[] = RUN_COLUMNS ", r.spec_json AS spec_json"
                                               "  FROM runs r"
                                               "  JOIN pools p ON p.id = r.pool_id"
                                               " WHERE r.id = ?";

/* ?3 is one more than the page: whether that row exists says if there is a next page. */
static const char run_list_sql[] = RUN_COLUMNS "  FROM runs r"
                                               "  JOIN pools p ON p.id = r.pool_id"
                                               " WHERE (CAST(?1 AS TEXT) IS NULL OR p.name = ?1)"
                                               "   AND (CAST(?2 AS TEXT) IS NULL OR r.state = ?2)"
                                               "   AND (?4 = 0 OR r.id < ?4)"
                                               " ORDER BY r.id DESC"
                                               " LIMIT ?3";

/* What a run's row needs on top of its columns (under the lock). */
static int run_json_finish(struct store *s, json_t *run)
{
    json_t *cr = json_boolean(json_integer_value(json_object_get(run, "cancel_requested")));
    if (json_object_set_new(run, "cancel_requested", cr) < 0)
        return STORE_ERR;
    return st_waiting_json(s, run) < 0 ? STORE_ERR : STORE_OK;
}

int store_run_show_json(struct store *s, int64_t id, json_t **out)
{
    st_lock(s);
    struct st_stmt *st = st_stmt(s, run_show_sql);
    if (st)
        st_bind_i64(s, st, 1, id);
    int rc = st_row_one_json(s, st, out);
    if (rc == STORE_OK && (rc = run_json_finish(s, *out)) < 0) {
        json_decref(*out);
        *out = NULL;
    }
    st_unlock(s);
    return rc;
}

int store_run_list_json(struct store *s, const char *pool_name, const char *state, int limit,
                        int64_t before, json_t **out, int64_t *next)
{
    *next = 0;
    *out = NULL;
    st_lock(s);
    struct st_stmt *st = st_stmt(s, run_list_sql);
    if (st) {
        st_bind_text(s, st, 1, pool_name);
        st_bind_text(s, st, 2, state);
        /* One more than asked: whether it exists says if there is a next page. */
        st_bind_int(s, st, 3, limit + 1);
        st_bind_i64(s, st, 4, before);
    }
    int rc = st_rows_json(s, st, out);
    if (rc == STORE_OK && json_array_size(*out) > (size_t)limit) {
        json_array_remove(*out, (size_t)limit);
        *next = json_integer_value(json_object_get(json_array_get(*out, (size_t)limit - 1), "id"));
    }
    size_t i;
    json_t *row;
    if (rc == STORE_OK)
        json_array_foreach(*out, i, row)
        {
            if ((rc = run_json_finish(s, row)) < 0)
                break;
        }
    if (rc < 0 && *out) {
        json_decref(*out);
        *out = NULL;
    }
    st_unlock(s);
    return rc;
}

struct run_row {
    char pool_id[STORE_POOL_ID_SIZE];
    char state[STORE_STATE_SIZE];
    int64_t launcher_id; /* 0 when none */
    int64_t event_seq;
    int64_t log_bytes;
    int cancel_requested;
    int log_deleted; /* retention deleted the log of this ended run */
};

#define RUN_ROW_SQL                                                                                \
    "SELECT pool_id, state, launcher_id, event_seq, log_bytes, cancel_requested,"                  \
    "       log_deleted_ms IS NOT NULL"                                                            \
    "  FROM runs"                                                                                  \
    " WHERE id = ?"
static const char run_row_sql[] = RUN_ROW_SQL;
/* The same with PostgreSQL's row lock (drv->row_lock; statements are kept by address, so the
 * text is chosen, not built): a write that decides on the row's state holds it until its
 * commit, and another server's claim, requeue or event on it waits, then this one reads what
 * that one committed. Without it, a cancel that read "queued" while another server's claim
 * was committing ended a run a launcher held, and an event that read "assigned" while the
 * reaper requeued it left it "preparing" with no launcher. */
static const char run_row_locked_sql[] = RUN_ROW_SQL " FOR UPDATE";

enum { ROW_READ, ROW_FOR_WRITE };

/* Reads run id into r; ROW_FOR_WRITE inside a write operation that decides on it. */
static int run_row_get(struct store *s, int64_t id, struct run_row *r, int how)
{
    struct st_stmt *st =
        st_stmt(s, how == ROW_FOR_WRITE && s->drv->row_lock[0] ? run_row_locked_sql : run_row_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, id);
    int rc = st_step_one(s, st, "run get");
    if (rc == STORE_OK) {
        st_col_copy(s, st, 0, r->pool_id, sizeof(r->pool_id));
        st_col_copy(s, st, 1, r->state, sizeof(r->state));
        r->launcher_id = st_col_i64(s, st, 2);
        r->event_seq = st_col_i64(s, st, 3);
        r->log_bytes = st_col_i64(s, st, 4);
        r->cancel_requested = st_col_int(s, st, 5);
        r->log_deleted = st_col_int(s, st, 6);
    }
    st_finish(s, st);
    return rc;
}

static const char run_end_sql[] =
    "UPDATE runs"
    "   SET state = ?, ended_ms = ?, reason = ?, exit_code = ?, secrets_json = NULL"
    " WHERE id = ?";
static const char run_end_messages_sql[] = "DELETE FROM messages WHERE run_id = ? AND type = 'run'";

/* Ends a run: its secrets (plaintext, and the sealed block of its spec: the wrapped key and the
 * boxes) and undelivered messages go away with it. */
static int run_end(struct store *s, int64_t id, const char *state, const char *reason,
                   int64_t exit_code)
{
    struct st_stmt *st = st_stmt(s, run_end_sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(s, st, 1, state);
    st_bind_i64(s, st, 2, store_now_ms());
    st_bind_text(s, st, 3, reason);
    if (exit_code >= 0)
        st_bind_i64(s, st, 4, exit_code);
    st_bind_i64(s, st, 5, id);
    if (st_done(s, st) < 0 || st_spec_unseal(s, id) < 0)
        return STORE_ERR;
    s->secrets_purged = 1;
    st = st_stmt(s, run_end_messages_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, id);
    return st_done(s, st);
}

static const char fail_resealed_sql[] =
    "UPDATE runs"
    "   SET state = 'failed', ended_ms = ?3,"
    "       reason = 'the pool was reset with a new key: the secrets sealed to its old key cannot"
    " be opened any more; submit the run again'"
    " WHERE pool_id = ?1 AND state = 'queued' AND sealed_key IS NOT NULL AND sealed_key != ?2"
    " RETURNING id";

int store_runs_fail_resealed(struct store *s, const char *pool_id, const char *key_id, int64_t *ids,
                             size_t max, size_t *n)
{
    *n = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, fail_resealed_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, pool_id);
    st_bind_text(s, st, 2, key_id);
    st_bind_i64(s, st, 3, store_now_ms());
    int step;
    struct st_ids all = {0};
    while ((step = st_step(s, st)) == ST_ROW) {
        int64_t id = st_col_i64(s, st, 0);
        if (*n < max)
            ids[(*n)++] = id;
        if (st_ids_add(&all, id) < 0)
            break;
    }
    rc = step == ST_DONE  ? STORE_OK
         : step == ST_ROW ? STORE_ERR
                          : st_fail(s, "fail runs sealed to an old key");
    st_finish(s, st);
    if (rc == STORE_OK)
        rc = st_ids_unseal(s, &all);
    free(all.v);
done:
    return st_end(s, rc);
}

int store_secrets_checkpoint(struct store *s)
{
    st_lock(s);
    int rc = st_sound(s);
    if (rc < 0 || !s->secrets_purged)
        goto out;
    /* Outside a transaction (st_lock committed): a checkpoint cannot run inside one. 1: a
     * reader (another process) kept it from finishing, so the next call tries again. */
    int cut = s->drv->secrets_checkpoint(s);
    if (cut < 0)
        rc = st_fail(s, "checkpoint after purging secrets");
    else if (cut == 0)
        s->secrets_purged = 0;
out:
    st_unlock(s);
    return rc;
}

int store_run_cancel(struct store *s, int64_t id, int *ended, int64_t *launcher)
{
    struct run_row r;
    *ended = 0;
    *launcher = 0;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    if ((rc = run_row_get(s, id, &r, ROW_FOR_WRITE)) < 0)
        goto done;
    if (is_terminal(r.state)) {
        rc = STORE_CONFLICT;
        goto done;
    }
    if (strcmp(r.state, "queued") == 0) {
        if ((rc = run_end(s, id, "canceled", "canceled before it started", -1)) < 0)
            goto done;
        *ended = 1;
    } else {
        *launcher = r.launcher_id;
        if (!r.cancel_requested) {
            struct st_stmt *st = st_stmt(s, "UPDATE runs SET cancel_requested = 1 WHERE id = ?");
            if (!st) {
                rc = STORE_ERR;
                goto done;
            }
            st_bind_i64(s, st, 1, id);
            if ((rc = st_done(s, st)) < 0 ||
                (rc = st_message(s, r.launcher_id, "cancel", id, 0)) < 0)
                goto done;
        }
    }
done:
    return st_end(s, rc);
}

/* Each binds the run's id. The log chunks go later, in batches (log_purge). */
static const char *const run_delete_sql[] = {
    "INSERT INTO log_purge(run_id) VALUES(?) ON CONFLICT DO NOTHING",
    "DELETE FROM messages WHERE run_id = ?",
    "DELETE FROM runs WHERE id = ?",
};

int store_run_delete(struct store *s, int64_t id)
{
    struct run_row r;
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    if ((rc = run_row_get(s, id, &r, ROW_FOR_WRITE)) < 0)
        goto done;
    if (!is_terminal(r.state)) {
        rc = STORE_CONFLICT;
        goto done;
    }
    for (size_t i = 0; i < sizeof(run_delete_sql) / sizeof(run_delete_sql[0]) && rc == STORE_OK;
         i++) {
        struct st_stmt *st = st_stmt(s, run_delete_sql[i]);
        if (!st) {
            rc = STORE_ERR;
            break;
        }
        st_bind_i64(s, st, 1, id);
        rc = st_done(s, st);
    }
    if (rc == STORE_OK)
        st_waiting_set(s, id, 0);
done:
    return st_end(s, rc);
}

static const char event_preparing_sql[] =
    "UPDATE runs SET state = 'preparing', started_ms = ?1 WHERE id = ?2";
static const char event_running_sql[] =
    "UPDATE runs"
    "   SET state = 'running', phase = ?3, started_ms = coalesce(started_ms, ?1)"
    " WHERE id = ?2";

static int event_apply(struct store *s, int64_t run_id, const struct run_row *r,
                       const struct store_event *ev)
{
    struct st_stmt *st;
    if (strcmp(ev->type, "result") == 0)
        return run_end(s, run_id, ev->outcome, ev->reason, ev->exit_code);
    if (strcmp(ev->type, "preparing") == 0) {
        if (strcmp(r->state, "assigned") != 0)
            return STORE_OK; /* already past it */
        st = st_stmt(s, event_preparing_sql);
    } else {
        st = st_stmt(s, event_running_sql);
        if (st)
            st_bind_text(s, st, 3, ev->phase);
    }
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, store_now_ms());
    st_bind_i64(s, st, 2, run_id);
    return st_done(s, st);
}

/*
 * Begins a write on a run that launcher_id must own: takes the lock, begins,
 * reads the run into r. On failure (no such run, another launcher's) it has
 * already ended the transaction and returns the error.
 */
static int begin_owned(struct store *s, int64_t launcher_id, int64_t run_id, struct run_row *r)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    if ((rc = run_row_get(s, run_id, r, ROW_FOR_WRITE)) == STORE_OK &&
        r->launcher_id != launcher_id)
        rc = STORE_FORBIDDEN;
    return rc < 0 ? st_end(s, rc) : rc;
}

int store_run_event(struct store *s, int64_t launcher_id, int64_t run_id,
                    const struct store_event *ev, char *state_out)
{
    struct run_row r;
    int rc = begin_owned(s, launcher_id, run_id, &r);
    if (rc < 0)
        return rc;
    if (ev->seq <= r.event_seq) {
        /* A retry of an event already applied: acknowledge it again. */
        snprintf(state_out, STORE_STATE_SIZE, "%s", r.state);
        goto done;
    }
    if (is_terminal(r.state)) {
        snprintf(state_out, STORE_STATE_SIZE, "%s", r.state);
        rc = STORE_CONFLICT;
        goto done;
    }
    if ((rc = event_apply(s, run_id, &r, ev)) < 0)
        goto done;
    struct st_stmt *st = st_stmt(s, "UPDATE runs SET event_seq = ? WHERE id = ? RETURNING state");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, ev->seq);
    st_bind_i64(s, st, 2, run_id);
    if (st_step(s, st) != ST_ROW) {
        st_fail(s, "run event");
        st_finish(s, st);
        rc = STORE_ERR;
        goto done;
    }
    st_col_copy(s, st, 0, state_out, STORE_STATE_SIZE);
    st_finish(s, st);
done:
    return st_end(s, rc);
}

/* True when data is a whole number of well-formed spool records. */
static int spool_whole(const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct spool_record rec;
        ssize_t n = spool_parse(data + off, len - off, &rec);
        if (n <= 0)
            return 0;
        off += (size_t)n;
    }
    return 1;
}

static const char log_insert_sql[] = "INSERT INTO log_chunks(run_id, off, data) VALUES(?,?,?)";

static int log_insert(struct store *s, int64_t run_id, int64_t off, const char *data, size_t len)
{
    while (len > 0) {
        size_t n = len < STORE_LOG_ROW_MAX ? len : STORE_LOG_ROW_MAX;
        struct st_stmt *st = st_stmt(s, log_insert_sql);
        if (!st)
            return STORE_ERR;
        st_bind_i64(s, st, 1, run_id);
        st_bind_i64(s, st, 2, off);
        st_bind_blob(s, st, 3, data, n);
        int rc = st_done(s, st);
        if (rc < 0)
            return rc;
        off += (int64_t)n;
        data += n;
        len -= n;
    }
    return STORE_OK;
}

int store_log_append(struct store *s, int64_t launcher_id, int64_t run_id, int64_t offset,
                     const void *data, size_t len, int64_t max_bytes, int64_t *next_offset)
{
    struct run_row r;
    int64_t end = offset + (int64_t)len, stored;
    *next_offset = 0;
    int rc = begin_owned(s, launcher_id, run_id, &r);
    if (rc < 0)
        return rc;
    stored = r.log_bytes;
    if (r.log_deleted) {
        /* Retention deleted this ended run's log: a late upload is
         * acknowledged and dropped, so that its launcher stops sending. */
        stored = end;
        goto done;
    }
    if (offset > r.log_bytes) {
        rc = STORE_GAP;
        goto done;
    }
    if (end <= r.log_bytes)
        goto done; /* all of it is stored already */
    if (is_terminal(r.state)) {
        /* The result is stored: what the log says is final. A launcher
         * ships its spool before it reports the result, so only a broken or
         * hostile one gets here. */
        rc = STORE_ENDED;
        goto done;
    }
    const char *fresh = (const char *)data + (r.log_bytes - offset);
    size_t fresh_len = (size_t)(end - r.log_bytes);
    if (!spool_whole(fresh, fresh_len)) {
        rc = STORE_CONFLICT;
        goto done;
    }
    if (end > max_bytes) {
        rc = STORE_FULL;
        goto done;
    }
    if ((rc = log_insert(s, run_id, r.log_bytes, fresh, fresh_len)) < 0)
        goto done;
    struct st_stmt *st = st_prep(s, "UPDATE runs SET log_bytes = ? WHERE id = ?");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, end);
    st_bind_i64(s, st, 2, run_id);
    if ((rc = st_done(s, st)) < 0)
        goto done;
    stored = end;
done:
    rc = st_end(s, rc);
    *next_offset = rc == STORE_OK ? stored : r.log_bytes;
    if (rc == STORE_OK || rc == STORE_NOSPACE) {
        /* What the run's JSON shows (log_waiting): the last upload's fate. */
        st_lock_dirty(s);
        st_waiting_set(s, run_id, rc == STORE_NOSPACE);
        st_unlock(s);
    }
    return rc;
}

/* The rows that hold bytes from offset ?2 on: from the last one that starts
 * at or before it (the primary key finds it), without loading their data. */
static const char log_read_sql[] =
    "SELECT off, length(data)"
    "  FROM log_chunks"
    " WHERE run_id = ?1"
    "   AND off >= coalesce((SELECT max(off) FROM log_chunks WHERE run_id = ?1 AND off <= ?2), 0)"
    " ORDER BY off";

/* Where a log read puts its bytes: into buf when it is set (it holds the
 * read's max), else appended to out. */
struct log_dest {
    char *buf;
    struct dbuf *out;
    size_t taken;
};

static int log_sink(void *arg, const void *p, size_t n)
{
    return dbuf_add(arg, p, n);
}

/* Copies want bytes from skip on of the log row at off to d, straight into d->buf when it has
 * one (the driver reads only the bytes asked for: drv->log_read). */
static int log_row_read(struct store *s, int64_t run_id, int64_t off, size_t skip, size_t want,
                        struct log_dest *d)
{
    int rc = s->drv->log_read(s, run_id, off, skip, want, d->buf ? d->buf + d->taken : NULL,
                              log_sink, d->out);
    if (rc == -1)
        return st_fail(s, "log read");
    if (rc < 0)
        return STORE_ERR;
    d->taken += want;
    return STORE_OK;
}

/* Reads the run's row, then at most max bytes of its log from offset into d. */
static int log_read(struct store *s, int64_t run_id, int64_t offset, size_t max, struct log_dest *d,
                    int64_t *total, int *ended, char *state_out)
{
    struct run_row r;
    st_lock(s);
    int rc = run_row_get(s, run_id, &r, ROW_READ);
    if (rc < 0)
        goto out;
    *total = r.log_bytes;
    *ended = is_terminal(r.state);
    if (state_out)
        snprintf(state_out, STORE_STATE_SIZE, "%s", r.state);
    if (max == 0 || offset >= r.log_bytes)
        goto out; /* only the run's state and size were asked for, or nothing is new */
    struct st_stmt *st = st_prep(s, log_read_sql);
    if (!st) {
        rc = STORE_ERR;
        goto out;
    }
    st_bind_i64(s, st, 1, run_id);
    st_bind_i64(s, st, 2, offset);
    int step = ST_DONE;
    while (d->taken < max && (step = st_step(s, st)) == ST_ROW) {
        int64_t off = st_col_i64(s, st, 0);
        size_t n = (size_t)st_col_i64(s, st, 1);
        size_t skip = offset > off ? (size_t)(offset - off) : 0;
        if (skip >= n)
            continue;
        size_t want = n - skip;
        if (want > max - d->taken)
            want = max - d->taken;
        if ((rc = log_row_read(s, run_id, off, skip, want, d)) < 0)
            break;
    }
    /* A failed step must not pass for the end of the log: a follow would
     * silently skip bytes. */
    if (rc == STORE_OK && step != ST_ROW && step != ST_DONE) {
        st_fail(s, "log read");
        rc = STORE_ERR;
    }
    st_finish(s, st);
out:
    st_unlock(s);
    return rc;
}

int store_log_read(struct store *s, int64_t run_id, int64_t offset, size_t max, struct dbuf *out,
                   int64_t *total, int *ended, char *state_out)
{
    struct log_dest d = {NULL, out, 0};
    return log_read(s, run_id, offset, max, &d, total, ended, state_out);
}

int store_log_read_into(struct store *s, int64_t run_id, int64_t offset, char *buf, size_t max,
                        size_t *got, int64_t *total, int *ended)
{
    struct log_dest d = {buf, NULL, 0};
    int rc = log_read(s, run_id, offset, max, &d, total, ended, NULL);
    *got = rc == STORE_OK ? d.taken : 0;
    return rc;
}
