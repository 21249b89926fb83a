/*
 * activate.c: model profiles for vectors (docs/VECTORS.md "Profiles: activation and scoped
 * search").
 *
 * A profile's indexes are the indexes whose dataset the profile binds. Activating a
 * profile warms each of them (lh_vindex_warm: parts and ANN structure into memory), so
 * its searches take the ANN path from the first query; one index that fails (files
 * damaged, its embedding server down) is reported and the others still warm. At most one
 * profile is active: activating another cools the previous one's indexes that the new
 * one does not bind.
 *
 * The ollama model swap: on a small GPU box the previous profile's embedding model is
 * unloaded (keep_alive 0, lh_embedder_load(e, false)) before the new one is preloaded
 * (lh_embedder_load(e, true)), so two models never hold the GPU at once; when both
 * profiles use the same model nothing is sent (the swap is skipped). A profile's model
 * is its catalog `embed_model`, else the model of its first ollama index (by name); a
 * profile with no ollama index has none (no swap for it).
 *
 * State and locks: the active profile lives in an lh_vactive (the registry holds it,
 * lh_vectors_active_slot). act_mu serialises activations and deactivations (two swaps
 * must not interleave their unload/load requests); state_mu, a leaf, guards the state for
 * the short reads of GET /vectors/profile/active. Lock order: act_mu → state_mu; neither
 * is held by the registry's callers, and the registry's calls take only its own locks.
 */
#include "vector_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct lh_vactive {
    char *profile;      /* NULL: none active */
    char *activated_at; /* RFC 3339 */
    json_t *indexes;    /* names warmed */
    char *model;        /* the ollama model loaded for it, or NULL */
    int model_dim;
};

static pthread_mutex_t act_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;

static void active_clear(lh_vactive *a)
{
    free(a->profile);
    free(a->activated_at);
    json_decref(a->indexes);
    free(a->model);
    memset(a, 0, sizeof(*a));
}

void lh_vactive_free(lh_vactive *a)
{
    if (!a)
        return;
    active_clear(a);
    free(a);
}

/* The module's state (created on first use, under state_mu). */
static lh_vactive *active_of(lh_vectors *v)
{
    lh_vactive **slot = lh_vectors_active_slot(v);
    if (!*slot)
        *slot = lh_xcalloc(1, sizeof(lh_vactive));
    return *slot;
}

/* ---------------------------------------------------------------- a profile's indexes */

/* Definitions (as lh_vectors_list shows them) of the indexes over bindings, by name. */
static json_t *indexes_over(lh_vectors *v, const json_t *bindings)
{
    json_t *all = lh_vectors_list(v), *out = json_array();
    size_t i, j;
    json_t *ix;
    const json_t *b;
    json_array_foreach(all, i, ix)
    {
        const char *ds = lh_json_str(ix, "dataset");
        json_array_foreach(bindings, j, b)
        {
            if (ds && json_string_value(b) && strcasecmp(ds, json_string_value(b)) == 0) {
                json_array_append(out, ix);
                break;
            }
        }
    }
    json_decref(all);
    return out;
}

static json_t *names_of(const json_t *indexes)
{
    json_t *names = json_array();
    size_t i;
    const json_t *ix;
    json_array_foreach(indexes, i, ix)
        json_array_append_new(names, json_string(lh_json_str(ix, "name")));
    return names;
}

static bool is_ollama(const json_t *ix)
{
    const char *e = lh_json_str(ix, "embedder");
    return e && strcmp(e, "ollama") == 0;
}

/* The profile's ollama model and its dimension (see the file comment), or NULL. */
static const char *profile_model(const json_t *profile, const json_t *indexes, int *dim)
{
    const json_t *first = NULL;
    size_t i;
    const json_t *ix;
    json_array_foreach(indexes, i, ix) if (is_ollama(ix) && !first) first = ix;
    if (!first)
        return NULL;
    const char *model = lh_json_str(profile, "embed_model");
    const char *ix_model = lh_json_str(first, "model");
    if (!model)
        model = ix_model;
    /* the dimension is known when the model is the index's (no probe request then) */
    *dim =
        ix_model && model && strcmp(model, ix_model) == 0 ? (int)lh_json_int(first, "dim", 0) : 0;
    return model;
}

/* Loads (load) or unloads an ollama model. */
static int model_load(lh_vectors *v, const char *model, int dim, bool load, lh_error *err)
{
    lh_embedder_spec spec = {.kind = "ollama", .model = model, .dim = dim};
    lh_embedder *e = lh_embedder_open(lh_vectors_handles(v)->cfg, &spec, err);
    if (!e)
        return err->code;
    int rc = lh_embedder_load(e, load, err);
    lh_embedder_free(e);
    return rc;
}

/* One failure {index, error}; paths inside the data folder are shown as "<lake>". */
static void add_failure(lh_vectors *v, json_t *failures, const char *index, const char *message)
{
    lh_error e;
    lh_error_set(&e, LH_EINTERNAL, "%s", message);
    lh_error_scrub(&e, lh_vectors_handles(v)->cfg->data_dir, "<lake>");
    json_array_append_new(failures, json_pack("{s:s,s:s}", "index", index, "error", e.message));
}

/* ---------------------------------------------------------------- activate, deactivate */

int lh_vectors_profile_activate(lh_vectors *v, const char *profile, lh_job *job, json_t **out,
                                lh_error *err)
{
    int64_t t0 = lh_now_ms();
    int rc = 0;
    json_t *prof = NULL, *indexes = NULL, *warmed = NULL, *failures = NULL, *swap = NULL;
    json_t *cooled = NULL;
    char *prev_profile = NULL, *prev_model = NULL, *load_error = NULL;
    json_t *prev_indexes = NULL;
    int prev_dim = 0;
    *out = NULL;
    pthread_mutex_lock(&act_mu);
    if (!(prof = lh_catalog_profile_get(lh_vectors_handles(v)->cat, profile, err))) {
        rc = err->code;
        goto out;
    }
    indexes = indexes_over(v, json_object_get(prof, "bound_datasets"));
    pthread_mutex_lock(&state_mu);
    lh_vactive *a = active_of(v);
    if (a->profile) {
        prev_profile = lh_xstrdup(a->profile);
        prev_model = a->model ? lh_xstrdup(a->model) : NULL;
        prev_dim = a->model_dim;
        prev_indexes = json_incref(a->indexes);
    }
    pthread_mutex_unlock(&state_mu);

    /* the model swap: unload the previous model, then preload the new one */
    int dim = 0;
    const char *model = profile_model(prof, indexes, &dim);
    lh_error e;
    if (prev_model && model && strcmp(prev_model, model) == 0) {
        swap = json_pack("{s:b,s:s}", "skipped", 1, "model", model);
    } else if (prev_model || model) {
        swap = json_pack("{s:b}", "skipped", 0);
        if (prev_model) {
            if (model_load(v, prev_model, prev_dim, false, &e) == 0)
                json_object_set_new(swap, "unloaded", json_string(prev_model));
            else
                json_object_set_new(swap, "unload_error", json_string(e.message));
        }
        if (model) {
            if (model_load(v, model, dim, true, &e) == 0) {
                json_object_set_new(swap, "loaded", json_string(model));
            } else {
                json_object_set_new(swap, "load_error", json_string(e.message));
                load_error = lh_xstrdup(e.message);
            }
        }
    }

    /* warm each index; a failure is reported and the rest go on */
    warmed = json_array();
    failures = json_array();
    size_t i, total = json_array_size(indexes);
    const json_t *ix;
    json_array_foreach(indexes, i, ix)
    {
        if (job && lh_job_cancelled(job)) {
            rc = lh_error_set(err, LH_ECANCELLED, "the activation of profile '%s' was cancelled",
                              profile);
            goto out;
        }
        const char *name = lh_json_str(ix, "name");
        if (load_error && is_ollama(ix)) { /* its queries cannot be embedded */
            add_failure(v, failures, name, load_error);
            continue;
        }
        lh_vwarm *w = NULL;
        if (lh_vindex_warm(v, name, &w, &e) == 0) {
            lh_vwarm_release(w);
            json_array_append_new(warmed, json_string(name));
        } else {
            add_failure(v, failures, name, e.message);
        }
        if (job)
            lh_job_progress(job, (int64_t)i + 1, (int64_t)total);
    }

    /* the previous profile's indexes this one does not bind go cold */
    cooled = json_array();
    json_t *now_names = names_of(indexes);
    json_t *pn;
    json_array_foreach(prev_indexes, i, pn)
    {
        bool kept = false;
        size_t j;
        const json_t *nn;
        json_array_foreach(now_names, j, nn) kept =
            kept || strcmp(json_string_value(pn), json_string_value(nn)) == 0;
        if (!kept) {
            lh_vindex_cool(v, json_string_value(pn));
            json_array_append(cooled, pn);
        }
    }
    json_decref(now_names);

    char ts[LH_TS_MAX];
    lh_time_rfc3339(ts);
    const char *id = lh_json_str(prof, "id") ? lh_json_str(prof, "id") : profile;
    pthread_mutex_lock(&state_mu);
    a = active_of(v);
    active_clear(a);
    a->profile = lh_xstrdup(id);
    a->activated_at = lh_xstrdup(ts);
    a->indexes = json_incref(warmed);
    a->model = model && !load_error ? lh_xstrdup(model) : NULL;
    a->model_dim = dim;
    pthread_mutex_unlock(&state_mu);
    lh_log(LH_LOG_INFO, "vectors.profile_activated", "{s:s,s:i,s:i}", "profile", id, "warmed",
           (int)json_array_size(warmed), "failures", (int)json_array_size(failures));
    *out = json_pack("{s:s,s:O,s:O,s:O,s:O,s:o,s:I}", "profile", id, "warmed", warmed, "failures",
                     failures, "model_swap", swap ? swap : json_null(), "cooled", cooled,
                     "previous", prev_profile ? json_string(prev_profile) : json_null(), "ms",
                     (json_int_t)(lh_now_ms() - t0));
out:
    pthread_mutex_unlock(&act_mu);
    json_decref(prof);
    json_decref(indexes);
    json_decref(warmed);
    json_decref(failures);
    json_decref(swap);
    json_decref(cooled);
    json_decref(prev_indexes);
    free(prev_profile);
    free(prev_model);
    free(load_error);
    return rc;
}

int lh_vectors_profile_deactivate(lh_vectors *v, const char *profile, json_t **out, lh_error *err)
{
    int rc = 0;
    json_t *indexes = NULL, *swap = json_null();
    char *model = NULL;
    int dim = 0;
    *out = NULL;
    pthread_mutex_lock(&act_mu);
    pthread_mutex_lock(&state_mu);
    lh_vactive *a = active_of(v);
    if (!a->profile || strcmp(a->profile, profile) != 0) {
        rc = lh_error_setk(err, LH_ECONFLICT, "profile_not_active",
                           "profile '%s' is not the active profile (active: %s)", profile,
                           a->profile ? a->profile : "none");
        pthread_mutex_unlock(&state_mu);
        goto out;
    }
    indexes = json_incref(a->indexes);
    model = a->model ? lh_xstrdup(a->model) : NULL;
    dim = a->model_dim;
    active_clear(a);
    pthread_mutex_unlock(&state_mu);
    size_t i;
    const json_t *n;
    json_array_foreach(indexes, i, n) lh_vindex_cool(v, json_string_value(n));
    if (model) {
        lh_error e;
        swap = model_load(v, model, dim, false, &e) == 0
                   ? json_pack("{s:b,s:s}", "skipped", 0, "unloaded", model)
                   : json_pack("{s:b,s:s}", "skipped", 0, "unload_error", e.message);
    }
    *out = json_pack("{s:s,s:b,s:O,s:O}", "profile", profile, "deactivated", 1, "cooled", indexes,
                     "model_swap", swap);
out:
    pthread_mutex_unlock(&act_mu);
    json_decref(indexes);
    json_decref(swap);
    free(model);
    return rc;
}

json_t *lh_vectors_profile_active(lh_vectors *v)
{
    pthread_mutex_lock(&state_mu);
    lh_vactive *a = active_of(v);
    json_t *out = a->profile ? json_pack("{s:s,s:s,s:O,s:o}", "profile", a->profile, "activated_at",
                                         a->activated_at, "indexes", a->indexes, "model",
                                         a->model ? json_string(a->model) : json_null())
                             : json_pack("{s:n}", "profile");
    pthread_mutex_unlock(&state_mu);
    return out;
}

/* ---------------------------------------------------------------- scoped search */

int lh_vectors_profile_search(lh_vectors *v, const char *profile, const char *index,
                              const lh_vector_query *q, const lh_vector_caller *caller,
                              json_t **out, json_t **access_out, lh_error *err)
{
    const lh_principal *who = caller->who;
    *out = NULL;
    if (access_out)
        *access_out = NULL;
    if (who->role == LH_ROLE_AGENT && (!who->profile || strcmp(who->profile, profile) != 0))
        return lh_error_setk(err, LH_EFORBIDDEN, "profile_forbidden",
                             "agent '%s' is bound to %s%s%s, not to profile '%s'", who->name,
                             who->profile ? "profile '" : "no profile",
                             who->profile ? who->profile : "", who->profile ? "'" : "", profile);
    json_t *bindings = lh_catalog_profile_bindings(lh_vectors_handles(v)->cat, profile);
    if (!bindings)
        return lh_error_set(err, LH_ENOTFOUND, "no profile with id '%s'", profile);
    json_t *indexes = indexes_over(v, bindings);
    json_t *names = names_of(indexes);
    bool bound = false;
    size_t i;
    const json_t *n;
    json_array_foreach(names, i, n) bound = bound || strcmp(json_string_value(n), index) == 0;
    int rc = 0;
    if (!bound) {
        lh_buf b;
        lh_buf_init(&b);
        json_array_foreach(names, i, n)
            lh_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(n));
        rc = lh_error_setk(err, LH_EFORBIDDEN, "index_forbidden",
                           "index '%s' is not one of profile '%s''s indexes (allowed: %s)", index,
                           profile, b.len ? b.data : "none");
        lh_buf_free(&b);
    } else {
        rc = lh_vectors_search(v, index, q, caller, out, access_out, err);
    }
    json_decref(names);
    json_decref(indexes);
    json_decref(bindings);
    return rc;
}
