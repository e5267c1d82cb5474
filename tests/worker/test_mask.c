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

/* Values that overlap in the output: the bytes of both are hidden, by one mask. */
static void test_overlapping_values_leak_nothing(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1024);
    mask_set_init(&m);
    assert_int_equal(mask_set_add(&m, "abcd", 4), 0);
    assert_int_equal(mask_set_add(&m, "cdef", 4), 0);
    const char *in[] = {"xabcdefx"};
    run(&m, in, 1, &out);
    assert_string_equal(dbuf_str(&out), "x***x");
    /* the second value is known only after the first one's end */
    const char *split[] = {"xabcd", "efx"};
    run(&m, split, 2, &out);
    assert_string_equal(dbuf_str(&out), "x***x");
    const char *bytes[] = {"x", "a", "b", "c", "d", "e", "f", "x"};
    run(&m, bytes, 8, &out);
    assert_string_equal(dbuf_str(&out), "x***x");
    /* two that only touch are two masks, as before */
    const char *touch[] = {"abcdcdef"};
    run(&m, touch, 1, &out);
    assert_string_equal(dbuf_str(&out), "******");
    mask_set_free(&m);
    dbuf_free(&out);
}

/* A value that overlaps itself, and one that is the prefix of another. */
static void test_chains_and_prefixes_leak_nothing(void **state)
{
    struct mask_set m;
    struct dbuf out = DBUF_INIT(1024);
    mask_set_init(&m);
    assert_int_equal(mask_set_add(&m, "aba", 3), 0);
    const char *chain[] = {"ababab."};
    run(&m, chain, 1, &out);
    assert_string_equal(dbuf_str(&out), "***b.");
    const char *chain_split[] = {"ab", "ab", "ab", "a."};
    run(&m, chain_split, 4, &out);
    assert_string_equal(dbuf_str(&out), "***.");
    mask_set_free(&m);

    mask_set_init(&m);
    assert_int_equal(mask_set_add(&m, "pass", 4), 0);
    assert_int_equal(mask_set_add(&m, "password", 8), 0);
    assert_int_equal(mask_set_add(&m, "word123", 7), 0);
    const char *prefix[] = {"my pass", "word123!"};
    run(&m, prefix, 2, &out);
    assert_string_equal(dbuf_str(&out), "my ***!");
    mask_set_free(&m);
    dbuf_free(&out);
}

/* A small PRNG with a fixed seed: the same cases every run. */
static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* The longest value of set (n values, NUL-terminated) that starts at in[i]. */
static size_t ref_longest(char set[][8], size_t n, const char *in, size_t len, size_t i)
{
    size_t best = 0;
    for (size_t k = 0; k < n; k++) {
        size_t vl = strlen(set[k]);
        if (vl <= len - i && vl > best && memcmp(in + i, set[k], vl) == 0)
            best = vl;
    }
    return best;
}

/*
 * The reference masker, on the whole input at once, by brute force: at each
 * position the longest value that starts there opens a mask, which grows
 * while a value starting inside it ends after it; each mask is one "***".
 */
static void reference(char set[][8], size_t n, const char *in, size_t len, struct dbuf *out)
{
    dbuf_reset(out);
    for (size_t i = 0; i < len;) {
        size_t end = i + ref_longest(set, n, in, len, i);
        if (end == i) {
            assert_int_equal(dbuf_add(out, in + i, 1), 0);
            i++;
            continue;
        }
        for (size_t j = i + 1; j < end; j++)
            if (j + ref_longest(set, n, in, len, j) > end)
                end = j + ref_longest(set, n, in, len, j);
        assert_int_equal(dbuf_addstr(out, MASK_TEXT), 0);
        i = end;
    }
}

/* Random values over a small alphabet (so that they overlap often), random
 * input, cut in random pieces: the output is the reference's, and no value
 * comes out. */
static void test_random_against_reference(void **state)
{
    static const char alphabet[] = "abc";
    uint32_t x = 0x2545f491;
    struct dbuf out = DBUF_INIT(1 << 16), want = DBUF_INIT(1 << 16);
    for (int round = 0; round < 20000; round++) {
        char set[4][8], in[64];
        size_t n = 1 + rnd(&x) % 4, len = rnd(&x) % sizeof(in);
        struct mask_set m;
        mask_set_init(&m);
        for (size_t k = 0; k < n; k++) {
            size_t vl = 1 + rnd(&x) % 6;
            for (size_t c = 0; c < vl; c++)
                set[k][c] = alphabet[rnd(&x) % 3];
            set[k][vl] = '\0';
            assert_int_equal(mask_set_add(&m, set[k], vl), 0);
        }
        for (size_t c = 0; c < len; c++)
            in[c] = alphabet[rnd(&x) % 3];
        struct mask_stream s;
        mask_stream_init(&s);
        dbuf_reset(&out);
        for (size_t at = 0; at < len;) {
            size_t piece = 1 + rnd(&x) % (len - at);
            if (rnd(&x) % 2 && piece > 3)
                piece = 1 + piece % 3; /* small pieces often */
            assert_int_equal(mask_feed(&m, &s, in + at, piece, &out), 0);
            at += piece;
        }
        assert_int_equal(mask_flush(&m, &s, &out), 0);
        mask_stream_free(&s);
        reference(set, n, in, len, &want);
        if (out.len != want.len || memcmp(out.data, want.data, out.len) != 0)
            fail_msg("round %d: \"%.*s\" (values \"%s\" \"%s\" \"%s\" \"%s\") gave \"%s\", "
                     "the reference \"%s\"",
                     round, (int)len, in, set[0], n > 1 ? set[1] : "", n > 2 ? set[2] : "",
                     n > 3 ? set[3] : "", dbuf_str(&out), dbuf_str(&want));
        for (size_t k = 0; k < n; k++)
            if (memmem(out.data, out.len, set[k], strlen(set[k])))
                fail_msg("round %d: \"%s\" came out in \"%s\"", round, set[k], dbuf_str(&out));
        mask_set_free(&m);
    }
    dbuf_free(&out);
    dbuf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_split),
        cmocka_unit_test(test_held_back_until_known),
        cmocka_unit_test(test_longest_overlapping_wins),
        cmocka_unit_test(test_multiline_and_binary),
        cmocka_unit_test(test_no_secrets_is_identity),
        cmocka_unit_test(test_overlapping_values_leak_nothing),
        cmocka_unit_test(test_chains_and_prefixes_leak_nothing),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
