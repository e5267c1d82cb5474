#include "launcher/rundir_write.h"

#include "common/clock.h"
#include "common/dbuf.h"
#include "common/duration.h"
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_file_mode(const char *dir, const char *name, const void *data, size_t len,
                           mode_t mode, char *err, size_t errsz)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        goto fail;
    /* The umask must not widen or narrow what the worker expects. */
    if (fchmod(fd, mode) < 0)
        goto fail;
    if (fsutil_write_all(fd, data, len) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errsz, "run directory: write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len, char *err,
                      size_t errsz)
{
    return write_file_mode(dir, name, data, len, 0600, err, errsz);
}

static int write_line(const char *dir, const char *name, const char *value, char *err, size_t errsz)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s\n", value);
    return write_file(dir, name, buf, (size_t)n, err, errsz);
}

static int write_duration(const char *dir, const char *name, int64_t ms, char *err, size_t errsz)
{
    char buf[32];
    return write_line(dir, name, duration_format(ms, buf, sizeof(buf)), err, errsz);
}

static int make_dir(const char *parent, const char *name, char *path, size_t size, char *err,
                    size_t errsz)
{
    if (name)
        snprintf(path, size, "%s/%s", parent, name);
    else
        snprintf(path, size, "%s", parent);
    if (mkdir(path, 0700) < 0 || chmod(path, 0700) < 0) {
        snprintf(err, errsz, "run directory: mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A command list: each command followed by one NUL byte. */
static int write_list(const char *dir, const char *name, const struct run_list *l, char *err,
                      size_t errsz)
{
    struct dbuf b = DBUF_INIT(RUNSPEC_MAX_COMMANDS * (RUNSPEC_MAX_COMMAND + 1));
    for (size_t i = 0; i < l->n; i++) {
        if (dbuf_add(&b, l->items[i], strlen(l->items[i]) + 1) < 0) {
            snprintf(err, errsz, "run directory: %s/%s: %s", dir, name, strerror(errno));
            dbuf_free(&b);
            return -1;
        }
    }
    int rc = write_file(dir, name, dbuf_str(&b), b.len, err, errsz);
    dbuf_free(&b);
    return rc;
}

static int spec_has_secret(const struct runspec *spec, const char *name)
{
    for (size_t i = 0; i < spec->n_secrets; i++)
        if (strcmp(spec->secrets[i].name, name) == 0)
            return 1;
    return 0;
}

static int write_all(const char *dir, const struct runspec *spec, const char *run_id,
                     const struct runspec_var *extra, size_t n_extra, char *err, size_t errsz)
{
    char sub[4200], ph[4200], name[32];

    if (write_line(dir, "version", "1", err, errsz) < 0)
        return -1;

    if (make_dir(dir, "settings", sub, sizeof(sub), err, errsz) < 0 ||
        write_line(sub, "run_id", run_id, err, errsz) < 0 ||
        write_duration(sub, "run_timeout", spec->run_timeout_ms, err, errsz) < 0 ||
        write_duration(sub, "output_timeout", spec->output_timeout_ms, err, errsz) < 0 ||
        write_duration(sub, "kill_grace", spec->kill_grace_ms, err, errsz) < 0)
        return -1;
    if (spec->user[0] && write_line(sub, "user", spec->user, err, errsz) < 0)
        return -1;

    if (make_dir(dir, "env", sub, sizeof(sub), err, errsz) < 0)
        return -1;
    for (size_t i = 0; i < spec->n_env; i++)
        if (write_file(sub, spec->env[i].name, spec->env[i].value, strlen(spec->env[i].value), err,
                       errsz) < 0)
            return -1;

    if (make_dir(dir, "secrets", sub, sizeof(sub), err, errsz) < 0)
        return -1;
    for (size_t i = 0; i < spec->n_secrets; i++)
        if (write_file(sub, spec->secrets[i].name, spec->secrets[i].value,
                       strlen(spec->secrets[i].value), err, errsz) < 0)
            return -1;
    for (size_t i = 0; i < n_extra; i++)
        if (!spec_has_secret(spec, extra[i].name) &&
            write_file(sub, extra[i].name, extra[i].value, strlen(extra[i].value), err, errsz) < 0)
            return -1;

    if (make_dir(dir, "phases", sub, sizeof(sub), err, errsz) < 0)
        return -1;
    for (size_t i = 0; i < spec->n_phases; i++) {
        const struct run_phase *p = &spec->phases[i];
        snprintf(name, sizeof(name), "%zu", i);
        if (make_dir(sub, name, ph, sizeof(ph), err, errsz) < 0 ||
            write_line(ph, "name", p->name, err, errsz) < 0 ||
            write_list(ph, "commands", &p->commands, err, errsz) < 0)
            return -1;
        if (p->before.n && write_list(ph, "before", &p->before, err, errsz) < 0)
            return -1;
        if (p->after.n && write_list(ph, "after", &p->after, err, errsz) < 0)
            return -1;
        if (p->timeout_ms && write_duration(ph, "timeout", p->timeout_ms, err, errsz) < 0)
            return -1;
    }
    return 0;
}

int rundir_write(const char *dir, const struct runspec *spec, const char *run_id,
                 const struct runspec_var *extra_secrets, size_t n_extra, char *err, size_t errsz)
{
    char path[4200];
    if (make_dir(dir, NULL, path, sizeof(path), err, errsz) < 0)
        return -1;
    if (write_all(dir, spec, run_id, extra_secrets, n_extra, err, errsz) < 0) {
        char ignored[256];
        rundir_remove(dir, ignored, sizeof(ignored));
        return -1;
    }
    return 0;
}

int rundir_write_key(const char *dir, const unsigned char key[SPOOL_KEY_LEN], char *err,
                     size_t errsz)
{
    return write_file_mode(dir, SPOOL_KEY_FILE, key, SPOOL_KEY_LEN, 0400, err, errsz);
}

/* Appends one signed record to b. */
static int add_record(struct dbuf *b, const struct spool_mac *m, uint64_t seq, char type,
                      const char *phase, const char *text)
{
    char header[SPOOL_HEADER_MAX];
    struct spool_record r = {.type = type, .seq = seq, .time_ms = clock_wall_ms()};
    snprintf(r.phase, sizeof(r.phase), "%s", phase);
    r.data = text;
    r.len = strlen(text);
    if (r.len > SPOOL_PAYLOAD_MAX)
        r.len = SPOOL_PAYLOAD_MAX;
    spool_mac_sign(m, &r);
    size_t h = spool_header(header, &r);
    if (dbuf_add(b, header, h) < 0 || dbuf_add(b, r.data, r.len) < 0 || dbuf_addch(b, '\n') < 0)
        return -1;
    return 0;
}

int rundir_spool_section(const char *dir, const unsigned char key[SPOOL_KEY_LEN],
                         enum outcome outcome, const char *reason, uint64_t *end, char *err,
                         size_t errsz)
{
    struct dbuf b = DBUF_INIT(4 * SPOOL_PAYLOAD_MAX);
    struct spool_mac m;
    char text[1200];
    int rc = -1;
    /* E takes a phase's outcome: a run that "finished" never comes here. */
    const char *phase_outcome = outcome == OUTCOME_FINISHED ? "succeeded" : outcome_name(outcome);

    *end = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "run directory: mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    spool_mac_init(&m, key);
    snprintf(text, sizeof(text), "outcome=%s exit=-1 duration_ms=0", phase_outcome);
    if (add_record(&b, &m, 1, SPOOL_PHASE_START, RUNDIR_LAUNCHER_PHASE, "") < 0 ||
        add_record(&b, &m, 2, SPOOL_NOTE, RUNDIR_LAUNCHER_PHASE, reason) < 0 ||
        add_record(&b, &m, 3, SPOOL_PHASE_END, RUNDIR_LAUNCHER_PHASE, text) < 0)
        goto oom;
    snprintf(text, sizeof(text), "outcome=%s phase=%s exit=-1 duration_ms=0 reason=%s",
             outcome_name(outcome), RUNDIR_LAUNCHER_PHASE, reason);
    if (add_record(&b, &m, 4, SPOOL_RESULT, "", text) < 0)
        goto oom;
    if (write_file(dir, SPOOL_FILE, b.data, b.len, err, errsz) < 0)
        goto done;
    *end = b.len;
    rc = 0;
    goto done;
oom:
    snprintf(err, errsz, "run directory %s: spool: out of memory", dir);
done:
    spool_mac_wipe(&m);
    dbuf_free(&b);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rundir_remove(const char *dir, char *err, size_t errsz)
{
    struct stat st;
    if (lstat(dir, &st) < 0 && errno == ENOENT)
        return 0;
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0) {
        snprintf(err, errsz, "run directory: remove %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}
