#include "common/spool_mac.h"

#include "common/hex.h"
#include <string.h>

void spool_mac_init(struct spool_mac *m, const unsigned char key[SPOOL_KEY_LEN])
{
    memcpy(m->key, key, SPOOL_KEY_LEN);
    /* The fastest implementations this CPU has (64-bit multiplies, SSE2),
     * else the portable constant-time ones: same results either way. */
    m->poly = br_poly1305_ctmulq_get();
    if (!m->poly)
        m->poly = br_poly1305_ctmul_run;
    m->chacha = br_chacha20_sse2_get();
    if (!m->chacha)
        m->chacha = br_chacha20_ct_run;
}

void spool_mac_wipe(struct spool_mac *m)
{
    explicit_bzero(m, sizeof(*m));
}

/*
 * The record's MAC as hex digits into out[SPOOL_MAC_HEX + 1]: the tag of
 * ChaCha20-Poly1305 (RFC 8439) under the run's key, with the nonce made of
 * the record's seq (8 bytes little-endian, then 4 zero bytes), the payload as
 * the associated data, and the header without its MAC, with its newline, as
 * the plaintext (whose ciphertext is thrown away). The tag covers both; seq
 * numbers are never reused within a run, so no nonce is.
 */
static void mac_hex(const struct spool_mac *m, const struct spool_record *r, char *out)
{
    char base[SPOOL_HEADER_MAX];
    unsigned char mac[SPOOL_MAC_HEX / 2], nonce[12] = {0};

    size_t n = spool_header_base(base, r);
    base[n++] = '\n';
    for (int i = 0; i < 8; i++)
        nonce[i] = (unsigned char)(r->seq >> (8 * i));
    m->poly(m->key, nonce, base, n, r->data, r->len, mac, m->chacha, 1);
    hex_encode(mac, sizeof(mac), out);
}

void spool_mac_sign(const struct spool_mac *m, struct spool_record *r)
{
    mac_hex(m, r, r->mac);
}

int spool_mac_verify(const struct spool_mac *m, const struct spool_record *r)
{
    char want[SPOOL_MAC_HEX + 1];
    unsigned char diff = 0;
    mac_hex(m, r, want);
    for (size_t i = 0; i < SPOOL_MAC_HEX; i++)
        diff |= (unsigned char)(want[i] ^ r->mac[i]);
    return diff == 0;
}

size_t spool_mac_prefix(const struct spool_mac *m, const char *buf, size_t len)
{
    size_t used = 0;
    while (used < len) {
        struct spool_record r;
        ssize_t n = spool_parse(buf + used, len - used, &r);
        if (n <= 0 || !spool_mac_verify(m, &r))
            break;
        used += (size_t)n;
    }
    return used;
}
