/*
 * libFuzzer: the secret masker (src/worker/mask.c) against a reference.
 *
 * Input: a byte k, then 1 + k % 4 secrets, each a length byte (1 to 16)
 * and its bytes, then a byte that sets the chunk size, then the output. The
 * output goes through mask_feed in chunks and mask_flush; the result must be
 * what the reference gives: every byte inside an occurrence of a secret is
 * hidden, overlapping occurrences showing as one "***" (docs/worker.md). So
 * no secret, and no part of one, ever comes out. Secrets hold no
 * newline and no '*' (a multi-line value also adds its lines, and "***"
 * could rebuild a secret made of stars): those bytes are mapped away.
 */
#include "worker/mask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SECRETS 4

/*
 * Every byte inside any occurrence of any secret is hidden. A mask starts at
 * an occurrence outside any mask and runs to the end of the longest secret
 * there; an occurrence that starts inside it and ends after it extends it.
 * So overlapping occurrences are one "***", touching ones two, and no byte
 * of any secret comes out.
 */
static void reference(char secrets[][17], const size_t *lens, size_t n, const char *in, size_t len,
                      struct dbuf *out)
{
    size_t end = 0; /* the current mask covers [.., end) */
    for (size_t i = 0; i < len; i++) {
        size_t best = 0;
        for (size_t k = 0; k < n; k++)
            if (lens[k] <= len - i && lens[k] > best && memcmp(in + i, secrets[k], lens[k]) == 0)
                best = lens[k];
        if (i < end) {
            if (i + best > end)
                end = i + best;
        } else if (best) {
            dbuf_add(out, MASK_TEXT, strlen(MASK_TEXT));
            end = i + best;
        } else {
            dbuf_add(out, in + i, 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char secrets[MAX_SECRETS][17];
    size_t lens[MAX_SECRETS], n = 0, pos = 0;
    if (size < 2)
        return 0;
    size_t want = 1 + data[pos++] % MAX_SECRETS;
    while (n < want && pos < size) {
        size_t l = 1 + data[pos++] % 16;
        if (pos + l > size)
            return 0;
        for (size_t i = 0; i < l; i++) {
            char c = (char)data[pos + i];
            secrets[n][i] = c == '\n' || c == '*' ? 'n' : c;
        }
        lens[n++] = l;
        pos += l;
    }
    if (pos >= size)
        return 0;
    size_t chunk = 1 + data[pos++] % 32;
    const char *in = (const char *)data + pos;
    size_t len = size - pos;

    struct mask_set m;
    struct mask_stream s;
    struct dbuf got = DBUF_INIT(1 << 20), want_out = DBUF_INIT(1 << 20);
    mask_set_init(&m);
    mask_stream_init(&s);
    for (size_t k = 0; k < n; k++)
        if (mask_set_add(&m, secrets[k], lens[k]) < 0)
            abort();
    for (size_t off = 0; off < len; off += chunk)
        if (mask_feed(&m, &s, in + off, len - off < chunk ? len - off : chunk, &got) < 0)
            abort();
    if (mask_flush(&m, &s, &got) < 0)
        abort();
    reference(secrets, lens, n, in, len, &want_out);
    if (got.len != want_out.len || (got.len && memcmp(got.data, want_out.data, got.len) != 0))
        abort();
    dbuf_free(&got);
    dbuf_free(&want_out);
    mask_stream_free(&s);
    mask_set_free(&m);
    return 0;
}
