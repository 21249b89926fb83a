/*
 * sync.c: a database table (or query) streamed into a dataset: once (create, replace) or
 * incrementally (append above a watermark, optionally replacing rows by key).
 *
 * The stream. A reader (pg.c, mysql.c) fills DuckDB data chunks from an unbuffered result.
 * A private in-memory DuckDB instance (stream.c), opened per sync with its own memory limit
 * and one thread, exposes the reader as the table function lh_source_stream() and runs
 *   COPY (SELECT <projection> FROM lh_source_stream()) TO '<staged part>' <Parquet options>
 * so rows flow from the socket to the Parquet writer a chunk at a time and memory is bounded
 * by a row group, not by the table. The instance is private so that nothing a user can
 * send (SQL goes to the query engine's databases) can ever name the stream function, and
 * so that a large sync cannot take the query engine's memory. The staged part then takes
 * the file ingest's path (lh_ingest_commit_part): content PII, object commit, manifest
 * commit (the linearization point), journal event.
 *
 * Errors. A reader error (the server gone, an unmappable value, a cancel) is kept in the
 * stream's context as the reader reported it and returned as is: the COPY's failure only
 * says "the stream stopped", DuckDB's wording of it is never parsed. Any failure leaves
 * nothing (lh_ingest_part_end removes the staged file and the part's folders), and the
 * dataset is untouched until the manifest commit.
 *
 * Incremental syncs. The watermark (the new part's max of the incremental column, as
 * DuckDB's text of the value, which both servers read back in a comparison) is recorded
 * in the manifest's lineage by the same commit that adds the part, so it only advances
 * when the rows it covers are committed. A later commit of another kind keeps it (the
 * catalog carries lineage.watermark over on append). Syncs of one dataset are serialised
 * by a per-dataset lock held from reading the watermark to the commit, so two syncs cannot
 * both read rows above the same watermark, or compute superseded keys against a dataset
 * the other is changing.
 *
 * Lock order: the per-dataset lock (busy set, mu only to test and set it) is taken before
 * anything of the catalog's; the job's cancel hook is set only while the reader is open
 * and cleared before the reader is closed.
 */
#include "sources_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct lh_db_ingest {
    lh_ingest *ing;
    lh_catalog *cat;
    lh_engine *eng;
    lh_sources *src;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *busy; /* {lowercased dataset name: true} of the syncs running */
};

lh_db_ingest *lh_db_ingest_open(lh_ingest *ing, lh_catalog *cat, lh_engine *eng, lh_sources *src,
                                lh_error *err)
{
    (void)err;
    lh_db_ingest *d = lh_xcalloc(1, sizeof(*d));
    d->ing = ing;
    d->cat = cat;
    d->eng = eng;
    d->src = src;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->busy = json_object();
    return d;
}

void lh_db_ingest_close(lh_db_ingest *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    json_decref(d->busy);
    free(d);
}

/* ---------------------------------------------------------------- per-dataset lock */

static char *lower(const char *s)
{
    char *l = lh_xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

/* Waits until no other sync of the dataset runs, then marks it running. A cancel while
 * waiting is LH_ECANCELLED. */
static int dataset_lock(lh_db_ingest *d, const char *name, lh_job *job, lh_error *err)
{
    char *l = lower(name);
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    while (json_object_get(d->busy, l)) {
        if (lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "the sync was cancelled");
            goto out;
        }
        /* A timed wait: a cancel does not signal cv. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    json_object_set_new(d->busy, l, json_true());
out:
    pthread_mutex_unlock(&d->mu);
    free(l);
    return rc;
}

static void dataset_unlock(lh_db_ingest *d, const char *name)
{
    char *l = lower(name);
    pthread_mutex_lock(&d->mu);
    json_object_del(d->busy, l);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(l);
}

/* ---------------------------------------------------------------- checks */

static bool is_blank(const char *s)
{
    return !s || !*s;
}

/* The request's own checks, without the catalog or the sources. */
static int check_shape(const lh_db_ingest_request *req, lh_error *err)
{
    int rc = lh_name_validate(req->dataset, "dataset name", err);
    if (rc)
        return rc;
    if (is_blank(req->dsn) == is_blank(req->source))
        return lh_error_set(err, LH_EINVAL,
                            "give exactly one of \"source\" (a named source) "
                            "and \"dsn\"");
    if (is_blank(req->table) == is_blank(req->query))
        return lh_error_set(err, LH_EINVAL,
                            "give exactly one of \"table\" and \"query\" (a SELECT statement)");
    if (req->incremental_column && !*req->incremental_column)
        return lh_error_set(err, LH_EINVAL, "incremental.column must be a column name");
    if (req->key_column && (is_blank(req->incremental_column) || !*req->key_column))
        return lh_error_set(err, LH_EINVAL,
                            "incremental.key needs incremental.column (and must be a column "
                            "name)");
    if (req->mode != LH_MODE_CREATE && req->mode != LH_MODE_REPLACE && req->mode != LH_MODE_APPEND)
        return lh_error_set(err, LH_EINVAL, "mode must be create, replace or append");
    return 0;
}

/* The secret DSN of the request: the named source's (its kind must match) or the
 * request's own. Caller frees with lh_secret_free. */
static char *resolve_dsn(lh_db_ingest *d, const lh_db_ingest_request *req, lh_error *err)
{
    if (!is_blank(req->dsn))
        return lh_xstrdup(req->dsn);
    if (!d->src) {
        lh_error_set(err, LH_ENOTFOUND, "no named source '%s' (named sources are not enabled)",
                     req->source);
        return NULL;
    }
    lh_source_kind kind;
    char *dsn = lh_sources_dsn(d->src, req->source, &kind, err);
    if (dsn && kind != req->kind) {
        lh_error_set(err, LH_EINVAL, "source '%s' is a %s source, not %s", req->source,
                     lh_source_kind_name(kind), lh_source_kind_name(req->kind));
        lh_secret_free(dsn);
        return NULL;
    }
    return dsn;
}

int lh_db_ingest_check(lh_db_ingest *d, const lh_db_ingest_request *req, lh_error *err)
{
    int rc = check_shape(req, err);
    if (rc)
        return rc;
    char *dsn = resolve_dsn(d, req, err);
    if (!dsn)
        return err ? err->code : LH_EINVAL;
    lh_dsn parsed = {0};
    rc = lh_dsn_parse(req->kind, dsn, &parsed, err);
    lh_dsn_free(&parsed);
    lh_secret_free(dsn);
    if (rc)
        return rc;
    lh_ingest_request ir = {.name = req->dataset,
                            .format = LH_FILE_PARQUET,
                            .mode = req->mode,
                            .bucket = req->bucket,
                            .header = -1};
    return lh_ingest_check(d->ing, &ir, err);
}

/* A sync's cancellation: the point its reader attaches its socket to while it opens, and
 * the reader once open (under point.mu), whose own interrupt the hook calls too (a reader
 * may wait on something other than its socket: the unit tests' scripted readers do). The
 * hook is cleared before the reader closes, and clearing waits out a running hook. */
typedef struct sync_cancel {
    lh_db_cancel point;
    lh_db_reader *reader;
} sync_cancel;

static void sync_cancel_hook(void *ctx)
{
    sync_cancel *sc = ctx;
    lh_db_cancel_fire(&sc->point);
    pthread_mutex_lock(&sc->point.mu);
    lh_db_reader *r = sc->reader;
    pthread_mutex_unlock(&sc->point.mu);
    if (r)
        r->interrupt(r);
}

/* The SELECT list of the COPY: create/replace keep the source's columns (json and jsonb
 * cast to JSON); append casts to the dataset's schema by name. Caller frees. */
static char *projection(const lh_ingest_part *p, const json_t *schema, lh_error *err)
{
    if (p->mode == LH_MODE_APPEND)
        return lh_ingest_append_projection(json_object_get(p->existing, "schema"), schema, p->name,
                                           "the source", err);
    lh_buf b;
    lh_buf_init(&b);
    size_t i;
    const json_t *col;
    json_array_foreach(schema, i, col)
    {
        char *id = lh_sql_ident(lh_json_str(col, "name"));
        if (strcmp(lh_json_str(col, "type"), "JSON") == 0)
            lh_buf_printf(&b, "%sCAST(%s AS JSON) AS %s", i ? ", " : "", id, id);
        else
            lh_buf_printf(&b, "%s%s", i ? ", " : "", id);
        free(id);
    }
    if (!b.data)
        lh_buf_puts(&b, "*");
    return b.data;
}

/* The schema entry of column name (case-insensitive), borrowed, or NULL. */
static const json_t *schema_column(const json_t *schema, const char *name)
{
    size_t i;
    const json_t *col;
    json_array_foreach(schema, i, col)
    {
        const char *n = lh_json_str(col, "name");
        if (n && strcasecmp(n, name) == 0)
            return col;
    }
    return NULL;
}

/* ---------------------------------------------------------------- upserts */

typedef struct keylist {
    char **v;
    size_t n;
} keylist;

static void keylist_free(keylist *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

/* "read_parquet([...])" of the dataset's parts, or NULL when it has none. Caller frees. */
static char *parts_relation(lh_db_ingest *d, const json_t *manifest, lh_error *err)
{
    lh_storage *st = lh_ingest_storage(d->ing);
    const char *bucket = lh_json_str(manifest, "bucket");
    lh_buf b;
    lh_buf_init(&b);
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(manifest, "files"), i, f)
    {
        char *path = lh_storage_path(st, bucket, lh_json_str(f, "key"), err);
        if (!path) {
            lh_buf_free(&b);
            return NULL;
        }
        char *lit = lh_sql_literal(path);
        lh_buf_printf(&b, "%s%s", b.len ? ", " : "read_parquet([", lit);
        free(lit);
        free(path);
    }
    if (!b.len) {
        lh_error_clear(err);
        return NULL;
    }
    lh_buf_puts(&b, "])");
    return b.data;
}

/* The keys of the new part (at staged_lit) that the dataset's parts already hold, in
 * canonical text. A key that appears twice in the new part is LH_EINVAL kind
 * "key_not_unique": which of its rows is current could not be told. */
static int superseded_keys(lh_db_ingest *d, const lh_ingest_part *p, const char *staged_lit,
                           const char *key, keylist *out, lh_error *err)
{
    const json_t *col = schema_column(json_object_get(p->existing, "schema"), key);
    const char *type = lh_json_str(col, "type");
    char *id = lh_sql_ident(lh_json_str(col, "name")), *sql = NULL, *old = NULL;
    json_t *res = NULL;
    int rc = 0;
    sql =
        lh_xasprintf("SELECT CAST(count(%s) - count(DISTINCT %s) AS BIGINT) FROM read_parquet(%s)",
                     id, id, staged_lit);
    if (!(res = lh_engine_query_json(d->eng, sql, err))) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    json_int_t dups =
        json_integer_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0));
    if (dups > 0) {
        rc = lh_error_setk(err, LH_EINVAL, "key_not_unique",
                           "the source has %lld rows whose key %s repeats an earlier row's; an "
                           "upsert needs the key to be unique in the source",
                           (long long)dups, key);
        goto out;
    }
    old = parts_relation(d, p->existing, err);
    if (!old) {
        rc = err && err->code ? err->code : 0;
        goto out;
    }
    free(sql);
    json_decref(res);
    sql = lh_xasprintf("SELECT DISTINCT CAST(n.%s AS VARCHAR) FROM read_parquet(%s) AS n WHERE "
                       "n.%s IN (SELECT o.%s FROM %s AS o)",
                       id, staged_lit, id, id, old);
    if (!(res = lh_engine_query_json(d->eng, sql, err))) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    const json_t *rows = json_object_get(res, "rows");
    out->v = lh_xcalloc(json_array_size(rows) + 1, sizeof(char *));
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        char *k = lh_tombstone_key_text(json_array_get(row, 0), type, err);
        if (!k) {
            rc = err ? err->code : LH_EINVAL;
            goto out;
        }
        out->v[out->n++] = k;
    }
out:
    if (rc)
        keylist_free(out);
    json_decref(res);
    free(id);
    free(sql);
    free(old);
    return rc;
}

/* ---------------------------------------------------------------- the sync */

/* The stored watermark of a dataset: lineage.watermark {column, value}, borrowed. */
static const json_t *stored_watermark(const json_t *manifest)
{
    const json_t *w = json_object_get(json_object_get(manifest, "lineage"), "watermark");
    return json_is_object(w) ? w : NULL;
}

/* Checks of an append's incremental options against the dataset, before any connection. */
static int check_append(const lh_ingest_part *p, const lh_db_ingest_request *req, lh_error *err)
{
    const json_t *w = stored_watermark(p->existing);
    const char *wcol = lh_json_str(w, "column");
    if (req->incremental_column && wcol && strcasecmp(wcol, req->incremental_column) != 0)
        return lh_error_set(err, LH_EINVAL,
                            "dataset '%s' keeps a watermark on column '%s', not '%s'; sync it "
                            "with that column, or replace it to start over",
                            p->name, wcol, req->incremental_column);
    if (!req->key_column)
        return 0;
    const json_t *col = schema_column(json_object_get(p->existing, "schema"), req->key_column);
    if (!col)
        return lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s' to upsert by", p->name,
                            req->key_column);
    if (!lh_tombstone_key_type_ok(lh_json_str(col, "type")))
        return lh_error_set(err, LH_EINVAL,
                            "column '%s' of dataset '%s' is %s: an upsert key must be an integer "
                            "or VARCHAR column",
                            req->key_column, p->name, lh_json_str(col, "type"));
    return 0;
}

/* Maps a failed COPY: the reader's own error when it stopped the stream, else DuckDB's
 * (a value that does not fit the dataset's type on append, a full disk), with the staged
 * path kept out. */
static int copy_error(const lh_sync_stream *s, const char *duck_msg, const char *staged,
                      lh_error *err)
{
    if (s->rc) {
        if (err)
            *err = s->error;
        return s->rc;
    }
    const char *msg = duck_msg ? duck_msg : "unknown DuckDB error";
    int rc;
    if (strncmp(msg, "IO Error", 8) == 0 || strncmp(msg, "Out of Memory", 13) == 0)
        rc = lh_error_set(err, LH_EIO, "could not write the part: %s", msg);
    else
        rc = lh_error_setk(err, LH_EINVAL, "unmappable_value",
                           "a value of the source does not fit the dataset: %s", msg);
    lh_error_scrub(err, staged, "<part>");
    return rc;
}

int lh_db_ingest_run_with(lh_db_ingest *d, const lh_db_ingest_request *req,
                          const char *source_label, lh_db_reader_open_fn open, void *open_ctx,
                          lh_job *job, json_t **result, lh_error *err)
{
    lh_ingest_part p = {0};
    lh_db_reader *r = NULL;
    lh_sync_stream s = {0};
    json_t *schema = NULL, *lineage = NULL, *manifest = NULL, *wrows = NULL;
    char *proj = NULL, *staged_lit = NULL, *sql = NULL;
    keylist keys = {0};
    bool locked = false, hooked = false;
    lh_error local;
    if (!err)
        err = &local;
    if (result)
        *result = NULL;
    int rc = check_shape(req, err);
    if (rc)
        return rc;
    int64_t t_start = lh_now_ms();
    if ((rc = dataset_lock(d, req->dataset, job, err)) != 0)
        return rc;
    locked = true;
    /* The job's cancel hook fires the cancellation point from here on: the reader attaches
     * its socket to it as soon as it has connected, so a cancel reaches a source that is
     * still computing its first rows (open), then the stream. */
    sync_cancel cancel = {.reader = NULL};
    lh_db_cancel_init(&cancel.point);
    lh_job_set_cancel_hook(job, sync_cancel_hook, &cancel);
    hooked = true;
    if ((rc = lh_ingest_part_begin(d->ing, req->dataset, req->mode, req->bucket, &p, err)) != 0)
        goto out;
    if (req->mode == LH_MODE_APPEND && (rc = check_append(&p, req, err)) != 0)
        goto out;

    /* In append, only rows above the stored watermark; create/replace read every row and
     * record the watermark they reach. */
    const json_t *w = req->mode == LH_MODE_APPEND ? stored_watermark(p.existing) : NULL;
    const char *previous = req->incremental_column ? lh_json_str(w, "value") : NULL;
    lh_db_select sel = {.table = is_blank(req->table) ? NULL : req->table,
                        .query = is_blank(req->query) ? NULL : req->query,
                        .incremental_column = req->incremental_column,
                        .watermark = previous,
                        .cancel = &cancel.point};
    if (!(r = open(open_ctx, &sel, err))) {
        rc = err->code ? err->code : LH_EUPSTREAM;
        goto out;
    }
    pthread_mutex_lock(&cancel.point.mu);
    cancel.reader = r;
    pthread_mutex_unlock(&cancel.point.mu);
    if (lh_job_cancelled(job)) {
        rc = lh_error_setk(err, LH_ECANCELLED, "cancelled", "the sync was cancelled");
        goto out;
    }
    if (req->incremental_column) {
        bool found = false;
        for (size_t i = 0; i < r->ncols; i++)
            found = found || strcasecmp(r->names[i], req->incremental_column) == 0;
        if (!found) {
            rc = lh_error_set(err, LH_EINVAL, "the source has no column '%s' (incremental.column)",
                              req->incremental_column);
            goto out;
        }
    }

    if ((rc = lh_sync_stream_open(&s, r, job, err)) != 0)
        goto out;
    if (!(schema = lh_sync_stream_schema(&s, err))) {
        rc = err->code;
        goto out;
    }
    if (req->key_column && !schema_column(schema, req->key_column)) {
        rc = lh_error_set(err, LH_EINVAL, "the source has no column '%s' (incremental.key)",
                          req->key_column);
        goto out;
    }
    if (!(proj = projection(&p, schema, err))) {
        rc = err->code;
        goto out;
    }
    staged_lit = lh_sql_literal(p.staged);
    sql =
        lh_xasprintf("COPY (SELECT %s FROM " LH_SYNC_STREAM_FN "()) TO %s " LH_PARQUET_COPY_OPTIONS,
                     proj, staged_lit);
    int64_t t_copy = lh_now_ms();
    duckdb_result res;
    if (duckdb_query(s.conn, sql, &res) == DuckDBError) {
        rc = copy_error(&s, duckdb_result_error(&res), p.staged, err);
        duckdb_destroy_result(&res);
        goto out;
    }
    int64_t rows = (int64_t)duckdb_rows_changed(&res);
    duckdb_destroy_result(&res);
    /* The stream is over: the reader is no longer needed, nor interruptible. */
    lh_job_set_cancel_hook(job, NULL, NULL);
    hooked = false;
    if (lh_job_cancelled(job)) {
        rc = lh_error_setk(err, LH_ECANCELLED, "cancelled", "the sync was cancelled");
        goto out;
    }

    const char *current = previous;
    if (req->incremental_column && rows > 0) {
        char *id = lh_sql_ident(json_string_value(
            json_object_get(schema_column(schema, req->incremental_column), "name")));
        free(sql);
        sql = lh_xasprintf("SELECT CAST(max(%s) AS VARCHAR) FROM read_parquet(%s)", id, staged_lit);
        free(id);
        if (!(wrows = lh_sync_stream_rows(&s, sql, err))) {
            rc = err->code;
            goto out;
        }
        const char *max = json_string_value(json_array_get(json_array_get(wrows, 0), 0));
        if (max)
            current = max;
    }
    json_t *wjson = req->incremental_column
                        ? json_pack("{s:s,s:s?,s:s?}", "column", req->incremental_column,
                                    "previous", previous, "current", current)
                        : json_null();

    const char *job_id = job ? lh_job_id(job) : NULL;
    char job_hex[17];
    if (!job_id) {
        lh_random_hex(job_hex, 16);
        job_id = job_hex;
    }
    if (rows == 0 && req->mode == LH_MODE_APPEND) {
        /* Nothing new: no part, no version. */
        if (result)
            *result = json_pack("{s:s,s:s,s:I,s:I,s:o,s:s,s:O}", "dataset", req->dataset, "mode",
                                "append", "rows", (json_int_t)0, "rows_superseded", (json_int_t)0,
                                "watermark", wjson, "job", job_id, "manifest", p.existing);
        else
            json_decref(wjson);
        lh_log(LH_LOG_INFO, "sync.unchanged", "{s:s,s:s}", "dataset", req->dataset, "source",
               source_label);
        goto out;
    }
    if (req->mode == LH_MODE_APPEND && req->key_column &&
        (rc = superseded_keys(d, &p, staged_lit, req->key_column, &keys, err)) != 0) {
        json_decref(wjson);
        goto out;
    }

    lineage = json_pack("{s:s,s:s,s:s}", "source_system", lh_source_kind_name(req->kind), "source",
                        source_label, "job", job_id);
    if (!is_blank(req->table)) {
        json_object_set_new(lineage, "table", json_string(req->table));
    } else {
        char digest[65];
        lh_sql_fingerprint(req->query, digest);
        json_object_set_new(lineage, "query_sha256", json_string(digest));
    }
    if (req->incremental_column && current)
        json_object_set_new(
            lineage, "watermark",
            json_pack("{s:s,s:s}", "column", req->incremental_column, "value", current));
    if (req->key_column)
        json_object_set_new(lineage, "key", json_string(req->key_column));
    lh_ingest_commit_opts o = {.rows = rows,
                               .lineage = lineage,
                               .actor = req->actor,
                               .format = lh_source_kind_name(req->kind),
                               .started_ms = t_start,
                               .copy_started_ms = t_copy,
                               .supersede_column = keys.n ? req->key_column : NULL,
                               .supersede_keys = keys.n ? keys.v : NULL,
                               .n_supersede = keys.n};
    if ((rc = lh_ingest_commit_part(d->ing, &p, &o, &manifest, err)) != 0) {
        json_decref(wjson);
        goto out;
    }
    lh_log(LH_LOG_INFO, "sync.done", "{s:s,s:s,s:s,s:I,s:I}", "dataset", req->dataset, "source",
           source_label, "mode",
           req->mode == LH_MODE_CREATE    ? "create"
           : req->mode == LH_MODE_REPLACE ? "replace"
                                          : "append",
           "rows", (json_int_t)rows, "rows_superseded", (json_int_t)keys.n);
    if (result)
        *result = json_pack("{s:s,s:s,s:I,s:I,s:o,s:s,s:O}", "dataset", req->dataset, "mode",
                            req->mode == LH_MODE_CREATE    ? "create"
                            : req->mode == LH_MODE_REPLACE ? "replace"
                                                           : "append",
                            "rows", (json_int_t)rows, "rows_superseded", (json_int_t)keys.n,
                            "watermark", wjson, "job", job_id, "manifest", manifest);
    else
        json_decref(wjson);

out:
    if (hooked)
        lh_job_set_cancel_hook(job, NULL, NULL);
    /* The connection goes before the reader: DuckDB may still hold the stream's bind. */
    lh_sync_stream_close(&s);
    if (r)
        r->close(r);
    lh_db_cancel_destroy(&cancel.point);
    lh_ingest_part_end(d->ing, &p);
    if (locked)
        dataset_unlock(d, req->dataset);
    keylist_free(&keys);
    json_decref(schema);
    json_decref(lineage);
    json_decref(manifest);
    json_decref(wrows);
    free(proj);
    free(staged_lit);
    free(sql);
    return rc;
}

/* ---------------------------------------------------------------- real servers */

typedef struct server_open {
    lh_source_kind kind;
    const char *dsn;
    const lh_dsn *parsed;
} server_open;

static lh_db_reader *open_server(void *ctx, const lh_db_select *sel, lh_error *err)
{
    server_open *o = ctx;
    lh_db_reader *r = o->kind == LH_SOURCE_MYSQL ? lh_mysql_reader_open(o->dsn, sel, err)
                                                 : lh_pg_reader_open(o->dsn, sel, err);
    if (!r)
        lh_dsn_scrub(err, o->parsed, o->dsn);
    return r;
}

int lh_db_ingest_run(lh_db_ingest *d, const lh_db_ingest_request *req, lh_job *job, json_t **result,
                     lh_error *err)
{
    lh_dsn parsed = {0};
    char *location = NULL;
    int rc = check_shape(req, err);
    if (rc)
        return rc;
    char *dsn = resolve_dsn(d, req, err);
    if (!dsn)
        return err ? err->code : LH_EINVAL;
    if ((rc = lh_dsn_parse(req->kind, dsn, &parsed, err)) != 0)
        goto out;
    location = lh_dsn_location(&parsed);
    server_open o = {.kind = req->kind, .dsn = dsn, .parsed = &parsed};
    rc = lh_db_ingest_run_with(d, req, is_blank(req->source) ? location : req->source, open_server,
                               &o, job, result, err);
    /* Whatever a library echoed, the password stays out (readers scrub too). */
    if (rc && err)
        lh_dsn_scrub(err, &parsed, dsn);
out:
    free(location);
    lh_dsn_free(&parsed);
    lh_secret_free(dsn);
    return rc;
}
