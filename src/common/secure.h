/*
 * secure: wiping secrets from memory, the one way davit does it.
 *
 * A plain memset before free is a dead store the compiler may remove; explicit_bzero (glibc and
 * musl, so the static worker can use it too) is never removed. Owns nothing; never fails.
 *
 * Where secrets live, and what wipes them:
 * - a buffer of secret bytes that grows (a file read, a request body, a header being built) is a
 *   struct dbuf made by dbuf_init_secret / DBUF_INIT_SECRET (common/dbuf.h): the sensitive
 *   buffer. It wipes every block it gives up, when it grows as when it is freed, which a realloc
 *   does not;
 * - JSON that carries secrets (run specs, registry credentials): davit and davit-launcher call
 *   json_set_alloc_funcs(malloc, secure_free) first thing in main, so that every block jansson
 *   frees (strings, objects, the buffers of json_dumps and of its parser) is wiped;
 * - a string or fixed buffer: secure_free_str / secure_wipe once it is used.
 */
#ifndef DAVIT_COMMON_SECURE_H
#define DAVIT_COMMON_SECURE_H

#include <stddef.h>

/* Overwrites n bytes at p with zeros. p may be NULL when n is 0. */
void secure_wipe(void *p, size_t n);

/* Wipes the NUL-terminated string s (its strlen bytes) and frees it. s may be NULL. */
void secure_free_str(char *s);

/*
 * Wipes every usable byte of the heap block p (malloc_usable_size: what the allocator gave, so
 * also bytes past a string's NUL) and frees it. p may be NULL. For frees that do not know what
 * the block held, like jansson's (json_set_alloc_funcs). Takes ownership of p.
 */
void secure_free(void *p);

#endif
