/*
 * test_cli: the parts of the `lakehouse` command that need no server: the table renderer
 * (alignment, display width of UTF-8, cutting with …, NULL, escapes, footer), JSON
 * re-indenting, the argument grammar and exit codes, and the client's local behaviour
 * (key lookup, error mapping, an unreachable server).
 */
#include "testutil.h"

#include "cli/cli.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Renders t and returns the text (caller frees). */
static char *render(const lh_table *t, const lh_table_footer *footer)
{
    lh_buf out;
    lh_buf_init(&out);
    lh_table_render(t, footer, &out);
    lh_buf_putc(&out, '\0');
    return out.data;
}

static char *fit(const char *s, size_t max, size_t *width)
{
    lh_buf out;
    lh_buf_init(&out);
    *width = lh_cli_cell_fit(s, max, &out);
    lh_buf_putc(&out, '\0');
    return out.data;
}

/* ---------------------------------------------------------------- tables */

static void test_table_alignment(void **state)
{
    (void)state;
    const char *headers[] = {"name", "rows"};
    lh_table t;
    lh_table_init(&t, 2, headers);
    lh_table_set_align(&t, 1, LH_ALIGN_RIGHT);
    lh_table_add_row(&t, (const char *[]){"people", "1000"});
    lh_table_add_row(&t, (const char *[]){"x", "7"});
    char *text = render(&t, NULL);
    assert_string_equal(text, " name   | rows\n"
                              "--------+------\n"
                              " people | 1000\n"
                              " x      |    7\n"
                              "(2 rows)\n");
    free(text);
    lh_table_free(&t);
}

static void test_table_utf8_width(void **state)
{
    (void)state;
    assert_int_equal(lh_cli_display_width("Zoë", strlen("Zoë")), 3);
    assert_int_equal(lh_cli_display_width("日本", strlen("日本")), 4);
    assert_int_equal(lh_cli_display_width("e\xCC\x81", 3), 1); /* e + combining acute */

    const char *headers[] = {"city", "n"};
    lh_table t;
    lh_table_init(&t, 2, headers);
    lh_table_add_row(&t, (const char *[]){"Zürich", "1"});
    lh_table_add_row(&t, (const char *[]){"東京", "2"});
    char *text = render(&t, NULL);
    /* "Zürich" is 6 columns (7 bytes), "東京" 4 columns (6 bytes): padding follows
     * columns, so the bars line up on screen. */
    assert_string_equal(text, " city   | n\n"
                              "--------+---\n"
                              " Zürich | 1\n"
                              " 東京   | 2\n"
                              "(2 rows)\n");
    free(text);
    lh_table_free(&t);
}

static void test_cell_truncation(void **state)
{
    (void)state;
    size_t w;
    char long_ascii[61];
    memset(long_ascii, 'a', 60);
    long_ascii[60] = '\0';
    char *s = fit(long_ascii, 40, &w);
    assert_int_equal(w, 40);
    assert_int_equal(strlen(s), 39 + 3);
    assert_string_equal(s + 39, "…");
    free(s);

    /* Exactly the maximum is not cut. */
    long_ascii[40] = '\0';
    s = fit(long_ascii, 40, &w);
    assert_int_equal(w, 40);
    assert_null(strstr(s, "…"));
    free(s);

    /* Two-byte characters are never split. */
    lh_buf in;
    lh_buf_init(&in);
    for (int i = 0; i < 45; i++)
        lh_buf_puts(&in, "é");
    lh_buf_putc(&in, '\0');
    s = fit(in.data, 40, &w);
    assert_int_equal(w, 40);
    assert_int_equal(strlen(s), 39 * 2 + 3);
    assert_memory_equal(s, in.data, 39 * 2);
    free(s);
    lh_buf_free(&in);

    /* Wide characters: 19 of them fill 38 columns, a 20th would pass 39. */
    lh_buf_init(&in);
    for (int i = 0; i < 30; i++)
        lh_buf_puts(&in, "日");
    lh_buf_putc(&in, '\0');
    s = fit(in.data, 40, &w);
    assert_int_equal(w, 39);
    assert_int_equal(strlen(s), 19 * 3 + 3);
    assert_string_equal(s + 19 * 3, "…");
    free(s);
    lh_buf_free(&in);
}

static void test_cell_escapes(void **state)
{
    (void)state;
    size_t w;
    char *s = fit("a\nb\tc", 40, &w);
    assert_string_equal(s, "a\\nb\\tc");
    assert_int_equal(w, 7);
    free(s);
    s = fit("\x1b[31mred", 40, &w);
    assert_string_equal(s, "\\x1b[31mred");
    free(s);
    s = fit("bad\xFFutf8", 40, &w);
    assert_string_equal(s, "bad\xEF\xBF\xBDutf8");
    assert_int_equal(w, 8);
    free(s);
    s = fit("\xE6\x97", 40, &w); /* a truncated 3-byte sequence: two replacement marks */
    assert_string_equal(s, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
}

static void test_table_null_and_footer(void **state)
{
    (void)state;
    const char *headers[] = {"email"};
    lh_table t;
    lh_table_init(&t, 1, headers);
    lh_table_add_row(&t, (const char *[]){NULL});
    char *text = render(&t, NULL);
    assert_string_equal(text, " email\n-------\n NULL\n(1 row)\n");
    free(text);

    lh_table_footer f = {.rows = 1000, .truncated = true};
    text = render(&t, &f);
    assert_non_null(strstr(text, "(1000 rows, truncated)\n"));
    free(text);
    lh_table_free(&t);

    lh_table_init(&t, 0, NULL);
    text = render(&t, NULL);
    assert_string_equal(text, "(0 rows)\n");
    free(text);
    lh_table_free(&t);
}

/* Every count the CLI prints agrees in number: "1 row", "1 column", never "1 rows". */
static void test_plurals(void **state)
{
    (void)state;
    assert_string_equal(lh_cli_plural(1, "row", "rows"), "row");
    assert_string_equal(lh_cli_plural(0, "row", "rows"), "rows");
    assert_string_equal(lh_cli_plural(2, "row", "rows"), "rows");
    assert_string_equal(lh_cli_plural(-1, "row", "rows"), "rows");

    lh_table_footer one = {.rows = 1};
    const char *headers[] = {"n"};
    lh_table t;
    lh_table_init(&t, 1, headers);
    char *text = render(&t, &one);
    assert_non_null(strstr(text, "(1 row)\n"));
    free(text);
    lh_table_free(&t);

    json_t *m = json_loads("{\"name\":\"solo\",\"bucket\":\"primary\",\"row_count\":1,"
                           "\"size_bytes\":600,\"columns\":[{\"name\":\"email\","
                           "\"is_pii\":true,\"pii_kind\":\"email\",\"sensitivity\":\"PII\"}]}",
                           0, NULL);
    assert_non_null(m);
    lh_buf out;
    lh_buf_init(&out);
    lh_cli_ingest_summary(m, "solo.csv", "solo", NULL, 0.25, &out);
    lh_buf_putc(&out, '\0');
    assert_string_equal(out.data, "ingested solo.csv into dataset 'solo' (bucket primary, mode "
                                  "create)\n"
                                  "  1 row, 1 column, 600 B of Parquet, 0.25 s\n"
                                  "  PII columns: email (email, PII)\n");
    lh_buf_free(&out);
    json_decref(m);

    m = json_loads("{\"name\":\"many\",\"bucket\":\"b\",\"row_count\":1234567,"
                   "\"size_bytes\":2048,\"columns\":[{\"name\":\"a\"},{\"name\":\"b\"}]}",
                   0, NULL);
    assert_non_null(m);
    lh_buf_init(&out);
    lh_cli_ingest_summary(m, "m.csv", "many", "append", 1.5, &out);
    lh_buf_putc(&out, '\0');
    assert_string_equal(out.data, "ingested m.csv into dataset 'many' (bucket b, mode append)\n"
                                  "  1,234,567 rows, 2 columns, 2.0 KiB of Parquet, 1.50 s\n"
                                  "  PII columns: none\n");
    lh_buf_free(&out);
    json_decref(m);

    m = json_loads("{\"name\":\"empty\",\"row_count\":0,\"columns\":[]}", 0, NULL);
    lh_buf_init(&out);
    lh_cli_ingest_summary(m, "e.csv", "empty", NULL, 0, &out);
    lh_buf_putc(&out, '\0');
    assert_non_null(strstr(out.data, "  0 rows, 0 columns, 0 B of Parquet"));
    lh_buf_free(&out);
    json_decref(m);
}

static void test_table_from_query_result(void **state)
{
    (void)state;
    const char *body = "{\"columns\":[{\"name\":\"id\",\"type\":\"BIGINT\"},"
                       "{\"name\":\"email\",\"type\":\"VARCHAR\"},"
                       "{\"name\":\"score\",\"type\":\"DOUBLE\"},"
                       "{\"name\":\"ok\",\"type\":\"BOOLEAN\"}],"
                       "\"rows\":[[1,\"a@example.com\",0.1,true],[22,null,12.5,false]],"
                       "\"row_count\":2,\"truncated\":false,\"elapsed_ms\":1.5}";
    json_t *doc = json_loads(body, 0, NULL);
    lh_table t;
    lh_error err;
    assert_int_equal(lh_table_from_query_result(doc, &t, &err), 0);
    char *text = render(&t, NULL);
    assert_string_equal(text, " id | email         | score | ok\n"
                              "----+---------------+-------+-------\n"
                              "  1 | a@example.com |   0.1 | true\n"
                              " 22 | NULL          |  12.5 | false\n"
                              "(2 rows)\n");
    free(text);
    lh_table_free(&t);
    json_decref(doc);

    doc = json_loads("{\"columns\":[{\"name\":\"a\"}],\"rows\":[[1,2]]}", 0, NULL);
    assert_int_equal(lh_table_from_query_result(doc, &t, &err), LH_EINVAL);
    json_decref(doc);
    doc = json_loads("{\"error\":\"x\"}", 0, NULL);
    assert_int_equal(lh_table_from_query_result(doc, &t, &err), LH_EINVAL);
    json_decref(doc);
}

static void test_query_result_exact_numbers(void **state)
{
    (void)state;
    const char *body = "{\"columns\":[{\"name\":\"h\",\"type\":\"HUGEINT\"},"
                       "{\"name\":\"d\",\"type\":\"DECIMAL(38,10)\"},"
                       "{\"name\":\"i\",\"type\":\"BIGINT\"},"
                       "{\"name\":\"s\",\"type\":\"VARCHAR\"}],"
                       "\"rows\":[[170141183460469231731687303715884105727,"
                       "12345678901234567890.1234567890,-9223372036854775808,\"1.5e3 \\\"x\"],"
                       "[-1,0.10,1e-7,null]],\"row_count\":2,\"truncated\":false,"
                       "\"elapsed_ms\":0.25}";
    lh_error err;
    json_t *doc = lh_cli_parse_query_result(body, strlen(body), &err);
    assert_non_null(doc);
    assert_int_equal(lh_json_int(doc, "row_count", -1), 2);
    lh_table t;
    assert_int_equal(lh_table_from_query_result(doc, &t, &err), 0);
    assert_string_equal(t.cells[0], "170141183460469231731687303715884105727");
    assert_string_equal(t.cells[1], "12345678901234567890.1234567890");
    assert_string_equal(t.cells[2], "-9223372036854775808");
    assert_string_equal(t.cells[3], "1.5e3 \"x");
    assert_string_equal(t.cells[4], "-1");
    assert_string_equal(t.cells[5], "0.10");
    assert_string_equal(t.cells[6], "1e-7");
    assert_null(t.cells[7]);
    assert_int_equal(t.align[1], LH_ALIGN_RIGHT);
    lh_table_free(&t);
    json_decref(doc);
    assert_null(lh_cli_parse_query_result("[1]", 3, &err));
}

static void test_json_pretty_keeps_bytes(void **state)
{
    (void)state;
    const char *in = "{\"a\":[1,2.50,{}],\"s\":\"x,{y}:\\\"z\\\"\",\"e\":[],\"n\":null}";
    lh_buf out;
    lh_buf_init(&out);
    lh_cli_json_pretty(in, strlen(in), &out);
    lh_buf_putc(&out, '\0');
    assert_string_equal(out.data, "{\n"
                                  "  \"a\": [\n"
                                  "    1,\n"
                                  "    2.50,\n"
                                  "    {}\n"
                                  "  ],\n"
                                  "  \"s\": \"x,{y}:\\\"z\\\"\",\n"
                                  "  \"e\": [],\n"
                                  "  \"n\": null\n"
                                  "}\n");
    lh_buf_free(&out);

    /* Garbage must not crash or read past the end. */
    lh_buf_init(&out);
    lh_cli_json_pretty("]]}\"unterminated\\", 17, &out);
    lh_buf_free(&out);
}

/* ---------------------------------------------------------------- arguments */

static void test_format_from_path(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        const char *format;
    } cases[] = {
        {"people.csv", "csv"},  {"/tmp/x/PEOPLE.CSV", "csv"},
        {"a.json", "json"},     {"a.ndjson", "ndjson"},
        {"a.jsonl", "ndjson"},  {"data/a.parquet", "parquet"},
        {"a.txt", NULL},        {"noext", NULL},
        {"dir.csv/file", NULL}, {"a.csv.gz", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = lh_cli_format_from_path(cases[i].path);
        if (cases[i].format)
            assert_string_equal(got, cases[i].format);
        else
            assert_null(got);
    }
}

static const lh_cli_flag_spec test_flags[] = {{"--name", true}, {"--dry", false}, {NULL, false}};

static const lh_cli_flag_spec *test_lookup(const char *command)
{
    return strcmp(command, "ingest") == 0 ? test_flags : NULL;
}

static void test_parse(void **state)
{
    (void)state;
    lh_cli_args a;
    lh_error err;
    char *argv1[] = {"lakehouse", "--json",     "ingest", "f.csv", "--name=people",
                     "--server",  "http://h:1", "--dry",  NULL};
    assert_int_equal(lh_cli_parse(8, argv1, test_lookup, &a, &err), 0);
    assert_string_equal(a.command, "ingest");
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.pos[0], "f.csv");
    assert_string_equal(lh_cli_flag(&a, "--name"), "people");
    assert_true(lh_cli_has_flag(&a, "--dry"));
    assert_null(lh_cli_flag(&a, "--dry"));
    assert_string_equal(a.server, "http://h:1");
    assert_true(a.json);

    char *argv2[] = {"lakehouse", "ingest", "--bogus", NULL};
    assert_int_equal(lh_cli_parse(3, argv2, test_lookup, &a, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "--bogus"));

    char *argv3[] = {"lakehouse", "ingest", "--name", NULL};
    assert_int_equal(lh_cli_parse(3, argv3, test_lookup, &a, &err), LH_EINVAL);

    char *argv4[] = {"lakehouse", "ingest", "--", "--odd-file.csv", NULL};
    assert_int_equal(lh_cli_parse(4, argv4, test_lookup, &a, &err), 0);
    assert_string_equal(a.pos[0], "--odd-file.csv");

    char *argv5[] = {"lakehouse", "frobnicate", "--whatever", NULL};
    assert_int_equal(lh_cli_parse(3, argv5, test_lookup, &a, &err), 0);
    assert_string_equal(a.command, "frobnicate");
}

static int run(int argc, char **argv)
{
    /* The command prints usage to stderr; keep test output readable. */
    fflush(stderr);
    int saved = dup(2);
    int null_fd = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null_fd >= 0);
    dup2(null_fd, 2);
    close(null_fd);
    int rc = lh_cli_main(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return rc;
}

static void test_exit_codes(void **state)
{
    (void)state;
    char *unknown[] = {"lakehouse", "frobnicate", NULL};
    assert_int_equal(run(2, unknown), LH_CLI_EXIT_USAGE);
    char *none[] = {"lakehouse", NULL};
    assert_int_equal(run(1, none), LH_CLI_EXIT_USAGE);
    char *bad_flag[] = {"lakehouse", "datasets", "--limit", "3", NULL};
    assert_int_equal(run(4, bad_flag), LH_CLI_EXIT_USAGE);
    char *missing[] = {"lakehouse", "sql", NULL};
    assert_int_equal(run(2, missing), LH_CLI_EXIT_USAGE);
    char *extra[] = {"lakehouse", "buckets", "x", NULL};
    assert_int_equal(run(3, extra), LH_CLI_EXIT_USAGE);
    char *no_name[] = {"lakehouse", "ingest", "f.csv", NULL};
    assert_int_equal(run(3, no_name), LH_CLI_EXIT_USAGE);
    char *no_format[] = {"lakehouse", "ingest", "f.dat", "--name", "x", NULL};
    assert_int_equal(run(5, no_format), LH_CLI_EXIT_USAGE);
    char *bad_mode[] = {"lakehouse", "ingest", "f.csv", "--name", "x", "--mode", "merge", NULL};
    assert_int_equal(run(7, bad_mode), LH_CLI_EXIT_USAGE);
    char *bad_limit[] = {"lakehouse", "sql", "SELECT 1", "--limit", "0", NULL};
    assert_int_equal(run(5, bad_limit), LH_CLI_EXIT_USAGE);
    char *unreachable[] = {"lakehouse", "--server", "http://127.0.0.1:1", "datasets", NULL};
    assert_int_equal(run(4, unreachable), LH_CLI_EXIT_ERROR);
}

/* ---------------------------------------------------------------- client */

static void test_client_unreachable(void **state)
{
    (void)state;
    lh_error err;
    lh_client *c = lh_client_new("http://127.0.0.1:1/", NULL, &err);
    assert_non_null(c);
    assert_string_equal(lh_client_server(c), "http://127.0.0.1:1");
    lh_response resp;
    lh_response_init(&resp);
    lh_request req = {.method = "GET", .path = "/health"};
    assert_int_equal(lh_client_send(c, &req, &resp, &err), LH_EUNAVAILABLE);
    assert_non_null(strstr(err.message, "not reachable at http://127.0.0.1:1"));
    assert_non_null(strstr(err.message, "lakehouse serve"));
    lh_response_free(&resp);
    lh_client_free(c);
}

static void test_response_error(void **state)
{
    (void)state;
    lh_response r;
    lh_error err;
    lh_response_init(&r);
    r.status = 404;
    lh_buf_puts(&r.body, "{\"error\":\"not_found\",\"message\":\"no dataset named 'x'\"}");
    assert_int_equal(lh_response_error(&r, &err), LH_ENOTFOUND);
    assert_string_equal(err.message, "not_found: no dataset named 'x'");
    lh_response_free(&r);

    lh_response_init(&r);
    r.status = 502;
    lh_buf_puts(&r.body, "Bad Gateway\n");
    assert_int_equal(lh_response_error(&r, &err), LH_EINTERNAL);
    assert_string_equal(err.message, "http_502: Bad Gateway");
    lh_response_free(&r);
}

static void test_key_resolution(void **state)
{
    (void)state;
    char *dir = lh_test_tmpdir("cli-key");
    char *secrets = lh_path_join(dir, "_secrets");
    char *file = lh_path_join(secrets, "admin.key");
    assert_int_equal(lh_fs_mkdirs(secrets, 0700, NULL), 0);
    lh_test_write_file(file, "k3y-from-file  \nsecond line\n");
    setenv("LH_DATA", dir, 1);
    unsetenv("LH_KEY");

    char *k = lh_client_resolve_key(NULL);
    assert_string_equal(k, "k3y-from-file");
    free(k);
    setenv("LH_KEY", "from-env", 1);
    k = lh_client_resolve_key(NULL);
    assert_string_equal(k, "from-env");
    free(k);
    k = lh_client_resolve_key("from-flag");
    assert_string_equal(k, "from-flag");
    free(k);
    unsetenv("LH_KEY");
    lh_fs_remove_tree(file, NULL);
    assert_null(lh_client_resolve_key(NULL));

    unsetenv("LH_SERVER");
    char *s = lh_client_resolve_server(NULL);
    assert_string_equal(s, LH_CLI_DEFAULT_SERVER);
    free(s);
    setenv("LH_SERVER", "http://example:9/", 1);
    s = lh_client_resolve_server(NULL);
    assert_string_equal(s, "http://example:9");
    free(s);
    unsetenv("LH_SERVER");
    unsetenv("LH_DATA");

    char *e = lh_client_escape("a b&c=d/é");
    assert_string_equal(e, "a%20b%26c%3Dd%2F%C3%A9");
    free(e);
    free(file);
    free(secrets);
    lh_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_table_utf8_width),
        cmocka_unit_test(test_cell_truncation),
        cmocka_unit_test(test_cell_escapes),
        cmocka_unit_test(test_table_null_and_footer),
        cmocka_unit_test(test_table_from_query_result),
        cmocka_unit_test(test_query_result_exact_numbers),
        cmocka_unit_test(test_json_pretty_keeps_bytes),
        cmocka_unit_test(test_format_from_path),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_client_unreachable),
        cmocka_unit_test(test_response_error),
        cmocka_unit_test(test_key_resolution),
        cmocka_unit_test(test_plurals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
