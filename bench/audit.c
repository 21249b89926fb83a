/*
 * audit: what a durable audit append costs, against what the disk can do (issue 11
 * item 8). All figures come from one run on one disk (DIR), wall clock:
 *
 *   audit DIR [SECONDS]        (LH_AUDIT_BENCH_ONLY=NAME runs one part, for a profile:
 *                               a line's name, batch_1000, tail or query; F always runs)
 *
 *   F            raw write(2) of a 256-byte record + fdatasync, one file, one thread:
 *                the disk's durable-append rate, the yardstick of every other line
 *   one_subject_interleaved  one subject, one thread, each append alternating with one
 *                raw write+fdatasync: the ratio of the medians (robust to the drift of a
 *                shared disk; target >= 0.8 F)
 *   one_subject  durable appends/s to one subject, one thread (target >= 0.8 F)
 *   one_subject_8t  the same subject from 8 threads (group commit shares the syncs)
 *   64_subjects_8t  appends/s over 64 subjects from 8 threads, one row per call
 *   64_subjects_8t_batch8  the same with 8 rows per call (a query returning 8 people)
 *                (target for the 64-subject lines >= 10 F through group commit)
 *   batch_1000   one 1,000-row batch (a query returning 1,000 people): ms and fdatasyncs
 *   tail_10 / tail_100000  µs per append to a subject whose log already holds 10 /
 *                100,000 rows, after a reopen (tip read from the log's last line): flat
 *                means O(1)
 *   query_1000_new / query_1000_seen  an analyst's query returning 1,000 subjects (of
 *                100,000 people), in process (no HTTP), read to the end as JSON, with the
 *                analyst's audited policy and access auditing's sink (compliance/access.c)
 *                against the same policy unaudited; runs alternate so the disk's drift hits
 *                both alike; medians and their ratio (target <= 2x). new: other people each
 *                run (every row creates its subject's log); seen: the same people each run;
 *                "engine side alone": the audited policy with a sink that writes nothing
 *                (the classification and hidden key columns without the chain)
 * Every line runs the chains as the server does, with the verifiable log (issue 12) attached:
 * each durable batch also adds a Merkle leaf per subject it moved. (The server's other
 * listener, the chain-root mirror into subject manifests, works off the append's path.)
 * The key is a fixed test key; DIR gets a fresh folder per run, removed at the end.
 */
#include "catalog/catalog.h"
#include "compliance/compliance.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double seconds = 2.0;
static char *data_dir, *key_file;

static double raw_F(const char *dir)
{
    char *p = lh_path_join(dir, "raw.bin");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    char rec[256];
    memset(rec, 'r', sizeof(rec));
    long n = 0;
    double t0 = now_s();
    while (now_s() - t0 < seconds) {
        if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || fdatasync(fd) != 0)
            abort();
        n++;
    }
    double rate = (double)n / (now_s() - t0);
    close(fd);
    unlink(p);
    free(p);
    return rate;
}

/* The disk's rate drifts on a shared machine (other work, its write cache): every line
 * is compared with F measured just before it, over one second. */
static double local_F(const char *dir)
{
    double keep = seconds;
    seconds = 1.0;
    double f = raw_F(dir);
    seconds = keep;
    return f;
}

static const char *const fields[] = {"candidate_id", "email", "first_name"};

static lh_audit_entry entry(const char *id)
{
    lh_audit_entry e = {.candidate_id = id,
                        .accessor_kind = "agent",
                        .daemon = "bench-key",
                        .purpose = "benchmark",
                        .trace_id = "trace-0001",
                        .fields = fields,
                        .n_fields = 3,
                        .result = "success"};
    return e;
}

typedef struct worker {
    lh_audit *a;
    int t, subjects, batch;
    long rows;
    double until;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char ids[8][32];
    lh_audit_entry e[8];
    for (long i = 0; now_s() < w->until; i++) {
        for (int k = 0; k < w->batch; k++) {
            snprintf(ids[k], sizeof(ids[k]), "SUBJ-%ld",
                     (w->t * 8 + i * w->batch + k) % w->subjects);
            e[k] = entry(ids[k]);
        }
        lh_error err;
        if (lh_audit_append_batch(w->a, e, (size_t)w->batch, &err) != 0) {
            fprintf(stderr, "append: %s\n", err.message);
            abort();
        }
        w->rows += w->batch;
    }
    return NULL;
}

static double run_rate(lh_audit *a, int threads, int subjects, int batch, uint64_t *syncs)
{
    pthread_t t[8];
    worker w[8];
    lh_audit_stats s0, s1;
    lh_audit_get_stats(a, &s0);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] =
            (worker){.a = a, .t = i, .subjects = subjects, .batch = batch, .until = t0 + seconds};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    long rows = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        rows += w[i].rows;
    }
    double el = now_s() - t0;
    lh_audit_get_stats(a, &s1);
    *syncs = s1.syncs - s0.syncs;
    return (double)rows / el;
}

/* The chains as the server runs them: with the verifiable log (issue 12) attached, so
 * every durable batch also adds one Merkle leaf per subject it moved. */
static lh_merkle *merkle;

/* LH_AUDIT_BENCH_ONLY=NAME runs one part: a line's name, batch_1000, tail or query. */
static bool want(const char *name)
{
    const char *only = getenv("LH_AUDIT_BENCH_ONLY");
    return !only || strcmp(only, name) == 0;
}

static lh_audit *open_audit(void)
{
    lh_error err;
    lh_audit *a = lh_audit_open(data_dir, key_file, &err);
    if (!a || !(merkle = lh_merkle_open(data_dir, &err)) ||
        lh_merkle_attach(merkle, a, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.message);
        exit(1);
    }
    return a;
}

static void close_audit(lh_audit *a)
{
    lh_merkle_close(merkle); /* before the chains it is attached to */
    merkle = NULL;
    lh_audit_close(a);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* One subject, one thread, interleaved with the raw yardstick: each round times one raw
 * write+fdatasync of a 256-byte record, then one durable append, so the disk's drift hits
 * both alike; the ratio of the medians is the append's rate in F. */
static double interleaved_ratio(lh_audit *a, const char *dir, double *raw_us, double *app_us)
{
    enum { N = 400 };
    static double tr[N], ta[N];
    char *p = lh_path_join(dir, "raw2.bin");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    char rec[256];
    memset(rec, 'r', sizeof(rec));
    lh_audit_entry e = entry("INTERLEAVED");
    lh_error err;
    for (int i = 0; i < N; i++) {
        double t0 = now_s();
        if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || fdatasync(fd) != 0)
            abort();
        double t1 = now_s();
        if (lh_audit_append(a, &e, NULL, &err) != 0)
            abort();
        tr[i] = (t1 - t0) * 1e6;
        ta[i] = (now_s() - t1) * 1e6;
    }
    close(fd);
    unlink(p);
    free(p);
    qsort(tr, N, sizeof(double), cmp_double);
    qsort(ta, N, sizeof(double), cmp_double);
    *raw_us = tr[N / 2];
    *app_us = ta[N / 2];
    return tr[N / 2] / ta[N / 2];
}

/* Median µs per append to two subjects whose logs hold 10 and 100,000 rows, after a
 * reopen (so each tip is read from its log's last line), appends alternating between
 * them so that the disk's drift hits both alike. */
static void tail_cost_us(double *small, double *large)
{
    lh_audit *a = open_audit();
    static lh_audit_entry batch[1000];
    lh_error err;
    for (int i = 0; i < 1000; i++)
        batch[i] = entry("TAIL-B");
    for (int left = 100000; left > 0; left -= 1000)
        if (lh_audit_append_batch(a, batch, 1000, &err) != 0)
            abort();
    for (int i = 0; i < 10; i++)
        batch[i] = entry("TAIL-A");
    if (lh_audit_append_batch(a, batch, 10, &err) != 0)
        abort();
    close_audit(a);
    a = open_audit();
    enum { N = 200 };
    static double ta[N], tb[N];
    lh_audit_entry ea = entry("TAIL-A"), eb = entry("TAIL-B");
    for (int i = 0; i < N; i++) {
        double t0 = now_s();
        if (lh_audit_append(a, &ea, NULL, &err) != 0)
            abort();
        double t1 = now_s();
        if (lh_audit_append(a, &eb, NULL, &err) != 0)
            abort();
        ta[i] = (t1 - t0) * 1e6;
        tb[i] = (now_s() - t1) * 1e6;
    }
    qsort(ta, N, sizeof(double), cmp_double);
    qsort(tb, N, sizeof(double), cmp_double);
    *small = ta[N / 2];
    *large = tb[N / 2];
    close_audit(a);
}

/* ---------------------------------------------------------------- analyst query */

/* people: n rows (id 'P000000001'..., email, city), a subject dataset keyed by id. */
static int make_people(lh_storage *st, lh_catalog *cat, lh_engine *eng, long n, lh_error *err)
{
    const char *key = "datasets/people/bench/part-0.parquet";
    char *staged = lh_storage_stage(st, LH_BUCKET_PRIMARY, key, err);
    if (!staged)
        return err->code;
    char *lit = lh_sql_literal(staged);
    char *sql = lh_xasprintf("COPY (SELECT 'P' || lpad(CAST(i AS VARCHAR), 9, '0') AS id, "
                             "'person' || i || '@mail.example' AS email, "
                             "['Lisbon','Oslo','Paris'][i %% 3 + 1] AS city FROM range(%ld) t(i)) "
                             "TO %s " LH_PARQUET_COPY_OPTIONS,
                             n, lit);
    int64_t rows = 0;
    int rc = lh_engine_exec(eng, sql, &rows, err);
    if (rc == 0)
        rc = lh_storage_commit(st, LH_BUCKET_PRIMARY, staged, key, err);
    json_t *schema =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "VARCHAR", "name",
                  "email", "type", "VARCHAR", "name", "city", "type", "VARCHAR");
    lh_catalog_commit c = {.name = "people",
                           .bucket = LH_BUCKET_PRIMARY,
                           .mode = LH_MODE_CREATE,
                           .part_key = key,
                           .part_rows = rows,
                           .part_bytes = lh_storage_size(st, LH_BUCKET_PRIMARY, key),
                           .schema = schema,
                           .compression = "zstd",
                           .actor = "bench"};
    if (rc == 0)
        rc = lh_catalog_commit_ingest(cat, &c, NULL, err);
    json_t *patch = json_pack("{s:s}", "subject_key_column", "id");
    if (rc == 0)
        rc = lh_catalog_patch_metadata(cat, "people", patch, "bench", NULL, err);
    json_decref(patch);
    json_decref(schema);
    free(sql);
    free(lit);
    free(staged);
    return rc;
}

/* A sink that writes nothing: what the engine's side of auditing costs alone. */
static int null_sink(void *ctx, const char *const *keys, size_t n_keys, const char *const *cols,
                     size_t n_cols, lh_error *err)
{
    (void)ctx, (void)keys, (void)n_keys, (void)cols, (void)n_cols, (void)err;
    return 0;
}

/* ms to run sql and read it to the end; < 0 on error. access NULL: the null sink. */
static double query_ms(lh_engine *eng, const char *sql, const lh_sql_policy *policy,
                       lh_access_audit *access, int64_t *rows)
{
    char buf[65536];
    lh_error err;
    lh_query_opts o = {.format = LH_FORMAT_JSON,
                       .max_rows = 100000,
                       .timeout_ms = 600000,
                       .policy = policy,
                       .sink = access ? lh_access_audit_sink(access) : null_sink,
                       .sink_ctx = access};
    double t0 = now_s();
    lh_query *q = lh_query_start(eng, sql, &o, &err);
    if (!q) {
        fprintf(stderr, "audit: query: %s\n", err.message);
        return -1;
    }
    ssize_t n;
    while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
        ;
    *rows = lh_query_row_count(q);
    bool failed = n < 0 || lh_query_error(q) != NULL;
    lh_query_free(q);
    return failed ? -1 : (now_s() - t0) * 1e3;
}

/* The analyst-query line: one lake (100,000 people) beside the audit chains, the same
 * query with the analyst's audited policy + sink and with that policy unaudited,
 * alternating, RUNS each. */
static int analyst_query(const char *root, lh_audit *a)
{
    enum { PEOPLE = 100000, RUNS = 9 };
    int status = -1;
    lh_error err;
    lh_config cfg = {.query_timeout_ms = 600000,
                     .query_default_rows = 1000,
                     .query_max_rows = 100000,
                     .max_concurrent_queries = 2};
    char *lake = lh_path_join(root, "lake");
    lh_storage *st = lh_storage_open(lake, &err);
    lh_catalog *cat = st ? lh_catalog_open(st, &err) : NULL;
    lh_engine *eng = cat ? lh_engine_open(&cfg, st, cat, &err) : NULL;
    lh_principal who = {.name = "bench-analyst", .role = LH_ROLE_ANALYST};
    lh_sql_policy *audited = NULL;
    lh_access_audit *access = NULL;
    if (!eng || make_people(st, cat, eng, PEOPLE, &err) != 0) {
        fprintf(stderr, "audit: lake: %s\n", err.message);
        goto out;
    }
    audited = lh_sql_policy_for(cat, &who);
    lh_sql_policy plain = *audited;
    plain.audited = false;
    access = lh_access_audit_new(a, cat, &who, "benchmark", "bench-trace", &err);
    if (!audited->audited || !access) {
        fprintf(stderr, "audit: the analyst's policy is not audited or no context: %s\n",
                access ? "" : err.message);
        goto out;
    }
    /* pass 0: a different 1,000 people each run, every one a new subject of the chains
     * (each append creates its log); pass 1: the same 1,000 people each run (their logs
     * exist: the steady state of people read again) */
    for (int pass = 0; pass < 2; pass++) {
        double ta[RUNS], tp[RUNS], tn[RUNS];
        lh_audit_stats s0, s1;
        lh_audit_get_stats(a, &s0);
        for (int i = -1; i < RUNS; i++) { /* run -1 warms the cache and DuckDB's metadata */
            int first = pass == 0 ? (i + 1) * 1000 : 50000;
            char *sql = lh_xasprintf("SELECT id, email, city FROM people WHERE id >= 'P%09d' "
                                     "ORDER BY id LIMIT 1000",
                                     first);
            int64_t ra = 0, rp = 0, rn = 0;
            double x = query_ms(eng, sql, audited, access, &ra);
            double y = query_ms(eng, sql, &plain, NULL, &rp);
            double z = query_ms(eng, sql, audited, NULL, &rn);
            free(sql);
            if (x < 0 || y < 0 || z < 0 || ra != 1000 || rp != 1000 || rn != 1000) {
                fprintf(stderr, "audit: analyst query failed (rows %lld / %lld)\n", (long long)ra,
                        (long long)rp);
                goto out;
            }
            if (i >= 0) {
                ta[i] = x;
                tp[i] = y;
                tn[i] = z;
            }
        }
        lh_audit_get_stats(a, &s1);
        qsort(ta, RUNS, sizeof(double), cmp_double);
        qsort(tp, RUNS, sizeof(double), cmp_double);
        qsort(tn, RUNS, sizeof(double), cmp_double);
        const char *name = pass ? "query_1000_seen" : "query_1000_new ";
        printf("%s         unaudited %7.2f ms, audited %7.2f ms median (%d runs, %.1f "
               "fdatasync/query)  %5.2fx  (target <= 2x); engine side alone (null sink) "
               "%7.2f ms %5.2fx\n",
               name, tp[RUNS / 2], ta[RUNS / 2], RUNS, (double)(s1.syncs - s0.syncs) / (RUNS + 1),
               ta[RUNS / 2] / tp[RUNS / 2], tn[RUNS / 2], tn[RUNS / 2] / tp[RUNS / 2]);
    }
    status = 0;
out:
    lh_access_audit_free(access);
    lh_sql_policy_free(audited);
    lh_engine_close(eng);
    lh_catalog_close(cat);
    lh_storage_close(st);
    free(lake);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: audit DIR [SECONDS]\n");
        return 2;
    }
    if (argc > 2)
        seconds = atof(argv[2]);
    lh_log_set_level(LH_LOG_WARN);
    char hex[17];
    lh_random_hex(hex, 16);
    char *root = lh_xasprintf("%s/audit-bench-%s", argv[1], hex);
    lh_error err;
    if (lh_fs_mkdirs(root, 0700, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    data_dir = lh_path_join(root, "data");
    key_file = lh_path_join(root, "key");
    lh_fs_write_atomic(key_file, "bench-key-0123456789abcdef0123456789", 36, &err);

    double F = raw_F(root);
    printf("F                       %9.0f write+fdatasync/s (256-byte records, %.0f s)\n", F,
           seconds);
    lh_audit *a = open_audit();
    static const struct {
        const char *name;
        int threads, subjects, batch;
        const char *target;
    } lines[] = {
        {"one_subject", 1, 1, 1, "(target >= 0.8 F)"},
        {"one_subject_8t", 8, 1, 1, ""},
        {"64_subjects_8t", 8, 64, 1, "(target >= 10 F)"},
        {"64_subjects_8t_batch8", 8, 64, 8, "(target >= 10 F)"},
    };
    if (want("one_subject_interleaved")) {
        double raw_us, app_us;
        double ratio = interleaved_ratio(a, root, &raw_us, &app_us);
        printf("one_subject_interleaved %9.0f appends/s  %5.2f F (median raw %.0f us, append "
               "%.0f us, alternating)  (target >= 0.8 F)\n",
               1e6 / app_us, ratio, raw_us, app_us);
    }
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        uint64_t syncs;
        if (!want(lines[i].name))
            continue;
        double f = local_F(root);
        double r = run_rate(a, lines[i].threads, lines[i].subjects, lines[i].batch, &syncs);
        printf("%-23s %9.0f appends/s  %5.2f F (F=%.0f just before)  %s  rows/sync %.1f\n",
               lines[i].name, r, r / f, f, lines[i].target, r * seconds / (double)syncs);
    }
    for (int round = 0; round < 2 && want("batch_1000"); round++) {
        static char ids[1000][16];
        static lh_audit_entry e[1000];
        for (int i = 0; i < 1000; i++) {
            snprintf(ids[i], sizeof(ids[i]), "PERSON-%d", i);
            e[i] = entry(ids[i]);
        }
        lh_audit_stats s0, s1;
        lh_audit_get_stats(a, &s0);
        double t0 = now_s();
        if (lh_audit_append_batch(a, e, 1000, &err) != 0)
            abort();
        double ms = (now_s() - t0) * 1e3;
        lh_audit_get_stats(a, &s1);
        printf("batch_1000_%s %9.1f ms for 1,000 rows of 1,000 subjects, %llu fdatasync\n",
               round ? "again       " : "new_subjects", ms,
               (unsigned long long)(s1.syncs - s0.syncs));
    }
    close_audit(a);
    if (want("tail")) {
        double small, large;
        tail_cost_us(&small, &large);
        printf("tail_10                 %9.1f us/append median (log of 10 rows)\n", small);
        printf("tail_100000             %9.1f us/append median (log of 100,000 rows)\n", large);
    }
    int qrc = 0;
    if (want("query")) {
        a = open_audit();
        qrc = analyst_query(root, a);
        close_audit(a);
    }
    lh_fs_remove_tree(root, NULL);
    free(root);
    free(data_dir);
    free(key_file);
    return qrc == 0 ? 0 : 1;
}
