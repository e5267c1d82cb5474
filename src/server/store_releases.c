/* Worker releases: the binaries the server publishes for launchers to download. */
#include "server/store_int.h"

#include <stdio.h>
#include <string.h>

static const char release_insert_sql[] =
    "INSERT INTO releases(kind, arch, version, sha256, signature, size, created_ms)"
    " VALUES(?, ?, ?, ?, ?, ?, ?)"
    " RETURNING id";

int store_release_add(struct store *s, struct store_release *r)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    struct st_stmt *st = st_stmt(s, release_insert_sql);
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(s, st, 1, r->kind);
    st_bind_text(s, st, 2, r->arch);
    st_bind_text(s, st, 3, r->version);
    st_bind_text(s, st, 4, r->sha256);
    st_bind_text(s, st, 5, r->signature);
    st_bind_i64(s, st, 6, r->size);
    st_bind_i64(s, st, 7, store_now_ms());
    rc = st_step_one(s, st, "release add");
    if (rc == STORE_OK)
        r->id = st_col_i64(s, st, 0);
    else if (rc == STORE_NOTFOUND)
        rc = STORE_ERR; /* RETURNING always gives the row */
    st_finish(s, st);
done:
    return st_end(s, rc);
}

/* One release from st (ended here); STORE_NOTFOUND when there is none. */
static int release_query(struct store *s, struct st_stmt *st, struct store_release *out)
{
    if (!st)
        return STORE_ERR;
    int rc = st_step_one(s, st, "release get");
    if (rc == STORE_OK) {
        out->id = st_col_i64(s, st, 0);
        st_col_copy(s, st, 1, out->kind, sizeof(out->kind));
        st_col_copy(s, st, 2, out->arch, sizeof(out->arch));
        st_col_copy(s, st, 3, out->version, sizeof(out->version));
        st_col_copy(s, st, 4, out->sha256, sizeof(out->sha256));
        st_col_copy(s, st, 5, out->signature, sizeof(out->signature));
        out->size = st_col_i64(s, st, 6);
    }
    st_finish(s, st);
    return rc;
}

static const char release_latest_sql[] = "SELECT id, kind, arch, version, sha256, signature, size"
                                         "  FROM releases"
                                         " WHERE kind = ? AND arch = ?"
                                         " ORDER BY id DESC"
                                         " LIMIT 1";

static const char release_by_id_sql[] = "SELECT id, kind, arch, version, sha256, signature, size"
                                        "  FROM releases"
                                        " WHERE id = ?";

int st_release_latest(struct store *s, const char *kind, const char *arch,
                      struct store_release *out)
{
    struct st_stmt *st = st_stmt(s, release_latest_sql);
    if (st) {
        st_bind_text(s, st, 1, kind);
        st_bind_text(s, st, 2, arch);
    }
    return release_query(s, st, out);
}

int store_release_latest(struct store *s, const char *kind, const char *arch,
                         struct store_release *out)
{
    st_lock(s);
    int rc = st_release_latest(s, kind, arch, out);
    st_unlock(s);
    return rc;
}

int store_release_get(struct store *s, int64_t id, struct store_release *out)
{
    st_lock(s);
    struct st_stmt *st = st_stmt(s, release_by_id_sql);
    if (st)
        st_bind_i64(s, st, 1, id);
    int rc = release_query(s, st, out);
    st_unlock(s);
    return rc;
}

static const char release_list_sql[] =
    "SELECT r.id, r.kind, r.arch, r.version, r.sha256, r.signature, r.size,"
    "       davit_iso(r.created_ms) AS created_at,"
    "       r.id = (SELECT max(id)"
    "                 FROM releases x"
    "                WHERE x.kind = r.kind AND x.arch = r.arch) AS latest,"
    "       '/api/v1/releases/' || r.id || '/download' AS url"
    "  FROM releases r"
    " ORDER BY r.id DESC";

int store_release_list_json(struct store *s, json_t **out)
{
    st_lock(s);
    int rc = st_rows_json(s, st_stmt(s, release_list_sql), out);
    st_unlock(s);
    if (rc == STORE_OK) {
        size_t i;
        json_t *row;
        json_array_foreach(*out, i, row)
        {
            json_object_set_new(row, "latest",
                                json_boolean(json_integer_value(json_object_get(row, "latest"))));
        }
    }
    return rc;
}

json_t *store_release_json(const struct store_release *r)
{
    /* "/api/v1/releases/" and an int64 in decimal fit with room to spare. */
    char url[96];
    snprintf(url, sizeof(url), "/api/v1/releases/%lld/download", (long long)r->id);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", (json_int_t)r->id, "kind",
                     r->kind, "arch", r->arch, "version", r->version, "sha256", r->sha256,
                     "signature", r->signature, "size", (json_int_t)r->size, "url", url);
}
