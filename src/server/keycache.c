/* Pools' public keys decoded once, with their fingerprints (keycache.h). */
#include "server/keycache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct keycache_entry {
    char *pool_id; /* NULL for an empty slot */
    char *pem;     /* the PEM key was decoded from, compared whole at each lookup */
    struct crypto_pubkey *key;
    char key_id[SEAL_KEY_ID_HEX]; /* key's fingerprint, computed with it */
};

struct keycache {
    pthread_mutex_t mu;
    struct keycache_entry slot[KEYCACHE_SLOTS];
};

struct keycache *keycache_new(void)
{
    struct keycache *c = calloc(1, sizeof(*c));
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_clear(struct keycache_entry *e)
{
    free(e->pool_id);
    free(e->pem);
    crypto_pubkey_free(e->key);
    memset(e, 0, sizeof(*e));
}

void keycache_free(struct keycache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < KEYCACHE_SLOTS; i++)
        entry_clear(&c->slot[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* FNV-1a: pool ids are random, any spread will do. */
static struct keycache_entry *slot_of(struct keycache *c, const char *pool_id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)pool_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &c->slot[h % KEYCACHE_SLOTS];
}

static int entry_is(const struct keycache_entry *e, const char *pool_id, const char *pem)
{
    return e->pool_id && strcmp(e->pool_id, pool_id) == 0 && strcmp(e->pem, pem) == 0;
}

/*
 * The key of (pool_id, pem) and its fingerprint into key_id ("" when it could not be computed):
 * a reference the caller drops, or NULL when the PEM does not decode or memory runs out. Decodes
 * and keeps the entry on a miss.
 */
static struct crypto_pubkey *lookup(struct keycache *c, const char *pool_id, const char *pem,
                                    char key_id[SEAL_KEY_ID_HEX])
{
    struct keycache_entry *e = slot_of(c, pool_id);
    pthread_mutex_lock(&c->mu);
    if (entry_is(e, pool_id, pem)) {
        struct crypto_pubkey *k = crypto_pubkey_ref(e->key);
        memcpy(key_id, e->key_id, SEAL_KEY_ID_HEX);
        pthread_mutex_unlock(&c->mu);
        return k;
    }
    pthread_mutex_unlock(&c->mu);

    /* Decoded and fingerprinted outside the lock: other pools' requests do not wait for it. The
     * key is this call's alone until it is published below. */
    struct crypto_pubkey *k = crypto_pubkey_decode(pem);
    if (!k)
        return NULL;
    if (seal_key_id(crypto_pubkey_evp(k), key_id) < 0) {
        key_id[0] = '\0'; /* out of memory: the key still verifies, but is not kept */
        return k;
    }
    struct keycache_entry fresh = {strdup(pool_id), strdup(pem), NULL, {0}};
    if (!fresh.pool_id || !fresh.pem) {
        entry_clear(&fresh);
        return k; /* still good for this request; just not kept */
    }
    fresh.key = crypto_pubkey_ref(k);
    memcpy(fresh.key_id, key_id, SEAL_KEY_ID_HEX);
    struct keycache_entry old;
    pthread_mutex_lock(&c->mu);
    old = *e;
    *e = fresh;
    pthread_mutex_unlock(&c->mu);
    entry_clear(&old); /* whoever raced us decoded the same key, or an older one */
    return k;
}

struct crypto_pubkey *keycache_get(struct keycache *c, const char *pool_id, const char *pubkey_pem)
{
    char key_id[SEAL_KEY_ID_HEX];
    return lookup(c, pool_id, pubkey_pem, key_id);
}

int keycache_key_id(struct keycache *c, const char *pool_id, const char *pubkey_pem,
                    char out[SEAL_KEY_ID_HEX])
{
    struct crypto_pubkey *k = lookup(c, pool_id, pubkey_pem, out);
    int rc = k && out[0] ? 0 : -1;
    crypto_pubkey_free(k);
    return rc;
}

void keycache_forget(struct keycache *c, const char *pool_id)
{
    struct keycache_entry *e = slot_of(c, pool_id);
    struct keycache_entry old = {0};
    pthread_mutex_lock(&c->mu);
    if (e->pool_id && strcmp(e->pool_id, pool_id) == 0) {
        old = *e;
        memset(e, 0, sizeof(*e));
    }
    pthread_mutex_unlock(&c->mu);
    entry_clear(&old);
}
