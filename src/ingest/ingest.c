/*
 * ingest.c: uploads to temp files, one DuckDB COPY into a staged Parquet part, commit.
 *
 * Order of durability (a crash at any point leaves the previous state intact):
 *   1. the upload is written to <data>/_tmp/uploads/ (not synced: it is scratch);
 *   2. COPY writes the part to a staging name in the bucket, and a bounded sample of it is
 *      read for content PII detection (read-only; the verdicts go with the commit);
 *   3. lh_storage_commit fsyncs and renames it to datasets/<name>/<id>/part-<hex>.parquet;
 *   4. lh_catalog_commit_ingest writes the manifest atomically: the linearization point.
 * A crash between 3 and 4 leaves an unreferenced part, which the catalog's orphan sweep
 * removes at the next start; a failure we see removes it at once, with DuckDB's own temp
 * file beside the staging name and the folders the ingest created. A manifest write whose
 * outcome is unknown (renamed, folder fsync failed) is not a failure: the catalog rolls it
 * forward and returns 0, so the part it references is kept.
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPLOAD_DIR "_tmp/uploads"
/* The COPY statement has the same shape as bench/duckdb_direct.c's, so the benchmark
 * compares like with like; its options are LH_PARQUET_COPY_OPTIONS (query.h). */
#define COMPRESSION "zstd"

struct lh_ingest {
    lh_storage *st;
    lh_catalog *cat;
    lh_engine *eng;
    char *upload_dir;
};

struct lh_upload {
    char *path;
    int fd;
    int64_t size;
};

static const struct {
    const char *name;
    lh_file_format format;
    const char *ext; /* DuckDB sniffs compression from the extension */
} formats[] = {
    {"csv", LH_FILE_CSV, "csv"},
    {"json", LH_FILE_JSON, "json"},
    {"ndjson", LH_FILE_NDJSON, "ndjson"},
    {"parquet", LH_FILE_PARQUET, "parquet"},
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

/* CSV text encodings DuckDB 1.4.4's read_csv decodes natively (its `encoding` option),
 * with the spellings we accept for each. The first row per encoding is its name. */
static const struct {
    const char *spelling;
    const char *duckdb; /* read_csv's encoding value */
} encodings[] = {
    {"utf-8", "utf-8"},     {"utf8", "utf-8"},     {"utf-16", "utf-16"},      {"utf16", "utf-16"},
    {"latin-1", "latin-1"}, {"latin1", "latin-1"}, {"iso-8859-1", "latin-1"},
};
#define ENCODING_LIST "utf-8, utf-16 or latin-1"

/* read_csv's encoding for a request's spelling (any case), or NULL when unknown. */
static const char *encoding_duckdb(const char *s)
{
    for (size_t i = 0; s && i < sizeof(encodings) / sizeof(encodings[0]); i++)
        if (strcasecmp(s, encodings[i].spelling) == 0)
            return encodings[i].duckdb;
    return NULL;
}

int lh_file_format_parse(const char *s, lh_file_format *out, lh_error *err)
{
    for (size_t i = 0; s && i < N_FORMATS; i++) {
        if (strcmp(s, formats[i].name) == 0) {
            *out = formats[i].format;
            return 0;
        }
    }
    return lh_error_setk(err, LH_EINVAL, "invalid_format",
                         "unknown format '%s': use csv, json, ndjson or parquet", s ? s : "(none)");
}

static const char *format_name(lh_file_format f)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (formats[i].format == f)
            return formats[i].name;
    return "csv";
}

static const char *format_ext(lh_file_format f)
{
    for (size_t i = 0; i < N_FORMATS; i++)
        if (formats[i].format == f)
            return formats[i].ext;
    return "bin";
}

lh_ingest *lh_ingest_open(lh_storage *st, lh_catalog *cat, lh_engine *eng, lh_error *err)
{
    char *dir = lh_path_join(lh_storage_data_dir(st), UPLOAD_DIR);
    /* Uploads left by a crash are scratch: nothing references them. */
    if (lh_fs_remove_tree(dir, err) != 0 || lh_fs_mkdirs(dir, 0700, err) != 0) {
        free(dir);
        return NULL;
    }
    lh_ingest *ing = lh_xcalloc(1, sizeof(*ing));
    ing->st = st;
    ing->cat = cat;
    ing->eng = eng;
    ing->upload_dir = dir;
    return ing;
}

void lh_ingest_close(lh_ingest *ing)
{
    if (!ing)
        return;
    free(ing->upload_dir);
    free(ing);
}

lh_storage *lh_ingest_storage(lh_ingest *ing)
{
    return ing->st;
}

/* ---------------------------------------------------------------- uploads */

lh_upload *lh_upload_open(lh_ingest *ing, lh_file_format format, lh_error *err)
{
    char hex[33];
    lh_random_hex(hex, 32);
    char *path = lh_xasprintf("%s/upload-%s.%s", ing->upload_dir, hex, format_ext(format));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        lh_error_set(err, LH_EIO, "cannot create an upload file: %s", strerror(errno));
        free(path);
        return NULL;
    }
    lh_upload *up = lh_xcalloc(1, sizeof(*up));
    up->path = path;
    up->fd = fd;
    return up;
}

int lh_upload_write(lh_upload *up, const void *data, size_t len, lh_error *err)
{
    if (lh_fs_write_all(up->fd, data, len) != 0)
        return lh_error_set(err, LH_EIO, "cannot store the upload: %s", strerror(errno));
    up->size += (int64_t)len;
    return 0;
}

int64_t lh_upload_size(const lh_upload *up)
{
    return up->size;
}

void lh_upload_free(lh_upload *up)
{
    if (!up)
        return;
    if (up->fd >= 0)
        close(up->fd);
    unlink(up->path);
    free(up->path);
    free(up);
}

/* ---------------------------------------------------------------- checks */

/* The bucket a request writes to, given the existing dataset (or NULL). Caller frees. */
static char *target_bucket(lh_ingest *ing, const lh_ingest_request *req, const json_t *existing,
                           lh_error *err)
{
    const char *have = existing ? lh_json_str(existing, "bucket") : NULL;
    if (req->bucket && *req->bucket) {
        if (!lh_storage_bucket_exists(ing->st, req->bucket)) {
            lh_storage_unknown_bucket(ing->st, req->bucket, err);
            return NULL;
        }
        if (req->mode != LH_MODE_CREATE && have && strcmp(have, req->bucket) != 0) {
            lh_error_setk(err, LH_ECONFLICT, "bucket_mismatch",
                          "dataset '%s' lives in bucket '%s'; a %s cannot target bucket '%s' "
                          "(datasets do not move between buckets)",
                          req->name, have, req->mode == LH_MODE_APPEND ? "append" : "replace",
                          req->bucket);
            return NULL;
        }
        return lh_xstrdup(req->bucket);
    }
    return lh_xstrdup(have ? have : LH_BUCKET_PRIMARY);
}

int lh_ingest_check(lh_ingest *ing, const lh_ingest_request *req, lh_error *err)
{
    int rc = lh_name_validate(req->name, "dataset name", err);
    if (rc)
        return rc;
    if (req->delimiter && req->format != LH_FILE_CSV)
        return lh_error_set(err, LH_EINVAL, "delimiter applies to CSV only");
    if (req->delimiter && strlen(req->delimiter) != 1 && strcmp(req->delimiter, "\\t") != 0)
        return lh_error_set(err, LH_EINVAL, "delimiter must be one character (or \\t)");
    if (req->delimiter &&
        (req->delimiter[0] == '\n' || req->delimiter[0] == '\r' || req->delimiter[0] == '"'))
        return lh_error_set(err, LH_EINVAL, "delimiter cannot be a newline or a quote");
    if (req->encoding && req->format != LH_FILE_CSV)
        return lh_error_set(err, LH_EINVAL,
                            "encoding applies to CSV only (JSON and Parquet are always UTF-8)");
    if (req->encoding && !encoding_duckdb(req->encoding))
        return lh_error_setk(err, LH_EINVAL, "invalid_encoding",
                             "unknown encoding '%s': use " ENCODING_LIST, req->encoding);
    json_t *existing = lh_catalog_get(ing->cat, req->name, NULL);
    if (req->mode == LH_MODE_CREATE && existing) {
        json_decref(existing);
        return lh_error_set(err, LH_EEXISTS,
                            "dataset '%s' already exists; use mode=replace or mode=append",
                            req->name);
    }
    if (req->mode == LH_MODE_APPEND && !existing)
        return lh_error_set(err, LH_ENOTFOUND,
                            "dataset '%s' does not exist; append needs an existing dataset "
                            "(use mode=create)",
                            req->name);
    char *bucket = target_bucket(ing, req, existing, err);
    json_decref(existing);
    if (!bucket)
        return err ? err->code : LH_EINVAL;
    free(bucket);
    return 0;
}

/* ---------------------------------------------------------------- conversion */

/* CSV dialect. DuckDB's sniffer is forgiving to a fault: given a malformed row it may
 * settle on a dialect that skips the leading lines as a "preamble", or reads every line as
 * one column, so the upload "succeeds" with rows silently dropped or mangled. So we pin
 * skip=0 (every line is a header or data), strict parsing, and the delimiter the header
 * line shows (the most frequent of , ; TAB | outside quotes); DuckDB still detects quoting,
 * the header and the types. A malformed row is then an error, never lost data. Returns the
 * delimiter, or 0 when the header line holds none (a one-column file). Reads at most
 * 64 KiB. */
static char header_delimiter(const char *path)
{
    static const char candidates[] = {',', ';', '\t', '|'};
    int counts[sizeof(candidates)] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    bool quoted = false;
    for (ssize_t i = 0; i < n && (quoted || (buf[i] != '\n' && buf[i] != '\r')); i++) {
        if (buf[i] == '"')
            quoted = !quoted;
        for (size_t c = 0; !quoted && c < sizeof(candidates); c++)
            if (buf[i] == candidates[c])
                counts[c]++;
    }
    char best = 0;
    int best_count = 0;
    for (size_t c = 0; c < sizeof(candidates); c++) {
        if (counts[c] > best_count) {
            best = candidates[c];
            best_count = counts[c];
        }
    }
    return best;
}

/* The table expression that reads the source file. Caller frees. */
static char *source_relation(const lh_ingest_request *req, const char *path)
{
    char *lit = lh_sql_literal(path);
    char *out = NULL;
    switch (req->format) {
    case LH_FILE_CSV: {
        char pinned[2] = {0, 0};
        if (req->delimiter)
            pinned[0] = strcmp(req->delimiter, "\\t") == 0 ? '\t' : req->delimiter[0];
        else
            pinned[0] = header_delimiter(path);
        lh_buf b;
        lh_buf_init(&b);
        lh_buf_printf(&b, "read_csv(%s, auto_detect=true, skip=0, strict_mode=true", lit);
        if (pinned[0]) {
            char *d = lh_sql_literal(pinned);
            lh_buf_printf(&b, ", delim=%s", d);
            free(d);
        }
        if (req->header >= 0)
            lh_buf_printf(&b, ", header=%s", req->header ? "true" : "false");
        const char *encoding = encoding_duckdb(req->encoding);
        if (encoding)
            lh_buf_printf(&b, ", encoding='%s'", encoding);
        lh_buf_putc(&b, ')');
        out = b.data;
        break;
    }
    case LH_FILE_JSON:
        out = lh_xasprintf("read_json(%s, format='auto')", lit);
        break;
    case LH_FILE_NDJSON:
        out = lh_xasprintf("read_json(%s, format='newline_delimited')", lit);
        break;
    case LH_FILE_PARQUET:
        out = lh_xasprintf("read_parquet(%s)", lit);
        break;
    }
    free(lit);
    return out;
}

/* TEXT_OTHER: no NUL byte (UTF-8, Latin-1, ...); TEXT_BINARY: NULs, but not UTF-16's. */
typedef enum { TEXT_OTHER, TEXT_UTF16LE, TEXT_UTF16BE, TEXT_BINARY } text_kind;

/* Whether a file is UTF-16 text, and which byte order, from its first 512 bytes: a byte
 * order mark, else where the NUL bytes fall (the high bytes of ASCII characters: odd
 * offsets in little-endian, even in big-endian). UTF-8 and Latin-1 text has no NUL; a
 * binary file (Parquet sent as CSV) has NULs at both parities. */
static text_kind sniff_text(const char *path)
{
    unsigned char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return TEXT_OTHER;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n >= 2 && buf[0] == 0xFF && buf[1] == 0xFE)
        return TEXT_UTF16LE;
    if (n >= 2 && buf[0] == 0xFE && buf[1] == 0xFF)
        return TEXT_UTF16BE;
    size_t nul_even = 0, nul_odd = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 0 && i % 2)
            nul_odd++;
        else if (buf[i] == 0)
            nul_even++;
    }
    /* CSV text is mostly ASCII: at least a quarter of one parity's bytes are NUL, and the
     * other parity has few (the low byte of U+0100, U+0200, ...). */
    size_t pairs = (size_t)(n > 0 ? n : 0) / 2;
    if (nul_odd * 4 >= pairs && nul_even * 8 <= nul_odd && nul_odd > 0)
        return TEXT_UTF16LE;
    if (nul_even * 4 >= pairs && nul_odd * 8 <= nul_even && nul_even > 0)
        return TEXT_UTF16BE;
    return nul_even + nul_odd ? TEXT_BINARY : TEXT_OTHER;
}

/* DuckDB's utf-16 is little-endian and decodes anything: a big-endian or UTF-8 file read
 * as UTF-16LE becomes one line of unrelated characters, a "dataset" of zero rows. So a
 * declared UTF-16 upload must look like UTF-16LE before it is converted. */
static int check_declared_encoding(const lh_ingest_request *req, const char *path, lh_error *err)
{
    const char *encoding = encoding_duckdb(req->encoding);
    if (req->format != LH_FILE_CSV || !encoding || strcmp(encoding, "utf-16") != 0)
        return 0;
    switch (sniff_text(path)) {
    case TEXT_UTF16LE:
        return 0;
    case TEXT_UTF16BE:
        return lh_error_setk(err, LH_EINVAL, "invalid_file",
                             "the upload is big-endian UTF-16, which is not supported; send "
                             "UTF-16LE or UTF-8");
    default:
        return lh_error_setk(err, LH_EINVAL, "invalid_file",
                             "the upload is not UTF-16 text (no byte order mark, no NUL bytes); "
                             "check the query parameter encoding (" ENCODING_LIST ")");
    }
}

/* A CSV that is not in the encoding DuckDB decoded it with. DuckDB's own advice names its
 * read_csv option; ours names the query parameter, which is what the caller can change. */
static int encoding_error(const lh_ingest_request *req, const char *duck_msg, bool is_utf16,
                          lh_error *err)
{
    const char *given = encoding_duckdb(req->encoding);
    char where[48] = "";
    const char *at = strstr(duck_msg, "CSV Error on Line: ");
    long line = at ? strtol(at + strlen("CSV Error on Line: "), NULL, 10) : 0;
    if (line > 0)
        snprintf(where, sizeof(where), " (line %ld)", line);
    if (is_utf16)
        return lh_error_setk(err, LH_EINVAL, "invalid_file",
                             "could not read the upload as csv: it looks like UTF-16 text; say "
                             "so with the query parameter encoding=utf-16");
    if (given)
        return lh_error_setk(err, LH_EINVAL, "invalid_file",
                             "could not read the upload as csv: it is not valid %s text%s; "
                             "check the query parameter encoding (" ENCODING_LIST ")",
                             given, where);
    return lh_error_setk(err, LH_EINVAL, "invalid_file",
                         "could not read the upload as csv: it is not UTF-8 text%s; if it is "
                         "Latin-1 or UTF-16, say so with the query parameter encoding=latin-1 "
                         "or encoding=utf-16",
                         where);
}

/* Rewrites a DuckDB error about the source so it neither leaks our internal paths nor
 * reads as a server fault: the upload's path becomes "the upload". I/O errors stay
 * LH_EIO (a full disk is not the client's fault). */
static int source_error(lh_ingest *ing, lh_error *err, const lh_ingest_request *req,
                        const char *path, const lh_error *duck)
{
    /* DuckDB appends the statement ("LINE 1: COPY (SELECT ... read_csv('/abs/path...")
     * cut to a width, so the path may appear truncated there: drop that context. */
    lh_error trimmed = *duck;
    char *ctx = strstr(trimmed.message, "\nLINE ");
    if (!ctx)
        ctx = strstr(trimmed.message, "LINE 1:");
    if (ctx)
        *ctx = '\0';
    const char *msg = trimmed.message;
    const char *encoding = encoding_duckdb(req->encoding);
    bool as_utf8 = !encoding || strcmp(encoding, "utf-8") == 0;
    text_kind text = req->format == LH_FILE_CSV ? sniff_text(path) : TEXT_OTHER;
    if (text == TEXT_BINARY)
        return lh_error_setk(err, LH_EINVAL, "invalid_file",
                             "could not read the upload as csv: it is binary data, not text; "
                             "check the format parameter (csv, json, ndjson or parquet)");
    bool is_utf16 = as_utf8 && (text == TEXT_UTF16LE || text == TEXT_UTF16BE);
    /* DuckDB's words for bytes its decoder rejects: "Invalid unicode (byte sequence
     * mismatch) detected" (utf-8), "File is not latin-1 encoded" (the others). */
    bool bad_text =
        strstr(msg, "Invalid unicode") || (strstr(msg, "File is not ") && strstr(msg, " encoded"));
    if (is_utf16 || (req->format == LH_FILE_CSV && bad_text))
        return encoding_error(req, msg, is_utf16, err);
    lh_buf b;
    lh_buf_init(&b);
    size_t plen = strlen(path);
    for (const char *p = msg; *p;) {
        if (plen && strncmp(p, path, plen) == 0) {
            lh_buf_puts(&b, "the upload");
            p += plen;
        } else {
            lh_buf_putc(&b, *p++);
        }
    }
    int rc;
    if (strncmp(msg, "IO Error", 8) == 0 && !strstr(msg, "No magic bytes") &&
        !strstr(msg, "too small to be a Parquet file"))
        rc = lh_error_set(err, LH_EIO, "could not convert the %s file: %s",
                          format_name(req->format), b.data ? b.data : "");
    else
        rc = lh_error_setk(err, LH_EINVAL, "invalid_file", "could not read the upload as %s: %s",
                           format_name(req->format), b.data ? b.data : "");
    lh_buf_free(&b);
    lh_error_scrub(err, lh_storage_data_dir(ing->st), "<data>");
    return rc;
}

/* Column list [{name, type}] of a relation expression. Caller decrefs. */
static json_t *describe(lh_ingest *ing, const char *relation, lh_error *err)
{
    char *sql = lh_xasprintf("DESCRIBE SELECT * FROM %s", relation);
    json_t *res = lh_engine_query_json(ing->eng, sql, err);
    free(sql);
    if (!res)
        return NULL;
    json_t *schema = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(res, "rows"), i, row)
    {
        json_t *col =
            json_pack("{s:O,s:O}", "name", json_array_get(row, 0), "type", json_array_get(row, 1));
        json_array_append_new(schema, col);
    }
    json_decref(res);
    return schema;
}

/* ---------------------------------------------------------------- PII sample */

/* Content PII detection reads, per column of these types, a bounded sample of the converted
 * part: up to SAMPLE_ROWS non-empty values (NULL and blank cells are filtered before
 * sampling), each cut to SAMPLE_VALUE_MAX bytes, so the work and memory per column are
 * bounded whatever the upload's size. Other types (BOOLEAN, DOUBLE, ...) are classified by
 * name and type alone. Integers are sampled because a CSV of unformatted card, phone or
 * barcode numbers arrives as BIGINT.
 *
 * How the sample is drawn depends on the part's size (measured on 1M people rows, see
 * docs/GOVERNANCE.md): a reservoir over a whole string column costs about a second there
 * (every value is cast and trimmed), while reading the first values after a row offset
 * costs milliseconds (DuckDB skips the row groups before the offset).
 *   - up to SAMPLE_SMALL_PART rows: a reservoir over all the column's non-empty values
 *     (exact when they number SAMPLE_ROWS or fewer);
 *   - larger parts: the part cut into SAMPLE_WINDOWS equal row ranges, the first
 *     SAMPLE_ROWS / SAMPLE_WINDOWS non-empty values of each range. Not first-N alone:
 *     parts are often sorted (by id, by time), and a column filled only in its later rows
 *     would look empty. A range with few non-empty values is read to its end (the cost of
 *     one range of that column). */
#define SAMPLE_ROWS 500
#define SAMPLE_VALUE_MAX 1024
#define SAMPLE_SMALL_PART 65536
#define SAMPLE_WINDOWS 4

static const char *const sampled_types[] = {"VARCHAR", "DATE",    "TIMESTAMP", "BIGINT",
                                            "UBIGINT", "HUGEINT", "UHUGEINT",  "INTEGER"};

static bool is_sampled_type(const char *type)
{
    for (size_t i = 0; type && i < sizeof(sampled_types) / sizeof(sampled_types[0]); i++)
        if (strncmp(type, sampled_types[i], strlen(sampled_types[i])) == 0)
            return true;
    return false;
}

/* True when the part has a column that read_parquet's file_row_number would shadow. */
static bool has_row_number_column(const json_t *schema)
{
    size_t i;
    const json_t *col;
    json_array_foreach(schema, i, col)
    {
        const char *name = lh_json_str(col, "name");
        if (name && strcasecmp(name, "file_row_number") == 0)
            return true;
    }
    return false;
}

/* Appends the values of one sampling statement's result to *values (borrowed from the
 * result, which is kept in held until the caller is done with them). */
static int sample_into(lh_ingest *ing, const char *sql, json_t *held, const char ***values,
                       size_t *n, lh_error *err)
{
    json_t *res = lh_engine_query_json(ing->eng, sql, err);
    if (!res)
        return err ? err->code : LH_EINTERNAL;
    json_array_append_new(held, res);
    const json_t *rows = json_object_get(res, "rows");
    *values = lh_xrealloc(*values, (*n + json_array_size(rows) + 1) * sizeof(**values));
    size_t r;
    const json_t *row;
    json_array_foreach(rows, r, row)(*values)[(*n)++] = json_string_value(json_array_get(row, 0));
    return 0;
}

/* Samples one column (see above) into values and n. */
static int sample_column(lh_ingest *ing, const char *part_lit, const char *name, int64_t rows,
                         bool windows, json_t *held, const char ***values, size_t *n, lh_error *err)
{
    char *id = lh_sql_ident(name);
    int rc = 0;
    if (!windows) {
        char *sql = lh_xasprintf(
            "SELECT v FROM (SELECT left(CAST(%s AS VARCHAR), %d) AS v FROM read_parquet(%s) "
            "WHERE %s IS NOT NULL AND trim(CAST(%s AS VARCHAR)) <> '') "
            "USING SAMPLE reservoir(%d ROWS) REPEATABLE (42)",
            id, SAMPLE_VALUE_MAX, part_lit, id, id, SAMPLE_ROWS);
        rc = sample_into(ing, sql, held, values, n, err);
        free(sql);
    }
    for (int w = 0; windows && w < SAMPLE_WINDOWS && rc == 0; w++) {
        /* Windows do not overlap, so no value is sampled twice. */
        long long from = (long long)(rows / SAMPLE_WINDOWS * w);
        long long to = w + 1 == SAMPLE_WINDOWS ? (long long)rows : from + rows / SAMPLE_WINDOWS;
        char *sql = lh_xasprintf(
            "SELECT left(CAST(%s AS VARCHAR), %d) AS v FROM read_parquet(%s, file_row_number = "
            "true) WHERE file_row_number >= %lld AND file_row_number < %lld AND %s IS NOT NULL "
            "AND trim(CAST(%s AS VARCHAR)) <> '' LIMIT %d",
            id, SAMPLE_VALUE_MAX, part_lit, from, to, id, id, SAMPLE_ROWS / SAMPLE_WINDOWS);
        rc = sample_into(ing, sql, held, values, n, err);
        free(sql);
    }
    free(id);
    return rc;
}

/* {column: lh_pii_verdict_json} for every column of the part at part_lit (an SQL string
 * literal of its path), which has `rows` rows. NULL + err when a sample cannot be read.
 * Caller decrefs. */
static json_t *content_pii(lh_ingest *ing, const char *part_lit, const json_t *schema, int64_t rows,
                           lh_error *err)
{
    json_t *out = json_object();
    bool windows = rows > SAMPLE_SMALL_PART && !has_row_number_column(schema);
    size_t i;
    const json_t *col;
    json_array_foreach(schema, i, col)
    {
        const char *name = lh_json_str(col, "name"), *type = lh_json_str(col, "type");
        const char **values = NULL;
        size_t n = 0;
        json_t *held = json_array();
        int rc = 0;
        if (is_sampled_type(type))
            rc = sample_column(ing, part_lit, name, rows, windows, held, &values, &n, err);
        lh_pii_verdict v;
        if (rc == 0)
            rc = lh_pii_classify(name, type, values, n, &v, err);
        free(values);
        json_decref(held);
        if (rc) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, name, lh_pii_verdict_json(&v));
    }
    return out;
}

char *lh_ingest_append_projection(const json_t *dataset_schema, const json_t *source_schema,
                                  const char *name, const char *what, lh_error *err)
{
    lh_buf b, missing, extra;
    lh_buf_init(&b);
    lh_buf_init(&missing);
    lh_buf_init(&extra);
    size_t i, j;
    json_t *dcol, *scol;
    json_array_foreach(dataset_schema, i, dcol)
    {
        const char *dn = lh_json_str(dcol, "name");
        const char *src = NULL;
        json_array_foreach(source_schema, j, scol)
        {
            const char *sn = lh_json_str(scol, "name");
            if (sn && dn && strcasecmp(sn, dn) == 0)
                src = sn;
        }
        if (!src) {
            lh_buf_printf(&missing, "%s%s", missing.len ? ", " : "", dn);
            continue;
        }
        char *si = lh_sql_ident(src), *di = lh_sql_ident(dn);
        lh_buf_printf(&b, "%sCAST(%s AS %s) AS %s", i ? ", " : "", si, lh_json_str(dcol, "type"),
                      di);
        free(si);
        free(di);
    }
    json_array_foreach(source_schema, j, scol)
    {
        const char *sn = lh_json_str(scol, "name");
        bool found = false;
        json_array_foreach(dataset_schema, i, dcol)
        {
            const char *dn = lh_json_str(dcol, "name");
            if (sn && dn && strcasecmp(sn, dn) == 0)
                found = true;
        }
        if (!found)
            lh_buf_printf(&extra, "%s%s", extra.len ? ", " : "", sn);
    }
    char *out = NULL;
    if (missing.len || extra.len) {
        lh_error_setk(err, LH_EINVAL, "schema_mismatch",
                      "%s's columns differ from dataset '%s': missing [%s], unexpected [%s]",
                      what ? what : "the upload", name, missing.len ? missing.data : "",
                      extra.len ? extra.data : "");
        lh_buf_free(&b);
    } else {
        out = b.data;
    }
    lh_buf_free(&missing);
    lh_buf_free(&extra);
    return out;
}

/* ---------------------------------------------------------------- staged parts */

int lh_ingest_part_begin(lh_ingest *ing, const char *name, lh_ingest_mode mode, const char *bucket,
                         lh_ingest_part *p, lh_error *err)
{
    memset(p, 0, sizeof(*p));
    lh_ingest_request req = {
        .name = name, .format = LH_FILE_PARQUET, .mode = mode, .bucket = bucket, .header = -1};
    int rc = lh_ingest_check(ing, &req, err);
    if (rc)
        return rc;
    p->existing = lh_catalog_get(ing->cat, name, NULL);
    p->bucket = target_bucket(ing, &req, p->existing, err);
    if (!p->bucket) {
        rc = err ? err->code : LH_EINVAL;
        goto out;
    }
    p->name = lh_xstrdup(name);
    p->mode = mode;
    /* Append parts join the dataset's folder; create/replace start a fresh one, so the
     * old generation's files are untouched until the new manifest is durable. */
    const char *id = p->existing && mode == LH_MODE_APPEND ? lh_json_str(p->existing, "id") : NULL;
    if (!id) {
        lh_random_hex(p->new_id, 32);
        id = p->new_id;
    }
    char part[17];
    lh_random_hex(part, 16);
    p->key = lh_xasprintf("datasets/%s/%s/part-%s.parquet", name, id, part);
    p->staged = lh_storage_stage(ing->st, p->bucket, p->key, err);
    if (!p->staged)
        rc = err ? err->code : LH_EIO;
out:
    if (rc)
        lh_ingest_part_end(ing, p);
    return rc;
}

void lh_ingest_part_end(lh_ingest *ing, lh_ingest_part *p)
{
    if (!p)
        return;
    if (p->staged)
        lh_storage_discard(p->staged);
    /* Unless committed: the part if it reached its final name, and in any case the folders
     * made for it (datasets/<name>/<id>/). */
    if (!p->kept && p->bucket && p->key)
        lh_storage_delete(ing->st, p->bucket, p->key, NULL);
    free(p->name);
    free(p->bucket);
    free(p->key);
    free(p->staged);
    json_decref(p->existing);
    memset(p, 0, sizeof(*p));
}

int lh_ingest_commit_part(lh_ingest *ing, lh_ingest_part *p, const lh_ingest_commit_opts *o,
                          json_t **manifest_out, lh_error *err)
{
    json_t *schema = NULL, *pii = NULL;
    char *sql = NULL, *staged_lit = lh_sql_literal(p->staged);
    lh_error local;
    int rc;
    if (!err)
        err = &local; /* a commit whose event was not recorded keeps its part */
    sql = lh_xasprintf("read_parquet(%s)", staged_lit);
    schema = describe(ing, sql, err);
    if (!schema) {
        rc = err->code;
        goto out;
    }
    /* PII by content, from the converted part (typed and cast as the dataset will be). */
    int64_t t_pii = lh_now_ms();
    pii = content_pii(ing, staged_lit, schema, o->rows, err);
    if (!pii) {
        rc = err->code;
        goto out;
    }
    int64_t t_commit = lh_now_ms();
    if ((rc = lh_storage_commit(ing->st, p->bucket, p->staged, p->key, err)) != 0)
        goto out;
    const char *actor = o->actor ? o->actor : "anonymous";
    lh_catalog_commit c = {
        .name = p->name,
        .bucket = p->bucket,
        .mode = p->mode,
        .expected_version = p->existing ? lh_json_int(p->existing, "version", 0) : 0,
        .expected_id = p->existing ? lh_json_str(p->existing, "id") : NULL,
        .new_id = p->new_id[0] ? p->new_id : NULL,
        .part_key = p->key,
        .part_rows = o->rows,
        .part_bytes = lh_storage_size(ing->st, p->bucket, p->key),
        .schema = schema,
        .lineage = o->lineage,
        .compression = COMPRESSION,
        .actor = actor,
        .content_pii = pii,
        .supersede_column = o->supersede_column,
        .supersede_keys = o->supersede_keys,
        .n_supersede = o->n_supersede,
    };
    rc = lh_catalog_commit_ingest(ing->cat, &c, manifest_out, err);
    /* A commit whose journal event could not be written did happen: its part stays. */
    p->kept = rc == 0 || lh_error_event_not_recorded(err);
    if (rc == 0) {
        int64_t t_end = lh_now_ms();
        lh_log(LH_LOG_INFO, "ingest.done", "{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "dataset", p->name,
               "format", o->format ? o->format : "", "rows", (json_int_t)o->rows, "bytes",
               (json_int_t)c.part_bytes, "prepare_ms",
               (json_int_t)(o->copy_started_ms - o->started_ms), "copy_ms",
               (json_int_t)(t_pii - o->copy_started_ms), "pii_ms", (json_int_t)(t_commit - t_pii),
               "commit_ms", (json_int_t)(t_end - t_commit));
    } else {
        lh_log(LH_LOG_WARN, "ingest.commit_failed", "{s:s,s:s}", "dataset", p->name, "error",
               err->message);
    }
out:
    json_decref(schema);
    json_decref(pii);
    free(sql);
    free(staged_lit);
    return rc;
}

/* ---------------------------------------------------------------- files */

int lh_ingest_path(lh_ingest *ing, const char *path, const lh_ingest_request *req,
                   json_t **manifest_out, lh_error *err)
{
    json_t *source_schema = NULL;
    char *relation = NULL, *select = NULL, *sql = NULL, *staged_lit = NULL;
    lh_ingest_part p = {0};
    lh_error duck;
    int rc = lh_ingest_check(ing, req, err);
    if (rc)
        return rc;
    if (lh_fs_size(path) <= 0) {
        return lh_error_setk(err, LH_EINVAL, "empty_body",
                             "the upload is empty; send the file as the request body");
    }
    if ((rc = check_declared_encoding(req, path, err)) != 0)
        return rc;

    int64_t t_start = lh_now_ms();
    if ((rc = lh_ingest_part_begin(ing, req->name, req->mode, req->bucket, &p, err)) != 0)
        return rc;
    relation = source_relation(req, path);
    if (req->mode == LH_MODE_APPEND) {
        /* Only an append needs the upload's columns up front (to cast them to the
         * dataset's); otherwise the COPY reports a bad file itself, without a second pass
         * of DuckDB's sniffer over the upload. */
        source_schema = describe(ing, relation, &duck);
        if (!source_schema) {
            rc = source_error(ing, err, req, path, &duck);
            goto out;
        }
        char *proj = lh_ingest_append_projection(json_object_get(p.existing, "schema"),
                                                 source_schema, req->name, "the upload", err);
        if (!proj) {
            rc = err ? err->code : LH_EINVAL;
            goto out;
        }
        select = lh_xasprintf("SELECT %s FROM %s", proj, relation);
        free(proj);
    } else {
        select = lh_xasprintf("SELECT * FROM %s", relation);
    }

    staged_lit = lh_sql_literal(p.staged);
    int64_t t_copy = lh_now_ms();
    sql = lh_xasprintf("COPY (%s) TO %s " LH_PARQUET_COPY_OPTIONS, select, staged_lit);
    int64_t rows = 0;
    if (lh_engine_exec(ing->eng, sql, &rows, &duck) != 0) {
        rc = source_error(ing, err, req, path, &duck);
        goto out;
    }
    char job[17];
    lh_random_hex(job, 16);
    json_t *lineage = json_pack("{s:s,s:s,s:s,s:s}", "source_system", "file", "source",
                                req->source && *req->source ? req->source : "upload", "format",
                                format_name(req->format), "job", job);
    lh_ingest_commit_opts o = {.rows = rows,
                               .lineage = lineage,
                               .actor = req->actor,
                               .format = format_name(req->format),
                               .started_ms = t_start,
                               .copy_started_ms = t_copy};
    rc = lh_ingest_commit_part(ing, &p, &o, manifest_out, err);
    json_decref(lineage);

out:
    lh_ingest_part_end(ing, &p);
    json_decref(source_schema);
    free(relation);
    free(select);
    free(staged_lit);
    free(sql);
    return rc;
}

int lh_ingest_upload(lh_ingest *ing, lh_upload *up, const lh_ingest_request *req,
                     json_t **manifest_out, lh_error *err)
{
    if (up->size == 0)
        return lh_error_setk(err, LH_EINVAL, "empty_body",
                             "the request body is empty; send the file as the body");
    /* Closing flushes nothing (no user-space buffer) but lets DuckDB see the final size. */
    if (up->fd >= 0) {
        close(up->fd);
        up->fd = -1;
    }
    return lh_ingest_path(ing, up->path, req, manifest_out, err);
}
