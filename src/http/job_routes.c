/*
 * job_routes.c: HTTP glue for the long work the server runs on its job pool (the id comes
 * in the X-Lakehouse-Job header of the reply that started it, or in a 202's body):
 * GET /jobs/{id}, its state and progress, and POST /jobs/{id}/cancel.
 */
#include "http_internal.h"

void lh_h_job_get(lh_req *r)
{
    lh_error err;
    json_t *job = lh_jobs_get(lh_req_app(r)->jobs, lh_req_param(r, 0), &err);
    if (!job) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "job", job));
}

/* An admin may stop any job; another key only the jobs it started (the pool checks the
 * job's actor under its lock). 202: the stop was asked for; a running job ends in state
 * "cancelled" once its work notices, which GET /jobs/{id} shows. */
void lh_h_job_cancel(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    const lh_principal *who = lh_req_principal(r);
    const char *id = lh_req_param(r, 0);
    int rc = who && who->role == LH_ROLE_ADMIN
                 ? lh_jobs_cancel(app->jobs, id, lh_req_actor(r), &err)
                 : lh_jobs_cancel_own(app->jobs, id, lh_req_actor(r), &err);
    json_t *job = rc == 0 ? lh_jobs_get(app->jobs, id, &err) : NULL;
    if (!job) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 202, json_pack("{s:o}", "job", job));
}
