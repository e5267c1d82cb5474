/* libFuzzer: the pool token decoder (pooltoken.c), which the server runs on
 * unauthenticated registrations; and the round trip of what it accepts. */
#include "common/pooltoken.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[512];
    struct pool_token t, back;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (pooltoken_decode(text, &t, err, sizeof(err)) == 0) {
        char *again = pooltoken_encode(&t);
        if (!again || pooltoken_decode(again, &back, err, sizeof(err)) < 0 ||
            strcmp(back.pool_id, t.pool_id) != 0 || strcmp(back.endpoint, t.endpoint) != 0 ||
            strcmp(back.pool_secret, t.pool_secret) != 0)
            abort();
        pooltoken_clear(&back);
        free(again);
        pooltoken_clear(&t);
    }
    free(text);
    return 0;
}
