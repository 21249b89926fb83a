/*
 * query_routes.c: HTTP glue for POST /query/sql. The query starts (and fails, if it
 * fails early) before the status line is sent; the rows then stream.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>

static ssize_t query_read(void *ctx, char *buf, size_t cap)
{
    return lh_query_read(ctx, buf, cap);
}

static void query_done(void *ctx)
{
    lh_query *q = ctx;
    const lh_error *e = lh_query_error(q);
    if (e && e->code != LH_OK)
        lh_log(LH_LOG_WARN, "query.failed_midstream", "{s:s,s:s}", "error", lh_error_kind(e),
               "message", e->message);
    lh_query_free(q);
}

void lh_h_query_sql(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    json_t *sql = json_object_get(body, "sql");
    if (!json_is_string(sql) || json_string_length(sql) == 0) {
        lh_error_set(&err, LH_EINVAL, "body must have \"sql\": a non-empty string");
        {
            lh_reply_error(r, &err);
            return;
        }
    }
    /* Parsing cost and memory grow with the text (DuckDB's parse tree of 1 MB of SQL took
     * 1.6 GB), so the text is capped before anything parses it. */
    if ((int64_t)json_string_length(sql) > app->cfg->max_sql_bytes) {
        lh_error_set(&err, LH_ETOOLARGE, "the SQL text is %zu bytes; the limit is %lld bytes",
                     json_string_length(sql), (long long)app->cfg->max_sql_bytes);
        lh_reply_error(r, &err);
        return;
    }
    lh_query_opts opts = {.max_rows = app->cfg->query_default_rows,
                          .timeout_ms = app->cfg->query_timeout_ms};
    json_t *fmt = json_object_get(body, "format");
    if (fmt && !json_is_string(fmt)) {
        lh_error_set(&err, LH_EINVAL, "\"format\" must be \"json\", \"csv\" or \"ndjson\"");
        {
            lh_reply_error(r, &err);
            return;
        }
    }
    if (lh_result_format_parse(json_string_value(fmt), &opts.format, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    json_t *limit = json_object_get(body, "limit");
    if (limit) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 0) {
            lh_error_set(&err, LH_EINVAL, "\"limit\" must be a non-negative integer");
            {
                lh_reply_error(r, &err);
                return;
            }
        }
        opts.max_rows = json_integer_value(limit);
        if (opts.max_rows > app->cfg->query_max_rows) {
            lh_error_setk(&err, LH_EINVAL, "limit_too_large",
                          "\"limit\" %lld is over the server's cap of %lld rows",
                          (long long)opts.max_rows, (long long)app->cfg->query_max_rows);
            {
                lh_reply_error(r, &err);
                return;
            }
        }
    }
    const lh_principal *who = lh_req_principal(r);
    lh_sql_policy *policy = lh_sql_policy_for(app->cat, who);
    opts.policy = policy;
    lh_query *q = lh_query_start(app->eng, json_string_value(sql), &opts, &err);
    lh_sql_policy_free(policy);
    if (!q) {
        if (err.code == LH_EFORBIDDEN)
            lh_log(LH_LOG_WARN, "query.refused", "{s:s,s:s}", "actor", who->name, "reason",
                   err.message);
        if (err.code == LH_EBUSY)
            lh_reply_header(r, "Retry-After", "1");
        {
            lh_reply_error(r, &err);
            return;
        }
    }
    lh_reply_stream(r, 200, lh_result_format_mime(opts.format), query_read, q, query_done);
}
