/*
 * runrules: the rules a run's names and sizes follow, in one place for the
 * two sides that check them: the run spec (runspec.c, in davit and
 * davit-launcher) and the run directory (the static worker). libc only.
 * Pure functions.
 */
#ifndef DAVIT_COMMON_RUNRULES_H
#define DAVIT_COMMON_RUNRULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUN_MAX_PHASES   64
#define RUN_MAX_COMMANDS 64           /* per list (before, commands, after) */
#define RUN_MAX_COMMAND  (128 * 1024) /* bytes in one command */
#define RUN_MAX_VARS     512          /* env and secrets together */
#define RUN_MAX_NAME     128          /* bytes in a variable name */
#define RUN_MAX_VALUE    (128 * 1024) /* bytes in a variable's value */

/* A list of commands (a phase's before, commands or after), owned by its holder. */
struct run_list {
    char **items;
    size_t n;
};

/* One phase, the same whether it came from a spec (runspec.h) or a run
 * directory (the worker's rundir.h). */
struct run_phase {
    char name[65];
    struct run_list before, commands, after;
    int64_t timeout_ms; /* 0: none */
};

/* True if s is a variable name: [A-Za-z_][A-Za-z0-9_]*, at most RUN_MAX_NAME bytes. */
int runrules_var_name_ok(const char *s);

/*
 * Parses "UID" or "UID:GID" (numbers only: an image need not have
 * /etc/passwd); GID defaults to UID. Returns 0, or -1 when s is anything
 * else. The outputs may be NULL to only check.
 */
int runrules_user_parse(const char *s, uid_t *uid, gid_t *gid);

#endif
