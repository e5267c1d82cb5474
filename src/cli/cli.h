/*
 * cli: the davit command-line client (docs/cli.md).
 *
 * Every command is one row of cli_commands (commands.c): its name, its usage
 * text, its options and its handler. cli_main reads the command line against
 * that table, answers --help and -h from it with no configuration, and
 * refuses unknown options. The server URL and API token are read from the
 * environment (DAVIT_SERVER, DAVIT_API_TOKEN, or their SPACELIFT_ aliases) by
 * the first call to the server (client.c), after the arguments are checked.
 *
 * A handler gets argv starting at its subcommand's name ("create", "list"…),
 * with --json removed, and returns the process exit code. Its options were
 * checked already, so its getopt_long loop over c->cmd->opts meets only
 * options of the table.
 */
#ifndef DAVIT_CLI_CLI_H
#define DAVIT_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

/* Exit codes besides the outcomes and EXIT_USAGE of common/outcome.h. */
#define EXIT_API         6 /* the server answered with an error (4xx, 5xx) */
#define EXIT_UNREACHABLE 7 /* the server could not be reached */
#define EXIT_PIN         9 /* the server's pool key or id is not the pinned one (known_pools.h) */

/* Most options a command may have, besides --help. */
#define CLI_MAX_OPTS 24

struct cli;

/* What a command is and how it is used. */
enum {
    CMD_JSON = 1,     /* --json prints the API's answer, unchanged */
    CMD_OWN_ARGS = 2, /* parses its own argv, --help included (davit server) */
};

struct cli_cmd {
    const char *group;         /* "pool", or the command itself when name is NULL */
    const char *name;          /* "create"; NULL for a command of one word */
    const char *args;          /* its arguments, as in the usage line */
    const char *summary;       /* one line: what it does */
    const char *help;          /* its options and details, one per line; may be NULL */
    const struct option *opts; /* NULL-terminated; NULL when none */
    int flags;                 /* CMD_* */
    int (*run)(struct cli *c, int argc, char **argv);
};

/* The table, ended by a row with a NULL group. */
extern const struct cli_cmd cli_commands[];

struct cli {
    const char *server; /* base URL, no trailing slash needed */
    const char *token;
    const char *ca_file;       /* DAVIT_CA_FILE: extra CA bundle for a private certificate */
    int json;                  /* --json: print the server's JSON */
    const struct cli_cmd *cmd; /* the command being run */
};

/* The davit program (main.c calls only this). Returns the exit code. */
int cli_main(int argc, char **argv);

/* The row for "group name" (name NULL for a one-word command), or NULL. */
const struct cli_cmd *cli_find(const char *group, const char *name);

/*
 * Reads argv (argv[0] is the subcommand's name) against cmd's options once:
 * --help or -h anywhere prints the usage on stdout and returns 0; an unknown
 * option or a missing argument prints one line on stderr and returns
 * EXIT_USAGE; otherwise returns -1 (go on). Leaves argv permuted as
 * getopt_long does.
 */
int cli_check_options(const struct cli_cmd *cmd, int argc, char **argv);

/* Prints cmd's usage, summary and help. Never fails. */
void cli_print_usage(const struct cli_cmd *cmd, FILE *out);

/* The handlers of the table (cmd_pool.c, cmd_run.c, cmd_misc.c, cmd_token.c, cmd_autoscale.c). */
int cli_pool_create(struct cli *c, int argc, char **argv);
int cli_pool_list(struct cli *c, int argc, char **argv);
int cli_pool_show(struct cli *c, int argc, char **argv);
int cli_pool_reset(struct cli *c, int argc, char **argv);
int cli_pool_cycle(struct cli *c, int argc, char **argv);
int cli_pool_delete(struct cli *c, int argc, char **argv);
int cli_run_submit(struct cli *c, int argc, char **argv);
int cli_run_list(struct cli *c, int argc, char **argv);
int cli_run_show(struct cli *c, int argc, char **argv);
int cli_run_logs(struct cli *c, int argc, char **argv);
int cli_run_cancel(struct cli *c, int argc, char **argv);
int cli_run_delete(struct cli *c, int argc, char **argv);
int cli_worker_list(struct cli *c, int argc, char **argv);
int cli_worker_drain(struct cli *c, int argc, char **argv);
int cli_worker_undrain(struct cli *c, int argc, char **argv);
int cli_release_publish(struct cli *c, int argc, char **argv);
int cli_release_list(struct cli *c, int argc, char **argv);
/* cmd_token.c */
int cli_token_create(struct cli *c, int argc, char **argv);
int cli_token_list(struct cli *c, int argc, char **argv);
int cli_token_revoke(struct cli *c, int argc, char **argv);
int cli_server(struct cli *c, int argc, char **argv);
/* davit autoscale (cmd_autoscale.c). */
int cli_autoscale(struct cli *c, int argc, char **argv);

#endif
