/*
 * test_mcp.c: agents over MCP (src/agents/) without HTTP: the token bucket's arithmetic;
 * the JSON-RPC envelope (parse error, batches, wrong version, bad ids, notifications →
 * 202) and its statuses; sessions (issued at initialize, 64 hex characters, bound to the
 * key, required, ended by DELETE, expiring when idle, bounded in number); protocol
 * version negotiation and the MCP-Protocol-Version header; Origin checks; the tool table's
 * JSON Schemas; tool errors that tell the model how to fix a call (before any read); an
 * agent's refused describe journaled as query.denied; the host config snippet.
 * Reads through the query engine are covered end to end (tests/e2e/test_mcp.py).
 */
#include "testutil.h"

#include "agents/agents_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct env {
    lh_test_cat *c;
    lh_config cfg;
    lh_mcp *m;
} env;

static int setup(void **state)
{
    env *e = lh_xcalloc(1, sizeof(*e));
    e->c = lh_test_cat_new("mcp");
    lh_error err;
    if (lh_config_load(&e->cfg, &err) != 0)
        fail_msg("config: %s", err.message);
    e->cfg.mcp_max_rows = 50;
    e->cfg.mcp_max_sessions = 3;
    e->cfg.mcp_session_idle_s = 1;
    e->cfg.mcp_allowed_origins = lh_xstrdup("http://localhost:6274, https://ok.example");
    lh_mcp_config mc = {.cfg = &e->cfg, .cat = e->c->cat};
    e->m = lh_mcp_open(&mc, &err);
    assert_non_null(e->m);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    lh_mcp_close(e->m);
    lh_config_free(&e->cfg);
    lh_test_cat_free(e->c);
    free(e);
    return 0;
}

static lh_principal agent = {.name = "bot", .role = LH_ROLE_AGENT, .profile = "gone"};
static lh_principal analyst = {.name = "ana", .role = LH_ROLE_ANALYST};

/* One exchange: status, body (caller decrefs) and session header (copied into sid). */
static int call(env *e, const lh_principal *who, const char *method, const char *session,
                const char *version, const char *origin, const char *body, json_t **out,
                char sid[65])
{
    lh_mcp_request req = {.method = method,
                          .who = who,
                          .session_id = session,
                          .protocol_version = version,
                          .origin = origin,
                          .body = body,
                          .body_len = body ? strlen(body) : 0};
    lh_mcp_exchange *x = lh_mcp_begin(e->m, &req);
    assert_int_equal(lh_mcp_pending(x), LH_MCP_READY); /* nothing here reads data */
    int st = lh_mcp_status(x);
    json_t *b = lh_mcp_take_body(x);
    if (sid) {
        const char *h = lh_mcp_session_header(x);
        snprintf(sid, 65, "%s", h ? h : "");
    }
    lh_mcp_exchange_free(x);
    if (out)
        *out = b;
    else
        json_decref(b);
    return st;
}

static int rpc_code(const json_t *doc)
{
    return (int)json_integer_value(json_object_get(json_object_get(doc, "error"), "code"));
}

static void init_session(env *e, const lh_principal *who, const char *version, char sid[65],
                         json_t **doc)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
             "\"version\":\"0\"}}}",
             version);
    assert_int_equal(call(e, who, "POST", NULL, NULL, NULL, body, doc, sid), 200);
    assert_int_equal(strlen(sid), 64);
    assert_int_equal(strspn(sid, "0123456789abcdef"), 64);
}

/* A tools/call's result in a session. Caller decrefs. */
static json_t *tool(env *e, const lh_principal *who, const char *sid, const char *name,
                    const char *args)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":%s}}",
             name, args);
    json_t *doc = NULL;
    assert_int_equal(call(e, who, "POST", sid, NULL, NULL, body, &doc, NULL), 200);
    json_t *r = json_incref(json_object_get(doc, "result"));
    assert_non_null(r);
    json_decref(doc);
    return r;
}

static const char *tool_text(const json_t *result)
{
    return lh_json_str(json_array_get(json_object_get(result, "content"), 0), "text");
}

/* ---------------------------------------------------------------- rate limit */

static void test_ratelimit(void **state)
{
    (void)state;
    mcp_ratelimit *rl = mcp_ratelimit_new(3); /* one token every 20 s, burst 3 */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mcp_ratelimit_take(rl, "a", 1000), 0);
    assert_int_equal(mcp_ratelimit_take(rl, "a", 1000), 20);
    assert_int_equal(mcp_ratelimit_take(rl, "b", 1000), 0);   /* its own bucket */
    assert_int_equal(mcp_ratelimit_take(rl, "a", 11000), 10); /* half a token back */
    assert_int_equal(mcp_ratelimit_take(rl, "a", 21000), 0);
    assert_int_equal(mcp_ratelimit_take(rl, "a", 21001), 20);
    /* a long pause refills to the burst, not beyond */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mcp_ratelimit_take(rl, "a", 10000000), 0);
    assert_true(mcp_ratelimit_take(rl, "a", 10000000) > 0);
    mcp_ratelimit_free(rl);
}

/* ---------------------------------------------------------------- envelope */

static void test_envelope(void **state)
{
    env *e = *state;
    char sid[65];
    json_t *doc = NULL;
    init_session(e, &analyst, "2025-06-18", sid, &doc);
    json_decref(doc);
    static const struct {
        const char *body;
        int status, code;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,", 400, MCP_PARSE_ERROR},
        {"", 400, MCP_PARSE_ERROR},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", 400, MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", 400, MCP_INVALID_REQUEST},
        {"{\"id\":1,\"method\":\"ping\"}", 400, MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 400, MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", 400, MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", 400, MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[]}", 400,
         MCP_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"id\":2}", 400, MCP_PARSE_ERROR},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sampling/createMessage\"}", 200,
         MCP_METHOD_NOT_FOUND},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", 200,
         MCP_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
         200, MCP_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"list_datasets\",\"arguments\":[]}}",
         200, MCP_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{\"uri\":"
         "\"file:///etc/passwd\"}}",
         200, MCP_RESOURCE_NOT_FOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = call(e, &analyst, "POST", sid, NULL, NULL, cases[i].body, &doc, NULL);
        if (st != cases[i].status || rpc_code(doc) != cases[i].code)
            fail_msg("case %zu (%s): %d %d", i, cases[i].body, st, rpc_code(doc));
        assert_string_equal(lh_json_str(doc, "jsonrpc"), "2.0");
        json_decref(doc);
    }
    /* the request's id comes back, string or number */
    assert_int_equal(call(e, &analyst, "POST", sid, NULL, NULL,
                          "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}", &doc, NULL),
                     200);
    assert_string_equal(lh_json_str(doc, "id"), "abc");
    assert_non_null(json_object_get(doc, "result"));
    json_decref(doc);
    /* notifications and responses: 202, no body */
    assert_int_equal(call(e, &analyst, "POST", sid, NULL, NULL,
                          "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &doc,
                          NULL),
                     202);
    assert_null(doc);
    assert_int_equal(call(e, &analyst, "POST", sid, NULL, NULL,
                          "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}", &doc, NULL),
                     202);
    assert_null(doc);
}

/* ---------------------------------------------------------------- sessions, versions */

static void test_sessions(void **state)
{
    env *e = *state;
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
    char sid[65], sid2[65];
    json_t *doc = NULL;
    /* negotiation: the client's version when we speak it, else our newest */
    init_session(e, &agent, "2025-03-26", sid, &doc);
    json_t *res = json_object_get(doc, "result");
    assert_string_equal(lh_json_str(res, "protocolVersion"), "2025-03-26");
    assert_string_equal(lh_json_str(json_object_get(res, "serverInfo"), "name"), "lakehouse");
    assert_non_null(json_object_get(json_object_get(res, "capabilities"), "tools"));
    json_decref(doc);
    init_session(e, &agent, "2024-11-05", sid2, &doc);
    assert_string_equal(lh_json_str(json_object_get(doc, "result"), "protocolVersion"),
                        lh_mcp_versions[0]);
    json_decref(doc);
    assert_string_not_equal(sid, sid2);
    assert_int_equal(lh_mcp_session_count(e->m), 2);
    /* required, bound to its key */
    assert_int_equal(call(e, &agent, "POST", NULL, NULL, NULL, ping, NULL, NULL), 400);
    assert_int_equal(call(e, &agent, "POST", "", NULL, NULL, ping, NULL, NULL), 400);
    assert_int_equal(call(e, &agent, "POST", "ab", NULL, NULL, ping, NULL, NULL), 404);
    assert_int_equal(call(e, &analyst, "POST", sid, NULL, NULL, ping, NULL, NULL), 404);
    assert_int_equal(call(e, &agent, "POST", sid, NULL, NULL, ping, NULL, NULL), 200);
    /* the version header: one we speak, or 400 */
    assert_int_equal(call(e, &agent, "POST", sid, "2025-06-18", NULL, ping, NULL, NULL), 200);
    assert_int_equal(call(e, &agent, "POST", sid, "2024-01-01", NULL, ping, &doc, NULL), 400);
    assert_int_equal(rpc_code(doc), MCP_INVALID_REQUEST);
    json_decref(doc);
    /* Origin: refused unless listed */
    assert_int_equal(call(e, &agent, "POST", sid, NULL, "http://evil.example", ping, NULL, NULL),
                     403);
    assert_int_equal(call(e, &agent, "POST", sid, NULL, "https://ok.example", ping, NULL, NULL),
                     200);
    assert_int_equal(call(e, &agent, "POST", sid, NULL, "http://localhost:6274", ping, NULL, NULL),
                     200);
    assert_int_equal(
        call(e, &agent, "POST", sid, NULL, "https://ok.example.evil", ping, NULL, NULL), 403);
    /* DELETE ends it, once; another key cannot end it */
    assert_int_equal(call(e, &analyst, "DELETE", sid, NULL, NULL, NULL, NULL, NULL), 404);
    assert_int_equal(call(e, &agent, "DELETE", NULL, NULL, NULL, NULL, NULL, NULL), 400);
    assert_int_equal(call(e, &agent, "DELETE", sid, NULL, NULL, NULL, NULL, NULL), 204);
    assert_int_equal(call(e, &agent, "DELETE", sid, NULL, NULL, NULL, NULL, NULL), 404);
    assert_int_equal(call(e, &agent, "POST", sid, NULL, NULL, ping, NULL, NULL), 404);
    /* bounded: 3 live sessions at most (503), idle ones expire (1 s here) */
    char s3[65], s4[65];
    init_session(e, &agent, "2025-06-18", s3, NULL);
    init_session(e, &analyst, "2025-06-18", s4, NULL);
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\"}}";
    assert_int_equal(call(e, &agent, "POST", NULL, NULL, NULL, init, &doc, sid), 503);
    assert_string_equal(sid, "");
    assert_int_equal(rpc_code(doc), MCP_INTERNAL_ERROR);
    json_decref(doc);
    usleep(1100 * 1000);
    assert_int_equal(call(e, &agent, "POST", s3, NULL, NULL, ping, NULL, NULL), 404);
    assert_int_equal(call(e, &agent, "POST", NULL, NULL, NULL, init, NULL, sid), 200);
    assert_int_equal(lh_mcp_session_count(e->m), 1);
    /* initialize needs a protocol version */
    assert_int_equal(call(e, &agent, "POST", NULL, NULL, NULL,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", &doc, NULL),
                     200);
    assert_int_equal(rpc_code(doc), MCP_INVALID_PARAMS);
    json_decref(doc);
}

/* ---------------------------------------------------------------- tools */

static void test_tools_list(void **state)
{
    env *e = *state;
    json_t *tools = mcp_tools_list(e->m);
    const char *want[] = {"list_datasets", "describe_dataset", "query_sql", "get_record"};
    assert_int_equal(json_array_size(tools), 4); /* no search without the vector module */
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(tools, i);
        assert_string_equal(lh_json_str(t, "name"), want[i]);
        assert_true(strlen(lh_json_str(t, "description")) > 20);
        json_t *s = json_object_get(t, "inputSchema");
        assert_string_equal(lh_json_str(s, "type"), "object");
        assert_true(json_is_false(json_object_get(s, "additionalProperties")));
        /* every required argument is a property */
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(s, "required"), k, r) assert_non_null(
            json_object_get(json_object_get(s, "properties"), json_string_value(r)));
    }
    json_t *q =
        json_object_get(json_object_get(json_array_get(tools, 2), "inputSchema"), "properties");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(q, "limit"), "maximum")),
                     50);
    json_decref(tools);
}

static void test_tool_errors(void **state)
{
    env *e = *state;
    char sid[65];
    init_session(e, &agent, "2025-06-18", sid, NULL);
    static const struct {
        const char *tool, *args, *kind, *says;
    } cases[] = {
        {"describe_dataset", "{}", "invalid_arguments", "needs the argument 'name'"},
        {"describe_dataset", "{\"name\":\"people\",\"x\":1}", "invalid_arguments",
         "no argument 'x' (arguments: name)"},
        {"list_datasets", "{\"x\":1}", "invalid_arguments", "(arguments: none)"},
        {"query_sql", "{\"sql\":\"SELECT 1\"}", "purpose_required", "needs the argument 'purpose'"},
        {"query_sql", "{\"sql\":\"\",\"purpose\":\"p\"}", "invalid_arguments", "non-empty string"},
        {"query_sql", "{\"sql\":\"SELECT 1\",\"purpose\":\"p\",\"limit\":0}", "invalid_arguments",
         "positive integer"},
        {"query_sql", "{\"sql\":\"SELECT 1\",\"purpose\":\"p\",\"limit\":51}", "limit_too_large",
         "at most 50 rows"},
        {"get_record", "{\"dataset\":\"people\",\"key\":[1],\"purpose\":\"p\"}",
         "invalid_arguments", "a string or an integer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = tool(e, &agent, sid, cases[i].tool, cases[i].args);
        assert_true(json_is_true(json_object_get(r, "isError")));
        assert_string_equal(lh_json_str(json_object_get(r, "_meta"), "lakehouse/error"),
                            cases[i].kind);
        if (!strstr(tool_text(r), cases[i].says))
            fail_msg("case %zu: %s", i, tool_text(r));
        /* a trace id is given back even for a refused call */
        assert_int_equal(strlen(lh_json_str(json_object_get(r, "_meta"), "lakehouse/trace_id")),
                         32);
        json_decref(r);
    }
    /* purpose may come from _meta instead (then the limit check is reached) */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"query_sql\",\"arguments\":{\"sql\":\"SELECT 1\",\"limit\":99},\"_meta\":{"
             "\"lakehouse/purpose\":\"p\",\"lakehouse/trace_id\":\"my-trace\"}}}");
    json_t *doc = NULL;
    assert_int_equal(call(e, &agent, "POST", sid, NULL, NULL, body, &doc, NULL), 200);
    json_t *r = json_object_get(doc, "result");
    assert_string_equal(lh_json_str(json_object_get(r, "_meta"), "lakehouse/error"),
                        "limit_too_large");
    assert_string_equal(lh_json_str(json_object_get(r, "_meta"), "lakehouse/trace_id"), "my-trace");
    json_decref(doc);
}

/* An agent whose profile binds nothing lists nothing; its describe of a dataset is a tool
 * error naming what it may read, journaled as query.denied. */
static void test_agent_denial_journaled(void **state)
{
    env *e = *state;
    char sid[65];
    init_session(e, &agent, "2025-06-18", sid, NULL);
    json_t *r = tool(e, &agent, sid, "list_datasets", "{}");
    assert_true(json_is_false(json_object_get(r, "isError")));
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(r, "structuredContent"), "datasets")), 0);
    json_decref(r);
    r = tool(e, &agent, sid, "describe_dataset", "{\"name\":\"people\"}");
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_non_null(strstr(tool_text(r), "allowed: none"));
    json_decref(r);
    json_t *evs = lh_catalog_events(e->c->cat, 0, 100, NULL);
    json_t *last = json_array_get(evs, json_array_size(evs) - 1);
    assert_string_equal(lh_json_str(last, "action"), LH_ACCESS_DENIED_ACTION);
    assert_string_equal(lh_json_str(last, "actor"), "bot");
    json_t *d = json_object_get(last, "details");
    assert_string_equal(lh_json_str(d, "via"), "mcp.describe_dataset");
    assert_string_equal(lh_json_str(d, "profile"), "gone");
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "datasets"), 0)),
                        "people");
    json_decref(evs);
    /* an analyst asking for a dataset that does not exist: not found, not journaled */
    init_session(e, &analyst, "2025-06-18", sid, NULL);
    size_t before = json_array_size(evs = lh_catalog_events(e->c->cat, 0, 100, NULL));
    json_decref(evs);
    r = tool(e, &analyst, sid, "describe_dataset", "{\"name\":\"people\"}");
    assert_string_equal(lh_json_str(json_object_get(r, "_meta"), "lakehouse/error"),
                        "unknown_dataset");
    json_decref(r);
    evs = lh_catalog_events(e->c->cat, 0, 100, NULL);
    assert_int_equal(json_array_size(evs), before);
    json_decref(evs);
}

static void test_host_config(void **state)
{
    (void)state;
    json_t *c = lh_mcp_host_config("http://h:1/mcp", "k\"1");
    char *text = lh_json_dumps(c);
    assert_string_equal(text, "{\"mcpServers\":{\"lakehouse\":{\"type\":\"http\",\"url\":"
                              "\"http://h:1/mcp\",\"headers\":{\"Authorization\":\"Bearer "
                              "k\\\"1\"}}}}");
    free(text);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test_setup_teardown(test_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_denial_journaled, setup, teardown),
        cmocka_unit_test(test_host_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
