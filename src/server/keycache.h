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
 */
#ifndef DAVIT_SERVER_KEYCACHE_H
#define DAVIT_SERVER_KEYCACHE_H

#include "common/crypto.h"

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

/* Forgets pool_id's entry, if any (a reset or a deletion frees it at once rather than at the next
 * lookup; correctness does not depend on it). */
void keycache_forget(struct keycache *c, const char *pool_id);

#endif
