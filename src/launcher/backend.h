/*
 * backend: the launcher's client of the control plane (docs/protocol.md),
 * on libcurl, with TLS verified against the system CAs or DAVIT_CA_FILE and,
 * when the pool token carries one, a pinned server public key.
 *
 * A struct backend owns one curl handle (a kept-alive connection) and the
 * current session token. It is not thread-safe: give each thread its own,
 * and copy the session with backend_set_session() after a registration.
 *
 * Every call returns one of enum backend_status. On anything but
 * BACKEND_OK, err holds one line naming the call and the reason
 * ("poll: HTTP 401: session expired"). Callers decide from the status:
 * re-register on BACKEND_UNAUTHORIZED, retry with backoff on
 * BACKEND_UNREACHABLE, stop the run on BACKEND_FORBIDDEN or
 * BACKEND_CONFLICT.
 */
#ifndef DAVIT_LAUNCHER_BACKEND_H
#define DAVIT_LAUNCHER_BACKEND_H

#include "launcher/credentials.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum backend_status {
    BACKEND_OK = 0,
    BACKEND_UNREACHABLE = -1,  /* network error, timeout, 5xx: retry later */
    BACKEND_UNAUTHORIZED = -2, /* 401: the session is gone, or registration refused */
    BACKEND_FORBIDDEN = -3,    /* 403: not this launcher's run */
    BACKEND_CONFLICT = -4,     /* 409: the run has ended, or a log gap (see next_offset) */
    BACKEND_REJECTED = -5,     /* another 4xx: a bug or a version mismatch; do not retry */
    BACKEND_TOO_LARGE = -6,    /* 413: the run's log is full */
};

struct backend;

struct backend_identity {
    const char *hostname;
    const char *version;
    const char *arch;
    int capacity;
    json_t *metadata;    /* object of strings; borrowed */
    int64_t launcher_id; /* from an earlier registration, or 0 */
    int ephemeral;       /* one run, then exit: the server sends no second one */
};

struct backend_session {
    char token[256];
    int64_t launcher_id;
    char pool[128];
    int64_t expires_in_s;
    int64_t lease_s;
    int64_t poll_timeout_s;
};

/*
 * Prepares a client for cred's endpoint. ca_file may be NULL (system CAs).
 * Returns 0, or -1 with err. Does not connect.
 */
int backend_open(struct backend **out, const struct credentials *cred, const char *ca_file,
                 int debug, char *err, size_t errsz);
void backend_close(struct backend *b);

/*
 * Installs a function asked about once a second during every call whether
 * to give up (a signal, a run that ended); an aborted call returns
 * BACKEND_UNREACHABLE with "interrupted". NULL removes it. Never fails.
 */
void backend_set_abort(struct backend *b, int (*fn)(void *), void *arg);

/*
 * The limit on one event or log call (default 30 s). A run's thread uses a
 * shorter one, so that a server that accepts but never answers cannot hold
 * up the run's cancel and deadline checks for long. Never fails.
 */
void backend_set_call_timeout(struct backend *b, int seconds);

/* Uses token for every later call. Never fails. */
void backend_set_session(struct backend *b, const char *token);

/* Challenge, sign, register. On success fills s and uses its token. */
int backend_register(struct backend *b, const struct credentials *cred,
                     const struct backend_identity *id, struct backend_session *s, char *err,
                     size_t errsz);

/* What a poll says about this launcher (docs/protocol.md, "Poll"). */
enum backend_poll_mode {
    POLL_TAKING = 0,   /* it takes runs */
    POLL_DRAINING = 1, /* it is stopping: no runs; those never started go back */
    POLL_EXITING = 2,  /* its last poll: the server also forgets it at once */
};

/*
 * Long-polls for messages: acknowledges up to ack, waits at most wait_s.
 * On success *messages is the array of messages (caller owns).
 */
int backend_poll(struct backend *b, int64_t ack, int wait_s, enum backend_poll_mode mode,
                 json_t **messages, char *err, size_t errsz);

/* Posts a run event (not consumed). *state (may be NULL) gets the run's state (caller frees). */
int backend_event(struct backend *b, int64_t run_id, const json_t *event, char **state, char *err,
                  size_t errsz);

/*
 * Ships spool bytes at offset. *next_offset gets the server's end of the log
 * on BACKEND_OK, and on a gap (BACKEND_CONFLICT) or a full log.
 */
int backend_log(struct backend *b, int64_t run_id, uint64_t offset, const void *data, size_t len,
                uint64_t *next_offset, char *err, size_t errsz);

/* Downloads path (on the endpoint) into fd, at most max bytes. */
int backend_download(struct backend *b, const char *path, int fd, int64_t max, char *err,
                     size_t errsz);

#endif
