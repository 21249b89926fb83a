/*
 * test_query.c: the query engine — cell rendering of every type family (exact text, and
 * agreement with DuckDB's own VARCHAR cast over many values), JSON/CSV/NDJSON framing,
 * row cap, time limit, concurrency slots, the sandbox, dataset views kept in step with the
 * catalog, and regeneration when a bucket is added.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "query/query_internal.h"
#include "storage/storage.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    char *dir;
    char *data;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
} fx;

static void fx_open_engine(fx *f)
{
    lh_error err;
    f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err);
    if (!f->eng)
        fail_msg("lh_engine_open: %s", err.message);
}

static fx *fx_new(int max_queries)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    lh_error err;
    f->dir = lh_test_tmpdir("query");
    f->data = lh_path_join(f->dir, "data");
    f->cfg.query_timeout_ms = 30000;
    f->cfg.query_default_rows = 1000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = max_queries;
    f->cfg.duckdb_threads = 2;
    f->cfg.duckdb_memory_mb = 512;
    f->st = lh_storage_open(f->data, &err);
    if (!f->st)
        fail_msg("lh_storage_open: %s", err.message);
    f->cat = lh_catalog_open(f->st, &err);
    if (!f->cat)
        fail_msg("lh_catalog_open: %s", err.message);
    fx_open_engine(f);
    return f;
}

static void fx_free(fx *f)
{
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
    free(f->data);
    lh_test_rmdir(f->dir);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new(4);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* Runs a query to the end, reading `step` bytes at a time. Returns the whole output
 * (caller frees) or NULL with err filled when the query did not start. *last gets the
 * final lh_query_read result (0, or -1 for a CSV failure). */
static char *run_full(lh_engine *eng, const char *sql, lh_result_format fmt, int64_t max_rows,
                      int timeout_ms, size_t step, lh_error *err, ssize_t *last, int64_t *rows,
                      bool *truncated)
{
    lh_query_opts o = {.format = fmt, .max_rows = max_rows, .timeout_ms = timeout_ms};
    lh_query *q = lh_query_start(eng, sql, &o, err);
    if (!q)
        return NULL;
    lh_buf b;
    lh_buf_init(&b);
    char buf[65536];
    ssize_t n;
    while ((n = lh_query_read(q, buf, step < sizeof(buf) ? step : sizeof(buf))) > 0)
        lh_buf_append(&b, buf, (size_t)n);
    if (last)
        *last = n;
    if (rows)
        *rows = lh_query_row_count(q);
    if (truncated)
        *truncated = lh_query_truncated(q);
    lh_query_free(q);
    return b.data ? b.data : lh_xstrdup("");
}

static char *run(lh_engine *eng, const char *sql, lh_result_format fmt)
{
    lh_error err;
    char *out = run_full(eng, sql, fmt, 100000, 30000, 7, &err, NULL, NULL, NULL);
    if (!out)
        fail_msg("query failed: %s\n  %s", sql, err.message);
    return out;
}

/* The JSON document without its elapsed_ms value (which varies). */
static void strip_elapsed(char *doc)
{
    char *p = strstr(doc, "\"elapsed_ms\":");
    if (!p)
        return;
    char *v = p + strlen("\"elapsed_ms\":");
    char *e = v;
    while (*e >= '0' && *e <= '9')
        e++;
    memmove(v, e, strlen(e) + 1);
}

/* ---------------------------------------------------------------- cell rendering */

typedef struct {
    const char *expr;
    const char *type;
    const char *cell; /* the JSON text of the value */
} cell_case;

static const cell_case cell_cases[] = {
    /* NULLs and booleans */
    {"NULL::INTEGER", "INTEGER", "null"},
    {"NULL::VARCHAR", "VARCHAR", "null"},
    {"NULL::INTEGER[]", "INTEGER[]", "null"},
    {"NULL", "INTEGER", "null"}, /* DuckDB types a bare NULL column as INTEGER */
    {"true", "BOOLEAN", "true"},
    {"false", "BOOLEAN", "false"},
    /* integers, signed and unsigned, at their limits */
    {"(-128)::TINYINT", "TINYINT", "-128"},
    {"(-32768)::SMALLINT", "SMALLINT", "-32768"},
    {"(-2147483648)::INTEGER", "INTEGER", "-2147483648"},
    {"(-9223372036854775808)::BIGINT", "BIGINT", "-9223372036854775808"},
    {"9223372036854775807::BIGINT", "BIGINT", "9223372036854775807"},
    {"255::UTINYINT", "UTINYINT", "255"},
    {"65535::USMALLINT", "USMALLINT", "65535"},
    {"4294967295::UINTEGER", "UINTEGER", "4294967295"},
    {"18446744073709551615::UBIGINT", "UBIGINT", "18446744073709551615"},
    {"0::HUGEINT", "HUGEINT", "0"},
    {"170141183460469231731687303715884105727::HUGEINT", "HUGEINT",
     "170141183460469231731687303715884105727"},
    {"(-170141183460469231731687303715884105727)::HUGEINT - 1", "HUGEINT",
     "-170141183460469231731687303715884105728"},
    {"340282366920938463463374607431768211455::UHUGEINT", "UHUGEINT",
     "340282366920938463463374607431768211455"},
    /* decimals of every storage width, exact */
    {"(-1.50)::DECIMAL(10,2)", "DECIMAL(10,2)", "-1.50"},
    {"(-999.9)::DECIMAL(4,1)", "DECIMAL(4,1)", "-999.9"},
    {"0.05::DECIMAL(4,3)", "DECIMAL(4,3)", "0.050"},
    {"0::DECIMAL(5,2)", "DECIMAL(5,2)", "0.00"},
    {"(-0.05)::DECIMAL(38,10)", "DECIMAL(38,10)", "-0.0500000000"},
    {"123456789012.456789::DECIMAL(18,6)", "DECIMAL(18,6)", "123456789012.456789"},
    {"12345678901234567890123456789.123456789::DECIMAL(38,9)", "DECIMAL(38,9)",
     "12345678901234567890123456789.123456789"},
    {"(-99999999999999999999999999999999999999)::DECIMAL(38,0)", "DECIMAL(38,0)",
     "-99999999999999999999999999999999999999"},
    {"1.5", "DECIMAL(2,1)", "1.5"},
    /* floating point */
    {"0.1::DOUBLE", "DOUBLE", "0.1"},
    {"100::DOUBLE", "DOUBLE", "100.0"},
    {"-0.0::DOUBLE", "DOUBLE", "-0.0"},
    {"1e20::DOUBLE", "DOUBLE", "1e+20"},
    {"5e-324::DOUBLE", "DOUBLE", "5e-324"},
    {"1.7976931348623157e308::DOUBLE", "DOUBLE", "1.7976931348623157e+308"},
    {"'nan'::DOUBLE", "DOUBLE", "\"NaN\""},
    {"'inf'::DOUBLE", "DOUBLE", "\"Infinity\""},
    {"'-inf'::DOUBLE", "DOUBLE", "\"-Infinity\""},
    {"0.3::FLOAT", "FLOAT", "0.3"},
    {"16777217::FLOAT", "FLOAT", "16777216.0"},
    {"'nan'::FLOAT", "FLOAT", "\"NaN\""},
    /* strings: inline (<= 12 bytes) and pointer, unicode, control characters */
    {"''", "VARCHAR", "\"\""},
    {"'hello'", "VARCHAR", "\"hello\""},
    {"'a string longer than twelve bytes'", "VARCHAR", "\"a string longer than twelve bytes\""},
    {"'héllo ✓ 😀 日本'", "VARCHAR", "\"héllo ✓ 😀 日本\""},
    {"chr(1) || 'a' || chr(10) || '\"\\' || chr(9) || chr(31)", "VARCHAR",
     "\"\\u0001a\\n\\\"\\\\\\t\\u001f\""},
    {"'{\"a\": 1}'::JSON", "JSON", "\"{\\\"a\\\": 1}\""},
    /* dates and times */
    {"DATE '2024-02-29'", "DATE", "\"2024-02-29\""},
    {"DATE '0001-01-01' - 1", "DATE", "\"0001-12-31 (BC)\""},
    {"'infinity'::DATE", "DATE", "\"infinity\""},
    {"'-infinity'::DATE", "DATE", "\"-infinity\""},
    {"TIMESTAMP '2024-01-02 03:04:05.5'", "TIMESTAMP", "\"2024-01-02 03:04:05.5\""},
    {"TIMESTAMP '1969-12-31 23:59:59.999999'", "TIMESTAMP", "\"1969-12-31 23:59:59.999999\""},
    {"TIMESTAMP '2024-01-02 03:04:05'", "TIMESTAMP", "\"2024-01-02 03:04:05\""},
    {"'2024-01-02 03:04:05.123456789'::TIMESTAMP_NS", "TIMESTAMP_NS",
     "\"2024-01-02 03:04:05.123456789\""},
    {"'2024-01-02 03:04:05.120'::TIMESTAMP_MS", "TIMESTAMP_MS", "\"2024-01-02 03:04:05.12\""},
    {"'2024-01-02 03:04:05'::TIMESTAMP_S", "TIMESTAMP_S", "\"2024-01-02 03:04:05\""},
    {"'2024-01-02 03:04:05.25+02'::TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE",
     "\"2024-01-02 01:04:05.25+00\""},
    {"'infinity'::TIMESTAMP", "TIMESTAMP", "\"infinity\""},
    {"TIME '12:34:56.789'", "TIME", "\"12:34:56.789\""},
    {"'01:02:03+05:30'::TIMETZ", "TIME WITH TIME ZONE", "\"01:02:03+05:30\""},
    {"INTERVAL '1 year 2 months 3 days 04:05:06.789'", "INTERVAL",
     "\"1 year 2 months 3 days 04:05:06.789\""},
    /* uuids, blobs, bits, bignums, enums */
    {"'550e8400-e29b-41d4-a716-446655440000'::UUID", "UUID",
     "\"550e8400-e29b-41d4-a716-446655440000\""},
    {"'00000000-0000-0000-0000-000000000000'::UUID", "UUID",
     "\"00000000-0000-0000-0000-000000000000\""},
    {"'ffffffff-ffff-ffff-ffff-ffffffffffff'::UUID", "UUID",
     "\"ffffffff-ffff-ffff-ffff-ffffffffffff\""},
    {"'\\xAA\\x00a'::BLOB", "BLOB", "\"\\\\xAA\\\\x00a\""},
    {"'0101'::BIT", "BIT", "\"0101\""},
    {"(-123456789012345678901234567890)::BIGNUM", "BIGNUM", "\"-123456789012345678901234567890\""},
    {"'b'::ENUM('a', 'b')", "ENUM('a', 'b')", "\"b\""},
    /* nested values as DuckDB's text */
    {"[1, 2, NULL]", "INTEGER[]", "\"[1, 2, NULL]\""},
    {"['a', 'b c', 'it''s']", "VARCHAR[]", "\"[a, b c, 'it\\\\'s']\""},
    {"[[1, 2], [3]]", "INTEGER[][]", "\"[[1, 2], [3]]\""},
    {"[]::INTEGER[]", "INTEGER[]", "\"[]\""},
    {"[1, 2, 3]::INTEGER[3]", "INTEGER[3]", "\"[1, 2, 3]\""},
    {"{'a': 1, 'b': 'x y', 'c': NULL}", "STRUCT(a INTEGER, b VARCHAR, c INTEGER)",
     "\"{'a': 1, 'b': x y, 'c': NULL}\""},
    {"{'order': [DATE '2024-01-01'], 'Name': 1.5}",
     "STRUCT(\\\"order\\\" DATE[], \\\"Name\\\" "
     "DECIMAL(2,1))",
     "\"{'order': [2024-01-01], 'Name': 1.5}\""},
    {"MAP {'k': 1, 'k 2': NULL}", "MAP(VARCHAR, INTEGER)", "\"{k=1, k 2=NULL}\""},
    {"[{'u': '550e8400-e29b-41d4-a716-446655440000'::UUID, 'h': 1::HUGEINT}]",
     "STRUCT(u UUID, h HUGEINT)[]", "\"[{'u': 550e8400-e29b-41d4-a716-446655440000, 'h': 1}]\""},
    {"'x'::UNION(i INTEGER, s VARCHAR)", "UNION(i INTEGER, s VARCHAR)", "\"x\""},
    {"[1.25::DECIMAL(5,2), -3]", "DECIMAL(12,2)[]", "\"[1.25, -3.00]\""},
    {"[TIMESTAMP '2024-01-02 03:04:05.5', NULL]", "TIMESTAMP[]",
     "\"['2024-01-02 03:04:05.5', NULL]\""},
    {"['b'::ENUM('a', 'b'), NULL]", "ENUM('a', 'b')[]", "\"[b, NULL]\""},
};

static void test_cells_json(void **state)
{
    fx *f = *state;
    for (size_t i = 0; i < sizeof(cell_cases) / sizeof(cell_cases[0]); i++) {
        const cell_case *c = &cell_cases[i];
        char *sql = lh_xasprintf("SELECT %s AS v", c->expr);
        char *out = run(f->eng, sql, LH_FORMAT_JSON);
        strip_elapsed(out);
        char *want = lh_xasprintf("{\"columns\":[{\"name\":\"v\",\"type\":\"%s\"}],\"rows\":[[%s]],"
                                  "\"row_count\":1,\"truncated\":false,\"elapsed_ms\":}",
                                  c->type, c->cell);
        if (strcmp(out, want) != 0)
            fail_msg("case %zu: %s\n  got:  %s\n  want: %s", i, c->expr, out, want);
        free(want);
        free(out);
        free(sql);
    }
}

/* Splits one CSV record (RFC 4180) into at most max fields, unquoting them. Returns the
 * field count; *next gets the start of the following record. */
static size_t csv_record(const char *p, char **fields, size_t max, const char **next)
{
    size_t n = 0;
    for (;;) {
        lh_buf b;
        lh_buf_init(&b);
        lh_buf_append(&b, "", 0);
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '"' && p[1] == '"') {
                    lh_buf_putc(&b, '"');
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else if (!*p) {
                    break;
                } else {
                    lh_buf_putc(&b, *p++);
                }
            }
        } else {
            while (*p && *p != ',' && *p != '\r' && *p != '\n')
                lh_buf_putc(&b, *p++);
        }
        if (n < max)
            fields[n++] = b.data;
        else
            free(b.data);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\r')
            p++;
        if (*p == '\n')
            p++;
        *next = p;
        return n;
    }
}

/* Renders `x` of every row of gen and DuckDB's CAST(x AS VARCHAR); they must agree (as
 * numbers when numeric). */
static void expect_same_as_cast(lh_engine *eng, const char *gen, bool numeric)
{
    char *sql = lh_xasprintf("SELECT x, CAST(x AS VARCHAR) FROM (%s)", gen);
    char *out = run(eng, sql, LH_FORMAT_CSV);
    const char *p = out, *next;
    char *fields[2];
    size_t rows = 0;
    csv_record(p, fields, 2, &next); /* header */
    free(fields[0]);
    free(fields[1]);
    p = next;
    while (*p) {
        size_t n = csv_record(p, fields, 2, &next);
        assert_int_equal(n, 2);
        bool same = strcmp(fields[0], fields[1]) == 0;
        if (!same && numeric) {
            same = strtod(fields[0], NULL) == strtod(fields[1], NULL) ||
                   (strcmp(fields[0], "NaN") == 0 && strcmp(fields[1], "nan") == 0) ||
                   (strcmp(fields[0], "Infinity") == 0 && strcmp(fields[1], "inf") == 0) ||
                   (strcmp(fields[0], "-Infinity") == 0 && strcmp(fields[1], "-inf") == 0);
        }
        if (!same)
            fail_msg("%s\n  row %zu: ours '%s', DuckDB '%s'", gen, rows, fields[0], fields[1]);
        free(fields[0]);
        free(fields[1]);
        rows++;
        p = next;
    }
    assert_true(rows > 0);
    free(out);
    free(sql);
}

static void test_cells_match_duckdb_casts(void **state)
{
    fx *f = *state;
    static const struct {
        const char *gen;
        bool numeric;
    } gens[] = {
        {"SELECT DATE '1970-01-01' + (i * 10007 - 2500000)::INTEGER AS x FROM range(500) t(i)",
         false},
        {"SELECT make_timestamp(i::BIGINT * 250000000003 * 1000 + i * 7 - 1e17::BIGINT) AS x "
         "FROM range(1000) t(i)",
         false},
        {"SELECT make_timestamp(i * 1000 + (i % 7) * 10) AS x FROM range(300) t(i)", false},
        {"SELECT make_timestamp_ns(i::BIGINT * 12345678901234567 - 3e18::BIGINT + i) AS x "
         "FROM range(500) t(i)",
         false},
        {"SELECT (make_timestamp(i * 98765432109 - 2e15::BIGINT))::TIMESTAMP_MS AS x "
         "FROM range(500) t(i)",
         false},
        {"SELECT (make_timestamp(i * 98765432109 - 2e15::BIGINT))::TIMESTAMP_S AS x "
         "FROM range(500) t(i)",
         false},
        {"SELECT (make_timestamp(i * 98765432109 - 2e15::BIGINT))::TIMESTAMPTZ AS x "
         "FROM range(500) t(i)",
         false},
        {"SELECT x FROM (VALUES ('infinity'::TIMESTAMP), ('-infinity'::TIMESTAMP), (NULL)) t(x)",
         false},
        {"SELECT x FROM (VALUES ('infinity'::TIMESTAMPTZ), ('-infinity'::TIMESTAMPTZ)) t(x)",
         false},
        {"SELECT x FROM (VALUES ('infinity'::TIMESTAMP_NS), ('-infinity'::TIMESTAMP_MS::"
         "TIMESTAMP_NS)) t(x)",
         false},
        {"SELECT ((i - 250) * 0.013579)::DECIMAL(4,1) AS x FROM range(500) t(i)", true},
        {"SELECT ((i - 250) * 0.013579)::DECIMAL(9,5) AS x FROM range(500) t(i)", true},
        {"SELECT ((i - 250) * 1234567.013579)::DECIMAL(18,6) AS x FROM range(500) t(i)", true},
        {"SELECT ((i - 250) * 123456789012345678901.013579)::DECIMAL(38,8) AS x "
         "FROM range(500) t(i)",
         true},
        {"SELECT (i - 250)::HUGEINT * 680564733841876926926749214863536422 AS x "
         "FROM range(500) t(i)",
         true},
        {"SELECT i::UHUGEINT * 680564733841876926926749214863536422::UHUGEINT AS x "
         "FROM range(500) t(i)",
         true},
        {"SELECT (i - 250) * 1.1e-3::DOUBLE AS x FROM range(500) t(i)", true},
        {"SELECT pow(10, i - 250) * 1.7 AS x FROM range(500) t(i)", true},
        {"SELECT ((i - 250) * 0.37)::FLOAT AS x FROM range(500) t(i)", true},
        {"SELECT gen_random_uuid() AS x FROM range(500) t(i)", false},
        {"SELECT x FROM (VALUES ('00000000-0000-0000-0000-000000000000'::UUID), "
         "('7fffffff-ffff-ffff-ffff-ffffffffffff'::UUID), "
         "('80000000-0000-0000-0000-000000000000'::UUID)) t(x)",
         false},
        {"SELECT ((CASE WHEN i % 2 = 0 THEN '-' ELSE '' END) || (i % 10) || repeat('7', i % 45))"
         "::BIGNUM AS x FROM range(100) t(i)",
         false},
        {"SELECT [i, NULL, i * 2] AS x FROM range(50) t(i)", false},
        {"SELECT {'a': i, 's': 'v' || i, 'l': [i::DECIMAL(10,3)]} AS x FROM range(50) t(i)", false},
        {"SELECT to_microseconds(i * 987654321 - 5e10::BIGINT) AS x FROM range(100) t(i)", false},
        {"SELECT ('x' || i)::BLOB AS x FROM range(50) t(i)", false},
    };
    for (size_t i = 0; i < sizeof(gens) / sizeof(gens[0]); i++)
        expect_same_as_cast(f->eng, gens[i].gen, gens[i].numeric);
}

/* The shortest %g text that reads back to v, ".0" added to an integral one: what the
 * renderer gave every double before its fast path for short decimals (value.c). */
static void ref_double_text(double v, char *buf, size_t cap)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, cap - 2, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".e"))
        memcpy(buf + n, ".0", 3);
}

/* Doubles through the renderer against ref_double_text: short decimals of every scale (the
 * fast path), their neighbours one ulp away, the bounds of the fast path and values
 * outside it (which take the %g loop). A value goes into the SQL as a string of %.17g,
 * which DuckDB's cast reads back to the same double (a bare literal would be a DECIMAL,
 * whose conversion to DOUBLE may round differently). */
static void test_doubles_render_as_shortest_text(void **state)
{
    fx *f = *state;
    srand(20261203);
    enum { PER_QUERY = 400, QUERIES = 12 };
    for (int qi = 0; qi < QUERIES; qi++) {
        double vals[PER_QUERY];
        for (int i = 0; i < PER_QUERY; i++) {
            int k = rand() % 16, kind = rand() % 6;
            double m = (double)((((int64_t)rand() << 31) ^ rand()) % 1000000000000000LL);
            double v = m;
            for (int j = 0; j < k; j++)
                v /= 10; /* not m / 10^k: an inexact quotient is a case too */
            if (kind == 1)
                v = round(v * 100) / 100; /* a figure rounded to cents */
            else if (kind == 2)
                v = nextafter(v, INFINITY);
            else if (kind == 3)
                v = ldexp((double)rand(), rand() % 120 - 60);
            else if (kind == 4) {
                static const double edges[] = {1e-4,
                                               nextafter(1e-4, 0),
                                               1e15,
                                               nextafter(1e15, 0),
                                               999999999999999.0,
                                               99999999999999.9,
                                               0.1 + 0.2,
                                               0.0001234,
                                               5e-5,
                                               123456789.123456789,
                                               1.0 / 3};
                v = edges[rand() % (int)(sizeof(edges) / sizeof(edges[0]))];
            } else if (kind == 5)
                v = (double)(rand() % 100000) / 100;
            vals[i] = rand() % 2 ? -v : v;
        }
        lh_buf sql;
        lh_buf_init(&sql);
        lh_buf_puts(&sql, "SELECT x FROM (VALUES ");
        for (int i = 0; i < PER_QUERY; i++)
            lh_buf_printf(&sql, "%s(%d, '%.17g'::DOUBLE)", i ? ", " : "", i, vals[i]);
        lh_buf_puts(&sql, ") t(i, x) ORDER BY i");
        char *out = run(f->eng, sql.data, LH_FORMAT_CSV);
        const char *p = out, *next;
        char *field[1];
        csv_record(p, field, 1, &next); /* header */
        free(field[0]);
        p = next;
        for (int i = 0; i < PER_QUERY; i++) {
            assert_int_equal(csv_record(p, field, 1, &next), 1);
            char want[64];
            ref_double_text(vals[i], want, sizeof(want));
            if (strcmp(field[0], want) != 0)
                fail_msg("%.17g: rendered '%s', the %%g loop gives '%s'", vals[i], field[0], want);
            free(field[0]);
            p = next;
        }
        free(out);
        lh_buf_free(&sql);
    }
}

/* Column types are DuckDB's own names (typeof). */
static void test_type_names_match_typeof(void **state)
{
    fx *f = *state;
    static const char *const exprs[] = {
        "1::TINYINT",
        "[1, 2]::BIGINT[]",
        "{'a': 1, 'b c': 'x', 'Select': [1.5]}",
        "{'key': 1, 'year': 2, 'x1': 3, '1x': 4, 'q\"x': 5}",
        "MAP {[1]: {'a': [1]}}",
        "'a'::ENUM('a', 'it''s')",
        "1::UNION(num INTEGER, str VARCHAR)",
        "[1, 2]::INTEGER[2]",
        "now()",
        "'\"x\"'::JSON",
        "1::DECIMAL(18,3)",
        "[[1]]::DECIMAL(30,3)[][]",
    };
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        char *sql = lh_xasprintf("SELECT %s AS v, typeof(%s) AS t", exprs[i], exprs[i]);
        char *out = run(f->eng, sql, LH_FORMAT_JSON);
        json_error_t jerr;
        json_t *doc = json_loads(out, 0, &jerr);
        if (!doc)
            fail_msg("%s: not JSON (%s): %s", exprs[i], jerr.text, out);
        const char *ours = lh_json_str(json_array_get(json_object_get(doc, "columns"), 0), "type");
        const char *theirs =
            json_string_value(json_array_get(json_array_get(json_object_get(doc, "rows"), 0), 1));
        if (!ours || !theirs || strcmp(ours, theirs) != 0)
            fail_msg("%s: type '%s', typeof '%s'", exprs[i], ours ? ours : "(none)",
                     theirs ? theirs : "(none)");
        json_decref(doc);
        free(out);
        free(sql);
    }
}

/* ---------------------------------------------------------------- formats */

static void test_json_document(void **state)
{
    fx *f = *state;
    char *out =
        run(f->eng, "SELECT i AS n, 'r' || i AS \"s \"\"q\"\"\" FROM range(3) t(i) ORDER BY i",
            LH_FORMAT_JSON);
    strip_elapsed(out);
    assert_string_equal(
        out, "{\"columns\":[{\"name\":\"n\",\"type\":\"BIGINT\"},{\"name\":\"s \\\"q\\\"\","
             "\"type\":\"VARCHAR\"}],\"rows\":[[0,\"r0\"],[1,\"r1\"],[2,\"r2\"]],\"row_count\":3,"
             "\"truncated\":false,\"elapsed_ms\":}");
    free(out);
    /* an empty result is still a whole document */
    out = run(f->eng, "SELECT 1 AS a WHERE false", LH_FORMAT_JSON);
    strip_elapsed(out);
    assert_string_equal(out, "{\"columns\":[{\"name\":\"a\",\"type\":\"INTEGER\"}],\"rows\":[],"
                             "\"row_count\":0,\"truncated\":false,\"elapsed_ms\":}");
    free(out);
    /* and a big one parses */
    out =
        run(f->eng, "SELECT i, i * 1.5 AS d, 'x' || i AS s FROM range(10000) t(i)", LH_FORMAT_JSON);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "rows")), 10000);
    assert_int_equal(lh_json_int(doc, "row_count", -1), 10000);
    json_decref(doc);
    free(out);
}

static void test_csv_quoting(void **state)
{
    fx *f = *state;
    char *out =
        run(f->eng,
            "SELECT 'a,b' AS \"x,y\", 'say \"hi\"' AS q, 'line1' || chr(10) || 'line2' AS n, "
            "'cr' || chr(13) AS r, '' AS e, NULL AS nul, 1.5 AS d, true AS b, "
            "'nan'::DOUBLE AS f, [1, 2] AS l",
            LH_FORMAT_CSV);
    assert_string_equal(out, "\"x,y\",q,n,r,e,nul,d,b,f,l\r\n"
                             "\"a,b\",\"say \"\"hi\"\"\",\"line1\nline2\",\"cr\r\",\"\",,1.5,true,"
                             "NaN,\"[1, 2]\"\r\n");
    free(out);
    out = run(f->eng, "SELECT 1 AS a WHERE false", LH_FORMAT_CSV);
    assert_string_equal(out, "a\r\n");
    free(out);
}

static void test_ndjson(void **state)
{
    fx *f = *state;
    char *out = run(
        f->eng,
        "SELECT * FROM (VALUES (1, 'x', 2.5::DOUBLE), (2, NULL, 'inf'::DOUBLE)) t(a, \"b\"\"\", c)",
        LH_FORMAT_NDJSON);
    assert_string_equal(out, "{\"a\":1,\"b\\\"\":\"x\",\"c\":2.5}\n"
                             "{\"a\":2,\"b\\\"\":null,\"c\":\"Infinity\"}\n");
    free(out);
    out = run(f->eng, "SELECT 1 AS a WHERE false", LH_FORMAT_NDJSON);
    assert_string_equal(out, "");
    free(out);
}

static void test_format_parse(void **state)
{
    (void)state;
    lh_result_format fmt;
    lh_error err;
    assert_int_equal(lh_result_format_parse(NULL, &fmt, &err), 0);
    assert_int_equal(fmt, LH_FORMAT_JSON);
    assert_int_equal(lh_result_format_parse("csv", &fmt, &err), 0);
    assert_int_equal(fmt, LH_FORMAT_CSV);
    assert_int_equal(lh_result_format_parse("ndjson", &fmt, &err), 0);
    assert_int_equal(fmt, LH_FORMAT_NDJSON);
    assert_int_equal(lh_result_format_parse("xml", &fmt, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "json, csv, ndjson"));
    assert_string_equal(lh_result_format_mime(LH_FORMAT_JSON), "application/json");
    assert_string_equal(lh_result_format_mime(LH_FORMAT_CSV), "text/csv; charset=utf-8");
    assert_string_equal(lh_result_format_mime(LH_FORMAT_NDJSON), "application/x-ndjson");
}

/* ---------------------------------------------------------------- watchdog */

/* An in-memory DuckDB of its own, for the parts of the engine tested without one. */
static void bare_duck_open(duckdb_database *db, duckdb_connection *conn)
{
    assert_int_equal(duckdb_open(NULL, db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(*db, conn), DuckDBSuccess);
}

static bool expired_once(lh_watch *w)
{
    (void)w;
    return true;
}

/* Polls until w fired (true) or ms passed (false). */
static bool fires_within(lh_watch *w, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (atomic_load(&w->fired))
            return true;
        usleep(5000);
    }
    return atomic_load(&w->fired);
}

/* The watchdog sleeps until the earliest deadline and is woken only for an earlier one
 * (watchdog.c, "Wake-ups"): an entry added while it sleeps until a far deadline still fires
 * on time (it would not if adding never woke the thread), as does one whose deadline is
 * already past (then expired and unlinked); entries later than the one it sleeps for do
 * not fire early. */
static void test_watchdog_wakes_for_an_earlier_deadline(void **state)
{
    (void)state;
    duckdb_database db;
    duckdb_connection conn;
    bare_duck_open(&db, &conn);
    lh_error err;
    lh_watchdog *wd = lh_watchdog_start(&err);
    assert_non_null(wd);

    lh_watch far = {.conn = conn, .deadline_ms = lh_now_ms() + 600000};
    lh_watchdog_add(wd, &far);
    usleep(50000); /* the thread now sleeps until far's deadline */
    lh_watch near = {.conn = conn, .deadline_ms = lh_now_ms() + 100};
    int64_t t0 = lh_now_ms();
    lh_watchdog_add(wd, &near);
    assert_true(fires_within(&near, 5000));
    assert_true(lh_now_ms() - t0 < 5000);
    lh_watchdog_remove(wd, &near);

    /* later than far: no wake-up needed, nothing fires */
    lh_watch later = {.conn = conn, .deadline_ms = lh_now_ms() + 900000};
    lh_watchdog_add(wd, &later);
    usleep(50000);
    assert_false(atomic_load(&later.fired));
    lh_watchdog_remove(wd, &later);

    /* already due, with an expire callback: fired, expired, unlinked by the watchdog */
    lh_watch due = {.conn = conn, .deadline_ms = lh_now_ms() - 1, .expire = expired_once};
    lh_watchdog_add(wd, &due);
    assert_true(fires_within(&due, 5000));
    lh_watchdog_remove(wd, &due); /* a no-op once unlinked, and never blocks */

    assert_false(atomic_load(&far.fired));
    lh_watchdog_remove(wd, &far);
    lh_watchdog_stop(wd);
    duckdb_disconnect(&conn);
    duckdb_close(&db);
}

/* ---------------------------------------------------------------- row filter */

/* One value of a query on conn, as text (caller frees); NULL + *error (caller frees) when
 * the query fails. */
static char *duck_scalar(duckdb_connection conn, const char *sql, char **error)
{
    duckdb_result res;
    char *out = NULL;
    *error = NULL;
    if (duckdb_query(conn, sql, &res) == DuckDBError)
        *error = strdup(duckdb_result_error(&res) ? duckdb_result_error(&res) : "?");
    else {
        char *v = duckdb_value_varchar(&res, 0, 0);
        out = strdup(v ? v : "NULL");
        duckdb_free(v);
    }
    duckdb_destroy_result(&res);
    return out;
}

static void expect_duck_error(duckdb_connection conn, const char *sql, const char *part)
{
    char *error;
    char *v = duck_scalar(conn, sql, &error);
    if (!error || !strstr(error, part))
        fail_msg("%s: expected an error with '%s', got %s / %s", sql, part, v ? v : "-",
                 error ? error : "-");
    free(v);
    free(error);
}

/* lh_row_visible (views.h) over two files of 5000 and 3001 rows, several chunks each, their
 * bitmaps padded to 24 bits and end to end as the views lay them out: exactly the rows whose
 * bit is set are hidden, at each file's own offset; a row or file outside the offsets is an
 * error, never a visible row; the bitmaps and offsets must be well-formed constants. */
static void test_row_visible(void **state)
{
    (void)state;
    duckdb_database db;
    duckdb_connection conn;
    bare_duck_open(&db, &conn);
    lh_error err;
    assert_int_equal(lh_row_filter_register(conn, &err), 0);

    const int64_t rows[2] = {5000, 3001};
    int64_t offs[3] = {0};
    for (int f = 0; f < 2; f++)
        offs[f + 1] = offs[f] + (rows[f] + 23) / 24 * 24;
    size_t nbytes = (size_t)offs[2] / 8;
    unsigned char *bits = calloc(nbytes, 1);
    int64_t hidden = 0, hidden_sum = 0;
    for (int f = 0; f < 2; f++)
        for (int64_t r = 0; r < rows[f]; r++)
            if (r % (f ? 11 : 7) == 3 || r == rows[f] - 1) {
                int64_t bit = offs[f] + r;
                bits[bit / 8] |= (unsigned char)(0x80 >> (bit % 8));
                hidden++;
                hidden_sum += f * 100000 + r;
            }
    char *hex = malloc(nbytes * 2 + 1);
    for (size_t i = 0; i < nbytes; i++)
        snprintf(hex + 2 * i, 3, "%02X", bits[i]);
    char *fn = lh_xasprintf(LH_ROW_VISIBLE_FN "(from_hex('%s'), [%lld, %lld, %lld]", hex,
                            (long long)offs[0], (long long)offs[1], (long long)offs[2]);
    char *scan = lh_xasprintf("(SELECT 0::UBIGINT AS f, range AS r FROM range(%lld) UNION ALL "
                              "SELECT 1::UBIGINT, range FROM range(%lld))",
                              (long long)rows[0], (long long)rows[1]);
    char *sql = lh_xasprintf("SELECT count(*) || ',' || sum(f * 100000 + r) FROM %s WHERE NOT "
                             "%s, f, r)",
                             scan, fn);
    char *error;
    char *got = duck_scalar(conn, sql, &error);
    char want[64];
    snprintf(want, sizeof(want), "%lld,%lld", (long long)hidden, (long long)hidden_sum);
    assert_null(error);
    assert_string_equal(got, want);
    free(got);
    free(sql);
    sql = lh_xasprintf("SELECT count(*) FROM %s WHERE %s, f, r)", scan, fn);
    got = duck_scalar(conn, sql, &error);
    snprintf(want, sizeof(want), "%lld", (long long)(rows[0] + rows[1] - hidden));
    assert_null(error);
    assert_string_equal(got, want);
    free(got);
    free(sql);

    /* a row past its file's bitmap (the padding is the bitmap's own), a third file, a
     * negative row: errors */
    const char *const outside[] = {"0::UBIGINT, 5016", "1::UBIGINT, 3024", "2::UBIGINT, 0",
                                   "0::UBIGINT, -1"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        sql = lh_xasprintf("SELECT %s, %s)", fn, outside[i]);
        expect_duck_error(conn, sql, "outside its part's deletion bitmap");
        free(sql);
    }
    /* arguments that are not constants, offsets that do not fit, NULLs */
    expect_duck_error(conn,
                      "SELECT " LH_ROW_VISIBLE_FN "(b, [0, 8], 0, 0) FROM (SELECT from_hex('00') "
                      "AS b)",
                      "must be constants");
    expect_duck_error(conn, "SELECT " LH_ROW_VISIBLE_FN "(from_hex('0000'), [0, 16, 8], 0, 0)",
                      "offsets must ascend");
    expect_duck_error(conn, "SELECT " LH_ROW_VISIBLE_FN "(from_hex('00'), [0, 16], 0, 0)",
                      "offsets must ascend");
    expect_duck_error(conn, "SELECT " LH_ROW_VISIBLE_FN "(from_hex('00'), [0], 0, 0)",
                      "offsets must ascend");
    /* a NULL constant gives NULL (DuckDB's default for NULL in): a filter never shows it */
    got = duck_scalar(conn, "SELECT " LH_ROW_VISIBLE_FN "(NULL::BLOB, [0, 8], 0, 0)", &error);
    assert_null(error);
    assert_string_equal(got, "NULL");
    free(got);
    expect_duck_error(conn, "SELECT " LH_ROW_VISIBLE_FN "(from_hex('00'), [0, NULL], 0, 0)",
                      "offsets must ascend");
    expect_duck_error(conn,
                      "SELECT " LH_ROW_VISIBLE_FN "(from_hex('00'), [0, 8], 0, r) FROM (VALUES "
                      "(1::BIGINT), (NULL)) AS t(r)",
                      "outside its part's deletion bitmap");
    /* bit 0 of 0x80 is set: row 0 hidden, row 1 visible */
    got = duck_scalar(conn,
                      "SELECT " LH_ROW_VISIBLE_FN
                      "(from_hex('80'), [0, 8], 0, 0)::VARCHAR || " LH_ROW_VISIBLE_FN
                      "(from_hex('80'), [0, 8], 0, 1)::VARCHAR",
                      &error);
    assert_null(error);
    assert_string_equal(got, "falsetrue");
    free(got);
    free(scan);
    free(fn);
    free(hex);
    free(bits);
    duckdb_disconnect(&conn);
    duckdb_close(&db);
}

static void test_sql_quoting(void **state)
{
    (void)state;
    char *s = lh_sql_ident("na\"me");
    assert_string_equal(s, "\"na\"\"me\"");
    free(s);
    s = lh_sql_literal("it's");
    assert_string_equal(s, "'it''s'");
    free(s);
}

/* ---------------------------------------------------------------- row cap */

static void test_row_cap(void **state)
{
    fx *f = *state;
    static const struct {
        int64_t rows, cap;
        bool truncated;
    } cases[] = {
        {10, 5, true},      {10, 10, false},     {10, 11, false},    {10, 0, true},
        {0, 0, false},      {2048, 2048, false}, {2049, 2048, true}, {5000, 2048, true},
        {5000, 4096, true}, {4096, 4096, false}, {100000, 3, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *sql = lh_xasprintf("SELECT i FROM range(%lld) t(i)", (long long)cases[i].rows);
        lh_error err;
        int64_t rows;
        bool truncated;
        char *out = run_full(f->eng, sql, LH_FORMAT_JSON, cases[i].cap, 30000, 4096, &err, NULL,
                             &rows, &truncated);
        assert_non_null(out);
        int64_t want = cases[i].rows < cases[i].cap ? cases[i].rows : cases[i].cap;
        json_t *doc = json_loads(out, 0, NULL);
        assert_non_null(doc);
        if (rows != want || truncated != cases[i].truncated ||
            (int64_t)json_array_size(json_object_get(doc, "rows")) != want ||
            json_is_true(json_object_get(doc, "truncated")) != cases[i].truncated ||
            lh_json_int(doc, "row_count", -1) != want)
            fail_msg("case %zu (%lld rows, cap %lld): got %lld rows, truncated %d", i,
                     (long long)cases[i].rows, (long long)cases[i].cap, (long long)rows, truncated);
        json_decref(doc);
        free(out);
        free(sql);
    }
}

/* ---------------------------------------------------------------- output buffer bound */

/* Large rows, read slowly: the query never holds more than LH_QUERY_OUT_BUDGET plus about
 * one row of rendered output (it used to render a whole chunk, up to 2,048 rows, at once:
 * here 1,000 rows of 100 KB, ~100 MB), and the output is exactly what it was. */
static void test_output_buffer_bounded(void **state)
{
    fx *f = *state;
    enum { NROWS = 1000, CELL = 100000 };
    static const lh_result_format fmts[] = {LH_FORMAT_JSON, LH_FORMAT_CSV, LH_FORMAT_NDJSON};
    static const char *const heads[] = {
        "{\"columns\":[{\"name\":\"s\",\"type\":\"VARCHAR\"}],\"rows\":[", "s\r\n", ""};
    static const char *const row_open[] = {"[\"", "", "{\"s\":\""};
    static const char *const row_close[] = {"\"]", "\r\n", "\"}\n"};
    const size_t row_max = CELL + 16;
    const size_t bound = LH_QUERY_OUT_BUDGET + LH_QUERY_OUT_BUDGET / 5 + row_max;
    char *x = lh_xcalloc(CELL + 1, 1);
    memset(x, 'x', CELL);
    for (size_t k = 0; k < sizeof(fmts) / sizeof(fmts[0]); k++) {
        lh_error err;
        lh_query_opts o = {.format = fmts[k], .max_rows = NROWS, .timeout_ms = 60000};
        lh_query *q = lh_query_start(
            f->eng, "SELECT repeat('x', 100000) AS s FROM range(1000) t(i)", &o, &err);
        if (!q)
            fail_msg("lh_query_start: %s", err.message);
        lh_buf got;
        lh_buf_init(&got);
        size_t max_len = lh_query__buffered_bytes(q), max_cap = lh_query__buffer_capacity(q);
        char buf[4096];
        ssize_t n;
        while ((n = lh_query_read(q, buf, sizeof(buf))) > 0) {
            lh_buf_append(&got, buf, (size_t)n);
            size_t len = lh_query__buffered_bytes(q), cap = lh_query__buffer_capacity(q);
            max_len = len > max_len ? len : max_len;
            max_cap = cap > max_cap ? cap : max_cap;
        }
        assert_int_equal(n, 0);
        assert_null(lh_query_error(q));
        assert_int_equal(lh_query_row_count(q), NROWS);
        assert_false(lh_query_truncated(q));
        lh_query_free(q);
        if (max_len > bound)
            fail_msg("format %zu: %zu bytes buffered (bound %zu)", k, max_len, bound);
        /* lh_buf doubles its capacity, so the allocation may be up to twice the length */
        if (max_cap > 2 * bound)
            fail_msg("format %zu: buffer capacity %zu (bound %zu)", k, max_cap, 2 * bound);

        lh_buf want;
        lh_buf_init(&want);
        lh_buf_puts(&want, heads[k]);
        for (int r = 0; r < NROWS; r++) {
            if (r && fmts[k] == LH_FORMAT_JSON)
                lh_buf_putc(&want, ',');
            lh_buf_puts(&want, row_open[k]);
            lh_buf_append(&want, x, CELL);
            lh_buf_puts(&want, row_close[k]);
        }
        if (fmts[k] == LH_FORMAT_JSON) {
            lh_buf_puts(&want, "],\"row_count\":1000,\"truncated\":false,\"elapsed_ms\":}");
            strip_elapsed(got.data);
            got.len = strlen(got.data);
        }
        assert_int_equal(got.len, want.len);
        assert_true(memcmp(got.data, want.data, want.len) == 0);
        lh_buf_free(&want);
        lh_buf_free(&got);
    }
    free(x);
}

/* The whole output of sql read with lh_query_read, which must end cleanly (caller frees). */
static char *read_whole(fx *f, const char *sql, const lh_query_opts *o)
{
    lh_error err;
    ssize_t last = 1;
    char *out = run_full(f->eng, sql, o->format, o->max_rows, o->timeout_ms, 65536, &err, &last,
                         NULL, NULL);
    if (!out)
        fail_msg("query failed: %s\n  %s", sql, err.message);
    assert_int_equal(last, 0);
    return out;
}

/* A query started as the HTTP layer's pool starts one: lh_query_open, then lh_query_run. */
static lh_query *pool_start(fx *f, const char *sql, const lh_query_opts *o)
{
    lh_error err;
    lh_query *q = lh_query_open(f->eng, o, &err);
    if (!q)
        fail_msg("lh_query_open: %s", err.message);
    if (lh_query_run(q, sql, o, &err) != 0)
        fail_msg("lh_query_run: %s\n  %s", sql, err.message);
    return q;
}

/* Appends everything lh_query_read still gives to *got; the read must end cleanly. */
static void read_rest(lh_query *q, lh_buf *got)
{
    char buf[4096];
    ssize_t n;
    while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
        lh_buf_append(got, buf, (size_t)n);
    assert_int_equal(n, 0);
}

/* The split reader the HTTP layer uses (lh_query_open/run, lh_query_read_buffered on the
 * HTTP worker, lh_query_fill on the query pool): read_buffered never renders or fetches
 * (LH_QUERY_AGAIN instead), each fill makes progress within the buffer bound, and the
 * bytes are exactly those of lh_query_read. */
static void test_split_reader(void **state)
{
    fx *f = *state;
    static const char sql[] = "SELECT i, repeat('y', 1000) AS pad FROM range(5000) t(i)";
    lh_query_opts o = {.format = LH_FORMAT_NDJSON, .max_rows = 5000, .timeout_ms = 60000};
    char *want = read_whole(f, sql, &o);

    lh_query *q = pool_start(f, sql, &o);
    lh_buf got;
    lh_buf_init(&got);
    char buf[65536];
    int fills = 0;
    bool just_filled = false;
    ssize_t n;
    for (;;) {
        n = lh_query_read_buffered(q, buf, sizeof(buf));
        if (n == LH_QUERY_AGAIN) {
            assert_false(just_filled); /* a fill always leaves bytes or the end */
            lh_query_fill(q);
            fills++;
            just_filled = true;
            assert_true(lh_query__buffered_bytes(q) <= LH_QUERY_OUT_BUDGET + 2048);
            continue;
        }
        just_filled = false;
        if (n <= 0)
            break;
        lh_buf_append(&got, buf, (size_t)n);
    }
    assert_int_equal(n, 0);
    assert_null(lh_query_error(q));
    assert_int_equal(lh_query_row_count(q), 5000);
    lh_query_free(q);
    /* about 5 MB in fills of about LH_QUERY_OUT_BUDGET (1 MB) */
    assert_true(fills >= 4);
    assert_int_equal(got.len, strlen(want));
    assert_true(memcmp(got.data, want, got.len) == 0);
    lh_buf_free(&got);
    free(want);
}

/* The HTTP layer sends a small result that has ended as one body (lh_query_take_whole):
 * after a start and one fill, as on the query pool, the whole output is there and equal
 * to what reading gives; a result over the cap, one already partly read and one that
 * failed are never taken, and the query then reads on unchanged. */
static void test_take_whole(void **state)
{
    fx *f = *state;
    static const char small[] = "SELECT i, i * 2 AS d FROM range(300) t(i)";
    lh_query_opts o = {.format = LH_FORMAT_CSV, .max_rows = 100000, .timeout_ms = 60000};
    char *want = read_whole(f, small, &o);
    size_t want_len = strlen(want), len = 0;

    /* the pool's path: run (which renders the head), then one fill */
    lh_query *q = pool_start(f, small, &o);
    lh_query_fill(q);
    char *whole = lh_query_take_whole(q, 65536, &len);
    assert_non_null(whole);
    assert_int_equal(len, want_len);
    assert_true(memcmp(whole, want, len) == 0);
    free(whole);
    lh_query_free(q);

    /* over the cap, or partly read: not taken; reading gives every byte */
    for (int partly = 0; partly <= 1; partly++) {
        lh_buf got;
        lh_buf_init(&got);
        q = pool_start(f, small, &o);
        lh_query_fill(q);
        if (partly) {
            char head[10];
            assert_int_equal(lh_query_read_buffered(q, head, sizeof(head)), sizeof(head));
            lh_buf_append(&got, head, sizeof(head));
            assert_null(lh_query_take_whole(q, 65536, &len));
        } else {
            assert_null(lh_query_take_whole(q, want_len - 1, &len));
        }
        read_rest(q, &got);
        assert_int_equal(got.len, want_len);
        assert_true(memcmp(got.data, want, got.len) == 0);
        lh_query_free(q);
        lh_buf_free(&got);
    }
    free(want);

    /* ended by an error after its start (here the deadline, while nothing was read): never
     * taken, whatever the cap */
    o = (lh_query_opts){.format = LH_FORMAT_JSON, .max_rows = 1000000000, .timeout_ms = 300};
    q = pool_start(f, "SELECT i FROM range(1000000000000) t(i)", &o);
    lh_query_fill(q);
    int64_t t0 = lh_now_ms();
    while (!lh_query_error(q) && lh_now_ms() - t0 < 5000)
        usleep(20 * 1000);
    assert_non_null(lh_query_error(q));
    assert_null(lh_query_take_whole(q, (size_t)1 << 30, &len));
    lh_query_free(q);
}

/* ---------------------------------------------------------------- inline start */

static lh_rel_access may_read_all(void *ctx, const char *relation)
{
    (void)ctx;
    (void)relation;
    return LH_REL_ALLOW;
}

static const lh_sql_policy inline_policy = {.allow_raw = true,
                                            .may_read = may_read_all,
                                            .ctx = NULL,
                                            .allowed_hint = NULL,
                                            .identity = "inline-test"};

/* lh_query_run_inline: an uncached statement is left to lh_query_run (nothing done); a
 * cached small one starts inline with its rows rendered; a cached slow one is handed on
 * after LH_QUERY_INLINE_BUDGET_MS and lh_query_run finishes that same execution. */
static void test_inline_start(void **state)
{
    fx *f = *state;
    static const char small_sql[] = "SELECT 42 AS x, 'a' AS y";
    static const char slow_sql[] = "SELECT sum(i % 7) AS s FROM range(20000000) t(i)";
    lh_error err;
    lh_query_opts o = {
        .format = LH_FORMAT_CSV, .max_rows = 100, .timeout_ms = 60000, .policy = &inline_policy};
    char buf[4096];
    uint64_t starts0 = lh_query__inline_starts(), handoffs0 = lh_query__inline_handoffs();

    /* not cached yet: nothing runs inline */
    lh_query *q = lh_query_open(f->eng, &o, &err);
    assert_non_null(q);
    assert_int_equal(lh_query_run_inline(q, small_sql, &o, &err), LH_QUERY_PENDING);
    assert_int_equal(lh_query_run(q, small_sql, &o, &err), 0);
    lh_query_free(q);
    assert_int_equal(lh_query__inline_starts(), starts0);

    /* cached (the run above was allowed): starts inline, the whole result rendered. On a
     * loaded machine DuckDB may miss the 5 ms budget: such an attempt is handed on (and
     * finished, as the pool would), and the start is tried again. */
    int rc = LH_QUERY_PENDING;
    for (int attempt = 0; attempt < 50 && rc == LH_QUERY_PENDING; attempt++) {
        q = lh_query_open(f->eng, &o, &err);
        assert_non_null(q);
        rc = lh_query_run_inline(q, small_sql, &o, &err);
        if (rc == LH_QUERY_PENDING) {
            assert_int_equal(lh_query_run(q, small_sql, &o, &err), 0);
            lh_query_free(q);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(lh_query__inline_starts(), starts0 + 1);
    handoffs0 = lh_query__inline_handoffs();
    ssize_t n = lh_query_read_buffered(q, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "x,y\r\n42,a\r\n");
    assert_int_equal(lh_query_read_buffered(q, buf, sizeof(buf)), 0);
    lh_query_free(q);

    /* a refused statement is never cached, so it never runs inline */
    static const char copy_sql[] = "COPY (SELECT 1) TO 'x.csv'";
    q = lh_query_open(f->eng, &o, &err);
    assert_non_null(q);
    assert_int_equal(lh_query_run_inline(q, copy_sql, &o, &err), LH_QUERY_PENDING);
    assert_true(lh_query_run(q, copy_sql, &o, &err) < 0);
    lh_query_free(q);

    /* slow and cached: handed on after the budget, finished by lh_query_run */
    q = lh_query_open(f->eng, &o, &err);
    assert_non_null(q);
    assert_int_equal(lh_query_run(q, slow_sql, &o, &err), 0);
    lh_query_free(q);
    q = lh_query_open(f->eng, &o, &err);
    assert_non_null(q);
    int64_t t0 = lh_now_ms();
    assert_int_equal(lh_query_run_inline(q, slow_sql, &o, &err), LH_QUERY_PENDING);
    int64_t took = lh_now_ms() - t0;
    assert_int_equal(lh_query__inline_handoffs(), handoffs0 + 1);
    assert_int_equal(lh_query__inline_starts(), starts0 + 1);
    assert_true(took < 1000); /* budget 5 ms; one DuckDB task plus a loaded machine */
    assert_int_equal(lh_query_run(q, slow_sql, &o, &err), 0);
    size_t len = 0;
    while ((n = lh_query_read_buffered(q, buf + len, sizeof(buf) - 1 - len)) != 0) {
        if (n == LH_QUERY_AGAIN)
            lh_query_fill(q);
        else {
            assert_true(n > 0);
            len += (size_t)n;
        }
    }
    buf[len] = '\0';
    long long want = 0;
    for (long long i = 0; i < 20000000LL % 7; i++)
        want += i;
    want += (20000000LL / 7) * 21;
    char expect[64];
    snprintf(expect, sizeof(expect), "s\r\n%lld\r\n", want);
    assert_string_equal(buf, expect);
    lh_query_free(q);
}

/* ---------------------------------------------------------------- kept connections */

static void make_part(fx *f, const char *bucket, const char *key, const char *select,
                      int64_t *rows);
static void commit_dataset(fx *f, const char *name, const char *bucket, lh_ingest_mode mode,
                           const char *key, int64_t rows);
static char *query_csv(fx *f, const char *sql, lh_error *err);
static void expect_csv(fx *f, const char *sql, const char *want);

/* The connection id of the next query without a policy, and its lh_attr_region variable
 * (empty when unset), as "id,region". Caller frees. */
static char *conn_probe(fx *f)
{
    char *out =
        run(f->eng, "SELECT current_connection_id() AS id, getvariable('lh_attr_region') AS r",
            LH_FORMAT_CSV);
    char *body = strstr(out, "\r\n");
    assert_non_null(body);
    char *probe = lh_xstrdup(body + 2);
    free(out);
    return probe;
}

/* A finished query's connection serves the next query, with the statement it prepared: a
 * repeated text is not prepared again. A connection that carried a caller's attributes, or
 * whose query failed, never serves another query; a view change retires kept statements,
 * and the next run of the same text sees the new rows. */
static void test_connection_reuse(void **state)
{
    fx *f = *state;
    lh_error err;
    char *a = conn_probe(f);
    uint64_t hits0 = lh_query__stmt_cache_hits();
    char *b = conn_probe(f);
    assert_string_equal(a, b); /* the same connection, variable unset */
    assert_int_equal(lh_query__stmt_cache_hits(), hits0 + 1);

    /* a caller with attributes: it takes that connection, which is then closed */
    json_t *attrs = json_pack("{s:s}", "region", "eu");
    lh_sql_policy p = inline_policy;
    p.identity = "reuse-test";
    p.attributes = attrs;
    lh_query_opts o = {.format = LH_FORMAT_CSV, .max_rows = 10, .timeout_ms = 30000, .policy = &p};
    char buf[256];
    lh_query *q = lh_query_start(f->eng, "SELECT 1 AS one", &o, &err);
    assert_non_null(q);
    while (lh_query_read(q, buf, sizeof(buf)) > 0)
        ;
    assert_null(lh_query_error(q));
    lh_query_free(q);
    json_decref(attrs);
    char *c = conn_probe(f);
    assert_string_not_equal(c, a);
    assert_true(c[strlen(c) - 3] == ','); /* "<id>,\r\n": no region seen */

    /* a failed query's connection is closed too */
    assert_null(query_csv(f, "SELECT nope FROM range(1)", &err));
    char *d = conn_probe(f);
    assert_string_not_equal(d, c);
    free(a);
    free(b);
    free(c);
    free(d);

    /* a kept statement over a view that changed since is prepared again */
    int64_t rows;
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/r1.parquet",
              "SELECT i::BIGINT AS id, 'p' || i || '@x.org' AS email FROM range(3) t(i)", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/people/r1.parquet",
                   rows);
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n3\r\n");
    uint64_t hits1 = lh_query__stmt_cache_hits();
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n3\r\n");
    assert_int_equal(lh_query__stmt_cache_hits(), hits1 + 1);
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/r2.parquet",
              "SELECT 10::BIGINT AS id, 'ten@x.org' AS email", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_APPEND, "datasets/people/r2.parquet",
                   rows);
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n4\r\n");
    assert_int_equal(lh_query__stmt_cache_hits(), hits1 + 1);
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n4\r\n");
    assert_int_equal(lh_query__stmt_cache_hits(), hits1 + 2);
}

/* ---------------------------------------------------------------- time limit */

static const char endless_sql[] =
    "WITH RECURSIVE t(n) AS (SELECT 1::BIGINT UNION ALL SELECT n + 1 FROM t) "
    "SELECT count(*) FROM t";

static void test_timeout(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t t0 = lh_now_ms();
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 10, .timeout_ms = 300};
    lh_query *q = lh_query_start(f->eng, endless_sql, &o, &err);
    int64_t took = lh_now_ms() - t0;
    assert_null(q);
    assert_int_equal(err.code, LH_ETIMEOUT);
    assert_string_equal(lh_error_kind(&err), "query_timeout");
    assert_string_equal(err.message, "query ran past its time limit of 300 ms and was stopped");
    assert_true(took >= 290);
    assert_true(took < 3000);
    /* the engine is fine afterwards */
    char *out = run(f->eng, "SELECT 42 AS x", LH_FORMAT_CSV);
    assert_string_equal(out, "x\r\n42\r\n");
    free(out);
}

/* A deadline passing while the client reads: the error ends the stream per format. */
static void test_timeout_mid_stream(void **state)
{
    fx *f = *state;
    static const lh_result_format fmts[] = {LH_FORMAT_JSON, LH_FORMAT_NDJSON, LH_FORMAT_CSV};
    for (size_t i = 0; i < 3; i++) {
        lh_error err;
        lh_query_opts o = {.format = fmts[i], .max_rows = 1000000000, .timeout_ms = 800};
        lh_query *q = lh_query_start(f->eng, "SELECT i FROM range(1000000000000) t(i)", &o, &err);
        assert_non_null(q);
        lh_buf b;
        lh_buf_init(&b);
        char buf[256];
        ssize_t n;
        while (b.len < 4096) { /* past the head: rows have gone out */
            n = lh_query_read(q, buf, sizeof(buf));
            assert_true(n > 0);
            lh_buf_append(&b, buf, (size_t)n);
        }
        usleep(1000 * 1000);
        while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
            lh_buf_append(&b, buf, (size_t)n);
        const lh_error *qe = lh_query_error(q);
        assert_non_null(qe);
        assert_int_equal(qe->code, LH_ETIMEOUT);
        assert_true(lh_query_row_count(q) > 0);
        if (fmts[i] == LH_FORMAT_JSON) {
            assert_int_equal(n, 0);
            json_t *doc = json_loads(b.data, 0, NULL);
            assert_non_null(doc);
            json_t *e = json_object_get(doc, "error");
            assert_string_equal(lh_json_str(e, "error"), "query_timeout");
            assert_non_null(strstr(lh_json_str(e, "message"), "800 ms"));
            assert_int_equal(lh_json_int(doc, "row_count", -1),
                             (json_int_t)json_array_size(json_object_get(doc, "rows")));
            assert_non_null(json_object_get(doc, "truncated"));
            json_decref(doc);
        } else if (fmts[i] == LH_FORMAT_NDJSON) {
            assert_int_equal(n, 0);
            const char *last = b.data + b.len - 1;
            assert_int_equal(*last, '\n');
            while (last > b.data && last[-1] != '\n')
                last--;
            assert_true(strncmp(last, "{\"error\":\"query_timeout\",\"message\":", 35) == 0);
        } else {
            assert_int_equal(n, -1);
            assert_int_equal(lh_query_read(q, buf, sizeof(buf)), -1);
        }
        lh_buf_free(&b);
        lh_query_free(q);
    }
}

/* A client that stops reading: at the deadline the watchdog gives the slot (and the DuckDB
 * result) back although lh_query_read is never called again; the stream then ends with the
 * timeout trailer. Before the expiry, the only slot stayed taken until the client read. */
static void test_timeout_unread(void **state)
{
    (void)state;
    fx *f = fx_new(1);
    static const lh_result_format fmts[] = {LH_FORMAT_JSON, LH_FORMAT_NDJSON, LH_FORMAT_CSV};
    for (size_t i = 0; i < 3; i++) {
        lh_error err;
        lh_query_opts o = {.format = fmts[i], .max_rows = 1000000000, .timeout_ms = 400};
        int64_t t0 = lh_now_ms();
        lh_query *q = lh_query_start(f->eng, "SELECT i FROM range(1000000000000) t(i)", &o, &err);
        assert_non_null(q);
        lh_buf b;
        lh_buf_init(&b);
        char buf[256];
        ssize_t n = lh_query_read(q, buf, sizeof(buf));
        assert_true(n > 0);
        lh_buf_append(&b, buf, (size_t)n);
        /* the client reads nothing more; another query gets the only slot soon after the
         * deadline */
        lh_query_opts o2 = {.format = LH_FORMAT_CSV, .max_rows = 10, .timeout_ms = 30000};
        lh_query *other = NULL;
        while (!other && lh_now_ms() - t0 < 5000) {
            other = lh_query_start(f->eng, "SELECT 42 AS x", &o2, &err);
            if (!other) {
                assert_int_equal(err.code, LH_EBUSY);
                usleep(20 * 1000);
            }
        }
        assert_non_null(other);
        assert_true(lh_now_ms() - t0 >= 390);
        lh_query_free(other);
        const lh_error *qe = lh_query_error(q);
        assert_non_null(qe);
        assert_int_equal(qe->code, LH_ETIMEOUT);
        /* what was buffered still goes out, then the trailer (CSV: cut off) */
        while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
            lh_buf_append(&b, buf, (size_t)n);
        if (fmts[i] == LH_FORMAT_JSON) {
            assert_int_equal(n, 0);
            json_t *doc = json_loadb(b.data, b.len, 0, NULL);
            assert_non_null(doc);
            assert_string_equal(lh_json_str(json_object_get(doc, "error"), "error"),
                                "query_timeout");
            assert_int_equal(lh_json_int(doc, "row_count", -1),
                             (json_int_t)json_array_size(json_object_get(doc, "rows")));
            json_decref(doc);
        } else if (fmts[i] == LH_FORMAT_NDJSON) {
            assert_int_equal(n, 0);
            assert_non_null(strstr(b.data, "{\"error\":\"query_timeout\""));
        } else {
            assert_int_equal(n, -1);
        }
        lh_buf_free(&b);
        lh_query_free(q);
    }
    /* a query freed before its deadline leaves nothing for the watchdog */
    lh_error err;
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 1000000000, .timeout_ms = 200};
    lh_query *q = lh_query_start(f->eng, "SELECT i FROM range(1000000000000) t(i)", &o, &err);
    assert_non_null(q);
    lh_query_free(q);
    usleep(400 * 1000);
    fx_free(f);
}

/* A DuckDB error after rows went out: JSON gains an "error" member, CSV reads -1. */
static void test_error_mid_stream(void **state)
{
    fx *f = *state;
    static const char sql[] = "SELECT CASE WHEN i < 3000000 THEN i ELSE error('boom at ' || i) "
                              "END AS v FROM range(4000000) t(i)";
    lh_error err;
    ssize_t last;
    int64_t rows;
    char *out =
        run_full(f->eng, sql, LH_FORMAT_JSON, 10000000, 30000, 65536, &err, &last, &rows, NULL);
    assert_non_null(out);
    assert_int_equal(last, 0);
    assert_true(rows > 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(lh_json_str(e, "error"), "sql_error");
    assert_non_null(strstr(lh_json_str(e, "message"), "boom at"));
    assert_int_equal(lh_json_int(doc, "row_count", -1), rows);
    assert_int_equal(json_array_size(json_object_get(doc, "rows")), (size_t)rows);
    json_decref(doc);
    free(out);

    out = run_full(f->eng, sql, LH_FORMAT_CSV, 10000000, 30000, 65536, &err, &last, &rows, NULL);
    assert_non_null(out);
    assert_int_equal(last, -1);
    free(out);
}

/* ---------------------------------------------------------------- slots */

static void test_busy(void **state)
{
    (void)state;
    fx *f = fx_new(2);
    lh_error err;
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 10, .timeout_ms = 30000};
    lh_query *a = lh_query_start(f->eng, "SELECT i FROM range(100000) t(i)", &o, &err);
    lh_query *b = lh_query_start(f->eng, "SELECT 2", &o, &err);
    assert_non_null(a);
    assert_non_null(b);
    lh_query *c = lh_query_start(f->eng, "SELECT 3", &o, &err);
    assert_null(c);
    assert_int_equal(err.code, LH_EBUSY);
    assert_string_equal(err.message, "too many concurrent queries (limit 2); retry shortly");
    /* internal statements never take a slot */
    json_t *j = lh_engine_query_json(f->eng, "SELECT 1 AS one", &err);
    assert_non_null(j);
    json_decref(j);
    lh_query_free(b);
    c = lh_query_start(f->eng, "SELECT 3", &o, &err);
    assert_non_null(c);
    lh_query_free(c);
    /* a query whose output is fully rendered gives its slot back before it is freed */
    char buf[1 << 16];
    lh_query *d = lh_query_start(f->eng, "SELECT 4", &o, &err);
    assert_non_null(d);
    bool started = false;
    while (!started && lh_query_read(d, buf, 1) > 0) {
        lh_query *e = lh_query_start(f->eng, "SELECT 5", &o, &err);
        started = e != NULL; /* only once d has rendered its last row */
        lh_query_free(e);
    }
    assert_true(started);
    lh_query_free(d);
    lh_query_free(a);
    fx_free(f);
}

/* ---------------------------------------------------------------- sandbox */

static void test_sandbox(void **state)
{
    fx *f = *state;
    lh_error err;
    /* reading outside the data folder is refused, for users and internal statements */
    assert_null(lh_engine_query_json(f->eng, "SELECT * FROM read_csv('/etc/passwd')", &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "Permission Error"));
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 10, .timeout_ms = 30000};
    assert_null(lh_query_start(f->eng, "SELECT * FROM read_csv('/etc/passwd')", &o, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_string_equal(lh_error_kind(&err), "sql_error");
    /* a sibling folder whose name starts like the data folder's is outside too */
    char *sibling = lh_xasprintf("%s2", f->data);
    assert_int_equal(lh_fs_mkdirs(sibling, 0755, &err), 0);
    char *csv = lh_path_join(sibling, "x.csv");
    lh_test_write_file(csv, "a\n1\n");
    char *read_sibling = lh_xasprintf("SELECT * FROM read_csv('%s')", csv);
    assert_null(lh_engine_query_json(f->eng, read_sibling, &err));
    assert_non_null(strstr(err.message, "Permission Error"));
    free(read_sibling);
    free(csv);
    free(sibling);
    /* the configuration is locked */
    static const char *const sets[] = {"SET enable_external_access = true",
                                       "SET allowed_directories = ['/']", "SET threads = 1",
                                       "SET lock_configuration = false"};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        assert_int_equal(lh_engine_exec(f->eng, sets[i], NULL, &err), LH_EINVAL);
        assert_non_null(strstr(err.message, "locked"));
    }
    /* the data folder itself (where _secrets/ and _catalog/ live) is out of reach */
    char *secret = lh_path_join(f->data, "_secrets_probe.parquet");
    char *secret_lit = lh_sql_literal(secret);
    char *probe = lh_xasprintf("COPY (SELECT 1 AS x) TO %s (FORMAT parquet)", secret_lit);
    assert_int_equal(lh_engine_exec(f->eng, probe, NULL, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "Permission Error"));
    assert_false(lh_fs_exists(secret));
    free(probe);
    free(secret_lit);
    free(secret);
    /* writing and reading parquet inside a bucket's datasets/ folder works */
    char *dsdir = lh_path_join(f->data, "datasets");
    assert_int_equal(lh_fs_mkdirs(dsdir, 0755, &err), 0);
    free(dsdir);
    char *path = lh_path_join(f->data, "datasets/sandbox.parquet");
    char *lit = lh_sql_literal(path);
    char *sql = lh_xasprintf("COPY (SELECT i AS x FROM range(3) t(i)) TO %s (FORMAT parquet)", lit);
    int64_t rows = -1;
    assert_int_equal(lh_engine_exec(f->eng, sql, &rows, &err), 0);
    assert_int_equal(rows, 3);
    free(sql);
    /* for internal statements; user queries may read datasets/ but never write
     * (test_second_wall) */
    sql = lh_xasprintf("SELECT sum(x)::INTEGER AS s FROM read_parquet(%s)", lit);
    json_t *doc = lh_engine_query_json(f->eng, sql, &err);
    assert_non_null(doc);
    assert_int_equal(
        json_integer_value(json_array_get(json_array_get(json_object_get(doc, "rows"), 0), 0)), 3);
    json_decref(doc);
    free(sql);
    free(lit);
    free(path);
}

/* The second wall: one SELECT, no parameters, no statements that change anything. */
static void test_statement_checks(void **state)
{
    fx *f = *state;
    static const struct {
        const char *sql;
        int code;
        const char *kind;
        const char *msg_part;
    } cases[] = {
        {"SELECT 1; SELECT 2", LH_EINVAL, "sql_error", "exactly one SQL statement, got 2"},
        {"", LH_EINVAL, "sql_error", "empty"},
        {"SELEC 1", LH_EINVAL, "sql_error", "syntax error"},
        {"SELECT * FROM no_such_table", LH_EINVAL, "sql_error", "no_such_table"},
        {"SELECT $1", LH_EINVAL, "sql_error", "parameter"},
        {"SELECT ?", LH_EINVAL, "sql_error", "parameter"},
        {"CREATE TABLE t AS SELECT 1", LH_EFORBIDDEN, "sql_forbidden", "CREATE"},
        {"DROP VIEW IF EXISTS x", LH_EFORBIDDEN, "sql_forbidden", "DROP"},
        {"SET threads = 1", LH_EFORBIDDEN, "sql_forbidden", "SET"},
        /* EXPLAIN ANALYZE runs its statement: a COPY inside it would write */
        {"EXPLAIN SELECT 1", LH_EFORBIDDEN, "sql_forbidden", "EXPLAIN"},
        {"SELECT 1/0::INTEGER, 'x'::INTEGER", LH_EINVAL, "sql_error", "Conversion Error"},
    };
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 10, .timeout_ms = 30000};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_query *q = lh_query_start(f->eng, cases[i].sql, &o, &err);
        if (q)
            fail_msg("'%s' started", cases[i].sql);
        if (err.code != cases[i].code || strcmp(lh_error_kind(&err), cases[i].kind) != 0 ||
            !strstr(err.message, cases[i].msg_part))
            fail_msg("'%s': %d %s %s", cases[i].sql, err.code, lh_error_kind(&err), err.message);
    }
    /* read-only statements the firewall lets through run here too */
    static const char *const allowed[] = {"DESCRIBE SELECT 1 AS a", "SUMMARIZE SELECT 1 AS a",
                                          "WITH t AS (SELECT 1 AS a) SELECT * FROM t"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        char *out = run(f->eng, allowed[i], LH_FORMAT_JSON);
        assert_non_null(strstr(out, "\"row_count\":1"));
        free(out);
    }
}

/* ---------------------------------------------------------------- internal statements */

static void test_query_json(void **state)
{
    fx *f = *state;
    lh_error err;
    json_t *doc = lh_engine_query_json(
        f->eng,
        "SELECT 1 AS a, 'x' AS b, 1.5::DOUBLE AS c, NULL AS d, 12.50::DECIMAL(6,2) AS e, "
        "9223372036854775807 AS big, 'nan'::DOUBLE AS n, DATE '2024-01-02' AS dt",
        &err);
    assert_non_null(doc);
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(
        text, "{\"columns\":[{\"name\":\"a\",\"type\":\"INTEGER\"},{\"name\":\"b\",\"type\":"
              "\"VARCHAR\"},{\"name\":\"c\",\"type\":\"DOUBLE\"},{\"name\":\"d\",\"type\":"
              "\"INTEGER\"},{\"name\":\"e\",\"type\":\"DECIMAL(6,2)\"},{\"name\":\"big\","
              "\"type\":\"BIGINT\"},{\"name\":\"n\",\"type\":\"DOUBLE\"},{\"name\":\"dt\","
              "\"type\":\"DATE\"}],\"rows\":[[1,\"x\",1.5,null,12.5,9223372036854775807,\"NaN\","
              "\"2024-01-02\"]]}");
    free(text);
    json_decref(doc);

    doc = lh_engine_query_json(f->eng, "DESCRIBE SELECT 1::BIGINT AS id, 'x' AS name", &err);
    assert_non_null(doc);
    json_t *rows = json_object_get(doc, "rows");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(rows, 0), 0)), "id");
    assert_string_equal(json_string_value(json_array_get(json_array_get(rows, 0), 1)), "BIGINT");
    json_decref(doc);

    assert_null(lh_engine_query_json(f->eng, "SELECT nope", &err));
    assert_string_equal(lh_error_kind(&err), "sql_error");
    assert_int_equal(lh_engine_exec(f->eng, "SELEC", NULL, &err), LH_EINVAL);
}

/* ---------------------------------------------------------------- views */

/* Writes a parquet object with COPY into a staging path of the bucket and commits it. */
static void make_part(fx *f, const char *bucket, const char *key, const char *select, int64_t *rows)
{
    lh_error err;
    char *staged = lh_storage_stage(f->st, bucket, key, &err);
    if (!staged)
        fail_msg("stage: %s", err.message);
    char *lit = lh_sql_literal(staged);
    char *sql = lh_xasprintf("COPY (%s) TO %s (FORMAT parquet)", select, lit);
    if (lh_engine_exec(f->eng, sql, rows, &err) != 0)
        fail_msg("%s: %s", sql, err.message);
    if (lh_storage_commit(f->st, bucket, staged, key, &err) != 0)
        fail_msg("commit: %s", err.message);
    free(sql);
    free(lit);
    free(staged);
}

static void commit_dataset(fx *f, const char *name, const char *bucket, lh_ingest_mode mode,
                           const char *key, int64_t rows)
{
    lh_error err;
    json_t *schema = json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "BIGINT", "name",
                               "email", "type", "VARCHAR");
    json_t *lineage = json_pack("{s:s}", "source_system", "test");
    lh_catalog_commit c = {
        .name = name,
        .bucket = bucket,
        .mode = mode,
        .part_key = key,
        .part_rows = rows,
        .part_bytes = lh_storage_size(f->st, bucket, key),
        .schema = schema,
        .lineage = lineage,
        .compression = "zstd",
        .actor = "test",
    };
    if (lh_catalog_commit_ingest(f->cat, &c, NULL, &err) != 0)
        fail_msg("commit %s: %s", name, err.message);
    json_decref(schema);
    json_decref(lineage);
}

static char *query_csv(fx *f, const char *sql, lh_error *err)
{
    return run_full(f->eng, sql, LH_FORMAT_CSV, 1000, 30000, 4096, err, NULL, NULL, NULL);
}

static void expect_csv(fx *f, const char *sql, const char *want)
{
    lh_error err;
    char *out = query_csv(f, sql, &err);
    if (!out)
        fail_msg("%s: %s", sql, err.message);
    if (strcmp(out, want) != 0)
        fail_msg("%s:\n  got  %s\n  want %s", sql, out, want);
    free(out);
}

static void test_views_follow_catalog(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p1.parquet",
              "SELECT i::BIGINT AS id, 'p' || i || '@x.org' AS email FROM range(3) t(i)", &rows);
    assert_int_equal(rows, 3);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/people/p1.parquet",
                   rows);
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n3\r\n");
    expect_csv(f, "SELECT count(*) AS n FROM __raw__people", "n\r\n3\r\n");
    expect_csv(f, "SELECT email FROM PEOPLE WHERE id = 1", "email\r\np1@x.org\r\n");

    /* append: the view covers both parts */
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p2.parquet",
              "SELECT 10::BIGINT AS id, 'ten@x.org' AS email", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_APPEND, "datasets/people/p2.parquet",
                   rows);
    expect_csv(f, "SELECT count(*) AS n, max(id) AS m FROM people", "n,m\r\n4,10\r\n");

    /* replace: only the new part; the old ones are gone from disk and from the view */
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p3.parquet",
              "SELECT 7::BIGINT AS id, 'seven@x.org' AS email", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_REPLACE, "datasets/people/p3.parquet",
                   rows);
    expect_csv(f, "SELECT id FROM people", "id\r\n7\r\n");
    expect_csv(f, "SELECT id FROM __raw__people", "id\r\n7\r\n");

    /* a second engine over the same catalog seeds its views from the manifests */
    lh_engine *first = f->eng;
    fx_open_engine(f);
    expect_csv(f, "SELECT id FROM people", "id\r\n7\r\n");
    lh_engine_close(f->eng);
    f->eng = first;

    /* delete: both views are dropped */
    assert_int_equal(lh_catalog_delete(f->cat, "people", "test", &err), 0);
    assert_null(query_csv(f, "SELECT * FROM people", &err));
    assert_string_equal(lh_error_kind(&err), "sql_error");
    assert_non_null(strstr(err.message, "people"));
    assert_null(query_csv(f, "SELECT * FROM __raw__people", &err));
}

static void test_bucket_add_regenerates(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p1.parquet",
              "SELECT i::BIGINT AS id, 'e' || i AS email FROM range(5000) t(i)", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/people/p1.parquet",
                   rows);

    /* a parquet file in a folder that is not a bucket yet */
    char *extra = lh_path_join(f->dir, "extra");
    assert_int_equal(lh_fs_mkdirs(extra, 0755, &err), 0);
    char *tmp_file = lh_path_join(f->data, "_tmp/outside.parquet");
    char *tmp_lit = lh_sql_literal(tmp_file);
    char *sql = lh_xasprintf("COPY (SELECT 99 AS v) TO %s (FORMAT parquet)", tmp_lit);
    assert_int_equal(lh_engine_exec(f->eng, sql, NULL, &err), 0);
    free(sql);
    char *extra_ds = lh_path_join(extra, "datasets");
    assert_int_equal(lh_fs_mkdirs(extra_ds, 0755, &err), 0);
    free(extra_ds);
    char *outside = lh_path_join(extra, "datasets/outside.parquet");
    assert_int_equal(rename(tmp_file, outside), 0);
    char *outside_lit = lh_sql_literal(outside);
    /* the internal database reaches each bucket's datasets/ folder (user queries never
     * reach a file that is not a committed part: test_second_wall) */
    char *read_sql = lh_xasprintf("SELECT v FROM read_parquet(%s)", outside_lit);
    assert_null(lh_engine_query_json(f->eng, read_sql, &err));
    assert_non_null(strstr(err.message, "Permission Error"));

    /* a query running across the swap finishes on the old generation */
    lh_query_opts o = {.format = LH_FORMAT_CSV, .max_rows = 100000, .timeout_ms = 30000};
    lh_query *running = lh_query_start(f->eng, "SELECT id FROM people ORDER BY id", &o, &err);
    assert_non_null(running);

    assert_int_equal(lh_catalog_add_bucket(f->cat, "extra", extra, &err), 0);
    json_t *doc = lh_engine_query_json(f->eng, read_sql, &err);
    if (!doc)
        fail_msg("%s: %s", read_sql, err.message);
    json_decref(doc);
    /* the views were carried over to the new generation */
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n5000\r\n");
    /* and datasets can live in the new bucket */
    make_part(f, "extra", "datasets/staff/s1.parquet", "SELECT 1::BIGINT AS id, 'a' AS email",
              &rows);
    commit_dataset(f, "staff", "extra", LH_MODE_CREATE, "datasets/staff/s1.parquet", rows);
    expect_csv(f, "SELECT p.id FROM people p JOIN staff s ON p.id = s.id", "id\r\n1\r\n");

    char buf[4096];
    ssize_t n;
    size_t total = 0, lines = 0;
    while ((n = lh_query_read(running, buf, sizeof(buf))) > 0) {
        total += (size_t)n;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    assert_int_equal(n, 0);
    assert_int_equal(lines, 5001);
    assert_null(lh_query_error(running));
    lh_query_free(running);

    /* removing the bucket takes its folder out of the sandbox again */
    assert_int_equal(lh_catalog_delete(f->cat, "staff", "test", &err), 0);
    assert_int_equal(lh_catalog_remove_bucket(f->cat, "extra", &err), 0);
    assert_null(lh_engine_query_json(f->eng, read_sql, &err));
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n5000\r\n");

    free(read_sql);
    free(outside_lit);
    free(outside);
    free(tmp_lit);
    free(tmp_file);
    free(extra);
}

/* A dataset change opens no database: create, append, replace and delete change the views
 * of the current user database in place (its generation stays put, the firewall's cache
 * is invalidated each time); a bucket change opens a new one. A query running across an
 * in-place replace finishes on the version it started on. */
static bool user_refused(fx *f, const char *sql, const char *msg_part);

static void test_commit_keeps_database(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;
    uint64_t seq = lh_engine__user_generation(f->eng);
    assert_true(seq > 0);
    uint64_t events = atomic_load(&f->eng->view_events);
    const char *keys[] = {"datasets/people/p1.parquet", "datasets/people/p2.parquet",
                          "datasets/people/p3.parquet"};
    const lh_ingest_mode modes[] = {LH_MODE_CREATE, LH_MODE_APPEND, LH_MODE_REPLACE};
    lh_query *running = NULL;
    for (size_t i = 0; i < 3; i++) {
        make_part(f, LH_BUCKET_PRIMARY, keys[i],
                  "SELECT i::BIGINT AS id, 'e' || i AS email FROM range(5000) t(i)", &rows);
        if (modes[i] == LH_MODE_REPLACE) {
            lh_query_opts o = {.format = LH_FORMAT_CSV, .max_rows = 100000, .timeout_ms = 30000};
            running = lh_query_start(f->eng, "SELECT id FROM people ORDER BY id", &o, &err);
            assert_non_null(running);
        }
        commit_dataset(f, "people", LH_BUCKET_PRIMARY, modes[i], keys[i], rows);
        assert_int_equal(lh_engine__user_generation(f->eng), seq);
        assert_true(atomic_load(&f->eng->view_events) > events);
        events = atomic_load(&f->eng->view_events);
    }
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n5000\r\n");
    expect_csv(f, "SELECT count(*) AS n FROM __raw__people", "n\r\n5000\r\n");

    /* the query started before the replace reads both parts of the version it bound */
    char buf[4096];
    ssize_t n;
    size_t lines = 0;
    while ((n = lh_query_read(running, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    assert_int_equal(n, 0);
    assert_null(lh_query_error(running));
    assert_int_equal(lines, 10001);
    lh_query_free(running);
    /* and the superseded parts go once it ended */
    char *p1 = lh_path_join(f->data, keys[0]);
    assert_false(lh_fs_exists(p1));
    free(p1);

    assert_int_equal(lh_catalog_delete(f->cat, "people", "test", &err), 0);
    assert_int_equal(lh_engine__user_generation(f->eng), seq);
    assert_true(atomic_load(&f->eng->view_events) > events);
    user_refused(f, "SELECT * FROM people", "people");

    /* a bucket change opens a new user database */
    char *extra = lh_path_join(f->dir, "extra");
    assert_int_equal(lh_catalog_add_bucket(f->cat, "extra", extra, &err), 0);
    assert_true(lh_engine__user_generation(f->eng) > seq);
    free(extra);
}

/* A folder that already holds datasets becomes a bucket: the catalog loads its manifests
 * after the new generation is in place, and their views appear. Then everything is
 * reopened: the registry is persisted and the views are seeded at open. */
static void test_bucket_with_datasets(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;

    /* another lake, with its own engine (ours may not write there) */
    fx *other = fx_new(2);
    make_part(other, LH_BUCKET_PRIMARY, "datasets/books/b1.parquet",
              "SELECT 5::BIGINT AS id, 'b' AS email", &rows);
    commit_dataset(other, "books", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/books/b1.parquet",
                   rows);
    lh_engine_close(other->eng);
    lh_catalog_close(other->cat);
    lh_storage_close(other->st);
    other->eng = NULL;
    other->cat = NULL;
    other->st = NULL;

    assert_null(query_csv(f, "SELECT id FROM books", &err));
    assert_int_equal(lh_catalog_add_bucket(f->cat, "imported", other->data, &err), 0);
    expect_csv(f, "SELECT id FROM books", "id\r\n5\r\n");

    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
    f->st = lh_storage_open(f->data, &err);
    assert_non_null(f->st);
    f->cat = lh_catalog_open(f->st, &err);
    assert_non_null(f->cat);
    fx_open_engine(f);
    expect_csv(f, "SELECT id FROM __raw__books", "id\r\n5\r\n");
    fx_free(other);
}

/* ---------------------------------------------------------------- the second wall */

/* Starts a user query without the firewall; NULL + err when refused. */
static bool user_refused(fx *f, const char *sql, const char *msg_part)
{
    lh_error err;
    char *out = query_csv(f, sql, &err);
    if (out) {
        free(out);
        fail_msg("ran: %s", sql);
    }
    if (!strstr(err.message, msg_part))
        fail_msg("%s: expected '%s' in: %s", sql, msg_part, err.message);
    return true;
}

/* User SQL runs in a database that can read the buckets' datasets/ folders and nothing
 * else, and write nothing: checked by calling the engine directly, bypassing the
 * firewall. */
static void test_second_wall(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;
    const char *key = "datasets/people/p1.parquet";
    make_part(f, LH_BUCKET_PRIMARY, key,
              "SELECT i::BIGINT AS id, 'e' || i AS email FROM range(3) t(i)", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_CREATE, key, rows);
    char *part = lh_storage_path(f->st, LH_BUCKET_PRIMARY, key, &err);
    char *part_lit = lh_sql_literal(part);

    /* reading a dataset works, through its view and by its part's path */
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n3\r\n");
    char *sql = lh_xasprintf("SELECT count(*) AS n FROM read_parquet(%s)", part_lit);
    expect_csv(f, sql, "n\r\n3\r\n");
    free(sql);

    /* files the internal database may read (so the refusal is the wall, not a missing
     * file) stay out of a user query's reach: another caller's upload, the catalog's own
     * manifests. A part being staged lies under datasets/, which the user database may
     * read (SECURITY.md says so): readable, and never writable (below). */
    char *uploads = lh_path_join(f->data, "_tmp/uploads");
    assert_int_equal(lh_fs_mkdirs(uploads, 0700, &err), 0);
    char *upload = lh_path_join(uploads, "u1.csv");
    lh_test_write_file(upload, "secret\nhunter2\n");
    char *staged = lh_storage_stage(f->st, LH_BUCKET_PRIMARY, "datasets/people/p2.parquet", &err);
    assert_non_null(staged);
    char *staged_lit = lh_sql_literal(staged);
    sql = lh_xasprintf("COPY (SELECT 1 AS id) TO %s (FORMAT parquet)", staged_lit);
    assert_int_equal(lh_engine_exec(f->eng, sql, NULL, &err), 0);
    free(sql);
    char *manifest = lh_path_join(f->data, "_catalog/datasets/people.json");
    assert_true(lh_fs_exists(manifest));
    char *upload_lit = lh_sql_literal(upload), *manifest_lit = lh_sql_literal(manifest);
    char *reads[] = {
        lh_xasprintf("SELECT * FROM read_csv(%s)", upload_lit),
        lh_xasprintf("SELECT * FROM read_text(%s)", upload_lit),
        lh_xasprintf("SELECT * FROM read_text(%s)", manifest_lit),
    };
    sql = lh_xasprintf("SELECT id FROM read_parquet(%s)", staged_lit);
    expect_csv(f, sql, "id\r\n1\r\n");
    free(sql);
    json_t *doc = lh_engine_query_json(f->eng, reads[0], &err);
    if (!doc)
        fail_msg("internal read of the upload: %s", err.message);
    json_decref(doc);
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        user_refused(f, reads[i], "Permission Error");
        free(reads[i]);
    }

    /* no writes. The sandbox allows datasets/, so DuckDB would write there: the one-SELECT
     * rule refuses a new file in datasets/ by COPY and by EXPLAIN ANALYZE (which runs its
     * COPY), and the overwrite of a committed part without DuckDB's temporary file */
    char *newfile = lh_path_join(f->data, "datasets/x.parquet");
    char *newfile_lit = lh_sql_literal(newfile);
    sql = lh_xasprintf("COPY (SELECT 1) TO %s (FORMAT parquet)", newfile_lit);
    user_refused(f, sql, "only SELECT");
    free(sql);
    sql = lh_xasprintf("EXPLAIN ANALYZE COPY (SELECT 1) TO %s (FORMAT parquet)", newfile_lit);
    user_refused(f, sql, "only SELECT");
    free(sql);
    assert_false(lh_fs_exists(newfile));
    sql = lh_xasprintf("EXPLAIN ANALYZE COPY (SELECT 9::BIGINT AS id, 'x' AS email) TO %s "
                       "(FORMAT parquet, USE_TMP_FILE false)",
                       part_lit);
    user_refused(f, sql, "only SELECT");
    free(sql);
    expect_csv(f, "SELECT count(*) AS n, max(id) AS m FROM people", "n,m\r\n3,2\r\n");

    free(newfile_lit);
    free(newfile);
    free(upload_lit);
    free(manifest_lit);
    free(manifest);
    lh_storage_discard(staged);
    free(staged_lit);
    free(staged);
    free(upload);
    free(uploads);
    free(part_lit);
    free(part);
}

/* Spilling still works in the user database: a sort well past the memory limit. */
static void test_second_wall_spills(void **state)
{
    fx *f = *state;
    lh_engine_close(f->eng);
    f->cfg.duckdb_memory_mb = 32;
    f->cfg.duckdb_threads = 1;
    fx_open_engine(f);
    /* 1.5M rows of 100-byte strings sorted by a window: ~150 MB, which fails with "Out of
     * Memory" in a database that cannot spill (checked against DuckDB 1.4.4) */
    lh_error err;
    char *out = run_full(f->eng,
                         "SELECT max(s) AS s FROM (SELECT s, row_number() OVER (ORDER BY s DESC) "
                         "AS rn FROM (SELECT lpad(i::VARCHAR, 8, '0') || repeat('x', 92) AS s "
                         "FROM range(1500000) t(i))) WHERE rn = 1",
                         LH_FORMAT_CSV, 1, 120000, 4096, &err, NULL, NULL, NULL);
    if (!out)
        fail_msg("spilling sort: %s", err.message);
    char *want = lh_xasprintf("s\r\n01499999%.92s\r\n",
                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_string_equal(out, want);
    free(want);
    free(out);
}

/* ---------------------------------------------------------------- listener failures */

static int commit_part(fx *f, const char *name, lh_ingest_mode mode, const char *key, lh_error *err)
{
    json_t *schema = json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "BIGINT", "name",
                               "email", "type", "VARCHAR");
    json_t *lineage = json_pack("{s:s}", "source_system", "test");
    lh_catalog_commit c = {
        .name = name,
        .bucket = LH_BUCKET_PRIMARY,
        .mode = mode,
        .part_key = key,
        .part_rows = 1,
        .part_bytes = 10,
        .schema = schema,
        .lineage = lineage,
        .compression = "zstd",
        .actor = "test",
    };
    int rc = lh_catalog_commit_ingest(f->cat, &c, NULL, err);
    json_decref(schema);
    json_decref(lineage);
    return rc;
}

static json_int_t version_of(fx *f, const char *name)
{
    lh_error err;
    json_t *m = lh_catalog_get(f->cat, name, &err);
    json_int_t v = m ? lh_json_int(m, "version", -1) : -1;
    json_decref(m);
    return v;
}

/* A change the engine cannot serve fails with the reason and is undone; a dataset that
 * breaks later is reported with its reason; a bucket the engine cannot open is not
 * added. */
static void test_listener_failures(void **state)
{
    fx *f = *state;
    lh_error err;
    int64_t rows;
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p1.parquet",
              "SELECT i::BIGINT AS id, 'e' || i AS email FROM range(3) t(i)", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/people/p1.parquet",
                   rows);
    uint64_t events = atomic_load(&f->eng->view_events);
    /* a metadata edit changes no view: no rebuild */
    json_t *patch = json_pack("{s:s}", "description", "people we know");
    assert_int_equal(lh_catalog_patch_metadata(f->cat, "people", patch, "test", NULL, &err), 0);
    json_decref(patch);
    assert_int_equal(atomic_load(&f->eng->view_events), events);
    events = atomic_load(&f->eng->view_events);

    /* a replace whose part DuckDB cannot read: refused, the old version still served */
    static const char junk[] = "this is not a parquet file";
    assert_int_equal(lh_storage_put(f->st, LH_BUCKET_PRIMARY, "datasets/people/bad.parquet", junk,
                                    sizeof(junk), &err),
                     0);
    assert_int_not_equal(
        commit_part(f, "people", LH_MODE_REPLACE, "datasets/people/bad.parquet", &err), 0);
    assert_int_equal(err.code, LH_EINTERNAL);
    assert_string_equal(lh_error_kind(&err), "dataset_unqueryable");
    assert_non_null(strstr(err.message, "dataset 'people'"));
    assert_null(strstr(err.message, f->data)); /* no paths of the lake */
    assert_int_equal(version_of(f, "people"), 2);
    expect_csv(f, "SELECT count(*) AS n FROM people", "n\r\n3\r\n");
    assert_int_equal(atomic_load(&f->eng->view_events), events);

    /* a create over an empty part: refused, no dataset, no manifest */
    assert_int_equal(
        lh_storage_put(f->st, LH_BUCKET_PRIMARY, "datasets/ghost/g1.parquet", "", 0, &err), 0);
    assert_int_not_equal(commit_part(f, "ghost", LH_MODE_CREATE, "datasets/ghost/g1.parquet", &err),
                         0);
    assert_string_equal(lh_error_kind(&err), "dataset_unqueryable");
    assert_false(lh_catalog_exists(f->cat, "ghost"));
    char *ghost = lh_path_join(f->data, "_catalog/datasets/ghost.json");
    assert_false(lh_fs_exists(ghost));
    free(ghost);
    user_refused(f, "SELECT * FROM ghost", "ghost");

    /* a served dataset whose part breaks on disk is reported, with its reason, at the next
     * rebuild (a bucket change; a commit of another dataset rebuilds nothing); other
     * datasets still commit */
    json_t *problems = lh_engine_view_problems(f->eng);
    assert_int_equal(json_object_size(problems), 0);
    json_decref(problems);
    char *p1 = lh_path_join(f->data, "datasets/people/p1.parquet");
    lh_test_write_file(p1, junk);
    make_part(f, LH_BUCKET_PRIMARY, "datasets/staff/s1.parquet",
              "SELECT 1::BIGINT AS id, 'a' AS email", &rows);
    commit_dataset(f, "staff", LH_BUCKET_PRIMARY, LH_MODE_CREATE, "datasets/staff/s1.parquet",
                   rows);
    expect_csv(f, "SELECT count(*) AS n FROM staff", "n\r\n1\r\n");
    char *more = lh_path_join(f->dir, "more");
    assert_int_equal(lh_catalog_add_bucket(f->cat, "more", more, &err), 0);
    free(more);
    problems = lh_engine_view_problems(f->eng);
    assert_int_equal(json_object_size(problems), 1);
    const char *why = lh_json_str(problems, "people");
    assert_non_null(why);
    assert_null(strstr(why, f->data));
    json_decref(problems);
    user_refused(f, "SELECT * FROM people", "people");
    expect_csv(f, "SELECT count(*) AS n FROM staff", "n\r\n1\r\n");

    /* ... and by a refused change of it, without a rebuild: the change re-checks the views
     * it leaves in place */
    assert_int_equal(lh_catalog_remove_bucket(f->cat, "more", &err), 0);
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p4.parquet",
              "SELECT 4::BIGINT AS id, 'd' AS email", &rows);
    commit_dataset(f, "people", LH_BUCKET_PRIMARY, LH_MODE_REPLACE, "datasets/people/p4.parquet",
                   rows);
    problems = lh_engine_view_problems(f->eng);
    assert_int_equal(json_object_size(problems), 0); /* a change that succeeds clears it */
    json_decref(problems);
    expect_csv(f, "SELECT id FROM people", "id\r\n4\r\n");
    char *p4 = lh_path_join(f->data, "datasets/people/p4.parquet");
    lh_test_write_file(p4, junk);
    uint64_t seq = lh_engine__user_generation(f->eng);
    make_part(f, LH_BUCKET_PRIMARY, "datasets/people/p5.parquet",
              "SELECT 5::BIGINT AS id, 'e' AS email", &rows);
    assert_int_not_equal(
        commit_part(f, "people", LH_MODE_APPEND, "datasets/people/p5.parquet", &err), 0);
    assert_string_equal(lh_error_kind(&err), "dataset_unqueryable");
    problems = lh_engine_view_problems(f->eng);
    assert_non_null(lh_json_str(problems, "people"));
    json_decref(problems);
    user_refused(f, "SELECT * FROM people", "people");
    assert_int_equal(lh_engine__user_generation(f->eng), seq);
    free(p4);
    free(p1);

    /* no database can be opened (its spill folder cannot be made): a bucket add fails and
     * changes nothing; a commit needs no new database and still works */
    char *tmp_root = lh_path_join(f->data, "_tmp/duckdb");
    char *away = lh_path_join(f->data, "_tmp/duckdb.away");
    assert_int_equal(rename(tmp_root, away), 0);
    lh_test_write_file(tmp_root, "in the way");
    char *extra = lh_path_join(f->dir, "extra");
    assert_int_not_equal(lh_catalog_add_bucket(f->cat, "extra", extra, &err), 0);
    assert_false(lh_storage_bucket_exists(f->st, "extra"));
    expect_csv(f, "SELECT count(*) AS n FROM staff", "n\r\n1\r\n");
    assert_int_equal(lh_catalog_delete(f->cat, "staff", "test", &err), 0);
    assert_false(lh_catalog_exists(f->cat, "staff"));
    user_refused(f, "SELECT * FROM staff", "staff");
    assert_int_equal(unlink(tmp_root), 0);
    assert_int_equal(rename(away, tmp_root), 0);
    assert_int_equal(lh_catalog_add_bucket(f->cat, "extra", extra, &err), 0);
    assert_true(lh_storage_bucket_exists(f->st, "extra"));
    free(extra);
    free(away);
    free(tmp_root);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
    lh_engine *eng;
    int ok, busy, failed;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 20; i++) {
        lh_error err;
        char *out = run_full(a->eng, "SELECT sum(i) AS s FROM range(20000) t(i)", LH_FORMAT_CSV, 10,
                             30000, 64, &err, NULL, NULL, NULL);
        if (out && strcmp(out, "s\r\n199990000\r\n") == 0)
            a->ok++;
        else if (!out && err.code == LH_EBUSY)
            a->busy++;
        else
            a->failed++;
        free(out);
    }
    return NULL;
}

static void test_concurrent_queries(void **state)
{
    fx *f = *state;
    pthread_t th[6];
    worker_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (worker_arg){f->eng, 0, 0, 0};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        failed += args[i].failed;
    }
    assert_int_equal(failed, 0);
    assert_true(ok > 0);
}

/* Expiry racing the reader: queries whose deadline falls while their reader is reading,
 * between reads, or while it frees them. Under ASan a use-after-free or double release
 * shows here; afterwards every slot must be free again. */
typedef struct race_arg {
    lh_engine *eng;
    unsigned seed;
    int started;
} race_arg;

static void *race_worker(void *p)
{
    race_arg *a = p;
    char buf[4096];
    for (int i = 0; i < 25; i++) {
        lh_error err;
        lh_query_opts o = {.format = (lh_result_format)(rand_r(&a->seed) % 3),
                           .max_rows = 1000000000,
                           .timeout_ms = 20 + (int)(rand_r(&a->seed) % 60)};
        lh_query *q =
            lh_query_start(a->eng, "SELECT i, i * 2 AS j FROM range(100000000) t(i)", &o, &err);
        if (!q) {
            usleep(5 * 1000);
            continue;
        }
        a->started++;
        int reads = (int)(rand_r(&a->seed) % 200);
        for (int r = 0; r < reads; r++) {
            if (lh_query_read(q, buf, 1 + rand_r(&a->seed) % sizeof(buf)) <= 0)
                break;
            if (rand_r(&a->seed) % 8 == 0)
                usleep(rand_r(&a->seed) % 3000);
        }
        (void)lh_query_error(q);
        lh_query_free(q);
    }
    return NULL;
}

static void test_expiry_races_readers(void **state)
{
    (void)state;
    fx *f = fx_new(3);
    pthread_t th[4];
    race_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (race_arg){f->eng, (unsigned)(i + 1) * 7919u, 0};
        pthread_create(&th[i], NULL, race_worker, &args[i]);
    }
    int started = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        started += args[i].started;
    }
    assert_true(started > 0);
    /* every slot came back */
    lh_error err;
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 10, .timeout_ms = 30000};
    lh_query *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = lh_query_start(f->eng, "SELECT 1", &o, &err);
        assert_non_null(q[i]);
    }
    for (int i = 0; i < 3; i++)
        lh_query_free(q[i]);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cells_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cells_match_duckdb_casts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doubles_render_as_shortest_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_names_match_typeof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson, setup, teardown),
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_sql_quoting),
        cmocka_unit_test(test_row_visible),
        cmocka_unit_test(test_watchdog_wakes_for_an_earlier_deadline),
        cmocka_unit_test_setup_teardown(test_row_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_buffer_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_mid_stream, setup, teardown),
        cmocka_unit_test(test_timeout_unread),
        cmocka_unit_test(test_expiry_races_readers),
        cmocka_unit_test_setup_teardown(test_error_mid_stream, setup, teardown),
        cmocka_unit_test(test_busy),
        cmocka_unit_test_setup_teardown(test_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views_follow_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_add_regenerates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_with_datasets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_keeps_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_wall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_wall_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_queries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
