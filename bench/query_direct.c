/*
 * query_direct: the peer of bench/http_load's query figures. Runs one SQL statement in a
 * loop against a dataset's Parquet files with DuckDB alone: no HTTP, no keys, no firewall,
 * no JSON rendering.
 *
 *   query_direct DATA_DIR DATASET CLIENTS SECONDS SQL
 *       prints "queries=N seconds=S qps=Q p50_ms=A p99_ms=B cpu_ms_per_query=C"
 *
 * The dataset is a view over DATA_DIR/datasets/DATASET/ (all its Parquet files), as the
 * server's engine defines it; CLIENTS threads, each with its own connection to one shared
 * in-memory database (as the server's HTTP threads share its engine), run SQL back to back
 * for SECONDS and fetch every value of every row. DuckDB's threads are its default (all
 * cores), as in the server's default configuration, or LH_DIRECT_THREADS when set (the
 * server's LH_DUCKDB_THREADS, for a like-for-like peer). cpu_ms_per_query is the process's
 * CPU time (user + system, getrusage) over the queries: on a machine shared with other work
 * it moves less than the wall-clock figures, which depend on how many runnable threads each
 * side has.
 *
 * LH_DIRECT_QUERIES=N makes each client run exactly N queries instead (SECONDS ignored):
 * under valgrind two values of N give instructions per query.
 *
 * LH_DIRECT_STREAMING=1 runs each query as the server does for a text it has run before:
 * the statement prepared once per client and kept (the server's statement cache), then a
 * pending streaming execution fetched chunk by chunk, instead of duckdb_query's
 * materialized result; so a reader can tell what HTTP costs from what DuckDB's streaming
 * path costs. (Preparing at every query, as this mode once did, adds a second bind of the
 * Parquet view: ~0.5 ms of the aggregate's ~1.3 ms, which is not streaming's cost.)
 */
#include "duckdb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CLIENTS 64
#define MAX_SAMPLES (1 << 20)

typedef struct client {
    duckdb_connection con;
    int streaming;
    duckdb_prepared_statement stmt; /* streaming: prepared once, kept */
    const char *sql;
    double deadline;
    size_t limit;    /* LH_DIRECT_QUERIES: exactly this many queries, whatever the time */
    double *samples; /* milliseconds, one per query */
    size_t n;
    int failed;
} client;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One query the server's way: the kept statement (prepared at the client's first query),
 * pending streaming execution, every chunk fetched and every value of it read. Returns 0,
 * or -1 after printing DuckDB's error. */
static int run_streaming(client *c)
{
    duckdb_pending_result pending = NULL;
    duckdb_result res;
    int rc = -1;
    if (!c->stmt && duckdb_prepare(c->con, c->sql, &c->stmt) == DuckDBError) {
        fprintf(stderr, "query_direct: %s\n", duckdb_prepare_error(c->stmt));
        goto out;
    }
    if (duckdb_pending_prepared_streaming(c->stmt, &pending) == DuckDBError ||
        duckdb_execute_pending(pending, &res) == DuckDBError) {
        fprintf(stderr, "query_direct: %s\n", duckdb_pending_error(pending));
        goto out;
    }
    duckdb_data_chunk chunk;
    while ((chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t cols = duckdb_data_chunk_get_column_count(chunk);
        for (idx_t k = 0; k < cols; k++)
            (void)duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, k));
        duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
    rc = 0;
out:
    duckdb_destroy_pending(&pending);
    return rc;
}

static void *run_client(void *arg)
{
    client *c = arg;
    while (c->limit ? c->n < c->limit : c->n < MAX_SAMPLES && now_s() < c->deadline) {
        double t0 = now_s();
        if (c->streaming) {
            if (run_streaming(c) != 0) {
                c->failed = 1;
                return NULL;
            }
            c->samples[c->n++] = (now_s() - t0) * 1000.0;
            continue;
        }
        duckdb_result res;
        if (duckdb_query(c->con, c->sql, &res) != DuckDBSuccess) {
            fprintf(stderr, "query_direct: %s\n", duckdb_result_error(&res));
            duckdb_destroy_result(&res);
            c->failed = 1;
            return NULL;
        }
        idx_t rows = duckdb_row_count(&res), cols = duckdb_column_count(&res);
        for (idx_t r = 0; r < rows; r++)
            for (idx_t k = 0; k < cols; k++) {
                char *v = duckdb_value_varchar(&res, k, r);
                duckdb_free(v);
            }
        duckdb_destroy_result(&res);
        c->samples[c->n++] = (now_s() - t0) * 1000.0;
    }
    return NULL;
}

/* User + system CPU time of the whole process, in milliseconds. */
static double process_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quotes s as a SQL string literal. Caller frees. */
static char *sql_literal(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out = malloc(2 * n + 3);
    if (!out)
        return NULL;
    out[o++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            out[o++] = '\'';
        out[o++] = s[i];
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

int main(int argc, char **argv)
{
    duckdb_database db = NULL;
    duckdb_connection setup = NULL;
    client clients[MAX_CLIENTS];
    pthread_t threads[MAX_CLIENTS];
    int n_clients = 0, started = 0, rc = 1;
    char *glob = NULL, *lit = NULL, *view = NULL;
    double *all = NULL;
    memset(clients, 0, sizeof(clients));

    if (argc != 6) {
        fprintf(stderr, "usage: query_direct DATA_DIR DATASET CLIENTS SECONDS SQL\n");
        return 2;
    }
    n_clients = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if (n_clients < 1 || n_clients > MAX_CLIENTS || seconds <= 0) {
        fprintf(stderr, "query_direct: CLIENTS must be 1..%d and SECONDS > 0\n", MAX_CLIENTS);
        return 2;
    }
    size_t glen = strlen(argv[1]) + strlen(argv[2]) + 64;
    glob = malloc(glen);
    if (!glob)
        goto out;
    snprintf(glob, glen, "%s/datasets/%s/**/*.parquet", argv[1], argv[2]);
    lit = sql_literal(glob);
    size_t vlen = (lit ? strlen(lit) : 0) + strlen(argv[2]) + 64;
    view = malloc(vlen);
    if (!lit || !view)
        goto out;
    snprintf(view, vlen, "CREATE VIEW \"%s\" AS SELECT * FROM read_parquet(%s)", argv[2], lit);

    duckdb_config cfg = NULL;
    char *open_err = NULL;
    const char *duck_threads = getenv("LH_DIRECT_THREADS");
    if (duckdb_create_config(&cfg) == DuckDBError ||
        (duck_threads && *duck_threads && atoi(duck_threads) > 0 &&
         duckdb_set_config(cfg, "threads", duck_threads) == DuckDBError)) {
        fprintf(stderr, "query_direct: cannot configure DuckDB (LH_DIRECT_THREADS=%s)\n",
                duck_threads ? duck_threads : "");
        duckdb_destroy_config(&cfg);
        goto out;
    }
    duckdb_state opened = duckdb_open_ext(NULL, &db, cfg, &open_err);
    duckdb_destroy_config(&cfg);
    if (opened != DuckDBSuccess || duckdb_connect(db, &setup) != DuckDBSuccess) {
        fprintf(stderr, "query_direct: cannot open an in-memory DuckDB: %s\n",
                open_err ? open_err : "unknown error");
        duckdb_free(open_err);
        goto out;
    }
    duckdb_result res;
    if (duckdb_query(setup, view, &res) != DuckDBSuccess) {
        fprintf(stderr, "query_direct: %s\n", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        goto out;
    }
    duckdb_destroy_result(&res);

    double deadline = now_s() + seconds;
    for (int i = 0; i < n_clients; i++) {
        client *c = &clients[i];
        c->sql = argv[5];
        c->streaming =
            getenv("LH_DIRECT_STREAMING") && strcmp(getenv("LH_DIRECT_STREAMING"), "1") == 0;
        c->deadline = deadline;
        const char *limit = getenv("LH_DIRECT_QUERIES");
        c->limit = limit && atoi(limit) > 0 && atoi(limit) <= MAX_SAMPLES ? (size_t)atoi(limit) : 0;
        c->samples = malloc(MAX_SAMPLES * sizeof(double));
        if (!c->samples || duckdb_connect(db, &c->con) != DuckDBSuccess)
            goto out;
    }
    double t0 = now_s(), cpu0 = process_cpu_ms();
    for (; started < n_clients; started++)
        if (pthread_create(&threads[started], NULL, run_client, &clients[started]) != 0)
            goto out;
    size_t total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        total += clients[i].n;
    }
    started = 0;
    double elapsed = now_s() - t0, cpu = process_cpu_ms() - cpu0;
    for (int i = 0; i < n_clients; i++)
        if (clients[i].failed)
            goto out;
    if (total == 0) {
        fprintf(stderr, "query_direct: no query finished\n");
        goto out;
    }
    all = malloc(total * sizeof(double));
    if (!all)
        goto out;
    size_t k = 0;
    for (int i = 0; i < n_clients; i++) {
        memcpy(all + k, clients[i].samples, clients[i].n * sizeof(double));
        k += clients[i].n;
    }
    qsort(all, total, sizeof(double), by_value);
    printf("queries=%zu seconds=%.3f qps=%.1f p50_ms=%.3f p99_ms=%.3f cpu_ms_per_query=%.3f\n",
           total, elapsed, (double)total / elapsed, all[total / 2],
           all[(size_t)((double)(total - 1) * 0.99)], cpu / (double)total);
    rc = 0;
out:
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < n_clients && i < MAX_CLIENTS; i++) {
        duckdb_destroy_prepare(&clients[i].stmt);
        if (clients[i].con)
            duckdb_disconnect(&clients[i].con);
        free(clients[i].samples);
    }
    if (setup)
        duckdb_disconnect(&setup);
    if (db)
        duckdb_close(&db);
    free(all);
    free(view);
    free(lit);
    free(glob);
    return rc;
}
