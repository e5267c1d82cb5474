#include "worker/runner.h"

#include "common/clock.h"

#include "common/duration.h"
#include "common/spool.h"
#include "worker/output.h"
#include "worker/proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PASSWD_FILE  "/etc/passwd"
/* After a command exits, read at most this much more of what it left in its
 * pipes: a background process that keeps writing must not stall the run. */
#define DRAIN_MAX (4 * 1024 * 1024)
/*
 * Output that keeps arriving is gathered into records of up to
 * OUTPUT_FEED_MAX bytes, held at most COALESCE_MS from its first byte. The
 * first read after a pause is recorded at once, so a line a user waits for is
 * never held: only output that follows other output within COALESCE_MS is.
 * (One record per read made a 500 MB phase about 700,000 records.)
 */
#define COALESCE_MS 5

/* The signals the worker takes from its signalfd. */
static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT,   SIGQUIT, SIGHUP,
                                      SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE};

struct runner {
    const struct rundir *rd;
    struct recorder *rec;
    struct mask_set masks;
    int sigfd;
    char **env;   /* the phases' base environment, NULL-terminated */
    size_t n_env; /* entries in env, without the NULL */

    int64_t run_deadline; /* monotonic ms; 0: none */
    int64_t phase_deadline;
    int64_t last_output;
    int64_t kill_deadline;

    const char *phase; /* the phase running now, "" outside phases */
    pid_t child;       /* the command running now, 0 if none */
    int child_status;  /* its wait status, once it has exited */

    /* Set once, by the first cancel or timeout: the run is stopping. */
    int stopping;
    enum outcome stop_outcome;
    char stop_phase[SPOOL_PHASE_MAX + 1];
    char stop_reason[256];
};

static void noop_handler(int sig)
{
    (void)sig;
}

int runner_signals_setup(void)
{
    sigset_t set;
    struct sigaction sa;

    sigemptyset(&set);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = noop_handler;
    /* As PID 1 in a container, a signal without a handler is dropped by the
     * kernel; the handler is never run since the signals stay blocked. */
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++) {
        sigaddset(&set, handled_signals[i]);
        sigaction(handled_signals[i], &sa, NULL);
    }
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Writes a record; a spool failure is remembered in rec and checked by the loop. */
static void note(struct runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct runner *r, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    recorder_write(r->rec, SPOOL_NOTE, r->phase, text, strlen(text));
}

/* Starts stopping the run: the first cancel or timeout decides the outcome. */
static void begin_stop(struct runner *r, enum outcome o, const char *reason)
{
    char grace[32];

    if (r->stopping)
        return;
    r->stopping = 1;
    r->stop_outcome = o;
    snprintf(r->stop_phase, sizeof(r->stop_phase), "%s", r->phase);
    snprintf(r->stop_reason, sizeof(r->stop_reason), "%s", reason);
    if (!r->child) {
        note(r, "%s", reason);
        return;
    }
    if (r->rd->kill_grace_ms > 0) {
        note(r, "%s: sending SIGTERM to the phase, SIGKILL in %s", reason,
             duration_format(r->rd->kill_grace_ms, grace, sizeof(grace)));
        kill(-r->child, SIGTERM);
        r->kill_deadline = clock_mono_ms() + r->rd->kill_grace_ms;
    } else {
        note(r, "%s: sending SIGKILL to the phase", reason);
        kill(-r->child, SIGKILL);
    }
}

static void handle_signals(struct runner *r)
{
    struct signalfd_siginfo si;
    char reason[64];

    while (read(r->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int sig = (int)si.ssi_signo;
        switch (sig) {
        case SIGCHLD: {
            int status;
            pid_t pid;
            /* Reap everything: orphans are re-parented to us as PID 1. */
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == r->child) {
                    r->child_status = status;
                    r->child = 0;
                }
            }
            break;
        }
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            snprintf(reason, sizeof(reason), "canceled by SIG%s",
                     sig == SIGTERM  ? "TERM"
                     : sig == SIGINT ? "INT"
                                     : "QUIT");
            begin_stop(r, OUTCOME_CANCELED, reason);
            break;
        case SIGPIPE:
            break;
        default:
            /* SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH: the phase may want them. */
            if (r->child)
                kill(-r->child, sig);
            break;
        }
    }
}

static void check_deadlines(struct runner *r, int64_t now)
{
    char buf[32], reason[128];

    if (r->run_deadline && now >= r->run_deadline) {
        snprintf(reason, sizeof(reason), "the run exceeded its %s timeout",
                 duration_format(r->rd->run_timeout_ms, buf, sizeof(buf)));
        begin_stop(r, OUTCOME_TIMED_OUT, reason);
    } else if (r->phase_deadline && now >= r->phase_deadline) {
        const struct run_phase *ph = NULL;
        for (size_t i = 0; i < r->rd->n_phases; i++)
            if (strcmp(r->rd->phases[i].name, r->phase) == 0)
                ph = &r->rd->phases[i];
        snprintf(reason, sizeof(reason), "phase %s exceeded its %s timeout", r->phase,
                 duration_format(ph ? ph->timeout_ms : 0, buf, sizeof(buf)));
        begin_stop(r, OUTCOME_TIMED_OUT, reason);
    } else if (r->child && r->rd->output_timeout_ms &&
               now >= r->last_output + r->rd->output_timeout_ms) {
        snprintf(reason, sizeof(reason), "no output for %s",
                 duration_format(r->rd->output_timeout_ms, buf, sizeof(buf)));
        begin_stop(r, OUTCOME_TIMED_OUT, reason);
    }
    if (r->child && r->kill_deadline && now >= r->kill_deadline) {
        note(r, "the phase did not stop within the grace period: sending SIGKILL");
        kill(-r->child, SIGKILL);
        r->kill_deadline = 0;
    }
}

/* Milliseconds until the nearest deadline, for poll(); -1 for none. */
static int next_timeout(const struct runner *r, int64_t now)
{
    int64_t t = -1;
    int64_t cand[4] = {
        r->run_deadline, r->phase_deadline, r->kill_deadline,
        r->child && r->rd->output_timeout_ms ? r->last_output + r->rd->output_timeout_ms : 0};
    for (int i = 0; i < 4; i++) {
        if (!cand[i])
            continue;
        int64_t d = cand[i] - now;
        if (d < 0)
            d = 0;
        if (t < 0 || d < t)
            t = d;
    }
    return t > 60000 ? 60000 : (int)t;
}

/* A pipe's bytes read but not yet fed to its output stream. */
struct pending {
    size_t len;
    int64_t first_ms; /* when its first byte was read */
    int64_t last_ms;  /* when the last read returned bytes; 0 never */
    char data[OUTPUT_FEED_MAX];
};

static int feed(struct runner *r, struct pending *in, struct output_stream *s)
{
    if (in->len == 0)
        return 0;
    size_t n = in->len;
    in->len = 0;
    return output_feed(s, &r->masks, r->rec, r->phase, in->data, n);
}

/* Milliseconds until in's bytes are due, for poll(); -1 when it holds none. */
static int64_t pending_due(const struct pending *in, int64_t now)
{
    if (in->len == 0)
        return -1;
    int64_t d = in->first_ms + COALESCE_MS - now;
    return d < 0 ? 0 : d;
}

/* Feeds in's bytes once they are due. Returns 0, or -1 on a spool error. */
static int feed_due(struct runner *r, struct pending *in, struct output_stream *s, int64_t now)
{
    return pending_due(in, now) == 0 ? feed(r, in, s) : 0;
}

/* Reads once from fd into in, and feeds the stream when the bytes are due (see
 * COALESCE_MS). Returns 1 while open, 0 at EOF, -1 on a spool error. */
static int pump(struct runner *r, int fd, struct pending *in, struct output_stream *s)
{
    ssize_t n = read(fd, in->data + in->len, sizeof(in->data) - in->len);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 1 : 0;
    if (n == 0)
        return 0;
    int64_t now = clock_mono_ms();
    int flowing = in->last_ms && now - in->last_ms <= COALESCE_MS;
    r->last_output = in->last_ms = now;
    if (in->len == 0)
        in->first_ms = now;
    in->len += (size_t)n;
    if (!flowing || in->len == sizeof(in->data))
        return feed(r, in, s) < 0 ? -1 : 1;
    return 1;
}

/* The command exited: take what is left in its pipes, within DRAIN_MAX (counted
 * as full reads, so that a trickle cannot keep it reading either). */
static int drain(struct runner *r, int fd, struct pending *in, struct output_stream *s)
{
    if (feed(r, in, s) < 0)
        return -1;
    for (size_t total = 0; total < DRAIN_MAX; total += OUTPUT_FEED_MAX) {
        ssize_t n = read(fd, in->data, sizeof(in->data));
        if (n <= 0)
            break;
        in->len = (size_t)n;
        if (feed(r, in, s) < 0)
            return -1;
    }
    return output_flush(s, &r->masks, r->rec, r->phase);
}

/* Appends "NAME=value" to env, owned by the caller. */
static char *env_entry(const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    char *e = malloc(n + v + 2);
    if (!e)
        return NULL;
    memcpy(e, name, n);
    e[n] = '=';
    memcpy(e + n + 1, value, v + 1);
    return e;
}

/* Builds the command's environment: the base plus the per-command variables. */
static char **command_env(struct runner *r, const char *phase_outcome)
{
    char **env = calloc(r->n_env + 5, sizeof(char *));
    if (!env)
        return NULL;
    memcpy(env, r->env, r->n_env * sizeof(char *));
    size_t n = r->n_env;
    env[n++] = env_entry("DAVIT_PHASE", r->phase);
    if (phase_outcome)
        env[n++] = env_entry("DAVIT_PHASE_OUTCOME", phase_outcome);
    for (size_t i = r->n_env; i < n; i++) {
        if (!env[i]) {
            for (size_t j = r->n_env; j < n; j++)
                free(env[j]);
            free(env);
            return NULL;
        }
    }
    return env;
}

static void free_command_env(struct runner *r, char **env)
{
    if (!env)
        return;
    for (size_t i = r->n_env; env[i]; i++)
        free(env[i]);
    free(env);
}

/* Records the command about to run, masked like any output. */
static void record_command(struct runner *r, const char *stage, const char *cmd)
{
    struct mask_stream ms;
    struct dbuf out = DBUF_INIT(4 * (RUNDIR_MAX_COMMAND + 64));

    mask_stream_init(&ms);
    if (dbuf_printf(&out, "%s ", stage) == 0 &&
        mask_feed(&r->masks, &ms, cmd, strlen(cmd), &out) == 0 &&
        mask_flush(&r->masks, &ms, &out) == 0)
        recorder_write(r->rec, SPOOL_COMMAND, r->phase, out.data, out.len);
    mask_stream_free(&ms);
    dbuf_free(&out);
}

/*
 * Runs one command to its end. Returns its status (exit code, or 128+signal),
 * or -1 when it could not start (a note says why).
 */
static int run_command(struct runner *r, const char *stage, const char *cmd,
                       const char *phase_outcome)
{
    struct proc p = {0, -1, -1};
    struct output_stream out, err;
    char why[256];
    int status = -1;

    record_command(r, stage, cmd);
    char **env = command_env(r, phase_outcome);
    if (!env) {
        note(r, "cannot start the command: out of memory");
        return -1;
    }
    struct proc_spec spec = {cmd, env, r->rd->workspace, r->rd->has_user, r->rd->uid, r->rd->gid};
    int rc = proc_spawn(&spec, &p, why, sizeof(why));
    free_command_env(r, env);
    if (rc < 0) {
        note(r, "cannot start the command: %s", why);
        return -1;
    }

    output_stream_init(&out, SPOOL_STDOUT);
    output_stream_init(&err, SPOOL_STDERR);
    struct pending in[2]; /* stdout's, stderr's */
    in[0].len = in[1].len = 0;
    in[0].last_ms = in[1].last_ms = 0;
    r->child = p.pid;
    r->last_output = clock_mono_ms();
    int out_open = 1, err_open = 1;

    while (r->child && !r->rec->failed) {
        struct pollfd fds[3] = {{r->sigfd, POLLIN, 0},
                                {out_open ? p.out_fd : -1, POLLIN, 0},
                                {err_open ? p.err_fd : -1, POLLIN, 0}};
        int64_t now = clock_mono_ms();
        int timeout = next_timeout(r, now);
        for (int i = 0; i < 2; i++) {
            int64_t due = pending_due(&in[i], now);
            if (due >= 0 && (timeout < 0 || due < timeout))
                timeout = (int)due;
        }
        int n = poll(fds, 3, timeout);
        if (n < 0 && errno != EINTR) {
            note(r, "cannot wait for the command: poll: %s; killing it", strerror(errno));
            break;
        }
        if (fds[1].revents)
            out_open = pump(r, p.out_fd, &in[0], &out);
        if (fds[2].revents)
            err_open = pump(r, p.err_fd, &in[1], &err);
        now = clock_mono_ms();
        if (feed_due(r, &in[0], &out, now) < 0 || feed_due(r, &in[1], &err, now) < 0)
            break;
        if (fds[0].revents)
            handle_signals(r);
        check_deadlines(r, clock_mono_ms());
    }
    if (!r->child) {
        drain(r, p.out_fd, &in[0], &out);
        drain(r, p.err_fd, &in[1], &err);
        status = WIFEXITED(r->child_status) ? WEXITSTATUS(r->child_status)
                                            : 128 + WTERMSIG(r->child_status);
    } else {
        /* A spool or poll failure ended the loop with the command alive. */
        kill(-p.pid, SIGKILL);
        status = 128 + SIGKILL;
        r->child = 0;
    }
    /* A stopped command's group goes entirely, background processes too. */
    if (r->stopping)
        kill(-p.pid, SIGKILL);
    r->kill_deadline = 0;
    close(p.out_fd);
    close(p.err_fd);
    output_stream_free(&out);
    output_stream_free(&err);
    return status;
}

/* Takes signals that arrived while no command was running. */
static void poll_signals(struct runner *r)
{
    handle_signals(r);
    check_deadlines(r, clock_mono_ms());
}

struct phase_result {
    const char *outcome; /* "succeeded", "failed", "timed_out", "canceled" */
    int status;          /* last command's status, -1 if none ran */
    char reason[256];    /* why it failed */
};

/* Runs a list; stops at the first failure. Returns 0 if all succeeded. */
static int run_list(struct runner *r, const struct run_list *l, const char *stage, const char *what,
                    const char *phase_outcome, struct phase_result *res)
{
    for (size_t i = 0; i < l->n; i++) {
        poll_signals(r);
        if (r->stopping || r->rec->failed)
            return -1;
        int st = run_command(r, stage, l->items[i], phase_outcome);
        res->status = st;
        if (r->stopping)
            return -1;
        if (st == 0)
            continue;
        if (st < 0)
            snprintf(res->reason, sizeof(res->reason), "%s %zu of phase %s could not start", what,
                     i + 1, r->phase);
        else if (st > 128)
            snprintf(res->reason, sizeof(res->reason), "%s %zu of phase %s was killed by %s", what,
                     i + 1, r->phase, strsignal(st - 128));
        else
            snprintf(res->reason, sizeof(res->reason), "%s %zu of phase %s exited with code %d",
                     what, i + 1, r->phase, st);
        return -1;
    }
    return 0;
}

static void run_phase(struct runner *r, const struct run_phase *ph, struct phase_result *res)
{
    int64_t start = clock_mono_ms();

    r->phase = ph->name;
    r->phase_deadline = ph->timeout_ms ? start + ph->timeout_ms : 0;
    res->status = -1;
    res->reason[0] = '\0';
    recorder_write(r->rec, SPOOL_PHASE_START, r->phase, "", 0);

    int ok = run_list(r, &ph->before, "before", "before hook", NULL, res) == 0 &&
             run_list(r, &ph->commands, "run", "command", NULL, res) == 0;
    if (!r->stopping && !r->rec->failed) {
        /* After hooks run after success and failure alike, and see which. */
        struct phase_result after = *res;
        int after_ok = run_list(r, &ph->after, "after", "after hook", ok ? "succeeded" : "failed",
                                &after) == 0;
        /* The first failure is the one reported; a failed command's status
         * is not hidden by the after hooks that followed it. */
        if (ok && !r->stopping)
            *res = after;
        ok = ok && after_ok;
    }
    if (r->stopping)
        res->outcome = outcome_name(r->stop_outcome);
    else
        res->outcome = ok ? "succeeded" : "failed";
    recorder_printf(r->rec, SPOOL_PHASE_END, r->phase, "outcome=%s exit=%d duration_ms=%lld",
                    res->outcome, res->status, (long long)(clock_mono_ms() - start));
    r->phase_deadline = 0;
    r->phase = "";
}

/*
 * The home directory of uid in the image's passwd file (path), into out:
 * the sixth field of the first line whose third is uid, when it is an
 * absolute path. A plain colon split, no NSS: the image may have no libc.
 * Returns 0, or -1 when there is no such entry (or no file).
 */
static int passwd_home(const char *path, uid_t uid, char *out, size_t size)
{
    char line[4096];
    int found = -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        char *field[7], *p = line;
        size_t n = 0;
        line[strcspn(line, "\n")] = '\0';
        while (n < 7) {
            field[n++] = p;
            p = strchr(p, ':');
            if (!p)
                break;
            *p++ = '\0';
        }
        if (n < 6 || !*field[2] || strspn(field[2], "0123456789") != strlen(field[2]))
            continue;
        errno = 0;
        unsigned long long v = strtoull(field[2], NULL, 10);
        if (errno || v != (unsigned long long)uid || field[5][0] != '/' || strlen(field[5]) >= size)
            continue;
        snprintf(out, size, "%s", field[5]);
        found = 0;
    }
    fclose(f);
    return found;
}

/* HOME for the phases' user: its passwd entry, else /root for root, else the workspace. */
static void phase_home(const struct rundir *rd, char *out, size_t size)
{
    uid_t uid = rd->has_user ? rd->uid : geteuid();
    if (passwd_home(PASSWD_FILE, uid, out, size) == 0)
        return;
    snprintf(out, size, "%s", uid == 0 ? "/root" : rd->workspace);
}

/*
 * environ, then env/, then secrets/ (later wins), then the worker's own.
 * HOME is the worker's too (phase_home) unless env/ or secrets/ set it: the
 * container's own is the worker's, root's, whatever user the phases run as.
 */
static int build_base_env(struct runner *r)
{
    extern char **environ;
    const struct rundir *rd = r->rd;
    size_t cap = rd->n_vars + 5;
    int has_path = 0, has_home = 0;
    char home[4096];

    for (char **e = environ; *e; e++)
        cap++;
    r->env = calloc(cap + 1, sizeof(char *));
    if (!r->env)
        return -1;
    for (char **e = environ; *e; e++) {
        size_t nl = strcspn(*e, "=");
        int overridden = strncmp(*e, "DAVIT_", 6) == 0 || strncmp(*e, "HOME=", 5) == 0;
        for (size_t i = 0; i < rd->n_vars && !overridden; i++)
            overridden = strlen(rd->vars[i].name) == nl && strncmp(*e, rd->vars[i].name, nl) == 0;
        if (overridden)
            continue;
        has_path |= strncmp(*e, "PATH=", 5) == 0;
        if (!(r->env[r->n_env++] = strdup(*e)))
            return -1;
    }
    for (size_t i = 0; i < rd->n_vars; i++) {
        int later = 0;
        for (size_t j = i + 1; j < rd->n_vars && !later; j++)
            later = strcmp(rd->vars[i].name, rd->vars[j].name) == 0;
        if (later)
            continue;
        has_path |= strcmp(rd->vars[i].name, "PATH") == 0;
        has_home |= strcmp(rd->vars[i].name, "HOME") == 0;
        if (!(r->env[r->n_env++] = env_entry(rd->vars[i].name, rd->vars[i].value)))
            return -1;
    }
    if (!(r->env[r->n_env++] = env_entry("DAVIT_RUN_ID", rd->run_id)) ||
        !(r->env[r->n_env++] = env_entry("DAVIT_WORKSPACE", rd->workspace)))
        return -1;
    if (!has_path && !(r->env[r->n_env++] = env_entry("PATH", DEFAULT_PATH)))
        return -1;
    if (!has_home) {
        phase_home(rd, home, sizeof(home));
        if (!(r->env[r->n_env++] = env_entry("HOME", home)))
            return -1;
    }
    return 0;
}

static void free_base_env(struct runner *r)
{
    for (size_t i = 0; r->env && i < r->n_env; i++)
        free(r->env[i]);
    free(r->env);
    r->env = NULL;
}

/* Creates the workspace and hands it to the phases' user. */
static int prepare_workspace(const struct rundir *rd, char *err, size_t errsz)
{
    if (mkdir(rd->workspace, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "workspace %s: cannot create: %s", rd->workspace, strerror(errno));
        return -1;
    }
    if (rd->has_user && chown(rd->workspace, rd->uid, rd->gid) < 0) {
        snprintf(err, errsz, "workspace %s: cannot give it to %u:%u: %s", rd->workspace,
                 (unsigned)rd->uid, (unsigned)rd->gid, strerror(errno));
        return -1;
    }
    return 0;
}

enum outcome runner_run(const struct rundir *rd, struct recorder *rec, int sigfd, int *fatal)
{
    struct runner r = {.rd = rd, .rec = rec, .sigfd = sigfd, .phase = ""};
    struct phase_result res = {"", -1, ""};
    enum outcome outcome = OUTCOME_FINISHED;
    const char *decider = "";
    int64_t start = clock_mono_ms();
    char reason[256];
    size_t done = 0;

    mask_set_init(&r.masks);
    if (rd->n_phases == 1)
        snprintf(reason, sizeof(reason), "the phase succeeded");
    else
        snprintf(reason, sizeof(reason), "all %zu phases succeeded", rd->n_phases);
    if (rd->run_timeout_ms)
        r.run_deadline = start + rd->run_timeout_ms;
    for (size_t i = 0; i < rd->n_vars; i++) {
        if (rd->vars[i].secret &&
            mask_set_add(&r.masks, rd->vars[i].value, strlen(rd->vars[i].value)) < 0) {
            outcome = OUTCOME_FAILED;
            snprintf(reason, sizeof(reason), "secret %s cannot be masked: %s", rd->vars[i].name,
                     strerror(errno));
            goto result;
        }
    }
    if (build_base_env(&r) < 0) {
        outcome = OUTCOME_FAILED;
        snprintf(reason, sizeof(reason), "cannot build the environment: out of memory");
        goto result;
    }
    if (prepare_workspace(rd, reason, sizeof(reason)) < 0) {
        outcome = OUTCOME_FAILED;
        goto result;
    }

    for (; done < rd->n_phases && !rec->failed; done++) {
        poll_signals(&r);
        if (r.stopping)
            break;
        run_phase(&r, &rd->phases[done], &res);
        if (r.stopping) {
            done++;
            break;
        }
        if (strcmp(res.outcome, "failed") == 0) {
            outcome = OUTCOME_FAILED;
            decider = rd->phases[done].name;
            memcpy(reason, res.reason, sizeof(reason));
            done++;
            break;
        }
    }
    if (r.stopping) {
        outcome = r.stop_outcome;
        decider = r.stop_phase;
        snprintf(reason, sizeof(reason), "%s", r.stop_reason);
    }
    for (size_t i = done; i < rd->n_phases; i++)
        recorder_printf(rec, SPOOL_PHASE_END, rd->phases[i].name,
                        "outcome=skipped exit=-1 duration_ms=0");

result:
    recorder_printf(rec, SPOOL_RESULT, "", "outcome=%s phase=%s exit=%d duration_ms=%lld reason=%s",
                    outcome_name(outcome), decider[0] ? decider : SPOOL_NO_PHASE,
                    outcome == OUTCOME_FINISHED ? 0 : res.status,
                    (long long)(clock_mono_ms() - start), reason);
    recorder_sync(rec);
    *fatal = rec->failed != 0;
    free_base_env(&r);
    mask_set_free(&r.masks);
    close(sigfd);
    return outcome;
}
