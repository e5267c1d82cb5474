/*
 * Unit tests for seal: secrets round-trip for RSA and EC pool keys and are refused for Ed25519;
 * a ciphertext opens only for its own run, pool, name and key; truncated or altered boxes fail;
 * a pool reset (another key) is named in the reason; canonical JSON is RFC 8785's for the values
 * a spec holds; signed specs verify only unchanged and with the right key.
 */
#include "common/seal.h"

#include "common/crypto.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define POOL  "pool-0123"
#define NONCE "00112233445566778899aabbccddeeff"

static EVP_PKEY *keygen(const char *type)
{
    EVP_PKEY *k = strcmp(type, "RSA") == 0  ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                  : strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                            : EVP_PKEY_Q_keygen(NULL, NULL, type);
    assert_non_null(k);
    return k;
}

static char *pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static json_t *three(void)
{
    return json_pack("{s:s, s:s, s:s}", "A", "alpha-value", "B", "", "C", "line1\nline2 ünï");
}

/* Seals three secrets to k's public half and returns the sealed object. */
static json_t *seal_with(EVP_PKEY *k)
{
    char *pem = pub_pem(k), err[256];
    json_t *in = three(), *sealed = NULL;
    assert_int_equal(seal_secrets(pem, POOL, NONCE, in, &sealed, err, sizeof(err)), 0);
    char *text = json_dumps(sealed, 0);
    assert_null(strstr(text, "alpha-value")); /* ciphertext only */
    free(text);
    free(pem);
    json_decref(in);
    return sealed;
}

static void round_trip(const char *type)
{
    EVP_PKEY *k = keygen(type);
    json_t *sealed = seal_with(k), *out = NULL, *in = three();
    char err[256];
    assert_int_equal(seal_open(k, POOL, NONCE, sealed, &out, err, sizeof(err)), 0);
    assert_true(json_equal(out, in));
    json_decref(out);
    json_decref(in);
    json_decref(sealed);
    EVP_PKEY_free(k);
}

static void test_round_trip_rsa(void **state)
{
    (void)state;
    round_trip("RSA");
}

static void test_round_trip_ec(void **state)
{
    (void)state;
    round_trip("EC");
}

static void test_ed25519_refused(void **state)
{
    (void)state;
    EVP_PKEY *k = keygen("ED25519");
    char *pem = pub_pem(k), err[256];
    json_t *in = three(), *sealed = NULL;
    assert_int_equal(seal_secrets(pem, POOL, NONCE, in, &sealed, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Ed25519"));
    assert_null(sealed);
    free(pem);
    json_decref(in);
    EVP_PKEY_free(k);
}

/* Every change of the associated data (run, pool, name) fails to open. */
static void test_wrong_aad(void **state)
{
    (void)state;
    EVP_PKEY *k = keygen("EC");
    json_t *sealed = seal_with(k), *out = NULL;
    char err[256];
    assert_int_equal(
        seal_open(k, POOL, "ffeeddccbbaa99887766554433221100", sealed, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "another run"));
    assert_int_equal(seal_open(k, "pool-other", NONCE, sealed, &out, err, sizeof(err)), -1);
    /* A box moved to another name. */
    json_t *boxes = json_object_get(sealed, "secrets");
    json_object_set(boxes, "B", json_object_get(boxes, "A"));
    assert_int_equal(seal_open(k, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    assert_null(out);
    json_decref(sealed);
    EVP_PKEY_free(k);
}

static void test_truncated_and_altered(void **state)
{
    (void)state;
    EVP_PKEY *k = keygen("RSA");
    json_t *sealed = seal_with(k), *out = NULL;
    json_t *boxes = json_object_get(sealed, "secrets");
    char err[256];
    unsigned char *raw;
    size_t len;
    assert_int_equal(crypto_b64_decode(json_string_value(json_object_get(boxes, "A")), &raw, &len),
                     0);
    char *cut = crypto_b64_encode(raw, len - 1);
    json_object_set_new(boxes, "A", json_string(cut));
    assert_int_equal(seal_open(k, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    raw[14] ^= 1; /* one bit of the ciphertext */
    char *flipped = crypto_b64_encode(raw, len);
    json_object_set_new(boxes, "A", json_string(flipped));
    assert_int_equal(seal_open(k, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    json_object_set_new(boxes, "A", json_string("AAAA"));
    assert_int_equal(seal_open(k, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    free(cut);
    free(flipped);
    free(raw);
    json_decref(sealed);
    EVP_PKEY_free(k);
}

/* Another key (a reset pool) is named as such; a forged key_id does not help. */
static void test_wrong_key(void **state)
{
    (void)state;
    EVP_PKEY *k = keygen("EC"), *other = keygen("EC");
    json_t *sealed = seal_with(k), *out = NULL;
    char err[256], id[SEAL_KEY_ID_HEX];
    assert_int_equal(seal_open(other, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "the pool was reset"));
    assert_int_equal(seal_key_id(other, id), 0);
    json_object_set_new(sealed, "key_id", json_string(id));
    assert_int_equal(seal_open(other, POOL, NONCE, sealed, &out, err, sizeof(err)), -1);
    assert_null(out);
    json_decref(sealed);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void canon_is(const char *json, const char *want)
{
    char err[256];
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    struct dbuf out = DBUF_INIT(1 << 20);
    assert_int_equal(seal_canonical(v, &out, err, sizeof(err)), 0);
    assert_string_equal(dbuf_str(&out), want);
    dbuf_free(&out);
    json_decref(v);
}

/* RFC 8785's own examples where a spec's values can reach them. */
/* A pool key whose SPKI holds the compressed point (a CSR may) has the key_id of the same key
 * with the uncompressed point: the fingerprint is of the key, not of its encoding. */
static void test_key_id_ignores_point_compression(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    char plain[SEAL_KEY_ID_HEX], packed[SEAL_KEY_ID_HEX];
    assert_int_equal(seal_key_id(k, plain), 0);
    unsigned char *der = NULL, *der2 = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_int_equal(
        EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
        1);
    int n2 = i2d_PUBKEY(k, &der2);
    assert_true(n2 > 0 && n2 < n); /* the encoding did change */
    const unsigned char *p = der2;
    EVP_PKEY *c = d2i_PUBKEY(NULL, &p, n2);
    assert_non_null(c);
    assert_int_equal(seal_key_id(c, packed), 0);
    assert_string_equal(plain, packed);
    OPENSSL_free(der);
    OPENSSL_free(der2);
    EVP_PKEY_free(c);
    EVP_PKEY_free(k);
}

static void test_canonical(void **state)
{
    (void)state;
    canon_is("{\"b\": [1, 2.0, true, null], \"a\": \"x\"}", "{\"a\":\"x\",\"b\":[1,2,true,null]}");
    canon_is("\"\\u0001\\b\\t\\n\\f\\r\\\"\\\\/\\u00e9\\u007f\"",
             "\"\\u0001\\b\\t\\n\\f\\r\\\"\\\\/\xc3\xa9\x7f\"");
    canon_is("[1.5, 0.1, 1e21, 1e20, 1e-7, 0.000001, -0.0, 333333333.33333329, 5e-324]",
             "[1.5,0.1,1e+21,100000000000000000000,1e-7,0.000001,0,333333333.3333333,5e-324]");
    canon_is("[9007199254740992, -3]", "[9007199254740992,-3]");
    char err[256];
    json_t *big = json_loads("[9007199254740993]", 0, NULL);
    struct dbuf out = DBUF_INIT(1024);
    assert_int_equal(seal_canonical(big, &out, err, sizeof(err)), -1);
    dbuf_free(&out);
    json_decref(big);
}

static void test_signed_spec(void **state)
{
    (void)state;
    EVP_PKEY *ed = keygen("ED25519"), *other = keygen("ED25519");
    char err[256];
    json_t *spec = json_pack("{s:s, s:[{s:s, s:[s]}], s:{s:s}}", "image", "busybox", "phases",
                             "name", "plan", "commands", "echo hi", "env", "A", "1");
    assert_int_equal(seal_verify_spec(spec, POOL, &ed, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not signed"));
    assert_int_equal(seal_sign_spec(spec, POOL, ed, err, sizeof(err)), 0);
    assert_int_equal(seal_verify_spec(spec, POOL, &ed, 1, err, sizeof(err)), 0);
    EVP_PKEY *both[] = {other, ed};
    assert_int_equal(seal_verify_spec(spec, POOL, both, 2, err, sizeof(err)), 0);
    assert_int_equal(seal_verify_spec(spec, POOL, &other, 1, err, sizeof(err)), -1);
    assert_int_equal(seal_verify_spec(spec, "pool-other", &ed, 1, err, sizeof(err)), -1);
    json_object_set_new(spec, "image", json_string("evil"));
    assert_int_equal(seal_verify_spec(spec, POOL, &ed, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "altered"));
    json_decref(spec);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_rsa),
        cmocka_unit_test(test_round_trip_ec),
        cmocka_unit_test(test_ed25519_refused),
        cmocka_unit_test(test_wrong_aad),
        cmocka_unit_test(test_truncated_and_altered),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_key_id_ignores_point_compression),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_signed_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
