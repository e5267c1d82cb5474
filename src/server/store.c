/*
 * The store's connection: opening the database (settings, then the schema's
 * migrations, store_schema.c), closing it, and the key/value settings.
 */
#include "server/store_int.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * How long a statement waits for a lock held by another connection before
 * it fails with SQLITE_BUSY. The server has one connection; another is an
 * operator's sqlite3 shell or backup, which holds a lock for moments.
 */
#define ST_BUSY_TIMEOUT_MS 5000

/*
 * The WAL's size after a checkpoint: a WAL grown by one large transaction
 * (a run's log batch, a retention sweep) is cut back to this instead of
 * keeping its size forever. 64 MiB keeps the common case from truncating
 * and regrowing the file at every checkpoint.
 */
#define ST_WAL_SIZE_LIMIT "67108864"

int64_t store_now_ms(void)
{
    return clock_wall_ms();
}

/*
 * The database and its WAL hold secrets (a run's secrets until it ends, and in old pages until a
 * checkpoint): a file of them that group or others may use is refused, with the command that
 * fixes it. A new database is created 0600.
 */
static int private_files(const char *path, char *err, size_t errsz)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char name[PATH_MAX + 8];
    struct stat sb;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
        if (stat(name, &sb) < 0) {
            /* A new database is made 0600 whatever the umask; SQLite gives its WAL and SHM
             * the database's mode. */
            int fd = i == 0 && errno == ENOENT
                         ? open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
                         : -1;
            if (fd >= 0) {
                close(fd);
                continue;
            }
            if (errno == ENOENT)
                continue;
            snprintf(err, errsz, "store: %s: %s", name, strerror(errno));
            return -1;
        }
        if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
            snprintf(err, errsz,
                     "store: %s is open to group or others (mode %04o) and holds secrets: "
                     "run chmod 600 %s*",
                     name, (unsigned)(sb.st_mode & 07777), path);
            return -1;
        }
    }
    return 0;
}

/* Opens the database, applies its settings and migrations. *from gets the
 * schema version found. */
static int open_at(struct store **out, const char *path, int *from, char *err, size_t errsz)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsz, "store: out of memory");
        return STORE_ERR;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->committed_cond, NULL);
    if (private_files(path, err, errsz) < 0)
        goto fail;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errsz, "store: open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, ST_BUSY_TIMEOUT_MS);
    /* WAL survives a killed process; synchronous=FULL also survives power loss
     * for every acknowledged write. secure_delete overwrites removed secrets. */
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
        ("PRAGMA journal_size_limit=" ST_WAL_SIZE_LIMIT),
    };
    /* Before journal_mode: on a new file, WAL mode writes the header, and
     * auto_vacuum could no longer be set without a VACUUM. */
    st_schema_vacuum_mode(s->db, path);
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
        if (st_exec_or_err(s->db, path, pragmas[i], err, errsz) < 0)
            goto fail;
    if (st_schema_migrate(s->db, path, from, err, errsz) < 0)
        goto fail;
    if (st_seen_init(s, store_now_ms()) < 0) {
        snprintf(err, errsz, "store: %s: launchers' liveness: out of memory", path);
        goto fail;
    }
    *out = s;
    return STORE_OK;
fail:
    store_close(s);
    return STORE_ERR;
}

int store_open(struct store **out, const char *path, char *err, size_t errsz)
{
    int from;
    return open_at(out, path, &from, err, errsz);
}

int store_migrate(const char *path, int *from, char *err, size_t errsz)
{
    struct store *s = NULL;
    int rc = open_at(&s, path, from, err, errsz);
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->db) {
        /* What the workers list shows survives a clean restart (leases do not need it). */
        st_seen_save(s);
        st_lock_dirty(s);
        st_flush(s); /* nothing waits any more; what was done is kept */
        st_unlock(s);
    }
    st_stmts_free(s);
    sqlite3_close(s->db);
    st_seen_free(s);
    pthread_cond_destroy(&s->committed_cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_meta_get(struct store *s, const char *key, char **val)
{
    int rc = STORE_ERR;
    st_lock(s);
    sqlite3_stmt *st = st_stmt(s, "SELECT value FROM meta WHERE key = ?");
    if (!st)
        goto out;
    st_bind_text(st, 1, key);
    rc = st_step_one(s, st, "meta get");
    if (rc == STORE_OK) {
        *val = strdup((const char *)sqlite3_column_text(st, 0));
        rc = *val ? STORE_OK : STORE_ERR;
    }
    st_finish(s, st);
out:
    st_unlock(s);
    return rc;
}

int store_meta_set(struct store *s, const char *key, const char *val)
{
    int rc = st_begin_locked(s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = st_stmt(s, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    if (!st) {
        rc = STORE_ERR;
        goto done;
    }
    st_bind_text(st, 1, key);
    st_bind_text(st, 2, val);
    rc = st_done(s, st);
done:
    return st_end(s, rc);
}
