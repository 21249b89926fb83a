/*
 * test_upsert.c: upserts (lh_catalog_commit.supersede_*) against the real query engine:
 * an append whose keys replace their old rows in the same commit (scoped tombstones), with
 * the deletion bitmaps and with the anti-join fallback; an erasure winning over an upsert
 * both ways; DELETE of a scoped tombstone; the listing, the journal's counts (never the
 * keys); a restart; compaction keeping each key's live rows; every write step of an upsert
 * commit failing once (the previous state stays queryable, also after a restart, and no
 * inactive entry survives); and queries running while many upserts land, which must never
 * see a key twice or not at all.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx {
    char *dir, *data;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    /* the dataset's extra column (a name that shadows the scan's file_index forces the
     * anti-join fallback instead of the bitmaps), or "" */
    const char *extra;
} fx;

static void fx_open(fx *f)
{
    lh_error err;
    f->st = lh_storage_open(f->data, &err);
    if (!f->st)
        fail_msg("lh_storage_open: %s", err.message);
    f->cat = lh_catalog_open(f->st, &err);
    if (!f->cat)
        fail_msg("lh_catalog_open: %s", err.message);
    f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err);
    if (!f->eng)
        fail_msg("lh_engine_open: %s", err.message);
}

static void fx_close(fx *f)
{
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
}

static fx *fx_new(const char *extra)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    f->dir = lh_test_tmpdir("upsert");
    f->data = lh_path_join(f->dir, "data");
    f->cfg.query_timeout_ms = 30000;
    f->cfg.query_default_rows = 1000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = 4;
    f->cfg.duckdb_threads = 1;
    f->cfg.duckdb_memory_mb = 256;
    f->extra = extra;
    fx_open(f);
    return f;
}

static void fx_reopen(fx *f)
{
    fx_close(f);
    fx_open(f);
}

static void fx_free(fx *f)
{
    fx_close(f);
    free(f->data);
    lh_test_rmdir(f->dir);
    free(f);
}

/* The rows of people: id VARCHAR 'p<n>' for n in [lo, hi], val = tag, plus the extra
 * column when there is one. Caller frees. */
static char *rows_sql(const fx *f, int lo, int hi, const char *tag)
{
    return lh_xasprintf("SELECT 'p' || lpad(i::VARCHAR, 2, '0') AS id, '%s' AS val%s FROM "
                        "range(%d, %d) t(i)",
                        tag, *f->extra ? ", 0::INTEGER AS file_index" : "", lo, hi + 1);
}

/* Writes a part with COPY and commits it to the bucket; *rows gets its row count. Caller
 * frees the key. */
static char *make_part(fx *f, const char *select, int64_t *rows)
{
    lh_error err;
    char hex[17];
    lh_random_hex(hex, 16);
    char *key = lh_xasprintf("datasets/people/t/part-%s.parquet", hex);
    char *staged = lh_storage_stage(f->st, "primary", key, &err);
    if (!staged)
        fail_msg("stage: %s", err.message);
    char *lit = lh_sql_literal(staged);
    char *sql = lh_xasprintf("COPY (%s) TO %s (FORMAT parquet)", select, lit);
    if (lh_engine_exec(f->eng, sql, rows, &err) != 0)
        fail_msg("%s: %s", sql, err.message);
    if (lh_storage_commit(f->st, "primary", staged, key, &err) != 0)
        fail_msg("commit: %s", err.message);
    free(sql);
    free(lit);
    free(staged);
    return key;
}

/* Commits the part key (rows [lo, hi]): create when the dataset is absent, else an append
 * superseding every id of the part. Returns the commit's rc. */
static int commit_part(fx *f, const char *key, int64_t rows, int lo, int hi, lh_error *err)
{
    json_t *schema = *f->extra ? json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type",
                                           "VARCHAR", "name", "val", "type", "VARCHAR", "name",
                                           "file_index", "type", "INTEGER")
                               : json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "VARCHAR",
                                           "name", "val", "type", "VARCHAR");
    bool create = !lh_catalog_exists(f->cat, "people");
    char **keys = lh_xcalloc((size_t)(hi - lo + 2), sizeof(char *));
    size_t n = 0;
    for (int i = lo; i <= hi; i++)
        keys[n++] = lh_xasprintf("p%02d", i);
    lh_catalog_commit c = {
        .name = "people",
        .bucket = "primary",
        .mode = create ? LH_MODE_CREATE : LH_MODE_APPEND,
        .part_key = key,
        .part_rows = rows,
        .part_bytes = lh_storage_size(f->st, "primary", key),
        .schema = schema,
        .compression = "zstd",
        .actor = "sync",
        .supersede_column = create ? NULL : "id",
        .supersede_keys = create ? NULL : keys,
        .n_supersede = create ? 0 : n,
    };
    int rc = lh_catalog_commit_ingest(f->cat, &c, NULL, err);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    json_decref(schema);
    return rc;
}

/* Writes rows [lo, hi] tagged tag as a part and commits it (commit_part). *key_out (if not
 * NULL) gets the part's key (caller frees), else the part is deleted on failure. */
static int commit_rows(fx *f, int lo, int hi, const char *tag, char **key_out, lh_error *err)
{
    char *select = rows_sql(f, lo, hi, tag);
    int64_t rows = 0;
    char *key = make_part(f, select, &rows);
    int rc = commit_part(f, key, rows, lo, hi, err);
    if (key_out) {
        *key_out = key;
    } else {
        lh_error derr;
        if (rc && !lh_error_event_not_recorded(err))
            lh_storage_delete(f->st, "primary", key, &derr);
        free(key);
    }
    free(select);
    return rc;
}

/* The one value the query returns (CSV, header cut), or NULL + err. Caller frees. */
static char *scalar(fx *f, const char *sql, lh_error *err)
{
    lh_query_opts o = {.format = LH_FORMAT_CSV, .max_rows = 10, .timeout_ms = 30000};
    lh_query *q = lh_query_start(f->eng, sql, &o, err);
    if (!q)
        return NULL;
    lh_buf b;
    lh_buf_init(&b);
    char buf[4096];
    ssize_t n;
    while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
        lh_buf_append(&b, buf, (size_t)n);
    lh_query_free(q);
    char *text = b.data ? b.data : lh_xstrdup("");
    char *nl = strchr(text, '\n');
    char *out = lh_xstrdup(nl ? nl + 1 : "");
    out[strcspn(out, "\r\n")] = '\0';
    free(text);
    return out;
}

/* "id=val ..." of every visible row, ordered. */
static char *state_of(fx *f)
{
    lh_error err;
    char *s =
        scalar(f, "SELECT string_agg(id || '=' || val, ' ' ORDER BY id, val) FROM people", &err);
    if (!s)
        fail_msg("query: %s", err.message);
    return s;
}

static void assert_state(fx *f, const char *want, const char *when)
{
    char *got = state_of(f);
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n  got  %s\n  want %s", when, got, want);
    free(got);
}

/* The expected state: ids lo..hi, each with the tag given by tag_of(i). */
static char *expect(int lo, int hi, const char *(*tag_of)(int, void *), void *ctx)
{
    lh_buf b;
    lh_buf_init(&b);
    for (int i = lo; i <= hi; i++) {
        const char *t = tag_of(i, ctx);
        if (t)
            lh_buf_printf(&b, "%sp%02d=%s", b.len ? " " : "", i, t);
    }
    return b.data ? b.data : lh_xstrdup("");
}

/* ---------------------------------------------------------------- the upsert rule */

static const char *tags_main(int i, void *ctx)
{
    int stage = *(int *)ctx;
    if (stage >= 3 && i == 4)
        return NULL; /* erased */
    if (stage >= 2 && i == 3)
        return "v2";
    if (i >= 3 && i <= 5 && stage >= 1)
        return "v1";
    if (i == 11)
        return stage >= 1 ? "v1" : NULL;
    return "v0";
}

static const json_t *entry_in(const json_t *listing, const char *key)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(listing, "tombstones"), i, e)
    {
        if (strcmp(lh_json_str(e, "key"), key) == 0)
            return e;
    }
    return NULL;
}

static void upsert_rule(const char *extra)
{
    fx *f = fx_new(extra);
    lh_error err;
    int stage = 0;
    char *want;
    assert_int_equal(commit_rows(f, 1, 10, "v0", NULL, &err), 0);

    /* p03..p05 change, p11 is new: one version of each, the newest */
    char *p1 = NULL;
    assert_int_equal(commit_rows(f, 3, 5, "v1", &p1, &err), 0);
    assert_int_equal(commit_rows(f, 11, 11, "v1", NULL, &err), 0);
    stage = 1;
    want = expect(1, 11, tags_main, &stage);
    assert_state(f, want, "after the first upserts");
    free(want);

    /* the listing shows the scoped entries with their live part and reason */
    json_t *list = lh_catalog_tombstones(f->cat, "people", &err);
    assert_non_null(list);
    assert_string_equal(lh_json_str(list, "key_column"), "id");
    const json_t *e3 = entry_in(list, "p03");
    assert_non_null(e3);
    assert_string_equal(lh_json_str(e3, "reason"), "superseded");
    assert_string_equal(lh_json_str(e3, "live_part"), p1);
    assert_string_equal(lh_json_str(e3, "actor"), "sync");
    assert_null(json_object_get(e3, "previous_part"));
    json_decref(list);

    /* the journal counts, never names, the superseded keys */
    int64_t next = 0;
    json_t *events = lh_catalog_events(f->cat, 0, 1000, &next);
    const json_t *last = json_array_get(events, json_array_size(events) - 2);
    assert_string_equal(lh_json_str(last, "action"), "dataset.appended");
    const json_t *sup = json_object_get(json_object_get(last, "details"), "superseded");
    assert_int_equal(lh_json_int(sup, "count", -1), 3);
    assert_string_equal(lh_json_str(sup, "key_column"), "id");
    char *dump = json_dumps(events, 0);
    assert_null(strstr(dump, "p03"));
    free(dump);
    json_decref(events);

    /* a second upsert of p03 moves its live part: the first upsert's row goes too */
    char *p2 = NULL;
    assert_int_equal(commit_rows(f, 3, 3, "v2", &p2, &err), 0);
    stage = 2;
    want = expect(1, 11, tags_main, &stage);
    assert_state(f, want, "after moving p03");
    free(want);
    list = lh_catalog_tombstones(f->cat, "people", &err);
    assert_string_equal(lh_json_str(entry_in(list, "p03"), "live_part"), p2);
    json_decref(list);

    /* an erasure wins over the upsert: p04 is gone from every part ... */
    char *k4[] = {"p04"};
    bool added[1];
    json_t *failures = json_array();
    lh_tombstone_req req = {.dataset = "people",
                            .key_column = "id",
                            .keys = k4,
                            .n = 1,
                            .actor = "dpo",
                            .reason = "art. 17"};
    assert_int_equal(lh_catalog_tombstone_add(f->cat, &req, NULL, added, failures, &err), 0);
    assert_true(added[0]);
    assert_int_equal(json_array_size(failures), 0);
    stage = 3;
    want = expect(1, 11, tags_main, &stage);
    assert_state(f, want, "after erasing p04");
    /* ... and an upsert that brings it back leaves it erased */
    assert_int_equal(commit_rows(f, 4, 4, "v9", NULL, &err), 0);
    assert_state(f, want, "after upserting the erased p04");
    list = lh_catalog_tombstones(f->cat, "people", &err);
    const json_t *e4 = entry_in(list, "p04");
    assert_string_equal(lh_json_str(e4, "reason"), "art. 17");
    assert_null(json_object_get(e4, "live_part"));
    json_decref(list);
    events = lh_catalog_events(f->cat, 0, 1000, &next);
    last = json_array_get(events, json_array_size(events) - 1);
    sup = json_object_get(json_object_get(last, "details"), "superseded");
    assert_int_equal(lh_json_int(sup, "count", -1), 0);
    assert_int_equal(lh_json_int(sup, "already_erased", -1), 1);
    json_decref(events);

    /* a restart serves the same rows */
    fx_reopen(f);
    assert_state(f, want, "after a restart");
    free(want);

    /* DELETE of a scoped tombstone shows the old rows again: p03 in all three versions */
    char *k3[] = {"p03"};
    size_t removed = 0;
    lh_tombstone_req rreq = {.dataset = "people", .keys = k3, .n = 1, .actor = "dpo"};
    assert_int_equal(lh_catalog_tombstone_remove(f->cat, &rreq, &removed, failures, &err), 0);
    assert_int_equal(removed, 1);
    char *before = state_of(f);
    assert_non_null(strstr(before, "p03=v0 p03=v1 p03=v2"));

    /* compaction keeps each key's live rows and clears the set */
    lh_compact_result res;
    assert_int_equal(lh_compact(f->eng, "people", "admin", NULL, &res, &err), 0);
    assert_true(res.tombstones_cleared);
    assert_state(f, before, "after the compaction");
    char *raw = scalar(f, "SELECT count(*) FROM __raw__people", &err);
    assert_non_null(raw);
    assert_string_equal(raw, "12"); /* 11 ids, p04 erased, p03 three times */
    free(raw);
    list = lh_catalog_tombstones(f->cat, "people", &err);
    assert_int_equal(json_array_size(json_object_get(list, "tombstones")), 0);
    json_decref(list);
    fx_reopen(f);
    assert_state(f, before, "after the compaction and a restart");
    free(before);

    json_decref(failures);
    free(p1);
    free(p2);
    fx_free(f);
}

static void test_upsert_with_bitmaps(void **state)
{
    (void)state;
    upsert_rule("");
}

static void test_upsert_with_the_antijoin(void **state)
{
    (void)state;
    upsert_rule("file_index"); /* a column that shadows the scan's: no bitmaps */
}

/* Compaction while a plain append brought an old key back: the entry's live part moves to
 * the merged part, so the appended row stays hidden; and a wrong key column is refused. */
static void test_upsert_rules_around(void **state)
{
    (void)state;
    fx *f = fx_new("");
    lh_error err;
    assert_int_equal(commit_rows(f, 1, 4, "v0", NULL, &err), 0);
    assert_int_equal(commit_rows(f, 2, 2, "v1", NULL, &err), 0);
    assert_state(f, "p01=v0 p02=v1 p03=v0 p04=v0", "upserted");

    /* a plain append of p02 (no supersede): hidden, p02's live part is the upsert's */
    char *select = rows_sql(f, 2, 2, "stale");
    int64_t rows = 0;
    char *key = make_part(f, select, &rows);
    json_t *schema = json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "VARCHAR", "name",
                               "val", "type", "VARCHAR");
    json_t *m = lh_catalog_get(f->cat, "people", &err);
    lh_catalog_commit c = {.name = "people",
                           .bucket = "primary",
                           .mode = LH_MODE_APPEND,
                           .part_key = key,
                           .part_rows = rows,
                           .part_bytes = lh_storage_size(f->st, "primary", key),
                           .schema = schema,
                           .actor = "t"};
    assert_int_equal(lh_catalog_commit_ingest(f->cat, &c, NULL, &err), 0);
    assert_state(f, "p01=v0 p02=v1 p03=v0 p04=v0", "after a plain append");

    /* the compaction commit as if that append had landed while it ran: rebased, tombstones
     * kept, and p02's entry now lives in the merged part */
    const json_t *files = json_object_get(m, "files");
    char *replaced[2] = {(char *)lh_json_str(json_array_get(files, 0), "key"),
                         (char *)lh_json_str(json_array_get(files, 1), "key")};
    char *merged_select = lh_xstrdup("SELECT * FROM (VALUES ('p01', 'v0'), ('p02', 'v1'), "
                                     "('p03', 'v0'), ('p04', 'v0')) t(id, val)");
    int64_t mrows = 0;
    char *merged = make_part(f, merged_select, &mrows);
    char *applied[] = {"p02"};
    char *applied_live[] = {replaced[1]};
    lh_catalog_compaction cc = {.name = "people",
                                .expected_id = lh_json_str(m, "id"),
                                .replaced = replaced,
                                .n_replaced = 2,
                                .part_key = merged,
                                .part_rows = mrows,
                                .part_bytes = lh_storage_size(f->st, "primary", merged),
                                .applied = applied,
                                .applied_live = applied_live,
                                .n_applied = 1,
                                .actor = "admin"};
    bool cleared = true;
    assert_int_equal(lh_catalog_commit_compaction(f->cat, &cc, &cleared, &err), 0);
    assert_false(cleared); /* an append landed meanwhile */
    assert_state(f, "p01=v0 p02=v1 p03=v0 p04=v0", "after a rebased compaction");
    json_t *list = lh_catalog_tombstones(f->cat, "people", &err);
    assert_string_equal(lh_json_str(entry_in(list, "p02"), "live_part"), merged);
    json_decref(list);
    fx_reopen(f);
    assert_state(f, "p01=v0 p02=v1 p03=v0 p04=v0", "after a restart");

    /* another key column: a conflict naming the first; not a key type: refused */
    char *k[] = {"v0"};
    lh_catalog_commit bad = c;
    char *key2 = make_part(f, select, &rows);
    bad.part_key = key2;
    bad.supersede_column = "val";
    bad.supersede_keys = k;
    bad.n_supersede = 1;
    assert_int_equal(lh_catalog_commit_ingest(f->cat, &bad, NULL, &err), LH_ECONFLICT);
    assert_non_null(strstr(err.message, "'id'"));
    bad.supersede_column = "id"; /* only an append supersedes */
    bad.mode = LH_MODE_REPLACE;
    assert_int_equal(lh_catalog_commit_ingest(f->cat, &bad, NULL, &err), LH_EINVAL);
    assert_state(f, "p01=v0 p02=v1 p03=v0 p04=v0", "after refused upserts");

    json_decref(m);
    json_decref(schema);
    free(select);
    free(key);
    free(key2);
    free(merged_select);
    free(merged);
    fx_free(f);
}

/* ---------------------------------------------------------------- failures */

#ifdef LH_FAULT_INJECTION
static const char *tags_fault(int i, void *ctx)
{
    bool done = *(bool *)ctx;
    if (done && i >= 3)
        return "v2";
    if (i == 6)
        return NULL;
    return i == 2 || i == 3 ? "v1" : "v0";
}

/* One failing step of an upsert (p03 moved again, p06 new). False when the commit made
 * fewer than nth calls of op. */
static bool upsert_fails_once(lh_fault_op op, unsigned nth)
{
    fx *f = fx_new("");
    lh_error err;
    assert_int_equal(commit_rows(f, 1, 5, "v0", NULL, &err), 0);
    assert_int_equal(commit_rows(f, 2, 3, "v1", NULL, &err), 0);
    char *select = rows_sql(f, 3, 6, "v2");
    int64_t rows = 0;
    char *part = make_part(f, select, &rows);
    free(select);
    lh_fault_arm(op, nth, 1, EIO);
    int rc = commit_part(f, part, rows, 3, 6, &err);
    bool fired = lh_fault_fired() > 0;
    lh_fault_reset();
    bool done = rc == 0 || lh_error_event_not_recorded(&err);
    if (!done)
        lh_storage_delete(f->st, "primary", part, &err); /* the caller's side of a failure */
    char *want = expect(1, 6, tags_fault, &done);
    char *what = lh_xasprintf("fault %d #%u (rc %d)", op, nth, rc);
    assert_state(f, want, what);
    json_t *m = lh_catalog_get(f->cat, "people", &err);
    char *mtext = json_dumps(m, 0);
    if (!done && strstr(mtext, part))
        fail_msg("%s: the manifest references the failed part", what);
    fx_reopen(f);
    assert_state(f, want, what);
    /* no entry left pointing at a part the manifest does not list */
    char *text = NULL;
    size_t len = 0;
    if (lh_storage_get(f->st, "primary", "_catalog/tombstones/people.json", 1 << 20, &text, &len,
                       &err) == 0) {
        if (!done && strstr(text, part))
            fail_msg("%s: the set still names the failed part after a restart", what);
        free(text);
    }
    free(mtext);
    json_decref(m);
    free(what);
    free(want);
    free(part);
    fx_free(f);
    return fired;
}

static void test_upsert_every_step_may_fail(void **state)
{
    (void)state;
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE, LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR};
    int cases = 0;
    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++)
        for (unsigned nth = 1; nth < 12 && upsert_fails_once(ops[o], nth); nth++)
            cases++;
    print_message("%d failed steps checked\n", cases);
    assert_true(cases >= 10);
}
#endif

/* ---------------------------------------------------------------- concurrency */

#define CONC_KEYS 40
#define CONC_UPSERTS 24

typedef struct conc {
    fx *f;
    volatile int done;
    int failed;
    char why[1200];
} conc;

static void *upserter(void *arg)
{
    conc *c = arg;
    for (int i = 0; i < CONC_UPSERTS && !c->failed; i++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "u%d", i);
        /* overlapping windows: some keys move, some stay, all stay unique */
        int lo = 1 + (i * 7) % (CONC_KEYS - 10);
        lh_error err;
        if (commit_rows(c->f, lo, lo + 9, tag, NULL, &err) != 0) {
            snprintf(c->why, sizeof(c->why), "upsert %d: %s", i, err.message);
            c->failed = 1;
        }
    }
    c->done = 1;
    return NULL;
}

static void test_queries_during_upserts(void **state)
{
    (void)state;
    fx *f = fx_new("");
    lh_error err;
    assert_int_equal(commit_rows(f, 1, CONC_KEYS, "v0", NULL, &err), 0);
    conc c = {.f = f};
    pthread_t t;
    pthread_create(&t, NULL, upserter, &c);
    int queries = 0;
    char want[32];
    snprintf(want, sizeof(want), "%d/%d", CONC_KEYS, CONC_KEYS);
    while (!c.done) {
        char *got = scalar(f, "SELECT count(*) || '/' || count(DISTINCT id) FROM people", &err);
        if (!got)
            fail_msg("query: %s", err.message);
        if (strcmp(got, want) != 0)
            fail_msg("query %d saw %s (want %s): a key twice or not at all", queries, got, want);
        free(got);
        queries++;
    }
    pthread_join(t, NULL);
    if (c.failed)
        fail_msg("%s", c.why);
    print_message("%d queries during %d upserts\n", queries, CONC_UPSERTS);
    assert_true(queries > 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_with_bitmaps),
        cmocka_unit_test(test_upsert_with_the_antijoin),
        cmocka_unit_test(test_upsert_rules_around),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test(test_upsert_every_step_may_fail),
#endif
        cmocka_unit_test(test_queries_during_upserts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
