/* Workers (launchers as users see them) and the health check. */
#include "server/api_misc.h"

#include "server/request.h"
#include "server/state.h"
#include "server/fanout.h"

#include "common/log.h"

#include <stdlib.h>

int h_worker_list(struct req *r)
{
    json_t *arr;
    int rc =
        store_launcher_list_json(r->srv->store, req_query(r, "pool"), r->srv->cfg.lease_ms, &arr);
    if (rc < 0)
        return reply_store_error(r, rc, "workers");
    return reply_json(r, 200, json_pack("{s:o}", "workers", arr));
}

static int drain(struct req *r, int on)
{
    int64_t id;
    char pool_id[40];
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    json_t *state = NULL;
    int rc = store_launcher_drain(r->srv->store, id, on, pool_id, &state);
    if (rc < 0)
        return reply_store_error(r, rc, "worker");
    /* Undrained, it may take queued runs again: its own poll claims them. */
    fanout_launcher(r->srv->fanout, id);
    fanout_view(r->srv->fanout, pool_id);
    log_event(LOG_INFO, on ? "worker draining" : "worker undrained", "worker", r->args[0], NULL);
    /* The state after the change (an autoscaler undrains a worker it shows busy), and
     * "draining" as before for older clients. */
    if (json_object_set_new(state, "draining", json_boolean(on)) < 0) {
        json_decref(state);
        return reply_error(r, 500, "out of memory");
    }
    return reply_json(r, 200, state);
}

int h_worker_drain(struct req *r)
{
    return drain(r, 1);
}

int h_worker_undrain(struct req *r)
{
    return drain(r, 0);
}

/* The answer names the replica and the store's kind, never the database's address: a load
 * balancer takes a replica whose database does not answer out of rotation. */
int h_healthz(struct req *r)
{
    const char *why, *replica = r->srv->cfg.replica_name, *kind = store_kind(r->srv->store);
    if (store_ping(r->srv->store) < 0)
        return reply_json(r, 503,
                          json_pack("{s:s, s:s, s:s, s:s}", "status", "unhealthy", "error",
                                    "database unreachable", "replica", replica, "store", kind));
    /* Reads still work on a full disk, but nothing new can be stored:
     * launchers wait with their spools, so say so to monitoring. */
    if (store_degraded(r->srv->store, &why))
        return reply_json(r, 503,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "status", "degraded", "error", why,
                                    "version", DAVIT_VERSION, "replica", replica, "store", kind));
    return reply_json(r, 200,
                      json_pack("{s:s, s:s, s:s, s:s}", "status", "ok", "version", DAVIT_VERSION,
                                "replica", replica, "store", kind));
}
