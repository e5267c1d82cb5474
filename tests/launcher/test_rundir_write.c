/*
 * Unit tests for rundir_write: the files, their bytes and modes, and (when
 * the worker is in the build) that the worker's own reader accepts them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/dbuf.h"
#include "launcher/rundir_write.h"

#include "worker/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64], dir[128];

static int setup(void **state)
{
    snprintf(base, sizeof(base), "/tmp/test_rundir_write.XXXXXX");
    assert_non_null(mkdtemp(base));
    snprintf(dir, sizeof(dir), "%s/run", base);
    return 0;
}

static int teardown(void **state)
{
    char err[256];
    assert_int_equal(rundir_remove(base, err, sizeof(err)), 0);
    return 0;
}

static struct runspec *spec_of(const char *text)
{
    struct runspec *s = NULL;
    char err[256];
    if (runspec_parse(text, strlen(text), &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return s;
}

/* Asserts the file's exact bytes and mode 0600. */
static void assert_file(const char *rel, const char *want, size_t len)
{
    char path[256];
    struct dbuf b = DBUF_INIT(1 << 20);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (dbuf_read_file(&b, path) < 0)
        fail_msg("%s: %s", rel, strerror(errno));
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data ? b.data : "", want, len);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    dbuf_free(&b);
}

static void assert_absent(const char *rel)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    assert_int_equal(stat(path, &st), -1);
}

static void assert_dir_mode(const char *rel)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
}

static const char full_spec[] =
    "{\"image\":\"x\",\"phases\":[{\"name\":\"init\",\"commands\":[\"echo init\"]},"
    "{\"name\":\"plan\",\"before\":[\"echo b\"],\"commands\":[\"echo p\",\"printf '%s\\\\n' "
    "a\\nb\"],\"after\":[\"echo a\"],\"timeout\":\"10m\"}],"
    "\"env\":{\"TF_IN_AUTOMATION\":\"1\",\"MULTI\":\"line1\\nline2\\n\"},"
    "\"secrets\":{\"AWS_SECRET\":\"s3cr3t\",\"SHARED\":\"from-spec\"},"
    "\"timeouts\":{\"run\":\"1h30m\",\"no_output\":\"0\",\"kill_grace\":\"1500ms\"},"
    "\"user\":\"1983:1983\"}";

static void test_layout(void **state)
{
    struct runspec *spec = spec_of(full_spec);
    char err[512];
    struct runspec_var extra[] = {{"LAUNCHER_TOKEN", "lt"}, {"SHARED", "from-launcher"}};
    mode_t old = umask(0077); /* modes must not depend on the umask */
    assert_int_equal(rundir_write(dir, spec, "run-42", extra, 2, err, sizeof(err)), 0);
    umask(old);

    assert_dir_mode("");
    assert_dir_mode("settings");
    assert_dir_mode("env");
    assert_dir_mode("secrets");
    assert_dir_mode("phases");
    assert_dir_mode("phases/0");
    assert_dir_mode("phases/1");
    assert_file("version", "1\n", 2);
    assert_file("settings/run_id", "run-42\n", 7);
    assert_file("settings/run_timeout", "90m\n", 4);
    assert_file("settings/output_timeout", "0s\n", 3);
    assert_file("settings/kill_grace", "1500ms\n", 7);
    assert_file("settings/user", "1983:1983\n", 10);
    assert_absent("settings/workspace");
    assert_absent("settings/echo");
    assert_file("env/TF_IN_AUTOMATION", "1", 1);
    assert_file("env/MULTI", "line1\nline2\n", 12);
    assert_file("secrets/AWS_SECRET", "s3cr3t", 6);
    assert_file("secrets/LAUNCHER_TOKEN", "lt", 2);
    assert_file("secrets/SHARED", "from-spec", 9); /* the spec wins */
    assert_file("phases/0/name", "init\n", 5);
    assert_file("phases/0/commands", "echo init\0", 10);
    assert_absent("phases/0/before");
    assert_absent("phases/0/after");
    assert_absent("phases/0/timeout");
    assert_file("phases/1/before", "echo b\0", 7);
    assert_file("phases/1/commands", "echo p\0printf '%s\\n' a\nb\0", 25);
    assert_file("phases/1/after", "echo a\0", 7);
    assert_file("phases/1/timeout", "10m\n", 4);
    assert_absent("spool");

    /* The worker reads exactly what the launcher meant. */
    struct rundir rd;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    if (rundir_load(fd, &rd, err, sizeof(err)) < 0)
        fail_msg("the worker rejects the run directory: %s", err);
    close(fd);
    assert_string_equal(rd.run_id, "run-42");
    assert_int_equal(rd.run_timeout_ms, 90LL * 60 * 1000);
    assert_int_equal(rd.output_timeout_ms, 0);
    assert_int_equal(rd.kill_grace_ms, 1500);
    assert_int_equal(rd.uid, 1983);
    assert_int_equal(rd.n_phases, 2);
    assert_string_equal(rd.phases[1].commands.items[1], "printf '%s\\n' a\nb");
    assert_int_equal(rd.phases[1].timeout_ms, 600000);
    assert_int_equal(rd.n_vars, 5);
    rundir_free(&rd);
    runspec_free(spec);
}

static void test_minimal_and_empty_commands(void **state)
{
    struct runspec *spec = spec_of("{\"image\":\"x\",\"phases\":[{\"name\":\"only-hooks\","
                                   "\"after\":[\"true\"]}]}");
    char err[512];
    assert_int_equal(rundir_write(dir, spec, "-", NULL, 0, err, sizeof(err)), 0);
    assert_file("phases/0/commands", "", 0);
    assert_file("settings/run_timeout", "70m\n", 4);
    assert_file("settings/output_timeout", "7m\n", 3);
    assert_file("settings/kill_grace", "10s\n", 4);
    assert_absent("settings/user");
    struct rundir rd;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (rundir_load(fd, &rd, err, sizeof(err)) < 0)
        fail_msg("the worker rejects the run directory: %s", err);
    close(fd);
    rundir_free(&rd);
    runspec_free(spec);
}

static void test_errors(void **state)
{
    struct runspec *spec = spec_of("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}]}");
    char err[512];
    /* A run directory is never reused. */
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(rundir_write(dir, spec, "r", NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "File exists"));
    assert_int_equal(rmdir(dir), 0);

    char deep[256];
    snprintf(deep, sizeof(deep), "%s/missing/run", base);
    assert_int_equal(rundir_write(deep, spec, "r", NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mkdir"));

    assert_int_equal(rundir_remove(deep, err, sizeof(err)), 0); /* missing is fine */
    runspec_free(spec);
}

/* The key the launcher leaves for the worker: 0400, 32 bytes, taken (and deleted) by the worker. */
static void test_key_for_the_worker(void **state)
{
    struct runspec *spec = spec_of("{\"image\":\"x\",\"phases\":[{\"name\":\"a\"}]}");
    unsigned char key[SPOOL_KEY_LEN], back[SPOOL_KEY_LEN];
    char err[512], path[256];
    struct stat st;
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(0xa0 + i);
    assert_int_equal(rundir_write(dir, spec, "r", NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(rundir_write_key(dir, key, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_KEY_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0400);
    assert_int_equal(st.st_size, SPOOL_KEY_LEN);
    /* Never replaced. */
    assert_int_equal(rundir_write_key(dir, key, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "File exists"));

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(rundir_take_key(dfd, back, err, sizeof(err)), 0);
    assert_memory_equal(back, key, sizeof(key));
    assert_int_equal(stat(path, &st), -1);
    /* What is left is a run directory the worker reads. */
    struct rundir rd;
    assert_int_equal(rundir_load(dfd, &rd, err, sizeof(err)), 0);
    rundir_free(&rd);
    assert_int_equal(rundir_take_key(dfd, back, err, sizeof(err)), -1);
    assert_string_equal(err, "key: missing: the launcher gave this run no key");
    close(dfd);
    runspec_free(spec);
}

/* The spool of a run that never started: a signed "launcher" section and the result. */
static void test_launcher_section(void **state)
{
    static const char reason[] = "image \"x:y\" is not present locally and could not be pulled: no";
    unsigned char key[SPOOL_KEY_LEN] = {7};
    struct dbuf b = DBUF_INIT(1 << 20);
    struct spool_mac m;
    char err[512], path[256], v[256];
    uint64_t end = 1;

    /* The run directory may not exist yet (the run failed before it was written). */
    assert_int_equal(rundir_spool_section(dir, key, OUTCOME_FAILED, reason, &end, err, sizeof(err)),
                     0);
    snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_FILE);
    assert_int_equal(dbuf_read_file(&b, path), 0);
    assert_int_equal(end, b.len);
    assert_dir_mode("");

    spool_mac_init(&m, key);
    const char *types = "SWER";
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        struct spool_record r;
        ssize_t n = spool_parse(b.data + off, b.len - off, &r);
        assert_true(n > 0);
        off += (size_t)n;
        assert_int_equal(r.type, types[i]);
        assert_int_equal(r.seq, i + 1);
        assert_true(spool_mac_verify(&m, &r));
        assert_string_equal(r.phase, i == 3 ? "" : RUNDIR_LAUNCHER_PHASE);
        if (r.type == SPOOL_NOTE) {
            assert_int_equal(r.len, strlen(reason));
            assert_memory_equal(r.data, reason, r.len);
        } else if (r.type == SPOOL_PHASE_END) {
            assert_int_equal(spool_kv(r.data, r.len, "outcome", v, sizeof(v)), 0);
            assert_string_equal(v, "failed");
        } else if (r.type == SPOOL_RESULT) {
            assert_int_equal(spool_kv(r.data, r.len, "outcome", v, sizeof(v)), 0);
            assert_string_equal(v, "failed");
            assert_int_equal(spool_kv(r.data, r.len, "phase", v, sizeof(v)), 0);
            assert_string_equal(v, RUNDIR_LAUNCHER_PHASE);
            assert_int_equal(spool_kv(r.data, r.len, "reason", v, sizeof(v)), 0);
            assert_string_equal(v, reason);
        }
    }
    assert_int_equal(off, b.len);
    spool_mac_wipe(&m);

    /* A spool is never written twice. */
    assert_int_equal(
        rundir_spool_section(dir, key, OUTCOME_CANCELED, reason, &end, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "File exists"));
    assert_int_equal(end, 0);
    dbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimal_and_empty_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_for_the_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launcher_section, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
