/* Registration challenges in a fixed table in memory (challenges.h). */
#include "server/challenges.h"

#include "common/crypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pool id's room, NUL included (STORE_POOL_ID_SIZE). */
#define CHALLENGE_POOL_ID_SIZE 40
/* crypto_random_token's answers: "dvc_" and 43 characters for the id, 43 for the nonce. Kept at
 * their size rather than CRYPTO_TOKEN_MAX: the table is 2.2 MB instead of 5. */
#define CHALLENGE_TOKEN_LEN  43
#define CHALLENGE_ID_PREFIX  "dvc_"
#define CHALLENGE_ID_SIZE    (sizeof(CHALLENGE_ID_PREFIX) + CHALLENGE_TOKEN_LEN)
#define CHALLENGE_NONCE_SIZE (CHALLENGE_TOKEN_LEN + 1)
/* New ids tried when an id's window is full before refusing. */
#define CHALLENGE_ISSUE_TRIES 4

struct challenge {
    char id[CHALLENGE_ID_SIZE]; /* "" for a free slot */
    char nonce[CHALLENGE_NONCE_SIZE];
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

/* The first slot of id's window (FNV-1a; the ids are random, a caller's made-up id only picks
 * which window is searched). */
static size_t home_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % CHALLENGES_MAX;
}

/* A free or expired slot in id's window, or NULL. Called with the lock held. */
static struct challenge *pick_slot(struct challenges *t, const char *id, int64_t now_ms)
{
    size_t home = home_of(id);
    for (size_t i = 0; i < CHALLENGES_PROBE; i++) {
        struct challenge *c = &t->slot[(home + i) % CHALLENGES_MAX];
        if (!c->id[0] || c->expires_ms < now_ms)
            return c;
    }
    return NULL;
}

int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce)
{
    if (crypto_random_token("", nonce) < 0)
        return -1;
    struct challenge *c = NULL;
    pthread_mutex_lock(&t->mu);
    for (int tries = 0; !c && tries < CHALLENGE_ISSUE_TRIES; tries++) {
        if (crypto_random_token(CHALLENGE_ID_PREFIX, id) < 0)
            break;
        c = pick_slot(t, id, now_ms);
    }
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
    if (!id[0] || strlen(id) >= CHALLENGE_ID_SIZE)
        return -1;
    size_t home = home_of(id);
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < CHALLENGES_PROBE; i++) {
        struct challenge *c = &t->slot[(home + i) % CHALLENGES_MAX];
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
