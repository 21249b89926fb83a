/*
 * duck.h: DuckDB's C API as the files of src/query/ include it, and the one statement
 * runner they share. A leaf: it depends on nothing else in query/.
 */
#ifndef LH_QUERY_DUCK_H
#define LH_QUERY_DUCK_H

#include "core/core.h"

/* duckdb.h declares a few `f()` functions; keep -Wstrict-prototypes for our own code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <duckdb.h>
#pragma GCC diagnostic pop

/* Runs a statement on a connection; DuckDB errors become LH_EINVAL kind "sql_error". */
int lh_duck_exec(duckdb_connection conn, const char *sql, lh_error *err);

#endif
