/*
 * subject_routes.c: HTTP glue for subject manifests and backfill (issue 11; docs/API.md
 * "Subjects"). The rules live in src/compliance/subjects.c.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

void lh_h_subject_put(lh_req *r)
{
    lh_error err;
    json_t *body = lh_req_json(r, &err);
    json_t *m = NULL;
    bool created = false;
    if (!body || lh_subjects_put(lh_req_app(r)->subjects, lh_req_param(r, 0), body, lh_req_actor(r),
                                 &created, &m, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, created ? 201 : 200, json_pack("{s:o}", "subject", m));
}

void lh_h_subject_get(lh_req *r)
{
    lh_error err;
    json_t *m = lh_subjects_get(lh_req_app(r)->subjects, lh_req_param(r, 0), &err);
    if (!m) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "subject", m));
}

void lh_h_subjects_list(lh_req *r)
{
    lh_error err;
    const char *limit_s = lh_req_query(r, "limit");
    long long limit = 1000;
    if (limit_s) {
        char *end;
        limit = strtoll(limit_s, &end, 10);
        if (*end || limit < 1 || limit > 10000) {
            lh_error_set(&err, LH_EINVAL, "'limit' must be an integer from 1 to 10000");
            lh_reply_error(r, &err);
            return;
        }
    }
    /* lh_req_query's value lives until its next call: copy the first */
    const char *q = lh_req_query(r, "status");
    char *status = q ? lh_xstrdup(q) : NULL;
    json_t *doc = lh_subjects_list(lh_req_app(r)->subjects, status, lh_req_query(r, "after"),
                                   (size_t)limit, &err);
    free(status);
    if (!doc) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, doc);
}

/* ---------------------------------------------------------------- backfill */

/* What a backfill job needs once the request is gone (wait: false). */
typedef struct {
    lh_app *app;
    char *dataset, *id_column, *strip_prefix, *actor;
} backfill_ctx;

static void backfill_ctx_free(backfill_ctx *c)
{
    if (!c)
        return;
    free(c->dataset);
    free(c->id_column);
    free(c->strip_prefix);
    free(c->actor);
    free(c);
}

static char *dup_or_null(const char *s)
{
    return s ? lh_xstrdup(s) : NULL;
}

/* Parses {dataset, id_column?, strip_prefix?, wait?}; *wait defaults to true. */
static backfill_ctx *backfill_parse(lh_req *r, bool *wait, lh_error *err)
{
    json_t *body = lh_req_json(r, err);
    if (!body)
        return NULL;
    static const char *const fields[] = {"dataset", "id_column", "strip_prefix", "wait"};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        size_t i, n = sizeof(fields) / sizeof(fields[0]);
        for (i = 0; i < n && strcmp(k, fields[i]) != 0; i++)
            ;
        if (i == n) {
            lh_error_set(err, LH_EINVAL,
                         "unknown field '%s' (allowed: dataset, id_column, strip_prefix, wait)", k);
            return NULL;
        }
        if (strcmp(k, "wait") == 0 ? !json_is_boolean(v) : !json_is_string(v) && !json_is_null(v)) {
            lh_error_set(err, LH_EINVAL, "'%s' must be a %s", k,
                         strcmp(k, "wait") == 0 ? "boolean" : "string");
            return NULL;
        }
    }
    if (!lh_json_str(body, "dataset")) {
        lh_error_set(err, LH_EINVAL, "'dataset' is required");
        return NULL;
    }
    *wait = !json_is_false(json_object_get(body, "wait"));
    backfill_ctx *c = lh_xcalloc(1, sizeof(*c));
    c->app = lh_req_app(r);
    c->dataset = lh_xstrdup(lh_json_str(body, "dataset"));
    c->id_column = dup_or_null(lh_json_str(body, "id_column"));
    c->strip_prefix = dup_or_null(lh_json_str(body, "strip_prefix"));
    c->actor = lh_xstrdup(lh_req_actor(r));
    return c;
}

static json_t *backfill_run(backfill_ctx *c, lh_job *job, lh_error *err)
{
    lh_backfill_opts o = {.dataset = c->dataset,
                          .id_column = c->id_column,
                          .strip_prefix = c->strip_prefix,
                          .actor = c->actor,
                          .timeout_ms = c->app->cfg->query_timeout_ms};
    return lh_subjects_backfill(c->app->subjects, c->app->eng, &o, job, err);
}

/* wait: true, on a job thread through lh_req_run_job. */
static void backfill_work(lh_req *r)
{
    lh_error err;
    backfill_ctx *c = lh_req_state(r);
    json_t *report = backfill_run(c, lh_req_job(r), &err);
    if (!report) {
        lh_reply_error(r, &err);
        return;
    }
    lh_job_set_result(lh_req_job(r), json_deep_copy(report));
    lh_reply_json(r, 200, report);
}

/* wait: false: a job of its own; the report is the job's result (GET /jobs/{id}). */
static int backfill_job(lh_job *job, void *ctx, lh_error *err)
{
    json_t *report = backfill_run(ctx, job, err);
    if (!report)
        return err->code ? err->code : LH_EINTERNAL;
    lh_job_set_result(job, report);
    return 0;
}

static void backfill_job_done(void *ctx, int rc)
{
    (void)rc;
    backfill_ctx_free(ctx);
}

void lh_h_subjects_backfill(lh_req *r)
{
    lh_error err;
    bool wait = true;
    backfill_ctx *c = backfill_parse(r, &wait, &err);
    if (!c) {
        lh_reply_error(r, &err);
        return;
    }
    if (wait) {
        lh_req_set_state(r, c, (void (*)(void *))backfill_ctx_free);
        lh_req_run_job(r, "subjects.backfill", backfill_work);
        return;
    }
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(c->app->jobs, "subjects.backfill", c->actor, backfill_job, backfill_job_done,
                       c, id, &err) != 0) {
        backfill_ctx_free(c);
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_header(r, "X-Lakehouse-Job", id);
    lh_reply_json(r, 202, json_pack("{s:s,s:s}", "job", id, "state", "queued"));
}
