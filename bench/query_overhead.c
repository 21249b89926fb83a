/*
 * query_overhead: what the SQL firewall costs a query, and what its verdict cache saves,
 * measured in process (no HTTP), one client, as CPU time so that a machine shared with
 * other work blurs the figures less than wall-clock time would.
 *
 *   query_overhead DATA_DIR N SQL
 *       prints one line per mode: "mode=M queries=N cpu_ms_per_query=C p50_ms=P"
 *
 * DATA_DIR is a lakehouse data folder (bench/http_load passes the one its server used).
 * Modes, each N queries through lh_query_start / lh_query_read / lh_query_free as an
 * admin would run them:
 *   engine    no firewall (opts.policy NULL): DuckDB, generations, rendering
 *   firewall  the full check every time (a policy without an identity is never cached)
 *   cached    the server's policy: the first query is checked, the rest hit the cache
 * and the firewall's check alone (lh_sql_firewall, nothing executed), where the saving is
 * not hidden under DuckDB's own work:
 *   check     the full check: DuckDB's parse (json_serialize_sql), JSON, the tree walk
 *   check_hit the same policy's verdict from the cache
 * LH_OVERHEAD_MODES=engine,cached (say) runs only those modes after the warm-up: with
 * valgrind --tool=cachegrind, two runs of different N then give instructions per query,
 * which other work on a shared machine does not blur at all.
 */
#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int run(lh_engine *eng, const char *mode, const lh_sql_policy *policy, int n,
               const char *sql)
{
    double *lat = lh_xcalloc((size_t)n, sizeof(double));
    char buf[65536];
    double cpu0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i++) {
        double t0 = clock_ms(CLOCK_MONOTONIC);
        lh_error err;
        lh_query_opts opts = {.format = LH_FORMAT_JSON, .max_rows = 1000, .policy = policy};
        lh_query *q = lh_query_start(eng, sql, &opts, &err);
        if (!q) {
            fprintf(stderr, "query_overhead: %s: %s\n", mode, err.message);
            free(lat);
            return -1;
        }
        while (lh_query_read(q, buf, sizeof(buf)) > 0)
            ;
        lh_query_free(q);
        lat[i] = clock_ms(CLOCK_MONOTONIC) - t0;
    }
    double cpu = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("mode=%s queries=%d cpu_ms_per_query=%.4f p50_ms=%.4f\n", mode, n, cpu / n, lat[n / 2]);
    free(lat);
    return 0;
}

/* Whether LH_OVERHEAD_MODES (a comma-separated list; unset = all) names mode. */
static bool wanted(const char *mode)
{
    const char *list = getenv("LH_OVERHEAD_MODES");
    if (!list || !*list)
        return true;
    size_t n = strlen(mode);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, mode, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static void run_check(lh_engine *eng, const char *mode, const lh_sql_policy *policy, int n,
                      const char *sql)
{
    double *lat = lh_xcalloc((size_t)n, sizeof(double));
    double cpu0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i++) {
        double t0 = clock_ms(CLOCK_MONOTONIC);
        lh_error err;
        if (lh_sql_firewall(eng, sql, policy, &err) != 0)
            fprintf(stderr, "query_overhead: %s: %s\n", mode, err.message);
        lat[i] = clock_ms(CLOCK_MONOTONIC) - t0;
    }
    double cpu = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("mode=%s queries=%d cpu_ms_per_query=%.4f p50_ms=%.4f\n", mode, n, cpu / n, lat[n / 2]);
    free(lat);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: query_overhead DATA_DIR N SQL\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (n < 1)
        n = 1;
    lh_error err;
    lh_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.query_timeout_ms = 60000;
    cfg.query_default_rows = 1000;
    cfg.query_max_rows = 100000;
    cfg.max_concurrent_queries = 4;
    /* LH_DUCKDB_THREADS=1 (no DuckDB worker thread) makes valgrind's counts repeatable */
    cfg.duckdb_threads = getenv("LH_DUCKDB_THREADS") ? atoi(getenv("LH_DUCKDB_THREADS")) : 0;
    lh_storage *st = lh_storage_open(argv[1], &err);
    lh_catalog *cat = st ? lh_catalog_open(st, &err) : NULL;
    lh_engine *eng = cat ? lh_engine_open(&cfg, st, cat, &err) : NULL;
    int rc = 1;
    if (!eng) {
        fprintf(stderr, "query_overhead: %s\n", err.message);
        goto out;
    }
    lh_principal admin = {
        .name = "bench", .role = LH_ROLE_ADMIN, .profile = NULL, .datasets = NULL};
    lh_sql_policy *cached = lh_sql_policy_for(cat, &admin);
    lh_sql_policy uncached = *cached;
    uncached.identity = NULL;
    /* warm up DuckDB (file metadata, plans) before any mode is timed */
    if (run(eng, "warmup", NULL, n / 10 + 1, argv[3]) == 0 &&
        (!wanted("engine") || run(eng, "engine", NULL, n, argv[3]) == 0) &&
        (!wanted("firewall") || run(eng, "firewall", &uncached, n, argv[3]) == 0) &&
        (!wanted("cached") || run(eng, "cached", cached, n, argv[3]) == 0))
        rc = 0;
    if (rc == 0 && wanted("check"))
        run_check(eng, "check", &uncached, n, argv[3]);
    if (rc == 0 && wanted("check_hit"))
        run_check(eng, "check_hit", cached, n, argv[3]);
    lh_sql_policy_free(cached);
out:
    lh_engine_close(eng);
    lh_catalog_close(cat);
    lh_storage_close(st);
    return rc;
}
