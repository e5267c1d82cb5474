#include "launcher/credentials.h"

#include "common/crypto.h"
#include "common/env.h"
#include "common/pooltoken.h"
#include "common/secure.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Never prompt for a passphrase: a launcher has no terminal to ask on. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag;
    *(int *)u = 1;
    return -1;
}

static int parse_token(struct credentials *c, const char *token, const char *var, char *err,
                       size_t errsz)
{
    struct pool_token t;
    char why[512];
    if (pooltoken_decode(token, &t, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "%s: %s", var, why);
        return -1;
    }
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", t.endpoint);
    snprintf(c->pool_id, sizeof(c->pool_id), "%s", t.pool_id);
    snprintf(c->tls_pin, sizeof(c->tls_pin), "%s", t.tls_pin);
    /* The credentials own the strings from here. */
    c->pool_secret = t.pool_secret;
    c->release_key_pem = t.release_key_pem;
    BIO *bio = BIO_new_mem_buf(c->release_key_pem, -1);
    c->release_key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!c->release_key || EVP_PKEY_get_base_id(c->release_key) != EVP_PKEY_ED25519) {
        snprintf(err, errsz, "%s: the token's release_key is not an Ed25519 public key", var);
        return -1;
    }
    return 0;
}

static int parse_key(struct credentials *c, const char *key_b64, const char *var, char *err,
                     size_t errsz)
{
    unsigned char *pem = NULL;
    size_t pemlen;
    int encrypted = 0, rc = -1;

    if (crypto_b64_decode_pasted(key_b64, &pem, &pemlen) < 0) {
        snprintf(err, errsz,
                 "%s: not valid base64 (encode the PEM file on one line: base64 -w 0 davit.key)",
                 var);
        goto done;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pemlen);
    c->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted) : NULL;
    BIO_free(bio);
    if (!c->key) {
        if (encrypted)
            snprintf(err, errsz,
                     "%s: the key is protected by a passphrase; davit needs an unencrypted key "
                     "(openssl req -nodes …)",
                     var);
        else
            snprintf(err, errsz, "%s: decodes, but not to a PEM private key", var);
        goto done;
    }
    switch (EVP_PKEY_get_base_id(c->key)) {
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(c->key) < 2048) {
            snprintf(err, errsz, "%s: an RSA key of %d bits; at least 2048 are needed", var,
                     EVP_PKEY_get_bits(c->key));
            goto done;
        }
        snprintf(c->key_type, sizeof(c->key_type), "rsa");
        break;
    case EVP_PKEY_EC: {
        char group[64] = "";
        size_t glen;
        EVP_PKEY_get_utf8_string_param(c->key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen);
        if (strcmp(group, "prime256v1") != 0) {
            snprintf(err, errsz, "%s: an EC key on curve %s; only P-256 is supported", var,
                     group[0] ? group : "(unknown)");
            goto done;
        }
        snprintf(c->key_type, sizeof(c->key_type), "ec");
        break;
    }
    case EVP_PKEY_ED25519:
        snprintf(c->key_type, sizeof(c->key_type), "ed25519");
        break;
    default:
        snprintf(err, errsz,
                 "%s: a key of an unsupported type; use RSA (2048+), EC P-256 or "
                 "Ed25519",
                 var);
        goto done;
    }
    rc = 0;
done:
    if (pem) {
        OPENSSL_cleanse(pem, pemlen);
        free(pem);
    }
    return rc;
}

int credentials_parse(struct credentials *c, const char *token, const char *token_var,
                      const char *key_b64, const char *key_var, char *err, size_t errsz)
{
    memset(c, 0, sizeof(*c));
    if (parse_token(c, token, token_var, err, errsz) < 0 ||
        parse_key(c, key_b64, key_var, err, errsz) < 0) {
        credentials_free(c);
        return -1;
    }
    return 0;
}

int credentials_load(struct credentials *c, char *err, size_t errsz)
{
    char tvar[ENV_NAME_MAX], kvar[ENV_NAME_MAX];
    const char *token = env_get("TOKEN", tvar, sizeof(tvar));

    const char *key = env_get("POOL_PRIVATE_KEY", kvar, sizeof(kvar));
    int rc = -1;

    memset(c, 0, sizeof(*c));
    if (!token)
        snprintf(err, errsz,
                 "DAVIT_TOKEN is not set: give the token printed by `davit pool create` "
                 "(SPACELIFT_TOKEN works too)");
    else if (!key)
        snprintf(err, errsz,
                 "DAVIT_POOL_PRIVATE_KEY is not set: give the pool's private key, "
                 "base64-encoded (base64 -w 0 davit.key)");
    else
        rc = credentials_parse(c, token, tvar, key, kvar, err, errsz);
    credentials_scrub_env();
    return rc;
}

/* The variables that carry the launcher's two secrets, under both prefixes (common/env.h). */
static const char *const secret_vars[] = {"DAVIT_TOKEN", "SPACELIFT_TOKEN",
                                          "DAVIT_POOL_PRIVATE_KEY", "SPACELIFT_POOL_PRIVATE_KEY"};

int credentials_is_secret_var(const char *name)
{
    for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++)
        if (strcmp(name, secret_vars[i]) == 0)
            return 1;
    return 0;
}

void credentials_scrub_env(void)
{
    for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++) {
        char *v = getenv(secret_vars[i]);
        /* Wiped in place first: unsetenv only drops the pointer, and the bytes of the initial
         * environment stay where /proc/<pid>/environ (and a core dump) shows them. */
        if (v)
            secure_wipe(v, strlen(v));
        unsetenv(secret_vars[i]);
    }
}

int credentials_sign(const struct credentials *c, const void *msg, size_t len, char **sig_b64,
                     char *err, size_t errsz)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t siglen = 0;
    int rc = -1;
    /* Ed25519 signs the message itself; the others sign its SHA-256. */
    const EVP_MD *md = strcmp(c->key_type, "ed25519") == 0 ? NULL : EVP_sha256();

    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, c->key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, msg, len) != 1 || !(sig = malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1) {
        snprintf(err, errsz, "sign the server's challenge with the pool key: OpenSSL failed");
        goto done;
    }
    if (!(*sig_b64 = crypto_b64_encode(sig, siglen))) {
        snprintf(err, errsz, "sign the server's challenge: out of memory");
        goto done;
    }
    rc = 0;
done:
    free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

void credentials_free(struct credentials *c)
{
    secure_free_str(c->pool_secret);
    free(c->release_key_pem);
    EVP_PKEY_free(c->release_key);
    EVP_PKEY_free(c->key);
    memset(c, 0, sizeof(*c));
}
