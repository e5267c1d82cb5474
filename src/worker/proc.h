/*
 * proc: starts one command of a phase as `/bin/sh -c COMMAND` in a process
 * group of its own, with its stdout and stderr on pipes.
 *
 * The child's set-up (process group, user, working directory, signal mask)
 * happens between fork and exec; if any step fails, the child reports the
 * step and errno back through a close-on-exec pipe, so that the caller gets
 * "chdir /mnt/workspace: No such file or directory" rather than a bare exit
 * code 127.
 */
#ifndef DAVIT_WORKER_PROC_H
#define DAVIT_WORKER_PROC_H

#include <stddef.h>
#include <sys/types.h>

#define PROC_SHELL     "/bin/sh"
#define PROC_PIPE_SIZE (1024 * 1024) /* asked for each output pipe (F_SETPIPE_SZ) */

struct proc_spec {
    const char *command;
    char *const *envp;
    const char *cwd;
    int has_user;
    uid_t uid;
    gid_t gid;
};

struct proc {
    pid_t pid;  /* also the process group id */
    int out_fd; /* read ends, non-blocking, close-on-exec */
    int err_fd;
};

/*
 * Starts spec->command. Returns 0 and fills p, or -1 with err set. The
 * caller reaps the child and closes the two descriptors.
 */
int proc_spawn(const struct proc_spec *spec, struct proc *p, char *err, size_t errsz);

#endif
