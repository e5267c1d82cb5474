#include "common/sigmsg.h"

#include <stdio.h>
#include <string.h>

static int field_ok(const char *s)
{
    return s && *s && !strchr(s, '\n');
}

static int fit(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int sigmsg_register(char *buf, size_t size, const char *pool_id, const char *challenge_id,
                    const char *nonce)
{
    if (!field_ok(pool_id) || !field_ok(challenge_id) || !field_ok(nonce))
        return -1;
    return fit(snprintf(buf, size, "davit-register-v1\n%s\n%s\n%s\n", pool_id, challenge_id, nonce),
               size);
}

int sigmsg_release(char *buf, size_t size, const char *kind, const char *arch, const char *version,
                   const char *sha256_hex)
{
    if (!field_ok(kind) || !field_ok(arch) || !field_ok(version) || !field_ok(sha256_hex))
        return -1;
    return fit(snprintf(buf, size, "davit-release-v1\nkind=%s\narch=%s\nversion=%s\nsha256=%s\n",
                        kind, arch, version, sha256_hex),
               size);
}
