/*
 * api_runs: the runs' handlers for users (submit, list, show, cancel,
 * delete); a run's log is api_logs.h. Owns no state. Each handler answers
 * through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_RUNS_H
#define DAVIT_SERVER_API_RUNS_H

struct req;

int h_run_submit(struct req *r);
int h_run_list(struct req *r);
int h_run_show(struct req *r);
int h_run_cancel(struct req *r);
int h_run_delete(struct req *r);

#endif
