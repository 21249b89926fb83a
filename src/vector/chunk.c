/*
 * chunk.c: character-window chunking (docs/VECTORS.md §Chunking).
 *
 * A "character" is one well-formed UTF-8 sequence (utf8proc_iterate's definition: no
 * overlongs, surrogates or values past U+10FFFF) or, failing that, one single byte: an
 * invalid byte is never dropped and never glued to its neighbours, and a valid code point
 * is never cut, so every chunk is a byte range that starts and ends on a character
 * boundary. Windows count characters, not bytes, so a chunk of Japanese text holds as many
 * characters as one of English text.
 */
#include "vector/vector_internal.h"

#include <stdlib.h>
#include <utf8proc.h>

/* Byte length of the character at s[0..len) (len > 0): a valid sequence's length, else 1. */
static size_t char_len(const char *s, size_t len)
{
    if ((unsigned char)s[0] < 0x80)
        return 1;
    utf8proc_int32_t cp;
    utf8proc_ssize_t n =
        utf8proc_iterate((const utf8proc_uint8_t *)s, len > 4 ? 4 : (utf8proc_ssize_t)len, &cp);
    return n > 0 ? (size_t)n : 1;
}

int lh_chunk_text(const char *text, size_t len, size_t size, size_t overlap, lh_chunk_span **out,
                  size_t *n_out, lh_error *err)
{
    int rc = 0;
    size_t *starts = NULL; /* byte offset of every character, plus len at the end */
    *out = NULL;
    *n_out = 0;
    if (size < 1) {
        rc = lh_error_set(err, LH_EINVAL, "chunk_size must be at least 1 character");
        goto out;
    }
    if (overlap >= size) {
        rc = lh_error_set(err, LH_EINVAL,
                          "overlap (%zu) must be smaller than chunk_size (%zu) characters", overlap,
                          size);
        goto out;
    }
    if (len == 0)
        goto out;
    size_t n_chars = 0, cap = len / 2 + 2;
    starts = lh_xmalloc(cap * sizeof(*starts));
    for (size_t at = 0; at < len; at += char_len(text + at, len - at)) {
        if (n_chars + 2 > cap) {
            cap *= 2;
            starts = lh_xrealloc(starts, cap * sizeof(*starts));
        }
        starts[n_chars++] = at;
    }
    starts[n_chars] = len;

    size_t step = size - overlap, n = 0;
    /* windows: starts 0, step, 2·step, ... until one reaches the end */
    size_t n_win = n_chars <= size ? 1 : 1 + (n_chars - size + step - 1) / step;
    lh_chunk_span *spans = lh_xmalloc(n_win * sizeof(*spans));
    for (size_t first = 0;; first += step) {
        size_t last = first + size < n_chars ? first + size : n_chars;
        spans[n].offset = starts[first];
        spans[n].len = starts[last] - starts[first];
        n++;
        if (last == n_chars)
            break;
    }
    *out = spans;
    *n_out = n;
out:
    free(starts);
    return rc;
}
