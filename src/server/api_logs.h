/*
 * api_logs: a run's log for users, raw or as text, in full or followed
 * live. The follower's state is the request's: it is freed through
 * req_on_end() when the request ends.
 */
#ifndef DAVIT_SERVER_API_LOGS_H
#define DAVIT_SERVER_API_LOGS_H

struct req;

/* GET /api/v1/runs/ID/logs: a streamed 200, or 400/404 before it starts. */
int h_run_logs(struct req *r);

#endif
