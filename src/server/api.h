/*
 * api: what the HTTP layer (http.c) and the resource handlers (api_*.c)
 * share: the server's state, one request, and the response helpers.
 *
 * A handler runs on a libmicrohttpd thread with the whole request body in
 * r->body. It answers by calling one of the reply_* helpers, which set the
 * status and the JSON body, or returns HANDLER_SUSPENDED after parking the
 * connection in dispatch (long-poll); it is then called again when resumed.
 */
#ifndef DAVIT_SERVER_API_H
#define DAVIT_SERVER_API_H

#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "server/dispatch.h"
#include "server/store.h"

struct server_config {
    char data_dir[PATH_MAX];
    char listen[300];
    char host[256];
    int port;
    char public_url[512];
    char tls_pin[64];         /* pin of --tls-cert's key, put in pool tokens; "" without TLS */
    char *tls_cert, *tls_key; /* PEM contents, or NULL for plain HTTP */
    int insecure_http;
    int threads;
    int64_t lease_ms;       /* a launcher is gone after this long without a request */
    int64_t grace_ms;       /* then its started runs are lost after this much more */
    int64_t session_ttl_ms; /* a launcher session lives this long */
    int64_t challenge_ttl_ms;
    int64_t poll_max_ms; /* the longest a poll waits */
    int64_t max_log_bytes;
    int64_t retention_max_age_ms;    /* ended runs older than this are deleted; 0: never */
    int64_t retention_max_log_bytes; /* logs of all runs above this: oldest go; 0: no cap */
};

#define METRICS_BUCKETS 14

/* Dispatch latency: queued (or requeued) until a launcher's poll claims it. */
struct metrics {
    pthread_mutex_t mu;
    uint64_t buckets[METRICS_BUCKETS]; /* cumulative counts are built at render time */
    uint64_t count;
    double sum_s;
    uint64_t requests;
};

struct server {
    struct server_config cfg;
    struct store *store;
    struct dispatch *disp;
    struct MHD_Daemon *mhd;
    struct metrics metrics;
    char *release_key_pem; /* Ed25519 private key */
    char *release_pub_pem;
    char admin_hash[72];
    char releases_dir[PATH_MAX + 16];
    struct sweeper *sweeper; /* retention and space reclaim (server.c) */
};

enum auth_kind { AUTH_NONE, AUTH_ADMIN, AUTH_SESSION };

#define HANDLER_DONE      0
#define HANDLER_SUSPENDED 1

#define BODY_CAP_SMALL   (64 * 1024) /* unauthenticated: challenge, register */
#define BODY_CAP_DEFAULT (1024 * 1024)
#define BODY_CAP_LOG     (8 * 1024 * 1024)
#define BODY_CAP_RELEASE (64 * 1024 * 1024)
/* Idle launchers each hold a long-poll open: thousands of them are normal. */
#define HTTP_MAX_CONNECTIONS 16384

struct req;
typedef int (*handler_fn)(struct req *r);

struct route {
    const char *method;
    const char *pattern; /* "/api/v1/runs/ * /cancel" with '*' segments */
    enum auth_kind auth;
    size_t body_cap;
    handler_fn fn;
};

#define REQ_MAX_ARGS 4

struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    const struct route *route;
    char method[16];
    char path[256];
    char args[REQ_MAX_ARGS][128]; /* the '*' segments of the route */
    struct dbuf body;
    int too_large;
    size_t dropped; /* bytes of an oversized body read and thrown away */
    int64_t start_us;
    struct store_session sess; /* AUTH_SESSION */
    unsigned status;
    json_t *json;              /* the reply, or NULL when resp is set */
    struct MHD_Response *resp; /* a non-JSON reply (download, log stream) */
    int queued;                /* the reply was handed to libmicrohttpd */
    /* long-poll and log follow */
    struct waiter waiter;
    int calls;    /* how many times the handler ran */
    int64_t ack;  /* poll: messages up to this id were received */
    int draining; /* poll: the launcher is stopping and takes no runs */
    void *follow; /* log follow state (api_logs.c) */
};

/* Replies with status and body (takes the reference). Returns HANDLER_DONE. */
int reply_json(struct req *r, unsigned status, json_t *body);
/* {"error": "..."} with status. Returns HANDLER_DONE. */
int reply_error(struct req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a store result to 404/409/403/500 with a message naming what. */
int reply_store_error(struct req *r, int rc, const char *what);

/* Parses the body as a JSON object; replies 400 and returns NULL on failure. */
json_t *req_json(struct req *r);
/* json_unpack_ex in strict mode; replies 400 naming the problem and returns -1. */
int req_unpack(struct req *r, json_t *obj, const char *fmt, ...);
/* For endpoints that take no fields: an empty body or {} is 0; anything
 * else is answered 400 and gives -1. */
int req_no_fields(struct req *r);
/* A query-string argument, or NULL. */
const char *req_query(struct req *r, const char *key);
/* Parses args[i] as a positive id; replies 404 and returns -1 when it is not one. */
int req_id(struct req *r, int i, int64_t *id);

/* Handlers (api_pools.c, api_runs.c, api_launcher.c, api_misc.c, api_logs.c). */
int h_pool_create(struct req *r);
int h_pool_list(struct req *r);
int h_pool_show(struct req *r);
int h_pool_delete(struct req *r);
int h_pool_reset(struct req *r);
int h_pool_cycle(struct req *r);
int h_run_submit(struct req *r);
int h_run_list(struct req *r);
int h_run_show(struct req *r);
int h_run_cancel(struct req *r);
int h_run_delete(struct req *r);
int h_run_logs(struct req *r);
int h_launcher_challenge(struct req *r);
int h_launcher_register(struct req *r);
int h_launcher_poll(struct req *r);
int h_launcher_heartbeat(struct req *r);
int h_launcher_event(struct req *r);
int h_launcher_log(struct req *r);
int h_worker_list(struct req *r);
int h_worker_drain(struct req *r);
int h_worker_undrain(struct req *r);
int h_release_publish(struct req *r);
int h_release_list(struct req *r);
int h_release_latest(struct req *r);
int h_release_download(struct req *r);
int h_healthz(struct req *r);
int h_metrics(struct req *r);

/* Frees the follow state of a log stream (api_logs.c). NULL is fine. */
void logs_follow_free(void *follow);

/* Records one dispatch latency (metrics.c). */
void metrics_observe_dispatch(struct metrics *m, int64_t ms);
void metrics_init(struct metrics *m);
void metrics_destroy(struct metrics *m);
/* Renders the in-memory metrics in Prometheus text format. */
int metrics_render(struct metrics *m, struct dbuf *out);

/* The pool token (docs/protocol.md): base64 of JSON. Caller frees. */
char *pool_token_make(struct server *srv, const char *pool_id, const char *secret);
/*
 * Decodes a pool token into pool_id (40 bytes) and secret (128 bytes), and,
 * when endpoint is not NULL, the endpoint URL (512 bytes). -1 with err.
 */
int pool_token_parse(const char *token, char *pool_id, char *secret, char *endpoint, char *err,
                     size_t errsz);

/*
 * Stores a release file, signs it with the release key and records it
 * (api_misc.c). kind "worker" or "launcher", arch "amd64" or "arm64".
 * -1 with err; -2 with err when the data directory's filesystem is full.
 */
int release_publish(struct server *srv, const char *kind, const char *arch, const char *version,
                    const void *data, size_t len, struct store_release *out, char *err,
                    size_t errsz);
/* The text a release signature covers (docs/protocol.md). Caller frees. */
char *release_signed_text(const char *kind, const char *arch, const char *version,
                          const char *sha256);

/* fsyncs the directory that holds path, so that a rename into it is
 * durable (server.c). Returns 0, or -1 with errno. */
int sync_dir_of(const char *path);

/* Asks the retention sweep (server.c) to run now, e.g. to free a deleted
 * run's log. Never blocks on the sweep; NULL sweeper is fine. */
void sweep_kick(struct server *srv);

/* Starts, runs and stops the HTTP daemon (http.c). */
int http_start(struct server *srv, char *err, size_t errsz);
void http_stop(struct server *srv);

#endif
