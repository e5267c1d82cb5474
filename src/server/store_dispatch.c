/*
 * Dispatch: the messages queued for launchers, the poll that delivers them
 * and claims queued runs, and lease expiry (the reaper).
 */
#include "server/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char message_insert_sql[] =
    "INSERT INTO messages(launcher_id, type, run_id, deadline_ms, created_ms)"
    " VALUES(?, ?, ?, ?, ?)";

int st_message(struct store *s, int64_t launcher_id, const char *type, int64_t run_id,
               int64_t deadline_ms)
{
    struct st_stmt *st = st_stmt(s, message_insert_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, launcher_id);
    st_bind_text(s, st, 2, type);
    if (run_id > 0)
        st_bind_i64(s, st, 3, run_id);
    if (deadline_ms > 0)
        st_bind_i64(s, st, 4, deadline_ms);
    st_bind_i64(s, st, 5, store_now_ms());
    return st_done(s, st);
}

/*
 * The pending messages one poll returns at most: a launcher gets the rest
 * at its next poll (it acks these first). Bounds the reply and the time the
 * poll holds the store's lock; far above what a launcher's capacity
 * (STORE_CLAIMS_MAX runs) and a few control messages make.
 */
#define MESSAGES_PER_POLL 100

struct launcher_row {
    char pool_id[STORE_POOL_ID_SIZE];
    char arch[16];
    int64_t capacity, active;
    int draining, cycling, revoked;
    int ephemeral; /* launchers.ephemeral: 1 may take its one run, 2 has had it */
};

static const char launcher_row_sql[] =
    "SELECT pool_id, arch, capacity, draining,"
    "       CASE WHEN cycle_deadline_ms IS NOT NULL THEN 1 ELSE 0 END, revoked,"
    "       (SELECT count(*)"
    "          FROM runs r"
    "         WHERE r.launcher_id = l.id AND r.state IN " ST_ON_LAUNCHER "),"
    "       ephemeral"
    "  FROM launchers l"
    " WHERE id = ?";

/*
 * On PostgreSQL (drv->row_lock) the claim and the poll first lock the launcher's row, in a
 * statement of its own: an admin's drain (or a pool cycle, a reset, an exit) committing on
 * another server is waited for, and the read after it, a new statement, sees what that one
 * committed, runs claimed for this launcher by another server included (its active count).
 * Without it a claim that read "not draining" while another server's drain was committing
 * started a run on a launcher the admin was told was drained.
 */
static const char launcher_lock_sql[] = "SELECT id FROM launchers WHERE id = ? FOR UPDATE";

static int launcher_row_get(struct store *s, int64_t id, struct launcher_row *l)
{
    struct st_stmt *st;
    if (s->drv->row_lock[0]) {
        if (!(st = st_stmt(s, launcher_lock_sql)))
            return STORE_ERR;
        st_bind_i64(s, st, 1, id);
        int rc = st_step_one(s, st, "launcher lock");
        st_finish(s, st);
        if (rc < 0)
            return rc;
    }
    st = st_stmt(s, launcher_row_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, id);
    int rc = st_step_one(s, st, "launcher get");
    if (rc == STORE_OK) {
        st_col_copy(s, st, 0, l->pool_id, sizeof(l->pool_id));
        st_col_copy(s, st, 1, l->arch, sizeof(l->arch));
        l->capacity = st_col_i64(s, st, 2);
        l->draining = st_col_int(s, st, 3);
        l->cycling = st_col_int(s, st, 4);
        l->revoked = st_col_int(s, st, 5);
        l->active = st_col_i64(s, st, 6);
        l->ephemeral = st_col_int(s, st, 7);
    }
    st_finish(s, st);
    return rc;
}

/* The claim's statement: the subquery ends with the driver's lock clause (drv->claim_lock), so
 * that servers sharing a database never claim one run twice; the outer state check keeps it
 * right under any isolation. */
static const char claim_sql_fmt[] = "UPDATE runs"
                                    "   SET state = 'assigned', launcher_id = ?1, assigned_ms = ?2,"
                                    "       attempts = attempts + 1"
                                    " WHERE id = (SELECT id"
                                    "               FROM runs"
                                    "              WHERE pool_id = ?3 AND state = 'queued'"
                                    "              ORDER BY id"
                                    "              LIMIT 1%s)"
                                    "   AND state = 'queued'"
                                    " RETURNING id, queued_ms";

/* The claim's statement for this store's driver (made once, under the lock; it lives as long as
 * the store, so it may key a kept statement). NULL when it does not fit (logged). */
static const char *claim_sql(struct store *s)
{
    if (!s->claim_sql[0]) {
        int n = snprintf(s->claim_sql, sizeof(s->claim_sql), claim_sql_fmt, s->drv->claim_lock);
        if (n < 0 || (size_t)n >= sizeof(s->claim_sql)) {
            s->claim_sql[0] = '\0';
            st_fail(s, "claim run: statement too long");
            return NULL;
        }
    }
    return s->claim_sql;
}

/* Claims the oldest queued run of the pool for the launcher: FIFO per pool. */
static int claim_one(struct store *s, int64_t launcher_id, const char *pool_id, int64_t *run_id_out,
                     int64_t *dispatch_ms)
{
    int64_t now = store_now_ms();
    const char *sql = claim_sql(s);
    struct st_stmt *st = sql ? st_stmt(s, sql) : NULL;
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, launcher_id);
    st_bind_i64(s, st, 2, now);
    st_bind_text(s, st, 3, pool_id);
    int64_t run_id = 0;
    int step = st_step(s, st);
    if (step == ST_ROW) {
        run_id = st_col_i64(s, st, 0);
        *dispatch_ms = now - st_col_i64(s, st, 1);
        step = st_step(s, st);
    }
    st_finish(s, st);
    if (step != ST_DONE) {
        st_fail(s, "claim run");
        return STORE_ERR;
    }
    if (run_id == 0)
        return STORE_NOTFOUND;
    *run_id_out = run_id;
    return st_message(s, launcher_id, "run", run_id, 0);
}

static const char run_message_sql[] =
    "SELECT r.spec_json, r.secrets_json, r.attempts, p.name"
    "  FROM runs r"
    "  JOIN pools p ON p.id = r.pool_id"
    " WHERE r.id = ? AND r.launcher_id = ? AND r.state IN " ST_ON_LAUNCHER;

/* The "run" message's body: the spec with its secrets, and the worker to use. */
static json_t *run_message(struct store *s, int64_t launcher_id, int64_t run_id, const char *arch)
{
    json_t *msg = NULL, *spec = NULL, *secrets = NULL, *worker = NULL;
    struct st_stmt *st = st_stmt(s, run_message_sql);
    if (!st)
        return NULL;
    st_bind_i64(s, st, 1, run_id);
    st_bind_i64(s, st, 2, launcher_id);
    if (st_step(s, st) != ST_ROW)
        goto out;
    spec = json_loads(st_col_text(s, st, 0), 0, NULL);
    if (!spec)
        goto out;
    if (!st_col_null(s, st, 1)) {
        secrets = json_loads(st_col_text(s, st, 1), 0, NULL);
        if (!secrets || json_object_set_new(spec, "secrets", secrets) < 0)
            goto out;
    }
    char pool[sizeof(((struct store_pool *)0)->name)];
    st_col_copy(s, st, 3, pool, sizeof(pool));
    int64_t attempt = st_col_i64(s, st, 2);
    st_finish(s, st);
    st = NULL;
    struct store_release r;
    if (st_release_latest(s, "worker", arch, &r) == STORE_OK)
        worker = store_release_json(&r);
    msg = json_pack("{s:s, s:{s:I, s:s, s:I, s:O}, s:O}", "type", "run", "run", "id",
                    (json_int_t)run_id, "pool", pool, "attempt", (json_int_t)attempt, "spec", spec,
                    "worker", worker ? worker : json_null());
out:
    st_finish(s, st);
    json_decref(spec);
    json_decref(worker);
    return msg;
}

static const char pending_sql[] = "SELECT id, type, run_id, deadline_ms,"
                                  "       davit_iso(deadline_ms)"
                                  "  FROM messages"
                                  " WHERE launcher_id = ?"
                                  " ORDER BY id"
                                  " LIMIT ?";

/* Builds the pending messages; drops run messages whose run moved on. */
static int pending_messages(struct store *s, int64_t launcher_id, const char *arch, json_t *arr)
{
    struct st_stmt *st = st_stmt(s, pending_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, launcher_id);
    st_bind_int(s, st, 2, MESSAGES_PER_POLL);
    int step;
    while ((step = st_step(s, st)) == ST_ROW) {
        int64_t id = st_col_i64(s, st, 0);
        const char *type = st_col_text(s, st, 1);
        int64_t run_id = st_col_i64(s, st, 2);
        json_t *m;
        if (strcmp(type, "run") == 0) {
            m = run_message(s, launcher_id, run_id, arch);
            if (!m)
                continue; /* requeued or ended meanwhile; acked with the next ones */
        } else if (strcmp(type, "cancel") == 0) {
            m = json_pack("{s:s, s:I}", "type", type, "run_id", (json_int_t)run_id);
        } else if (strcmp(type, "cycle") == 0) {
            m = json_pack("{s:s, s:s, s:I}", "type", type, "deadline", st_col_text(s, st, 4),
                          "deadline_ms", (json_int_t)st_col_i64(s, st, 3));
        } else if (strcmp(type, "exit") == 0) {
            m = json_pack("{s:s, s:s}", "type", type, "reason", "the pool's token was reset");
        } else {
            m = json_pack("{s:s}", "type", type);
        }
        if (!m || json_object_set_new(m, "id", json_integer(id)) < 0 ||
            json_array_append_new(arr, m) < 0) {
            st_finish(s, st);
            return STORE_ERR;
        }
    }
    st_finish(s, st);
    return step == ST_DONE ? STORE_OK : STORE_ERR;
}

static const char give_back_sql[] =
    "UPDATE runs"
    "   SET state = 'queued', launcher_id = NULL, assigned_ms = NULL"
    " WHERE launcher_id = ? AND state = 'assigned' AND cancel_requested = 0";

static const char give_back_messages_sql[] =
    "DELETE FROM messages"
    " WHERE launcher_id = ?1 AND type = 'run'"
    "   AND run_id NOT IN (SELECT id FROM runs WHERE launcher_id = ?1)";

/* A stopping launcher's assigned, unstarted runs go back to the queue now
 * rather than when its lease ends, which a draining launcher never lets
 * happen since it keeps polling. */
static int give_back(struct store *s, int64_t launcher_id, int *requeued)
{
    int rc;
    struct st_stmt *st = st_stmt(s, give_back_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, launcher_id);
    if ((rc = st_done(s, st)) < 0)
        return rc;
    *requeued = st_changes(s);
    st = st_stmt(s, give_back_messages_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, launcher_id);
    return st_done(s, st);
}

static const char ephemeral_spent_sql[] = "UPDATE launchers SET ephemeral = 2 WHERE id = ?";

/*
 * Claims queued runs of the launcher's pool up to its free capacity. An
 * ephemeral launcher gets one run in its life: marked spent in the claim's
 * transaction, so that no later poll, restart or second session claims again.
 */
static int claim_runs(struct store *s, int64_t launcher_id, struct launcher_row *l,
                      struct store_claims *claimed, int max)
{
    while (l->active < l->capacity && claimed->n < max && l->ephemeral != 2) {
        int rc = claim_one(s, launcher_id, l->pool_id, &claimed->run_id[claimed->n],
                           &claimed->dispatch_ms[claimed->n]);
        if (rc == STORE_NOTFOUND)
            break;
        if (rc < 0)
            return rc;
        claimed->n++;
        l->active++;
        if (l->ephemeral == 1) {
            struct st_stmt *st = st_stmt(s, ephemeral_spent_sql);
            if (!st)
                return STORE_ERR;
            st_bind_i64(s, st, 1, launcher_id);
            if ((rc = st_done(s, st)) < 0)
                return rc;
            l->ephemeral = 2;
        }
    }
    return STORE_OK;
}

int st_claim_for(struct store *s, int64_t launcher_id, const char *pool_id,
                 struct store_claims *claimed)
{
    struct launcher_row l;
    int rc = launcher_row_get(s, launcher_id, &l);
    if (rc == STORE_NOTFOUND) /* forgotten meanwhile: the run stays queued */
        return STORE_OK;
    if (rc < 0)
        return rc;
    /* What store_poll checks, but the launcher's own drain: a poll that
     * drains never waits among the takers of runs. */
    if (strcmp(l.pool_id, pool_id) != 0 || l.draining || l.cycling || l.revoked || l.ephemeral == 2)
        return STORE_OK;
    return claim_runs(s, launcher_id, &l, claimed, 1);
}

static const char ack_sql[] = "DELETE FROM messages WHERE launcher_id = ? AND id <= ?";

int store_poll(struct store *s, int64_t launcher_id, int64_t ack, int draining, json_t **messages,
               struct store_claims *claimed, int *requeued)
{
    struct launcher_row l;
    json_t *arr = json_array();
    claimed->n = 0;
    claimed->room = 0;
    *requeued = 0;
    if (!arr)
        return STORE_ERR;
    int rc = st_begin_locked(s);
    if (rc < 0)
        goto out;
    struct st_stmt *st = st_stmt(s, ack_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_i64(s, st, 1, launcher_id);
    st_bind_i64(s, st, 2, ack);
    if ((rc = st_done(s, st)) < 0 || (draining && (rc = give_back(s, launcher_id, requeued)) < 0) ||
        (rc = launcher_row_get(s, launcher_id, &l)) < 0)
        goto done;
    /* A launcher's own drain is not stored: it ends with the process, while
     * an admin's drain (l.draining) outlives restarts. */
    int may_claim = !draining && !l.draining && !l.cycling && !l.revoked && l.ephemeral != 2;
    if (may_claim && (rc = claim_runs(s, launcher_id, &l, claimed, STORE_CLAIMS_MAX)) < 0)
        goto done;
    claimed->room = may_claim && l.active < l.capacity;
    rc = pending_messages(s, launcher_id, l.arch, arr);
    /* A spent ephemeral launcher with nothing left (restarted after its run, or its run
     * requeued before it got it) is told so on every poll, and exits (docs/protocol.md). */
    if (rc == STORE_OK && l.ephemeral == 2 && l.active == 0 &&
        json_array_append_new(arr, json_pack("{s:s, s:i}", "type", "spent", "id", 0)) < 0)
        rc = STORE_ERR;
done:
    if ((rc = st_end(s, rc)) == STORE_OK) {
        *messages = arr;
        arr = NULL;
    }
out:
    json_decref(arr);
    return rc;
}

/*
 * The reaper's steps, in order. Each binds ?1 to its cutoff (a launcher not
 * seen since is gone) and ?2 to now; "?1 = ?1" keeps a step that needs no
 * cutoff valid with both bound.
 */
/* A run canceled before its launcher started it needs no launcher to end. */
static const char reap_cancel_sql[] =
    "UPDATE runs"
    "   SET state = 'canceled', ended_ms = ?2, secrets_json = NULL,"
    "       reason = 'canceled before it started'"
    " WHERE state = 'assigned' AND cancel_requested <> 0"
    "   AND launcher_id IN (SELECT id FROM launchers WHERE davit_seen(id) < ?1)"
    " RETURNING id";

static const char reap_requeue_sql[] =
    "UPDATE runs"
    "   SET state = 'queued', launcher_id = NULL, assigned_ms = NULL, queued_ms = ?2"
    " WHERE state = 'assigned'"
    "   AND launcher_id IN (SELECT id FROM launchers WHERE davit_seen(id) < ?1)"
    " RETURNING id";

static const char reap_lost_sql[] =
    "UPDATE runs"
    "   SET state = 'lost', ended_ms = ?2, secrets_json = NULL,"
    "       reason = 'the launcher was not seen within the lease and grace period'"
    " WHERE state IN ('preparing', 'running')"
    "   AND launcher_id IN (SELECT id FROM launchers WHERE davit_seen(id) < ?1)"
    " RETURNING id";

static const char reap_messages_sql[] =
    "DELETE FROM messages"
    " WHERE type = 'run'"
    "   AND run_id NOT IN (SELECT id FROM runs WHERE state IN " ST_ON_LAUNCHER ")"
    "   AND ?1 = ?1 AND ?2 = ?2";

static const char reap_sessions_sql[] = "DELETE FROM sessions WHERE expires_ms < ?2 AND ?1 = ?1";

/*
 * How stale a launcher's persisted last-seen time may grow before the reaper copies the one kept
 * in memory (st_seen_persist): far below the day after which a launcher is gone, and rare
 * enough that each launcher's row is written at most once an hour.
 */
#define SEEN_PERSIST_MS (3600LL * 1000)

int store_reap(struct store *s, int64_t lease_ms, int64_t grace_ms, struct store_reap *r)
{
    int64_t now = store_now_ms();
    int canceled = 0;
    memset(r, 0, sizeof(*r));
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct {
        const char *sql;
        int64_t cutoff;
        int *count;
        int64_t *ids;
        int unseal; /* the runs it ends: their specs lose the sealed block */
    } steps[] = {
        {reap_cancel_sql, now - lease_ms, &canceled, NULL, 1},
        {reap_requeue_sql, now - lease_ms, &r->requeued, r->requeued_ids, 0},
        {reap_lost_sql, now - lease_ms - grace_ms, &r->lost, r->lost_ids, 1},
        {reap_messages_sql, 0, NULL, NULL, 0},
        {reap_sessions_sql, 0, NULL, NULL, 0},
    };
    struct st_ids ended = {0};
    /* First: with a shared driver, the times this server saw are what every server's
     * davit_seen reads. */
    if ((rc = st_seen_persist(s, s->drv->shared ? ST_SEEN_SHARED_MS : SEEN_PERSIST_MS)) < 0)
        goto done;
    /* Several servers on one database: one expires leases at a time (the others' sweeps only
     * write their launchers' times, below). */
    int expire = s->drv->reaper_lock(s);
    if (expire < 0) {
        rc = st_fail(s, "reaper lock");
        goto done;
    }
    for (size_t i = 0; expire && i < sizeof(steps) / sizeof(steps[0]); i++) {
        /* A shared database: every launcher counts as seen at up_since_ms at least (the
         * server's start, or the database's return), as SQLite counts one not seen since the
         * open: the times written before a downtime prove nothing (store_int.h). */
        if (s->drv->shared && steps[i].cutoff && s->up_since_ms >= steps[i].cutoff)
            continue;
        struct st_stmt *st = st_stmt(s, steps[i].sql);
        if (!st) {
            rc = STORE_ERR;
            goto done;
        }
        st_bind_i64(s, st, 1, steps[i].cutoff);
        st_bind_i64(s, st, 2, now);
        int step, n = 0;
        while ((step = st_step(s, st)) == ST_ROW) {
            if (steps[i].ids && n < STORE_REAP_IDS)
                steps[i].ids[n] = st_col_i64(s, st, 0);
            if (steps[i].unseal && st_ids_add(&ended, st_col_i64(s, st, 0)) < 0)
                break; /* out of memory: step stays ST_ROW, an error */
            n++;
        }
        if (step < 0)
            st_fail(s, "reap");
        st_finish(s, st);
        if (step != ST_DONE) {
            rc = STORE_ERR;
            goto done;
        }
        if (steps[i].count)
            *steps[i].count = n;
    }
    if (canceled || r->lost)
        s->secrets_purged = 1; /* both set secrets_json = NULL */
    rc = st_ids_unseal(s, &ended);
done:
    free(ended.v);
    return st_end(s, rc);
}
