/*
 * request: one HTTP request as a handler sees it, and the helpers that
 * read it and answer it. The HTTP layer (http.c) owns the struct req: it
 * makes it when the request arrives, fills the route, arguments, body and
 * who sent it (auth.c), and frees it with everything in it when the request ends.
 *
 * A handler runs on a libmicrohttpd thread with the whole request body in
 * r->body. It answers by calling one of the reply_* helpers, which set the
 * status and the JSON body, or by setting r->resp and r->status itself (a
 * download, a stream); or it returns HANDLER_SUSPENDED after parking the
 * connection in dispatch (long-poll), and is then called again when resumed.
 *
 * State a handler allocates for the life of the request (a log follower)
 * is handed to req_on_end(), which frees it when the request ends.
 */
#ifndef DAVIT_SERVER_REQUEST_H
#define DAVIT_SERVER_REQUEST_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "server/auth.h"
#include "server/dispatch.h"
#include "server/store.h"
#include "server/watch.h"

struct route;
struct server;

#define HANDLER_DONE      0
#define HANDLER_SUSPENDED 1

/* How much of a body a route reads (struct route's body_cap). */
#define BODY_CAP_SMALL   (64 * 1024) /* unauthenticated: challenge, register */
#define BODY_CAP_DEFAULT (1024 * 1024)
#define BODY_CAP_LOG     (8 * 1024 * 1024)
#define BODY_CAP_RELEASE (64 * 1024 * 1024)

#define REQ_MAX_ARGS 4   /* '*' segments in a route's pattern */
#define REQ_ARG_MAX  128 /* bytes of one segment, with its NUL */

struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    const struct route *route;
    char method[16];
    char path[256];
    char args[REQ_MAX_ARGS][REQ_ARG_MAX]; /* the '*' segments of the route */
    struct dbuf body;
    int too_large;
    size_t dropped; /* bytes of an oversized body read and thrown away */
    int64_t start_us;
    struct store_session sess; /* AUTH_SESSION: the launcher */
    struct auth_principal who; /* AUTH_VIEWER..AUTH_COOKIE: the token or browser session */
    unsigned status;
    json_t *json;              /* the reply, or NULL when resp is set */
    struct MHD_Response *resp; /* a non-JSON reply (download, log stream) */
    int queued;                /* the reply was handed to libmicrohttpd */
    /* long-poll and log follow */
    struct waiter waiter;
    int calls;    /* how many times the handler ran */
    int64_t ack;  /* poll: messages up to this id were received */
    int draining; /* poll: the launcher is stopping and takes no runs */
    /* req_on_end(): called once when the request ends */
    void (*end_fn)(void *arg);
    void *end_arg;
    /* GET /api/v1/watch (watch.c) */
    struct watcher watcher;
};

/* Replies with status and body (takes the reference). Returns HANDLER_DONE. */
int reply_json(struct req *r, unsigned status, json_t *body);
/* {"error": "..."} with status. Returns HANDLER_DONE. */
int reply_error(struct req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a store result to 404/409/403/500 with a message naming what. */
int reply_store_error(struct req *r, int rc, const char *what);

/* Parses the body as a JSON object; replies 400 and returns NULL on failure.
 * The caller owns the object. */
json_t *req_json(struct req *r);
/* json_unpack_ex in strict mode; replies 400 naming the problem and returns -1. */
int req_unpack(struct req *r, json_t *obj, const char *fmt, ...);

/*
 * The same two without a request, for the endpoints' pure body parsers
 * (api_*_parse_*, which the fuzz targets call too): req_parse_json returns
 * the object (caller owns it) or NULL; req_unpack_msg returns 0 or -1. On
 * failure err holds one line that quotes nothing of the body.
 */
json_t *req_parse_json(const char *data, size_t len, char *err, size_t errsz);
int req_unpack_msg(json_t *obj, char *err, size_t errsz, const char *fmt, ...);
/* For endpoints that take no fields: an empty body or {} is 0; anything
 * else is answered 400 and gives -1. */
int req_no_fields(struct req *r);
/* A query-string argument, or NULL. Owned by libmicrohttpd, valid for the request. */
const char *req_query(struct req *r, const char *key);
/* Parses args[i] as a positive id; replies 404 and returns -1 when it is not one. */
int req_id(struct req *r, int i, int64_t *id);

/*
 * Has fn(arg) called once when the request ends, completed or aborted, to
 * free what the handler allocated for it (arg may be NULL). One hook per
 * request: a second call replaces the first, which is then not called.
 * Never fails.
 */
void req_on_end(struct req *r, void (*fn)(void *arg), void *arg);

#endif
