/*
 * ingest_routes.c: HTTP glue for POST /ingest/file. The precheck validates the query
 * string and target before the body is read; the handler hands the finished upload to
 * the job pool, where it is converted, so the HTTP worker goes on serving its other
 * connections meanwhile.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

/* The parsed request, owned by the lh_req (strings copied: lh_req_query reuses its
 * buffer). */
typedef struct ingest_state {
    lh_ingest_request req;
    char *name, *bucket, *delimiter, *encoding, *source;
} ingest_state;

static void ingest_state_free(void *p)
{
    ingest_state *s = p;
    free(s->name);
    free(s->bucket);
    free(s->delimiter);
    free(s->encoding);
    free(s->source);
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? lh_xstrdup(s) : NULL;
}

/* Content-Type → format, for callers that send a typed body without ?format=. */
static const struct {
    const char *mime;
    const char *format;
} mime_formats[] = {
    {"text/csv", "csv"},
    {"application/csv", "csv"},
    {"application/json", "json"},
    {"application/x-ndjson", "ndjson"},
    {"application/ndjson", "ndjson"},
    {"application/jsonl", "ndjson"},
    {"application/vnd.apache.parquet", "parquet"},
    {"application/x-parquet", "parquet"},
};

static const char *format_from_mime(const char *ct)
{
    if (!ct)
        return NULL;
    size_t n = strcspn(ct, "; \t");
    for (size_t i = 0; i < sizeof(mime_formats) / sizeof(mime_formats[0]); i++)
        if (strlen(mime_formats[i].mime) == n && strncasecmp(ct, mime_formats[i].mime, n) == 0)
            return mime_formats[i].format;
    return NULL;
}

int lh_pre_ingest_file(lh_req *r, lh_error *err)
{
    ingest_state *s = lh_xcalloc(1, sizeof(*s));
    lh_req_set_state(r, s, ingest_state_free);
    s->req.header = -1;
    s->name = dup_or_null(lh_req_query(r, "name"));
    if (!s->name)
        return lh_error_set(err, LH_EINVAL, "query parameter 'name' is required");
    s->req.name = s->name;
    const char *format = lh_req_query(r, "format");
    char *format_copy =
        dup_or_null(format ? format : format_from_mime(lh_req_header(r, "Content-Type")));
    if (!format_copy)
        return lh_error_setk(err, LH_EINVAL, "invalid_format",
                             "query parameter 'format' is required (csv, json, ndjson or "
                             "parquet)");
    int rc = lh_file_format_parse(format_copy, &s->req.format, err);
    free(format_copy);
    if (rc)
        return rc;
    if ((rc = lh_ingest_mode_parse(lh_req_query(r, "mode"), &s->req.mode, err)))
        return rc;
    s->delimiter = dup_or_null(lh_req_query(r, "delimiter"));
    s->req.delimiter = s->delimiter;
    const char *header = lh_req_query(r, "header");
    if (header) {
        if (strcmp(header, "true") == 0)
            s->req.header = 1;
        else if (strcmp(header, "false") == 0)
            s->req.header = 0;
        else
            return lh_error_set(err, LH_EINVAL, "header must be true or false");
    }
    s->encoding = dup_or_null(lh_req_query(r, "encoding"));
    s->req.encoding = s->encoding;
    s->source = dup_or_null(lh_req_query(r, "source"));
    s->req.source = s->source;
    s->bucket = dup_or_null(lh_req_header(r, "X-Lakehouse-Bucket"));
    s->req.bucket = s->bucket;
    s->req.actor = lh_req_actor(r);
    if ((rc = lh_ingest_check(lh_req_app(r)->ing, &s->req, err)))
        return rc;
    return lh_req_begin_upload(r, s->req.format, err);
}

/* On a job thread (lh_req_run_job): the COPY may take many seconds. Progress is in bytes
 * of the upload: 0 of N while converting (one COPY gives no finer steps), N of N once
 * committed. */
static void ingest_work(lh_req *r)
{
    lh_error err;
    ingest_state *s = lh_req_state(r);
    json_t *m = NULL;
    int64_t bytes = lh_upload_size(lh_req_upload(r));
    lh_job_progress(lh_req_job(r), 0, bytes);
    if (lh_ingest_upload(lh_req_app(r)->ing, lh_req_upload(r), &s->req, &m, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_job_progress(lh_req_job(r), bytes, bytes);
    int status = s->req.mode == LH_MODE_APPEND ? 200 : 201;
    lh_reply_json(r, status, json_pack("{s:o}", "dataset", m));
}

void lh_h_ingest_file(lh_req *r)
{
    lh_req_run_job(r, "ingest", ingest_work);
}
