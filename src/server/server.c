/* `davit server`: the data directory, start, stop and the main loop. */
#include "server/server.h"

#include "server/background.h"
#include "server/challenges.h"
#include "server/keycache.h"
#include "server/config.h"
#include "server/fanout.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/migrate.h"
#include "server/releases.h"
#include "server/request.h"
#include "server/state.h"
#include "server/watch.h"

#include "common/crypto.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/secure.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The meta key under which the store records the release key's public half (SPKI PEM). */
#define RELEASE_KEY_META "release_key_pub"

/*
 * Records the release key's public half in the store, or checks it against the one recorded:
 * every server sharing a store must sign releases with one key, the one that the pool tokens
 * they hand out carry. A shared store (PostgreSQL) refuses a server with another key, naming
 * both fingerprints and the fix; a store of one server (SQLite) keeps its data directory's key as
 * before, recording it anew. path: where the key came from, for the message.
 */
static int release_key_agree(struct server *srv, const char *path, char *err, size_t errsz)
{
    char *stored = NULL, mine[SEAL_KEY_ID_HEX], theirs[SEAL_KEY_ID_HEX], why[256];
    int rc = -1;
    if (store_meta_put_new(srv->store, RELEASE_KEY_META, srv->release_pub_pem, &stored) < 0) {
        snprintf(err, errsz, "release key: the database failed");
        return -1;
    }
    if (strcmp(stored, srv->release_pub_pem) == 0)
        rc = 0;
    else if (seal_key_id_pem(srv->release_pub_pem, mine, why, sizeof(why)) < 0 ||
             seal_key_id_pem(stored, theirs, why, sizeof(why)) < 0)
        snprintf(err, errsz, "release key: %s", why);
    else if (strcmp(mine, theirs) == 0) /* the same key, spelt otherwise */
        rc = 0;
    else if (strcmp(store_kind(srv->store), "sqlite") == 0) {
        log_event(LOG_WARN,
                  "release key changed since the last start: pool tokens made before carry the old "
                  "one (reset those pools)",
                  "path", path, "key", mine, "was", theirs, NULL);
        rc = store_meta_set(srv->store, RELEASE_KEY_META, srv->release_pub_pem) < 0 ? -1 : 0;
        if (rc < 0)
            snprintf(err, errsz, "release key: the database failed");
    } else {
        snprintf(err, errsz,
                 "release key %s (sha256 %s) is not the key the servers sharing this database "
                 "sign with (sha256 %s): copy release-key.pem from the first server into "
                 "--data-dir, or pass --release-key-file FILE (DAVIT_RELEASE_KEY_FILE) with it",
                 path, mine, theirs);
    }
    free(stored);
    return rc;
}

/* Loads the release-signing key (--release-key-file, else the data directory's, created on
 * first start); derives the public key that pool tokens carry; checks it with the store's. */
static int load_release_key(struct server *srv, char *err, size_t errsz)
{
    const char *dir = srv->cfg.data_dir, *file = srv->cfg.release_key_file;
    char path[PATH_MAX + 32];
    if (file[0])
        snprintf(path, sizeof(path), "%s", file);
    else
        snprintf(path, sizeof(path), "%s/release-key.pem", dir);
    if (file[0] || access(path, F_OK) == 0) {
        if (fsutil_read_text(path, 64 * 1024, &srv->release_key_pem, err, errsz) < 0)
            return -1;
    } else {
        if (crypto_ed25519_generate(&srv->release_key_pem, &srv->release_pub_pem) < 0) {
            snprintf(err, errsz, "release key: cannot generate an Ed25519 key");
            return -1;
        }
        free(srv->release_pub_pem);
        srv->release_pub_pem = NULL;
        if (fsutil_write_private(path, srv->release_key_pem, err, errsz) < 0)
            return -1;
        log_event(LOG_INFO, "release-signing key created", "path", path, NULL);
    }
    if (crypto_public_pem(srv->release_key_pem, &srv->release_pub_pem) < 0) {
        snprintf(err, errsz, "%s: not an Ed25519 private key", path);
        return -1;
    }
    return release_key_agree(srv, path, err, errsz);
}

/* The admin token's sha256 hex in the store's meta table. */
#define ADMIN_TOKEN_META "admin_token_sha256"

/* With --admin-token-file the file is the source of truth: its token's hash
 * replaces a different stored one (a rotation), and nothing is printed. Not on a database that
 * several servers share: the others would keep accepting the old token, so a server whose file
 * differs from the database's token is refused (every replica gets the same file). */
static int admin_token_from_file(struct server *srv, const char *stored, char *err, size_t errsz)
{
    const struct server_config *c = &srv->cfg;
    snprintf(srv->admin_hash, sizeof(srv->admin_hash), "%s", c->admin_file_hash);
    if (stored && crypto_str_equal(stored, c->admin_file_hash))
        return 0;
    int raced = 0;
    if (!stored) {
        /* Stored only if no other server stored one since it was read (replicas that start
         * together on a new database). */
        char *now = NULL;
        if (store_meta_put_new(srv->store, ADMIN_TOKEN_META, c->admin_file_hash, &now) !=
            STORE_OK) {
            snprintf(err, errsz, "%s: cannot store the admin token", c->data_dir);
            return -1;
        }
        raced = !crypto_str_equal(now, c->admin_file_hash);
        free(now);
        if (!raced) {
            log_event(LOG_INFO, "admin token set from file", "path", c->admin_token_file, NULL);
            return 0;
        }
    }
    if ((stored || raced) && fanout_shared(srv->store)) {
        snprintf(err, errsz,
                 "%s: not the admin token of the database, which another server set: give every "
                 "server the same admin token file (docs/server.md, \"Several servers\")",
                 c->admin_token_file);
        return -1;
    }
    if (store_meta_set(srv->store, ADMIN_TOKEN_META, c->admin_file_hash) < 0) {
        snprintf(err, errsz, "%s: cannot store the admin token", c->data_dir);
        return -1;
    }
    log_event(LOG_INFO, "admin token rotated from file", "path", c->admin_token_file, NULL);
    return 0;
}

/* Loads the admin token's hash, or takes it from --admin-token-file, or
 * makes the token on first start and prints it, the only time it exists in
 * clear. */
static int load_admin_token(struct server *srv, char *err, size_t errsz)
{
    const char *dir = srv->cfg.data_dir;
    char *hash = NULL;
    int rc = store_meta_get(srv->store, ADMIN_TOKEN_META, &hash);
    if (rc != STORE_OK && rc != STORE_NOTFOUND) {
        snprintf(err, errsz, "%s: cannot read the admin token", dir);
        return -1;
    }
    if (srv->cfg.admin_token_file[0]) {
        rc = admin_token_from_file(srv, hash, err, errsz);
        free(hash);
        return rc;
    }
    if (rc == STORE_OK) {
        snprintf(srv->admin_hash, sizeof(srv->admin_hash), "%s", hash);
        free(hash);
        return 0;
    }
    char token[CRYPTO_TOKEN_MAX];
    if (crypto_random_token("dva_", token) < 0) {
        snprintf(err, errsz, "admin token: no randomness");
        return -1;
    }
    crypto_sha256_hex(token, strlen(token), srv->admin_hash);
    /* Stored unless another server of the database stored one first: then that one is this
     * server's too, and this token is never shown. */
    char *now = NULL;
    if (store_meta_put_new(srv->store, ADMIN_TOKEN_META, srv->admin_hash, &now) != STORE_OK) {
        explicit_bzero(token, sizeof(token));
        snprintf(err, errsz, "%s: cannot store the admin token", dir);
        return -1;
    }
    int theirs = !crypto_str_equal(now, srv->admin_hash);
    if (theirs)
        snprintf(srv->admin_hash, sizeof(srv->admin_hash), "%s", now);
    free(now);
    if (theirs) {
        explicit_bzero(token, sizeof(token));
        log_event(LOG_INFO, "admin token made by another server of the database first: taken",
                  NULL);
        return 0;
    }
    /* The only time the token exists in clear: the database keeps its hash. */
    printf("admin API token (shown once, keep it): %s\n", token);
    fflush(stdout);
    explicit_bzero(token, sizeof(token));
    return 0;
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
    if (fsutil_sync_dir_of(srv->releases_dir) < 0 || fsutil_sync_dir_of(dir) < 0) {
        snprintf(err, errsz, "--data-dir %s: fsync: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/davit.db", dir);
    /* --database: PostgreSQL, else the SQLite file in the data directory. */
    const char *where = srv->cfg.database[0] ? srv->cfg.database : path;
    char label[CONFIG_DATABASE_MAX];
    config_database_label(where, label, sizeof(label));
    if (store_open(&srv->store, where, err, errsz) < 0)
        return -1;
    log_event(LOG_INFO, "store open", "kind", store_kind(srv->store), "database",
              srv->cfg.database[0] ? label : path, NULL);
    /* Now rather than at the first scrape: /metrics then never scans runs.
     * A failure (logged by the store) is no reason not to serve: the first
     * scrape tries again. */
    if (store_metrics_prepare(srv->store) < 0)
        log_event(LOG_WARN, "cannot count the runs for /metrics yet: the first scrape will", "path",
                  path, NULL);
    if (load_release_key(srv, err, errsz) < 0 ||
        challenges_load_key(srv->challenges, srv->store, err, errsz) < 0)
        return -1;
    return load_admin_token(srv, err, errsz);
}

/* Descriptors kept for what is not a connection: the database, its WAL and
 * shared memory, release files being read or written, the epoll and
 * listening sockets, the log. Generous: running out of them fails requests
 * in ways harder to read than a refused connection. */
#define SERVER_FD_RESERVE 128
/* The soft limit set when the hard one is unlimited: the kernel's default
 * fs.nr_open, the most setrlimit accepts without a sysctl. */
#define SERVER_FD_UNLIMITED_TARGET 1048576

/*
 * Raises the soft limit of open files to the hard one: every connection is a
 * descriptor, and the usual soft default (1024) would let a thousand idle
 * launchers or stalled clients stop the server. Then lowers
 * --max-connections to what the limit holds, so that a full server refuses
 * connections instead of failing to open its own files, and
 * --max-connections-per-address to half of that. Logs what it changed.
 */
static void raise_fd_limit(struct server_config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_event(LOG_WARN, "cannot read the open files limit", "reason", strerror(errno), NULL);
        return;
    }
    char before[24], soft[24], hard[24];
    snprintf(before, sizeof(before), "%llu", (unsigned long long)rl.rlim_cur);
    rlim_t target = rl.rlim_max == RLIM_INFINITY ? SERVER_FD_UNLIMITED_TARGET : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= target) {
        target = rl.rlim_cur;
    } else {
        struct rlimit want = {.rlim_cur = target, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
            log_event(LOG_WARN, "cannot raise the open files limit", "reason", strerror(errno),
                      NULL);
            target = rl.rlim_cur;
        }
    }
    snprintf(soft, sizeof(soft), "%llu", (unsigned long long)target);
    if (rl.rlim_max == RLIM_INFINITY)
        snprintf(hard, sizeof(hard), "unlimited");
    else
        snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
    log_event(LOG_INFO, "open files limit", "soft_at_start", before, "soft", soft, "hard", hard,
              NULL);
    if (target != RLIM_INFINITY && (rlim_t)c->max_connections + SERVER_FD_RESERVE > target) {
        long long fit = target > SERVER_FD_RESERVE ? (long long)(target - SERVER_FD_RESERVE) : 1;
        char want[24], got[24];
        snprintf(want, sizeof(want), "%lld", c->max_connections);
        snprintf(got, sizeof(got), "%lld", fit);
        log_event(LOG_WARN, "--max-connections lowered to fit the open files limit", "asked", want,
                  "max_connections", got, "open_files_limit", soft, NULL);
        c->max_connections = fit;
    }
    /* One address must never fill the server alone, or a single client
     * could lock out every launcher; 0 (no limit) is an explicit choice. */
    long long half = c->max_connections / 2 > 0 ? c->max_connections / 2 : 1;
    if (c->max_connections_per_address > half) {
        char want[24], got[24];
        snprintf(want, sizeof(want), "%lld", c->max_connections_per_address);
        snprintf(got, sizeof(got), "%lld", half);
        log_event(LOG_WARN, "--max-connections-per-address lowered to half of --max-connections",
                  "asked", want, "max_connections_per_address", got, NULL);
        c->max_connections_per_address = half;
    }
}

/* The URL put in pool tokens when --public-url is not given: --listen's. */
static void default_public_url(struct server_config *c)
{
    int v6 = strchr(c->host, ':') != NULL;
    snprintf(c->public_url, sizeof(c->public_url), "%s://%s%s%s:%d", c->tls_cert ? "https" : "http",
             v6 ? "[" : "", c->host[0] ? c->host : "127.0.0.1", v6 ? "]" : "", c->port);
}

/*
 * Everything from the data directory to the background threads; logs what
 * failed. On -1, server_stop() undoes what was done.
 */
static int server_start(struct server *srv, const char *self_path)
{
    struct server_config *c = &srv->cfg;
    char err[1024];
    srv->disp = dispatch_new();
    srv->metrics = metrics_new();
    srv->challenges = challenges_new();
    /* A quarter of the connections at most: the rest stay for launchers. */
    srv->watch = watch_new((size_t)c->max_connections / 4);
    srv->keys = keycache_new();
    int oom = !srv->disp || !srv->metrics || !srv->challenges || !srv->watch || !srv->keys;
    if (oom)
        snprintf(err, sizeof(err), "out of memory");
    if (oom || init_data_dir(srv, err, sizeof(err)) < 0) {
        log_event(LOG_ERROR, "cannot start", "reason", err, NULL);
        return -1;
    }
    /* Before HTTP: no wake-up from another server is missed once requests run. */
    srv->fanout = fanout_new(srv->store, srv->disp, srv->watch, srv->keys);
    if (!srv->fanout)
        snprintf(err, sizeof(err), "out of memory");
    if (!srv->fanout || fanout_start(srv->fanout, err, sizeof(err)) < 0) {
        log_event(LOG_ERROR, "cannot start", "reason", err, NULL);
        return -1;
    }
    /* After the data directory, so that a refused start says one line. */
    raise_fd_limit(c);
    if (http_start(srv, err, sizeof(err)) < 0) {
        log_event(LOG_ERROR, "cannot start", "reason", err, NULL);
        return -1;
    }
    if (!c->public_url[0])
        default_public_url(c);
    release_publish_builtin(srv, self_path);
    srv->reaper = reaper_start(srv);
    if (!srv->reaper) {
        log_event(LOG_ERROR, "cannot start", "reason", "no thread for lease expiry", NULL);
        return -1;
    }
    srv->sweeper = sweeper_start(srv);
    if (!srv->sweeper) {
        log_event(LOG_ERROR, "cannot start", "reason", "no thread for the retention sweep", NULL);
        return -1;
    }
    return 0;
}

/* Stops in the order that lets each part finish: the reaper, waiting
 * requests (503), HTTP, the sweep; then frees the rest. */
static void server_stop(struct server *srv)
{
    bg_stop(srv->reaper);
    srv->reaper = NULL;
    if (srv->disp)
        dispatch_shutdown(srv->disp);
    if (srv->watch)
        watch_shutdown(srv->watch);
    http_stop(srv);
    /* After the HTTP threads: a DELETE may kick the sweep until then. */
    bg_stop(srv->sweeper);
    srv->sweeper = NULL;
    fanout_stop(srv->fanout); /* sends what it still holds, while the store is open */
    store_close(srv->store);  /* ends the listener, which calls the fanout */
    fanout_free(srv->fanout);
    dispatch_free(srv->disp);
    watch_free(srv->watch);
    metrics_free(srv->metrics);
    challenges_free(srv->challenges);
    keycache_free(srv->keys);
    secure_free_str(srv->release_key_pem); /* after http_stop: nothing signs any more */
    free(srv->release_pub_pem);
    free(srv->cfg.tls_cert);
    secure_free_str(srv->cfg.tls_key); /* libmicrohttpd used it until http_stop */
}

int server_main(int argc, char **argv, const char *self_path)
{
    static struct server srv; /* large; lives for the whole process */
    char err[1024];
    int code = 1;
    struct server_config *c = &srv.cfg;
    if (argc > 1 && strcmp(argv[1], "migrate") == 0)
        return server_migrate_main(argc - 1, argv + 1);
    config_defaults(c);
    if (config_parse(argc, argv, c, err, sizeof(err)) < 0) {
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
    /* The database, its WAL and the release key hold secrets: nobody else reads what we create. */
    umask(077);
    if (server_start(&srv, self_path) < 0)
        goto out;
    char port[16];
    snprintf(port, sizeof(port), "%d", c->port);
    log_event(LOG_INFO, "server listening", "url", c->public_url, "port", port, "data_dir",
              c->data_dir, "replica", c->replica_name, "store", store_kind(srv.store), NULL);
    printf("listening on %s\n", c->public_url);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    log_event(LOG_INFO, "server stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    code = 0;
out:
    server_stop(&srv);
    return code;
}
