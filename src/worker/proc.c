#include "worker/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the child sends back when a step before exec fails. */
struct child_failure {
    int step;
    int err;
};

enum {
    STEP_PGID,
    STEP_STDIN,
    STEP_DUP,
    STEP_SETGROUPS,
    STEP_SETGID,
    STEP_SETUID,
    STEP_CHDIR,
    STEP_EXEC
};

static const char *step_names[] = {"setpgid", "open /dev/null", "dup2",  "setgroups",
                                   "setgid",  "setuid",         "chdir", ("exec " PROC_SHELL)};

/* Runs in the child: async-signal-safe calls only. Never returns. */
static void child(const struct proc_spec *spec, int out_w, int err_w, int report)
{
    struct child_failure f = {0, 0};
    sigset_t none;

    /* The worker blocks signals to read them from a signalfd; a command must
     * start with the defaults, or it would not die of SIGTERM. */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    f.step = STEP_PGID;
    if (setpgid(0, 0) < 0)
        goto fail;
    f.step = STEP_STDIN;
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0)
        goto fail;
    f.step = STEP_DUP;
    if (dup2(in, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        goto fail;
    if (in != 0)
        close(in);
    if (spec->has_user) {
        f.step = STEP_SETGROUPS;
        if (setgroups(0, NULL) < 0)
            goto fail;
        f.step = STEP_SETGID;
        if (setgid(spec->gid) < 0)
            goto fail;
        f.step = STEP_SETUID;
        if (setuid(spec->uid) < 0)
            goto fail;
    }
    f.step = STEP_CHDIR;
    if (chdir(spec->cwd) < 0)
        goto fail;
    f.step = STEP_EXEC;
    char *const argv[] = {"sh", "-c", (char *)spec->command, NULL};
    execve(PROC_SHELL, argv, spec->envp);
fail:
    f.err = errno;
    (void)!write(report, &f, sizeof(f));
    _exit(127);
}

int proc_spawn(const struct proc_spec *spec, struct proc *p, char *err, size_t errsz)
{
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        snprintf(err, errsz, "pipe: %s", strerror(errno));
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errsz, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        child(spec, out[1], errp[1], rep[1]);

    /* Also here, so that the group exists before we might signal it. */
    setpgid(pid, pid);
    close(out[1]);
    close(errp[1]);
    close(rep[1]);
    out[1] = errp[1] = rep[1] = -1;

    struct child_failure f;
    ssize_t n;
    do
        n = read(rep[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(rep[0]);
    rep[0] = -1;
    if (n == (ssize_t)sizeof(f)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (f.step == STEP_CHDIR)
            snprintf(err, errsz, "chdir %s: %s", spec->cwd, strerror(f.err));
        else
            snprintf(err, errsz, "%s: %s", step_names[f.step], strerror(f.err));
        goto fail;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    /* Best effort (the system's limit may be lower): a phase printing fast
     * writes on while the worker records, instead of waiting on 64 KiB. */
    fcntl(out[0], F_SETPIPE_SZ, PROC_PIPE_SIZE);
    fcntl(errp[0], F_SETPIPE_SZ, PROC_PIPE_SIZE);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = errp[0];
    return 0;

fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
        if (rep[i] >= 0)
            close(rep[i]);
    }
    return -1;
}
