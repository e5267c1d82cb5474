/*
 * Unit tests of dispatch (dispatch.h): one wake-up per queued run, handed to
 * the oldest waiter that can take it, and never dropped.
 *
 * libmicrohttpd's suspend and resume are replaced here (the executable's
 * definitions come before the shared library's), so that each fake
 * connection counts its resumes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/dispatch.h"

#include <string.h>

#define N 8

static char fake_conn[N];
static int resumed[N];
static int suspended[N];

static int conn_index(struct MHD_Connection *c)
{
    return (int)((char *)c - fake_conn);
}

void MHD_suspend_connection(struct MHD_Connection *c)
{
    suspended[conn_index(c)]++;
}

void MHD_resume_connection(struct MHD_Connection *c)
{
    resumed[conn_index(c)]++;
}

static struct waiter w[N];

static int setup(void **state)
{
    (void)state;
    memset(resumed, 0, sizeof(resumed));
    memset(suspended, 0, sizeof(suspended));
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++) {
        w[i].conn = (struct MHD_Connection *)&fake_conn[i];
        w[i].kind = WAIT_POLL;
        w[i].launcher_id = 100 + i;
        w[i].takes_runs = 1;
        w[i].deadline_ms = 1000000;
        strcpy(w[i].pool_id, "p1");
    }
    return 0;
}

/* Suspends waiter i as its request would: reads gen, then waits. */
static void sleep_on(struct dispatch *d, int i)
{
    assert_int_equal(dispatch_wait(d, &w[i], dispatch_gen(d)), 1);
}

/* A dispatch with waiters 0 .. n-1 asleep, in that order. */
static struct dispatch *with_asleep(int n)
{
    struct dispatch *d = dispatch_new();
    assert_non_null(d);
    for (int i = 0; i < n; i++)
        sleep_on(d, i);
    return d;
}

static int total_resumed(void)
{
    int n = 0;
    for (int i = 0; i < N; i++)
        n += resumed[i];
    return n;
}

static void test_one_wakeup_per_run_oldest_first(void **state)
{
    (void)state;
    struct dispatch *d = with_asleep(5);
    strcpy(w[5].pool_id, "p2");
    sleep_on(d, 5);

    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(total_resumed(), 1);
    assert_int_equal(resumed[0], 1);
    assert_true(w[0].handed);
    assert_int_equal(dispatch_wakeups(d), 1);

    dispatch_notify_runs(d, "p1", 2);
    assert_int_equal(total_resumed(), 3);
    assert_int_equal(resumed[1], 1);
    assert_int_equal(resumed[2], 1);

    /* more runs than waiters: the rest wait in the store for the next poll */
    dispatch_notify_runs(d, "p1", 10);
    assert_int_equal(total_resumed(), 5);
    assert_int_equal(resumed[5], 0); /* another pool's waiter sleeps on */
    assert_int_equal(dispatch_wakeups(d), 5);

    for (int i = 0; i < 5; i++)
        dispatch_handoff_done(d, &w[i], 0);
    dispatch_shutdown(d);
    assert_int_equal(resumed[5], 1);
    assert_int_equal(dispatch_wakeups(d), 5); /* shutdown is not a notify */
    dispatch_free(d);
}

static void test_rewait_goes_to_the_back(void **state)
{
    (void)state;
    struct dispatch *d = with_asleep(2);
    dispatch_notify_runs(d, "p1", 1);
    /* the run was gone (claimed by a poller that was not asleep): it waits again */
    dispatch_handoff_done(d, &w[0], 0);
    assert_false(w[0].handed);
    sleep_on(d, 0);
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(resumed[1], 1);
    assert_int_equal(resumed[0], 1);
    dispatch_handoff_done(d, &w[1], 0);
    dispatch_shutdown(d);
    dispatch_free(d);
}

static void test_handoff_passes_on_when_the_request_ends(void **state)
{
    (void)state;
    struct dispatch *d = with_asleep(2);
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(resumed[0], 1);
    /* its connection closed before its poll claimed the run */
    dispatch_forget(d, &w[0]);
    assert_int_equal(resumed[1], 1);
    assert_true(w[1].handed);
    assert_false(w[0].handed);
    assert_int_equal(dispatch_wakeups(d), 2);
    /* forgetting it again (the next request's end) passes nothing */
    dispatch_forget(d, &w[0]);
    assert_int_equal(total_resumed(), 2);
    dispatch_handoff_done(d, &w[1], 0);
    dispatch_free(d);
}

static void test_handoff_passes_on_without_room(void **state)
{
    (void)state;
    struct dispatch *d = with_asleep(3);
    dispatch_notify_runs(d, "p1", 1);
    /* drained meanwhile: no room, the run is still queued */
    dispatch_handoff_done(d, &w[0], 1);
    assert_int_equal(resumed[1], 1);
    assert_true(w[1].handed);
    /* room, claimed nothing: the queue is empty, the hand-off ends */
    dispatch_handoff_done(d, &w[1], 0);
    assert_int_equal(total_resumed(), 2);
    assert_int_equal(resumed[2], 0);
    /* a waiter not handed a run passes nothing */
    dispatch_handoff_done(d, &w[0], 1);
    assert_int_equal(total_resumed(), 2);
    dispatch_shutdown(d);
    dispatch_free(d);
}

static void test_full_waiters_get_messages_not_runs(void **state)
{
    (void)state;
    struct dispatch *d = dispatch_new();
    assert_non_null(d);
    w[0].takes_runs = 0; /* busy with a run, oldest */
    sleep_on(d, 0);
    sleep_on(d, 1);
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(resumed[0], 0);
    assert_int_equal(resumed[1], 1);
    dispatch_handoff_done(d, &w[1], 0);
    /* its run ended: a notify for its launcher wakes it */
    dispatch_notify_launcher(d, w[0].launcher_id);
    assert_int_equal(resumed[0], 1);
    assert_false(w[0].timed_out);
    /* a message for every launcher of the pool (cycle) wakes them all */
    sleep_on(d, 0);
    sleep_on(d, 1);
    w[2].launcher_id = 100 + 1024; /* same hash bucket as waiter 0 */
    sleep_on(d, 2);
    dispatch_notify_launcher(d, w[2].launcher_id);
    assert_int_equal(resumed[2], 1);
    assert_int_equal(resumed[0], 1);
    sleep_on(d, 2);
    dispatch_notify_pool(d, "p1");
    assert_int_equal(resumed[0], 2);
    assert_int_equal(resumed[1], 2);
    assert_int_equal(resumed[2], 2);
    assert_false(w[0].handed || w[1].handed || w[2].handed);
    dispatch_free(d);
}

static void test_notify_between_look_and_wait(void **state)
{
    (void)state;
    struct dispatch *d = dispatch_new();
    assert_non_null(d);
    /* a poller looked at the store (no run), then a run was queued while
     * nobody slept: it must look again instead of sleeping */
    uint64_t gen = dispatch_gen(d);
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(dispatch_wait(d, &w[0], gen), 0);
    assert_int_equal(suspended[0], 0);
    /* also when the notify went to another waiter */
    sleep_on(d, 1);
    gen = dispatch_gen(d);
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(dispatch_wait(d, &w[0], gen), 0);
    dispatch_handoff_done(d, &w[1], 0);
    dispatch_free(d);
}

static void test_deadline_and_followers(void **state)
{
    (void)state;
    struct dispatch *d = dispatch_new();
    assert_non_null(d);
    w[0].deadline_ms = 10;
    sleep_on(d, 0);
    sleep_on(d, 1);
    w[2].kind = WAIT_RUN;
    w[2].run_id = 7;
    sleep_on(d, 2);
    dispatch_expire(d, 10);
    assert_int_equal(resumed[0], 1);
    assert_true(w[0].timed_out);
    assert_int_equal(resumed[1], 0);
    assert_int_equal(dispatch_wakeups(d), 0); /* a deadline is not a notify */
    dispatch_notify_run(d, 8);
    assert_int_equal(resumed[2], 0);
    dispatch_notify_run(d, 7);
    assert_int_equal(resumed[2], 1);
    assert_int_equal(resumed[1], 0);
    dispatch_notify_all(d);
    assert_int_equal(resumed[1], 1);
    dispatch_shutdown(d);
    assert_int_equal(dispatch_wait(d, &w[0], dispatch_gen(d)), -1);
    dispatch_free(d);
}

static void test_reserve_then_deliver(void **state)
{
    (void)state;
    struct dispatch *d = with_asleep(2);
    strcpy(w[2].pool_id, "p2");
    sleep_on(d, 2);
    w[3].takes_runs = 0; /* full: never handed a run */
    strcpy(w[3].pool_id, "p3");
    sleep_on(d, 3);
    assert_int_equal(dispatch_waiting(d), 4);

    /* the oldest taker of the pool, off the list but still suspended */
    struct waiter *t = dispatch_reserve(d, "p1");
    assert_ptr_equal(t, &w[0]);
    assert_int_equal(total_resumed(), 0);
    assert_int_equal(dispatch_waiting(d), 3);
    /* neither a notify of its pool nor its deadline reaches it meanwhile */
    dispatch_notify_runs(d, "p1", 1);
    assert_int_equal(resumed[1], 1);
    dispatch_handoff_done(d, &w[1], 0);
    dispatch_expire(d, 2000000);
    assert_int_equal(resumed[0], 0);
    dispatch_deliver(d, t);
    assert_int_equal(resumed[0], 1);
    assert_false(w[0].handed || w[0].timed_out); /* nothing owed: the run is its own */
    assert_int_equal(dispatch_wakeups(d), 2);

    assert_null(dispatch_reserve(d, "p1")); /* none asleep */
    assert_null(dispatch_reserve(d, "p3")); /* no taker */
    assert_null(dispatch_reserve(d, "p9")); /* unknown pool */
    dispatch_free(d);
}

static void test_expiry_sends_nobody_back_to_the_store(void **state)
{
    (void)state;
    struct dispatch *d = dispatch_new();
    assert_non_null(d);
    w[0].deadline_ms = 10;
    sleep_on(d, 0);
    /* a poll of another pool looked at the store, then an expiry came */
    strcpy(w[1].pool_id, "p2");
    uint64_t gen = dispatch_gen(d);
    dispatch_expire(d, 10);
    assert_int_equal(resumed[0], 1);
    assert_int_equal(dispatch_wait(d, &w[1], gen), 1); /* it sleeps: nothing changed */
    /* a requeue of unknown pools does send it back */
    gen = dispatch_gen(d);
    dispatch_notify_all(d);
    assert_int_equal(dispatch_wait(d, &w[2], gen), 0);
    dispatch_shutdown(d);
    dispatch_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_wakeup_per_run_oldest_first, setup),
        cmocka_unit_test_setup(test_rewait_goes_to_the_back, setup),
        cmocka_unit_test_setup(test_handoff_passes_on_when_the_request_ends, setup),
        cmocka_unit_test_setup(test_handoff_passes_on_without_room, setup),
        cmocka_unit_test_setup(test_full_waiters_get_messages_not_runs, setup),
        cmocka_unit_test_setup(test_notify_between_look_and_wait, setup),
        cmocka_unit_test_setup(test_deadline_and_followers, setup),
        cmocka_unit_test_setup(test_reserve_then_deliver, setup),
        cmocka_unit_test_setup(test_expiry_sends_nobody_back_to_the_store, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
