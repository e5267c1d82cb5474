/*
 * supervisor: carries one run from spec to cleanup on the local Docker
 * Engine: prepare (worker check, run directory, image) → create → start →
 * follow the spool → enforce the launcher's deadlines and cancel → finish
 * (result, container and run directory removed). It also adopts or cleans
 * up the runs a previous launcher with the same state directory left behind
 * (docs/launcher.md, "Restarts and adoption").
 *
 * The supervisor borrows everything in struct supervisor; it owns only the
 * run it is carrying, which it always cleans up unless the launcher itself
 * is killed (then the next start adopts it). Cancellation comes from sigfd
 * (a signalfd for SIGINT and SIGTERM).
 *
 * The daemon (daemon.h) drives it through hooks instead: sigfd is then an
 * eventfd that wakes the follow loop, the hooks see every spool record and
 * say when to cancel, and nothing is removed at the end (sup_cleanup does it
 * once the daemon has shipped the spool and reported the result).
 */
#ifndef DAVIT_LAUNCHER_SUPERVISOR_H
#define DAVIT_LAUNCHER_SUPERVISOR_H

#include "common/outcome.h"
#include "common/runspec.h"
#include "launcher/config.h"
#include "launcher/docker.h"
#include "launcher/printer.h"
#include "launcher/state.h"

struct run_result {
    enum outcome outcome;
    char phase[SPOOL_PHASE_MAX + 1]; /* the phase that decided it; "" for none */
    int exit_status;                 /* the worker's "exit", -1 when unknown */
    int64_t duration_ms;
    char reason[1024];
    uint64_t spool_end; /* the spool's offset after its last complete record */
};

struct sup_hooks {
    void *arg;
    /* Each spool record, in order, from the first one on (also after an adoption). */
    void (*record)(void *arg, struct run_state *rs, const struct spool_record *r);
    /* Each turn of the follow loop, with the end of the complete records read so
     * far; returns the longest wait (ms) before it wants to be called again. */
    int64_t (*tick)(void *arg, struct run_state *rs, uint64_t spool_end);
    /* 0 go on, 1 cancel (SIGTERM, grace, SIGKILL), 2 stop at once; fills reason
     * ("the user") for the result: "canceled by <reason>". */
    int (*cancel)(void *arg, char *reason, size_t size);
};

struct supervisor {
    const struct launcher_config *cfg;
    struct docker *docker;
    struct state *state;
    struct printer *printer;
    int sigfd;         /* signalfd (non-blocking) for SIGINT/SIGTERM, or -1 */
    int cancel_signal; /* the first cancelling signal received, 0 none */
    int n_signals;
    const struct sup_hooks *hooks; /* the daemon's; NULL for exec */
    char cancel_reason[256];       /* from hooks->cancel */
    /* The daemon's pool, for the io.davit.pool and io.davit.pool.name labels;
     * NULL for exec, which labels with DAVIT_POOL_ID. */
    const char *pool_id, *pool_name;
};

/*
 * Runs spec with the worker binary at worker_path (absolute, checked by the
 * caller), first adopting a run of the same spec (by spec_sha256) that a
 * killed launcher left in the state directory, and cleaning up every other
 * leftover. Returns 0 with res filled (the run's outcome, also when it
 * failed before starting, e.g. an image that cannot be pulled), or -1 with
 * err when the launcher cannot go on; *exit_code is then EXIT_USAGE or
 * EXIT_INTERNAL.
 */
int sup_exec(struct supervisor *s, const struct runspec *spec, const char *spec_sha256,
             const char *worker_path, struct run_result *res, int *exit_code, char *err,
             size_t errsz);

/*
 * The daemon's: carries a new run whose state rs the caller saved (run_id,
 * server fields), with hooks set. Returns 0 with res (also for a run that
 * could not start), or -1 with err; rs then holds what exists (container),
 * for sup_cleanup. Removes nothing.
 */
int sup_run(struct supervisor *s, const struct runspec *spec, struct run_state *rs,
            const char *worker_path, struct run_result *res, char *err, size_t errsz);

/* The daemon's: follows the existing container rs->container to its end. Same contract. */
int sup_adopt(struct supervisor *s, struct run_state *rs, struct run_result *res, char *err,
              size_t errsz);

/*
 * For a run that ends before its container starts, with res set: writes the
 * "launcher" section with res's reason as the run's spool (giving rs a key
 * first if it has none, and saving rs), and sets res->spool_end, so that the
 * reason is shipped as the run's log. Failures are logged.
 */
void sup_not_started(struct supervisor *s, struct run_state *rs, struct run_result *res);

/* Removes rs's container, run directory and state. Failures are logged. */
void sup_cleanup(struct supervisor *s, const struct run_state *rs);

/*
 * Removes rs's container and run directory but keeps its state (which
 * should hold the result by now), clearing rs->container once the container
 * is gone. Returns 0, or -1 with err when something is left (the state then
 * still names it, for sup_cleanup to try again).
 */
int sup_remove(struct supervisor *s, struct run_state *rs, char *err, size_t errsz);

/* Reads pending signals from sigfd; returns 1 if a cancel was asked for. Never fails. */
int sup_poll_signals(struct supervisor *s);

#endif
