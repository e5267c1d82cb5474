#include "launcher/printer.h"

#include "common/clock.h"

#include "common/dbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

void printer_init(struct printer *p, FILE *out, enum printer_format format, const char *run_id)
{
    p->out = out;
    p->format = format;
    printer_set_run(p, run_id);
    p->width = 8;
}

void printer_set_run(struct printer *p, const char *run_id)
{
    snprintf(p->run_id, sizeof(p->run_id), "%s", run_id);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

json_t *printer_json_text(const char *s, size_t len)
{
    struct dbuf b = DBUF_INIT(4 * (SPOOL_PAYLOAD_MAX + 64));
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(u + i, len - i);
        int rc = n ? dbuf_add(&b, s + i, n) : dbuf_add(&b, "\xef\xbf\xbd", 3);
        if (rc < 0) {
            dbuf_free(&b);
            return NULL;
        }
        i += n ? n : 1;
    }
    json_t *j = json_stringn(dbuf_str(&b), b.len);
    dbuf_free(&b);
    return j;
}

static void clock_text(int64_t ms, char *buf, size_t size)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&sec, &tm);
    size_t n = strftime(buf, size, "%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03d", (int)(ms % 1000));
}

static void clock_iso(int64_t ms, char *buf, size_t size)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

/*
 * Writes data as lines, each with the prefix and marker; a final piece
 * without a newline still ends its line.
 */
static void text_lines(struct printer *p, int64_t ms, const char *phase, const char *marker,
                       const char *cont, const char *data, size_t len)
{
    char ts[32];
    clock_text(ms, ts, sizeof(ts));
    const char *ph = phase && *phase ? phase : "-";
    size_t i = 0;
    int first = 1;
    do {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
        fprintf(p->out, "%s %-*s %s ", ts, p->width, ph, first ? marker : cont);
        fwrite(data + i, 1, n, p->out);
        fputc('\n', p->out);
        i += n + (nl ? 1 : 0);
        first = 0;
    } while (i < len);
}

static const char *type_name(char type)
{
    switch (type) {
    case SPOOL_STDOUT:
        return "stdout";
    case SPOOL_STDERR:
        return "stderr";
    case SPOOL_COMMAND:
        return "command";
    case SPOOL_PHASE_START:
        return "phase_start";
    case SPOOL_PHASE_END:
        return "phase_end";
    case SPOOL_NOTE:
        return "note";
    default:
        return "result";
    }
}

static int print_json(struct printer *p, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    fprintf(p->out, "%s\n", s);
    free(s);
    return ferror(p->out) ? -1 : 0;
}

int printer_record(struct printer *p, const struct spool_record *r)
{
    if (r->type == SPOOL_RESULT)
        return 0;
    if (p->format == PRINTER_JSON) {
        char ts[40];
        clock_iso(r->time_ms, ts, sizeof(ts));
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s?}", "run", p->run_id, "type",
                              type_name(r->type), "seq", (json_int_t)r->seq, "time", ts, "phase",
                              r->phase[0] ? r->phase : NULL);
        if (o && json_object_set_new(o, "text", printer_json_text(r->data, r->len)) < 0) {
            json_decref(o);
            o = NULL;
        }
        return print_json(p, o);
    }

    /* A phase name longer than the column widens it from then on. */
    int plen = (int)strlen(r->phase);
    if (plen > p->width)
        p->width = plen;
    switch (r->type) {
    case SPOOL_PHASE_START:
        text_lines(p, r->time_ms, r->phase, ">", ">", "phase started", 13);
        break;
    case SPOOL_PHASE_END: {
        char outcome[32] = "?", ex[32] = "?", ms[32] = "?", line[160];
        spool_kv(r->data, r->len, "outcome", outcome, sizeof(outcome));
        spool_kv(r->data, r->len, "exit", ex, sizeof(ex));
        spool_kv(r->data, r->len, "duration_ms", ms, sizeof(ms));
        int n = strcmp(outcome, "skipped") == 0
                    ? snprintf(line, sizeof(line), "phase skipped")
                    : snprintf(line, sizeof(line), "phase %s (exit %s, %s ms)", outcome, ex, ms);
        text_lines(p, r->time_ms, r->phase, "<", "<", line, (size_t)n);
        break;
    }
    case SPOOL_COMMAND: {
        /* "<stage> <command>": the stage shows only when it is a hook. */
        const char *sp = memchr(r->data, ' ', r->len);
        size_t skip = sp ? (size_t)(sp - r->data) + 1 : 0;
        int hook = sp && !(skip == 4 && memcmp(r->data, "run ", 4) == 0);
        char marker[16];
        snprintf(marker, sizeof(marker), "$%s%.*s", hook ? " " : "", hook ? (int)skip - 1 : 0,
                 r->data);
        if (hook)
            strncat(marker, ":", sizeof(marker) - strlen(marker) - 1);
        text_lines(p, r->time_ms, r->phase, marker, ">", r->data + skip, r->len - skip);
        break;
    }
    case SPOOL_STDERR:
        text_lines(p, r->time_ms, r->phase, "!", "!", r->data, r->len);
        break;
    case SPOOL_NOTE:
        text_lines(p, r->time_ms, r->phase, "#", "#", r->data, r->len);
        break;
    default:
        text_lines(p, r->time_ms, r->phase, "|", "|", r->data, r->len);
        break;
    }
    return ferror(p->out) ? -1 : 0;
}

int printer_note(struct printer *p, const char *text)
{
    int64_t now = clock_wall_ms();
    if (p->format == PRINTER_JSON) {
        char ts[40];
        clock_iso(now, ts, sizeof(ts));
        return print_json(p, json_pack("{s:s, s:s, s:s, s:s, s:s}", "run", p->run_id, "type",
                                       "note", "source", "launcher", "time", ts, "text", text));
    }
    char line[1100];
    snprintf(line, sizeof(line), "launcher: %s", text);
    text_lines(p, now, NULL, "#", "#", line, strlen(line));
    return ferror(p->out) ? -1 : 0;
}

int printer_result(struct printer *p, enum outcome outcome, const char *phase, int exit_status,
                   int64_t duration_ms, const char *reason)
{
    int64_t now = clock_wall_ms();
    if (p->format == PRINTER_JSON) {
        char ts[40];
        clock_iso(now, ts, sizeof(ts));
        return print_json(p,
                          json_pack("{s:s, s:s, s:s, s:s, s:s?, s:i, s:I, s:s, s:i}", "run",
                                    p->run_id, "type", "result", "time", ts, "outcome",
                                    outcome_name(outcome), "phase", phase && *phase ? phase : NULL,
                                    "exit", exit_status, "duration_ms", (json_int_t)duration_ms,
                                    "reason", reason, "exit_code", outcome_exit_code(outcome)));
    }
    char line[1400];
    snprintf(line, sizeof(line), "run %s %s: %s (phase %s, exit %d, %lld ms)", p->run_id,
             outcome_name(outcome), reason, phase && *phase ? phase : "-", exit_status,
             (long long)duration_ms);
    text_lines(p, now, NULL, "=", "=", line, strlen(line));
    return ferror(p->out) ? -1 : 0;
}

int printer_flush(struct printer *p)
{
    return fflush(p->out) == 0 ? 0 : -1;
}
