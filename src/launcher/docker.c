#include "launcher/docker.h"

#include "common/clock.h"

#include "common/dbuf.h"
#include "common/log.h"
#include "common/secure.h"
#include "launcher/curl_cloexec.h"
#include "launcher/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The newest API version whose requests this client has been checked against. */
#define API_MAX_MAJOR 1
#define API_MAX_MINOR 47
#define API_MIN_MINOR 41

#define RESPONSE_CAP  (16u << 20) /* inspect and list answers */
#define PULL_LINE_CAP (1u << 20)  /* one line of the pull's progress stream */
#define WAIT_ARM_MS   (5 * 60 * 1000)

struct docker {
    CURL *curl;
    char *host;      /* DOCKER_HOST as given */
    char *sock_path; /* unix socket, or NULL for tcp */
    char base[300];  /* "http://localhost", "https://host:2376" */
    char api[16];    /* "1.41" once pinged */
    int tls;
    char cert_dir[4096];
    int64_t timeout_ms;
    int debug;
    int (*abort_fn)(void *);
    void *abort_arg;
};

struct docker_wait {
    struct docker *d;
    CURLM *multi;
    CURL *easy;
    struct dbuf resp;
    char url[512];
};

int docker_open(struct docker **out, const char *host, int64_t timeout_ms, int debug, char *err,
                size_t errsz)
{
    struct docker *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errsz, "docker: out of memory");
        return -1;
    }
    d->timeout_ms = timeout_ms;
    d->debug = debug;
    snprintf(d->api, sizeof(d->api), "%s", DOCKER_API_MIN);
    d->host = strdup(host);
    if (!d->host)
        goto oom;
    if (strncmp(host, "unix://", 7) == 0) {
        if (host[7] != '/') {
            snprintf(err, errsz, "DOCKER_HOST: expected unix:///absolute/path: \"%s\"", host);
            goto fail;
        }
        d->sock_path = strdup(host + 7);
        if (!d->sock_path)
            goto oom;
        snprintf(d->base, sizeof(d->base), "http://localhost");
    } else if (strncmp(host, "tcp://", 6) == 0) {
        const char *hp = host + 6;
        size_t n = strcspn(hp, "/");
        const char *tls = getenv("DOCKER_TLS_VERIFY");
        d->tls = tls && *tls && strcmp(tls, "0") != 0;
        if (n == 0 || n > 255 || hp[n] != '\0') {
            snprintf(err, errsz, "DOCKER_HOST: expected tcp://host[:port]: \"%s\"", host);
            goto fail;
        }
        /* Docker's defaults: 2375 in the clear, 2376 with TLS. */
        int has_port = memchr(hp, ':', n) && hp[0] != '[';
        if (hp[0] == '[')
            has_port = strstr(hp, "]:") != NULL;
        snprintf(d->base, sizeof(d->base), "%s://%.*s%s", d->tls ? "https" : "http", (int)n, hp,
                 has_port ? "" : (d->tls ? ":2376" : ":2375"));
        if (d->tls) {
            const char *cp = getenv("DOCKER_CERT_PATH");
            const char *home = getenv("HOME");
            if (cp && *cp)
                snprintf(d->cert_dir, sizeof(d->cert_dir), "%s", cp);
            else
                snprintf(d->cert_dir, sizeof(d->cert_dir), "%s/.docker", home ? home : "");
        }
    } else {
        snprintf(err, errsz,
                 "DOCKER_HOST: unsupported (expected unix:///path or tcp://host:port): "
                 "\"%s\"",
                 host);
        goto fail;
    }
    d->curl = curl_easy_init();
    if (!d->curl)
        goto oom;
    *out = d;
    return 0;

oom:
    snprintf(err, errsz, "docker: out of memory");
fail:
    docker_close(d);
    return -1;
}

void docker_close(struct docker *d)
{
    if (!d)
        return;
    if (d->curl)
        curl_easy_cleanup(d->curl);
    free(d->host);
    free(d->sock_path);
    free(d);
}

const char *docker_host(const struct docker *d)
{
    return d->host;
}

const char *docker_api_version(const struct docker *d)
{
    return d->api;
}

void docker_set_abort(struct docker *d, int (*fn)(void *), void *arg)
{
    d->abort_fn = fn;
    d->abort_arg = arg;
}

static size_t write_dbuf(char *p, size_t size, size_t n, void *arg)
{
    struct dbuf *b = arg;
    return dbuf_add(b, p, size * n) < 0 ? 0 : size * n;
}

static int progress_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct docker *d = arg;
    return d->abort_fn && d->abort_fn(d->abort_arg) ? 1 : 0;
}

/* The options every request needs, on a fresh or reset handle. */
static void setup_handle(struct docker *d, CURL *h, const char *url, int64_t timeout_ms)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_cloexec(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 10000 ? timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, d->tls ? "https" : "http");
    if (d->sock_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock_path);
    if (d->tls) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/ca.pem", d->cert_dir);
        curl_easy_setopt(h, CURLOPT_CAINFO, path);
        snprintf(path, sizeof(path), "%s/cert.pem", d->cert_dir);
        curl_easy_setopt(h, CURLOPT_SSLCERT, path);
        snprintf(path, sizeof(path), "%s/key.pem", d->cert_dir);
        curl_easy_setopt(h, CURLOPT_SSLKEY, path);
    }
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

/* The Engine's "message" from an error body, or the body itself, on one line. */
static void engine_message(const struct dbuf *body, char *out, size_t size)
{
    json_t *j = json_loadb(dbuf_str(body), body->len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (!m)
        m = dbuf_str(body);
    snprintf(out, size, "%s", *m ? m : "(no message)");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(out);
    while (n && out[n - 1] == ' ')
        out[--n] = '\0';
    json_decref(j);
}

/* Describes a failed transfer: what curl says, the OS error, and the Engine's address. */
static void transport_error(struct docker *d, CURL *h, CURLcode rc, const char *what, char *err,
                            size_t errsz)
{
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        snprintf(err, errsz, "docker: %s: interrupted", what);
    else if (rc == CURLE_COULDNT_CONNECT)
        snprintf(err, errsz, "docker: %s: cannot connect to the Docker Engine at %s: %s%s%s%s",
                 what, d->host, curl_easy_strerror(rc), os_errno ? " (" : "",
                 os_errno ? strerror((int)os_errno) : "", os_errno ? ")" : "");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(err, errsz, "docker: %s: no answer from %s in time", what, d->host);
    else
        snprintf(err, errsz, "docker: %s: %s (%s)%s%s", what, curl_easy_strerror(rc), d->host,
                 os_errno ? ": " : "", os_errno ? strerror((int)os_errno) : "");
}

struct request {
    const char *method;
    const char *path;             /* after the version prefix; starts with '/' */
    int unversioned;              /* /_ping and /version */
    const char *body;             /* JSON, or NULL */
    const char *auth;             /* X-Registry-Auth, or NULL */
    int64_t timeout_ms;           /* 0: the client's default */
    const char *what;             /* for messages: "create container davit-42" */
    curl_write_callback write_fn; /* NULL: collect into resp */
    void *write_arg;
};

/*
 * Runs one call. Returns 0 with *status set (any HTTP status, the caller
 * judges), or -1 with err when no HTTP answer came back.
 */
static int request(struct docker *d, const struct request *rq, struct dbuf *resp, long *status,
                   char *err, size_t errsz)
{
    char url[2048];
    struct curl_slist *hdrs = NULL, *tmp;
    int rc = -1;
    int64_t start = clock_mono_ms();

    if (rq->unversioned)
        snprintf(url, sizeof(url), "%s%s", d->base, rq->path);
    else
        snprintf(url, sizeof(url), "%s/v%s%s", d->base, d->api, rq->path);
    curl_easy_reset(d->curl);
    setup_handle(d, d->curl, url, rq->timeout_ms ? rq->timeout_ms : d->timeout_ms);
    curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, rq->write_fn ? rq->write_fn : write_dbuf);
    curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, rq->write_fn ? rq->write_arg : (void *)resp);

    if (!(tmp = curl_slist_append(hdrs, "Expect:")))
        goto oom;
    hdrs = tmp;
    if (rq->body) {
        if (!(tmp = curl_slist_append(hdrs, "Content-Type: application/json")))
            goto oom;
        hdrs = tmp;
    }
    if (rq->auth) {
        struct dbuf h = DBUF_INIT_SECRET(64 * 1024); /* the registry's credentials */
        if (dbuf_printf(&h, "X-Registry-Auth: %s", rq->auth) < 0 ||
            !(tmp = curl_slist_append(hdrs, dbuf_str(&h)))) {
            dbuf_free(&h);
            goto oom;
        }
        dbuf_free(&h);
        hdrs = tmp;
    }
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE, (long)(rq->body ? strlen(rq->body) : 0));
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(d->curl, CURLOPT_CUSTOMREQUEST, rq->method);
    }

    CURLcode cc = curl_easy_perform(d->curl);
    *status = 0;
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, status);
    if (cc != CURLE_OK || *status >= 500)
        metrics_docker_error();
    if (d->debug) {
        char st[16], ms[24];
        snprintf(st, sizeof(st), "%ld", *status);
        snprintf(ms, sizeof(ms), "%lld", (long long)(clock_mono_ms() - start));
        log_event(LOG_DEBUG, "docker call", "method", rq->method, "path", url + strlen(d->base),
                  "status", st, "ms", ms, "curl", cc == CURLE_OK ? NULL : curl_easy_strerror(cc),
                  (const char *)NULL);
    }
    if (cc == CURLE_WRITE_ERROR && resp && resp->len >= resp->cap - 65536) {
        snprintf(err, errsz, "docker: %s: answer larger than %zu bytes", rq->what, resp->cap);
        goto done;
    }
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && rq->write_fn && *status)) {
        transport_error(d, d->curl, cc, rq->what, err, errsz);
        goto done;
    }
    rc = 0;
    goto done;

oom:
    snprintf(err, errsz, "docker: %s: out of memory", rq->what);
done:
    /* libcurl frees its copies of the headers without wiping: X-Registry-Auth is a secret. */
    for (struct curl_slist *l = hdrs; l; l = l->next)
        secure_wipe(l->data, strlen(l->data));
    curl_slist_free_all(hdrs);
    return rc;
}

/* request() for calls that collect the answer; fails for a status outside ok_lo..ok_hi. */
static int call(struct docker *d, struct request *rq, struct dbuf *resp, long *status, char *err,
                size_t errsz)
{
    if (request(d, rq, resp, status, err, errsz) < 0)
        return -1;
    if (*status >= 200 && *status < 300)
        return 0;
    char msg[600];
    engine_message(resp, msg, sizeof(msg));
    snprintf(err, errsz, "docker: %s: HTTP %ld: %s", rq->what, *status, msg);
    return -1;
}

int docker_ping(struct docker *d, char *err, size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    long status;
    json_t *v = NULL;
    int rc = -1;
    char what[600];

    snprintf(what, sizeof(what), "ping %s", d->host);
    struct request rq = {.method = "GET", .path = "/_ping", .unversioned = 1, .what = what};
    if (call(d, &rq, &resp, &status, err, errsz) < 0)
        goto done;
    dbuf_reset(&resp);
    snprintf(what, sizeof(what), "version of %s", d->host);
    rq.path = "/version";
    if (call(d, &rq, &resp, &status, err, errsz) < 0)
        goto done;
    v = json_loadb(dbuf_str(&resp), resp.len, 0, NULL);
    const char *api = v ? json_string_value(json_object_get(v, "ApiVersion")) : NULL;
    int major = 0, minor = 0;
    if (!api || sscanf(api, "%d.%d", &major, &minor) != 2) {
        snprintf(err, errsz, "docker: version of %s: no ApiVersion in the answer", d->host);
        goto done;
    }
    if (major < API_MAX_MAJOR || (major == API_MAX_MAJOR && minor < API_MIN_MINOR)) {
        snprintf(err, errsz, "docker: the Engine at %s speaks API %s; davit needs %s or newer",
                 d->host, api, DOCKER_API_MIN);
        goto done;
    }
    if (major > API_MAX_MAJOR || minor > API_MAX_MINOR) {
        major = API_MAX_MAJOR;
        minor = API_MAX_MINOR;
    }
    snprintf(d->api, sizeof(d->api), "%d.%d", major, minor);
    rc = 0;
done:
    json_decref(v);
    dbuf_free(&resp);
    return rc;
}

/* Image references go into URL paths unescaped, as Docker's own client does. */
static int image_ref_ok(const char *image, char *err, size_t errsz)
{
    size_t n = strlen(image);
    if (n && n < 512 &&
        strspn(image, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@") == n)
        return 0;
    snprintf(err, errsz, "docker: not a valid image reference: \"%s\"", image);
    return -1;
}

int docker_image_present(struct docker *d, const char *image, char *err, size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char path[600], what[600];
    long status;

    if (image_ref_ok(image, err, errsz) < 0)
        return -1;
    snprintf(path, sizeof(path), "/images/%s/json", image);
    snprintf(what, sizeof(what), "inspect image %s", image);
    struct request rq = {.method = "GET", .path = path, .what = what};
    int rc = call(d, &rq, &resp, &status, err, errsz);
    if (rc < 0 && status == 404)
        rc = 0;
    else if (rc == 0)
        rc = 1;
    dbuf_free(&resp);
    return rc;
}

struct pull_stream {
    struct dbuf line;
    char error[512];
    int too_long; /* a line passed PULL_LINE_CAP: the pull's outcome is unknown */
};

/* Keeps the last error reported in the pull's stream of JSON progress lines. */
static size_t pull_write(char *p, size_t size, size_t n, void *arg)
{
    struct pull_stream *ps = arg;
    size_t total = size * n;
    for (size_t i = 0; i < total; i++) {
        if (p[i] != '\n') {
            if (dbuf_addch(&ps->line, p[i]) < 0) {
                ps->too_long = 1;
                return 0; /* ends the transfer */
            }
            continue;
        }
        json_t *j = json_loadb(dbuf_str(&ps->line), ps->line.len, 0, NULL);
        /* "error" in the progress stream; "message" when the Engine refused at once. */
        const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
        if (!e && j)
            e = json_string_value(json_object_get(j, "message"));
        if (e)
            snprintf(ps->error, sizeof(ps->error), "%s", e);
        json_decref(j);
        dbuf_reset(&ps->line);
    }
    return total;
}

/* Splits "reg:5000/name:tag" or "name@sha256:…" into the name and the tag or digest. */
static void split_ref(const char *image, char *name, size_t nsize, char *tag, size_t tsize)
{
    const char *slash = strrchr(image, '/');
    const char *last = slash ? slash + 1 : image;
    const char *at = strchr(last, '@');
    const char *colon = strchr(last, ':');
    const char *cut = at ? at : colon;
    if (!cut) {
        snprintf(name, nsize, "%s", image);
        snprintf(tag, tsize, "latest");
        return;
    }
    snprintf(name, nsize, "%.*s", (int)(cut - image), image);
    snprintf(tag, tsize, "%s", cut + 1);
}

int docker_image_pull(struct docker *d, const char *image, const char *auth, int64_t timeout_ms,
                      char *err, size_t errsz)
{
    struct pull_stream ps = {DBUF_INIT(PULL_LINE_CAP), "", 0};
    char name[512], tag[256], path[1200], what[600];
    long status;
    int rc = -1;
    char *ename = NULL, *etag = NULL;

    if (image_ref_ok(image, err, errsz) < 0)
        return -1;
    split_ref(image, name, sizeof(name), tag, sizeof(tag));
    ename = curl_easy_escape(d->curl, name, 0);
    etag = curl_easy_escape(d->curl, tag, 0);
    if (!ename || !etag) {
        snprintf(err, errsz, "out of memory");
        goto done;
    }
    snprintf(path, sizeof(path), "/images/create?fromImage=%s&tag=%s", ename, etag);
    snprintf(what, sizeof(what), "pull %s", image);
    struct request rq = {.method = "POST",
                         .path = path,
                         .auth = auth,
                         .timeout_ms = timeout_ms,
                         .what = what,
                         .write_fn = pull_write,
                         .write_arg = &ps};
    if (request(d, &rq, NULL, &status, err, errsz) < 0) {
        /* Keep only the reason: the caller says which image could not be pulled. */
        const char *r = strstr(err, what);
        if (r) {
            r += strlen(what) + 2;
            memmove(err, r, strlen(r) + 1);
        }
        goto done;
    }
    if (ps.too_long) {
        /* The transfer stopped there: whatever follows, an error included,
         * was never read, so the pull did not succeed as far as we know. */
        snprintf(err, errsz, "the Engine's progress stream has a line longer than %u bytes",
                 PULL_LINE_CAP);
        goto done;
    }
    if (status < 200 || status >= 300) {
        char msg[600];
        engine_message(&ps.line, msg, sizeof(msg));
        snprintf(err, errsz, "HTTP %ld: %s", status, ps.error[0] ? ps.error : msg);
        goto done;
    }
    if (ps.error[0]) {
        snprintf(err, errsz, "%s", ps.error);
        goto done;
    }
    rc = 0;
done:
    curl_free(ename);
    curl_free(etag);
    dbuf_free(&ps.line);
    return rc;
}

int docker_container_create(struct docker *d, const char *name, json_t *body, char *id, char *err,
                            size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char path[300], what[300];
    long status;
    json_t *j = NULL;
    int rc = -1;
    char *text = json_dumps(body, JSON_COMPACT);

    snprintf(what, sizeof(what), "create container %s", name);
    if (!text) {
        snprintf(err, errsz, "docker: %s: out of memory", what);
        goto done;
    }
    snprintf(path, sizeof(path), "/containers/create?name=%s", name);
    struct request rq = {.method = "POST", .path = path, .body = text, .what = what};
    if (call(d, &rq, &resp, &status, err, errsz) < 0)
        goto done;
    j = json_loadb(dbuf_str(&resp), resp.len, 0, NULL);
    const char *cid = j ? json_string_value(json_object_get(j, "Id")) : NULL;
    if (!cid || strlen(cid) >= DOCKER_ID_MAX) {
        snprintf(err, errsz, "docker: %s: HTTP %ld but no container id in the answer", what,
                 status);
        goto done;
    }
    snprintf(id, DOCKER_ID_MAX, "%s", cid);
    rc = 0;
done:
    free(text);
    json_decref(j);
    dbuf_free(&resp);
    return rc;
}

/* A call on one container that returns nothing; statuses in ok_also are not errors. */
static int container_op(struct docker *d, const char *method, const char *id, const char *suffix,
                        const char *verb, long ok_also, char *err, size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char path[300], what[200];
    long status;
    snprintf(path, sizeof(path), "/containers/%s%s", id, suffix);
    snprintf(what, sizeof(what), "%s container %.12s", verb, id);
    struct request rq = {.method = method, .path = path, .what = what};
    int rc = call(d, &rq, &resp, &status, err, errsz);
    if (rc < 0 && status == ok_also)
        rc = 0;
    dbuf_free(&resp);
    return rc;
}

int docker_container_start(struct docker *d, const char *id, char *err, size_t errsz)
{
    /* 304: already started, as after an adoption. */
    return container_op(d, "POST", id, "/start", "start", 304, err, errsz);
}

int docker_container_kill(struct docker *d, const char *id, const char *signal, char *err,
                          size_t errsz)
{
    char suffix[64], verb[64];
    snprintf(suffix, sizeof(suffix), "/kill?signal=%s", signal);
    snprintf(verb, sizeof(verb), "send %s to", signal);
    /* 409: the container is not running, which is what a kill wants anyway. */
    return container_op(d, "POST", id, suffix, verb, 409, err, errsz);
}

int docker_container_remove(struct docker *d, const char *id, char *err, size_t errsz)
{
    return container_op(d, "DELETE", id, "?force=1&v=1", "remove", 404, err, errsz);
}

int docker_container_inspect(struct docker *d, const char *id, json_t **out, char *err,
                             size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char path[300], what[200];
    long status;
    int rc;

    snprintf(path, sizeof(path), "/containers/%s/json", id);
    snprintf(what, sizeof(what), "inspect container %.12s", id);
    struct request rq = {.method = "GET", .path = path, .what = what};
    rc = call(d, &rq, &resp, &status, err, errsz);
    if (rc < 0) {
        rc = status == 404 ? 0 : -1;
        goto done;
    }
    *out = json_loadb(dbuf_str(&resp), resp.len, 0, NULL);
    if (!*out) {
        snprintf(err, errsz, "docker: %s: the answer is not JSON", what);
        rc = -1;
        goto done;
    }
    rc = 1;
done:
    dbuf_free(&resp);
    return rc;
}

int docker_container_list(struct docker *d, const char *label, json_t **out, char *err,
                          size_t errsz)
{
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char path[1200], what[300];
    long status;
    int rc = -1;
    char *efilter = NULL;
    json_t *filter = json_pack("{s:[s]}", "label", label);
    char *ftext = filter ? json_dumps(filter, JSON_COMPACT) : NULL;

    snprintf(what, sizeof(what), "list containers labelled %s", label);
    if (!ftext || !(efilter = curl_easy_escape(d->curl, ftext, 0))) {
        snprintf(err, errsz, "docker: %s: out of memory", what);
        goto done;
    }
    snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", efilter);
    struct request rq = {.method = "GET", .path = path, .what = what};
    if (call(d, &rq, &resp, &status, err, errsz) < 0)
        goto done;
    *out = json_loadb(dbuf_str(&resp), resp.len, 0, NULL);
    if (!json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        snprintf(err, errsz, "docker: %s: the answer is not a JSON array", what);
        goto done;
    }
    rc = 0;
done:
    curl_free(efilter);
    free(ftext);
    json_decref(filter);
    dbuf_free(&resp);
    return rc;
}

static int wait_arm(struct docker_wait *w, char *err, size_t errsz)
{
    dbuf_reset(&w->resp);
    curl_easy_reset(w->easy);
    setup_handle(w->d, w->easy, w->url, WAIT_ARM_MS);
    curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, write_dbuf);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, &w->resp);
    /* The abort hook is for blocking calls; a wait is stopped by its owner. */
    curl_easy_setopt(w->easy, CURLOPT_NOPROGRESS, 1L);
    if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
        snprintf(err, errsz, "docker: wait for container: cannot add the transfer");
        return -1;
    }
    if (w->d->debug)
        log_event(LOG_DEBUG, "docker call", "method", "POST", "path", w->url + strlen(w->d->base),
                  "status", "pending", (const char *)NULL);
    return 0;
}

int docker_wait_begin(struct docker *d, const char *id, struct docker_wait **out, char *err,
                      size_t errsz)
{
    struct docker_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errsz, "docker: wait for container %.12s: out of memory", id);
        return -1;
    }
    w->d = d;
    dbuf_init(&w->resp, RESPONSE_CAP);
    snprintf(w->url, sizeof(w->url), "%s/v%s/containers/%s/wait?condition=not-running", d->base,
             d->api, id);
    w->multi = curl_multi_init();
    w->easy = curl_easy_init();
    if (!w->multi || !w->easy) {
        snprintf(err, errsz, "docker: wait for container %.12s: out of memory", id);
        goto fail;
    }
    if (wait_arm(w, err, errsz) < 0)
        goto fail;
    *out = w;
    return 0;
fail:
    docker_wait_end(w);
    return -1;
}

int docker_wait_step(struct docker_wait *w, struct curl_waitfd *fds, unsigned nfds, int timeout_ms,
                     long *status, char *err, size_t errsz)
{
    int running = 0;
    if (curl_multi_perform(w->multi, &running) != CURLM_OK ||
        curl_multi_wait(w->multi, fds, nfds, timeout_ms, NULL) != CURLM_OK ||
        curl_multi_perform(w->multi, &running) != CURLM_OK) {
        snprintf(err, errsz, "docker: wait for container: curl multi failed");
        return -1;
    }
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode cc = m->data.result;
        long http = 0;
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &http);
        curl_multi_remove_handle(w->multi, w->easy);
        if (w->d->debug) {
            char st[16];
            snprintf(st, sizeof(st), "%ld", http);
            log_event(LOG_DEBUG, "docker call", "method", "POST", "path",
                      w->url + strlen(w->d->base), "status", st, "curl",
                      cc == CURLE_OK ? NULL : curl_easy_strerror(cc), (const char *)NULL);
        }
        if (cc == CURLE_OPERATION_TIMEDOUT)
            return wait_arm(w, err, errsz) < 0 ? -1 : 0;
        if (cc != CURLE_OK) {
            transport_error(w->d, w->easy, cc, "wait for container", err, errsz);
            return -1;
        }
        if (http < 200 || http >= 300) {
            char msg[600];
            engine_message(&w->resp, msg, sizeof(msg));
            snprintf(err, errsz, "docker: wait for container: HTTP %ld: %s", http, msg);
            return -1;
        }
        json_t *j = json_loadb(dbuf_str(&w->resp), w->resp.len, 0, NULL);
        json_t *sc = j ? json_object_get(j, "StatusCode") : NULL;
        *status = json_is_integer(sc) ? (long)json_integer_value(sc) : -1;
        json_decref(j);
        return 1;
    }
    return 0;
}

void docker_wait_end(struct docker_wait *w)
{
    if (!w)
        return;
    if (w->multi && w->easy)
        curl_multi_remove_handle(w->multi, w->easy);
    if (w->easy)
        curl_easy_cleanup(w->easy);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    dbuf_free(&w->resp);
    free(w);
}
