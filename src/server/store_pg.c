/*
 * The PostgreSQL connection under st_pg_driver (store_pg.h): statements over libpq, results
 * read as text, failures mapped from SQLSTATE, reconnection after a lost connection, and the
 * listener thread of cross-server wake-ups (LISTEN davit).
 *
 * The store keeps the shape it has on SQLite: one connection, used under the store's lock, a
 * shared transaction with a savepoint per operation (store_sql.c). Statements the store keeps
 * are prepared once per connection, by name; after a reconnect they are prepared again. Every
 * value goes as text except blobs (binary), and every result comes as text, parsed here.
 */
#include "server/store_pg.h"

#include "server/store_int.h"

#include "common/clock.h"
#include "common/log.h"
#include "server/store.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Type OIDs of the results (PostgreSQL's catalog/pg_type.h, stable since 7.x; the server's
 * headers are not in libpq-dev). */
#define OID_BOOL    16
#define OID_BYTEA   17
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_TEXT    25
#define OID_OID     26
#define OID_FLOAT4  700
#define OID_FLOAT8  701
#define OID_NUMERIC 1700

/* Statements kept prepared per connection: the store has about 70 distinct ones; past this a
 * statement runs unnamed at each use. */
#define PGC_KEPT_MAX 128
/* PostgreSQL's limit of parameters in one statement (the protocol's 16-bit count). */
#define PGC_PARAMS_MAX 65535
/* The channel of wake-ups (store_publish). */
#define PGC_CHANNEL "davit"
/* How long the listener waits for a notification before its re-check (store.h: about 1 s). */
#define PGC_RECHECK_MS 1000
/* The listener's reconnect backoff: doubles from the first to the last while it fails. */
#define PGC_BACKOFF_MIN_MS 200
#define PGC_BACKOFF_MAX_MS 5000
/* After a failed reconnect, operations fail at once for this long before the next try. */
#define PGC_RETRY_MS 500
/* A connection attempt gives up after this (libpq's connect_timeout, seconds): a PostgreSQL
 * host that does not answer must not hold the store's lock for minutes. The URL may set its
 * own. */
#define PGC_CONNECT_TIMEOUT "5"

struct st_stmt {
    struct pgc *c;
    const char *sql; /* the store's text (kept: the key, by address) */
    char *pgsql;     /* with $N placeholders */
    int nparams;
    int kept;              /* a kept statement: prepared by name, reused */
    char name[16];         /* its name on the connection */
    uint64_t prepared;     /* the connection generation it was prepared on (0: not yet) */
    char **vals;           /* nparams values (NULL: SQL NULL), owned */
    int *lens, *fmts;      /* lengths and formats (1: binary, for blobs) */
    Oid *types;            /* 0 (PostgreSQL infers it) for each number used, text for one skipped */
    PGresult *res;         /* the rows of the current run, or NULL */
    int row, nrows;        /* the current row (-1 before the first step) */
    unsigned char **blobs; /* decoded bytea of the current row, per column (PQunescapeBytea) */
    size_t *bloblens;
};

struct pgc {
    PGconn *conn;
    char *url; /* with its password: wiped and freed at close */
    char label[256];
    /* Bumped at each reconnect: a kept statement prepared on an older one is prepared again. */
    uint64_t gen;
    /* The connection was lost inside a transaction, and the store has not yet seen it: every
     * statement fails until the store asks pgc_in_txn or sends BEGIN or ROLLBACK (a COMMIT,
     * or the rest of an operation, on the new connection would otherwise "succeed" without
     * the lost transaction's writes). */
    int txn_lost;
    int64_t retry_at_ms; /* after a failed reconnect: no new try before (monotonic) */
    struct st_stmt *kept[PGC_KEPT_MAX];
    int nkept;
    int64_t changes, total_changes;
    enum st_reason reason;
    char message[512];
    int backend_pid; /* of conn (atomic): the listener ignores its own notifications */
    /* conn is lost and not made again yet (atomic): /healthz's ping, on a connection of its
     * own, must not say healthy while the store's operations still fail. */
    int conn_down;
    /* The listener (pgc_listen). */
    pthread_t thread;
    int listening;
    int stop_fd;         /* eventfd: close tells the thread to stop */
    PGconn *listen_conn; /* its first connection, made by pgc_listen, then the thread's */
    void (*fn)(void *arg, const char *payload);
    void *fn_arg;
    /* /healthz's ping (pgc_ping_apart): its own connection, made at the first ping. */
    pthread_mutex_t ping_mu;
    PGconn *ping_conn;
};

/* ---- failures ---- */

/* The reason of a failure with SQLSTATE code (NULL: no code, a lost connection). */
static enum st_reason reason_of(const char *code, int conn_bad)
{
    if (conn_bad || !code)
        return ST_R_IO;
    if (strcmp(code, "53100") == 0)
        return ST_R_FULL;
    if (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0 || strncmp(code, "58", 2) == 0)
        return ST_R_IO;
    if (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0 || strcmp(code, "55P03") == 0)
        return ST_R_BUSY;
    if (strcmp(code, "XX001") == 0 || strcmp(code, "XX002") == 0)
        return ST_R_CORRUPT;
    return ST_R_OTHER;
}

/* Copies text into out as one line (libpq's messages end with newlines, some span several). */
static void one_line(char *out, size_t outsz, const char *text)
{
    size_t j = 0;
    for (size_t i = 0; text && text[i] && j + 1 < outsz; i++) {
        char ch = text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i];
        if (ch == ' ' && (j == 0 || out[j - 1] == ' '))
            continue;
        out[j++] = ch;
    }
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

/* Records a failure: prefix, then what (libpq's message) on one line. */
static void fail_set(struct pgc *c, enum st_reason why, const char *prefix, const char *what)
{
    c->reason = why;
    char line[400];
    one_line(line, sizeof(line), what);
    snprintf(c->message, sizeof(c->message), "%s: %s", prefix, line);
}

/* Records the failure that res (NULL: none came) tells. Data exceptions (class 22) quote the
 * value that failed, which may be request content: only their code is kept. */
static void fail_result(struct pgc *c, const PGresult *res)
{
    int bad = PQstatus(c->conn) == CONNECTION_BAD;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    c->reason = reason_of(code, bad);
    if (bad) {
        fail_set(c, c->reason, "PostgreSQL: connection lost", PQerrorMessage(c->conn));
    } else if (code && strncmp(code, "22", 2) == 0) {
        snprintf(c->message, sizeof(c->message), "PostgreSQL: invalid data (SQLSTATE %s)", code);
    } else {
        char line[400];
        one_line(line, sizeof(line), primary ? primary : PQerrorMessage(c->conn));
        snprintf(c->message, sizeof(c->message), "PostgreSQL: %s (SQLSTATE %s)", line,
                 code ? code : "none");
    }
}

/* A COMMIT of a transaction that had already failed "succeeds" with the tag ROLLBACK: nothing
 * was kept, and the store must not tell its writers otherwise. 1 when res is that. */
static int commit_rolled_back(struct pgc *c, const char *sql, PGresult *res)
{
    if (strcmp(sql, "COMMIT") != 0 || strcmp(PQcmdStatus(res), "ROLLBACK") != 0)
        return 0;
    c->reason = ST_R_OTHER;
    snprintf(c->message, sizeof(c->message),
             "PostgreSQL: COMMIT rolled back (a statement of the transaction had failed)");
    return 1;
}

/* ---- connections ---- */

/* libpq prints the server's notices (NOTICE, WARNING) on stderr: the store's failures are
 * told through its results instead, and the log stays one line per event. */
static void drop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/*
 * Every wait on the database has an end (docs/server.md, "PostgreSQL"): each is well above
 * what a normal operation takes, and the store's lock is held through them. TCP keepalives and
 * tcp_user_timeout (ms) find a peer gone without a word (a partition) in about 30 s instead
 * of the kernel's ~15 min; lock_timeout ends a wait for a row another server holds (a frozen
 * replica mid-batch); statement_timeout any statement; idle_in_transaction_session_timeout
 * frees what a frozen server's open transaction holds. The URL's own options (options=-c...)
 * replace PGC_OPTIONS whole; migrations lift the statement and lock limits for themselves.
 */
#define PGC_OPTIONS                                                                                \
    "-c lock_timeout=20s -c statement_timeout=30s -c idle_in_transaction_session_timeout=60s"

/* Opens a connection to url with davit's defaults (the URL's own settings win). */
static PGconn *connect_url(const char *url)
{
    /* Later keywords override earlier ones: dbname (the URL, expanded) comes last. */
    const char *const keys[] = {"connect_timeout",
                                "application_name",
                                "client_encoding",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "options",
                                "dbname",
                                NULL};
    const char *const vals[] = {PGC_CONNECT_TIMEOUT, "davit", "UTF8", "1", "10", "5", "3", "30000",
                                PGC_OPTIONS,         url,     NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn)
        PQsetNoticeProcessor(conn, drop_notice, NULL);
    return conn;
}

int pgc_url_check(const char *url)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    PQfreemem(msg);
    PQconninfoFree(opts);
    return opts ? 0 : -1;
}

/* Overwrites each occurrence of secret (n bytes) in text with '*'. */
static void mask(char *text, const char *secret, size_t n)
{
    if (n == 0)
        return;
    for (char *p = strstr(text, secret); p; p = strstr(p + n, secret))
        memset(p, '*', n);
}

/*
 * libpq's message about conn on one line, with url's password masked: as given (decoded) and
 * as written in the URL (user:PASSWORD@), should a message ever quote either.
 */
static void conn_why(const char *url, PGconn *conn, char *out, size_t outsz)
{
    one_line(out, outsz, conn ? PQerrorMessage(conn) : "out of memory");
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            mask(out, o->val, strlen(o->val));
    PQconninfoFree(opts);
    const char *rest = strstr(url, "://");
    const char *at = rest ? strrchr(rest, '@') : NULL;
    const char *colon = rest ? memchr(rest + 3, ':', (size_t)(at ? at - rest - 3 : 0)) : NULL;
    if (colon)
        mask(out, colon + 1, (size_t)(at - colon - 1));
}

void pgc_label(const char *url, char *out, size_t outsz)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    PQfreemem(msg);
    if (!opts) {
        snprintf(out, outsz, "PostgreSQL");
        return;
    }
    const char *user = NULL, *host = NULL, *port = NULL, *db = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0 || (!host && strcmp(o->keyword, "hostaddr") == 0))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    char line[512];
    snprintf(line, sizeof(line), "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
             host ? host : "", port ? ":" : "", port ? port : "", db ? db : "");
    one_line(out, outsz, line);
    PQconninfoFree(opts);
}

/* Sets what follows a new connection: its backend's pid for the listener. */
static void connected(struct pgc *c)
{
    __atomic_store_n(&c->backend_pid, PQbackendPID(c->conn), __ATOMIC_SEQ_CST);
    __atomic_store_n(&c->conn_down, 0, __ATOMIC_SEQ_CST);
    c->gen++;
}

/*
 * Before a statement: a lost connection is made again (PQreset), and one lost inside a
 * transaction poisons what is left of it (txn_lost). 0 when the connection is usable.
 */
static int ensure_connection(struct pgc *c)
{
    if (PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    __atomic_store_n(&c->conn_down, 1, __ATOMIC_SEQ_CST);
    /* While PostgreSQL is away, every operation would try (each up to connect_timeout, under
     * the store's lock): one try per PGC_RETRY_MS, the others fail at once. */
    int64_t now = clock_mono_ms();
    if (now < c->retry_at_ms) {
        c->reason = ST_R_IO;
        snprintf(c->message, sizeof(c->message),
                 "PostgreSQL: not connected (the last try failed; trying again shortly)");
        return -1;
    }
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        c->retry_at_ms = clock_mono_ms() + PGC_RETRY_MS;
        char why[400];
        conn_why(c->url, c->conn, why, sizeof(why));
        fail_set(c, ST_R_IO, "PostgreSQL: cannot reconnect", why);
        return -1;
    }
    connected(c);
    log_event(LOG_INFO, "store: reconnected to PostgreSQL", "database", c->label, NULL);
    return 0;
}

/* The connection broke (seen after a statement): the transaction it had is gone. */
static void note_broken(struct pgc *c, int was_in_txn)
{
    if (PQstatus(c->conn) == CONNECTION_BAD && was_in_txn)
        c->txn_lost = 1;
}

/* ---- statements ---- */

/* pgc_rewrite, also telling which numbers appear: used[N - 1] is 1 for each ?N (used: NULL, or
 * room for PGC_PARAMS_MAX). */
static char *rewrite(const char *sql, int *nparams, unsigned char *used)
{
    size_t n = strlen(sql);
    /* "?" becomes at most "$65535": 6 bytes for 1. */
    char *out = malloc(n * 6 + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    int max = 0;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sql[i];
        if (quote) {
            out[j++] = ch;
            if (ch == quote)
                quote = 0; /* a doubled quote closes and opens again: the same text */
            continue;
        }
        if (ch == '\'' || ch == '"') {
            quote = ch;
            out[j++] = ch;
            continue;
        }
        if (ch != '?') {
            out[j++] = ch;
            continue;
        }
        long num;
        if (sql[i + 1] >= '0' && sql[i + 1] <= '9') {
            char *end;
            num = strtol(sql + i + 1, &end, 10);
            i = (size_t)(end - sql) - 1;
        } else {
            num = max + 1;
        }
        if (num < 1 || num > PGC_PARAMS_MAX) {
            free(out);
            return NULL;
        }
        if (num > max)
            max = (int)num;
        if (used)
            used[num - 1] = 1;
        j += (size_t)sprintf(out + j, "$%ld", num);
    }
    out[j] = '\0';
    *nparams = max;
    return out;
}

char *pgc_rewrite(const char *sql, int *nparams)
{
    return rewrite(sql, nparams, NULL);
}

/* Clears the current run's rows and decoded blobs. */
static void stmt_clear_rows(struct st_stmt *st)
{
    if (st->blobs && st->res) {
        int ncols = PQnfields(st->res);
        for (int i = 0; i < ncols; i++) {
            PQfreemem(st->blobs[i]);
            st->blobs[i] = NULL;
        }
    }
    free(st->blobs);
    free(st->bloblens);
    st->blobs = NULL;
    st->bloblens = NULL;
    PQclear(st->res);
    st->res = NULL;
    st->row = -1;
    st->nrows = 0;
}

static void stmt_unbind(struct st_stmt *st)
{
    for (int i = 0; i < st->nparams; i++) {
        free(st->vals[i]);
        st->vals[i] = NULL;
        st->lens[i] = 0;
        st->fmts[i] = 0;
    }
}

static void stmt_free(struct st_stmt *st)
{
    if (!st)
        return;
    stmt_clear_rows(st);
    stmt_unbind(st);
    free(st->vals);
    free(st->lens);
    free(st->fmts);
    free(st->types);
    free(st->pgsql);
    free(st);
}

/* PostgreSQL has no BEGIN IMMEDIATE: its writers lock rows, not the database. */
static const char *pg_text_of(const char *sql)
{
    return strcmp(sql, "BEGIN IMMEDIATE") == 0 ? "BEGIN" : sql;
}

/* Prepares st by name on the current connection. 0, or -1 with the failure recorded. */
static int stmt_prepare_named(struct pgc *c, struct st_stmt *st)
{
    /* A name prepared on this connection before (a statement finished and kept again under
     * another index cannot be: names are by index and kept ones are never dropped). */
    PGresult *res = PQprepare(c->conn, st->name, st->pgsql, st->nparams, st->types);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fail_result(c, res);
    PQclear(res);
    if (!ok)
        return -1;
    st->prepared = c->gen;
    return 0;
}

static struct st_stmt *stmt_new(struct pgc *c, const char *sql)
{
    struct st_stmt *st = calloc(1, sizeof(*st));
    if (!st)
        goto oom;
    st->c = c;
    st->sql = sql;
    st->row = -1;
    unsigned char *used = calloc(PGC_PARAMS_MAX, 1);
    if (!used)
        goto oom;
    st->pgsql = rewrite(pg_text_of(sql), &st->nparams, used);
    size_t n = st->nparams ? (size_t)st->nparams : 1;
    st->vals = calloc(n, sizeof(*st->vals));
    st->lens = calloc(n, sizeof(*st->lens));
    st->fmts = calloc(n, sizeof(*st->fmts));
    st->types = calloc(n, sizeof(*st->types));
    if (!st->pgsql || !st->vals || !st->lens || !st->fmts || !st->types) {
        free(used);
        goto oom;
    }
    /* A number the text skips (?1 and ?3, no ?2) has no context to infer its type from, and
     * PostgreSQL refuses the statement: it is bound but unused, so any type does. */
    for (int i = 0; i < st->nparams; i++)
        st->types[i] = used[i] ? 0 : OID_TEXT;
    free(used);
    return st;
oom:
    stmt_free(st);
    c->reason = ST_R_OTHER;
    snprintf(c->message, sizeof(c->message), "out of memory");
    return NULL;
}

/* What a statement's text is to the lost-transaction rule: 1 BEGIN, 2 ROLLBACK (whole), 0
 * anything else. */
static int txn_word(const char *sql)
{
    if (strncmp(sql, "BEGIN", 5) == 0)
        return 1;
    if (strcmp(sql, "ROLLBACK") == 0)
        return 2;
    return 0;
}

/* Whether sql may run now; under txn_lost only what ends the lost transaction. 0 or -1. */
static int txn_gate(struct pgc *c, const char *sql)
{
    if (!c->txn_lost)
        return 0;
    if (txn_word(sql)) {
        c->txn_lost = 0;
        return 0;
    }
    c->reason = ST_R_IO;
    snprintf(c->message, sizeof(c->message),
             "PostgreSQL: the connection was lost inside a transaction: its changes are gone");
    return -1;
}

struct st_stmt *pgc_prepare(struct pgc *c, const char *sql, int keep)
{
    if (ensure_connection(c) < 0)
        return NULL;
    if (keep) {
        for (int i = 0; i < c->nkept; i++)
            if (c->kept[i]->sql == sql)
                return c->kept[i];
    }
    struct st_stmt *st = stmt_new(c, sql);
    if (!st)
        return NULL;
    if (keep && c->nkept < PGC_KEPT_MAX) {
        st->kept = 1;
        snprintf(st->name, sizeof(st->name), "davit_%d", c->nkept);
        c->kept[c->nkept++] = st;
    }
    return st;
}

void pgc_finish(struct pgc *c, struct st_stmt *st)
{
    (void)c;
    if (!st)
        return;
    if (!st->kept) {
        stmt_free(st);
        return;
    }
    stmt_clear_rows(st);
    stmt_unbind(st);
}

void pgc_free_all(struct pgc *c)
{
    for (int i = 0; i < c->nkept; i++)
        stmt_free(c->kept[i]);
    c->nkept = 0;
}

/* Sets parameter i (from 1) to the n bytes at p (NULL: SQL NULL), as text or binary. */
static void bind_raw(struct st_stmt *st, int i, const void *p, size_t n, int binary)
{
    if (i < 1 || i > st->nparams)
        return; /* as SQLite's bind of a missing index: nothing to bind */
    free(st->vals[i - 1]);
    st->vals[i - 1] = NULL;
    st->lens[i - 1] = 0;
    st->fmts[i - 1] = binary;
    if (!p)
        return;
    char *copy = malloc(n + 1);
    if (!copy)
        return; /* runs as NULL; a NOT NULL column then refuses it */
    memcpy(copy, p, n);
    copy[n] = '\0';
    st->vals[i - 1] = copy;
    st->lens[i - 1] = (int)n;
}

void pgc_bind_i64(struct st_stmt *st, int i, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);
    bind_raw(st, i, num, (size_t)n, 0);
}

void pgc_bind_text(struct st_stmt *st, int i, const char *v)
{
    bind_raw(st, i, v, v ? strlen(v) : 0, 0);
}

void pgc_bind_blob(struct st_stmt *st, int i, const void *p, size_t n)
{
    bind_raw(st, i, p ? p : "", n, 1);
}

void pgc_bind_null(struct st_stmt *st, int i)
{
    bind_raw(st, i, NULL, 0, 0);
}

/* Counts what a finished command changed, as SQLite's changes() does: writes only. */
static void count_changes(struct pgc *c, const PGresult *res)
{
    const char *status = PQcmdStatus((PGresult *)res);
    if (strncmp(status, "INSERT", 6) != 0 && strncmp(status, "UPDATE", 6) != 0 &&
        strncmp(status, "DELETE", 6) != 0 && strncmp(status, "MERGE", 5) != 0)
        return;
    c->changes = strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
    c->total_changes += c->changes;
}

/* The first step: runs the statement. ST_ROW, ST_DONE or -1. */
static int stmt_run(struct pgc *c, struct st_stmt *st)
{
    if (ensure_connection(c) < 0 || txn_gate(c, st->sql) < 0)
        return -1;
    int in_txn = pgc_in_txn(c);
    PGresult *res;
    if (st->kept) {
        if (st->prepared != c->gen && stmt_prepare_named(c, st) < 0) {
            note_broken(c, in_txn);
            return -1;
        }
        res = PQexecPrepared(c->conn, st->name, st->nparams, (const char *const *)st->vals,
                             st->lens, st->fmts, 0);
    } else {
        res = PQexecParams(c->conn, st->pgsql, st->nparams, st->types,
                           (const char *const *)st->vals, st->lens, st->fmts, 0);
    }
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fail_result(c, res);
        PQclear(res);
        note_broken(c, in_txn);
        return -1;
    }
    if (commit_rolled_back(c, st->sql, res)) {
        PQclear(res);
        return -1;
    }
    count_changes(c, res);
    st->res = res;
    st->nrows = PQntuples(res);
    int ncols = PQnfields(res);
    if (ncols > 0) {
        st->blobs = calloc((size_t)ncols, sizeof(*st->blobs));
        st->bloblens = calloc((size_t)ncols, sizeof(*st->bloblens));
        if (!st->blobs || !st->bloblens) {
            c->reason = ST_R_OTHER;
            snprintf(c->message, sizeof(c->message), "out of memory");
            return -1;
        }
    }
    st->row = -1;
    return ST_DONE;
}

/* Frees the blobs decoded for the row being left. */
static void row_leave(struct st_stmt *st)
{
    if (!st->blobs)
        return;
    int ncols = PQnfields(st->res);
    for (int i = 0; i < ncols; i++) {
        PQfreemem(st->blobs[i]);
        st->blobs[i] = NULL;
        st->bloblens[i] = 0;
    }
}

int pgc_step(struct pgc *c, struct st_stmt *st)
{
    if (!st->res && stmt_run(c, st) < 0)
        return -1;
    row_leave(st);
    if (st->row + 1 >= st->nrows) {
        st->row = st->nrows;
        return ST_DONE;
    }
    st->row++;
    return ST_ROW;
}

static int col_ok(const struct st_stmt *st, int i)
{
    return st->res && st->row >= 0 && st->row < st->nrows && i >= 0 && i < PQnfields(st->res);
}

int pgc_col_count(struct st_stmt *st)
{
    return st->res ? PQnfields(st->res) : 0;
}

const char *pgc_col_name(struct st_stmt *st, int i)
{
    return st->res && i >= 0 && i < PQnfields(st->res) ? PQfname(st->res, i) : NULL;
}

enum st_type pgc_col_type(struct st_stmt *st, int i)
{
    if (!col_ok(st, i) || PQgetisnull(st->res, st->row, i))
        return ST_T_NULL;
    switch (PQftype(st->res, i)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_BOOL:
        return ST_T_INT;
    case OID_FLOAT4:
    case OID_FLOAT8:
        return ST_T_REAL;
    case OID_NUMERIC:
        return strpbrk(PQgetvalue(st->res, st->row, i), ".eE") ? ST_T_REAL : ST_T_INT;
    case OID_BYTEA:
        return ST_T_BLOB;
    default:
        return ST_T_TEXT;
    }
}

int64_t pgc_col_i64(struct st_stmt *st, int i)
{
    if (!col_ok(st, i) || PQgetisnull(st->res, st->row, i))
        return 0;
    const char *v = PQgetvalue(st->res, st->row, i);
    if (PQftype(st->res, i) == OID_BOOL)
        return v[0] == 't';
    if (PQftype(st->res, i) == OID_FLOAT4 || PQftype(st->res, i) == OID_FLOAT8 ||
        strpbrk(v, ".eE")) {
        /* As SQLite's integer of a REAL: clamped to the 64-bit range (a cast past it is
         * undefined), NaN as 0. */
        double d = strtod(v, NULL);
        if (d != d)
            return 0;
        if (d >= 9223372036854775807.0)
            return INT64_MAX;
        if (d <= -9223372036854775808.0)
            return INT64_MIN;
        return (int64_t)d;
    }
    return strtoll(v, NULL, 10);
}

double pgc_col_double(struct st_stmt *st, int i)
{
    if (!col_ok(st, i) || PQgetisnull(st->res, st->row, i))
        return 0;
    const char *v = PQgetvalue(st->res, st->row, i);
    if (PQftype(st->res, i) == OID_BOOL)
        return v[0] == 't';
    return strtod(v, NULL);
}

const char *pgc_col_text(struct st_stmt *st, int i)
{
    if (!col_ok(st, i) || PQgetisnull(st->res, st->row, i))
        return NULL;
    const char *v = PQgetvalue(st->res, st->row, i);
    if (PQftype(st->res, i) == OID_BOOL)
        return v[0] == 't' ? "1" : "0"; /* as SQLite shows a boolean */
    return v;
}

const void *pgc_col_blob(struct st_stmt *st, int i, size_t *n)
{
    *n = 0;
    if (!col_ok(st, i) || PQgetisnull(st->res, st->row, i))
        return NULL;
    const char *v = PQgetvalue(st->res, st->row, i);
    if (PQftype(st->res, i) != OID_BYTEA) {
        *n = (size_t)PQgetlength(st->res, st->row, i);
        return v; /* text read as bytes, as SQLite does */
    }
    if (!st->blobs[i]) {
        st->blobs[i] = PQunescapeBytea((const unsigned char *)v, &st->bloblens[i]);
        if (!st->blobs[i])
            return NULL;
    }
    *n = st->bloblens[i];
    return st->blobs[i];
}

const char *pgc_sql(struct st_stmt *st)
{
    return st->sql;
}

int64_t pgc_changes(struct pgc *c)
{
    return c->changes;
}

int64_t pgc_total_changes(struct pgc *c)
{
    return c->total_changes;
}

int pgc_exec(struct pgc *c, const char *sql)
{
    if (ensure_connection(c) < 0 || txn_gate(c, sql) < 0)
        return -1;
    int in_txn = pgc_in_txn(c);
    PGresult *res = PQexec(c->conn, pg_text_of(sql));
    ExecStatusType status = PQresultStatus(res);
    int ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
    if (!ok)
        fail_result(c, res);
    else if (commit_rolled_back(c, sql, res))
        ok = 0;
    else
        count_changes(c, res);
    PQclear(res);
    if (!ok)
        note_broken(c, in_txn);
    return ok ? 0 : -1;
}

int pgc_in_txn(struct pgc *c)
{
    if (c->txn_lost) {
        /* The database ended it: told as SQLite tells a rollback of its own. The store has
         * now seen it (op_close asks this first), so what it sends next is a new start. */
        c->txn_lost = 0;
        return 0;
    }
    switch (PQtransactionStatus(c->conn)) {
    case PQTRANS_ACTIVE:
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        return 1;
    default:
        return 0;
    }
}

enum st_reason pgc_reason(struct pgc *c)
{
    return c->reason;
}

const char *pgc_message(struct pgc *c)
{
    return c->message;
}

/* Runs a kept one-row, one-column query with up to one text parameter; its value as an
 * integer (a boolean as 0 or 1) in *out. 0 or -1. */
static int query_i64(struct pgc *c, const char *sql, const char *param, int64_t *out)
{
    struct st_stmt *st = pgc_prepare(c, sql, 1);
    if (!st)
        return -1;
    if (param)
        pgc_bind_text(st, 1, param);
    int rc = pgc_step(c, st);
    if (rc == ST_ROW && out)
        *out = pgc_col_i64(st, 0);
    pgc_finish(c, st);
    return rc < 0 ? -1 : 0;
}

static const char ping_sql[] = "SELECT 1";

int pgc_ping_apart(struct pgc *c)
{
    pthread_mutex_lock(&c->ping_mu);
    if (c->ping_conn && PQstatus(c->ping_conn) != CONNECTION_OK) {
        PQfinish(c->ping_conn);
        c->ping_conn = NULL;
    }
    if (!c->ping_conn)
        c->ping_conn = connect_url(c->url);
    int ok = 0;
    /* The store's own connection is lost: unhealthy until an operation has made it again
     * (the reaper's pass does, every 500 ms), whatever this connection says. */
    if (!__atomic_load_n(&c->conn_down, __ATOMIC_SEQ_CST) &&
        PQstatus(c->ping_conn) == CONNECTION_OK) {
        PGresult *res = PQexec(c->ping_conn, ping_sql);
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
    }
    if (!ok) {
        /* Connected again at the next ping: connect_timeout bounds that wait. */
        PQfinish(c->ping_conn);
        c->ping_conn = NULL;
    }
    pthread_mutex_unlock(&c->ping_mu);
    return ok ? 0 : -1;
}

int pgc_ping(struct pgc *c)
{
    return query_i64(c, ping_sql, NULL, NULL);
}

/* Inside the write operation's transaction: released at its commit or rollback. */
static const char reaper_sql[] = "SELECT pg_try_advisory_xact_lock(CAST(? AS BIGINT))";

int pgc_reaper_lock(struct pgc *c)
{
    struct st_stmt *st = pgc_prepare(c, reaper_sql, 1);
    if (!st)
        return -1;
    pgc_bind_i64(st, 1, PGC_LOCK_REAPER);
    int rc = pgc_step(c, st);
    int64_t got = rc == ST_ROW ? pgc_col_i64(st, 0) : 0;
    pgc_finish(c, st);
    return rc == ST_ROW ? (int)got : -1;
}

/* NOTIFY inside the current transaction: sent at its commit, dropped by its rollback. */
static const char publish_sql[] = "SELECT pg_notify('" PGC_CHANNEL "', CAST(? AS TEXT))";

int pgc_publish(struct pgc *c, const char *payload)
{
    return query_i64(c, publish_sql, payload, NULL);
}

static const char used_sql[] = "SELECT pg_database_size(current_database())";

int64_t pgc_used_bytes(struct pgc *c)
{
    int64_t v = 0;
    return query_i64(c, used_sql, NULL, &v) < 0 ? -1 : v;
}

/* A log chunk's bytes from skip on (substr counts from 1; its lengths are int4). */
static const char log_read_sql[] = "SELECT substr(data, CAST(?3 AS INTEGER), CAST(?4 AS INTEGER))"
                                   "  FROM log_chunks WHERE run_id = ?1 AND off = ?2";

int pgc_log_read(struct pgc *c, int64_t run_id, int64_t off, size_t skip, size_t want, char *to,
                 int (*sink)(void *arg, const void *p, size_t n), void *arg)
{
    if (skip >= INT32_MAX || want >= INT32_MAX) {
        c->reason = ST_R_OTHER;
        snprintf(c->message, sizeof(c->message), "store: a log read of 2 GiB or more");
        return -1;
    }
    struct st_stmt *st = pgc_prepare(c, log_read_sql, 1);
    if (!st)
        return -1;
    pgc_bind_i64(st, 1, run_id);
    pgc_bind_i64(st, 2, off);
    pgc_bind_i64(st, 3, (int64_t)skip + 1);
    pgc_bind_i64(st, 4, (int64_t)want);
    int rc = pgc_step(c, st);
    size_t n = 0;
    const void *p = rc == ST_ROW ? pgc_col_blob(st, 0, &n) : NULL;
    if (rc == ST_ROW && (n != want || (!p && want))) {
        /* The row the caller saw is gone or shorter: as SQLite's blob read out of range. */
        c->reason = ST_R_OTHER;
        snprintf(c->message, sizeof(c->message),
                 "store: log chunk %lld of run %lld: %zu bytes"
                 " where %zu were expected",
                 (long long)off, (long long)run_id, n, want);
        rc = -1;
    } else if (rc == ST_DONE) {
        c->reason = ST_R_OTHER;
        snprintf(c->message, sizeof(c->message), "store: log chunk %lld of run %lld is gone",
                 (long long)off, (long long)run_id);
        rc = -1;
    } else if (rc == ST_ROW) {
        if (to) {
            memcpy(to, p, n);
            rc = 0;
        } else {
            rc = n && sink(arg, p, n) < 0 ? -2 : 0;
        }
    }
    pgc_finish(c, st);
    return rc;
}

/* ---- the listener ---- */

/*
 * The re-check: what a lost notification would have said (store.h). Pools with queued runs,
 * and launchers with messages waiting.
 */
static const char recheck_sql[] =
    "SELECT 'r:' || pool_id || ':' || CAST(count(*) AS TEXT) FROM runs WHERE state = 'queued'"
    " GROUP BY pool_id"
    " UNION ALL "
    "SELECT 'l:' || CAST(launcher_id AS TEXT) FROM messages GROUP BY launcher_id";

/* Waits up to ms for the stop event or fd's input. 1 stop, 0 otherwise. */
static int wait_for(struct pgc *c, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = c->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    return n > 0 && (p[0].revents & POLLIN);
}

static void recheck(struct pgc *c, PGconn *conn)
{
    PGresult *res = PQexec(conn, recheck_sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int r = 0; r < PQntuples(res); r++)
            c->fn(c->fn_arg, PQgetvalue(res, r, 0));
    }
    PQclear(res);
}

/* Delivers the notifications that arrived, except this store's own. */
static void deliver(struct pgc *c, PGconn *conn)
{
    PGnotify *n;
    int own = __atomic_load_n(&c->backend_pid, __ATOMIC_SEQ_CST);
    while ((n = PQnotifies(conn)) != NULL) {
        if (n->be_pid != own && strlen(n->extra) <= STORE_WAKE_MAX)
            c->fn(c->fn_arg, n->extra);
        PQfreemem(n);
    }
}

/* A listening connection, or NULL (the failure logged once per outage through *down). */
static PGconn *listen_connect(struct pgc *c, int *down)
{
    PGconn *conn = connect_url(c->url);
    PGresult *res = NULL;
    if (PQstatus(conn) == CONNECTION_OK) {
        res = PQexec(conn, "LISTEN " PGC_CHANNEL);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            if (*down)
                log_event(LOG_INFO, "store: listening to PostgreSQL again", "database", c->label,
                          NULL);
            *down = 0;
            return conn;
        }
    }
    if (!*down) {
        char why[400];
        conn_why(c->url, conn, why, sizeof(why));
        log_event(LOG_WARN,
                  "store: lost PostgreSQL's wake-ups; reconnecting (each second, the"
                  " re-check covers them once back)",
                  "database", c->label, "reason", why, NULL);
    }
    *down = 1;
    PQclear(res);
    PQfinish(conn);
    return NULL;
}

static void *listen_main(void *arg)
{
    struct pgc *c = arg;
    PGconn *conn = c->listen_conn;
    int down = !conn, backoff = PGC_BACKOFF_MIN_MS;
    int64_t next_check = 0;
    for (;;) {
        if (!conn) {
            conn = listen_connect(c, &down);
            if (!conn) {
                if (wait_for(c, -1, backoff))
                    break;
                backoff = backoff * 2 > PGC_BACKOFF_MAX_MS ? PGC_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = PGC_BACKOFF_MIN_MS;
            next_check = 0; /* at once: what was missed while down */
        }
        int64_t now = clock_mono_ms();
        if (now >= next_check) {
            recheck(c, conn);
            next_check = now + PGC_RECHECK_MS;
            /* What arrived while the re-check ran is in libpq's queue now, not on the socket:
             * delivered at once, not after the next wait. */
            deliver(c, conn);
        }
        int left = (int)(next_check - now);
        if (wait_for(c, PQsocket(conn), left > 0 ? left : 0))
            break;
        if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
            continue;
        }
        deliver(c, conn);
    }
    PQfinish(conn);
    return NULL;
}

int pgc_listen(struct pgc *c, void (*fn)(void *arg, const char *payload), void *arg)
{
    if (c->listening) {
        c->reason = ST_R_OTHER;
        snprintf(c->message, sizeof(c->message), "store: already listening");
        return -1;
    }
    c->fn = fn;
    c->fn_arg = arg;
    /* The first connection before returning: what is published from now on is delivered. If
     * it fails, the thread keeps trying. */
    int down = 0;
    c->listen_conn = listen_connect(c, &down);
    c->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (c->stop_fd < 0)
        goto fail;
    int err = pthread_create(&c->thread, NULL, listen_main, c);
    if (err) {
        errno = err;
        close(c->stop_fd);
        goto fail;
    }
    c->listening = 1;
    return 0;
fail:
    c->reason = ST_R_OTHER;
    snprintf(c->message, sizeof(c->message), "store: cannot start the listener: %s",
             strerror(errno));
    c->stop_fd = -1;
    PQfinish(c->listen_conn);
    c->listen_conn = NULL;
    return -1;
}

/* ---- open and close ---- */

int pgc_open(struct pgc **out, const char *url, int *from, char *err, size_t errsz)
{
    struct pgc *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errsz, "store: out of memory");
        return -1;
    }
    c->stop_fd = -1;
    pthread_mutex_init(&c->ping_mu, NULL);
    pgc_label(url, c->label, sizeof(c->label));
    c->url = strdup(url);
    if (!c->url) {
        snprintf(err, errsz, "store: out of memory");
        goto fail;
    }
    if (pgc_url_check(url) < 0) {
        snprintf(err, errsz,
                 "store: the PostgreSQL URL cannot be parsed (libpq's reason is not shown: it may "
                 "quote the password)");
        goto fail;
    }
    c->conn = connect_url(url);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        char why[400];
        conn_why(url, c->conn, why, sizeof(why));
        snprintf(err, errsz, "store: %s: cannot connect: %s", c->label, why);
        goto fail;
    }
    connected(c);
    if (pgc_schema_migrate(c->conn, c->label, from, err, errsz) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    pgc_close(c);
    return -1;
}

void pgc_close(struct pgc *c)
{
    if (!c)
        return;
    if (c->listening) {
        uint64_t one = 1;
        ssize_t w = write(c->stop_fd, &one, sizeof(one));
        (void)w; /* an eventfd counter this low cannot overflow */
        pthread_join(c->thread, NULL);
        close(c->stop_fd);
    }
    pgc_free_all(c);
    PQfinish(c->conn);
    PQfinish(c->ping_conn);
    pthread_mutex_destroy(&c->ping_mu);
    if (c->url) {
        explicit_bzero(c->url, strlen(c->url));
        free(c->url);
    }
    free(c);
}

/* ---- the driver (store_drv.h): st_pg_driver's calls, on the store's connection ---- */

static struct pgc *pg_of(struct store *s)
{
    return s->conn;
}

static int drv_open(struct store *s, const char *where, int *from, char *err, size_t errsz)
{
    struct pgc *c = NULL;
    if (pgc_open(&c, where, from, err, errsz) < 0)
        return -1;
    s->conn = c;
    return 0;
}

static void drv_close(struct store *s)
{
    pgc_close(pg_of(s));
    s->conn = NULL;
}

static struct st_stmt *drv_prepare(struct store *s, const char *sql, int keep)
{
    return pgc_prepare(pg_of(s), sql, keep);
}

static void drv_finish(struct store *s, struct st_stmt *st)
{
    pgc_finish(pg_of(s), st);
}

static void drv_free_all(struct store *s)
{
    pgc_free_all(pg_of(s));
}

static int drv_step(struct store *s, struct st_stmt *st)
{
    return pgc_step(pg_of(s), st);
}

static int64_t drv_changes(struct store *s)
{
    return pgc_changes(pg_of(s));
}

static int64_t drv_total_changes(struct store *s)
{
    return pgc_total_changes(pg_of(s));
}

static int drv_exec(struct store *s, const char *sql)
{
    return pgc_exec(pg_of(s), sql);
}

static int drv_in_txn(struct store *s)
{
    return pgc_in_txn(pg_of(s));
}

static enum st_reason drv_reason(struct store *s)
{
    return pgc_reason(pg_of(s));
}

static const char *drv_message(struct store *s)
{
    return pgc_message(pg_of(s));
}

static int drv_ping(struct store *s)
{
    return pgc_ping_apart(pg_of(s));
}

static int drv_reaper_lock(struct store *s)
{
    return pgc_reaper_lock(pg_of(s));
}

static int drv_publish(struct store *s, const char *payload)
{
    return pgc_publish(pg_of(s), payload);
}

static int drv_listen(struct store *s, void (*fn)(void *arg, const char *payload), void *arg)
{
    return pgc_listen(pg_of(s), fn, arg);
}

/* PostgreSQL frees dead rows' space itself (autovacuum): nothing to do, nothing more. */
static int drv_vacuum(struct store *s, int max_pages, int checkpoint, int *more)
{
    (void)s;
    (void)max_pages;
    (void)checkpoint;
    *more = 0;
    return 0;
}

/* No WAL file of this process's to cut: PostgreSQL's WAL is the server's (docs/server.md). */
static int drv_secrets_checkpoint(struct store *s)
{
    (void)s;
    return 0;
}

static int64_t drv_used_bytes(struct store *s)
{
    return pgc_used_bytes(pg_of(s));
}

/* The database is on another machine, as far as the space probe knows. */
static const char *drv_fs_path(struct store *s)
{
    (void)s;
    return NULL;
}

static int drv_log_read(struct store *s, int64_t run_id, int64_t off, size_t skip, size_t want,
                        char *to, int (*sink)(void *arg, const void *p, size_t n), void *arg)
{
    return pgc_log_read(pg_of(s), run_id, off, skip, want, to, sink, arg);
}

const struct st_driver st_pg_driver = {
    .name = "postgres",
    .shared = 1,
    .open = drv_open,
    .close = drv_close,
    .prepare = drv_prepare,
    .finish = drv_finish,
    .free_all = drv_free_all,
    .bind_i64 = pgc_bind_i64,
    .bind_text = pgc_bind_text,
    .bind_blob = pgc_bind_blob,
    .bind_null = pgc_bind_null,
    .step = drv_step,
    .col_count = pgc_col_count,
    .col_name = pgc_col_name,
    .col_type = pgc_col_type,
    .col_i64 = pgc_col_i64,
    .col_double = pgc_col_double,
    .col_text = pgc_col_text,
    .col_blob = pgc_col_blob,
    .sql = pgc_sql,
    .changes = drv_changes,
    .total_changes = drv_total_changes,
    .exec = drv_exec,
    .in_txn = drv_in_txn,
    .reason = drv_reason,
    .message = drv_message,
    .ping = drv_ping,
    .reaper_lock = drv_reaper_lock,
    .publish = drv_publish,
    .listen = drv_listen,
    .vacuum = drv_vacuum,
    .secrets_checkpoint = drv_secrets_checkpoint,
    .used_bytes = drv_used_bytes,
    .fs_path = drv_fs_path,
    .log_read = drv_log_read,
    .claim_lock = " FOR UPDATE SKIP LOCKED",
    .begin = "BEGIN",
    .row_lock = " FOR UPDATE",
};
