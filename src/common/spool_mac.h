/*
 * spool_mac: authenticates spool records (spool.h) with a run's key, so that
 * the code a run executes cannot forge, reorder or drop what davit-worker
 * recorded (docs/run-directory.md, "Integrity of the spool").
 *
 * A record's MAC is HMAC-SHA256, keyed by the run's 32-byte key, over the
 * header without its MAC (spool_header_base), a newline, and the payload,
 * truncated to its first 16 bytes and written as 32 lowercase hex digits.
 * The sequence number is in the header, so a record cannot be moved.
 *
 * BearSSL rather than OpenSSL because the static musl davit-worker uses it
 * too; the worker, the launcher's verifier and the launcher's own records
 * share this one implementation. A struct spool_mac holds key-derived state
 * only (not the key); wipe it with spool_mac_wipe. No allocation, no I/O.
 */
#ifndef DAVIT_COMMON_SPOOL_MAC_H
#define DAVIT_COMMON_SPOOL_MAC_H

#include "common/spool.h"

#include <bearssl_hmac.h>

#define SPOOL_KEY_LEN  32
#define SPOOL_KEY_FILE "key" /* in the run directory: the raw key, until the worker reads it */

struct spool_mac {
    br_hmac_key_context kc;
};

/* Derives the MAC state from key. The caller wipes its own copy of key. */
void spool_mac_init(struct spool_mac *m, const unsigned char key[SPOOL_KEY_LEN]);

/* Erases the key-derived state. Safe on a zeroed or wiped struct. */
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
