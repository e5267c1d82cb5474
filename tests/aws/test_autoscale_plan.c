/* The autoscaler's pure decisions (src/cli/autoscale.c) and its XML reading (src/cli/aws.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cli/cloud_http.h"
#include "cli/autoscale.h"
#include "cli/aws.h"

#define NOW    (1000LL * 1000 * 1000 * 1000)
#define MINUTE (60LL * 1000)

static const struct as_options opts = {
    .max_create = 5, .scale_down_delay_ms = 5 * MINUTE, .stray_after_ms = 10 * MINUTE};

/* A group of n InService instances i-0 … launched an hour ago, with desired n. */
static struct as_instance inst[16];
static struct as_worker work[16];

static struct as_group group(int min, int max, int n)
{
    for (int i = 0; i < n; i++) {
        snprintf(inst[i].id, sizeof(inst[i].id), "i-%d", i);
        snprintf(inst[i].lifecycle, sizeof(inst[i].lifecycle), "InService");
        inst[i].launch_ms = NOW - 60 * MINUTE;
        inst[i].workerless_since_ms = 0;
    }
    return (struct as_group){min, max, n, inst, (size_t)n};
}

/* Worker i on instance i-i, in state st, idle since idle_min minutes ago. */
static void worker(int i, enum as_worker_state st, int64_t idle_min)
{
    work[i].id = i + 1;
    work[i].state = st;
    work[i].idle_since_ms = st == AS_BUSY ? -1 : NOW - idle_min * MINUTE;
    work[i].runs = st == AS_BUSY; /* one run, one slot: the tests below set more */
    work[i].slots = 1;
    snprintf(work[i].instance_id, sizeof(work[i].instance_id), "i-%d", i);
}

static struct as_plan plan;

static void run(const struct as_group *g, int64_t pending, int n_workers)
{
    struct as_pool p = {pending, work, (size_t)n_workers};
    autoscale_plan(g, &p, &opts, NOW, &plan);
}

static void test_scale_out_capped_by_max_create_and_max(void **state)
{
    (void)state;
    struct as_group g = group(0, 20, 2);
    worker(0, AS_BUSY, 0);
    worker(1, AS_BUSY, 0);
    run(&g, 10, 2); /* demand 12, capacity 2: +5 at most */
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_SCALE_OUT);
    assert_int_equal(plan.d[0].new_desired, 7);
    g.max = 4;
    run(&g, 10, 2);
    assert_int_equal(plan.d[0].new_desired, 4);
    g = group(0, 2, 2);
    worker(0, AS_BUSY, 0);
    worker(1, AS_BUSY, 0);
    run(&g, 10, 2);
    assert_int_equal(plan.d[0].kind, AS_STEADY);
    assert_non_null(strstr(plan.d[0].reason, "max size 2"));
}

static void test_drained_workers_are_not_capacity(void **state)
{
    (void)state;
    struct as_group g = group(0, 5, 2);
    worker(0, AS_IDLE, 0);
    worker(1, AS_DRAINED, 0);
    run(&g, 2, 2);
    assert_int_equal(plan.capacity, 1);
    assert_int_equal(plan.d[0].kind, AS_SCALE_OUT);
    assert_int_equal(plan.d[0].new_desired, 3);
    worker(1, AS_DRAINING, 0);
    run(&g, 2, 2);
    assert_int_equal(plan.capacity, 1);
}

static void test_scale_in_oldest_idle_past_delay_never_below_min(void **state)
{
    (void)state;
    struct as_group g = group(1, 5, 4);
    worker(0, AS_IDLE, 2);  /* within the delay */
    worker(1, AS_IDLE, 30); /* idle longest */
    worker(2, AS_BUSY, 0);
    worker(3, AS_IDLE, 10);
    run(&g, 0, 4); /* target 1 (busy), capacity 4: excess 3, but only two past the delay */
    assert_int_equal(plan.n, 2);
    assert_int_equal(plan.d[0].kind, AS_SCALE_IN);
    assert_string_equal(plan.d[0].instance_id, "i-1");
    assert_int_equal(plan.d[0].worker_id, 2);
    assert_string_equal(plan.d[1].instance_id, "i-3");
    /* min 1 and desired 1: nothing goes (the decrement would be refused) */
    g = group(1, 5, 1);
    worker(0, AS_IDLE, 60);
    run(&g, 0, 1);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_STEADY);
    /* desired - min bounds the scale-in */
    g = group(2, 5, 3);
    worker(0, AS_IDLE, 60);
    worker(1, AS_IDLE, 60);
    worker(2, AS_IDLE, 60);
    run(&g, 0, 3);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_SCALE_IN);
}

static void test_hold_when_desired_and_workers_disagree(void **state)
{
    (void)state;
    struct as_group g = group(0, 5, 3);
    inst[2].launch_ms = NOW - MINUTE; /* booting */
    worker(0, AS_IDLE, 60);
    worker(1, AS_IDLE, 60);
    run(&g, 0, 2);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_HOLD);
}

static void test_stray_terminated_replaced_at_min(void **state)
{
    (void)state;
    struct as_group g = group(0, 5, 2);
    worker(0, AS_IDLE, 60);
    run(&g, 0, 1); /* i-1 has no worker for an hour */
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_STRAY);
    assert_string_equal(plan.d[0].instance_id, "i-1");
    assert_int_equal(plan.d[0].decrement, 1);
    g = group(2, 5, 2);
    worker(0, AS_IDLE, 60);
    run(&g, 0, 1);
    assert_int_equal(plan.d[0].kind, AS_STRAY);
    assert_int_equal(plan.d[0].decrement, 0); /* at min: replaced, not removed */
    /* a worker on another instance (not this group's) is not capacity */
    g = group(0, 5, 1);
    worker(0, AS_IDLE, 60);
    snprintf(work[0].instance_id, sizeof(work[0].instance_id), "i-elsewhere");
    inst[0].launch_ms = NOW - MINUTE;
    run(&g, 0, 1);
    assert_int_equal(plan.registered, 0);
    assert_int_equal(plan.d[0].kind, AS_HOLD);
}

static void test_stray_counts_from_when_it_was_first_seen_workerless(void **state)
{
    (void)state;
    struct as_group g = group(0, 4, 2); /* launched an hour ago */
    worker(0, AS_BUSY, 0);
    inst[1].workerless_since_ms = NOW - 5 * MINUTE; /* lost its worker 5 minutes ago */
    run(&g, 0, 1);
    assert_int_equal(plan.d[0].kind, AS_HOLD);
    inst[1].workerless_since_ms = NOW - 11 * MINUTE;
    run(&g, 0, 1);
    assert_int_equal(plan.d[0].kind, AS_STRAY);
    inst[1].workerless_since_ms = 0; /* not tracked: the launch time */
    run(&g, 0, 1);
    assert_int_equal(plan.d[0].kind, AS_STRAY);
}

static void test_fails_closed_on_unknown_states_and_unlabelled_workers(void **state)
{
    (void)state;
    /* A state this version does not know is busy: its worker is not scaled in. */
    assert_int_equal(autoscale_worker_state_or_busy("paused"), AS_BUSY);
    assert_int_equal(autoscale_worker_state_or_busy(NULL), AS_BUSY);
    assert_int_equal(autoscale_worker_state_or_busy("idle"), AS_IDLE);
    /* i-1 has no worker for an hour, but the pool has a worker with no instance_id: it may be
     * that one's, so no stray, a hold naming it. */
    struct as_group g = group(0, 4, 2);
    worker(0, AS_BUSY, 0);
    worker(1, AS_BUSY, 0);
    work[1].instance_id[0] = '\0';
    run(&g, 0, 2);
    assert_int_equal(plan.unlabelled, 1);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.d[0].kind, AS_HOLD);
    assert_string_equal(plan.d[0].instance_id, "i-1");
    /* With every worker labelled, it is a stray. */
    snprintf(work[1].instance_id, sizeof(work[1].instance_id), "i-9");
    run(&g, 0, 2);
    assert_int_equal(plan.d[0].kind, AS_STRAY);
}

static void test_terminating_instances_are_not_counted(void **state)
{
    (void)state;
    struct as_group g = group(0, 5, 2);
    snprintf(inst[1].lifecycle, sizeof(inst[1].lifecycle), "Terminating:Wait");
    g.desired = 1;
    worker(0, AS_BUSY, 0);
    worker(1, AS_DRAINING, 0);
    run(&g, 0, 2);
    assert_int_equal(plan.registered, 1);
    assert_int_equal(plan.d[0].kind, AS_STEADY);
    assert_int_equal(autoscale_instance_live("Pending:Wait"), 1);
    assert_int_equal(autoscale_instance_live("Standby"), 0);
}

/* Issue 16, M5: a launcher with DAVIT_LAUNCHER_CONCURRENCY=2 and one free slot takes the next
 * run; the plan counts in runs and divides by the slots an instance has. */
static void test_demand_in_slots(void **state)
{
    (void)state;
    struct as_group g = group(0, 10, 1);
    worker(0, AS_BUSY, 0);
    work[0].slots = 2; /* one run of two */
    run(&g, 3, 1);     /* demand 1 + 3 = 4 runs: 2 instances of 2 slots, not 4 */
    assert_int_equal(plan.demand, 4);
    assert_int_equal(plan.slots, 2);
    assert_int_equal(plan.target, 2);
    assert_int_equal(plan.d[0].kind, AS_SCALE_OUT);
    assert_int_equal(plan.d[0].new_desired, 2);
    run(&g, 1, 1); /* 2 runs: the free slot takes the pending one */
    assert_int_equal(plan.d[0].kind, AS_STEADY);
    run(&g, 2, 1); /* 3 runs: ceil(3 / 2) */
    assert_int_equal(plan.d[0].new_desired, 2);

    /* --slots-per-instance over what the workers report. */
    struct as_options o1 = opts;
    o1.slots_per_instance = 1;
    struct as_pool p = {3, work, 1};
    autoscale_plan(&g, &p, &o1, NOW, &plan);
    assert_int_equal(plan.d[0].new_desired, 4);

    /* The most common report wins (a tie: the smaller); an unreported one (0) is not a vote. */
    g = group(0, 10, 4);
    worker(0, AS_BUSY, 0);
    worker(1, AS_BUSY, 0);
    worker(2, AS_BUSY, 0);
    worker(3, AS_BUSY, 0);
    work[0].slots = 4;
    work[1].slots = 4;
    work[2].slots = 0;
    work[3].slots = 2;
    work[0].runs = 4;
    work[1].runs = 4;
    run(&g, 8, 4); /* 4 + 4 + 1 + 1 + 8 = 18 runs, 4 slots: 5 instances */
    assert_int_equal(plan.slots, 4);
    assert_int_equal(plan.d[0].new_desired, 5);
    work[1].slots = 2; /* 4 and 2 tie */
    work[3].slots = 0;
    run(&g, 8, 4);
    assert_int_equal(plan.slots, 2);
    assert_int_equal(plan.d[0].new_desired, 9);

    /* Scale-in still drains idle workers only: a half-busy worker stays. */
    g = group(0, 10, 3);
    worker(0, AS_BUSY, 0);
    worker(1, AS_IDLE, 30);
    worker(2, AS_IDLE, 20);
    for (int i = 0; i < 3; i++)
        work[i].slots = 2;
    run(&g, 1, 3); /* 2 runs: one instance */
    assert_int_equal(plan.target, 1);
    assert_int_equal(plan.n, 2);
    assert_int_equal(plan.d[0].kind, AS_SCALE_IN);
    assert_int_equal(plan.d[0].worker_id, 2);
    assert_int_equal(plan.d[1].worker_id, 3);

    /* Failing closed: a busy worker (or one in an unknown state) reporting no runs holds one. */
    g = group(0, 10, 1);
    worker(0, AS_BUSY, 0);
    work[0].runs = 0;
    work[0].slots = 2;
    run(&g, 2, 1);
    assert_int_equal(plan.demand, 3);
    assert_int_equal(plan.d[0].new_desired, 2);
}

static void test_after_drain_backoff_deadline(void **state)
{
    (void)state;
    assert_int_equal(autoscale_after_drain(AS_DRAINED), 1);
    assert_int_equal(autoscale_after_drain(AS_DRAINING), 0);
    assert_int_equal(autoscale_backoff(0, 500, 15000, 0, 100000), 500);
    assert_int_equal(autoscale_backoff(500, 500, 15000, 0, 100000), 1000);
    assert_int_equal(autoscale_backoff(10000, 500, 15000, 0, 100000), 15000);
    assert_int_equal(autoscale_backoff(10000, 500, 15000, 99000, 100000), 1000);
    assert_int_equal(autoscale_backoff(10000, 500, 15000, 100000, 100000), 0);
    /* 3600 s hook: 360 s margin; 30 s hook: 5 s; 6 s hook: 3 s */
    /* Held up to AWS's global timeout (100 heartbeat timeouts, at most 48 h), less the margin
     * (a tenth of the heartbeat timeout, at most 60 s); a heartbeat every timeout less it. */
    assert_int_equal(autoscale_hook_margin(3600000), 60000);
    assert_int_equal(autoscale_hook_margin(30000), 3000);
    assert_int_equal(autoscale_hook_deadline(0, 3600000), 48LL * 3600 * 1000 - 60000);
    assert_int_equal(autoscale_hook_deadline(0, 30000), 3000000 - 3000);
    assert_int_equal(autoscale_hook_deadline(0, 6000), 600000 - 600);
    assert_int_equal(autoscale_hook_heartbeat_due(1000, 30000), 1000 + 27000);
    assert_int_equal(autoscale_hook_heartbeat_due(0, 7200000), 7140000);
    enum as_worker_state st;
    assert_int_equal(autoscale_worker_state("drained", &st), 0);
    assert_int_equal(st, AS_DRAINED);
    assert_int_equal(autoscale_worker_state("offline", &st), -1);
}

static char seen[2048];

static void collect(void *ud, const char *path, const char *text)
{
    (void)ud;
    if (text && *text && strlen(seen) + strlen(path) + strlen(text) + 3 < sizeof(seen)) {
        strcat(seen, path);
        strcat(seen, "=");
        strcat(seen, text);
        strcat(seen, ";");
    }
}

static void test_xml_walk_and_time(void **state)
{
    (void)state;
    char err[256];
    static const char xml[] =
        "<?xml version=\"1.0\"?>\n<R xmlns=\"http://x/\"><a:B xmlns:a=\"http://y/\"><C>1 &amp; "
        "2</C></a:B><D/></R>";
    seen[0] = '\0';
    assert_int_equal(aws_xml_walk(xml, strlen(xml), collect, NULL, err, sizeof(err)), 0);
    assert_string_equal(seen, "R/B/C=1 & 2;");
    assert_int_equal(aws_xml_walk("<R><C></R>", 10, collect, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not well-formed"));
    /* expat refuses entity expansion bombs (billion laughs) */
    static const char bomb[] = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">"
                               "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
                               "\"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
                               "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e "
                               "\"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
                               "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g "
                               "\"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
                               "]><r>&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;</r>";
    seen[0] = '\0';
    assert_int_equal(aws_xml_walk(bomb, strlen(bomb), collect, NULL, err, sizeof(err)), -1);
    assert_int_equal(cloud_http_time("2026-12-03T13:00:00.250Z"), 1796302800250LL);
    assert_int_equal(cloud_http_time("2026-12-03T13:00:00Z"), 1796302800000LL);
    assert_int_equal(cloud_http_time("2026-12-03 13:00"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scale_out_capped_by_max_create_and_max),
        cmocka_unit_test(test_drained_workers_are_not_capacity),
        cmocka_unit_test(test_scale_in_oldest_idle_past_delay_never_below_min),
        cmocka_unit_test(test_hold_when_desired_and_workers_disagree),
        cmocka_unit_test(test_stray_terminated_replaced_at_min),
        cmocka_unit_test(test_terminating_instances_are_not_counted),
        cmocka_unit_test(test_fails_closed_on_unknown_states_and_unlabelled_workers),
        cmocka_unit_test(test_stray_counts_from_when_it_was_first_seen_workerless),
        cmocka_unit_test(test_demand_in_slots),
        cmocka_unit_test(test_after_drain_backoff_deadline),
        cmocka_unit_test(test_xml_walk_and_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
