/* A pool's scaling state, for autoscalers (docs/server.md, "Scaling"). */
#include "server/api_scaling.h"

#include "server/request.h"
#include "server/state.h"

int h_pool_scaling(struct req *r)
{
    json_t *out;
    int rc = store_pool_scaling_json(r->srv->store, r->args[0], r->srv->cfg.lease_ms, &out);
    if (rc < 0)
        return reply_store_error(r, rc, "pool");
    return reply_json(r, 200, out);
}
