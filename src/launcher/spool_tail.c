#include "launcher/spool_tail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One whole record at most, plus a read's worth, never more. */
#define TAIL_CAP (SPOOL_HEADER_MAX + SPOOL_PAYLOAD_MAX + 1 + 65536)

int spool_tail_init(struct spool_tail *t, const char *path, uint64_t offset, char *err,
                    size_t errsz)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->offset = offset;
    dbuf_init(&t->buf, TAIL_CAP);
    t->path = strdup(path);
    if (!t->path) {
        snprintf(err, errsz, "spool %s: out of memory", path);
        return -1;
    }
    return 0;
}

void spool_tail_set_key(struct spool_tail *t, const unsigned char key[SPOOL_KEY_LEN])
{
    spool_mac_init(&t->mac, key);
    t->has_key = 1;
}

static int tampered(struct spool_tail *t, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the first verification failure; returns -1. */
static int tampered(struct spool_tail *t, char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(t->tamper, sizeof(t->tamper), "spool tampered: ");
    va_start(ap, fmt);
    vsnprintf(t->tamper + n, sizeof(t->tamper) - (size_t)n, fmt, ap);
    va_end(ap);
    t->tampered = 1;
    snprintf(err, errsz, "%s", t->tamper);
    return -1;
}

/* Checks r against the key, then the sequence. Returns 0, or -1 (tampered).
 * The MAC comes first because until it holds, r's seq is whatever a phase
 * wrote: a forged record that reuses or skips a number is a bad MAC, and
 * only a genuine record out of place is a repeat or a gap. */
static int verify(struct spool_tail *t, const struct spool_record *r, char *err, size_t errsz)
{
    unsigned long long want = (unsigned long long)t->seq + 1;
    if (!spool_mac_verify(&t->mac, r))
        return tampered(t, err, errsz, "record %llu has a bad MAC", want);
    if (r->seq < want)
        return tampered(t, err, errsz, "record %llu is followed by a repeated record %llu",
                        (unsigned long long)t->seq, (unsigned long long)r->seq);
    if (r->seq > want)
        return tampered(t, err, errsz, "record %llu is missing (the next one is %llu)", want,
                        (unsigned long long)r->seq);
    return 0;
}

void spool_tail_on_checked(struct spool_tail *t, spool_tail_bytes_fn fn, void *arg)
{
    t->checked = fn;
    t->checked_arg = arg;
}

/* The first used bytes of the buffer were handed over: they go, and the
 * offset moves past them. */
static void consume(struct spool_tail *t, size_t used)
{
    if (used && t->checked && t->has_key)
        t->checked(t->checked_arg, t->offset, t->buf.data, used);
    dbuf_consume(&t->buf, used);
    t->offset += used;
}

int spool_tail_read(struct spool_tail *t, spool_tail_fn fn, void *arg, char *err, size_t errsz)
{
    int count = 0;

    if (t->tampered) {
        snprintf(err, errsz, "%s", t->tamper);
        return -1;
    }

    if (t->fd < 0) {
        t->fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (t->fd < 0) {
            if (errno == ENOENT)
                return 0;
            snprintf(err, errsz, "spool %s: open: %s", t->path, strerror(errno));
            return -1;
        }
    }
    if (t->has_key) {
        /* O_APPEND writers never shrink it: only a truncation does. */
        struct stat st;
        if (fstat(t->fd, &st) < 0) {
            snprintf(err, errsz, "spool %s: stat: %s", t->path, strerror(errno));
            return -1;
        }
        if ((uint64_t)st.st_size < t->offset + t->buf.len)
            return tampered(t, err, errsz, "the spool shrank to %lld bytes after %llu were read",
                            (long long)st.st_size, (unsigned long long)(t->offset + t->buf.len));
    }
    for (;;) {
        /* Read as much as fits; a full buffer always holds a complete record. */
        size_t room = t->buf.cap - t->buf.len;
        int eof = 0;
        if (room > 0) {
            char chunk[65536];
            size_t want = room < sizeof(chunk) ? room : sizeof(chunk);
            ssize_t n = pread(t->fd, chunk, want, (off_t)(t->offset + t->buf.len));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                snprintf(err, errsz, "spool %s: read at %llu: %s", t->path,
                         (unsigned long long)(t->offset + t->buf.len), strerror(errno));
                return -1;
            }
            if (n == 0)
                eof = 1;
            else if (dbuf_add(&t->buf, chunk, (size_t)n) < 0) {
                snprintf(err, errsz, "spool %s: %s", t->path, strerror(errno));
                return -1;
            }
        }
        size_t used = 0;
        int stop = 0;
        while (used < t->buf.len && !stop) {
            struct spool_record r;
            ssize_t n = spool_parse(t->buf.data + used, t->buf.len - used, &r);
            if (n == 0)
                break;
            int bad = 0;
            if (t->has_key && n < 0)
                bad = tampered(t, err, errsz, "record %llu is malformed (at offset %llu)",
                               (unsigned long long)t->seq + 1,
                               (unsigned long long)(t->offset + used));
            else if (t->has_key)
                bad = verify(t, &r, err, errsz);
            else if (n < 0 || (t->seq && r.seq != t->seq + 1))
                bad = -1;
            if (bad) {
                if (!t->tampered)
                    snprintf(err, errsz, "spool %s: corrupt record at offset %llu", t->path,
                             (unsigned long long)(t->offset + used));
                consume(t, used);
                return -1;
            }
            used += (size_t)n;
            t->seq = r.seq;
            count++;
            if (fn && fn(&r, arg) < 0)
                stop = 1;
        }
        /* Consumed once per read: records point into the buffer until here. */
        consume(t, used);
        if (stop || eof)
            break;
        if (used == 0 && t->buf.len == t->buf.cap) {
            if (t->has_key)
                return tampered(t, err, errsz, "record %llu is malformed (at offset %llu)",
                                (unsigned long long)t->seq + 1, (unsigned long long)t->offset);
            snprintf(err, errsz, "spool %s: corrupt record at offset %llu", t->path,
                     (unsigned long long)t->offset);
            return -1;
        }
    }
    return count;
}

size_t spool_tail_pending(const struct spool_tail *t)
{
    return t->buf.len;
}

void spool_tail_free(struct spool_tail *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    free(t->path);
    t->path = NULL;
    dbuf_free(&t->buf);
    spool_mac_wipe(&t->mac);
    t->has_key = 0;
}
