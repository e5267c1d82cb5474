/*
 * output: turns the bytes a phase writes into spool records.
 *
 * One output_stream per pipe (stdout, stderr). On the way to the recorder,
 * the stream
 *   1. picks out "::add-mask::VALUE" lines and adds VALUE to the mask set,
 *   2. masks every known secret (mask.h),
 *   3. writes what is left as records of the stream's type.
 * Memory is bounded: a candidate command line is held up to OUTPUT_LINE_MAX
 * bytes, held secret prefixes up to the longest secret, and each call's
 * output up to OUTPUT_FEED_MAX bytes of input.
 */
#ifndef DAVIT_WORKER_OUTPUT_H
#define DAVIT_WORKER_OUTPUT_H

#include "common/dbuf.h"
#include "worker/mask.h"
#include "worker/recorder.h"

#define OUTPUT_ADD_MASK "::add-mask::"
#define OUTPUT_LINE_MAX 4096        /* longer lines are never taken as commands */
#define OUTPUT_FEED_MAX (64 * 1024) /* the most a caller passes to one output_feed() */

struct output_stream {
    char type; /* SPOOL_STDOUT or SPOOL_STDERR */
    int at_line_start;
    struct dbuf line; /* a line that may be an ::add-mask:: command */
    struct mask_stream mask;
    struct dbuf out; /* masked bytes of this call, before they are recorded */
};

/* Never fails. */
void output_stream_init(struct output_stream *s, char type);
void output_stream_free(struct output_stream *s);

/*
 * Takes len (at most OUTPUT_FEED_MAX) bytes from a phase, adds run-time masks
 * to m, and records the masked bytes under phase. Returns 0, or -1 when the
 * spool cannot be written or memory runs out.
 */
int output_feed(struct output_stream *s, struct mask_set *m, struct recorder *rec,
                const char *phase, const char *data, size_t len);

/* The pipe closed: records everything still held. Same errors. */
int output_flush(struct output_stream *s, struct mask_set *m, struct recorder *rec,
                 const char *phase);

#endif
