/* Unit tests of the davit command table and its option check (src/cli/commands.c). */
#include "cli/cli.h"

#include "common/outcome.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Each row is complete, once, and documents every option it has. */
static void test_every_row_documents_its_options(void **state)
{
    (void)state;
    for (const struct cli_cmd *k = cli_commands; k->group; k++) {
        assert_non_null(k->args);
        assert_non_null(k->summary);
        assert_true(strlen(k->summary) > 0);
        assert_non_null(k->run);
        assert_ptr_equal(cli_find(k->group, k->name), k);
        size_t n = 0;
        for (const struct option *o = k->opts; o && o->name; o++, n++) {
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", o->name);
            int documented = strstr(k->args, flag) || (k->help && strstr(k->help, flag));
            if (!documented)
                fail_msg("%s %s: %s is not in its usage", k->group, k->name, flag);
            /* the option check keeps 'h' for --help, '?' and ':' for errors */
            assert_true(o->val != 'h' && o->val != '?' && o->val != ':' && o->val != 0);
            assert_null(o->flag);
        }
        assert_true(n <= CLI_MAX_OPTS);
    }
    assert_non_null(cli_find("server", NULL));
    assert_non_null(cli_find("run", "delete"));
    assert_null(cli_find("run", NULL));
    assert_null(cli_find("run", "bogus"));
}

/* cli_check_options on "name ARG…" (NULL-terminated) for the row group name. */
static int check(const char *group, const char *name, ...)
{
    char *argv[16] = {(char *)name};
    int argc = 1;
    va_list ap;
    va_start(ap, name);
    while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
        argc++;
    va_end(ap);
    const struct cli_cmd *k = cli_find(group, name);
    assert_non_null(k);
    return cli_check_options(k, argc, argv);
}

#define CHECK(group, name, ...) check(group, name, __VA_ARGS__, (char *)NULL)

static void test_option_check(void **state)
{
    (void)state;
    assert_int_equal(CHECK("run", "list", "--limit", "5", "--all"), -1);
    assert_int_equal(CHECK("run", "list", "--limit=5", "--pool", "web"), -1);
    assert_int_equal(CHECK("run", "list", "--limit"), EXIT_USAGE);
    assert_int_equal(CHECK("run", "list", "--bogus"), EXIT_USAGE);
    assert_int_equal(CHECK("run", "list", "-x"), EXIT_USAGE);
    assert_int_equal(CHECK("run", "logs", "1", "--follow=yes"), EXIT_USAGE);
    assert_int_equal(CHECK("run", "show", "--follow", "1"), EXIT_USAGE);
    /* help wins over a mistake, wherever it is */
    assert_int_equal(CHECK("run", "list", "--bogus", "--help"), 0);
    assert_int_equal(CHECK("run", "show", "-h", "--bogus"), 0);
    assert_int_equal(CHECK("pool", "list", "-h"), 0);
    /* the value of an option is not an option, even when it reads like one */
    assert_int_equal(CHECK("run", "submit", "--phase", "--help"), -1);
    /* after "--", nothing is an option */
    assert_int_equal(CHECK("run", "show", "--", "--help"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_documents_its_options),
        cmocka_unit_test(test_option_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
