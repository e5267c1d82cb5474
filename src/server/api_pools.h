/*
 * api_pools: the pools' handlers (create from a CSR with a token shown
 * once, list, show, delete, reset, cycle) and the pool token. Owns no
 * state. Each handler answers through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_POOLS_H
#define DAVIT_SERVER_API_POOLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct req;
struct server;

/*
 * The bodies' parsers, pure (no request, no store), which the handlers and
 * fuzz/fuzz_api_body.c share. Each returns 0 with the fields pointing into
 * obj (valid while the caller holds it), or -1 with err: one line for a 400
 * that quotes nothing of the body.
 */
/* POST /pools: {"name", "csr"}; the name checked, the CSR not yet. */
int api_pools_parse_create(json_t *obj, const char **name, const char **csr, char *err,
                           size_t errsz);
/* POST /pools/NAME/reset: {"csr"}. */
int api_pools_parse_reset(json_t *obj, const char **csr, char *err, size_t errsz);
/* POST /pools/NAME/cycle: {"deadline"?}; *ms keeps its value when there is none. */
int api_pools_parse_cycle(json_t *obj, int64_t *ms, char *err, size_t errsz);

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
