/*
 * store_pg: the PostgreSQL connection under st_pg_driver (store_drv.h), over libpq. A struct
 * pgc is one store's connection: its kept prepared statements, its last failure, and the
 * listener thread with its own connection (store_listen). The driver table (store_pg.c) hands
 * every call to these functions; they are declared here so that the schema's file
 * (store_pg_schema.c) and the driver's unit test (tests/server/test_store_pg.c) reach them
 * without a store. Not for use outside the store.
 *
 * Ownership: pgc_open gives a connection that pgc_close frees (with every statement, kept or
 * not, that the caller has finished). Statements are owned by their connection.
 * Errors: int calls give 0 on success, -1 on failure, then told by pgc_reason/pgc_message.
 * A connection is used by one thread at a time (the store's lock); the listener has its own.
 */
#ifndef DAVIT_SERVER_STORE_PG_H
#define DAVIT_SERVER_STORE_PG_H

#include "server/store_drv.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct pgc;

/*
 * Connects to url (postgres:// or postgresql://, or any libpq connection string), applies the
 * schema's migrations under an advisory lock (store_pg_schema.c) and gives the connection.
 * *from: the version found (0 for a new database). -1 with err (one line, naming the database
 * without its password) on failure, also for a database newer than this build.
 */
int pgc_open(struct pgc **out, const char *url, int *from, char *err, size_t errsz);
/* Stops the listener, frees every statement, closes. NULL is fine. */
void pgc_close(struct pgc *c);

/* The st_driver calls of the same names (store_drv.h), on connection c. */
struct st_stmt *pgc_prepare(struct pgc *c, const char *sql, int keep);
void pgc_finish(struct pgc *c, struct st_stmt *st);
void pgc_free_all(struct pgc *c);
void pgc_bind_i64(struct st_stmt *st, int i, int64_t v);
void pgc_bind_text(struct st_stmt *st, int i, const char *v);
void pgc_bind_blob(struct st_stmt *st, int i, const void *p, size_t n);
void pgc_bind_null(struct st_stmt *st, int i);
int pgc_step(struct pgc *c, struct st_stmt *st);
int pgc_col_count(struct st_stmt *st);
const char *pgc_col_name(struct st_stmt *st, int i);
enum st_type pgc_col_type(struct st_stmt *st, int i);
int64_t pgc_col_i64(struct st_stmt *st, int i);
double pgc_col_double(struct st_stmt *st, int i);
const char *pgc_col_text(struct st_stmt *st, int i);
const void *pgc_col_blob(struct st_stmt *st, int i, size_t *n);
const char *pgc_sql(struct st_stmt *st);
int64_t pgc_changes(struct pgc *c);
int64_t pgc_total_changes(struct pgc *c);
int pgc_exec(struct pgc *c, const char *sql);
int pgc_in_txn(struct pgc *c);
enum st_reason pgc_reason(struct pgc *c);
const char *pgc_message(struct pgc *c);
int pgc_ping(struct pgc *c);
/*
 * Like pgc_ping, on a connection of its own (made at the first call, again after a failure),
 * so that it never waits behind the store's lock or the store connection's statements: any
 * thread, without the store's lock. 0 or -1.
 */
int pgc_ping_apart(struct pgc *c);
int pgc_reaper_lock(struct pgc *c);
int pgc_publish(struct pgc *c, const char *payload);
int pgc_listen(struct pgc *c, void (*fn)(void *arg, const char *payload), void *arg);
int64_t pgc_used_bytes(struct pgc *c);
int pgc_log_read(struct pgc *c, int64_t run_id, int64_t off, size_t skip, size_t want, char *to,
                 int (*sink)(void *arg, const void *p, size_t n), void *arg);

/*
 * The store's SQL in PostgreSQL's placeholders: ?N becomes $N, and a bare ? takes the largest
 * number so far plus one (SQLite's rule); nothing inside quotes changes. *nparams gets the
 * largest number. A new string (free it), or NULL when out of memory or a number is above
 * 65535.
 */
char *pgc_rewrite(const char *sql, int *nparams);

/*
 * The database's name for messages and logs: postgresql://USER@HOST:PORT/DB, without the
 * password or any other option. Fits into out (one line); "PostgreSQL" when url cannot be
 * parsed.
 */
void pgc_label(const char *url, char *out, size_t outsz);

/*
 * Whether libpq can parse url (PQconninfoParse): 0, or -1. libpq's reason is not given: it
 * quotes the token it refused, which may be (part of) the password.
 */
int pgc_url_check(const char *url);

/*
 * Applies the PostgreSQL schema's migrations that conn's database lacks (the numbering of
 * store_schema.c, STORE_SCHEMA_VERSION), under a session advisory lock so that servers that
 * start together take turns. label names the database in err. *from: the version found.
 */
int pgc_schema_migrate(PGconn *conn, const char *label, int *from, char *err, size_t errsz);

/* The advisory lock keys: the migrations' (session) and the lease reaper's (transaction). */
#define PGC_LOCK_MIGRATE 0x6461766974010000LL
#define PGC_LOCK_REAPER  0x6461766974020000LL

#endif
