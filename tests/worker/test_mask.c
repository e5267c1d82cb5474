#include "worker/mask.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Feeds the pieces one call each, flushes, and returns the output in out. */
static void run(const struct mask_set *m, const char **pieces, size_t n, struct dbuf *out)
{
    struct mask_stream s;
    mask_stream_init(&s);
    dbuf_reset(out);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mask_feed(m, &s, pieces[i], strlen(pieces[i]), out), 0);
    assert_int_equal(mask_flush(m, &s, out), 0);
    mask_stream_free(&s);
}

static void test_whole_and_split(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1 << 20);
    mask_set_init(&m);
    assert_int_equal(mask_set_add(&m, "s3cret", 6), 0);

    const char *one[] = {"token=s3cret and s3cret again\n"};
    run(&m, one, 1, &out);
    assert_string_equal(dbuf_str(&out), "token=*** and *** again\n");

    /* Split at every possible point of the value. */
    for (int cut = 1; cut < 6; cut++) {
        char a[32], b[32];
        snprintf(a, sizeof(a), "x=%.*s", cut, "s3cret");
        snprintf(b, sizeof(b), "%s!\n", &"s3cret"[cut]);
        const char *two[] = {a, b};
        run(&m, two, 2, &out);
        assert_string_equal(dbuf_str(&out), "x=***!\n");
    }

    /* Byte by byte. */
    const char *bytes[] = {"s", "3", "c", "r", "e", "t"};
    run(&m, bytes, 6, &out);
    assert_string_equal(dbuf_str(&out), "***");

    /* A prefix that never completes comes out unchanged at the end. */
    const char *almost[] = {"value s3cr", "ap\n"};
    run(&m, almost, 2, &out);
    assert_string_equal(dbuf_str(&out), "value s3crap\n");
    const char *tail[] = {"ends with s3c"};
    run(&m, tail, 1, &out);
    assert_string_equal(dbuf_str(&out), "ends with s3c");

    mask_set_free(&m);
    dbuf_free(&out);
}

static void test_held_back_until_known(void **state)
{
    struct mask_set m;
    struct mask_stream s;
    struct dbuf out = DBUF_INIT(1024);
    mask_set_init(&m);
    mask_stream_init(&s);
    assert_int_equal(mask_set_add(&m, "hunter2", 7), 0);

    /* Nothing that could be the start of the secret is written early. */
    assert_int_equal(mask_feed(&m, &s, "pw: hun", 7, &out), 0);
    assert_string_equal(dbuf_str(&out), "pw: ");
    assert_int_equal(mask_feed(&m, &s, "ter2.", 5, &out), 0);
    assert_string_equal(dbuf_str(&out), "pw: ***.");
    mask_stream_free(&s);
    mask_set_free(&m);
    dbuf_free(&out);
}

static void test_longest_overlapping_wins(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1024);
    mask_set_init(&m);
    assert_int_equal(mask_set_add(&m, "abc", 3), 0);
    assert_int_equal(mask_set_add(&m, "abcdef", 6), 0);
    const char *in[] = {"1abcdef2abc3"};
    run(&m, in, 1, &out);
    assert_string_equal(dbuf_str(&out), "1***2***3");
    /* Split so that only the short one is known when the first piece ends. */
    const char *split[] = {"1abc", "def2"};
    run(&m, split, 2, &out);
    assert_string_equal(dbuf_str(&out), "1***2");
    mask_set_free(&m);
    dbuf_free(&out);
}

static void test_multiline_and_binary(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1024);
    mask_set_init(&m);
    const char pem[] = "-----BEGIN KEY-----\nQUJD\r\n-----END KEY-----";
    assert_int_equal(mask_set_add(&m, pem, strlen(pem)), 0);
    const char *in[] = {"line: QUJD\n"};
    run(&m, in, 1, &out);
    assert_string_equal(dbuf_str(&out), "line: ***\n");

    /* NUL bytes pass through untouched around a secret. */
    struct mask_stream s;
    mask_stream_init(&s);
    dbuf_reset(&out);
    assert_int_equal(mask_feed(&m, &s, "\0QUJD\0", 6, &out), 0);
    assert_int_equal(mask_flush(&m, &s, &out), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "\0***\0", 5);
    mask_stream_free(&s);

    /* Empty and duplicate values add nothing. */
    size_t before = m.n;
    assert_int_equal(mask_set_add(&m, "", 0), 0);
    assert_int_equal(mask_set_add(&m, "QUJD", 4), 0);
    assert_int_equal(m.n, before);
    mask_set_free(&m);
    dbuf_free(&out);
}

static void test_no_secrets_is_identity(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1 << 20);
    mask_set_init(&m);
    const char *in[] = {"anything at all\n", "\xff\xfe"};
    run(&m, in, 2, &out);
    assert_string_equal(dbuf_str(&out), "anything at all\n\xff\xfe");
    mask_set_free(&m);
    dbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_split),
        cmocka_unit_test(test_held_back_until_known),
        cmocka_unit_test(test_longest_overlapping_wins),
        cmocka_unit_test(test_multiline_and_binary),
        cmocka_unit_test(test_no_secrets_is_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
