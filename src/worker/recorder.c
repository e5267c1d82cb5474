#include "worker/recorder.h"

#include "common/clock.h"
#include "common/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int recorder_open(struct recorder *r, int dirfd, const unsigned char key[SPOOL_KEY_LEN], int echo,
                  char *err, size_t errsz)
{
    memset(r, 0, sizeof(*r));
    r->echo = echo;
    spool_mac_init(&r->mac, key);
    r->fd = openat(dirfd, SPOOL_FILE, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        if (errno == EEXIST)
            snprintf(err, errsz, "%s: already exists: this run directory was used before",
                     SPOOL_FILE);
        else
            snprintf(err, errsz, "%s: cannot create: %s", SPOOL_FILE, strerror(errno));
        spool_mac_wipe(&r->mac);
        return -1;
    }
    return 0;
}

/* Writes all of iov, resuming after short writes. */
static int write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* Best effort: docker logs is a convenience, never a reason to fail a run. */
static void echo_record(char type, const char *phase, const char *data, size_t len)
{
    char line[SPOOL_PHASE_MAX + 64];
    const char *what = NULL;
    int n = 0;

    switch (type) {
    case SPOOL_STDOUT:
    case SPOOL_STDERR: {
        struct iovec iov = {(void *)data, len};
        (void)!write_all(type == SPOOL_STDOUT ? 1 : 2, &iov, 1);
        return;
    }
    case SPOOL_PHASE_START:
        what = "phase started";
        break;
    case SPOOL_COMMAND:
        what = "$";
        break;
    case SPOOL_PHASE_END:
        what = "phase ended:";
        break;
    case SPOOL_NOTE:
        what = "worker:";
        break;
    case SPOOL_RESULT:
        what = "run ended:";
        break;
    default:
        return;
    }
    n = snprintf(line, sizeof(line), "[davit %s] %s ", phase[0] ? phase : "-", what);
    struct iovec iov[3] = {{line, (size_t)n}, {(void *)data, len}, {"\n", 1}};
    (void)!write_all(1, iov, 3);
}

int recorder_write(struct recorder *r, char type, const char *phase, const void *data, size_t len)
{
    char header[SPOOL_HEADER_MAX];
    const char *p = data;

    if (r->failed) {
        errno = r->failed;
        return -1;
    }
    do {
        size_t n = len < SPOOL_PAYLOAD_MAX ? len : SPOOL_PAYLOAD_MAX;
        struct spool_record rec = {
            .type = type, .seq = ++r->seq, .time_ms = clock_wall_ms(), .len = n};
        snprintf(rec.phase, sizeof(rec.phase), "%s", phase);
        rec.data = p;
        spool_mac_sign(&r->mac, &rec);
        size_t hlen = spool_header(header, &rec);
        struct iovec iov[3] = {{header, hlen}, {(void *)p, n}, {"\n", 1}};
        if (write_all(r->fd, iov, 3) < 0) {
            r->failed = errno;
            return -1;
        }
        if (r->echo)
            echo_record(type, phase, p, n);
        p += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int recorder_printf(struct recorder *r, char type, const char *phase, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(text))
        n = sizeof(text) - 1;
    return recorder_write(r, type, phase, text, (size_t)n);
}

int recorder_sync(struct recorder *r)
{
    if (r->failed)
        return -1;
    if (fsync(r->fd) < 0 && errno != EINVAL) {
        r->failed = errno;
        return -1;
    }
    return 0;
}

void recorder_close(struct recorder *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    spool_mac_wipe(&r->mac);
}
