/* `davit server`'s settings: defaults, environment and command line. */
#include "server/config.h"

#include "common/crypto.h"
#include "common/duration.h"
#include "common/env.h"
#include "common/fsutil.h"
#include "common/log.h"
#ifdef DAVIT_HAVE_POSTGRES
#include "server/store_pg.h"
#endif

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: davit server --data-dir DIR [--listen ADDR:PORT] [options]\n"
    "  --listen ADDR:PORT     address to serve on (default 127.0.0.1:8400; port 0 picks one)\n"
    "  --public-url URL       the URL launchers use, put in pool tokens (default from --listen)\n"
    "  --replica-name NAME    this server among those sharing a database, in /metrics\n"
    "                         and logs (default the hostname); also DAVIT_REPLICA_NAME\n"
    "  --tls-cert FILE        PEM certificate (chain) for HTTPS\n"
    "  --tls-key FILE         PEM private key for HTTPS\n"
    "  --insecure-http        allow plain HTTP on a non-loopback address\n"
    "  --allow-plaintext-secrets\n"
    "                         accept runs with plaintext secrets (sealed here at once, for\n"
    "                         migration; docs/secrets.md); also DAVIT_ALLOW_PLAINTEXT_SECRETS\n"
    "  --lease DUR            launcher lease without a request (default 30s)\n"
    "  --lost-grace DUR       then started runs become lost after this (default 5m)\n"
    "  --session-ttl DUR      launcher session lifetime (default 1h)\n"
    "  --poll-timeout DUR     longest long-poll (default 25s, at most 2/3 of the lease)\n"
    "  --challenge-ttl DUR    how long a registration challenge is good (default 60s)\n"
    "  --header-timeout DUR   close a connection on which nothing moves for this long,\n"
    "                         like a client stalled mid-header (default 30s; waiting\n"
    "                         long-polls and log follows are not affected)\n"
    "  --header-deadline DUR  close a connection whose request header is not complete\n"
    "                         this long after it began, however it trickles (default\n"
    "                         30s; a long-poll's wait is not header time)\n"
    "  --max-connections N    connections at once, long-polls included (default 16384,\n"
    "                         lowered to fit the file descriptor limit)\n"
    "  --max-connections-per-address N\n"
    "                         connections at once from one client address (default 1024;\n"
    "                         0: no limit, for a server behind a reverse proxy)\n"
    "  --max-log-bytes N      cap of one run's log (default 1073741824)\n"
    "  --retention-max-age DUR\n"
    "                         delete runs that ended longer ago than this (default 30d,\n"
    "                         at most 100d; 0 keeps them forever)\n"
    "  --retention-max-log-bytes SIZE\n"
    "                         cap of all logs together, like 10GiB; the logs of the runs\n"
    "                         that ended first go (default 0: no cap)\n"
    "  --sweep-interval DUR   how often the retention sweep runs (default 5s; it also runs\n"
    "                         at once when a run is deleted)\n"
    "  --metrics-token-file FILE\n"
    "                         /metrics answers only a bearer of the token in FILE (or\n"
    "                         the admin token); also DAVIT_METRICS_TOKEN (default: open)\n"
    "  --admin-token-file FILE\n"
    "                         the admin token is the one in FILE (dva_..., or 32 or more\n"
    "                         random characters; not writable by group or others), never\n"
    "                         printed; a changed file rotates it; also DAVIT_ADMIN_TOKEN_FILE\n"
    "  --release-key-file FILE\n"
    "                         the Ed25519 key that signs releases (default: the data\n"
    "                         directory's release-key.pem, made on first start); servers\n"
    "                         sharing a database need the same; also DAVIT_RELEASE_KEY_FILE\n"
    "  --database URL         PostgreSQL (postgres://USER:PASSWORD@HOST:PORT/DB), which\n"
    "                         several servers may share; also DAVIT_DATABASE_URL (default:\n"
    "                         SQLite, davit.db in --data-dir)\n"
    "  --threads N            HTTP threads (default 8)\n"
    "  --log-format text|json, --debug\n";

static const struct option opts[] = {
    {"data-dir", required_argument, 0, 'd'},
    {"database", required_argument, 0, 'Q'},
    {"listen", required_argument, 0, 'l'},
    {"public-url", required_argument, 0, 'u'},
    {"tls-cert", required_argument, 0, 'c'},
    {"tls-key", required_argument, 0, 'k'},
    {"insecure-http", no_argument, 0, 'i'},
    {"allow-plaintext-secrets", no_argument, 0, 'X'},
    {"lease", required_argument, 0, 'L'},
    {"lost-grace", required_argument, 0, 'G'},
    {"session-ttl", required_argument, 0, 'S'},
    {"poll-timeout", required_argument, 0, 'P'},
    {"challenge-ttl", required_argument, 0, 'C'},
    {"header-timeout", required_argument, 0, 'H'},
    {"header-deadline", required_argument, 0, 'E'},
    {"max-connections", required_argument, 0, 'M'},
    {"max-connections-per-address", required_argument, 0, 'N'},
    {"metrics-token-file", required_argument, 0, 'T'},
    {"admin-token-file", required_argument, 0, 'a'},
    {"release-key-file", required_argument, 0, 'R'},
    {"threads", required_argument, 0, 't'},
    {"replica-name", required_argument, 0, 'n'},
    {"max-log-bytes", required_argument, 0, 'm'},
    {"retention-max-age", required_argument, 0, 'A'},
    {"retention-max-log-bytes", required_argument, 0, 'B'},
    {"sweep-interval", required_argument, 0, 'w'},
    {"log-format", required_argument, 0, 'f'},
    {"debug", no_argument, 0, 'D'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* What the options give that is not kept in struct server_config. */
struct cmdline {
    enum log_format fmt;
    const char *replica; /* --replica-name */
    int debug;
    const char *cert, *key;
    const char *admin_file; /* --admin-token-file, read after the environment */
    const char *database;   /* --database, over DAVIT_DATABASE_URL */
};

void config_defaults(struct server_config *c)
{
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8400");
    c->threads = 8; /* a thread waiting for its group commit holds its connections */
    c->lease_ms = 30 * 1000;
    c->grace_ms = 5 * 60 * 1000;
    c->session_ttl_ms = 3600 * 1000;
    c->challenge_ttl_ms = 60 * 1000;
    c->poll_max_ms = 25 * 1000;
    /* A client that sends part of a request and stalls holds a descriptor
     * and up to the connection's memory: let it go well within a minute,
     * yet leave a slow but live link (a launcher on a congested uplink) a
     * generous margin, as web servers do (20 to 60 s). */
    c->header_timeout_ms = 30 * 1000;
    /* The idle timeout restarts with every byte: a client that sends one
     * header byte a second would hold its connection for ever. A request
     * header is a few hundred bytes, sent at once by every real client; the
     * same 30 s as the idle timeout lets a congested link finish one. */
    c->header_deadline_ms = 30 * 1000;
    /* Idle launchers each hold a long-poll open: thousands of them are
     * normal. server.c lowers it to what the descriptor limit holds. */
    c->max_connections = 16384;
    /* One address cannot take more than 1/16 of the default cap, yet a few
     * hundred launchers behind one NAT address (each holds a long-poll and
     * one connection per run it carries) still fit. */
    c->max_connections_per_address = 1024;
    c->max_log_bytes = 1LL << 30;
    /* A month of history is what people look back on; without a default
     * the database grows until the disk is full (docs/server.md). */
    c->retention_max_age_ms = 30LL * 24 * 3600 * 1000;
    c->retention_max_log_bytes = 0;
    /* Expiry, log caps and a full disk's probe need no more often; what must
     * be at once (a run's end, a deletion) kicks the sweep. */
    c->sweep_interval_ms = 5 * 1000;
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
                     errsz) < 0 ||
        env_duration("SWEEP_INTERVAL", c->sweep_interval_ms, &c->sweep_interval_ms, err, errsz) < 0)
        return -1;
    if (c->sweep_interval_ms <= 0) {
        snprintf(err, errsz, "DAVIT_SWEEP_INTERVAL: not a positive duration");
        return -1;
    }
    const char *v = env_get("RETENTION_MAX_LOG_BYTES", var, sizeof(var));
    if (v && parse_bytes(v, &c->retention_max_log_bytes) < 0) {
        snprintf(err, errsz, "%s: not a size (like 10GiB, 500MB, 0): \"%s\"", var, v);
        return -1;
    }
    return 0;
}

/* Keeps only the token's sha256, as for the admin token. 0, or -1 with err. */
static int set_metrics_token(struct server_config *c, const char *tok, const char *what, char *err,
                             size_t errsz)
{
    if (strlen(tok) < 16) {
        snprintf(err, errsz, "%s: the metrics token must be at least 16 characters", what);
        return -1;
    }
    crypto_sha256_hex(tok, strlen(tok), c->metrics_hash);
    return 0;
}

/* Characters of a token: base64 (either alphabet), hex, and the separators
 * of dva_ tokens. */
static int token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("-_.+/=~", ch) != NULL;
}

/* The fewest distinct characters a token from a generator has: a 32-character
 * hex string has about 14; "passwordpassword..." has 7. */
#define ADMIN_TOKEN_MIN_DISTINCT 8
#define ADMIN_TOKEN_MIN_LEN      32

/* Whether tok looks like a generated token: dva_ and more (as `davit server`
 * makes), or at least 32 token characters that are not one short word
 * repeated. Returns the reason it is not, or NULL. */
static const char *admin_token_refusal(const char *tok)
{
    size_t n = strlen(tok), distinct = 0;
    unsigned char seen[256] = {0};
    if (n < ADMIN_TOKEN_MIN_LEN)
        return "the token is shorter than 32 characters (openssl rand -hex 32 makes one)";
    for (size_t i = 0; i < n; i++) {
        if (!token_char(tok[i]))
            return "the token has a character other than letters, digits and -_.+/=~ (one line)";
        if (!seen[(unsigned char)tok[i]]++)
            distinct++;
    }
    if (distinct < ADMIN_TOKEN_MIN_DISTINCT)
        return "the token does not look random (openssl rand -hex 32 makes one)";
    return NULL;
}

/* Reads the admin token from path (what names the option or variable), checks
 * it and keeps only its sha256: the buffer is wiped before returning.
 * 0, or -1 with err, which never holds the file's content. */
static int set_admin_token_file(struct server_config *c, const char *path, const char *what,
                                char *err, size_t errsz)
{
    struct stat sb;
    char *tok = NULL;
    const char *why = NULL;
    int rc = -1;
    if (stat(path, &sb) < 0) {
        snprintf(err, errsz, "%s %s: %s", what, path, strerror(errno));
        goto fail;
    }
    /* Whoever may write the file may make themselves admin. */
    if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errsz, "%s %s: writable by group or others (mode %04o); chmod go-w it", what,
                 path, (unsigned)(sb.st_mode & 07777));
        goto fail;
    }
    if (fsutil_read_text(path, 4096, &tok, err, errsz) < 0)
        goto fail;
    /* One line: a trailing newline (echo > FILE) is not part of the token. */
    size_t n = strlen(tok);
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
        tok[--n] = '\0';
    why = admin_token_refusal(tok);
    if (why) {
        snprintf(err, errsz, "%s %s: %s", what, path, why);
        goto fail;
    }
    snprintf(c->admin_token_file, sizeof(c->admin_token_file), "%s", path);
    crypto_sha256_hex(tok, n, c->admin_file_hash);
    rc = 0;
fail:
    if (tok) {
        explicit_bzero(tok, strlen(tok));
        free(tok);
    }
    return rc;
}

/* The connection settings from the environment; the command line overrides them. */
static int limits_from_env(struct server_config *c, char *err, size_t errsz)
{
    char var[ENV_NAME_MAX];
    const char *tok = env_get("METRICS_TOKEN", var, sizeof(var));
    if (tok && *tok && set_metrics_token(c, tok, var, err, errsz) < 0)
        return -1;
    if (env_duration("CHALLENGE_TTL", c->challenge_ttl_ms, &c->challenge_ttl_ms, err, errsz) < 0 ||
        env_duration("HEADER_TIMEOUT", c->header_timeout_ms, &c->header_timeout_ms, err, errsz) <
            0 ||
        env_duration("HEADER_DEADLINE", c->header_deadline_ms, &c->header_deadline_ms, err, errsz) <
            0 ||
        env_int("MAX_CONNECTIONS", c->max_connections, CONFIG_MAX_CONNECTIONS_MAX,
                &c->max_connections, err, errsz) < 0 ||
        env_int("MAX_CONNECTIONS_PER_ADDRESS", c->max_connections_per_address,
                CONFIG_MAX_CONNECTIONS_MAX, &c->max_connections_per_address, err, errsz) < 0)
        return -1;
    return 0;
}

/* --max-connections (or its variable, named by what): 1 and up; with
 * per_address, 0 too. 0, or -1 with err. */
static int parse_count(const char *what, const char *arg, int per_address, long long *out,
                       char *err, size_t errsz)
{
    char *end;
    long long n = strtoll(arg, &end, 10);
    if (*arg < '0' || *arg > '9' || *end || n > CONFIG_MAX_CONNECTIONS_MAX ||
        (n == 0 && !per_address)) {
        snprintf(err, errsz, "%s \"%s\": expected a whole number from %d to %d", what, arg,
                 per_address ? 0 : 1, CONFIG_MAX_CONNECTIONS_MAX);
        return -1;
    }
    *out = n;
    return 0;
}

/* Applies option o (getopt_long's value) with its argument arg; name is the
 * option's long name, for messages. 0, or -1 with err. */
static int apply_option(int o, const char *name, const char *arg, struct server_config *c,
                        struct cmdline *cl, char *err, size_t errsz)
{
    int64_t *dur = NULL;
    char *end;
    switch (o) {
    case 'd':
        snprintf(c->data_dir, sizeof(c->data_dir), "%s", arg);
        break;
    case 'l':
        snprintf(c->listen, sizeof(c->listen), "%s", arg);
        break;
    case 'u':
        snprintf(c->public_url, sizeof(c->public_url), "%s", arg);
        break;
    case 'n':
        cl->replica = arg;
        break;
    case 'c':
        cl->cert = arg;
        break;
    case 'k':
        cl->key = arg;
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
    case 'C':
        dur = &c->challenge_ttl_ms;
        break;
    case 'H':
        dur = &c->header_timeout_ms;
        break;
    case 'E':
        dur = &c->header_deadline_ms;
        break;
    case 'w':
        dur = &c->sweep_interval_ms;
        break;
    case 'M':
        return parse_count("--max-connections", arg, 0, &c->max_connections, err, errsz);
    case 'N':
        return parse_count("--max-connections-per-address", arg, 1, &c->max_connections_per_address,
                           err, errsz);
    case 'T': {
        char *tok = NULL;
        if (fsutil_read_text(arg, 4096, &tok, err, errsz) < 0)
            return -1;
        tok[strcspn(tok, "\r\n")] = '\0';
        int rc = set_metrics_token(c, tok, "--metrics-token-file", err, errsz);
        explicit_bzero(tok, strlen(tok));
        free(tok);
        return rc;
    }
    case 'a':
        cl->admin_file = arg;
        break;
    case 'R':
        if (!*arg || strlen(arg) >= sizeof(c->release_key_file)) {
            snprintf(err, errsz, "--release-key-file: expected a path");
            return -1;
        }
        snprintf(c->release_key_file, sizeof(c->release_key_file), "%s", arg);
        break;
    case 'Q':
        cl->database = arg;
        break;
    case 't':
        c->threads = (int)strtol(arg, &end, 10);
        if (*end || c->threads < 1 || c->threads > 64) {
            snprintf(err, errsz, "--threads \"%s\": expected 1 to 64", arg);
            return -1;
        }
        break;
    case 'm':
        c->max_log_bytes = strtoll(arg, &end, 10);
        if (*end || c->max_log_bytes < 1024) {
            snprintf(err, errsz, "--max-log-bytes \"%s\": expected a number >= 1024", arg);
            return -1;
        }
        break;
    case 'A':
        if (duration_parse(arg, &c->retention_max_age_ms) < 0) {
            snprintf(err, errsz,
                     "--retention-max-age \"%s\": not a duration (like 30d, 12h; at most"
                     " 100d; 0 keeps runs forever)",
                     arg);
            return -1;
        }
        break;
    case 'B':
        if (parse_bytes(arg, &c->retention_max_log_bytes) < 0) {
            snprintf(err, errsz,
                     "--retention-max-log-bytes \"%s\": not a size (like 10GiB, 500MB; 0 for"
                     " no cap)",
                     arg);
            return -1;
        }
        break;
    case 'f':
        if (log_format_parse(arg, &cl->fmt) < 0) {
            snprintf(err, errsz, "--log-format \"%s\": expected text or json", arg);
            return -1;
        }
        break;
    case 'D':
        cl->debug = 1;
        break;
    case 'X':
        c->allow_plaintext_secrets = 1;
        break;
    case 'h':
        fputs(usage, stdout);
        exit(0);
    default:
        snprintf(err, errsz, "bad option (see davit server --help)");
        return -1;
    }
    if (dur && (duration_parse(arg, dur) < 0 || *dur <= 0)) {
        snprintf(err, errsz, "--%s \"%s\": not a positive duration", name, arg);
        return -1;
    }
    return 0;
}

static const char replica_chars[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

/* --replica-name, else DAVIT_REPLICA_NAME, else the hostname (its characters outside the
 * allowed ones made '-'): a label value in /metrics, so a given one is checked, never quoted
 * back. 0, or -1 with err. */

static int set_replica_name(struct server_config *c, const char *given, char *err, size_t errsz)
{
    const char *what = "--replica-name";
    if (!given) {
        given = getenv("DAVIT_REPLICA_NAME");
        what = "DAVIT_REPLICA_NAME";
        if (given && !*given)
            given = NULL; /* set empty: as if unset, like the other variables */
    }
    if (given) {
        size_t n = strlen(given);
        if (n == 0 || n > CONFIG_REPLICA_NAME_MAX || strspn(given, replica_chars) != n) {
            snprintf(err, errsz, "%s: expected 1 to %d letters, digits, '.', '_' or '-'", what,
                     CONFIG_REPLICA_NAME_MAX);
            return -1;
        }
        snprintf(c->replica_name, sizeof(c->replica_name), "%s", given);
        return 0;
    }
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
    host[CONFIG_REPLICA_NAME_MAX] = '\0';
    for (char *p = host; *p; p++)
        if (!strchr(replica_chars, *p))
            *p = '-';
    snprintf(c->replica_name, sizeof(c->replica_name), "%s", host);
    return 0;
}

/* Reads --tls-cert and --tls-key and pins the certificate's key. */
static int load_tls(struct server_config *c, const char *cert, const char *key, char *err,
                    size_t errsz)
{
    if (!cert != !key) {
        snprintf(err, errsz, "--tls-cert and --tls-key go together");
        return -1;
    }
    if (!cert)
        return 0;
    if (fsutil_read_text(cert, 1 << 20, &c->tls_cert, err, errsz) < 0 ||
        fsutil_read_text(key, 1 << 20, &c->tls_key, err, errsz) < 0)
        return -1;
    if (crypto_cert_pin(c->tls_cert, c->tls_pin, err, errsz) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errsz, "--tls-cert %s: %s", cert, why);
        return -1;
    }
    return 0;
}

int config_parse(int argc, char **argv, struct server_config *c, char *err, size_t errsz)
{
    struct cmdline cl = {.fmt = LOG_TEXT};
    int o;
    if (retention_from_env(c, err, errsz) < 0 || limits_from_env(c, err, errsz) < 0 ||
        env_bool("ALLOW_PLAINTEXT_SECRETS", c->allow_plaintext_secrets, &c->allow_plaintext_secrets,
                 err, errsz) < 0)
        return -1;
    optind = 1;
    int longindex = 0;
    while ((o = getopt_long(argc, argv, "", opts, &longindex)) != -1)
        if (apply_option(o, opts[longindex].name, optarg, c, &cl, err, errsz) < 0)
            return -1;
    log_setup(cl.fmt, cl.debug, NULL);
    if (optind < argc) {
        snprintf(err, errsz, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    if (!c->data_dir[0]) {
        snprintf(err, errsz, "--data-dir is required");
        return -1;
    }
    if (load_tls(c, cl.cert, cl.key, err, errsz) < 0 ||
        config_database(c, cl.database, err, errsz) < 0)
        return -1;
    /* The option wins over the environment; no SPACELIFT_ alias (Spacelift has no such key). */
    const char *rkey = getenv("DAVIT_RELEASE_KEY_FILE");
    if (!c->release_key_file[0] && rkey && *rkey) {
        if (strlen(rkey) >= sizeof(c->release_key_file)) {
            snprintf(err, errsz, "DAVIT_RELEASE_KEY_FILE: the path is too long");
            return -1;
        }
        snprintf(c->release_key_file, sizeof(c->release_key_file), "%s", rkey);
    }
    /* No SPACELIFT_ alias: Spacelift's server is not configured this way. */
    const char *admin_file = cl.admin_file ? cl.admin_file : getenv("DAVIT_ADMIN_TOKEN_FILE");
    if (admin_file && *admin_file &&
        set_admin_token_file(c, admin_file,
                             cl.admin_file ? "--admin-token-file" : "DAVIT_ADMIN_TOKEN_FILE", err,
                             errsz) < 0)
        return -1;
    if (set_replica_name(c, cl.replica, err, errsz) < 0)
        return -1;
    if (c->max_connections < 1) {
        snprintf(err, errsz, "DAVIT_MAX_CONNECTIONS: expected at least 1");
        return -1;
    }
    if (c->header_timeout_ms < 1000 || c->header_timeout_ms > CONFIG_HEADER_TIMEOUT_MAX_MS) {
        snprintf(err, errsz, "--header-timeout: expected 1s to 1h");
        return -1;
    }
    if (c->header_deadline_ms < 1000 || c->header_deadline_ms > CONFIG_HEADER_TIMEOUT_MAX_MS) {
        snprintf(err, errsz, "--header-deadline: expected 1s to 1h");
        return -1;
    }
    if (c->poll_max_ms > c->lease_ms * 2 / 3)
        c->poll_max_ms = c->lease_ms * 2 / 3;
    return parse_listen(c, err, errsz);
}

void config_database_label(const char *url, char *out, size_t outsz)
{
#ifdef DAVIT_HAVE_POSTGRES
    /* libpq's own parse: a hand-made one disagreed on where the password ends (# ? in it). */
    pgc_label(url, out, outsz);
#else
    (void)url;
    snprintf(out, outsz, "PostgreSQL");
#endif
}

int config_database(struct server_config *c, const char *arg, char *err, size_t errsz)
{
    /* No SPACELIFT_ alias: Spacelift's server is not configured this way. */
    const char *name = arg ? "--database" : "DAVIT_DATABASE_URL";
    const char *url = arg ? arg : getenv("DAVIT_DATABASE_URL");
    if (!url || (!arg && !*url))
        return 0;
    if (strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0) {
        snprintf(err, errsz,
                 "%s: expected a postgres:// or postgresql:// URL (without it, the database is "
                 "SQLite in --data-dir)",
                 name);
        return -1;
    }
    if (strlen(url) >= sizeof(c->database)) {
        snprintf(err, errsz, "%s: longer than %zu bytes", name, sizeof(c->database) - 1);
        return -1;
    }
#ifdef DAVIT_HAVE_POSTGRES
    if (pgc_url_check(url) < 0) {
        snprintf(err, errsz,
                 "%s: not a URL libpq can parse (its reason is not shown: it may quote the "
                 "password)",
                 name);
        return -1;
    }
#endif
    snprintf(c->database, sizeof(c->database), "%s", url);
    return 0;
}
