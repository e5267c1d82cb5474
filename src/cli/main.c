/* davit: `davit server …` runs the control plane; every other command is the client. */
#include "cli/cli.h"

#include "common/env.h"
#include "common/outcome.h"
#include "server/server.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: davit COMMAND [--json] …\n"
    "  server --data-dir DIR [--listen ADDR:PORT] …   run the control plane\n"
    "  pool create NAME --csr FILE | list | show NAME | reset NAME --csr FILE\n"
    "       | cycle NAME [--deadline DUR] | delete NAME\n"
    "  run submit --pool NAME --image IMG --phase NAME=CMD … [--follow]\n"
    "      | list [--pool NAME] [--state S] | show ID | logs ID [--follow] | cancel ID\n"
    "  worker list [--pool NAME] | drain ID | undrain ID\n"
    "  release publish FILE --arch amd64|arm64 --version V [--kind worker|launcher] | list\n"
    "The client reads DAVIT_SERVER and DAVIT_API_TOKEN (or SPACELIFT_SERVER,\n"
    "SPACELIFT_API_TOKEN), and DAVIT_CA_FILE for a private CA. See docs/cli.md.\n";

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("davit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

void cli_print_json(const json_t *obj)
{
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text)
        puts(text);
    free(text);
}

const char *cli_field(const json_t *obj, const char *key, char *buf)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "yes" : "no";
    return "-";
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("davit %s\n", DAVIT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "server") == 0) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
        return server_main(argc - 1, argv + 1, self);
    }
    struct cli c = {0};
    int n = 0;
    for (int i = 0; i < argc; i++) { /* --json may go anywhere */
        if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    char var[ENV_NAME_MAX];
    c.server = env_get("SERVER", var, sizeof(var));
    if (!c.server)
        return cli_usage("%s is not set: export DAVIT_SERVER=https://davit.example.com", var);
    c.token = env_get("API_TOKEN", var, sizeof(var));
    if (!c.token)
        return cli_usage("%s is not set (the admin API token printed by the server's first"
                         " start)",
                         var);
    c.ca_file = env_get("CA_FILE", NULL, 0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return EXIT_INTERNAL;
    int rc;
    const char *cmd = argv[1];
    if (strcmp(cmd, "pool") == 0)
        rc = cli_pool(&c, argc - 1, argv + 1);
    else if (strcmp(cmd, "run") == 0)
        rc = cli_run(&c, argc - 1, argv + 1);
    else if (strcmp(cmd, "worker") == 0)
        rc = cli_worker(&c, argc - 1, argv + 1);
    else if (strcmp(cmd, "release") == 0)
        rc = cli_release(&c, argc - 1, argv + 1);
    else
        rc = cli_usage("unknown command \"%s\" (see davit --help)", cmd);
    curl_global_cleanup();
    return rc;
}
