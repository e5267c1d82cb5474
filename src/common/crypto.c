#include "common/crypto.h"

#include "common/hex.h"
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int crypto_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int crypto_random_token(const char *prefix, char *out)
{
    unsigned char raw[32], b64[4 * ((sizeof(raw) + 2) / 3) + 1];
    size_t plen = strlen(prefix);
    if (plen > 16 || crypto_random(raw, sizeof(raw)) < 0)
        return -1;
    /* base64url without padding (RFC 4648 section 5): 32 bytes, 43 characters. */
    int n = EVP_EncodeBlock(b64, raw, (int)sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    memcpy(out, prefix, plen);
    memcpy(out + plen, b64, (size_t)n);
    out[plen + (size_t)n] = '\0';
    OPENSSL_cleanse(b64, sizeof(b64));
    return 0;
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        memset(md, 0, sizeof(md)); /* cannot happen with the default provider */
    hex_encode(md, sizeof(md), out);
}

int crypto_str_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

char *crypto_b64_encode(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

int crypto_b64_decode(const char *s, unsigned char **out, size_t *outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0 || len > 64 * 1024 * 1024)
        return -1;
    /* EVP_DecodeBlock skips whitespace and takes '=' anywhere; davit's
     * base64 is strict: the alphabet, then at most two '=' at the end. */
    size_t body = strspn(s, alphabet);
    if (body < len - 2 || strspn(s + body, "=") != len - body)
        return -1;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
    if (n < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts padding as zero bytes; take them off. */
    if (s[len - 1] == '=')
        n--;
    if (s[len - 2] == '=')
        n--;
    buf[n] = '\0';
    *out = buf;
    *outlen = (size_t)n;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int crypto_b64_decode_pasted(const char *s, unsigned char **out, size_t *outlen)
{
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1]))
        n--;
    char *trimmed = strndup(s, n);
    if (!trimmed)
        return -1;
    int rc = crypto_b64_decode(trimmed, out, outlen);
    OPENSSL_cleanse(trimmed, n);
    free(trimmed);
    return rc;
}

static char *pubkey_to_pem(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *res = NULL;
    if (!bio)
        return NULL;
    if (PEM_write_bio_PUBKEY(bio, pkey) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        res = strndup(data, (size_t)n);
    }
    BIO_free(bio);
    return res;
}

static EVP_PKEY *pubkey_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return pkey;
}

static EVP_PKEY *privkey_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return pkey;
}

/* Smallest RSA public exponent accepted: 65537 (F4), what every key generator uses. A small
 * exponent (3) weakens PKCS#1 v1.5 signatures, and e = 1 makes the "signature" the padded message
 * itself, so anyone could forge the registration's proof of possession. */
#define CRYPTO_RSA_MIN_E    65537UL
#define CRYPTO_RSA_MIN_BITS 2048

static int rsa_check(EVP_PKEY *pkey, char *err, size_t errsz)
{
    BIGNUM *e = NULL;
    int rc = -1;
    if (EVP_PKEY_get_bits(pkey) < CRYPTO_RSA_MIN_BITS) {
        snprintf(err, errsz,
                 "csr: the RSA key has %d bits: davit needs at least %d (make the key with "
                 "openssl req -newkey rsa:4096)",
                 EVP_PKEY_get_bits(pkey), CRYPTO_RSA_MIN_BITS);
        goto out;
    }
    if (EVP_PKEY_get_bn_param(pkey, "e", &e) != 1) {
        snprintf(err, errsz, "csr: the RSA key has no readable public exponent");
        goto out;
    }
    /* BN_get_word gives all ones for an exponent wider than a word: large, so checked as such. */
    BN_ULONG w = BN_get_word(e);
    if (!BN_is_odd(e) || w < CRYPTO_RSA_MIN_E) {
        char shown[32] = "over 64 bits";
        if (w != (BN_ULONG)-1)
            snprintf(shown, sizeof(shown), "%llu", (unsigned long long)w);
        snprintf(err, errsz,
                 "csr: the RSA key has public exponent %s: davit needs 65537 (make the key "
                 "with openssl req -newkey rsa:4096)",
                 shown);
        goto out;
    }
    rc = 0;
out:
    BN_free(e);
    return rc;
}

static int ec_check(EVP_PKEY *pkey, char *err, size_t errsz)
{
    char enc[32] = "", group[64] = "";
    size_t n = 0;
    /* Explicit parameters let the key choose its own curve (a weak one, or P-256 with a
     * different base point); only the named curve is trusted. */
    if (EVP_PKEY_get_utf8_string_param(pkey, "encoding", enc, sizeof(enc), &n) != 1 ||
        strcmp(enc, "named_curve") != 0) {
        snprintf(err, errsz,
                 "csr: the EC key carries explicit curve parameters: davit needs the named "
                 "curve P-256 (make the key with openssl req -newkey ec -pkeyopt "
                 "ec_paramgen_curve:P-256)");
        return -1;
    }
    if (EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group), &n) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        snprintf(err, errsz, "csr: the EC key is on curve \"%s\": davit accepts only P-256", group);
        return -1;
    }
    return 0;
}

/* The key's type, size, exponent or curve, then OpenSSL's own public-key check. */
static int key_check(EVP_PKEY *pkey, char *keytype, char *err, size_t errsz)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (rsa_check(pkey, err, errsz) < 0)
            return -1;
        snprintf(keytype, 16, "rsa");
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        if (ec_check(pkey, err, errsz) < 0)
            return -1;
        snprintf(keytype, 16, "ec");
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        snprintf(keytype, 16, "ed25519");
    } else {
        snprintf(err, errsz, "csr: key type %s not accepted (use RSA, EC P-256 or Ed25519)",
                 EVP_PKEY_get0_type_name(pkey));
        return -1;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        snprintf(err, errsz, "csr: the %s public key fails OpenSSL's validity check", keytype);
        return -1;
    }
    return 0;
}

int crypto_csr_pubkey(const char *pem, size_t len, char **pubkey_pem, char *keytype, char *err,
                      size_t errsz)
{
    X509_REQ *req = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio || len > 64 * 1024) {
        snprintf(err, errsz, "csr: too large or out of memory");
        goto fail;
    }
    req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (!req) {
        snprintf(err, errsz, "csr: not a PEM certificate signing request");
        goto fail;
    }
    EVP_PKEY *pkey = X509_REQ_get0_pubkey(req);
    if (!pkey) {
        snprintf(err, errsz, "csr: no usable public key");
        goto fail;
    }
    /* The key first: a verification with a key chosen to be weak proves nothing. */
    if (key_check(pkey, keytype, err, errsz) < 0)
        goto fail;
    if (X509_REQ_verify(req, pkey) != 1) {
        snprintf(err, errsz, "csr: the self-signature does not verify");
        goto fail;
    }
    *pubkey_pem = pubkey_to_pem(pkey);
    if (!*pubkey_pem) {
        snprintf(err, errsz, "csr: out of memory");
        goto fail;
    }
    X509_REQ_free(req);
    BIO_free(bio);
    return 0;
fail:
    X509_REQ_free(req);
    BIO_free(bio);
    return -1;
}

/* struct crypto_pubkey is never defined: a pointer to one is an EVP_PKEY's. */
static EVP_PKEY *pkey_of(struct crypto_pubkey *k)
{
    return (EVP_PKEY *)(void *)k;
}

struct crypto_pubkey *crypto_pubkey_decode(const char *pubkey_pem)
{
    return (struct crypto_pubkey *)(void *)pubkey_from_pem(pubkey_pem);
}

struct crypto_pubkey *crypto_pubkey_ref(struct crypto_pubkey *k)
{
    /* Fails only when the count would overflow, which a bounded cache never reaches. */
    if (EVP_PKEY_up_ref(pkey_of(k)) != 1)
        abort();
    return k;
}

void crypto_pubkey_free(struct crypto_pubkey *k)
{
    EVP_PKEY_free(k ? pkey_of(k) : NULL);
}

void *crypto_pubkey_evp(struct crypto_pubkey *k)
{
    return pkey_of(k);
}

int crypto_verify_key(struct crypto_pubkey *k, const void *msg, size_t msglen,
                      const unsigned char *sig, size_t siglen)
{
    int rc = -1;
    EVP_PKEY *pkey = pkey_of(k);
    /* The context is this call's own; the key is only read. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        goto out;
    const EVP_MD *md = EVP_PKEY_is_a(pkey, "ED25519") ? NULL : EVP_sha256();
    if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) != 1)
        goto out;
    rc = EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1 ? 1 : 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int crypto_verify(const char *pubkey_pem, const void *msg, size_t msglen, const unsigned char *sig,
                  size_t siglen)
{
    struct crypto_pubkey *k = crypto_pubkey_decode(pubkey_pem);
    if (!k)
        return -1;
    int rc = crypto_verify_key(k, msg, msglen, sig, siglen);
    crypto_pubkey_free(k);
    return rc;
}

int crypto_ed25519_generate(char **priv_pem, char **pub_pem)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *bio = NULL;
    *priv_pem = *pub_pem = NULL;
    if (!pkey)
        return -1;
    bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto fail;
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    *priv_pem = strndup(data, (size_t)n);
    OPENSSL_cleanse(data, (size_t)n);
    *pub_pem = pubkey_to_pem(pkey);
    if (!*priv_pem || !*pub_pem)
        goto fail;
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return 0;
fail:
    free(*priv_pem);
    free(*pub_pem);
    *priv_pem = *pub_pem = NULL;
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return -1;
}

int crypto_public_pem(const char *priv_pem, char **pub_pem)
{
    EVP_PKEY *pkey = privkey_from_pem(priv_pem);
    if (!pkey)
        return -1;
    *pub_pem = pubkey_to_pem(pkey);
    EVP_PKEY_free(pkey);
    return *pub_pem ? 0 : -1;
}

int crypto_ed25519_sign(const char *priv_pem, const void *msg, size_t msglen, char **sig_b64)
{
    int rc = -1;
    unsigned char sig[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *pkey = privkey_from_pem(priv_pem);
    if (!pkey || !EVP_PKEY_is_a(pkey, "ED25519"))
        goto out;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, msg, msglen) != 1)
        goto out;
    *sig_b64 = crypto_b64_encode(sig, siglen);
    rc = *sig_b64 ? 0 : -1;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc;
}

int crypto_cert_pin(const char *cert_pem, char *out, char *err, size_t errsz)
{
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int rc = -1;

    BIO_free(bio);
    if (!cert) {
        snprintf(err, errsz, "the certificate is not PEM");
        return -1;
    }
    int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len <= 0 || EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        snprintf(err, errsz, "the certificate's public key cannot be read");
        goto done;
    }
    char *b64 = crypto_b64_encode(md, mdlen);
    if (!b64) {
        snprintf(err, errsz, "out of memory");
        goto done;
    }
    snprintf(out, CRYPTO_PIN_MAX, "sha256//%s", b64);
    free(b64);
    rc = 0;
done:
    OPENSSL_free(der);
    X509_free(cert);
    return rc;
}
