#include "common/hex.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_round_trip(void **state)
{
    (void)state;
    const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char hex[2 * sizeof(in) + 1];
    unsigned char out[sizeof(in)];
    hex_encode(in, sizeof(in), hex);
    assert_string_equal(hex, "00017f80abff");
    assert_true(hex_is(hex, 12));
    assert_int_equal(hex_decode(hex, out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    hex_encode(in, 0, hex);
    assert_string_equal(hex, "");
}

static void test_refused(void **state)
{
    (void)state;
    unsigned char out[3];
    static const char *bad[] = {"", "00", "0001", "000102ff", "00010G", "0001FF", "00 102"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(out, 0x55, sizeof(out));
        assert_int_equal(hex_decode(bad[i], out, sizeof(out)), -1);
        assert_int_equal(out[0] | out[1] | out[2], 0); /* nothing half-decoded */
    }
    assert_false(hex_is("abc", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
