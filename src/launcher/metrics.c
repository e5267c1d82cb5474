/* The launcher's metrics (metrics.h). */
#include "launcher/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#define N_OUTCOMES (OUTCOME_LOST + 1)

static atomic_ullong runs_ended[N_OUTCOMES];
static atomic_llong runs_active;
static atomic_ullong shipped_bytes;
static atomic_llong lag_bytes;
static atomic_ullong docker_errors;
static atomic_ullong renewals;
static atomic_int healthy;

void metrics_run_ended(enum outcome o)
{
    if ((int)o >= 0 && (int)o < N_OUTCOMES)
        atomic_fetch_add(&runs_ended[o], 1);
}

void metrics_active_add(int delta)
{
    atomic_fetch_add(&runs_active, delta);
}

void metrics_shipped(uint64_t bytes)
{
    atomic_fetch_add(&shipped_bytes, bytes);
}

void metrics_lag_add(int64_t delta)
{
    atomic_fetch_add(&lag_bytes, delta);
}

void metrics_docker_error(void)
{
    atomic_fetch_add(&docker_errors, 1);
}

void metrics_session_renewed(void)
{
    atomic_fetch_add(&renewals, 1);
}

void metrics_set_healthy(int h)
{
    atomic_store(&healthy, h ? 1 : 0);
}

int metrics_healthy(void)
{
    return atomic_load(&healthy);
}

struct out {
    char *buf;
    size_t size, len;
    int full;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = o->full ? -1 : vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->size - o->len)
        o->full = 1;
    else
        o->len += (size_t)n;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family with one unlabelled sample. */
static void scalar(struct out *o, const char *name, const char *type, const char *help, long long v)
{
    head(o, name, type, help);
    put(o, "%s %lld\n", name, v);
}

int metrics_render(char *buf, size_t size)
{
    struct out o = {buf, size, 0, size == 0};
    head(&o, "davit_launcher_runs_total", "counter", "Runs carried to their end, by outcome.");
    for (int i = 0; i < N_OUTCOMES; i++)
        put(&o, "davit_launcher_runs_total{outcome=\"%s\"} %llu\n", outcome_name((enum outcome)i),
            (unsigned long long)atomic_load(&runs_ended[i]));
    long long lag = atomic_load(&lag_bytes);
    scalar(&o, "davit_launcher_runs_active", "gauge", "Runs in hand now.",
           atomic_load(&runs_active));
    scalar(&o, "davit_launcher_spool_shipped_bytes_total", "counter",
           "Log bytes the server acknowledged.", (long long)atomic_load(&shipped_bytes));
    scalar(&o, "davit_launcher_ship_lag_bytes", "gauge",
           "Spool bytes written but not yet acknowledged, over the runs in hand.",
           lag > 0 ? lag : 0);
    scalar(&o, "davit_launcher_docker_errors_total", "counter",
           "Docker Engine API calls that failed or answered 5xx.",
           (long long)atomic_load(&docker_errors));
    scalar(&o, "davit_launcher_session_renewals_total", "counter",
           "Registrations after the first one.", (long long)atomic_load(&renewals));
    scalar(&o, "davit_launcher_up", "gauge", "1 while registered and polling the server.",
           atomic_load(&healthy));
    return o.full ? -1 : (int)o.len;
}
