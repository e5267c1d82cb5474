#include "common/spool.h"

#include <stdio.h>
#include <string.h>

int spool_phase_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SPOOL_PHASE_MAX)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int spool_type_ok(int t)
{
    return t && strchr("oecSEWR", t) != NULL;
}

size_t spool_header_base(char *buf, const struct spool_record *r)
{
    const char *phase = r->phase[0] ? r->phase : SPOOL_NO_PHASE;
    int n = snprintf(buf, SPOOL_HEADER_MAX, "@%c %llu %lld %s %zu", r->type,
                     (unsigned long long)r->seq, (long long)r->time_ms, phase, r->len);
    return n < 0 ? 0 : (size_t)n;
}

size_t spool_header(char *buf, const struct spool_record *r)
{
    size_t n = spool_header_base(buf, r);
    int m = snprintf(buf + n, SPOOL_HEADER_MAX - n, " %.*s\n", SPOOL_MAC_HEX, r->mac);
    return m < 0 ? n : n + (size_t)m;
}

/* Reads a decimal number ending at sep; advances *p past sep. */
static int parse_u64(const char **p, const char *end, char sep, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (s >= end || *s != sep)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

ssize_t spool_parse(const char *buf, size_t len, struct spool_record *r)
{
    /* Reject a bad start at once rather than waiting for a whole header. */
    if ((len > 0 && buf[0] != '@') || (len > 1 && !spool_type_ok(buf[1])) ||
        (len > 2 && buf[2] != ' '))
        return -1;
    size_t limit = len < SPOOL_HEADER_MAX ? len : SPOOL_HEADER_MAX;
    const char *nl = memchr(buf, '\n', limit);
    if (!nl)
        return len < SPOOL_HEADER_MAX ? 0 : -1;

    const char *p = buf, *end = nl + 1;
    uint64_t seq, ms, plen;
    if (end - p < 4 || p[0] != '@' || !spool_type_ok(p[1]) || p[2] != ' ')
        return -1;
    r->type = p[1];
    p += 3;
    /* time_ms is an int64_t: a larger number would wrap to a date before 1970 */
    if (parse_u64(&p, end, ' ', &seq) < 0 || parse_u64(&p, end, ' ', &ms) < 0 ||
        ms > (uint64_t)INT64_MAX)
        return -1;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p || (size_t)(sp - p) > SPOOL_PHASE_MAX)
        return -1;
    memcpy(r->phase, p, (size_t)(sp - p));
    r->phase[sp - p] = '\0';
    if (strcmp(r->phase, SPOOL_NO_PHASE) == 0)
        r->phase[0] = '\0';
    else if (!spool_phase_name_ok(r->phase))
        return -1;
    p = sp + 1;
    if (parse_u64(&p, end, ' ', &plen) < 0 || plen > SPOOL_PAYLOAD_MAX)
        return -1;
    if (end - p != SPOOL_MAC_HEX + 1 || strspn(p, "0123456789abcdef") < SPOOL_MAC_HEX)
        return -1;
    memcpy(r->mac, p, SPOOL_MAC_HEX);
    r->mac[SPOOL_MAC_HEX] = '\0';

    size_t hlen = (size_t)(end - buf);
    if (len - hlen < plen + 1)
        return 0;
    if (buf[hlen + plen] != '\n')
        return -1;
    r->seq = seq;
    r->time_ms = (int64_t)ms;
    r->data = buf + hlen;
    r->len = (size_t)plen;
    return (ssize_t)(hlen + plen + 1);
}

int spool_kv(const char *data, size_t len, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    const char *p = data, *end = data + len;
    int to_end = strcmp(key, "reason") == 0;

    while (p < end) {
        const char *word_end = memchr(p, ' ', (size_t)(end - p));
        if (!word_end)
            word_end = end;
        if ((size_t)(end - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            const char *vend = to_end ? end : word_end;
            size_t n = (size_t)(vend - v);
            if (size) {
                if (n >= size)
                    n = size - 1;
                memcpy(out, v, n);
                out[n] = '\0';
            }
            return 0;
        }
        p = word_end + 1;
    }
    return -1;
}
