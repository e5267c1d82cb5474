#include "worker/rundir.h"

#include "common/dbuf.h"
#include "common/duration.h"
#include "common/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Text settings are one short line. */
#define TEXT_MAX 4096

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* What a file that is not the expected kind is, for messages. */
static const char *kind_of(mode_t mode)
{
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    if (S_ISDIR(mode))
        return "a directory";
    return "a special file";
}

/*
 * Opens dirfd/name for reading, as a directory when dir is set and as a
 * regular file otherwise. Whoever can write the run directory could plant a
 * symlink (the worker would read, and run with, another file) or a FIFO (an
 * open with no writer blocks for ever), so: the kind is checked before the
 * open without following a link, the open neither follows a link nor blocks,
 * and the open file is checked again (it may have been swapped in between).
 * Returns the descriptor (blocking), or -1 with err set ("name: reason") and
 * errno (ENOENT when it does not exist, for optional files).
 */
static int open_checked(int dirfd, const char *name, int dir, char *err, size_t errsz)
{
    const char *want = dir ? "a directory" : "a regular file";
    struct stat before, st;
    int fd = -1;
    if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0)
        goto fail_errno;
    if (dir ? !S_ISDIR(before.st_mode) : !S_ISREG(before.st_mode)) {
        set_err(err, errsz, "%s: %s, not %s", name, kind_of(before.st_mode), want);
        errno = EINVAL;
        return -1;
    }
    fd = openat(dirfd, name,
                O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (dir ? O_DIRECTORY : 0));
    if (fd < 0 || fstat(fd, &st) < 0)
        goto fail_errno;
    if (st.st_dev != before.st_dev || st.st_ino != before.st_ino) {
        set_err(err, errsz, "%s: replaced while it was being opened", name);
        goto fail_einval;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        goto fail_errno;
    return fd;

fail_errno:
    set_err(err, errsz, "%s: %s", name,
            errno == ELOOP ? "a symbolic link, not allowed here" : strerror(errno));
    if (fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return -1;
fail_einval:
    close(fd);
    errno = EINVAL;
    return -1;
}

/*
 * Reads dirfd/path into b (emptied first). Returns 1 when read, 0 when the
 * file does not exist and optional is set, -1 on error (err set).
 */
static int read_file_at(int dirfd, const char *path, struct dbuf *b, int optional, char *err,
                        size_t errsz)
{
    dbuf_reset(b);
    int fd = open_checked(dirfd, path, 0, err, errsz);
    if (fd < 0)
        return errno == ENOENT && optional ? 0 : -1;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errsz, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (dbuf_add(b, chunk, (size_t)n) < 0) {
            if (errno == ENOSPC)
                set_err(err, errsz, "%s: larger than %zu bytes", path, b->cap);
            else
                set_err(err, errsz, "%s: %s", path, strerror(errno));
            goto fail;
        }
    }
    close(fd);
    return 1;

fail:
    close(fd);
    return -1;
}

int rundir_take_key(int dirfd, unsigned char *key, char *err, size_t errsz)
{
    unsigned char buf[SPOOL_KEY_LEN + 1];
    size_t got = 0;
    int fd = open_checked(dirfd, SPOOL_KEY_FILE, 0, err, errsz);
    if (fd < 0) {
        if (errno == ENOENT)
            set_err(err, errsz, "%s: missing: the launcher gave this run no key", SPOOL_KEY_FILE);
        goto fail;
    }
    /* One byte more than a key, to tell a longer file. */
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errsz, "%s: %s", SPOOL_KEY_FILE, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != SPOOL_KEY_LEN) {
        set_err(err, errsz, "%s: not a key: %s than %d bytes", SPOOL_KEY_FILE,
                got < SPOOL_KEY_LEN ? "shorter" : "longer", SPOOL_KEY_LEN);
        goto fail;
    }
    if (unlinkat(dirfd, SPOOL_KEY_FILE, 0) < 0) {
        set_err(err, errsz, "%s: cannot remove: %s", SPOOL_KEY_FILE, strerror(errno));
        goto fail;
    }
    memcpy(key, buf, SPOOL_KEY_LEN);
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return 0;

fail:
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(key, SPOOL_KEY_LEN);
    if (fd >= 0)
        close(fd);
    return -1;
}

/* A one-line text value: one trailing newline allowed, no other control bytes. */
static int read_text_at(int dirfd, const char *path, char *out, size_t size, int optional,
                        char *err, size_t errsz)
{
    struct dbuf b = DBUF_INIT(TEXT_MAX);
    int rc = read_file_at(dirfd, path, &b, optional, err, errsz);
    if (rc <= 0)
        goto done;
    if (b.len && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    if (b.len == 0 || memchr(b.data, '\n', b.len) || memchr(b.data, '\0', b.len)) {
        set_err(err, errsz, "%s: must be a single non-empty line", path);
        rc = -1;
    } else if (b.len >= size) {
        set_err(err, errsz, "%s: longer than %zu bytes", path, size - 1);
        rc = -1;
    } else {
        memcpy(out, b.data, b.len + 1);
    }
done:
    dbuf_free(&b);
    return rc;
}

static int read_duration_at(int dirfd, const char *path, int64_t *ms, char *err, size_t errsz)
{
    char text[64];
    int rc = read_text_at(dirfd, path, text, sizeof(text), 1, err, errsz);
    if (rc <= 0)
        return rc;
    if (duration_parse(text, ms) < 0) {
        set_err(err, errsz, "%s: not a duration (like 90, 90s, 7m, 1h): \"%s\"", path, text);
        return -1;
    }
    return 1;
}

static int load_settings(int dirfd, struct rundir *rd, char *err, size_t errsz)
{
    static const char *known[] = {
        "run_id", "run_timeout", "output_timeout", "kill_grace", "user", "workspace", "echo"};
    char text[64];
    int rc;

    int sfd = open_checked(dirfd, "settings", 1, err, errsz);
    if (sfd < 0)
        return errno == ENOENT ? 0 : -1;
    DIR *d = fdopendir(sfd);
    if (!d) {
        set_err(err, errsz, "settings: %s", strerror(errno));
        close(sfd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t i;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(de->d_name, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            set_err(err, errsz, "settings/%s: unknown setting", de->d_name);
            goto fail;
        }
    }

    if (read_text_at(sfd, "run_id", rd->run_id, sizeof(rd->run_id), 1, err, errsz) < 0 ||
        read_duration_at(sfd, "run_timeout", &rd->run_timeout_ms, err, errsz) < 0 ||
        read_duration_at(sfd, "output_timeout", &rd->output_timeout_ms, err, errsz) < 0 ||
        read_duration_at(sfd, "kill_grace", &rd->kill_grace_ms, err, errsz) < 0 ||
        read_text_at(sfd, "workspace", rd->workspace, sizeof(rd->workspace), 1, err, errsz) < 0)
        goto prefix;
    if (rd->workspace[0] != '/') {
        set_err(err, errsz, "settings/workspace: must be an absolute path: \"%s\"", rd->workspace);
        goto fail;
    }
    rc = read_text_at(sfd, "user", text, sizeof(text), 1, err, errsz);
    if (rc < 0)
        goto prefix;
    if (rc > 0) {
        if (runrules_user_parse(text, &rd->uid, &rd->gid) < 0) {
            set_err(err, errsz, "settings/user: expected UID or UID:GID (numbers): \"%s\"", text);
            goto fail;
        }
        rd->has_user = 1;
    }
    rc = read_text_at(sfd, "echo", text, sizeof(text), 1, err, errsz);
    if (rc < 0)
        goto prefix;
    if (rc > 0) {
        if (strcmp(text, "0") && strcmp(text, "1")) {
            set_err(err, errsz, "settings/echo: expected 0 or 1: \"%s\"", text);
            goto fail;
        }
        rd->echo = text[0] == '1';
    }
    closedir(d);
    return 0;

prefix:;
    /* The helpers name the file relative to settings/; say where it is. */
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "settings/%s", err);
    snprintf(err, errsz, "%s", tmp);
fail:
    closedir(d);
    return -1;
}

static int load_vars(int dirfd, const char *sub, int secret, struct rundir *rd, char *err,
                     size_t errsz)
{
    struct dbuf b = DBUF_INIT(RUNDIR_MAX_VALUE);
    char path[RUNDIR_MAX_NAME + 16];
    DIR *d = NULL;

    int vfd = open_checked(dirfd, sub, 1, err, errsz);
    if (vfd < 0)
        return errno == ENOENT ? 0 : -1;
    if (!(d = fdopendir(vfd))) {
        set_err(err, errsz, "%s: %s", sub, strerror(errno));
        close(vfd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!runrules_var_name_ok(de->d_name)) {
            set_err(err, errsz, "%s/%.*s: not a variable name ([A-Za-z_][A-Za-z0-9_]*)", sub,
                    RUNDIR_MAX_NAME, de->d_name);
            goto fail;
        }
        if (rd->n_vars >= RUNDIR_MAX_VARS) {
            set_err(err, errsz, "%s: more than %d variables in all", sub, RUNDIR_MAX_VARS);
            goto fail;
        }
        if (read_file_at(vfd, de->d_name, &b, 0, err, errsz) < 0) {
            snprintf(path, sizeof(path), "%s/", sub);
            goto fail_prefixed;
        }
        if (memchr(dbuf_str(&b), '\0', b.len)) {
            set_err(err, errsz, "%s/%s: value contains a NUL byte", sub, de->d_name);
            goto fail;
        }
        struct rundir_var *v = &rd->vars[rd->n_vars];
        v->name = strdup(de->d_name);
        v->value = dbuf_take(&b);
        v->secret = secret;
        rd->n_vars++;
        if (!v->name || !v->value) {
            set_err(err, errsz, "%s/%s: out of memory", sub, de->d_name);
            goto fail;
        }
    }
    closedir(d);
    dbuf_free(&b);
    return 0;

fail_prefixed:;
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s%s", path, err);
    snprintf(err, errsz, "%s", tmp);
fail:
    closedir(d);
    dbuf_free(&b);
    return -1;
}

/* Splits a NUL-terminated command list into l. */
static int split_commands(const struct dbuf *b, struct run_list *l, const char *path, char *err,
                          size_t errsz)
{
    if (b->len == 0)
        return 0;
    if (b->data[b->len - 1] != '\0') {
        set_err(err, errsz, "%s: the last command is not followed by a NUL byte", path);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++)
        n += b->data[i] == '\0';
    if (n > RUNDIR_MAX_COMMANDS) {
        set_err(err, errsz, "%s: more than %d commands", path, RUNDIR_MAX_COMMANDS);
        return -1;
    }
    l->items = calloc(n, sizeof(char *));
    if (!l->items) {
        set_err(err, errsz, "%s: out of memory", path);
        return -1;
    }
    const char *p = b->data;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(p);
        if (len > RUNDIR_MAX_COMMAND) {
            set_err(err, errsz, "%s: command %zu is longer than %d bytes", path, i + 1,
                    RUNDIR_MAX_COMMAND);
            return -1;
        }
        if (!(l->items[i] = strdup(p))) {
            set_err(err, errsz, "%s: out of memory", path);
            return -1;
        }
        l->n++;
        p += len + 1;
    }
    return 0;
}

static int load_phase(int pfd, const char *dir, struct run_phase *ph, char *err, size_t errsz)
{
    static const char *known[] = {"name", "commands", "before", "after", "timeout"};
    struct dbuf b = DBUF_INIT(RUNDIR_MAX_COMMANDS * (RUNDIR_MAX_COMMAND + 1));
    char path[64];
    DIR *d = NULL;

    int fd = open_checked(pfd, dir, 1, err, errsz);
    if (fd >= 0 && !(d = fdopendir(fd))) {
        set_err(err, errsz, "%s: %s", dir, strerror(errno));
        close(fd);
    }
    if (!d) {
        /* err names the phase's directory relative to phases/ */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "phases/%s", err);
        snprintf(err, errsz, "%s", tmp);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t i;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(de->d_name, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            set_err(err, errsz, "phases/%s/%.64s: unknown file", dir, de->d_name);
            goto fail;
        }
    }

    if (read_text_at(fd, "name", ph->name, sizeof(ph->name), 0, err, errsz) < 0 ||
        read_duration_at(fd, "timeout", &ph->timeout_ms, err, errsz) < 0)
        goto fail_prefixed;
    if (!spool_phase_name_ok(ph->name)) {
        set_err(err, errsz, "phases/%s/name: 1 to 64 of [A-Za-z0-9_.-]: \"%s\"", dir, ph->name);
        goto fail;
    }
    static const char *lists[] = {"before", "commands", "after"};
    struct run_list *dst[] = {&ph->before, &ph->commands, &ph->after};
    for (int i = 0; i < 3; i++) {
        if (read_file_at(fd, lists[i], &b, 1, err, errsz) < 0)
            goto fail_prefixed;
        snprintf(path, sizeof(path), "phases/%s/%s", dir, lists[i]);
        if (split_commands(&b, dst[i], path, err, errsz) < 0)
            goto fail;
    }
    closedir(d);
    dbuf_free(&b);
    return 0;

fail_prefixed:;
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "phases/%s/%s", dir, err);
    snprintf(err, errsz, "%s", tmp);
fail:
    closedir(d);
    dbuf_free(&b);
    return -1;
}

static int load_phases(int dirfd, struct rundir *rd, char *err, size_t errsz)
{
    char name[24];
    size_t n = 0;
    DIR *d = NULL;

    int pfd = open_checked(dirfd, "phases", 1, err, errsz);
    if (pfd < 0)
        return -1;
    if (!(d = fdopendir(pfd))) {
        set_err(err, errsz, "phases: %s", strerror(errno));
        close(pfd);
        return -1;
    }
    /* Every entry must be one of 0..N-1; count them, then check the sequence. */
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *end;
        unsigned long idx = strtoul(de->d_name, &end, 10);
        if (*end || de->d_name[0] < '0' || de->d_name[0] > '9' ||
            (de->d_name[0] == '0' && de->d_name[1]) || idx >= RUNDIR_MAX_PHASES) {
            set_err(err, errsz, "phases/%.64s: not a phase number from 0 to %d", de->d_name,
                    RUNDIR_MAX_PHASES - 1);
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        set_err(err, errsz, "phases: no phases");
        goto fail;
    }
    rd->phases = calloc(n, sizeof(*rd->phases));
    if (!rd->phases) {
        set_err(err, errsz, "phases: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%zu", i);
        if (faccessat(pfd, name, F_OK, 0) < 0) {
            set_err(err, errsz, "phases/%s: missing (phases must be numbered 0 to %zu)", name,
                    n - 1);
            goto fail;
        }
        rd->n_phases++;
        if (load_phase(pfd, name, &rd->phases[i], err, errsz) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(rd->phases[j].name, rd->phases[i].name) == 0) {
                set_err(err, errsz, "phases/%zu/name: \"%s\" is already the name of phase %zu", i,
                        rd->phases[i].name, j);
                goto fail;
            }
        }
    }
    closedir(d);
    return 0;

fail:
    closedir(d);
    return -1;
}

int rundir_load(int dirfd, struct rundir *rd, char *err, size_t errsz)
{
    static const char *known[] = {"version", "settings", "env", "secrets", "phases", SPOOL_FILE};
    char version[16];
    DIR *d = NULL;

    memset(rd, 0, sizeof(*rd));
    snprintf(rd->run_id, sizeof(rd->run_id), "-");
    snprintf(rd->workspace, sizeof(rd->workspace), "%s", RUNDIR_DEFAULT_WORKSPACE);
    rd->run_timeout_ms = 70LL * 60 * 1000;
    rd->output_timeout_ms = 7LL * 60 * 1000;
    rd->kill_grace_ms = 10LL * 1000;

    if (read_text_at(dirfd, "version", version, sizeof(version), 0, err, errsz) < 0)
        goto fail;
    if (strcmp(version, RUNDIR_VERSION) != 0) {
        set_err(err, errsz, "version: this worker reads format %s, not \"%s\"", RUNDIR_VERSION,
                version);
        goto fail;
    }
    int fd = dup(dirfd);
    if (fd < 0 || !(d = fdopendir(fd))) {
        set_err(err, errsz, "run directory: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t i;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(de->d_name, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            set_err(err, errsz, "%.64s: unknown file in the run directory", de->d_name);
            goto fail;
        }
    }
    closedir(d);
    d = NULL;

    rd->vars = calloc(RUNDIR_MAX_VARS, sizeof(*rd->vars));
    if (!rd->vars) {
        set_err(err, errsz, "run directory: out of memory");
        goto fail;
    }
    if (load_settings(dirfd, rd, err, errsz) < 0 ||
        load_vars(dirfd, "env", 0, rd, err, errsz) < 0 ||
        load_vars(dirfd, "secrets", 1, rd, err, errsz) < 0 ||
        load_phases(dirfd, rd, err, errsz) < 0)
        goto fail;
    return 0;

fail:
    if (d)
        closedir(d);
    rundir_free(rd);
    return -1;
}

static void free_list(struct run_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void rundir_free(struct rundir *rd)
{
    for (size_t i = 0; i < rd->n_phases; i++) {
        free_list(&rd->phases[i].before);
        free_list(&rd->phases[i].commands);
        free_list(&rd->phases[i].after);
    }
    free(rd->phases);
    rd->phases = NULL;
    rd->n_phases = 0;
    for (size_t i = 0; i < rd->n_vars; i++) {
        free(rd->vars[i].name);
        free(rd->vars[i].value);
    }
    free(rd->vars);
    rd->vars = NULL;
    rd->n_vars = 0;
}
