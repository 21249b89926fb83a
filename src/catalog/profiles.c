/*
 * profiles.c: model profiles, what an AI agent's key may read.
 *
 * A profile names a model and binds the relations (datasets, later views) its agents read:
 *   {format_version "model_profile.v1", id, model_name, description, bound_datasets[],
 *    index_config (object|null), embed_model (string|null), bucket, created_at, created_by}
 * Each is one object `_catalog/profiles/<id>.json` in the primary bucket, written
 * atomically; the in-memory map is rebuilt from them at open (unreadable ones are logged
 * and skipped, never deleted).
 *
 * Invariants:
 *   - id is a slug: [a-z0-9][a-z0-9-]{0,62}; unique.
 *   - Every binding resolves when the profile is created. A relation deleted later stays
 *     bound but is reported in "unresolved" on reads; the query policy refuses it like any
 *     missing relation (it checks existence at query time).
 *   - A profile that keys are bound to cannot be deleted (LH_ECONFLICT naming them): the
 *     guard (set by the server, which owns the keys) is asked under `mu`. A key created
 *     with a profile deleted in the same instant binds nothing and reads nothing.
 *   - Create and delete are durable (the object write or unlink, folder fsynced) before
 *     the in-memory map changes; their events are appended after, under `mu`, so event
 *     order is commit order. A write whose outcome is unknown (LH_KIND_NOT_DURABLE) is
 *     rolled forward like a manifest's.
 *
 * Locking: `mu` serialises mutations and guards the map. Lock order: mu, then the
 * catalog's rw (lh_catalog_relation_kind), the guard's own locks, then the journal's.
 */
#include "catalog_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROFILE_PREFIX "_catalog/profiles/"
#define PROFILE_SUFFIX ".json"
#define PROFILE_FORMAT "model_profile.v1"
#define PROFILE_MAX ((size_t)1 << 20)
#define SLUG_MAX 63
#define BINDINGS_MAX 1000

struct lh_profiles {
    lh_storage *st;
    pthread_mutex_t mu;
    json_t *items; /* id -> profile object as stored */
    lh_catalog_profile_guard guard;
    void *guard_ctx;
};

static bool is_slug(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SLUG_MAX || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int slug_check(const char *id, lh_error *err)
{
    if (!is_slug(id))
        return lh_error_set(err, LH_EINVAL,
                            "profile id '%s' is not valid: 1 to 63 of a-z, 0-9 and '-', not "
                            "starting with '-'",
                            id ? id : "");
    return 0;
}

static char *profile_key(const char *id)
{
    return lh_xasprintf(PROFILE_PREFIX "%s" PROFILE_SUFFIX, id);
}

/* ---------------------------------------------------------------- open, close */

lh_profiles *lh_profiles__open(lh_storage *st, lh_error *err)
{
    lh_profiles *p = lh_xcalloc(1, sizeof(*p));
    p->st = st;
    pthread_mutex_init(&p->mu, NULL);
    p->items = json_object();
    lh_error lerr;
    if (lh_storage_sweep_staged(st, LH_BUCKET_PRIMARY, PROFILE_PREFIX, &lerr) < 0)
        lh_log(LH_LOG_WARN, "staging_sweep_failed", "{s:s,s:s}", "bucket", LH_BUCKET_PRIMARY,
               "error", lerr.message);
    char **keys = NULL;
    size_t n = 0;
    if (lh_storage_list(st, LH_BUCKET_PRIMARY, PROFILE_PREFIX, &keys, &n, &lerr) != 0) {
        lh_error_set(err, lerr.code, "cannot list the model profiles: %s", lerr.message);
        lh_profiles__close(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = keys[i] + strlen(PROFILE_PREFIX);
        size_t bl = strlen(base), sl = strlen(PROFILE_SUFFIX);
        if (strchr(base, '/') || bl <= sl || strcmp(base + bl - sl, PROFILE_SUFFIX) != 0)
            continue;
        char *id = lh_xasprintf("%.*s", (int)(bl - sl), base);
        char *text = NULL;
        size_t len = 0;
        json_t *prof = NULL;
        const char *problem = NULL;
        json_error_t jerr;
        if (lh_storage_get(st, LH_BUCKET_PRIMARY, keys[i], PROFILE_MAX, &text, &len, &lerr) != 0)
            problem = lerr.message;
        else if (!(prof = json_loadb(text, len, 0, &jerr)) || !json_is_object(prof))
            problem = prof ? "not a JSON object" : jerr.text;
        else if (!is_slug(id) || !lh_json_str(prof, "id") || strcmp(lh_json_str(prof, "id"), id))
            problem = "its id is not its file name";
        else if (!json_is_array(json_object_get(prof, "bound_datasets")))
            problem = "bound_datasets is not an array";
        if (problem) {
            lh_log(LH_LOG_WARN, "profile_skipped", "{s:s,s:s}", "key", keys[i], "reason", problem);
            json_decref(prof);
        } else {
            json_object_set_new(p->items, id, prof);
        }
        free(text);
        free(id);
    }
    lh_storage_keys_free(keys);
    return p;
}

void lh_profiles__close(lh_profiles *p)
{
    if (!p)
        return;
    json_decref(p->items);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void lh_catalog_set_profile_guard(lh_catalog *cat, lh_catalog_profile_guard fn, void *ctx)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    pthread_mutex_lock(&p->mu);
    p->guard = fn;
    p->guard_ctx = ctx;
    pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------- reads */

/* A copy of prof with "unresolved": the bindings whose relation no longer exists. */
static json_t *with_status(lh_catalog *cat, const json_t *prof)
{
    json_t *out = json_deep_copy(prof);
    json_t *unresolved = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(prof, "bound_datasets"), i, b)
    {
        if (lh_catalog_relation_kind(cat, json_string_value(b)) == LH_RELATION_NONE)
            json_array_append(unresolved, b);
    }
    json_object_del(out, "format_version");
    json_object_set_new(out, "unresolved", unresolved);
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *lh_catalog_profile_list(lh_catalog *cat)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    json_t *out = json_array();
    pthread_mutex_lock(&p->mu);
    size_t n = json_object_size(p->items), i = 0;
    const char **ids = lh_xcalloc(n + 1, sizeof(*ids));
    const char *id;
    json_t *prof;
    json_object_foreach(p->items, id, prof)
    {
        ids[i++] = id;
    }
    qsort(ids, n, sizeof(*ids), cmp_str);
    for (i = 0; i < n; i++)
        json_array_append_new(out, with_status(cat, json_object_get(p->items, ids[i])));
    pthread_mutex_unlock(&p->mu);
    free(ids);
    return out;
}

/* "a, b, c" of every profile id, for messages. Caller holds mu; caller frees. */
static char *ids_of(const lh_profiles *p)
{
    lh_buf b;
    lh_buf_init(&b);
    const char *id;
    json_t *prof;
    json_object_foreach(p->items, id, prof)
    {
        (void)prof;
        lh_buf_printf(&b, "%s%s", b.len ? ", " : "", id);
    }
    if (!b.len)
        lh_buf_puts(&b, "none");
    return b.data;
}

static int not_found(const lh_profiles *p, const char *id, lh_error *err)
{
    char *ids = ids_of(p);
    int rc = lh_error_set(err, LH_ENOTFOUND, "no profile '%s' (profiles: %s)", id ? id : "", ids);
    free(ids);
    return rc;
}

json_t *lh_catalog_profile_get(lh_catalog *cat, const char *id, lh_error *err)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    pthread_mutex_lock(&p->mu);
    json_t *prof = id ? json_object_get(p->items, id) : NULL;
    json_t *out = prof ? with_status(cat, prof) : NULL;
    if (!out)
        not_found(p, id, err);
    pthread_mutex_unlock(&p->mu);
    return out;
}

bool lh_catalog_profile_exists(lh_catalog *cat, const char *id)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    pthread_mutex_lock(&p->mu);
    bool found = id && json_object_get(p->items, id) != NULL;
    pthread_mutex_unlock(&p->mu);
    return found;
}

json_t *lh_catalog_profile_bindings(lh_catalog *cat, const char *id)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    pthread_mutex_lock(&p->mu);
    json_t *prof = id ? json_object_get(p->items, id) : NULL;
    json_t *out = prof ? json_deep_copy(json_object_get(prof, "bound_datasets")) : NULL;
    pthread_mutex_unlock(&p->mu);
    return out;
}

/* ---------------------------------------------------------------- create */

static const char *const profile_fields[] = {
    "id", "model_name", "description", "bound_datasets", "index_config", "embed_model", "bucket",
};

/* Checks a creation body; the bindings are checked against the catalog by the caller. */
static int spec_check(lh_catalog *cat, lh_storage *st, const json_t *spec, lh_error *err)
{
    if (!json_is_object(spec))
        return lh_error_set(err, LH_EINVAL, "the body must be a JSON object");
    const char *field;
    json_t *v;
    json_object_foreach((json_t *)spec, field, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(profile_fields) / sizeof(profile_fields[0]); i++)
            known = known || strcmp(field, profile_fields[i]) == 0;
        if (!known)
            return lh_error_set(err, LH_EINVAL,
                                "unknown field '%s' (fields: id, model_name, description, "
                                "bound_datasets, index_config, embed_model, bucket)",
                                field);
    }
    if (slug_check(lh_json_str(spec, "id"), err) != 0)
        return LH_EINVAL;
    const char *model = lh_json_str(spec, "model_name");
    if (!model || !*model || strlen(model) > 256)
        return lh_error_set(err, LH_EINVAL,
                            "model_name must be a non-empty string (at most 256 "
                            "bytes), e.g. \"gpt-4o-2024-08-06\"");
    json_t *desc = json_object_get(spec, "description");
    if (desc && !json_is_string(desc) && !json_is_null(desc))
        return lh_error_set(err, LH_EINVAL, "description must be a string");
    json_t *ic = json_object_get(spec, "index_config");
    if (ic && !json_is_object(ic) && !json_is_null(ic))
        return lh_error_set(err, LH_EINVAL, "index_config must be an object or null");
    json_t *em = json_object_get(spec, "embed_model");
    if (em && !json_is_string(em) && !json_is_null(em))
        return lh_error_set(err, LH_EINVAL, "embed_model must be a string or null");
    json_t *bucket = json_object_get(spec, "bucket");
    if (bucket && !json_is_null(bucket)) {
        if (!json_is_string(bucket))
            return lh_error_set(err, LH_EINVAL, "bucket must be a bucket name");
        if (!lh_storage_bucket_exists(st, json_string_value(bucket)))
            return lh_storage_unknown_bucket(st, json_string_value(bucket), err);
    }
    json_t *bound = json_object_get(spec, "bound_datasets");
    size_t n = json_array_size(bound);
    if (!json_is_array(bound) || n == 0 || n > BINDINGS_MAX)
        return lh_error_set(err, LH_EINVAL,
                            "bound_datasets must be a non-empty array (at most %d) of dataset "
                            "or view names",
                            BINDINGS_MAX);
    lh_buf missing;
    lh_buf_init(&missing);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name = json_string_value(json_array_get(bound, i));
        if (!name || lh_name_validate(name, "bound relation name", err) != 0) {
            rc = name ? LH_EINVAL
                      : lh_error_set(err, LH_EINVAL, "bound_datasets[%zu] is not a string", i);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(name, json_string_value(json_array_get(bound, j))) == 0)
                rc = lh_error_set(err, LH_EINVAL, "'%s' is bound twice", name);
        if (rc == 0 && lh_catalog_relation_kind(cat, name) == LH_RELATION_NONE)
            lh_buf_printf(&missing, "%s'%s'", missing.len ? ", " : "", name);
    }
    if (rc == 0 && missing.len)
        rc = lh_error_set(err, LH_EINVAL,
                          "every binding must resolve: no dataset or view named %s; create it "
                          "first or leave it out",
                          missing.data);
    lh_buf_free(&missing);
    return rc;
}

int lh_catalog_profile_create(lh_catalog *cat, const json_t *spec, const char *actor,
                              json_t **profile_out, lh_error *err)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    if (profile_out)
        *profile_out = NULL;
    lh_error local;
    if (!err)
        err = &local; /* the outcome decides what we do, whether or not the caller cares */
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    json_t *prof = NULL;
    char *key = NULL, *text = NULL;
    pthread_mutex_lock(&p->mu);
    int rc = spec_check(cat, p->st, spec, err);
    if (rc)
        goto out;
    const char *id = lh_json_str(spec, "id");
    if (json_object_get(p->items, id)) {
        rc = lh_error_set(err, LH_EEXISTS, "a profile '%s' already exists; delete it first", id);
        goto out;
    }
    json_t *desc = json_object_get(spec, "description");
    json_t *ic = json_object_get(spec, "index_config");
    json_t *em = json_object_get(spec, "embed_model");
    const char *bucket = lh_json_str(spec, "bucket");
    prof = json_pack("{s:s,s:s,s:s,s:s,s:O,s:O,s:O,s:s,s:s,s:s}", "format_version", PROFILE_FORMAT,
                     "id", id, "model_name", lh_json_str(spec, "model_name"), "description",
                     json_is_string(desc) ? json_string_value(desc) : "", "bound_datasets",
                     json_object_get(spec, "bound_datasets"), "index_config", ic ? ic : json_null(),
                     "embed_model", em ? em : json_null(), "bucket",
                     bucket ? bucket : LH_BUCKET_PRIMARY, "created_at", now, "created_by",
                     actor && *actor ? actor : "anonymous");
    key = profile_key(id);
    text = json_dumps(prof, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    rc = lh_storage_put(p->st, LH_BUCKET_PRIMARY, key, text, strlen(text), err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "profile_commit_not_durable", "{s:s,s:s}", "profile", id, "error",
               err->message);
        lh_error_clear(err);
        rc = 0; /* rolled forward: the disk shows it */
    }
    if (rc)
        goto out;
    json_object_set(p->items, id, prof);
    if (profile_out)
        *profile_out = with_status(cat, prof);
    lh_log(LH_LOG_INFO, "profile_created", "{s:s,s:s}", "profile", id, "actor",
           actor ? actor : "anonymous");
    rc = lh_catalog_record(cat, actor, "profile.created", id,
                           json_pack("{s:s,s:O,s:s}", "model_name", lh_json_str(prof, "model_name"),
                                     "bound_datasets", json_object_get(prof, "bound_datasets"),
                                     "bucket", lh_json_str(prof, "bucket")),
                           err);
    if (rc && profile_out) { /* an error returns no profile */
        json_decref(*profile_out);
        *profile_out = NULL;
    }
out:
    pthread_mutex_unlock(&p->mu);
    json_decref(prof);
    free(key);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- delete */

int lh_catalog_profile_delete(lh_catalog *cat, const char *id, const char *actor, lh_error *err)
{
    lh_profiles *p = lh_catalog__profiles(cat);
    lh_error local;
    if (!err)
        err = &local;
    int rc = 0;
    char *key = NULL;
    lh_buf holders;
    lh_buf_init(&holders);
    pthread_mutex_lock(&p->mu);
    if (!id || !json_object_get(p->items, id)) {
        rc = not_found(p, id, err);
        goto out;
    }
    size_t n = p->guard ? p->guard(p->guard_ctx, id, &holders) : 0;
    if (n) {
        rc = lh_error_set(err, LH_ECONFLICT,
                          "profile '%s' is bound to %zu key%s (%s); revoke %s first", id, n,
                          n == 1 ? "" : "s", holders.data, n == 1 ? "it" : "them");
        goto out;
    }
    key = profile_key(id);
    rc = lh_storage_delete(p->st, LH_BUCKET_PRIMARY, key, err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "profile_delete_not_durable", "{s:s,s:s}", "profile", id, "error",
               err->message);
        lh_error_clear(err);
        rc = 0;
    }
    if (rc)
        goto out;
    json_t *gone = json_incref(json_object_get(p->items, id));
    json_object_del(p->items, id);
    lh_log(LH_LOG_INFO, "profile_deleted", "{s:s,s:s}", "profile", id, "actor",
           actor ? actor : "anonymous");
    rc = lh_catalog_record(cat, actor, "profile.deleted", id,
                           json_pack("{s:s?}", "model_name", lh_json_str(gone, "model_name")), err);
    json_decref(gone);
out:
    pthread_mutex_unlock(&p->mu);
    lh_buf_free(&holders);
    free(key);
    return rc;
}
