#include "launcher/config.h"

#include "common/env.h"
#include "common/runrules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail_oom(char *err, size_t errsz)
{
    snprintf(err, errsz, "configuration: out of memory");
    return -1;
}

/* Copies DAVIT_<name> (or the alias) into *dst, or def when unset. */
static int get_str(const char *name, const char *def, char **dst, char *err, size_t errsz)
{
    const char *v = env_get(name, NULL, 0);
    if (!v)
        v = def;
    if (!v) {
        *dst = NULL;
        return 0;
    }
    *dst = strdup(v);
    return *dst ? 0 : fail_oom(err, errsz);
}

int config_env_name_ok(const char *s)
{
    return runrules_var_name_ok(s);
}

/* A comma-separated list of variable names ("A,B, C"); empty items are skipped. */
static int get_names(const char *name, char **out, size_t *n_out, char *err, size_t errsz)
{
    char varname[ENV_NAME_MAX];
    const char *v = env_get(name, varname, sizeof(varname));
    *n_out = 0;
    if (!v)
        return 0;
    const char *p = v;
    while (*p) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (!len)
            break;
        if (*n_out == CONFIG_MAX_ENVS) {
            snprintf(err, errsz, "%s: more than %d names", varname, CONFIG_MAX_ENVS);
            return -1;
        }
        char *item = strndup(p, len);
        if (!item)
            return fail_oom(err, errsz);
        out[(*n_out)++] = item;
        if (!config_env_name_ok(item)) {
            snprintf(err, errsz, "%s: not a variable name: \"%s\"", varname, item);
            return -1;
        }
        p += len;
    }
    return 0;
}

/* "/host:/container[:ro|:rw],…" */
static int get_mounts(struct launcher_config *c, char *err, size_t errsz)
{
    char varname[ENV_NAME_MAX];
    const char *v = env_get("WORKER_EXTRA_MOUNTS", varname, sizeof(varname));
    if (!v)
        return 0;
    const char *p = v;
    while (*p) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ",");
        if (!len)
            break;
        while (len && p[len - 1] == ' ')
            len--;
        if (c->n_mounts == CONFIG_MAX_MOUNTS) {
            snprintf(err, errsz, "%s: more than %d mounts", varname, CONFIG_MAX_MOUNTS);
            return -1;
        }
        char *item = strndup(p, len);
        if (!item)
            return fail_oom(err, errsz);
        struct config_mount *m = &c->mounts[c->n_mounts];
        char *colon = strchr(item, ':');
        char *mode = colon ? strchr(colon + 1, ':') : NULL;
        if (colon)
            *colon = '\0';
        if (mode)
            *mode++ = '\0';
        int ok = colon && item[0] == '/' && colon[1] == '/' &&
                 (!mode || strcmp(mode, "ro") == 0 || strcmp(mode, "rw") == 0);
        if (ok) {
            m->host = strdup(item);
            m->container = strdup(colon + 1);
            m->read_only = mode && strcmp(mode, "ro") == 0;
            c->n_mounts++;
        }
        free(item);
        if (!ok) {
            snprintf(err, errsz, "%s: expected /host/path:/container/path[:ro]: \"%.*s\"", varname,
                     (int)len, p);
            return -1;
        }
        if (!m->host || !m->container)
            return fail_oom(err, errsz);
        p += len;
    }
    return 0;
}

/* DAVIT_METADATA_<key>=<value>, and SPACELIFT_METADATA_<key> unless DAVIT_ gives the key. */
static int get_metadata(struct launcher_config *c, char *err, size_t errsz)
{
    extern char **environ;
    static const char *const prefixes[] = {"DAVIT_METADATA_", "SPACELIFT_METADATA_"};
    for (int pass = 0; pass < 2; pass++) {
        size_t plen = strlen(prefixes[pass]);
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            if (!eq || strncmp(*e, prefixes[pass], plen) != 0 || eq == *e + plen)
                continue;
            size_t klen = (size_t)(eq - *e) - plen;
            int dup = 0;
            for (size_t i = 0; i < c->n_meta; i++)
                dup |= strlen(c->meta_keys[i]) == klen &&
                       strncmp(c->meta_keys[i], *e + plen, klen) == 0;
            if (dup)
                continue;
            if (c->n_meta == CONFIG_MAX_META) {
                snprintf(err, errsz, "%sKEY: more than %d metadata entries", prefixes[pass],
                         CONFIG_MAX_META);
                return -1;
            }
            if (klen > 128 || strlen(eq + 1) > 1024) {
                snprintf(err, errsz, "%.*s: key or value too long (128/1024 bytes)", (int)(eq - *e),
                         *e);
                return -1;
            }
            c->meta_keys[c->n_meta] = strndup(*e + plen, klen);
            c->meta_values[c->n_meta] = strdup(eq + 1);
            c->n_meta++;
            if (!c->meta_keys[c->n_meta - 1] || !c->meta_values[c->n_meta - 1])
                return fail_oom(err, errsz);
        }
    }
    return 0;
}

/* DAVIT_ALLOWED_IMAGES: comma-separated globs (admission.h); spaces around them are dropped. */
static int get_patterns(struct launcher_config *c, char *err, size_t errsz)
{
    char varname[ENV_NAME_MAX];
    const char *v = env_get("ALLOWED_IMAGES", varname, sizeof(varname));
    if (!v)
        return 0;
    for (const char *p = v; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ",");
        if (!len)
            break;
        size_t n = len;
        while (n && p[n - 1] == ' ')
            n--;
        if (c->n_allowed_images == CONFIG_MAX_IMAGE_PATTERNS) {
            snprintf(err, errsz, "%s: more than %d patterns", varname, CONFIG_MAX_IMAGE_PATTERNS);
            return -1;
        }
        if (n > 512 || memchr(p, ' ', n)) {
            snprintf(err, errsz, "%s: not an image pattern: \"%.*s\"", varname,
                     (int)(n > 64 ? 64 : n), p);
            return -1;
        }
        if (!(c->allowed_images[c->n_allowed_images++] = strndup(p, n)))
            return fail_oom(err, errsz);
        p += len;
    }
    if (c->n_allowed_images == 0) {
        snprintf(err, errsz, "%s: no pattern given (unset it to allow any image)", varname);
        return -1;
    }
    return 0;
}

/* Admission, ephemeral mode and the metrics listener (docs/launcher.md). */
static int get_admission(struct launcher_config *c, char *err, size_t errsz)
{
    /* Spacelift's worker-side policy is Rego, which davit does not run: ignoring it silently
     * would admit runs its owner meant to refuse. */
    if (getenv("SPACELIFT_LAUNCHER_RUN_INITIALIZATION_POLICY") &&
        *getenv("SPACELIFT_LAUNCHER_RUN_INITIALIZATION_POLICY")) {
        snprintf(err, errsz,
                 "SPACELIFT_LAUNCHER_RUN_INITIALIZATION_POLICY: Rego policies are not supported; "
                 "use DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK (docs/launcher.md)");
        return -1;
    }
    if (get_patterns(c, err, errsz) < 0 ||
        get_str("LAUNCHER_RUN_INITIALIZATION_HOOK", NULL, &c->init_hook, err, errsz) < 0 ||
        env_duration("LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT", CONFIG_DEFAULT_HOOK_TIMEOUT,
                     &c->init_hook_timeout_ms, err, errsz) < 0 ||
        get_str("DEFAULT_RUNNER_IMAGE", NULL, &c->default_image, err, errsz) < 0 ||
        env_bool("EPHEMERAL", 0, &c->ephemeral, err, errsz) < 0 ||
        get_str("METRICS_LISTEN", NULL, &c->metrics_listen, err, errsz) < 0 ||
        env_bool("METRICS_LISTEN_ANY", 0, &c->metrics_listen_any, err, errsz) < 0)
        return -1;
    if (c->init_hook_timeout_ms == 0) {
        snprintf(err, errsz, "DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT: must not be 0");
        return -1;
    }
    if (c->ephemeral && c->concurrency != 1) {
        snprintf(err, errsz,
                 "DAVIT_LAUNCHER_CONCURRENCY: an ephemeral launcher takes one run: must be 1, "
                 "not %d",
                 c->concurrency);
        return -1;
    }
    return 0;
}

static const char *default_state_dir(char *buf, size_t size)
{
    const char *home = getenv("HOME");
    if (geteuid() == 0 || !home || !*home)
        return "/var/lib/davit-launcher";
    snprintf(buf, size, "%s/.local/state/davit-launcher", home);
    return buf;
}

int config_load(struct launcher_config *c, char *err, size_t errsz)
{
    char buf[PATH_MAX];

    memset(c, 0, sizeof(*c));
    const char *dh = getenv("DOCKER_HOST");
    c->docker_host = strdup(dh && *dh ? dh : CONFIG_DEFAULT_DOCKER_HOST);
    if (!c->docker_host) {
        fail_oom(err, errsz);
        goto fail;
    }
    if (get_str("STATE_DIR", default_state_dir(buf, sizeof(buf)), &c->state_dir, err, errsz) < 0 ||
        get_str("WORKER_BINARY", NULL, &c->worker_binary, err, errsz) < 0 ||
        get_str("POOL_ID", CONFIG_DEFAULT_POOL, &c->pool, err, errsz) < 0 ||
        get_str("WORKER_NETWORK", CONFIG_DEFAULT_NETWORK, &c->network, err, errsz) < 0 ||
        get_str("WORKER_RUNTIME", NULL, &c->runtime, err, errsz) < 0 ||
        get_str("DOCKER_CONFIG_DIR", NULL, &c->docker_config_dir, err, errsz) < 0)
        goto fail;
    if (c->state_dir[0] != '/') {
        snprintf(err, errsz, "DAVIT_STATE_DIR: must be an absolute path: \"%s\"", c->state_dir);
        goto fail;
    }
    if (get_mounts(c, err, errsz) < 0 ||
        get_names("WHITELIST_ENVS", c->whitelist, &c->n_whitelist, err, errsz) < 0 ||
        get_names("MASK_ENVS", c->mask, &c->n_mask, err, errsz) < 0 ||
        get_names("WORKER_CAP_DROP", c->cap_drop, &c->n_cap_drop, err, errsz) < 0 ||
        env_bool("WORKER_NO_NEW_PRIVILEGES", 1, &c->no_new_privileges, err, errsz) < 0 ||
        env_bool("WORKER_READ_ONLY_ROOTFS", 0, &c->read_only_rootfs, err, errsz) < 0)
        goto fail;
    if (env_duration("LAUNCHER_RUN_TIMEOUT", CONFIG_DEFAULT_RUN_TIMEOUT, &c->run_timeout_ms, err,
                     errsz) < 0 ||
        env_duration("LAUNCHER_LOGS_TIMEOUT", CONFIG_DEFAULT_LOGS_TIMEOUT, &c->logs_timeout_ms, err,
                     errsz) < 0 ||
        env_duration("DOCKER_TIMEOUT", CONFIG_DEFAULT_DOCKER_TIMEOUT, &c->docker_timeout_ms, err,
                     errsz) < 0 ||
        env_duration("DOCKER_PULL_TIMEOUT", CONFIG_DEFAULT_PULL_TIMEOUT, &c->pull_timeout_ms, err,
                     errsz) < 0 ||
        env_bool("DEBUG", 0, &c->debug, err, errsz) < 0)
        goto fail;
    long long conc = 1;
    if (get_str("CA_FILE", NULL, &c->ca_file, err, errsz) < 0 ||
        env_int("LAUNCHER_CONCURRENCY", 1, CONFIG_MAX_CONCURRENCY, &conc, err, errsz) < 0 ||
        get_metadata(c, err, errsz) < 0)
        goto fail;
    if (conc < 1) {
        snprintf(err, errsz, "DAVIT_LAUNCHER_CONCURRENCY: must be 1 to %d", CONFIG_MAX_CONCURRENCY);
        goto fail;
    }
    c->concurrency = (int)conc;
    const char *logs_var = env_get("RUN_LOGS_ON_STANDARD_OUTPUT", NULL, 0)
                               ? "RUN_LOGS_ON_STANDARD_OUTPUT"
                               : "RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED";
    if (env_bool(logs_var, 0, &c->run_logs_stdout, err, errsz) < 0 ||
        get_admission(c, err, errsz) < 0)
        goto fail;
    if (c->docker_timeout_ms == 0 || c->pull_timeout_ms == 0) {
        snprintf(err, errsz, "DAVIT_DOCKER_TIMEOUT and DAVIT_DOCKER_PULL_TIMEOUT: must not be 0");
        goto fail;
    }
    char var[ENV_NAME_MAX];
    const char *fmt = env_get("LOG_FORMAT", var, sizeof(var));
    if (log_format_parse(fmt, &c->log_format) < 0) {
        snprintf(err, errsz, "%s: expected text or json: \"%s\"", var, fmt);
        goto fail;
    }
    return 0;

fail:
    config_free(c);
    return -1;
}

void config_free(struct launcher_config *c)
{
    free(c->docker_host);
    free(c->state_dir);
    free(c->worker_binary);
    free(c->pool);
    free(c->network);
    free(c->runtime);
    free(c->docker_config_dir);
    for (size_t i = 0; i < c->n_mounts; i++) {
        free(c->mounts[i].host);
        free(c->mounts[i].container);
    }
    for (size_t i = 0; i < c->n_whitelist; i++)
        free(c->whitelist[i]);
    for (size_t i = 0; i < c->n_cap_drop; i++)
        free(c->cap_drop[i]);
    for (size_t i = 0; i < c->n_mask; i++)
        free(c->mask[i]);
    free(c->ca_file);
    for (size_t i = 0; i < c->n_meta; i++) {
        free(c->meta_keys[i]);
        free(c->meta_values[i]);
    }
    for (size_t i = 0; i < c->n_allowed_images; i++)
        free(c->allowed_images[i]);
    free(c->init_hook);
    free(c->default_image);
    free(c->metrics_listen);
    memset(c, 0, sizeof(*c));
}
