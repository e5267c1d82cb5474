/*
 * A run's log for users: the stored spool bytes, raw or decoded into text,
 * in full or followed live as a chunked stream that ends with the run.
 */
#include "server/api_logs.h"

#include "server/request.h"
#include "server/state.h"

#include "common/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A log is read in pieces of FOLLOW_READ, each one store call under the store's lock: a
 * piece reads about one stored row. A download of known size (raw, of a run that has ended)
 * gets a buffer of FOLLOW_BLOCK from MHD, which the store fills directly and MHD sends from in
 * large writes. Any other is sent chunked, and MHD hands a chunked body only what is left of
 * the connection's memory (HTTP_CONN_MEMORY in http.c, a few KiB) at a time: those pieces are
 * copied out of f->out, so that the store is not asked once per few KiB. A text download holds
 * about 1 MiB of buffers, a raw one FOLLOW_BLOCK and up to 512 KiB. */
#define FOLLOW_READ  STORE_LOG_ROW_MAX
#define FOLLOW_BLOCK STORE_LOG_ROW_MAX
#define FOLLOW_IDLE  (15 * 1000) /* a parked follow wakes this often to look again */
#define FOLLOW_SLACK (SPOOL_PAYLOAD_MAX + SPOOL_HEADER_MAX + 1)
/* The largest page (limit=) of a log: the web UI reads a big log a page at a
 * time, so that a 100 MB log never lands in a browser tab at once. */
#define LOG_PAGE_MAX (4 * 1024 * 1024)

struct follow {
    struct req *r;
    int64_t run_id;
    int raw, follow, done;
    int64_t next;    /* the stored offset to read from next */
    int64_t end;     /* a page (limit=): stop at the first record boundary at or past it; 0: none */
    struct dbuf in;  /* read, not yet decoded (a record's start) */
    struct dbuf out; /* decoded, not yet sent */
    size_t out_pos;
    char last; /* the last byte of text sent, to start markers on a new line */
};

/* The request ended: req_on_end() hook. */
static void follow_free(void *p)
{
    struct follow *f = p;
    if (!f)
        return;
    dbuf_free(&f->in);
    dbuf_free(&f->out);
    free(f);
}

/* The most text one record can become: its payload plus a marker line. */
#define TEXT_OVERHEAD (SPOOL_PHASE_MAX + 64)

static int text_line(struct follow *f, const char *prefix, const char *a, size_t alen)
{
    if (f->last && f->last != '\n' && dbuf_addch(&f->out, '\n') < 0)
        return -1;
    if (dbuf_addstr(&f->out, prefix) < 0 || dbuf_add(&f->out, a, alen) < 0 ||
        dbuf_addch(&f->out, '\n') < 0)
        return -1;
    f->last = '\n';
    return 0;
}

/*
 * Turns the complete records at the start of f->in into text in f->out,
 * as many as f->out has room for; the rest wait until it has drained.
 * Returns -1 on a corrupt record or when memory runs out.
 */
static int decode(struct follow *f)
{
    size_t off = 0;
    int rc = 0;
    /* The stored offset of f->in's first byte: a page stops at its end. */
    int64_t base = f->next - (int64_t)f->in.len;
    while (off < f->in.len && rc == 0 && !(f->end && base + (int64_t)off >= f->end)) {
        struct spool_record rec;
        ssize_t n = spool_parse(f->in.data + off, f->in.len - off, &rec);
        if (n < 0)
            return -1;
        if (n == 0 || f->out.cap - f->out.len < rec.len + TEXT_OVERHEAD)
            break;
        off += (size_t)n;
        switch (rec.type) {
        case SPOOL_STDOUT:
        case SPOOL_STDERR:
            if (rec.len) {
                rc = dbuf_add(&f->out, rec.data, rec.len);
                f->last = rec.data[rec.len - 1];
            }
            break;
        case SPOOL_COMMAND: {
            const char *sp = memchr(rec.data, ' ', rec.len);
            size_t skip = sp ? (size_t)(sp - rec.data) + 1 : 0;
            rc = text_line(f, "$ ", rec.data + skip, rec.len - skip);
            break;
        }
        case SPOOL_PHASE_START:
            rc = text_line(f, "=== phase ", rec.phase, strlen(rec.phase));
            break;
        case SPOOL_PHASE_END: {
            char pre[SPOOL_PHASE_MAX + 32];
            snprintf(pre, sizeof(pre), "=== phase %s ended: ", rec.phase);
            rc = text_line(f, pre, rec.data, rec.len);
            break;
        }
        case SPOOL_NOTE:
            rc = text_line(f, "davit: ", rec.data, rec.len);
            break;
        case SPOOL_RESULT:
            rc = text_line(f, "=== run: ", rec.data, rec.len);
            break;
        }
    }
    dbuf_consume(&f->in, off);
    return rc;
}

/*
 * Nothing new to send: ends the stream, or parks the request until the run's
 * log grows or it ends. Returns what read_log returns then, or 1 to look
 * again at once.
 */
static ssize_t nothing_new(struct follow *f, uint64_t gen, int64_t total, int ended)
{
    struct req *r = f->r;
    if (!f->follow || (ended && f->next >= total)) {
        f->done = 1;
        return 1;
    }
    r->waiter.kind = WAIT_RUN;
    r->waiter.run_id = f->run_id;
    r->waiter.deadline_ms = store_now_ms() + FOLLOW_IDLE;
    int w = dispatch_wait(r->srv->disp, &r->waiter, gen);
    if (w > 0)
        return 0; /* suspended: called again when resumed */
    if (w < 0)
        f->done = 1;
    return 1;
}

/* Copies what f->out holds into MHD's buffer; 0 when it holds nothing. */
static size_t send_out(struct follow *f, char *buf, size_t max)
{
    size_t n = f->out.len - f->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, f->out.data + f->out_pos, n);
    f->out_pos += n;
    if (f->out_pos == f->out.len) {
        dbuf_reset(&f->out);
        f->out_pos = 0;
    }
    return n;
}

/* Raw bytes: into MHD's buffer when it takes a whole piece, else through f->out. */
static ssize_t read_raw(struct follow *f, char *buf, size_t max)
{
    struct req *r = f->r;
    for (;;) {
        if (f->out_pos < f->out.len)
            return (ssize_t)send_out(f, buf, max);
        if (f->end && f->next >= f->end)
            f->done = 1;
        if (f->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t gen = dispatch_gen(r->srv->disp);
        int64_t total;
        int ended, rc;
        size_t got, want = max >= FOLLOW_READ ? max : FOLLOW_READ;
        if (f->end && (int64_t)want > f->end - f->next)
            want = (size_t)(f->end - f->next);
        int direct = want <= max;
        if (direct) {
            rc = store_log_read_into(r->srv->store, f->run_id, f->next, buf, want, &got, &total,
                                     &ended);
        } else {
            size_t before = f->out.len;
            rc = store_log_read(r->srv->store, f->run_id, f->next, want, &f->out, &total, &ended,
                                NULL);
            got = f->out.len - before;
        }
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        f->next += (int64_t)got;
        if (got > 0)
            return direct ? (ssize_t)got : (ssize_t)send_out(f, buf, max);
        ssize_t n = nothing_new(f, gen, total, ended);
        if (n == 0)
            return 0;
    }
}

static ssize_t read_log(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct follow *f = cls;
    struct req *r = f->r;
    (void)pos;
    if (f->raw)
        return read_raw(f, buf, max);
    for (;;) {
        if (f->out_pos < f->out.len)
            return (ssize_t)send_out(f, buf, max);
        if (f->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t gen = dispatch_gen(r->srv->disp);
        int64_t total;
        int ended;
        size_t before = f->in.len;
        /* Records that did not fit in f->out last time are still in f->in. */
        size_t room = f->in.cap - f->in.len, want = room < FOLLOW_READ ? room : FOLLOW_READ;
        /* A page reads up to its end and the rest of the record crossing it. */
        if (f->end && f->end - f->next + FOLLOW_SLACK < (int64_t)want)
            want = f->end > f->next ? (size_t)(f->end - f->next) + FOLLOW_SLACK : FOLLOW_SLACK;
        if (store_log_read(r->srv->store, f->run_id, f->next, want, &f->in, &total, &ended, NULL) <
            0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        size_t got = f->in.len - before;
        f->next += (int64_t)got;
        if (decode(f) < 0) {
            dbuf_printf(&f->out, "\ndavit: the stored log is corrupt at this point\n");
            f->done = 1;
            continue;
        }
        /* A page ends after the record that reaches its end: f->in holds
         * only what was read past the records decoded. */
        if (f->end && f->next - (int64_t)f->in.len >= f->end)
            f->done = 1;
        if (got > 0 || f->out.len > 0)
            continue;
        if (nothing_new(f, gen, total, ended) == 0)
            return 0;
    }
}

/*
 * One page of the log (limit=): read whole into memory so that its headers
 * can say where the next page starts. At most LOG_PAGE_MAX stored bytes,
 * plus the rest of the record that crosses the page's end.
 */
static int reply_page(struct req *r, struct follow *f, int64_t total)
{
    struct dbuf page = DBUF_INIT(2 * LOG_PAGE_MAX + 2 * (FOLLOW_READ + FOLLOW_SLACK));
    for (;;) {
        if (dbuf_reserve(&page, FOLLOW_BLOCK) < 0) {
            dbuf_free(&page);
            return reply_error(r, 500, "out of memory");
        }
        ssize_t n = read_log(f, 0, page.data + page.len, FOLLOW_BLOCK);
        if (n == MHD_CONTENT_READER_END_OF_STREAM)
            break;
        if (n < 0) {
            dbuf_free(&page);
            return reply_error(r, 500, "the log could not be read");
        }
        page.len += (size_t)n;
    }
    /* Where the next page starts: after the last record decoded. */
    int64_t next = f->next - (int64_t)f->in.len;
    size_t len = page.len;
    char *body = dbuf_take(&page);
    if (!body)
        return reply_error(r, 500, "out of memory");
    r->resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r->resp) {
        free(body);
        return reply_error(r, 500, "out of memory");
    }
    r->status = 200;
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)next);
    MHD_add_response_header(r->resp, "X-Davit-Next-Offset", v);
    snprintf(v, sizeof(v), "%lld", (long long)total);
    MHD_add_response_header(r->resp, "X-Davit-Log-Bytes", v);
    MHD_add_response_header(r->resp, "Content-Type",
                            f->raw ? "application/octet-stream" : "text/plain; charset=utf-8");
    return HANDLER_DONE;
}

/* A record's wall-clock time as the API writes times (ISO 8601, UTC). */
static json_t *time_json(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    if (ms <= 0 || !gmtime_r(&t, &tm))
        return json_null();
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(buf);
}

/* The phase entry named name, added (at offset) when the log has none yet. */
static json_t *phase_entry(json_t *arr, const char *name, int64_t offset)
{
    size_t n = json_array_size(arr);
    for (size_t i = n; i > 0; i--) {
        json_t *p = json_array_get(arr, i - 1);
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    }
    json_t *p =
        json_pack("{s:s, s:I, s:n, s:n, s:n, s:n, s:n}", "name", name, "offset", (json_int_t)offset,
                  "started_at", "ended_at", "outcome", "exit_code", "duration_ms");
    if (!p || json_array_append_new(arr, p) < 0)
        return NULL;
    return p;
}

/* "outcome=failed exit=2 duration_ms=31" (a phase's end record) into p. */
static void phase_end_fields(json_t *p, const char *data, size_t len)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), data);
    for (char *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *v = strchr(kv, '=');
        if (!v)
            continue;
        *v++ = '\0';
        if (strcmp(kv, "outcome") == 0)
            json_object_set_new(p, "outcome", json_string(v));
        else if (strcmp(kv, "exit") == 0)
            json_object_set_new(p, "exit_code", json_integer(strtoll(v, NULL, 10)));
        else if (strcmp(kv, "duration_ms") == 0)
            json_object_set_new(p, "duration_ms", json_integer(strtoll(v, NULL, 10)));
    }
}

/*
 * format=phases: the log's phases, each with the offset of its first record
 * (a text page can start there), its times and its outcome, found by one
 * pass over the stored records' headers: what the web UI shows of a log too
 * big to read whole.
 */
static int reply_phases(struct req *r, int64_t id)
{
    struct dbuf in = DBUF_INIT(FOLLOW_READ + FOLLOW_SLACK);
    json_t *arr = json_array();
    int64_t next = 0, total = 0;
    int ended, corrupt = 0, rc = 0;
    if (!arr)
        goto fail;
    for (;;) {
        size_t before = in.len;
        rc = store_log_read(r->srv->store, id, next, FOLLOW_READ, &in, &total, &ended, NULL);
        if (rc < 0)
            goto fail;
        size_t got = in.len - before, off = 0;
        next += (int64_t)got;
        int64_t base = next - (int64_t)in.len; /* the stored offset of in's first byte */
        struct spool_record rec;
        ssize_t n = 0;
        /* An empty buffer has no data pointer at all: nothing to parse. */
        while (off < in.len && (n = spool_parse(in.data + off, in.len - off, &rec)) > 0) {
            if (rec.type == SPOOL_PHASE_START || rec.type == SPOOL_PHASE_END) {
                json_t *p = phase_entry(arr, rec.phase, base + (int64_t)off);
                if (!p)
                    goto fail;
                if (rec.type == SPOOL_PHASE_START)
                    json_object_set_new(p, "started_at", time_json(rec.time_ms));
                else {
                    json_object_set_new(p, "ended_at", time_json(rec.time_ms));
                    phase_end_fields(p, rec.data, rec.len);
                }
            }
            off += (size_t)n;
        }
        dbuf_consume(&in, off);
        if (n < 0) {
            corrupt = 1;
            break;
        }
        if (got == 0)
            break;
    }
    dbuf_free(&in);
    return reply_json(r, 200,
                      json_pack("{s:o, s:I, s:b}", "phases", arr, "log_bytes", (json_int_t)total,
                                "corrupt", corrupt));
fail:
    dbuf_free(&in);
    json_decref(arr);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    return reply_error(r, 500, "out of memory");
}

int h_run_logs(struct req *r)
{
    int64_t id, total;
    int ended;
    const char *format = req_query(r, "format"), *follow = req_query(r, "follow");
    const char *off_s = req_query(r, "offset"), *limit_s = req_query(r, "limit");
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    if (format && strcmp(format, "text") != 0 && strcmp(format, "raw") != 0 &&
        strcmp(format, "phases") != 0)
        return reply_error(r, 400, "format: text, raw or phases");
    if (format && strcmp(format, "phases") == 0)
        return reply_phases(r, id);
    long long offset = 0;
    if (off_s) {
        char *end;
        offset = strtoll(off_s, &end, 10);
        if (*end || offset < 0)
            return reply_error(r, 400, "offset: a byte offset");
    }
    long long limit = 0;
    if (limit_s) {
        char *end;
        limit = strtoll(limit_s, &end, 10);
        if (*limit_s < '0' || *limit_s > '9' || *end || limit < 1 || limit > LOG_PAGE_MAX)
            return reply_error(r, 400, "limit: a number of bytes from 1 to %d", LOG_PAGE_MAX);
        if (follow && strcmp(follow, "1") == 0)
            return reply_error(r, 400, "limit: not with follow=1");
    }
    struct dbuf probe = DBUF_INIT(1);
    int rc = store_log_read(r->srv->store, id, 0, 0, &probe, &total, &ended, NULL);
    dbuf_free(&probe);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    struct follow *f = calloc(1, sizeof(*f));
    if (!f)
        return reply_error(r, 500, "out of memory");
    f->r = r;
    f->run_id = id;
    f->raw = format && strcmp(format, "raw") == 0;
    f->follow = follow && strcmp(follow, "1") == 0;
    f->next = offset;
    f->end = limit ? offset + limit : 0;
    dbuf_init(&f->in, FOLLOW_READ + FOLLOW_SLACK);
    dbuf_init(&f->out, 2 * (FOLLOW_READ + FOLLOW_SLACK));
    req_on_end(r, follow_free, f);
    if (limit)
        return reply_page(r, f, total);
    /* A finished log's raw bytes are all there: their size is known, and MHD sends them from
     * a buffer of FOLLOW_BLOCK instead of in chunks of what the connection's memory has left. */
    uint64_t size = MHD_SIZE_UNKNOWN;
    if (f->raw && !f->follow && ended)
        size = total > offset ? (uint64_t)(total - offset) : 0;
    r->resp = MHD_create_response_from_callback(size, FOLLOW_BLOCK, read_log, f, NULL);
    if (!r->resp)
        return reply_error(r, 500, "out of memory");
    r->status = 200;
    MHD_add_response_header(r->resp, "Content-Type",
                            f->raw ? "application/octet-stream" : "text/plain; charset=utf-8");
    return HANDLER_DONE;
}
