/*
 * test_storage.c: the bucket registry (persistence, add/remove rules, overlap) and the
 * local backend (keys, atomic puts, staging, listing, deletes).
 */
#include "testutil.h"

#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct env {
    char *tmp;  /* test folder */
    char *data; /* <tmp>/data */
    lh_storage *st;
} env;

static env *env_new(const char *tag)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir(tag);
    e->data = lh_path_join(e->tmp, "data");
    lh_error err;
    e->st = lh_storage_open(e->data, &err);
    if (!e->st)
        fail_msg("open: %s", err.message);
    return e;
}

static void env_reopen(env *e)
{
    lh_storage_close(e->st);
    lh_error err;
    e->st = lh_storage_open(e->data, &err);
    if (!e->st)
        fail_msg("reopen: %s", err.message);
}

static void env_free(env *e)
{
    lh_storage_close(e->st);
    free(e->data);
    lh_test_rmdir(e->tmp);
    free(e);
}

static char *tmp_path(const env *e, const char *rel)
{
    return lh_path_join(e->tmp, rel);
}

/* The bucket entry of name in lh_storage_buckets_json, or NULL (caller decrefs). */
static json_t *bucket_entry(lh_storage *st, const char *name)
{
    json_t *list = lh_storage_buckets_json(st);
    json_t *found = NULL;
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        if (strcmp(lh_json_str(b, "name"), name) == 0)
            found = json_incref(b);
    }
    json_decref(list);
    return found;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- registry */

static void test_open_builtin_buckets(void **state)
{
    (void)state;
    env *e = env_new("st-open");
    assert_string_equal(lh_storage_data_dir(e->st), e->data);
    json_t *list = lh_storage_buckets_json(e->st);
    assert_int_equal(json_array_size(list), 2);
    /* sorted by name */
    assert_string_equal(lh_json_str(json_array_get(list, 0), "name"), "primary");
    assert_string_equal(lh_json_str(json_array_get(list, 1), "name"), "rescue");
    json_t *p = json_array_get(list, 0), *r = json_array_get(list, 1);
    assert_string_equal(lh_json_str(p, "root"), e->data);
    char *rescue = lh_path_join(e->data, "_rescue");
    assert_string_equal(lh_json_str(r, "root"), rescue);
    assert_true(lh_fs_exists(rescue));
    assert_true(json_is_true(json_object_get(p, "builtin")));
    assert_true(json_is_true(json_object_get(p, "available")));
    assert_string_equal(lh_json_str(p, "backend"), "local");
    assert_true(lh_storage_bucket_exists(e->st, "primary"));
    assert_false(lh_storage_bucket_exists(e->st, "nope"));
    assert_false(lh_storage_bucket_exists(e->st, NULL));
    free(rescue);
    json_decref(list);
    env_free(e);
}

static int listener_calls;
static int count_listener(void *ctx, lh_error *err)
{
    (void)ctx;
    (void)err;
    listener_calls++;
    return 0;
}

static void test_bucket_add_persist_reload_remove(void **state)
{
    (void)state;
    env *e = env_new("st-reg");
    lh_storage_set_listener(e->st, count_listener, NULL);
    listener_calls = 0;
    char *root = tmp_path(e, "elsewhere/archive");
    lh_error err;
    assert_int_equal(lh_storage_bucket_add(e->st, "archive", root, &err), 0);
    assert_int_equal(listener_calls, 1);
    assert_true(lh_fs_exists(root)); /* created */
    char *reg = lh_path_join(e->data, "_catalog/buckets.json");
    assert_true(lh_fs_exists(reg));
    /* No temp file left beside the registry. */
    char *catdir = lh_path_join(e->data, "_catalog");
    assert_int_equal(count_entries(catdir), 1);

    assert_int_equal(lh_storage_bucket_add(e->st, "archive", root, &err), LH_EEXISTS);
    assert_int_equal(lh_storage_bucket_add(e->st, "primary", root, &err), LH_EEXISTS);
    assert_int_equal(lh_storage_bucket_add(e->st, "Bad Name", root, &err), LH_EINVAL);
    assert_int_equal(listener_calls, 1); /* failures do not notify */

    env_reopen(e);
    json_t *b = bucket_entry(e->st, "archive");
    assert_non_null(b);
    assert_string_equal(lh_json_str(b, "root"), root);
    assert_false(json_is_true(json_object_get(b, "builtin")));
    assert_true(json_is_true(json_object_get(b, "available")));
    json_decref(b);

    char **roots = lh_storage_roots(e->st);
    size_t n = 0;
    bool seen = false;
    for (; roots[n]; n++) {
        seen = seen || strcmp(roots[n], root) == 0;
        free(roots[n]);
    }
    free(roots);
    assert_int_equal(n, 3);
    assert_true(seen);

    lh_storage_set_listener(e->st, count_listener, NULL);
    listener_calls = 0;
    assert_int_equal(lh_storage_bucket_remove(e->st, "archive", &err), 0);
    assert_int_equal(listener_calls, 1);
    assert_true(lh_fs_exists(root)); /* files stay on disk */
    env_reopen(e);
    assert_false(lh_storage_bucket_exists(e->st, "archive"));
    free(catdir);
    free(reg);
    free(root);
    env_free(e);
}

static void test_bucket_remove_rules(void **state)
{
    (void)state;
    env *e = env_new("st-rm");
    lh_error err;
    assert_int_equal(lh_storage_bucket_remove(e->st, "primary", &err), LH_EFORBIDDEN);
    assert_int_equal(lh_storage_bucket_remove(e->st, "rescue", &err), LH_EFORBIDDEN);
    assert_true(lh_storage_bucket_exists(e->st, "primary"));
    assert_int_equal(lh_storage_bucket_remove(e->st, "ghost", &err), LH_ENOTFOUND);
    assert_string_equal(err.message, "unknown bucket 'ghost' (buckets: primary, rescue)");
    assert_int_equal(lh_storage_unknown_bucket(e->st, "x", &err), LH_ENOTFOUND);
    assert_non_null(strstr(err.message, "primary, rescue"));
    env_free(e);
}

static void test_bucket_overlap(void **state)
{
    (void)state;
    env *e = env_new("st-overlap");
    char *ok_outside = tmp_path(e, "out/b1");
    char *inside_outside = tmp_path(e, "out/b1/sub");
    char *parent_of_outside = tmp_path(e, "out");
    char *ok_under_buckets = lh_path_join(e->data, "buckets/b2");
    char *under_b2 = lh_path_join(e->data, "buckets/b2/deeper");
    char *buckets_itself = lh_path_join(e->data, "buckets");
    char *in_primary = lh_path_join(e->data, "stuff");
    char *in_rescue = lh_path_join(e->data, "_rescue/x");
    char *dotted = lh_xasprintf("%s/out/../data/x", e->tmp);
    const struct {
        const char *name, *root;
        int rc;
    } cases[] = {
        {"b1", ok_outside, 0},
        {"c1", inside_outside, LH_ECONFLICT},
        {"c2", parent_of_outside, LH_ECONFLICT}, /* contains b1 */
        {"b2", ok_under_buckets, 0},
        {"c3", under_b2, LH_ECONFLICT},
        {"c4", buckets_itself, LH_ECONFLICT}, /* would contain b2 */
        {"c5", e->data, LH_ECONFLICT},
        {"c6", e->tmp, LH_ECONFLICT}, /* contains primary */
        {"c7", "/", LH_ECONFLICT},
        {"c8", in_primary, LH_ECONFLICT},
        {"c9", in_rescue, LH_ECONFLICT},
        {"c10", dotted, LH_ECONFLICT}, /* normalised before the check */
        {"c11", "", LH_EINVAL},        /* not an overlap: no root at all */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_error_clear(&err);
        int rc = lh_storage_bucket_add(e->st, cases[i].name, cases[i].root, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d: %s", i, cases[i].root, rc, cases[i].rc,
                     err.message);
    }
    assert_false(lh_fs_exists(in_primary)); /* refused before creating anything */
    free(ok_outside);
    free(inside_outside);
    free(parent_of_outside);
    free(ok_under_buckets);
    free(under_b2);
    free(buckets_itself);
    free(in_primary);
    free(in_rescue);
    free(dotted);
    env_free(e);
}

static void test_bucket_relative_root(void **state)
{
    (void)state;
    env *e = env_new("st-rel");
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(e->tmp), 0);
    lh_error err;
    int rc = lh_storage_bucket_add(e->st, "rel", "./rel/../relb", &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    char *want = tmp_path(e, "relb");
    json_t *b = bucket_entry(e->st, "rel");
    assert_string_equal(lh_json_str(b, "root"), want);
    json_decref(b);
    free(want);
    env_free(e);
}

static void test_registry_forward_compat_and_vanished_root(void **state)
{
    (void)state;
    env *e = env_new("st-compat");
    char *gone = tmp_path(e, "gone");
    char *reg_dir = lh_path_join(e->data, "_catalog");
    char *reg = lh_path_join(e->data, "_catalog/buckets.json");
    lh_fs_mkdirs(reg_dir, 0755, NULL);
    char *text = lh_xasprintf(
        "{\"format_version\":\"bucket_registry.v1\",\"buckets\":["
        "{\"name\":\"old\",\"backend\":\"local\",\"root\":\"%s\",\"note\":\"keep me\"},"
        "{\"name\":\"cloud\",\"backend\":\"s3\",\"endpoint\":\"https://s3.example\"}]}",
        gone);
    lh_test_write_file(reg, text);
    free(text);
    env_reopen(e);
    json_t *b = bucket_entry(e->st, "old");
    assert_non_null(b);
    assert_false(json_is_true(json_object_get(b, "available")));
    json_decref(b);
    assert_false(lh_storage_bucket_exists(e->st, "cloud")); /* unknown backend: not served */

    /* A rewrite keeps the unknown field and the unknown backend's entry. */
    char *root = tmp_path(e, "new");
    assert_int_equal(lh_storage_bucket_add(e->st, "new", root, NULL), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_fs_read_all(reg, 1 << 20, &data, &len, NULL), 0);
    json_t *doc = json_loads(data, 0, NULL);
    assert_non_null(doc);
    json_t *list = json_object_get(doc, "buckets");
    assert_int_equal(json_array_size(list), 3);
    bool note = false, cloud = false;
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        note = note || (lh_json_str(x, "note") && strcmp(lh_json_str(x, "note"), "keep me") == 0);
        cloud = cloud || strcmp(lh_json_str(x, "name"), "cloud") == 0;
    }
    assert_true(note);
    assert_true(cloud);
    json_decref(doc);
    free(data);

    /* A corrupt registry stops the server rather than losing buckets. */
    lh_test_write_file(reg, "{not json");
    lh_storage_close(e->st);
    lh_error err;
    e->st = lh_storage_open(e->data, &err);
    assert_null(e->st);
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "buckets.json"));
    lh_test_write_file(reg, "{\"buckets\":[]}");
    env_reopen(e);
    free(root);
    free(reg);
    free(reg_dir);
    free(gone);
    env_free(e);
}

/* ---------------------------------------------------------------- keys */

static void test_key_validate_table(void **state)
{
    (void)state;
    char long_key[1100], long_seg[300];
    memset(long_key, 'k', 1025);
    long_key[1025] = '\0';
    memset(long_seg, 's', 256);
    long_seg[256] = '\0';
    const struct {
        const char *key;
        bool ok;
    } cases[] = {
        {"a", true},
        {"datasets/people/1/part-0a.parquet", true},
        {"_catalog/datasets/people.json", true},
        {"a..b/c...d", true},
        {".hidden", true},
        {"", false},
        {NULL, false},
        {"/abs", false},
        {"a/", false},
        {"a//b", false},
        {".", false},
        {"..", false},
        {"./a", false},
        {"a/./b", false},
        {"../x", false},
        {"a/../b", false},
        {"a/..", false},
        {"a\\b", false},
        {"a\x01"
         "b",
         false},
        {"a\nb", false},
        {"a\x7f", false},
        {"x.parquet.stage-1234.tmp", false},
        {"d/.stage-x", false},
        {long_key, false},
        {long_seg, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = lh_storage_key_validate(cases[i].key, NULL);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc %d", i, rc);
    }
}

static void test_path_and_reserved(void **state)
{
    (void)state;
    env *e = env_new("st-path");
    lh_error err;
    char *p = lh_storage_path(e->st, "primary", "a/b.txt", &err);
    char *want = lh_path_join(e->data, "a/b.txt");
    assert_string_equal(p, want);
    free(p);
    free(want);
    assert_null(lh_storage_path(e->st, "nope", "a", &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    assert_null(lh_storage_path(e->st, "primary", "../etc/passwd", &err));
    assert_int_equal(err.code, LH_EINVAL);
    /* Other buckets' folders are out of primary's reach. */
    assert_null(lh_storage_path(e->st, "primary", "buckets/b2/x", &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_int_equal(lh_storage_put(e->st, "primary", "_rescue/x", "x", 1, &err), LH_EINVAL);
    /* ...but the same key is fine in another bucket. */
    char *root = tmp_path(e, "b");
    assert_int_equal(lh_storage_bucket_add(e->st, "b", root, &err), 0);
    assert_int_equal(lh_storage_put(e->st, "b", "buckets/x", "x", 1, &err), 0);
    free(root);
    env_free(e);
}

/* ---------------------------------------------------------------- objects */

/* lh_storage_append: creates at 0 (mode 0600), appends at the known end, cuts what a
 * failed append left past `at`, refuses an `at` beyond the end, and cuts back on failure. */
static void test_append(void **state)
{
    (void)state;
    env *e = env_new("st-append");
    lh_error err;
    const char *key = "_catalog/log/events.jsonl";
    assert_int_equal(lh_storage_append(e->st, "primary", key, 0, "a\n", 2, &err), 0);
    assert_int_equal(lh_storage_append(e->st, "primary", key, 2, "b\n", 2, &err), 0);
    char *path = lh_storage_path(e->st, "primary", key, &err);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* the remains of a failed append past the known end are cut before writing */
    FILE *f = fopen(path, "a");
    fputs("{\"torn", f);
    fclose(f);
    assert_int_equal(lh_storage_append(e->st, "primary", key, 4, "c\n", 2, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_storage_get(e->st, "primary", key, 100, &data, &len, &err), 0);
    assert_string_equal(data, "a\nb\nc\n");
    free(data);
    /* an end beyond the file is an error, and writes nothing */
    assert_int_equal(lh_storage_append(e->st, "primary", key, 100, "d\n", 2, &err), LH_EIO);
    /* a failed fsync cuts the bytes back */
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_equal(lh_storage_append(e->st, "primary", key, 6, "d\n", 2, &err), LH_EIO);
    lh_fault_reset();
    assert_int_equal(lh_storage_get(e->st, "primary", key, 100, &data, &len, &err), 0);
    assert_string_equal(data, "a\nb\nc\n");
    free(data);
    assert_int_equal(lh_storage_append(e->st, "primary", "../x", 0, "d", 1, &err), LH_EINVAL);
    free(path);
    env_free(e);
}

static void test_put_get_list_delete(void **state)
{
    (void)state;
    env *e = env_new("st-obj");
    lh_error err;
    static const char *const keys[] = {
        "datasets/people/1/part-b.parquet",
        "datasets/people/1/part-a.parquet",
        "datasets/people2/1/part-a.parquet",
        "datasets/pets/x.parquet",
        "zzz.txt",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_int_equal(lh_storage_put(e->st, "primary", keys[i], keys[i], strlen(keys[i]), &err),
                         0);
    /* overwrite */
    assert_int_equal(lh_storage_put(e->st, "primary", "zzz.txt", "new", 3, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_storage_get(e->st, "primary", "zzz.txt", 100, &data, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_string_equal(data, "new");
    free(data);
    assert_int_equal(lh_storage_size(e->st, "primary", "zzz.txt"), 3);
    assert_int_equal(lh_storage_size(e->st, "primary", "missing"), -1);
    assert_int_equal(lh_storage_size(e->st, "primary", "datasets"), -1); /* a folder */
    assert_int_equal(lh_storage_get(e->st, "primary", "missing", 100, &data, &len, &err),
                     LH_ENOTFOUND);
    assert_string_equal(err.message, "no object 'missing' in bucket 'primary'");
    assert_null(data);
    assert_int_equal(lh_storage_get(e->st, "primary", "zzz.txt", 2, &data, &len, &err),
                     LH_ETOOLARGE);

    /* No staging file left after puts. */
    char *dir = lh_path_join(e->data, "datasets/people/1");
    assert_int_equal(count_entries(dir), 2);

    char **list = NULL;
    size_t n = 0;
    assert_int_equal(lh_storage_list(e->st, "primary", "datasets/people/", &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "datasets/people/1/part-a.parquet"); /* sorted */
    assert_string_equal(list[1], "datasets/people/1/part-b.parquet");
    assert_null(list[2]);
    lh_storage_keys_free(list);

    /* A prefix is a string prefix, as in S3: "datasets/people" matches people2 too. */
    assert_int_equal(lh_storage_list(e->st, "primary", "datasets/people", &list, &n, &err), 0);
    assert_int_equal(n, 3);
    lh_storage_keys_free(list);
    assert_int_equal(lh_storage_list(e->st, "primary", "datasets/pe", &list, &n, &err), 0);
    assert_int_equal(n, 4);
    lh_storage_keys_free(list);
    assert_int_equal(lh_storage_list(e->st, "primary", "nothing/", &list, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(list[0]);
    lh_storage_keys_free(list);
    assert_int_equal(lh_storage_list(e->st, "primary", "../", &list, &n, &err), LH_EINVAL);
    assert_int_equal(lh_storage_list(e->st, "ghost", "", &list, &n, &err), LH_ENOTFOUND);

    /* Delete removes the folders it empties, but not the root or non-empty ones. */
    assert_int_equal(lh_storage_delete(e->st, "primary", "datasets/pets/x.parquet", &err), 0);
    char *pets = lh_path_join(e->data, "datasets/pets");
    assert_false(lh_fs_exists(pets));
    char *datasets = lh_path_join(e->data, "datasets");
    assert_true(lh_fs_exists(datasets));
    assert_int_equal(lh_storage_delete(e->st, "primary", "datasets/people/1/part-a.parquet", &err),
                     0);
    assert_int_equal(lh_storage_delete(e->st, "primary", "datasets/people/1/part-b.parquet", &err),
                     0);
    assert_int_equal(lh_storage_delete(e->st, "primary", "datasets/people2/1/part-a.parquet", &err),
                     0);
    assert_false(lh_fs_exists(datasets));
    assert_true(lh_fs_exists(e->data));
    assert_int_equal(lh_storage_delete(e->st, "primary", "datasets/people/gone", &err), 0);
    assert_int_equal(lh_storage_delete(e->st, "ghost", "x", &err), LH_ENOTFOUND);
    free(datasets);
    free(pets);
    free(dir);
    env_free(e);
}

static void test_list_primary_hides_internal_folders(void **state)
{
    (void)state;
    env *e = env_new("st-hide");
    lh_error err;
    char *b2 = lh_path_join(e->data, "buckets/b2");
    assert_int_equal(lh_storage_bucket_add(e->st, "b2", b2, &err), 0);
    assert_int_equal(lh_storage_put(e->st, "b2", "datasets/x/1/p.parquet", "x", 1, &err), 0);
    assert_int_equal(lh_storage_put(e->st, "rescue", "q/1.parquet", "x", 1, &err), 0);
    assert_int_equal(lh_storage_put(e->st, "primary", "_tmp/upload", "x", 1, &err), 0);
    assert_int_equal(lh_storage_put(e->st, "primary", "datasets/y/1/p.parquet", "x", 1, &err), 0);
    char **list = NULL;
    size_t n = 0;
    assert_int_equal(lh_storage_list(e->st, "primary", "", &list, &n, &err), 0);
    /* _catalog/buckets.json and primary's own dataset; nothing of b2, rescue or _tmp. */
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "_catalog/buckets.json");
    assert_string_equal(list[1], "datasets/y/1/p.parquet");
    lh_storage_keys_free(list);
    /* Naming the internal folder explicitly lists it. */
    assert_int_equal(lh_storage_list(e->st, "primary", "_tmp/", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    lh_storage_keys_free(list);
    assert_int_equal(lh_storage_list(e->st, "b2", "", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0], "datasets/x/1/p.parquet");
    lh_storage_keys_free(list);
    free(b2);
    env_free(e);
}

static void test_stage_commit_discard(void **state)
{
    (void)state;
    env *e = env_new("st-stage");
    lh_error err;
    const char *key = "datasets/p/1/part-1.parquet";
    char *staged = lh_storage_stage(e->st, "primary", key, &err);
    assert_non_null(staged);
    char *final_path = lh_storage_path(e->st, "primary", key, NULL);
    /* Beside the final object, named <final>.stage-<random>.tmp. */
    assert_int_equal(strncmp(staged, final_path, strlen(final_path)), 0);
    assert_non_null(strstr(staged + strlen(final_path), ".stage-"));
    assert_string_equal(staged + strlen(staged) - 4, ".tmp");
    assert_true(lh_fs_exists(staged));
    lh_test_write_file(staged, "parquet bytes");

    char **list = NULL;
    size_t n = 0;
    assert_int_equal(lh_storage_list(e->st, "primary", "datasets/", &list, &n, &err), 0);
    assert_int_equal(n, 0); /* staging files are invisible */
    lh_storage_keys_free(list);
    assert_int_equal(lh_storage_size(e->st, "primary", key), -1);

    /* Commit refuses files that are not staging files of this bucket. */
    char *outside = tmp_path(e, "outside.stage-x.tmp");
    lh_test_write_file(outside, "x");
    assert_int_equal(lh_storage_commit(e->st, "primary", outside, key, &err), LH_EINVAL);
    char *plain = lh_path_join(e->data, "plain.txt");
    lh_test_write_file(plain, "x");
    assert_int_equal(lh_storage_commit(e->st, "primary", plain, key, &err), LH_EINVAL);
    assert_true(lh_fs_exists(plain));
    assert_int_equal(lh_storage_commit(e->st, "primary", staged, "../k", &err), LH_EINVAL);

    assert_int_equal(lh_storage_commit(e->st, "primary", staged, key, &err), 0);
    assert_false(lh_fs_exists(staged));
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_storage_get(e->st, "primary", key, 100, &data, &len, &err), 0);
    assert_string_equal(data, "parquet bytes");
    free(data);

    char *staged2 = lh_storage_stage(e->st, "primary", "other/x", &err);
    assert_non_null(staged2);
    assert_string_not_equal(staged, staged2);
    lh_storage_discard(staged2);
    assert_false(lh_fs_exists(staged2));
    lh_storage_discard(staged2); /* twice is fine */
    lh_storage_discard(NULL);

    assert_null(lh_storage_stage(e->st, "ghost", key, &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    assert_null(lh_storage_stage(e->st, "primary", "a//b", &err));
    assert_int_equal(err.code, LH_EINVAL);

    free(staged2);
    free(plain);
    free(outside);
    free(final_path);
    free(staged);
    env_free(e);
}

static void test_sweep_staged(void **state)
{
    (void)state;
    env *e = env_new("st-sweep");
    lh_error err;
    char *s1 = lh_storage_stage(e->st, "primary", "datasets/a/1/p.parquet", &err);
    char *s2 = lh_storage_stage(e->st, "primary", "datasets/b/p.parquet", &err);
    char *s3 = lh_storage_stage(e->st, "primary", "keep/p.parquet", &err);
    assert_int_equal(lh_storage_put(e->st, "primary", "datasets/a/1/real.parquet", "r", 1, &err),
                     0);
    assert_int_equal(lh_storage_sweep_staged(e->st, "primary", "datasets/", &err), 2);
    assert_false(lh_fs_exists(s1));
    assert_false(lh_fs_exists(s2));
    assert_true(lh_fs_exists(s3)); /* outside the prefix */
    assert_int_equal(lh_storage_size(e->st, "primary", "datasets/a/1/real.parquet"), 1);
    assert_int_equal(lh_storage_sweep_staged(e->st, "primary", "datasets/", &err), 0);
    free(s1);
    free(s2);
    free(s3);
    env_free(e);
}

/* ---------------------------------------------------------------- modes, faults */

static mode_t mode_of(const char *path)
{
    struct stat s;
    assert_int_equal(stat(path, &s), 0);
    return s.st_mode & 07777;
}

/* Item 8 of issue 9: under the usual umask 022 every folder and file of the tree is
 * owner-only from creation, including a staged file another writer (DuckDB) replaced. */
static void test_tree_is_owner_only_under_umask_022(void **state)
{
    (void)state;
    mode_t old = umask(022);
    env *e = env_new("modes");
    lh_error err;
    assert_int_equal(lh_storage_put(e->st, "primary", "_catalog/datasets/p.json", "{}", 2, &err),
                     0);
    char *staged = lh_storage_stage(e->st, "primary", "datasets/p/abc/part-1.parquet", &err);
    assert_non_null(staged);
    /* What DuckDB does: write its own file and rename it over the staged name. */
    char *other = lh_xasprintf("%s.other", staged);
    FILE *f = fopen(other, "w"); /* 0666 & ~022 = 0644 */
    assert_non_null(f);
    fputs("PAR1", f);
    fclose(f);
    assert_int_equal(rename(other, staged), 0);
    assert_int_equal(
        lh_storage_commit(e->st, "primary", staged, "datasets/p/abc/part-1.parquet", &err), 0);
    char *root = tmp_path(e, "b2");
    assert_int_equal(lh_storage_bucket_add(e->st, "b2", root, &err), 0);
    static const char *const dirs[] = {"data",
                                       "data/_catalog",
                                       "data/_rescue",
                                       "data/datasets",
                                       "data/datasets/p",
                                       "data/datasets/p/abc",
                                       "data/_catalog/datasets",
                                       "b2"};
    static const char *const files[] = {"data/_catalog/datasets/p.json",
                                        "data/datasets/p/abc/part-1.parquet",
                                        "data/_catalog/buckets.json"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char *p = tmp_path(e, dirs[i]);
        if (mode_of(p) != 0700)
            fail_msg("folder %s is %o", dirs[i], (unsigned)mode_of(p));
        free(p);
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = tmp_path(e, files[i]);
        if (mode_of(p) != 0600)
            fail_msg("file %s is %o", files[i], (unsigned)mode_of(p));
        free(p);
    }
    umask(old);
    free(root);
    free(other);
    free(staged);
    env_free(e);
}

/* A failed COPY leaves DuckDB's temp file "tmp_<staged name>" beside the staged file:
 * discarding removes both. */
static void test_discard_removes_duckdb_temp(void **state)
{
    (void)state;
    env *e = env_new("discard");
    lh_error err;
    char *staged = lh_storage_stage(e->st, "primary", "datasets/p/x/part-1.parquet", &err);
    assert_non_null(staged);
    const char *slash = strrchr(staged, '/');
    char *duck = lh_xasprintf("%.*s/tmp_%s", (int)(slash - staged), staged, slash + 1);
    lh_test_write_file(duck, "partial row groups");
    lh_storage_discard(staged);
    assert_false(lh_fs_exists(staged));
    assert_false(lh_fs_exists(duck));
    free(duck);
    free(staged);
    env_free(e);
}

#ifdef LH_FAULT_INJECTION
/* The hook: the Nth call fails with the errno asked for, once; a failure after the rename
 * is reported as not durable while the new object is in place. */
static void test_fault_hook(void **state)
{
    (void)state;
    env *e = env_new("fault");
    lh_error err;
    assert_int_equal(lh_storage_put(e->st, "primary", "a/b", "old", 3, &err), 0);
    lh_fault_arm(LH_FAULT_WRITE, 1, 1, ENOSPC);
    assert_int_equal(lh_storage_put(e->st, "primary", "a/b", "new", 3, &err), LH_EIO);
    assert_non_null(strstr(err.message, "No space left"));
    assert_false(lh_error_not_durable(&err));
    assert_int_equal(lh_fault_fired(), 1);
    char *data = NULL;
    assert_int_equal(lh_storage_get(e->st, "primary", "a/b", 100, &data, NULL, &err), 0);
    assert_string_equal(data, "old"); /* rolled back */
    free(data);
    char **keys = NULL;
    size_t n = 0;
    assert_int_equal(lh_storage_sweep_staged(e->st, "primary", "a/", &err), 0); /* no temp */
    lh_fault_arm(LH_FAULT_FSYNC_DIR, 1, 1, EIO);
    assert_int_equal(lh_storage_put(e->st, "primary", "a/b", "new", 3, &err), LH_EIO);
    assert_true(lh_error_not_durable(&err));
    assert_int_equal(lh_storage_get(e->st, "primary", "a/b", 100, &data, NULL, &err), 0);
    assert_string_equal(data, "new"); /* in place, durability unknown */
    free(data);
    lh_fault_arm(LH_FAULT_FSYNC_DIR, 1, 1, EIO);
    assert_int_equal(lh_storage_delete(e->st, "primary", "a/b", &err), LH_EIO);
    assert_true(lh_error_not_durable(&err));
    assert_int_equal(lh_storage_list(e->st, "primary", "a/", &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    lh_storage_keys_free(keys);
    lh_fault_arm(LH_FAULT_MKDIR, 2, 1, EACCES);
    assert_int_equal(lh_fault_calls(LH_FAULT_MKDIR), 0);
    assert_int_equal(lh_storage_put(e->st, "primary", "c/d/e", "x", 1, &err), LH_EIO);
    assert_true(lh_fault_calls(LH_FAULT_MKDIR) >= 2);
    assert_int_equal(lh_fault_arm_spec("fsync_dir:3:ENOSPC:2", &err), 0);
    assert_int_equal(lh_fault_arm_spec("fsync:0:EIO", &err), LH_EINVAL);
    assert_int_equal(lh_fault_arm_spec("chmod:1:EIO", &err), LH_EINVAL);
    lh_fault_reset();
    env_free(e);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_builtin_buckets),
        cmocka_unit_test(test_bucket_add_persist_reload_remove),
        cmocka_unit_test(test_bucket_remove_rules),
        cmocka_unit_test(test_bucket_overlap),
        cmocka_unit_test(test_bucket_relative_root),
        cmocka_unit_test(test_registry_forward_compat_and_vanished_root),
        cmocka_unit_test(test_key_validate_table),
        cmocka_unit_test(test_path_and_reserved),
        cmocka_unit_test(test_put_get_list_delete),
        cmocka_unit_test(test_list_primary_hides_internal_folders),
        cmocka_unit_test(test_stage_commit_discard),
        cmocka_unit_test(test_sweep_staged),
        cmocka_unit_test(test_tree_is_owner_only_under_umask_022),
        cmocka_unit_test(test_discard_removes_duckdb_temp),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test(test_fault_hook),
        cmocka_unit_test(test_append),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
