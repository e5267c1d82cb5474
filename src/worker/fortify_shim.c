/*
 * Debian builds libbearssl.a with _FORTIFY_SOURCE, so its objects call
 * glibc's fortified __memcpy_chk, which musl does not have. This gives the
 * static musl davit-worker the same contract: copy, or abort() when the copy
 * would overflow its destination. Only the musl build links this file; the
 * glibc builds get the real one from glibc.
 */
#include <stdlib.h>
#include <string.h>

void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen);

void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen)
{
    if (n > dstlen)
        abort();
    return memcpy(dst, src, n);
}
