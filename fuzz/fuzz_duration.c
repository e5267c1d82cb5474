/* libFuzzer: durations (duration.c), from options, variables and run specs;
 * what parses formats back to the same value. */
#include "common/duration.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64], back[64];
    int64_t ms, again;
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (duration_parse(text, &ms) < 0)
        return 0;
    if (ms < 0 || duration_parse(duration_format(ms, back, sizeof(back)), &again) < 0 ||
        again != ms)
        abort();
    return 0;
}
