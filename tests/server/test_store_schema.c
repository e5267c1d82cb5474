/*
 * Unit tests of the store's schema migrations (store_schema.c) on real
 * SQLite files: a new database, databases made by davit before the version
 * table (their schema copied here, frozen, from the commits that wrote
 * them), one newer than this build, and a migration that fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The schema of davit up to commit bd39bd4 (before retention). */
static const char schema_bd39bd4[] =
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
    " attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS runs_queue ON runs(pool_id, state, id);"
    "CREATE INDEX IF NOT EXISTS runs_launcher ON runs(launcher_id, state);"
    "CREATE TABLE IF NOT EXISTS log_chunks(run_id INTEGER NOT NULL, off INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY(run_id, off));"
    "CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " launcher_id INTEGER NOT NULL, type TEXT NOT NULL, run_id INTEGER, deadline_ms INTEGER,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_launcher ON messages(launcher_id, id);"
    "CREATE TABLE IF NOT EXISTS releases(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, arch TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " signature TEXT NOT NULL, size INTEGER NOT NULL, created_ms INTEGER NOT NULL);";

/* What davit from commit 0a93637 to 9fc3353 made: the above, then at every
 * start the retention additions (runs.log_deleted_ms, log_purge, runs_ended). */
static const char schema_9fc3353_extra[] =
    "ALTER TABLE runs ADD COLUMN log_deleted_ms INTEGER;"
    "CREATE TABLE IF NOT EXISTS log_purge(run_id INTEGER PRIMARY KEY);"
    "CREATE INDEX IF NOT EXISTS runs_ended ON runs(ended_ms, log_bytes);";

/* Rows of every kind, as the old davit wrote them. */
static const char old_rows[] =
    "INSERT INTO meta VALUES('admin_token_sha256', 'abc');"
    "INSERT INTO pools VALUES('pool-0011223344556677', 'old', 'ed25519', 'PEM', 'h',"
    " 1700000000000, NULL, NULL);"
    "INSERT INTO launchers(pool_id, hostname, version, arch, capacity, metadata_json,"
    " registered_ms, last_seen_ms) VALUES('pool-0011223344556677', 'host', '0.1.0', 'amd64', 2,"
    " '{}', 1700000000000, 1700000000000);"
    "INSERT INTO runs(pool_id, state, spec_json, created_ms, queued_ms, ended_ms, log_bytes)"
    " VALUES('pool-0011223344556677', 'finished', '{\"image\":\"x\"}', 1700000000000,"
    " 1700000000000, 1700000001000, 5);"
    "INSERT INTO runs(pool_id, state, spec_json, secrets_json, created_ms, queued_ms)"
    " VALUES('pool-0011223344556677', 'queued', '{\"image\":\"y\"}', '{\"S\":\"v\"}',"
    " 1700000002000, 1700000002000);"
    "INSERT INTO log_chunks VALUES(1, 0, X'68656c6c6f');"
    "INSERT INTO releases(kind, arch, version, sha256, signature, size, created_ms)"
    " VALUES('worker', 'amd64', '0.1.0', 'sha', 'sig', 10, 1700000000000);";

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-schema-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/davit.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Runs sql on the file directly, as an older davit (or an operator) would. */
static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* The first column of sql's first row, as an integer (-1: no row). */
static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The versions recorded, as "1,2". */
static void versions(const char *path, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = 0;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version ORDER BY version",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%d", n ? "," : "", sqlite3_column_int(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* "1,2,...,STORE_SCHEMA_VERSION": every migration this build has. */
static const char *all_versions(void)
{
    static char all[64];
    all[0] = 0;
    for (int i = 1; i <= STORE_SCHEMA_VERSION; i++) {
        size_t n = strlen(all);
        snprintf(all + n, sizeof(all) - n, "%s%d", i > 1 ? "," : "", i);
    }
    return all;
}

/* 1 when the database at path has a table called name. */
static int64_t has_table(const char *path, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", name);
    return sql_int(path, sql);
}

static void test_new_database(void **state)
{
    struct fx *f = *state;
    char err[256] = "", v[32];
    int from = -1;
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_OK);
    assert_int_equal(from, 0);
    versions(f->path, v, sizeof(v));
    assert_string_equal(v, all_versions());
    /* Migration 3: registration challenges live in memory (challenges.c). */
    assert_int_equal(has_table(f->path, "challenges"), 0);
    assert_int_equal(sql_int(f->path, "PRAGMA auto_vacuum"), 2); /* incremental */
    /* Opening again applies nothing. */
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_OK);
    assert_int_equal(from, STORE_SCHEMA_VERSION);
    versions(f->path, v, sizeof(v));
    assert_string_equal(v, all_versions());
}

/* What an old database's rows must still read as, through the store. */
static void check_old_rows(struct store *s)
{
    struct store_pool p;
    assert_int_equal(store_pool_get(s, "old", 0, &p), STORE_OK);
    assert_string_equal(p.id, "pool-0011223344556677");
    assert_string_equal(p.pubkey_pem, "PEM");
    store_pool_clear(&p);
    char *val = NULL;
    assert_int_equal(store_meta_get(s, "admin_token_sha256", &val), STORE_OK);
    assert_string_equal(val, "abc");
    free(val);

    json_t *run = NULL;
    assert_int_equal(store_run_show_json(s, 1, &run), STORE_OK);
    assert_string_equal(json_string_value(json_object_get(run, "state")), "finished");
    assert_string_equal(json_string_value(json_object_get(run, "ended_at")),
                        "2023-11-14T22:13:21.000Z");
    assert_true(json_is_null(json_object_get(run, "log_deleted_at")));
    json_decref(run);

    struct dbuf out;
    dbuf_init(&out, 1024);
    int64_t total;
    int ended;
    assert_int_equal(store_log_read(s, 1, 0, 1024, &out, &total, &ended, NULL), STORE_OK);
    assert_int_equal(total, 5);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "hello", 5);
    dbuf_free(&out);

    struct store_release r;
    assert_int_equal(store_release_latest(s, "worker", "amd64", &r), STORE_OK);
    assert_string_equal(r.version, "0.1.0");

    /* The queued run is still dispatched, with its secrets, to the old launcher. */
    json_t *msgs = NULL;
    struct store_claims claimed;
    int requeued;
    assert_int_equal(store_poll(s, 1, 0, 0, &msgs, &claimed, &requeued), STORE_OK);
    assert_int_equal(claimed.n, 1);
    assert_int_equal(claimed.run_id[0], 2);
    json_t *spec = json_object_get(json_object_get(json_array_get(msgs, 0), "run"), "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "image")), "y");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "secrets"), "S")),
                        "v");
    json_decref(msgs);

    /* Retention works on it: what migration 2 added is there. */
    int trimmed;
    assert_int_equal(store_trim_logs(s, 0, STORE_TRIM_MAX, &trimmed), STORE_OK);
    assert_int_equal(trimmed, 1);
    int freed;
    assert_int_equal(store_purge_logs(s, 10, &freed), STORE_OK);
    assert_int_equal(freed, 1);
}

static void open_old(struct fx *f, int want_from)
{
    char err[256] = "", v[32];
    int from = -1;
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_OK);
    assert_int_equal(from, want_from);
    versions(f->path, v, sizeof(v));
    assert_string_equal(v, all_versions());
    assert_int_equal(has_table(f->path, "challenges"), 0);
    struct store *s = NULL;
    assert_int_equal(store_open(&s, f->path, err, sizeof(err)), STORE_OK);
    check_old_rows(s);
    store_close(s);
}

/* A database from before retention: migration 2 runs on it. */
static void test_database_of_bd39bd4(void **state)
{
    struct fx *f = *state;
    sql_exec(f->path, schema_bd39bd4);
    sql_exec(f->path, old_rows);
    open_old(f, 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM pragma_index_list('runs')"
                                      " WHERE name = 'runs_ended'"),
                     1);
}

/* A database of the last davit without the version table: recognised, nothing to run. */
static void test_database_of_9fc3353(void **state)
{
    struct fx *f = *state;
    sql_exec(f->path, schema_bd39bd4);
    sql_exec(f->path, schema_9fc3353_extra);
    sql_exec(f->path, old_rows);
    open_old(f, 2);
}

/* A database at version 2 with an open challenge in its (unused) table: migration 3 drops it,
 * and every pool operation that used to touch the table still works. */
static void test_version_2_loses_its_challenges_table(void **state)
{
    struct fx *f = *state;
    sql_exec(f->path, schema_bd39bd4);
    sql_exec(f->path, schema_9fc3353_extra);
    sql_exec(f->path, old_rows);
    sql_exec(f->path, "INSERT INTO challenges VALUES('c1', 'pool-0011223344556677', 'n', 1)");
    open_old(f, 2);
    char err[256] = "", id[STORE_POOL_ID_SIZE];
    struct store *s = NULL;
    assert_int_equal(store_open(&s, f->path, err, sizeof(err)), STORE_OK);
    struct store_reap reap;
    assert_int_equal(store_reap(s, 1000, 1000, &reap), STORE_OK);
    assert_int_equal(store_pool_reset(s, "old", "PEM2", "ed25519", "h2", id), STORE_OK);
    assert_string_equal(id, "pool-0011223344556677");
    store_close(s);
}

/* Migration 6 (issue 15): launchers kept from before are not ephemeral. */
static void test_old_launchers_are_not_ephemeral(void **state)
{
    struct fx *f = *state;
    sql_exec(f->path, schema_bd39bd4);
    sql_exec(f->path, old_rows);
    open_old(f, 1);
    assert_true(sql_int(f->path, "SELECT count(*) FROM launchers") > 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM launchers WHERE ephemeral <> 0"), 0);
}

static void test_newer_database_refused(void **state)
{
    struct fx *f = *state;
    char err[256] = "", want[160];
    int from = -1;
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_OK);
    sql_exec(f->path, "INSERT INTO schema_version VALUES(99, 0)");
    struct store *s = NULL;
    assert_int_equal(store_open(&s, f->path, err, sizeof(err)), STORE_ERR);
    assert_null(s);
    snprintf(want, sizeof(want), "has schema version 99, newer than this davit's %d",
             STORE_SCHEMA_VERSION);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, f->path));
    assert_null(strchr(err, '\n'));
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_ERR);
    assert_int_equal(from, 99);
    /* Refused, not changed. */
    assert_int_equal(sql_int(f->path, "SELECT max(version) FROM schema_version"), 99);
}

/* A migration that fails leaves nothing of itself, and the next start retries it. */
static void test_failed_migration_is_rolled_back(void **state)
{
    struct fx *f = *state;
    char err[256] = "", v[32];
    int from = -1;
    sql_exec(f->path, schema_bd39bd4);
    sql_exec(f->path, old_rows);
    /* In the way of migration 2's CREATE TABLE log_purge. */
    sql_exec(f->path, "CREATE TABLE log_purge(x)");
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_ERR);
    assert_non_null(strstr(err, "migration 2 (retention"));
    assert_non_null(strstr(err, "log_purge"));
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM pragma_table_info('runs')"
                                      " WHERE name = 'log_deleted_ms'"),
                     0);
    versions(f->path, v, sizeof(v));
    assert_string_equal(v, "1"); /* what the old database had is recorded */
    sql_exec(f->path, "DROP TABLE log_purge");
    assert_int_equal(store_migrate(f->path, &from, err, sizeof(err)), STORE_OK);
    assert_int_equal(from, 1);
    versions(f->path, v, sizeof(v));
    assert_string_equal(v, all_versions());
}

int main(void)
{
    umask(077); /* as the server runs: the store refuses a database others may read */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_of_bd39bd4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_of_9fc3353, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_2_loses_its_challenges_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_launchers_are_not_ephemeral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_is_rolled_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
