/* Unit tests of the store's operations on a real SQLite database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/store.h"
#include "server/store_int.h" /* the liveness table (st_seen_*) */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
    char dir[64];
    struct store *s;
    struct store_pool pool;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/davit.db", f->dir);
    if (store_open(&f->s, path, err, sizeof(err)) < 0)
        return -1;
    snprintf(f->pool.name, sizeof(f->pool.name), "p");
    snprintf(f->pool.keytype, sizeof(f->pool.keytype), "ed25519");
    snprintf(f->pool.secret_hash, sizeof(f->pool.secret_hash), "h");
    f->pool.pubkey_pem = strdup("PEM");
    if (store_pool_create(f->s, &f->pool) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    store_close(f->s);
    store_pool_clear(&f->pool);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int64_t launcher(struct fx *f, int capacity)
{
    struct store_launcher_info info = {"host", "0.1.0", "amd64", "{}", capacity, 0, 0};
    int64_t id;
    char hash[32];
    static int n;
    snprintf(hash, sizeof(hash), "session-%d", ++n);
    assert_int_equal(
        store_launcher_register(f->s, f->pool.id, &info, hash, store_now_ms() + 60000, &id),
        STORE_OK);
    return id;
}

static int64_t submit(struct fx *f)
{
    int64_t id;
    assert_int_equal(
        store_run_create(f->s, f->pool.id, "{\"image\":\"x\",\"phases\":[]}", "{\"S\":\"v\"}", &id),
        STORE_OK);
    return id;
}

/* Polls and returns the ids of the runs in the messages (up to 8). */
static int poll_runs(struct fx *f, int64_t l, int64_t *ids, int64_t *ack)
{
    json_t *msgs;
    int requeued;
    struct store_claims claimed;
    assert_int_equal(store_poll(f->s, l, *ack, 0, &msgs, &claimed, &requeued), STORE_OK);
    int n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        *ack = json_integer_value(json_object_get(m, "id"));
        json_t *run = json_object_get(m, "run");
        if (run && n < 8) {
            ids[n++] = json_integer_value(json_object_get(run, "id"));
            json_t *sec = json_object_get(json_object_get(run, "spec"), "secrets");
            assert_string_equal(json_string_value(json_object_get(sec, "S")), "v");
        }
    }
    json_decref(msgs);
    return n;
}

static void test_pool_names_unique(void **state)
{
    struct fx *f = *state;
    struct store_pool p = f->pool;
    assert_int_equal(store_pool_create(f->s, &p), STORE_CONFLICT);
    struct store_pool got;
    assert_int_equal(store_pool_get(f->s, "p", 0, &got), STORE_OK);
    assert_string_equal(got.id, f->pool.id);
    store_pool_clear(&got);
    assert_int_equal(store_pool_get(f->s, "nope", 0, &got), STORE_NOTFOUND);
}

static void test_fifo_and_capacity(void **state)
{
    struct fx *f = *state;
    int64_t l = launcher(f, 2), ack = 0, ids[8];
    int64_t r1 = submit(f), r2 = submit(f), r3 = submit(f);
    assert_int_equal(poll_runs(f, l, ids, &ack), 2);
    assert_int_equal(ids[0], r1);
    assert_int_equal(ids[1], r2);
    assert_int_equal(poll_runs(f, l, ids, &ack), 0); /* full */
    struct store_event ev = {1, "result", NULL, "finished", "ok", 0};
    char state_s[32];
    assert_int_equal(store_run_event(f->s, l, r1, &ev, state_s), STORE_OK);
    assert_string_equal(state_s, "finished");
    assert_int_equal(poll_runs(f, l, ids, &ack), 1);
    assert_int_equal(ids[0], r3);
}

static void test_events(void **state)
{
    struct fx *f = *state;
    int64_t l = launcher(f, 1), other = launcher(f, 1), ack = 0, ids[8];
    int64_t r = submit(f);
    assert_int_equal(poll_runs(f, l, ids, &ack), 1);
    char st[32];
    struct store_event prep = {1, "preparing", NULL, NULL, NULL, -1};
    struct store_event run = {2, "running", "plan", NULL, NULL, -1};
    struct store_event res = {3, "result", NULL, "failed", "phase plan failed", 1};
    assert_int_equal(store_run_event(f->s, other, r, &prep, st), STORE_FORBIDDEN);
    assert_int_equal(store_run_event(f->s, l, r, &prep, st), STORE_OK);
    assert_string_equal(st, "preparing");
    assert_int_equal(store_run_event(f->s, l, r, &run, st), STORE_OK);
    assert_string_equal(st, "running");
    assert_int_equal(store_run_event(f->s, l, r, &prep, st), STORE_OK); /* a retry: no change */
    assert_string_equal(st, "running");
    assert_int_equal(store_run_event(f->s, l, r, &res, st), STORE_OK);
    assert_string_equal(st, "failed");
    assert_int_equal(store_run_event(f->s, l, r, &res, st), STORE_OK); /* a retry */
    res.seq = 4;
    assert_int_equal(store_run_event(f->s, l, r, &res, st), STORE_CONFLICT);
    json_t *o;
    assert_int_equal(store_run_show_json(f->s, r, &o), STORE_OK);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "phase plan failed");
    json_decref(o);
}

static void test_log_offsets(void **state)
{
    struct fx *f = *state;
    int64_t l = launcher(f, 1), ack = 0, ids[8], next;
    int64_t r = submit(f);
    assert_int_equal(poll_runs(f, l, ids, &ack), 1);
    /* The server does not check the MAC (spool_mac.h), only the format. */
    const char a[] = "@o 1 1 - 3 00000000000000000000000000000000\nabc\n",
               b[] = "@o 2 1 - 2 00000000000000000000000000000000\nde\n";
    size_t la = strlen(a), lb = strlen(b);
    assert_int_equal(store_log_append(f->s, l, r, 0, a, la, 1 << 20, &next), STORE_OK);
    assert_int_equal(next, la);
    assert_int_equal(store_log_append(f->s, l, r, 0, a, la, 1 << 20, &next), STORE_OK);
    assert_int_equal(next, la);
    assert_int_equal(store_log_append(f->s, l, r, la + 1, b, lb, 1 << 20, &next), STORE_GAP);
    assert_int_equal(next, la);
    assert_int_equal(store_log_append(f->s, l, r, la, "junk", 4, 1 << 20, &next), STORE_CONFLICT);
    assert_int_equal(store_log_append(f->s, l, r, la, b, lb, la + 1, &next), STORE_FULL);
    assert_int_equal(store_log_append(f->s, l, r, la, b, lb, 1 << 20, &next), STORE_OK);
    assert_int_equal(next, la + lb);
    struct dbuf out = DBUF_INIT(1024);
    int64_t total;
    int ended;
    assert_int_equal(store_log_read(f->s, r, 2, 100, &out, &total, &ended, NULL), STORE_OK);
    assert_int_equal(total, la + lb);
    assert_int_equal(out.len, la + lb - 2);
    assert_memory_equal(out.data, a + 2, la - 2);
    dbuf_free(&out);
}

static void test_reap_and_cancel(void **state)
{
    struct fx *f = *state;
    int64_t l = launcher(f, 3), ack = 0, ids[8];
    int64_t r1 = submit(f), r2 = submit(f), r3 = submit(f);
    assert_int_equal(poll_runs(f, l, ids, &ack), 3);
    char st[32];
    struct store_event run = {1, "running", "plan", NULL, NULL, -1};
    assert_int_equal(store_run_event(f->s, l, r2, &run, st), STORE_OK);
    int ended;
    int64_t who;
    assert_int_equal(store_run_cancel(f->s, r3, &ended, &who), STORE_OK);
    assert_int_equal(ended, 0);
    assert_int_equal(who, l);
    /* a negative lease puts every launcher past it, with no waiting */
    struct store_reap rp;
    assert_int_equal(store_reap(f->s, -60000, 3600 * 1000, &rp), STORE_OK);
    assert_int_equal(rp.requeued, 1); /* r1; r3 was canceled, r2 started */
    assert_int_equal(rp.lost, 0);
    assert_int_equal(store_reap(f->s, -60000, -60000, &rp), STORE_OK);
    assert_int_equal(rp.lost, 1);
    json_t *o;
    const char *want[][2] = {{"queued", NULL}, {"lost", NULL}, {"canceled", NULL}};
    int64_t runs[] = {r1, r2, r3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_run_show_json(f->s, runs[i], &o), STORE_OK);
        assert_string_equal(json_string_value(json_object_get(o, "state")), want[i][0]);
        json_decref(o);
    }
    assert_int_equal(store_pool_delete(f->s, "p"), STORE_CONFLICT); /* r1 is queued */
    assert_int_equal(store_run_cancel(f->s, r1, &ended, &who), STORE_OK);
    assert_int_equal(ended, 1);
    assert_int_equal(store_run_cancel(f->s, r1, &ended, &who), STORE_CONFLICT);
    assert_int_equal(store_pool_delete(f->s, "p"), STORE_OK);
}

/* Group commit: writers on several threads share commits (docs/hacking.md, "The store"). */
#define GC_THREADS 8
#define GC_RUNS    40

struct gc_arg {
    struct fx *f;
    int64_t ids[GC_RUNS];
    int failed;
};

/* Submits runs, each followed by an operation that fails (a log chunk past the end): a
 * failure rolls back its own savepoint only, never a submission that shares its commit. */
static void *gc_writer(void *p)
{
    struct gc_arg *a = p;
    for (int i = 0; i < GC_RUNS; i++) {
        int64_t next;
        if (store_run_create(a->f->s, a->f->pool.id, "{\"image\":\"x\",\"phases\":[]}", NULL,
                             &a->ids[i]) != STORE_OK ||
            store_log_append(a->f->s, -1, a->ids[i], 0, "x", 1, 100, &next) != STORE_FORBIDDEN)
            a->failed++;
    }
    return NULL;
}

static void test_group_commit_concurrent_writers(void **state)
{
    struct fx *f = *state;
    struct gc_arg args[GC_THREADS];
    pthread_t th[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_arg){.f = f};
        assert_int_equal(pthread_create(&th[i], NULL, gc_writer, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* Every acknowledged submission is there, once, in the committed state a read sees. */
    json_t *runs;
    int64_t next;
    assert_int_equal(store_run_list_json(f->s, "p", "queued", 1000, 0, &runs, &next), STORE_OK);
    assert_int_equal(json_array_size(runs), GC_THREADS * GC_RUNS);
    json_decref(runs);
    for (int i = 0; i < GC_THREADS; i++) {
        assert_int_equal(args[i].failed, 0);
        for (int j = 0; j < GC_RUNS; j++) {
            json_t *o;
            assert_int_equal(store_run_show_json(f->s, args[i].ids[j], &o), STORE_OK);
            json_decref(o);
        }
    }
}

/* Durability outside the lock (store_drv.h, sync): a driver whose sync waits at a gate the
 * test opens, and fails when told to. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int open, entered, fail;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
static struct st_driver gated_drv;

static int gated_sync(struct store *s)
{
    pthread_mutex_lock(&gate.mu);
    gate.entered++;
    pthread_cond_broadcast(&gate.cond);
    while (!gate.open)
        pthread_cond_wait(&gate.cond, &gate.mu);
    int fail = gate.fail;
    pthread_mutex_unlock(&gate.mu);
    if (fail) {
        errno = EIO;
        return -1;
    }
    return st_sqlite_driver.sync(s);
}

static void gate_set(struct fx *f, int open, int fail)
{
    pthread_mutex_lock(&gate.mu);
    if (!gated_drv.sync) {
        gated_drv = *f->s->drv;
        gated_drv.sync = gated_sync;
    }
    f->s->drv = &gated_drv;
    gate.open = open;
    gate.fail = fail;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.mu);
}

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.entered = 0;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_wait_entered(int n)
{
    pthread_mutex_lock(&gate.mu);
    while (gate.entered < n)
        pthread_cond_wait(&gate.cond, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

struct submit_arg {
    struct fx *f;
    int64_t id;
    int rc, unavailable, done; /* done: atomic */
};

static void *submitter(void *p)
{
    struct submit_arg *a = p;
    a->rc =
        store_run_create(a->f->s, a->f->pool.id, "{\"image\":\"x\",\"phases\":[]}", NULL, &a->id);
    a->unavailable = store_failed_unavailable();
    __atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static uint64_t commits_of(struct store *s)
{
    pthread_mutex_lock(&s->mu); /* not st_lock: that would wait for the sync */
    uint64_t n = s->commits;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Operations in the open batch, waiting for its commit. */
static int waiting_in_batch(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->txn_open && s->waiters ? s->batch_ops : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* A write is answered only once a sync that began after its commit has ended. While one sync
 * runs, the store's lock is free: the next write runs, and its batch stays open for others
 * until the sync ends, then is committed and synced in turn. */
static void test_sync_outside_the_lock(void **state)
{
    struct fx *f = *state;
    gate_reset();
    gate_set(f, 0, 0);
    uint64_t commits = commits_of(f->s);
    struct submit_arg a = {.f = f}, b = {.f = f};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, submitter, &a), 0);
    gate_wait_entered(1); /* a committed, its sync is held at the gate */
    assert_int_equal(commits_of(f->s), commits + 1);
    assert_int_equal(pthread_create(&tb, NULL, submitter, &b), 0);
    /* b runs while a's sync is under way (the lock is free), and waits in the open batch */
    for (int i = 0; i < 10000 && waiting_in_batch(f->s) < 1; i++)
        usleep(1000);
    assert_int_equal(waiting_in_batch(f->s), 1);
    assert_int_equal(commits_of(f->s), commits + 1);
    assert_int_equal(__atomic_load_n(&a.done, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(__atomic_load_n(&b.done, __ATOMIC_SEQ_CST), 0);
    gate_set(f, 1, 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_int_equal(a.rc, STORE_OK);
    assert_int_equal(b.rc, STORE_OK);
    /* b's batch was committed when a's sync ended, and synced by one more */
    assert_int_equal(commits_of(f->s), commits + 2);
    assert_int_equal(gate.entered, 2);
    json_t *o;
    assert_int_equal(store_run_show_json(f->s, b.id, &o), STORE_OK);
    json_decref(o);
}

/* A failed sync acknowledges nothing, and nothing after it runs: not the batch that gathered
 * during the sync (undone), no write, no read, no ping; what the disk holds is unknown until a
 * restart. Both failures answer 503 (store_failed_unavailable). */
static void test_failed_sync_refuses_writes(void **state)
{
    struct fx *f = *state;
    gate_reset();
    gate_set(f, 0, 1);
    struct submit_arg a = {.f = f}, b = {.f = f};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, submitter, &a), 0);
    gate_wait_entered(1);
    assert_int_equal(pthread_create(&tb, NULL, submitter, &b), 0);
    for (int i = 0; i < 10000 && waiting_in_batch(f->s) < 1; i++)
        usleep(1000);
    assert_int_equal(waiting_in_batch(f->s), 1);
    gate_set(f, 1, 1); /* the sync fails */
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_int_equal(a.rc, STORE_ERR);
    assert_int_equal(b.rc, STORE_ERR);
    assert_int_equal(a.unavailable, 1);
    assert_int_equal(b.unavailable, 1);
    int64_t id, next;
    json_t *runs = NULL;
    assert_int_equal(
        store_run_create(f->s, f->pool.id, "{\"image\":\"x\",\"phases\":[]}", NULL, &id),
        STORE_ERR);
    assert_int_equal(store_failed_unavailable(), 1);
    assert_int_equal(store_run_list_json(f->s, "p", NULL, 100, 0, &runs, &next), STORE_ERR);
    assert_int_equal(store_failed_unavailable(), 1);
    assert_int_equal(store_ping(f->s), STORE_ERR);
    /* After a restart: a's run, committed before its sync failed, may be there (its outcome
     * was unknown, hence 503 and not 500); b's, gathered during the sync, was undone. */
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/davit.db", f->dir);
    store_close(f->s);
    assert_int_equal(store_open(&f->s, path, err, sizeof(err)), STORE_OK);
    assert_int_equal(store_run_list_json(f->s, "p", NULL, 100, 0, &runs, &next), STORE_OK);
    assert_int_equal(json_array_size(runs), 1);
    json_decref(runs);
}

/* The launchers' last-seen table: growth, and deletions that must not hide other entries
 * (ids that probe past a deleted slot). Ids k << 47 all hash to one slot (the hash keeps the
 * product's bits 17 and up): every lookup probes past the others. */
#define SEEN_N 2000
static int64_t seen_id(int64_t k)
{
    return k % 2 ? k : k << 47;
}

static void test_seen_table(void **state)
{
    struct fx *f = *state;
    const int64_t start = st_seen_ms(f->s, 999999);
    for (int64_t k = 1; k <= SEEN_N; k++)
        st_seen_touch(f->s, seen_id(k), start + k);
    for (int64_t k = 1; k <= SEEN_N; k += 3)
        st_seen_forget(f->s, seen_id(k));
    for (int64_t k = 1; k <= SEEN_N; k++)
        assert_int_equal(st_seen_ms(f->s, seen_id(k)), (k - 1) % 3 == 0 ? start : start + k);
    st_seen_touch(f->s, seen_id(2), start - 1); /* never goes back in time */
    assert_int_equal(st_seen_ms(f->s, seen_id(2)), start + 2);
    for (int64_t k = 1; k <= SEEN_N; k++)
        st_seen_forget(f->s, seen_id(k));
    for (int64_t k = 1; k <= SEEN_N; k++)
        assert_int_equal(st_seen_ms(f->s, seen_id(k)), start);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_names_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_outside_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
