/*
 * test_jcs.c: RFC 8785 canonical JSON (core/jcs.c). Every published vector in
 * tests/testdata/jcs (input → output byte for byte, and the outhex form), the ECMAScript
 * number forms, key order by UTF-16 code units, escaping, and the refusals: duplicate
 * keys, lone surrogates, NaN/Infinity, invalid UTF-8, out-of-range numbers, trailing text.
 */
#include "testutil.h"

#include "core/core.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vec_dir(void)
{
    const char *src = getenv("LH_SOURCE_DIR");
    return lh_xasprintf("%s/tests/testdata/jcs", src && *src ? src : LH_SOURCE_DIR_DEFAULT);
}

static char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    lh_error err;
    if (lh_fs_read_all(path, 1 << 20, &data, len, &err) != 0)
        fail_msg("%s", err.message);
    return data;
}

static void test_vectors(void **state)
{
    (void)state;
    char *dir = vec_dir();
    char *in_dir = lh_xasprintf("%s/input", dir);
    DIR *d = opendir(in_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        char *ip = lh_xasprintf("%s/input/%s", dir, de->d_name);
        char *op = lh_xasprintf("%s/output/%s", dir, de->d_name);
        char *hp = lh_xasprintf("%s/outhex/%.*s.txt", dir, (int)(nl - 5), de->d_name);
        size_t il, ol, hl;
        char *in = slurp(ip, &il), *out = slurp(op, &ol), *hex = slurp(hp, &hl);
        lh_buf b;
        lh_buf_init(&b);
        lh_error err;
        if (lh_jcs_canonicalize(in, il, &b, &err) != 0)
            fail_msg("%s: %s", de->d_name, err.message);
        if (b.len != ol || memcmp(b.data, out, ol) != 0)
            fail_msg("%s: got %.*s", de->d_name, (int)b.len, b.data);
        /* outhex: the same bytes as space-separated hex */
        size_t k = 0;
        for (char *t = strtok(hex, " \r\n"); t; t = strtok(NULL, " \r\n"), k++) {
            assert_true(k < b.len);
            assert_int_equal(strtoul(t, NULL, 16), (unsigned char)b.data[k]);
        }
        assert_int_equal(k, b.len);
        lh_buf_free(&b);
        free(in);
        free(out);
        free(hex);
        free(ip);
        free(op);
        free(hp);
        n++;
    }
    closedir(d);
    assert_true(n >= 6);
    free(in_dir);
    free(dir);
}

static void expect(const char *in, const char *want)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_error err;
    if (lh_jcs_canonicalize(in, strlen(in), &b, &err) != 0)
        fail_msg("%s: %s", in, err.message);
    lh_buf_putc(&b, '\0');
    if (strcmp(b.data, want) != 0)
        fail_msg("%s: got %s, want %s", in, b.data, want);
    lh_buf_free(&b);
}

static void test_numbers_and_strings(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"1E30", "1e+30"},
        {"4.50", "4.5"},
        {"2e-3", "0.002"},
        {"-0", "0"},
        {"-0.0e5", "0"},
        {"0.000001", "0.000001"},
        {"0.0000001", "1e-7"},
        {"1e21", "1e+21"},
        {"1e20", "100000000000000000000"},
        {"123456789012345678901", "123456789012345680000"},
        {"9007199254740993", "9007199254740992"},
        {"5e-324", "5e-324"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
        {"0.1", "0.1"},
        {"-1.5", "-1.5"},
        /* integers exact in a double are written digit by digit; past 2^53 the search */
        {"4.0", "4"},
        {"-42", "-42"},
        {"1e15", "1000000000000000"},
        {"9007199254740992", "9007199254740992"},
        {"-9007199254740992", "-9007199254740992"},
        {"9007199254740994", "9007199254740994"},
        {"18446744073709551616", "18446744073709552000"},
        {"333333333.33333329", "333333333.3333333"},
        {"[ 1 , 2 ]", "[1,2]"},
        {"\"<>&/\\u007f\"", "\"<>&/\x7f\""},
        {"\"\\u0000\\u001f\\b\\t\\n\\f\\r\"", "\"\\u0000\\u001f\\b\\t\\n\\f\\r\""},
        {"\"\\ud83d\\ude02\"", "\"\xf0\x9f\x98\x82\""},
        {"{\"b\":1,\"a\":{\"d\":[],\"c\":{}}}", "{\"a\":{\"c\":{},\"d\":[]},\"b\":1}"},
        /* U+1F602 (UTF-16 D83D DE02) sorts before U+FB33 though its UTF-8 sorts after */
        {"{\"\xef\xac\xb3\":1,\"\xf0\x9f\x98\x82\":2}",
         "{\"\xf0\x9f\x98\x82\":2,\"\xef\xac\xb3\":1}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(cases[i][0], cases[i][1]);
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"a\":1,\"a\":2}",       /* duplicate key */
        "{\"a\":1,\"\\u0061\":2}", /* duplicate after unescaping */
        "\"\\ud800\"",             /* lone high surrogate */
        "\"\\udc00\"",             /* lone low surrogate */
        "\"\\ud800\\u0041\"",      /* high surrogate without its low half */
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",            /* beyond the double range */
        "\"\xc3\x28\"",     /* invalid UTF-8 */
        "\"\xed\xa0\x80\"", /* a surrogate encoded in UTF-8 */
        "[1,]",
        "{\"a\" 1}",
        "01",
        "1.",
        "\"a\nb\"", /* raw control character */
        "{} x",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lh_buf b;
        lh_buf_init(&b);
        lh_buf_puts(&b, "keep");
        lh_error err;
        if (lh_jcs_canonicalize(bad[i], strlen(bad[i]), &b, &err) != LH_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(b.len, 4); /* out untouched */
        assert_string_equal(lh_error_kind(&err), "invalid_json");
        lh_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_numbers_and_strings),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
