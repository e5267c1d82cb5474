/* Run admission on the launcher (admission.h). */
#include "launcher/admission.h"

#include "common/clock.h"
#include "common/duration.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The hook's stderr kept for its first line; the rest is read and dropped. */
#define HOOK_STDERR_MAX 4096
/* How long a refusal's reason taken from the hook may be. */
#define HOOK_REASON_MAX 200
/* The wait for the hook's exit after it closed its pipes. */
#define HOOK_REAP_STEP_MS 10

int admission_setup(struct launcher_config *c, char *err, size_t errsz)
{
    if (!c->init_hook)
        return 0;
    char path[PATH_MAX], why[PATH_MAX + 64];
    if (fsutil_executable(c->init_hook, path, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK %s", why);
        return -1;
    }
    char *resolved = strdup(path);
    if (!resolved) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    free(c->init_hook);
    c->init_hook = resolved;
    return 0;
}

int admission_normalise(const char *image, char *out, size_t size)
{
    const char *slash = strchr(image, '/');
    size_t first = slash ? (size_t)(slash - image) : strlen(image);
    /* Docker's rule: the first component is a registry when it looks like a host. */
    int has_registry = slash && (memchr(image, '.', first) || memchr(image, ':', first) ||
                                 (first == 9 && strncmp(image, "localhost", 9) == 0));
    const char *last = strrchr(image, '/');
    last = last ? last + 1 : image;
    int tagged = strchr(last, ':') != NULL || strchr(image, '@') != NULL;
    int n;
    if (has_registry)
        n = snprintf(out, size, "%s%s", image, tagged ? "" : ":latest");
    else
        n = snprintf(out, size, "docker.io/%s%s%s", slash ? "" : "library/", image,
                     tagged ? "" : ":latest");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Pattern check; 0 when allowed (or no list is set). */
static int image_allowed(const struct launcher_config *c, const char *image, char *reason,
                         size_t rsz)
{
    char norm[1100];
    if (c->n_allowed_images == 0)
        return 0;
    if (admission_normalise(image, norm, sizeof(norm)) < 0) {
        snprintf(reason, rsz, "refused by DAVIT_ALLOWED_IMAGES: the image name is too long");
        return -1;
    }
    for (size_t i = 0; i < c->n_allowed_images; i++)
        if (fnmatch(c->allowed_images[i], norm, 0) == 0)
            return 0;
    snprintf(reason, rsz,
             "refused by DAVIT_ALLOWED_IMAGES: image %.512s matches no allowed pattern", norm);
    return -1;
}

/* The hook's first stderr line, printable ASCII only, into reason. */
static void first_line(const char *text, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && text[i] != '\n' && o + 1 < size && o < HOOK_REASON_MAX; i++)
        out[o++] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/*
 * Sealed secrets are still boxes at admission (unseal.h): the hook gets them as "secrets" with
 * each name and "***", the input plain secrets give, so it does not depend on how they came.
 * Returns 0, or -1 when out of memory.
 */
static int mask_sealed(json_t *s, const struct runspec *spec)
{
    json_t *names = json_object();
    if (!names || json_object_set_new(s, "secrets", names) < 0) {
        json_decref(names);
        return -1;
    }
    for (size_t i = 0; i < spec->n_sealed; i++)
        if (json_object_set_new(names, spec->sealed[i].name, json_string("***")) < 0)
            return -1;
    return 0;
}

/* What the hook reads: the run's id and pool, and the spec with secrets' values masked. */
static char *hook_input(const struct runspec *spec, int64_t run_id, const char *pool)
{
    json_t *s = runspec_to_json(spec, 0);
    if (s && spec->n_sealed && mask_sealed(s, spec) < 0) {
        json_decref(s);
        s = NULL;
    }
    json_t *in = s ? json_pack("{s:I, s:s, s:o}", "run_id", (json_int_t)run_id, "pool",
                               pool ? pool : "", "spec", s)
                   : NULL;
    char *text = in ? json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(in);
    return text;
}

struct hook_io {
    int in_fd, err_fd;
    const char *input;
    size_t input_len, written;
    char err[HOOK_STDERR_MAX];
    size_t err_len;
};

/* Feeds stdin and drains stderr until both are done or deadline passes. 0, or -1 on timeout. */
static int hook_pump(struct hook_io *io, int64_t deadline)
{
    while (io->in_fd >= 0 || io->err_fd >= 0) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd p[2] = {{io->in_fd, POLLOUT, 0}, {io->err_fd, POLLIN, 0}};
        if (poll(p, 2, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR)
            return -1;
        if (io->in_fd >= 0 && p[0].revents) {
            ssize_t n = write(io->in_fd, io->input + io->written, io->input_len - io->written);
            if (n > 0)
                io->written += (size_t)n;
            /* EPIPE: the hook decided without reading it all; that is its right. */
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || io->written == io->input_len) {
                close(io->in_fd);
                io->in_fd = -1;
            }
        }
        if (io->err_fd >= 0 && p[1].revents) {
            char buf[1024];
            ssize_t n = read(io->err_fd, buf, sizeof(buf));
            if (n > 0) {
                size_t keep = sizeof(io->err) - io->err_len;
                keep = (size_t)n < keep ? (size_t)n : keep;
                memcpy(io->err + io->err_len, buf, keep);
                io->err_len += keep;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(io->err_fd);
                io->err_fd = -1;
            }
        }
    }
    return 0;
}

/*
 * Waits until deadline for pid to exit, without reaping it: while it is a zombie its pid, which
 * is its process group's id, cannot be taken by another process, so the caller can kill what
 * the hook left in its group and then reap it. 1 when it exited, 0 when it is still running,
 * -1 when it cannot be waited for (the caller refuses the run).
 */
static int hook_exited(pid_t pid, int64_t deadline)
{
    for (;;) {
        siginfo_t si = {0};
        int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (w == 0 && si.si_pid == pid)
            return 1;
        if (w < 0 && errno != EINTR)
            return -1;
        if (clock_mono_ms() >= deadline)
            return 0;
        poll(NULL, 0, HOOK_REAP_STEP_MS);
    }
}

/* Starts the hook in a process group of its own, with default signals and a bare environment. */
static int hook_spawn(const struct launcher_config *c, int64_t run_id, const char *pool, int in_r,
                      int err_w, pid_t *pid)
{
    char rid[48], pl[300];
    snprintf(rid, sizeof(rid), "DAVIT_RUN_ID=%" PRId64, run_id);
    snprintf(pl, sizeof(pl), "DAVIT_POOL=%s", pool ? pool : "");
    /* Nothing of the launcher's own environment: it may hold the pool's credentials. */
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", rid, pl,
                    NULL};
    char *argv[] = {c->init_hook, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in_r, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err_w, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Nothing else of the launcher's: libcurl's internal socket pairs are not close-on-exec
     * (its connections are, curl_cloexec.h). musl has no closefrom action: there only the
     * connections are kept from the hook (docs/launcher.md). */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    int e = posix_spawn(pid, c->init_hook, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return e;
}

/* Runs the hook; 0 when it admits the run. */
static int run_hook(const struct launcher_config *c, const struct runspec *spec, int64_t run_id,
                    const char *pool, char *reason, size_t rsz)
{
    int in[2] = {-1, -1}, er[2] = {-1, -1}, status = 0, rc = -1;
    pid_t pid = -1;
    struct hook_io io = {.in_fd = -1, .err_fd = -1};
    char *input = hook_input(spec, run_id, pool);
    if (!input) {
        snprintf(reason, rsz, "the run initialization hook: cannot write the spec: out of memory");
        goto done;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
        snprintf(reason, rsz, "the run initialization hook: pipe: %s", strerror(errno));
        goto done;
    }
    int e = hook_spawn(c, run_id, pool, in[0], er[1], &pid);
    close(in[0]);
    close(er[1]);
    in[0] = er[1] = -1;
    if (e != 0) {
        pid = -1;
        snprintf(reason, rsz, "the run initialization hook %s: cannot start it: %s", c->init_hook,
                 strerror(e));
        goto done;
    }
    io.in_fd = in[1];
    io.err_fd = er[0];
    in[1] = er[0] = -1;
    fcntl(io.in_fd, F_SETFL, O_NONBLOCK);
    fcntl(io.err_fd, F_SETFL, O_NONBLOCK);
    io.input = input;
    io.input_len = strlen(input);
    int64_t deadline = clock_mono_ms() + c->init_hook_timeout_ms;
    int exited = hook_pump(&io, deadline) < 0 ? 0 : hook_exited(pid, deadline);
    if (exited < 0) {
        snprintf(reason, rsz, "refused: the run initialization hook cannot be waited for: %s",
                 strerror(errno));
        goto done; /* killed and reaped there */
    }
    if (!exited) {
        char d[32];
        kill(-pid, SIGKILL); /* the hook and whatever it started */
        waitpid(pid, &status, 0);
        pid = -1;
        snprintf(reason, rsz,
                 "refused: the run initialization hook did not finish within %s "
                 "(DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT)",
                 duration_format(c->init_hook_timeout_ms, d, sizeof(d)));
        goto done;
    }
    /* What the hook started and left behind goes with it, on every path. */
    kill(-pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid) {
        pid = -1;
        snprintf(reason, rsz, "refused: the run initialization hook cannot be reaped: %s",
                 strerror(errno));
        goto done;
    }
    pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = 0;
        goto done;
    }
    char line[HOOK_REASON_MAX + 1];
    first_line(io.err, io.err_len, line, sizeof(line));
    if (line[0])
        snprintf(reason, rsz, "refused by the run initialization hook: %s", line);
    else if (WIFEXITED(status))
        snprintf(reason, rsz, "refused by the run initialization hook (exit code %d)",
                 WEXITSTATUS(status));
    else
        snprintf(reason, rsz, "refused by the run initialization hook (killed by signal %d)",
                 WTERMSIG(status));
done:
    if (pid > 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (er[i] >= 0)
            close(er[i]);
    }
    if (io.in_fd >= 0)
        close(io.in_fd);
    if (io.err_fd >= 0)
        close(io.err_fd);
    free(input);
    return rc;
}

int admission_check(const struct launcher_config *c, struct runspec *spec, int64_t run_id,
                    const char *pool, char *reason, size_t rsz)
{
    char rid[24];
    snprintf(rid, sizeof(rid), "%" PRId64, run_id);
    if (!spec->image) {
        if (!c->default_image) {
            snprintf(reason, rsz,
                     "refused: the spec names no image and this launcher has no "
                     "DAVIT_DEFAULT_RUNNER_IMAGE");
            goto refused;
        }
        if (!(spec->image = strdup(c->default_image))) {
            snprintf(reason, rsz, "refused: out of memory");
            goto refused;
        }
    }
    if (image_allowed(c, spec->image, reason, rsz) < 0)
        goto refused;
    if (c->init_hook && run_hook(c, spec, run_id, pool, reason, rsz) < 0)
        goto refused;
    return 0;
refused:
    log_event(LOG_WARN, "run refused", "run", rid, "reason", reason, (const char *)NULL);
    return -1;
}
