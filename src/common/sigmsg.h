/*
 * sigmsg: the exact bytes that are signed in davit's protocol
 * (docs/protocol.md), built in one place so that the signer and the
 * verifier can never disagree.
 *
 *   register: the launcher signs the server's challenge with the pool key;
 *   release:  the server signs each worker and launcher release with its
 *             Ed25519 release key, and launchers verify before running one.
 *
 * Pure functions. Each returns the message's length, or -1 when a field is
 * empty, holds a newline, or the message does not fit in size bytes.
 */
#ifndef DAVIT_COMMON_SIGMSG_H
#define DAVIT_COMMON_SIGMSG_H

#include <stddef.h>

#define SIGMSG_MAX 1024

int sigmsg_register(char *buf, size_t size, const char *pool_id, const char *challenge_id,
                    const char *nonce);

int sigmsg_release(char *buf, size_t size, const char *kind, const char *arch, const char *version,
                   const char *sha256_hex);

#endif
