#include "common/env.h"

#include "common/duration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *env_get(const char *name, char *which, size_t size)
{
    static const char *const prefixes[] = {"DAVIT_", "SPACELIFT_"};
    char full[ENV_NAME_MAX];

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        snprintf(full, sizeof(full), "%s%s", prefixes[i], name);
        const char *v = getenv(full);
        if (v && *v) {
            if (which)
                snprintf(which, size, "%s", full);
            return v;
        }
    }
    if (which)
        snprintf(which, size, "DAVIT_%s", name);
    return NULL;
}

int env_duration(const char *name, int64_t def, int64_t *ms, char *err, size_t errsz)
{
    char var[ENV_NAME_MAX];
    const char *v = env_get(name, var, sizeof(var));
    if (!v) {
        *ms = def;
        return 0;
    }
    if (duration_parse(v, ms) < 0) {
        snprintf(err, errsz, "%s: not a duration (like 90s, 7m, 1h): \"%s\"", var, v);
        return -1;
    }
    return 0;
}

int env_bool(const char *name, int def, int *out, char *err, size_t errsz)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    char var[ENV_NAME_MAX];
    const char *v = env_get(name, var, sizeof(var));

    if (!v) {
        *out = def;
        return 0;
    }
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    snprintf(err, errsz, "%s: expected 1 or 0 (true/false): \"%s\"", var, v);
    return -1;
}

int env_int(const char *name, long long def, long long max, long long *out, char *err, size_t errsz)
{
    char var[ENV_NAME_MAX];
    const char *v = env_get(name, var, sizeof(var));
    char *end;

    if (!v) {
        *out = def;
        return 0;
    }
    long long n = strtoll(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || n > max) {
        snprintf(err, errsz, "%s: expected a whole number from 0 to %lld: \"%s\"", var, max, v);
        return -1;
    }
    *out = n;
    return 0;
}
