/*
 * value.c: DuckDB result vectors → text, one cell at a time.
 *
 * Each column gets a renderer from one table keyed by DuckDB type id. Two families:
 *
 *   - direct: the value is read from the vector's data (duckdb_vector_get_data + validity)
 *     and printed here. BOOLEAN, all integers, FLOAT/DOUBLE (shortest text that reads back
 *     to the same value), VARCHAR (no copy: the text points into the vector), DECIMAL and
 *     HUGEINT/UHUGEINT (exact, 128-bit arithmetic, never through a double), DATE and every
 *     TIMESTAMP kind, UUID, ENUM (dictionary cached per column). These are the types people
 *     data is made of, so they must be fast; the unit tests check each against DuckDB's own
 *     CAST(... AS VARCHAR) over many values.
 *
 *   - through DuckDB: everything else (TIME*, INTERVAL, BLOB, BIT, BIGNUM, LIST, ARRAY,
 *     STRUCT, MAP, UNION, and the leaves inside them) is rebuilt as a duckdb_value from the
 *     vector (recursively for nested types) and printed by duckdb_get_varchar, which is
 *     DuckDB's own VARCHAR cast. The C API offers no cast of a vector and we must not
 *     rewrite user SQL to add casts, so this is the one way to get DuckDB's exact text for
 *     nested values; it costs an allocation per value, which only these rarer types pay.
 *
 * TIMESTAMP WITH TIME ZONE is printed in UTC ("+00"): the engine pins TimeZone to UTC, and
 * duckdb_get_varchar prints UTC too, so nested and top-level values agree.
 *
 * VARCHAR storage (duckdb_string_t): at most 12 bytes are stored inline after the length,
 * longer strings keep a pointer (see duckdb.h); read directly to avoid a call per cell.
 */
#include "query_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 lh_i128;
__extension__ typedef unsigned __int128 lh_u128;

/* ---------------------------------------------------------------- small helpers */

static bool row_valid(const uint64_t *validity, idx_t row)
{
    return !validity || ((validity[row / 64] >> (row % 64)) & 1);
}

static void string_view(const duckdb_string_t *s, const char **p, size_t *n)
{
    uint32_t len = s->value.inlined.length;
    *n = len;
    *p = len <= 12 ? s->value.inlined.inlined : s->value.pointer.ptr;
}

/* Decimal digits of v into the end of buf[0..64); returns the first digit. */
static char *u128_digits(lh_u128 v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    return p;
}

static void cell_set(lh_cell *out, lh_cell_kind kind, const char *text, size_t len)
{
    out->kind = kind;
    out->text = text;
    out->len = len;
}

/* Prints a signed 128-bit integer into col->num. */
static void cell_i128(lh_col *col, lh_i128 v, lh_cell *out)
{
    char *end = col->num + sizeof(col->num);
    lh_u128 mag = v < 0 ? (lh_u128)0 - (lh_u128)v : (lh_u128)v;
    char *p = u128_digits(mag, end);
    if (v < 0)
        *--p = '-';
    cell_set(out, LH_CELL_NUMBER, p, (size_t)(end - p));
}

static void cell_u128(lh_col *col, lh_u128 v, lh_cell *out)
{
    char *end = col->num + sizeof(col->num);
    char *p = u128_digits(v, end);
    cell_set(out, LH_CELL_NUMBER, p, (size_t)(end - p));
}

/* An exact decimal: v / 10^scale with exactly `scale` fractional digits, as DuckDB prints. */
static void cell_decimal(lh_col *col, lh_i128 v, unsigned scale, lh_cell *out)
{
    char digits[48];
    char *end = digits + sizeof(digits);
    lh_u128 mag = v < 0 ? (lh_u128)0 - (lh_u128)v : (lh_u128)v;
    char *d = u128_digits(mag, end);
    size_t nd = (size_t)(end - d);
    char *o = col->num;
    if (v < 0)
        *o++ = '-';
    if (scale == 0) {
        memcpy(o, d, nd);
        o += nd;
    } else if (nd <= scale) {
        *o++ = '0';
        *o++ = '.';
        for (size_t i = nd; i < scale; i++)
            *o++ = '0';
        memcpy(o, d, nd);
        o += nd;
    } else {
        memcpy(o, d, nd - scale);
        o += nd - scale;
        *o++ = '.';
        memcpy(o, d + nd - scale, scale);
        o += scale;
    }
    cell_set(out, LH_CELL_NUMBER, col->num, (size_t)(o - col->num));
}

/* Whether a double v with 1e-4 <= |v| < 1e15 is some m / 10^k with |m| < 10^15 (at most
 * 15 significant digits: the prices, averages and rounded figures results are made of);
 * then *m and the smallest such *k. With the smallest k the last fraction digit is not 0,
 * so cell_decimal(m, k) prints what cell_real's %g loop would: %.15g gives exactly these
 * digits in fixed notation (v is within half an ulp of m / 10^k, far from a 15-digit
 * rounding boundary) and they read back to v (m / 10^k, correctly rounded, is v). */
static bool short_decimal(double v, int64_t *m, unsigned *k)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15))
        return false;
    for (unsigned i = 0; i < sizeof(pow10) / sizeof(pow10[0]); i++) {
        double scaled = a * pow10[i];
        if (scaled >= 1e15)
            return false;
        int64_t digits = llround(scaled);
        if ((double)digits / pow10[i] == a) {
            *m = v < 0 ? -digits : digits;
            *k = i;
            return true;
        }
    }
    return false;
}

/* Shortest text that reads back to the same double (or float when is_float), with ".0"
 * added to integral values as DuckDB prints them. NaN and infinities are text. */
static void cell_real(lh_col *col, double v, bool is_float, lh_cell *out)
{
    static const char *const special[] = {"NaN", "Infinity", "-Infinity"};
    if (isnan(v) || isinf(v)) {
        const char *s = isnan(v) ? special[0] : v > 0 ? special[1] : special[2];
        cell_set(out, LH_CELL_TEXT, s, strlen(s));
        return;
    }
    int64_t m;
    unsigned k;
    if (!is_float && short_decimal(v, &m, &k)) {
        if (k == 0) /* integral: ".0", as below */
            cell_decimal(col, m * 10, 1, out);
        else
            cell_decimal(col, m, k, out);
        return;
    }
    /* Above DBL_DIG (FLT_DIG) digits a shorter text cannot read back, and at that many
     * digits %g finds the shortest one; subnormals carry fewer digits, so start lower. */
    int n = 0, first = is_float ? FLT_DIG : DBL_DIG;
    if (v != 0 && fabs(v) < (is_float ? FLT_MIN : DBL_MIN))
        first = 1;
    for (int prec = first; prec <= (is_float ? 9 : 17); prec++) {
        n = snprintf(col->num, sizeof(col->num) - 2, "%.*g", prec, v);
        bool same = is_float ? strtof(col->num, NULL) == (float)v : strtod(col->num, NULL) == v;
        if (same)
            break;
    }
    if (!strpbrk(col->num, ".e")) {
        col->num[n++] = '.';
        col->num[n++] = '0';
        col->num[n] = '\0';
    }
    cell_set(out, LH_CELL_NUMBER, col->num, (size_t)n);
}

/* ---------------------------------------------------------------- dates and timestamps */

/* "YYYY-MM-DD", or "YYYY-MM-DD (BC)" for years before 1 (year 0 is 1 BC). */
static size_t fmt_date(char *buf, size_t cap, int32_t days)
{
    duckdb_date_struct d = duckdb_from_date((duckdb_date){days});
    bool bc = d.year <= 0;
    int32_t year = bc ? 1 - d.year : d.year;
    int n = snprintf(buf, cap, "%04d-%02d-%02d%s", (int)year, (int)d.month, (int)d.day,
                     bc ? " (BC)" : "");
    return n < 0 ? 0 : (size_t)n;
}

static void cell_date(lh_col *col, idx_t row, lh_cell *out)
{
    int32_t days = ((const int32_t *)col->data)[row];
    const char *inf = NULL;
    if (days == INT32_MAX)
        inf = "infinity";
    else if (days == -INT32_MAX)
        inf = "-infinity";
    if (inf) {
        cell_set(out, LH_CELL_TEXT, inf, strlen(inf));
        return;
    }
    cell_set(out, LH_CELL_TEXT, col->num, fmt_date(col->num, sizeof(col->num), days));
}

/* A timestamp counted in units of 10^-digits seconds since the epoch, printed as DuckDB
 * does: date, time, fractional digits without trailing zeros, then `suffix`. */
static void cell_timestamp_units(lh_col *col, int64_t v, int64_t per_second, int digits,
                                 const char *suffix, lh_cell *out)
{
    if (v == INT64_MAX || v == -INT64_MAX) {
        const char *s = v > 0 ? "infinity" : "-infinity";
        cell_set(out, LH_CELL_TEXT, s, strlen(s));
        return;
    }
    int64_t per_day = per_second * 86400;
    int64_t days = v / per_day, rem = v % per_day;
    if (rem < 0) {
        rem += per_day;
        days--;
    }
    size_t n = fmt_date(col->num, sizeof(col->num), (int32_t)days);
    int64_t secs = rem / per_second, frac = rem % per_second;
    n += (size_t)snprintf(col->num + n, sizeof(col->num) - n, " %02d:%02d:%02d", (int)(secs / 3600),
                          (int)(secs / 60 % 60), (int)(secs % 60));
    if (frac) {
        char f[16];
        snprintf(f, sizeof(f), "%0*lld", digits, (long long)frac);
        int fl = digits;
        while (fl > 0 && f[fl - 1] == '0')
            fl--;
        n += (size_t)snprintf(col->num + n, sizeof(col->num) - n, ".%.*s", fl, f);
    }
    n += (size_t)snprintf(col->num + n, sizeof(col->num) - n, "%s", suffix);
    cell_set(out, LH_CELL_TEXT, col->num, n);
}

static void cell_ts_s(lh_col *col, idx_t row, lh_cell *out)
{
    cell_timestamp_units(col, ((const int64_t *)col->data)[row], 1, 0, "", out);
}

static void cell_ts_ms(lh_col *col, idx_t row, lh_cell *out)
{
    cell_timestamp_units(col, ((const int64_t *)col->data)[row], 1000, 3, "", out);
}

static void cell_ts_us(lh_col *col, idx_t row, lh_cell *out)
{
    cell_timestamp_units(col, ((const int64_t *)col->data)[row], 1000000, 6, "", out);
}

static void cell_ts_ns(lh_col *col, idx_t row, lh_cell *out)
{
    cell_timestamp_units(col, ((const int64_t *)col->data)[row], 1000000000, 9, "", out);
}

static void cell_ts_tz(lh_col *col, idx_t row, lh_cell *out)
{
    cell_timestamp_units(col, ((const int64_t *)col->data)[row], 1000000, 6, "+00", out);
}

/* ---------------------------------------------------------------- direct renderers */

static void cell_bool(lh_col *col, idx_t row, lh_cell *out)
{
    bool v = ((const bool *)col->data)[row];
    cell_set(out, LH_CELL_BOOL, v ? "true" : "false", v ? 4 : 5);
}

#define LH_INT_CELL(fname, ctype)                                                                  \
    static void fname(lh_col *col, idx_t row, lh_cell *out)                                        \
    {                                                                                              \
        cell_i128(col, (lh_i128)((const ctype *)col->data)[row], out);                             \
    }
LH_INT_CELL(cell_i8, int8_t)
LH_INT_CELL(cell_i16, int16_t)
LH_INT_CELL(cell_i32, int32_t)
LH_INT_CELL(cell_i64, int64_t)
LH_INT_CELL(cell_u8, uint8_t)
LH_INT_CELL(cell_u16, uint16_t)
LH_INT_CELL(cell_u32, uint32_t)
LH_INT_CELL(cell_u64, uint64_t)
#undef LH_INT_CELL

static lh_i128 hugeint_get(const duckdb_hugeint *h)
{
    return (lh_i128)(((lh_u128)(uint64_t)h->upper << 64) | h->lower);
}

static void cell_hugeint(lh_col *col, idx_t row, lh_cell *out)
{
    cell_i128(col, hugeint_get(&((const duckdb_hugeint *)col->data)[row]), out);
}

static void cell_uhugeint(lh_col *col, idx_t row, lh_cell *out)
{
    const duckdb_uhugeint *h = &((const duckdb_uhugeint *)col->data)[row];
    cell_u128(col, ((lh_u128)h->upper << 64) | h->lower, out);
}

static void cell_float(lh_col *col, idx_t row, lh_cell *out)
{
    cell_real(col, ((const float *)col->data)[row], true, out);
}

static void cell_double(lh_col *col, idx_t row, lh_cell *out)
{
    cell_real(col, ((const double *)col->data)[row], false, out);
}

static void cell_varchar(lh_col *col, idx_t row, lh_cell *out)
{
    const char *p;
    size_t n;
    string_view(&((const duckdb_string_t *)col->data)[row], &p, &n);
    cell_set(out, LH_CELL_TEXT, p, n);
}

static void cell_decimal_col(lh_col *col, idx_t row, lh_cell *out)
{
    lh_i128 v;
    switch (col->type.storage) {
    case DUCKDB_TYPE_SMALLINT:
        v = ((const int16_t *)col->data)[row];
        break;
    case DUCKDB_TYPE_INTEGER:
        v = ((const int32_t *)col->data)[row];
        break;
    case DUCKDB_TYPE_BIGINT:
        v = ((const int64_t *)col->data)[row];
        break;
    default:
        v = hugeint_get(&((const duckdb_hugeint *)col->data)[row]);
        break;
    }
    cell_decimal(col, v, col->type.scale, out);
}

/* UUIDs are stored as a HUGEINT with the top bit flipped (so they sort as strings). */
static void cell_uuid(lh_col *col, idx_t row, lh_cell *out)
{
    static const char hex[] = "0123456789abcdef";
    const duckdb_hugeint *h = &((const duckdb_hugeint *)col->data)[row];
    uint64_t hi = (uint64_t)h->upper ^ ((uint64_t)1 << 63), lo = h->lower;
    char *o = col->num;
    for (int i = 0; i < 32; i++) {
        uint64_t w = i < 16 ? hi : lo;
        int shift = 60 - 4 * (i % 16);
        if (i == 8 || i == 12 || i == 16 || i == 20)
            *o++ = '-';
        *o++ = hex[(w >> shift) & 15];
    }
    cell_set(out, LH_CELL_TEXT, col->num, (size_t)(o - col->num));
}

static uint64_t enum_index(duckdb_type storage, const void *data, idx_t row)
{
    switch (storage) {
    case DUCKDB_TYPE_UTINYINT:
        return ((const uint8_t *)data)[row];
    case DUCKDB_TYPE_USMALLINT:
        return ((const uint16_t *)data)[row];
    default:
        return ((const uint32_t *)data)[row];
    }
}

static void cell_enum(lh_col *col, idx_t row, lh_cell *out)
{
    uint64_t i = enum_index(col->type.storage, col->data, row);
    if (i >= col->enum_count) {
        cell_set(out, LH_CELL_NULL, NULL, 0);
        return;
    }
    cell_set(out, LH_CELL_TEXT, col->enum_words[i], strlen(col->enum_words[i]));
}

static void cell_null(lh_col *col, idx_t row, lh_cell *out)
{
    (void)col;
    (void)row;
    cell_set(out, LH_CELL_NULL, NULL, 0);
}

/* ---------------------------------------------------------------- through DuckDB */

static duckdb_value vec_value(duckdb_vector v, const lh_tnode *t, idx_t row);

/* Values of `count` consecutive rows of vector v starting at `first`. NULL when any could
 * not be built; caller destroys each and frees the array. */
static duckdb_value *vec_values(duckdb_vector v, const lh_tnode *t, idx_t first, idx_t count)
{
    duckdb_value *vals = lh_xcalloc(count ? count : 1, sizeof(*vals));
    for (idx_t i = 0; i < count; i++) {
        vals[i] = vec_value(v, t, first + i);
        if (!vals[i]) {
            for (idx_t j = 0; j < i; j++)
                duckdb_destroy_value(&vals[j]);
            free(vals);
            return NULL;
        }
    }
    return vals;
}

static void values_free(duckdb_value *vals, idx_t count)
{
    if (!vals)
        return;
    for (idx_t i = 0; i < count; i++)
        duckdb_destroy_value(&vals[i]);
    free(vals);
}

/* BIGNUM storage: 3 header bytes (top bit set when non-negative), then the magnitude
 * big-endian; negative numbers have every byte inverted. duckdb_create_bignum wants the
 * plain magnitude bytes and a sign. */
static duckdb_value bignum_value(const char *p, size_t n)
{
    if (n < 4)
        return NULL;
    bool neg = !((unsigned char)p[0] & 0x80);
    uint8_t *mag = lh_xmalloc(n - 3);
    for (size_t i = 3; i < n; i++)
        mag[i - 3] = neg ? (uint8_t) ~(unsigned char)p[i] : (uint8_t)p[i];
    duckdb_value v = duckdb_create_bignum((duckdb_bignum){mag, n - 3, neg});
    free(mag);
    return v;
}

/* Nested values: LIST, ARRAY, STRUCT, MAP, UNION. */
static duckdb_value nested_value(duckdb_vector v, const lh_tnode *t, const void *data, idx_t row)
{
    duckdb_value res = NULL;
    duckdb_value *vals = NULL, *keys = NULL;
    idx_t n = 0;
    switch (t->id) {
    case DUCKDB_TYPE_LIST: {
        duckdb_list_entry e = ((const duckdb_list_entry *)data)[row];
        n = e.length;
        vals = vec_values(duckdb_list_vector_get_child(v), &t->children[0], e.offset, n);
        if (vals)
            res = duckdb_create_list_value(t->children[0].lt, vals, n);
        break;
    }
    case DUCKDB_TYPE_ARRAY:
        n = t->array_size;
        vals = vec_values(duckdb_array_vector_get_child(v), &t->children[0], row * n, n);
        if (vals)
            res = duckdb_create_array_value(t->children[0].lt, vals, n);
        break;
    case DUCKDB_TYPE_STRUCT:
        n = t->nchildren;
        vals = lh_xcalloc(n ? n : 1, sizeof(*vals));
        for (idx_t i = 0; i < n; i++) {
            vals[i] = vec_value(duckdb_struct_vector_get_child(v, i), &t->children[i], row);
            if (!vals[i])
                goto out;
        }
        res = duckdb_create_struct_value(t->lt, vals);
        break;
    case DUCKDB_TYPE_MAP: {
        duckdb_list_entry e = ((const duckdb_list_entry *)data)[row];
        duckdb_vector kv = duckdb_list_vector_get_child(v);
        n = e.length;
        keys = vec_values(duckdb_struct_vector_get_child(kv, 0), &t->children[0], e.offset, n);
        vals = vec_values(duckdb_struct_vector_get_child(kv, 1), &t->children[1], e.offset, n);
        if (keys && vals)
            res = duckdb_create_map_value(t->lt, keys, vals, n);
        break;
    }
    case DUCKDB_TYPE_UNION: {
        /* A union is a struct vector: child 0 holds the tag, child k+1 member k. */
        duckdb_vector tags = duckdb_struct_vector_get_child(v, 0);
        uint8_t tag = ((const uint8_t *)duckdb_vector_get_data(tags))[row];
        if (tag >= t->nchildren)
            break;
        duckdb_value member =
            vec_value(duckdb_struct_vector_get_child(v, (idx_t)tag + 1), &t->children[tag], row);
        if (member) {
            res = duckdb_create_union_value(t->lt, tag, member);
            duckdb_destroy_value(&member);
        }
        break;
    }
    default:
        break;
    }
out:
    values_free(vals, vals ? n : 0);
    values_free(keys, keys ? n : 0);
    return res;
}

/* The value at `row` of vector v as a duckdb_value (caller destroys), NULL when it cannot
 * be built. A NULL entry becomes an untyped NULL value, which DuckDB accepts inside nested
 * values (and which we never print at top level). */
static duckdb_value vec_value(duckdb_vector v, const lh_tnode *t, idx_t row)
{
    if (!row_valid(duckdb_vector_get_validity(v), row) || t->id == DUCKDB_TYPE_SQLNULL)
        return duckdb_create_null_value();
    const void *data = duckdb_vector_get_data(v);
    switch (t->id) {
    case DUCKDB_TYPE_BOOLEAN:
        return duckdb_create_bool(((const bool *)data)[row]);
    case DUCKDB_TYPE_TINYINT:
        return duckdb_create_int8(((const int8_t *)data)[row]);
    case DUCKDB_TYPE_SMALLINT:
        return duckdb_create_int16(((const int16_t *)data)[row]);
    case DUCKDB_TYPE_INTEGER:
        return duckdb_create_int32(((const int32_t *)data)[row]);
    case DUCKDB_TYPE_BIGINT:
        return duckdb_create_int64(((const int64_t *)data)[row]);
    case DUCKDB_TYPE_UTINYINT:
        return duckdb_create_uint8(((const uint8_t *)data)[row]);
    case DUCKDB_TYPE_USMALLINT:
        return duckdb_create_uint16(((const uint16_t *)data)[row]);
    case DUCKDB_TYPE_UINTEGER:
        return duckdb_create_uint32(((const uint32_t *)data)[row]);
    case DUCKDB_TYPE_UBIGINT:
        return duckdb_create_uint64(((const uint64_t *)data)[row]);
    case DUCKDB_TYPE_HUGEINT:
        return duckdb_create_hugeint(((const duckdb_hugeint *)data)[row]);
    case DUCKDB_TYPE_UHUGEINT:
        return duckdb_create_uhugeint(((const duckdb_uhugeint *)data)[row]);
    case DUCKDB_TYPE_FLOAT:
        return duckdb_create_float(((const float *)data)[row]);
    case DUCKDB_TYPE_DOUBLE:
        return duckdb_create_double(((const double *)data)[row]);
    case DUCKDB_TYPE_DATE:
        return duckdb_create_date(((const duckdb_date *)data)[row]);
    case DUCKDB_TYPE_TIME:
        return duckdb_create_time(((const duckdb_time *)data)[row]);
    case DUCKDB_TYPE_TIME_NS:
        return duckdb_create_time_ns(((const duckdb_time_ns *)data)[row]);
    case DUCKDB_TYPE_TIME_TZ:
        return duckdb_create_time_tz_value(((const duckdb_time_tz *)data)[row]);
    case DUCKDB_TYPE_TIMESTAMP:
        return duckdb_create_timestamp(((const duckdb_timestamp *)data)[row]);
    case DUCKDB_TYPE_TIMESTAMP_TZ:
        return duckdb_create_timestamp_tz(((const duckdb_timestamp *)data)[row]);
    case DUCKDB_TYPE_TIMESTAMP_S:
        return duckdb_create_timestamp_s(((const duckdb_timestamp_s *)data)[row]);
    case DUCKDB_TYPE_TIMESTAMP_MS:
        return duckdb_create_timestamp_ms(((const duckdb_timestamp_ms *)data)[row]);
    case DUCKDB_TYPE_TIMESTAMP_NS:
        return duckdb_create_timestamp_ns(((const duckdb_timestamp_ns *)data)[row]);
    case DUCKDB_TYPE_INTERVAL:
        return duckdb_create_interval(((const duckdb_interval *)data)[row]);
    case DUCKDB_TYPE_UUID: {
        duckdb_hugeint h = ((const duckdb_hugeint *)data)[row];
        duckdb_uhugeint u = {h.lower, (uint64_t)h.upper ^ ((uint64_t)1 << 63)};
        return duckdb_create_uuid(u);
    }
    case DUCKDB_TYPE_DECIMAL: {
        duckdb_hugeint h;
        switch (t->storage) {
        case DUCKDB_TYPE_SMALLINT:
        case DUCKDB_TYPE_INTEGER:
        case DUCKDB_TYPE_BIGINT: {
            int64_t x = t->storage == DUCKDB_TYPE_SMALLINT  ? ((const int16_t *)data)[row]
                        : t->storage == DUCKDB_TYPE_INTEGER ? ((const int32_t *)data)[row]
                                                            : ((const int64_t *)data)[row];
            h.lower = (uint64_t)x;
            h.upper = x < 0 ? -1 : 0;
            break;
        }
        default:
            h = ((const duckdb_hugeint *)data)[row];
            break;
        }
        return duckdb_create_decimal((duckdb_decimal){t->width, t->scale, h});
    }
    case DUCKDB_TYPE_ENUM:
        return duckdb_create_enum_value(t->lt, enum_index(t->storage, data, row));
    case DUCKDB_TYPE_VARCHAR:
    case DUCKDB_TYPE_BLOB:
    case DUCKDB_TYPE_BIT:
    case DUCKDB_TYPE_BIGNUM: {
        const char *p;
        size_t n;
        string_view(&((const duckdb_string_t *)data)[row], &p, &n);
        if (t->id == DUCKDB_TYPE_VARCHAR)
            return duckdb_create_varchar_length(p, n);
        if (t->id == DUCKDB_TYPE_BLOB)
            return duckdb_create_blob((const uint8_t *)p, n);
        if (t->id == DUCKDB_TYPE_BIT)
            return duckdb_create_bit((duckdb_bit){(uint8_t *)p, n});
        return bignum_value(p, n);
    }
    default:
        return nested_value(v, t, data, row);
    }
}

static void cell_generic(lh_col *col, idx_t row, lh_cell *out)
{
    duckdb_value v = vec_value(col->vec, &col->type, row);
    char *s = v ? duckdb_get_varchar(v) : NULL;
    col->scratch.len = 0;
    if (s) {
        lh_buf_puts(&col->scratch, s);
        duckdb_free(s);
        cell_set(out, LH_CELL_TEXT, col->scratch.data, col->scratch.len);
    } else {
        /* Cannot happen for the types DuckDB 1.4 returns; say so rather than drop it. */
        lh_buf_printf(&col->scratch, "(value of type %s cannot be rendered)", col->type_name);
        cell_set(out, LH_CELL_TEXT, col->scratch.data, col->scratch.len);
    }
    duckdb_destroy_value(&v);
}

/* ---------------------------------------------------------------- the renderer table */

/* Types not listed (none in DuckDB 1.4's results) go through DuckDB like nested ones. */
static const struct {
    duckdb_type id;
    lh_cell_fn render;
} renderers[] = {
    {DUCKDB_TYPE_BOOLEAN, cell_bool},       {DUCKDB_TYPE_TINYINT, cell_i8},
    {DUCKDB_TYPE_SMALLINT, cell_i16},       {DUCKDB_TYPE_INTEGER, cell_i32},
    {DUCKDB_TYPE_BIGINT, cell_i64},         {DUCKDB_TYPE_UTINYINT, cell_u8},
    {DUCKDB_TYPE_USMALLINT, cell_u16},      {DUCKDB_TYPE_UINTEGER, cell_u32},
    {DUCKDB_TYPE_UBIGINT, cell_u64},        {DUCKDB_TYPE_HUGEINT, cell_hugeint},
    {DUCKDB_TYPE_UHUGEINT, cell_uhugeint},  {DUCKDB_TYPE_FLOAT, cell_float},
    {DUCKDB_TYPE_DOUBLE, cell_double},      {DUCKDB_TYPE_DECIMAL, cell_decimal_col},
    {DUCKDB_TYPE_VARCHAR, cell_varchar},    {DUCKDB_TYPE_DATE, cell_date},
    {DUCKDB_TYPE_TIMESTAMP, cell_ts_us},    {DUCKDB_TYPE_TIMESTAMP_S, cell_ts_s},
    {DUCKDB_TYPE_TIMESTAMP_MS, cell_ts_ms}, {DUCKDB_TYPE_TIMESTAMP_NS, cell_ts_ns},
    {DUCKDB_TYPE_TIMESTAMP_TZ, cell_ts_tz}, {DUCKDB_TYPE_UUID, cell_uuid},
    {DUCKDB_TYPE_ENUM, cell_enum},          {DUCKDB_TYPE_SQLNULL, cell_null},
    {DUCKDB_TYPE_TIME, cell_generic},       {DUCKDB_TYPE_TIME_NS, cell_generic},
    {DUCKDB_TYPE_TIME_TZ, cell_generic},    {DUCKDB_TYPE_INTERVAL, cell_generic},
    {DUCKDB_TYPE_BLOB, cell_generic},       {DUCKDB_TYPE_BIT, cell_generic},
    {DUCKDB_TYPE_BIGNUM, cell_generic},     {DUCKDB_TYPE_LIST, cell_generic},
    {DUCKDB_TYPE_ARRAY, cell_generic},      {DUCKDB_TYPE_STRUCT, cell_generic},
    {DUCKDB_TYPE_MAP, cell_generic},        {DUCKDB_TYPE_UNION, cell_generic},
};

static lh_cell_fn renderer_for(duckdb_type id)
{
    for (size_t i = 0; i < sizeof(renderers) / sizeof(renderers[0]); i++)
        if (renderers[i].id == id)
            return renderers[i].render;
    return cell_generic;
}

/* ---------------------------------------------------------------- columns */

lh_col *lh_cols_new(duckdb_result *res, idx_t *count, const lh_keywords *kw)
{
    idx_t n = duckdb_column_count(res);
    *count = n;
    if (n == 0)
        return NULL;
    lh_col *cols = lh_xcalloc(n, sizeof(lh_col));
    for (idx_t i = 0; i < n; i++) {
        lh_col *c = &cols[i];
        const char *name = duckdb_column_name(res, i);
        c->name = lh_xstrdup(name ? name : "");
        lh_tnode_init(&c->type, duckdb_column_logical_type(res, i));
        c->type_name = lh_type_name(c->type.lt, kw);
        c->render = renderer_for(c->type.id);
        if (c->type.id == DUCKDB_TYPE_ENUM) {
            c->enum_count = duckdb_enum_dictionary_size(c->type.lt);
            c->enum_words = lh_xcalloc(c->enum_count ? c->enum_count : 1, sizeof(char *));
            for (idx_t k = 0; k < c->enum_count; k++) {
                char *w = duckdb_enum_dictionary_value(c->type.lt, k);
                c->enum_words[k] = lh_xstrdup(w ? w : "");
                duckdb_free(w);
            }
        }
        lh_buf_init(&c->scratch);
    }
    return cols;
}

void lh_cols_free(lh_col *cols, idx_t count)
{
    if (!cols)
        return;
    for (idx_t i = 0; i < count; i++) {
        lh_col *c = &cols[i];
        free(c->name);
        free(c->type_name);
        lh_tnode_free(&c->type);
        for (idx_t k = 0; k < c->enum_count; k++)
            free(c->enum_words[k]);
        free(c->enum_words);
        lh_buf_free(&c->scratch);
    }
    free(cols);
}

void lh_cols_bind(lh_col *cols, idx_t count, duckdb_data_chunk chunk)
{
    for (idx_t i = 0; i < count; i++) {
        cols[i].vec = duckdb_data_chunk_get_vector(chunk, i);
        cols[i].data = duckdb_vector_get_data(cols[i].vec);
        cols[i].validity = duckdb_vector_get_validity(cols[i].vec);
    }
}

void lh_col_cell(lh_col *col, idx_t row, lh_cell *out)
{
    if (!row_valid(col->validity, row)) {
        cell_set(out, LH_CELL_NULL, NULL, 0);
        return;
    }
    col->render(col, row, out);
}

/* ---------------------------------------------------------------- writers */

void lh_cell_write_json(lh_buf *b, const lh_cell *c)
{
    switch (c->kind) {
    case LH_CELL_NULL:
        lh_buf_append(b, "null", 4);
        break;
    case LH_CELL_BOOL:
    case LH_CELL_NUMBER:
        lh_buf_append(b, c->text, c->len);
        break;
    case LH_CELL_TEXT:
        lh_buf_json_string(b, c->text, c->len);
        break;
    }
}

void lh_csv_field(lh_buf *b, const char *s, size_t len)
{
    bool quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        lh_buf_append(b, s, len);
        return;
    }
    lh_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '"')
            continue;
        lh_buf_append(b, s + run, i + 1 - run); /* up to and including the quote */
        lh_buf_putc(b, '"');
        run = i + 1;
    }
    lh_buf_append(b, s + run, len - run);
    lh_buf_putc(b, '"');
}

void lh_cell_write_csv(lh_buf *b, const lh_cell *c)
{
    switch (c->kind) {
    case LH_CELL_NULL: /* an empty field; an empty string is written as "" */
        break;
    case LH_CELL_BOOL:
    case LH_CELL_NUMBER:
        lh_buf_append(b, c->text, c->len);
        break;
    case LH_CELL_TEXT:
        lh_csv_field(b, c->text, c->len);
        break;
    }
}

json_t *lh_cell_to_json(const lh_cell *c)
{
    switch (c->kind) {
    case LH_CELL_NULL:
        return json_null();
    case LH_CELL_BOOL:
        return json_boolean(c->len == 4);
    case LH_CELL_TEXT: {
        json_t *s = json_stringn(c->text, c->len);
        if (!s) { /* not UTF-8 (DuckDB text always is): keep it readable, never fail */
            lh_buf b;
            lh_buf_init(&b);
            lh_buf_json_string(&b, c->text, c->len);
            s = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
            lh_buf_free(&b);
        }
        return s ? s : json_null();
    }
    case LH_CELL_NUMBER:
        break;
    }
    char tmp[64];
    size_t n = c->len < sizeof(tmp) - 1 ? c->len : sizeof(tmp) - 1;
    memcpy(tmp, c->text, n);
    tmp[n] = '\0';
    if (!strpbrk(tmp, ".eE")) {
        char *end;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer((json_int_t)v);
    }
    return json_real(strtod(tmp, NULL));
}
