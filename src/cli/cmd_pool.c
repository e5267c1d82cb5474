/* davit pool …: create from a CSR, list, show, reset, cycle, delete. */
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/output.h"
#include "cli/client.h"
#include "cli/escape.h"
#include "cli/known_pools.h"

#include "common/dbuf.h"
#include "common/outcome.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_csr(const struct cli *c, const char *path, char **out)
{
    struct dbuf b = DBUF_INIT(64 * 1024);
    if (dbuf_read_file(&b, path) < 0) {
        int e = errno;
        dbuf_free(&b);
        return cli_usage(c, "--csr %s: %s", path, strerror(e));
    }
    *out = dbuf_take(&b);
    return *out ? 0 : EXIT_INTERNAL;
}

/* Parses "NAME [--csr F] [--deadline D]" (the options of c->cmd). */
static int pool_args(const struct cli *c, int argc, char **argv, const char **name,
                     const char **csr, const char **deadline)
{
    int o;
    optind = 0;
    while ((o = cli_getopt(c, argc, argv)) != -1) {
        if (o == 'c' && csr)
            *csr = optarg;
        else if (o == 'd' && deadline)
            *deadline = optarg;
    }
    if (optind + 1 != argc)
        return cli_usage(c, "expected one pool name");
    *name = argv[optind];
    if (csr && !*csr)
        return cli_usage(c, "--csr FILE is required");
    return 0;
}

static char *pool_path(const char *name, const char *suffix)
{
    char *e = client_escape(name), *p = NULL;
    if (e && asprintf(&p, "/api/v1/pools/%s%s", e, suffix) < 0)
        p = NULL;
    free(e);
    return p;
}

static int print_pool(struct cli *c, json_t *p)
{
    if (c->json) {
        cli_print_json(p);
        return 0;
    }
    static const char *const keys[] = {"name",   "id",      "keytype",   "pending",
                                       "active", "workers", "created_at"};
    cli_print_fields(p, keys, sizeof(keys) / sizeof(keys[0]), 11);
    return 0;
}

/*
 * Pins the pool's key (the CSR's, computed here) and id in the known-pools file, so that
 * davit run submit on this machine seals only to that key (docs/secrets.md). A reset keeps the
 * pinned id (a reset does not change it). A pin that cannot be written is said, not fatal: the
 * pool exists and its token is printed.
 */
static void pin_pool(struct cli *c, const char *name, const char *csrfile, const char *pool_id)
{
    char file[4096], err[4400];
    struct known_pool pin = {.pool_id = "-"};
    if (known_pools_path(file, sizeof(file), err, sizeof(err)) < 0 ||
        known_pools_key_id_file(csrfile, pin.key_id, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit: pool %s: its key is not pinned: %s\n", name, err);
        return;
    }
    struct known_pool old;
    if (pool_id)
        snprintf(pin.pool_id, sizeof(pin.pool_id), "%s", pool_id);
    else if (known_pools_get(file, c->server, name, &old, err, sizeof(err)) == 1)
        memcpy(pin.pool_id, old.pool_id, sizeof(pin.pool_id));
    if (known_pools_put(file, c->server, name, &pin, err, sizeof(err)) < 0)
        fprintf(stderr, "davit: pool %s: its key is not pinned: %s\n", name, err);
}

/* create and reset: send the CSR, print only the token (the one time it exists). */
static int pool_token(struct cli *c, int argc, char **argv, int reset)
{
    const char *name = NULL, *csrfile = NULL;
    char *csr = NULL, *path = NULL;
    json_t *resp = NULL, *body = NULL;
    int rc = pool_args(c, argc, argv, &name, &csrfile, NULL);
    if (rc || (rc = read_csr(c, csrfile, &csr)))
        goto out;
    body =
        reset ? json_pack("{s:s}", "csr", csr) : json_pack("{s:s, s:s}", "name", name, "csr", csr);
    path = reset ? pool_path(name, "/reset") : strdup("/api/v1/pools");
    if (!body || !path) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    if ((rc = client_call_json(c, "POST", path, body, &resp)))
        goto out;
    pin_pool(c, name, csrfile,
             reset ? NULL
                   : json_string_value(json_object_get(json_object_get(resp, "pool"), "id")));
    rc = cli_print_secret(c->json, resp, "token");
out:
    free(csr);
    free(path);
    json_decref(body);
    json_decref(resp);
    return rc;
}

int cli_pool_list(struct cli *c, int argc, char **argv)
{
    json_t *resp = NULL;
    cli_skip_options(c, argc, argv);
    if (optind != argc)
        return cli_usage(c, "takes no arguments");
    int rc = client_call(c, "GET", "/api/v1/pools", NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    static const struct cli_column cols[] = {{"NAME", "name"},         {"ID", "id"},
                                             {"KEY", "keytype"},       {"PENDING", "pending"},
                                             {"ACTIVE", "active"},     {"WORKERS", "workers"},
                                             {"CREATED", "created_at"}};
    cli_print_list(c->json, resp, "pools", cols, sizeof(cols) / sizeof(cols[0]));
    json_decref(resp);
    return 0;
}

static int pool_simple(struct cli *c, int argc, char **argv, const char *method, const char *suffix)
{
    const char *name = NULL, *deadline = NULL;
    json_t *resp = NULL, *body = NULL;
    int rc =
        pool_args(c, argc, argv, &name, NULL, strcmp(suffix, "/cycle") == 0 ? &deadline : NULL);
    if (rc)
        return rc;
    char *path = pool_path(name, suffix);
    if (!path)
        return EXIT_INTERNAL;
    if (strcmp(method, "POST") == 0) {
        body = deadline ? json_pack("{s:s}", "deadline", deadline) : json_object();
        rc = client_call_json(c, method, path, body, &resp);
    } else {
        rc = client_call(c, method, path, NULL, NULL, 0, &resp, NULL);
    }
    free(path);
    json_decref(body);
    if (rc)
        return rc;
    char buf[64];
    if (c->json)
        cli_print_json(resp);
    else if (strcmp(argv[0], "show") == 0)
        print_pool(c, resp);
    else if (strcmp(argv[0], "delete") == 0)
        printf("pool %s deleted\n", name);
    else {
        printf("pool %s: ", name);
        escape_puts(stdout, cli_field(resp, "workers", buf));
        puts(" worker(s) told to cycle");
    }
    json_decref(resp);
    return 0;
}

int cli_pool_create(struct cli *c, int argc, char **argv)
{
    return pool_token(c, argc, argv, 0);
}

int cli_pool_reset(struct cli *c, int argc, char **argv)
{
    return pool_token(c, argc, argv, 1);
}

int cli_pool_show(struct cli *c, int argc, char **argv)
{
    return pool_simple(c, argc, argv, "GET", "");
}

int cli_pool_delete(struct cli *c, int argc, char **argv)
{
    return pool_simple(c, argc, argv, "DELETE", "");
}

int cli_pool_cycle(struct cli *c, int argc, char **argv)
{
    return pool_simple(c, argc, argv, "POST", "/cycle");
}
