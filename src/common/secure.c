#include "common/secure.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void secure_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

void secure_free_str(char *s)
{
    if (!s)
        return;
    secure_wipe(s, strlen(s));
    free(s);
}

void secure_free(void *p)
{
    if (!p)
        return;
    secure_wipe(p, malloc_usable_size(p));
    free(p);
}
