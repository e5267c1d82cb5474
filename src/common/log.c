#include "common/log.h"

#include "common/dbuf.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static struct {
    enum log_format format;
    int debug;
    FILE *out;
} log_cfg = {LOG_TEXT, 0, NULL};

/* Longer lines are cut: a log line is for people, not for bulk data. */
#define LOG_LINE_MAX 16384

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_format format, int debug, FILE *out)
{
    log_cfg.format = format;
    log_cfg.debug = debug;
    log_cfg.out = out;
}

int log_format_parse(const char *s, enum log_format *format)
{
    if (!s || !*s || strcmp(s, "text") == 0)
        *format = LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *format = LOG_JSON;
    else
        return -1;
    return 0;
}

int log_debug_enabled(void)
{
    return log_cfg.debug;
}

static void timestamp(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

enum escape { ESC_CONTROL, ESC_QUOTED, ESC_ASCII };

/*
 * Writes s, escaping control bytes as \xNN so that nothing in it can start
 * a new log line: values come from the network (paths, hostnames, reasons).
 * ESC_QUOTED also escapes '"' and '\\' (inside a quoted value), ESC_ASCII
 * also bytes >= 0x80 (for JSON, which needs UTF-8).
 */
static void add_escaped(struct dbuf *b, const char *s, enum escape mode)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (mode != ESC_CONTROL && (*p == '"' || *p == '\\'))
            dbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f || (mode == ESC_ASCII && *p >= 0x80))
            dbuf_printf(b, "\\x%02x", *p);
        else
            dbuf_addch(b, (char)*p);
    }
}

static int needs_quotes(const char *v)
{
    if (!*v)
        return 1;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '=' || *p == '\\')
            return 1;
    return 0;
}

static void format_text(struct dbuf *b, const char *ts, enum log_level level, const char *msg,
                        va_list ap)
{
    dbuf_printf(b, "%s %-5s ", ts, level_names[level]);
    add_escaped(b, msg, ESC_CONTROL);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (!v)
            continue;
        dbuf_printf(b, " %s=", k);
        if (needs_quotes(v)) {
            dbuf_addch(b, '"');
            add_escaped(b, v, ESC_QUOTED);
            dbuf_addch(b, '"');
        } else {
            dbuf_addstr(b, v);
        }
    }
}

/* jansson refuses strings that are not UTF-8; keep the field, escaped. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    struct dbuf b = DBUF_INIT(LOG_LINE_MAX);
    add_escaped(&b, s, ESC_ASCII);
    j = json_string(dbuf_str(&b));
    dbuf_free(&b);
    return j;
}

static void format_json(struct dbuf *b, const char *ts, enum log_level level, const char *msg,
                        va_list ap)
{
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", json_text(msg));
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (v)
            json_object_set_new(o, k, json_text(v));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        dbuf_addstr(b, s);
        free(s);
    }
    json_decref(o);
}

static void log_vevent(enum log_level level, const char *msg, va_list ap)
{
    FILE *out = log_cfg.out ? log_cfg.out : stderr;
    struct dbuf line = DBUF_INIT(LOG_LINE_MAX);
    char ts[40];

    if (level == LOG_DEBUG && !log_cfg.debug)
        return;
    timestamp(ts, sizeof(ts));
    if (log_cfg.format == LOG_JSON)
        format_json(&line, ts, level, msg, ap);
    else
        format_text(&line, ts, level, msg, ap);
    dbuf_addch(&line, '\n');
    /* One write a line, so that lines from several threads never interleave. */
    if (line.len) {
        if (line.data[line.len - 1] != '\n')
            line.data[line.len - 1] = '\n'; /* cut at the cap: still one line */
        fwrite(line.data, 1, line.len, out);
        fflush(out);
    }
    dbuf_free(&line);
}

void log_event(enum log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    log_vevent(level, msg, ap);
    va_end(ap);
}

/* A va_list that yields NULL at once: the field list of a log_msg line. */
static void log_vevent_nofields(enum log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    log_vevent(level, msg, ap);
    va_end(ap);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_vevent_nofields(level, msg, (const char *)NULL);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

int log_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_ERROR, fmt, ap);
    va_end(ap);
    return code;
}

int log_gate_pass(struct log_gate *g, int64_t now_ms, int64_t window_ms, unsigned per_window,
                  unsigned long long *dropped)
{
    int64_t window = now_ms / window_ms;
    *dropped = 0;
    pthread_mutex_lock(&g->mu);
    if (window != g->window) {
        *dropped = g->dropped;
        g->window = window;
        g->shown = 0;
        g->dropped = 0;
    }
    int pass = g->shown < per_window;
    if (pass)
        g->shown++;
    else
        g->dropped++;
    pthread_mutex_unlock(&g->mu);
    return pass;
}
