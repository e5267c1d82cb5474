/* davit run …: submit (optionally following), list, show, logs, cancel, delete. */
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/output.h"
#include "cli/client.h"
#include "cli/known_pools.h"

#include "common/outcome.h"
#include "common/seal.h"

#include <openssl/pem.h>

#include <errno.h>
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

static int add_hook(const struct cli *c, json_t *phases, char *arg, const char *which)
{
    char *name, *cmd;
    if (split_kv(arg, &name, &cmd) < 0 || !cmd)
        return cli_usage(c, "--%s: expected PHASE=COMMAND", which);
    json_t *p = phase_get(phases, name, 0);
    if (!p)
        return cli_usage(c, "--%s %s: no --phase %s given", which, name, name);
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

/* The passphrase callback of an encrypted key: none is asked for (OpenSSL's default prompts on
 * the terminal, which a script cannot answer); *asked says that one was wanted. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)asked = 1;
    return -1;
}

/* The Ed25519 private key PEM in path, or NULL after saying why. */
static EVP_PKEY *sign_key_read(const char *path)
{
    FILE *f = fopen(path, "r");
    int encrypted = 0;
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, no_passphrase, &encrypted) : NULL;
    if (f)
        fclose(f);
    if (!f)
        fprintf(stderr, "davit: --sign-key %s: %s\n", path, strerror(errno));
    else if (encrypted)
        fprintf(stderr,
                "davit: --sign-key %s: the key is encrypted, and davit asks for no passphrase: "
                "give it an unencrypted copy (openssl pkey -in %s -out FILE)\n",
                path, path);
    else if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519)
        fprintf(stderr,
                "davit: --sign-key %s: not an unencrypted Ed25519 private key PEM (openssl "
                "genpkey -algorithm ed25519)\n",
                path);
    if (k && EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* A pin given on the command line (--pool-key FILE) or in DAVIT_POOL_KEY_ID into key_id; 1 when
 * there is one, 0 when not, or an exit code (> 1) after saying why. */
static int explicit_pin(const char *pool_key, char key_id[SEAL_KEY_ID_HEX], const char **source)
{
    const char *env = getenv("DAVIT_POOL_KEY_ID");
    char err[512];
    if (pool_key) {
        *source = "--pool-key";
        if (known_pools_key_id_file(pool_key, key_id, err, sizeof(err)) < 0) {
            fprintf(stderr, "davit: --pool-key %s\n", err);
            return EXIT_USAGE;
        }
        return 1;
    }
    if (!env || !*env)
        return 0;
    *source = "DAVIT_POOL_KEY_ID";
    if (strlen(env) != SEAL_KEY_ID_HEX - 1 || strspn(env, "0123456789abcdef") != strlen(env)) {
        fprintf(stderr, "davit: DAVIT_POOL_KEY_ID: expected 64 lowercase hex digits (a key_id)\n");
        return EXIT_USAGE;
    }
    memcpy(key_id, env, SEAL_KEY_ID_HEX);
    return 1;
}

/*
 * Checks the pool's id and public key, as the server gave them, against the client's pin of
 * the pool (docs/secrets.md, "Pinning the pool's key"): --pool-key or DAVIT_POOL_KEY_ID first,
 * else the known-pools file; with none, trusts them on first use and records them. The key_id
 * is computed here from the key, never taken from the server. 0, or an exit code after saying
 * why.
 */
static int check_pin(struct cli *c, const char *pool, const char *pool_id, const char *pub,
                     const char *pool_key)
{
    char file[4096], err[4400], have[SEAL_KEY_ID_HEX];
    struct known_pool pin = {0}, now = {0};
    const char *source = NULL;
    int pinned, rc;
    if (seal_key_id_pem(pub, have, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit: pool %s: %s\n", pool, err);
        return EXIT_API;
    }
    if (known_pools_path(file, sizeof(file), err, sizeof(err)) < 0) {
        fprintf(stderr, "davit: %s\n", err);
        return EXIT_USAGE;
    }
    if ((pinned = explicit_pin(pool_key, pin.key_id, &source)) > 1)
        return pinned;
    if (!pinned) {
        source = file;
        if ((pinned = known_pools_get(file, c->server, pool, &pin, err, sizeof(err))) < 0) {
            fprintf(stderr, "davit: %s\n", err);
            return EXIT_USAGE;
        }
    }
    if (pinned && strcmp(pin.key_id, have) != 0) {
        fprintf(stderr,
                "davit: pool %s: the server's key (key_id %.16s…) is not the pinned key "
                "(%.16s…, %s): refusing to seal to it; if the pool was reset, pin its new key "
                "with --pool-key FILE (docs/secrets.md)\n",
                pool, have, pin.key_id, source);
        return EXIT_PIN;
    }
    if (pinned && source == file && strcmp(pin.pool_id, "-") != 0 &&
        strcmp(pin.pool_id, pool_id) != 0) {
        fprintf(stderr,
                "davit: pool %s: the server names pool id %s, but %s pins %s: refusing to "
                "seal to it (docs/secrets.md)\n",
                pool, pool_id, file, pin.pool_id);
        return EXIT_PIN;
    }
    if (pinned && source == file && strcmp(pin.pool_id, "-") != 0)
        return 0; /* nothing new to record */
    snprintf(now.pool_id, sizeof(now.pool_id), "%s", pool_id);
    memcpy(now.key_id, have, sizeof(now.key_id));
    if ((rc = known_pools_put(file, c->server, pool, &now, err, sizeof(err))) < 0)
        fprintf(stderr, "davit: pool %s: the pin is not recorded: %s\n", pool, err);
    else if (!pinned)
        fprintf(stderr, "davit: pool %s: trusting its key %.16s… on first use (pinned in %s)\n",
                pool, have, file);
    return 0;
}

/*
 * Seals spec's secrets to the pool's public key, and signs the spec with the key in sign_key
 * (NULL: unsigned), as docs/secrets.md says. The pool's id and key come from the server and
 * are checked against the client's pin (check_pin); the run nonce is made here. 0, or an exit
 * code after saying why.
 */
static int seal_and_sign(struct cli *c, json_t *spec, const char *pool, const char *sign_key,
                         const char *pool_key)
{
    json_t *secrets = json_object_get(spec, "secrets"), *info = NULL, *sealed = NULL;
    char path[512], nonce[SEAL_NONCE_HEX], err[512];
    EVP_PKEY *ed = NULL;
    int rc = 0;
    if (!secrets && !sign_key)
        return 0;
    if (sign_key && !(ed = sign_key_read(sign_key)))
        return EXIT_USAGE;
    char *esc = client_escape(pool);
    if (!esc) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/pools/%s", esc);
    free(esc);
    if ((rc = client_call(c, "GET", path, NULL, NULL, 0, &info, NULL)))
        goto out;
    const char *pool_id = json_string_value(json_object_get(info, "id"));
    const char *pub = json_string_value(json_object_get(info, "public_key"));
    if (!pool_id || !pub) {
        fprintf(stderr,
                "davit: the server does not say pool %s's id and public key (too old "
                "for sealed secrets?)\n",
                pool);
        rc = EXIT_API;
        goto out;
    }
    if ((rc = check_pin(c, pool, pool_id, pub, pool_key)))
        goto out;
    if (seal_new_nonce(nonce) < 0) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    json_object_set_new(spec, "run_nonce", json_string(nonce));
    if (secrets) {
        if (seal_secrets(pub, pool_id, nonce, secrets, &sealed, err, sizeof(err)) < 0) {
            fprintf(stderr, "davit: pool %s: %s\n", pool, err);
            rc = EXIT_USAGE;
            goto out;
        }
        json_object_del(spec, "secrets"); /* wiped as jansson frees it (main.c) */
        json_object_set_new(spec, "sealed", sealed);
    }
    if (ed && seal_sign_spec(spec, pool_id, ed, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit: --sign-key %s: %s\n", sign_key, err);
        rc = EXIT_INTERNAL;
    }
out:
    EVP_PKEY_free(ed);
    json_decref(info);
    return rc;
}

int cli_run_submit(struct cli *c, int argc, char **argv)
{
    json_t *spec = json_pack("{s:[], s:{}, s:{}}", "phases", "env", "secrets");
    json_t *phases = json_object_get(spec, "phases"), *resp = NULL;
    char **hooks = calloc((size_t)argc, sizeof(char *));
    int *hook_after = calloc((size_t)argc, sizeof(int));
    int nhooks = 0, do_follow = 0, o, rc = 0;
    const char *pool = NULL, *image = NULL, *sign_key = NULL, *pool_key = NULL;
    char *k, *v;
    if (!spec || !hooks || !hook_after) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    optind = 0;
    while ((o = cli_getopt(c, argc, argv)) != -1) {
        switch (o) {
        case 'p':
            pool = optarg;
            break;
        case 'i':
            image = optarg;
            break;
        case 'P':
            if (split_kv(optarg, &k, &v) < 0 || !v) {
                rc = cli_usage(c, "--phase: expected NAME=COMMAND");
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
                rc = cli_usage(c, "--%s: expected NAME=VALUE", o == 'e' ? "env" : "secret");
                goto out;
            }
            if (!v && o == 's')
                v = getenv(k); /* --secret NAME takes the value from the environment */
            if (!v) {
                rc = cli_usage(c, "--%s %s: no value", o == 'e' ? "env" : "secret", k);
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
        case 'K':
            sign_key = optarg;
            break;
        case 'k':
            pool_key = optarg;
            break;
        }
    }
    if (optind != argc) {
        rc = cli_usage(c, "unexpected argument");
        goto out;
    }
    if (!pool || json_array_size(phases) == 0) {
        rc = cli_usage(c, "--pool and at least one --phase are required");
        goto out;
    }
    if (do_follow && c->json) {
        /* --follow prints the log, which is not JSON */
        rc = cli_usage(c, "--json and --follow do not go together");
        goto out;
    }
    for (int i = 0; i < nhooks; i++)
        if ((rc = add_hook(c, phases, hooks[i], hook_after[i] ? "after" : "before")))
            goto out;
    if (image) /* none: the launcher's DAVIT_DEFAULT_RUNNER_IMAGE */
        json_object_set_new(spec, "image", json_string(image));
    if (json_object_size(json_object_get(spec, "env")) == 0)
        json_object_del(spec, "env");
    if (json_object_size(json_object_get(spec, "secrets")) == 0)
        json_object_del(spec, "secrets");
    /* The signature covers the spec without "pool", which only routes the request. */
    if ((rc = seal_and_sign(c, spec, pool, sign_key, pool_key)))
        goto out;
    json_object_set_new(spec, "pool", json_string(pool));
    if ((rc = client_call_json(c, "POST", "/api/v1/runs", spec, &resp)))
        goto out;
    long long id = json_integer_value(json_object_get(resp, "id"));
    if (c->json)
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

#define RUN_LIST_LIMIT 50

/* The options of run list, and the filters of its query. */
struct list_args {
    const char *pool, *state;
    long long limit, before; /* before 0: the newest page */
    int limit_given, all;
};

/* A positive number for option opt; EXIT_USAGE after saying why. */
static int positive(const struct cli *c, const char *opt, const char *arg, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(arg, &end, 10);
    if (*out <= 0 || *end || errno || end == arg)
        return cli_usage(c, "--%s: expected a positive number", opt);
    return 0;
}

static int list_args(const struct cli *c, int argc, char **argv, struct list_args *a)
{
    int o, rc = 0;
    *a = (struct list_args){.limit = RUN_LIST_LIMIT};
    optind = 0;
    while (!rc && (o = cli_getopt(c, argc, argv)) != -1) {
        if (o == 'p')
            a->pool = optarg;
        else if (o == 's')
            a->state = optarg;
        else if (o == 'l')
            a->limit_given = !(rc = positive(c, "limit", optarg, &a->limit));
        else if (o == 'b')
            rc = positive(c, "before", optarg, &a->before);
        else if (o == 'A')
            a->all = 1;
    }
    if (!rc && optind != argc)
        rc = cli_usage(c, "unexpected argument");
    return rc;
}

/* The query for the page before run id before (0: the newest page). Caller frees. */
static char *list_path(const struct list_args *a, long long before)
{
    char *ep = a->pool ? client_escape(a->pool) : NULL;
    char *es = a->state ? client_escape(a->state) : NULL;
    char *path = NULL, b[40] = "";
    if (before)
        snprintf(b, sizeof(b), "&before=%lld", before);
    if ((!a->pool || ep) && (!a->state || es) &&
        asprintf(&path, "/api/v1/runs?limit=%lld%s%s%s%s%s", a->limit, ep ? "&pool=" : "",
                 ep ? ep : "", es ? "&state=" : "", es ? es : "", b) < 0)
        path = NULL;
    free(ep);
    free(es);
    return path;
}

/* s as one shell word: as is when it is plain, else in single quotes. */
static void print_shell_word(FILE *out, const char *s)
{
    static const char plain[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/@";
    if (*s && strspn(s, plain) == strlen(s)) {
        fputs(s, out);
        return;
    }
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", out);
        else
            fputc(*s, out);
    }
    fputc('\'', out);
}

/* "more: davit run list … --before ID": the command for the next page. */
static void print_more(const struct list_args *a, long long next)
{
    fputs("more: davit run list", stderr);
    if (a->pool) {
        fputs(" --pool ", stderr);
        print_shell_word(stderr, a->pool);
    }
    if (a->state) {
        fputs(" --state ", stderr);
        print_shell_word(stderr, a->state);
    }
    if (a->limit_given)
        fprintf(stderr, " --limit %lld", a->limit);
    fprintf(stderr, " --before %lld\n", next);
}

/*
 * GETs the page before *before into *page (caller owns) and sets *before to
 * its "next" (0 when null or absent). A "next" that does not go back to an
 * older run is refused, so that --all always ends.
 */
static int list_page(struct cli *c, const struct list_args *a, long long *before, json_t **page)
{
    char *path = list_path(a, *before);
    if (!path) {
        fprintf(stderr, "davit: out of memory\n");
        return EXIT_INTERNAL;
    }
    int rc = client_call(c, "GET", path, NULL, NULL, 0, page, NULL);
    free(path);
    if (rc)
        return rc;
    json_t *runs = json_object_get(*page, "runs"), *next = json_object_get(*page, "next");
    if (!json_is_array(runs) || (next && !json_is_null(next) && !json_is_integer(next))) {
        fprintf(stderr, "davit: the server's answer is not {\"runs\": […], \"next\": ID}\n");
        goto bad;
    }
    long long n = json_is_integer(next) ? (long long)json_integer_value(next) : 0;
    if (json_is_integer(next) && (n <= 0 || (*before && n >= *before))) {
        fprintf(stderr, "davit: the server's next page (before run %lld) is not older\n", n);
        goto bad;
    }
    *before = n;
    return 0;
bad:
    json_decref(*page);
    *page = NULL;
    return EXIT_API;
}

int cli_run_list(struct cli *c, int argc, char **argv)
{
    struct list_args a;
    int rc = list_args(c, argc, argv, &a);
    if (rc)
        return rc;
    long long before = a.before;
    json_t *resp = NULL, *page = NULL;
    if ((rc = list_page(c, &a, &before, &resp)))
        return rc;
    /* --all: the runs of every further page join the first answer, which
     * then reads as one page with nothing after it. */
    while (a.all && before) {
        if ((rc = list_page(c, &a, &before, &page)))
            goto out;
        if (json_array_extend(json_object_get(resp, "runs"), json_object_get(page, "runs")) < 0 ||
            json_object_set_new(resp, "next", json_null()) < 0) {
            fprintf(stderr, "davit: out of memory\n");
            rc = EXIT_INTERNAL;
            goto out;
        }
        json_decref(page);
        page = NULL;
    }
    if (c->json) {
        cli_print_json(resp);
    } else {
        static const struct cli_column cols[] = {{"ID", "id"},         {"POOL", "pool"},
                                                 {"STATE", "state"},   {"PHASE", "phase"},
                                                 {"WORKER", "worker"}, {"CREATED", "created_at"},
                                                 {"ENDED", "ended_at"}};
        cli_print_table(json_object_get(resp, "runs"), cols, sizeof(cols) / sizeof(cols[0]));
        if (before)
            print_more(&a, before);
    }
out:
    json_decref(page);
    json_decref(resp);
    return rc;
}

int cli_run_show(struct cli *c, int argc, char **argv)
{
    long long id;
    char path[96];
    int rc = cli_id_path(c, argc, argv, "run", "", &id, path, sizeof(path));
    if (rc)
        return rc;
    json_t *r;
    if ((rc = client_call(c, "GET", path, NULL, NULL, 0, &r, NULL)))
        return rc;
    if (c->json) {
        cli_print_json(r);
    } else {
        static const char *const keys[] = {
            "id",       "pool",       "state",       "phase",           "worker",
            "attempts", "created_at", "assigned_at", "started_at",      "ended_at",
            "reason",   "exit_code",  "log_bytes",   "cancel_requested"};
        cli_print_fields(r, keys, sizeof(keys) / sizeof(keys[0]), 17);
        printf("spec:\n");
        cli_print_json_text(json_object_get(r, "spec"));
    }
    json_decref(r);
    return 0;
}

int cli_run_logs(struct cli *c, int argc, char **argv)
{
    long long id = 0;
    int do_follow = 0;
    char path[96];
    optind = 0;
    while (cli_getopt(c, argc, argv) == 'f')
        do_follow = 1;
    int rc = cli_id_path(c, argc, argv, "run", "/logs", &id, path, sizeof(path));
    if (rc)
        return rc;
    if (do_follow)
        return follow(c, id);
    return client_stream(c, path, stdout);
}

int cli_run_cancel(struct cli *c, int argc, char **argv)
{
    long long id;
    char path[96];
    int rc = cli_id_path(c, argc, argv, "run", "/cancel", &id, path, sizeof(path));
    if (rc)
        return rc;
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

int cli_run_delete(struct cli *c, int argc, char **argv)
{
    long long id;
    char path[96];
    int rc = cli_id_path(c, argc, argv, "run", "", &id, path, sizeof(path));
    if (rc)
        return rc;
    /* 204 and no body; 409 (not ended) and 404 are told by client_call */
    if ((rc = client_call(c, "DELETE", path, NULL, NULL, 0, NULL, NULL)))
        return rc;
    printf("run %lld deleted\n", id);
    return 0;
}
