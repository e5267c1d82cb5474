/*
 * spool_mac: authenticates spool records (spool.h) with a run's key, so that
 * the code a run executes cannot forge, reorder or drop what davit-worker
 * recorded (docs/run-directory.md, "Integrity of the spool").
 *
 * A record's MAC is the 16-byte tag of ChaCha20-Poly1305 (RFC 8439) under
 * the run's 32-byte key, written as 32 lowercase hex digits: the nonce is the
 * record's seq (8 bytes little-endian, then 4 zero bytes), the associated data
 * the payload, and the plaintext the header without its MAC
 * (spool_header_base) and a newline; the ciphertext is not used. So the tag
 * covers every field, and a record cannot be altered or moved (docs/
 * run-directory.md has the exact construction). Poly1305 rather than HMAC-
 * SHA256: it costs a few instructions a byte instead of about sixty, and
 * every byte of a run's output passes through it (docs/benchmarks.md).
 *
 * BearSSL rather than OpenSSL because the static musl davit-worker uses it
 * too; the worker, the launcher's verifier and the launcher's own records
 * share this one implementation. A struct spool_mac holds a copy of the key;
 * wipe it with spool_mac_wipe. No allocation, no I/O.
 */
#ifndef DAVIT_COMMON_SPOOL_MAC_H
#define DAVIT_COMMON_SPOOL_MAC_H

#include "common/spool.h"

#include <bearssl_block.h>

#define SPOOL_KEY_LEN  32
#define SPOOL_KEY_FILE "key" /* in the run directory: the raw key, until the worker reads it */

struct spool_mac {
    unsigned char key[SPOOL_KEY_LEN];
    br_poly1305_run poly;
    br_chacha20_run chacha;
};

/* Takes a copy of key. The caller wipes its own copy. */
void spool_mac_init(struct spool_mac *m, const unsigned char key[SPOOL_KEY_LEN]);

/* Erases the key. Safe on a zeroed or wiped struct. */
void spool_mac_wipe(struct spool_mac *m);

/* Computes r's MAC (from its type, seq, time_ms, phase, data, len) into r->mac. */
void spool_mac_sign(const struct spool_mac *m, struct spool_record *r);

/* Returns 1 when r->mac is r's MAC, 0 otherwise (compared in constant time). */
int spool_mac_verify(const struct spool_mac *m, const struct spool_record *r);

/*
 * The length of the longest prefix of buf[0, len) made of whole records that
 * each carry their MAC: what can be passed on of bytes read again from a
 * spool that was checked before (a phase may have rewritten them since).
 */
size_t spool_mac_prefix(const struct spool_mac *m, const char *buf, size_t len);

#endif
