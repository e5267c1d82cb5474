/*
 * rundir_write: writes a run directory (docs/run-directory.md, version 1) on
 * the host from a parsed run spec, for davit-worker to read.
 *
 * Directories are created 0700 and files 0600, so that only root (the
 * worker) can read them; secrets exist only as files under secrets/, never
 * anywhere else. Nothing is kept in memory. rundir_remove deletes a run
 * directory, spool included.
 */
#ifndef DAVIT_LAUNCHER_RUNDIR_WRITE_H
#define DAVIT_LAUNCHER_RUNDIR_WRITE_H

#include "common/runspec.h"

#include <stddef.h>

/*
 * Creates dir (which must not exist; its parent must) and fills it from
 * spec. run_id goes to settings/run_id. extra_secrets (may be NULL) are
 * added to secrets/ unless the spec has a secret of the same name. Returns 0,
 * or -1 with err naming the file and the reason; a partly written dir is
 * removed again.
 */
int rundir_write(const char *dir, const struct runspec *spec, const char *run_id,
                 const struct runspec_var *extra_secrets, size_t n_extra, char *err, size_t errsz);

/* Removes dir and everything under it. A missing dir is not an error. */
int rundir_remove(const char *dir, char *err, size_t errsz);

#endif
