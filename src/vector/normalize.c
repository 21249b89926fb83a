/*
 * normalize.c: Unicode normalisation of text before it is embedded (docs/VECTORS.md
 * §Embedders): NFKC plus full case folding, through utf8proc, so "ﬁ", "Ｆｉ" and "FI"
 * become the same "fi" and "Straße" matches "STRASSE".
 *
 * Mostly-ASCII text takes a fast path, exact by construction: NFKC leaves every ASCII
 * character as it is and case folding (context-free in utf8proc) only lowers A-Z. ASCII
 * characters are starters (combining class 0) that are never the second half of a
 * composition, so the only ASCII character a non-ASCII run can change is the one just
 * before it (an "e" followed by U+0301 composes into "é"). The text is therefore cut into
 * ASCII stretches, lowered byte by byte, and non-ASCII runs, each given to utf8proc_map
 * together with the ASCII character before it. The unit tests compare the result with
 * utf8proc_map of the whole text on random mixes. Resumes are mostly ASCII and this is the
 * hash embedder's first step.
 */
#include "vector/vector_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* The output: sized for the input (what ASCII text needs), grown when a run expands. */
typedef struct {
    char *data;
    size_t len, cap;
} obuf;

static char *reserve(obuf *o, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        while (o->len + n + 1 > o->cap)
            o->cap *= 2;
        o->data = lh_xrealloc(o->data, o->cap);
    }
    return o->data + o->len;
}

static void put_lower(obuf *o, const char *s, size_t n)
{
    char *d = reserve(o, n);
    for (size_t i = 0; i < n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    o->len += n;
}

int lh_text_normalize(const char *text, size_t len, char **out, size_t *out_len, lh_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (len > (size_t)SSIZE_MAX / 8)
        return lh_error_set(err, LH_ETOOLARGE, "text of %zu bytes is too long to normalise", len);
    int rc = 0;
    obuf b = {lh_xmalloc(len + 1), 0, len + 1};
    for (size_t at = 0; at < len;) {
        size_t j = at;
        while (j < len && (unsigned char)text[j] < 0x80)
            j++;
        if (j == len) {
            put_lower(&b, text + at, len - at);
            break;
        }
        size_t seg = j > at ? j - 1 : j; /* the ASCII character before the run joins it */
        put_lower(&b, text + at, seg - at);
        size_t k = j;
        while (k < len && (unsigned char)text[k] >= 0x80)
            k++;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t n =
            utf8proc_map((const utf8proc_uint8_t *)text + seg, (utf8proc_ssize_t)(k - seg), &dst,
                         UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
        if (n < 0) {
            if (n == UTF8PROC_ERROR_NOMEM)
                abort(); /* as lh_xmalloc does: OOM is not a recoverable error here */
            rc = n == UTF8PROC_ERROR_INVALIDUTF8
                     ? lh_error_set(err, LH_EINVAL, "text is not valid UTF-8")
                     : lh_error_set(err, LH_EINTERNAL, "utf8proc: %s", utf8proc_errmsg(n));
            goto out;
        }
        memcpy(reserve(&b, (size_t)n), dst, (size_t)n);
        b.len += (size_t)n;
        free(dst);
        at = k;
    }
    b.data[b.len] = '\0';
    *out = b.data;
    *out_len = b.len;
    b.data = NULL;
out:
    free(b.data);
    return rc;
}
