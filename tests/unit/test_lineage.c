/*
 * test_lineage.c: access auditing, the engine's side (lineage.c, result.c): classification
 * of what a statement returns of subject relations (ROWS / AGGREGATE / UNATTRIBUTED /
 * NONE) over a real engine, the hidden key column never rendered in any format, the keys
 * reported to the sink matching the rows handed out (across chunks and the row cap), the
 * sink's failures before the first byte and mid-stream, agents' refusals, admins
 * unchanged, tombstoned rows never reported, and the companions unreachable from user SQL.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "query/query_internal.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct fx {
    char *dir, *data;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
} fx;

#define PEOPLE_ROWS 3000

/* A dataset `name` holding the rows of select, with schema cols ("name TYPE" pairs). */
static void commit_dataset(fx *f, const char *name, const char *select, json_t *schema)
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

static void patch(fx *f, const char *name, const char *patch_text)
{
    lh_error err;
    json_t *p = json_loads(patch_text, 0, NULL);
    assert_non_null(p);
    if (lh_catalog_patch_metadata(f->cat, name, p, "test", NULL, &err) != 0)
        fail_msg("patch %s: %s", name, err.message);
    json_decref(p);
}

static void view(fx *f, const char *spec_text)
{
    lh_error err;
    json_t *spec = json_loads(spec_text, 0, NULL);
    assert_non_null(spec);
    if (lh_catalog_view_create(f->cat, spec, "test", NULL, &err) != 0)
        fail_msg("view %s: %s", spec_text, err.message);
    json_decref(spec);
}

static int setup(void **state)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    lh_error err;
    f->dir = lh_test_tmpdir("lineage");
    f->data = lh_path_join(f->dir, "data");
    f->cfg.query_timeout_ms = 30000;
    f->cfg.query_default_rows = 100000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = 4;
    f->cfg.duckdb_threads = 1;
    f->cfg.duckdb_memory_mb = 256;
    f->st = lh_storage_open(f->data, &err);
    assert_non_null(f->st);
    f->cat = lh_catalog_open(f->st, &err);
    assert_non_null(f->cat);
    f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err);
    if (!f->eng)
        fail_msg("engine: %s", err.message);
    commit_dataset(f, "people",
                   "SELECT 'C' || range AS candidate_id, 'e' || range || '@x.org' AS email, "
                   "'d' || (range % 5) AS dept, range * 10 AS salary FROM range("
                   "3000"
                   ")",
                   json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "candidate_id",
                             "type", "VARCHAR", "name", "email", "type", "VARCHAR", "name", "dept",
                             "type", "VARCHAR", "name", "salary", "type", "BIGINT"));
    commit_dataset(f, "applications",
                   "SELECT range AS app_id, 'C' || (range % 7) AS candidate_id, 'r' || range AS "
                   "role FROM range(20)",
                   json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "app_id", "type", "BIGINT",
                             "name", "candidate_id", "type", "VARCHAR", "name", "role", "type",
                             "VARCHAR"));
    commit_dataset(f, "orders",
                   "SELECT range AS id, 'C' || range AS cid, range * 2 AS total FROM range(10)",
                   json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "BIGINT",
                             "name", "cid", "type", "VARCHAR", "name", "total", "type", "BIGINT"));
    patch(f, "people",
          "{\"subject_key_column\":\"candidate_id\",\"columns\":{\"email\":{\"is_pii\":true},"
          "\"dept\":{\"is_pii\":false},\"salary\":{\"is_pii\":false}}}");
    patch(f, "applications", "{\"subject_key_column\":\"candidate_id\"}");
    view(f, "{\"name\":\"pv_hash\",\"base_dataset\":\"people\",\"columns\":[\"candidate_id\","
            "\"email\",\"dept\"],\"column_redactions\":{\"candidate_id\":{\"kind\":\"hash\"}}}");
    view(f, "{\"name\":\"pv_mask\",\"base_dataset\":\"people\",\"columns\":[\"candidate_id\","
            "\"dept\"],\"column_redactions\":{\"candidate_id\":{\"kind\":\"mask\","
            "\"keep_prefix\":1,\"keep_suffix\":0}}}");
    view(f, "{\"name\":\"pv_nokey\",\"base_dataset\":\"people\",\"columns\":[\"email\","
            "\"dept\"],\"row_filter\":\"dept = 'd1'\"}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
    free(f->data);
    lh_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- policies and the sink */

static lh_rel_access read_all(void *ctx, const char *relation)
{
    fx *f = ctx;
    return lh_catalog_relation_kind(f->cat, relation) != LH_RELATION_NONE ? LH_REL_ALLOW
                                                                          : LH_REL_DENY;
}

static lh_sql_policy policy_of(fx *f, bool audited, bool agent, const char *identity)
{
    return (lh_sql_policy){
        .may_read = read_all, .ctx = f, .identity = identity, .audited = audited, .agent = agent};
}

typedef struct sink_state {
    json_t *keys; /* every key reported, in order */
    json_t *fields;
    int calls;
    int fail_at; /* the call (1-based) that fails with LH_EIO; 0: never */
} sink_state;

static int test_sink(void *ctx, const char *const *keys, size_t n, const char *const *fields,
                     size_t nf, lh_error *err)
{
    sink_state *s = ctx;
    s->calls++;
    if (s->fail_at && s->calls >= s->fail_at)
        return lh_error_setk(err, LH_EIO, "audit_write_failed", "the audit log is unwritable");
    for (size_t i = 0; i < n; i++)
        json_array_append_new(s->keys, json_string(keys[i]));
    json_array_clear(s->fields);
    for (size_t i = 0; i < nf; i++)
        json_array_append_new(s->fields, json_string(fields[i]));
    return 0;
}

static void sink_init(sink_state *s)
{
    memset(s, 0, sizeof(*s));
    s->keys = json_array();
    s->fields = json_array();
}

static void sink_free(sink_state *s)
{
    json_decref(s->keys);
    json_decref(s->fields);
}

typedef struct outcome {
    int rc;
    lh_error err;
    lh_subject_access access; /* datasets joined into ds */
    char ds[256];
    char *out;
    int64_t rows;
} outcome;

/* Runs sql to the end with the policy and sink; the output in o->out (caller frees). */
static void run_q(fx *f, const char *sql, const lh_sql_policy *p, sink_state *s,
                  lh_result_format fmt, int64_t max_rows, outcome *o)
{
    memset(o, 0, sizeof(*o));
    lh_query_opts opts = {.format = fmt,
                          .max_rows = max_rows,
                          .timeout_ms = 30000,
                          .policy = p,
                          .sink = s ? test_sink : NULL,
                          .sink_ctx = s};
    lh_query *q = lh_query_open(f->eng, &opts, &o->err);
    assert_non_null(q);
    o->rc = lh_query_run(q, sql, &opts, &o->err);
    if (o->rc == 0) {
        o->access = *lh_query_access(q);
        for (char **d = o->access.datasets; d && *d; d++)
            snprintf(o->ds + strlen(o->ds), sizeof(o->ds) - strlen(o->ds), "%s%s",
                     d == o->access.datasets ? "" : ",", *d);
        o->access.datasets = NULL;
        lh_buf b;
        lh_buf_init(&b);
        char buf[4096];
        ssize_t n;
        while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
            lh_buf_append(&b, buf, (size_t)n);
        o->out = b.data ? b.data : lh_xstrdup("");
        o->rows = lh_query_row_count(q);
    }
    lh_query_free(q);
}

/* ---------------------------------------------------------------- classification */

typedef struct class_case {
    const char *sql;
    lh_access_kind kind;
    int key_visible; /* -1: not checked */
    const char *datasets;
} class_case;

static const class_case class_cases[] = {
    /* plain selects */
    {"SELECT candidate_id, email FROM people", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT email FROM people", LH_ACCESS_ROWS, 0, "people"},
    {"SELECT * FROM people", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT p.* FROM people p", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT * EXCLUDE (candidate_id) FROM people", LH_ACCESS_ROWS, 0, "people"},
    {"SELECT p.candidate_id AS who, p.email FROM people AS p", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT people.email FROM people WHERE people.dept = 'd1'", LH_ACCESS_ROWS, 0, "people"},
    /* joins */
    {"SELECT p.candidate_id, a.role FROM people p JOIN applications a USING (candidate_id)",
     LH_ACCESS_ROWS, 1, "applications,people"},
    {"SELECT a.email, b.email FROM people a JOIN people b ON a.dept = b.dept AND a.candidate_id "
     "< 'C10' AND b.candidate_id < 'C10'",
     LH_ACCESS_ROWS, 0, "people"},
    {"SELECT o.total, p.candidate_id FROM orders o LEFT JOIN people p ON p.candidate_id = o.cid",
     LH_ACCESS_ROWS, 1, "people"},
    /* subquery and CTE carriers */
    {"SELECT t.email FROM (SELECT email, dept FROM people) t", LH_ACCESS_ROWS, 0, "people"},
    {"SELECT * FROM (SELECT candidate_id, email FROM people) t", LH_ACCESS_ROWS, 1, "people"},
    {"WITH c AS (SELECT candidate_id AS cid, email FROM people) SELECT cid FROM c", LH_ACCESS_ROWS,
     1, "people"},
    {"WITH c AS (SELECT * FROM people), d AS (SELECT * FROM c WHERE dept = 'd2') SELECT email "
     "FROM d",
     LH_ACCESS_ROWS, 0, "people"},
    {"SELECT email FROM people NATURAL JOIN applications", LH_ACCESS_UNATTRIBUTED, -1,
     "applications,people"},
    /* a LATERAL copy of a column is not traced as the key: conservative key_visible */
    {"SELECT t.x FROM people p, LATERAL (SELECT p.candidate_id AS x) t", LH_ACCESS_ROWS, 0,
     "people"},
    {"WITH c AS (SELECT * FROM people) SELECT c.*, x.n FROM c JOIN (SELECT dept, count(*) AS n "
     "FROM c GROUP BY dept) x USING (dept)",
     LH_ACCESS_ROWS, 1, "people"},
    {"WITH c AS (SELECT * FROM people) SELECT DISTINCT * FROM c", LH_ACCESS_AGGREGATE, -1,
     "people"},
    /* a materialized CTE (DuckDB's CTE_NODE) is not traced */
    {"WITH c AS MATERIALIZED (SELECT * FROM people) SELECT email FROM c", LH_ACCESS_UNATTRIBUTED,
     -1, "people"},
    {"WITH c AS MATERIALIZED (SELECT * FROM orders) SELECT id FROM c", LH_ACCESS_NONE, -1, ""},
    /* grouped */
    {"SELECT candidate_id, count(*) FROM applications GROUP BY candidate_id", LH_ACCESS_ROWS, 1,
     "applications"},
    {"SELECT candidate_id, count(*) FROM applications GROUP BY 1", LH_ACCESS_ROWS, 1,
     "applications"},
    {"SELECT candidate_id, count(*) FROM applications GROUP BY ALL", LH_ACCESS_ROWS, 1,
     "applications"},
    {"SELECT count(*) FROM people", LH_ACCESS_AGGREGATE, -1, "people"},
    {"SELECT dept, avg(salary) FROM people GROUP BY dept", LH_ACCESS_AGGREGATE, -1, "people"},
    {"SELECT DISTINCT dept FROM people", LH_ACCESS_AGGREGATE, -1, "people"},
    {"SELECT DISTINCT candidate_id FROM applications", LH_ACCESS_ROWS, 1, "applications"},
    {"SELECT DISTINCT candidate_id FROM pv_mask", LH_ACCESS_AGGREGATE, -1, "people"},
    /* set operations and expressions */
    {"SELECT email FROM people UNION SELECT role FROM applications", LH_ACCESS_UNATTRIBUTED, -1,
     "applications,people"},
    {"SELECT id FROM orders UNION ALL SELECT app_id FROM applications", LH_ACCESS_UNATTRIBUTED, -1,
     "applications"},
    {"SELECT count(*) FROM (SELECT email FROM people UNION ALL SELECT role FROM applications)",
     LH_ACCESS_AGGREGATE, -1, "applications,people"},
    {"SELECT id, total FROM orders WHERE cid IN (SELECT candidate_id FROM people)",
     LH_ACCESS_AGGREGATE, -1, "people"},
    {"SELECT id, (SELECT email FROM people WHERE candidate_id = o.cid) FROM orders o",
     LH_ACCESS_UNATTRIBUTED, -1, "people"},
    {"SELECT id, (SELECT count(*) FROM people WHERE candidate_id = o.cid) FROM orders o",
     LH_ACCESS_AGGREGATE, -1, "people"},
    /* window, order, limit */
    {"SELECT candidate_id, rank() OVER (PARTITION BY dept ORDER BY salary) FROM people",
     LH_ACCESS_ROWS, 1, "people"},
    {"SELECT candidate_id, lag(email) OVER (ORDER BY candidate_id) FROM people",
     LH_ACCESS_UNATTRIBUTED, -1, "people"},
    {"SELECT candidate_id, max(email) OVER (PARTITION BY dept) FROM people", LH_ACCESS_UNATTRIBUTED,
     -1, "people"},
    {"SELECT candidate_id, count(*) OVER (PARTITION BY dept) FROM people", LH_ACCESS_ROWS, 1,
     "people"},
    {"SELECT candidate_id, email FROM people ORDER BY 2 DESC LIMIT 3", LH_ACCESS_ROWS, 1, "people"},
    /* views */
    {"SELECT candidate_id, email FROM pv_hash", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT * FROM pv_mask", LH_ACCESS_ROWS, 1, "people"},
    {"SELECT dept FROM pv_mask", LH_ACCESS_ROWS, 0, "people"},
    {"SELECT * FROM pv_nokey", LH_ACCESS_ROWS, 0, "people"},
    {"SELECT count(*) FROM pv_nokey", LH_ACCESS_AGGREGATE, -1, "people"},
    /* no subject relation */
    {"SELECT * FROM orders", LH_ACCESS_NONE, -1, ""},
    {"SELECT 1 AS x", LH_ACCESS_NONE, -1, ""},
};

static void test_classification(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    for (size_t i = 0; i < sizeof(class_cases) / sizeof(class_cases[0]); i++) {
        const class_case *c = &class_cases[i];
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, c->sql, &p, &s, LH_FORMAT_JSON, 100000, &o);
        if (o.rc != 0)
            fail_msg("%s: %s", c->sql, o.err.message);
        if (o.access.kind != c->kind)
            fail_msg("%s: kind %d, want %d (%s)", c->sql, o.access.kind, c->kind, o.access.reason);
        if (c->key_visible >= 0 && o.access.key_visible != (bool)c->key_visible)
            fail_msg("%s: key_visible %d", c->sql, o.access.key_visible);
        if (strcmp(o.ds, c->datasets) != 0)
            fail_msg("%s: datasets '%s', want '%s'", c->sql, o.ds, c->datasets);
        assert_int_equal(strlen(o.access.fingerprint), 64);
        if (c->kind == LH_ACCESS_UNATTRIBUTED)
            assert_true(o.access.reason[0] != '\0');
        /* the hidden column is never rendered, and only ROWS queries report keys */
        if (strstr(o.out, "__lh"))
            fail_msg("%s: hidden column rendered: %.300s", c->sql, o.out);
        if (c->kind != LH_ACCESS_ROWS)
            assert_int_equal(s.calls, 0);
        else if (o.rows > 0)
            assert_true(json_array_size(s.keys) > 0);
        free(o.out);
        sink_free(&s);
    }
}

/* The fingerprint is the SHA-256 of the text as sent. */
static void test_fingerprint(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    outcome o;
    run_q(f, "SELECT count(*) FROM people", &p, NULL, LH_FORMAT_JSON, 10, &o);
    assert_int_equal(o.rc, 0);
    char want[65];
    lh_sql_fingerprint("SELECT count(*) FROM people", want);
    assert_string_equal(o.access.fingerprint, want);
    /* known answer: sha256("abc") */
    lh_sql_fingerprint("abc", want);
    assert_string_equal(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(o.out);
}

/* ---------------------------------------------------------------- keys and rendering */

/* The keys reported are exactly the distinct candidate_ids of the rows handed out. */
static void expect_keys_match(fx *f, const char *sql, int64_t cap, int64_t want_rows)
{
    lh_sql_policy p = policy_of(f, true, false, NULL);
    sink_state s;
    sink_init(&s);
    outcome o;
    run_q(f, sql, &p, &s, LH_FORMAT_JSON, cap, &o);
    if (o.rc != 0)
        fail_msg("%s: %s", sql, o.err.message);
    json_t *doc = json_loads(o.out, 0, NULL);
    assert_non_null(doc);
    json_t *rows = json_object_get(doc, "rows");
    assert_int_equal(json_array_size(rows), want_rows);
    json_t *want = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
        json_object_set_new(want, json_string_value(json_array_get(r, 0)), json_true());
    assert_int_equal(json_array_size(s.keys), json_object_size(want));
    json_array_foreach(s.keys, i, r) assert_non_null(json_object_get(want, json_string_value(r)));
    /* one column visible, named as selected; the fields are the visible names */
    assert_int_equal(json_array_size(json_object_get(doc, "columns")), 2);
    assert_string_equal(json_string_value(json_array_get(s.fields, 0)), "candidate_id");
    assert_int_equal(json_array_size(s.fields), 2);
    json_decref(want);
    json_decref(doc);
    free(o.out);
    sink_free(&s);
}

static void test_keys_match_rows(void **state)
{
    fx *f = *state;
    /* more than one chunk (2,048 rows) */
    expect_keys_match(f, "SELECT candidate_id, email FROM people", 100000, PEOPLE_ROWS);
    /* the row cap inside the second chunk: keys only of the rows handed out */
    expect_keys_match(f, "SELECT candidate_id, email FROM people", 2500, 2500);
    expect_keys_match(f, "SELECT candidate_id, email FROM people", 7, 7);
    /* a self-join reports each subject once */
    expect_keys_match(f,
                      "SELECT a.candidate_id, b.email FROM people a JOIN people b USING "
                      "(candidate_id) WHERE a.dept = 'd3'",
                      100000, PEOPLE_ROWS / 5);
}

/* Grouped by key: each group's subjects; a key seen twice is reported once. */
static void test_grouped_keys(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    sink_state s;
    sink_init(&s);
    outcome o;
    run_q(f,
          "SELECT a.candidate_id, count(*) AS n FROM applications a JOIN applications b USING "
          "(candidate_id) GROUP BY a.candidate_id ORDER BY 1",
          &p, &s, LH_FORMAT_JSON, 100000, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.access.kind, LH_ACCESS_ROWS);
    assert_int_equal(o.rows, 7);
    assert_int_equal(json_array_size(s.keys), 7);
    free(o.out);
    sink_free(&s);
}

/* The hidden column appears in no format: header, keys, values. */
static void test_hidden_in_every_format(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    const lh_result_format fmts[] = {LH_FORMAT_JSON, LH_FORMAT_CSV, LH_FORMAT_NDJSON};
    const char *sqls[] = {"SELECT * FROM people WHERE dept = 'd0' LIMIT 3",
                          "SELECT p.*, a.* FROM people p JOIN applications a USING (candidate_id)",
                          "SELECT * FROM pv_hash LIMIT 2", "SELECT * FROM pv_nokey LIMIT 2"};
    for (size_t k = 0; k < sizeof(sqls) / sizeof(sqls[0]); k++)
        for (size_t i = 0; i < 3; i++) {
            sink_state s;
            sink_init(&s);
            outcome o;
            run_q(f, sqls[k], &p, &s, fmts[i], 100, &o);
            if (o.rc != 0)
                fail_msg("%s: %s", sqls[k], o.err.message);
            if (strstr(o.out, "__lh") || strstr(o.out, "[C"))
                fail_msg("%s (format %zu): %.400s", sqls[k], i, o.out);
            assert_true(json_array_size(s.keys) > 0);
            free(o.out);
            sink_free(&s);
        }
    /* the visible columns are exactly the unaudited query's */
    lh_sql_policy admin = policy_of(f, false, false, NULL);
    outcome a, b;
    sink_state s;
    sink_init(&s);
    run_q(f, "SELECT * FROM people ORDER BY candidate_id LIMIT 5", &admin, NULL, LH_FORMAT_CSV, 100,
          &a);
    run_q(f, "SELECT * FROM people ORDER BY candidate_id LIMIT 5", &p, &s, LH_FORMAT_CSV, 100, &b);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_string_equal(a.out, b.out);
    assert_int_equal(a.access.kind, LH_ACCESS_NONE);
    free(a.out);
    free(b.out);
    sink_free(&s);
}

/* ---------------------------------------------------------------- sink failures */

static void test_sink_fails_first(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    sink_state s;
    sink_init(&s);
    s.fail_at = 1;
    lh_query_opts opts = {.format = LH_FORMAT_JSON,
                          .max_rows = 100,
                          .timeout_ms = 30000,
                          .policy = &p,
                          .sink = test_sink,
                          .sink_ctx = &s};
    lh_error err;
    lh_query *q = lh_query_open(f->eng, &opts, &err);
    assert_non_null(q);
    assert_int_equal(lh_query_run(q, "SELECT candidate_id FROM people", &opts, &err), LH_EIO);
    assert_string_equal(lh_error_kind(&err), "audit_write_failed");
    char buf[256];
    assert_true(lh_query_read_buffered(q, buf, sizeof(buf)) <= 0);
    lh_query_free(q);
    /* without a sink an audited ROWS query is refused; an aggregate runs */
    outcome o;
    run_q(f, "SELECT candidate_id FROM people", &p, NULL, LH_FORMAT_JSON, 10, &o);
    assert_int_equal(o.rc, LH_EUNAVAILABLE);
    assert_string_equal(lh_error_kind(&o.err), "audit_unavailable");
    run_q(f, "SELECT count(*) FROM people", &p, NULL, LH_FORMAT_JSON, 10, &o);
    assert_int_equal(o.rc, 0);
    free(o.out);
    sink_free(&s);
}

/* A failure on a later fill: the stream ends with the error trailer and no row of the failed
 * fill is handed out (JSON: the rows before it only; CSV: cut). */
static void test_sink_fails_later(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    const lh_result_format fmts[] = {LH_FORMAT_JSON, LH_FORMAT_NDJSON, LH_FORMAT_CSV};
    for (size_t k = 0; k < 3; k++) {
        sink_state s;
        sink_init(&s);
        s.fail_at = 2;
        lh_query_opts opts = {.format = fmts[k],
                              .max_rows = 100000,
                              .timeout_ms = 30000,
                              .policy = &p,
                              .sink = test_sink,
                              .sink_ctx = &s};
        lh_error err;
        lh_query *q = lh_query_open(f->eng, &opts, &err);
        assert_non_null(q);
        /* wide rows: one fill (LH_QUERY_OUT_BUDGET) holds part of the result */
        assert_int_equal(lh_query_run(q,
                                      "SELECT candidate_id, repeat(email, 200) AS e FROM people "
                                      "ORDER BY candidate_id",
                                      &opts, &err),
                         0);
        lh_buf b;
        lh_buf_init(&b);
        char buf[65536];
        ssize_t n;
        ssize_t last = 0;
        for (;;) {
            n = lh_query_read_buffered(q, buf, sizeof(buf));
            if (n == LH_QUERY_AGAIN) {
                lh_query_fill(q);
                continue;
            }
            if (n <= 0) {
                last = n;
                break;
            }
            lh_buf_append(&b, buf, (size_t)n);
        }
        assert_non_null(lh_query_error(q));
        assert_int_equal(lh_query_error(q)->code, LH_EIO);
        /* every candidate_id handed out was reported before it was */
        size_t reported = json_array_size(s.keys);
        assert_true(reported > 0 && reported < PEOPLE_ROWS);
        size_t seen = 0;
        for (const char *c = b.data; (c = strstr(c, "\"C")) || (fmts[k] == LH_FORMAT_CSV && 0); c++)
            seen++;
        if (fmts[k] == LH_FORMAT_CSV) {
            assert_int_equal(last, -1);
            size_t lines = 0;
            for (const char *c = b.data; *c; c++)
                lines += *c == '\n';
            assert_int_equal(lines - 1, reported); /* header + the reported rows */
        } else {
            assert_int_equal(seen, reported);
            assert_non_null(strstr(b.data, "audit_write_failed"));
        }
        if (fmts[k] == LH_FORMAT_JSON) {
            json_t *doc = json_loads(b.data, 0, NULL);
            assert_non_null(doc);
            assert_int_equal(json_integer_value(json_object_get(doc, "row_count")), reported);
            json_decref(doc);
        }
        lh_buf_free(&b);
        lh_query_free(q);
        sink_free(&s);
    }
}

/* ---------------------------------------------------------------- agents, admins */

static void test_agents(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, true, NULL);
    static const struct {
        const char *sql;
        int rc;
        const char *kind, *msg;
    } cases[] = {
        {"SELECT candidate_id, email FROM people", 0, NULL, NULL},
        {"SELECT email FROM people", LH_EFORBIDDEN, "unattributed_access",
         "select \"candidate_id\" of people"},
        {"SELECT email FROM pv_nokey", LH_EFORBIDDEN, "unattributed_access",
         "does not serve the subject key"},
        {"SELECT * FROM pv_hash LIMIT 1", 0, NULL, NULL},
        {"SELECT email FROM people UNION SELECT role FROM applications", LH_EFORBIDDEN,
         "unattributed_access", "set operation"},
        {"SELECT count(*), avg(salary) FROM people", 0, NULL, NULL},
        {"SELECT dept, count(*) FROM people GROUP BY dept", 0, NULL, NULL},
        {"SELECT email, count(*) FROM people GROUP BY email", LH_EFORBIDDEN, "sql_forbidden",
         "PII column 'email'"},
        {"SELECT DISTINCT email FROM people", LH_EFORBIDDEN, "sql_forbidden", "PII"},
        {"SELECT max(email) FROM people", LH_EFORBIDDEN, "sql_forbidden", "'max'"},
        {"SELECT list(email) FROM people", LH_EFORBIDDEN, "sql_forbidden", "'list'"},
        {"SELECT dept, string_agg(email, ',') FROM people GROUP BY dept", LH_EFORBIDDEN,
         "sql_forbidden", "string_agg"},
        {"SELECT candidate_id, list(role) FROM applications GROUP BY candidate_id", 0, NULL, NULL},
        {"SELECT max(total) FROM orders", 0, NULL, NULL},
        {"SELECT p FROM people p", LH_EFORBIDDEN, "sql_forbidden", "name the columns"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, cases[i].sql, &p, &s, LH_FORMAT_JSON, 5, &o);
        if (o.rc != cases[i].rc)
            fail_msg("%s: rc %d (%s)", cases[i].sql, o.rc, o.err.message);
        if (cases[i].kind) {
            assert_string_equal(lh_error_kind(&o.err), cases[i].kind);
            if (!strstr(o.err.message, cases[i].msg))
                fail_msg("%s: message '%s' lacks '%s'", cases[i].sql, o.err.message, cases[i].msg);
        }
        free(o.out);
        sink_free(&s);
    }
}

/* Whole-row references and COLUMNS patterns are refused for every audited caller. */
static void test_whole_row_refused(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, NULL);
    const char *sqls[] = {
        "SELECT people FROM people",
        "SELECT p FROM people p",
        "SELECT to_json(p) FROM people p",
        "SELECT struct_extract(p, 'email') FROM people p",
        "SELECT t FROM (SELECT * FROM people) t",
        "SELECT COLUMNS('.*') FROM people",
        "SELECT o.id, (SELECT p FROM people p LIMIT 1) FROM orders o",
    };
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
        outcome o;
        sink_state s;
        sink_init(&s);
        run_q(f, sqls[i], &p, &s, LH_FORMAT_JSON, 5, &o);
        if (o.rc != LH_EFORBIDDEN)
            fail_msg("%s: rc %d %s", sqls[i], o.rc, o.out ? o.out : o.err.message);
        free(o.out);
        sink_free(&s);
    }
    /* the same statement from an admin runs unchanged (no rewrite, no sink) */
    lh_sql_policy admin = policy_of(f, false, false, NULL);
    outcome o;
    run_q(f, "SELECT p FROM people p LIMIT 1", &admin, NULL, LH_FORMAT_JSON, 5, &o);
    assert_int_equal(o.rc, 0);
    assert_null(strstr(o.out, "__lh"));
    free(o.out);
}

/* The companions and their column: refused to every caller, admins included. */
static void test_companions_unreachable(void **state)
{
    fx *f = *state;
    lh_sql_policy audited = policy_of(f, true, false, NULL);
    lh_sql_policy admin = policy_of(f, false, false, NULL);
    admin.allow_raw = true;
    const char *sqls[] = {
        "SELECT * FROM __lhkey__people",
        "SELECT * FROM \"__LHKEY__PEOPLE\"",
        "SELECT __lh_key FROM people",
        "SELECT p.__lh_key FROM people p",
        "SELECT * EXCLUDE (__lh_key) FROM people",
        "SELECT * FROM __raw____lhkey__people",
        "SELECT * FROM __lhkey__pv_hash",
        "WITH __lhkey__x AS (SELECT 1) SELECT * FROM __lhkey__x",
        "SELECT email AS __lh_key FROM people",
        "SELECT * FROM people WHERE list_contains(__lh_key, 'C1')",
    };
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++)
        for (int a = 0; a < 2; a++) {
            outcome o;
            sink_state s;
            sink_init(&s);
            run_q(f, sqls[i], a ? &admin : &audited, &s, LH_FORMAT_JSON, 5, &o);
            if (o.rc != LH_EFORBIDDEN)
                fail_msg("%s (admin %d): rc %d %s", sqls[i], a, o.rc,
                         o.out ? o.out : o.err.message);
            free(o.out);
            sink_free(&s);
        }
}

/* ---------------------------------------------------------------- tombstones, caching */

static void test_tombstoned_never_reported(void **state)
{
    fx *f = *state;
    lh_error err;
    char *keys[] = {"C1", "C2"};
    lh_tombstone_req req = {
        .dataset = "people", .key_column = "candidate_id", .keys = keys, .n = 2, .actor = "test"};
    bool added[2] = {false, false};
    json_t *failures = json_array();
    if (lh_catalog_tombstone_add(f->cat, &req, NULL, added, failures, &err) != 0)
        fail_msg("tombstone: %s", err.message);
    json_decref(failures);
    lh_sql_policy p = policy_of(f, true, false, NULL);
    const char *sqls[] = {"SELECT email FROM people", "SELECT * FROM pv_hash",
                          "SELECT dept FROM pv_mask"};
    for (size_t i = 0; i < 3; i++) {
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, sqls[i], &p, &s, LH_FORMAT_JSON, 100000, &o);
        assert_int_equal(o.rc, 0);
        assert_int_equal(json_array_size(s.keys), PEOPLE_ROWS - 2);
        size_t k;
        json_t *v;
        json_array_foreach(s.keys, k, v)
        {
            assert_string_not_equal(json_string_value(v), "C1");
            assert_string_not_equal(json_string_value(v), "C2");
        }
        free(o.out);
        sink_free(&s);
    }
}

/* A cached verdict carries the classification and the rewrite; a change of the subject
 * key (a metadata edit) invalidates it. */
static void test_cached_verdict(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, "analyst");
    for (int round = 0; round < 2; round++) {
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, "SELECT email FROM orders o JOIN people p ON p.candidate_id = o.cid", &p, &s,
              LH_FORMAT_JSON, 100, &o);
        assert_int_equal(o.rc, 0);
        assert_int_equal(o.access.kind, LH_ACCESS_ROWS);
        assert_string_equal(o.ds, "people");
        assert_int_equal(json_array_size(s.keys), 10);
        free(o.out);
        sink_free(&s);
    }
    patch(f, "people", "{\"subject_key_column\":null}");
    sink_state s;
    sink_init(&s);
    outcome o;
    run_q(f, "SELECT email FROM orders o JOIN people p ON p.candidate_id = o.cid", &p, &s,
          LH_FORMAT_JSON, 100, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.access.kind, LH_ACCESS_NONE);
    assert_int_equal(s.calls, 0);
    free(o.out);
    sink_free(&s);
}

/* The inline start (verdict cache hit) never calls the sink on the caller's thread: an
 * audited ROWS query is handed to lh_query_run, which finishes the same execution and
 * audits its first rows; an aggregate still starts inline. */
static void test_inline_hands_off_rows(void **state)
{
    fx *f = *state;
    lh_sql_policy p = policy_of(f, true, false, "analyst");
    const char *rows_sql = "SELECT candidate_id FROM people WHERE dept = 'd4'";
    const char *agg_sql = "SELECT count(*) FROM people";
    for (int i = 0; i < 2; i++) { /* the first runs check and cache the verdicts */
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, i ? agg_sql : rows_sql, &p, &s, LH_FORMAT_JSON, 100000, &o);
        assert_int_equal(o.rc, 0);
        free(o.out);
        sink_free(&s);
    }
    sink_state s;
    sink_init(&s);
    lh_query_opts opts = {.format = LH_FORMAT_JSON,
                          .max_rows = 100000,
                          .timeout_ms = 30000,
                          .policy = &p,
                          .sink = test_sink,
                          .sink_ctx = &s};
    lh_error err;
    uint64_t handoffs = lh_query__inline_handoffs();
    lh_query *q = lh_query_open(f->eng, &opts, &err);
    assert_non_null(q);
    assert_int_equal(lh_query_run_inline(q, rows_sql, &opts, &err), LH_QUERY_PENDING);
    assert_int_equal(s.calls, 0);
    assert_true(lh_query__inline_handoffs() > handoffs);
    assert_int_equal(lh_query_run(q, rows_sql, &opts, &err), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(json_array_size(s.keys), PEOPLE_ROWS / 5);
    assert_int_equal(lh_query_access(q)->kind, LH_ACCESS_ROWS);
    lh_query_free(q);
    q = lh_query_open(f->eng, &opts, &err);
    assert_non_null(q);
    int rc = lh_query_run_inline(q, agg_sql, &opts, &err);
    if (rc == LH_QUERY_PENDING) /* the budget ran out on a loaded machine */
        rc = lh_query_run(q, agg_sql, &opts, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(lh_query_access(q)->kind, LH_ACCESS_AGGREGATE);
    assert_string_equal(lh_query_access(q)->datasets[0], "people");
    lh_query_free(q);
    assert_int_equal(s.calls, 1);
    sink_free(&s);
}

/* A new user database (a bucket added) re-creates the companions: audited reads still
 * carry their subjects, through datasets and views. */
static void test_new_generation_keeps_companions(void **state)
{
    fx *f = *state;
    lh_error err;
    uint64_t gen = lh_engine__user_generation(f->eng);
    char *root = lh_path_join(f->dir, "b2");
    if (lh_catalog_add_bucket(f->cat, "b2", root, &err) != 0)
        fail_msg("add bucket: %s", err.message);
    free(root);
    assert_true(lh_engine__user_generation(f->eng) != gen);
    lh_sql_policy p = policy_of(f, true, false, NULL);
    const char *sqls[] = {"SELECT email FROM people", "SELECT dept FROM pv_mask",
                          "SELECT role FROM applications"};
    const size_t want[] = {PEOPLE_ROWS, PEOPLE_ROWS, 7};
    for (size_t i = 0; i < 3; i++) {
        sink_state s;
        sink_init(&s);
        outcome o;
        run_q(f, sqls[i], &p, &s, LH_FORMAT_JSON, 100000, &o);
        if (o.rc != 0)
            fail_msg("%s: %s", sqls[i], o.err.message);
        assert_int_equal(o.access.kind, LH_ACCESS_ROWS);
        assert_int_equal(json_array_size(s.keys), want[i]);
        free(o.out);
        sink_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_match_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouped_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hidden_in_every_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_fails_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_fails_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_row_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_companions_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstoned_never_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cached_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_hands_off_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_generation_keeps_companions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
