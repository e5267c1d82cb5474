#include "common/spool_mac.h"

#include <string.h>

void spool_mac_init(struct spool_mac *m, const unsigned char key[SPOOL_KEY_LEN])
{
    br_hmac_key_init(&m->kc, &br_sha256_vtable, key, SPOOL_KEY_LEN);
}

void spool_mac_wipe(struct spool_mac *m)
{
    explicit_bzero(m, sizeof(*m));
}

/* The record's MAC as hex digits into out[SPOOL_MAC_HEX + 1]. */
static void mac_hex(const struct spool_mac *m, const struct spool_record *r, char *out)
{
    static const char digits[] = "0123456789abcdef";
    char base[SPOOL_HEADER_MAX];
    unsigned char mac[SPOOL_MAC_HEX / 2];
    br_hmac_context ctx;

    size_t n = spool_header_base(base, r);
    br_hmac_init(&ctx, &m->kc, sizeof(mac));
    br_hmac_update(&ctx, base, n);
    br_hmac_update(&ctx, "\n", 1);
    br_hmac_update(&ctx, r->data, r->len);
    br_hmac_out(&ctx, mac);
    explicit_bzero(&ctx, sizeof(ctx));
    for (size_t i = 0; i < sizeof(mac); i++) {
        out[2 * i] = digits[mac[i] >> 4];
        out[2 * i + 1] = digits[mac[i] & 15];
    }
    out[SPOOL_MAC_HEX] = '\0';
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
