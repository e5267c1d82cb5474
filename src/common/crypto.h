/*
 * crypto: cryptographic helpers shared by the server and the launcher, all
 * on OpenSSL 3.
 *
 * Owns nothing between calls and keeps no state. It covers random tokens, sha256, base64, CSR
 * parsing with self-signature verification, signature verification with a pool's public key (RSA >=
 * 2048 PKCS#1 v1.5/SHA-256, ECDSA P-256/SHA-256, Ed25519) and the server's Ed25519 release-signing
 * key.
 *
 * Errors: functions return 0 on success and -1 on failure with a one-line
 * reason in err (when they take one). Strings handed back are NUL-terminated
 * and the caller frees them with free().
 */
#ifndef DAVIT_COMMON_CRYPTO_H
#define DAVIT_COMMON_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_HEX 65  /* 64 hex digits and a NUL */
#define CRYPTO_TOKEN_MAX  128 /* longest token from crypto_random_token, NUL included */

/* Fills buf with n cryptographically random bytes. */
int crypto_random(void *buf, size_t n);

/*
 * Writes prefix followed by 32 random bytes in unpadded base64url into out
 * (CRYPTO_TOKEN_MAX bytes). prefix is at most 16 characters.
 */
int crypto_random_token(const char *prefix, char *out);

/* Lower-case hex sha256 of data. Never fails. */
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX]);

/* Constant-time comparison of two NUL-terminated strings; 1 when equal. */
int crypto_str_equal(const char *a, const char *b);

/* Standard padded base64 of data. Caller frees; NULL when out of memory. */
char *crypto_b64_encode(const void *data, size_t len);

/*
 * Decodes standard base64 (padding required, no whitespace). Sets *out
 * (caller frees; NUL-terminated for convenience, not counted in *outlen).
 */
int crypto_b64_decode(const char *s, unsigned char **out, size_t *outlen);

/*
 * The same for a value a person pasted (an environment variable): spaces,
 * tabs and newlines around it are ignored, none inside. -1 when it is not
 * base64 or memory runs out. The trimmed copy it makes is wiped.
 */
int crypto_b64_decode_pasted(const char *s, unsigned char **out, size_t *outlen);

/*
 * Parses a PEM certificate signing request, checks the key, then verifies the self-signature.
 * Accepted: RSA of at least 2048 bits with an odd public exponent of at least 65537, EC on the
 * named curve P-256 (explicit curve parameters are refused), or Ed25519; each must also pass
 * EVP_PKEY_public_check. A refusal's err is one line that names the problem and the fix.
 * Sets *pubkey_pem (caller frees) and writes "rsa", "ec" or "ed25519" into
 * keytype (16 bytes).
 */
int crypto_csr_pubkey(const char *pem, size_t len, char **pubkey_pem, char *keytype, char *err,
                      size_t errsz);

/*
 * Verifies sig over msg with the public key in pubkey_pem: SHA-256 for RSA
 * (PKCS#1 v1.5) and EC (DER ECDSA), pure Ed25519 for Ed25519.
 * Returns 1 when valid, 0 when not, -1 when the key cannot be used.
 */
int crypto_verify(const char *pubkey_pem, const void *msg, size_t msglen, const unsigned char *sig,
                  size_t siglen);

/*
 * A public key decoded once, for verifying many signatures (the server keeps one per pool:
 * decoding the PEM costs about three times the verification). Opaque; it is an OpenSSL EVP_PKEY
 * that nobody modifies after crypto_pubkey_decode, so threads may verify with it at the same time
 * (openssl-threads(7): a shared object that is not modified), each holding its own reference.
 */
struct crypto_pubkey;

/* Decodes a PEM SubjectPublicKeyInfo: one reference (crypto_pubkey_free), or NULL when the PEM
 * is not a public key or memory runs out. */
struct crypto_pubkey *crypto_pubkey_decode(const char *pubkey_pem);

/* Another reference to k (atomic; any thread). Returns k. */
struct crypto_pubkey *crypto_pubkey_ref(struct crypto_pubkey *k);

/* Drops one reference; the last one frees the key. NULL is fine. */
void crypto_pubkey_free(struct crypto_pubkey *k);

/* The OpenSSL EVP_PKEY behind k, borrowed: valid while the caller holds its reference to k, and
 * only for calls that read it (seal_key_id). void * so that this header needs no OpenSSL one. */
void *crypto_pubkey_evp(struct crypto_pubkey *k);

/* crypto_verify with a decoded key: 1 when valid, 0 when not, -1 when OpenSSL fails. */
int crypto_verify_key(struct crypto_pubkey *k, const void *msg, size_t msglen,
                      const unsigned char *sig, size_t siglen);

/* Makes a new Ed25519 key pair as PEM (PKCS#8 private, SPKI public). Caller frees both. */
int crypto_ed25519_generate(char **priv_pem, char **pub_pem);

/* The SPKI public-key PEM of a private-key PEM. Caller frees. */
int crypto_public_pem(const char *priv_pem, char **pub_pem);

/*
 * Signs msg with the Ed25519 private key in priv_pem and returns the 64-byte
 * signature as standard base64 in *sig_b64 (caller frees).
 */
int crypto_ed25519_sign(const char *priv_pem, const void *msg, size_t msglen, char **sig_b64);

/*
 * The public-key pin of the first certificate in a PEM chain, in libcurl's
 * CURLOPT_PINNEDPUBLICKEY form: "sha256//" and the base64 sha256 of the
 * DER SubjectPublicKeyInfo (the same as HPKP). out holds CRYPTO_PIN_MAX.
 */
#define CRYPTO_PIN_MAX 64
int crypto_cert_pin(const char *cert_pem, char *out, char *err, size_t errsz);

#endif
