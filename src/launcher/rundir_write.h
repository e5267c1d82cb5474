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

#include "common/outcome.h"
#include "common/runspec.h"
#include "common/spool_mac.h"

#include <stddef.h>
#include <stdint.h>

/* The phase name of the records the launcher writes itself (docs/run-directory.md). */
#define RUNDIR_LAUNCHER_PHASE "launcher"

/*
 * Creates dir (which must not exist; its parent must) and fills it from
 * spec. run_id goes to settings/run_id. extra_secrets (may be NULL) are
 * added to secrets/ unless the spec has a secret of the same name. Returns 0,
 * or -1 with err naming the file and the reason; a partly written dir is
 * removed again.
 */
int rundir_write(const char *dir, const struct runspec *spec, const char *run_id,
                 const struct runspec_var *extra_secrets, size_t n_extra, char *err, size_t errsz);

/*
 * Writes the run's spool key into dir as SPOOL_KEY_FILE, mode 0400, for the
 * worker to read and delete before any phase starts. Call it just before
 * the container is created, so that the key is on the disk of the run
 * directory as briefly as possible. Returns 0, or -1 with err.
 */
int rundir_write_key(const char *dir, const unsigned char key[SPOOL_KEY_LEN], char *err,
                     size_t errsz);

/*
 * For a run that ends before its container starts: writes its whole spool,
 * a "launcher" section (S, a W with reason, E) and the R record with outcome
 * and reason, signed with key, so that the reason is shipped as the run's
 * log. Creates dir if it does not exist; the spool must not. Sets *end to
 * the spool's length. Returns 0, or -1 with err.
 */
int rundir_spool_section(const char *dir, const unsigned char key[SPOOL_KEY_LEN],
                         enum outcome outcome, const char *reason, uint64_t *end, char *err,
                         size_t errsz);

/* Removes dir and everything under it. A missing dir is not an error. */
int rundir_remove(const char *dir, char *err, size_t errsz);

#endif
