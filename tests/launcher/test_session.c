/* Unit tests for session: the launcher id kept in the state directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/rundir_write.h"
#include "launcher/session.h"
#include "launcher/state.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_session.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char err[256];
    rundir_remove(dir, err, sizeof(err));
    return 0;
}

static void test_id_kept_per_pool(void **state)
{
    (void)state;
    struct state st;
    char err[512];
    assert_int_equal(state_open(&st, dir, err, sizeof(err)), 0);
    assert_int_equal(session_id_load(&st, "p1"), 0); /* none yet */
    session_id_store(&st, "p1", 42);
    assert_int_equal(session_id_load(&st, "p1"), 42);
    assert_int_equal(session_id_load(&st, "p2"), 0); /* another pool's id is not ours */
    state_close(&st);
}

/* The pool id comes from the token; the file stays JSON whatever it holds. */
static void test_id_file_escapes_pool_id(void **state)
{
    (void)state;
    struct state st;
    char err[512], *text = NULL;
    const char *pool = "p\"1\\\n";
    assert_int_equal(state_open(&st, dir, err, sizeof(err)), 0);
    session_id_store(&st, pool, 7);
    assert_int_equal(state_file_read(&st, "server-id", &text, err, sizeof(err)), 1);
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "pool_id")), pool);
    json_decref(o);
    free(text);
    assert_int_equal(session_id_load(&st, pool), 7);
    state_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_id_kept_per_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_file_escapes_pool_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
