/*
 * fsutil: small file helpers for files that must survive a crash (the
 * server's data directory). Keeps no state; libc only.
 *
 * Durability, in one place and with one policy: every file replaced through
 * here is written to a temporary file, fsynced, renamed over its path, and
 * the directory is fsynced, so once a call returns 0 the path holds the
 * whole new content even after a power loss, and a crash at any point leaves
 * the old content or the new, never a torn file. fsutil_write_file() does it
 * all; fsutil_install() is the second half for a caller that streams its own
 * temporary file (a download); fsutil_sync_dir_of() is the directory fsync
 * alone. fsutil_read_text() writes nothing.
 *
 * Errors: -1, with errno set (fsutil_sync_dir_of) or err filled with a
 * message that names the path and the reason (the others).
 */
#ifndef DAVIT_COMMON_FSUTIL_H
#define DAVIT_COMMON_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Part of every temporary file's name ("PATH.tmp-XXXXXX"), for readers of a
 * directory to skip what a crash left half-made. */
#define FSUTIL_TMP_MARK ".tmp-"

/*
 * Reads the whole file at path, at most cap bytes, into *out as a
 * NUL-terminated string; the caller frees it (secure_free_str for a key or
 * a token). A larger file fails (ENOSPC). The copies made on the way are
 * wiped (a buffer for secrets, common/dbuf.h).
 */
int fsutil_read_text(const char *path, size_t cap, char **out, char *err, size_t errsz);

/*
 * A program to run: path resolved by realpath(3) into out (PATH_MAX bytes),
 * which must name a regular, executable file. 0, or -1 with err saying
 * "PATH: reason" (the path as given, or as resolved once it is).
 */
int fsutil_executable(const char *path, char *out, char *err, size_t errsz);

/*
 * fsyncs the directory that holds path ("." for a bare name), so that a
 * rename or creation in it is durable. Returns 0, or -1 with errno.
 */
int fsutil_sync_dir_of(const char *path);

/*
 * Replaces path with len bytes of data, with the given mode, as the policy
 * above says. On failure path is unchanged and the temporary file is
 * removed; err names the path and the reason, and errno is the cause
 * (ENOSPC for a full disk).
 */
int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errsz);

/* fsutil_write_file() of text with mode 0600: readable by the owner only. */
int fsutil_write_private(const char *path, const char *text, char *err, size_t errsz);

/* Writes all len bytes to fd, resuming after short writes and EINTR.
 * Returns 0, or -1 with errno. */
int fsutil_write_all(int fd, const void *data, size_t len);

/*
 * Puts the temporary file tmp, open as fd and fully written, in place at
 * path: sets mode, fsyncs it, renames it and fsyncs the directory. Returns
 * 0, or -1 with errno; the caller still closes fd (and unlinks tmp on
 * failure).
 */
int fsutil_install(int fd, const char *tmp, const char *path, mode_t mode);

#endif
