/*
 * docker: a small client for the Docker Engine API over libcurl.
 *
 * Speaks to the Engine named by DOCKER_HOST: unix:///path (CURLOPT_UNIX_SOCKET_PATH)
 * or tcp://host[:port] (Docker-in-Docker sidecar; https with client
 * certificates when DOCKER_TLS_VERIFY is set, from DOCKER_CERT_PATH).
 * docker_ping checks /_ping and /version and settles on an API version from
 * 1.41 up to the newest this client knows; every later call is versioned.
 *
 * A struct docker owns one curl handle (keep-alive connection) and is not
 * thread-safe. Every call has a timeout. On failure a call returns -1 and
 * fills err with one line naming the call, the HTTP status and the Engine's
 * message: "docker: create container davit-42: HTTP 404: No such image: x:y".
 * With debug on, every call is logged (method, path, status, time); request
 * bodies are never logged.
 */
#ifndef DAVIT_LAUNCHER_DOCKER_H
#define DAVIT_LAUNCHER_DOCKER_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DOCKER_API_MIN "1.41"
#define DOCKER_ID_MAX  80

struct docker;

/*
 * Parses host ("unix:///var/run/docker.sock", "tcp://127.0.0.1:2375") and
 * prepares a client; does not connect. Returns 0 and *out (caller frees with
 * docker_close), or -1 with err for an unsupported DOCKER_HOST.
 */
int docker_open(struct docker **out, const char *host, int64_t timeout_ms, int debug, char *err,
                size_t errsz);
void docker_close(struct docker *d);

/* The DOCKER_HOST this client talks to, for messages. Never fails. */
const char *docker_host(const struct docker *d);

/*
 * Installs a function asked during every transfer whether to give up (for
 * cancellation while pulling). A call it aborts fails with "interrupted".
 */
void docker_set_abort(struct docker *d, int (*fn)(void *), void *arg);

/* /_ping, then /version: fails unless the Engine speaks API 1.41 or newer. */
int docker_ping(struct docker *d, char *err, size_t errsz);

/* The API version in use after docker_ping ("1.41"). */
const char *docker_api_version(const struct docker *d);

/* Returns 1 if the image is present locally, 0 if not, -1 on error. */
int docker_image_present(struct docker *d, const char *image, char *err, size_t errsz);

/*
 * Pulls image (name[:tag][@digest]; tag defaults to latest). auth is the
 * X-Registry-Auth value (docker_auth.h) or NULL. Errors reported inside the
 * pull's progress stream count as failures; err then holds the Engine's reason
 * alone, without the "docker: pull" prefix, so that callers can quote it. A
 * progress line longer than 1 MiB fails the pull too (what follows it, an
 * error included, could not be read).
 */
int docker_image_pull(struct docker *d, const char *image, const char *auth, int64_t timeout_ms,
                      char *err, size_t errsz);

/* Creates a container named name from body (the Engine's create JSON) and
 * copies its id into id (DOCKER_ID_MAX bytes). */
int docker_container_create(struct docker *d, const char *name, json_t *body, char *id, char *err,
                            size_t errsz);
int docker_container_start(struct docker *d, const char *id, char *err, size_t errsz);

/* Sends signal ("SIGTERM", "SIGKILL"). A container that is not running is not an error. */
int docker_container_kill(struct docker *d, const char *id, const char *signal, char *err,
                          size_t errsz);

/* Removes the container forcibly with its anonymous volumes. One already gone is not an error. */
int docker_container_remove(struct docker *d, const char *id, char *err, size_t errsz);

/* Returns 1 and *out (caller decrefs), 0 when there is no such container, -1 on error. */
int docker_container_inspect(struct docker *d, const char *id, json_t **out, char *err,
                             size_t errsz);

/* All containers (running or not) carrying label ("key=value"). *out: caller decrefs. */
int docker_container_list(struct docker *d, const char *label, json_t **out, char *err,
                          size_t errsz);

/*
 * Waiting for a container to stop without blocking: a second connection runs
 * POST /containers/{id}/wait in a curl multi handle, so that the caller can
 * wait on it together with its own file descriptors. The wait is re-armed
 * when its own timeout passes, so it can last as long as the run.
 */
struct docker_wait;

int docker_wait_begin(struct docker *d, const char *id, struct docker_wait **out, char *err,
                      size_t errsz);

/*
 * Waits up to timeout_ms for the container to stop or for one of fds
 * (revents filled in) to be ready. Returns 1 once the container has stopped
 * (with *status its exit code), 0 otherwise, -1 on error (the caller may
 * begin a new wait).
 */
int docker_wait_step(struct docker_wait *w, struct curl_waitfd *fds, unsigned nfds, int timeout_ms,
                     long *status, char *err, size_t errsz);

/* Frees w. NULL is fine. */
void docker_wait_end(struct docker_wait *w);

#endif
