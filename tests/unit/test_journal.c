/*
 * test_journal.c: the catalog's event journal: append and read by seq, reopen, a torn
 * tail dropped at open, a damaged line skipped, a failure at each step of an append (the
 * event stays pending and is written exactly once, in order, with the next one or at
 * close), and the events the catalog's own mutations record.
 */
#include "testutil.h"

#include "catalog/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *journal_path(lh_test_cat *e)
{
    return lh_path_join(e->data, "_catalog/events.jsonl");
}

/* The journal file's text ("" when absent). Caller frees. */
static char *journal_text(lh_test_cat *e)
{
    char *path = journal_path(e);
    char *text = NULL;
    size_t len = 0;
    if (lh_fs_read_all(path, 1 << 24, &text, &len, NULL) != 0)
        text = lh_xstrdup("");
    free(path);
    return text;
}

/* Checks that the file holds exactly seq 1..n, one complete line each, and that the
 * reader returns the same. */
static void assert_journal_is(lh_test_cat *e, int64_t n)
{
    char *text = journal_text(e);
    int64_t lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        json_t *ev = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(ev);
        assert_int_equal(lh_json_int(ev, "seq", 0), ++lines);
        json_decref(ev);
    }
    assert_int_equal(lines, n);
    assert_true(*text == '\0' || text[strlen(text) - 1] == '\n');
    free(text);
    int64_t next = -1;
    json_t *evs = lh_catalog_events(e->cat, 0, 100000, &next);
    assert_int_equal((int64_t)json_array_size(evs), n);
    for (size_t i = 0; i < json_array_size(evs); i++)
        assert_int_equal(lh_json_int(json_array_get(evs, i), "seq", 0), (json_int_t)i + 1);
    assert_int_equal(next, n);
    json_decref(evs);
}

static int record(lh_test_cat *e, const char *action, const char *target, lh_error *err)
{
    return lh_catalog_record(e->cat, "tester", action, target, json_pack("{s:s}", "note", target),
                             err);
}

static void test_append_read_reopen(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_basic");
    lh_error err;
    assert_journal_is(e, 0);
    assert_int_equal(record(e, "profile.created", "p1", &err), 0);
    assert_int_equal(record(e, "profile.deleted", "p1", &err), 0);
    assert_int_equal(lh_catalog_record(e->cat, NULL, "buckets.migrated", NULL, NULL, &err), 0);
    assert_journal_is(e, 3);

    int64_t next = 0;
    json_t *evs = lh_catalog_events(e->cat, 1, 1, &next);
    assert_int_equal(json_array_size(evs), 1);
    json_t *ev = json_array_get(evs, 0);
    assert_int_equal(lh_json_int(ev, "seq", 0), 2);
    assert_string_equal(lh_json_str(ev, "actor"), "tester");
    assert_string_equal(lh_json_str(ev, "action"), "profile.deleted");
    assert_string_equal(lh_json_str(ev, "target"), "p1");
    assert_string_equal(lh_json_str(json_object_get(ev, "details"), "note"), "p1");
    assert_non_null(lh_json_str(ev, "at"));
    assert_int_equal(next, 2);
    json_decref(evs);
    evs = lh_catalog_events(e->cat, 3, 10, &next);
    assert_int_equal(json_array_size(evs), 0);
    assert_int_equal(next, 3); /* nothing new: since stays */
    json_decref(evs);
    evs = lh_catalog_events(e->cat, 2, 10, NULL);
    ev = json_array_get(evs, 0);
    assert_string_equal(lh_json_str(ev, "actor"), "anonymous");
    assert_true(json_is_null(json_object_get(ev, "details")));
    json_decref(evs);

    lh_test_cat_reopen(e);
    assert_journal_is(e, 3);
    assert_int_equal(record(e, "profile.created", "p2", &err), 0);
    assert_journal_is(e, 4); /* seq continues after a restart */
    lh_test_cat_free(e);
}

static void test_torn_tail_dropped(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_torn");
    lh_error err;
    assert_int_equal(record(e, "profile.created", "a", &err), 0);
    assert_int_equal(record(e, "profile.created", "b", &err), 0);
    lh_test_cat_close(e);
    /* A crash mid-append: part of a third line, no newline. */
    char *path = journal_path(e);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("{\"seq\":3,\"at\":\"2026-", f);
    fclose(f);
    lh_test_cat_open(e);
    char *text = journal_text(e);
    assert_null(strstr(text, "\"seq\":3")); /* rewritten without the torn line */
    free(text);
    assert_journal_is(e, 2);
    assert_int_equal(record(e, "profile.created", "c", &err), 0);
    assert_journal_is(e, 3);
    json_t *evs = lh_catalog_events(e->cat, 2, 10, NULL);
    assert_string_equal(lh_json_str(json_array_get(evs, 0), "target"), "c");
    json_decref(evs);
    free(path);
    lh_test_cat_free(e);
}

static void test_damaged_line_skipped(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_damaged");
    lh_error err;
    assert_int_equal(record(e, "profile.created", "a", &err), 0);
    lh_test_cat_close(e);
    char *path = journal_path(e);
    FILE *f = fopen(path, "a");
    fputs("not json at all\n", f);
    fputs("{\"seq\":2,\"at\":\"x\",\"actor\":\"t\",\"action\":\"profile.created\",\"target\":"
          "\"b\",\"details\":null}\n",
          f);
    fclose(f);
    lh_test_cat_open(e); /* never a failure of the whole journal */
    json_t *evs = lh_catalog_events(e->cat, 0, 10, NULL);
    assert_int_equal(json_array_size(evs), 2);
    json_decref(evs);
    char *text = journal_text(e);
    assert_non_null(strstr(text, "not json at all")); /* damage is kept, never deleted */
    free(text);
    assert_int_equal(record(e, "profile.created", "c", &err), 0);
    evs = lh_catalog_events(e->cat, 2, 10, NULL);
    assert_int_equal(lh_json_int(json_array_get(evs, 0), "seq", 0), 3);
    json_decref(evs);
    free(path);
    lh_test_cat_free(e);
}

/* A failure at each step of an append (first append: creation, folder fsync; later:
 * open, write, fsync): the call reports event_not_recorded, readers do not see the event,
 * and the next record writes both, in order, exactly once. */
static void test_fault_at_each_step(void **state)
{
    (void)state;
    static const struct {
        lh_fault_op op;
        bool first; /* the fault hits the append that creates the file */
    } cases[] = {
        {LH_FAULT_OPEN, true},   {LH_FAULT_MKDIR, true},     {LH_FAULT_WRITE, true},
        {LH_FAULT_FSYNC, true},  {LH_FAULT_FSYNC_DIR, true}, {LH_FAULT_OPEN, false},
        {LH_FAULT_WRITE, false}, {LH_FAULT_FSYNC, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        lh_test_cat *e = lh_test_cat_new("journal_fault");
        lh_error err;
        if (!cases[c].first)
            assert_int_equal(record(e, "profile.created", "before", &err), 0);
        if (cases[c].op == LH_FAULT_MKDIR) {
            /* mkdir happens only when _catalog/ is missing. */
            char *dir = lh_path_join(e->data, "_catalog");
            lh_fs_remove_tree(dir, NULL);
            free(dir);
        }
        int64_t base = cases[c].first ? 0 : 1;
        lh_fault_arm(cases[c].op, 1, 1, EIO);
        int rc = record(e, "profile.created", "failed", &err);
        unsigned fired = lh_fault_fired();
        lh_fault_reset();
        assert_int_equal(fired, 1);
        assert_int_equal(rc, LH_EIO);
        assert_true(lh_error_event_not_recorded(&err));
        assert_string_equal(lh_error_kind(&err), LH_KIND_EVENT_NOT_RECORDED);
        json_t *evs = lh_catalog_events(e->cat, 0, 100, NULL);
        assert_int_equal((int64_t)json_array_size(evs), base); /* only durable events */
        json_decref(evs);

        assert_int_equal(record(e, "profile.created", "next", &err), 0);
        assert_journal_is(e, base + 2);
        evs = lh_catalog_events(e->cat, base, 100, NULL);
        assert_string_equal(lh_json_str(json_array_get(evs, 0), "target"), "failed");
        assert_string_equal(lh_json_str(json_array_get(evs, 1), "target"), "next");
        json_decref(evs);
        lh_test_cat_reopen(e);
        assert_journal_is(e, base + 2);
        lh_test_cat_free(e);
    }
}

/* An event still pending is written at close. */
static void test_pending_written_at_close(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_close");
    lh_error err;
    assert_int_equal(record(e, "profile.created", "a", &err), 0);
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_equal(record(e, "profile.created", "b", &err), LH_EIO);
    lh_fault_reset();
    lh_test_cat_reopen(e);
    assert_journal_is(e, 2);
    lh_test_cat_free(e);
}

/* The catalog's own mutations record their events, with the actor and no file contents. */
/* The event tap (issue 14): hears each event once it is durable, in seq order; a pending
 * event (its append failed) is heard when a later append writes it; a cleared tap hears
 * nothing more. */
typedef struct {
    json_t *heard; /* seqs */
} tap_log;

static void tap_fn(void *ctx, const json_t *event)
{
    tap_log *t = ctx;
    json_array_append_new(t->heard, json_integer(lh_json_int(event, "seq", -1)));
}

static void test_event_tap(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_tap");
    tap_log t = {json_array()};
    lh_error err;
    lh_catalog_set_event_tap(e->cat, tap_fn, &t);
    assert_int_equal(lh_catalog_record(e->cat, "a", "x.one", "t", NULL, &err), 0);
    lh_fault_arm(LH_FAULT_FSYNC, 1, 1, EIO);
    assert_int_not_equal(lh_catalog_record(e->cat, "a", "x.two", "t", NULL, &err), 0);
    lh_fault_reset();
    assert_int_equal(json_array_size(t.heard), 1); /* not durable: not heard */
    assert_int_equal(lh_catalog_record(e->cat, "a", "x.three", "t", NULL, &err), 0);
    assert_int_equal(json_array_size(t.heard), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_array_get(t.heard, i)), (json_int_t)i + 1);
    lh_catalog_set_event_tap(e->cat, NULL, NULL);
    assert_int_equal(lh_catalog_record(e->cat, "a", "x.four", "t", NULL, &err), 0);
    assert_int_equal(json_array_size(t.heard), 3);
    json_decref(t.heard);
    lh_test_cat_free(e);
}

static void test_catalog_mutations_recorded(void **state)
{
    (void)state;
    lh_test_cat *e = lh_test_cat_new("journal_catalog");
    lh_error err;
    const char *key = "datasets/people/0123456789abcdef/part-1.parquet";
    char *staged = lh_storage_stage(e->st, LH_BUCKET_PRIMARY, key, &err);
    assert_non_null(staged);
    lh_test_write_file(staged, "PAR1secret-contentPAR1");
    assert_int_equal(lh_storage_commit(e->st, LH_BUCKET_PRIMARY, staged, key, &err), 0);
    free(staged);
    json_t *schema = json_pack("[{s:s,s:s}]", "name", "id", "type", "BIGINT");
    lh_catalog_commit c = {
        .name = "people",
        .bucket = LH_BUCKET_PRIMARY,
        .mode = LH_MODE_CREATE,
        .part_key = key,
        .part_rows = 7,
        .part_bytes = 22,
        .schema = schema,
        .compression = "zstd",
        .actor = "alice",
    };
    assert_int_equal(lh_catalog_commit_ingest(e->cat, &c, NULL, &err), 0);
    json_t *patch = json_pack("{s:s}", "description", "staff");
    assert_int_equal(lh_catalog_patch_metadata(e->cat, "people", patch, "bob", NULL, &err), 0);
    json_decref(patch);
    assert_int_equal(lh_catalog_delete(e->cat, "people", "carol", &err), 0);

    json_t *evs = lh_catalog_events(e->cat, 0, 10, NULL);
    assert_int_equal(json_array_size(evs), 3);
    static const char *const want[][2] = {
        {"dataset.created", "alice"},
        {"dataset.metadata_edited", "bob"},
        {"dataset.deleted", "carol"},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = json_array_get(evs, i);
        assert_string_equal(lh_json_str(ev, "action"), want[i][0]);
        assert_string_equal(lh_json_str(ev, "actor"), want[i][1]);
        assert_string_equal(lh_json_str(ev, "target"), "people");
    }
    json_t *d = json_object_get(json_array_get(evs, 0), "details");
    assert_int_equal(lh_json_int(d, "rows", 0), 7);
    assert_string_equal(lh_json_str(d, "part"), key);
    assert_string_equal(lh_json_str(d, "bucket"), LH_BUCKET_PRIMARY);
    d = json_object_get(json_array_get(evs, 1), "details");
    assert_string_equal(lh_json_str(json_object_get(d, "patch"), "description"), "staff");
    json_decref(evs);
    char *text = journal_text(e);
    assert_null(strstr(text, "secret-content"));
    free(text);

    /* A commit whose event cannot be written happened: the caller is told, the part and
     * manifest stay, and the event lands with the next one. */
    c.mode = LH_MODE_CREATE;
    c.name = "people2";
    key = "datasets/people2/0123456789abcdef/part-1.parquet";
    c.part_key = key;
    staged = lh_storage_stage(e->st, LH_BUCKET_PRIMARY, key, &err);
    lh_test_write_file(staged, "PAR1PAR1");
    assert_int_equal(lh_storage_commit(e->st, LH_BUCKET_PRIMARY, staged, key, &err), 0);
    free(staged);
    /* The manifest commit uses one fsync; the journal's append is the second. */
    lh_fault_arm(LH_FAULT_FSYNC, 2, 1, EIO);
    int rc = lh_catalog_commit_ingest(e->cat, &c, NULL, &err);
    lh_fault_reset();
    assert_int_equal(rc, LH_EIO);
    assert_true(lh_error_event_not_recorded(&err));
    assert_true(lh_catalog_exists(e->cat, "people2"));
    lh_test_cat_reopen(e); /* close writes the pending event */
    assert_true(lh_catalog_exists(e->cat, "people2"));
    assert_journal_is(e, 4);
    evs = lh_catalog_events(e->cat, 3, 10, NULL);
    assert_string_equal(lh_json_str(json_array_get(evs, 0), "target"), "people2");
    json_decref(evs);
    json_decref(schema);
    lh_test_cat_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_read_reopen),
        cmocka_unit_test(test_torn_tail_dropped),
        cmocka_unit_test(test_damaged_line_skipped),
        cmocka_unit_test(test_fault_at_each_step),
        cmocka_unit_test(test_pending_written_at_close),
        cmocka_unit_test(test_catalog_mutations_recorded),
        cmocka_unit_test(test_event_tap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
