/*
 * normalize.c: Unicode normalisation of text before it is embedded (docs/VECTORS.md
 * §Embedders): NFKC plus full case folding, through utf8proc, so "ﬁ", "Ｆｉ" and "FI"
 * become the same "fi" and "Straße" matches "STRASSE".
 *
 * ASCII text takes a fast path: NFKC leaves every ASCII character as it is and case
 * folding only lowers A-Z, so a byte loop gives exactly what utf8proc_map would (the unit
 * tests compare both); resumes are mostly ASCII and this is the embedder's hot loop.
 */
#include "vector/vector_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static bool is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

int lh_text_normalize(const char *text, size_t len, char **out, size_t *out_len, lh_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (is_ascii(text, len)) {
        char *s = lh_xmalloc(len + 1);
        for (size_t i = 0; i < len; i++) {
            char c = text[i];
            s[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        s[len] = '\0';
        *out = s;
        *out_len = len;
        return 0;
    }
    if (len > (size_t)SSIZE_MAX / 8)
        return lh_error_set(err, LH_ETOOLARGE, "text of %zu bytes is too long to normalise", len);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &dst,
                     UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
    if (n < 0) {
        if (n == UTF8PROC_ERROR_NOMEM)
            abort(); /* as lh_xmalloc does: OOM is not a recoverable error here */
        if (n == UTF8PROC_ERROR_INVALIDUTF8)
            return lh_error_set(err, LH_EINVAL, "text is not valid UTF-8");
        return lh_error_set(err, LH_EINTERNAL, "utf8proc: %s", utf8proc_errmsg(n));
    }
    /* utf8proc allocates with malloc: the caller's free() releases it like ours */
    *out = (char *)dst;
    *out_len = (size_t)n;
    return 0;
}
