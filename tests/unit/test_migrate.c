/*
 * test_migrate.c: lh_catalog_migrate_buckets: hand-written legacy manifests (bucket
 * missing, null, "", "default", "main") are rewritten with the bucket they live in, the
 * report says what changed, a second run changes nothing, the journal records one
 * buckets.migrated, and a failure half-way leaves every manifest whole (old or new) and a
 * second run finishes.
 */
#include "testutil.h"

#include "catalog/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void make_dataset(lh_test_cat *e, const char *name)
{
    lh_error err;
    char *key = lh_xasprintf("datasets/%s/0123456789abcdef/part-1.parquet", name);
    char *staged = lh_storage_stage(e->st, LH_BUCKET_PRIMARY, key, &err);
    assert_non_null(staged);
    lh_test_write_file(staged, "PAR1PAR1");
    assert_int_equal(lh_storage_commit(e->st, LH_BUCKET_PRIMARY, staged, key, &err), 0);
    json_t *schema = json_pack("[{s:s,s:s}]", "name", "id", "type", "BIGINT");
    lh_catalog_commit c = {.name = name,
                           .bucket = LH_BUCKET_PRIMARY,
                           .mode = LH_MODE_CREATE,
                           .part_key = key,
                           .part_rows = 1,
                           .part_bytes = 8,
                           .schema = schema,
                           .compression = "zstd",
                           .actor = "t"};
    assert_int_equal(lh_catalog_commit_ingest(e->cat, &c, NULL, &err), 0);
    json_decref(schema);
    free(staged);
    free(key);
}

static char *manifest_path(lh_test_cat *e, const char *name)
{
    char *rel = lh_xasprintf("_catalog/datasets/%s.json", name);
    char *p = lh_path_join(e->data, rel);
    free(rel);
    return p;
}

static json_t *read_manifest(lh_test_cat *e, const char *name)
{
    char *p = manifest_path(e, name);
    json_t *m = json_load_file(p, 0, NULL);
    free(p);
    assert_non_null(m);
    return m;
}

/* Writes the manifest of name with bucket set to `bucket` (NULL: the field removed; the
 * JSON null when null_value). */
static void set_disk_bucket(lh_test_cat *e, const char *name, const char *bucket, bool null_value)
{
    json_t *m = read_manifest(e, name);
    if (null_value)
        json_object_set_new(m, "bucket", json_null());
    else if (!bucket)
        json_object_del(m, "bucket");
    else
        json_object_set_new(m, "bucket", json_string(bucket));
    char *p = manifest_path(e, name);
    assert_int_equal(json_dump_file(m, p, JSON_INDENT(2)), 0);
    free(p);
    json_decref(m);
}

static lh_test_cat *legacy_env(const char *tag)
{
    lh_test_cat *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir(tag);
    e->data = lh_path_join(e->tmp, "data");
    lh_test_cat_open(e);
    static const char *const names[] = {"a_missing", "b_null", "c_empty",
                                        "d_default", "e_main", "f_ok"};
    for (size_t i = 0; i < 6; i++)
        make_dataset(e, names[i]);
    lh_test_cat_close(e);
    set_disk_bucket(e, "a_missing", NULL, false);
    set_disk_bucket(e, "b_null", NULL, true);
    set_disk_bucket(e, "c_empty", "", false);
    set_disk_bucket(e, "d_default", "default", false);
    set_disk_bucket(e, "e_main", "main", false);
    lh_test_cat_open(e); /* legacy manifests load (load_bucket trusts where they live) */
    return e;
}

static size_t count_action(lh_test_cat *e, const char *action)
{
    json_t *evs = lh_catalog_events(e->cat, 0, 1000, NULL);
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        if (strcmp(lh_json_str(ev, "action"), action) == 0)
            n++;
    }
    json_decref(evs);
    return n;
}

static void test_migrate_reports_and_is_idempotent(void **state)
{
    (void)state;
    lh_test_cat *e = legacy_env("migrate");
    json_t *all = lh_catalog_list(e->cat);
    assert_int_equal(json_array_size(all), 6);
    json_decref(all);
    lh_error err;
    json_t *report = NULL;
    assert_int_equal(lh_catalog_migrate_buckets(e->cat, "ops", &report, &err), 0);
    json_t *changed = json_object_get(report, "changed");
    assert_int_equal(json_array_size(changed), 5);
    assert_int_equal(lh_json_int(report, "unchanged", -1), 1);
    static const char *const want_from[] = {NULL, NULL, "", "default", "main"};
    for (size_t i = 0; i < 5; i++) {
        json_t *c = json_array_get(changed, i);
        const json_t *from = json_object_get(c, "from");
        if (want_from[i])
            assert_string_equal(json_string_value(from), want_from[i]);
        else
            assert_true(json_is_null(from));
        assert_string_equal(lh_json_str(c, "to"), "primary");
        json_t *m = read_manifest(e, lh_json_str(c, "dataset"));
        assert_string_equal(lh_json_str(m, "bucket"), "primary");
        assert_int_equal(lh_json_int(m, "version", 0), 1); /* not a data change */
        json_decref(m);
    }
    json_decref(report);
    assert_int_equal(count_action(e, "buckets.migrated"), 1);

    /* Idempotent: nothing to do, nothing recorded. */
    assert_int_equal(lh_catalog_migrate_buckets(e->cat, "ops", &report, &err), 0);
    assert_int_equal(json_array_size(json_object_get(report, "changed")), 0);
    assert_int_equal(lh_json_int(report, "unchanged", -1), 6);
    json_decref(report);
    assert_int_equal(count_action(e, "buckets.migrated"), 1);
    lh_test_cat_close(e);
    lh_test_cat_open(e);
    assert_int_equal(lh_catalog_migrate_buckets(e->cat, "ops", &report, &err), 0);
    assert_int_equal(json_array_size(json_object_get(report, "changed")), 0);
    json_decref(report);
    lh_test_cat_free(e);
}

/* A failure at the second rewrite: the first is done, the rest untouched, every manifest
 * parses; a second run finishes. */
static void test_migrate_fails_half_way(void **state)
{
    (void)state;
    static const lh_fault_op ops[] = {LH_FAULT_RENAME, LH_FAULT_FSYNC, LH_FAULT_WRITE,
                                      LH_FAULT_OPEN};
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        lh_test_cat *e = legacy_env("migrate_fault");
        lh_error err;
        json_t *report = NULL;
        set_disk_bucket(e, "f_ok", "main", false); /* six to rewrite */
        lh_fault_arm(ops[k], 2, 0, EIO);           /* every call from the 2nd on fails */
        int rc = lh_catalog_migrate_buckets(e->cat, "ops", &report, &err);
        lh_fault_reset();
        assert_int_not_equal(rc, 0);
        assert_null(report);
        static const char *const names[] = {"a_missing", "b_null", "c_empty",
                                            "d_default", "e_main", "f_ok"};
        for (size_t i = 0; i < 6; i++) {
            json_t *m = read_manifest(e, names[i]); /* whole, old or new */
            assert_string_equal(lh_json_str(m, "name"), names[i]);
            json_decref(m);
        }
        assert_int_equal(lh_catalog_migrate_buckets(e->cat, "ops", &report, &err), 0);
        assert_true(json_array_size(json_object_get(report, "changed")) >= 1);
        json_decref(report);
        for (size_t i = 0; i < 6; i++) {
            json_t *m = read_manifest(e, names[i]);
            assert_string_equal(lh_json_str(m, "bucket"), "primary");
            json_decref(m);
        }
        lh_test_cat_close(e);
        lh_test_cat_open(e);
        assert_int_equal(lh_catalog_migrate_buckets(e->cat, "ops", &report, &err), 0);
        assert_int_equal(json_array_size(json_object_get(report, "changed")), 0);
        json_decref(report);
        lh_test_cat_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_reports_and_is_idempotent),
        cmocka_unit_test(test_migrate_fails_half_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
