#include "launcher/state.h"

#include "common/fsutil.h"
#include "common/hex.h"
#include "common/dbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *path, char *err, size_t errsz)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errsz, "state directory: mkdir %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            break;
    }
    return 0;
}

static int random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    if (nbytes > sizeof(raw))
        return -1;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(raw + got, nbytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    hex_encode(raw, nbytes, out);
    return 0;
}

/* Erases the run key's hex digits in a run state's JSON before it is freed. */
static void wipe_json(json_t *o)
{
    const char *key = json_string_value(json_object_get(o, "key"));
    if (key)
        explicit_bzero((char *)key, strlen(key));
}

/* Replaces a file of the state directory, durably (fsutil.h). */
static int write_atomic(const char *path, const char *data, size_t len, char *err, size_t errsz)
{
    char why[4400];
    if (fsutil_write_file(path, data, len, 0600, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "state: write %s", why);
        return -1;
    }
    return 0;
}

int state_open(struct state *st, const char *dir, char *err, size_t errsz)
{
    char path[4200];
    struct dbuf id = DBUF_INIT(128);

    memset(st, 0, sizeof(*st));
    st->lock_fd = -1;
    st->dir = strdup(dir);
    if (!st->dir) {
        snprintf(err, errsz, "state: out of memory");
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/runs", dir);
    if (mkdir_p(path, err, errsz) < 0)
        goto fail;

    snprintf(path, sizeof(path), "%s/lock", dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->lock_fd < 0) {
        snprintf(err, errsz, "state: open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errsz,
                     "state directory %s is in use by another davit-launcher "
                     "(set DAVIT_STATE_DIR to run several)",
                     dir);
        else
            snprintf(err, errsz, "state: lock %s: %s", path, strerror(errno));
        goto fail;
    }

    snprintf(path, sizeof(path), "%s/launcher-id", dir);
    if (dbuf_read_file(&id, path) == 0) {
        while (id.len && id.data[id.len - 1] == '\n')
            id.data[--id.len] = '\0';
        if (!hex_is(dbuf_str(&id), 32)) {
            snprintf(err, errsz, "state: %s: not a launcher id (32 hex digits)", path);
            goto fail;
        }
        memcpy(st->launcher_id, id.data, 33);
    } else if (errno == ENOENT) {
        char line[34];
        if (random_hex(st->launcher_id, 16) < 0) {
            snprintf(err, errsz, "state: getrandom: %s", strerror(errno));
            goto fail;
        }
        snprintf(line, sizeof(line), "%s\n", st->launcher_id);
        if (write_atomic(path, line, 33, err, errsz) < 0)
            goto fail;
    } else {
        snprintf(err, errsz, "state: read %s: %s", path, strerror(errno));
        goto fail;
    }
    dbuf_free(&id);
    return 0;
fail:
    dbuf_free(&id);
    state_close(st);
    return -1;
}

void state_close(struct state *st)
{
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    st->lock_fd = -1;
    free(st->dir);
    st->dir = NULL;
}

int state_new_run_id(char *buf, size_t size, const char *prefix)
{
    char hex[13];
    if (random_hex(hex, 6) < 0)
        return -1;
    snprintf(buf, size, "%s-%s", prefix, hex);
    return 0;
}

void state_run_dir(const struct state *st, const char *run_id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/runs/%s", st->dir, run_id);
}

static void state_file(const struct state *st, const char *run_id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/runs/%s.json", st->dir, run_id);
}

int state_run_save(const struct state *st, const struct run_state *rs, char *err, size_t errsz)
{
    char path[4200];
    state_file(st, rs->run_id, path, sizeof(path));
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "run", rs->run_id, "container", rs->container,
                  "spec_sha256", rs->spec_sha256, "offset", (json_int_t)rs->offset, "seq",
                  (json_int_t)rs->seq, "started_ms", (json_int_t)rs->started_ms);
    if (o && rs->server_id > 0 &&
        (json_object_set_new(o, "server_id", json_integer(rs->server_id)) < 0 ||
         json_object_set_new(o, "event_seq", json_integer((json_int_t)rs->event_seq)) < 0 ||
         json_object_set_new(o, "kill_grace_ms", json_integer(rs->kill_grace_ms)) < 0)) {
        json_decref(o);
        o = NULL;
    }
    if (o && rs->has_result &&
        json_object_set_new(o, "result",
                            json_pack("{s:s, s:i, s:s}", "outcome", rs->result_outcome, "exit_code",
                                      rs->result_exit, "reason", rs->result_reason)) < 0) {
        json_decref(o);
        o = NULL;
    }
    char hex[2 * STATE_KEY_LEN + 1];
    if (rs->has_key) {
        hex_encode(rs->key, STATE_KEY_LEN, hex);
        if (o && json_object_set_new(o, "key", json_string(hex)) < 0) {
            json_decref(o);
            o = NULL;
        }
        explicit_bzero(hex, sizeof(hex));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    wipe_json(o);
    json_decref(o);
    if (!text) {
        snprintf(err, errsz, "state: out of memory");
        return -1;
    }
    int rc = write_atomic(path, text, strlen(text), err, errsz);
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

int state_run_load(const struct state *st, const char *run_id, struct run_state *rs, char *err,
                   size_t errsz)
{
    char path[4200];
    struct dbuf text = DBUF_INIT(64 * 1024);
    json_t *o = NULL;
    int rc = -1;

    state_file(st, run_id, path, sizeof(path));
    if (dbuf_read_file(&text, path) < 0) {
        if (errno == ENOENT)
            rc = 0;
        else
            snprintf(err, errsz, "state: read %s: %s", path, strerror(errno));
        goto done;
    }
    const char *run, *container, *sha, *key = NULL;
    const char *r_outcome = NULL, *r_reason = NULL;
    json_int_t offset, seq, started, server_id = 0, event_seq = 0, grace = 0;
    int r_exit = -1;
    json_error_t jerr;
    o = json_loadb(dbuf_str(&text), text.len, 0, &jerr);
    if (!o ||
        json_unpack_ex(o, &jerr, JSON_STRICT,
                       "{s:s, s:s, s:s, s:I, s:I, s:I, s?I, s?I, s?I, s?s, s?{s:s, s:i, s:s}}",
                       "run", &run, "container", &container, "spec_sha256", &sha, "offset", &offset,
                       "seq", &seq, "started_ms", &started, "server_id", &server_id, "event_seq",
                       &event_seq, "kill_grace_ms", &grace, "key", &key, "result", "outcome",
                       &r_outcome, "exit_code", &r_exit, "reason", &r_reason) < 0 ||
        offset < 0 || seq < 0 || event_seq < 0) {
        snprintf(err, errsz, "state: %s: not a run state: %s", path, jerr.text);
        goto done;
    }
    memset(rs, 0, sizeof(*rs));
    snprintf(rs->run_id, sizeof(rs->run_id), "%s", run);
    snprintf(rs->container, sizeof(rs->container), "%s", container);
    snprintf(rs->spec_sha256, sizeof(rs->spec_sha256), "%s", sha);
    rs->offset = (uint64_t)offset;
    rs->seq = (uint64_t)seq;
    rs->started_ms = started;
    rs->server_id = server_id;
    rs->event_seq = (uint64_t)event_seq;
    rs->kill_grace_ms = grace;
    if (r_outcome) {
        rs->has_result = 1;
        snprintf(rs->result_outcome, sizeof(rs->result_outcome), "%s", r_outcome);
        snprintf(rs->result_reason, sizeof(rs->result_reason), "%s", r_reason);
        rs->result_exit = r_exit;
    }
    if (key) {
        if (hex_decode(key, rs->key, STATE_KEY_LEN) < 0) {
            snprintf(err, errsz, "state: %s: not a run state: key: not %d hex digits", path,
                     2 * STATE_KEY_LEN);
            memset(rs, 0, sizeof(*rs));
            goto done;
        }
        rs->has_key = 1;
    }
    rc = 1;
done:
    wipe_json(o);
    json_decref(o);
    if (text.data)
        explicit_bzero(text.data, text.len);
    dbuf_free(&text);
    return rc;
}

int state_file_write(const struct state *st, const char *name, const char *text, char *err,
                     size_t errsz)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", st->dir, name);
    return write_atomic(path, text, strlen(text), err, errsz);
}

int state_file_read(const struct state *st, const char *name, char **text, char *err, size_t errsz)
{
    char path[4200];
    struct dbuf b = DBUF_INIT(64 * 1024);
    snprintf(path, sizeof(path), "%s/%s", st->dir, name);
    *text = NULL;
    if (dbuf_read_file(&b, path) < 0) {
        dbuf_free(&b);
        if (errno == ENOENT)
            return 0;
        snprintf(err, errsz, "state: read %s: %s", path, strerror(errno));
        return -1;
    }
    *text = strdup(dbuf_str(&b));
    dbuf_free(&b);
    if (!*text) {
        snprintf(err, errsz, "state: out of memory");
        return -1;
    }
    return 1;
}

int state_run_forget(const struct state *st, const char *run_id, char *err, size_t errsz)
{
    char path[4200];
    state_file(st, run_id, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errsz, "state: remove %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int state_run_list(const struct state *st, char (*ids)[STATE_ID_MAX], size_t max, char *err,
                   size_t errsz)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/runs", st->dir);
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errsz, "state: open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char id[STATE_ID_MAX];
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
            len -= 5;
        else if (strstr(e->d_name, FSUTIL_TMP_MARK)) {
            /* A replacement a killed launcher left half-made (fsutil.h): the
             * lock says no other launcher is writing it. */
            unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        if (len >= STATE_ID_MAX)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)len, e->d_name);
        int dup = 0;
        for (size_t i = 0; i < n; i++)
            dup |= strcmp(ids[i], id) == 0;
        if (!dup)
            snprintf(ids[n++], STATE_ID_MAX, "%s", id);
    }
    closedir(d);
    return (int)n;
}
