/*
 * test_source_sync.c: the sync pipeline (src/sources/sync.c) driven by scripted readers
 * through lh_db_ingest_run_with: the private DuckDB's COPY, lineage and watermarks,
 * "nothing changes" on every failure (the data folder is compared file by file), cancel
 * while the reader is blocked, upserts, and memory bounded by a row group over 2M rows.
 *
 * The scripted source is a table of rows (id, name, updated_at, doc jsonb, score) kept in
 * the fixture; a reader yields the rows above the watermark it is given, like a server
 * would, and can fail at row K with any error, or block until interrupted.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "ingest/ingest.h"
#include "query/query.h"
#include "sources/sources_internal.h"
#include "storage/storage.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Under ASan, freed memory sits in its quarantine (256 MB by default) and the process's
 * high-water mark says more about that than about us: the memory case measures the live
 * heap instead, sampled by the reader at every chunk. */
#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator interface (its header is not installed with GCC's runtime). */
size_t __sanitizer_get_current_allocated_bytes(void);
#define LIVE_HEAP() ((long)(__sanitizer_get_current_allocated_bytes() / 1024))
#else
#define LIVE_HEAP() (-1L)
#endif

/* ---------------------------------------------------------------- the scripted source */

typedef struct source_table {
    int64_t n;        /* ids 1..n */
    int64_t *updated; /* updated_at of id i at [i - 1] */
    int name_pad;     /* extra characters in each name (the memory case) */
} source_table;

typedef struct script {
    const source_table *t;
    int64_t fail_at; /* fail when this many rows were delivered (-1: never) */
    int fail_code;
    const char *fail_kind;
    int64_t block_at; /* block when this many rows were delivered, until interrupted */
    atomic_bool blocked, interrupted;
    long peak_live_kb; /* the live heap's peak while streaming (ASan builds), else -1 */
} script;

typedef struct scripted {
    lh_db_reader base;
    script *sc;
    int64_t next_id; /* the next id to consider (1-based) */
    int64_t watermark;
    bool has_watermark;
} scripted;

#define NCOLS 5
static const char *const col_names[NCOLS] = {"id", "name", "updated_at", "doc", "score"};
static const char *const col_source_types[NCOLS] = {"bigint", "text", "bigint", "jsonb",
                                                    "double precision"};
static const duckdb_type col_types[NCOLS] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR,
                                             DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR,
                                             DUCKDB_TYPE_DOUBLE};

static int scripted_next(lh_db_reader *base, duckdb_data_chunk out, lh_error *err)
{
    scripted *r = (scripted *)base;
    script *sc = r->sc;
    idx_t cap = duckdb_vector_size(), n = 0;
    duckdb_vector v[NCOLS];
    for (int c = 0; c < NCOLS; c++)
        v[c] = duckdb_data_chunk_get_vector(out, c);
    int64_t *ids = duckdb_vector_get_data(v[0]);
    int64_t *upd = duckdb_vector_get_data(v[2]);
    double *score = duckdb_vector_get_data(v[4]);
    long live = LIVE_HEAP();
    if (live > sc->peak_live_kb)
        sc->peak_live_kb = live;
    char *name = lh_xmalloc((size_t)sc->t->name_pad + 64);
    while (n < cap && r->next_id <= sc->t->n) {
        if (sc->fail_at >= 0 && base->rows + (int64_t)n >= sc->fail_at) {
            free(name);
            return lh_error_setk(err, sc->fail_code, sc->fail_kind, "scripted failure at row %lld",
                                 (long long)(base->rows + (int64_t)n + 1));
        }
        if (sc->block_at >= 0 && base->rows + (int64_t)n >= sc->block_at) {
            atomic_store(&sc->blocked, true);
            while (!atomic_load(&sc->interrupted))
                usleep(1000);
            free(name);
            return lh_error_setk(err, LH_ECANCELLED, "cancelled", "interrupted");
        }
        int64_t id = r->next_id++;
        int64_t u = sc->t->updated[id - 1];
        if (r->has_watermark && u <= r->watermark)
            continue;
        ids[n] = id;
        upd[n] = u;
        score[n] = (double)id / 4.0;
        int len = snprintf(name, 64, "name-%lld-v%lld", (long long)id, (long long)u);
        memset(name + len, 'x', (size_t)sc->t->name_pad);
        duckdb_vector_assign_string_element_len(v[1], n, name, (idx_t)len + (idx_t)sc->t->name_pad);
        if (id % 10 == 0) {
            duckdb_vector_ensure_validity_writable(v[3]);
            duckdb_validity_set_row_invalid(duckdb_vector_get_validity(v[3]), n);
        } else {
            char doc[64];
            snprintf(doc, sizeof(doc), "{\"id\": %lld, \"tags\": [\"a\"]}", (long long)id);
            duckdb_vector_assign_string_element(v[3], n, doc);
        }
        n++;
    }
    free(name);
    duckdb_data_chunk_set_size(out, n);
    base->rows += (int64_t)n;
    return 0;
}

static void scripted_interrupt(lh_db_reader *base)
{
    atomic_store(&((scripted *)base)->sc->interrupted, true);
}

static void scripted_close(lh_db_reader *base)
{
    lh_db_reader_free_columns(base);
    free(base);
}

static lh_db_reader *scripted_open(void *ctx, const lh_db_select *sel, lh_error *err)
{
    script *sc = ctx;
    if (sel->table && strcmp(sel->table, "missing") == 0) {
        lh_error_set(err, LH_EUPSTREAM, "relation \"missing\" does not exist");
        return NULL;
    }
    scripted *r = lh_xcalloc(1, sizeof(*r));
    r->sc = sc;
    r->next_id = 1;
    if (sel->watermark) {
        r->has_watermark = true;
        r->watermark = strtoll(sel->watermark, NULL, 10);
    }
    r->base.ncols = NCOLS;
    r->base.names = lh_xcalloc(NCOLS, sizeof(char *));
    r->base.types = lh_xcalloc(NCOLS, sizeof(duckdb_logical_type));
    r->base.source_types = lh_xcalloc(NCOLS, sizeof(char *));
    for (int c = 0; c < NCOLS; c++) {
        r->base.names[c] = lh_xstrdup(col_names[c]);
        r->base.types[c] = duckdb_create_logical_type(col_types[c]);
        r->base.source_types[c] = lh_xstrdup(col_source_types[c]);
    }
    r->base.next = scripted_next;
    r->base.interrupt = scripted_interrupt;
    r->base.close = scripted_close;
    return &r->base;
}

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    char *dir, *data;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    lh_ingest *ing;
    lh_db_ingest *dbi;
    lh_jobs *jobs;
    source_table t;
} fx;

static void table_fill(source_table *t, int64_t n)
{
    free(t->updated);
    t->n = n;
    t->updated = lh_xcalloc((size_t)n + 1, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        t->updated[i] = 1000 + i;
}

static int setup(void **state)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    lh_error err;
    f->dir = lh_test_tmpdir("source_sync");
    f->data = lh_path_join(f->dir, "data");
    f->cfg.query_timeout_ms = 60000;
    f->cfg.query_default_rows = 1000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = 4;
    f->cfg.duckdb_threads = 2;
    f->cfg.duckdb_memory_mb = 512;
    if (!(f->st = lh_storage_open(f->data, &err)) || !(f->cat = lh_catalog_open(f->st, &err)) ||
        !(f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err)) ||
        !(f->ing = lh_ingest_open(f->st, f->cat, f->eng, &err)) ||
        !(f->dbi = lh_db_ingest_open(f->ing, f->cat, f->eng, NULL, &err)) ||
        !(f->jobs = lh_jobs_open(1, &err)))
        fail_msg("fixture: %s", err.message);
    table_fill(&f->t, 100);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    lh_jobs_close(f->jobs);
    lh_db_ingest_close(f->dbi);
    lh_ingest_close(f->ing);
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
    free(f->t.updated);
    free(f->data);
    lh_test_rmdir(f->dir);
    free(f);
    return 0;
}

static lh_db_ingest_request request(const char *dataset, lh_ingest_mode mode)
{
    return (lh_db_ingest_request){.kind = LH_SOURCE_POSTGRES,
                                  .dsn = "scripted",
                                  .table = "public.people",
                                  .dataset = dataset,
                                  .mode = mode,
                                  .actor = "tester"};
}

static script plain(fx *f)
{
    return (script){.t = &f->t, .fail_at = -1, .block_at = -1, .peak_live_kb = -1};
}

static int run(fx *f, const lh_db_ingest_request *req, script *sc, json_t **result, lh_error *err)
{
    lh_error_clear(err);
    return lh_db_ingest_run_with(f->dbi, req, "hr-db", scripted_open, sc, NULL, result, err);
}

static json_t *ok_run(fx *f, const lh_db_ingest_request *req, script *sc)
{
    lh_error err;
    json_t *res = NULL;
    if (run(f, req, sc, &res, &err) != 0)
        fail_msg("sync of '%s' failed: %s", req->dataset, err.message);
    assert_non_null(res);
    return res;
}

/* A query as a user runs it, its JSON result parsed. Caller decrefs. */
static json_t *user_query(fx *f, const char *sql)
{
    lh_error err;
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 100000, .timeout_ms = 60000};
    lh_query *q = lh_query_start(f->eng, sql, &o, &err);
    if (!q)
        fail_msg("query %s: %s", sql, err.message);
    lh_buf b;
    lh_buf_init(&b);
    char buf[65536];
    ssize_t n;
    while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
        lh_buf_append(&b, buf, (size_t)n);
    lh_query_free(q);
    json_t *doc = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    lh_buf_free(&b);
    assert_non_null(doc);
    return doc;
}

/* The first cell of a one-row query, as an integer. */
static long long query_int(fx *f, const char *sql)
{
    json_t *doc = user_query(f, sql);
    json_t *v = json_array_get(json_array_get(json_object_get(doc, "rows"), 0), 0);
    long long out = json_is_integer(v)
                        ? (long long)json_integer_value(v)
                        : strtoll(json_string_value(v) ? json_string_value(v) : "-1", NULL, 10);
    json_decref(doc);
    return out;
}

/* ---------------------------------------------------------------- data folder snapshots */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *root, const char *rel, char ***items, size_t *n)
{
    char *path = rel[0] ? lh_path_join(root, rel) : lh_xstrdup(root);
    DIR *d = opendir(path);
    if (!d) {
        free(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *sub = rel[0] ? lh_xasprintf("%s/%s", rel, e->d_name) : lh_xstrdup(e->d_name);
        if (strcmp(sub, "_tmp/duckdb") == 0) { /* the engine's spill folder */
            free(sub);
            continue;
        }
        char *full = lh_path_join(root, sub);
        struct stat st;
        if (lstat(full, &st) == 0) {
            *items = lh_xrealloc(*items, (*n + 1) * sizeof(char *));
            if (S_ISDIR(st.st_mode)) {
                (*items)[(*n)++] = lh_xasprintf("%s/", sub);
                walk(root, sub, items, n);
            } else {
                (*items)[(*n)++] = lh_xasprintf("%s %lld %lld.%09ld", sub, (long long)st.st_size,
                                                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
            }
        }
        free(full);
        free(sub);
    }
    closedir(d);
    free(path);
}

/* Every file (size, mtime) and folder of the data folder, sorted. Caller frees. */
static char *snapshot(fx *f)
{
    char **items = NULL;
    size_t n = 0;
    walk(f->data, "", &items, &n);
    qsort(items, n, sizeof(char *), cmp_str);
    lh_buf b;
    lh_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        lh_buf_printf(&b, "%s\n", items[i]);
        free(items[i]);
    }
    free(items);
    lh_buf_putc(&b, '\0');
    return b.data;
}

/* ---------------------------------------------------------------- cases */

/* A create reads every row: values, JSON typing, lineage (never a DSN), watermark. */
static void test_create_values_and_lineage(void **state)
{
    fx *f = *state;
    lh_db_ingest_request req = request("people", LH_MODE_CREATE);
    req.incremental_column = "updated_at";
    script sc = plain(f);
    json_t *res = ok_run(f, &req, &sc);
    assert_int_equal(lh_json_int(res, "rows", -1), 100);
    assert_int_equal(lh_json_int(res, "rows_superseded", -1), 0);
    assert_string_equal(lh_json_str(res, "mode"), "create");
    const json_t *w = json_object_get(res, "watermark");
    assert_string_equal(lh_json_str(w, "column"), "updated_at");
    assert_true(json_is_null(json_object_get(w, "previous")));
    assert_string_equal(lh_json_str(w, "current"), "1099");
    json_decref(res);

    lh_error err;
    json_t *m = lh_catalog_get(f->cat, "people", &err);
    assert_non_null(m);
    assert_int_equal(lh_json_int(m, "row_count", -1), 100);
    const json_t *l = json_object_get(m, "lineage");
    assert_string_equal(lh_json_str(l, "source_system"), "postgres");
    assert_string_equal(lh_json_str(l, "source"), "hr-db");
    assert_string_equal(lh_json_str(l, "table"), "public.people");
    assert_string_equal(lh_json_str(l, "actor"), "tester");
    assert_non_null(lh_json_str(l, "job"));
    assert_non_null(lh_json_str(l, "ingested_at"));
    assert_string_equal(lh_json_str(json_object_get(l, "watermark"), "value"), "1099");
    char *text = json_dumps(m, 0);
    assert_null(strstr(text, "scripted")); /* the DSN */
    free(text);
    /* jsonb arrives as JSON; the rest keep the reader's types */
    size_t i;
    const json_t *col;
    json_array_foreach(json_object_get(m, "schema"), i, col)
    {
        if (strcmp(lh_json_str(col, "name"), "doc") == 0)
            assert_string_equal(lh_json_str(col, "type"), "JSON");
        if (strcmp(lh_json_str(col, "name"), "id") == 0)
            assert_string_equal(lh_json_str(col, "type"), "BIGINT");
    }
    json_decref(m);

    json_t *doc = user_query(f, "SELECT id, name, doc->>'$.tags[0]', score FROM people "
                                "WHERE id IN (7, 10) ORDER BY id");
    const json_t *rows = json_object_get(doc, "rows");
    assert_int_equal(json_array_size(rows), 2);
    const json_t *r7 = json_array_get(rows, 0), *r10 = json_array_get(rows, 1);
    assert_int_equal(json_integer_value(json_array_get(r7, 0)), 7);
    assert_string_equal(json_string_value(json_array_get(r7, 1)), "name-7-v1006");
    assert_string_equal(json_string_value(json_array_get(r7, 2)), "a");
    assert_true(json_real_value(json_array_get(r7, 3)) == 1.75);
    assert_true(json_is_null(json_array_get(r10, 2))); /* NULL kept */
    json_decref(doc);
}

/* A query source records its digest, never its text. */
static void test_query_lineage_digest(void **state)
{
    fx *f = *state;
    lh_db_ingest_request req = request("q", LH_MODE_CREATE);
    req.table = NULL;
    req.query = "SELECT * FROM people WHERE salary > 100000";
    script sc = plain(f);
    json_decref(ok_run(f, &req, &sc));
    json_t *m = lh_catalog_get(f->cat, "q", NULL);
    const json_t *l = json_object_get(m, "lineage");
    assert_null(json_object_get(l, "table"));
    char digest[65];
    lh_sql_fingerprint(req.query, digest);
    assert_string_equal(lh_json_str(l, "query_sha256"), digest);
    assert_null(json_object_get(l, "watermark"));
    json_decref(m);
}

typedef struct failing_case {
    const char *what;
    lh_ingest_mode mode;
    int64_t fail_at;
    int code;
    const char *kind;
    const char *table;
} failing_case;

/* A reader that fails (at row K, or at open) in any mode: its own error comes back
 * (code, kind, message), and the data folder and the dataset are exactly as before. */
static void test_failure_leaves_nothing(void **state)
{
    fx *f = *state;
    table_fill(&f->t, 5000);
    lh_db_ingest_request base = request("people", LH_MODE_CREATE);
    script ok = plain(f);
    json_decref(ok_run(f, &base, &ok));
    static const failing_case cases[] = {
        {"create, server gone at row 3000", LH_MODE_CREATE, 3000, LH_EUPSTREAM, "source_error",
         NULL},
        {"create, unmappable at row 1", LH_MODE_CREATE, 0, LH_EINVAL, "unmappable_value", NULL},
        {"replace, server gone at row 4999", LH_MODE_REPLACE, 4999, LH_EUPSTREAM, "source_error",
         NULL},
        {"append, unmappable at row 2049", LH_MODE_APPEND, 2048, LH_EINVAL, "unmappable_value",
         NULL},
        {"append, unknown table", LH_MODE_APPEND, -1, LH_EUPSTREAM, NULL, "missing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const failing_case *c = &cases[i];
        lh_db_ingest_request req = request(c->mode == LH_MODE_CREATE ? "fresh" : "people", c->mode);
        if (c->table)
            req.table = c->table;
        script sc = plain(f);
        sc.fail_at = c->fail_at;
        sc.fail_code = c->code;
        sc.fail_kind = c->kind;
        json_t *before_m = lh_catalog_get(f->cat, "people", NULL);
        char *before = snapshot(f);
        lh_error err;
        json_t *res = NULL;
        int rc = run(f, &req, &sc, &res, &err);
        if (rc != c->code)
            fail_msg("%s: rc %d (%s), expected %d", c->what, rc, err.message, c->code);
        assert_null(res);
        if (c->kind)
            assert_string_equal(lh_error_kind(&err), c->kind);
        if (c->fail_at >= 0) {
            char want[64];
            snprintf(want, sizeof(want), "scripted failure at row %lld", (long long)c->fail_at + 1);
            assert_string_equal(err.message, want);
        }
        char *after = snapshot(f);
        if (strcmp(before, after) != 0)
            fail_msg("%s: the data folder changed:\n--- before\n%s--- after\n%s", c->what, before,
                     after);
        assert_false(lh_catalog_exists(f->cat, "fresh"));
        json_t *after_m = lh_catalog_get(f->cat, "people", NULL);
        assert_true(json_equal(before_m, after_m));
        json_decref(before_m);
        json_decref(after_m);
        free(before);
        free(after);
        assert_int_equal(query_int(f, "SELECT count(*) FROM people"), 5000);
    }
}

/* Checks done before any connection: exactly one of table/query and of dsn/source,
 * key needs a column, create over an existing dataset, append to a missing one. */
static void test_refused_requests(void **state)
{
    fx *f = *state;
    lh_db_ingest_request base = request("people", LH_MODE_CREATE);
    script ok = plain(f);
    json_decref(ok_run(f, &base, &ok));
    struct {
        const char *what;
        lh_db_ingest_request req;
        int code;
    } cases[] = {
        {"both table and query", request("x", LH_MODE_CREATE), LH_EINVAL},
        {"neither dsn nor source", request("x", LH_MODE_CREATE), LH_EINVAL},
        {"key without column", request("people", LH_MODE_APPEND), LH_EINVAL},
        {"bad dataset name", request("no/slash", LH_MODE_CREATE), LH_EINVAL},
        {"create over existing", request("people", LH_MODE_CREATE), LH_EEXISTS},
        {"append to missing", request("absent", LH_MODE_APPEND), LH_ENOTFOUND},
        {"upsert by a missing column", request("people", LH_MODE_APPEND), LH_EINVAL},
    };
    cases[0].req.query = "SELECT 1";
    cases[1].req.dsn = NULL;
    cases[2].req.key_column = "id";
    cases[6].req.incremental_column = "updated_at";
    cases[6].req.key_column = "nope";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *before = snapshot(f);
        script sc = plain(f);
        lh_error err;
        int rc = run(f, &cases[i].req, &sc, NULL, &err);
        if (rc != cases[i].code)
            fail_msg("%s: rc %d (%s), expected %d", cases[i].what, rc, err.message, cases[i].code);
        char *after = snapshot(f);
        assert_string_equal(before, after);
        free(before);
        free(after);
    }
}

/* Incremental: the same sync twice adds nothing; changed rows replace their old versions
 * by key; the watermark survives a file append in between. */
static void test_incremental_upsert(void **state)
{
    fx *f = *state;
    lh_db_ingest_request req = request("people", LH_MODE_CREATE);
    req.incremental_column = "updated_at";
    req.key_column = "id";
    script sc = plain(f);
    json_decref(ok_run(f, &req, &sc));
    json_t *m1 = lh_catalog_get(f->cat, "people", NULL);

    req.mode = LH_MODE_APPEND;
    json_t *res = ok_run(f, &req, &sc);
    assert_int_equal(lh_json_int(res, "rows", -1), 0);
    const json_t *w = json_object_get(res, "watermark");
    assert_string_equal(lh_json_str(w, "previous"), "1099");
    assert_string_equal(lh_json_str(w, "current"), "1099");
    json_decref(res);
    json_t *m2 = lh_catalog_get(f->cat, "people", NULL);
    assert_true(json_equal(m1, m2)); /* no new part, no version bump */
    json_decref(m2);

    /* A file append between two syncs keeps the watermark. */
    const char *csv = "id,name,updated_at,doc,score\n500,file-row,1,,0.5\n";
    lh_ingest_request fr = {.name = "people",
                            .format = LH_FILE_CSV,
                            .mode = LH_MODE_APPEND,
                            .header = -1,
                            .source = "more.csv",
                            .actor = "tester"};
    lh_error err;
    lh_upload *up = lh_upload_open(f->ing, LH_FILE_CSV, &err);
    assert_non_null(up);
    assert_int_equal(lh_upload_write(up, csv, strlen(csv), &err), 0);
    if (lh_ingest_upload(f->ing, up, &fr, NULL, &err) != 0)
        fail_msg("file append: %s", err.message);
    lh_upload_free(up);
    json_t *m3 = lh_catalog_get(f->cat, "people", NULL);
    assert_string_equal(lh_json_str(json_object_get(m3, "lineage"), "source_system"), "file");
    assert_string_equal(
        lh_json_str(json_object_get(json_object_get(m3, "lineage"), "watermark"), "value"), "1099");
    json_decref(m3);

    /* Rows 3, 4, 5 change and row 101 is new. */
    f->t.updated[2] = f->t.updated[3] = f->t.updated[4] = 2000;
    f->t.n = 101;
    f->t.updated[100] = 1500;
    res = ok_run(f, &req, &sc);
    assert_int_equal(lh_json_int(res, "rows", -1), 4);
    assert_int_equal(lh_json_int(res, "rows_superseded", -1), 3);
    assert_string_equal(lh_json_str(json_object_get(res, "watermark"), "current"), "2000");
    json_decref(res);
    json_t *m4 = lh_catalog_get(f->cat, "people", NULL);
    const json_t *l = json_object_get(m4, "lineage");
    assert_string_equal(lh_json_str(json_object_get(l, "watermark"), "value"), "2000");
    assert_string_equal(lh_json_str(l, "key"), "id");
    assert_int_equal(lh_json_int(m4, "version", 0), lh_json_int(m1, "version", 0) + 2);
    json_decref(m4);
    json_decref(m1);
    /* queries never see both versions */
    assert_int_equal(query_int(f, "SELECT count(*) FROM people"), 102);
    assert_int_equal(query_int(f, "SELECT count(*) FROM people WHERE id = 4"), 1);
    json_t *doc = user_query(f, "SELECT name FROM people WHERE id = 4");
    assert_string_equal(
        json_string_value(json_array_get(json_array_get(json_object_get(doc, "rows"), 0), 0)),
        "name-4-v2000");
    json_decref(doc);

    /* A different incremental column than the one the dataset keeps is refused. */
    req.incremental_column = "score";
    assert_int_equal(run(f, &req, &sc, NULL, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "updated_at"));
}

/* ---------------------------------------------------------------- cancel */

typedef struct job_ctx {
    fx *f;
    lh_db_ingest_request req;
    script *sc;
} job_ctx;

static int job_run(lh_job *job, void *ctx, lh_error *err)
{
    job_ctx *c = ctx;
    return lh_db_ingest_run_with(c->f->dbi, &c->req, "hr-db", scripted_open, c->sc, job, NULL, err);
}

/* A reader blocked on its "socket" is interrupted by the job's cancel: the job ends
 * cancelled, progress showed the rows so far, nothing is left. */
static void test_cancel_while_blocked(void **state)
{
    fx *f = *state;
    table_fill(&f->t, 20000);
    char *before = snapshot(f);
    script sc = plain(f);
    sc.block_at = 10000;
    job_ctx c = {.f = f, .req = request("people", LH_MODE_CREATE), .sc = &sc};
    char id[LH_JOB_ID_LEN + 1];
    lh_error err;
    assert_int_equal(lh_jobs_submit(f->jobs, "sync", "tester", job_run, NULL, &c, id, &err), 0);
    for (int i = 0; i < 30000 && !atomic_load(&sc.blocked); i++)
        usleep(1000);
    assert_true(atomic_load(&sc.blocked));
    json_t *j = lh_jobs_get(f->jobs, id, &err);
    assert_int_equal(lh_json_int(json_object_get(j, "progress"), "done", -1), 8192);
    json_decref(j);
    assert_int_equal(lh_jobs_cancel(f->jobs, id, "tester", &err), 0);
    const char *state_s = NULL;
    for (int i = 0; i < 30000; i++) {
        j = lh_jobs_get(f->jobs, id, &err);
        state_s = lh_json_str(j, "state");
        if (strcmp(state_s, "cancelled") == 0 || strcmp(state_s, "failed") == 0 ||
            strcmp(state_s, "succeeded") == 0)
            break;
        json_decref(j);
        j = NULL;
        usleep(1000);
    }
    assert_non_null(j);
    assert_string_equal(lh_json_str(j, "state"), "cancelled");
    json_decref(j);
    assert_true(atomic_load(&sc.interrupted));
    assert_false(lh_catalog_exists(f->cat, "people"));
    char *after = snapshot(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* ---------------------------------------------------------------- memory */

static long vm_hwm_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (fp && fgets(line, sizeof(line), fp))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (fp)
        fclose(fp);
    return kb;
}

/* 2M rows of ~150 bytes (~300 MB of values) stream with a peak that does not grow with
 * the table: the peak after 2M rows is within 64 MB of the peak after 200k rows (one row
 * group of this width is ~20 MB; buffering the table would take over 300 MB). The peak is
 * the process's VmHWM, or under ASan the live heap's peak while streaming (see LIVE_HEAP). */
static void test_bounded_memory(void **state)
{
    fx *f = *state;
    f->t.name_pad = 120;
    table_fill(&f->t, 200000);
    script sc = plain(f);
    lh_db_ingest_request req = request("small", LH_MODE_CREATE);
    json_decref(ok_run(f, &req, &sc));
    long small = sc.peak_live_kb >= 0 ? sc.peak_live_kb : vm_hwm_kb();
    table_fill(&f->t, 2000000);
    req.dataset = "big";
    sc = plain(f);
    int64_t t0 = lh_now_ms();
    json_t *res = ok_run(f, &req, &sc);
    int64_t ms = lh_now_ms() - t0;
    long big = sc.peak_live_kb >= 0 ? sc.peak_live_kb : vm_hwm_kb();
    assert_int_equal(lh_json_int(res, "rows", -1), 2000000);
    json_decref(res);
    print_message("%s after 200k rows: %ld MB, after 2M rows: %ld MB (2M rows in %lld ms; "
                  "process VmHWM %ld MB)\n",
                  sc.peak_live_kb >= 0 ? "live heap peak" : "VmHWM", small / 1024, big / 1024,
                  (long long)ms, vm_hwm_kb() / 1024);
    assert_true(big - small < 64 * 1024);
    assert_int_equal(query_int(f, "SELECT count(*) FROM big"), 2000000);
}

/* ---------------------------------------------------------------- real servers */

/* The throwaway servers of tests/dbservers.py (ctest runs this suite through it). A
 * missing DSN fails the case: it never skips. */
static const char *server_dsn(const char *var)
{
    const char *dsn = getenv(var);
    if (!dsn || !*dsn)
        fail_msg("%s is not set: run this suite through tests/dbservers.py (ctest does)", var);
    return dsn;
}

static void pg_sql(const char *dsn, const char *text)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to the test PostgreSQL: %s", PQerrorMessage(c));
    PGresult *res = PQexec(c, text);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s\n%.300s", PQerrorMessage(c), text);
    PQclear(res);
    PQfinish(c);
}

static void my_sql(const char *raw, const char *text)
{
    lh_dsn d = {0};
    lh_error err;
    if (lh_dsn_parse(LH_SOURCE_MYSQL, raw, &d, &err) != 0)
        fail_msg("LH_TEST_MYSQL_DSN: %s", err.message);
    MYSQL *m = mysql_init(NULL);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, d.host, d.user, d.password, d.database, (unsigned)d.port, NULL,
                            CLIENT_MULTI_STATEMENTS))
        fail_msg("cannot connect to the test MariaDB: %s", mysql_error(m));
    if (mysql_query(m, text) != 0)
        fail_msg("%s: %s", text, mysql_error(m));
    int more;
    do {
        MYSQL_RES *res = mysql_store_result(m);
        if (res)
            mysql_free_result(res);
        more = mysql_next_result(m);
        if (more > 0)
            fail_msg("%s: %s", text, mysql_error(m));
    } while (more == 0);
    mysql_close(m);
    lh_dsn_free(&d);
}

/* One server's round: create with a watermark, an update and an insert brought by an
 * upserting append, then the same append again adding nothing; every value as the source
 * has it, the watermark as text the server compares back. */
static void real_round(fx *f, lh_source_kind kind, const char *dsn,
                       void (*exec)(const char *dsn, const char *sql), const char *first_mark,
                       const char *second_mark)
{
    lh_db_ingest_request req = {.kind = kind,
                                .dsn = dsn,
                                .table = "lh_sync_people",
                                .dataset = "staff",
                                .mode = LH_MODE_CREATE,
                                .incremental_column = "updated_at",
                                .key_column = "id",
                                .actor = "tester"};
    lh_error err;
    json_t *res = NULL;
    if (lh_db_ingest_run(f->dbi, &req, NULL, &res, &err) != 0)
        fail_msg("create: %s", err.message);
    assert_int_equal(lh_json_int(res, "rows", -1), 3);
    assert_string_equal(lh_json_str(json_object_get(res, "watermark"), "current"), first_mark);
    json_decref(res);
    json_t *m = lh_catalog_get(f->cat, "staff", NULL);
    const json_t *l = json_object_get(m, "lineage");
    assert_string_equal(lh_json_str(l, "source_system"), lh_source_kind_name(kind));
    assert_non_null(strchr(lh_json_str(l, "source"), ':')); /* host:port/db */
    char *text = json_dumps(m, 0);
    lh_dsn d = {0};
    assert_int_equal(lh_dsn_parse(kind, dsn, &d, &err), 0);
    assert_null(strstr(text, d.password)); /* the password is nowhere in the manifest */
    lh_dsn_free(&d);
    free(text);
    json_decref(m);

    exec(dsn, "UPDATE lh_sync_people SET name = 'Grace B.', updated_at = '2024-02-01 10:00:00' "
              "WHERE id = 2; INSERT INTO lh_sync_people VALUES (4, 'Dennis', '2024-01-04 "
              "00:00:00', 4.25)");
    req.mode = LH_MODE_APPEND;
    if (lh_db_ingest_run(f->dbi, &req, NULL, &res, &err) != 0)
        fail_msg("append: %s", err.message);
    assert_int_equal(lh_json_int(res, "rows", -1), 2);
    assert_int_equal(lh_json_int(res, "rows_superseded", -1), 1);
    assert_string_equal(lh_json_str(json_object_get(res, "watermark"), "previous"), first_mark);
    assert_string_equal(lh_json_str(json_object_get(res, "watermark"), "current"), second_mark);
    json_decref(res);
    if (lh_db_ingest_run(f->dbi, &req, NULL, &res, &err) != 0)
        fail_msg("second append: %s", err.message);
    assert_int_equal(lh_json_int(res, "rows", -1), 0);
    json_decref(res);

    json_t *doc = user_query(f, "SELECT id, name, CAST(amount AS VARCHAR) FROM staff ORDER BY id");
    char *got = json_dumps(json_object_get(doc, "rows"), 0);
    assert_string_equal(got,
                        "[[1, \"Ada\", \"1.50\"], [2, \"Grace B.\", \"2.00\"], [3, \"Ümit 😀\", "
                        "null], [4, \"Dennis\", \"4.25\"]]");
    free(got);
    json_decref(doc);
}

static void test_real_postgres(void **state)
{
    fx *f = *state;
    const char *dsn = server_dsn("LH_TEST_PG_DSN");
    pg_sql(dsn, "DROP TABLE IF EXISTS lh_sync_people; CREATE TABLE lh_sync_people (id int "
                "PRIMARY KEY, name text, updated_at timestamp, amount numeric(12,2)); INSERT "
                "INTO lh_sync_people VALUES (1, 'Ada', '2024-01-01 00:00:00', 1.5), (2, "
                "'Grace', '2024-01-02 00:00:00', 2), (3, 'Ümit 😀', '2024-01-03 "
                "12:30:00.25', NULL)");
    real_round(f, LH_SOURCE_POSTGRES, dsn, pg_sql, "2024-01-03 12:30:00.25", "2024-02-01 10:00:00");
}

static void test_real_mysql(void **state)
{
    fx *f = *state;
    const char *dsn = server_dsn("LH_TEST_MYSQL_DSN");
    my_sql(dsn, "DROP TABLE IF EXISTS lh_sync_people; CREATE TABLE lh_sync_people (id int "
                "PRIMARY KEY, name varchar(100) CHARACTER SET utf8mb4, updated_at datetime(6), "
                "amount decimal(12,2)) DEFAULT CHARSET=utf8mb4; INSERT INTO lh_sync_people "
                "VALUES (1, 'Ada', '2024-01-01 00:00:00', 1.5), (2, 'Grace', '2024-01-02 "
                "00:00:00', 2), (3, 'Ümit 😀', '2024-01-03 12:30:00.25', NULL)");
    real_round(f, LH_SOURCE_MYSQL, dsn, my_sql, "2024-01-03 12:30:00.25", "2024-02-01 10:00:00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_values_and_lineage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_lineage_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_postgres, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_mysql, setup, teardown),
    };
    /* LH_TEST_FILTER=test_bounded_memory runs one case (cmocka's wildcard pattern). */
    if (getenv("LH_TEST_FILTER"))
        cmocka_set_test_filter(getenv("LH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
