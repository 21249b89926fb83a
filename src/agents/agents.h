/*
 * agents: AI agents' door to the lake over the Model Context Protocol (issue 15;
 * docs/AGENTS.md).
 *
 * One endpoint, POST /mcp, speaks MCP's Streamable HTTP transport with JSON responses
 * (never SSE): JSON-RPC 2.0 requests in, one JSON-RPC response out; notifications and
 * client responses get 202 with no body. The server keeps a session per initialize
 * (Mcp-Session-Id: 32 random bytes, hex), bound to the key that created it and ended by
 * DELETE /mcp or after LH_MCP_SESSION_IDLE_S without a request.
 *
 * Governance is the lake's, not a second copy of it: every tool reads through the SQL
 * policy of the caller (lh_sql_policy_for: an agent sees only its profile's bindings),
 * the SQL firewall and the query engine, with the access-auditing context of
 * compliance/access.c (lh_access_audit_new, its sink, lh_access_record,
 * lh_access_record_denied), exactly as POST /query/sql does. A read whose audit fails
 * fails. Each key has a token bucket of LH_MCP_CALLS_PER_MINUTE requests (ratelimit.c).
 *
 * Threads: lh_mcp_begin runs on the HTTP worker and answers everything that needs no
 * DuckDB at once; query_sql and get_record take a query slot there (so a busy server
 * answers at once) and lh_mcp_finish runs them on the HTTP layer's query pool; a search
 * runs on the job pool (lh_mcp_pending says which). Sessions and buckets are guarded by their
 * own mutexes; nothing here holds one while calling another module.
 *
 * Files: mcp.c (transport rules, JSON-RPC, sessions, initialize, resources), tools.c (the
 * tools), ratelimit.c (token buckets).
 */
#ifndef LH_AGENTS_H
#define LH_AGENTS_H

#include "auth/auth.h"
#include "catalog/catalog.h"
#include "compliance/compliance.h"
#include "core/core.h"
#include "query/query.h"
#include "vector/vector.h"

typedef struct lh_mcp lh_mcp;

typedef struct lh_mcp_config {
    const lh_config *cfg; /* borrowed: LH_MCP_*, query limits */
    lh_catalog *cat;      /* borrowed */
    lh_engine *eng;       /* borrowed */
    lh_audit *audit;      /* borrowed; NULL: no audit chain (row-level reads then fail) */
    lh_vectors *vectors;  /* borrowed; NULL: the search tool is not offered */
} lh_mcp_config;

/* The MCP server's state (sessions, rate buckets). Everything in mc is borrowed and must
 * outlive it. Caller frees with lh_mcp_close. */
lh_mcp *lh_mcp_open(const lh_mcp_config *mc, lh_error *err);
void lh_mcp_close(lh_mcp *m);

/* The protocol versions we speak, newest first ("2025-11-25", ...); static. */
extern const char *const lh_mcp_versions[];

/* One HTTP request on /mcp, as the handler received it. All borrowed, valid until the
 * exchange is freed. */
typedef struct lh_mcp_request {
    const char *method;           /* "POST" or "DELETE" */
    const lh_principal *who;      /* the authenticated caller (an agent or analyst key) */
    const char *session_id;       /* Mcp-Session-Id, or NULL */
    const char *protocol_version; /* MCP-Protocol-Version, or NULL */
    const char *origin;           /* Origin, or NULL */
    const char *body;             /* POST body bytes (not NUL-terminated), may be NULL */
    size_t body_len;
} lh_mcp_request;

/* What one request becomes: a status, an optional JSON body and headers. */
typedef struct lh_mcp_exchange lh_mcp_exchange;

/* Handles req as far as it can without blocking. Never NULL. Then lh_mcp_pending says
 * whether the reply is ready (LH_MCP_READY) or lh_mcp_finish must first run on a thread
 * that may block: LH_MCP_QUERY_POOL when the exchange holds a query slot (query_sql,
 * get_record: run it on the query pool, one thread per slot), LH_MCP_JOB_POOL for a
 * search (it may wait on an embedding server and runs engine queries of its own, as
 * POST /vectors/search does on the job pool). Caller frees with lh_mcp_exchange_free. */
typedef enum { LH_MCP_READY, LH_MCP_QUERY_POOL, LH_MCP_JOB_POOL } lh_mcp_next;
lh_mcp_exchange *lh_mcp_begin(lh_mcp *m, const lh_mcp_request *req);
lh_mcp_next lh_mcp_pending(const lh_mcp_exchange *x);
void lh_mcp_finish(lh_mcp_exchange *x);
/* The reply: HTTP status; the JSON body (NULL for 202 and 204; the caller takes it and
 * decrefs); the Mcp-Session-Id to send (initialize) or NULL; Retry-After seconds (429) or
 * 0. Borrowed strings valid until the exchange is freed. */
int lh_mcp_status(const lh_mcp_exchange *x);
json_t *lh_mcp_take_body(lh_mcp_exchange *x);
const char *lh_mcp_session_header(const lh_mcp_exchange *x);
int lh_mcp_retry_after(const lh_mcp_exchange *x);
void lh_mcp_exchange_free(lh_mcp_exchange *x);

/* Live sessions (tests, health). */
size_t lh_mcp_session_count(lh_mcp *m);

/* The JSON snippet MCP hosts take to reach this server ({"mcpServers": {"lakehouse":
 * {"type": "http", "url": url, "headers": {"Authorization": "Bearer <key>"}}}}), for
 * `lakehouse mcp-config`. url is the endpoint (".../mcp"). Caller decrefs. */
json_t *lh_mcp_host_config(const char *url, const char *key);

#endif
