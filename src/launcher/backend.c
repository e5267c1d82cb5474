#include "launcher/backend.h"

#include "common/clock.h"

#include "common/dbuf.h"
#include "common/log.h"
#include "common/secure.h"
#include "common/sigmsg.h"
#include "launcher/curl_cloexec.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX        (64 * 1024 * 1024) /* a run message carries the whole spec */
#define CALL_TIMEOUT_S    30                 /* default; backend_set_call_timeout() changes it */
#define CONNECT_TIMEOUT_S 10
#define POLL_SLACK_S      15 /* beyond wait_s, for the server's answer to arrive */

struct backend {
    CURL *curl;
    char endpoint[512];
    char ca_file[1024];
    char pin[128];
    char session[256];
    int debug;
    long call_timeout_s; /* events and log chunks */
    struct dbuf answer;
    int (*abort_fn)(void *);
    void *abort_arg;
};

static int xferinfo(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct backend *b = arg;
    (void)dt, (void)dn, (void)ut, (void)un;
    return b->abort_fn(b->abort_arg) ? 1 : 0;
}

void backend_set_abort(struct backend *b, int (*fn)(void *), void *arg)
{
    b->abort_fn = fn;
    b->abort_arg = arg;
}

static size_t to_dbuf(char *p, size_t size, size_t n, void *arg)
{
    return dbuf_add(arg, p, size * n) < 0 ? 0 : size * n;
}

struct sink {
    int fd;
    int64_t left;
};

static size_t to_fd(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if ((int64_t)len > s->left)
        return 0;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return 0;
        done += (size_t)w;
    }
    s->left -= (int64_t)len;
    return len;
}

int backend_open(struct backend **out, const struct credentials *cred, const char *ca_file,
                 int debug, char *err, size_t errsz)
{
    struct backend *b = calloc(1, sizeof(*b));
    if (!b || !(b->curl = curl_easy_init())) {
        snprintf(err, errsz, "backend: out of memory");
        free(b);
        return -1;
    }
    snprintf(b->endpoint, sizeof(b->endpoint), "%s", cred->endpoint);
    snprintf(b->ca_file, sizeof(b->ca_file), "%s", ca_file ? ca_file : "");
    snprintf(b->pin, sizeof(b->pin), "%s", cred->tls_pin);
    b->debug = debug;
    b->call_timeout_s = CALL_TIMEOUT_S;
    /* Answers carry the session token and runs' secrets. */
    dbuf_init_secret(&b->answer, ANSWER_MAX);
    *out = b;
    return 0;
}

void backend_close(struct backend *b)
{
    if (!b)
        return;
    curl_easy_cleanup(b->curl);
    dbuf_free(&b->answer);
    secure_wipe(b->session, sizeof(b->session));
    free(b);
}

void backend_set_call_timeout(struct backend *b, int seconds)
{
    b->call_timeout_s = seconds > 0 ? seconds : CALL_TIMEOUT_S;
}

void backend_set_session(struct backend *b, const char *token)
{
    snprintf(b->session, sizeof(b->session), "%s", token);
}

static enum backend_status classify(long status)
{
    if (status >= 200 && status < 300)
        return BACKEND_OK;
    switch (status) {
    case 401:
        return BACKEND_UNAUTHORIZED;
    case 403:
        return BACKEND_FORBIDDEN;
    case 409:
        return BACKEND_CONFLICT;
    case 413:
        return BACKEND_TOO_LARGE;
    case 408:
    case 429:
        return BACKEND_UNREACHABLE;
    default:
        return status >= 500 || status == 0 ? BACKEND_UNREACHABLE : BACKEND_REJECTED;
    }
}

/*
 * One call. The answer's JSON goes to *out when out is not NULL (also for
 * errors, so that callers can read next_offset). A sink, when given, takes
 * the body instead of the answer buffer.
 */
static int call(struct backend *b, const char *what, const char *method, const char *path,
                const char *ctype, const void *body, size_t len, long timeout_s, struct sink *sink,
                json_t **out, char *err, size_t errsz)
{
    char url[2048], auth[300], ct[128];
    struct curl_slist *headers = NULL;
    CURL *c = b->curl;
    long status = 0;

    if (out)
        *out = NULL;
    snprintf(url, sizeof(url), "%s%s", b->endpoint, path);
    dbuf_reset(&b->answer);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_cloexec(c);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "davit-launcher/" DAVIT_VERSION);
    if (b->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, b->ca_file);
    if (b->abort_fn) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, b);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    if (b->pin[0])
        curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, b->pin);
    if (sink) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_fd);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_dbuf);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b->answer);
    }
    if (b->session[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", b->session);
        headers = curl_slist_append(headers, auth);
    }
    if (body) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        headers = curl_slist_append(headers, ct);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    int64_t t0 = clock_mono_ms();
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    /* Only the method, path and status: bodies hold secrets and tokens. */
    if (b->debug) {
        char st[16], ms[24];
        snprintf(st, sizeof(st), "%ld", status);
        snprintf(ms, sizeof(ms), "%" PRId64, clock_mono_ms() - t0);
        log_event(LOG_DEBUG, "server call", "method", method, "path", path, "status", st, "ms", ms,
                  (char *)NULL);
    }
    if (rc != CURLE_OK && !(sink && rc == CURLE_HTTP_RETURNED_ERROR)) {
        if (rc == CURLE_WRITE_ERROR)
            snprintf(err, errsz, "%s: the answer is larger than allowed", what);
        else if (rc == CURLE_ABORTED_BY_CALLBACK)
            snprintf(err, errsz, "%s: interrupted", what);
        else
            snprintf(err, errsz, "%s: cannot reach the server at %s: %s", what, b->endpoint,
                     curl_easy_strerror(rc));
        return rc == CURLE_WRITE_ERROR ? BACKEND_REJECTED : BACKEND_UNREACHABLE;
    }

    json_t *j = NULL;
    if (b->answer.len)
        j = json_loadb(b->answer.data, b->answer.len, 0, NULL);
    enum backend_status s = classify(status);
    if (s != BACKEND_OK) {
        const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
        snprintf(err, errsz, "%s: HTTP %ld: %s", what, status,
                 msg    ? msg
                 : sink ? "download failed"
                        : "no error message");
    } else if (!sink && out && !j) {
        snprintf(err, errsz, "%s: HTTP %ld with an answer that is not JSON", what, status);
        s = BACKEND_REJECTED;
    }
    if (out)
        *out = j;
    else
        json_decref(j);
    return s;
}

/* A call with a JSON body. */
static int call_json(struct backend *b, const char *what, const char *path, json_t *body,
                     long timeout_s, json_t **out, char *err, size_t errsz)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        snprintf(err, errsz, "%s: out of memory", what);
        return BACKEND_REJECTED;
    }
    int s = call(b, what, "POST", path, "application/json", text, strlen(text), timeout_s, NULL,
                 out, err, errsz);
    /* The register body holds the pool secret. */
    secure_free_str(text);
    return s;
}

/* One challenge and one registration (backend_register). */
static int register_once(struct backend *b, const struct credentials *cred,
                         const struct backend_identity *id, struct backend_session *s, char *err,
                         size_t errsz)
{
    json_t *ans = NULL, *req = NULL;
    const char *cid, *nonce, *token, *pool;
    json_int_t lid, exp, lease, poll;
    char msg[SIGMSG_MAX], *sig = NULL;
    json_error_t jerr;
    int rc;

    b->session[0] = '\0';
    req = json_pack("{s:s}", "pool_id", cred->pool_id);
    rc = call_json(b, "register: challenge", "/api/v1/launcher/challenge", req, CALL_TIMEOUT_S,
                   &ans, err, errsz);
    json_decref(req);
    req = NULL;
    if (rc != BACKEND_OK)
        goto done;
    if (json_unpack_ex(ans, &jerr, 0, "{s:s, s:s}", "challenge_id", &cid, "nonce", &nonce) < 0) {
        snprintf(err, errsz, "register: challenge: unexpected answer: %s", jerr.text);
        rc = BACKEND_REJECTED;
        goto done;
    }
    int n = sigmsg_register(msg, sizeof(msg), cred->pool_id, cid, nonce);
    if (n < 0) {
        snprintf(err, errsz, "register: the server's challenge is malformed");
        rc = BACKEND_REJECTED;
        goto done;
    }
    if (credentials_sign(cred, msg, (size_t)n, &sig, err, errsz) < 0) {
        rc = BACKEND_REJECTED;
        goto done;
    }
    req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O}", "pool_id", cred->pool_id,
                    "pool_secret", cred->pool_secret, "challenge_id", cid, "signature", sig,
                    "hostname", id->hostname, "version", id->version, "arch", id->arch, "capacity",
                    id->capacity, "metadata", id->metadata ? id->metadata : json_object());
    if (req && id->launcher_id > 0)
        json_object_set_new(req, "launcher_id", json_integer(id->launcher_id));
    if (req && id->ephemeral)
        json_object_set_new(req, "ephemeral", json_true());
    json_decref(ans);
    ans = NULL;
    if (!req) {
        snprintf(err, errsz, "register: out of memory");
        rc = BACKEND_REJECTED;
        goto done;
    }
    rc = call_json(b, "register", "/api/v1/launcher/register", req, CALL_TIMEOUT_S, &ans, err,
                   errsz);
    if (rc != BACKEND_OK)
        goto done;
    if (json_unpack_ex(ans, &jerr, 0, "{s:s, s:I, s:s, s:I, s:I, s:I}", "session_token", &token,
                       "launcher_id", &lid, "pool", &pool, "expires_in_s", &exp, "lease_s", &lease,
                       "poll_timeout_s", &poll) < 0) {
        snprintf(err, errsz, "register: unexpected answer: %s", jerr.text);
        rc = BACKEND_REJECTED;
        goto done;
    }
    snprintf(s->token, sizeof(s->token), "%s", token);
    snprintf(s->pool, sizeof(s->pool), "%s", pool);
    s->launcher_id = lid;
    s->expires_in_s = exp;
    s->lease_s = lease;
    s->poll_timeout_s = poll;
    backend_set_session(b, s->token);
done:
    free(sig);
    json_decref(req);
    json_decref(ans);
    return rc;
}

/*
 * A challenge lives in the server's memory only: one issued just before the
 * server restarted is unknown to the register call after it. That refusal
 * is about the challenge, not the credentials: take a new one, a few times.
 */
#define REGISTER_CHALLENGE_TRIES 3

int backend_register(struct backend *b, const struct credentials *cred,
                     const struct backend_identity *id, struct backend_session *s, char *err,
                     size_t errsz)
{
    int rc = BACKEND_UNAUTHORIZED;
    for (int i = 0; i < REGISTER_CHALLENGE_TRIES; i++) {
        rc = register_once(b, cred, id, s, err, errsz);
        if (rc != BACKEND_UNAUTHORIZED || !strstr(err, "challenge unknown"))
            break;
    }
    return rc;
}

int backend_poll(struct backend *b, int64_t ack, int wait_s, enum backend_poll_mode mode,
                 json_t **messages, char *err, size_t errsz)
{
    json_t *ans = NULL;
    json_t *req = json_pack("{s:I, s:i}", "ack", (json_int_t)ack, "wait_s", wait_s);
    if (req && mode != POLL_TAKING)
        json_object_set_new(req, "draining", json_true());
    if (req && mode == POLL_EXITING)
        json_object_set_new(req, "exiting", json_true());
    int rc =
        call_json(b, "poll", "/api/v1/launcher/poll", req, wait_s + POLL_SLACK_S, &ans, err, errsz);
    json_decref(req);
    *messages = NULL;
    if (rc == BACKEND_OK) {
        json_t *m = json_object_get(ans, "messages");
        if (!json_is_array(m)) {
            snprintf(err, errsz, "poll: the answer has no messages array");
            rc = BACKEND_REJECTED;
        } else {
            *messages = json_incref(m);
        }
    }
    json_decref(ans);
    return rc;
}

int backend_event(struct backend *b, int64_t run_id, const json_t *event, char **state, char *err,
                  size_t errsz)
{
    char path[128], what[64];
    json_t *ans = NULL;
    snprintf(path, sizeof(path), "/api/v1/launcher/runs/%" PRId64 "/events", run_id);
    snprintf(what, sizeof(what), "run %" PRId64 ": event", run_id);
    int rc = call_json(b, what, path, (json_t *)event, b->call_timeout_s, &ans, err, errsz);
    if (state) {
        const char *st = json_string_value(json_object_get(ans, "state"));
        *state = st ? strdup(st) : NULL;
    }
    json_decref(ans);
    return rc;
}

int backend_log(struct backend *b, int64_t run_id, uint64_t offset, const void *data, size_t len,
                uint64_t *next_offset, char *err, size_t errsz)
{
    char path[128], what[64];
    json_t *ans = NULL;
    snprintf(path, sizeof(path), "/api/v1/launcher/runs/%" PRId64 "/log?offset=%" PRIu64, run_id,
             offset);
    snprintf(what, sizeof(what), "run %" PRId64 ": log at %" PRIu64, run_id, offset);
    /* An empty chunk still needs a body, so that the server sees a PUT with length 0. */
    int rc = call(b, what, "PUT", path, "application/octet-stream", len ? data : "", len,
                  b->call_timeout_s, NULL, &ans, err, errsz);
    json_t *next = json_object_get(ans, "next_offset");
    if (json_is_integer(next) && json_integer_value(next) >= 0)
        *next_offset = (uint64_t)json_integer_value(next);
    else if (rc == BACKEND_OK) {
        snprintf(err, errsz, "%s: the answer has no next_offset", what);
        rc = BACKEND_REJECTED;
    }
    json_decref(ans);
    return rc;
}

int backend_download(struct backend *b, const char *path, int fd, int64_t max, char *err,
                     size_t errsz)
{
    struct sink sink = {fd, max};
    char what[600];
    snprintf(what, sizeof(what), "download %s", path);
    return call(b, what, "GET", path, NULL, NULL, 0, 300, &sink, NULL, err, errsz);
}
