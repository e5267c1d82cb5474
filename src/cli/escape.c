/* Terminal-safe text (escape.h). */
#include "cli/escape.h"

#include <stdlib.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 when the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void escape_write(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            size_t run = i;
            while (run < len && p[run] >= 0x20 && p[run] < 0x7f)
                run++;
            fwrite(p + i, 1, run - i, out);
            i = run;
            continue;
        }
        size_t n = p[i] >= 0x80 ? utf8_len(p + i, len - i) : 0;
        if (n == 2 && p[i] == 0xc2 && p[i + 1] <= 0x9f) {
            fprintf(out, "\\u%04x", p[i + 1]); /* C1: U+0080-U+009F */
        } else if (n) {
            fwrite(p + i, 1, n, out);
        } else {
            fprintf(out, "\\x%02x", p[i]); /* C0, DEL, or not UTF-8 */
            n = 1;
        }
        i += n;
    }
}

void escape_puts(FILE *out, const char *s)
{
    if (s)
        escape_write(out, s, strlen(s));
}

char *escape_dup(const char *s, size_t len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    if (!m)
        return NULL;
    escape_write(m, s, len);
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
