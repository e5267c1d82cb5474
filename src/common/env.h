/*
 * env: reads davit's configuration from the environment.
 *
 * Every option X is read from DAVIT_X, and from SPACELIFT_X when DAVIT_X is
 * not set, so that a setup written for Spacelift's launcher keeps working.
 * An empty variable counts as unset. No state; reads environ only.
 */
#ifndef DAVIT_COMMON_ENV_H
#define DAVIT_COMMON_ENV_H

#include <stdint.h>

#include <stddef.h>

/* Room for the full name of a variable, for env_get()'s which. */
#define ENV_NAME_MAX 160

/*
 * Returns the value of DAVIT_<name> or SPACELIFT_<name>, or NULL. If which
 * is not NULL it receives the full name of the variable used, or
 * DAVIT_<name> when neither is set, for error messages. Never fails.
 */
const char *env_get(const char *name, char *which, size_t size);

/*
 * Duration option (see duration.h). Returns 0 and sets *ms (def when unset),
 * or -1 after printing "<VAR>: not a duration: "<value>"" into err.
 */
int env_duration(const char *name, int64_t def, int64_t *ms, char *err, size_t errsz);

/* Boolean option: 1/true/yes/on or 0/false/no/off. Same contract. */
int env_bool(const char *name, int def, int *out, char *err, size_t errsz);

/* Non-negative integer option no larger than max. Same contract. */
int env_int(const char *name, long long def, long long max, long long *out, char *err,
            size_t errsz);

#endif
