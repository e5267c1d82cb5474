#include "launcher/unseal.h"

#include "common/env.h"
#include "common/log.h"
#include "common/seal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEYS 64

int unseal_read_keys(const char *path, EVP_PKEY ***keys, size_t *n, char *err, size_t errsz)
{
    struct stat sb;
    EVP_PKEY *k, **list = calloc(MAX_KEYS, sizeof(*list));
    size_t count = 0;
    FILE *f = fopen(path, "r");
    *keys = NULL;
    *n = 0;
    if (!list || !f || fstat(fileno(f), &sb) < 0) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        goto fail;
    }
    /* Whoever may write the file chooses who may run jobs here: its owner (who may chmod it)
     * too, so the owner must be root or the launcher's own user. */
    if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
        snprintf(err, errsz, "%s: owned by uid %u, not by root or this launcher's user (uid %u)",
                 path, (unsigned)sb.st_uid, (unsigned)geteuid());
        goto fail;
    }
    if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errsz, "%s: writable by group or others (mode %04o); chmod go-w it", path,
                 (unsigned)(sb.st_mode & 07777));
        goto fail;
    }
    while ((k = PEM_read_PUBKEY(f, NULL, NULL, NULL)) != NULL) {
        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519 || count == MAX_KEYS) {
            snprintf(err, errsz, "%s: key %zu is %s", path, count + 1,
                     count == MAX_KEYS ? "one too many (64 at most)" : "not an Ed25519 public key");
            EVP_PKEY_free(k);
            goto fail;
        }
        list[count++] = k;
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    if (count == 0) {
        snprintf(err, errsz, "%s: no PEM public key in it (openssl pkey -pubout writes one)", path);
        goto fail;
    }
    fclose(f);
    *keys = list;
    *n = count;
    return 0;
fail:
    if (f)
        fclose(f);
    for (size_t i = 0; i < count; i++)
        EVP_PKEY_free(list[i]);
    free(list);
    return -1;
}

/* The submitter keys, read once: unset (n 0), read, or an error every run then fails with. */
static struct {
    pthread_once_t once;
    EVP_PKEY **keys;
    size_t n;
    char error[512];
} submitters = {.once = PTHREAD_ONCE_INIT};

static void load_submitters(void)
{
    char which[ENV_NAME_MAX], err[400];
    const char *path = env_get("SUBMITTER_KEYS", which, sizeof(which));
    if (!path)
        return;
    if (unseal_read_keys(path, &submitters.keys, &submitters.n, err, sizeof(err)) < 0) {
        snprintf(submitters.error, sizeof(submitters.error), "%s: %s", which, err);
        log_event(LOG_ERROR, "submitter keys refused", "error", submitters.error, NULL);
        return;
    }
    char n[16];
    snprintf(n, sizeof(n), "%zu", submitters.n);
    log_event(LOG_INFO, "runs must be signed", "submitter_keys", n, "file", path, NULL);
}

int unseal_init(char *err, size_t errsz)
{
    pthread_once(&submitters.once, load_submitters);
    if (!submitters.error[0])
        return 0;
    snprintf(err, errsz, "%s", submitters.error);
    return -1;
}

int unseal_verify(const json_t *spec, const struct credentials *cred, struct runspec **out,
                  char *reason, size_t rsz)
{
    char err[1024];
    struct runspec *checked = NULL;
    *out = NULL;
    /* The spec as it came first: its shape, then who signed it. */
    if (runspec_from_json(spec, &checked, err, sizeof(err)) < 0) {
        snprintf(reason, rsz, "the run spec is not valid: %s", err);
        return -1;
    }
    pthread_once(&submitters.once, load_submitters);
    if (submitters.error[0]) {
        snprintf(reason, rsz, "davit-launcher: %s", submitters.error);
        goto fail;
    }
    if (submitters.n && seal_verify_spec(spec, cred->pool_id, submitters.keys, submitters.n, err,
                                         sizeof(err)) < 0) {
        snprintf(reason, rsz, "%s", err);
        goto fail;
    }
    *out = checked;
    return 0;
fail:
    runspec_free(checked);
    return -1;
}

int unseal_open(const json_t *spec, const struct credentials *cred, struct runspec *checked,
                char *reason, size_t rsz)
{
    char err[1024];
    struct runspec *opened = NULL;
    json_t *open = NULL, *secrets = NULL;
    const json_t *sealed = json_object_get(spec, "sealed");
    if (!sealed)
        return 0;
    if (seal_open(cred->key, cred->pool_id, checked->run_nonce, sealed, &secrets, err,
                  sizeof(err)) < 0) {
        snprintf(reason, rsz, "the run's secrets cannot be opened: %s", err);
        goto fail;
    }
    /* jansson wipes what it frees in the launcher (main.c), so the copy leaves nothing. */
    open = json_copy((json_t *)spec);
    if (!open || json_object_del(open, "sealed") < 0 ||
        json_object_set_new(open, "secrets", secrets) < 0) {
        secrets = NULL;
        snprintf(reason, rsz, "davit-launcher: out of memory");
        goto fail;
    }
    secrets = NULL;
    /* Parsed again for the same checks as plain secrets (names, sizes, count). */
    if (runspec_from_json(open, &opened, err, sizeof(err)) < 0) {
        snprintf(reason, rsz, "the run's opened secrets are not valid: %s", err);
        goto fail;
    }
    /* Only the secrets move over: the rest of checked is what admission saw and may have set (the
     * default image). The boxes go with opened, and runspec_free wipes the clear values later. */
    struct runspec_var *vars = checked->secrets;
    size_t n = checked->n_secrets;
    checked->secrets = opened->secrets;
    checked->n_secrets = opened->n_secrets;
    opened->secrets = vars;
    opened->n_secrets = n;
    vars = checked->sealed;
    n = checked->n_sealed;
    checked->sealed = opened->sealed;
    checked->n_sealed = opened->n_sealed;
    opened->sealed = vars;
    opened->n_sealed = n;
    runspec_free(opened);
    json_decref(open);
    return 0;
fail:
    json_decref(secrets);
    json_decref(open);
    return -1;
}
