#include "common/spool.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Encodes one record into buf, returns its length. */
static size_t encode(char *buf, char type, uint64_t seq, const char *phase, const char *data,
                     size_t len)
{
    struct spool_record r = {.type = type, .seq = seq, .time_ms = 1764331200123, .len = len};
    strcpy(r.phase, phase);
    strcpy(r.mac, "0123456789abcdef0123456789abcdef"); /* carried, not checked, here */
    size_t h = spool_header(buf, &r);
    memcpy(buf + h, data, len);
    buf[h + len] = '\n';
    return h + len + 1;
}

static void test_roundtrip_binary(void **state)
{
    char buf[256];
    const char payload[] = {'a', '\0', '\n', (char)0xff, (char)0xfe, 'z'};
    size_t n = encode(buf, SPOOL_STDOUT, 7, "plan", payload, sizeof(payload));

    struct spool_record r;
    assert_int_equal(spool_parse(buf, n, &r), (ssize_t)n);
    assert_int_equal(r.type, 'o');
    assert_int_equal(r.seq, 7);
    assert_int_equal(r.time_ms, 1764331200123);
    assert_string_equal(r.phase, "plan");
    assert_int_equal(r.len, sizeof(payload));
    assert_memory_equal(r.data, payload, sizeof(payload));
    assert_string_equal(r.mac, "0123456789abcdef0123456789abcdef");
}

static void test_header_text(void **state)
{
    char buf[SPOOL_HEADER_MAX];
    struct spool_record r = {.type = 'o', .seq = 7, .time_ms = 1764331200123, .len = 5};
    strcpy(r.phase, "plan");
    strcpy(r.mac, "231c7e2f987957f8d3b423cb05d35681");
    size_t n = spool_header_base(buf, &r);
    assert_int_equal(n, strlen("@o 7 1764331200123 plan 5"));
    assert_string_equal(buf, "@o 7 1764331200123 plan 5");
    n = spool_header(buf, &r);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "@o 7 1764331200123 plan 5 231c7e2f987957f8d3b423cb05d35681\n");

    /* The longest header fits. */
    struct spool_record big = {
        .type = 'o', .seq = UINT64_MAX, .time_ms = INT64_MAX, .len = SPOOL_PAYLOAD_MAX};
    memset(big.phase, 'p', SPOOL_PHASE_MAX);
    memset(big.mac, 'f', SPOOL_MAC_HEX);
    n = spool_header(buf, &big);
    assert_true(n < SPOOL_HEADER_MAX);
    assert_int_equal(buf[n - 1], '\n');
}

static void test_partial_is_not_an_error(void **state)
{
    char buf[256];
    size_t n = encode(buf, SPOOL_STDERR, 1, "", "hello", 5);
    struct spool_record r;
    /* Every strict prefix of a record is "need more", never "corrupt". */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(spool_parse(buf, i, &r), 0);
    assert_int_equal(spool_parse(buf, n, &r), (ssize_t)n);
    assert_string_equal(r.phase, ""); /* "-" reads back as no phase */
}

static void test_two_records(void **state)
{
    char buf[256];
    size_t a = encode(buf, SPOOL_PHASE_START, 1, "init", "", 0);
    size_t b = encode(buf + a, SPOOL_RESULT, 2, "", "outcome=finished", 16);
    struct spool_record r;
    assert_int_equal(spool_parse(buf, a + b, &r), (ssize_t)a);
    assert_int_equal(r.type, 'S');
    assert_int_equal(r.len, 0);
    assert_int_equal(spool_parse(buf + a, b, &r), (ssize_t)b);
    assert_int_equal(r.type, 'R');
}

static void test_corrupt(void **state)
{
    static const char *bad[] = {
        "X",                                                /* no @ */
        "@x 1 2 p 0\n\n",                                   /* unknown type */
        "@o one 2 p 0\n\n",                                 /* seq not a number */
        "@o 1 2 p 3\nabcd",                                 /* payload not terminated by newline */
        "@o 1 2 bad/phase 0\n\n",                           /* invalid phase name */
        "@o 1 2 p 99999999\n",                              /* payload over the limit */
        "@o 1 2 p 0 extra\n\n",                             /* trailing garbage in the header */
        "@o  1 2 p 0\n\n",                                  /* double space */
        "@o 1 2 p 0\n\n",                                   /* no MAC */
        "@o 1 2 p 0 0123456789abcdef0123456789abcde\n\n",   /* a MAC too short */
        "@o 1 2 p 0 0123456789abcdef0123456789abcdef0\n\n", /* a MAC too long */
        "@o 1 2 p 0 0123456789ABCDEF0123456789abcdef\n\n",  /* not lowercase hex */
    };
    struct spool_record r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(spool_parse(bad[i], strlen(bad[i]), &r), -1);

    /* A header that never ends is corrupt once it is longer than any header. */
    char junk[SPOOL_HEADER_MAX + 10];
    memset(junk, '@', sizeof(junk));
    assert_int_equal(spool_parse(junk, sizeof(junk), &r), -1);
}

/* A timestamp is an int64_t: one above 2^63 - 1 is corrupt, not a date
 * before 1970. */
static void test_time_above_int64_is_corrupt(void **state)
{
    static const char mac[] = " 0123456789abcdef0123456789abcdef\n";
    static const char *const times[] = {"9223372036854775808", "18446744073709551615",
                                        "9999999999999999999"};
    char buf[256];
    struct spool_record r;
    (void)state;
    snprintf(buf, sizeof(buf), "@o 1 9223372036854775807 plan 2%shi\n", mac);
    assert_int_equal(spool_parse(buf, strlen(buf), &r), (ssize_t)strlen(buf));
    assert_true(r.time_ms == INT64_MAX);
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        snprintf(buf, sizeof(buf), "@o 1 %s plan 2%shi\n", times[i], mac);
        assert_int_equal(spool_parse(buf, strlen(buf), &r), -1);
    }
}

static void test_kv(void **state)
{
    const char *p = "outcome=failed phase=plan exit=3 reason=command 1 of phase plan exited";
    char out[64];
    assert_int_equal(spool_kv(p, strlen(p), "outcome", out, sizeof(out)), 0);
    assert_string_equal(out, "failed");
    assert_int_equal(spool_kv(p, strlen(p), "exit", out, sizeof(out)), 0);
    assert_string_equal(out, "3");
    assert_int_equal(spool_kv(p, strlen(p), "reason", out, sizeof(out)), 0);
    assert_string_equal(out, "command 1 of phase plan exited");
    assert_int_equal(spool_kv(p, strlen(p), "phase", out, 3), 0);
    assert_string_equal(out, "pl"); /* truncated to the buffer */
    assert_int_equal(spool_kv(p, strlen(p), "missing", out, sizeof(out)), -1);
    assert_int_equal(spool_kv(p, strlen(p), "out", out, sizeof(out)), -1);
}

static void test_phase_names(void **state)
{
    assert_true(spool_phase_name_ok("plan"));
    assert_true(spool_phase_name_ok("before_init.v2-x"));
    assert_false(spool_phase_name_ok(""));
    assert_false(spool_phase_name_ok("has space"));
    assert_false(spool_phase_name_ok("x/y"));
    char longname[SPOOL_PHASE_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(spool_phase_name_ok(longname));
    longname[SPOOL_PHASE_MAX] = '\0';
    assert_true(spool_phase_name_ok(longname));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_binary),
        cmocka_unit_test(test_header_text),
        cmocka_unit_test(test_partial_is_not_an_error),
        cmocka_unit_test(test_two_records),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_time_above_int64_is_corrupt),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_phase_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
