/*
 * hex: bytes as lowercase hexadecimal digits and back: ids, digests, keys.
 * The one codec of the tree. No allocation; libc only (the worker uses it).
 */
#ifndef DAVIT_COMMON_HEX_H
#define DAVIT_COMMON_HEX_H

#include <stddef.h>

/* Writes 2 * n lowercase digits and a NUL into out (2 * n + 1 bytes). Never fails. */
void hex_encode(const void *data, size_t n, char *out);

/*
 * Reads exactly 2 * n lowercase hex digits from hex into out (n bytes).
 * Returns 0, or -1 (out then holds nothing) when hex is not exactly that.
 */
int hex_decode(const char *hex, unsigned char *out, size_t n);

/* True when s is exactly n lowercase hex digits. */
int hex_is(const char *s, size_t n);

#endif
