/*
 * auth_routes.c: HTTP glue for API keys. The key text appears exactly once, in the
 * reply to its creation; it is never logged.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

void lh_h_keys_list(lh_req *r)
{
    lh_reply_json(r, 200, json_pack("{s:o}", "keys", lh_auth_list(lh_req_app(r)->auth)));
}

void lh_h_keys_create(lh_req *r)
{
    lh_error err;
    json_t *body = lh_req_json(r, &err);
    lh_role role = LH_ROLE_ANALYST;
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    const char *name = lh_json_str(body, "name");
    json_t *profile = json_object_get(body, "profile");
    json_t *datasets = json_object_get(body, "datasets");
    json_t *attributes = json_object_get(body, "attributes");
    const char *field;
    json_t *v;
    json_object_foreach(body, field, v)
    {
        if (strcmp(field, "name") && strcmp(field, "role") && strcmp(field, "profile") &&
            strcmp(field, "datasets") && strcmp(field, "attributes")) {
            lh_error_set(&err, LH_EINVAL,
                         "unknown field '%s' (fields: name, role, profile, datasets, "
                         "attributes)",
                         field);
            lh_reply_error(r, &err);
            return;
        }
    }
    if (!name || (profile && !json_is_null(profile) && !json_is_string(profile))) {
        lh_error_set(&err, LH_EINVAL,
                     "body must be {\"name\": string, \"role\": string, \"profile\"?: string, "
                     "\"datasets\"?: [string]}");
        lh_reply_error(r, &err);
        return;
    }
    if (lh_role_parse(lh_json_str(body, "role"), &role, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    if (attributes && lh_auth_attributes_validate(attributes, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    char *key = NULL;
    json_t *info = NULL;
    if (lh_auth_create(lh_req_app(r)->auth, name, role, json_string_value(profile),
                       json_is_null(datasets) ? NULL : datasets, &key, &info, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    /* Attributes go on in a second durable write: a crash between the two leaves a key
     * without attributes, which sees no row of a view that filters on them (fail closed). */
    if (attributes && json_object_size(attributes) > 0) {
        json_t *with = NULL;
        if (lh_auth_set_attributes(lh_req_app(r)->auth, name, attributes, &with, &err) != 0) {
            lh_error rerr;
            if (lh_auth_revoke(lh_req_app(r)->auth, name, &rerr) != 0)
                lh_log(LH_LOG_WARN, "key_create_undo_failed", "{s:s,s:s}", "key", name, "message",
                       rerr.message);
            memset(key, 0, strlen(key));
            free(key);
            json_decref(info);
            lh_reply_error(r, &err);
            return;
        }
        json_decref(info);
        info = with;
    }
    /* Journal: never the key nor its hash. The key exists now: if its event cannot be
     * written the reply is an error (event_not_recorded) naming it, and the key text is
     * not shown: revoke it and create another. */
    if (lh_catalog_record(lh_req_app(r)->cat, lh_req_actor(r), "key.created", name,
                          json_pack("{s:s,s:O?,s:O?,s:O?}", "role", lh_role_name(role), "profile",
                                    json_object_get(info, "profile"), "datasets",
                                    json_object_get(info, "datasets"), "attributes",
                                    json_object_get(info, "attributes")),
                          &err) != 0) {
        memset(key, 0, strlen(key));
        free(key);
        json_decref(info);
        lh_reply_error(r, &err);
        return;
    }
    json_object_set_new(info, "key", json_string(key));
    json_object_set_new(info, "note",
                        json_string("store this key now: it is shown only once and only a "
                                    "hash of it is kept"));
    memset(key, 0, strlen(key));
    free(key);
    lh_reply_json(r, 201, info);
}

void lh_h_keys_revoke(lh_req *r)
{
    lh_error err;
    const char *name = lh_req_param(r, 0);
    if (lh_auth_revoke(lh_req_app(r)->auth, name, &err) != 0 ||
        lh_catalog_record(lh_req_app(r)->cat, lh_req_actor(r), "key.revoked", name, NULL, &err) !=
            0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:s,s:b}", "name", name, "revoked", 1));
}

void lh_h_keys_patch(lh_req *r)
{
    lh_error err;
    const char *name = lh_req_param(r, 0);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    const char *field;
    json_t *v;
    json_object_foreach(body, field, v)
    {
        if (strcmp(field, "attributes") != 0) {
            lh_error_set(&err, LH_EINVAL, "unknown field '%s' (fields: attributes)", field);
            lh_reply_error(r, &err);
            return;
        }
    }
    json_t *info = NULL;
    json_t *attrs = json_object_get(body, "attributes");
    if (!attrs) {
        lh_error_set(&err, LH_EINVAL, "body must be {\"attributes\": {name: string}}");
        lh_reply_error(r, &err);
        return;
    }
    /* Journal: the attributes are not secrets (they say which rows a key may see), and
     * an auditor needs them. */
    if (lh_auth_set_attributes(lh_req_app(r)->auth, name, attrs, &info, &err) != 0 ||
        lh_catalog_record(lh_req_app(r)->cat, lh_req_actor(r), "key.attributes_set", name,
                          json_pack("{s:O}", "attributes", attrs), &err) != 0) {
        json_decref(info);
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "key", info));
}
