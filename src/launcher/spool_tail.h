/*
 * spool_tail: follows a growing spool file (docs/run-directory.md) by byte
 * offset and hands each complete record to a callback.
 *
 * The offset is the byte after the last record handed over; a caller that
 * saves it can later resume with no record lost or repeated. A record still
 * being written is left for the next read. The file need not exist yet (the
 * worker creates it). Owns one file descriptor and one capped buffer.
 */
#ifndef DAVIT_LAUNCHER_SPOOL_TAIL_H
#define DAVIT_LAUNCHER_SPOOL_TAIL_H

#include "common/dbuf.h"
#include "common/spool.h"

#include <stdint.h>

struct spool_tail {
    char *path;
    int fd;          /* -1 until the file exists */
    uint64_t offset; /* after the last record handed over */
    uint64_t seq;    /* seq of that record, 0 before any */
    struct dbuf buf; /* bytes read past offset: at most one partial record */
};

/* Returns 0 from the callback to go on, -1 to stop reading (the record counts as handed over). */
typedef int (*spool_tail_fn)(const struct spool_record *r, void *arg);

/* Prepares to read path from offset. Returns 0, or -1 with err (out of memory). */
int spool_tail_init(struct spool_tail *t, const char *path, uint64_t offset, char *err,
                    size_t errsz);

/*
 * Reads what has been appended and calls fn for each complete record, in
 * order. Returns the number of records handed over (0 when there is nothing
 * new or the file does not exist yet), or -1 with err on an I/O error or a
 * corrupt record (the offset is then left before it).
 */
int spool_tail_read(struct spool_tail *t, spool_tail_fn fn, void *arg, char *err, size_t errsz);

/* Bytes read but not yet a complete record (a torn end once the writer is gone). */
size_t spool_tail_pending(const struct spool_tail *t);

/* Closes the file and frees the buffer. Safe to call twice. */
void spool_tail_free(struct spool_tail *t);

#endif
