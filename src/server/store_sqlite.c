/*
 * st_sqlite_driver (store_drv.h): the store on SQLite, a file in --data-dir. Everything that
 * calls sqlite3_* for the store's operations is here: opening (private files, pragmas, the
 * migrations of store_schema.c), the kept prepared statements, errors by reason, the SQL
 * functions davit_seen and davit_iso, log reads through incremental blob I/O, and the
 * housekeeping (incremental vacuum, WAL checkpoints). One connection, used under the store's
 * lock only.
 */
#include "server/store_int.h"

#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * How long a statement waits for a lock held by another connection before
 * it fails with SQLITE_BUSY. The server has one connection; another is an
 * operator's sqlite3 shell or backup, which holds a lock for moments.
 */
#define SQ_BUSY_TIMEOUT_MS 5000

/*
 * The WAL's size after a checkpoint: a WAL grown by one large transaction
 * (a run's log batch, a retention sweep) is cut back to this instead of
 * keeping its size forever. 64 MiB keeps the common case from truncating
 * and regrowing the file at every checkpoint.
 */
#define SQ_WAL_SIZE_LIMIT "67108864"

/* A log read's piece when it is copied through a sink rather than read in place. */
#define SQ_LOG_PIECE (64 * 1024)

/* The connection's state (s->conn). */
struct sq_conn {
    sqlite3 *db;
    /* The WAL file, opened by us: sq_sync fdatasyncs it without the store's lock while SQLite
     * goes on with the next transaction (a sync flushes the file, whichever descriptor). */
    int wal_fd;
    struct {
        const char *sql; /* the key: the statement's text, by address (static storage) */
        sqlite3_stmt *st;
    } stmts[ST_STMT_CACHE];
    int nstmts;
};

static sqlite3 *db_of(struct store *s)
{
    return ((struct sq_conn *)s->conn)->db;
}

/* A struct st_stmt of this driver is SQLite's own statement: no wrapper to allocate. */
static sqlite3_stmt *sq(struct st_stmt *st)
{
    return (sqlite3_stmt *)(void *)st;
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
    sqlite3_result_int64(ctx, argc == 2 ? st_seen_or(s, id, sqlite3_value_int64(argv[1]))
                                        : st_seen_ms(s, id));
}

/*
 * davit_iso(ms): ISO 8601 text, UTC, with milliseconds, of ms since the epoch; NULL for NULL.
 * The same text as strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch') gave.
 */
static void sql_iso(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    int64_t ms = sqlite3_value_int64(argv[0]);
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char out[48];
    if (!gmtime_r(&t, &tm)) {
        sqlite3_result_null(ctx);
        return;
    }
    int n = snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    sqlite3_result_text(ctx, out, n, SQLITE_TRANSIENT);
}

static int exec_or_err(sqlite3 *db, const char *path, const char *sql, char *err, size_t errsz)
{
    return st_exec_or_err(db, path, sql, err, errsz);
}

static void sq_close(struct store *s);

/*
 * From here on a COMMIT writes the WAL without syncing it (synchronous=NORMAL, which keeps
 * WAL mode consistent through a power cut and syncs around every checkpoint), and sq_sync
 * makes commits durable, outside the store's lock (store_sql.c, await_durable). Opens the WAL
 * file for that, and syncs its directory once: SQLite may have just made the file, and a
 * power cut must not lose its name.
 */
static int durable_after_open(struct sq_conn *c, const char *path, char *err, size_t errsz)
{
    /* journal_mode=WAL does not fail where WAL cannot work (no shared memory): it leaves the
     * old mode, and with it the guarantee sq_sync gives. */
    sqlite3_stmt *st = NULL;
    const unsigned char *mode = NULL;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = sqlite3_column_text(st, 0);
    int wal_mode = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal_mode) {
        snprintf(err, errsz,
                 "store: %s: WAL mode could not be set (a data directory on a local filesystem"
                 " is needed)",
                 path);
        return -1;
    }
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    c->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (c->wal_fd < 0) {
        snprintf(err, errsz, "store: open %s: %s", wal, strerror(errno));
        return -1;
    }
    if (fsutil_sync_dir_of(wal) < 0) {
        snprintf(err, errsz, "store: sync the directory of %s: %s", wal, strerror(errno));
        return -1;
    }
    return exec_or_err(c->db, path, "PRAGMA synchronous=NORMAL", err, errsz);
}
static int sq_open(struct store *s, const char *path, int *from, char *err, size_t errsz)
{
    struct sq_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errsz, "store: out of memory");
        return -1;
    }
    c->wal_fd = -1;
    s->conn = c;
    if (private_files(path, err, errsz) < 0)
        goto fail;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errsz, "store: open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    /* WAL survives a killed process; synchronous=FULL also survives power loss
     * for every acknowledged write (until the migrations are done: then NORMAL, see
     * durable_after_open). secure_delete overwrites removed secrets. */
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
        ("PRAGMA journal_size_limit=" SQ_WAL_SIZE_LIMIT),
    };
    /* Before journal_mode: on a new file, WAL mode writes the header, and
     * auto_vacuum could no longer be set without a VACUUM. */
    st_schema_vacuum_mode(c->db, path);
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
        if (exec_or_err(c->db, path, pragmas[i], err, errsz) < 0)
            goto fail;
    if (st_schema_migrate(c->db, path, from, err, errsz) < 0 ||
        durable_after_open(c, path, err, errsz) < 0)
        goto fail;
    /* davit_seen is not deterministic: the answer changes as launchers are seen. Direct only:
     * no schema object may call either function. */
    for (int nargs = 1; nargs <= 2; nargs++)
        if (sqlite3_create_function_v2(c->db, "davit_seen", nargs, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                       s, sql_seen, NULL, NULL, NULL) != SQLITE_OK)
            goto nomem;
    if (sqlite3_create_function_v2(c->db, "davit_iso", 1,
                                   SQLITE_UTF8 | SQLITE_DIRECTONLY | SQLITE_DETERMINISTIC, NULL,
                                   sql_iso, NULL, NULL, NULL) != SQLITE_OK)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errsz, "store: %s: SQL functions: %s", path, sqlite3_errmsg(c->db));
fail:
    sq_close(s);
    return -1;
}

static void sq_free_all(struct store *s)
{
    struct sq_conn *c = s->conn;
    if (!c)
        return;
    for (int i = 0; i < c->nstmts; i++)
        sqlite3_finalize(c->stmts[i].st);
    c->nstmts = 0;
}

static void sq_close(struct store *s)
{
    struct sq_conn *c = s->conn;
    if (!c)
        return;
    sq_free_all(s);
    sqlite3_close(c->db);
    if (c->wal_fd >= 0)
        close(c->wal_fd);
    free(c);
    s->conn = NULL;
}

static struct st_stmt *sq_prepare(struct store *s, const char *sql, int keep)
{
    struct sq_conn *c = s->conn;
    if (keep)
        for (int i = 0; i < c->nstmts; i++)
            if (c->stmts[i].sql == sql)
                return (struct st_stmt *)(void *)c->stmts[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
        SQLITE_OK)
        return NULL;
    if (keep && c->nstmts < ST_STMT_CACHE) {
        c->stmts[c->nstmts].sql = sql;
        c->stmts[c->nstmts].st = st;
        c->nstmts++;
    }
    return (struct st_stmt *)(void *)st;
}

static void sq_finish(struct store *s, struct st_stmt *st)
{
    struct sq_conn *c = s->conn;
    for (int i = 0; i < c->nstmts; i++) {
        if (c->stmts[i].st == sq(st)) {
            /* Reset at once: a statement left stepped would keep its read open. */
            sqlite3_reset(sq(st));
            sqlite3_clear_bindings(sq(st));
            return;
        }
    }
    sqlite3_finalize(sq(st));
}

static void sq_bind_i64(struct st_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(sq(st), i, v);
}

static void sq_bind_text(struct st_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(sq(st), i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(sq(st), i);
}

static void sq_bind_blob(struct st_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob64(sq(st), i, p, n, SQLITE_TRANSIENT);
}

static void sq_bind_null(struct st_stmt *st, int i)
{
    sqlite3_bind_null(sq(st), i);
}

static int sq_step(struct store *s, struct st_stmt *st)
{
    (void)s;
    switch (sqlite3_step(sq(st))) {
    case SQLITE_ROW:
        return ST_ROW;
    case SQLITE_DONE:
        return ST_DONE;
    default:
        return -1;
    }
}

static int sq_col_count(struct st_stmt *st)
{
    return sqlite3_column_count(sq(st));
}

static const char *sq_col_name(struct st_stmt *st, int i)
{
    return sqlite3_column_name(sq(st), i);
}

static enum st_type sq_col_type(struct st_stmt *st, int i)
{
    switch (sqlite3_column_type(sq(st), i)) {
    case SQLITE_INTEGER:
        return ST_T_INT;
    case SQLITE_FLOAT:
        return ST_T_REAL;
    case SQLITE_NULL:
        return ST_T_NULL;
    case SQLITE_BLOB:
        return ST_T_BLOB;
    default:
        return ST_T_TEXT;
    }
}

static int64_t sq_col_i64(struct st_stmt *st, int i)
{
    return sqlite3_column_int64(sq(st), i);
}

static double sq_col_double(struct st_stmt *st, int i)
{
    return sqlite3_column_double(sq(st), i);
}

static const char *sq_col_text(struct st_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(sq(st), i);
}

static const void *sq_col_blob(struct st_stmt *st, int i, size_t *n)
{
    const void *p = sqlite3_column_blob(sq(st), i);
    *n = (size_t)sqlite3_column_bytes(sq(st), i);
    return p;
}

static const char *sq_sql(struct st_stmt *st)
{
    return sqlite3_sql(sq(st));
}

static int64_t sq_changes(struct store *s)
{
    return sqlite3_changes64(db_of(s));
}

static int64_t sq_total_changes(struct store *s)
{
    return sqlite3_total_changes64(db_of(s));
}

static int sq_exec(struct store *s, const char *sql)
{
    return sqlite3_exec(db_of(s), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int sq_in_txn(struct store *s)
{
    return !sqlite3_get_autocommit(db_of(s));
}

/* SQLite's unix VFS turns a short write with ENOSPC into SQLITE_FULL; fsync, truncate and -shm
 * growth report SQLITE_IOERR_* with the errno kept aside. */
static enum st_reason sq_reason(struct store *s)
{
    sqlite3 *db = db_of(s);
    switch (sqlite3_extended_errcode(db) & 0xff) {
    case SQLITE_FULL:
        return ST_R_FULL;
    case SQLITE_IOERR:
        return sqlite3_system_errno(db) == ENOSPC ? ST_R_FULL : ST_R_IO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ST_R_BUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ST_R_CORRUPT;
    default:
        return ST_R_OTHER;
    }
}

static const char *sq_message(struct store *s)
{
    return sqlite3_errmsg(db_of(s));
}

static int sq_sync(struct store *s)
{
    struct sq_conn *c = s->conn;
    return fdatasync(c->wal_fd);
}

static int sq_ping(struct store *s)
{
    (void)s;
    return 0; /* a file: there is no server to lose */
}

static int sq_reaper_lock(struct store *s)
{
    (void)s;
    return 1; /* one server per file */
}

static int sq_publish(struct store *s, const char *payload)
{
    (void)s;
    (void)payload;
    return 0;
}

static int sq_listen(struct store *s, void (*fn)(void *arg, const char *payload), void *arg)
{
    (void)s;
    (void)fn;
    (void)arg;
    return 0;
}

static int sq_vacuum(struct store *s, int max_pages, int checkpoint, int *more)
{
    sqlite3 *db = db_of(s);
    char sql[64];
    *more = 0;
    int64_t before = st_query_int(db, "PRAGMA freelist_count"), after = -1;
    if (before < 0)
        return -1;
    /* Outside a transaction: incremental_vacuum commits on its own, and a
     * checkpoint cannot run inside one. */
    snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", max_pages);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        (after = st_query_int(db, "PRAGMA freelist_count")) < 0)
        return -1;
    /* No progress: the database is not in incremental mode (its one-time
     * conversion failed), and looping would not help. */
    *more = after > 0 && after < before;
    /* TRUNCATE: the pages move from the WAL into davit.db, which shrinks to
     * its pages in use, and the WAL is cut to nothing. */
    if (checkpoint && !*more &&
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    return 0;
}

/* Outside a transaction: a checkpoint cannot run inside one. Its first column is 1 when a reader
 * (another process) kept it from finishing: the WAL was not cut, so 1 (try again). */
static int sq_secrets_checkpoint(struct store *s)
{
    sqlite3 *db = db_of(s);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        rc = sqlite3_column_int(st, 0) == 0 ? 0 : 1;
    sqlite3_finalize(st);
    return rc;
}

static int64_t sq_used_bytes(struct store *s)
{
    return st_query_int(db_of(s),
                        "SELECT (page_count - freelist_count) * page_size"
                        "  FROM pragma_page_count, pragma_freelist_count, pragma_page_size");
}

static const char *sq_fs_path(struct store *s)
{
    return sqlite3_db_filename(db_of(s), "main");
}

/* The row of a log chunk, for blob I/O. */
static const char chunk_rowid_sql[] = "SELECT rowid FROM log_chunks WHERE run_id = ?1 AND off = ?2";

/* Only the pages that hold the bytes asked for are read (incremental blob I/O), straight into
 * to when the caller has a buffer. */
static int sq_log_read(struct store *s, int64_t run_id, int64_t off, size_t skip, size_t want,
                       char *to, int (*sink)(void *arg, const void *p, size_t n), void *arg)
{
    sqlite3 *db = db_of(s);
    struct st_stmt *st = sq_prepare(s, chunk_rowid_sql, 1);
    if (!st)
        return -1;
    sqlite3_bind_int64(sq(st), 1, run_id);
    sqlite3_bind_int64(sq(st), 2, off);
    int found = sqlite3_step(sq(st)) == SQLITE_ROW;
    int64_t rowid = found ? sqlite3_column_int64(sq(st), 0) : 0;
    sq_finish(s, st);
    if (!found)
        return -1;
    sqlite3_blob *b = NULL;
    if (sqlite3_blob_open(db, "main", "log_chunks", "data", rowid, 0, &b) != SQLITE_OK)
        return -1;
    int rc = 0;
    char tmp[SQ_LOG_PIECE];
    while (want > 0 && rc == 0) {
        size_t n = want;
        if (!to && n > sizeof(tmp))
            n = sizeof(tmp);
        char *dst = to ? to : tmp;
        if (sqlite3_blob_read(b, dst, (int)n, (int)skip) != SQLITE_OK)
            rc = -1;
        else if (!to && sink(arg, tmp, n) < 0)
            rc = -2;
        skip += n;
        want -= n;
    }
    sqlite3_blob_close(b);
    return rc;
}

const struct st_driver st_sqlite_driver = {
    .name = "sqlite",
    .shared = 0,
    .open = sq_open,
    .close = sq_close,
    .prepare = sq_prepare,
    .finish = sq_finish,
    .free_all = sq_free_all,
    .bind_i64 = sq_bind_i64,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .col_count = sq_col_count,
    .col_name = sq_col_name,
    .col_type = sq_col_type,
    .col_i64 = sq_col_i64,
    .col_double = sq_col_double,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .sql = sq_sql,
    .changes = sq_changes,
    .total_changes = sq_total_changes,
    .exec = sq_exec,
    .in_txn = sq_in_txn,
    .reason = sq_reason,
    .message = sq_message,
    .sync = sq_sync,
    .ping = sq_ping,
    .reaper_lock = sq_reaper_lock,
    .publish = sq_publish,
    .listen = sq_listen,
    .vacuum = sq_vacuum,
    .secrets_checkpoint = sq_secrets_checkpoint,
    .used_bytes = sq_used_bytes,
    .fs_path = sq_fs_path,
    .log_read = sq_log_read,
    .claim_lock = "", /* one writer: the claim's transaction holds the database */
    .begin = "BEGIN IMMEDIATE",
    .row_lock = "", /* one writer: BEGIN IMMEDIATE holds the database */
};
