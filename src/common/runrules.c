#include "common/runrules.h"

#include <string.h>

int runrules_var_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RUN_MAX_NAME || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* A decimal id of 1 to 10 digits, below 2^32 - 1 (which means "no id"). */
static const char *parse_id(const char *p, unsigned long long *out)
{
    unsigned long long v = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 11) {
        v = v * 10 + (unsigned long long)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || v > 4294967294ULL)
        return NULL;
    *out = v;
    return p;
}

int runrules_user_parse(const char *s, uid_t *uid, gid_t *gid)
{
    unsigned long long u, g;
    const char *p = parse_id(s, &u);
    if (!p)
        return -1;
    g = u;
    if (*p == ':' && !(p = parse_id(p + 1, &g)))
        return -1;
    if (*p)
        return -1;
    if (uid)
        *uid = (uid_t)u;
    if (gid)
        *gid = (gid_t)g;
    return 0;
}
