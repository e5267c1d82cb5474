/*
 * autoscale: the decisions of `davit autoscale` (docs/autoscale.md), as pure
 * functions: a snapshot of the Auto Scaling group and of the pool in, a plan
 * out. No I/O, no clock, no state: cmd_autoscale.c gathers the snapshot,
 * carries the plan out and logs it.
 *
 * The algorithm (issue 16): demand = the pending runs plus the runs busy workers
 * hold, in runs; the instances it needs = ceil(demand / slots per instance)
 * (the runs one launcher takes at once), clamped to the group's min and max;
 * scale out by at most max_create instances a tick;
 * scale in only idle workers idle for longer than the scale-down delay, by
 * draining then terminating them (the drain's answer decides:
 * autoscale_after_drain); an instance with no worker after stray_after is
 * terminated; and no scaling change in a tick where the group's desired
 * capacity and the workers registered on its instances disagree. It fails
 * closed: a worker in a state it does not know counts as busy, and while the
 * pool has workers with no instance_id metadata an instance with no worker
 * may be theirs, so it is not terminated as a stray (AS_HOLD instead).
 */
#ifndef DAVIT_CLI_AUTOSCALE_H
#define DAVIT_CLI_AUTOSCALE_H

#include <stddef.h>
#include <stdint.h>

/* An instance id: AWS's "i-" and 17 hex digits, an Azure scale set VM's instanceId, a GCE
 * instance name (at most 63 characters); and its NUL. */
#define AS_ID_SIZE 64
/* A lifecycle state ("Terminating:Wait", the longest is "Warmed:Terminating:Proceed"). */
#define AS_STATE_SIZE 40
/* The longest reason a decision gives, with its NUL. */
#define AS_REASON_SIZE 200
/* The most decisions one plan holds: one per instance at most, and a group holds fewer. */
#define AS_PLAN_MAX 256

struct as_instance {
    char id[AS_ID_SIZE];
    char lifecycle[AS_STATE_SIZE]; /* as Auto Scaling names it: InService, Terminating:Wait… */
    int64_t launch_ms;             /* its launch time (EC2), or -1 when not known */
    /* Since when it has been seen with no worker (tracked across ticks with --every), or 0 (not
     * tracked: the launch time alone counts). */
    int64_t workerless_since_ms;
};

struct as_group {
    int min, max, desired;
    const struct as_instance *instances;
    size_t n_instances;
};

enum as_worker_state { AS_IDLE, AS_BUSY, AS_DRAINING, AS_DRAINED };

struct as_worker {
    int64_t id;
    enum as_worker_state state;
    int64_t idle_since_ms;        /* -1 while busy */
    char instance_id[AS_ID_SIZE]; /* its instance_id metadata, or "" */
    int64_t runs;                 /* the runs it holds (a busy worker counts at least 1) */
    int64_t slots; /* the runs it takes at once (its launcher's capacity), or 0 when not known */
};

struct as_pool {
    int64_t pending;
    const struct as_worker *workers;
    size_t n_workers;
};

struct as_options {
    int max_create;              /* instances added a tick, at most (>= 1) */
    int64_t scale_down_delay_ms; /* idle for longer than this before a worker may go */
    int64_t stray_after_ms; /* an instance with no worker for longer (since its launch, and since
                               workerless_since_ms) is a stray */
    /* The runs one instance's launcher takes at once (--slots-per-instance), or 0: the slots most
     * of the pool's workers report, 1 when none does. */
    int64_t slots_per_instance;
};

enum as_kind {
    AS_STEADY,    /* nothing to do */
    AS_HOLD,      /* desired capacity and registered workers disagree: no change this tick */
    AS_SCALE_OUT, /* set desired capacity to new_desired */
    AS_SCALE_IN,  /* drain worker_id, then (autoscale_after_drain) terminate instance_id */
    AS_STRAY,     /* terminate instance_id, decrementing desired capacity when decrement */
};

struct as_decision {
    enum as_kind kind;
    int64_t worker_id;            /* AS_SCALE_IN */
    char instance_id[AS_ID_SIZE]; /* AS_SCALE_IN, AS_STRAY */
    int new_desired;              /* AS_SCALE_OUT */
    int decrement;                /* AS_STRAY */
    char reason[AS_REASON_SIZE];
};

struct as_plan {
    /* The numbers the decisions come from, for the log and /metrics: demand in runs, capacity
     * (busy + idle), busy, idle, drained and registered in workers, slots per instance. */
    int64_t demand, capacity, busy, idle, drained, registered, slots;
    int64_t unlabelled; /* the pool's workers with no instance_id metadata */
    int target;         /* instances: ceil(demand / slots), clamped to min and max */
    size_t n;
    struct as_decision d[AS_PLAN_MAX];
};

/* The decision's name in the log and in /metrics ("scale_out", …). */
const char *autoscale_kind_name(enum as_kind kind);

/* Reads a worker state as the scaling endpoint names it; -1 for another word. */
int autoscale_worker_state(const char *s, enum as_worker_state *out);
/* The same, failing closed: a state this version does not know (or none) is AS_BUSY, never
 * dropped, so that its worker is neither scaled in nor its instance taken for a stray. */
enum as_worker_state autoscale_worker_state_or_busy(const char *s);

/*
 * An instance that counts toward desired capacity: launching or in service
 * (Pending*, InService), not terminating, detaching or on standby.
 */
int autoscale_instance_live(const char *lifecycle);

/*
 * The plan for one tick at now_ms. Never fails: a plan holds at least one
 * decision (AS_STEADY or AS_HOLD when nothing else), each with its reason.
 * Instances in a Terminating state are the lifecycle hook's (not planned
 * here) and not capacity; so are drained and draining workers.
 */
void autoscale_plan(const struct as_group *g, const struct as_pool *p, const struct as_options *o,
                    int64_t now_ms, struct as_plan *out);

/* What to do after draining a scale-in candidate: terminate it (1) when the drain's answer shows
 * it drained (no runs), else (0) undrain it and leave its instance alone. */
int autoscale_after_drain(enum as_worker_state after);

/*
 * The lifecycle hook's wait: the pause in ms after a pause of prev_ms (0 for the first),
 * doubling from first_ms up to cap_ms, and never past deadline_ms - now_ms. 0 when the deadline
 * is reached: complete the action now.
 */
int64_t autoscale_backoff(int64_t prev_ms, int64_t first_ms, int64_t cap_ms, int64_t now_ms,
                          int64_t deadline_ms);

/*
 * The lifecycle hook's timing. AWS ends a waiting termination when no heartbeat came for the
 * hook's heartbeat timeout, and at the latest at its global timeout (100 heartbeat timeouts or
 * 48 h, whichever is smaller) after it began. The autoscaler records a heartbeat every heartbeat
 * timeout less the margin, and completes the action itself at the global timeout less the margin
 * when the worker still holds runs. The margin (a tenth of the heartbeat timeout, at most 60 s)
 * is for the calls on the way.
 */
int64_t autoscale_hook_margin(int64_t heartbeat_timeout_ms);
/* When the next heartbeat is due after one (or the first sight) at last_ms. */
int64_t autoscale_hook_heartbeat_due(int64_t last_ms, int64_t heartbeat_timeout_ms);
/* When a lifecycle action must be completed at the latest, it being first seen at seen_ms. */
int64_t autoscale_hook_deadline(int64_t seen_ms, int64_t heartbeat_timeout_ms);

#endif
