#include "common/hex.h"

#include <string.h>

static const char digits[] = "0123456789abcdef";

void hex_encode(const void *data, size_t n, char *out)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_is(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, digits) == n;
}

static int nibble(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

int hex_decode(const char *hex, unsigned char *out, size_t n)
{
    if (!hex_is(hex, 2 * n)) {
        memset(out, 0, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return 0;
}
