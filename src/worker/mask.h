/*
 * mask: replaces secret values with "***" in a stream of output.
 *
 * A mask_set owns copies of the values to hide. A mask_stream is the state
 * of one output stream (a phase's stdout or stderr): the tail of output that
 * might be the start of a secret is held back until the next chunk shows
 * whether it is one, so that a secret split across two writes is still
 * masked.
 *
 * The rule: at every position the longest value that starts there is found.
 * A value opens a mask; a value that starts inside a mask and ends after it
 * extends that mask (values that overlap, or a value that overlaps itself,
 * as "aba" in "ababa"), so that no byte of any value shows; each mask is
 * written as one MASK_TEXT. Values that only touch are two masks. The output
 * does not depend on how the stream is cut into chunks.
 */
#ifndef DAVIT_WORKER_MASK_H
#define DAVIT_WORKER_MASK_H

#include "common/dbuf.h"

#include <stddef.h>

#define MASK_TEXT      "***"
#define MASK_MAX_COUNT 1024         /* values in one set */
#define MASK_MAX_VALUE (128 * 1024) /* longest value */

struct mask_set {
    char **values;
    size_t *lens;
    size_t n;
    size_t maxlen;
    unsigned char first[256]; /* first[c]: some value starts with byte c */
};

struct mask_stream {
    struct dbuf held; /* output not yet written: may be the start of a secret */
    size_t covered;   /* bytes at the start of held inside a mask already written */
};

/* Never fails. */
void mask_set_init(struct mask_set *m);
void mask_set_free(struct mask_set *m);

/*
 * Adds a value to hide. A value that spans several lines also adds each of
 * its lines, since tools often print secrets line by line. Empty values and
 * values already present are ignored. Returns 0, or -1 (errno ENOSPC past
 * MASK_MAX_COUNT or MASK_MAX_VALUE, ENOMEM).
 */
int mask_set_add(struct mask_set *m, const char *value, size_t len);

/* Never fails. */
void mask_stream_init(struct mask_stream *s);
void mask_stream_free(struct mask_stream *s);

/*
 * Masks data and appends what can be written now to out. What might be the
 * start of a secret stays held in s. Returns 0, or -1 when out or the held
 * buffer is full (errno ENOSPC) or memory runs out.
 */
int mask_feed(const struct mask_set *m, struct mask_stream *s, const char *data, size_t len,
              struct dbuf *out);

/* The stream ended: masks and appends everything held. Same errors. */
int mask_flush(const struct mask_set *m, struct mask_stream *s, struct dbuf *out);

#endif
