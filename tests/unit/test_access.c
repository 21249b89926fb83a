/*
 * test_access.c: access auditing (compliance/access.c) and the accessor members of audit
 * rows: an agent's profile and model in their sorted place (and absent otherwise, so the
 * known answer keeps its bytes), the purpose / trace id headers' checks, the subject sink
 * (one row per key, durable, the accessor and fields as given; a failed sync fails it),
 * the dataset-level and denial events of the journal (and a failed journal append
 * failing the read).
 */
#include "testutil.h"

#include "compliance/compliance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct env {
    lh_test_cat *c;
    char *keyfile;
    lh_audit *audit;
} env;

static int setup(void **state)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->c = lh_test_cat_new("access");
    e->keyfile = lh_path_join(e->c->tmp, "audit.key");
    lh_test_write_file(e->keyfile, "0123456789abcdef0123456789abcdef-access-key\n");
    lh_error err;
    e->audit = lh_audit_open(e->c->data, e->keyfile, &err);
    if (!e->audit)
        fail_msg("open: %s", err.message);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
#ifdef LH_FAULT_INJECTION
    lh_fault_reset();
#endif
    lh_audit_close(e->audit);
    free(e->keyfile);
    lh_test_cat_free(e->c);
    free(e);
    return 0;
}

static lh_principal principal(const char *name, lh_role role, char *profile)
{
    return (lh_principal){.name = (char *)name, .role = role, .profile = profile};
}

/* ---------------------------------------------------------------- accessor members */

static void test_accessor_members(void **state)
{
    (void)state;
    lh_audit_entry ka;
    lh_audit_known_answer_entry(&ka);
    char *canonical = NULL, hmac[LH_AUDIT_HMAC_HEX];
    const unsigned char *key = (const unsigned char *)LH_AUDIT_KA_KEY;
    size_t key_len = strlen(LH_AUDIT_KA_KEY);
    /* empty optional members are absent: the known answer is unchanged */
    ka.profile = "";
    ka.model = NULL;
    assert_int_equal(lh_audit_row_sign(key, key_len, &ka, LH_AUDIT_GENESIS, &canonical, hmac, NULL),
                     0);
    assert_string_equal(hmac, LH_AUDIT_KA_HMAC);
    free(canonical);
    /* set: between kind and purpose, model before profile, verbatim */
    ka.profile = "screening";
    ka.model = "gpt-4o <&> ü";
    assert_int_equal(lh_audit_row_sign(key, key_len, &ka, LH_AUDIT_GENESIS, &canonical, hmac, NULL),
                     0);
    assert_string_equal(canonical,
                        "{\"accessor\":{\"daemon\":\"gateway\",\"kind\":\"agent\",\"model\":"
                        "\"gpt-4o <&> \xc3\xbc\",\"profile\":\"screening\",\"purpose\":"
                        "\"validator_worker_lookup\",\"trace_id\":\"t-1\"},\"candidate_id\":"
                        "\"WORKER-1\",\"fields_accessed\":[\"candidate_id\",\"email\"],\"prev_"
                        "chain_hash\":\"GENESIS\",\"result\":\"success\",\"schema\":\"subject_"
                        "audit_row.v1\",\"ts\":\"2026-05-03T12:00:00.000000001Z\"}");
    /* the general canonicaliser agrees byte for byte */
    lh_buf again;
    lh_buf_init(&again);
    assert_int_equal(lh_jcs_canonicalize(canonical, strlen(canonical), &again, NULL), 0);
    assert_int_equal(again.len, strlen(canonical));
    assert_memory_equal(again.data, canonical, again.len);
    assert_string_not_equal(hmac, LH_AUDIT_KA_HMAC);
    lh_buf_free(&again);
    free(canonical);
    /* a model name that is not UTF-8 is refused like every accessor string */
    ka.model = "\xff";
    lh_error err;
    assert_int_equal(lh_audit_row_sign(key, key_len, &ka, LH_AUDIT_GENESIS, &canonical, hmac, &err),
                     LH_EINVAL);
}

/* ---------------------------------------------------------------- headers */

static void test_headers(void **state)
{
    env *e = *state;
    lh_error err;
    lh_principal agent = principal("bot", LH_ROLE_AGENT, NULL);
    lh_principal analyst = principal("ana", LH_ROLE_ANALYST, NULL);
    /* agents must give a purpose; an empty header is no purpose */
    assert_null(lh_access_audit_new(e->audit, e->c->cat, &agent, NULL, "t", &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_string_equal(err.kind, "purpose_required");
    assert_null(lh_access_audit_new(e->audit, e->c->cat, &agent, "", NULL, &err));
    assert_string_equal(err.kind, "purpose_required");
    /* analysts need not */
    lh_access_audit *a = lh_access_audit_new(e->audit, e->c->cat, &analyst, NULL, NULL, &err);
    assert_non_null(a);
    assert_true(lh_access_audit_sink(a) == lh_access_sink);
    lh_access_audit_free(a);
    /* no audit chain: no sink, so the engine refuses row-level reads */
    a = lh_access_audit_new(NULL, e->c->cat, &analyst, NULL, NULL, &err);
    assert_non_null(a);
    assert_null(lh_access_audit_sink(a));
    lh_access_audit_free(a);
    /* not UTF-8, or too long: 400 invalid_header, for the purpose and the trace id */
    char *big = lh_xmalloc(LH_ACCESS_HEADER_MAX + 2);
    memset(big, 'p', LH_ACCESS_HEADER_MAX + 1);
    big[LH_ACCESS_HEADER_MAX + 1] = '\0';
    const char *bad[] = {"\xc3\x28", "ok\xff", big};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(lh_access_audit_new(e->audit, e->c->cat, &agent, bad[i], NULL, &err));
        assert_string_equal(err.kind, "invalid_header");
        assert_null(lh_access_audit_new(e->audit, e->c->cat, &agent, "p", bad[i], &err));
        assert_string_equal(err.kind, "invalid_header");
        assert_non_null(strstr(err.message, "X-Lakehouse-Trace-Id"));
    }
    /* exactly the limit is fine */
    big[LH_ACCESS_HEADER_MAX] = '\0';
    a = lh_access_audit_new(e->audit, e->c->cat, &agent, big, big, &err);
    assert_non_null(a);
    lh_access_audit_free(a);
    free(big);
}

/* ---------------------------------------------------------------- the sink */

static void test_sink_rows(void **state)
{
    env *e = *state;
    lh_error err;
    /* a profile that no longer exists: the profile id is kept, no model is invented */
    lh_principal agent = principal("bot", LH_ROLE_AGENT, "gone-profile");
    const char *purpose = "screening <&> \xc3\xbc\xe2\x9c\x93";
    const char *trace = "trace <x>&\"y\"";
    lh_access_audit *a = lh_access_audit_new(e->audit, e->c->cat, &agent, purpose, trace, &err);
    assert_non_null(a);
    const char *keys[] = {"W-1", NULL, "W/2"};
    const char *fields[] = {"candidate_id", "email_hash"};
    lh_audit_stats before, after;
    lh_audit_get_stats(e->audit, &before);
    assert_int_equal(lh_access_sink(a, keys, 3, fields, 2, &err), 0);
    assert_int_equal(lh_access_sink(a, keys, 1, fields, 1, &err), 0);
    lh_audit_get_stats(e->audit, &after);
    assert_int_equal(after.rows - before.rows, 3);
    /* one journal sync per call at most (the batch is one group commit) */
    assert_true(after.syncs - before.syncs <= 2);

    json_t *rows = NULL;
    lh_audit_verdict v;
    assert_int_equal(lh_audit_read(e->audit, "W-1", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_true(v.verified);
    assert_int_equal(json_array_size(rows), 2);
    json_t *r = json_array_get(rows, 0);
    json_t *acc = json_object_get(r, "accessor");
    assert_string_equal(json_string_value(json_object_get(acc, "kind")), "agent");
    assert_string_equal(json_string_value(json_object_get(acc, "daemon")), "bot");
    assert_string_equal(json_string_value(json_object_get(acc, "profile")), "gone-profile");
    assert_null(json_object_get(acc, "model"));
    assert_string_equal(json_string_value(json_object_get(acc, "purpose")), purpose);
    assert_string_equal(json_string_value(json_object_get(acc, "trace_id")), trace);
    assert_string_equal(json_string_value(json_object_get(r, "candidate_id")), "W-1");
    assert_string_equal(json_string_value(json_object_get(r, "result")), "success");
    json_t *fa = json_object_get(r, "fields_accessed");
    assert_int_equal(json_array_size(fa), 2);
    assert_string_equal(json_string_value(json_array_get(fa, 1)), "email_hash");
    fa = json_object_get(json_array_get(rows, 1), "fields_accessed");
    assert_int_equal(json_array_size(fa), 1);
    json_decref(rows);
    assert_int_equal(lh_audit_verify(e->audit, "W/2", NULL, &v, &err), 0);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 1);
    /* an analyst's rows carry no profile member at all */
    lh_principal analyst = principal("ana", LH_ROLE_ANALYST, NULL);
    lh_access_audit *b = lh_access_audit_new(e->audit, e->c->cat, &analyst, NULL, NULL, &err);
    assert_int_equal(lh_access_sink(b, keys, 1, fields, 2, &err), 0);
    assert_int_equal(lh_audit_read(e->audit, "W-1", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_true(v.verified);
    acc = json_object_get(json_array_get(rows, 2), "accessor");
    assert_string_equal(json_string_value(json_object_get(acc, "kind")), "analyst");
    assert_null(json_object_get(acc, "profile"));
    assert_string_equal(json_string_value(json_object_get(acc, "purpose")), "");
    json_decref(rows);
    /* a key that cannot be a subject id fails the call: the read is not served */
    const char *badkey[] = {"a\nb"};
    assert_int_equal(lh_access_sink(b, badkey, 1, fields, 2, &err), LH_EIO);
    assert_string_equal(err.kind, "audit_write_failed");
    lh_access_audit_free(b);
    lh_access_audit_free(a);
}

static void test_sink_sync_failure(void **state)
{
#ifdef LH_FAULT_INJECTION
    env *e = *state;
    lh_error err;
    lh_principal analyst = principal("ana", LH_ROLE_ANALYST, NULL);
    lh_access_audit *a = lh_access_audit_new(e->audit, e->c->cat, &analyst, "p", NULL, &err);
    const char *keys[] = {"S-1", "S-2"};
    const char *fields[] = {"candidate_id"};
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_equal(lh_access_sink(a, keys, 2, fields, 1, &err), LH_EIO);
    assert_string_equal(err.kind, "audit_write_failed");
    assert_non_null(strstr(err.message, "audit rows could not be written"));
    lh_fault_reset();
    /* the next call recovers (checkpoint) and is acknowledged; chains verify */
    assert_int_equal(lh_access_sink(a, keys, 2, fields, 1, &err), 0);
    lh_audit_verdict v;
    assert_int_equal(lh_audit_verify(e->audit, "S-1", NULL, &v, &err), 0);
    assert_true(v.verified);
    lh_access_audit_free(a);
#else
    (void)state;
    skip();
#endif
}

/* ---------------------------------------------------------------- journal events */

static json_t *events_of(env *e, const char *action)
{
    json_t *all = lh_catalog_events(e->c->cat, 0, 100000, NULL);
    json_t *out = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "action")), action) == 0)
            json_array_append(out, ev);
    }
    json_decref(all);
    return out;
}

static void test_dataset_records(void **state)
{
    env *e = *state;
    lh_error err;
    lh_principal analyst = principal("ana", LH_ROLE_ANALYST, NULL);
    lh_access_audit *a =
        lh_access_audit_new(e->audit, e->c->cat, &analyst, "stats <&>", "t-9", &err);
    char *ds[] = {"orders", "people", NULL};
    lh_subject_access acc = {.kind = LH_ACCESS_AGGREGATE, .datasets = ds};
    lh_sql_fingerprint("SELECT count(*) FROM people", acc.fingerprint);
    /* sha256sum of the text */
    assert_string_equal(acc.fingerprint,
                        "5d720d6edc904c1ed09d151902405a4d2f43348c787b598d009060bb356be2c8");
    assert_int_equal(lh_access_record(a, &acc, &err), 0);
    /* ROWS and NONE leave no event (ROWS leaves audit rows instead) */
    acc.kind = LH_ACCESS_ROWS;
    assert_int_equal(lh_access_record(a, &acc, &err), 0);
    acc.kind = LH_ACCESS_NONE;
    assert_int_equal(lh_access_record(a, &acc, &err), 0);
    acc.kind = LH_ACCESS_UNATTRIBUTED;
    snprintf(acc.reason, sizeof(acc.reason), "the key column is not selected");
    assert_int_equal(lh_access_record(a, &acc, &err), 0);

    json_t *evs = events_of(e, LH_ACCESS_ACTION);
    assert_int_equal(json_array_size(evs), 2);
    json_t *ev = json_array_get(evs, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "actor")), "ana");
    assert_string_equal(json_string_value(json_object_get(ev, "target")), "orders,people");
    json_t *d = json_object_get(ev, "details");
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "aggregate");
    assert_string_equal(json_string_value(json_object_get(d, "role")), "analyst");
    assert_string_equal(json_string_value(json_object_get(d, "purpose")), "stats <&>");
    assert_string_equal(json_string_value(json_object_get(d, "trace_id")), "t-9");
    assert_string_equal(json_string_value(json_object_get(d, "fingerprint")), acc.fingerprint);
    assert_int_equal(json_array_size(json_object_get(d, "datasets")), 2);
    assert_null(json_object_get(d, "profile"));
    d = json_object_get(json_array_get(evs, 1), "details");
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "unattributed");
    assert_string_equal(json_string_value(json_object_get(d, "reason")),
                        "the key column is not selected");
    json_decref(evs);

    /* denials: an agent's 403 is recorded, an analyst's is not, nor an agent's 400 */
    lh_principal agent = principal("bot", LH_ROLE_AGENT, "prof-x");
    lh_access_audit *b = lh_access_audit_new(e->audit, e->c->cat, &agent, "p", NULL, &err);
    lh_error denial;
    lh_error_setk(&denial, LH_EFORBIDDEN, "unattributed_access", "select the key or aggregate");
    assert_int_equal(lh_access_record_denied(b, "SELECT email FROM people", &denial, &err), 0);
    assert_int_equal(lh_access_record_denied(a, "SELECT email FROM people", &denial, &err), 0);
    lh_error_setk(&denial, LH_EINVAL, "sql_error", "syntax");
    assert_int_equal(lh_access_record_denied(b, "SELEC", &denial, &err), 0);
    evs = events_of(e, LH_ACCESS_DENIED_ACTION);
    assert_int_equal(json_array_size(evs), 1);
    d = json_object_get(json_array_get(evs, 0), "details");
    assert_string_equal(json_string_value(json_object_get(d, "error")), "unattributed_access");
    assert_string_equal(json_string_value(json_object_get(d, "profile")), "prof-x");
    char fp[65];
    lh_sql_fingerprint("SELECT email FROM people", fp);
    assert_string_equal(json_string_value(json_object_get(d, "fingerprint")), fp);
    json_decref(evs);
    lh_access_audit_free(b);
    lh_access_audit_free(a);
}

static void test_dataset_record_failure(void **state)
{
#ifdef LH_FAULT_INJECTION
    env *e = *state;
    lh_error err;
    lh_principal analyst = principal("ana", LH_ROLE_ANALYST, NULL);
    lh_access_audit *a = lh_access_audit_new(e->audit, e->c->cat, &analyst, NULL, NULL, &err);
    char *ds[] = {"people", NULL};
    lh_subject_access acc = {.kind = LH_ACCESS_AGGREGATE, .datasets = ds};
    lh_sql_fingerprint("x", acc.fingerprint);
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_equal(lh_access_record(a, &acc, &err), LH_EIO);
    assert_string_equal(err.kind, "audit_write_failed");
    lh_fault_reset();
    lh_access_audit_free(a);
#else
    (void)state;
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accessor_members),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_record_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
