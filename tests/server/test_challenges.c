/* Unit tests of the in-memory table of registration challenges (challenges.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/challenges.h"

#include "common/crypto.h"

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

/* A full table reuses an expired entry, else refuses: it never grows, and
 * never voids a challenge it gave out. */
static void test_full_table(void **state)
{
    (void)state;
    struct challenges *t = challenges_new();
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    char first[CRYPTO_TOKEN_MAX], first_nonce[CRYPTO_TOKEN_MAX], short_lived[CRYPTO_TOKEN_MAX];
    assert_int_equal(challenges_issue(t, "p", NOW, 60000, first, first_nonce), 0);
    assert_int_equal(challenges_issue(t, "p", NOW, 10, short_lived, nonce), 0);
    for (int i = 2; i < CHALLENGES_MAX; i++)
        assert_int_equal(challenges_issue(t, "p", NOW, 60000, id, nonce), 0);
    assert_int_equal(challenges_issue(t, "p", NOW, 60000, id, nonce), CHALLENGES_FULL);
    /* the short-lived one expired: its entry is reused, then full again */
    assert_int_equal(challenges_issue(t, "p", NOW + 100, 60000, id, nonce), 0);
    assert_int_equal(challenges_issue(t, "p", NOW + 100, 60000, got, nonce), CHALLENGES_FULL);
    assert_int_equal(challenges_take(t, short_lived, "p", NOW + 100, got, sizeof(got)), -1);
    /* the first one is still good, and taking it frees an entry */
    assert_int_equal(challenges_take(t, first, "p", NOW + 100, got, sizeof(got)), 0);
    assert_string_equal(got, first_nonce);
    assert_int_equal(challenges_issue(t, "p", NOW + 100, 60000, id, nonce), 0);
    assert_int_equal(challenges_take(t, id, "p", NOW + 100, got, sizeof(got)), 0);
    challenges_free(t);
    challenges_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_use),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_full_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
