#include "common/diskspace.h"

#include <stdio.h>
#include <sys/statvfs.h>

#define MIB (1024ULL * 1024)

int diskspace_get(const char *path, struct diskspace *d)
{
    struct statvfs v;
    if (statvfs(path, &v) < 0)
        return -1;
    uint64_t unit = v.f_frsize ? v.f_frsize : v.f_bsize;
    d->free_bytes = (uint64_t)v.f_bavail * unit;
    d->total_bytes = (uint64_t)v.f_blocks * unit;
    return 0;
}

int diskspace_low(const struct diskspace *d)
{
    return d->free_bytes < 512 * MIB && d->free_bytes < d->total_bytes / 20;
}

int diskspace_full(const struct diskspace *d)
{
    return d->free_bytes < MIB;
}

const char *diskspace_format(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}
