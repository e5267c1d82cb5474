/*
 * container: the Engine's create request for a run's container, built from
 * the spec and the launcher's configuration (docs/launcher.md, "The
 * container").
 *
 * The worker is the entrypoint, bind-mounted read-only; the run directory
 * and a workspace volume are mounted; the image's ENTRYPOINT and CMD are
 * ignored. Only whitelisted launcher variables reach the container's Env;
 * secrets never do. Pure functions over their arguments and environ.
 */
#ifndef DAVIT_LAUNCHER_CONTAINER_H
#define DAVIT_LAUNCHER_CONTAINER_H

#include "common/runspec.h"
#include "launcher/config.h"

#include <jansson.h>

#define CONTAINER_WORKER_PATH "/opt/davit/bin/davit-worker"
#define CONTAINER_RUN_DIR     "/opt/davit/run"
#define CONTAINER_WORKSPACE   "/mnt/workspace"

#define LABEL_RUN       "io.davit.run"
#define LABEL_LAUNCHER  "io.davit.launcher"
#define LABEL_POOL      "io.davit.pool"
#define LABEL_POOL_NAME "io.davit.pool.name"

struct container_params {
    const struct runspec *spec;
    const struct launcher_config *cfg;
    const char *run_id;
    const char *launcher_id;
    const char *worker_path; /* on the Docker host */
    const char *run_dir;     /* on the Docker host */
    const char *pool_id;     /* the io.davit.pool label; NULL: cfg->pool */
    const char *pool_name;   /* the io.davit.pool.name label; NULL: none */
};

/* The create body. Returns a new reference, or NULL when out of memory. */
json_t *container_body(const struct container_params *p);

/*
 * The launcher's variables named in DAVIT_MASK_ENVS that are set, as secrets
 * for the run directory. Values point into environ. Returns the count (at
 * most max). Never fails.
 */
size_t container_masked_envs(const struct launcher_config *cfg, struct runspec_var *out,
                             size_t max);

/* The container's name for a run: "davit-<run_id>". Never fails. */
void container_name(const char *run_id, char *buf, size_t size);

#endif
