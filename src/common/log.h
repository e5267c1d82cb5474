/*
 * log: the one-line log of davit-launcher and davit server, on stderr.
 *
 * Text by default:
 *     2026-11-28T12:00:00.123Z info  run started run=42 image=davit/runner-busybox
 * or one JSON object a line with log_setup(..., LOG_JSON, ...):
 *     {"time":"…","level":"info","msg":"run started","run":"42","image":"…"}
 *
 * Owns the process-wide log configuration (set once at start-up, before any
 * thread). Logging never fails visibly: a line that cannot be written is lost.
 */
#ifndef DAVIT_COMMON_LOG_H
#define DAVIT_COMMON_LOG_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

/* Sets the format and whether LOG_DEBUG lines are written. out NULL means stderr. */
void log_setup(enum log_format format, int debug, FILE *out);

/* Returns 0 and sets *format for "text" or "json" (NULL or "" mean text), else -1. */
int log_format_parse(const char *s, enum log_format *format);

int log_debug_enabled(void);

/*
 * Writes one line: msg, then key/value string pairs ending with NULL. A NULL
 * value is skipped. In text, a value with spaces, quotes or '=' is quoted,
 * and control bytes are written as \xNN, so that no value can forge a line.
 * msg must not contain secrets; callers pass only ids and reasons.
 */
void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* printf-style message with no fields. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs a printf-style error line and returns code: for `return log_fail(2, …)`. */
int log_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A rate limit for lines that one failure can repeat many times a second (libmicrohttpd's
 * messages under a flood of connections, a database that is away): at most `per_window` lines
 * per window of `window_ms`. LOG_GATE_INIT initialises one; a gate is used from any thread.
 */
struct log_gate {
    pthread_mutex_t mu;
    int64_t window;             /* the window being counted: now_ms / window_ms */
    unsigned shown;             /* lines let through in it */
    unsigned long long dropped; /* lines left out since the last report */
};
#define LOG_GATE_INIT                                                                              \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, -1, 0, 0                                                        \
    }

/*
 * 1 when a line may be written now (now_ms: a monotonic clock), 0 to leave it out. *dropped gets
 * the number of lines left out in the windows before this one when this is the first line of a
 * window (0 otherwise), for the caller to log once. Never fails.
 */
int log_gate_pass(struct log_gate *g, int64_t now_ms, int64_t window_ms, unsigned per_window,
                  unsigned long long *dropped);

#endif
