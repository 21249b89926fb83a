/*
 * test_audit.c: the per-subject audit chain (compliance/audit.c, audit_wal.c): the known
 * answer of issue 11, the subject-key sanitiser, key files, append and verify, 50
 * concurrent appends to one subject, 8 subjects x 1,000 appends in parallel, group commit
 * (fewer syncs than rows), restart mid-chain, every tamper case located, the journal
 * replay after a crash, and a failure at each file-system step (fault hook).
 */
#include "testutil.h"

#include "compliance/compliance.h"
#include "compliance/compliance_internal.h"

#include <dirent.h>
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

static void reopen(env *e)
{
    lh_error err;
    lh_audit_close(e->audit);
    e->audit = lh_audit_open(e->data, e->keyfile, &err);
    if (!e->audit)
        fail_msg("reopen: %s", err.message);
}

/* Opens e->audit again after it was closed (and set NULL) by the test. */
static void reopen_after_close(env *e)
{
    lh_error err;
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

static void append_n(lh_audit *a, const char *id, int n)
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

    /* the direct row writer escapes exactly as the general canonicaliser: verify
     * re-canonicalises through jansson + lh_jcs_canonicalize and recomputes the HMAC */
    x.purpose = "ctl\x01\x1f \"q\" \\ \n\t \x7f </script> & \xf0\x9f\x98\x80";
    x.trace_id = "";
    x.daemon = NULL;
    assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), 0);
    v = verify(e->audit, "WORKER-1", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 3);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct worker {
    lh_audit *a;
    const char *const *ids;
    int nids;
    int n;
    int failures;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        lh_audit_entry x = entry(w->ids[i % w->nids]);
        lh_error err;
        if (lh_audit_append(w->a, &x, NULL, &err) != 0)
            w->failures++;
    }
    return NULL;
}

static void run_workers(lh_audit *a, int threads, const char *const *ids, int nids, int each)
{
    pthread_t t[64];
    worker w[64];
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.a = a, .ids = ids + (nids == 1 ? 0 : 0), .nids = nids, .n = each};
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
}

static void test_50_concurrent_one_subject(void **state)
{
    env *e = *state;
    static const char *const ids[] = {"ONE"};
    lh_audit_stats before, after;
    lh_audit_get_stats(e->audit, &before);
    run_workers(e->audit, 50, ids, 1, 1);
    lh_audit_get_stats(e->audit, &after);
    assert_int_equal(after.rows - before.rows, 50);
    assert_true(after.syncs - before.syncs <= 50);
    lh_audit_verdict v = verify(e->audit, "ONE", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 50);
    reopen(e);
    v = verify(e->audit, "ONE", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 50);
}

static void test_8_subjects_x_1000(void **state)
{
    env *e = *state;
    static const char *const ids[] = {"S-0", "S-1", "S-2", "S-3", "S-4", "S-5", "S-6", "S-7"};
    lh_audit_stats before, after;
    lh_audit_get_stats(e->audit, &before);
    /* 8 threads, each appending to all 8 subjects in turn: both serialisation within a
     * subject and parallelism across subjects are exercised. */
    run_workers(e->audit, 8, ids, 8, 1000);
    lh_audit_get_stats(e->audit, &after);
    assert_int_equal(after.rows - before.rows, 8000);
    /* group commit: the threads share syncs */
    assert_true(after.syncs - before.syncs < 8000);
    for (int i = 0; i < 8; i++) {
        lh_audit_verdict v = verify(e->audit, ids[i], NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, 1000);
    }
}

static void test_batch_one_sync(void **state)
{
    env *e = *state;
    enum { N = 1000 };
    lh_audit_entry *x = lh_xcalloc(N, sizeof(*x));
    char(*ids)[16] = lh_xcalloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "P-%d", i % 500); /* 500 people, two rows each */
        x[i] = entry(ids[i]);
    }
    lh_audit_stats before, after;
    lh_error err;
    lh_audit_get_stats(e->audit, &before);
    assert_int_equal(lh_audit_append_batch(e->audit, x, N, &err), 0);
    lh_audit_get_stats(e->audit, &after);
    assert_int_equal(after.rows - before.rows, N);
    assert_int_equal(after.syncs - before.syncs, 1);
    for (int i = 0; i < 500; i += 97) {
        lh_audit_verdict v = verify(e->audit, ids[i], NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, 2);
    }
    free(x);
    free(ids);
}

static int collect_id(void *ctx, const char *id)
{
    json_array_append_new(ctx, json_string(id));
    return 0;
}

/* lh_audit_list gives back the exact ids, whatever the escaping of their keys. */
static void test_list_ids(void **state)
{
    env *e = *state;
    static const char *const ids[] = {"a/b", "\xc3\xbc-100%", ".hidden", "_x", "plain-1"};
    for (size_t i = 0; i < 5; i++)
        append_n(e->audit, ids[i], 1);
    char *stray = lh_xasprintf("%s/_catalog/subjects/a%%2fb.audit.jsonl", e->data);
    lh_test_write_file(stray, ""); /* not a key we write (lowercase hex): ignored */
    free(stray);
    json_t *got = json_array();
    lh_error err;
    assert_int_equal(lh_audit_list(e->audit, collect_id, got, &err), 0);
    assert_int_equal(json_array_size(got), 5);
    for (size_t i = 0; i < 5; i++) {
        bool found = false;
        for (size_t j = 0; j < 5; j++)
            found |= strcmp(json_string_value(json_array_get(got, j)), ids[i]) == 0;
        assert_true(found);
    }
    json_decref(got);
}

/* Checkpoints triggered by the journal's size while 4 threads append: appenders wait at
 * the gate, the journal restarts, nothing is lost or duplicated. */
static void test_checkpoints_under_load(void **state)
{
    env *e = *state;
    static const char *const ids[] = {"K-0", "K-1", "K-2", "K-3", "K-4"};
    lh_audit_set_wal_max(e->audit, 8192);
    lh_audit_stats before, after;
    lh_audit_get_stats(e->audit, &before);
    run_workers(e->audit, 4, ids, 5, 150);
    lh_audit_get_stats(e->audit, &after);
    assert_true(after.checkpoints - before.checkpoints >= 5);
    for (int i = 0; i < 5; i++) {
        lh_audit_verdict v = verify(e->audit, ids[i], NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, 120);
    }
    /* one journal file remains */
    char *wd = lh_xasprintf("%s/_catalog/audit_wal", e->data);
    DIR *d = opendir(wd);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strstr(de->d_name, ".log") != NULL;
    closedir(d);
    free(wd);
    assert_int_equal(n, 1);
}

/* ---------------------------------------------------------------- restart, replay */

static int roots_seen;
static char last_root[LH_AUDIT_HMAC_HEX];
static int count_root(void *ctx, const char *id, const char *root, lh_error *err)
{
    (void)ctx;
    (void)err;
    assert_string_equal(id, "R");
    snprintf(last_root, sizeof(last_root), "%s", root);
    roots_seen++;
    return 0;
}

static void test_restart_mid_chain(void **state)
{
    env *e = *state;
    roots_seen = 0;
    lh_audit_set_root_listener(e->audit, count_root, NULL);
    append_n(e->audit, "R", 5);
    assert_int_equal(roots_seen, 5);
    char tip5[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(lh_audit_tip(e->audit, "R", tip5, &err), 0);
    assert_string_equal(last_root, tip5);
    reopen(e);
    append_n(e->audit, "R", 5);
    json_t *rows = NULL;
    lh_audit_verdict v;
    assert_int_equal(lh_audit_read(e->audit, "R", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 10);
    assert_string_equal(lh_json_str(json_array_get(rows, 5), "prev_chain_hash"), tip5);
    json_decref(rows);
}

/* Copies the data folder as a crash would leave it: the journal as it is now, before any
 * checkpoint. */
static char *snapshot(env *e, const char *name)
{
    char *dst = lh_path_join(e->tmp, name);
    char *cmd = lh_xasprintf("cp -a '%s' '%s'", e->data, dst);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return dst;
}

static void test_replay_after_crash(void **state)
{
    env *e = *state;
    append_n(e->audit, "C", 3); /* checkpointed by the reopen below */
    reopen(e);
    append_n(e->audit, "C", 4); /* in the journal only (and the log, unsynced) */
    append_n(e->audit, "D", 2);
    char root[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(lh_audit_tip(e->audit, "C", root, &err), 0);
    off_t records_end = (off_t)audit_wal_size(e->audit);
    char *crash = snapshot(e, "crash");
    /* As if the page cache lost the logs' tails: C loses 3 rows and keeps half a line,
     * D loses its whole log. */
    char *cp = lh_xasprintf("%s/_catalog/subjects/C.audit.jsonl", crash);
    char *dp = lh_xasprintf("%s/_catalog/subjects/D.audit.jsonl", crash);
    char *data;
    size_t len;
    assert_int_equal(lh_fs_read_all(cp, 1 << 20, &data, &len, &err), 0);
    size_t cut = 0;
    for (int lines = 0; lines < 4; cut++)
        if (data[cut] == '\n')
            lines++;
    assert_int_equal(truncate(cp, (off_t)(cut + 20)), 0);
    free(data);
    assert_int_equal(unlink(dp), 0);
    /* and the journal's records end in half a record (a write the crash cut), before
     * the preallocated zeros: dropped */
    char *wd = lh_xasprintf("%s/_catalog/audit_wal", crash);
    DIR *d = opendir(wd);
    assert_non_null(d);
    int journals = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strstr(de->d_name, ".log"))
            continue;
        char *wp = lh_xasprintf("%s/%s", wd, de->d_name);
        int fd = open(wp, O_WRONLY);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_size > records_end + 11); /* zeros follow the records */
        assert_int_equal(pwrite(fd, "\x40\0\0\0garbage", 11, records_end), 11);
        close(fd);
        free(wp);
        journals++;
    }
    closedir(d);
    free(wd);
    assert_int_equal(journals, 1);

    lh_audit *b = lh_audit_open(crash, e->keyfile, &err);
    assert_non_null(b);
    lh_audit_verdict v = verify(b, "C", root);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 7);
    assert_string_equal(v.chain_root, root);
    v = verify(b, "D", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 2);
    /* D's log exists again (the replay wrote it): its next row follows its last, not
       GENESIS (the open learns which subjects have logs after the replay) */
    append_n(b, "D", 1);
    v = verify(b, "D", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 3);
    /* the replay is idempotent: a second open adds nothing */
    lh_audit_close(b);
    b = lh_audit_open(crash, e->keyfile, &err);
    assert_non_null(b);
    v = verify(b, "C", root);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 7);
    /* and the chain continues */
    append_n(b, "C", 1);
    v = verify(b, "C", root);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 8);
    assert_int_equal(v.manifest_lag, 1);
    lh_audit_close(b);
    free(cp);
    free(dp);
    free(crash);
}

/* The one journal file of a data folder (caller frees). */
static char *journal_path(const char *data)
{
    char *wd = lh_xasprintf("%s/_catalog/audit_wal", data);
    DIR *d = opendir(wd);
    assert_non_null(d);
    char *found = NULL;
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, ".log")) {
            assert_null(found);
            found = lh_xasprintf("%s/%s", wd, de->d_name);
        }
    closedir(d);
    free(wd);
    assert_non_null(found);
    return found;
}

static int64_t journal_size(const char *data)
{
    char *p = journal_path(data);
    int64_t n = lh_fs_size(p);
    free(p);
    return n;
}

typedef struct warnings {
    int torn, zero_fill, checkpoint_replays;
} warnings;

static void count_warnings(const char *line, size_t len, void *ctx)
{
    (void)len;
    warnings *w = ctx;
    w->torn += strstr(line, "audit.journal_torn_tail") != NULL;
    w->zero_fill += strstr(line, "audit.journal_zero_fill_failed") != NULL;
    w->checkpoint_replays += strstr(line, "audit.checkpoint_replays") != NULL;
}

/* The journal is written with zeros ahead of its records (so an fdatasync after a record
 * flushes data only): the zeros after the last record are not a torn tail, a crash
 * replays every row, and a failed zero-fill costs only the preallocation. */
static void test_journal_preallocated(void **state)
{
    env *e = *state;
    warnings w = {0, 0, 0};
    lh_log_set_sink(count_warnings, &w);
    append_n(e->audit, "P", 3);
    int64_t size = journal_size(e->data);
    assert_true(size >= (int64_t)1 << 20);
    assert_true((uint64_t)size > audit_wal_size(e->audit));
    char *crash = snapshot(e, "crash");
    lh_error err;
    lh_audit *b = lh_audit_open(crash, e->keyfile, &err);
    assert_non_null(b);
    lh_audit_verdict v = verify(b, "P", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 3);
    lh_audit_close(b);
    assert_int_equal(w.torn, 0);
    /* the journal grows by whole chunks as records pass the zeros */
    append_n(e->audit, "P", 3000); /* ~1.5 MB of records */
    size = journal_size(e->data);
    assert_true((uint64_t)size > audit_wal_size(e->audit));
    assert_true(audit_wal_size(e->audit) > (uint64_t)1 << 20);
#ifdef LH_FAULT_INJECTION
    /* a zero-fill that fails (a full disk, say): the append still succeeds, written
     * past the file's end; one warning; the next append preallocates again */
    assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0); /* a new, empty journal */
    assert_int_equal(journal_size(e->data), 0);
    lh_fault_arm(LH_FAULT_ZERO_FILL, 1, 2, ENOSPC);
    append_n(e->audit, "P", 2);
    assert_int_equal(lh_fault_fired(), 2);
    lh_fault_reset();
    assert_int_equal((uint64_t)journal_size(e->data), audit_wal_size(e->audit));
    assert_int_equal(w.zero_fill, 1);
    append_n(e->audit, "P", 1);
    assert_true((uint64_t)journal_size(e->data) > audit_wal_size(e->audit));
    reopen(e);
    v = verify(e->audit, "P", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 3006);
#endif
    lh_log_set_sink(NULL, NULL);
    assert_int_equal(w.torn, 0);
    free(crash);
}

/* ---------------------------------------------------------------- tampering */

static char *g_orig;
static size_t g_orig_len;

static void restore(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, g_orig, g_orig_len), (ssize_t)g_orig_len);
    close(fd);
}

/* Offset of the start of row no (1-based) in g_orig. */
static size_t row_at(int no)
{
    size_t off = 0;
    for (int i = 1; i < no; i++)
        off = (size_t)(strchr(g_orig + off, '\n') - g_orig) + 1;
    return off;
}

static void write_parts(const char *path, const char *a, size_t an, const char *b, size_t bn,
                        const char *c, size_t cn)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, a, an), (ssize_t)an);
    assert_int_equal(write(fd, b, bn), (ssize_t)bn);
    assert_int_equal(write(fd, c, cn), (ssize_t)cn);
    close(fd);
}

static void expect_bad(env *e, const char *root, const char *reason, int64_t row)
{
    lh_audit_verdict v = verify(e->audit, "T", root);
    assert_false(v.verified);
    if (strcmp(v.reason, reason) != 0 || v.first_bad_row != row)
        fail_msg("want %s at %lld, got %s at %lld (%s)", reason, (long long)row, v.reason,
                 (long long)v.first_bad_row, v.detail);
}

static void test_tamper_cases(void **state)
{
    env *e = *state;
    append_n(e->audit, "T", 10);
    char root[LH_AUDIT_HMAC_HEX];
    lh_error err;
    assert_int_equal(lh_audit_tip(e->audit, "T", root, &err), 0);
    char *p = log_path(e, "T");
    audit_logs_settle(e->audit); /* the log writer has written every row */
    assert_int_equal(lh_fs_read_all(p, 1 << 20, &g_orig, &g_orig_len, &err), 0);
    lh_audit_verdict v = verify(e->audit, "T", root);
    assert_true(v.verified);

    /* a changed byte in a middle row: 'screening' → 'screeninG' */
    size_t r5 = row_at(5);
    char *hit = strstr(g_orig + r5, "screening");
    g_orig[hit - g_orig + 8] = 'G';
    restore(p);
    g_orig[hit - g_orig + 8] = 'g';
    expect_bad(e, root, "hmac_mismatch", 5);
    /* a byte that breaks the JSON */
    g_orig[r5] = '[';
    restore(p);
    g_orig[r5] = '{';
    expect_bad(e, root, "unparsable", 5);
    /* a deleted row */
    size_t r6 = row_at(6);
    write_parts(p, g_orig, r5, g_orig + r6, g_orig_len - r6, "", 0);
    expect_bad(e, root, "prev_mismatch", 5);
    /* two rows swapped (4 and 5) */
    size_t r4 = row_at(4);
    write_parts(p, g_orig, r4, g_orig + r5, r6 - r5, g_orig + r4, r5 - r4);
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, g_orig + r6, g_orig_len - r6), (ssize_t)(g_orig_len - r6));
    close(fd);
    expect_bad(e, root, "prev_mismatch", 4);
    /* a truncated log: whole rows cut off (the chain itself still verifies: only the
     * manifest's root shows it) */
    size_t r8 = row_at(8);
    write_parts(p, g_orig, r8, "", 0, "", 0);
    v = verify(e->audit, "T", NULL);
    assert_true(v.verified);
    expect_bad(e, root, "missing_rows", 8);
    /* cut inside a row */
    write_parts(p, g_orig, g_orig_len - 10, "", 0, "", 0);
    expect_bad(e, root, "truncated_row", 10);
    /* an emptied log, a deleted log */
    write_parts(p, "", 0, "", 0, "", 0);
    expect_bad(e, root, "log_empty", 1);
    assert_int_equal(unlink(p), 0);
    expect_bad(e, root, "log_missing", 1);
    /* a row of another subject spliced in, a row signed with another key */
    restore(p);
    v = verify(e->audit, "T", root);
    assert_true(v.verified);
    free(g_orig);
    free(p);
}

/* Rows of one batch share the canonical bytes of their accessor and fields while their
 * entries name the very same strings; an entry with other strings (even equal text in
 * other memory, or one member changed) gets its own. Every stored row names its own
 * entry's accessor, fields and an increasing time. */
static void test_batch_rows_keep_their_own_accessor(void **state)
{
    env *e = *state;
    static const char *const f1[] = {"candidate_id", "email"};
    static const char *const f2[] = {"city"};
    char daemon2[] = "key-analyst"; /* the same text as entry()'s, in other memory */
    lh_audit_entry b[5];
    for (int i = 0; i < 5; i++)
        b[i] = entry("M");
    b[1].purpose = "payroll";
    b[2].daemon = daemon2;
    b[2].fields = f2;
    b[2].n_fields = 1;
    b[3].model = "model-x";
    b[3].profile = "prof-1";
    b[4].fields = f1; /* the same strings as entry()'s fields, another array */
    lh_error err;
    assert_int_equal(lh_audit_append_batch(e->audit, b, 5, &err), 0);
    json_t *rows = NULL;
    lh_audit_verdict v;
    assert_int_equal(lh_audit_read(e->audit, "M", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_true(v.verified);
    assert_int_equal(json_array_size(rows), 5);
    const char *ts_prev = "";
    for (size_t i = 0; i < 5; i++) {
        json_t *r = json_array_get(rows, i), *acc = json_object_get(r, "accessor");
        assert_string_equal(lh_json_str(acc, "purpose"), b[i].purpose);
        assert_string_equal(lh_json_str(acc, "daemon"), b[i].daemon);
        assert_int_equal(json_object_get(acc, "model") != NULL, i == 3);
        assert_int_equal(json_object_get(acc, "profile") != NULL, i == 3);
        json_t *fa = json_object_get(r, "fields_accessed");
        assert_int_equal(json_array_size(fa), b[i].n_fields);
        for (size_t k = 0; k < b[i].n_fields; k++)
            assert_string_equal(json_string_value(json_array_get(fa, k)), b[i].fields[k]);
        const char *ts = lh_json_str(r, "ts");
        assert_int_equal(strlen(ts), strlen("2026-05-03T12:00:00.000000001Z"));
        assert_true(strcmp(ts, ts_prev) >= 0);
        ts_prev = ts;
    }
    json_decref(rows);
}

#ifdef LH_FAULT_INJECTION
/* A failure at each file-system step of an append: the append fails, no later row builds
 * on the failed one, the next append succeeds, and after a reopen every acknowledged row
 * is there and the chain verifies. */
static void test_fault_each_step(void **state)
{
    env *e = *state;
    static const struct {
        lh_fault_op op;
        unsigned nth;
        const char *what;
    } cases[] = {
        /* the log open and write happen in the log writer, after the append: see
         * test_log_write_fails_in_background */
        {LH_FAULT_WRITE, 1, "journal write"},
        {LH_FAULT_FSYNC, 1, "journal fdatasync"},
    };
    int acked = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        append_n(e->audit, "F", 2);
        acked += 2;
        lh_audit_entry x = entry("F");
        lh_error err;
        /* a checkpoint drops the cached log descriptors: the next append opens the log */
        assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0);
        audit_log_writer_hold(e->audit, true); /* only the append's own steps count */
        lh_fault_arm(cases[c].op, cases[c].nth, 1, EIO);
        int rc = lh_audit_append(e->audit, &x, NULL, &err);
        if (rc != LH_EIO || lh_fault_fired() != 1)
            fail_msg("%s: rc %d fired %u", cases[c].what, rc, lh_fault_fired());
        assert_string_equal(lh_error_kind(&err), "audit_write_failed");
        lh_fault_reset();
        audit_log_writer_hold(e->audit, false);
        append_n(e->audit, "F", 1); /* recovers first when the journal was poisoned */
        acked += 1;
        lh_audit_verdict v = verify(e->audit, "F", NULL);
        if (!v.verified)
            fail_msg("%s: %s at %lld", cases[c].what, v.reason, (long long)v.first_bad_row);
        /* the failed row is present only when it reached the journal */
        assert_true(v.rows_total == acked || v.rows_total == acked + 1);
        acked = (int)v.rows_total;
    }
    reopen(e);
    lh_audit_verdict v = verify(e->audit, "F", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, acked);

    /* a clean checkpoint whose new journal file cannot be created falls back to the
     * replay, which succeeds; one where every open fails leaves the old journal, and
     * appends recover at the next attempt */
    for (unsigned times = 1; times <= 1000; times += 999) {
        append_n(e->audit, "F", 1);
        audit_logs_settle(e->audit); /* the writer's open is not the one that fails */
        lh_error err;
        lh_fault_arm(LH_FAULT_OPEN, 1, times, ENOSPC);
        int rc = lh_audit_checkpoint(e->audit, &err);
        assert_true(lh_fault_fired() >= 1);
        lh_fault_reset();
        if (times == 1)
            assert_int_equal(rc, 0);
        else
            assert_int_not_equal(rc, 0);
        append_n(e->audit, "F", 1);
        acked += 2;
    }
    reopen(e);
    v = verify(e->audit, "F", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, acked);
}
/* A log write that fails in the background writer (its open, then its write): the rows
 * were acknowledged and stay durable in the journal, the journal is poisoned (so no later
 * line of the subject reaches its log after the hole), and a checkpoint (first round) or a
 * reopen (second round) completes the log from the journal. */
static void test_log_write_fails_in_background(void **state)
{
    env *e = *state;
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE};
    int64_t rows = 0;
    for (size_t c = 0; c < 2; c++) {
        append_n(e->audit, "B", 2);
        rows += 2;
        lh_error err;
        /* a checkpoint closes the writer's descriptors: its next line opens the log */
        assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0);
        audit_log_writer_hold(e->audit, true);
        lh_audit_entry x = entry("B");
        char acked[LH_AUDIT_HMAC_HEX];
        assert_int_equal(lh_audit_append(e->audit, &x, NULL, &err), 0); /* acknowledged */
        x.result = "denied";
        assert_int_equal(lh_audit_append(e->audit, &x, acked, &err), 0);
        rows += 2;
        lh_fault_arm(ops[c], 1, 1, EIO); /* the writer's next open / write */
        audit_log_writer_hold(e->audit, false);
        lh_audit_verdict v = verify(e->audit, "B", NULL); /* settles: the write has failed */
        assert_int_equal(lh_fault_fired(), 1);
        lh_fault_reset();
        assert_true(audit_wal_poisoned(e->audit));
        assert_true(v.verified);
        assert_int_equal(v.rows_total, rows - 2); /* neither line reached the log */
        if (c == 0) {
            assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0);
        } else {
            lh_audit_close(e->audit);
            e->audit = NULL;
            reopen_after_close(e);
        }
        assert_false(audit_wal_poisoned(e->audit));
        v = verify(e->audit, "B", NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, rows);
        assert_string_equal(v.chain_root, acked);
        append_n(e->audit, "B", 1); /* and the chain goes on after them */
        rows += 1;
        v = verify(e->audit, "B", NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, rows);
    }
}

/* A clean checkpoint (nothing failed) does not replay the journal: it syncs every log the
 * writer appended to since the last one, including those whose descriptor the writer
 * closed again (more subjects than it keeps open), and starts a new journal. A failed
 * log sync makes it fall back to the replay. Either way every row verifies after a
 * reopen, and the next open replays nothing. */
static void test_clean_checkpoint_syncs_every_log(void **state)
{
    env *e = *state;
    enum { SUBJECTS = 300 };
    char id[32];
    warnings w = {0, 0, 0};
    lh_log_set_sink(count_warnings, &w);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < SUBJECTS; i++) {
            snprintf(id, sizeof(id), "C-%d", i);
            append_n(e->audit, id, round + 1);
        }
        audit_logs_settle(e->audit);
        lh_error err;
        lh_audit_stats s0, s1;
        lh_audit_get_stats(e->audit, &s0);
        if (round == 0) {
            lh_fault_reset(); /* counts the checkpoint's syncs */
            assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0);
            assert_true(lh_fault_calls(LH_FAULT_FSYNC) >= SUBJECTS);
        } else {
            lh_fault_arm(LH_FAULT_FSYNC, SUBJECTS / 2, 1, EIO); /* one log's sync */
            assert_int_equal(lh_audit_checkpoint(e->audit, &err), 0);
            assert_int_equal(lh_fault_fired(), 1);
        }
        lh_fault_reset();
        lh_audit_get_stats(e->audit, &s1);
        assert_int_equal(s1.checkpoints, s0.checkpoints + 1);
        /* only the failed sync's fallback replays (and says so) */
        assert_int_equal(w.checkpoint_replays, round);
    }
    lh_log_set_sink(NULL, NULL);
    reopen(e);
    for (int i = 0; i < SUBJECTS; i++) {
        snprintf(id, sizeof(id), "C-%d", i);
        lh_audit_verdict v = verify(e->audit, id, NULL);
        assert_true(v.verified);
        assert_int_equal(v.rows_total, 3);
    }
}
#endif

typedef struct release_arg {
    lh_audit *a;
    int ms;
} release_arg;

static void *release_later(void *p)
{
    release_arg *r = p;
    usleep((useconds_t)r->ms * 1000);
    audit_log_writer_hold(r->a, false);
    return NULL;
}

static int count_id(void *ctx, const char *id)
{
    if (strcmp(id, "LAG-NEW2") == 0)
        (*(int *)ctx)++;
    return 0;
}

/* The log lines are written off the append's path, but no reader sees the lag: a read, a
 * verify and a listing right after an append wait for the writer. The writer is held so
 * the lines are certainly still queued when the reads start. */
static void test_read_after_append_sees_row(void **state)
{
    env *e = *state;
    append_n(e->audit, "LAG", 3);
    audit_log_writer_hold(e->audit, true);
    append_n(e->audit, "LAG", 2);
    char *p = log_path(e, "LAG-NEW");
    append_n(e->audit, "LAG-NEW", 1);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0); /* its line is still queued */
    pthread_t th;
    release_arg r = {e->audit, 100};
    assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
    json_t *rows = NULL;
    lh_audit_verdict v;
    lh_error err;
    assert_int_equal(lh_audit_read(e->audit, "LAG", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 5);
    assert_int_equal(json_array_size(rows), 5);
    json_decref(rows);
    char tip[LH_AUDIT_HMAC_HEX];
    assert_int_equal(lh_audit_tip(e->audit, "LAG", tip, &err), 0);
    assert_string_equal(tip, v.chain_root);

    /* a listing sees a subject whose log the writer has yet to create */
    free(p);
    audit_log_writer_hold(e->audit, true);
    append_n(e->audit, "LAG-NEW2", 1);
    p = log_path(e, "LAG-NEW2");
    assert_int_not_equal(stat(p, &st), 0);
    free(p);
    r.ms = 50;
    assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
    int seen = 0;
    assert_int_equal(lh_audit_list(e->audit, count_id, &seen, &err), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(seen, 1);
    v = verify(e->audit, "LAG-NEW2", NULL);
    assert_int_equal(v.rows_total, 1);
}

/* Lines still queued at close are written: after the close the logs on disk hold every
 * row, and a reopen continues the chains. */
static void test_close_writes_pending(void **state)
{
    env *e = *state;
    audit_log_writer_hold(e->audit, true);
    append_n(e->audit, "C1", 4);
    append_n(e->audit, "C2", 3);
    char *p1 = log_path(e, "C1"), *p2 = log_path(e, "C2");
    struct stat st;
    assert_int_not_equal(stat(p1, &st), 0);
    audit_log_writer_hold(e->audit, false);
    lh_audit_close(e->audit);
    e->audit = NULL;
    size_t lines[2] = {0, 0};
    const char *paths[2] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        char *data = NULL;
        size_t len = 0;
        lh_error err;
        assert_int_equal(lh_fs_read_all(paths[i], 1 << 20, &data, &len, &err), 0);
        for (size_t k = 0; k < len; k++)
            lines[i] += data[k] == '\n';
        free(data);
    }
    assert_int_equal(lines[0], 4);
    assert_int_equal(lines[1], 3);
    free(p1);
    free(p2);
    reopen_after_close(e);
    append_n(e->audit, "C1", 1);
    lh_audit_verdict v = verify(e->audit, "C1", NULL);
    assert_true(v.verified);
    assert_int_equal(v.rows_total, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_subject_key),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_verify_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_50_concurrent_one_subject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8_subjects_x_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_rows_keep_their_own_accessor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_mid_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_preallocated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_cases, setup, teardown),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test_setup_teardown(test_fault_each_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_write_fails_in_background, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_checkpoint_syncs_every_log, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(test_read_after_append_sees_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_writes_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
