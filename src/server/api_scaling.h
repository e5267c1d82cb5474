/*
 * api_scaling: GET /api/v1/pools/NAME/scaling, a pool's queue and workers as
 * an autoscaler (davit autoscale, KEDA's metrics-api scaler) counts them.
 * Owns no state; answers through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_SCALING_H
#define DAVIT_SERVER_API_SCALING_H

struct req;

/* 200 with {pending, busy, idle, draining, drained, workers}; 404 for an unknown pool. */
int h_pool_scaling(struct req *r);

#endif
