/*
 * mcp.c: the Model Context Protocol over Streamable HTTP, JSON responses only
 * (docs/AGENTS.md "Protocol"; the spec's basic/transports and basic/lifecycle pages).
 *
 * One POST carries one JSON-RPC message:
 *   - a request gets one JSON-RPC response (200; envelope errors 400; rate limit 429);
 *   - a notification or a client's response gets 202 and no body;
 *   - a batch (an array) is refused: MCP 2025-06-18 removed batching.
 * Sessions: initialize creates one (Mcp-Session-Id, 64 hex characters from the kernel's
 * RNG) bound to the caller's key; every later request must carry it (400 without, 404
 * when unknown, ended, idle past LH_MCP_SESSION_IDLE_S, or created by another key: a
 * session is never usable by a key that did not create it, and a foreign id looks like an
 * unknown one). DELETE /mcp ends it (204).
 * Versions: initialize answers the client's protocolVersion when we speak it, else our
 * newest; a later MCP-Protocol-Version header must be one we speak (400 otherwise).
 * Origin: a request carrying an Origin header (a browser's) is refused unless
 * LH_MCP_ALLOWED_ORIGINS lists it, against DNS rebinding (the spec's MUST).
 *
 * The session table is guarded by m->mu, held only to find, add or remove an entry.
 */
#include "agents_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const lh_mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

struct lh_mcp_exchange {
    lh_mcp *m;
    const lh_principal *who;
    int status;
    json_t *body;
    json_t *id; /* the request's id (owned reference) */
    char session[65];
    int retry_after;
    mcp_tool_call *pending;
};

lh_mcp *lh_mcp_open(const lh_mcp_config *mc, lh_error *err)
{
    (void)err;
    lh_mcp *m = lh_xcalloc(1, sizeof(*m));
    m->mc = *mc;
    m->rl = mcp_ratelimit_new(mc->cfg->mcp_calls_per_minute);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void lh_mcp_close(lh_mcp *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_sessions; i++)
        free(m->sessions[i].key);
    free(m->sessions);
    pthread_mutex_destroy(&m->mu);
    mcp_ratelimit_free(m->rl);
    free(m);
}

size_t lh_mcp_session_count(lh_mcp *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_sessions;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static bool version_supported(const char *v)
{
    for (size_t i = 0; v && lh_mcp_versions[i]; i++)
        if (strcmp(lh_mcp_versions[i], v) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- sessions (under m->mu) */

static void session_remove_at(lh_mcp *m, size_t i)
{
    free(m->sessions[i].key);
    m->sessions[i] = m->sessions[--m->n_sessions];
}

static void sessions_expire(lh_mcp *m, int64_t now)
{
    int64_t idle_ms = (int64_t)m->mc.cfg->mcp_session_idle_s * 1000;
    for (size_t i = 0; i < m->n_sessions;)
        if (now - m->sessions[i].last_ms > idle_ms)
            session_remove_at(m, i);
        else
            i++;
}

/* Index of the live session id created by key, or -1. Ids are compared in full;
 * they are unguessable, so a plain compare leaks nothing worth a constant-time one. */
static ssize_t session_find(lh_mcp *m, const char *id, const char *key)
{
    for (size_t i = 0; i < m->n_sessions; i++)
        if (strcmp(m->sessions[i].id, id) == 0)
            return strcmp(m->sessions[i].key, key) == 0 ? (ssize_t)i : -1;
    return -1;
}

/* A new session for key; false when the table is full of live sessions. */
static bool session_create(lh_mcp *m, const char *key, const char *version, char out[65])
{
    int64_t now = lh_now_ms();
    pthread_mutex_lock(&m->mu);
    sessions_expire(m, now);
    bool ok = m->n_sessions < (size_t)m->mc.cfg->mcp_max_sessions;
    if (ok) {
        if (m->n_sessions == m->cap_sessions) {
            m->cap_sessions = m->cap_sessions ? m->cap_sessions * 2 : 16;
            m->sessions = lh_xrealloc(m->sessions, m->cap_sessions * sizeof(*m->sessions));
        }
        mcp_session *s = &m->sessions[m->n_sessions++];
        memset(s, 0, sizeof(*s));
        lh_random_hex(s->id, 64);
        s->key = lh_xstrdup(key);
        snprintf(s->version, sizeof(s->version), "%s", version);
        s->last_ms = now;
        memcpy(out, s->id, 65);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

/* Touches (or, end: removes) the caller's session; false when there is none. */
static bool session_use(lh_mcp *m, const char *id, const char *key, bool end)
{
    int64_t now = lh_now_ms();
    pthread_mutex_lock(&m->mu);
    sessions_expire(m, now);
    ssize_t i = session_find(m, id, key);
    if (i >= 0 && end)
        session_remove_at(m, (size_t)i);
    else if (i >= 0)
        m->sessions[i].last_ms = now;
    pthread_mutex_unlock(&m->mu);
    return i >= 0;
}

/* ---------------------------------------------------------------- replies */

static void reply(lh_mcp_exchange *x, int status, json_t *body)
{
    x->status = status;
    json_decref(x->body);
    x->body = body;
}

static void reply_result(lh_mcp_exchange *x, json_t *result)
{
    reply(x, 200,
          json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", x->id ? x->id : json_null(), "result",
                    result));
}

static void reply_error(lh_mcp_exchange *x, int status, int code, const char *message)
{
    reply(x, status,
          json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", x->id ? x->id : json_null(),
                    "error", "code", code, "message", message));
}

/* ---------------------------------------------------------------- methods */

static const char *instructions =
    "Governed access to a people-data lakehouse. Call list_datasets first: it shows the "
    "only datasets you may read, their columns and which hold personal data. Every tool "
    "that returns people's data needs a `purpose` argument and writes an audit row per "
    "person you receive, with your model, your purpose and the trace id returned in the "
    "result's _meta.";

static void do_initialize(lh_mcp_exchange *x, const json_t *params)
{
    const char *asked = lh_json_str(params, "protocolVersion");
    if (!asked) {
        reply_error(x, 200, MCP_INVALID_PARAMS,
                    "initialize needs params.protocolVersion (e.g. \"2025-06-18\")");
        return;
    }
    const char *version = version_supported(asked) ? asked : lh_mcp_versions[0];
    if (!session_create(x->m, x->who->name, version, x->session)) {
        x->session[0] = '\0';
        x->retry_after = 60;
        reply_error(x, 503, MCP_INTERNAL_ERROR,
                    "the server holds its maximum of live MCP sessions; end one (DELETE /mcp) "
                    "or retry later");
        return;
    }
    json_t *caps = json_pack("{s:{s:b},s:{s:b,s:b}}", "tools", "listChanged", 0, "resources",
                             "subscribe", 0, "listChanged", 0);
    reply_result(x, json_pack("{s:s,s:o,s:{s:s,s:s,s:s},s:s}", "protocolVersion", version,
                              "capabilities", caps, "serverInfo", "name", "lakehouse", "title",
                              "lakehouse (governed people data)", "version", "1.0", "instructions",
                              instructions));
}

#define URI_PREFIX "lakehouse://datasets/"

static void do_resources_list(lh_mcp_exchange *x)
{
    json_t *rels = mcp_relations(x->m, x->who), *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rels, i, r)
    {
        lh_buf uri;
        lh_buf_init(&uri);
        lh_buf_printf(&uri, "%s%s", URI_PREFIX, lh_json_str(r, "name"));
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "uri", uri.data, "name",
                                             lh_json_str(r, "name"), "description",
                                             lh_json_str(r, "description"), "mimeType",
                                             "application/json"));
        lh_buf_free(&uri);
    }
    json_decref(rels);
    reply_result(x, json_pack("{s:o}", "resources", out));
}

static void do_resources_read(lh_mcp_exchange *x, const json_t *params)
{
    const char *uri = lh_json_str(params, "uri");
    if (!uri) {
        reply_error(x, 200, MCP_INVALID_PARAMS, "resources/read needs params.uri");
        return;
    }
    lh_error err;
    if (strncmp(uri, URI_PREFIX, strlen(URI_PREFIX)) != 0) {
        reply_error(x, 200, MCP_RESOURCE_NOT_FOUND,
                    "unknown resource: uris are lakehouse://datasets/<name> "
                    "(resources/list names them)");
        return;
    }
    const char *name = uri + strlen(URI_PREFIX);
    json_t *d = mcp_relation_describe(x->m, x->who, name, &err);
    if (!d) {
        mcp_record_metadata_denial(x->m, x->who, "mcp.resources_read", name, &err);
        reply_error(x, 200, MCP_RESOURCE_NOT_FOUND, err.message);
        return;
    }
    char *text = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(d);
    reply_result(x, json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
                              "application/json", "text", text ? text : "{}"));
    free(text);
}

static void do_tools_call(lh_mcp_exchange *x, const json_t *params)
{
    json_t *result = NULL;
    lh_error err;
    int rc = mcp_tool_begin(x->m, x->who, params, &result, &x->pending, &err);
    if (rc != 0)
        reply_error(x, 200, rc, err.message);
    else if (result)
        reply_result(x, result);
}

/* One request, its envelope already checked. */
static void dispatch(lh_mcp_exchange *x, const char *method, const json_t *params)
{
    if (strcmp(method, "ping") == 0)
        reply_result(x, json_object());
    else if (strcmp(method, "tools/list") == 0)
        reply_result(x, json_pack("{s:o}", "tools", mcp_tools_list(x->m)));
    else if (strcmp(method, "tools/call") == 0)
        do_tools_call(x, params);
    else if (strcmp(method, "resources/list") == 0)
        do_resources_list(x);
    else if (strcmp(method, "resources/templates/list") == 0)
        reply_result(x, json_pack("{s:[{s:s,s:s,s:s}]}", "resourceTemplates", "uriTemplate",
                                  URI_PREFIX "{name}", "name", "dataset", "mimeType",
                                  "application/json"));
    else if (strcmp(method, "resources/read") == 0)
        do_resources_read(x, params);
    else {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "method not found (this server speaks initialize, ping, tools/list, "
                 "tools/call, resources/list, resources/read)");
        reply_error(x, 200, MCP_METHOD_NOT_FOUND, msg);
    }
}

static bool origin_allowed(const lh_mcp *m, const char *origin)
{
    const char *list = m->mc.cfg->mcp_allowed_origins;
    size_t n = strlen(origin);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && strncmp(p, origin, n) == 0)
            return true;
        p = end ? end + 1 : p + strlen(p);
    }
    return false;
}

/* The checks every request goes through before its message is read. */
static bool transport_ok(lh_mcp_exchange *x, const lh_mcp_request *req)
{
    if (req->origin && !origin_allowed(x->m, req->origin)) {
        reply_error(x, 403, MCP_INVALID_REQUEST,
                    "requests with an Origin header are refused unless LH_MCP_ALLOWED_ORIGINS "
                    "lists it (DNS rebinding protection)");
        return false;
    }
    if (req->protocol_version && !version_supported(req->protocol_version)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "unsupported MCP-Protocol-Version; this server speaks %s, %s, %s",
                 lh_mcp_versions[0], lh_mcp_versions[1], lh_mcp_versions[2]);
        reply_error(x, 400, MCP_INVALID_REQUEST, msg);
        return false;
    }
    return true;
}

/* The session the request names: false (and the reply set) when absent or unknown. */
static bool session_ok(lh_mcp_exchange *x, const lh_mcp_request *req, bool end)
{
    if (!req->session_id || !*req->session_id) {
        reply_error(x, 400, MCP_INVALID_REQUEST,
                    "missing Mcp-Session-Id header: send the id initialize returned");
        return false;
    }
    if (!session_use(x->m, req->session_id, req->who->name, end)) {
        reply_error(x, 404, MCP_INVALID_REQUEST,
                    "unknown or expired MCP session: initialize a new one");
        return false;
    }
    return true;
}

static void handle_post(lh_mcp_exchange *x, const lh_mcp_request *req)
{
    json_error_t jerr;
    json_t *msg =
        json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg) {
        char text[300];
        snprintf(text, sizeof(text), "parse error: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        reply_error(x, 400, MCP_PARSE_ERROR, text);
        return;
    }
    const char *method = NULL;
    const json_t *id = NULL, *params = NULL;
    if (json_is_array(msg)) {
        reply_error(x, 400, MCP_INVALID_REQUEST,
                    "JSON-RPC batches are not supported (MCP 2025-06-18 removed them): send "
                    "one message per request");
        goto out;
    }
    if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "jsonrpc")) ||
        strcmp(lh_json_str(msg, "jsonrpc"), "2.0") != 0) {
        reply_error(x, 400, MCP_INVALID_REQUEST,
                    "not a JSON-RPC 2.0 message: an object with \"jsonrpc\": \"2.0\"");
        goto out;
    }
    id = json_object_get(msg, "id");
    method = lh_json_str(msg, "method");
    params = json_object_get(msg, "params");
    bool has_method = json_object_get(msg, "method") != NULL;
    bool is_response =
        !has_method && id && (json_object_get(msg, "result") || json_object_get(msg, "error"));
    if (id && (json_is_string(id) || json_is_integer(id)))
        x->id = json_incref((json_t *)id);
    if ((has_method && !method) || (!has_method && !is_response) ||
        (id && !json_is_string(id) && !json_is_integer(id)) ||
        (params && !json_is_object(params))) {
        reply_error(x, 400, MCP_INVALID_REQUEST,
                    "invalid JSON-RPC message: \"method\" a string, \"id\" a string or integer, "
                    "\"params\" an object");
        goto out;
    }
    bool is_init = method && strcmp(method, "initialize") == 0;
    if (!id || is_response) { /* a notification, or the answer to a request we never send */
        if (session_ok(x, req, false))
            reply(x, 202, NULL);
        goto out;
    }
    int wait = mcp_ratelimit_take(x->m->rl, req->who->name, lh_now_ms());
    if (wait > 0) {
        char text[200];
        snprintf(text, sizeof(text),
                 "rate limit: this key may make %d MCP requests per minute; retry in %d s",
                 x->m->mc.cfg->mcp_calls_per_minute, wait);
        x->retry_after = wait;
        reply_error(x, 429, MCP_RATE_LIMITED, text);
        goto out;
    }
    if (is_init)
        do_initialize(x, params);
    else if (session_ok(x, req, false))
        dispatch(x, method, params);
out:
    json_decref(msg);
}

lh_mcp_exchange *lh_mcp_begin(lh_mcp *m, const lh_mcp_request *req)
{
    lh_mcp_exchange *x = lh_xcalloc(1, sizeof(*x));
    x->m = m;
    x->who = req->who;
    if (!transport_ok(x, req))
        return x;
    if (strcmp(req->method, "DELETE") == 0) {
        if (session_ok(x, req, true))
            reply(x, 204, NULL);
        return x;
    }
    handle_post(x, req);
    return x;
}

lh_mcp_next lh_mcp_pending(const lh_mcp_exchange *x)
{
    if (!x->pending)
        return LH_MCP_READY;
    return mcp_tool_call_holds_slot(x->pending) ? LH_MCP_QUERY_POOL : LH_MCP_JOB_POOL;
}

void lh_mcp_finish(lh_mcp_exchange *x)
{
    if (!x->pending)
        return;
    json_t *result = NULL;
    lh_error err;
    int rc = mcp_tool_finish(x->pending, &result, &err);
    mcp_tool_call_free(x->pending);
    x->pending = NULL;
    if (rc != 0)
        reply_error(x, 200, rc, err.message);
    else
        reply_result(x, result);
}

int lh_mcp_status(const lh_mcp_exchange *x)
{
    return x->status;
}

json_t *lh_mcp_take_body(lh_mcp_exchange *x)
{
    json_t *b = x->body;
    x->body = NULL;
    return b;
}

const char *lh_mcp_session_header(const lh_mcp_exchange *x)
{
    return x->session[0] ? x->session : NULL;
}

int lh_mcp_retry_after(const lh_mcp_exchange *x)
{
    return x->retry_after;
}

void lh_mcp_exchange_free(lh_mcp_exchange *x)
{
    if (!x)
        return;
    mcp_tool_call_free(x->pending);
    json_decref(x->body);
    json_decref(x->id);
    free(x);
}

json_t *lh_mcp_host_config(const char *url, const char *key)
{
    lh_buf auth;
    lh_buf_init(&auth);
    lh_buf_printf(&auth, "Bearer %s", key);
    json_t *out = json_pack("{s:{s:{s:s,s:s,s:{s:s}}}}", "mcpServers", "lakehouse", "type", "http",
                            "url", url, "headers", "Authorization", auth.data);
    explicit_bzero(auth.data, auth.len); /* the key's copy; the caller prints its own */
    lh_buf_free(&auth);
    return out;
}
