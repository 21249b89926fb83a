/*
 * test_ingest.c: the ingest module's error paths, through its public API (the same calls
 * the HTTP glue makes: lh_ingest_check before the body, then lh_upload_* and
 * lh_ingest_upload). Every refused ingest is checked for its code and kind, for the
 * dataset it must not have changed, and for what it left in the data folder: nothing (no
 * file and no folder appears or changes anywhere under it, staging names included).
 *
 * The cases are data (one table); the few that need a dataset to exist first (append,
 * replace, create over it) get it from the fixture.
 */
#include "testutil.h"

#include "catalog/catalog.h"
#include "core/core.h"
#include "ingest/ingest.h"
#include "query/query.h"
#include "storage/storage.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    char *dir, *data, *other_root;
    lh_config cfg;
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    lh_ingest *ing;
    char *parquet; /* the bytes of a real Parquet part (for "Parquet sent as CSV") */
    size_t parquet_len;
} fx;

/* One ingest as the HTTP route runs it: precheck, upload, convert. */
typedef struct ingest_args {
    const char *name;
    lh_file_format format;
    lh_ingest_mode mode;
    const char *bucket;
    const char *encoding;
    const char *delimiter;
    const void *body;
    size_t len; /* 0: strlen(body) */
} ingest_args;

static int run_ingest(fx *f, const ingest_args *a, json_t **manifest, lh_error *err)
{
    lh_ingest_request req = {
        .name = a->name,
        .format = a->format,
        .mode = a->mode,
        .bucket = a->bucket,
        .delimiter = a->delimiter,
        .header = -1,
        .encoding = a->encoding,
        .source = "test_ingest",
        .actor = "tester",
    };
    lh_error_clear(err);
    int rc = lh_ingest_check(f->ing, &req, err);
    if (rc)
        return rc;
    lh_upload *up = lh_upload_open(f->ing, a->format, err);
    if (!up)
        return err->code;
    size_t len = a->len ? a->len : (a->body ? strlen(a->body) : 0);
    if (len && (rc = lh_upload_write(up, a->body, len, err)) != 0) {
        lh_upload_free(up);
        return rc;
    }
    rc = lh_ingest_upload(f->ing, up, &req, manifest, err);
    lh_upload_free(up);
    return rc;
}

/* A query as a user runs it (the user database: the internal one serves no dataset views),
 * with its JSON result parsed. Caller decrefs; NULL with err filled when it did not start. */
static json_t *user_query_json(lh_engine *eng, const char *sql, lh_error *err)
{
    lh_query_opts o = {.format = LH_FORMAT_JSON, .max_rows = 1000, .timeout_ms = 30000};
    lh_query *q = lh_query_start(eng, sql, &o, err);
    if (!q)
        return NULL;
    lh_buf b;
    lh_buf_init(&b);
    char buf[65536];
    ssize_t n;
    while ((n = lh_query_read(q, buf, sizeof(buf))) > 0)
        lh_buf_append(&b, buf, (size_t)n);
    lh_query_free(q);
    json_t *doc = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    lh_buf_free(&b);
    assert_non_null(doc);
    return doc;
}

static void ok_ingest(fx *f, const char *name, lh_ingest_mode mode, const char *bucket,
                      const char *csv)
{
    lh_error err;
    ingest_args a = {
        .name = name, .format = LH_FILE_CSV, .mode = mode, .bucket = bucket, .body = csv};
    if (run_ingest(f, &a, NULL, &err) != 0)
        fail_msg("ingest of '%s' failed: %s", name, err.message);
}

/* Every file and folder under dir (relative path, size, mtime for files), one per line,
 * sorted, into b. DuckDB's spill folder is scratch of the engine, not of an ingest. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *root, const char *rel, char ***items, size_t *n)
{
    char *path = rel[0] ? lh_path_join(root, rel) : lh_xstrdup(root);
    DIR *d = opendir(path);
    if (!d) {
        free(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *sub = rel[0] ? lh_xasprintf("%s/%s", rel, e->d_name) : lh_xstrdup(e->d_name);
        if (strcmp(sub, "_tmp/duckdb") == 0) {
            free(sub);
            continue;
        }
        char *full = lh_path_join(root, sub);
        struct stat st;
        if (lstat(full, &st) == 0) {
            *items = lh_xrealloc(*items, (*n + 1) * sizeof(char *));
            if (S_ISDIR(st.st_mode)) {
                (*items)[(*n)++] = lh_xasprintf("%s/", sub);
                walk(root, sub, items, n);
            } else {
                (*items)[(*n)++] = lh_xasprintf("%s %lld %lld.%09ld", sub, (long long)st.st_size,
                                                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
            }
        }
        free(full);
        free(sub);
    }
    closedir(d);
    free(path);
}

/* The state of the whole data folder (and the other bucket's root) as one string. Caller
 * frees. */
static char *snapshot(fx *f)
{
    const char *roots[] = {f->data, f->other_root};
    lh_buf b;
    lh_buf_init(&b);
    for (size_t r = 0; r < 2; r++) {
        char **items = NULL;
        size_t n = 0;
        walk(roots[r], "", &items, &n);
        qsort(items, n, sizeof(char *), cmp_str);
        lh_buf_printf(&b, "[%s]\n", r == 0 ? "data" : "other");
        for (size_t i = 0; i < n; i++) {
            lh_buf_printf(&b, "%s\n", items[i]);
            free(items[i]);
        }
        free(items);
    }
    lh_buf_putc(&b, '\0');
    return b.data;
}

/* Fails naming the lines (files, folders) that differ between two snapshots. */
static void assert_same_tree(const char *what, const char *before, const char *after)
{
    if (strcmp(before, after) == 0)
        return;
    lh_buf diff;
    lh_buf_init(&diff);
    const char *texts[] = {before, after};
    for (int side = 0; side < 2; side++) {
        const char *other = texts[1 - side];
        for (const char *l = texts[side]; *l;) {
            const char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) : strlen(l);
            char *line = lh_xasprintf("\n%.*s\n", (int)n, l);
            if (!strstr(other, line + 1) || (l != texts[side] && !strstr(other, line)))
                lh_buf_printf(&diff, "%s %.*s\n", side ? "+" : "-", (int)n, l);
            free(line);
            l += n + (nl ? 1 : 0);
        }
    }
    lh_buf_putc(&diff, '\0');
    fail_msg("%s: the data folder changed:\n%s", what, diff.data);
}

static int setup(void **state)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    lh_error err;
    f->dir = lh_test_tmpdir("ingest");
    f->data = lh_path_join(f->dir, "data");
    f->other_root = lh_path_join(f->dir, "other");
    f->cfg.query_timeout_ms = 30000;
    f->cfg.query_default_rows = 1000;
    f->cfg.query_max_rows = 100000;
    f->cfg.max_concurrent_queries = 4;
    f->cfg.duckdb_threads = 2;
    f->cfg.duckdb_memory_mb = 512;
    if (!(f->st = lh_storage_open(f->data, &err)) || !(f->cat = lh_catalog_open(f->st, &err)) ||
        !(f->eng = lh_engine_open(&f->cfg, f->st, f->cat, &err)) ||
        !(f->ing = lh_ingest_open(f->st, f->cat, f->eng, &err)))
        fail_msg("fixture: %s", err.message);
    if (lh_fs_mkdirs(f->other_root, 0700, &err) != 0 ||
        lh_catalog_add_bucket(f->cat, "other", f->other_root, &err) != 0)
        fail_msg("bucket: %s", err.message);
    /* Datasets the cases refer to: people (primary) and books (bucket other). */
    ok_ingest(f, "people", LH_MODE_CREATE, NULL, "id,name,age\n1,Ada,36\n2,Grace,45\n");
    ok_ingest(f, "books", LH_MODE_CREATE, "other", "isbn,title\n1,SICP\n");
    json_t *m = lh_catalog_get(f->cat, "people", &err);
    const char *key = lh_json_str(json_array_get(json_object_get(m, "files"), 0), "key");
    char *part = lh_path_join(f->data, key);
    if (lh_fs_read_all(part, 1 << 20, &f->parquet, &f->parquet_len, &err) != 0)
        fail_msg("part: %s", err.message);
    free(part);
    json_decref(m);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    lh_ingest_close(f->ing);
    lh_engine_close(f->eng);
    lh_catalog_close(f->cat);
    lh_storage_close(f->st);
    free(f->parquet);
    free(f->data);
    free(f->other_root);
    lh_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- refused ingests */

#define CSV LH_FILE_CSV
#define JSON LH_FILE_JSON
#define NDJSON LH_FILE_NDJSON
#define PARQUET LH_FILE_PARQUET
#define CREATE LH_MODE_CREATE
#define REPLACE LH_MODE_REPLACE
#define APPEND LH_MODE_APPEND

typedef struct refused_case {
    const char *what;
    ingest_args args;
    int code;
    const char *kind;     /* lh_error_kind, or NULL for the code's default */
    const char *mentions; /* a substring the message must contain, or NULL */
    const char *never;    /* a substring the message must not contain, or NULL */
    bool parquet_body;    /* send the fixture's Parquet bytes as the body */
} refused_case;

/* "a,b\n1,2\n" in UTF-16: little-endian with its byte order mark, and big-endian. */
static const char utf16le_bom[] = "\xff\xfe"
                                  "a\0,\0b\0\n\0"
                                  "1\0,\0"
                                  "2\0\n\0";
static const char utf16be_bom[] = "\xfe\xff"
                                  "\0a\0,\0b\0\n"
                                  "\0"
                                  "1\0,\0"
                                  "2\0\n";

/* Two lines per case (what and request; outcome), kept as a table by hand. */
/* clang-format off */
static const refused_case refused[] = {
    /* The request itself. */
    {"bad name", {"1people", CSV, CREATE, NULL, NULL, NULL, "a\n1\n", 0},
     LH_EINVAL, NULL, "dataset name", NULL, false},
    {"reserved name", {"__raw__people", CSV, CREATE, NULL, NULL, NULL, "a\n1\n", 0},
     LH_EINVAL, NULL, "reserved", NULL, false},
    {"delimiter on JSON", {"d1", JSON, CREATE, NULL, NULL, ";", "[{\"a\":1}]", 0},
     LH_EINVAL, NULL, "delimiter", NULL, false},
    {"two-character delimiter", {"d2", CSV, CREATE, NULL, NULL, ";;", "a\n1\n", 0},
     LH_EINVAL, NULL, "one character", NULL, false},
    {"unknown bucket", {"nb", CSV, CREATE, "nowhere", NULL, NULL, "a\n1\n", 0},
     LH_ENOTFOUND, NULL, "primary", NULL, false},
    {"create over an existing dataset", {"people", CSV, CREATE, NULL, NULL, NULL, "a\n1\n", 0},
     LH_EEXISTS, NULL, "mode=replace", NULL, false},
    {"append to a missing dataset", {"ghost", CSV, APPEND, NULL, NULL, NULL, "a\n1\n", 0},
     LH_ENOTFOUND, NULL, "mode=create", NULL, false},
    {"replace into another bucket", {"people", CSV, REPLACE, "other", NULL, NULL, "a\n1\n", 0},
     LH_ECONFLICT, "bucket_mismatch", "primary", NULL, false},
    {"append into another bucket",
     {"books", CSV, APPEND, LH_BUCKET_PRIMARY, NULL, NULL, "isbn,title\n2,TAOCP\n", 0},
     LH_ECONFLICT, "bucket_mismatch", "other", NULL, false},
    /* Encodings. */
    {"unknown encoding", {"e1", CSV, CREATE, NULL, "ebcdic", NULL, "a\n1\n", 0},
     LH_EINVAL, "invalid_encoding", "utf-8, utf-16 or latin-1", NULL, false},
    {"encoding on NDJSON", {"e2", NDJSON, CREATE, NULL, "latin-1", NULL, "{\"a\":1}\n", 0},
     LH_EINVAL, NULL, "CSV only", NULL, false},
    {"Latin-1 without encoding", {"e3", CSV, CREATE, NULL, NULL, NULL, "id,city\n1,Z\xfcrich\n", 0},
     LH_EINVAL, "invalid_file", "encoding=latin-1", "_tmp", false},
    {"UTF-16 without encoding",
     {"e4", CSV, CREATE, NULL, NULL, NULL, utf16le_bom, sizeof(utf16le_bom) - 1},
     LH_EINVAL, "invalid_file", "encoding=utf-16", NULL, false},
    {"UTF-8 declared UTF-16", {"e5", CSV, CREATE, NULL, "utf-16", NULL, "a,b\n1,2\n", 0},
     LH_EINVAL, "invalid_file", "not UTF-16", NULL, false},
    {"big-endian UTF-16",
     {"e6", CSV, CREATE, NULL, "utf-16", NULL, utf16be_bom, sizeof(utf16be_bom) - 1},
     LH_EINVAL, "invalid_file", "big-endian", NULL, false},
    /* The file. */
    {"empty file", {"empty", CSV, CREATE, NULL, NULL, NULL, NULL, 0},
     LH_EINVAL, "empty_body", NULL, NULL, false},
    {"malformed CSV",
     {"m1", CSV, CREATE, NULL, NULL, NULL, "a,b\n1,2\n3,\"unterminated\n4,5,6,7\n", 0},
     LH_EINVAL, "invalid_file", NULL, "_tmp", false},
    {"ragged CSV", {"m2", CSV, CREATE, NULL, NULL, NULL, "a,b\n1,2\n3,4,5\n", 0},
     LH_EINVAL, "invalid_file", NULL, NULL, false},
    {"malformed JSON", {"m3", JSON, CREATE, NULL, NULL, NULL, "[{\"a\": 1}, {\"a\": ", 0},
     LH_EINVAL, "invalid_file", NULL, "_tmp", false},
    {"not Parquet", {"m4", PARQUET, CREATE, NULL, NULL, NULL, "this is not parquet at all", 0},
     LH_EINVAL, "invalid_file", NULL, "_tmp", false},
    {"Parquet sent as CSV", {"m5", CSV, CREATE, NULL, NULL, NULL, NULL, 0},
     LH_EINVAL, "invalid_file", "check the format parameter", "UTF-16", true},
    /* Appends that do not fit the dataset (people: id, name, age). */
    {"append: missing and extra columns",
     {"people", CSV, APPEND, NULL, NULL, NULL, "id,nom\n3,Linus\n", 0},
     LH_EINVAL, "schema_mismatch", "missing [name, age], unexpected [nom]", NULL, false},
    {"append: a value that does not cast",
     {"people", CSV, APPEND, NULL, NULL, NULL, "id,name,age\n3,Linus,old\n", 0},
     LH_EINVAL, "invalid_file", NULL, "_tmp", false},
    {"append: malformed CSV",
     {"people", CSV, APPEND, NULL, NULL, NULL, "id,name,age\n3,\"Linus,54\n4,x\n", 0},
     LH_EINVAL, "invalid_file", NULL, NULL, false},
};
/* clang-format on */

/* Each refused ingest: its code and kind, a message that says something, and not one
 * byte changed under the data folder or the other bucket, nor in the catalog. */
static void test_refused_ingests_leave_nothing(void **state)
{
    fx *f = *state;
    lh_error err;
    json_t *people = lh_catalog_get(f->cat, "people", &err);
    json_t *books = lh_catalog_get(f->cat, "books", &err);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const refused_case *c = &refused[i];
        ingest_args a = c->args;
        if (c->parquet_body) {
            a.body = f->parquet;
            a.len = f->parquet_len;
        }
        char *before = snapshot(f);
        json_t *m = NULL;
        int rc = run_ingest(f, &a, &m, &err);
        char *after = snapshot(f);
        if (rc != c->code)
            fail_msg("%s: code %d, want %d (%s)", c->what, rc, c->code, err.message);
        if (err.code != c->code)
            fail_msg("%s: err.code %d, want %d", c->what, err.code, c->code);
        if (c->kind && strcmp(lh_error_kind(&err), c->kind) != 0)
            fail_msg("%s: kind '%s', want '%s' (%s)", c->what, lh_error_kind(&err), c->kind,
                     err.message);
        if (!err.message[0])
            fail_msg("%s: empty message", c->what);
        if (c->mentions && !strstr(err.message, c->mentions))
            fail_msg("%s: message does not mention '%s': %s", c->what, c->mentions, err.message);
        if (c->never && strstr(err.message, c->never))
            fail_msg("%s: message mentions '%s': %s", c->what, c->never, err.message);
        if (strstr(err.message, f->data))
            fail_msg("%s: message leaks the data folder: %s", c->what, err.message);
        if (m)
            fail_msg("%s: a manifest came back from a refused ingest", c->what);
        assert_same_tree(c->what, before, after);
        free(before);
        free(after);
        /* No dataset appeared; the existing ones are as they were. */
        if (strcmp(a.name, "people") != 0 && strcmp(a.name, "books") != 0) {
            json_t *ghost = lh_catalog_get(f->cat, a.name, NULL);
            if (ghost)
                fail_msg("%s: dataset '%s' exists after a refused ingest", c->what, a.name);
        }
        json_t *p2 = lh_catalog_get(f->cat, "people", &err);
        json_t *b2 = lh_catalog_get(f->cat, "books", &err);
        if (!json_equal(people, p2) || !json_equal(books, b2))
            fail_msg("%s: an existing manifest changed", c->what);
        json_decref(p2);
        json_decref(b2);
    }
    json_decref(people);
    json_decref(books);
}

/* Format and mode are parsed before anything else; their messages list the valid ones. */
static void test_format_and_mode_parsing(void **state)
{
    (void)state;
    lh_error err;
    lh_file_format fmt = LH_FILE_CSV;
    static const struct {
        const char *s;
        int rc;
        lh_file_format fmt;
    } formats[] = {
        {"csv", 0, LH_FILE_CSV},
        {"json", 0, LH_FILE_JSON},
        {"ndjson", 0, LH_FILE_NDJSON},
        {"parquet", 0, LH_FILE_PARQUET},
        {"xlsx", LH_EINVAL, 0},
        {"CSV", LH_EINVAL, 0},
        {"", LH_EINVAL, 0},
        {NULL, LH_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        lh_error_clear(&err);
        assert_int_equal(lh_file_format_parse(formats[i].s, &fmt, &err), formats[i].rc);
        if (formats[i].rc == 0) {
            assert_int_equal(fmt, formats[i].fmt);
        } else {
            assert_string_equal(lh_error_kind(&err), "invalid_format");
            assert_non_null(strstr(err.message, "csv, json, ndjson or parquet"));
        }
    }
    lh_ingest_mode mode = LH_MODE_CREATE;
    assert_int_equal(lh_ingest_mode_parse("upsert", &mode, &err), LH_EINVAL);
    assert_non_null(strstr(err.message, "append"));
    assert_int_equal(lh_ingest_mode_parse("append", &mode, &err), 0);
    assert_int_equal(mode, LH_MODE_APPEND);
}

/* The accepted encodings work, and each spelling means what it says. */
static void test_encodings_accepted(void **state)
{
    fx *f = *state;
    lh_error err;
    static const char utf16le[] = "\xff\xfe"
                                  "i\0d\0,\0c\0i\0t\0y\0\n\0"
                                  "1\0,\0Z\0\xfc\0r\0i\0c\0h\0\n\0";
    static const struct {
        const char *name, *encoding, *body;
        size_t len;
    } ok[] = {
        {"enc_l1", "latin-1", "id,city\n1,Z\xfcrich\n", 0},
        {"enc_l1b", "ISO-8859-1", "id,city\n1,Z\xfcrich\n", 0},
        {"enc_u8", "UTF8", "id,city\n1,Z\xc3\xbcrich\n", 0},
        {"enc_u16", "utf-16", utf16le, sizeof(utf16le) - 1},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ingest_args a = {.name = ok[i].name,
                         .format = LH_FILE_CSV,
                         .mode = LH_MODE_CREATE,
                         .encoding = ok[i].encoding,
                         .body = ok[i].body,
                         .len = ok[i].len};
        json_t *m = NULL;
        if (run_ingest(f, &a, &m, &err) != 0)
            fail_msg("%s (%s): %s", ok[i].name, ok[i].encoding, err.message);
        assert_int_equal(lh_json_int(m, "row_count", -1), 1);
        json_t *cols = json_object_get(m, "columns");
        assert_int_equal(json_array_size(cols), 2);
        assert_string_equal(lh_json_str(json_array_get(cols, 0), "name"), "id");
        json_decref(m);
        char *sql = lh_xasprintf("SELECT city FROM %s", ok[i].name);
        json_t *res = user_query_json(f->eng, sql, &err);
        free(sql);
        if (!res)
            fail_msg("%s: %s", ok[i].name, err.message);
        assert_string_equal(
            json_string_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0)),
            "Z\xc3\xbcrich");
        json_decref(res);
    }
}

/* A refused append to a dataset with several parts leaves every part and the manifest
 * as they were (the staged part sits in the dataset's own folder). */
static void test_failed_append_keeps_existing_parts(void **state)
{
    fx *f = *state;
    lh_error err;
    ok_ingest(f, "people", LH_MODE_APPEND, NULL, "id,name,age\n3,Linus,54\n");
    json_t *before_m = lh_catalog_get(f->cat, "people", &err);
    assert_int_equal(json_array_size(json_object_get(before_m, "files")), 2);
    char *before = snapshot(f);
    ingest_args a = {.name = "people",
                     .format = LH_FILE_CSV,
                     .mode = LH_MODE_APPEND,
                     .body = "id,name,age\n4,Ken,not-a-number\n"};
    assert_int_equal(run_ingest(f, &a, NULL, &err), LH_EINVAL);
    char *after = snapshot(f);
    assert_string_equal(before, after);
    json_t *after_m = lh_catalog_get(f->cat, "people", &err);
    assert_true(json_equal(before_m, after_m));
    json_t *res = user_query_json(f->eng, "SELECT count(*) FROM people", &err);
    assert_non_null(res);
    assert_int_equal(
        json_integer_value(json_array_get(json_array_get(json_object_get(res, "rows"), 0), 0)), 3);
    json_decref(res);
    json_decref(before_m);
    json_decref(after_m);
    free(before);
    free(after);
}

/* A dataset generation lives in one folder named by its manifest id: a create's part and
 * every append's part share datasets/<name>/<id>/, and a replace starts a new folder whose
 * name is the new id. (Before, the manifest's id was drawn apart from the folder's, so an
 * append's part went into a second folder.) */
static void assert_parts_in_own_folder(fx *f, const char *name, size_t nfiles)
{
    lh_error err;
    json_t *m = lh_catalog_get(f->cat, name, &err);
    assert_non_null(m);
    char *prefix = lh_xasprintf("datasets/%s/%s/", name, lh_json_str(m, "id"));
    json_t *files = json_object_get(m, "files");
    assert_int_equal(json_array_size(files), nfiles);
    size_t i;
    json_t *file;
    json_array_foreach(files, i, file)
    {
        const char *key = lh_json_str(file, "key");
        assert_non_null(key);
        if (strncmp(key, prefix, strlen(prefix)) != 0)
            fail_msg("part '%s' is not under '%s'", key, prefix);
    }
    free(prefix);
    json_decref(m);
}

static void test_generation_folder_is_the_manifest_id(void **state)
{
    fx *f = *state;
    ok_ingest(f, "people", LH_MODE_APPEND, NULL, "id,name,age\n3,Linus,54\n");
    ok_ingest(f, "people", LH_MODE_APPEND, NULL, "id,name,age\n4,Ken,80\n");
    assert_parts_in_own_folder(f, "people", 3);
    ok_ingest(f, "people", LH_MODE_REPLACE, NULL, "id,name,age\n5,Barbara,70\n");
    ok_ingest(f, "people", LH_MODE_APPEND, NULL, "id,name,age\n6,Frances,60\n");
    assert_parts_in_own_folder(f, "people", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_mode_parsing),
        cmocka_unit_test_setup_teardown(test_refused_ingests_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encodings_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_keeps_existing_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation_folder_is_the_manifest_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
