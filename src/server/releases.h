/*
 * releases: worker and launcher releases. Publishing stores the file in the
 * data directory's releases/ (named by its SHA-256) and, when servers share
 * the store (PostgreSQL), in the store (release_blobs), signs it with the
 * server's release key and records it in the store; the handlers list,
 * publish and serve them (docs/protocol.md). On a shared store releases/ is
 * this server's cache of the store's files: a release it lacks (published by
 * another server) is fetched from the store into it at the first download,
 * then served from it. On SQLite releases/ is the one copy. Owns the files under
 * releases/; the rows and blobs belong to the store.
 */
#ifndef DAVIT_SERVER_RELEASES_H
#define DAVIT_SERVER_RELEASES_H

#include <stddef.h>

#include "server/store.h"

struct server;
struct req;

/*
 * Stores a release file, signs it with the release key and records it;
 * fills out. kind "worker" or "launcher", arch "amd64" or "arm64". The file
 * (in releases/ and in the store) is durable before its row is committed. -1 with err ("...
 * required" for bad arguments); -2 with err when the data directory's filesystem is full.
 */
int release_publish(struct server *srv, const char *kind, const char *arch, const char *version,
                    const void *data, size_t len, struct store_release *out, char *err,
                    size_t errsz);
/*
 * On a fresh setup, publishes the workers and launchers found next to the
 * executable at self_path, for each architecture that has none yet:
 * davit-<kind>-linux-<arch> (the file names of `make release`'s dist/), and
 * for this machine's architecture also davit-<kind> (a build directory). A
 * file whose ELF machine is not its architecture's is skipped with an error
 * in the log. Never replaces what an admin published; failures are logged,
 * never fatal.
 */
void release_publish_builtin(struct server *srv, const char *self_path);
/* The text a release signature covers (docs/protocol.md). Caller frees; NULL
 * when a field is too long or memory runs out. */
char *release_signed_text(const char *kind, const char *arch, const char *version,
                          const char *sha256);

/* POST /api/v1/releases: 201, 400 on bad arguments, 507 on a full disk. */
int h_release_publish(struct req *r);
int h_release_list(struct req *r);
/* The newest of a kind and arch, as JSON or (?download=1) the file. */
int h_release_latest(struct req *r);
int h_release_download(struct req *r);

#endif
