/*
 * Unit tests for the shipper with the spool's tail, as the launcher wires
 * them: each record's MAC is checked once, by the tail; the shipper sends the
 * checked bytes as they are, even when a phase rewrites the file after the
 * check; bytes it could not hold are read again and checked then. The server
 * is simulated by wrapping backend_log; spool_mac_prefix is wrapped to count
 * the checks of bytes read again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/shipper.h"
#include "launcher/spool_tail.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned char key[SPOOL_KEY_LEN] = "the run key, 32 bytes, not more";

/* The simulated server: what it stored, and how many calls. */
static struct dbuf stored = DBUF_INIT(64 << 20);
static int log_calls, prefix_calls;

int __wrap_backend_log(struct backend *b, int64_t run_id, uint64_t offset, const void *data,
                       size_t len, uint64_t *next_offset, char *err, size_t errsz);
int __wrap_backend_log(struct backend *b, int64_t run_id, uint64_t offset, const void *data,
                       size_t len, uint64_t *next_offset, char *err, size_t errsz)
{
    (void)b, (void)run_id, (void)err, (void)errsz;
    log_calls++;
    assert_int_equal(offset, stored.len);
    assert_true(len <= SHIP_BATCH_MAX);
    assert_int_equal(dbuf_add(&stored, data, len), 0);
    *next_offset = stored.len;
    return BACKEND_OK;
}

size_t __real_spool_mac_prefix(const struct spool_mac *m, const char *buf, size_t len);
size_t __wrap_spool_mac_prefix(const struct spool_mac *m, const char *buf, size_t len);
size_t __wrap_spool_mac_prefix(const struct spool_mac *m, const char *buf, size_t len)
{
    prefix_calls++;
    return __real_spool_mac_prefix(m, buf, len);
}

struct fixture {
    char dir[64];
    char path[128];
    int fd;
    uint64_t seq;
    struct spool_tail t;
    struct shipper sh;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_shipper.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/spool", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND, 0600);
    assert_true(f->fd >= 0);
    assert_int_equal(spool_tail_init(&f->t, f->path, 0, err, sizeof(err)), 0);
    spool_tail_set_key(&f->t, key);
    assert_int_equal(shipper_init(&f->sh, 7, f->path, 0, 1), 0);
    shipper_set_key(&f->sh, key);
    dbuf_reset(&stored);
    log_calls = prefix_calls = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    spool_tail_free(&f->t);
    shipper_free(&f->sh);
    close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    dbuf_free(&stored);
    return 0;
}

/* Appends n signed records of size payload bytes (filled with fill) to the spool. */
static void append(struct fixture *f, int n, size_t payload, char fill)
{
    char *buf = malloc(SPOOL_HEADER_MAX + payload + 1), *data = malloc(payload);
    memset(data, fill, payload);
    for (int i = 0; i < n; i++) {
        struct spool_record r = {
            .type = SPOOL_STDOUT, .seq = ++f->seq, .time_ms = 1, .len = payload};
        struct spool_mac m;
        snprintf(r.phase, sizeof(r.phase), "p");
        r.data = data;
        spool_mac_init(&m, key);
        spool_mac_sign(&m, &r);
        spool_mac_wipe(&m);
        size_t h = spool_header(buf, &r);
        memcpy(buf + h, data, payload);
        buf[h + payload] = '\n';
        assert_int_equal(write(f->fd, buf, h + payload + 1), (ssize_t)(h + payload + 1));
    }
    free(buf);
    free(data);
}

/* Overwrites bytes in place, as a phase could (pwrite on the O_APPEND fd would append). */
static void rewrite(struct fixture *f, off_t at)
{
    int fd = open(f->path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XXXX", 4, at), 4);
    close(fd);
}

static uint64_t file_size(struct fixture *f)
{
    return (uint64_t)lseek(f->fd, 0, SEEK_END);
}

/* Reads the tail as the supervisor does, handing checked bytes to the shipper. */
static void tail(struct fixture *f)
{
    char err[256];
    spool_tail_on_checked(&f->t, (spool_tail_bytes_fn)shipper_verified, &f->sh);
    assert_true(spool_tail_read(&f->t, NULL, NULL, err, sizeof(err)) >= 0);
}

/* Ships until the shipper is idle; returns the last status. */
static int ship_all(struct fixture *f)
{
    char err[256];
    int s, last = SHIP_IDLE;
    while ((s = shipper_step(&f->sh, NULL, f->t.offset, 0, err, sizeof(err))) != SHIP_IDLE) {
        last = s;
        if (s != SHIP_SENT)
            break;
    }
    return last;
}

/* The file's bytes as written, for comparing with what the server stored. */
static char *file_bytes(struct fixture *f, size_t *len)
{
    *len = file_size(f);
    char *b = malloc(*len);
    assert_int_equal(pread(f->fd, b, *len, 0), (ssize_t)*len);
    return b;
}

/* Checked once: bytes the tail checked are sent without another MAC check,
 * in batches of whole records up to SHIP_BATCH_MAX. */
static void test_checked_bytes_are_sent_unchecked_again(void **state)
{
    struct fixture *f = *state;
    append(f, 100, 60000, 'a'); /* about 6 MB: two batches */
    size_t len;
    char *want = file_bytes(f, &len);
    tail(f);
    assert_int_equal(f->t.offset, len);
    assert_int_equal(ship_all(f), SHIP_SENT);
    assert_int_equal(stored.len, len);
    assert_memory_equal(stored.data, want, len);
    assert_int_equal(prefix_calls, 0);
    assert_int_equal(log_calls, 2);
    assert_int_equal(f->sh.held.len, 0); /* all acknowledged: nothing held */
    free(want);
}

/* A phase that rewrites the spool after the tail checked it changes nothing
 * that is sent: the checked bytes are. */
static void test_rewrite_after_the_check_is_not_sent(void **state)
{
    struct fixture *f = *state;
    append(f, 3, 100, 'a');
    size_t len;
    char *want = file_bytes(f, &len);
    tail(f);
    /* the run's code overwrites the payload of the first record in place */
    rewrite(f, 80);
    assert_int_equal(ship_all(f), SHIP_SENT);
    assert_int_equal(stored.len, len);
    assert_memory_equal(stored.data, want, len);
    free(want);
}

/* Bytes the shipper could not hold are read again and checked: a rewrite
 * of those is caught, and nothing from it on is sent. */
static void test_bytes_read_again_are_checked(void **state)
{
    struct fixture *f = *state;
    append(f, 3, 100, 'a');
    char err[256];
    /* read without handing the bytes over: as after a restart */
    assert_true(spool_tail_read(&f->t, NULL, NULL, err, sizeof(err)) == 3);
    size_t len;
    char *want = file_bytes(f, &len);
    assert_int_equal(ship_all(f), SHIP_SENT);
    assert_int_equal(stored.len, len);
    assert_memory_equal(stored.data, want, len);
    assert_true(prefix_calls > 0);
    free(want);

    append(f, 2, 100, 'b');
    assert_true(spool_tail_read(&f->t, NULL, NULL, err, sizeof(err)) == 2);
    rewrite(f, (off_t)len + 80);
    assert_int_equal(ship_all(f), SHIP_TAMPERED);
    assert_int_equal(stored.len, len);
}

/* More than the shipper holds: the rest is read again, checked, and the
 * whole log arrives in order. */
static void test_more_than_held_arrives_whole(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        append(f, 100, 60000, (char)('a' + i)); /* 24 MB, read before any is shipped */
        tail(f);
    }
    size_t len;
    char *want = file_bytes(f, &len);
    assert_true(len > SHIP_HELD_MAX);
    assert_int_equal(ship_all(f), SHIP_SENT);
    assert_int_equal(stored.len, len);
    assert_memory_equal(stored.data, want, len);
    assert_true(prefix_calls > 0);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checked_bytes_are_sent_unchecked_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_after_the_check_is_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_read_again_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_than_held_arrives_whole, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
