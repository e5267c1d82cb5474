/*
 * unseal: the launcher's side of sealed secrets and signed run specs (docs/secrets.md).
 *
 * Just before a run's directory is written, the spec from the run message is checked and
 * opened: its signature must verify with one of the submitter keys of DAVIT_SUBMITTER_KEYS
 * (SPACELIFT_SUBMITTER_KEYS) when that is set, and its sealed secrets are opened with the pool's
 * private key. Anything that fails ends the run before a container exists, with a reason that
 * says which check failed and never quotes a secret.
 *
 * The submitter keys are read once, at the first run, and kept for the process's life (they are
 * public). Thread-safe.
 */
#ifndef DAVIT_LAUNCHER_UNSEAL_H
#define DAVIT_LAUNCHER_UNSEAL_H

#include "common/runspec.h"
#include "launcher/credentials.h"

#include <jansson.h>
#include <stddef.h>

/*
 * Reads DAVIT_SUBMITTER_KEYS's file now (otherwise the first run does), so that a daemon with a
 * bad one stops at its start. Returns 0 (also when the variable is unset), or -1 with err.
 */
int unseal_init(char *err, size_t errsz);

/*
 * Checks spec (not consumed) and builds the run spec with its secrets in the clear. Returns 0
 * with *out set (caller frees with runspec_free, which wipes the secrets), or -1 with reason.
 */
int unseal_spec(const json_t *spec, const struct credentials *cred, struct runspec **out,
                char *reason, size_t rsz);

/*
 * Reads the submitter keys from the file at path: one or more Ed25519 public keys as PEM
 * ("-----BEGIN PUBLIC KEY-----", as `openssl pkey -pubout` writes). The file must not be
 * writable by group or others. Sets *keys (free each with EVP_PKEY_free, then the array) and *n.
 * Returns 0, or -1 with err naming the file and the problem.
 */
int unseal_read_keys(const char *path, EVP_PKEY ***keys, size_t *n, char *err, size_t errsz);

#endif
