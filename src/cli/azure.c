/*
 * The Azure provider (provider.h; docs/autoscale.md): a Virtual Machine
 * Scale Set through Azure Resource Manager's REST API, with a bearer token
 * from AZURE_ACCESS_TOKEN, a service principal's client credentials
 * (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET; AZURE_AUTHORITY_HOST
 * overriding https://login.microsoftonline.com, as in Azure's SDKs), or the
 * instance's managed identity (IMDS, DAVIT_AZURE_IMDS_ENDPOINT overriding
 * http://169.254.169.254; AZURE_CLIENT_ID without a secret choosing a
 * user-assigned identity, as Azure's SDKs read it).
 */
#include "cli/cloud_http.h"
#include "cli/provider.h"
#include "cli/rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AZURE_API        "2024-03-01"
#define AZURE_MGMT       "https://management.azure.com"
#define AZURE_IMDS       "http://169.254.169.254"
#define AZURE_TOKEN_PATH "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
#define AZURE_RESOURCE   "https%3A%2F%2Fmanagement.azure.com%2F"
#define AZURE_SCOPE      "https://management.azure.com/.default"
#define AZURE_AUTHORITY  "https://login.microsoftonline.com"
/* Pages of the VM list followed, at most. */
#define AZURE_PAGES_MAX 64
/* The room for a URL: the scale set's, a nextLink, an operation's. */
#define AZURE_URL_SIZE 2048
/* How long a replaced stray's deletion is awaited, at most, and the polls' pauses. */
#define AZURE_AWAIT_MS    300000
#define AZURE_POLL_MIN_MS 250
#define AZURE_POLL_MAX_MS 5000

struct azure {
    /* ENDPOINT/subscriptions/S/resourceGroups/R/providers/…/virtualMachineScaleSets/N */
    char base[1536];
    char endpoint[512];
    char imds[256];
    char ca_file[512];
    char token[REST_TOKEN_SIZE];
    /* Client credentials, when given: the token endpoint, the client id and its secret. */
    char token_url[768];
    char client_id[256];
    char client_secret[1024];
    /* A user-assigned managed identity's client id, percent-encoded, or "": IMDS's default. */
    char mi_client_id[256];
    int min, max;
    int last_desired; /* the capacity the last describe read: a replaced stray's capacity */
};

const char *azure_lifecycle(const char *s)
{
    if (!s)
        return "InService";
    if (strcmp(s, "Creating") == 0)
        return "Pending";
    if (strcmp(s, "Deleting") == 0)
        return "Terminating";
    /* Succeeded, Updating, and Failed too: a failed VM still counts in the capacity, and with
     * no worker it is a stray after --stray-after. */
    return "InService";
}

int azure_parse_vms(const json_t *page, struct prov_group *g, char *err, size_t errsz)
{
    json_t *vms = json_object_get(page, "value");
    size_t i;
    json_t *vm;
    if (!json_is_array(vms)) {
        snprintf(err, errsz, "the scale set's VM list has no value array");
        return -1;
    }
    json_array_foreach(vms, i, vm)
    {
        const char *id = json_string_value(json_object_get(vm, "instanceId"));
        json_t *props = json_object_get(vm, "properties");
        const char *created = json_string_value(json_object_get(props, "timeCreated"));
        if (!id || !*id || strlen(id) >= AS_ID_SIZE) {
            snprintf(err, errsz, "the scale set's VM list has a VM with no usable instanceId");
            return -1;
        }
        if (g->n_instances >= PROV_MAX_INSTANCES) {
            snprintf(err, errsz, "more than %d VMs", PROV_MAX_INSTANCES);
            return -1;
        }
        struct as_instance *in = &g->instances[g->n_instances++];
        memset(in, 0, sizeof(*in));
        cloud_http_copy_clean(in->id, sizeof(in->id), id);
        snprintf(in->lifecycle, sizeof(in->lifecycle), "%s",
                 azure_lifecycle(json_string_value(json_object_get(props, "provisioningState"))));
        in->launch_ms = created ? cloud_http_time(created) : -1;
    }
    return 0;
}

/* url is Azure's own absolute URL (a nextLink, an operation): only followed under the configured
 * endpoint, so that the token never goes elsewhere. */
static int under_endpoint(const struct azure *a, const char *url, size_t room)
{
    size_t n = strlen(a->endpoint);
    return strncmp(url, a->endpoint, n) == 0 && url[n] == '/' && strlen(url) < room;
}

static int azure_describe(struct provider *p, struct prov_group *out, char *err, size_t errsz)
{
    struct azure *a = p->impl;
    char url[2048];
    json_t *j = NULL;
    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "%s?api-version=" AZURE_API, a->base);
    int rc =
        rest_call("Azure get scale set", a->token, a->ca_file, "GET", url, NULL, &j, err, errsz);
    if (rc < 0)
        return rc;
    json_t *cap = json_object_get(json_object_get(j, "sku"), "capacity");
    out->min = a->min;
    out->max = a->max;
    out->desired = json_is_integer(cap) ? (int)json_integer_value(cap) : -1;
    json_decref(j);
    j = NULL;
    rc = -1;
    if (out->desired < 0) {
        snprintf(err, errsz, "Azure get scale set: the answer has no sku.capacity");
        goto out;
    }
    if (!(out->instances = calloc(PROV_MAX_INSTANCES, sizeof(*out->instances)))) {
        rest_oom(err, errsz);
        goto out;
    }
    snprintf(url, sizeof(url), "%s/virtualMachines?api-version=" AZURE_API, a->base);
    for (int page = 0; page < AZURE_PAGES_MAX; page++) {
        char perr[256];
        if ((rc = rest_call("Azure list scale set VMs", a->token, a->ca_file, "GET", url, NULL, &j,
                            err, errsz)) < 0)
            goto out;
        rc = -1;
        if (azure_parse_vms(j, out, perr, sizeof(perr)) < 0) {
            snprintf(err, errsz, "Azure list scale set VMs: %s", perr);
            goto out;
        }
        const char *next = json_string_value(json_object_get(j, "nextLink"));
        if (!next || !*next) {
            rc = 0;
            break;
        }
        if (!under_endpoint(a, next, sizeof(url))) {
            snprintf(err, errsz, "Azure list scale set VMs: nextLink outside %s", a->endpoint);
            goto out;
        }
        snprintf(url, sizeof(url), "%s", next);
        json_decref(j);
        j = NULL;
    }
    if (rc < 0)
        snprintf(err, errsz, "Azure list scale set VMs: more than %d pages", AZURE_PAGES_MAX);
    else if (out->desired < out->min || out->desired > out->max) {
        snprintf(err, errsz, "Azure scale set: capacity %d outside --min %d and --max %d",
                 out->desired, out->min, out->max);
        rc = -1;
    } else
        a->last_desired = out->desired;
out:
    json_decref(j);
    if (rc < 0)
        prov_group_free(out);
    return rc;
}

/* The VM list carries timeCreated already: nothing more to read. */
static int azure_launch_times(struct provider *p, struct prov_group *g, const int *want, char *err,
                              size_t errsz)
{
    (void)p;
    (void)g;
    (void)want;
    (void)err;
    (void)errsz;
    return 0;
}

static int azure_set_desired(struct provider *p, int desired, char *err, size_t errsz)
{
    struct azure *a = p->impl;
    char url[2048];
    snprintf(url, sizeof(url), "%s?api-version=" AZURE_API, a->base);
    json_t *body = json_pack("{s:{s:i}}", "sku", "capacity", desired);
    if (!body)
        return rest_oom(err, errsz);
    int rc = rest_call("Azure update scale set capacity", a->token, a->ca_file, "PATCH", url, body,
                       NULL, err, errsz);
    json_decref(body);
    return rc;
}

/* Waits for the long-running operation whose status URL (Azure-AsyncOperation) is op to end:
 * 0 when it Succeeded, -1 with err when it Failed, was Canceled or outlasted AZURE_AWAIT_MS. */
static int azure_await(struct azure *a, const char *what, const char *op, char *err, size_t errsz)
{
    long pause_ms = AZURE_POLL_MIN_MS, waited_ms = 0;
    if (!under_endpoint(a, op, AZURE_URL_SIZE)) {
        snprintf(err, errsz, "%s: its operation's URL is outside %s", what, a->endpoint);
        return -1;
    }
    for (;;) {
        json_t *j = NULL;
        int rc = rest_call(what, a->token, a->ca_file, "GET", op, NULL, &j, err, errsz);
        if (rc < 0)
            return rc;
        const char *st = json_string_value(json_object_get(j, "status"));
        char status[32];
        cloud_http_copy_clean(status, sizeof(status), st ? st : "");
        if (strcmp(status, "InProgress") != 0) {
            rc = strcmp(status, "Succeeded") == 0 ? 0 : -1;
            if (rc < 0) {
                char msg[256];
                json_t *e = json_object_get(j, "error");
                cloud_http_copy_clean(msg, sizeof(msg),
                                      json_string_value(json_object_get(e, "message")));
                snprintf(err, errsz, "%s: the operation ended %s%s%s", what,
                         status[0] ? status : "with no status", msg[0] ? ": " : "", msg);
            }
            json_decref(j);
            return rc;
        }
        json_decref(j);
        if (waited_ms >= AZURE_AWAIT_MS) {
            snprintf(err, errsz, "%s: still in progress after %ds", what, AZURE_AWAIT_MS / 1000);
            return -1;
        }
        struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        waited_ms += pause_ms;
        pause_ms = pause_ms * 2 > AZURE_POLL_MAX_MS ? AZURE_POLL_MAX_MS : pause_ms * 2;
    }
}

/* Deleting a scale set's VM lowers its capacity (docs/autoscale.md): to replace one instead,
 * the capacity is set back, once the deletion has ended. The deletion is asynchronous and lowers
 * the capacity when it ends: a capacity set back before then would be lowered after it, leaving
 * the group one short (docs/autoscale.md, "Asynchronous operations"). A decrementing deletion is
 * not awaited: the VM is Deleting, not live, until it has gone, and the next tick holds. */
static int azure_terminate(struct provider *p, const char *id, int decrement, char *err,
                           size_t errsz)
{
    struct azure *a = p->impl;
    char url[AZURE_URL_SIZE], op[AZURE_URL_SIZE];
    snprintf(url, sizeof(url), "%s/delete?api-version=" AZURE_API, a->base);
    json_t *body = json_pack("{s:[s]}", "instanceIds", id);
    if (!body)
        return rest_oom(err, errsz);
    int rc = rest_call_header("Azure delete scale set VM", a->token, a->ca_file, "POST", url, body,
                              NULL, "Azure-AsyncOperation", op, sizeof(op), err, errsz);
    json_decref(body);
    if (rc == 0 && !decrement && op[0])
        rc = azure_await(a, "Azure delete scale set VM", op, err, errsz);
    if (rc == 0 && !decrement)
        rc = azure_set_desired(p, a->last_desired, err, errsz);
    return rc;
}

static int azure_token(struct azure *a, char *err, size_t errsz)
{
    char url[1024];
    if (a->client_id[0]) {
        int rc = rest_client_token(a->token_url, a->client_id, a->client_secret, AZURE_SCOPE,
                                   a->ca_file, a->token, err, errsz);
        if (rc < 0) {
            char why[400];
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errsz, "no Azure credentials: client %s: %s", a->client_id, why);
        }
        return rc;
    }
    snprintf(url, sizeof(url), "%s%s%s%s%s", a->imds, AZURE_TOKEN_PATH, AZURE_RESOURCE,
             a->mi_client_id[0] ? "&client_id=" : "", a->mi_client_id);
    int rc = rest_metadata_token(url, "Metadata: true", a->token, err, errsz);
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errsz,
                 "no Azure credentials: AZURE_ACCESS_TOKEN is not set and %s (has the VM a "
                 "managed identity?)",
                 why);
    }
    return rc;
}

static int azure_refresh(struct provider *p, char *err, size_t errsz)
{
    return p->renewable ? azure_token(p->impl, err, errsz) : 0;
}

static void azure_close(struct provider *p)
{
    struct azure *a = p->impl;
    if (a) {
        explicit_bzero(a->token, sizeof(a->token));
        explicit_bzero(a->client_secret, sizeof(a->client_secret));
        free(a);
    }
    p->impl = NULL;
}

int azure_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz)
{
    char sub[256], rg[256], name[256];
    memset(p, 0, sizeof(*p));
    if (rest_escape(cfg->subscription, sub, sizeof(sub)) < 0 ||
        rest_escape(cfg->resource_group, rg, sizeof(rg)) < 0 ||
        rest_escape(cfg->group, name, sizeof(name)) < 0) {
        snprintf(err, errsz, "--provider azure: a subscription, resource group or name too long");
        return -1;
    }
    struct azure *a = calloc(1, sizeof(*a));
    if (!a)
        return rest_oom(err, errsz);
    snprintf(a->endpoint, sizeof(a->endpoint), "%s",
             cfg->endpoint && *cfg->endpoint ? cfg->endpoint : AZURE_MGMT);
    rest_trim_slash(a->endpoint);
    snprintf(a->base, sizeof(a->base),
             "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
             "virtualMachineScaleSets/%s",
             a->endpoint, sub, rg, name);
    const char *imds = getenv("DAVIT_AZURE_IMDS_ENDPOINT");
    snprintf(a->imds, sizeof(a->imds), "%s", imds && *imds ? imds : AZURE_IMDS);
    rest_trim_slash(a->imds);
    snprintf(a->ca_file, sizeof(a->ca_file), "%s", cfg->ca_file ? cfg->ca_file : "");
    a->min = cfg->min;
    a->max = cfg->max;
    p->impl = a;
    p->name = "Azure";
    p->describe = azure_describe;
    p->launch_times = azure_launch_times;
    p->set_desired = azure_set_desired;
    p->terminate = azure_terminate;
    p->refresh = azure_refresh;
    p->close = azure_close;
    const char *tok = getenv("AZURE_ACCESS_TOKEN");
    if (tok && *tok) {
        if (strlen(tok) >= sizeof(a->token)) {
            snprintf(err, errsz, "AZURE_ACCESS_TOKEN is too long");
            azure_close(p);
            return -1;
        }
        memcpy(a->token, tok, strlen(tok) + 1);
        return 0;
    }
    const char *tenant = getenv("AZURE_TENANT_ID"), *client = getenv("AZURE_CLIENT_ID");
    const char *secret = getenv("AZURE_CLIENT_SECRET"), *host = getenv("AZURE_AUTHORITY_HOST");
    char t[256];
    if (secret && *secret) {
        if (!tenant || !*tenant || !client || !*client) {
            snprintf(err, errsz, "AZURE_CLIENT_SECRET is set but %s is not",
                     !tenant || !*tenant ? "AZURE_TENANT_ID" : "AZURE_CLIENT_ID");
            azure_close(p);
            return -1;
        }
        if (rest_escape(tenant, t, sizeof(t)) < 0 || strlen(client) >= sizeof(a->client_id) ||
            strlen(secret) >= sizeof(a->client_secret)) {
            snprintf(err, errsz, "Azure client credentials: a variable is too long");
            azure_close(p);
            return -1;
        }
        snprintf(a->token_url, sizeof(a->token_url), "%s", host && *host ? host : AZURE_AUTHORITY);
        rest_trim_slash(a->token_url);
        size_t n = strlen(a->token_url);
        snprintf(a->token_url + n, sizeof(a->token_url) - n, "/%s/oauth2/v2.0/token", t);
        cloud_http_copy_clean(a->client_id, sizeof(a->client_id), client);
        memcpy(a->client_secret, secret, strlen(secret) + 1);
    } else if (client && *client &&
               rest_escape(client, a->mi_client_id, sizeof(a->mi_client_id)) < 0) {
        snprintf(err, errsz, "AZURE_CLIENT_ID is too long");
        azure_close(p);
        return -1;
    }
    p->renewable = 1;
    if (azure_token(a, err, errsz) < 0) {
        azure_close(p);
        return -1;
    }
    return 0;
}
