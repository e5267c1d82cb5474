/*
 * The cost of wiping every block jansson frees (json_set_alloc_funcs(malloc, secure_free), as
 * davit and davit-launcher's main do), on the JSON work the server does for one run: parse the
 * submitted body, dump its spec and secrets for the store, load them back and dump the run
 * message a launcher's poll gets. Count instructions with callgrind, plain free against
 * secure_free (docs/benchmarks.md):
 *
 *   gcc -O2 -Isrc bench/json_free_cost.c src/common/secure.c -ljansson -o /tmp/json_free_cost
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null /tmp/json_free_cost free 1000
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null /tmp/json_free_cost secure 1000
 */
#include "common/secure.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char body[] =
    "{\"pool\":\"p\",\"spec\":{\"image\":\"davit/runner-busybox\",\"phases\":["
    "{\"name\":\"plan\",\"commands\":[\"terraform init\",\"terraform plan -out plan.bin\"]},"
    "{\"name\":\"apply\",\"commands\":[\"terraform apply plan.bin\"],\"timeout\":\"30m\"}],"
    "\"env\":{\"TF_IN_AUTOMATION\":\"1\",\"AWS_REGION\":\"eu-west-1\"},"
    "\"secrets\":{\"AWS_ACCESS_KEY_ID\":\"AKIAIOSFODNN7EXAMPLE\","
    "\"AWS_SECRET_ACCESS_KEY\":\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\","
    "\"GITHUB_TOKEN\":\"ghp_0123456789abcdef0123456789abcdef0123\"},"
    "\"timeouts\":{\"run\":\"70m\",\"output\":\"7m\",\"kill_grace\":\"10s\"}}}";

static void one_run(void)
{
    json_t *req = json_loads(body, 0, NULL);
    json_t *spec = json_deep_copy(json_object_get(req, "spec"));
    json_t *secrets = json_incref(json_object_get(spec, "secrets"));
    json_object_del(spec, "secrets");
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    char *secrets_text = json_dumps(secrets, JSON_COMPACT);
    json_decref(secrets);
    json_decref(spec);
    json_decref(req);
    /* The poll: the stored texts back into the run message. */
    spec = json_loads(spec_text, 0, NULL);
    json_object_set_new(spec, "secrets", json_loads(secrets_text, 0, NULL));
    json_t *msg = json_pack("{s:[{s:s, s:{s:I, s:o}}]}", "messages", "type", "run", "run", "id",
                            (json_int_t)42, "spec", spec);
    char *out = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    secure_free_str(out);
    secure_free_str(spec_text);
    secure_free_str(secrets_text);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "free") != 0 && strcmp(argv[1], "secure") != 0)) {
        fprintf(stderr, "usage: json_free_cost free|secure RUNS\n");
        return 2;
    }
    json_object_seed(1); /* the same hashing in both runs: callgrind counts repeat */
    if (strcmp(argv[1], "secure") == 0)
        json_set_alloc_funcs(malloc, secure_free);
    for (int i = atoi(argv[2]); i > 0; i--)
        one_run();
    return 0;
}
