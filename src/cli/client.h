/*
 * client: the CLI's HTTP client for the davit API, on libcurl.
 *
 * Owns nothing between calls. Responses are capped (64 MiB); streams are
 * written to a FILE as they arrive.
 */
#ifndef DAVIT_CLI_CLIENT_H
#define DAVIT_CLI_CLIENT_H

#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"

/*
 * Sends method path (below c->server) with an optional body and parses the
 * JSON answer into *out (caller owns; out may be NULL for a body that is
 * not JSON; *out is NULL after a 204 No Content). Returns 0 for a 2xx
 * answer; otherwise prints "davit: <error>" on stderr and returns EXIT_API
 * or EXIT_UNREACHABLE, or EXIT_USAGE when DAVIT_SERVER or DAVIT_API_TOKEN
 * is not set (read into c at the first call). *status gets the HTTP status
 * (0 when unreachable) when status is not NULL.
 */
int client_call(struct cli *c, const char *method, const char *path, const char *content_type,
                const void *body, size_t len, json_t **out, long *status);

/* client_call with a JSON body (not consumed). */
int client_call_json(struct cli *c, const char *method, const char *path, const json_t *body,
                     json_t **out);

/* GETs path and copies the body to out as it arrives. Same returns as client_call. */
int client_stream(struct cli *c, const char *path, FILE *out);

/* Percent-encodes s for a query string. Caller frees. */
char *client_escape(const char *s);

#endif
