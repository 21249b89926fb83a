/*
 * test_vector_text.c: text normalisation (NFKC + casefold, invalid UTF-8 refused, the
 * ASCII fast path equal to utf8proc's answer) and character-window chunking (ASCII,
 * multi-byte, emoji, combining marks, overlap, size 1, refusals, empty text, invalid
 * bytes) of src/vector/normalize.c and chunk.c.
 */
#include "testutil.h"

#include "vector/vector_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------- normalisation */

static void norm_is(const char *in, const char *want)
{
    char *out = NULL;
    size_t len = 0;
    lh_error err;
    if (lh_text_normalize(in, strlen(in), &out, &len, &err) != 0)
        fail_msg("'%s': %s", in, err.message);
    if (strcmp(out, want) != 0)
        fail_msg("'%s' normalised to '%s', want '%s'", in, out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

static void test_normalize_compat_and_casefold(void **state)
{
    (void)state;
    norm_is("\xef\xac\x81"
            "le",
            "file");                                        /* ﬁ ligature → fi */
    norm_is("\xef\xbc\xa6\xef\xbd\x89\xef\xbc\x91", "fi1"); /* fullwidth Ｆｉ１ */
    norm_is("Stra\xc3\x9f"
            "e",
            "strasse"); /* ß casefolds to ss */
    norm_is("STRASSE", "strasse");
    norm_is("Cafe\xcc\x81", "caf\xc3\xa9"); /* e + U+0301 composes */
    norm_is("\xe2\x84\xab", "\xc3\xa5");    /* Angstrom sign → å */
    norm_is("x\xc2\xb2", "x2");             /* superscript two */
    norm_is("", "");
    norm_is("Hello, World! 123", "hello, world! 123");
}

static void test_normalize_refuses_invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {"abc\xff", "\xc3", "\xed\xa0\x80" /* surrogate */,
                                "\xc0\xaf" /* overlong */, "ok\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *out = (char *)"untouched";
        size_t len = 7;
        lh_error err;
        assert_int_equal(lh_text_normalize(bad[i], strlen(bad[i]), &out, &len, &err), LH_EINVAL);
        assert_null(out);
        assert_non_null(strstr(err.message, "UTF-8"));
    }
}

/* The ASCII fast path must give exactly what utf8proc_map gives, for every ASCII byte. */
static void test_normalize_ascii_fast_path_matches_utf8proc(void **state)
{
    (void)state;
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)(i == 0 ? ' ' : i);
    char *fast = NULL;
    size_t fl = 0;
    assert_int_equal(lh_text_normalize(all, sizeof(all), &fast, &fl, NULL), 0);
    utf8proc_uint8_t *ref = NULL;
    utf8proc_ssize_t rl =
        utf8proc_map((const utf8proc_uint8_t *)all, sizeof(all), &ref,
                     UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
    assert_int_equal(rl, (utf8proc_ssize_t)fl);
    assert_memory_equal(fast, ref, fl);
    free(ref);
    free(fast);
}

/* The fast path cuts text into ASCII stretches and non-ASCII runs: on random mixes of
 * ASCII (upper case included), combining marks, precomposed and compatibility characters,
 * Hangul jamo and case-folding specials, it must give exactly utf8proc_map of the whole. */
static void test_normalize_segments_match_utf8proc(void **state)
{
    (void)state;
    static const char *pieces[] = {
        "a",
        "E",
        "i",
        "Z",
        " ",
        "1",
        ".",
        "<",
        "\xcc\x81", /* U+0301 combining acute */
        "\xcc\xa3", /* U+0323 combining dot below (reorders with U+0301) */
        "\xcc\xb8", /* U+0338 combining long solidus: < + U+0338 = U+226E */
        "\xc3\xa9",
        "\xc3\x89",
        "\xc3\x9f",
        "\xe1\xba\x9e", /* é É ß ẞ */
        "\xef\xac\x81", /* ﬁ */
        "\xef\xbc\xa1", /* fullwidth A */
        "\xc2\xbd",     /* ½ */
        "\xe1\x84\x80",
        "\xe1\x85\xa1",
        "\xe1\x86\xa8", /* Hangul L, V, T jamo */
        "\xc4\xb0",
        "\xce\xa3",
        "\xcf\x82",         /* İ Σ ς */
        "\xe2\x84\xab",     /* Angstrom sign */
        "\xf0\x9f\x98\x80", /* emoji */
        "\xe3\x82\xab",
        "\xe3\x82\x99", /* カ + combining voiced mark */
    };
    uint32_t seed = 777;
    for (int round = 0; round < 3000; round++) {
        char text[512];
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        int n_pieces = (int)(seed >> 16) % 60;
        for (int p = 0; p < n_pieces; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *pc = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(*pieces))];
            memcpy(text + len, pc, strlen(pc));
            len += strlen(pc);
        }
        char *fast = NULL;
        size_t fl = 0;
        lh_error err;
        if (lh_text_normalize(text, len, &fast, &fl, &err) != 0)
            fail_msg("round %d: %s", round, err.message);
        utf8proc_uint8_t *ref = NULL;
        utf8proc_ssize_t rl =
            utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &ref,
                         UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
        assert_true(rl >= 0);
        if ((size_t)rl != fl || memcmp(fast, ref, fl) != 0)
            fail_msg("round %d: '%.*s' → '%s', utf8proc: '%s'", round, (int)len, text, fast,
                     (char *)ref);
        assert_int_equal(fast[fl], '\0');
        free(ref);
        free(fast);
    }
}

/* ---------------------------------------------------------------- chunking */

static lh_chunk_span *chunks(const char *text, size_t len, size_t size, size_t overlap, size_t *n)
{
    lh_chunk_span *s = NULL;
    lh_error err;
    if (lh_chunk_text(text, len, size, overlap, &s, n, &err) != 0)
        fail_msg("chunk(%zu, %zu): %s", size, overlap, err.message);
    return s;
}

/* Asserts the chunks of text are exactly the strings in want (n_want of them). */
static void chunks_are(const char *text, size_t size, size_t overlap, const char *const *want,
                       size_t n_want)
{
    size_t n = 0;
    lh_chunk_span *s = chunks(text, strlen(text), size, overlap, &n);
    if (n != n_want)
        fail_msg("'%s' (%zu/%zu): %zu chunks, want %zu", text, size, overlap, n, n_want);
    for (size_t i = 0; i < n; i++)
        if (s[i].len != strlen(want[i]) || memcmp(text + s[i].offset, want[i], s[i].len) != 0)
            fail_msg("'%s' chunk %zu is '%.*s', want '%s'", text, i, (int)s[i].len,
                     text + s[i].offset, want[i]);
    free(s);
}

static void test_chunk_ascii_and_overlap(void **state)
{
    (void)state;
    const char *a[] = {"abcd", "defg", "ghij"};
    chunks_are("abcdefghij", 4, 1, a, 3);
    const char *b[] = {"abcd", "defg", "ghij", "jk"}; /* the last one ends at the end */
    chunks_are("abcdefghijk", 4, 1, b, 4);
    const char *c[] = {"abc", "def", "g"}; /* no overlap */
    chunks_are("abcdefg", 3, 0, c, 3);
    const char *d[] = {"hello"}; /* shorter than a window: one chunk */
    chunks_are("hello", 100, 10, d, 1);
    const char *e[] = {"abcd", "bcde"}; /* overlap size-1: step 1 */
    chunks_are("abcde", 4, 3, e, 2);
}

static void test_chunk_size_one(void **state)
{
    (void)state;
    const char *a[] = {"a", "\xc3\xa9", "z"};
    chunks_are("a\xc3\xa9z", 1, 0, a, 3);
}

static void test_chunk_multibyte_emoji_and_marks(void **state)
{
    (void)state;
    /* 2-, 3- and 4-byte characters count as one each */
    const char *a[] = {"\xc3\xa9\xe6\x97\xa5", "\xe6\x97\xa5\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80x"};
    chunks_are("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80x", 2, 1, a, 3);
    /* a combining mark is a code point of its own: it may start a chunk, but no byte of
       it (2 bytes, U+0301) is ever cut */
    const char *b[] = {"e\xcc\x81", "\xcc\x81x"};
    chunks_are("e\xcc\x81x", 2, 1, b, 2);
    /* every chunk boundary of a long mixed text falls on a code point boundary, and the
       chunks cover the text */
    const char *t = "R\xc3\xa9sum\xc3\xa9 \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb "
                    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e na\xc3\xafve";
    for (size_t size = 1; size <= 7; size++)
        for (size_t ov = 0; ov < size; ov++) {
            size_t n = 0;
            lh_chunk_span *s = chunks(t, strlen(t), size, ov, &n);
            assert_true(n >= 1);
            assert_int_equal(s[0].offset, 0);
            assert_int_equal(s[n - 1].offset + s[n - 1].len, strlen(t));
            for (size_t i = 0; i < n; i++) {
                assert_true(lh_utf8_valid(t + s[i].offset, s[i].len));
                if (i)
                    assert_true(s[i].offset > s[i - 1].offset &&
                                s[i].offset <= s[i - 1].offset + s[i - 1].len);
            }
            free(s);
        }
}

static void test_chunk_refusals_and_empty(void **state)
{
    (void)state;
    lh_chunk_span *s = (lh_chunk_span *)1;
    size_t n = 99;
    lh_error err;
    assert_int_equal(lh_chunk_text("abc", 3, 4, 4, &s, &n, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "overlap"));
    assert_int_equal(lh_chunk_text("abc", 3, 4, 9, &s, &n, &err), LH_EINVAL);
    assert_int_equal(lh_chunk_text("abc", 3, 0, 0, &s, &n, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "chunk_size"));
    assert_null(s);
    assert_int_equal(n, 0);
    assert_int_equal(lh_chunk_text("", 0, 4, 1, &s, &n, &err), 0);
    assert_int_equal(n, 0);
    free(s);
}

/* An invalid byte counts as one character: never dropped, never merged with a valid
 * neighbour, and it never makes a valid sequence next to it be cut. */
static void test_chunk_invalid_bytes(void **state)
{
    (void)state;
    /* 'a', 0xff, 'é', then a truncated 3-byte sequence: two characters of one byte */
    const char *a[] = {"a\xff", "\xff\xc3\xa9", "\xc3\xa9\xe2", "\xe2\x82"};
    chunks_are("a\xff\xc3\xa9\xe2\x82", 2, 1, a, 4);
    const char *t = "\xe2\x82x\xf0\x9f\x98\x80\xed\xa0\x80";
    size_t n = 0;
    lh_chunk_span *s = chunks(t, strlen(t), 1, 0, &n);
    /* \xe2 \x82 x 😀 \xed \xa0 \x80: the surrogate's 3 bytes are 3 invalid characters */
    assert_int_equal(n, 7);
    assert_int_equal(s[3].len, 4);
    assert_int_equal(s[3].offset, 3);
    free(s);
}

/* The definition, spelled out naively (every character's offset in a table, then the
 * windows), against lh_chunk_text on random mixes of ASCII, multi-byte characters and
 * invalid bytes, for every size 1..7 and overlap. */
static void test_chunk_matches_reference(void **state)
{
    (void)state;
    static const char *pieces[] = {
        "a",        " ",    "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
        "\xcc\x81", "\xff", "\xe2\x82", "\xed\xa0\x80", "\xc0"};
    uint32_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        char text[256];
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        int n_pieces = (int)(seed >> 16) % 40;
        for (int p = 0; p < n_pieces; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *pc = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(*pieces))];
            memcpy(text + len, pc, strlen(pc));
            len += strlen(pc);
        }
        /* reference: character offsets */
        size_t offs[257], n_chars = 0;
        for (size_t at = 0; at < len;) {
            offs[n_chars++] = at;
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + at,
                                                  (utf8proc_ssize_t)(len - at), &cp);
            at += k > 0 ? (size_t)k : 1;
        }
        offs[n_chars] = len;
        for (size_t size = 1; size <= 7; size++)
            for (size_t ov = 0; ov < size; ov++) {
                size_t n = 0;
                lh_chunk_span *s = chunks(text, len, size, ov, &n);
                size_t i = 0;
                for (size_t first = 0; n_chars > 0; first += size - ov, i++) {
                    size_t last = first + size < n_chars ? first + size : n_chars;
                    assert_true(i < n);
                    assert_int_equal(s[i].offset, offs[first]);
                    assert_int_equal(s[i].len, offs[last] - offs[first]);
                    if (last == n_chars)
                        break;
                }
                assert_int_equal(n, n_chars ? i + 1 : 0);
                free(s);
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_compat_and_casefold),
        cmocka_unit_test(test_normalize_refuses_invalid_utf8),
        cmocka_unit_test(test_normalize_ascii_fast_path_matches_utf8proc),
        cmocka_unit_test(test_normalize_segments_match_utf8proc),
        cmocka_unit_test(test_chunk_ascii_and_overlap),
        cmocka_unit_test(test_chunk_size_one),
        cmocka_unit_test(test_chunk_multibyte_emoji_and_marks),
        cmocka_unit_test(test_chunk_refusals_and_empty),
        cmocka_unit_test(test_chunk_invalid_bytes),
        cmocka_unit_test(test_chunk_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
