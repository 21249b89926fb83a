/*
 * source_routes.c: HTTP glue for named database sources (sources/store.c decides and keeps
 * the DSNs): POST /sources, GET /sources, GET /sources/{name}, DELETE /sources/{name}.
 * Replies carry the DSN only as lh_dsn_redact shows it; the body that brought it is freed
 * with the request and never logged.
 */
#include "http_internal.h"

#include <string.h>

void lh_h_sources_create(lh_req *r)
{
    static const char *const members[] = {"name", "kind", "dsn"};
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
            known = known || strcmp(key, members[i]) == 0;
        if (!known || !json_is_string(v)) {
            lh_error_set(&err, LH_EINVAL,
                         known ? "'%s' must be a string"
                               : "unknown member '%s': the body is {\"name\", \"kind\": "
                                 "\"postgres\"|\"mysql\", \"dsn\"}",
                         key);
            lh_reply_error(r, &err);
            return;
        }
    }
    const char *name = lh_json_str(body, "name"), *kind_s = lh_json_str(body, "kind");
    const char *dsn = lh_json_str(body, "dsn");
    lh_source_kind kind;
    if (!name || !kind_s || !dsn) {
        lh_error_set(&err, LH_EINVAL,
                     "the body is {\"name\", \"kind\": \"postgres\"|\"mysql\", "
                     "\"dsn\"}: '%s' is missing",
                     !name     ? "name"
                     : !kind_s ? "kind"
                               : "dsn");
        lh_reply_error(r, &err);
        return;
    }
    json_t *src = NULL;
    if (lh_source_kind_parse(kind_s, &kind, &err) != 0 ||
        lh_sources_add(app->sources, name, kind, dsn, lh_req_actor(r), &err) != 0 ||
        !(src = lh_sources_get(app->sources, name, &err))) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 201, json_pack("{s:o}", "source", src));
}

void lh_h_sources_list(lh_req *r)
{
    lh_reply_json(r, 200, json_pack("{s:o}", "sources", lh_sources_list(lh_req_app(r)->sources)));
}

void lh_h_source_get(lh_req *r)
{
    lh_error err;
    json_t *src = lh_sources_get(lh_req_app(r)->sources, lh_req_param(r, 0), &err);
    if (!src) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "source", src));
}

void lh_h_source_delete(lh_req *r)
{
    lh_error err;
    if (lh_sources_delete(lh_req_app(r)->sources, lh_req_param(r, 0), lh_req_actor(r), &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_no_content(r);
}
