/*
 * lineage_overhead: what access auditing's engine part costs a row-level query (issue 11
 * item 5): the classification and rewrite (lineage.c), the hidden key column and the key
 * collection (result.c), with a sink that only counts (no audit write: bench/audit measures
 * the whole path with the durable chain). In process, one client, streamed as the HTTP
 * layer streams (lh_query_run, then lh_query_read_buffered / lh_query_fill), p50 wall
 * clock and CPU.
 *
 *   lineage_overhead WORK_DIR [N] [ROWS]
 *
 * Builds a dataset `people` of ROWS rows (default 1000) with subject_key_column
 * candidate_id in WORK_DIR/data, then runs N times (default 200) each of
 *   plain    an admin's policy (not audited): no rewrite, no sink
 *   audited  an analyst's policy (audited): rewritten statement, hidden key list,
 *            every row's key collected and reported once
 * (both with the verdict cache, as the server runs them: the classification and rewrite
 * are cached with the verdict), then the same two without the cache (a policy without an
 * identity: every query pays the parse, and the audited one the classification, the
 * rewrite and json_deserialize_sql)
 * with `SELECT candidate_id, email, dept FROM people` (every row, JSON), and prints one line
 * per mode and the ratio audited/plain. Never fails on time.
 */
#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t reported;

static int counting_sink(void *ctx, const char *const *keys, size_t n, const char *const *fields,
                         size_t nf, lh_error *err)
{
    (void)ctx, (void)keys, (void)fields, (void)nf, (void)err;
    reported += n;
    return 0;
}

static lh_catalog *bench_cat;

static lh_rel_access read_all(void *ctx, const char *relation)
{
    (void)ctx;
    return lh_catalog_relation_kind(bench_cat, relation) != LH_RELATION_NONE ? LH_REL_ALLOW
                                                                             : LH_REL_DENY;
}

static int run(lh_engine *eng, const char *mode, const lh_sql_policy *policy, int n,
               const char *sql, double *p50_out)
{
    double *lat = lh_xcalloc((size_t)n, sizeof(double));
    char buf[65536];
    double cpu0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    reported = 0;
    for (int i = 0; i < n; i++) {
        double t0 = clock_ms(CLOCK_MONOTONIC);
        lh_error err;
        lh_query_opts opts = {
            .format = LH_FORMAT_JSON, .max_rows = 100000, .policy = policy, .sink = counting_sink};
        /* as the HTTP layer streams: run, then hand out what is rendered and fill (up to
         * LH_QUERY_OUT_BUDGET) when it needs DuckDB */
        lh_query *q = lh_query_open(eng, &opts, &err);
        if (!q || lh_query_run(q, sql, &opts, &err) != 0) {
            fprintf(stderr, "lineage_overhead: %s: %s\n", mode, err.message);
            lh_query_free(q);
            free(lat);
            return -1;
        }
        ssize_t got;
        while ((got = lh_query_read_buffered(q, buf, sizeof(buf))) != 0) {
            if (got == LH_QUERY_AGAIN)
                lh_query_fill(q);
            else if (got < 0)
                break;
        }
        lh_query_free(q);
        lat[i] = clock_ms(CLOCK_MONOTONIC) - t0;
    }
    double cpu = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    *p50_out = lat[n / 2];
    printf("mode=%s queries=%d p50_ms=%.3f p90_ms=%.3f cpu_ms_per_query=%.3f keys_per_query=%zu\n",
           mode, n, lat[n / 2], lat[(n * 9) / 10], cpu / n, reported / (size_t)n);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: lineage_overhead WORK_DIR [N] [ROWS]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200;
    long rows = argc > 3 ? atol(argv[3]) : 1000;
    if (n < 1 || rows < 1)
        return 2;
    lh_log_set_level(LH_LOG_WARN);
    lh_error err;
    char *data = lh_path_join(argv[1], "data");
    lh_config cfg = {.query_timeout_ms = 60000,
                     .query_default_rows = 100000,
                     .query_max_rows = 1000000,
                     .max_concurrent_queries = 2,
                     .duckdb_threads = 2,
                     .duckdb_memory_mb = 512};
    lh_storage *st = lh_storage_open(data, &err);
    lh_catalog *cat = st ? lh_catalog_open(st, &err) : NULL;
    lh_engine *eng = cat ? lh_engine_open(&cfg, st, cat, &err) : NULL;
    if (!eng) {
        fprintf(stderr, "lineage_overhead: %s\n", err.message);
        return 1;
    }
    bench_cat = cat;
    const char *key = "datasets/people/bench/part-0.parquet";
    char *staged = lh_storage_stage(st, LH_BUCKET_PRIMARY, key, &err);
    char *lit = staged ? lh_sql_literal(staged) : NULL;
    char *copy = lh_xasprintf(
        "COPY (SELECT 'C' || range AS candidate_id, 'e' || range || '@example.org' AS email, "
        "'d' || (range %% 7) AS dept FROM range(%ld)) TO %s (FORMAT parquet)",
        rows, lit ? lit : "''");
    int64_t written = 0;
    json_t *schema =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "candidate_id", "type", "VARCHAR",
                  "name", "email", "type", "VARCHAR", "name", "dept", "type", "VARCHAR");
    json_t *patch = json_pack("{s:s}", "subject_key_column", "candidate_id");
    lh_catalog_commit c = {.name = "people",
                           .bucket = LH_BUCKET_PRIMARY,
                           .mode = LH_MODE_REPLACE,
                           .part_key = key,
                           .schema = schema,
                           .compression = "zstd",
                           .actor = "bench"};
    if (!staged || lh_engine_exec(eng, copy, &written, &err) != 0 ||
        lh_storage_commit(st, LH_BUCKET_PRIMARY, staged, key, &err) != 0 ||
        (c.part_rows = written, c.part_bytes = lh_storage_size(st, LH_BUCKET_PRIMARY, key),
         lh_catalog_commit_ingest(cat, &c, NULL, &err)) != 0 ||
        lh_catalog_patch_metadata(cat, "people", patch, "bench", NULL, &err) != 0) {
        fprintf(stderr, "lineage_overhead: setup: %s\n", err.message);
        return 1;
    }
    const char *sql = "SELECT candidate_id, email, dept FROM people";
    lh_sql_policy plain = {.may_read = read_all, .identity = "admin", .allow_raw = true};
    lh_sql_policy audited = {.may_read = read_all, .identity = "analyst", .audited = true};
    double p_plain, p_audited;
    printf("rows=%ld sql=\"%s\"\n", rows, sql);
    /* interleaved twice, so a load change on the shared machine hits both modes */
    for (int round = 0; round < 2; round++) {
        if (run(eng, "plain", &plain, n, sql, &p_plain) != 0 ||
            run(eng, "audited", &audited, n, sql, &p_audited) != 0)
            return 1;
        printf("ratio audited/plain p50 = %.2fx\n", p_audited / p_plain);
    }
    plain.identity = audited.identity = NULL;
    if (run(eng, "plain_uncached", &plain, n, sql, &p_plain) != 0 ||
        run(eng, "audited_uncached", &audited, n, sql, &p_audited) != 0)
        return 1;
    printf("ratio audited/plain p50 (uncached) = %.2fx\n", p_audited / p_plain);
    json_decref(schema);
    json_decref(patch);
    free(copy);
    free(lit);
    free(staged);
    lh_engine_close(eng);
    lh_catalog_close(cat);
    lh_storage_close(st);
    free(data);
    return 0;
}
