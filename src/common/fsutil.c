#include "common/fsutil.h"

#include "common/dbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int fsutil_read_text(const char *path, size_t cap, char **out, char *err, size_t errsz)
{
    /* What davit reads whole is often a key or a token (TLS and release keys, the metrics
     * token): its copies are wiped as the buffer grows. The caller wipes the result. */
    struct dbuf b = DBUF_INIT_SECRET(cap);
    if (dbuf_read_file(&b, path) < 0)
        goto fail;
    *out = dbuf_take(&b);
    if (!*out)
        goto fail;
    return 0;
fail:
    snprintf(err, errsz, "%s: %s", path, strerror(errno));
    dbuf_free(&b);
    return -1;
}

int fsutil_sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int fsutil_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fsutil_install(int fd, const char *tmp, const char *path, mode_t mode)
{
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0)
        return -1;
    return fsutil_sync_dir_of(path);
}

int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errsz)
{
    char tmp[PATH_MAX + 16];
    /* A name of its own: two writers of one path never share a temporary file. */
    snprintf(tmp, sizeof(tmp), "%s" FSUTIL_TMP_MARK "XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsz, "%s: cannot create a temporary file: %s", path, strerror(errno));
        return -1;
    }
    if (fsutil_write_all(fd, data, len) < 0 || fsutil_install(fd, tmp, path, mode) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int saved = errno; /* callers tell ENOSPC from other failures */
    snprintf(err, errsz, "%s: %s", path, strerror(saved));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

int fsutil_write_private(const char *path, const char *text, char *err, size_t errsz)
{
    return fsutil_write_file(path, text, strlen(text), 0600, err, errsz);
}

int fsutil_executable(const char *path, char *out, char *err, size_t errsz)
{
    struct stat st;
    if (!realpath(path, out) || stat(out, &st) < 0) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s: not a regular file", out);
        return -1;
    }
    if (!(st.st_mode & 0111) || access(out, X_OK) < 0) {
        snprintf(err, errsz, "%s: not executable (mode %04o)", out, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}
