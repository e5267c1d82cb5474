#include "cli/client.h"

#include "cli/escape.h"

#include "common/dbuf.h"
#include "common/env.h"
#include "common/outcome.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_CAP (64 * 1024 * 1024)

static size_t to_dbuf(char *p, size_t size, size_t n, void *ud)
{
    return dbuf_add(ud, p, size * n) < 0 ? 0 : size * n;
}

struct stream {
    FILE *out;
    long status;
    CURL *curl;
    struct dbuf err; /* the body of an error answer */
};

static size_t to_stream(char *p, size_t size, size_t n, void *ud)
{
    struct stream *s = ud;
    if (!s->status)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 300)
        return dbuf_add(&s->err, p, size * n) < 0 ? 0 : size * n;
    if (fwrite(p, 1, size * n, s->out) != size * n)
        return 0;
    fflush(s->out);
    return size * n;
}

static CURL *setup(struct cli *c, const char *path, struct curl_slist **hdrs)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    char url[4096], auth[1024];
    size_t n = strlen(c->server);
    snprintf(url, sizeof(url), "%.*s%s", (int)(n && c->server[n - 1] == '/' ? n - 1 : n), c->server,
             path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        *hdrs = curl_slist_append(*hdrs, auth);
    }
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, *hdrs);
    return curl;
}

/* Sets c's server, token and CA from the environment, at the first call, so
 * that a command's arguments are checked before its configuration and help
 * needs none. EXIT_USAGE when a variable is missing. */
static int configure(struct cli *c)
{
    if (c->server)
        return 0;
    char var[ENV_NAME_MAX];
    const char *server = env_get("SERVER", var, sizeof(var));
    if (!server) {
        fprintf(stderr, "davit: %s is not set: export DAVIT_SERVER=https://davit.example.com\n",
                var);
        return EXIT_USAGE;
    }
    c->token = env_get("API_TOKEN", var, sizeof(var));
    if (!c->token) {
        fprintf(stderr,
                "davit: %s is not set (the admin API token printed by the server's first"
                " start)\n",
                var);
        return EXIT_USAGE;
    }
    c->ca_file = env_get("CA_FILE", NULL, 0);
    c->server = server;
    return 0;
}

/* The bytes of a body that is not {"error": …} shown in the error line. */
#define ERROR_BODY_SHOWN 200

/* Prints the server's {"error": …} or the start of the body, escaped: both
 * come from the server. */
static void print_error(long status, const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *msg = json_string_value(json_object_get(o, "error"));
    if (msg) {
        fputs("davit: ", stderr);
        escape_puts(stderr, msg);
        fprintf(stderr, " (HTTP %ld)\n", status);
    } else {
        fprintf(stderr, "davit: the server answered HTTP %ld: ", status);
        escape_write(stderr, body, strnlen(body, ERROR_BODY_SHOWN));
        fputc('\n', stderr);
    }
    json_decref(o);
}

int client_call(struct cli *c, const char *method, const char *path, const char *content_type,
                const void *body, size_t len, json_t **out, long *status)
{
    struct curl_slist *hdrs = NULL;
    struct dbuf resp = DBUF_INIT(RESPONSE_CAP);
    char ct[256];
    int rc = EXIT_UNREACHABLE;
    long code = 0;
    if (out)
        *out = NULL;
    if ((rc = configure(c)))
        return rc;
    rc = EXIT_UNREACHABLE;
    if (content_type) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    CURL *curl = setup(c, path, &hdrs);
    if (!curl)
        goto out;
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, to_dbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    /* A call that is not a stream never takes long; a stalled server must
     * not hang a script. Uploads of releases get the most time. */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L);
    CURLcode cc = curl_easy_perform(curl);
    if (cc == CURLE_WRITE_ERROR) {
        fprintf(stderr, "davit: %s: the answer is larger than %d MiB\n", c->server,
                RESPONSE_CAP >> 20);
        rc = EXIT_API;
        goto out;
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "davit: %s: %s\n", c->server, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) {
        print_error(code, dbuf_str(&resp), resp.len);
        rc = EXIT_API;
        goto out;
    }
    if (out && code != 204) { /* 204 No Content: *out stays NULL */
        *out = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
        if (!*out) {
            /* A proxy's page, say: callers rely on an object here. */
            fprintf(stderr, "davit: the server answered HTTP %ld with a body that is not JSON\n",
                    code);
            rc = EXIT_API;
            goto out;
        }
    }
    rc = 0;
out:
    if (status)
        *status = code;
    dbuf_free(&resp);
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}

int client_call_json(struct cli *c, const char *method, const char *path, const json_t *body,
                     json_t **out)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        fprintf(stderr, "davit: out of memory\n");
        return EXIT_INTERNAL;
    }
    int rc = client_call(c, method, path, "application/json", text, strlen(text), out, NULL);
    free(text);
    return rc;
}

int client_stream(struct cli *c, const char *path, FILE *out)
{
    struct curl_slist *hdrs = NULL;
    struct stream s = {out, 0, NULL, DBUF_INIT(1024 * 1024)};
    int rc = configure(c);
    if (rc)
        return rc;
    rc = EXIT_UNREACHABLE;
    CURL *curl = setup(c, path, &hdrs);
    if (!curl)
        goto out;
    s.curl = curl;
    /* A follow may last as long as a run; only a dead connection ends it. */
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, to_stream);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &s.status);
    if (s.status >= 300) {
        print_error(s.status, dbuf_str(&s.err), s.err.len);
        rc = EXIT_API;
    } else if (cc != CURLE_OK) {
        fprintf(stderr, "davit: %s: %s\n", c->server, curl_easy_strerror(cc));
    } else {
        rc = 0;
    }
out:
    dbuf_free(&s.err);
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}

char *client_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    return copy;
}
