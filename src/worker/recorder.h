/*
 * recorder: appends records to the run's spool file (format in
 * src/common/spool.h) and, when asked, echoes them readably to the worker's
 * stdout and stderr for `docker logs`.
 *
 * Owns the spool's file descriptor, the record sequence and the run key's
 * MAC state (spool_mac.h): every record is signed, so that a phase that
 * writes to the spool cannot pass for the worker. The spool is
 * created with O_EXCL so that a run directory is never used twice. A failed
 * write is sticky: once the spool cannot be written the run cannot be
 * recorded; the caller checks r->failed and stops.
 */
#ifndef DAVIT_WORKER_RECORDER_H
#define DAVIT_WORKER_RECORDER_H

#include "common/spool_mac.h"

#include <stddef.h>
#include <stdint.h>

struct recorder {
    int fd;
    uint64_t seq;
    struct spool_mac mac; /* wiped by recorder_close */
    int echo;
    int failed; /* errno of the first failed write, 0 if none */
};

/*
 * Creates the spool in the directory open at dirfd, to be signed with key
 * (the caller wipes its copy). Returns 0, or -1 with err set (e.g. "spool:
 * already exists: this run directory was used before").
 */
int recorder_open(struct recorder *r, int dirfd, const unsigned char key[SPOOL_KEY_LEN], int echo,
                  char *err, size_t errsz);

/*
 * Appends data as records of the given type and phase ("" for none),
 * splitting it into records of at most SPOOL_PAYLOAD_MAX bytes. An empty
 * payload still makes one record. Returns 0, or -1 when the spool cannot be
 * written (and every later call fails too).
 */
int recorder_write(struct recorder *r, char type, const char *phase, const void *data, size_t len);

/* recorder_write() of a formatted text payload (at most 4 KiB). */
int recorder_printf(struct recorder *r, char type, const char *phase, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Flushes the spool to disk. Returns 0 or -1. */
int recorder_sync(struct recorder *r);

/* Closes the spool and wipes the MAC state. Never fails. */
void recorder_close(struct recorder *r);

#endif
