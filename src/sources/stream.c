/*
 * stream.c: the private DuckDB instance of a sync (sync.c), which exposes an open reader as
 * the table function lh_source_stream() so one COPY moves its rows into a Parquet part a
 * chunk at a time.
 *
 * Private: opened per sync (duckdb_open(NULL)), with its own memory limit, one thread and
 * no spilling, so nothing a user sends can name the stream and a large sync cannot take the
 * query engine's memory. The table function calls the reader's next() on the thread
 * running the COPY (the instance has one thread), reports progress per chunk and checks
 * the job's cancel; a reader error is kept in the lh_sync_stream as the reader set it (the
 * COPY's own error only says that the stream stopped).
 */
#include "sources_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The instance's limits: the Parquet writer holds one row group (122,880 rows) per column
 * while it fills it, and nothing else is buffered; one thread, because the reader is one
 * stream. */
#define SYNC_MEMORY_LIMIT "256MB"
#define SYNC_THREADS "1"

static void stream_bind(duckdb_bind_info info)
{
    lh_sync_stream *s = duckdb_bind_get_extra_info(info);
    for (size_t i = 0; i < s->r->ncols; i++)
        duckdb_bind_add_result_column(info, s->r->names[i], s->r->types[i]);
}

static void stream_init(duckdb_init_info info)
{
    duckdb_init_set_max_threads(info, 1);
}

/* One chunk: the reader fills it; progress and the cancel are checked per chunk. */
static void stream_next(duckdb_function_info info, duckdb_data_chunk out)
{
    lh_sync_stream *s = duckdb_function_get_extra_info(info);
    if (s->done || s->rc) {
        duckdb_data_chunk_set_size(out, 0);
        return;
    }
    int rc = lh_job_cancelled(s->job)
                 ? lh_error_setk(&s->error, LH_ECANCELLED, "cancelled", "the sync was cancelled")
                 : s->r->next(s->r, out, &s->error);
    if (rc == 0 && lh_job_cancelled(s->job))
        rc = lh_error_setk(&s->error, LH_ECANCELLED, "cancelled", "the sync was cancelled");
    if (rc) {
        s->rc = rc;
        duckdb_data_chunk_set_size(out, 0);
        duckdb_function_set_error(info, "the source stream stopped");
        return;
    }
    if (duckdb_data_chunk_get_size(out) == 0)
        s->done = true;
    lh_job_progress(s->job, s->r->rows, 0);
}

int lh_sync_stream_open(lh_sync_stream *s, lh_db_reader *r, lh_job *job, lh_error *err)
{
    duckdb_database *db = &s->db;
    duckdb_connection *conn = &s->conn;
    s->r = r;
    s->job = job;
    duckdb_config cfg = NULL;
    char *derr = NULL;
    int rc = 0;
    *db = NULL;
    *conn = NULL;
    if (duckdb_create_config(&cfg) == DuckDBError)
        return lh_error_set(err, LH_EINTERNAL, "cannot configure DuckDB for the sync");
    duckdb_set_config(cfg, "memory_limit", SYNC_MEMORY_LIMIT);
    duckdb_set_config(cfg, "threads", SYNC_THREADS);
    duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
    /* Nothing spills: a COPY from a stream holds a row group, and a sync that needed more
     * should fail rather than fill the disk. */
    duckdb_set_config(cfg, "max_temp_directory_size", "0B");
    if (duckdb_open_ext(NULL, db, cfg, &derr) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot open the sync's DuckDB: %s",
                          derr ? derr : "unknown error");
        *db = NULL;
        goto out;
    }
    if (duckdb_connect(*db, conn) == DuckDBError) {
        *conn = NULL;
        rc = lh_error_set(err, LH_EINTERNAL, "cannot connect to the sync's DuckDB");
        goto out;
    }
    duckdb_result res;
    if (duckdb_query(*conn, "SET TimeZone = 'UTC'", &res) == DuckDBError) {
        /* Without ICU, TIMESTAMPTZ text is UTC already. */
    }
    duckdb_destroy_result(&res);
    duckdb_table_function f = duckdb_create_table_function();
    duckdb_table_function_set_name(f, LH_SYNC_STREAM_FN);
    duckdb_table_function_set_extra_info(f, s, NULL);
    duckdb_table_function_set_bind(f, stream_bind);
    duckdb_table_function_set_init(f, stream_init);
    duckdb_table_function_set_function(f, stream_next);
    if (duckdb_register_table_function(*conn, f) == DuckDBError)
        rc = lh_error_set(err, LH_EINTERNAL, "cannot register the sync's stream function");
    duckdb_destroy_table_function(&f);
out:
    if (derr)
        duckdb_free(derr);
    duckdb_destroy_config(&cfg);
    return rc;
}

void lh_sync_stream_close(lh_sync_stream *s)
{
    if (s->conn)
        duckdb_disconnect(&s->conn);
    if (s->db)
        duckdb_close(&s->db);
    s->conn = NULL;
    s->db = NULL;
}

/* A VARCHAR cell of a result chunk, or NULL. Caller frees. */
static char *cell_text(duckdb_data_chunk chunk, idx_t col, idx_t row)
{
    duckdb_vector v = duckdb_data_chunk_get_vector(chunk, col);
    uint64_t *valid = duckdb_vector_get_validity(v);
    if (valid && !duckdb_validity_row_is_valid(valid, row))
        return NULL;
    duckdb_string_t *s = (duckdb_string_t *)duckdb_vector_get_data(v) + row;
    uint32_t len = duckdb_string_t_length(*s);
    char *out = lh_xmalloc(len + 1);
    memcpy(out, duckdb_string_t_data(s), len);
    out[len] = '\0';
    return out;
}

json_t *lh_sync_stream_rows(lh_sync_stream *s, const char *sql, lh_error *err)
{
    duckdb_connection conn = s->conn;
    duckdb_result res;
    if (duckdb_query(conn, sql, &res) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "sync: %s", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        return NULL;
    }
    json_t *rows = json_array();
    idx_t ncols = duckdb_column_count(&res);
    duckdb_data_chunk chunk;
    while ((chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(chunk);
        for (idx_t r = 0; r < n; r++) {
            json_t *row = json_array();
            for (idx_t c = 0; c < ncols; c++) {
                char *t = cell_text(chunk, c, r);
                json_array_append_new(row, t ? json_string(t) : json_null());
                free(t);
            }
            json_array_append_new(rows, row);
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
    return rows;
}

json_t *lh_sync_stream_schema(lh_sync_stream *s, lh_error *err)
{
    const lh_db_reader *r = s->r;
    json_t *rows = lh_sync_stream_rows(s, "DESCRIBE SELECT * FROM " LH_SYNC_STREAM_FN "()", err);
    if (!rows)
        return NULL;
    json_t *schema = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *st = i < r->ncols && r->source_types ? r->source_types[i] : NULL;
        bool is_json = st && (strcasecmp(st, "json") == 0 || strcasecmp(st, "jsonb") == 0);
        json_array_append_new(
            schema, json_pack("{s:O,s:s}", "name", json_array_get(row, 0), "type",
                              is_json ? "JSON" : json_string_value(json_array_get(row, 1))));
    }
    json_decref(rows);
    return schema;
}
