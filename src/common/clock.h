/*
 * clock: the two clocks davit reads, in milliseconds. Never fail.
 *
 * Deadlines and durations use the monotonic clock, which no one can step;
 * timestamps that people and other machines read use the wall clock.
 */
#ifndef DAVIT_COMMON_CLOCK_H
#define DAVIT_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC: for deadlines, timeouts and measured durations. */
int64_t clock_mono_ms(void);

/* The CLOCK_MONOTONIC time at_ms as a timespec: the absolute deadline for a
 * pthread_cond_timedwait on a condition variable made with CLOCK_MONOTONIC. */
struct timespec clock_mono_timespec(int64_t at_ms);

/* CLOCK_REALTIME: milliseconds since the epoch, for records and logs. */
int64_t clock_wall_ms(void);

#endif
