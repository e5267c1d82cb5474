/*
 * freed.h: for tests, whether any heap block held a secret when it was freed.
 *
 * AddressSanitizer calls a free hook with each block before it frees it (also the old block of a
 * realloc), while its bytes are still there: the hook looks for the secret in it. Tests that
 * check that secrets are wiped from freed memory use it; without AddressSanitizer (the clang and
 * release builds) they skip. Header only, for the test programs of several directories.
 */
#ifndef DAVIT_TESTS_FREED_H
#define DAVIT_TESTS_FREED_H

#include <stddef.h>
#include <string.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define FREED_WATCHABLE 1
/* compiler-rt's allocator interface; gcc 12 ships no header for it. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);
#else
#define FREED_WATCHABLE 0
#endif

static struct {
    const char *needle; /* NULL: not watching */
    size_t len;
    int frees; /* blocks freed while watching */
    int found; /* of those, blocks that held the needle */
} freed_state;

#if FREED_WATCHABLE
/* The allocator takes a pair of hooks or none. */
static void freed_malloc_hook(const volatile void *p, size_t n)
{
    (void)p, (void)n;
}

/* Runs inside the allocator: no allocation, no intercepted libc call. */
static void freed_free_hook(const volatile void *p)
{
    if (!freed_state.needle || !p)
        return;
    const volatile unsigned char *b = p;
    size_t n = __sanitizer_get_allocated_size(p), len = freed_state.len;
    freed_state.frees++;
    for (size_t i = 0; len && i + len <= n; i++) {
        size_t k = 0;
        while (k < len && b[i + k] == (unsigned char)freed_state.needle[k])
            k++;
        if (k == len) {
            freed_state.found++;
            return;
        }
    }
}
#endif

/* Starts counting freed blocks that hold the len bytes at needle (which the caller keeps
 * alive). Returns 0, or -1 when this build cannot watch (no AddressSanitizer): skip the test. */
static inline int freed_watch(const char *needle, size_t len)
{
#if FREED_WATCHABLE
    static int installed;
    if (!installed &&
        !__sanitizer_install_malloc_and_free_hooks(freed_malloc_hook, freed_free_hook))
        return -1;
    installed = 1;
    freed_state.frees = freed_state.found = 0;
    freed_state.len = len;
    freed_state.needle = needle;
    return 0;
#else
    (void)needle, (void)len;
    return -1;
#endif
}

/* Stops watching; returns how many freed blocks held the needle. */
static inline int freed_stop(void)
{
    freed_state.needle = NULL;
    return freed_state.found;
}

#endif
