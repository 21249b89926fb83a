/*
 * test_biometric.c: the biometric consent gate (compliance/biometric.c, issue 12 item 3):
 * the storage root's rules at open, every refusal (and that a refused photo leaves no
 * file), the stored photo's modes under a permissive umask, its manifest entry and audit
 * row, and both rollback paths by fault injection: a manifest write that fails removes the
 * photo; an audit append that fails removes the photo and restores the manifest. Then
 * every step of a commit fails once and the outcome is all or nothing.
 */
#include "testutil.h"

#include "compliance/compliance.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct env {
    char *tmp, *data, *root, *keyfile;
    lh_storage *st;
    lh_catalog *cat;
    lh_subjects *subj;
    lh_audit *audit;
    lh_biometric *bio;
} env;

static const unsigned char JPEG[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',
                                     'I',  'F',  0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
                                     0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9};
static const unsigned char PNG[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13,
                                    'I',  'H', 'D', 'R', 0,    0,    0,    1,    0, 0, 0, 1};

static void env_open(env *e)
{
    lh_error err;
    if (!(e->st = lh_storage_open(e->data, &err)) || !(e->cat = lh_catalog_open(e->st, &err)) ||
        !(e->subj = lh_subjects_open(e->st, e->cat, &err)) ||
        !(e->audit = lh_audit_open(e->data, e->keyfile, &err)))
        fail_msg("open: %s", err.message);
    lh_subjects_attach_audit(e->subj, e->audit);
    if (!(e->bio = lh_biometric_open(e->root, e->st, e->subj, e->audit, &err)))
        fail_msg("biometric: %s", err.message);
}

static void env_close(env *e)
{
    lh_biometric_close(e->bio);
    lh_audit_close(e->audit);
    lh_subjects_close(e->subj);
    lh_catalog_close(e->cat);
    lh_storage_close(e->st);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));
    e->tmp = lh_test_tmpdir("biometric");
    e->data = lh_path_join(e->tmp, "data");
    e->root = lh_path_join(e->tmp, "photos");
    e->keyfile = lh_path_join(e->tmp, "audit.key");
    lh_test_write_file(e->keyfile, "biometric-test-audit-key-0123456789abcdef\n");
    lh_error err;
    assert_int_equal(lh_fs_mkdirs(e->data, 0700, &err), 0);
    env_open(e);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
#ifdef LH_FAULT_INJECTION
    lh_fault_reset();
#endif
    env_close(e);
    free(e->data);
    free(e->root);
    free(e->keyfile);
    lh_test_rmdir(e->tmp);
    free(e);
    return 0;
}

static void put(env *e, const char *id, const char *body_text)
{
    json_error_t je;
    json_t *body = json_loads(body_text, 0, &je);
    if (!body)
        fail_msg("bad test JSON: %s", je.text);
    bool created;
    lh_error err;
    if (lh_subjects_put(e->subj, id, body, "tester", &created, NULL, &err) != 0)
        fail_msg("put %s: %s", id, err.message);
    json_decref(body);
}

#define CONSENT_GIVEN                                                                              \
    "{\"consent\":{\"general\":{\"status\":\"Given\",\"given_at\":\"2026-01-01T00:00:00Z\"},"      \
    "\"biometric\":{\"status\":\"Given\",\"version_hash\":\"sha256:consent-v1\","                  \
    "\"given_at\":\"2026-01-01T00:00:00Z\"}}}"

/* Files (not folders) anywhere under dir, partial ones included. */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = lh_path_join(dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0)
            n += S_ISDIR(st.st_mode) ? count_files(p) : 1;
        free(p);
    }
    if (d)
        closedir(d);
    return n;
}

static int64_t audit_rows(env *e, const char *id)
{
    lh_audit_verdict v;
    lh_error err;
    assert_int_equal(lh_audit_verify(e->audit, id, NULL, &v, &err), 0);
    assert_true(v.verified);
    return v.rows_total;
}

/* The stored manifest's bytes (to prove a rollback left it exactly as it was). */
static char *manifest_bytes(env *e, const char *id)
{
    lh_error err;
    assert_int_equal(lh_subjects_flush_roots(e->subj, &err), 0);
    char *path = lh_xasprintf("%s/_catalog/subjects/%s.json", e->data, id);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(lh_fs_read_all(path, 1 << 20, &data, &len, &err), 0);
    free(path);
    return data;
}

/* A whole upload: begin, the body in pieces of `piece` bytes, commit. NULL + err when a
 * step refused it. */
static json_t *upload(env *e, const char *id, const char *type, const void *body, size_t len,
                      size_t piece, lh_error *err)
{
    lh_biometric_upload *up =
        lh_biometric_begin(e->bio, id, type, (int64_t)len, "counsel", "trace-1", err);
    if (!up)
        return NULL;
    json_t *doc = NULL;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (lh_biometric_write(up, (const char *)body + off, n, err) != 0)
            goto out;
    }
    doc = lh_biometric_commit(up, err);
out:
    lh_biometric_upload_free(up);
    return doc;
}

/* ---------------------------------------------------------------- rules */

static void test_media_types(void **state)
{
    (void)state;
    static const struct {
        const char *ct;
        const char *ext; /* NULL: refused */
    } cases[] = {
        {"image/jpeg", "jpg"},
        {"IMAGE/JPEG", "jpg"},
        {"image/jpeg; charset=binary", "jpg"},
        {"  image/png ;q=1", "png"},
        {"Image/Png", "png"},
        {"image/jpg", NULL},
        {"image/gif", NULL},
        {"image/jpegx", NULL},
        {"image/pn", NULL},
        {"application/octet-stream", NULL},
        {"", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *ext = NULL;
        lh_error err;
        int rc = lh_biometric_media_type(cases[i].ct, &ext, &err);
        if (cases[i].ext) {
            assert_int_equal(rc, 0);
            assert_string_equal(ext, cases[i].ext);
        } else {
            assert_int_equal(rc, LH_EUNSUPPORTED);
            assert_string_equal(lh_error_kind(&err), "unsupported_media_type");
        }
    }
}

static void test_root_rules(void **state)
{
    env *e = *state;
    lh_error err;
    /* inside the data folder, the data folder itself, or holding it: refused */
    char *inside = lh_path_join(e->data, "photos");
    assert_null(lh_biometric_open(inside, e->st, e->subj, e->audit, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "outside the data folder"));
    assert_null(lh_biometric_open(e->data, e->st, e->subj, e->audit, &err));
    assert_null(lh_biometric_open(e->tmp, e->st, e->subj, e->audit, &err));
    assert_false(lh_fs_exists(inside)); /* refused before anything was created */
    /* inside (or around) an added bucket's root: refused too */
    char *bucket = lh_path_join(e->tmp, "bucket2");
    assert_int_equal(lh_storage_bucket_add(e->st, "second", bucket, &err), 0);
    char *in_bucket = lh_path_join(bucket, "photos");
    assert_null(lh_biometric_open(in_bucket, e->st, e->subj, e->audit, &err));
    assert_non_null(strstr(err.message, "every bucket"));
    assert_false(lh_fs_exists(in_bucket));
    /* through a symbolic link into the lake: refused once resolved */
    char *link = lh_path_join(e->tmp, "sneaky");
    assert_int_equal(symlink(e->data, link), 0);
    char *via_link = lh_path_join(link, "photos");
    assert_null(lh_biometric_open(via_link, e->st, e->subj, e->audit, &err));
    free(via_link);
    free(link);
    free(in_bucket);
    free(bucket);
    /* a root others may read: refused, never "fixed" */
    char *open_root = lh_path_join(e->tmp, "open");
    assert_int_equal(mkdir(open_root, 0755), 0);
    assert_int_equal(chmod(open_root, 0755), 0);
    assert_null(lh_biometric_open(open_root, e->st, e->subj, e->audit, &err));
    assert_non_null(strstr(err.message, "chmod 700"));
    /* a missing root is created 0700 */
    struct stat st;
    assert_int_equal(stat(e->root, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* unset: every call is 503 naming the variable */
    lh_biometric *none = lh_biometric_open(NULL, e->st, e->subj, e->audit, &err);
    assert_non_null(none);
    put(e, "U-1", CONSENT_GIVEN);
    assert_null(lh_biometric_begin(none, "U-1", "image/jpeg", 10, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EUNAVAILABLE);
    assert_non_null(strstr(err.message, "LH_BIOMETRIC_STORAGE_ROOT"));
    json_t *h = lh_biometric_health(none);
    assert_string_equal(lh_json_str(h, "status"), "unavailable");
    assert_false(json_is_true(json_object_get(json_object_get(h, "storage_root"), "configured")));
    json_decref(h);
    lh_biometric_close(none);
    /* no audit chain: nothing may be collected unaudited */
    lh_biometric *unaudited = lh_biometric_open(e->root, e->st, e->subj, NULL, &err);
    assert_null(lh_biometric_begin(unaudited, "U-1", "image/jpeg", 10, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EUNAVAILABLE);
    assert_string_equal(lh_error_kind(&err), "audit_unconfigured");
    lh_biometric_close(unaudited);
    /* a partial file a crash left is removed at open */
    char *dir = lh_path_join(e->root, "U-1");
    assert_int_equal(lh_fs_mkdirs(dir, 0700, &err), 0);
    char *part = lh_path_join(dir, ".20260101T000000Z_0badf00d.jpg.part");
    lh_test_write_file(part, "half a photo");
    lh_biometric *again = lh_biometric_open(e->root, e->st, e->subj, e->audit, &err);
    assert_false(lh_fs_exists(part));
    lh_biometric_close(again);
    assert_int_equal(count_files(e->root), 0);
    free(part);
    free(dir);
    free(open_root);
    free(inside);
}

/* Each refusal before the body, with its code and the status it names; none leaves a
 * file under the root. */
static void test_refusals(void **state)
{
    env *e = *state;
    lh_error err;
    put(e, "NC-1", "{}");
    put(e, "WD-1",
        "{\"consent\":{\"general\":{\"status\":\"NotGiven\"},\"biometric\":{"
        "\"status\":\"Withdrawn\",\"version_hash\":\"sha256:v1\",\"given_at\":"
        "\"2026-01-01T00:00:00Z\",\"withdrawn_at\":\"2026-02-01T00:00:00Z\"}}}");
    const char *statuses[] = {"Withdrawn", "Erased", "RetentionExpired"};
    for (int i = 0; i < 3; i++) {
        char id[32], body[1024];
        snprintf(id, sizeof(id), "S-%d", i);
        put(e, id, CONSENT_GIVEN);
        snprintf(body, sizeof(body), "{\"status\":\"%s\"}", statuses[i]);
        put(e, id, body);
        assert_null(lh_biometric_begin(e->bio, id, "image/jpeg", 22, NULL, NULL, &err));
        assert_int_equal(err.code, LH_EFORBIDDEN);
        assert_string_equal(lh_error_kind(&err), "subject_not_active");
        assert_non_null(strstr(err.message, statuses[i]));
    }
    assert_null(lh_biometric_begin(e->bio, "NC-1", "image/jpeg", 22, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EFORBIDDEN);
    assert_string_equal(lh_error_kind(&err), "biometric_consent_required");
    assert_non_null(strstr(err.message, "NeverCollected"));
    assert_null(lh_biometric_begin(e->bio, "WD-1", "image/jpeg", 22, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EFORBIDDEN);
    assert_non_null(strstr(err.message, "status Withdrawn"));
    assert_null(lh_biometric_begin(e->bio, "NOBODY", "image/jpeg", 22, NULL, NULL, &err));
    assert_int_equal(err.code, LH_ENOTFOUND);
    put(e, "OK-1", CONSENT_GIVEN);
    assert_null(lh_biometric_begin(e->bio, "OK-1", "image/gif", 22, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EUNSUPPORTED);
    assert_null(lh_biometric_begin(e->bio, "OK-1", "image/jpeg", LH_BIOMETRIC_MAX_BYTES + 1, NULL,
                                   NULL, &err));
    assert_int_equal(err.code, LH_ETOOLARGE);
    assert_null(lh_biometric_begin(e->bio, "", "image/jpeg", 22, NULL, NULL, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_null(lh_biometric_begin(e->bio, "OK-1", "image/jpeg", 22, NULL, "bad \xff trace", &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_non_null(strstr(err.message, "X-Lakehouse-Trace-Id"));
    assert_int_equal(count_files(e->root), 0);
    /* nothing was audited for a refusal */
    assert_int_equal(audit_rows(e, "NC-1"), 0);
}

/* Refusals while the body streams: the partial file is gone at once. */
static void test_body_refusals_leave_no_file(void **state)
{
    env *e = *state;
    lh_error err;
    put(e, "B-1", CONSENT_GIVEN);
    /* PNG bytes declared as JPEG: refused at the first byte that differs */
    assert_null(upload(e, "B-1", "image/jpeg", PNG, sizeof(PNG), 1, &err));
    assert_int_equal(err.code, LH_EUNSUPPORTED);
    assert_string_equal(lh_error_kind(&err), "photo_type_mismatch");
    assert_int_equal(count_files(e->root), 0);
    /* JPEG bytes declared as PNG, in one piece */
    assert_null(upload(e, "B-1", "image/png", JPEG, sizeof(JPEG), sizeof(JPEG), &err));
    assert_int_equal(err.code, LH_EUNSUPPORTED);
    /* too short to hold the signature, and empty */
    assert_null(upload(e, "B-1", "image/png", PNG, 5, 5, &err));
    assert_int_equal(err.code, LH_EUNSUPPORTED);
    lh_biometric_upload *up = lh_biometric_begin(e->bio, "B-1", "image/jpeg", -1, NULL, NULL, &err);
    assert_non_null(up);
    assert_int_equal(count_files(e->root), 1); /* the partial file, while streaming */
    assert_null(lh_biometric_commit(up, &err));
    assert_int_equal(err.code, LH_EINVAL);
    assert_string_equal(lh_error_kind(&err), "empty_photo");
    assert_int_equal(count_files(e->root), 0);
    lh_biometric_upload_free(up);
    /* over the cap while streaming (no Content-Length) */
    up = lh_biometric_begin(e->bio, "B-1", "image/jpeg", -1, NULL, NULL, &err);
    char *big = calloc(1, LH_BIOMETRIC_MAX_BYTES);
    memcpy(big, JPEG, 3);
    int rc = 0;
    for (int i = 0; i <= 10 && rc == 0; i++)
        rc = lh_biometric_write(up, big, 1 << 20, &err);
    assert_int_equal(rc, LH_ETOOLARGE);
    assert_int_equal(count_files(e->root), 0);
    assert_int_not_equal(lh_biometric_write(up, big, 1, &err), 0); /* refused for good */
    lh_biometric_upload_free(up);
    /* exactly the cap is accepted */
    json_t *doc = upload(e, "B-1", "image/jpeg", big, LH_BIOMETRIC_MAX_BYTES, 1 << 20, &err);
    if (!doc)
        fail_msg("10 MiB photo: %s", err.message);
    json_decref(doc);
    free(big);
    /* consent withdrawn while the body was streaming: refused at commit, no file */
    up = lh_biometric_begin(e->bio, "B-1", "image/jpeg", sizeof(JPEG), NULL, NULL, &err);
    assert_int_equal(lh_biometric_write(up, JPEG, sizeof(JPEG), &err), 0);
    put(e, "B-1",
        "{\"consent\":{\"general\":{\"status\":\"NotGiven\"},\"biometric\":{"
        "\"status\":\"Withdrawn\",\"version_hash\":\"sha256:consent-v1\",\"given_at\":"
        "\"2026-01-01T00:00:00Z\",\"withdrawn_at\":\"2026-03-01T00:00:00Z\"}}}");
    int files_before = count_files(e->root);
    assert_null(lh_biometric_commit(up, &err));
    assert_int_equal(err.code, LH_EFORBIDDEN);
    assert_int_equal(count_files(e->root), files_before - 1); /* its partial file went */
    lh_biometric_upload_free(up);
}

/* A stored photo: 0700/0600 whatever the umask, bytes and hash as sent, the manifest's
 * biometric_collection, one audit row of kind biometric_collection; a second photo
 * supersedes the first, which is removed. */
static void test_stored_photo(void **state)
{
    env *e = *state;
    lh_error err;
    put(e, "P/1 é", CONSENT_GIVEN); /* an id that needs escaping in the folder name */
    mode_t old_umask = umask(0);
    json_t *doc = upload(e, "P/1 é", "image/png", PNG, sizeof(PNG), 7, &err);
    umask(old_umask);
    if (!doc)
        fail_msg("upload: %s", err.message);
    const json_t *c = json_object_get(doc, "biometric_collection");
    const char *data_path = lh_json_str(c, "data_path");
    assert_non_null(data_path);
    assert_int_equal(strncmp(data_path, "P%2F1%20%C3%A9/", 15), 0);
    assert_non_null(strstr(data_path, ".png"));
    assert_int_equal(strlen(strrchr(data_path, '/') + 1), strlen("20260101T000000Z_0123abcd.png"));
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(digest, PNG, sizeof(PNG));
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    assert_string_equal(lh_json_str(c, "template_hash"), hex);
    assert_string_equal(lh_json_str(c, "consent_version_hash"), "sha256:consent-v1");
    assert_string_equal(lh_json_str(c, "content_type"), "image/png");
    assert_int_equal(lh_json_int(c, "bytes", 0), sizeof(PNG));
    assert_non_null(lh_json_str(c, "collected_at"));
    assert_int_equal(json_array_size(json_object_get(c, "classifications")), 2);

    char *file = lh_path_join(e->root, data_path);
    char *folder = lh_xstrdup(file);
    *strrchr(folder, '/') = '\0';
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(folder, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(lh_fs_read_all(file, 1 << 20, &bytes, &len, &err), 0);
    assert_int_equal(len, sizeof(PNG));
    assert_memory_equal(bytes, PNG, len);
    free(bytes);
    assert_false(lh_fs_exists(e->data) && strncmp(file, e->data, strlen(e->data)) == 0);

    json_t *m = lh_subjects_get(e->subj, "P/1 é", &err);
    assert_true(json_equal(json_object_get(m, "biometric_collection"), (json_t *)c));
    json_decref(m);
    /* the audit row */
    json_t *rows = NULL;
    lh_audit_verdict v;
    assert_int_equal(lh_audit_read(e->audit, "P/1 é", NULL, NULL, NULL, &rows, &v, &err), 0);
    assert_true(v.verified);
    assert_int_equal(json_array_size(rows), 1);
    const json_t *row = json_array_get(rows, 0);
    const json_t *acc = json_object_get(row, "accessor");
    assert_string_equal(lh_json_str(acc, "kind"), "biometric_collection");
    assert_string_equal(lh_json_str(acc, "purpose"), "photo_upload");
    assert_string_equal(lh_json_str(acc, "daemon"), "counsel");
    assert_string_equal(lh_json_str(acc, "trace_id"), "trace-1");
    assert_string_equal(lh_json_str(row, "result"), "success");
    assert_string_equal(lh_json_str(row, "row_hmac"), lh_json_str(doc, "audit_row_hmac"));
    json_decref(rows);

    /* a second photo replaces the first, which is removed */
    json_t *doc2 = upload(e, "P/1 é", "image/jpeg", JPEG, sizeof(JPEG), 100, &err);
    assert_non_null(doc2);
    assert_string_equal(lh_json_str(doc2, "superseded"), data_path);
    assert_false(lh_fs_exists(file));
    assert_int_equal(count_files(e->root), 1);
    assert_int_equal(audit_rows(e, "P/1 é"), 2);
    json_t *h = lh_biometric_health(e->bio);
    assert_string_equal(lh_json_str(h, "status"), "ok");
    const json_t *counts = json_object_get(h, "counts");
    assert_int_equal(lh_json_int(counts, "photos", -1), 1);
    assert_int_equal(lh_json_int(counts, "bytes", -1), sizeof(JPEG));
    assert_int_equal(lh_json_int(counts, "partial", -1), 0);
    json_decref(h);
    json_decref(doc2);
    json_decref(doc);
    free(file);
    free(folder);
}

/* ---------------------------------------------------------------- rollback */

#ifdef LH_FAULT_INJECTION
/* One upload with op's nth call (counted from the commit) failing. */
static json_t *upload_with_fault(env *e, const char *id, lh_fault_op op, unsigned nth,
                                 lh_error *err)
{
    lh_biometric_upload *up =
        lh_biometric_begin(e->bio, id, "image/jpeg", sizeof(JPEG), "counsel", NULL, err);
    if (!up)
        fail_msg("begin: %s", err->message);
    assert_int_equal(lh_biometric_write(up, JPEG, sizeof(JPEG), err), 0);
    lh_fault_arm(op, nth, 1, EIO);
    json_t *doc = lh_biometric_commit(up, err);
    lh_biometric_upload_free(up);
    return doc;
}

/* The manifest write fails (its rename: the photo's own rename is the first): the photo
 * is removed, the manifest is byte for byte what it was, no row was written. */
static void test_rollback_manifest_write_fails(void **state)
{
    env *e = *state;
    lh_error err;
    put(e, "R-1", CONSENT_GIVEN);
    char *before = manifest_bytes(e, "R-1");
    assert_null(upload_with_fault(e, "R-1", LH_FAULT_RENAME, 2, &err));
    assert_int_equal(lh_fault_fired(), 1);
    lh_fault_reset();
    assert_int_equal(err.code, LH_EIO);
    assert_int_equal(count_files(e->root), 0);
    char *after = manifest_bytes(e, "R-1");
    assert_string_equal(before, after);
    assert_int_equal(audit_rows(e, "R-1"), 0);
    free(before);
    free(after);
}

/* The audit append fails (the journal write: the manifest's write is the first): 500
 * audit_write_failed, the photo removed, the manifest restored byte for byte, the chain as
 * it was; the next upload succeeds. */
static void test_rollback_audit_append_fails(void **state)
{
    env *e = *state;
    lh_error err;
    put(e, "R-2", CONSENT_GIVEN);
    json_t *first = upload(e, "R-2", "image/jpeg", JPEG, sizeof(JPEG), 64, &err);
    assert_non_null(first);
    char *before = manifest_bytes(e, "R-2");
    assert_null(upload_with_fault(e, "R-2", LH_FAULT_WRITE, 2, &err));
    assert_int_equal(lh_fault_fired(), 1);
    lh_fault_reset();
    assert_int_equal(err.code, LH_EIO);
    assert_string_equal(lh_error_kind(&err), "audit_write_failed");
    assert_non_null(strstr(err.message, "manifest restored"));
    char *after = manifest_bytes(e, "R-2");
    assert_string_equal(before, after);
    /* only the first photo remains, the one the restored manifest names */
    assert_int_equal(count_files(e->root), 1);
    char *file = lh_path_join(
        e->root, lh_json_str(json_object_get(first, "biometric_collection"), "data_path"));
    assert_true(lh_fs_exists(file));
    assert_int_equal(audit_rows(e, "R-2"), 1);
    json_t *next = upload(e, "R-2", "image/jpeg", JPEG, sizeof(JPEG), 64, &err);
    if (!next)
        fail_msg("upload after the rollback: %s", err.message);
    assert_int_equal(audit_rows(e, "R-2"), 2);
    json_decref(next);
    json_decref(first);
    free(file);
    free(before);
    free(after);
}

/* Every file-system call of a commit fails once, in turn: the outcome is all (photo,
 * manifest and row) or nothing (no photo, the manifest as it was), never a mix; both
 * rollback paths are among the outcomes. Each case runs on freshly opened handles (a
 * failed journal sync leaves the audit refusing appends until reopened). */
static void test_every_commit_step_fails(void **state)
{
    env *e = *state;
    static const lh_fault_op ops[] = {LH_FAULT_OPEN, LH_FAULT_WRITE, LH_FAULT_FSYNC,
                                      LH_FAULT_RENAME, LH_FAULT_FSYNC_DIR};
    int failures = 0, audit_failures = 0, cases = 0;
    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        for (unsigned nth = 1; nth <= 4; nth++) {
            char id[32];
            lh_error err;
            snprintf(id, sizeof(id), "F-%zu-%u", o, nth);
            put(e, id, CONSENT_GIVEN);
            char *before = manifest_bytes(e, id);
            int64_t rows_before = audit_rows(e, id);
            int files_before = count_files(e->root);
            json_t *doc = upload_with_fault(e, id, ops[o], nth, &err);
            unsigned fired = lh_fault_fired();
            lh_fault_reset();
            cases += fired > 0;
            env_close(e);
            env_open(e);
            json_t *m = lh_subjects_get(e->subj, id, &err);
            const json_t *c = json_object_get(m, "biometric_collection");
            if (doc) {
                /* all: the photo, the manifest naming it, the row */
                char *file = lh_path_join(e->root, lh_json_str(c, "data_path"));
                assert_true(lh_fs_exists(file));
                assert_int_equal(count_files(e->root), files_before + 1);
                assert_int_equal(audit_rows(e, id), rows_before + 1);
                free(file);
            } else {
                /* nothing: no photo, the manifest untouched */
                failures++;
                audit_failures += strcmp(lh_error_kind(&err), "audit_write_failed") == 0;
                assert_int_equal(count_files(e->root), files_before);
                char *after = manifest_bytes(e, id);
                assert_string_equal(before, after);
                free(after);
            }
            json_decref(m);
            json_decref(doc);
            free(before);
        }
    }
    assert_true(cases >= 10);
    assert_true(failures >= 6);
    assert_true(audit_failures >= 1);
    assert_true(failures > audit_failures); /* manifest or photo steps failed too */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_types),
        cmocka_unit_test_setup_teardown(test_root_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_refusals_leave_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_photo, setup, teardown),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test_setup_teardown(test_rollback_manifest_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_audit_append_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_commit_step_fails, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
