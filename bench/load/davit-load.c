/*
 * davit-load: holds N stand-in launchers on one davit server and measures it
 * (load.h; bench/load/README.md). The main thread sequences the phases:
 *
 *   1. every stand-in registers at once (challenge, signature, register) and
 *      long-polls; wait until all are polling and the server is quiet, then
 *      read its RSS;
 *   2. submit --runs runs (at most --inflight unfinished at once) and wait
 *      until every one was finished by a stand-in;
 *   3. report one JSON object on stdout (a summary on stderr) and stop.
 *
 * Exit status: 0 when the phases completed with no error, no lost and no
 * duplicated run; 1 when they completed with errors; 2 for bad options or
 * a phase that did not complete in its time limit.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "load.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: davit-load --url https://HOST:PORT --cacert CERT --admin-token-file FILE\n"
            "         --pool NAME,COUNT,TOKEN_FILE,KEY_PEM_FILE [--pool ...]\n"
            "         [--server-pid PID] [--runs K --submit-pool NAME [--inflight C]\n"
            "          [--submitters S] [--gap-ms MS] [--log-chunk]]\n"
            "         [--threads T] [--source-per-address M] [--wait-s S] [--ramp R]\n"
            "         [--register-timeout S] [--run-timeout S] [--metrics-counter NAME]\n"
            "         [--idle-cpu-s S] [--launcher-url URL ...] [--submit-url URL]\n");
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *read_text(const char *path, const char *what)
{
    struct dbuf b = DBUF_INIT(1 << 20);

    if (dbuf_read_file(&b, path) < 0) {
        fprintf(stderr, "davit-load: %s %s: %s\n", what, path, strerror(errno));
        dbuf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = 0;
    return dbuf_take(&b);
}

/* --pool NAME,COUNT,TOKEN_FILE,KEY_PEM_FILE: the credentials as a launcher would take them. */
static int parse_pool(const char *arg, struct load_pool *p)
{
    char buf[2048], err[256];
    char *save = NULL, *name, *count, *tokf, *keyf;

    snprintf(buf, sizeof(buf), "%s", arg);
    if (!(name = strtok_r(buf, ",", &save)) || !(count = strtok_r(NULL, ",", &save)) ||
        !(tokf = strtok_r(NULL, ",", &save)) || !(keyf = strtok_r(NULL, ",", &save)) ||
        strlen(name) >= sizeof(p->name) || atoi(count) < 0) {
        fprintf(stderr, "davit-load: --pool: NAME,COUNT,TOKEN_FILE,KEY_PEM_FILE\n");
        return -1;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->launchers = atoi(count);
    char *token = read_text(tokf, "pool token");
    char *pem = read_text(keyf, "pool key");
    char *key_b64 = pem ? crypto_b64_encode(pem, strlen(pem)) : NULL;
    int rc = token && key_b64 ? credentials_parse(&p->cred, token, "pool token", key_b64,
                                                  "pool key", err, sizeof(err))
                              : -1;
    if (rc < 0 && token && key_b64)
        fprintf(stderr, "davit-load: --pool %s: %s\n", name, err);
    if (pem)
        OPENSSL_cleanse(pem, strlen(pem));
    if (key_b64)
        OPENSSL_cleanse(key_b64, strlen(key_b64));
    free(token);
    free(pem);
    free(key_b64);
    return rc;
}

static int parse_opts(int argc, char **argv, struct load *ld)
{
    static const struct option longopts[] = {{"url", 1, 0, 'u'},
                                             {"cacert", 1, 0, 'c'},
                                             {"admin-token-file", 1, 0, 'a'},
                                             {"pool", 1, 0, 'p'},
                                             {"server-pid", 1, 0, 'P'},
                                             {"runs", 1, 0, 'r'},
                                             {"submit-pool", 1, 0, 's'},
                                             {"inflight", 1, 0, 'i'},
                                             {"submitters", 1, 0, 'S'},
                                             {"gap-ms", 1, 0, 'g'},
                                             {"log-chunk", 0, 0, 'l'},
                                             {"threads", 1, 0, 't'},
                                             {"wait-s", 1, 0, 'w'},
                                             {"register-timeout", 1, 0, 'R'},
                                             {"run-timeout", 1, 0, 'T'},
                                             {"source-per-address", 1, 0, 'A'},
                                             {"ramp", 1, 0, 'G'},
                                             {"metrics-counter", 1, 0, 'm'},
                                             {"idle-cpu-s", 1, 0, 'I'},
                                             {"launcher-url", 1, 0, 'L'},
                                             {"submit-url", 1, 0, 'U'},
                                             {0, 0, 0, 0}};
    struct load_opts *o = &ld->o;
    int c;

    o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o->source_per_address = 250;
    o->wait_s = 25;
    o->inflight = 1;
    o->submitters = 1;
    o->gap_ms = 10;
    o->register_timeout_s = 600;
    o->run_timeout_s = 600;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 'c':
            o->cacert = optarg;
            break;
        case 'a':
            if (!(o->admin_token = read_text(optarg, "admin token")))
                return -1;
            break;
        case 'p':
            ld->pools = realloc(ld->pools, sizeof(*ld->pools) * (size_t)(ld->npools + 1));
            if (!ld->pools)
                return -1;
            memset(&ld->pools[ld->npools], 0, sizeof(*ld->pools));
            if (parse_pool(optarg, &ld->pools[ld->npools++]) < 0)
                return -1;
            break;
        case 'P':
            o->server_pid = atoi(optarg);
            break;
        case 'r':
            o->runs = atoi(optarg);
            break;
        case 's':
            o->submit_pool = optarg;
            break;
        case 'i':
            o->inflight = atoi(optarg);
            break;
        case 'S':
            o->submitters = atoi(optarg);
            break;
        case 'g':
            o->gap_ms = atoi(optarg);
            break;
        case 'l':
            o->log_chunk = 1;
            break;
        case 't':
            o->threads = atoi(optarg);
            break;
        case 'w':
            o->wait_s = atoi(optarg);
            break;
        case 'R':
            o->register_timeout_s = atoi(optarg);
            break;
        case 'T':
            o->run_timeout_s = atoi(optarg);
            break;
        case 'A':
            o->source_per_address = atoi(optarg);
            break;
        case 'm':
            o->metrics_counter = optarg;
            break;
        case 'G':
            o->ramp = atoi(optarg);
            break;
        case 'I':
            o->idle_cpu_s = atoi(optarg);
            break;
        case 'L': {
            const char **u =
                realloc(o->launcher_urls, sizeof(*u) * (size_t)(o->nlauncher_urls + 1));
            if (!u)
                return -1;
            o->launcher_urls = u;
            u[o->nlauncher_urls++] = optarg;
            break;
        }
        case 'U':
            o->submit_url = optarg;
            break;
        default:
            usage();
            return -1;
        }
    }
    if (!o->url || !o->admin_token || ld->npools == 0 || o->threads < 1 || o->inflight < 1 ||
        o->submitters < 1 || o->runs < 0 || (o->runs > 0 && !o->submit_pool)) {
        usage();
        return -1;
    }
    if (!o->submit_url)
        o->submit_url = o->url;
    if (!o->nlauncher_urls) {
        if (!(o->launcher_urls = malloc(sizeof(*o->launcher_urls))))
            return -1;
        o->launcher_urls[o->nlauncher_urls++] = o->url;
    }
    return 0;
}

/* ---- the server seen from /proc ---- */

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* utime + stime of pid, in clock ticks; -1 when unknown. */
static long long proc_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    unsigned long long ut, st;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* Waits until the server spends (almost) no CPU over two 250 ms windows in a row: every request
 * sent has been handled and every poll is parked. 0, or -1 when it stayed busy for limit_s. */
static int wait_server_quiet(int pid, int limit_s)
{
    long long prev = proc_cpu_ticks(pid);
    int calm = 0;

    if (prev < 0)
        return 0;
    for (int waited = 0; waited < limit_s * 1000; waited += 250) {
        sleep_ms(250);
        long long t = proc_cpu_ticks(pid);
        calm = t - prev <= 2 ? calm + 1 : 0;
        prev = t;
        if (calm >= 2)
            return 0;
    }
    return -1;
}

static size_t on_metrics(char *p, size_t size, size_t n, void *userp)
{
    return dbuf_add(userp, p, size * n) == 0 ? size * n : 0;
}

/* The value of counter `name` on the server's /metrics, or -1 when the metric is missing (or the
 * request failed: then -2). */
static double read_counter(struct load *ld, const char *name)
{
    struct dbuf b = DBUF_INIT(64 << 20);
    char url[1024], auth[400];
    long status = 0;
    double v = -1;
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;

    snprintf(url, sizeof(url), "%s/metrics", ld->o.url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ld->o.admin_token);
    h = curl_slist_append(h, auth);
    explicit_bzero(auth, sizeof(auth));
    if (!e || !h)
        goto fail;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_metrics);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    if (ld->o.cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, ld->o.cacert);
    if (curl_easy_perform(e) != CURLE_OK ||
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
        fprintf(stderr, "davit-load: GET /metrics failed (status %ld)\n", status);
        v = -2;
        goto fail;
    }
    size_t nl = strlen(name);
    for (const char *p = dbuf_str(&b); p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
            const char *sp = strchr(p, ' ');
            v = sp ? strtod(sp + 1, NULL) : -1;
            break;
        }
    }
fail:
    curl_slist_free_all(h);
    if (e)
        curl_easy_cleanup(e);
    dbuf_free(&b);
    return v;
}

/* ---- phases ---- */

static void wake_all(struct load *ld)
{
    for (int i = 0; i < ld->o.threads; i++)
        loop_wake(&ld->loops[i]);
}

/* Waits until *v reaches target, at most limit_s, saying how far it got every 10 s; 0 or -1. */
static int wait_count(struct load *ld, atomic_int *v, int target, int limit_s)
{
    int64_t start = load_now_ns(), end = start + (int64_t)limit_s * 1000000000;
    int64_t next_note = start + 10000000000LL;

    while (atomic_load(v) < target) {
        int64_t now = load_now_ns();
        if (now > end)
            return -1;
        if (now > next_note) {
            next_note = now + 10000000000LL;
            fprintf(stderr,
                    "davit-load: registered %d of %d, polling %d, runs finished %d of %d, "
                    "errors %d, 429 retries %d\n",
                    atomic_load(&ld->registered), ld->nlaunchers, atomic_load(&ld->polling),
                    atomic_load(&ld->finished), ld->o.runs,
                    atomic_load(&ld->errors) + atomic_load(&ld->transport_errors),
                    atomic_load(&ld->retries_429));
        }
        sleep_ms(5);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted a[n]. */
static double pct(const double *a, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    return n ? a[k ? k - 1 : 0] : 0;
}

static json_t *latency_json(struct load *ld, int *lost)
{
    double *a = calloc((size_t)ld->o.runs + 1, sizeof(double));
    size_t n = 0;
    double sum = 0;

    *lost = 0;
    for (int k = 0; a && k < atomic_load(&ld->submitted); k++) {
        int64_t s = atomic_load(&ld->submit_ns[k]);
        if (!s)
            continue; /* the submit failed: an error, not a run */
        if (!atomic_load(&ld->reads[k])) {
            (*lost)++;
            continue;
        }
        a[n] = (double)(atomic_load(&ld->read_ns[k]) - s) / 1e6;
        sum += a[n++];
    }
    if (!a || !n) {
        free(a);
        return json_null();
    }
    qsort(a, n, sizeof(double), cmp_double);
    json_t *o = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)n, "p50",
                          pct(a, n, 0.5), "p90", pct(a, n, 0.9), "p99", pct(a, n, 0.99), "max",
                          a[n - 1], "min", a[0], "mean", sum / (double)n);
    free(a);
    return o;
}

static double secs(int64_t from, int64_t to)
{
    return from && to ? (double)(to - from) / 1e9 : -1;
}

struct results {
    long rss_start, rss_idle, rss_end;
    int conns; /* the polls parked when rss_idle was read */
    int64_t t0, t_polling;
    double quiet_s;      /* from all polling until the server went quiet; -1: it did not */
    double idle_cpu_pct; /* the server's CPU (% of one core) with every stand-in parked; -1 */
    double counter_before, counter_after;
    const char *failed; /* the phase that did not complete, or NULL */
};

static int report(struct load *ld, struct results *r)
{
    struct rusage ru;
    int lost = 0;
    json_t *lat = latency_json(ld, &lost);
    json_t *status = json_object();
    int errors = atomic_load(&ld->errors) + atomic_load(&ld->transport_errors);

    getrusage(RUSAGE_SELF, &ru);
    for (int s = 0; s < 600; s++)
        if ((s < 200 || s > 299) && atomic_load(&ld->status_count[s])) {
            char k[8];
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(status, k, json_integer(atomic_load(&ld->status_count[s])));
        }
    double run_s = secs(atomic_load(&ld->first_submit_ns), atomic_load(&ld->last_finish_ns));
    int n = ld->nlaunchers;
    json_t *o = json_pack(
        "{s:i, s:i, s:i, s:i, s:f, s:f, s:I, s:I, s:I, s:f, s:i, s:i, s:i, s:i, s:o, s:f, s:i, "
        "s:i, "
        "s:i, s:i, s:i, s:o, s:f, s:s?}",
        "launchers", n, "threads", ld->o.threads, "registered", atomic_load(&ld->registered),
        "polling", atomic_load(&ld->polling), "register_s",
        secs(r->t0, atomic_load(&ld->all_registered_ns)), "all_polling_s",
        secs(r->t0, r->t_polling), "rss_kb_start", (json_int_t)r->rss_start, "rss_kb_idle",
        (json_int_t)r->rss_idle, "rss_kb_end", (json_int_t)r->rss_end, "rss_kb_per_launcher",
        r->conns && r->rss_start > 0 && r->rss_idle > 0
            ? (double)(r->rss_idle - r->rss_start) / r->conns
            : -1.0,
        "runs", atomic_load(&ld->submitted), "runs_finished", atomic_load(&ld->finished), "lost",
        lost, "duplicated", atomic_load(&ld->duplicated), "latency_ms", lat, "runs_per_s",
        run_s > 0 ? (double)atomic_load(&ld->finished) / run_s : -1.0, "errors", errors,
        "http_errors", atomic_load(&ld->errors), "transport_errors",
        atomic_load(&ld->transport_errors), "retries_429", atomic_load(&ld->retries_429),
        "foreign_runs", atomic_load(&ld->foreign_runs), "error_status", status, "harness_cpu_s",
        (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
        "failed", r->failed);
    if (!o)
        return 2;
    json_object_set_new(o, "quiet_s", json_real(r->quiet_s));
    json_object_set_new(o, "idle_cpu_pct", json_real(r->idle_cpu_pct));
    if (ld->o.metrics_counter) {
        json_object_set_new(o, "counter", json_string(ld->o.metrics_counter));
        json_object_set_new(o, "counter_missing",
                            json_boolean(r->counter_before == -1 || r->counter_after == -1));
        json_object_set_new(o, "counter_delta",
                            r->counter_before >= 0 && r->counter_after >= 0
                                ? json_real(r->counter_after - r->counter_before)
                                : json_null());
    }
    json_dumpf(o, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(o);
    if (r->failed)
        return 2;
    return errors || lost || atomic_load(&ld->duplicated) ? 1 : 0;
}

static void run_phases(struct load *ld, struct results *r)
{
    int pid = ld->o.server_pid;
    int n = ld->nlaunchers;

    r->rss_start = proc_rss_kb(pid);
    r->t0 = load_now_ns();
    atomic_store(&ld->phase, 1);
    wake_all(ld);
    if (wait_count(ld, &ld->registered, n, ld->o.register_timeout_s) < 0 ||
        wait_count(ld, &ld->polling, n, ld->o.register_timeout_s) < 0) {
        /* what the connections that did get to poll cost, for the record */
        r->failed = atomic_load(&ld->registered) < n ? "register" : "poll";
        r->conns = atomic_load(&ld->polling);
        r->rss_idle = r->rss_end = proc_rss_kb(pid);
        return;
    }
    r->t_polling = load_now_ns();
    fprintf(stderr, "davit-load: %d launchers registered in %.2f s, all polling after %.2f s\n", n,
            secs(r->t0, atomic_load(&ld->all_registered_ns)), secs(r->t0, r->t_polling));
    r->quiet_s = wait_server_quiet(pid, 60) == 0 ? secs(r->t_polling, load_now_ns()) : -1.0;
    if (ld->o.idle_cpu_s > 0 && pid > 0) {
        /* what N parked long-polls cost the server: their re-polls every wait_s included */
        long long c0 = proc_cpu_ticks(pid);
        sleep_ms(ld->o.idle_cpu_s * 1000);
        long long c1 = proc_cpu_ticks(pid);
        if (c0 >= 0 && c1 >= 0)
            r->idle_cpu_pct =
                100.0 * (double)(c1 - c0) / (double)sysconf(_SC_CLK_TCK) / ld->o.idle_cpu_s;
    }
    r->conns = n;
    r->rss_idle = proc_rss_kb(pid);
    r->rss_end = r->rss_idle;
    if (ld->o.metrics_counter) {
        r->counter_before = read_counter(ld, ld->o.metrics_counter);
        if (r->counter_before == -1) { /* nothing to count with: do not spend the runs */
            fprintf(stderr, "davit-load: metric %s missing from /metrics: runs skipped\n",
                    ld->o.metrics_counter);
            return;
        }
    }
    if (ld->o.runs == 0)
        return;
    atomic_store(&ld->phase, 2);
    loop_wake(&ld->loops[0]);
    if (wait_count(ld, &ld->finished, ld->o.runs, ld->o.run_timeout_s) < 0) {
        r->failed = "runs";
        if (ld->o.metrics_counter) /* the wake-ups so far still tell a herd from a stall */
            r->counter_after = read_counter(ld, ld->o.metrics_counter);
        return;
    }
    /* every stand-in back in its poll and the server quiet: the wake-ups are all counted */
    wait_count(ld, &ld->polling, n, 60);
    wait_server_quiet(pid, 60);
    r->rss_end = proc_rss_kb(pid);
    if (ld->o.metrics_counter)
        r->counter_after = read_counter(ld, ld->o.metrics_counter);
}

static int setup(struct load *ld)
{
    struct rlimit rl;

    /* 10,000 connections need more than the default 1024 descriptors */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < ld->npools; i++) {
        ld->nlaunchers += ld->pools[i].launchers;
        if (ld->o.submit_pool && strcmp(ld->pools[i].name, ld->o.submit_pool) == 0)
            ld->submit_pool_index = i;
    }
    ld->launchers = calloc((size_t)ld->nlaunchers + 1, sizeof(*ld->launchers));
    ld->loops = calloc((size_t)ld->o.threads, sizeof(*ld->loops));
    ld->submit_ns = calloc((size_t)ld->o.runs + 1, sizeof(*ld->submit_ns));
    ld->read_ns = calloc((size_t)ld->o.runs + 1, sizeof(*ld->read_ns));
    ld->reads = calloc((size_t)ld->o.runs + 1, sizeof(*ld->reads));
    if (!ld->launchers || !ld->loops || !ld->submit_ns || !ld->read_ns || !ld->reads)
        return -1;
    for (int i = 0, p = 0, k = 0; i < ld->nlaunchers; i++, k++) {
        while (k >= ld->pools[p].launchers) {
            p++;
            k = 0;
        }
        ld->launchers[i].index = i;
        ld->launchers[i].pool = &ld->pools[p];
        ld->launchers[i].run_tag = -1;
    }
    for (int i = 0; i < ld->o.threads; i++) {
        struct loop *lp = &ld->loops[i];
        lp->epfd = lp->wakefd = -1;
        lp->launchers =
            calloc((size_t)ld->nlaunchers / (size_t)ld->o.threads + 1, sizeof(*lp->launchers));
        if (i == 0) {
            lp->subs = calloc((size_t)ld->o.submitters, sizeof(*lp->subs));
            lp->nsubs = ld->o.submitters;
        }
        if (!lp->launchers || (i == 0 && !lp->subs) || loop_init(ld, lp, i) < 0)
            return -1;
    }
    return 0;
}

static void teardown(struct load *ld)
{
    for (int i = 0; ld->loops && i < ld->o.threads; i++) {
        loop_free(&ld->loops[i]);
        free(ld->loops[i].launchers);
        free(ld->loops[i].subs);
    }
    for (int i = 0; i < ld->npools; i++)
        credentials_free(&ld->pools[i].cred);
    if (ld->o.admin_token) {
        OPENSSL_cleanse(ld->o.admin_token, strlen(ld->o.admin_token));
        free(ld->o.admin_token);
    }
    free(ld->o.launcher_urls);
    free(ld->pools);
    free(ld->launchers);
    free(ld->loops);
    free(ld->submit_ns);
    free(ld->read_ns);
    free(ld->reads);
}

int main(int argc, char **argv)
{
    static struct load ld; /* large (status counters): not on the stack */
    struct results r = {
        .counter_before = -1, .counter_after = -1, .quiet_s = -1, .idle_cpu_pct = -1};
    int started = 0, rc = 2;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    if (parse_opts(argc, argv, &ld) < 0 || setup(&ld) < 0)
        goto done;
    for (; started < ld.o.threads; started++)
        if (pthread_create(&ld.loops[started].thread, NULL, loop_main, &ld.loops[started])) {
            fprintf(stderr, "davit-load: cannot start a thread\n");
            r.failed = "start";
            break;
        }
    if (!r.failed)
        run_phases(&ld, &r);
    atomic_store(&ld.phase, 3);
    wake_all(&ld);
    for (int i = 0; i < started; i++)
        pthread_join(ld.loops[i].thread, NULL);
    rc = report(&ld, &r);
done:
    teardown(&ld);
    curl_global_cleanup();
    return rc;
}
