/* The autoscaler's decisions, pure (autoscale.h; docs/autoscale.md, "The algorithm"). */
#include "cli/autoscale.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *autoscale_kind_name(enum as_kind kind)
{
    switch (kind) {
    case AS_STEADY:
        return "steady";
    case AS_HOLD:
        return "hold";
    case AS_SCALE_OUT:
        return "scale_out";
    case AS_SCALE_IN:
        return "scale_in";
    case AS_STRAY:
        return "stray";
    }
    return "?";
}

int autoscale_worker_state(const char *s, enum as_worker_state *out)
{
    static const char *const names[] = {"idle", "busy", "draining", "drained"};
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum as_worker_state)i;
            return 0;
        }
    return -1;
}

enum as_worker_state autoscale_worker_state_or_busy(const char *s)
{
    enum as_worker_state st;
    return autoscale_worker_state(s, &st) < 0 ? AS_BUSY : st;
}

int autoscale_instance_live(const char *lifecycle)
{
    return strncmp(lifecycle, "Pending", 7) == 0 || strcmp(lifecycle, "InService") == 0;
}

/* The worker registered on instance id, or NULL. */
static const struct as_worker *worker_of(const struct as_pool *p, const char *id)
{
    for (size_t i = 0; i < p->n_workers; i++)
        if (p->workers[i].instance_id[0] && strcmp(p->workers[i].instance_id, id) == 0)
            return &p->workers[i];
    return NULL;
}

static struct as_decision *add(struct as_plan *out, enum as_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct as_decision *add(struct as_plan *out, enum as_kind kind, const char *fmt, ...)
{
    if (out->n >= AS_PLAN_MAX)
        return NULL;
    struct as_decision *d = &out->d[out->n++];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
    va_end(ap);
    return d;
}

/* Since when instance in is known to have had no worker: the later of its launch and of when it
 * was first seen without one. */
static int64_t workerless_since(const struct as_instance *in)
{
    return in->workerless_since_ms > in->launch_ms ? in->workerless_since_ms : in->launch_ms;
}

static int stray_candidate(const struct as_instance *in, const struct as_pool *p,
                           const struct as_options *o, int64_t now_ms)
{
    return autoscale_instance_live(in->lifecycle) && !worker_of(p, in->id) && in->launch_ms >= 0 &&
           now_ms - workerless_since(in) > o->stray_after_ms;
}

/* Strays: live instances with no worker, launched longer than stray_after ago. Each is
 * terminated, decrementing desired capacity only while that stays at or above min (a group at
 * its min refuses the decrement, Spacelift's module #85): otherwise Auto Scaling replaces it.
 * None while the pool has workers with no instance_id metadata: the instance may be one of
 * theirs (a launcher started without the boot script), and terminating it would kill its runs. */
static int plan_strays(const struct as_group *g, const struct as_pool *p,
                       const struct as_options *o, int64_t now_ms, struct as_plan *out)
{
    int strays = 0, desired = g->desired;
    if (out->unlabelled > 0) {
        for (size_t i = 0; i < g->n_instances; i++)
            if (stray_candidate(&g->instances[i], p, o, now_ms)) {
                struct as_decision *d =
                    add(out, AS_HOLD,
                        "instance has no worker but %lld workers of the pool have no instance_id "
                        "metadata: it may be theirs, so it is not terminated",
                        (long long)out->unlabelled);
                if (d)
                    snprintf(d->instance_id, sizeof(d->instance_id), "%s", g->instances[i].id);
                return 1;
            }
        return 0;
    }
    for (size_t i = 0; i < g->n_instances; i++) {
        const struct as_instance *in = &g->instances[i];
        if (!stray_candidate(in, p, o, now_ms))
            continue;
        int decrement = desired > g->min;
        struct as_decision *d =
            add(out, AS_STRAY,
                "instance launched %llds ago has had no worker for %llds (stray after %llds)%s",
                (long long)((now_ms - in->launch_ms) / 1000),
                (long long)((now_ms - workerless_since(in)) / 1000),
                (long long)(o->stray_after_ms / 1000),
                decrement ? "" : "; at min size, so it is replaced");
        if (!d)
            break;
        snprintf(d->instance_id, sizeof(d->instance_id), "%s", in->id);
        d->decrement = decrement;
        desired -= decrement;
        strays++;
    }
    return strays;
}

/* Idle workers on live instances, idle since before the delay: the oldest first. */
static size_t scale_in_candidates(const struct as_group *g, const struct as_pool *p,
                                  const struct as_options *o, int64_t now_ms,
                                  const struct as_worker **c, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_instances && n < max; i++) {
        const struct as_worker *w = worker_of(p, g->instances[i].id);
        if (!w || !autoscale_instance_live(g->instances[i].lifecycle) || w->state != AS_IDLE ||
            w->idle_since_ms < 0 || now_ms - w->idle_since_ms < o->scale_down_delay_ms)
            continue;
        size_t k = n++;
        while (k > 0 && c[k - 1]->idle_since_ms > w->idle_since_ms) { /* insertion: few workers */
            c[k] = c[k - 1];
            k--;
        }
        c[k] = w;
    }
    return n;
}

/* The most launcher capacity the server accepts (api_launcher.c: 1 to 64). */
#define SLOTS_MAX 64

/* The runs one instance takes: the option, else the slots most of the pool's workers report (on
 * a tie the smaller, which asks for more instances rather than too few), else 1. */
static int64_t slots_per_instance(const struct as_pool *p, const struct as_options *o)
{
    if (o->slots_per_instance > 0)
        return o->slots_per_instance;
    size_t count[SLOTS_MAX + 1] = {0};
    for (size_t i = 0; i < p->n_workers; i++)
        if (p->workers[i].slots >= 1 && p->workers[i].slots <= SLOTS_MAX)
            count[p->workers[i].slots]++;
    int64_t best = 1;
    for (int64_t k = 1; k <= SLOTS_MAX; k++)
        if (count[k] > count[best])
            best = k;
    return best;
}

void autoscale_plan(const struct as_group *g, const struct as_pool *p, const struct as_options *o,
                    int64_t now_ms, struct as_plan *out)
{
    int64_t held = 0; /* the runs busy workers hold */
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < p->n_workers; i++)
        out->unlabelled += p->workers[i].instance_id[0] == '\0';
    /* Count only workers on this group's live instances: the pool may have others. */
    for (size_t i = 0; i < g->n_instances; i++) {
        const struct as_worker *w = worker_of(p, g->instances[i].id);
        if (!w || !autoscale_instance_live(g->instances[i].lifecycle))
            continue;
        out->registered++;
        out->busy += w->state == AS_BUSY;
        /* A busy worker holds at least one run: one in a state this version does not know counts
         * as busy (failing closed) whatever runs it reports. */
        if (w->state == AS_BUSY)
            held += w->runs > 1 ? w->runs : 1;
        out->idle += w->state == AS_IDLE;
        out->drained += w->state == AS_DRAINED || w->state == AS_DRAINING;
    }
    /* Drained and draining workers take no runs: never capacity (Spacelift's module #84). */
    out->capacity = out->busy + out->idle;
    /* In runs, then in instances: a worker with a free slot takes the next run, so it is not
     * counted as full (one instance per pending run over-provisioned up to slots times). */
    out->demand = held + p->pending;
    out->slots = slots_per_instance(p, o);
    int64_t need = (out->demand + out->slots - 1) / out->slots;
    int64_t t = need < g->min ? g->min : need > g->max ? g->max : need;
    out->target = (int)t;

    if (plan_strays(g, p, o, now_ms, out) > 0)
        return; /* the group changes: the next tick sees it settled */
    if (out->registered != g->desired) {
        add(out, AS_HOLD,
            "desired capacity %d but %lld registered workers: instances are starting or leaving",
            g->desired, (long long)out->registered);
        return;
    }
    if (out->target > out->capacity) {
        int64_t add_n = out->target - out->capacity;
        if (add_n > o->max_create)
            add_n = o->max_create;
        int64_t nd = g->desired + add_n;
        if (nd > g->max)
            nd = g->max;
        if (nd <= g->desired) {
            add(out, AS_STEADY,
                "demand %lld runs needs %d instances, over capacity %lld, but the group is at max "
                "size %d",
                (long long)out->demand, out->target, (long long)out->capacity, g->max);
            return;
        }
        struct as_decision *d =
            add(out, AS_SCALE_OUT,
                "demand %lld runs (held %lld + pending %lld) needs %d instances of %lld slots,"
                " capacity %lld: desired %d -> %lld (at most %d a tick, max %d)",
                (long long)out->demand, (long long)held, (long long)p->pending, out->target,
                (long long)out->slots, (long long)out->capacity, g->desired, (long long)nd,
                o->max_create, g->max);
        d->new_desired = (int)nd;
        return;
    }
    if (out->target < out->capacity) {
        int64_t excess = out->capacity - out->target;
        if (excess > g->desired - g->min)
            excess = g->desired - g->min;
        const struct as_worker *c[AS_PLAN_MAX];
        size_t n = scale_in_candidates(g, p, o, now_ms, c, AS_PLAN_MAX);
        if (n == 0 || excess <= 0) {
            add(out, AS_STEADY,
                "capacity %lld over target %d, but no idle worker past the scale-down delay of "
                "%llds",
                (long long)out->capacity, out->target, (long long)(o->scale_down_delay_ms / 1000));
            return;
        }
        for (size_t i = 0; i < n && (int64_t)i < excess; i++) {
            struct as_decision *d =
                add(out, AS_SCALE_IN, "capacity %lld over target %d: worker idle for %llds",
                    (long long)out->capacity, out->target,
                    (long long)((now_ms - c[i]->idle_since_ms) / 1000));
            if (!d)
                break;
            d->worker_id = c[i]->id;
            snprintf(d->instance_id, sizeof(d->instance_id), "%s", c[i]->instance_id);
        }
        return;
    }
    if (need > g->max)
        add(out, AS_STEADY,
            "capacity %lld meets target %d: demand %lld runs (%lld slots an instance) capped at "
            "max size %d",
            (long long)out->capacity, out->target, (long long)out->demand, (long long)out->slots,
            g->max);
    else
        add(out, AS_STEADY,
            "capacity %lld meets target %d (demand %lld runs, %lld slots an instance, min size %d)",
            (long long)out->capacity, out->target, (long long)out->demand, (long long)out->slots,
            g->min);
}

int autoscale_after_drain(enum as_worker_state after)
{
    return after == AS_DRAINED;
}

int64_t autoscale_backoff(int64_t prev_ms, int64_t first_ms, int64_t cap_ms, int64_t now_ms,
                          int64_t deadline_ms)
{
    if (now_ms >= deadline_ms)
        return 0;
    int64_t next = prev_ms <= 0 ? first_ms : prev_ms * 2;
    if (next > cap_ms)
        next = cap_ms;
    if (next > deadline_ms - now_ms)
        next = deadline_ms - now_ms;
    return next;
}

/* AWS's global timeout of a lifecycle action: 100 heartbeat timeouts, at most 48 hours. */
#define HOOK_GLOBAL_MAX_MS (48LL * 3600 * 1000)
#define HOOK_MARGIN_MAX_MS 60000

int64_t autoscale_hook_margin(int64_t heartbeat_timeout_ms)
{
    int64_t margin = heartbeat_timeout_ms / 10;
    return margin > HOOK_MARGIN_MAX_MS ? HOOK_MARGIN_MAX_MS : margin;
}

int64_t autoscale_hook_heartbeat_due(int64_t last_ms, int64_t heartbeat_timeout_ms)
{
    return last_ms + heartbeat_timeout_ms - autoscale_hook_margin(heartbeat_timeout_ms);
}

int64_t autoscale_hook_deadline(int64_t seen_ms, int64_t heartbeat_timeout_ms)
{
    int64_t global = heartbeat_timeout_ms > HOOK_GLOBAL_MAX_MS / 100 ? HOOK_GLOBAL_MAX_MS
                                                                     : heartbeat_timeout_ms * 100;
    return seen_ms + global - autoscale_hook_margin(heartbeat_timeout_ms);
}
