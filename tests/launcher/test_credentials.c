/*
 * credentials: real keys made by the openssl command, as the docs tell users
 * to make them, and signatures checked by the openssl command too.
 */
#include "launcher/credentials.h"

#include "common/dbuf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/davit-test-cred-XXXXXX";

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

/* The contents of dir/name, with one trailing newline removed. Caller frees. */
static char *slurp(const char *name)
{
    char path[256];
    struct dbuf b = DBUF_INIT(1 << 20);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(dbuf_read_file(&b, path), 0);
    if (b.len && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    return dbuf_take(&b);
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    /* Pool keys of every supported kind, and some that must be refused. */
    return sh("cd %s && "
              "openssl req -new -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj /CN=t "
              "2>/dev/null && "
              "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key && "
              "openssl genpkey -algorithm ed25519 -out ed.key && "
              "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out small.key "
              "2>/dev/null && "
              "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key && "
              "openssl genpkey -algorithm ed25519 -aes256 -pass pass:x -out enc.key && "
              "openssl genpkey -algorithm ed25519 -out release.key && "
              "openssl pkey -in release.key -pubout -out release.pub && "
              "for k in rsa ec ed small p384 enc; do base64 -w 0 $k.key > $k.b64; done",
              dir);
}

static int teardown(void **state)
{
    return sh("rm -rf %s", dir);
}

/* A token as the server makes it, with the given JSON fields spliced in. */
static char *make_token(const char *version, const char *endpoint)
{
    char *pub = slurp("release.pub");
    char json[4096];
    char *q = json;
    q += snprintf(json, sizeof(json),
                  "{\"v\":%s,\"endpoint\":\"%s\",\"pool_id\":\"pool-1\",\"pool_secret\":\"dps_x\","
                  "\"release_key\":\"",
                  version, endpoint);
    for (const char *p = pub; *p; p++) {
        if (*p == '\n') {
            *q++ = '\\';
            *q++ = 'n';
        } else
            *q++ = *p;
    }
    snprintf(q, sizeof(json) - (size_t)(q - json), "\\n\",\"future_field\":1}");
    free(pub);
    char path[256];
    snprintf(path, sizeof(path), "%s/token.json", dir);
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    assert_int_equal(sh("base64 -w 0 %s/token.json > %s/token.b64", dir, dir), 0);
    return slurp("token.b64");
}

static void test_good_keys_sign_verifiably(void **state)
{
    static const char *kinds[] = {"rsa", "ec", "ed"};
    static const char *types[] = {"rsa", "ec", "ed25519"};
    char *token = make_token("1", "https://davit.example:8400/");
    for (int i = 0; i < 3; i++) {
        char name[32], err[256];
        struct credentials c;
        snprintf(name, sizeof(name), "%s.b64", kinds[i]);
        char *key = slurp(name);
        assert_int_equal(credentials_parse(&c, token, "DAVIT_TOKEN", key, "DAVIT_POOL_PRIVATE_KEY",
                                           err, sizeof(err)),
                         0);
        assert_string_equal(c.endpoint, "https://davit.example:8400");
        assert_string_equal(c.pool_id, "pool-1");
        assert_string_equal(c.pool_secret, "dps_x");
        assert_string_equal(c.key_type, types[i]);

        const char msg[] = "davit-register-v1\npool-1\ndvc_1\nnonce\n";
        char *sig = NULL;
        assert_int_equal(credentials_sign(&c, msg, strlen(msg), &sig, err, sizeof(err)), 0);
        /* The openssl command must accept what we signed, the way the server will. */
        char path[256];
        snprintf(path, sizeof(path), "%s/msg", dir);
        FILE *f = fopen(path, "w");
        fputs(msg, f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/sig.b64", dir);
        f = fopen(path, "w");
        fputs(sig, f);
        fclose(f);
        assert_int_equal(sh("cd %s && base64 -d sig.b64 > sig && "
                            "openssl pkey -in %s.key -pubout -out pub.pem",
                            dir, kinds[i]),
                         0);
        if (i < 2)
            assert_int_equal(sh("cd %s && openssl dgst -sha256 -verify pub.pem -signature sig msg "
                                ">/dev/null",
                                dir),
                             0);
        else
            assert_int_equal(sh("cd %s && openssl pkeyutl -verify -pubin -inkey pub.pem -rawin "
                                "-in msg -sigfile sig >/dev/null",
                                dir),
                             0);
        free(sig);
        free(key);
        credentials_free(&c);
        credentials_free(&c); /* twice is fine */
    }
    free(token);
}

static void expect_error(const char *token, const char *key, const char *want)
{
    struct credentials c;
    char err[512] = "";
    assert_int_equal(credentials_parse(&c, token, "SPACELIFT_TOKEN", key, "DAVIT_POOL_PRIVATE_KEY",
                                       err, sizeof(err)),
                     -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(strchr(err, '\n'));
}

static void test_bad_tokens(void **state)
{
    char *key = slurp("ed.b64");
    char *good = make_token("1", "https://h:1");
    char cut[64];
    snprintf(cut, sizeof(cut), "%.41s", good); /* not a multiple of 4 */
    expect_error(cut, key, "SPACELIFT_TOKEN: not valid base64 (cut short or altered?");
    expect_error("bm90IGpzb24=", key, "SPACELIFT_TOKEN: not a davit pool token");
    expect_error("e30=", key, "SPACELIFT_TOKEN: not a davit pool token"); /* {} */
    char *v2 = make_token("2", "https://h:1");
    expect_error(v2, key, "token format 2 is not known to this program");
    char *ftp = make_token("1", "ftp://h");
    expect_error(ftp, key, "the token's endpoint is not an http(s) URL");
    free(ftp);
    free(v2);
    free(good);
    free(key);
}

static void test_bad_keys(void **state)
{
    char *token = make_token("1", "https://h:1");
    char *rsa = slurp("rsa.b64");
    char cut[100];
    snprintf(cut, sizeof(cut), "%.99s", rsa);
    expect_error(token, cut, "DAVIT_POOL_PRIVATE_KEY: not valid base64 (encode the PEM file");
    expect_error(token, "-----BEGIN PRIVATE KEY-----", "DAVIT_POOL_PRIVATE_KEY: not valid base64");
    expect_error(token, "aGVsbG8gd29ybGQ=", "decodes, but not to a PEM private key");
    char *small = slurp("small.b64");
    expect_error(token, small, "an RSA key of 1024 bits; at least 2048 are needed");
    char *p384 = slurp("p384.b64");
    expect_error(token, p384, "an EC key on curve secp384r1; only P-256 is supported");
    char *enc = slurp("enc.b64");
    expect_error(token, enc, "the key is protected by a passphrase");
    /* The token's secret is fine; a key that is another pool's is only
     * caught by the server, when the signature does not verify. */
    free(enc);
    free(p384);
    free(small);
    free(rsa);
    free(token);
}

static void test_environment(void **state)
{
    struct credentials c;
    char err[512];
    unsetenv("DAVIT_TOKEN");
    unsetenv("SPACELIFT_TOKEN");
    unsetenv("DAVIT_POOL_PRIVATE_KEY");
    unsetenv("SPACELIFT_POOL_PRIVATE_KEY");
    assert_int_equal(credentials_load(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DAVIT_TOKEN is not set"));

    char *token = make_token("1", "https://h:1");
    char *key = slurp("ec.b64");
    setenv("SPACELIFT_TOKEN", token, 1);
    assert_int_equal(credentials_load(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DAVIT_POOL_PRIVATE_KEY is not set"));
    assert_null(getenv("SPACELIFT_TOKEN")); /* removed on failure too */
    setenv("SPACELIFT_TOKEN", token, 1);
    /* Spacelift's names work, and a pasted newline is forgiven. */
    char with_nl[8192];
    snprintf(with_nl, sizeof(with_nl), "%s\n", key);
    setenv("SPACELIFT_POOL_PRIVATE_KEY", with_nl, 1);
    setenv("DAVIT_TOKEN", "", 1); /* empty: not used, but removed all the same */
    assert_int_equal(credentials_load(&c, err, sizeof(err)), 0);
    assert_string_equal(c.key_type, "ec");
    credentials_free(&c);
    /* Read once, then gone from the environment (test_daemon.py checks /proc/<pid>/environ). */
    static const char *const gone[] = {"DAVIT_TOKEN", "SPACELIFT_TOKEN", "DAVIT_POOL_PRIVATE_KEY",
                                       "SPACELIFT_POOL_PRIVATE_KEY"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        assert_null(getenv(gone[i]));
        assert_true(credentials_is_secret_var(gone[i]));
    }
    assert_false(credentials_is_secret_var("DAVIT_TOKENS"));
    assert_false(credentials_is_secret_var("HTTP_PROXY"));

    unsetenv("SPACELIFT_TOKEN");
    unsetenv("SPACELIFT_POOL_PRIVATE_KEY");
    free(token);
    free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_keys_sign_verifiably),
        cmocka_unit_test(test_bad_tokens),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_environment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
