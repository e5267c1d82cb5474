/*
 * cloud_http: what the autoscaler's cloud clients share below their
 * protocols (aws.c's Query calls and IMDSv2, rest.c's JSON calls and token
 * endpoints): one libcurl handle set up the same way for every call, the
 * cleaning of a remote server's text before it is logged, and RFC 3339
 * times. Owns nothing between calls.
 */
#ifndef DAVIT_CLI_CLOUD_HTTP_H
#define DAVIT_CLI_CLOUD_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

struct dbuf;

/*
 * A handle for one call to url: no signals, http or https only, the given
 * connect and total timeouts (seconds), the answer's body appended to resp
 * (whose cap bounds it: a larger body fails the transfer), and ca_file as the
 * trust store when it is set. The caller adds method, headers and body, and
 * frees the handle with curl_easy_cleanup. NULL when memory runs out.
 */
CURL *cloud_http_easy(const char *url, const char *ca_file, long connect_s, long total_s,
                      struct dbuf *resp);

/* Copies text from a remote server into out (size bytes, NUL-terminated, cut if longer), with
 * control bytes replaced by '?'. A NULL s gives "". */
void cloud_http_copy_clean(char *out, size_t size, const char *s);

/* An RFC 3339 time ("2026-12-03T05:00:00.123-08:00", "…Z", "…+00:00") as Unix ms, fractions
 * past milliseconds dropped; -1 when s is NULL or not one. */
int64_t cloud_http_time(const char *s);

#endif
