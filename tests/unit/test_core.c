/*
 * test_core.c: errors, name validation, atomic writes, path normalisation, JSON string
 * escaping and the small helpers everything else stands on.
 */
#include "testutil.h"

#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- errors */

static void test_error_set_and_kinds(void **state)
{
    (void)state;
    lh_error err;
    assert_int_equal(lh_error_set(&err, LH_ENOTFOUND, "no dataset named '%s'", "x"), LH_ENOTFOUND);
    assert_int_equal(err.code, LH_ENOTFOUND);
    assert_string_equal(err.message, "no dataset named 'x'");
    assert_string_equal(lh_error_kind(&err), "not_found");

    assert_int_equal(lh_error_setk(&err, LH_EFORBIDDEN, "sql_forbidden", "no %s", "COPY"),
                     LH_EFORBIDDEN);
    assert_string_equal(lh_error_kind(&err), "sql_forbidden");
    assert_string_equal(err.message, "no COPY");

    /* A plain set after setk must drop the stale kind. */
    lh_error_set(&err, LH_EINVAL, "bad");
    assert_string_equal(lh_error_kind(&err), "invalid_request");

    lh_error_clear(&err);
    assert_int_equal(err.code, LH_OK);
    assert_string_equal(err.message, "");
    assert_null(err.kind);

    /* NULL err: the code still comes back, nothing crashes. */
    assert_int_equal(lh_error_set(NULL, LH_EIO, "x"), LH_EIO);
    lh_error_clear(NULL);
}

static void test_error_code_names(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } cases[] = {
        {LH_OK, "ok"},
        {LH_EINVAL, "invalid_request"},
        {LH_ENOTFOUND, "not_found"},
        {LH_EEXISTS, "already_exists"},
        {LH_EFORBIDDEN, "forbidden"},
        {LH_EUNAUTH, "unauthorized"},
        {LH_ETOOLARGE, "payload_too_large"},
        {LH_ECONFLICT, "conflict"},
        {LH_EIO, "io_error"},
        {LH_EINTERNAL, "internal_error"},
        {LH_EUNSUPPORTED, "unsupported_media_type"},
        {LH_EBUSY, "too_many_requests"},
        {LH_ETIMEOUT, "query_timeout"},
        {LH_EUNAVAILABLE, "unavailable"},
        {LH_EMETHOD, "method_not_allowed"},
        {-999, "internal_error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(lh_code_name(cases[i].code), cases[i].name);
}

static void test_error_message_truncated(void **state)
{
    (void)state;
    char *big = lh_xmalloc(5000);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    lh_error err;
    lh_error_set(&err, LH_EINVAL, "%s", big);
    assert_int_equal(strlen(err.message), LH_ERROR_MSG_MAX - 1);
    free(big);
}

/* A message cut at its capacity ends between code points, wherever the cut falls (before,
 * vsnprintf could leave the first bytes of a sequence at the end). */
static void test_error_message_cut_on_code_points(void **state)
{
    (void)state;
    static const char *const seqs[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(seqs[k]);
        for (size_t pad = LH_ERROR_MSG_MAX - 6; pad < LH_ERROR_MSG_MAX + 2; pad++) {
            lh_buf b;
            lh_buf_init(&b);
            for (size_t i = 0; i < pad; i++)
                lh_buf_putc(&b, 'a');
            lh_buf_puts(&b, seqs[k]);
            lh_buf_puts(&b, "tail");
            lh_error err;
            lh_error_set(&err, LH_EINVAL, "%s", b.data);
            size_t n = strlen(err.message);
            assert_true(n <= LH_ERROR_MSG_MAX - 1);
            assert_true(n >= LH_ERROR_MSG_MAX - 1 - (sl - 1));
            assert_true(lh_utf8_valid(err.message, n));
            assert_memory_equal(err.message, b.data, n);
            lh_buf_free(&b);
        }
    }
    /* lh_error_scrub's cut too: a long replacement pushing a sequence over the end */
    for (size_t pad = LH_ERROR_MSG_MAX - 40; pad < LH_ERROR_MSG_MAX - 20; pad++) {
        lh_buf b;
        lh_buf_init(&b);
        lh_buf_puts(&b, "/x/y");
        for (size_t i = 0; i < pad; i++)
            lh_buf_putc(&b, 'a');
        lh_buf_puts(&b, "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");
        lh_error err;
        lh_error_set(&err, LH_EINVAL, "%s", b.data);
        lh_error_scrub(&err, "/x/y", "<a much longer replacement>");
        assert_true(lh_utf8_valid(err.message, strlen(err.message)));
        assert_true(strncmp(err.message, "<a much longer replacement>aaa", 30) == 0);
        lh_buf_free(&b);
    }
}

/* Bytes that are not UTF-8 (a raw URL, a query argument) are escaped as \xHH; valid text,
 * newlines included, is kept as it is. */
static void test_error_message_escapes_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *arg, *want;
    } cases[] = {
        {"people", "no dataset 'people'"},
        {"Zo\xC3\xAB\nline 2", "no dataset 'Zo\xC3\xAB\nline 2'"},
        {"a\xFF"
         "b",
         "no dataset 'a\\xffb'"},
        {"\xC3", "no dataset '\\xc3'"},                            /* a lone lead byte */
        {"\xC0\xAF", "no dataset '\\xc0\\xaf'"},                   /* an overlong '/' */
        {"\xED\xA0\x80", "no dataset '\\xed\\xa0\\x80'"},          /* a surrogate */
        {"\xF4\x90\x80\x80", "no dataset '\\xf4\\x90\\x80\\x80'"}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_error_setk(&err, LH_ENOTFOUND, "not_found", "no dataset '%s'", cases[i].arg);
        assert_string_equal(err.message, cases[i].want);
        assert_true(lh_utf8_valid(err.message, strlen(err.message)));
    }
    /* a long invalid message: escaped first, then cut; still valid */
    char *big = lh_xmalloc(3001);
    memset(big, 0xFF, 3000);
    big[3000] = '\0';
    lh_error err;
    lh_error_set(&err, LH_EINVAL, "%s", big);
    assert_true(strlen(err.message) <= LH_ERROR_MSG_MAX - 1);
    assert_true(strncmp(err.message, "\\xff\\xff", 8) == 0);
    assert_true(lh_utf8_valid(err.message, strlen(err.message)));
    free(big);
}

static void test_escape_and_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool controls;
        const char *want;
    } cases[] = {
        {"/health", true, "/health"},        {"/a b\r\n", true, "/a b\\x0d\\x0a"},
        {"/a\x1b[31m", true, "/a\\x1b[31m"}, {"/a\x7f", true, "/a\\x7f"},
        {"/a\x7f\n", false, "/a\x7f\n"},     {"/\xE2\x9C\x93", true, "/\xE2\x9C\x93"},
        {"/\xE2\x9C", true, "/\\xe2\\x9c"},  {"/\xFE\xFF", false, "/\\xfe\\xff"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *e = lh_escape(cases[i].in, strlen(cases[i].in), cases[i].controls);
        assert_string_equal(e, cases[i].want);
        assert_true(lh_utf8_valid(e, strlen(e)));
        free(e);
    }
    static const struct {
        const char *s;
        size_t len, want;
    } cuts[] = {
        {"ab", 2, 2},
        {"ab\xC3\xA9", 4, 4},
        {"ab\xC3\xA9", 3, 2},
        {"ab\xE2\x82\xAC", 3, 2},
        {"ab\xE2\x82\xAC", 4, 2},
        {"ab\xE2\x82\xAC", 5, 5},
        {"\xF0\x9F\x98\x80z", 3, 0},
        {"\xF0\x9F\x98\x80z", 4, 4},
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        assert_int_equal(lh_utf8_cut(cuts[i].s, cuts[i].len), cuts[i].want);
}

/* ---------------------------------------------------------------- logs */

typedef struct captured {
    char *lines[8];
    int n;
} captured;

static void capture_line(const char *line, size_t len, void *ctx)
{
    captured *c = ctx;
    if (c->n < 8) {
        c->lines[c->n] = lh_xmalloc(len + 1);
        memcpy(c->lines[c->n], line, len);
        c->lines[c->n][len] = '\0';
        c->n++;
    }
}

/* One bad field (invalid UTF-8, a NULL string) no longer costs the line its other fields:
 * json_pack refused the whole object and the line kept only ts, level and event. */
static void test_log_keeps_fields_around_a_bad_one(void **state)
{
    (void)state;
    captured c = {{0}, 0};
    lh_log_set_sink(capture_line, &c);
    lh_log(LH_LOG_WARN, "http.request", "{s:s,s:s,s:s,s:i,s:I,s:b}", "method", "GET", "path",
           "/catalog/\xFF\xFE/x", "actor", "bob", "status", 404, "ms", (json_int_t)12, "completed",
           1);
    lh_log(LH_LOG_WARN, "x.null", "{s:s,s:s}", "message", (const char *)NULL, "bucket", "b");
    lh_log(LH_LOG_WARN, "x.nested", "{s:{s:i}}", "outer", "inner", 7); /* json_pack's */
    lh_log_set_sink(NULL, NULL);
    assert_int_equal(c.n, 3);

    json_t *j = json_loads(c.lines[0], 0, NULL);
    assert_non_null(j);
    assert_string_equal(lh_json_str(j, "event"), "http.request");
    assert_string_equal(lh_json_str(j, "method"), "GET");
    assert_string_equal(lh_json_str(j, "path"), "/catalog/\\xff\\xfe/x");
    assert_string_equal(lh_json_str(j, "actor"), "bob");
    assert_int_equal(lh_json_int(j, "status", -1), 404);
    assert_int_equal(lh_json_int(j, "ms", -1), 12);
    assert_true(json_is_true(json_object_get(j, "completed")));
    json_decref(j);

    j = json_loads(c.lines[1], 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "message")));
    assert_string_equal(lh_json_str(j, "bucket"), "b");
    json_decref(j);

    j = json_loads(c.lines[2], 0, NULL);
    assert_non_null(j);
    assert_int_equal(lh_json_int(json_object_get(j, "outer"), "inner", -1), 7);
    json_decref(j);
    for (int i = 0; i < c.n; i++)
        free(c.lines[i]);
}

/* ---------------------------------------------------------------- names */

static void test_name_validate_table(void **state)
{
    (void)state;
    char n128[129], n129[130];
    memset(n128, 'a', 128);
    n128[128] = '\0';
    memset(n129, 'a', 129);
    n129[129] = '\0';
    const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"people", true},
        {"People_2024", true},
        {"_private", true},
        {"a", true},
        {n128, true},
        {n129, false},
        {"", false},
        {NULL, false},
        {"../x", false},
        {"a/b", false},
        {"a.b", false},
        {"a-b", false},
        {"a b", false},
        {"1abc", false},
        {"__raw__x", false},
        {"__", false},
        {"a\x01"
         "b",
         false},
        {"a\nb", false},
        {"a\x7f", false},
        {"caf\xc3\xa9", false},
        {"x;drop", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_error_clear(&err);
        int rc = lh_name_validate(cases[i].name, "dataset name", &err);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, LH_EINVAL);
            assert_int_equal(err.code, LH_EINVAL);
            assert_non_null(strstr(err.message, "dataset name"));
        }
    }
}

static void test_name_validate_messages(void **state)
{
    (void)state;
    lh_error err;
    lh_name_validate("a\x01", "dataset name", &err);
    /* The raw control byte must not be echoed into the message. */
    assert_null(strchr(err.message, '\x01'));
    assert_non_null(strstr(err.message, "control character"));
    lh_name_validate("__raw__x", "dataset name", &err);
    assert_non_null(strstr(err.message, "reserved"));
}

static void test_bucket_name_validate_table(void **state)
{
    (void)state;
    char n63[64], n64[65];
    memset(n63, 'b', 63);
    n63[63] = '\0';
    memset(n64, 'b', 64);
    n64[64] = '\0';
    const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"primary", true}, {"archive-2024", true}, {"b_1", true},    {"9lives", true},
        {n63, true},       {n64, false},           {"", false},      {NULL, false},
        {"Upper", false},  {"-lead", false},       {"_lead", false}, {"a/b", false},
        {"..", false},     {"a.b", false},         {"a b", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(lh_bucket_name_validate(cases[i].name, NULL), cases[i].ok ? 0 : LH_EINVAL);
}

/* ---------------------------------------------------------------- files */

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_fs_write_atomic(void **state)
{
    (void)state;
    char *dir = lh_test_tmpdir("core-atomic");
    char *path = lh_path_join(dir, "file.json");
    lh_error err;
    assert_int_equal(lh_fs_write_atomic(path, "first", 5, &err), 0);
    assert_int_equal(lh_fs_write_atomic(path, "second!", 7, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_fs_read_all(path, 1024, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "second!");
    free(data);
    /* No temp file left beside it. */
    assert_int_equal(count_entries(dir), 1);

    /* Writing into a missing folder fails and leaves nothing. */
    char *bad = lh_path_join(dir, "missing/file.json");
    assert_int_equal(lh_fs_write_atomic(bad, "x", 1, &err), LH_EIO);
    assert_int_equal(count_entries(dir), 1);

    /* read_all: limit and missing file. */
    assert_int_equal(lh_fs_read_all(path, 3, &data, &len, &err), LH_ETOOLARGE);
    assert_null(data);
    assert_int_equal(lh_fs_read_all(bad, 10, &data, &len, &err), LH_ENOTFOUND);
    free(bad);
    free(path);
    lh_test_rmdir(dir);
}

/* lh_fs_zero_fill: zeros over a range (extending the file), the file offset unmoved, and
 * its fault hook. */
static void test_fs_zero_fill(void **state)
{
    (void)state;
    char *dir = lh_test_tmpdir("core-zero");
    char *path = lh_path_join(dir, "j.log");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(lh_fs_write_all(fd, "abcdef", 6), 0);
    uint64_t done = 0;
    assert_int_equal(lh_fs_zero_fill(fd, 3, 200000, &done), 0); /* over data and past the end */
    assert_int_equal(done, 200000);
    assert_int_equal(lh_fs_size(path), 200000);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 6); /* the next write still lands at 6 */
    assert_int_equal(lh_fs_write_all(fd, "XY", 2), 0);
    char *data = NULL;
    size_t len = 0;
    lh_error err;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &len, &err), 0);
    assert_int_equal(len, 200000);
    assert_memory_equal(data, "abc\0\0\0XY\0", 9);
    for (size_t i = 8; i < len; i++)
        if (data[i] != 0)
            fail_msg("byte %zu is %d", i, data[i]);
    free(data);
#ifdef LH_FAULT_INJECTION
    lh_fault_arm(LH_FAULT_ZERO_FILL, 1, 1, ENOSPC);
    assert_int_equal(lh_fs_zero_fill(fd, 200000, 300000, &done), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(done, 200000);
    assert_int_equal(lh_fs_size(path), 200000); /* nothing written */
    lh_fault_reset();
    assert_int_equal(lh_fault_arm_spec("zero_fill:1:EIO", &err), 0); /* named in LH_FAULT */
    lh_fault_reset();
#endif
    close(fd);
    free(path);
    lh_test_rmdir(dir);
}

static void test_fs_mkdirs_and_remove_tree(void **state)
{
    (void)state;
    char *dir = lh_test_tmpdir("core-tree");
    char *deep = lh_path_join(dir, "a/b/c");
    assert_int_equal(lh_fs_mkdirs(deep, 0755, NULL), 0);
    assert_int_equal(lh_fs_mkdirs(deep, 0755, NULL), 0); /* idempotent */
    char *file = lh_path_join(deep, "f.txt");
    lh_test_write_file(file, "hello");
    assert_int_equal(lh_fs_size(file), 5);
    assert_true(lh_fs_exists(file));
    /* A file where a folder is wanted is an error, not a silent success. */
    char *under_file = lh_path_join(file, "x");
    assert_int_not_equal(lh_fs_mkdirs(under_file, 0755, NULL), 0);
    char *top = lh_path_join(dir, "a");
    assert_int_equal(lh_fs_remove_tree(top, NULL), 0);
    assert_false(lh_fs_exists(top));
    assert_int_equal(lh_fs_remove_tree(top, NULL), 0); /* missing is fine */
    assert_int_equal(lh_fs_size(file), -1);
    free(under_file);
    free(top);
    free(file);
    free(deep);
    lh_test_rmdir(dir);
}

static void test_path_join(void **state)
{
    (void)state;
    char *p = lh_path_join("/a/", "/b");
    assert_string_equal(p, "/a/b");
    free(p);
    p = lh_path_join("rel//", "b/c");
    assert_string_equal(p, "rel/b/c");
    free(p);
}

static void test_path_absolute(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/a/b/../c", "/a/c"},
        {"/a/./b//c/", "/a/b/c"},
        {"/..", "/"},
        {"/a/../..", "/"},
        {"/", "/"},
        {"//x///y", "/x/y"},
        {"/a/b/..", "/a"},
        {"/a/..b", "/a/..b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *abs = lh_path_absolute(cases[i].in, NULL);
        assert_non_null(abs);
        assert_string_equal(abs, cases[i].out);
        free(abs);
    }
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *expect = lh_path_join(cwd, "x/y");
    char *abs = lh_path_absolute("./x/z/../y", NULL);
    assert_string_equal(abs, expect);
    free(abs);
    free(expect);
    lh_error err;
    assert_null(lh_path_absolute("", &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_null(lh_path_absolute(NULL, &err));
}

/* ---------------------------------------------------------------- JSON strings */

static char *json_string_of(const char *s, size_t len)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_json_string(&b, s, len);
    return b.data;
}

static void test_buf_json_string_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"", 0, "\"\""},
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\n\r\t", 3, "\"\\n\\r\\t\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},           /* valid UTF-8 kept */
        {"\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""}, /* 4-byte sequence kept */
        {"a\xff"
         "b",
         3, "\"a\\ufffdb\""},                                        /* invalid byte */
        {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},            /* UTF-16 surrogate */
        {"x\xe2\x82", 3, "\"x\\ufffd\\ufffd\""},                     /* truncated at the end */
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = json_string_of(cases[i].in, cases[i].len);
        assert_string_equal(out, cases[i].out);
        /* Whatever went in, what comes out is valid JSON. */
        json_error_t jerr;
        json_t *v = json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        assert_non_null(v);
        assert_true(json_is_string(v));
        json_decref(v);
        free(out);
    }
}

static void test_buf_basics(void **state)
{
    (void)state;
    lh_buf b;
    lh_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        lh_buf_printf(&b, "%d,", i);
    assert_int_equal(strlen(b.data), b.len);
    assert_memory_equal(b.data, "0,1,2,", 6);
    lh_buf_consume(&b, 2);
    assert_memory_equal(b.data, "1,2,", 4);
    lh_buf_consume(&b, b.len + 10);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    lh_buf_free(&b);
    assert_null(b.data);
}

/* ---------------------------------------------------------------- JSON, time, ids */

static void test_json_parse_object(void **state)
{
    (void)state;
    lh_error err;
    json_t *v = lh_json_parse_object("{\"a\":1,\"s\":\"x\"}", 15, &err);
    assert_non_null(v);
    assert_int_equal(lh_json_int(v, "a", -1), 1);
    assert_int_equal(lh_json_int(v, "s", -1), -1);
    assert_string_equal(lh_json_str(v, "s"), "x");
    assert_null(lh_json_str(v, "a"));
    char *text = lh_json_dumps(v);
    assert_string_equal(text, "{\"a\":1,\"s\":\"x\"}");
    free(text);
    json_decref(v);

    static const char *const bad[] = {"[1,2]", "{\"a\":", "{\"a\":1,\"a\":2}", "\"s\"", "nul"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lh_error_clear(&err);
        assert_null(lh_json_parse_object(bad[i], strlen(bad[i]), &err));
        assert_int_equal(err.code, LH_EINVAL);
        assert_string_equal(lh_error_kind(&err), "invalid_json");
    }
    assert_null(lh_json_parse_object("", 0, &err));
    assert_int_equal(err.code, LH_EINVAL);
}

static void test_random_hex_and_time(void **state)
{
    (void)state;
    char a[33], b[33];
    lh_random_hex(a, 32);
    lh_random_hex(b, 32);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    char odd[8];
    lh_random_hex(odd, 7);
    assert_int_equal(strlen(odd), 7);

    char ts[LH_TS_MAX];
    lh_time_rfc3339(ts);
    /* 2026-11-24T22:45:01.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    int64_t t0 = lh_now_ms();
    assert_true(lh_now_ms() >= t0);
}

/* ---------------------------------------------------------------- jobs */

typedef struct job_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool release; /* the blocking job may finish */
    bool started; /* the blocking job is running */
    int ran, done_ok, done_failed;
} job_probe;

static int job_block(lh_job *job, void *ctx, lh_error *err)
{
    (void)err;
    job_probe *p = ctx;
    lh_job_progress(job, 5, 10);
    pthread_mutex_lock(&p->mu);
    p->started = true;
    pthread_cond_broadcast(&p->cv);
    while (!p->release)
        pthread_cond_wait(&p->cv, &p->mu);
    p->ran++;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int job_count(lh_job *job, void *ctx, lh_error *err)
{
    (void)job;
    job_probe *p = ctx;
    pthread_mutex_lock(&p->mu);
    int n = ++p->ran;
    pthread_mutex_unlock(&p->mu);
    usleep(2000);
    return n % 5 == 0 ? lh_error_set(err, LH_EINVAL, "job %d fails on purpose", n) : 0;
}

static void job_done(void *ctx, int rc)
{
    job_probe *p = ctx;
    pthread_mutex_lock(&p->mu);
    if (rc == 0)
        p->done_ok++;
    else
        p->done_failed++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void test_jobs_pool(void **state)
{
    (void)state;
    lh_error err;
    assert_null(lh_jobs_open(0, &err));
    assert_int_equal(err.code, LH_EINVAL);
    lh_jobs *jobs = lh_jobs_open(2, &err);
    assert_non_null(jobs);
    job_probe p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

    /* A running job shows its state and progress. */
    char block_id[LH_JOB_ID_LEN + 1];
    assert_int_equal(
        lh_jobs_submit(jobs, "ingest", "tester", job_block, job_done, &p, block_id, &err), 0);
    assert_int_equal(strlen(block_id), LH_JOB_ID_LEN);
    pthread_mutex_lock(&p.mu);
    while (!p.started)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    json_t *j = lh_jobs_get(jobs, block_id, &err);
    assert_non_null(j);
    assert_string_equal(lh_json_str(j, "state"), "running");
    assert_string_equal(lh_json_str(j, "kind"), "ingest");
    assert_string_equal(lh_json_str(j, "actor"), "tester");
    assert_int_equal(lh_json_int(json_object_get(j, "progress"), "done", 0), 5);
    assert_int_equal(lh_json_int(json_object_get(j, "progress"), "total", 0), 10);
    json_decref(j);

    /* The other worker keeps taking jobs while one is blocked: nothing waits behind it. */
    char ids[10][LH_JOB_ID_LEN + 1];
    for (int i = 0; i < 10; i++)
        assert_int_equal(lh_jobs_submit(jobs, "count", NULL, job_count, job_done, &p, ids[i], &err),
                         0);
    pthread_mutex_lock(&p.mu);
    while (p.done_ok + p.done_failed < 10)
        pthread_cond_wait(&p.cv, &p.mu);
    assert_int_equal(p.done_failed, 2);
    p.release = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);

    /* Outcomes are recorded before done() runs; failures keep their message. */
    int failed = 0;
    for (int i = 0; i < 10; i++) {
        j = lh_jobs_get(jobs, ids[i], &err);
        assert_non_null(j);
        if (strcmp(lh_json_str(j, "state"), "failed") == 0) {
            failed++;
            assert_non_null(strstr(lh_json_str(j, "error"), "fails on purpose"));
        } else {
            assert_string_equal(lh_json_str(j, "state"), "succeeded");
            assert_true(json_is_null(json_object_get(j, "error")));
        }
        json_decref(j);
    }
    assert_int_equal(failed, 2);
    assert_null(lh_jobs_get(jobs, "0000000000000000", &err));
    assert_int_equal(err.code, LH_ENOTFOUND);

    /* Close lets the blocked job finish before it returns. */
    lh_jobs_close(jobs);
    assert_int_equal(p.ran, 11);
    assert_int_equal(p.done_ok, 9);
    lh_jobs_close(NULL);
}

/* The registry forgets the oldest finished jobs beyond LH_JOBS_KEEP, never a live one. */
static void test_jobs_registry_is_bounded(void **state)
{
    (void)state;
    lh_error err;
    lh_jobs *jobs = lh_jobs_open(1, &err);
    job_probe p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char first[LH_JOB_ID_LEN + 1], id[LH_JOB_ID_LEN + 1];
    assert_int_equal(lh_jobs_submit(jobs, "count", NULL, job_count, job_done, &p, first, &err), 0);
    for (int i = 0; i < LH_JOBS_KEEP + 4; i++)
        assert_int_equal(lh_jobs_submit(jobs, "count", NULL, job_count, job_done, &p, id, &err), 0);
    pthread_mutex_lock(&p.mu);
    while (p.done_ok + p.done_failed < LH_JOBS_KEEP + 5)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    assert_null(lh_jobs_get(jobs, first, &err));
    json_t *j = lh_jobs_get(jobs, id, &err);
    assert_non_null(j);
    json_decref(j);
    lh_jobs_close(jobs);
}

/* LH_HTTP_THREADS defaults to one worker per query slot, at least 8; set, it wins. */
static void test_http_threads_follow_query_slots(void **state)
{
    (void)state;
    static const struct {
        const char *threads, *slots;
        int want;
    } cases[] = {
        {NULL, NULL, 8}, {NULL, "4", 8}, {NULL, "16", 16}, {"3", "16", 3}, {"12", NULL, 12}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].threads)
            setenv("LH_HTTP_THREADS", cases[i].threads, 1);
        else
            unsetenv("LH_HTTP_THREADS");
        if (cases[i].slots)
            setenv("LH_MAX_CONCURRENT_QUERIES", cases[i].slots, 1);
        else
            unsetenv("LH_MAX_CONCURRENT_QUERIES");
        lh_config cfg;
        lh_error err;
        assert_int_equal(lh_config_load(&cfg, &err), 0);
        assert_int_equal(cfg.http_threads, cases[i].want);
        lh_config_free(&cfg);
    }
    unsetenv("LH_HTTP_THREADS");
    unsetenv("LH_MAX_CONCURRENT_QUERIES");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_kinds),
        cmocka_unit_test(test_error_code_names),
        cmocka_unit_test(test_error_message_truncated),
        cmocka_unit_test(test_error_message_cut_on_code_points),
        cmocka_unit_test(test_error_message_escapes_bytes),
        cmocka_unit_test(test_escape_and_utf8),
        cmocka_unit_test(test_log_keeps_fields_around_a_bad_one),
        cmocka_unit_test(test_name_validate_table),
        cmocka_unit_test(test_name_validate_messages),
        cmocka_unit_test(test_bucket_name_validate_table),
        cmocka_unit_test(test_fs_write_atomic),
        cmocka_unit_test(test_fs_zero_fill),
        cmocka_unit_test(test_fs_mkdirs_and_remove_tree),
        cmocka_unit_test(test_path_join),
        cmocka_unit_test(test_path_absolute),
        cmocka_unit_test(test_buf_json_string_escaping),
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_json_parse_object),
        cmocka_unit_test(test_random_hex_and_time),
        cmocka_unit_test(test_jobs_pool),
        cmocka_unit_test(test_jobs_registry_is_bounded),
        cmocka_unit_test(test_http_threads_follow_query_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
