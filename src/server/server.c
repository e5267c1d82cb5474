/* `davit server`: options, the data directory, lease expiry and the main loop. */
#include "server/server.h"

#include "common/dbuf.h"
#include "common/duration.h"
#include "common/env.h"
#include "common/log.h"
#include "server/api.h"
#include "common/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: davit server --data-dir DIR [--listen ADDR:PORT] [options]\n"
    "  --listen ADDR:PORT     address to serve on (default 127.0.0.1:8400; port 0 picks one)\n"
    "  --public-url URL       the URL launchers use, put in pool tokens (default from --listen)\n"
    "  --tls-cert FILE        PEM certificate (chain) for HTTPS\n"
    "  --tls-key FILE         PEM private key for HTTPS\n"
    "  --insecure-http        allow plain HTTP on a non-loopback address\n"
    "  --lease DUR            launcher lease without a request (default 30s)\n"
    "  --lost-grace DUR       then started runs become lost after this (default 5m)\n"
    "  --session-ttl DUR      launcher session lifetime (default 1h)\n"
    "  --poll-timeout DUR     longest long-poll (default 25s, at most 2/3 of the lease)\n"
    "  --max-log-bytes N      cap of one run's log (default 1073741824)\n"
    "  --retention-max-age DUR\n"
    "                         delete runs that ended longer ago than this (default 30d,\n"
    "                         at most 100d; 0 keeps them forever)\n"
    "  --retention-max-log-bytes SIZE\n"
    "                         cap of all logs together, like 10GiB; the logs of the runs\n"
    "                         that ended first go (default 0: no cap)\n"
    "  --threads N            HTTP threads (default 2)\n"
    "  --log-format text|json, --debug\n";

struct reaper {
    struct server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
};

/*
 * The retention sweep: its own thread, so that deleting and vacuuming never
 * delays lease expiry. Each store call is one small batch; the store's lock
 * is free between batches, for the requests.
 */
struct sweeper {
    struct server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop, kicked;
};

#define SWEEP_INTERVAL_MS 5000
#define SWEEP_RUNS        100  /* runs deleted per transaction */
#define SWEEP_TRIMS       16   /* logs deleted per transaction */
#define SWEEP_CHUNKS      32   /* log chunks freed per transaction (each <= 8 MiB) */
#define SWEEP_PAGES       2048 /* pages given back per incremental vacuum (8 MiB) */
/* Free space that ends a full disk's report: room for the largest log chunk. */
#define SWEEP_PROBE_FREE (BODY_CAP_LOG + (1 << 20))

void sweep_kick(struct server *srv)
{
    struct sweeper *sw = srv->sweeper;
    if (!sw)
        return;
    pthread_mutex_lock(&sw->mu);
    sw->kicked = 1;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->mu);
}

static int sweep_stopping(struct sweeper *sw)
{
    pthread_mutex_lock(&sw->mu);
    int stop = sw->stop;
    pthread_mutex_unlock(&sw->mu);
    return stop;
}

/* One sweep: old runs, then logs over the cap, then the chunks they leave,
 * then the free pages. Stops at the first failure (logged by the store) and
 * tries again at the next sweep. */
static void sweep_once(struct sweeper *sw, int first)
{
    struct store *st = sw->srv->store;
    const struct server_config *c = &sw->srv->cfg;
    int runs = 0, logs = 0, chunks = 0, n, more, rc = STORE_OK;
    /* A full disk is reported until a write succeeds; on a quiet server
     * nothing else may write. */
    store_space_probe(st, SWEEP_PROBE_FREE);
    if (c->retention_max_age_ms > 0)
        do {
            rc = store_expire_runs(st, store_now_ms() - c->retention_max_age_ms, SWEEP_RUNS, &n);
            runs += n;
        } while (rc == STORE_OK && n == SWEEP_RUNS && !sweep_stopping(sw));
    if (rc == STORE_OK && c->retention_max_log_bytes > 0)
        do {
            rc = store_trim_logs(st, c->retention_max_log_bytes, SWEEP_TRIMS, &n);
            logs += n;
        } while (rc == STORE_OK && n == SWEEP_TRIMS && !sweep_stopping(sw));
    if (rc == STORE_OK)
        do {
            rc = store_purge_logs(st, SWEEP_CHUNKS, &n);
            chunks += n;
        } while (rc == STORE_OK && n == SWEEP_CHUNKS && !sweep_stopping(sw));
    /* Only real work vacuums, and the first sweep: pages may have been freed
     * before a restart. */
    if (rc == STORE_OK && (first || runs || logs || chunks))
        do
            rc = store_vacuum(st, SWEEP_PAGES, 1, &more);
        while (rc == STORE_OK && more && !sweep_stopping(sw));
    if (runs || logs) {
        char r[16], l[16], used[24];
        snprintf(r, sizeof(r), "%d", runs);
        snprintf(l, sizeof(l), "%d", logs);
        snprintf(used, sizeof(used), "%lld", (long long)store_used_bytes(st));
        log_event(LOG_INFO, "retention sweep", "runs_deleted", r, "logs_deleted", l,
                  "db_bytes_in_use", used, NULL);
    }
}

static void *sweeper_main(void *arg)
{
    struct sweeper *sw = arg;
    int first = 1;
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        if (!sw->kicked && !first) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += SWEEP_INTERVAL_MS / 1000;
            pthread_cond_timedwait(&sw->cond, &sw->mu, &ts);
            if (sw->stop)
                break;
        }
        sw->kicked = 0; /* before the sweep: a kick during it is not lost */
        pthread_mutex_unlock(&sw->mu);
        sweep_once(sw, first);
        first = 0;
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

static void log_run_state(int64_t id, const char *state, const char *reason)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    log_event(LOG_WARN, "run state", "run", ids, "state", state, "reason", reason, NULL);
}

static void *reaper_main(void *arg)
{
    struct reaper *rp = arg;
    struct server *srv = rp->srv;
    int tick = 0;
    pthread_mutex_lock(&rp->mu);
    while (!rp->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&rp->cond, &rp->mu, &ts);
        if (rp->stop)
            break;
        pthread_mutex_unlock(&rp->mu);
        dispatch_expire(srv->disp, store_now_ms());
        tick++;
        /* A lease runs from the launcher's last request, a poll included;
         * a poll held here does not extend it. Polls are at most 2/3 of the
         * lease, so a live launcher always polls again in time, and a dead
         * or frozen one is found within the lease whatever it left pending. */
        if (tick % 5 == 0) {
            struct store_reap r;
            if (store_reap(srv->store, srv->cfg.lease_ms, srv->cfg.grace_ms, &r) == STORE_OK &&
                (r.requeued || r.lost)) {
                for (int i = 0; i < r.requeued && i < STORE_REAP_IDS; i++)
                    log_run_state(r.requeued_ids[i], "queued", "the launcher's lease expired");
                for (int i = 0; i < r.lost && i < STORE_REAP_IDS; i++)
                    log_run_state(r.lost_ids[i], "lost", "the launcher did not come back");
                if (r.requeued > STORE_REAP_IDS || r.lost > STORE_REAP_IDS) {
                    char rq[16], lost[16];
                    snprintf(rq, sizeof(rq), "%d", r.requeued);
                    snprintf(lost, sizeof(lost), "%d", r.lost);
                    log_event(LOG_WARN, "leases expired", "requeued", rq, "lost", lost, NULL);
                }
                dispatch_notify_all(srv->disp);
            }
        }
        pthread_mutex_lock(&rp->mu);
    }
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

static const char *host_arch(void)
{
    struct utsname u;
    if (uname(&u) == 0 && (strcmp(u.machine, "aarch64") == 0 || strcmp(u.machine, "arm64") == 0))
        return "arm64";
    return "amd64";
}

static int read_text(const char *path, size_t cap, char **out, char *err, size_t errsz)
{
    struct dbuf b = DBUF_INIT(cap);
    if (dbuf_read_file(&b, path) < 0) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        dbuf_free(&b);
        return -1;
    }
    *out = dbuf_take(&b);
    return *out ? 0 : -1;
}

int sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_private(const char *path, const char *text, char *err, size_t errsz)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    if (fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) < 0) {
        fclose(f);
        goto fail;
    }
    /* The key must survive a power loss: every pool token carries it. */
    if (fclose(f) != 0 || rename(tmp, path) < 0 || sync_dir_of(path) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errsz, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
}

/* Publishes a davit-worker or davit-launcher found next to this executable. */
static void publish_builtin(struct server *srv, const char *self_path, const char *kind,
                            const char *file)
{
    struct store_release rel;
    const char *arch = host_arch();
    if (store_release_latest(srv->store, kind, arch, &rel) != STORE_NOTFOUND)
        return; /* only on a fresh setup: never replace what an admin published */
    char *copy = strdup(self_path), path[PATH_MAX + 64];
    if (!copy)
        return;
    snprintf(path, sizeof(path), "%s/%s", dirname(copy), file);
    free(copy);
    struct dbuf b = DBUF_INIT(BODY_CAP_RELEASE);
    char err[256];
    if (dbuf_read_file(&b, path) < 0) {
        log_event(LOG_INFO, "no built-in release to publish", "kind", kind, "path", path, "reason",
                  strerror(errno), NULL);
    } else if (release_publish(srv, kind, arch, DAVIT_VERSION, b.data, b.len, &rel, err,
                               sizeof(err)) < 0) {
        log_event(LOG_ERROR, "publishing the built-in release failed", "kind", kind, "reason", err,
                  NULL);
    }
    dbuf_free(&b);
}

/* Creates what the data directory lacks: database, release key, admin token. */
static int init_data_dir(struct server *srv, char *err, size_t errsz)
{
    const char *dir = srv->cfg.data_dir;
    char path[PATH_MAX + 32];
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "--data-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(srv->releases_dir, sizeof(srv->releases_dir), "%s/releases", dir);
    if (mkdir(srv->releases_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "%s: %s", srv->releases_dir, strerror(errno));
        return -1;
    }
    if (sync_dir_of(srv->releases_dir) < 0 || sync_dir_of(dir) < 0) {
        snprintf(err, errsz, "--data-dir %s: fsync: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/davit.db", dir);
    if (store_open(&srv->store, path, err, errsz) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/release-key.pem", dir);
    if (access(path, F_OK) == 0) {
        if (read_text(path, 64 * 1024, &srv->release_key_pem, err, errsz) < 0)
            return -1;
    } else {
        if (crypto_ed25519_generate(&srv->release_key_pem, &srv->release_pub_pem) < 0) {
            snprintf(err, errsz, "release key: cannot generate an Ed25519 key");
            return -1;
        }
        free(srv->release_pub_pem);
        srv->release_pub_pem = NULL;
        if (write_private(path, srv->release_key_pem, err, errsz) < 0)
            return -1;
        log_event(LOG_INFO, "release-signing key created", "path", path, NULL);
    }
    if (crypto_public_pem(srv->release_key_pem, &srv->release_pub_pem) < 0) {
        snprintf(err, errsz, "%s: not an Ed25519 private key", path);
        return -1;
    }
    char *hash = NULL;
    int rc = store_meta_get(srv->store, "admin_token_sha256", &hash);
    if (rc == STORE_OK) {
        snprintf(srv->admin_hash, sizeof(srv->admin_hash), "%s", hash);
        free(hash);
        return 0;
    }
    if (rc != STORE_NOTFOUND) {
        snprintf(err, errsz, "%s: cannot read the admin token", dir);
        return -1;
    }
    char token[CRYPTO_TOKEN_MAX];
    if (crypto_random_token("dva_", token) < 0) {
        snprintf(err, errsz, "admin token: no randomness");
        return -1;
    }
    crypto_sha256_hex(token, strlen(token), srv->admin_hash);
    if (store_meta_set(srv->store, "admin_token_sha256", srv->admin_hash) < 0) {
        snprintf(err, errsz, "%s: cannot store the admin token", dir);
        return -1;
    }
    /* The only time the token exists in clear: the database keeps its hash. */
    printf("admin API token (shown once, keep it): %s\n", token);
    fflush(stdout);
    return 0;
}

static int parse_listen(struct server_config *c, char *err, size_t errsz)
{
    const char *l = c->listen, *colon;
    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        if (!close || close[1] != ':')
            goto bad;
        snprintf(c->host, sizeof(c->host), "%.*s", (int)(close - l - 1), l + 1);
        colon = close + 1;
    } else {
        colon = strrchr(l, ':');
        if (!colon)
            goto bad;
        snprintf(c->host, sizeof(c->host), "%.*s", (int)(colon - l), l);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || colon[1] == '\0')
        goto bad;
    c->port = (int)port;
    return 0;
bad:
    snprintf(err, errsz, "--listen \"%s\": expected ADDR:PORT", l);
    return -1;
}

/* "10GiB", "500MB", "1048576": a size in bytes, 0 included. 0 or -1. */
static int parse_bytes(const char *v, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t scale;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1LL << 10},
                 {"MiB", 1LL << 20},
                 {"GiB", 1LL << 30},
                 {"TiB", 1LL << 40},
                 {"kB", 1000},
                 {"KB", 1000},
                 {"MB", 1000 * 1000},
                 {"GB", 1000 * 1000 * 1000},
                 {"TB", 1000LL * 1000 * 1000 * 1000}};
    char *end;
    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > INT64_MAX / units[i].scale)
                return -1;
            *out = n * units[i].scale;
            return 0;
        }
    return -1;
}

/* The retention settings from the environment (DAVIT_X, else SPACELIFT_X);
 * the command line overrides them. */
static int retention_from_env(struct server_config *c, char *err, size_t errsz)
{
    char var[ENV_NAME_MAX];
    if (env_duration("RETENTION_MAX_AGE", c->retention_max_age_ms, &c->retention_max_age_ms, err,
                     errsz) < 0)
        return -1;
    const char *v = env_get("RETENTION_MAX_LOG_BYTES", var, sizeof(var));
    if (v && parse_bytes(v, &c->retention_max_log_bytes) < 0) {
        snprintf(err, errsz, "%s: not a size (like 10GiB, 500MB, 0): \"%s\"", var, v);
        return -1;
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct server_config *c, char *err, size_t errsz)
{
    static const struct option opts[] = {
        {"data-dir", required_argument, 0, 'd'},
        {"listen", required_argument, 0, 'l'},
        {"public-url", required_argument, 0, 'u'},
        {"tls-cert", required_argument, 0, 'c'},
        {"tls-key", required_argument, 0, 'k'},
        {"insecure-http", no_argument, 0, 'i'},
        {"lease", required_argument, 0, 'L'},
        {"lost-grace", required_argument, 0, 'G'},
        {"session-ttl", required_argument, 0, 'S'},
        {"poll-timeout", required_argument, 0, 'P'},
        {"threads", required_argument, 0, 't'},
        {"max-log-bytes", required_argument, 0, 'm'},
        {"retention-max-age", required_argument, 0, 'A'},
        {"retention-max-log-bytes", required_argument, 0, 'B'},
        {"log-format", required_argument, 0, 'f'},
        {"debug", no_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    enum log_format fmt = LOG_TEXT;
    int debug = 0, o;
    const char *cert = NULL, *key = NULL;
    char *end;
    if (retention_from_env(c, err, errsz) < 0)
        return -1;
    optind = 1;
    int longindex = 0;
    while ((o = getopt_long(argc, argv, "", opts, &longindex)) != -1) {
        int64_t *dur = NULL;
        switch (o) {
        case 'd':
            snprintf(c->data_dir, sizeof(c->data_dir), "%s", optarg);
            break;
        case 'l':
            snprintf(c->listen, sizeof(c->listen), "%s", optarg);
            break;
        case 'u':
            snprintf(c->public_url, sizeof(c->public_url), "%s", optarg);
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'i':
            c->insecure_http = 1;
            break;
        case 'L':
            dur = &c->lease_ms;
            break;
        case 'G':
            dur = &c->grace_ms;
            break;
        case 'S':
            dur = &c->session_ttl_ms;
            break;
        case 'P':
            dur = &c->poll_max_ms;
            break;
        case 't':
            c->threads = (int)strtol(optarg, &end, 10);
            if (*end || c->threads < 1 || c->threads > 64) {
                snprintf(err, errsz, "--threads \"%s\": expected 1 to 64", optarg);
                return -1;
            }
            break;
        case 'm':
            c->max_log_bytes = strtoll(optarg, &end, 10);
            if (*end || c->max_log_bytes < 1024) {
                snprintf(err, errsz, "--max-log-bytes \"%s\": expected a number >= 1024", optarg);
                return -1;
            }
            break;
        case 'A':
            if (duration_parse(optarg, &c->retention_max_age_ms) < 0) {
                snprintf(err, errsz,
                         "--retention-max-age \"%s\": not a duration (like 30d, 12h; at most"
                         " 100d; 0 keeps runs forever)",
                         optarg);
                return -1;
            }
            break;
        case 'B':
            if (parse_bytes(optarg, &c->retention_max_log_bytes) < 0) {
                snprintf(err, errsz,
                         "--retention-max-log-bytes \"%s\": not a size (like 10GiB, 500MB; 0 for"
                         " no cap)",
                         optarg);
                return -1;
            }
            break;
        case 'f':
            if (log_format_parse(optarg, &fmt) < 0) {
                snprintf(err, errsz, "--log-format \"%s\": expected text or json", optarg);
                return -1;
            }
            break;
        case 'D':
            debug = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            snprintf(err, errsz, "bad option (see davit server --help)");
            return -1;
        }
        if (dur && (duration_parse(optarg, dur) < 0 || *dur <= 0)) {
            snprintf(err, errsz, "--%s \"%s\": not a positive duration", opts[longindex].name,
                     optarg);
            return -1;
        }
    }
    log_setup(fmt, debug, NULL);
    if (optind < argc) {
        snprintf(err, errsz, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    if (!c->data_dir[0]) {
        snprintf(err, errsz, "--data-dir is required");
        return -1;
    }
    if (!cert != !key) {
        snprintf(err, errsz, "--tls-cert and --tls-key go together");
        return -1;
    }
    if (cert && (read_text(cert, 1 << 20, &c->tls_cert, err, errsz) < 0 ||
                 read_text(key, 1 << 20, &c->tls_key, err, errsz) < 0))
        return -1;
    if (cert && crypto_cert_pin(c->tls_cert, c->tls_pin, err, errsz) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errsz, "--tls-cert %s: %s", cert, why);
        return -1;
    }
    if (c->poll_max_ms > c->lease_ms * 2 / 3)
        c->poll_max_ms = c->lease_ms * 2 / 3;
    return parse_listen(c, err, errsz);
}

int server_main(int argc, char **argv, const char *self_path)
{
    static struct server srv; /* large; lives for the whole process */
    struct reaper rp = {.srv = &srv, .mu = PTHREAD_MUTEX_INITIALIZER};
    struct sweeper sw = {.srv = &srv, .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_condattr_t ca;
    /* The reaper's tick must not stall when someone steps the wall clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rp.cond, &ca);
    pthread_cond_init(&sw.cond, &ca);
    pthread_condattr_destroy(&ca);
    char err[1024];
    int code = 1, reaper_started = 0, sweeper_started = 0;
    struct server_config *c = &srv.cfg;
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8400");
    c->threads = 2;
    c->lease_ms = 30 * 1000;
    c->grace_ms = 5 * 60 * 1000;
    c->session_ttl_ms = 3600 * 1000;
    c->challenge_ttl_ms = 60 * 1000;
    c->poll_max_ms = 25 * 1000;
    c->max_log_bytes = 1LL << 30;
    /* A month of history is what people look back on; without a default
     * the database grows until the disk is full (docs/server.md). */
    c->retention_max_age_ms = 30LL * 24 * 3600 * 1000;
    c->retention_max_log_bytes = 0;
    metrics_init(&srv.metrics);
    if (parse_options(argc, argv, c, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit server: %s\n", err);
        code = 2;
        goto out;
    }
    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv.disp = dispatch_new();
    if (!srv.disp || init_data_dir(&srv, err, sizeof(err)) < 0 ||
        http_start(&srv, err, sizeof(err)) < 0) {
        log_event(LOG_ERROR, "cannot start", "reason", err, NULL);
        goto out;
    }
    if (!c->public_url[0]) {
        int v6 = strchr(c->host, ':') != NULL;
        snprintf(c->public_url, sizeof(c->public_url), "%s://%s%s%s:%d",
                 c->tls_cert ? "https" : "http", v6 ? "[" : "", c->host[0] ? c->host : "127.0.0.1",
                 v6 ? "]" : "", c->port);
    }
    publish_builtin(&srv, self_path, "worker", "davit-worker");
    publish_builtin(&srv, self_path, "launcher", "davit-launcher");
    if (pthread_create(&rp.thread, NULL, reaper_main, &rp) != 0) {
        log_event(LOG_ERROR, "cannot start", "reason", "no thread for lease expiry", NULL);
        goto out;
    }
    reaper_started = 1;
    if (pthread_create(&sw.thread, NULL, sweeper_main, &sw) != 0) {
        log_event(LOG_ERROR, "cannot start", "reason", "no thread for the retention sweep", NULL);
        goto out;
    }
    sweeper_started = 1;
    srv.sweeper = &sw;
    char port[16];
    snprintf(port, sizeof(port), "%d", c->port);
    log_event(LOG_INFO, "server listening", "url", c->public_url, "port", port, "data_dir",
              c->data_dir, NULL);
    printf("listening on %s\n", c->public_url);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    log_event(LOG_INFO, "server stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    code = 0;
out:
    if (reaper_started) {
        pthread_mutex_lock(&rp.mu);
        rp.stop = 1;
        pthread_cond_signal(&rp.cond);
        pthread_mutex_unlock(&rp.mu);
        pthread_join(rp.thread, NULL);
    }
    pthread_cond_destroy(&rp.cond);
    if (srv.disp)
        dispatch_shutdown(srv.disp);
    http_stop(&srv);
    /* After the HTTP threads: a DELETE may kick the sweep until then. */
    if (sweeper_started) {
        pthread_mutex_lock(&sw.mu);
        sw.stop = 1;
        pthread_cond_signal(&sw.cond);
        pthread_mutex_unlock(&sw.mu);
        pthread_join(sw.thread, NULL);
    }
    pthread_cond_destroy(&sw.cond);
    store_close(srv.store);
    dispatch_free(srv.disp);
    metrics_destroy(&srv.metrics);
    free(srv.release_key_pem);
    free(srv.release_pub_pem);
    free(c->tls_cert);
    free(c->tls_key);
    return code;
}
