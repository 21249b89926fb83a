/*
 * agents_internal.h: what the files of src/agents share (only they include it).
 *   mcp.c        the transport's rules, JSON-RPC envelopes, sessions, initialize, ping,
 *                resources/list and resources/read, dispatch to tools.c
 *   tools.c      the tools: their table (names, JSON Schemas), argument checks, the reads
 *                through the query engine and the vector module, with access auditing
 *   ratelimit.c  per-key token buckets (LH_MCP_CALLS_PER_MINUTE)
 */
#ifndef LH_AGENTS_INTERNAL_H
#define LH_AGENTS_INTERNAL_H

#include "agents.h"

#include <pthread.h>

/* JSON-RPC 2.0 and MCP error codes. */
#define MCP_PARSE_ERROR (-32700)
#define MCP_INVALID_REQUEST (-32600)
#define MCP_METHOD_NOT_FOUND (-32601)
#define MCP_INVALID_PARAMS (-32602)
#define MCP_INTERNAL_ERROR (-32603)
#define MCP_RESOURCE_NOT_FOUND (-32002) /* MCP: resources/read of an unknown uri */
#define MCP_RATE_LIMITED (-32000)       /* implementation-defined server error range */

/* ---------------------------------------------------------------- ratelimit.c */

typedef struct mcp_ratelimit mcp_ratelimit;
/* Buckets of per_minute tokens (the burst), refilled continuously. Caller frees. */
mcp_ratelimit *mcp_ratelimit_new(int per_minute);
void mcp_ratelimit_free(mcp_ratelimit *rl);
/* Takes one token from key's bucket at now_ms: 0, or the whole seconds (>= 1) until one
 * is there (nothing taken). Thread-safe. */
int mcp_ratelimit_take(mcp_ratelimit *rl, const char *key, int64_t now_ms);

/* ---------------------------------------------------------------- mcp.c's state */

typedef struct mcp_session {
    char id[65];      /* 64 hex characters: 32 bytes from the kernel's RNG */
    char *key;        /* the key name that created it (owned) */
    char version[16]; /* the negotiated protocol version */
    int64_t last_ms;  /* last request (monotonic) */
} mcp_session;

struct lh_mcp {
    lh_mcp_config mc;
    mcp_ratelimit *rl;
    pthread_mutex_t mu; /* guards sessions; held only around table edits */
    mcp_session *sessions;
    size_t n_sessions, cap_sessions;
};

/* ---------------------------------------------------------------- tools.c */

/* A tools/call that reads data and must finish on a thread that may block. */
typedef struct mcp_tool_call mcp_tool_call;

/* The tool table as tools/list shows it: [{name, title, description, inputSchema}].
 * Caller decrefs. */
json_t *mcp_tools_list(const lh_mcp *m);
/* Starts tools/call with params {name, arguments?, _meta?}. Returns 0 with either *result
 * (a CallToolResult, isError true for the model's mistakes and denials) or *pending (a
 * read: run mcp_tool_finish on a thread that may block); or a JSON-RPC error code (unknown tool,
 * params that are not an object) with err's message. Caller decrefs *result / frees *pending. */
int mcp_tool_begin(lh_mcp *m, const lh_principal *who, const json_t *params, json_t **result,
                   mcp_tool_call **pending, lh_error *err);
/* Runs a pending call: 0 with *result, or MCP_INTERNAL_ERROR with err (the read's audit
 * could not be written: the call fails, nothing of its data is returned). */
int mcp_tool_finish(mcp_tool_call *c, json_t **result, lh_error *err);
void mcp_tool_call_free(mcp_tool_call *c);
/* True when the call holds a query slot (query_sql, get_record); false for a search. */
bool mcp_tool_call_holds_slot(const mcp_tool_call *c);

/* The relations who may read, each described as list_datasets shows it, sorted by name.
 * Caller decrefs. */
json_t *mcp_relations(lh_mcp *m, const lh_principal *who);
/* One relation who may read, described (describe_dataset's shape); NULL + LH_ENOTFOUND
 * for an unknown name, LH_EFORBIDDEN naming the allowed ones for a hidden one (an agent
 * gets LH_EFORBIDDEN for both, so it cannot probe). Caller decrefs. */
json_t *mcp_relation_describe(lh_mcp *m, const lh_principal *who, const char *name, lh_error *err);
/* Journals a refused metadata request of an agent (describe, resources/read) as
 * LH_ACCESS_DENIED_ACTION, like the SQL denials; a failure is logged. */
void mcp_record_metadata_denial(lh_mcp *m, const lh_principal *who, const char *what,
                                const char *name, const lh_error *denial);

#endif
