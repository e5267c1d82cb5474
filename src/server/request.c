/* Reading a request and answering it: the helpers every handler uses. */
#include "server/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* 503: a client (or a load balancer) tries again, or another server */
    if (rc == STORE_ERR && store_failed_unavailable())
        return reply_error(r, 503,
                           "%s: the database is unavailable (see the server's log); try again"
                           " later",
                           what);
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
    case STORE_ENDED:
        /* no next_offset: a launcher stops shipping this run's log */
        return reply_error(r, 409, "%s has ended: its log is final and takes no new bytes", what);
    default:
        return reply_error(r, 500, "%s: internal error (see the server's log)", what);
    }
}

json_t *req_parse_json(const char *data, size_t len, char *err, size_t errsz)
{
    json_error_t jerr;
    /* Duplicate keys are refused, as runspec_parse() does: two "secrets"
     * must not silently become the last one. */
    json_t *obj = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        /* jansson's text may quote the body ("near 'x'"): cut that off. */
        char *near = strstr(jerr.text, " near ");
        if (near)
            *near = '\0';
        snprintf(err, errsz, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        snprintf(err, errsz, "the body must be a JSON object");
        return NULL;
    }
    return obj;
}

json_t *req_json(struct req *r)
{
    char err[256];
    json_t *obj = req_parse_json(r->body.data, r->body.len, err, sizeof(err));
    if (!obj)
        reply_error(r, 400, "%s", err);
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

static int unpack_msg(json_t *obj, char *err, size_t errsz, const char *fmt, va_list ap)
{
    json_error_t jerr;
    if (json_vunpack_ex(obj, &jerr, JSON_STRICT, fmt, ap) == 0)
        return 0;
    /* "N object item(s) left unpacked: KEY" names a key the client made
     * up: keep the sentence, not the key. */
    char *left = strstr(jerr.text, " left unpacked");
    if (left)
        left[sizeof(" left unpacked") - 1] = '\0';
    snprintf(err, errsz, "invalid request: %s%s%s", jerr.text, *jerr.source ? " at " : "",
             jerr.source);
    return -1;
}

int req_unpack_msg(json_t *obj, char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = unpack_msg(obj, err, errsz, fmt, ap);
    va_end(ap);
    return rc;
}

int req_unpack(struct req *r, json_t *obj, const char *fmt, ...)
{
    char err[256];
    va_list ap;
    va_start(ap, fmt);
    int rc = unpack_msg(obj, err, sizeof(err), fmt, ap);
    va_end(ap);
    if (rc < 0)
        reply_error(r, 400, "%s", err);
    return rc;
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

void req_on_end(struct req *r, void (*fn)(void *arg), void *arg)
{
    r->end_fn = fn;
    r->end_arg = arg;
}
