/* libFuzzer: the run spec parser (runspec.c), and its JSON round trip. */
#include "common/runspec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct runspec *spec = NULL, *again = NULL;
    char err[512];
    if (runspec_parse((const char *)data, size, &spec, err, sizeof(err)) < 0)
        return 0;
    /* What the parser accepted, written back, is accepted again. */
    json_t *j = runspec_to_json(spec, 1);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text || runspec_parse(text, strlen(text), &again, err, sizeof(err)) < 0)
        abort();
    runspec_free(again);
    free(text);
    json_decref(j);
    runspec_free(spec);
    return 0;
}
