/* Unit tests of the CLI's terminal escaping (src/cli/escape.c). */
#include "cli/escape.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* in is a literal: its bytes, NULs included, but not the terminating one */
#define CHECK(in, want) check(in, sizeof(in) - 1, want)

static void check(const char *in, size_t len, const char *want)
{
    char *got = escape_dup(in, len);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_text_is_kept(void **state)
{
    (void)state;
    CHECK("plain text, 100% \\ ok", "plain text, 100% \\ ok");
    CHECK("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3");
    CHECK("", "");
}

static void test_controls_are_escaped(void **state)
{
    (void)state;
    CHECK("a\x1b[2Jb", "a\\x1b[2Jb");
    CHECK("\x07\x7f\n\t\r", "\\x07\\x7f\\x0a\\x09\\x0d");
    CHECK("a\0b", "a\\x00b");
    CHECK("\xc2\x9b\xc2\x80\xc2\x9f\xc2\xa0", "\\u009b\\u0080\\u009f\xc2\xa0"); /* C1, NBSP kept */
}

static void test_bytes_that_are_not_utf8_are_escaped(void **state)
{
    (void)state;
    CHECK("\x9b", "\\x9b");                            /* a lone 8-bit CSI */
    CHECK("\xc0\xaf", "\\xc0\\xaf");                   /* overlong '/' */
    CHECK("\xe0\x80\x9b", "\\xe0\\x80\\x9b");          /* overlong CSI */
    CHECK("\xed\xa0\x80", "\\xed\\xa0\\x80");          /* a surrogate */
    CHECK("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    CHECK("\xe2\x82", "\\xe2\\x82");                   /* cut short */
    check("\xc3\xa9", 1, "\\xc3");                     /* cut by len */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_kept),
        cmocka_unit_test(test_controls_are_escaped),
        cmocka_unit_test(test_bytes_that_are_not_utf8_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
