/*
 * safe_views.c: AI-safe views, the catalog's side (definitions, validation, persistence).
 *
 * A definition is a small JSON object stored at `_catalog/views/<name>.json` in the primary
 * bucket (atomic write) and kept in cat->views keyed by the lowercased name. The catalog
 * never runs SQL: the query engine, told through the view listener, checks the row filter
 * with its firewall and creates the DuckDB view; what the catalog validates here is what
 * it can judge from the base's manifest (the base exists, the columns exist, redactions
 * are well-formed and projected).
 *
 * Invariants:
 *   - view and dataset names never collide, case-insensitively (checked under mu on both
 *     sides: here and in lh_catalog_commit_ingest);
 *   - as for manifests, the listener runs first and the durable write is the
 *     linearization point: a refused definition is never written, and a failed write puts
 *     the listener back on the previous state. A write whose outcome is unknown
 *     (LH_KIND_NOT_DURABLE) is rolled forward, like a manifest's;
 *   - a view outlives its base: deleting the base leaves the definition, reported as
 *     "broken" with a problem until a dataset of that name exists again.
 */
#include "catalog_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VIEWS_PREFIX "_catalog/views/"
#define VIEWS_SUFFIX ".json"
#define VIEW_FORMAT "safe_view.v1"
#define VIEW_MAX_BYTES ((size_t)1 << 20)
#define ROW_FILTER_MAX 4096
#define MASK_KEEP_MAX 1000

static char *lower(const char *s)
{
    char *l = lh_xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

static char *view_key(const char *name)
{
    return lh_xasprintf(VIEWS_PREFIX "%s" VIEWS_SUFFIX, name);
}

/* The definition of name, borrowed (valid while mu or rw is held), or NULL. */
static json_t *view_lookup(const lh_catalog *cat, const char *name)
{
    if (!cat->views || !name)
        return NULL;
    char *l = lower(name);
    json_t *d = json_object_get(cat->views, l);
    free(l);
    return d;
}

/* Puts def (taken; NULL: removes) under name. Caller holds mu; takes rw. */
static void view_store(lh_catalog *cat, const char *name, json_t *def)
{
    char *l = lower(name);
    pthread_rwlock_wrlock(&cat->rw);
    if (!cat->views)
        cat->views = json_object();
    if (def)
        json_object_set_new(cat->views, l, def);
    else
        json_object_del(cat->views, l);
    pthread_rwlock_unlock(&cat->rw);
    free(l);
}

/* ---------------------------------------------------------------- validation */

/* The column of schema named col (case-insensitive), spelled as the base spells it. */
static const char *schema_column(const json_t *schema, const char *col)
{
    size_t i;
    const json_t *c;
    json_array_foreach(schema, i, c)
    {
        const char *n = lh_json_str(c, "name");
        if (n && strcasecmp(n, col) == 0)
            return n;
    }
    return NULL;
}

static void schema_names(const json_t *schema, lh_buf *out)
{
    size_t i;
    const json_t *c;
    json_array_foreach(schema, i, c)
        lh_buf_printf(out, "%s%s", i ? ", " : "", lh_json_str(c, "name"));
}

/* "columns": a non-empty array of distinct columns of the base; resolved to the base's
 * spelling into *out (caller decrefs). */
static int columns_check(const json_t *spec, const json_t *base, json_t **out, lh_error *err)
{
    const json_t *cols = json_object_get(spec, "columns");
    const json_t *schema = json_object_get(base, "schema");
    const char *bname = lh_json_str(base, "name");
    *out = NULL;
    if (!json_is_array(cols) || json_array_size(cols) == 0)
        return lh_error_set(err, LH_EINVAL,
                            "\"columns\" must be a non-empty array of column names of '%s'", bname);
    json_t *res = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(cols, i, c)
    {
        const char *want = json_string_value(c);
        const char *have = want ? schema_column(schema, want) : NULL;
        if (!have) {
            lh_buf names;
            lh_buf_init(&names);
            schema_names(schema, &names);
            lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s' (columns: %s)", bname,
                         want ? want : "(not a string)", names.data ? names.data : "");
            lh_buf_free(&names);
            json_decref(res);
            return LH_EINVAL;
        }
        size_t k;
        const json_t *prev;
        json_array_foreach(res, k, prev)
        {
            if (strcmp(json_string_value(prev), have) == 0) {
                json_decref(res);
                return lh_error_set(err, LH_EINVAL, "column '%s' is listed twice", have);
            }
        }
        json_array_append_new(res, json_string(have));
    }
    *out = res;
    return 0;
}

static const char *const redaction_kinds[] = {"null", "hash", "mask"};

/* keep_prefix / keep_suffix: absent (0) or an integer 0..MASK_KEEP_MAX. */
static int keep_arg(const json_t *r, const char *col, const char *field, json_int_t *out,
                    lh_error *err)
{
    const json_t *v = json_object_get(r, field);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MASK_KEEP_MAX)
        return lh_error_set(err, LH_EINVAL,
                            "redaction of '%s': \"%s\" must be an integer from 0 to %d", col, field,
                            MASK_KEEP_MAX);
    *out = json_integer_value(v);
    return 0;
}

/* "column_redactions": {col: {kind, keep_prefix?, keep_suffix?}} over projected columns;
 * normalised into *out (every entry with all three fields; caller decrefs). */
static int redactions_check(const json_t *spec, const json_t *columns, json_t **out, lh_error *err)
{
    const json_t *red = json_object_get(spec, "column_redactions");
    *out = json_object();
    if (!red || json_is_null(red))
        return 0;
    if (!json_is_object(red))
        return lh_error_set(err, LH_EINVAL,
                            "\"column_redactions\" must be an object {column: {\"kind\": "
                            "\"null\"|\"hash\"|\"mask\", ...}}");
    const char *col;
    const json_t *r;
    json_object_foreach((json_t *)red, col, r)
    {
        const char *proj = NULL;
        size_t i;
        const json_t *c;
        json_array_foreach(columns, i, c)
        {
            if (strcasecmp(json_string_value(c), col) == 0)
                proj = json_string_value(c);
        }
        if (!proj)
            return lh_error_set(err, LH_EINVAL,
                                "redacted column '%s' is not in \"columns\"; project it or "
                                "drop its redaction",
                                col);
        if (json_object_get(*out, proj))
            return lh_error_set(err, LH_EINVAL, "column '%s' has two redactions", proj);
        const char *kind = lh_json_str(r, "kind");
        bool known = false;
        for (size_t k = 0; kind && k < sizeof(redaction_kinds) / sizeof(*redaction_kinds); k++)
            known = known || strcmp(kind, redaction_kinds[k]) == 0;
        if (!json_is_object(r) || !known)
            return lh_error_set(err, LH_EINVAL,
                                "redaction of '%s' must be {\"kind\": \"null\"|\"hash\"|\"mask\"}",
                                col);
        const char *field;
        const json_t *v;
        json_object_foreach((json_t *)r, field, v)
        {
            if (strcmp(field, "kind") && strcmp(field, "keep_prefix") &&
                strcmp(field, "keep_suffix"))
                return lh_error_set(err, LH_EINVAL,
                                    "redaction of '%s': unknown field '%s' (fields: kind, "
                                    "keep_prefix, keep_suffix)",
                                    col, field);
        }
        json_int_t prefix, suffix;
        if (keep_arg(r, col, "keep_prefix", &prefix, err) ||
            keep_arg(r, col, "keep_suffix", &suffix, err))
            return LH_EINVAL;
        if (strcmp(kind, "mask") != 0 && (prefix || suffix))
            return lh_error_set(err, LH_EINVAL,
                                "redaction of '%s': keep_prefix and keep_suffix apply to "
                                "\"mask\" only",
                                col);
        json_object_set_new(
            *out, proj,
            json_pack("{s:s,s:I,s:I}", "kind", kind, "keep_prefix", prefix, "keep_suffix", suffix));
    }
    return 0;
}

static const char *const spec_fields[] = {"name",       "base_dataset",      "columns",
                                          "row_filter", "column_redactions", "description"};

/* A full definition from spec, checked against the catalog. Caller holds mu. */
static json_t *definition_from_spec(lh_catalog *cat, const json_t *spec, const char *actor,
                                    lh_error *err)
{
    json_t *columns = NULL, *red = NULL, *def = NULL;
    if (!json_is_object(spec)) {
        lh_error_set(err, LH_EINVAL, "the body must be a JSON object");
        goto out;
    }
    const char *field;
    const json_t *v;
    json_object_foreach((json_t *)spec, field, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(spec_fields) / sizeof(*spec_fields); i++)
            known = known || strcmp(field, spec_fields[i]) == 0;
        if (!known) {
            lh_error_set(err, LH_EINVAL,
                         "unknown field '%s' (fields: name, base_dataset, columns, row_filter, "
                         "column_redactions, description)",
                         field);
            goto out;
        }
    }
    const char *name = lh_json_str(spec, "name");
    if (lh_name_validate(name, "view name", err) != 0)
        goto out;
    const char *base_name = lh_json_str(spec, "base_dataset");
    if (!base_name || !*base_name) {
        lh_error_set(err, LH_EINVAL, "\"base_dataset\" must name a dataset");
        goto out;
    }
    const json_t *base = lh_catalog__lookup(cat, base_name);
    if (!base) {
        /* a bad body either way: 400 */
        lh_error_set(err, LH_EINVAL,
                     view_lookup(cat, base_name) ? "'%s' is a view; a view's base must be a dataset"
                                                 : "no dataset named '%s' to base the view on",
                     base_name);
        goto out;
    }
    const json_t *filter = json_object_get(spec, "row_filter");
    if (filter && !json_is_null(filter) &&
        (!json_is_string(filter) || json_string_length(filter) == 0 ||
         json_string_length(filter) > ROW_FILTER_MAX)) {
        lh_error_set(err, LH_EINVAL,
                     "\"row_filter\" must be a non-empty SQL boolean expression of at most %d "
                     "bytes, or null",
                     ROW_FILTER_MAX);
        goto out;
    }
    const json_t *desc = json_object_get(spec, "description");
    if (desc && !json_is_null(desc) && !json_is_string(desc)) {
        lh_error_set(err, LH_EINVAL, "\"description\" must be a string");
        goto out;
    }
    if (columns_check(spec, base, &columns, err) != 0 ||
        redactions_check(spec, columns, &red, err) != 0)
        goto out;
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    def =
        json_pack("{s:s,s:s,s:s,s:O,s:O,s:O,s:s,s:s,s:s}", "format_version", VIEW_FORMAT, "name",
                  name, "base_dataset", lh_json_str(base, "name"), "columns", columns, "row_filter",
                  filter && json_is_string(filter) ? filter : json_null(), "column_redactions", red,
                  "description", desc && json_is_string(desc) ? json_string_value(desc) : "",
                  "created_at", now, "created_by", actor ? actor : "anonymous");
out:
    json_decref(columns);
    json_decref(red);
    return def;
}

/* ---------------------------------------------------------------- status */

/* Copy of def with "status" and, when broken, "problem". Caller holds mu or rw. */
static json_t *with_status(const lh_catalog *cat, const json_t *def)
{
    json_t *out = json_deep_copy(def);
    const char *base_name = lh_json_str(def, "base_dataset");
    const json_t *base = lh_catalog__lookup(cat, base_name);
    char *problem = NULL;
    if (!base) {
        problem = lh_xasprintf("base dataset '%s' does not exist (deleted?); the view works "
                               "again once a dataset of that name is ingested",
                               base_name);
    } else {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(def, "columns"), i, c)
        {
            if (!schema_column(json_object_get(base, "schema"), json_string_value(c))) {
                problem = lh_xasprintf("base dataset '%s' has no column '%s' any more", base_name,
                                       json_string_value(c));
                break;
            }
        }
    }
    json_object_set_new(out, "status", json_string(problem ? "broken" : "ok"));
    if (problem)
        json_object_set_new(out, "problem", json_string(problem));
    free(problem);
    return out;
}

/* ---------------------------------------------------------------- listener */

void lh_catalog_set_view_listener(lh_catalog *cat, lh_catalog_view_listener fn, void *ctx)
{
    pthread_mutex_lock(&cat->mu);
    cat->view_listener = fn;
    cat->view_listener_ctx = ctx;
    pthread_mutex_unlock(&cat->mu);
}

static int view_notify(lh_catalog *cat, const char *name, const json_t *def, lh_error *err)
{
    if (!cat->view_listener)
        return 0;
    lh_error lerr;
    int rc = cat->view_listener(cat->view_listener_ctx, name, def, &lerr);
    if (rc)
        lh_error_setk(err, lerr.code, lh_error_kind(&lerr), "%s", lerr.message);
    return rc;
}

static void view_notify_undo(lh_catalog *cat, const char *name, const json_t *previous)
{
    lh_error err;
    if (view_notify(cat, name, previous, &err) != 0)
        lh_log(LH_LOG_ERROR, "catalog_view_listener_undo_failed", "{s:s,s:s}", "view", name,
               "message", err.message);
}

/* ---------------------------------------------------------------- public */

lh_relation_kind lh_catalog_relation_kind(lh_catalog *cat, const char *name)
{
    if (!name)
        return LH_RELATION_NONE;
    pthread_rwlock_rdlock(&cat->rw);
    lh_relation_kind k = lh_catalog__lookup(cat, name) ? LH_RELATION_DATASET
                         : view_lookup(cat, name)      ? LH_RELATION_VIEW
                                                       : LH_RELATION_NONE;
    pthread_rwlock_unlock(&cat->rw);
    return k;
}

int lh_catalog__view_name_free(const lh_catalog *cat, const char *name, lh_error *err)
{
    const json_t *v = view_lookup(cat, name);
    if (!v)
        return 0;
    return lh_error_set(err, LH_EEXISTS,
                        "'%s' is the name of a view; views and datasets share one namespace: "
                        "choose another name or delete the view",
                        lh_json_str(v, "name"));
}

int lh_catalog_view_create(lh_catalog *cat, const json_t *spec, const char *actor, json_t **def_out,
                           lh_error *err)
{
    lh_error local;
    if (!err)
        err = &local;
    if (def_out)
        *def_out = NULL;
    int rc = 0;
    char *key = NULL, *text = NULL;
    pthread_mutex_lock(&cat->mu);
    json_t *def = definition_from_spec(cat, spec, actor, err);
    if (!def) {
        rc = err->code ? err->code : LH_EINVAL;
        goto out;
    }
    const char *name = lh_json_str(def, "name");
    const json_t *taken = lh_catalog__lookup(cat, name);
    if (taken || view_lookup(cat, name)) {
        rc = lh_error_set(err, LH_EEXISTS,
                          "%s '%s' already exists; views and datasets share one namespace: "
                          "choose another name%s",
                          taken ? "dataset" : "view",
                          taken ? lh_json_str(taken, "name")
                                : lh_json_str(view_lookup(cat, name), "name"),
                          taken ? "" : " or delete the view first");
        goto out;
    }
    if ((rc = view_notify(cat, name, def, err)) != 0)
        goto out;
    key = view_key(name);
    text = json_dumps(def, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    rc = lh_storage_put(cat->st, LH_BUCKET_PRIMARY, key, text, strlen(text), err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "view_commit_not_durable", "{s:s,s:s}", "view", name, "error",
               err->message);
        lh_error_clear(err);
        rc = 0;
    }
    if (rc) {
        view_notify_undo(cat, name, NULL);
        goto out;
    }
    json_t *shown = with_status(cat, def);
    json_t *details =
        json_pack("{s:s,s:O,s:O,s:O}", "base_dataset", lh_json_str(def, "base_dataset"), "columns",
                  json_object_get(def, "columns"), "row_filter", json_object_get(def, "row_filter"),
                  "column_redactions", json_object_get(def, "column_redactions"));
    lh_log(LH_LOG_INFO, "view_created", "{s:s,s:s,s:s}", "view", name, "base",
           lh_json_str(def, "base_dataset"), "actor", actor ? actor : "anonymous");
    char *real = lh_xstrdup(name);
    view_store(cat, real, def);
    def = NULL;
    /* Created: a failed event append is reported (event_not_recorded); the view stays. */
    rc = lh_catalog_record(cat, actor, "view.created", real, details, err);
    free(real);
    if (rc == 0 && def_out)
        *def_out = shown;
    else
        json_decref(shown);
out:
    pthread_mutex_unlock(&cat->mu);
    json_decref(def);
    free(key);
    free(text);
    return rc;
}

int lh_catalog_view_delete(lh_catalog *cat, const char *name, const char *actor, lh_error *err)
{
    lh_error local;
    if (!err)
        err = &local;
    int rc = 0;
    char *key = NULL;
    pthread_mutex_lock(&cat->mu);
    json_t *def = view_lookup(cat, name);
    if (!def) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no view named '%s'", name ? name : "");
        goto out;
    }
    json_incref(def);
    const char *real = lh_json_str(def, "name");
    if ((rc = view_notify(cat, real, NULL, err)) != 0)
        goto out;
    key = view_key(real);
    rc = lh_storage_delete(cat->st, LH_BUCKET_PRIMARY, key, err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "view_delete_not_durable", "{s:s,s:s}", "view", real, "error",
               err->message);
        lh_error_clear(err);
        rc = 0;
    }
    if (rc) {
        view_notify_undo(cat, real, def);
        goto out;
    }
    lh_log(LH_LOG_INFO, "view_deleted", "{s:s,s:s}", "view", real, "actor",
           actor ? actor : "anonymous");
    json_t *details = json_pack("{s:s}", "base_dataset", lh_json_str(def, "base_dataset"));
    view_store(cat, real, NULL);
    rc = lh_catalog_record(cat, actor, "view.deleted", real, details, err);
out:
    pthread_mutex_unlock(&cat->mu);
    json_decref(def);
    free(key);
    return rc;
}

json_t *lh_catalog_view_get(lh_catalog *cat, const char *name, lh_error *err)
{
    pthread_rwlock_rdlock(&cat->rw);
    const json_t *def = view_lookup(cat, name);
    json_t *out = def ? with_status(cat, def) : NULL;
    pthread_rwlock_unlock(&cat->rw);
    if (!out)
        lh_error_set(err, LH_ENOTFOUND, "no view named '%s'", name ? name : "");
    return out;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(lh_json_str(*(json_t *const *)a, "name"),
                  lh_json_str(*(json_t *const *)b, "name"));
}

json_t *lh_catalog_views_list(lh_catalog *cat)
{
    pthread_rwlock_rdlock(&cat->rw);
    size_t n = cat->views ? json_object_size(cat->views) : 0, k = 0;
    json_t **v = lh_xcalloc(n + 1, sizeof(*v));
    const char *lname;
    json_t *def;
    if (cat->views)
        json_object_foreach(cat->views, lname, def) v[k++] = with_status(cat, def);
    pthread_rwlock_unlock(&cat->rw);
    qsort(v, k, sizeof(*v), cmp_name);
    json_t *out = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(out, v[i]);
    free(v);
    return out;
}

/* ---------------------------------------------------------------- load */

void lh_catalog__views_load(lh_catalog *cat)
{
    lh_error err;
    if (lh_storage_sweep_staged(cat->st, LH_BUCKET_PRIMARY, VIEWS_PREFIX, &err) < 0)
        lh_log(LH_LOG_WARN, "staging_sweep_failed", "{s:s,s:s}", "bucket", LH_BUCKET_PRIMARY,
               "error", err.message);
    char **keys = NULL;
    size_t n = 0;
    if (lh_storage_list(cat->st, LH_BUCKET_PRIMARY, VIEWS_PREFIX, &keys, &n, &err) != 0) {
        lh_log(LH_LOG_WARN, "views_unreadable", "{s:s}", "error", err.message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = keys[i] + strlen(VIEWS_PREFIX);
        size_t bl = strlen(base), sl = strlen(VIEWS_SUFFIX);
        if (strchr(base, '/') || bl <= sl || strcmp(base + bl - sl, VIEWS_SUFFIX) != 0)
            continue;
        char *name = lh_xasprintf("%.*s", (int)(bl - sl), base);
        char *text = NULL;
        size_t len = 0;
        json_t *def = NULL;
        json_error_t jerr;
        const char *problem = NULL;
        if (lh_storage_get(cat->st, LH_BUCKET_PRIMARY, keys[i], VIEW_MAX_BYTES, &text, &len,
                           &err) != 0)
            problem = err.message;
        else if (!(def = json_loadb(text, len, 0, &jerr)) || !json_is_object(def))
            problem = def ? "not a JSON object" : jerr.text;
        else if (!lh_json_str(def, "name") || strcmp(lh_json_str(def, "name"), name) != 0 ||
                 !lh_json_str(def, "base_dataset") ||
                 !json_is_array(json_object_get(def, "columns")))
            problem = "not a safe_view.v1 definition of this name";
        else if (lh_catalog__lookup(cat, name) || view_lookup(cat, name))
            problem = "a dataset or view of that name (case-insensitive) is already loaded";
        if (problem) {
            lh_log(LH_LOG_WARN, "view_definition_skipped", "{s:s,s:s}", "key", keys[i], "reason",
                   problem);
            json_decref(def);
        } else {
            view_store(cat, name, def);
        }
        free(text);
        free(name);
    }
    lh_storage_keys_free(keys);
}

void lh_catalog__views_free(lh_catalog *cat)
{
    json_decref(cat->views);
    cat->views = NULL;
}
