#include "launcher/release.h"

#include "common/crypto.h"
#include "common/fsutil.h"
#include "common/hex.h"
#include "common/sigmsg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".download-"

int release_file_sha256(int fd, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32], buf[65536];
    unsigned int mdlen;
    off_t pos = 0;
    int rc = -1;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto done;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            goto done;
        pos += n;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        goto done;
    hex_encode(md, 32, out);
    rc = 0;
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int release_verify(const struct release *r, EVP_PKEY *release_key, char *err, size_t errsz)
{
    char msg[SIGMSG_MAX];
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *ctx = NULL;
    int rc = -1;

    int n = sigmsg_release(msg, sizeof(msg), r->kind, r->arch, r->version, r->sha256);
    if (n < 0 || strlen(r->sha256) != 64) {
        snprintf(err, errsz, "%s release %s (%s): incomplete metadata from the server", r->kind,
                 r->version, r->arch);
        return -1;
    }
    if (crypto_b64_decode(r->signature, &sig, &siglen) < 0 || siglen != 64) {
        snprintf(err, errsz, "%s release %s (%s): the signature is not 64 bytes of base64", r->kind,
                 r->version, r->arch);
        goto done;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, release_key) != 1 ||
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, (size_t)n) != 1) {
        snprintf(err, errsz,
                 "%s release %s (%s): the signature does not verify with the release key in the "
                 "pool token: refusing it",
                 r->kind, r->version, r->arch);
        goto done;
    }
    rc = 0;
done:
    EVP_MD_CTX_free(ctx);
    free(sig);
    return rc;
}

/* Removes downloads that a crash left behind. Best effort. */
static void remove_stale_downloads(const char *cache_dir)
{
    DIR *d = opendir(cache_dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

/* 1 when path holds a file with the expected digest; a wrong one is removed. */
static int cached(const char *path, const char *sha256)
{
    char got[65];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = release_file_sha256(fd, got) == 0 && strcmp(got, sha256) == 0;
    close(fd);
    if (!ok)
        unlink(path);
    return ok;
}

int release_fetch(const char *cache_dir, const struct release *r, EVP_PKEY *release_key,
                  release_download_fn fn, void *arg, char *path, size_t size, char *err,
                  size_t errsz)
{
    char tmp[4096], got[65];
    int fd = -1;

    if (release_verify(r, release_key, err, errsz) < 0)
        return -1;
    if (mkdir(cache_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "release cache %s: %s", cache_dir, strerror(errno));
        return -1;
    }
    snprintf(path, size, "%s/%s", cache_dir, r->sha256);
    if (cached(path, r->sha256))
        return 1;

    remove_stale_downloads(cache_dir);
    snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%s-XXXXXX", cache_dir, r->sha256);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsz, "release cache %s: cannot create a file: %s", cache_dir,
                 strerror(errno));
        return -1;
    }
    if (fn(arg, r, fd, err, errsz) < 0)
        goto fail;
    if (release_file_sha256(fd, got) < 0) {
        snprintf(err, errsz, "release cache: cannot read back %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (strcmp(got, r->sha256) != 0) {
        snprintf(err, errsz,
                 "%s release %s (%s): the download has sha256 %.12s…, the signed release says "
                 "%.12s…: refusing it",
                 r->kind, r->version, r->arch, got, r->sha256);
        goto fail;
    }
    /* Durable before it is visible: a crash never leaves a torn binary in place. */
    if (fsutil_install(fd, tmp, path, 0755) < 0) {
        snprintf(err, errsz, "release cache: cannot install %s: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    return 0;

fail:
    close(fd);
    unlink(tmp);
    return -1;
}
