/*
 * test_profiles.c: model profiles in the catalog: validation of every field, bindings
 * that must resolve, persistence across a restart, the key guard on delete, unresolved
 * bindings after a dataset is deleted, their journal events, and the query policy of an
 * agent bound to a profile (exactly the bindings; identity includes them).
 */
#include "testutil.h"

#include "auth/auth.h"
#include "catalog/catalog.h"
#include "query/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A dataset named name with one fake part. */
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
    if (lh_catalog_commit_ingest(e->cat, &c, NULL, &err) != 0)
        fail_msg("commit: %s", err.message);
    json_decref(schema);
    free(staged);
    free(key);
}

static json_t *spec(const char *id, const char *bindings_json)
{
    json_t *b = json_loads(bindings_json, 0, NULL);
    assert_non_null(b);
    return json_pack("{s:s,s:s,s:o}", "id", id, "model_name", "gpt-x", "bound_datasets", b);
}

static int create(lh_test_cat *e, json_t *s, lh_error *err)
{
    int rc = lh_catalog_profile_create(e->cat, s, "admin1", NULL, err);
    json_decref(s);
    return rc;
}

static void test_validation(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("prof_valid");
    make_dataset(e, "people");
    lh_error err;
    static const struct {
        const char *body;
        int code;
        const char *says;
    } cases[] = {
        {"{\"id\":\"Bad\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"]}", LH_EINVAL,
         "profile id"},
        {"{\"id\":\"-x\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"]}", LH_EINVAL,
         "profile id"},
        {"{\"id\":\"a_b\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"]}", LH_EINVAL,
         "profile id"},
        {"{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
         "\"model_name\":\"m\",\"bound_datasets\":[\"people\"]}",
         LH_EINVAL, "profile id"},
        {"{\"id\":\"ok\",\"bound_datasets\":[\"people\"]}", LH_EINVAL, "model_name"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[]}", LH_EINVAL, "bound_datasets"},
        {"{\"id\":\"ok\",\"model_name\":\"m\"}", LH_EINVAL, "bound_datasets"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"ghost\"]}", LH_EINVAL,
         "'ghost'"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"people\",\"PEOPLE\"]}",
         LH_EINVAL, "twice"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[3]}", LH_EINVAL, "not a string"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"],\"bucket\":\"nope\"}",
         LH_ENOTFOUND, "nope"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"],\"index_config\":3}",
         LH_EINVAL, "index_config"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"],\"embed_model\":1}",
         LH_EINVAL, "embed_model"},
        {"{\"id\":\"ok\",\"model_name\":\"m\",\"bound_datasets\":[\"people\"],\"extra\":1}",
         LH_EINVAL, "unknown field 'extra'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *body = json_loads(cases[i].body, 0, NULL);
        assert_non_null(body);
        int rc = lh_catalog_profile_create(e->cat, body, "a", NULL, &err);
        json_decref(body);
        if (rc != cases[i].code || !strstr(err.message, cases[i].says))
            fail_msg("case %zu: rc %d (%s), expected %d mentioning '%s'", i, rc,
                     rc ? err.message : "", cases[i].code, cases[i].says);
    }
    json_t *evs = lh_catalog_events(e->cat, 0, 100, NULL);
    assert_int_equal(json_array_size(evs), 1); /* only the dataset: refusals record nothing */
    json_decref(evs);
    assert_int_equal(create(e, spec("ok", "[\"people\"]"), &err), 0);
    assert_int_equal(create(e, spec("ok", "[\"people\"]"), &err), LH_EEXISTS);
    lh_test_cat_free(e);
}

static void test_persist_unresolved_and_delete(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("prof_persist");
    make_dataset(e, "people");
    make_dataset(e, "orders");
    lh_error err;
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:[s,s],s:{s:i},s:s,s:s}", "id", "screening", "model_name", "gpt-x",
                  "description", "CV screening", "bound_datasets", "people", "orders",
                  "index_config", "k", 5, "embed_model", "bge-small", "bucket", "primary");
    json_t *out = NULL;
    assert_int_equal(lh_catalog_profile_create(e->cat, body, "admin1", &out, &err), 0);
    json_decref(body);
    assert_string_equal(lh_json_str(out, "created_by"), "admin1");
    assert_non_null(lh_json_str(out, "created_at"));
    assert_int_equal(json_array_size(json_object_get(out, "unresolved")), 0);
    json_decref(out);
    assert_int_equal(create(e, spec("another", "[\"orders\"]"), &err), 0);

    lh_test_cat_close(e);
    lh_test_cat_open(e);
    json_t *list = lh_catalog_profile_list(e->cat);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(lh_json_str(json_array_get(list, 0), "id"), "another"); /* sorted */
    json_t *p = json_array_get(list, 1);
    assert_string_equal(lh_json_str(p, "model_name"), "gpt-x");
    assert_string_equal(lh_json_str(p, "description"), "CV screening");
    assert_string_equal(lh_json_str(p, "embed_model"), "bge-small");
    assert_int_equal(lh_json_int(json_object_get(p, "index_config"), "k", 0), 5);
    assert_string_equal(lh_json_str(p, "bucket"), "primary");
    json_decref(list);

    /* A bound dataset deleted later: still bound, reported unresolved. */
    assert_int_equal(lh_catalog_delete(e->cat, "orders", "t", &err), 0);
    p = lh_catalog_profile_get(e->cat, "screening", &err);
    assert_int_equal(json_array_size(json_object_get(p, "unresolved")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "unresolved"), 0)),
                        "orders");
    json_decref(p);

    assert_int_equal(lh_catalog_profile_delete(e->cat, "nope", "t", &err), LH_ENOTFOUND);
    assert_non_null(strstr(err.message, "another, screening"));
    assert_int_equal(lh_catalog_profile_delete(e->cat, "screening", "admin2", &err), 0);
    assert_false(lh_catalog_profile_exists(e->cat, "screening"));
    lh_test_cat_close(e);
    lh_test_cat_open(e);
    assert_false(lh_catalog_profile_exists(e->cat, "screening"));
    assert_true(lh_catalog_profile_exists(e->cat, "another"));

    /* Events: created x2, deleted, with the actor. */
    json_t *evs = lh_catalog_events(e->cat, 0, 100, NULL);
    int created = 0, deleted = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        const char *a = lh_json_str(ev, "action");
        if (strcmp(a, "profile.created") == 0)
            created++;
        if (strcmp(a, "profile.deleted") == 0) {
            deleted++;
            assert_string_equal(lh_json_str(ev, "actor"), "admin2");
            assert_string_equal(lh_json_str(ev, "target"), "screening");
        }
    }
    assert_int_equal(created, 2);
    assert_int_equal(deleted, 1);
    json_decref(evs);
    lh_test_cat_free(e);
}

static size_t guard(void *ctx, const char *id, lh_buf *holders)
{
    (void)ctx;
    if (strcmp(id, "held") != 0)
        return 0;
    lh_buf_puts(holders, "bot1, bot2");
    return 2;
}

static void test_delete_refused_while_keys_bound(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("prof_guard");
    make_dataset(e, "people");
    lh_catalog_set_profile_guard(e->cat, guard, NULL);
    lh_error err;
    assert_int_equal(create(e, spec("held", "[\"people\"]"), &err), 0);
    assert_int_equal(lh_catalog_profile_delete(e->cat, "held", "t", &err), LH_ECONFLICT);
    assert_non_null(strstr(err.message, "bot1, bot2"));
    assert_true(lh_catalog_profile_exists(e->cat, "held"));
    lh_test_cat_free(e);
}

/* The query policy of an agent bound to a profile: exactly the bindings that exist; the
 * identity changes with the bindings. */
static void test_policy_of_bound_agent(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("prof_policy");
    make_dataset(e, "people");
    make_dataset(e, "orders");
    make_dataset(e, "salaries");
    lh_error err;
    assert_int_equal(create(e, spec("p1", "[\"people\",\"orders\"]"), &err), 0);
    assert_int_equal(create(e, spec("p2", "[\"people\"]"), &err), 0);
    lh_principal a1 = {"bot", LH_ROLE_AGENT, "p1", NULL, NULL};
    lh_principal a2 = {"bot", LH_ROLE_AGENT, "p2", NULL, NULL};
    lh_principal gone = {"bot", LH_ROLE_AGENT, "deleted-profile", NULL, NULL};
    lh_sql_policy *p1 = lh_sql_policy_for(e->cat, &a1);
    lh_sql_policy *p2 = lh_sql_policy_for(e->cat, &a2);
    lh_sql_policy *pg = lh_sql_policy_for(e->cat, &gone);
    assert_int_equal(p1->may_read(p1->ctx, "people"), LH_REL_ALLOW);
    assert_int_equal(p1->may_read(p1->ctx, "ORDERS"), LH_REL_ALLOW);
    assert_int_equal(p1->may_read(p1->ctx, "salaries"), LH_REL_DENY);
    assert_int_equal(p1->may_read(p1->ctx, "nothing"), LH_REL_DENY);
    assert_int_equal(p2->may_read(p2->ctx, "orders"), LH_REL_DENY);
    assert_int_equal(pg->may_read(pg->ctx, "people"), LH_REL_DENY);
    assert_non_null(strstr(p1->allowed_hint, "people"));
    assert_non_null(strstr(p1->allowed_hint, "orders"));
    assert_null(strstr(p1->allowed_hint, "salaries"));
    assert_string_not_equal(p1->identity, p2->identity);
    assert_non_null(strstr(p1->identity, "orders"));
    lh_sql_policy_free(p1);
    lh_sql_policy_free(p2);
    lh_sql_policy_free(pg);
    /* A bound relation deleted: refused like any missing relation. */
    assert_int_equal(lh_catalog_delete(e->cat, "orders", "t", &err), 0);
    p1 = lh_sql_policy_for(e->cat, &a1);
    assert_int_equal(p1->may_read(p1->ctx, "orders"), LH_REL_DENY);
    assert_int_equal(p1->may_read(p1->ctx, "people"), LH_REL_ALLOW);
    lh_sql_policy_free(p1);
    lh_test_cat_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_persist_unresolved_and_delete),
        cmocka_unit_test(test_delete_refused_while_keys_bound),
        cmocka_unit_test(test_policy_of_bound_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
