/*
 * Unit tests for the container's create request (container.c) and registry
 * credentials (docker_auth.c): what reaches the Engine, and what never does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/secure.h"
#include "launcher/container.h"
#include "launcher/docker_auth.h"
#include "launcher/rundir_write.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/freed.h"

static struct runspec *spec_of(const char *text)
{
    struct runspec *s = NULL;
    char err[256];
    if (runspec_parse(text, strlen(text), &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return s;
}

static void test_body(void **state)
{
    setenv("DAVIT_WORKER_NETWORK", "none", 1);
    setenv("DAVIT_WORKER_RUNTIME", "runsc", 1);
    setenv("DAVIT_WORKER_EXTRA_MOUNTS", "/srv/cache:/cache:ro", 1);
    setenv("DAVIT_WHITELIST_ENVS", "HTTP_PROXY,UNSET_ONE,MASKED_ONE", 1);
    setenv("DAVIT_MASK_ENVS", "MASKED_ONE", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:3128", 1);
    setenv("MASKED_ONE", "launcher-secret", 1);
    unsetenv("UNSET_ONE");
    struct launcher_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);

    struct runspec *spec =
        spec_of("{\"image\":\"img:1\",\"phases\":[{\"name\":\"a\"}],\"env\":{\"PLAIN\":\"p\"},"
                "\"secrets\":{\"TOPSECRET\":\"s3cr3t-value\"},"
                "\"limits\":{\"memory_mb\":64,\"cpus\":1.5,\"pids\":100}}");
    struct container_params p = {.spec = spec,
                                 .cfg = &cfg,
                                 .run_id = "exec-1",
                                 .launcher_id = "launcher-x",
                                 .worker_path = "/usr/bin/davit-worker",
                                 .run_dir = "/var/lib/davit/runs/exec-1"};
    json_t *body = container_body(&p);
    assert_non_null(body);
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);

    /* Secrets, and even plain spec variables, travel only in the run directory. */
    assert_null(strstr(text, "s3cr3t-value"));
    assert_null(strstr(text, "TOPSECRET"));
    assert_null(strstr(text, "launcher-secret"));
    assert_null(strstr(text, "PLAIN"));

    json_t *env = json_object_get(body, "Env");
    assert_int_equal(json_array_size(env), 1);
    assert_string_equal(json_string_value(json_array_get(env, 0)),
                        "HTTP_PROXY=http://127.0.0.1:3128");
    assert_string_equal(json_string_value(json_object_get(body, "Image")), "img:1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(body, "Entrypoint"), 0)),
                        "/opt/davit/bin/davit-worker");
    assert_int_equal(json_array_size(json_object_get(body, "Cmd")), 0);
    assert_string_equal(json_string_value(json_object_get(body, "User")), "0:0");
    json_t *labels = json_object_get(body, "Labels");
    assert_string_equal(json_string_value(json_object_get(labels, "io.davit.run")), "exec-1");
    assert_string_equal(json_string_value(json_object_get(labels, "io.davit.launcher")),
                        "launcher-x");
    assert_string_equal(json_string_value(json_object_get(labels, "io.davit.pool")), "local");
    assert_null(json_object_get(labels, "io.davit.pool.name"));
    assert_non_null(json_object_get(json_object_get(body, "Volumes"), "/mnt/workspace"));

    json_t *host = json_object_get(body, "HostConfig");
    json_t *binds = json_object_get(host, "Binds");
    assert_int_equal(json_array_size(binds), 3);
    assert_string_equal(json_string_value(json_array_get(binds, 0)),
                        "/usr/bin/davit-worker:/opt/davit/bin/davit-worker:ro");
    assert_string_equal(json_string_value(json_array_get(binds, 1)),
                        "/var/lib/davit/runs/exec-1:/opt/davit/run");
    assert_string_equal(json_string_value(json_array_get(binds, 2)), "/srv/cache:/cache:ro");
    assert_string_equal(json_string_value(json_object_get(host, "NetworkMode")), "none");
    assert_string_equal(json_string_value(json_object_get(host, "Runtime")), "runsc");
    assert_int_equal(json_integer_value(json_object_get(host, "Memory")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(host, "MemorySwap")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(host, "NanoCpus")), 1500000000);
    assert_int_equal(json_integer_value(json_object_get(host, "PidsLimit")), 100);

    /* Masked launcher variables become secrets of the run instead. */
    struct runspec_var masked[4];
    assert_int_equal(container_masked_envs(&cfg, masked, 4), 1);
    assert_string_equal(masked[0].name, "MASKED_ONE");
    assert_string_equal(masked[0].value, "launcher-secret");

    /* The daemon labels with the pool it registered with, id and name. */
    p.pool_id = "pool-8f3c2a1b9d0e4f57";
    p.pool_name = "builders";
    json_t *daemon_body = container_body(&p);
    assert_non_null(daemon_body);
    labels = json_object_get(daemon_body, "Labels");
    assert_string_equal(json_string_value(json_object_get(labels, "io.davit.pool")),
                        "pool-8f3c2a1b9d0e4f57");
    assert_string_equal(json_string_value(json_object_get(labels, "io.davit.pool.name")),
                        "builders");
    json_decref(daemon_body);

    free(text);
    json_decref(body);
    runspec_free(spec);
    config_free(&cfg);
}

/* The launcher's credentials reach no run, whatever DAVIT_WHITELIST_ENVS or DAVIT_MASK_ENVS say
 * (`davit-launcher exec` keeps them in its environment: only the daemon removes them). */
/* Issue 12: no-new-privileges by default; dropped capabilities and a
 * read-only root filesystem when asked; each can be turned off. */
static void test_hardening(void **state)
{
    struct launcher_config cfg;
    char err[256];
    struct runspec *spec = spec_of("{\"image\":\"img:1\",\"phases\":[{\"name\":\"a\"}]}");
    struct container_params p = {.spec = spec,
                                 .cfg = &cfg,
                                 .run_id = "exec-1",
                                 .launcher_id = "launcher-x",
                                 .worker_path = "/usr/bin/davit-worker",
                                 .run_dir = "/var/lib/davit/runs/exec-1"};
    unsetenv("DAVIT_WORKER_NO_NEW_PRIVILEGES");
    unsetenv("DAVIT_WORKER_CAP_DROP");
    unsetenv("DAVIT_WORKER_READ_ONLY_ROOTFS");
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    json_t *body = container_body(&p);
    json_t *host = json_object_get(body, "HostConfig");
    json_t *opts = json_object_get(host, "SecurityOpt");
    assert_int_equal(json_array_size(opts), 1);
    assert_string_equal(json_string_value(json_array_get(opts, 0)), "no-new-privileges");
    assert_null(json_object_get(host, "CapDrop"));
    assert_null(json_object_get(host, "ReadonlyRootfs"));
    json_decref(body);
    config_free(&cfg);

    setenv("DAVIT_WORKER_NO_NEW_PRIVILEGES", "0", 1);
    setenv("SPACELIFT_WORKER_CAP_DROP", "NET_RAW, MKNOD", 1);
    setenv("DAVIT_WORKER_READ_ONLY_ROOTFS", "1", 1);
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    body = container_body(&p);
    host = json_object_get(body, "HostConfig");
    assert_null(json_object_get(host, "SecurityOpt"));
    json_t *caps = json_object_get(host, "CapDrop");
    assert_int_equal(json_array_size(caps), 2);
    assert_string_equal(json_string_value(json_array_get(caps, 0)), "NET_RAW");
    assert_string_equal(json_string_value(json_array_get(caps, 1)), "MKNOD");
    assert_true(json_is_true(json_object_get(host, "ReadonlyRootfs")));
    json_decref(body);
    config_free(&cfg);
    unsetenv("DAVIT_WORKER_NO_NEW_PRIVILEGES");
    unsetenv("SPACELIFT_WORKER_CAP_DROP");
    unsetenv("DAVIT_WORKER_READ_ONLY_ROOTFS");
    runspec_free(spec);
}

static void test_credentials_never_passed(void **state)
{
    (void)state;
    static const char *const creds[] = {"DAVIT_TOKEN", "SPACELIFT_TOKEN", "DAVIT_POOL_PRIVATE_KEY",
                                        "SPACELIFT_POOL_PRIVATE_KEY"};
    setenv("DAVIT_WHITELIST_ENVS",
           "SPACELIFT_TOKEN,DAVIT_TOKEN,SPACELIFT_POOL_PRIVATE_KEY,DAVIT_POOL_PRIVATE_KEY,OTHER",
           1);
    setenv("DAVIT_MASK_ENVS", "SPACELIFT_TOKEN,DAVIT_POOL_PRIVATE_KEY", 1);
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        setenv(creds[i], "credential-value", 1);
    setenv("OTHER", "other-value", 1);
    struct launcher_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    struct runspec *spec = spec_of("{\"image\":\"img:1\",\"phases\":[{\"name\":\"a\"}]}");
    struct container_params p = {.spec = spec,
                                 .cfg = &cfg,
                                 .run_id = "exec-2",
                                 .launcher_id = "launcher-x",
                                 .worker_path = "/usr/bin/davit-worker",
                                 .run_dir = "/var/lib/davit/runs/exec-2"};
    json_t *body = container_body(&p);
    assert_non_null(body);
    char *text = json_dumps(body, JSON_COMPACT);
    assert_null(strstr(text, "credential-value"));
    json_t *env = json_object_get(body, "Env");
    assert_int_equal(json_array_size(env), 1);
    assert_string_equal(json_string_value(json_array_get(env, 0)), "OTHER=other-value");
    struct runspec_var masked[4];
    assert_int_equal(container_masked_envs(&cfg, masked, 4), 0);
    free(text);
    json_decref(body);
    runspec_free(spec);
    config_free(&cfg);
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        unsetenv(creds[i]);
    unsetenv("OTHER");
    unsetenv("DAVIT_WHITELIST_ENVS");
    unsetenv("DAVIT_MASK_ENVS");
}

static void test_registry(void **state)
{
    char r[256];
    docker_auth_registry("busybox", r, sizeof(r));
    assert_string_equal(r, "docker.io");
    docker_auth_registry("library/busybox:1", r, sizeof(r));
    assert_string_equal(r, "docker.io");
    docker_auth_registry("ghcr.io/org/img:tag", r, sizeof(r));
    assert_string_equal(r, "ghcr.io");
    docker_auth_registry("localhost:5000/img", r, sizeof(r));
    assert_string_equal(r, "localhost:5000");
    docker_auth_registry("localhost/img", r, sizeof(r));
    assert_string_equal(r, "localhost");
}

/* Decodes a base64url X-Registry-Auth value back to JSON. */
static json_t *decode_header(const char *h)
{
    char *s = strdup(h);
    for (char *p = s; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    unsigned char out[1024];
    int n = EVP_DecodeBlock(out, (unsigned char *)s, (int)strlen(s));
    assert_true(n > 0);
    while (n > 0 && out[n - 1] == '\0')
        n--;
    free(s);
    return json_loadb((char *)out, (size_t)n, 0, NULL);
}

static void test_auth_header(void **state)
{
    char dir[64], path[128], err[256];
    snprintf(dir, sizeof(dir), "/tmp/test_container.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char *h = NULL;

    /* No config.json: anonymous pulls. */
    assert_int_equal(docker_auth_header(dir, "busybox", &h, err, sizeof(err)), 0);
    assert_null(h);
    assert_int_equal(docker_auth_header(NULL, "busybox", &h, err, sizeof(err)), 0);

    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    /* "alice:pa:ss" base64 */
    fputs("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"YWxpY2U6cGE6c3M=\"},"
          "\"ghcr.io\":{\"identitytoken\":\"tok\"},"
          "\"localhost:5000\":{\"username\":\"bob\",\"password\":\"pw\"}}}",
          f);
    fclose(f);

    assert_int_equal(docker_auth_header(dir, "busybox:1", &h, err, sizeof(err)), 0);
    assert_non_null(h);
    json_t *j = decode_header(h);
    assert_string_equal(json_string_value(json_object_get(j, "username")), "alice");
    assert_string_equal(json_string_value(json_object_get(j, "password")), "pa:ss");
    assert_string_equal(json_string_value(json_object_get(j, "serveraddress")),
                        "https://index.docker.io/v1/");
    json_decref(j);
    free(h);

    assert_int_equal(docker_auth_header(dir, "ghcr.io/o/i", &h, err, sizeof(err)), 0);
    j = decode_header(h);
    assert_string_equal(json_string_value(json_object_get(j, "identitytoken")), "tok");
    json_decref(j);
    free(h);

    assert_int_equal(docker_auth_header(dir, "localhost:5000/i:t", &h, err, sizeof(err)), 0);
    j = decode_header(h);
    assert_string_equal(json_string_value(json_object_get(j, "username")), "bob");
    json_decref(j);
    free(h);

    assert_int_equal(docker_auth_header(dir, "quay.io/x", &h, err, sizeof(err)), 0);
    assert_null(h);

    f = fopen(path, "w");
    fputs("{not json", f);
    fclose(f);
    assert_int_equal(docker_auth_header(dir, "busybox", &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "config.json: not a JSON object"));

    rundir_remove(dir, err, sizeof(err));
}

/* The Docker config holds registry passwords: reading it (in 8 KiB pieces, so the buffer grows
 * past the password), parsing it and building the header leave no copy in freed memory. */
static void test_auth_header_leaves_no_password(void **state)
{
    (void)state;
    static const char pass[] = "registry-pass-4f1c2a9e7b3d5f60-do-not-leak";
    char dir[64], path[128], err[256], *h = NULL;
    snprintf(dir, sizeof(dir), "/tmp/test_container.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"auths\":{\"localhost:5000\":{\"username\":\"bob\",\"password\":\"%s\"}", pass);
    for (int i = 0; i < 500; i++)
        fprintf(f, ",\"r%d.example\":{\"auth\":\"YWxpY2U6cGE6c3M=\"}", i);
    fputs("}}", f);
    fclose(f);

    json_set_alloc_funcs(malloc, secure_free); /* as davit-launcher's main does */
    if (freed_watch(pass, sizeof(pass) - 1) < 0) {
        rundir_remove(dir, err, sizeof(err));
        skip();
    }
    assert_int_equal(docker_auth_header(dir, "localhost:5000/i:t", &h, err, sizeof(err)), 0);
    assert_non_null(h);
    secure_free_str(h);
    int found = freed_stop();
    json_set_alloc_funcs(malloc, free);
    rundir_remove(dir, err, sizeof(err));
    assert_int_equal(found, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_hardening),
        cmocka_unit_test(test_credentials_never_passed),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_auth_header),
        cmocka_unit_test(test_auth_header_leaves_no_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
