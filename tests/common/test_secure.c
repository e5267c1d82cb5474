/*
 * Unit tests of secure.c and of the buffers for secrets (dbuf's wipe flag): no block freed on
 * their way holds a byte sequence of the secret. freed.h watches the heap's frees under
 * AddressSanitizer; each test first shows that the watch sees a secret left by a plain realloc
 * or by jansson's default free, which is what davit did before.
 */
#include "common/dbuf.h"
#include "common/secure.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "freed.h"

/* Long enough that no unrelated block holds it by chance. */
static const char SECRET[] = "s3cr3t-0123456789abcdef-do-not-leak";

/* Makes the buffer grow several times past a secret it holds, then frees it. */
static void fill_and_free(struct dbuf *b)
{
    char filler[100];
    memset(filler, '.', sizeof(filler));
    assert_int_equal(dbuf_addstr(b, SECRET), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(dbuf_add(b, filler, sizeof(filler)), 0);
    dbuf_free(b);
}

static void test_plain_dbuf_leaves_copies(void **state)
{
    (void)state;
    if (freed_watch(SECRET, 16) < 0)
        skip();
    struct dbuf b = DBUF_INIT(1 << 20);
    fill_and_free(&b);
    /* Every realloc left the secret behind, and so did the free. */
    assert_true(freed_stop() > 1);
}

static void test_secret_dbuf_leaves_nothing(void **state)
{
    (void)state;
    if (freed_watch(SECRET, 16) < 0)
        skip();
    struct dbuf b = DBUF_INIT_SECRET(1 << 20);
    fill_and_free(&b);
    assert_int_equal(b.wipe, 1); /* still a buffer for secrets, ready for reuse */

    /* printf, consume, reset and take, reused after each. */
    assert_int_equal(dbuf_printf(&b, "token=%s", SECRET), 0);
    dbuf_consume(&b, 6);
    assert_string_equal(dbuf_str(&b), SECRET);
    assert_int_equal(dbuf_printf(&b, "%0300d%s", 0, SECRET), 0);
    dbuf_reset(&b);
    assert_int_equal(dbuf_addstr(&b, SECRET), 0);
    char *taken = dbuf_take(&b);
    assert_string_equal(taken, SECRET);
    assert_int_equal(b.wipe, 1);
    secure_free_str(taken);
    dbuf_free(&b);
    assert_int_equal(freed_stop(), 0);
    assert_true(freed_state.frees > 0);
}

/* A file read 8 KiB at a time: the buffer grows through every size on the way. */
static void test_secret_file_read_leaves_nothing(void **state)
{
    (void)state;
    char path[] = "/tmp/davit-test-secure-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(write(fd, SECRET, sizeof(SECRET) - 1), (ssize_t)sizeof(SECRET) - 1);
    close(fd);
    if (freed_watch(SECRET, 16) < 0) {
        unlink(path);
        skip();
    }
    struct dbuf b = DBUF_INIT_SECRET(1 << 20);
    assert_int_equal(dbuf_read_file(&b, path), 0);
    assert_int_equal(b.len, 2000 * (sizeof(SECRET) - 1));
    dbuf_free(&b);
    unlink(path);
    assert_int_equal(freed_stop(), 0);
}

/* What the server and the launcher do with a run spec's secrets: parse, pack, dump, free. */
static void json_round(void)
{
    char text[256];
    snprintf(text, sizeof(text), "{\"secrets\": {\"TOKEN\": \"%s\"}}", SECRET);
    json_t *spec = json_loads(text, 0, NULL);
    assert_non_null(spec);
    json_t *copy = json_deep_copy(spec);
    char *dumped = json_dumps(copy, JSON_COMPACT);
    assert_non_null(dumped);
    secure_free_str(dumped);
    json_decref(copy);
    json_decref(spec);
}

static void test_jansson_frees_are_wiped(void **state)
{
    (void)state;
    if (freed_watch(SECRET, 16) < 0)
        skip();
    json_round();
    /* jansson's own free left the secret's strings (parser buffer, values) behind. */
    assert_true(freed_stop() > 0);

    /* As main() does in davit and davit-launcher. */
    json_set_alloc_funcs(malloc, secure_free);
    assert_int_equal(freed_watch(SECRET, 16), 0);
    json_round();
    assert_int_equal(freed_stop(), 0);
    assert_true(freed_state.frees > 0);
    json_set_alloc_funcs(malloc, free);
}

static void test_secure_free(void **state)
{
    (void)state;
    secure_free(NULL); /* like free */
    if (freed_watch(SECRET, 16) < 0)
        skip();
    /* The whole block, also past the NUL that secure_free_str would stop at. */
    char *p = malloc(200);
    assert_non_null(p);
    memset(p, 0, 200);
    memcpy(p + 100, SECRET, sizeof(SECRET));
    secure_free(p);
    assert_int_equal(freed_stop(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_dbuf_leaves_copies),
        cmocka_unit_test(test_secret_dbuf_leaves_nothing),
        cmocka_unit_test(test_secret_file_read_leaves_nothing),
        cmocka_unit_test(test_jansson_frees_are_wiped),
        cmocka_unit_test(test_secure_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
