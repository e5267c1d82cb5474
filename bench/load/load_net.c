/*
 * load_net: the loops of davit-load (load.h). Each loop is one thread with
 * an epoll set that drives one libcurl multi handle through its socket and
 * timer callbacks (curl_multi_socket_action), so that an idle connection
 * costs a registered descriptor and its memory, never a wake-up. The
 * stand-in launchers and the submitter are state machines advanced when
 * one of their transfers completes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/sigmsg.h"
#include "load.h"

#define BODY_CAP (1u << 20)
#define RESP_CAP (8u << 20)

int64_t load_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    return load_now_ns() / 1000000;
}

static void count_status(struct load *ld, long status)
{
    if (status >= 0 && status < 600)
        atomic_fetch_add(&ld->status_count[status], 1);
}

/* curl: a socket to watch, to change or to forget. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct loop *lp = userp;
    struct epoll_event ev = {0};

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        /* curl may already have closed it; a stale entry left by a closed fd is gone anyway */
        epoll_ctl(lp->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.fd = s;
    if (!socketp) {
        if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s, &ev) < 0 && errno == EEXIST)
            epoll_ctl(lp->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(lp->multi, s, lp);
    } else if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT) {
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct loop *lp = userp;

    (void)multi;
    lp->curl_deadline_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    struct conn *c = userp;

    return dbuf_add(&c->resp, p, size * n) == 0 ? size * n : 0;
}

/* Idle TLS connections by the thousand: let OpenSSL free its 34 KB of buffers between records. */
static CURLcode on_ssl_ctx(CURL *easy, void *ctx, void *parm)
{
    (void)easy;
    (void)parm;
    SSL_CTX_set_mode((SSL_CTX *)ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
}

/* Each stand-in speaks from a loopback address of its own group (127.1.x.y), as launchers on
 * different machines would, so that the server's per-address cap sees realistic clients. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct launcher *l = clientp;
    struct load *ld = l->c.loop->load;
    struct sockaddr_in sa = {0};

    if (purpose != CURLSOCKTYPE_IPCXN || ld->o.source_per_address <= 0)
        return CURL_SOCKOPT_OK;
    int group = l->index / ld->o.source_per_address;
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl((127u << 24) | (1u << 16) | ((unsigned)(group / 250) << 8) |
                               (unsigned)(group % 250 + 1));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "davit-load: bind a source address for launcher %d: %s\n", l->index,
                strerror(errno));
        return CURL_SOCKOPT_ERROR;
    }
    return CURL_SOCKOPT_OK;
}

static int conn_init(struct conn *c, struct loop *lp, enum conn_kind kind, const char *base_url)
{
    struct load *ld = lp->load;

    c->kind = kind;
    c->loop = lp;
    c->base_url = base_url;
    dbuf_init(&c->body, BODY_CAP);
    dbuf_init(&c->resp, RESP_CAP);
    if (!(c->easy = curl_easy_init()))
        return -1;
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(c->easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    if (ld->o.cacert)
        curl_easy_setopt(c->easy, CURLOPT_CAINFO, ld->o.cacert);
    return 0;
}

static void conn_free(struct conn *c)
{
    if (c->easy) {
        if (c->active)
            curl_multi_remove_handle(c->loop->multi, c->easy);
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->headers);
    dbuf_free(&c->body);
    dbuf_free(&c->resp);
}

/* Starts one request on c's connection; body is c->body (POST), or none (GET). */
static int conn_start(struct conn *c, const char *method, const char *path, long timeout_ms)
{
    char url[1024];

    snprintf(url, sizeof(url), "%s%s", c->base_url, path);
    dbuf_reset(&c->resp);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body.data ? c->body.data : "");
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)c->body.len);
        curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    }
    if (curl_multi_add_handle(c->loop->multi, c->easy) != CURLM_OK)
        return -1;
    c->active = 1;
    return 0;
}

static int set_headers(struct conn *c, const char *bearer, const char *ctype)
{
    char h[400];

    curl_slist_free_all(c->headers);
    c->headers = NULL;
    snprintf(h, sizeof(h), "Content-Type: %s", ctype);
    if (!(c->headers = curl_slist_append(c->headers, h)) ||
        !(c->headers = curl_slist_append(c->headers, "Expect:")))
        return -1;
    if (bearer) {
        snprintf(h, sizeof(h), "Authorization: Bearer %s", bearer);
        struct curl_slist *n = curl_slist_append(c->headers, h);
        explicit_bzero(h, sizeof(h));
        if (!n)
            return -1;
        c->headers = n;
    }
    return 0;
}

/* ---- the stand-in launcher ---- */

static void launcher_poll(struct launcher *l);

static void launcher_fail(struct launcher *l, enum launcher_step retry)
{
    /* 1 s doubling to 30 s, with jitter, as docs/protocol.md asks of a launcher */
    int s = l->backoff_s ? l->backoff_s : 1;
    l->backoff_s = s < 15 ? s * 2 : 30;
    struct loop *lp = l->c.loop;
    int64_t at = now_ms() + s * 1000 / 2 + rand_r(&lp->seed) % (s * 1000 / 2 + 1);

    l->c.retry_at_ms = at;
    l->step = ST_BACKOFF;
    l->retry_step = retry;
    lp->nbackoff++;
    if (lp->next_retry_ms < 0 || at < lp->next_retry_ms)
        lp->next_retry_ms = at;
}

static void launcher_start(struct launcher *l, enum launcher_step step, const char *method,
                           const char *path, long timeout_ms)
{
    l->step = step;
    if (conn_start(&l->c, method, path, timeout_ms) < 0) {
        atomic_fetch_add(&l->c.loop->load->transport_errors, 1);
        launcher_fail(l, step == ST_REGISTER ? ST_CHALLENGE : step);
    }
}

static void launcher_challenge(struct launcher *l)
{
    dbuf_reset(&l->c.body);
    dbuf_printf(&l->c.body, "{\"pool_id\":\"%s\"}", l->pool->cred.pool_id);
    set_headers(&l->c, NULL, "application/json");
    launcher_start(l, ST_CHALLENGE, "POST", "/api/v1/launcher/challenge", 60000);
}

static int launcher_register(struct launcher *l)
{
    char msg[SIGMSG_MAX], err[256], host[64];
    char *sig = NULL;
    int n = sigmsg_register(msg, sizeof(msg), l->pool->cred.pool_id, l->challenge_id, l->nonce);

    if (n < 0 || credentials_sign(&l->pool->cred, msg, (size_t)n, &sig, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit-load: launcher %d: %s\n", l->index, n < 0 ? "bad challenge" : err);
        return -1;
    }
    snprintf(host, sizeof(host), "load-%d", l->index);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "pool_id",
                          l->pool->cred.pool_id, "pool_secret", l->pool->cred.pool_secret,
                          "challenge_id", l->challenge_id, "signature", sig, "hostname", host,
                          "version", "0.1.0", "arch", "amd64", "capacity", 1);
    free(sig);
    if (o && l->id > 0)
        json_object_set_new(o, "launcher_id", json_integer(l->id));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return -1;
    dbuf_reset(&l->c.body);
    dbuf_addstr(&l->c.body, s);
    free(s);
    launcher_start(l, ST_REGISTER, "POST", "/api/v1/launcher/register", 60000);
    return 0;
}

static void launcher_poll(struct launcher *l)
{
    struct load *ld = l->c.loop->load;
    char path[32];

    dbuf_reset(&l->c.body);
    dbuf_printf(&l->c.body, "{\"ack\":%lld,\"wait_s\":%d}", l->ack, ld->o.wait_s);
    snprintf(path, sizeof(path), "/api/v1/launcher/poll");
    atomic_fetch_add(&ld->polling, 1);
    launcher_start(l, ST_POLL, "POST", path, (long)(ld->o.wait_s + 30) * 1000);
    if (l->step != ST_POLL)
        atomic_fetch_sub(&ld->polling, 1);
}

/* Spool record framing of docs/run-directory.md; the server does not check the MAC. */
static void launcher_log(struct launcher *l)
{
    char path[96];
    const char *text = "hello from davit-load\n";

    dbuf_reset(&l->c.body);
    dbuf_printf(&l->c.body, "@o 1 %lld plan %zu 00000000000000000000000000000000\n%s\n",
                (long long)(load_now_ns() / 1000000), strlen(text), text);
    set_headers(&l->c, l->session, "application/octet-stream");
    snprintf(path, sizeof(path), "/api/v1/launcher/runs/%lld/log?offset=0", l->run_id);
    launcher_start(l, ST_LOG, "PUT", path, 60000);
}

/* The next step of the run in hand: preparing, running, (log), result, then poll again. */
static void launcher_next_event(struct launcher *l)
{
    struct load *ld = l->c.loop->load;
    char path[96];

    l->event++;
    if (l->event == 3 && !ld->o.log_chunk)
        l->event++;
    if (l->event == 3) {
        launcher_log(l);
        return;
    }
    if (l->event > 4) {
        l->run_id = 0;
        launcher_poll(l);
        return;
    }
    set_headers(&l->c, l->session, "application/json");
    dbuf_reset(&l->c.body);
    if (l->event == 1)
        dbuf_addstr(&l->c.body, "{\"seq\":1,\"type\":\"preparing\"}");
    else if (l->event == 2)
        dbuf_addstr(&l->c.body, "{\"seq\":2,\"type\":\"running\",\"phase\":\"plan\"}");
    else
        dbuf_addstr(&l->c.body,
                    "{\"seq\":3,\"type\":\"result\",\"outcome\":\"finished\",\"exit_code\":0}");
    snprintf(path, sizeof(path), "/api/v1/launcher/runs/%lld/events", l->run_id);
    launcher_start(l, ST_EVENT, "POST", path, 60000);
}

/* A run read from a poll answer: count it (duplicates, latency), then finish it. */
static void launcher_take_run(struct launcher *l, json_t *run, int64_t t)
{
    struct load *ld = l->c.loop->load;
    json_int_t id = 0;
    const char *tag = NULL;

    json_unpack(run, "{s:I, s:{s?{s?s}}}", "id", &id, "spec", "env", "LOAD_TAG", &tag);
    int k = tag ? atoi(tag) : -1;
    if (k >= 0 && k < ld->o.runs) {
        if (atomic_fetch_add(&ld->reads[k], 1) > 0)
            atomic_fetch_add(&ld->duplicated, 1);
        else
            atomic_store(&ld->read_ns[k], t);
    } else {
        atomic_fetch_add(&ld->foreign_runs, 1);
    }
    l->run_id = id;
    l->run_tag = k;
    l->event = 0;
    launcher_next_event(l);
}

/* A poll answered 200: ack what it holds, take a run if there is one, else poll again. */
static void launcher_polled(struct launcher *l)
{
    struct load *ld = l->c.loop->load;
    int64_t t = load_now_ns();
    json_t *root = json_loadb(l->c.resp.data ? l->c.resp.data : "", l->c.resp.len, 0, NULL);
    json_t *msgs = json_object_get(root, "messages"), *m, *run = NULL;
    size_t i;

    json_array_foreach(msgs, i, m)
    {
        json_int_t id = json_integer_value(json_object_get(m, "id"));
        const char *type = json_string_value(json_object_get(m, "type"));
        if (id <= l->ack)
            continue; /* sent again because our ack was lost: acted on already */
        l->ack = id;
        if (type && strcmp(type, "run") == 0) {
            if (run) /* capacity is 1: a second run at once is the server's fault */
                atomic_fetch_add(&ld->errors, 1);
            else
                run = json_object_get(m, "run");
        }
    }
    if (!json_is_array(msgs))
        atomic_fetch_add(&ld->errors, 1);
    if (run)
        launcher_take_run(l, run, t);
    else
        launcher_poll(l);
    json_decref(root);
}

static void launcher_registered(struct launcher *l)
{
    struct load *ld = l->c.loop->load;
    json_t *root = json_loadb(l->c.resp.data ? l->c.resp.data : "", l->c.resp.len, 0, NULL);
    const char *session = NULL;
    json_int_t id = 0;

    if (!root || json_unpack(root, "{s:s, s:I}", "session_token", &session, "launcher_id", &id) ||
        strlen(session) >= sizeof(l->session)) {
        atomic_fetch_add(&ld->errors, 1);
        json_decref(root);
        launcher_fail(l, ST_CHALLENGE);
        return;
    }
    snprintf(l->session, sizeof(l->session), "%s", session);
    l->id = id;
    json_decref(root);
    set_headers(&l->c, l->session, "application/json");
    if (!l->registered) {
        l->registered = 1;
        l->c.loop->registering--;
        if (atomic_fetch_add(&ld->registered, 1) + 1 == ld->nlaunchers)
            atomic_store(&ld->all_registered_ns, load_now_ns());
    }
    l->backoff_s = 0;
    launcher_poll(l);
}

static void launcher_challenged(struct launcher *l)
{
    struct load *ld = l->c.loop->load;
    json_t *root = json_loadb(l->c.resp.data ? l->c.resp.data : "", l->c.resp.len, 0, NULL);
    const char *cid = NULL, *nonce = NULL;

    if (!root || json_unpack(root, "{s:s, s:s}", "challenge_id", &cid, "nonce", &nonce) ||
        strlen(cid) >= sizeof(l->challenge_id) || strlen(nonce) >= sizeof(l->nonce)) {
        atomic_fetch_add(&ld->errors, 1);
        json_decref(root);
        launcher_fail(l, ST_CHALLENGE);
        return;
    }
    snprintf(l->challenge_id, sizeof(l->challenge_id), "%s", cid);
    snprintf(l->nonce, sizeof(l->nonce), "%s", nonce);
    json_decref(root);
    if (launcher_register(l) < 0) {
        atomic_fetch_add(&ld->errors, 1);
        launcher_fail(l, ST_CHALLENGE);
    }
}

static void launcher_done(struct launcher *l, CURLcode rc, long status)
{
    struct load *ld = l->c.loop->load;
    enum launcher_step step = l->step;

    if (step == ST_POLL)
        atomic_fetch_sub(&ld->polling, 1);
    if (atomic_load(&ld->phase) >= 3) {
        l->step = ST_STOPPED;
        return;
    }
    if (rc != CURLE_OK) {
        atomic_fetch_add(&ld->transport_errors, 1);
        launcher_fail(l, step == ST_REGISTER ? ST_CHALLENGE : step);
        return;
    }
    count_status(ld, status);
    if (status == 429) { /* the challenge table is full: retry later, as documented */
        atomic_fetch_add(&ld->retries_429, 1);
        launcher_fail(l, ST_CHALLENGE);
        return;
    }
    if (status < 200 || status > 299) {
        atomic_fetch_add(&ld->errors, 1);
        if (status == 401 && step != ST_CHALLENGE && step != ST_REGISTER)
            launcher_fail(l, ST_CHALLENGE); /* session gone: register again */
        else if (step == ST_EVENT || step == ST_LOG)
            launcher_fail(l, status >= 500 ? step : ST_POLL); /* 4xx: the run is not ours */
        else
            launcher_fail(l, step == ST_REGISTER ? ST_CHALLENGE : step);
        return;
    }
    l->backoff_s = 0;
    switch (step) {
    case ST_CHALLENGE:
        launcher_challenged(l);
        break;
    case ST_REGISTER:
        launcher_registered(l);
        break;
    case ST_POLL:
        launcher_polled(l);
        break;
    case ST_EVENT:
        if (l->event == 4) {
            atomic_fetch_add(&ld->finished, 1);
            atomic_store(&ld->last_finish_ns, load_now_ns());
            if (l->c.loop->index != 0)
                loop_wake(&ld->loops[0]);
        }
        launcher_next_event(l);
        break;
    case ST_LOG:
        launcher_next_event(l);
        break;
    default:
        break;
    }
}

/* A launcher whose backoff is over takes its step again. */
static void launcher_retry(struct launcher *l)
{
    enum launcher_step step = l->retry_step;

    l->c.loop->nbackoff--;
    if (step == ST_CHALLENGE || step == ST_REGISTER) {
        launcher_challenge(l);
    } else if (step == ST_POLL) {
        launcher_poll(l);
    } else { /* an event or log chunk failed with 5xx or the network: send it again */
        l->event--;
        launcher_next_event(l);
    }
}

/* ---- the submitter (loop 0) ---- */

static void submit_try(struct loop *lp)
{
    struct load *ld = lp->load;
    int64_t now = now_ms();

    if (atomic_load(&ld->phase) != 2)
        return;
    for (int i = 0; i < lp->nsubs; i++) {
        struct submitter *s = &lp->subs[i];
        int n = atomic_load(&ld->submitted);
        if (s->c.active)
            continue;
        if (n >= ld->o.runs || n - atomic_load(&ld->finished) >= ld->o.inflight)
            return;
        if (ld->o.inflight == 1 && now < lp->next_submit_ms)
            return;
        s->tag = n;
        atomic_store(&ld->submitted, n + 1);
        dbuf_reset(&s->c.body);
        dbuf_printf(&s->c.body,
                    "{\"pool\":\"%s\",\"image\":\"busybox\",\"phases\":[{\"name\":\"plan\","
                    "\"commands\":[\"true\"]}],\"env\":{\"LOAD_TAG\":\"%d\"}}",
                    ld->o.submit_pool, n);
        int64_t t = load_now_ns();
        atomic_store(&ld->submit_ns[n], t);
        if (n == 0)
            atomic_store(&ld->first_submit_ns, t);
        if (conn_start(&s->c, "POST", "/api/v1/runs", 60000) < 0) {
            atomic_fetch_add(&ld->transport_errors, 1);
            atomic_fetch_add(&ld->finished, 1); /* never queued: do not wait for it */
        }
    }
}

static void submit_done(struct submitter *s, CURLcode rc, long status)
{
    struct load *ld = s->c.loop->load;

    if (rc != CURLE_OK || status != 201) {
        if (rc != CURLE_OK)
            atomic_fetch_add(&ld->transport_errors, 1);
        else
            atomic_fetch_add(&ld->errors, 1);
        atomic_store(&ld->submit_ns[s->tag], 0); /* not a run: no latency, not lost */
        atomic_fetch_add(&ld->finished, 1);
    }
    if (rc == CURLE_OK)
        count_status(ld, status);
}

/* ---- the loop ---- */

void loop_wake(struct loop *lp)
{
    uint64_t one = 1;
    ssize_t n = write(lp->wakefd, &one, sizeof(one));
    (void)n; /* a full counter already wakes the loop */
}

int loop_init(struct load *ld, struct loop *lp, int index)
{
    struct epoll_event ev = {.events = EPOLLIN};

    lp->load = ld;
    lp->index = index;
    lp->curl_deadline_ms = -1;
    lp->next_retry_ms = -1;
    lp->seed = (unsigned)getpid() ^ (unsigned)index;
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ev.data.fd = lp->wakefd;
    if (lp->epfd < 0 || lp->wakefd < 0 || epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->wakefd, &ev) < 0 ||
        !(lp->multi = curl_multi_init())) {
        fprintf(stderr, "davit-load: loop %d: %s\n", index, strerror(errno));
        return -1;
    }
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETDATA, lp);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERDATA, lp);
    /* every stand-in keeps its own connection: never close one for the cache's sake */
    curl_multi_setopt(lp->multi, CURLMOPT_MAXCONNECTS, (long)ld->nlaunchers + 64);
    for (int i = index; i < ld->nlaunchers; i += ld->o.threads) {
        struct launcher *l = &ld->launchers[i];
        lp->launchers[lp->nlaunchers++] = l;
        if (conn_init(&l->c, lp, CONN_LAUNCHER,
                      ld->o.launcher_urls[l->index % ld->o.nlauncher_urls]) < 0)
            return -1;
        curl_easy_setopt(l->c.easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
        curl_easy_setopt(l->c.easy, CURLOPT_SOCKOPTDATA, l);
    }
    if (index == 0) {
        for (int i = 0; i < lp->nsubs; i++) {
            if (conn_init(&lp->subs[i].c, lp, CONN_SUBMIT, ld->o.submit_url) < 0 ||
                set_headers(&lp->subs[i].c, ld->o.admin_token, "application/json") < 0)
                return -1;
        }
    }
    return 0;
}

void loop_free(struct loop *lp)
{
    for (int i = 0; i < lp->nlaunchers; i++)
        conn_free(&lp->launchers[i]->c);
    for (int i = 0; i < lp->nsubs; i++)
        conn_free(&lp->subs[i].c);
    if (lp->multi)
        curl_multi_cleanup(lp->multi);
    if (lp->epfd >= 0)
        close(lp->epfd);
    if (lp->wakefd >= 0)
        close(lp->wakefd);
}

static void loop_completions(struct loop *lp)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(lp->multi, &left))) {
        struct conn *c = NULL;
        long status = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(lp->multi, easy);
        c->active = 0;
        if (c->kind == CONN_LAUNCHER)
            launcher_done((struct launcher *)c, rc, status);
        else
            submit_done((struct submitter *)c, rc, status);
    }
}

/* Launchers whose backoff ended take their step again; the scan runs only when one is due. */
static void loop_retries(struct loop *lp, int64_t now)
{
    if (!lp->nbackoff || lp->next_retry_ms < 0 || lp->next_retry_ms > now)
        return;
    lp->next_retry_ms = -1;
    for (int i = 0; i < lp->nlaunchers; i++) {
        struct launcher *l = lp->launchers[i];
        if (l->step != ST_BACKOFF)
            continue;
        if (l->c.retry_at_ms <= now)
            launcher_retry(l); /* may fail again at once: that sets next_retry_ms */
        else if (lp->next_retry_ms < 0 || l->c.retry_at_ms < lp->next_retry_ms)
            lp->next_retry_ms = l->c.retry_at_ms;
    }
}

void *loop_main(void *arg)
{
    struct loop *lp = arg;
    struct load *ld = lp->load;
    struct epoll_event evs[256];
    int running, seen_finished = 0;

    for (;;) {
        int phase = atomic_load(&ld->phase);
        int64_t now = now_ms();
        if (phase >= 3)
            break;
        if (phase >= 1) {
            /* --ramp: this loop's share of the registrations under way at once */
            int cap = ld->o.ramp ? (ld->o.ramp + ld->o.threads - 1) / ld->o.threads : INT_MAX;
            while (lp->next_start < lp->nlaunchers && lp->registering < cap) {
                lp->registering++;
                launcher_challenge(lp->launchers[lp->next_start++]);
            }
        }
        if (lp->index == 0) {
            int f = atomic_load(&ld->finished);
            if (f != seen_finished) {
                seen_finished = f;
                lp->next_submit_ms = now + ld->o.gap_ms;
            }
            submit_try(lp);
        }
        loop_retries(lp, now);
        int64_t wake = lp->curl_deadline_ms;
        if (lp->nbackoff && lp->next_retry_ms >= 0 && (wake < 0 || lp->next_retry_ms < wake))
            wake = lp->next_retry_ms;
        if (lp->index == 0 && phase == 2 && lp->next_submit_ms > now &&
            (wake < 0 || lp->next_submit_ms < wake))
            wake = lp->next_submit_ms;
        int timeout = wake < 0 ? 1000 : wake <= now ? 0 : (int)(wake - now);
        int n = epoll_wait(lp->epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lp->wakefd) {
                uint64_t v;
                ssize_t r = read(lp->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                        (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                        (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(lp->multi, evs[i].data.fd, flags, &running);
        }
        if (lp->curl_deadline_ms >= 0 && lp->curl_deadline_ms <= now_ms()) {
            lp->curl_deadline_ms = -1;
            curl_multi_socket_action(lp->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        loop_completions(lp);
    }
    return NULL;
}
