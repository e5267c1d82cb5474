/*
 * davit-launcher: the agent on a worker machine. This file is its command
 * line; `exec` runs one spec on the local Docker Engine with no server
 * (docs/launcher.md).
 */
#include "common/dbuf.h"
#include "common/fsutil.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/outcome.h"
#include "common/runspec.h"
#include "common/secure.h"
#include "launcher/admission.h"
#include "launcher/config.h"
#include "launcher/daemon.h"
#include "launcher/docker.h"
#include "launcher/exec.h"
#include "launcher/printer.h"
#include "launcher/state.h"
#include "launcher/supervisor.h"

#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC_CAP (16u << 20)

#define EXEC_USAGE "davit-launcher exec [--json] [--worker PATH] SPEC.json"

/* What --help, -h and help print on stdout. A usage error prints one line
 * on stderr instead, ending with EXEC_USAGE or a pointer to --help. */
static const char usage_text[] =
    "usage: davit-launcher [--ephemeral]\n"
    "       " EXEC_USAGE "\n"
    "       davit-launcher --help | --version\n"
    "\n"
    "With no command, davit-launcher is the agent of a worker pool: it registers\n"
    "with the server named in DAVIT_TOKEN (proving it holds DAVIT_POOL_PRIVATE_KEY),\n"
    "takes runs and executes them in containers until it is drained (SIGTERM: exit\n"
    "0), cycled (exit 75) or its token is reset (exit 2). See docs/launcher.md.\n"
    "With --ephemeral (or DAVIT_EPHEMERAL=1) it takes one run, finishes it and\n"
    "exits 0.\n"
    "\n"
    "exec runs the run spec SPEC.json (\"-\" for stdin) in a container on the local\n"
    "Docker Engine, prints its output, and exits with its outcome:\n"
    "  0 finished, 1 failed, 3 timed_out, 4 canceled, 2 usage or configuration\n"
    "  error, 70 internal error.\n"
    "\n"
    "  --json         print one JSON object per record instead of text lines\n"
    "  --worker PATH  the davit-worker binary (default: DAVIT_WORKER_BINARY, else\n"
    "                 davit-worker next to davit-launcher)\n"
    "\n"
    "Configuration is read from DAVIT_* variables (SPACELIFT_* are aliases) and\n"
    "DOCKER_HOST; see docs/configuration.md.\n";

static int help(void)
{
    fputs(usage_text, stdout);
    return 0;
}

__attribute__((format(printf, 1, 2))) static int exec_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("davit-launcher exec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (usage: " EXEC_USAGE ")\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* The worker: given, configured, or next to this program. Checked for use. */
static int find_worker(const char *given, const char *configured, char *out, size_t size, char *err,
                       size_t errsz)
{
    char path[PATH_MAX];
    if (given)
        snprintf(path, sizeof(path), "%s", given);
    else if (configured)
        snprintf(path, sizeof(path), "%s", configured);
    else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            snprintf(err, errsz, "worker binary: cannot find davit-launcher itself: %s",
                     strerror(errno));
            return -1;
        }
        self[n] = '\0';
        snprintf(path, sizeof(path), "%s/davit-worker", dirname(self));
    }
    (void)size; /* out is PATH_MAX bytes (fsutil_executable) */
    char why[PATH_MAX + 64];
    if (fsutil_executable(path, out, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "worker binary %s", why);
        return -1;
    }
    return 0;
}

/* sha256 of the spec in canonical JSON, to recognise a run to resume. */
static int spec_digest(const struct runspec *spec, char *hex)
{
    json_t *j = runspec_to_json(spec, 1);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int rc = -1;
    if (text && EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL) == 1) {
        hex_encode(md, len, hex);
        rc = 0;
    }
    if (text)
        explicit_bzero(text, strlen(text));
    free(text);
    json_decref(j);
    return rc;
}

static int read_spec(const char *path, struct runspec **spec, char *err, size_t errsz)
{
    struct dbuf text = DBUF_INIT(SPEC_CAP);
    int rc = -1;
    if (dbuf_read_file(&text, strcmp(path, "-") == 0 ? "/dev/stdin" : path) < 0) {
        snprintf(err, errsz, "%s: %s", path,
                 errno == ENOSPC ? "larger than 16 MiB" : strerror(errno));
        goto done;
    }
    char perr[1024];
    if (runspec_parse(dbuf_str(&text), text.len, spec, perr, sizeof(perr)) < 0) {
        snprintf(err, errsz, "%s: %s", path, perr);
        goto done;
    }
    if ((*spec)->n_sealed) { /* rather than a run without them */
        snprintf(err, errsz,
                 "%s: sealed: only the daemon opens sealed secrets; give exec plain \"secrets\"",
                 path);
        runspec_free(*spec);
        *spec = NULL;
        goto done;
    }
    rc = 0;
done:
    if (text.data)
        explicit_bzero(text.data, text.len);
    dbuf_free(&text);
    return rc;
}

/* exec's arguments. Returns -1 to go on, else the exit code (after --help or a usage error). */
static int parse_exec_args(int argc, char **argv, int *json, const char **worker_arg,
                           const char **spec_path)
{
    /* --help anywhere wins over any mistake around it. */
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return help();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = 1;
        else if (strcmp(argv[i], "--worker") == 0 && i + 1 < argc)
            *worker_arg = argv[++i];
        else if (strcmp(argv[i], "--worker") == 0)
            return exec_usage_error("--worker needs a PATH");
        else if (strncmp(argv[i], "--worker=", 9) == 0)
            *worker_arg = argv[i] + 9;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            /* named up to any '=', as the davit CLI does */
            size_t n = strcspn(argv[i], "=");
            return exec_usage_error("%.*s: unknown option", (int)(n > 64 ? 64 : n), argv[i]);
        } else if (*spec_path)
            return exec_usage_error("one SPEC.json only");
        else
            *spec_path = argv[i];
    }
    if (!*spec_path)
        return exec_usage_error("SPEC.json is missing");
    return -1;
}

static int cmd_exec(int argc, char **argv)
{
    const char *worker_arg = NULL, *spec_path = NULL;
    int json = 0, code = EXIT_INTERNAL;
    struct launcher_config cfg;
    struct runspec *spec = NULL;
    struct docker *docker = NULL;
    struct state state = {.lock_fd = -1};
    char err[2048], worker[PATH_MAX], sha[65];
    int sigfd = -1, have_state = 0, have_cfg = 0;

    int parsed = parse_exec_args(argc, argv, &json, &worker_arg, &spec_path);
    if (parsed >= 0)
        return parsed;

    /* Cancel arrives through a signalfd, read where the supervisor waits;
     * blocked first, so that a signal during set-up is a cancel too. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        return log_fail(EXIT_INTERNAL, "signalfd: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    if (config_load(&cfg, err, sizeof(err)) < 0) {
        close(sigfd);
        return log_fail(EXIT_USAGE, "configuration: %s", err);
    }
    have_cfg = 1;
    log_setup(cfg.log_format, cfg.debug, stderr);
    if (read_spec(spec_path, &spec, err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "run spec %s", err);
        goto done;
    }
    if (admission_setup(&cfg, err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "%s", err);
        goto done;
    }
    if (admission_check(&cfg, spec, 0, cfg.pool, err, sizeof(err)) < 0) {
        code = log_fail(outcome_exit_code(OUTCOME_FAILED), "run %s", err);
        goto done;
    }
    if (find_worker(worker_arg, cfg.worker_binary, worker, sizeof(worker), err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "%s", err);
        goto done;
    }
    if (spec_digest(spec, sha) < 0) {
        code = log_fail(EXIT_INTERNAL, "cannot hash the run spec");
        goto done;
    }

    if (state_open(&state, cfg.state_dir, err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "%s", err);
        goto done;
    }
    have_state = 1;
    if (docker_open(&docker, cfg.docker_host, cfg.docker_timeout_ms, cfg.debug, err, sizeof(err)) <
            0 ||
        docker_ping(docker, err, sizeof(err)) < 0) {
        code = log_fail(EXIT_USAGE, "%s", err);
        goto done;
    }

    struct printer printer;
    printer_init(&printer, stdout, json ? PRINTER_JSON : PRINTER_TEXT, "-");
    struct supervisor sup = {.cfg = &cfg, .docker = docker, .state = &state};
    struct run_result res;
    int xc = EXIT_INTERNAL;
    if (exec_run(&sup, &printer, sigfd, spec, sha, worker, &res, &xc, err, sizeof(err)) < 0) {
        code = log_fail(xc, "%s", err);
        goto done;
    }
    printer_result(&printer, res.outcome, res.phase, res.exit_status, res.duration_ms, res.reason);
    printer_flush(&printer);
    code = outcome_exit_code(res.outcome);

done:
    docker_close(docker);
    if (have_state)
        state_close(&state);
    if (sigfd >= 0)
        close(sigfd);
    runspec_free(spec);
    if (have_cfg)
        config_free(&cfg);
    return code;
}

int main(int argc, char **argv)
{
    /* Runs' secrets and the session token come in JSON: every block jansson frees is wiped
     * (common/secure.h). */
    json_set_alloc_funcs(malloc, secure_free);
    /* --ephemeral is DAVIT_EPHEMERAL=1, which config.c reads. */
    if (argc == 2 && strcmp(argv[1], "--ephemeral") == 0 && setenv("DAVIT_EPHEMERAL", "1", 1) == 0)
        argc = 1;
    if (argc < 2) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            fprintf(stderr, "davit-launcher: curl_global_init failed\n");
            return EXIT_INTERNAL;
        }
        int code = daemon_main();
        curl_global_cleanup();
        return code;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0)
        return help();
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("davit-launcher %s\n", DAVIT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "exec") == 0) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            fprintf(stderr, "davit-launcher: curl_global_init failed\n");
            return EXIT_INTERNAL;
        }
        int code = cmd_exec(argc, argv);
        curl_global_cleanup();
        return code;
    }
    fprintf(stderr, "davit-launcher: unknown command \"%.64s\" (see davit-launcher --help)\n",
            argv[1]);
    return EXIT_USAGE;
}
