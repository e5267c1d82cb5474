/* Pools: created from a CSR, with a token shown once; reset, cycle, delete. */
#include "server/api_pools.h"

#include "server/keycache.h"
#include "server/request.h"
#include "server/state.h"
#include "server/fanout.h"

#include "common/duration.h"
#include "common/log.h"
#include "common/crypto.h"
#include "common/pooltoken.h"
#include "common/seal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pool_token_make(struct server *srv, const char *pool_id, const char *secret)
{
    struct pool_token t = {.pool_secret = (char *)secret, .release_key_pem = srv->release_pub_pem};
    snprintf(t.endpoint, sizeof(t.endpoint), "%s", srv->cfg.public_url);
    snprintf(t.pool_id, sizeof(t.pool_id), "%s", pool_id);
    /* With TLS, launchers also check that they reach this very server. */
    snprintf(t.tls_pin, sizeof(t.tls_pin), "%s", srv->cfg.tls_pin);
    return pooltoken_encode(&t);
}

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || !isalnum((unsigned char)name[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '-'))
            return 0;
    return 1;
}

int api_pools_parse_create(json_t *obj, const char **name, const char **csr, char *err,
                           size_t errsz)
{
    if (req_unpack_msg(obj, err, errsz, "{s:s, s:s}", "name", name, "csr", csr) < 0)
        return -1;
    if (!name_ok(*name)) {
        snprintf(err, errsz, "name: 1 to 63 of [a-z0-9-], starting with a letter or digit");
        return -1;
    }
    return 0;
}

int api_pools_parse_reset(json_t *obj, const char **csr, char *err, size_t errsz)
{
    return req_unpack_msg(obj, err, errsz, "{s:s}", "csr", csr);
}

int api_pools_parse_cycle(json_t *obj, int64_t *ms, char *err, size_t errsz)
{
    const char *deadline = NULL;
    if (req_unpack_msg(obj, err, errsz, "{s?:s}", "deadline", &deadline) < 0)
        return -1;
    if (deadline && duration_parse(deadline, ms) < 0) {
        /* Not quoted: an error never echoes the request (docs/security.md). */
        snprintf(err, errsz, "deadline: not a duration (like 20s, 5m)");
        return -1;
    }
    return 0;
}

/* Checks the CSR and makes a secret; fills p (pubkey, keytype, secret_hash). */
static int pool_keys(struct req *r, const char *csr, struct store_pool *p, char *secret)
{
    char err[256];
    if (crypto_csr_pubkey(csr, strlen(csr), &p->pubkey_pem, p->keytype, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        return -1;
    }
    if (crypto_random_token("dps_", secret) < 0) {
        reply_error(r, 500, "no randomness");
        return -1;
    }
    crypto_sha256_hex(secret, strlen(secret), p->secret_hash);
    return 0;
}

int h_pool_create(struct req *r)
{
    const char *name, *csr;
    struct store_pool p = {0};
    char secret[CRYPTO_TOKEN_MAX], err[256];
    json_t *obj = req_json(r), *show = NULL;
    if (!obj)
        goto out;
    if (api_pools_parse_create(obj, &name, &csr, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    snprintf(p.name, sizeof(p.name), "%s", name);
    if (pool_keys(r, csr, &p, secret) < 0)
        goto out;
    int rc = store_pool_create(r->srv->store, &p);
    if (rc == STORE_CONFLICT) {
        reply_error(r, 409, "pool \"%s\" exists already", name);
        goto out;
    }
    if (rc < 0 || store_pool_show_json(r->srv->store, name, &show) < 0) {
        reply_store_error(r, STORE_ERR, "pool");
        goto out;
    }
    char *token = pool_token_make(r->srv, p.id, secret);
    if (!token) {
        reply_error(r, 500, "out of memory");
        goto out;
    }
    fanout_view(r->srv->fanout, p.id);
    log_event(LOG_INFO, "pool created", "pool", name, "id", p.id, "key", p.keytype, NULL);
    reply_json(r, 201, json_pack("{s:O, s:s}", "pool", show, "token", token));
    free(token);
out:
    json_decref(show);
    json_decref(obj);
    store_pool_clear(&p);
    return HANDLER_DONE;
}

int h_pool_list(struct req *r)
{
    json_t *arr;
    int rc = store_pool_list_json(r->srv->store, &arr);
    if (rc < 0)
        return reply_store_error(r, rc, "pools");
    return reply_json(r, 200, json_pack("{s:o}", "pools", arr));
}

/* One pool, with its public key and the key's fingerprint: what a client seals secrets to
 * (docs/secrets.md). */
int h_pool_show(struct req *r)
{
    json_t *o;
    struct store_pool p = {0};
    char key_id[SEAL_KEY_ID_HEX];
    int rc = store_pool_show_json(r->srv->store, r->args[0], &o);
    if (rc < 0)
        return reply_store_error(r, rc, "pool");
    rc = store_pool_get(r->srv->store, r->args[0], 0, &p);
    if (rc < 0) {
        json_decref(o);
        return reply_store_error(r, rc, "pool");
    }
    if (keycache_key_id(r->srv->keys, p.id, p.pubkey_pem, key_id) < 0 ||
        json_object_set_new(o, "public_key", json_string(p.pubkey_pem)) < 0 ||
        json_object_set_new(o, "key_id", json_string(key_id)) < 0) {
        json_decref(o);
        store_pool_clear(&p);
        return reply_error(r, 500, "pool %s: its public key cannot be read", r->args[0]);
    }
    store_pool_clear(&p);
    return reply_json(r, 200, o);
}

/* A reset's new key cannot open what was sealed to the old one: the pool's queued runs sealed
 * to it fail now, with that reason, rather than at a launcher. */
static void fail_resealed(struct req *r, const char *pool_id, const char *pubkey_pem)
{
    char key_id[SEAL_KEY_ID_HEX];
    int64_t ids[256];
    size_t n = 0;
    if (keycache_key_id(r->srv->keys, pool_id, pubkey_pem, key_id) < 0 ||
        store_runs_fail_resealed(r->srv->store, pool_id, key_id, ids, 256, &n) < 0) {
        log_event(LOG_ERROR, "runs sealed to the old key not failed", "pool", r->args[0], NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char rid[24];
        snprintf(rid, sizeof(rid), "%lld", (long long)ids[i]);
        fanout_run(r->srv->fanout, ids[i]);
        log_event(LOG_INFO, "run state", "run", rid, "state", "failed", "reason",
                  "sealed to the pool's old key", NULL);
    }
}

int h_pool_delete(struct req *r)
{
    int rc = store_pool_delete(r->srv->store, r->args[0]);
    if (rc == STORE_CONFLICT)
        return reply_error(r, 409, "pool \"%s\" has runs that have not ended; cancel them first",
                           r->args[0]);
    if (rc < 0)
        return reply_store_error(r, rc, "pool");
    fanout_view_all(r->srv->fanout); /* its id is gone with it */
    log_event(LOG_INFO, "pool deleted", "pool", r->args[0], NULL);
    return reply_json(r, 200, json_pack("{s:s}", "deleted", r->args[0]));
}

int h_pool_reset(struct req *r)
{
    const char *csr;
    struct store_pool p = {0};
    char secret[CRYPTO_TOKEN_MAX], pool_id[40], err[256];
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_pools_parse_reset(obj, &csr, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    if (pool_keys(r, csr, &p, secret) < 0)
        goto out;
    int rc = store_pool_reset(r->srv->store, r->args[0], p.pubkey_pem, p.keytype, p.secret_hash,
                              pool_id);
    if (rc < 0) {
        reply_store_error(r, rc, "pool");
        goto out;
    }
    char *token = pool_token_make(r->srv, pool_id, secret);
    if (!token) {
        reply_error(r, 500, "out of memory");
        goto out;
    }
    keycache_forget(r->srv->keys, pool_id); /* the old key's decoding, now useless */
    log_event(LOG_INFO, "pool reset", "pool", r->args[0], "key", p.keytype, NULL);
    fail_resealed(r, pool_id, p.pubkey_pem);
    /* Its launchers' messages, and its view after the runs it failed; the other servers drop
     * the old key's decoding too. */
    fanout_pool(r->srv->fanout, pool_id);
    reply_json(r, 200, json_pack("{s:s, s:s}", "pool", r->args[0], "token", token));
    free(token);
out:
    json_decref(obj);
    store_pool_clear(&p);
    return HANDLER_DONE;
}

int h_pool_cycle(struct req *r)
{
    int64_t ms = 20 * 1000;
    char pool_id[40], err[256];
    int count = 0;
    json_t *obj = r->body.len ? req_json(r) : json_object();
    if (!obj)
        goto out;
    if (api_pools_parse_cycle(obj, &ms, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    int64_t at = store_now_ms() + ms;
    int rc = store_pool_cycle(r->srv->store, r->args[0], at, pool_id, &count);
    if (rc < 0) {
        reply_store_error(r, rc, "pool");
        goto out;
    }
    fanout_pool(r->srv->fanout, pool_id);
    char n[16];
    snprintf(n, sizeof(n), "%d", count);
    log_event(LOG_INFO, "pool cycled", "pool", r->args[0], "workers", n, NULL);
    reply_json(r, 200,
               json_pack("{s:s, s:i, s:I}", "pool", r->args[0], "workers", count, "deadline_ms",
                         (json_int_t)at));
out:
    json_decref(obj);
    return HANDLER_DONE;
}
