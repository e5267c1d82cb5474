/*
 * http: the HTTP layer. Starts libmicrohttpd on srv->cfg's address with
 * the server as every request's context, matches each request against the
 * route table, enforces the body cap and the route's credentials, calls
 * the handler and logs one line per request. Owns srv->mhd and every
 * struct req (request.h) from arrival to end.
 */
#ifndef DAVIT_SERVER_HTTP_H
#define DAVIT_SERVER_HTTP_H

#include <stddef.h>

struct server;

/*
 * Starts serving; fills srv->cfg.port with the bound port (for port 0).
 * -1 with err naming --listen and the reason (no address, plain HTTP off
 * loopback, address in use).
 */
int http_start(struct server *srv, char *err, size_t errsz);
/* Stops accepting, gives resumed requests a moment to answer, closes every
 * connection. Safe when http_start failed or was not called. */
void http_stop(struct server *srv);

#endif
