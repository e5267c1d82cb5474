/*
 * Unit tests of fanout (fanout.h): on a store that is not shared, each call is exactly the local
 * notifies of before replicas and publishes nothing; the listener turns each payload of store.h's
 * grammar into the local notifies it names, and ignores anything else.
 *
 * libmicrohttpd's suspend and resume are replaced here, as in test_dispatch.c, so that each fake
 * connection counts its resumes. No store: a fanout that was not started never touches it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/dispatch.h"
#include "server/fanout.h"
#include "server/keycache.h"
#include "server/watch.h"

#include "common/dbuf.h"

#include <stdlib.h>
#include <string.h>

#define N 4

static char fake_conn[N];
static int resumed[N];

void MHD_suspend_connection(struct MHD_Connection *c)
{
    (void)c;
}

void MHD_resume_connection(struct MHD_Connection *c)
{
    resumed[(char *)c - fake_conn]++;
}

/* Waiters 0 and 1: polls of pool p1 (launchers 100, 101) with room for runs; 2: a poll of p2
 * (launcher 102); 3: a follow of run 7's log. */
static struct waiter w[N];

struct fixture {
    struct dispatch *d;
    struct watch *watch;
    struct keycache *keys;
    struct fanout *f;
};

static struct fixture fx;

static void sleep_all(void)
{
    for (int i = 0; i < N; i++)
        if (!w[i].on)
            assert_int_equal(dispatch_wait(fx.d, &w[i], dispatch_gen(fx.d)), 1);
    memset(resumed, 0, sizeof(resumed));
}

static int setup(void **state)
{
    (void)state;
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++) {
        w[i].conn = (struct MHD_Connection *)&fake_conn[i];
        w[i].kind = i < 3 ? WAIT_POLL : WAIT_RUN;
        w[i].launcher_id = 100 + i;
        w[i].takes_runs = 1;
        w[i].deadline_ms = INT64_MAX;
        strcpy(w[i].pool_id, i < 2 ? "pool-1" : "pool-2");
        w[i].run_id = 7;
    }
    fx.d = dispatch_new();
    fx.watch = watch_new(16);
    fx.keys = keycache_new();
    fx.f = fanout_new(NULL, fx.d, fx.watch, fx.keys);
    assert_non_null(fx.d);
    assert_non_null(fx.watch);
    assert_non_null(fx.keys);
    assert_non_null(fx.f);
    sleep_all();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        dispatch_handoff_done(fx.d, &w[i], 0);
    dispatch_shutdown(fx.d);
    watch_shutdown(fx.watch);
    fanout_free(fx.f);
    dispatch_free(fx.d);
    watch_free(fx.watch);
    keycache_free(fx.keys);
    return 0;
}

/* A counter from the Prometheus text that render writes. */
static unsigned long long counter(int (*render)(void *, struct dbuf *), void *obj, const char *name)
{
    struct dbuf b = DBUF_INIT(1 << 16);
    assert_int_equal(render(obj, &b), 0);
    assert_int_equal(dbuf_addch(&b, '\0'), 0);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = strstr(b.data, key);
    assert_non_null(at);
    unsigned long long v = strtoull(at + strlen(key), NULL, 10);
    dbuf_free(&b);
    return v;
}

static int render_watch(void *o, struct dbuf *b)
{
    return watch_render(o, b);
}

static int render_fanout(void *o, struct dbuf *b)
{
    return fanout_render(o, b);
}

static unsigned long long version(void)
{
    return counter(render_watch, fx.watch, "davit_watch_version");
}

static int total_resumed(void)
{
    int n = 0;
    for (int i = 0; i < N; i++)
        n += resumed[i];
    return n;
}

/* Each call's local notifies are those it replaced, and nothing is published. */
static void test_local_calls_notify_as_before(void **state)
{
    (void)state;
    unsigned long long v = version();
    fanout_runs(fx.f, "pool-1", 1, 0); /* one queued run: one wake-up, the oldest poll */
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(resumed[0], 1);
    assert_int_equal(version(), v + 1);

    fanout_runs(fx.f, "pool-1", 0, 2); /* claimed runs: the view only */
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(version(), v + 2);
    fanout_runs(fx.f, "pool-1", 0, 0); /* nothing changed: nothing at all */
    assert_int_equal(version(), v + 2);

    fanout_view(fx.f, "pool-2");
    fanout_view_all(fx.f);
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(version(), v + 4);

    fanout_launcher(fx.f, 102);
    assert_int_equal(resumed[2], 1);
    fanout_log(fx.f, 7);
    assert_int_equal(resumed[3], 1);
    assert_int_equal(version(), v + 4); /* log bytes are not in the views */

    dispatch_handoff_done(fx.d, &w[0], 0);
    sleep_all();
    fanout_run(fx.f, 7);
    assert_int_equal(resumed[3], 1);
    assert_int_equal(total_resumed(), 1);
    fanout_pool(fx.f, "pool-1");
    assert_int_equal(resumed[0] + resumed[1], 2);
    assert_int_equal(version(), v + 5);

    sleep_all();
    fanout_all(fx.f);
    assert_int_equal(total_resumed(), N);
    assert_int_equal(version(), v + 6);
    assert_int_equal(counter(render_fanout, fx.f, "davit_fanout_published_total"), 0);
}

/* Every payload of the grammar makes the notifies fanout.h names. */
static void test_receive_maps_payloads(void **state)
{
    (void)state;
    unsigned long long v = version();
    fanout_receive(fx.f, "r:pool-1:1");
    assert_int_equal(resumed[0], 1);
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(version(), v); /* a re-check's "r:" is no change to a view */
    dispatch_handoff_done(fx.d, &w[0], 0);
    sleep_all();
    fanout_receive(fx.f, "r:pool-1:99999999999"); /* a backlog: every poll of the pool */
    assert_int_equal(resumed[0] + resumed[1], 2);
    assert_int_equal(total_resumed(), 2);
    assert_int_equal(version(), v);

    fanout_receive(fx.f, "l:102");
    assert_int_equal(resumed[2], 1);
    fanout_receive(fx.f, "u:7");
    assert_int_equal(resumed[3], 1);
    assert_int_equal(version(), v);

    for (int i = 0; i < N; i++)
        dispatch_handoff_done(fx.d, &w[i], 0);
    sleep_all();
    fanout_receive(fx.f, "w:pool-2");
    assert_int_equal(version(), v + 1);
    fanout_receive(fx.f, "w");
    assert_int_equal(version(), v + 2);
    assert_int_equal(total_resumed(), 0);

    fanout_receive(fx.f, "p:pool-2");
    assert_int_equal(resumed[2], 1);
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(version(), v + 3);

    sleep_all();
    fanout_receive(fx.f, "a");
    assert_int_equal(total_resumed(), N);
    assert_int_equal(version(), v + 4);
    assert_int_equal(counter(render_fanout, fx.f, "davit_fanout_received_total"), 8);
    /* nothing received is published again */
    assert_int_equal(counter(render_fanout, fx.f, "davit_fanout_published_total"), 0);
}

/* What is not the grammar wakes nobody and bumps no view. */
static void test_receive_ignores_the_rest(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "x",
                                "ab",
                                "r:pool-1",
                                "r:pool-1:0",
                                "r:pool-1:-1",
                                "r:pool-1:1x",
                                "r::1",
                                "l:",
                                "l:abc",
                                "l:0",
                                "u:7 ",
                                "u:-7",
                                "p:",
                                "w:",
                                "p:a-pool-id-that-is-far-too-long-to-be-a-pool-id",
                                "r:a:b:1",
                                "a:1"};
    unsigned long long v = version();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        fanout_receive(fx.f, bad[i]);
    assert_int_equal(total_resumed(), 0);
    assert_int_equal(version(), v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_calls_notify_as_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_maps_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_ignores_the_rest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
