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

#endif
