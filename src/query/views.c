/*
 * views.c: one DuckDB view per dataset, kept in step with the catalog and the buckets.
 *
 * For a dataset `people` whose manifest lists files [a, b] in bucket B:
 *   CREATE OR REPLACE VIEW "people"        AS SELECT * FROM read_parquet(['<B>/a', '<B>/b'])
 *   CREATE OR REPLACE VIEW "__raw__people" AS (the same; erasure will make them differ)
 *
 * The engine keeps its own registry of what it has applied (name, bucket, file keys),
 * changed only by the catalog listener and seeding, both under eng->ddl_mu:
 *
 *   - catalog listener (runs under the catalog's lock, so calls arrive in commit order):
 *     update the registry and apply the change to the current generation;
 *   - storage listener (buckets added/removed): open a new generation with the new roots
 *     (no lock held: opening is slow), then under ddl_mu replay the registry into it and
 *     swap it in. Replaying our registry rather than calling lh_catalog_list means this
 *     listener never takes the catalog lock, so it cannot deadlock whatever its caller
 *     holds, and no catalog change can fall between a list and the swap (changes wait
 *     for ddl_mu, then land in the new generation);
 *   - seeding at open: subscribe first, then lh_catalog_list (which takes the catalog lock,
 *     so never under ddl_mu); if a listener call happened meanwhile the list may be older
 *     than the registry, so list again until none did.
 *
 * A view that cannot be created (a file missing, a bucket gone) is dropped and logged: a
 * stale view over old files is worse than a clear "table does not exist".
 */
#include "query_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct lh_view_def {
    char *name;
    char *bucket;
    char **keys;
    size_t nkeys;
};

static void def_clear(lh_view_def *d)
{
    free(d->name);
    free(d->bucket);
    for (size_t i = 0; i < d->nkeys; i++)
        free(d->keys[i]);
    free(d->keys);
    memset(d, 0, sizeof(*d));
}

static void def_from_manifest(lh_view_def *d, const char *name, const json_t *m)
{
    const char *bucket = lh_json_str(m, "bucket");
    const json_t *files = json_object_get(m, "files");
    memset(d, 0, sizeof(*d));
    d->name = lh_xstrdup(name);
    /* legacy manifests without a bucket live in primary */
    d->bucket = lh_xstrdup(bucket && *bucket ? bucket : LH_BUCKET_PRIMARY);
    d->keys = lh_xcalloc(json_array_size(files) + 1, sizeof(char *));
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *key = lh_json_str(f, "key");
        if (key)
            d->keys[d->nkeys++] = lh_xstrdup(key);
    }
}

/* Position of name in the registry (case-insensitive, as SQL names are), or where it
 * would go. */
static size_t registry_find(const lh_engine *eng, const char *name, bool *found)
{
    size_t lo = 0, hi = eng->nviews;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcasecmp(eng->views[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static lh_view_def *registry_put(lh_engine *eng, const char *name, const json_t *manifest)
{
    bool found;
    size_t pos = registry_find(eng, name, &found);
    if (found) {
        def_clear(&eng->views[pos]);
    } else {
        if (eng->nviews == eng->cap_views) {
            eng->cap_views = eng->cap_views ? eng->cap_views * 2 : 16;
            eng->views = lh_xrealloc(eng->views, eng->cap_views * sizeof(lh_view_def));
        }
        memmove(&eng->views[pos + 1], &eng->views[pos], (eng->nviews - pos) * sizeof(lh_view_def));
        eng->nviews++;
    }
    def_from_manifest(&eng->views[pos], name, manifest);
    return &eng->views[pos];
}

static void registry_remove(lh_engine *eng, const char *name)
{
    bool found;
    size_t pos = registry_find(eng, name, &found);
    if (!found)
        return;
    def_clear(&eng->views[pos]);
    memmove(&eng->views[pos], &eng->views[pos + 1], (eng->nviews - pos - 1) * sizeof(lh_view_def));
    eng->nviews--;
}

/* ---------------------------------------------------------------- DDL */

static void view_drop(lh_gen *g, const char *name)
{
    char *raw = lh_xasprintf(LH_RAW_PREFIX "%s", name);
    const char *rels[] = {name, raw};
    for (size_t i = 0; i < 2; i++) {
        char *ident = lh_sql_ident(rels[i]);
        char *sql = lh_xasprintf("DROP VIEW IF EXISTS %s", ident);
        lh_error err;
        if (lh_duck_exec(g->ddl, sql, &err) != 0)
            lh_log(LH_LOG_WARN, "view_drop_failed", "{s:s,s:s}", "view", rels[i], "message",
                   err.message);
        free(sql);
        free(ident);
    }
    free(raw);
}

/* "SELECT * FROM read_parquet([...])" over the dataset's files; NULL + err when a path
 * cannot be resolved. Caller frees. */
static char *view_select(lh_engine *eng, const lh_view_def *d, lh_error *err)
{
    lh_buf b;
    lh_buf_init(&b);
    lh_buf_puts(&b, "SELECT * FROM read_parquet([");
    for (size_t i = 0; i < d->nkeys; i++) {
        char *path = lh_storage_path(eng->st, d->bucket, d->keys[i], err);
        if (!path) {
            lh_buf_free(&b);
            return NULL;
        }
        char *lit = lh_sql_literal(path);
        lh_buf_printf(&b, "%s%s", i ? ", " : "", lit);
        free(lit);
        free(path);
    }
    lh_buf_puts(&b, "])");
    return b.data;
}

static void view_create(lh_engine *eng, lh_gen *g, const lh_view_def *d)
{
    lh_error err;
    char *select = NULL, *raw = lh_xasprintf(LH_RAW_PREFIX "%s", d->name);
    const char *rels[] = {d->name, raw};
    if (d->nkeys == 0) {
        lh_error_set(&err, LH_EINVAL, "the manifest lists no files");
        goto fail;
    }
    select = view_select(eng, d, &err);
    if (!select)
        goto fail;
    for (size_t i = 0; i < 2; i++) {
        char *ident = lh_sql_ident(rels[i]);
        char *sql = lh_xasprintf("CREATE OR REPLACE VIEW %s AS %s", ident, select);
        int rc = lh_duck_exec(g->ddl, sql, &err);
        free(sql);
        free(ident);
        if (rc != 0)
            goto fail;
    }
    goto out;
fail:
    lh_log(LH_LOG_WARN, "view_create_failed", "{s:s,s:s}", "dataset", d->name, "message",
           err.message);
    view_drop(g, d->name);
out:
    free(select);
    free(raw);
}

void lh_views_apply_all(lh_engine *eng, lh_gen *g)
{
    for (size_t i = 0; i < eng->nviews; i++)
        view_create(eng, g, &eng->views[i]);
}

/* ---------------------------------------------------------------- listeners */

static void on_dataset(void *ctx, const char *name, const json_t *manifest)
{
    lh_engine *eng = ctx;
    /* After the catalog's change, before any query can see the new view: verdicts the
     * firewall reached on the old catalog are dropped (verdicts.c). */
    lh_verdicts_invalidate(eng->verdicts);
    pthread_mutex_lock(&eng->ddl_mu);
    if (!eng->listening || !eng->cur)
        goto out;
    eng->view_events++;
    if (manifest) {
        view_create(eng, eng->cur, registry_put(eng, name, manifest));
    } else {
        registry_remove(eng, name);
        view_drop(eng->cur, name);
    }
out:
    pthread_mutex_unlock(&eng->ddl_mu);
}

void lh_views_on_buckets(void *ctx)
{
    lh_engine *eng = ctx;
    lh_error err;
    char **roots = NULL;
    lh_gen *g = NULL, *old = NULL;
    lh_verdicts_invalidate(eng->verdicts);

    pthread_mutex_lock(&eng->regen_mu);
    pthread_mutex_lock(&eng->ddl_mu);
    bool live = eng->listening && eng->cur;
    pthread_mutex_unlock(&eng->ddl_mu);
    if (!live)
        goto out;
    roots = lh_storage_roots(eng->st);
    g = lh_gen_open(eng, roots, &err);
    if (!g) {
        /* The old generation keeps serving; a new bucket stays unreadable until the next
         * bucket change. */
        lh_log(LH_LOG_ERROR, "query_regeneration_failed", "{s:s}", "message", err.message);
        goto out;
    }
    pthread_mutex_lock(&eng->ddl_mu);
    if (eng->listening) {
        lh_views_apply_all(eng, g);
        pthread_mutex_lock(&eng->gen_mu);
        old = eng->cur;
        eng->cur = g;
        pthread_mutex_unlock(&eng->gen_mu);
        lh_log(LH_LOG_INFO, "query_regenerated", "{s:I,s:I}", "generation", (json_int_t)g->seq,
               "views", (json_int_t)eng->nviews);
        g = NULL;
    }
    pthread_mutex_unlock(&eng->ddl_mu);
    /* The engine's reference on the old generation; running queries keep theirs. */
    if (old)
        lh_gen_unref(eng, old);
    if (g)
        lh_gen_unref(eng, g);
out:
    if (roots) {
        for (size_t i = 0; roots[i]; i++)
            free(roots[i]);
        free(roots);
    }
    pthread_mutex_unlock(&eng->regen_mu);
}

/* Makes the registry (and the current generation) exactly the datasets of `list`. */
static void registry_replace(lh_engine *eng, const json_t *list)
{
    for (size_t i = 0; i < eng->nviews; i++) {
        bool listed = false;
        size_t k;
        const json_t *m;
        json_array_foreach(list, k, m)
        {
            const char *name = lh_json_str(m, "name");
            if (name && strcasecmp(name, eng->views[i].name) == 0)
                listed = true;
        }
        if (!listed)
            view_drop(eng->cur, eng->views[i].name);
    }
    for (size_t i = 0; i < eng->nviews; i++)
        def_clear(&eng->views[i]);
    eng->nviews = 0;
    size_t k;
    const json_t *m;
    json_array_foreach(list, k, m)
    {
        const char *name = lh_json_str(m, "name");
        if (name)
            view_create(eng, eng->cur, registry_put(eng, name, m));
    }
}

int lh_views_start(lh_engine *eng, lh_error *err)
{
    (void)err;
    lh_catalog_set_listener(eng->cat, on_dataset, eng);
    lh_catalog_set_retirer(eng->cat, lh_engine_retire, eng);
    for (;;) {
        pthread_mutex_lock(&eng->ddl_mu);
        uint64_t seen = eng->view_events;
        pthread_mutex_unlock(&eng->ddl_mu);
        json_t *list = lh_catalog_list(eng->cat);
        pthread_mutex_lock(&eng->ddl_mu);
        bool settled = eng->view_events == seen;
        if (settled)
            registry_replace(eng, list);
        pthread_mutex_unlock(&eng->ddl_mu);
        json_decref(list);
        if (settled)
            return 0;
    }
}

void lh_views_stop(lh_engine *eng)
{
    lh_catalog_set_listener(eng->cat, NULL, NULL);
    lh_catalog_set_retirer(eng->cat, NULL, NULL);
    lh_storage_set_listener(eng->st, NULL, NULL);
    pthread_mutex_lock(&eng->ddl_mu);
    eng->listening = false;
    pthread_mutex_unlock(&eng->ddl_mu);
}

void lh_views_free(lh_engine *eng)
{
    for (size_t i = 0; i < eng->nviews; i++)
        def_clear(&eng->views[i]);
    free(eng->views);
    eng->views = NULL;
    eng->nviews = eng->cap_views = 0;
}
