#include "launcher/container.h"

#include "launcher/credentials.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_masked(const struct launcher_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_mask; i++)
        if (strcmp(cfg->mask[i], name) == 0)
            return 1;
    return 0;
}

size_t container_masked_envs(const struct launcher_config *cfg, struct runspec_var *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_mask && n < max; i++) {
        char *v = getenv(cfg->mask[i]);
        if (!v || credentials_is_secret_var(cfg->mask[i])) /* as secrets neither */
            continue;
        out[n].name = cfg->mask[i];
        out[n].value = v;
        n++;
    }
    return n;
}

void container_name(const char *run_id, char *buf, size_t size)
{
    snprintf(buf, size, "davit-%s", run_id);
}

/* Appends a string made by printf to array a; remembers failure in *ok. */
static void append_fmt(json_t *a, int *ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append_fmt(json_t *a, int *ok, const char *fmt, ...)
{
    char buf[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (json_array_append_new(a, json_string(buf)) < 0)
        *ok = 0;
}

json_t *container_body(const struct container_params *p)
{
    const struct launcher_config *cfg = p->cfg;
    const struct runspec *spec = p->spec;
    int ok = 1;

    json_t *env = json_array();
    json_t *binds = json_array();
    json_t *host = json_object();
    json_t *body =
        json_pack("{s:s, s:[s], s:[], s:s, s:{s:s, s:s, s:s}, s:{s:{}}}", "Image", spec->image,
                  "Entrypoint", CONTAINER_WORKER_PATH, "Cmd", "User", "0:0", "Labels", LABEL_RUN,
                  p->run_id, LABEL_LAUNCHER, p->launcher_id, LABEL_POOL,
                  p->pool_id ? p->pool_id : cfg->pool, "Volumes", CONTAINER_WORKSPACE);
    if (!env || !binds || !host || !body)
        goto fail;
    if (p->pool_name && json_object_set_new(json_object_get(body, "Labels"), LABEL_POOL_NAME,
                                            json_string(p->pool_name)) < 0)
        goto fail;

    /* Whitelisted variables of the launcher's own; masked ones travel as secrets instead; the
     * launcher's credentials never, whatever the whitelist says (`davit-launcher exec` does not
     * remove them from its environment). */
    for (size_t i = 0; i < cfg->n_whitelist; i++) {
        const char *v = getenv(cfg->whitelist[i]);
        if (v && !is_masked(cfg, cfg->whitelist[i]) &&
            !credentials_is_secret_var(cfg->whitelist[i]))
            append_fmt(env, &ok, "%s=%s", cfg->whitelist[i], v);
    }

    append_fmt(binds, &ok, "%s:%s:ro", p->worker_path, CONTAINER_WORKER_PATH);
    append_fmt(binds, &ok, "%s:%s", p->run_dir, CONTAINER_RUN_DIR);
    for (size_t i = 0; i < cfg->n_mounts; i++)
        append_fmt(binds, &ok, "%s:%s%s", cfg->mounts[i].host, cfg->mounts[i].container,
                   cfg->mounts[i].read_only ? ":ro" : "");

    ok &= json_object_set(host, "Binds", binds) == 0;
    ok &= json_object_set_new(host, "NetworkMode", json_string(cfg->network)) == 0;
    if (cfg->runtime)
        ok &= json_object_set_new(host, "Runtime", json_string(cfg->runtime)) == 0;
    /* Nothing in a run gains privileges through setuid binaries or file
     * capabilities: the worker only ever drops them (docs/security.md). */
    if (cfg->no_new_privileges)
        ok &= json_object_set_new(host, "SecurityOpt", json_pack("[s]", "no-new-privileges")) == 0;
    if (cfg->n_cap_drop) {
        json_t *caps = json_array();
        for (size_t i = 0; caps && i < cfg->n_cap_drop; i++)
            ok &= json_array_append_new(caps, json_string(cfg->cap_drop[i])) == 0;
        ok &= caps && json_object_set_new(host, "CapDrop", caps) == 0;
    }
    if (cfg->read_only_rootfs)
        ok &= json_object_set_new(host, "ReadonlyRootfs", json_true()) == 0;
    if (spec->memory_mb) {
        /* Swap as large as the memory means no swap: the limit really limits. */
        json_int_t bytes = (json_int_t)spec->memory_mb * 1024 * 1024;
        ok &= json_object_set_new(host, "Memory", json_integer(bytes)) == 0;
        ok &= json_object_set_new(host, "MemorySwap", json_integer(bytes)) == 0;
    }
    if (spec->cpus > 0)
        ok &= json_object_set_new(host, "NanoCpus",
                                  json_integer((json_int_t)(spec->cpus * 1e9 + 0.5))) == 0;
    if (spec->pids)
        ok &= json_object_set_new(host, "PidsLimit", json_integer(spec->pids)) == 0;

    ok &= json_object_set(body, "Env", env) == 0;
    ok &= json_object_set(body, "HostConfig", host) == 0;
    if (!ok)
        goto fail;
    json_decref(env);
    json_decref(binds);
    json_decref(host);
    return body;

fail:
    json_decref(env);
    json_decref(binds);
    json_decref(host);
    json_decref(body);
    return NULL;
}
