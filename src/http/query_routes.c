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
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>

static ssize_t query_read(void *ctx, char *buf, size_t cap)
{
    ssize_t n = lh_query_read_buffered(ctx, buf, cap);
    return n == LH_QUERY_AGAIN ? LH_STREAM_AGAIN : n;
}

static void query_fill(void *ctx)
{
    lh_query_fill(ctx);
}

/* A failure after streaming began is logged by the query itself (result.c). */
static void query_done(void *ctx)
{
    lh_query_free(ctx);
}

/* What the pool's half needs; the request's state until the query moves to the stream. */
typedef struct query_call {
    const char *sql; /* borrowed from the request's JSON body, valid for the request */
    lh_query_opts opts;
    lh_query *q; /* owns the slot; NULL once the stream owns the query */
} query_call;

static void query_call_free(void *p)
{
    query_call *c = p;
    lh_query_free(c->q);
    free(c);
}

/* A start failed: the slot goes now, not when the reply has been sent. */
static void query_refused(lh_req *r, lh_query *q, const lh_error *err)
{
    if (err->code == LH_EFORBIDDEN)
        lh_log(LH_LOG_WARN, "query.refused", "{s:s,s:s}", "actor", lh_req_principal(r)->name,
               "reason", err->message);
    lh_query_free(q);
    lh_reply_error(r, err);
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
    if (rc != 0) {
        lh_query *q = c->q;
        c->q = NULL;
        query_refused(r, q, &err);
        return;
    }
    /* The first rows are rendered here too, so a small result needs no other hand-off. */
    lh_query_fill(c->q);
    lh_query *q = c->q;
    c->q = NULL;
    lh_reply_stream_pooled(r, 200, lh_result_format_mime(c->opts.format), query_read, query_fill, q,
                           query_done);
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
    lh_query *q = lh_query_open(app->eng, &opts, &err);
    if (!q) {
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
        query_refused(r, q, &err);
        return;
    }
    if (rc == 0) {
        lh_reply_stream_pooled(r, 200, lh_result_format_mime(opts.format), query_read, query_fill,
                               q, query_done);
        return;
    }
    query_call *c = lh_xcalloc(1, sizeof(*c));
    c->sql = sql;
    c->opts = opts;
    c->q = q;
    lh_req_set_state(r, c, query_call_free);
    lh_req_run_query(r, query_work);
}
