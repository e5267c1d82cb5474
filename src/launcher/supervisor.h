/*
 * supervisor: carries one run from spec to cleanup on the local Docker
 * Engine: prepare (run directory, image) → create → start → follow the
 * spool → enforce the launcher's deadlines and cancel → decide the outcome
 * → remove the container and the run directory. It also follows a run that
 * a previous launcher with the same state directory left (adoption, see
 * docs/launcher.md, "Restarts and adoption").
 *
 * Both faces of davit-launcher use it the same way, through hooks: the
 * daemon's job (job.h) ships the spool and reports to the server; exec
 * (exec.h) prints the records and saves its offset. The hooks see every
 * spool record, are asked each turn of the follow loop, and say when to
 * cancel; wake_fd wakes the follow loop when they have news. The supervisor
 * removes nothing on its own at the end: its caller calls sup_remove or
 * sup_cleanup once it is done with the run (the daemon after the result is
 * reported).
 *
 * The supervisor borrows everything in struct supervisor; it owns only the
 * run it is carrying while it carries it.
 */
#ifndef DAVIT_LAUNCHER_SUPERVISOR_H
#define DAVIT_LAUNCHER_SUPERVISOR_H

#include "common/outcome.h"
#include "common/runspec.h"
#include "common/spool.h"
#include "launcher/config.h"
#include "launcher/docker.h"
#include "launcher/state.h"

struct run_result {
    enum outcome outcome;
    char phase[SPOOL_PHASE_MAX + 1]; /* the phase that decided it; "" for none */
    int exit_status;                 /* the worker's "exit", -1 when unknown */
    int64_t duration_ms;
    char reason[1024];
    uint64_t spool_end; /* the spool's offset after its last complete record */
};

/* What a cancel asks for (sup_hooks.cancel). */
enum sup_cancel {
    SUP_GO_ON = 0,
    SUP_CANCEL = 1, /* SIGTERM, the spec's kill grace, SIGKILL */
    SUP_KILL = 2,   /* SIGKILL at once */
};

struct sup_hooks {
    void *arg;
    /* Each spool record, in order, from the first one on (also after an
     * adoption: the hook skips what it handled before, by seq). */
    void (*record)(void *arg, struct run_state *rs, const struct spool_record *r);
    /* Each turn of the follow loop, with the end of the complete records read so
     * far; returns the longest wait (ms) before it wants to be called again. */
    int64_t (*tick)(void *arg, struct run_state *rs, uint64_t spool_end);
    /* An enum sup_cancel. For a cancel, fills who, the canceller as the launcher's
     * messages name it ("the user", "SIGTERM"), and by, as the run's result does
     * ("the user", "SIGTERM to davit-launcher"), both of size bytes. */
    int (*cancel)(void *arg, char *who, char *by, size_t size);
    /* A message of the launcher's own about the run ("run timeout expired:
     * stopping the container"), already logged. May be NULL. */
    void (*note)(void *arg, const char *msg);
    /* The bytes of records that passed their checks (spool_tail_on_checked),
     * for a shipper to send without checking them again. May be NULL. */
    void (*checked)(void *arg, uint64_t offset, const char *data, size_t len);
};

struct supervisor {
    const struct launcher_config *cfg;
    struct docker *docker;
    struct state *state;
    const struct sup_hooks *hooks; /* needed by sup_run and sup_adopt only */
    int wake_fd; /* readable when hooks->cancel may have news (the hooks read it), or -1 */
    /* The pool, for the io.davit.pool and io.davit.pool.name labels; the
     * daemon's; NULL for exec, which labels with DAVIT_POOL_ID. */
    const char *pool_id, *pool_name;
    /* What the hooks asked: the strongest cancel, and the first reason. */
    int cancel; /* an enum sup_cancel */
    char cancel_who[256], cancel_by[256];
};

/*
 * Carries a new run whose state rs the caller saved (run_id, and the
 * daemon's server fields). Returns 0 with res when the run was carried to
 * its end, 1 with res when it ended before its container started (an image
 * that cannot be pulled, a cancel; see sup_not_started), or -1 with err when
 * the launcher cannot go on. rs then holds what exists (container), for
 * sup_remove or sup_cleanup.
 */
int sup_run(struct supervisor *s, const struct runspec *spec, struct run_state *rs,
            const char *worker_path, struct run_result *res, char *err, size_t errsz);

/*
 * Follows the existing container rs->container to its end, with the kill
 * grace rs->kill_grace_ms (when 0, the default for a run of unknown spec).
 * With stop, stops it at once (SIGTERM, SIGKILL after the grace): a run that
 * nobody waits for any more; that is not a cancel. Returns 0 with res, or -1
 * with err; rs then holds what exists.
 */
int sup_adopt(struct supervisor *s, struct run_state *rs, int stop, struct run_result *res,
              char *err, size_t errsz);

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

/* Asks hooks->cancel, keeping what it says in s; returns 1 if a cancel was asked for. */
int sup_poll_cancel(struct supervisor *s);

#endif
