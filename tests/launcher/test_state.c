/* Unit tests for state: identity, lock, atomic run files, listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/rundir_write.h"
#include "launcher/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_state.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char err[256];
    rundir_remove(dir, err, sizeof(err));
    return 0;
}

static void test_identity_and_lock(void **state)
{
    struct state a, b;
    char err[512], sub[128];
    snprintf(sub, sizeof(sub), "%s/nested/state", dir);
    assert_int_equal(state_open(&a, sub, err, sizeof(err)), 0);
    assert_int_equal(strlen(a.launcher_id), 32);

    /* A second launcher on the same directory is refused while the first runs. */
    assert_int_equal(state_open(&b, sub, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is in use by another davit-launcher"));
    char id[33];
    memcpy(id, a.launcher_id, sizeof(id));
    state_close(&a);

    /* The identity survives a restart. */
    assert_int_equal(state_open(&b, sub, err, sizeof(err)), 0);
    assert_string_equal(b.launcher_id, id);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    state_close(&b);
}

static void test_runs(void **state)
{
    struct state st;
    char err[512];
    assert_int_equal(state_open(&st, dir, err, sizeof(err)), 0);

    struct run_state rs = {0}, back;
    assert_int_equal(state_new_run_id(rs.run_id, sizeof(rs.run_id), "exec"), 0);
    assert_int_equal(strlen(rs.run_id), 17);
    assert_int_equal(state_run_load(&st, rs.run_id, &back, err, sizeof(err)), 0);

    snprintf(rs.container, sizeof(rs.container), "abc123");
    snprintf(rs.spec_sha256, sizeof(rs.spec_sha256), "%064d", 7);
    rs.offset = 12345678901ULL;
    rs.seq = 42;
    rs.started_ms = 1764331200123;
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    rs.offset++;
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    assert_int_equal(state_run_load(&st, rs.run_id, &back, err, sizeof(err)), 1);
    assert_string_equal(back.container, "abc123");
    assert_int_equal(back.offset, 12345678902ULL);
    assert_int_equal(back.seq, 42);
    assert_int_equal(back.started_ms, 1764331200123);
    assert_string_equal(back.spec_sha256, rs.spec_sha256);

    /* A run directory alone also counts as a run to clean up. */
    char path[256];
    state_run_dir(&st, "other-run", path, sizeof(path));
    assert_int_equal(mkdir(path, 0700), 0);
    /* A replacement that a killed launcher left half-written is no run, and goes. */
    char half[300];
    snprintf(half, sizeof(half), "%s/runs/%s.json.tmp-AbC123", dir, rs.run_id);
    FILE *hf = fopen(half, "w");
    assert_non_null(hf);
    fclose(hf);
    char ids[8][STATE_ID_MAX];
    int n = state_run_list(&st, ids, 8, err, sizeof(err));
    assert_int_equal(n, 2);
    assert_int_equal(access(half, F_OK), -1);
    assert_true((strcmp(ids[0], rs.run_id) == 0 && strcmp(ids[1], "other-run") == 0) ||
                (strcmp(ids[1], rs.run_id) == 0 && strcmp(ids[0], "other-run") == 0));

    assert_int_equal(state_run_forget(&st, rs.run_id, err, sizeof(err)), 0);
    assert_int_equal(state_run_forget(&st, rs.run_id, err, sizeof(err)), 0);
    assert_int_equal(state_run_list(&st, ids, 8, err, sizeof(err)), 1);

    /* A damaged run file is reported, not trusted. */
    snprintf(path, sizeof(path), "%s/runs/bad.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"run\":\"bad\"}", fp);
    fclose(fp);
    assert_int_equal(state_run_load(&st, "bad", &back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a run state"));
    state_close(&st);
}

/* The daemon's fields: saved only for server runs, read back, absent for exec's. */
static void test_daemon_fields_and_files(void **state)
{
    struct state st;
    struct run_state rs, back;
    char err[512], *text = NULL;
    assert_int_equal(state_open(&st, dir, err, sizeof(err)), 0);
    memset(&rs, 0, sizeof(rs));
    snprintf(rs.run_id, sizeof(rs.run_id), "r7-abc");
    rs.server_id = 7;
    rs.event_seq = 3;
    rs.kill_grace_ms = 10000;
    rs.offset = 4096;
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    assert_int_equal(state_run_load(&st, "r7-abc", &back, err, sizeof(err)), 1);
    assert_int_equal(back.server_id, 7);
    assert_int_equal(back.event_seq, 3);
    assert_int_equal(back.kill_grace_ms, 10000);
    assert_int_equal(back.offset, 4096);

    snprintf(rs.run_id, sizeof(rs.run_id), "exec-1");
    rs.server_id = 0;
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    assert_int_equal(state_run_load(&st, "exec-1", &back, err, sizeof(err)), 1);
    assert_int_equal(back.server_id, 0);
    assert_int_equal(back.event_seq, 0);

    assert_int_equal(state_file_read(&st, "server-id", &text, err, sizeof(err)), 0);
    assert_int_equal(state_file_write(&st, "server-id", "{\"launcher_id\":3}\n", err, sizeof(err)),
                     0);
    assert_int_equal(state_file_read(&st, "server-id", &text, err, sizeof(err)), 1);
    assert_string_equal(text, "{\"launcher_id\":3}\n");
    free(text);
    state_close(&st);
}

/* The run's spool key: saved as hex, read back whole, absent when there is none. */
static void test_run_key(void **state)
{
    struct state st;
    struct run_state rs, back;
    char err[512], path[256];
    assert_int_equal(state_open(&st, dir, err, sizeof(err)), 0);
    memset(&rs, 0, sizeof(rs));
    snprintf(rs.run_id, sizeof(rs.run_id), "exec-k");
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    assert_int_equal(state_run_load(&st, "exec-k", &back, err, sizeof(err)), 1);
    assert_false(back.has_key);

    rs.has_key = 1;
    for (size_t i = 0; i < STATE_KEY_LEN; i++)
        rs.key[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(state_run_save(&st, &rs, err, sizeof(err)), 0);
    assert_int_equal(state_run_load(&st, "exec-k", &back, err, sizeof(err)), 1);
    assert_true(back.has_key);
    assert_memory_equal(back.key, rs.key, STATE_KEY_LEN);

    /* A key that is not 64 lowercase hex digits makes the state unreadable. */
    snprintf(path, sizeof(path), "%s/runs/exec-k.json", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"run\":\"exec-k\",\"container\":\"\",\"spec_sha256\":\"\",\"offset\":0,"
          "\"seq\":0,\"started_ms\":0,\"key\":\"00FF\"}",
          fp);
    fclose(fp);
    assert_int_equal(state_run_load(&st, "exec-k", &back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key: not 64 hex digits"));
    state_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_fields_and_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
