/* Registration challenges in a fixed table in memory (challenges.h). */
#include "server/challenges.h"

#include "common/crypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pool id's room, NUL included (STORE_POOL_ID_SIZE). */
#define CHALLENGE_POOL_ID_SIZE 40

struct challenge {
    char id[CRYPTO_TOKEN_MAX]; /* "" for a free slot */
    char nonce[CRYPTO_TOKEN_MAX];
    char pool_id[CHALLENGE_POOL_ID_SIZE];
    int64_t expires_ms;
};

struct challenges {
    pthread_mutex_t mu;
    struct challenge slot[CHALLENGES_MAX];
};

struct challenges *challenges_new(void)
{
    struct challenges *t = calloc(1, sizeof(*t));
    if (t)
        pthread_mutex_init(&t->mu, NULL);
    return t;
}

void challenges_free(struct challenges *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    explicit_bzero(t->slot, sizeof(t->slot));
    free(t);
}

/* A free or expired slot for a new challenge, or NULL. Called with the lock held. */
static struct challenge *pick_slot(struct challenges *t, int64_t now_ms)
{
    for (size_t i = 0; i < CHALLENGES_MAX; i++) {
        struct challenge *c = &t->slot[i];
        if (!c->id[0] || c->expires_ms < now_ms)
            return c;
    }
    return NULL;
}

int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce)
{
    if (crypto_random_token("dvc_", id) < 0 || crypto_random_token("", nonce) < 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    struct challenge *c = pick_slot(t, now_ms);
    if (!c) {
        pthread_mutex_unlock(&t->mu);
        explicit_bzero(nonce, CRYPTO_TOKEN_MAX);
        return CHALLENGES_FULL;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
    snprintf(c->pool_id, sizeof(c->pool_id), "%s", pool_id);
    c->expires_ms = now_ms + ttl_ms;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

int challenges_take(struct challenges *t, const char *id, const char *pool_id, int64_t now_ms,
                    char *nonce, size_t noncesz)
{
    int rc = -1;
    if (!id[0])
        return -1;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < CHALLENGES_MAX; i++) {
        struct challenge *c = &t->slot[i];
        if (!c->id[0] || strcmp(c->id, id) != 0)
            continue;
        if (strcmp(c->pool_id, pool_id) == 0 && c->expires_ms >= now_ms) {
            snprintf(nonce, noncesz, "%s", c->nonce);
            rc = 0;
        }
        /* Used up whatever the outcome: a replay always fails. */
        explicit_bzero(c, sizeof(*c));
        break;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
