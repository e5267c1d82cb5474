/* The launcher's metrics listener (metrics_http.h). */
#include "launcher/metrics_http.h"

#include "common/log.h"
#include "launcher/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for every metric's text (about 1.5 KiB today). */
#define METRICS_TEXT_MAX 8192

struct metrics_http {
    struct MHD_Daemon *mhd;
    int fd;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *ctype,
                             const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    (void)con_cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (*upload_size) { /* a body is never wanted: dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, 405, text, "only GET\n", 9);
    if (strcmp(url, "/healthz") == 0) {
        if (metrics_healthy())
            return reply(conn, 200, text, "ok\n", 3);
        return reply(conn, 503, text, "not registered, or not polling the server\n", 42);
    }
    if (strcmp(url, "/metrics") == 0) {
        char buf[METRICS_TEXT_MAX];
        int n = metrics_render(buf, sizeof(buf));
        if (n < 0)
            return reply(conn, 500, text, "metrics too large\n", 18);
        return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", buf, (size_t)n);
    }
    return reply(conn, 404, text, "not found: /metrics or /healthz\n", 32);
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Splits "host:port" / "[v6]:port" and binds a listening socket. Returns the fd, or -1. */
static int bind_listen(const char *addr, int allow_any, char *err, size_t errsz)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host))
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(end - addr - 1), addr + 1);
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host) || strchr(addr, ':') != colon)
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        port = colon + 1;
    }
    if (!host[0] || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535)
        goto bad;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errsz, "DAVIT_METRICS_LISTEN: %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    if (!allow_any && !is_loopback(ai->ai_addr)) {
        snprintf(err, errsz,
                 "DAVIT_METRICS_LISTEN: %s is not a loopback address; set "
                 "DAVIT_METRICS_LISTEN_ANY=1 to serve the metrics there",
                 host);
        goto out;
    }
    int one = 1;
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errsz, "DAVIT_METRICS_LISTEN: %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
out:
    freeaddrinfo(ai);
    return fd;
bad:
    snprintf(err, errsz, "DAVIT_METRICS_LISTEN: expected host:port or [v6]:port: \"%.64s\"", addr);
    return -1;
}

/* Logs the address in use (a port 0 is the kernel's pick). */
static void log_address(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    int port;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(addr, sizeof(addr), "[%s]:%d", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(addr, sizeof(addr), "%s:%d", host, port);
    }
    log_event(LOG_INFO, "serving /metrics and /healthz", "address", addr, (const char *)NULL);
}

int metrics_http_start(const char *listen, int allow_any, struct metrics_http **out, char *err,
                       size_t errsz)
{
    *out = NULL;
    struct metrics_http *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errsz, "DAVIT_METRICS_LISTEN: out of memory");
        return -1;
    }
    m->fd = bind_listen(listen, allow_any, err, errsz);
    if (m->fd < 0) {
        free(m);
        return -1;
    }
    /* The socket is ours, so that a port 0 can be read back; MHD serves it. */
    m->mhd =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, on_request,
                         NULL, MHD_OPTION_LISTEN_SOCKET, m->fd, MHD_OPTION_CONNECTION_LIMIT, 16u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->mhd) {
        /* Not closed here: whether a failed start closed it is MHD's; the launcher exits. */
        snprintf(err, errsz, "DAVIT_METRICS_LISTEN: %s: cannot start the listener", listen);
        free(m);
        return -1;
    }
    log_address(m->fd);
    *out = m;
    return 0;
}

void metrics_http_stop(struct metrics_http *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->mhd); /* closes the listening socket too */
    free(m);
}
