/*
 * aws: the few AWS calls `davit autoscale` makes (docs/autoscale.md), over
 * libcurl with its built-in Signature Version 4 (CURLOPT_AWS_SIGV4): Auto
 * Scaling's and EC2's Query APIs, whose XML answers are read with expat.
 *
 * Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN, or else from the instance's role through IMDSv2
 * (AWS_EC2_METADATA_SERVICE_ENDPOINT overrides http://169.254.169.254, as
 * in AWS's SDKs). The region is the one given, or AWS_REGION,
 * AWS_DEFAULT_REGION, or the instance's. The endpoint is
 * https://SERVICE.REGION.amazonaws.com unless one is given for both
 * services; AWS_CA_BUNDLE adds a CA file.
 *
 * A struct aws owns its credentials (wiped by aws_close). Every call
 * returns 0, or -1 with err filled with one line naming the action and
 * AWS's error code and message (control bytes replaced); AWS_EAUTH is
 * returned instead of -1 when AWS refused the credentials (expired or
 * invalid), so that the caller can stop at once.
 */
#ifndef DAVIT_CLI_AWS_H
#define DAVIT_CLI_AWS_H

#include "cli/autoscale.h"
#include "cli/provider.h"

#include <stddef.h>
#include <stdint.h>

#define AWS_EAUTH PROV_EAUTH

/* The most instances one group's answer may hold here (Auto Scaling's own quota is lower). */
#define AWS_MAX_INSTANCES PROV_MAX_INSTANCES

struct aws {
    char region[64];
    char endpoint[512]; /* "" for AWS's own */
    char ca_file[512];  /* "" for the system's */
    char imds[256];
    char access_key[128];
    char secret_key[256];
    char session_token[4096];
    int from_imds; /* the credentials came from the instance's role: they can be fetched again */
};

/*
 * Fills a from the environment (and IMDSv2 when there are no credentials or no region there).
 * region and endpoint may be NULL. -1 with err when no credentials or region can be found.
 */
int aws_open(struct aws *a, const char *region, const char *endpoint, char *err, size_t errsz);
/* Fetches the instance role's credentials again (they rotate). Same returns. */
int aws_refresh(struct aws *a, char *err, size_t errsz);
/* Wipes the credentials. */
void aws_close(struct aws *a);

int aws_describe_group(struct aws *a, const char *group, struct prov_group *out, char *err,
                       size_t errsz);
/* The group's EC2_INSTANCE_TERMINATING hook; out->name is "" when it has none. */
int aws_termination_hook(struct aws *a, const char *group, struct prov_hook *out, char *err,
                         size_t errsz);
/* Sets launch_ms (EC2 DescribeInstances) of the instances of g whose launch_ms is -1 and for
 * which want(i) holds. */
int aws_launch_times(struct aws *a, struct prov_group *g, const int *want, char *err, size_t errsz);
int aws_set_desired(struct aws *a, const char *group, int desired, char *err, size_t errsz);
int aws_terminate(struct aws *a, const char *instance_id, int decrement, char *err, size_t errsz);
int aws_complete_lifecycle(struct aws *a, const char *group, const char *hook,
                           const char *instance_id, char *err, size_t errsz);
/* RecordLifecycleActionHeartbeat: the hook's heartbeat timeout starts again. */
int aws_heartbeat_lifecycle(struct aws *a, const char *group, const char *hook,
                            const char *instance_id, char *err, size_t errsz);

/*
 * The XML reading, exposed for the unit tests: calls fn(ud, path, text) for every element,
 * path being its ancestors' and its own local names joined by '/' (from the root), at its
 * start with text NULL and at its end with its text. -1 with err for XML that is not well-formed.
 */
int aws_xml_walk(const char *xml, size_t len,
                 void (*fn)(void *ud, const char *path, const char *text), void *ud, char *err,
                 size_t errsz);

#endif
