/* Credentials, roles and the CSRF checks of cookie requests. */
#include "server/auth.h"

#include "server/request.h"
#include "server/routes.h"
#include "server/state.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *auth_role_name(int role)
{
    return role >= AUTH_ROLE_NONE && role <= AUTH_ROLE_ADMIN ? role_names[role] : "none";
}

int auth_role_parse(const char *s)
{
    for (int i = AUTH_ROLE_VIEWER; s && i <= AUTH_ROLE_ADMIN; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return AUTH_ROLE_NONE;
}

/* The least role a route needs; AUTH_ROLE_NONE for the kinds that are not about roles. */
static int role_needed(enum auth_kind k)
{
    switch (k) {
    case AUTH_VIEWER:
    case AUTH_COOKIE:
        return AUTH_ROLE_VIEWER;
    case AUTH_OPERATOR:
        return AUTH_ROLE_OPERATOR;
    case AUTH_ADMIN:
        return AUTH_ROLE_ADMIN;
    default:
        return AUTH_ROLE_NONE;
    }
}

/* Origin is "scheme://host[:port]"; the request's Host is "host[:port]"; a public URL is
 * "scheme://host[:port]/path" (its origin: up to the path). */
static int same_origin(const char *origin, const char *host, const char *public_url)
{
    const char *sep = strstr(origin, "://");
    if (sep && host && strcasecmp(sep + 3, host) == 0)
        return 1;
    const char *pub = public_url ? strstr(public_url, "://") : NULL;
    if (!pub)
        return 0;
    size_t n = (size_t)(pub + 3 - public_url) + strcspn(pub + 3, "/");
    return strlen(origin) == n && strncasecmp(origin, public_url, n) == 0;
}

const char *auth_site_refusal(const struct auth_site *site)
{
    if (site->fetch_site && strcasecmp(site->fetch_site, "cross-site") == 0)
        return "cross-site request refused";
    if (site->origin && !same_origin(site->origin, site->host, site->public_url))
        return "cross-origin request refused: Origin is not this server";
    return NULL;
}

const char *auth_csrf_refusal(const char *method, const char *csrf_sent, const char *csrf_expected,
                              const struct auth_site *site)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return NULL;
    const char *why = auth_site_refusal(site);
    if (why)
        return why;
    if (!csrf_sent || !csrf_expected || !*csrf_expected ||
        !crypto_str_equal(csrf_sent, csrf_expected))
        return "missing or wrong CSRF token";
    return NULL;
}

int auth_cookie_secure(const struct server *srv)
{
    /* Secure also behind a TLS-terminating proxy (--insecure-http): browsers then use the
     * https:// of --public-url, while this server sees plain HTTP. */
    return srv->cfg.tls_cert != NULL || strncasecmp(srv->cfg.public_url, "https://", 8) == 0;
}

int auth_cookie(char *out, size_t outsz, const char *session_id, int secure)
{
    /* Max-Age matches the session's absolute expiry; the server ends it sooner when idle. */
    const char *name = secure ? AUTH_COOKIE_NAME_SECURE : AUTH_COOKIE_NAME;
    int n = session_id
                ? snprintf(out, outsz, "%s=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%lld%s",
                           name, session_id, AUTH_SESSION_MAX_MS / 1000, secure ? "; Secure" : "")
                : snprintf(out, outsz, "%s=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0%s", name,
                           secure ? "; Secure" : "");
    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int auth_token(struct server *srv, const char *token, struct auth_principal *out,
               char token_hash[CRYPTO_SHA256_HEX])
{
    memset(out, 0, sizeof(*out));
    crypto_sha256_hex(token, strlen(token), token_hash);
    /* The admin token of the first start: compared in constant time, as before roles. */
    if (crypto_str_equal(token_hash, srv->admin_hash)) {
        out->role = AUTH_ROLE_ADMIN;
        snprintf(out->name, sizeof(out->name), "%s", AUTH_ADMIN_NAME);
        return STORE_OK;
    }
    /* A named token is looked up by its hash: the hash of 256 random bits, so
     * timing tells nothing about a token (docs/security.md). */
    struct store_principal p;
    int rc = store_token_auth(srv->store, token_hash, AUTH_TOUCH_MS, &p);
    if (rc < 0)
        return rc;
    out->role = auth_role_parse(p.role);
    snprintf(out->name, sizeof(out->name), "%s", p.name);
    return out->role == AUTH_ROLE_NONE ? STORE_NOTFOUND : STORE_OK;
}

static const char *header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void auth_site_of(struct req *r, struct auth_site *site)
{
    site->fetch_site = header(r, "Sec-Fetch-Site");
    site->origin = header(r, "Origin");
    site->host = header(r, "Host");
    site->public_url = r->srv->cfg.public_url;
}

static const char *bearer(struct req *r)
{
    const char *h = header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    return h + 7;
}

/* The sha256 of the bearer token into hash; replies 401 and returns -1 when there is none. */
static int bearer_hash(struct req *r, char hash[CRYPTO_SHA256_HEX])
{
    const char *tok = bearer(r);
    if (!tok) {
        reply_error(r, 401, "missing credentials: send Authorization: Bearer <token>");
        return -1;
    }
    crypto_sha256_hex(tok, strlen(tok), hash);
    return 0;
}

/* The metrics token, or the admin token, when one is set: /metrics as before roles. */
static int auth_metrics(struct req *r)
{
    char hash[CRYPTO_SHA256_HEX];
    if (!r->srv->cfg.metrics_hash[0])
        return 0;
    if (bearer_hash(r, hash) < 0)
        return -1;
    if (!crypto_str_equal(hash, r->srv->cfg.metrics_hash) &&
        !crypto_str_equal(hash, r->srv->admin_hash)) {
        reply_error(r, 401, "invalid metrics token");
        return -1;
    }
    return 0;
}

/* A launcher's session (its bearer token from registration). */
static int auth_launcher(struct req *r)
{
    char hash[CRYPTO_SHA256_HEX];
    if (bearer_hash(r, hash) < 0)
        return -1;
    /* A read (the lease renewal is in memory): it works on a full disk too, so
     * the request reaches its handler and fails (507) for the run it is about. */
    int rc = store_session_auth(r->srv->store, hash, &r->sess);
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

/* The browser session of the cookie; its CSRF checks for a request that changes something. */
static int auth_cookie_session(struct req *r, const char *id)
{
    struct store_web_session ws;
    crypto_sha256_hex(id, strlen(id), r->who.session_hash);
    int rc = store_web_session_auth(r->srv->store, r->who.session_hash, r->srv->admin_hash,
                                    AUTH_SESSION_IDLE_MS, AUTH_SESSION_MAX_MS, AUTH_TOUCH_MS, &ws);
    if (rc == STORE_NOTFOUND) {
        reply_error(r, 401, "session unknown or expired: sign in again");
        return -1;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "session");
        return -1;
    }
    r->who.by_cookie = 1;
    r->who.role = auth_role_parse(ws.who.role);
    snprintf(r->who.name, sizeof(r->who.name), "%s", ws.who.name);
    snprintf(r->who.csrf, sizeof(r->who.csrf), "%s", ws.csrf);
    explicit_bzero(&ws, sizeof(ws));
    struct auth_site site;
    auth_site_of(r, &site);
    const char *why = auth_csrf_refusal(r->method, header(r, AUTH_CSRF_HEADER), r->who.csrf, &site);
    if (why) {
        reply_error(r, 403, "%s", why);
        return -1;
    }
    return 0;
}

int auth_request(struct req *r)
{
    enum auth_kind k = r->route->auth;
    if (k == AUTH_NONE)
        return 0;
    if (k == AUTH_METRICS)
        return auth_metrics(r);
    if (k == AUTH_SESSION)
        return auth_launcher(r);
    const char *tok = k == AUTH_COOKIE ? NULL : bearer(r);
    const char *cookie = MHD_lookup_connection_value(
        r->conn, MHD_COOKIE_KIND,
        auth_cookie_secure(r->srv) ? AUTH_COOKIE_NAME_SECURE : AUTH_COOKIE_NAME);
    if (tok) {
        /* A bearer needs no CSRF token: a browser never adds one on its own. */
        char hash[CRYPTO_SHA256_HEX];
        int rc = auth_token(r->srv, tok, &r->who, hash);
        if (rc == STORE_NOTFOUND) {
            reply_error(r, 401, "invalid API token");
            return -1;
        }
        if (rc < 0) {
            reply_store_error(r, rc, "API token");
            return -1;
        }
    } else if (cookie && *cookie) {
        if (auth_cookie_session(r, cookie) < 0)
            return -1;
    } else {
        reply_error(r, 401,
                    k == AUTH_COOKIE ? "not signed in"
                                     : "missing credentials: send Authorization: Bearer <token>"
                                       " or sign in");
        return -1;
    }
    int need = role_needed(k);
    if (r->who.role < need) {
        reply_error(r, 403, "forbidden: this needs the %s role; %s has %s", auth_role_name(need),
                    r->who.name, auth_role_name(r->who.role));
        return -1;
    }
    return 0;
}
