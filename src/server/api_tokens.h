/*
 * api_tokens: the named API tokens' handlers (create with the token shown
 * once, list, revoke) and the browser session's (sign in with a token, show,
 * sign out). Owns no state: tokens and sessions are in the store by their
 * hashes (store_tokens.c); auth.c checks them on every request. Each handler
 * answers through request.h and returns HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_TOKENS_H
#define DAVIT_SERVER_API_TOKENS_H

#include <jansson.h>
#include <stddef.h>

struct req;

/*
 * POST /tokens: {"name", "role"}, pure (no request, no store). 0 with the
 * fields pointing into obj (valid while the caller holds it) and *role the
 * enum auth_role, or -1 with err: one line for a 400 that quotes nothing of
 * the body. The name of the admin token of the first start is refused.
 */
int api_tokens_parse_create(json_t *obj, const char **name, int *role, char *err, size_t errsz);

/* POST /session: {"token"}, pure, as above; *token points into obj. */
int api_tokens_parse_session(json_t *obj, const char **token, char *err, size_t errsz);

int h_token_create(struct req *r);
int h_token_list(struct req *r);
int h_token_revoke(struct req *r);

int h_session_create(struct req *r);
int h_session_show(struct req *r);
int h_session_delete(struct req *r);

#endif
