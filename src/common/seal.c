#include "common/seal.h"

#include "common/crypto.h"
#include "common/hex.h"

#include <math.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN   32
#define IV_LEN    12
#define TAG_LEN   16
#define POINT_LEN 65 /* an uncompressed P-256 point */

static const char scheme[] = "davit-seal-v1";
static const char spec_scheme[] = "davit-spec-v1";

static int fail(char *err, size_t errsz, const char *msg)
{
    snprintf(err, errsz, "%s", msg);
    return -1;
}

int seal_new_nonce(char out[SEAL_NONCE_HEX])
{
    unsigned char n[16];
    if (crypto_random(n, sizeof(n)) < 0)
        return -1;
    hex_encode(n, sizeof(n), out);
    return 0;
}

int seal_key_id(EVP_PKEY *key, char out[SEAL_KEY_ID_HEX])
{
    unsigned char *der = NULL;
    EVP_PKEY *copy = NULL;
    /* An EC key is encoded with its point uncompressed, however it came (a CSR may hold the
     * compressed form): the fingerprint is of the key, not of one of its encodings. The copy
     * leaves the caller's key as it was. */
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        if (!(copy = EVP_PKEY_dup(key)) ||
            EVP_PKEY_set_utf8_string_param(copy, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                           OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) !=
                1) {
            EVP_PKEY_free(copy);
            return -1;
        }
        key = copy;
    }
    int len = i2d_PUBKEY(key, &der);
    EVP_PKEY_free(copy);
    if (len <= 0)
        return -1;
    crypto_sha256_hex(der, (size_t)len, out);
    OPENSSL_free(der);
    return 0;
}

static EVP_PKEY *pub_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return k;
}

int seal_key_id_pem(const char *pub_pem, char out[SEAL_KEY_ID_HEX], char *err, size_t errsz)
{
    EVP_PKEY *k = pub_from_pem(pub_pem);
    int rc = k ? seal_key_id(k, out) : -1;
    EVP_PKEY_free(k);
    return rc < 0 ? fail(err, errsz, "the pool's public key cannot be read") : 0;
}

/* "davit-seal-v1" NUL key_id NUL pool_id NUL run_nonce NUL name */
static int make_aad(struct dbuf *aad, const char *key_id, const char *pool_id, const char *nonce,
                    const char *name)
{
    dbuf_reset(aad);
    const char *parts[] = {scheme, key_id, pool_id, nonce, name};
    for (size_t i = 0; i < 5; i++)
        if (dbuf_add(aad, parts[i], strlen(parts[i]) + (i < 4)) < 0) /* NUL between parts */
            return -1;
    return 0;
}

/* IV || ciphertext || tag of plain under key, as base64 (caller frees). */
static char *gcm_seal(const unsigned char key[KEY_LEN], const struct dbuf *aad, const char *plain,
                      size_t len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *box = malloc(IV_LEN + len + TAG_LEN);
    char *out = NULL;
    int n, m;
    if (!ctx || !box || len > INT32_MAX || crypto_random(box, IV_LEN) < 0 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, box) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad->data, (int)aad->len) != 1 ||
        EVP_EncryptUpdate(ctx, box + IV_LEN, &n, (const unsigned char *)plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, box + IV_LEN + n, &m) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, box + IV_LEN + len) != 1)
        goto out;
    out = crypto_b64_encode(box, IV_LEN + len + TAG_LEN);
out:
    EVP_CIPHER_CTX_free(ctx);
    free(box); /* ciphertext only */
    return out;
}

/* Opens one base64 box; *plain (wiped and freed by the caller) is NUL-terminated. */
static int gcm_open(const unsigned char key[KEY_LEN], const struct dbuf *aad, const char *b64,
                    char **plain, size_t *plen)
{
    unsigned char *box = NULL;
    size_t len, clen = 0;
    int n, m, rc = -1;
    EVP_CIPHER_CTX *ctx = NULL;
    *plain = NULL;
    if (crypto_b64_decode(b64, &box, &len) < 0 || len < IV_LEN + TAG_LEN || len > INT32_MAX)
        goto out;
    clen = len - IV_LEN - TAG_LEN;
    ctx = EVP_CIPHER_CTX_new();
    *plain = malloc(clen + 1);
    if (!ctx || !*plain || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, box) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad->data, (int)aad->len) != 1 ||
        EVP_DecryptUpdate(ctx, (unsigned char *)*plain, &n, box + IV_LEN, (int)clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, box + IV_LEN + clen) != 1 ||
        EVP_DecryptFinal_ex(ctx, (unsigned char *)*plain + n, &m) != 1)
        goto out;
    (*plain)[clen] = 0;
    *plen = clen;
    rc = 0;
out:
    if (rc < 0 && *plain) {
        OPENSSL_cleanse(*plain, clen + 1);
        free(*plain);
        *plain = NULL;
    }
    EVP_CIPHER_CTX_free(ctx);
    free(box);
    return rc;
}

/* The uncompressed point of an EC key into pt (POINT_LEN bytes). */
static int ec_point(EVP_PKEY *k, unsigned char pt[POINT_LEN])
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, POINT_LEN,
                                        &len) != 1 ||
        len != POINT_LEN || pt[0] != 4)
        return -1;
    return 0;
}

/* An EC P-256 public key from an uncompressed point; checked to be on the curve. */
static EVP_PKEY *ec_from_point(const unsigned char *pt, size_t len)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), *chk = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, len),
        OSSL_PARAM_construct_end()};
    if (len != POINT_LEN || pt[0] != 4 || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto fail;
    chk = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    if (!chk || EVP_PKEY_public_check(chk) != 1)
        goto fail;
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    return k;
fail:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(k);
    return NULL;
}

/*
 * The run key of an EC seal: HKDF-SHA256 with no salt over the ECDH shared secret (the x
 * coordinate, 32 bytes), info "davit-seal-v1" NUL, the ephemeral point and the pool's point.
 */
static int ec_run_key(EVP_PKEY *mine, EVP_PKEY *peer, const unsigned char epk[POINT_LEN],
                      const unsigned char ppk[POINT_LEN], unsigned char key[KEY_LEN])
{
    unsigned char z[32], info[sizeof(scheme) + 2 * POINT_LEN];
    size_t zlen = sizeof(z);
    int rc = -1;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!ctx || !kctx || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, peer) != 1 || EVP_PKEY_derive(ctx, z, &zlen) != 1 ||
        zlen != sizeof(z))
        goto out;
    memcpy(info, scheme, sizeof(scheme)); /* with its NUL */
    memcpy(info + sizeof(scheme), epk, POINT_LEN);
    memcpy(info + sizeof(scheme) + POINT_LEN, ppk, POINT_LEN);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, sizeof(z)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info)),
        OSSL_PARAM_construct_end()};
    if (EVP_KDF_derive(kctx, key, KEY_LEN, params) != 1)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(z, sizeof(z));
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* RSA-OAEP with SHA-256 and MGF1-SHA-256, no label, for encrypt (1) or decrypt (0). */
static EVP_PKEY_CTX *oaep_ctx(EVP_PKEY *k, int encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    if (!ctx || (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The run key and the "key" member for pub: RSA-wrapped, or an ephemeral EC point. */
static int make_run_key(EVP_PKEY *pub, unsigned char key[KEY_LEN], char **key_b64, char *err,
                        size_t errsz)
{
    *key_b64 = NULL;
    if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
        size_t wlen = 0;
        unsigned char *wrapped = NULL;
        EVP_PKEY_CTX *ctx = oaep_ctx(pub, 1);
        int ok = ctx && crypto_random(key, KEY_LEN) == 0 &&
                 EVP_PKEY_encrypt(ctx, NULL, &wlen, key, KEY_LEN) == 1 &&
                 (wrapped = malloc(wlen)) != NULL &&
                 EVP_PKEY_encrypt(ctx, wrapped, &wlen, key, KEY_LEN) == 1;
        EVP_PKEY_CTX_free(ctx);
        if (ok)
            *key_b64 = crypto_b64_encode(wrapped, wlen);
        free(wrapped); /* ciphertext */
    } else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
        unsigned char epk[POINT_LEN], ppk[POINT_LEN];
        EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (eph && ec_point(eph, epk) == 0 && ec_point(pub, ppk) == 0 &&
            ec_run_key(eph, pub, epk, ppk, key) == 0)
            *key_b64 = crypto_b64_encode(epk, POINT_LEN);
        EVP_PKEY_free(eph); /* frees (and wipes) the ephemeral private key */
    } else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_ED25519) {
        return fail(err, errsz,
                    "the pool has an Ed25519 key, which can only sign: secrets cannot be sealed "
                    "to it; reset the pool with an RSA or EC P-256 key (docs/secrets.md)");
    } else {
        return fail(err, errsz, "the pool's key type cannot receive sealed secrets");
    }
    if (!*key_b64) {
        OPENSSL_cleanse(key, KEY_LEN);
        return fail(err, errsz, "sealing the run key to the pool's key failed");
    }
    return 0;
}

int seal_secrets(const char *pub_pem, const char *pool_id, const char *run_nonce,
                 const json_t *secrets, json_t **sealed, char *err, size_t errsz)
{
    unsigned char key[KEY_LEN];
    char key_id[SEAL_KEY_ID_HEX], *key_b64 = NULL;
    struct dbuf aad = DBUF_INIT(1024);
    json_t *boxes = json_object();
    int rc = -1;
    *sealed = NULL;
    EVP_PKEY *pub = pub_from_pem(pub_pem);
    if (!pub || seal_key_id(pub, key_id) < 0) {
        fail(err, errsz, "the pool's public key cannot be read");
        goto out;
    }
    if (!boxes || !json_is_object(secrets)) {
        fail(err, errsz, "secrets: must be an object of strings");
        goto out;
    }
    if (make_run_key(pub, key, &key_b64, err, errsz) < 0)
        goto out;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)secrets, name, v)
    {
        if (!json_is_string(v)) {
            fail(err, errsz, "secrets: every value must be a string");
            goto wipe;
        }
        char *box = make_aad(&aad, key_id, pool_id, run_nonce, name) < 0
                        ? NULL
                        : gcm_seal(key, &aad, json_string_value(v), json_string_length(v));
        if (!box || json_object_set_new(boxes, name, json_string(box)) < 0) {
            free(box);
            fail(err, errsz, "sealing a secret failed");
            goto wipe;
        }
        free(box);
    }
    *sealed = json_pack("{s:s, s:s, s:s, s:O}", "alg",
                        EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA ? SEAL_ALG_RSA : SEAL_ALG_EC,
                        "key_id", key_id, "key", key_b64, "secrets", boxes);
    rc = *sealed ? 0 : fail(err, errsz, "out of memory");
wipe:
    OPENSSL_cleanse(key, sizeof(key));
out:
    free(key_b64);
    json_decref(boxes);
    dbuf_free(&aad);
    EVP_PKEY_free(pub);
    return rc;
}

/* The run key from sealed's "key" member with the pool's private key. */
static int open_run_key(EVP_PKEY *priv, const char *alg, const char *key_b64,
                        unsigned char key[KEY_LEN], char *err, size_t errsz)
{
    unsigned char *raw = NULL;
    size_t len;
    int rc = -1, type = EVP_PKEY_get_base_id(priv);
    if (crypto_b64_decode(key_b64, &raw, &len) < 0)
        return fail(err, errsz, "sealed.key: not base64");
    if (type == EVP_PKEY_RSA && strcmp(alg, SEAL_ALG_RSA) == 0) {
        size_t olen = 0, cap = 0;
        unsigned char *out = NULL;
        EVP_PKEY_CTX *ctx = oaep_ctx(priv, 0);
        /* The output buffer is as large as the modulus, whatever the key's size. */
        if (ctx && EVP_PKEY_decrypt(ctx, NULL, &cap, raw, len) == 1 && (out = malloc(cap)) &&
            (olen = cap, EVP_PKEY_decrypt(ctx, out, &olen, raw, len) == 1) && olen == KEY_LEN) {
            memcpy(key, out, KEY_LEN);
            rc = 0;
        }
        if (out) {
            OPENSSL_cleanse(out, cap);
            free(out);
        }
        EVP_PKEY_CTX_free(ctx);
    } else if (type == EVP_PKEY_EC && strcmp(alg, SEAL_ALG_EC) == 0) {
        unsigned char ppk[POINT_LEN];
        EVP_PKEY *eph = ec_from_point(raw, len);
        if (eph && ec_point(priv, ppk) == 0 && ec_run_key(priv, eph, raw, ppk, key) == 0)
            rc = 0;
        EVP_PKEY_free(eph);
    } else {
        free(raw);
        return fail(err, errsz, "the secrets are sealed with an algorithm for another key type");
    }
    free(raw);
    return rc < 0 ? fail(err, errsz, "the run key does not open with the pool's private key") : 0;
}

int seal_open(EVP_PKEY *priv, const char *pool_id, const char *run_nonce, const json_t *sealed,
              json_t **secrets, char *err, size_t errsz)
{
    unsigned char key[KEY_LEN];
    char mine[SEAL_KEY_ID_HEX];
    struct dbuf aad = DBUF_INIT(1024);
    const char *alg = NULL, *key_id = NULL, *key_b64 = NULL;
    json_t *boxes = NULL, *out = NULL;
    *secrets = NULL;
    if (json_unpack((json_t *)sealed, "{s:s, s:s, s:s, s:o}", "alg", &alg, "key_id", &key_id, "key",
                    &key_b64, "secrets", &boxes) < 0 ||
        !json_is_object(boxes))
        return fail(err, errsz, "sealed: alg, key_id, key and secrets are required");
    if (!run_nonce || !*run_nonce)
        return fail(err, errsz, "sealed secrets need the spec's run_nonce");
    if (seal_key_id(priv, mine) < 0)
        return fail(err, errsz, "the pool's private key has no public half");
    if (strcmp(key_id, mine) != 0) {
        snprintf(err, errsz,
                 "the secrets are sealed to pool key %.12s…, but this launcher holds pool key "
                 "%.12s…: the pool was reset after the run was submitted; submit it again",
                 hex_is(key_id, strlen(key_id)) ? key_id : "(malformed)", mine);
        return -1;
    }
    if (open_run_key(priv, alg, key_b64, key, err, errsz) < 0) {
        ERR_clear_error();
        return -1;
    }
    out = json_object();
    if (!out) {
        fail(err, errsz, "out of memory");
        goto fail;
    }
    const char *name;
    json_t *v;
    json_object_foreach(boxes, name, v)
    {
        char *plain = NULL;
        size_t plen = 0;
        if (!json_is_string(v) || make_aad(&aad, key_id, pool_id, run_nonce, name) < 0 ||
            gcm_open(key, &aad, json_string_value(v), &plain, &plen) < 0) {
            snprintf(err, errsz,
                     "a sealed secret does not open: it was altered, cut short, or sealed for "
                     "another run, pool or name");
            goto fail;
        }
        json_t *s = json_stringn(plain, plen);
        OPENSSL_cleanse(plain, plen);
        free(plain);
        if (!s || json_object_set_new(out, name, s) < 0) {
            fail(err, errsz, "a sealed secret is not UTF-8 text");
            goto fail;
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    dbuf_free(&aad);
    *secrets = out;
    return 0;
fail:
    OPENSSL_cleanse(key, sizeof(key));
    dbuf_free(&aad);
    json_decref(out);
    ERR_clear_error(); /* a refused box leaves OpenSSL errors that later TLS must not see */
    return -1;
}

/* --- canonical JSON (RFC 8785) --- */

static int canon_string(struct dbuf *out, const char *s, size_t len)
{
    int rc = dbuf_addch(out, '"');
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        static const char short_esc[] = {
            ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
        if (c == '"' || c == '\\')
            rc = dbuf_printf(out, "\\%c", c);
        else if (c < 0x20 && c < sizeof(short_esc) && short_esc[c])
            rc = dbuf_printf(out, "\\%c", short_esc[c]);
        else if (c < 0x20)
            rc = dbuf_printf(out, "\\u%04x", c);
        else
            rc = dbuf_addch(out, (char)c); /* UTF-8 as it is: jansson has checked it */
    }
    return rc < 0 ? -1 : dbuf_addch(out, '"');
}

static int add_zeros(struct dbuf *out, int n)
{
    for (int i = 0; i < n; i++)
        if (dbuf_addch(out, '0') < 0)
            return -1;
    return 0;
}

/* ECMAScript's Number.prototype.toString for a finite double (RFC 8785 section 3.2.2.3). */
static int canon_real(struct dbuf *out, double d)
{
    if (d == 0)
        return dbuf_addch(out, '0'); /* -0 too */
    char buf[40], digits[20];
    int p;
    for (p = 1; p <= 17; p++) { /* the shortest form that reads back as d */
        snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    const char *s = buf;
    int neg = *s == '-', k = 0;
    s += neg;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[k++] = *s;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = 0;
    int n = atoi(s + 1) + 1; /* the decimal point's position */
    if (neg && dbuf_addch(out, '-') < 0)
        return -1;
    if (k <= n && n <= 21)
        return dbuf_addstr(out, digits) < 0 || add_zeros(out, n - k) < 0 ? -1 : 0;
    if (0 < n && n < k) /* n <= 21 too: here k is at most 17 */
        return dbuf_printf(out, "%.*s.%s", n, digits, digits + n);
    if (-6 < n && n <= 0)
        return dbuf_addstr(out, "0.") < 0 || add_zeros(out, -n) < 0 ? -1 : dbuf_addstr(out, digits);
    return dbuf_printf(out, "%c%s%se%c%d", digits[0], k > 1 ? "." : "", digits + 1,
                       n - 1 < 0 ? '-' : '+', abs(n - 1));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int canon(const json_t *v, struct dbuf *out, int depth, char *err, size_t errsz)
{
    if (depth > 32)
        return fail(err, errsz, "canonical JSON: nested too deeply");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return dbuf_addstr(out, "null");
    case JSON_TRUE:
        return dbuf_addstr(out, "true");
    case JSON_FALSE:
        return dbuf_addstr(out, "false");
    case JSON_STRING:
        return canon_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i > (1LL << 53) || i < -(1LL << 53))
            return fail(err, errsz, "canonical JSON: an integer beyond 2^53");
        return dbuf_printf(out, "%lld", (long long)i) < 0 ? -1 : 0;
    }
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return fail(err, errsz, "canonical JSON: a number that is not finite");
        return canon_real(out, json_real_value(v));
    case JSON_ARRAY: {
        if (dbuf_addch(out, '[') < 0)
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && dbuf_addch(out, ',') < 0) ||
                canon(json_array_get(v, i), out, depth + 1, err, errsz) < 0)
                return -1;
        return dbuf_addch(out, ']');
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = calloc(n ? n : 1, sizeof(*keys));
        const char *k;
        json_t *x;
        int rc = 0;
        if (!keys)
            return fail(err, errsz, "canonical JSON: out of memory");
        json_object_foreach((json_t *)v, k, x)
        {
            for (const char *p = k; *p && rc == 0; p++)
                if ((unsigned char)*p >= 0x80)
                    rc = fail(err, errsz, "canonical JSON: a key that is not ASCII");
            keys[i++] = k;
        }
        if (rc == 0) {
            qsort(keys, n, sizeof(*keys), cmp_str);
            rc = dbuf_addch(out, '{');
        }
        for (i = 0; i < n && rc == 0; i++)
            if ((i && dbuf_addch(out, ',') < 0) ||
                canon_string(out, keys[i], strlen(keys[i])) < 0 || dbuf_addch(out, ':') < 0 ||
                canon(json_object_get(v, keys[i]), out, depth + 1, err, errsz) < 0)
                rc = -1;
        free(keys);
        return rc < 0 ? -1 : dbuf_addch(out, '}');
    }
    }
    return -1;
}

int seal_canonical(const json_t *v, struct dbuf *out, char *err, size_t errsz)
{
    err[0] = 0;
    if (canon(v, out, 0, err, errsz) < 0)
        return err[0] ? -1 : fail(err, errsz, "canonical JSON: out of memory");
    return 0;
}

int seal_spec_message(const json_t *spec, const char *pool_id, struct dbuf *out, char *err,
                      size_t errsz)
{
    dbuf_reset(out);
    json_t *copy = json_copy((json_t *)spec); /* shallow: only the top level changes */
    if (!copy || !json_is_object(copy)) {
        json_decref(copy);
        return fail(err, errsz, "a run spec must be a JSON object");
    }
    json_object_del(copy, "signature");
    int rc = dbuf_add(out, spec_scheme, sizeof(spec_scheme)) < 0 ||
                     dbuf_add(out, pool_id, strlen(pool_id) + 1) < 0
                 ? fail(err, errsz, "out of memory")
                 : seal_canonical(copy, out, err, errsz);
    json_decref(copy);
    return rc;
}

int seal_sign_spec(json_t *spec, const char *pool_id, EVP_PKEY *ed, char *err, size_t errsz)
{
    struct dbuf msg = DBUF_INIT(16 << 20);
    unsigned char sig[64];
    size_t slen = sizeof(sig);
    int rc = -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (EVP_PKEY_get_base_id(ed) != EVP_PKEY_ED25519) {
        fail(err, errsz, "the signing key is not an Ed25519 private key");
        goto out;
    }
    if (seal_spec_message(spec, pool_id, &msg, err, errsz) < 0)
        goto out;
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, ed) != 1 ||
        EVP_DigestSign(md, sig, &slen, (const unsigned char *)msg.data, msg.len) != 1) {
        fail(err, errsz, "signing the spec failed");
        goto out;
    }
    char *b64 = crypto_b64_encode(sig, slen);
    rc = b64 && json_object_set_new(spec, "signature", json_string(b64)) == 0
             ? 0
             : fail(err, errsz, "out of memory");
    free(b64);
out:
    EVP_MD_CTX_free(md);
    dbuf_free(&msg);
    return rc;
}

int seal_verify_spec(const json_t *spec, const char *pool_id, EVP_PKEY *const *keys, size_t n,
                     char *err, size_t errsz)
{
    struct dbuf msg = DBUF_INIT(16 << 20);
    unsigned char *sig = NULL;
    size_t slen = 0;
    int rc = -1;
    const char *b64 = json_string_value(json_object_get(spec, "signature"));
    if (!b64) {
        fail(err, errsz,
             "the run spec is not signed, and this launcher runs only specs signed by a key in "
             "DAVIT_SUBMITTER_KEYS");
        goto out;
    }
    if (crypto_b64_decode(b64, &sig, &slen) < 0 || slen != 64) {
        fail(err, errsz, "the run spec's signature is not 64 bytes of base64");
        goto out;
    }
    if (seal_spec_message(spec, pool_id, &msg, err, errsz) < 0)
        goto out;
    for (size_t i = 0; i < n && rc < 0; i++) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, keys[i]) == 1 &&
            EVP_DigestVerify(md, sig, slen, (const unsigned char *)msg.data, msg.len) == 1)
            rc = 0;
        EVP_MD_CTX_free(md);
    }
    ERR_clear_error();
    if (rc < 0)
        snprintf(err, errsz,
                 "the run spec's signature verifies with none of the %zu keys in "
                 "DAVIT_SUBMITTER_KEYS: it was altered after signing, or signed by another key",
                 n);
out:
    free(sig);
    dbuf_free(&msg);
    return rc;
}
