/*
 * test_vectors.c: the vector index lifecycle (src/vector/vectors.c, store.c, build.c)
 * against the real query engine and the hash embedder: a small flat index built and its
 * files; definitions round-tripped through a reopen; the sweep of files no definition
 * names (and the files of an unreadable definition spared); stale marks from the catalog's
 * event tap; refresh delta counts with the embedder's calls counted; a purge that removes
 * vanished documents without embedding; and every file-system step of a build failing
 * once (fault hook): a failed build leaves no file and frees the name.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "ingest/ingest.h"
#include "query/query.h"
#include "storage/storage.h"
#include "vector/registry_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fx {
    char *dir, *data;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    lh_ingest *ing;
    lh_jobs *jobs;
    lh_vectors *v;
} fx;

static void fx_open(fx *f)
{
    lh_error err;
    if (!(f->st = lh_storage_open(f->data, &err)) || !(f->cat = lh_catalog_open(f->st, &err)) ||
        !(f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err)) ||
        !(f->ing = lh_ingest_open(f->st, f->cat, f->eng, &err)) ||
        !(f->jobs = lh_jobs_open(1, &err)))
        fail_msg("open: %s", err.message);
    lh_vectors_config vc = {
        .cfg = &f->cfg, .st = f->st, .cat = f->cat, .eng = f->eng, .jobs = f->jobs};
    if (!(f->v = lh_vectors_open(&vc, &err)))
        fail_msg("lh_vectors_open: %s", err.message);
}

static void fx_close(fx *f)
{
    lh_vectors_stop(f->v);
    lh_jobs_close(f->jobs);
    lh_vectors_close(f->v);
    lh_ingest_close(f->ing);
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
}

static fx *fx_new(void)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    f->dir = lh_test_tmpdir("vectors");
    f->data = lh_path_join(f->dir, "data");
    f->cfg.data_dir = f->data;
    f->cfg.job_threads = 1;
    f->cfg.query_timeout_ms = 30000;
    f->cfg.query_default_rows = 1000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = 4;
    f->cfg.duckdb_threads = 1;
    f->cfg.duckdb_memory_mb = 256;
    fx_open(f);
    return f;
}

static void fx_free(fx *f)
{
    fx_close(f);
    free(f->data);
    lh_test_rmdir(f->dir);
    free(f);
}

/* Ingests docs ids [lo, hi] (text tagged) into `docs` with mode. */
static void ingest(fx *f, int lo, int hi, const char *tag, lh_ingest_mode mode)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "id,body\n");
    for (int i = lo; i <= hi; i++)
        lh_buf_printf(&b, "d%03d,\"document %d %s about nurses and welders in city %d\"\n", i, i,
                      tag, i % 5);
    lh_error err;
    lh_ingest_request req = {.name = "docs",
                             .format = LH_FILE_CSV,
                             .mode = mode,
                             .header = -1,
                             .source = "test",
                             .actor = "tester"};
    lh_upload *up = lh_upload_open(f->ing, LH_FILE_CSV, &err);
    if (!up || lh_upload_write(up, b.data, b.len, &err) != 0 ||
        lh_ingest_upload(f->ing, up, &req, NULL, &err) != 0)
        fail_msg("ingest: %s", err.message);
    lh_upload_free(up);
    lh_buf_free(&b);
}

static json_t *spec(const char *name)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "name", name, "dataset", "docs",
                     "id_column", "id", "text_column", "body", "kind", "flat", "chunk_size", 40,
                     "overlap", 5, "dim", 64);
}

static int build(fx *f, const char *name, json_t **out, lh_error *err)
{
    json_t *s = spec(name);
    lh_vector_build *b = NULL;
    int rc = lh_vectors_prepare(f->v, s, "tester", &b, err);
    json_decref(s);
    if (rc)
        return rc;
    return lh_vectors_build(f->v, b, NULL, out, err);
}

/* Files of an index's data folder (sorted names, NULL-terminated), or NULL when none. */
static size_t folder_files(fx *f, const char *name, char names[][256], size_t cap)
{
    char *dir = lh_xasprintf("%s/datasets/docs/_vectors/%s", f->data, name);
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && n < cap)
            snprintf(names[n++], 256, "%s", e->d_name);
    if (d)
        closedir(d);
    free(dir);
    return n;
}

static void test_build_files_and_round_trip(void **state)
{
    (void)state;
    fx *f = fx_new();
    ingest(f, 1, 30, "v1", LH_MODE_CREATE);
    lh_error err;
    json_t *ix = NULL;
    if (build(f, "idx", &ix, &err) != 0)
        fail_msg("build: %s", err.message);
    assert_int_equal(lh_json_int(ix, "docs", 0), 30);
    assert_true(lh_json_int(ix, "chunks", 0) > 30); /* each text is longer than 40 chars */
    assert_string_equal(lh_json_str(ix, "state"), "ready");
    json_decref(ix);
    char names[16][256];
    size_t n = folder_files(f, "idx", names, 16);
    assert_int_equal(n, 2); /* one part, one ANN file */
    /* The definition names exactly those files; the warm load sees every chunk. */
    json_t *def = lh_vindex_def(f->v, "idx", &err);
    assert_non_null(def);
    assert_int_equal(json_array_size(json_object_get(def, "parts")), 1);
    assert_non_null(lh_json_str(def, "ann"));
    assert_non_null(lh_json_str(def, "dir"));
    lh_vwarm *w = NULL;
    assert_int_equal(lh_vindex_warm(f->v, "idx", &w, &err), 0);
    assert_int_equal((int64_t)w->n, lh_json_int(def, "chunks", 0));
    for (size_t i = 1; i < w->n; i++)
        assert_true(w->labels[i - 1] < w->labels[i]);
    assert_non_null(w->ann);
    assert_int_equal(lh_ann_count(w->ann), w->n);
    lh_vwarm_release(w);
    lh_vwarm *peek = lh_vindex_peek(f->v, "idx");
    assert_non_null(peek);
    lh_vwarm_release(peek);
    lh_vindex_cool(f->v, "idx");
    assert_null(lh_vindex_peek(f->v, "idx"));
    /* A reopen reads the same definition; a stray part and a ghost index's folder go, the
     * folder of an unreadable definition stays. */
    char *stray = lh_xasprintf("%s/datasets/docs/_vectors/idx/part-stray.parquet", f->data);
    char *ghost_dir = lh_xasprintf("%s/datasets/docs/_vectors/ghost", f->data);
    char *ghost = lh_xasprintf("%s/part-1.parquet", ghost_dir);
    char *broken_dir = lh_xasprintf("%s/datasets/docs/_vectors/broken", f->data);
    char *broken = lh_xasprintf("%s/part-1.parquet", broken_dir);
    char *broken_def = lh_xasprintf("%s/_catalog/vectors/broken.json", f->data);
    assert_int_equal(lh_fs_mkdirs(ghost_dir, 0700, NULL), 0);
    assert_int_equal(lh_fs_mkdirs(broken_dir, 0700, NULL), 0);
    lh_test_write_file(stray, "x");
    lh_test_write_file(ghost, "x");
    lh_test_write_file(broken, "x");
    lh_test_write_file(broken_def, "{not json");
    fx_close(f);
    fx_open(f);
    json_t *again = lh_vindex_def(f->v, "idx", &err);
    assert_non_null(again);
    json_object_del(def, "dir");
    json_object_del(again, "dir");
    assert_true(json_equal(def, again));
    assert_false(lh_fs_exists(stray));
    assert_false(lh_fs_exists(ghost));
    assert_true(lh_fs_exists(broken));
    assert_true(lh_fs_exists(broken_def));
    assert_int_equal(folder_files(f, "idx", names, 16), 2);
    /* The catalog's own sweep left the index's files alone (datasets/<name>/_vectors/). */
    json_t *list = lh_vectors_list(f->v);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    json_decref(def);
    json_decref(again);
    free(stray);
    free(ghost);
    free(ghost_dir);
    free(broken);
    free(broken_dir);
    free(broken_def);
    /* Delete: the files go, the name is free. */
    assert_int_equal(lh_vectors_delete(f->v, "idx", "tester", &err), 0);
    assert_int_equal(folder_files(f, "idx", names, 16), 0);
    assert_null(lh_vectors_get(f->v, "idx", &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    fx_free(f);
}

static json_t *wait_stale(fx *f)
{
    for (int i = 0; i < 200; i++) {
        json_t *s = lh_vectors_stale(f->v);
        if (json_array_size(s))
            return s;
        json_decref(s);
        usleep(20 * 1000);
    }
    fail_msg("no stale mark arrived");
    return NULL;
}

static json_t *entry_of(json_t *out)
{
    return json_array_get(json_object_get(out, "indexes"), 0);
}

static void test_stale_refresh_and_purge(void **state)
{
    (void)state;
    fx *f = fx_new();
    ingest(f, 1, 20, "v1", LH_MODE_CREATE);
    lh_error err;
    if (build(f, "idx", NULL, &err) != 0)
        fail_msg("build: %s", err.message);
    json_t *s = lh_vectors_stale(f->v);
    assert_int_equal(json_array_size(s), 0);
    json_decref(s);
    ingest(f, 21, 25, "v1", LH_MODE_APPEND);
    s = wait_stale(f);
    assert_string_equal(lh_json_str(json_array_get(s, 0), "index"), "idx");
    assert_string_equal(lh_json_str(json_array_get(s, 0), "refresh"), "manual");
    json_decref(s);
    json_t *out = NULL;
    long calls = atomic_load(&f->v->embed_calls);
    assert_int_equal(lh_vectors_refresh(f->v, "docs", "tester", NULL, &out, &err), 0);
    json_t *e = entry_of(out);
    assert_int_equal(lh_json_int(e, "docs_embedded", -1), 5);
    assert_int_equal(lh_json_int(e, "docs_removed", -1), 0);
    assert_int_equal(lh_json_int(e, "chunks_removed", -1), 0);
    assert_true(atomic_load(&f->v->embed_calls) > calls);
    json_decref(out);
    s = lh_vectors_stale(f->v);
    assert_int_equal(json_array_size(s), 0);
    json_decref(s);
    /* Nothing new: the embedder is not called. */
    calls = atomic_load(&f->v->embed_calls);
    assert_int_equal(lh_vectors_refresh(f->v, "docs", "tester", NULL, &out, &err), 0);
    assert_int_equal(lh_json_int(entry_of(out), "docs_embedded", -1), 0);
    assert_int_equal(atomic_load(&f->v->embed_calls), calls);
    json_decref(out);
    json_t *ix = lh_vectors_get(f->v, "idx", &err);
    int64_t chunks = lh_json_int(ix, "chunks", 0);
    assert_int_equal(lh_json_int(ix, "docs", 0), 25);
    json_decref(ix);
    /* Replace with 1..10 (3..4 with new text): a purge removes 11..25 and embeds nothing,
     * not even the changed texts (that is a refresh's work). */
    ingest(f, 1, 2, "v1", LH_MODE_REPLACE);
    ingest(f, 3, 4, "v2", LH_MODE_APPEND);
    ingest(f, 5, 10, "v1", LH_MODE_APPEND);
    calls = atomic_load(&f->v->embed_calls);
    assert_int_equal(lh_vbuild_refresh(f->v, "docs", "tester", true, false, NULL, &out, &err), 0);
    e = entry_of(out);
    assert_int_equal(lh_json_int(e, "docs_removed", -1), 15);
    assert_int_equal(lh_json_int(e, "docs_embedded", -1), 0);
    assert_true(lh_json_int(e, "chunks_removed", 0) > 0);
    assert_int_equal(atomic_load(&f->v->embed_calls), calls);
    json_decref(out);
    ix = lh_vectors_get(f->v, "idx", &err);
    assert_int_equal(lh_json_int(ix, "docs", 0), 10);
    assert_true(lh_json_int(ix, "chunks", 0) < chunks);
    /* still stale: a purge does not clear the mark */
    assert_true(json_is_string(json_object_get(ix, "embedding_stale_since")));
    json_decref(ix);
    /* The warm structure follows a refresh. */
    lh_vwarm *w = NULL;
    assert_int_equal(lh_vindex_warm(f->v, "idx", &w, &err), 0);
    lh_vwarm_release(w);
    assert_int_equal(lh_vectors_refresh(f->v, "docs", "tester", NULL, &out, &err), 0);
    e = entry_of(out);
    assert_int_equal(lh_json_int(e, "docs_embedded", -1), 2);
    assert_int_equal(lh_json_int(e, "docs_changed", -1), 2);
    json_decref(out);
    w = lh_vindex_peek(f->v, "idx");
    assert_non_null(w);
    ix = lh_vectors_get(f->v, "idx", &err);
    assert_int_equal((int64_t)w->n, lh_json_int(ix, "chunks", 0));
    assert_int_equal(lh_json_int(ix, "docs", 0), 10);
    json_decref(ix);
    lh_vwarm_release(w);
    /* Exactly the definition's files remain. */
    char names[16][256];
    assert_int_equal(folder_files(f, "idx", names, 16), 3); /* 2 parts + ANN */
    fx_free(f);
}

/* Promotion (autotune's lh_vindex_set_ann): a new structure of another kind is written,
 * committed with the champion, swapped into the warm slot, and the old file deleted. */
static void test_set_ann_promotes(void **state)
{
    (void)state;
    fx *f = fx_new();
    ingest(f, 1, 30, "v1", LH_MODE_CREATE);
    lh_error err;
    if (build(f, "idx", NULL, &err) != 0)
        fail_msg("build: %s", err.message);
    json_t *def = lh_vindex_def(f->v, "idx", &err);
    char *old_ann = lh_xstrdup(lh_json_str(def, "ann"));
    json_decref(def);
    lh_vwarm *w = NULL;
    assert_int_equal(lh_vindex_warm(f->v, "idx", &w, &err), 0);
    lh_ann_params p;
    lh_ann_params_default(LH_ANN_HNSW, w->dim, w->n, &p);
    p.hnsw_ef_search = 99;
    if (lh_vindex_set_ann(f->v, "idx", LH_ANN_HNSW, &p, json_pack("{s:f}", "recall_at_10", 0.99),
                          "tuner", NULL, &err) != 0)
        fail_msg("set_ann: %s", err.message);
    /* the caller's old reference still works; the registry holds the new one */
    assert_int_equal(w->kind, LH_ANN_FLAT);
    lh_vwarm *nw = lh_vindex_peek(f->v, "idx");
    assert_non_null(nw);
    assert_int_equal(nw->kind, LH_ANN_HNSW);
    assert_int_equal(nw->n, w->n);
    assert_int_equal(lh_ann_count(nw->ann), nw->n);
    lh_vwarm_release(nw);
    lh_vwarm_release(w);
    def = lh_vindex_def(f->v, "idx", &err);
    assert_string_equal(lh_json_str(def, "kind"), "hnsw");
    assert_int_equal(lh_json_int(json_object_get(def, "params"), "efSearch", 0), 99);
    assert_non_null(json_object_get(json_object_get(def, "champion"), "recall_at_10"));
    assert_string_not_equal(lh_json_str(def, "ann"), old_ann);
    char names[16][256];
    assert_int_equal(folder_files(f, "idx", names, 16), 2); /* the old ANN file is gone */
    json_decref(def);
    free(old_ann);
    /* A reopen loads the promoted structure from its file. */
    fx_close(f);
    fx_open(f);
    assert_int_equal(lh_vindex_warm(f->v, "idx", &w, &err), 0);
    assert_int_equal(lh_ann_get_kind(w->ann), LH_ANN_HNSW);
    lh_vwarm_release(w);
    fx_free(f);
}

/* Every file-system step of a build fails once: the build fails and leaves no file and
 * the name free, or (a folder fsync after a rename) succeeds; either way what is answered
 * is what a reopen shows. */
static void test_failed_build_leaves_nothing(void **state)
{
    (void)state;
    fx *f = fx_new();
    ingest(f, 1, 12, "v1", LH_MODE_CREATE);
    static const lh_fault_op ops[] = {LH_FAULT_OPEN,   LH_FAULT_WRITE,     LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR, LH_FAULT_MKDIR};
    int failures = 0;
    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        for (unsigned nth = 1; nth <= 8; nth++) {
            lh_error err;
            json_t *ix = NULL;
            lh_fault_arm(ops[o], nth, 1, EIO);
            int rc = build(f, "idx", &ix, &err);
            bool fired = lh_fault_fired() > 0;
            lh_fault_reset();
            char names[16][256];
            if (rc != 0) {
                failures++;
                assert_true(fired);
                assert_int_equal(folder_files(f, "idx", names, 16), 0);
                assert_null(lh_vectors_get(f->v, "idx", NULL));
                char *def = lh_xasprintf("%s/_catalog/vectors/idx.json", f->data);
                assert_false(lh_fs_exists(def));
                free(def);
            } else {
                json_decref(ix);
                assert_int_equal(folder_files(f, "idx", names, 16), 2);
                fx_close(f);
                fx_open(f);
                json_t *again = lh_vectors_get(f->v, "idx", &err);
                assert_non_null(again);
                assert_int_equal(lh_json_int(again, "docs", 0), 12);
                json_decref(again);
                assert_int_equal(lh_vectors_delete(f->v, "idx", "tester", &err), 0);
            }
            if (!fired)
                break; /* past the last call of this operation */
        }
    }
    /* Each of: mkdir of the folder, the part's and the ANN's renames, the definition's
     * write can fail; so at least a handful of builds failed. */
    assert_true(failures >= 4);
    fx_free(f);
}

static void test_prepare_refusals(void **state)
{
    (void)state;
    fx *f = fx_new();
    ingest(f, 1, 3, "v1", LH_MODE_CREATE);
    static const struct {
        const char *json;
        int code;
        const char *needle;
    } cases[] = {
        {"{\"name\":\"a\",\"dataset\":\"docs\",\"id_column\":\"id\",\"text_column\":\"body\","
         "\"x\":1}",
         LH_EINVAL, "unknown field 'x'"},
        {"{\"name\":\"a\",\"dataset\":\"nope\",\"id_column\":\"id\",\"text_column\":\"body\"}",
         LH_ENOTFOUND, "nope"},
        {"{\"name\":\"a\",\"dataset\":\"docs\",\"id_column\":\"id\",\"text_column\":\"bod\"}",
         LH_EINVAL, "columns: id, body"},
        {"{\"name\":\"a\",\"dataset\":\"docs\",\"id_column\":\"id\",\"text_column\":\"body\","
         "\"chunk_size\":20,\"overlap\":20}",
         LH_EINVAL, "overlap"},
        {"{\"name\":\"a\",\"dataset\":\"docs\",\"id_column\":\"id\",\"text_column\":\"body\","
         "\"embedder\":\"openai\"}",
         LH_EINVAL, "model"},
        {"{\"name\":\"a\",\"dataset\":\"docs\",\"id_column\":\"id\",\"text_column\":\"body\","
         "\"dim\":2}",
         LH_EINVAL, "dim"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        json_t *s = lh_json_parse_object(cases[i].json, strlen(cases[i].json), &err);
        lh_vector_build *b = NULL;
        int rc = lh_vectors_prepare(f->v, s, "t", &b, &err);
        json_decref(s);
        assert_int_equal(rc, cases[i].code);
        if (!strstr(err.message, cases[i].needle))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].needle);
        assert_null(b);
    }
    /* A prepared name is taken until it is built or abandoned. */
    lh_error err;
    json_t *s = spec("idx");
    lh_vector_build *b = NULL, *b2 = NULL;
    assert_int_equal(lh_vectors_prepare(f->v, s, "t", &b, &err), 0);
    assert_int_equal(lh_vectors_prepare(f->v, s, "t", &b2, &err), LH_EEXISTS);
    json_t *ix = lh_vectors_get(f->v, "idx", &err);
    assert_string_equal(lh_json_str(ix, "state"), "building");
    json_decref(ix);
    assert_int_equal(lh_vectors_delete(f->v, "idx", "t", &err), LH_ECONFLICT);
    lh_vector_build_abandon(f->v, b);
    assert_int_equal(lh_vectors_prepare(f->v, s, "t", &b, &err), 0);
    lh_vector_build_abandon(f->v, b);
    json_decref(s);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_refusals),
        cmocka_unit_test(test_build_files_and_round_trip),
        cmocka_unit_test(test_stale_refresh_and_purge),
        cmocka_unit_test(test_set_ann_promotes),
        cmocka_unit_test(test_failed_build_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
