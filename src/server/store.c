#include "server/store_int.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/time.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pools(id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " keytype TEXT NOT NULL, pubkey_pem TEXT NOT NULL, secret_hash TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, reset_ms INTEGER, cycled_ms INTEGER);"
    "CREATE TABLE IF NOT EXISTS launchers(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " pool_id TEXT NOT NULL, hostname TEXT NOT NULL, version TEXT NOT NULL, arch TEXT NOT NULL,"
    " capacity INTEGER NOT NULL, metadata_json TEXT NOT NULL, registered_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL, draining INTEGER NOT NULL DEFAULT 0,"
    " cycle_deadline_ms INTEGER, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS sessions(token_hash TEXT PRIMARY KEY,"
    " launcher_id INTEGER NOT NULL, pool_id TEXT NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS challenges(id TEXT PRIMARY KEY, pool_id TEXT NOT NULL,"
    " nonce TEXT NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " pool_id TEXT NOT NULL, state TEXT NOT NULL, phase TEXT, spec_json TEXT NOT NULL,"
    " secrets_json TEXT, launcher_id INTEGER, created_ms INTEGER NOT NULL,"
    " queued_ms INTEGER NOT NULL, assigned_ms INTEGER, started_ms INTEGER, ended_ms INTEGER,"
    " reason TEXT, exit_code INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " event_seq INTEGER NOT NULL DEFAULT 0, log_bytes INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, log_deleted_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS runs_queue ON runs(pool_id, state, id);"
    "CREATE INDEX IF NOT EXISTS runs_launcher ON runs(launcher_id, state);"
    "CREATE TABLE IF NOT EXISTS log_chunks(run_id INTEGER NOT NULL, off INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY(run_id, off));"
    /* Runs deleted (or whose logs were) with log chunks still to free: the
     * chunks go in small batches, never in the request that deleted them. */
    "CREATE TABLE IF NOT EXISTS log_purge(run_id INTEGER PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " launcher_id INTEGER NOT NULL, type TEXT NOT NULL, run_id INTEGER, deadline_ms INTEGER,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_launcher ON messages(launcher_id, id);"
    "CREATE TABLE IF NOT EXISTS releases(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, arch TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " signature TEXT NOT NULL, size INTEGER NOT NULL, created_ms INTEGER NOT NULL);";

int64_t store_now_ms(void)
{
    return clock_wall_ms();
}

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

static const char *const reason_names[ST_R_COUNT] = {"full", "io", "busy", "corrupt", "other"};

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

int store_degraded(struct store *s, const char **reason)
{
    st_lock(s);
    int full = s->full;
    st_unlock(s);
    *reason = full ? STORE_NOSPACE_TEXT : NULL;
    return full;
}

int store_errors_render(struct store *s, struct dbuf *out)
{
    uint64_t n[ST_R_COUNT];
    st_lock(s);
    memcpy(n, s->errors, sizeof(n));
    st_unlock(s);
    dbuf_printf(out, "# HELP davit_store_errors_total Database failures by reason"
                     " (full: no space left on the data directory's filesystem).\n"
                     "# TYPE davit_store_errors_total counter\n");
    for (int i = 0; i < ST_R_COUNT; i++)
        dbuf_printf(out, "davit_store_errors_total{reason=\"%s\"} %llu\n", reason_names[i],
                    (unsigned long long)n[i]);
    return 0;
}

void store_space_probe(struct store *s, int64_t min_free)
{
    const char *why;
    struct statvfs vfs;
    if (!store_degraded(s, &why) || statvfs(sqlite3_db_filename(s->db, "main"), &vfs) < 0 ||
        (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize < min_free)
        return;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)store_now_ms());
    store_meta_set(s, "space_probe_ms", now);
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

int st_begin(struct store *s)
{
    int rc = st_exec(s, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        s->changes_at_begin = sqlite3_total_changes64(s->db);
    return rc;
}

int st_commit(struct store *s)
{
    int rc = st_exec(s, "COMMIT");
    if (rc < 0) {
        st_rollback(s);
        return rc;
    }
    /* A transaction that wrote nothing commits even on a full disk. */
    if (sqlite3_total_changes64(s->db) > s->changes_at_begin)
        write_succeeded(s);
    return STORE_OK;
}

void st_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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

int st_end(struct store *s, int rc)
{
    /* Some paths only keep STORE_ERR: the cause is not lost. */
    if (rc == STORE_ERR && last_nospace)
        rc = STORE_NOSPACE;
    if (rc >= 0)
        rc = st_commit(s);
    else
        st_rollback(s);
    st_unlock(s);
    return rc;
}

int st_done(struct store *s, sqlite3_stmt *st)
{
    if (!st)
        return STORE_ERR;
    int rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : st_fail(s, sqlite3_sql(st));
    if (rc == STORE_OK && sqlite3_get_autocommit(s->db) && !sqlite3_stmt_readonly(st) &&
        sqlite3_changes64(s->db) > 0)
        write_succeeded(s);
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
                char key[64];
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

int st_message(struct store *s, int64_t launcher_id, const char *type, int64_t run_id,
               int64_t deadline_ms)
{
    sqlite3_stmt *st = st_prep(s, "INSERT INTO messages(launcher_id, type, run_id, deadline_ms,"
                                  " created_ms) VALUES(?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, launcher_id);
    st_bind_text(st, 2, type);
    if (run_id > 0)
        sqlite3_bind_int64(st, 3, run_id);
    if (deadline_ms > 0)
        sqlite3_bind_int64(st, 4, deadline_ms);
    sqlite3_bind_int64(st, 5, store_now_ms());
    return st_done(s, st);
}

/* The first column of sql's first row as an integer, or -1 on failure. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Runs sql at open; what names it in err. */
static int exec_or_err(sqlite3 *db, const char *path, const char *sql, const char *what, char *err,
                       size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(err, errsz, "store: %s: %s: %s", path, what ? what : sql, msg ? msg : "failed");
    sqlite3_free(msg);
    return -1;
}

/*
 * Deleted rows must give their space back to the filesystem, which needs
 * auto_vacuum=INCREMENTAL. A new database gets it before its first table;
 * one made by an older davit is rebuilt once with VACUUM (it needs free
 * space about the database's size: on failure the server still starts, and
 * tries again at its next start).
 */
static void enable_incremental_vacuum(sqlite3 *db, const char *path)
{
    if (query_int(db, "PRAGMA auto_vacuum") == 2)
        return;
    int64_t tables = query_int(db, "SELECT count(*) FROM sqlite_schema");
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, &msg) == SQLITE_OK &&
        tables > 0) {
        log_event(LOG_INFO, "store: converting the database for incremental vacuum (once)", "path",
                  path, NULL);
        sqlite3_exec(db, "VACUUM", NULL, NULL, &msg);
    }
    if (msg)
        log_event(LOG_WARN, "store: space of deleted runs is not returned to the filesystem",
                  "path", path, "reason", msg, NULL);
    sqlite3_free(msg);
}

int store_open(struct store **out, const char *path, char *err, size_t errsz)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsz, "store: out of memory");
        return STORE_ERR;
    }
    pthread_mutex_init(&s->mu, NULL);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errsz, "store: open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL survives a killed process; synchronous=FULL also survives power loss
     * for every acknowledged write. secure_delete overwrites removed secrets.
     * journal_size_limit: a WAL grown by one large transaction is cut back
     * after the next checkpoint instead of keeping its size forever. */
    static const char *pragmas[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                                    "PRAGMA foreign_keys=ON", "PRAGMA secure_delete=ON",
                                    "PRAGMA journal_size_limit=67108864"};
    /* Before journal_mode: on a new file, WAL mode writes the header, and
     * auto_vacuum could no longer be set without a VACUUM. */
    enable_incremental_vacuum(s->db, path);
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
        if (exec_or_err(s->db, path, pragmas[i], NULL, err, errsz) < 0)
            goto fail;
    if (exec_or_err(s->db, path, schema, "schema", err, errsz) < 0)
        goto fail;
    /* Databases from before log retention lack runs.log_deleted_ms. */
    if (query_int(s->db, "SELECT count(*) FROM pragma_table_info('runs')"
                         " WHERE name = 'log_deleted_ms'") == 0 &&
        exec_or_err(s->db, path, "ALTER TABLE runs ADD COLUMN log_deleted_ms INTEGER", NULL, err,
                    errsz) < 0)
        goto fail;
    /* The retention sweep walks runs by end time and sums their logs. */
    if (exec_or_err(s->db, path,
                    "CREATE INDEX IF NOT EXISTS runs_ended ON runs(ended_ms, log_bytes)", NULL, err,
                    errsz) < 0)
        goto fail;
    *out = s;
    return STORE_OK;
fail:
    store_close(s);
    return STORE_ERR;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_meta_get(struct store *s, const char *key, char **val)
{
    int rc = STORE_ERR;
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, "SELECT value FROM meta WHERE key = ?");
    if (!st)
        goto out;
    st_bind_text(st, 1, key);
    rc = st_step_one(s, st, "meta get");
    if (rc == STORE_OK) {
        *val = strdup((const char *)sqlite3_column_text(st, 0));
        rc = *val ? STORE_OK : STORE_ERR;
    }
    sqlite3_finalize(st);
out:
    st_unlock(s);
    return rc;
}

int store_meta_set(struct store *s, const char *key, const char *val)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(st, 1, key);
        st_bind_text(st, 2, val);
        rc = st_done(s, st);
    }
    st_unlock(s);
    return rc;
}

int store_session_check(struct store *s, const char *session_hash, struct store_session *out)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, "SELECT l.id, l.pool_id, l.revoked FROM sessions x"
                                  " JOIN launchers l ON l.id = x.launcher_id"
                                  " WHERE x.token_hash = ? AND x.expires_ms > ?");
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(st, 1, session_hash);
        sqlite3_bind_int64(st, 2, store_now_ms());
        rc = st_step_one(s, st, "session check");
        if (rc == STORE_OK) {
            out->launcher_id = sqlite3_column_int64(st, 0);
            st_col_copy(st, 1, out->pool_id, sizeof(out->pool_id));
            out->revoked = sqlite3_column_int(st, 2);
        }
        sqlite3_finalize(st);
    }
    st_unlock(s);
    return rc;
}

/* ---- runs waiting for space (in memory) ---- */

void st_waiting_set(struct store *s, int64_t run_id, int on)
{
    for (int i = 0; i < s->nwaiting; i++) {
        if (s->waiting[i] != run_id)
            continue;
        if (!on)
            s->waiting[i] = s->waiting[--s->nwaiting];
        return;
    }
    if (!on)
        return;
    /* Full: the oldest mark goes; a run still waiting is marked again by its
     * launcher's next upload. */
    if (s->nwaiting == ST_WAITING_MAX)
        memmove(s->waiting, s->waiting + 1, (size_t)--s->nwaiting * sizeof(s->waiting[0]));
    s->waiting[s->nwaiting++] = run_id;
}

int st_waiting(struct store *s, int64_t run_id)
{
    for (int i = 0; i < s->nwaiting; i++)
        if (s->waiting[i] == run_id)
            return 1;
    return 0;
}

int st_waiting_json(struct store *s, json_t *run)
{
    int64_t id = json_integer_value(json_object_get(run, "id"));
    return json_object_set_new(run, "log_waiting",
                               st_waiting(s, id) ? json_string(STORE_NOSPACE_TEXT) : json_null());
}

/* ---- pools ---- */

void store_pool_clear(struct store_pool *p)
{
    free(p->pubkey_pem);
    p->pubkey_pem = NULL;
}

int store_pool_create(struct store *s, struct store_pool *p)
{
    unsigned char raw[8];
    if (crypto_random(raw, sizeof(raw)) < 0)
        return STORE_ERR;
    snprintf(p->id, sizeof(p->id), "pool-%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2],
             raw[3], raw[4], raw[5], raw[6], raw[7]);
    int rc = STORE_ERR;
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, "INSERT INTO pools(id, name, keytype, pubkey_pem, secret_hash,"
                                  " created_ms) VALUES(?,?,?,?,?,?)");
    if (!st)
        goto out;
    st_bind_text(st, 1, p->id);
    st_bind_text(st, 2, p->name);
    st_bind_text(st, 3, p->keytype);
    st_bind_text(st, 4, p->pubkey_pem);
    st_bind_text(st, 5, p->secret_hash);
    sqlite3_bind_int64(st, 6, store_now_ms());
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        rc = STORE_OK;
    else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
        rc = STORE_CONFLICT;
    else
        st_fail(s, "pool create");
    sqlite3_finalize(st);
out:
    st_unlock(s);
    return rc;
}

int store_pool_get(struct store *s, const char *key, int by_id, struct store_pool *out)
{
    int rc = STORE_ERR;
    memset(out, 0, sizeof(*out));
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, by_id ? "SELECT id, name, keytype, secret_hash, pubkey_pem"
                                          " FROM pools WHERE id = ?"
                                        : "SELECT id, name, keytype, secret_hash, pubkey_pem"
                                          " FROM pools WHERE name = ?");
    if (!st)
        goto out;
    st_bind_text(st, 1, key);
    rc = st_step_one(s, st, "pool get");
    if (rc == STORE_OK) {
        st_col_copy(st, 0, out->id, sizeof(out->id));
        st_col_copy(st, 1, out->name, sizeof(out->name));
        st_col_copy(st, 2, out->keytype, sizeof(out->keytype));
        st_col_copy(st, 3, out->secret_hash, sizeof(out->secret_hash));
        out->pubkey_pem = strdup((const char *)sqlite3_column_text(st, 4));
        rc = out->pubkey_pem ? STORE_OK : STORE_ERR;
    }
    sqlite3_finalize(st);
out:
    st_unlock(s);
    return rc;
}

#define POOL_COLUMNS                                                                               \
    "SELECT p.id, p.name, p.keytype, " ST_TIME(                                                    \
        "p.created_ms") " AS created_at, "                                                         \
                        "(SELECT count(*) FROM runs r WHERE r.pool_id = p.id AND r.state = "       \
                        "'queued') AS pending, "                                                   \
                        "(SELECT count(*) FROM runs r WHERE r.pool_id = p.id AND r.state "         \
                        "IN " ST_ON_LAUNCHER ") AS active, "                                       \
                        "(SELECT count(*) FROM launchers l WHERE l.pool_id = p.id AND l.revoked "  \
                        "= 0) AS workers "                                                         \
                        "FROM pools p "

int store_pool_list_json(struct store *s, json_t **out)
{
    st_lock(s);
    int rc = st_rows_json(s, st_prep(s, POOL_COLUMNS "ORDER BY p.name"), out);
    st_unlock(s);
    return rc;
}

int store_pool_show_json(struct store *s, const char *name, json_t **out)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, POOL_COLUMNS "WHERE p.name = ?");
    if (st)
        st_bind_text(st, 1, name);
    int rc = st_row_one_json(s, st, out);
    st_unlock(s);
    return rc;
}

/* Looks the pool id up by name inside a transaction. */
static int pool_id_by_name(struct store *s, const char *name, char *id, size_t idsz)
{
    sqlite3_stmt *st = st_prep(s, "SELECT id FROM pools WHERE name = ?");
    if (!st)
        return STORE_ERR;
    st_bind_text(st, 1, name);
    int rc = st_step_one(s, st, "pool id");
    if (rc == STORE_OK)
        st_col_copy(st, 0, id, idsz);
    sqlite3_finalize(st);
    return rc;
}

static int exec_bound(struct store *s, const char *sql, const char *arg)
{
    sqlite3_stmt *st = st_prep(s, sql);
    if (!st)
        return STORE_ERR;
    st_bind_text(st, 1, arg);
    return st_done(s, st);
}

int store_pool_delete(struct store *s, const char *name)
{
    char id[40];
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = pool_id_by_name(s, name, id, sizeof(id));
    if (rc < 0)
        goto done;
    sqlite3_stmt *st =
        st_prep(s, "SELECT count(*) FROM runs WHERE pool_id = ? AND state IN " ST_ACTIVE_STATES);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, id);
    int64_t active = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (active != 0) {
        rc = active < 0 ? STORE_ERR : STORE_CONFLICT;
        goto done;
    }
    static const char *sqls[] = {
        /* Freed later in small batches (store_purge_logs), like a deleted run's. */
        "INSERT OR IGNORE INTO log_purge(run_id) SELECT id FROM runs WHERE pool_id = ?",
        "DELETE FROM runs WHERE pool_id = ?",
        "DELETE FROM messages WHERE launcher_id IN (SELECT id FROM launchers WHERE pool_id = ?)",
        "DELETE FROM sessions WHERE pool_id = ?",
        "DELETE FROM challenges WHERE pool_id = ?",
        "DELETE FROM launchers WHERE pool_id = ?",
        "DELETE FROM pools WHERE id = ?",
    };
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
        rc = exec_bound(s, sqls[i], id);
        if (rc < 0)
            goto done;
    }
done:
    return st_end(s, rc);
}

/* Launchers silent for longer than this are gone (an autoscaling group's old
 * machines): they get no more messages, and are not counted as told. */
#define LAUNCHER_GONE_MS (24LL * 3600 * 1000)

/* Queues a message of type for every unrevoked, recently seen launcher of pool id. */
static int message_pool(struct store *s, const char *pool_id, const char *type, int64_t deadline_ms,
                        int *count)
{
    sqlite3_stmt *st = st_prep(s, "INSERT INTO messages(launcher_id, type, deadline_ms, created_ms)"
                                  " SELECT id, ?, ?, ?3 FROM launchers"
                                  " WHERE pool_id = ? AND revoked = 0 AND last_seen_ms >= ?3 - ?5");
    if (!st)
        return STORE_ERR;
    st_bind_text(st, 1, type);
    if (deadline_ms > 0)
        sqlite3_bind_int64(st, 2, deadline_ms);
    sqlite3_bind_int64(st, 3, store_now_ms());
    st_bind_text(st, 4, pool_id);
    sqlite3_bind_int64(st, 5, LAUNCHER_GONE_MS);
    int rc = st_done(s, st);
    if (count)
        *count = sqlite3_changes(s->db);
    return rc;
}

int store_pool_reset(struct store *s, const char *name, const char *pubkey_pem, const char *keytype,
                     const char *secret_hash, char *pool_id_out)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = pool_id_by_name(s, name, pool_id_out, 40);
    if (rc < 0)
        goto done;
    sqlite3_stmt *st = st_prep(s, "UPDATE pools SET pubkey_pem = ?, keytype = ?, secret_hash = ?,"
                                  " reset_ms = ? WHERE id = ?");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, pubkey_pem);
    st_bind_text(st, 2, keytype);
    st_bind_text(st, 3, secret_hash);
    sqlite3_bind_int64(st, 4, store_now_ms());
    st_bind_text(st, 5, pool_id_out);
    if ((rc = st_done(s, st)) < 0 || (rc = message_pool(s, pool_id_out, "exit", 0, NULL)) < 0 ||
        (rc = exec_bound(s, "UPDATE launchers SET revoked = 1 WHERE pool_id = ?", pool_id_out)) <
            0 ||
        (rc = exec_bound(s, "DELETE FROM challenges WHERE pool_id = ?", pool_id_out)) < 0)
        goto done;
done:
    return st_end(s, rc);
}

int store_pool_cycle(struct store *s, const char *name, int64_t deadline_ms, char *pool_id_out,
                     int *count)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    rc = pool_id_by_name(s, name, pool_id_out, 40);
    if (rc < 0)
        goto done;
    if ((rc = message_pool(s, pool_id_out, "cycle", deadline_ms, count)) < 0)
        goto done;
    sqlite3_stmt *st = st_prep(s, "UPDATE launchers SET cycle_deadline_ms = ?"
                                  " WHERE pool_id = ? AND revoked = 0");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    sqlite3_bind_int64(st, 1, deadline_ms);
    st_bind_text(st, 2, pool_id_out);
    if ((rc = st_done(s, st)) < 0 ||
        (rc = exec_bound(s,
                         "UPDATE pools SET cycled_ms = strftime('%s','now') * 1000"
                         " WHERE id = ?",
                         pool_id_out)) < 0)
        goto done;
done:
    return st_end(s, rc);
}

/* ---- releases ---- */

int store_release_add(struct store *s, struct store_release *r)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, "INSERT INTO releases(kind, arch, version, sha256, signature,"
                                  " size, created_ms) VALUES(?,?,?,?,?,?,?)");
    int rc = STORE_ERR;
    if (st) {
        st_bind_text(st, 1, r->kind);
        st_bind_text(st, 2, r->arch);
        st_bind_text(st, 3, r->version);
        st_bind_text(st, 4, r->sha256);
        st_bind_text(st, 5, r->signature);
        sqlite3_bind_int64(st, 6, r->size);
        sqlite3_bind_int64(st, 7, store_now_ms());
        rc = st_done(s, st);
        if (rc == STORE_OK)
            r->id = sqlite3_last_insert_rowid(s->db);
    }
    st_unlock(s);
    return rc;
}

static int release_query(struct store *s, sqlite3_stmt *st, struct store_release *out)
{
    if (!st)
        return STORE_ERR;
    int rc = st_step_one(s, st, "release get");
    if (rc == STORE_OK) {
        out->id = sqlite3_column_int64(st, 0);
        st_col_copy(st, 1, out->kind, sizeof(out->kind));
        st_col_copy(st, 2, out->arch, sizeof(out->arch));
        st_col_copy(st, 3, out->version, sizeof(out->version));
        st_col_copy(st, 4, out->sha256, sizeof(out->sha256));
        st_col_copy(st, 5, out->signature, sizeof(out->signature));
        out->size = sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    return rc;
}

#define RELEASE_COLUMNS "SELECT id, kind, arch, version, sha256, signature, size FROM releases "

int store_release_latest(struct store *s, const char *kind, const char *arch,
                         struct store_release *out)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, RELEASE_COLUMNS "WHERE kind = ? AND arch = ?"
                                                  " ORDER BY id DESC LIMIT 1");
    if (st) {
        st_bind_text(st, 1, kind);
        st_bind_text(st, 2, arch);
    }
    int rc = release_query(s, st, out);
    st_unlock(s);
    return rc;
}

int store_release_get(struct store *s, int64_t id, struct store_release *out)
{
    st_lock(s);
    sqlite3_stmt *st = st_prep(s, RELEASE_COLUMNS "WHERE id = ?");
    if (st)
        sqlite3_bind_int64(st, 1, id);
    int rc = release_query(s, st, out);
    st_unlock(s);
    return rc;
}

int store_release_list_json(struct store *s, json_t **out)
{
    st_lock(s);
    int rc = st_rows_json(
        s,
        st_prep(s,
                "SELECT r.id, r.kind, r.arch, r.version, r.sha256, r.signature, r.size, " ST_TIME(
                    "r.created_ms") " AS created_at, r.id = (SELECT max(id) FROM releases x"
                                    " WHERE x.kind = r.kind AND x.arch = r.arch) AS latest,"
                                    " '/api/v1/releases/' || r.id || '/download' AS url"
                                    " FROM releases r ORDER BY r.id DESC"),
        out);
    st_unlock(s);
    if (rc == STORE_OK) {
        size_t i;
        json_t *row;
        json_array_foreach(*out, i, row)
        {
            json_object_set_new(row, "latest",
                                json_boolean(json_integer_value(json_object_get(row, "latest"))));
        }
    }
    return rc;
}

json_t *store_release_json(const struct store_release *r)
{
    char url[96];
    snprintf(url, sizeof(url), "/api/v1/releases/%lld/download", (long long)r->id);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", (json_int_t)r->id, "kind",
                     r->kind, "arch", r->arch, "version", r->version, "sha256", r->sha256,
                     "signature", r->signature, "size", (json_int_t)r->size, "url", url);
}
