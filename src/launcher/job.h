/*
 * job: one run of the daemon, carried in a thread of its own and reported
 * to the server (docs/launcher.md, "The launcher daemon").
 *
 * A job fetches the worker release, runs the supervisor with hooks that
 * see every spool record, ships the spool by offset (shipper.h), reports
 * the run's events and result, and then cleans up. An adopted run (left by
 * an earlier start) is followed from its saved state instead. The job's
 * thread has its own struct backend and struct docker (neither is
 * thread-safe); it renews the shared session through session.h. It knows
 * nothing of the daemon: what it shares comes in struct job_env, and it
 * says that it ended through env->ended.
 */
#ifndef DAVIT_LAUNCHER_JOB_H
#define DAVIT_LAUNCHER_JOB_H

#include "launcher/config.h"
#include "launcher/credentials.h"
#include "launcher/session.h"
#include "launcher/state.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What every job borrows. The owner fills it in and keeps it until the last job is joined. */
struct job_env {
    const struct launcher_config *cfg;
    const struct credentials *cred;
    struct state *state;
    struct session *session;
    char workers_dir[4200];     /* the worker release cache */
    pthread_mutex_t release_mu; /* one fetch into the cache at a time */
    atomic_int abandon;         /* set by the owner: every job stops at once, keeping its state */
    /* Called from a job's thread as it ends (job_ended turns true). Must not block. */
    void (*ended)(void *arg);
    void *ended_arg;
};

/* How job_cancel stops a run. */
enum job_stop {
    JOB_CANCEL = 1, /* SIGTERM to the run, its grace, then SIGKILL */
    JOB_KILL = 2,   /* SIGKILL at once */
};

struct job;

/*
 * Starts the thread that carries run id: a new run from msg (the server's
 * run message: the job takes ownership, it holds secrets), or, with msg
 * NULL, the adopted run whose state is adopted (copied). Returns 0 with
 * *out, or -1 with err (msg is freed then too).
 */
int job_start(struct job_env *env, int64_t id, json_t *msg, const struct run_state *adopted,
              struct job **out, char *err, size_t errsz);

/* Asks j to stop (a stronger how wins); the first reason stays ("the user"). Never fails. */
void job_cancel(struct job *j, enum job_stop how, const char *reason);

/* The server's id of j's run. */
int64_t job_run_id(const struct job *j);

/* True once j's thread has finished (job_join then does not wait). */
int job_ended(struct job *j);

/* Joins j's thread and frees j. */
void job_join(struct job *j);

#endif
