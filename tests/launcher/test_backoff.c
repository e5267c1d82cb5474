/* Unit tests of backoff (delays) and the shipper's pure parts (batching). */
#include "common/spool.h"
#include "launcher/backoff.h"
#include "launcher/shipper.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_backoff_doubles_to_the_cap_with_jitter(void **state)
{
    (void)state;
    struct backoff b;
    backoff_init(&b, 1000, 30000, 42);
    int64_t cap = 1000;
    for (int i = 0; i < 20; i++) {
        int64_t d = backoff_next(&b);
        assert_true(d >= cap / 2);
        assert_true(d <= cap);
        cap = cap * 2 > 30000 ? 30000 : cap * 2;
    }
    /* At the cap, delays stay within [15 s, 30 s]. */
    assert_int_equal(b.cur_ms, 30000);
    backoff_reset(&b);
    int64_t d = backoff_next(&b);
    assert_true(d >= 500 && d <= 1000);
}

static void test_backoff_jitter_spreads(void **state)
{
    (void)state;
    struct backoff a, b;
    backoff_init(&a, 1000, 30000, 1);
    backoff_init(&b, 1000, 30000, 2);
    int differ = 0;
    for (int i = 0; i < 8; i++)
        differ |= backoff_next(&a) != backoff_next(&b);
    assert_true(differ);
}

static size_t rec(char *buf, char type, uint64_t seq, const char *payload)
{
    struct spool_record r = {.type = type, .seq = seq, .time_ms = 1, .len = strlen(payload)};
    snprintf(r.phase, sizeof(r.phase), "plan");
    memset(r.mac, '0', SPOOL_MAC_HEX); /* the shipper does not check it */
    size_t n = spool_header(buf, &r);
    memcpy(buf + n, payload, r.len);
    buf[n + r.len] = '\n';
    return n + r.len + 1;
}

static void test_whole_records_only(void **state)
{
    (void)state;
    char buf[512];
    size_t a = rec(buf, 'o', 1, "hello\n");
    size_t b = rec(buf + a, 'o', 2, "world\n");
    assert_int_equal(shipper_whole(buf, a + b), (ssize_t)(a + b));
    /* A torn last record is left for the next batch. */
    assert_int_equal(shipper_whole(buf, a + b - 3), (ssize_t)a);
    assert_int_equal(shipper_whole(buf, a - 1), 0);
    /* Garbage at the start is an error; after whole records it ends the batch. */
    assert_int_equal(shipper_whole("garbage", 7), -1);
    memcpy(buf + a, "xxxx", 4);
    assert_int_equal(shipper_whole(buf, a + 4), (ssize_t)a);
}

static void test_batches_are_due_by_time_size_and_backoff(void **state)
{
    (void)state;
    struct shipper sh;
    assert_int_equal(shipper_init(&sh, 7, "/nonexistent/spool", 100, 1), 0);
    assert_int_equal(shipper_due(&sh, 100, 5000), -1); /* nothing new */
    assert_int_equal(shipper_due(&sh, 150, 5000), 0);  /* the first bytes go at once */
    sh.last_ms = 5000;
    assert_int_equal(shipper_due(&sh, 200, 5050), SHIP_INTERVAL_MS - 50);
    assert_int_equal(shipper_due(&sh, 200, 5000 + SHIP_INTERVAL_MS), 0);
    assert_int_equal(shipper_due(&sh, 100 + SHIP_BATCH_MAX, 5001), 0); /* a full batch */
    sh.retry_at = 9000;
    assert_int_equal(shipper_due(&sh, 100 + SHIP_BATCH_MAX, 6000), 3000);
    sh.full = 1;
    assert_int_equal(shipper_due(&sh, 1000, 10000), -1);
    shipper_free(&sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_the_cap_with_jitter),
        cmocka_unit_test(test_backoff_jitter_spreads),
        cmocka_unit_test(test_whole_records_only),
        cmocka_unit_test(test_batches_are_due_by_time_size_and_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
