/*
 * session: the daemon's session with the server (docs/protocol.md,
 * "Registration"), shared by the main thread and every job's thread.
 *
 * It owns what this launcher registers with (hostname, arch, labels), the
 * launcher id the server gave it (kept in the state directory, so that a
 * restart keeps its runs), and the current session token under a mutex.
 * A call that gets a 401 asks session_renew for a valid token: the first
 * thread to ask registers again, the others take the token it got. A
 * registration the server refuses for good (token reset, wrong key) makes
 * the session fatal, with one line that says what to fix. The session
 * borrows cfg, cred and state; they outlive it.
 */
#ifndef DAVIT_LAUNCHER_SESSION_H
#define DAVIT_LAUNCHER_SESSION_H

#include "launcher/backend.h"
#include "launcher/config.h"
#include "launcher/credentials.h"
#include "launcher/state.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

struct session {
    /* Set by session_init, read-only after: any thread may read them. */
    const struct launcher_config *cfg;
    const struct credentials *cred;
    struct state *state;
    char hostname[256];
    char arch[16]; /* the Go name: amd64, arm64 */
    json_t *metadata;
    pthread_mutex_t mu; /* guards what follows */
    struct backend_session cur;
    uint64_t gen; /* bumped by every registration */
    int fatal;    /* registration refused for good */
    char fatal_msg[1024];
};

/*
 * Fills in this machine's identity and the launcher id stored from an
 * earlier registration with this pool (none yet: 0). Registers nothing.
 * Returns 0, or -1 with err; session_free is due either way.
 */
int session_init(struct session *s, const struct launcher_config *cfg,
                 const struct credentials *cred, struct state *state, char *err, size_t errsz);
void session_free(struct session *s);

/*
 * Gives b a valid session: copies the shared one when one newer than *gen
 * exists, or else registers (again, with the same launcher id) through b.
 * *gen becomes the current generation. Returns BACKEND_OK,
 * BACKEND_UNREACHABLE (retry later), or BACKEND_UNAUTHORIZED when
 * registration is refused for good (the session is fatal then), with err.
 */
int session_renew(struct session *s, struct backend *b, uint64_t *gen, char *err, size_t errsz);

/* Gives b the current token; *gen and pool (the pool's name) as of now. Never fails. */
void session_use(struct session *s, struct backend *b, uint64_t *gen, char *pool, size_t size);

/* A copy of the current session, its token left out. Never fails. */
void session_get(struct session *s, struct backend_session *out);

/* 1 with msg (what to fix) when registration was refused for good, else 0. */
int session_fatal(struct session *s, char *msg, size_t size);

/*
 * The launcher id the server gave for pool_id, kept in the state directory
 * (a JSON file). Load returns it, or 0 when none is stored for pool_id (a
 * file that cannot be read is logged). Store logs its failures.
 */
int64_t session_id_load(const struct state *st, const char *pool_id);
void session_id_store(const struct state *st, const char *pool_id, int64_t id);

#endif
