/*
 * Unit tests of the store's /metrics gauges (store_metrics.c): the runs'
 * counts follow every change of a run, survive a restart, and reading them
 * costs the same with 10 runs or 3,000.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/store_int.h"

#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
    char dir[64], path[128];
    struct store *s;
    struct store_pool pool;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-metrics-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/davit.db", f->dir);
    if (store_open(&f->s, f->path, err, sizeof(err)) < 0)
        return -1;
    snprintf(f->pool.name, sizeof(f->pool.name), "p");
    snprintf(f->pool.keytype, sizeof(f->pool.keytype), "ed25519");
    snprintf(f->pool.secret_hash, sizeof(f->pool.secret_hash), "h");
    f->pool.pubkey_pem = strdup("PEM");
    if (store_pool_create(f->s, &f->pool) < 0 || store_metrics_prepare(f->s) < 0)
        return -1;
    *state = f;
    return 0;
}

/* The store makes only the database and its WAL and shared memory files. */
static int teardown(void **state)
{
    struct fx *f = *state;
    static const char *const suffix[] = {"", "-wal", "-shm"};
    int rc = 0;
    store_close(f->s);
    store_pool_clear(&f->pool);
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        if (unlink(p) < 0 && errno != ENOENT)
            rc = -1;
    }
    if (rmdir(f->dir) < 0)
        rc = -1;
    free(f);
    return rc;
}

static int64_t submit(struct fx *f)
{
    int64_t id;
    assert_int_equal(
        store_run_create(f->s, f->pool.id, "{\"image\":\"x\",\"phases\":[]}", NULL, &id), STORE_OK);
    return id;
}

/* The gauges' text, which the caller frees. */
static char *gauges(struct fx *f)
{
    struct dbuf b = DBUF_INIT(1 << 20);
    assert_int_equal(store_metrics(f->s, 60000, &b), STORE_OK);
    return dbuf_take(&b);
}

static void expect(struct fx *f, const char *line, int present)
{
    char *text = gauges(f);
    if ((strstr(text, line) != NULL) != present)
        fail_msg("%s \"%s\" in:\n%s", present ? "no" : "unexpected", line, text);
    free(text);
}

static void test_counts_follow_the_runs(void **state)
{
    struct fx *f = *state;
    expect(f, "davit_runs_pending{pool=\"p\"} 0\n", 1);
    int64_t r1 = submit(f), r2 = submit(f), r3 = submit(f);
    (void)r3;
    expect(f, "davit_runs{pool=\"p\",state=\"queued\"} 3\n", 1);
    expect(f, "davit_runs_pending{pool=\"p\"} 3\n", 1);

    struct store_launcher_info info = {"host", "0.1.0", "amd64", "{}", 1, 0, 0};
    int64_t l;
    assert_int_equal(
        store_launcher_register(f->s, f->pool.id, &info, "session", store_now_ms() + 60000, &l),
        STORE_OK);
    json_t *msgs;
    struct store_claims claimed;
    int requeued, ended;
    int64_t on;
    assert_int_equal(store_poll(f->s, l, 0, 0, &msgs, &claimed, &requeued), STORE_OK);
    json_decref(msgs);
    assert_int_equal(claimed.n, 1);
    assert_int_equal(claimed.run_id[0], r1);
    expect(f, "davit_runs{pool=\"p\",state=\"assigned\"} 1\n", 1);
    expect(f, "davit_runs{pool=\"p\",state=\"queued\"} 2\n", 1);
    struct store_event res = {1, "result", NULL, "finished", "ok", 0};
    char st[32];
    assert_int_equal(store_run_event(f->s, l, r1, &res, st), STORE_OK);
    assert_int_equal(store_run_cancel(f->s, r2, &ended, &on), STORE_OK);
    assert_int_equal(ended, 1);
    expect(f, "davit_runs{pool=\"p\",state=\"assigned\"}", 0); /* none left: no line */
    expect(f, "davit_runs{pool=\"p\",state=\"finished\"} 1\n", 1);
    expect(f, "davit_runs{pool=\"p\",state=\"canceled\"} 1\n", 1);
    expect(f, "davit_runs{pool=\"p\",state=\"queued\"} 1\n", 1);
    assert_int_equal(store_run_delete(f->s, r1), STORE_OK);
    expect(f, "davit_runs{pool=\"p\",state=\"finished\"}", 0);

    /* a restart counts again from the runs */
    char err[256];
    store_close(f->s);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof(err)), 0);
    expect(f, "davit_runs{pool=\"p\",state=\"canceled\"} 1\n", 1);
    expect(f, "davit_runs{pool=\"p\",state=\"queued\"} 1\n", 1);
}

/* The SQLite driver's connection: its state (s->conn) begins with the sqlite3 handle. */
static sqlite3 *db_of(struct store *s)
{
    return *(sqlite3 **)s->conn;
}

static int count_step(void *arg)
{
    (*(long *)arg)++;
    return 0;
}

/* SQLite's virtual machine instructions one store_metrics() takes: a count
 * that does not depend on the machine's speed. */
static long metrics_steps(struct fx *f)
{
    long steps = 0;
    sqlite3_progress_handler(db_of(f->s), 1, count_step, &steps);
    free(gauges(f));
    sqlite3_progress_handler(db_of(f->s), 0, NULL, NULL);
    return steps;
}

static void test_cost_does_not_grow_with_runs(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 10; i++)
        submit(f);
    free(gauges(f)); /* statements and pages warm */
    long few = metrics_steps(f);
    /* 3,000 finished runs more, in one statement (the triggers see them) */
    assert_int_equal(
        sqlite3_exec(
            db_of(f->s),
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
            " INSERT INTO runs(pool_id, state, spec_json, created_ms, queued_ms, ended_ms)"
            " SELECT (SELECT id FROM pools), 'finished', '{}', 0, 0, 0 FROM n",
            NULL, NULL, NULL),
        SQLITE_OK);
    expect(f, "davit_runs{pool=\"p\",state=\"finished\"} 3000\n", 1);
    long many = metrics_steps(f);
    if (many > few + few / 4)
        fail_msg("store_metrics took %ld steps with 10 runs, %ld with 3010", few, many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_follow_the_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cost_does_not_grow_with_runs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
