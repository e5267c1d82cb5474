/*
 * rundir: reads and validates the run directory (docs/run-directory.md).
 *
 * The run directory is the worker's only input. rundir_load() reads all of
 * it up front, before any phase starts, so that a mistake in it stops the
 * run before anything has happened. The loaded struct owns copies of
 * everything; the directory is not read again.
 */
#ifndef DAVIT_WORKER_RUNDIR_H
#define DAVIT_WORKER_RUNDIR_H

#include "common/runrules.h"
#include "common/spool_mac.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUNDIR_DEFAULT_PATH      "/opt/davit/run"
#define RUNDIR_DEFAULT_WORKSPACE "/mnt/workspace"
#define RUNDIR_VERSION           "1"

/* The same limits as the run spec's (runrules.h). */
#define RUNDIR_MAX_PHASES   RUN_MAX_PHASES
#define RUNDIR_MAX_COMMANDS RUN_MAX_COMMANDS
#define RUNDIR_MAX_COMMAND  RUN_MAX_COMMAND
#define RUNDIR_MAX_VARS     RUN_MAX_VARS
#define RUNDIR_MAX_NAME     RUN_MAX_NAME
#define RUNDIR_MAX_VALUE    RUN_MAX_VALUE

struct rundir_var {
    char *name;
    char *value;
    int secret;
};

struct rundir {
    char run_id[129];
    int64_t run_timeout_ms; /* 0 disables each of these */
    int64_t output_timeout_ms;
    int64_t kill_grace_ms;
    int has_user;
    uid_t uid;
    gid_t gid;
    char workspace[4096];
    int echo;
    struct run_phase *phases;
    size_t n_phases;
    struct rundir_var *vars; /* env first, then secrets */
    size_t n_vars;
};

/*
 * Loads the run directory open at dirfd (the caller keeps dirfd).
 * Returns 0, or -1 with err set to one line naming the file and the problem
 * ("settings/run_timeout: not a duration: \"ten\""). On failure rd holds
 * nothing that needs freeing; on success free it with rundir_free().
 */
int rundir_load(int dirfd, struct rundir *rd, char *err, size_t errsz);

/*
 * Reads the run's key (the file SPOOL_KEY_FILE, exactly SPOOL_KEY_LEN bytes)
 * from the directory open at dirfd into key, and unlinks the file, so that
 * the phases started later cannot read it. Call it before rundir_load, which
 * takes any file left there for an unknown one. Returns 0, or -1 with err
 * ("key: missing: …"); key is then zeroed. Keeps no other copy of the key.
 */
int rundir_take_key(int dirfd, unsigned char *key, char *err, size_t errsz);

/* Frees what rundir_load() allocated. Safe on a zeroed struct. */
void rundir_free(struct rundir *rd);

#endif
