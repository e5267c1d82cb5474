/* Registration challenges: stateless, authenticated with the store's shared key (challenges.h). */
#include "server/challenges.h"

#include "server/store.h"

#include "common/crypto.h"
#include "common/secure.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_RANDOM   16
#define CH_EXPIRY   8
#define CH_MAC      32
#define CH_RAW      (CH_RANDOM + CH_EXPIRY + CH_MAC)
#define CH_PREFIX   "dvc_"
#define CH_B64_LEN  (CHALLENGES_ID_LEN - 4)
#define CH_POOL_MAX 39

/* Labels that keep the id's MAC and the nonce apart (and apart from any other use of a key). */
static const char mac_label[] = "davit-challenge-v1";
static const char nonce_label[] = "davit-challenge-nonce-v1";

_Static_assert(CH_B64_LEN == (CH_RAW * 4 + 2) / 3, "the id's base64url length");
_Static_assert(CHALLENGES_ID_LEN < CRYPTO_TOKEN_MAX, "an id fits a token buffer");

struct challenges {
    unsigned char key[CHALLENGES_KEY_SIZE];
    int has_key;
};

struct challenges *challenges_new(void)
{
    return calloc(1, sizeof(struct challenges));
}

void challenges_free(struct challenges *t)
{
    if (!t)
        return;
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

void challenges_set_key(struct challenges *t, const unsigned char key[CHALLENGES_KEY_SIZE])
{
    memcpy(t->key, key, CHALLENGES_KEY_SIZE);
    t->has_key = 1;
}

int challenges_load_key(struct challenges *t, struct store *s, char *err, size_t errsz)
{
    unsigned char key[CHALLENGES_KEY_SIZE];
    char hex[2 * CHALLENGES_KEY_SIZE + 1];
    char *stored = NULL;
    size_t n = 0;
    int rc = -1;
    if (crypto_random(key, sizeof(key)) < 0) {
        snprintf(err, errsz, "challenge key: no randomness");
        goto out;
    }
    if (OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, key, sizeof(key), '\0') != 1) {
        snprintf(err, errsz, "challenge key: cannot encode");
        goto out;
    }
    /* Kept if another server stored one first: every server then reads the same key. */
    if (store_meta_put_new(s, CHALLENGES_META_KEY, hex, &stored) != STORE_OK) {
        snprintf(err, errsz, "challenge key: the database failed");
        goto out;
    }
    if (strlen(stored) != 2 * CHALLENGES_KEY_SIZE ||
        strspn(stored, "0123456789abcdefABCDEF") != 2 * CHALLENGES_KEY_SIZE ||
        OPENSSL_hexstr2buf_ex(key, sizeof(key), &n, stored, '\0') != 1 || n != sizeof(key)) {
        snprintf(err, errsz, "challenge key: the database's meta %s is not 64 hex digits",
                 CHALLENGES_META_KEY);
        goto out;
    }
    challenges_set_key(t, key);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(hex, sizeof(hex));
    secure_free_str(stored);
    return rc;
}

/* base64url without padding (RFC 4648 section 5) of n bytes into out. */
static void b64url(const unsigned char *raw, size_t n, char *out)
{
    unsigned char b64[4 * ((CH_RAW + 2) / 3) + 1];
    int len = EVP_EncodeBlock(b64, raw, (int)n);
    while (len > 0 && b64[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[len] = '\0';
}

/* The id's MAC over pool_id and the random and expiry bytes at raw. 0, or -1. */
static int id_mac(const struct challenges *t, const char *pool_id, const unsigned char *raw,
                  unsigned char mac[CH_MAC])
{
    unsigned char msg[sizeof(mac_label) + CH_POOL_MAX + 1 + CH_RANDOM + CH_EXPIRY];
    size_t plen = strlen(pool_id), off = 0;
    unsigned int maclen = 0;
    if (plen > CH_POOL_MAX)
        return -1;
    /* The label and the pool id each end with their NUL: no two inputs read the same. */
    memcpy(msg, mac_label, sizeof(mac_label));
    off += sizeof(mac_label);
    memcpy(msg + off, pool_id, plen + 1);
    off += plen + 1;
    memcpy(msg + off, raw, CH_RANDOM + CH_EXPIRY);
    off += CH_RANDOM + CH_EXPIRY;
    int ok = HMAC(EVP_sha256(), t->key, CHALLENGES_KEY_SIZE, msg, off, mac, &maclen) != NULL &&
             maclen == CH_MAC;
    return ok ? 0 : -1;
}

/* The nonce of the challenge whose bytes are raw, into nonce. 0, or -1. */
static int id_nonce(const struct challenges *t, const unsigned char raw[CH_RAW], char *nonce)
{
    unsigned char msg[sizeof(nonce_label) + CH_RAW], mac[CH_MAC];
    unsigned int maclen = 0;
    memcpy(msg, nonce_label, sizeof(nonce_label));
    memcpy(msg + sizeof(nonce_label), raw, CH_RAW);
    if (!HMAC(EVP_sha256(), t->key, CHALLENGES_KEY_SIZE, msg, sizeof(msg), mac, &maclen) ||
        maclen != CH_MAC)
        return -1;
    b64url(mac, sizeof(mac), nonce);
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce)
{
    unsigned char raw[CH_RAW];
    uint64_t exp = (uint64_t)(now_ms + ttl_ms);
    if (!t->has_key || crypto_random(raw, CH_RANDOM) < 0)
        return -1;
    for (int i = 0; i < CH_EXPIRY; i++)
        raw[CH_RANDOM + i] = (unsigned char)(exp >> (8 * (CH_EXPIRY - 1 - i)));
    if (id_mac(t, pool_id, raw, raw + CH_RANDOM + CH_EXPIRY) < 0 || id_nonce(t, raw, nonce) < 0)
        return -1;
    memcpy(id, CH_PREFIX, 4);
    b64url(raw, sizeof(raw), id + 4);
    return 0;
}

/* The bytes of id (CH_RAW), when id is a challenge id in its one canonical spelling. 0, or -1. */
static int id_decode(const char *id, unsigned char raw[CH_RAW])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char b64[CH_B64_LEN + 2];
    unsigned char buf[(CH_B64_LEN + 1) / 4 * 3];
    char again[CH_B64_LEN + 1];
    if (strncmp(id, CH_PREFIX, 4) != 0 || strlen(id) != CHALLENGES_ID_LEN ||
        strspn(id + 4, alphabet) != CH_B64_LEN)
        return -1;
    for (int i = 0; i < CH_B64_LEN; i++)
        b64[i] = id[4 + i] == '-' ? '+' : id[4 + i] == '_' ? '/' : id[4 + i];
    b64[CH_B64_LEN] = '='; /* 56 bytes: 75 characters and one pad */
    b64[CH_B64_LEN + 1] = '\0';
    if (EVP_DecodeBlock(buf, (const unsigned char *)b64, CH_B64_LEN + 1) != (int)sizeof(buf))
        return -1;
    memcpy(raw, buf, CH_RAW);
    /* The last character carries 2 spare bits: an id spelt otherwise than the server spelt it
     * would name the same challenge under another text, and be used twice. */
    b64url(raw, CH_RAW, again);
    return strcmp(again, id + 4) == 0 ? 0 : -1;
}

int challenges_check(const struct challenges *t, const char *id, const char *pool_id,
                     int64_t now_ms, char *nonce, size_t noncesz, int64_t *expires_ms)
{
    unsigned char raw[CH_RAW], mac[CH_MAC];
    char n[CRYPTO_TOKEN_MAX];
    int rc = -1;
    if (!t->has_key || noncesz < CRYPTO_TOKEN_MAX || id_decode(id, raw) < 0 ||
        id_mac(t, pool_id, raw, mac) < 0)
        goto out;
    /* In constant time: a forger must not learn, by timing, how much of a MAC it had right. */
    if (CRYPTO_memcmp(mac, raw + CH_RANDOM + CH_EXPIRY, CH_MAC) != 0)
        goto out;
    uint64_t exp = 0;
    for (int i = 0; i < CH_EXPIRY; i++)
        exp = exp << 8 | raw[CH_RANDOM + i];
    if (exp > INT64_MAX || (int64_t)exp < now_ms || id_nonce(t, raw, n) < 0)
        goto out;
    snprintf(nonce, noncesz, "%s", n);
    *expires_ms = (int64_t)exp;
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    OPENSSL_cleanse(n, sizeof(n));
    return rc;
}
