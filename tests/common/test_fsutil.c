/* fsutil: files replaced whole, with their mode, leaving no temporary file. */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static size_t entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_write_read_replace(void **state)
{
    (void)state;
    char dir[] = "/tmp/davit-test-fsutil.XXXXXX", path[64], err[256];
    char *text = NULL;
    struct stat st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/f", dir);
    assert_int_equal(fsutil_write_file(path, "one", 3, 0640, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(fsutil_write_private(path, "two\n", err, sizeof(err)), 0);
    assert_int_equal(fsutil_read_text(path, 64, &text, err, sizeof(err)), 0);
    assert_string_equal(text, "two\n");
    free(text);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(entries(dir), 1); /* no temporary file left */

    /* A directory that does not exist: an error naming the path, errno kept. */
    char missing[96];
    snprintf(missing, sizeof(missing), "%s/no/f", dir);
    assert_int_equal(fsutil_write_file(missing, "x", 1, 0600, err, sizeof(err)), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(err, missing));
    assert_int_equal(fsutil_read_text(missing, 64, &text, err, sizeof(err)), -1);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_replace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
