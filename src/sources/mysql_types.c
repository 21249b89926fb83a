/*
 * mysql_types.c: the MySQL / MariaDB type mapping (docs/INGEST.md, "MySQL and MariaDB type
 * mapping") and the conversion of the text protocol's values into DuckDB vectors.
 *
 * The mapping reads only the field's metadata (type code, display length, decimals, flags,
 * character set, and MariaDB's extended metadata). The conversions parse the exact text the
 * server prints for each type, in C, without locale or libc date functions; text that does
 * not parse as its type is refused (-1), never guessed at.
 */
#include "mysql_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A static table of the integer types: their names and the DuckDB types they become. */
static const struct {
    enum enum_field_types type;
    const char *name;
    lh_mysql_col_kind is_signed, is_unsigned;
    duckdb_type duck_signed, duck_unsigned;
} int_types[] = {
    {MYSQL_TYPE_TINY, "tinyint", LH_MYCOL_INT8, LH_MYCOL_UINT8, DUCKDB_TYPE_TINYINT,
     DUCKDB_TYPE_UTINYINT},
    {MYSQL_TYPE_SHORT, "smallint", LH_MYCOL_INT16, LH_MYCOL_UINT16, DUCKDB_TYPE_SMALLINT,
     DUCKDB_TYPE_USMALLINT},
    {MYSQL_TYPE_INT24, "mediumint", LH_MYCOL_INT32, LH_MYCOL_UINT32, DUCKDB_TYPE_INTEGER,
     DUCKDB_TYPE_UINTEGER},
    {MYSQL_TYPE_LONG, "int", LH_MYCOL_INT32, LH_MYCOL_UINT32, DUCKDB_TYPE_INTEGER,
     DUCKDB_TYPE_UINTEGER},
    {MYSQL_TYPE_LONGLONG, "bigint", LH_MYCOL_INT64, LH_MYCOL_UINT64, DUCKDB_TYPE_BIGINT,
     DUCKDB_TYPE_UBIGINT},
};

/* True when the field's extended metadata (MariaDB 10.5+) has attribute `attr` equal to
 * `want`; when it has one at all, *name (if not NULL) gets a copy (caller frees). */
static bool field_attr_is(const MYSQL_FIELD *f, enum mariadb_field_attr_t attr, const char *want,
                          char **name)
{
    MARIADB_CONST_STRING s = {0};
    if (mariadb_field_attr(&s, f, attr) != 0 || !s.str || s.length == 0)
        return false;
    if (name) {
        *name = lh_xmalloc(s.length + 1);
        memcpy(*name, s.str, s.length);
        (*name)[s.length] = '\0';
    }
    return want && s.length == strlen(want) && strncasecmp(s.str, want, s.length) == 0;
}

void lh_mysql_map_field(const MYSQL_FIELD *f, lh_mysql_col *col, duckdb_logical_type *type,
                        char **source_type)
{
    bool is_unsigned = (f->flags & UNSIGNED_FLAG) != 0;
    bool is_binary = f->charsetnr == LH_MYSQL_BINARY_CHARSET;
    const char *uns = is_unsigned ? " unsigned" : "";
    memset(col, 0, sizeof *col);

    /* tinyint(1) is how MySQL spells BOOLEAN (bool and boolean are its aliases). */
    if (f->type == MYSQL_TYPE_TINY && f->length == 1) {
        col->kind = LH_MYCOL_BOOL;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
        *source_type = lh_xasprintf("tinyint(1)%s", uns);
        return;
    }
    for (size_t i = 0; i < sizeof int_types / sizeof int_types[0]; i++) {
        if (int_types[i].type != f->type)
            continue;
        col->kind = is_unsigned ? int_types[i].is_unsigned : int_types[i].is_signed;
        *type = duckdb_create_logical_type(is_unsigned ? int_types[i].duck_unsigned
                                                       : int_types[i].duck_signed);
        *source_type = lh_xasprintf("%s%s", int_types[i].name, uns);
        return;
    }
    switch (f->type) {
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL: {
        /* The display length counts the digits, the point (when scale > 0) and the sign
         * (unless unsigned). */
        int scale = (int)f->decimals;
        int precision = (int)f->length - (scale > 0 ? 1 : 0) - (is_unsigned ? 0 : 1);
        if (precision < scale)
            precision = scale;
        if (precision < 1)
            precision = 1;
        *source_type = lh_xasprintf("decimal(%d,%d)%s", precision, scale, uns);
        if (precision <= 38) {
            col->kind = LH_MYCOL_DECIMAL;
            col->precision = precision;
            col->scale = scale;
            *type = duckdb_create_decimal_type((uint8_t)precision, (uint8_t)scale);
        } else {
            col->kind = LH_MYCOL_TEXT; /* the exact text: DuckDB's DECIMAL stops at 38 digits */
            *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        }
        return;
    }
    case MYSQL_TYPE_FLOAT:
        col->kind = LH_MYCOL_FLOAT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_FLOAT);
        *source_type = lh_xasprintf("float%s", uns);
        return;
    case MYSQL_TYPE_DOUBLE:
        col->kind = LH_MYCOL_DOUBLE;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
        *source_type = lh_xasprintf("double%s", uns);
        return;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
        col->kind = LH_MYCOL_DATE;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_DATE);
        *source_type = lh_xstrdup("date");
        return;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2: {
        bool tz = f->type == MYSQL_TYPE_TIMESTAMP || f->type == MYSQL_TYPE_TIMESTAMP2;
        col->kind = LH_MYCOL_TIMESTAMP;
        *type = duckdb_create_logical_type(tz ? DUCKDB_TYPE_TIMESTAMP_TZ : DUCKDB_TYPE_TIMESTAMP);
        *source_type = f->decimals > 0 && f->decimals <= 6
                           ? lh_xasprintf("%s(%u)", tz ? "timestamp" : "datetime", f->decimals)
                           : lh_xstrdup(tz ? "timestamp" : "datetime");
        return;
    }
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
        col->kind = LH_MYCOL_TIME;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_INTERVAL);
        *source_type = f->decimals > 0 && f->decimals <= 6 ? lh_xasprintf("time(%u)", f->decimals)
                                                           : lh_xstrdup("time");
        return;
    case MYSQL_TYPE_YEAR:
        col->kind = LH_MYCOL_YEAR;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_SMALLINT);
        *source_type = lh_xstrdup("year");
        return;
    case MYSQL_TYPE_BIT:
        col->kind = LH_MYCOL_BIT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_UBIGINT);
        *source_type = lh_xasprintf("bit(%lu)", f->length);
        return;
    case MYSQL_TYPE_JSON: /* MySQL 8's own type; MariaDB's json is a checked longtext */
        col->kind = LH_MYCOL_TEXT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        *source_type = lh_xstrdup("json");
        return;
    default:
        break;
    }
    /* The string family: char, varchar, text, binary, varbinary, blob, enum, set, json,
     * and MariaDB's types sent as strings (uuid, inet6, ...), whose name the extended
     * metadata carries. */
    char *type_name = NULL;
    bool is_json = field_attr_is(f, MARIADB_FIELD_ATTR_FORMAT_NAME, "json", NULL);
    field_attr_is(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, NULL, &type_name);
    if (f->flags & SET_FLAG) {
        col->kind = LH_MYCOL_SET;
        duckdb_logical_type child = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        *type = duckdb_create_list_type(child);
        duckdb_destroy_logical_type(&child);
        *source_type = lh_xstrdup("set");
    } else if (is_json || (f->flags & ENUM_FLAG) || !is_binary) {
        col->kind = LH_MYCOL_TEXT;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
        if (is_json)
            *source_type = lh_xstrdup("json");
        else if (f->flags & ENUM_FLAG)
            *source_type = lh_xstrdup("enum");
        else if (type_name)
            *source_type = lh_xstrdup(type_name);
        else
            *source_type = lh_xstrdup(
                f->type == MYSQL_TYPE_STRING                                    ? "char"
                : f->type == MYSQL_TYPE_VAR_STRING                              ? "varchar"
                : f->type == MYSQL_TYPE_NULL                                    ? "null"
                : f->type == MYSQL_TYPE_GEOMETRY                                ? "geometry"
                : f->type >= MYSQL_TYPE_TINY_BLOB && f->type <= MYSQL_TYPE_BLOB ? "text"
                                                                                : "unknown");
    } else {
        col->kind = LH_MYCOL_BLOB;
        *type = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
        *source_type = type_name ? lh_xstrdup(type_name)
                                 : lh_xstrdup(f->type == MYSQL_TYPE_STRING       ? "binary"
                                              : f->type == MYSQL_TYPE_VAR_STRING ? "varbinary"
                                              : f->type == MYSQL_TYPE_GEOMETRY   ? "geometry"
                                                                                 : "blob");
    }
    free(type_name);
}

/* ---------------------------------------------------------------- text → values */

/* Accumulates the digits of s[i..n) into *v, failing past `limit`. */
static int accumulate(const char *s, size_t n, size_t i, uint64_t limit, uint64_t *v)
{
    if (i == n)
        return -1;
    *v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (*v > limit / 10 || (*v == limit / 10 && d > limit % 10))
            return -1;
        *v = *v * 10 + d;
    }
    return 0;
}

/* Parses an optionally signed decimal integer within [min, max]; -1 on anything else. */
static int parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = n > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    uint64_t v, limit = neg ? (uint64_t)(-(min + 1)) + 1 : (uint64_t)max;
    if (accumulate(s, n, i, limit, &v) < 0)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Parses an unsigned decimal integer up to max; -1 on anything else. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    return accumulate(s, n, n > 0 && s[0] == '+' ? 1 : 0, max, out);
}

/* Reads exactly `width` digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, int width, int *out)
{
    int v = 0;
    for (int k = 0; k < width; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* Reads ".ffffff" (1 to 6 digits) as microseconds, if present. */
static int fraction(const char *s, size_t n, size_t *i, int64_t *micros)
{
    *micros = 0;
    if (*i == n || s[*i] != '.')
        return 0;
    (*i)++;
    int k = 0;
    for (; *i < n && s[*i] >= '0' && s[*i] <= '9'; (*i)++, k++) {
        if (k >= 6)
            return -1;
        *micros = *micros * 10 + (s[*i] - '0');
    }
    if (k == 0)
        return -1;
    for (; k < 6; k++)
        *micros *= 10;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* "YYYY-MM-DD" at s[*i]: 1 for a zero date (a zero month or day: MySQL's "no date", which
 * becomes NULL), 0 with *days set, -1 for text that is not a date. */
static int parse_date(const char *s, size_t n, size_t *i, int64_t *days)
{
    int y, mo, d;
    if (digits(s, n, i, 4, &y) < 0 || *i >= n || s[(*i)++] != '-' || digits(s, n, i, 2, &mo) < 0 ||
        *i >= n || s[(*i)++] != '-' || digits(s, n, i, 2, &d) < 0)
        return -1;
    if (mo == 0 || d == 0)
        return 1;
    if (mo > 12 || d > days_in_month(y, mo))
        return -1;
    *days = days_from_civil(y, mo, d);
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff]": as parse_date, *micros since the epoch. */
static int parse_datetime(const char *s, size_t n, int64_t *micros)
{
    size_t i = 0;
    int64_t days = 0, frac;
    int h, mi, sec;
    int rc = parse_date(s, n, &i, &days);
    if (rc < 0 || i >= n || s[i++] != ' ' || digits(s, n, &i, 2, &h) < 0 || i >= n ||
        s[i++] != ':' || digits(s, n, &i, 2, &mi) < 0 || i >= n || s[i++] != ':' ||
        digits(s, n, &i, 2, &sec) < 0 || fraction(s, n, &i, &frac) < 0 || i != n || h > 23 ||
        mi > 59 || sec > 59)
        return -1;
    if (rc == 1)
        return 1;
    *micros = ((days * 24 + h) * 60 + mi) * 60 * INT64_C(1000000) + sec * INT64_C(1000000) + frac;
    return 0;
}

/* "[-]H{1,3}:MM:SS[.ffffff]" (MySQL's TIME, a duration) as microseconds. */
static int parse_time(const char *s, size_t n, int64_t *micros)
{
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg)
        i++;
    int64_t h = 0, frac;
    int mi, sec, k = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && k < 4; i++, k++)
        h = h * 10 + (s[i] - '0');
    if (k == 0 || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi) < 0 || i >= n ||
        s[i++] != ':' || digits(s, n, &i, 2, &sec) < 0 || fraction(s, n, &i, &frac) < 0 || i != n ||
        mi > 59 || sec > 59)
        return -1;
    int64_t v = ((h * 60 + mi) * 60 + sec) * INT64_C(1000000) + frac;
    *micros = neg ? -v : v;
    return 0;
}

/* Floats and doubles: the server prints them with %g-like text ("-1.5e-7"). */
static int parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || (errno == ERANGE && isinf(v)))
        return -1;
    *out = v;
    return 0;
}

int lh_mysql_put_value(lh_mysql_col *col, duckdb_vector v, void *data, idx_t row, const char *s,
                       size_t n)
{
    int64_t i64;
    uint64_t u64;
    double dbl;
    int rc;
    switch (col->kind) {
    case LH_MYCOL_BOOL:
        /* tinyint(1) may hold -128..127: only 0 and 1 are booleans; anything else would be
         * silently flattened, so it is refused (a query with `col + 0` keeps the number). */
        if (parse_i64(s, n, 0, 1, &i64) < 0)
            return -1;
        ((bool *)data)[row] = i64 == 1;
        return 0;
    case LH_MYCOL_INT8:
        if (parse_i64(s, n, INT8_MIN, INT8_MAX, &i64) < 0)
            return -1;
        ((int8_t *)data)[row] = (int8_t)i64;
        return 0;
    case LH_MYCOL_INT16:
    case LH_MYCOL_YEAR:
        if (parse_i64(s, n, INT16_MIN, INT16_MAX, &i64) < 0)
            return -1;
        ((int16_t *)data)[row] = (int16_t)i64;
        return 0;
    case LH_MYCOL_INT32:
        if (parse_i64(s, n, INT32_MIN, INT32_MAX, &i64) < 0)
            return -1;
        ((int32_t *)data)[row] = (int32_t)i64;
        return 0;
    case LH_MYCOL_INT64:
        if (parse_i64(s, n, INT64_MIN, INT64_MAX, &i64) < 0)
            return -1;
        ((int64_t *)data)[row] = i64;
        return 0;
    case LH_MYCOL_UINT8:
        if (parse_u64(s, n, UINT8_MAX, &u64) < 0)
            return -1;
        ((uint8_t *)data)[row] = (uint8_t)u64;
        return 0;
    case LH_MYCOL_UINT16:
        if (parse_u64(s, n, UINT16_MAX, &u64) < 0)
            return -1;
        ((uint16_t *)data)[row] = (uint16_t)u64;
        return 0;
    case LH_MYCOL_UINT32:
        if (parse_u64(s, n, UINT32_MAX, &u64) < 0)
            return -1;
        ((uint32_t *)data)[row] = (uint32_t)u64;
        return 0;
    case LH_MYCOL_UINT64:
        if (parse_u64(s, n, UINT64_MAX, &u64) < 0)
            return -1;
        ((uint64_t *)data)[row] = u64;
        return 0;
    case LH_MYCOL_DECIMAL: {
        __int128 unscaled;
        if (lh_decimal_parse(s, n, col->precision, col->scale, &unscaled) < 0 ||
            lh_vec_put_decimal(v, col->type, row, unscaled) < 0)
            return -1;
        return 0;
    }
    case LH_MYCOL_FLOAT:
        /* the server prints a float with six digits, so its text never rounds past FLT_MAX */
        if (parse_double(s, n, &dbl) < 0 || fabs(dbl) > FLT_MAX)
            return -1;
        ((float *)data)[row] = (float)dbl;
        return 0;
    case LH_MYCOL_DOUBLE:
        if (parse_double(s, n, &dbl) < 0)
            return -1;
        ((double *)data)[row] = dbl;
        return 0;
    case LH_MYCOL_DATE: {
        size_t i = 0;
        rc = parse_date(s, n, &i, &i64);
        if (rc < 0 || i != n || (rc == 0 && (i64 < INT32_MIN || i64 > INT32_MAX)))
            return -1;
        if (rc == 1)
            lh_vec_set_null(v, row);
        else
            ((duckdb_date *)data)[row].days = (int32_t)i64;
        return 0;
    }
    case LH_MYCOL_TIMESTAMP:
        rc = parse_datetime(s, n, &i64);
        if (rc < 0)
            return -1;
        if (rc == 1)
            lh_vec_set_null(v, row);
        else
            ((duckdb_timestamp *)data)[row].micros = i64;
        return 0;
    case LH_MYCOL_TIME:
        /* A negative duration parses, but the lake cannot keep it: Parquet's INTERVAL is
         * unsigned (DuckDB refuses to write a negative one), so it is refused here, naming
         * its row, rather than failing the whole Parquet write later. */
        if (parse_time(s, n, &i64) < 0 || i64 < 0)
            return -1;
        ((duckdb_interval *)data)[row] = (duckdb_interval){.months = 0, .days = 0, .micros = i64};
        return 0;
    case LH_MYCOL_BIT:
        /* The text protocol sends bit(n) as its (n + 7) / 8 bytes, most significant first. */
        if (n > 8)
            return -1;
        u64 = 0;
        for (size_t i = 0; i < n; i++)
            u64 = (u64 << 8) | (unsigned char)s[i];
        ((uint64_t *)data)[row] = u64;
        return 0;
    case LH_MYCOL_TEXT:
        if (!lh_utf8_valid(s, n))
            return -1;
        duckdb_vector_assign_string_element_len(v, row, s, n);
        return 0;
    case LH_MYCOL_BLOB:
        duckdb_vector_assign_string_element_len(v, row, s, n);
        return 0;
    case LH_MYCOL_SET: {
        /* The members, comma-separated (a member cannot contain a comma); '' is the empty
         * set. */
        if (!lh_utf8_valid(s, n))
            return -1;
        idx_t count = 0;
        if (n > 0) {
            count = 1;
            for (size_t i = 0; i < n; i++)
                count += s[i] == ',';
        }
        idx_t offset = col->list_size;
        if (duckdb_list_vector_reserve(v, offset + count) != DuckDBSuccess)
            return -1;
        duckdb_vector child = duckdb_list_vector_get_child(v);
        size_t start = 0;
        for (idx_t k = 0; k < count; k++) {
            size_t end = start;
            while (end < n && s[end] != ',')
                end++;
            duckdb_vector_assign_string_element_len(child, offset + k, s + start, end - start);
            start = end + 1;
        }
        col->list_size = offset + count;
        if (duckdb_list_vector_set_size(v, offset + count) != DuckDBSuccess)
            return -1;
        ((duckdb_list_entry *)data)[row] = (duckdb_list_entry){.offset = offset, .length = count};
        return 0;
    }
    }
    return -1;
}
