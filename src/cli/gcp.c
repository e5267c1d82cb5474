/*
 * The GCP provider (provider.h; docs/autoscale.md, "GCP"): a regional
 * managed instance group through Compute Engine's REST API, with a bearer
 * token from GOOGLE_OAUTH_ACCESS_TOKEN or the instance's service account
 * (the metadata server, DAVIT_GCP_METADATA_ENDPOINT overriding
 * http://metadata.google.internal).
 */
#include "cli/cloud_http.h"
#include "cli/provider.h"
#include "cli/rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GCP_COMPUTE    "https://compute.googleapis.com"
#define GCP_METADATA   "http://metadata.google.internal"
#define GCP_TOKEN_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define GCP_PAGES_MAX  64

struct gcp {
    char base[1536]; /* ENDPOINT/compute/v1/projects/P/regions/R/instanceGroupManagers/G */
    char endpoint[512];
    char metadata[256];
    char ca_file[512];
    char token[REST_TOKEN_SIZE];
    int min, max;
    /* The instances' URLs from the last describe, by name (deleteInstances takes URLs). */
    char (*urls)[GCP_URL_SIZE];
    char (*names)[AS_ID_SIZE];
    size_t n;
};

const char *gcp_lifecycle(const char *a)
{
    static const char *const pending[] = {
        "CREATING", "CREATING_WITHOUT_RETRIES", "RECREATING", "VERIFYING", "STARTING", "RESUMING"};
    if (!a || strcmp(a, "NONE") == 0 || strcmp(a, "REFRESHING") == 0 ||
        strcmp(a, "RESTARTING") == 0)
        return "InService";
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
        if (strcmp(a, pending[i]) == 0)
            return "Pending";
    if (strcmp(a, "DELETING") == 0 || strcmp(a, "ABANDONING") == 0)
        return "Terminating";
    return "Standby"; /* STOPPING, SUSPENDING: not capacity */
}

int gcp_parse_managed(const json_t *page, struct prov_group *g, char (*urls)[GCP_URL_SIZE],
                      char *err, size_t errsz)
{
    json_t *list = json_object_get(page, "managedInstances");
    size_t i;
    json_t *mi;
    if (list && !json_is_array(list)) {
        snprintf(err, errsz, "managedInstances is not an array");
        return -1;
    }
    json_array_foreach(list, i, mi)
    {
        const char *url = json_string_value(json_object_get(mi, "instance"));
        const char *slash = url ? strrchr(url, '/') : NULL;
        if (!slash || !slash[1] || strlen(slash + 1) >= AS_ID_SIZE || strlen(url) >= GCP_URL_SIZE) {
            snprintf(err, errsz, "a managed instance has no usable instance URL");
            return -1;
        }
        if (g->n_instances >= PROV_MAX_INSTANCES) {
            snprintf(err, errsz, "more than %d instances", PROV_MAX_INSTANCES);
            return -1;
        }
        cloud_http_copy_clean(urls[g->n_instances], GCP_URL_SIZE, url);
        struct as_instance *in = &g->instances[g->n_instances++];
        memset(in, 0, sizeof(*in));
        cloud_http_copy_clean(in->id, sizeof(in->id), slash + 1);
        snprintf(in->lifecycle, sizeof(in->lifecycle), "%s",
                 gcp_lifecycle(json_string_value(json_object_get(mi, "currentAction"))));
        in->launch_ms = -1; /* listManagedInstances has no creation time: launch_times */
    }
    return 0;
}

static int gcp_describe(struct provider *p, struct prov_group *out, char *err, size_t errsz)
{
    struct gcp *c = p->impl;
    char url[2048], perr[256];
    json_t *j = NULL;
    memset(out, 0, sizeof(*out));
    c->n = 0;
    int rc = rest_call("GCP get instance group manager", c->token, c->ca_file, "GET", c->base, NULL,
                       &j, err, errsz);
    if (rc < 0)
        return rc;
    json_t *size = json_object_get(j, "targetSize");
    out->min = c->min;
    out->max = c->max;
    out->desired = json_is_integer(size) ? (int)json_integer_value(size) : -1;
    json_decref(j);
    j = NULL;
    rc = -1;
    if (out->desired < 0) {
        snprintf(err, errsz, "GCP get instance group manager: the answer has no targetSize");
        goto out;
    }
    if (!(out->instances = calloc(PROV_MAX_INSTANCES, sizeof(*out->instances)))) {
        rest_oom(err, errsz);
        goto out;
    }
    char token[512] = "";
    for (int page = 0; page < GCP_PAGES_MAX; page++) {
        snprintf(url, sizeof(url), "%s/listManagedInstances%s%s", c->base,
                 token[0] ? "?pageToken=" : "", token);
        if ((rc = rest_call("GCP list managed instances", c->token, c->ca_file, "POST", url, NULL,
                            &j, err, errsz)) < 0)
            goto out;
        rc = -1;
        if (gcp_parse_managed(j, out, c->urls, perr, sizeof(perr)) < 0) {
            snprintf(err, errsz, "GCP list managed instances: %s", perr);
            goto out;
        }
        const char *next = json_string_value(json_object_get(j, "nextPageToken"));
        if (!next || !*next) {
            rc = 0;
            break;
        }
        if (rest_escape(next, token, sizeof(token)) < 0) {
            snprintf(err, errsz, "GCP list managed instances: nextPageToken too long");
            goto out;
        }
        json_decref(j);
        j = NULL;
    }
    if (rc < 0) {
        snprintf(err, errsz, "GCP list managed instances: more than %d pages", GCP_PAGES_MAX);
        goto out;
    }
    for (size_t i = 0; i < out->n_instances; i++)
        memcpy(c->names[i], out->instances[i].id, AS_ID_SIZE);
    c->n = out->n_instances;
    if (out->desired < out->min || out->desired > out->max) {
        snprintf(err, errsz, "GCP instance group: target size %d outside --min %d and --max %d",
                 out->desired, out->min, out->max);
        rc = -1;
    }
out:
    json_decref(j);
    if (rc < 0) {
        prov_group_free(out);
        c->n = 0;
    }
    return rc;
}

static const char *url_of(const struct gcp *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->urls[i];
    return NULL;
}

/* The instance's own URL under the configured endpoint: the token goes nowhere else. */
static int instance_url(const struct gcp *c, const char *name, char *url, size_t size)
{
    const char *full = url_of(c, name);
    const char *rel = full ? strstr(full, "/compute/v1/projects/") : NULL;
    if (!rel)
        return -1;
    snprintf(url, size, "%s%s", c->endpoint, rel);
    return 0;
}

/* One GET per instance wanted (listManagedInstances has no creation time). An instance with an
 * action under way (CREATING, RECREATING, VERIFYING…: "Pending") is left with none: a recreated
 * instance keeps its name and, until it is up again, its old creationTimestamp, so it would look
 * like a stray again the next tick and be recreated twice (docs/autoscale.md, "Asynchronous
 * operations"). GCP retries a failing creation itself. */
static int gcp_launch_times(struct provider *p, struct prov_group *g, const int *want, char *err,
                            size_t errsz)
{
    struct gcp *c = p->impl;
    char url[2048];
    for (size_t i = 0; i < g->n_instances; i++) {
        json_t *j = NULL;
        if (!want[i] || g->instances[i].launch_ms >= 0 ||
            strcmp(g->instances[i].lifecycle, "Pending") == 0 ||
            instance_url(c, g->instances[i].id, url, sizeof(url)) < 0)
            continue;
        int rc =
            rest_call("GCP get instance", c->token, c->ca_file, "GET", url, NULL, &j, err, errsz);
        if (rc < 0)
            return rc;
        const char *t = json_string_value(json_object_get(j, "creationTimestamp"));
        g->instances[i].launch_ms = t ? cloud_http_time(t) : -1;
        json_decref(j);
    }
    return 0;
}

static int gcp_set_desired(struct provider *p, int desired, char *err, size_t errsz)
{
    struct gcp *c = p->impl;
    char url[2048];
    snprintf(url, sizeof(url), "%s/resize?size=%d", c->base, desired);
    return rest_call("GCP resize instance group", c->token, c->ca_file, "POST", url, NULL, NULL,
                     err, errsz);
}

/* deleteInstances lowers the target size; recreateInstances replaces the instance. */
static int gcp_terminate(struct provider *p, const char *id, int decrement, char *err, size_t errsz)
{
    struct gcp *c = p->impl;
    char url[2048];
    const char *inst = url_of(c, id);
    if (!inst) {
        snprintf(err, errsz, "GCP instance group: no instance %s", id);
        return -1;
    }
    snprintf(url, sizeof(url), "%s/%s", c->base,
             decrement ? "deleteInstances" : "recreateInstances");
    json_t *body =
        decrement ? json_pack("{s:[s],s:b}", "instances", inst, "skipInstancesOnValidationError", 0)
                  : json_pack("{s:[s]}", "instances", inst);
    if (!body)
        return rest_oom(err, errsz);
    int rc = rest_call(decrement ? "GCP delete instance" : "GCP recreate instance", c->token,
                       c->ca_file, "POST", url, body, NULL, err, errsz);
    json_decref(body);
    return rc;
}

static int gcp_token(struct gcp *c, char *err, size_t errsz)
{
    char url[512];
    snprintf(url, sizeof(url), "%s" GCP_TOKEN_PATH, c->metadata);
    int rc = rest_metadata_token(url, "Metadata-Flavor: Google", c->token, err, errsz);
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errsz,
                 "no GCP credentials: GOOGLE_OAUTH_ACCESS_TOKEN is not set and %s (has the "
                 "instance a service account?)",
                 why);
    }
    return rc;
}

static int gcp_refresh(struct provider *p, char *err, size_t errsz)
{
    return p->renewable ? gcp_token(p->impl, err, errsz) : 0;
}

static void gcp_close(struct provider *p)
{
    struct gcp *c = p->impl;
    if (c) {
        explicit_bzero(c->token, sizeof(c->token));
        free(c->urls);
        free(c->names);
        free(c);
    }
    p->impl = NULL;
}

int gcp_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz)
{
    char project[256], region[128], name[256];
    memset(p, 0, sizeof(*p));
    if (rest_escape(cfg->project, project, sizeof(project)) < 0 ||
        rest_escape(cfg->region, region, sizeof(region)) < 0 ||
        rest_escape(cfg->group, name, sizeof(name)) < 0) {
        snprintf(err, errsz, "--provider gcp: a project, region or group name too long");
        return -1;
    }
    struct gcp *c = calloc(1, sizeof(*c));
    if (!c || !(c->urls = calloc(PROV_MAX_INSTANCES, sizeof(*c->urls))) ||
        !(c->names = calloc(PROV_MAX_INSTANCES, sizeof(*c->names)))) {
        if (c) {
            free(c->urls);
            free(c);
        }
        return rest_oom(err, errsz);
    }
    snprintf(c->endpoint, sizeof(c->endpoint), "%s",
             cfg->endpoint && *cfg->endpoint ? cfg->endpoint : GCP_COMPUTE);
    rest_trim_slash(c->endpoint);
    snprintf(c->base, sizeof(c->base),
             "%s/compute/v1/projects/%s/regions/%s/instanceGroupManagers/%s", c->endpoint, project,
             region, name);
    const char *md = getenv("DAVIT_GCP_METADATA_ENDPOINT");
    snprintf(c->metadata, sizeof(c->metadata), "%s", md && *md ? md : GCP_METADATA);
    rest_trim_slash(c->metadata);
    snprintf(c->ca_file, sizeof(c->ca_file), "%s", cfg->ca_file ? cfg->ca_file : "");
    c->min = cfg->min;
    c->max = cfg->max;
    p->impl = c;
    p->name = "GCP";
    p->describe = gcp_describe;
    p->launch_times = gcp_launch_times;
    p->set_desired = gcp_set_desired;
    p->terminate = gcp_terminate;
    p->refresh = gcp_refresh;
    p->close = gcp_close;
    const char *tok = getenv("GOOGLE_OAUTH_ACCESS_TOKEN");
    if (tok && *tok) {
        if (strlen(tok) >= sizeof(c->token)) {
            snprintf(err, errsz, "GOOGLE_OAUTH_ACCESS_TOKEN is too long");
            gcp_close(p);
            return -1;
        }
        memcpy(c->token, tok, strlen(tok) + 1);
        return 0;
    }
    p->renewable = 1;
    if (gcp_token(c, err, errsz) < 0) {
        gcp_close(p);
        return -1;
    }
    return 0;
}
