/*
 * release: the launcher's cache of worker binaries, keyed by sha256.
 *
 * Before a worker release is executed, two checks must pass
 * (docs/protocol.md, "Worker releases"):
 *   1. its metadata carries a valid Ed25519 signature by the release key
 *      from the pool token, over kind, arch, version and sha256;
 *   2. the file's sha256 equals the signed one.
 * A download goes to a temporary file in the cache directory and is renamed
 * into place only after both checks, so the cache never holds a file that
 * did not pass, and a crash mid-download leaves only a temporary file
 * (removed on the next fetch). Owns no state between calls.
 */
#ifndef DAVIT_LAUNCHER_RELEASE_H
#define DAVIT_LAUNCHER_RELEASE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

struct release {
    char kind[16]; /* "worker" or "launcher" */
    char arch[16];
    char version[65];
    char sha256[65];     /* lower-case hex */
    char signature[128]; /* standard base64 of 64 bytes */
    int64_t size;        /* bytes; a download may not exceed it */
    char url[512];       /* path on the server, e.g. /api/v1/releases/3/download */
};

/*
 * Downloads r->url into fd (an empty, writable temporary file), writing at
 * most r->size bytes. Returns 0, or -1 with err.
 */
typedef int (*release_download_fn)(void *arg, const struct release *r, int fd, char *err,
                                   size_t errsz);

/* Checks the signature over r's metadata. Returns 0, or -1 with err. */
int release_verify(const struct release *r, EVP_PKEY *release_key, char *err, size_t errsz);

/*
 * Returns, in path, a verified executable file for r: from the cache when
 * it holds a file with the right digest, or else downloaded with fn. Returns
 * 1 for a cache hit, 0 for a fresh download, -1 with err when the release is
 * refused (bad signature, digest mismatch) or cannot be fetched.
 */
int release_fetch(const char *cache_dir, const struct release *r, EVP_PKEY *release_key,
                  release_download_fn fn, void *arg, char *path, size_t size, char *err,
                  size_t errsz);

/* The lower-case hex sha256 of the file open at fd, read from its start. */
int release_file_sha256(int fd, char out[65]);

#endif
