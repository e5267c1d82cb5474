/* Named API tokens (create, list, revoke) and browser sessions (sign in, show, sign out). */
#include "server/api_tokens.h"

#include "server/auth.h"
#include "server/request.h"
#include "server/state.h"

#include "common/crypto.h"
#include "common/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 1 to 63 of [a-z0-9._-], starting with a letter or digit: safe in a path and a log line. */
static int token_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= STORE_TOKEN_NAME_SIZE || !isalnum((unsigned char)name[0]))
        return 0;
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && !strchr("._-", *p))
            return 0;
    return 1;
}

int api_tokens_parse_create(json_t *obj, const char **name, int *role, char *err, size_t errsz)
{
    const char *r = NULL;
    if (req_unpack_msg(obj, err, errsz, "{s:s, s:s}", "name", name, "role", &r) < 0)
        return -1;
    if (!token_name_ok(*name)) {
        snprintf(err, errsz, "name: 1 to 63 of [a-z0-9._-], starting with a letter or digit");
        return -1;
    }
    if (strcmp(*name, AUTH_ADMIN_NAME) == 0) {
        snprintf(err, errsz, "name: \"" AUTH_ADMIN_NAME "\" is the admin token of the first start");
        return -1;
    }
    if ((*role = auth_role_parse(r)) == AUTH_ROLE_NONE) {
        snprintf(err, errsz, "role: one of viewer, operator, admin");
        return -1;
    }
    return 0;
}

int api_tokens_parse_session(json_t *obj, const char **token, char *err, size_t errsz)
{
    return req_unpack_msg(obj, err, errsz, "{s:s}", "token", token);
}

int h_token_create(struct req *r)
{
    const char *name;
    int role;
    char token[CRYPTO_TOKEN_MAX], hash[CRYPTO_SHA256_HEX], err[256];
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_tokens_parse_create(obj, &name, &role, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    if (crypto_random_token("dvt_", token) < 0) {
        reply_error(r, 500, "no randomness");
        goto out;
    }
    crypto_sha256_hex(token, strlen(token), hash);
    int rc = store_token_create(r->srv->store, name, auth_role_name(role), hash);
    if (rc == STORE_CONFLICT)
        reply_error(r, 409, "token \"%s\" exists already; revoke it first", name);
    else if (rc < 0)
        reply_store_error(r, rc, "token");
    else {
        log_event(LOG_INFO, "token created", "token", name, "role", auth_role_name(role), "by",
                  r->who.name, NULL);
        /* The only time the token exists in clear: the store keeps its hash. */
        reply_json(r, 201,
                   json_pack("{s:s, s:s, s:s}", "name", name, "role", auth_role_name(role), "token",
                             token));
    }
    explicit_bzero(token, sizeof(token));
out:
    json_decref(obj);
    return HANDLER_DONE;
}

int h_token_list(struct req *r)
{
    json_t *arr;
    int rc = store_token_list_json(r->srv->store, &arr);
    if (rc < 0)
        return reply_store_error(r, rc, "tokens");
    /* The admin token of the first start is listed too, so that nobody looks for it. */
    json_t *admin = json_pack("{s:s, s:s, s:n, s:n, s:b}", "name", AUTH_ADMIN_NAME, "role", "admin",
                              "created_at", "last_used_at", "builtin", 1);
    if (!admin || json_array_insert_new(arr, 0, admin) < 0) {
        json_decref(arr);
        return reply_error(r, 500, "out of memory");
    }
    return reply_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

int h_token_revoke(struct req *r)
{
    if (strcmp(r->args[0], AUTH_ADMIN_NAME) == 0)
        return reply_error(r, 409,
                           "the admin token of the first start cannot be revoked"
                           " (docs/security.md, \"Roles\")");
    int rc = store_token_revoke(r->srv->store, r->args[0]);
    if (rc == STORE_NOTFOUND)
        return reply_error(r, 404, "no such token");
    if (rc < 0)
        return reply_store_error(r, rc, "token");
    log_event(LOG_INFO, "token revoked", "token", r->args[0], "by", r->who.name, NULL);
    return reply_json(r, 200, json_pack("{s:s}", "revoked", r->args[0]));
}

/* {name, role, csrf}: what the UI needs to know about its session. */
static json_t *session_json(const struct auth_principal *who)
{
    return json_pack("{s:s, s:s, s:s}", "name", who->name, "role", auth_role_name(who->role),
                     "csrf", who->csrf);
}

/* Answers status with the Set-Cookie header for session_id (NULL: one that clears the cookie)
 * and, when session_id is set, body (taken; NULL when it could not be made), else no body.
 * Built here: a JSON reply of request.c has no extra headers. */
static int reply_with_cookie(struct req *r, unsigned status, json_t *body, const char *session_id)
{
    char cookie[256];
    char *text = session_id ? (body ? json_dumps(body, JSON_COMPACT) : NULL) : strdup("");
    json_decref(body);
    int secure = auth_cookie_secure(r->srv);
    if (!text || auth_cookie(cookie, sizeof(cookie), session_id, secure) < 0) {
        free(text);
        return reply_error(r, 500, "out of memory");
    }
    size_t n = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return reply_error(r, 500, "out of memory");
    }
    if (session_id)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Set-Cookie", cookie);
    explicit_bzero(cookie, sizeof(cookie));
    r->resp = resp;
    r->status = status;
    return HANDLER_DONE;
}

/* Wipes the token's copy in the parsed body, which the request's buffer does not cover. */
static void wipe_token(json_t *obj)
{
    json_t *t = json_object_get(obj, "token");
    if (json_is_string(t))
        explicit_bzero((char *)json_string_value(t), json_string_length(t));
}

int h_session_create(struct req *r)
{
    const char *token = NULL;
    char id[CRYPTO_TOKEN_MAX] = "", token_hash[CRYPTO_SHA256_HEX], err[256];
    struct auth_principal who;
    /* Signing a victim in as someone else (login CSRF) is refused as other cross-site
     * requests are. */
    struct auth_site site;
    auth_site_of(r, &site);
    const char *why = auth_site_refusal(&site);
    if (why)
        return reply_error(r, 403, "%s", why);
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_tokens_parse_session(obj, &token, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    int rc = auth_token(r->srv, token, &who, token_hash);
    if (rc == STORE_NOTFOUND) {
        /* Not echoed, and the same answer whatever was wrong with it. */
        reply_error(r, 401, "invalid API token");
        goto out;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "session");
        goto out;
    }
    if (crypto_random_token("", id) < 0 || crypto_random_token("", who.csrf) < 0) {
        reply_error(r, 500, "no randomness");
        goto out;
    }
    crypto_sha256_hex(id, strlen(id), who.session_hash);
    rc = store_web_session_create(r->srv->store, who.session_hash, token_hash, who.csrf,
                                  AUTH_SESSION_IDLE_MS, AUTH_SESSION_MAX_MS);
    if (rc < 0) {
        reply_store_error(r, rc, "session");
        goto out;
    }
    log_event(LOG_INFO, "signed in", "token", who.name, "role", auth_role_name(who.role), NULL);
    reply_with_cookie(r, 200, session_json(&who), id);
out:
    explicit_bzero(id, sizeof(id));
    explicit_bzero(&who, sizeof(who));
    if (obj)
        wipe_token(obj);
    json_decref(obj);
    return HANDLER_DONE;
}

int h_session_show(struct req *r)
{
    return reply_json(r, 200, session_json(&r->who));
}

int h_session_delete(struct req *r)
{
    int rc = store_web_session_delete(r->srv->store, r->who.session_hash);
    if (rc < 0 && rc != STORE_NOTFOUND)
        return reply_store_error(r, rc, "session");
    log_event(LOG_INFO, "signed out", "token", r->who.name, NULL);
    return reply_with_cookie(r, 204, NULL, NULL);
}
