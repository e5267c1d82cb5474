#include "common/dbuf.h"

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
}

void dbuf_free(struct dbuf *b)
{
    free(b->data);
    dbuf_init(b, b->cap);
}

void dbuf_reset(struct dbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
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
    char *p = realloc(b->data, alloc);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    b->data = p;
    b->alloc = alloc;
    return 0;
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
    if ((size_t)n < sizeof(small))
        return dbuf_add(b, small, (size_t)n);

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
    dbuf_init(b, b->cap);
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
    return 0;

fail:;
    int saved = errno;
    close(fd);
    b->len = start;
    if (b->data)
        b->data[start] = '\0';
    errno = saved;
    return -1;
}
