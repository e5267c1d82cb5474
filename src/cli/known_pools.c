/* The client's pins of pool identities: see known_pools.h. */
#include "cli/known_pools.h"

#include "common/dbuf.h"

#include <openssl/pem.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KNOWN_POOLS_MAX (1024 * 1024)

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

int known_pools_path(char *buf, size_t n, char *err, size_t errsz)
{
    const char *f = getenv("DAVIT_KNOWN_POOLS"), *x = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int w;
    if (f && *f)
        w = snprintf(buf, n, "%s", f);
    else if (x && *x)
        w = snprintf(buf, n, "%s/davit/known-pools", x);
    else if (home && *home)
        w = snprintf(buf, n, "%s/.config/davit/known-pools", home);
    else
        return fail(err, errsz,
                    "no file to pin pool keys in: set DAVIT_KNOWN_POOLS, XDG_CONFIG_HOME or HOME");
    if (w < 0 || (size_t)w >= n)
        return fail(err, errsz, "the known-pools file's path is too long");
    return 0;
}

/* The length of server without its trailing slashes: "http://h/" and "http://h" are one. */
static size_t server_len(const char *server)
{
    size_t n = strlen(server);
    while (n > 0 && server[n - 1] == '/')
        n--;
    return n;
}

/*
 * Splits the line (NUL-ended, changed in place) into its four fields. 1 when it is a pin,
 * 0 for a comment, a blank line or a malformed one (kept as it is when the file is rewritten).
 */
static int split_line(char *line, char *f[4])
{
    char *save = NULL;
    if (line[0] == '#')
        return 0;
    for (int i = 0; i < 4; i++)
        if (!(f[i] = strtok_r(i ? NULL : line, " \t\r\n", &save)))
            return 0;
    return strtok_r(NULL, " \t\r\n", &save) == NULL;
}

static int matches(char *f[4], const char *server, const char *pool)
{
    size_t n = server_len(server);
    return server_len(f[0]) == n && strncmp(f[0], server, n) == 0 && strcmp(f[1], pool) == 0;
}

/* Reads the file into b; a missing file reads as empty. */
static int read_all(const char *file, struct dbuf *b, char *err, size_t errsz)
{
    if (dbuf_read_file(b, file) == 0 || errno == ENOENT)
        return 0;
    return fail(err, errsz, "%s: %s", file, strerror(errno));
}

int known_pools_get(const char *file, const char *server, const char *pool, struct known_pool *out,
                    char *err, size_t errsz)
{
    struct dbuf b = DBUF_INIT(KNOWN_POOLS_MAX);
    int found = 0;
    if (read_all(file, &b, err, errsz) < 0 || dbuf_addch(&b, '\0') < 0) {
        dbuf_free(&b);
        return err[0] ? -1 : fail(err, errsz, "%s: out of memory", file);
    }
    char *save = NULL, *f[4];
    for (char *line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (split_line(line, f) && matches(f, server, pool)) {
            /* the last line wins, as a rewrite leaves only one */
            found = snprintf(out->pool_id, sizeof(out->pool_id), "%s", f[2]) <
                        (int)sizeof(out->pool_id) &&
                    strlen(f[3]) == SEAL_KEY_ID_HEX - 1;
            if (found)
                memcpy(out->key_id, f[3], SEAL_KEY_ID_HEX);
        }
    }
    dbuf_free(&b);
    return found;
}

/* Writes data to file through a temporary file renamed over it. */
static int write_all(const char *file, const struct dbuf *data, char *err, size_t errsz)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", file, (long)getpid()) >= (int)sizeof(tmp))
        return fail(err, errsz, "%s: the path is too long", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(err, errsz, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < data->len) {
        ssize_t w = write(fd, data->data + off, data->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, file) < 0)
        goto fail;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return fail(err, errsz, "%s: %s", file, strerror(e));
}

/* Makes the folder of the default file ($XDG_CONFIG_HOME/davit), mode 0700, when missing. */
static void make_parent(const char *file)
{
    char dir[4096];
    const char *slash = strrchr(file, '/');
    if (!slash || slash == file || (size_t)(slash - file) >= sizeof(dir))
        return;
    memcpy(dir, file, (size_t)(slash - file));
    dir[slash - file] = '\0';
    /* its own parent ($HOME/.config) first; errors show up when the file is written */
    char *up = strrchr(dir, '/');
    if (up && up != dir) {
        *up = '\0';
        (void)mkdir(dir, 0700);
        *up = '/';
    }
    (void)mkdir(dir, 0700);
}

int known_pools_put(const char *file, const char *server, const char *pool,
                    const struct known_pool *pin, char *err, size_t errsz)
{
    struct dbuf old = DBUF_INIT(KNOWN_POOLS_MAX), out = DBUF_INIT(KNOWN_POOLS_MAX);
    int rc = -1;
    if (strpbrk(pool, " \t\r\n#") || strpbrk(server, " \t\r\n") || !*pool || !*server) {
        fail(err, errsz, "pool %s: the name cannot be written into the known-pools file", pool);
        goto out;
    }
    err[0] = '\0';
    if (read_all(file, &old, err, errsz) < 0)
        goto out;
    char *f[4];
    /* old.data is not NUL-ended: walk it line by line */
    for (size_t i = 0; i < old.len;) {
        const char *nl = memchr(old.data + i, '\n', old.len - i);
        size_t n = nl ? (size_t)(nl - (old.data + i)) : old.len - i;
        char *line = strndup(old.data + i, n);
        if (!line) {
            fail(err, errsz, "%s: out of memory", file);
            goto out;
        }
        int drop = split_line(line, f) && matches(f, server, pool);
        free(line);
        if (!drop && (dbuf_add(&out, old.data + i, n) < 0 || dbuf_addch(&out, '\n') < 0)) {
            fail(err, errsz, "%s: out of memory", file);
            goto out;
        }
        i += n + 1;
    }
    if (dbuf_printf(&out, "%.*s %s %s %s\n", (int)server_len(server), server, pool, pin->pool_id,
                    pin->key_id) < 0) {
        fail(err, errsz, "%s: out of memory", file);
        goto out;
    }
    make_parent(file);
    rc = write_all(file, &out, err, errsz);
out:
    dbuf_free(&old);
    dbuf_free(&out);
    return rc;
}

int known_pools_key_id_file(const char *path, char out[SEAL_KEY_ID_HEX], char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errsz, "%s: %s", path, strerror(errno));
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (!k) {
        rewind(f);
        X509_REQ *req = PEM_read_X509_REQ(f, NULL, NULL, NULL);
        k = req ? X509_REQ_get_pubkey(req) : NULL;
        X509_REQ_free(req);
    }
    fclose(f);
    int rc = k ? seal_key_id(k, out) : -1;
    EVP_PKEY_free(k);
    if (rc < 0)
        return fail(err, errsz, "%s: not a public key or a CSR (PEM)", path);
    return 0;
}
