/*
 * clock: the two clocks davit reads, in milliseconds. Never fail.
 *
 * Deadlines and durations use the monotonic clock, which no one can step;
 * timestamps that people and other machines read use the wall clock.
 */
#ifndef DAVIT_COMMON_CLOCK_H
#define DAVIT_COMMON_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC: for deadlines, timeouts and measured durations. */
int64_t clock_mono_ms(void);

/* CLOCK_REALTIME: milliseconds since the epoch, for records and logs. */
int64_t clock_wall_ms(void);

#endif
