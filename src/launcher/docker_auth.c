#include "launcher/docker_auth.h"

#include "common/crypto.h"
#include "common/dbuf.h"
#include "common/secure.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_CAP (4u << 20)

void docker_auth_registry(const char *image, char *out, size_t size)
{
    const char *slash = strchr(image, '/');
    size_t n = slash ? (size_t)(slash - image) : 0;
    /* Docker's rule: the first component is a registry only if it looks like a host. */
    if (slash && (memchr(image, '.', n) || memchr(image, ':', n) ||
                  (n == 9 && strncmp(image, "localhost", 9) == 0)))
        snprintf(out, size, "%.*s", (int)n, image);
    else
        snprintf(out, size, "docker.io");
}

/* The host part of an "auths" key: "https://index.docker.io/v1/" → "index.docker.io". */
static void key_host(const char *key, char *out, size_t size)
{
    const char *p = strstr(key, "://");
    p = p ? p + 3 : key;
    snprintf(out, size, "%.*s", (int)strcspn(p, "/"), p);
}

static int is_hub(const char *host)
{
    return strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0 ||
           strcmp(host, "registry-1.docker.io") == 0;
}

/* Base64url with padding, as the Engine decodes X-Registry-Auth. Caller frees. */
static char *base64url(const char *s)
{
    char *out = crypto_b64_encode(s, strlen(s));
    for (char *p = out; p && *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    return out;
}

/* Decodes the "auth" field (base64 of "user:password") into user and password. */
static int decode_auth(const char *b64, char **user, char **pass)
{
    unsigned char *buf;
    size_t len;
    if (crypto_b64_decode(b64, &buf, &len) < 0)
        return -1;
    char *colon = strchr((char *)buf, ':');
    if (colon) {
        *colon = '\0';
        *user = strdup((char *)buf);
        *pass = strdup(colon + 1);
    }
    secure_wipe(buf, len);
    free(buf);
    return colon && *user && *pass ? 0 : -1;
}

int docker_auth_header(const char *config_dir, const char *image, char **header, char *err,
                       size_t errsz)
{
    struct dbuf text = DBUF_INIT_SECRET(CONFIG_CAP); /* credentials: wiped as it grows */
    char path[4200], registry[256];
    json_t *cfg = NULL, *out = NULL;
    char *user = NULL, *pass = NULL, *outtext = NULL;
    int rc = -1;

    *header = NULL;
    if (!config_dir)
        return 0;
    snprintf(path, sizeof(path), "%s/config.json", config_dir);
    if (dbuf_read_file(&text, path) < 0) {
        if (errno == ENOENT) {
            rc = 0;
            goto done;
        }
        snprintf(err, errsz, "registry credentials: %s: %s", path, strerror(errno));
        goto done;
    }
    json_error_t jerr;
    cfg = json_loadb(dbuf_str(&text), text.len, 0, &jerr);
    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "registry credentials: %s: not a JSON object (line %d: %s)", path,
                 jerr.line, cfg ? "" : jerr.text);
        goto done;
    }
    docker_auth_registry(image, registry, sizeof(registry));
    json_t *auths = json_object_get(cfg, "auths");
    const char *key;
    json_t *entry, *found = NULL;
    json_object_foreach(auths, key, entry)
    {
        char host[256];
        key_host(key, host, sizeof(host));
        if (strcmp(host, registry) == 0 || (is_hub(host) && is_hub(registry))) {
            found = entry;
            break;
        }
    }
    if (!json_is_object(found)) {
        rc = 0;
        goto done;
    }
    const char *server = is_hub(registry) ? "https://index.docker.io/v1/" : registry;
    const char *token = json_string_value(json_object_get(found, "identitytoken"));
    const char *auth = json_string_value(json_object_get(found, "auth"));
    if (token && *token) {
        out = json_pack("{s:s, s:s}", "identitytoken", token, "serveraddress", server);
    } else {
        if (auth && *auth) {
            if (decode_auth(auth, &user, &pass) < 0) {
                snprintf(err, errsz,
                         "registry credentials: %s: auths.%s.auth is not base64 of "
                         "user:password",
                         path, key);
                goto done;
            }
        } else {
            const char *u = json_string_value(json_object_get(found, "username"));
            const char *p = json_string_value(json_object_get(found, "password"));
            if (!u || !p) {
                rc = 0;
                goto done;
            }
            user = strdup(u);
            pass = strdup(p);
        }
        if (user && pass)
            out = json_pack("{s:s, s:s, s:s}", "username", user, "password", pass, "serveraddress",
                            server);
    }
    if (!out || !(outtext = json_dumps(out, JSON_COMPACT)) || !(*header = base64url(outtext))) {
        snprintf(err, errsz, "registry credentials: out of memory");
        goto done;
    }
    rc = 0;
done:
    free(user);
    secure_free_str(pass);
    secure_free_str(outtext);
    json_decref(out);
    json_decref(cfg);
    dbuf_free(&text);
    return rc;
}
