/* The launcher protocol (docs/protocol.md): challenge, register, poll, events, logs. */
#include "server/api_launcher.h"

#include "server/api_pools.h"
#include "server/api_runs.h"
#include "server/background.h"
#include "server/challenges.h"
#include "server/keycache.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/state.h"
#include "server/fanout.h"

#include "common/log.h"
#include "common/crypto.h"
#include "common/pooltoken.h"
#include "common/sigmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int h_launcher_challenge(struct req *r)
{
    const char *pool_id;
    struct store_pool pool = {0};
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], err[256];
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_launcher_parse_challenge(obj, &pool_id, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    int rc = store_pool_get(r->srv->store, pool_id, 1, &pool);
    if (rc == STORE_NOTFOUND) {
        reply_error(r, 401, "unknown pool");
        goto out;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "pool");
        goto out;
    }
    /* Stateless (challenges.h): an unauthenticated request writes nothing and keeps nothing,
     * and any server of the store takes the register that follows. */
    if (challenges_issue(r->srv->challenges, pool.id, store_now_ms(), r->srv->cfg.challenge_ttl_ms,
                         id, nonce) < 0) {
        reply_error(r, 500, "challenge: no randomness");
        goto out;
    }
    reply_json(r, 200,
               json_pack("{s:s, s:s, s:I}", "challenge_id", id, "nonce", nonce, "expires_in_s",
                         (json_int_t)(r->srv->cfg.challenge_ttl_ms / 1000)));
out:
    json_decref(obj);
    store_pool_clear(&pool);
    return HANDLER_DONE;
}

int api_launcher_parse_challenge(json_t *obj, const char **pool_id, char *err, size_t errsz)
{
    return req_unpack_msg(obj, err, errsz, "{s:s}", "pool_id", pool_id);
}

static int metadata_ok(json_t *md)
{
    const char *k;
    json_t *v;
    if (!json_is_object(md) || json_object_size(md) > 64)
        return 0;
    json_object_foreach(md, k, v)
    {
        if (strlen(k) == 0 || strlen(k) > 64 || !json_is_string(v) || json_string_length(v) > 256)
            return 0;
    }
    return 1;
}

/* The answer to a challenge that is not good for this register (forged, another pool's,
 * expired, or used by a registration already). */
#define CHALLENGE_REFUSED "challenge unknown, expired or already used"

/*
 * Checks what a registering launcher proves: that the pool exists, that the
 * challenge is one a server of this store gave for the pool and has not
 * expired (*cexp gets its expiry; the registration's transaction uses it up),
 * that it knows the pool's secret and that it signed the challenge with the
 * pool's key. Fills pool. 0, or -1 after replying 401 (or the store's error).
 */
static int check_proof(struct req *r, const char *pool_id, const char *secret, const char *cid,
                       const char *sig_b64, struct store_pool *pool, int64_t *cexp)
{
    char nonce[CRYPTO_TOKEN_MAX];
    int rc = store_pool_get(r->srv->store, pool_id, 1, pool);
    if (rc == STORE_NOTFOUND) {
        reply_error(r, 401, "unknown pool");
        return -1;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "pool");
        return -1;
    }
    if (challenges_check(r->srv->challenges, cid, pool->id, store_now_ms(), nonce, sizeof(nonce),
                         cexp) < 0) {
        reply_error(r, 401, CHALLENGE_REFUSED);
        return -1;
    }
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(secret, strlen(secret), hash);
    if (!crypto_str_equal(hash, pool->secret_hash)) {
        log_event(LOG_WARN, "launcher refused", "pool", pool->name, "reason", "wrong pool secret",
                  NULL);
        reply_error(r, 401, "pool secret does not match (was the pool reset?)");
        return -1;
    }
    size_t siglen;
    unsigned char *sig = NULL;
    char msg[512];
    int mlen = sigmsg_register(msg, sizeof(msg), pool->id, cid, nonce);
    /* The key as the store has it in this request: a reset's new key is never verified with the
     * old one's decoding (keycache.h). */
    struct crypto_pubkey *key = keycache_get(r->srv->keys, pool->id, pool->pubkey_pem);
    int ok = key && mlen >= 0 && crypto_b64_decode(sig_b64, &sig, &siglen) >= 0 &&
             crypto_verify_key(key, msg, (size_t)mlen, sig, siglen) == 1;
    crypto_pubkey_free(key);
    free(sig);
    if (!ok) {
        log_event(LOG_WARN, "launcher refused", "pool", pool->name, "reason",
                  "signature does not verify", NULL);
        reply_error(r, 401, "signature does not verify with the pool's public key");
        return -1;
    }
    return 0;
}

int api_launcher_parse_register(json_t *obj, struct api_register *reg, char *err, size_t errsz)
{
    const char *token = NULL;
    char why[256];
    memset(reg, 0, sizeof(*reg));
    if (req_unpack_msg(obj, err, errsz,
                       "{s?:s, s?:s, s?:s, s:s, s:s, s:s, s:s, s:s, s:I, s?:o, s?:I, s?:b}",
                       "pool_id", &reg->pool_id, "pool_secret", &reg->pool_secret, "token", &token,
                       "challenge_id", &reg->challenge_id, "signature", &reg->signature, "hostname",
                       &reg->hostname, "version", &reg->version, "arch", &reg->arch, "capacity",
                       &reg->capacity, "metadata", &reg->metadata, "launcher_id", &reg->reuse_id,
                       "ephemeral", &reg->ephemeral) < 0)
        return -1;
    if (token) {
        if (reg->pool_id || reg->pool_secret) {
            snprintf(err, errsz, "give either token, or pool_id and pool_secret");
            return -1;
        }
        if (pooltoken_decode(token, &reg->tok, why, sizeof(why)) < 0) {
            snprintf(err, errsz, "token: %s", why);
            return -1;
        }
        reg->pool_id = reg->tok.pool_id;
        reg->pool_secret = reg->tok.pool_secret;
    } else if (!reg->pool_id || !reg->pool_secret) {
        snprintf(err, errsz, "pool_id and pool_secret (or token) are required");
        return -1;
    }
    if (strlen(reg->hostname) == 0 || strlen(reg->hostname) > 255 || strlen(reg->version) > 64 ||
        (strcmp(reg->arch, "amd64") != 0 && strcmp(reg->arch, "arm64") != 0) || reg->capacity < 1 ||
        reg->capacity > 64 || reg->reuse_id < 0 || (reg->metadata && !metadata_ok(reg->metadata))) {
        snprintf(err, errsz,
                 "hostname (1-255 bytes), version (<= 64), arch (amd64 or arm64),"
                 " capacity (1-64) or metadata (<= 64 strings) out of range");
        return -1;
    }
    if (reg->ephemeral && reg->capacity != 1) {
        snprintf(err, errsz, "an ephemeral launcher has capacity 1");
        return -1;
    }
    return 0;
}

void api_register_clear(struct api_register *reg)
{
    pooltoken_clear(&reg->tok);
    memset(reg, 0, sizeof(*reg));
}

int h_launcher_register(struct req *r)
{
    struct api_register reg = {0};
    char err[256];
    char *md_text = NULL;
    struct store_pool pool = {0};
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_launcher_parse_register(obj, &reg, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    const char *hostname = reg.hostname, *version = reg.version, *arch = reg.arch;
    json_t *metadata = reg.metadata;
    int64_t cexp = 0;
    if (check_proof(r, reg.pool_id, reg.pool_secret, reg.challenge_id, reg.signature, &pool,
                    &cexp) < 0)
        goto out;
    char session[CRYPTO_TOKEN_MAX], shash[CRYPTO_SHA256_HEX];
    json_t *md = metadata ? json_incref(metadata) : json_object();
    md_text = md ? json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(md);
    if (!md_text || crypto_random_token("dvs_", session) < 0) {
        reply_error(r, 500, "out of memory");
        goto out;
    }
    crypto_sha256_hex(session, strlen(session), shash);
    struct store_launcher_info info = {hostname,     version,      arch,         md_text,
                                       reg.capacity, reg.reuse_id, reg.ephemeral};
    int64_t lid, expires = store_now_ms() + r->srv->cfg.session_ttl_ms;
    struct store *st = r->srv->store;
    int rc = store_launcher_register_challenge(st, pool.id, &info, reg.challenge_id, cexp, shash,
                                               expires, &lid);
    if (rc == STORE_NOTFOUND) { /* not a live launcher any more: start afresh */
        info.reuse_id = 0;
        rc = store_launcher_register_challenge(st, pool.id, &info, reg.challenge_id, cexp, shash,
                                               expires, &lid);
    }
    if (rc == STORE_CONFLICT) { /* a registration used the challenge, on this server or another */
        reply_error(r, 401, CHALLENGE_REFUSED);
        goto out;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "launcher");
        goto out;
    }
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)lid);
    fanout_view(r->srv->fanout, pool.id);
    log_event(LOG_INFO, "launcher registered", "worker", ids, "pool", pool.name, "host", hostname,
              "version", version, "arch", arch, "ephemeral", reg.ephemeral ? "yes" : "no", NULL);
    reply_json(r, 200,
               json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:I}", "session_token", session,
                         "launcher_id", (json_int_t)lid, "pool", pool.name, "pool_id", pool.id,
                         "expires_in_s", (json_int_t)(r->srv->cfg.session_ttl_ms / 1000), "lease_s",
                         (json_int_t)(r->srv->cfg.lease_ms / 1000), "poll_timeout_s",
                         (json_int_t)(r->srv->cfg.poll_max_ms / 1000)));
out:
    free(md_text);
    json_decref(obj);
    store_pool_clear(&pool);
    api_register_clear(&reg);
    return HANDLER_DONE;
}

/*
 * The last poll of a launcher that exits gracefully: acknowledges, gives back
 * what it never started, and forgets the launcher at once (not a day later).
 */
static int launcher_exit(struct req *r, int64_t ack)
{
    json_t *msgs = NULL;
    struct store_claims claimed;
    int requeued, gone = 0;
    char lid[24];
    int rc = store_poll(r->srv->store, r->sess.launcher_id, ack, 1, &msgs, &claimed, &requeued);
    json_decref(msgs);
    if (rc == STORE_OK)
        rc = store_launcher_exit(r->srv->store, r->sess.launcher_id, &gone);
    if (rc < 0)
        return reply_store_error(r, rc, "poll");
    fanout_runs(r->srv->fanout, r->sess.pool_id, requeued, 1); /* the launcher left */
    snprintf(lid, sizeof(lid), "%lld", (long long)r->sess.launcher_id);
    log_event(LOG_INFO, gone ? "launcher exited" : "launcher exiting with runs in hand", "worker",
              lid, NULL);
    return reply_json(r, 200, json_pack("{s:[]}", "messages"));
}

int api_launcher_parse_poll(json_t *obj, struct api_poll *p, char *err, size_t errsz)
{
    if (req_unpack_msg(obj, err, errsz, "{s?:I, s?:I, s?:b, s?:b}", "ack", &p->ack, "wait_s",
                       &p->wait_s, "draining", &p->draining, "exiting", &p->exiting) < 0)
        return -1;
    if (p->ack < 0 || p->wait_s < 0) {
        snprintf(err, errsz, "ack and wait_s must not be negative");
        return -1;
    }
    return 0;
}

int h_launcher_poll(struct req *r)
{
    struct server *srv = r->srv;
    if (r->calls == 1) {
        struct api_poll p = {0, srv->cfg.poll_max_ms / 1000, 0, 0};
        char err[256];
        json_t *obj = r->body.len ? req_json(r) : json_object();
        if (!obj)
            return HANDLER_DONE;
        int bad = api_launcher_parse_poll(obj, &p, err, sizeof(err)) < 0;
        json_decref(obj);
        if (bad)
            return reply_error(r, 400, "%s", err);
        json_int_t ack = p.ack, wait_s = p.wait_s;
        int draining = p.draining;
        if (p.exiting)
            return launcher_exit(r, ack);
        /* Clamped before it is scaled: any wait_s the client sends is valid. */
        int64_t wait_ms =
            wait_s > srv->cfg.poll_max_ms / 1000 ? srv->cfg.poll_max_ms : (int64_t)wait_s * 1000;
        r->ack = ack;
        r->draining = draining;
        r->waiter.kind = WAIT_POLL;
        r->waiter.launcher_id = r->sess.launcher_id;
        snprintf(r->waiter.pool_id, sizeof(r->waiter.pool_id), "%s", r->sess.pool_id);
        r->waiter.deadline_ms = store_now_ms() + wait_ms;
    } else if (r->waiter.timed_out && !dispatch_closing(srv->disp)) {
        /* Its wait ended with no notify: nothing came for it since it last looked (any
         * message or run would have notified it), so it answers without a transaction. With
         * many launchers idle, these re-polls are most of the store's work. Something that
         * came meanwhile is in the answer to the launcher's next poll, sent at once. */
        return reply_json(r, 200, json_pack("{s:[]}", "messages"));
    }
    for (;;) {
        uint64_t gen = dispatch_gen(srv->disp);
        json_t *msgs;
        struct store_claims claimed;
        int requeued;
        int rc = store_poll(srv->store, r->sess.launcher_id, r->ack, r->draining, &msgs, &claimed,
                            &requeued);
        /* A store failure keeps the hand-off: the request's end passes it on. */
        if (rc < 0)
            return reply_store_error(r, rc, "poll");
        /* Woken for a queued run, claimed none for want of room: the run
         * waits for another launcher, which is woken in this one's place. */
        dispatch_handoff_done(srv->disp, &r->waiter, claimed.n == 0 && !claimed.room);
        r->waiter.takes_runs = claimed.room;
        if (requeued > 0) {
            char n[16], lid[24];
            snprintf(n, sizeof(n), "%d", requeued);
            snprintf(lid, sizeof(lid), "%lld", (long long)r->sess.launcher_id);
            log_event(LOG_INFO, "runs given back by a stopping launcher", "worker", lid, "runs", n,
                      NULL);
        }
        fanout_runs(srv->fanout, r->sess.pool_id, requeued, claimed.n); /* given back, assigned */
        /* Only the runs this poll claimed: others in msgs are being re-sent (or were
         * claimed for it at their submit, which logged them). */
        runs_log_claims(srv, r->sess.launcher_id, &claimed);
        if (json_array_size(msgs) == 0 && dispatch_closing(srv->disp)) {
            json_decref(msgs);
            return reply_error(r, 503, "server is shutting down");
        }
        if (json_array_size(msgs) > 0 || r->waiter.timed_out ||
            store_now_ms() >= r->waiter.deadline_ms)
            return reply_json(r, 200, json_pack("{s:o}", "messages", msgs));
        json_decref(msgs);
        int w = dispatch_wait(srv->disp, &r->waiter, gen);
        if (w > 0)
            return HANDLER_SUSPENDED;
        if (w < 0)
            return reply_error(r, 503, "server is shutting down");
    }
}

int h_launcher_heartbeat(struct req *r)
{
    if (req_no_fields(r) < 0)
        return HANDLER_DONE;
    return reply_json(r, 200,
                      json_pack("{s:I, s:b}", "lease_s", (json_int_t)(r->srv->cfg.lease_ms / 1000),
                                "revoked", r->sess.revoked));
}

static int outcome_ok(const char *o)
{
    return strcmp(o, "finished") == 0 || strcmp(o, "failed") == 0 || strcmp(o, "canceled") == 0 ||
           strcmp(o, "timed_out") == 0;
}

int api_launcher_parse_event(json_t *obj, struct store_event *ev, int *is_result, char *err,
                             size_t errsz)
{
    json_int_t seq, exit_code = -1;
    const char *type, *phase = NULL, *outcome = NULL, *reason = NULL;
    if (req_unpack_msg(obj, err, errsz, "{s:I, s:s, s?:s, s?:s, s?:s, s?:I}", "seq", &seq, "type",
                       &type, "phase", &phase, "outcome", &outcome, "reason", &reason, "exit_code",
                       &exit_code) < 0)
        return -1;
    *is_result = strcmp(type, "result") == 0;
    if (!*is_result && strcmp(type, "preparing") != 0 && strcmp(type, "running") != 0) {
        snprintf(err, errsz, "type: one of preparing, running, result");
        return -1;
    }
    if (seq < 1 || (*is_result && (!outcome || !outcome_ok(outcome))) ||
        (phase && strlen(phase) > 64) || (reason && strlen(reason) > 4096)) {
        snprintf(err, errsz,
                 "seq (>= 1), outcome (finished, failed, canceled, timed_out for a"
                 " result), phase (<= 64) or reason (<= 4096) invalid");
        return -1;
    }
    *ev = (struct store_event){seq, type, phase, outcome, reason, exit_code};
    return 0;
}

int h_launcher_event(struct req *r)
{
    int64_t id;
    struct store_event ev;
    int is_result;
    char err[256];
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    json_t *obj = req_json(r);
    if (!obj)
        goto out;
    if (api_launcher_parse_event(obj, &ev, &is_result, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        goto out;
    }
    const char *phase = ev.phase, *reason = ev.reason;
    char state[32] = "";
    int rc = store_run_event(r->srv->store, r->sess.launcher_id, id, &ev, state);
    if (rc == STORE_CONFLICT) {
        reply_json(r, 409, json_pack("{s:s, s:s}", "error", "the run has ended", "state", state));
        goto out;
    }
    if (rc == STORE_FORBIDDEN) {
        reply_error(r, 403, "run %lld is not assigned to this launcher", (long long)id);
        goto out;
    }
    if (rc < 0) {
        reply_store_error(r, rc, "run");
        goto out;
    }
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_event(LOG_INFO, "run state", "run", ids, "state", state, "phase", phase, "reason", reason,
              NULL);
    fanout_run(r->srv->fanout, id);
    fanout_view(r->srv->fanout, r->sess.pool_id);
    if (is_result) {
        /* capacity freed: the launcher may take the next run */
        fanout_launcher(r->srv->fanout, r->sess.launcher_id);
        sweep_kick_secrets(r->srv); /* the run's secrets leave the WAL file within 1 s */
    }
    reply_json(r, 200, json_pack("{s:s}", "state", state));
out:
    json_decref(obj);
    return HANDLER_DONE;
}

int h_launcher_log(struct req *r)
{
    int64_t id, next;
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    const char *off_s = req_query(r, "offset");
    char *end = NULL;
    long long offset = off_s ? strtoll(off_s, &end, 10) : -1;
    if (!off_s || *end || offset < 0)
        return reply_error(r, 400, "offset: a byte offset is required (?offset=N)");
    int rc = store_log_append(r->srv->store, r->sess.launcher_id, id, offset, r->body.data,
                              r->body.len, r->srv->cfg.max_log_bytes, &next);
    switch (rc) {
    case STORE_OK:
        if (next > offset)
            fanout_log(r->srv->fanout, id);
        return reply_json(r, 200, json_pack("{s:I}", "next_offset", (json_int_t)next));
    case STORE_GAP:
        return reply_json(r, 409,
                          json_pack("{s:s, s:I}", "error",
                                    "gap: the stored log ends before this offset;"
                                    " send from next_offset",
                                    "next_offset", (json_int_t)next));
    case STORE_CONFLICT:
        return reply_error(r, 400, "the chunk is not a whole number of spool records");
    case STORE_FULL:
        return reply_json(r, 413,
                          json_pack("{s:s, s:I}", "error", "the run's log reached its cap",
                                    "next_offset", (json_int_t)next));
    case STORE_FORBIDDEN:
        return reply_error(r, 403, "run %lld is not assigned to this launcher", (long long)id);
    default:
        return reply_store_error(r, rc, "run");
    }
}
