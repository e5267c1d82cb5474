/*
 * provider: the cloud behind `davit autoscale` (docs/autoscale.md,
 * "Providers"): AWS (aws.c), Azure (azure.c) and GCP (gcp.c) each fill a
 * struct provider with the same few calls, so that cmd_autoscale.c has one
 * path and autoscale.c one algorithm.
 *
 * A struct provider owns its implementation's state and credentials: close()
 * wipes and frees them. Every call returns 0, or -1 with err filled with one
 * line naming the call and the cloud's error code and message (control bytes
 * replaced, never the request), or PROV_EAUTH when the cloud refused the
 * credentials (expired or invalid), so that the caller can stop at once.
 */
#ifndef DAVIT_CLI_PROVIDER_H
#define DAVIT_CLI_PROVIDER_H

#include "cli/autoscale.h"

#include <jansson.h>

#include <stddef.h>
#include <stdint.h>

#define PROV_EAUTH (-2)

/* The most instances one group's answer may hold here. */
#define PROV_MAX_INSTANCES 2048

/* What `davit autoscale` was told about the group, whichever the cloud. */
struct prov_config {
    const char *group;          /* Auto Scaling group, scale set or managed instance group */
    const char *region;         /* AWS and GCP: the region (NULL: AWS finds its own) */
    const char *endpoint;       /* the cloud's API endpoint for tests, or NULL */
    const char *ca_file;        /* a CA file for that endpoint, or NULL */
    const char *subscription;   /* Azure */
    const char *resource_group; /* Azure */
    const char *project;        /* GCP */
    int min, max;               /* Azure and GCP: their groups have none of their own */
};

/* The group as the cloud answers it. instances is owned (prov_group_free). Each instance's id
 * is what its launcher's instance_id metadata holds (docs/autoscale.md, "Instances"). */
struct prov_group {
    int min, max, desired;
    struct as_instance *instances;
    size_t n_instances;
};

/* The group's termination lifecycle hook (AWS only). */
struct prov_hook {
    char name[256];
    int64_t heartbeat_timeout_ms;
};

struct provider {
    const char *name; /* "AWS", "Azure", "GCP": in errors and logs */
    /* The credentials came from the instance (role, managed identity, service account) and can
     * be fetched again; refresh() does so. */
    int renewable;
    int (*describe)(struct provider *p, struct prov_group *out, char *err, size_t errsz);
    /* Sets launch_ms of the instances of g whose launch_ms is -1 and for which want[i] holds. */
    int (*launch_times)(struct provider *p, struct prov_group *g, const int *want, char *err,
                        size_t errsz);
    int (*set_desired)(struct provider *p, int desired, char *err, size_t errsz);
    /* Terminates one instance, lowering desired capacity by one when decrement, else replacing
     * it. */
    int (*terminate)(struct provider *p, const char *id, int decrement, char *err, size_t errsz);
    /* The termination lifecycle hook and its completion; NULL where the provider has none (the
     * instance drains itself: docs/autoscale.md, "Guards"). out->name "" when the group has
     * none. */
    int (*termination_hook)(struct provider *p, struct prov_hook *out, char *err, size_t errsz);
    int (*complete_termination)(struct provider *p, const char *hook, const char *id, char *err,
                                size_t errsz);
    /* Holds a waiting termination for another heartbeat timeout; NULL where there is no hook. */
    int (*heartbeat_termination)(struct provider *p, const char *hook, const char *id, char *err,
                                 size_t errsz);
    int (*refresh)(struct provider *p, char *err, size_t errsz);
    void (*close)(struct provider *p);
    void *impl;
};

/* Opens one provider from cfg and the environment (cfg holds what the provider requires:
 * azure: subscription and resource_group; gcp: project and region); -1 with err when no
 * credentials can be found. close() is to be called after a 0 only. */
int aws_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz);
int azure_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz);
int gcp_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz);

void prov_group_free(struct prov_group *g);

/* ---- the answers' reading, pure, exposed for the unit tests ---- */

/* The lifecycle state (as autoscale.h reads it) of a scale set VM's provisioningState, and of a
 * managed instance's currentAction. */
const char *azure_lifecycle(const char *provisioning_state);
const char *gcp_lifecycle(const char *current_action);

/* Appends the VMs of one page of a scale set's VM list (its "value") to g (whose instances hold
 * PROV_MAX_INSTANCES). -1 with err when the page is not one or g is full. */
int azure_parse_vms(const json_t *page, struct prov_group *g, char *err, size_t errsz);

/* The room for a managed instance's URL. */
#define GCP_URL_SIZE 512

/* Appends the instances of one page of listManagedInstances to g, and each one's URL to urls at
 * the same index. Same returns. */
int gcp_parse_managed(const json_t *page, struct prov_group *g, char (*urls)[GCP_URL_SIZE],
                      char *err, size_t errsz);

#endif
