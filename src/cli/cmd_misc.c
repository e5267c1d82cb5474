/* davit worker … and davit release …. */
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/output.h"
#include "cli/client.h"
#include "cli/escape.h"

#include "common/dbuf.h"
#include "common/outcome.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_worker_list(struct cli *c, int argc, char **argv)
{
    const char *pool = NULL;
    optind = 0;
    while (cli_getopt(c, argc, argv) == 'p')
        pool = optarg;
    if (optind != argc)
        return cli_usage(c, "unexpected argument");
    char path[512];
    char *ep = pool ? client_escape(pool) : NULL;
    snprintf(path, sizeof(path), "/api/v1/workers%s%s", ep ? "?pool=" : "", ep ? ep : "");
    free(ep);
    json_t *resp;
    int rc = client_call(c, "GET", path, NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    static const struct cli_column cols[] = {{"ID", "id"},
                                             {"POOL", "pool"},
                                             {"STATE", "state"},
                                             {"HOST", "hostname"},
                                             {"VERSION", "version"},
                                             {"ARCH", "arch"},
                                             {"RUNS", "runs"},
                                             {"LAST SEEN", "last_seen_at"},
                                             {"METADATA", "metadata"}};
    if (c->json)
        cli_print_json(resp);
    else
        cli_print_table(json_object_get(resp, "workers"), cols, sizeof(cols) / sizeof(cols[0]));
    json_decref(resp);
    return 0;
}

static int worker_drain(struct cli *c, int argc, char **argv, int on)
{
    long long id;
    char path[96];
    int rc =
        cli_id_path(c, argc, argv, "worker", on ? "/drain" : "/undrain", &id, path, sizeof(path));
    if (rc)
        return rc;
    json_t *body = json_object(), *r = NULL;
    rc = client_call_json(c, "POST", path, body, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (c->json)
        cli_print_json(r);
    else
        printf("worker %lld %s\n", id, on ? "draining" : "undrained");
    json_decref(r);
    return 0;
}

int cli_worker_drain(struct cli *c, int argc, char **argv)
{
    return worker_drain(c, argc, argv, 1);
}

int cli_worker_undrain(struct cli *c, int argc, char **argv)
{
    return worker_drain(c, argc, argv, 0);
}

int cli_release_publish(struct cli *c, int argc, char **argv)
{
    const char *arch = NULL, *version = NULL, *kind = "worker";
    int o;
    optind = 0;
    while ((o = cli_getopt(c, argc, argv)) != -1) {
        if (o == 'a')
            arch = optarg;
        else if (o == 'v')
            version = optarg;
        else if (o == 'k')
            kind = optarg;
    }
    if (optind + 1 != argc || !arch || !version)
        return cli_usage(c, "expected FILE --arch amd64|arm64 --version V");
    struct dbuf b = DBUF_INIT(64 * 1024 * 1024);
    if (dbuf_read_file(&b, argv[optind]) < 0) {
        int e = errno;
        dbuf_free(&b);
        return cli_usage(c, "%s: %s", argv[optind], strerror(e));
    }
    char path[512];
    char *ea = client_escape(arch), *ev = client_escape(version), *ek = client_escape(kind);
    snprintf(path, sizeof(path), "/api/v1/releases?kind=%s&arch=%s&version=%s", ek ? ek : "",
             ea ? ea : "", ev ? ev : "");
    free(ea);
    free(ev);
    free(ek);
    json_t *r = NULL;
    int rc = client_call(c, "POST", path, "application/octet-stream", b.data ? b.data : "", b.len,
                         &r, NULL);
    dbuf_free(&b);
    if (rc)
        return rc;
    static const char *const shown[] = {"id", "kind", "arch", "version", "sha256"};
    static const char *const before[] = {"release ", ": ", " ", " ", " sha256 "};
    char f[64];
    if (c->json) {
        cli_print_json(r);
    } else {
        for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
            fputs(before[i], stdout);
            escape_puts(stdout, cli_field(r, shown[i], f));
        }
        putchar('\n');
    }
    json_decref(r);
    return 0;
}

int cli_release_list(struct cli *c, int argc, char **argv)
{
    cli_skip_options(c, argc, argv);
    if (optind != argc)
        return cli_usage(c, "takes no arguments");
    json_t *resp;
    int rc = client_call(c, "GET", "/api/v1/releases", NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    static const struct cli_column cols[] = {
        {"ID", "id"},         {"KIND", "kind"}, {"ARCH", "arch"},     {"VERSION", "version"},
        {"LATEST", "latest"}, {"SIZE", "size"}, {"SHA256", "sha256"}, {"PUBLISHED", "created_at"}};
    if (c->json)
        cli_print_json(resp);
    else
        cli_print_table(json_object_get(resp, "releases"), cols, sizeof(cols) / sizeof(cols[0]));
    json_decref(resp);
    return 0;
}
