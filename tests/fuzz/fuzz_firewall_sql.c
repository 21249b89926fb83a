/*
 * fuzz_firewall_sql: arbitrary bytes as SQL text, through DuckDB's real parser and the
 * firewall, the way POST /query/sql sees them.
 *
 * Each input is judged twice:
 *   - directly: json_serialize_sql(?) with the text bound as a parameter, then
 *     lh_sql_firewall_tree under the three policies (oracles in fuzz_policy.h, plus: DuckDB's
 *     output is always readable, never a 500);
 *   - through lh_sql_firewall on a real lh_engine (the server's path, which quotes the text
 *     into a SQL literal with lh_sql_literal): the agent's verdict must be the same. A
 *     difference means the quoting changed what was parsed, i.e. user text escaped its
 *     literal.
 * The text stops at the first NUL byte: request bodies are JSON strings, which jansson
 * never decodes with a NUL inside.
 */
#include "fuzz_policy.h"

#include "catalog/catalog.h"
#include "storage/storage.h"

#include "duckdb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static duckdb_database db;
static duckdb_connection conn;
static char *data_dir;
static lh_config cfg;
static lh_storage *st;
static lh_catalog *cat;
static lh_engine *eng;

static void teardown(void)
{
    lh_engine_close(eng);
    lh_catalog_close(cat);
    lh_storage_close(st);
    if (data_dir)
        lh_fs_remove_tree(data_dir, NULL);
    free(data_dir);
    duckdb_disconnect(&conn);
    duckdb_close(&db);
}

static void setup(void)
{
    lh_log_set_level(LH_LOG_ERROR);
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &conn) != DuckDBSuccess) {
        fprintf(stderr, "fuzz_firewall_sql: cannot set up DuckDB\n");
        abort();
    }
    char tmpl[] = "/tmp/lh-fuzz-sql-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    data_dir = lh_xstrdup(tmpl);
    cfg.query_timeout_ms = 5000;
    cfg.query_default_rows = 10;
    cfg.query_max_rows = 10;
    cfg.max_concurrent_queries = 1;
    cfg.duckdb_threads = 1;
    cfg.duckdb_memory_mb = 256;
    lh_error err;
    if (!(st = lh_storage_open(data_dir, &err)) || !(cat = lh_catalog_open(st, &err)) ||
        !(eng = lh_engine_open(&cfg, st, cat, &err))) {
        fprintf(stderr, "fuzz_firewall_sql: %s\n", err.message);
        abort();
    }
    atexit(teardown);
}

/* json_serialize_sql of sql, or NULL when DuckDB will not take the text (invalid UTF-8).
 * Caller frees. The statement is prepared per input: DuckDB 1.4 keeps ~600 bytes per
 * execution of a reused prepared statement until it is destroyed, which a long fuzzing run
 * would take for a leak. */
static char *serialize_sql(const char *sql)
{
    duckdb_prepared_statement ps = NULL;
    duckdb_result res;
    char *out = NULL;
    bool have_result = false;
    if (duckdb_prepare(conn, "SELECT json_serialize_sql(?::VARCHAR)", &ps) != DuckDBSuccess)
        goto out;
    if (duckdb_bind_varchar(ps, 1, sql) != DuckDBSuccess)
        goto out;
    have_result = true;
    if (duckdb_execute_prepared(ps, &res) != DuckDBSuccess)
        goto out;
    char *v = duckdb_value_varchar(&res, 0, 0);
    out = v ? lh_xstrdup(v) : NULL;
    duckdb_free(v);
out:
    if (have_result)
        duckdb_destroy_result(&res);
    duckdb_destroy_prepare(&ps);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!eng)
        setup();
    if (size > 64 * 1024)
        return 0;
    char *sql = malloc(size + 1);
    if (!sql)
        return 0;
    memcpy(sql, data, size);
    sql[size] = '\0';
    char *tree = serialize_sql(sql);
    if (tree) {
        int direct = lh_fuzz_check_tree(tree, true);
        lh_error err;
        lh_error_clear(&err);
        int served = lh_sql_firewall(eng, sql, &lh_fuzz_policies[0], &err);
        /* the server refuses an empty text before parsing it */
        if (*sql && served != direct) {
            fprintf(stderr, "sql: %s\ndirect %d, through the engine %d (%s)\n", sql, direct, served,
                    err.message);
            abort();
        }
        free(tree);
    }
    free(sql);
    return 0;
}
