/* Bearer-token JSON calls for the Azure and GCP providers (rest.h). */
#include "cli/rest.h"

#include "cli/cloud_http.h"
#include "cli/provider.h"

#include "common/dbuf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REST_RESPONSE_CAP (32 * 1024 * 1024)

int rest_oom(char *err, size_t errsz)
{
    snprintf(err, errsz, "out of memory");
    return -1;
}

void rest_trim_slash(char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '/')
        s[n - 1] = '\0';
}

/* The cloud's error, from {"error": {...}}: its code (or status) and message. */
static void error_of(const char *data, size_t len, char *code, size_t csz, char *msg, size_t msz)
{
    json_t *j = json_loadb(data ? data : "", len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    if (!c)
        c = json_string_value(json_object_get(e, "status"));
    cloud_http_copy_clean(code, csz, c ? c : "");
    cloud_http_copy_clean(msg, msz, json_string_value(json_object_get(e, "message")));
    json_decref(j);
}

/* The value of the answer's header named by want->name, into want->value. */
struct header_want {
    const char *name;
    char *value;
    size_t size;
};

static size_t header_of(char *p, size_t size, size_t n, void *ud)
{
    struct header_want *w = ud;
    size_t len = size * n, k = strlen(w->name);
    if (len > k && p[k] == ':' && strncasecmp(p, w->name, k) == 0) {
        const char *v = p + k + 1;
        size_t vl = len - k - 1;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        /* A value too long for the room is dropped, not cut: a cut URL would be another one. */
        if (vl < w->size) {
            memcpy(w->value, v, vl);
            w->value[vl] = '\0';
        }
    }
    return len;
}

int rest_call(const char *what, const char *token, const char *ca_file, const char *method,
              const char *url, json_t *body, json_t **out, char *err, size_t errsz)
{
    return rest_call_header(what, token, ca_file, method, url, body, out, NULL, NULL, 0, err,
                            errsz);
}

int rest_call_header(const char *what, const char *token, const char *ca_file, const char *method,
                     const char *url, json_t *body, json_t **out, const char *header, char *value,
                     size_t vsize, char *err, size_t errsz)
{
    struct header_want want = {header, value, vsize};
    struct dbuf resp = DBUF_INIT(REST_RESPONSE_CAP);
    struct curl_slist *hdrs = NULL;
    char *auth = NULL, *text = NULL;
    long status = 0;
    int rc = -1;
    if (out)
        *out = NULL;
    if (header && vsize)
        value[0] = '\0';
    CURL *curl = cloud_http_easy(url, ca_file, 10L, 60L, &resp);
    if (curl && asprintf(&auth, "Authorization: Bearer %s", token) < 0)
        auth = NULL;
    if (!curl || !auth || (body && !(text = json_dumps(body, JSON_COMPACT)))) {
        snprintf(err, errsz, "%s: out of memory", what);
        goto out;
    }
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    if (text || strcmp(method, "GET") != 0)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text ? text : "");
    if (header && vsize) {
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_of);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &want);
    }
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(err, errsz, "%s: %s", what, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        char code[96], msg[256];
        error_of(resp.data, resp.len, code, sizeof(code), msg, sizeof(msg));
        if (code[0])
            snprintf(err, errsz, "%s: %s: %s (HTTP %ld)", what, code, msg, status);
        else
            snprintf(err, errsz, "%s: HTTP %ld with no error code", what, status);
        rc = status == 401 || status == 403 ? PROV_EAUTH : -1;
        goto out;
    }
    if (out) {
        json_error_t je;
        *out = resp.len ? json_loadb(resp.data, resp.len, 0, &je) : json_object();
        if (!*out || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            snprintf(err, errsz, "%s: the answer is not a JSON object", what);
            goto out;
        }
    }
    rc = 0;
out:
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(text);
    /* The list holds its own copy of the token's header. */
    for (struct curl_slist *h = hdrs; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    dbuf_free(&resp);
    return rc;
}

/* A token endpoint's answer: GET url with header, or POST form (a secret: wiped by the caller)
 * to it; what names the endpoint in err. */
static int token_request(const char *what, const char *url, const char *header, const char *form,
                         const char *ca_file, char *token, char *err, size_t errsz)
{
    struct dbuf resp = DBUF_INIT_SECRET(256 * 1024);
    struct curl_slist *hdrs = curl_slist_append(NULL, header);
    long status = 0;
    int rc = -1;
    json_t *j = NULL;
    /* A metadata service (no form) answers at once or not at all: short timeouts. */
    CURL *curl = cloud_http_easy(url, ca_file, form ? 10L : 2L, form ? 60L : 10L, &resp);
    if (!curl || !hdrs) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    if (form)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(err, errsz, "%s at %s: %s", what, url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    const char *t = NULL;
    if (status != 200 || !(j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL)) ||
        !(t = json_string_value(json_object_get(j, "access_token"))) || !*t ||
        strlen(t) >= REST_TOKEN_SIZE) {
        snprintf(err, errsz, "%s at %s gave no access token (HTTP %ld)", what, url, status);
        goto out;
    }
    memcpy(token, t, strlen(t) + 1);
    rc = 0;
out:
    if (j) {
        /* jansson keeps the string: wipe it before it is freed. */
        json_t *v = json_object_get(j, "access_token");
        if (json_is_string(v))
            explicit_bzero((char *)json_string_value(v), json_string_length(v));
        json_decref(j);
    }
    dbuf_free(&resp);
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}

int rest_metadata_token(const char *url, const char *header, char *token, char *err, size_t errsz)
{
    return token_request("the metadata service", url, header, NULL, NULL, token, err, errsz);
}

int rest_client_token(const char *url, const char *client_id, const char *secret, const char *scope,
                      const char *ca_file, char *token, char *err, size_t errsz)
{
    char *id = curl_easy_escape(NULL, client_id, 0), *sec = curl_easy_escape(NULL, secret, 0);
    char *sc = curl_easy_escape(NULL, scope, 0), *form = NULL;
    int rc = -1;
    if (!id || !sec || !sc ||
        asprintf(&form, "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s", id,
                 sec, sc) < 0) {
        form = NULL;
        snprintf(err, errsz, "out of memory");
    } else {
        rc = token_request("the token endpoint", url,
                           "Content-Type: application/x-www-form-urlencoded", form, ca_file, token,
                           err, errsz);
    }
    if (sec)
        explicit_bzero(sec, strlen(sec));
    if (form) {
        explicit_bzero(form, strlen(form));
        free(form);
    }
    curl_free(id);
    curl_free(sec);
    curl_free(sc);
    return rc;
}

int rest_escape(const char *s, char *out, size_t size)
{
    char *e = curl_easy_escape(NULL, s, 0);
    int rc = e && strlen(e) < size ? 0 : -1;
    if (rc == 0)
        memcpy(out, e, strlen(e) + 1);
    curl_free(e);
    return rc;
}
