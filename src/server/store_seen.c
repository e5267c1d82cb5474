/*
 * Launchers' liveness in memory (store_int.h): when each was last seen. A lease renewal (every
 * authenticated launcher request) is a store write no more, so it costs no transaction and no
 * fsync; nothing a launcher or client is told is stored depends on it. The SQL of the store
 * reads it through the function davit_seen(launcher_id).
 */
#include "server/store_int.h"

#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* The table's first size: grows by doubling, so that a few launchers cost little. */
#define SEEN_INITIAL 64

static size_t slot_of(const struct st_seen *t, int64_t id)
{
    /* Fibonacci hashing: launcher ids are consecutive, the product spreads them. */
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 17) & (t->cap - 1);
}

/* Moves every entry into a table of cap slots (a power of two). -1 without memory. */
static int seen_resize(struct st_seen *t, size_t cap)
{
    int64_t *ids = calloc(cap, sizeof(*ids)), *ms = calloc(cap, sizeof(*ms)),
            *saved = calloc(cap, sizeof(*saved));
    if (!ids || !ms || !saved) {
        free(ids);
        free(ms);
        free(saved);
        return -1;
    }
    struct st_seen old = *t;
    t->ids = ids;
    t->ms = ms;
    t->saved = saved;
    t->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.ids[i])
            continue;
        size_t j = slot_of(t, old.ids[i]);
        while (t->ids[j])
            j = (j + 1) & (cap - 1);
        t->ids[j] = old.ids[i];
        t->ms[j] = old.ms[i];
        t->saved[j] = old.saved[i];
    }
    free(old.ids);
    free(old.ms);
    free(old.saved);
    return 0;
}

/* The slot holding id, or the empty slot where it would go. Under t->mu. */
static size_t seen_find(const struct st_seen *t, int64_t id)
{
    size_t i = slot_of(t, id);
    while (t->ids[i] && t->ids[i] != id)
        i = (i + 1) & (t->cap - 1);
    return i;
}

void st_seen_touch(struct store *s, int64_t id, int64_t now_ms)
{
    struct st_seen *t = &s->seen;
    if (id <= 0)
        return;
    pthread_mutex_lock(&t->mu);
    size_t i = seen_find(t, id);
    if (!t->ids[i]) {
        /* At most half full, so that probes stay short. */
        if ((t->n + 1) * 2 > t->cap) {
            if (seen_resize(t, t->cap * 2) < 0) {
                pthread_mutex_unlock(&t->mu);
                log_event(LOG_ERROR, "store failed", "op", "launcher seen", "reason",
                          "out of memory", NULL);
                return;
            }
            i = seen_find(t, id);
        }
        t->ids[i] = id;
        t->n++;
    }
    if (now_ms > t->ms[i])
        t->ms[i] = now_ms;
    pthread_mutex_unlock(&t->mu);
}

int64_t st_seen_or(struct store *s, int64_t id, int64_t fallback)
{
    struct st_seen *t = &s->seen;
    pthread_mutex_lock(&t->mu);
    size_t i = seen_find(t, id);
    int64_t ms = t->ids[i] ? t->ms[i] : fallback;
    pthread_mutex_unlock(&t->mu);
    return ms;
}

int64_t st_seen_ms(struct store *s, int64_t id)
{
    return st_seen_or(s, id, s->seen.start_ms);
}

void st_seen_forget(struct store *s, int64_t id)
{
    struct st_seen *t = &s->seen;
    pthread_mutex_lock(&t->mu);
    size_t i = seen_find(t, id);
    if (t->ids[i]) {
        /* Backward-shift deletion: entries after the hole that probed past it move into it,
         * so that a lookup never stops early at an empty slot. */
        size_t hole = i, j = i;
        for (;;) {
            j = (j + 1) & (t->cap - 1);
            if (!t->ids[j])
                break;
            size_t home = slot_of(t, t->ids[j]);
            /* j's entry may fill the hole unless its home lies cyclically in (hole, j]. */
            int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (stays)
                continue;
            t->ids[hole] = t->ids[j];
            t->ms[hole] = t->ms[j];
            t->saved[hole] = t->saved[j];
            hole = j;
        }
        t->ids[hole] = 0;
        t->ms[hole] = 0;
        t->saved[hole] = 0;
        t->n--;
    }
    pthread_mutex_unlock(&t->mu);
}

/* Persists the times kept in memory that are newer than the row's by more than ?1 ms. */
static const char seen_persist_sql[] = "UPDATE launchers"
                                       "   SET last_seen_ms = davit_seen(id, last_seen_ms)"
                                       " WHERE davit_seen(id, last_seen_ms) > last_seen_ms + ?1";

/* The most launchers one statement of the shared persist writes. */
#define SEEN_BATCH 64

/* One statement of the shared persist: "UPDATE ... FROM (VALUES (?, ?), ...)" for n pairs. */
static int seen_write(struct store *s, const int64_t *ids, const int64_t *ms, size_t n)
{
    static const char head[] = "UPDATE launchers"
                               "   SET last_seen_ms = v.column2"
                               "  FROM (VALUES ";
    static const char pair[] = "(CAST(? AS BIGINT), CAST(? AS BIGINT))";
    static const char tail[] =
        ") AS v"
        " WHERE launchers.id = v.column1 AND launchers.last_seen_ms < v.column2";
    char sql[sizeof(head) + SEEN_BATCH * sizeof(pair) + sizeof(tail)];
    size_t len = 0;
    memcpy(sql, head, sizeof(head) - 1);
    len += sizeof(head) - 1;
    for (size_t i = 0; i < n; i++) {
        if (i)
            sql[len++] = ',';
        memcpy(sql + len, pair, sizeof(pair) - 1);
        len += sizeof(pair) - 1;
    }
    memcpy(sql + len, tail, sizeof(tail));
    struct st_stmt *st = st_prep(s, sql);
    if (!st)
        return STORE_ERR;
    for (size_t i = 0; i < n; i++) {
        st_bind_i64(s, st, (int)(2 * i + 1), ids[i]);
        st_bind_i64(s, st, (int)(2 * i + 2), ms[i]);
    }
    return st_done(s, st);
}

/* With a shared driver: the times newer than the ones written by more than older_ms, written
 * SEEN_BATCH a statement; a time counts as written once its statement ran (a failed batch rolls
 * back, and the launcher's next request makes its time newer again). */
static int seen_persist_shared(struct store *s, int64_t older_ms)
{
    struct st_seen *t = &s->seen;
    int64_t ids[SEEN_BATCH], ms[SEEN_BATCH];
    int rc = STORE_OK;
    size_t from = 0;
    while (rc == STORE_OK) {
        size_t n = 0;
        pthread_mutex_lock(&t->mu);
        for (; from < t->cap && n < SEEN_BATCH; from++) {
            if (!t->ids[from] || t->ms[from] <= t->saved[from] + older_ms)
                continue;
            ids[n] = t->ids[from];
            ms[n++] = t->ms[from];
            t->saved[from] = t->ms[from];
        }
        pthread_mutex_unlock(&t->mu);
        if (n == 0)
            break;
        rc = seen_write(s, ids, ms, n);
    }
    return rc;
}

int st_seen_persist(struct store *s, int64_t older_ms)
{
    if (s->drv->shared)
        return seen_persist_shared(s, older_ms);
    struct st_stmt *st = st_stmt(s, seen_persist_sql);
    if (!st)
        return STORE_ERR;
    st_bind_i64(s, st, 1, older_ms);
    return st_done(s, st);
}

int st_seen_save(struct store *s)
{
    if (!s->seen.start_ms)
        return STORE_OK; /* never set up: nothing was seen */
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    return st_end_small(s, st_seen_persist(s, 0));
}

int st_seen_init(struct store *s, int64_t now_ms)
{
    struct st_seen *t = &s->seen;
    pthread_mutex_init(&t->mu, NULL);
    t->start_ms = now_ms;
    return seen_resize(t, SEEN_INITIAL);
}

void st_seen_free(struct store *s)
{
    struct st_seen *t = &s->seen;
    if (!t->start_ms)
        return; /* never set up */
    free(t->ids);
    free(t->ms);
    free(t->saved);
    t->ids = t->ms = t->saved = NULL;
    t->cap = t->n = 0;
    t->start_ms = 0;
    pthread_mutex_destroy(&t->mu);
}
