#include "common/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Logs one event into a temporary file and returns the text (caller frees). */
static char *capture(enum log_format fmt, const char *msg, const char *k, const char *v)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    log_setup(fmt, 0, f);
    log_event(LOG_INFO, msg, k, v, (char *)NULL);
    log_setup(LOG_TEXT, 0, NULL);
    long len = ftell(f);
    assert_true(len > 0);
    char *text = calloc(1, (size_t)len + 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

static void test_text_fields_and_quoting(void **state)
{
    char *s = capture(LOG_TEXT, "run queued", "run", "42");
    assert_non_null(strstr(s, " info  run queued run=42\n"));
    free(s);
    s = capture(LOG_TEXT, "x", "reason", "has space \"q\"");
    assert_non_null(strstr(s, " reason=\"has space \\\"q\\\"\"\n"));
    free(s);
}

static void test_no_value_can_forge_a_line(void **state)
{
    /* What an attacker could put into a request path. */
    char *s = capture(LOG_TEXT, "request", "path",
                      "/x\n2026-11-28T13:41:52.899Z error store failed\r\x1b[31m");
    assert_int_equal(strchr(s, '\n') - s, (long)strlen(s) - 1); /* exactly one line */
    assert_non_null(strstr(s, "\\x0a2026-11-28"));
    assert_non_null(strstr(s, "\\x0d\\x1b[31m"));
    free(s);
    s = capture(LOG_TEXT, "msg with\nnewline", NULL, NULL);
    assert_int_equal(strchr(s, '\n') - s, (long)strlen(s) - 1);
    free(s);
}

static void test_json(void **state)
{
    char *s = capture(LOG_JSON, "run queued", "run", "42");
    assert_non_null(strstr(s, "\"msg\":\"run queued\",\"run\":\"42\"}\n"));
    free(s);
    /* Not UTF-8: the field is kept, escaped, rather than dropped. */
    s = capture(LOG_JSON, "bad", "path", "/\xff");
    assert_non_null(strstr(s, "\"path\":\"/\\\\xff\""));
    free(s);
}

/* A gate lets per_window lines through in each window and counts the rest, told once at the
 * first line of a later window. */
static void test_gate(void **state)
{
    (void)state;
    struct log_gate g = LOG_GATE_INIT;
    unsigned long long dropped;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(log_gate_pass(&g, 10000 + i, 1000, 3, &dropped), 1);
        assert_int_equal(dropped, 0);
    }
    assert_int_equal(log_gate_pass(&g, 10500, 1000, 3, &dropped), 0);
    assert_int_equal(log_gate_pass(&g, 10999, 1000, 3, &dropped), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(log_gate_pass(&g, 11000, 1000, 3, &dropped), 1); /* a new window */
    assert_int_equal(dropped, 2);
    assert_int_equal(log_gate_pass(&g, 11001, 1000, 3, &dropped), 1);
    assert_int_equal(dropped, 0); /* told once */
    assert_int_equal(log_gate_pass(&g, 50000, 1000, 3, &dropped), 1);
    assert_int_equal(dropped, 0);
    pthread_mutex_destroy(&g.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_fields_and_quoting),
        cmocka_unit_test(test_no_value_can_forge_a_line),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
