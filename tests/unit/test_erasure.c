/*
 * test_erasure.c: the catalog's side of erasure: tombstone sets (keys, one key column,
 * failures, persistence, the listener, every durable step failing once) and the
 * compaction commit (swap, rebase, conflicts, tombstone clear, every step failing once).
 * The engine's side (views, counting, the COPY) is tested end to end in
 * tests/e2e/test_erasure.py.
 */
#include "testutil.h"

#include "catalog/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct env {
    char *tmp, *data;
    lh_storage *st;
    lh_catalog *cat;
} env;

/* What the tombstone listener last saw. */
static int heard_calls;
static size_t heard_n;
static char heard_column[64];
static int refuse_next; /* the listener refuses its next call */

static int tomb_listener(void *ctx, const char *dataset, const char *column, const char *type,
                         const lh_tombstone_entry *entries, size_t n, lh_error *err)
{
    (void)ctx;
    (void)dataset;
    (void)type;
    (void)entries;
    if (refuse_next) {
        refuse_next = 0;
        return lh_error_set(err, LH_EINTERNAL, "refused by the test");
    }
    heard_calls++;
    heard_n = n;
    snprintf(heard_column, sizeof(heard_column), "%s", column ? column : "");
    return 0;
}

static void env_open(env *e)
{
    lh_error err;
    e->st = lh_storage_open(e->data, &err);
    if (!e->st)
        fail_msg("storage: %s", err.message);
    e->cat = lh_catalog_open(e->st, &err);
    if (!e->cat)
        fail_msg("catalog: %s", err.message);
    lh_catalog_set_tombstone_listener(e->cat, tomb_listener, NULL);
    heard_calls = 0;
    heard_n = 0;
}

static void env_close(env *e)
{
    lh_catalog_close(e->cat);
    lh_storage_close(e->st);
}

static env *env_new(const char *tag)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir(tag);
    e->data = lh_path_join(e->tmp, "data");
    env_open(e);
    return e;
}

static void env_reopen(env *e)
{
    env_close(e);
    env_open(e);
}

static void env_free(env *e)
{
    env_close(e);
    free(e->data);
    lh_test_rmdir(e->tmp);
    free(e);
}

static char *make_part(env *e, const char *id)
{
    char hex[17];
    lh_random_hex(hex, 16);
    char *key = lh_xasprintf("datasets/people/%s/part-%s.parquet", id, hex);
    lh_error err;
    char *staged = lh_storage_stage(e->st, "primary", key, &err);
    if (!staged)
        fail_msg("stage: %s", err.message);
    lh_test_write_file(staged, "PAR1....PAR1");
    if (lh_storage_commit(e->st, "primary", staged, key, &err) != 0)
        fail_msg("commit: %s", err.message);
    free(staged);
    return key;
}

/* people(id BIGINT, email VARCHAR, salary DOUBLE) with a base part and an appended one. */
static void make_people(env *e)
{
    json_t *schema =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "name", "id", "type", "BIGINT", "name",
                  "email", "type", "VARCHAR", "name", "salary", "type", "DOUBLE");
    char id[33];
    lh_random_hex(id, 32);
    for (int i = 0; i < 2; i++) {
        char *key = make_part(e, id);
        lh_catalog_commit c = {.name = "people",
                               .bucket = "primary",
                               .mode = i ? LH_MODE_APPEND : LH_MODE_CREATE,
                               .new_id = i ? NULL : id,
                               .part_key = key,
                               .part_rows = 10,
                               .part_bytes = 12,
                               .schema = schema,
                               .compression = "zstd",
                               .actor = "tester"};
        lh_error err;
        if (lh_catalog_commit_ingest(e->cat, &c, NULL, &err) != 0)
            fail_msg("ingest: %s", err.message);
        free(key);
    }
    json_decref(schema);
}

static int add(env *e, const char *column, char *const *keys, size_t n, json_t *failures,
               lh_error *err)
{
    bool added[16];
    lh_tombstone_req req = {.dataset = "people",
                            .key_column = column,
                            .keys = keys,
                            .n = n,
                            .actor = "dpo",
                            .reason = "art. 17"};
    return lh_catalog_tombstone_add(e->cat, &req, NULL, added, failures, err);
}

static size_t count_keys(env *e)
{
    char *col, *type, **keys;
    size_t n;
    lh_catalog_tombstone_keys(e->cat, "people", &col, &type, &keys, &n);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(col);
    free(type);
    return n;
}

/* ---------------------------------------------------------------- keys */

static void test_key_text(void **state)
{
    (void)state;
    static const struct {
        const char *json, *type, *want; /* want NULL: refused */
    } cases[] = {
        {"7", "BIGINT", "7"},        {"\"007\"", "BIGINT", "7"},    {"\"-12\"", "INTEGER", "-12"},
        {"\"12a\"", "BIGINT", NULL}, {"\"\"", "BIGINT", NULL},      {"1.5", "BIGINT", NULL},
        {"true", "BIGINT", NULL},    {"\"P-1\"", "VARCHAR", "P-1"}, {"\"\"", "VARCHAR", NULL},
        {"5", "VARCHAR", NULL},      {"\"x\"", "varchar", "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        lh_error err;
        char *got = lh_tombstone_key_text(v, cases[i].type, &err);
        if (cases[i].want == NULL ? got != NULL : !got || strcmp(got, cases[i].want) != 0)
            fail_msg("%s as %s: got %s", cases[i].json, cases[i].type, got ? got : "NULL");
        free(got);
        json_decref(v);
    }
    assert_true(lh_tombstone_key_type_ok("UBIGINT"));
    assert_false(lh_tombstone_key_type_ok("DOUBLE"));
    assert_false(lh_tombstone_key_type_ok("DATE"));
}

/* ---------------------------------------------------------------- sets */

static void test_add_remove_persist(void **state)
{
    (void)state;
    env *e = env_new("tomb");
    make_people(e);
    lh_error err;
    json_t *failures = json_array();
    char *keys[] = {"1", "2", "2"};
    assert_int_equal(add(e, "ID", keys, 3, failures, &err), 0); /* any case */
    assert_int_equal(json_array_size(failures), 1);             /* "2" twice */
    assert_string_equal(lh_json_str(json_array_get(failures, 0), "reason"), "already tombstoned");
    assert_int_equal(heard_n, 2);
    assert_string_equal(heard_column, "id"); /* the schema's spelling */
    assert_int_equal(count_keys(e), 2);

    /* one key column per dataset; a column that cannot be a key; no such column/dataset */
    char *other[] = {"a@x"};
    assert_int_equal(add(e, "email", other, 1, failures, &err), LH_ECONFLICT);
    assert_non_null(strstr(err.message, "'id'"));
    assert_int_equal(add(e, "salary", other, 1, failures, &err), LH_EINVAL);
    assert_int_equal(add(e, "nope", other, 1, failures, &err), LH_EINVAL);
    lh_tombstone_req ghost = {.dataset = "ghost", .key_column = "id", .keys = keys, .n = 1};
    bool added[1];
    assert_int_equal(lh_catalog_tombstone_add(e->cat, &ghost, NULL, added, failures, &err),
                     LH_ENOTFOUND);

    /* durable: a reopen finds them, with actor, reason and time */
    env_reopen(e);
    assert_int_equal(count_keys(e), 2);
    json_t *doc = lh_catalog_tombstones(e->cat, "PEOPLE", &err);
    assert_non_null(doc);
    const json_t *t = json_array_get(json_object_get(doc, "tombstones"), 0);
    assert_string_equal(lh_json_str(t, "actor"), "dpo");
    assert_string_equal(lh_json_str(t, "reason"), "art. 17");
    assert_non_null(lh_json_str(t, "deleted_at"));
    json_decref(doc);

    /* remove: unknown keys are failures; the last one deletes the file */
    json_decref(failures);
    failures = json_array();
    char *rm[] = {"1", "9"};
    lh_tombstone_req req = {.dataset = "people", .keys = rm, .n = 2, .actor = "dpo"};
    size_t removed = 0;
    assert_int_equal(lh_catalog_tombstone_remove(e->cat, &req, &removed, failures, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(json_array_size(failures), 1);
    char *rm2[] = {"2"};
    req.keys = rm2;
    req.n = 1;
    assert_int_equal(lh_catalog_tombstone_remove(e->cat, &req, &removed, failures, &err), 0);
    assert_int_equal(heard_n, 0);
    assert_true(lh_storage_size(e->st, "primary", "_catalog/tombstones/people.json") < 0);
    /* with the set empty, another column is fine */
    assert_int_equal(add(e, "email", other, 1, failures, &err), 0);
    env_reopen(e);
    assert_int_equal(count_keys(e), 1);

    /* a refused listener: nothing changes */
    refuse_next = 1;
    char *more[] = {"b@x"};
    assert_int_equal(add(e, "email", more, 1, failures, &err), LH_EINTERNAL);
    assert_int_equal(count_keys(e), 1);

    /* deleting the dataset deletes its set */
    assert_int_equal(lh_catalog_delete(e->cat, "people", "tester", &err), 0);
    assert_true(lh_storage_size(e->st, "primary", "_catalog/tombstones/people.json") < 0);
    json_decref(failures);
    env_free(e);
}

#ifdef LH_FAULT_INJECTION
/* One failing step of a tombstone add. False when the add made fewer than nth calls. */
static bool add_fails_once(lh_fault_op op, unsigned nth)
{
    env *e = env_new("tombfault");
    make_people(e);
    json_t *failures = json_array();
    char *keys[] = {"4"};
    lh_error err;
    lh_fault_arm(op, nth, 1, EIO);
    int rc = add(e, "id", keys, 1, failures, &err);
    bool fired = lh_fault_fired() > 0;
    lh_fault_reset();
    bool changed = rc == 0 || lh_error_event_not_recorded(&err);
    /* memory and the engine agree with the answer */
    if (count_keys(e) != (changed ? 1u : 0u) || heard_n != (changed ? 1u : 0u))
        fail_msg("add, %d #%u failed: rc %d, memory %zu, listener %zu", op, nth, rc, count_keys(e),
                 heard_n);
    env_reopen(e);
    if (count_keys(e) != (changed ? 1u : 0u))
        fail_msg("add, %d #%u failed: rc %d, after a reopen %zu keys", op, nth, rc, count_keys(e));
    json_decref(failures);
    env_free(e);
    return fired;
}

static void test_add_every_step_may_fail(void **state)
{
    (void)state;
    int cases = 0;
    for (int op = 0; op < LH_FAULT_OP_COUNT; op++)
        for (unsigned nth = 1; nth < 32 && add_fails_once((lh_fault_op)op, nth); nth++)
            cases++;
    print_message("%d failed steps checked\n", cases);
    assert_true(cases >= 5);
}
#endif

/* ---------------------------------------------------------------- compaction commit */

typedef struct parts {
    char *keys[4];
    size_t n;
} parts;

static void parts_of(env *e, parts *p)
{
    json_t *m = lh_catalog_get(e->cat, "people", NULL);
    p->n = 0;
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f)
    {
        if (p->n < 4)
            p->keys[p->n++] = lh_xstrdup(lh_json_str(f, "key"));
    }
    json_decref(m);
}

static void parts_free(parts *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->keys[i]);
    p->n = 0;
}

static char *dataset_id(env *e)
{
    json_t *m = lh_catalog_get(e->cat, "people", NULL);
    char *id = lh_xstrdup(lh_json_str(m, "id"));
    json_decref(m);
    return id;
}

/* Commits a compaction of a fresh part over `replaced`; with nth > 0 the nth call of op
 * (counted from the commit on, the part already written) fails. */
static int compact_faulty(env *e, char *const *replaced, size_t n, char *const *applied, size_t na,
                          bool *cleared, char **part_out, lh_fault_op op, unsigned nth,
                          lh_error *err)
{
    char *id = dataset_id(e);
    char *part = make_part(e, id);
    lh_catalog_compaction c = {.name = "people",
                               .expected_id = id,
                               .replaced = replaced,
                               .n_replaced = n,
                               .part_key = part,
                               .part_rows = 19,
                               .part_bytes = 12,
                               .applied = applied,
                               .n_applied = na,
                               .actor = "tester"};
#ifdef LH_FAULT_INJECTION
    if (nth)
        lh_fault_arm(op, nth, 1, EIO);
#else
    (void)op;
    (void)nth;
#endif
    int rc = lh_catalog_commit_compaction(e->cat, &c, cleared, err);
    if (rc && !lh_error_event_not_recorded(err))
        lh_storage_delete(e->st, "primary", part, NULL);
    free(id);
    if (part_out)
        *part_out = part;
    else
        free(part);
    return rc;
}

static int compact(env *e, char *const *replaced, size_t n, char *const *applied, size_t na,
                   bool *cleared, char **part_out, lh_error *err)
{
    return compact_faulty(e, replaced, n, applied, na, cleared, part_out, LH_FAULT_OPEN, 0, err);
}

static void test_compaction_commit(void **state)
{
    (void)state;
    env *e = env_new("compact");
    make_people(e);
    json_t *failures = json_array();
    char *keys[] = {"3"};
    lh_error err;
    assert_int_equal(add(e, "id", keys, 1, failures, &err), 0);
    parts old;
    parts_of(e, &old);
    assert_int_equal(old.n, 2);

    /* rebase: a compaction that read only the first part keeps the second after it, and
     * leaves the tombstones (the second part's rows were not filtered) */
    bool cleared = true;
    char *part = NULL;
    assert_int_equal(compact(e, old.keys, 1, keys, 1, &cleared, &part, &err), 0);
    assert_false(cleared);
    parts now;
    parts_of(e, &now);
    assert_int_equal(now.n, 2);
    assert_string_equal(now.keys[0], part);
    assert_string_equal(now.keys[1], old.keys[1]);
    assert_true(lh_storage_size(e->st, "primary", old.keys[0]) < 0); /* no retirer: gone */
    assert_int_equal(count_keys(e), 1);
    free(part);

    /* a compaction that read a part no longer listed lost the race */
    assert_int_equal(compact(e, old.keys, 2, keys, 1, &cleared, NULL, &err), LH_ECONFLICT);
    parts check;
    parts_of(e, &check);
    assert_int_equal(check.n, 2);
    parts_free(&check);

    /* all parts: one file, tombstones cleared, 19 rows */
    assert_int_equal(compact(e, now.keys, 2, keys, 1, &cleared, &part, &err), 0);
    assert_true(cleared);
    assert_int_equal(count_keys(e), 0);
    json_t *m = lh_catalog_get(e->cat, "people", NULL);
    assert_int_equal(json_array_size(json_object_get(m, "files")), 1);
    assert_int_equal(lh_json_int(m, "row_count", 0), 19);
    assert_non_null(lh_json_str(m, "compacted_at"));
    json_decref(m);
    env_reopen(e);
    assert_int_equal(count_keys(e), 0);
    parts_of(e, &check);
    assert_int_equal(check.n, 1);
    assert_string_equal(check.keys[0], part);
    parts_free(&check);
    free(part);
    parts_free(&now);
    parts_free(&old);
    json_decref(failures);
    env_free(e);
}

#ifdef LH_FAULT_INJECTION
/* One failing step of a compaction commit: old (2 parts, 1 tombstone) or new (1 part),
 * the same after a reopen, every listed part present, nothing else under datasets/. */
static bool compaction_fails_once(lh_fault_op op, unsigned nth)
{
    env *e = env_new("compactfault");
    make_people(e);
    json_t *failures = json_array();
    char *keys[] = {"3"};
    lh_error err;
    assert_int_equal(add(e, "id", keys, 1, failures, &err), 0);
    parts old;
    parts_of(e, &old);
    bool cleared = false;
    int rc = compact_faulty(e, old.keys, old.n, keys, 1, &cleared, NULL, op, nth, &err);
    bool fired = lh_fault_fired() > 0;
    lh_fault_reset();
    bool changed = rc == 0 || lh_error_event_not_recorded(&err);
    parts now;
    parts_of(e, &now);
    if (now.n != (changed ? 1u : 2u))
        fail_msg("compaction, %d #%u failed: rc %d (%s) but %zu parts listed", op, nth, rc,
                 rc ? err.message : "", now.n);
    if (!changed && count_keys(e) != 1)
        fail_msg("compaction, %d #%u failed: rolled back but the tombstone is gone", op, nth);
    size_t keys_now = count_keys(e);
    env_reopen(e);
    parts after;
    parts_of(e, &after);
    if (after.n != now.n || count_keys(e) != keys_now)
        fail_msg("compaction, %d #%u failed: %zu parts / %zu keys before a reopen, %zu / %zu after",
                 op, nth, now.n, keys_now, after.n, count_keys(e));
    char **listed = NULL;
    size_t n = 0;
    assert_int_equal(lh_storage_list(e->st, "primary", "datasets/", &listed, &n, &err), 0);
    assert_int_equal(n, after.n);
    for (size_t i = 0; i < after.n; i++)
        assert_true(lh_storage_size(e->st, "primary", after.keys[i]) >= 0);
    lh_storage_keys_free(listed);
    parts_free(&after);
    parts_free(&now);
    parts_free(&old);
    json_decref(failures);
    env_free(e);
    return fired;
}

static void test_compaction_every_step_may_fail(void **state)
{
    (void)state;
    int cases = 0;
    for (int op = 0; op < LH_FAULT_OP_COUNT; op++)
        for (unsigned nth = 1; nth < 32 && compaction_fails_once((lh_fault_op)op, nth); nth++)
            cases++;
    print_message("%d failed steps checked\n", cases);
    assert_true(cases >= 8);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_add_remove_persist),
        cmocka_unit_test(test_compaction_commit),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test(test_add_every_step_may_fail),
        cmocka_unit_test(test_compaction_every_step_may_fail),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
