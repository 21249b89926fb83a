/*
 * search.c: vector search over one index (docs/VECTORS.md "Search").
 *
 * A search is, in order:
 *   1. who: the caller's SQL policy must allow the index's dataset (an agent: the bindings
 *      of its profile, or its grants), else LH_EFORBIDDEN naming the indexes it may search
 *      (lh_vectors_searchable: the same rule, so the message never lies);
 *   2. the query vector: the text embedded with the index's embedder, or the caller's
 *      vector (the index's dimension), L2-normalised; a zero vector has no direction and
 *      is refused;
 *   3. the filter (optional): checked by the firewall like a view's row filter
 *      (lh_sql_check_filter), then `SELECT DISTINCT CAST(id AS VARCHAR) FROM "<dataset>"
 *      WHERE (<filter>)` runs on the query engine with the caller's policy, so it can name
 *      nothing the caller may not read, and tombstones apply (the dataset's view). That
 *      policy is a copy with auditing off: the statement returns ids to us, not data to the
 *      caller (the hits that reach the caller are audited below). Its identity gets a
 *      suffix so its verdicts never mix with the caller's audited SQL in the verdict cache;
 *   4. ranking, restricted to the allowed ids BEFORE it ranks (so "nurses in Denver" gives k
 *      Denver nurses when k exist): the warm ANN structure (lh_ann_search with the allowed
 *      labels) unless the caller asked for `exact` or none is warm; otherwise the exact
 *      scan on the module's private DuckDB, array_cosine_distance over the index's parts
 *      (the ground truth), restricted through a temporary table of the allowed ids;
 *   5. liveness: one engine query over the candidates' ids against the dataset's view
 *      (tombstoned or vanished documents are absent there; the same query returns the
 *      subject key of a dataset with a subject_key_column). Too few live hits and more
 *      candidates exist: ask for four times as many and start again;
 *   6. audit: before the hits are returned, the caller's sink gets their subjects' keys
 *      (fields: the text column and the id column), like a SQL read of those rows; a sink
 *      error fails the search. Policies that are not audited (admins) skip it.
 *
 * Thread-safety: no state of its own; the warm structure is a counted reference, the
 * private DuckDB a connection of this call, the engine's queries slots of their own.
 */
#include "vector_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A filter may allow at most this many documents (the ids travel as one JSON result). */
#define FILTER_MAX_DOCS 1000000
/* lh_query_start answered LH_EBUSY (every query slot taken): retry this often, 50 ms
 * apart, as a client retrying a 429 would, before answering 429 ourselves. */
#define BUSY_RETRIES 40

/* ---------------------------------------------------------------- hit assembly (pure) */

void lh_vhits_free(lh_vhit *hits, size_t n)
{
    for (size_t i = 0; hits && i < n; i++) {
        free(hits[i].doc_id);
        free(hits[i].text);
    }
    free(hits);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_sorted(const char *const *set, size_t n, const char *s)
{
    return bsearch(&s, set, n, sizeof(*set), cmp_str) != NULL;
}

size_t lh_vhits_assemble(lh_vhit *hits, size_t n, const char *const *live, size_t n_live,
                         bool chunks, size_t k)
{
    size_t kept = 0;
    /* documents kept so far, sorted, for the one-hit-per-document rule */
    const char **seen = lh_xcalloc(n + 1, sizeof(char *));
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        lh_vhit *h = &hits[i];
        bool keep = kept < k && (!live || in_sorted(live, n_live, h->doc_id));
        if (keep && !chunks) {
            if (in_sorted(seen, n_seen, h->doc_id)) {
                keep = false;
            } else { /* insertion keeps seen sorted: n is a few thousand at most */
                size_t at = n_seen;
                while (at > 0 && strcmp(seen[at - 1], h->doc_id) > 0) {
                    seen[at] = seen[at - 1];
                    at--;
                }
                seen[at] = h->doc_id;
                n_seen++;
            }
        }
        if (!keep) {
            free(h->doc_id);
            free(h->text);
            continue;
        }
        hits[kept++] = *h;
    }
    free(seen);
    return kept;
}

/* ---------------------------------------------------------------- one search's state */

typedef struct search {
    lh_vectors *v;
    const lh_vectors_config *h;
    const char *index;
    json_t *info;        /* lh_vectors_get: dataset, columns, dim, state (owned) */
    const char *dataset; /* borrowed from info */
    const char *id_col, *text_col;
    char *key_col; /* the dataset's subject_key_column, or NULL (owned) */
    int dim;
    float *qv; /* dim floats, L2-normalised (owned) */
    const lh_sql_policy *policy;
    bool has_filter;
    char **allowed; /* the filter's doc ids, sorted (owned), when has_filter */
    size_t n_allowed;
    lh_vwarm *w; /* warm structure with an ANN, or NULL: exact (a reference) */
    bool chunks;
    /* liveness of the last round: live ids sorted, and (id, key) pairs sorted by id */
    char **live;
    size_t n_live;
    char **pair_id, **pair_key;
    size_t n_pairs;
} search;

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void live_clear(search *s)
{
    free_strv(s->live, s->n_live);
    free_strv(s->pair_id, s->n_pairs);
    free_strv(s->pair_key, s->n_pairs);
    s->live = s->pair_id = s->pair_key = NULL;
    s->n_live = s->n_pairs = 0;
}

/* ---------------------------------------------------------------- the query engine */

/* Runs sql on the user database (the dataset views: tombstones apply) with policy (NULL:
 * our own statement) and returns its "rows" (caller decrefs). More than max_rows rows is
 * LH_ETOOLARGE naming `what`. */
static json_t *engine_rows(search *s, const char *sql, const lh_sql_policy *policy,
                           int64_t max_rows, const char *what, lh_error *err)
{
    lh_query_opts qo = {.format = LH_FORMAT_JSON,
                        .max_rows = max_rows,
                        .timeout_ms = s->h->cfg->query_timeout_ms,
                        .policy = policy};
    lh_query *q = NULL;
    json_t *doc = NULL, *rows = NULL;
    lh_buf buf;
    lh_buf_init(&buf);
    for (int attempt = 0;; attempt++) {
        q = lh_query_start(s->h->eng, sql, &qo, err);
        if (q || err->code != LH_EBUSY || attempt == BUSY_RETRIES)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!q)
        goto out;
    char chunk[16384];
    ssize_t n;
    while ((n = lh_query_read(q, chunk, sizeof(chunk))) > 0)
        lh_buf_append(&buf, chunk, (size_t)n);
    const lh_error *qe = lh_query_error(q);
    if (n < 0 || qe) {
        if (qe)
            *err = *qe;
        else
            lh_error_set(err, LH_EINTERNAL, "the query failed");
        goto out;
    }
    if (lh_query_truncated(q)) {
        lh_error_set(err, LH_ETOOLARGE, "%s matches more than %lld documents; narrow it", what,
                     (long long)max_rows);
        goto out;
    }
    if (!(doc = lh_json_parse_object(buf.data ? buf.data : "", buf.len, err)))
        goto out;
    rows = json_incref(json_object_get(doc, "rows"));
    if (!json_is_array(rows)) {
        json_decref(rows);
        rows = NULL;
        lh_error_set(err, LH_EINTERNAL, "the query engine returned no rows array");
    }
out:
    lh_query_free(q);
    json_decref(doc);
    lh_buf_free(&buf);
    return rows;
}

/* The policy the filter's statement runs with: the caller's, unaudited (see the file
 * comment), with an identity of its own. */
typedef struct filter_policy {
    lh_sql_policy p;
    char *identity;
} filter_policy;

/* Step 3: the sorted distinct ids of the documents the filter allows. */
static int run_filter(search *s, const char *filter, lh_error *err)
{
    int rc = lh_sql_check_filter(s->h->eng, s->dataset, filter, err);
    if (rc != 0)
        return rc;
    filter_policy fp = {.p = *s->policy};
    fp.p.audited = false;
    fp.p.agent = false;
    fp.identity = fp.p.identity ? lh_xasprintf("%s vector-filter", fp.p.identity) : NULL;
    fp.p.identity = fp.identity;
    char *rel = lh_sql_ident(s->dataset), *id = lh_sql_ident(s->id_col);
    char *sql =
        lh_xasprintf("SELECT DISTINCT CAST(%s AS VARCHAR) FROM %s WHERE (\n%s\n)", id, rel, filter);
    json_t *rows = engine_rows(s, sql, &fp.p, FILTER_MAX_DOCS, "the filter", err);
    if (!rows) {
        rc = err->code;
        goto out;
    }
    s->allowed = lh_xcalloc(json_array_size(rows) + 1, sizeof(char *));
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *d = json_string_value(json_array_get(row, 0));
        if (d)
            s->allowed[s->n_allowed++] = lh_xstrdup(d);
    }
    qsort(s->allowed, s->n_allowed, sizeof(char *), cmp_str);
    s->has_filter = true;
    json_decref(rows);
out:
    free(sql);
    free(id);
    free(rel);
    free(fp.identity);
    return rc;
}

/* Step 5: which of the candidates' documents the dataset's view still holds, and their
 * subject keys. Fills s->live / s->pair_*. */
static int check_live(search *s, const lh_vhit *c, size_t n, lh_error *err)
{
    live_clear(s);
    if (n == 0)
        return 0;
    char *rel = lh_sql_ident(s->dataset), *id = lh_sql_ident(s->id_col);
    char *key = s->key_col ? lh_sql_ident(s->key_col) : NULL;
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_printf(&b, "SELECT DISTINCT CAST(%s AS VARCHAR)", id);
    if (key)
        lh_buf_printf(&b, ", CAST(%s AS VARCHAR)", key);
    lh_buf_printf(&b, " FROM %s WHERE CAST(%s AS VARCHAR) IN (", rel, id);
    for (size_t i = 0; i < n; i++) {
        char *lit = lh_sql_literal(c[i].doc_id);
        lh_buf_printf(&b, "%s%s", i ? ", " : "", lit);
        free(lit);
    }
    lh_buf_putc(&b, ')');
    int rc = 0;
    /* the candidates are at most a few thousand; their rows (duplicated ids, several keys)
     * are bounded only by the dataset, so the cap is generous */
    json_t *rows = engine_rows(s, b.data, NULL, FILTER_MAX_DOCS, "the liveness check", err);
    if (!rows) {
        rc = err->code;
        goto out;
    }
    size_t m = json_array_size(rows);
    s->live = lh_xcalloc(m + 1, sizeof(char *));
    s->pair_id = lh_xcalloc(m + 1, sizeof(char *));
    s->pair_key = lh_xcalloc(m + 1, sizeof(char *));
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *d = json_string_value(json_array_get(row, 0));
        const char *k = json_string_value(json_array_get(row, 1));
        if (!d)
            continue;
        s->live[s->n_live++] = lh_xstrdup(d);
        if (k) {
            s->pair_id[s->n_pairs] = lh_xstrdup(d);
            s->pair_key[s->n_pairs++] = lh_xstrdup(k);
        }
    }
    qsort(s->live, s->n_live, sizeof(char *), cmp_str);
    json_decref(rows);
out:
    lh_buf_free(&b);
    free(key);
    free(id);
    free(rel);
    return rc;
}

/* ---------------------------------------------------------------- ranking */

static float finite_or_zero(double x)
{
    return isfinite(x) ? (float)x : 0.0f;
}

static lh_vhit hit_at(const lh_vwarm *w, size_t r, float score)
{
    return (lh_vhit){.doc_id = lh_xstrdup(w->doc_ids[r]),
                     .chunk = w->chunks[r],
                     .text = lh_xstrdup(w->texts[r] ? w->texts[r] : ""),
                     .score = finite_or_zero(score),
                     .label = w->labels[r]};
}

/* The warm structure: up to `want` chunks among rows (the filter's, ascending; NULL: all),
 * best first. *exhausted when fewer came back (nothing more to find). The ANN shim makes a
 * filtered search return k allowed hits when k exist (ann.cpp: a small allowed set is
 * scored exactly, a larger one searched wider), so a short answer means exhaustion. */
static int rank_warm(search *s, const size_t *rows, size_t n_rows, size_t want, lh_vhit **out,
                     size_t *n_out, bool *exhausted, lh_error *err)
{
    const lh_vwarm *w = s->w;
    size_t pool = rows ? n_rows : w->n;
    int rc = 0;
    if (want > pool)
        want = pool;
    *out = NULL;
    *n_out = 0;
    *exhausted = true;
    if (want == 0)
        return 0;
    lh_vhit *hits = lh_xcalloc(want, sizeof(lh_vhit));
    size_t n = 0;
    float *scores = lh_xcalloc(want, sizeof(float));
    int64_t *ids = lh_xcalloc(want, sizeof(int64_t));
    int64_t *labels = NULL;
    if (rows) {
        labels = lh_xcalloc(n_rows, sizeof(int64_t));
        for (size_t i = 0; i < n_rows; i++)
            labels[i] = w->labels[rows[i]]; /* ascending, as rows are */
    }
    lh_ann_search_params sp = {.allowed = labels, .n_allowed = rows ? n_rows : 0};
    if ((rc = lh_ann_search(w->ann, s->qv, 1, want, &sp, scores, ids, err)) != 0)
        goto out;
    for (size_t j = 0; j < want && ids[j] >= 0; j++) {
        /* labels ascending: binary search for the chunk's row */
        size_t lo = 0, hi = w->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (w->labels[mid] < ids[j])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < w->n && w->labels[lo] == ids[j]) /* always: the ANN holds the warm labels */
            hits[n++] = hit_at(w, lo, scores[j]);
    }
    *exhausted = want >= pool || n < want;
out:
    if (rc != 0) {
        lh_vhits_free(hits, n);
        hits = NULL;
        n = 0;
    }
    *out = hits;
    *n_out = n;
    free(labels);
    free(scores);
    free(ids);
    return rc;
}

/* The query vector as a DuckDB literal: [f, ...]::FLOAT[dim], each float printed with 9
 * significant digits (enough to read back the same float). Caller frees. */
static char *vector_literal(const float *qv, int dim)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_putc(&b, '[');
    for (int i = 0; i < dim; i++)
        lh_buf_printf(&b, "%s%.9g", i ? "," : "", (double)qv[i]);
    lh_buf_printf(&b, "]::FLOAT[%d]", dim);
    return b.data;
}

/* The allowed ids into a temporary table of conn (dropped with the connection). */
static int load_allowed(duckdb_connection conn, char *const *ids, size_t n, lh_error *err)
{
    duckdb_result r;
    if (duckdb_query(conn, "CREATE TEMP TABLE lh_allowed(doc_id VARCHAR)", &r) == DuckDBError) {
        int rc = lh_error_set(err, LH_EINTERNAL, "vector store: %s", duckdb_result_error(&r));
        duckdb_destroy_result(&r);
        return rc;
    }
    duckdb_destroy_result(&r);
    duckdb_appender app;
    if (duckdb_appender_create(conn, NULL, "lh_allowed", &app) == DuckDBError) {
        duckdb_appender_destroy(&app);
        return lh_error_set(err, LH_EINTERNAL, "vector store: cannot append the filter's ids");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (duckdb_append_varchar(app, ids[i]) == DuckDBError ||
            duckdb_appender_end_row(app) == DuckDBError)
            rc = lh_error_set(err, LH_EINTERNAL, "vector store: %s", duckdb_appender_error(app));
    if (rc == 0 && duckdb_appender_close(app) == DuckDBError)
        rc = lh_error_set(err, LH_EINTERNAL, "vector store: %s", duckdb_appender_error(app));
    duckdb_appender_destroy(&app);
    return rc;
}

/* Exact: the `want` best chunks (chunks) or documents (their best chunk each) by cosine
 * distance over every part, through the private DuckDB. */
static int rank_exact(search *s, duckdb_connection conn, char *const *parts, size_t want,
                      lh_vhit **out, size_t *n_out, bool *exhausted, lh_error *err)
{
    *out = NULL;
    *n_out = 0;
    *exhausted = true;
    lh_buf b;
    lh_buf_init(&b);
    char *qlit = vector_literal(s->qv, s->dim);
    lh_buf_printf(
        &b,
        "SELECT doc_id, chunk, text, label, "
        "array_cosine_distance(CAST(embedding AS FLOAT[%d]), %s) AS d FROM read_parquet([",
        s->dim, qlit);
    for (size_t i = 0; parts[i]; i++) {
        char *lit = lh_sql_literal(parts[i]);
        lh_buf_printf(&b, "%s%s", i ? ", " : "", lit);
        free(lit);
    }
    lh_buf_puts(&b, "])");
    if (s->has_filter)
        lh_buf_puts(&b, " WHERE doc_id IN (SELECT doc_id FROM lh_allowed)");
    /* ties broken by label, so two runs (and the ANN comparison) see one order */
    if (!s->chunks)
        lh_buf_puts(&b, " QUALIFY row_number() OVER (PARTITION BY doc_id ORDER BY d, label) = 1");
    lh_buf_printf(&b, " ORDER BY d, label LIMIT %zu", want);
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(conn, b.data, &r) == DuckDBError) {
        rc = lh_error_setk(err, LH_EINTERNAL, "vector_store_error",
                           "the exact search of index '%s' failed: %s", s->index,
                           duckdb_result_error(&r));
        lh_error_scrub(err, s->h->cfg->data_dir, "<lake>"); /* part paths */
        goto out;
    }
    idx_t n = duckdb_row_count(&r);
    lh_vhit *hits = lh_xcalloc(n + 1, sizeof(lh_vhit));
    for (idx_t i = 0; i < n; i++) {
        char *d = duckdb_value_varchar(&r, 0, i), *t = duckdb_value_varchar(&r, 2, i);
        hits[i] = (lh_vhit){.doc_id = lh_xstrdup(d ? d : ""),
                            .chunk = duckdb_value_int32(&r, 1, i),
                            .text = lh_xstrdup(t ? t : ""),
                            .score = finite_or_zero(1.0 - duckdb_value_double(&r, 4, i)),
                            .label = duckdb_value_int64(&r, 3, i)};
        duckdb_free(d);
        duckdb_free(t);
    }
    *out = hits;
    *n_out = (size_t)n;
    *exhausted = (size_t)n < want;
out:
    duckdb_destroy_result(&r);
    free(qlit);
    lh_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- steps 1, 2 */

/* Joins names (a JSON array of strings) as "a, b" or "none". Caller frees. */
static char *join_names(const json_t *names)
{
    lh_buf b;
    lh_buf_init(&b);
    size_t i;
    const json_t *n;
    json_array_foreach(names, i, n) lh_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(n));
    if (b.len == 0)
        lh_buf_puts(&b, "none");
    return b.data;
}

static int authorize(search *s, const lh_principal *who, lh_error *err)
{
    lh_rel_access a = s->policy->may_read(s->policy->ctx, s->dataset);
    if (a == LH_REL_ALLOW)
        return 0;
    if (who->role == LH_ROLE_ADMIN || who->role == LH_ROLE_ANALYST)
        return lh_error_setk(err, LH_ENOTFOUND, "dataset_gone",
                             "index '%s' is over dataset '%s', which no longer exists", s->index,
                             s->dataset);
    json_t *names = lh_vectors_searchable(s->v, who);
    char *list = join_names(names);
    int rc = lh_error_setk(err, LH_EFORBIDDEN, "index_forbidden",
                           "'%s' may not search index '%s': its dataset is not one the caller "
                           "may read (indexes allowed: %s)",
                           who->name, s->index, list);
    free(list);
    json_decref(names);
    return rc;
}

/* L2-normalises v in place; false for a zero (or not finite) vector. */
static bool normalize(float *v, int dim)
{
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += (double)v[i] * v[i];
    if (!(ss > 0) || !isfinite(ss))
        return false;
    double inv = 1.0 / sqrt(ss);
    for (int i = 0; i < dim; i++)
        v[i] = (float)(v[i] * inv);
    return true;
}

static int query_vector(search *s, const lh_vector_query *q, lh_error *err)
{
    bool has_text = q->text != NULL, has_vec = q->vector != NULL;
    if (has_text == has_vec)
        return lh_error_set(err, LH_EINVAL, "give exactly one of \"query\" (text) and \"vector\"");
    s->qv = lh_xcalloc((size_t)s->dim, sizeof(float));
    if (has_vec) {
        if (q->n_vector != (size_t)s->dim)
            return lh_error_setk(err, LH_EINVAL, "bad_vector",
                                 "\"vector\" has %zu dimensions; index '%s' has %d", q->n_vector,
                                 s->index, s->dim);
        memcpy(s->qv, q->vector, (size_t)s->dim * sizeof(float));
        if (!normalize(s->qv, s->dim))
            return lh_error_setk(err, LH_EINVAL, "bad_vector",
                                 "\"vector\" must have finite values and a non-zero norm");
        return 0;
    }
    if (!*q->text)
        return lh_error_set(err, LH_EINVAL, "\"query\" must be a non-empty string");
    lh_embedder *e = lh_vindex_embedder(s->v, s->index, err);
    if (!e)
        return err->code;
    if (lh_embedder_dim(e) != s->dim)
        return lh_error_set(err, LH_EINTERNAL,
                            "the embedder of index '%s' gives %d dimensions; the index has %d",
                            s->index, lh_embedder_dim(e), s->dim);
    int rc = lh_embedder_embed(e, &q->text, 1, s->qv, NULL, err);
    if (rc != 0)
        return rc;
    if (!normalize(s->qv, s->dim))
        return lh_error_setk(err, LH_EINVAL, "empty_query",
                             "the query has nothing the index's embedder can use (no word, no "
                             "character trigram)");
    return 0;
}

/* ---------------------------------------------------------------- step 6 */

/* The distinct subject keys of the hits (from the liveness pairs). Caller frees the array
 * (the strings are borrowed from s). */
static const char **hit_keys(const search *s, const lh_vhit *hits, size_t n, size_t *n_keys)
{
    const char **keys = lh_xcalloc(s->n_pairs + 1, sizeof(char *));
    size_t m = 0;
    for (size_t p = 0; p < s->n_pairs; p++) {
        bool hit = false;
        for (size_t i = 0; i < n && !hit; i++)
            hit = strcmp(hits[i].doc_id, s->pair_id[p]) == 0;
        if (!hit)
            continue;
        bool dup = false;
        for (size_t j = 0; j < m && !dup; j++)
            dup = strcmp(keys[j], s->pair_key[p]) == 0;
        if (!dup)
            keys[m++] = s->pair_key[p];
    }
    *n_keys = m;
    return keys;
}

/* ---------------------------------------------------------------- the search */

/* Steps 4 and 5: the final hits into *out / *n_out. */
static int rank_live(search *s, size_t k, lh_vhit **out, size_t *n_out, lh_error *err)
{
    int rc = 0;
    duckdb_connection conn = NULL;
    char **parts = NULL;
    size_t *rows = NULL; /* warm + filter: the allowed rows of the warm structure, ascending */
    size_t n_rows = 0;
    lh_vhit *hits = NULL;
    size_t n = 0;
    size_t docs = (size_t)lh_json_int(s->info, "docs", 0);
    size_t chunks_total = (size_t)lh_json_int(s->info, "chunks", 0);
    size_t per_doc = docs ? (chunks_total + docs - 1) / docs : 1;
    size_t want;
    if (s->w) {
        if (s->has_filter) {
            rows = lh_xcalloc(s->w->n + 1, sizeof(size_t));
            for (size_t i = 0; i < s->w->n; i++)
                if (in_sorted((const char *const *)s->allowed, s->n_allowed, s->w->doc_ids[i]))
                    rows[n_rows++] = i;
        }
        /* ANN counts chunks: ask for enough to hold k documents twice over */
        want = s->chunks ? 2 * k : 2 * k * (per_doc ? per_doc : 1);
    } else {
        if (!(parts = lh_vindex_part_paths(s->v, s->index, err))) {
            rc = err->code;
            goto out;
        }
        if (!parts[0])
            goto out; /* an index of no document */
        if ((rc = lh_vstore_connect(s->v, &conn, err)) != 0) {
            conn = NULL;
            goto out;
        }
        if (s->has_filter && (rc = load_allowed(conn, s->allowed, s->n_allowed, err)) != 0)
            goto out;
        want = 2 * k; /* documents (or chunks) */
    }
    if (s->has_filter && s->n_allowed == 0)
        goto out;
    bool reread = false;
    for (;;) {
        bool exhausted;
        rc = s->w ? rank_warm(s, rows, n_rows, want, &hits, &n, &exhausted, err)
                  : rank_exact(s, conn, parts, want, &hits, &n, &exhausted, err);
        if (rc != 0 && !s->w && !reread) {
            /* A refresh or purge that committed after we read the part list deletes the
             * parts it replaced at once (vector parts have no retirer): read the list
             * again, once, and rank over the parts that replaced them. */
            reread = true;
            for (size_t i = 0; parts[i]; i++)
                free(parts[i]);
            free(parts);
            if (!(parts = lh_vindex_part_paths(s->v, s->index, err))) {
                rc = err->code;
                goto out;
            }
            if (!parts[0]) {
                rc = 0;
                goto out;
            }
            continue;
        }
        if (rc != 0)
            goto out;
        if ((rc = check_live(s, hits, n, err)) != 0)
            goto out;
        n = lh_vhits_assemble(hits, n, (const char *const *)s->live, s->n_live, s->chunks, k);
        if (n >= k || exhausted)
            break;
        lh_vhits_free(hits, n);
        hits = NULL;
        n = 0;
        want *= 4;
    }
out:
    if (rc != 0) {
        lh_vhits_free(hits, n);
        hits = NULL;
        n = 0;
    }
    *out = hits;
    *n_out = n;
    if (conn)
        duckdb_disconnect(&conn);
    for (size_t i = 0; parts && parts[i]; i++)
        free(parts[i]);
    free(parts);
    free(rows);
    return rc;
}

int lh_vectors_search(lh_vectors *v, const char *index, const lh_vector_query *q,
                      const lh_vector_caller *caller, json_t **out, json_t **access_out,
                      lh_error *err)
{
    int64_t t0 = lh_now_ms();
    int rc = 0;
    search s = {.v = v, .h = lh_vectors_handles(v), .index = index, .chunks = q->chunks};
    lh_sql_policy *own_policy = NULL;
    lh_vhit *hits = NULL;
    size_t n = 0;
    json_t *manifest = NULL;
    *out = NULL;
    if (access_out)
        *access_out = NULL;
    if (q->k < 1 || q->k > LH_VECTOR_MAX_K) {
        rc = lh_error_set(err, LH_EINVAL, "\"k\" must be an integer from 1 to %d", LH_VECTOR_MAX_K);
        goto out;
    }
    if (!(s.info = lh_vectors_get(v, index, err))) {
        rc = err->code;
        goto out;
    }
    s.dataset = lh_json_str(s.info, "dataset");
    s.id_col = lh_json_str(s.info, "id_column");
    s.text_col = lh_json_str(s.info, "text_column");
    s.dim = (int)lh_json_int(s.info, "dim", 0);
    if (!s.dataset || !s.id_col || !s.text_col || s.dim <= 0) {
        rc = lh_error_set(err, LH_EINTERNAL, "index '%s' has an incomplete definition", index);
        goto out;
    }
    s.policy = caller->policy;
    if (!s.policy)
        s.policy = own_policy = lh_sql_policy_for(s.h->cat, caller->who);
    if ((rc = authorize(&s, caller->who, err)) != 0)
        goto out;
    const char *state = lh_json_str(s.info, "state");
    if (state && strcmp(state, "ready") != 0) {
        rc = lh_error_setk(err, LH_ECONFLICT, "index_not_ready",
                           "index '%s' is %s; search it once it is ready", index, state);
        goto out;
    }
    if (!(manifest = lh_catalog_get(s.h->cat, s.dataset, err))) {
        rc = err->code;
        goto out;
    }
    if (lh_json_str(manifest, "subject_key_column"))
        s.key_col = lh_xstrdup(lh_json_str(manifest, "subject_key_column"));
    bool audited = s.policy->audited && s.key_col;
    if (audited && !caller->sink) { /* as for SQL: no silent access */
        rc = lh_error_setk(err, LH_EUNAVAILABLE, "audit_unavailable",
                           "index '%s' holds people's data (dataset '%s' has a subject key) and "
                           "this server cannot audit reads of it: no audit key is configured",
                           index, s.dataset);
        goto out;
    }
    if ((rc = query_vector(&s, q, err)) != 0)
        goto out;
    if (q->filter && (rc = run_filter(&s, q->filter, err)) != 0)
        goto out;
    if (!q->exact) {
        lh_vwarm *w = lh_vindex_peek(v, index);
        if (w && w->ann && w->dim == s.dim)
            s.w = w;
        else if (w)
            lh_vwarm_release(w);
    }
    if ((rc = rank_live(&s, q->k, &hits, &n, err)) != 0)
        goto out;
    size_t n_keys = 0;
    if (audited && n > 0) {
        const char **keys = hit_keys(&s, hits, n, &n_keys);
        const char *fields[2] = {s.text_col, s.id_col};
        rc = n_keys ? caller->sink(caller->sink_ctx, keys, n_keys, fields, 2, err) : 0;
        free(keys);
        if (rc != 0)
            goto out;
    }
    json_t *jh = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(jh, json_pack("{s:s,s:i,s:f,s:s}", "doc_id", hits[i].doc_id, "chunk",
                                            (int)hits[i].chunk, "score", (double)hits[i].score,
                                            "text", hits[i].text));
    *out = json_pack("{s:s,s:I,s:b,s:b,s:b,s:o,s:I}", "index", index, "k", (json_int_t)q->k,
                     "exact", s.w == NULL, "ann", s.w != NULL, "chunks", s.chunks, "hits", jh, "ms",
                     (json_int_t)(lh_now_ms() - t0));
    if (access_out)
        *access_out = json_pack("{s:s,s:s,s:I}", "dataset", s.dataset, "kind",
                                audited ? "rows" : "none", "subjects", (json_int_t)n_keys);
out:
    lh_vhits_free(hits, n);
    live_clear(&s);
    if (s.w)
        lh_vwarm_release(s.w);
    free_strv(s.allowed, s.n_allowed);
    free(s.qv);
    free(s.key_col);
    json_decref(manifest);
    json_decref(s.info);
    lh_sql_policy_free(own_policy);
    return rc;
}

json_t *lh_vectors_searchable(lh_vectors *v, const lh_principal *who)
{
    const lh_vectors_config *h = lh_vectors_handles(v);
    lh_sql_policy *policy = lh_sql_policy_for(h->cat, who);
    json_t *all = lh_vectors_list(v), *names = json_array();
    size_t i;
    const json_t *ix;
    json_array_foreach(all, i, ix)
    {
        const char *ds = lh_json_str(ix, "dataset");
        if (ds && policy->may_read(policy->ctx, ds) == LH_REL_ALLOW)
            json_array_append_new(names, json_string(lh_json_str(ix, "name")));
    }
    json_decref(all);
    lh_sql_policy_free(policy);
    return names;
}
