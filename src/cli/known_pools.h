/*
 * known_pools: the client's pins of pool identities (docs/secrets.md, "Pinning the pool's key").
 *
 * davit run submit seals secrets to the public key the server says a pool has. A server taken
 * over could hand its own key instead, so the client keeps, per server URL and pool name, the
 * pool's id and the key_id (seal_key_id) it expects, in a text file: DAVIT_KNOWN_POOLS, else
 * $XDG_CONFIG_HOME/davit/known-pools, else $HOME/.config/davit/known-pools. One line per pool:
 * "SERVER POOL POOL_ID KEY_ID" (POOL_ID "-" when not known yet); lines starting with '#' are
 * comments. The file is rewritten whole (a temporary file renamed over it), mode 0600.
 *
 * Owns nothing between calls. Functions return 0 on success or -1 with a one-line reason in err.
 */
#ifndef DAVIT_CLI_KNOWN_POOLS_H
#define DAVIT_CLI_KNOWN_POOLS_H

#include "common/seal.h"

#include <stddef.h>

#define KNOWN_POOL_ID_SIZE 128

struct known_pool {
    char pool_id[KNOWN_POOL_ID_SIZE]; /* "-" when not known */
    char key_id[SEAL_KEY_ID_HEX];
};

/* The path of the file into buf. -1 when neither variable nor HOME is set. */
int known_pools_path(char *buf, size_t n, char *err, size_t errsz);

/* Looks up (server, pool) in file: 1 and *out when pinned, 0 when not, -1 on a read error. */
int known_pools_get(const char *file, const char *server, const char *pool, struct known_pool *out,
                    char *err, size_t errsz);

/* Records (server, pool) as *pin in file, replacing its line if any. Makes the file's folder. */
int known_pools_put(const char *file, const char *server, const char *pool,
                    const struct known_pool *pin, char *err, size_t errsz);

/* The key_id of a public key PEM or of a CSR's key (PEM) in path. */
int known_pools_key_id_file(const char *path, char out[SEAL_KEY_ID_HEX], char *err, size_t errsz);

#endif
