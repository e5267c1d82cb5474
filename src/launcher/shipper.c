#include "launcher/shipper.h"

#include "common/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int shipper_init(struct shipper *sh, int64_t run_id, const char *path, uint64_t acked,
                 uint64_t seed)
{
    memset(sh, 0, sizeof(*sh));
    sh->run_id = run_id;
    sh->fd = -1;
    sh->acked = acked;
    backoff_init(&sh->bo, BACKOFF_BASE_MS, BACKOFF_MAX_MS, seed);
    dbuf_init(&sh->held, SHIP_HELD_MAX);
    sh->path = strdup(path);
    return sh->path ? 0 : -1;
}

void shipper_free(struct shipper *sh)
{
    if (sh->fd >= 0)
        close(sh->fd);
    sh->fd = -1;
    free(sh->path);
    sh->path = NULL;
    dbuf_free(&sh->held);
    spool_mac_wipe(&sh->mac);
    sh->has_key = 0;
}

void shipper_set_key(struct shipper *sh, const unsigned char key[SPOOL_KEY_LEN])
{
    spool_mac_init(&sh->mac, key);
    sh->has_key = 1;
}

void shipper_verified(struct shipper *sh, uint64_t offset, const char *data, size_t len)
{
    if (offset < sh->acked) { /* the server has these already */
        size_t skip = sh->acked - offset;
        if (skip >= len)
            return;
        offset += skip;
        data += skip;
        len -= skip;
    }
    if (sh->held.len == 0)
        sh->held_at = offset;
    if (offset != sh->held_at + sh->held.len)
        return; /* not next to the held bytes: read from the file in its turn */
    (void)dbuf_add(&sh->held, data, len); /* a full buffer keeps nothing */
}

/* The server acknowledged up to sh->acked: what is held before it goes. */
static void held_drop(struct shipper *sh)
{
    uint64_t end = sh->held_at + sh->held.len;
    if (sh->acked >= end) {
        dbuf_free(&sh->held); /* an idle run holds no buffer */
        sh->held_at = sh->acked;
    } else if (sh->acked > sh->held_at) {
        dbuf_consume(&sh->held, sh->acked - sh->held_at);
        sh->held_at = sh->acked;
    }
}

int64_t shipper_due(const struct shipper *sh, uint64_t avail, int64_t now_ms)
{
    if (sh->full || sh->tampered || avail <= sh->acked)
        return -1;
    if (sh->retry_at && now_ms < sh->retry_at)
        return sh->retry_at - now_ms;
    if (avail - sh->acked >= SHIP_BATCH_MAX || !sh->last_ms ||
        now_ms - sh->last_ms >= SHIP_INTERVAL_MS)
        return 0;
    return sh->last_ms + SHIP_INTERVAL_MS - now_ms;
}

ssize_t shipper_whole(const char *buf, size_t len)
{
    size_t used = 0;
    while (used < len) {
        struct spool_record r;
        ssize_t n = spool_parse(buf + used, len - used, &r);
        if (n < 0)
            return used ? (ssize_t)used : -1;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    return (ssize_t)used;
}

/*
 * Reads want bytes from acked into *buf (the caller frees it) and sets *whole
 * to the length of the whole records at its start that pass their MAC check.
 * Returns SHIP_SENT to go on, or SHIP_ERROR / SHIP_TAMPERED with err.
 */
static int read_checked(struct shipper *sh, size_t want, char **buf, ssize_t *whole, char *err,
                        size_t errsz)
{
    if (sh->fd < 0 && (sh->fd = open(sh->path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errsz, "spool %s: %s", sh->path, strerror(errno));
        return SHIP_ERROR;
    }
    char *b = malloc(want);
    if (!b) {
        snprintf(err, errsz, "spool %s: out of memory", sh->path);
        return SHIP_ERROR;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(sh->fd, b + got, want - got, (off_t)(sh->acked + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    ssize_t w = shipper_whole(b, got);
    if (w > 0 && sh->has_key) {
        w = (ssize_t)spool_mac_prefix(&sh->mac, b, (size_t)w);
        if (w == 0) {
            snprintf(err, errsz,
                     "spool tampered: the record at offset %llu was rewritten after it was checked",
                     (unsigned long long)sh->acked);
            sh->tampered = 1;
            free(b);
            return SHIP_TAMPERED;
        }
    }
    *buf = b;
    *whole = w;
    return SHIP_SENT;
}

static int retry(struct shipper *sh, int64_t now_ms)
{
    sh->retry_at = now_ms + backoff_next(&sh->bo);
    return SHIP_RETRY;
}

int shipper_step(struct shipper *sh, struct backend *b, uint64_t avail, int64_t now_ms, char *err,
                 size_t errsz)
{
    if (sh->full || sh->tampered || avail <= sh->acked)
        return SHIP_IDLE;
    size_t want = avail - sh->acked > SHIP_BATCH_MAX ? SHIP_BATCH_MAX : avail - sh->acked;
    const char *send;
    char *buf = NULL;
    ssize_t whole;
    if (sh->held.len && sh->acked >= sh->held_at && sh->acked < sh->held_at + sh->held.len) {
        /* Checked when they were read: sent as they are. */
        send = sh->held.data + (sh->acked - sh->held_at);
        if (want > sh->held_at + sh->held.len - sh->acked)
            want = sh->held_at + sh->held.len - sh->acked;
        whole = shipper_whole(send, want);
    } else {
        /* Read again: up to the held bytes, each record checked. */
        if (sh->held.len && sh->held_at > sh->acked && want > sh->held_at - sh->acked)
            want = sh->held_at - sh->acked;
        int rc = read_checked(sh, want, &buf, &whole, err, errsz);
        if (rc != SHIP_SENT)
            return rc;
        send = buf;
    }
    if (whole <= 0) {
        snprintf(err, errsz, "spool %s: no complete record at offset %llu", sh->path,
                 (unsigned long long)sh->acked);
        free(buf);
        return SHIP_ERROR;
    }
    uint64_t next = UINT64_MAX;
    int rc = backend_log(b, sh->run_id, sh->acked, send, (size_t)whole, &next, err, errsz);
    free(buf);
    switch (rc) {
    case BACKEND_OK:
        sh->acked = next;
        held_drop(sh);
        sh->last_ms = now_ms;
        sh->retry_at = 0;
        backoff_reset(&sh->bo);
        return SHIP_SENT;
    case BACKEND_CONFLICT:
        if (next == UINT64_MAX)
            return SHIP_GONE;
        /* A gap: the server's copy ends elsewhere; go on from there. */
        sh->acked = next;
        held_drop(sh);
        return SHIP_SENT;
    case BACKEND_FORBIDDEN:
        return SHIP_GONE;
    case BACKEND_TOO_LARGE:
        sh->full = 1;
        return SHIP_FULL;
    case BACKEND_UNAUTHORIZED:
        return SHIP_UNAUTHORIZED;
    default:
        return retry(sh, now_ms);
    }
}
