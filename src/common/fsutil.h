/*
 * fsutil: small file helpers for files that must survive a crash (the
 * server's data directory). Keeps no state; libc only.
 *
 * Durability, in one place: fsutil_write_private() fsyncs the new file's
 * data before the rename and the directory after it, so once it returns 0
 * the file holds the new text even after a power loss. fsutil_sync_dir_of()
 * is the second half alone, for callers that write and fsync their own file
 * and then rename it into place. fsutil_read_text() writes nothing.
 *
 * Errors: -1, with errno set (fsutil_sync_dir_of) or err filled with a
 * message that names the path and the reason (the others).
 */
#ifndef DAVIT_COMMON_FSUTIL_H
#define DAVIT_COMMON_FSUTIL_H

#include <stddef.h>

/*
 * Reads the whole file at path, at most cap bytes, into *out as a
 * NUL-terminated string; the caller frees it. A larger file fails (ENOSPC).
 */
int fsutil_read_text(const char *path, size_t cap, char **out, char *err, size_t errsz);

/*
 * fsyncs the directory that holds path ("." for a bare name), so that a
 * rename or creation in it is durable. Returns 0, or -1 with errno.
 */
int fsutil_sync_dir_of(const char *path);

/*
 * Replaces path with text, readable by the owner only (0600): writes
 * "path.tmp", fsyncs it, renames it over path and fsyncs the directory.
 * On failure path is unchanged and the temporary file is removed.
 */
int fsutil_write_private(const char *path, const char *text, char *err, size_t errsz);

#endif
