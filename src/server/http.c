/*
 * The HTTP layer: libmicrohttpd with its own polling threads (a small pool,
 * epoll), routing, body limits, authentication and the per-request log line.
 *
 * Internal polling threads rather than an external select loop: long-polls
 * and log follows are suspended connections that cost no thread, and the
 * handlers are short store operations, so a couple of threads serve many
 * launchers without an event loop of our own.
 */
#include "server/http.h"

#include "server/auth.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/routes.h"
#include "server/state.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/crypto.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

/* libmicrohttpd's messages logged per second at most. It writes one for
 * every connection refused over a limit, so a flood of connections would
 * otherwise become a flood of log lines, and fill the disk in turn. */
#define HTTP_MHD_LOG_PER_S 10

/*
 * libmicrohttpd's memory per connection: the request's headers, its read
 * buffer and the answer's headers. Sized for a long-poll, since thousands of
 * launchers each hold one: a poll's request and answer headers take under
 * 1 KiB. libmicrohttpd zeroes what a request used when the next one starts
 * on a kept-alive connection, so every byte of this becomes resident after
 * the first answered poll (at 256 KiB, 269 KiB of RSS per idle launcher).
 * Bodies do not live here: the handler copies each piece libmicrohttpd has
 * read into the request's own heap buffer (r->body), so a log chunk of
 * 8 MiB or a release of 64 MiB is read a few KiB at a time. A chunked answer
 * (a log that is still growing, a text log) is sent a few KiB at a time too; a
 * finished raw log is sent from its own larger buffer (api_logs.c). Request
 * headers up to about 9.5 KB are taken (10 KB is answered 431): four times
 * what a browser with its cookie sends, and an 8 KB line as nginx passes it.
 * Per idle TLS long-poll (2,000 launchers): 26.1 KB of RSS at 12 KiB, 24.1 KB
 * at 10 KiB, 22.1 KB at 8 KiB, which takes headers up to 7 KB only (issue 11's
 * goal: 10,000 idle launchers in 250 MB, docs/benchmarks.md).
 */
#define HTTP_CONN_MEMORY (10 * 1024)

/* How much of an oversized chunked body is read and dropped before closing. */
#define DROP_LIMIT (64 * 1024 * 1024)

/* How often the header deadline is checked: a connection is closed at most
 * this long after its deadline. */
#define HEADER_CHECK_MS 250

/*
 * One connection's header clock (its libmicrohttpd socket context). It runs
 * from the connection's start, or from the end of the request before it on a
 * kept-alive connection, until libmicrohttpd has the complete header (the
 * first call of on_request); a TLS handshake is header time too. A waiting
 * long-poll is past its header: it is not on the clock.
 */
struct conn_clock {
    struct conn_clock *prev, *next; /* on the FIFO while the clock runs */
    int on;
    MHD_socket fd;
    int64_t since_ms;
};

/*
 * --header-deadline: libmicrohttpd's own timeout restarts with every byte,
 * so a client trickling a header byte a second would hold its connection
 * for ever. Running clocks are kept in start order: the deadline is the same
 * for all, so the oldest is the first due and a check costs only what it
 * closes. A thread closes what is due by shutting its socket down, which
 * libmicrohttpd's own thread then sees as the client's end and cleans up:
 * libmicrohttpd has no call to close a connection from another thread.
 */
struct http_deadlines {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct conn_clock *head, *tail;
    int64_t limit_ms;
    int stop;
    pthread_t thread;
};

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Called with the lock held. */
static void clock_stop(struct http_deadlines *hd, struct conn_clock *c)
{
    if (!c->on)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        hd->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        hd->tail = c->prev;
    c->prev = c->next = NULL;
    c->on = 0;
}

/* (Re)starts c's clock at now: it joins the end of the FIFO. */
static void clock_start(struct http_deadlines *hd, struct conn_clock *c)
{
    pthread_mutex_lock(&hd->mu);
    clock_stop(hd, c);
    c->since_ms = clock_mono_ms();
    c->prev = hd->tail;
    if (hd->tail)
        hd->tail->next = c;
    else
        hd->head = c;
    hd->tail = c;
    c->on = 1;
    pthread_mutex_unlock(&hd->mu);
}

static struct conn_clock *conn_clock_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd's connection start and end: the header clock's life. It
 * tells the end before it closes the socket, so a socket on the FIFO is
 * always still this connection's. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_deadlines *hd = cls;
    struct conn_clock *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof(*c));
        if (!c || !ci) {
            free(c); /* unwatched: the idle timeout still applies */
            return;
        }
        c->fd = ci->connect_fd;
        *socket_context = c;
        clock_start(hd, c);
        return;
    }
    if (!c)
        return;
    pthread_mutex_lock(&hd->mu);
    clock_stop(hd, c);
    pthread_mutex_unlock(&hd->mu);
    free(c);
    *socket_context = NULL;
}

static void *deadline_main(void *arg)
{
    struct http_deadlines *hd = arg;
    pthread_mutex_lock(&hd->mu);
    while (!hd->stop) {
        struct timespec ts = clock_mono_timespec(clock_mono_ms() + HEADER_CHECK_MS);
        pthread_cond_timedwait(&hd->cond, &hd->mu, &ts);
        int64_t now = clock_mono_ms();
        unsigned closed = 0;
        while (hd->head && hd->head->since_ms + hd->limit_ms <= now) {
            struct conn_clock *c = hd->head;
            clock_stop(hd, c);
            shutdown(c->fd, SHUT_RDWR);
            closed++;
        }
        if (closed) { /* logged without the lock every connection's start takes */
            pthread_mutex_unlock(&hd->mu);
            char n[16];
            snprintf(n, sizeof(n), "%u", closed);
            log_event(LOG_WARN,
                      "connections closed: no complete request header within --header-deadline",
                      "count", n, NULL);
            pthread_mutex_lock(&hd->mu);
        }
    }
    pthread_mutex_unlock(&hd->mu);
    return NULL;
}

/* Starts the deadline's thread; NULL when out of memory or threads. */
static struct http_deadlines *deadlines_new(int64_t limit_ms)
{
    struct http_deadlines *hd = calloc(1, sizeof(*hd));
    if (!hd)
        return NULL;
    pthread_mutex_init(&hd->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hd->cond, &ca);
    pthread_condattr_destroy(&ca);
    hd->limit_ms = limit_ms;
    if (pthread_create(&hd->thread, NULL, deadline_main, hd) != 0) {
        pthread_cond_destroy(&hd->cond);
        pthread_mutex_destroy(&hd->mu);
        free(hd);
        return NULL;
    }
    return hd;
}

/* After the daemon: it told every connection's end, so no clock is left. */
static void deadlines_free(struct http_deadlines *hd)
{
    if (!hd)
        return;
    pthread_mutex_lock(&hd->mu);
    hd->stop = 1;
    pthread_cond_signal(&hd->cond);
    pthread_mutex_unlock(&hd->mu);
    pthread_join(hd->thread, NULL);
    pthread_cond_destroy(&hd->cond);
    pthread_mutex_destroy(&hd->mu);
    free(hd);
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
        struct conn_clock *c = conn_clock_of(conn);
        if (c) { /* the header is complete */
            pthread_mutex_lock(&srv->mhd_deadlines->mu);
            clock_stop(srv->mhd_deadlines, c);
            pthread_mutex_unlock(&srv->mhd_deadlines->mu);
        }
        r->start_us = now_us();
        r->waiter.conn = conn;
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->path, sizeof(r->path), "%s", url);
        int path_ok;
        r->route = route_find(method, url, r->args, &path_ok);
        if (!r->route) {
            /* Neither the method nor the path is echoed: errors never carry
             * what a client sent. */
            if (path_ok)
                reply_error(r, 405, "this method is not allowed on this endpoint");
            else
                reply_error(r, 404, "no such endpoint");
            return queue_reply(r);
        }
        dbuf_init_secret(&r->body, r->route->body_cap); /* a run's body holds its secrets */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > r->route->body_cap) {
            /* Refused before a byte of the body is read; the connection closes. */
            reply_error(r, 413, "the request body is larger than the %zu bytes allowed",
                        r->route->body_cap);
            return queue_reply(r);
        }
        if (auth_request(r) < 0)
            return queue_reply(r);
        /* One allocation for a body of known length (an 8 MiB log chunk):
         * growing a buffer for secrets copies and wipes at every step. Only
         * for an authenticated route, so a stranger cannot make it allocate
         * what it does not send. A failure here is not one: the body then
         * grows as it comes. */
        if (cl && r->route->auth != AUTH_NONE)
            (void)dbuf_reserve(&r->body, (size_t)strtoull(cl, NULL, 10));
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
    /* The next request's header on a kept-alive connection: a new clock.
     * A closing connection's is stopped again when libmicrohttpd tells its end. */
    struct conn_clock *c = conn_clock_of(conn);
    if (c)
        clock_start(srv->mhd_deadlines, c);
    char status[8], ms[24];
    snprintf(status, sizeof(status), "%u", r->status);
    snprintf(ms, sizeof(ms), "%.1f", (double)(now_us() - r->start_us) / 1000.0);
    /* "by": the API token (its name) or browser session that made it, for an audit trail. */
    log_event(LOG_INFO, "request", "method", r->method, "path", r->path, "status", status, "ms", ms,
              "by", r->who.role != AUTH_ROLE_NONE ? r->who.name : NULL, "end",
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "aborted", NULL);
    metrics_count_request(srv->metrics);
    if (r->end_fn)
        r->end_fn(r->end_arg);
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->json);
    dbuf_free(&r->body); /* wiped: a buffer for secrets */
    free(r);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages: fmt is its printf format. At most
 * HTTP_MHD_LOG_PER_S a second; the number left out is told with the first
 * message of a later second. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    unsigned long long dropped;
    int show = log_gate_pass(cls, clock_mono_ms(), 1000, HTTP_MHD_LOG_PER_S, &dropped);
    if (dropped) {
        char n[24];
        snprintf(n, sizeof(n), "%llu", dropped);
        log_event(LOG_WARN, "http: libmicrohttpd messages left out", "count", n, NULL);
    }
    if (!show)
        return;
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
    srv->mhd_log = malloc(sizeof(*srv->mhd_log));
    if (!srv->mhd_log) {
        snprintf(err, errsz, "--listen %s: out of memory", c->listen);
        return -1;
    }
    *srv->mhd_log = (struct log_gate)LOG_GATE_INIT;
    srv->mhd_deadlines = deadlines_new(c->header_deadline_ms);
    if (!srv->mhd_deadlines) {
        snprintf(err, errsz, "--listen %s: out of memory or threads", c->listen);
        return -1;
    }
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv->mhd_log,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)c->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv->mhd_deadlines,
        /* An idle timeout: a client stalled mid-header (or mid-body, or not
         * reading its answer) is closed. A waiting long-poll or log follow
         * is a suspended connection, which libmicrohttpd takes off the
         * clock and puts back with a fresh one when it resumes. */
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)((c->header_timeout_ms + 999) / 1000),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)c->max_connections_per_address,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, MHD_OPTION_ARRAY,
        c->tls_cert ? tls_opts : &tls_opts[2], MHD_OPTION_END);
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

/* After the daemon: its threads log through the gate until they stop. */
static void free_log_gate(struct server *srv)
{
    deadlines_free(srv->mhd_deadlines);
    srv->mhd_deadlines = NULL;
    if (!srv->mhd_log)
        return;
    pthread_mutex_destroy(&srv->mhd_log->mu);
    free(srv->mhd_log);
    srv->mhd_log = NULL;
}

void http_stop(struct server *srv)
{
    if (!srv->mhd) {
        free_log_gate(srv);
        return;
    }
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
    free_log_gate(srv);
}
