/*
 * unseal: the launcher's side of sealed secrets and signed run specs (docs/secrets.md).
 *
 * The spec from the run message is checked in two steps around admission (admission.h), so that a
 * run admission refuses never has its secrets in the clear here: first its signature must verify
 * with one of the submitter keys of DAVIT_SUBMITTER_KEYS (SPACELIFT_SUBMITTER_KEYS) when that is
 * set (unseal_verify); after admission, just before the run directory is written, its sealed
 * secrets are opened with the pool's private key (unseal_open). Anything that fails ends the run
 * before a container exists, with a reason that says which check failed and never quotes a
 * secret.
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
 * Step 1 of 2, before admission: checks spec's shape and, when DAVIT_SUBMITTER_KEYS is set, its
 * signature. Opens nothing: a sealed spec's secrets stay boxes (runspec's sealed, n_secrets 0).
 * spec is not consumed. Returns 0 with *out set (caller frees with runspec_free), or -1 with
 * reason and *out NULL.
 */
int unseal_verify(const json_t *spec, const struct credentials *cred, struct runspec **out,
                  char *reason, size_t rsz);

/*
 * Step 2 of 2, after admission and just before the run directory is written: opens spec's sealed
 * secrets with the pool's private key into checked, which unseal_verify built from the same spec
 * (admission may have changed it since; only its secrets are replaced, its sealed boxes dropped).
 * A spec without "sealed" is left as it is. spec is not consumed; checked stays the caller's
 * (runspec_free wipes the secrets). Returns 0, or -1 with reason (never a secret) and checked
 * unchanged.
 */
int unseal_open(const json_t *spec, const struct credentials *cred, struct runspec *checked,
                char *reason, size_t rsz);

/*
 * Reads the submitter keys from the file at path: one or more Ed25519 public keys as PEM
 * ("-----BEGIN PUBLIC KEY-----", as `openssl pkey -pubout` writes). The file must not be
 * writable by group or others. Sets *keys (free each with EVP_PKEY_free, then the array) and *n.
 * Returns 0, or -1 with err naming the file and the problem.
 */
int unseal_read_keys(const char *path, EVP_PKEY ***keys, size_t *n, char *err, size_t errsz);

#endif
