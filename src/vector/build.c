/*
 * build.c: an index's long work: build, refresh, the purge after a compaction, and the
 * promotion of a tuned ANN structure. Each runs on the caller's thread (a job) under the
 * index's work_mu, so two never overlap on one index; searches never take work_mu (they
 * use the published warm structure).
 *
 * Invariants:
 *   - Documents are read through the query engine (lh_query_start with no policy) over
 *     the dataset's view, so tombstones apply, in keyset pages ordered by CAST(id AS
 *     VARCHAR); NULL ids and texts and empty texts are skipped and counted; duplicate ids
 *     are refused before any work. Each document carries sha256(text) (DuckDB's), the
 *     content hash a refresh compares.
 *   - Files are written first (parts, then the ANN file; temp name, fsync, rename, folder
 *     fsync), then the definition names them (its write is the linearization point), then
 *     the files it no longer names are deleted. A failed or cancelled build removes what it
 *     wrote and frees the name; a failed refresh removes its new files and keeps the old
 *     state.
 *   - A refresh clears the stale mark only when no newer mark arrived while it ran (the
 *     mark it saw at its start is still the one in the definition).
 *   - A purge only removes (documents no longer live in the dataset): it never embeds.
 */
#include "registry_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lh_vector_build {
    vindex *ix;
    json_t *def; /* the prepared definition */
};

/* ---------------------------------------------------------------- small helpers */

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static void strv_push(strv *s, char *x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = lh_xrealloc(s->v, s->cap * sizeof(char *));
    }
    s->v[s->n++] = x;
}

static void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* Rows accumulated for parts and the ANN structure. */
typedef struct rowbuf {
    size_t n, cap;
    int dim;
    char **doc_ids, **texts, **hashes;
    int32_t *chunks;
    int64_t *labels;
    float *vecs;
} rowbuf;

static void rowbuf_reserve(rowbuf *r, size_t more)
{
    if (r->n + more <= r->cap)
        return;
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->n + more)
        cap *= 2;
    r->doc_ids = lh_xrealloc(r->doc_ids, cap * sizeof(char *));
    r->texts = lh_xrealloc(r->texts, cap * sizeof(char *));
    r->hashes = lh_xrealloc(r->hashes, cap * sizeof(char *));
    r->chunks = lh_xrealloc(r->chunks, cap * sizeof(int32_t));
    r->labels = lh_xrealloc(r->labels, cap * sizeof(int64_t));
    r->vecs = lh_xrealloc(r->vecs, cap * (size_t)r->dim * sizeof(float));
    r->cap = cap;
}

static void rowbuf_clear(rowbuf *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->doc_ids[i]);
        free(r->texts[i]);
        free(r->hashes[i]);
    }
    r->n = 0;
}

static void rowbuf_free(rowbuf *r)
{
    rowbuf_clear(r);
    free(r->doc_ids);
    free(r->texts);
    free(r->hashes);
    free(r->chunks);
    free(r->labels);
    free(r->vecs);
    memset(r, 0, sizeof(*r));
}

static char *new_file_name(const char *prefix, const char *ext)
{
    char hex[17];
    lh_random_hex(hex, 16);
    return lh_xasprintf("%s-%s.%s", prefix, hex, ext);
}

/* The index's data folder (absolute), created when missing. Caller frees. */
static char *data_dir(lh_vectors *v, const json_t *def, lh_error *err)
{
    char *dir = lh_vreg_dir(v, def, err);
    if (dir && lh_fs_mkdirs(dir, LH_DIR_MODE, err) != 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

static void remove_written(lh_vectors *v, const json_t *def, const strv *files)
{
    for (size_t i = 0; i < files->n; i++) {
        char *p = lh_vreg_path(v, def, files->v[i], NULL);
        if (p && unlink(p) != 0 && errno != ENOENT)
            lh_log(LH_LOG_WARN, "vector_file_remove_failed", "{s:s,s:s}", "index",
                   lh_json_str(def, "name"), "file", files->v[i]);
        free(p);
    }
}

/* ---------------------------------------------------------------- reading the dataset */

/* Runs an internal query over the dataset's view and returns its JSON document. */
static json_t *engine_json(lh_vectors *v, const char *sql, int64_t max_rows, lh_error *err)
{
    lh_query_opts qo = {
        .format = LH_FORMAT_JSON,
        .max_rows = max_rows,
        .timeout_ms =
            v->vc.cfg->query_timeout_ms > 0
                ? (v->vc.cfg->query_timeout_ms < 120000 ? 120000 : v->vc.cfg->query_timeout_ms)
                : 120000,
        .policy = NULL};
    lh_query *q = NULL;
    json_t *doc = NULL;
    lh_buf buf;
    lh_buf_init(&buf);
    /* All query slots busy: wait a little, as a client retrying a 429 would. */
    for (int attempt = 0; attempt < 200; attempt++) {
        lh_error lerr;
        q = lh_query_start(v->vc.eng, sql, &qo, &lerr);
        if (q || lerr.code != LH_EBUSY) {
            if (!q && err)
                *err = lerr;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!q)
        goto out;
    char chunk[65536];
    ssize_t n;
    while ((n = lh_query_read(q, chunk, sizeof(chunk))) > 0)
        lh_buf_append(&buf, chunk, (size_t)n);
    if (n < 0 || lh_query_error(q)) {
        const lh_error *qe = lh_query_error(q);
        lh_error_set(err, qe ? qe->code : LH_EINTERNAL, "reading the dataset failed: %s",
                     qe ? qe->message : "unknown error");
        goto out;
    }
    doc = lh_json_parse_object(buf.data ? buf.data : "", buf.len, err);
    if (doc && json_object_get(doc, "error")) {
        lh_error_set(err, LH_EINTERNAL, "reading the dataset failed: %s",
                     lh_json_str(json_object_get(doc, "error"), "message"));
        json_decref(doc);
        doc = NULL;
    }
out:
    lh_query_free(q);
    lh_buf_free(&buf);
    return doc;
}

static int64_t cell_int(const json_t *row, size_t i)
{
    json_t *c = json_array_get(row, i);
    if (json_is_integer(c))
        return json_integer_value(c);
    if (json_is_string(c))
        return strtoll(json_string_value(c), NULL, 10);
    return 0;
}

/* The SQL pieces over a definition's dataset: relation, id and text expressions. */
typedef struct src_sql {
    char *rel, *id, *text;
} src_sql;

static void src_sql_init(src_sql *s, const json_t *def)
{
    s->rel = lh_sql_ident(lh_json_str(def, "dataset"));
    char *id = lh_sql_ident(lh_json_str(def, "id_column"));
    char *text = lh_sql_ident(lh_json_str(def, "text_column"));
    s->id = lh_xasprintf("CAST(%s AS VARCHAR)", id);
    s->text = lh_xasprintf("CAST(%s AS VARCHAR)", text);
    free(id);
    free(text);
}

static void src_sql_free(src_sql *s)
{
    free(s->rel);
    free(s->id);
    free(s->text);
}

/* Counts documents (*docs), skipped rows (*skipped: NULL id, NULL or empty text) and
 * refuses duplicate ids (count and one example). */
static int check_docs(lh_vectors *v, const json_t *def, int64_t *docs, int64_t *skipped,
                      lh_error *err)
{
    src_sql s;
    src_sql_init(&s, def);
    int rc = 0;
    char *sql = lh_xasprintf(
        "SELECT count(*) FILTER (WHERE %s IS NOT NULL AND %s IS NOT NULL AND %s <> ''), "
        "count(*) FILTER (WHERE %s IS NULL OR %s IS NULL OR %s = '') FROM %s",
        s.id, s.text, s.text, s.id, s.text, s.text, s.rel);
    json_t *doc = engine_json(v, sql, 1, err);
    free(sql);
    if (!doc) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    json_t *row = json_array_get(json_object_get(doc, "rows"), 0);
    *docs = cell_int(row, 0);
    *skipped = cell_int(row, 1);
    json_decref(doc);
    sql = lh_xasprintf("SELECT count(*), min(v) FROM (SELECT %s AS v FROM %s WHERE %s IS NOT NULL "
                       "GROUP BY 1 HAVING count(*) > 1)",
                       s.id, s.rel, s.id);
    doc = engine_json(v, sql, 1, err);
    free(sql);
    if (!doc) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    row = json_array_get(json_object_get(doc, "rows"), 0);
    int64_t dups = cell_int(row, 0);
    if (dups > 0) {
        const char *ex = json_string_value(json_array_get(row, 1));
        char *eex = lh_escape(ex ? ex : "", ex ? strlen(ex) : 0, true);
        rc = lh_error_setk(
            err, LH_EINVAL, "duplicate_ids",
            "column '%s' of dataset '%s' has %lld duplicated value%s (e.g. '%.100s'): "
            "an index needs one document per id",
            lh_json_str(def, "id_column"), lh_json_str(def, "dataset"), (long long)dups,
            dups == 1 ? "" : "s", eex);
        free(eex);
    }
    json_decref(doc);
out:
    src_sql_free(&s);
    return rc;
}

/* One keyset page of documents after `after` (NULL: from the start): rows [id, hash] or
 * [id, hash, text]. Caller decrefs the document. */
static json_t *docs_page(lh_vectors *v, const json_t *def, const char *after, bool with_text,
                         lh_error *err)
{
    src_sql s;
    src_sql_init(&s, def);
    char *lit = after ? lh_sql_literal(after) : NULL;
    char *after_sql = lit ? lh_xasprintf(" AND %s > %s", s.id, lit) : lh_xstrdup("");
    char *sql = lh_xasprintf("SELECT %s AS id, sha256(%s) AS h%s%s FROM %s WHERE %s IS NOT NULL "
                             "AND %s IS NOT NULL AND %s <> ''%s ORDER BY 1 LIMIT %d",
                             s.id, s.text, with_text ? ", " : "", with_text ? s.text : "", s.rel,
                             s.id, s.text, s.text, after_sql, LH_VECTOR_PAGE);
    json_t *doc = engine_json(v, sql, LH_VECTOR_PAGE, err);
    free(sql);
    free(after_sql);
    free(lit);
    src_sql_free(&s);
    return doc;
}

/* Documents with the given ids: rows [id, hash, text]. */
static json_t *docs_by_id(lh_vectors *v, const json_t *def, char *const *ids, size_t n,
                          lh_error *err)
{
    src_sql s;
    src_sql_init(&s, def);
    lh_buf in;
    lh_buf_init(&in);
    for (size_t i = 0; i < n; i++) {
        char *lit = lh_sql_literal(ids[i]);
        lh_buf_printf(&in, "%s%s", i ? ", " : "", lit);
        free(lit);
    }
    char *sql = lh_xasprintf("SELECT %s AS id, sha256(%s) AS h, %s FROM %s WHERE %s IS NOT NULL "
                             "AND %s IS NOT NULL AND %s <> '' AND %s IN (%s) ORDER BY 1",
                             s.id, s.text, s.text, s.rel, s.id, s.text, s.text, s.id, in.data);
    json_t *doc = engine_json(v, sql, (int64_t)n + 1, err);
    free(sql);
    lh_buf_free(&in);
    src_sql_free(&s);
    return doc;
}

/* ---------------------------------------------------------------- chunk + embed */

/* Chunks and embeds documents (rows [id, hash, text]) into out, labels from *next_label.
 * Counts embedder calls. */
static int embed_docs(lh_vectors *v, vindex *ix, const json_t *def, const json_t *rows, rowbuf *out,
                      int64_t *next_label, lh_job *job, lh_error *err)
{
    size_t size = (size_t)lh_json_int(def, "chunk_size", 512),
           overlap = (size_t)lh_json_int(def, "overlap", 64);
    size_t first = out->n;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_array_get(row, 0));
        const char *h = json_string_value(json_array_get(row, 1));
        const char *text = json_string_value(json_array_get(row, 2));
        if (!id || !h || !text)
            continue;
        lh_chunk_span *spans = NULL;
        size_t ns = 0;
        int rc = lh_chunk_text(text, strlen(text), size, overlap, &spans, &ns, err);
        if (rc)
            return rc;
        rowbuf_reserve(out, ns);
        for (size_t k = 0; k < ns; k++) {
            size_t r = out->n++;
            out->doc_ids[r] = lh_xstrdup(id);
            out->hashes[r] = lh_xstrdup(h);
            out->texts[r] = lh_xasprintf("%.*s", (int)spans[k].len, text + spans[k].offset);
            out->chunks[r] = (int32_t)k;
            out->labels[r] = (*next_label)++;
        }
        free(spans);
    }
    lh_embedder *emb = first < out->n ? lh_vreg_embedder(v, ix, err) : NULL;
    if (first < out->n && !emb)
        return err ? err->code : LH_EINTERNAL;
    for (size_t at = first; at < out->n; at += LH_VECTOR_EMBED_BATCH) {
        if (lh_job_cancelled(job))
            return lh_error_set(err, LH_ECANCELLED, "cancelled");
        size_t m = out->n - at < LH_VECTOR_EMBED_BATCH ? out->n - at : LH_VECTOR_EMBED_BATCH;
        atomic_fetch_add(&v->embed_calls, 1);
        int rc = lh_embedder_embed(emb, (const char *const *)out->texts + at, m,
                                   out->vecs + at * (size_t)out->dim, job, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Writes rows [from, to) of r as a new part; its file name goes to names (and written). */
static int write_part(lh_vectors *v, const char *dir, const rowbuf *r, size_t from, size_t to,
                      json_t *names, strv *written, lh_error *err)
{
    char *file = new_file_name("part", "parquet");
    char *path = lh_path_join(dir, file);
    lh_vrows rows = {.n = to - from,
                     .dim = r->dim,
                     .doc_ids = (const char *const *)r->doc_ids + from,
                     .chunks = r->chunks + from,
                     .texts = (const char *const *)r->texts + from,
                     .vecs = r->vecs + from * (size_t)r->dim,
                     .labels = r->labels + from,
                     .doc_hashes = (const char *const *)r->hashes + from};
    int rc = lh_vstore_write_part(v, path, &rows, err);
    if (rc == 0 || lh_error_not_durable(err)) {
        strv_push(written, lh_xstrdup(file));
        if (rc == 0)
            json_array_append_new(names, json_string(file));
    }
    free(path);
    free(file);
    return rc;
}

/* Writes an ANN structure under a new name in dir (temp name, fsync, rename, folder fsync).
 * *file_out gets the name. */
static int write_ann(const lh_ann *a, const char *dir, char **file_out, strv *written,
                     lh_error *err)
{
    char *file = new_file_name("ann", "faiss");
    char *path = lh_path_join(dir, file);
    char hex[17];
    lh_random_hex(hex, 16);
    char *tmp = lh_xasprintf("%s.tmp-%s", path, hex);
    int rc = 0;
    bool renamed = false;
    FILE *f = NULL;
    int fd = lh_sys_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, LH_FILE_MODE);
    if (fd < 0 || !(f = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        rc = lh_error_set(err, LH_EIO, "cannot create an ANN file: %s", strerror(errno));
        goto out;
    }
    rc = lh_ann_write(a, f, err);
    if (fflush(f) != 0 && rc == 0)
        rc = lh_error_set(err, LH_EIO, "cannot write an ANN file: %s", strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = lh_error_set(err, LH_EIO, "cannot write an ANN file: %s", strerror(errno));
    f = NULL;
    if (rc)
        goto out;
    rc = lh_fs_commit(tmp, path, err);
    renamed = rc == 0 || lh_error_not_durable(err);
    if (renamed)
        strv_push(written, lh_xstrdup(file));
    if (rc == 0) {
        *file_out = file;
        file = NULL;
    }
out:
    if (!renamed)
        unlink(tmp);
    free(tmp);
    free(path);
    free(file);
    return rc;
}

static int ann_threads(const lh_vectors *v)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int t = v->vc.cfg->job_threads > 0 ? v->vc.cfg->job_threads : 1;
    return cores > 0 && cores < t ? (int)cores : t;
}

/* Builds the ANN structure of def's kind and params over n vectors; progress in vectors
 * added. *params_out gets the resolved parameters as JSON. */
static lh_ann *build_ann(lh_vectors *v, const json_t *def, const float *vecs, const int64_t *labels,
                         size_t n, lh_job *job, json_t **params_out, lh_error *err)
{
    lh_ann_kind kind;
    lh_ann_params p;
    int dim = (int)lh_json_int(def, "dim", 0);
    if (lh_ann_kind_parse(lh_json_str(def, "kind"), &kind, err) != 0)
        return NULL;
    lh_ann_params_default(kind, dim, n, &p);
    json_t *req = json_object_get(def, "params");
    if (json_is_object(req) && lh_ann_params_from_json(kind, req, &p, err) != 0)
        return NULL;
    lh_ann *a = lh_ann_new(kind, dim, &p, vecs, n, ann_threads(v), err);
    if (!a)
        return NULL;
    const size_t step = 10000;
    for (size_t at = 0; at < n; at += step) {
        size_t m = n - at < step ? n - at : step;
        if (lh_job_cancelled(job)) {
            lh_error_set(err, LH_ECANCELLED, "cancelled");
            goto fail;
        }
        if (lh_ann_add(a, vecs + at * (size_t)dim, labels + at, m, err) != 0)
            goto fail;
        lh_job_progress(job, (int64_t)(at + m), (int64_t)n);
    }
    lh_ann_get_params(a, &p); /* what FAISS used (IVF-PQ's training clamps) */
    if (params_out)
        *params_out = lh_ann_params_json(kind, &p);
    return a;
fail:
    lh_ann_free(a);
    return NULL;
}

/* ---------------------------------------------------------------- prepare */

static const char *const SPEC_FIELDS[] = {
    "name",  "dataset", "id_column", "text_column", "chunk_size", "overlap", "embedder",
    "model", "dim",     "kind",      "params",      "refresh",    "wait"};

/* The column of the manifest's schema named `want` (exact, else case-insensitive); NULL +
 * LH_EINVAL listing the columns. *type gets its type. */
static const char *find_column(const json_t *m, const char *field, const char *want,
                               const char **type, lh_error *err)
{
    json_t *schema = json_object_get(m, "schema"), *c;
    size_t i;
    const char *hit = NULL;
    json_array_foreach(schema, i, c) if (strcmp(lh_json_str(c, "name"), want) == 0)
        hit = lh_json_str(c, "name"),
        *type = lh_json_str(c, "type");
    if (!hit)
        json_array_foreach(schema, i, c) if (!hit && strcasecmp(lh_json_str(c, "name"), want) == 0)
            hit = lh_json_str(c, "name"),
            *type = lh_json_str(c, "type");
    if (hit)
        return hit;
    lh_buf cols;
    lh_buf_init(&cols);
    json_array_foreach(schema, i, c)
        lh_buf_printf(&cols, "%s%s", i ? ", " : "", lh_json_str(c, "name"));
    lh_error_set(err, LH_EINVAL, "'%s': dataset '%s' has no column '%s' (columns: %s)", field,
                 lh_json_str(m, "name"), want, cols.data ? cols.data : "");
    lh_buf_free(&cols);
    return NULL;
}

static int int_field(const json_t *spec, const char *key, json_int_t dflt, json_int_t lo,
                     json_int_t hi, json_int_t *out, lh_error *err)
{
    json_t *j = json_object_get(spec, key);
    if (!j || json_is_null(j)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return lh_error_set(err, LH_EINVAL, "'%s' must be an integer from %lld to %lld", key,
                            (long long)lo, (long long)hi);
    *out = json_integer_value(j);
    return 0;
}

static int str_field(const json_t *spec, const char *key, bool required, const char **out,
                     lh_error *err)
{
    json_t *j = json_object_get(spec, key);
    *out = NULL;
    if (!j || json_is_null(j))
        return required ? lh_error_set(err, LH_EINVAL, "'%s' is required", key) : 0;
    if (!json_is_string(j) || !*json_string_value(j))
        return lh_error_set(err, LH_EINVAL, "'%s' must be a non-empty string", key);
    *out = json_string_value(j);
    return 0;
}

int lh_vectors_prepare(lh_vectors *v, const json_t *spec, const char *actor, lh_vector_build **out,
                       lh_error *err)
{
    *out = NULL;
    json_t *m = NULL, *def = NULL;
    int rc = 0;
    if (!json_is_object(spec))
        return lh_error_set(err, LH_EINVAL, "the body must be a JSON object");
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)spec, k, val)
    {
        size_t i, n = sizeof(SPEC_FIELDS) / sizeof(SPEC_FIELDS[0]);
        for (i = 0; i < n && strcmp(k, SPEC_FIELDS[i]) != 0; i++)
            ;
        if (i == n)
            return lh_error_set(err, LH_EINVAL,
                                "unknown field '%s' (allowed: name, dataset, id_column, "
                                "text_column, chunk_size, overlap, embedder, model, dim, kind, "
                                "params, refresh, wait)",
                                k);
    }
    const char *name, *dataset, *id_col, *text_col, *embedder, *model, *kind_s, *refresh;
    if ((rc = str_field(spec, "name", true, &name, err)) ||
        (rc = lh_name_validate(name, "index name", err)) ||
        (rc = str_field(spec, "dataset", true, &dataset, err)) ||
        (rc = str_field(spec, "id_column", true, &id_col, err)) ||
        (rc = str_field(spec, "text_column", true, &text_col, err)) ||
        (rc = str_field(spec, "embedder", false, &embedder, err)) ||
        (rc = str_field(spec, "model", false, &model, err)) ||
        (rc = str_field(spec, "kind", false, &kind_s, err)) ||
        (rc = str_field(spec, "refresh", false, &refresh, err)))
        return rc;
    json_t *wait = json_object_get(spec, "wait");
    if (wait && !json_is_boolean(wait))
        return lh_error_set(err, LH_EINVAL, "'wait' must be a boolean");
    embedder = embedder ? embedder : "hash";
    if (strcmp(embedder, "hash") != 0 && strcmp(embedder, "ollama") != 0 &&
        strcmp(embedder, "openai") != 0)
        return lh_error_set(err, LH_EINVAL,
                            "'embedder' must be \"hash\", \"ollama\" or \"openai\", not '%s'",
                            embedder);
    bool is_hash = strcmp(embedder, "hash") == 0;
    if (is_hash && model)
        return lh_error_set(err, LH_EINVAL, "the hash embedder takes no 'model'");
    if (!is_hash && !model)
        return lh_error_set(err, LH_EINVAL, "the %s embedder needs a 'model'", embedder);
    json_int_t chunk_size, overlap, dim;
    if ((rc = int_field(spec, "chunk_size", 512, 16, 100000, &chunk_size, err)) ||
        (rc = int_field(spec, "overlap", chunk_size > 64 ? 64 : chunk_size / 4, 0, chunk_size - 1,
                        &overlap, err)))
        return rc;
    if (!is_hash && json_object_get(spec, "dim") && !json_is_null(json_object_get(spec, "dim")))
        return lh_error_set(err, LH_EINVAL,
                            "'dim' is for the hash embedder only (the %s server decides it)",
                            embedder);
    if ((rc = int_field(spec, "dim", is_hash ? 384 : 0, 8, 4096, &dim, err)))
        return rc;
    lh_ann_kind kind;
    if ((rc = lh_ann_kind_parse(kind_s ? kind_s : "hnsw", &kind, err)) != 0)
        return rc;
    json_t *params = json_object_get(spec, "params");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params))
            return lh_error_set(err, LH_EINVAL, "'params' must be an object");
        lh_ann_params p;
        lh_ann_params_default(kind, is_hash ? (int)dim : 384, 100000, &p);
        if ((rc = lh_ann_params_from_json(kind, params, &p, err)) != 0)
            return rc;
    }
    refresh = refresh ? refresh : "manual";
    if (strcmp(refresh, "manual") != 0 && strcmp(refresh, "on_append") != 0)
        return lh_error_set(err, LH_EINVAL, "'refresh' must be \"manual\" or \"on_append\"");
    if (!(m = lh_catalog_get(v->vc.cat, dataset, err)))
        return LH_ENOTFOUND;
    const char *id_type, *text_type, *id_real, *text_real;
    if (!(id_real = find_column(m, "id_column", id_col, &id_type, err)) ||
        !(text_real = find_column(m, "text_column", text_col, &text_type, err))) {
        rc = LH_EINVAL;
        goto out;
    }
    if (!text_type || strcmp(text_type, "VARCHAR") != 0) {
        rc = lh_error_set(err, LH_EINVAL,
                          "'text_column': column '%s' of dataset '%s' is %s, not text (VARCHAR)",
                          text_real, lh_json_str(m, "name"), text_type ? text_type : "untyped");
        goto out;
    }
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    def =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s?,s:I,s:s,s:o,s:s,s:s,s:s,s:n,s:n,"
                  "s:n,s:I,s:I,s:I,s:[],s:n,s:n}",
                  "format_version", "vector_index.v1", "name", name, "dataset",
                  lh_json_str(m, "name"), "bucket", lh_json_str(m, "bucket"), "id_column", id_real,
                  "text_column", text_real, "chunk_size", chunk_size, "overlap", overlap,
                  "embedder", embedder, "model", model, "dim", dim, "kind", lh_ann_kind_name(kind),
                  "params", json_is_object(params) ? json_deep_copy(params) : json_object(),
                  "refresh", refresh, "created_at", now, "created_by", actor ? actor : "anonymous",
                  "built_at", "refreshed_at", "embedding_stale_since", "docs", (json_int_t)0,
                  "chunks", (json_int_t)0, "next_label", (json_int_t)0, "parts", "ann", "champion");
    if (!def) {
        rc = lh_error_set(err, LH_EINTERNAL, "cannot build the index definition");
        goto out;
    }
    vindex *ix = lh_vreg_add_building(v, name, err);
    if (!ix) {
        rc = LH_EEXISTS;
        goto out;
    }
    pthread_mutex_lock(&v->mu);
    ix->def = json_deep_copy(def);
    pthread_mutex_unlock(&v->mu);
    lh_vector_build *b = lh_xcalloc(1, sizeof(*b));
    b->ix = ix;
    b->def = def;
    def = NULL;
    *out = b;
out:
    json_decref(m);
    json_decref(def);
    return rc;
}

void lh_vector_build_abandon(lh_vectors *v, lh_vector_build *b)
{
    if (!b)
        return;
    lh_vreg_unlist(v, b->ix);
    lh_vreg_put(v, b->ix);
    json_decref(b->def);
    free(b);
}

/* ---------------------------------------------------------------- build */

int lh_vectors_build(lh_vectors *v, lh_vector_build *b, lh_job *job, json_t **index_out,
                     lh_error *err)
{
    vindex *ix = b->ix;
    json_t *def = b->def, *parts = json_array(), *params = NULL, *page = NULL;
    rowbuf part = {0};
    /* the ANN structure needs every vector (and label); the current part its own rows */
    float *all_vecs = NULL;
    int64_t *all_labels = NULL;
    size_t all_n = 0, all_cap = 0;
    strv written = {0};
    char *dir = NULL, *after = NULL, *ann_file = NULL;
    lh_ann *ann = NULL;
    int64_t next_label = 0, docs = 0, skipped = 0, done = 0, n_docs = 0;
    int rc = 0;
    int64_t t0 = lh_now_ms();
    pthread_mutex_lock(&ix->work_mu);
    if (index_out)
        *index_out = NULL;
    lh_embedder *emb = lh_vreg_embedder(v, ix, err);
    if (!emb) {
        rc = err ? err->code : LH_EINTERNAL;
        goto out;
    }
    int dim = lh_embedder_dim(emb);
    json_object_set_new(def, "dim", json_integer(dim));
    json_object_set_new(def, "model", json_string(lh_embedder_model(emb)));
    part.dim = dim;
    if (!(dir = data_dir(v, def, err))) {
        rc = err ? err->code : LH_EIO;
        goto out;
    }
    if ((rc = check_docs(v, def, &docs, &skipped, err)) != 0)
        goto out;
    lh_job_progress(job, 0, docs);
    for (;;) {
        if (lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "cancelled");
            goto out;
        }
        json_decref(page);
        if (!(page = docs_page(v, def, after, true, err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        json_t *rows = json_object_get(page, "rows");
        size_t n = json_array_size(rows);
        if (n == 0)
            break;
        size_t before = part.n;
        if ((rc = embed_docs(v, ix, def, rows, &part, &next_label, job, err)) != 0)
            goto out;
        /* the ANN structure needs every vector; the part only its own rows */
        if (all_n + (part.n - before) > all_cap) {
            all_cap = (all_n + (part.n - before)) * 2;
            all_vecs = lh_xrealloc(all_vecs, all_cap * (size_t)dim * sizeof(float));
            all_labels = lh_xrealloc(all_labels, all_cap * sizeof(int64_t));
        }
        memcpy(all_vecs + all_n * (size_t)dim, part.vecs + before * (size_t)dim,
               (part.n - before) * (size_t)dim * sizeof(float));
        memcpy(all_labels + all_n, part.labels + before, (part.n - before) * sizeof(int64_t));
        all_n += part.n - before;
        n_docs += (int64_t)n;
        done += (int64_t)n;
        lh_job_progress(job, done, docs > done ? docs : done);
        free(after);
        after = lh_xstrdup(json_string_value(json_array_get(json_array_get(rows, n - 1), 0)));
        if (part.n >= LH_VECTOR_PART_ROWS) {
            if ((rc = write_part(v, dir, &part, 0, part.n, parts, &written, err)) != 0)
                goto out;
            rowbuf_clear(&part);
        }
        if (n < LH_VECTOR_PAGE)
            break;
    }
    if (part.n > 0 && (rc = write_part(v, dir, &part, 0, part.n, parts, &written, err)) != 0)
        goto out;
    rowbuf_clear(&part);
    if (all_n > 0) {
        if (!(ann = build_ann(v, def, all_vecs, all_labels, all_n, job, &params, err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        if ((rc = write_ann(ann, dir, &ann_file, &written, err)) != 0)
            goto out;
        json_object_set_new(def, "params", params);
        params = NULL;
    }
    if (lh_job_cancelled(job)) {
        rc = lh_error_set(err, LH_ECANCELLED, "cancelled");
        goto out;
    }
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    json_object_set_new(def, "docs", json_integer(n_docs));
    json_object_set_new(def, "chunks", json_integer((json_int_t)all_n));
    json_object_set_new(def, "next_label", json_integer(next_label));
    json_object_set(def, "parts", parts);
    json_object_set_new(def, "ann", ann_file ? json_string(ann_file) : json_null());
    json_object_set_new(def, "built_at", json_string(now));
    pthread_mutex_lock(&v->def_mu);
    pthread_mutex_lock(&v->mu);
    if (ix->stale_pending) /* the dataset changed while we read it */
        json_object_set_new(def, "embedding_stale_since", json_string(ix->stale_pending));
    pthread_mutex_unlock(&v->mu);
    rc = lh_vreg_commit_locked(v, ix, json_incref(def), err);
    if (rc == 0) {
        pthread_mutex_lock(&v->mu);
        ix->building = false;
        free(ix->stale_pending);
        ix->stale_pending = NULL;
        pthread_mutex_unlock(&v->mu);
    }
    pthread_mutex_unlock(&v->def_mu);
    if (rc)
        goto out;
    lh_log(LH_LOG_INFO, "vector_index_built", "{s:s,s:s,s:I,s:I,s:I,s:I}", "index", ix->name,
           "dataset", lh_json_str(def, "dataset"), "docs", (json_int_t)n_docs, "chunks",
           (json_int_t)all_n, "skipped", (json_int_t)skipped, "ms", (json_int_t)(lh_now_ms() - t0));
    lh_error jerr;
    if (lh_catalog_record(v->vc.cat, lh_json_str(def, "created_by"), "vector_index.created",
                          ix->name,
                          json_pack("{s:s,s:I,s:I}", "dataset", lh_json_str(def, "dataset"), "docs",
                                    (json_int_t)n_docs, "chunks", (json_int_t)all_n),
                          &jerr) != 0)
        lh_log(LH_LOG_WARN, "vector_event_not_recorded", "{s:s}", "index", ix->name);
    if (index_out) {
        *index_out = lh_vectors_get(v, ix->name, NULL);
        if (*index_out)
            json_object_set_new(*index_out, "skipped_rows", json_integer(skipped));
    }
out:
    pthread_mutex_unlock(&ix->work_mu);
    if (rc) {
        remove_written(v, def, &written);
        lh_vreg_unlist(v, ix);
        lh_log(LH_LOG_WARN, "vector_index_build_failed", "{s:s,s:s}", "index", ix->name, "error",
               err ? err->message : "");
    }
    lh_vreg_put(v, ix);
    json_decref(def);
    json_decref(parts);
    json_decref(params);
    json_decref(page);
    lh_ann_free(ann);
    free(all_vecs);
    free(all_labels);
    rowbuf_free(&part);
    strv_free(&written);
    free(dir);
    free(after);
    free(ann_file);
    free(b);
    return rc;
}

/* ---------------------------------------------------------------- refresh and purge */

/* A stored document: its id, hash and the rows (labels) that hold its chunks. */
typedef struct sdoc {
    const char *id, *hash;
    bool seen, drop;
} sdoc;

static int sdoc_cmp(const void *a, const void *b)
{
    return strcmp(((const sdoc *)a)->id, ((const sdoc *)b)->id);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Refreshes (or purges) one index. *entry gets its report. Takes ix->work_mu. */
static int refresh_one(lh_vectors *v, vindex *ix, bool purge_only, lh_job *job, json_t **entry,
                       lh_error *err)
{
    int64_t t0 = lh_now_ms();
    json_t *def = NULL, *m = NULL, *page = NULL, *new_parts = json_array(), *params = NULL;
    lh_vscan *scans = NULL;
    size_t n_parts = 0, n_docs = 0;
    sdoc *docs = NULL;
    strv embed_ids = {0}, written = {0}, doomed = {0};
    rowbuf fresh = {0};
    int64_t *drop = NULL;
    size_t n_drop = 0;
    char *dir = NULL, *after = NULL, *stale_at_start = NULL, *ann_file = NULL;
    lh_ann *ann = NULL;
    int64_t docs_embedded = 0, docs_removed = 0, docs_changed = 0, chunks_kept = 0;
    long calls0 = atomic_load(&v->embed_calls);
    int rc = 0;
    bool locked_load = false;
    pthread_mutex_lock(&ix->work_mu);
    def = lh_vreg_def_copy(v, ix);
    const char *since = lh_json_str(def, "embedding_stale_since");
    stale_at_start = since ? lh_xstrdup(since) : NULL;
    int dim = (int)lh_json_int(def, "dim", 0);
    fresh.dim = dim;
    if (!(m = lh_catalog_get(v->vc.cat, lh_json_str(def, "dataset"), NULL))) {
        rc = lh_error_set(err, LH_ENOTFOUND,
                          "dataset '%s' of vector index '%s' does not exist; re-create it or "
                          "delete the index",
                          lh_json_str(def, "dataset"), ix->name);
        goto out;
    }
    if (strcmp(lh_json_str(m, "bucket"), lh_json_str(def, "bucket")) != 0) {
        rc = lh_error_set(err, LH_ECONFLICT,
                          "dataset '%s' now lives in bucket '%s', vector index '%s' in '%s': "
                          "delete and re-create the index",
                          lh_json_str(def, "dataset"), lh_json_str(m, "bucket"), ix->name,
                          lh_json_str(def, "bucket"));
        goto out;
    }
    if (!(dir = data_dir(v, def, err))) {
        rc = err ? err->code : LH_EIO;
        goto out;
    }
    if (!purge_only) {
        int64_t nd, sk;
        if ((rc = check_docs(v, def, &nd, &sk, err)) != 0)
            goto out;
    }
    /* What is stored, part by part (no texts, no vectors). */
    json_t *parts = json_object_get(def, "parts");
    n_parts = json_array_size(parts);
    scans = lh_xcalloc(n_parts + 1, sizeof(*scans));
    size_t total_rows = 0;
    for (size_t p = 0; p < n_parts; p++) {
        char *path = lh_path_join(dir, json_string_value(json_array_get(parts, p)));
        char *paths[2] = {path, NULL};
        rc = lh_vstore_scan(v, paths, dim, false, false, &scans[p], err);
        free(path);
        if (rc)
            goto out;
        total_rows += scans[p].n;
    }
    docs = lh_xcalloc(total_rows + 1, sizeof(*docs));
    for (size_t p = 0; p < n_parts; p++)
        for (size_t r = 0; r < scans[p].n; r++) {
            docs[n_docs].id = scans[p].doc_ids[r];
            docs[n_docs].hash = scans[p].doc_hashes[r];
            n_docs++;
        }
    qsort(docs, n_docs, sizeof(*docs), sdoc_cmp);
    { /* one entry per document */
        size_t w = 0;
        for (size_t r = 0; r < n_docs; r++)
            if (w == 0 || strcmp(docs[w - 1].id, docs[r].id) != 0)
                docs[w++] = docs[r];
        n_docs = w;
    }
    /* What the dataset holds now. */
    for (;;) {
        if (lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "cancelled");
            goto out;
        }
        json_decref(page);
        if (!(page = docs_page(v, def, after, false, err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        json_t *rows = json_object_get(page, "rows"), *row;
        size_t n = json_array_size(rows), i;
        json_array_foreach(rows, i, row)
        {
            const char *id = json_string_value(json_array_get(row, 0));
            const char *h = json_string_value(json_array_get(row, 1));
            if (!id || !h)
                continue;
            sdoc key = {.id = id};
            sdoc *hit = bsearch(&key, docs, n_docs, sizeof(*docs), sdoc_cmp);
            if (hit)
                hit->seen = true;
            if (purge_only)
                continue;
            if (!hit || strcmp(hit->hash, h) != 0) {
                strv_push(&embed_ids, lh_xstrdup(id));
                if (hit)
                    hit->drop = true; /* changed: its old chunks go */
            }
        }
        if (n == 0)
            break;
        free(after);
        after = lh_xstrdup(json_string_value(json_array_get(json_array_get(rows, n - 1), 0)));
        if (n < LH_VECTOR_PAGE)
            break;
    }
    for (size_t d = 0; d < n_docs; d++) {
        if (!docs[d].seen)
            docs[d].drop = true, docs_removed++;
        else if (docs[d].drop)
            docs_changed++;
    }
    /* Labels to drop, sorted. */
    drop = lh_xcalloc(total_rows + 1, sizeof(*drop));
    for (size_t p = 0; p < n_parts; p++)
        for (size_t r = 0; r < scans[p].n; r++) {
            sdoc key = {.id = scans[p].doc_ids[r]};
            sdoc *hit = bsearch(&key, docs, n_docs, sizeof(*docs), sdoc_cmp);
            if (hit && hit->drop)
                drop[n_drop++] = scans[p].labels[r];
        }
    qsort(drop, n_drop, sizeof(*drop), i64_cmp);
    /* Embed the new and changed documents. */
    int64_t next_label = lh_json_int(def, "next_label", 0);
    for (size_t at = 0; at < embed_ids.n; at += 200) {
        size_t cnt = embed_ids.n - at < 200 ? embed_ids.n - at : 200;
        json_decref(page);
        if (!(page = docs_by_id(v, def, embed_ids.v + at, cnt, err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        json_t *rows = json_object_get(page, "rows");
        if ((rc = embed_docs(v, ix, def, rows, &fresh, &next_label, job, err)) != 0)
            goto out;
        docs_embedded += (int64_t)json_array_size(rows);
        lh_job_progress(job, (int64_t)(at + cnt), (int64_t)embed_ids.n);
    }
    if (n_drop == 0 && fresh.n == 0)
        goto commit; /* nothing changed: only the stale mark goes */
    /* Parts: rewrite those holding dropped rows, add the new rows. */
    for (size_t p = 0; p < n_parts; p++) {
        const char *file = json_string_value(json_array_get(parts, p));
        bool hit = false;
        for (size_t r = 0; r < scans[p].n && !hit; r++)
            hit = bsearch(&scans[p].labels[r], drop, n_drop, sizeof(*drop), i64_cmp) != NULL;
        if (!hit) {
            json_array_append_new(new_parts, json_string(file));
            chunks_kept += (int64_t)scans[p].n;
            continue;
        }
        char *from = lh_path_join(dir, file);
        char *nf = new_file_name("part", "parquet");
        char *to = lh_path_join(dir, nf);
        int64_t kept = 0;
        rc = lh_vstore_rewrite_part(v, from, to, drop, n_drop, &kept, err);
        if (rc == 0 || lh_error_not_durable(err))
            if (kept > 0)
                strv_push(&written, lh_xstrdup(nf));
        if (rc == 0 && kept > 0)
            json_array_append_new(new_parts, json_string(nf));
        strv_push(&doomed, lh_xstrdup(file));
        chunks_kept += kept;
        free(from);
        free(to);
        free(nf);
        if (rc)
            goto out;
    }
    for (size_t at = 0; at < fresh.n; at += LH_VECTOR_PART_ROWS) {
        size_t to = fresh.n - at < LH_VECTOR_PART_ROWS ? fresh.n : at + LH_VECTOR_PART_ROWS;
        if ((rc = write_part(v, dir, &fresh, at, to, new_parts, &written, err)) != 0)
            goto out;
    }
    /* ANN: remove and add in place when the kind can, else rebuild from the kept vectors. */
    int64_t total = chunks_kept + (int64_t)fresh.n;
    const char *old_ann = lh_json_str(def, "ann");
    if (total > 0) {
        if (old_ann) {
            char *path = lh_path_join(dir, old_ann);
            FILE *f = fopen(path, "rb");
            free(path);
            if (!f) {
                rc = lh_error_set(err, LH_EIO, "cannot open the ANN file of vector index '%s'",
                                  ix->name);
                goto out;
            }
            ann = lh_ann_read(f, err);
            fclose(f);
            if (!ann) {
                rc = err ? err->code : LH_EINTERNAL;
                goto out;
            }
            size_t removed = 0;
            lh_error rerr;
            int r = n_drop ? lh_ann_remove(ann, drop, n_drop, &removed, &rerr) : 0;
            if (r == LH_EUNSUPPORTED) {
                lh_ann_free(ann);
                ann = NULL;
            } else if (r != 0) {
                rc = lh_error_set(err, rerr.code, "%s", rerr.message);
                goto out;
            } else if (fresh.n &&
                       (rc = lh_ann_add(ann, fresh.vecs, fresh.labels, fresh.n, err)) != 0) {
                goto out;
            }
        }
        if (!ann) { /* HNSW cannot remove, or there was no structure: build from every row */
            size_t np = json_array_size(new_parts);
            char **paths = lh_xcalloc(np + 1, sizeof(char *));
            for (size_t i = 0; i < np; i++)
                paths[i] = lh_path_join(dir, json_string_value(json_array_get(new_parts, i)));
            lh_vscan all = {0};
            rc = lh_vstore_scan(v, paths, dim, false, true, &all, err);
            for (size_t i = 0; i < np; i++)
                free(paths[i]);
            free(paths);
            if (rc)
                goto out;
            ann = build_ann(v, def, all.vecs, all.labels, all.n, NULL, &params, err);
            lh_vscan_free(&all);
            if (!ann) {
                rc = err ? err->code : LH_EINTERNAL;
                goto out;
            }
        }
        if ((rc = write_ann(ann, dir, &ann_file, &written, err)) != 0)
            goto out;
    }
    if (old_ann)
        strv_push(&doomed, lh_xstrdup(old_ann));
commit:;
    /* The commit: no warm load runs meanwhile (it would read the files we replace). */
    pthread_mutex_lock(&ix->load_mu);
    locked_load = true;
    pthread_mutex_lock(&v->def_mu);
    json_t *cur = lh_vreg_def_copy(v, ix);
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    if (n_drop || fresh.n) {
        json_object_set(cur, "parts", new_parts);
        json_object_set_new(cur, "ann", ann_file ? json_string(ann_file) : json_null());
        json_object_set_new(cur, "chunks", json_integer(chunks_kept + (json_int_t)fresh.n));
        json_object_set_new(cur, "docs",
                            json_integer(lh_json_int(cur, "docs", 0) - docs_removed - docs_changed +
                                         docs_embedded));
        json_object_set_new(cur, "next_label", json_integer(next_label));
        if (params)
            json_object_set(cur, "params", params);
    }
    json_object_set_new(cur, "refreshed_at", json_string(now));
    const char *cur_since = lh_json_str(cur, "embedding_stale_since");
    if (!purge_only && (!cur_since || (stale_at_start && strcmp(cur_since, stale_at_start) == 0)))
        json_object_set_new(cur, "embedding_stale_since", json_null());
    rc = lh_vreg_commit_locked(v, ix, cur, err);
    pthread_mutex_unlock(&v->def_mu);
    if (rc)
        goto out;
    /* Committed: swap the warm structure if one is loaded, then delete what is no longer
     * named. */
    pthread_mutex_lock(&v->mu);
    bool was_warm = ix->warm != NULL;
    json_t *newdef = json_deep_copy(ix->def);
    pthread_mutex_unlock(&v->mu);
    if (was_warm && (n_drop || fresh.n)) {
        lh_error werr;
        lh_vwarm *w = lh_vreg_load_warm(v, newdef, &werr);
        if (!w)
            lh_log(LH_LOG_WARN, "vector_warm_reload_failed", "{s:s,s:s}", "index", ix->name,
                   "error", werr.message);
        lh_vreg_set_warm(v, ix, w);
    }
    json_decref(newdef);
    pthread_mutex_unlock(&ix->load_mu);
    locked_load = false;
    remove_written(v, def, &doomed);
    *entry = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", ix->name, "docs_embedded",
                       (json_int_t)docs_embedded, "docs_changed", (json_int_t)docs_changed,
                       "docs_removed", (json_int_t)docs_removed, "chunks_added",
                       (json_int_t)fresh.n, "chunks_removed", (json_int_t)n_drop, "embed_calls",
                       (json_int_t)(atomic_load(&v->embed_calls) - calls0), "ms",
                       (json_int_t)(lh_now_ms() - t0));
    lh_log(LH_LOG_INFO, purge_only ? "vector_index_purged" : "vector_index_refreshed",
           "{s:s,s:I,s:I,s:I,s:I}", "index", ix->name, "docs_embedded", (json_int_t)docs_embedded,
           "docs_removed", (json_int_t)docs_removed, "chunks_added", (json_int_t)fresh.n,
           "chunks_removed", (json_int_t)n_drop);
out:
    if (locked_load)
        pthread_mutex_unlock(&ix->load_mu);
    if (rc && written.n)
        remove_written(v, def, &written);
    pthread_mutex_unlock(&ix->work_mu);
    for (size_t p = 0; p < n_parts; p++)
        lh_vscan_free(&scans[p]);
    free(scans);
    free(docs);
    free(drop);
    strv_free(&embed_ids);
    strv_free(&written);
    strv_free(&doomed);
    rowbuf_free(&fresh);
    lh_ann_free(ann);
    json_decref(def);
    json_decref(m);
    json_decref(page);
    json_decref(new_parts);
    json_decref(params);
    free(dir);
    free(after);
    free(stale_at_start);
    free(ann_file);
    return rc;
}

int lh_vbuild_refresh(lh_vectors *v, const char *dataset, const char *actor, bool purge_only,
                      bool only_on_append, lh_job *job, json_t **out, lh_error *err)
{
    (void)actor;
    *out = NULL;
    pthread_mutex_lock(&v->mu);
    vindex **ixs = lh_xcalloc(v->n + 1, sizeof(*ixs));
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        vindex *ix = v->items[i];
        const char *ds = lh_json_str(ix->def, "dataset");
        const char *pol = lh_json_str(ix->def, "refresh");
        if (ix->building || !ds || strcasecmp(ds, dataset) != 0)
            continue;
        if (only_on_append && (!pol || strcmp(pol, "on_append") != 0))
            continue;
        ixs[n++] = ix;
        ix->refs++;
    }
    pthread_mutex_unlock(&v->mu);
    int rc = 0;
    json_t *entries = json_array();
    if (n == 0 && !purge_only && !only_on_append) {
        rc = lh_error_set(err, LH_ENOTFOUND,
                          "dataset '%s' has no vector index (GET /vectors/indexes lists them)",
                          dataset);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *entry = NULL;
        if ((rc = refresh_one(v, ixs[i], purge_only, job, &entry, err)) != 0)
            goto out;
        json_array_append_new(entries, entry);
    }
    *out = json_pack("{s:s,s:O}", "dataset", dataset, "indexes", entries);
out:
    for (size_t i = 0; i < n; i++)
        lh_vreg_put(v, ixs[i]);
    free(ixs);
    json_decref(entries);
    return rc;
}

int lh_vectors_refresh(lh_vectors *v, const char *dataset, const char *actor, lh_job *job,
                       json_t **out, lh_error *err)
{
    return lh_vbuild_refresh(v, dataset, actor, false, false, job, out, err);
}

/* ---------------------------------------------------------------- promotion */

int lh_vindex_set_ann(lh_vectors *v, const char *name, lh_ann_kind kind, const lh_ann_params *p,
                      json_t *champion, const char *actor, lh_job *job, lh_error *err)
{
    vindex *ix = lh_vreg_get(v, name, err);
    lh_vwarm *w = NULL;
    lh_ann *ann = NULL;
    json_t *def = NULL;
    strv written = {0};
    char *dir = NULL, *file = NULL, *old = NULL;
    int rc = 0;
    if (!ix) {
        json_decref(champion);
        return LH_ENOTFOUND;
    }
    pthread_mutex_lock(&ix->work_mu);
    if ((rc = lh_vindex_warm(v, name, &w, err)) != 0)
        goto out;
    def = lh_vreg_def_copy(v, ix);
    if (!(dir = data_dir(v, def, err))) {
        rc = err ? err->code : LH_EIO;
        goto out;
    }
    if (w->n > 0) {
        if (!(ann = lh_ann_new(kind, w->dim, p, w->vecs, w->n, ann_threads(v), err)) ||
            lh_ann_add(ann, w->vecs, w->labels, w->n, err) != 0) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        if ((rc = write_ann(ann, dir, &file, &written, err)) != 0)
            goto out;
    }
    (void)job;
    pthread_mutex_lock(&ix->load_mu);
    pthread_mutex_lock(&v->def_mu);
    json_t *cur = lh_vreg_def_copy(v, ix);
    old = lh_json_str(cur, "ann") ? lh_xstrdup(lh_json_str(cur, "ann")) : NULL;
    json_object_set_new(cur, "kind", json_string(lh_ann_kind_name(kind)));
    json_object_set_new(cur, "params", lh_ann_params_json(kind, p));
    json_object_set_new(cur, "ann", file ? json_string(file) : json_null());
    json_object_set_new(cur, "champion", champion ? champion : json_null());
    champion = NULL;
    rc = lh_vreg_commit_locked(v, ix, cur, err);
    pthread_mutex_unlock(&v->def_mu);
    if (rc == 0) {
        /* the same rows with the new structure */
        lh_vwarm *nw = lh_xcalloc(1, sizeof(*nw));
        atomic_init(&nw->refs, 1);
        nw->n = w->n;
        nw->dim = w->dim;
        nw->labels = lh_xmalloc((w->n + 1) * sizeof(int64_t));
        memcpy(nw->labels, w->labels, w->n * sizeof(int64_t));
        nw->chunks = lh_xmalloc((w->n + 1) * sizeof(int32_t));
        memcpy(nw->chunks, w->chunks, w->n * sizeof(int32_t));
        nw->vecs = lh_xmalloc((w->n * (size_t)w->dim + 1) * sizeof(float));
        memcpy(nw->vecs, w->vecs, w->n * (size_t)w->dim * sizeof(float));
        nw->doc_ids = lh_xcalloc(w->n + 1, sizeof(char *));
        nw->texts = lh_xcalloc(w->n + 1, sizeof(char *));
        for (size_t i = 0; i < w->n; i++) {
            nw->doc_ids[i] = lh_xstrdup(w->doc_ids[i]);
            nw->texts[i] = lh_xstrdup(w->texts[i]);
        }
        nw->ann = ann;
        ann = NULL;
        nw->kind = kind;
        nw->params = *p;
        lh_vreg_set_warm(v, ix, nw);
    }
    pthread_mutex_unlock(&ix->load_mu);
    if (rc) {
        remove_written(v, def, &written);
        goto out;
    }
    if (old) {
        strv doomed = {0};
        strv_push(&doomed, old);
        old = NULL;
        remove_written(v, def, &doomed);
        strv_free(&doomed);
    }
    lh_log(LH_LOG_INFO, "vector_index_promoted", "{s:s,s:s,s:s}", "index", ix->name, "kind",
           lh_ann_kind_name(kind), "actor", actor ? actor : "anonymous");
out:
    pthread_mutex_unlock(&ix->work_mu);
    lh_vwarm_release(w);
    lh_ann_free(ann);
    json_decref(def);
    json_decref(champion);
    strv_free(&written);
    free(dir);
    free(file);
    free(old);
    lh_vreg_put(v, ix);
    return rc;
}
