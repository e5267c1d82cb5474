/*
 * The database's schema, as numbered, forward-only migrations, and the
 * code that applies them when the store opens.
 *
 * The rule (docs/hacking.md): add a migration, never edit one. A database
 * records every migration applied to it in schema_version; at open the
 * store applies the ones it lacks, in order, each in its own transaction,
 * and refuses a database that has one this build does not know. The
 * numbering is the store's, not SQLite's: a PostgreSQL store reuses it.
 */
#include "server/store_int.h"

#include <sqlite3.h>

#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* PRAGMA auto_vacuum's value for INCREMENTAL. */
#define ST_AUTO_VACUUM_INCREMENTAL 2

struct migration {
    const char *what; /* for the log and error messages */
    const char *sql;  /* one or more statements, run in one transaction */
};

/*
 * Migration 1: the first schema, as davit created it before the retention
 * migration (commits 5512f21 to bd39bd4). IF NOT EXISTS because a davit
 * from before the version table created these tables one statement at a
 * time at every start: a database it left half made is completed here.
 */
static const char migration_1[] =
    "CREATE TABLE IF NOT EXISTS meta(\n"
    "    key   TEXT PRIMARY KEY,\n"
    "    value TEXT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS pools(\n"
    "    id          TEXT PRIMARY KEY,\n"
    "    name        TEXT UNIQUE NOT NULL,\n"
    "    keytype     TEXT NOT NULL,\n"
    "    pubkey_pem  TEXT NOT NULL,\n"
    "    secret_hash TEXT NOT NULL,\n"
    "    created_ms  INTEGER NOT NULL,\n"
    "    reset_ms    INTEGER,\n"
    "    cycled_ms   INTEGER);\n"
    "CREATE TABLE IF NOT EXISTS launchers(\n"
    "    id                INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    pool_id           TEXT NOT NULL,\n"
    "    hostname          TEXT NOT NULL,\n"
    "    version           TEXT NOT NULL,\n"
    "    arch              TEXT NOT NULL,\n"
    "    capacity          INTEGER NOT NULL,\n"
    "    metadata_json     TEXT NOT NULL,\n"
    "    registered_ms     INTEGER NOT NULL,\n"
    "    last_seen_ms      INTEGER NOT NULL,\n"
    "    draining          INTEGER NOT NULL DEFAULT 0,\n"
    "    cycle_deadline_ms INTEGER,\n"
    "    revoked           INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE TABLE IF NOT EXISTS sessions(\n"
    "    token_hash  TEXT PRIMARY KEY,\n"
    "    launcher_id INTEGER NOT NULL,\n"
    "    pool_id     TEXT NOT NULL,\n"
    "    expires_ms  INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS challenges(\n"
    "    id         TEXT PRIMARY KEY,\n"
    "    pool_id    TEXT NOT NULL,\n"
    "    nonce      TEXT NOT NULL,\n"
    "    expires_ms INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS runs(\n"
    "    id               INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    pool_id          TEXT NOT NULL,\n"
    "    state            TEXT NOT NULL,\n"
    "    phase            TEXT,\n"
    "    spec_json        TEXT NOT NULL,\n"
    "    secrets_json     TEXT,\n"
    "    launcher_id      INTEGER,\n"
    "    created_ms       INTEGER NOT NULL,\n"
    "    queued_ms        INTEGER NOT NULL,\n"
    "    assigned_ms      INTEGER,\n"
    "    started_ms       INTEGER,\n"
    "    ended_ms         INTEGER,\n"
    "    reason           TEXT,\n"
    "    exit_code        INTEGER,\n"
    "    cancel_requested INTEGER NOT NULL DEFAULT 0,\n"
    "    event_seq        INTEGER NOT NULL DEFAULT 0,\n"
    "    log_bytes        INTEGER NOT NULL DEFAULT 0,\n"
    "    attempts         INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE INDEX IF NOT EXISTS runs_queue ON runs(pool_id, state, id);\n"
    "CREATE INDEX IF NOT EXISTS runs_launcher ON runs(launcher_id, state);\n"
    "CREATE TABLE IF NOT EXISTS log_chunks(\n"
    "    run_id INTEGER NOT NULL,\n"
    "    off    INTEGER NOT NULL,\n"
    "    data   BLOB NOT NULL,\n"
    "    PRIMARY KEY(run_id, off));\n"
    "CREATE TABLE IF NOT EXISTS messages(\n"
    "    id          INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    launcher_id INTEGER NOT NULL,\n"
    "    type        TEXT NOT NULL,\n"
    "    run_id      INTEGER,\n"
    "    deadline_ms INTEGER,\n"
    "    created_ms  INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS messages_launcher ON messages(launcher_id, id);\n"
    "CREATE TABLE IF NOT EXISTS releases(\n"
    "    id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    kind       TEXT NOT NULL,\n"
    "    arch       TEXT NOT NULL,\n"
    "    version    TEXT NOT NULL,\n"
    "    sha256     TEXT NOT NULL,\n"
    "    signature  TEXT NOT NULL,\n"
    "    size       INTEGER NOT NULL,\n"
    "    created_ms INTEGER NOT NULL);\n";

/*
 * Migration 2: retention (commit 0a93637), which davit before the version
 * table added at every start. runs.log_deleted_ms marks an ended run whose
 * log retention deleted; log_purge queues the log chunks of deleted runs,
 * freed in small batches, never in the request that deleted them; the
 * retention sweep walks runs by end time and sums their logs (runs_ended).
 */
static const char migration_2[] = "ALTER TABLE runs ADD COLUMN log_deleted_ms INTEGER;\n"
                                  "CREATE TABLE log_purge(\n"
                                  "    run_id INTEGER PRIMARY KEY);\n"
                                  "CREATE INDEX runs_ended ON runs(ended_ms, log_bytes);\n";

/*
 * Migration 3: registration challenges moved to memory (challenges.c, issue
 * 12), so that an unauthenticated client cannot make the server write a row
 * per request; the table migration 1 made for them has been unused since.
 * Its rows were short-lived (a minute) and are void: a launcher that held one
 * takes a new challenge when the server does not know its one.
 */
static const char migration_3[] = "DROP TABLE IF EXISTS challenges;\n";

/*
 * Migration 4: who may do what (issue 14). api_tokens holds the named API
 * tokens with their role, by the sha256 of the token (never the token);
 * the admin token printed at first start stays in meta. web_sessions holds
 * the browser sessions: the sha256 of the cookie's session id (never the id),
 * the hash of the token it was opened with (a revoked token's sessions stop
 * matching it at once), its CSRF value, and its expiry (idle or absolute,
 * whichever comes first), which the background sweep deletes by. IF NOT
 * EXISTS: a database rebuilt without its version table (tests/server/
 * test_migrations.py) already has these tables, empty or not.
 */
static const char migration_4[] =
    "CREATE TABLE IF NOT EXISTS api_tokens(\n"
    "    name         TEXT PRIMARY KEY,\n"
    "    role         TEXT NOT NULL CHECK(role IN ('viewer', 'operator', 'admin')),\n"
    "    token_hash   TEXT UNIQUE NOT NULL,\n"
    "    created_ms   INTEGER NOT NULL,\n"
    "    last_used_ms INTEGER);\n"
    "CREATE TABLE IF NOT EXISTS web_sessions(\n"
    "    id_hash      TEXT PRIMARY KEY,\n"
    "    token_hash   TEXT NOT NULL,\n"
    "    csrf         TEXT NOT NULL,\n"
    "    created_ms   INTEGER NOT NULL,\n"
    "    last_used_ms INTEGER NOT NULL,\n"
    "    expires_ms   INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS web_sessions_token ON web_sessions(token_hash);\n"
    "CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions(expires_ms);\n";

/*
 * Migration 5: sealed secrets (issue 15, docs/secrets.md). run_nonce is the client's 128-bit
 * nonce that the sealed secrets are bound to, unique among kept runs; sealed_key is the
 * fingerprint of the pool key they are sealed to, so that a reset can fail the queued runs
 * sealed to the old key.
 */
static const char migration_5[] =
    "ALTER TABLE runs ADD COLUMN run_nonce TEXT;\n"
    "ALTER TABLE runs ADD COLUMN sealed_key TEXT;\n"
    "CREATE UNIQUE INDEX runs_nonce ON runs(run_nonce) WHERE run_nonce IS NOT NULL;\n";

/*
 * Migration 6: ephemeral launchers (issue 15). launchers.ephemeral is 0 for
 * a launcher that takes runs for as long as it lives, 1 for an ephemeral one
 * that has not had its run yet, 2 for one that has: store_poll claims
 * nothing for it any more, whatever it asks, also after a server restart.
 */
static const char migration_6[] =
    "ALTER TABLE launchers ADD COLUMN ephemeral INTEGER NOT NULL DEFAULT 0;\n";

/*
 * Migration 7: a worker's last run's end (GET /pools/NAME/scaling's idle_since, store_scaling.c)
 * read from an index instead of every run the worker ever ran: 20 workers with 20,000 kept runs
 * each took 330 ms under the store's lock without it, 0.2 ms with it. IF NOT EXISTS: a database
 * that a test turns back into one from before the version table keeps its indexes.
 */
static const char migration_7[] =
    "CREATE INDEX IF NOT EXISTS runs_launcher_ended ON runs(launcher_id, ended_ms);\n";

/*
 * Migration 8: state that servers sharing one store need (issue 18). challenge_uses holds the
 * registration challenges used up (challenges.h: a challenge is otherwise checked by its MAC
 * alone, on any server), until their expiry, after which the sweep deletes them (no challenge is
 * good then anyway). release_blobs holds every release's file by its sha256, so that any server
 * can serve any release (its data directory's releases/ is a cache of it). IF NOT EXISTS: a
 * database that a test turns back into one from before the version table keeps its tables.
 */
static const char migration_8[] =
    "CREATE TABLE IF NOT EXISTS challenge_uses(\n"
    "    id         TEXT PRIMARY KEY,\n"
    "    expires_ms INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS challenge_uses_expiry ON challenge_uses(expires_ms);\n"
    "CREATE TABLE IF NOT EXISTS release_blobs(\n"
    "    sha256 TEXT PRIMARY KEY,\n"
    "    data   BLOB NOT NULL);\n";

/* Migration N is migrations[N - 1]. Append only. */
static const struct migration migrations[] = {
    {"the first schema", migration_1},
    {"retention: runs.log_deleted_ms, log_purge, runs_ended", migration_2},
    {"challenges in memory: the challenges table dropped", migration_3},
    {"roles: api_tokens and web_sessions", migration_4},
    {"sealed secrets: runs.run_nonce, runs.sealed_key", migration_5},
    {"ephemeral launchers: launchers.ephemeral", migration_6},
    {"scaling: runs_launcher_ended", migration_7},
    {"replicas: challenge_uses, release_blobs", migration_8},
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION is the number of the last migration");

/* Created with the first migration recorded; one row per migration applied. */
static const char version_table[] = "CREATE TABLE IF NOT EXISTS schema_version(\n"
                                    "    version    INTEGER PRIMARY KEY,\n"
                                    "    applied_ms INTEGER NOT NULL);\n";

static const char version_insert[] = "INSERT INTO schema_version(version, applied_ms)\n"
                                     "VALUES(?, ?)";

int64_t st_query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Runs sql; on failure fills err naming path and what, and returns -1. */
static int exec_or_err(sqlite3 *db, const char *path, const char *sql, const char *what, char *err,
                       size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(err, errsz, "store: %s: %s: %s", path, what, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

int st_exec_or_err(sqlite3 *db, const char *path, const char *sql, char *err, size_t errsz)
{
    return exec_or_err(db, path, sql, sql, err, errsz);
}

/*
 * The version of the database: the last migration it recorded; or, for a
 * database made by a davit from before the version table, the migration its
 * runs table shows (2 once it has log_deleted_ms); 0 for a new database.
 * *recorded is 0 when no version is recorded yet. -1 when it cannot be read.
 */
static int schema_version(sqlite3 *db, int *recorded)
{
    *recorded = st_query_int(db, "SELECT count(*) FROM sqlite_schema\n"
                                 " WHERE type = 'table' AND name = 'schema_version'") > 0;
    if (*recorded)
        return (int)st_query_int(db, "SELECT coalesce(max(version), 0) FROM schema_version");
    int64_t runs = st_query_int(db, "SELECT count(*) FROM sqlite_schema\n"
                                    " WHERE type = 'table' AND name = 'runs'");
    if (runs <= 0)
        return runs < 0 ? -1 : 0;
    int64_t retention = st_query_int(db, "SELECT count(*) FROM pragma_table_info('runs')\n"
                                         " WHERE name = 'log_deleted_ms'");
    return retention < 0 ? -1 : retention > 0 ? 2 : 1;
}

/* Records migrations from..to as applied (inside the caller's transaction). */
static int record_versions(sqlite3 *db, int from, int to)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(db, version_table, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, version_insert, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    for (int v = from; v <= to; v++) {
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_int64(st, 2, clock_wall_ms());
        if (sqlite3_step(st) != SQLITE_DONE || sqlite3_reset(st) != SQLITE_OK)
            goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    return -1;
}

/*
 * One transaction: runs migration m (NULL: none) and records versions
 * first..last as applied. Fills err on failure; the database is then
 * unchanged.
 */
static int migrate_step(sqlite3 *db, const char *path, const struct migration *m, int first,
                        int last, char *err, size_t errsz)
{
    char what[160]; /* "migration N (" and a migration's short name */
    if (m)
        snprintf(what, sizeof(what), "migration %d (%s)", last, m->what);
    else
        snprintf(what, sizeof(what), "recording schema version %d", last);
    if (exec_or_err(db, path, "BEGIN IMMEDIATE", what, err, errsz) < 0)
        return -1;
    if (m && exec_or_err(db, path, m->sql, what, err, errsz) < 0)
        goto fail;
    if (record_versions(db, first, last) < 0) {
        snprintf(err, errsz, "store: %s: %s: %s", path, what, sqlite3_errmsg(db));
        goto fail;
    }
    if (exec_or_err(db, path, "COMMIT", what, err, errsz) < 0)
        goto fail;
    if (m)
        log_event(LOG_INFO, "store: schema migrated", "path", path, "migration", what, NULL);
    return 0;
fail:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int st_schema_migrate(sqlite3 *db, const char *path, int *from, char *err, size_t errsz)
{
    int recorded;
    int version = schema_version(db, &recorded);
    *from = version;
    if (version < 0) {
        snprintf(err, errsz, "store: %s: cannot read the schema version: %s", path,
                 sqlite3_errmsg(db));
        return -1;
    }
    if (version < 0) {
        snprintf(err, errsz, "store: %s: the database's schema version %d is not valid", path,
                 version);
        return -1;
    }
    if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errsz,
                 "store: %s: the database has schema version %d, newer than this davit's %d: "
                 "run the davit that upgraded it, or a newer one",
                 path, version, STORE_SCHEMA_VERSION);
        return -1;
    }
    /* A database from before the version table: record what it has first. */
    if (!recorded && version > 0 && migrate_step(db, path, NULL, 1, version, err, errsz) < 0)
        return -1;
    /* migrations[i] takes the schema to version i + 1. */
    for (size_t i = (size_t)version; i < sizeof(migrations) / sizeof(migrations[0]); i++)
        if (migrate_step(db, path, &migrations[i], (int)i + 1, (int)i + 1, err, errsz) < 0)
            return -1;
    return 0;
}

/*
 * Deleted rows must give their space back to the filesystem, which needs
 * auto_vacuum=INCREMENTAL. A new database gets it before its first table;
 * one made by an older davit is rebuilt once with VACUUM (it needs free
 * space about the database's size: on failure the server still starts, and
 * tries again at its next start).
 *
 * Not a numbered migration: it is a setting of the SQLite file, not of the
 * schema (a PostgreSQL store has nothing like it); VACUUM cannot run inside
 * a transaction; and its failure must not stop the server.
 */
void st_schema_vacuum_mode(sqlite3 *db, const char *path)
{
    if (st_query_int(db, "PRAGMA auto_vacuum") == ST_AUTO_VACUUM_INCREMENTAL)
        return;
    int64_t tables = st_query_int(db, "SELECT count(*) FROM sqlite_schema");
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
