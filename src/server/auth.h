/*
 * auth: who sent a request, and whether they may (docs/security.md, "Roles",
 * "Browser sessions").
 *
 * A request to the API carries either a bearer token (the admin token of
 * the first start, or a named token with a role) or the browser session's
 * cookie. With the cookie, a request that changes something must also carry
 * the session's CSRF value in X-CSRF-Token and must not come from another
 * site. Each route names the least role it needs (routes.h); a request
 * without valid credentials is answered 401, one whose role is too low 403.
 *
 * Owns no state: the tokens and sessions are in the store (store_tokens.c),
 * by their hashes only.
 */
#ifndef DAVIT_SERVER_AUTH_H
#define DAVIT_SERVER_AUTH_H

#include <stddef.h>

#include "common/crypto.h"
#include "server/store.h"

struct req;
struct server;

/* Ordered: a role may do all that the roles below it may. */
enum auth_role { AUTH_ROLE_NONE = 0, AUTH_ROLE_VIEWER, AUTH_ROLE_OPERATOR, AUTH_ROLE_ADMIN };

/* A browser session ends this long after its last request, */
#define AUTH_SESSION_IDLE_MS (12LL * 3600 * 1000)
/* and this long after sign-in at the latest. */
#define AUTH_SESSION_MAX_MS (7LL * 24 * 3600 * 1000)
/* A token's or session's last use is written at most this often (the idle
 * expiry is this coarse): a request is then a read of the store, not a write. */
#define AUTH_TOUCH_MS (60LL * 1000)

#define AUTH_COOKIE_NAME "davit_session"
/* Its name when Secure: a __Host- cookie is set only by this origin over https, with Path=/ and
 * no Domain, so a sibling host cannot toss one in (browsers enforce the prefix). */
#define AUTH_COOKIE_NAME_SECURE "__Host-davit_session"
#define AUTH_CSRF_HEADER        "X-CSRF-Token"
/* The name the admin token of the first start goes by (it is not a named token). */
#define AUTH_ADMIN_NAME "admin"

/* Who sent the request (struct req's who), once auth_request let it through. */
struct auth_principal {
    int role; /* enum auth_role; AUTH_ROLE_NONE for open routes and launchers */
    char name[STORE_TOKEN_NAME_SIZE];
    int by_cookie;                        /* signed in with the session cookie */
    char session_hash[CRYPTO_SHA256_HEX]; /* by_cookie: the sha256 of the session id */
    char csrf[128];                       /* by_cookie: the session's CSRF value */
};

/*
 * Checks the credentials r's route needs and fills r->who (or r->sess for a
 * launcher). 0 when the request may go on; -1 when it was answered: 401 for
 * missing or wrong credentials, 403 for a role too low or a cookie request
 * that fails the CSRF checks, 5xx when the store failed.
 */
int auth_request(struct req *r);

/*
 * The principal of a bearer token: the admin token of the first start, or a
 * named token. token_hash gets the token's sha256. STORE_OK, STORE_NOTFOUND
 * for a token nobody issued (or revoked), or a store error.
 */
int auth_token(struct server *srv, const char *token, struct auth_principal *out,
               char token_hash[CRYPTO_SHA256_HEX]);

/* "viewer", "operator", "admin" ("none" for AUTH_ROLE_NONE). */
const char *auth_role_name(int role);
/* The role named s; AUTH_ROLE_NONE when s names none. */
int auth_role_parse(const char *s);

/* Where a request says it comes from, and where this server is (header values; NULL: absent). */
struct auth_site {
    const char *fetch_site; /* Sec-Fetch-Site */
    const char *origin;     /* Origin */
    const char *host;       /* Host */
    const char *public_url; /* --public-url: what a reverse proxy in front serves as */
};

/*
 * A sign-in's check (POST /session), pure: NULL when it may go on, else the
 * one-line reason for a 403. Refused: Sec-Fetch-Site "cross-site", and an
 * Origin that is neither the Host nor the origin of --public-url.
 */
const char *auth_site_refusal(const struct auth_site *site);
/*
 * The checks on a cookie request, pure, for the tests too: a GET or HEAD
 * passes; otherwise auth_site_refusal's, then an X-CSRF-Token (csrf_sent)
 * that is missing or not the session's (compared in constant time).
 */
const char *auth_csrf_refusal(const char *method, const char *csrf_sent, const char *csrf_expected,
                              const struct auth_site *site);
/* The request's headers and this server's public URL, into site (pointers valid for the request).
 */
void auth_site_of(struct req *r, struct auth_site *site);

/*
 * The Set-Cookie value for session id (NULL: one that clears the cookie),
 * with Secure when secure. -1 when out is too small.
 */
int auth_cookie(char *out, size_t outsz, const char *session_id, int secure);

/*
 * Whether browsers reach srv over https (its own TLS, or a TLS-terminating proxy named by
 * --public-url): its session cookie is then Secure and named AUTH_COOKIE_NAME_SECURE, and only
 * that name is read.
 */
int auth_cookie_secure(const struct server *srv);

#endif
