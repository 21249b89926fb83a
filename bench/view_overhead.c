/*
 * view_overhead: what an AI-safe view with three redactions costs against the same query
 * on its base dataset, in process (no HTTP), one client, wall clock (median of runs).
 *
 *   view_overhead [ROWS] [RUNS]        (defaults 1000000 and 7)
 *       prints one line per query and mode, then the ratio:
 *       "query=Q mode=base|view rows=N median_ms=M" ... "query=Q ratio=R"
 *
 * It builds a throw-away lake in a temp folder: dataset `people` (ROWS rows: id, email,
 * phone, region, score) written with DuckDB's COPY as an ingest would, and the view
 * `people_safe` over it: id masked (keep_suffix 4), email hashed (SHA-256), phone nulled.
 * Queries (the same text on both relations):
 *   scan     every row, every redacted column, aggregated cheaply so that the redactions
 *            are most of the work: SELECT max(id), max(email), count(phone), sum(score)
 *   distinct the same with count(DISTINCT id), count(DISTINCT email): a heavier query,
 *            where hashing is a smaller share
 *   filter   a selective predicate on a plain column, rows rendered:
 *            SELECT id, email, phone FROM X WHERE score = 7 LIMIT 1000
 *   attributes  what a caller's attributes cost a query (RUNS x 30 queries each, verdicts
 *            cached): SELECT 1 without and with {"region": "CO"} (the difference is the
 *            SET VARIABLE statement), and a small count on a view filtering on
 *            caller_attribute('region') vs the same count on the base with a literal.
 * The hash is the dominant cost (SHA-256 of every value the query reads); the mask is a
 * few string functions; null is free. Run it on the release build (build/view_overhead);
 * figures and the date measured are in docs/GOVERNANCE.md.
 */
#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median wall-clock ms of runs executions of sql (read to the end) under policy (NULL:
 * none); < 0 on error. */
static double median_ms_as(lh_engine *eng, const char *sql, int runs, const lh_sql_policy *policy)
{
    double *t = lh_xcalloc((size_t)runs, sizeof(double));
    char buf[65536];
    double med = -1;
    for (int i = 0; i < runs; i++) {
        lh_error err;
        lh_query_opts o = {
            .format = LH_FORMAT_JSON, .max_rows = 100000, .timeout_ms = 600000, .policy = policy};
        double t0 = now_ms();
        lh_query *q = lh_query_start(eng, sql, &o, &err);
        if (!q) {
            fprintf(stderr, "view_overhead: %s: %s\n", sql, err.message);
            goto out;
        }
        while (lh_query_read(q, buf, sizeof(buf)) > 0)
            ;
        lh_query_free(q);
        t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    med = t[runs / 2];
out:
    free(t);
    return med;
}

static double median_ms(lh_engine *eng, const char *sql, int runs)
{
    return median_ms_as(eng, sql, runs, NULL);
}

static lh_rel_access allow_all(void *ctx, const char *relation)
{
    (void)ctx;
    (void)relation;
    return LH_REL_ALLOW;
}

/* What a caller's attributes cost a query: the same small count through a policy whose
 * verdicts are cached, on the base with a literal filter and no attributes, then on a
 * view filtering on caller_attribute('region') with the attribute set (one SET VARIABLE
 * statement more per query). */
static int attributes_cost(lh_engine *eng, int runs)
{
    json_t *attrs = json_pack("{s:s}", "region", "CO");
    lh_sql_policy none = {.may_read = allow_all, .identity = "bench"};
    lh_sql_policy with = none;
    with.attributes = attrs;
    const char *base_sql = "SELECT count(*) FROM people WHERE region = 'CO' AND score = 7";
    const char *view_sql = "SELECT count(*) FROM people_regional WHERE score = 7";
    const char *trivial = "SELECT 1";
    const struct {
        const char *name, *sql;
        const lh_sql_policy *policy;
    } cases[] = {{"attributes_none", trivial, &none},
                 {"attributes_set", trivial, &with},
                 {"regional_base", base_sql, &none},
                 {"regional_view", view_sql, &with}};
    double ms[4];
    for (size_t i = 0; i < 4; i++) {
        median_ms_as(eng, cases[i].sql, 1, cases[i].policy);
        ms[i] = median_ms_as(eng, cases[i].sql, runs, cases[i].policy);
        if (ms[i] < 0) {
            json_decref(attrs);
            return -1;
        }
        printf("query=%s runs=%d median_ms=%.3f\n", cases[i].name, runs, ms[i]);
    }
    printf("query=attributes extra_ms_per_query=%.3f regional_ratio=%.2f\n", ms[1] - ms[0],
           ms[3] / ms[2]);
    json_decref(attrs);
    return 0;
}

static int make_people(lh_storage *st, lh_catalog *cat, lh_engine *eng, long rows, lh_error *err)
{
    const char *key = "datasets/people/bench/part-0.parquet";
    char *staged = lh_storage_stage(st, LH_BUCKET_PRIMARY, key, err);
    if (!staged)
        return err->code;
    char *lit = lh_sql_literal(staged);
    char *sql = lh_xasprintf(
        "COPY (SELECT 'C' || lpad(CAST(i AS VARCHAR), 9, '0') AS id, "
        "'person' || i || '@mail.example' AS email, '+1 555 ' || (1000000 + i %% 9000000) AS "
        "phone, ['CO','US','MX'][i %% 3 + 1] AS region, CAST(i %% 101 AS BIGINT) AS score "
        "FROM range(%ld) t(i)) TO %s (FORMAT parquet, COMPRESSION zstd)",
        rows, lit);
    int64_t n = 0;
    int rc = lh_engine_exec(eng, sql, &n, err);
    if (rc == 0)
        rc = lh_storage_commit(st, LH_BUCKET_PRIMARY, staged, key, err);
    json_t *schema =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type",
                  "VARCHAR", "name", "email", "type", "VARCHAR", "name", "phone", "type", "VARCHAR",
                  "name", "region", "type", "VARCHAR", "name", "score", "type", "BIGINT");
    lh_catalog_commit c = {.name = "people",
                           .bucket = LH_BUCKET_PRIMARY,
                           .mode = LH_MODE_CREATE,
                           .part_key = key,
                           .part_rows = n,
                           .part_bytes = lh_storage_size(st, LH_BUCKET_PRIMARY, key),
                           .schema = schema,
                           .compression = "zstd",
                           .actor = "bench"};
    if (rc == 0)
        rc = lh_catalog_commit_ingest(cat, &c, NULL, err);
    json_decref(schema);
    free(sql);
    free(lit);
    free(staged);
    return rc;
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (rows <= 0 || runs <= 0) {
        fprintf(stderr, "usage: view_overhead [ROWS] [RUNS]\n");
        return 2;
    }
    char tmpl[] = "/tmp/lh-view-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    int status = 1;
    lh_error err;
    lh_config cfg = {.query_timeout_ms = 600000,
                     .query_default_rows = 1000,
                     .query_max_rows = 100000,
                     .max_concurrent_queries = 2};
    char *data = lh_path_join(tmpl, "data");
    lh_storage *st = lh_storage_open(data, &err);
    lh_catalog *cat = st ? lh_catalog_open(st, &err) : NULL;
    lh_engine *eng = cat ? lh_engine_open(&cfg, st, cat, &err) : NULL;
    json_t *spec = json_pack("{s:s,s:s,s:[s,s,s,s,s],s:{s:{s:s,s:i},s:{s:s},s:{s:s}}}", "name",
                             "people_safe", "base_dataset", "people", "columns", "id", "email",
                             "phone", "region", "score", "column_redactions", "id", "kind", "mask",
                             "keep_suffix", 4, "email", "kind", "hash", "phone", "kind", "null");
    json_t *regional =
        json_pack("{s:s,s:s,s:[s,s],s:s}", "name", "people_regional", "base_dataset", "people",
                  "columns", "id", "score", "row_filter", "region = caller_attribute('region')");
    if (!eng || make_people(st, cat, eng, rows, &err) != 0 ||
        lh_catalog_view_create(cat, spec, "bench", NULL, &err) != 0 ||
        lh_catalog_view_create(cat, regional, "bench", NULL, &err) != 0) {
        fprintf(stderr, "view_overhead: %s\n", err.message);
        goto out;
    }
    static const struct {
        const char *name;
        const char *fmt;
    } queries[] = {
        {"scan", "SELECT max(id), max(email), count(phone), sum(score) FROM %s"},
        {"distinct", "SELECT count(DISTINCT id), count(DISTINCT email), count(phone), "
                     "sum(score) FROM %s"},
        {"filter", "SELECT id, email, phone FROM %s WHERE score = 7 LIMIT 1000"},
    };
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        double ms[2];
        const char *rel[2] = {"people", "people_safe"};
        for (int m = 0; m < 2; m++) {
            char *sql = lh_xasprintf(queries[i].fmt, rel[m]);
            median_ms(eng, sql, 1); /* warm the file cache and DuckDB's metadata */
            ms[m] = median_ms(eng, sql, runs);
            free(sql);
            if (ms[m] < 0)
                goto out;
            printf("query=%s mode=%s rows=%ld median_ms=%.1f\n", queries[i].name,
                   m ? "view" : "base", rows, ms[m]);
        }
        printf("query=%s ratio=%.2f\n", queries[i].name, ms[1] / ms[0]);
    }
    if (attributes_cost(eng, runs * 30) != 0)
        goto out;
    status = 0;
out:
    json_decref(regional);
    json_decref(spec);
    lh_engine_close(eng);
    lh_catalog_close(cat);
    lh_storage_close(st);
    lh_fs_remove_tree(tmpl, NULL);
    free(data);
    return status;
}
