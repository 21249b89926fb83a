/*
 * pg_types.c: the PostgreSQL type mapping (docs/INGEST.md, "PostgreSQL type mapping") and
 * the decoders of COPY's binary format, which write each value straight into a DuckDB
 * vector: no text round trip. Every decoder checks the value's length against its type
 * (a mismatch is a malformed message, never a read past the buffer) and reports a value
 * the mapped type cannot hold by a DEC_* reason, never by the value.
 */
#include "pg_internal.h"

#include <limits.h>

/* Built-in type OIDs (PostgreSQL's pg_type.dat: fixed at bootstrap, the same on every
 * server version we can talk to). */
enum {
    PG_OID_BOOL = 16,
    PG_OID_BYTEA = 17,
    PG_OID_NAME = 19,
    PG_OID_INT8 = 20,
    PG_OID_INT2 = 21,
    PG_OID_INT4 = 23,
    PG_OID_TEXT = 25,
    PG_OID_JSON = 114,
    PG_OID_FLOAT4 = 700,
    PG_OID_FLOAT8 = 701,
    PG_OID_BPCHAR = 1042,
    PG_OID_VARCHAR = 1043,
    PG_OID_DATE = 1082,
    PG_OID_TIME = 1083,
    PG_OID_TIMESTAMP = 1114,
    PG_OID_TIMESTAMPTZ = 1184,
    PG_OID_INTERVAL = 1186,
    PG_OID_NUMERIC = 1700,
    PG_OID_UUID = 2950,
    PG_OID_JSONB = 3802,
};

/* PostgreSQL's epochs are 2000-01-01; DuckDB's are 1970-01-01. */
#define PG_EPOCH_DAYS 10957
#define PG_EPOCH_MICROS INT64_C(946684800000000)

/* numeric's binary sign words. */
#define PG_NUMERIC_POS 0x0000
#define PG_NUMERIC_NEG 0x4000

/* numeric's typmod: ((precision << 16) | (scale & 0x7ff)) + 4; the scale is an 11-bit
 * signed number since PostgreSQL 15 (numeric(3,-2), numeric(2,5)). */
static bool numeric_typmod(int typmod, int *precision, int *scale)
{
    if (typmod < 4)
        return false;
    int t = typmod - 4;
    *precision = (t >> 16) & 0xffff;
    *scale = ((t & 0x7ff) ^ 1024) - 1024;
    return true;
}

/* The binary decoder for a (non-array) type, if there is one here. typtype is pg_type's:
 * 'e' for an enum. */
bool lh_pg_scalar_kind(unsigned oid, int typmod, char typtype, pg_col *c)
{
    switch (oid) {
    case PG_OID_BOOL:
        c->kind = PGV_BOOL;
        return true;
    case PG_OID_INT2:
        c->kind = PGV_INT2;
        return true;
    case PG_OID_INT4:
        c->kind = PGV_INT4;
        return true;
    case PG_OID_INT8:
        c->kind = PGV_INT8;
        return true;
    case PG_OID_FLOAT4:
        c->kind = PGV_FLOAT4;
        return true;
    case PG_OID_FLOAT8:
        c->kind = PGV_FLOAT8;
        return true;
    case PG_OID_TEXT:
    case PG_OID_VARCHAR:
    case PG_OID_BPCHAR:
    case PG_OID_NAME:
    case PG_OID_JSON:
        c->kind = PGV_TEXT;
        return true;
    case PG_OID_JSONB:
        c->kind = PGV_JSONB;
        return true;
    case PG_OID_BYTEA:
        c->kind = PGV_BYTEA;
        return true;
    case PG_OID_DATE:
        c->kind = PGV_DATE;
        return true;
    case PG_OID_TIME:
        c->kind = PGV_TIME;
        return true;
    case PG_OID_TIMESTAMP:
        c->kind = PGV_TIMESTAMP;
        return true;
    case PG_OID_TIMESTAMPTZ:
        c->kind = PGV_TIMESTAMPTZ;
        return true;
    case PG_OID_INTERVAL:
        c->kind = PGV_INTERVAL;
        return true;
    case PG_OID_UUID:
        c->kind = PGV_UUID;
        return true;
    case PG_OID_NUMERIC: {
        /* Unconstrained numeric holds up to 131072 digits, and a scale outside 0..p has
         * no DECIMAL: both arrive as their exact text. */
        int p, s;
        if (!numeric_typmod(typmod, &p, &s) || p < 1 || p > 38 || s < 0 || s > p)
            return false;
        c->kind = PGV_NUMERIC;
        c->precision = p;
        c->scale = s;
        return true;
    }
    default:
        if (typtype == 'e') { /* enum_send sends the label's text */
            c->kind = PGV_TEXT;
            return true;
        }
        return false;
    }
}

duckdb_logical_type lh_pg_kind_type(const pg_col *c)
{
    static const duckdb_type ids[] = {
        [PGV_BOOL] = DUCKDB_TYPE_BOOLEAN,
        [PGV_INT2] = DUCKDB_TYPE_SMALLINT,
        [PGV_INT4] = DUCKDB_TYPE_INTEGER,
        [PGV_INT8] = DUCKDB_TYPE_BIGINT,
        [PGV_FLOAT4] = DUCKDB_TYPE_FLOAT,
        [PGV_FLOAT8] = DUCKDB_TYPE_DOUBLE,
        [PGV_TEXT] = DUCKDB_TYPE_VARCHAR,
        [PGV_JSONB] = DUCKDB_TYPE_VARCHAR,
        [PGV_BYTEA] = DUCKDB_TYPE_BLOB,
        [PGV_DATE] = DUCKDB_TYPE_DATE,
        [PGV_TIME] = DUCKDB_TYPE_TIME,
        [PGV_TIMESTAMP] = DUCKDB_TYPE_TIMESTAMP,
        [PGV_TIMESTAMPTZ] = DUCKDB_TYPE_TIMESTAMP_TZ,
        [PGV_INTERVAL] = DUCKDB_TYPE_INTERVAL,
        [PGV_UUID] = DUCKDB_TYPE_UUID,
    };
    if (c->kind == PGV_NUMERIC)
        return duckdb_create_decimal_type((uint8_t)c->precision, (uint8_t)c->scale);
    return duckdb_create_logical_type(ids[c->kind]);
}

/* ---------------------------------------------------------------- binary decoding */

const char *const lh_pg_unmappable_why[] = {
    [DEC_NUMERIC_SPECIAL] = "it is not a finite number, which a DECIMAL cannot hold: cast the "
                            "column to text or double precision in a query",
    [DEC_NUMERIC_RANGE] = "it has more digits than the column's DECIMAL holds",
    [DEC_TIMESTAMP_RANGE] = "it is past DuckDB's last timestamp (294247-01-10)",
    [DEC_NOT_UTF8] = "it is not valid UTF-8",
    [DEC_ARRAY_DIMS] = "a LIST holds one-dimensional arrays only: select array_to_json(col) "
                       "to keep it as JSON",
    [DEC_INTERVAL_NEGATIVE] = "it has a negative part, which Parquet's INTERVAL cannot hold: "
                              "select extract(epoch from col) for seconds, or col::text",
};

/* numeric's binary form (ndigits, weight, sign, dscale, then ndigits base-10000 digits,
 * the first worth 10000^weight) as the value times 10^scale, exactly. NaN and ±Infinity
 * (sign words 0xC000, 0xD000, 0xF000) and values that do not fit are unmappable. */
static int decode_numeric(const char *s, int32_t len, int scale, __int128 *out)
{
    if (len < 8)
        return DEC_MALFORMED;
    int ndigits = (int16_t)rd16(s);
    int weight = (int16_t)rd16(s + 2);
    unsigned sign = rd16(s + 4);
    if (ndigits < 0 || len != 8 + 2 * ndigits)
        return DEC_MALFORMED;
    if (sign != PG_NUMERIC_POS && sign != PG_NUMERIC_NEG)
        return DEC_NUMERIC_SPECIAL;
    __int128 acc = 0;
    for (int i = 0; i < ndigits; i++) {
        int d = rd16(s + 8 + 2 * i);
        if (d > 9999)
            return DEC_MALFORMED;
        if (d == 0)
            continue;
        /* this digit's power of ten in the unscaled value */
        int e = 4 * (weight - i) + scale;
        __int128 term = d;
        if (e >= 0) {
            for (int k = 0; k < e; k++)
                if (__builtin_mul_overflow(term, 10, &term))
                    return DEC_NUMERIC_RANGE;
        } else {
            for (int k = 0; k < -e; k++) {
                if (term % 10 != 0) /* a digit past the scale: not exact */
                    return DEC_NUMERIC_RANGE;
                term /= 10;
            }
        }
        if (__builtin_add_overflow(acc, term, &acc))
            return DEC_NUMERIC_RANGE;
    }
    *out = sign == PG_NUMERIC_NEG ? -acc : acc;
    return DEC_OK;
}

static int put_text(duckdb_vector v, idx_t row, const char *s, int32_t len)
{
    /* client_encoding is UTF8, so the server converts; a SQL_ASCII database can still hold
     * bytes that are not UTF-8, which a VARCHAR must not */
    if (!lh_utf8_valid(s, (size_t)len))
        return DEC_NOT_UTF8;
    duckdb_vector_assign_string_element_len(v, row, s, (idx_t)len);
    return DEC_OK;
}

/* Writes one non-NULL value of kind into row `row` of v (whose logical type is vt). */
int lh_pg_decode_value(const pg_col *c, duckdb_vector v, idx_t row, const char *s, int32_t len)
{
    void *data = duckdb_vector_get_data(v);
    switch (c->kind) {
    case PGV_BOOL:
        if (len != 1)
            return DEC_MALFORMED;
        ((bool *)data)[row] = s[0] != 0;
        return DEC_OK;
    case PGV_INT2:
        if (len != 2)
            return DEC_MALFORMED;
        ((int16_t *)data)[row] = (int16_t)rd16(s);
        return DEC_OK;
    case PGV_INT4:
        if (len != 4)
            return DEC_MALFORMED;
        ((int32_t *)data)[row] = (int32_t)rd32(s);
        return DEC_OK;
    case PGV_INT8:
        if (len != 8)
            return DEC_MALFORMED;
        ((int64_t *)data)[row] = (int64_t)rd64(s);
        return DEC_OK;
    case PGV_FLOAT4: {
        if (len != 4)
            return DEC_MALFORMED;
        uint32_t bits = rd32(s);
        memcpy((float *)data + row, &bits, 4); /* NaN and ±Infinity bit for bit */
        return DEC_OK;
    }
    case PGV_FLOAT8: {
        if (len != 8)
            return DEC_MALFORMED;
        uint64_t bits = rd64(s);
        memcpy((double *)data + row, &bits, 8);
        return DEC_OK;
    }
    case PGV_NUMERIC: {
        __int128 u;
        int rc = decode_numeric(s, len, c->scale, &u);
        if (rc != DEC_OK)
            return rc;
        return lh_vec_put_decimal(v, c->vt, row, u) == 0 ? DEC_OK : DEC_NUMERIC_RANGE;
    }
    case PGV_JSONB: /* a version byte, then the JSON text */
        if (len < 1 || s[0] != 1)
            return DEC_MALFORMED;
        return put_text(v, row, s + 1, len - 1);
    case PGV_TEXT:
        return put_text(v, row, s, len);
    case PGV_BYTEA:
        duckdb_vector_assign_string_element_len(v, row, s, (idx_t)len);
        return DEC_OK;
    case PGV_DATE: {
        if (len != 4)
            return DEC_MALFORMED;
        int32_t d = (int32_t)rd32(s);
        /* ±infinity onto DuckDB's; every finite PostgreSQL date (4713 BC .. 5874897 AD)
         * fits after the shift */
        if (d == INT32_MAX)
            ((duckdb_date *)data)[row].days = INT32_MAX;
        else if (d == INT32_MIN)
            ((duckdb_date *)data)[row].days = -INT32_MAX;
        else
            ((duckdb_date *)data)[row].days = d + PG_EPOCH_DAYS;
        return DEC_OK;
    }
    case PGV_TIME:
        if (len != 8)
            return DEC_MALFORMED;
        ((duckdb_time *)data)[row].micros = (int64_t)rd64(s);
        return DEC_OK;
    case PGV_TIMESTAMP:
    case PGV_TIMESTAMPTZ: {
        if (len != 8)
            return DEC_MALFORMED;
        int64_t t = (int64_t)rd64(s), out;
        if (t == INT64_MAX)
            out = INT64_MAX;
        else if (t == INT64_MIN)
            out = -INT64_MAX;
        else if (__builtin_add_overflow(t, PG_EPOCH_MICROS, &out) || out == INT64_MAX ||
                 out == -INT64_MAX)
            return DEC_TIMESTAMP_RANGE;
        ((duckdb_timestamp *)data)[row].micros = out;
        return DEC_OK;
    }
    case PGV_INTERVAL: {
        if (len != 16)
            return DEC_MALFORMED;
        duckdb_interval *iv = (duckdb_interval *)data + row;
        iv->micros = (int64_t)rd64(s);
        iv->days = (int32_t)rd32(s + 8);
        iv->months = (int32_t)rd32(s + 12);
        /* DuckDB refuses to write a negative interval to Parquet: stop at this row, naming
         * it, rather than failing the part's write later with a message that names nothing */
        if (iv->micros < 0 || iv->days < 0 || iv->months < 0)
            return DEC_INTERVAL_NEGATIVE;
        return DEC_OK;
    }
    case PGV_UUID: {
        if (len != 16)
            return DEC_MALFORMED;
        /* DuckDB keeps a UUID as a hugeint with the top bit flipped, so that signed
         * comparison orders UUIDs as their bytes do */
        duckdb_hugeint *h = (duckdb_hugeint *)data + row;
        h->upper = (int64_t)(rd64(s) ^ (UINT64_C(1) << 63));
        h->lower = rd64(s + 8);
        return DEC_OK;
    }
    }
    return DEC_MALFORMED;
}

/* A one-dimensional array (ndim, has-null flag, element OID, [size, lower bound] per
 * dimension, then length-prefixed elements) into a LIST row. Lower bounds are dropped. */
int lh_pg_decode_array(const pg_col *c, duckdb_vector v, idx_t row, const char *s, int32_t len)
{
    if (len < 12)
        return DEC_MALFORMED;
    int32_t ndim = (int32_t)rd32(s);
    duckdb_list_entry *entries = duckdb_vector_get_data(v);
    duckdb_vector child = duckdb_list_vector_get_child(v);
    idx_t base = duckdb_list_vector_get_size(v);
    if (ndim == 0) {
        entries[row].offset = base;
        entries[row].length = 0;
        return len == 12 ? DEC_OK : DEC_MALFORMED;
    }
    if (ndim < 0)
        return DEC_MALFORMED;
    if (ndim != 1)
        return DEC_ARRAY_DIMS;
    if (len < 20)
        return DEC_MALFORMED;
    int32_t n = (int32_t)rd32(s + 12);
    if (n < 0 || n > (len - 20) / 4) /* each element takes at least its length word */
        return DEC_MALFORMED;
    const char *p = s + 20, *end = s + len;
    if (duckdb_list_vector_reserve(v, base + (idx_t)n) != DuckDBSuccess)
        return DEC_MALFORMED;
    for (int32_t k = 0; k < n; k++) {
        if (end - p < 4)
            return DEC_MALFORMED;
        int32_t el = (int32_t)rd32(p);
        p += 4;
        if (el == -1) {
            lh_vec_set_null(child, base + (idx_t)k);
            continue;
        }
        if (el < 0 || end - p < el)
            return DEC_MALFORMED;
        int rc = lh_pg_decode_value(c, child, base + (idx_t)k, p, el);
        if (rc != DEC_OK)
            return rc;
        p += el;
    }
    if (p != end)
        return DEC_MALFORMED;
    entries[row].offset = base;
    entries[row].length = (idx_t)n;
    duckdb_list_vector_set_size(v, base + (idx_t)n);
    return DEC_OK;
}
