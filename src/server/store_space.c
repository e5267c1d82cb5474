/*
 * A full disk: whether the store's writes fail for lack of space, the probe
 * that ends that state, and the runs whose last log upload was refused.
 */
#include "server/store_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

int store_degraded(struct store *s, const char **reason)
{
    st_lock_dirty(s); /* in-memory state only */
    int full = s->full;
    st_unlock(s);
    *reason = full ? STORE_NOSPACE_TEXT : NULL;
    return full;
}

/* Where the database's files are, or NULL when not on this machine. */
static const char *fs_path(struct store *s)
{
    st_lock_dirty(s);
    const char *p = s->drv->fs_path(s);
    st_unlock(s);
    return p;
}

void store_space_probe(struct store *s, int64_t min_free)
{
    const char *why, *path;
    struct statvfs vfs;
    if (!store_degraded(s, &why) || !(path = fs_path(s)) || statvfs(path, &vfs) < 0 ||
        (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize < min_free)
        return;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)store_now_ms());
    store_meta_set(s, "space_probe_ms", now);
}

/* ---- runs waiting for space (in memory, under the lock) ---- */

void st_waiting_set(struct store *s, int64_t run_id, int on)
{
    for (int i = 0; i < s->nwaiting; i++) {
        if (s->waiting[i] != run_id)
            continue;
        if (!on)
            s->waiting[i] = s->waiting[--s->nwaiting];
        return;
    }
    if (!on)
        return;
    /* Full: the oldest mark goes; a run still waiting is marked again by its
     * launcher's next upload. */
    if (s->nwaiting == ST_WAITING_MAX)
        memmove(s->waiting, s->waiting + 1, (size_t)--s->nwaiting * sizeof(s->waiting[0]));
    s->waiting[s->nwaiting++] = run_id;
}

int st_waiting(struct store *s, int64_t run_id)
{
    for (int i = 0; i < s->nwaiting; i++)
        if (s->waiting[i] == run_id)
            return 1;
    return 0;
}

int st_waiting_json(struct store *s, json_t *run)
{
    int64_t id = json_integer_value(json_object_get(run, "id"));
    return json_object_set_new(run, "log_waiting",
                               st_waiting(s, id) ? json_string(STORE_NOSPACE_TEXT) : json_null());
}
