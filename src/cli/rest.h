/*
 * rest: the JSON-over-HTTPS calls with a bearer token that the Azure and GCP
 * providers make (azure.c, gcp.c), over libcurl and jansson, and the
 * instance-metadata token both fetch.
 *
 * Errors: -1 with err filled with one line naming the call and the cloud's
 * error ({"error": {"code", "message"}} or {"error": {"status", "message"}}),
 * control bytes replaced; PROV_EAUTH (provider.h) for HTTP 401 and 403, the
 * credentials refused. The request body and the token are never in err.
 */
#ifndef DAVIT_CLI_REST_H
#define DAVIT_CLI_REST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bearer tokens are JWTs of a few KB. */
#define REST_TOKEN_SIZE 16384

/*
 * One call: method on url with "Authorization: Bearer token" and body (NULL for none) as JSON.
 * what names the call in err ("Azure get scale set"). On 2xx, *out (may be NULL) gets the
 * answer's JSON (a new reference; an empty answer is an empty object).
 */
int rest_call(const char *what, const char *token, const char *ca_file, const char *method,
              const char *url, json_t *body, json_t **out, char *err, size_t errsz);

/*
 * rest_call, and the value of the answer's header named header (case-insensitive, like
 * "Azure-AsyncOperation") into value (vsize bytes; "" when the answer has none or it does not
 * fit).
 */
int rest_call_header(const char *what, const char *token, const char *ca_file, const char *method,
                     const char *url, json_t *body, json_t **out, const char *header, char *value,
                     size_t vsize, char *err, size_t errsz);

/*
 * An access token from an instance's metadata service: GET url with header (like
 * "Metadata: true"), whose JSON answer holds access_token. token gets it (REST_TOKEN_SIZE).
 * -1 with err naming url when there is none.
 */
int rest_metadata_token(const char *url, const char *header, char *token, char *err, size_t errsz);

/*
 * An access token by OAuth 2.0 client credentials: POSTs client_id, secret and scope to the
 * token endpoint url (trusting ca_file when not NULL). Same returns; the secret is never in err.
 */
int rest_client_token(const char *url, const char *client_id, const char *secret, const char *scope,
                      const char *ca_file, char *token, char *err, size_t errsz);

/* s, percent-encoded for a URL path segment, into out; -1 when it does not fit. */
int rest_escape(const char *s, char *out, size_t size);

/* "out of memory" into err; -1. */
int rest_oom(char *err, size_t errsz);

/* Drops one trailing '/' from a URL. */
void rest_trim_slash(char *s);

#endif
