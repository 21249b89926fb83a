/*
 * pg_internal.h: what pg.c (connection, describe, stream) and pg_types.c (the type mapping
 * and the binary decoders) share. Only these two files include it.
 */
#ifndef LH_PG_INTERNAL_H
#define LH_PG_INTERNAL_H

#include "sources_internal.h"

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The binary decoder of a value (of each element, for an array column). */
typedef enum {
    PGV_BOOL,
    PGV_INT2,
    PGV_INT4,
    PGV_INT8,
    PGV_FLOAT4,
    PGV_FLOAT8,
    PGV_NUMERIC, /* numeric(p,s), p <= 38, 0 <= s <= p: DECIMAL(p,s) */
    PGV_TEXT,    /* text, varchar, char(n), name, json, enums, and every ::text cast */
    PGV_JSONB,   /* a version byte (1), then the JSON text */
    PGV_BYTEA,
    PGV_DATE,
    PGV_TIME,
    PGV_TIMESTAMP,
    PGV_TIMESTAMPTZ,
    PGV_INTERVAL,
    PGV_UUID,
} pg_kind;

typedef struct pg_col {
    pg_kind kind;
    bool is_array;          /* a one-dimensional array: LIST of kind */
    const char *cast;       /* "", "::text" or "::text[]" in the COPY's select list */
    int precision, scale;   /* PGV_NUMERIC */
    duckdb_logical_type vt; /* the type kind's values are written as (the list's child
                               for an array); owned */
} pg_col;

/* Big-endian reads of the binary COPY format. */
static inline uint16_t rd16(const char *s)
{
    uint16_t v;
    memcpy(&v, s, 2);
    return be16toh(v);
}

static inline uint32_t rd32(const char *s)
{
    uint32_t v;
    memcpy(&v, s, 4);
    return be32toh(v);
}

static inline uint64_t rd64(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return be64toh(v);
}

/* What decoding one value found: written, a malformed message (a protocol error), or one of
 * the reasons a value is unmappable (the message names the reason, never the value). */
enum {
    DEC_OK = 0,
    DEC_MALFORMED,
    DEC_NUMERIC_SPECIAL, /* NaN, ±Infinity in numeric(p,s) */
    DEC_NUMERIC_RANGE,   /* more digits than DECIMAL(p,s) holds */
    DEC_TIMESTAMP_RANGE, /* past DuckDB's timestamps */
    DEC_NOT_UTF8,
    DEC_ARRAY_DIMS,        /* an array with more than one dimension */
    DEC_INTERVAL_NEGATIVE, /* an interval with a negative part (Parquet cannot hold it) */
};

/* Why a value was unmappable, indexed by the DEC_* code (for the error message). */
extern const char *const lh_pg_unmappable_why[];

/* The binary decoder of a non-array type, if there is one (fills c->kind and, for numeric,
 * c->precision and c->scale); false: the column is selected as ::text. typtype is pg_type's
 * ('e' for an enum). */
bool lh_pg_scalar_kind(unsigned oid, int typmod, char typtype, pg_col *c);
/* The DuckDB type values of c->kind are delivered as. Caller destroys it. */
duckdb_logical_type lh_pg_kind_type(const pg_col *c);
/* Writes one non-NULL value s[0..len) of c->kind into row `row` of v (of type c->vt), or of
 * a LIST v (c->is_array) whose child gets the elements. DEC_OK or a DEC_* code. */
int lh_pg_decode_value(const pg_col *c, duckdb_vector v, idx_t row, const char *s, int32_t len);
int lh_pg_decode_array(const pg_col *c, duckdb_vector v, idx_t row, const char *s, int32_t len);

#endif
