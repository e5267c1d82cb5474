#include "common/pooltoken.h"

#include "common/crypto.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pooltoken_encode(const struct pool_token *t)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", POOLTOKEN_VERSION, "endpoint",
                          t->endpoint, "pool_id", t->pool_id, "pool_secret", t->pool_secret,
                          "release_key", t->release_key_pem);
    if (o && t->tls_pin[0] && json_object_set_new(o, "tls_pin", json_string(t->tls_pin)) < 0) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *tok = text ? crypto_b64_encode(text, strlen(text)) : NULL;
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    return tok;
}

/* Copies the endpoint without trailing slashes; -1 if it is not an http(s) URL. */
static int take_endpoint(struct pool_token *t, const char *endpoint)
{
    size_t n = strlen(endpoint);
    size_t scheme = strncmp(endpoint, "https://", 8) == 0  ? 8
                    : strncmp(endpoint, "http://", 7) == 0 ? 7
                                                           : 0;
    while (n > scheme && endpoint[n - 1] == '/')
        n--;
    /* A scheme, then a host: "https://" alone is no endpoint. */
    if (!scheme || n == scheme || n >= sizeof(t->endpoint))
        return -1;
    memcpy(t->endpoint, endpoint, n);
    t->endpoint[n] = '\0';
    return 0;
}

int pooltoken_decode(const char *token, struct pool_token *t, char *err, size_t errsz)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    json_t *root = NULL;
    json_error_t jerr;
    json_int_t v = 0;
    const char *endpoint, *pool_id, *secret, *release_key, *pin = NULL;

    memset(t, 0, sizeof(*t));
    if (crypto_b64_decode_pasted(token, &raw, &rawlen) < 0) {
        snprintf(err, errsz, "not valid base64 (cut short or altered? copy the whole token)");
        goto fail;
    }
    root = json_loadb((const char *)raw, rawlen, 0, &jerr);
    /* Not strict: a newer server may add fields that an older reader ignores. */
    if (!root || json_unpack_ex(root, &jerr, 0, "{s:I, s:s, s:s, s:s, s:s, s?:s}", "v", &v,
                                "endpoint", &endpoint, "pool_id", &pool_id, "pool_secret", &secret,
                                "release_key", &release_key, "tls_pin", &pin) < 0) {
        /* jerr.text names a field or a position, never a value. */
        snprintf(err, errsz, "not a davit pool token (%s)",
                 root ? jerr.text : "the decoded bytes are not JSON");
        goto fail;
    }
    if (v != POOLTOKEN_VERSION) {
        snprintf(err, errsz,
                 "token format %lld is not known to this program (davit " DAVIT_VERSION
                 "): upgrade it",
                 (long long)v);
        goto fail;
    }
    if (take_endpoint(t, endpoint) < 0) {
        snprintf(err, errsz, "the token's endpoint is not an http(s) URL of at most %zu bytes",
                 sizeof(t->endpoint) - 1);
        goto fail;
    }
    if (!*pool_id || strlen(pool_id) >= sizeof(t->pool_id) || !*secret) {
        snprintf(err, errsz, "the token has an empty or overlong pool id or secret");
        goto fail;
    }
    /* libcurl's CURLOPT_PINNEDPUBLICKEY form: the SPKI's sha256 in base64. */
    if (pin && (strncmp(pin, "sha256//", 8) != 0 || strlen(pin) != 8 + 44)) {
        snprintf(err, errsz, "the token's tls_pin is not \"sha256//\" and 44 base64 digits");
        goto fail;
    }
    snprintf(t->pool_id, sizeof(t->pool_id), "%s", pool_id);
    snprintf(t->tls_pin, sizeof(t->tls_pin), "%s", pin ? pin : "");
    t->pool_secret = strdup(secret);
    t->release_key_pem = strdup(release_key);
    if (!t->pool_secret || !t->release_key_pem) {
        snprintf(err, errsz, "out of memory");
        goto fail;
    }
    json_decref(root);
    OPENSSL_cleanse(raw, rawlen);
    free(raw);
    return 0;
fail:
    pooltoken_clear(t);
    json_decref(root);
    if (raw) {
        OPENSSL_cleanse(raw, rawlen);
        free(raw);
    }
    return -1;
}

void pooltoken_clear(struct pool_token *t)
{
    if (t->pool_secret) {
        OPENSSL_cleanse(t->pool_secret, strlen(t->pool_secret));
        free(t->pool_secret);
    }
    free(t->release_key_pem);
    t->pool_secret = NULL;
    t->release_key_pem = NULL;
}
