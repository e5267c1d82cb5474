/* AWS calls over libcurl's SigV4, answers read with expat (aws.h). */
#include "cli/aws.h"

#include "cli/cloud_http.h"

#include "common/dbuf.h"

#include <curl/curl.h>
#include <expat.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AWS_RESPONSE_CAP (16 * 1024 * 1024)
#define ASG_VERSION      "2011-01-01"
#define EC2_VERSION      "2016-11-15"
#define IMDS_DEFAULT     "http://169.254.169.254"
#define XML_PATH_MAX     1024
#define XML_TEXT_MAX     4096
#define IMDS_TOKEN_TTL   "21600"

/* ---- XML ---- */

struct walk {
    char path[XML_PATH_MAX];
    size_t len;
    char text[XML_TEXT_MAX];
    size_t tlen;
    int overflow; /* deeper than path holds: the elements below are not reported */
    void (*fn)(void *ud, const char *path, const char *text);
    void *ud;
};

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    struct walk *w = ud;
    const char *local = strchr(name, ':') ? strchr(name, ':') + 1 : name;
    size_t n = strlen(local);
    w->tlen = 0;
    if (w->overflow || w->len + n + 2 > sizeof(w->path)) {
        w->overflow++;
        return;
    }
    if (w->len)
        w->path[w->len++] = '/';
    memcpy(w->path + w->len, local, n + 1);
    w->len += n;
    w->fn(w->ud, w->path, NULL);
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct walk *w = ud;
    if (w->overflow) {
        w->overflow--;
        return;
    }
    w->text[w->tlen] = '\0';
    w->fn(w->ud, w->path, w->text);
    w->tlen = 0;
    char *slash = strrchr(w->path, '/');
    w->len = slash ? (size_t)(slash - w->path) : 0;
    w->path[w->len] = '\0';
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    struct walk *w = ud;
    size_t room = sizeof(w->text) - 1 - w->tlen;
    size_t n = (size_t)len < room ? (size_t)len : room;
    memcpy(w->text + w->tlen, s, n);
    w->tlen += n;
}

int aws_xml_walk(const char *xml, size_t len,
                 void (*fn)(void *ud, const char *path, const char *text), void *ud, char *err,
                 size_t errsz)
{
    struct walk *w = calloc(1, sizeof(*w));
    XML_Parser p = XML_ParserCreate(NULL);
    int rc = -1;
    if (!w || !p) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    w->fn = fn;
    w->ud = ud;
    XML_SetUserData(p, w);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    if (len > (size_t)INT32_MAX || XML_Parse(p, xml, (int)len, 1) != XML_STATUS_OK) {
        snprintf(err, errsz, "the answer is not well-formed XML (line %lu: %s)",
                 (unsigned long)XML_GetCurrentLineNumber(p), XML_ErrorString(XML_GetErrorCode(p)));
        goto out;
    }
    rc = 0;
out:
    if (p)
        XML_ParserFree(p);
    free(w);
    return rc;
}

/* Whether path ends with "/" suffix (or is suffix). */
static int ends(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    return n >= m && strcmp(path + n - m, suffix) == 0 && (n == m || path[n - m - 1] == '/');
}

struct aws_err {
    char code[96], message[256];
};

static void err_cb(void *ud, const char *path, const char *text)
{
    struct aws_err *e = ud;
    if (!text)
        return;
    if (ends(path, "Error/Code"))
        cloud_http_copy_clean(e->code, sizeof(e->code), text);
    else if (ends(path, "Error/Message"))
        cloud_http_copy_clean(e->message, sizeof(e->message), text);
}

/* Auth errors: the credentials, not the request. */
static int is_auth_error(const char *code)
{
    static const char *const codes[] = {"ExpiredToken",
                                        "ExpiredTokenException",
                                        "RequestExpired",
                                        "InvalidClientTokenId",
                                        "SignatureDoesNotMatch",
                                        "AuthFailure",
                                        "UnrecognizedClientException",
                                        "AccessDenied",
                                        "UnauthorizedOperation"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

/* ---- HTTP ---- */

/*
 * One Query API call: POSTs "Action=action&Version=version" and params (already
 * "k=v&k=v" encoded, or "") to service, signed. On 2xx, resp holds the answer.
 */
static int query(struct aws *a, const char *service, const char *action, const char *params,
                 struct dbuf *resp, char *err, size_t errsz)
{
    const char *version = strcmp(service, "ec2") == 0 ? EC2_VERSION : ASG_VERSION;
    char url[600], sigv4[160], token_hdr[sizeof(a->session_token) + 32];
    struct curl_slist *hdrs = NULL;
    char *body = NULL;
    int rc = -1;
    long status = 0;
    if (a->endpoint[0])
        snprintf(url, sizeof(url), "%s", a->endpoint);
    else
        snprintf(url, sizeof(url), "https://%s.%s.amazonaws.com/", service, a->region);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", a->region, service);
    if (asprintf(&body, "Action=%s&Version=%s%s%s", action, version, params[0] ? "&" : "", params) <
        0) {
        body = NULL;
        snprintf(err, errsz, "AWS %s: out of memory", action);
        return -1;
    }
    CURL *curl = cloud_http_easy(url, a->ca_file, 10L, 60L, resp);
    if (!curl) {
        snprintf(err, errsz, "AWS %s: out of memory", action);
        goto out;
    }
    hdrs =
        curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
    if (a->session_token[0]) {
        snprintf(token_hdr, sizeof(token_hdr), "X-Amz-Security-Token: %s", a->session_token);
        hdrs = curl_slist_append(hdrs, token_hdr);
        explicit_bzero(token_hdr, sizeof(token_hdr));
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(curl, CURLOPT_USERNAME, a->access_key);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, a->secret_key);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(err, errsz, "AWS %s %s: %s", service, action, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        rc = 0;
        goto out;
    }
    struct aws_err e = {"", ""};
    char xerr[128];
    if (aws_xml_walk(resp->data ? resp->data : "", resp->len, err_cb, &e, xerr, sizeof(xerr)) < 0 ||
        !e.code[0])
        snprintf(err, errsz, "AWS %s %s: HTTP %ld with no error code", service, action, status);
    else
        snprintf(err, errsz, "AWS %s %s: %s: %s (HTTP %ld)", service, action, e.code, e.message,
                 status);
    rc = e.code[0] && is_auth_error(e.code) ? AWS_EAUTH : -1;
out:
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    free(body);
    return rc;
}

/* A value percent-encoded for a form body, appended as "&key=value" (key is ours). */
static int param(struct dbuf *b, const char *key, const char *value)
{
    char *e = curl_easy_escape(NULL, value, 0);
    int rc = e && dbuf_addstr(b, b->len ? "&" : "") == 0 && dbuf_addstr(b, key) == 0 &&
                     dbuf_addch(b, '=') == 0 && dbuf_addstr(b, e) == 0
                 ? 0
                 : -1;
    curl_free(e);
    return rc;
}

/* A call whose answer is read by fn (NULL: only its success matters). */
static int call(struct aws *a, const char *service, const char *action, const struct dbuf *params,
                void (*fn)(void *ud, const char *path, const char *text), void *ud, char *err,
                size_t errsz)
{
    struct dbuf resp = DBUF_INIT(AWS_RESPONSE_CAP);
    char xerr[128];
    int rc =
        query(a, service, action, params && params->len ? dbuf_str(params) : "", &resp, err, errsz);
    if (rc == 0 && fn &&
        aws_xml_walk(resp.data ? resp.data : "", resp.len, fn, ud, xerr, sizeof(xerr)) < 0) {
        snprintf(err, errsz, "AWS %s %s: %s", service, action, xerr);
        rc = -1;
    }
    dbuf_free(&resp);
    return rc;
}

/* ---- IMDSv2 and credentials ---- */

/* GET (or PUT for the token) an IMDS path into out (cap bytes, NUL-terminated). */
static int imds_get(const struct aws *a, const char *method, const char *path, const char *token,
                    char *out, size_t cap)
{
    char url[512], hdr[256];
    struct curl_slist *hdrs = NULL;
    struct dbuf resp = DBUF_INIT(64 * 1024);
    long status = 0;
    int rc = -1;
    snprintf(url, sizeof(url), "%s%s", a->imds, path);
    /* Short timeouts: off EC2 nothing answers, and the caller then says so. */
    CURL *curl = cloud_http_easy(url, NULL, 2L, 5L, &resp);
    if (!curl)
        return -1;
    if (token) {
        snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", token);
    } else {
        snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL);
    }
    hdrs = curl_slist_append(hdrs, hdr);
    explicit_bzero(hdr, sizeof(hdr));
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    if (curl_easy_perform(curl) == CURLE_OK &&
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200 &&
        resp.len < cap) {
        memcpy(out, resp.data ? resp.data : "", resp.len);
        out[resp.len] = '\0';
        rc = 0;
    }
    if (resp.data)
        explicit_bzero(resp.data, resp.len);
    dbuf_free(&resp);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    return rc;
}

/* The role's credentials (and, when region is not set yet, the region) from IMDSv2. */
static int imds_credentials(struct aws *a, char *err, size_t errsz)
{
    char token[256], role[256], path[512];
    char *doc = malloc(16384);
    json_t *j = NULL;
    int rc = -1;
    if (!doc) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    if (imds_get(a, "PUT", "/latest/api/token", NULL, token, sizeof(token)) < 0) {
        snprintf(err, errsz,
                 "no AWS credentials: AWS_ACCESS_KEY_ID is not set and the instance metadata "
                 "service (%s) gave no IMDSv2 token",
                 a->imds);
        goto out;
    }
    if (imds_get(a, "GET", "/latest/meta-data/iam/security-credentials/", token, role,
                 sizeof(role)) < 0 ||
        !role[0]) {
        snprintf(err, errsz, "no AWS credentials: the instance has no IAM role");
        goto out;
    }
    role[strcspn(role, "\r\n")] = '\0';
    snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s", role);
    if (imds_get(a, "GET", path, token, doc, 16384) < 0 || !(j = json_loads(doc, 0, NULL))) {
        snprintf(err, errsz, "no AWS credentials: the instance role's credentials are unreadable");
        goto out;
    }
    const char *ak = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *sk = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *st = json_string_value(json_object_get(j, "Token"));
    if (!ak || !sk || !st || strlen(ak) >= sizeof(a->access_key) ||
        strlen(sk) >= sizeof(a->secret_key) || strlen(st) >= sizeof(a->session_token)) {
        snprintf(err, errsz, "no AWS credentials: the instance role's credentials are incomplete");
        goto out;
    }
    snprintf(a->access_key, sizeof(a->access_key), "%s", ak);
    snprintf(a->secret_key, sizeof(a->secret_key), "%s", sk);
    snprintf(a->session_token, sizeof(a->session_token), "%s", st);
    a->from_imds = 1;
    if (!a->region[0] && imds_get(a, "GET", "/latest/meta-data/placement/region", token, a->region,
                                  sizeof(a->region)) < 0)
        a->region[0] = '\0';
    rc = 0;
out:
    explicit_bzero(token, sizeof(token));
    explicit_bzero(doc, 16384);
    free(doc);
    if (j) {
        /* jansson keeps the strings: wipe them before they are freed. */
        const char *keys[] = {"SecretAccessKey", "Token"};
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(j, keys[i]);
            if (json_is_string(v))
                explicit_bzero((char *)json_string_value(v), json_string_length(v));
        }
        json_decref(j);
    }
    return rc;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int aws_open(struct aws *a, const char *region, const char *endpoint, char *err, size_t errsz)
{
    memset(a, 0, sizeof(*a));
    const char *r = region && *region ? region : env_nonempty("AWS_REGION");
    if (!r)
        r = env_nonempty("AWS_DEFAULT_REGION");
    if (r && strlen(r) < sizeof(a->region))
        snprintf(a->region, sizeof(a->region), "%s", r);
    if (endpoint && *endpoint)
        snprintf(a->endpoint, sizeof(a->endpoint), "%s", endpoint);
    const char *ca = env_nonempty("AWS_CA_BUNDLE");
    if (ca)
        snprintf(a->ca_file, sizeof(a->ca_file), "%s", ca);
    const char *imds = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    snprintf(a->imds, sizeof(a->imds), "%s", imds ? imds : IMDS_DEFAULT);
    size_t n = strlen(a->imds);
    if (n && a->imds[n - 1] == '/')
        a->imds[n - 1] = '\0';
    const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"), *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
    const char *st = env_nonempty("AWS_SESSION_TOKEN");
    if (ak || sk) {
        if (!ak || !sk) {
            snprintf(err, errsz, "%s is set but %s is not",
                     ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                     ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
            return -1;
        }
        if (strlen(ak) >= sizeof(a->access_key) || strlen(sk) >= sizeof(a->secret_key) ||
            (st && strlen(st) >= sizeof(a->session_token))) {
            snprintf(err, errsz, "AWS credentials: a variable is too long");
            return -1;
        }
        snprintf(a->access_key, sizeof(a->access_key), "%s", ak);
        snprintf(a->secret_key, sizeof(a->secret_key), "%s", sk);
        snprintf(a->session_token, sizeof(a->session_token), "%s", st ? st : "");
    } else if (imds_credentials(a, err, errsz) < 0) {
        return -1;
    }
    if (!a->region[0]) {
        snprintf(err, errsz, "no AWS region: give --region or set AWS_REGION");
        aws_close(a);
        return -1;
    }
    return 0;
}

int aws_refresh(struct aws *a, char *err, size_t errsz)
{
    if (!a->from_imds)
        return 0;
    return imds_credentials(a, err, errsz);
}

void aws_close(struct aws *a)
{
    explicit_bzero(a->access_key, sizeof(a->access_key));
    explicit_bzero(a->secret_key, sizeof(a->secret_key));
    explicit_bzero(a->session_token, sizeof(a->session_token));
}

/* ---- the actions ---- */

struct group_read {
    struct prov_group *g;
    const char *name;
    int groups, in_group, cap_hit;
    char group_name[256];
};

static void group_cb(void *ud, const char *path, const char *text)
{
    struct group_read *r = ud;
    struct prov_group *g = r->g;
    if (!text) {
        if (ends(path, "AutoScalingGroups/member"))
            r->groups++;
        if (ends(path, "AutoScalingGroups/member/Instances/member")) {
            if (g->n_instances >= AWS_MAX_INSTANCES) {
                r->cap_hit = 1;
                return;
            }
            struct as_instance *in = &g->instances[g->n_instances++];
            memset(in, 0, sizeof(*in));
            in->launch_ms = -1;
        }
        return;
    }
    struct as_instance *in = g->n_instances ? &g->instances[g->n_instances - 1] : NULL;
    if (ends(path, "AutoScalingGroups/member/AutoScalingGroupName"))
        snprintf(r->group_name, sizeof(r->group_name), "%s", text);
    else if (ends(path, "AutoScalingGroups/member/MinSize"))
        g->min = atoi(text);
    else if (ends(path, "AutoScalingGroups/member/MaxSize"))
        g->max = atoi(text);
    else if (ends(path, "AutoScalingGroups/member/DesiredCapacity"))
        g->desired = atoi(text);
    else if (in && !r->cap_hit && ends(path, "Instances/member/InstanceId"))
        cloud_http_copy_clean(in->id, sizeof(in->id), text);
    else if (in && !r->cap_hit && ends(path, "Instances/member/LifecycleState"))
        cloud_http_copy_clean(in->lifecycle, sizeof(in->lifecycle), text);
}

int aws_describe_group(struct aws *a, const char *group, struct prov_group *out, char *err,
                       size_t errsz)
{
    memset(out, 0, sizeof(*out));
    struct dbuf p = DBUF_INIT(4096);
    struct group_read r = {.g = out, .name = group};
    int rc = -1;
    out->instances = calloc(AWS_MAX_INSTANCES, sizeof(*out->instances));
    if (!out->instances || param(&p, "AutoScalingGroupNames.member.1", group) < 0) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    rc = call(a, "autoscaling", "DescribeAutoScalingGroups", &p, group_cb, &r, err, errsz);
    if (rc < 0)
        goto out;
    rc = -1;
    if (r.groups != 1 || strcmp(r.group_name, group) != 0)
        snprintf(err, errsz, "AWS has no Auto Scaling group %s in %s", group, a->region);
    else if (r.cap_hit)
        snprintf(err, errsz, "Auto Scaling group %s: more than %d instances", group,
                 AWS_MAX_INSTANCES);
    else if (out->min < 0 || out->max < out->min || out->desired < out->min ||
             out->desired > out->max)
        snprintf(err, errsz, "Auto Scaling group %s: min %d, max %d, desired %d do not agree",
                 group, out->min, out->max, out->desired);
    else
        rc = 0;
out:
    dbuf_free(&p);
    if (rc < 0)
        prov_group_free(out);
    return rc;
}

struct hook_read {
    struct prov_hook cur, *out;
    char transition[128];
};

static void hook_cb(void *ud, const char *path, const char *text)
{
    struct hook_read *r = ud;
    if (!text) {
        if (ends(path, "LifecycleHooks/member")) {
            memset(&r->cur, 0, sizeof(r->cur));
            r->transition[0] = '\0';
        }
        return;
    }
    if (ends(path, "LifecycleHooks/member/LifecycleHookName"))
        cloud_http_copy_clean(r->cur.name, sizeof(r->cur.name), text);
    else if (ends(path, "LifecycleHooks/member/LifecycleTransition"))
        cloud_http_copy_clean(r->transition, sizeof(r->transition), text);
    else if (ends(path, "LifecycleHooks/member/HeartbeatTimeout"))
        r->cur.heartbeat_timeout_ms = atoll(text) * 1000;
    else if (ends(path, "LifecycleHooks/member") &&
             strcmp(r->transition, "autoscaling:EC2_INSTANCE_TERMINATING") == 0)
        *r->out = r->cur;
}

int aws_termination_hook(struct aws *a, const char *group, struct prov_hook *out, char *err,
                         size_t errsz)
{
    memset(out, 0, sizeof(*out));
    struct dbuf p = DBUF_INIT(4096);
    struct hook_read r = {.out = out};
    int rc = param(&p, "AutoScalingGroupName", group);
    if (rc < 0)
        snprintf(err, errsz, "out of memory");
    else
        rc = call(a, "autoscaling", "DescribeLifecycleHooks", &p, hook_cb, &r, err, errsz);
    dbuf_free(&p);
    return rc;
}

struct launch_read {
    struct prov_group *g;
    char id[AS_ID_SIZE];
};

static void launch_cb(void *ud, const char *path, const char *text)
{
    struct launch_read *r = ud;
    if (!text) {
        if (ends(path, "instancesSet/item"))
            r->id[0] = '\0';
        return;
    }
    if (ends(path, "instancesSet/item/instanceId")) {
        cloud_http_copy_clean(r->id, sizeof(r->id), text);
    } else if (ends(path, "instancesSet/item/launchTime")) {
        for (size_t i = 0; i < r->g->n_instances; i++)
            if (strcmp(r->g->instances[i].id, r->id) == 0)
                r->g->instances[i].launch_ms = cloud_http_time(text);
    }
}

/* DescribeInstances takes at most 1000 instance ids a call. */
#define DESCRIBE_IDS_MAX 1000

int aws_launch_times(struct aws *a, struct prov_group *g, const int *want, char *err, size_t errsz)
{
    struct launch_read r = {.g = g};
    char key[48];
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < g->n_instances) {
        struct dbuf p = DBUF_INIT(1024 * 1024);
        int n = 0;
        for (; i < g->n_instances && n < DESCRIBE_IDS_MAX && rc == 0; i++) {
            if (!want[i] || g->instances[i].launch_ms >= 0)
                continue;
            snprintf(key, sizeof(key), "InstanceId.%d", ++n);
            rc = param(&p, key, g->instances[i].id);
        }
        if (rc < 0)
            snprintf(err, errsz, "out of memory");
        else if (n > 0)
            rc = call(a, "ec2", "DescribeInstances", &p, launch_cb, &r, err, errsz);
        dbuf_free(&p);
    }
    return rc;
}

int aws_set_desired(struct aws *a, const char *group, int desired, char *err, size_t errsz)
{
    struct dbuf p = DBUF_INIT(4096);
    char n[24];
    snprintf(n, sizeof(n), "%d", desired);
    int rc = param(&p, "AutoScalingGroupName", group) < 0 || param(&p, "DesiredCapacity", n) < 0 ||
                     param(&p, "HonorCooldown", "false") < 0
                 ? -1
                 : 0;
    if (rc < 0)
        snprintf(err, errsz, "out of memory");
    else
        rc = call(a, "autoscaling", "SetDesiredCapacity", &p, NULL, NULL, err, errsz);
    dbuf_free(&p);
    return rc;
}

int aws_terminate(struct aws *a, const char *instance_id, int decrement, char *err, size_t errsz)
{
    struct dbuf p = DBUF_INIT(4096);
    int rc = param(&p, "InstanceId", instance_id) < 0 ||
                     param(&p, "ShouldDecrementDesiredCapacity", decrement ? "true" : "false") < 0
                 ? -1
                 : 0;
    if (rc < 0)
        snprintf(err, errsz, "out of memory");
    else
        rc = call(a, "autoscaling", "TerminateInstanceInAutoScalingGroup", &p, NULL, NULL, err,
                  errsz);
    dbuf_free(&p);
    return rc;
}

/* CompleteLifecycleAction (CONTINUE) when complete, else RecordLifecycleActionHeartbeat: the
 * same parameters but the result. */
static int lifecycle_call(struct aws *a, const char *group, const char *hook,
                          const char *instance_id, int complete, char *err, size_t errsz)
{
    struct dbuf p = DBUF_INIT(4096);
    int rc = param(&p, "AutoScalingGroupName", group) < 0 ||
                     param(&p, "LifecycleHookName", hook) < 0 ||
                     (complete && param(&p, "LifecycleActionResult", "CONTINUE") < 0) ||
                     param(&p, "InstanceId", instance_id) < 0
                 ? -1
                 : 0;
    if (rc < 0)
        snprintf(err, errsz, "out of memory");
    else if (complete) /* each action named whole: tests/deploy checks the IAM policy by them */
        rc = call(a, "autoscaling", "CompleteLifecycleAction", &p, NULL, NULL, err, errsz);
    else
        rc = call(a, "autoscaling", "RecordLifecycleActionHeartbeat", &p, NULL, NULL, err, errsz);
    dbuf_free(&p);
    return rc;
}

int aws_complete_lifecycle(struct aws *a, const char *group, const char *hook,
                           const char *instance_id, char *err, size_t errsz)
{
    return lifecycle_call(a, group, hook, instance_id, 1, err, errsz);
}

int aws_heartbeat_lifecycle(struct aws *a, const char *group, const char *hook,
                            const char *instance_id, char *err, size_t errsz)
{
    return lifecycle_call(a, group, hook, instance_id, 0, err, errsz);
}

/* ---- the provider (provider.h) ---- */

struct aws_provider {
    struct aws a;
    char group[256];
};

#define AWS_OF(p)   (&((struct aws_provider *)(p)->impl)->a)
#define GROUP_OF(p) (((struct aws_provider *)(p)->impl)->group)

static int p_describe(struct provider *p, struct prov_group *out, char *err, size_t errsz)
{
    return aws_describe_group(AWS_OF(p), GROUP_OF(p), out, err, errsz);
}

static int p_launch_times(struct provider *p, struct prov_group *g, const int *want, char *err,
                          size_t errsz)
{
    return aws_launch_times(AWS_OF(p), g, want, err, errsz);
}

static int p_set_desired(struct provider *p, int desired, char *err, size_t errsz)
{
    return aws_set_desired(AWS_OF(p), GROUP_OF(p), desired, err, errsz);
}

static int p_terminate(struct provider *p, const char *id, int decrement, char *err, size_t errsz)
{
    return aws_terminate(AWS_OF(p), id, decrement, err, errsz);
}

static int p_hook(struct provider *p, struct prov_hook *out, char *err, size_t errsz)
{
    return aws_termination_hook(AWS_OF(p), GROUP_OF(p), out, err, errsz);
}

static int p_complete(struct provider *p, const char *hook, const char *id, char *err, size_t errsz)
{
    return aws_complete_lifecycle(AWS_OF(p), GROUP_OF(p), hook, id, err, errsz);
}

static int p_heartbeat(struct provider *p, const char *hook, const char *id, char *err,
                       size_t errsz)
{
    return aws_heartbeat_lifecycle(AWS_OF(p), GROUP_OF(p), hook, id, err, errsz);
}

static int p_refresh(struct provider *p, char *err, size_t errsz)
{
    return aws_refresh(AWS_OF(p), err, errsz);
}

static void p_close(struct provider *p)
{
    if (p->impl) {
        aws_close(AWS_OF(p));
        free(p->impl);
    }
    p->impl = NULL;
}

int aws_provider_open(struct provider *p, const struct prov_config *cfg, char *err, size_t errsz)
{
    memset(p, 0, sizeof(*p));
    struct aws_provider *ap = calloc(1, sizeof(*ap));
    if (!ap) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    if (strlen(cfg->group) >= sizeof(ap->group)) {
        snprintf(err, errsz, "--group: longer than %zu bytes", sizeof(ap->group) - 1);
        free(ap);
        return -1;
    }
    snprintf(ap->group, sizeof(ap->group), "%s", cfg->group);
    if (aws_open(&ap->a, cfg->region, cfg->endpoint, err, errsz) < 0) {
        free(ap);
        return -1;
    }
    if (cfg->ca_file && *cfg->ca_file)
        snprintf(ap->a.ca_file, sizeof(ap->a.ca_file), "%s", cfg->ca_file);
    p->impl = ap;
    p->name = "AWS";
    p->renewable = ap->a.from_imds;
    p->describe = p_describe;
    p->launch_times = p_launch_times;
    p->set_desired = p_set_desired;
    p->terminate = p_terminate;
    p->termination_hook = p_hook;
    p->complete_termination = p_complete;
    p->heartbeat_termination = p_heartbeat;
    p->refresh = p_refresh;
    p->close = p_close;
    return 0;
}
