#include "common/duration.h"

#include <stdio.h>
#include <string.h>

struct unit {
    const char *name;
    int64_t ms;
};

/* Longest names first so that "ms" is not read as "m" followed by "s". */
static const struct unit units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
};

int duration_parse(const char *s, int64_t *ms)
{
    int64_t total = 0;
    const char *p = s;

    if (!s || !*s)
        return -1;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -1;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p - '0');
            if (n > DURATION_MAX_MS)
                return -1;
            p++;
        }
        int64_t scale = 0;
        if (!*p) {
            /* A bare number is seconds, but only as the whole string. */
            if (p != s && total == 0 && strspn(s, "0123456789") == strlen(s))
                scale = 1000;
            else
                return -1;
        } else {
            for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                size_t len = strlen(units[i].name);
                if (strncmp(p, units[i].name, len) == 0) {
                    scale = units[i].ms;
                    p += len;
                    break;
                }
            }
            if (!scale)
                return -1;
        }
        if (n > DURATION_MAX_MS / scale)
            return -1;
        total += n * scale;
        if (total > DURATION_MAX_MS)
            return -1;
    }
    *ms = total;
    return 0;
}

char *duration_format(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms % 1000)
        snprintf(buf, size, "%lldms", (long long)ms);
    else if (ms == 0 || ms % 60000)
        snprintf(buf, size, "%llds", (long long)(ms / 1000));
    else if (ms % 3600000)
        snprintf(buf, size, "%lldm", (long long)(ms / 60000));
    else
        snprintf(buf, size, "%lldh", (long long)(ms / 3600000));
    return buf;
}
