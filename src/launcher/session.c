/* The server session the daemon's threads share (session.h). */
#include "launcher/session.h"

#include "common/env.h"
#include "common/log.h"
#include "launcher/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define ID_FILE "server-id"

int64_t session_id_load(const struct state *st, const char *pool_id)
{
    char *text = NULL, err[1024];
    int64_t id = 0;
    if (state_file_read(st, ID_FILE, &text, err, sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot read the stored launcher id", "error", err, (const char *)NULL);
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    const char *pool = json_string_value(json_object_get(o, "pool_id"));
    json_t *lid = json_object_get(o, "launcher_id");
    if (pool && strcmp(pool, pool_id) == 0 && json_is_integer(lid))
        id = json_integer_value(lid);
    json_decref(o);
    free(text);
    return id;
}

void session_id_store(const struct state *st, const char *pool_id, int64_t id)
{
    char err[1024];
    /* The pool id comes from the token: jansson escapes whatever it holds. */
    json_t *o = json_pack("{s:s, s:I}", "pool_id", pool_id, "launcher_id", (json_int_t)id);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    size_t n = text ? strlen(text) : 0;
    char *line = text ? malloc(n + 2) : NULL;
    if (!line) {
        snprintf(err, sizeof(err), "out of memory");
    } else {
        memcpy(line, text, n);
        memcpy(line + n, "\n", 2);
    }
    if (!line || state_file_write(st, ID_FILE, line, err, sizeof(err)) < 0)
        log_event(LOG_WARN, "cannot store the launcher id", "error", err, (const char *)NULL);
    free(line);
    free(text);
    json_decref(o);
}

/* One line for a refused registration, naming what to fix. */
static void refusal(const struct session *s, const char *err, char *out, size_t size)
{
    char tname[ENV_NAME_MAX], kname[ENV_NAME_MAX];
    env_get("TOKEN", tname, sizeof(tname));
    env_get("POOL_PRIVATE_KEY", kname, sizeof(kname));
    if (strstr(err, "pool secret does not match"))
        snprintf(out, size,
                 "the pool's token was reset: %s no longer registers with %s (use the token "
                 "that `davit pool reset` printed)",
                 tname, s->cred->endpoint);
    else if (strstr(err, "signature does not verify"))
        snprintf(out, size,
                 "%s: the key does not match pool %s at %s (the server checked the signature "
                 "with the pool's public key)",
                 kname, s->cred->pool_id, s->cred->endpoint);
    else if (strstr(err, "unknown pool"))
        snprintf(out, size, "%s: the server at %s has no pool %s (deleted?)", tname,
                 s->cred->endpoint, s->cred->pool_id);
    else
        snprintf(out, size, "%s", err);
}

/* What the server is told about this machine. */
static int identity(struct session *s, char *err, size_t errsz)
{
    struct utsname u;
    if (gethostname(s->hostname, sizeof(s->hostname) - 1) < 0 || !s->hostname[0])
        snprintf(s->hostname, sizeof(s->hostname), "unknown");
    if (uname(&u) < 0) {
        snprintf(err, errsz, "uname: %s", strerror(errno));
        return -1;
    }
    const char *arch = strcmp(u.machine, "x86_64") == 0 ? "amd64"
                       : strcmp(u.machine, "aarch64") == 0 || strcmp(u.machine, "arm64") == 0
                           ? "arm64"
                           : u.machine;
    snprintf(s->arch, sizeof(s->arch), "%s", arch);
    s->metadata = json_object();
    for (size_t i = 0; s->metadata && i < s->cfg->n_meta; i++)
        json_object_set_new(s->metadata, s->cfg->meta_keys[i], json_string(s->cfg->meta_values[i]));
    if (!s->metadata) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    return 0;
}

int session_init(struct session *s, const struct launcher_config *cfg,
                 const struct credentials *cred, struct state *state, char *err, size_t errsz)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->cred = cred;
    s->state = state;
    pthread_mutex_init(&s->mu, NULL);
    if (identity(s, err, errsz) < 0)
        return -1;
    s->cur.launcher_id = session_id_load(state, cred->pool_id);
    return 0;
}

void session_free(struct session *s)
{
    json_decref(s->metadata);
    s->metadata = NULL;
    explicit_bzero(s->cur.token, sizeof(s->cur.token));
    pthread_mutex_destroy(&s->mu);
}

int session_renew(struct session *s, struct backend *b, uint64_t *gen, char *err, size_t errsz)
{
    int rc = BACKEND_OK;
    pthread_mutex_lock(&s->mu);
    if (s->fatal) {
        snprintf(err, errsz, "%s", s->fatal_msg);
        rc = BACKEND_UNAUTHORIZED;
    } else if (s->gen != *gen) {
        backend_set_session(b, s->cur.token);
    } else {
        struct backend_identity id = {s->hostname,         DAVIT_VERSION, s->arch,
                                      s->cfg->concurrency, s->metadata,   s->cur.launcher_id,
                                      s->cfg->ephemeral};
        struct backend_session got = {0};
        rc = backend_register(b, s->cred, &id, &got, err, errsz);
        if (rc == BACKEND_OK) {
            if (s->cur.launcher_id && got.launcher_id != s->cur.launcher_id)
                log_event(LOG_WARN,
                          "the server gave this launcher a new id: its earlier runs are not "
                          "its own any more",
                          (const char *)NULL);
            if (got.launcher_id != s->cur.launcher_id)
                session_id_store(s->state, s->cred->pool_id, got.launcher_id);
            if (s->cur.token[0])
                metrics_session_renewed();
            s->cur = got;
            s->gen++;
        } else if (rc != BACKEND_UNREACHABLE) {
            s->fatal = 1;
            refusal(s, err, s->fatal_msg, sizeof(s->fatal_msg));
            snprintf(err, errsz, "%s", s->fatal_msg);
            rc = BACKEND_UNAUTHORIZED;
        }
        explicit_bzero(got.token, sizeof(got.token));
    }
    *gen = s->gen;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void session_use(struct session *s, struct backend *b, uint64_t *gen, char *pool, size_t size)
{
    pthread_mutex_lock(&s->mu);
    backend_set_session(b, s->cur.token);
    snprintf(pool, size, "%s", s->cur.pool);
    *gen = s->gen;
    pthread_mutex_unlock(&s->mu);
}

void session_get(struct session *s, struct backend_session *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->cur;
    pthread_mutex_unlock(&s->mu);
    explicit_bzero(out->token, sizeof(out->token));
}

int session_fatal(struct session *s, char *msg, size_t size)
{
    pthread_mutex_lock(&s->mu);
    int fatal = s->fatal;
    if (fatal && msg)
        snprintf(msg, size, "%s", s->fatal_msg);
    pthread_mutex_unlock(&s->mu);
    return fatal;
}
