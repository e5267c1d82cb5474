/*
 * metrics_http: the launcher's /metrics and /healthz listener
 * (DAVIT_METRICS_LISTEN; docs/launcher.md, "Metrics and health").
 *
 * A libmicrohttpd daemon with its own thread, GET only:
 *   /metrics  the Prometheus text of metrics.h;
 *   /healthz  200 "ok" while registered and polling, else 503.
 * Off unless DAVIT_METRICS_LISTEN is set. A non-loopback address is
 * refused unless DAVIT_METRICS_LISTEN_ANY=1: the metrics carry no secret,
 * but the listener should not be on a network by accident.
 */
#ifndef DAVIT_LAUNCHER_METRICS_HTTP_H
#define DAVIT_LAUNCHER_METRICS_HTTP_H

#include <stddef.h>

struct metrics_http;

/*
 * Listens on listen ("host:port" or "[v6]:port"; port 0 picks one) and
 * serves. Returns 0 with *out (free with metrics_http_stop), or -1 with one
 * line in err naming DAVIT_METRICS_LISTEN. The address in use is logged.
 */
int metrics_http_start(const char *listen, int allow_any, struct metrics_http **out, char *err,
                       size_t errsz);

/* Stops serving and frees m. Safe with NULL. */
void metrics_http_stop(struct metrics_http *m);

#endif
