/*
 * api_pools: the pools' handlers (create from a CSR with a token shown
 * once, list, show, delete, reset, cycle) and the pool token. Owns no
 * state. Each handler answers through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_POOLS_H
#define DAVIT_SERVER_API_POOLS_H

#include <stddef.h>

struct req;
struct server;

int h_pool_create(struct req *r);
int h_pool_list(struct req *r);
int h_pool_show(struct req *r);
int h_pool_delete(struct req *r);
int h_pool_reset(struct req *r);
int h_pool_cycle(struct req *r);

/* The pool token (docs/protocol.md): base64 of JSON. Caller frees; NULL
 * when memory runs out. */
char *pool_token_make(struct server *srv, const char *pool_id, const char *secret);

#endif
