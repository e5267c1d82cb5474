/*
 * libFuzzer: the request bodies of the server's JSON endpoints, through the parsers the
 * handlers use (req_parse_json, then api_*_parse_*). The first byte picks the endpoint, the
 * rest is the body. Beyond "no crash, no leak, no UB": a refusal is one non-empty line, and it
 * echoes nothing of the request (docs/security.md): no key or string value that holds a byte
 * davit's own messages never use appears in it.
 */
#include "server/api_launcher.h"
#include "server/api_pools.h"
#include "server/api_runs.h"
#include "server/api_tokens.h"
#include "server/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum endpoint {
    CHALLENGE,
    REGISTER,
    POLL,
    EVENT,
    POOL_CREATE,
    POOL_RESET,
    POOL_CYCLE,
    RUN_SUBMIT,
    TOKEN_CREATE,
    SESSION_CREATE,
};
/* The first byte is '0' + the endpoint in the corpus's seeds. */
#define ENDPOINTS 10

/* Bytes that no fixed text of davit's errors holds: a string with one came from the request. */
static int foreign(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '^' || c == '~' || c == '`' || c == '|')
            return 1;
    }
    return 0;
}

static void check_not_echoed(const char *s, size_t n, const char *err)
{
    if (n >= 4 && foreign(s, n) && memmem(err, strlen(err), s, n))
        abort(); /* the error quotes the request */
}

static void check_tree(json_t *j, const char *err)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_string(j)) {
        check_not_echoed(json_string_value(j), json_string_length(j), err);
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            check_not_echoed(k, strlen(k), err);
            check_tree(v, err);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) check_tree(v, err);
    }
}

/* Runs the endpoint's parser: 0 accepted, -1 refused with err. */
static int parse(enum endpoint e, json_t *obj, char *err, size_t errsz)
{
    const char *a, *b;
    int64_t ms = 20000;
    int rc, is_result;
    switch (e) {
    case CHALLENGE:
        return api_launcher_parse_challenge(obj, &a, err, errsz);
    case REGISTER: {
        struct api_register reg;
        rc = api_launcher_parse_register(obj, &reg, err, errsz);
        api_register_clear(&reg);
        return rc;
    }
    case POLL: {
        struct api_poll p = {0, 25, 0, 0};
        return api_launcher_parse_poll(obj, &p, err, errsz);
    }
    case EVENT: {
        struct store_event ev;
        return api_launcher_parse_event(obj, &ev, &is_result, err, errsz);
    }
    case POOL_CREATE:
        return api_pools_parse_create(obj, &a, &b, err, errsz);
    case POOL_RESET:
        return api_pools_parse_reset(obj, &a, err, errsz);
    case POOL_CYCLE:
        return api_pools_parse_cycle(obj, &ms, err, errsz);
    case TOKEN_CREATE:
        return api_tokens_parse_create(obj, &a, &rc, err, errsz);
    case SESSION_CREATE:
        return api_tokens_parse_session(obj, &a, err, errsz);
    case RUN_SUBMIT: {
        json_t *spec = NULL;
        rc = api_runs_parse_submit(obj, &a, &spec, err, errsz);
        json_decref(spec);
        return rc == -2 ? 0 : rc; /* out of memory is not a refusal */
    }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024] = "";
    if (size < 1)
        return 0;
    enum endpoint e = (enum endpoint)((uint8_t)(data[0] - '0') % ENDPOINTS);
    json_t *obj = req_parse_json((const char *)data + 1, size - 1, err, sizeof(err));
    if (!obj) {
        if (!err[0] || strchr(err, '\n'))
            abort();
        return 0;
    }
    err[0] = '\0';
    if (parse(e, obj, err, sizeof(err)) < 0) {
        if (!err[0] || strchr(err, '\n'))
            abort(); /* a refusal says why, in one line */
        check_tree(obj, err);
    }
    json_decref(obj);
    return 0;
}
