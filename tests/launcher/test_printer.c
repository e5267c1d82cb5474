/* Unit tests for printer: readable lines, JSON lines, UTF-8 repair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/printer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct spool_record rec(char type, const char *phase, const char *data, size_t len)
{
    struct spool_record r = {.type = type, .seq = 7, .time_ms = 1764331200123};
    snprintf(r.phase, sizeof(r.phase), "%s", phase);
    r.data = data;
    r.len = len;
    return r;
}

static char *print_to_string(enum printer_format fmt, struct spool_record *rs, size_t n)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    struct printer p;
    printer_init(&p, f, fmt, "exec-1");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(printer_record(&p, &rs[i]), 0);
    fclose(f);
    return buf;
}

static void test_text(void **state)
{
    struct spool_record rs[] = {
        rec('S', "plan", "", 0),
        rec('c', "plan", "before echo a\necho b", 20),
        rec('o', "plan", "one\ntwo\n", 8),
        rec('o', "plan", "partial", 7),
        rec('e', "plan", "err\n", 4),
        rec('E', "plan", "outcome=failed exit=3 duration_ms=12", 36),
        rec('R', "", "outcome=failed phase=plan exit=3 duration_ms=1 reason=x", 54),
    };
    char *out = print_to_string(PRINTER_TEXT, rs, sizeof(rs) / sizeof(rs[0]));
    assert_non_null(strstr(out, " plan     > phase started\n"));
    assert_non_null(strstr(out, " plan     $ before: echo a\n"));
    assert_non_null(strstr(out, " plan     > echo b\n"));
    assert_non_null(strstr(out, " plan     | one\n"));
    assert_non_null(strstr(out, " plan     | two\n"));
    assert_non_null(strstr(out, " plan     | partial\n"));
    assert_non_null(strstr(out, " plan     ! err\n"));
    assert_non_null(strstr(out, " plan     < phase failed (exit 3, 12 ms)\n"));
    assert_null(strstr(out, "reason=x")); /* the launcher prints the result itself */
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 8);
    free(out);
}

static void test_json(void **state)
{
    struct spool_record rs[] = {rec('o', "plan", "bad \xff utf8 \0 nul\n", 17)};
    char *out = print_to_string(PRINTER_JSON, rs, 1);
    json_error_t e;
    json_t *j = json_loads(out, JSON_ALLOW_NUL, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "stdout");
    assert_string_equal(json_string_value(json_object_get(j, "phase")), "plan");
    assert_string_equal(json_string_value(json_object_get(j, "run")), "exec-1");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 7);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2025-11-28T12:00:00.123Z");
    json_t *t = json_object_get(j, "text");
    assert_int_equal(json_string_length(t), 19);
    assert_memory_equal(json_string_value(t), "bad \xef\xbf\xbd utf8 \0 nul\n", 19);
    json_decref(j);
    free(out);
}

static void test_utf8(void **state)
{
    const char *cases[][2] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* truncated sequence */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = printer_json_text(cases[i][0], strlen(cases[i][0]));
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i][1]);
        json_decref(j);
    }
}

static void test_result(void **state)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    struct printer p;
    printer_init(&p, f, PRINTER_JSON, "exec-1");
    assert_int_equal(printer_result(&p, OUTCOME_TIMED_OUT, "", -1, 2000, "launcher: run timeout"),
                     0);
    fclose(f);
    json_t *j = json_loads(buf, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "timed_out");
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 3);
    assert_true(json_is_null(json_object_get(j, "phase")));
    json_decref(j);
    free(buf);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
