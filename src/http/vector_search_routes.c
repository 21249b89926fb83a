/*
 * vector_search_routes.c: HTTP glue for vector search and model-profile activation
 * (docs/API.md "Vectors", docs/VECTORS.md "Search" and "Profiles").
 *
 *   POST /vectors/search/{index}             admin, analyst, agent
 *   POST /vectors/profile/{id}/search        admin, analyst, agent (bound to {id})
 *   POST /vectors/profile/{id}/activate      admin
 *   POST /vectors/profile/{id}/deactivate    admin
 *   GET  /vectors/profile/active             admin, analyst
 *
 * Who may search what is the vector module's decision (lh_vectors_search,
 * lh_vectors_profile_search); this file parses, audits as query_routes.c does and replies.
 * A search may embed its query on an embedding server, wait for its hits' audit rows to be
 * durable and run queries on the engine, so it runs on the job pool as a task without a
 * job record (lh_req_run_task: searches are many, and would push builds' records out of
 * GET /jobs); activation, rare and long (it loads models and files), is a job with a
 * record (lh_req_run_job). The worker only validates the body and the auditing headers. Access
 * auditing: one lh_access_audit per search (the caller, the X-Lakehouse-Purpose /
 * X-Lakehouse-Trace-Id headers); the module calls its sink with the hits' subjects before it
 * returns them, and an agent's refusal is journaled like a refused SQL read
 * (lh_access_record_denied).
 */
#include "http_internal.h"
#include "vector/vector.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest query vector accepted (the hash embedder's dimensions stop at 4096; servers'
 * models at a few thousand). */
#define VECTOR_MAX_DIM 65536

/* A parsed search request: the request's state until it is answered. */
typedef struct search_call {
    lh_vector_query q;       /* strings borrowed from the request's JSON body */
    float *vector;           /* owned (q.vector) */
    const char *index;       /* borrowed: the route parameter, or the body's "index" */
    const char *profile;     /* profile search: the route parameter; else NULL */
    lh_access_audit *access; /* owned */
    char *fingerprint_text;  /* what the denial's fingerprint hashes (owned) */
} search_call;

static void search_call_free(void *p)
{
    search_call *c = p;
    free(c->vector);
    lh_access_audit_free(c->access);
    free(c->fingerprint_text);
    free(c);
}

/* The body {query | vector, k?, filter?, exact?, chunks?} (+ index for a profile search)
 * into c. Unknown fields are refused so a typo ("fliter") is not a silent no-op. */
static int parse_search(const json_t *body, bool with_index, search_call *c, lh_error *err)
{
    static const char *const fields[] = {"query", "vector", "k",    "filter",
                                         "exact", "chunks", "index"};
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)body, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) - (with_index ? 0 : 1); i++)
            known = known || strcmp(key, fields[i]) == 0;
        if (!known)
            return lh_error_set(err, LH_EINVAL,
                                "unknown field '%s' (fields: %squery, vector, k, filter, exact, "
                                "chunks)",
                                key, with_index ? "index, " : "");
    }
    if (with_index) {
        c->index = lh_json_str(body, "index");
        if (!c->index || !*c->index)
            return lh_error_set(err, LH_EINVAL, "\"index\" must name one of the profile's indexes");
    }
    const json_t *query = json_object_get(body, "query");
    const json_t *vector = json_object_get(body, "vector");
    if (!!query == !!vector)
        return lh_error_set(err, LH_EINVAL,
                            "give exactly one of \"query\" (text) and \"vector\" (numbers)");
    if (query && (!json_is_string(query) || json_string_length(query) == 0))
        return lh_error_set(err, LH_EINVAL, "\"query\" must be a non-empty string");
    c->q.text = json_string_value(query);
    if (vector) {
        size_t n = json_array_size(vector);
        if (!json_is_array(vector) || n == 0 || n > VECTOR_MAX_DIM)
            return lh_error_setk(err, LH_EINVAL, "bad_vector",
                                 "\"vector\" must be an array of 1 to %d numbers", VECTOR_MAX_DIM);
        c->vector = lh_xcalloc(n, sizeof(float));
        for (size_t i = 0; i < n; i++) {
            const json_t *x = json_array_get(vector, i);
            double d = json_number_value(x);
            if (!json_is_number(x) || !(fabs(d) <= FLT_MAX))
                return lh_error_setk(err, LH_EINVAL, "bad_vector",
                                     "\"vector\"[%zu] is not a finite number within float range",
                                     i);
            c->vector[i] = (float)d;
        }
        c->q.vector = c->vector;
        c->q.n_vector = n;
    }
    const json_t *k = json_object_get(body, "k");
    c->q.k = 10;
    if (k) {
        if (!json_is_integer(k) || json_integer_value(k) < 1 ||
            json_integer_value(k) > LH_VECTOR_MAX_K)
            return lh_error_set(err, LH_EINVAL, "\"k\" must be an integer from 1 to %d",
                                LH_VECTOR_MAX_K);
        c->q.k = (size_t)json_integer_value(k);
    }
    const json_t *filter = json_object_get(body, "filter");
    if (filter && !json_is_null(filter) && (!json_is_string(filter) || !*json_string_value(filter)))
        return lh_error_setk(err, LH_EINVAL, "bad_filter",
                             "\"filter\" must be a SQL boolean expression (a string) or null");
    c->q.filter = json_string_value(filter);
    const json_t *exact = json_object_get(body, "exact"), *chunks = json_object_get(body, "chunks");
    if ((exact && !json_is_boolean(exact)) || (chunks && !json_is_boolean(chunks)))
        return lh_error_set(err, LH_EINVAL, "\"exact\" and \"chunks\" must be true or false");
    c->q.exact = json_is_true(exact);
    c->q.chunks = json_is_true(chunks);
    return 0;
}

/* On the job pool: the search, its audit, the reply. */
static void search_work(lh_req *r)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    search_call *c = lh_req_state(r);
    const lh_principal *who = lh_req_principal(r);
    lh_sql_policy *policy = lh_sql_policy_for(app->cat, who);
    lh_vector_caller caller = {.who = who,
                               .policy = policy,
                               .sink = lh_access_audit_sink(c->access),
                               .sink_ctx = c->access};
    json_t *out = NULL;
    int rc = c->profile
                 ? lh_vectors_profile_search(app->vectors, c->profile, c->index, &c->q, &caller,
                                             &out, NULL, &err)
                 : lh_vectors_search(app->vectors, c->index, &c->q, &caller, &out, NULL, &err);
    lh_sql_policy_free(policy);
    if (rc != 0) {
        lh_error rec;
        if (err.code == LH_EFORBIDDEN) {
            lh_log(LH_LOG_WARN, "vectors.search_refused", "{s:s,s:s}", "actor", who->name, "reason",
                   err.message);
            if (lh_access_record_denied(c->access, c->fingerprint_text, &err, &rec) != 0)
                lh_log(LH_LOG_ERROR, "vectors.denial_not_recorded", "{s:s,s:s}", "actor", who->name,
                       "message", rec.message);
        }
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, out);
}

static void search_start(lh_req *r, const char *index, const char *profile)
{
    lh_error err;
    lh_app *app = lh_req_app(r);
    json_t *body = lh_req_json(r, &err);
    if (!body) {
        lh_reply_error(r, &err);
        return;
    }
    search_call *c = lh_xcalloc(1, sizeof(*c));
    c->index = index;
    c->profile = profile;
    lh_req_set_state(r, c, search_call_free);
    if (parse_search(body, profile != NULL, c, &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    /* Header bytes as sent (docs/API.md), as for POST /query/sql. */
    c->access = lh_access_audit_new(app->audit, app->cat, lh_req_principal(r),
                                    lh_req_header(r, "X-Lakehouse-Purpose"),
                                    lh_req_header(r, "X-Lakehouse-Trace-Id"), &err);
    if (!c->access) {
        lh_reply_error(r, &err);
        return;
    }
    /* A denial's journal record carries the fingerprint of what was asked (never its text:
     * the query may hold personal data): the route and the body as sent. */
    char *dump = lh_json_dumps(body);
    c->fingerprint_text = lh_xasprintf("vector search %s: %s", c->index, dump);
    free(dump);
    lh_req_run_task(r, search_work);
}

void lh_h_vector_search(lh_req *r)
{
    search_start(r, lh_req_param(r, 0), NULL);
}

void lh_h_vector_profile_search(lh_req *r)
{
    search_start(r, NULL, lh_req_param(r, 0));
}

/* ---------------------------------------------------------------- activation */

static void activate_work(lh_req *r)
{
    lh_error err;
    json_t *out = NULL;
    if (lh_vectors_profile_activate(lh_req_app(r)->vectors, lh_req_param(r, 0), lh_req_job(r), &out,
                                    &err) != 0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, out);
}

void lh_h_vector_profile_activate(lh_req *r)
{
    lh_req_run_job(r, "vector_activate", activate_work);
}

/* Unloading the model is an HTTP call to the embedding server: off the worker too. */
static void deactivate_work(lh_req *r)
{
    lh_error err;
    json_t *out = NULL;
    if (lh_vectors_profile_deactivate(lh_req_app(r)->vectors, lh_req_param(r, 0), &out, &err) !=
        0) {
        lh_reply_error(r, &err);
        return;
    }
    lh_reply_json(r, 200, out);
}

void lh_h_vector_profile_deactivate(lh_req *r)
{
    lh_req_run_job(r, "vector_deactivate", deactivate_work);
}

void lh_h_vector_profile_active(lh_req *r)
{
    lh_reply_json(r, 200, lh_vectors_profile_active(lh_req_app(r)->vectors));
}
