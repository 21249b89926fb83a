/*
 * vectors: the ANN benchmark of issue 14 (docs/VECTORS.md §Benchmark). Prints figures,
 * never passes or fails.
 *
 *   vectors [--n N] [--n768 N] [--queries Q] [--exact-queries E] [--threads T]
 *           [--hnsw768 0|1] [--faiss-peer 0|1]
 *     --n N              resume texts embedded with the hash embedder (384 dims); default
 *                        100000, 0 skips the 384-dim part
 *     --n768 N           random-normal 768-dim vectors for the build-time comparison;
 *                        default 100000, 0 skips it
 *     --queries Q        ANN queries per curve point (default 1000)
 *     --exact-queries E  queries of the DuckDB exact scan (default 20)
 *     --threads T        OpenMP threads for builds (default 2)
 *     --hnsw768 0|1      part 2 builds HNSW (default 1; 0: IVF-PQ alone)
 *     --faiss-peer 0|1   part 2 also builds HNSW and IVF-PQ with FAISS's own construction,
 *                        the peer of ours (default 1; it takes minutes)
 *
 * Part 1, 384 dims: N generated resumes (deterministic: names, titles, skills, cities,
 * years) → lh_hash_embed; Q query texts ("senior nurse in Denver with triage and ...").
 * Ground truth = exact top-10 by inner product (FAISS flat). The peer: DuckDB's exact scan
 * (array_cosine_distance over a Parquet file of the same vectors, ORDER BY ... LIMIT 10,
 * one thread), its queries/s measured in the same run; each line prints its qps ratio
 * against it. For HNSW (M=16 and M=32, efConstruction 200), IVF-PQ (defaults: nlist ≈
 * 4·sqrt(n), m = dim/8, 8 bits) and Flat: build time on T threads, memory (the
 * structure's size and the process's RSS growth), then for each efSearch / nprobe of the
 * curve recall@10 and queries/s of single queries on one thread. The structure's own
 * efSearch / nprobe is set for each point (lh_ann_set_search_defaults), so each point is
 * the canonical FAISS search at that value.
 *
 * Part 2, 768 dims: HNSW (M=16, efConstruction=200) and IVF-PQ build times on T threads
 * (issue targets: 70 s and 16 s; a previous system took 230 s and 16.2 s). Each is built
 * twice, by our construction and by FAISS's own (the peer, same run), each with recall@10
 * and queries/s at efSearch 64 / 128 / 256 or nprobe 16 / 64 against exact top-10 of 500
 * queries (stored vectors moved by a random step).
 */
#include "duckdb.h"
#include "vector/vector_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIM 384
#define K 10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define PICK(s, arr) (arr[rng(s) % (sizeof(arr) / sizeof(arr[0]))])

static const char *FIRST[] = {"Maria", "James",  "Aisha",  "Wei",  "Olga",  "Carlos",
                              "Priya", "John",   "Fatima", "Liam", "Sofia", "Noah",
                              "Yuki",  "Emma",   "Mateo",  "Zara", "Ivan",  "Chloe",
                              "Omar",  "Hannah", "Lucas",  "Mei",  "Diego", "Ana"};
static const char *LAST[] = {"Lopez", "Smith",  "Khan",   "Zhang",  "Petrova", "Garcia", "Patel",
                             "Brown", "Haddad", "Murphy", "Rossi",  "Kim",     "Tanaka", "Muller",
                             "Silva", "Okafor", "Novak",  "Dubois", "Nguyen",  "Cohen",  "Larsen"};
static const char *LEVEL[] = {"Junior", "Senior", "Lead", "Principal", "Staff", ""};
static const char *TITLE[] = {"Registered Nurse",
                              "Data Engineer",
                              "Software Engineer",
                              "Accountant",
                              "Pharmacist",
                              "Civil Engineer",
                              "Teacher",
                              "Sales Manager",
                              "Product Designer",
                              "Physiotherapist",
                              "HR Generalist",
                              "Data Scientist",
                              "Electrician",
                              "Paralegal",
                              "Marketing Analyst",
                              "DevOps Engineer",
                              "Nurse Practitioner",
                              "Financial Analyst",
                              "Chef",
                              "Logistics Coordinator"};
static const char *SKILL[] = {"Python",
                              "SQL",
                              "Spark",
                              "Kubernetes",
                              "triage",
                              "ICU care",
                              "pediatrics",
                              "Excel",
                              "IFRS",
                              "auditing",
                              "AutoCAD",
                              "structural analysis",
                              "curriculum design",
                              "negotiation",
                              "CRM",
                              "Figma",
                              "user research",
                              "rehabilitation",
                              "payroll",
                              "recruiting",
                              "machine learning",
                              "statistics",
                              "wiring",
                              "contract law",
                              "SEO",
                              "Terraform",
                              "AWS",
                              "patient education",
                              "budgeting",
                              "forecasting",
                              "menu planning",
                              "supply chain",
                              "Java",
                              "Go",
                              "React",
                              "phlebotomy"};
static const char *CITY[] = {"Denver", "Austin",  "Boston",  "Chicago",  "Seattle",
                             "Miami",  "Atlanta", "Phoenix", "Portland", "Dallas",
                             "Madrid", "Berlin",  "Lyon",    "Porto",    "Toronto",
                             "Dublin", "Oslo",    "Warsaw",  "Milan",    "Prague"};
static const char *COMPANY[] = {"Acme Corp",  "Globex",     "Initech",         "Umbrella Health",
                                "Stark Labs", "Wayne Care", "Hooli",           "Vandelay Imports",
                                "Soylent",    "Cyberdyne",  "Massive Dynamic", "St. Mary Hospital"};
static const char *SCHOOL[] = {"State University", "Technical Institute", "Nursing College",
                               "Business School", "Community College"};

static char *resume_text(uint64_t *s)
{
    char buf[1024];
    int years = 1 + (int)(rng(s) % 25), start = 1995 + (int)(rng(s) % 25);
    snprintf(buf, sizeof buf,
             "%s %s. %s %s based in %s. %d years of experience. Skills: %s, %s, %s, %s. "
             "Previously %s at %s (%d-%d). Education: %s, %d.",
             PICK(s, FIRST), PICK(s, LAST), PICK(s, LEVEL), PICK(s, TITLE), PICK(s, CITY), years,
             PICK(s, SKILL), PICK(s, SKILL), PICK(s, SKILL), PICK(s, SKILL), PICK(s, TITLE),
             PICK(s, COMPANY), start, start + 1 + (int)(rng(s) % 8), PICK(s, SCHOOL), start - 4);
    return strdup(buf);
}

static char *query_text(uint64_t *s)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s %s in %s with %s and %s", PICK(s, LEVEL), PICK(s, TITLE),
             PICK(s, CITY), PICK(s, SKILL), PICK(s, SKILL));
    return strdup(buf);
}

static void die(const char *what, const lh_error *err)
{
    fprintf(stderr, "vectors: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

/* ---------------------------------------------------------------- the DuckDB peer */

/* Writes (id, embedding FLOAT[DIM]) to path as Parquet through an appender of data chunks. */
static void write_parquet(duckdb_connection con, const float *v, size_t n, const char *path)
{
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE TABLE t (id BIGINT, embedding FLOAT[%d])", DIM);
    if (duckdb_query(con, sql, NULL) != DuckDBSuccess)
        die("create table", NULL);
    duckdb_appender app;
    if (duckdb_appender_create(con, NULL, "t", &app) != DuckDBSuccess)
        die("appender", NULL);
    duckdb_logical_type types[2];
    types[0] = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    duckdb_logical_type f = duckdb_create_logical_type(DUCKDB_TYPE_FLOAT);
    types[1] = duckdb_create_array_type(f, DIM);
    duckdb_destroy_logical_type(&f);
    idx_t cap = duckdb_vector_size();
    for (size_t off = 0; off < n; off += cap) {
        size_t m = n - off < cap ? n - off : cap;
        duckdb_data_chunk ch = duckdb_create_data_chunk(types, 2);
        int64_t *ids = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
        float *child = duckdb_vector_get_data(
            duckdb_array_vector_get_child(duckdb_data_chunk_get_vector(ch, 1)));
        for (size_t i = 0; i < m; i++) {
            ids[i] = (int64_t)(off + i);
            memcpy(child + i * DIM, v + (off + i) * DIM, DIM * sizeof(float));
        }
        duckdb_data_chunk_set_size(ch, m);
        if (duckdb_append_data_chunk(app, ch) != DuckDBSuccess)
            die("append", NULL);
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_appender_destroy(&app);
    duckdb_destroy_logical_type(&types[0]);
    duckdb_destroy_logical_type(&types[1]);
    snprintf(sql, sizeof sql, "COPY t TO '%s' (FORMAT parquet); DROP TABLE t", path);
    if (duckdb_query(con, sql, NULL) != DuckDBSuccess)
        die("copy to parquet", NULL);
}

/* Queries/s of the exact scan over the Parquet file, one thread; *recall_out its recall
 * against the flat truth (a check that both rank the same). */
static double duckdb_exact_qps(const float *vecs, size_t n, const float *qv, size_t nq,
                               const int64_t *truth, double *recall_out)
{
    duckdb_database db;
    duckdb_connection con;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &con) != DuckDBSuccess)
        die("duckdb open", NULL);
    duckdb_query(con, "SET threads = 1", NULL);
    char path[] = "/tmp/lh-bench-vectors-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp", NULL);
    close(fd);
    char pq[64];
    snprintf(pq, sizeof pq, "%s.parquet", path);
    unlink(path);
    write_parquet(con, vecs, n, pq);
    char sql[512];
    snprintf(
        sql, sizeof sql,
        "SELECT id FROM read_parquet('%s') ORDER BY array_cosine_distance(embedding::FLOAT[%d], "
        "$1::FLOAT[%d]) LIMIT %d",
        pq, DIM, DIM, K);
    duckdb_prepared_statement st;
    if (duckdb_prepare(con, sql, &st) != DuckDBSuccess)
        die(duckdb_prepare_error(st), NULL);
    duckdb_logical_type ft = duckdb_create_logical_type(DUCKDB_TYPE_FLOAT);
    duckdb_logical_type at = duckdb_create_array_type(ft, DIM);
    double t0 = now_s(), hits = 0;
    for (size_t i = 0; i < nq; i++) {
        duckdb_value vals[DIM];
        for (int j = 0; j < DIM; j++)
            vals[j] = duckdb_create_float(qv[i * DIM + j]);
        duckdb_value arr = duckdb_create_array_value(ft, vals, DIM);
        for (int j = 0; j < DIM; j++)
            duckdb_destroy_value(&vals[j]);
        duckdb_bind_value(st, 1, arr);
        duckdb_destroy_value(&arr);
        duckdb_result res;
        if (duckdb_execute_prepared(st, &res) != DuckDBSuccess)
            die(duckdb_result_error(&res), NULL);
        for (idx_t r = 0; r < duckdb_row_count(&res); r++) {
            int64_t id = duckdb_value_int64(&res, 0, r);
            for (int j = 0; j < K; j++)
                hits += truth[i * K + j] == id;
        }
        duckdb_destroy_result(&res);
    }
    double qps = (double)nq / (now_s() - t0);
    *recall_out = hits / (double)(nq * K);
    duckdb_destroy_logical_type(&at);
    duckdb_destroy_logical_type(&ft);
    duckdb_destroy_prepare(&st);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    unlink(pq);
    return qps;
}

/* ---------------------------------------------------------------- ANN lines */

/* recall@10 and single-query qps on one thread over nq queries. */
static void measure(const lh_ann *a, int dim, const float *qv, size_t nq, const int64_t *truth,
                    double *recall, double *qps)
{
    float s[K];
    int64_t ids[K];
    lh_error err;
    double hits = 0, t0 = now_s();
    for (size_t i = 0; i < nq; i++) {
        if (lh_ann_search(a, qv + i * (size_t)dim, 1, K, NULL, s, ids, &err) != 0)
            die("search", &err);
        for (int x = 0; x < K; x++)
            for (int y = 0; y < K; y++)
                hits += ids[x] == truth[i * K + y];
    }
    *qps = (double)nq / (now_s() - t0);
    *recall = hits / (double)(nq * K);
}

static double last_train_s; /* the lh_ann_new part of the last build (IVF-PQ's training) */

static lh_ann *build(lh_ann_kind kind, int dim, const lh_ann_params *p, const float *v, size_t n,
                     const int64_t *labels, int threads, double *secs, double *rss_delta)
{
    lh_error err;
    double r0 = rss_mb(), t0 = now_s();
    lh_ann *a = lh_ann_new(kind, dim, p, v, n, threads, &err);
    last_train_s = now_s() - t0;
    if (!a || lh_ann_add(a, v, labels, n, &err) != 0)
        die("build", &err);
    *secs = now_s() - t0;
    *rss_delta = rss_mb() - r0;
    return a;
}

static void part384(size_t n, size_t nq, size_t nexact, int threads)
{
    printf("== part 1: %zu resumes x %d (hash embedder), %zu queries, builds on %d threads\n", n,
           DIM, nq, threads);
    float *v = malloc(n * DIM * sizeof *v), *qv = malloc(nq * DIM * sizeof *qv);
    int64_t *labels = malloc(n * sizeof *labels), *truth = malloc(nq * K * sizeof *truth);
    uint64_t s = 0x5eed;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char *t = resume_text(&s);
        lh_hash_embed(t, strlen(t), DIM, v + i * DIM);
        free(t);
        labels[i] = (int64_t)i;
    }
    printf("embed: %zu texts in %.2f s (%.0f texts/s, one thread)\n", n, now_s() - t0,
           (double)n / (now_s() - t0));
    s = 0xfeed;
    for (size_t i = 0; i < nq; i++) {
        char *t = query_text(&s);
        lh_hash_embed(t, strlen(t), DIM, qv + i * DIM);
        free(t);
    }

    /* Ground truth and the flat line. */
    lh_ann_params p;
    double secs, rss, recall, qps;
    lh_ann_params_default(LH_ANN_FLAT, DIM, n, &p);
    lh_ann *flat = build(LH_ANN_FLAT, DIM, &p, v, n, labels, threads, &secs, &rss);
    float sc[K];
    lh_error err;
    t0 = now_s();
    for (size_t i = 0; i < nq; i++)
        if (lh_ann_search(flat, qv + i * DIM, 1, K, NULL, sc, truth + i * K, &err) != 0)
            die("truth", &err);
    double flat_qps = (double)nq / (now_s() - t0);

    size_t ne = nexact < nq ? nexact : nq;
    double exact_recall;
    double exact_qps = duckdb_exact_qps(v, n, qv, ne, truth, &exact_recall);
    printf("baseline duckdb_exact: queries=%zu qps=%.2f latency_ms=%.1f recall@10=%.3f "
           "(array_cosine_distance over Parquet, one thread)\n",
           ne, exact_qps, 1000.0 / exact_qps, exact_recall);
    printf("%-26s %8s %10s %10s %10s %8s %10s %9s\n", "structure", "param", "build_s", "memory_mb",
           "rss_mb", "recall", "qps", "x_exact");
    printf("%-26s %8s %10.2f %10.1f %10.1f %8.3f %10.1f %9.1f\n", "flat", "-", secs,
           (double)lh_ann_memory(flat) / 1048576.0, rss, 1.0, flat_qps, flat_qps / exact_qps);
    lh_ann_free(flat);

    static const int efs[] = {16, 32, 64, 128, 256, 512};
    static const int ms[] = {16, 32};
    for (int mi = 0; mi < 2; mi++) {
        lh_ann_params_default(LH_ANN_HNSW, DIM, n, &p);
        p.hnsw_m = ms[mi];
        p.hnsw_ef_construction = 200;
        lh_ann *a = build(LH_ANN_HNSW, DIM, &p, v, n, labels, threads, &secs, &rss);
        char name[64];
        snprintf(name, sizeof name, "hnsw M=%d efC=200", ms[mi]);
        for (size_t e = 0; e < sizeof efs / sizeof *efs; e++) {
            lh_ann_set_search_defaults(a, efs[e], 0, &err);
            measure(a, DIM, qv, nq, truth, &recall, &qps);
            char param[32];
            snprintf(param, sizeof param, "ef=%d", efs[e]);
            printf("%-26s %8s %10.2f %10.1f %10.1f %8.3f %10.1f %9.1f\n", name, param, secs,
                   (double)lh_ann_memory(a) / 1048576.0, rss, recall, qps, qps / exact_qps);
            fflush(stdout);
        }
        lh_ann_free(a);
    }

    lh_ann_params_default(LH_ANN_IVFPQ, DIM, n, &p);
    lh_ann *a = build(LH_ANN_IVFPQ, DIM, &p, v, n, labels, threads, &secs, &rss);
    lh_ann_get_params(a, &p);
    char name[64];
    snprintf(name, sizeof name, "ivfpq nlist=%d m=%d b=%d", p.ivf_nlist, p.pq_m, p.pq_nbits);
    static const int nps[] = {1, 4, 8, 16, 32, 64, 128};
    for (size_t e = 0; e < sizeof nps / sizeof *nps; e++) {
        lh_ann_set_search_defaults(a, 0, nps[e], &err);
        measure(a, DIM, qv, nq, truth, &recall, &qps);
        char param[32];
        snprintf(param, sizeof param, "np=%d", nps[e]);
        printf("%-26s %8s %10.2f %10.1f %10.1f %8.3f %10.1f %9.1f\n", name, param, secs,
               (double)lh_ann_memory(a) / 1048576.0, rss, recall, qps, qps / exact_qps);
        fflush(stdout);
    }
    lh_ann_free(a);
    free(v);
    free(qv);
    free(labels);
    free(truth);
}

/* A random-normal vector of dim floats scaled to length `len`. */
static void normal_vec(uint64_t *s, int dim, double len, float *out)
{
    double norm = 0;
    for (int j = 0; j < dim; j++) {
        double u1 = ((double)(rng(s) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(rng(s) >> 11) / 9007199254740992.0;
        out[j] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        norm += (double)out[j] * out[j];
    }
    for (int j = 0; j < dim; j++)
        out[j] = (float)(out[j] / sqrt(norm) * len);
}

/* HNSW M=16, efConstruction=200 over v, linked by ours or by FAISS's own add; prints its
   build time and its recall@10 / queries/s at a few efSearch. */
static void hnsw768(const float *v, const int64_t *labels, size_t n, int threads, int faiss_add,
                    const float *qv, size_t nq, const int64_t *truth, double *build_s)
{
    int dim = 768;
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, dim, n, &p);
    p.hnsw_m = 16;
    p.hnsw_ef_construction = 200;
    lh_error err;
    double r0 = rss_mb(), t0 = now_s();
    lh_ann_faiss_construction(faiss_add);
    lh_ann *a = lh_ann_new(LH_ANN_HNSW, dim, &p, NULL, 0, threads, &err);
    if (!a)
        die("hnsw", &err);
    if (lh_ann_add(a, v, labels, n, &err) != 0)
        die("hnsw add", &err);
    *build_s = now_s() - t0;
    printf("hnsw M=16 efC=200, %s: build_s=%.2f (target <= 70, previous system 230) "
           "memory_mb=%.1f rss_mb=%.1f\n",
           faiss_add ? "FAISS's own add (peer)" : "our construction", *build_s,
           (double)lh_ann_memory(a) / 1048576.0, rss_mb() - r0);
    static const int EF[] = {64, 128, 256};
    for (size_t e = 0; e < sizeof EF / sizeof EF[0]; e++) {
        double recall, qps;
        if (lh_ann_set_search_defaults(a, EF[e], 0, &err) != 0)
            die("efSearch", &err);
        measure(a, dim, qv, nq, truth, &recall, &qps);
        printf("  ef=%d: recall@10=%.3f qps=%.0f\n", EF[e], recall, qps);
    }
    lh_ann_free(a);
}

/* IVF-PQ (defaults: nlist 4·sqrt(n), m = dim / 8, 8 bits) over v, trained and filled by
   ours or by FAISS's own; prints build time (train, add) and recall@10 at a few nprobe. */
static void ivf768(const float *v, const int64_t *labels, size_t n, int threads, int faiss,
                   const float *qv, size_t nq, const int64_t *truth, double *build_s)
{
    int dim = 768;
    lh_ann_params p;
    double rss;
    lh_error err;
    lh_ann_faiss_construction(faiss);
    lh_ann_params_default(LH_ANN_IVFPQ, dim, n, &p);
    lh_ann *a = build(LH_ANN_IVFPQ, dim, &p, v, n, labels, threads, build_s, &rss);
    lh_ann_get_params(a, &p);
    printf("ivfpq nlist=%d m=%d nbits=%d, %s: build_s=%.2f (train %.2f, add %.2f; target <= 16, "
           "previous system 16.2) memory_mb=%.1f rss_mb=%.1f\n",
           p.ivf_nlist, p.pq_m, p.pq_nbits, faiss ? "FAISS's own (peer)" : "ours", *build_s,
           last_train_s, *build_s - last_train_s, (double)lh_ann_memory(a) / 1048576.0, rss);
    static const int NPROBE[] = {16, 64};
    for (size_t e = 0; e < sizeof NPROBE / sizeof NPROBE[0]; e++) {
        double recall, qps;
        if (lh_ann_set_search_defaults(a, 0, NPROBE[e], &err) != 0)
            die("nprobe", &err);
        measure(a, dim, qv, nq, truth, &recall, &qps);
        printf("  nprobe=%d: recall@10=%.3f qps=%.0f\n", NPROBE[e], recall, qps);
    }
    lh_ann_free(a);
}

static void part768(size_t n, int threads, int hnsw, int faiss_peer)
{
    int dim = 768;
    size_t nq = 500;
    printf("== part 2: %zu random-normal vectors x %d, builds on %d threads\n", n, dim, threads);
    float *v = malloc(n * (size_t)dim * sizeof *v), *qv = malloc(nq * (size_t)dim * sizeof *qv);
    int64_t *labels = malloc(n * sizeof *labels), *truth = malloc(nq * K * sizeof *truth);
    uint64_t s = 0x768;
    for (size_t i = 0; i < n; i++) {
        normal_vec(&s, dim, 1.0, v + i * dim);
        labels[i] = (int64_t)i;
    }
    /* Queries: stored vectors moved by a random step of length 0.5, renormalised. Past the
       first, their neighbours are near-ties among random points: a hard recall test. */
    for (size_t i = 0; i < nq; i++) {
        float *q = qv + i * dim;
        normal_vec(&s, dim, 0.5, q);
        const float *base = v + (i * 7919 % n) * dim;
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            q[j] += base[j];
            norm += (double)q[j] * q[j];
        }
        for (int j = 0; j < dim; j++)
            q[j] = (float)(q[j] / sqrt(norm));
    }
    lh_error err;
    lh_ann_params p;
    double secs, rss;
    lh_ann_params_default(LH_ANN_FLAT, dim, n, &p);
    lh_ann *a = build(LH_ANN_FLAT, dim, &p, v, n, labels, threads, &secs, &rss);
    float *ts = malloc(nq * K * sizeof *ts);
    if (lh_ann_search(a, qv, nq, K, NULL, ts, truth, &err) != 0)
        die("exact", &err);
    free(ts);
    lh_ann_free(a);

    double ours = 0, theirs = 0;
    if (hnsw)
        hnsw768(v, labels, n, threads, 0, qv, nq, truth, &ours);
    if (hnsw && faiss_peer) {
        hnsw768(v, labels, n, threads, 1, qv, nq, truth, &theirs);
        printf("hnsw build: ours %.2f s, FAISS's add %.2f s: %.2fx faster\n", ours, theirs,
               theirs / ours);
    }
    ivf768(v, labels, n, threads, 0, qv, nq, truth, &ours);
    if (faiss_peer) {
        ivf768(v, labels, n, threads, 1, qv, nq, truth, &theirs);
        printf("ivfpq build: ours %.2f s, FAISS's train and add %.2f s: %.2fx faster\n", ours,
               theirs, theirs / ours);
    }
    lh_ann_faiss_construction(0);
    free(v);
    free(qv);
    free(labels);
    free(truth);
}

int main(int argc, char **argv)
{
    size_t n = 100000, n768 = 100000, nq = 1000, nexact = 20;
    int threads = 2, hnsw768_on = 1, faiss_peer = 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they are measured */
    for (int i = 1; i + 1 < argc; i += 2) {
        long long x = atoll(argv[i + 1]);
        if (strcmp(argv[i], "--n") == 0)
            n = (size_t)x;
        else if (strcmp(argv[i], "--n768") == 0)
            n768 = (size_t)x;
        else if (strcmp(argv[i], "--queries") == 0)
            nq = (size_t)x;
        else if (strcmp(argv[i], "--exact-queries") == 0)
            nexact = (size_t)x;
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (int)x;
        else if (strcmp(argv[i], "--hnsw768") == 0)
            hnsw768_on = x != 0;
        else if (strcmp(argv[i], "--faiss-peer") == 0)
            faiss_peer = x != 0;
        else {
            fprintf(stderr,
                    "usage: vectors [--n N] [--n768 N] [--queries Q] "
                    "[--exact-queries E] [--threads T] [--hnsw768 0|1] [--faiss-peer 0|1]\n");
            return 2;
        }
    }
    double load[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = -1;
        fclose(f);
    }
    printf("vectors bench: cores=%ld loadavg=%.2f %.2f %.2f\n", sysconf(_SC_NPROCESSORS_ONLN),
           load[0], load[1], load[2]);
    if (n > 0)
        part384(n, nq, nexact, threads);
    if (n768 > 0)
        part768(n768, threads, hnsw768_on, faiss_peer);
    if ((f = fopen("/proc/loadavg", "r")) != NULL) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) == 3)
            printf("loadavg at the end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
        fclose(f);
    }
    return 0;
}
