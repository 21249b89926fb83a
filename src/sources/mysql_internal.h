/*
 * mysql_internal.h: what the two files of the MySQL reader share: mysql.c (the connection,
 * the statement, the stream) and mysql_types.c (the type mapping of docs/INGEST.md and the
 * conversion of the text protocol's values into DuckDB vectors). Nothing outside
 * src/sources/ (and the reader's unit test) includes it.
 */
#ifndef LH_MYSQL_INTERNAL_H
#define LH_MYSQL_INTERNAL_H

#include "sources_internal.h"

#include <mysql.h>

#define LH_MYSQL_BINARY_CHARSET 63 /* charsetnr of binary strings: BLOB, not VARCHAR */

/* How a column's text becomes a vector value. */
typedef enum {
    LH_MYCOL_BOOL,
    LH_MYCOL_INT8,
    LH_MYCOL_INT16,
    LH_MYCOL_INT32,
    LH_MYCOL_INT64,
    LH_MYCOL_UINT8,
    LH_MYCOL_UINT16,
    LH_MYCOL_UINT32,
    LH_MYCOL_UINT64,
    LH_MYCOL_DECIMAL,
    LH_MYCOL_FLOAT,
    LH_MYCOL_DOUBLE,
    LH_MYCOL_DATE,
    LH_MYCOL_TIMESTAMP, /* datetime and timestamp: the same text, the same microseconds */
    LH_MYCOL_TIME,      /* a duration: INTERVAL */
    LH_MYCOL_YEAR,
    LH_MYCOL_BIT,
    LH_MYCOL_TEXT, /* checked to be UTF-8 */
    LH_MYCOL_BLOB,
    LH_MYCOL_SET,
} lh_mysql_col_kind;

typedef struct lh_mysql_col {
    lh_mysql_col_kind kind;
    int precision, scale;     /* LH_MYCOL_DECIMAL */
    duckdb_logical_type type; /* borrowed: the reader's types[i] (decimals need it) */
    idx_t list_size;          /* LH_MYCOL_SET: the child vector's size in the current chunk;
                                 the reader zeroes it for each chunk */
} lh_mysql_col;

/* Maps one result field: sets *col (all but its type), *type (caller destroys) and
 * *source_type ("tinyint(1)", "decimal(12,2) unsigned", "json", ...; caller frees). Every
 * field maps (an unknown type becomes VARCHAR, or BLOB when binary). */
void lh_mysql_map_field(const MYSQL_FIELD *f, lh_mysql_col *col, duckdb_logical_type *type,
                        char **source_type);

/* Stores the text protocol's value s[0..n) (not NULL) into row `row` of v, a vector of the
 * column's mapped type whose data array is `data`. 0, or -1 when the text cannot be held by
 * the type (an unmappable value: the caller names the row and column). Zero dates are
 * stored as NULL. */
int lh_mysql_put_value(lh_mysql_col *col, duckdb_vector v, void *data, idx_t row, const char *s,
                       size_t n);

#endif
