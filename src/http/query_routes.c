/*
 * query_routes.c: HTTP glue for POST /query/sql. The query starts (and fails, if it
 * fails early) before the status line is sent; the rows then stream.
 *
 * Threads: the HTTP worker validates the body and takes the query's slot (so 429 is
 * answered at once). A statement the firewall already allowed for this caller (verdict
 * cache) is started on the worker for at most LH_QUERY_INLINE_BUDGET_MS
 * (lh_query_run_inline): a small query then answers with no hand-off. Otherwise (unknown
 * SQL, or the budget ran out) the firewall, prepare or the rest of the execution, and the
 * first rows run on the query pool (lh_req_run_query); every later chunk fetch does too
 * (lh_reply_stream_pooled with lh_query_fill): the worker only copies rendered bytes.
 *
 * Access auditing (docs/AUDIT.md "Access auditing"; the rules are compliance/access.c's):
 * each query carries an lh_access_audit made from the caller and the X-Lakehouse-Purpose /
 * X-Lakehouse-Trace-Id headers (their bytes as sent); the engine calls its sink before
 * subjects' rows become readable, and after a successful start a dataset-level read is
 * journaled before the status line is sent. The context lives as long as the query (the
 * sink runs on later chunk fetches), so the stream owns both.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* A started query and the auditing context its sink uses; the stream's ctx. */
typedef struct query_stream {
    lh_query *q;
    lh_access_audit *access;
} query_stream;

static ssize_t query_read(void *ctx, char *buf, size_t cap)
{
    query_stream *s = ctx;
    ssize_t n = lh_query_read_buffered(s->q, buf, cap);
    return n == LH_QUERY_AGAIN ? LH_STREAM_AGAIN : n;
}

static void query_fill(void *ctx)
{
    query_stream *s = ctx;
    lh_query_fill(s->q);
}

/* A failure after streaming began is logged by the query itself (result.c). The query
 * goes first: it is the sink's last user. */
static void query_done(void *ctx)
{
    query_stream *s = ctx;
    lh_query_free(s->q);
    lh_access_audit_free(s->access);
    free(s);
}

/* What the pool's half needs; the request's state until the query moves to the stream. */
typedef struct query_call {
    const char *sql; /* borrowed from the request's JSON body, valid for the request */
    lh_query_opts opts;
    lh_query *q;             /* owns the slot; NULL once the stream owns the query */
    lh_access_audit *access; /* the sink's context (opts.sink_ctx); NULL once streamed */
} query_call;

static void query_call_free(void *p)
{
    query_call *c = p;
    lh_query_free(c->q);
    lh_access_audit_free(c->access);
    free(c);
}

/* A start failed: the slot goes now, not when the reply has been sent. An agent's denial
 * is journaled (a failure to do so is logged; the denial is answered all the same). */
static void query_refused(lh_req *r, lh_query *q, lh_access_audit *access, const char *sql,
                          const lh_error *err)
{
    if (err->code == LH_EFORBIDDEN)
        lh_log(LH_LOG_WARN, "query.refused", "{s:s,s:s}", "actor", lh_req_principal(r)->name,
               "reason", err->message);
    lh_query_free(q);
    lh_error rec;
    if (access && lh_access_record_denied(access, sql, err, &rec) != 0)
        lh_log(LH_LOG_ERROR, "query.denial_not_recorded", "{s:s,s:s}", "actor",
               lh_req_principal(r)->name, "message", rec.message);
    lh_access_audit_free(access);
    lh_reply_error(r, err);
}

/* A start succeeded: a dataset-level read is journaled before any byte is sent (or the
 * read fails with 500), then the rows stream. Takes q and access. */
static void query_started(lh_req *r, lh_query *q, lh_access_audit *access, lh_result_format format)
{
    lh_error err;
    if (lh_access_record(access, lh_query_access(q), &err) != 0) {
        lh_log(LH_LOG_ERROR, "query.access_not_recorded", "{s:s,s:s}", "actor",
               lh_req_principal(r)->name, "message", err.message);
        lh_query_free(q);
        lh_access_audit_free(access);
        lh_reply_error(r, &err);
        return;
    }
    /* A small result that has ended goes as one body with its length: no stream, no
     * chunked framing, and the query (its slot, connection and generation) ends now. The
     * cap is the block MHD would allocate for the stream anyway, so a client slow to read
     * it holds no more memory than a stream's. */
    size_t len;
    char *whole = lh_query_take_whole(q, LH_STREAM_BLOCK, &len);
    if (whole) {
        lh_query_free(q);
        lh_access_audit_free(access);
        lh_reply_bytes(r, 200, lh_result_format_mime(format), whole, len);
        return;
    }
    query_stream *s = lh_xcalloc(1, sizeof(*s));
    s->q = q;
    s->access = access;
    lh_reply_stream_pooled(r, 200, lh_result_format_mime(format), query_read, query_fill, s,
                           query_done);
}

/* On the query pool: firewall, prepare, execute, the first rows; then the stream. */
static void query_work(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    query_call *c = lh_req_state(r);
    const lh_principal *who = lh_req_principal(r);
    lh_sql_policy *policy = lh_sql_policy_for(app->cat, who);
    c->opts.policy = policy;
    int rc = lh_query_run(c->q, c->sql, &c->opts, &err);
    c->opts.policy = NULL;
    lh_sql_policy_free(policy);
    lh_query *q = c->q;
    lh_access_audit *access = c->access;
    c->q = NULL;
    c->access = NULL;
    if (rc != 0) {
        query_refused(r, q, access, c->sql, &err);
        return;
    }
    /* The first rows are rendered here too, so a small result needs no other hand-off.
     * (An audited query's first rows were rendered and audited by lh_query_run.) */
    lh_query_fill(q);
    query_started(r, q, access, c->opts.format);
}

/* The body {sql, format?, limit?} into *sql (borrowed from body) and opts. */
static int parse_body(const lh_app *app, const json_t *body, const char **sql, lh_query_opts *opts,
                      lh_error *err)
{
    const json_t *text = json_object_get(body, "sql");
    if (!json_is_string(text) || json_string_length(text) == 0)
        return lh_error_set(err, LH_EINVAL, "body must have \"sql\": a non-empty string");
    /* Parsing cost and memory grow with the text (DuckDB's parse tree of 1 MB of SQL took
     * 1.6 GB), so the text is capped before anything parses it. */
    if ((int64_t)json_string_length(text) > app->cfg->max_sql_bytes)
        return lh_error_set(err, LH_ETOOLARGE, "the SQL text is %zu bytes; the limit is %lld bytes",
                            json_string_length(text), (long long)app->cfg->max_sql_bytes);
    *sql = json_string_value(text);
    *opts = (lh_query_opts){.max_rows = app->cfg->query_default_rows,
                            .timeout_ms = app->cfg->query_timeout_ms};
    const json_t *fmt = json_object_get(body, "format");
    if (fmt && !json_is_string(fmt))
        return lh_error_set(err, LH_EINVAL, "\"format\" must be \"json\", \"csv\" or \"ndjson\"");
    if (lh_result_format_parse(json_string_value(fmt), &opts->format, err) != 0)
        return err->code;
    const json_t *limit = json_object_get(body, "limit");
    if (!limit)
        return 0;
    if (!json_is_integer(limit) || json_integer_value(limit) < 0)
        return lh_error_set(err, LH_EINVAL, "\"limit\" must be a non-negative integer");
    opts->max_rows = json_integer_value(limit);
    if (opts->max_rows > app->cfg->query_max_rows)
        return lh_error_setk(err, LH_EINVAL, "limit_too_large",
                             "\"limit\" %lld is over the server's cap of %lld rows",
                             (long long)opts->max_rows, (long long)app->cfg->query_max_rows);
    return 0;
}

void lh_h_query_sql(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    const char *sql = NULL;
    lh_query_opts opts;
    json_t *body = lh_req_json(r, &err);
    if (!body || parse_body(app, body, &sql, &opts, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    /* Header bytes as sent: no percent-decoding, no trimming (docs/API.md). */
    lh_access_audit *access = lh_access_audit_new(app->audit, app->cat, lh_req_principal(r),
                                                  lh_req_header(r, "X-Lakehouse-Purpose"),
                                                  lh_req_header(r, "X-Lakehouse-Trace-Id"), &err);
    if (!access) {
        lh_reply_error(r, &err);
        return;
    }
    opts.sink = lh_access_audit_sink(access);
    opts.sink_ctx = access;
    lh_query *q = lh_query_open(app->eng, &opts, &err);
    if (!q) {
        lh_access_audit_free(access);
        if (err.code == LH_EBUSY)
            lh_reply_header(r, "Retry-After", "1");
        lh_reply_error(r, &err);
        return;
    }
    /* The fast path: a statement the firewall already allowed for this caller starts here
     * if DuckDB has its first rows within LH_QUERY_INLINE_BUDGET_MS; otherwise the pool
     * finishes the same execution (or, uncached, does everything). */
    lh_sql_policy *policy = lh_sql_policy_for(app->cat, lh_req_principal(r));
    opts.policy = policy;
    int rc = lh_query_run_inline(q, sql, &opts, &err);
    opts.policy = NULL;
    lh_sql_policy_free(policy);
    if (rc < 0) {
        query_refused(r, q, access, sql, &err);
        return;
    }
    if (rc == 0) {
        query_started(r, q, access, opts.format);
        return;
    }
    query_call *c = lh_xcalloc(1, sizeof(*c));
    c->sql = sql;
    c->opts = opts;
    c->q = q;
    c->access = access;
    lh_req_set_state(r, c, query_call_free);
    lh_req_run_query(r, query_work);
}
