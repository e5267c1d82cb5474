/* libFuzzer: the spool record reader (spool.c), as the launcher and the
 * server run it over bytes a run's code may have written. */
#include "common/spool.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t left = size;
    for (;;) {
        struct spool_record r;
        ssize_t n = spool_parse(p, left, &r);
        if (n <= 0)
            break;
        if ((size_t)n > left || r.data < p || r.data + r.len > p + n)
            abort(); /* a record must lie inside what it consumed */
        char v[128];
        spool_kv(r.data, r.len, "outcome", v, sizeof(v));
        spool_kv(r.data, r.len, "reason", v, sizeof(v));
        p += n;
        left -= (size_t)n;
    }
    return 0;
}
