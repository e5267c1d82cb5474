/*
 * Unit tests for unseal_read_keys: DAVIT_SUBMITTER_KEYS's file gives every Ed25519 public key in
 * it; a file others may write, a key of another type, or a file without keys is refused with a
 * reason that names the file.
 */
#include "launcher/unseal.h"

#include <openssl/pem.h>
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

static char path[64];

/* Writes the public halves of keys of the given types into path, with mode. */
static void write_keys(const char *const *types, size_t n, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, types[i], "P-256");
        assert_non_null(k);
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
        EVP_PKEY_free(k);
    }
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/davit-test-unseal-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void read_err(const char *want)
{
    EVP_PKEY **keys = NULL;
    size_t n = 5;
    char err[512] = "";
    assert_int_equal(unseal_read_keys(path, &keys, &n, err, sizeof(err)), -1);
    assert_null(keys);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, path));
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_two_keys(void **state)
{
    (void)state;
    static const char *const types[] = {"ED25519", "ED25519"};
    write_keys(types, 2, 0644);
    EVP_PKEY **keys = NULL;
    size_t n = 0;
    char err[512];
    assert_int_equal(unseal_read_keys(path, &keys, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(keys[i]);
    free(keys);
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const ed[] = {"ED25519"}, *const mixed[] = {"ED25519", "EC"};
    write_keys(ed, 1, 0664);
    read_err("writable by group or others");
    write_keys(ed, 1, 0602);
    read_err("writable by group or others");
    /* whoever owns the file may make it writable: only root or the launcher's user may */
    write_keys(ed, 1, 0644);
    if (geteuid() == 0) {
        assert_int_equal(chown(path, 4321, (gid_t)-1), 0);
        read_err("owned by uid 4321");
        assert_int_equal(chown(path, 0, (gid_t)-1), 0);
    }
    write_keys(mixed, 2, 0600);
    read_err("key 2 is not an Ed25519 public key");
    write_keys(ed, 0, 0600);
    read_err("no PEM public key");
    unlink(path);
    read_err("No such file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
