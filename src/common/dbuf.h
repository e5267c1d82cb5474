/*
 * dbuf: a growable byte buffer with a hard size cap.
 *
 * Owns its memory. The contents are always NUL-terminated (the NUL is not
 * counted in len), so a buffer of text can be handed to string functions.
 * Every buffer has a cap chosen by its owner; appends that would go past it
 * fail instead of growing without bound.
 *
 * Errors: functions returning int return 0 on success and -1 on failure with
 * errno set: ENOSPC when the cap would be exceeded, ENOMEM when allocation
 * failed. A failed append leaves the buffer unchanged.
 *
 * A buffer for secrets (made by dbuf_init_secret or DBUF_INIT_SECRET) leaves
 * no copy of its bytes behind: every block it gives up (when it grows, is
 * freed, reset or consumed) is wiped first, and so are the stack buffers
 * its printf and file reading go through. The flag stays through dbuf_free,
 * dbuf_take and dbuf_reset. What dbuf_take hands over is the caller's to wipe
 * (secure_free_str). common/secure.h says where davit uses it.
 */
#ifndef DAVIT_COMMON_DBUF_H
#define DAVIT_COMMON_DBUF_H

#include <stddef.h>

struct dbuf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t alloc;
    size_t cap; /* the most bytes len may ever reach */
    int wipe;   /* holds secrets: wipe every block given up */
};

#define DBUF_INIT(c)                                                                               \
    {                                                                                              \
        NULL, 0, 0, (c), 0                                                                         \
    }
#define DBUF_INIT_SECRET(c)                                                                        \
    {                                                                                              \
        NULL, 0, 0, (c), 1                                                                         \
    }

/* Never fails. */
void dbuf_init(struct dbuf *b, size_t cap);
/* The same, for a buffer that will hold secrets (above). Never fails. */
void dbuf_init_secret(struct dbuf *b, size_t cap);
/* Frees the contents and leaves an empty buffer with the same cap. */
void dbuf_free(struct dbuf *b);
/* Empties the buffer but keeps its allocation. Never fails. */
void dbuf_reset(struct dbuf *b);

/*
 * Allocates room for n more bytes at once (a body whose length is known), so
 * that adding them copies nothing again. -1 with errno ENOSPC past the cap,
 * ENOMEM when out of memory; the contents are unchanged either way.
 */
int dbuf_reserve(struct dbuf *b, size_t n);
int dbuf_add(struct dbuf *b, const void *p, size_t n);
int dbuf_addstr(struct dbuf *b, const char *s);
int dbuf_addch(struct dbuf *b, char c);
int dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes the first n bytes (n <= len). Never fails. */
void dbuf_consume(struct dbuf *b, size_t n);

/* Returns the contents, never NULL ("" when empty). Valid until the next call. */
const char *dbuf_str(const struct dbuf *b);

/*
 * Hands the contents to the caller, who frees them; the buffer is left empty.
 * Returns NULL (errno ENOMEM) only if an empty buffer's string cannot be made.
 */
char *dbuf_take(struct dbuf *b);

/*
 * Reads the whole file at path into b (appending). Fails with ENOSPC when the
 * file is larger than the space left under the cap, or with the errno of
 * open/read.
 */
int dbuf_read_file(struct dbuf *b, const char *path);

#endif
