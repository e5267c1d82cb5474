/*
 * Unit tests for job: what a run's thread says when it cannot start, and
 * what it leaves alone.
 *
 * The faults are simulated: the test links with --wrap for pthread_create
 * and shipper_init (a real thread limit or a failed allocation cannot be
 * had on demand), so that job.c's calls land here when a test asks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/log.h"
#include "launcher/job.h"
#include "launcher/shipper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __real_shipper_init(struct shipper *sh, int64_t run_id, const char *path, uint64_t acked,
                        uint64_t seed);
int __wrap_shipper_init(struct shipper *sh, int64_t run_id, const char *path, uint64_t acked,
                        uint64_t seed);

static int fail_create;  /* pthread_create returns EAGAIN */
static int fail_shipper; /* shipper_init fails as when out of memory */

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (fail_create)
        return EAGAIN; /* as pthread_create does: errno is not set */
    return __real_pthread_create(t, a, fn, arg);
}

int __wrap_shipper_init(struct shipper *sh, int64_t run_id, const char *path, uint64_t acked,
                        uint64_t seed)
{
    int rc = __real_shipper_init(sh, run_id, path, acked, seed);
    if (fail_shipper && rc == 0) {
        free(sh->path);
        sh->path = NULL;
        return -1;
    }
    return rc;
}

static void test_thread_create_error_named(void **state)
{
    (void)state;
    struct job_env env;
    struct job *j = NULL;
    char err[512];
    memset(&env, 0, sizeof(env));
    fail_create = 1;
    errno = 0; /* what a strerror(errno) would wrongly show: "Success" */
    int rc = job_start(&env, 7, json_object(), NULL, &j, err, sizeof(err));
    fail_create = 0;
    assert_int_equal(rc, -1);
    assert_null(j);
    assert_non_null(strstr(err, "run 7: cannot start its thread"));
    assert_non_null(strstr(err, strerror(EAGAIN)));
}

static int ended_calls;
static void on_ended(void *arg)
{
    (void)arg;
    ended_calls++;
}

static void test_setup_error_named(void **state)
{
    (void)state;
    struct state st;
    struct job_env env;
    struct job *j = NULL;
    char err[512], *logbuf = NULL;
    size_t loglen = 0;
    memset(&st, 0, sizeof(st));
    st.dir = "/nonexistent-test-job";
    snprintf(st.launcher_id, sizeof(st.launcher_id), "0123456789abcdef");
    memset(&env, 0, sizeof(env));
    env.state = &st;
    env.ended = on_ended;
    FILE *log = open_memstream(&logbuf, &loglen);
    assert_non_null(log);
    log_setup(LOG_TEXT, 0, log);
    fail_shipper = 1;
    assert_int_equal(job_start(&env, 8, json_object(), NULL, &j, err, sizeof(err)), 0);
    job_join(j); /* the thread gives up before it needs the server or the Engine */
    fail_shipper = 0;
    log_setup(LOG_TEXT, 0, NULL);
    fclose(log);
    assert_int_equal(ended_calls, 1);
    assert_non_null(strstr(logbuf, "cannot carry the run"));
    assert_non_null(strstr(logbuf, "error=\"out of memory\""));
    free(logbuf);
}

/* A set-up that fails before the shipper was used frees it without closing fd 0 (stdin). */
static void test_failed_setup_keeps_stdin(void **state)
{
    (void)state;
    struct state st;
    struct launcher_config cfg;
    struct credentials cred;
    struct job_env env;
    struct job *j = NULL;
    char err[512], host[] = "bogus://engine";
    memset(&st, 0, sizeof(st));
    memset(&cfg, 0, sizeof(cfg));
    memset(&cred, 0, sizeof(cred));
    st.dir = "/nonexistent-test-job";
    snprintf(st.launcher_id, sizeof(st.launcher_id), "0123456789abcdef");
    cfg.docker_host = host; /* docker_open refuses it */
    snprintf(cred.endpoint, sizeof(cred.endpoint), "http://127.0.0.1:1");
    memset(&env, 0, sizeof(env));
    env.state = &st;
    env.cfg = &cfg;
    env.cred = &cred;
    if (fcntl(0, F_GETFD) < 0)
        assert_int_equal(open("/dev/null", O_RDONLY), 0);
    assert_int_equal(job_start(&env, 9, json_object(), NULL, &j, err, sizeof(err)), 0);
    job_join(j);
    assert_true(fcntl(0, F_GETFD) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_create_error_named),
        cmocka_unit_test(test_setup_error_named),
        cmocka_unit_test(test_failed_setup_keeps_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
