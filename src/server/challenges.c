/* Registration challenges in a fixed table in memory (challenges.h). */
#include "server/challenges.h"

#include "common/crypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pool id's room, NUL included (STORE_POOL_ID_SIZE). */
#define CHALLENGE_POOL_ID_SIZE 40
/* The id is "dvc_", the entry's index in 4 hex digits, then crypto_random_token's 43 characters:
 * taking a challenge goes straight to its entry. Entries are kept at their size rather than
 * CRYPTO_TOKEN_MAX: the table is 2.2 MB instead of 5. */
#define CHALLENGE_TOKEN_LEN  43
#define CHALLENGE_INDEX_LEN  4
#define CHALLENGE_ID_SIZE    (sizeof("dvc_") + CHALLENGE_INDEX_LEN + CHALLENGE_TOKEN_LEN)
#define CHALLENGE_NONCE_SIZE (CHALLENGE_TOKEN_LEN + 1)

struct challenge {
    char id[CHALLENGE_ID_SIZE]; /* "" for a free slot */
    char nonce[CHALLENGE_NONCE_SIZE];
    char pool_id[CHALLENGE_POOL_ID_SIZE];
    int64_t expires_ms;
};

struct challenges {
    pthread_mutex_t mu;
    /* Free entries' indexes, a stack: the lowest come first, so a server that never has many
     * registrations open at once touches only the first pages of the table (its RSS). */
    uint16_t free_idx[CHALLENGES_MAX];
    size_t nfree;
    struct challenge slot[CHALLENGES_MAX];
};

_Static_assert(CHALLENGES_MAX <= 0x10000, "an entry's index is 4 hex digits");

struct challenges *challenges_new(void)
{
    struct challenges *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    for (size_t i = 0; i < CHALLENGES_MAX; i++)
        t->free_idx[i] = (uint16_t)(CHALLENGES_MAX - 1 - i);
    t->nfree = CHALLENGES_MAX;
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

/* Wipes entry i and puts it back on the free stack. Called with the lock held. */
static void release(struct challenges *t, size_t i)
{
    explicit_bzero(&t->slot[i], sizeof(t->slot[i]));
    t->free_idx[t->nfree++] = (uint16_t)i;
}

/* A free entry's index, reclaiming every expired one when none is free; -1 when every entry holds
 * a live challenge. Called with the lock held. */
static long pick_slot(struct challenges *t, int64_t now_ms)
{
    if (!t->nfree) {
        for (size_t i = CHALLENGES_MAX; i-- > 0;) /* lowest pushed last: used first */
            if (t->slot[i].id[0] && t->slot[i].expires_ms < now_ms)
                release(t, i);
    }
    return t->nfree ? (long)t->free_idx[--t->nfree] : -1;
}

/* The entry an id names, or -1 when it names none. */
static long index_of(const char *id)
{
    if (strncmp(id, "dvc_", 4) != 0 || strlen(id) != CHALLENGE_ID_SIZE - 1)
        return -1;
    long i = 0;
    for (int k = 0; k < CHALLENGE_INDEX_LEN; k++) {
        char ch = id[4 + k];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        i = i * 16 + d;
    }
    return i < CHALLENGES_MAX ? i : -1;
}

int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce)
{
    if (crypto_random_token("", nonce) < 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    long i = pick_slot(t, now_ms);
    if (i < 0) {
        pthread_mutex_unlock(&t->mu);
        explicit_bzero(nonce, CRYPTO_TOKEN_MAX);
        return CHALLENGES_FULL;
    }
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "dvc_%04lx", (unsigned long)i);
    if (crypto_random_token(prefix, id) < 0) {
        release(t, (size_t)i);
        pthread_mutex_unlock(&t->mu);
        explicit_bzero(nonce, CRYPTO_TOKEN_MAX);
        return -1;
    }
    struct challenge *c = &t->slot[i];
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
    long i = index_of(id);
    if (i < 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    struct challenge *c = &t->slot[i];
    /* In constant time: a guessed id must not learn, by timing, how much of a live one it had. */
    if (c->id[0] && crypto_str_equal(c->id, id)) {
        if (strcmp(c->pool_id, pool_id) == 0 && c->expires_ms >= now_ms) {
            snprintf(nonce, noncesz, "%s", c->nonce);
            rc = 0;
        }
        /* Used up whatever the outcome: a replay always fails. */
        release(t, (size_t)i);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
