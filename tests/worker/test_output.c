#include "common/dbuf.h"
#include "common/spool.h"
#include "worker/output.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    int dirfd;
    struct recorder rec;
    struct mask_set masks;
    struct output_stream out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-test-output-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    static const unsigned char key[SPOOL_KEY_LEN] = {1};
    if (recorder_open(&f->rec, f->dirfd, key, 0, err, sizeof(err)) < 0)
        return -1;
    mask_set_init(&f->masks);
    output_stream_init(&f->out, SPOOL_STDOUT);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[128];
    output_stream_free(&f->out);
    mask_set_free(&f->masks);
    recorder_close(&f->rec);
    snprintf(path, sizeof(path), "%s/%s", f->dir, SPOOL_FILE);
    unlink(path);
    close(f->dirfd);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void feed(struct fixture *f, const char *s, size_t len)
{
    assert_int_equal(output_feed(&f->out, &f->masks, &f->rec, "plan", s, len), 0);
}

/* Every 'o' payload in the spool, concatenated, into out. */
static void recorded(struct fixture *f, struct dbuf *out)
{
    struct dbuf spool = DBUF_INIT(64 << 20);
    char path[128];
    assert_int_equal(output_flush(&f->out, &f->masks, &f->rec, "plan"), 0);
    snprintf(path, sizeof(path), "%s/%s", f->dir, SPOOL_FILE);
    assert_int_equal(dbuf_read_file(&spool, path), 0);
    size_t pos = 0;
    dbuf_reset(out);
    while (pos < spool.len) {
        struct spool_record r;
        ssize_t n = spool_parse(spool.data + pos, spool.len - pos, &r);
        assert_true(n > 0);
        assert_string_equal(r.phase, "plan");
        if (r.type == SPOOL_STDOUT)
            assert_int_equal(dbuf_add(out, r.data, r.len), 0);
        pos += (size_t)n;
    }
    dbuf_free(&spool);
}

static void test_add_mask_split_across_reads(void **state)
{
    struct fixture *f = *state;
    struct dbuf got = DBUF_INIT(1 << 20);
    const char *pieces[] = {"hello\n::add", "-mask::hun", "ter2\r\nuse hunter2 now\n"};
    for (int i = 0; i < 3; i++)
        feed(f, pieces[i], strlen(pieces[i]));
    recorded(f, &got);
    assert_string_equal(dbuf_str(&got), "hello\n::add-mask::***\r\nuse *** now\n");
    dbuf_free(&got);
}

static void test_add_mask_only_at_line_start(void **state)
{
    struct fixture *f = *state;
    struct dbuf got = DBUF_INIT(1 << 20);
    const char *in = "say ::add-mask::nope\n:: not a command\n::add-mask::yes\nnope yes\n";
    feed(f, in, strlen(in));
    recorded(f, &got);
    assert_string_equal(dbuf_str(&got),
                        "say ::add-mask::nope\n:: not a command\n::add-mask::***\nnope ***\n");
    dbuf_free(&got);
}

static void test_long_line_is_not_a_command(void **state)
{
    struct fixture *f = *state;
    struct dbuf got = DBUF_INIT(1 << 20);
    struct dbuf in = DBUF_INIT(1 << 20);
    assert_int_equal(dbuf_addstr(&in, "::add-mask::"), 0);
    for (int i = 0; i < OUTPUT_LINE_MAX; i++)
        assert_int_equal(dbuf_addch(&in, 'v'), 0);
    assert_int_equal(dbuf_addstr(&in, "\nvvvv\n"), 0);
    feed(f, in.data, in.len);
    recorded(f, &got);
    /* Passed through as it was, and nothing was masked. */
    assert_int_equal(got.len, in.len);
    assert_memory_equal(got.data, in.data, in.len);
    assert_int_equal(f->masks.n, 0);
    dbuf_free(&in);
    dbuf_free(&got);
}

static void test_binary_and_big_chunks(void **state)
{
    struct fixture *f = *state;
    struct dbuf got = DBUF_INIT(8 << 20);
    struct dbuf want = DBUF_INIT(8 << 20);
    char chunk[OUTPUT_FEED_MAX];
    unsigned x = 12345;
    /* 4 MiB of pseudo-random bytes with NULs, no newline needed. */
    for (int c = 0; c < 64; c++) {
        for (size_t i = 0; i < sizeof(chunk); i++) {
            x = x * 1103515245u + 12345u;
            chunk[i] = (char)(x >> 16);
        }
        feed(f, chunk, sizeof(chunk));
        assert_int_equal(dbuf_add(&want, chunk, sizeof(chunk)), 0);
    }
    recorded(f, &got);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    dbuf_free(&got);
    dbuf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_mask_split_across_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_mask_only_at_line_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_not_a_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_big_chunks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
