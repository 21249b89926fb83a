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
    *out = NULL;
    *n_out = 0;
    if (size < 1)
        return lh_error_set(err, LH_EINVAL, "chunk_size must be at least 1 character");
    if (overlap >= size)
        return lh_error_set(err, LH_EINVAL,
                            "overlap (%zu) must be smaller than chunk_size (%zu) characters",
                            overlap, size);
    if (len == 0)
        return 0;
    /* Two cursors, both only moving forward: the window's start (advanced by step
       characters per window) and its end (size characters past the start, or the text's
       end), so the text is decoded twice whatever the overlap, with no per-character
       table. */
    size_t step = size - overlap, n = 0, cap = 8;
    size_t s_char = 0, s_byte = 0, e_char = 0, e_byte = 0;
    lh_chunk_span *spans = lh_xmalloc(cap * sizeof(*spans));
    for (;;) {
        while (e_char < s_char + size && e_byte < len) {
            e_byte += char_len(text + e_byte, len - e_byte);
            e_char++;
        }
        if (n == cap) {
            cap *= 2;
            spans = lh_xrealloc(spans, cap * sizeof(*spans));
        }
        spans[n++] = (lh_chunk_span){s_byte, e_byte - s_byte};
        if (e_byte == len)
            break;
        for (size_t k = 0; k < step; k++, s_char++)
            s_byte += char_len(text + s_byte, len - s_byte);
    }
    *out = spans;
    *n_out = n;
    return 0;
}
