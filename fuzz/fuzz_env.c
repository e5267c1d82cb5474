/*
 * libFuzzer: davit's configuration from the environment: env.c's typed readers and the
 * launcher's config_load (launcher/config.c), with DAVIT_ and SPACELIFT_ variables (and
 * DOCKER_HOST) taken from the input, one NAME=VALUE a line. Beyond "no crash, no leak, no UB":
 * a refusal is one non-empty line.
 */
#include "common/env.h"
#include "launcher/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VARS 64

static int ours(const char *name)
{
    return strncmp(name, "DAVIT_", 6) == 0 || strncmp(name, "SPACELIFT_", 10) == 0 ||
           strcmp(name, "DOCKER_HOST") == 0;
}

static void check_err(int rc, const char *err)
{
    if (rc < 0 && (!err[0] || strchr(err, '\n')))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *set[MAX_VARS], err[1024];
    int n = 0;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *line = strtok(text, "\n"); line && n < MAX_VARS; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq || eq == line)
            continue;
        *eq = '\0';
        if (ours(line) && setenv(line, eq + 1, 1) == 0)
            set[n++] = line;
    }

    int64_t ms;
    int b;
    long long ll;
    err[0] = '\0';
    check_err(env_duration("LAUNCHER_RUN_TIMEOUT", 1000, &ms, err, sizeof(err)), err);
    err[0] = '\0';
    check_err(env_bool("WORKER_NO_NEW_PRIVILEGES", 1, &b, err, sizeof(err)), err);
    err[0] = '\0';
    check_err(env_int("MAX_CONNECTIONS", 10, 1 << 20, &ll, err, sizeof(err)), err);

    struct launcher_config c;
    err[0] = '\0';
    check_err(config_load(&c, err, sizeof(err)), err);
    config_free(&c);

    for (int i = 0; i < n; i++)
        unsetenv(set[i]);
    free(text);
    return 0;
}
