/* Unit tests for runspec: parsing, strict validation and the JSON round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/runspec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct runspec *parse_ok(const char *text)
{
    struct runspec *spec = NULL;
    char err[512] = "";
    int rc = runspec_parse(text, strlen(text), &spec, err, sizeof(err));
    if (rc != 0)
        fail_msg("unexpected error: %s (for %s)", err, text);
    assert_non_null(spec);
    return spec;
}

/* Asserts that text is rejected with an error containing want. */
static void parse_err(const char *text, const char *want)
{
    struct runspec *spec = NULL;
    char err[512] = "";
    int rc = runspec_parse(text, strlen(text), &spec, err, sizeof(err));
    if (rc != -1)
        fail_msg("accepted: %s", text);
    assert_null(spec);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_full_spec(void **state)
{
    struct runspec *s = parse_ok(
        "{\"image\":\"davit/runner-busybox\",\"phases\":["
        "{\"name\":\"init\",\"commands\":[\"echo init\"]},"
        "{\"name\":\"plan\",\"before\":[\"echo b\"],\"commands\":[\"echo p\",\"sleep 1\"],"
        "\"after\":[\"echo a\"],\"timeout\":\"10m\"}],"
        "\"env\":{\"TF_IN_AUTOMATION\":\"1\"},\"secrets\":{\"AWS_SECRET\":\"s3cr3t\"},"
        "\"timeouts\":{\"run\":\"1h\",\"no_output\":\"90\",\"kill_grace\":\"1500ms\"},"
        "\"user\":\"1983:1983\",\"limits\":{\"memory_mb\":512,\"cpus\":1.5,\"pids\":256}}");
    assert_string_equal(s->image, "davit/runner-busybox");
    assert_int_equal(s->n_phases, 2);
    assert_string_equal(s->phases[0].name, "init");
    assert_int_equal(s->phases[0].commands.n, 1);
    assert_int_equal(s->phases[0].before.n, 0);
    assert_string_equal(s->phases[1].before.items[0], "echo b");
    assert_string_equal(s->phases[1].commands.items[1], "sleep 1");
    assert_string_equal(s->phases[1].after.items[0], "echo a");
    assert_int_equal(s->phases[1].timeout_ms, 600000);
    assert_int_equal(s->n_env, 1);
    assert_string_equal(s->env[0].name, "TF_IN_AUTOMATION");
    assert_string_equal(s->secrets[0].value, "s3cr3t");
    assert_int_equal(s->run_timeout_ms, 3600000);
    assert_int_equal(s->output_timeout_ms, 90000);
    assert_int_equal(s->kill_grace_ms, 1500);
    assert_string_equal(s->user, "1983:1983");
    assert_int_equal(s->memory_mb, 512);
    assert_true(s->cpus > 1.49 && s->cpus < 1.51);
    assert_int_equal(s->pids, 256);
    runspec_free(s);
}

static void test_defaults(void **state)
{
    struct runspec *s = parse_ok("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}]}");
    assert_int_equal(s->run_timeout_ms, RUNSPEC_DEFAULT_RUN_TIMEOUT_MS);
    assert_int_equal(s->output_timeout_ms, RUNSPEC_DEFAULT_OUTPUT_TIMEOUT_MS);
    assert_int_equal(s->kill_grace_ms, RUNSPEC_DEFAULT_KILL_GRACE_MS);
    assert_string_equal(s->user, "");
    assert_int_equal(s->memory_mb, 0);
    assert_int_equal(s->pids, 0);
    assert_int_equal(s->phases[0].commands.n, 0);
    assert_int_equal(s->phases[0].timeout_ms, 0);
    runspec_free(s);
}

/* Issue 15: a spec may name no image; the launcher's DAVIT_DEFAULT_RUNNER_IMAGE fills it in. */
static void test_image_is_optional(void **state)
{
    (void)state;
    struct runspec *s = parse_ok("{\"phases\":[{\"name\":\"a\",\"commands\":[\"true\"]}]}");
    assert_null(s->image);
    json_t *j = runspec_to_json(s, 0);
    assert_non_null(j);
    assert_null(json_object_get(j, "image"));
    json_decref(j);
    runspec_free(s);
}

static void test_errors_name_the_field(void **state)
{
    parse_err("[]", "must be a JSON object");
    parse_err("{", "not valid JSON");
    parse_err("{\"image\":\"x\"}", "phases: required");
    parse_err("{\"image\":\"\",\"phases\":[{\"name\":\"a\"}]}", "image: must not be empty");
    parse_err("{\"image\":\"a b\",\"phases\":[{\"name\":\"a\"}]}", "image: not an image");
    parse_err("{\"image\":\"x\",\"phases\":[]}", "phases: must hold 1 to 64");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"imgae\":1}",
              "imgae: unknown field");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"timout\":\"1s\"}]}",
              "phases[0].timout: unknown field");
    parse_err(
        "{\"image\":\"x\",\"phases\":[{\"name\":\"a\"},{\"name\":\"b\",\"timeout\":\"ten\"}]}",
        "phases[1].timeout: not a duration: \"ten\"");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"timeout\":10}]}",
              "phases[0].timeout: expected a duration string");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a b\"}]}",
              "phases[0].name: must be 1 to 64");
    parse_err("{\"image\":\"x\",\"phases\":[{}]}", "phases[0].name: required");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
              "phases[1].name: \"a\" is already the name of phases[0]");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"commands\":[\"ok\",1]}]}",
              "phases[0].commands[1]: expected a string, got an integer");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"commands\":\"echo\"}]}",
              "phases[0].commands: expected an array");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"after\":[\"a\\u0000b\"]}]}",
              "not valid JSON");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"env\":{\"1X\":\"v\"}}",
              "env.1X: not a variable name");
    /* Found by fuzz_api_body: a bad name is not echoed (it could be a terminal escape). */
    struct runspec *bad = NULL;
    char err[512];
    static const char named[] =
        "{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"secrets\":{\"\\u001b]0;pwn~\":\"v\"}}";
    assert_int_equal(runspec_parse(named, strlen(named), &bad, err, sizeof(err)), -1);
    assert_null(strstr(err, "pwn"));
    assert_null(strchr(err, 0x1b));
    assert_non_null(strstr(err, "secrets: not a variable name"));
    static const char unknown[] =
        "{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"\\u001b[2Jpwn~\":1}";
    assert_int_equal(runspec_parse(unknown, strlen(unknown), &bad, err, sizeof(err)), -1);
    assert_null(strstr(err, "pwn"));
    assert_string_equal(err, "unknown field");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"env\":{\"DAVIT_X\":\"v\"}}",
              "env.DAVIT_X: names beginning with DAVIT_ are reserved");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"secrets\":{\"K\":1}}",
              "secrets.K: expected a string");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"timeouts\":{\"run\":\"-1s\"}}",
              "timeouts.run: not a duration");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"timeouts\":{\"idle\":\"1s\"}}",
              "timeouts.idle: unknown field");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"user\":\"root\"}",
              "user: expected a numeric UID");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"user\":\"1:2:3\"}", "user:");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"user\":\"1:\"}", "user:");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"limits\":{\"memory_mb\":1}}",
              "limits.memory_mb: must be from 6");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"limits\":{\"cpus\":\"2\"}}",
              "limits.cpus: expected a number");
    parse_err("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"limits\":{\"pids\":0}}",
              "limits.pids: must be from 1");
    parse_err("{\"image\":\"x\",\"image\":\"y\",\"phases\":[{\"name\":\"a\"}]}", "duplicate");
}

#define SEALED                                                                                     \
    "\"sealed\":{\"alg\":\"" RUNSPEC_SEAL_ALG_EC "\",\"key_id\":\"" KEY_ID "\",\"key\":\"AA==\","  \
    "\"secrets\":{\"T\":\"AAAA\"}}"
#define KEY_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NONCE  "\"run_nonce\":\"00112233445566778899aabbccddeeff\""
#define BASE   "{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],"

/* The sealed form's shape (docs/secrets.md); opening it is the launcher's. */
static void test_sealed_shape(void **state)
{
    (void)state;
    struct runspec *spec = NULL;
    char err[512];
    static const char ok[] = BASE NONCE "," SEALED ",\"signature\":\"c2ln\"}";
    assert_int_equal(runspec_parse(ok, strlen(ok), &spec, err, sizeof(err)), 0);
    assert_int_equal(spec->n_sealed, 1);
    assert_int_equal(spec->n_secrets, 0);
    assert_string_equal(spec->run_nonce, "00112233445566778899aabbccddeeff");
    runspec_free(spec);
    parse_err(BASE SEALED "}", "run_nonce: required with sealed");
    parse_err(BASE NONCE "," SEALED ",\"secrets\":{}}", "sealed: give secrets or sealed");
    parse_err(BASE "\"run_nonce\":\"00112233445566778899AABBCCDDEEFF\"}",
              "run_nonce: must be 32 lowercase hex");
    parse_err(BASE NONCE ",\"sealed\":{\"alg\":\"rot13\"}}", "sealed.alg: must be");
    parse_err(BASE NONCE ",\"sealed\":{\"alg\":\"" RUNSPEC_SEAL_ALG_RSA "\",\"key_id\":\"x\"}}",
              "sealed.key_id: must be 64");
    parse_err(BASE NONCE ",\"sealed\":{\"alg\":\"" RUNSPEC_SEAL_ALG_RSA "\",\"kid\":1}}",
              "sealed.kid: unknown field");
    parse_err(BASE "\"signature\":1}", "signature: expected a string");
}

/* A NUL inside a string can only come from a JSON object built in memory. */
static void test_nul_in_string(void **state)
{
    json_t *o = json_pack("{s:s, s:[{s:s, s:[s%]}]}", "image", "x", "phases", "name", "a", "after",
                          "a\0b", (size_t)3);
    assert_non_null(o);
    struct runspec *spec = NULL;
    char err[256];
    assert_int_equal(runspec_from_json(o, &spec, err, sizeof(err)), -1);
    assert_string_equal(err, "phases[0].after[0]: must not contain a NUL byte");
    json_decref(o);
}

static void test_limits_on_counts(void **state)
{
    char *text = malloc(64 * 1024);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "{\"image\":\"x\",\"phases\":[");
    for (int i = 0; i < 65; i++)
        n += (size_t)sprintf(text + n, "%s{\"name\":\"p%d\"}", i ? "," : "", i);
    sprintf(text + n, "]}");
    parse_err(text, "phases: must hold 1 to 64 phases, not 65");

    n = (size_t)sprintf(text, "{\"image\":\"x\",\"phases\":[{\"name\":\"a\",\"commands\":[");
    for (int i = 0; i < 65; i++)
        n += (size_t)sprintf(text + n, "%s\"true\"", i ? "," : "");
    sprintf(text + n, "]}]}");
    parse_err(text, "phases[0].commands: more than 64 commands");

    n = (size_t)sprintf(text, "{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}],\"env\":{");
    for (int i = 0; i < 300; i++)
        n += (size_t)sprintf(text + n, "%s\"E%d\":\"v\"", i ? "," : "", i);
    n += (size_t)sprintf(text + n, "},\"secrets\":{");
    for (int i = 0; i < 213; i++)
        n += (size_t)sprintf(text + n, "%s\"S%d\":\"v\"", i ? "," : "", i);
    sprintf(text + n, "}}");
    parse_err(text, "secrets: more than 512 variables");
    free(text);
}

static void test_round_trip_and_masking(void **state)
{
    const char *text =
        "{\"image\":\"img:1\",\"phases\":[{\"name\":\"a\",\"before\":[\"b1\"],\"commands\":[\"c1\","
        "\"c2\\nline2\"],\"after\":[\"a1\"],\"timeout\":\"90s\"}],\"env\":{\"E\":\"v\"},"
        "\"secrets\":{\"S\":\"hidden\"},\"timeouts\":{\"run\":\"0\",\"no_output\":\"7m\","
        "\"kill_grace\":\"1500ms\"},\"user\":\"1983\",\"limits\":{\"memory_mb\":64,\"cpus\":0.5,"
        "\"pids\":10}}";
    struct runspec *a = parse_ok(text);

    json_t *masked = runspec_to_json(a, 0);
    assert_non_null(masked);
    char *s = json_dumps(masked, JSON_COMPACT);
    assert_null(strstr(s, "hidden"));
    assert_non_null(strstr(s, "\"S\":\"***\""));
    free(s);
    json_decref(masked);

    json_t *full = runspec_to_json(a, 1);
    char *err = calloc(1, 512);
    struct runspec *b = NULL;
    assert_int_equal(runspec_from_json(full, &b, err, 512), 0);
    json_t *again = runspec_to_json(b, 1);
    assert_true(json_equal(full, again));
    assert_string_equal(b->secrets[0].value, "hidden");
    assert_string_equal(b->phases[0].commands.items[1], "c2\nline2");
    assert_int_equal(b->run_timeout_ms, 0);
    assert_int_equal(b->kill_grace_ms, 1500);
    json_decref(full);
    json_decref(again);
    free(err);
    runspec_free(a);
    runspec_free(b);
    runspec_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_spec),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_image_is_optional),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_nul_in_string),
        cmocka_unit_test(test_limits_on_counts),
        cmocka_unit_test(test_round_trip_and_masking),
        cmocka_unit_test(test_sealed_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
