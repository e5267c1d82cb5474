#include "common/env.h"
#include "common/outcome.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void clear(void)
{
    unsetenv("DAVIT_TEST_OPT");
    unsetenv("SPACELIFT_TEST_OPT");
}

static void test_alias_and_precedence(void **state)
{
    char which[ENV_NAME_MAX];
    clear();
    assert_null(env_get("TEST_OPT", which, sizeof(which)));
    assert_string_equal(which, "DAVIT_TEST_OPT");

    setenv("SPACELIFT_TEST_OPT", "from-spacelift", 1);
    assert_string_equal(env_get("TEST_OPT", which, sizeof(which)), "from-spacelift");
    assert_string_equal(which, "SPACELIFT_TEST_OPT");

    setenv("DAVIT_TEST_OPT", "from-davit", 1);
    assert_string_equal(env_get("TEST_OPT", which, sizeof(which)), "from-davit");
    assert_string_equal(which, "DAVIT_TEST_OPT");

    /* Empty counts as unset, so the alias shows through. */
    setenv("DAVIT_TEST_OPT", "", 1);
    assert_string_equal(env_get("TEST_OPT", NULL, 0), "from-spacelift");
    clear();
}

static void test_typed(void **state)
{
    char err[256];
    int64_t ms;
    int b;
    long long n;

    clear();
    assert_int_equal(env_duration("TEST_OPT", 5000, &ms, err, sizeof(err)), 0);
    assert_int_equal(ms, 5000);
    setenv("SPACELIFT_TEST_OPT", "7m", 1);
    assert_int_equal(env_duration("TEST_OPT", 5000, &ms, err, sizeof(err)), 0);
    assert_int_equal(ms, 420000);
    setenv("SPACELIFT_TEST_OPT", "soon", 1);
    assert_int_equal(env_duration("TEST_OPT", 5000, &ms, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "SPACELIFT_TEST_OPT"));
    assert_non_null(strstr(err, "\"soon\""));

    setenv("SPACELIFT_TEST_OPT", "TRUE", 1);
    assert_int_equal(env_bool("TEST_OPT", 0, &b, err, sizeof(err)), 0);
    assert_int_equal(b, 1);
    setenv("SPACELIFT_TEST_OPT", "maybe", 1);
    assert_int_equal(env_bool("TEST_OPT", 0, &b, err, sizeof(err)), -1);

    setenv("SPACELIFT_TEST_OPT", "12", 1);
    assert_int_equal(env_int("TEST_OPT", 1, 100, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 12);
    setenv("SPACELIFT_TEST_OPT", "101", 1);
    assert_int_equal(env_int("TEST_OPT", 1, 100, &n, err, sizeof(err)), -1);
    setenv("SPACELIFT_TEST_OPT", "-1", 1);
    assert_int_equal(env_int("TEST_OPT", 1, 100, &n, err, sizeof(err)), -1);
    setenv("SPACELIFT_TEST_OPT", "3x", 1);
    assert_int_equal(env_int("TEST_OPT", 1, 100, &n, err, sizeof(err)), -1);
    clear();
}

static void test_outcomes(void **state)
{
    static const char *names[] = {"finished", "failed", "canceled", "timed_out", "lost"};
    static const int codes[] = {0, 1, 4, 3, 5};
    for (int i = 0; i < 5; i++) {
        enum outcome o;
        assert_int_equal(outcome_parse(names[i], &o), 0);
        assert_string_equal(outcome_name(o), names[i]);
        assert_int_equal(outcome_exit_code(o), codes[i]);
        /* No outcome shares the usage or internal error codes. */
        assert_int_not_equal(outcome_exit_code(o), EXIT_USAGE);
        assert_int_not_equal(outcome_exit_code(o), EXIT_INTERNAL);
    }
    enum outcome o;
    assert_int_equal(outcome_parse("done", &o), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias_and_precedence),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
