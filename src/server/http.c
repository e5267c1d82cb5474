/*
 * The HTTP layer: libmicrohttpd with its own polling threads (a small pool,
 * epoll), routing, body limits, authentication and the per-request log line.
 *
 * Internal polling threads rather than an external select loop: long-polls
 * and log follows are suspended connections that cost no thread, and the
 * handlers are short store operations, so a couple of threads serve many
 * launchers without an event loop of our own.
 */
#include "server/api.h"

#include "common/log.h"
#include "common/crypto.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

static const struct route routes[] = {
    {"GET", "/healthz", AUTH_NONE, 0, h_healthz},
    {"GET", "/metrics", AUTH_NONE, 0, h_metrics},
    {"POST", "/api/v1/pools", AUTH_ADMIN, BODY_CAP_DEFAULT, h_pool_create},
    {"GET", "/api/v1/pools", AUTH_ADMIN, 0, h_pool_list},
    {"GET", "/api/v1/pools/*", AUTH_ADMIN, 0, h_pool_show},
    {"DELETE", "/api/v1/pools/*", AUTH_ADMIN, 0, h_pool_delete},
    {"POST", "/api/v1/pools/*/reset", AUTH_ADMIN, BODY_CAP_DEFAULT, h_pool_reset},
    {"POST", "/api/v1/pools/*/cycle", AUTH_ADMIN, BODY_CAP_DEFAULT, h_pool_cycle},
    {"POST", "/api/v1/runs", AUTH_ADMIN, BODY_CAP_DEFAULT, h_run_submit},
    {"GET", "/api/v1/runs", AUTH_ADMIN, 0, h_run_list},
    {"GET", "/api/v1/runs/*", AUTH_ADMIN, 0, h_run_show},
    {"DELETE", "/api/v1/runs/*", AUTH_ADMIN, 0, h_run_delete},
    {"POST", "/api/v1/runs/*/cancel", AUTH_ADMIN, BODY_CAP_DEFAULT, h_run_cancel},
    {"GET", "/api/v1/runs/*/logs", AUTH_ADMIN, 0, h_run_logs},
    {"GET", "/api/v1/workers", AUTH_ADMIN, 0, h_worker_list},
    {"POST", "/api/v1/workers/*/drain", AUTH_ADMIN, BODY_CAP_DEFAULT, h_worker_drain},
    {"POST", "/api/v1/workers/*/undrain", AUTH_ADMIN, BODY_CAP_DEFAULT, h_worker_undrain},
    {"POST", "/api/v1/releases", AUTH_ADMIN, BODY_CAP_RELEASE, h_release_publish},
    {"GET", "/api/v1/releases", AUTH_ADMIN, 0, h_release_list},
    {"GET", "/api/v1/releases/latest", AUTH_NONE, 0, h_release_latest},
    {"GET", "/api/v1/releases/*/download", AUTH_NONE, 0, h_release_download},
    /* Open to anyone: small bodies only, so that strangers cannot pin memory. */
    {"POST", "/api/v1/launcher/challenge", AUTH_NONE, BODY_CAP_SMALL, h_launcher_challenge},
    {"POST", "/api/v1/launcher/register", AUTH_NONE, BODY_CAP_SMALL, h_launcher_register},
    {"POST", "/api/v1/launcher/poll", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_poll},
    {"POST", "/api/v1/launcher/heartbeat", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_heartbeat},
    {"POST", "/api/v1/launcher/runs/*/events", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_event},
    {"PUT", "/api/v1/launcher/runs/*/log", AUTH_SESSION, BODY_CAP_LOG, h_launcher_log},
};

/* How much of an oversized chunked body is read and dropped before closing. */
#define DROP_LIMIT (64 * 1024 * 1024)

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Matches path against pattern, capturing '*' segments. 1 on a match. */
static int route_match(const char *pattern, const char *path, struct req *r)
{
    int nargs = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p == '*') {
            const char *end = strchr(u, '/');
            size_t n = end ? (size_t)(end - u) : strlen(u);
            if (n == 0 || n >= sizeof(r->args[0]) || nargs >= REQ_MAX_ARGS)
                return 0;
            memcpy(r->args[nargs], u, n);
            r->args[nargs++][n] = '\0';
            u += n;
            p++;
            continue;
        }
        if (*p != *u)
            return 0;
        p++;
        u++;
    }
    return *p == '\0' && *u == '\0';
}

int reply_json(struct req *r, unsigned status, json_t *body)
{
    r->status = status;
    json_decref(r->json);
    r->json = body ? body : json_pack("{s:s}", "error", "out of memory");
    return HANDLER_DONE;
}

int reply_error(struct req *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages may quote what a client sent (a path, a name); JSON needs
     * UTF-8, so anything else is replaced by '?' rather than lost. */
    json_t *text = json_string(msg);
    if (!text) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        text = json_string(msg);
    }
    return reply_json(r, status, text ? json_pack("{s:o}", "error", text) : NULL);
}

int reply_store_error(struct req *r, int rc, const char *what)
{
    /* Callers that kept only STORE_ERR: the store remembers the cause. */
    if (rc == STORE_ERR && store_failed_for_space())
        rc = STORE_NOSPACE;
    switch (rc) {
    case STORE_NOSPACE:
        /* 507: a launcher keeps its spool and retries (any 5xx), and logs
         * this sentence, which names the cause. */
        return reply_error(r, 507,
                           "%s: " STORE_NOSPACE_TEXT " (no space left on the data"
                           " directory's filesystem); try again later",
                           what);
    case STORE_NOTFOUND:
        return reply_error(r, 404, "%s not found", what);
    case STORE_CONFLICT:
        return reply_error(r, 409, "%s: conflicts with its current state", what);
    case STORE_FORBIDDEN:
        return reply_error(r, 403, "%s belongs to another pool or launcher", what);
    default:
        return reply_error(r, 500, "%s: internal error (see the server's log)", what);
    }
}

json_t *req_json(struct req *r)
{
    json_error_t jerr;
    /* Duplicate keys are refused, as runspec_parse() does: two "secrets"
     * must not silently become the last one. */
    json_t *obj =
        json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        /* jansson's text may quote the body ("near 'x'"): cut that off. */
        char *near = strstr(jerr.text, " near ");
        if (near)
            *near = '\0';
        reply_error(r, 400, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        reply_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return obj;
}

int req_no_fields(struct req *r)
{
    if (!r->body.len)
        return 0;
    json_t *obj = req_json(r);
    int bad = !obj || req_unpack(r, obj, "{}") < 0;
    json_decref(obj);
    return bad ? -1 : 0;
}

int req_unpack(struct req *r, json_t *obj, const char *fmt, ...)
{
    json_error_t jerr;
    va_list ap;
    va_start(ap, fmt);
    int rc = json_vunpack_ex(obj, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        /* "N object item(s) left unpacked: KEY" names a key the client made
         * up: keep the sentence, not the key. */
        char *left = strstr(jerr.text, " left unpacked");
        if (left)
            left[sizeof(" left unpacked") - 1] = '\0';
        reply_error(r, 400, "invalid request: %s%s%s", jerr.text, *jerr.source ? " at " : "",
                    jerr.source);
        return -1;
    }
    return 0;
}

const char *req_query(struct req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int req_id(struct req *r, int i, int64_t *id)
{
    char *end;
    long long v = strtoll(r->args[i], &end, 10);
    if (*end || v <= 0 || r->args[i][0] == '+' || r->args[i][0] == '0') {
        reply_error(r, 404, "the id in the path is not a positive integer");
        return -1;
    }
    *id = v;
    return 0;
}

static const char *bearer(struct req *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    return h + 7;
}

/* Checks the credentials the route needs; replies 401 when they are wrong. */
static int authenticate(struct req *r)
{
    if (r->route->auth == AUTH_NONE)
        return 0;
    const char *tok = bearer(r);
    if (!tok) {
        reply_error(r, 401, "missing credentials: send Authorization: Bearer <token>");
        return -1;
    }
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(tok, strlen(tok), hash);
    if (r->route->auth == AUTH_ADMIN) {
        if (!crypto_str_equal(hash, r->srv->admin_hash)) {
            reply_error(r, 401, "invalid API token");
            return -1;
        }
        return 0;
    }
    int rc = store_session_auth(r->srv->store, hash, &r->sess);
    /* The lease renewal is a write: on a full disk the session is still
     * checked, so that the request reaches its handler and fails (507) for
     * the run it is about, which then shows it is waiting. */
    if (rc == STORE_ERR && store_failed_for_space())
        rc = store_session_check(r->srv->store, hash, &r->sess);
    if (rc == STORE_NOTFOUND) {
        reply_error(r, 401, "session unknown or expired: register again");
        return -1;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "session");
        return -1;
    }
    return 0;
}

static enum MHD_Result queue_reply(struct req *r)
{
    struct MHD_Response *resp = r->resp;
    if (!resp) {
        char *text = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
        if (!text) {
            r->status = 500;
            text = strdup("{\"error\":\"out of memory\"}");
            if (!text)
                return MHD_NO;
        }
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL: the body is not a C string */
        resp = MHD_create_response_from_buffer(n + 1, text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
    }
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    r->resp = NULL;
    r->queued = 1;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct server *srv = cls;
    struct req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->srv = srv;
        r->conn = conn;
        r->start_us = now_us();
        r->waiter.conn = conn;
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->path, sizeof(r->path), "%s", url);
        int path_ok = 0;
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            if (route_match(routes[i].pattern, url, r)) {
                path_ok = 1;
                if (strcmp(routes[i].method, method) == 0) {
                    r->route = &routes[i];
                    break;
                }
            }
        }
        if (!r->route) {
            /* Neither the method nor the path is echoed: errors never carry
             * what a client sent. */
            if (path_ok)
                reply_error(r, 405, "this method is not allowed on this endpoint");
            else
                reply_error(r, 404, "no such endpoint");
            return queue_reply(r);
        }
        dbuf_init(&r->body, r->route->body_cap);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > r->route->body_cap) {
            /* Refused before a byte of the body is read; the connection closes. */
            reply_error(r, 413, "the request body is larger than the %zu bytes allowed",
                        r->route->body_cap);
            return queue_reply(r);
        }
        if (authenticate(r) < 0)
            return queue_reply(r);
        return MHD_YES;
    }
    if (r->queued) {
        *upload_size = 0; /* a refused request's body is dropped */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!r->too_large && dbuf_add(&r->body, upload, n) == 0)
            return MHD_YES;
        /* Over the cap without a Content-Length (chunked). libmicrohttpd cannot
         * answer before the body ends, so the rest is dropped, up to a limit
         * after which the connection is simply closed. */
        r->too_large = 1;
        r->dropped += n;
        return r->dropped > DROP_LIMIT ? MHD_NO : MHD_YES;
    }
    if (r->too_large) {
        reply_error(r, 413, "request body larger than the %zu bytes allowed", r->route->body_cap);
        return queue_reply(r);
    }
    r->calls++;
    if (r->route->fn(r) == HANDLER_SUSPENDED)
        return MHD_YES;
    return queue_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *srv = cls;
    struct req *r = *con_cls;
    if (!r)
        return;
    dispatch_forget(srv->disp, &r->waiter);
    char status[8], ms[24];
    snprintf(status, sizeof(status), "%u", r->status);
    snprintf(ms, sizeof(ms), "%.1f", (double)(now_us() - r->start_us) / 1000.0);
    log_event(LOG_INFO, "request", "method", r->method, "path", r->path, "status", status, "ms", ms,
              "end", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "aborted", NULL);
    pthread_mutex_lock(&srv->metrics.mu);
    srv->metrics.requests++;
    pthread_mutex_unlock(&srv->metrics.mu);
    logs_follow_free(r->follow);
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->json);
    /* A run's body holds its secrets: leave nothing of them in freed memory. */
    if (r->body.data)
        explicit_bzero(r->body.data, r->body.alloc);
    dbuf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages: fmt is its printf format. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_event(LOG_WARN, "http", "reason", msg, NULL);
}

/* Resolves host:port into addr; only numeric hosts and "localhost". */
static int resolve(const char *host, int port, struct sockaddr_storage *addr, socklen_t *len,
                   int *loopback)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(*host ? host : NULL, portstr, &hints, &res) != 0 || !res)
        return -1;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (res->ai_family == AF_INET)
        *loopback = (ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    else if (res->ai_family == AF_INET6)
        *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr);
    else
        *loopback = 0;
    freeaddrinfo(res);
    return 0;
}

int http_start(struct server *srv, char *err, size_t errsz)
{
    struct server_config *c = &srv->cfg;
    struct sockaddr_storage addr;
    socklen_t alen;
    int loopback = 0;
    if (resolve(c->host, c->port, &addr, &alen, &loopback) < 0) {
        snprintf(err, errsz, "--listen %s: cannot resolve the address", c->listen);
        return -1;
    }
    if (!c->tls_cert && !loopback && !c->insecure_http) {
        snprintf(err, errsz,
                 "--listen %s: plain HTTP is allowed only on loopback; give --tls-cert and"
                 " --tls-key, or --insecure-http",
                 c->listen);
        return -1;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (c->tls_cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, c->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, c->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)c->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(256 * 1024), MHD_OPTION_ARRAY, c->tls_cert ? tls_opts : &tls_opts[2],
        MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errsz, "--listen %s: cannot start the HTTP server (address in use?)",
                 c->listen);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (info)
        c->port = info->port;
    return 0;
}

void http_stop(struct server *srv)
{
    if (!srv->mhd)
        return;
    /* Requests that dispatch_shutdown() resumed still have to write their
     * answer (503 to a waiting poll); give them a moment before the stop
     * closes every connection. No new connection is accepted meanwhile. */
    MHD_socket listener = MHD_quiesce_daemon(srv->mhd);
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    MHD_stop_daemon(srv->mhd);
    /* A quiesced daemon hands its listening socket to the caller. */
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    srv->mhd = NULL;
}
