/*
 * test_sources.c: the named sources store (sources/store.c): add, list, get, delete; the
 * file and folder modes from creation; persistence across reopen; a damaged file stops the
 * open without quoting a password; the password appears nowhere but the file's dsn field;
 * every step of a write failing once leaves the old state on disk and in memory; the
 * journal events carry kind and location only.
 */
#include "testutil.h"

#include "sources/sources.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PW_PG "Pg-S3cret-xyzzy"
#define PW_MY "My-T0p-plugh"
#define DSN_PG "postgresql://etl:" PW_PG "@db.example:5433/hr?sslmode=require"
#define DSN_MY "mysql://root:" PW_MY "@10.0.0.7/ats"
#define DSN_KV "host=db2 user=u password='" PW_PG "' dbname=people"

typedef struct fixture {
    char *tmp, *data, *secrets, *file;
    lh_sources *s;
} fixture;

static fixture *fixture_new(const char *tag)
{
    fixture *f = calloc(1, sizeof(*f));
    f->tmp = lh_test_tmpdir(tag);
    f->data = lh_path_join(f->tmp, "data");
    f->secrets = lh_path_join(f->data, "_secrets");
    f->file = lh_path_join(f->secrets, "sources.json");
    lh_error err;
    f->s = lh_sources_open(f->data, &err);
    if (!f->s)
        fail_msg("lh_sources_open: %s", err.message);
    return f;
}

static void fixture_reopen(fixture *f)
{
    lh_error err;
    lh_sources_close(f->s);
    f->s = lh_sources_open(f->data, &err);
    if (!f->s)
        fail_msg("lh_sources_open: %s", err.message);
}

static void fixture_free(fixture *f)
{
    lh_sources_close(f->s);
    free(f->data);
    free(f->secrets);
    free(f->file);
    lh_test_rmdir(f->tmp);
    free(f);
}

static char *read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    lh_error err;
    if (lh_fs_read_all(path, 1 << 20, &text, &len, &err) != 0)
        return NULL;
    return text;
}

/* The secrets folder holds the store and nothing half-written (no temp file). */
static void assert_only_the_store(const fixture *f)
{
    DIR *d = opendir(f->secrets);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "sources.json") != 0)
            fail_msg("left in _secrets: %s", de->d_name);
    closedir(d);
}

static bool contains(const json_t *v, const char *needle)
{
    char *text = json_dumps(v, JSON_COMPACT);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

static void test_add_list_get_delete(void **state)
{
    (void)state;
    fixture *f = fixture_new("sources_crud");
    lh_error err;
    /* No file until the first source. */
    assert_int_equal(access(f->file, F_OK), -1);
    assert_int_equal(lh_sources_add(f->s, "hr_pg", LH_SOURCE_POSTGRES, DSN_PG, "alice", &err), 0);
    assert_int_equal(lh_sources_add(f->s, "ats", LH_SOURCE_MYSQL, DSN_MY, "bob", &err), 0);
    assert_int_equal(lh_sources_add(f->s, "kv", LH_SOURCE_POSTGRES, DSN_KV, NULL, &err), 0);

    json_t *list = lh_sources_list(f->s);
    assert_int_equal(json_array_size(list), 3);
    /* Sorted by name; each entry redacted, with its location. */
    const json_t *ats = json_array_get(list, 0);
    assert_string_equal(lh_json_str(ats, "name"), "ats");
    assert_string_equal(lh_json_str(ats, "kind"), "mysql");
    assert_string_equal(lh_json_str(ats, "dsn"), "mysql://root:***@10.0.0.7/ats");
    assert_string_equal(lh_json_str(ats, "location"), "10.0.0.7:3306/ats");
    assert_string_equal(lh_json_str(ats, "created_by"), "bob");
    assert_non_null(lh_json_str(ats, "created_at"));
    const json_t *hr = json_array_get(list, 1);
    assert_string_equal(lh_json_str(hr, "dsn"),
                        "postgresql://etl:***@db.example:5433/hr?sslmode=require");
    assert_string_equal(lh_json_str(hr, "location"), "db.example:5433/hr");
    const json_t *kv = json_array_get(list, 2);
    assert_string_equal(lh_json_str(kv, "created_by"), "anonymous");
    assert_non_null(strstr(lh_json_str(kv, "dsn"), "password=***"));
    assert_false(contains(list, PW_PG));
    assert_false(contains(list, PW_MY));
    json_decref(list);

    json_t *one = lh_sources_get(f->s, "hr_pg", &err);
    assert_non_null(one);
    assert_string_equal(lh_json_str(one, "name"), "hr_pg");
    assert_false(contains(one, PW_PG));
    json_decref(one);
    assert_null(lh_sources_get(f->s, "nope", &err));
    assert_int_equal(err.code, LH_ENOTFOUND);

    /* The secret, for connecting. */
    lh_source_kind kind = LH_SOURCE_POSTGRES;
    char *dsn = lh_sources_dsn(f->s, "ats", &kind, &err);
    assert_string_equal(dsn, DSN_MY);
    assert_int_equal(kind, LH_SOURCE_MYSQL);
    lh_secret_free(dsn);
    assert_null(lh_sources_dsn(f->s, "nope", &kind, &err));
    assert_int_equal(err.code, LH_ENOTFOUND);

    /* Refusals: a taken name, a bad name, a DSN that does not parse (the message never
     * quotes it), a non-UTF-8 DSN. None changes the set. */
    assert_int_equal(lh_sources_add(f->s, "ats", LH_SOURCE_POSTGRES, DSN_PG, "x", &err),
                     LH_EEXISTS);
    assert_string_equal(lh_error_kind(&err), "already_exists");
    assert_int_equal(lh_sources_add(f->s, "Bad/Name", LH_SOURCE_POSTGRES, DSN_PG, "x", &err),
                     LH_EINVAL);
    assert_int_equal(lh_sources_add(f->s, NULL, LH_SOURCE_POSTGRES, DSN_PG, "x", &err), LH_EINVAL);
    assert_int_equal(lh_sources_add(f->s, "broken", LH_SOURCE_POSTGRES,
                                    "postgresql://u:" PW_PG "@[::1/db", "x", &err),
                     LH_EINVAL);
    assert_null(strstr(err.message, PW_PG));
    assert_int_equal(lh_sources_add(f->s, "broken", LH_SOURCE_POSTGRES, "", "x", &err), LH_EINVAL);
    assert_int_equal(lh_sources_add(f->s, "broken", LH_SOURCE_POSTGRES, NULL, "x", &err),
                     LH_EINVAL);
    assert_int_equal(
        lh_sources_add(f->s, "broken", LH_SOURCE_MYSQL, "mysql://u:\xff\xfe@h/db", "x", &err),
        LH_EINVAL);
    list = lh_sources_list(f->s);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);

    assert_int_equal(lh_sources_delete(f->s, "ats", "alice", &err), 0);
    assert_int_equal(lh_sources_delete(f->s, "ats", "alice", &err), LH_ENOTFOUND);
    assert_int_equal(lh_sources_delete(f->s, NULL, "alice", &err), LH_ENOTFOUND);
    assert_null(lh_sources_get(f->s, "ats", &err));
    /* The name is free again. */
    assert_int_equal(lh_sources_add(f->s, "ats", LH_SOURCE_POSTGRES, DSN_PG, "bob", &err), 0);
    fixture_free(f);
}

/* The folder is 0700 and the file 0600 whatever the umask, from its creation; a widened
 * file is narrowed at the next open. */
static void test_modes(void **state)
{
    (void)state;
    mode_t old = umask(0);
    fixture *f = fixture_new("sources_modes");
    lh_error err;
    struct stat st;
    assert_int_equal(stat(f->secrets, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(lh_sources_add(f->s, "hr", LH_SOURCE_POSTGRES, DSN_PG, "a", &err), 0);
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Every later write keeps it so (a new file replaces it each time). */
    assert_int_equal(lh_sources_add(f->s, "ats", LH_SOURCE_MYSQL, DSN_MY, "a", &err), 0);
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_only_the_store(f);

    assert_int_equal(chmod(f->file, 0644), 0);
    assert_int_equal(chmod(f->secrets, 0755), 0);
    fixture_reopen(f);
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->secrets, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    umask(old);
    fixture_free(f);
}

/* What was added survives a reopen, byte for byte; the password is in the file's dsn
 * fields and nowhere else in it. */
static void test_persistence_and_where_the_password_is(void **state)
{
    (void)state;
    fixture *f = fixture_new("sources_persist");
    lh_error err;
    assert_int_equal(lh_sources_add(f->s, "hr", LH_SOURCE_POSTGRES, DSN_PG, "alice", &err), 0);
    assert_int_equal(lh_sources_add(f->s, "ats", LH_SOURCE_MYSQL, DSN_MY, "bob", &err), 0);
    assert_int_equal(lh_sources_add(f->s, "gone", LH_SOURCE_POSTGRES, DSN_KV, "bob", &err), 0);
    assert_int_equal(lh_sources_delete(f->s, "gone", "bob", &err), 0);
    json_t *before = lh_sources_list(f->s);
    fixture_reopen(f);
    json_t *after = lh_sources_list(f->s);
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    lh_source_kind kind;
    char *dsn = lh_sources_dsn(f->s, "hr", &kind, &err);
    assert_string_equal(dsn, DSN_PG);
    lh_secret_free(dsn);
    assert_null(lh_sources_dsn(f->s, "gone", &kind, &err));

    char *text = read_text(f->file);
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(lh_json_str(doc, "format_version"), "sources.v1");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "sources"), i, e) json_object_del(e, "dsn");
    assert_int_equal(json_array_size(json_object_get(doc, "sources")), 2);
    assert_false(contains(doc, PW_PG));
    assert_false(contains(doc, PW_MY));
    assert_non_null(strstr(text, PW_PG)); /* it is there, in the dsn field */
    json_decref(doc);
    free(text);
    fixture_free(f);
}

/* A damaged file stops the open with LH_EIO; the message never quotes the file's text
 * (which holds passwords). */
static void test_damaged_file_is_an_error(void **state)
{
    (void)state;
    static const char *const damaged[] = {
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"a\", \"dsn\": \"" PW_PG,
        PW_PG,
        "{\"format_version\": \"other\", \"sources\": []}",
        "{\"format_version\": \"sources.v1\"}",
        "[]",
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"BAD NAME\", \"kind\": "
        "\"postgres\", \"dsn\": \"" DSN_PG "\"}]}",
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"a\", \"kind\": "
        "\"oracle\", \"dsn\": \"" DSN_PG "\"}]}",
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"a\", \"kind\": "
        "\"postgres\"}]}",
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"a\", \"kind\": "
        "\"postgres\", \"dsn\": \"postgresql://u:" PW_PG "@[x/db\"}]}",
        "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": \"a\", \"kind\": "
        "\"postgres\", \"dsn\": \"" DSN_PG "\"}, {\"name\": \"a\", \"kind\": \"postgres\", "
        "\"dsn\": \"" DSN_PG "\"}]}",
        "",
    };
    fixture *f = fixture_new("sources_damaged");
    lh_sources_close(f->s);
    f->s = NULL;
    for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
        lh_test_write_file(f->file, damaged[i]);
        lh_error err;
        lh_sources *s = lh_sources_open(f->data, &err);
        if (s)
            fail_msg("damaged file %zu was accepted", i);
        assert_int_equal(err.code, LH_EIO);
        assert_null(strstr(err.message, PW_PG));
        assert_non_null(strstr(err.message, "sources.json"));
        /* ... and was left as it was, for an operator to repair. */
        char *text = read_text(f->file);
        assert_string_equal(text ? text : "", damaged[i]);
        free(text);
    }
    /* A well-formed file opens. */
    lh_test_write_file(f->file, "{\"format_version\": \"sources.v1\", \"sources\": [{\"name\": "
                                "\"a\", \"kind\": \"mysql\", \"dsn\": \"" DSN_MY "\"}]}");
    fixture_reopen(f);
    json_t *list = lh_sources_list(f->s);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    fixture_free(f);
}

/* Every step of the atomic write failing once: before the rename the change is undone in
 * memory and on disk (no temp file left); a failed folder fsync after the rename keeps the
 * change (the file shows it). Reopening always agrees with memory. */
static void test_failed_writes_roll_back(void **state)
{
    (void)state;
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE, LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR};
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        fixture *f = fixture_new("sources_faults");
        lh_error err;
        assert_int_equal(lh_sources_add(f->s, "keep", LH_SOURCE_POSTGRES, DSN_PG, "a", &err), 0);
        bool rolled_forward = ops[k] == LH_FAULT_FSYNC_DIR;

        lh_fault_arm(ops[k], 1, 1, EIO);
        int rc = lh_sources_add(f->s, "new", LH_SOURCE_MYSQL, DSN_MY, "a", &err);
        unsigned fired = lh_fault_fired();
        lh_fault_reset();
        assert_int_equal(fired, 1);
        assert_int_equal(rc, rolled_forward ? 0 : LH_EIO);
        if (rc)
            assert_null(strstr(err.message, PW_MY));
        json_t *mem = lh_sources_list(f->s);
        assert_int_equal(json_array_size(mem), rolled_forward ? 2 : 1);
        fixture_reopen(f);
        json_t *disk = lh_sources_list(f->s);
        assert_true(json_equal(mem, disk));
        json_decref(mem);
        json_decref(disk);

        lh_fault_arm(ops[k], 1, 1, EIO);
        rc = lh_sources_delete(f->s, "keep", "a", &err);
        lh_fault_reset();
        assert_int_equal(rc, rolled_forward ? 0 : LH_EIO);
        mem = lh_sources_list(f->s);
        /* rolled back: {keep} still; rolled forward: {new}, keep gone */
        assert_int_equal(json_array_size(mem), 1);
        assert_string_equal(lh_json_str(json_array_get(mem, 0), "name"),
                            rolled_forward ? "new" : "keep");
        fixture_reopen(f);
        disk = lh_sources_list(f->s);
        assert_true(json_equal(mem, disk));
        json_decref(mem);
        json_decref(disk);
        assert_only_the_store(f);
        fixture_free(f);
    }
}

/* With a journal: source.created / source.deleted, with kind and location, never the DSN. */
static void test_journal_events(void **state)
{
    (void)state;
    lh_test_cat *c = lh_test_cat_new("sources_journal");
    lh_error err;
    lh_sources *s = lh_sources_open(c->data, &err);
    assert_non_null(s);
    lh_sources_set_journal(s, c->cat);
    assert_int_equal(lh_sources_add(s, "hr", LH_SOURCE_POSTGRES, DSN_PG, "alice", &err), 0);
    assert_int_equal(lh_sources_add(s, "hr", LH_SOURCE_POSTGRES, DSN_PG, "alice", &err),
                     LH_EEXISTS);
    assert_int_equal(lh_sources_delete(s, "hr", "bob", &err), 0);
    assert_int_equal(lh_sources_delete(s, "hr", "bob", &err), LH_ENOTFOUND);
    json_t *evs = lh_catalog_events(c->cat, 0, 100, NULL);
    assert_int_equal(json_array_size(evs), 2); /* refusals journal nothing */
    const json_t *created = json_array_get(evs, 0), *deleted = json_array_get(evs, 1);
    assert_string_equal(lh_json_str(created, "action"), "source.created");
    assert_string_equal(lh_json_str(created, "actor"), "alice");
    assert_string_equal(lh_json_str(created, "target"), "hr");
    const json_t *details = json_object_get(created, "details");
    assert_string_equal(lh_json_str(details, "kind"), "postgres");
    assert_string_equal(lh_json_str(details, "location"), "db.example:5433/hr");
    assert_int_equal(json_object_size(details), 2);
    assert_string_equal(lh_json_str(deleted, "action"), "source.deleted");
    assert_string_equal(lh_json_str(deleted, "actor"), "bob");
    assert_false(contains(evs, PW_PG));
    assert_false(contains(evs, "etl")); /* not even the user name */
    json_decref(evs);
    lh_sources_close(s);
    lh_test_cat_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_list_get_delete),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_persistence_and_where_the_password_is),
        cmocka_unit_test(test_damaged_file_is_an_error),
        cmocka_unit_test(test_failed_writes_roll_back),
        cmocka_unit_test(test_journal_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
