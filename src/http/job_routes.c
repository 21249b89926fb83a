/*
 * job_routes.c: HTTP glue for GET /jobs/{id}, the state and progress of long work the
 * server ran on its job pool (the id comes in the X-Lakehouse-Job header of the reply
 * that started it).
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
