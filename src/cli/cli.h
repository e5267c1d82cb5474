/*
 * cli: the davit command-line client (docs/cli.md).
 *
 * Each cli_* function runs one command group with argv starting at the
 * group's name ("pool", "run"…) and returns the process exit code. The
 * server URL and API token come from the environment (DAVIT_SERVER,
 * DAVIT_API_TOKEN, or their SPACELIFT_ aliases).
 */
#ifndef DAVIT_CLI_CLI_H
#define DAVIT_CLI_CLI_H

#include <jansson.h>

/* Exit codes besides the outcomes and EXIT_USAGE of common/outcome.h. */
#define EXIT_API         6 /* the server answered with an error (4xx, 5xx) */
#define EXIT_UNREACHABLE 7 /* the server could not be reached */

struct cli {
    const char *server; /* base URL, no trailing slash needed */
    const char *token;
    const char *ca_file; /* DAVIT_CA_FILE: extra CA bundle for a private certificate */
    int json;            /* --json: print the server's JSON */
};

int cli_pool(struct cli *c, int argc, char **argv);
int cli_run(struct cli *c, int argc, char **argv);
int cli_worker(struct cli *c, int argc, char **argv);
int cli_release(struct cli *c, int argc, char **argv);

/* Prints "davit: <msg>" on stderr and returns EXIT_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints obj as indented JSON on stdout. */
void cli_print_json(const json_t *obj);

/* The string value of key in obj, "-" when absent or null; integers are
 * formatted into buf (64 bytes), so the result may point into buf: give
 * each field used in one call its own buf. Never fails. */
const char *cli_field(const json_t *obj, const char *key, char *buf);

#endif
