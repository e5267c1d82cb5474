/*
 * api_launcher: the launchers' protocol (docs/protocol.md): challenge and
 * register, the long-poll, heartbeats, run events and log chunks. Owns no
 * state beyond the request's poll fields. h_launcher_poll may return
 * HANDLER_SUSPENDED; the others return HANDLER_DONE.
 */
#ifndef DAVIT_SERVER_API_LAUNCHER_H
#define DAVIT_SERVER_API_LAUNCHER_H

#include "common/pooltoken.h"
#include "server/store.h"

#include <jansson.h>
#include <stddef.h>

struct req;

/*
 * The bodies' parsers, pure (no request, no store), which the handlers and
 * fuzz/fuzz_api_body.c share. Each returns 0 with the fields pointing into
 * obj (valid while the caller holds it), or -1 with err: one line for a 400
 * that quotes nothing of the body.
 */
/* POST /launcher/challenge: {"pool_id"}. */
int api_launcher_parse_challenge(json_t *obj, const char **pool_id, char *err, size_t errsz);

/* POST /launcher/register. */
struct api_register {
    const char *pool_id, *pool_secret; /* given, or from the token */
    const char *challenge_id, *signature, *hostname, *version, *arch;
    json_int_t capacity, reuse_id; /* reuse_id 0: none */
    json_t *metadata;              /* NULL when none */
    int ephemeral;                 /* one run only (capacity 1): never sent a second */
    struct pool_token tok;         /* the decoded token, if one came: api_register_clear */
};
/* Fills reg (zeroed first); api_register_clear it, also after a failure. */
int api_launcher_parse_register(json_t *obj, struct api_register *reg, char *err, size_t errsz);
void api_register_clear(struct api_register *reg);

/* POST /launcher/poll: every field optional; those absent keep their values. */
struct api_poll {
    json_int_t ack, wait_s;
    int draining, exiting;
};
int api_launcher_parse_poll(json_t *obj, struct api_poll *p, char *err, size_t errsz);

/* POST /launcher/runs/ID/events: ev (exit_code -1 when absent) and whether it is a result. */
int api_launcher_parse_event(json_t *obj, struct store_event *ev, int *is_result, char *err,
                             size_t errsz);

int h_launcher_challenge(struct req *r);
int h_launcher_register(struct req *r);
int h_launcher_poll(struct req *r);
int h_launcher_heartbeat(struct req *r);
int h_launcher_event(struct req *r);
int h_launcher_log(struct req *r);

#endif
