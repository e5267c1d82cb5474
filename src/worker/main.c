/*
 * davit-worker: PID 1 of a run's container.
 *
 * Reads the run directory (docs/run-directory.md), runs the phases, records
 * everything in the spool, and exits with the outcome's code (outcome.h).
 * It is built static with musl so that it runs in any image, even one with
 * no libc at all.
 */
#include "common/outcome.h"
#include "worker/recorder.h"
#include "worker/rundir.h"
#include "worker/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage[] =
    "usage: davit-worker [--run-dir DIR]\n"
    "\n"
    "Runs the phases described by a run directory and records them in its spool.\n"
    "It is meant to be PID 1 of a container started by davit-launcher.\n"
    "\n"
    "  --run-dir DIR  the run directory (default " RUNDIR_DEFAULT_PATH ")\n"
    "  --help         show this help\n"
    "  --version      show the version\n"
    "\n"
    "Exit codes: 0 finished, 1 failed, 3 timed_out, 4 canceled,\n"
    "            2 bad arguments or run directory, 70 the spool cannot be written.\n";

int main(int argc, char **argv)
{
    const char *dir = RUNDIR_DEFAULT_PATH;
    struct rundir rd;
    struct recorder rec = {.fd = -1};
    unsigned char key[SPOOL_KEY_LEN];
    char err[512];
    int fatal = 0;

    /* Before anything else: a non-dumpable process's memory cannot be read
     * through /proc or ptrace by a phase without CAP_SYS_PTRACE, even one
     * running as root; the run key will be in it (docs/run-directory.md,
     * "Integrity of the spool"). */
    if (prctl(PR_SET_DUMPABLE, 0) < 0) {
        fprintf(stderr, "davit-worker: cannot make itself non-dumpable: %s\n", strerror(errno));
        return EXIT_INTERNAL;
    }

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("davit-worker %s\n", DAVIT_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--run-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            fprintf(stderr, "davit-worker: unknown argument \"%s\" (see --help)\n", argv[i]);
            return EXIT_USAGE;
        }
    }

    /* Block signals first: a cancel that arrives while we read the run
     * directory must not be lost. */
    int sigfd = runner_signals_setup();
    if (sigfd < 0) {
        fprintf(stderr, "davit-worker: cannot set up signal handling: %s\n", strerror(errno));
        return EXIT_INTERNAL;
    }
    /* Outside a container, adopt orphans the way PID 1 does, so that they
     * are reaped by us in both cases. */
    if (getpid() != 1)
        prctl(PR_SET_CHILD_SUBREAPER, 1);

    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "davit-worker: run directory %s: %s\n", dir, strerror(errno));
        close(sigfd);
        return EXIT_USAGE;
    }
    /* The key leaves the disk before any phase exists. Without it nothing
     * can be recorded that the launcher would believe. */
    if (rundir_take_key(dirfd, key, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit-worker: run directory %s: %s\n", dir, err);
        close(dirfd);
        close(sigfd);
        return EXIT_USAGE;
    }
    if (rundir_load(dirfd, &rd, err, sizeof(err)) < 0) {
        fprintf(stderr, "davit-worker: run directory %s: %s\n", dir, err);
        /* Record the reason too, where the launcher looks for it. */
        char err2[256];
        int opened = recorder_open(&rec, dirfd, key, 0, err2, sizeof(err2)) == 0;
        explicit_bzero(key, sizeof(key));
        if (opened) {
            recorder_printf(&rec, 'R', "",
                            "outcome=failed phase=- exit=-1 duration_ms=0 reason=bad run "
                            "directory: %s",
                            err);
            recorder_sync(&rec);
            recorder_close(&rec);
        }
        close(dirfd);
        close(sigfd);
        return EXIT_USAGE;
    }
    int opened = recorder_open(&rec, dirfd, key, rd.echo, err, sizeof(err)) == 0;
    /* The recorder keeps only the MAC state derived from it. */
    explicit_bzero(key, sizeof(key));
    if (!opened) {
        fprintf(stderr, "davit-worker: run directory %s: %s\n", dir, err);
        rundir_free(&rd);
        close(dirfd);
        close(sigfd);
        return EXIT_USAGE;
    }

    enum outcome o = runner_run(&rd, &rec, sigfd, &fatal);
    if (fatal)
        fprintf(stderr, "davit-worker: run %s: cannot write %s/spool: %s\n", rd.run_id, dir,
                strerror(rec.failed));
    recorder_close(&rec);
    rundir_free(&rd);
    close(dirfd);
    return fatal ? EXIT_INTERNAL : outcome_exit_code(o);
}
