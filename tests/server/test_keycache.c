/* Unit tests of the pools' decoded public keys (keycache.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/keycache.h"

#include "common/crypto.h"
#include "common/seal.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char msg[] = "davit-register\npool\nchallenge\nnonce";

/* A key pair's public PEM and its signature over msg. */
struct signer {
    char *pub;
    unsigned char *sig;
    size_t siglen;
};

static void signer_make(struct signer *s)
{
    char *priv = NULL, *b64 = NULL;
    assert_int_equal(crypto_ed25519_generate(&priv, &s->pub), 0);
    assert_int_equal(crypto_ed25519_sign(priv, msg, strlen(msg), &b64), 0);
    assert_int_equal(crypto_b64_decode(b64, &s->sig, &s->siglen), 0);
    free(priv);
    free(b64);
}

static void signer_clear(struct signer *s)
{
    free(s->pub);
    free(s->sig);
}

/* 1 when c's key for (pool, pem) verifies s's signature, 0 when it does not. */
static int verifies(struct keycache *c, const char *pool, const char *pem, const struct signer *s)
{
    struct crypto_pubkey *k = keycache_get(c, pool, pem);
    assert_non_null(k);
    int rc = crypto_verify_key(k, msg, strlen(msg), s->sig, s->siglen);
    crypto_pubkey_free(k);
    assert_true(rc == 0 || rc == 1);
    return rc;
}

/* After a pool reset the store holds a new key under the same pool id: the key decoded before
 * must not verify for it. A cache keyed by pool id alone accepts the old key's signature here. */
static void test_reset_refuses_old_key(void **state)
{
    (void)state;
    struct signer old, fresh;
    signer_make(&old);
    signer_make(&fresh);
    struct keycache *c = keycache_new();
    assert_non_null(c);
    assert_int_equal(verifies(c, "pool1", old.pub, &old), 1); /* decoded and kept */
    assert_int_equal(verifies(c, "pool1", old.pub, &old), 1); /* from the cache */
    assert_int_equal(verifies(c, "pool1", old.pub, &fresh), 0);
    /* reset: the store now has fresh.pub */
    assert_int_equal(verifies(c, "pool1", fresh.pub, &old), 0);
    assert_int_equal(verifies(c, "pool1", fresh.pub, &fresh), 1);
    /* forgetting is not needed for that, and is harmless */
    keycache_forget(c, "pool1");
    keycache_forget(c, "unknown");
    assert_int_equal(verifies(c, "pool1", fresh.pub, &old), 0);
    keycache_free(c);
    keycache_free(NULL);
    signer_clear(&old);
    signer_clear(&fresh);
}

/* More pools than slots: each still verifies with its own key, never a neighbour's. */
static void test_many_pools(void **state)
{
    (void)state;
    enum { NPOOLS = KEYCACHE_SLOTS + 3, NKEYS = 3 };
    struct signer s[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        signer_make(&s[i]);
    struct keycache *c = keycache_new();
    for (int round = 0; round < 2; round++) {
        for (int p = 0; p < NPOOLS; p++) {
            char pool[32];
            snprintf(pool, sizeof(pool), "pool%d", p);
            const struct signer *own = &s[p % NKEYS], *other = &s[(p + 1) % NKEYS];
            assert_int_equal(verifies(c, pool, own->pub, own), 1);
            assert_int_equal(verifies(c, pool, own->pub, other), 0);
        }
    }
    keycache_free(c);
    for (int i = 0; i < NKEYS; i++)
        signer_clear(&s[i]);
}

/* A key handed out stays usable after its entry is replaced and after the cache is freed (ASan
 * would see a use after free). */
static void test_reference_outlives_entry(void **state)
{
    (void)state;
    struct signer a, b;
    signer_make(&a);
    signer_make(&b);
    struct keycache *c = keycache_new();
    struct crypto_pubkey *k = keycache_get(c, "p", a.pub);
    assert_non_null(k);
    assert_int_equal(verifies(c, "p", b.pub, &b), 1); /* replaces a's entry */
    keycache_free(c);
    assert_int_equal(crypto_verify_key(k, msg, strlen(msg), a.sig, a.siglen), 1);
    crypto_pubkey_free(k);
    crypto_pubkey_free(NULL);
    signer_clear(&a);
    signer_clear(&b);
}

/* A PEM that is not a key gives NULL and is not kept. */
static void test_bad_pem(void **state)
{
    (void)state;
    struct keycache *c = keycache_new();
    assert_null(
        keycache_get(c, "p", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
    assert_null(keycache_get(c, "p", ""));
    keycache_free(c);
}

/* The fingerprint seal_key_id_pem gives for pem. */
static void key_id_of(const char *pem, char out[SEAL_KEY_ID_HEX])
{
    char err[256];
    assert_int_equal(seal_key_id_pem(pem, out, err, sizeof(err)), 0);
}

/* The fingerprint comes with the entry: the same as seal_key_id_pem's, whether the entry was made
 * by keycache_get or keycache_key_id, and a reset's new PEM gets the new key's, never the old
 * one's (a cache keyed by pool id alone gives the old key's id here). */
static void test_key_id_follows_pem(void **state)
{
    (void)state;
    struct signer old, fresh;
    signer_make(&old);
    signer_make(&fresh);
    char want_old[SEAL_KEY_ID_HEX], want_fresh[SEAL_KEY_ID_HEX], got[SEAL_KEY_ID_HEX];
    key_id_of(old.pub, want_old);
    key_id_of(fresh.pub, want_fresh);
    assert_string_not_equal(want_old, want_fresh);
    struct keycache *c = keycache_new();
    assert_int_equal(keycache_key_id(c, "pool1", old.pub, got), 0); /* decoded and kept */
    assert_string_equal(got, want_old);
    assert_int_equal(keycache_key_id(c, "pool1", old.pub, got), 0); /* from the cache */
    assert_string_equal(got, want_old);
    /* reset: the store now has fresh.pub */
    assert_int_equal(keycache_key_id(c, "pool1", fresh.pub, got), 0);
    assert_string_equal(got, want_fresh);
    /* an entry keycache_get made has its fingerprint too */
    assert_int_equal(verifies(c, "pool2", old.pub, &old), 1);
    assert_int_equal(keycache_key_id(c, "pool2", old.pub, got), 0);
    assert_string_equal(got, want_old);
    /* after a forget, and for a PEM that is no key */
    keycache_forget(c, "pool1");
    assert_int_equal(keycache_key_id(c, "pool1", fresh.pub, got), 0);
    assert_string_equal(got, want_fresh);
    assert_int_equal(keycache_key_id(c, "pool3", "not a key", got), -1);
    keycache_free(c);
    signer_clear(&old);
    signer_clear(&fresh);
}

/* An EC key whose PEM holds the compressed point has the fingerprint of its uncompressed SPKI, as
 * seal.c computes it for clients: the cached id is of the key, not of the PEM's bytes. */
static void test_key_id_of_compressed_ec(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    char want[SEAL_KEY_ID_HEX], got[SEAL_KEY_ID_HEX];
    assert_int_equal(seal_key_id(k, want), 0);
    assert_int_equal(
        EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
        1);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    assert_int_equal(BIO_write(bio, "", 1), 1); /* the NUL that ends the PEM string */
    char *pem = NULL;
    assert_true(BIO_get_mem_data(bio, &pem) > 0);
    struct keycache *c = keycache_new();
    assert_int_equal(keycache_key_id(c, "ec", pem, got), 0);
    assert_string_equal(got, want);
    keycache_free(c);
    BIO_free(bio);
    EVP_PKEY_free(k);
}

/* Threads verifying with one pool's key while others reset it: every answer is the right one. */
struct race {
    struct keycache *c;
    struct signer *s;             /* two keys */
    char (*ids)[SEAL_KEY_ID_HEX]; /* their fingerprints */
    int which;                    /* the key this thread asks for */
    int wrong;
};

static void *race_main(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 100; i++) {
        const struct signer *want = &r->s[(r->which + i) % 2], *not = &r->s[(r->which + i + 1) % 2];
        struct crypto_pubkey *k = keycache_get(r->c, "p", want->pub);
        if (!k || crypto_verify_key(k, msg, strlen(msg), want->sig, want->siglen) != 1 ||
            crypto_verify_key(k, msg, strlen(msg), not ->sig, not ->siglen) != 0)
            r->wrong++;
        crypto_pubkey_free(k);
        char id[SEAL_KEY_ID_HEX];
        if (keycache_key_id(r->c, "p", want->pub, id) < 0 || strcmp(id, r->ids[want - r->s]) != 0)
            r->wrong++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct signer s[2];
    signer_make(&s[0]);
    signer_make(&s[1]);
    char ids[2][SEAL_KEY_ID_HEX];
    key_id_of(s[0].pub, ids[0]);
    key_id_of(s[1].pub, ids[1]);
    struct keycache *c = keycache_new();
    pthread_t th[4];
    struct race r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){c, s, ids, i % 2, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].wrong, 0);
    }
    keycache_free(c);
    signer_clear(&s[0]);
    signer_clear(&s[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_refuses_old_key),
        cmocka_unit_test(test_many_pools),
        cmocka_unit_test(test_reference_outlives_entry),
        cmocka_unit_test(test_bad_pem),
        cmocka_unit_test(test_key_id_follows_pem),
        cmocka_unit_test(test_key_id_of_compressed_ec),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
