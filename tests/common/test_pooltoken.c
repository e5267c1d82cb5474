/*
 * Unit tests for pooltoken: a token made by pooltoken_encode decodes to the
 * same fields; every malformed token is refused with a message that never
 * quotes the secret; what a newer server may add is ignored.
 */
#include "common/pooltoken.h"

#include "common/crypto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *b64(const char *json)
{
    return crypto_b64_encode(json, strlen(json));
}

static void test_round_trip(void **state)
{
    (void)state;
    struct pool_token in = {.pool_secret = "dps_s3cret", .release_key_pem = "PEM"}, out;
    char err[256];
    snprintf(in.endpoint, sizeof(in.endpoint), "https://davit.example:8400");
    snprintf(in.pool_id, sizeof(in.pool_id), "pool-1");
    snprintf(in.tls_pin, sizeof(in.tls_pin), "sha256//%044d", 0);
    char *tok = pooltoken_encode(&in);
    assert_non_null(tok);
    /* A pasted token may come with a newline around it. */
    char *padded = malloc(strlen(tok) + 4);
    sprintf(padded, " %s\n", tok);
    assert_int_equal(pooltoken_decode(padded, &out, err, sizeof(err)), 0);
    assert_string_equal(out.endpoint, in.endpoint);
    assert_string_equal(out.pool_id, "pool-1");
    assert_string_equal(out.pool_secret, "dps_s3cret");
    assert_string_equal(out.release_key_pem, "PEM");
    assert_string_equal(out.tls_pin, in.tls_pin);
    pooltoken_clear(&out);
    pooltoken_clear(&out); /* twice is fine */
    free(padded);
    free(tok);
}

static void test_newer_fields_and_trailing_slash(void **state)
{
    (void)state;
    struct pool_token t;
    char err[256];
    char *tok = b64("{\"v\":1,\"endpoint\":\"http://127.0.0.1:8400//\",\"pool_id\":\"p\","
                    "\"pool_secret\":\"s\",\"release_key\":\"k\",\"later\":true}");
    assert_int_equal(pooltoken_decode(tok, &t, err, sizeof(err)), 0);
    assert_string_equal(t.endpoint, "http://127.0.0.1:8400");
    pooltoken_clear(&t);
    free(tok);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *json; /* NULL: the token below is not base64 */
        const char *raw;
        const char *says;
    } cases[] = {
        {NULL, "%%%", "not valid base64"},
        {NULL, "eyJ2Ijox", "not a davit pool token"}, /* base64 of a cut JSON */
        {"{\"v\":1}", NULL, "not a davit pool token"},
        {"[1,2]", NULL, "not a davit pool token"},
        {"{\"v\":2,\"endpoint\":\"https://x\",\"pool_id\":\"p\",\"pool_secret\":\"S3CR3T\","
         "\"release_key\":\"k\"}",
         NULL, "format 2"},
        {"{\"v\":1,\"endpoint\":\"ftp://x\",\"pool_id\":\"p\",\"pool_secret\":\"S3CR3T\","
         "\"release_key\":\"k\"}",
         NULL, "not an http(s) URL"},
        /* Found by fuzz/fuzz_pooltoken: a scheme with no host was taken. */
        {"{\"v\":1,\"endpoint\":\"https://\",\"pool_id\":\"p\",\"pool_secret\":\"S3CR3T\","
         "\"release_key\":\"k\"}",
         NULL, "not an http(s) URL"},
        {"{\"v\":1,\"endpoint\":\"https://x\",\"pool_id\":\"\",\"pool_secret\":\"S3CR3T\","
         "\"release_key\":\"k\"}",
         NULL, "empty or overlong"},
        {"{\"v\":1,\"endpoint\":\"https://x\",\"pool_id\":\"p\",\"pool_secret\":\"\","
         "\"release_key\":\"k\"}",
         NULL, "empty or overlong"},
        {"{\"v\":1,\"endpoint\":\"https://x\",\"pool_id\":\"p\",\"pool_secret\":\"S3CR3T\","
         "\"release_key\":\"k\",\"tls_pin\":\"md5//x\"}",
         NULL, "tls_pin"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pool_token t;
        char err[256] = "";
        char *tok = cases[i].json ? b64(cases[i].json) : strdup(cases[i].raw);
        assert_int_equal(pooltoken_decode(tok, &t, err, sizeof(err)), -1);
        assert_non_null(strstr(err, cases[i].says));
        assert_null(strstr(err, "S3CR3T"));
        assert_null(t.pool_secret);
        free(tok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_newer_fields_and_trailing_slash),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
