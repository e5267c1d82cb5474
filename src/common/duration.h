/*
 * duration: parses and prints the durations used in settings, environment
 * variables and the CLI ("90", "90s", "1500ms", "7m", "1h30m").
 *
 * A bare number means seconds. Values are carried as milliseconds in an
 * int64_t. Pure functions, no state.
 */
#ifndef DAVIT_COMMON_DURATION_H
#define DAVIT_COMMON_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The largest duration accepted: 100 days, far beyond any sane timeout. */
#define DURATION_MAX_MS (100LL * 24 * 3600 * 1000)

/*
 * Parses s into *ms. Returns 0, or -1 when s is empty, has an unknown unit,
 * a negative or fractional number, or exceeds DURATION_MAX_MS. *ms is
 * untouched on failure.
 */
int duration_parse(const char *s, int64_t *ms);

/* Writes ms as the shortest exact form ("70m", "1500ms", "0s"). Never fails;
 * truncates to size like snprintf. Returns buf. */
char *duration_format(int64_t ms, char *buf, size_t size);

#endif
