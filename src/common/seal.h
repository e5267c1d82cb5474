/*
 * seal: a run's secrets sealed to its pool's public key, and signed run specs (docs/secrets.md,
 * which writes the scheme down byte for byte).
 *
 * Sealing: one fresh 256-bit key per run; each secret is AES-256-GCM under it with a random
 * 96-bit IV and associated data that names the scheme, the pool key's fingerprint, the pool id,
 * the run's nonce and the secret's name, so that a ciphertext moved to another run, pool or name
 * fails to open. The run key reaches the pool as RSA-OAEP-SHA256 for RSA pools, or is derived by
 * ECDH-ES (an ephemeral P-256 key) and HKDF-SHA256 for EC pools. Ed25519 pools are refused: the
 * key only signs (docs/secrets.md says why).
 *
 * Signing: an Ed25519 signature over "davit-spec-v1" NUL pool id NUL and the spec's canonical
 * JSON (RFC 8785 for the values a spec can hold) without its "signature" member.
 *
 * Owns nothing between calls and keeps no state. Every key, shared secret and plaintext it
 * handles is wiped with OPENSSL_cleanse before it is freed. Functions return 0 on success, or -1
 * with a one-line reason in err that never quotes a secret.
 */
#ifndef DAVIT_COMMON_SEAL_H
#define DAVIT_COMMON_SEAL_H

#include "common/dbuf.h"
#include "common/runspec.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#define SEAL_NONCE_HEX  33 /* a run nonce: 32 lowercase hex digits (128 bits) and a NUL */
#define SEAL_KEY_ID_HEX 65 /* a key fingerprint: sha256 hex of the DER SubjectPublicKeyInfo */

#define SEAL_ALG_RSA RUNSPEC_SEAL_ALG_RSA
#define SEAL_ALG_EC  RUNSPEC_SEAL_ALG_EC

/* A fresh random run nonce into out. */
int seal_new_nonce(char out[SEAL_NONCE_HEX]);

/* The fingerprint of key (public or private) into out. */
int seal_key_id(EVP_PKEY *key, char out[SEAL_KEY_ID_HEX]);

/* The same for an SPKI PEM public key. */
int seal_key_id_pem(const char *pub_pem, char out[SEAL_KEY_ID_HEX], char *err, size_t errsz);

/*
 * Seals secrets (a JSON object of name: string) to the public key in pub_pem for the run with
 * run_nonce in pool pool_id. Sets *sealed to the spec's "sealed" object (caller owns). Refuses an
 * Ed25519 key with a reason that says what to do.
 */
int seal_secrets(const char *pub_pem, const char *pool_id, const char *run_nonce,
                 const json_t *secrets, json_t **sealed, char *err, size_t errsz);

/*
 * Opens sealed with the pool's private key. Sets *secrets to a new object of name: plaintext
 * (caller owns; a program that holds secrets in jansson wipes what it frees, see
 * src/launcher/main.c). Fails when the key is not the one sealed to (the reason says the pool
 * was reset), or when any ciphertext does not open (tampered, truncated or moved).
 */
int seal_open(EVP_PKEY *priv, const char *pool_id, const char *run_nonce, const json_t *sealed,
              json_t **secrets, char *err, size_t errsz);

/*
 * The canonical JSON of v into out: RFC 8785 (JCS) for the values a run spec holds: object
 * keys must be ASCII (then UTF-16 order is byte order), numbers are integers of at most 2^53 in
 * magnitude or finite reals written as ECMAScript's Number.prototype.toString does.
 */
int seal_canonical(const json_t *v, struct dbuf *out, char *err, size_t errsz);

/*
 * The message a spec's signature covers: "davit-spec-v1", NUL, pool_id, NUL, then the canonical
 * JSON of spec without its "signature" member. Into out (reset first).
 */
int seal_spec_message(const json_t *spec, const char *pool_id, struct dbuf *out, char *err,
                      size_t errsz);

/* Signs spec (for pool_id) with the Ed25519 private key ed and sets its "signature" member. */
int seal_sign_spec(json_t *spec, const char *pool_id, EVP_PKEY *ed, char *err, size_t errsz);

/*
 * Verifies spec's "signature" with each of keys[0..n) (Ed25519 public keys). Returns 0 when one
 * of them verifies it, -1 with a reason otherwise (unsigned, malformed, no key verifies).
 */
int seal_verify_spec(const json_t *spec, const char *pool_id, EVP_PKEY *const *keys, size_t n,
                     char *err, size_t errsz);

#endif
