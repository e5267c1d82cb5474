/* libFuzzer: CSR parsing for a pool's key (crypto.c), fed by
 * `POST /api/v1/pools` and `pools/NAME/reset`. */
#include "common/crypto.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pub = NULL, keytype[32], err[512];
    if (crypto_csr_pubkey((const char *)data, size, &pub, keytype, err, sizeof(err)) == 0)
        free(pub);
    return 0;
}
