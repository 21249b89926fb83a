/*
 * profile_routes.c: HTTP glue for model profiles (the catalog decides: profiles.c), the
 * bucket migration (POST /catalog/migrate-buckets, run as a job) and
 * the guard that tells the catalog which keys are bound to a profile (keys live in auth/,
 * which the catalog may not call).
 */
#include "http_internal.h"

#include <string.h>

size_t lh_keys_bound_to_profile(void *ctx, const char *id, lh_buf *holders)
{
    json_t *keys = lh_auth_list(ctx);
    size_t n = 0, i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *profile = lh_json_str(k, "profile");
        if (profile && strcmp(profile, id) == 0)
            lh_buf_printf(holders, "%s%s", n++ ? ", " : "", lh_json_str(k, "name"));
    }
    json_decref(keys);
    return n;
}

void lh_h_profiles_list(lh_req *r)
{
    lh_reply_json(r, 200,
                  json_pack("{s:o}", "profiles", lh_catalog_profile_list(lh_req_app(r)->cat)));
}

void lh_h_profile_create(lh_req *r)
{
    lh_error err;
    json_t *body = lh_req_json(r, &err);
    json_t *prof = NULL;
    if (!body ||
        lh_catalog_profile_create(lh_req_app(r)->cat, body, lh_req_actor(r), &prof, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 201, json_pack("{s:o}", "profile", prof));
}

void lh_h_profile_get(lh_req *r)
{
    lh_error err;
    json_t *prof = lh_catalog_profile_get(lh_req_app(r)->cat, lh_req_param(r, 0), &err);
    if (!prof) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "profile", prof));
}

void lh_h_profile_delete(lh_req *r)
{
    lh_error err;
    const char *id = lh_req_param(r, 0);
    if (lh_catalog_profile_delete(lh_req_app(r)->cat, id, lh_req_actor(r), &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

/* ---------------------------------------------------------------- bucket migration */

/* On a job thread: one read and maybe one write per manifest, under the catalog's lock. */
static void migrate_work(lh_req *r)
{
    lh_error err;
    json_t *report = NULL;
    if (lh_catalog_migrate_buckets(lh_req_app(r)->cat, lh_req_actor(r), &report, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, report);
}

void lh_h_migrate_buckets(lh_req *r)
{
    lh_req_run_job(r, "migrate_buckets", migrate_work);
}
