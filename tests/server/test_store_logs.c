/* Unit tests of the store's logs (store_log_append, store_log_read) on a real SQLite database. */
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

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
    int64_t launcher, run;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_pool pool = {0};
    char err[256], hash[] = "session";
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-store-logs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/davit.db", f->dir);
    if (store_open(&f->s, f->path, err, sizeof(err)) < 0)
        return -1;
    snprintf(pool.name, sizeof(pool.name), "p");
    snprintf(pool.keytype, sizeof(pool.keytype), "ed25519");
    snprintf(pool.secret_hash, sizeof(pool.secret_hash), "h");
    pool.pubkey_pem = strdup("PEM");
    struct store_launcher_info info = {"host", "0.1.0", "amd64", "{}", 1, 0, 0};
    if (store_pool_create(f->s, &pool) < 0 ||
        store_launcher_register(f->s, pool.id, &info, hash, store_now_ms() + 60000, &f->launcher) <
            0 ||
        store_run_create(f->s, pool.id, "{\"image\":\"x\",\"phases\":[]}", "{}", &f->run) < 0)
        return -1;
    store_pool_clear(&pool);
    json_t *msgs;
    int requeued;
    struct store_claims claimed;
    if (store_poll(f->s, f->launcher, 0, 0, &msgs, &claimed, &requeued) < 0)
        return -1;
    json_decref(msgs);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    store_close(f->s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* count records of size bytes each (header included), seq from *seq on. */
static void make_records(struct dbuf *b, int count, size_t payload, uint64_t *seq)
{
    for (int i = 0; i < count; i++) {
        char header[128];
        int n = snprintf(header, sizeof(header), "@o %llu 1 - %zu %032d\n",
                         (unsigned long long)++*seq, payload, 0);
        assert_int_equal(dbuf_add(b, header, (size_t)n), 0);
        for (size_t j = 0; j < payload; j++)
            assert_int_equal(dbuf_addch(b, (char)('a' + (*seq + j) % 26)), 0);
        assert_int_equal(dbuf_addch(b, '\n'), 0);
    }
}

/* The largest row of the run's log in the database file. */
static int64_t largest_row(struct fx *f)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT max(length(data)) FROM log_chunks", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Large uploads read back whole from any offset, in pieces of any size. */
static void test_large_log_reads_back_from_any_offset(void **state)
{
    struct fx *f = *state;
    struct dbuf log = DBUF_INIT(16 << 20);
    uint64_t seq = 0;
    int64_t next;
    make_records(&log, 100, 40000, &seq); /* about 4 MB in one upload */
    size_t first = log.len;
    assert_int_equal(
        store_log_append(f->s, f->launcher, f->run, 0, log.data, log.len, 64 << 20, &next),
        STORE_OK);
    make_records(&log, 3, 100, &seq);
    assert_int_equal(store_log_append(f->s, f->launcher, f->run, (int64_t)first, log.data + first,
                                      log.len - first, 64 << 20, &next),
                     STORE_OK);
    assert_int_equal(next, (int64_t)log.len);

    const size_t pieces[] = {100003, 262144, 262145, 1 << 20, 16 << 20};
    const int64_t starts[] = {0, 1, 262143, 262144, 300000, (int64_t)first - 5};
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
        for (size_t o = 0; o < sizeof(starts) / sizeof(starts[0]); o++) {
            struct dbuf out = DBUF_INIT(32 << 20);
            int64_t off = starts[o], total;
            int ended;
            /* Read on from off to the end, a piece at a time, as a follow does. */
            while (off < (int64_t)log.len) {
                size_t before = out.len;
                assert_int_equal(
                    store_log_read(f->s, f->run, off, pieces[p], &out, &total, &ended, NULL),
                    STORE_OK);
                assert_true(out.len > before);
                assert_true(out.len - before <= pieces[p]);
                off += (int64_t)(out.len - before);
            }
            assert_int_equal(total, (int64_t)log.len);
            assert_int_equal(out.len, log.len - (size_t)starts[o]);
            assert_memory_equal(out.data, log.data + starts[o], out.len);
            /* At the end: nothing more, and no error. */
            size_t at_end = out.len;
            assert_int_equal(
                store_log_read(f->s, f->run, off, pieces[p], &out, &total, &ended, NULL), STORE_OK);
            assert_int_equal(out.len, at_end);
            dbuf_free(&out);
        }
    }
    /* Straight into a caller's buffer, as a raw download reads. */
    for (size_t o = 0; o < sizeof(starts) / sizeof(starts[0]); o++) {
        char *buf = malloc(log.len);
        int64_t off = starts[o], total;
        int ended;
        size_t got;
        while (off < (int64_t)log.len) {
            assert_int_equal(
                store_log_read_into(f->s, f->run, off, buf + off, 262145, &got, &total, &ended),
                STORE_OK);
            assert_true(got > 0 && got <= 262145);
            off += (int64_t)got;
        }
        assert_int_equal(store_log_read_into(f->s, f->run, off, buf, 10, &got, &total, &ended),
                         STORE_OK);
        assert_int_equal(got, 0);
        assert_memory_equal(buf + starts[o], log.data + starts[o], log.len - (size_t)starts[o]);
        free(buf);
    }
    /* Small reads on both sides of a row's end. */
    for (int64_t off = 262140; off < 262150; off++) {
        struct dbuf out = DBUF_INIT(16);
        int64_t total;
        int ended;
        assert_int_equal(store_log_read(f->s, f->run, off, 7, &out, &total, &ended, NULL),
                         STORE_OK);
        assert_int_equal(out.len, 7);
        assert_memory_equal(out.data, log.data + off, 7);
        dbuf_free(&out);
    }
    /* No reader loads more than 256 KiB it does not need: a large upload is
     * stored in rows no larger (it was one row of the upload's size). */
    assert_true(largest_row(f) <= 256 * 1024);
    dbuf_free(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_log_reads_back_from_any_offset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
