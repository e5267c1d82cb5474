/*
 * store: the control plane's state on SQLite, as a set of operations.
 *
 * Every write operation returns only after the commit that holds it, on a
 * database in WAL mode with synchronous=FULL, so that anything the server
 * acknowledged survives a crash of the process or the machine; concurrent
 * writes share one commit (group commit, docs/hacking.md "The store"). The
 * store owns one connection guarded by a mutex: operations are short, and one
 * connection keeps the SQLite version free of SQLITE_BUSY handling. A
 * launcher's liveness (lease renewal) is kept in memory, not written. The
 * operations are what a PostgreSQL store would implement with FOR UPDATE
 * SKIP LOCKED and LISTEN/NOTIFY (docs/server.md).
 *
 * Results: STORE_OK (0) on success, STORE_ERR (-1) when the database failed
 * (logged), STORE_NOSPACE when it failed because its filesystem is full, or
 * one of the negative codes below that handlers map to HTTP statuses. Read operations that return
 * JSON hand the caller a new reference. Thread-safe.
 */
#ifndef DAVIT_SERVER_STORE_H
#define DAVIT_SERVER_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"

enum {
    STORE_OK = 0,
    STORE_ERR = -1,       /* the database failed */
    STORE_NOTFOUND = -2,  /* no such pool, run, worker, release, challenge or session */
    STORE_CONFLICT = -3,  /* the state does not allow it (name taken, run ended, active runs) */
    STORE_FORBIDDEN = -4, /* the caller may not touch this object */
    STORE_GAP = -5,       /* a log chunk starts after the end of the stored log */
    STORE_FULL = -6,      /* the run's log reached its cap */
    STORE_NOSPACE = -7,   /* the database failed: its filesystem is full (logged) */
    STORE_ENDED = -8,     /* the run has ended: its log takes no new bytes */
};

struct store;

/* The schema version this build writes: the number of its last migration
 * (store_schema.c). */
#define STORE_SCHEMA_VERSION 8

/*
 * Opens (creating if needed) the database at path and applies the schema's
 * migrations it lacks. STORE_ERR with err filled (one line) on failure, also
 * when the database's schema is newer than STORE_SCHEMA_VERSION.
 */
int store_open(struct store **out, const char *path, char *err, size_t errsz);
/*
 * What store_open does to the database, alone (for `davit server migrate`):
 * applies the migrations, then closes it. *from gets the version found (0
 * for a new database). Same errors as store_open.
 */
int store_migrate(const char *path, int *from, char *err, size_t errsz);
/*
 * Where the store lives: store_open's path is a SQLite file, or a postgres:// or postgresql://
 * URL for PostgreSQL (several servers may then share it). store_kind gives "sqlite" or
 * "postgres". store_ping: STORE_OK when the database answers now, STORE_ERR otherwise (/healthz).
 */
const char *store_kind(struct store *s);
int store_ping(struct store *s);
/*
 * Wake-ups between servers that share a database (PostgreSQL; on SQLite both do nothing and
 * return STORE_OK). A payload is at most STORE_WAKE_MAX bytes of ids, never content:
 *   "r:POOL_ID:N"  N runs of the pool were queued or requeued
 *   "p:POOL_ID"    every launcher of the pool has a message (cycle, reset), or the pool changed
 *   "l:ID"         launcher ID has a message
 *   "u:RUN_ID"     run RUN_ID changed (its log grew, it ended)
 *   "w:POOL_ID"    what the pool's live view shows changed (the UI's change feed, watch.h)
 *   "w"            what any pool's view shows may have changed (a run canceled or deleted)
 *   "a"            anything may have changed (lease expiry)
 * store_publish sends one to the other servers (after the commit of what it announces);
 * store_listen starts a thread that calls fn for each payload another server published, and
 * about once a second with the re-check payloads ("r:" for each pool with queued runs, "l:" for
 * each launcher with messages waiting) that cover a lost notification. fn runs on that thread.
 * Both STORE_ERR on failure (logged); a listener that loses its connection reconnects.
 */
#define STORE_WAKE_MAX 128
int store_publish(struct store *s, const char *payload);
int store_listen(struct store *s, void (*fn)(void *arg, const char *payload), void *arg);
/* Closes the database. NULL is fine. */
void store_close(struct store *s);

/* Wall-clock milliseconds since the epoch. Never fails. */
int64_t store_now_ms(void);

/*
 * 1 when the last store operation run by the calling thread failed because
 * the database's filesystem is full, else 0. For callers that only kept
 * STORE_ERR (reply_store_error maps it to 507). Never fails.
 */
int store_failed_for_space(void);
/*
 * 1 when the last store operation run by the calling thread failed because
 * the database could not be reached or written safely (a lost connection to
 * PostgreSQL, an I/O error, a failed sync), else 0. reply_store_error maps
 * STORE_ERR to 503 then. Never fails.
 */
int store_failed_unavailable(void);
/*
 * Health of the store's writes: 0 when fine, or 1 while the last write
 * failed for lack of space (until a write that changes something commits);
 * *reason then gets a sentence naming the cause. Never fails.
 */
int store_degraded(struct store *s, const char **reason);
/*
 * While degraded: when the database's filesystem has min_free bytes free,
 * writes a small row, which ends the degraded state if it succeeds. A tiny
 * write alone could pass in the WAL's slack on a disk still full. Does
 * nothing otherwise; never fails (a failed write is logged and counted).
 */
void store_space_probe(struct store *s, int64_t min_free);
/* The sentence for a full store, used by replies and /healthz. */
#define STORE_NOSPACE_TEXT "the server's storage is full"
/* Prometheus counters of database failures by reason, appended to out (store_metrics.c). */
int store_errors_render(struct store *s, struct dbuf *out);

/* Key/value settings. get returns STORE_OK with *val (caller frees) or STORE_NOTFOUND. */
int store_meta_get(struct store *s, const char *key, char **val);
int store_meta_set(struct store *s, const char *key, const char *val);

/* Sizes of a pool id ("pool-" and 16 hex digits) and of a run's state, with their NUL. */
#define STORE_POOL_ID_SIZE 40
#define STORE_STATE_SIZE   32

/* ---- pools (store_pools.c) ---- */

struct store_pool {
    char id[STORE_POOL_ID_SIZE];
    char name[72];
    char keytype[16];
    char secret_hash[72];
    char *pubkey_pem; /* owned; free with store_pool_clear */
};
void store_pool_clear(struct store_pool *p);

/* Creates a pool with a fresh id (written into p->id). STORE_CONFLICT if the name is taken. */
int store_pool_create(struct store *s, struct store_pool *p);
/* Looks a pool up by name (by_id 0) or id (by_id 1). */
int store_pool_get(struct store *s, const char *key, int by_id, struct store_pool *out);
int store_pool_list_json(struct store *s, json_t **out);
int store_pool_show_json(struct store *s, const char *name, json_t **out);
/* STORE_CONFLICT while the pool has runs that have not ended. */
int store_pool_delete(struct store *s, const char *name);
/*
 * Replaces the pool's key and secret. Every launcher of the pool is revoked
 * and gets an "exit" message.
 */
/*
 * After a reset: fails the pool's queued runs whose secrets are sealed to a key other than key_id
 * (the new key's fingerprint), with that reason. Their ids go to ids (up to max; *n of them).
 */
int store_runs_fail_resealed(struct store *s, const char *pool_id, const char *key_id, int64_t *ids,
                             size_t max, size_t *n);
int store_pool_reset(struct store *s, const char *name, const char *pubkey_pem, const char *keytype,
                     const char *secret_hash, char *pool_id_out);
/* Sends "cycle" to every live launcher of the pool. *count gets how many. */
int store_pool_cycle(struct store *s, const char *name, int64_t deadline_ms, char *pool_id_out,
                     int *count);

/* ---- worker releases (store_releases.c) ---- */

struct store_release {
    int64_t id;
    char kind[16];
    char arch[16];
    char version[72];
    char sha256[72];
    char signature[128];
    int64_t size;
};
int store_release_add(struct store *s, struct store_release *r);
/* The most recently published release of kind for arch. */
int store_release_latest(struct store *s, const char *kind, const char *arch,
                         struct store_release *out);
int store_release_get(struct store *s, int64_t id, struct store_release *out);
int store_release_list_json(struct store *s, json_t **out);
/* The JSON object a launcher gets for a release (download path included). NULL on OOM. */
json_t *store_release_json(const struct store_release *r);

/* ---- runs, events and logs (store_runs.c) ---- */

/*
 * spec_json: the spec without secrets; secrets_json: an object, or NULL. The spec's run_nonce
 * and sealed.key_id are kept in columns; STORE_CONFLICT when another run has that run_nonce.
 */
int store_run_create(struct store *s, const char *pool_id, const char *spec_json,
                     const char *secrets_json, int64_t *id);
struct store_claims;
/*
 * store_run_create, and in the same transaction (one durable commit) the oldest queued run of
 * the pool claimed for launcher_id when it may take one now (store_poll's checks, bar its own
 * drain): *claimed lists it, with its "run" message queued for the launcher. launcher_id 0
 * claims nothing. The caller reserved that launcher's sleeping poll (dispatch_reserve).
 */
int store_run_create_claim(struct store *s, const char *pool_id, const char *spec_json,
                           const char *secrets_json, int64_t launcher_id, int64_t *id,
                           struct store_claims *claimed);
int store_run_show_json(struct store *s, int64_t id, json_t **out);
/*
 * Filters may be NULL; before is 0 for none, else only runs with a smaller
 * id. Newest first (id descending), at most limit runs into *out (an array);
 * *next gets the id to pass as before for the next page, or 0 when this page
 * is the last.
 */
int store_run_list_json(struct store *s, const char *pool_name, const char *state, int limit,
                        int64_t before, json_t **out, int64_t *next);
/*
 * Deletes an ended run and everything stored for it. Its log chunks are
 * queued and freed by store_purge_logs() in small batches (the run is gone
 * at once). STORE_NOTFOUND, or STORE_CONFLICT while the run has not ended.
 */
int store_run_delete(struct store *s, int64_t id);
/*
 * Cancels a run: a queued run ends as canceled at once (*ended 1); a run on
 * a launcher gets a "cancel" message (*launcher set). STORE_CONFLICT once ended.
 */
int store_run_cancel(struct store *s, int64_t id, int *ended, int64_t *launcher);
/*
 * When a run's secrets were deleted (its end) since the last call, checkpoints the WAL with
 * TRUNCATE: secure_delete clears them from the database's pages, but the WAL file still holds
 * the pages written before, secrets included, until it is cut. STORE_OK when there was nothing
 * to do; on failure the next call tries again. The retention sweep calls it.
 */
int store_secrets_checkpoint(struct store *s);

/* What a launcher reports about a run (docs/protocol.md, "Run events"). */
struct store_event {
    int64_t seq;
    const char *type;    /* "preparing", "running", "result" */
    const char *phase;   /* running: the phase, may be NULL */
    const char *outcome; /* result: finished, failed, canceled, timed_out */
    const char *reason;  /* result: free text, may be NULL */
    int64_t exit_code;   /* result: -1 when none */
};
/* *state_out (32 bytes) gets the run's state afterwards. */
int store_run_event(struct store *s, int64_t launcher_id, int64_t run_id,
                    const struct store_event *ev, char *state_out);

/*
 * Appends spool bytes at offset. Bytes the store already holds are
 * acknowledged and not stored again. STORE_GAP when offset is past the end.
 * STORE_ENDED when the run's result is stored and the chunk holds bytes the
 * store does not: a log is final once its run has ended (a launcher ships
 * its spool before it reports the result). *next_offset always gets the
 * stored length.
 */
int store_log_append(struct store *s, int64_t launcher_id, int64_t run_id, int64_t offset,
                     const void *data, size_t len, int64_t max_bytes, int64_t *next_offset);
/*
 * Appends stored spool bytes from offset onwards (at most max) to out, and
 * reports the run's total log length and whether the run has ended.
 */
int store_log_read(struct store *s, int64_t run_id, int64_t offset, size_t max, struct dbuf *out,
                   int64_t *total, int *ended, char *state_out);
/*
 * The same into the caller's buf (max bytes, no copy on the way): *got gets
 * how many (0 on an error).
 */
int store_log_read_into(struct store *s, int64_t run_id, int64_t offset, char *buf, size_t max,
                        size_t *got, int64_t *total, int *ended);

/* ---- retention (store_retention.c) ---- */

/*
 * Deletes at most max runs that ended before cutoff_ms (their logs are
 * queued for store_purge_logs). *deleted gets how many. One transaction.
 */
int store_expire_runs(struct store *s, int64_t cutoff_ms, int max, int *deleted);
/* The most logs one store_trim_logs() deletes: their ids are held on the
 * stack for one transaction; the sweep's batches are smaller. */
/*
 * A log is stored as rows of at most STORE_LOG_ROW_MAX bytes, whatever the size
 * of the upload: a reader at any offset then reads at most one row's worth it
 * does not need (an 8 MiB row was loaded whole for every piece served).
 */
#define STORE_LOG_ROW_MAX (256 * 1024)

#define STORE_TRIM_MAX 64
/*
 * While the logs of all runs hold more than max_total bytes, deletes the
 * logs of the runs that ended first (the runs stay, with log_deleted_at
 * set), at most max (<= STORE_TRIM_MAX) of them. *trimmed gets how many. One transaction.
 */
int store_trim_logs(struct store *s, int64_t max_total, int max, int *trimmed);
/*
 * Frees at most max log chunks of deleted runs and logs; *freed gets how
 * many (max: some may remain). One transaction.
 */
int store_purge_logs(struct store *s, int max, int *freed);
/*
 * Gives at most max_pages free pages back to the filesystem (incremental
 * vacuum); *more is 1 while free pages remain. With checkpoint set it then
 * checkpoints and truncates the WAL, so that the files shrink now.
 */
int store_vacuum(struct store *s, int max_pages, int checkpoint, int *more);
/* The bytes of davit.db that hold data (pages in use), for the sweep's log. */
int64_t store_used_bytes(struct store *s);

/* ---- launchers and sessions (store_launch.c) ---- */

struct store_launcher_info {
    const char *hostname, *version, *arch, *metadata_json;
    int64_t capacity;
    int64_t reuse_id; /* 0, or the id of this launcher before a restart */
    int ephemeral;    /* one run only: store_poll claims no second (a restart keeps that) */
};
int store_launcher_register(struct store *s, const char *pool_id,
                            const struct store_launcher_info *info, const char *session_hash,
                            int64_t session_expires_ms, int64_t *launcher_id);
/*
 * store_launcher_register that also uses up the registration challenge challenge_id
 * (challenges.h), recorded in the same transaction until challenge_expires_ms. Its second use,
 * through any server sharing the store: STORE_CONFLICT, and nothing is registered.
 */
int store_launcher_register_challenge(struct store *s, const char *pool_id,
                                      const struct store_launcher_info *info,
                                      const char *challenge_id, int64_t challenge_expires_ms,
                                      const char *session_hash, int64_t session_expires_ms,
                                      int64_t *launcher_id);

struct store_session {
    int64_t launcher_id;
    char pool_id[STORE_POOL_ID_SIZE];
    int revoked; /* the pool was reset: the launcher must exit */
};
/* STORE_NOTFOUND for an unknown or expired session. Renews the launcher's lease, in memory
 * (nothing is written; a restart counts every launcher as seen at the start). */
int store_session_auth(struct store *s, const char *session_hash, struct store_session *out);

int store_launcher_list_json(struct store *s, const char *pool_name, int64_t lease_ms,
                             json_t **out);
/*
 * Drain (on 1) or undrain (on 0), queueing the message. *pool_id_out (STORE_POOL_ID_SIZE bytes) for
 * notify. *state gets the worker's state after the change, as one worker of
 * store_pool_scaling_json ({id, state, idle_since, runs, metadata}; caller owns), NULL on error.
 */
int store_launcher_drain(struct store *s, int64_t id, int on, char *pool_id_out, json_t **state);

/* ---- scaling (store_scaling.c) ---- */

/*
 * A pool's scaling state: {pending, demand (pending + the runs of busy workers), busy, idle,
 * draining, drained, workers: [{id, state
 * (idle|busy|draining|drained), idle_since, runs, metadata}]} (docs/server.md, "Scaling").
 * Workers silent for lease_ms that hold no runs are gone. *out is the caller's.
 * STORE_NOTFOUND for an unknown pool.
 */
int store_pool_scaling_json(struct store *s, const char *name, int64_t lease_ms, json_t **out);

/*
 * A launcher that exits gracefully (its last poll says "exiting"): its
 * sessions, messages and row are deleted at once, so it is no longer listed
 * and a restart with the same state directory registers as a new worker.
 * A launcher that still holds runs is kept (*gone = 0). STORE_ERR on failure.
 */
int store_launcher_exit(struct store *s, int64_t id, int *gone);

/* ---- dispatch and lease expiry (store_dispatch.c) ---- */

#define STORE_CLAIMS_MAX 64 /* a launcher's capacity is at most this */

/* The runs one poll claimed, with their time from queued to claimed. */
struct store_claims {
    int n;
    int64_t run_id[STORE_CLAIMS_MAX];
    int64_t dispatch_ms[STORE_CLAIMS_MAX];
    int room; /* after the claims, the launcher may take another run (dispatch hands it runs) */
};

/*
 * One poll: deletes messages up to ack, then returns the pending ones; when
 * the launcher may take runs, claims the oldest queued runs of its pool
 * (FIFO) up to its free capacity. *messages gets an array (caller owns);
 * *claimed lists the runs claimed by this very poll (others in *messages
 * are being sent again).
 * A launcher that says it is stopping (draining) claims nothing and gives
 * back the runs it was assigned but never started;
 * *requeued counts them (the caller wakes the pool's other launchers).
 */
int store_poll(struct store *s, int64_t launcher_id, int64_t ack, int draining, json_t **messages,
               struct store_claims *claimed, int *requeued);

/* The run ids a reap reports, for its log line; the counts go on past it. */
#define STORE_REAP_IDS 32

struct store_reap {
    int requeued;                         /* assigned runs back in the queue */
    int lost;                             /* started runs given up */
    int64_t requeued_ids[STORE_REAP_IDS]; /* the first of them, for the log */
    int64_t lost_ids[STORE_REAP_IDS];
};
/*
 * Lease expiry: runs assigned to launchers silent for lease_ms go back to
 * the queue (or end as canceled if a cancel was asked); started runs of
 * launchers silent for lease_ms + grace_ms become lost. Silent: by the
 * last-seen times kept in memory, a launcher not seen since the store
 * opened counting as seen at the open. On a shared database (PostgreSQL) the
 * times are the ones written by every server, and every launcher counts as
 * seen when the database last came back for this server (its start, or the end
 * of a lost connection) at least, so that a downtime never expires a live
 * launcher. Also forgets expired sessions, and copies last-seen times an hour
 * stale to the database (every few seconds when shared).
 */
int store_reap(struct store *s, int64_t lease_ms, int64_t grace_ms, struct store_reap *r);

/* ---- API tokens and browser sessions (store_tokens.c) ---- */

/* A token's name, and a role ("viewer", "operator", "admin"), with their NUL. */
#define STORE_TOKEN_NAME_SIZE 64
#define STORE_ROLE_SIZE       16

/* Who a credential belongs to: a named token, or the admin token of the first start. */
struct store_principal {
    char name[STORE_TOKEN_NAME_SIZE];
    char role[STORE_ROLE_SIZE];
};

/* Stores a named token by its hash. STORE_CONFLICT when the name is taken. */
int store_token_create(struct store *s, const char *name, const char *role, const char *token_hash);
/* {name, role, created_at, last_used_at} by name; never a hash. */
int store_token_list_json(struct store *s, json_t **out);
/* Deletes the token and every browser session opened with it, in one transaction.
 * STORE_NOTFOUND when there is no such token. */
int store_token_revoke(struct store *s, const char *name);
/*
 * The token whose sha256 is token_hash. STORE_NOTFOUND when none. Records
 * the use when the last one recorded is older than touch_ms (a write at most
 * that often per token; its failure is logged, not returned).
 */
int store_token_auth(struct store *s, const char *token_hash, int64_t touch_ms,
                     struct store_principal *out);

/* A browser session as its check sees it. */
struct store_web_session {
    struct store_principal who;
    char csrf[128];
};
/*
 * Stores a session by the sha256 of its id, opened with the token whose
 * sha256 is token_hash. It expires idle_ms after its last use, and max_ms
 * after its creation at the latest.
 */
int store_web_session_create(struct store *s, const char *id_hash, const char *token_hash,
                             const char *csrf, int64_t idle_ms, int64_t max_ms);
/*
 * The live session whose id hashes to id_hash: not expired, and its token
 * not revoked (admin_hash: the first-start admin token, which is not in
 * api_tokens; its sessions are the admin's). STORE_NOTFOUND otherwise.
 * Moves the idle expiry on when the last use recorded is older than touch_ms.
 */
int store_web_session_auth(struct store *s, const char *id_hash, const char *admin_hash,
                           int64_t idle_ms, int64_t max_ms, int64_t touch_ms,
                           struct store_web_session *out);
/* Deletes one session (sign-out). STORE_NOTFOUND when it was gone already. */
int store_web_session_delete(struct store *s, const char *id_hash);
/* Deletes the expired sessions (the background sweep); *deleted gets how many. */
int store_web_sessions_expire(struct store *s, int *deleted);

/* Prometheus gauges from the database, appended to out (store_metrics.c).
 * Holds the store's lock only to copy the rows out: O(pools x states) for
 * the runs, O(launchers seen within the lease) for the workers. */
int store_metrics(struct store *s, int64_t lease_ms, struct dbuf *out);
/* Builds the runs' counts the gauges read (one scan of runs); store_metrics
 * does it on its first call otherwise. Call once after store_open. */
int store_metrics_prepare(struct store *s);

/* ---- what servers sharing a store agree on (store_challenges.c, store_blobs.c) ---- */

/*
 * Stores val under key unless key has a value already (another server's, stored first), then
 * reads it: *stored gets the value the store holds now (caller frees; wipe it for a secret).
 * STORE_OK, or STORE_ERR.
 */
int store_meta_put_new(struct store *s, const char *key, const char *val, char **stored);
/* Deletes the used challenges whose expiry is before now_ms (the background sweep); *deleted
 * gets how many. */
int store_challenge_uses_expire(struct store *s, int64_t now_ms, int *deleted);
/*
 * A release's file in the store, by the sha256 hex of its bytes: put keeps one already stored
 * (the same bytes); get gives a copy in *data (caller frees), STORE_NOTFOUND when the store has
 * none (a release published before migration 8 on another server's disk). Only a store that
 * servers share keeps files: elsewhere (SQLite) put keeps nothing (STORE_OK) and get gives
 * STORE_NOTFOUND; the data directory's releases/ is the one copy there.
 */
int store_release_blob_put(struct store *s, const char *sha256, const void *data, size_t len);
int store_release_blob_get(struct store *s, const char *sha256, void **data, size_t *len);

#endif
