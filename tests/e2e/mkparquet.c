/*
 * mkparquet: writes a Parquet file from a CSV with DuckDB, independently of the server,
 * so the end-to-end tests can ingest a real Parquet file they did not get from us.
 *   mkparquet IN.csv OUT.parquet
 * and, for the erasure test, reads any Parquet file back as CSV text (Parquet pages are
 * compressed, so a byte scan of the file itself proves nothing):
 *   mkparquet --dump IN.parquet OUT.csv
 */
#include <duckdb.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int dump = argc == 4 && strcmp(argv[1], "--dump") == 0;
    if (dump) {
        argv++;
        argc--;
    }
    if (argc != 3 || strchr(argv[1], '\'') || strchr(argv[2], '\'')) {
        fprintf(stderr, "usage: mkparquet [--dump] IN OUT (paths without quotes)\n");
        return 2;
    }
    duckdb_database db;
    duckdb_connection con;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &con) != DuckDBSuccess) {
        fprintf(stderr, "mkparquet: cannot open DuckDB\n");
        return 1;
    }
    char sql[8192];
    if (dump)
        snprintf(sql, sizeof(sql), "COPY (SELECT * FROM read_parquet('%s')) TO '%s' (FORMAT csv)",
                 argv[1], argv[2]);
    else
        snprintf(sql, sizeof(sql),
                 "COPY (SELECT * FROM read_csv('%s', auto_detect=true)) TO '%s' (FORMAT parquet)",
                 argv[1], argv[2]);
    duckdb_result res;
    int rc = 0;
    if (duckdb_query(con, sql, &res) != DuckDBSuccess) {
        fprintf(stderr, "mkparquet: %s\n", duckdb_result_error(&res));
        rc = 1;
    }
    duckdb_destroy_result(&res);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    return rc;
}
