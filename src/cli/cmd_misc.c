/* davit worker … and davit release …. */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"

#include "common/dbuf.h"
#include "common/outcome.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int worker_list(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"pool", required_argument, 0, 'p'}, {0, 0, 0, 0}};
    const char *pool = NULL;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 'p')
            return cli_usage("worker list: unknown option");
        pool = optarg;
    }
    if (optind != argc)
        return cli_usage("worker list: unexpected argument");
    char path[512];
    char *ep = pool ? client_escape(pool) : NULL;
    snprintf(path, sizeof(path), "/api/v1/workers%s%s", ep ? "?pool=" : "", ep ? ep : "");
    free(ep);
    json_t *resp;
    int rc = client_call(c, "GET", path, NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    json_t *workers = json_object_get(resp, "workers");
    if (c->json) {
        cli_print_json(workers);
    } else {
        struct table t;
        table_init(&t, 9, "ID", "POOL", "STATE", "HOST", "VERSION", "ARCH", "RUNS", "LAST SEEN",
                   "METADATA");
        size_t i;
        json_t *w;
        json_array_foreach(workers, i, w)
        {
            char f[7][64]; /* one buffer a column: cli_field may write into it */
            char *runs = json_dumps(json_object_get(w, "runs"), JSON_COMPACT);
            char *md = json_dumps(json_object_get(w, "metadata"), JSON_COMPACT | JSON_SORT_KEYS);
            table_row(&t, cli_field(w, "id", f[0]), cli_field(w, "pool", f[1]),
                      cli_field(w, "state", f[2]), cli_field(w, "hostname", f[3]),
                      cli_field(w, "version", f[4]), cli_field(w, "arch", f[5]), runs,
                      cli_field(w, "last_seen_at", f[6]), md);
            free(runs);
            free(md);
        }
        table_print(&t, stdout);
        table_free(&t);
    }
    json_decref(resp);
    return 0;
}

static int worker_drain(struct cli *c, int argc, char **argv, int on)
{
    char *end;
    long long id;
    if (argc != 2 || (id = strtoll(argv[1], &end, 10)) <= 0 || *end)
        return cli_usage("worker %s: expected one worker id", argv[0]);
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/workers/%lld/%s", id, on ? "drain" : "undrain");
    json_t *body = json_object(), *r = NULL;
    int rc = client_call_json(c, "POST", path, body, &r);
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

int cli_worker(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("worker: expected list, drain or undrain");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0)
        return worker_list(c, argc - 1, argv + 1);
    if (strcmp(sub, "drain") == 0)
        return worker_drain(c, argc - 1, argv + 1, 1);
    if (strcmp(sub, "undrain") == 0)
        return worker_drain(c, argc - 1, argv + 1, 0);
    return cli_usage("worker: unknown subcommand \"%s\"", sub);
}

static int release_publish(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"arch", required_argument, 0, 'a'},
                                         {"version", required_argument, 0, 'v'},
                                         {"kind", required_argument, 0, 'k'},
                                         {0, 0, 0, 0}};
    const char *arch = NULL, *version = NULL, *kind = "worker";
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'a')
            arch = optarg;
        else if (o == 'v')
            version = optarg;
        else if (o == 'k')
            kind = optarg;
        else
            return cli_usage("release publish: unknown option");
    }
    if (optind + 1 != argc || !arch || !version)
        return cli_usage("release publish: expected FILE --arch amd64|arm64 --version V");
    struct dbuf b = DBUF_INIT(64 * 1024 * 1024);
    if (dbuf_read_file(&b, argv[optind]) < 0) {
        int e = errno;
        dbuf_free(&b);
        return cli_usage("%s: %s", argv[optind], strerror(e));
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
    char f[5][64];
    if (c->json)
        cli_print_json(r);
    else
        printf("release %s: %s %s %s sha256 %s\n", cli_field(r, "id", f[0]),
               cli_field(r, "kind", f[1]), cli_field(r, "arch", f[2]),
               cli_field(r, "version", f[3]), cli_field(r, "sha256", f[4]));
    json_decref(r);
    return 0;
}

static int release_list(struct cli *c, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage("release list takes no arguments");
    json_t *resp;
    int rc = client_call(c, "GET", "/api/v1/releases", NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    json_t *rels = json_object_get(resp, "releases");
    if (c->json) {
        cli_print_json(rels);
    } else {
        struct table t;
        table_init(&t, 8, "ID", "KIND", "ARCH", "VERSION", "LATEST", "SIZE", "SHA256", "PUBLISHED");
        size_t i;
        json_t *r;
        json_array_foreach(rels, i, r)
        {
            char f[8][64]; /* one buffer a column: cli_field may write into it */
            table_row(&t, cli_field(r, "id", f[0]), cli_field(r, "kind", f[1]),
                      cli_field(r, "arch", f[2]), cli_field(r, "version", f[3]),
                      cli_field(r, "latest", f[4]), cli_field(r, "size", f[5]),
                      cli_field(r, "sha256", f[6]), cli_field(r, "created_at", f[7]));
        }
        table_print(&t, stdout);
        table_free(&t);
    }
    json_decref(resp);
    return 0;
}

int cli_release(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("release: expected publish or list");
    if (strcmp(argv[1], "publish") == 0)
        return release_publish(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return release_list(c, argc - 1, argv + 1);
    return cli_usage("release: unknown subcommand \"%s\"", argv[1]);
}
