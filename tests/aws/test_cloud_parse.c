/* The Azure and GCP providers' reading of their answers (src/cli/azure.c, gcp.c, rest.c): pure,
 * from JSON as the clouds document it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cloud_http.h"
#include "cli/provider.h"
#include "cli/rest.h"

static struct prov_group *new_group(void)
{
    struct prov_group *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    g->instances = calloc(PROV_MAX_INSTANCES, sizeof(*g->instances));
    assert_non_null(g->instances);
    return g;
}

static void free_group(struct prov_group *g)
{
    prov_group_free(g);
    free(g);
}

static void test_azure_vms(void **state)
{
    (void)state;
    char err[256];
    struct prov_group *g = new_group();
    json_t *page = json_loads(
        "{\"value\": ["
        " {\"instanceId\": \"3\", \"name\": \"pool_3\", \"properties\": {\"provisioningState\":"
        "  \"Succeeded\", \"timeCreated\": \"2026-12-03T13:00:00.2500000+00:00\"}},"
        " {\"instanceId\": \"4\", \"name\": \"pool_4\", \"properties\": {\"provisioningState\":"
        "  \"Creating\"}},"
        " {\"instanceId\": \"5\", \"properties\": {\"provisioningState\": \"Deleting\"}},"
        " {\"instanceId\": \"6\", \"properties\": {\"provisioningState\": \"Failed\"}}],"
        " \"nextLink\": \"https://management.azure.com/next\"}",
        0, NULL);
    assert_non_null(page);
    assert_int_equal(azure_parse_vms(page, g, err, sizeof(err)), 0);
    assert_int_equal(g->n_instances, 4);
    assert_string_equal(g->instances[0].id, "3");
    assert_string_equal(g->instances[0].lifecycle, "InService");
    assert_int_equal(g->instances[0].launch_ms, 1796302800250LL);
    assert_string_equal(g->instances[1].lifecycle, "Pending");
    assert_int_equal(g->instances[1].launch_ms, -1);
    assert_string_equal(g->instances[2].lifecycle, "Terminating");
    /* A failed VM still counts in the capacity: with no worker, a stray. */
    assert_string_equal(g->instances[3].lifecycle, "InService");
    json_decref(page);
    /* Not a page, or a VM with no instanceId: refused, named. */
    page = json_loads("{\"value\": {}}", 0, NULL);
    assert_int_equal(azure_parse_vms(page, g, err, sizeof(err)), -1);
    json_decref(page);
    page = json_loads("{\"value\": [{\"name\": \"x\"}]}", 0, NULL);
    assert_int_equal(azure_parse_vms(page, g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "instanceId"));
    json_decref(page);
    free_group(g);
}

static void test_gcp_managed(void **state)
{
    (void)state;
    char err[256];
    char(*urls)[GCP_URL_SIZE] = calloc(PROV_MAX_INSTANCES, GCP_URL_SIZE);
    struct prov_group *g = new_group();
    assert_non_null(urls);
    json_t *page =
        json_loads("{\"managedInstances\": ["
                   " {\"instance\": \"https://www.googleapis.com/compute/v1/projects/p/zones/"
                   "europe-west1-b/instances/pool-x1b2\", \"instanceStatus\": \"RUNNING\","
                   "  \"currentAction\": \"NONE\"},"
                   " {\"instance\": \"https://www.googleapis.com/compute/v1/projects/p/zones/"
                   "europe-west1-c/instances/pool-q9z0\", \"currentAction\": \"CREATING\"},"
                   " {\"instance\": \"https://www.googleapis.com/compute/v1/projects/p/zones/"
                   "europe-west1-c/instances/pool-d3l3\", \"currentAction\": \"DELETING\"}]}",
                   0, NULL);
    assert_non_null(page);
    assert_int_equal(gcp_parse_managed(page, g, urls, err, sizeof(err)), 0);
    assert_int_equal(g->n_instances, 3);
    assert_string_equal(g->instances[0].id, "pool-x1b2");
    assert_string_equal(g->instances[0].lifecycle, "InService");
    assert_int_equal(g->instances[0].launch_ms, -1);
    assert_non_null(strstr(urls[0], "/zones/europe-west1-b/instances/pool-x1b2"));
    assert_string_equal(g->instances[1].lifecycle, "Pending");
    assert_string_equal(g->instances[2].lifecycle, "Terminating");
    json_decref(page);
    /* An empty group has no managedInstances at all. */
    page = json_loads("{}", 0, NULL);
    assert_int_equal(gcp_parse_managed(page, g, urls, err, sizeof(err)), 0);
    json_decref(page);
    page = json_loads("{\"managedInstances\": [{\"instance\": \"no-slash\"}]}", 0, NULL);
    assert_int_equal(gcp_parse_managed(page, g, urls, err, sizeof(err)), -1);
    json_decref(page);
    assert_string_equal(gcp_lifecycle("STOPPING"), "Standby");
    assert_string_equal(gcp_lifecycle("RECREATING"), "Pending");
    assert_string_equal(azure_lifecycle(NULL), "InService");
    free(urls);
    free_group(g);
}

static void test_times(void **state)
{
    (void)state;
    /* GCE answers in the zone's offset; Azure with seven fraction digits. */
    assert_int_equal(cloud_http_time("2026-12-03T05:00:00.250-08:00"), 1796302800250LL);
    assert_int_equal(cloud_http_time("2026-12-03T14:30:00+01:30"), 1796302800000LL);
    assert_int_equal(cloud_http_time("2026-12-03T13:00:00.1234567+00:00"), 1796302800123LL);
    assert_int_equal(cloud_http_time("2026-12-03T13:00:00Z"), 1796302800000LL);
    assert_int_equal(cloud_http_time("2026-12-03T13:00:00+1x:00"), -1);
    assert_int_equal(cloud_http_time("yesterday"), -1);
    assert_int_equal(cloud_http_time(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_vms),
        cmocka_unit_test(test_gcp_managed),
        cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
