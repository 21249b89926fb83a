/*
 * test_vector_search.c: vector search (src/vector/search.c) and profiles (activate.c).
 *
 *   - the filter's check (lh_sql_check_filter): other relations, table functions,
 *     subqueries, a closed parenthesis followed by a clause, caller_attribute, settings and
 *     file paths are refused with bad_filter; plain expressions over the dataset pass;
 *   - hit assembly (lh_vhits_assemble): liveness, one hit per document, the k cut;
 *   - a flat index searched through FAISS and through DuckDB's exact scan return the same
 *     documents with the same scores; an HNSW index agrees with the exact scan (recall);
 *   - the filter applies before ranking: with data where no Denver nurse is in the global
 *     top k, "nurse" filtered to Denver returns k Denver documents;
 *   - a tombstoned document never comes back (ANN and exact), and k hits still do;
 *   - the sink gets the hits' subject keys (analysts), nothing for admins, and its error
 *     fails the search; an agent outside the dataset is refused naming its indexes;
 *   - bad vectors and k;
 *   - profiles: activation warms the bound indexes and reports a damaged one as a failure
 *     without aborting the rest; scoped search refuses an index outside the profile.
 */
#include "testutil.h"

#include "auth/auth.h"
#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"
#include "vector/vector_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fx {
    char *dir;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    lh_jobs *jobs;
    lh_vectors *v;
} fx;

static void fx_open(fx *f)
{
    lh_error err;
    if (!(f->st = lh_storage_open(f->cfg.data_dir, &err)))
        fail_msg("lh_storage_open: %s", err.message);
    if (!(f->cat = lh_catalog_open(f->st, &err)))
        fail_msg("lh_catalog_open: %s", err.message);
    if (!(f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err)))
        fail_msg("lh_engine_open: %s", err.message);
    if (!(f->jobs = lh_jobs_open(1, &err)))
        fail_msg("lh_jobs_open: %s", err.message);
    lh_vectors_config vc = {
        .cfg = &f->cfg, .st = f->st, .cat = f->cat, .eng = f->eng, .jobs = f->jobs};
    if (!(f->v = lh_vectors_open(&vc, &err)))
        fail_msg("lh_vectors_open: %s", err.message);
}

static void fx_close(fx *f)
{
    lh_vectors_close(f->v);
    lh_jobs_close(f->jobs);
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
}

static int setup(void **state)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    lh_error err;
    f->dir = lh_test_tmpdir("vsearch");
    if (lh_config_load(&f->cfg, &err) != 0)
        fail_msg("config: %s", err.message);
    char *data = lh_path_join(f->dir, "data");
    if (lh_config_set_data_dir(&f->cfg, data, &err) != 0)
        fail_msg("data dir: %s", err.message);
    free(data);
    f->cfg.duckdb_threads = 1;
    f->cfg.duckdb_memory_mb = 256;
    f->cfg.max_concurrent_queries = 4;
    fx_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fx_close(f);
    lh_config_free(&f->cfg);
    lh_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- data */

/* 200 documents: ids C-1..C-200. i % 10 in {0, 1}: Denver, a software engineer whose
 * resume mentions nursing once; i % 10 in {2..5}: Boston, an intensive care nurse (the
 * query's best matches); the rest: Austin accountants. Each text names its candidate, so
 * no two are equal. */
static const char people_sql[] =
    "SELECT 'C-' || i AS id, "
    "CASE WHEN i % 10 < 2 THEN 'Denver' WHEN i % 10 < 6 THEN 'Boston' ELSE 'Austin' END AS city, "
    "CASE WHEN i % 10 < 2 THEN 'candidate ' || i || ' software engineer databases compilers "
    "distributed systems kubernetes, volunteered once as a nurse aide' "
    "WHEN i % 10 < 6 THEN 'candidate ' || i || ' registered nurse intensive care unit, "
    "critical care nurse, ICU nursing, patient care' "
    "ELSE 'candidate ' || i || ' accountant ledger audit tax returns payroll' END AS resume "
    "FROM range(1, 201) t(i)";

static void commit_dataset(fx *f, const char *name, const char *select)
{
    lh_error err;
    char *key = lh_xasprintf("datasets/%s/t/part-%08x.parquet", name, (unsigned)rand());
    char *staged = lh_storage_stage(f->st, LH_BUCKET_PRIMARY, key, &err);
    if (!staged)
        fail_msg("stage: %s", err.message);
    char *lit = lh_sql_literal(staged);
    char *sql = lh_xasprintf("COPY (%s) TO %s (FORMAT parquet)", select, lit);
    int64_t rows = 0;
    if (lh_engine_exec(f->eng, sql, &rows, &err) != 0)
        fail_msg("%s: %s", sql, err.message);
    if (lh_storage_commit(f->st, LH_BUCKET_PRIMARY, staged, key, &err) != 0)
        fail_msg("commit: %s", err.message);
    json_t *schema =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "VARCHAR", "name",
                  "city", "type", "VARCHAR", "name", "resume", "type", "VARCHAR");
    lh_catalog_commit c = {.name = name,
                           .bucket = LH_BUCKET_PRIMARY,
                           .mode = LH_MODE_REPLACE,
                           .part_key = key,
                           .part_rows = rows,
                           .part_bytes = lh_storage_size(f->st, LH_BUCKET_PRIMARY, key),
                           .schema = schema,
                           .compression = "zstd",
                           .actor = "test"};
    if (lh_catalog_commit_ingest(f->cat, &c, NULL, &err) != 0)
        fail_msg("commit %s: %s", name, err.message);
    json_decref(schema);
    free(sql);
    free(lit);
    free(staged);
    free(key);
}

static void set_subject_key(fx *f, const char *dataset, const char *column)
{
    lh_error err;
    json_t *patch = json_pack("{s:s}", "subject_key_column", column);
    if (lh_catalog_patch_metadata(f->cat, dataset, patch, "test", NULL, &err) != 0)
        fail_msg("patch: %s", err.message);
    json_decref(patch);
}

static void build_index(fx *f, const char *name, const char *dataset, const char *kind)
{
    lh_error err;
    json_t *spec =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i}", "name", name, "dataset", dataset, "id_column",
                  "id", "text_column", "resume", "kind", kind, "chunk_size", 400, "overlap", 50);
    lh_vector_build *b = NULL;
    if (lh_vectors_prepare(f->v, spec, "test", &b, &err) != 0)
        fail_msg("prepare %s: %s", name, err.message);
    if (lh_vectors_build(f->v, b, NULL, NULL, &err) != 0)
        fail_msg("build %s: %s", name, err.message);
    json_decref(spec);
}

static void people(fx *f)
{
    commit_dataset(f, "people", people_sql);
    set_subject_key(f, "people", "id");
}

static const char *city_of(const char *id)
{
    int i = atoi(id + 2);
    return i % 10 < 2 ? "Denver" : i % 10 < 6 ? "Boston" : "Austin";
}

/* ---------------------------------------------------------------- a counting sink */

typedef struct sink_log {
    int calls;
    json_t *keys;   /* every key reported */
    json_t *fields; /* the last call's fields */
    int fail_with;  /* non-zero: the sink fails with this code */
} sink_log;

static int test_sink(void *ctx, const char *const *keys, size_t n_keys, const char *const *fields,
                     size_t n_fields, lh_error *err)
{
    sink_log *s = ctx;
    s->calls++;
    if (s->fail_with)
        return lh_error_setk(err, s->fail_with, "audit_write_failed", "the test sink refuses");
    for (size_t i = 0; i < n_keys; i++)
        json_array_append_new(s->keys, json_string(keys[i]));
    json_decref(s->fields);
    s->fields = json_array();
    for (size_t i = 0; i < n_fields; i++)
        json_array_append_new(s->fields, json_string(fields[i]));
    return 0;
}

static lh_principal admin = {.name = "root", .role = LH_ROLE_ADMIN};
static lh_principal analyst = {.name = "ana", .role = LH_ROLE_ANALYST};

/* Searches as who (a sink_log as the sink); returns the hits or NULL with err. */
static json_t *search_as(fx *f, const lh_principal *who, sink_log *sink, const char *index,
                         const lh_vector_query *q, lh_error *err)
{
    lh_sql_policy *policy = lh_sql_policy_for(f->cat, who);
    lh_vector_caller caller = {
        .who = who, .policy = policy, .sink = sink ? test_sink : NULL, .sink_ctx = sink};
    json_t *out = NULL;
    int rc = lh_vectors_search(f->v, index, q, &caller, &out, NULL, err);
    lh_sql_policy_free(policy);
    if (rc != 0)
        return NULL;
    return out;
}

static json_t *must_search(fx *f, const char *index, const lh_vector_query *q)
{
    lh_error err;
    json_t *out = search_as(f, &admin, NULL, index, q, &err);
    if (!out)
        fail_msg("search %s: %s", index, err.message);
    return out;
}

static const char *hit_id(const json_t *out, size_t i)
{
    return lh_json_str(json_array_get(json_object_get(out, "hits"), i), "doc_id");
}

static size_t n_hits(const json_t *out)
{
    return json_array_size(json_object_get(out, "hits"));
}

/* ---------------------------------------------------------------- the filter's check */

static void test_filter_check(void **state)
{
    fx *f = *state;
    people(f);
    commit_dataset(f, "other", people_sql);
    lh_error err;
    static const char *const refused[] = {
        "id IN (SELECT id FROM other)",                            /* another relation */
        "EXISTS (SELECT 1 FROM other WHERE other.id = people.id)", /* correlated subquery */
        "city = (SELECT max(city) FROM read_csv('/etc/passwd'))",  /* a table function */
        "id IN (SELECT id FROM __raw__people)",                    /* the raw relation */
        "true) UNION SELECT * FROM other WHERE (true",             /* a clause of its own */
        "true) LIMIT 1 --",                                        /* ... and a comment */
        "city = caller_attribute('region')",                       /* views only */
        "city = current_setting('allowed_directories')",           /* settings */
        "city = getvariable('x')",                                 /* variables */
        "id IN (SELECT * FROM duckdb_tables())",                   /* catalog functions */
        "1; DROP TABLE people",                                    /* two statements */
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int rc = lh_sql_check_filter(f->eng, "people", refused[i], &err);
        if (rc == 0)
            fail_msg("filter accepted: %s", refused[i]);
        assert_int_equal(rc, LH_EINVAL);
        assert_string_equal(err.kind, "bad_filter");
        assert_non_null(strstr(err.message, "filter refused"));
    }
    static const char *const allowed[] = {
        "city = 'Denver'", "city IN ('Denver', 'Boston') AND length(resume) > 10",
        "lower(resume) LIKE '%nurse%' -- a trailing comment ends at the newline",
        "id IN (SELECT id FROM people WHERE city = 'Austin')", /* its own dataset */
    };
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (lh_sql_check_filter(f->eng, "people", allowed[i], &err) != 0)
            fail_msg("filter refused: %s: %s", allowed[i], err.message);
    assert_int_equal(lh_sql_check_filter(f->eng, "people", "", &err), LH_EINVAL);
    char *big = lh_xcalloc(LH_SQL_FILTER_MAX + 2, 1);
    memset(big, ' ', LH_SQL_FILTER_MAX + 1);
    assert_int_equal(lh_sql_check_filter(f->eng, "people", big, &err), LH_EINVAL);
    free(big);
}

/* ---------------------------------------------------------------- hit assembly */

static lh_vhit mk(const char *doc, int chunk, float score)
{
    return (lh_vhit){.doc_id = lh_xstrdup(doc),
                     .chunk = chunk,
                     .text = lh_xasprintf("%s#%d", doc, chunk),
                     .score = score,
                     .label = chunk};
}

static void test_assemble(void **state)
{
    (void)state;
    lh_vhit *h = lh_xcalloc(8, sizeof(lh_vhit));
    size_t n = 0;
    h[n++] = mk("b", 0, 0.9f);
    h[n++] = mk("a", 1, 0.8f);
    h[n++] = mk("b", 2, 0.7f); /* b's second chunk */
    h[n++] = mk("dead", 0, 0.6f);
    h[n++] = mk("c", 0, 0.5f);
    h[n++] = mk("a", 0, 0.4f);
    h[n++] = mk("d", 0, 0.3f);
    static const char *const live[] = {"a", "b", "c", "d"}; /* sorted */
    /* documents: the best chunk of each, dead ones out, k = 3 */
    size_t kept = lh_vhits_assemble(h, n, live, 4, false, 3);
    assert_int_equal(kept, 3);
    assert_string_equal(h[0].doc_id, "b");
    assert_int_equal(h[0].chunk, 0);
    assert_string_equal(h[1].doc_id, "a");
    assert_int_equal(h[1].chunk, 1);
    assert_string_equal(h[2].doc_id, "c");
    lh_vhits_free(h, kept);

    /* chunks: every live chunk in order */
    h = lh_xcalloc(8, sizeof(lh_vhit));
    n = 0;
    h[n++] = mk("b", 0, 0.9f);
    h[n++] = mk("dead", 0, 0.8f);
    h[n++] = mk("b", 2, 0.7f);
    h[n++] = mk("a", 1, 0.6f);
    kept = lh_vhits_assemble(h, n, live, 4, true, 10);
    assert_int_equal(kept, 3);
    assert_string_equal(h[1].doc_id, "b");
    assert_int_equal(h[1].chunk, 2);
    lh_vhits_free(h, kept);

    /* live NULL: no liveness check */
    h = lh_xcalloc(2, sizeof(lh_vhit));
    h[0] = mk("x", 0, 1.0f);
    h[1] = mk("x", 1, 0.5f);
    kept = lh_vhits_assemble(h, 2, NULL, 0, false, 5);
    assert_int_equal(kept, 1);
    lh_vhits_free(h, kept);
}

/* ---------------------------------------------------------------- ANN and exact */

static void warm(fx *f, const char *index)
{
    lh_error err;
    lh_vwarm *w = NULL;
    if (lh_vindex_warm(f->v, index, &w, &err) != 0)
        fail_msg("warm %s: %s", index, err.message);
    lh_vwarm_release(w);
}

static const char *const queries[] = {
    "registered nurse intensive care", "software engineer kubernetes",
    "tax accountant payroll",          "candidate 17 nurse",
    "distributed databases",           "patient care ICU",
};

static void test_ann_agrees_with_exact(void **state)
{
    fx *f = *state;
    people(f);
    build_index(f, "people_flat", "people", "flat");
    build_index(f, "people_hnsw", "people", "hnsw");
    warm(f, "people_flat");
    warm(f, "people_hnsw");
    size_t found = 0, wanted = 0;
    for (size_t qi = 0; qi < sizeof(queries) / sizeof(queries[0]); qi++) {
        lh_vector_query q = {.text = queries[qi], .k = 10};
        json_t *ann = must_search(f, "people_flat", &q);
        assert_true(json_is_true(json_object_get(ann, "ann")));
        q.exact = true;
        json_t *exact = must_search(f, "people_flat", &q);
        assert_true(json_is_true(json_object_get(exact, "exact")));
        assert_int_equal(n_hits(exact), 10);
        assert_int_equal(n_hits(ann), 10);
        /* flat = exhaustive: the same documents, the same scores (up to float rounding);
         * the order may differ only between equal scores */
        for (size_t i = 0; i < 10; i++) {
            const json_t *a = json_array_get(json_object_get(ann, "hits"), i);
            const json_t *e = json_array_get(json_object_get(exact, "hits"), i);
            double sa = json_real_value(json_object_get(a, "score"));
            double se = json_real_value(json_object_get(e, "score"));
            assert_true(fabs(sa - se) < 1e-4);
            if (i > 0) /* best first */
                assert_true(se <=
                            json_real_value(json_object_get(
                                json_array_get(json_object_get(exact, "hits"), i - 1), "score")) +
                                1e-6);
        }
        /* HNSW: recall@10 against the exact scan */
        q.exact = false;
        json_t *h = must_search(f, "people_hnsw", &q);
        assert_true(json_is_true(json_object_get(h, "ann")));
        for (size_t i = 0; i < n_hits(exact); i++) {
            wanted++;
            for (size_t j = 0; j < n_hits(h); j++)
                if (strcmp(hit_id(exact, i), hit_id(h, j)) == 0) {
                    found++;
                    break;
                }
        }
        json_decref(h);
        json_decref(ann);
        json_decref(exact);
    }
    assert_true((double)found / (double)wanted >= 0.9);
}

/* ---------------------------------------------------------------- filter before ranking */

static void test_filter_before_ranking(void **state)
{
    fx *f = *state;
    people(f);
    build_index(f, "people_hnsw", "people", "hnsw");
    for (int pass = 0; pass < 2; pass++) { /* exact (cold), then ANN (warm) */
        if (pass == 1)
            warm(f, "people_hnsw");
        lh_vector_query q = {.text = "registered nurse intensive care", .k = 5};
        json_t *top = must_search(f, "people_hnsw", &q);
        assert_int_equal(n_hits(top), 5);
        assert_true(json_is_true(json_object_get(top, pass ? "ann" : "exact")));
        for (size_t i = 0; i < 5; i++) /* the data's premise: no Denver in the global top 5 */
            assert_string_not_equal(city_of(hit_id(top, i)), "Denver");
        q.filter = "city = 'Denver'";
        json_t *den = must_search(f, "people_hnsw", &q);
        assert_int_equal(n_hits(den), 5);
        for (size_t i = 0; i < 5; i++)
            assert_string_equal(city_of(hit_id(den, i)), "Denver");
        /* a filter matching 3 documents gives 3 hits, whatever k */
        q.filter = "id IN ('C-10', 'C-11', 'C-20')";
        q.k = 50;
        json_t *three = must_search(f, "people_hnsw", &q);
        assert_int_equal(n_hits(three), 3);
        /* matching none: no hit */
        q.filter = "city = 'Nowhere'";
        json_t *none = must_search(f, "people_hnsw", &q);
        assert_int_equal(n_hits(none), 0);
        json_decref(top);
        json_decref(den);
        json_decref(three);
        json_decref(none);
    }
    /* a filter the firewall refuses is a 400 before anything runs */
    lh_error err;
    lh_vector_query bad = {.text = "nurse", .k = 5, .filter = "id IN (SELECT id FROM other)"};
    assert_null(search_as(f, &admin, NULL, "people_hnsw", &bad, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_string_equal(err.kind, "bad_filter");
}

/* ---------------------------------------------------------------- tombstones */

static void tombstone(fx *f, const char *dataset, const char *id)
{
    lh_error err;
    char *keys[1] = {(char *)id};
    bool added[1] = {false};
    json_t *failures = json_array();
    lh_tombstone_req req = {
        .dataset = dataset, .key_column = "id", .keys = keys, .n = 1, .actor = "test"};
    if (lh_catalog_tombstone_add(f->cat, &req, NULL, added, failures, &err) != 0)
        fail_msg("tombstone: %s", err.message);
    assert_true(added[0]);
    json_decref(failures);
}

static void test_tombstoned_never_returned(void **state)
{
    fx *f = *state;
    people(f);
    build_index(f, "people_hnsw", "people", "hnsw");
    lh_vector_query q = {.text = "registered nurse intensive care", .k = 10};
    json_t *before = must_search(f, "people_hnsw", &q);
    char *gone = lh_xstrdup(hit_id(before, 0));
    tombstone(f, "people", gone);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            warm(f, "people_hnsw");
        json_t *after = must_search(f, "people_hnsw", &q);
        assert_int_equal(n_hits(after), 10);
        for (size_t i = 0; i < n_hits(after); i++)
            assert_string_not_equal(hit_id(after, i), gone);
        /* chunk-level hits too */
        q.chunks = true;
        json_t *ch = must_search(f, "people_hnsw", &q);
        for (size_t i = 0; i < n_hits(ch); i++)
            assert_string_not_equal(hit_id(ch, i), gone);
        q.chunks = false;
        json_decref(ch);
        json_decref(after);
    }
    free(gone);
    json_decref(before);
}

/* ---------------------------------------------------------------- who, and the audit */

static void test_audit_and_roles(void **state)
{
    fx *f = *state;
    people(f);
    commit_dataset(f, "other", people_sql);
    build_index(f, "people_hnsw", "people", "hnsw");
    build_index(f, "other_idx", "other", "flat");
    lh_error err;
    lh_vector_query q = {.text = "registered nurse intensive care", .k = 7};
    /* an analyst: the sink gets exactly the hits' keys (id is the subject key here) */
    sink_log s = {.keys = json_array()};
    json_t *out = search_as(f, &analyst, &s, "people_hnsw", &q, &err);
    if (!out)
        fail_msg("analyst: %s", err.message);
    assert_int_equal(s.calls, 1);
    assert_int_equal(json_array_size(s.keys), 7);
    for (size_t i = 0; i < 7; i++) {
        bool seen = false;
        for (size_t j = 0; j < 7; j++)
            seen =
                seen || strcmp(json_string_value(json_array_get(s.keys, j)), hit_id(out, i)) == 0;
        assert_true(seen);
    }
    assert_string_equal(json_string_value(json_array_get(s.fields, 0)), "resume");
    assert_string_equal(json_string_value(json_array_get(s.fields, 1)), "id");
    json_decref(out);
    /* no subject key on `other`: no sink call */
    s.calls = 0;
    out = search_as(f, &analyst, &s, "other_idx", &q, &err);
    assert_non_null(out);
    assert_int_equal(s.calls, 0);
    json_decref(out);
    /* admins are not audited */
    out = search_as(f, &admin, &s, "people_hnsw", &q, &err);
    assert_non_null(out);
    assert_int_equal(s.calls, 0);
    json_decref(out);
    /* a failing sink fails the search: no hit leaves */
    s.fail_with = LH_EIO;
    assert_null(search_as(f, &analyst, &s, "people_hnsw", &q, &err));
    assert_int_equal(err.code, LH_EIO);
    s.fail_with = 0;
    /* an audited caller with no sink: refused, as for SQL */
    assert_null(search_as(f, &analyst, NULL, "people_hnsw", &q, &err));
    assert_int_equal(err.code, LH_EUNAVAILABLE);
    /* an agent granted `other` only: people_hnsw is refused, naming what it may search */
    char *grants[] = {"other", NULL};
    lh_principal agent = {.name = "bot", .role = LH_ROLE_AGENT, .datasets = grants};
    assert_null(search_as(f, &agent, &s, "people_hnsw", &q, &err));
    assert_int_equal(err.code, LH_EFORBIDDEN);
    assert_non_null(strstr(err.message, "other_idx"));
    json_t *names = lh_vectors_searchable(f->v, &agent);
    assert_int_equal(json_array_size(names), 1);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "other_idx");
    json_decref(names);
    names = lh_vectors_searchable(f->v, &analyst);
    assert_int_equal(json_array_size(names), 2);
    json_decref(names);
    out = search_as(f, &agent, &s, "other_idx", &q, &err);
    assert_non_null(out);
    json_decref(out);
    /* unknown index */
    assert_null(search_as(f, &analyst, &s, "nope", &q, &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    json_decref(s.keys);
    json_decref(s.fields);
}

static void test_bad_requests(void **state)
{
    fx *f = *state;
    people(f);
    build_index(f, "people_flat", "people", "flat");
    lh_error err;
    float vec[384] = {0};
    lh_vector_query q = {.vector = vec, .n_vector = 10, .k = 5};
    assert_null(search_as(f, &admin, NULL, "people_flat", &q, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "384"));
    q.n_vector = 384; /* all zeros: no direction */
    assert_null(search_as(f, &admin, NULL, "people_flat", &q, &err));
    assert_int_equal(err.code, LH_EINVAL);
    vec[3] = 1.0f;
    q.k = 0;
    assert_null(search_as(f, &admin, NULL, "people_flat", &q, &err));
    assert_int_equal(err.code, LH_EINVAL);
    q.k = LH_VECTOR_MAX_K + 1;
    assert_null(search_as(f, &admin, NULL, "people_flat", &q, &err));
    assert_int_equal(err.code, LH_EINVAL);
    q.k = LH_VECTOR_MAX_K; /* more than the index holds: every document once */
    json_t *out = search_as(f, &admin, NULL, "people_flat", &q, &err);
    if (!out)
        fail_msg("k max: %s", err.message);
    assert_int_equal(n_hits(out), 200);
    json_decref(out);
    /* text and vector together, or neither */
    q.text = "nurse";
    assert_null(search_as(f, &admin, NULL, "people_flat", &q, &err));
    assert_int_equal(err.code, LH_EINVAL);
}

/* ---------------------------------------------------------------- profiles */

static void make_profile(fx *f, const char *id, const char *const *bind, size_t n)
{
    lh_error err;
    json_t *b = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(b, json_string(bind[i]));
    json_t *spec =
        json_pack("{s:s,s:s,s:o}", "id", id, "model_name", "test-model", "bound_datasets", b);
    if (lh_catalog_profile_create(f->cat, spec, "test", NULL, &err) != 0)
        fail_msg("profile: %s", err.message);
    json_decref(spec);
}

/* Overwrites the first file of the index's data folder ending in suffix with garbage. */
static void damage(fx *f, const char *index, const char *suffix)
{
    lh_error err;
    json_t *def = lh_vindex_def(f->v, index, &err);
    if (!def)
        fail_msg("def: %s", err.message);
    const char *file = NULL;
    if (strcmp(suffix, ".faiss") == 0) {
        file = lh_json_str(def, "ann");
    } else {
        file = json_string_value(json_array_get(json_object_get(def, "parts"), 0));
    }
    assert_non_null(file);
    char *path = lh_path_join(lh_json_str(def, "dir"), file);
    lh_test_write_file(path, "this is not an index file");
    free(path);
    json_decref(def);
}

static void test_profile_activation(void **state)
{
    fx *f = *state;
    people(f);
    commit_dataset(f, "other", people_sql);
    build_index(f, "people_hnsw", "people", "hnsw");
    build_index(f, "other_idx", "other", "hnsw");
    static const char *const both[] = {"people", "other"};
    make_profile(f, "screening", both, 2);
    static const char *const one[] = {"other"};
    make_profile(f, "narrow", one, 1);
    /* a restart, so nothing is warm, then one index's files are damaged */
    fx_close(f);
    fx_open(f);
    damage(f, "people_hnsw", ".faiss");
    damage(f, "people_hnsw", ".parquet");
    lh_error err;
    json_t *out = NULL;
    assert_int_equal(lh_vectors_profile_activate(f->v, "screening", NULL, &out, &err), 0);
    json_t *warmed = json_object_get(out, "warmed");
    assert_int_equal(json_array_size(warmed), 1);
    assert_string_equal(json_string_value(json_array_get(warmed, 0)), "other_idx");
    json_t *failures = json_object_get(out, "failures");
    assert_int_equal(json_array_size(failures), 1);
    assert_string_equal(lh_json_str(json_array_get(failures, 0), "index"), "people_hnsw");
    assert_non_null(lh_json_str(json_array_get(failures, 0), "error"));
    assert_true(json_is_integer(json_object_get(out, "ms")));
    json_decref(out);
    /* the warm index searches through its ANN structure */
    lh_vwarm *w = lh_vindex_peek(f->v, "other_idx");
    assert_non_null(w);
    lh_vwarm_release(w);
    json_t *act = lh_vectors_profile_active(f->v);
    assert_string_equal(lh_json_str(act, "profile"), "screening");
    json_decref(act);
    /* scoped search: only the profile's indexes */
    lh_vector_query q = {.text = "nurse", .k = 3};
    lh_sql_policy *policy = lh_sql_policy_for(f->cat, &admin);
    lh_vector_caller caller = {.who = &admin, .policy = policy};
    assert_int_equal(
        lh_vectors_profile_search(f->v, "narrow", "people_hnsw", &q, &caller, &out, NULL, &err),
        LH_EFORBIDDEN);
    assert_non_null(strstr(err.message, "other_idx"));
    assert_int_equal(
        lh_vectors_profile_search(f->v, "narrow", "other_idx", &q, &caller, &out, NULL, &err), 0);
    assert_int_equal(n_hits(out), 3);
    json_decref(out);
    /* an agent bound to another profile may not use this one */
    lh_principal agent = {.name = "bot", .role = LH_ROLE_AGENT, .profile = "screening"};
    caller.who = &agent;
    assert_int_equal(
        lh_vectors_profile_search(f->v, "narrow", "other_idx", &q, &caller, &out, NULL, &err),
        LH_EFORBIDDEN);
    lh_sql_policy_free(policy);
    /* deactivation: only the active profile; then none is */
    assert_int_equal(lh_vectors_profile_deactivate(f->v, "narrow", &out, &err), LH_ECONFLICT);
    assert_int_equal(lh_vectors_profile_deactivate(f->v, "screening", &out, &err), 0);
    json_decref(out);
    act = lh_vectors_profile_active(f->v);
    assert_true(json_is_null(json_object_get(act, "profile")));
    json_decref(act);
    assert_int_equal(lh_vectors_profile_activate(f->v, "ghost", NULL, &out, &err), LH_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filter_check, setup, teardown),
        cmocka_unit_test(test_assemble),
        cmocka_unit_test_setup_teardown(test_ann_agrees_with_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_before_ranking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstoned_never_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_and_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_activation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
