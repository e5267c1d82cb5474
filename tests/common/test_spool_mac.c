/*
 * Unit tests for spool_mac: known values (the ones Python's cryptography
 * package gives, as tests/worker/davit_rundir.py computes them), and that a
 * change to any field the MAC covers, or another key, fails verification.
 */
#include "common/spool_mac.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static unsigned char key[SPOOL_KEY_LEN];

static int setup(void **state)
{
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)i;
    (void)state;
    return 0;
}

static struct spool_record record(void)
{
    struct spool_record r = {.type = 'o', .seq = 7, .time_ms = 1764331200123};
    strcpy(r.phase, "plan");
    r.data = "hello";
    r.len = 5;
    return r;
}

static void test_known_value(void **state)
{
    struct spool_mac m;
    struct spool_record r = record();
    spool_mac_init(&m, key);
    spool_mac_sign(&m, &r);
    /* ChaCha20Poly1305(bytes(range(32))).encrypt((7).to_bytes(8, "little") + bytes(4),
     *     b"@o 7 1764331200123 plan 5\n", b"hello")[-16:].hex() */
    assert_string_equal(r.mac, "d789135f4784590a0d3660bea2ab8f90");
    assert_true(spool_mac_verify(&m, &r));

    /* An empty payload and no phase: "@S 1 1764331200123 - 0\n". */
    struct spool_record s = {.type = 'S', .seq = 1, .time_ms = 1764331200123};
    spool_mac_sign(&m, &s);
    assert_string_equal(s.mac, "c0e297a6f38943afd2d82a4b64645d6a");
    spool_mac_wipe(&m);
}

static void test_every_field_counts(void **state)
{
    struct spool_mac m;
    spool_mac_init(&m, key);
    struct spool_record good = record();
    spool_mac_sign(&m, &good);

    struct spool_record r = good;
    r.type = 'e';
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.seq = 8;
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.time_ms++;
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    strcpy(r.phase, "apply");
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.phase[0] = '\0';
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.data = "hellO";
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.len = 4;
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    r.mac[31] = r.mac[31] == '0' ? '1' : '0';
    assert_false(spool_mac_verify(&m, &r));
    r = good;
    assert_true(spool_mac_verify(&m, &r));

    /* Another run's key. */
    unsigned char other[SPOOL_KEY_LEN];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    struct spool_mac m2;
    spool_mac_init(&m2, other);
    assert_false(spool_mac_verify(&m2, &good));
    spool_mac_wipe(&m2);
    spool_mac_wipe(&m);
}

/* Encodes r (signed with m unless forged) into buf at *off. */
static void put(char *buf, size_t *off, const struct spool_mac *m, struct spool_record r,
                int forged)
{
    if (forged)
        memset(r.mac, 'a', SPOOL_MAC_HEX);
    else
        spool_mac_sign(m, &r);
    *off += spool_header(buf + *off, &r);
    memcpy(buf + *off, r.data, r.len);
    *off += r.len;
    buf[(*off)++] = '\n';
}

static void test_prefix(void **state)
{
    struct spool_mac m;
    char buf[1024];
    size_t off = 0, one, two;
    spool_mac_init(&m, key);
    struct spool_record r = record();
    put(buf, &off, &m, r, 0);
    one = off;
    r.seq = 8;
    put(buf, &off, &m, r, 0);
    two = off;
    r.seq = 9;
    put(buf, &off, &m, r, 1);
    r.seq = 10;
    put(buf, &off, &m, r, 0);

    assert_int_equal(spool_mac_prefix(&m, buf, two), two);
    /* Up to the forged record, never past it. */
    assert_int_equal(spool_mac_prefix(&m, buf, off), two);
    /* A partial record is not part of it. */
    assert_int_equal(spool_mac_prefix(&m, buf, two - 1), one);
    /* A record rewritten in place after it was signed. */
    buf[one - 2] = 'O';
    assert_int_equal(spool_mac_prefix(&m, buf, off), 0);
    assert_int_equal(spool_mac_prefix(&m, buf, 0), 0);
    spool_mac_wipe(&m);
}

static void test_wipe(void **state)
{
    struct spool_mac m, zero;
    spool_mac_init(&m, key);
    spool_mac_wipe(&m);
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&m, &zero, sizeof(m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_every_field_counts),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
