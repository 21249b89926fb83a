/*
 * test_retention.c: the retention sweep (compliance/retention.c, issue 12 item 4): one
 * subject per case of status and clock (general PII; biometric by its own date and by
 * BIPA's 3 years after the last interaction, whichever is first), Erased and
 * RetentionExpired skipped, photo files checked against the storage root, the report
 * deterministic and written atomically 0600, manifests never changed, and the report file
 * never taken for a manifest or an audit log by their listings.
 */
#include "testutil.h"

#include "compliance/compliance.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct env {
    char *tmp, *data, *subjects, *root;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));
    lh_error err;
    e->tmp = lh_test_tmpdir("retention");
    e->data = lh_path_join(e->tmp, "data");
    e->subjects = lh_path_join(e->data, "_catalog/subjects");
    e->root = lh_path_join(e->tmp, "photos");
    assert_int_equal(lh_fs_mkdirs(e->subjects, 0700, &err), 0);
    assert_int_equal(lh_fs_mkdirs(e->root, 0700, &err), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    free(e->data);
    free(e->subjects);
    free(e->root);
    lh_test_rmdir(e->tmp);
    free(e);
    return 0;
}

/* A manifest written as a file (as a server wrote it, or as an older version did: the
 * sweep must judge what is stored, including a biometric_until past BIPA's cap that
 * today's validation would refuse). */
static void manifest(env *e, const char *id, const char *status, const char *general_until,
                     const char *bio_until, const char *last, const char *consent,
                     const char *data_path)
{
    char key[LH_SUBJECT_KEY_MAX];
    assert_int_equal(lh_subject_key(id, key, sizeof(key), NULL), 0);
    json_t *m =
        json_pack("{s:s,s:s,s:s,s:{s:{s:s},s:{s:s,s:s}},s:{s:s?,s:s?,s:s?},s:[],s:n}", "schema",
                  "subject_manifest.v1", "candidate_id", id, "status", status, "consent", "general",
                  "status", "Given", "biometric", "status", consent, "version_hash", "sha256:v1",
                  "retention", "general_pii_until", general_until, "biometric_until", bio_until,
                  "last_interaction_at", last, "datasets", "audit_log_chain_root");
    if (data_path)
        json_object_set_new(m, "biometric_collection",
                            json_pack("{s:s,s:s}", "data_path", data_path, "template_hash", "00"));
    char *path = lh_xasprintf("%s/%s.json", e->subjects, key);
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    lh_test_write_file(path, text);
    free(text);
    free(path);
    json_decref(m);
}

static const json_t *find(const json_t *report, const char *id)
{
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(report, "subjects"), i, s)
    {
        if (strcmp(lh_json_str(s, "candidate_id"), id) == 0)
            return s;
    }
    return NULL;
}

/* The clock names due for id, "general_pii,biometric" style ("" when listed without). */
static void expect_due(const json_t *report, const char *id, const char *want)
{
    const json_t *s = find(report, id);
    if (!want) {
        if (s && json_array_size(json_object_get(s, "due")) > 0)
            fail_msg("%s: nothing should be due", id);
        return;
    }
    if (!s)
        fail_msg("%s: not in the report (expected due: %s)", id, want);
    lh_buf b;
    lh_buf_init(&b);
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(s, "due"), i, d)
        lh_buf_printf(&b, "%s%s", i ? "," : "", lh_json_str(d, "clock"));
    if (strcmp(b.data ? b.data : "", want) != 0)
        fail_msg("%s: due '%s', expected '%s'", id, b.data ? b.data : "", want);
    lh_buf_free(&b);
}

static char *read_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    lh_error err;
    if (lh_fs_read_all(path, 1 << 24, &data, &len, &err) != 0)
        fail_msg("read %s: %s", path, err.message);
    return data;
}

/* Every manifest's bytes, concatenated in name order (to prove nothing changed). */
static char *manifests_snapshot(env *e)
{
    lh_buf b;
    lh_buf_init(&b);
    struct dirent **names;
    int n = scandir(e->subjects, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]->d_name);
        if (l > 5 && strcmp(names[i]->d_name + l - 5, ".json") == 0) {
            char *p = lh_path_join(e->subjects, names[i]->d_name);
            char *t = read_file(p);
            lh_buf_printf(&b, "%s=%s\n", names[i]->d_name, t);
            free(t);
            free(p);
        }
        free(names[i]);
    }
    free(names);
    return b.data;
}

#define AS_OF "2030-06-01T00:00:00Z"

static void test_statuses_and_clocks(void **state)
{
    env *e = *state;
    lh_error err;
    /* general PII clock: past, exactly at as-of, future, unset */
    manifest(e, "G-past", "Active", "2030-01-01T00:00:00Z", NULL, NULL, "NeverCollected", NULL);
    manifest(e, "G-now", "Active", AS_OF, NULL, NULL, "NeverCollected", NULL);
    manifest(e, "G-future", "Active", "2030-06-01T00:00:01Z", NULL, NULL, "NeverCollected", NULL);
    manifest(e, "G-unset", "Active", NULL, NULL, NULL, "NeverCollected", NULL);
    /* biometric: its own date past; within BIPA and future; BIPA cap first (the stored
     * date is later than 3 years after the last interaction); only the last interaction
     * known; no biometric data at all (the clock does not apply) */
    manifest(e, "B-own", "Active", NULL, "2030-05-01T00:00:00Z", "2028-01-01T00:00:00Z", "Given",
             "B-own/a.jpg");
    manifest(e, "B-future", "Active", NULL, "2030-12-01T00:00:00Z", "2028-01-01T00:00:00Z", "Given",
             "B-future/a.jpg");
    manifest(e, "B-cap", "Active", NULL, "2031-12-01T00:00:00Z", "2027-01-15T00:00:00Z", "Given",
             "B-cap/a.jpg");
    manifest(e, "B-last-only", "Withdrawn", NULL, NULL, "2027-05-31T00:00:00Z", "Withdrawn", NULL);
    manifest(e, "B-last-recent", "Active", NULL, NULL, "2027-06-02T00:00:00Z", "Given", NULL);
    manifest(e, "B-none", "Active", NULL, "2020-01-01T00:00:00Z", "2019-01-01T00:00:00Z",
             "NeverCollected", NULL);
    manifest(e, "B-noclock", "Active", NULL, NULL, NULL, "Given", "B-noclock/a.jpg");
    /* both clocks */
    manifest(e, "Both", "Withdrawn", "2029-01-01T00:00:00Z", "2029-01-01T00:00:00Z",
             "2028-01-01T00:00:00Z", "Given", NULL);
    /* skipped whatever their clocks */
    manifest(e, "X-erased", "Erased", "2020-01-01T00:00:00Z", NULL, NULL, "NeverCollected", NULL);
    manifest(e, "X-expired", "RetentionExpired", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z",
             "2019-01-01T00:00:00Z", "Given", NULL);

    char *before = manifests_snapshot(e);
    lh_retention_opts o = {.data_dir = e->data, .as_of = AS_OF};
    json_t *r = lh_retention_sweep(&o, &err);
    assert_non_null(r);
    expect_due(r, "G-past", "general_pii");
    expect_due(r, "G-now", "general_pii");
    expect_due(r, "G-future", NULL);
    expect_due(r, "G-unset", NULL);
    expect_due(r, "B-own", "biometric");
    expect_due(r, "B-future", NULL);
    expect_due(r, "B-cap", "biometric");
    expect_due(r, "B-last-only", "biometric");
    expect_due(r, "B-last-recent", NULL);
    expect_due(r, "B-none", NULL);
    expect_due(r, "B-noclock", NULL);
    expect_due(r, "Both", "general_pii,biometric");
    assert_null(find(r, "X-erased"));
    assert_null(find(r, "X-expired"));
    assert_null(find(r, "G-unset")); /* nothing to report: no line */

    const json_t *d = json_array_get(json_object_get(find(r, "B-cap"), "due"), 0);
    assert_string_equal(lh_json_str(d, "basis"), "bipa_3_years_after_last_interaction");
    assert_string_equal(lh_json_str(d, "until"), "2030-01-15T00:00:00Z");
    d = json_array_get(json_object_get(find(r, "B-own"), "due"), 0);
    assert_string_equal(lh_json_str(d, "basis"), "retention.biometric_until");
    assert_string_equal(lh_json_str(d, "until"), "2030-05-01T00:00:00Z");
    const json_t *w = json_object_get(find(r, "B-noclock"), "warnings");
    assert_string_equal(json_string_value(json_array_get(w, 0)), "biometric_data_without_clock");

    const json_t *sum = json_object_get(r, "summary");
    assert_string_equal(lh_json_str(sum, "as_of"), AS_OF);
    assert_string_equal(lh_json_str(sum, "date"), "2030-06-01");
    assert_int_equal(lh_json_int(sum, "subjects_checked", 0), 12);
    assert_int_equal(lh_json_int(json_object_get(sum, "skipped"), "Erased", 0), 1);
    assert_int_equal(lh_json_int(json_object_get(sum, "skipped"), "RetentionExpired", 0), 1);
    assert_int_equal(lh_json_int(sum, "subjects_due", 0), 6);
    assert_int_equal(lh_json_int(json_object_get(sum, "due"), "general_pii", 0), 3);
    assert_int_equal(lh_json_int(json_object_get(sum, "due"), "biometric", 0), 4);

    /* nothing changed; the report is deterministic and written atomically 0600 */
    char *path = NULL, *path2 = NULL;
    assert_int_equal(lh_retention_write(e->data, r, &path, &err), 0);
    assert_non_null(strstr(path, "_catalog/subjects/_retention_sweep_2030-06-01.jsonl"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *first = read_file(path);
    json_t *r2 = lh_retention_sweep(&o, &err);
    assert_int_equal(lh_retention_write(e->data, r2, &path2, &err), 0);
    assert_string_equal(path, path2);
    char *second = read_file(path2);
    assert_string_equal(first, second);
    char *rendered = lh_retention_render(r);
    assert_string_equal(rendered, first);
    /* the first line is the summary, then one line per subject in key order */
    assert_non_null(strstr(first, "\"kind\":\"summary\""));
    assert_true(strstr(first, "\"kind\":\"summary\"") < strstr(first, "\"kind\":\"subject\""));
    assert_true(strstr(first, "\"B-cap\"") < strstr(first, "\"G-past\""));
    char *after = manifests_snapshot(e);
    assert_string_equal(before, after);
    free(rendered);
    free(first);
    free(second);
    free(path);
    free(path2);
    free(before);
    free(after);
    json_decref(r);
    json_decref(r2);
}

/* The default as-of is the last second of the current UTC day: a run at any time of the
 * day sees the same instant. A bad --as-of is refused. */
static void test_as_of(void **state)
{
    env *e = *state;
    lh_error err;
    lh_retention_opts o = {.data_dir = e->data};
    json_t *r = lh_retention_sweep(&o, &err);
    const char *as_of = lh_json_str(json_object_get(r, "summary"), "as_of");
    assert_non_null(strstr(as_of, "T23:59:59Z"));
    time_t now = time(NULL);
    struct tm tm;
    char today[16];
    gmtime_r(&now, &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    assert_int_equal(strncmp(as_of, today, 10), 0);
    json_decref(r);
    o.as_of = "next tuesday";
    assert_null(lh_retention_sweep(&o, &err));
    assert_int_equal(err.code, LH_EINVAL);
    o.as_of = "2030-06-01T02:00:00+02:00"; /* an offset is converted to UTC */
    r = lh_retention_sweep(&o, &err);
    assert_string_equal(lh_json_str(json_object_get(r, "summary"), "as_of"),
                        "2030-06-01T00:00:00Z");
    json_decref(r);
    /* a data folder without subjects: an empty report, not an error */
    char *empty = lh_path_join(e->tmp, "empty");
    o.data_dir = empty;
    r = lh_retention_sweep(&o, &err);
    assert_non_null(r);
    assert_int_equal(lh_json_int(json_object_get(r, "summary"), "subjects_checked", -1), 0);
    json_decref(r);
    free(empty);
}

/* With the storage root: the photo files of a subject are listed, a file the manifest does
 * not name and a named file that is gone are reported. */
static void test_photo_files(void **state)
{
    env *e = *state;
    lh_error err;
    manifest(e, "P-1", "Active", NULL, "2030-01-01T00:00:00Z", "2029-01-01T00:00:00Z", "Given",
             "P-1/b.jpg");
    manifest(e, "P-2", "Active", NULL, "2031-01-01T00:00:00Z", "2029-01-01T00:00:00Z", "Given",
             "P-2/gone.jpg");
    char *d1 = lh_path_join(e->root, "P-1"), *d2 = lh_path_join(e->root, "P-2");
    assert_int_equal(lh_fs_mkdirs(d1, 0700, &err), 0);
    assert_int_equal(lh_fs_mkdirs(d2, 0700, &err), 0);
    char *f1 = lh_path_join(d1, "b.jpg"), *f2 = lh_path_join(d1, "a.jpg"),
         *f3 = lh_path_join(d1, ".c.jpg.part");
    lh_test_write_file(f1, "x");
    lh_test_write_file(f2, "x");
    lh_test_write_file(f3, "x");
    lh_retention_opts o = {.data_dir = e->data, .as_of = AS_OF, .storage_root = e->root};
    json_t *r = lh_retention_sweep(&o, &err);
    const json_t *p1 = find(r, "P-1");
    assert_non_null(p1);
    const json_t *files = json_object_get(p1, "photo_files");
    assert_int_equal(json_array_size(files), 2);
    assert_string_equal(json_string_value(json_array_get(files, 0)), "P-1/a.jpg");
    assert_string_equal(json_string_value(json_array_get(files, 1)), "P-1/b.jpg");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p1, "warnings"), 0)),
                        "unreferenced_photo_file:P-1/a.jpg");
    const json_t *p2 = find(r, "P-2");
    assert_non_null(p2);
    assert_int_equal(json_array_size(json_object_get(p2, "due")), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p2, "warnings"), 0)),
                        "photo_file_missing");
    assert_true(
        json_is_true(json_object_get(json_object_get(r, "summary"), "photo_files_checked")));
    json_decref(r);
    free(d1);
    free(d2);
    free(f1);
    free(f2);
    free(f3);
}

static int count_id(void *ctx, const char *id)
{
    (void)id;
    (*(int *)ctx)++;
    return 0;
}

/* A report beside the manifests and logs is neither a manifest nor an audit log for their
 * listings; a manifest stored under another id's key is reported, not judged. */
static void test_report_never_taken_for_a_subject(void **state)
{
    env *e = *state;
    lh_error err;
    char *keyfile = lh_path_join(e->tmp, "audit.key");
    lh_test_write_file(keyfile, "retention-test-audit-key-0123456789abcdef\n");
    lh_storage *st = lh_storage_open(e->data, &err);
    lh_catalog *cat = lh_catalog_open(st, &err);
    lh_subjects *subj = lh_subjects_open(st, cat, &err);
    lh_audit *audit = lh_audit_open(e->data, keyfile, &err);
    assert_non_null(audit);
    lh_subjects_attach_audit(subj, audit);
    json_t *body = json_pack("{s:{s:s}}", "retention", "general_pii_until", "2020-01-01T00:00:00Z");
    bool created;
    assert_int_equal(lh_subjects_put(subj, "L-1", body, "t", &created, NULL, &err), 0);
    json_decref(body);
    static const char *const fields[] = {"email"};
    lh_audit_entry x = {.candidate_id = "L-1",
                        .accessor_kind = "agent",
                        .fields = fields,
                        .n_fields = 1,
                        .result = "success"};
    assert_int_equal(lh_audit_append(audit, &x, NULL, &err), 0);
    /* a manifest whose content names another subject than its key */
    char *stray = lh_path_join(e->subjects, "M-9.json");
    lh_test_write_file(stray, "{\"schema\":\"subject_manifest.v1\",\"candidate_id\":\"M-8\","
                              "\"status\":\"Active\"}");
    lh_retention_opts o = {.data_dir = e->data, .as_of = AS_OF};
    json_t *r = lh_retention_sweep(&o, &err);
    assert_int_equal(lh_retention_write(e->data, r, NULL, &err), 0);
    const json_t *bad = json_object_get(json_object_get(r, "summary"), "unreadable_manifests");
    assert_int_equal(json_array_size(bad), 1);
    assert_string_equal(json_string_value(json_array_get(bad, 0)), "M-9.json");
    expect_due(r, "L-1", "general_pii");
    json_decref(r);
    /* the listings see L-1 (and the stray manifest file), never the report */
    json_t *list = lh_subjects_list(subj, NULL, NULL, 100, &err);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(list, "subjects"), i, m)
        assert_null(strstr(lh_json_str(m, "candidate_id"), "retention"));
    assert_int_equal(json_array_size(json_object_get(list, "subjects")), 2);
    json_decref(list);
    int logs = 0;
    assert_int_equal(lh_audit_list(audit, count_id, &logs, &err), 0);
    assert_int_equal(logs, 1);
    lh_audit_verdict v;
    assert_int_equal(lh_audit_verify(audit, "L-1", NULL, &v, &err), 0);
    assert_true(v.verified);
    lh_audit_close(audit);
    lh_subjects_close(subj);
    lh_catalog_close(cat);
    lh_storage_close(st);
    free(stray);
    free(keyfile);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_statuses_and_clocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_as_of, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photo_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_never_taken_for_a_subject, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
