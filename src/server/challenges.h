/*
 * challenges: registration challenges that any server sharing the store can check, with nothing
 * kept per challenge until it is used.
 *
 * Anyone who knows a pool's id may ask for a challenge (the launcher is not yet authenticated),
 * so asking must cost the server nothing that lasts: no database write, no memory. A challenge
 * is therefore stateless and authenticated: its id is "dvc_" and the base64url (no padding) of
 *   random (16 bytes) || expiry (milliseconds since the epoch, 8 bytes big-endian) ||
 *   HMAC-SHA256(key, "davit-challenge-v1" NUL pool_id NUL random || expiry)
 * and its nonce is the base64url of HMAC-SHA256(key, "davit-challenge-nonce-v1" NUL id bytes).
 * The key is 32 random bytes that every server of one store shares (challenges_load_key: kept in
 * the store's meta, made by the first server). So a launcher may take its challenge from one
 * server and register through another (a load balancer), and a restart voids nothing. A flood of
 * requests cannot void a challenge already given: there is no table to fill.
 *
 * Single use is the store's part: the registration that uses a challenge records its id in the
 * same transaction as the launcher (store_launcher_register, challenge_uses), and a second use
 * conflicts on any server. A register that fails before that (bad secret or signature) records
 * nothing: unauthenticated requests never write, and a failed attempt gains an attacker nothing
 * a fresh challenge would not.
 *
 * Thread-safety: the key is set once, before the server serves requests; issuing and checking
 * only read it. The object owns its copy of the key and wipes it when freed.
 */
#ifndef DAVIT_SERVER_CHALLENGES_H
#define DAVIT_SERVER_CHALLENGES_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* The shared key's size in bytes, and the meta key it is stored under (64 hex digits). */
#define CHALLENGES_KEY_SIZE 32
#define CHALLENGES_META_KEY "challenge_key"

/* How long past its expiry a used challenge stays recorded (the sweep's margin): servers whose
 * clocks differ by less never take a challenge that another server forgot as used. */
#define CHALLENGES_SKEW_MS (10 * 60 * 1000)

/* A challenge id's length: "dvc_" and 75 base64url characters (56 bytes), NUL not included. */
#define CHALLENGES_ID_LEN (4 + 75)

struct challenges;

/* An object without a key yet (challenges_set_key or challenges_load_key), or NULL when out of
 * memory. The caller frees it. */
struct challenges *challenges_new(void);

/* Wipes and frees; NULL is fine. */
void challenges_free(struct challenges *t);

/* Sets the key (copied). */
void challenges_set_key(struct challenges *t, const unsigned char key[CHALLENGES_KEY_SIZE]);

/*
 * Reads the key the store holds, or makes one and stores it when there is none (an insert that
 * keeps a key another server stored first, then a read: every server ends with the same key),
 * and sets it. 0, or -1 with err (one line, no key material) when the store fails or holds a
 * malformed key. The copies made on the way are wiped.
 */
int challenges_load_key(struct challenges *t, struct store *s, char *err, size_t errsz);

/*
 * Makes a challenge for pool_id (at most 39 characters), good until now_ms + ttl_ms: fills id
 * and nonce (CRYPTO_TOKEN_MAX bytes each). 0; -1 when there is no key or randomness.
 */
int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce);

/*
 * Checks the challenge id: 0 with its nonce in nonce (noncesz bytes, at least CRYPTO_TOKEN_MAX)
 * and its expiry in *expires_ms when a server of this store made it for pool_id and it has not
 * expired at now_ms; -1 when it is malformed, forged, another pool's or expired. Checking does
 * not use it up (the registration's transaction does). The MAC is compared in constant time.
 */
int challenges_check(const struct challenges *t, const char *id, const char *pool_id,
                     int64_t now_ms, char *nonce, size_t noncesz, int64_t *expires_ms);

#endif
