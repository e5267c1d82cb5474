/*
 * docker_auth: registry credentials for image pulls, from a Docker client
 * config.json (the one in DAVIT_DOCKER_CONFIG_DIR).
 *
 * Finds the "auths" entry for the image's registry (Docker Hub when the
 * reference names none) and encodes it as the Engine's X-Registry-Auth
 * header value: base64url of {"username","password","serveraddress"} or
 * {"identitytoken","serveraddress"}. Credential helpers (credsStore,
 * credHelpers) are not run. No state; the result never reaches a log.
 */
#ifndef DAVIT_LAUNCHER_DOCKER_AUTH_H
#define DAVIT_LAUNCHER_DOCKER_AUTH_H

#include <stddef.h>

/* Copies the registry host of image into out ("docker.io" when none is named). Never fails. */
void docker_auth_registry(const char *image, char *out, size_t size);

/*
 * Reads config_dir/config.json and sets *header to the X-Registry-Auth value
 * for image (caller frees), or to NULL when the file or an entry for the
 * registry is absent. Returns 0, or -1 with err when the file exists but
 * cannot be read or is malformed.
 */
int docker_auth_header(const char *config_dir, const char *image, char **header, char *err,
                       size_t errsz);

#endif
