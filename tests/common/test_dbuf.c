#include "common/dbuf.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_append_and_cap(void **state)
{
    struct dbuf b = DBUF_INIT(8);
    assert_string_equal(dbuf_str(&b), "");
    assert_int_equal(dbuf_addstr(&b, "abcd"), 0);
    assert_int_equal(dbuf_printf(&b, "%d", 123), 0);
    assert_string_equal(dbuf_str(&b), "abcd123");
    assert_int_equal(dbuf_addch(&b, 'x'), 0);
    assert_int_equal(b.len, 8);
    /* One byte past the cap fails and leaves the buffer as it was. */
    assert_int_equal(dbuf_addch(&b, 'y'), -1);
    assert_int_equal(errno, ENOSPC);
    assert_string_equal(dbuf_str(&b), "abcd123x");
    assert_int_equal(dbuf_printf(&b, "%s", "long"), -1);
    dbuf_free(&b);
}

static void test_printf_long(void **state)
{
    struct dbuf b = DBUF_INIT(4096);
    char big[1000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(dbuf_printf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1000], '>');
    dbuf_free(&b);
}

static void test_consume_take_reset(void **state)
{
    struct dbuf b = DBUF_INIT(100);
    assert_int_equal(dbuf_addstr(&b, "hello world"), 0);
    dbuf_consume(&b, 6);
    assert_string_equal(dbuf_str(&b), "world");
    dbuf_consume(&b, 99);
    assert_int_equal(b.len, 0);
    assert_int_equal(dbuf_add(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    char *s = dbuf_take(&b);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    s = dbuf_take(&b); /* an empty buffer still gives a string */
    assert_string_equal(s, "");
    free(s);
}

static void test_read_file(void **state)
{
    char path[] = "/tmp/davit-test-dbuf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);

    struct dbuf b = DBUF_INIT(10);
    assert_int_equal(dbuf_read_file(&b, path), 0);
    assert_string_equal(dbuf_str(&b), "0123456789");
    dbuf_free(&b);

    struct dbuf small = DBUF_INIT(4);
    assert_int_equal(dbuf_addstr(&small, "ab"), 0);
    assert_int_equal(dbuf_read_file(&small, path), -1);
    assert_int_equal(errno, ENOSPC);
    assert_string_equal(dbuf_str(&small), "ab"); /* unchanged on failure */
    dbuf_free(&small);

    assert_int_equal(dbuf_read_file(&b, "/nonexistent/davit"), -1);
    assert_int_equal(errno, ENOENT);
    unlink(path);
}

/* A reserved body is added without another allocation; past the cap, nothing changes. */
static void test_reserve(void **state)
{
    (void)state;
    struct dbuf b;
    dbuf_init_secret(&b, 1000);
    assert_int_equal(dbuf_add(&b, "ab", 2), 0);
    assert_int_equal(dbuf_reserve(&b, 900), 0);
    assert_string_equal(dbuf_str(&b), "ab");
    const char *before = b.data;
    char chunk[300];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 3; i++)
        assert_int_equal(dbuf_add(&b, chunk, sizeof(chunk)), 0);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.len, 902);
    errno = 0;
    assert_int_equal(dbuf_reserve(&b, 99), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(b.len, 902);
    assert_int_equal(dbuf_reserve(&b, 98), 0);
    dbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_cap),
        cmocka_unit_test(test_printf_long),
        cmocka_unit_test(test_consume_take_reset),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
