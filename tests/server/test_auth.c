/*
 * Unit tests of who may do what: the pure checks of auth.c (roles, CSRF and
 * site checks, the cookie), the token body's parser, and the store's tokens
 * and browser sessions (expiry, revocation) on a real SQLite database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/api_tokens.h"
#include "server/auth.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_roles(void **state)
{
    (void)state;
    assert_int_equal(auth_role_parse("viewer"), AUTH_ROLE_VIEWER);
    assert_int_equal(auth_role_parse("operator"), AUTH_ROLE_OPERATOR);
    assert_int_equal(auth_role_parse("admin"), AUTH_ROLE_ADMIN);
    assert_int_equal(auth_role_parse("Admin"), AUTH_ROLE_NONE);
    assert_int_equal(auth_role_parse("none"), AUTH_ROLE_NONE);
    assert_int_equal(auth_role_parse(""), AUTH_ROLE_NONE);
    assert_int_equal(auth_role_parse(NULL), AUTH_ROLE_NONE);
    assert_string_equal(auth_role_name(AUTH_ROLE_OPERATOR), "operator");
    assert_string_equal(auth_role_name(42), "none");
    assert_true(AUTH_ROLE_VIEWER < AUTH_ROLE_OPERATOR && AUTH_ROLE_OPERATOR < AUTH_ROLE_ADMIN);
}

/* auth_csrf_refusal with these headers (NULL: absent), for Host 127.0.0.1:8080. */
static const char *csrf(const char *method, const char *sent, const char *expected,
                        const char *fetch_site, const char *origin)
{
    struct auth_site site = {fetch_site, origin, "127.0.0.1:8080", "http://127.0.0.1:8080"};
    return auth_csrf_refusal(method, sent, expected, &site);
}

static void test_csrf(void **state)
{
    (void)state;
    const char *tok = "s3cret", *wrong = "missing or wrong CSRF token";
    /* reads pass without anything */
    assert_null(csrf("GET", NULL, tok, "cross-site", "https://evil"));
    assert_null(csrf("HEAD", NULL, tok, NULL, NULL));
    /* the token: missing, wrong, a prefix, longer, empty, right */
    assert_string_equal(csrf("POST", NULL, tok, NULL, NULL), wrong);
    assert_string_equal(csrf("POST", "s3cre", tok, NULL, NULL), wrong);
    assert_string_equal(csrf("DELETE", "s3cret!", tok, NULL, NULL), wrong);
    assert_string_equal(csrf("POST", "", "", NULL, NULL), wrong);
    assert_null(csrf("POST", tok, tok, NULL, NULL));
    /* the site: cross-site refused even with the right token; same-origin and same-site pass */
    assert_non_null(csrf("POST", tok, tok, "cross-site", NULL));
    assert_non_null(csrf("PUT", tok, tok, "Cross-Site", NULL));
    assert_null(csrf("POST", tok, tok, "same-origin", NULL));
    assert_null(csrf("POST", tok, tok, "none", NULL));
    /* Origin must be this Host */
    assert_null(csrf("POST", tok, tok, NULL, "http://127.0.0.1:8080"));
    assert_null(csrf("POST", tok, tok, NULL, "https://127.0.0.1:8080"));
    assert_non_null(csrf("POST", tok, tok, NULL, "http://127.0.0.1:8081"));
    assert_non_null(csrf("POST", tok, tok, NULL, "http://127.0.0.1:8080.evil"));
    assert_non_null(csrf("POST", tok, tok, NULL, "null"));
    assert_non_null(csrf("POST", tok, tok, NULL, ""));
    /* no Host: only --public-url's origin passes */
    struct auth_site site = {NULL, "http://127.0.0.1:8080", NULL, NULL};
    assert_non_null(auth_csrf_refusal("POST", tok, tok, &site));
    /* behind a proxy that rewrites Host: the origin of --public-url passes, nothing else */
    site = (struct auth_site){NULL, "https://davit.example.com", "10.0.0.5:8400",
                              "https://davit.example.com/"};
    assert_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.origin = "https://DAVIT.example.com";
    assert_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.public_url = "https://davit.example.com";
    assert_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.origin = "https://davit.example.com.evil";
    assert_non_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.origin = "https://davit.example.co";
    assert_non_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.origin = "http://davit.example.com";
    assert_non_null(auth_csrf_refusal("POST", tok, tok, &site));
    site.public_url = "not a url";
    site.origin = "not a url";
    assert_non_null(auth_csrf_refusal("POST", tok, tok, &site));
    /* sign-in: the same site checks, no token */
    site = (struct auth_site){NULL, NULL, NULL, NULL};
    assert_null(auth_site_refusal(&site));
    site.fetch_site = "cross-site";
    assert_non_null(auth_site_refusal(&site));
}

static void test_cookie(void **state)
{
    (void)state;
    char c[256];
    assert_int_equal(auth_cookie(c, sizeof(c), "abc", 0), 0);
    assert_string_equal(c, "davit_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800");
    assert_int_equal(auth_cookie(c, sizeof(c), "abc", 1), 0);
    assert_non_null(strstr(c, "; Secure"));
    assert_int_equal(auth_cookie(c, sizeof(c), NULL, 1), 0);
    assert_string_equal(
        c, "__Host-davit_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure");
    assert_int_equal(auth_cookie(c, 10, "abc", 0), -1);
}

static void test_parse_create(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int ok;
    } cases[] = {
        {"{\"name\": \"ci-bot\", \"role\": \"operator\"}", 1},
        {"{\"name\": \"a.b_c-1\", \"role\": \"viewer\"}", 1},
        {"{\"name\": \"admin\", \"role\": \"viewer\"}", 0}, /* the first-start token's name */
        {"{\"name\": \"Upper\", \"role\": \"viewer\"}", 0},
        {"{\"name\": \"-x\", \"role\": \"viewer\"}", 0},
        {"{\"name\": \"a/b\", \"role\": \"viewer\"}", 0},
        {"{\"name\": \"\", \"role\": \"viewer\"}", 0},
        {"{\"name\": \"x\", \"role\": \"root\"}", 0},
        {"{\"name\": \"x\"}", 0},
        {"{\"name\": \"x\", \"role\": \"viewer\", \"extra\": 1}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        const char *name = NULL;
        int role = 0;
        json_t *obj = json_loads(cases[i].body, 0, NULL);
        assert_non_null(obj);
        int rc = api_tokens_parse_create(obj, &name, &role, err, sizeof(err));
        assert_int_equal(rc, cases[i].ok ? 0 : -1);
        if (!cases[i].ok) {
            assert_true(err[0] != '\0');
            assert_null(strstr(err, "root")); /* the body is never quoted */
            assert_null(strstr(err, "Upper"));
        }
        json_decref(obj);
    }
    /* 63 characters pass, 64 do not */
    char body[160], name[80];
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"role\": \"admin\"}", name);
    json_t *obj = json_loads(body, 0, NULL);
    const char *n;
    int role;
    char err[256];
    assert_int_equal(api_tokens_parse_create(obj, &n, &role, err, sizeof(err)), -1);
    json_decref(obj);
    name[63] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"role\": \"admin\"}", name);
    obj = json_loads(body, 0, NULL);
    assert_int_equal(api_tokens_parse_create(obj, &n, &role, err, sizeof(err)), 0);
    assert_int_equal(role, AUTH_ROLE_ADMIN);
    json_decref(obj);
}

struct fx {
    char dir[64];
    struct store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/davit-auth-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/davit.db", f->dir);
    if (store_open(&f->s, path, err, sizeof(err)) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    store_close(f->s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

#define HOUR (3600LL * 1000)

static void test_store_tokens(void **state)
{
    struct fx *f = *state;
    struct store_principal p;
    assert_int_equal(store_token_create(f->s, "ci", "operator", "hash-ci"), STORE_OK);
    assert_int_equal(store_token_create(f->s, "ci", "viewer", "hash-other"), STORE_CONFLICT);
    assert_int_equal(store_token_create(f->s, "other", "viewer", "hash-ci"), STORE_CONFLICT);
    assert_int_equal(store_token_auth(f->s, "hash-ci", AUTH_TOUCH_MS, &p), STORE_OK);
    assert_string_equal(p.name, "ci");
    assert_string_equal(p.role, "operator");
    assert_int_equal(store_token_auth(f->s, "hash-nobody", AUTH_TOUCH_MS, &p), STORE_NOTFOUND);
    json_t *list;
    assert_int_equal(store_token_list_json(f->s, &list), STORE_OK);
    assert_int_equal(json_array_size(list), 1);
    json_t *row = json_array_get(list, 0);
    assert_true(json_is_string(json_object_get(row, "last_used_at"))); /* the first use is kept */
    assert_null(json_object_get(row, "token_hash"));
    json_decref(list);
    /* a session lives while its token does */
    struct store_web_session ws;
    assert_int_equal(store_web_session_create(f->s, "sid-1", "hash-ci", "csrf-1", HOUR, 24 * HOUR),
                     STORE_OK);
    assert_int_equal(
        store_web_session_auth(f->s, "sid-1", "hash-admin", HOUR, 24 * HOUR, AUTH_TOUCH_MS, &ws),
        STORE_OK);
    assert_string_equal(ws.who.name, "ci");
    assert_string_equal(ws.who.role, "operator");
    assert_string_equal(ws.csrf, "csrf-1");
    assert_int_equal(store_token_revoke(f->s, "ci"), STORE_OK);
    assert_int_equal(store_token_revoke(f->s, "ci"), STORE_NOTFOUND);
    assert_int_equal(store_token_auth(f->s, "hash-ci", AUTH_TOUCH_MS, &p), STORE_NOTFOUND);
    assert_int_equal(
        store_web_session_auth(f->s, "sid-1", "hash-admin", HOUR, 24 * HOUR, AUTH_TOUCH_MS, &ws),
        STORE_NOTFOUND);
    /* the admin token of the first start is known by its hash only */
    assert_int_equal(
        store_web_session_create(f->s, "sid-admin", "hash-admin", "csrf-a", HOUR, 24 * HOUR),
        STORE_OK);
    assert_int_equal(store_web_session_auth(f->s, "sid-admin", "hash-admin", HOUR, 24 * HOUR,
                                            AUTH_TOUCH_MS, &ws),
                     STORE_OK);
    assert_string_equal(ws.who.role, "admin");
    assert_int_equal(store_web_session_auth(f->s, "sid-admin", "hash-new-admin", HOUR, 24 * HOUR,
                                            AUTH_TOUCH_MS, &ws),
                     STORE_NOTFOUND);
    assert_int_equal(store_web_session_delete(f->s, "sid-admin"), STORE_OK);
    assert_int_equal(store_web_session_delete(f->s, "sid-admin"), STORE_NOTFOUND);
}

static void test_store_session_expiry(void **state)
{
    struct fx *f = *state;
    struct store_web_session ws;
    int n;
    assert_int_equal(store_token_create(f->s, "t", "viewer", "hash-t"), STORE_OK);
    /* idle expiry: 0 ms of idleness allowed is expired at once */
    assert_int_equal(store_web_session_create(f->s, "idle", "hash-t", "c", 0, 24 * HOUR), STORE_OK);
    /* absolute expiry: the same with a long idle time */
    assert_int_equal(store_web_session_create(f->s, "max", "hash-t", "c", HOUR, 0), STORE_OK);
    /* a use moves the idle expiry, never past the absolute one: with idle 0 at the
     * next use (touch_ms 0 writes it), the session is then over */
    assert_int_equal(store_web_session_create(f->s, "used", "hash-t", "c", HOUR, 24 * HOUR),
                     STORE_OK);
    assert_int_equal(store_web_session_create(f->s, "live", "hash-t", "c", HOUR, 24 * HOUR),
                     STORE_OK);
    assert_int_equal(store_web_session_auth(f->s, "idle", "", HOUR, 24 * HOUR, 0, &ws),
                     STORE_NOTFOUND);
    assert_int_equal(store_web_session_auth(f->s, "max", "", HOUR, 24 * HOUR, 0, &ws),
                     STORE_NOTFOUND);
    assert_int_equal(store_web_session_auth(f->s, "used", "", 0, 24 * HOUR, 0, &ws), STORE_OK);
    assert_int_equal(store_web_session_auth(f->s, "used", "", HOUR, 24 * HOUR, 0, &ws),
                     STORE_NOTFOUND);
    assert_int_equal(store_web_session_auth(f->s, "live", "", HOUR, 24 * HOUR, 0, &ws), STORE_OK);
    /* the sweep deletes the three expired ones, and keeps the live one */
    assert_int_equal(store_web_sessions_expire(f->s, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(store_web_sessions_expire(f->s, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_web_session_auth(f->s, "live", "", HOUR, 24 * HOUR, 0, &ws), STORE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_parse_create),
        cmocka_unit_test_setup_teardown(test_store_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_session_expiry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
