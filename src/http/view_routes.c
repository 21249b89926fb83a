/*
 * view_routes.c: HTTP glue for AI-safe views (catalog/safe_views.c decides, the query
 * engine builds them). Who may see a view is the domain's rule, lh_principal_may_read:
 * admins, analysts and legal list every view (metadata); an agent only the views granted
 * to its key.
 */
#include "http_internal.h"

#include <string.h>

static bool may_see_view(lh_req *r, const char *name)
{
    const lh_principal *p = lh_req_principal(r);
    return !p || p->role != LH_ROLE_AGENT || lh_principal_may_read(p, name);
}

/* The catalog's status, plus the query engine's reason when it could not create a view
 * the catalog thinks sound (a broken base is reported by the catalog first). */
static void merge_problem(json_t *v, const json_t *problems)
{
    const json_t *why = json_object_get(problems, lh_json_str(v, "name"));
    const char *status = lh_json_str(v, "status");
    if (why && status && strcmp(status, "ok") == 0) {
        json_object_set_new(v, "status", json_string("broken"));
        json_object_set(v, "problem", (json_t *)why);
    }
}

void lh_h_views_create(lh_req *r)
{
    lh_error err;
    json_t *body = lh_req_json(r, &err);
    json_t *def = NULL;
    if (!body ||
        lh_catalog_view_create(lh_req_app(r)->cat, body, lh_req_actor(r), &def, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 201, json_pack("{s:o}", "view", def));
}

void lh_h_views_list(lh_req *r)
{
    lh_app *app = lh_req_app(r);
    json_t *all = lh_catalog_views_list(app->cat);
    json_t *problems = app->eng ? lh_engine_safe_view_problems(app->eng) : json_object();
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v)
    {
        if (!may_see_view(r, lh_json_str(v, "name")))
            continue;
        merge_problem(v, problems);
        json_array_append(out, v);
    }
    json_decref(all);
    json_decref(problems);
    lh_reply_json(r, 200, json_pack("{s:o}", "views", out));
}

void lh_h_view_get(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    const char *name = lh_req_param(r, 0);
    if (!may_see_view(r, name)) {
        lh_buf b;
        lh_buf_init(&b);
        for (char **d = lh_req_principal(r)->datasets; d && *d; d++)
            lh_buf_printf(&b, "%s%s", b.len ? ", " : "", *d);
        lh_error_set(&err, LH_EFORBIDDEN, "view '%s' is not granted to this key (granted: %s)",
                     name, b.len ? b.data : "none");
        lh_buf_free(&b);
        lh_reply_error(r, &err);
        return;
    }
    json_t *v = lh_catalog_view_get(app->cat, name, &err);
    if (!v) {
        lh_reply_error(r, &err);
        return;
    }
    json_t *problems = app->eng ? lh_engine_safe_view_problems(app->eng) : json_object();
    merge_problem(v, problems);
    json_decref(problems);
    lh_reply_json(r, 200, json_pack("{s:o}", "view", v));
}

void lh_h_view_delete(lh_req *r)
{
    lh_error err;
    const char *name = lh_req_param(r, 0);
    if (lh_catalog_view_delete(lh_req_app(r)->cat, name, lh_req_actor(r), &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
}
