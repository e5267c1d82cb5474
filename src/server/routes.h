/*
 * routes: the route table, the one list of every endpoint the server
 * answers (docs/protocol.md, docs/server.md): its method, path pattern,
 * the credentials it needs, its body cap and its handler. Owns nothing at
 * run time; the table is constant.
 *
 * A new endpoint is one line in routes.c plus its handler in the api_*.c
 * file of its area (docs/hacking.md).
 */
#ifndef DAVIT_SERVER_ROUTES_H
#define DAVIT_SERVER_ROUTES_H

#include <stddef.h>

#include "server/request.h"

/* Returns HANDLER_DONE or HANDLER_SUSPENDED (request.h). */
typedef int (*handler_fn)(struct req *r);

/*
 * What a route needs (auth.c checks it, docs/security.md "Roles"):
 * AUTH_VIEWER, AUTH_OPERATOR, AUTH_ADMIN: a bearer token or a browser
 *   session of at least that role (each role may do what the ones before it may);
 * AUTH_COOKIE: the browser session's cookie alone (GET and DELETE /api/v1/session);
 * AUTH_SESSION: a launcher's session (from registration), not a browser's;
 * AUTH_METRICS: open, unless a metrics token is set (then it or the admin token);
 * AUTH_NONE: open to anyone.
 */
enum auth_kind {
    AUTH_NONE,
    AUTH_VIEWER,
    AUTH_OPERATOR,
    AUTH_ADMIN,
    AUTH_COOKIE,
    AUTH_SESSION,
    AUTH_METRICS,
};

/* body_cap: one of request.h's BODY_CAP_*. */
struct route {
    const char *method;
    const char *pattern; /* "/api/v1/runs/ * /cancel" with '*' segments */
    enum auth_kind auth;
    size_t body_cap;
    handler_fn fn;
};

/*
 * The route for method and path, with the path's '*' segments copied into
 * args; NULL when there is none. *path_known is then 1 when the path exists
 * with another method (405 rather than 404). Never fails otherwise.
 */
const struct route *route_find(const char *method, const char *path,
                               char args[REQ_MAX_ARGS][REQ_ARG_MAX], int *path_known);

#endif
