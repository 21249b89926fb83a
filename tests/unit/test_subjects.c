/*
 * test_subjects.c: subject manifests (compliance/subjects.c): the storage-key sanitiser,
 * the collision rule (a second id of one key is refused, never merged), validation of
 * every field, the one-shot prefix strip, the chain-root mirror, and crash safety of a
 * manifest write (a failure at each step leaves the old manifest whole).
 */
#include "testutil.h"

#include "compliance/compliance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct env {
    char *tmp;
    lh_storage *st;
    lh_catalog *cat;
    lh_subjects *subj;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));
    lh_error err;
    e->tmp = lh_test_tmpdir("subjects");
    if (!(e->st = lh_storage_open(e->tmp, &err)) || !(e->cat = lh_catalog_open(e->st, &err)) ||
        !(e->subj = lh_subjects_open(e->st, e->cat, &err)))
        fail_msg("open: %s", err.message);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    lh_subjects_close(e->subj);
    lh_catalog_close(e->cat);
    lh_storage_close(e->st);
    lh_test_rmdir(e->tmp);
    free(e);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("bad test JSON %s: %s", text, je.text);
    return v;
}

static int put(env *e, const char *id, const char *body_text, bool *created, lh_error *err)
{
    json_t *body = parse(body_text);
    bool c = false;
    int rc = lh_subjects_put(e->subj, id, body, "tester", created ? created : &c, NULL, err);
    json_decref(body);
    return rc;
}

/* ---------------------------------------------------------------- sanitiser */

/* The sanitiser is the audit chain's (lh_subject_key); what subjects rely on: distinct ids
 * give distinct keys made of safe file-name bytes, and bad ids are refused. */
static void test_key_sanitiser(void **state)
{
    (void)state;
    static const char *const ids[] = {"WORKER-1", "a.b", "a/b",  "a_b", "a%2Fb", "../../etc",
                                      ".hidden",  "_x",  "José", "x y", "X Y",   "x_y"};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    char keys[sizeof(ids) / sizeof(ids[0])][LH_SUBJECT_KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        lh_error err;
        assert_int_equal(lh_subject_key(ids[i], keys[i], LH_SUBJECT_KEY_MAX, &err), 0);
        assert_true(keys[i][0] != '.' && keys[i][0] != '_');
        for (const char *p = keys[i]; *p; p++)
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789._-%",
                                   *p));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(keys[i], keys[j]);
    }
    assert_string_equal(keys[0], "WORKER-1");
    static const char *const bad[] = {"", "tab\there", "\xff\xfe", "nl\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char key[LH_SUBJECT_KEY_MAX];
        assert_int_equal(lh_subject_key(bad[i], key, sizeof(key), NULL), LH_EINVAL);
    }
    char longid[LH_SUBJECT_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    char key[LH_SUBJECT_KEY_MAX];
    assert_int_equal(lh_subject_key(longid, key, sizeof(key), NULL), LH_EINVAL);
    /* a valid id whose escaped key would not fit a file name: refused by subjects */
    env *e = NULL;
    setup((void **)&e);
    char wide[3 * 90 + 1] = "";
    for (int i = 0; i < 90; i++)
        strcat(wide, "\xc3\xa9"); /* é: 2 bytes, 6 escaped */
    json_t *body = json_object();
    bool created;
    lh_error err;
    assert_int_equal(lh_subjects_put(e->subj, wide, body, "t", &created, NULL, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "too long once escaped"));
    json_decref(body);
    teardown((void **)&e);
}

static void test_strip_prefix_once(void **state)
{
    (void)state;
    static const struct {
        const char *value, *prefix, *want;
    } cases[] = {
        {"W-W-1", "W-", "W-1"}, {"W-1", "W-", "1"}, {"X-1", "W-", "X-1"}, {"W-", "W-", ""},
        {"W-1", NULL, "W-1"},   {"W-1", "", "W-1"}, {"w-1", "W-", "w-1"}, /* case-sensitive */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(lh_subject_strip_prefix(cases[i].value, cases[i].prefix),
                            cases[i].want);
}

/* ---------------------------------------------------------------- collisions */

/* The sanitiser is injective, so a manifest under an id's key with another candidate_id
 * can only come from outside (a hand edit, another version's sanitiser): it is refused,
 * never merged into, nor read as the other person's. */
static void test_collision_refused_never_merged(void **state)
{
    env *e = *state;
    lh_error err;
    bool created = false;
    assert_int_equal(put(e, "a.b", "{\"status\":\"Withdrawn\"}", &created, &err), 0);
    assert_true(created);
    const char *foreign = "{\"schema\":\"subject_manifest.v1\",\"candidate_id\":\"a.b\","
                          "\"status\":\"Erased\"}";
    assert_int_equal(lh_storage_put(e->st, LH_BUCKET_PRIMARY, "_catalog/subjects/c-1.json", foreign,
                                    strlen(foreign), &err),
                     0);
    assert_int_equal(put(e, "c-1", "{\"status\":\"Active\"}", &created, &err), LH_EEXISTS);
    assert_string_equal(err.kind, "subject_key_collision");
    assert_non_null(strstr(err.message, "a.b"));
    assert_null(lh_subjects_get(e->subj, "c-1", &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    /* the chain-root mirror of c-1 does not touch it either */
    assert_int_equal(lh_subjects_root_listener(e->subj, "c-1", "ff", &err), 0);
    assert_int_equal(lh_subjects_flush_roots(e->subj, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_storage_get(e->st, LH_BUCKET_PRIMARY, "_catalog/subjects/c-1.json", 4096,
                                    &data, &len, &err),
                     0);
    assert_string_equal(data, foreign);
    free(data);
    /* a.b itself is untouched and still updatable */
    json_t *m = lh_subjects_get(e->subj, "a.b", &err);
    assert_string_equal(lh_json_str(m, "status"), "Withdrawn");
    json_decref(m);
    assert_int_equal(put(e, "a.b", "{\"status\":\"Active\"}", &created, &err), 0);
    assert_false(created);
}

/* ---------------------------------------------------------------- validation */

static void test_validation(void **state)
{
    env *e = *state;
    static const struct {
        const char *body;
        int rc;
        const char *msg; /* a part of the message */
    } cases[] = {
        {"{}", 0, NULL},
        {"{\"status\":\"Gone\"}", LH_EINVAL, "'status' must be one of Active"},
        {"{\"status\":3}", LH_EINVAL, "'status'"},
        {"{\"candidate_id\":\"other\"}", LH_EINVAL, "differs from the id in the path"},
        {"{\"schema\":\"subject_manifest.v2\"}", LH_EINVAL, "'schema' is set by the server"},
        {"{\"audit_log_chain_root\":\"00\"}", LH_EINVAL, "'audit_log_chain_root' is set by"},
        {"{\"audit_rows\":5}", LH_EINVAL, "'audit_rows' is set by"},
        {"{\"created_at\":\"2020-01-01T00:00:00Z\"}", LH_EINVAL, "'created_at' is set by"},
        {"{\"consent\":[]}", LH_EINVAL, "'consent' must be an object"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\"}}}", LH_EINVAL,
         "'consent.general.given_at' is required"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"yesterday\"}}}", LH_EINVAL,
         "'consent.general.given_at' must be an RFC 3339"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026- 1-01T00:00:00Z\"}}}",
         LH_EINVAL, "RFC 3339"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026-01-01t00:00:00z\"}}}",
         0, NULL},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026-02-30T00:00:00Z\"}}}",
         LH_EINVAL, "RFC 3339"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026-01-01T00:00:00Z\"}}}",
         0, NULL},
        {"{\"consent\":{\"general\":{\"status\":\"Withdrawn\",\"given_at\":\"2026-01-02T00:00:"
         "00Z\","
         "\"withdrawn_at\":\"2026-01-01T00:00:00Z\"}}}",
         LH_EINVAL, "is before"},
        {"{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026-01-01T00:00:00Z\","
         "\"statsu\":1}}}",
         LH_EINVAL, "unknown field 'consent.general.statsu'"},
        {"{\"consent\":{\"biometric\":{\"status\":\"Given\",\"given_at\":\"2026-01-01T00:00:00Z\"}}"
         "}",
         LH_EINVAL, "'consent.biometric.version_hash' is required"},
        {"{\"consent\":{\"biometric\":{\"status\":\"Given\",\"version_hash\":\"sha256:ab\","
         "\"given_at\":\"2026-01-01T00:00:00.123456789+02:00\"}}}",
         0, NULL},
        {"{\"consent\":{\"biometric\":{\"status\":\"NeverCollected\",\"version_hash\":\"x\"}}}",
         LH_EINVAL, "must be null while status is NeverCollected"},
        {"{\"consent\":{\"biometric\":{\"status\":\"Maybe\"}}}", LH_EINVAL,
         "'consent.biometric.status' must be one of NeverCollected, Given, Withdrawn"},
        {"{\"retention\":{\"biometric_until\":\"2027-01-01T00:00:00Z\"}}", LH_EINVAL,
         "needs 'retention.last_interaction_at'"},
        {"{\"retention\":{\"biometric_until\":\"2029-01-01T00:00:01Z\","
         "\"last_interaction_at\":\"2026-01-01T00:00:00Z\"}}",
         LH_EINVAL, "the latest allowed is 2029-01-01T00:00:00Z"},
        {"{\"retention\":{\"biometric_until\":\"2029-01-01T00:00:00Z\","
         "\"last_interaction_at\":\"2026-01-01T00:00:00Z\",\"general_pii_until\":null}}",
         0, NULL},
        {"{\"datasets\":{}}", LH_EINVAL, "'datasets' must be an array"},
        {"{\"datasets\":[{\"dataset\":\"people\",\"key_column\":\"id\",\"key_value\":\"1\"}]}",
         LH_EINVAL, "no dataset named 'people'"},
        {"{\"datasets\":[{\"dataset\":\"people\",\"key_column\":\"id\"}]}", LH_EINVAL,
         "'datasets[0].key_value' must be"},
        {"{\"x_future_field\":{\"kept\":true}}", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_error_clear(&err);
        int rc = put(e, "S-1", cases[i].body, NULL, &err);
        if (rc != cases[i].rc || (cases[i].msg && !strstr(err.message, cases[i].msg)))
            fail_msg("case %zu %s: rc %d (want %d) message '%s' (want '%s')", i, cases[i].body, rc,
                     cases[i].rc, err.message, cases[i].msg ? cases[i].msg : "");
    }
    /* what the accepted cases left: unknown field kept, nulls filled, consent merged */
    lh_error err;
    json_t *m = lh_subjects_get(e->subj, "S-1", &err);
    assert_non_null(m);
    assert_true(json_is_true(json_object_get(json_object_get(m, "x_future_field"), "kept")));
    const json_t *consent = json_object_get(m, "consent");
    assert_string_equal(lh_json_str(json_object_get(consent, "general"), "status"), "Given");
    assert_string_equal(lh_json_str(json_object_get(consent, "biometric"), "status"), "Given");
    assert_true(json_is_null(json_object_get(json_object_get(consent, "general"), "withdrawn_at")));
    assert_string_equal(lh_json_str(json_object_get(m, "retention"), "biometric_until"),
                        "2029-01-01T00:00:00Z");
    /* read-only fields may be sent back unchanged (GET, edit, PUT) */
    json_t *back = json_deep_copy(m);
    json_object_set_new(back, "status", json_string("Withdrawn"));
    bool created;
    assert_int_equal(lh_subjects_put(e->subj, "S-1", back, "t", &created, NULL, &err), 0);
    json_decref(back);
    json_decref(m);
}

/* ---------------------------------------------------------------- chain root, listing */

static void test_chain_root_mirror(void **state)
{
    env *e = *state;
    lh_error err;
    /* no manifest: nothing to mirror, not an error, nothing created */
    assert_int_equal(lh_subjects_root_listener(e->subj, "nobody", "ab", &err), 0);
    assert_int_equal(lh_subjects_flush_roots(e->subj, &err), 0);
    assert_null(lh_subjects_get(e->subj, "nobody", &err));
    assert_int_equal(put(e, "P-1", "{}", NULL, &err), 0);
    const char *root = "d13b874cb2e1ee8fcaa1f558e8fb48926205de7e0c140f5895d8370d6c43cd30";
    assert_int_equal(lh_subjects_root_listener(e->subj, "P-1", "00", &err), 0);
    assert_int_equal(lh_subjects_root_listener(e->subj, "P-1", root, &err), 0); /* newest wins */
    assert_int_equal(lh_subjects_flush_roots(e->subj, &err), 0);
    json_t *m = lh_subjects_get(e->subj, "P-1", &err);
    assert_string_equal(lh_json_str(m, "audit_log_chain_root"), root);
    json_decref(m);
    /* a client cannot move it */
    assert_int_equal(put(e, "P-1", "{\"audit_log_chain_root\":null}", NULL, &err), LH_EINVAL);
}

static void test_list_by_status(void **state)
{
    env *e = *state;
    lh_error err;
    assert_int_equal(put(e, "L-1", "{}", NULL, &err), 0);
    assert_int_equal(put(e, "L-2", "{\"status\":\"Erased\"}", NULL, &err), 0);
    assert_int_equal(put(e, "L-3", "{\"status\":\"Erased\"}", NULL, &err), 0);
    json_t *doc = lh_subjects_list(e->subj, "Erased", NULL, 100, &err);
    assert_non_null(doc);
    json_t *a = json_object_get(doc, "subjects");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(lh_json_str(json_array_get(a, 0), "candidate_id"), "L-2");
    json_decref(doc);
    /* paging: one per page, next_after chains the pages */
    doc = lh_subjects_list(e->subj, NULL, NULL, 1, &err);
    assert_int_equal(json_array_size(json_object_get(doc, "subjects")), 1);
    char *next = lh_xstrdup(lh_json_str(doc, "next_after"));
    json_decref(doc);
    doc = lh_subjects_list(e->subj, NULL, next, 10, &err);
    assert_int_equal(json_array_size(json_object_get(doc, "subjects")), 2);
    assert_true(json_is_null(json_object_get(doc, "next_after")));
    free(next);
    json_decref(doc);
    assert_null(lh_subjects_list(e->subj, "Nope", NULL, 10, &err));
    assert_int_equal(err.code, LH_EINVAL);
}

/* ---------------------------------------------------------------- with the audit chain */

static void append_rows(lh_audit *a, const char *id, int n)
{
    static const char *const fields[] = {"candidate_id", "email"};
    lh_audit_entry x = {.candidate_id = id,
                        .accessor_kind = "agent",
                        .daemon = "gateway",
                        .purpose = "screening",
                        .trace_id = "t-1",
                        .fields = fields,
                        .n_fields = 2,
                        .result = "success"};
    for (int i = 0; i < n; i++) {
        lh_error err;
        if (lh_audit_append(a, &x, NULL, &err) != 0)
            fail_msg("append: %s", err.message);
    }
}

/* Appends are mirrored into the manifest (asynchronously, flushed here); a manifest made
 * after rows exist starts at the tip; the legal response verifies the chain, and finds a
 * changed row and a deleted log. */
static void test_audit_mirror_and_legal_response(void **state)
{
    env *e = *state;
    lh_error err;
    char *keyfile = lh_path_join(e->tmp, "audit.key");
    lh_test_write_file(keyfile, "0123456789abcdef0123456789abcdef-test-key\n");
    lh_audit *audit = lh_audit_open(e->tmp, keyfile, &err);
    if (!audit)
        fail_msg("audit: %s", err.message);
    lh_subjects_attach_audit(e->subj, audit);
    assert_int_equal(put(e, "M-1", "{}", NULL, &err), 0);
    append_rows(audit, "M-1", 5);
    assert_int_equal(lh_subjects_flush_roots(e->subj, &err), 0);
    char tip[LH_AUDIT_HMAC_HEX];
    assert_int_equal(lh_audit_tip(audit, "M-1", tip, &err), 0);
    json_t *m = lh_subjects_get(e->subj, "M-1", &err);
    assert_string_equal(lh_json_str(m, "audit_log_chain_root"), tip);
    json_decref(m);
    /* rows before the manifest: it starts mirrored */
    append_rows(audit, "N-1", 2);
    assert_int_equal(put(e, "N-1", "{}", NULL, &err), 0);
    assert_int_equal(lh_audit_tip(audit, "N-1", tip, &err), 0);
    m = lh_subjects_get(e->subj, "N-1", &err);
    assert_string_equal(lh_json_str(m, "audit_log_chain_root"), tip);
    json_decref(m);

    lh_legal *lg = lh_legal_open(e->subj, e->cat, audit, NULL);
    json_t *doc = lh_legal_subject_response(lg, "M-1", NULL, NULL, &err);
    assert_non_null(doc);
    const json_t *r = json_object_get(doc, "response");
    assert_true(json_is_true(json_object_get(r, "chain_verified")));
    assert_int_equal(lh_json_int(r, "chain_rows_total", 0), 5);
    assert_int_equal(json_array_size(json_object_get(r, "rows")), 5);
    assert_false(json_is_true(json_object_get(json_object_get(r, "tampering"), "detected")));
    assert_true(json_is_null(json_object_get(doc, "signature")));
    json_decref(doc);

    /* one byte of row 3 changed: flagged at row 3 */
    char key[LH_SUBJECT_KEY_MAX];
    assert_int_equal(lh_subject_key("M-1", key, sizeof(key), NULL), 0);
    char *path = lh_xasprintf("%s/_catalog/subjects/%s.audit.jsonl", e->tmp, key);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &len, &err), 0);
    char *row3 = data;
    for (int i = 0; i < 2; i++)
        row3 = strchr(row3, '\n') + 1;
    char *p = strstr(row3, "screening");
    assert_non_null(p);
    p[0] = 'S';
    lh_test_write_file(path, data);
    doc = lh_legal_subject_response(lg, "M-1", NULL, NULL, &err);
    r = json_object_get(doc, "response");
    assert_false(json_is_true(json_object_get(r, "chain_verified")));
    const json_t *flag =
        json_array_get(json_object_get(json_object_get(r, "tampering"), "flags"), 0);
    assert_string_equal(lh_json_str(flag, "flag"), "chain_broken");
    assert_string_equal(lh_json_str(flag, "cause"), "hmac_mismatch");
    assert_int_equal(lh_json_int(flag, "row", 0), 3);
    json_decref(doc);
    /* the log deleted: the manifest still expects its root */
    assert_int_equal(unlink(path), 0);
    doc = lh_legal_subject_response(lg, "M-1", NULL, NULL, &err);
    r = json_object_get(doc, "response");
    flag = json_array_get(json_object_get(json_object_get(r, "tampering"), "flags"), 0);
    assert_string_equal(lh_json_str(flag, "flag"), "log_missing");
    json_decref(doc);
    /* no manifest and no rows: 404 */
    assert_null(lh_legal_subject_response(lg, "ghost", NULL, NULL, &err));
    assert_int_equal(err.code, LH_ENOTFOUND);

    lh_legal_close(lg);
    lh_audit_close(audit);
    free(data);
    free(path);
    free(keyfile);
}

/* ---------------------------------------------------------------- crash safety */

#ifdef LH_FAULT_INJECTION
/* Each step of a manifest write fails once: the call fails (or, after the rename, rolls
 * forward), and what GET then shows is the old manifest or the new one, whole. */
static void test_write_faults_leave_old_or_new(void **state)
{
    env *e = *state;
    lh_error err;
    assert_int_equal(put(e, "F-1", "{\"status\":\"Active\"}", NULL, &err), 0);
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE, LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR};
    const char *states[] = {"Withdrawn", "Active"};
    int flip = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        const char *want = states[flip];
        lh_fault_arm(ops[i], 1, 1, EIO);
        char body[64];
        snprintf(body, sizeof(body), "{\"status\":\"%s\"}", want);
        int rc = put(e, "F-1", body, NULL, &err);
        unsigned fired = lh_fault_fired();
        lh_fault_reset();
        json_t *m = lh_subjects_get(e->subj, "F-1", &err);
        assert_non_null(m);
        const char *now = lh_json_str(m, "status");
        if (rc == 0) {
            assert_string_equal(now, want); /* rolled forward, or the op was not used */
            flip ^= 1;
        } else {
            assert_true(fired > 0);
            assert_string_equal(now, states[flip ^ 1]); /* old state, whole */
        }
        json_decref(m);
    }
}

/* lh_storage_put_many (the backfill's batch write): a failure at each step leaves every
 * object old or new and whole; before the first rename, all old. */
static void test_put_many_faults(void **state)
{
    env *e = *state;
    lh_error err;
    char *keys[] = {"_catalog/subjects/m1.json", "_catalog/subjects/m2.json",
                    "_catalog/subjects/m3.json"};
    char *old[] = {"old-1", "old-2", "old-3"}, *neu[] = {"new-1", "new-2", "new-3"};
    size_t lens[] = {5, 5, 5};
    assert_int_equal(lh_storage_put_many(e->st, LH_BUCKET_PRIMARY, keys, old, lens, 3, &err), 0);
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE, LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR};
    unsigned failures = 0;
    for (size_t t = 0; t < 2 * sizeof(ops) / sizeof(ops[0]); t++) {
        assert_int_equal(lh_storage_put_many(e->st, LH_BUCKET_PRIMARY, keys, old, lens, 3, &err),
                         0);
        /* the first call of the op, then the second (mid-batch where there is one) */
        lh_fault_arm(ops[t / 2], 1 + t % 2, 1, EIO);
        int rc = lh_storage_put_many(e->st, LH_BUCKET_PRIMARY, keys, neu, lens, 3, &err);
        unsigned fired = lh_fault_fired();
        lh_fault_reset();
        int n_new = 0;
        for (int k = 0; k < 3; k++) {
            char *data = NULL;
            size_t len = 0;
            assert_int_equal(
                lh_storage_get(e->st, LH_BUCKET_PRIMARY, keys[k], 64, &data, &len, &err), 0);
            assert_int_equal(len, 5);
            assert_true(strcmp(data, old[k]) == 0 || strcmp(data, neu[k]) == 0);
            n_new += strcmp(data, neu[k]) == 0;
            free(data);
        }
        if (rc == 0)
            assert_int_equal(n_new, 3);
        else if (!lh_error_not_durable(&err))
            assert_int_equal(n_new, 0);
        assert_true(rc == 0 || fired > 0);
        failures += rc != 0;
        /* no staging file is left behind */
        char **list = NULL;
        size_t count = 0;
        assert_int_equal(
            lh_storage_list(e->st, LH_BUCKET_PRIMARY, "_catalog/subjects/", &list, &count, &err),
            0);
        assert_int_equal(count, 3);
        lh_storage_keys_free(list);
    }
    assert_true(failures >= 8); /* every op fails the batch at least once */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_sanitiser),
        cmocka_unit_test(test_strip_prefix_once),
        cmocka_unit_test_setup_teardown(test_collision_refused_never_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_root_mirror, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_by_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_mirror_and_legal_response, setup, teardown),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test_setup_teardown(test_write_faults_leave_old_or_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_many_faults, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
