/* davit-launcher exec's run, on the supervisor's one path (exec.h). */
#include "launcher/exec.h"

#include "common/log.h"
#include "common/outcome.h"
#include "launcher/container.h"
#include "launcher/docker.h"
#include "launcher/state.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_LEFTOVERS 256

/* The hooks' view: what to print, and the signals seen. */
struct exec {
    struct printer *printer;
    struct state *state;
    int sigfd;
    int print;     /* show the records and notes: the run exec was asked for */
    int signal;    /* the first cancelling signal, 0 none */
    int n_signals; /* a second one kills at once */
};

static void exec_record(void *arg, struct run_state *rs, const struct spool_record *r)
{
    struct exec *x = arg;
    if (r->seq <= rs->seq)
        return; /* shown before a restart */
    rs->seq = r->seq;
    /* A closed stdout does not stop the run; the result still decides the exit code. */
    if (x->print)
        printer_record(x->printer, r);
}

/* New records were read: shows them, and saves how far, so that an adoption goes on from there. */
static int64_t exec_tick(void *arg, struct run_state *rs, uint64_t spool_end)
{
    struct exec *x = arg;
    char err[1024];
    if (spool_end > rs->offset) {
        if (x->print)
            printer_flush(x->printer);
        rs->offset = spool_end;
        if (state_run_save(x->state, rs, err, sizeof(err)) < 0)
            log_event(LOG_WARN, "cannot save the spool offset", "run", rs->run_id, "error", err,
                      (const char *)NULL);
    }
    return INT64_MAX;
}

static const char *sig_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

static int exec_cancel(void *arg, char *who, char *by, size_t size)
{
    struct exec *x = arg;
    struct signalfd_siginfo si;
    while (x->sigfd >= 0 && read(x->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (!x->signal)
            x->signal = (int)si.ssi_signo;
        x->n_signals++;
    }
    if (!x->signal)
        return SUP_GO_ON;
    snprintf(who, size, "%s", sig_name(x->signal));
    snprintf(by, size, "%s to davit-launcher", sig_name(x->signal));
    return x->n_signals > 1 ? SUP_KILL : SUP_CANCEL;
}

static void exec_note(void *arg, const char *msg)
{
    struct exec *x = arg;
    if (x->print) {
        printer_note(x->printer, msg);
        printer_flush(x->printer);
    }
}

static void say(struct exec *x, const char *run_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A message of exec's own about a run: logged, and shown like the supervisor's notes. */
static void say(struct exec *x, const char *run_id, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_event(LOG_INFO, msg, "run", run_id, (const char *)NULL);
    exec_note(x, msg);
}

static int valid_run_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n > 0 && n < STATE_ID_MAX && id[0] != '.' &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Follows the adopted run of this spec to its end, showing it, and removes it. */
static int adopt(struct exec *x, struct supervisor *s, const struct runspec *spec,
                 struct run_state *rs, const char *cstate, struct run_result *res, char *err,
                 size_t errsz)
{
    x->print = 1;
    rs->kill_grace_ms = spec->kill_grace_ms;
    printer_set_run(x->printer, rs->run_id);
    say(x, rs->run_id, "adopted run %s (container %.12s, %s), continuing from spool offset %llu",
        rs->run_id, rs->container, cstate ? cstate : "?", (unsigned long long)rs->offset);
    int rc = sup_adopt(s, rs, 0, res, err, errsz);
    sup_cleanup(s, rs);
    x->print = 0;
    return rc;
}

/* Another spec's run: the user of exec can no longer see it, so it is stopped and removed. */
static void collect(struct supervisor *s, struct run_state *rs, const char *cstate)
{
    char err[1024];
    struct run_result r;
    int stop = cstate && strcmp(cstate, "exited") != 0 && strcmp(cstate, "dead") != 0;
    rs->kill_grace_ms = 0; /* its spec is not known here: the default grace */
    int rc = sup_adopt(s, rs, stop, &r, err, sizeof(err));
    sup_cleanup(s, rs);
    if (rc < 0) {
        log_event(LOG_WARN, "cannot collect a run left behind", "run", rs->run_id, "error", err,
                  (const char *)NULL);
        return;
    }
    log_event(LOG_WARN,
              stop ? "stopped and removed a run left behind"
                   : "collected and removed a run left behind",
              "run", rs->run_id, "outcome", outcome_name(r.outcome), "reason", r.reason,
              (const char *)NULL);
}

/* The state, and the run directories, of runs whose container is gone. */
static int forget_others(struct supervisor *s, char seen[][STATE_ID_MAX], size_t n_seen, char *err,
                         size_t errsz)
{
    char ids[MAX_LEFTOVERS][STATE_ID_MAX];
    int n = state_run_list(s->state, ids, MAX_LEFTOVERS, err, errsz);
    if (n < 0)
        return -1;
    for (int k = 0; k < n; k++) {
        int handled = 0;
        for (size_t j = 0; j < n_seen; j++)
            handled |= strcmp(seen[j], ids[k]) == 0;
        if (handled)
            continue;
        struct run_state rs;
        memset(&rs, 0, sizeof(rs));
        snprintf(rs.run_id, sizeof(rs.run_id), "%s", ids[k]);
        sup_cleanup(s, &rs);
        log_event(LOG_INFO, "removed the state of a run without a container", "run", ids[k],
                  (const char *)NULL);
    }
    return 0;
}

/*
 * Deals with what a previous launcher using this state directory left:
 * adopts the run of this spec, stops and removes the others, and deletes
 * state with no container. Sets *adopted when res holds the adopted run's
 * result.
 */
static int recover(struct exec *x, struct supervisor *s, const struct runspec *spec,
                   const char *sha, struct run_result *res, int *adopted, char *err, size_t errsz)
{
    char label[128], lerr[1024], seen[MAX_LEFTOVERS][STATE_ID_MAX];
    size_t n_seen = 0, i;
    json_t *list = NULL, *c;
    int rc = -1;

    snprintf(label, sizeof(label), "%s=%s", LABEL_LAUNCHER, s->state->launcher_id);
    if (docker_container_list(s->docker, label, &list, err, errsz) < 0)
        return -1;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *run_id =
            json_string_value(json_object_get(json_object_get(c, "Labels"), LABEL_RUN));
        const char *cstate = json_string_value(json_object_get(c, "State"));
        struct run_state rs;

        if (!id)
            continue;
        if (!valid_run_id(run_id)) {
            docker_container_remove(s->docker, id, lerr, sizeof(lerr));
            continue;
        }
        if (n_seen < MAX_LEFTOVERS)
            snprintf(seen[n_seen++], STATE_ID_MAX, "%s", run_id);
        memset(&rs, 0, sizeof(rs));
        int loaded = state_run_load(s->state, run_id, &rs, lerr, sizeof(lerr));
        if (loaded < 0)
            log_event(LOG_WARN, "unreadable run state", "run", run_id, "error", lerr,
                      (const char *)NULL);
        if (loaded != 1) {
            memset(&rs, 0, sizeof(rs));
            snprintf(rs.run_id, sizeof(rs.run_id), "%s", run_id);
        }
        int same = loaded == 1 && strcmp(rs.container, id) == 0;
        int created = cstate && strcmp(cstate, "created") == 0;
        snprintf(rs.container, sizeof(rs.container), "%s", id);

        if (same && !*adopted && !created && strcmp(rs.spec_sha256, sha) == 0) {
            if (adopt(x, s, spec, &rs, cstate, res, err, errsz) < 0)
                goto fail;
            *adopted = 1;
        } else if (created) {
            sup_cleanup(s, &rs);
            log_event(LOG_INFO, "removed a container that never started", "run", run_id,
                      (const char *)NULL);
        } else {
            collect(s, &rs, cstate);
        }
        explicit_bzero(rs.key, sizeof(rs.key));
    }
    rc = forget_others(s, seen, n_seen, err, errsz);
fail:
    json_decref(list);
    return rc;
}

/* Carries the new run and removes it. Returns 0 with res, or -1 with err. */
static int run_new(struct exec *x, struct supervisor *s, const struct runspec *spec,
                   const char *sha, const char *worker_path, struct run_result *res, char *err,
                   size_t errsz)
{
    struct run_state rs;
    memset(&rs, 0, sizeof(rs));
    if (state_new_run_id(rs.run_id, sizeof(rs.run_id), "exec") < 0) {
        snprintf(err, errsz, "cannot make a run id: %s", strerror(errno));
        return -1;
    }
    snprintf(rs.spec_sha256, sizeof(rs.spec_sha256), "%s", sha);
    x->print = 1;
    printer_set_run(x->printer, rs.run_id);
    int rc = sup_run(s, spec, &rs, worker_path, res, err, errsz);
    sup_cleanup(s, &rs);
    explicit_bzero(rs.key, sizeof(rs.key));
    return rc < 0 ? -1 : 0;
}

int exec_run(struct supervisor *s, struct printer *printer, int sigfd, const struct runspec *spec,
             const char *spec_sha256, const char *worker_path, struct run_result *res,
             int *exit_code, char *err, size_t errsz)
{
    struct exec x = {.printer = printer, .state = s->state, .sigfd = sigfd};
    const struct sup_hooks hooks = {&x, exec_record, exec_tick, exec_cancel, exec_note, NULL};
    int adopted = 0, rc = -1;

    s->hooks = &hooks;
    s->wake_fd = sigfd;
    *exit_code = EXIT_INTERNAL;
    if (recover(&x, s, spec, spec_sha256, res, &adopted, err, errsz) < 0)
        goto done;
    if (adopted) {
        rc = 0;
    } else if (sup_poll_cancel(s)) {
        memset(res, 0, sizeof(*res));
        res->outcome = OUTCOME_CANCELED;
        res->exit_status = -1;
        snprintf(res->reason, sizeof(res->reason), "canceled by %s before the run started",
                 s->cancel_who);
        rc = 0;
    } else {
        rc = run_new(&x, s, spec, spec_sha256, worker_path, res, err, errsz);
    }
done:
    s->hooks = NULL; /* they live on this stack */
    return rc;
}
