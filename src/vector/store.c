/*
 * store.c: the vector module's private DuckDB, which writes and scans the Parquet parts of
 * indexes (`doc_id, chunk, text, embedding FLOAT[dim], label, doc_hash`).
 *
 * Invariants:
 *   - One in-memory instance per lh_vectors, opened on first use, with its external access
 *     limited to every bucket's datasets/ folder and <data>/_tmp/ (allowed_directories,
 *     enable_external_access = false, lock_configuration = true, as query/engine.c does),
 *     its own memory limit and threads. User SQL never reaches it. A bucket added later
 *     is not in the locked list: the next connect opens a new instance with the current
 *     list (the old one stays open until close, for connections still using it).
 *   - A part is whole or absent under its final name: COPY writes a temp name beside it,
 *     then lh_fs_commit fsyncs, renames and fsyncs the folder. A failure removes the temp.
 *   - Rows are appended as data chunks (the embedding through the array vector's child),
 *     never as SQL text: a document's text is data, not SQL.
 */
#include "registry_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void lh_vstore_init(lh_vectors *v)
{
    pthread_mutex_init(&v->db_mu, NULL);
}

void lh_vstore_close(lh_vectors *v)
{
    if (v->db)
        duckdb_close(&v->db);
    for (size_t i = 0; i < v->n_old_dbs; i++)
        duckdb_close(&v->old_dbs[i]);
    free(v->old_dbs);
    free(v->db_dirs);
    pthread_mutex_destroy(&v->db_mu);
}

static int exec(duckdb_connection c, const char *sql, lh_error *err)
{
    duckdb_result res;
    int rc = 0;
    if (duckdb_query(c, sql, &res) == DuckDBError)
        rc = lh_error_set(err, LH_EINTERNAL, "vector store: %.400s", duckdb_result_error(&res));
    duckdb_destroy_result(&res);
    return rc;
}

/* "SET allowed_directories = [...]" for the current buckets; NULL + err on failure. */
static char *allowed_dirs_sql(lh_vectors *v)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SET allowed_directories = [");
    char **roots = lh_storage_roots(v->vc.st);
    for (size_t i = 0; roots && roots[i]; i++) {
        char *dir = lh_xasprintf("%s/datasets/", roots[i]);
        char *lit = lh_sql_literal(dir);
        lh_buf_printf(&b, "%s%s", i ? ", " : "", lit);
        free(lit);
        free(dir);
        free(roots[i]);
    }
    free(roots);
    char *tmp = lh_xasprintf("%s/_tmp/", v->vc.cfg->data_dir);
    char *lit = lh_sql_literal(tmp);
    lh_buf_printf(&b, ", %s]", lit);
    free(lit);
    free(tmp);
    return b.data;
}

/* Opens a locked-down instance allowing dirs_sql. Caller holds db_mu. */
static int open_db(lh_vectors *v, const char *dirs_sql, duckdb_database *out, lh_error *err)
{
    duckdb_config cfg = NULL;
    duckdb_connection c = NULL;
    char *open_err = NULL;
    char threads[16], memory[32];
    int rc = 0;
    *out = NULL;
    snprintf(threads, sizeof(threads), "%d", LH_VECTOR_DUCKDB_THREADS);
    snprintf(memory, sizeof(memory), "%dMiB", LH_VECTOR_DUCKDB_MEMORY_MB);
    const char *settings[][2] = {{"threads", threads},
                                 {"memory_limit", memory},
                                 {"temp_directory", v->tmp_dir},
                                 {"autoinstall_known_extensions", "false"},
                                 {"autoload_known_extensions", "false"}};
    if (lh_fs_mkdirs(v->tmp_dir, LH_DIR_MODE, err) != 0)
        return err ? err->code : LH_EIO;
    if (duckdb_create_config(&cfg) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot create the vector store's configuration");
        goto out;
    }
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (duckdb_set_config(cfg, settings[i][0], settings[i][1]) == DuckDBError) {
            rc = lh_error_set(err, LH_EINTERNAL, "DuckDB refused %s = '%s'", settings[i][0],
                              settings[i][1]);
            goto out;
        }
    if (duckdb_open_ext(NULL, out, cfg, &open_err) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot open the vector store: %s",
                          open_err ? open_err : "unknown error");
        *out = NULL;
        goto out;
    }
    if (duckdb_connect(*out, &c) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot connect to the vector store");
        goto out;
    }
    /* Directories first (external access off forbids changing them), then the lock. */
    const char *steps[] = {"SET GLOBAL TimeZone = 'UTC'", dirs_sql,
                           "SET enable_external_access = false", "SET lock_configuration = true"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if ((rc = exec(c, steps[i], err)) != 0)
            goto out;
out:
    if (c)
        duckdb_disconnect(&c);
    if (cfg)
        duckdb_destroy_config(&cfg);
    if (open_err)
        duckdb_free(open_err);
    if (rc && *out)
        duckdb_close(out);
    return rc;
}

int lh_vstore_connect(lh_vectors *v, duckdb_connection *out, lh_error *err)
{
    char *dirs = allowed_dirs_sql(v);
    int rc = 0;
    pthread_mutex_lock(&v->db_mu);
    if (!v->db || strcmp(v->db_dirs, dirs) != 0) {
        duckdb_database db;
        if ((rc = open_db(v, dirs, &db, err)) != 0)
            goto out;
        if (v->db) { /* connections of the old instance may still run: close it at close */
            v->old_dbs = lh_xrealloc(v->old_dbs, (v->n_old_dbs + 1) * sizeof(*v->old_dbs));
            v->old_dbs[v->n_old_dbs++] = v->db;
        }
        v->db = db;
        free(v->db_dirs);
        v->db_dirs = dirs;
        dirs = NULL;
    }
    if (duckdb_connect(v->db, out) == DuckDBError)
        rc = lh_error_set(err, LH_EINTERNAL, "cannot connect to the vector store");
out:
    pthread_mutex_unlock(&v->db_mu);
    free(dirs);
    return rc;
}

/* ---------------------------------------------------------------- writing */

/* COPYs `select` to a temp file beside path and commits it under path (fsync, rename,
 * folder fsync). *rows gets the rows written. keep_empty false: a result without rows is
 * not written (*rows = 0). */
static int copy_commit(duckdb_connection c, const char *select, const char *path, bool keep_empty,
                       int64_t *rows, lh_error *err)
{
    char hex[17];
    lh_random_hex(hex, 16);
    char *tmp = lh_xasprintf("%s.tmp-%s", path, hex);
    char *lit = lh_sql_literal(tmp);
    char *sql = lh_xasprintf("COPY (%s) TO %s %s", select, lit, LH_PARQUET_COPY_OPTIONS);
    duckdb_result res;
    int rc = 0;
    bool renamed = false;
    if (duckdb_query(c, sql, &res) == DuckDBError) {
        rc = lh_error_set(err, LH_EIO, "cannot write a vector part: %.300s",
                          duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        goto out;
    }
    int64_t n = (int64_t)duckdb_rows_changed(&res);
    duckdb_destroy_result(&res);
    if (rows)
        *rows = n;
    if (n == 0 && !keep_empty)
        goto out;
    if (chmod(tmp, LH_FILE_MODE) != 0) {
        rc = lh_error_set(err, LH_EIO, "cannot set the mode of a vector part");
        goto out;
    }
    rc = lh_fs_commit(tmp, path, err);
    /* after the rename (also when the folder fsync failed) the temp name is gone */
    renamed = rc == 0 || lh_error_not_durable(err);
out:
    if (!renamed)
        unlink(tmp);
    free(sql);
    free(lit);
    free(tmp);
    return rc;
}

int lh_vstore_write_part(lh_vectors *v, const char *path, const lh_vrows *rows, lh_error *err)
{
    duckdb_connection c = NULL;
    duckdb_appender app = NULL;
    duckdb_data_chunk chunk = NULL;
    duckdb_logical_type types[6] = {0};
    char hex[17], table[32];
    int rc = 0;
    bool created = false;
    lh_random_hex(hex, 16);
    snprintf(table, sizeof(table), "part_%s", hex);
    if (rows->dim < 1)
        return lh_error_set(err, LH_EINTERNAL, "a vector part needs a dimension");
    if ((rc = lh_vstore_connect(v, &c, err)) != 0)
        return rc;
    char *ddl = lh_xasprintf("CREATE TABLE %s (doc_id VARCHAR, chunk INTEGER, text VARCHAR, "
                             "embedding FLOAT[%d], label BIGINT, doc_hash VARCHAR)",
                             table, rows->dim);
    rc = exec(c, ddl, err);
    free(ddl);
    if (rc)
        goto out;
    created = true;
    if (duckdb_appender_create(c, NULL, table, &app) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store");
        goto out;
    }
    duckdb_logical_type flt = duckdb_create_logical_type(DUCKDB_TYPE_FLOAT);
    types[0] = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    types[1] = duckdb_create_logical_type(DUCKDB_TYPE_INTEGER);
    types[2] = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    types[3] = duckdb_create_array_type(flt, (idx_t)rows->dim);
    types[4] = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    types[5] = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    duckdb_destroy_logical_type(&flt);
    chunk = duckdb_create_data_chunk(types, 6);
    size_t cap = (size_t)duckdb_vector_size();
    for (size_t at = 0; at < rows->n; at += cap) {
        size_t m = rows->n - at < cap ? rows->n - at : cap;
        duckdb_data_chunk_reset(chunk);
        duckdb_vector id_v = duckdb_data_chunk_get_vector(chunk, 0);
        duckdb_vector ch_v = duckdb_data_chunk_get_vector(chunk, 1);
        duckdb_vector tx_v = duckdb_data_chunk_get_vector(chunk, 2);
        duckdb_vector em_v = duckdb_data_chunk_get_vector(chunk, 3);
        duckdb_vector lb_v = duckdb_data_chunk_get_vector(chunk, 4);
        duckdb_vector hs_v = duckdb_data_chunk_get_vector(chunk, 5);
        int32_t *ch = duckdb_vector_get_data(ch_v);
        int64_t *lb = duckdb_vector_get_data(lb_v);
        float *em = duckdb_vector_get_data(duckdb_array_vector_get_child(em_v));
        for (size_t i = 0; i < m; i++) {
            size_t r = at + i;
            duckdb_vector_assign_string_element_len(id_v, i, rows->doc_ids[r],
                                                    strlen(rows->doc_ids[r]));
            duckdb_vector_assign_string_element_len(tx_v, i, rows->texts[r],
                                                    strlen(rows->texts[r]));
            duckdb_vector_assign_string_element_len(hs_v, i, rows->doc_hashes[r],
                                                    strlen(rows->doc_hashes[r]));
            ch[i] = rows->chunks[r];
            lb[i] = rows->labels[r];
            memcpy(em + i * (size_t)rows->dim, rows->vecs + r * (size_t)rows->dim,
                   (size_t)rows->dim * sizeof(float));
        }
        duckdb_data_chunk_set_size(chunk, m);
        if (duckdb_append_data_chunk(app, chunk) == DuckDBError) {
            rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store: %s",
                              duckdb_appender_error(app));
            goto out;
        }
    }
    if (duckdb_appender_close(app) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store: %s",
                          duckdb_appender_error(app));
        goto out;
    }
    char *select = lh_xasprintf("SELECT * FROM %s ORDER BY label", table);
    rc = copy_commit(c, select, path, true, NULL, err);
    free(select);
out:
    if (chunk)
        duckdb_destroy_data_chunk(&chunk);
    for (int i = 0; i < 6; i++)
        if (types[i])
            duckdb_destroy_logical_type(&types[i]);
    if (app)
        duckdb_appender_destroy(&app);
    if (created) {
        char *drop = lh_xasprintf("DROP TABLE %s", table);
        lh_error ignored;
        exec(c, drop, &ignored);
        free(drop);
    }
    duckdb_disconnect(&c);
    return rc;
}

int lh_vstore_rewrite_part(lh_vectors *v, const char *from, const char *to, const int64_t *drop,
                           size_t n_drop, int64_t *kept, lh_error *err)
{
    duckdb_connection c = NULL;
    duckdb_appender app = NULL;
    char hex[17], table[32];
    int rc = 0;
    bool created = false;
    lh_random_hex(hex, 16);
    snprintf(table, sizeof(table), "drop_%s", hex);
    if ((rc = lh_vstore_connect(v, &c, err)) != 0)
        return rc;
    char *ddl = lh_xasprintf("CREATE TABLE %s (label BIGINT)", table);
    rc = exec(c, ddl, err);
    free(ddl);
    if (rc)
        goto out;
    created = true;
    if (duckdb_appender_create(c, NULL, table, &app) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store");
        goto out;
    }
    for (size_t i = 0; i < n_drop; i++)
        if (duckdb_append_int64(app, drop[i]) == DuckDBError ||
            duckdb_appender_end_row(app) == DuckDBError) {
            rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store: %s",
                              duckdb_appender_error(app));
            goto out;
        }
    if (duckdb_appender_close(app) == DuckDBError) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot append to the vector store: %s",
                          duckdb_appender_error(app));
        goto out;
    }
    char *lit = lh_sql_literal(from);
    char *select = lh_xasprintf("SELECT * FROM read_parquet(%s) WHERE label NOT IN (SELECT "
                                "label FROM %s) ORDER BY label",
                                lit, table);
    rc = copy_commit(c, select, to, false, kept, err);
    free(select);
    free(lit);
out:
    if (app)
        duckdb_appender_destroy(&app);
    if (created) {
        char *sql = lh_xasprintf("DROP TABLE %s", table);
        lh_error ignored;
        exec(c, sql, &ignored);
        free(sql);
    }
    duckdb_disconnect(&c);
    return rc;
}

/* ---------------------------------------------------------------- scanning */

void lh_vscan_free(lh_vscan *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->doc_ids[i]);
        if (s->texts)
            free(s->texts[i]);
        free(s->doc_hashes[i]);
    }
    free(s->labels);
    free(s->doc_ids);
    free(s->chunks);
    free(s->texts);
    free(s->doc_hashes);
    free(s->vecs);
    memset(s, 0, sizeof(*s));
}

static char *str_at(duckdb_vector vec, size_t i)
{
    uint64_t *validity = duckdb_vector_get_validity(vec);
    if (validity && !duckdb_validity_row_is_valid(validity, i))
        return lh_xstrdup("");
    duckdb_string_t *s = (duckdb_string_t *)duckdb_vector_get_data(vec) + i;
    uint32_t len = duckdb_string_t_length(*s);
    char *out = lh_xmalloc((size_t)len + 1);
    memcpy(out, duckdb_string_t_data(s), len);
    out[len] = 0;
    return out;
}

int lh_vstore_scan(lh_vectors *v, char *const *paths, int dim, bool with_text, bool with_vecs,
                   lh_vscan *out, lh_error *err)
{
    memset(out, 0, sizeof(*out));
    out->dim = dim;
    if (!paths || !paths[0])
        return 0;
    duckdb_connection c = NULL;
    duckdb_result res;
    bool have_res = false;
    lh_buf sql;
    lh_buf_init(&sql);
    int rc = lh_vstore_connect(v, &c, err);
    if (rc)
        goto out;
    lh_buf_printf(&sql, "SELECT label, doc_id, chunk, doc_hash, %s, %s FROM read_parquet([",
                  with_text ? "text" : "NULL::VARCHAR", with_vecs ? "embedding" : "NULL::FLOAT[1]");
    for (size_t i = 0; paths[i]; i++) {
        char *lit = lh_sql_literal(paths[i]);
        lh_buf_printf(&sql, "%s%s", i ? ", " : "", lit);
        free(lit);
    }
    lh_buf_puts(&sql, "]) ORDER BY label");
    if (duckdb_query(c, sql.data, &res) == DuckDBError) {
        rc = lh_error_set(err, LH_EIO, "cannot read the index's parts: %.300s",
                          duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        goto out;
    }
    have_res = true;
    size_t cap = 0;
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(res)) != NULL) {
        size_t m = (size_t)duckdb_data_chunk_get_size(ch);
        if (out->n + m > cap) {
            cap = (out->n + m) * 2;
            out->labels = lh_xrealloc(out->labels, cap * sizeof(int64_t));
            out->doc_ids = lh_xrealloc(out->doc_ids, cap * sizeof(char *));
            out->chunks = lh_xrealloc(out->chunks, cap * sizeof(int32_t));
            out->doc_hashes = lh_xrealloc(out->doc_hashes, cap * sizeof(char *));
            if (with_text)
                out->texts = lh_xrealloc(out->texts, cap * sizeof(char *));
            if (with_vecs)
                out->vecs = lh_xrealloc(out->vecs, cap * (size_t)dim * sizeof(float));
        }
        int64_t *lb = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
        int32_t *chn = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 2));
        duckdb_vector em_v = duckdb_data_chunk_get_vector(ch, 5);
        float *em = with_vecs ? duckdb_vector_get_data(duckdb_array_vector_get_child(em_v)) : NULL;
        for (size_t i = 0; i < m; i++) {
            size_t r = out->n + i;
            out->labels[r] = lb[i];
            out->chunks[r] = chn[i];
            out->doc_ids[r] = str_at(duckdb_data_chunk_get_vector(ch, 1), i);
            out->doc_hashes[r] = str_at(duckdb_data_chunk_get_vector(ch, 3), i);
            if (with_text)
                out->texts[r] = str_at(duckdb_data_chunk_get_vector(ch, 4), i);
            if (with_vecs)
                memcpy(out->vecs + r * (size_t)dim, em + i * (size_t)dim,
                       (size_t)dim * sizeof(float));
        }
        out->n += m;
        duckdb_destroy_data_chunk(&ch);
    }
out:
    if (have_res)
        duckdb_destroy_result(&res);
    if (c)
        duckdb_disconnect(&c);
    lh_buf_free(&sql);
    if (rc)
        lh_vscan_free(out);
    return rc;
}
