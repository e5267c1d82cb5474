/*
 * runner: carries out a loaded run directory: the phases and their hooks,
 * the timeouts, cancellation, reaping, and the records of it all.
 *
 * The runner is the worker's event loop. It waits in poll() on the running
 * command's two pipes and on a signalfd, so that output, child exits,
 * signals and deadlines are handled in one place and in order. It owns the
 * mask set and the signalfd; it borrows the run directory and the recorder.
 */
#ifndef DAVIT_WORKER_RUNNER_H
#define DAVIT_WORKER_RUNNER_H

#include "common/outcome.h"
#include "worker/mask.h"
#include "worker/recorder.h"
#include "worker/rundir.h"

#include <stdint.h>

struct runner;

/*
 * Blocks the signals the runner handles and opens its signalfd. Call before
 * anything else so that no signal is lost. Returns the signalfd, or -1.
 */
int runner_signals_setup(void);

/*
 * Runs every phase of rd, writing records through rec, and writes the final
 * result record. sigfd comes from runner_signals_setup() and is closed.
 * Returns the outcome; *fatal is set when the spool could not be written (the
 * run's record is then incomplete and the worker must exit with EXIT_INTERNAL).
 */
enum outcome runner_run(const struct rundir *rd, struct recorder *rec, int sigfd, int *fatal);

#endif
