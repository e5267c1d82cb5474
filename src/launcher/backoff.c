#include "launcher/backoff.h"

#include <pthread.h>
#include <time.h>

void backoff_init(struct backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
    b->cur_ms = b->base_ms;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: plenty for spreading retries, and reproducible in tests. */
static uint64_t next_random(struct backoff *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545f4914f6cdd1dull;
}

int64_t backoff_next(struct backoff *b)
{
    int64_t half = b->cur_ms / 2;
    int64_t delay = half + (int64_t)(next_random(b) % (uint64_t)(b->cur_ms - half + 1));
    b->cur_ms = b->cur_ms > b->max_ms / 2 ? b->max_ms : b->cur_ms * 2;
    return delay;
}

void backoff_reset(struct backoff *b)
{
    b->cur_ms = b->base_ms;
}

uint64_t backoff_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^
           ((uint64_t)(uintptr_t)pthread_self() << 1);
}
