/*
 * db_ingest_routes.c: HTTP glue for POST /ingest/postgres and POST /ingest/mysql (database
 * syncs, sources/sync.c). The body is checked (lh_db_ingest_check: shape, source, dataset;
 * no connection) before anything is queued. A sync is always a job of kind "sync":
 * "wait": true (the default) runs it through lh_req_run_job, so the connection is
 * suspended and no HTTP worker waits on it; "wait": false submits a job of its own that
 * outlives the request and answers 202 with the job. Either way the job's record gets the
 * result (GET /jobs/{id}) and POST /jobs/{id}/cancel stops it.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

/* A request's fields, copied out of the body (the job may outlive it). The DSN is a
 * secret: wiped when freed. */
typedef struct sync_state {
    lh_db_ingest_request req;
    char *dsn, *source, *table, *query, *dataset, *bucket, *column, *key, *actor;
    lh_db_ingest *dbi;
} sync_state;

static void sync_state_free(void *p)
{
    sync_state *s = p;
    if (!s)
        return;
    lh_secret_free(s->dsn);
    free(s->source);
    free(s->table);
    free(s->query);
    free(s->dataset);
    free(s->bucket);
    free(s->column);
    free(s->key);
    free(s->actor);
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? lh_xstrdup(s) : NULL;
}

static const char *const fields[] = {"source", "dsn",    "table",       "query", "dataset",
                                     "mode",   "bucket", "incremental", "wait"};

/* The body as a request, or NULL + LH_EINVAL naming what is wrong. Caller frees with
 * sync_state_free. */
static sync_state *parse_body(const json_t *body, lh_source_kind kind, const char *actor,
                              lh_error *err)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            known = known || strcmp(k, fields[i]) == 0;
        if (!known) {
            lh_error_set(err, LH_EINVAL,
                         "unknown field '%s' (fields: source or dsn, table or query, dataset, "
                         "mode, bucket, incremental, wait)",
                         k);
            return NULL;
        }
        bool is_string_field = strcmp(k, "incremental") != 0 && strcmp(k, "wait") != 0;
        if (is_string_field && !json_is_string(v)) {
            lh_error_set(err, LH_EINVAL, "field '%s' must be a string", k);
            return NULL;
        }
    }
    const json_t *wait = json_object_get(body, "wait");
    if (wait && !json_is_boolean(wait)) {
        lh_error_set(err, LH_EINVAL, "field 'wait' must be true or false");
        return NULL;
    }
    const json_t *inc = json_object_get(body, "incremental");
    const char *column = NULL, *key = NULL;
    if (inc && !json_is_null(inc)) {
        const json_t *c = json_object_get(inc, "column"), *kk = json_object_get(inc, "key");
        if (!json_is_object(inc) || !json_is_string(c) || (kk && !json_is_string(kk)) ||
            json_object_size(inc) != 1 + (kk ? 1u : 0u)) {
            lh_error_set(err, LH_EINVAL,
                         "incremental must be {\"column\": NAME} or {\"column\": NAME, \"key\": "
                         "NAME}");
            return NULL;
        }
        column = json_string_value(c);
        key = kk ? json_string_value(kk) : NULL;
    }
    sync_state *s = lh_xcalloc(1, sizeof(*s));
    s->dsn = dup_or_null(lh_json_str(body, "dsn"));
    s->source = dup_or_null(lh_json_str(body, "source"));
    s->table = dup_or_null(lh_json_str(body, "table"));
    s->query = dup_or_null(lh_json_str(body, "query"));
    s->dataset = dup_or_null(lh_json_str(body, "dataset"));
    s->bucket = dup_or_null(lh_json_str(body, "bucket"));
    s->column = dup_or_null(column);
    s->key = dup_or_null(key);
    s->actor = dup_or_null(actor);
    s->req = (lh_db_ingest_request){.kind = kind,
                                    .dsn = s->dsn,
                                    .source = s->source,
                                    .table = s->table,
                                    .query = s->query,
                                    .dataset = s->dataset,
                                    .bucket = s->bucket,
                                    .incremental_column = s->column,
                                    .key_column = s->key,
                                    .actor = s->actor};
    if (!s->dataset) {
        lh_error_set(err, LH_EINVAL, "field 'dataset' is required");
        sync_state_free(s);
        return NULL;
    }
    if (lh_ingest_mode_parse(lh_json_str(body, "mode"), &s->req.mode, err) != 0) {
        sync_state_free(s);
        return NULL;
    }
    return s;
}

/* The sync on its job; the result goes to the job's record too. */
static int run_sync(sync_state *s, lh_job *job, json_t **result, lh_error *err)
{
    json_t *res = NULL;
    int rc = lh_db_ingest_run(s->dbi, &s->req, job, &res, err);
    if (rc == 0) {
        lh_job_set_result(job, json_incref(res));
        *result = res;
    }
    return rc;
}

/* wait: true, on the request's job. */
static void sync_work(lh_req *r)
{
    lh_error err;
    sync_state *s = lh_req_state(r);
    json_t *res = NULL;
    if (run_sync(s, lh_req_job(r), &res, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, s->req.mode == LH_MODE_CREATE ? 201 : 200, res);
}

/* wait: false, a job of its own that owns the state. */
static int sync_job_run(lh_job *job, void *ctx, lh_error *err)
{
    json_t *res = NULL;
    int rc = run_sync(ctx, job, &res, err);
    json_decref(res);
    return rc;
}

static void sync_job_done(void *ctx, int rc)
{
    (void)rc;
    sync_state_free(ctx);
}

static void ingest_db(lh_req *r, lh_source_kind kind)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    sync_state *s = parse_body(body, kind, lh_req_actor(r), &err);
    if (!s) {
        lh_reply_error(r, &err);
        return;
    }
    s->dbi = app->db_ingest;
    if (lh_db_ingest_check(s->dbi, &s->req, &err) != 0) {
        sync_state_free(s);
        lh_reply_error(r, &err);
        return;
    }
    const json_t *wait = json_object_get(body, "wait");
    if (!wait || json_is_true(wait)) {
        lh_req_set_state(r, s, sync_state_free);
        lh_req_run_job(r, "sync", sync_work);
        return;
    }
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(app->jobs, "sync", s->actor, sync_job_run, sync_job_done, s, id, &err) !=
        0) {
        sync_state_free(s);
        lh_reply_error(r, &err);
        return;
    }
    json_t *job = lh_jobs_get(app->jobs, id, NULL);
    if (!job) /* already finished and forgotten: unlikely, but the id is all we promise */
        job = json_pack("{s:s}", "id", id);
    char *url = lh_xasprintf("/jobs/%s", id);
    json_object_set_new(job, "status_url", json_string(url));
    free(url);
    lh_reply_json(r, 202, json_pack("{s:o}", "job", job));
}

void lh_h_ingest_postgres(lh_req *r)
{
    ingest_db(r, LH_SOURCE_POSTGRES);
}

void lh_h_ingest_mysql(lh_req *r)
{
    ingest_db(r, LH_SOURCE_MYSQL);
}
