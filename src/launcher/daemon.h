/*
 * daemon: davit-launcher with no command, the agent driven by the control
 * plane (docs/launcher.md, "The launcher daemon"; docs/protocol.md).
 *
 * The main thread registers, long-polls, acknowledges and dispatches the
 * server's messages, and handles signals. Each run is carried by a thread
 * of its own (runner.c): it fetches the worker release, runs the
 * supervisor with the daemon's hooks, ships the spool by offset and reports
 * the run's events and result. Every thread has its own struct backend and
 * struct docker (neither is thread-safe); the session is shared through
 * struct daemon under its mutex. The daemon owns the runs it started and
 * joins their threads.
 */
#ifndef DAVIT_LAUNCHER_DAEMON_H
#define DAVIT_LAUNCHER_DAEMON_H

#include "launcher/backend.h"
#include "launcher/config.h"
#include "launcher/credentials.h"
#include "launcher/state.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Exit codes of the daemon (docs/launcher.md). */
#define DAEMON_EXIT_STOPPED 0  /* drained (or canceled) and exited after SIGTERM/SIGINT */
#define DAEMON_EXIT_LEFT    1  /* a third signal: left at once, runs kept for adoption */
#define DAEMON_EXIT_CYCLED  75 /* the pool was cycled: replace this launcher */

struct daemon {
    const struct launcher_config *cfg;
    const struct credentials *cred;
    struct state *state;
    char hostname[256];
    char arch[16];
    json_t *metadata;
    char workers_dir[4200];
    int wake_fd;        /* eventfd: a run thread has news for the main thread */
    atomic_int abandon; /* leave at once: run threads stop, keeping their state */
    pthread_mutex_t mu; /* guards what follows */
    struct backend_session sess;
    uint64_t sess_gen; /* bumped by every registration */
    int fatal;         /* registration refused for good (token reset, key) */
    char fatal_msg[1024];
    pthread_mutex_t release_mu; /* one fetch into the worker cache at a time */
};

/* Runs the daemon; returns the process's exit code. */
int daemon_main(void);

/*
 * Gives b a valid session after a 401: copies the shared session when one
 * newer than *gen exists, or else registers again (same launcher_id) through
 * b. Returns BACKEND_OK, BACKEND_UNREACHABLE (retry later), or
 * BACKEND_UNAUTHORIZED when registration is refused for good (d->fatal set).
 */
int daemon_session(struct daemon *d, struct backend *b, uint64_t *gen, char *err, size_t errsz);

/* Wakes the main thread. Never fails. */
void daemon_wake(struct daemon *d);

/* One run, carried by its own thread (runner.c). */
struct daemon_run {
    struct daemon *d;
    int64_t id;
    json_t *msg;         /* the run message (owned; it holds secrets); NULL when adopted */
    struct run_state rs; /* an adopted run's state */
    int adopted;
    pthread_t thread;
    int cancel_fd;      /* eventfd that wakes the run's supervisor */
    pthread_mutex_t mu; /* guards cancel and cancel_reason */
    int cancel;         /* 0, 1 cancel, 2 stop at once */
    char cancel_reason[256];
    atomic_int done;
};

/* Makes r (taking ownership of msg) and starts its thread. Returns 0, or -1 with err. */
int runner_start(struct daemon *d, int64_t id, json_t *msg, const struct run_state *adopted,
                 struct daemon_run **out, char *err, size_t errsz);

/* Asks r to stop: how 1 cancels gracefully, 2 stops at once. The first reason stays. */
void runner_cancel(struct daemon_run *r, int how, const char *reason);

/* Joins r's thread and frees r. */
void runner_join(struct daemon_run *r);

#endif
