/* Unit tests for config: DAVIT_X and SPACELIFT_X options, defaults, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/config.h"

#include <stdlib.h>
#include <string.h>

static const char *vars[] = {"DOCKER_HOST",
                             "DAVIT_STATE_DIR",
                             "DAVIT_WORKER_NETWORK",
                             "SPACELIFT_WORKER_NETWORK",
                             "DAVIT_WORKER_RUNTIME",
                             "DAVIT_WORKER_EXTRA_MOUNTS",
                             "SPACELIFT_WORKER_EXTRA_MOUNTS",
                             "DAVIT_WHITELIST_ENVS",
                             "SPACELIFT_WHITELIST_ENVS",
                             "DAVIT_MASK_ENVS",
                             "DAVIT_LAUNCHER_RUN_TIMEOUT",
                             "SPACELIFT_LAUNCHER_RUN_TIMEOUT",
                             "DAVIT_LAUNCHER_LOGS_TIMEOUT",
                             "DAVIT_DEBUG",
                             "SPACELIFT_DEBUG",
                             "DAVIT_LOG_FORMAT",
                             "DAVIT_DOCKER_CONFIG_DIR",
                             "DAVIT_DOCKER_TIMEOUT",
                             "DAVIT_POOL_ID",
                             "DAVIT_WORKER_BINARY",
                             "DAVIT_LAUNCHER_CONCURRENCY",
                             "SPACELIFT_LAUNCHER_CONCURRENCY",
                             "DAVIT_METADATA_zone",
                             "SPACELIFT_METADATA_zone",
                             "SPACELIFT_METADATA_rack",
                             "DAVIT_RUN_LOGS_ON_STANDARD_OUTPUT",
                             "SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED",
                             "DAVIT_CA_FILE",
                             NULL};

static int clear_env(void **state)
{
    for (const char **v = vars; *v; v++)
        unsetenv(*v);
    return 0;
}

static void load_ok(struct launcher_config *c)
{
    char err[512] = "";
    if (config_load(c, err, sizeof(err)) != 0)
        fail_msg("config_load: %s", err);
}

static void load_err(const char *want)
{
    struct launcher_config c;
    char err[512] = "";
    assert_int_equal(config_load(&c, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_defaults(void **state)
{
    struct launcher_config c;
    load_ok(&c);
    assert_string_equal(c.docker_host, "unix:///var/run/docker.sock");
    assert_string_equal(c.network, "bridge");
    assert_string_equal(c.pool, "local");
    assert_null(c.runtime);
    assert_null(c.docker_config_dir);
    assert_null(c.worker_binary);
    assert_int_equal(c.n_mounts, 0);
    assert_int_equal(c.n_whitelist, 0);
    assert_int_equal(c.run_timeout_ms, 70LL * 60 * 1000);
    assert_int_equal(c.logs_timeout_ms, 7LL * 60 * 1000);
    assert_int_equal(c.debug, 0);
    assert_int_equal(c.log_format, LOG_TEXT);
    assert_true(c.state_dir[0] == '/');
    config_free(&c);
    config_free(&c); /* twice is fine */
}

static void test_values_and_aliases(void **state)
{
    setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
    setenv("DAVIT_STATE_DIR", "/tmp/x", 1);
    setenv("SPACELIFT_WORKER_NETWORK", "none", 1);
    setenv("DAVIT_WORKER_RUNTIME", "runsc", 1);
    setenv("SPACELIFT_WORKER_EXTRA_MOUNTS", "/a:/b, /c:/d:ro,/e:/f:rw,", 1);
    setenv("SPACELIFT_WHITELIST_ENVS", "HTTP_PROXY, NO_PROXY,,", 1);
    setenv("DAVIT_MASK_ENVS", "TOKEN", 1);
    setenv("SPACELIFT_LAUNCHER_RUN_TIMEOUT", "2s", 1);
    setenv("DAVIT_LAUNCHER_LOGS_TIMEOUT", "0", 1);
    setenv("SPACELIFT_DEBUG", "true", 1);
    setenv("DAVIT_LOG_FORMAT", "json", 1);
    setenv("DAVIT_DOCKER_CONFIG_DIR", "/etc/docker-creds", 1);
    struct launcher_config c;
    load_ok(&c);
    assert_string_equal(c.docker_host, "tcp://127.0.0.1:2375");
    assert_string_equal(c.state_dir, "/tmp/x");
    assert_string_equal(c.network, "none");
    assert_string_equal(c.runtime, "runsc");
    assert_int_equal(c.n_mounts, 3);
    assert_string_equal(c.mounts[0].host, "/a");
    assert_string_equal(c.mounts[0].container, "/b");
    assert_false(c.mounts[0].read_only);
    assert_string_equal(c.mounts[1].host, "/c");
    assert_true(c.mounts[1].read_only);
    assert_false(c.mounts[2].read_only);
    assert_int_equal(c.n_whitelist, 2);
    assert_string_equal(c.whitelist[0], "HTTP_PROXY");
    assert_string_equal(c.whitelist[1], "NO_PROXY");
    assert_int_equal(c.n_mask, 1);
    assert_int_equal(c.run_timeout_ms, 2000);
    assert_int_equal(c.logs_timeout_ms, 0);
    assert_int_equal(c.debug, 1);
    assert_int_equal(c.log_format, LOG_JSON);
    assert_string_equal(c.docker_config_dir, "/etc/docker-creds");
    config_free(&c);

    /* DAVIT_X wins over SPACELIFT_X. */
    setenv("DAVIT_WORKER_NETWORK", "host", 1);
    load_ok(&c);
    assert_string_equal(c.network, "host");
    config_free(&c);
}

static void test_errors(void **state)
{
    setenv("DAVIT_LAUNCHER_RUN_TIMEOUT", "ten", 1);
    load_err("DAVIT_LAUNCHER_RUN_TIMEOUT: not a duration");
    unsetenv("DAVIT_LAUNCHER_RUN_TIMEOUT");

    setenv("SPACELIFT_WORKER_EXTRA_MOUNTS", "relative:/x", 1);
    load_err("SPACELIFT_WORKER_EXTRA_MOUNTS: expected /host/path:/container/path[:ro]: "
             "\"relative:/x\"");
    setenv("SPACELIFT_WORKER_EXTRA_MOUNTS", "/a:/b:rx", 1);
    load_err("expected /host/path");
    setenv("SPACELIFT_WORKER_EXTRA_MOUNTS", "/a", 1);
    load_err("expected /host/path");
    unsetenv("SPACELIFT_WORKER_EXTRA_MOUNTS");

    setenv("DAVIT_WHITELIST_ENVS", "GOOD,1BAD", 1);
    load_err("DAVIT_WHITELIST_ENVS: not a variable name: \"1BAD\"");
    unsetenv("DAVIT_WHITELIST_ENVS");

    setenv("DAVIT_DEBUG", "maybe", 1);
    load_err("DAVIT_DEBUG: expected 1 or 0");
    unsetenv("DAVIT_DEBUG");

    setenv("DAVIT_LOG_FORMAT", "xml", 1);
    load_err("DAVIT_LOG_FORMAT: expected text or json");
    unsetenv("DAVIT_LOG_FORMAT");

    setenv("DAVIT_STATE_DIR", "relative/dir", 1);
    load_err("DAVIT_STATE_DIR: must be an absolute path");
    unsetenv("DAVIT_STATE_DIR");

    setenv("DAVIT_DOCKER_TIMEOUT", "0", 1);
    load_err("must not be 0");
}

static void test_daemon_options(void **state)
{
    struct launcher_config c;
    load_ok(&c);
    assert_int_equal(c.concurrency, 1);
    assert_int_equal(c.n_meta, 0);
    assert_int_equal(c.run_logs_stdout, 0);
    assert_null(c.ca_file);
    config_free(&c);

    setenv("SPACELIFT_LAUNCHER_CONCURRENCY", "4", 1);
    setenv("DAVIT_METADATA_zone", "eu-1", 1);
    setenv("SPACELIFT_METADATA_zone", "ignored", 1);
    setenv("SPACELIFT_METADATA_rack", "r2", 1);
    setenv("SPACELIFT_RUN_LOGS_ON_STANDARD_OUTPUT_ENABLED", "true", 1);
    setenv("DAVIT_CA_FILE", "/etc/ca.pem", 1);
    load_ok(&c);
    assert_int_equal(c.concurrency, 4);
    assert_int_equal(c.n_meta, 2);
    int zone = 0, rack = 0;
    for (size_t i = 0; i < c.n_meta; i++) {
        zone |= strcmp(c.meta_keys[i], "zone") == 0 && strcmp(c.meta_values[i], "eu-1") == 0;
        rack |= strcmp(c.meta_keys[i], "rack") == 0 && strcmp(c.meta_values[i], "r2") == 0;
    }
    assert_true(zone && rack);
    assert_int_equal(c.run_logs_stdout, 1);
    assert_string_equal(c.ca_file, "/etc/ca.pem");
    config_free(&c);

    setenv("DAVIT_LAUNCHER_CONCURRENCY", "65", 1);
    load_err("DAVIT_LAUNCHER_CONCURRENCY");
    setenv("DAVIT_LAUNCHER_CONCURRENCY", "0", 1);
    load_err("DAVIT_LAUNCHER_CONCURRENCY: must be 1 to 64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_values_and_aliases, clear_env),
        cmocka_unit_test_setup(test_errors, clear_env),
        cmocka_unit_test_setup(test_daemon_options, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
