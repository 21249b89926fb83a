/*
 * test_source_pg.c: the PostgreSQL reader (sources/pg.c) against a real PostgreSQL 15.
 *
 * CMake runs this suite through tests/dbservers.py, which starts a throwaway server and
 * passes its DSN (with a password) in LH_TEST_PG_DSN; without it every test fails.
 *
 * Values are checked one by one against the server: for each column the test asks the
 * server for a canonical text of what it holds (micros since 1970 for a timestamp, the
 * IEEE bits of a float, hex of a bytea, ...) and renders the chunk's value the same way,
 * so a wrong epoch, byte order, scale, offset sign or lost NULL shows as a mismatch naming
 * the column and the row.
 */
#include "testutil.h"

#include "sources/pg_internal.h"
#include "sources/sources_internal.h"

#include <libpq-fe.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* libasan's (sanitizer/allocator_interface.h, not installed everywhere): live heap bytes */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static const char *g_dsn;
static char g_password[256];
static PGconn *g_admin;

/* ---------------------------------------------------------------- helpers */

static void sql(const char *text)
{
    PGresult *res = PQexec(g_admin, text);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s\n%.300s", PQerrorMessage(g_admin), text);
    PQclear(res);
}

/* The DSN with its database replaced (postgresql://u:p@h:port/db form). Caller frees. */
static char *dsn_with_db(const char *db)
{
    const char *slash = strrchr(g_dsn, '/');
    return lh_xasprintf("%.*s/%s", (int)(slash - g_dsn), g_dsn, db);
}

static void assert_no_password(const lh_error *err)
{
    if (g_password[0] && strstr(err->message, g_password))
        fail_msg("the password is in the message: %s", err->message);
}

static lh_db_reader *open_ok(const char *table, const char *query)
{
    lh_db_select sel = {.table = table, .query = query};
    lh_error err = {0};
    lh_db_reader *r = lh_pg_reader_open(g_dsn, &sel, &err);
    if (!r)
        fail_msg("open failed: %s", err.message);
    return r;
}

/* Opens and expects a failure with code; returns the message (static buffer). */
static const char *open_fails(const char *dsn, const lh_db_select *sel, int code)
{
    static lh_error err;
    memset(&err, 0, sizeof err);
    lh_db_reader *r = lh_pg_reader_open(dsn, sel, &err);
    if (r) {
        r->close(r);
        fail_msg("open succeeded, expected code %d", code);
    }
    if (err.code != code)
        fail_msg("code %d, expected %d: %s", err.code, code, err.message);
    assert_no_password(&err);
    return err.message;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' not in '%s'", needle, hay);
}

/* "INTEGER", "DECIMAL(4,2)", "LIST(VARCHAR)" ... */
static void type_str(duckdb_logical_type t, char *buf, size_t cap)
{
    static const struct {
        duckdb_type id;
        const char *name;
    } names[] = {
        {DUCKDB_TYPE_BOOLEAN, "BOOLEAN"},     {DUCKDB_TYPE_SMALLINT, "SMALLINT"},
        {DUCKDB_TYPE_INTEGER, "INTEGER"},     {DUCKDB_TYPE_BIGINT, "BIGINT"},
        {DUCKDB_TYPE_FLOAT, "FLOAT"},         {DUCKDB_TYPE_DOUBLE, "DOUBLE"},
        {DUCKDB_TYPE_VARCHAR, "VARCHAR"},     {DUCKDB_TYPE_BLOB, "BLOB"},
        {DUCKDB_TYPE_DATE, "DATE"},           {DUCKDB_TYPE_TIME, "TIME"},

        {DUCKDB_TYPE_TIMESTAMP, "TIMESTAMP"}, {DUCKDB_TYPE_TIMESTAMP_TZ, "TIMESTAMPTZ"},
        {DUCKDB_TYPE_INTERVAL, "INTERVAL"},   {DUCKDB_TYPE_UUID, "UUID"},
    };
    duckdb_type id = duckdb_get_type_id(t);
    if (id == DUCKDB_TYPE_DECIMAL) {
        snprintf(buf, cap, "DECIMAL(%u,%u)", duckdb_decimal_width(t), duckdb_decimal_scale(t));
        return;
    }
    if (id == DUCKDB_TYPE_LIST) {
        duckdb_logical_type c = duckdb_list_type_child_type(t);
        char inner[64];
        type_str(c, inner, sizeof inner);
        duckdb_destroy_logical_type(&c);
        snprintf(buf, cap, "LIST(%s)", inner);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].id == id) {
            snprintf(buf, cap, "%s", names[i].name);
            return;
        }
    snprintf(buf, cap, "type#%d", (int)id);
}

static bool is_valid(duckdb_vector v, idx_t row)
{
    uint64_t *validity = duckdb_vector_get_validity(v);
    return !validity || duckdb_validity_row_is_valid(validity, row);
}

static void put_hex(lh_buf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lh_buf_printf(b, "%02x", s[i]);
}

static void put_i128(lh_buf *b, __int128 v, int scale)
{
    char digits[64];
    int n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (n <= scale)
        digits[n++] = '0';
    if (neg)
        lh_buf_putc(b, '-');
    for (int i = n - 1; i >= 0; i--) {
        lh_buf_putc(b, digits[i]);
        if (i == scale && scale > 0)
            lh_buf_putc(b, '.');
    }
}

/* The canonical text of row `row` of v (type t): what the server's canon expressions of
 * canon_sql() produce for the same value. NULL is "\N". */
static void canon(duckdb_vector v, duckdb_logical_type t, idx_t row, lh_buf *b)
{
    if (!is_valid(v, row)) {
        lh_buf_puts(b, "\\N");
        return;
    }
    void *d = duckdb_vector_get_data(v);
    switch (duckdb_get_type_id(t)) {
    case DUCKDB_TYPE_BOOLEAN:
        lh_buf_puts(b, ((bool *)d)[row] ? "true" : "false");
        break;
    case DUCKDB_TYPE_SMALLINT:
        lh_buf_printf(b, "%d", ((int16_t *)d)[row]);
        break;
    case DUCKDB_TYPE_INTEGER:
        lh_buf_printf(b, "%d", ((int32_t *)d)[row]);
        break;
    case DUCKDB_TYPE_BIGINT:
        lh_buf_printf(b, "%lld", (long long)((int64_t *)d)[row]);
        break;
    case DUCKDB_TYPE_FLOAT: {
        uint32_t bits;
        memcpy(&bits, (float *)d + row, 4);
        lh_buf_printf(b, "%08x", bits);
        break;
    }
    case DUCKDB_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, (double *)d + row, 8);
        lh_buf_printf(b, "%016llx", (unsigned long long)bits);
        break;
    }
    case DUCKDB_TYPE_DECIMAL: {
        __int128 u;
        switch (duckdb_decimal_internal_type(t)) {
        case DUCKDB_TYPE_SMALLINT:
            u = ((int16_t *)d)[row];
            break;
        case DUCKDB_TYPE_INTEGER:
            u = ((int32_t *)d)[row];
            break;
        case DUCKDB_TYPE_BIGINT:
            u = ((int64_t *)d)[row];
            break;
        default: {
            duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
            u = (__int128)(((unsigned __int128)(uint64_t)h.upper << 64) | h.lower);
        }
        }
        put_i128(b, u, duckdb_decimal_scale(t));
        break;
    }
    case DUCKDB_TYPE_VARCHAR: {
        duckdb_string_t *s = (duckdb_string_t *)d + row;
        lh_buf_append(b, duckdb_string_t_data(s), duckdb_string_t_length(*s));
        break;
    }
    case DUCKDB_TYPE_BLOB: {
        duckdb_string_t *s = (duckdb_string_t *)d + row;
        put_hex(b, (const unsigned char *)duckdb_string_t_data(s), duckdb_string_t_length(*s));
        break;
    }
    case DUCKDB_TYPE_DATE: {
        int32_t days = ((duckdb_date *)d)[row].days;
        if (days == INT32_MAX)
            lh_buf_puts(b, "infinity");
        else if (days == -INT32_MAX)
            lh_buf_puts(b, "-infinity");
        else
            lh_buf_printf(b, "%d", days);
        break;
    }
    case DUCKDB_TYPE_TIMESTAMP:
    case DUCKDB_TYPE_TIMESTAMP_TZ: {
        int64_t us = ((duckdb_timestamp *)d)[row].micros;
        if (us == INT64_MAX)
            lh_buf_puts(b, "infinity");
        else if (us == -INT64_MAX)
            lh_buf_puts(b, "-infinity");
        else
            lh_buf_printf(b, "%lld", (long long)us);
        break;
    }
    case DUCKDB_TYPE_TIME:
        lh_buf_printf(b, "%lld", (long long)((duckdb_time *)d)[row].micros);
        break;
    case DUCKDB_TYPE_INTERVAL: {
        duckdb_interval iv = ((duckdb_interval *)d)[row];
        lh_buf_printf(b, "%d %d %lld", iv.months, iv.days, (long long)iv.micros);
        break;
    }
    case DUCKDB_TYPE_UUID: {
        duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
        unsigned char bytes[16];
        uint64_t hi = (uint64_t)h.upper ^ (UINT64_C(1) << 63), lo = h.lower;
        for (int i = 0; i < 8; i++) {
            bytes[i] = (unsigned char)(hi >> (56 - 8 * i));
            bytes[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
        }
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                lh_buf_putc(b, '-');
            lh_buf_printf(b, "%02x", bytes[i]);
        }
        break;
    }
    case DUCKDB_TYPE_LIST: {
        duckdb_list_entry e = ((duckdb_list_entry *)d)[row];
        duckdb_vector child = duckdb_list_vector_get_child(v);
        duckdb_logical_type ct = duckdb_list_type_child_type(t);
        lh_buf_putc(b, '{');
        for (idx_t k = 0; k < e.length; k++) {
            if (k)
                lh_buf_putc(b, ',');
            canon(child, ct, e.offset + k, b);
        }
        lh_buf_putc(b, '}');
        duckdb_destroy_logical_type(&ct);
        break;
    }
    default:
        fail_msg("no canonical form for DuckDB type %d", (int)duckdb_get_type_id(t));
    }
}

/* How the server renders a value of a column for canon() to compare (x: the value). */
typedef enum { C_TEXT, C_PAD, C_F4, C_F8, C_HEX, C_DATE, C_TS, C_TIME, C_INTERVAL } canon_kind;

static char *canon_sql(canon_kind k, const char *x)
{
    char *e;
    switch (k) {
    case C_PAD:
        e = lh_xasprintf("concat(%s)", x);
        break; /* bpchar's output keeps padding */
    case C_F4:
        e = lh_xasprintf("encode(float4send(%s), 'hex')", x);
        break;
    case C_F8:
        e = lh_xasprintf("encode(float8send(%s), 'hex')", x);
        break;
    case C_HEX:
        e = lh_xasprintf("encode(%s, 'hex')", x);
        break;
    case C_DATE:
        e = lh_xasprintf("CASE WHEN isfinite(%s) THEN (%s - DATE '1970-01-01')::text "
                         "ELSE %s::text END",
                         x, x, x);
        break;
    case C_TS:
        e = lh_xasprintf("CASE WHEN isfinite(%s) THEN (extract(epoch FROM %s) * 1000000)"
                         "::bigint::text ELSE %s::text END",
                         x, x, x);
        break;
    case C_TIME:
        e = lh_xasprintf("(extract(epoch FROM %s) * 1000000)::bigint::text", x);
        break;
    case C_INTERVAL:
        e = lh_xasprintf("(extract(year FROM %s) * 12 + extract(month FROM %s))::bigint::text "
                         "|| ' ' || extract(day FROM %s)::bigint::text || ' ' || "
                         "((extract(hour FROM %s) * 3600 + extract(minute FROM %s) * 60) * "
                         "1000000 + extract(microseconds FROM %s))::bigint::text",
                         x, x, x, x, x, x);
        break;
    default:
        e = lh_xasprintf("%s::text", x);
    }
    char *out = lh_xasprintf("CASE WHEN %s IS NULL THEN '\\N' ELSE %s END", x, e);
    free(e);
    return out;
}

/* ---------------------------------------------------------------- the fixture */

typedef struct fixture_col {
    const char *name, *sqltype, *duck, *source_type;
    canon_kind canon;
    bool is_array;
} fixture_col;

static const fixture_col g_cols[] = {
    {"id", "integer", "INTEGER", "integer", C_TEXT, false},
    {"i2", "smallint", "SMALLINT", "smallint", C_TEXT, false},
    {"i4", "integer", "INTEGER", "integer", C_TEXT, false},
    {"i8", "bigint", "BIGINT", "bigint", C_TEXT, false},
    {"f4", "real", "FLOAT", "real", C_F4, false},
    {"f8", "double precision", "DOUBLE", "double precision", C_F8, false},
    {"n4", "numeric(4,2)", "DECIMAL(4,2)", "numeric(4,2)", C_TEXT, false},
    {"n9", "numeric(9,3)", "DECIMAL(9,3)", "numeric(9,3)", C_TEXT, false},
    {"n18", "numeric(18,6)", "DECIMAL(18,6)", "numeric(18,6)", C_TEXT, false},
    {"n38", "numeric(38,10)", "DECIMAL(38,10)", "numeric(38,10)", C_TEXT, false},
    {"n38i", "numeric(38,0)", "DECIMAL(38,0)", "numeric(38,0)", C_TEXT, false},
    {"nfree", "numeric", "VARCHAR", "numeric", C_TEXT, false},
    {"nbig", "numeric(50,5)", "VARCHAR", "numeric(50,5)", C_TEXT, false},
    {"nneg", "numeric(3,-2)", "VARCHAR", "numeric(3,-2)", C_TEXT, false},
    {"nover", "numeric(3,5)", "VARCHAR", "numeric(3,5)", C_TEXT, false},
    {"b", "boolean", "BOOLEAN", "boolean", C_TEXT, false},
    {"t", "text", "VARCHAR", "text", C_TEXT, false},
    {"vc", "varchar(20)", "VARCHAR", "character varying(20)", C_TEXT, false},
    {"ch", "char(5)", "VARCHAR", "character(5)", C_PAD, false},
    {"nm", "name", "VARCHAR", "name", C_TEXT, false},
    {"ci", "citext", "VARCHAR", "citext", C_TEXT, false},
    {"d", "date", "DATE", "date", C_DATE, false},
    {"ts", "timestamp", "TIMESTAMP", "timestamp without time zone", C_TS, false},
    {"tstz", "timestamptz", "TIMESTAMPTZ", "timestamp with time zone", C_TS, false},
    {"tm", "time", "TIME", "time without time zone", C_TIME, false},
    /* DuckDB 1.4's Parquet writer drops a TIMETZ's offset: the text keeps it */
    {"ttz", "timetz", "VARCHAR", "time with time zone", C_TEXT, false},
    {"iv", "interval", "INTERVAL", "interval", C_INTERVAL, false},
    {"u", "uuid", "UUID", "uuid", C_TEXT, false},
    {"j", "json", "VARCHAR", "json", C_TEXT, false},
    {"jb", "jsonb", "VARCHAR", "jsonb", C_TEXT, false},
    {"by", "bytea", "BLOB", "bytea", C_HEX, false},
    {"mo", "lh_mood", "VARCHAR", "lh_mood", C_TEXT, false},
    {"dom", "lh_posint", "INTEGER", "integer", C_TEXT, false},
    {"ip", "inet", "VARCHAR", "inet", C_TEXT, false},
    {"mac", "macaddr", "VARCHAR", "macaddr", C_TEXT, false},
    {"mon", "money", "VARCHAR", "money", C_TEXT, false},
    {"rng", "int4range", "VARCHAR", "int4range", C_TEXT, false},
    {"pt", "point", "VARCHAR", "point", C_TEXT, false},
    {"bits", "bit(4)", "VARCHAR", "bit(4)", C_TEXT, false},
    {"x", "xml", "VARCHAR", "xml", C_TEXT, false},
    {"tsv", "tsvector", "VARCHAR", "tsvector", C_TEXT, false},
    {"ia", "integer[]", "LIST(INTEGER)", "integer[]", C_TEXT, true},
    {"i8a", "bigint[]", "LIST(BIGINT)", "bigint[]", C_TEXT, true},
    {"ta", "text[]", "LIST(VARCHAR)", "text[]", C_TEXT, true},
    {"na", "numeric(10,2)[]", "LIST(DECIMAL(10,2))", "numeric(10,2)[]", C_TEXT, true},
    {"nfa", "numeric[]", "LIST(VARCHAR)", "numeric[]", C_TEXT, true},
    {"f8a", "float8[]", "LIST(DOUBLE)", "double precision[]", C_F8, true},
    {"da", "date[]", "LIST(DATE)", "date[]", C_DATE, true},
    {"ba", "boolean[]", "LIST(BOOLEAN)", "boolean[]", C_TEXT, true},
    {"tsa", "timestamptz[]", "LIST(TIMESTAMPTZ)", "timestamp with time zone[]", C_TS, true},
    {"ua", "uuid[]", "LIST(UUID)", "uuid[]", C_TEXT, true},
    {"ma", "lh_mood[]", "LIST(VARCHAR)", "lh_mood[]", C_TEXT, true},
    {"doma", "lh_posint[]", "LIST(INTEGER)", "lh_posint[]", C_TEXT, true},
    {"ipa", "inet[]", "LIST(VARCHAR)", "inet[]", C_TEXT, true},
    {"bya", "bytea[]", "LIST(BLOB)", "bytea[]", C_HEX, true},
};
#define NCOLS (sizeof g_cols / sizeof *g_cols)

/* Rows: (1) ordinary values with multi-byte text, (2) NULL everywhere, (3) minimums and
 * empty values, (4) maximums and a 1.2 MB text, (5) NaN, infinities and control chars. */
static const char *g_rows[] = {
    "INSERT INTO lh_types VALUES (1, 12, 123456, 1234567890123, 1.5, 3.141592653589793, "
    "12.34, 123456.789, 123456.789012, '1234567890123456789012345678.0123456789', "
    "'12345678901234567890123456789012345678', "
    "'3.14159265358979323846264338327950288419716939937510', "
    "'123456789012345678901234567890123456789012345.12345', 12345, 0.00123, true, "
    "'Zoë 😀 漢字 e' || chr(769), 'héllo', 'ab', 'a_name', 'MiXeD Case', '2024-02-29', "
    "'2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+05:30', '12:34:56.789012', "
    "'12:34:56.789012+05:30', '1 year 2 mons 3 days 04:05:06.789012', "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1, \"a\": [1, 2.50, \"x\"]}', "
    "'{\"b\": 1, \"a\": [1, 2.50, \"x\"]}', '\\xdeadbeef00', 'happy 😀', 5, "
    "'192.168.0.1/24', '08:00:2b:01:02:03', '12.34', '[1,10)', '(1.5,2.25)', B'1010', "
    "'<a>é</a>', 'a fat cat', '{1,NULL,3}', '{9223372036854775807,NULL}', "
    "'{\"a\",NULL,\"\",\"é 😀\"}', '{1.50,NULL,-2.25}', '{1.5,NULL,3.25}', '{-0.5,NULL,-0}', "
    "'{2024-01-01,NULL,infinity}', '{t,f,NULL}', '{\"2024-01-01 00:00:00+00\",NULL}', "
    "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{sad,NULL,ok}', '{1,NULL,2}', "
    "'{10.0.0.1,NULL}', '{\"\\\\x00ff\",NULL}')",
    "INSERT INTO lh_types (id) VALUES (2)",
    "INSERT INTO lh_types VALUES (3, -32768, -2147483648, -9223372036854775808, '-Infinity', "
    "'-Infinity', -99.99, -999999.999, -999999999999.999999, "
    "'-9999999999999999999999999999.9999999999', '-99999999999999999999999999999999999999', "
    "'-0.000000000000000000000000000000000000000001', '-1', -99900, 0.00001, false, '', '', "
    "'', '', '', '4713-11-24 BC', '4713-11-24 00:00:00 BC', '4713-11-24 00:00:00+00 BC', "
    "'00:00:00', '00:00:00-15:59', '00:00:00', "
    "'00000000-0000-0000-0000-000000000000', '\"\"', '[]', '\\x', 'sad', 1, '::1', "
    "'00:00:00:00:00:00', '-0.01', 'empty', '(0,0)', B'0000', '', '', '{}', '{}', '{}', "
    "'{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
    "INSERT INTO lh_types (id, i2, i4, i8, f4, f8, n4, n9, n18, n38, n38i, nfree, nbig, b, t, "
    "vc, ch, nm, ci, d, ts, tstz, tm, ttz, iv, u, ia, tsa) VALUES (4, 32767, 2147483647, "
    "9223372036854775807, 'Infinity', 'Infinity', 99.99, 999999.999, 999999999999.999999, "
    "'9999999999999999999999999999.9999999999', '99999999999999999999999999999999999999', "
    "'NaN', '99999999999999999999999999999999999999999999.99999', true, "
    "repeat('é漢😀e' || chr(769), 100000), repeat('ü', 20), 'abcde', repeat('n', 63), "
    "'Ünïcødé', '5874897-12-31', '294246-12-31 23:59:59.999999', "
    "'294246-12-31 23:59:59.999999+00', '24:00:00', '23:59:59.999999+15:59', "
    "'178000000 years 11 mons 2147483647 days 100000:59:59.999999', "
    "'ffffffff-ffff-ffff-ffff-ffffffffffff', ARRAY(SELECT generate_series(1, 3000)), "
    "'{infinity,-infinity}')",
    "INSERT INTO lh_types (id, f4, f8, n18, n38, nfree, t, d, ts, tstz, iv, ia) VALUES (5, "
    "'NaN', '-0', 0.000001, 0.0000000001, 'Infinity', "
    "E'tab\\there\\nnewline \"q\" \\\\ back', 'infinity', 'infinity', '-infinity', "
    "'36:00:00', '[0:1]={7,8}')",
};

static int setup(void **state)
{
    (void)state;
    g_dsn = getenv("LH_TEST_PG_DSN");
    if (!g_dsn || !*g_dsn) {
        fprintf(stderr, "LH_TEST_PG_DSN is not set: run this suite through "
                        "tests/dbservers.py (ctest does)\n");
        return -1;
    }
    /* the password of postgresql://user:password@host... */
    const char *at = strrchr(g_dsn, '@'), *colon = strchr(g_dsn + strlen("postgresql://"), ':');
    if (at && colon && colon < at)
        snprintf(g_password, sizeof g_password, "%.*s", (int)(at - colon - 1), colon + 1);
    g_admin = PQconnectdb(g_dsn);
    if (PQstatus(g_admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to the test server: %s\n", PQerrorMessage(g_admin));
        return -1;
    }
    PGresult *res = PQexec(g_admin, "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; "
                                    "SET extra_float_digits TO 3; SET client_min_messages TO "
                                    "warning");
    PQclear(res);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(g_admin);
    return 0;
}

static void make_fixture(void)
{
    sql("DROP TABLE IF EXISTS lh_types; DROP TYPE IF EXISTS lh_mood CASCADE; "
        "DROP DOMAIN IF EXISTS lh_posint CASCADE; CREATE EXTENSION IF NOT EXISTS citext; "
        "CREATE TYPE lh_mood AS ENUM ('sad', 'ok', 'happy 😀'); "
        "CREATE DOMAIN lh_posint AS integer CHECK (VALUE > 0)");
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "CREATE TABLE lh_types (");
    for (size_t i = 0; i < NCOLS; i++)
        lh_buf_printf(&b, "%s%s %s", i ? ", " : "", g_cols[i].name, g_cols[i].sqltype);
    lh_buf_puts(&b, ")");
    sql(b.data);
    lh_buf_free(&b);
    for (size_t i = 0; i < sizeof g_rows / sizeof *g_rows; i++)
        sql(g_rows[i]);
}

/* The server's canonical text of every cell, rows ordered by id. Caller PQclears. */
static PGresult *expected_cells(void)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SELECT ");
    for (size_t i = 0; i < NCOLS; i++) {
        const fixture_col *c = &g_cols[i];
        char *e;
        if (c->is_array) {
            char *el = canon_sql(c->canon, "e");
            e = lh_xasprintf("CASE WHEN %s IS NULL THEN '\\N' ELSE '{' || coalesce((SELECT "
                             "string_agg(%s, ',' ORDER BY n) FROM unnest(%s) WITH ORDINALITY "
                             "AS u(e, n)), '') || '}' END",
                             c->name, el, c->name);
            free(el);
        } else {
            e = canon_sql(c->canon, c->name);
        }
        lh_buf_printf(&b, "%s%s", i ? ", " : "", e);
        free(e);
    }
    lh_buf_puts(&b, " FROM lh_types ORDER BY id");
    PGresult *res = PQexec(g_admin, b.data);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("expected query failed: %s", PQerrorMessage(g_admin));
    lh_buf_free(&b);
    return res;
}

/* Reads everything, comparing each cell with the server's canonical text. */
static void compare_all(lh_db_reader *r, PGresult *want)
{
    duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
    lh_error err = {0};
    int row = 0;
    lh_buf got;
    lh_buf_init(&got);
    for (;;) {
        if (r->next(r, chunk, &err) != 0)
            fail_msg("next failed: %s", err.message);
        idx_t n = duckdb_data_chunk_get_size(chunk);
        if (n == 0)
            break;
        for (idx_t k = 0; k < n; k++, row++) {
            assert_true(row < PQntuples(want));
            for (size_t i = 0; i < r->ncols; i++) {
                got.len = 0;
                canon(duckdb_data_chunk_get_vector(chunk, i), r->types[i], k, &got);
                const char *w = PQgetvalue(want, row, (int)i);
                size_t wl = (size_t)PQgetlength(want, row, (int)i);
                if (got.len != wl || memcmp(got.data ? got.data : "", w, wl) != 0)
                    fail_msg("row %d column %s: server %.200s (%zu bytes), reader %.200s "
                             "(%zu bytes)",
                             row + 1, r->names[i], w, wl, got.len ? got.data : "", got.len);
            }
        }
    }
    assert_int_equal(row, PQntuples(want));
    assert_int_equal(r->rows, row);
    /* the end is sticky */
    assert_int_equal(r->next(r, chunk, &err), 0);
    assert_int_equal(duckdb_data_chunk_get_size(chunk), 0);
    lh_buf_free(&got);
    duckdb_destroy_data_chunk(&chunk);
}

/* ---------------------------------------------------------------- tests */

/* Opens on a table, reads until an error, returns it. */
static int read_until_error(lh_db_reader *r, lh_error *err)
{
    duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
    int rc;
    for (;;) {
        rc = r->next(r, chunk, err);
        if (rc != 0 || duckdb_data_chunk_get_size(chunk) == 0)
            break;
    }
    duckdb_destroy_data_chunk(&chunk);
    return rc;
}

static void test_every_type_value_by_value(void **state)
{
    (void)state;
    make_fixture();
    lh_db_reader *r = open_ok(NULL, "SELECT * FROM lh_types ORDER BY id;  \n");
    assert_int_equal(r->ncols, NCOLS);
    for (size_t i = 0; i < NCOLS; i++) {
        char t[64];
        type_str(r->types[i], t, sizeof t);
        if (strcmp(r->names[i], g_cols[i].name) != 0 || strcmp(t, g_cols[i].duck) != 0 ||
            strcmp(r->source_types[i], g_cols[i].source_type) != 0)
            fail_msg("column %zu: %s %s (%s), expected %s %s (%s)", i, r->names[i], t,
                     r->source_types[i], g_cols[i].name, g_cols[i].duck, g_cols[i].source_type);
    }
    PGresult *want = expected_cells();
    compare_all(r, want);
    r->close(r);

    /* the table form reads the same (a fresh table's heap order is insertion order) */
    r = open_ok("public.lh_types", NULL);
    compare_all(r, want);
    r->close(r);
    PQclear(want);
}

static void test_failures_name_the_cause(void **state)
{
    (void)state;
    lh_db_select t = {.table = "lh_nope"};
    const char *m = open_fails(g_dsn, &t, LH_EUPSTREAM);
    assert_contains(m, "unknown table \"lh_nope\"");
    assert_contains(m, "PostgreSQL at 127.0.0.1:");
    assert_contains(m, "/lh_test");

    lh_db_select q = {.query = "SELEC 1"};
    m = open_fails(g_dsn, &q, LH_EUPSTREAM);
    assert_contains(m, "syntax");

    q.query = "SELECT 1; SELECT 2";
    m = open_fails(g_dsn, &q, LH_EINVAL);
    assert_contains(m, "one SELECT statement");

    q.query = "CREATE TABLE lh_never (a int)";
    m = open_fails(g_dsn, &q, LH_EINVAL);
    assert_contains(m, "returns no columns");
    q.query = "SELECT FROM pg_class";
    m = open_fails(g_dsn, &q, LH_EINVAL);
    assert_contains(m, "returns no columns");

    q.query = "SELECT 1; -- a trailing comment";
    m = open_fails(g_dsn, &q, LH_EUPSTREAM);
    assert_contains(m, "valid alone but not as a subquery");
    q.query = "WITH d AS (DELETE FROM lh_nothing RETURNING 1) SELECT * FROM d";
    sql("CREATE TABLE IF NOT EXISTS lh_nothing (a int)");
    m = open_fails(g_dsn, &q, LH_EUPSTREAM);
    assert_contains(m, "valid alone but not as a subquery");

    q.query = " ;; \n";
    m = open_fails(g_dsn, &q, LH_EINVAL);
    assert_contains(m, "empty");

    q.query = "SELECT 1 AS a, 2 AS a";
    m = open_fails(g_dsn, &q, LH_EINVAL);
    assert_contains(m, "two columns named \"a\"");

    q.query = "SELECT no_such_column FROM pg_class";
    m = open_fails(g_dsn, &q, LH_EUPSTREAM);
    assert_contains(m, "unknown column");
    q.query = "SELECT c.relnam FROM pg_class c"; /* the server's hint is passed on */
    m = open_fails(g_dsn, &q, LH_EUPSTREAM);
    assert_contains(m, "(hint: Perhaps you meant");

    /* a write hidden in a function: the read-only transaction refuses it, nothing changes */
    sql("DROP TABLE IF EXISTS lh_keep; CREATE TABLE lh_keep AS SELECT 1 AS a; "
        "CREATE OR REPLACE FUNCTION lh_wipe() RETURNS int LANGUAGE sql AS "
        "'DELETE FROM lh_keep RETURNING 1'");
    lh_db_reader *r = open_ok(NULL, "SELECT lh_wipe()"); /* fails when it runs */
    lh_error rerr = {0};
    assert_int_equal(read_until_error(r, &rerr), LH_EUPSTREAM);
    assert_contains(rerr.message, "read-only transaction");
    r->close(r);
    PGresult *res = PQexec(g_admin, "SELECT count(*) FROM lh_keep");
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);

    /* incremental column that is not in the result */
    lh_db_select inc = {
        .table = "lh_keep", .incremental_column = "updated_at", .watermark = "2024-01-01"};
    m = open_fails(g_dsn, &inc, LH_EUPSTREAM);
    assert_contains(m, "unknown column");
    inc.watermark = NULL;
    m = open_fails(g_dsn, &inc, LH_EUPSTREAM);
    assert_contains(m, "unknown column \"updated_at\"");

    /* names that are not names never reach the server */
    static const char *bad_tables[] = {"a.b.c", ".t", "t.", "", "."};
    for (size_t i = 0; i < sizeof bad_tables / sizeof *bad_tables; i++) {
        lh_db_select bt = {.table = bad_tables[i]};
        open_fails("host=127.0.0.1 port=1", &bt, LH_EINVAL);
    }
    lh_db_select both = {.table = "t", .query = "SELECT 1"};
    open_fails(g_dsn, &both, LH_EINVAL);
    lh_db_select neither = {0};
    open_fails(g_dsn, &neither, LH_EINVAL);

    /* a quoted name with a dot-free schema works, quotes and all */
    sql("DROP TABLE IF EXISTS \"Odd \"\"Name\"; CREATE TABLE \"Odd \"\"Name\" (\"Col\" int); "
        "INSERT INTO \"Odd \"\"Name\" VALUES (7)");
    r = open_ok("public.Odd \"Name", NULL);
    assert_string_equal(r->names[0], "Col");
    r->close(r);
}

static void test_connection_failures(void **state)
{
    (void)state;
    lh_db_select t = {.table = "lh_types"};

    /* authentication: the wrong password is not echoed either */
    const char *at = strrchr(g_dsn, '@');
    char *wrong = lh_xasprintf("postgresql://lh_test:wrongpw-4711%s", at);
    const char *m = open_fails(wrong, &t, LH_EUPSTREAM);
    assert_contains(m, "authentication failed");
    assert_contains(m, "127.0.0.1:");
    assert_null(strstr(m, "wrongpw-4711"));
    free(wrong);

    /* TLS required, the server has none */
    char *tls = lh_xasprintf("%s?sslmode=require", g_dsn);
    m = open_fails(tls, &t, LH_EUPSTREAM);
    assert_contains(m, "TLS is required but unavailable");
    free(tls);

    char *nodb = dsn_with_db("lh_nodb");
    m = open_fails(nodb, &t, LH_EUPSTREAM);
    assert_contains(m, "unknown database or user");
    assert_contains(m, "/lh_nodb");
    free(nodb);

    /* refused: a port nobody listens on */
    char *refused = lh_xasprintf("host=127.0.0.1 port=1 dbname=hr user=u password=%s", g_password);
    m = open_fails(refused, &t, LH_EUPSTREAM);
    assert_contains(m, "connection refused");
    assert_contains(m, "127.0.0.1:1/hr");
    free(refused);

    /* DSNs libpq cannot parse: LH_EINVAL, and the message quotes nothing of them */
    static const char *bad[] = {
        "host=127.0.0.1 password=s3cretpw junk",
        "postgresql://u:s3cretpw@h/db?nonsense_option=1",
        "host='127.0.0.1 password=s3cretpw",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m = open_fails(bad[i], &t, LH_EINVAL);
        assert_null(strstr(m, "s3cretpw"));
        assert_contains(m, "does not parse");
    }
}

static void test_incremental_watermark(void **state)
{
    (void)state;
    sql("DROP TABLE IF EXISTS lh_inc; CREATE TABLE lh_inc (id int, name text, "
        "updated_at timestamptz); INSERT INTO lh_inc VALUES "
        "(1, 'A', '2024-01-01 00:00:00+00'), (2, 'O''Brien', '2024-01-02 00:00:00+00'), "
        "(3, 'Z\\x', '2024-01-03 12:00:00+02')");
    struct {
        const char *column, *watermark;
        int rows;
    } cases[] = {
        {"updated_at", "2024-01-02 00:00:00+00", 1},
        {"updated_at", "2024-01-01", 2},
        {"updated_at", NULL, 3},
        {"name", "O'Brien", 1}, /* the quote is escaped, not interpreted */
        {"name", "Z\\", 1},     /* a backslash too */
        {"name", "'; DROP TABLE lh_inc; --", 3},
        {"id", "2", 1},
        {"id", "99", 0}, /* an empty result: the header and the trailer only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int form = 0; form < 2; form++) {
            lh_db_select sel = {.table = form ? NULL : "lh_inc",
                                .query =
                                    form ? "SELECT id, name, updated_at FROM lh_inc -- c" : NULL,
                                .incremental_column = cases[i].column,
                                .watermark = cases[i].watermark};
            lh_error err = {0};
            lh_db_reader *r = lh_pg_reader_open(g_dsn, &sel, &err);
            if (!r)
                fail_msg("case %zu: %s", i, err.message);
            duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
            int64_t total = 0;
            for (;;) {
                assert_int_equal(r->next(r, chunk, &err), 0);
                if (duckdb_data_chunk_get_size(chunk) == 0)
                    break;
                total += (int64_t)duckdb_data_chunk_get_size(chunk);
            }
            if (total != cases[i].rows)
                fail_msg("case %zu (%s > %s): %lld rows, expected %d", i, cases[i].column,
                         cases[i].watermark ? cases[i].watermark : "(none)", (long long)total,
                         cases[i].rows);
            duckdb_destroy_data_chunk(&chunk);
            r->close(r);
        }
    }
    PGresult *res = PQexec(g_admin, "SELECT count(*) FROM lh_inc");
    assert_string_equal(PQgetvalue(res, 0, 0), "3");
    PQclear(res);
}

static void test_unmappable_values(void **state)
{
    (void)state;
    sql("DROP TABLE IF EXISTS lh_bad; CREATE TABLE lh_bad (id int, n numeric(10,2), "
        "a int[], ts timestamp, iv interval); INSERT INTO lh_bad VALUES (1, 1.5, '{1}', "
        "'2024-01-01', '1 day'), (2, 'NaN', NULL, NULL, NULL), (3, NULL, '{{1,2},{3,4}}', NULL, "
        "NULL), (4, NULL, NULL, '294270-01-01 00:00:00', NULL), (5, NULL, NULL, NULL, "
        "'1 day -00:00:01')");
    struct {
        const char *query, *column, *type, *row;
    } cases[] = {
        {"SELECT id, n FROM lh_bad ORDER BY id", "\"n\" (numeric(10,2))", "numeric", "row 2"},
        {"SELECT id, a FROM lh_bad ORDER BY id", "\"a\" (integer[])", "array_to_json", "row 3"},
        {"SELECT id, ts FROM lh_bad ORDER BY id", "\"ts\" (timestamp without time zone)", "294247",
         "row 4"},
        {"SELECT id, iv FROM lh_bad ORDER BY id", "\"iv\" (interval)", "negative", "row 5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lh_db_reader *r = open_ok(NULL, cases[i].query);
        lh_error err = {0};
        int rc = read_until_error(r, &err);
        if (rc != LH_EINVAL)
            fail_msg("case %zu: %d %s", i, rc, err.message);
        assert_string_equal(lh_error_kind(&err), "unmappable_value");
        assert_contains(err.message, cases[i].column);
        assert_contains(err.message, cases[i].row);
        assert_null(strstr(err.message, "{{1,2}"));
        assert_null(strstr(err.message, "294270"));
        /* the failure is sticky */
        duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
        assert_int_equal(r->next(r, chunk, &err), LH_EINVAL);
        duckdb_destroy_data_chunk(&chunk);
        r->close(r);
    }

    /* bytes that are not UTF-8 in a SQL_ASCII database */
    PGresult *res = PQexec(g_admin, "DROP DATABASE IF EXISTS lh_ascii");
    PQclear(res);
    sql("CREATE DATABASE lh_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
        "TEMPLATE template0");
    char *dsn = dsn_with_db("lh_ascii");
    PGconn *c = PQconnectdb(dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    res = PQexec(c, "CREATE TABLE raw (id int, t text); INSERT INTO raw VALUES (1, 'ok'), "
                    "(2, E'caf\\xe9')");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(c);
    lh_db_select sel = {.query = "SELECT * FROM raw ORDER BY id"};
    lh_error err = {0};
    lh_db_reader *r = lh_pg_reader_open(dsn, &sel, &err);
    if (!r)
        fail_msg("%s", err.message);
    int rc = read_until_error(r, &err);
    if (rc != LH_EINVAL)
        fail_msg("%d %s", rc, err.message);
    assert_string_equal(lh_error_kind(&err), "unmappable_value");
    assert_contains(err.message, "row 2 holds text that is not valid UTF-8");
    r->close(r);
    free(dsn);
}

static void test_query_error_mid_stream(void **state)
{
    (void)state;
    lh_db_reader *r =
        open_ok(NULL, "SELECT g, 1 / (g - 7000) AS inv FROM generate_series(1, 10000) g");
    lh_error err = {0};
    assert_int_equal(read_until_error(r, &err), LH_EUPSTREAM);
    assert_contains(err.message, "the query failed after");
    assert_contains(err.message, "division by zero");
    r->close(r);
}

/* A snapshot: rows committed after open are not read. */
static void test_one_snapshot(void **state)
{
    (void)state;
    sql("DROP TABLE IF EXISTS lh_snap; CREATE TABLE lh_snap AS SELECT g AS id FROM "
        "generate_series(1, 100) g");
    lh_db_reader *r = open_ok("lh_snap", NULL);
    sql("INSERT INTO lh_snap SELECT g FROM generate_series(101, 200) g");
    lh_error err = {0};
    assert_int_equal(read_until_error(r, &err), 0);
    assert_int_equal(r->rows, 100);
    r->close(r);
}

/* The session the reader runs in: our defaults, which the DSN may override. */
static void test_session_settings(void **state)
{
    (void)state;
    static const char q[] = "SELECT current_setting('application_name') || ' ' || "
                            "current_setting('TimeZone') || ' ' || "
                            "current_setting('transaction_read_only') || ' ' || "
                            "current_setting('transaction_isolation') || ' ' || "
                            "current_setting('client_encoding') AS s";
    struct {
        const char *suffix, *want;
    } cases[] = {
        {"", "lakehouse UTC on repeatable read UTF8"},
        {"?application_name=hr_sync&client_encoding=LATIN1", "hr_sync UTC on repeatable read UTF8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dsn = lh_xasprintf("%s%s", g_dsn, cases[i].suffix);
        lh_db_select sel = {.query = q};
        lh_error err = {0};
        lh_db_reader *r = lh_pg_reader_open(dsn, &sel, &err);
        if (!r)
            fail_msg("%s", err.message);
        duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
        assert_int_equal(r->next(r, chunk, &err), 0);
        assert_int_equal(duckdb_data_chunk_get_size(chunk), 1);
        lh_buf got;
        lh_buf_init(&got);
        canon(duckdb_data_chunk_get_vector(chunk, 0), r->types[0], 0, &got);
        assert_string_equal(got.data, cases[i].want);
        lh_buf_free(&got);
        duckdb_destroy_data_chunk(&chunk);
        r->close(r);
        free(dsn);
    }
}

/* The decoders against bytes no honest server sends: refused, never read past, never a
 * huge allocation. No server needed. */
static void test_decoders_refuse_malformed_values(void **state)
{
    (void)state;
    pg_col i4 = {.kind = PGV_INT4}, arr = {.kind = PGV_INT4, .is_array = true},
           num = {.kind = PGV_NUMERIC, .precision = 10, .scale = 2}, jb = {.kind = PGV_JSONB},
           ts = {.kind = PGV_TIMESTAMP};
    num.vt = lh_pg_kind_type(&num);
    duckdb_logical_type int_type = duckdb_create_logical_type(DUCKDB_TYPE_INTEGER);
    duckdb_logical_type types[5] = {duckdb_create_logical_type(DUCKDB_TYPE_INTEGER),
                                    duckdb_create_list_type(int_type), lh_pg_kind_type(&num),
                                    duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR),
                                    duckdb_create_logical_type(DUCKDB_TYPE_TIMESTAMP)};
    duckdb_destroy_logical_type(&int_type);
    duckdb_data_chunk chunk = duckdb_create_data_chunk(types, 5);
    duckdb_vector v[5];
    for (int i = 0; i < 5; i++)
        v[i] = duckdb_data_chunk_get_vector(chunk, (idx_t)i);

    static const char four[4] = {0, 0, 0, 7};
    assert_int_equal(lh_pg_decode_value(&i4, v[0], 0, four, 3), DEC_MALFORMED);
    assert_int_equal(lh_pg_decode_value(&i4, v[0], 0, four, 4), DEC_OK);
    assert_int_equal(((int32_t *)duckdb_vector_get_data(v[0]))[0], 7);

    /* one dimension claiming 2^30 elements in a 24-byte message */
    static const char big[24] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0x40, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(lh_pg_decode_array(&arr, v[1], 0, big, 24), DEC_MALFORMED);
    /* two dimensions: unmappable, not malformed */
    static const char two[12] = {0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23};
    assert_int_equal(lh_pg_decode_array(&arr, v[1], 0, two, 12), DEC_ARRAY_DIMS);

    /* numeric: five digits announced, none sent; NaN; 1.5 */
    static const char short_num[8] = {0, 5, 0, 0, 0, 0, 0, 2};
    assert_int_equal(lh_pg_decode_value(&num, v[2], 0, short_num, 8), DEC_MALFORMED);
    static const char nan[8] = {0, 0, 0, 0, (char)0xC0, 0, 0, 0};
    assert_int_equal(lh_pg_decode_value(&num, v[2], 0, nan, 8), DEC_NUMERIC_SPECIAL);
    static const char one_five[12] = {0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, (char)0x88};
    assert_int_equal(lh_pg_decode_value(&num, v[2], 0, one_five, 12), DEC_OK);
    /* 1.5 as numeric(10,0) would need a digit past the scale */
    pg_col num0 = {.kind = PGV_NUMERIC, .precision = 10, .scale = 0};
    num0.vt = lh_pg_kind_type(&num0);
    assert_int_equal(lh_pg_decode_value(&num0, v[2], 0, one_five, 12), DEC_NUMERIC_RANGE);
    duckdb_destroy_logical_type(&num0.vt);

    /* jsonb: an unknown version; text that is not UTF-8 */
    static const char jb2[3] = {2, '{', '}'};
    assert_int_equal(lh_pg_decode_value(&jb, v[3], 0, jb2, 3), DEC_MALFORMED);
    static const char bad_utf8[3] = {1, (char)0xC3, '('};
    assert_int_equal(lh_pg_decode_value(&jb, v[3], 0, bad_utf8, 3), DEC_NOT_UTF8);

    /* a timestamp PostgreSQL holds and DuckDB does not (294270 AD) */
    int64_t far = htobe64((uint64_t)INT64_C(9223000000000000000));
    assert_int_equal(lh_pg_decode_value(&ts, v[4], 0, (const char *)&far, 8), DEC_TIMESTAMP_RANGE);

    duckdb_destroy_data_chunk(&chunk);
    for (int i = 0; i < 5; i++)
        duckdb_destroy_logical_type(&types[i]);
    duckdb_destroy_logical_type(&num.vt);
}

/* A NOTICE raised while the query runs (it may carry data) is not printed by libpq. */
static void test_notices_stay_off_stderr(void **state)
{
    (void)state;
    sql("CREATE OR REPLACE FUNCTION lh_noisy() RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE NOTICE 'lh-notice-payload'; RETURN 1; END $$");
    char path[] = "/tmp/lh-pg-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    lh_db_reader *r = open_ok(NULL, "SELECT lh_noisy() AS n");
    lh_error err = {0};
    int rc = read_until_error(r, &err);
    r->close(r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    char buf[4096] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n >= 0);
    assert_null(strstr(buf, "lh-notice-payload"));
}

static void *interrupt_later(void *arg)
{
    lh_db_reader *r = arg;
    usleep(300 * 1000);
    r->interrupt(r);
    r->interrupt(r); /* idempotent */
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_interrupt_from_another_thread(void **state)
{
    (void)state;
    /* the first rows come at once, then the server sleeps for a minute */
    lh_db_reader *r = open_ok(NULL, "SELECT g, CASE WHEN g = 3000 THEN pg_sleep(60)::text END "
                                    "AS z FROM generate_series(1, 5000) g");
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, interrupt_later, r);
    lh_error err = {0};
    int rc = read_until_error(r, &err);
    double took = now_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(rc, LH_ECANCELLED);
    assert_contains(err.message, "cancelled after");
    if (took > 5.0)
        fail_msg("next() took %.1f s to notice the interrupt", took);
    assert_true(r->rows >= 2048); /* what came before the sleep was delivered */
    r->close(r);
}

static void test_server_gone_mid_stream(void **state)
{
    (void)state;
    lh_db_reader *r = open_ok(NULL, "SELECT g AS lh_die_marker, CASE WHEN g = 5000 THEN "
                                    "pg_sleep(60)::text END AS z FROM generate_series(1, 8000) g");
    duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
    lh_error err = {0};
    assert_int_equal(r->next(r, chunk, &err), 0);
    assert_int_equal(duckdb_data_chunk_get_size(chunk), duckdb_vector_size());
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
        "'COPY%lh_die_marker%' AND pid <> pg_backend_pid()");
    int rc;
    do
        rc = r->next(r, chunk, &err);
    while (rc == 0 && duckdb_data_chunk_get_size(chunk) > 0);
    assert_int_equal(rc, LH_EUPSTREAM);
    assert_contains(err.message, "the server closed the connection after");
    assert_no_password(&err);
    duckdb_destroy_data_chunk(&chunk);
    r->close(r);
}

static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* 200k rows with a list column stream through one chunk: the heap does not grow with the
 * rows read (a reader that buffered the result would hold ~30 MB here). */
static void test_big_table_bounded_memory(void **state)
{
    (void)state;
    sql("DROP TABLE IF EXISTS lh_big; CREATE TABLE lh_big AS SELECT g AS id, "
        "md5(g::text) || md5((g * 7)::text) AS t, g * 1.25 AS d, ARRAY[g, -g, NULL] AS a "
        "FROM generate_series(1, 200000) g");
    lh_db_reader *r = open_ok("lh_big", NULL);
    duckdb_data_chunk chunk = duckdb_create_data_chunk(r->types, r->ncols);
    lh_error err = {0};
    size_t after_warmup = 0, peak = 0;
    long long sum = 0, list_sum = 0;
    int chunks = 0;
    for (;;) {
        assert_int_equal(r->next(r, chunk, &err), 0);
        idx_t n = duckdb_data_chunk_get_size(chunk);
        if (n == 0)
            break;
        int32_t *id = duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 0));
        duckdb_vector lv = duckdb_data_chunk_get_vector(chunk, 3);
        duckdb_list_entry *le = duckdb_vector_get_data(lv);
        duckdb_vector child = duckdb_list_vector_get_child(lv);
        int32_t *cd = duckdb_vector_get_data(child);
        for (idx_t k = 0; k < n; k++) {
            sum += id[k];
            assert_int_equal(le[k].length, 3);
            list_sum += cd[le[k].offset] + cd[le[k].offset + 1];
            assert_false(is_valid(child, le[k].offset + 2));
        }
        /* the list child is reset per chunk, not accumulated */
        assert_int_equal(duckdb_list_vector_get_size(lv), 3 * n);
        if (++chunks == 5)
            after_warmup = heap_in_use();
        if (chunks > 5 && heap_in_use() > peak)
            peak = heap_in_use();
    }
    assert_int_equal(r->rows, 200000);
    assert_true(sum == 200000LL * 200001LL / 2);
    assert_true(list_sum == 0);
    if (peak > after_warmup + 1024 * 1024)
        fail_msg("heap grew by %zu bytes over %d chunks", peak - after_warmup, chunks - 5);
    duckdb_destroy_data_chunk(&chunk);
    r->close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_value_by_value),
        cmocka_unit_test(test_failures_name_the_cause),
        cmocka_unit_test(test_connection_failures),
        cmocka_unit_test(test_incremental_watermark),
        cmocka_unit_test(test_unmappable_values),
        cmocka_unit_test(test_query_error_mid_stream),
        cmocka_unit_test(test_one_snapshot),
        cmocka_unit_test(test_decoders_refuse_malformed_values),
        cmocka_unit_test(test_session_settings),
        cmocka_unit_test(test_notices_stay_off_stderr),
        cmocka_unit_test(test_interrupt_from_another_thread),
        cmocka_unit_test(test_server_gone_mid_stream),
        cmocka_unit_test(test_big_table_bounded_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
