/*
 * mcp_routes.c: HTTP glue for /mcp (issue 15; agents/mcp.c decides everything). The
 * worker hands the request to lh_mcp_begin; query_sql and get_record hold a query slot
 * and finish on the query pool (lh_req_run_query), like POST /query/sql's slow path; a
 * search finishes on the job pool without a job record (lh_req_run_task), like POST
 * /vectors/search: searches are many and would push builds' records out of GET /jobs.
 */
#include "http_internal.h"

#include <stdio.h>

static void exchange_free(void *p)
{
    lh_mcp_exchange_free(p);
}

/* Sends what the exchange holds; the exchange stays the caller's. */
static void mcp_reply(lh_req *r, lh_mcp_exchange *x)
{
    const char *sid = lh_mcp_session_header(x);
    if (sid)
        lh_reply_header(r, "Mcp-Session-Id", sid);
    if (lh_mcp_retry_after(x) > 0) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%d", lh_mcp_retry_after(x));
        lh_reply_header(r, "Retry-After", secs);
    }
    json_t *body = lh_mcp_take_body(x);
    if (body)
        lh_reply_json(r, lh_mcp_status(x), body);
    else
        lh_reply_empty(r, lh_mcp_status(x));
}

/* On the query pool or the job pool: the read of a data tool. */
static void mcp_work(lh_req *r)
{
    lh_mcp_exchange *x = lh_req_state(r);
    lh_mcp_finish(x);
    mcp_reply(r, x);
}

static void mcp_handle(lh_req *r, const char *method)
{
    lh_app *app = lh_req_app(r);
    size_t len = 0;
    const char *body = lh_req_body(r, &len);
    lh_mcp_request req = {.method = method,
                          .who = lh_req_principal(r),
                          .session_id = lh_req_header(r, "Mcp-Session-Id"),
                          .protocol_version = lh_req_header(r, "MCP-Protocol-Version"),
                          .origin = lh_req_header(r, "Origin"),
                          .body = body,
                          .body_len = len};
    lh_mcp_exchange *x = lh_mcp_begin(app->mcp, &req);
    lh_mcp_next next = lh_mcp_pending(x);
    if (next != LH_MCP_READY) {
        lh_req_set_state(r, x, exchange_free);
        if (next == LH_MCP_QUERY_POOL)
            lh_req_run_query(r, mcp_work);
        else
            lh_req_run_task(r, mcp_work);
        return;
    }
    mcp_reply(r, x);
    lh_mcp_exchange_free(x);
}

void lh_h_mcp_post(lh_req *r)
{
    mcp_handle(r, "POST");
}

void lh_h_mcp_delete(lh_req *r)
{
    mcp_handle(r, "DELETE");
}
