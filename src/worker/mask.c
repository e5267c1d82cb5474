#include "worker/mask.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mask_set_init(struct mask_set *m)
{
    memset(m, 0, sizeof(*m));
}

void mask_set_free(struct mask_set *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->values[i]);
    free(m->values);
    free(m->lens);
    mask_set_init(m);
}

static int add_one(struct mask_set *m, const char *value, size_t len)
{
    if (len == 0)
        return 0;
    if (len > MASK_MAX_VALUE) {
        errno = ENOSPC;
        return -1;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->lens[i] == len && memcmp(m->values[i], value, len) == 0)
            return 0;
    if (m->n >= MASK_MAX_COUNT) {
        errno = ENOSPC;
        return -1;
    }
    char **values = realloc(m->values, (m->n + 1) * sizeof(*values));
    if (!values)
        return -1;
    m->values = values;
    size_t *lens = realloc(m->lens, (m->n + 1) * sizeof(*lens));
    if (!lens)
        return -1;
    m->lens = lens;
    char *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, value, len);
    m->values[m->n] = copy;
    m->lens[m->n] = len;
    m->n++;
    if (len > m->maxlen)
        m->maxlen = len;
    m->first[(unsigned char)value[0]] = 1;
    return 0;
}

int mask_set_add(struct mask_set *m, const char *value, size_t len)
{
    if (add_one(m, value, len) < 0)
        return -1;
    const char *nl = memchr(value, '\n', len);
    if (!nl)
        return 0;
    /* Each line on its own, without its line ending. */
    const char *p = value, *end = value + len;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (add_one(m, p, n) < 0)
            return -1;
        p = e + 1;
    }
    return 0;
}

void mask_stream_init(struct mask_stream *s)
{
    /* Held output never exceeds one chunk plus the longest value. */
    dbuf_init(&s->held, 2 * MASK_MAX_VALUE + 128 * 1024);
    s->covered = 0;
}

void mask_stream_free(struct mask_stream *s)
{
    dbuf_free(&s->held);
}

/*
 * The length of the longest value that starts at buf[0] and ends within len
 * bytes (0: none). Sets *partial when a longer value matches all len bytes
 * and could still complete once more output arrives (never when final).
 */
static size_t longest_at(const struct mask_set *m, const char *buf, size_t len, int final,
                         int *partial)
{
    size_t match = 0;
    *partial = 0;
    if (!m->first[(unsigned char)buf[0]])
        return 0;
    for (size_t k = 0; k < m->n; k++) {
        size_t vl = m->lens[k];
        if (vl <= len) {
            if (vl > match && memcmp(buf, m->values[k], vl) == 0)
                match = vl;
        } else if (!final && memcmp(buf, m->values[k], len) == 0) {
            *partial = 1;
        }
    }
    return match;
}

/*
 * Scans buf[0, len). The longest value at a position opens a mask, and a
 * value that starts inside the mask and ends after it extends it, so that
 * values that overlap (or a value that overlaps itself) leave no byte of
 * either visible; each mask is written once, as MASK_TEXT. Stops where a
 * value could still complete when more arrives (unless final), and returns
 * in *consumed how many bytes of buf were dealt with; the rest is to be held.
 * *covered is, on entry and on return, how many bytes at the start of what
 * is held belong to a mask already written.
 */
static int scan(const struct mask_set *m, const char *buf, size_t len, int final, struct dbuf *out,
                size_t *consumed, size_t *covered)
{
    size_t j = 0, end = *covered; /* buf[.., end) is inside a mask */
    size_t plain = end;           /* buf[plain, ..) is not masked yet */

    if (m->n == 0) {
        *consumed = len;
        return dbuf_add(out, buf, len);
    }
    while (j < len) {
        int partial;
        size_t r = longest_at(m, buf + j, len - j, final, &partial);
        if (partial)
            break; /* a longer value may still complete here: wait for more */
        if (r && end <= j) {
            if (dbuf_add(out, buf + plain, j - plain) < 0 || dbuf_addstr(out, MASK_TEXT) < 0)
                return -1;
        }
        if (r && j + r > end)
            end = plain = j + r;
        j++;
    }
    if (plain < j && dbuf_add(out, buf + plain, j - plain) < 0)
        return -1;
    *consumed = j;
    *covered = end > j ? end - j : 0;
    return 0;
}

int mask_feed(const struct mask_set *m, struct mask_stream *s, const char *data, size_t len,
              struct dbuf *out)
{
    size_t used;

    if (s->held.len == 0) {
        if (scan(m, data, len, 0, out, &used, &s->covered) < 0)
            return -1;
        return dbuf_add(&s->held, data + used, len - used);
    }
    if (dbuf_add(&s->held, data, len) < 0)
        return -1;
    if (scan(m, s->held.data, s->held.len, 0, out, &used, &s->covered) < 0)
        return -1;
    dbuf_consume(&s->held, used);
    return 0;
}

int mask_flush(const struct mask_set *m, struct mask_stream *s, struct dbuf *out)
{
    size_t used;
    if (s->held.len == 0)
        return 0;
    if (scan(m, s->held.data, s->held.len, 1, out, &used, &s->covered) < 0)
        return -1;
    dbuf_reset(&s->held);
    s->covered = 0;
    return 0;
}
