/*
 * config: davit-launcher's configuration, read once from the environment.
 *
 * Every option X is DAVIT_X, with SPACELIFT_X accepted as an alias (see
 * common/env.h); docs/configuration.md lists them all. The one exception is
 * DOCKER_HOST, which keeps Docker's own name. The struct owns its strings;
 * config_free releases them. Nothing here talks to Docker or the disk.
 */
#ifndef DAVIT_LAUNCHER_CONFIG_H
#define DAVIT_LAUNCHER_CONFIG_H

#include "common/log.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_MOUNTS      32
#define CONFIG_MAX_ENVS        64
#define CONFIG_MAX_META        64
#define CONFIG_MAX_CONCURRENCY 64

#define CONFIG_DEFAULT_DOCKER_HOST    "unix:///var/run/docker.sock"
#define CONFIG_DEFAULT_NETWORK        "bridge"
#define CONFIG_DEFAULT_POOL           "local"
#define CONFIG_DEFAULT_RUN_TIMEOUT    (70LL * 60 * 1000)
#define CONFIG_DEFAULT_LOGS_TIMEOUT   (7LL * 60 * 1000)
#define CONFIG_DEFAULT_DOCKER_TIMEOUT (60LL * 1000)
#define CONFIG_DEFAULT_PULL_TIMEOUT   (15LL * 60 * 1000)
#define CONFIG_DEFAULT_HOOK_TIMEOUT   (30LL * 1000)
#define CONFIG_MAX_IMAGE_PATTERNS     64

struct config_mount {
    char *host;      /* absolute path on the Docker host */
    char *container; /* absolute path in the container */
    int read_only;
};

struct launcher_config {
    char *docker_host;       /* DOCKER_HOST */
    char *state_dir;         /* DAVIT_STATE_DIR */
    char *worker_binary;     /* DAVIT_WORKER_BINARY; NULL: next to the launcher */
    char *pool;              /* DAVIT_POOL_ID, the io.davit.pool label */
    char *network;           /* DAVIT_WORKER_NETWORK */
    char *runtime;           /* DAVIT_WORKER_RUNTIME; NULL: the Engine's default */
    char *docker_config_dir; /* DAVIT_DOCKER_CONFIG_DIR; NULL: no registry credentials */
    struct config_mount mounts[CONFIG_MAX_MOUNTS]; /* DAVIT_WORKER_EXTRA_MOUNTS */
    size_t n_mounts;
    char *whitelist[CONFIG_MAX_ENVS]; /* DAVIT_WHITELIST_ENVS */
    size_t n_whitelist;
    char *mask[CONFIG_MAX_ENVS]; /* DAVIT_MASK_ENVS */
    size_t n_mask;
    int no_new_privileges;           /* DAVIT_WORKER_NO_NEW_PRIVILEGES, default on */
    int read_only_rootfs;            /* DAVIT_WORKER_READ_ONLY_ROOTFS, default off */
    char *cap_drop[CONFIG_MAX_ENVS]; /* DAVIT_WORKER_CAP_DROP: capabilities, or ALL */
    size_t n_cap_drop;
    int64_t run_timeout_ms;     /* DAVIT_LAUNCHER_RUN_TIMEOUT; 0 disables */
    int64_t logs_timeout_ms;    /* DAVIT_LAUNCHER_LOGS_TIMEOUT; 0 disables */
    int64_t docker_timeout_ms;  /* DAVIT_DOCKER_TIMEOUT: one Engine API call */
    int64_t pull_timeout_ms;    /* DAVIT_DOCKER_PULL_TIMEOUT: one image pull */
    int debug;                  /* DAVIT_DEBUG */
    enum log_format log_format; /* DAVIT_LOG_FORMAT */
    /* the daemon's (davit-launcher with no command) */
    char *ca_file;                    /* DAVIT_CA_FILE; NULL: the system CAs */
    int concurrency;                  /* DAVIT_LAUNCHER_CONCURRENCY, 1–64 */
    int run_logs_stdout;              /* DAVIT_RUN_LOGS_ON_STANDARD_OUTPUT(_ENABLED) */
    char *meta_keys[CONFIG_MAX_META]; /* DAVIT_METADATA_<key>=<value> */
    char *meta_values[CONFIG_MAX_META];
    size_t n_meta;
    /* admission (admission.h) */
    char *allowed_images[CONFIG_MAX_IMAGE_PATTERNS]; /* DAVIT_ALLOWED_IMAGES: globs; none: any */
    size_t n_allowed_images;
    char *init_hook;              /* DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK; NULL: none */
    int64_t init_hook_timeout_ms; /* DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT */
    char *default_image;          /* DAVIT_DEFAULT_RUNNER_IMAGE; NULL: a spec must name one */
    int ephemeral;                /* DAVIT_EPHEMERAL: one run, then exit */
    char *metrics_listen;         /* DAVIT_METRICS_LISTEN: host:port; NULL: off */
    int metrics_listen_any;       /* DAVIT_METRICS_LISTEN_ANY: a non-loopback address allowed */
};

/*
 * Reads the environment into c (which need not be initialised). Returns 0,
 * or -1 with one line in err naming the variable and the problem; c is then
 * already freed. Caller frees with config_free.
 */
int config_load(struct launcher_config *c, char *err, size_t errsz);

/* Frees what c owns and zeroes it. Safe on a zeroed or freed struct. */
void config_free(struct launcher_config *c);

/* True if name is a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*). */
int config_env_name_ok(const char *name);

#endif
