/*
 * release: signatures made by the openssl command with a real Ed25519 key,
 * and a download function that copies a local file (the HTTP transport is
 * covered end to end; here the point is what happens to the bytes).
 */
#include "launcher/release.h"

#include "common/sigmsg.h"

#include <errno.h>
#include <fcntl.h>
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

static char dir[] = "/tmp/davit-test-release-XXXXXX";
static char cache[512];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void read_line(const char *name, char *buf, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)size, f));
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

static EVP_PKEY *load_pub(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

/* A release of the file "worker", signed by the openssl command with key. */
static void make_release(struct release *r, const char *key)
{
    char msg[SIGMSG_MAX], path[512];
    memset(r, 0, sizeof(*r));
    strcpy(r->kind, "worker");
    strcpy(r->arch, "amd64");
    strcpy(r->version, "1.2.3");
    assert_int_equal(sh("cd %s && sha256sum worker | cut -d' ' -f1 > worker.sha", dir), 0);
    read_line("worker.sha", r->sha256, sizeof(r->sha256));
    int n = sigmsg_release(msg, sizeof(msg), r->kind, r->arch, r->version, r->sha256);
    assert_true(n > 0);
    snprintf(path, sizeof(path), "%s/msg", dir);
    FILE *f = fopen(path, "w");
    fwrite(msg, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(sh("cd %s && openssl pkeyutl -sign -rawin -inkey %s -in msg -out sig && "
                        "base64 -w 0 sig > sig.b64 && echo >> sig.b64",
                        dir, key),
                     0);
    read_line("sig.b64", r->signature, sizeof(r->signature));
    r->size = 1 << 20;
    strcpy(r->url, "/api/v1/releases/1/download");
}

struct source {
    const char *file;
    int calls;
    int flip; /* flip a byte on the way, as a tampering proxy would */
};

static int copy_file(void *arg, const struct release *r, int fd, char *err, size_t errsz)
{
    struct source *s = arg;
    char path[512], buf[4096];
    s->calls++;
    snprintf(path, sizeof(path), "%s/%s", dir, s->file);
    int in = open(path, O_RDONLY);
    if (in < 0) {
        snprintf(err, errsz, "open %s", path);
        return -1;
    }
    ssize_t n;
    int first = 1;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (first && s->flip)
            buf[0] ^= 1;
        first = 0;
        assert_int_equal(write(fd, buf, (size_t)n), n);
    }
    close(in);
    return 0;
}

static int count_files(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", cache);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    return sh("cd %s && openssl genpkey -algorithm ed25519 -out release.key && "
              "openssl pkey -in release.key -pubout -out release.pub && "
              "openssl genpkey -algorithm ed25519 -out other.key && "
              "head -c 300000 /dev/urandom > worker",
              dir);
}

static int teardown(void **state)
{
    return sh("rm -rf %s", dir);
}

static void test_download_verify_then_cache_hit(void **state)
{
    struct release r;
    struct source src = {"worker", 0, 0};
    char path[1024], err[512];
    EVP_PKEY *pub = load_pub("release.pub");
    make_release(&r, "release.key");

    assert_int_equal(release_verify(&r, pub, err, sizeof(err)), 0);
    assert_int_equal(
        release_fetch(cache, &r, pub, copy_file, &src, path, sizeof(path), err, sizeof(err)), 0);
    assert_int_equal(src.calls, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    assert_int_equal(sh("cmp -s %s %s/worker", path, dir), 0);

    /* Second time from the cache, no download. */
    assert_int_equal(
        release_fetch(cache, &r, pub, copy_file, &src, path, sizeof(path), err, sizeof(err)), 1);
    assert_int_equal(src.calls, 1);

    /* A cache entry that rotted on disk is noticed and fetched again. */
    assert_int_equal(sh("printf x >> %s", path), 0);
    assert_int_equal(
        release_fetch(cache, &r, pub, copy_file, &src, path, sizeof(path), err, sizeof(err)), 0);
    assert_int_equal(src.calls, 2);
    assert_int_equal(count_files(), 1);
    EVP_PKEY_free(pub);
}

static void test_tampered_download_is_refused(void **state)
{
    struct release r;
    struct source src = {"worker", 0, 1};
    char path[1024], err[512];
    EVP_PKEY *pub = load_pub("release.pub");
    assert_int_equal(sh("rm -rf %s", cache), 0);
    make_release(&r, "release.key");
    assert_int_equal(
        release_fetch(cache, &r, pub, copy_file, &src, path, sizeof(path), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "worker release 1.2.3 (amd64): the download has sha256"));
    assert_non_null(strstr(err, "refusing it"));
    assert_int_equal(count_files(), 0); /* nothing left in the cache */
    EVP_PKEY_free(pub);
}

static void test_bad_signature_is_refused_before_download(void **state)
{
    struct release r;
    struct source src = {"worker", 0, 0};
    char path[1024], err[512];
    EVP_PKEY *pub = load_pub("release.pub");
    make_release(&r, "other.key");
    assert_int_equal(
        release_fetch(cache, &r, pub, copy_file, &src, path, sizeof(path), err, sizeof(err)), -1);
    assert_string_equal(err, "worker release 1.2.3 (amd64): the signature does not verify with "
                             "the release key in the pool token: refusing it");
    assert_int_equal(src.calls, 0);

    /* Signed metadata cannot be bent: another version under the same signature fails. */
    make_release(&r, "release.key");
    strcpy(r.version, "9.9.9");
    assert_int_equal(release_verify(&r, pub, err, sizeof(err)), -1);
    make_release(&r, "release.key");
    strcpy(r.signature, "c2hvcnQ=");
    assert_int_equal(release_verify(&r, pub, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not 64 bytes of base64"));
    EVP_PKEY_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_download_verify_then_cache_hit),
        cmocka_unit_test(test_tampered_download_is_refused),
        cmocka_unit_test(test_bad_signature_is_refused_before_download),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
