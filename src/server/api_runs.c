/* Runs: submit, list, show, cancel. Secrets are kept sealed only (docs/secrets.md). */
#include "server/api_runs.h"

#include "server/request.h"
#include "server/state.h"
#include "server/fanout.h"
#include "server/background.h"
#include "server/metrics.h"
#include "server/keycache.h"

#include "common/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/runspec.h"
#include "common/seal.h"

/*
 * runspec's messages quote the offending value (useful in the CLI, which
 * checks the user's own file); an API error never echoes a request, so each
 * quoted value goes: cut when it ends the message, else named "the value".
 */
static void unquote_values(char *msg, size_t size)
{
    struct dbuf out = DBUF_INIT(size);
    const char *p = msg, *q;
    while ((q = strchr(p, '"')) != NULL) {
        const char *close = strchr(q + 1, '"');
        const char *end = close ? close + 1 : q + strlen(q);
        size_t keep = (size_t)(q - p);
        if (!*end && keep >= 2 && q[-2] == ':' && q[-1] == ' ')
            keep -= 2; /* "...: \"v\"" at the end: the value just goes */
        dbuf_add(&out, p, keep);
        if (*end)
            dbuf_addstr(&out, "the value");
        p = end;
    }
    dbuf_addstr(&out, p);
    snprintf(msg, size, "%.*s", (int)out.len, out.data ? out.data : "");
    dbuf_free(&out);
}

static int spec_check(const json_t *spec, char *err, size_t errsz)
{
    struct runspec *rs = NULL;
    if (runspec_from_json(spec, &rs, err, errsz) < 0) {
        unquote_values(err, errsz);
        return -1;
    }
    runspec_free(rs);
    return 0;
}

int api_runs_parse_submit(json_t *obj, const char **pool, json_t **spec, char *err, size_t errsz)
{
    char why[512];
    *spec = NULL;
    json_t *pj = json_object_get(obj, "pool");
    if (!json_is_string(pj)) {
        snprintf(err, errsz, "pool: a string naming the pool is required");
        return -1;
    }
    *pool = json_string_value(pj);
    *spec = json_deep_copy(obj);
    if (!*spec) {
        snprintf(err, errsz, "out of memory");
        return -2;
    }
    json_object_del(*spec, "pool");
    if (spec_check(*spec, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "spec: %s", why);
        json_decref(*spec);
        *spec = NULL;
        return -1;
    }
    return 0;
}

/*
 * The spec's secrets as the store keeps them: only sealed (docs/secrets.md). Plaintext
 * "secrets" are refused unless --allow-plaintext-secrets, and then sealed to the pool's key here
 * at once, so that the store never holds them. A "sealed" block must be sealed to the pool's key
 * as it is now. 0, or -1 after replying.
 */
static int seal_spec(struct req *r, const struct store_pool *pool, json_t *spec)
{
    char err[300], key_id[SEAL_KEY_ID_HEX], nonce[SEAL_NONCE_HEX];
    json_t *secrets = json_object_get(spec, "secrets"), *sealed = NULL;
    /* From the pools' key cache: decoding the PEM for it was most of a submit's instructions. */
    if (keycache_key_id(r->srv->keys, pool->id, pool->pubkey_pem, key_id) < 0) {
        reply_error(r, 500, "pool %s: the pool's public key cannot be read", pool->name);
        return -1;
    }
    if (secrets && json_object_size(secrets) == 0) {
        if (!json_object_get(spec, "signature")) /* a signed spec stays as it was signed */
            json_object_del(spec, "secrets");
    } else if (secrets) {
        if (!r->srv->cfg.allow_plaintext_secrets) {
            reply_error(r, 400,
                        "secrets: plaintext secrets are refused; seal them to the pool's key "
                        "(davit run submit does; docs/secrets.md), or start the server with "
                        "--allow-plaintext-secrets");
            return -1;
        }
        if (json_object_get(spec, "signature")) {
            reply_error(r, 400, "signature: a signed spec must carry its secrets sealed");
            return -1;
        }
        const char *given = json_string_value(json_object_get(spec, "run_nonce"));
        if (given)
            snprintf(nonce, sizeof(nonce), "%s", given);
        else if (seal_new_nonce(nonce) < 0) {
            reply_error(r, 500, "no random numbers for a run nonce");
            return -1;
        }
        if (seal_secrets(pool->pubkey_pem, pool->id, nonce, secrets, &sealed, err, sizeof(err)) <
            0) {
            reply_error(r, 400, "secrets: pool %s: %s", pool->name, err);
            return -1;
        }
        json_object_del(spec, "secrets"); /* wiped as jansson frees it (src/cli/main.c) */
        json_object_set_new(spec, "sealed", sealed);
        json_object_set_new(spec, "run_nonce", json_string(nonce));
    }
    const char *sealed_to =
        json_string_value(json_object_get(json_object_get(spec, "sealed"), "key_id"));
    if (sealed_to && strcmp(sealed_to, key_id) != 0) {
        reply_error(r, 400,
                    "sealed.key_id: the secrets are sealed to another key than pool %s "
                    "has (was it reset? fetch its public key again)",
                    pool->name);
        return -1;
    }
    return 0;
}

void runs_log_claims(struct server *srv, int64_t launcher_id, const struct store_claims *c)
{
    for (int i = 0; i < c->n; i++) {
        char rid[24], lid[24];
        metrics_observe_dispatch(srv->metrics, c->dispatch_ms[i]);
        snprintf(rid, sizeof(rid), "%lld", (long long)c->run_id[i]);
        snprintf(lid, sizeof(lid), "%lld", (long long)launcher_id);
        log_event(LOG_INFO, "run state", "run", rid, "state", "assigned", "worker", lid, NULL);
    }
}

int h_run_submit(struct req *r)
{
    json_t *obj = req_json(r), *spec = NULL;
    char *spec_text = NULL, err[600];
    const char *pool_name;
    struct store_pool pool = {0};
    if (!obj)
        goto out;
    int rc = api_runs_parse_submit(obj, &pool_name, &spec, err, sizeof(err));
    if (rc < 0) {
        reply_error(r, rc == -2 ? 500 : 400, "%s", err);
        goto out;
    }
    rc = store_pool_get(r->srv->store, pool_name, 0, &pool);
    if (rc < 0) {
        reply_store_error(r, rc, "pool");
        goto out;
    }
    if (seal_spec(r, &pool, spec) < 0)
        goto out;
    spec_text = json_dumps(spec, JSON_COMPACT);
    int64_t id;
    if (!spec_text) {
        reply_error(r, 500, "out of memory");
        goto out;
    }
    /*
     * A poll of the pool asleep with room for a run: the run is inserted and
     * recorded as assigned to its launcher in one transaction, one durable
     * commit, and that poll alone is resumed after it (docs/server.md,
     * "Dispatch"). Otherwise the run is queued and handed out below.
     */
    struct waiter *taker = dispatch_reserve(r->srv->disp, pool.id);
    int64_t taker_id = taker ? taker->launcher_id : 0; /* taker is not ours once delivered */
    struct store_claims claimed;
    rc = store_run_create_claim(r->srv->store, pool.id, spec_text, NULL, taker_id, &id, &claimed);
    if (taker)
        dispatch_deliver(r->srv->disp, taker);
    if (rc == STORE_CONFLICT) {
        reply_error(r, 409, "run_nonce: another run has this nonce; make a new one for every run");
        goto out;
    }
    if (rc < 0) {
        reply_store_error(r, STORE_ERR, "run");
        goto out;
    }
    /* Not claimed at once, or an older queued run was: this one waits for a poll. */
    int queued = claimed.n == 0 || claimed.run_id[0] != id;
    fanout_runs(r->srv->fanout, pool.id, queued, !queued); /* queued, or assigned at once */
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_event(LOG_INFO, "run queued", "run", ids, "pool", pool.name, NULL);
    runs_log_claims(r->srv, taker_id, &claimed);
    reply_json(
        r, 201,
        json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "pool", pool.name, "state", "queued"));
out:
    free(spec_text);
    json_decref(spec);
    json_decref(obj);
    store_pool_clear(&pool);
    return HANDLER_DONE;
}

/* GET /api/v1/runs pages (docs/server.md). */
#define RUN_LIST_DEFAULT 50
#define RUN_LIST_MAX     1000

static int state_ok(const char *s)
{
    static const char *states[] = {"queued", "assigned", "preparing", "running", "finished",
                                   "failed", "canceled", "timed_out", "lost"};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(s, states[i]) == 0)
            return 1;
    return 0;
}

/* A query argument that must be a whole number in [lo, hi]; 0 when absent.
 * The reply never quotes the value. */
static int query_number(struct req *r, const char *key, int64_t lo, int64_t hi, int64_t *out,
                        const char *what)
{
    const char *v = req_query(r, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno || n < lo || n > hi) {
        reply_error(r, 400, "%s: %s", key, what);
        return -1;
    }
    *out = n;
    return 0;
}

int h_run_list(struct req *r)
{
    const char *pool = req_query(r, "pool"), *state = req_query(r, "state");
    int64_t limit = RUN_LIST_DEFAULT, before = 0, next;
    if (state && !state_ok(state))
        return reply_error(r, 400,
                           "state: not a run state (queued, assigned, preparing, running,"
                           " finished, failed, canceled, timed_out, lost)");
    if (query_number(r, "limit", 1, RUN_LIST_MAX, &limit, "a number from 1 to 1000") < 0 ||
        query_number(r, "before", 1, INT64_MAX, &before, "a run id (a positive integer)") < 0)
        return HANDLER_DONE;
    json_t *arr;
    int rc = store_run_list_json(r->srv->store, pool, state, (int)limit, before, &arr, &next);
    if (rc < 0)
        return reply_store_error(r, rc, "runs");
    return reply_json(
        r, 200,
        json_pack("{s:o, s:o}", "runs", arr, "next", next ? json_integer(next) : json_null()));
}

int h_run_show(struct req *r)
{
    int64_t id;
    json_t *o;
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    int rc = store_run_show_json(r->srv->store, id, &o);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    return reply_json(r, 200, o);
}

int h_run_cancel(struct req *r)
{
    int64_t id, launcher;
    int ended;
    json_t *o;
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    if (req_no_fields(r) < 0)
        return HANDLER_DONE;
    int rc = store_run_cancel(r->srv->store, id, &ended, &launcher);
    if (rc == STORE_CONFLICT)
        return reply_error(r, 409, "run %lld has ended already", (long long)id);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    fanout_view_all(r->srv->fanout); /* the run's pool is not known here */
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    if (ended) {
        fanout_run(r->srv->fanout, id);
        sweep_kick_secrets(r->srv); /* its secrets leave the WAL file within 1 s */
        log_event(LOG_INFO, "run state", "run", ids, "state", "canceled", NULL);
    } else {
        fanout_launcher(r->srv->fanout, launcher);
        log_event(LOG_INFO, "run cancel requested", "run", ids, NULL);
    }
    rc = store_run_show_json(r->srv->store, id, &o);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    return reply_json(r, 200, o);
}

int h_run_delete(struct req *r)
{
    int64_t id;
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    int rc = store_run_delete(r->srv->store, id);
    if (rc == STORE_CONFLICT)
        return reply_error(r, 409,
                           "run %lld has not ended: cancel it, and delete it once it has ended",
                           (long long)id);
    if (rc < 0)
        return reply_store_error(r, rc, "run");
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_event(LOG_INFO, "run deleted", "run", ids, NULL);
    fanout_run(r->srv->fanout, id);  /* a follow of its log ends */
    fanout_view_all(r->srv->fanout); /* the run's pool is not known here */
    sweep_kick(r->srv);              /* frees its log now, in small batches */
    r->status = 204;
    r->resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r->resp)
        return reply_error(r, 500, "out of memory");
    return HANDLER_DONE;
}
