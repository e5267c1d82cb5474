#include "common/dbuf.h"

#include "common/secure.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dbuf_init(struct dbuf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
    b->wipe = 0;
}

void dbuf_init_secret(struct dbuf *b, size_t cap)
{
    dbuf_init(b, cap);
    b->wipe = 1;
}

/* Empty, with the same cap and wipe flag; the contents are someone else's now. */
static void dbuf_forget(struct dbuf *b)
{
    int wipe = b->wipe;
    dbuf_init(b, b->cap);
    b->wipe = wipe;
}

void dbuf_free(struct dbuf *b)
{
    if (b->wipe)
        secure_free(b->data);
    else
        free(b->data);
    dbuf_forget(b);
}

void dbuf_reset(struct dbuf *b)
{
    if (b->wipe)
        secure_wipe(b->data, b->len);
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* realloc, which for a buffer of secrets must not leave the old block as it was. */
static char *dbuf_realloc(struct dbuf *b, size_t alloc)
{
    if (!b->wipe)
        return realloc(b->data, alloc);
    char *p = malloc(alloc);
    if (p && b->data) {
        memcpy(p, b->data, b->len + 1);
        secure_free(b->data);
    }
    return p;
}

/* Sets the allocation to alloc bytes (> len); the contents stay, terminated. */
static int dbuf_resize(struct dbuf *b, size_t alloc)
{
    char *p = dbuf_realloc(b, alloc);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    p[b->len] = '\0';
    b->data = p;
    b->alloc = alloc;
    return 0;
}

/* Makes room for n more bytes plus the terminating NUL. */
static int dbuf_grow(struct dbuf *b, size_t n)
{
    if (n > b->cap || b->len > b->cap - n) {
        errno = ENOSPC;
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->alloc)
        return 0;
    size_t alloc = b->alloc ? b->alloc : 64;
    while (alloc < need)
        alloc = alloc > ((size_t)-1) / 2 ? need : alloc * 2;
    if (alloc > b->cap + 1)
        alloc = b->cap + 1;
    return dbuf_resize(b, alloc);
}

int dbuf_reserve(struct dbuf *b, size_t n)
{
    if (n > b->cap || b->len > b->cap - n) {
        errno = ENOSPC;
        return -1;
    }
    size_t need = b->len + n + 1;
    return need <= b->alloc ? 0 : dbuf_resize(b, need);
}

int dbuf_add(struct dbuf *b, const void *p, size_t n)
{
    if (dbuf_grow(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int dbuf_addstr(struct dbuf *b, const char *s)
{
    return dbuf_add(b, s, strlen(s));
}

int dbuf_addch(struct dbuf *b, char c)
{
    return dbuf_add(b, &c, 1);
}

int dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small)) {
        int rc = dbuf_add(b, small, (size_t)n);
        if (b->wipe)
            secure_wipe(small, (size_t)n);
        return rc;
    }

    if (dbuf_grow(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void dbuf_consume(struct dbuf *b, size_t n)
{
    if (n >= b->len) {
        dbuf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->wipe)
        secure_wipe(b->data + b->len, n); /* the tail the move left behind */
    b->data[b->len] = '\0';
}

const char *dbuf_str(const struct dbuf *b)
{
    return b->data ? b->data : "";
}

char *dbuf_take(struct dbuf *b)
{
    char *p = b->data;
    if (!p) {
        p = strdup("");
        if (!p)
            errno = ENOMEM;
    }
    dbuf_forget(b);
    return p;
}

int dbuf_read_file(struct dbuf *b, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t start = b->len;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        if (dbuf_add(b, chunk, (size_t)n) < 0)
            goto fail;
    }
    close(fd);
    if (b->wipe)
        secure_wipe(chunk, sizeof(chunk));
    return 0;

fail:;
    int saved = errno;
    close(fd);
    if (b->wipe) {
        secure_wipe(chunk, sizeof(chunk));
        secure_wipe(b->data ? b->data + start : NULL, b->len - start);
    }
    b->len = start;
    if (b->data)
        b->data[start] = '\0';
    errno = saved;
    return -1;
}
