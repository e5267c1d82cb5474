/*
 * spool: the record format of the spool file that davit-worker appends to and
 * davit-launcher tails by byte offset (docs/run-directory.md, "The spool").
 *
 * A record is a one-line text header, the payload bytes, and a newline:
 *
 *     @<type> <seq> <unix_ms> <phase> <len> <mac>\n<len bytes>\n
 *
 * The length prefix lets payloads hold any bytes (NUL, invalid UTF-8,
 * newlines), and lets a reader at the tail of a growing file tell a complete
 * record from one still being written. <mac> is 32 lowercase hex digits that
 * authenticate the record with the run's key (spool_mac.h); this module only
 * carries it, it neither computes nor checks it. This module only encodes and
 * decodes; it does no I/O and keeps no state.
 */
#ifndef DAVIT_COMMON_SPOOL_H
#define DAVIT_COMMON_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum spool_type {
    SPOOL_STDOUT = 'o',      /* bytes a phase wrote to stdout */
    SPOOL_STDERR = 'e',      /* bytes a phase wrote to stderr */
    SPOOL_COMMAND = 'c',     /* a command is about to run: "<stage> <command>" */
    SPOOL_PHASE_START = 'S', /* a phase starts; empty payload */
    SPOOL_PHASE_END = 'E',   /* "outcome=… exit=… duration_ms=…" */
    SPOOL_NOTE = 'W',        /* a message from the worker itself, for the user */
    SPOOL_RESULT = 'R',      /* the last record: "outcome=… phase=… exit=… reason=…" */
};

#define SPOOL_FILE        "spool"
#define SPOOL_PHASE_MAX   64          /* longest phase name */
#define SPOOL_PAYLOAD_MAX (64 * 1024) /* writers split larger output */
#define SPOOL_HEADER_MAX  160         /* longest possible header, newline included */
#define SPOOL_MAC_HEX     32          /* hex digits of a record's MAC */
#define SPOOL_NO_PHASE    "-"

struct spool_record {
    char type;
    uint64_t seq;    /* 1, 2, 3… in file order */
    int64_t time_ms; /* wall clock, milliseconds since the epoch */
    char phase[SPOOL_PHASE_MAX + 1];
    const char *data; /* the payload; points into the parsed buffer */
    size_t len;
    char mac[SPOOL_MAC_HEX + 1]; /* lowercase hex, as in the header */
};

/* True if name is a valid phase name: 1 to 64 of [A-Za-z0-9_.-]. */
int spool_phase_name_ok(const char *name);

/* True if t is one of enum spool_type. */
int spool_type_ok(int t);

/*
 * Writes r's header (everything before the payload) into buf, which must hold
 * SPOOL_HEADER_MAX bytes. Returns its length. r->phase must be valid or
 * empty (written as "-"); r->mac must be SPOOL_MAC_HEX hex digits (see
 * spool_mac_sign). Never fails.
 */
size_t spool_header(char *buf, const struct spool_record *r);

/*
 * Writes the header without its MAC and final newline, "@<type> <seq>
 * <unix_ms> <phase> <len>", into buf (SPOOL_HEADER_MAX bytes): the part of
 * the header that the MAC covers. Returns its length. Never fails.
 */
size_t spool_header_base(char *buf, const struct spool_record *r);

/*
 * Parses the record at the start of buf[0, len).
 * Returns the bytes it takes (header, payload and newline) when complete,
 * 0 when buf holds only part of a record, and -1 when buf does not start
 * with a well-formed record (corrupt spool; a timestamp above INT64_MAX is
 * one). On success r->data points into buf.
 */
ssize_t spool_parse(const char *buf, size_t len, struct spool_record *r);

/*
 * Looks up key in a "k=v k=v reason=free text" payload and copies its value,
 * NUL-terminated and truncated to size, into out. The key "reason" runs to
 * the end of the payload. Returns 0, or -1 if the key is absent.
 */
int spool_kv(const char *data, size_t len, const char *key, char *out, size_t size);

#endif
