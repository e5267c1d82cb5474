/*
 * Unit tests of the PostgreSQL driver (store_pg.c, store_pg_schema.c) on a real PostgreSQL 15
 * that test_store_pg.py starts (pg_cluster.py) and names in the environment:
 *   DAVIT_TEST_PG_URL      an empty database, owned by a role that is not a superuser
 *   DAVIT_TEST_PG_URL2     another one (made newer than this build by a test)
 *   DAVIT_TEST_PG_RESTART  a command that restarts that PostgreSQL (same port)
 *   DAVIT_TEST_PG_STOP, DAVIT_TEST_PG_START  commands that stop it, and start it again
 * Without them (run alone, not by the pytest) every test is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/store.h"
#include "server/store_int.h"
#include "server/store_pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Only stops a hung test: every wait is for a condition the driver promises. */
#define WAIT_LIMIT_S 30

static const char *url(void)
{
    return getenv("DAVIT_TEST_PG_URL");
}

#define NEED_PG()                                                                                  \
    do {                                                                                           \
        if (!url() || !getenv("DAVIT_TEST_PG_URL2") || !getenv("DAVIT_TEST_PG_RESTART") ||         \
            !getenv("DAVIT_TEST_PG_STOP") || !getenv("DAVIT_TEST_PG_START"))                       \
            skip();                                                                                \
    } while (0)

static struct pgc *open_ok(const char *where, int *from)
{
    struct pgc *c = NULL;
    char err[512] = "";
    int f = -1;
    int rc = pgc_open(&c, where, &f, err, sizeof(err));
    if (rc < 0)
        fail_msg("pgc_open: %s", err);
    if (from)
        *from = f;
    return c;
}

/* Runs sql (no parameters) and fails the test on error. */
static void exec_ok(struct pgc *c, const char *sql)
{
    if (pgc_exec(c, sql) < 0)
        fail_msg("%s: %s", sql, pgc_message(c));
}

/* The first column of sql's one row, as an integer. */
static int64_t one_i64(struct pgc *c, const char *sql)
{
    struct st_stmt *st = pgc_prepare(c, sql, 0);
    assert_non_null(st);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    int64_t v = pgc_col_i64(st, 0);
    pgc_finish(c, st);
    return v;
}

static void test_rewrite(void **state)
{
    (void)state;
    int n = -1;
    char *s = pgc_rewrite("SELECT ?, ?3, ?, '?', \"a?\" FROM t WHERE x = ?1 AND y = 'it''s ?'", &n);
    assert_non_null(s);
    assert_string_equal(s, "SELECT $1, $3, $4, '?', \"a?\" FROM t WHERE x = $1 AND y = 'it''s ?'");
    assert_int_equal(n, 4);
    free(s);
    s = pgc_rewrite("SELECT 1", &n);
    assert_string_equal(s, "SELECT 1");
    assert_int_equal(n, 0);
    free(s);
    assert_null(pgc_rewrite("SELECT ?70000", &n));
}

static void test_label_hides_password(void **state)
{
    (void)state;
    char label[256];
    pgc_label("postgresql://u:s3cret@db.example:5433/davit?sslmode=require&password=x", label,
              sizeof(label));
    assert_string_equal(label, "postgresql://u@db.example:5433/davit");
    pgc_label("postgres://%zz@", label, sizeof(label));
    assert_null(strstr(label, "%zz"));
}

/* A new database is migrated from 0; opened again, nothing is left to do. */
static void test_open_twice(void **state)
{
    (void)state;
    NEED_PG();
    int from = -1;
    struct pgc *c = open_ok(url(), &from);
    int64_t version = one_i64(c, "SELECT max(version) FROM schema_version");
    assert_int_equal(version, STORE_SCHEMA_VERSION);
    pgc_close(c);
    c = open_ok(url(), &from);
    assert_int_equal(from, STORE_SCHEMA_VERSION);
    assert_int_equal(one_i64(c, "SELECT count(*) FROM schema_version"), STORE_SCHEMA_VERSION);
    pgc_close(c);
}

static void test_newer_refused(void **state)
{
    (void)state;
    NEED_PG();
    const char *url2 = getenv("DAVIT_TEST_PG_URL2");
    struct pgc *c = open_ok(url2, NULL);
    exec_ok(c, "INSERT INTO schema_version(version, applied_ms) VALUES(999, 0)");
    pgc_close(c);
    char err[512] = "";
    int from = -1;
    c = NULL;
    assert_int_equal(pgc_open(&c, url2, &from, err, sizeof(err)), -1);
    assert_null(c);
    assert_int_equal(from, 999);
    assert_non_null(strstr(err, "schema version 999, newer than this davit's"));
    assert_null(strstr(err, "pg-test-secret"));
}

static void test_bad_url(void **state)
{
    (void)state;
    NEED_PG();
    char err[512] = "", bad[512];
    /* The right server, a database that is not there; the password must not show. */
    snprintf(bad, sizeof(bad), "%s_missing", url());
    struct pgc *c = NULL;
    int from;
    assert_int_equal(pgc_open(&c, bad, &from, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(err, "pg-test-secret"));
    assert_null(strchr(err, '\n'));
}

/* Values both ways: text, integers, NULL, blobs with zero bytes, and the result types. */
static void test_values(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    static const char ins[] = "INSERT INTO log_chunks(run_id, off, data) VALUES(?, ?2, ?)";
    const unsigned char blob[] = {0, 1, 2, 0xff, '\\', 'x', 0};
    struct st_stmt *st = pgc_prepare(c, ins, 1);
    assert_non_null(st);
    pgc_bind_i64(st, 1, 42);
    pgc_bind_i64(st, 2, -7);
    pgc_bind_blob(st, 3, blob, sizeof(blob));
    assert_int_equal(pgc_step(c, st), ST_DONE);
    assert_int_equal(pgc_changes(c), 1);
    pgc_finish(c, st);
    int64_t total = pgc_total_changes(c);
    /* Kept: the same statement again, on the same name. */
    assert_ptr_equal(pgc_prepare(c, ins, 1), st);
    pgc_bind_i64(st, 1, 43);
    pgc_bind_i64(st, 2, 0);
    pgc_bind_blob(st, 3, "", 0);
    assert_int_equal(pgc_step(c, st), ST_DONE);
    pgc_finish(c, st);
    assert_int_equal(pgc_total_changes(c), total + 1);

    st = pgc_prepare(c,
                     "SELECT data, off, run_id > 42 AS big, CAST(1.5 AS NUMERIC) AS n,"
                     " CAST(3 AS NUMERIC) AS m, 2.5::float8 AS f, NULL AS z, 'x' AS t"
                     " FROM log_chunks WHERE run_id = ?",
                     0);
    pgc_bind_i64(st, 1, 42);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    assert_int_equal(pgc_col_count(st), 8);
    assert_string_equal(pgc_col_name(st, 2), "big");
    size_t n = 0;
    const void *p = pgc_col_blob(st, 0, &n);
    assert_int_equal(pgc_col_type(st, 0), ST_T_BLOB);
    assert_int_equal(n, sizeof(blob));
    assert_memory_equal(p, blob, sizeof(blob));
    assert_int_equal(pgc_col_type(st, 1), ST_T_INT);
    assert_int_equal(pgc_col_i64(st, 1), -7);
    assert_int_equal(pgc_col_type(st, 2), ST_T_INT);
    assert_int_equal(pgc_col_i64(st, 2), 0);
    assert_int_equal(pgc_col_type(st, 3), ST_T_REAL);
    assert_true(pgc_col_double(st, 3) == 1.5);
    assert_int_equal(pgc_col_type(st, 4), ST_T_INT);
    assert_int_equal(pgc_col_i64(st, 4), 3);
    assert_int_equal(pgc_col_type(st, 5), ST_T_REAL);
    assert_int_equal(pgc_col_type(st, 6), ST_T_NULL);
    assert_null(pgc_col_text(st, 6));
    assert_int_equal(pgc_col_type(st, 7), ST_T_TEXT);
    assert_string_equal(pgc_col_text(st, 7), "x");
    assert_int_equal(pgc_step(c, st), ST_DONE);
    pgc_finish(c, st);
    /* A number skipped (?2 bound, never used: the store's statements share bindings): its type
     * cannot be inferred, yet the statement runs, kept or not. */
    static const char gap[] = "SELECT count(*) FROM log_chunks WHERE run_id = ?1 AND off = ?3";
    for (int keep = 0; keep <= 1; keep++) {
        st = pgc_prepare(c, gap, keep);
        pgc_bind_i64(st, 1, 42);
        pgc_bind_text(st, 2, "unused");
        pgc_bind_i64(st, 3, -7);
        assert_int_equal(pgc_step(c, st), ST_ROW);
        assert_int_equal(pgc_col_i64(st, 0), 1);
        pgc_finish(c, st);
    }
    /* A log read: part of the chunk, into a buffer; a chunk that is not there fails. */
    char part[3];
    assert_int_equal(pgc_log_read(c, 42, -7, 2, 3, part, NULL, NULL), 0);
    assert_memory_equal(part, blob + 2, 3);
    assert_int_equal(pgc_log_read(c, 42, 99, 0, 1, part, NULL, NULL), -1);
    assert_int_equal(pgc_log_read(c, 42, -7, 5, 3, part, NULL, NULL), -1);
    /* A SELECT changes nothing, as SQLite's changes() counts. */
    assert_int_equal(pgc_changes(c), 1);

    /* Text with a NULL bound, and a failing statement's reason and message. */
    st = pgc_prepare(c, "INSERT INTO meta(key, value) VALUES(?, ?)", 0);
    pgc_bind_text(st, 1, "k");
    pgc_bind_text(st, 2, NULL);
    assert_int_equal(pgc_step(c, st), -1);
    pgc_finish(c, st);
    assert_int_equal(pgc_reason(c), ST_R_OTHER);
    assert_non_null(strstr(pgc_message(c), "23502"));
    /* Bad data: PostgreSQL quotes the value; the message must not. */
    st = pgc_prepare(c, "SELECT CAST(? AS BIGINT)", 0);
    pgc_bind_text(st, 1, "request-content");
    assert_int_equal(pgc_step(c, st), -1);
    pgc_finish(c, st);
    assert_null(strstr(pgc_message(c), "request-content"));
    pgc_close(c);
}

/* The functions the store's SQL calls, as SQLite gives them. */
static void test_functions(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    struct st_stmt *st = pgc_prepare(
        c,
        "SELECT davit_iso(CAST(? AS BIGINT)), davit_iso(0), davit_iso(NULL),"
        " (SELECT json_group_array(x) FROM (VALUES (1), (2)) v(x)),"
        " (SELECT json_group_array(x) FROM (VALUES ('a')) v(x) WHERE false),"
        " (SELECT json_group_array(x) FROM (VALUES ('a\"b')) v(x)),"
        " davit_seen(CAST(-1 AS BIGINT)), davit_seen(CAST(-1 AS BIGINT), CAST(5 AS BIGINT))",
        0);
    pgc_bind_i64(st, 1, 1700000000123LL);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    assert_string_equal(pgc_col_text(st, 0), "2023-11-14T22:13:20.123Z");
    assert_string_equal(pgc_col_text(st, 1), "1970-01-01T00:00:00.000Z");
    assert_null(pgc_col_text(st, 2));
    assert_string_equal(pgc_col_text(st, 3), "[1, 2]");
    assert_string_equal(pgc_col_text(st, 4), "[]");
    assert_string_equal(pgc_col_text(st, 5), "[\"a\\\"b\"]");
    assert_int_equal(pgc_col_type(st, 6), ST_T_NULL);
    assert_int_equal(pgc_col_i64(st, 7), 5);
    pgc_finish(c, st);
    pgc_close(c);
}

/* The shared transaction's statements as the store sends them (store_sql.c). */
static void test_transactions(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    static const char begin[] = "BEGIN IMMEDIATE", sp[] = "SAVEPOINT op", rel[] = "RELEASE op",
                      rb[] = "ROLLBACK TO op", commit[] = "COMMIT";
    const char *const seq[] = {begin, sp};
    for (size_t i = 0; i < 2; i++) {
        struct st_stmt *st = pgc_prepare(c, seq[i], 1);
        assert_int_equal(pgc_step(c, st), ST_DONE);
        pgc_finish(c, st);
    }
    assert_int_equal(pgc_in_txn(c), 1);
    exec_ok(c, "INSERT INTO meta(key, value) VALUES('a', '1')");
    exec_ok(c, rel);
    exec_ok(c, sp);
    /* A failing statement, undone by its savepoint; the transaction goes on. */
    assert_int_equal(pgc_exec(c, "INSERT INTO meta(key, value) VALUES('a', '2')"), -1);
    assert_int_equal(pgc_in_txn(c), 1);
    exec_ok(c, rb);
    exec_ok(c, rel);
    struct st_stmt *st = pgc_prepare(c, commit, 1);
    assert_int_equal(pgc_step(c, st), ST_DONE);
    pgc_finish(c, st);
    assert_int_equal(pgc_in_txn(c), 0);
    assert_int_equal(one_i64(c, "SELECT count(*) FROM meta WHERE key = 'a'"), 1);
    exec_ok(c, "DELETE FROM meta");
    pgc_close(c);
}

/* One server at a time expires leases: the lock lasts until its transaction ends. */
static void test_reaper_lock(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *a = open_ok(url(), NULL), *b = open_ok(url(), NULL);
    exec_ok(a, "BEGIN");
    exec_ok(b, "BEGIN");
    assert_int_equal(pgc_reaper_lock(a), 1);
    assert_int_equal(pgc_reaper_lock(b), 0);
    exec_ok(a, "COMMIT");
    exec_ok(b, "ROLLBACK");
    exec_ok(b, "BEGIN");
    assert_int_equal(pgc_reaper_lock(b), 1);
    exec_ok(b, "COMMIT");
    pgc_close(a);
    pgc_close(b);
}

/* What a listener heard, for the test to wait on: every payload, one a line. */
struct heard {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char all[65536];
    size_t len;
    int own; /* payloads that only the publisher itself could have heard */
};

static void on_payload(void *arg, const char *payload)
{
    struct heard *h = arg;
    pthread_mutex_lock(&h->mu);
    size_t n = strlen(payload);
    if (h->len + n + 3 < sizeof(h->all)) {
        h->all[h->len++] = '\n';
        memcpy(h->all + h->len, payload, n);
        h->len += n;
        h->all[h->len++] = '\n';
        h->all[h->len] = '\0';
    }
    if (strncmp(payload, "own:", 4) == 0)
        h->own++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
}

/* Waits until h has heard want (1), or for at most ms (0). */
static int wait_heard_ms(struct heard *h, const char *want, long ms)
{
    char line[STORE_WAKE_MAX + 3];
    snprintf(line, sizeof(line), "\n%s\n", want);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (!strstr(h->all, line) && rc == 0)
        rc = pthread_cond_timedwait(&h->cond, &h->mu, &until);
    int got = strstr(h->all, line) != NULL;
    pthread_mutex_unlock(&h->mu);
    return got;
}

static int wait_heard(struct heard *h, const char *want)
{
    return wait_heard_ms(h, want, WAIT_LIMIT_S * 1000L);
}

static struct heard heard = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, "", 0, 0};

static void test_publish_listen(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *a = open_ok(url(), NULL), *b = open_ok(url(), NULL);
    assert_int_equal(pgc_listen(b, on_payload, &heard), 0);
    assert_int_equal(pgc_listen(a, on_payload, &heard), 0);
    /* b's own publish is not delivered to b; a hears it. Then a's reaches b. (own:1 often
     * reaches a's listener while its thread's first re-check runs, which reads it into
     * libpq's queue: the count below found it left there for a second.) */
    assert_int_equal(pgc_publish(b, "own:1"), 0);
    assert_int_equal(pgc_publish(a, "u:17"), 0);
    assert_true(wait_heard(&heard, "u:17"));
    /* Inside a transaction: sent at the commit, not before; dropped by a rollback. */
    exec_ok(a, "BEGIN");
    assert_int_equal(pgc_publish(a, "u:rolled-back"), 0);
    exec_ok(a, "ROLLBACK");
    exec_ok(a, "BEGIN");
    assert_int_equal(pgc_publish(a, "u:18"), 0);
    exec_ok(a, "COMMIT");
    assert_true(wait_heard(&heard, "u:18"));
    /* The re-check: queued runs and waiting messages, without any notification. */
    exec_ok(a, "INSERT INTO runs(pool_id, state, spec_json, created_ms, queued_ms)"
               " VALUES('pool-x', 'queued', '{}', 0, 0), ('pool-x', 'queued', '{}', 0, 0)");
    exec_ok(a, "INSERT INTO messages(launcher_id, type, created_ms) VALUES(77, 'cycle', 0)");
    assert_true(wait_heard(&heard, "r:pool-x:2"));
    assert_true(wait_heard(&heard, "l:77"));
    exec_ok(a, "DELETE FROM runs");
    exec_ok(a, "DELETE FROM messages");
    /* "own:1" was heard once: by a (b's own connection sent it). The rolled back one never.
     * (Read under the lock, checked after it: a failed check must not leave it held.) */
    pthread_mutex_lock(&heard.mu);
    int own = heard.own;
    int rolled_back = strstr(heard.all, "\nu:rolled-back\n") != NULL;
    pthread_mutex_unlock(&heard.mu);
    assert_int_equal(own, 1);
    assert_false(rolled_back);
    pgc_close(a);
    pgc_close(b);
}

/* PostgreSQL restarts under an open store: the operation in flight fails, the next one
 * reconnects, kept statements are prepared again, and the listener comes back. A transaction
 * that the restart cut is not committed on the new connection. */
static void test_reconnect(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *a = open_ok(url(), NULL), *b = open_ok(url(), NULL);
    assert_int_equal(pgc_listen(b, on_payload, &heard), 0);
    assert_int_equal(pgc_ping(a), 0); /* its statement kept, prepared */
    exec_ok(a, "BEGIN");
    exec_ok(a, "INSERT INTO meta(key, value) VALUES('lost', '1')");
    assert_int_equal(system(getenv("DAVIT_TEST_PG_RESTART")), 0);
    /* The transaction's next statement fails: the connection is gone. */
    assert_int_equal(pgc_exec(a, "INSERT INTO meta(key, value) VALUES('lost', '2')"), -1);
    assert_int_equal(pgc_reason(a), ST_R_IO);
    /* Its COMMIT fails too, on the new connection, instead of committing nothing. */
    assert_int_equal(pgc_exec(a, "COMMIT"), -1);
    /* Told as a transaction the database ended on its own (the store's op_close asks). */
    assert_int_equal(pgc_in_txn(a), 0);
    /* The next operation works, with the kept statement prepared again. */
    assert_int_equal(pgc_ping(a), 0);
    exec_ok(a, "BEGIN");
    exec_ok(a, "INSERT INTO meta(key, value) VALUES('kept', '1')");
    exec_ok(a, "COMMIT");
    assert_int_equal(one_i64(a, "SELECT count(*) FROM meta WHERE key = 'lost'"), 0);
    assert_int_equal(one_i64(a, "SELECT count(*) FROM meta WHERE key = 'kept'"), 1);
    exec_ok(a, "DELETE FROM meta");
    /* The listener reconnected: a publish reaches it. What is published before it is back is
     * lost (the re-check covers that), so publish until one arrives. */
    int got = 0;
    for (int i = 0; i < WAIT_LIMIT_S * 10 && !got; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), "u:back%d", i);
        assert_int_equal(pgc_publish(a, payload), 0);
        got = wait_heard_ms(&heard, payload, 100);
    }
    assert_true(got);
    pgc_close(a);
    pgc_close(b);
}

/* While PostgreSQL is down, operations fail at once after a failed reconnect instead of each
 * trying again under the store's lock; once it is back, the next try after the pause works. */
static void test_down_fails_fast(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *a = open_ok(url(), NULL);
    assert_int_equal(system(getenv("DAVIT_TEST_PG_STOP")), 0);
    assert_int_equal(pgc_ping(a), -1); /* the connection is found cut */
    assert_int_equal(pgc_ping(a), -1); /* the reconnect fails: refused */
    assert_int_equal(pgc_reason(a), ST_R_IO);
    assert_non_null(strstr(pgc_message(a), "cannot reconnect"));
    assert_int_equal(pgc_ping(a), -1); /* no new try yet */
    assert_non_null(strstr(pgc_message(a), "not connected"));
    assert_int_equal(system(getenv("DAVIT_TEST_PG_START")), 0);
    int ok = -1;
    for (int i = 0; i < WAIT_LIMIT_S * 20 && ok < 0; i++) {
        ok = pgc_ping(a);
        if (ok < 0)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* the next try's time */
    }
    assert_int_equal(ok, 0);
    pgc_close(a);
}

static void test_ping_and_size(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    assert_int_equal(pgc_ping(c), 0);
    assert_true(pgc_used_bytes(c) > 0);
    pgc_close(c);
}

/* A COMMIT of a transaction a failed statement aborted runs as ROLLBACK: a failure, whether it
 * is run as text or as a kept statement (review18 H1). */
static void test_commit_of_failed_txn_fails(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    for (int kept = 0; kept < 2; kept++) {
        exec_ok(c, "BEGIN");
        assert_int_equal(pgc_exec(c, "SELECT 1 / 0"), -1);
        if (kept) {
            struct st_stmt *st = pgc_prepare(c, "COMMIT", 1);
            assert_non_null(st);
            assert_int_equal(pgc_step(c, st), -1);
            pgc_finish(c, st);
        } else {
            assert_int_equal(pgc_exec(c, "COMMIT"), -1);
        }
        assert_non_null(strstr(pgc_message(c), "COMMIT rolled back"));
        assert_int_equal(pgc_in_txn(c), 0);
    }
    pgc_close(c);
}

struct meta_set_arg {
    struct store *s;
    int rc;
};

static void *meta_set_thread(void *a)
{
    struct meta_set_arg *m = a;
    m->rc = store_meta_set(m->s, "h1", "kept");
    return NULL;
}

/* Waits until an operation of s waits for its batch's commit. */
static void wait_for_waiter(struct store *s)
{
    for (int i = 0; i < WAIT_LIMIT_S * 1000; i++) {
        pthread_mutex_lock(&s->mu);
        int waiting = s->waiters != NULL;
        pthread_mutex_unlock(&s->mu);
        if (waiting)
            return;
        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    }
    fail_msg("no operation waited for a commit");
}

/* A read that fails inside the open shared batch (a pool name that is not UTF-8: SQLSTATE
 * 22021) must not take the batch's acknowledged writes with it (review18 H1). */
static void test_failed_dirty_read_keeps_batch(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    char err[512];
    assert_int_equal(store_open(&s, url(), err, sizeof(err)), STORE_OK);
    /* A writer "about to join": the operation below does not lead its commit. */
    __atomic_store_n(&s->entering, 1, __ATOMIC_SEQ_CST);
    struct meta_set_arg m = {s, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, meta_set_thread, &m), 0);
    wait_for_waiter(s);
    struct store_pool p = {0};
    assert_true(store_pool_get(s, "\xff", 0, &p) < 0);
    __atomic_store_n(&s->entering, 0, __ATOMIC_SEQ_CST);
    char *v = NULL;
    int grc = store_meta_get(s, "h1", &v); /* st_lock: commits the batch first */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(m.rc, STORE_OK);
    assert_int_equal(grc, STORE_OK);
    assert_string_equal(v, "kept");
    free(v);
    store_close(s);
}

/* The text of sql's one row, first column, into out. */
static void one_text(struct pgc *c, const char *sql, char *out, size_t outsz)
{
    struct st_stmt *st = pgc_prepare(c, sql, 0);
    assert_non_null(st);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    snprintf(out, outsz, "%s", pgc_col_text(st, 0));
    pgc_finish(c, st);
}

/* Every wait has an end: davit's limits by default, the URL's own options instead when it has
 * some (review18 M2). */
static void test_timeouts(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    char v[64];
    one_text(c,
             "SELECT current_setting('lock_timeout') || ' ' || "
             "current_setting('statement_timeout') || ' ' || "
             "current_setting('idle_in_transaction_session_timeout')",
             v, sizeof(v));
    assert_string_equal(v, "20s 30s 1min");
    pgc_close(c);
    char own[600];
    snprintf(own, sizeof(own), "%s%soptions=-c%%20lock_timeout%%3D1500ms", url(),
             strchr(url(), '?') ? "&" : "?");
    c = open_ok(own, NULL);
    one_text(c, "SELECT current_setting('lock_timeout')", v, sizeof(v));
    assert_string_equal(v, "1500ms");
    pgc_close(c);
}

struct cancel_arg {
    struct store *s;
    int64_t id;
    int rc, ended;
    int64_t launcher;
    int done; /* atomic */
};

static void *cancel_thread(void *a)
{
    struct cancel_arg *c = a;
    c->rc = store_run_cancel(c->s, c->id, &c->ended, &c->launcher);
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Another server's open transaction holds a run's row (a frozen replica mid-batch): this
 * store's cancel of that run waits for it under the store's lock; /healthz's ping answers
 * meanwhile (review18 M2). */
static void test_ping_not_behind_lock(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    char err[512];
    assert_int_equal(store_open(&s, url(), err, sizeof(err)), STORE_OK);
    struct pgc *other = open_ok(url(), NULL);
    exec_ok(other, "INSERT INTO runs(id, pool_id, state, spec_json, created_ms, queued_ms)"
                   " VALUES(990002, 'p', 'queued', '{}', 1, 1)");
    exec_ok(other, "BEGIN");
    exec_ok(other, "UPDATE runs SET attempts = attempts WHERE id = 990002");
    struct cancel_arg c = {s, 990002, 99, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
    /* Waits until the cancel waits for the row (from another connection: other's is in its
     * transaction, and its snapshot would not see the wait begin). */
    struct pgc *watch = open_ok(url(), NULL);
    for (int i = 0;; i++) {
        if (one_i64(watch, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                           " AND application_name = 'davit'") > 0)
            break;
        if (i > WAIT_LIMIT_S * 100)
            fail_msg("the cancel never waited for the row");
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    assert_int_equal(store_ping(s), STORE_OK);
    assert_int_equal(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST), 0); /* it still waits */
    exec_ok(other, "COMMIT");
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(c.rc, STORE_OK);
    exec_ok(other, "DELETE FROM runs WHERE id = 990002");
    pgc_close(watch);
    pgc_close(other);
    store_close(s);
}

/* A fractional number read as an integer: truncated, clamped to the 64-bit range as SQLite
 * does (a plain cast past it is undefined), NaN as 0 (review18 L4). */
static void test_col_i64_of_real(void **state)
{
    (void)state;
    NEED_PG();
    struct pgc *c = open_ok(url(), NULL);
    struct st_stmt *st = pgc_prepare(c,
                                     "SELECT CAST('1e30' AS float8), CAST('-1e30' AS float8),"
                                     " CAST('NaN' AS float8), CAST('-2.75' AS float8),"
                                     " CAST('1e300' AS numeric)",
                                     0);
    assert_non_null(st);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    assert_true(pgc_col_i64(st, 0) == INT64_MAX);
    assert_true(pgc_col_i64(st, 1) == INT64_MIN);
    assert_int_equal(pgc_col_i64(st, 2), 0);
    assert_int_equal(pgc_col_i64(st, 3), -2);
    assert_true(pgc_col_i64(st, 4) == INT64_MAX);
    pgc_finish(c, st);
    pgc_close(c);
}

/* A wake-up is sent at once, even while the store has a batch open that other writers are
 * still joining: it does not wait for that batch's commit, nor share its fate (review18 L1). */
static void test_publish_not_in_batch(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    char err[512];
    assert_int_equal(store_open(&s, url(), err, sizeof(err)), STORE_OK);
    struct pgc *b = open_ok(url(), NULL);
    assert_int_equal(pgc_listen(b, on_payload, &heard), 0);
    __atomic_store_n(&s->entering, 1, __ATOMIC_SEQ_CST);
    struct meta_set_arg m = {s, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, meta_set_thread, &m), 0);
    wait_for_waiter(s);
    assert_int_equal(store_publish(s, "u:l1"), STORE_OK);
    int heard_it = wait_heard_ms(&heard, "u:l1", 10 * 1000);
    __atomic_store_n(&s->entering, 0, __ATOMIC_SEQ_CST);
    char *v = NULL;
    assert_int_equal(store_meta_get(s, "h1", &v), STORE_OK); /* commits, if still open */
    free(v);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(m.rc, STORE_OK);
    pgc_close(b);
    store_close(s);
    assert_true(heard_it);
}

/* ---- h18-fixops: a write that decides on a row another server is changing (review H3, L2) ----
 * The other server is a second connection with a transaction open on the same rows; this
 * server's operation runs on a thread; the test waits until PostgreSQL shows a session waiting
 * for a lock (the operation reached the other's row), then commits the other. */

#include "common/spool.h"

/* Until a session of this database waits for a lock. */
static void wait_lock_waiter(struct pgc *c)
{
    for (int i = 0; i < WAIT_LIMIT_S * 100; i++) {
        if (one_i64(c, "SELECT count(*) FROM pg_stat_activity"
                       " WHERE wait_event_type = 'Lock' AND datname = current_database()") > 0)
            return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("no session waited for a lock within %d s", WAIT_LIMIT_S);
}

/* The text of sql's one row. Caller frees. */
static char *row_text(struct pgc *c, const char *sql)
{
    struct st_stmt *st = pgc_prepare(c, sql, 0);
    assert_non_null(st);
    assert_int_equal(pgc_step(c, st), ST_ROW);
    char *v = strdup(pgc_col_text(st, 0));
    pgc_finish(c, st);
    assert_non_null(v);
    return v;
}

struct race_op {
    struct store *s;
    int kind; /* 0 cancel, 1 preparing event, 2 log append, 3 submit, 4 submit and claim,
               * 5 launcher exit */
    int64_t id, launcher;
    const char *data; /* log append's bytes, submit's spec */
    size_t len;
    int rc, ended;
    int64_t told, next;
};

static void *race_op_thread(void *a)
{
    struct race_op *o = a;
    char state[STORE_STATE_SIZE];
    struct store_event ev = {1, "preparing", NULL, NULL, NULL, -1};
    switch (o->kind) {
    case 0:
        o->rc = store_run_cancel(o->s, o->id, &o->ended, &o->told);
        break;
    case 1:
        o->rc = store_run_event(o->s, o->launcher, o->id, &ev, state);
        break;
    case 2:
        o->rc = store_log_append(o->s, o->launcher, o->id, 0, o->data, o->len, 1 << 20, &o->next);
        break;
    case 3:
        o->rc = store_run_create(o->s, "p", o->data, NULL, &o->next);
        break;
    case 5:
        o->rc = store_launcher_exit(o->s, o->launcher, &o->ended);
        break;
    default: {
        struct store_claims claimed = {0};
        o->rc = store_run_create_claim(o->s, "p", o->data, NULL, o->launcher, &o->next, &claimed);
        o->ended = (int)claimed.n;
        break;
    }
    }
    return NULL;
}

/* Opens the store on the test database and a second connection ("the other server") that
 * inserts the run id in state (with launcher, 0 for none) and begins. */
static struct pgc *race_begin(struct store **s, int64_t id, const char *state, int64_t launcher)
{
    char err[512], sql[256];
    if (store_open(s, url(), err, sizeof(err)) != STORE_OK)
        fail_msg("store_open: %s", err);
    struct pgc *other = open_ok(url(), NULL);
    if (id) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO runs(id, pool_id, state, launcher_id, spec_json, created_ms,"
                 " queued_ms) VALUES(%lld, 'p', '%s', %s, '{}', 1, 1)",
                 (long long)id, state, launcher ? "78" : "NULL");
        exec_ok(other, sql);
    }
    exec_ok(other, "BEGIN");
    return other;
}

/* Commits the other server's transaction once the operation waits for it, then joins it. */
static void race_finish(struct pgc *other, struct race_op *o)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race_op_thread, o), 0);
    wait_lock_waiter(other);
    exec_ok(other, "COMMIT");
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void race_end(struct store *s, struct pgc *other)
{
    exec_ok(other, "DELETE FROM runs WHERE id BETWEEN 990100 AND 990199 OR run_nonce = 'h18-n'");
    exec_ok(other, "DELETE FROM log_chunks WHERE run_id BETWEEN 990100 AND 990199");
    exec_ok(other, "DELETE FROM messages WHERE run_id BETWEEN 990100 AND 990199");
    pgc_close(other);
    store_close(s);
}

/* Another server claims a queued run (launcher 78) while this one cancels it: the cancel
 * waits for the claim and tells the launcher; before the row lock it read "queued" and ended
 * the run as never started while launcher 78 held it, and told no one. */
static void test_cancel_waits_for_another_servers_claim(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 990101, "queued", 0);
    exec_ok(other, "UPDATE runs SET state = 'assigned', launcher_id = 78 WHERE id = 990101");
    struct race_op o = {.s = s, .kind = 0, .id = 990101, .rc = 99};
    race_finish(other, &o);
    char *now = row_text(other, "SELECT state || ' ' || CAST(cancel_requested AS TEXT) || ' ' ||"
                                " CAST(launcher_id AS TEXT) FROM runs WHERE id = 990101");
    int64_t msgs = one_i64(other, "SELECT count(*) FROM messages WHERE run_id = 990101"
                                  " AND launcher_id = 78 AND type = 'cancel'");
    race_end(s, other);
    assert_int_equal(o.rc, STORE_OK);
    assert_int_equal(o.ended, 0);
    assert_int_equal(o.told, 78);
    assert_string_equal(now, "assigned 1 78");
    free(now);
    assert_int_equal(msgs, 1);
}

/* The reaper on another server requeues a run (its launcher's lease ran out) while the
 * launcher's "preparing" event arrives here: the event waits for the requeue and is refused
 * (the run is no longer the launcher's); before the row lock it left the run "preparing"
 * with no launcher, a run no one would ever finish or requeue. */
static void test_event_waits_for_another_servers_requeue(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 990102, "assigned", 78);
    exec_ok(other, "UPDATE runs SET state = 'queued', launcher_id = NULL WHERE id = 990102");
    struct race_op o = {.s = s, .kind = 1, .id = 990102, .launcher = 78, .rc = 99};
    race_finish(other, &o);
    char *now = row_text(other, "SELECT state || ' ' || coalesce(CAST(launcher_id AS TEXT), '-')"
                                " FROM runs WHERE id = 990102");
    race_end(s, other);
    assert_int_equal(o.rc, STORE_FORBIDDEN);
    assert_string_equal(now, "queued -");
    free(now);
}

/* A launcher's log upload retried on this server while another server stores the same bytes:
 * acknowledged (the bytes are stored), as on one server; before the row lock the insert hit
 * the other's chunk (a unique violation) and the launcher got a 500. */
static void test_log_retry_on_two_servers(void **state)
{
    (void)state;
    NEED_PG();
    struct spool_record rec = {.type = SPOOL_STDOUT, .seq = 1, .time_ms = 1000, .len = 2};
    memset(rec.mac, '0', SPOOL_MAC_HEX);
    char chunk[SPOOL_HEADER_MAX + 8];
    size_t n = spool_header(chunk, &rec);
    memcpy(chunk + n, "hi\n", 3);
    n += 3;
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 990103, "running", 78);
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO log_chunks(run_id, off, data) VALUES(990103, 0, '\\x");
    for (size_t i = 0; i < n; i++)
        snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), "%02x", (unsigned char)chunk[i]);
    snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), "')");
    exec_ok(other, sql);
    snprintf(sql, sizeof(sql), "UPDATE runs SET log_bytes = %zu WHERE id = 990103", n);
    exec_ok(other, sql);
    struct race_op o = {
        .s = s, .kind = 2, .id = 990103, .launcher = 78, .data = chunk, .len = n, .rc = 99};
    race_finish(other, &o);
    int64_t chunks = one_i64(other, "SELECT count(*) FROM log_chunks WHERE run_id = 990103");
    race_end(s, other);
    assert_int_equal(o.rc, STORE_OK);
    assert_int_equal(o.next, (int64_t)n);
    assert_int_equal(chunks, 1);
}

/* Two submits with one run_nonce, one on another server still committing: 409 here
 * (STORE_CONFLICT), as on one server; before ON CONFLICT the check did not see the other's
 * row, the insert hit it (a unique violation) and the client got a 500. */
static void test_same_nonce_on_two_servers(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 0, NULL, 0);
    exec_ok(other, "INSERT INTO runs(pool_id, state, spec_json, created_ms, queued_ms, run_nonce)"
                   " VALUES('p', 'queued', '{}', 1, 1, 'h18-n')");
    struct race_op o = {.s = s, .kind = 3, .data = "{\"run_nonce\":\"h18-n\"}", .rc = 99};
    race_finish(other, &o);
    int64_t runs = one_i64(other, "SELECT count(*) FROM runs WHERE run_nonce = 'h18-n'");
    race_end(s, other);
    assert_int_equal(o.rc, STORE_CONFLICT);
    assert_int_equal(runs, 1);
}

/* An admin drains a launcher on another server while this one claims a run for it (a submit
 * meeting its waiting poll): the claim waits for the drain and claims nothing; before the
 * launcher's row lock it read "not draining" and started a run on a launcher its admin had
 * been told was drained. */
static void test_claim_waits_for_another_servers_drain(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 0, NULL, 0);
    exec_ok(other, "INSERT INTO launchers(id, pool_id, hostname, version, arch, capacity,"
                   " metadata_json, registered_ms, last_seen_ms) VALUES(990178, 'p', 'h', 'v',"
                   " 'amd64', 4, '{}', 1, 1)");
    exec_ok(other, "COMMIT");
    exec_ok(other, "BEGIN");
    exec_ok(other, "UPDATE launchers SET draining = 1 WHERE id = 990178");
    struct race_op o = {.s = s, .kind = 4, .launcher = 990178, .data = "{}", .rc = 99};
    race_finish(other, &o);
    int64_t assigned = one_i64(other, "SELECT count(*) FROM runs WHERE launcher_id = 990178");
    exec_ok(other, "DELETE FROM launchers WHERE id = 990178");
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM runs WHERE id = %lld", (long long)o.next);
    exec_ok(other, sql);
    race_end(s, other);
    assert_int_equal(o.rc, STORE_OK);
    assert_int_equal(o.ended, 0); /* runs claimed */
    assert_int_equal(assigned, 0);
}

/* A launcher exits on this server while another server's claim gives it a run (the claim
 * locks the launcher's row): the exit waits and keeps the launcher, which holds a run; before,
 * it did not see the claim still committing and deleted it. */
static void test_exit_waits_for_another_servers_claim(void **state)
{
    (void)state;
    NEED_PG();
    struct store *s = NULL;
    struct pgc *other = race_begin(&s, 990104, "queued", 0);
    exec_ok(other, "INSERT INTO launchers(id, pool_id, hostname, version, arch, capacity,"
                   " metadata_json, registered_ms, last_seen_ms) VALUES(990179, 'p', 'h', 'v',"
                   " 'amd64', 4, '{}', 1, 1)");
    exec_ok(other, "COMMIT");
    exec_ok(other, "BEGIN");
    exec_ok(other, "SELECT id FROM launchers WHERE id = 990179 FOR UPDATE");
    exec_ok(other, "UPDATE runs SET state = 'assigned', launcher_id = 990179 WHERE id = 990104");
    struct race_op o = {.s = s, .kind = 5, .launcher = 990179, .rc = 99};
    race_finish(other, &o);
    int64_t kept = one_i64(other, "SELECT count(*) FROM launchers WHERE id = 990179");
    exec_ok(other, "DELETE FROM launchers WHERE id = 990179");
    race_end(s, other);
    assert_int_equal(o.rc, STORE_OK);
    assert_int_equal(o.ended, 0); /* not gone */
    assert_int_equal(kept, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_label_hides_password),
        cmocka_unit_test(test_open_twice),
        cmocka_unit_test(test_newer_refused),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_reaper_lock),
        cmocka_unit_test(test_publish_listen),
        cmocka_unit_test(test_ping_and_size),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_down_fails_fast),
        cmocka_unit_test(test_commit_of_failed_txn_fails),
        cmocka_unit_test(test_failed_dirty_read_keeps_batch),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_ping_not_behind_lock),
        cmocka_unit_test(test_col_i64_of_real),
        cmocka_unit_test(test_publish_not_in_batch),
        /* h18-fixops */
        cmocka_unit_test(test_cancel_waits_for_another_servers_claim),
        cmocka_unit_test(test_event_waits_for_another_servers_requeue),
        cmocka_unit_test(test_log_retry_on_two_servers),
        cmocka_unit_test(test_same_nonce_on_two_servers),
        cmocka_unit_test(test_claim_waits_for_another_servers_drain),
        cmocka_unit_test(test_exit_waits_for_another_servers_claim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
