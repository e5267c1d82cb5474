/* davit token …: named API tokens with a role (create, list, revoke; docs/security.md). */
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/output.h"
#include "cli/client.h"
#include "cli/escape.h"

#include "common/outcome.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_token_create(struct cli *c, int argc, char **argv)
{
    const char *role = NULL;
    json_t *resp = NULL, *body = NULL;
    int o, rc;
    optind = 0;
    while ((o = cli_getopt(c, argc, argv)) != -1)
        if (o == 'r')
            role = optarg;
    if (optind + 1 != argc)
        return cli_usage(c, "expected one token name");
    if (!role)
        return cli_usage(c, "--role viewer|operator|admin is required");
    if (strcmp(role, "viewer") != 0 && strcmp(role, "operator") != 0 && strcmp(role, "admin") != 0)
        return cli_usage(c, "--role: one of viewer, operator, admin");
    body = json_pack("{s:s, s:s}", "name", argv[optind], "role", role);
    if (!body)
        return EXIT_INTERNAL;
    rc = client_call_json(c, "POST", "/api/v1/tokens", body, &resp);
    json_decref(body);
    if (rc)
        return rc;
    /* Only the token, the one time it exists in clear: davit token create … > file. */
    rc = cli_print_secret(c->json, resp, "token");
    json_decref(resp);
    return rc;
}

int cli_token_list(struct cli *c, int argc, char **argv)
{
    json_t *resp = NULL;
    cli_skip_options(c, argc, argv);
    if (optind != argc)
        return cli_usage(c, "takes no arguments");
    int rc = client_call(c, "GET", "/api/v1/tokens", NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    static const struct cli_column cols[] = {{"NAME", "name"},
                                             {"ROLE", "role"},
                                             {"CREATED", "created_at"},
                                             {"LAST USED", "last_used_at"}};
    cli_print_list(c->json, resp, "tokens", cols, sizeof(cols) / sizeof(cols[0]));
    json_decref(resp);
    return 0;
}

int cli_token_revoke(struct cli *c, int argc, char **argv)
{
    json_t *resp = NULL;
    cli_skip_options(c, argc, argv);
    if (optind + 1 != argc)
        return cli_usage(c, "expected one token name");
    char *e = client_escape(argv[optind]), *path = NULL;
    if (!e || asprintf(&path, "/api/v1/tokens/%s", e) < 0)
        path = NULL;
    free(e);
    if (!path)
        return EXIT_INTERNAL;
    int rc = client_call(c, "DELETE", path, NULL, NULL, 0, &resp, NULL);
    free(path);
    if (rc)
        return rc;
    if (c->json)
        cli_print_json(resp);
    else {
        fputs("token ", stdout);
        escape_puts(stdout, argv[optind]);
        puts(" revoked; its browser sessions have ended");
    }
    json_decref(resp);
    return 0;
}
