/*
 * embed_hash.c: the built-in `hash` embedder (docs/VECTORS.md §Embedders has the exact
 * definition and a known-answer vector; tests/embedserver.py holds a Python reference
 * implementation of the same function).
 *
 * Lexical, not semantic: two texts are close when they share words, word pairs and
 * character trigrams, whatever they mean. It needs no model, no network and no state, is
 * deterministic across runs and machines, and is the default.
 *
 *   1. text → lh_text_normalize (NFKC + casefold); invalid UTF-8 bytes become spaces first.
 *   2. tokens: maximal runs of code points of general category L*, M* or N*.
 *   3. features (byte strings): "w:" + token; "b:" + token + " " + next token; and
 *      "c:" + every 3 consecutive code points of "<" + token + ">".
 *   4. h = FNV-1a 64 of the feature's bytes; tf counted per distinct h.
 *   5. v[(h >> 1) mod dim] += (h & 1 ? -1 : +1) · (1 + ln tf), in double precision.
 *   6. v /= ‖v‖₂ (all zeros stays all zeros), stored as float.
 */
#include "vector/vector_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static inline uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

typedef struct {
    size_t off, len, n_cp; /* bytes into the normalised text; code points */
} span;

/* Feature counts: open addressing over 64-bit hashes (count 0 = empty slot). */
typedef struct {
    uint64_t *keys;
    uint32_t *counts;
    size_t mask;
    uint32_t *used; /* slots in use, in insertion order: the sum visits only these */
    size_t n_used;
} ftable;

static void ftable_add(ftable *t, uint64_t h)
{
    size_t i = (size_t)(h ^ (h >> 29)) & t->mask;
    while (t->counts[i] && t->keys[i] != h)
        i = (i + 1) & t->mask;
    if (!t->counts[i]) {
        t->keys[i] = h;
        t->used[t->n_used++] = (uint32_t)i;
    }
    t->counts[i]++;
}

/* Word character: general category L*, M* or N* (utf8proc 1..11). ASCII without a
 * table lookup. *n gets the character's byte length (1 for an invalid byte, which is not
 * a word character: normalised text has none). */
static bool word_char(const char *s, size_t len, size_t *n)
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80) {
        *n = 1;
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s, len > 4 ? 4 : (utf8proc_ssize_t)len, &cp);
    if (k <= 0) {
        *n = 1;
        return false;
    }
    *n = (size_t)k;
    int cat = utf8proc_category(cp);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO;
}

/* A copy of text with every byte that is not part of a valid UTF-8 sequence replaced by
 * a space. Caller frees. */
static char *scrub_invalid(const char *text, size_t len)
{
    char *s = lh_xmalloc(len + 1);
    memcpy(s, text, len);
    s[len] = '\0';
    for (size_t at = 0; at < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + at,
                                              len - at > 4 ? 4 : (utf8proc_ssize_t)(len - at), &cp);
        if (k <= 0) {
            s[at++] = ' ';
            continue;
        }
        at += (size_t)k;
    }
    return s;
}

void lh_hash_embed(const char *text, size_t len, int dim, float *out)
{
    char *norm = NULL, *clean = NULL;
    size_t nlen = 0;
    span *toks = NULL;
    size_t *cps = NULL;
    ftable t = {0};
    double *acc = NULL;
    if (dim <= 0)
        return; /* nothing to fill; lh_embedder_open only opens 8..4096 */
    memset(out, 0, (size_t)dim * sizeof(*out));
    if (lh_text_normalize(text, len, &norm, &nlen, NULL) != 0) {
        clean = scrub_invalid(text, len);
        if (lh_text_normalize(clean, len, &norm, &nlen, NULL) != 0)
            goto out; /* cannot happen: clean is valid UTF-8 */
    }

    /* tokens; n_cp counts the code points inside tokens (one trigram each) */
    size_t n_tok = 0, cap_tok = 16, n_cp = 0, max_tok = 0;
    toks = lh_xmalloc(cap_tok * sizeof(*toks));
    for (size_t at = 0; at < nlen;) {
        size_t k;
        if (!word_char(norm + at, nlen - at, &k)) {
            at += k;
            continue;
        }
        size_t start = at, cp_in = 0;
        do {
            at += k;
            cp_in++;
        } while (at < nlen && word_char(norm + at, nlen - at, &k));
        if (n_tok == cap_tok) {
            cap_tok *= 2;
            toks = lh_xrealloc(toks, cap_tok * sizeof(*toks));
        }
        toks[n_tok++] = (span){start, at - start, cp_in};
        n_cp += cp_in;
        if (cp_in > max_tok)
            max_tok = cp_in;
    }
    if (n_tok == 0)
        goto out;

    size_t n_feat = 2 * n_tok + n_cp, cap = 64;
    while (cap < 2 * n_feat)
        cap *= 2;
    t.keys = lh_xmalloc(cap * sizeof(*t.keys));
    t.counts = lh_xcalloc(cap, sizeof(*t.counts));
    t.mask = cap - 1;
    t.used = lh_xmalloc(n_feat * sizeof(*t.used));
    cps = lh_xmalloc((max_tok + 1) * sizeof(*cps));
    for (size_t i = 0; i < n_tok; i++) {
        const char *w = norm + toks[i].off;
        size_t wl = toks[i].len;
        ftable_add(&t, fnv1a(fnv1a(FNV64_OFFSET, "w:", 2), w, wl));
        if (i + 1 < n_tok) {
            uint64_t h = fnv1a(fnv1a(FNV64_OFFSET, "b:", 2), w, wl);
            h = fnv1a(h, " ", 1);
            ftable_add(&t, fnv1a(h, norm + toks[i + 1].off, toks[i + 1].len));
        }
        /* "<" + token + ">" has m + 2 code points, so m trigrams; cps[j] is the byte
           offset of the token's code point j (cps[m] = its length) */
        size_t m = toks[i].n_cp;
        if (m == wl) { /* ASCII: one byte per code point */
            for (size_t j = 0; j <= m; j++)
                cps[j] = j;
        } else {
            for (size_t at = 0, j = 0; at < wl; j++) {
                size_t k;
                cps[j] = at;
                word_char(w + at, wl - at, &k);
                at += k;
            }
            cps[m] = wl;
        }
        for (size_t j = 0; j < m; j++) {
            /* code points j, j+1, j+2 of "<token>": 0 is "<", m+1 is ">" */
            uint64_t h = fnv1a(FNV64_OFFSET, "c:", 2);
            for (size_t c = j; c < j + 3; c++) {
                if (c == 0)
                    h = fnv1a(h, "<", 1);
                else if (c == m + 1)
                    h = fnv1a(h, ">", 1);
                else
                    h = fnv1a(h, w + cps[c - 1], cps[c] - cps[c - 1]);
            }
            ftable_add(&t, h);
        }
    }

    acc = lh_xcalloc((size_t)dim, sizeof(*acc));
    for (size_t u = 0; u < t.n_used; u++) {
        size_t i = t.used[u];
        uint64_t h = t.keys[i];
        double wgt = t.counts[i] == 1 ? 1.0 : 1.0 + log((double)t.counts[i]);
        acc[(h >> 1) % (uint64_t)dim] += (h & 1) ? -wgt : wgt;
    }
    double norm2 = 0;
    for (int i = 0; i < dim; i++)
        norm2 += acc[i] * acc[i];
    if (norm2 > 0) {
        double inv = 1.0 / sqrt(norm2);
        for (int i = 0; i < dim; i++)
            out[i] = (float)(acc[i] * inv);
    }
out:
    free(acc);
    free(cps);
    free(t.keys);
    free(t.counts);
    free(t.used);
    free(toks);
    free(norm);
    free(clean);
}
