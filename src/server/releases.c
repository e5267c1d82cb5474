/* Worker and launcher releases: stored, signed, listed and served. */
#include "server/releases.h"

#include "server/request.h"
#include "server/state.h"

#include "common/crypto.h"
#include "common/dbuf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/sigmsg.h"

#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

char *release_signed_text(const char *kind, const char *arch, const char *version,
                          const char *sha256)
{
    char buf[SIGMSG_MAX];
    if (sigmsg_release(buf, sizeof(buf), kind, arch, version, sha256) < 0)
        return NULL;
    return strdup(buf);
}

static int version_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64)
        return 0;
    return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+-_") == n;
}

int release_publish(struct server *srv, const char *kind, const char *arch, const char *version,
                    const void *data, size_t len, struct store_release *out, char *err,
                    size_t errsz)
{
    char path[PATH_MAX + 96];
    char *text = NULL, *sig = NULL;
    int nospace = 0;
    if ((strcmp(kind, "worker") != 0 && strcmp(kind, "launcher") != 0) ||
        (strcmp(arch, "amd64") != 0 && strcmp(arch, "arm64") != 0) || !version_ok(version) ||
        len == 0) {
        snprintf(err, errsz,
                 "kind (worker, launcher), arch (amd64, arm64), version"
                 " ([A-Za-z0-9.+_-], 1-64) and a non-empty file are required");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    crypto_sha256_hex(data, len, out->sha256);
    snprintf(path, sizeof(path), "%s/%s", srv->releases_dir, out->sha256);
    /* Durable before the database row that points at it is committed. 0600: only this server
     * reads it (it serves it over HTTP); nothing in the data directory is for others. */
    if (fsutil_write_file(path, data, len, 0600, err, errsz) < 0)
        return errno == ENOSPC ? -2 : -1;
    /* In a shared store before its row too: every server sharing the store serves it (the
     * file above is this server's cache of it; send_release fetches what a server lacks).
     * A store of one server's own (SQLite) keeps nothing: the file above is the one copy. */
    if (store_release_blob_put(srv->store, out->sha256, data, len) < 0) {
        nospace = store_failed_for_space();
        snprintf(err, errsz, "release: the database failed to store the file");
        goto fail;
    }
    text = release_signed_text(kind, arch, version, out->sha256);
    if (!text || crypto_ed25519_sign(srv->release_key_pem, text, strlen(text), &sig) < 0) {
        snprintf(err, errsz, "release: cannot sign");
        goto fail;
    }
    snprintf(out->kind, sizeof(out->kind), "%s", kind);
    snprintf(out->arch, sizeof(out->arch), "%s", arch);
    snprintf(out->version, sizeof(out->version), "%s", version);
    snprintf(out->signature, sizeof(out->signature), "%s", sig);
    out->size = (int64_t)len;
    if (store_release_add(srv->store, out) < 0) {
        nospace = store_failed_for_space();
        snprintf(err, errsz, "release: the database failed");
        goto fail;
    }
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)out->id);
    log_event(LOG_INFO, "release published", "id", ids, "kind", kind, "arch", arch, "version",
              version, "sha256", out->sha256, NULL);
    free(text);
    free(sig);
    return 0;
fail:
    free(text);
    free(sig);
    return nospace ? -2 : -1;
}

static const char *host_arch(void)
{
    struct utsname u;
    if (uname(&u) == 0 && (strcmp(u.machine, "aarch64") == 0 || strcmp(u.machine, "arm64") == 0))
        return "arm64";
    return "amd64";
}

/* 1 when data is a 64-bit little-endian ELF file for arch. A release's arch is
 * signed, so a file published under the wrong one would be trusted by every
 * launcher of the other architecture and fail only when it runs. */
static int elf_for_arch(const unsigned char *data, size_t len, const char *arch)
{
    Elf64_Ehdr eh;
    if (len < sizeof(eh))
        return 0;
    memcpy(&eh, data, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return 0;
    return eh.e_machine == (strcmp(arch, "arm64") == 0 ? EM_AARCH64 : EM_X86_64);
}

/* Publishes dir/file as kind for arch. Every failure is logged. */
static void publish_file(struct server *srv, const char *dir, const char *file, const char *kind,
                         const char *arch)
{
    char path[PATH_MAX + 64], err[256];
    struct store_release rel;
    struct dbuf b = DBUF_INIT(BODY_CAP_RELEASE);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (dbuf_read_file(&b, path) < 0) {
        log_event(LOG_INFO, "no built-in release to publish", "kind", kind, "arch", arch, "path",
                  path, "reason", strerror(errno), NULL);
    } else if (!elf_for_arch((const unsigned char *)b.data, b.len, arch)) {
        log_event(LOG_ERROR, "built-in release not published", "kind", kind, "arch", arch, "path",
                  path, "reason", "not an ELF executable for this architecture", NULL);
    } else if (release_publish(srv, kind, arch, DAVIT_VERSION, b.data, b.len, &rel, err,
                               sizeof(err)) < 0) {
        log_event(LOG_ERROR, "publishing the built-in release failed", "kind", kind, "arch", arch,
                  "reason", err, NULL);
    }
    dbuf_free(&b);
}

void release_publish_builtin(struct server *srv, const char *self_path)
{
    static const char *const kinds[] = {"worker", "launcher"};
    static const char *const arches[] = {"amd64", "arm64"};
    char *copy = strdup(self_path);
    if (!copy)
        return;
    const char *dir = dirname(copy);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (size_t a = 0; a < sizeof(arches) / sizeof(arches[0]); a++) {
            struct store_release rel;
            char file[64];
            if (store_release_latest(srv->store, kinds[k], arches[a], &rel) != STORE_NOTFOUND)
                continue; /* only on a fresh setup: never replace what an admin published */
            char path[PATH_MAX + 64];
            snprintf(file, sizeof(file), "davit-%s-linux-%s", kinds[k], arches[a]);
            snprintf(path, sizeof(path), "%s/%s", dir, file);
            if (access(path, F_OK) == 0) {
                publish_file(srv, dir, file, kinds[k], arches[a]);
            } else if (strcmp(arches[a], host_arch()) == 0) {
                /* A build directory holds this machine's programs under their plain names. */
                snprintf(file, sizeof(file), "davit-%s", kinds[k]);
                publish_file(srv, dir, file, kinds[k], arches[a]);
            }
        }
    }
    free(copy);
}

int h_release_publish(struct req *r)
{
    const char *kind = req_query(r, "kind"), *arch = req_query(r, "arch");
    const char *version = req_query(r, "version");
    struct store_release rel;
    char err[512];
    if (!arch || !version)
        return reply_error(r, 400, "arch and version are required (?arch=amd64&version=V)");
    int rc = release_publish(r->srv, kind ? kind : "worker", arch, version, r->body.data,
                             r->body.len, &rel, err, sizeof(err));
    if (rc == -2)
        return reply_error(r, 507,
                           "release: " STORE_NOSPACE_TEXT " (no space left on the data"
                           " directory's filesystem); try again later");
    if (rc < 0)
        return reply_error(r, strstr(err, "required") ? 400 : 500, "%s", err);
    return reply_json(r, 201, store_release_json(&rel));
}

int h_release_list(struct req *r)
{
    json_t *arr;
    int rc = store_release_list_json(r->srv->store, &arr);
    if (rc < 0)
        return reply_store_error(r, rc, "releases");
    return reply_json(r, 200, json_pack("{s:o}", "releases", arr));
}

/*
 * Puts the release's file, from the store, at path in this server's cache (releases/): a release
 * another server published, or a cache lost. Checked against its sha256, then written whole
 * (temporary file, fsync, rename: a reader never sees part of it; two requests may both fetch,
 * the last rename wins with the same bytes). 0, or -1 logged.
 */
static int fetch_release(struct server *srv, const struct store_release *rel, const char *path)
{
    void *data = NULL;
    size_t len = 0;
    char sum[CRYPTO_SHA256_HEX], err[PATH_MAX + 128];
    int rc = store_release_blob_get(srv->store, rel->sha256, &data, &len);
    if (rc < 0) {
        log_event(LOG_ERROR, "cannot fetch a release file from the database", "path", path,
                  "reason",
                  rc == STORE_NOTFOUND ? "not in the database either (a database of one server's"
                                         " own keeps no files, or it was published before"
                                         " the database kept them: publish it again)"
                                       : "the database failed",
                  NULL);
        return -1;
    }
    crypto_sha256_hex(data, len, sum);
    if (strcmp(sum, rel->sha256) != 0) {
        log_event(LOG_ERROR, "release file in the database does not match its sha256", "sha256",
                  rel->sha256, "got", sum, NULL);
        free(data);
        return -1;
    }
    rc = fsutil_write_file(path, data, len, 0600, err, sizeof(err));
    free(data);
    if (rc < 0) {
        log_event(LOG_ERROR, "cannot cache a release file", "reason", err, NULL);
        return -1;
    }
    log_event(LOG_INFO, "release file fetched from the database", "sha256", rel->sha256, NULL);
    return 0;
}

static int send_release(struct req *r, const struct store_release *rel)
{
    char path[PATH_MAX + 96];
    snprintf(path, sizeof(path), "%s/%s", r->srv->releases_dir, rel->sha256);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    /* Not cached here yet: from the store, once; later downloads take the path above. */
    if (fd < 0 && errno == ENOENT && fetch_release(r->srv, rel, path) == 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        log_event(LOG_ERROR, "release file missing", "path", path, NULL);
        return reply_error(r, 500, "release %lld: its file is missing", (long long)rel->id);
    }
    r->resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r->resp) {
        close(fd);
        return reply_error(r, 500, "out of memory");
    }
    r->status = 200;
    MHD_add_response_header(r->resp, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r->resp, "X-Davit-Sha256", rel->sha256);
    MHD_add_response_header(r->resp, "X-Davit-Signature", rel->signature);
    MHD_add_response_header(r->resp, "X-Davit-Version", rel->version);
    return HANDLER_DONE;
}

int h_release_latest(struct req *r)
{
    const char *kind = req_query(r, "kind"), *arch = req_query(r, "arch");
    const char *dl = req_query(r, "download");
    struct store_release rel;
    if (!kind)
        kind = "worker";
    if (!arch)
        return reply_error(r, 400, "arch is required (?arch=amd64)");
    int rc = store_release_latest(r->srv->store, kind, arch, &rel);
    if (rc == STORE_NOTFOUND)
        return reply_error(r, 404, "no %s release for %s", kind, arch);
    if (rc < 0)
        return reply_store_error(r, rc, "release");
    if (dl && strcmp(dl, "1") == 0)
        return send_release(r, &rel);
    return reply_json(r, 200, store_release_json(&rel));
}

int h_release_download(struct req *r)
{
    int64_t id;
    struct store_release rel;
    if (req_id(r, 0, &id) < 0)
        return HANDLER_DONE;
    int rc = store_release_get(r->srv->store, id, &rel);
    if (rc < 0)
        return reply_store_error(r, rc, "release");
    return send_release(r, &rel);
}
