/*
 * runspec: the run spec (docs/run-spec.md) parsed and validated.
 *
 * One parser for everyone who reads a spec: davit-launcher exec (a file),
 * the server (POST /api/v1/runs) and the launcher daemon (a run assignment).
 * Validation is strict: unknown fields, wrong types, bad names, bad durations
 * and out-of-range values are errors, reported as one line naming the field
 * ("phases[1].timeout: not a duration: \"ten\"").
 */
#ifndef DAVIT_COMMON_RUNSPEC_H
#define DAVIT_COMMON_RUNSPEC_H

#include "common/runrules.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RUNSPEC_MAX_PHASES   64
#define RUNSPEC_MAX_COMMANDS 64           /* per list */
#define RUNSPEC_MAX_COMMAND  (128 * 1024) /* bytes in one command */
#define RUNSPEC_MAX_VARS     512          /* env and secrets together */
#define RUNSPEC_MAX_NAME     128          /* variable name */
#define RUNSPEC_MAX_VALUE    (128 * 1024) /* variable value */

#define RUNSPEC_NONCE_LEN    32 /* run_nonce: hex digits */
#define RUNSPEC_SEAL_ALG_RSA "rsa-oaep-256/a256gcm"
#define RUNSPEC_SEAL_ALG_EC  "ecdh-es-p256-hkdf-sha256/a256gcm"

#define RUNSPEC_DEFAULT_RUN_TIMEOUT_MS    (70LL * 60 * 1000)
#define RUNSPEC_DEFAULT_OUTPUT_TIMEOUT_MS (7LL * 60 * 1000)
#define RUNSPEC_DEFAULT_KILL_GRACE_MS     (10LL * 1000)

struct runspec_var {
    char *name;
    char *value;
};

struct runspec {
    char *image; /* NULL when the spec names none: the launcher's DAVIT_DEFAULT_RUNNER_IMAGE */
    struct run_phase *phases;
    size_t n_phases;
    struct runspec_var *env;
    size_t n_env;
    struct runspec_var *secrets;
    size_t n_secrets;
    struct runspec_var *sealed; /* sealed.secrets: name and base64 box (docs/secrets.md) */
    size_t n_sealed;
    char run_nonce[RUNSPEC_NONCE_LEN + 1]; /* "" when the spec has none */
    int64_t run_timeout_ms;                /* defaults filled in; 0 disables */
    int64_t output_timeout_ms;
    int64_t kill_grace_ms;
    char user[32];     /* "UID" or "UID:GID"; "" runs phases as root */
    int64_t memory_mb; /* limits: 0 when unset */
    double cpus;
    int64_t pids;
};

/*
 * Validates obj and builds a spec. Returns 0 and sets *out (caller frees with
 * runspec_free), or -1 with a one-line reason in err. Does not take
 * ownership of obj.
 */
int runspec_from_json(const json_t *obj, struct runspec **out, char *err, size_t errsz);

/* Same, from JSON text (a file's contents or a request body). */
int runspec_parse(const char *text, size_t len, struct runspec **out, char *err, size_t errsz);

/*
 * The spec as JSON, in the documented shape. Secret values are included only
 * when with_secrets is true; otherwise each value is "***". Caller owns the
 * reference. Returns NULL only when out of memory.
 */
json_t *runspec_to_json(const struct runspec *spec, int with_secrets);

/* Frees spec and everything it owns. NULL is fine. */
void runspec_free(struct runspec *spec);

#endif
