/*
 * duck.c: SQL quoting (query.h) and the statement runner every file of src/query/ shares
 * (duck.h).
 */
#include "duck.h"

#include "query/query.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- quoting */

static char *sql_quote(const char *s, char q)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_putc(&b, q);
    for (const char *p = s; *p; p++) {
        if (*p == q)
            lh_buf_putc(&b, q);
        lh_buf_putc(&b, *p);
    }
    lh_buf_putc(&b, q);
    return b.data;
}

char *lh_sql_ident(const char *name)
{
    return sql_quote(name, '"');
}

char *lh_sql_literal(const char *text)
{
    return sql_quote(text, '\'');
}

int lh_duck_put_read_parquet(lh_buf *b, lh_storage *st, const char *bucket, const char *const *keys,
                             size_t n, lh_error *err)
{
    lh_buf_puts(b, "read_parquet([");
    for (size_t i = 0; i < n; i++) {
        char *path = lh_storage_path(st, bucket, keys[i], err);
        if (!path)
            return err ? err->code : LH_EINVAL;
        char *lit = lh_sql_literal(path);
        lh_buf_printf(b, "%s%s", i ? ", " : "", lit);
        free(lit);
        free(path);
    }
    lh_buf_puts(b, "])");
    return 0;
}

/* ---------------------------------------------------------------- statements */

int lh_duck_query(duckdb_connection conn, const char *sql, duckdb_result *res, lh_error *err)
{
    if (duckdb_query(conn, sql, res) != DuckDBError)
        return 0;
    const char *msg = duckdb_result_error(res);
    return lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
}

int lh_duck_exec(duckdb_connection conn, const char *sql, lh_error *err)
{
    duckdb_result r;
    int rc = lh_duck_query(conn, sql, &r, err);
    duckdb_destroy_result(&r);
    return rc;
}
