/*
 * libFuzzer: the secret masker (src/worker/mask.c) against a reference.
 *
 * Input: a byte k, then 1 + k % 4 secrets, each a length byte (1 to 16)
 * and its bytes, then a byte that sets the chunk size, then the output. The
 * output goes through mask_feed in chunks and mask_flush; the result must be
 * what the reference gives: every byte inside an occurrence of a secret is
 * hidden, and each run of hidden bytes shows as one "***". So no secret, and
 * no part of one, ever comes out. Secrets hold no
 * newline and no '*' (a multi-line value also adds its lines, and "***"
 * could rebuild a secret made of stars): those bytes are mapped away.
 */
#include "worker/mask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SECRETS 4

/* Every byte inside any occurrence of any secret is hidden; each run of
 * hidden bytes becomes one MASK_TEXT. So where secrets overlap or one is a
 * prefix of another, no byte of either comes out. */
static void reference(char secrets[][17], const size_t *lens, size_t n, const char *in, size_t len,
                      struct dbuf *out)
{
    unsigned char *hidden = calloc(len + 1, 1);
    if (!hidden)
        abort();
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < n; k++)
            if (lens[k] <= len - i && memcmp(in + i, secrets[k], lens[k]) == 0)
                memset(hidden + i, 1, lens[k]);
    for (size_t i = 0; i < len; i++) {
        if (!hidden[i])
            dbuf_add(out, in + i, 1);
        else if (i == 0 || !hidden[i - 1])
            dbuf_add(out, MASK_TEXT, strlen(MASK_TEXT));
    }
    free(hidden);
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
