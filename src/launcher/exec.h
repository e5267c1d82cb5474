/*
 * exec: the one run of `davit-launcher exec` (docs/launcher.md), on the
 * supervisor's path with hooks of its own: they print the run's records
 * and the launcher's notes on stdout, save the spool offset as records
 * arrive, and turn SIGINT/SIGTERM (read from a signalfd) into a cancel.
 *
 * Before the run it deals with what a killed exec with the same state
 * directory left: the run of the same spec is adopted (followed to its end
 * instead of starting again), the runs of other specs are stopped and
 * removed, and state without a container is deleted. Every run it carries
 * is cleaned up (container, run directory, state) when it ends.
 */
#ifndef DAVIT_LAUNCHER_EXEC_H
#define DAVIT_LAUNCHER_EXEC_H

#include "common/runspec.h"
#include "launcher/printer.h"
#include "launcher/supervisor.h"

#include <stddef.h>

/*
 * Runs spec with the worker binary at worker_path (absolute, checked by the
 * caller). s has cfg, docker and state set (borrowed); exec sets its hooks
 * for the call. Cancel comes from sigfd, a non-blocking signalfd for SIGINT
 * and SIGTERM. spec_sha256 recognises the run to adopt. Returns 0 with res
 * (the run's outcome, also when it failed before starting, e.g. an image
 * that cannot be pulled), or -1 with err when the launcher cannot go on;
 * *exit_code is then EXIT_USAGE or EXIT_INTERNAL.
 */
int exec_run(struct supervisor *s, struct printer *printer, int sigfd, const struct runspec *spec,
             const char *spec_sha256, const char *worker_path, struct run_result *res,
             int *exit_code, char *err, size_t errsz);

#endif
