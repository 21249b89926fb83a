/*
 * engine.c: the DuckDB database behind every query, and the statements we run ourselves.
 *
 * Generations. DuckDB's sandbox (allowed_directories, enable_external_access=false,
 * lock_configuration=true) cannot be changed once locked, so a change of buckets opens a
 * new database — a generation — with the new roots and swaps it in (views.c). Whoever runs
 * something on a generation holds a reference (lh_gen_acquire); the engine holds one on the
 * current generation. A generation is closed when its last reference goes, so a query
 * that started before a swap finishes on the database it started on.
 *
 * Each generation spills to its own folder <data>/_tmp/duckdb/g<pid>-<seq>: DuckDB removes
 * its temporary files when a database closes, and two databases sharing one folder could
 * remove each other's. Folders of processes that no longer run are removed at open.
 *
 * The time zone is pinned to UTC before the configuration is locked, so TIMESTAMP WITH
 * TIME ZONE values and functions on them do not depend on the server's environment.
 */
#include "query_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---------------------------------------------------------------- statements */

int lh_duck_exec(duckdb_connection conn, const char *sql, lh_error *err)
{
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        const char *msg = duckdb_result_error(&r);
        rc = lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
    }
    duckdb_destroy_result(&r);
    return rc;
}

/* ---------------------------------------------------------------- generations */

static void gen_free(lh_gen *g)
{
    if (!g)
        return;
    if (g->ddl)
        duckdb_disconnect(&g->ddl);
    if (g->db)
        duckdb_close(&g->db);
    if (g->tmp_dir)
        lh_fs_remove_tree(g->tmp_dir, NULL);
    free(g->tmp_dir);
    free(g);
}

/* The lock-down, in the order DuckDB requires: directories first (external access off
 * forbids changing them), then external access, then the lock. */
static int gen_sandbox(lh_engine *eng, lh_gen *g, char **roots, lh_error *err)
{
    lh_buf sql;
    lh_buf_init(&sql);
    int rc = 0;
    lh_error tz_err;
    if (lh_duck_exec(g->ddl, "SET GLOBAL TimeZone = 'UTC'", &tz_err) != 0)
        lh_log(LH_LOG_WARN, "duckdb_timezone_not_set", "{s:s}", "message", tz_err.message);

    /* DuckDB reaches only what it must: each bucket's datasets/ folder (parts are read
     * there and staged there by COPY) and <data>/_tmp/ (uploads, spill). Not a bucket's
     * root: primary's root is the data folder, which also holds _secrets/ (the admin key,
     * the key pepper) and _catalog/; those stay outside the sandbox even if SQL ever got
     * past the firewall. The trailing '/' keeps "datasets" from also allowing
     * "datasets_x". */
    char *tmp = lh_path_join(eng->data_dir, "_tmp/");
    lh_buf_puts(&sql, "SET allowed_directories = [");
    for (size_t i = 0; roots && roots[i]; i++) {
        char *dir = lh_path_join(roots[i], "datasets/");
        char *lit = lh_sql_literal(dir);
        lh_buf_printf(&sql, "%s, ", lit);
        free(lit);
        free(dir);
    }
    char *lit = lh_sql_literal(tmp);
    lh_buf_printf(&sql, "%s]", lit);
    free(lit);
    free(tmp);

    const char *steps[] = {sql.data, "SET enable_external_access = false",
                           "SET lock_configuration = true"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        lh_error e;
        if (lh_duck_exec(g->ddl, steps[i], &e) != 0) {
            rc = lh_error_set(err, LH_EINTERNAL, "cannot lock down DuckDB (%s): %s", steps[i],
                              e.message);
            goto out;
        }
    }
out:
    lh_buf_free(&sql);
    return rc;
}

lh_gen *lh_gen_open(lh_engine *eng, char **roots, lh_error *err)
{
    lh_gen *g = lh_xcalloc(1, sizeof(*g));
    duckdb_config cfg = NULL;
    char *open_err = NULL;
    char threads[32], memory[48];
    bool ok = false;

    pthread_mutex_lock(&eng->gen_mu);
    g->seq = ++eng->gen_seq;
    pthread_mutex_unlock(&eng->gen_mu);
    g->tmp_dir =
        lh_xasprintf("%s/g%ld-%llu", eng->tmp_root, (long)getpid(), (unsigned long long)g->seq);
    if (lh_fs_mkdirs(g->tmp_dir, 0700, err) != 0)
        goto out;

    snprintf(threads, sizeof(threads), "%d", eng->threads);
    snprintf(memory, sizeof(memory), "%lldMiB", (long long)eng->memory_mb);
    const struct {
        const char *name;
        const char *value;
        bool wanted;
    } settings[] = {
        {"threads", threads, eng->threads > 0},
        {"memory_limit", memory, eng->memory_mb > 0},
        {"temp_directory", g->tmp_dir, true},
        /* extensions cannot be fetched here, and trying would only slow errors down */
        {"autoinstall_known_extensions", "false", true},
        {"autoload_known_extensions", "false", true},
    };
    if (duckdb_create_config(&cfg) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot create a DuckDB configuration");
        goto out;
    }
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (!settings[i].wanted)
            continue;
        if (duckdb_set_config(cfg, settings[i].name, settings[i].value) == DuckDBError) {
            lh_error_set(err, LH_EINTERNAL, "DuckDB refused the setting %s = '%s'",
                         settings[i].name, settings[i].value);
            goto out;
        }
    }
    if (duckdb_open_ext(NULL, &g->db, cfg, &open_err) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot open DuckDB: %s",
                     open_err ? open_err : "unknown error");
        g->db = NULL;
        goto out;
    }
    if (duckdb_connect(g->db, &g->ddl) == DuckDBError) {
        lh_error_set(err, LH_EINTERNAL, "cannot connect to DuckDB");
        g->ddl = NULL;
        goto out;
    }
    if (gen_sandbox(eng, g, roots, err) != 0)
        goto out;
    ok = true;
out:
    if (cfg)
        duckdb_destroy_config(&cfg);
    if (open_err)
        duckdb_free(open_err);
    if (!ok) {
        gen_free(g);
        return NULL;
    }
    g->refs = 1;
    return g;
}

lh_gen *lh_gen_acquire(lh_engine *eng, lh_error *err)
{
    lh_gen *g = NULL;
    pthread_mutex_lock(&eng->gen_mu);
    if (!eng->closing && eng->cur) {
        g = eng->cur;
        g->refs++;
        eng->users++;
    }
    pthread_mutex_unlock(&eng->gen_mu);
    if (!g)
        lh_error_set(err, LH_EUNAVAILABLE, "the query engine is shutting down");
    return g;
}

void lh_gen_unref(lh_engine *eng, lh_gen *g)
{
    pthread_mutex_lock(&eng->gen_mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&eng->gen_mu);
    if (last)
        gen_free(g);
}

void lh_gen_release(lh_engine *eng, lh_gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&eng->gen_mu);
    bool last = --g->refs == 0;
    if (--eng->users == 0)
        pthread_cond_broadcast(&eng->idle_cv);
    pthread_mutex_unlock(&eng->gen_mu);
    /* Closing outside the lock: duckdb_close waits for DuckDB's threads. */
    if (last)
        gen_free(g);
}

/* Spill folders whose process is gone (a crash left them). */
static void remove_stale_tmp(const char *tmp_root)
{
    DIR *d = opendir(tmp_root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        unsigned long long seq;
        if (sscanf(e->d_name, "g%ld-%llu", &pid, &seq) != 2 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *path = lh_path_join(tmp_root, e->d_name);
        lh_fs_remove_tree(path, NULL);
        free(path);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void keywords_load(lh_keywords *kw, duckdb_connection conn)
{
    duckdb_result r;
    if (duckdb_query(conn, "SELECT keyword_name FROM duckdb_keywords()", &r) == DuckDBError) {
        lh_log(LH_LOG_WARN, "duckdb_keywords_unavailable", "{s:s}", "message",
               duckdb_result_error(&r) ? duckdb_result_error(&r) : "");
        duckdb_destroy_result(&r);
        return;
    }
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r))) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        duckdb_vector v = duckdb_data_chunk_get_vector(ch, 0);
        duckdb_string_t *s = duckdb_vector_get_data(v);
        uint64_t *valid = duckdb_vector_get_validity(v);
        kw->words = lh_xrealloc(kw->words, (kw->count + n) * sizeof(char *));
        for (idx_t i = 0; i < n; i++) {
            if (valid && !((valid[i / 64] >> (i % 64)) & 1))
                continue;
            uint32_t len = duckdb_string_t_length(s[i]);
            const char *p = duckdb_string_t_data(&s[i]);
            char *w = lh_xmalloc(len + 1);
            memcpy(w, p, len);
            w[len] = '\0';
            kw->words[kw->count++] = w;
        }
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    if (kw->count)
        qsort(kw->words, kw->count, sizeof(char *), cmp_str);
}

static void keywords_free(lh_keywords *kw)
{
    for (size_t i = 0; i < kw->count; i++)
        free(kw->words[i]);
    free(kw->words);
    kw->words = NULL;
    kw->count = 0;
}

/* ---------------------------------------------------------------- open / close */

lh_engine *lh_engine_open(const lh_config *cfg, lh_storage *st, lh_catalog *cat, lh_error *err)
{
    lh_engine *eng = lh_xcalloc(1, sizeof(*eng));
    char **roots = NULL;
    bool ok = false;

    eng->st = st;
    eng->cat = cat;
    eng->data_dir = lh_xstrdup(lh_storage_data_dir(st));
    eng->tmp_root = lh_xasprintf("%s/_tmp/duckdb", eng->data_dir);
    eng->max_queries = cfg->max_concurrent_queries > 0 ? cfg->max_concurrent_queries : 1;
    eng->default_timeout_ms = cfg->query_timeout_ms > 0 ? cfg->query_timeout_ms : 30000;
    eng->default_rows = cfg->query_default_rows > 0 ? cfg->query_default_rows : 1000;
    eng->threads = cfg->duckdb_threads;
    eng->memory_mb = cfg->duckdb_memory_mb;
    pthread_mutex_init(&eng->regen_mu, NULL);
    pthread_mutex_init(&eng->ddl_mu, NULL);
    pthread_mutex_init(&eng->gen_mu, NULL);
    pthread_cond_init(&eng->idle_cv, NULL);
    eng->listening = true;
    eng->verdicts = lh_verdicts_new();

    if (lh_fs_mkdirs(eng->tmp_root, 0700, err) != 0)
        goto out;
    remove_stale_tmp(eng->tmp_root);
    eng->watchdog = lh_watchdog_start(err);
    if (!eng->watchdog)
        goto out;

    /* The storage listener is set before the roots are read, so a bucket added meanwhile
     * is either in this snapshot or triggers a regeneration (which waits for regen_mu). */
    pthread_mutex_lock(&eng->regen_mu);
    lh_storage_set_listener(st, lh_views_on_buckets, eng);
    roots = lh_storage_roots(st);
    lh_gen *g = lh_gen_open(eng, roots, err);
    if (g) {
        keywords_load(&eng->keywords, g->ddl);
        lh_functions_audit(g->ddl);
        pthread_mutex_lock(&eng->gen_mu);
        eng->cur = g;
        pthread_mutex_unlock(&eng->gen_mu);
    }
    pthread_mutex_unlock(&eng->regen_mu);
    if (!g)
        goto out;
    if (lh_views_start(eng, err) != 0)
        goto out;
    ok = true;
out:
    if (roots) {
        for (size_t i = 0; roots[i]; i++)
            free(roots[i]);
        free(roots);
    }
    if (!ok) {
        lh_engine_close(eng); /* unsubscribes too */
        return NULL;
    }
    return eng;
}

void lh_engine_close(lh_engine *eng)
{
    if (!eng)
        return;
    lh_views_stop(eng);
    /* A regeneration in flight finishes first; later ones see listening == false. */
    pthread_mutex_lock(&eng->regen_mu);
    pthread_mutex_unlock(&eng->regen_mu);

    pthread_mutex_lock(&eng->gen_mu);
    eng->closing = true;
    while (eng->users > 0)
        pthread_cond_wait(&eng->idle_cv, &eng->gen_mu);
    lh_gen *g = eng->cur;
    eng->cur = NULL;
    pthread_mutex_unlock(&eng->gen_mu);

    lh_watchdog_stop(eng->watchdog);
    if (g)
        lh_gen_unref(eng, g);
    /* No query runs any more: parts still waiting go now. */
    lh_retired_delete(eng, eng->retired);
    eng->retired = NULL;
    free(eng->reader_epochs);
    lh_views_free(eng);
    keywords_free(&eng->keywords);
    lh_verdicts_free(eng->verdicts);
    pthread_cond_destroy(&eng->idle_cv);
    pthread_mutex_destroy(&eng->gen_mu);
    pthread_mutex_destroy(&eng->ddl_mu);
    pthread_mutex_destroy(&eng->regen_mu);
    free(eng->tmp_root);
    free(eng->data_dir);
    free(eng);
}

/* ---------------------------------------------------------------- internal statements */

/* A connection on the current generation for one internal statement. */
static int internal_connect(lh_engine *eng, lh_gen **g, duckdb_connection *conn, lh_error *err)
{
    *conn = NULL;
    *g = lh_gen_acquire(eng, err);
    if (!*g)
        return err ? err->code : LH_EUNAVAILABLE;
    if (duckdb_connect((*g)->db, conn) == DuckDBError) {
        *conn = NULL;
        lh_gen_release(eng, *g);
        *g = NULL;
        return lh_error_set(err, LH_EINTERNAL, "cannot connect to DuckDB");
    }
    return 0;
}

static void internal_disconnect(lh_engine *eng, lh_gen *g, duckdb_connection *conn)
{
    if (*conn)
        duckdb_disconnect(conn);
    lh_gen_release(eng, g);
}

int lh_engine_exec(lh_engine *eng, const char *sql, int64_t *rows_out, lh_error *err)
{
    lh_gen *g;
    duckdb_connection conn;
    duckdb_result r;
    int rc = internal_connect(eng, &g, &conn, err);
    if (rc != 0)
        return rc;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        const char *msg = duckdb_result_error(&r);
        rc = lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
        goto out;
    }
    if (rows_out)
        *rows_out = (int64_t)duckdb_rows_changed(&r);
out:
    duckdb_destroy_result(&r);
    internal_disconnect(eng, g, &conn);
    return rc;
}

json_t *lh_conn_query_json(lh_engine *eng, duckdb_connection conn, const char *sql, lh_error *err)
{
    duckdb_result r;
    json_t *doc = NULL;
    lh_col *cols = NULL;
    idx_t ncols = 0;
    if (duckdb_query(conn, sql, &r) == DuckDBError) {
        const char *msg = duckdb_result_error(&r);
        lh_error_setk(err, LH_EINVAL, "sql_error", "%s", msg ? msg : "unknown DuckDB error");
        goto out;
    }
    cols = lh_cols_new(&r, &ncols, &eng->keywords);
    json_t *jcols = json_array(), *rows = json_array();
    doc = json_pack("{s:o,s:o}", "columns", jcols, "rows", rows);
    for (idx_t c = 0; c < ncols; c++)
        json_array_append_new(
            jcols, json_pack("{s:s,s:s}", "name", cols[c].name, "type", cols[c].type_name));
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r))) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        lh_cols_bind(cols, ncols, ch);
        for (idx_t i = 0; i < n; i++) {
            json_t *row = json_array();
            for (idx_t c = 0; c < ncols; c++) {
                lh_cell cell;
                lh_col_cell(&cols[c], i, &cell);
                json_array_append_new(row, lh_cell_to_json(&cell));
            }
            json_array_append_new(rows, row);
        }
        duckdb_destroy_data_chunk(&ch);
    }
    if (duckdb_result_error(&r)) {
        lh_error_setk(err, LH_EINVAL, "sql_error", "%s", duckdb_result_error(&r));
        json_decref(doc);
        doc = NULL;
    }
out:
    lh_cols_free(cols, ncols);
    duckdb_destroy_result(&r);
    return doc;
}

json_t *lh_engine_query_json(lh_engine *eng, const char *sql, lh_error *err)
{
    lh_gen *g;
    duckdb_connection conn;
    if (internal_connect(eng, &g, &conn, err) != 0)
        return NULL;
    json_t *doc = lh_conn_query_json(eng, conn, sql, err);
    internal_disconnect(eng, g, &conn);
    return doc;
}
