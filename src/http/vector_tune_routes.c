/*
 * vector_tune_routes.c: HTTP glue for tuning vector indexes (issue 14; docs/API.md
 * "Vectors", docs/VECTORS.md §Tuning): POST /vectors/autotune/{index} runs a bounded grid
 * of trials as a job (waited for by default, or answered 202 with the job's id when
 * "wait" is false); GET /vectors/trials/{index} reads the trial journal. The rules live in
 * src/vector/autotune.c.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    lh_app *app;
    char *index, *actor;
    json_t *spec;
} tune_job;

static void tune_job_free(void *ctx)
{
    tune_job *c = ctx;
    if (!c)
        return;
    free(c->index);
    free(c->actor);
    json_decref(c->spec);
    free(c);
}

/* wait: true, on a job thread through lh_req_run_job. */
static void autotune_work(lh_req *r)
{
    lh_error err;
    tune_job *c = lh_req_state(r);
    json_t *out = NULL;
    if (lh_vectors_autotune(c->app->vectors, c->index, c->spec, c->actor, lh_req_job(r), &out,
                            &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_job_set_result(lh_req_job(r),
                      json_pack("{s:O,s:O}", "champion", json_object_get(out, "champion"),
                                "promoted", json_object_get(out, "promoted")));
    lh_reply_json(r, 200, out);
}

/* wait: false: a job of its own; the outcome is the job's result. */
static int autotune_job(lh_job *job, void *ctx, lh_error *err)
{
    tune_job *c = ctx;
    json_t *out = NULL;
    int rc = lh_vectors_autotune(c->app->vectors, c->index, c->spec, c->actor, job, &out, err);
    if (rc == 0)
        lh_job_set_result(job, out);
    return rc;
}

static void autotune_job_done(void *ctx, int rc)
{
    (void)rc;
    tune_job_free(ctx);
}

void lh_h_vector_autotune(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    const char *index = lh_req_param(r, 0);
    /* The body is optional: no body means the defaults ({}). */
    const char *cl = lh_req_header(r, "Content-Length");
    json_t *empty = json_object(), *body = empty;
    if (cl && strcmp(cl, "0") != 0 && !(body = lh_req_json(r, &err))) {
        json_decref(empty);
        lh_reply_error(r, &err);
        return;
    }
    const json_t *wait = json_object_get(body, "wait");
    if (wait && !json_is_boolean(wait)) {
        json_decref(empty);
        lh_error_set(&err, LH_EINVAL, "wait must be true or false");
        lh_reply_error(r, &err);
        return;
    }
    json_t *index_json = lh_vectors_get(app->vectors, index, &err); /* 404 before queueing */
    if (!index_json) {
        json_decref(empty);
        lh_reply_error(r, &err);
        return;
    }
    json_decref(index_json);
    tune_job *c = lh_xcalloc(1, sizeof(*c));
    c->app = app;
    c->index = lh_xstrdup(index);
    c->actor = lh_xstrdup(lh_req_actor(r));
    c->spec = json_deep_copy(body);
    json_decref(empty);
    if (!wait || json_is_true(wait)) {
        lh_req_set_state(r, c, tune_job_free);
        lh_req_run_job(r, "vector_autotune", autotune_work);
        return;
    }
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(app->jobs, "vector_autotune", c->actor, autotune_job, autotune_job_done, c,
                       id, &err) != 0) {
        tune_job_free(c);
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_header(r, "X-Lakehouse-Job", id);
    lh_reply_json(r, 202, json_pack("{s:s,s:s,s:s}", "job", id, "state", "queued", "index", index));
}

void lh_h_vector_trials(lh_req *r)
{
    lh_error err;
    json_t *out = lh_vectors_trials(lh_req_app(r)->vectors, lh_req_param(r, 0), &err);
    if (!out) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, out);
}
