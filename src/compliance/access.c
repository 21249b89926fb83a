/*
 * access.c: access auditing (issue 11 item 5; docs/AUDIT.md "Access auditing"). The query
 * engine classifies what a statement returns of subject relations (query/lineage.c); this
 * file turns that into durable traces:
 *   - ROWS: the engine calls lh_access_sink with the raw keys of the subjects whose rows
 *     it is about to make readable; one audit row per subject, one batch per call, so a
 *     fill of 1,000 people costs one journal write and one shared fdatasync.
 *   - AGGREGATE / UNATTRIBUTED (analysts): one event in the catalog's journal.
 *   - an agent's refused read: one event in the journal.
 *
 * Invariants:
 *   - No silent access: the sink returns only when its rows are durable, and any failure
 *     is an error the engine turns into a failed read before the rows can be read; a
 *     dataset-level event that cannot be appended fails the read before its status line.
 *   - The accessor is copied at creation: the context outlives the HTTP request's
 *     borrowed strings (a streaming result calls the sink from the query pool).
 *   - Purpose and trace id are written as their header bytes, unchanged.
 */
#include "compliance.h"

#include <stdlib.h>
#include <string.h>

struct lh_access_audit {
    lh_audit *audit; /* borrowed; NULL: no audit key */
    lh_catalog *cat; /* borrowed */
    bool is_agent;
    char *key_name, *role, *profile, *model, *purpose, *trace_id; /* owned; NULL: none */
};

/* An optional header: NULL or "" → *out NULL; else checked and copied. */
static int header_copy(const char *name, const char *value, char **out, lh_error *err)
{
    *out = NULL;
    if (!value || !*value)
        return 0;
    size_t n = strlen(value);
    if (n > LH_ACCESS_HEADER_MAX)
        return lh_error_setk(err, LH_EINVAL, "invalid_header",
                             "%s is %zu bytes; the limit is %d bytes", name, n,
                             LH_ACCESS_HEADER_MAX);
    if (!lh_utf8_valid(value, n))
        return lh_error_setk(err, LH_EINVAL, "invalid_header",
                             "%s must be valid UTF-8 (it is kept verbatim in audit rows)", name);
    *out = lh_xstrdup(value);
    return 0;
}

lh_access_audit *lh_access_audit_new(lh_audit *audit, lh_catalog *cat, const lh_principal *who,
                                     const char *purpose, const char *trace_id, lh_error *err)
{
    lh_access_audit *a = lh_xcalloc(1, sizeof(*a));
    a->audit = audit;
    a->cat = cat;
    a->is_agent = who->role == LH_ROLE_AGENT;
    a->key_name = lh_xstrdup(who->name);
    a->role = lh_xstrdup(lh_role_name(who->role));
    if (header_copy("X-Lakehouse-Purpose", purpose, &a->purpose, err) ||
        header_copy("X-Lakehouse-Trace-Id", trace_id, &a->trace_id, err))
        goto fail;
    if (a->is_agent && !a->purpose) {
        lh_error_setk(err, LH_EINVAL, "purpose_required",
                      "agents must say why they read: send the header X-Lakehouse-Purpose "
                      "(e.g. \"candidate_screening\"); it is written into every audit row");
        goto fail;
    }
    if (a->is_agent && who->profile) {
        a->profile = lh_xstrdup(who->profile);
        lh_error ignored;
        json_t *p = lh_catalog_profile_get(cat, who->profile, &ignored);
        const char *model = json_string_value(json_object_get(p, "model_name"));
        /* A profile deleted since the key was checked reads nothing (its bindings are
         * gone), so a missing model name never labels a row that exists. */
        a->model = model ? lh_xstrdup(model) : NULL;
        json_decref(p);
    }
    return a;
fail:
    lh_access_audit_free(a);
    return NULL;
}

void lh_access_audit_free(lh_access_audit *a)
{
    if (!a)
        return;
    free(a->key_name);
    free(a->role);
    free(a->profile);
    free(a->model);
    free(a->purpose);
    free(a->trace_id);
    free(a);
}

lh_subject_sink lh_access_audit_sink(const lh_access_audit *a)
{
    return a && a->audit ? lh_access_sink : NULL;
}

int lh_access_sink(void *ctx, const char *const *keys, size_t n_keys, const char *const *fields,
                   size_t n_fields, lh_error *err)
{
    lh_access_audit *a = ctx;
    if (!a->audit)
        return lh_error_setk(err, LH_EUNAVAILABLE, "audit_unavailable",
                             "subject auditing is not configured (LH_SUBJECT_AUDIT_KEY)");
    lh_audit_entry *e = lh_xcalloc(n_keys ? n_keys : 1, sizeof(*e));
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < n_keys; i++) {
        if (!keys[i])
            continue;
        e[n++] = (lh_audit_entry){.candidate_id = keys[i],
                                  .accessor_kind = a->role,
                                  .daemon = a->key_name,
                                  .purpose = a->purpose,
                                  .trace_id = a->trace_id,
                                  .profile = a->profile,
                                  .model = a->model,
                                  .fields = fields,
                                  .n_fields = n_fields,
                                  .result = "success"};
    }
    lh_error cause;
    if (n > 0 && lh_audit_append_batch(a->audit, e, n, &cause) != 0)
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed",
                           "the read was not served because its audit rows could not be "
                           "written: %s",
                           cause.message);
    free(e);
    return rc;
}

/* The details every journal event of this file carries. Caller decrefs. */
static json_t *event_details(const lh_access_audit *a, const char *kind, const char *fingerprint)
{
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kind", kind, "role", a->role, "purpose",
                          a->purpose ? a->purpose : "", "trace_id", a->trace_id ? a->trace_id : "",
                          "fingerprint", fingerprint);
    if (a->profile)
        json_object_set_new(d, "profile", json_string(a->profile));
    if (a->model)
        json_object_set_new(d, "model", json_string(a->model));
    return d;
}

int lh_access_record(lh_access_audit *a, const lh_subject_access *acc, lh_error *err)
{
    const char *kind = acc->kind == LH_ACCESS_AGGREGATE      ? "aggregate"
                       : acc->kind == LH_ACCESS_UNATTRIBUTED ? "unattributed"
                                                             : NULL;
    if (!kind)
        return 0;
    json_t *details = event_details(a, kind, acc->fingerprint);
    json_t *datasets = json_array();
    lh_buf target;
    lh_buf_init(&target);
    for (size_t i = 0; acc->datasets && acc->datasets[i]; i++) {
        json_array_append_new(datasets, json_string(acc->datasets[i]));
        if (i)
            lh_buf_putc(&target, ',');
        lh_buf_puts(&target, acc->datasets[i]);
    }
    lh_buf_putc(&target, '\0');
    json_object_set_new(details, "datasets", datasets);
    if (acc->reason[0])
        json_object_set_new(details, "reason", json_string(acc->reason));
    lh_error cause;
    int rc = 0;
    if (lh_catalog_record(a->cat, a->key_name, LH_ACCESS_ACTION, target.data, details, &cause))
        rc = lh_error_setk(err, LH_EIO, "audit_write_failed",
                           "the read was not served because its access record could not be "
                           "written: %s",
                           cause.message);
    lh_buf_free(&target);
    return rc;
}

int lh_access_record_denied(lh_access_audit *a, const char *sql, const lh_error *denial,
                            lh_error *err)
{
    if (!a->is_agent || denial->code != LH_EFORBIDDEN)
        return 0;
    char fp[65];
    lh_sql_fingerprint(sql, fp);
    json_t *details = event_details(a, "denied", fp);
    json_object_set_new(details, "error", json_string(lh_error_kind(denial)));
    json_object_set_new(details, "message", json_string(denial->message));
    return lh_catalog_record(a->cat, a->key_name, LH_ACCESS_DENIED_ACTION, "", details, err);
}
