/* Unit tests of the in-memory table of registration challenges (challenges.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/challenges.h"

#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1000000

static void test_single_use(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    assert_non_null(t);
    assert_int_equal(challenges_issue(t, "p1", NOW, 60000, id, nonce), 0);
    assert_int_equal(strncmp(id, "dvc_", 4), 0);
    assert_int_equal(challenges_take(t, id, "p1", NOW + 1, got, sizeof(got)), 0);
    assert_string_equal(got, nonce);
    assert_int_equal(challenges_take(t, id, "p1", NOW + 1, got, sizeof(got)), -1);
    /* taken by the wrong pool, it is gone for the right one too */
    assert_int_equal(challenges_issue(t, "p1", NOW, 60000, id, nonce), 0);
    assert_int_equal(challenges_take(t, id, "p2", NOW, got, sizeof(got)), -1);
    assert_int_equal(challenges_take(t, id, "p1", NOW, got, sizeof(got)), -1);
    assert_int_equal(challenges_take(t, "", "p1", NOW, got, sizeof(got)), -1);
    challenges_free(t);
}

static void test_expiry(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    assert_int_equal(challenges_issue(t, "p1", NOW, 1000, id, nonce), 0);
    assert_int_equal(challenges_take(t, id, "p1", NOW + 1001, got, sizeof(got)), -1);
    assert_int_equal(challenges_issue(t, "p1", NOW, 1000, id, nonce), 0);
    assert_int_equal(challenges_take(t, id, "p1", NOW + 1000, got, sizeof(got)), 0);
    challenges_free(t);
}

/* Ten thousand launchers starting at once each hold a challenge between asking and registering
 * (issue 11's storm, bench/load): they all fit. 4096 did not. */
#define STORM 10000

/* Issues challenges with ttl until the table refuses; returns how many it gave, their ids in ids
 * (CHALLENGES_MAX of them at most) and their nonces in nonces. */
static int fill(struct challenges *t, int64_t ttl, char (*ids)[CRYPTO_TOKEN_MAX],
                char (*nonces)[CRYPTO_TOKEN_MAX])
{
    int n = 0;
    int rc;
    while ((rc = challenges_issue(t, "p", NOW, ttl, ids[n], nonces[n])) == 0) {
        n++;
        assert_true(n <= CHALLENGES_MAX);
    }
    assert_int_equal(rc, CHALLENGES_FULL);
    return n;
}

/* A full table refuses: it never grows, and never voids a challenge it gave out. */
static void test_full_table(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char(*ids)[CRYPTO_TOKEN_MAX] = calloc(CHALLENGES_MAX + 1, CRYPTO_TOKEN_MAX);
    char(*nonces)[CRYPTO_TOKEN_MAX] = calloc(CHALLENGES_MAX + 1, CRYPTO_TOKEN_MAX);
    char got[CRYPTO_TOKEN_MAX];
    assert_non_null(ids);
    assert_non_null(nonces);
    int n = fill(t, 60000, ids, nonces);
    assert_true(n >= STORM);
    assert_int_equal(n, CHALLENGES_MAX); /* refused only when every entry is live */
    /* every challenge given is still good after the refusals, and taking one frees room */
    for (int i = 0; i < n; i++) {
        assert_int_equal(challenges_take(t, ids[i], "p", NOW + 100, got, sizeof(got)), 0);
        assert_string_equal(got, nonces[i]);
    }
    assert_int_equal(challenges_issue(t, "p", NOW + 100, 60000, ids[0], nonces[0]), 0);
    assert_int_equal(challenges_take(t, ids[0], "p", NOW + 100, got, sizeof(got)), 0);
    challenges_free(t);
    challenges_free(NULL);
    free(ids);
    free(nonces);
}

/* Expired entries are reused: a table filled with short-lived challenges takes new ones once they
 * have expired, and the expired ones are refused. */
static void test_full_table_expired(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char(*ids)[CRYPTO_TOKEN_MAX] = calloc(CHALLENGES_MAX + 1, CRYPTO_TOKEN_MAX);
    char(*nonces)[CRYPTO_TOKEN_MAX] = calloc(CHALLENGES_MAX + 1, CRYPTO_TOKEN_MAX);
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    assert_non_null(ids);
    assert_non_null(nonces);
    int n = fill(t, 10, ids, nonces);
    for (int i = 0; i < STORM; i++)
        assert_int_equal(challenges_issue(t, "p", NOW + 100, 60000, id, nonce), 0);
    assert_int_equal(challenges_take(t, id, "p", NOW + 100, got, sizeof(got)), 0);
    assert_int_equal(challenges_take(t, ids[n - 1], "p", NOW + 100, got, sizeof(got)), -1);
    challenges_free(t);
    free(ids);
    free(nonces);
}

/* Ids the server never gave are refused, however long. */
static void test_unknown_id(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char got[CRYPTO_TOKEN_MAX], big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(challenges_take(t, "dvc_nope", "p", NOW, got, sizeof(got)), -1);
    assert_int_equal(challenges_take(t, big, "p", NOW, got, sizeof(got)), -1);
    assert_int_equal(challenges_take(t, "", "p", NOW, got, sizeof(got)), -1);
    /* a made-up id naming a live challenge's entry neither gets it nor voids it */
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], fake[CRYPTO_TOKEN_MAX];
    assert_int_equal(challenges_issue(t, "p", NOW, 60000, id, nonce), 0);
    snprintf(fake, sizeof(fake), "%s", id);
    fake[strlen(fake) - 1] = fake[strlen(fake) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(challenges_take(t, fake, "p", NOW, got, sizeof(got)), -1);
    assert_int_equal(challenges_take(t, id, "p", NOW, got, sizeof(got)), 0);
    assert_string_equal(got, nonce);
    challenges_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_use), cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_full_table), cmocka_unit_test(test_full_table_expired),
        cmocka_unit_test(test_unknown_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
