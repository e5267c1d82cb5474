/*
 * Unit tests for spool_tail: records written with spool_header() and signed
 * with the run's key, read back whole, in pieces, across restarts from a
 * saved offset, and when corrupt or tampered with (a forged record, a gap, a
 * repeat, a truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/spool_tail.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned char key[SPOOL_KEY_LEN] = "the run key, 32 bytes, not more";

struct fixture {
    char dir[64];
    char path[128];
    int fd;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_spool_tail.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/spool", f->dir);
    f->fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void append_raw(struct fixture *f, const void *p, size_t n)
{
    if (f->fd < 0)
        f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(f->fd >= 0);
    assert_int_equal(write(f->fd, p, n), (ssize_t)n);
}

/* Builds one record into buf, signed with k; returns its length. */
static size_t make_record_key(char *buf, const unsigned char *k, char type, uint64_t seq,
                              const char *phase, const char *data, size_t len)
{
    struct spool_record r = {.type = type, .seq = seq, .time_ms = 1764331200000 + (int64_t)seq};
    struct spool_mac m;
    snprintf(r.phase, sizeof(r.phase), "%s", phase);
    r.data = data;
    r.len = len;
    spool_mac_init(&m, k);
    spool_mac_sign(&m, &r);
    spool_mac_wipe(&m);
    size_t h = spool_header(buf, &r);
    memcpy(buf + h, data, len);
    buf[h + len] = '\n';
    return h + len + 1;
}

static size_t make_record(char *buf, char type, uint64_t seq, const char *phase, const char *data,
                          size_t len)
{
    return make_record_key(buf, key, type, seq, phase, data, len);
}

/* A tail of f's spool from offset, verifying with key. */
static void tail_init(struct fixture *f, struct spool_tail *t, uint64_t offset)
{
    char err[256];
    assert_int_equal(spool_tail_init(t, f->path, offset, err, sizeof(err)), 0);
    spool_tail_set_key(t, key);
}

static void append(struct fixture *f, char type, uint64_t seq, const char *phase, const char *data)
{
    char buf[1024];
    append_raw(f, buf, make_record(buf, type, seq, phase, data, strlen(data)));
}

struct seen {
    char text[8192];
    int n;
    uint64_t last_seq;
    int stop_after;
};

static int collect(const struct spool_record *r, void *arg)
{
    struct seen *s = arg;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof(s->text) - used, "%c%llu:%.*s;", r->type,
             (unsigned long long)r->seq, (int)r->len, r->data);
    s->n++;
    s->last_seq = r->seq;
    return s->stop_after && s->n >= s->stop_after ? -1 : 0;
}

static void test_missing_then_growing(void **state)
{
    struct fixture *f = *state;
    struct spool_tail t;
    struct seen s = {0};
    char err[256];

    tail_init(f, &t, 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 0);

    append(f, 'S', 1, "plan", "");
    append(f, 'o', 2, "plan", "hello\n");
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 2);
    assert_string_equal(s.text, "S1:;o2:hello\n;");

    /* A record written in two pieces is handed over only once it is whole. */
    char buf[256];
    size_t n = make_record(buf, 'e', 3, "plan", "oops", 4);
    append_raw(f, buf, 10);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 0);
    assert_int_equal(spool_tail_pending(&t), 10);
    append_raw(f, buf + 10, n - 10);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 1);
    assert_int_equal(spool_tail_pending(&t), 0);
    assert_int_equal(t.seq, 3);
    assert_int_equal((off_t)t.offset, lseek(f->fd, 0, SEEK_END));
    spool_tail_free(&t);
    spool_tail_free(&t);
}

static void test_resume_from_offset(void **state)
{
    struct fixture *f = *state;
    struct spool_tail t;
    struct seen s = {0};
    char err[256];

    for (int i = 1; i <= 5; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d\n", i);
        append(f, 'o', (uint64_t)i, "p", line);
    }
    /* A reader that stops after 2 records, as a launcher killed there would. */
    s.stop_after = 2;
    tail_init(f, &t, 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 2);
    uint64_t offset = t.offset, seq = t.seq;
    spool_tail_free(&t);

    struct seen s2 = {0};
    tail_init(f, &t, offset);
    t.seq = seq;
    append(f, 'R', 6, "", "outcome=finished phase=- exit=0 duration_ms=1 reason=ok");
    assert_int_equal(spool_tail_read(&t, collect, &s2, err, sizeof(err)), 4);
    assert_string_equal(s2.text, "o3:line 3\n;o4:line 4\n;o5:line 5\n;R6:outcome=finished "
                                 "phase=- exit=0 duration_ms=1 reason=ok;");
    spool_tail_free(&t);
}

static void test_large_records(void **state)
{
    struct fixture *f = *state;
    struct spool_tail t;
    char err[256];
    size_t big = SPOOL_PAYLOAD_MAX;
    char *payload = malloc(big);
    char *buf = malloc(big + SPOOL_HEADER_MAX + 1);
    memset(payload, 'x', big);
    payload[0] = '\0'; /* payloads are bytes, NUL included */
    for (uint64_t i = 1; i <= 20; i++)
        append_raw(f, buf, make_record(buf, 'o', i, "p", payload, big));

    tail_init(f, &t, 0);
    struct seen s = {0};
    int total = 0, n;
    /* A 64 KiB record at a time, as the file grows: all 20 arrive. */
    while ((n = spool_tail_read(&t, NULL, &s, err, sizeof(err))) > 0)
        total += n;
    assert_int_equal(n, 0);
    assert_int_equal(total, 20);
    assert_int_equal(t.seq, 20);
    spool_tail_free(&t);
    free(payload);
    free(buf);
}

static void test_corrupt(void **state)
{
    struct fixture *f = *state;
    struct spool_tail t;
    struct seen s = {0};
    char err[256];

    append(f, 'o', 1, "p", "ok\n");
    append_raw(f, "garbage that is not a record\n", 29);
    tail_init(f, &t, 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "spool tampered: record 2 is malformed (at offset 60)");
    assert_int_equal(s.n, 1);
    spool_tail_free(&t);

    /* Without a key (tools, tests) it is only corrupt. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(spool_tail_init(&t, f->path, 0, err, sizeof(err)), 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "corrupt record at offset 60"));
    assert_int_equal(s.n, 1);
    spool_tail_free(&t);
}

/* Reads f's spool from the start; expects n records, then the error want. */
static void expect_tampered(struct fixture *f, int n, const char *want)
{
    struct spool_tail t;
    struct seen s = {0};
    char err[256];
    tail_init(f, &t, 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_int_equal(s.n, n);
    assert_true(t.tampered);
    /* Sticky: nothing after the first bad record is ever handed over. */
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_int_equal(s.n, n);
    spool_tail_free(&t);
}

static void test_sequence_gap(void **state)
{
    struct fixture *f = *state;
    append(f, 'o', 1, "p", "a");
    append(f, 'o', 3, "p", "b");
    append(f, 'o', 4, "p", "c");
    expect_tampered(f, 1, "spool tampered: record 2 is missing (the next one is 3)");
}

static void test_first_record_is_1(void **state)
{
    struct fixture *f = *state;
    append(f, 'o', 2, "p", "a");
    expect_tampered(f, 0, "spool tampered: record 1 is missing (the next one is 2)");
}

static void test_repeated_record(void **state)
{
    struct fixture *f = *state;
    char buf[256];
    size_t n = make_record(buf, 'o', 1, "p", "a", 1);
    append_raw(f, buf, n);
    append(f, 'o', 2, "p", "b");
    append_raw(f, buf, n); /* a genuine record, replayed */
    expect_tampered(f, 2, "spool tampered: record 2 is followed by a repeated record 1");
}

static void test_forged_records(void **state)
{
    struct fixture *f = *state;
    static const unsigned char wrong[SPOOL_KEY_LEN] = "a key a phase could make up....";
    char buf[256];

    append(f, 'S', 1, "plan", "");
    append(f, 'o', 2, "plan", "x");
    /* A phase's line under another phase's name, signed with a guess of the key. */
    append_raw(f, buf, make_record_key(buf, wrong, 'o', 3, "apply", "forged\n", 7));
    append(f, 'R', 4, "", "outcome=finished phase=- exit=0 duration_ms=1 reason=ok");
    expect_tampered(f, 2, "spool tampered: record 3 has a bad MAC");
}

/* A forged record's seq is not believed either: the MAC is checked first, so
 * a forgery that repeats or skips a number is a bad MAC, never a replayed or
 * missing record of the worker's. */
static void test_forged_record_with_any_seq(void **state)
{
    struct fixture *f = *state;
    static const unsigned char wrong[SPOOL_KEY_LEN] = "a key a phase could make up....";
    static const uint64_t claimed[] = {3, 1, 9};
    char buf[256];

    for (size_t i = 0; i < sizeof(claimed) / sizeof(claimed[0]); i++) {
        unlink(f->path);
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1;
        append(f, 'S', 1, "plan", "");
        append(f, 'c', 2, "plan", "run echo genuine");
        append(f, 'o', 3, "plan", "genuine\n");
        append_raw(f, buf,
                   make_record_key(buf, wrong, 'R', claimed[i], "-", "outcome=finished", 16));
        expect_tampered(f, 3, "spool tampered: record 4 has a bad MAC");
    }
}

static void test_altered_result(void **state)
{
    struct fixture *f = *state;
    char buf[256];
    append(f, 'o', 1, "plan", "x");
    /* The worker's failed result, turned into a pass by editing the payload. */
    size_t n = make_record(buf, 'R', 2, "", "outcome=failed phase=plan exit=1", 32);
    memcpy(strstr(buf, "outcome=failed"), "outcome=passed", 14);
    append_raw(f, buf, n);
    expect_tampered(f, 1, "spool tampered: record 2 has a bad MAC");
}

static void test_truncated(void **state)
{
    struct fixture *f = *state;
    struct spool_tail t;
    struct seen s = {0};
    char err[256];

    append(f, 'o', 1, "p", "a");
    append(f, 'o', 2, "p", "b");
    tail_init(f, &t, 0);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), 2);
    uint64_t read = t.offset;
    assert_int_equal(ftruncate(f->fd, 10), 0);
    char want[128];
    snprintf(want, sizeof(want),
             "spool tampered: the spool shrank to 10 bytes after %llu were read",
             (unsigned long long)read);
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    /* Written again past what was read: still refused. */
    append(f, 'o', 3, "p", "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
    assert_int_equal(spool_tail_read(&t, collect, &s, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_int_equal(s.n, 2);
    spool_tail_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_then_growing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_record_is_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_record_with_any_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_altered_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
