/*
 * metrics: the server's in-memory counters (dispatch latency, requests
 * served) and GET /metrics, which adds the store's gauges to them in the
 * Prometheus text format. struct server holds the one struct metrics; every
 * function here is thread-safe.
 */
#ifndef DAVIT_SERVER_METRICS_H
#define DAVIT_SERVER_METRICS_H

#include <stdint.h>

#include "common/dbuf.h"

struct metrics;

/* NULL when memory runs out. */
struct metrics *metrics_new(void);
/* NULL is fine. */
void metrics_free(struct metrics *m);
/* Records one dispatch latency. Never fails. */
void metrics_observe_dispatch(struct metrics *m, int64_t ms);
/* Counts one HTTP request served (http.c, when a request ends). Never fails. */
void metrics_count_request(struct metrics *m);
/* Appends the in-memory metrics in Prometheus text format to out. Returns 0. */
int metrics_render(struct metrics *m, struct dbuf *out);

struct req;
/* GET /metrics: 200 with the text, or 500 when the database fails. */
int h_metrics(struct req *r);

#endif
