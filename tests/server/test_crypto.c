/* Unit tests of src/server/crypto.c and the pool token (api_pools.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/api_pools.h"
#include "server/state.h"
#include "common/crypto.h"
#include "common/pooltoken.h"
#include "test_crypto_csrs.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

/* Made with: openssl req -new -newkey ed25519 -nodes -keyout k -out c -subj /CN=unit */
static const char ed_key[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MC4CAQAwBQYDK2VwBCIEILUJJx5s+tpFL+w9jzAvA3QYcpInCtkbXB6qhH5Gvept\n"
                             "-----END PRIVATE KEY-----\n";
static const char ed_csr[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                             "MIGOMEICAQAwDzENMAsGA1UEAwwEdW5pdDAqMAUGAytlcAMhAD2hx8ab24j5a7wk\n"
                             "C2h1aNLdLJwYu4Y5xTFw+mQo3+WxoAAwBQYDK2VwA0EAv9kK434n/VJt+wIjF2RN\n"
                             "WZyYcluViINf3+nCUoC6C3uIIFH132jr90ZsaCunChab2KD/t/t4dFEP/gOJGuDj\n"
                             "Aw==\n"
                             "-----END CERTIFICATE REQUEST-----\n";

static void test_sha256_and_tokens(void **state)
{
    (void)state;
    char hex[CRYPTO_SHA256_HEX];
    crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char a[CRYPTO_TOKEN_MAX], b[CRYPTO_TOKEN_MAX];
    assert_int_equal(crypto_random_token("dvs_", a), 0);
    assert_int_equal(crypto_random_token("dvs_", b), 0);
    assert_int_equal(strlen(a), 4 + 43);
    assert_string_not_equal(a, b);
    assert_true(strspn(a + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                43);
    assert_true(crypto_str_equal(a, a));
    assert_false(crypto_str_equal(a, b));
    assert_false(crypto_str_equal("abc", "abcd"));
}

static void test_base64(void **state)
{
    (void)state;
    const char *inputs[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    for (size_t i = 1; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        char *enc = crypto_b64_encode(inputs[i], strlen(inputs[i]));
        unsigned char *dec;
        size_t n;
        assert_int_equal(crypto_b64_decode(enc, &dec, &n), 0);
        assert_int_equal(n, strlen(inputs[i]));
        assert_memory_equal(dec, inputs[i], n);
        free(dec);
        free(enc);
    }
    unsigned char *dec;
    size_t n;
    assert_int_equal(crypto_b64_decode("Zm9vYmF", &dec, &n), -1); /* cut short */
    assert_int_equal(crypto_b64_decode("", &dec, &n), -1);
    assert_int_equal(crypto_b64_decode("Zm9v!mFy", &dec, &n), -1);
    /* Padding only at the end, and no whitespace anywhere. */
    static const char *malformed[] = {"====", "A===", "AB=C", "Q=JD", "QUJD    ", "    ", "QU\nJ"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        assert_int_equal(crypto_b64_decode(malformed[i], &dec, &n), -1);
    assert_int_equal(crypto_b64_decode("QQ==", &dec, &n), 0);
    assert_int_equal(n, 1);
    free(dec);
}

static void test_csr(void **state)
{
    (void)state;
    char *pub = NULL, type[16], err[256];
    assert_int_equal(crypto_csr_pubkey(ed_csr, strlen(ed_csr), &pub, type, err, sizeof(err)), 0);
    assert_string_equal(type, "ed25519");
    assert_non_null(strstr(pub, "BEGIN PUBLIC KEY"));
    free(pub);
    assert_int_equal(crypto_csr_pubkey("hello", 5, &pub, type, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "csr"));
    /* one flipped bit in the signature: the self-signature must not verify */
    char bad[sizeof(ed_csr)];
    memcpy(bad, ed_csr, sizeof(ed_csr));
    char *p = strstr(bad, "v9kK");
    p[1] = p[1] == 'A' ? 'B' : 'A';
    assert_int_equal(crypto_csr_pubkey(bad, strlen(bad), &pub, type, err, sizeof(err)), -1);
}

/*
 * A CSR whose RSA key has public exponent 1. No key generator makes one (openssl genpkey refuses
 * rsa_keygen_pubexp:1), so it is built here through OpenSSL's API: a random odd 2048-bit modulus
 * with e = d = 1 (no primes needed: with d = 1 the private operation is the identity, which is
 * the point: the "signature" is the padded digest, computable by anyone). The CSR is then signed
 * the ordinary way, with X509_REQ_sign, so its self-signature verifies. Caller frees.
 */
static char *rsa_e1_csr(void)
{
    BIGNUM *n = BN_new(), *one = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    X509_REQ *req = X509_REQ_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, *data;
    assert_non_null(n);
    assert_non_null(one);
    assert_non_null(bld);
    assert_non_null(ctx);
    assert_non_null(req);
    assert_non_null(bio);
    assert_int_equal(BN_rand(n, 2048, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
    assert_int_equal(BN_set_word(one, 1), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, one), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, one), 1);
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params), 1);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"unit", -1, -1, 0),
                     1);
    assert_int_equal(X509_REQ_set_pubkey(req, pkey), 1);
    assert_true(X509_REQ_sign(req, pkey, EVP_sha256()) > 0);
    /* The forgery works: today's verification accepts it. */
    assert_int_equal(X509_REQ_verify(req, pkey), 1);
    assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
    long len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    assert_non_null(pem);
    BIO_free(bio);
    X509_REQ_free(req);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(one);
    BN_free(n);
    return pem;
}

/* Expects csr to be refused with an error containing want. */
static void csr_refused(const char *csr, const char *want)
{
    char *pub = NULL, type[16], err[256] = "";
    assert_int_equal(crypto_csr_pubkey(csr, strlen(csr), &pub, type, err, sizeof(err)), -1);
    assert_null(pub);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    assert_null(strchr(err, '\n'));
}

static void test_csr_weak_keys(void **state)
{
    (void)state;
    char *pub = NULL, type[16], err[256];
    assert_int_equal(
        crypto_csr_pubkey(rsa2048_csr, strlen(rsa2048_csr), &pub, type, err, sizeof(err)), 0);
    assert_string_equal(type, "rsa");
    free(pub);
    assert_int_equal(
        crypto_csr_pubkey(ec_p256_csr, strlen(ec_p256_csr), &pub, type, err, sizeof(err)), 0);
    assert_string_equal(type, "ec");
    free(pub);

    csr_refused(rsa_e3_csr, "the RSA key has public exponent 3: davit needs 65537");
    csr_refused(rsa1024_csr, "the RSA key has 1024 bits: davit needs at least 2048");
    csr_refused(ec_explicit_csr, "the EC key carries explicit curve parameters");
    char *e1 = rsa_e1_csr();
    csr_refused(e1, "the RSA key has public exponent 1: davit needs 65537");
    free(e1);
}

static void test_verify(void **state)
{
    (void)state;
    char *pub = NULL, type[16], err[256];
    assert_int_equal(crypto_csr_pubkey(ed_csr, strlen(ed_csr), &pub, type, err, sizeof(err)), 0);
    char *sig_b64 = NULL;
    const char msg[] = "davit-register-v1\npool\nchallenge\nnonce\n";
    assert_int_equal(crypto_ed25519_sign(ed_key, msg, strlen(msg), &sig_b64), 0);
    unsigned char *sig;
    size_t n;
    assert_int_equal(crypto_b64_decode(sig_b64, &sig, &n), 0);
    assert_int_equal(n, 64);
    assert_int_equal(crypto_verify(pub, msg, strlen(msg), sig, n), 1);
    assert_int_equal(crypto_verify(pub, msg, strlen(msg) - 1, sig, n), 0);
    sig[0] ^= 1;
    assert_int_equal(crypto_verify(pub, msg, strlen(msg), sig, n), 0);
    assert_int_equal(crypto_verify("not a key", msg, strlen(msg), sig, n), -1);
    free(sig);
    free(sig_b64);
    free(pub);
}

static void test_release_key(void **state)
{
    (void)state;
    char *priv, *pub, *pub2, *sig_b64;
    assert_int_equal(crypto_ed25519_generate(&priv, &pub), 0);
    assert_int_equal(crypto_public_pem(priv, &pub2), 0);
    assert_string_equal(pub, pub2);
    assert_int_equal(crypto_ed25519_sign(priv, "x", 1, &sig_b64), 0);
    unsigned char *sig;
    size_t n;
    assert_int_equal(crypto_b64_decode(sig_b64, &sig, &n), 0);
    assert_int_equal(crypto_verify(pub, "x", 1, sig, n), 1);
    free(sig);
    free(sig_b64);
    free(priv);
    free(pub);
    free(pub2);
}

static void test_pool_token(void **state)
{
    (void)state;
    static struct server srv;
    snprintf(srv.cfg.public_url, sizeof(srv.cfg.public_url), "https://davit.example:8400");
    srv.release_pub_pem = "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n";
    char *tok = pool_token_make(&srv, "pool-1", "dps_secret");
    struct pool_token t;
    char err[256];
    assert_int_equal(pooltoken_decode(tok, &t, err, sizeof(err)), 0);
    assert_string_equal(t.pool_id, "pool-1");
    assert_string_equal(t.pool_secret, "dps_secret");
    assert_string_equal(t.endpoint, "https://davit.example:8400");
    assert_string_equal(t.release_key_pem, srv.release_pub_pem);
    assert_string_equal(t.tls_pin, "");
    pooltoken_clear(&t);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_and_tokens),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_csr),
        cmocka_unit_test(test_csr_weak_keys),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_release_key),
        cmocka_unit_test(test_pool_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
