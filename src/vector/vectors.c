/*
 * vectors.c: the registry of vector indexes: definitions, open/close, the sweep of files
 * no definition names, the catalog event tap (stale marks, purges, "dataset gone"),
 * list/get/delete/stale, and the warm structures search uses.
 *
 * Invariants:
 *   - A definition (`_catalog/vectors/<index>.json`, primary bucket, atomic write) is the
 *     linearization point of every change of an index: data files are written before the
 *     definition that names them and deleted only after the definition that drops them is
 *     durable. Whatever a crash leaves unnamed is swept at the next open; a definition that
 *     cannot be read is logged and kept, and so are its files.
 *   - Definitions in memory are immutable once published: a change builds a copy, writes
 *     it and swaps it in (lh_vreg_commit), so readers copy under v->mu and never see a
 *     half-changed one.
 *   - The catalog's event tap runs under the journal's lock: it only queues the event and
 *     signals. The module's background thread turns events into stale marks (definition
 *     writes), problems and jobs ("vector_refresh" for on_append indexes, "vector_purge"
 *     after a compaction). lh_vectors_stop ends the tap and the thread before the job pool
 *     closes; lh_vectors_close after it.
 *   - A warm structure is published with one reference held by the registry; searches take
 *     their own and keep it across a swap.
 */
#include "registry_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEF_MAX ((size_t)16 << 20)

/* ---------------------------------------------------------------- registry basics */

static void vindex_free(lh_vectors *v, vindex *ix)
{
    if (ix->emb) { /* borrowed by lh_vindex_embedder callers until close */
        v->dead_emb = lh_xrealloc(v->dead_emb, (v->n_dead_emb + 1) * sizeof(*v->dead_emb));
        v->dead_emb[v->n_dead_emb++] = ix->emb;
    }
    lh_vwarm_release(ix->warm);
    json_decref(ix->def);
    free(ix->name);
    free(ix->problem);
    free(ix->stale_pending);
    pthread_mutex_destroy(&ix->emb_mu);
    pthread_mutex_destroy(&ix->work_mu);
    pthread_mutex_destroy(&ix->load_mu);
    free(ix);
}

/* Index of name in v->items (case-insensitive), or -(insertion point) - 1. Caller holds
 * v->mu. */
static long find(const lh_vectors *v, const char *name)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcasecmp(v->items[mid]->name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static vindex *vindex_new(const char *name)
{
    vindex *ix = lh_xcalloc(1, sizeof(*ix));
    ix->name = lh_xstrdup(name);
    ix->refs = 1;
    ix->listed = true;
    pthread_mutex_init(&ix->emb_mu, NULL);
    pthread_mutex_init(&ix->work_mu, NULL);
    pthread_mutex_init(&ix->load_mu, NULL);
    return ix;
}

/* Inserts ix at its place. Caller holds v->mu and checked that the name is free. */
static void insert(lh_vectors *v, vindex *ix)
{
    long at = find(v, ix->name);
    size_t pos = (size_t)(-at - 1);
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = lh_xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    memmove(v->items + pos + 1, v->items + pos, (v->n - pos) * sizeof(*v->items));
    v->items[pos] = ix;
    v->n++;
}

vindex *lh_vreg_get(lh_vectors *v, const char *name, lh_error *err)
{
    pthread_mutex_lock(&v->mu);
    long at = name ? find(v, name) : -1;
    vindex *ix = at >= 0 ? v->items[at] : NULL;
    if (ix)
        ix->refs++;
    pthread_mutex_unlock(&v->mu);
    if (!ix)
        lh_error_set(err, LH_ENOTFOUND,
                     "no vector index named '%s' (GET /vectors/indexes lists them)",
                     name ? name : "");
    return ix;
}

void lh_vreg_put(lh_vectors *v, vindex *ix)
{
    if (!ix)
        return;
    pthread_mutex_lock(&v->mu);
    bool last = --ix->refs == 0;
    if (last)
        vindex_free(v, ix);
    pthread_mutex_unlock(&v->mu);
}

json_t *lh_vreg_def_copy(lh_vectors *v, vindex *ix)
{
    pthread_mutex_lock(&v->mu);
    json_t *d = json_deep_copy(ix->def);
    pthread_mutex_unlock(&v->mu);
    return d;
}

vindex *lh_vreg_add_building(lh_vectors *v, const char *name, lh_error *err)
{
    pthread_mutex_lock(&v->mu);
    vindex *ix = NULL;
    if (find(v, name) >= 0) {
        lh_error_set(err, LH_EEXISTS, "a vector index named '%s' already exists", name);
        goto out;
    }
    ix = vindex_new(name);
    ix->building = true;
    /* Events already heard describe data the build will read: they mark nothing. */
    pthread_mutex_lock(&v->ev_mu);
    ix->since_seq = v->last_seq;
    pthread_mutex_unlock(&v->ev_mu);
    ix->refs = 2; /* the registry's and the caller's */
    insert(v, ix);
out:
    pthread_mutex_unlock(&v->mu);
    return ix;
}

void lh_vreg_unlist(lh_vectors *v, vindex *ix)
{
    pthread_mutex_lock(&v->mu);
    long at = ix->listed ? find(v, ix->name) : -1;
    bool last = false;
    if (at >= 0 && v->items[at] == ix) {
        memmove(v->items + at, v->items + at + 1, (v->n - (size_t)at - 1) * sizeof(*v->items));
        v->n--;
        ix->listed = false;
        last = --ix->refs == 0;
    }
    if (last)
        vindex_free(v, ix);
    pthread_mutex_unlock(&v->mu);
}

char *lh_vreg_prefix(const char *dataset, const char *index)
{
    return lh_xasprintf("datasets/%s/" LH_VECTOR_DATA_DIR "/%s/", dataset, index);
}

char *lh_vreg_path(lh_vectors *v, const json_t *def, const char *file, lh_error *err)
{
    char *prefix = lh_vreg_prefix(lh_json_str(def, "dataset"), lh_json_str(def, "name"));
    char *key = lh_xasprintf("%s%s", prefix, file);
    char *path = lh_storage_path(v->vc.st, lh_json_str(def, "bucket"), key, err);
    free(key);
    free(prefix);
    return path;
}

char *lh_vreg_dir(lh_vectors *v, const json_t *def, lh_error *err)
{
    char *probe = lh_vreg_path(v, def, "x", err); /* a folder is not an object key */
    if (probe)
        probe[strlen(probe) - 2] = 0; /* strip "/x" */
    return probe;
}

static char *def_key(const char *name)
{
    return lh_xasprintf(LH_VECTOR_DEF_DIR "/%s.json", name);
}

int lh_vreg_commit_locked(lh_vectors *v, vindex *ix, json_t *def, lh_error *err)
{
    char *key = def_key(ix->name);
    char *text = json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS);
    lh_error lerr;
    int rc = lh_storage_put(v->vc.st, LH_BUCKET_PRIMARY, key, text, strlen(text), &lerr);
    if (rc && lh_error_not_durable(&lerr)) {
        /* The new definition is what every reader sees: roll forward. */
        lh_log(LH_LOG_WARN, "vector_definition_not_durable", "{s:s,s:s}", "index", ix->name,
               "error", lerr.message);
        rc = 0;
    }
    if (rc) {
        lh_error_set(err, lerr.code, "cannot write the definition of vector index '%s': %s",
                     ix->name, lerr.message);
        json_decref(def);
    } else {
        pthread_mutex_lock(&v->mu);
        json_decref(ix->def);
        ix->def = def;
        pthread_mutex_unlock(&v->mu);
    }
    free(text);
    free(key);
    return rc;
}

int lh_vreg_commit(lh_vectors *v, vindex *ix, json_t *def, lh_error *err)
{
    pthread_mutex_lock(&v->def_mu);
    int rc = lh_vreg_commit_locked(v, ix, def, err);
    pthread_mutex_unlock(&v->def_mu);
    return rc;
}

/* ---------------------------------------------------------------- warm structures */

void lh_vwarm_release(lh_vwarm *w)
{
    if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->doc_ids[i]);
        free(w->texts[i]);
    }
    free(w->labels);
    free(w->doc_ids);
    free(w->chunks);
    free(w->texts);
    free(w->vecs);
    lh_ann_free(w->ann);
    free(w);
}

void lh_vreg_set_warm(lh_vectors *v, vindex *ix, lh_vwarm *w)
{
    pthread_mutex_lock(&v->mu);
    lh_vwarm *old = ix->warm;
    ix->warm = w;
    pthread_mutex_unlock(&v->mu);
    lh_vwarm_release(old);
}

static int ann_threads(const lh_vectors *v)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int t = v->vc.cfg->job_threads > 0 ? v->vc.cfg->job_threads : 1;
    return cores > 0 && cores < t ? (int)cores : t;
}

/* The ANN parameters a definition asks for (defaults for n vectors, overridden by its
 * params). */
static int def_ann_params(const json_t *def, size_t n, lh_ann_kind *kind, lh_ann_params *p,
                          lh_error *err)
{
    int rc = lh_ann_kind_parse(lh_json_str(def, "kind"), kind, err);
    if (rc)
        return rc;
    lh_ann_params_default(*kind, (int)lh_json_int(def, "dim", 0), n, p);
    json_t *params = json_object_get(def, "params");
    return json_is_object(params) ? lh_ann_params_from_json(*kind, params, p, err) : 0;
}

lh_vwarm *lh_vreg_load_warm(lh_vectors *v, const json_t *def, lh_error *err)
{
    int dim = (int)lh_json_int(def, "dim", 0);
    json_t *parts = json_object_get(def, "parts");
    size_t np = json_array_size(parts);
    char **paths = lh_xcalloc(np + 1, sizeof(char *));
    lh_vwarm *w = NULL;
    lh_vscan s = {0};
    FILE *f = NULL;
    int rc = 0;
    for (size_t i = 0; i < np; i++)
        if (!(paths[i] = lh_vreg_path(v, def, json_string_value(json_array_get(parts, i)), err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
    if ((rc = lh_vstore_scan(v, paths, dim, true, true, &s, err)) != 0)
        goto out;
    w = lh_xcalloc(1, sizeof(*w));
    atomic_init(&w->refs, 1);
    w->n = s.n;
    w->dim = dim;
    w->labels = s.labels;
    w->doc_ids = s.doc_ids;
    w->chunks = s.chunks;
    w->texts = s.texts;
    w->vecs = s.vecs;
    for (size_t i = 0; i < s.n; i++)
        free(s.doc_hashes[i]);
    free(s.doc_hashes);
    memset(&s, 0, sizeof(s));
    if ((rc = def_ann_params(def, w->n, &w->kind, &w->params, err)) != 0)
        goto out;
    const char *ann = lh_json_str(def, "ann");
    if (ann) {
        char *path = lh_vreg_path(v, def, ann, err);
        if (!path) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        f = fopen(path, "rb");
        free(path);
        if (!f) {
            rc = lh_error_set(err, LH_EIO, "cannot open the ANN file of vector index '%s'",
                              lh_json_str(def, "name"));
            goto out;
        }
        if (!(w->ann = lh_ann_read(f, err))) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
        w->kind = lh_ann_get_kind(w->ann); /* the file's, with the parameters it holds */
        lh_ann_get_params(w->ann, &w->params);
    } else if (w->n > 0) { /* the file is missing: build it in memory */
        if (!(w->ann = lh_ann_new(w->kind, dim, &w->params, w->vecs, w->n, ann_threads(v), err)) ||
            lh_ann_add(w->ann, w->vecs, w->labels, w->n, err) != 0) {
            rc = err ? err->code : LH_EINTERNAL;
            goto out;
        }
    }
out:
    if (f)
        fclose(f);
    for (size_t i = 0; i < np; i++)
        free(paths[i]);
    free(paths);
    lh_vscan_free(&s);
    if (rc) {
        lh_vwarm_release(w);
        w = NULL;
    }
    return w;
}

int lh_vindex_warm(lh_vectors *v, const char *name, lh_vwarm **out, lh_error *err)
{
    *out = NULL;
    vindex *ix = lh_vreg_get(v, name, err);
    if (!ix)
        return LH_ENOTFOUND;
    int rc = 0;
    pthread_mutex_lock(&ix->load_mu);
    pthread_mutex_lock(&v->mu);
    bool building = ix->building;
    lh_vwarm *w = ix->warm;
    if (w)
        atomic_fetch_add(&w->refs, 1);
    json_t *def = w || building ? NULL : json_deep_copy(ix->def);
    pthread_mutex_unlock(&v->mu);
    if (building) {
        rc = lh_error_set(err, LH_ECONFLICT, "vector index '%s' is still being built", name);
    } else if (!w) {
        w = lh_vreg_load_warm(v, def, err);
        if (!w) {
            rc = err ? err->code : LH_EINTERNAL;
        } else {
            atomic_fetch_add(&w->refs, 1); /* one for the registry, one for the caller */
            lh_vreg_set_warm(v, ix, w);
        }
    }
    pthread_mutex_unlock(&ix->load_mu);
    json_decref(def);
    lh_vreg_put(v, ix);
    *out = w;
    return rc;
}

lh_vwarm *lh_vindex_peek(lh_vectors *v, const char *name)
{
    vindex *ix = lh_vreg_get(v, name, NULL);
    if (!ix)
        return NULL;
    pthread_mutex_lock(&v->mu);
    lh_vwarm *w = ix->warm;
    if (w)
        atomic_fetch_add(&w->refs, 1);
    pthread_mutex_unlock(&v->mu);
    lh_vreg_put(v, ix);
    return w;
}

void lh_vindex_cool(lh_vectors *v, const char *name)
{
    vindex *ix = lh_vreg_get(v, name, NULL);
    if (!ix)
        return;
    pthread_mutex_lock(&ix->load_mu);
    lh_vreg_set_warm(v, ix, NULL);
    pthread_mutex_unlock(&ix->load_mu);
    lh_vreg_put(v, ix);
}

lh_embedder *lh_vreg_embedder(lh_vectors *v, vindex *ix, lh_error *err)
{
    pthread_mutex_lock(&ix->emb_mu);
    if (!ix->emb) {
        json_t *def = lh_vreg_def_copy(v, ix);
        const char *model = lh_json_str(def, "model");
        lh_embedder_spec spec = {.kind = lh_json_str(def, "embedder"),
                                 .model = model && *model ? model : NULL,
                                 .dim = (int)lh_json_int(def, "dim", 0)};
        ix->emb = lh_embedder_open(v->vc.cfg, &spec, err);
        json_decref(def);
    }
    lh_embedder *e = ix->emb;
    pthread_mutex_unlock(&ix->emb_mu);
    return e;
}

lh_embedder *lh_vindex_embedder(lh_vectors *v, const char *name, lh_error *err)
{
    vindex *ix = lh_vreg_get(v, name, err);
    if (!ix)
        return NULL;
    lh_embedder *e = lh_vreg_embedder(v, ix, err);
    lh_vreg_put(v, ix);
    return e;
}

json_t *lh_vindex_def(lh_vectors *v, const char *name, lh_error *err)
{
    vindex *ix = lh_vreg_get(v, name, err);
    if (!ix)
        return NULL;
    json_t *def = lh_vreg_def_copy(v, ix);
    lh_vreg_put(v, ix);
    char *dir = lh_vreg_dir(v, def, err);
    if (!dir) {
        json_decref(def);
        return NULL;
    }
    json_object_set_new(def, "dir", json_string(dir));
    free(dir);
    return def;
}

char **lh_vindex_part_paths(lh_vectors *v, const char *name, lh_error *err)
{
    json_t *def = lh_vindex_def(v, name, err);
    if (!def)
        return NULL;
    json_t *parts = json_object_get(def, "parts");
    size_t n = json_array_size(parts);
    char **out = lh_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = lh_path_join(lh_json_str(def, "dir"), json_string_value(json_array_get(parts, i)));
    json_decref(def);
    return out;
}

const lh_vectors_config *lh_vectors_handles(lh_vectors *v)
{
    return &v->vc;
}

/* ---------------------------------------------------------------- list / get / delete */

static int64_t index_bytes(lh_vectors *v, const json_t *def)
{
    int64_t total = 0;
    json_t *parts = json_object_get(def, "parts"), *p;
    size_t i;
    char *prefix = lh_vreg_prefix(lh_json_str(def, "dataset"), lh_json_str(def, "name"));
    json_array_foreach(parts, i, p)
    {
        char *key = lh_xasprintf("%s%s", prefix, json_string_value(p));
        int64_t s = lh_storage_size(v->vc.st, lh_json_str(def, "bucket"), key);
        total += s > 0 ? s : 0;
        free(key);
    }
    if (lh_json_str(def, "ann")) {
        char *key = lh_xasprintf("%s%s", prefix, lh_json_str(def, "ann"));
        int64_t s = lh_storage_size(v->vc.st, lh_json_str(def, "bucket"), key);
        total += s > 0 ? s : 0;
        free(key);
    }
    free(prefix);
    return total;
}

/* The index as GET shows it. Caller holds nothing; takes v->mu. */
static json_t *render(lh_vectors *v, vindex *ix)
{
    pthread_mutex_lock(&v->mu);
    json_t *def = json_deep_copy(ix->def);
    bool building = ix->building, warm = ix->warm != NULL;
    char *problem = ix->problem ? lh_xstrdup(ix->problem) : NULL;
    pthread_mutex_unlock(&v->mu);
    static const char *const fields[] = {
        "name",        "dataset",      "bucket",     "id_column",
        "text_column", "chunk_size",   "overlap",    "embedder",
        "model",       "dim",          "kind",       "params",
        "refresh",     "docs",         "chunks",     "embedding_stale_since",
        "built_at",    "refreshed_at", "created_at", "created_by",
        "champion"};
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *f = json_object_get(def, fields[i]);
        json_object_set(out, fields[i], f ? f : json_null());
    }
    json_object_set_new(out, "state", json_string(building ? "building" : "ready"));
    json_object_set_new(out, "bytes", json_integer(building ? 0 : index_bytes(v, def)));
    json_object_set_new(out, "warm", json_boolean(warm));
    if (problem)
        json_object_set_new(out, "problem", json_string(problem));
    free(problem);
    json_decref(def);
    return out;
}

json_t *lh_vectors_list(lh_vectors *v)
{
    pthread_mutex_lock(&v->mu);
    size_t n = v->n;
    vindex **items = lh_xcalloc(n + 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i] = v->items[i];
        items[i]->refs++;
    }
    pthread_mutex_unlock(&v->mu);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(out, render(v, items[i]));
        lh_vreg_put(v, items[i]);
    }
    free(items);
    return out;
}

json_t *lh_vectors_get(lh_vectors *v, const char *name, lh_error *err)
{
    vindex *ix = lh_vreg_get(v, name, err);
    if (!ix)
        return NULL;
    json_t *out = render(v, ix);
    lh_vreg_put(v, ix);
    return out;
}

/* Removes every object under an index's data folder. */
static void remove_files(lh_vectors *v, const char *bucket, const char *dataset, const char *name)
{
    char *prefix = lh_vreg_prefix(dataset, name);
    char **keys = NULL;
    size_t n = 0;
    lh_error err;
    if (lh_storage_list(v->vc.st, bucket, prefix, &keys, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (lh_storage_delete(v->vc.st, bucket, keys[i], &err) != 0)
                lh_log(LH_LOG_WARN, "vector_file_delete_failed", "{s:s,s:s,s:s}", "index", name,
                       "key", keys[i], "error", err.message);
    }
    lh_storage_keys_free(keys);
    free(prefix);
}

int lh_vectors_delete(lh_vectors *v, const char *name, const char *actor, lh_error *err)
{
    vindex *ix = lh_vreg_get(v, name, err);
    if (!ix)
        return LH_ENOTFOUND;
    int rc = 0;
    bool locked = false;
    pthread_mutex_lock(&v->mu);
    bool building = ix->building;
    pthread_mutex_unlock(&v->mu);
    if (building) {
        rc = lh_error_set(err, LH_ECONFLICT,
                          "vector index '%s' is being built; wait for its job, then delete it",
                          ix->name);
        goto out;
    }
    if (pthread_mutex_trylock(&ix->work_mu) != 0) {
        rc = lh_error_set(err, LH_ECONFLICT,
                          "vector index '%s' is being refreshed or tuned; retry when its job ends",
                          ix->name);
        goto out;
    }
    locked = true;
    json_t *def = lh_vreg_def_copy(v, ix);
    char *key = def_key(ix->name);
    lh_error lerr;
    /* The definition first (the linearization point), then the files. */
    pthread_mutex_lock(&v->def_mu);
    rc = lh_storage_delete(v->vc.st, LH_BUCKET_PRIMARY, key, &lerr);
    pthread_mutex_unlock(&v->def_mu);
    free(key);
    if (rc && !lh_error_not_durable(&lerr)) {
        rc = lh_error_set(err, lerr.code, "cannot delete vector index '%s': %s", ix->name,
                          lerr.message);
        json_decref(def);
        goto out;
    }
    rc = 0;
    lh_vreg_set_warm(v, ix, NULL);
    lh_vreg_unlist(v, ix);
    remove_files(v, lh_json_str(def, "bucket"), lh_json_str(def, "dataset"), ix->name);
    lh_log(LH_LOG_INFO, "vector_index_deleted", "{s:s,s:s}", "index", ix->name, "actor",
           actor ? actor : "anonymous");
    if (lh_catalog_record(v->vc.cat, actor, "vector_index.deleted", ix->name,
                          json_pack("{s:s}", "dataset", lh_json_str(def, "dataset")), err) != 0)
        rc = err->code;
    json_decref(def);
out:
    if (locked)
        pthread_mutex_unlock(&ix->work_mu);
    lh_vreg_put(v, ix);
    return rc;
}

json_t *lh_vectors_stale(lh_vectors *v)
{
    json_t *out = json_array();
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n; i++) {
        json_t *def = v->items[i]->def;
        json_t *since = json_object_get(def, "embedding_stale_since");
        if (v->items[i]->building || !json_is_string(since))
            continue;
        json_array_append_new(out,
                              json_pack("{s:s,s:s,s:O,s:s}", "dataset", lh_json_str(def, "dataset"),
                                        "index", v->items[i]->name, "embedding_stale_since", since,
                                        "refresh", lh_json_str(def, "refresh")));
    }
    pthread_mutex_unlock(&v->mu);
    return out;
}

/* ---------------------------------------------------------------- the event tap */

static void tap(void *ctx, const json_t *event)
{
    lh_vectors *v = ctx;
    const char *action = lh_json_str(event, "action"), *target = lh_json_str(event, "target"),
               *at = lh_json_str(event, "at");
    pthread_mutex_lock(&v->ev_mu);
    v->last_seq = lh_json_int(event, "seq", v->last_seq);
    if (action && strncmp(action, "dataset.", 8) == 0) {
        json_array_append_new(
            v->events, json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)v->last_seq, "action",
                                 action, "target", target ? target : "", "at", at ? at : ""));
        pthread_cond_signal(&v->ev_cv);
    }
    pthread_mutex_unlock(&v->ev_mu);
}

/* References to the listed indexes over dataset (case-insensitive). Caller puts each and
 * frees the array. */
static vindex **of_dataset(lh_vectors *v, const char *dataset, size_t *n_out)
{
    pthread_mutex_lock(&v->mu);
    vindex **out = lh_xcalloc(v->n + 1, sizeof(*out));
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        const char *ds = lh_json_str(v->items[i]->def, "dataset");
        if (ds && strcasecmp(ds, dataset) == 0) {
            out[n++] = v->items[i];
            v->items[i]->refs++;
        }
    }
    pthread_mutex_unlock(&v->mu);
    *n_out = n;
    return out;
}

typedef struct {
    lh_vectors *v;
    char *dataset;
    bool purge;
} bg_job;

static int bg_job_run(lh_job *job, void *ctx, lh_error *err)
{
    bg_job *b = ctx;
    json_t *out = NULL;
    if (!b->purge) { /* a new append after this point queues another job */
        size_t n;
        vindex **ixs = of_dataset(b->v, b->dataset, &n);
        pthread_mutex_lock(&b->v->mu);
        for (size_t i = 0; i < n; i++)
            ixs[i]->refresh_queued = false;
        pthread_mutex_unlock(&b->v->mu);
        for (size_t i = 0; i < n; i++)
            lh_vreg_put(b->v, ixs[i]);
        free(ixs);
    }
    int rc = lh_vbuild_refresh(b->v, b->dataset, "system", b->purge, !b->purge, job, &out, err);
    if (rc == 0)
        lh_job_set_result(job, out);
    else
        lh_log(LH_LOG_WARN, b->purge ? "vector_purge_failed" : "vector_refresh_failed", "{s:s,s:s}",
               "dataset", b->dataset, "error", err->message);
    return rc;
}

static void bg_job_done(void *ctx, int rc)
{
    (void)rc;
    bg_job *b = ctx;
    free(b->dataset);
    free(b);
}

void lh_vreg_submit(lh_vectors *v, const char *dataset, bool purge)
{
    bg_job *b = lh_xcalloc(1, sizeof(*b));
    b->v = v;
    b->dataset = lh_xstrdup(dataset);
    b->purge = purge;
    char id[LH_JOB_ID_LEN + 1];
    lh_error err;
    if (lh_jobs_submit(v->vc.jobs, purge ? "vector_purge" : "vector_refresh", "system", bg_job_run,
                       bg_job_done, b, id, &err) != 0) {
        lh_log(LH_LOG_WARN, "vector_job_not_submitted", "{s:s,s:s}", "dataset", dataset, "error",
               err.message);
        bg_job_done(b, err.code);
        return;
    }
    lh_log(LH_LOG_INFO, purge ? "vector_purge_queued" : "vector_refresh_queued", "{s:s,s:s}",
           "dataset", dataset, "job", id);
}

static void set_problem(lh_vectors *v, vindex *ix, const char *problem)
{
    pthread_mutex_lock(&v->mu);
    free(ix->problem);
    ix->problem = problem ? lh_xstrdup(problem) : NULL;
    pthread_mutex_unlock(&v->mu);
}

/* Marks ix stale since `at` (keeps an earlier mark). Returns true when its policy is
 * on_append and no refresh is queued yet (the caller queues one). */
static bool mark_stale(lh_vectors *v, vindex *ix, const char *at)
{
    pthread_mutex_lock(&v->def_mu);
    pthread_mutex_lock(&v->mu);
    bool building = ix->building, listed = ix->listed;
    if (building && !ix->stale_pending)
        ix->stale_pending = lh_xstrdup(at);
    json_t *def =
        building || !listed || json_is_string(json_object_get(ix->def, "embedding_stale_since"))
            ? NULL
            : json_deep_copy(ix->def);
    const char *refresh = lh_json_str(ix->def, "refresh");
    bool queue =
        listed && !building && refresh && strcmp(refresh, "on_append") == 0 && !ix->refresh_queued;
    if (queue)
        ix->refresh_queued = true;
    pthread_mutex_unlock(&v->mu);
    if (def) {
        json_object_set_new(def, "embedding_stale_since", json_string(at));
        lh_error err;
        if (lh_vreg_commit_locked(v, ix, def, &err) != 0)
            lh_log(LH_LOG_WARN, "vector_stale_mark_not_written", "{s:s,s:s}", "index", ix->name,
                   "error", err.message);
    }
    pthread_mutex_unlock(&v->def_mu);
    return queue;
}

static void handle_event(lh_vectors *v, const json_t *e)
{
    const char *action = lh_json_str(e, "action"), *ds = lh_json_str(e, "target"),
               *at = lh_json_str(e, "at");
    size_t n;
    vindex **ixs = of_dataset(v, ds, &n);
    bool refresh = false, purge = false;
    int64_t seq = lh_json_int(e, "seq", 0);
    for (size_t i = 0; i < n; i++) {
        vindex *ix = ixs[i];
        if (seq <= ix->since_seq) {
            /* heard before the index was prepared: its build reads the data after it */
        } else if (strcmp(action, "dataset.deleted") == 0) {
            char *p = lh_xasprintf("dataset '%s' was deleted: the index serves its last state; "
                                   "re-create the dataset and refresh, or delete the index",
                                   ds);
            set_problem(v, ix, p);
            free(p);
        } else if (strcmp(action, "dataset.appended") == 0 ||
                   strcmp(action, "dataset.replaced") == 0 ||
                   strcmp(action, "dataset.created") == 0) {
            if (strcmp(action, "dataset.created") == 0)
                set_problem(v, ix, NULL);
            refresh = mark_stale(v, ix, at) || refresh;
        } else if (strcmp(action, "dataset.compacted") == 0) {
            purge = true;
        }
        lh_vreg_put(v, ix);
    }
    free(ixs);
    if (refresh)
        lh_vreg_submit(v, ds, false);
    if (purge)
        lh_vreg_submit(v, ds, true);
}

static void *bg_main(void *arg)
{
    lh_vectors *v = arg;
    pthread_mutex_lock(&v->ev_mu);
    for (;;) {
        while (!v->stopping && json_array_size(v->events) == 0)
            pthread_cond_wait(&v->ev_cv, &v->ev_mu);
        if (v->stopping)
            break;
        json_t *batch = v->events;
        v->events = json_array();
        pthread_mutex_unlock(&v->ev_mu);
        size_t i;
        json_t *e;
        json_array_foreach(batch, i, e) handle_event(v, e);
        json_decref(batch);
        pthread_mutex_lock(&v->ev_mu);
    }
    pthread_mutex_unlock(&v->ev_mu);
    return NULL;
}

/* ---------------------------------------------------------------- open / sweep / close */

static const char *const TUNING_FILES[] = {"evalset.json", "trials.jsonl"};

/* Is `file` named by def (a part, the ANN file, a tuning file)? */
static bool def_names(const json_t *def, const char *file)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(def, "parts"), i,
                       p) if (strcmp(json_string_value(p), file) == 0) return true;
    const char *ann = lh_json_str(def, "ann");
    if (ann && strcmp(ann, file) == 0)
        return true;
    for (i = 0; i < sizeof(TUNING_FILES) / sizeof(TUNING_FILES[0]); i++)
        if (strcmp(TUNING_FILES[i], file) == 0)
            return true;
    return false;
}

/* Deletes files under datasets/<ds>/_vectors/ that no definition names (left by a crash
 * between writing a file and its definition, or after it and before the old files were
 * deleted), and folders of indexes that no longer exist. Folders of definitions that could
 * not be read (`spared`) are kept. Caller holds nothing; runs before the tap. */
static void sweep(lh_vectors *v, json_t *spared)
{
    json_t *buckets = lh_storage_buckets_json(v->vc.st);
    size_t b;
    json_t *bj;
    json_array_foreach(buckets, b, bj)
    {
        const char *bucket = lh_json_str(bj, "name");
        char **keys = NULL;
        size_t n = 0;
        lh_error err;
        if (!bucket || lh_storage_list(v->vc.st, bucket, "datasets/", &keys, &n, &err) != 0) {
            lh_storage_keys_free(keys);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            /* datasets/<ds>/_vectors/<index>/<file> */
            char *k = lh_xstrdup(keys[i] + strlen("datasets/"));
            char *ds = k, *rest = strchr(k, '/');
            if (!rest || strncmp(rest + 1, LH_VECTOR_DATA_DIR "/", strlen(LH_VECTOR_DATA_DIR) + 1))
                goto next;
            *rest = 0;
            char *name = rest + 1 + strlen(LH_VECTOR_DATA_DIR) + 1;
            char *file = strchr(name, '/');
            if (!file)
                goto next;
            *file++ = 0;
            bool keep = json_object_get(spared, name) != NULL;
            pthread_mutex_lock(&v->mu);
            long at = find(v, name);
            const json_t *def = at >= 0 ? v->items[at]->def : NULL;
            if (def && strcmp(lh_json_str(def, "name"), name) == 0 &&
                strcmp(lh_json_str(def, "bucket"), bucket) == 0 &&
                strcmp(lh_json_str(def, "dataset"), ds) == 0 && !strchr(file, '/'))
                keep = keep || def_names(def, file);
            pthread_mutex_unlock(&v->mu);
            if (!keep) {
                if (lh_storage_delete(v->vc.st, bucket, keys[i], &err) == 0)
                    lh_log(LH_LOG_INFO, "vector_orphan_removed", "{s:s,s:s}", "bucket", bucket,
                           "key", keys[i]);
                else
                    lh_log(LH_LOG_WARN, "vector_orphan_delete_failed", "{s:s,s:s,s:s}", "bucket",
                           bucket, "key", keys[i], "error", err.message);
            }
        next:
            free(k);
        }
        lh_storage_keys_free(keys);
    }
    json_decref(buckets);
}

/* Loads every definition; unreadable ones go to spared (name → true). */
static void load_defs(lh_vectors *v, json_t *spared)
{
    char **keys = NULL;
    size_t n = 0;
    lh_error err;
    if (lh_storage_list(v->vc.st, LH_BUCKET_PRIMARY, LH_VECTOR_DEF_DIR "/", &keys, &n, &err) != 0) {
        lh_storage_keys_free(keys);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = keys[i] + strlen(LH_VECTOR_DEF_DIR "/");
        size_t bl = strlen(base);
        if (bl < 6 || strcmp(base + bl - 5, ".json") != 0 || strchr(base, '/'))
            continue;
        char *name = lh_xasprintf("%.*s", (int)(bl - 5), base);
        char *text = NULL;
        size_t len = 0;
        json_t *def = NULL;
        if (lh_storage_get(v->vc.st, LH_BUCKET_PRIMARY, keys[i], DEF_MAX, &text, &len, &err) == 0)
            def = lh_json_parse_object(text, len, &err);
        free(text);
        const char *fv = lh_json_str(def, "format_version");
        if (!def || !fv || strcmp(fv, "vector_index.v1") != 0 ||
            strcmp(lh_json_str(def, "name") ? lh_json_str(def, "name") : "", name) != 0 ||
            !lh_json_str(def, "dataset") || !lh_json_str(def, "bucket")) {
            lh_log(LH_LOG_ERROR, "vector_definition_unreadable", "{s:s,s:s}", "key", keys[i],
                   "error", def ? "not a vector_index.v1 definition of this name" : err.message);
            json_object_set_new(spared, name, json_true());
            json_decref(def);
            free(name);
            continue;
        }
        vindex *ix = vindex_new(name);
        ix->def = def;
        json_t *m = lh_catalog_get(v->vc.cat, lh_json_str(def, "dataset"), NULL);
        if (!m) {
            ix->problem = lh_xasprintf("dataset '%s' does not exist: the index serves its last "
                                       "state; re-create the dataset and refresh, or delete "
                                       "the index",
                                       lh_json_str(def, "dataset"));
        }
        json_decref(m);
        pthread_mutex_lock(&v->mu);
        if (find(v, name) >= 0) {
            pthread_mutex_unlock(&v->mu);
            lh_log(LH_LOG_ERROR, "vector_definition_duplicate", "{s:s}", "key", keys[i]);
            json_object_set_new(spared, name, json_true());
            vindex_free(v, ix);
        } else {
            insert(v, ix);
            pthread_mutex_unlock(&v->mu);
        }
        free(name);
    }
    lh_storage_keys_free(keys);
}

lh_vectors *lh_vectors_open(const lh_vectors_config *vc, lh_error *err)
{
    lh_vectors *v = lh_xcalloc(1, sizeof(*v));
    v->vc = *vc;
    v->tmp_dir = lh_xasprintf("%s/_tmp/vectors-%ld", vc->cfg->data_dir, (long)getpid());
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->def_mu, NULL);
    pthread_mutex_init(&v->ev_mu, NULL);
    pthread_cond_init(&v->ev_cv, NULL);
    v->events = json_array();
    atomic_init(&v->embed_calls, 0);
    lh_vstore_init(v);
    json_t *spared = json_object();
    load_defs(v, spared);
    sweep(v, spared);
    json_decref(spared);
    lh_catalog_set_event_tap(vc->cat, tap, v);
    if (pthread_create(&v->bg, NULL, bg_main, v) != 0) {
        lh_error_set(err, LH_EINTERNAL, "cannot start the vector module's background thread");
        lh_vectors_close(v);
        return NULL;
    }
    v->bg_started = true;
    /* issue 14 item 8: the opt-in tuning agent (autotune.c), stopped by lh_vectors_stop */
    if (vc->cfg->vector_tune_agent &&
        !(v->tune_agent = lh_vtune_agent_start(v, vc->cfg->vector_tune_max_per_hour,
                                               vc->cfg->vector_tune_cooldown_s, err))) {
        lh_vectors_close(v);
        return NULL;
    }
    lh_log(LH_LOG_INFO, "vectors_opened", "{s:I}", "indexes", (json_int_t)v->n);
    return v;
}

void lh_vectors_stop(lh_vectors *v)
{
    if (!v)
        return;
    /* The tuning agent first: it submits jobs and its trial may be running. */
    lh_vtune_agent_stop(v->tune_agent);
    v->tune_agent = NULL;
    /* After this returns the tap is not running and will not run again. */
    lh_catalog_set_event_tap(v->vc.cat, NULL, NULL);
    pthread_mutex_lock(&v->ev_mu);
    v->stopping = true;
    pthread_cond_broadcast(&v->ev_cv);
    pthread_mutex_unlock(&v->ev_mu);
    if (v->bg_started)
        pthread_join(v->bg, NULL);
    v->bg_started = false;
}

lh_vactive **lh_vectors_active_slot(lh_vectors *v)
{
    return &v->active;
}

void lh_vectors_close(lh_vectors *v)
{
    if (!v)
        return;
    lh_vectors_stop(v);
    for (size_t i = 0; i < v->n; i++)
        vindex_free(v, v->items[i]);
    free(v->items);
    for (size_t i = 0; i < v->n_dead_emb; i++)
        lh_embedder_free(v->dead_emb[i]);
    free(v->dead_emb);
    lh_vstore_close(v);
    lh_vactive_free(v->active);
    lh_fs_remove_tree(v->tmp_dir, NULL);
    free(v->tmp_dir);
    json_decref(v->events);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->def_mu);
    pthread_mutex_destroy(&v->ev_mu);
    pthread_cond_destroy(&v->ev_cv);
    free(v);
}
