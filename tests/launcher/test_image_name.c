/* Unit tests of admission_normalise: how DAVIT_ALLOWED_IMAGES sees an image's name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "launcher/admission.h"

#include <string.h>

static void norm(const char *image, const char *want)
{
    char out[256];
    assert_int_equal(admission_normalise(image, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_docker_hub_names(void **state)
{
    (void)state;
    norm("busybox", "docker.io/library/busybox:latest");
    norm("busybox:1.36", "docker.io/library/busybox:1.36");
    norm("davit/runner-busybox", "docker.io/davit/runner-busybox:latest");
    norm("docker.io/library/alpine:3", "docker.io/library/alpine:3");
}

static void test_registries_ports_and_digests(void **state)
{
    (void)state;
    norm("ghcr.io/acme/tf", "ghcr.io/acme/tf:latest");
    norm("localhost/img", "localhost/img:latest");
    norm("localhost:5000/img", "localhost:5000/img:latest");
    norm("reg:5000/a/b:2", "reg:5000/a/b:2");
    norm("alpine@sha256:0123", "docker.io/library/alpine@sha256:0123");
    norm("ghcr.io/a/b:1@sha256:0123", "ghcr.io/a/b:1@sha256:0123");
    /* "localhostx" is a Docker Hub user, not a registry */
    norm("localhostx/img", "docker.io/localhostx/img:latest");
}

static void test_too_small(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(admission_normalise("busybox", out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_hub_names),
        cmocka_unit_test(test_registries_ports_and_digests),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
