/*
 * config: the server's settings, from the environment (DAVIT_X, else
 * SPACELIFT_X) and the command line of `davit server` (docs/server.md).
 * Owns the PEM texts it reads (tls_cert, tls_key): the caller frees them.
 */
#ifndef DAVIT_SERVER_CONFIG_H
#define DAVIT_SERVER_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* The longest --database URL (a libpq URL with host, options and a password fits well). */
#define CONFIG_DATABASE_MAX 1024

struct server_config {
    char data_dir[PATH_MAX];
    /* --database or DAVIT_DATABASE_URL: a postgres:// or postgresql:// URL; "" for the SQLite
     * file in data_dir. May hold a password: never logged (config_database_label). */
    char database[CONFIG_DATABASE_MAX];
    char listen[300];
    char host[256];
    int port;
    char public_url[512];
    /* --replica-name: this server among those sharing a database (/metrics, logs); default
     * the hostname. Letters, digits and ._- only. */
    char replica_name[64];    /* CONFIG_REPLICA_NAME_MAX + 1 */
    char tls_pin[64];         /* pin of --tls-cert's key, put in pool tokens; "" without TLS */
    char *tls_cert, *tls_key; /* PEM contents, or NULL for plain HTTP */
    int insecure_http;
    int threads;
    int64_t lease_ms;           /* a launcher is gone after this long without a request */
    int64_t grace_ms;           /* then its started runs are lost after this much more */
    int64_t session_ttl_ms;     /* a launcher session lives this long */
    int64_t challenge_ttl_ms;   /* a registration challenge is good this long */
    int64_t header_timeout_ms;  /* a connection with nothing moving is closed after this */
    int64_t header_deadline_ms; /* a request header not complete after this: closed */
    long long max_connections;  /* all connections at once, long-polls included */
    long long max_connections_per_address; /* from one client address; 0: no limit */
    int64_t poll_max_ms;                   /* the longest a poll waits */
    int64_t max_log_bytes;
    int64_t retention_max_age_ms;    /* ended runs older than this are deleted; 0: never */
    int64_t retention_max_log_bytes; /* logs of all runs above this: oldest go; 0: no cap */
    int64_t sweep_interval_ms;       /* the retention sweep runs this often, and when kicked */
    char metrics_hash[65];           /* sha256 hex of the metrics token; "": /metrics is open */
    int allow_plaintext_secrets;     /* plaintext secrets accepted, sealed at once (secrets.md) */
    /* --admin-token-file: its path and the sha256 hex of the token in it,
     * read and checked by config_parse (the token itself is wiped at once);
     * "" without the option: the first start makes a token and prints it. */
    char admin_token_file[PATH_MAX];
    char admin_file_hash[65];
    /* --release-key-file: the release-signing key's PEM file (replicas share one key); "": the
     * data directory's release-key.pem, made on first start. */
    char release_key_file[PATH_MAX];
};

/* The longest --replica-name. */
#define CONFIG_REPLICA_NAME_MAX 63

/* The longest --header-timeout: libmicrohttpd counts it in whole seconds. */
#define CONFIG_HEADER_TIMEOUT_MAX_MS (3600 * 1000)
/* The most connections --max-connections allows: the kernel's default
 * ceiling of file descriptors a process may have (fs.nr_open). */
#define CONFIG_MAX_CONNECTIONS_MAX 1048576

/* Fills c with the defaults (docs/server.md). Never fails. */
void config_defaults(struct server_config *c);

/*
 * Applies the environment, then the options in argv, over c; reads the TLS
 * files; sets up logging (--log-format, --debug); splits --listen into host
 * and port; caps the poll at 2/3 of the lease. --help prints the usage and
 * exits 0. -1 with err naming the option and the reason (the caller exits 2).
 */
int config_parse(int argc, char **argv, struct server_config *c, char *err, size_t errsz);

/*
 * url (a --database value) as it may be logged: the scheme, the user, the host and port and the
 * database, without the password or the options after "?" (which may hold one). Fits into out.
 */
void config_database_label(const char *url, char *out, size_t outsz);

/*
 * Applies the --database option (arg, or NULL: from DAVIT_DATABASE_URL, else nothing) over c.
 * -1 with err naming the option or variable (never its value) when it is not a postgres:// or
 * postgresql:// URL, or too long. For `davit server` and `davit server migrate`.
 */
int config_database(struct server_config *c, const char *arg, char *err, size_t errsz);

#endif
