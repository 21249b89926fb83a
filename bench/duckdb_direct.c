/*
 * duckdb_direct: the baseline of the ingest benchmark. Converts a CSV to Parquet with
 * DuckDB alone, no server, no HTTP, no catalog:
 *
 *   duckdb_direct IN.csv OUT.parquet        prints "rows=N seconds=S"
 *
 * The statement is the one the server's ingest runs (src/ingest): keep the two in step,
 * or the ratio printed by bench/ingest compares different work. Seconds cover opening
 * the in-memory database, the COPY and closing it; the process start is not counted.
 * Threads are DuckDB's default (all cores), as in the server's default configuration.
 */
#include "duckdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Quotes s as a SQL string literal ('' for each '). Caller frees. */
static char *sql_literal(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out = malloc(2 * n + 3);
    if (!out)
        return NULL;
    out[o++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            out[o++] = '\'';
        out[o++] = s[i];
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    duckdb_database db = NULL;
    duckdb_connection con = NULL;
    duckdb_result res;
    bool has_result = false;
    char *in = NULL, *out = NULL, *sql = NULL;
    int rc = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: duckdb_direct IN.csv OUT.parquet\n");
        return 2;
    }
    in = sql_literal(argv[1]);
    out = sql_literal(argv[2]);
    if (!in || !out)
        goto out;
    size_t len = strlen(in) + strlen(out) + 160;
    sql = malloc(len);
    if (!sql)
        goto out;
    snprintf(sql, len,
             "COPY (SELECT * FROM read_csv(%s, auto_detect=true)) TO %s "
             "(FORMAT parquet, COMPRESSION zstd)",
             in, out);

    double started = now_s();
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &con) != DuckDBSuccess) {
        fprintf(stderr, "duckdb_direct: cannot open an in-memory DuckDB\n");
        goto out;
    }
    has_result = true;
    if (duckdb_query(con, sql, &res) != DuckDBSuccess) {
        fprintf(stderr, "duckdb_direct: %s\n", duckdb_result_error(&res));
        goto out;
    }
    /* COPY answers with one row: the number of rows written. */
    int64_t rows = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);
    has_result = false;
    duckdb_disconnect(&con);
    duckdb_close(&db);
    double seconds = now_s() - started;
    printf("rows=%lld seconds=%.3f\n", (long long)rows, seconds);
    rc = 0;
out:
    if (has_result)
        duckdb_destroy_result(&res);
    if (con)
        duckdb_disconnect(&con);
    if (db)
        duckdb_close(&db);
    free(sql);
    free(out);
    free(in);
    return rc;
}
