/*
 * secure: wiping secrets from memory, the one way davit does it.
 *
 * A plain memset before free is a dead store the compiler may remove; explicit_bzero (glibc and
 * musl, so the static worker can use it too) is never removed. Owns nothing; never fails.
 */
#ifndef DAVIT_COMMON_SECURE_H
#define DAVIT_COMMON_SECURE_H

#include <stddef.h>

/* Overwrites n bytes at p with zeros. p may be NULL when n is 0. */
void secure_wipe(void *p, size_t n);

/* Wipes the NUL-terminated string s (its strlen bytes) and frees it. s may be NULL. */
void secure_free_str(char *s);

#endif
