/*
 * test_source_mysql.c: the MySQL / MariaDB reader against a real MariaDB 10.11
 * (tests/dbservers.py starts it and passes LH_TEST_MYSQL_DSN; without it the suite fails).
 *
 * Every mapped type is read value by value from a fixture of edge values (min/max of each
 * integer, an unsigned bigint above 2^63, decimals at full precision and past DuckDB's 38
 * digits, zero dates, TIMEs past 24 h (a negative one refused: Parquet cannot keep it),
 * utf8mb4 text, a 1 MB text, blobs with NUL bytes, enum, set, bit, json, uuid, geometry,
 * NULL in every column), both from the vectors and through a DuckDB table the chunks are
 * appended to (and written to Parquet from); text no type can hold refused
 * (table-driven, no server); then the statement forms (db.table, a query with comments and
 * a trailing ';', a watermark that tries to break out of its quotes, a unix socket), every
 * failure of the contract (refused, authentication, TLS, unknown database/table/column,
 * a rejected or non-SELECT query, an unmappable value, the server killing the connection or
 * the query mid-stream), interrupt from another thread, and a 200k-row table streamed in
 * bounded memory.
 */
#include "testutil.h"

#include "core/core.h"
#include "sources/mysql_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#if defined(__has_include)
#if __has_include(<sanitizer/allocator_interface.h>) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/allocator_interface.h>
#define HAVE_ASAN_ALLOCATOR 1
#endif
#endif

#define BIG_ROWS 200000
#define BIG_PAD 600 /* bytes of text per row: 120 MB in all */

static lh_dsn g_dsn; /* the test server, parsed once */
static const char *g_raw;

/* ---------------------------------------------------------------- helpers */

static MYSQL *admin_connect(void)
{
    MYSQL *m = mysql_init(NULL);
    assert_non_null(m);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, g_dsn.host, g_dsn.user, g_dsn.password, g_dsn.database,
                            (unsigned)g_dsn.port, NULL, CLIENT_MULTI_STATEMENTS))
        fail_msg("cannot connect to the test server: %s", mysql_error(m));
    return m;
}

/* Runs one or more statements on a fresh connection; fails the test on any error. */
static void admin_sql(const char *sql)
{
    MYSQL *m = admin_connect();
    if (mysql_query(m, sql) != 0)
        fail_msg("%s: %s", sql, mysql_error(m));
    int more;
    do {
        MYSQL_RES *res = mysql_store_result(m);
        if (res)
            mysql_free_result(res);
        else if (mysql_field_count(m) != 0)
            fail_msg("%s: %s", sql, mysql_error(m));
        more = mysql_next_result(m);
        if (more > 0)
            fail_msg("%s: %s", sql, mysql_error(m));
    } while (more == 0);
    mysql_close(m);
}

/* A key=value DSN for the test server with one field changed (NULL: keep). */
static char *dsn_with(const char *password, int port, const char *db, const char *sslmode)
{
    char *s =
        lh_xasprintf("host=%s port=%d user=%s password=%s dbname=%s%s%s", g_dsn.host,
                     port ? port : g_dsn.port, g_dsn.user, password ? password : g_dsn.password,
                     db ? db : g_dsn.database, sslmode ? " sslmode=" : "", sslmode ? sslmode : "");
    return s;
}

static lh_db_reader *open_table(const char *table, lh_error *err)
{
    lh_db_select sel = {.table = table};
    return lh_mysql_reader_open(g_raw, &sel, err);
}

static lh_db_reader *open_query(const char *query, lh_error *err)
{
    lh_db_select sel = {.query = query};
    return lh_mysql_reader_open(g_raw, &sel, err);
}

/* Reads the whole result into one chunk (the fixtures are small). */
static duckdb_data_chunk read_small(lh_db_reader *r)
{
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    lh_error err = {0};
    if (r->next(r, c, &err) != 0)
        fail_msg("next: %s", err.message);
    duckdb_data_chunk end = duckdb_create_data_chunk(r->types, r->ncols);
    if (r->next(r, end, &err) != 0)
        fail_msg("next: %s", err.message);
    assert_int_equal(duckdb_data_chunk_get_size(end), 0);
    duckdb_destroy_data_chunk(&end);
    return c;
}

static size_t col_index(lh_db_reader *r, const char *name)
{
    for (size_t i = 0; i < r->ncols; i++)
        if (strcmp(r->names[i], name) == 0)
            return i;
    fail_msg("no column %s", name);
    return 0;
}

static bool is_null(duckdb_data_chunk c, size_t col, idx_t row)
{
    uint64_t *valid = duckdb_vector_get_validity(duckdb_data_chunk_get_vector(c, col));
    return valid && !duckdb_validity_row_is_valid(valid, row);
}

static void *cell(duckdb_data_chunk c, size_t col)
{
    return duckdb_vector_get_data(duckdb_data_chunk_get_vector(c, col));
}

/* The bytes of a VARCHAR or BLOB cell. */
static const char *str_cell(duckdb_data_chunk c, size_t col, idx_t row, size_t *len)
{
    duckdb_string_t *s = &((duckdb_string_t *)cell(c, col))[row];
    *len = duckdb_string_t_length(*s);
    return duckdb_string_t_data(s);
}

static void assert_str(duckdb_data_chunk c, size_t col, idx_t row, const char *want, size_t n)
{
    assert_false(is_null(c, col, row));
    size_t len;
    const char *got = str_cell(c, col, row, &len);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
}

/* A DECIMAL cell as text, from its unscaled integer (independent of the reader's parser). */
static void decimal_text(duckdb_data_chunk c, duckdb_logical_type t, size_t col, idx_t row,
                         char *out, size_t cap)
{
    void *d = cell(c, col);
    __int128 v;
    switch (duckdb_decimal_internal_type(t)) {
    case DUCKDB_TYPE_SMALLINT:
        v = ((int16_t *)d)[row];
        break;
    case DUCKDB_TYPE_INTEGER:
        v = ((int32_t *)d)[row];
        break;
    case DUCKDB_TYPE_BIGINT:
        v = ((int64_t *)d)[row];
        break;
    default: {
        duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
        v = (__int128)(((unsigned __int128)(uint64_t)h.upper << 64) | h.lower);
    }
    }
    int scale = duckdb_decimal_scale(t);
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-v) : (unsigned __int128)v;
    char digits[64];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u || n <= scale);
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[o++] = digits[i];
        if (i == scale && scale > 0)
            out[o++] = '.';
    }
    out[o] = '\0';
    assert_true(o < cap);
}

static int64_t ts_micros(int32_t y, int8_t mo, int8_t d, int8_t h, int8_t mi, int8_t s, int32_t us)
{
    duckdb_timestamp_struct ts = {.date = {y, mo, d}, .time = {h, mi, s, us}};
    return duckdb_to_timestamp(ts).micros;
}

static int32_t date_days(int32_t y, int8_t mo, int8_t d)
{
    duckdb_date_struct ds = {y, mo, d};
    return duckdb_to_date(ds).days;
}

static void assert_no_secret(const lh_error *err)
{
    if (strstr(err->message, g_dsn.password))
        fail_msg("the password leaked: %s", err->message);
}

/* ---------------------------------------------------------------- fixtures */

static const char fixture_sql[] =
    "SET SESSION sql_mode = '', time_zone = '+00:00';"
    "DROP TABLE IF EXISTS t_types;"
    "CREATE TABLE t_types (id int PRIMARY KEY, b tinyint(1), bo bool, ti tinyint,"
    " tu tinyint unsigned, si smallint, su smallint unsigned, mi mediumint,"
    " mu mediumint unsigned, i int, iu int unsigned, bi bigint, bu bigint unsigned,"
    " d1 decimal(12,2), d2 decimal(38,10), d3 decimal(65,30), d4 decimal(5,5) unsigned,"
    " f float, db double, dt date, dtt datetime(6), ts timestamp(3) NULL DEFAULT NULL,"
    " tm time(6), y year, j json, c char(5), vc varchar(100), tx text, bn binary(4),"
    " vb varbinary(10), bl blob, e enum('a','b','c'), st set('x','y','z'), bt bit(10),"
    " bt64 bit(64), u uuid, g point) CHARACTER SET utf8mb4;"
    "INSERT INTO t_types VALUES"
    " (1, 1, true, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,"
    "  9223372036854775807, 18446744073709551615, 9999999999.99,"
    "  9999999999999999999999999999.9999999999,"
    "  12345678901234567890123456789012345.123456789012345678901234567890, 0.99999,"
    "  1.5, 1.7976931348623157e308, '9999-12-31', '9999-12-31 23:59:59.999999',"
    "  '2038-01-19 03:14:07.999', '838:59:59', 2155, '{\"k\": [1, \"\xc3\xa9\"]}', 'ab',"
    "  'h\xc3\xa9llo \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87', '', 0x00010200, 0x00ff00,"
    "  0x000000, 'c', 'x,y,z', b'1111111111', 18446744073709551615,"
    "  '123e4567-e89b-12d3-a456-426614174000', ST_PointFromText('POINT(1 2)')),"
    " (2, 0, false, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,"
    "  -9999999999.99, -0.0000000001, -0.000000000000000000000000000001, 0.00001, -0.25,"
    "  -2.2250738585072014e-308, '1000-01-01', '1000-01-01 00:00:00.000001',"
    "  '1970-01-01 00:00:01', '00:00:00', 1901, '[]', '', '', '\xf0\x9d\x84\x9e', 0x00000000,"
    "  '', '', 'a', '', b'0', 0, NULL, NULL),"
    " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.2345678, 0.1, '0000-00-00',"
    "  '0000-00-00 00:00:00', '0000-00-00 00:00:00', '25:30:00.5', 0, '{}', 'x', 'x', 'x',"
    "  0x61, 0x61, 0x61, 'b', 'y', b'1', 1, NULL, NULL),"
    " (5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9223372036854775807, 9223372036854775808, 1, 1, 1,"
    "  0, 123456789, 3, '2020-00-15', '2020-05-00 10:00:00', '1970-01-01 00:00:01',"
    "  '00:00:00.000250', 1970, 'null', 'x', 'x', 'x', 0x61, 0x61, 0x61, 'b', 'z,x',"
    "  b'1000000000', 9223372036854775808, NULL, NULL);"
    "DROP TABLE IF EXISTS t_big;"
    "CREATE TABLE t_big (id int PRIMARY KEY, pad varchar(1000)) CHARACTER SET utf8mb4;"
    "INSERT INTO t_big SELECT seq, REPEAT(CHAR(65 + seq % 26), 600) FROM seq_1_to_200000;"
    "DROP TABLE IF EXISTS t_large_text;"
    "CREATE TABLE t_large_text (id int, tx longtext, bl longblob) CHARACTER SET utf8mb4;"
    "INSERT INTO t_large_text VALUES (1, REPEAT('\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80', 116509),"
    " CONCAT(REPEAT(0x00ff, 4), 0x00));"
    "DROP TABLE IF EXISTS t_sleep;"
    "CREATE TABLE t_sleep (id int);"
    "INSERT INTO t_sleep VALUES (1), (2), (3), (4), (5);"
    "DROP TABLE IF EXISTS `we``ird`;"
    "CREATE TABLE `we``ird` (`co``l` varchar(20), n int, `f``l` float);"
    "INSERT INTO `we``ird` VALUES ('a', 1, 16777217), ('b', 2, 0.1), ('c''', 3, -1.2345678),"
    " ('d', 4, NULL);";

static int group_setup(void **state)
{
    (void)state;
    g_raw = getenv("LH_TEST_MYSQL_DSN");
    if (!g_raw || !*g_raw) {
        fprintf(stderr, "LH_TEST_MYSQL_DSN is not set: run this suite through "
                        "tests/dbservers.py (ctest does)\n");
        return -1;
    }
    lh_error err = {0};
    if (lh_dsn_parse(LH_SOURCE_MYSQL, g_raw, &g_dsn, &err) < 0) {
        fprintf(stderr, "LH_TEST_MYSQL_DSN does not parse: %s\n", err.message);
        return -1;
    }
    MYSQL *m = mysql_init(NULL);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, g_dsn.host, g_dsn.user, g_dsn.password, g_dsn.database,
                            (unsigned)g_dsn.port, NULL, CLIENT_MULTI_STATEMENTS)) {
        fprintf(stderr, "cannot connect to the test server: %s\n", mysql_error(m));
        mysql_close(m);
        return -1;
    }
    mysql_close(m);
    admin_sql(fixture_sql);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lh_dsn_free(&g_dsn);
    return 0;
}

/* ---------------------------------------------------------------- the mapping */

static void test_types(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_table("t_types", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    static const struct {
        const char *name, *source_type;
        duckdb_type type;
    } want[] = {
        {"id", "int", DUCKDB_TYPE_INTEGER},
        {"b", "tinyint(1)", DUCKDB_TYPE_BOOLEAN},
        {"bo", "tinyint(1)", DUCKDB_TYPE_BOOLEAN},
        {"ti", "tinyint", DUCKDB_TYPE_TINYINT},
        {"tu", "tinyint unsigned", DUCKDB_TYPE_UTINYINT},
        {"si", "smallint", DUCKDB_TYPE_SMALLINT},
        {"su", "smallint unsigned", DUCKDB_TYPE_USMALLINT},
        {"mi", "mediumint", DUCKDB_TYPE_INTEGER},
        {"mu", "mediumint unsigned", DUCKDB_TYPE_UINTEGER},
        {"i", "int", DUCKDB_TYPE_INTEGER},
        {"iu", "int unsigned", DUCKDB_TYPE_UINTEGER},
        {"bi", "bigint", DUCKDB_TYPE_BIGINT},
        {"bu", "bigint unsigned", DUCKDB_TYPE_UBIGINT},
        {"d1", "decimal(12,2)", DUCKDB_TYPE_DECIMAL},
        {"d2", "decimal(38,10)", DUCKDB_TYPE_DECIMAL},
        {"d3", "decimal(65,30)", DUCKDB_TYPE_VARCHAR},
        {"d4", "decimal(5,5) unsigned", DUCKDB_TYPE_DECIMAL},
        {"f", "float", DUCKDB_TYPE_FLOAT},
        {"db", "double", DUCKDB_TYPE_DOUBLE},
        {"dt", "date", DUCKDB_TYPE_DATE},
        {"dtt", "datetime(6)", DUCKDB_TYPE_TIMESTAMP},
        {"ts", "timestamp(3)", DUCKDB_TYPE_TIMESTAMP_TZ},
        {"tm", "time(6)", DUCKDB_TYPE_INTERVAL},
        {"y", "year", DUCKDB_TYPE_SMALLINT},
        {"j", "json", DUCKDB_TYPE_VARCHAR},
        {"c", "char", DUCKDB_TYPE_VARCHAR},
        {"vc", "varchar", DUCKDB_TYPE_VARCHAR},
        {"tx", "text", DUCKDB_TYPE_VARCHAR},
        {"bn", "binary", DUCKDB_TYPE_BLOB},
        {"vb", "varbinary", DUCKDB_TYPE_BLOB},
        {"bl", "blob", DUCKDB_TYPE_BLOB},
        {"e", "enum", DUCKDB_TYPE_VARCHAR},
        {"st", "set", DUCKDB_TYPE_LIST},
        {"bt", "bit(10)", DUCKDB_TYPE_UBIGINT},
        {"bt64", "bit(64)", DUCKDB_TYPE_UBIGINT},
        {"u", "uuid", DUCKDB_TYPE_VARCHAR},
        {"g", "point", DUCKDB_TYPE_BLOB},
    };
    assert_int_equal(r->ncols, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < r->ncols; i++) {
        assert_string_equal(r->names[i], want[i].name);
        if (strcmp(r->source_types[i], want[i].source_type) != 0)
            fail_msg("%s: source type %s, want %s", want[i].name, r->source_types[i],
                     want[i].source_type);
        if (duckdb_get_type_id(r->types[i]) != want[i].type)
            fail_msg("%s: type %d, want %d", want[i].name, duckdb_get_type_id(r->types[i]),
                     want[i].type);
    }
    /* DECIMAL(p,s) exactly as declared. */
    static const struct {
        const char *name;
        int width, scale;
    } decs[] = {{"d1", 12, 2}, {"d2", 38, 10}, {"d4", 5, 5}};
    for (size_t i = 0; i < sizeof decs / sizeof decs[0]; i++) {
        duckdb_logical_type t = r->types[col_index(r, decs[i].name)];
        assert_int_equal(duckdb_decimal_width(t), decs[i].width);
        assert_int_equal(duckdb_decimal_scale(t), decs[i].scale);
    }
    r->close(r);
}

static void test_values(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_query("SELECT * FROM t_types ORDER BY id", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    assert_int_equal(duckdb_data_chunk_get_size(c), 5);
    assert_int_equal(r->rows, 5);
#define COL(name) col_index(r, name)
#define AT(type, name, row) (((type *)cell(c, COL(name)))[row])

    /* Row 0: the maxima. */
    assert_true(AT(bool, "b", 0));
    assert_true(AT(bool, "bo", 0));
    assert_int_equal(AT(int8_t, "ti", 0), 127);
    assert_int_equal(AT(uint8_t, "tu", 0), 255);
    assert_int_equal(AT(int16_t, "si", 0), 32767);
    assert_int_equal(AT(uint16_t, "su", 0), 65535);
    assert_int_equal(AT(int32_t, "mi", 0), 8388607);
    assert_int_equal(AT(uint32_t, "mu", 0), 16777215);
    assert_int_equal(AT(int32_t, "i", 0), 2147483647);
    assert_true(AT(uint32_t, "iu", 0) == 4294967295u);
    assert_true(AT(int64_t, "bi", 0) == INT64_MAX);
    assert_true(AT(uint64_t, "bu", 0) == UINT64_MAX);
    char dec[96];
    decimal_text(c, r->types[COL("d1")], COL("d1"), 0, dec, sizeof dec);
    assert_string_equal(dec, "9999999999.99");
    decimal_text(c, r->types[COL("d2")], COL("d2"), 0, dec, sizeof dec);
    assert_string_equal(dec, "9999999999999999999999999999.9999999999");
    const char *d3 = "12345678901234567890123456789012345.123456789012345678901234567890";
    assert_str(c, COL("d3"), 0, d3, strlen(d3));
    decimal_text(c, r->types[COL("d4")], COL("d4"), 0, dec, sizeof dec);
    assert_string_equal(dec, "0.99999");
    assert_true(AT(float, "f", 0) == 1.5f);
    assert_true(AT(double, "db", 0) == 1.7976931348623157e308);
    assert_int_equal(AT(duckdb_date, "dt", 0).days, date_days(9999, 12, 31));
    assert_true(AT(duckdb_timestamp, "dtt", 0).micros ==
                ts_micros(9999, 12, 31, 23, 59, 59, 999999));
    assert_true(AT(duckdb_timestamp, "ts", 0).micros == ts_micros(2038, 1, 19, 3, 14, 7, 999000));
    duckdb_interval iv = AT(duckdb_interval, "tm", 0);
    assert_int_equal(iv.months, 0);
    assert_int_equal(iv.days, 0);
    assert_true(iv.micros == (838LL * 3600 + 59 * 60 + 59) * 1000000LL);
    assert_int_equal(AT(int16_t, "y", 0), 2155);
    const char *j = "{\"k\": [1, \"\xc3\xa9\"]}";
    assert_str(c, COL("j"), 0, j, strlen(j));
    assert_str(c, COL("c"), 0, "ab", 2);
    const char *vc = "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87";
    assert_str(c, COL("vc"), 0, vc, strlen(vc));
    assert_str(c, COL("tx"), 0, "", 0); /* empty, not NULL */
    assert_str(c, COL("bn"), 0, "\x00\x01\x02\x00", 4);
    assert_str(c, COL("vb"), 0, "\x00\xff\x00", 3);
    assert_str(c, COL("bl"), 0, "\x00\x00\x00", 3);
    assert_str(c, COL("e"), 0, "c", 1);
    {
        duckdb_vector lv = duckdb_data_chunk_get_vector(c, COL("st"));
        duckdb_list_entry le = ((duckdb_list_entry *)duckdb_vector_get_data(lv))[0];
        assert_int_equal(le.length, 3);
        duckdb_vector child = duckdb_list_vector_get_child(lv);
        static const char *members[] = {"x", "y", "z"};
        for (idx_t k = 0; k < 3; k++) {
            duckdb_string_t *s = &((duckdb_string_t *)duckdb_vector_get_data(child))[le.offset + k];
            assert_int_equal(duckdb_string_t_length(*s), 1);
            assert_memory_equal(duckdb_string_t_data(s), members[k], 1);
        }
    }
    assert_true(AT(uint64_t, "bt", 0) == 1023);
    assert_true(AT(uint64_t, "bt64", 0) == UINT64_MAX);
    assert_str(c, COL("u"), 0, "123e4567-e89b-12d3-a456-426614174000", 36);
    /* geometry: MySQL's 4-byte SRID, then WKB (little-endian point 1 2) */
    {
        static const unsigned char wkb[] = {0, 0, 0,    0,    1, 1, 0, 0, 0, 0, 0, 0,   0,
                                            0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40};
        assert_str(c, COL("g"), 0, (const char *)wkb, sizeof wkb);
    }

    /* Row 1: the minima, empty strings and an empty set. */
    assert_false(AT(bool, "b", 1));
    assert_int_equal(AT(int8_t, "ti", 1), -128);
    assert_int_equal(AT(int16_t, "si", 1), -32768);
    assert_int_equal(AT(int32_t, "mi", 1), -8388608);
    assert_true(AT(int32_t, "i", 1) == INT32_MIN);
    assert_true(AT(int64_t, "bi", 1) == INT64_MIN);
    assert_true(AT(uint64_t, "bu", 1) == 0);
    decimal_text(c, r->types[COL("d1")], COL("d1"), 1, dec, sizeof dec);
    assert_string_equal(dec, "-9999999999.99");
    decimal_text(c, r->types[COL("d2")], COL("d2"), 1, dec, sizeof dec);
    assert_string_equal(dec, "-0.0000000001");
    assert_str(c, COL("d3"), 1, "-0.000000000000000000000000000001", 33);
    decimal_text(c, r->types[COL("d4")], COL("d4"), 1, dec, sizeof dec);
    assert_string_equal(dec, "0.00001");
    assert_true(AT(float, "f", 1) == -0.25f);
    assert_true(AT(double, "db", 1) == -2.2250738585072014e-308);
    assert_int_equal(AT(duckdb_date, "dt", 1).days, date_days(1000, 1, 1));
    assert_true(AT(duckdb_timestamp, "dtt", 1).micros == ts_micros(1000, 1, 1, 0, 0, 0, 1));
    assert_true(AT(duckdb_timestamp, "ts", 1).micros == 1000000);
    assert_true(AT(duckdb_interval, "tm", 1).micros == 0);
    assert_int_equal(AT(int16_t, "y", 1), 1901);
    assert_str(c, COL("c"), 1, "", 0);
    assert_str(c, COL("vc"), 1, "", 0);
    assert_str(c, COL("tx"), 1, "\xf0\x9d\x84\x9e", 4);
    assert_str(c, COL("bn"), 1, "\x00\x00\x00\x00", 4);
    assert_str(c, COL("vb"), 1, "", 0);
    assert_str(c, COL("bl"), 1, "", 0);
    assert_false(is_null(c, COL("st"), 1));
    assert_int_equal(((duckdb_list_entry *)cell(c, COL("st")))[1].length, 0);
    assert_true(AT(uint64_t, "bt", 1) == 0);

    /* Row 2: NULL in every column but the key. */
    assert_false(is_null(c, COL("id"), 2));
    for (size_t k = 1; k < r->ncols; k++)
        if (!is_null(c, k, 2))
            fail_msg("column %s of the NULL row is not NULL", r->names[k]);

    /* Row 3: zero dates become NULL; a TIME past 24 h; a FLOAT exactly as stored, not as the
     * text protocol prints it (six significant digits: "1.23457"). */
    assert_true(is_null(c, COL("dt"), 3));
    assert_true(is_null(c, COL("dtt"), 3));
    assert_true(is_null(c, COL("ts"), 3));
    assert_true(AT(duckdb_interval, "tm", 3).micros ==
                (25LL * 3600 + 30 * 60) * 1000000LL + 500000);
    assert_true(AT(float, "f", 3) == 1.2345678f);
    assert_true(AT(double, "db", 3) == 0.1);
    assert_int_equal(AT(int16_t, "y", 3), 0);
    decimal_text(c, r->types[COL("d2")], COL("d2"), 3, dec, sizeof dec);
    assert_string_equal(dec, "0.0000000000");

    /* Row 4: zero month / zero day dates are NULL; 2^63 in an unsigned bigint; microseconds
     * of a TIME; a set in declaration order. */
    assert_true(is_null(c, COL("dt"), 4));
    assert_true(is_null(c, COL("dtt"), 4));
    assert_true(AT(uint64_t, "bu", 4) == 9223372036854775808ull);
    assert_true(AT(float, "f", 4) == 123456789.0f); /* 123456792: the text says 123457000 */
    assert_true(AT(int64_t, "bi", 4) == INT64_MAX);
    assert_true(AT(duckdb_interval, "tm", 4).micros == 250);
    assert_true(AT(uint64_t, "bt", 4) == 512);
    assert_true(AT(uint64_t, "bt64", 4) == 9223372036854775808ull);
    {
        duckdb_vector lv = duckdb_data_chunk_get_vector(c, COL("st"));
        duckdb_list_entry le = ((duckdb_list_entry *)duckdb_vector_get_data(lv))[4];
        assert_int_equal(le.length, 2); /* MySQL returns a set's members in declared order */
        duckdb_string_t *s = &(
            (duckdb_string_t *)duckdb_vector_get_data(duckdb_list_vector_get_child(lv)))[le.offset];
        assert_memory_equal(duckdb_string_t_data(s), "x", 1);
    }
#undef AT
#undef COL
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* The SQL name of a mapped type, for a DuckDB table that receives the reader's chunks. */
static void type_sql(duckdb_logical_type t, char *out, size_t cap)
{
    static const struct {
        duckdb_type id;
        const char *name;
    } names[] = {
        {DUCKDB_TYPE_BOOLEAN, "BOOLEAN"},     {DUCKDB_TYPE_TINYINT, "TINYINT"},
        {DUCKDB_TYPE_SMALLINT, "SMALLINT"},   {DUCKDB_TYPE_INTEGER, "INTEGER"},
        {DUCKDB_TYPE_BIGINT, "BIGINT"},       {DUCKDB_TYPE_UTINYINT, "UTINYINT"},
        {DUCKDB_TYPE_USMALLINT, "USMALLINT"}, {DUCKDB_TYPE_UINTEGER, "UINTEGER"},
        {DUCKDB_TYPE_UBIGINT, "UBIGINT"},     {DUCKDB_TYPE_FLOAT, "FLOAT"},
        {DUCKDB_TYPE_DOUBLE, "DOUBLE"},       {DUCKDB_TYPE_DATE, "DATE"},
        {DUCKDB_TYPE_TIMESTAMP, "TIMESTAMP"}, {DUCKDB_TYPE_TIMESTAMP_TZ, "TIMESTAMPTZ"},
        {DUCKDB_TYPE_INTERVAL, "INTERVAL"},   {DUCKDB_TYPE_VARCHAR, "VARCHAR"},
        {DUCKDB_TYPE_BLOB, "BLOB"},
    };
    duckdb_type id = duckdb_get_type_id(t);
    if (id == DUCKDB_TYPE_DECIMAL) {
        snprintf(out, cap, "DECIMAL(%d,%d)", duckdb_decimal_width(t), duckdb_decimal_scale(t));
        return;
    }
    if (id == DUCKDB_TYPE_LIST) {
        duckdb_logical_type child = duckdb_list_type_child_type(t);
        type_sql(child, out, cap);
        duckdb_destroy_logical_type(&child);
        strncat(out, "[]", cap - strlen(out) - 1);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == id) {
            snprintf(out, cap, "%s", names[i].name);
            return;
        }
    fail_msg("no SQL name for type %d", id);
}

/* The chunks are well-formed DuckDB data: appended to a DuckDB table (as the sync's COPY
 * consumes them) and read back as DuckDB's own text, every edge value is what the server
 * holds. */
static void test_duckdb_round_trip(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_query("SELECT * FROM t_types ORDER BY id", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    lh_buf ddl;
    lh_buf_init(&ddl);
    lh_buf_puts(&ddl, "CREATE TABLE t (");
    for (size_t i = 0; i < r->ncols; i++) {
        char type[64];
        type_sql(r->types[i], type, sizeof type);
        lh_buf_printf(&ddl, "%s\"%s\" %s", i ? ", " : "", r->names[i], type);
    }
    lh_buf_puts(&ddl, ")");
    if (duckdb_query(con, ddl.data, NULL) != DuckDBSuccess)
        fail_msg("%s", ddl.data);
    lh_buf_free(&ddl);
    duckdb_appender app;
    assert_int_equal(duckdb_appender_create(con, NULL, "t", &app), DuckDBSuccess);
    assert_int_equal(duckdb_append_data_chunk(app, c), DuckDBSuccess);
    assert_int_equal(duckdb_appender_destroy(&app), DuckDBSuccess);

    static const char *cols[] = {"b",  "ti",  "bu",           "d1", "d2", "d3", "d4", "f",  "db",
                                 "dt", "dtt", "epoch_us(ts)", "tm", "vc", "bl", "e",  "st", "bt64"};
    /* DuckDB's own text; it prints a DECIMAL(p,p) without the leading zero (".99999") */
    static const char *want[][18] = {
        {"true", "127", "18446744073709551615", "9999999999.99",
         "9999999999999999999999999999.9999999999",
         "12345678901234567890123456789012345.123456789012345678901234567890", ".99999", "1.5",
         "1.7976931348623157e+308", "9999-12-31", "9999-12-31 23:59:59.999999", "2147483647999000",
         "838:59:59", "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87", "\\x00\\x00\\x00",
         "c", "[x, y, z]", "18446744073709551615"},
        {"false", "-128", "0", "-9999999999.99", "-0.0000000001",
         "-0.000000000000000000000000000001", ".00001", "-0.25", "-2.2250738585072014e-308",
         "1000-01-01", "1000-01-01 00:00:00.000001", "1000000", "00:00:00", "", "", "a", "[]", "0"},
        {"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL",
         "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"},
        {"false", "0", "0", "0.00", "0.0000000000", "0.000000000000000000000000000000", ".00000",
         "1.2345678", "0.1", "NULL", "NULL", "NULL", "25:30:00.5", "x", "a", "b", "[y]", "1"},
        {"true", "1", "9223372036854775808", "1.00", "1.0000000000",
         "1.000000000000000000000000000000", ".00000", "123456790.0", "3.0", "NULL", "NULL",
         "1000000", "00:00:00.00025", "x", "a", "b", "[x, z]", "9223372036854775808"},
    };
    int mismatches = 0;
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        char *q = lh_xasprintf("SELECT coalesce(CAST(%s AS VARCHAR), 'NULL') FROM t ORDER BY id",
                               cols[k]);
        duckdb_result res;
        if (duckdb_query(con, q, &res) != DuckDBSuccess)
            fail_msg("%s: %s", q, duckdb_result_error(&res));
        assert_int_equal(duckdb_row_count(&res), 5);
        for (idx_t row = 0; row < 5; row++) {
            char *got = duckdb_value_varchar(&res, 0, row);
            if (strcmp(got, want[row][k]) != 0) {
                fprintf(stderr, "%s, row %llu: '%s', want '%s'\n", cols[k], (unsigned long long)row,
                        got, want[row][k]);
                mismatches++;
            }
            duckdb_free(got);
        }
        duckdb_destroy_result(&res);
        free(q);
    }
    assert_int_equal(mismatches, 0);
    /* and the lake can keep them: the table writes to Parquet and reads back whole */
    char *dir = lh_test_tmpdir("mysql_parquet");
    char *copy = lh_xasprintf("COPY t TO '%s/t.parquet' (FORMAT parquet)", dir);
    duckdb_result res;
    if (duckdb_query(con, copy, &res) != DuckDBSuccess)
        fail_msg("%s: %s", copy, duckdb_result_error(&res));
    duckdb_destroy_result(&res);
    free(copy);
    char *back = lh_xasprintf("SELECT count(*), count(st), sum(len(st)), max(bu)::VARCHAR FROM "
                              "'%s/t.parquet'",
                              dir);
    assert_int_equal(duckdb_query(con, back, &res), DuckDBSuccess);
    assert_int_equal(duckdb_value_int64(&res, 0, 0), 5);
    assert_int_equal(duckdb_value_int64(&res, 1, 0), 4);
    assert_int_equal(duckdb_value_int64(&res, 2, 0), 6);
    char *max_bu = duckdb_value_varchar(&res, 3, 0);
    assert_string_equal(max_bu, "18446744073709551615");
    duckdb_free(max_bu);
    duckdb_destroy_result(&res);
    free(back);
    lh_test_rmdir(dir);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* Decimals computed by a query: precision from the display length, minding sign and point. */
static void test_query_decimals(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r =
        open_query("SELECT CAST(-12.5 AS DECIMAL(5,1)) AS a, 1.50 AS lit, -0.5 AS neg,"
                   " AVG(id) AS av, SUM(bu) AS sbu FROM t_types WHERE id = 1",
                   &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    static const struct {
        int width, scale;
        const char *source_type, *value;
    } want[] = {
        {5, 1, "decimal(5,1)", "-12.5"},
        {3, 2, "decimal(3,2)", "1.50"},
        {2, 1, "decimal(2,1)", "-0.5"},
        {14, 4, "decimal(14,4)", "1.0000"},
        {0, 0, "decimal(42,0)", "18446744073709551615"},
    };
    assert_int_equal(r->ncols, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(r->source_types[i], want[i].source_type);
        if (want[i].width == 0) { /* past 38 digits: the exact text */
            assert_int_equal(duckdb_get_type_id(r->types[i]), DUCKDB_TYPE_VARCHAR);
            assert_str(c, i, 0, want[i].value, strlen(want[i].value));
            continue;
        }
        assert_int_equal(duckdb_decimal_width(r->types[i]), want[i].width);
        assert_int_equal(duckdb_decimal_scale(r->types[i]), want[i].scale);
        char dec[64];
        decimal_text(c, r->types[i], i, 0, dec, sizeof dec);
        assert_string_equal(dec, want[i].value);
    }
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* A 1 MB utf8mb4 text and a blob with NUL bytes arrive byte for byte. */
static void test_large_text_and_blob(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_table("t_large_text", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    assert_int_equal(duckdb_data_chunk_get_size(c), 1);
    const char unit[] = "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"; /* 9 bytes: é 中 😀 */
    size_t n = 116509 * 9, len;
    const char *got = str_cell(c, 1, 0, &len);
    assert_int_equal(len, n);
    assert_true(len > 1000000);
    for (size_t i = 0; i < n; i += 9)
        if (memcmp(got + i, unit, 9) != 0)
            fail_msg("text differs at byte %zu", i);
    assert_str(c, 2, 0, "\x00\xff\x00\xff\x00\xff\x00\xff\x00", 9);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* TIMESTAMP values are instants: written at +05:00, read back in UTC. */
static void test_timestamp_is_utc(void **state)
{
    (void)state;
    admin_sql("DROP TABLE IF EXISTS t_tz; CREATE TABLE t_tz (ts timestamp(6) NULL, dt datetime);"
              "SET time_zone = '+05:00';"
              "INSERT INTO t_tz VALUES ('2024-06-01 12:00:00.5', '2024-06-01 12:00:00');");
    lh_error err = {0};
    lh_db_reader *r = open_table("t_tz", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    assert_true(((duckdb_timestamp *)cell(c, 0))[0].micros ==
                ts_micros(2024, 6, 1, 7, 0, 0, 500000));
    /* datetime has no zone: it is kept as written */
    assert_true(((duckdb_timestamp *)cell(c, 1))[0].micros == ts_micros(2024, 6, 1, 12, 0, 0, 0));
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* Text the server would never send for a type is refused, never guessed at (table-driven,
 * straight through the conversion; no server involved). */
static void test_conversion_refusals(void **state)
{
    (void)state;
    static const struct {
        lh_mysql_col_kind kind;
        duckdb_type type;
        const char *text;
        int want; /* 0 stored, 1 stored as NULL, -1 refused */
    } cases[] = {
        {LH_MYCOL_BOOL, DUCKDB_TYPE_BOOLEAN, "1", 0},
        {LH_MYCOL_BOOL, DUCKDB_TYPE_BOOLEAN, "2", -1},
        {LH_MYCOL_BOOL, DUCKDB_TYPE_BOOLEAN, "-1", -1},
        {LH_MYCOL_BOOL, DUCKDB_TYPE_BOOLEAN, "", -1},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, "-128", 0},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, "128", -1},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, "-129", -1},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, "1a", -1},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, "-", -1},
        {LH_MYCOL_INT8, DUCKDB_TYPE_TINYINT, " 1", -1},
        {LH_MYCOL_UINT8, DUCKDB_TYPE_UTINYINT, "256", -1},
        {LH_MYCOL_UINT8, DUCKDB_TYPE_UTINYINT, "-1", -1},
        {LH_MYCOL_INT64, DUCKDB_TYPE_BIGINT, "-9223372036854775808", 0},
        {LH_MYCOL_INT64, DUCKDB_TYPE_BIGINT, "9223372036854775808", -1},
        {LH_MYCOL_INT64, DUCKDB_TYPE_BIGINT, "-9223372036854775809", -1},
        {LH_MYCOL_UINT64, DUCKDB_TYPE_UBIGINT, "18446744073709551615", 0},
        {LH_MYCOL_UINT64, DUCKDB_TYPE_UBIGINT, "18446744073709551616", -1},
        {LH_MYCOL_UINT64, DUCKDB_TYPE_UBIGINT, "99999999999999999999", -1},
        {LH_MYCOL_DECIMAL, DUCKDB_TYPE_DECIMAL, "-123.45", 0},
        {LH_MYCOL_DECIMAL, DUCKDB_TYPE_DECIMAL, "1234.5", -1},
        {LH_MYCOL_DECIMAL, DUCKDB_TYPE_DECIMAL, "1.234", -1},
        {LH_MYCOL_DECIMAL, DUCKDB_TYPE_DECIMAL, "1e2", -1},
        {LH_MYCOL_FLOAT, DUCKDB_TYPE_FLOAT, "-3.40282e38", 0},
        {LH_MYCOL_FLOAT, DUCKDB_TYPE_FLOAT, "3.5e38", -1},
        {LH_MYCOL_FLOAT, DUCKDB_TYPE_FLOAT, "1.5x", -1},
        {LH_MYCOL_DOUBLE, DUCKDB_TYPE_DOUBLE, "1e999", -1},
        {LH_MYCOL_DOUBLE, DUCKDB_TYPE_DOUBLE, "", -1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2024-02-29", 0},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "0000-00-00", 1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2024-00-10", 1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2023-02-29", -1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2024-13-01", -1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2024-1-01", -1},
        {LH_MYCOL_DATE, DUCKDB_TYPE_DATE, "2024-01-01x", -1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01 23:59:59.5", 0},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "0000-00-00 00:00:00", 1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01 24:00:00", -1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01 00:00:00.1234567", -1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01 00:00:00.", -1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01T00:00:00", -1},
        {LH_MYCOL_TIMESTAMP, DUCKDB_TYPE_TIMESTAMP, "2024-01-01", -1},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "838:59:59.999999", 0},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "-00:00:00", 0},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "-838:59:59.999999", -1}, /* Parquet: unsigned */
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "-00:00:00.000001", -1},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "12:60:00", -1},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "12:00", -1},
        {LH_MYCOL_TIME, DUCKDB_TYPE_INTERVAL, "-", -1},
        {LH_MYCOL_BIT, DUCKDB_TYPE_UBIGINT, "123456789", -1}, /* 9 bytes: past 64 bits */
        {LH_MYCOL_TEXT, DUCKDB_TYPE_VARCHAR, "caf\xc3\xa9", 0},
        {LH_MYCOL_TEXT, DUCKDB_TYPE_VARCHAR, "caf\xc3", -1},
        {LH_MYCOL_TEXT, DUCKDB_TYPE_VARCHAR, "\xff", -1},
        {LH_MYCOL_BLOB, DUCKDB_TYPE_BLOB, "\xff", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        duckdb_logical_type t = cases[i].type == DUCKDB_TYPE_DECIMAL
                                    ? duckdb_create_decimal_type(5, 2)
                                    : duckdb_create_logical_type(cases[i].type);
        lh_mysql_col col = {.kind = cases[i].kind, .precision = 5, .scale = 2, .type = t};
        duckdb_data_chunk c = duckdb_create_data_chunk(&t, 1);
        duckdb_vector v = duckdb_data_chunk_get_vector(c, 0);
        int rc = lh_mysql_put_value(&col, v, duckdb_vector_get_data(v), 0, cases[i].text,
                                    strlen(cases[i].text));
        int got = rc < 0 ? -1 : is_null(c, 0, 0) ? 1 : 0;
        if (got != cases[i].want)
            fail_msg("case %zu ('%s' as kind %d): %d, want %d", i, cases[i].text, cases[i].kind,
                     got, cases[i].want);
        duckdb_destroy_data_chunk(&c);
        duckdb_destroy_logical_type(&t);
    }
}

/* ---------------------------------------------------------------- statements */

static int64_t sum_column_int(lh_db_reader *r, size_t col, int64_t *rows)
{
    int64_t sum = 0;
    *rows = 0;
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    for (;;) {
        lh_error err = {0};
        if (r->next(r, c, &err) != 0)
            fail_msg("next: %s", err.message);
        idx_t n = duckdb_data_chunk_get_size(c);
        if (n == 0)
            break;
        for (idx_t i = 0; i < n; i++)
            sum += ((int32_t *)cell(c, col))[i];
        *rows += (int64_t)n;
    }
    duckdb_destroy_data_chunk(&c);
    return sum;
}

static void test_statement_forms(void **state)
{
    (void)state;
    lh_error err = {0};
    int64_t rows;
    /* db.table, with backticks in both names doubled */
    char *qualified = lh_xasprintf("%s.we`ird", g_dsn.database);
    lh_db_reader *r = open_table(qualified, &err);
    free(qualified);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_string_equal(r->names[0], "co`l");
    assert_int_equal(sum_column_int(r, 1, &rows), 10);
    assert_int_equal(rows, 4);
    r->close(r);

    /* a query: trailing ';' and spaces stripped, wrapped as a derived table */
    r = open_query("  SELECT n, `co``l` AS label FROM `we``ird` WHERE n > 1 ;; \n ", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 0, &rows), 9);
    assert_int_equal(rows, 3);
    r->close(r);

    /* incremental: only rows above the watermark; the FLOAT column (read through its
     * DOUBLE cast, under a name with a backtick) exact */
    lh_db_select sel = {.table = "we`ird", .incremental_column = "n", .watermark = "2"};
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_string_equal(r->names[2], "f`l");
    assert_string_equal(r->source_types[2], "float");
    assert_int_equal(duckdb_get_type_id(r->types[2]), DUCKDB_TYPE_FLOAT);
    duckdb_data_chunk fc = read_small(r);
    assert_int_equal(duckdb_data_chunk_get_size(fc), 2);
    assert_int_equal(((int32_t *)cell(fc, 1))[0] + ((int32_t *)cell(fc, 1))[1], 7);
    assert_true(((float *)cell(fc, 2))[0] == -1.2345678f);
    assert_true(is_null(fc, 2, 1));
    duckdb_destroy_data_chunk(&fc);
    r->close(r);
    sel.watermark = "0";
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    fc = read_small(r);
    assert_true(((float *)cell(fc, 2))[0] == 16777216.0f); /* 16777217 rounds in a float */
    assert_true(((float *)cell(fc, 2))[1] == 0.1f);
    duckdb_destroy_data_chunk(&fc);
    r->close(r);

    /* nothing above the watermark: the columns are still described, no row arrives */
    sel.watermark = "99";
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(r->ncols, 3);
    assert_int_equal(duckdb_get_type_id(r->types[1]), DUCKDB_TYPE_INTEGER);
    assert_int_equal(sum_column_int(r, 1, &rows), 0);
    assert_int_equal(rows, 0);
    r->close(r);

    /* a watermark cannot leave its quotes: compared as the string it is */
    sel = (lh_db_select){
        .table = "we`ird", .incremental_column = "co`l", .watermark = "c' OR '1'='1"};
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 1, &rows), 4); /* only 'd' > "c' OR ..." */
    assert_int_equal(rows, 1);
    r->close(r);
    sel.watermark = "c\\' OR 1=1 -- ";
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 1, &rows), 4);
    r->close(r);

    /* comments before the SELECT, and a line comment at its end */
    r = open_query("-- the labels\n/* all of them */ # really\n(SELECT n FROM `we``ird`) -- end",
                   &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 0, &rows), 10);
    r->close(r);

    /* incremental over a query */
    sel = (lh_db_select){
        .query = "SELECT n AS k FROM `we``ird`", .incremental_column = "k", .watermark = "3"};
    r = lh_mysql_reader_open(g_raw, &sel, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 0, &rows), 4);
    r->close(r);
}

/* The DSN's unix_socket: the server's own socket, found from a TCP connection. */
static void test_unix_socket(void **state)
{
    (void)state;
    MYSQL *admin = admin_connect();
    if (mysql_query(admin, "SELECT @@socket") != 0)
        fail_msg("%s", mysql_error(admin));
    MYSQL_RES *res = mysql_store_result(admin);
    MYSQL_ROW row = mysql_fetch_row(res);
    assert_non_null(row);
    assert_non_null(row[0]);
    char *dsn = lh_xasprintf("unix_socket=%s user=%s password=%s dbname=%s", row[0], g_dsn.user,
                             g_dsn.password, g_dsn.database);
    mysql_free_result(res);
    mysql_close(admin);
    lh_db_select sel = {.table = "we`ird"};
    lh_error err = {0};
    lh_db_reader *r = lh_mysql_reader_open(dsn, &sel, &err);
    lh_secret_free(dsn);
    if (!r)
        fail_msg("open over the socket: %s", err.message);
    int64_t rows;
    assert_int_equal(sum_column_int(r, 1, &rows), 10);
    r->close(r);
}

/* ---------------------------------------------------------------- failures */

static void expect_open_error(const char *dsn, const lh_db_select *sel, int code,
                              const char *needle)
{
    lh_error err = {0};
    lh_db_reader *r = lh_mysql_reader_open(dsn, sel, &err);
    if (r) {
        r->close(r);
        fail_msg("opened, expected %s", needle);
    }
    if (err.code != code)
        fail_msg("code %d, want %d: %s", err.code, code, err.message);
    if (!strstr(err.message, needle))
        fail_msg("'%s' not in: %s", needle, err.message);
    assert_no_secret(&err);
}

static char g_sql_mode[512];

static int save_sql_mode(void **state)
{
    (void)state;
    MYSQL *admin = admin_connect();
    if (mysql_query(admin, "SELECT @@GLOBAL.sql_mode") != 0)
        fail_msg("%s", mysql_error(admin));
    MYSQL_RES *res = mysql_store_result(admin);
    MYSQL_ROW row = mysql_fetch_row(res);
    snprintf(g_sql_mode, sizeof g_sql_mode, "%s", row && row[0] ? row[0] : "");
    mysql_free_result(res);
    mysql_close(admin);
    return 0;
}

static int restore_sql_mode(void **state)
{
    (void)state;
    char *q = lh_xasprintf("SET GLOBAL sql_mode = '%s'", g_sql_mode);
    admin_sql(q);
    free(q);
    return 0;
}

/* With NO_BACKSLASH_ESCAPES (the server's mode, inherited by the session) a backslash is an
 * ordinary character: the watermark's quote must be doubled, not backslashed, or it would
 * end the literal. */
static void test_watermark_without_backslash_escapes(void **state)
{
    (void)state;
    admin_sql("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')");
    lh_error err = {0};
    int64_t rows;
    static const char *marks[] = {"c\\' OR 1=1 -- ", "c' OR '1'='1", "c\\"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        lh_db_select sel = {.table = "we`ird", .incremental_column = "co`l", .watermark = marks[i]};
        lh_db_reader *r = lh_mysql_reader_open(g_raw, &sel, &err);
        if (!r)
            fail_msg("watermark %zu: %s", i, err.message);
        assert_int_equal(sum_column_int(r, 1, &rows), 4); /* only 'd' */
        assert_int_equal(rows, 1);
        r->close(r);
    }
}

static int restore_prepared_statements(void **state)
{
    (void)state;
    admin_sql("SET GLOBAL max_prepared_stmt_count = 16382");
    return 0;
}

/* A server that refuses prepared statements: reads without FLOAT columns go on; a FLOAT
 * column is refused (it could only be read with six digits), naming the column and the
 * query that reads it exactly. */
static void test_server_without_prepare(void **state)
{
    (void)state;
    admin_sql("SET GLOBAL max_prepared_stmt_count = 0");
    lh_error err = {0};
    int64_t rows;
    lh_db_reader *r = open_table("t_sleep", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_int_equal(sum_column_int(r, 0, &rows), 15);
    r->close(r);
    expect_open_error(g_raw, &(lh_db_select){.table = "t_types"}, LH_EUPSTREAM,
                      "column 'f' is a FLOAT");
    expect_open_error(g_raw, &(lh_db_select){.table = "t_types"}, LH_EUPSTREAM,
                      "CAST(`f` AS DOUBLE)");
    /* and the workaround it names works */
    r = open_query("SELECT id, CAST(f AS DOUBLE) AS f FROM t_types WHERE id = 5", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = read_small(r);
    assert_true(((double *)cell(c, 1))[0] == 123456792.0);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

static void test_open_errors(void **state)
{
    (void)state;
    lh_db_select tsel = {.table = "t_sleep"};
    char *location = lh_dsn_location(&g_dsn);

    /* refused: a port nothing listens on */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(sock, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)&a, &al), 0);
    int dead_port = ntohs(a.sin_port);
    close(sock);
    char *dsn = dsn_with(NULL, dead_port, NULL, NULL);
    expect_open_error(dsn, &tsel, LH_EUPSTREAM, "cannot connect");
    free(dsn);

    /* authentication: the wrong password appears nowhere either */
    dsn = dsn_with("Wrong-Secret-42", 0, NULL, NULL);
    expect_open_error(dsn, &tsel, LH_EUPSTREAM, "authentication failed");
    lh_error err = {0};
    assert_null(lh_mysql_reader_open(dsn, &tsel, &err));
    assert_null(strstr(err.message, "Wrong-Secret-42"));
    assert_non_null(strstr(err.message, location));
    free(dsn);

    /* TLS required, the server has none */
    dsn = dsn_with(NULL, 0, NULL, "require");
    expect_open_error(dsn, &tsel, LH_EUPSTREAM, "TLS");
    free(dsn);
    dsn = dsn_with(NULL, 0, NULL, "verify-full");
    expect_open_error(dsn, &tsel, LH_EUPSTREAM, "TLS");
    free(dsn);
    /* prefer falls back to plain text when the server has no TLS */
    dsn = dsn_with(NULL, 0, NULL, "prefer");
    lh_db_reader *r = lh_mysql_reader_open(dsn, &tsel, &err);
    if (!r)
        fail_msg("prefer: %s", err.message);
    r->close(r);
    free(dsn);

    /* unknown database, table, column */
    dsn = dsn_with(NULL, 0, "no_such_db", NULL);
    expect_open_error(dsn, &tsel, LH_EUPSTREAM, "unknown database");
    free(dsn);
    lh_db_select sel = {.table = "no_such_table"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "unknown table");
    sel = (lh_db_select){.table = "t_sleep", .incremental_column = "nope", .watermark = "1"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "unknown column");
    sel = (lh_db_select){.query = "SELECT nope FROM t_sleep"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "unknown column");
    /* a query the server rejects */
    sel = (lh_db_select){.query = "SELECT FROM WHERE"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "does not parse");
    sel = (lh_db_select){.query = "SELECT 1 AS a, 2 AS a"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "Duplicate column");

    /* refused before connecting */
    static const char *bad_tables[] = {"", ".t", "t.", "a..b", "a.b.c"};
    for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
        sel = (lh_db_select){.table = bad_tables[i]};
        expect_open_error(g_raw, &sel, LH_EINVAL, "table");
    }
    static const char *bad_queries[] = {"",
                                        " ;; ",
                                        "-- only a comment\n",
                                        "/* a comment */ DELETE FROM t_sleep",
                                        "DELETE FROM t_sleep",
                                        "UPDATE t_sleep SET id = 0",
                                        "selectx 1",
                                        "select_all()"};
    for (size_t i = 0; i < sizeof bad_queries / sizeof bad_queries[0]; i++) {
        sel = (lh_db_select){.query = bad_queries[i]};
        expect_open_error(g_raw, &sel, LH_EINVAL, "query");
    }
    sel = (lh_db_select){.table = "t_sleep", .query = "SELECT 1"};
    expect_open_error(g_raw, &sel, LH_EINVAL, "exactly one");
    /* one statement only: a second one is a syntax error inside the derived table */
    sel = (lh_db_select){.query = "SELECT 1 AS x; DROP TABLE t_sleep"};
    expect_open_error(g_raw, &sel, LH_EUPSTREAM, "does not parse");
    lh_db_select count = {.table = "t_sleep"};
    r = lh_mysql_reader_open(g_raw, &count, &err);
    if (!r)
        fail_msg("t_sleep is gone: %s", err.message);
    r->close(r);
    /* a DSN that does not parse */
    expect_open_error("mysql://u:pw@host:notaport/db", &tsel, LH_EINVAL, "port");
    free(location);
}

/* A tinyint(1) holding something other than 0 or 1 would be flattened to true: refused,
 * naming the row, the column and its type, never the value. */
static void test_unmappable_value(void **state)
{
    (void)state;
    admin_sql("DROP TABLE IF EXISTS t_unmappable;"
              "CREATE TABLE t_unmappable (id int, flag tinyint(1));"
              "INSERT INTO t_unmappable VALUES (1, 1), (2, 0), (3, -99), (4, 1);");
    lh_error err = {0};
    lh_db_reader *r = open_query("SELECT * FROM t_unmappable ORDER BY id", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    assert_int_equal(r->next(r, c, &err), LH_EINVAL);
    assert_string_equal(lh_error_kind(&err), "unmappable_value");
    assert_non_null(strstr(err.message, "row 3"));
    assert_non_null(strstr(err.message, "'flag'"));
    assert_non_null(strstr(err.message, "tinyint(1)"));
    assert_null(strstr(err.message, "-99"));
    assert_int_equal(duckdb_data_chunk_get_size(c), 0);
    /* the stream is over: a further next() fails too, and close does not drain */
    assert_int_not_equal(r->next(r, c, &err), 0);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* A negative TIME is a duration DuckDB holds but Parquet's unsigned INTERVAL cannot: refused
 * at its row, before it could fail the whole Parquet write. */
static void test_negative_time_unmappable(void **state)
{
    (void)state;
    admin_sql("DROP TABLE IF EXISTS t_negtime;"
              "CREATE TABLE t_negtime (id int, d time(6));"
              "INSERT INTO t_negtime VALUES (1, '01:00:00'), (2, '-00:00:01.5');");
    lh_error err = {0};
    lh_db_reader *r = open_query("SELECT * FROM t_negtime ORDER BY id", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    assert_int_equal(r->next(r, c, &err), LH_EINVAL);
    assert_string_equal(lh_error_kind(&err), "unmappable_value");
    assert_non_null(strstr(err.message, "row 2"));
    assert_non_null(strstr(err.message, "'d' (time(6))"));
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

/* ---------------------------------------------------------------- mid-stream */

/* The id of the server connection running a statement that contains `marker`, found from
 * another connection. SHOW FULL PROCESSLIST rather than information_schema.PROCESSLIST:
 * the latter materializes an Aria temporary table, and one run of this suite saw MariaDB
 * 10.11.19 crash freeing such a table while connections were being killed. */
static unsigned long find_connection(MYSQL *admin, const char *marker)
{
    unsigned long self = mysql_thread_id(admin);
    for (int tries = 0; tries < 50; tries++) {
        if (mysql_query(admin, "SHOW FULL PROCESSLIST") != 0)
            fail_msg("%s", mysql_error(admin));
        MYSQL_RES *res = mysql_store_result(admin);
        unsigned long id = 0;
        MYSQL_ROW row;
        /* columns: Id, User, Host, db, Command, Time, State, Info, ... */
        while ((row = mysql_fetch_row(res)))
            if (row[7] && strstr(row[7], marker) && strtoul(row[0], NULL, 10) != self)
                id = strtoul(row[0], NULL, 10);
        mysql_free_result(res);
        if (id)
            return id;
        usleep(100000);
    }
    fail_msg("no connection runs %s", marker);
    return 0;
}

/* The server ends the stream (KILL of the connection, or KILL QUERY): next() reports
 * LH_EUPSTREAM with the rows read so far. */
static void kill_mid_stream(const char *kill_verb, const char *marker)
{
    char *q = lh_xasprintf("SELECT id, pad AS %s FROM t_big", marker);
    lh_error err = {0};
    lh_db_reader *r = open_query(q, &err);
    free(q);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    assert_int_equal(r->next(r, c, &err), 0);
    assert_int_equal(duckdb_data_chunk_get_size(c), duckdb_vector_size());

    MYSQL *admin = admin_connect();
    char kill[64];
    snprintf(kill, sizeof kill, "%s %lu", kill_verb, find_connection(admin, marker));
    if (mysql_query(admin, kill) != 0)
        fail_msg("%s: %s", kill, mysql_error(admin));
    mysql_close(admin);

    int rc;
    int64_t before = r->rows;
    while ((rc = r->next(r, c, &err)) == 0 && duckdb_data_chunk_get_size(c) > 0)
        ;
    assert_int_equal(rc, LH_EUPSTREAM);
    assert_true(r->rows >= before);
    assert_true(r->rows < BIG_ROWS);
    /* the message counts the rows received, the partial chunk's included */
    const char *after = strstr(err.message, "after ");
    if (!after)
        fail_msg("no row count in: %s", err.message);
    long long received = strtoll(after + 6, NULL, 10);
    assert_true(received >= r->rows && received < BIG_ROWS);
    assert_no_secret(&err);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

static void test_server_kills_connection(void **state)
{
    (void)state;
    kill_mid_stream("KILL", "lh_kill_conn");
}

static void test_server_kills_query(void **state)
{
    (void)state;
    kill_mid_stream("KILL QUERY", "lh_kill_query");
}

/* Two rows large enough to leave the server's network buffer at once, then a row that
 * takes the server 10 s: a next() asking for 2048 rows blocks on the network. */
#define SLOW_QUERY                                                                                 \
    "SELECT id, IF(id = 3, SLEEP(10), 0) AS s, REPEAT('x', 100000) AS pad FROM t_sleep"

typedef struct next_call {
    lh_db_reader *r;
    int rc;
    lh_error err;
    double seconds;
} next_call;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run_next(void *arg)
{
    next_call *call = arg;
    duckdb_data_chunk c = duckdb_create_data_chunk(call->r->types, call->r->ncols);
    double t0 = now_s();
    call->rc = call->r->next(call->r, c, &call->err);
    call->seconds = now_s() - t0;
    duckdb_destroy_data_chunk(&c);
    return NULL;
}

/* interrupt from another thread wakes a next() blocked on the network. */
static void test_interrupt(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_query(SLOW_QUERY, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    next_call call = {.r = r};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_next, &call), 0);
    usleep(300000);
    r->interrupt(r);
    r->interrupt(r); /* idempotent */
    pthread_join(th, NULL);
    assert_int_equal(call.rc, LH_ECANCELLED);
    assert_string_equal(lh_error_kind(&call.err), "cancelled");
    assert_true(call.seconds < 3.0);
    /* and it stays cancelled */
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    assert_int_equal(r->next(r, c, &err), LH_ECANCELLED);
    duckdb_destroy_data_chunk(&c);
    double t0 = now_s();
    r->close(r);
    assert_true(now_s() - t0 < 2.0);
}

/* close of an unread result returns at once: it does not drain the remaining rows. */
static void test_close_does_not_drain(void **state)
{
    (void)state;
    lh_error err = {0};
    double t0 = now_s();
    lh_db_reader *r = open_query(SLOW_QUERY, &err);
    if (!r)
        fail_msg("open: %s", err.message);
    assert_true(now_s() - t0 < 3.0); /* the first rows flushed: open did not wait */
    t0 = now_s();
    r->close(r);
    assert_true(now_s() - t0 < 3.0); /* draining would wait for the 10 s row */
}

/* ---------------------------------------------------------------- bounded memory */

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Heap in use now: the sanitizer's count (which excludes its quarantine of freed blocks)
 * when built with ASan, else the peak RSS. */
static size_t memory_in_use(void)
{
#ifdef HAVE_ASAN_ALLOCATOR
    return __sanitizer_get_current_allocated_bytes();
#else
    return (size_t)peak_rss_kb() * 1024;
#endif
}

static void test_streams_in_bounded_memory(void **state)
{
    (void)state;
    lh_error err = {0};
    lh_db_reader *r = open_table("t_big", &err);
    if (!r)
        fail_msg("open: %s", err.message);
    duckdb_data_chunk c = duckdb_create_data_chunk(r->types, r->ncols);
    size_t base = memory_in_use(), peak = base;
    int64_t sum = 0, rows = 0;
    for (;;) {
        if (r->next(r, c, &err) != 0)
            fail_msg("next: %s", err.message);
        idx_t n = duckdb_data_chunk_get_size(c);
        if (n == 0)
            break;
        for (idx_t i = 0; i < n; i++) {
            int32_t id = ((int32_t *)cell(c, 0))[i];
            size_t len;
            const char *pad = str_cell(c, 1, i, &len);
            if (len != BIG_PAD || pad[0] != 'A' + id % 26 || pad[BIG_PAD - 1] != pad[0])
                fail_msg("row %d has the wrong pad", id);
            sum += id;
        }
        rows += (int64_t)n;
        size_t now = memory_in_use();
        if (now > peak)
            peak = now;
    }
    assert_int_equal(rows, BIG_ROWS);
    assert_true(r->rows == BIG_ROWS);
    assert_true(sum == (int64_t)BIG_ROWS * (BIG_ROWS + 1) / 2);
    /* 120 MB went through; a buffered result would hold all of it */
    size_t growth = peak > base ? peak - base : 0;
    fprintf(stderr, "streamed %d rows x %d bytes: memory grew by %.1f MB\n", BIG_ROWS, BIG_PAD,
            (double)growth / (1024.0 * 1024.0));
    assert_true(growth < 32u * 1024 * 1024);
    duckdb_destroy_data_chunk(&c);
    r->close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_duckdb_round_trip),
        cmocka_unit_test(test_query_decimals),
        cmocka_unit_test(test_large_text_and_blob),
        cmocka_unit_test(test_timestamp_is_utc),
        cmocka_unit_test(test_conversion_refusals),
        cmocka_unit_test(test_statement_forms),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_teardown(test_server_without_prepare, restore_prepared_statements),
        cmocka_unit_test_setup_teardown(test_watermark_without_backslash_escapes, save_sql_mode,
                                        restore_sql_mode),
        cmocka_unit_test(test_unmappable_value),
        cmocka_unit_test(test_negative_time_unmappable),
        cmocka_unit_test(test_server_kills_connection),
        cmocka_unit_test(test_server_kills_query),
        cmocka_unit_test(test_interrupt),
        cmocka_unit_test(test_close_does_not_drain),
        cmocka_unit_test(test_streams_in_bounded_memory),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
