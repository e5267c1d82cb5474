/*
 * metrics: the launcher's counters and gauges, process-wide, for /metrics
 * (metrics_http.h; docs/launcher.md, "Metrics and health").
 *
 * Every function is thread-safe (atomics, no lock) and never fails, so that
 * any thread may count without an error path. Counters start at 0 with the
 * process. Nothing here holds run content: names and numbers only.
 */
#ifndef DAVIT_LAUNCHER_METRICS_H
#define DAVIT_LAUNCHER_METRICS_H

#include "common/outcome.h"

#include <stddef.h>
#include <stdint.h>

/* A run this launcher carried ended and was reported with outcome o. */
void metrics_run_ended(enum outcome o);
/* A run's thread started (+1) or ended (-1). */
void metrics_active_add(int delta);
/* The server acknowledged bytes more of a run's log. */
void metrics_shipped(uint64_t bytes);
/* Spool bytes not yet acknowledged, summed over runs: add each run's change. */
void metrics_lag_add(int64_t delta);
/* A Docker Engine API call failed (transport) or answered 5xx. */
void metrics_docker_error(void);
/* A registration after the process's first one (a session renewal). */
void metrics_session_renewed(void);
/* 1 while registered and the last poll was answered; /healthz's answer. */
void metrics_set_healthy(int healthy);
int metrics_healthy(void);

/*
 * The Prometheus text exposition (format 0.0.4) of every metric, into buf.
 * Returns its length, or -1 when size is too small.
 */
int metrics_render(char *buf, size_t size);

#endif
