#include "common/duration.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_parse_good(void **state)
{
    static const struct {
        const char *in;
        int64_t ms;
    } cases[] = {
        {"0", 0},          {"90", 90000},    {"90s", 90000},  {"1500ms", 1500},
        {"7m", 420000},    {"70m", 4200000}, {"1h", 3600000}, {"1h30m", 5400000},
        {"2d", 172800000}, {"1m30s", 90000}, {"0ms", 0},      {"1h0m5s", 3605000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(duration_parse(cases[i].in, &ms), 0);
        assert_int_equal(ms, cases[i].ms);
    }
}

static void test_parse_bad(void **state)
{
    static const char *bad[] = {"",     "ten", "-5", "5x",  "1.5s",          "s",
                                "1h30", " 5",  "5 ", "5sm", "999999999999d", "101d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        assert_int_equal(duration_parse(bad[i], &ms), -1);
        assert_int_equal(ms, 42);
    }
    int64_t ms;
    assert_int_equal(duration_parse(NULL, &ms), -1);
}

static void test_format(void **state)
{
    char buf[32];
    assert_string_equal(duration_format(0, buf, sizeof(buf)), "0s");
    assert_string_equal(duration_format(1500, buf, sizeof(buf)), "1500ms");
    assert_string_equal(duration_format(90000, buf, sizeof(buf)), "90s");
    assert_string_equal(duration_format(420000, buf, sizeof(buf)), "7m");
    assert_string_equal(duration_format(4200000, buf, sizeof(buf)), "70m");
    assert_string_equal(duration_format(7200000, buf, sizeof(buf)), "2h");
    assert_string_equal(duration_format(-5, buf, sizeof(buf)), "0s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
