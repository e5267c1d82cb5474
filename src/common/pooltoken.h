/*
 * pooltoken: the pool token that `davit pool create` prints once and a
 * launcher is started with (DAVIT_TOKEN): base64 of a JSON object
 *
 *     {"v": 1, "endpoint": URL, "pool_id": ID, "pool_secret": SECRET,
 *      "release_key": PEM, "tls_pin": "sha256//…" (only with HTTPS)}
 *
 * (docs/protocol.md, "Pool tokens"). The server makes them; the server and
 * the launcher read them, both through pooltoken_decode, so that the two
 * sides agree on every rule. A struct pool_token owns its two strings:
 * pooltoken_clear wipes the secret and frees them.
 */
#ifndef DAVIT_COMMON_POOLTOKEN_H
#define DAVIT_COMMON_POOLTOKEN_H

#include <stddef.h>

#define POOLTOKEN_VERSION 1

struct pool_token {
    char endpoint[512];    /* "http(s)://host:port", no trailing slash */
    char pool_id[64];      /* never empty */
    char tls_pin[128];     /* "sha256//" and 44 base64 digits, or "" */
    char *pool_secret;     /* never empty */
    char *release_key_pem; /* the server's Ed25519 release key, SPKI PEM (not checked here) */
};

/*
 * Encodes t as a token string (caller frees), or NULL when out of memory.
 * t->tls_pin is written only when not empty.
 */
char *pooltoken_encode(const struct pool_token *t);

/*
 * Decodes token into t. Whitespace around the token (a pasted newline) is
 * ignored, and so are fields a newer server may add. Returns 0, or -1 with
 * err set to a message that never quotes the token's secret, such as
 * "not valid base64 (cut short or altered? copy the whole token)"; the
 * caller prefixes what it read the token from. On failure t holds nothing
 * to free.
 */
int pooltoken_decode(const char *token, struct pool_token *t, char *err, size_t errsz);

/* Wipes the secret and frees t's strings. Safe to call twice. */
void pooltoken_clear(struct pool_token *t);

#endif
