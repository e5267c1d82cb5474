/*
 * challenges: the registration challenges handed out and not used yet, kept
 * in memory only, in a table of fixed size.
 *
 * Anyone who knows a pool's id may ask for a challenge (the launcher is not
 * yet authenticated), so asking must cost the server nothing that lasts: no
 * database write, no memory beyond the table. A new challenge takes a free
 * or expired entry; when every entry holds a live challenge, the request is
 * refused (the handler answers 429, which a launcher retries later) rather
 * than an open challenge replaced: a launcher treats a register refused for
 * its challenge as final, so a flood must never void a challenge already
 * given. A restart forgets every challenge.
 * Thread-safe; the table owns its entries and wipes them when freed.
 */
#ifndef DAVIT_SERVER_CHALLENGES_H
#define DAVIT_SERVER_CHALLENGES_H

#include <stddef.h>
#include <stdint.h>

/* Open challenges at most. Registration takes a challenge within milliseconds of asking for it
 * on an idle server, but in a storm of 10,000 launchers starting at once (bench/load) the TLS
 * handshakes queue for seconds between a launcher's challenge and its register, and 4096 entries
 * filled (6,016 answers 429 in one run). 16384 entries of 144 bytes are 2.3 MB; free entries are
 * handed out lowest first, so only as much of it is resident as was ever open at once. An id
 * names its entry, so taking costs the same at any table size. */
#define CHALLENGES_MAX 16384

struct challenges;

/* An empty table, or NULL when out of memory. The caller frees it. */
struct challenges *challenges_new(void);

/* Wipes and frees the table; NULL is fine. */
void challenges_free(struct challenges *t);

/* challenges_issue's answer when every entry holds a live challenge. */
#define CHALLENGES_FULL (-2)

/*
 * Makes a challenge for pool_id (at most 39 characters), good for ttl_ms from
 * now_ms: fills id and nonce (CRYPTO_TOKEN_MAX bytes each). 0; -1 when there
 * is no randomness; CHALLENGES_FULL when no entry is free or expired.
 */
int challenges_issue(struct challenges *t, const char *pool_id, int64_t now_ms, int64_t ttl_ms,
                     char *id, char *nonce);

/*
 * Takes the challenge id, which is forgotten whatever follows, so every
 * challenge is used at most once: 0 with its nonce in nonce (noncesz bytes)
 * when it was pool_id's and has not expired at now_ms; -1 when it is
 * unknown, used, expired, replaced or another pool's.
 */
int challenges_take(struct challenges *t, const char *id, const char *pool_id, int64_t now_ms,
                    char *nonce, size_t noncesz);

#endif
