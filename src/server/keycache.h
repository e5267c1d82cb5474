/*
 * keycache: pools' public keys decoded once (crypto_pubkey), so that a registration verifies its
 * signature without decoding the pool's PEM again (the decoding cost about three times the
 * verification, issue 11).
 *
 * An entry is found by pool id AND the exact PEM the store holds now: the caller passes the PEM it
 * read from the store in the same request, so a pool reset (a new key) or a deleted and re-made
 * pool can never be verified with a key decoded before it; the old entry is replaced at the next
 * lookup. Bounded: a fixed number of entries, one per slot by a hash of the pool id; pools that
 * share a slot take turns (each miss decodes, as before the cache). Holds public keys only.
 * Thread-safe; a key handed out stays valid, by its own reference, after its entry is replaced.
 *
 * Each entry also holds the key's fingerprint (seal_key_id, the sha256 of its uncompressed SPKI),
 * computed once when the key is decoded: a submit compares a sealed block's key_id with it, and
 * decoding the PEM for that cost most of a submit's instructions (docs/benchmarks.md). The same
 * pool id + exact PEM rule applies, so a reset's new PEM never gets the old key's fingerprint.
 */
#ifndef DAVIT_SERVER_KEYCACHE_H
#define DAVIT_SERVER_KEYCACHE_H

#include "common/crypto.h"
#include "common/seal.h"

/* Entries at most: a server with more pools than this decodes some keys more than once. */
#define KEYCACHE_SLOTS 256

struct keycache;

/* An empty cache, or NULL when out of memory. The caller frees it with keycache_free. */
struct keycache *keycache_new(void);

/* Drops every entry and frees the cache; NULL is fine. Keys handed out stay valid. */
void keycache_free(struct keycache *c);

/*
 * The decoded key of pool_id whose public key is pubkey_pem (as the store has it now): a
 * reference the caller drops with crypto_pubkey_free. Decodes and keeps it when the slot holds
 * another pool or another PEM. NULL when the PEM does not decode or memory runs out.
 */
struct crypto_pubkey *keycache_get(struct keycache *c, const char *pool_id, const char *pubkey_pem);

/*
 * The fingerprint (seal_key_id) of pool_id's public key pubkey_pem (as the store has it now) into
 * out: from the cache, or decoded and kept as keycache_get does. 0, or -1 when the PEM does not
 * decode or memory runs out (out is then left unset).
 */
int keycache_key_id(struct keycache *c, const char *pool_id, const char *pubkey_pem,
                    char out[SEAL_KEY_ID_HEX]);

/* Forgets pool_id's entry, if any (a reset or a deletion frees it at once rather than at the next
 * lookup; correctness does not depend on it). */
void keycache_forget(struct keycache *c, const char *pool_id);

#endif
