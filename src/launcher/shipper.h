/*
 * shipper: sends a run's spool to the server by offset (docs/protocol.md,
 * "Logs"), in batches of whole records.
 *
 * The spool on disk is the buffer: the shipper keeps only the offset the
 * server acknowledged, and reads the next batch from the file when it is
 * due: at once for the first bytes, then at most every SHIP_INTERVAL_MS, or
 * as soon as SHIP_BATCH_MAX bytes wait. A failed call is retried after an
 * exponential backoff with jitter (backoff.h). A batch is read into a
 * buffer allocated for the call and freed after it, so an idle run holds no
 * buffer. Owns a file descriptor and its path.
 *
 * Each record's MAC is checked once. spool_tail checks the records as it
 * reads them and hands their bytes over (shipper_verified): the shipper sends
 * those very bytes, never reading the file again, so a phase that rewrites
 * the spool after the check cannot change what is sent. It keeps at most
 * SHIP_HELD_MAX such bytes; what it could not keep (the server was slow, or a
 * restart) is read from the file again, and then, with the run's key set
 * (shipper_set_key), every record of it is checked before it is sent: the
 * first one that fails stops shipping for good (SHIP_TAMPERED), and nothing
 * from it on is sent.
 */
#ifndef DAVIT_LAUNCHER_SHIPPER_H
#define DAVIT_LAUNCHER_SHIPPER_H

#include "common/dbuf.h"
#include "common/spool_mac.h"
#include "launcher/backend.h"
#include "launcher/backoff.h"

#include <stddef.h>
#include <stdint.h>

/* The server takes up to 8 MiB a call (BODY_CAP_LOG); a batch is one commit there. */
#define SHIP_BATCH_MAX   (4u << 20)
#define SHIP_HELD_MAX    (2 * SHIP_BATCH_MAX)
#define SHIP_INTERVAL_MS 200

enum ship_status {
    SHIP_IDLE,         /* nothing due */
    SHIP_SENT,         /* a batch was acknowledged (acked moved) */
    SHIP_RETRY,        /* the server could not take it: retry_at is set */
    SHIP_UNAUTHORIZED, /* the session is gone: register again, then retry */
    SHIP_GONE,         /* 403, or 409 "the run has ended": not this launcher's run any more */
    SHIP_FULL,         /* 413: the server's log cap is reached; nothing more is shipped */
    SHIP_ERROR,        /* the spool cannot be read, or is corrupt */
    SHIP_TAMPERED,     /* a record's MAC is wrong: nothing more is shipped */
};

struct shipper {
    int64_t run_id;
    char *path;
    int fd;
    uint64_t acked;   /* the server's end of the log */
    int64_t last_ms;  /* monotonic time of the last batch sent; 0 never */
    int64_t retry_at; /* monotonic; 0 none */
    int full;
    int tampered; /* SHIP_TAMPERED was returned */
    int has_key;
    struct spool_mac mac; /* wiped by shipper_free */
    struct backoff bo;
    /* Checked bytes handed over by shipper_verified, from offset held_at on:
     * whole records, not yet acknowledged. Freed once they are. */
    struct dbuf held;
    uint64_t held_at;
};

/* Prepares to ship path from acked. Returns 0, or -1 (out of memory). */
int shipper_init(struct shipper *sh, int64_t run_id, const char *path, uint64_t acked,
                 uint64_t seed);
void shipper_free(struct shipper *sh);

/* Checks every record against the run's key from now on (copied as MAC state). */
void shipper_set_key(struct shipper *sh, const unsigned char key[SPOOL_KEY_LEN]);

/*
 * Hands over the bytes of whole records at offset that were checked (their
 * MAC and sequence, spool_tail.h) and will not be read again: they are sent
 * as they are. Bytes that do not follow the ones held, or do not fit, are
 * not kept; they are read from the file when their turn comes. Never fails.
 */
void shipper_verified(struct shipper *sh, uint64_t offset, const char *data, size_t len);

/*
 * How long until a batch is due, given that complete records end at avail:
 * -1 when nothing is to be sent, 0 now, else milliseconds. Pure.
 */
int64_t shipper_due(const struct shipper *sh, uint64_t avail, int64_t now_ms);

/*
 * The length of the whole records at the start of buf[0, len), or -1 when
 * buf does not start with a well-formed record. Pure.
 */
ssize_t shipper_whole(const char *buf, size_t len);

/*
 * Sends one batch from acked (whole records, at most SHIP_BATCH_MAX, before
 * avail) without looking at shipper_due. Returns an enum ship_status; err is
 * set for anything but SHIP_IDLE and SHIP_SENT.
 */
int shipper_step(struct shipper *sh, struct backend *b, uint64_t avail, int64_t now_ms, char *err,
                 size_t errsz);

#endif
