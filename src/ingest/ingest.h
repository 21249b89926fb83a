/*
 * ingest: files into Parquet datasets.
 *
 * An upload streams to a temp file under <data>/_tmp/uploads (never held in memory),
 * then DuckDB converts it with one COPY into a staged Parquet object (zstd) in the target
 * bucket; the object is committed (fsync + rename) and only then the catalog commits the
 * manifest. Any failure before the manifest commit removes the staged/committed part and
 * the upload, so a failed ingest leaves no dataset, no manifest and no stray object.
 *
 * Append casts the new part to the dataset's schema by column name (same set of columns
 * required, in any order), so type inference on a small batch cannot fork the schema.
 */
#ifndef LH_INGEST_H
#define LH_INGEST_H

#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

typedef struct lh_ingest lh_ingest;

/* Caller frees with lh_ingest_close. st, cat and eng must outlive it. Removes uploads left
 * by a previous crash. */
lh_ingest *lh_ingest_open(lh_storage *st, lh_catalog *cat, lh_engine *eng, lh_error *err);
void lh_ingest_close(lh_ingest *ing);
/* The storage it writes to (borrowed, as given to lh_ingest_open). */
lh_storage *lh_ingest_storage(lh_ingest *ing);

typedef enum { LH_FILE_CSV, LH_FILE_JSON, LH_FILE_NDJSON, LH_FILE_PARQUET } lh_file_format;

typedef struct lh_ingest_request {
    const char *name; /* dataset name */
    lh_file_format format;
    lh_ingest_mode mode;
    const char *bucket;    /* X-Lakehouse-Bucket, or NULL: primary (create), the dataset's
                              own bucket (replace, append) */
    const char *delimiter; /* CSV only, optional: one character, or "\t" */
    int header;            /* CSV only: -1 auto, 0 no header row, 1 header row */
    const char *encoding;  /* CSV only, optional: "utf-8" (default), "utf-16", "latin-1"
                              (see lh_ingest_check for the accepted spellings) */
    const char *source;    /* lineage "source", e.g. "upload" or a file name; may be NULL */
    const char *actor;     /* who asked */
} lh_ingest_request;

/* Parses "csv" | "json" | "ndjson" | "parquet"; else LH_EINVAL listing them. */
int lh_file_format_parse(const char *s, lh_file_format *out, lh_error *err);

/* Validates a request before its body is read, so a bad name, unknown bucket (LH_ENOTFOUND
 * listing valid buckets), create over an existing dataset or append to a missing one
 * fails before gigabytes are uploaded. The checks are repeated at commit time. An encoding
 * other than utf-8, utf-16 or latin-1 (any case; utf8, utf16, latin1 and iso-8859-1 too) is
 * LH_EINVAL naming the valid ones, and so is an encoding for a format other than CSV. */
int lh_ingest_check(lh_ingest *ing, const lh_ingest_request *req, lh_error *err);

typedef struct lh_upload lh_upload;

/* A new upload temp file. Caller frees with lh_upload_free (which deletes the file). */
lh_upload *lh_upload_open(lh_ingest *ing, lh_file_format format, lh_error *err);
int lh_upload_write(lh_upload *up, const void *data, size_t len, lh_error *err);
int64_t lh_upload_size(const lh_upload *up);
void lh_upload_free(lh_upload *up);

/* Converts a finished upload into the dataset and commits it. *manifest_out (if not
 * NULL) gets the new manifest; caller decrefs. Errors: LH_EINVAL (empty or malformed
 * file, schema mismatch on append; kind "invalid_file"), LH_EEXISTS, LH_ENOTFOUND,
 * LH_ECONFLICT (a concurrent change won; an append only conflicts with a replace, delete
 * or re-create of the dataset: concurrent appends all land), LH_EIO. */
int lh_ingest_upload(lh_ingest *ing, lh_upload *up, const lh_ingest_request *req,
                     json_t **manifest_out, lh_error *err);

/* Same, from a file already on disk inside an allowed folder (used by tests and tools). */
int lh_ingest_path(lh_ingest *ing, const char *path, const lh_ingest_request *req,
                   json_t **manifest_out, lh_error *err);

/* ---------------------------------------------------------------- parts from other producers
 *
 * A producer that writes a Parquet part itself (a database sync, src/sources/sync.c) takes
 * the same path as a file: lh_ingest_part_begin checks the target and hands out a staging
 * path, the producer writes the part there (COPY ... TO LH_PARQUET_COPY_OPTIONS), and
 * lh_ingest_commit_part describes it, samples it for content PII, commits the object and
 * then the manifest, and logs the ingest. lh_ingest_part_end always runs last: it removes
 * the staged file, and, unless the part was committed, the part and the folders made for it,
 * so a failed producer leaves nothing behind. */
typedef struct lh_ingest_part {
    char *name;
    lh_ingest_mode mode;
    char *bucket;     /* the target bucket */
    char *key;        /* datasets/<name>/<id>/part-<hex>.parquet */
    char *staged;     /* where the producer writes the part */
    json_t *existing; /* the dataset's manifest as the part was begun, or NULL */
    char new_id[33];  /* create/replace: the new generation's id (names the folder); "" for
                         an append (the part joins the dataset's folder) */
    bool kept;        /* set by lh_ingest_commit_part once the part is referenced */
} lh_ingest_part;

/* Checks a target as lh_ingest_check does (name, create over an existing dataset,
 * append to a missing one, bucket) and fills p. bucket may be NULL (as for a file ingest).
 * On success the caller must call lh_ingest_part_end(ing, p); on failure p holds nothing. */
int lh_ingest_part_begin(lh_ingest *ing, const char *name, lh_ingest_mode mode, const char *bucket,
                         lh_ingest_part *p, lh_error *err);

/* What the producer tells the commit. Everything is borrowed for the call. */
typedef struct lh_ingest_commit_opts {
    int64_t rows;          /* rows in the part (COPY's count) */
    const json_t *lineage; /* {source_system, source, ...}; the catalog adds ingested_at and
                              actor */
    const char *actor;     /* who asked, or NULL ("anonymous") */
    const char *format;    /* the log line's "format": "csv", "postgres", ... */
    int64_t started_ms;    /* lh_now_ms() when the ingest began and when its COPY began */
    int64_t copy_started_ms;
    /* Upsert (append only): see lh_catalog_commit.supersede_column. */
    const char *supersede_column;
    char *const *supersede_keys;
    size_t n_supersede;
} lh_ingest_commit_opts;

/* Commits the part the producer wrote at p->staged: describes it, samples content PII,
 * lh_storage_commit, lh_catalog_commit_ingest (expected version and id from p->existing),
 * log line. Errors: those of lh_catalog_commit_ingest and LH_EIO. p->kept is set when the
 * part ends up referenced (success, or a commit whose journal event is pending:
 * LH_KIND_EVENT_NOT_RECORDED). *manifest_out (if not NULL) gets the new manifest; caller
 * decrefs. */
int lh_ingest_commit_part(lh_ingest *ing, lh_ingest_part *p, const lh_ingest_commit_opts *o,
                          json_t **manifest_out, lh_error *err);

/* Removes the staged file and, unless p->kept, the part and the folders made for it; frees
 * p's fields. Accepts a zeroed p. */
void lh_ingest_part_end(lh_ingest *ing, lh_ingest_part *p);

/* The SELECT list of an append: the dataset's columns, in its order, cast to its types,
 * matched by name case-insensitively (the same set of columns required). Schemas are
 * [{name, type}]. `what` names the source in the error ("the upload", "the source").
 * NULL + LH_EINVAL kind "schema_mismatch" listing missing and unexpected columns. Caller
 * frees. */
char *lh_ingest_append_projection(const json_t *dataset_schema, const json_t *source_schema,
                                  const char *name, const char *what, lh_error *err);

#endif
