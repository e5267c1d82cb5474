#include "common/diskspace.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define MIB (1024ULL * 1024)
#define GIB (1024 * MIB)

static void test_low_and_full(void **state)
{
    static const struct {
        uint64_t free, total;
        int low, full;
    } cases[] = {
        {100 * GIB, 200 * GIB, 0, 0}, {400 * MIB, 200 * GIB, 1, 0}, /* under 512 MiB and under 5% */
        {600 * MIB, 200 * GIB, 0, 0}, /* under 5%, but 600 MiB is room enough */
        {3 * MIB, 8 * MIB, 0, 0},     /* a small filesystem is not low for being small */
        {300 * 1024, 8 * MIB, 1, 1},  {0, 8 * MIB, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct diskspace d = {cases[i].free, cases[i].total};
        assert_int_equal(diskspace_low(&d), cases[i].low);
        assert_int_equal(diskspace_full(&d), cases[i].full);
    }
}

static void test_format(void **state)
{
    char buf[32];
    assert_string_equal(diskspace_format(0, buf, sizeof(buf)), "0 B");
    assert_string_equal(diskspace_format(1023, buf, sizeof(buf)), "1023 B");
    assert_string_equal(diskspace_format(1536, buf, sizeof(buf)), "1.5 KiB");
    assert_string_equal(diskspace_format(5 * GIB, buf, sizeof(buf)), "5.0 GiB");
}

static void test_get(void **state)
{
    struct diskspace d;
    assert_int_equal(diskspace_get("/", &d), 0);
    assert_true(d.total_bytes > 0 && d.free_bytes <= d.total_bytes);
    assert_int_equal(diskspace_get("/no/such/dir", &d), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_low_and_full),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
