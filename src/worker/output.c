#include "worker/output.h"

#include <string.h>

#define ADD_MASK_LEN (sizeof(OUTPUT_ADD_MASK) - 1)

void output_stream_init(struct output_stream *s, char type)
{
    s->type = type;
    s->at_line_start = 1;
    dbuf_init(&s->line, OUTPUT_LINE_MAX);
    mask_stream_init(&s->mask);
    /* Worst case: every input byte is a one-byte secret, written as "***". */
    dbuf_init(&s->out, 3 * (OUTPUT_FEED_MAX + s->mask.held.cap + OUTPUT_LINE_MAX));
}

void output_stream_free(struct output_stream *s)
{
    dbuf_free(&s->line);
    mask_stream_free(&s->mask);
    dbuf_free(&s->out);
}

/* Sends the candidate line on as ordinary output. */
static int release_line(struct output_stream *s, const struct mask_set *m)
{
    int rc = mask_feed(m, &s->mask, s->line.data, s->line.len, &s->out);
    s->at_line_start = s->line.data[s->line.len - 1] == '\n';
    dbuf_reset(&s->line);
    return rc;
}

/* A complete "::add-mask::VALUE\n" line: the value becomes a mask first, so
 * that the line itself is recorded as "::add-mask::***". */
static int take_command(struct output_stream *s, struct mask_set *m)
{
    size_t vlen = s->line.len - ADD_MASK_LEN - 1;
    const char *value = s->line.data + ADD_MASK_LEN;
    if (vlen && value[vlen - 1] == '\r')
        vlen--;
    /* A value that cannot be added (too many masks) is still hidden in this
     * line, because the line is dropped rather than shown. */
    if (mask_set_add(m, value, vlen) < 0) {
        dbuf_reset(&s->line);
        s->at_line_start = 1;
        return 0;
    }
    return release_line(s, m);
}

static int record_out(struct output_stream *s, struct recorder *rec, const char *phase)
{
    if (s->out.len == 0)
        return 0;
    int rc = recorder_write(rec, s->type, phase, s->out.data, s->out.len);
    dbuf_reset(&s->out);
    return rc;
}

int output_feed(struct output_stream *s, struct mask_set *m, struct recorder *rec,
                const char *phase, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t seg = nl ? (size_t)(nl - (data + i)) + 1 : len - i;

        if (s->line.len == 0 && !(s->at_line_start && data[i] == ':')) {
            /* Ordinary output up to the end of the line. */
            if (mask_feed(m, &s->mask, data + i, seg, &s->out) < 0)
                return -1;
            s->at_line_start = data[i + seg - 1] == '\n';
            i += seg;
            continue;
        }
        /* A line that may be a command: collect it before deciding. */
        if (s->line.len + seg > s->line.cap) {
            size_t room = s->line.cap - s->line.len;
            if (dbuf_add(&s->line, data + i, room) < 0 || release_line(s, m) < 0)
                return -1;
            s->at_line_start = 0;
            i += room;
            continue;
        }
        if (dbuf_add(&s->line, data + i, seg) < 0)
            return -1;
        i += seg;
        size_t cmp = s->line.len < ADD_MASK_LEN ? s->line.len : ADD_MASK_LEN;
        if (memcmp(s->line.data, OUTPUT_ADD_MASK, cmp) != 0) {
            if (release_line(s, m) < 0)
                return -1;
        } else if (s->line.data[s->line.len - 1] == '\n') {
            if (s->line.len > ADD_MASK_LEN ? take_command(s, m) < 0 : release_line(s, m) < 0)
                return -1;
        }
    }
    return record_out(s, rec, phase);
}

int output_flush(struct output_stream *s, struct mask_set *m, struct recorder *rec,
                 const char *phase)
{
    if (s->line.len && release_line(s, m) < 0)
        return -1;
    if (mask_flush(m, &s->mask, &s->out) < 0)
        return -1;
    s->at_line_start = 1;
    return record_out(s, rec, phase);
}
