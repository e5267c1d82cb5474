#include "common/log.h"

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

static void write_text(FILE *out, const char *ts, enum log_level level, const char *msg, va_list ap)
{
    fprintf(out, "%s %-5s %s", ts, level_names[level], msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (!v)
            continue;
        if (*v && strpbrk(v, " \t\"=") == NULL)
            fprintf(out, " %s=%s", k, v);
        else {
            fprintf(out, " %s=\"", k);
            for (const char *p = v; *p; p++) {
                if (*p == '"' || *p == '\\')
                    fputc('\\', out);
                fputc(*p == '\n' ? ' ' : *p, out);
            }
            fputc('"', out);
        }
    }
    fputc('\n', out);
}

static void write_json(FILE *out, const char *ts, enum log_level level, const char *msg, va_list ap)
{
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", json_string(msg));
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (v)
            json_object_set_new(o, k, json_string(v));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        fprintf(out, "%s\n", s);
        free(s);
    }
    json_decref(o);
}

static void log_vevent(enum log_level level, const char *msg, va_list ap)
{
    FILE *out = log_cfg.out ? log_cfg.out : stderr;
    char ts[40];

    if (level == LOG_DEBUG && !log_cfg.debug)
        return;
    timestamp(ts, sizeof(ts));
    if (log_cfg.format == LOG_JSON)
        write_json(out, ts, level, msg, ap);
    else
        write_text(out, ts, level, msg, ap);
    fflush(out);
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

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_vevent_nofields(level, msg, (const char *)NULL);
}
