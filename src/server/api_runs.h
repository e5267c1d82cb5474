/*
 * api_runs: the runs' handlers for users (submit, list, show, cancel,
 * delete); a run's log is api_logs.h. Owns no state. Each handler answers
 * through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_RUNS_H
#define DAVIT_SERVER_API_RUNS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct req;
struct server;
struct store_claims;

/*
 * POST /runs: {"pool", ...the run spec}. The body's parser, pure (no request,
 * no store), which the handler and fuzz/fuzz_api_body.c share. 0 with *pool
 * pointing into obj and *spec a checked copy of the spec without "pool"
 * (caller decrefs); -1 with err (one line for a 400 that quotes nothing of
 * the body); -2 when memory runs out.
 */
int api_runs_parse_submit(json_t *obj, const char **pool, json_t **spec, char *err, size_t errsz);

/* For each run claimed for launcher_id (at a submit or a poll): the dispatch latency
 * observed and the "assigned" log line. */
void runs_log_claims(struct server *srv, int64_t launcher_id, const struct store_claims *c);

int h_run_submit(struct req *r);
int h_run_list(struct req *r);
int h_run_show(struct req *r);
int h_run_cancel(struct req *r);
int h_run_delete(struct req *r);

#endif
