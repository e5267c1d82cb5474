#include "common/fsutil.h"

#include "common/dbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int fsutil_read_text(const char *path, size_t cap, char **out, char *err, size_t errsz)
{
    struct dbuf b = DBUF_INIT(cap);
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

int fsutil_write_private(const char *path, const char *text, char *err, size_t errsz)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    if (fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) < 0) {
        fclose(f);
        goto fail;
    }
    /* What callers keep here must survive a power loss (the release key:
     * every pool token carries its public half). */
    if (fclose(f) != 0 || rename(tmp, path) < 0 || fsutil_sync_dir_of(path) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errsz, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
}
