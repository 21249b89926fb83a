/*
 * storage_routes.c: HTTP glue for the bucket registry.
 */
#include "http_internal.h"

#include <string.h>

void lh_h_buckets_list(lh_req *r)
{
    lh_reply_json(r, 200,
                  json_pack("{s:o}", "buckets", lh_storage_buckets_json(lh_req_app(r)->st)));
}

void lh_h_buckets_add(lh_req *r)
{
    lh_error err;
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    const char *name = lh_json_str(body, "name");
    const char *root = lh_json_str(body, "root");
    if (!name || !root) {
        lh_error_set(&err, LH_EINVAL, "body must be {\"name\": string, \"root\": string}");
        {
            lh_reply_error(r, &err);
            return;
        }
    }
    if (lh_catalog_add_bucket(lh_req_app(r)->cat, name, root, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    json_t *list = lh_storage_buckets_json(lh_req_app(r)->st);
    json_t *added = NULL, *b;
    size_t i;
    json_array_foreach(list, i, b)
    {
        const char *n = lh_json_str(b, "name");
        if (n && strcmp(n, name) == 0)
            added = json_incref(b);
    }
    json_decref(list);
    lh_reply_json(r, 201, json_pack("{s:o}", "bucket", added ? added : json_null()));
}

void lh_h_buckets_remove(lh_req *r)
{
    lh_error err;
    const char *name = lh_req_param(r, 0);
    if (lh_catalog_remove_bucket(lh_req_app(r)->cat, name, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:s,s:b}", "name", name, "removed", 1));
}
