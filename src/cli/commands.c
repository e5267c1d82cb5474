/*
 * The davit command table, and the reading of a command line against it:
 * help, option checks, then the handler.
 */
#include "cli/cli.h"
#include "cli/args.h"

#include "common/outcome.h"
#include "server/server.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int cmd_help(struct cli *c, int argc, char **argv);
static int cmd_version(struct cli *c, int argc, char **argv);

#define ID_HELP "  ID is the number that run submit or run list printed.\n"

const struct cli_cmd cli_commands[] = {
    {"server", NULL, "--data-dir DIR [--listen ADDR:PORT] …",
     "run the control plane (its options: davit server --help)", NULL, NULL, CMD_OWN_ARGS,
     cli_server},

    {"pool", "create", "NAME --csr FILE",
     "create a pool from a CSR; prints only its token, which is shown once",
     "  NAME         lower-case letters, digits and '-', at most 63\n"
     "  --csr FILE   a PEM certificate signing request made with the pool's private key\n"
     "               (openssl req -new -newkey rsa:4096 -nodes -keyout davit.key -out davit.csr)\n",
     (const struct option[]){{"csr", required_argument, 0, 'c'}, {0, 0, 0, 0}}, CMD_JSON,
     cli_pool_create},
    {"pool", "list", "", "list the pools", NULL, NULL, CMD_JSON, cli_pool_list},
    {"pool", "show", "NAME", "show a pool", NULL, NULL, CMD_JSON, cli_pool_show},
    {"pool", "reset", "NAME --csr FILE",
     "give a pool a new key and token; its launchers are told to exit",
     "  --csr FILE   a PEM certificate signing request made with the pool's new private key\n",
     (const struct option[]){{"csr", required_argument, 0, 'c'}, {0, 0, 0, 0}}, CMD_JSON,
     cli_pool_reset},
    {"pool", "cycle", "NAME [--deadline DUR]",
     "every launcher of the pool finishes its runs and exits",
     "  --deadline DUR   how long the launchers have to finish their runs (default 20s)\n",
     (const struct option[]){{"deadline", required_argument, 0, 'd'}, {0, 0, 0, 0}}, CMD_JSON,
     cli_pool_cycle},
    {"pool", "delete", "NAME",
     "delete a pool with its runs, logs and launchers; refused while it has queued or active runs",
     NULL, NULL, CMD_JSON, cli_pool_delete},

    {"run", "submit", "--pool NAME [--image IMG] --phase NAME=CMD … [OPTION…]",
     "submit a run; prints its id, or with --follow its log",
     "  --pool NAME            the pool that runs it\n"
     "  --image IMG            the container image (default: the launcher's\n"
     "                         DAVIT_DEFAULT_RUNNER_IMAGE)\n"
     "  --phase NAME=CMD       add a command to phase NAME; phases run in the order they first\n"
     "                         appear, and repeating a name adds commands to it\n"
     "  --before NAME=CMD      a hook that runs before phase NAME\n"
     "  --after NAME=CMD       a hook that runs after phase NAME\n"
     "  --env K=V              a variable\n"
     "  --secret K=V           a secret variable (masked in the log)\n"
     "  --secret K             a secret with the value of K in this environment, which keeps it\n"
     "                         out of the process list and the shell history; secrets are\n"
     "                         sealed here to the pool's key, the server sees only ciphertext\n"
     "  --sign-key FILE        sign the spec with this Ed25519 private key (PEM), for launchers\n"
     "                         with DAVIT_SUBMITTER_KEYS (docs/secrets.md)\n"
     "  --pool-key FILE        the pool's public key or CSR (PEM): refuse to seal or sign when\n"
     "                         the server's key for the pool is another (exit 9); without it,\n"
     "                         DAVIT_POOL_KEY_ID, else the pin in DAVIT_KNOWN_POOLS\n"
     "  --timeout DUR          the run's time limit (timeouts.run), e.g. 70m\n"
     "  --user UID[:GID]       the user the phases run as\n"
     "  --follow               print the log until the run ends, and exit with its outcome:\n"
     "                         0 finished, 1 failed, 3 timed_out, 4 canceled, 5 lost\n"
     "  --json                 print the server's answer (not with --follow)\n",
     (const struct option[]){{"pool", required_argument, 0, 'p'},
                             {"image", required_argument, 0, 'i'},
                             {"phase", required_argument, 0, 'P'},
                             {"before", required_argument, 0, 'b'},
                             {"after", required_argument, 0, 'a'},
                             {"env", required_argument, 0, 'e'},
                             {"secret", required_argument, 0, 's'},
                             {"timeout", required_argument, 0, 't'},
                             {"user", required_argument, 0, 'u'},
                             {"follow", no_argument, 0, 'f'},
                             {"sign-key", required_argument, 0, 'K'},
                             {"pool-key", required_argument, 0, 'k'},
                             {0, 0, 0, 0}},
     CMD_JSON, cli_run_submit},
    {"run", "list", "[--pool NAME] [--state STATE] [--limit N] [--before ID] [--all]",
     "list runs, newest first, a page at a time",
     "  --pool NAME     only the runs of this pool\n"
     "  --state STATE   only runs in this state: queued, assigned, preparing, running,\n"
     "                  finished, failed, canceled, timed_out or lost\n"
     "  --limit N       runs per page (default 50)\n"
     "  --before ID     the page of runs older than run ID; when there are more runs, the\n"
     "                  table ends with \"more: davit run list … --before ID\" on stderr\n"
     "  --all           every page, one after the other\n"
     "  --json          the server's answer: {\"runs\": […], \"next\": ID or null}\n",
     (const struct option[]){{"pool", required_argument, 0, 'p'},
                             {"state", required_argument, 0, 's'},
                             {"limit", required_argument, 0, 'l'},
                             {"before", required_argument, 0, 'b'},
                             {"all", no_argument, 0, 'A'},
                             {0, 0, 0, 0}},
     CMD_JSON, cli_run_list},
    {"run", "show", "ID", "show a run and its spec (secrets sealed)", ID_HELP, NULL, CMD_JSON,
     cli_run_show},
    {"run", "logs", "ID [--follow]", "print a run's log",
     "  --follow   print the log as it grows until the run ends, and exit with its outcome\n",
     (const struct option[]){{"follow", no_argument, 0, 'f'}, {0, 0, 0, 0}}, 0, cli_run_logs},
    {"run", "cancel", "ID",
     "cancel a run: a queued run at once, a started one when its launcher has stopped it", ID_HELP,
     NULL, CMD_JSON, cli_run_cancel},
    {"run", "delete", "ID",
     "delete a run that has ended, with its log; refused while it is queued or active", ID_HELP,
     NULL, 0, cli_run_delete},

    {"worker", "list", "[--pool NAME]", "list the launchers seen in the last day",
     "  --pool NAME   only the launchers of this pool\n",
     (const struct option[]){{"pool", required_argument, 0, 'p'}, {0, 0, 0, 0}}, CMD_JSON,
     cli_worker_list},
    {"worker", "drain", "ID", "give a launcher no more runs; the runs it has finish",
     "  ID is the launcher's id in worker list.\n", NULL, CMD_JSON, cli_worker_drain},
    {"worker", "undrain", "ID", "give a drained launcher runs again",
     "  ID is the launcher's id in worker list.\n", NULL, CMD_JSON, cli_worker_undrain},

    {"release", "publish", "FILE --arch amd64|arm64 --version V [--kind worker|launcher]",
     "publish a davit-worker (or davit-launcher) binary for launchers to download",
     "  --arch amd64|arm64        the machine the binary is built for\n"
     "  --version V               its version\n"
     "  --kind worker|launcher    which program it is (default worker)\n",
     (const struct option[]){{"arch", required_argument, 0, 'a'},
                             {"version", required_argument, 0, 'v'},
                             {"kind", required_argument, 0, 'k'},
                             {0, 0, 0, 0}},
     CMD_JSON, cli_release_publish},
    {"release", "list", "", "list the published releases", NULL, NULL, CMD_JSON, cli_release_list},

    {"autoscale", NULL, "--pool NAME --group NAME [--provider aws|azure|gcp] [OPTION…]",
     "scale an AWS Auto Scaling group, Azure scale set or GCP managed instance group to a pool's\n"
     "demand, one tick or --every DUR",
     "  --pool NAME               the pool (DAVIT_AUTOSCALE_POOL)\n"
     "  --provider P              aws, azure or gcp (DAVIT_AUTOSCALE_PROVIDER; aws)\n"
     "  --group NAME              the Auto Scaling group, scale set or managed instance group\n"
     "                            (DAVIT_AUTOSCALE_GROUP; --scale-set is the same)\n"
     "  --region R                AWS: its region (default AWS_REGION, AWS_DEFAULT_REGION or\n"
     "                            the instance's); GCP: the group's (DAVIT_AUTOSCALE_REGION)\n"
     "  --subscription ID         Azure (DAVIT_AUTOSCALE_SUBSCRIPTION)\n"
     "  --resource-group NAME     Azure (DAVIT_AUTOSCALE_RESOURCE_GROUP)\n"
     "  --project ID              GCP (DAVIT_AUTOSCALE_PROJECT)\n"
     "  --min N, --max N          Azure, GCP: the group's bounds, required --max\n"
     "                            (DAVIT_AUTOSCALE_MIN, DAVIT_AUTOSCALE_MAX; min 0)\n"
     "  --max-create N            instances added a tick at most (DAVIT_AUTOSCALE_MAX_CREATE; 5)\n"
     "  --slots-per-instance N    runs one instance's launcher takes at once, 1 to 64\n"
     "                            (DAVIT_AUTOSCALE_SLOTS_PER_INSTANCE; what most workers report)\n"
     "  --scale-down-delay DUR    idle this long before a worker may go\n"
     "                            (DAVIT_AUTOSCALE_SCALE_DOWN_DELAY; 5m)\n"
     "  --stray-after DUR         an instance with no worker this long is terminated\n"
     "                            (DAVIT_AUTOSCALE_STRAY_AFTER; 10m)\n"
     "  --every DUR               tick every DUR until SIGTERM (DAVIT_AUTOSCALE_EVERY; one tick)\n"
     "  --metrics-listen ADDR     serve /metrics on HOST:PORT (DAVIT_AUTOSCALE_METRICS_LISTEN)\n"
     "  --aws-endpoint URL        one endpoint for Auto Scaling and EC2\n"
     "                            (DAVIT_AUTOSCALE_AWS_ENDPOINT; default AWS's for the region)\n"
     "  --azure-endpoint URL      (DAVIT_AUTOSCALE_AZURE_ENDPOINT; https://management.azure.com)\n"
     "  --gcp-endpoint URL        (DAVIT_AUTOSCALE_GCP_ENDPOINT; https://compute.googleapis.com)\n"
     "  --ca-file FILE            CA certificates for the cloud's endpoint\n"
     "                            (DAVIT_AUTOSCALE_CA_FILE)\n"
     "  --dry-run                 log the decisions, change nothing (DAVIT_AUTOSCALE_DRY_RUN)\n"
     "  Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or the\n"
     "  instance's role; AZURE_ACCESS_TOKEN or the VM's managed identity;\n"
     "  GOOGLE_OAUTH_ACCESS_TOKEN or the instance's service account.\n"
     "  Exit 8 when the cloud refuses a call or the credentials. See docs/autoscale.md.\n",
     (const struct option[]){{"pool", required_argument, 0, 'p'},
                             {"provider", required_argument, 0, 'P'},
                             {"group", required_argument, 0, 'g'},
                             {"scale-set", required_argument, 0, 'G'},
                             {"region", required_argument, 0, 'r'},
                             {"subscription", required_argument, 0, 'S'},
                             {"resource-group", required_argument, 0, 'R'},
                             {"project", required_argument, 0, 'j'},
                             {"min", required_argument, 0, 'i'},
                             {"max", required_argument, 0, 'x'},
                             {"max-create", required_argument, 0, 'm'},
                             {"slots-per-instance", required_argument, 0, 'N'},
                             {"scale-down-delay", required_argument, 0, 'd'},
                             {"stray-after", required_argument, 0, 's'},
                             {"every", required_argument, 0, 'e'},
                             {"metrics-listen", required_argument, 0, 'l'},
                             {"aws-endpoint", required_argument, 0, 'a'},
                             {"azure-endpoint", required_argument, 0, 'z'},
                             {"gcp-endpoint", required_argument, 0, 'c'},
                             {"ca-file", required_argument, 0, 'C'},
                             {"dry-run", no_argument, 0, 'n'},
                             {0, 0, 0, 0}},
     0, cli_autoscale},
    {"token", "create", "NAME --role viewer|operator|admin",
     "create a named API token; prints only the token, which is shown once (admin)",
     "  NAME     lower-case letters, digits, '.', '_' and '-', at most 63; not \"admin\"\n"
     "  --role   viewer: reads everything;\n"
     "           operator: also submits and cancels runs, drains, undrains and cycles;\n"
     "           admin: also manages pools, tokens, releases, and deletes runs\n",
     (const struct option[]){{"role", required_argument, 0, 'r'}, {0, 0, 0, 0}}, CMD_JSON,
     cli_token_create},
    {"token", "list", "", "list the API tokens: name, role, created, last used (admin)",
     "  Never shows a token. \"admin\" is the token the server printed at its first start.\n"
     "  LAST USED is updated at most once a minute.\n",
     NULL, CMD_JSON, cli_token_list},
    {"token", "revoke", "NAME",
     "revoke an API token at once, with the browser sessions opened with it (admin)", NULL, NULL,
     CMD_JSON, cli_token_revoke},

    {"help", NULL, "[COMMAND [SUBCOMMAND]]", "print this list, or the usage of a command", NULL,
     NULL, 0, cmd_help},
    {"version", NULL, "", "print the version", NULL, NULL, 0, cmd_version},
    {0},
};

static const char footer[] =
    "\n"
    "Every command answers --help (davit run submit --help). --json, anywhere on the\n"
    "line, prints the server's JSON answer instead of a table.\n"
    "The client reads DAVIT_SERVER and DAVIT_API_TOKEN (or SPACELIFT_SERVER,\n"
    "SPACELIFT_API_TOKEN), and DAVIT_CA_FILE for a private CA. See docs/cli.md.\n";

static int is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

const struct cli_cmd *cli_find(const char *group, const char *name)
{
    for (const struct cli_cmd *k = cli_commands; k->group; k++)
        if (strcmp(k->group, group) == 0 &&
            (name && k->name ? strcmp(k->name, name) == 0 : !name && !k->name))
            return k;
    return NULL;
}

/* Whether group is the first word of commands of two words. */
static int is_group(const char *group)
{
    for (const struct cli_cmd *k = cli_commands; k->group; k++)
        if (k->name && strcmp(k->group, group) == 0)
            return 1;
    return 0;
}

/* "pool create NAME --csr FILE [--json]", without the program's name. */
static void print_synopsis(const struct cli_cmd *k, FILE *out)
{
    fprintf(out, "%s%s%s%s%s%s", k->group, k->name ? " " : "", k->name ? k->name : "",
            *k->args ? " " : "", k->args, k->flags & CMD_JSON ? " [--json]" : "");
}

void cli_print_usage(const struct cli_cmd *k, FILE *out)
{
    fputs("usage: davit ", out);
    print_synopsis(k, out);
    fprintf(out, "\n\n%s.\n", k->summary);
    if (k->help)
        fprintf(out, "\n%s", k->help);
}

/* The commands of group (every command when NULL), one line each. */
static void print_list(const char *group, FILE *out)
{
    fprintf(out, "usage: davit %s%s\n\n", group ? group : "COMMAND",
            group ? " SUBCOMMAND [ARGUMENT…]" : " [ARGUMENT…]");
    for (const struct cli_cmd *k = cli_commands; k->group; k++) {
        if (group && strcmp(k->group, group) != 0)
            continue;
        fputs("  ", out);
        print_synopsis(k, out);
        fprintf(out, "\n        %s\n", k->summary);
    }
    const struct cli_cmd *first = NULL;
    for (const struct cli_cmd *k = cli_commands; group && k->group && !first; k++)
        if (strcmp(k->group, group) == 0)
            first = k;
    if (first)
        fprintf(out, "\nEach subcommand answers --help (davit %s %s --help).\n", group,
                first->name);
    else
        fputs(footer, out);
}

int cli_check_options(const struct cli_cmd *k, int argc, char **argv)
{
    struct option all[CLI_MAX_OPTS + 2];
    size_t n = 0;
    for (const struct option *o = k->opts; o && o->name && n < CLI_MAX_OPTS; o++)
        all[n++] = *o;
    all[n++] = (struct option){"help", no_argument, 0, 'h'};
    all[n] = (struct option){0, 0, 0, 0};
    /* The first problem is kept and told only when no --help follows it:
     * "davit run submit --bogus --help" is a question, not a mistake. */
    char bad[128] = "";
    int o;
    optind = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
        if (o == 'h') {
            cli_print_usage(k, stdout);
            return 0;
        }
        if ((o != '?' && o != ':') || *bad)
            continue;
        /* Named up to any '=': what follows may be a secret's value. */
        const char *arg = argv[optind - 1];
        int len = (int)strcspn(arg, "=");
        if (o == ':')
            snprintf(bad, sizeof(bad), "%.*s: needs a value", len > 64 ? 64 : len, arg);
        else if (optopt && strncmp(arg, "--", 2) == 0)
            snprintf(bad, sizeof(bad), "%.*s: takes no value", len > 64 ? 64 : len, arg);
        else if (optopt)
            snprintf(bad, sizeof(bad), "-%c: unknown option", optopt);
        else
            snprintf(bad, sizeof(bad), "%.*s: unknown option", len > 64 ? 64 : len, arg);
    }
    if (*bad) {
        struct cli c = {.cmd = k};
        return cli_usage(&c, "%s", bad);
    }
    return -1;
}

int cli_server(struct cli *c, int argc, char **argv)
{
    (void)c;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    return server_main(argc, argv, self);
}

static int cmd_version(struct cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_usage(c, "takes no arguments");
    printf("davit %s\n", DAVIT_VERSION);
    return 0;
}

/* davit help [COMMAND [SUBCOMMAND]]. */
static int cmd_help(struct cli *c, int argc, char **argv)
{
    if (argc == 1) {
        print_list(NULL, stdout);
        return 0;
    }
    const struct cli_cmd *k = cli_find(argv[1], argc > 2 ? argv[2] : NULL);
    if (argc > 3 || (!k && !(argc == 2 && is_group(argv[1]))))
        return cli_usage(c, "no command \"%.64s%s%.64s\"", argv[1], argc > 2 ? " " : "",
                         argc > 2 ? argv[2] : "");
    if (!k) {
        print_list(argv[1], stdout);
        return 0;
    }
    if (k->flags & CMD_OWN_ARGS) {
        char *args[] = {(char *)k->group, "--help", NULL};
        return k->run(c, 2, args);
    }
    cli_print_usage(k, stdout);
    return 0;
}

/* The names of group's subcommands, "create, list, … or delete", into buf. */
static const char *subcommands(const char *group, char *buf, size_t size)
{
    size_t n = 0, count = 0, i = 0;
    for (const struct cli_cmd *k = cli_commands; k->group; k++)
        count += k->name && strcmp(k->group, group) == 0;
    buf[0] = '\0';
    for (const struct cli_cmd *k = cli_commands; k->group && n < size; k++) {
        if (!k->name || strcmp(k->group, group) != 0)
            continue;
        i++;
        n += (size_t)snprintf(buf + n, size - n, "%s%s",
                              i == 1       ? ""
                              : i == count ? " or "
                                           : ", ",
                              k->name);
    }
    return buf;
}

int cli_main(int argc, char **argv)
{
    struct cli c = {0};
    char names[256];
    if (argc < 2)
        return cli_usage(NULL, "expected a command (see davit --help)");
    /* A command that reads its own options gets them all, --json too. */
    const struct cli_cmd *k = cli_find(argv[1], NULL);
    if (k && (k->flags & CMD_OWN_ARGS)) {
        /* Its parser knows --help only; -h means the same everywhere. */
        for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
            if (strcmp(argv[i], "-h") == 0)
                argv[i] = "--help";
        c.cmd = k;
        return k->run(&c, argc - 1, argv + 1);
    }
    int n = 0;
    for (int i = 0; i < argc; i++) { /* --json may go anywhere */
        if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    if (argc < 2)
        return cli_usage(NULL, "expected a command (see davit --help)");
    if (is_help(argv[1]))
        argv[1] = "help";
    else if (strcmp(argv[1], "--version") == 0)
        argv[1] = "version";
    k = cli_find(argv[1], NULL);
    int first = 1; /* the index of the command's own name */
    if (!k && is_group(argv[1])) {
        if (argc < 3)
            return cli_usage(NULL, "%s: expected %s (see davit %s --help)", argv[1],
                             subcommands(argv[1], names, sizeof(names)), argv[1]);
        if (is_help(argv[2])) {
            print_list(argv[1], stdout);
            return 0;
        }
        k = cli_find(argv[1], argv[2]);
        if (!k)
            return cli_usage(NULL, "%s: unknown subcommand \"%.64s\" (see davit %s --help)",
                             argv[1], argv[2], argv[1]);
        first = 2;
    }
    if (!k)
        return cli_usage(NULL, "unknown command \"%.64s\" (see davit --help)", argv[1]);
    c.cmd = k;
    argc -= first;
    argv += first;
    int rc = cli_check_options(k, argc, argv);
    if (rc >= 0)
        return rc;
    if (c.json && !(k->flags & CMD_JSON))
        return cli_usage(&c, "--json: this command prints no JSON");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "davit: curl_global_init failed\n");
        return EXIT_INTERNAL;
    }
    rc = k->run(&c, argc, argv);
    curl_global_cleanup();
    return rc;
}
