/*
 * duck.h: DuckDB's C API as the files of src/query/ include it, and the one statement
 * runner they share. A leaf: it depends on nothing else in query/.
 */
#ifndef LH_QUERY_DUCK_H
#define LH_QUERY_DUCK_H

#include "core/core.h"
#include "storage/storage.h"

/* duckdb.h declares a few `f()` functions; keep -Wstrict-prototypes for our own code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <duckdb.h>
#pragma GCC diagnostic pop

/* Runs a statement on a connection; DuckDB errors become LH_EINVAL kind "sql_error". */
int lh_duck_exec(duckdb_connection conn, const char *sql, lh_error *err);
/* lh_duck_exec keeping the result: *res is the statement's result on success; the caller
 * destroys it (duckdb_destroy_result) whatever the return. */
int lh_duck_query(duckdb_connection conn, const char *sql, duckdb_result *res, lh_error *err);

/* Appends "read_parquet(['<path>', ...])" over the objects keys[0..n) of bucket, each path
 * an SQL literal: the one place a dataset's parts become a relation (dataset views,
 * compaction). 0, or LH_ENOTFOUND/LH_EINVAL + err when a path cannot be resolved (b then
 * holds a partial text; the caller frees it). */
int lh_duck_put_read_parquet(lh_buf *b, lh_storage *st, const char *bucket, const char *const *keys,
                             size_t n, lh_error *err);

#endif
