/*
 * backoff: exponential backoff with jitter for calls to the server
 * (docs/protocol.md: 1 s doubling to 30 s, with jitter).
 *
 * Each delay is a random value in [cur/2, cur] ("equal jitter"), so that
 * launchers that lost the server together do not come back together, and
 * cur then doubles up to max. A success resets it. Pure: the caller seeds
 * the generator and does the waiting. Owns nothing.
 */
#ifndef DAVIT_LAUNCHER_BACKOFF_H
#define DAVIT_LAUNCHER_BACKOFF_H

#include <stdint.h>

#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS  30000

struct backoff {
    int64_t base_ms;
    int64_t max_ms;
    int64_t cur_ms;
    uint64_t rng;
};

/* Never fails. A zero seed is replaced by a fixed one. */
void backoff_init(struct backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed);

/* The next delay in ms, within [cur/2, cur]; then cur doubles up to max. Never fails. */
int64_t backoff_next(struct backoff *b);

/* After a success: the next delay starts from base again. Never fails. */
void backoff_reset(struct backoff *b);

/* A seed from the clock and the thread, for callers without a better one. Never fails. */
uint64_t backoff_seed(void);

#endif
