/*
 * spool_tail: follows a growing spool file (docs/run-directory.md) by byte
 * offset and hands each complete record to a callback.
 *
 * The offset is the byte after the last record handed over; a caller that
 * saves it can later resume with no record lost or repeated. A record still
 * being written is left for the next read. The file need not exist yet (the
 * worker creates it). Owns one file descriptor and one capped buffer.
 *
 * With the run's key set (spool_tail_set_key), it verifies every record
 * before handing it over: its MAC (spool_mac.h), that its seq is the one
 * after the last, and that the file never shrinks below what was read.
 * The first record that fails stops the tail for good: nothing from there on
 * is handed over, and the error starts with "spool tampered: " and says
 * which (docs/run-directory.md, "Integrity of the spool"). Without a key it
 * only parses, for tools and tests.
 */
#ifndef DAVIT_LAUNCHER_SPOOL_TAIL_H
#define DAVIT_LAUNCHER_SPOOL_TAIL_H

#include "common/dbuf.h"
#include "common/spool.h"
#include "common/spool_mac.h"

#include <stdint.h>

/* The bytes of records that passed their checks, at their offset in the file. */
typedef void (*spool_tail_bytes_fn)(void *arg, uint64_t offset, const char *data, size_t len);

struct spool_tail {
    char *path;
    int fd;          /* -1 until the file exists */
    uint64_t offset; /* after the last record handed over */
    uint64_t seq;    /* seq of that record, 0 before any */
    struct dbuf buf; /* bytes read past offset: at most one partial record */
    int has_key;
    struct spool_mac mac;        /* wiped by spool_tail_free */
    int tampered;                /* a verification failed; every later read fails */
    char tamper[256];            /* its message */
    spool_tail_bytes_fn checked; /* may be NULL */
    void *checked_arg;
};

/* Returns 0 from the callback to go on, -1 to stop reading (the record counts as handed over). */
typedef int (*spool_tail_fn)(const struct spool_record *r, void *arg);

/* Prepares to read path from offset. Returns 0, or -1 with err (out of memory). */
int spool_tail_init(struct spool_tail *t, const char *path, uint64_t offset, char *err,
                    size_t errsz);

/* Verifies every record from now on with the run's key (copied as MAC state). */
void spool_tail_set_key(struct spool_tail *t, const unsigned char key[SPOOL_KEY_LEN]);

/*
 * With a key set, hands fn the bytes of the records that passed their checks,
 * after they went to the record callback, so that a reader (the shipper) can
 * pass them on without reading the file, and checking them, again. fn may be
 * NULL.
 */
void spool_tail_on_checked(struct spool_tail *t, spool_tail_bytes_fn fn, void *arg);

/*
 * Reads what has been appended and calls fn for each complete record, in
 * order. Returns the number of records handed over (0 when there is nothing
 * new or the file does not exist yet), or -1 with err on an I/O error or a
 * corrupt record (the offset is then left before it). With a key, a record
 * that fails verification is -1 with t->tampered set and err "spool
 * tampered: …"; every later call returns the same.
 */
int spool_tail_read(struct spool_tail *t, spool_tail_fn fn, void *arg, char *err, size_t errsz);

/* Bytes read but not yet a complete record (a torn end once the writer is gone). */
size_t spool_tail_pending(const struct spool_tail *t);

/* Closes the file, frees the buffer and wipes the key's state. Safe to call twice. */
void spool_tail_free(struct spool_tail *t);

#endif
