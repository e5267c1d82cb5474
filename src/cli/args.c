/* The reading of a handler's own arguments, and usage errors (args.h). */
#include "cli/args.h"

#include "common/outcome.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_usage(const struct cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("davit: ", stderr);
    const struct cli_cmd *k = c ? c->cmd : NULL;
    if (k)
        fprintf(stderr, "%s%s%s: ", k->group, k->name ? " " : "", k->name ? k->name : "");
    vfprintf(stderr, fmt, ap);
    if (k)
        fprintf(stderr, " (see davit %s%s%s --help)", k->group, k->name ? " " : "",
                k->name ? k->name : "");
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_getopt(const struct cli *c, int argc, char **argv)
{
    static const struct option none[] = {{0, 0, 0, 0}};
    opterr = 0;
    return getopt_long(argc, argv, "", c->cmd->opts ? c->cmd->opts : none, NULL);
}

void cli_skip_options(const struct cli *c, int argc, char **argv)
{
    optind = 0;
    while (cli_getopt(c, argc, argv) != -1)
        ;
}

int cli_id_path(const struct cli *c, int argc, char **argv, const char *kind, const char *suffix,
                long long *id, char *path, size_t size)
{
    char *end;
    cli_skip_options(c, argc, argv);
    if (optind + 1 != argc)
        return cli_usage(c, "expected one %s id", kind);
    errno = 0;
    *id = strtoll(argv[optind], &end, 10);
    if (*id <= 0 || *end || errno)
        return cli_usage(c, "%s id: expected a positive number", kind);
    snprintf(path, size, "/api/v1/%ss/%lld%s", kind, *id, suffix);
    return 0;
}
