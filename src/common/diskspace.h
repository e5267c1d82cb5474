/*
 * diskspace: how much room the filesystem under a path has left, and when
 * that is too little. Used where running out of space must be named rather
 * than show up as an unexplained failure (the launcher's state directory).
 * Keeps no state; libc only.
 */
#ifndef DAVIT_COMMON_DISKSPACE_H
#define DAVIT_COMMON_DISKSPACE_H

#include <stddef.h>
#include <stdint.h>

struct diskspace {
    uint64_t free_bytes;  /* available to an unprivileged writer */
    uint64_t total_bytes; /* the filesystem's size */
};

/* Fills d for the filesystem holding path. Returns 0, or -1 with errno. */
int diskspace_get(const char *path, struct diskspace *d);

/*
 * True when space runs low: less than 512 MiB and less than 5% of the
 * filesystem left (a small filesystem is not "low" merely for being small).
 */
int diskspace_low(const struct diskspace *d);

/* True when it is all but gone: less than 1 MiB left. */
int diskspace_full(const struct diskspace *d);

/* bytes as "12.3 MiB" into buf. Returns buf. Never fails. */
const char *diskspace_format(uint64_t bytes, char *buf, size_t size);

#endif
