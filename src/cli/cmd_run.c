/* davit run …: submit (optionally following), list, show, logs, cancel. */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"

#include "common/outcome.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Splits "KEY=VALUE" at the first '='; *val is NULL when there is none. */
static int split_kv(char *arg, char **key, char **val)
{
    char *eq = strchr(arg, '=');
    *key = arg;
    *val = NULL;
    if (eq) {
        *eq = '\0';
        *val = eq + 1;
    }
    return **key ? 0 : -1;
}

/* The phase object named name in phases, created at the end if create. */
static json_t *phase_get(json_t *phases, const char *name, int create)
{
    size_t i;
    json_t *p;
    json_array_foreach(phases, i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    }
    if (!create)
        return NULL;
    p = json_pack("{s:s, s:[]}", "name", name, "commands");
    json_array_append_new(phases, p);
    return p;
}

static int add_hook(json_t *phases, char *arg, const char *which)
{
    char *name, *cmd;
    if (split_kv(arg, &name, &cmd) < 0 || !cmd)
        return cli_usage("--%s: expected PHASE=COMMAND", which);
    json_t *p = phase_get(phases, name, 0);
    if (!p)
        return cli_usage("--%s %s: no --phase %s given", which, name, name);
    json_t *list = json_object_get(p, which);
    if (!list) {
        list = json_array();
        json_object_set_new(p, which, list);
    }
    json_array_append_new(list, json_string(cmd));
    return 0;
}

/* Maps the state of an ended run to the exit code of common/outcome.h. */
static int state_exit(const char *state)
{
    enum outcome o;
    if (!state || outcome_parse(state, &o) < 0)
        return -1;
    return outcome_exit_code(o);
}

/* Streams the run's log, then waits for its end; returns the outcome's exit code. */
static int follow(struct cli *c, long long id)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/runs/%lld/logs?follow=1", id);
    int rc = client_stream(c, path, stdout);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/api/v1/runs/%lld", id);
    for (;;) {
        json_t *run = NULL;
        if ((rc = client_call(c, "GET", path, NULL, NULL, 0, &run, NULL)))
            return rc;
        const char *state = json_string_value(json_object_get(run, "state"));
        int code = state_exit(state);
        if (code >= 0) {
            fprintf(stderr, "davit: run %lld %s\n", id, state);
            json_decref(run);
            return code;
        }
        json_decref(run);
        sleep(1); /* the stream ended early (server restart): wait for the end */
    }
}

static int run_submit(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"pool", required_argument, 0, 'p'},
                                         {"image", required_argument, 0, 'i'},
                                         {"phase", required_argument, 0, 'P'},
                                         {"before", required_argument, 0, 'b'},
                                         {"after", required_argument, 0, 'a'},
                                         {"env", required_argument, 0, 'e'},
                                         {"secret", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"user", required_argument, 0, 'u'},
                                         {"follow", no_argument, 0, 'f'},
                                         {0, 0, 0, 0}};
    json_t *spec = json_pack("{s:[], s:{}, s:{}}", "phases", "env", "secrets");
    json_t *phases = json_object_get(spec, "phases"), *resp = NULL;
    char **hooks = calloc((size_t)argc, sizeof(char *));
    int *hook_after = calloc((size_t)argc, sizeof(int));
    int nhooks = 0, do_follow = 0, o, rc = 0;
    const char *pool = NULL, *image = NULL;
    char *k, *v;
    if (!spec || !hooks || !hook_after) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            pool = optarg;
            break;
        case 'i':
            image = optarg;
            break;
        case 'P':
            if (split_kv(optarg, &k, &v) < 0 || !v) {
                rc = cli_usage("--phase: expected NAME=COMMAND");
                goto out;
            }
            json_array_append_new(json_object_get(phase_get(phases, k, 1), "commands"),
                                  json_string(v));
            break;
        case 'b':
        case 'a':
            /* attached after all --phase options are known */
            hook_after[nhooks] = o == 'a';
            hooks[nhooks++] = optarg;
            break;
        case 'e':
        case 's':
            if (split_kv(optarg, &k, &v) < 0) {
                rc = cli_usage("--%s: expected NAME=VALUE", o == 'e' ? "env" : "secret");
                goto out;
            }
            if (!v && o == 's')
                v = getenv(k); /* --secret NAME takes the value from the environment */
            if (!v) {
                rc = cli_usage("--%s %s: no value", o == 'e' ? "env" : "secret", k);
                goto out;
            }
            json_object_set_new(json_object_get(spec, o == 'e' ? "env" : "secrets"), k,
                                json_string(v));
            break;
        case 't':
            json_object_set_new(spec, "timeouts", json_pack("{s:s}", "run", optarg));
            break;
        case 'u':
            json_object_set_new(spec, "user", json_string(optarg));
            break;
        case 'f':
            do_follow = 1;
            break;
        default:
            rc = cli_usage("run submit: unknown option (see davit --help)");
            goto out;
        }
    }
    if (optind != argc || !pool || !image || json_array_size(phases) == 0) {
        rc = cli_usage("run submit: --pool, --image and at least one --phase are required");
        goto out;
    }
    for (int i = 0; i < nhooks; i++)
        if ((rc = add_hook(phases, hooks[i], hook_after[i] ? "after" : "before")))
            goto out;
    json_object_set_new(spec, "pool", json_string(pool));
    json_object_set_new(spec, "image", json_string(image));
    if (json_object_size(json_object_get(spec, "env")) == 0)
        json_object_del(spec, "env");
    if (json_object_size(json_object_get(spec, "secrets")) == 0)
        json_object_del(spec, "secrets");
    if ((rc = client_call_json(c, "POST", "/api/v1/runs", spec, &resp)))
        goto out;
    long long id = json_integer_value(json_object_get(resp, "id"));
    if (c->json && !do_follow)
        cli_print_json(resp);
    else if (do_follow)
        fprintf(stderr, "davit: run %lld queued\n", id);
    else
        printf("%lld\n", id);
    if (do_follow)
        rc = follow(c, id);
out:
    free(hooks);
    free(hook_after);
    json_decref(spec);
    json_decref(resp);
    return rc;
}

static int run_list(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pool", required_argument, 0, 'p'}, {"state", required_argument, 0, 's'}, {0, 0, 0, 0}};
    const char *pool = NULL, *state = NULL;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'p')
            pool = optarg;
        else if (o == 's')
            state = optarg;
        else
            return cli_usage("run list: unknown option");
    }
    if (optind != argc)
        return cli_usage("run list: unexpected argument");
    char path[1024];
    char *ep = pool ? client_escape(pool) : NULL, *es = state ? client_escape(state) : NULL;
    snprintf(path, sizeof(path), "/api/v1/runs?limit=1000%s%s%s%s", ep ? "&pool=" : "",
             ep ? ep : "", es ? "&state=" : "", es ? es : "");
    free(ep);
    free(es);
    json_t *resp;
    int rc = client_call(c, "GET", path, NULL, NULL, 0, &resp, NULL);
    if (rc)
        return rc;
    json_t *runs = json_object_get(resp, "runs");
    if (c->json) {
        cli_print_json(runs);
    } else {
        struct table t;
        table_init(&t, 7, "ID", "POOL", "STATE", "PHASE", "WORKER", "CREATED", "ENDED");
        size_t i;
        json_t *r;
        json_array_foreach(runs, i, r)
        {
            char f[7][64]; /* one buffer a column: cli_field may write into it */
            table_row(&t, cli_field(r, "id", f[0]), cli_field(r, "pool", f[1]),
                      cli_field(r, "state", f[2]), cli_field(r, "phase", f[3]),
                      cli_field(r, "worker", f[4]), cli_field(r, "created_at", f[5]),
                      cli_field(r, "ended_at", f[6]));
        }
        table_print(&t, stdout);
        table_free(&t);
    }
    json_decref(resp);
    return 0;
}

/* Parses "ID" (one positive number) after the subcommand. */
static int one_id(int argc, char **argv, int allow_follow, long long *id, int *do_follow)
{
    static const struct option opts[] = {{"follow", no_argument, 0, 'f'}, {0, 0, 0, 0}};
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'f' && allow_follow)
            *do_follow = 1;
        else
            return cli_usage("run %s: unknown option", argv[0]);
    }
    char *end;
    if (optind + 1 != argc || (*id = strtoll(argv[optind], &end, 10)) <= 0 || *end)
        return cli_usage("run %s: expected one run id", argv[0]);
    return 0;
}

static int run_show(struct cli *c, int argc, char **argv)
{
    long long id;
    int rc = one_id(argc, argv, 0, &id, NULL);
    if (rc)
        return rc;
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/runs/%lld", id);
    json_t *r;
    if ((rc = client_call(c, "GET", path, NULL, NULL, 0, &r, NULL)))
        return rc;
    if (c->json) {
        cli_print_json(r);
    } else {
        static const char *keys[] = {
            "id",       "pool",       "state",       "phase",           "worker",
            "attempts", "created_at", "assigned_at", "started_at",      "ended_at",
            "reason",   "exit_code",  "log_bytes",   "cancel_requested"};
        char buf[64];
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            printf("%-17s %s\n", keys[i], cli_field(r, keys[i], buf));
        printf("spec:\n");
        cli_print_json(json_object_get(r, "spec"));
    }
    json_decref(r);
    return 0;
}

static int run_logs(struct cli *c, int argc, char **argv)
{
    long long id = 0;
    int do_follow = 0;
    int rc = one_id(argc, argv, 1, &id, &do_follow);
    if (rc)
        return rc;
    if (do_follow)
        return follow(c, id);
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/runs/%lld/logs", id);
    return client_stream(c, path, stdout);
}

static int run_cancel(struct cli *c, int argc, char **argv)
{
    long long id;
    int rc = one_id(argc, argv, 0, &id, NULL);
    if (rc)
        return rc;
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/runs/%lld/cancel", id);
    json_t *body = json_object(), *r = NULL;
    rc = client_call_json(c, "POST", path, body, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (c->json)
        cli_print_json(r);
    else if (json_is_string(json_object_get(r, "state")) &&
             strcmp(json_string_value(json_object_get(r, "state")), "canceled") == 0)
        printf("run %lld canceled\n", id);
    else
        printf("run %lld: cancel sent to its worker\n", id);
    json_decref(r);
    return 0;
}

int cli_run(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("run: expected submit, list, show, logs or cancel");
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "submit") == 0)
        return run_submit(c, argc, argv);
    if (strcmp(sub, "list") == 0)
        return run_list(c, argc, argv);
    if (strcmp(sub, "show") == 0)
        return run_show(c, argc, argv);
    if (strcmp(sub, "logs") == 0)
        return run_logs(c, argc, argv);
    if (strcmp(sub, "cancel") == 0)
        return run_cancel(c, argc, argv);
    return cli_usage("run: unknown subcommand \"%s\"", sub);
}
