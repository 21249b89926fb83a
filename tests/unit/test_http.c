/*
 * test_http.c: the pure parts of the HTTP layer. Route matching (lh_route_match over the
 * real route table: exact paths, parameters, percent-decoding per segment, refused NULs,
 * trailing and doubled slashes, 405 versus 404), the error-code → status table and error
 * bodies (which render whatever bytes a message holds).
 * Everything that needs a socket is in tests/e2e.
 */
#include "testutil.h"

#include "http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- route matching */

typedef struct route_case {
    const char *method;
    const char *path;
    const char *pattern;  /* the route expected, or NULL for no match */
    bool path_matched;    /* when pattern is NULL: true → 405, false → 404 */
    const char *param[2]; /* expected parameters (NULL past the last) */
} route_case;

static const route_case route_cases[] = {
    /* exact paths */
    {"GET", "/health", "/health", false, {NULL}},
    {"GET", "/catalog/datasets", "/catalog/datasets", false, {NULL}},
    {"POST", "/query/sql", "/query/sql", false, {NULL}},
    {"POST", "/ingest/file", "/ingest/file", false, {NULL}},
    {"GET", "/auth/keys", "/auth/keys", false, {NULL}},
    {"POST", "/auth/keys", "/auth/keys", false, {NULL}},
    {"GET", "/storage/buckets", "/storage/buckets", false, {NULL}},
    {"POST", "/storage/buckets", "/storage/buckets", false, {NULL}},
    /* parameters */
    {"GET",
     "/catalog/datasets/by-name/people",
     "/catalog/datasets/by-name/{name}",
     false,
     {"people"}},
    {"DELETE",
     "/catalog/datasets/by-name/people",
     "/catalog/datasets/by-name/{name}",
     false,
     {"people"}},
    {"PATCH",
     "/catalog/datasets/by-name/people/metadata",
     "/catalog/datasets/by-name/{name}/metadata",
     false,
     {"people"}},
    {"DELETE", "/auth/keys/bot-1", "/auth/keys/{name}", false, {"bot-1"}},
    {"DELETE", "/storage/buckets/lake", "/storage/buckets/{name}", false, {"lake"}},
    /* percent-decoding happens per segment, after splitting: %2F stays inside the name */
    {"GET", "/catalog/datasets/by-name/a%2Fb", "/catalog/datasets/by-name/{name}", false, {"a/b"}},
    {"GET", "/catalog/datasets/by-name/a%2fb", "/catalog/datasets/by-name/{name}", false, {"a/b"}},
    {"GET",
     "/catalog/datasets/by-name/%70eople",
     "/catalog/datasets/by-name/{name}",
     false,
     {"people"}},
    {"GET", "/catalog/datasets/by-name/a%20b", "/catalog/datasets/by-name/{name}", false, {"a b"}},
    {"GET",
     "/catalog/datasets/by-name/a+b",
     "/catalog/datasets/by-name/{name}",
     false,
     {"a+b"}}, /* '+' is a space only in query strings */
    {"GET",
     "/catalog/datasets/by-name/%E2%9C%93",
     "/catalog/datasets/by-name/{name}",
     false,
     {"\xE2\x9C\x93"}},
    /* malformed escapes are kept as they are */
    {"GET", "/catalog/datasets/by-name/100%", "/catalog/datasets/by-name/{name}", false, {"100%"}},
    {"GET",
     "/catalog/datasets/by-name/a%zzb",
     "/catalog/datasets/by-name/{name}",
     false,
     {"a%zzb"}},
    {"GET", "/catalog/datasets/by-name/a%2", "/catalog/datasets/by-name/{name}", false, {"a%2"}},
    /* an escaped slash in a fixed segment does not make it match */
    {"GET", "/catalog%2Fdatasets", NULL, false, {NULL}},
    {"GET", "/%68ealth", "/health", false, {NULL}}, /* a decoded letter is that letter */
    /* a decoded NUL refuses the whole path */
    {"GET", "/catalog/datasets/by-name/a%00b", NULL, false, {NULL}},
    {"GET", "/catalog/datasets/by-name/%00", NULL, false, {NULL}},
    {"DELETE", "/auth/keys/%00", NULL, false, {NULL}},
    /* slashes: trailing and doubled ones are ignored, like empty segments */
    {"GET", "/health/", "/health", false, {NULL}},
    {"GET", "//health", "/health", false, {NULL}},
    {"GET", "/catalog//datasets/", "/catalog/datasets", false, {NULL}},
    {"GET",
     "/catalog/datasets/by-name/people/",
     "/catalog/datasets/by-name/{name}",
     false,
     {"people"}},
    /* wrong method on a known path → 405 */
    {"PUT", "/health", NULL, true, {NULL}},
    {"POST", "/health", NULL, true, {NULL}},
    {"GET", "/query/sql", NULL, true, {NULL}},
    {"DELETE", "/catalog/datasets", NULL, true, {NULL}},
    {"POST", "/catalog/datasets/by-name/people", NULL, true, {NULL}},
    {"GET", "/catalog/datasets/by-name/people/metadata", NULL, true, {NULL}},
    {"get", "/health", NULL, true, {NULL}}, /* methods are case-sensitive */
    {"PUT", "/auth/keys/x", NULL, true, {NULL}},
    /* unknown paths → 404 */
    {"GET", "/", NULL, false, {NULL}},
    {"GET", "", NULL, false, {NULL}},
    {"GET", "health", NULL, false, {NULL}},
    {"GET", "/nope", NULL, false, {NULL}},
    {"GET", "/HEALTH", NULL, false, {NULL}},
    {"GET", "/health/x", NULL, false, {NULL}},
    {"GET", "/catalog/datasets/by-name", NULL, false, {NULL}},
    {"GET", "/catalog/datasets/by-name/a/b", NULL, false, {NULL}},
    {"PATCH", "/catalog/datasets/by-name/people/metadata/x", NULL, false, {NULL}},
    {"GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n", NULL, false, {NULL}}, /* too many segments */
};

static void free_params(char *params[LH_ROUTE_MAX_PARAMS])
{
    for (int i = 0; i < LH_ROUTE_MAX_PARAMS; i++) {
        free(params[i]);
        params[i] = NULL;
    }
}

static void test_route_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
        const route_case *c = &route_cases[i];
        char *params[LH_ROUTE_MAX_PARAMS];
        bool path_matched = !c->path_matched; /* must be overwritten */
        const lh_route *r = lh_route_match(c->method, c->path, params, &path_matched);
        if (!c->pattern) {
            if (r)
                fail_msg("%s %s: matched %s, expected none", c->method, c->path, r->pattern);
            if (path_matched != c->path_matched)
                fail_msg("%s %s: path_matched %d, expected %d", c->method, c->path, path_matched,
                         c->path_matched);
            for (int k = 0; k < LH_ROUTE_MAX_PARAMS; k++)
                if (params[k])
                    fail_msg("%s %s: parameter %d set without a match", c->method, c->path, k);
            continue;
        }
        if (!r)
            fail_msg("%s %s: no match, expected %s", c->method, c->path, c->pattern);
        if (strcmp(r->pattern, c->pattern) != 0 || strcmp(r->method, c->method) != 0)
            fail_msg("%s %s: matched %s %s, expected %s", c->method, c->path, r->method, r->pattern,
                     c->pattern);
        for (int k = 0; k < LH_ROUTE_MAX_PARAMS; k++) {
            const char *want = k < 2 ? c->param[k] : NULL;
            if ((want == NULL) != (params[k] == NULL) || (want && strcmp(want, params[k]) != 0))
                fail_msg("%s %s: parameter %d is '%s', expected '%s'", c->method, c->path, k,
                         params[k] ? params[k] : "(none)", want ? want : "(none)");
        }
        free_params(params);
    }
}

/* Every route of the table is reachable through its own pattern (no route shadows
 * another), with one parameter per {placeholder}. */
static void test_every_route_reachable(void **state)
{
    (void)state;
    for (size_t i = 0; i < lh_routes_count; i++) {
        const lh_route *rt = &lh_routes[i];
        lh_buf path;
        lh_buf_init(&path);
        int placeholders = 0;
        for (const char *p = rt->pattern; *p; p++) {
            if (*p == '{') {
                lh_buf_printf(&path, "p%d", placeholders++);
                while (*p && *p != '}')
                    p++;
                if (!*p)
                    break;
            } else {
                lh_buf_putc(&path, *p);
            }
        }
        char *params[LH_ROUTE_MAX_PARAMS];
        bool path_matched = true;
        const lh_route *got = lh_route_match(rt->method, path.data, params, &path_matched);
        if (got != rt)
            fail_msg("%s %s (as %s): matched %s", rt->method, rt->pattern, path.data,
                     got ? got->pattern : "nothing");
        for (int k = 0; k < LH_ROUTE_MAX_PARAMS; k++) {
            char want[8];
            snprintf(want, sizeof(want), "p%d", k);
            if (k < placeholders)
                assert_string_equal(params[k], want);
            else
                assert_null(params[k]);
        }
        free_params(params);
        /* the health check is the only public route, besides the legal audit routes
         * (issue 11) and the biometric ones (issue 12), whose handlers take the legal token
         * or a legal key themselves */
        bool legal =
            strncmp(rt->pattern, "/audit/", 7) == 0 || strncmp(rt->pattern, "/biometric/", 11) == 0;
        assert_int_equal(rt->roles == 0, strcmp(rt->pattern, "/health") == 0 || legal);
        lh_buf_free(&path);
    }
}

/* ---------------------------------------------------------------- status table */

static const struct {
    int code;
    int status;
} status_cases[] = {
    {LH_OK, 200},
    {LH_EINVAL, 400},
    {LH_ENOTFOUND, 404},
    {LH_EEXISTS, 409},
    {LH_EFORBIDDEN, 403},
    {LH_EUNAUTH, 401},
    {LH_ETOOLARGE, 413},
    {LH_ECONFLICT, 409},
    {LH_EIO, 500},
    {LH_EINTERNAL, 500},
    {LH_EUNSUPPORTED, 415},
    {LH_EBUSY, 429},
    {LH_ETIMEOUT, 408},
    {LH_EUNAVAILABLE, 503},
    {LH_EMETHOD, 405},
    {LH_EUPSTREAM, 502},
    {LH_ECANCELLED, 409},
    /* codes that do not exist are a server bug: 500 */
    {-99, 500},
    {1, 500},
    {-17, 500},
};

static void test_http_status_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++)
        if (lh_http_status(status_cases[i].code) != status_cases[i].status)
            fail_msg("code %d (%s): status %d, expected %d", status_cases[i].code,
                     lh_code_name(status_cases[i].code), lh_http_status(status_cases[i].code),
                     status_cases[i].status);
    /* every LH_E* code from LH_EINVAL to LH_ECANCELLED is in the table above */
    for (int code = LH_EINVAL; code >= LH_ECANCELLED; code--) {
        bool listed = false;
        for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++)
            listed = listed || status_cases[i].code == code;
        if (!listed)
            fail_msg("code %d (%s) has no expected status in this test", code, lh_code_name(code));
        assert_true(lh_http_status(code) >= 400);
    }
}

/* ---------------------------------------------------------------- error bodies */

/* An error reply always renders: json_pack refused a message that was not UTF-8 and the
 * reply became {"error":"internal_error","message":"cannot render"}. */
static void test_error_body_renders_any_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *want;
    } cases[] = {
        {"no endpoint at /people", "no endpoint at /people"},
        {"no endpoint at /\xFF\xFE", "no endpoint at /\\xff\\xfe"},
        {"dataset 'Zo\xC3\xAB' \xC3", "dataset 'Zo\xC3\xAB' \\xc3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lh_error err;
        lh_error_setk(&err, LH_ENOTFOUND, "not_found", "%s", "x");
        /* filled by hand, as code that bypasses lh_error_set could */
        snprintf(err.message, sizeof(err.message), "%s", cases[i].raw);
        json_t *body = lh_http_error_body(&err);
        char *text = json_dumps(body, JSON_COMPACT);
        assert_non_null(text);
        json_t *back = json_loads(text, 0, NULL);
        assert_string_equal(lh_json_str(back, "error"), "not_found");
        assert_string_equal(lh_json_str(back, "message"), cases[i].want);
        json_decref(back);
        free(text);
        json_decref(body);
    }
    /* through lh_error_set, a raw URL byte is escaped before any reply sees it */
    lh_error err;
    lh_error_set(&err, LH_ENOTFOUND, "no endpoint at %s", "/a\xFF");
    json_t *body = lh_http_error_body(&err);
    assert_string_equal(lh_json_str(body, "message"), "no endpoint at /a\\xff");
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_match_table),
        cmocka_unit_test(test_every_route_reachable),
        cmocka_unit_test(test_http_status_table),
        cmocka_unit_test(test_error_body_renders_any_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
