/*
 * admission: whether this launcher runs a spec at all, decided before any
 * container exists (docs/launcher.md, "Admission").
 *
 * Three checks, in order:
 *   1. a spec naming no image gets DAVIT_DEFAULT_RUNNER_IMAGE, or is refused;
 *   2. DAVIT_ALLOWED_IMAGES: the image, normalised as Docker does
 *      ("busybox" is "docker.io/library/busybox:latest"), must match one of
 *      the fnmatch(3) globs (no FNM_PATHNAME: "*" crosses "/");
 *   3. DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK: an executable (never a shell
 *      string) gets {"run_id", "pool", "spec"} on stdin, the secrets' values
 *      replaced by "***"; a non-zero exit refuses the run with the first line
 *      of its stderr, and so does outliving
 *      DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT (its process group is
 *      killed then).
 * Thread-safe: nothing is shared but the configuration, read only.
 */
#ifndef DAVIT_LAUNCHER_ADMISSION_H
#define DAVIT_LAUNCHER_ADMISSION_H

#include "common/runspec.h"
#include "launcher/config.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Checks the hook once at start: c->init_hook is replaced by its resolved
 * path, which must be an executable regular file. Returns 0, or -1 with one
 * line in err naming the variable.
 */
int admission_setup(struct launcher_config *c, char *err, size_t errsz);

/*
 * Writes image's normalised reference into out: registry (docker.io when the
 * first component has no "." or ":" and is not "localhost"), "library/" for
 * a one-component Docker Hub name, and ":latest" when it has neither tag nor
 * digest. Returns 0, or -1 when out is too small.
 */
int admission_normalise(const char *image, char *out, size_t size);

/*
 * Admits spec for run run_id of pool: may set spec->image to the default.
 * Returns 0 (admitted), or -1 with the refusal's reason in reason, the run's
 * result reason (it ends failed with no container).
 */
int admission_check(const struct launcher_config *c, struct runspec *spec, int64_t run_id,
                    const char *pool, char *reason, size_t rsz);

#endif
