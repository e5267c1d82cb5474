/*
 * api_misc: the handlers of the workers' endpoints (launchers as users see
 * them: list, drain, undrain) and of /healthz. Owns no state. Each handler
 * answers through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_MISC_H
#define DAVIT_SERVER_API_MISC_H

struct req;

int h_worker_list(struct req *r);
int h_worker_drain(struct req *r);
int h_worker_undrain(struct req *r);
/* 200 ok, or 503 when the database does not answer or cannot store more. */
int h_healthz(struct req *r);

#endif
