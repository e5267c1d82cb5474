/*
 * credentials: the launcher's two secrets, read from the environment and
 * checked before anything else happens.
 *
 *   DAVIT_TOKEN (SPACELIFT_TOKEN): the pool token printed by `davit pool
 *       create`: base64 of JSON carrying the endpoint, pool id, pool secret
 *       and the server's release-signing public key (docs/protocol.md).
 *   DAVIT_POOL_PRIVATE_KEY (SPACELIFT_POOL_PRIVATE_KEY): the pool's private
 *       key PEM, base64-encoded on one line (`base64 -w 0 davit.key`).
 *
 * Each way these can be wrong gets its own one-line message naming the
 * variable, so that a user sees at once which of the two to fix. Owns the
 * decoded values and the key; free with credentials_free().
 */
#ifndef DAVIT_LAUNCHER_CREDENTIALS_H
#define DAVIT_LAUNCHER_CREDENTIALS_H

#include <openssl/evp.h>
#include <stddef.h>

struct credentials {
    char endpoint[512]; /* "https://host:port", no trailing slash */
    char pool_id[64];
    char *pool_secret;
    char *release_key_pem; /* SPKI PEM of the server's Ed25519 release key */
    EVP_PKEY *release_key;
    char tls_pin[128]; /* optional "sha256//BASE64" pin of the server's public key, or "" */
    EVP_PKEY *key;     /* the pool's private key */
    char key_type[16]; /* "rsa", "ec" or "ed25519" */
};

/*
 * Reads and checks both variables. Returns 0, or -1 with err set to one line
 * such as "DAVIT_POOL_PRIVATE_KEY: not valid base64 (encode the PEM file
 * with `base64 -w 0 davit.key`)". On failure c holds nothing to free.
 */
int credentials_load(struct credentials *c, char *err, size_t errsz);

/*
 * Whatever credentials_load found, it then calls credentials_scrub_env(): the four variables are
 * gone from the launcher's environment (so from /proc/<pid>/environ, from children, and from
 * what DAVIT_WHITELIST_ENVS could pass to a run).
 */

/* 1 when name is one of DAVIT_TOKEN, DAVIT_POOL_PRIVATE_KEY or their SPACELIFT_ aliases: a
 * variable that no run may get, whatever the whitelist says. */
int credentials_is_secret_var(const char *name);

/* Overwrites the values of those four variables in place and removes them from the
 * environment. Call it before any other thread starts (it changes environ). Never fails. */
void credentials_scrub_env(void);

/* The same, from explicit values (token and base64 key), for tests. */
int credentials_parse(struct credentials *c, const char *token, const char *token_var,
                      const char *key_b64, const char *key_var, char *err, size_t errsz);

/*
 * Signs msg with the pool's key (SHA-256 for RSA and EC, pure Ed25519), as
 * docs/protocol.md's register step asks. Sets *sig_b64 (caller frees).
 * Returns 0, or -1 with err.
 */
int credentials_sign(const struct credentials *c, const void *msg, size_t len, char **sig_b64,
                     char *err, size_t errsz);

/* Frees everything. Safe on a zeroed struct and twice. */
void credentials_free(struct credentials *c);

#endif
