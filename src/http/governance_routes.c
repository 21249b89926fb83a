/*
 * governance_routes.c: HTTP glue for erasure: tombstones and compaction.
 *
 *   POST   /catalog/datasets/by-name/{name}/tombstone   add (a job: it counts rows)
 *   GET    /catalog/datasets/by-name/{name}/tombstone   list
 *   DELETE /catalog/datasets/by-name/{name}/tombstone   remove (restores rows)
 *   POST   /query/compact                               compaction (a job)
 *
 * The catalog decides (tombstones.c), the engine counts and compacts (erasure.c); this file
 * parses, calls and answers. Key values are never logged here.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Most keys one request may name (a body is at most max_json_body anyway). */
#define MAX_KEYS 100000

/* ---------------------------------------------------------------- key lists */

typedef struct key_list {
    char **keys; /* canonical texts; NULL where the value was refused (in failures) */
    size_t n;
} key_list;

static void key_list_free(key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    l->keys = NULL;
    l->n = 0;
}

/* The value as the caller sent it, for a failure entry. */
static json_t *value_echo(const json_t *v)
{
    if (json_is_string(v) || json_is_integer(v))
        return json_deep_copy(v);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_t *out = json_string(text ? text : "?");
    free(text);
    return out;
}

/* Canonical keys of values (a non-empty array) for a column of type; values that cannot be
 * keys go to failures. */
static int key_list_parse(const json_t *values, const char *type, key_list *out, json_t *failures,
                          lh_error *err)
{
    out->keys = NULL;
    out->n = 0;
    if (!json_is_array(values) || json_array_size(values) == 0)
        return lh_error_set(err, LH_EINVAL, "row_key_values must be a non-empty array");
    if (json_array_size(values) > MAX_KEYS)
        return lh_error_set(err, LH_ETOOLARGE, "row_key_values has %zu values; the limit is %d",
                            json_array_size(values), MAX_KEYS);
    out->n = json_array_size(values);
    out->keys = lh_xcalloc(out->n + 1, sizeof(char *));
    size_t i;
    const json_t *v;
    json_array_foreach(values, i, v)
    {
        lh_error kerr;
        out->keys[i] = type ? lh_tombstone_key_text(v, type, &kerr) : NULL;
        if (!out->keys[i])
            json_array_append_new(failures, json_pack("{s:o,s:s}", "value", value_echo(v), "reason",
                                                      type ? kerr.message : "not tombstoned"));
    }
    return 0;
}

/* The DuckDB type of column in manifest m, or NULL. */
static const char *column_type(const json_t *m, const char *column, const char **real)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(m, "schema"), i, c)
    {
        const char *name = lh_json_str(c, "name");
        if (name && column && strcasecmp(name, column) == 0) {
            if (real)
                *real = name;
            return lh_json_str(c, "type");
        }
    }
    return NULL;
}

static const char *name_param(lh_req *r, lh_error *err)
{
    const char *name = lh_req_param(r, 0);
    return lh_name_validate(name, "dataset name", err) == 0 ? name : NULL;
}

static void reply_outcome(lh_req *r, json_t *body, const json_t *failures)
{
    lh_reply_json(r, json_array_size(failures) ? 207 : 200, body);
}

/* ---------------------------------------------------------------- add */

/* On a job thread: counting the rows of each key reads the dataset. */
static void tombstone_add_work(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *m = NULL, *failures = json_array();
    key_list keys = {0};
    int64_t *counts = NULL;
    bool *skip = NULL, *added = NULL;
    char **valid = NULL;
    const char *name = name_param(r, &err);
    json_t *body = name ? lh_req_json(r, &err) : NULL;
    if (!body)
        goto fail;
    const char *column = lh_json_str(body, "row_key_column");
    const json_t *reason = json_object_get(body, "reason"), *actor = json_object_get(body, "actor");
    if (!column || !*column) {
        lh_error_set(&err, LH_EINVAL, "row_key_column is required (a column of '%s')", name);
        goto fail;
    }
    if ((reason && !json_is_string(reason)) || (actor && !json_is_string(actor))) {
        lh_error_set(&err, LH_EINVAL, "reason and actor must be strings");
        goto fail;
    }
    m = lh_catalog_get(app->cat, name, &err);
    if (!m)
        goto fail;
    const char *real = column;
    const char *type = column_type(m, column, &real);
    if (!type) {
        lh_error_set(&err, LH_EINVAL, "dataset '%s' has no column '%s'", lh_json_str(m, "name"),
                     column);
        goto fail;
    }
    if (!lh_tombstone_key_type_ok(type)) {
        lh_error_set(&err, LH_EINVAL,
                     "column '%s' is %s; a row key column must be an integer or VARCHAR column",
                     real, type);
        goto fail;
    }
    if (key_list_parse(json_object_get(body, "row_key_values"), type, &keys, failures, &err))
        goto fail;
    /* Count rows per valid key (duplicates in the request count once). */
    valid = lh_xcalloc(keys.n + 1, sizeof(char *));
    size_t nvalid = 0;
    for (size_t i = 0; i < keys.n; i++)
        if (keys.keys[i])
            valid[nvalid++] = keys.keys[i];
    counts = lh_xcalloc(keys.n + 1, sizeof(int64_t));
    lh_job_progress(lh_req_job(r), 0, 2);
    if (app->eng &&
        lh_erasure_count_keys(app->eng, m, real, type, valid, nvalid, counts, &err) != 0)
        goto fail;
    lh_job_progress(lh_req_job(r), 1, 2);
    skip = lh_xcalloc(keys.n + 1, sizeof(bool));
    added = lh_xcalloc(keys.n + 1, sizeof(bool));
    int64_t *count_of = lh_xcalloc(keys.n + 1, sizeof(int64_t));
    for (size_t i = 0, v = 0; i < keys.n; i++) {
        if (!keys.keys[i]) {
            skip[i] = true;
            continue;
        }
        count_of[i] = counts[v++];
        if (count_of[i] == 0) {
            skip[i] = true;
            json_array_append_new(failures, json_pack("{s:s,s:s}", "value", keys.keys[i], "reason",
                                                      "no row has this key"));
        }
    }
    lh_tombstone_req req = {
        .dataset = name,
        .key_column = real,
        .keys = keys.keys,
        .n = keys.n,
        .actor = actor ? json_string_value(actor) : lh_req_actor(r),
        .reason = reason ? json_string_value(reason) : NULL,
    };
    int rc = lh_catalog_tombstone_add(app->cat, &req, skip, added, failures, &err);
    int64_t rows = 0;
    size_t n_added = 0;
    for (size_t i = 0; rc == 0 && i < keys.n; i++)
        if (added[i]) {
            rows += count_of[i];
            n_added++;
        }
    free(count_of);
    if (rc)
        goto fail;
    lh_job_progress(lh_req_job(r), 2, 2);
    reply_outcome(r,
                  json_pack("{s:s,s:s,s:I,s:I,s:O}", "dataset", lh_json_str(m, "name"),
                            "row_key_column", real, "rows_tombstoned", (json_int_t)rows,
                            "tombstones_added", (json_int_t)n_added, "failures", failures),
                  failures);
    goto out;
fail:
    lh_reply_error(r, &err);
out:
    json_decref(failures);
    json_decref(m);
    key_list_free(&keys);
    free(valid);
    free(counts);
    free(skip);
    free(added);
}

void lh_h_tombstone_add(lh_req *r)
{
    lh_req_run_job(r, "tombstone", tombstone_add_work);
}

/* ---------------------------------------------------------------- list, remove */

void lh_h_tombstone_list(lh_req *r)
{
    lh_error err;
    const char *name = name_param(r, &err);
    json_t *doc = name ? lh_catalog_tombstones(lh_req_app(r)->cat, name, &err) : NULL;
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}

/* The values to remove: the body's row_key_values, or the query's `values` (comma-separated)
 * when there is no body. Caller decrefs. */
static json_t *remove_values(lh_req *r, lh_error *err)
{
    const char *q = lh_req_query(r, "values");
    if (q) {
        json_t *arr = json_array();
        char *copy = lh_xstrdup(q), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(tok));
        free(copy);
        return arr;
    }
    json_t *body = lh_req_json(r, err);
    if (!body)
        return NULL;
    json_t *v = json_object_get(body, "row_key_values");
    if (!v) {
        lh_error_set(err, LH_EINVAL, "row_key_values is required (or ?values=a,b)");
        return NULL;
    }
    return json_incref(v);
}

void lh_h_tombstone_remove(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *values = NULL, *m = NULL, *set = NULL, *failures = json_array();
    key_list keys = {0};
    const char *name = name_param(r, &err);
    if (!name || !(values = remove_values(r, &err)) ||
        !(m = lh_catalog_get(app->cat, name, &err)) ||
        !(set = lh_catalog_tombstones(app->cat, name, &err)))
        goto fail;
    /* The set's column types the keys; without a set nothing is tombstoned. */
    const char *column = lh_json_str(set, "key_column");
    const char *type = column ? column_type(m, column, NULL) : NULL;
    if (key_list_parse(values, type, &keys, failures, &err))
        goto fail;
    char **valid = lh_xcalloc(keys.n + 1, sizeof(char *));
    size_t nvalid = 0, removed = 0;
    for (size_t i = 0; i < keys.n; i++)
        if (keys.keys[i])
            valid[nvalid++] = keys.keys[i];
    lh_tombstone_req req = {.dataset = name, .keys = valid, .n = nvalid, .actor = lh_req_actor(r)};
    int rc = nvalid ? lh_catalog_tombstone_remove(app->cat, &req, &removed, failures, &err) : 0;
    free(valid);
    if (rc)
        goto fail;
    reply_outcome(r,
                  json_pack("{s:s,s:I,s:O}", "dataset", lh_json_str(m, "name"),
                            "tombstones_removed", (json_int_t)removed, "failures", failures),
                  failures);
    goto out;
fail:
    lh_reply_error(r, &err);
out:
    json_decref(values);
    json_decref(m);
    json_decref(set);
    json_decref(failures);
    key_list_free(&keys);
}

/* ---------------------------------------------------------------- compaction */

static json_t *compact_body(const char *dataset, const lh_compact_result *res)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:b}", "dataset", dataset, "rows_before",
                     (json_int_t)res->rows_before, "rows_after", (json_int_t)res->rows_after,
                     "tombstones_applied", (json_int_t)res->tombstones_applied, "bytes_before",
                     (json_int_t)res->bytes_before, "bytes_after", (json_int_t)res->bytes_after,
                     "tombstones_cleared", res->tombstones_cleared);
}

/* wait: true (the default): the request waits on the job pool. */
static void compact_work(lh_req *r)
{
    lh_error err;
    lh_compact_result res;
    const char *dataset = lh_json_str(lh_req_json(r, NULL), "dataset");
    if (lh_compact(lh_req_app(r)->eng, dataset, lh_req_actor(r), lh_req_job(r), &res, &err)) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, compact_body(dataset, &res));
}

/* wait: false: a job of its own, which outlives the request. */
typedef struct compact_job {
    lh_engine *eng;
    char *dataset, *actor;
} compact_job;

static int compact_job_run(lh_job *job, void *ctx, lh_error *err)
{
    compact_job *c = ctx;
    lh_compact_result res;
    return lh_compact(c->eng, c->dataset, c->actor, job, &res, err);
}

static void compact_job_done(void *ctx, int rc)
{
    (void)rc;
    compact_job *c = ctx;
    free(c->dataset);
    free(c->actor);
    free(c);
}

void lh_h_compact(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    const char *dataset = lh_json_str(body, "dataset");
    const json_t *wait = json_object_get(body, "wait");
    if (!dataset || lh_name_validate(dataset, "dataset", &err) != 0 ||
        (wait && !json_is_boolean(wait))) {
        if (dataset && (!wait || json_is_boolean(wait))) {
            lh_reply_error(r, &err);
            return;
        }
        lh_error_set(&err, LH_EINVAL, "body must be {\"dataset\": NAME, \"wait\": true|false}");
        lh_reply_error(r, &err);
        return;
    }
    if (!lh_catalog_exists(app->cat, dataset)) {
        lh_error_set(&err, LH_ENOTFOUND, "no dataset named '%s'", dataset);
        lh_reply_error(r, &err);
        return;
    }
    if (!wait || json_is_true(wait)) {
        lh_req_run_job(r, "compact", compact_work);
        return;
    }
    compact_job *c = lh_xcalloc(1, sizeof(*c));
    c->eng = app->eng;
    c->dataset = lh_xstrdup(dataset);
    c->actor = lh_xstrdup(lh_req_actor(r));
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(app->jobs, "compact", c->actor, compact_job_run, compact_job_done, c, id,
                       &err) != 0) {
        compact_job_done(c, 0);
        lh_reply_error(r, &err);
        return;
    }
    char *url = lh_xasprintf("/jobs/%s", id);
    lh_reply_json(r, 202,
                  json_pack("{s:s,s:s,s:s}", "job_id", id, "dataset", dataset, "status_url", url));
    free(url);
}
