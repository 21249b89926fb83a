/*
 * catalog_routes.c: HTTP glue for dataset manifests.
 */
#include "http_internal.h"

/* An agent sees only what it may read in SQL (its grants, or its profile's bindings: the
 * query policy decides, so listings and SQL agree); everyone else who reaches these routes
 * sees the whole catalog's metadata. policy: the caller's, or NULL to make one. */
static bool may_see(lh_req *r, const lh_sql_policy *policy, const char *name)
{
    const lh_principal *p = lh_req_principal(r);
    if (!p || p->role != LH_ROLE_AGENT)
        return true;
    lh_sql_policy *own = policy ? NULL : lh_sql_policy_for(lh_req_app(r)->cat, p);
    const lh_sql_policy *use = policy ? policy : own;
    bool ok = use->may_read(use->ctx, name) == LH_REL_ALLOW;
    lh_sql_policy_free(own);
    return ok;
}

/* A route parameter that must be a valid dataset name the caller may see: a bad name is
 * 400 (it can never exist); a hidden one is 403 naming what the caller may see. */
static const char *dataset_param(lh_req *r, lh_error *err)
{
    const char *name = lh_req_param(r, 0);
    if (lh_name_validate(name, "dataset name", err) != 0)
        return NULL;
    const lh_principal *who = lh_req_principal(r);
    if (who && who->role == LH_ROLE_AGENT) {
        lh_sql_policy *policy = lh_sql_policy_for(lh_req_app(r)->cat, who);
        if (!may_see(r, policy, name)) {
            lh_error_set(err, LH_EFORBIDDEN, "dataset '%s' is not readable by this key (%s)", name,
                         policy->allowed_hint);
            lh_sql_policy_free(policy);
            return NULL;
        }
        lh_sql_policy_free(policy);
    }
    return name;
}

/* "queryable" and, when false, "query_problem": why the query engine cannot read it. */
static void mark_queryable(json_t *m, const json_t *problems)
{
    const json_t *why = json_object_get(problems, lh_json_str(m, "name"));
    json_object_set_new(m, "queryable", json_boolean(!why));
    if (why)
        json_object_set(m, "query_problem", (json_t *)why);
}

void lh_h_datasets_list(lh_req *r)
{
    lh_app *app = lh_req_app(r);
    json_t *all = lh_catalog_list(app->cat);
    json_t *problems = app->eng ? lh_engine_view_problems(app->eng) : json_object();
    json_t *out = json_array();
    const lh_principal *who = lh_req_principal(r);
    lh_sql_policy *policy = who ? lh_sql_policy_for(app->cat, who) : NULL;
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        if (may_see(r, policy, lh_json_str(m, "name"))) {
            mark_queryable(m, problems);
            json_array_append(out, m);
        }
    }
    lh_sql_policy_free(policy);
    json_decref(all);
    json_decref(problems);
    lh_reply_json(r, 200, json_pack("{s:o}", "datasets", out));
}

void lh_h_dataset_get(lh_req *r)
{
    lh_error err;
    const char *name = dataset_param(r, &err);
    lh_app *app = lh_req_app(r);
    json_t *m = name ? lh_catalog_get(app->cat, name, &err) : NULL;
    if (!m) {
        lh_reply_error(r, &err);
        return;
    }
    json_t *problems = app->eng ? lh_engine_view_problems(app->eng) : json_object();
    mark_queryable(m, problems);
    json_decref(problems);
    lh_reply_json(r, 200, json_pack("{s:o}", "dataset", m));
}

void lh_h_dataset_delete(lh_req *r)
{
    lh_error err;
    const char *name = dataset_param(r, &err);
    if (!name || lh_catalog_delete(lh_req_app(r)->cat, name, lh_req_actor(r), &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
}

void lh_h_dataset_patch(lh_req *r)
{
    lh_error err;
    const char *name = dataset_param(r, &err);
    json_t *body = name ? lh_req_json(r, &err) : NULL;
    json_t *m = NULL;
    if (!body ||
        lh_catalog_patch_metadata(lh_req_app(r)->cat, name, body, lh_req_actor(r), &m, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "dataset", m));
}
