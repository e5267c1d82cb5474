/*
 * Unit tests of the registration challenges (challenges.h): stateless ids checked by their MAC
 * on any server of a store, used once through the registration's transaction (store.h), on two
 * connections to one real SQLite database standing for two servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/challenges.h"
#include "server/store.h"

#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1000000

/* Two servers on one store: a connection and a challenge object each. */
struct fx {
    char dir[64];
    struct store *s[2];
    struct challenges *c[2];
    struct store_pool pool;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-challenges-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(path, sizeof(path), "%s/davit.db", f->dir);
    for (int i = 0; i < 2; i++) {
        if (store_open(&f->s[i], path, err, sizeof(err)) < 0)
            return -1;
        f->c[i] = challenges_new();
        if (!f->c[i] || challenges_load_key(f->c[i], f->s[i], err, sizeof(err)) < 0)
            return -1;
    }
    snprintf(f->pool.name, sizeof(f->pool.name), "p");
    snprintf(f->pool.keytype, sizeof(f->pool.keytype), "ed25519");
    snprintf(f->pool.secret_hash, sizeof(f->pool.secret_hash), "h");
    f->pool.pubkey_pem = strdup("PEM");
    if (store_pool_create(f->s[0], &f->pool) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    for (int i = 0; i < 2; i++) {
        store_close(f->s[i]);
        challenges_free(f->c[i]);
    }
    store_pool_clear(&f->pool);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Registers a launcher through server i with challenge id (NULL for none), reusing reuse_id. */
static int reg(struct fx *f, int i, const char *id, int64_t expires_ms, int64_t reuse_id)
{
    struct store_launcher_info info = {"host", "0.1.0", "amd64", "{}", 1, reuse_id, 0};
    char hash[CRYPTO_TOKEN_MAX];
    int64_t lid;
    if (crypto_random_token("h", hash) < 0)
        return STORE_ERR;
    return store_launcher_register_challenge(f->s[i], f->pool.id, &info, id, expires_ms, hash,
                                             store_now_ms() + 60000, &lid);
}

/* A challenge from one server is good on the other (one key, from the store), once its MAC,
 * pool and expiry hold; the nonce is the same on both. */
static void test_any_server(void **state)
{
    struct fx *f = *state;
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    int64_t exp = 0;
    assert_int_equal(challenges_issue(f->c[0], "p1", NOW, 60000, id, nonce), 0);
    assert_int_equal(strncmp(id, "dvc_", 4), 0);
    assert_int_equal(strlen(id), CHALLENGES_ID_LEN);
    assert_int_equal(challenges_check(f->c[1], id, "p1", NOW + 1, got, sizeof(got), &exp), 0);
    assert_string_equal(got, nonce);
    assert_int_equal(exp, NOW + 60000);
    /* checking uses nothing up */
    assert_int_equal(challenges_check(f->c[0], id, "p1", NOW + 1, got, sizeof(got), &exp), 0);
    /* another pool's */
    assert_int_equal(challenges_check(f->c[1], id, "p2", NOW + 1, got, sizeof(got), &exp), -1);
    /* two challenges differ */
    char id2[CRYPTO_TOKEN_MAX], nonce2[CRYPTO_TOKEN_MAX];
    assert_int_equal(challenges_issue(f->c[1], "p1", NOW, 60000, id2, nonce2), 0);
    assert_string_not_equal(id, id2);
    assert_string_not_equal(nonce, nonce2);
}

/* The store keeps the first server's key: a later server reads it rather than its own. */
static void test_key_shared(void **state)
{
    struct fx *f = *state;
    char *k1 = NULL, *k2 = NULL, err[256];
    assert_int_equal(store_meta_put_new(f->s[0], CHALLENGES_META_KEY, "x", &k1), STORE_OK);
    assert_int_equal(store_meta_put_new(f->s[1], CHALLENGES_META_KEY, "y", &k2), STORE_OK);
    assert_string_equal(k1, k2);
    assert_int_equal(strlen(k1), 64);
    free(k1);
    free(k2);
    /* a malformed key in the store is an error naming it, not a weak key */
    assert_int_equal(store_meta_set(f->s[0], "challenge_key", "abc"), STORE_OK);
    struct challenges *c = challenges_new();
    assert_int_equal(challenges_load_key(c, f->s[1], err, sizeof(err)), -1);
    assert_non_null(strstr(err, "challenge_key"));
    challenges_free(c);
    challenges_free(NULL);
}

static void test_expiry(void **state)
{
    struct fx *f = *state;
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    int64_t exp;
    assert_int_equal(challenges_issue(f->c[0], "p1", NOW, 1000, id, nonce), 0);
    assert_int_equal(challenges_check(f->c[1], id, "p1", NOW + 1000, got, sizeof(got), &exp), 0);
    assert_int_equal(challenges_check(f->c[1], id, "p1", NOW + 1001, got, sizeof(got), &exp), -1);
}

/* Ids no server of the store made are refused: altered, made up, another store's, or spelt
 * differently from how the server spelt them. */
static void test_forged(void **state)
{
    struct fx *f = *state;
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX], fake[300];
    int64_t exp;
    assert_int_equal(challenges_issue(f->c[0], "p1", NOW, 60000, id, nonce), 0);
    /* every character changed in turn, MAC and expiry alike */
    for (size_t i = 4; i < strlen(id); i++) {
        snprintf(fake, sizeof(fake), "%s", id);
        fake[i] = fake[i] == 'A' ? 'B' : 'A';
        assert_int_equal(challenges_check(f->c[1], fake, "p1", NOW, got, sizeof(got), &exp), -1);
    }
    /* the last character's spare bits: the same bytes under another text */
    snprintf(fake, sizeof(fake), "%s", id);
    const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t last = strlen(fake) - 1, v = (size_t)(strchr(b64, fake[last]) - b64);
    fake[last] = b64[v ^ 1];
    assert_int_equal(challenges_check(f->c[1], fake, "p1", NOW, got, sizeof(got), &exp), -1);
    /* made up, cut short, too long, empty */
    memset(fake, 'a', sizeof(fake) - 1);
    fake[sizeof(fake) - 1] = '\0';
    assert_int_equal(challenges_check(f->c[1], fake, "p1", NOW, got, sizeof(got), &exp), -1);
    memcpy(fake, "dvc_", 4);
    fake[CHALLENGES_ID_LEN] = '\0';
    assert_int_equal(challenges_check(f->c[1], fake, "p1", NOW, got, sizeof(got), &exp), -1);
    snprintf(fake, sizeof(fake), "%.*s", (int)strlen(id) - 1, id);
    assert_int_equal(challenges_check(f->c[1], fake, "p1", NOW, got, sizeof(got), &exp), -1);
    assert_int_equal(challenges_check(f->c[1], "", "p1", NOW, got, sizeof(got), &exp), -1);
    assert_int_equal(challenges_check(f->c[1], "dvc_nope", "p1", NOW, got, sizeof(got), &exp), -1);
    /* another store's server (another key) */
    unsigned char other[CHALLENGES_KEY_SIZE] = {1};
    struct challenges *c = challenges_new();
    challenges_set_key(c, other);
    assert_int_equal(challenges_check(c, id, "p1", NOW, got, sizeof(got), &exp), -1);
    challenges_free(c);
    /* without a key, nothing is issued or checked */
    c = challenges_new();
    assert_int_equal(challenges_issue(c, "p1", NOW, 60000, fake, got), -1);
    assert_int_equal(challenges_check(c, id, "p1", NOW, got, sizeof(got), &exp), -1);
    challenges_free(c);
    /* the genuine one still holds */
    assert_int_equal(challenges_check(f->c[1], id, "p1", NOW, got, sizeof(got), &exp), 0);
}

/* A challenge registers once, whichever server (connection) sees it again. A registration that
 * fails for another reason leaves it usable (rolled back with it). */
static void test_used_once(void **state)
{
    struct fx *f = *state;
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX];
    int64_t exp = store_now_ms() + 60000;
    assert_int_equal(challenges_issue(f->c[0], f->pool.id, store_now_ms(), 60000, id, nonce), 0);
    assert_int_equal(reg(f, 0, id, exp, 999999), STORE_NOTFOUND); /* no such launcher to reuse */
    assert_int_equal(reg(f, 0, id, exp, 0), STORE_OK);
    assert_int_equal(reg(f, 1, id, exp, 0), STORE_CONFLICT);
    assert_int_equal(reg(f, 0, id, exp, 0), STORE_CONFLICT);
    /* another challenge, first used on the second server */
    char id2[CRYPTO_TOKEN_MAX];
    assert_int_equal(challenges_issue(f->c[0], f->pool.id, store_now_ms(), 60000, id2, nonce), 0);
    assert_int_equal(reg(f, 1, id2, exp, 0), STORE_OK);
    assert_int_equal(reg(f, 0, id2, exp, 0), STORE_CONFLICT);
    /* no challenge: the store's callers that register directly */
    assert_int_equal(reg(f, 1, NULL, 0, 0), STORE_OK);
    /* the sweep deletes only what has expired */
    int n = -1;
    assert_int_equal(store_challenge_uses_expire(f->s[1], exp, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(reg(f, 1, id, exp, 0), STORE_CONFLICT);
    assert_int_equal(store_challenge_uses_expire(f->s[1], exp + 1, &n), STORE_OK);
    assert_int_equal(n, 2);
}

/* Asking costs nothing that lasts: a flood of challenges leaves an earlier one good (there is no
 * table to fill: the old in-memory table refused at 16,384). */
static void test_flood(void **state)
{
    struct fx *f = *state;
    char first[CRYPTO_TOKEN_MAX], fnonce[CRYPTO_TOKEN_MAX];
    char id[CRYPTO_TOKEN_MAX], nonce[CRYPTO_TOKEN_MAX], got[CRYPTO_TOKEN_MAX];
    int64_t exp;
    assert_int_equal(challenges_issue(f->c[0], "p", NOW, 60000, first, fnonce), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(challenges_issue(f->c[i & 1], "p", NOW, 60000, id, nonce), 0);
    assert_int_equal(challenges_check(f->c[1], first, "p", NOW + 100, got, sizeof(got), &exp), 0);
    assert_string_equal(got, fnonce);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_any_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
