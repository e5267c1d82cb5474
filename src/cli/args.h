/*
 * args: what a command's handler uses to read its own arguments, and the one
 * way to refuse them (a one-line usage error on stderr, EXIT_USAGE). The
 * options were checked against the command table (cli.h) before the handler
 * runs, so these meet only options of its row. No state of its own beyond
 * getopt's globals.
 */
#ifndef DAVIT_CLI_ARGS_H
#define DAVIT_CLI_ARGS_H

#include "cli/cli.h"

#include <stddef.h>

/*
 * Prints "davit: [GROUP NAME: ]<msg>[ (see davit GROUP NAME --help)]" on
 * stderr, naming c->cmd when c and c->cmd are set, and returns EXIT_USAGE.
 */
int cli_usage(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * getopt_long over c->cmd's options, silent; set optind to 0 before the
 * first call. Returns as getopt_long does.
 */
int cli_getopt(const struct cli *c, int argc, char **argv);

/* Reads every option from the start, for a command whose options are all
 * checked by cli_check_options; leaves optind at the first positional. */
void cli_skip_options(const struct cli *c, int argc, char **argv);

/*
 * For "KIND ID": reads every option (as cli_skip_options), then the one
 * positional argument left as a positive id, and writes
 * "/api/v1/KINDs/ID" + suffix into path. 0, or EXIT_USAGE after printing
 * "expected one KIND id" or why the id is not one.
 */
int cli_id_path(const struct cli *c, int argc, char **argv, const char *kind, const char *suffix,
                long long *id, char *path, size_t size);

#endif
