/*
 * vector_routes.c: HTTP glue for vector indexes (issue 14; docs/API.md "Vectors",
 * docs/VECTORS.md): create (a build job), list, get, delete, refresh (a job), stale. The
 * rules live in src/vector/; search and profile routes are in vector_search_routes.c.
 *
 * A build or refresh runs on the job pool: with "wait" (the default) through
 * lh_req_run_job, the connection suspended until it answers; with "wait": false as a job
 * of its own, answered 202 with its id (GET /jobs/{id} shows progress and the result).
 * Validation (lh_vectors_prepare) runs on the HTTP worker first, so a bad request is
 * refused at once and never queued.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- create */

typedef struct {
    lh_app *app;
    lh_vector_build *b; /* NULL once lh_vectors_build consumed it */
    char *dataset, *actor;
} vjob;

static void vjob_free(vjob *c)
{
    if (!c)
        return;
    if (c->b)
        lh_vector_build_abandon(c->app->vectors, c->b);
    free(c->dataset);
    free(c->actor);
    free(c);
}

static void vjob_free_any(void *c)
{
    vjob_free(c);
}

/* wait: true, on a job thread through lh_req_run_job. */
static void build_work(lh_req *r)
{
    lh_error err;
    vjob *c = lh_req_state(r);
    json_t *index = NULL;
    lh_vector_build *b = c->b;
    c->b = NULL;
    if (lh_vectors_build(c->app->vectors, b, lh_req_job(r), &index, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_job_set_result(lh_req_job(r), json_pack("{s:O}", "index", index));
    lh_reply_json(r, 201, json_pack("{s:o}", "index", index));
}

/* wait: false: a job of its own; the index is the job's result. */
static int build_job(lh_job *job, void *ctx, lh_error *err)
{
    vjob *c = ctx;
    json_t *index = NULL;
    lh_vector_build *b = c->b;
    c->b = NULL;
    int rc = lh_vectors_build(c->app->vectors, b, job, &index, err);
    if (rc == 0)
        lh_job_set_result(job, json_pack("{s:o}", "index", index));
    return rc;
}

static void vjob_done(void *ctx, int rc)
{
    (void)rc;
    vjob_free(ctx); /* abandons a build that never ran (cancelled while queued) */
}

void lh_h_vector_index_create(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    lh_vector_build *b = NULL;
    if (!body || lh_vectors_prepare(app->vectors, body, lh_req_actor(r), &b, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    vjob *c = lh_xcalloc(1, sizeof(*c));
    c->app = app;
    c->b = b;
    c->actor = lh_xstrdup(lh_req_actor(r));
    if (!json_is_false(json_object_get(body, "wait"))) {
        lh_req_set_state(r, c, vjob_free_any);
        lh_req_run_job(r, "vector_build", build_work);
        return;
    }
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(app->jobs, "vector_build", c->actor, build_job, vjob_done, c, id, &err) !=
        0) {
        vjob_free(c);
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_header(r, "X-Lakehouse-Job", id);
    lh_reply_json(r, 202,
                  json_pack("{s:s,s:s,s:s}", "job", id, "state", "queued", "index",
                            lh_json_str(body, "name")));
}

/* ---------------------------------------------------------------- read, delete */

/* An agent sees only the indexes it may search (lh_vectors_searchable: those over what its
 * profile binds), so listings and searches agree; everyone else who reaches these routes
 * sees every index. */
static bool is_agent(lh_req *r)
{
    const lh_principal *p = lh_req_principal(r);
    return p && p->role == LH_ROLE_AGENT;
}

static bool in_names(const json_t *names, const char *name)
{
    size_t i;
    const json_t *n;
    json_array_foreach(names, i, n) if (strcasecmp(json_string_value(n), name) == 0) return true;
    return false;
}

void lh_h_vector_indexes_list(lh_req *r)
{
    lh_app *app = lh_req_app(r);
    json_t *all = lh_vectors_list(app->vectors);
    if (is_agent(r)) {
        json_t *names = lh_vectors_searchable(app->vectors, lh_req_principal(r));
        json_t *mine = json_array(), *ix;
        size_t i;
        json_array_foreach(all, i, ix) if (in_names(names, lh_json_str(ix, "name")))
            json_array_append(mine, ix);
        json_decref(names);
        json_decref(all);
        all = mine;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "indexes", all));
}

void lh_h_vector_index_get(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *index = lh_vectors_get(app->vectors, lh_req_param(r, 0), &err);
    if (index && is_agent(r)) {
        json_t *names = lh_vectors_searchable(app->vectors, lh_req_principal(r));
        if (!in_names(names, lh_json_str(index, "name"))) {
            char *allowed = lh_json_dumps(names);
            lh_error_set(&err, LH_EFORBIDDEN,
                         "vector index '%s' is not over a relation this key may read "
                         "(allowed indexes: %s)",
                         lh_json_str(index, "name"), allowed);
            free(allowed);
            json_decref(index);
            index = NULL;
        }
        json_decref(names);
    }
    if (!index) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, json_pack("{s:o}", "index", index));
}

void lh_h_vector_index_delete(lh_req *r)
{
    lh_error err;
    if (lh_vectors_delete(lh_req_app(r)->vectors, lh_req_param(r, 0), lh_req_actor(r), &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_no_content(r);
}

void lh_h_vectors_stale(lh_req *r)
{
    lh_reply_json(r, 200, json_pack("{s:o}", "stale", lh_vectors_stale(lh_req_app(r)->vectors)));
}

/* ---------------------------------------------------------------- refresh */

static json_t *refresh_run(vjob *c, lh_job *job, lh_error *err)
{
    json_t *out = NULL;
    if (lh_vectors_refresh(c->app->vectors, c->dataset, c->actor, job, &out, err) != 0)
        return NULL;
    return out;
}

static void refresh_work(lh_req *r)
{
    lh_error err;
    vjob *c = lh_req_state(r);
    json_t *out = refresh_run(c, lh_req_job(r), &err);
    if (!out) {
        lh_reply_error(r, &err);
        return;
    }
    lh_job_set_result(lh_req_job(r), json_deep_copy(out));
    lh_reply_json(r, 200, out);
}

static int refresh_job(lh_job *job, void *ctx, lh_error *err)
{
    json_t *out = refresh_run(ctx, job, err);
    if (!out)
        return err->code ? err->code : LH_EINTERNAL;
    lh_job_set_result(job, out);
    return 0;
}

void lh_h_vectors_refresh(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    bool wait = true;
    /* The body is optional: {} or {"wait": bool}. */
    const char *cl = lh_req_header(r, "Content-Length");
    if (cl && strcmp(cl, "0") != 0) {
        json_t *body = lh_req_json(r, &err);
        if (!body) {
            lh_reply_error(r, &err);
            return;
        }
        const char *k;
        json_t *val;
        json_object_foreach(body, k, val)
        {
            if (strcmp(k, "wait") != 0 || !json_is_boolean(val)) {
                lh_error_set(&err, LH_EINVAL,
                             strcmp(k, "wait") != 0 ? "unknown field '%s' (allowed: wait)"
                                                    : "'%s' must be a boolean",
                             k);
                lh_reply_error(r, &err);
                return;
            }
        }
        wait = !json_is_false(json_object_get(body, "wait"));
    }
    /* Refused at once when nothing would be refreshed. */
    json_t *list = lh_vectors_list(app->vectors), *ix;
    size_t i;
    bool any = false;
    json_array_foreach(list, i, ix) any =
        any || strcasecmp(lh_json_str(ix, "dataset"), lh_req_param(r, 0)) == 0;
    json_decref(list);
    if (!any) {
        lh_error_set(&err, LH_ENOTFOUND,
                     "dataset '%s' has no vector index (GET /vectors/indexes lists them)",
                     lh_req_param(r, 0));
        lh_reply_error(r, &err);
        return;
    }
    vjob *c = lh_xcalloc(1, sizeof(*c));
    c->app = app;
    c->dataset = lh_xstrdup(lh_req_param(r, 0));
    c->actor = lh_xstrdup(lh_req_actor(r));
    if (wait) {
        lh_req_set_state(r, c, vjob_free_any);
        lh_req_run_job(r, "vector_refresh", refresh_work);
        return;
    }
    char id[LH_JOB_ID_LEN + 1];
    if (lh_jobs_submit(app->jobs, "vector_refresh", c->actor, refresh_job, vjob_done, c, id,
                       &err) != 0) {
        vjob_free(c);
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_header(r, "X-Lakehouse-Job", id);
    lh_reply_json(
        r, 202,
        json_pack("{s:s,s:s,s:s}", "job", id, "state", "queued", "dataset", lh_req_param(r, 0)));
}
