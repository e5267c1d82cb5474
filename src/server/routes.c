/*
 * The route table: every endpoint, its credentials, its body cap and its
 * handler, and the matching of a request's path against it.
 */
#include "server/routes.h"

#include "server/api_launcher.h"
#include "server/api_logs.h"
#include "server/api_misc.h"
#include "server/api_pools.h"
#include "server/api_runs.h"
#include "server/api_scaling.h"
#include "server/api_tokens.h"
#include "server/metrics.h"
#include "server/releases.h"
#include "server/ui.h"
#include "server/watch.h"

#include <string.h>

/*
 * The least role of each route (docs/security.md, "Roles"): reading is for
 * viewers; what an operator does day to day (submit, cancel, drain, cycle)
 * is for operators; what changes who may do what, or destroys a record
 * (pools and their keys, tokens, releases, a run and its log), is for admins.
 * tests/server/test_roles.py holds the same table and fails on a route it
 * does not list.
 */
static const struct route routes[] = {
    {"GET", "/healthz", AUTH_NONE, 0, h_healthz},
    {"GET", "/metrics", AUTH_METRICS, 0, h_metrics},
    /* The web UI (docs/ui.md): its files are public; its data comes from the API. */
    {"GET", "/", AUTH_NONE, 0, h_ui_asset},
    {"GET", "/ui/*", AUTH_NONE, 0, h_ui_asset},
    {"POST", "/api/v1/pools", AUTH_ADMIN, BODY_CAP_DEFAULT, h_pool_create},
    {"GET", "/api/v1/pools", AUTH_VIEWER, 0, h_pool_list},
    {"GET", "/api/v1/pools/*", AUTH_VIEWER, 0, h_pool_show},
    {"DELETE", "/api/v1/pools/*", AUTH_ADMIN, 0, h_pool_delete},
    {"POST", "/api/v1/pools/*/reset", AUTH_ADMIN, BODY_CAP_DEFAULT, h_pool_reset},
    {"POST", "/api/v1/pools/*/cycle", AUTH_OPERATOR, BODY_CAP_DEFAULT, h_pool_cycle},
    /* A viewer's: autoscalers and KEDA only read it. */
    {"GET", "/api/v1/pools/*/scaling", AUTH_VIEWER, 0, h_pool_scaling},
    {"POST", "/api/v1/runs", AUTH_OPERATOR, BODY_CAP_DEFAULT, h_run_submit},
    {"GET", "/api/v1/runs", AUTH_VIEWER, 0, h_run_list},
    {"GET", "/api/v1/runs/*", AUTH_VIEWER, 0, h_run_show},
    /* Admin: a delete destroys the record of what ran (its log, its outcome),
     * which the people who run things must not be able to erase. */
    {"DELETE", "/api/v1/runs/*", AUTH_ADMIN, 0, h_run_delete},
    {"POST", "/api/v1/runs/*/cancel", AUTH_OPERATOR, BODY_CAP_DEFAULT, h_run_cancel},
    {"GET", "/api/v1/runs/*/logs", AUTH_VIEWER, 0, h_run_logs},
    {"GET", "/api/v1/workers", AUTH_VIEWER, 0, h_worker_list},
    /* The UI's change feed: a long-poll that says when to read the lists again. */
    {"GET", "/api/v1/watch", AUTH_VIEWER, 0, h_watch},
    {"POST", "/api/v1/workers/*/drain", AUTH_OPERATOR, BODY_CAP_DEFAULT, h_worker_drain},
    {"POST", "/api/v1/workers/*/undrain", AUTH_OPERATOR, BODY_CAP_DEFAULT, h_worker_undrain},
    {"POST", "/api/v1/releases", AUTH_ADMIN, BODY_CAP_RELEASE, h_release_publish},
    {"GET", "/api/v1/releases", AUTH_VIEWER, 0, h_release_list},
    {"GET", "/api/v1/releases/latest", AUTH_NONE, 0, h_release_latest},
    {"GET", "/api/v1/releases/*/download", AUTH_NONE, 0, h_release_download},
    {"POST", "/api/v1/tokens", AUTH_ADMIN, BODY_CAP_SMALL, h_token_create},
    {"GET", "/api/v1/tokens", AUTH_ADMIN, 0, h_token_list},
    {"DELETE", "/api/v1/tokens/*", AUTH_ADMIN, 0, h_token_revoke},
    /* Sign-in checks the token it is given (the handler); small bodies only. */
    {"POST", "/api/v1/session", AUTH_NONE, BODY_CAP_SMALL, h_session_create},
    {"GET", "/api/v1/session", AUTH_COOKIE, 0, h_session_show},
    {"DELETE", "/api/v1/session", AUTH_COOKIE, 0, h_session_delete},
    /* Open to anyone: small bodies only, so that strangers cannot pin memory. */
    {"POST", "/api/v1/launcher/challenge", AUTH_NONE, BODY_CAP_SMALL, h_launcher_challenge},
    {"POST", "/api/v1/launcher/register", AUTH_NONE, BODY_CAP_SMALL, h_launcher_register},
    {"POST", "/api/v1/launcher/poll", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_poll},
    {"POST", "/api/v1/launcher/heartbeat", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_heartbeat},
    {"POST", "/api/v1/launcher/runs/*/events", AUTH_SESSION, BODY_CAP_DEFAULT, h_launcher_event},
    {"PUT", "/api/v1/launcher/runs/*/log", AUTH_SESSION, BODY_CAP_LOG, h_launcher_log},
};

/* Matches path against pattern, capturing '*' segments. 1 on a match. */
static int route_match(const char *pattern, const char *path, char args[REQ_MAX_ARGS][REQ_ARG_MAX])
{
    int nargs = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p == '*') {
            const char *end = strchr(u, '/');
            size_t n = end ? (size_t)(end - u) : strlen(u);
            if (n == 0 || n >= REQ_ARG_MAX || nargs >= REQ_MAX_ARGS)
                return 0;
            memcpy(args[nargs], u, n);
            args[nargs++][n] = '\0';
            u += n;
            p++;
            continue;
        }
        if (*p != *u)
            return 0;
        p++;
        u++;
    }
    return *p == '\0' && *u == '\0';
}

const struct route *route_find(const char *method, const char *path,
                               char args[REQ_MAX_ARGS][REQ_ARG_MAX], int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (route_match(routes[i].pattern, path, args)) {
            *path_known = 1;
            if (strcmp(routes[i].method, method) == 0)
                return &routes[i];
        }
    }
    return NULL;
}
