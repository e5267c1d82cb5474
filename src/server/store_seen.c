/*
 * Launchers' liveness in memory (store_int.h): when each was last seen. A lease renewal (every
 * authenticated launcher request) is a store write no more, so it costs no transaction and no
 * fsync; nothing a launcher or client is told is stored depends on it. The SQL of the store
 * reads it through the function davit_seen(launcher_id).
 */
#include "server/store_int.h"

#include "common/log.h"

#include <stdlib.h>

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
    int64_t *ids = calloc(cap, sizeof(*ids)), *ms = calloc(cap, sizeof(*ms));
    if (!ids || !ms) {
        free(ids);
        free(ms);
        return -1;
    }
    struct st_seen old = *t;
    t->ids = ids;
    t->ms = ms;
    t->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.ids[i])
            continue;
        size_t j = slot_of(t, old.ids[i]);
        while (t->ids[j])
            j = (j + 1) & (cap - 1);
        t->ids[j] = old.ids[i];
        t->ms[j] = old.ms[i];
    }
    free(old.ids);
    free(old.ms);
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

/* The launcher's time, or fallback when it was not seen since the open. */
static int64_t seen_or(struct store *s, int64_t id, int64_t fallback)
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
    return seen_or(s, id, s->seen.start_ms);
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
            hole = j;
        }
        t->ids[hole] = 0;
        t->ms[hole] = 0;
        t->n--;
    }
    pthread_mutex_unlock(&t->mu);
}

/*
 * davit_seen(launcher_id): the launcher's last-seen time, or the open's when it was not seen
 * since (lease expiry: a restart expires no lease). davit_seen(launcher_id, fallback): or
 * fallback (the persisted launchers.last_seen_ms: lists, gauges, the day after which a launcher
 * is gone, where a launcher long dead must not look alive after a restart).
 */
static void sql_seen(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct store *s = sqlite3_user_data(ctx);
    int64_t id = sqlite3_value_int64(argv[0]);
    sqlite3_result_int64(ctx, argc == 2 ? seen_or(s, id, sqlite3_value_int64(argv[1]))
                                        : st_seen_ms(s, id));
}

/* Persists the times kept in memory that are newer than the row's by more than ?1 ms. */
static const char seen_persist_sql[] = "UPDATE launchers"
                                       "   SET last_seen_ms = davit_seen(id, last_seen_ms)"
                                       " WHERE davit_seen(id, last_seen_ms) > last_seen_ms + ?1";

int st_seen_persist(struct store *s, int64_t older_ms)
{
    sqlite3_stmt *st = st_stmt(s, seen_persist_sql);
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, older_ms);
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
    if (seen_resize(t, SEEN_INITIAL) < 0)
        return -1;
    /* Not deterministic: the answer changes as launchers are seen. Direct only: no schema
     * object may call it. */
    for (int nargs = 1; nargs <= 2; nargs++)
        if (sqlite3_create_function_v2(s->db, "davit_seen", nargs, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                       s, sql_seen, NULL, NULL, NULL) != SQLITE_OK)
            return -1;
    return 0;
}

void st_seen_free(struct store *s)
{
    struct st_seen *t = &s->seen;
    if (!t->start_ms)
        return; /* never set up */
    free(t->ids);
    free(t->ms);
    t->ids = t->ms = NULL;
    t->cap = t->n = 0;
    t->start_ms = 0;
    pthread_mutex_destroy(&t->mu);
}
