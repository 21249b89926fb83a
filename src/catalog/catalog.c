/*
 * catalog.c: the in-memory catalog of datasets and its persistence as manifests.
 *
 * Each dataset is one manifest (a jansson object) in a sorted array keyed by the
 * lowercased name; the object on disk at `_catalog/datasets/<name>.json` in the dataset's
 * bucket is the truth, the array a cache rebuilt at open.
 *
 * Locking:
 *   - `mu` serialises mutations (commit, patch, delete, bucket add/remove) from the check
 *     of the current version to the listener call, so listeners see changes in commit
 *     order and an expected_version check cannot race.
 *   - `rw` guards the array: readers take it shared and deep-copy what they return;
 *     mutators take it exclusive only to swap a manifest in or out. A mutator reads the
 *     array without `rw` because only holders of `mu` change it.
 *   Lock order: mu, then rw. Readers never take mu, so a listener (run under mu) may read.
 *
 * Crash safety:
 *   - The manifest write (atomic, fsynced) is the linearization point of every change.
 *     Parts are committed before the manifest that references them; parts a manifest no
 *     longer references are deleted only after the new manifest is durable and the
 *     listener ran. A crash in between leaves unreferenced objects under
 *     datasets/<name>/ or staging files, which the sweep at open removes.
 *   - A delete removes the manifest first; its parts become orphans if we crash next.
 *   - A commit whose outcome is unknown is treated as unknown: when the manifest's rename
 *     (or unlink) took effect but the folder fsync failed (LH_KIND_NOT_DURABLE), the new
 *     state is what disk shows, so it is kept and served (rolled forward), but a power cut
 *     could still bring the old manifest back: nothing the old manifest references is
 *     deleted then; the sweep at the next start removes whichever parts the surviving
 *     manifest does not reference. A failure before the rename is a provable rollback:
 *     memory keeps the old manifest and the caller removes its new part.
 *   - Manifests that cannot be read are never deleted, and the sweep leaves the objects
 *     under datasets/<name>/ of such a name alone: a damaged manifest must not cost data.
 */
#include "catalog_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MANIFEST_PREFIX "_catalog/datasets/"
#define MANIFEST_SUFFIX ".json"
#define MANIFEST_MAX ((size_t)256 << 20)
#define DATASETS_PREFIX "datasets/"

/* A list of strings (names, keys). */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static void strlist_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = lh_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = lh_xstrdup(s);
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static bool strlist_has_case(const strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i], s) == 0)
            return true;
    return false;
}

static char *lower(const char *s)
{
    char *l = lh_xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

/* ---------------------------------------------------------------- the array */

/* Index of name (case-insensitive), or -(insertion point) - 1. */
static ssize_t find(const lh_catalog *cat, const char *name)
{
    char *key = lower(name);
    size_t lo = 0, hi = cat->n;
    ssize_t found = -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cat->items[mid].lname, key);
        if (c == 0) {
            found = (ssize_t)mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    free(key);
    return found >= 0 ? found : -(ssize_t)lo - 1;
}

/* The manifest of name, borrowed (valid while mu or rw is held), or NULL. */
static json_t *lookup(const lh_catalog *cat, const char *name)
{
    ssize_t i = find(cat, name);
    return i >= 0 ? cat->items[i].m : NULL;
}

json_t *lh_catalog__lookup(const lh_catalog *cat, const char *name)
{
    return lookup(cat, name);
}

/* Puts m (ownership taken) under its name, replacing any previous manifest. Caller holds
 * mu; takes rw. */
static void store(lh_catalog *cat, json_t *m)
{
    const char *name = lh_json_str(m, "name");
    pthread_rwlock_wrlock(&cat->rw);
    ssize_t i = find(cat, name);
    if (i >= 0) {
        json_decref(cat->items[i].m);
        cat->items[i].m = m;
    } else {
        size_t pos = (size_t)(-i - 1);
        if (cat->n == cat->cap) {
            cat->cap = cat->cap ? cat->cap * 2 : 32;
            cat->items = lh_xrealloc(cat->items, cat->cap * sizeof(*cat->items));
        }
        memmove(cat->items + pos + 1, cat->items + pos, (cat->n - pos) * sizeof(*cat->items));
        cat->items[pos] = (entry){lower(name), m};
        cat->n++;
    }
    pthread_rwlock_unlock(&cat->rw);
}

/* Drops name from the array. Caller holds mu; takes rw. */
static void unstore(lh_catalog *cat, const char *name)
{
    pthread_rwlock_wrlock(&cat->rw);
    ssize_t i = find(cat, name);
    if (i >= 0) {
        free(cat->items[i].lname);
        json_decref(cat->items[i].m);
        memmove(cat->items + i, cat->items + i + 1, (cat->n - (size_t)i - 1) * sizeof(*cat->items));
        cat->n--;
    }
    pthread_rwlock_unlock(&cat->rw);
}

/* ---------------------------------------------------------------- persistence */

static char *manifest_key(const char *name)
{
    return lh_xasprintf(MANIFEST_PREFIX "%s" MANIFEST_SUFFIX, name);
}

/* Writes m durably to its bucket (the linearization point of a change). */
static int manifest_write(lh_catalog *cat, const json_t *m, lh_error *err)
{
    char *key = manifest_key(lh_json_str(m, "name"));
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int rc = text ? lh_storage_put(cat->st, lh_json_str(m, "bucket"), key, text, strlen(text), err)
                  : lh_error_set(err, LH_EINTERNAL, "cannot render the manifest");
    free(text);
    free(key);
    return rc;
}

/* Keys of m's files, copied (they are deleted after m is gone). */
static void file_keys(const json_t *m, strlist *out)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f)
    {
        const char *key = lh_json_str(f, "key");
        if (key)
            strlist_push(out, key);
    }
}

/* Deletes objects after the manifest that referenced them is gone. Failures are only
 * logged: the orphan sweep at next open finishes the job. */
static void delete_objects(lh_catalog *cat, const char *bucket, const strlist *keys,
                           const char *dataset)
{
    if (cat->retirer) {
        cat->retirer(cat->retirer_ctx, bucket, keys->v, keys->n);
        return;
    }
    for (size_t i = 0; i < keys->n; i++) {
        lh_error err;
        if (lh_storage_delete(cat->st, bucket, keys->v[i], &err) != 0)
            lh_log(LH_LOG_WARN, "dataset_object_delete_failed", "{s:s,s:s,s:s,s:s}", "dataset",
                   dataset, "bucket", bucket, "key", keys->v[i], "error", err.message);
    }
}

/* Tells the listener (the query engine) that name now has manifest m (NULL: deleted).
 * A listener that cannot apply the change fails it: err says why, and the caller undoes or
 * refuses the change. */
static int notify(lh_catalog *cat, const char *name, const json_t *m, lh_error *err)
{
    if (!cat->listener)
        return 0;
    lh_error lerr;
    int rc = cat->listener(cat->listener_ctx, name, m, &lerr);
    if (rc)
        lh_error_setk(err, lerr.code, lh_error_kind(&lerr), "%s", lerr.message);
    return rc;
}

/* Puts the listener back on name's previous manifest (NULL: none) after a change it had
 * accepted could not be made durable. Rebuilding what served a moment ago should not fail;
 * if it does, the dataset stays as the listener left it and the failure is logged. */
static void notify_undo(lh_catalog *cat, const char *name, const json_t *previous)
{
    lh_error err;
    if (notify(cat, name, previous, &err) != 0)
        lh_log(LH_LOG_ERROR, "catalog_listener_undo_failed", "{s:s,s:s}", "dataset", name,
               "message", err.message);
}

/* Makes a new manifest the dataset's truth. The listener applies it first: when the query
 * engine cannot serve it (DuckDB refuses the view), nothing was written and the caller
 * fails with the engine's reason, rather than answering 201 over a dataset that then says
 * "table does not exist". Then the durable write (the linearization point), then memory;
 * a failed write puts the listener back on the previous manifest. Takes m in every case.
 * On success *manifest_out (if not NULL) gets a copy and *name_out the dataset's name
 * (caller frees); *durable is false when the write's outcome is unknown (rolled forward:
 * the caller must not delete what the old manifest referenced). Caller holds mu. */
static int publish(lh_catalog *cat, json_t *m, json_t **manifest_out, char **name_out,
                   bool *durable, lh_error *err)
{
    *durable = true;
    lh_error local;
    if (!err)
        err = &local; /* the outcome decides what we do, whether or not the caller cares */
    const char *name = lh_json_str(m, "name");
    int rc = notify(cat, name, m, err);
    if (rc) {
        json_decref(m);
        return rc;
    }
    rc = manifest_write(cat, m, err);
    if (rc && lh_error_not_durable(err)) {
        /* Rolled forward: the listener keeps serving the new manifest the disk now shows. */
        lh_log(LH_LOG_WARN, "dataset_commit_not_durable", "{s:s,s:s}", "dataset", name, "error",
               err->message);
        lh_error_clear(err);
        *durable = false;
        rc = 0;
    }
    if (rc) {
        notify_undo(cat, name, lookup(cat, name));
        json_decref(m);
        return rc;
    }
    if (manifest_out)
        *manifest_out = json_deep_copy(m);
    *name_out = lh_xstrdup(name);
    store(cat, m);
    return 0;
}

/* ---------------------------------------------------------------- loading */

/* Loads the manifests of one bucket. Names whose manifest exists but was not loaded
 * (unreadable, invalid, or clashing with a dataset of another bucket) go to *skipped so
 * the sweep spares their objects. With notify_each, the listener hears of each dataset
 * (buckets added at runtime). Caller holds mu. Returns 0, or an error when the bucket's
 * manifests could not be listed (then nothing may be swept there). */
static int load_bucket(lh_catalog *cat, const char *bucket, bool notify_each, strlist *skipped,
                       lh_error *err)
{
    char **keys = NULL;
    size_t n = 0;
    int rc = lh_storage_list(cat->st, bucket, MANIFEST_PREFIX, &keys, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *key = keys[i];
        const char *base = key + strlen(MANIFEST_PREFIX);
        size_t bl = strlen(base), sl = strlen(MANIFEST_SUFFIX);
        if (strchr(base, '/') || bl <= sl || strcmp(base + bl - sl, MANIFEST_SUFFIX) != 0)
            continue;
        char *name = lh_xasprintf("%.*s", (int)(bl - sl), base);
        char *text = NULL;
        size_t len = 0;
        json_t *m = NULL;
        lh_error lerr;
        json_error_t jerr;
        const char *problem = NULL;
        if (lh_storage_get(cat->st, bucket, key, MANIFEST_MAX, &text, &len, &lerr) != 0) {
            problem = lerr.message;
        } else {
            m = json_loadb(text, len, 0, &jerr);
            if (!m || !json_is_object(m))
                problem = m ? "not a JSON object" : jerr.text;
            else if (lh_manifest__check_loaded(m, name, &lerr) != 0)
                problem = lerr.message;
            else if (lookup(cat, name))
                problem = "a dataset of that name (case-insensitive) is already loaded";
            else if (lh_catalog__view_name_free(cat, name, &lerr) != 0)
                problem = lerr.message; /* a bucket added at runtime; views share names */
        }
        if (problem) {
            lh_log(LH_LOG_WARN, "dataset_manifest_skipped", "{s:s,s:s,s:s}", "bucket", bucket,
                   "key", key, "reason", problem);
            if (skipped)
                strlist_push(skipped, name);
            json_decref(m);
        } else {
            /* The bucket a manifest was found in is where its objects are, whatever an
             * older registry called it. */
            json_object_set_new(m, "bucket", json_string(bucket));
            /* A dataset the engine cannot serve is skipped like an unreadable manifest
             * (logged, objects spared, retried at the next start) rather than listed and
             * then "table does not exist". */
            if (notify_each && notify(cat, name, m, &lerr) != 0) {
                lh_log(LH_LOG_WARN, "dataset_manifest_skipped", "{s:s,s:s,s:s}", "bucket", bucket,
                       "key", key, "reason", lerr.message);
                if (skipped)
                    strlist_push(skipped, name);
                json_decref(m);
            } else {
                store(cat, m);
            }
        }
        free(text);
        free(name);
    }
    lh_storage_keys_free(keys);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes objects under datasets/<name>/ of bucket that no loaded manifest references,
 * except for names in skipped, and stale staging files. Runs at open only, when no ingest
 * is in flight (an in-flight part is unreferenced until its manifest commits). */
static void sweep_bucket(lh_catalog *cat, const char *bucket, const strlist *skipped)
{
    lh_error err;
    static const char *const staged_prefixes[] = {DATASETS_PREFIX, MANIFEST_PREFIX};
    for (size_t i = 0; i < sizeof(staged_prefixes) / sizeof(staged_prefixes[0]); i++)
        if (lh_storage_sweep_staged(cat->st, bucket, staged_prefixes[i], &err) < 0)
            lh_log(LH_LOG_WARN, "staging_sweep_failed", "{s:s,s:s}", "bucket", bucket, "error",
                   err.message);

    strlist refs = {0};
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(lh_json_str(cat->items[i].m, "bucket"), bucket) == 0)
            file_keys(cat->items[i].m, &refs);
    if (refs.n)
        qsort(refs.v, refs.n, sizeof(*refs.v), cmp_str);

    char **keys = NULL;
    size_t n = 0;
    if (lh_storage_list(cat->st, bucket, DATASETS_PREFIX, &keys, &n, &err) != 0) {
        lh_log(LH_LOG_WARN, "orphan_sweep_failed", "{s:s,s:s}", "bucket", bucket, "error",
               err.message);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *rest = keys[i] + strlen(DATASETS_PREFIX);
        const char *slash = strchr(rest, '/');
        if (!slash)
            continue; /* not under datasets/<name>/: not ours to judge */
        /* datasets/<name>/_vectors/ holds the dataset's vector indexes (issue 14): no
         * manifest names them; the vector module sweeps them against its definitions. */
        if (strncmp(slash + 1, "_vectors/", 9) == 0)
            continue;
        char *name = lh_xasprintf("%.*s", (int)(slash - rest), rest);
        bool spared = strlist_has_case(skipped, name) ||
                      (refs.n && bsearch(&keys[i], refs.v, refs.n, sizeof(*refs.v), cmp_str));
        free(name);
        if (spared)
            continue;
        if (lh_storage_delete(cat->st, bucket, keys[i], &err) == 0)
            lh_log(LH_LOG_INFO, "orphan_object_removed", "{s:s,s:s}", "bucket", bucket, "key",
                   keys[i]);
        else
            lh_log(LH_LOG_WARN, "orphan_object_delete_failed", "{s:s,s:s,s:s}", "bucket", bucket,
                   "key", keys[i], "error", err.message);
    }
out:
    lh_storage_keys_free(keys);
    strlist_free(&refs);
}

lh_catalog *lh_catalog_open(lh_storage *st, lh_error *err)
{
    lh_catalog *cat = lh_xcalloc(1, sizeof(*cat));
    cat->st = st;
    cat->tomb = lh_tombstones__new();
    pthread_mutex_init(&cat->mu, NULL);
    pthread_rwlock_init(&cat->rw, NULL);
    cat->journal = lh_journal__open(st, err);
    if (!cat->journal) {
        lh_catalog_close(cat);
        return NULL;
    }
    cat->profiles = lh_profiles__open(st, err);
    if (!cat->profiles) {
        lh_catalog_close(cat);
        return NULL;
    }
    json_t *buckets = lh_storage_buckets_json(st);
    strlist names = {0};
    /* primary first, so a name clash across buckets resolves the same way every start */
    strlist_push(&names, LH_BUCKET_PRIMARY);
    size_t i;
    json_t *b;
    json_array_foreach(buckets, i, b)
    {
        const char *name = lh_json_str(b, "name");
        if (strcmp(name, LH_BUCKET_PRIMARY) != 0 && json_is_true(json_object_get(b, "available")))
            strlist_push(&names, name);
    }
    json_decref(buckets);

    strlist *skipped = lh_xcalloc(names.n, sizeof(*skipped));
    bool *listed = lh_xcalloc(names.n, sizeof(*listed));
    pthread_mutex_lock(&cat->mu);
    for (i = 0; i < names.n; i++) {
        lh_error lerr;
        if (load_bucket(cat, names.v[i], false, &skipped[i], &lerr) == 0) {
            listed[i] = true;
        } else if (i == 0) {
            /* Without primary's manifests the server would look empty and the sweep could
             * not run safely: refuse to start instead. */
            lh_error_set(err, lerr.code, "cannot read the catalog: %s", lerr.message);
            pthread_mutex_unlock(&cat->mu);
            goto fail;
        } else {
            lh_log(LH_LOG_WARN, "bucket_catalog_unreadable", "{s:s,s:s}", "bucket", names.v[i],
                   "error", lerr.message);
        }
    }
    for (i = 0; i < names.n; i++)
        if (listed[i])
            sweep_bucket(cat, names.v[i], &skipped[i]);
    lh_catalog__views_load(cat);
    for (i = 0; i < names.n; i++)
        if (listed[i])
            lh_tombstones__load(cat, names.v[i], false);
    pthread_mutex_unlock(&cat->mu);
    lh_log(LH_LOG_INFO, "catalog_opened", "{s:i}", "datasets", (json_int_t)cat->n);
    goto out;
fail:
    lh_catalog_close(cat);
    cat = NULL;
out:
    for (i = 0; i < names.n; i++)
        strlist_free(&skipped[i]);
    free(skipped);
    free(listed);
    strlist_free(&names);
    return cat;
}

void lh_catalog_close(lh_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++) {
        free(cat->items[i].lname);
        json_decref(cat->items[i].m);
    }
    free(cat->items);
    lh_profiles__close(cat->profiles);
    lh_catalog__views_free(cat);
    lh_tombstones__free(cat->tomb);
    lh_journal__close(cat->journal);
    pthread_mutex_destroy(&cat->mu);
    pthread_rwlock_destroy(&cat->rw);
    free(cat);
}

void lh_catalog_set_retirer(lh_catalog *cat, lh_catalog_retirer fn, void *ctx)
{
    pthread_mutex_lock(&cat->mu);
    cat->retirer = fn;
    cat->retirer_ctx = ctx;
    pthread_mutex_unlock(&cat->mu);
}

void lh_catalog_set_listener(lh_catalog *cat, lh_catalog_listener fn, void *ctx)
{
    pthread_mutex_lock(&cat->mu);
    cat->listener = fn;
    cat->listener_ctx = ctx;
    pthread_mutex_unlock(&cat->mu);
}

lh_journal *lh_catalog__journal(lh_catalog *cat)
{
    return cat->journal;
}

lh_profiles *lh_catalog__profiles(lh_catalog *cat)
{
    return cat->profiles;
}

/* ---------------------------------------------------------------- reads */

json_t *lh_catalog_list(lh_catalog *cat)
{
    json_t *out = json_array();
    pthread_rwlock_rdlock(&cat->rw);
    for (size_t i = 0; i < cat->n; i++)
        json_array_append_new(out, json_deep_copy(cat->items[i].m));
    pthread_rwlock_unlock(&cat->rw);
    return out;
}

json_t *lh_catalog_get(lh_catalog *cat, const char *name, lh_error *err)
{
    pthread_rwlock_rdlock(&cat->rw);
    json_t *m = name ? lookup(cat, name) : NULL;
    json_t *copy = m ? json_deep_copy(m) : NULL;
    pthread_rwlock_unlock(&cat->rw);
    if (!copy)
        lh_error_set(err, LH_ENOTFOUND, "no dataset named '%s'", name ? name : "");
    return copy;
}

bool lh_catalog_exists(lh_catalog *cat, const char *name)
{
    if (!name)
        return false;
    pthread_rwlock_rdlock(&cat->rw);
    bool found = lookup(cat, name) != NULL;
    pthread_rwlock_unlock(&cat->rw);
    return found;
}

/* ---------------------------------------------------------------- ingest commits */

static const struct {
    const char *name;
    lh_ingest_mode mode;
} modes[] = {
    {"create", LH_MODE_CREATE},
    {"replace", LH_MODE_REPLACE},
    {"append", LH_MODE_APPEND},
};

int lh_ingest_mode_parse(const char *s, lh_ingest_mode *mode, lh_error *err)
{
    if (!s || !*s) {
        *mode = LH_MODE_CREATE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(s, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return 0;
        }
    return lh_error_set(err, LH_EINVAL, "unknown ingest mode '%s' (modes: create, replace, append)",
                        s);
}

static int commit_validate(lh_catalog *cat, const lh_catalog_commit *c, lh_error *err)
{
    if (lh_name_validate(c->name, "dataset name", err) != 0)
        return LH_EINVAL;
    if (c->mode != LH_MODE_CREATE && c->mode != LH_MODE_REPLACE && c->mode != LH_MODE_APPEND)
        return lh_error_set(err, LH_EINVAL, "unknown ingest mode %d", (int)c->mode);
    if (!lh_storage_bucket_exists(cat->st, c->bucket))
        return lh_storage_unknown_bucket(cat->st, c->bucket ? c->bucket : "", err);
    if (lh_storage_key_validate(c->part_key, err) != 0)
        return LH_EINVAL;
    if (c->part_rows < 0 || c->part_bytes < 0)
        return lh_error_set(err, LH_EINVAL, "part '%s' has a negative row or byte count",
                            c->part_key);
    if (c->lineage && !json_is_object(c->lineage))
        return lh_error_set(err, LH_EINVAL, "lineage must be an object");
    if (lh_manifest__schema_validate(c->schema, err) != 0)
        return LH_EINVAL;
    if (lh_storage_size(cat->st, c->bucket, c->part_key) < 0)
        return lh_error_set(err, LH_EINVAL, "part '%s' does not exist in bucket '%s'", c->part_key,
                            c->bucket);
    if (c->n_supersede && c->mode != LH_MODE_APPEND)
        return lh_error_set(err, LH_EINVAL, "only an append can supersede rows by key");
    if (c->n_supersede && (!c->supersede_column || !c->supersede_keys))
        return lh_error_set(err, LH_EINVAL, "an upsert names its key column and its keys");
    return 0;
}

static json_t *file_entry(const lh_catalog_commit *c, const char *kind, const char *now)
{
    return json_pack("{s:s,s:I,s:I,s:s,s:s}", "key", c->part_key, "rows", (json_int_t)c->part_rows,
                     "bytes", (json_int_t)c->part_bytes, "kind", kind, "created_at", now);
}

static json_t *lineage_of(const lh_catalog_commit *c, const char *now)
{
    json_t *l = c->lineage ? json_deep_copy(c->lineage) : json_object();
    json_object_set_new(l, "ingested_at", json_string(now));
    json_object_set_new(l, "actor", json_string(c->actor ? c->actor : "anonymous"));
    return l;
}

/* Sets the fields an ingest decides (replace and create); everything else on m stays. */
static void set_ingest_fields(json_t *m, const lh_catalog_commit *c, const char *now)
{
    char id[33];
    if (!c->new_id)
        lh_random_hex(id, 32);
    json_object_set_new(m, "id", json_string(c->new_id ? c->new_id : id));
    json_t *files = json_array();
    json_array_append_new(files, file_entry(c, "base", now));
    json_object_set_new(m, "files", files);
    json_object_set_new(m, "compression", json_string(c->compression ? c->compression : "zstd"));
    json_object_set_new(m, "schema", json_deep_copy(c->schema));
    json_object_set_new(m, "columns", lh_manifest__columns_detect(c->schema, c->content_pii));
}

/* A new manifest, fields in the documented order. */
static json_t *manifest_new(const lh_catalog_commit *c, const char *now)
{
    json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:i}", "format_version", LH_MANIFEST_FORMAT, "id", "",
                          "name", c->name, "bucket", c->bucket, "version", 1);
    set_ingest_fields(m, c, now);
    json_object_set_new(m, "row_count", json_integer(0));
    json_object_set_new(m, "size_bytes", json_integer(0));
    json_object_set_new(m, "description", json_string(""));
    json_object_set_new(m, "owner", json_string(""));
    json_object_set_new(m, "sensitivity", json_string(lh_sensitivity_name(LH_SENS_NONE)));
    json_object_set_new(m, "tags", json_array());
    json_object_set_new(m, "freshness", json_null());
    json_object_set_new(m, "lineage", json_null());
    json_object_set_new(m, "human_edits", json_object());
    json_object_set_new(m, "created_at", json_string(now));
    json_object_set_new(m, "updated_at", json_string(now));
    return m;
}

/* Checks c against the current manifest `old` (NULL when absent) under mu. */
static int commit_check(const lh_catalog_commit *c, const json_t *old, lh_error *err)
{
    if (c->mode == LH_MODE_CREATE) {
        if (old)
            return lh_error_set(err, LH_EEXISTS,
                                "dataset '%s' already exists (bucket '%s'); use mode 'replace' "
                                "or 'append'",
                                lh_json_str(old, "name"), lh_json_str(old, "bucket"));
        return 0;
    }
    if (!old) {
        if (c->mode == LH_MODE_APPEND)
            return lh_error_set(err, LH_ENOTFOUND, "no dataset named '%s' to append to", c->name);
        if (c->expected_version)
            return lh_error_set(err, LH_ECONFLICT,
                                "dataset '%s' was deleted meanwhile (expected version %lld)",
                                c->name, (long long)c->expected_version);
        return 0;
    }
    const char *bucket = lh_json_str(old, "bucket");
    if (strcmp(bucket, c->bucket) != 0)
        return lh_error_set(err, LH_EINVAL,
                            "dataset '%s' lives in bucket '%s', not '%s'; %s into '%s' or "
                            "delete it first",
                            lh_json_str(old, "name"), bucket, c->bucket,
                            c->mode == LH_MODE_APPEND ? "append" : "replace", bucket);
    json_int_t version = lh_json_int(old, "version", 0);
    const char *id = lh_json_str(old, "id");
    if (c->expected_id && (!id || strcmp(id, c->expected_id) != 0))
        return lh_error_set(err, LH_ECONFLICT,
                            "dataset '%s' was deleted and created again meanwhile; retry",
                            lh_json_str(old, "name"));
    /* Appends commute: an append that read this very generation (same id: no replace,
     * delete or re-create since) is rebased onto its latest version instead of failing,
     * its part added to whatever parts landed meanwhile. The schema is re-checked against
     * the latest manifest below, so the part's cast still matches. Without expected_id we
     * cannot tell a concurrent append from a replace, so a stale version conflicts. */
    bool rebase = c->mode == LH_MODE_APPEND && c->expected_id;
    if (c->expected_version && c->expected_version != version && !rebase)
        return lh_error_set(err, LH_ECONFLICT,
                            "dataset '%s' changed meanwhile (version %lld, expected %lld); retry",
                            lh_json_str(old, "name"), (long long)version,
                            (long long)c->expected_version);
    if (c->mode == LH_MODE_APPEND) {
        if (lh_manifest__schema_same(lh_json_str(old, "name"), json_object_get(old, "schema"),
                                     c->schema, err) != 0) {
            if (rebase && c->expected_version && c->expected_version != version)
                return lh_error_set(err, LH_ECONFLICT,
                                    "dataset '%s' changed its schema meanwhile (version %lld, "
                                    "expected %lld); retry",
                                    lh_json_str(old, "name"), (long long)version,
                                    (long long)c->expected_version);
            return LH_EINVAL;
        }
        size_t i;
        const json_t *f;
        json_array_foreach(json_object_get(old, "files"), i, f)
        {
            const char *key = lh_json_str(f, "key");
            if (key && strcmp(key, c->part_key) == 0)
                return lh_error_set(err, LH_EINVAL, "part '%s' is already in dataset '%s'",
                                    c->part_key, lh_json_str(old, "name"));
        }
    }
    return 0;
}

int lh_catalog_commit_ingest(lh_catalog *cat, const lh_catalog_commit *c, json_t **manifest_out,
                             lh_error *err)
{
    if (manifest_out)
        *manifest_out = NULL;
    int rc = commit_validate(cat, c, err);
    if (rc)
        return rc;
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    strlist old_keys = {0};
    json_t *m = NULL, *tomb_undo = NULL;
    bool durable = true, committed = false;
    pthread_mutex_lock(&cat->mu);
    const json_t *old = lookup(cat, c->name);
    rc = commit_check(c, old, err);
    if (rc)
        goto out;
    /* views and datasets share the relation namespace */
    if (!old && (rc = lh_catalog__view_name_free(cat, c->name, err)) != 0)
        goto out;
    if (!old) {
        m = manifest_new(c, now);
    } else {
        /* Start from the old object so fields we do not know survive. */
        m = json_deep_copy(old);
        if (c->mode == LH_MODE_APPEND) {
            json_array_append_new(json_object_get(m, "files"), file_entry(c, "append", now));
            lh_manifest__escalate_pii(m, c->content_pii);
        } else {
            file_keys(old, &old_keys);
            set_ingest_fields(m, c, now);
        }
        json_object_set_new(m, "version", json_integer(lh_json_int(old, "version", 0) + 1));
        json_object_set_new(m, "updated_at", json_string(now));
    }
    json_object_set_new(m, "lineage", lineage_of(c, now));
    /* issue 13 (database syncs): an append that brings no watermark of its own (a file
     * append between two incremental syncs) keeps the dataset's, so the next sync does not
     * read every row again. create/replace start over. */
    const json_t *mark = old ? json_object_get(json_object_get(old, "lineage"), "watermark") : NULL;
    if (c->mode == LH_MODE_APPEND && json_is_object(mark) &&
        !json_object_get(json_object_get(m, "lineage"), "watermark"))
        json_object_set_new(json_object_get(m, "lineage"), "watermark", json_deep_copy(mark));
    lh_manifest__recount(m);
    lh_manifest__apply_human_edits(m);
    char *name = NULL;
    const char *action = !old                        ? "dataset.created"
                         : c->mode == LH_MODE_APPEND ? "dataset.appended"
                                                     : "dataset.replaced";
    /* An upsert: the set first (its new entries hide nothing until a manifest lists
     * part_key: lh_tombstone_scope), then the manifest, the linearization point of both. */
    size_t superseded = 0, erased = 0;
    if (c->n_supersede) {
        rc = lh_tombstones__supersede(cat, old, c, &tomb_undo, &superseded, &erased, err);
        if (rc)
            goto out;
    }
    json_t *details = json_pack("{s:s,s:s,s:I,s:s,s:I}", "bucket", c->bucket, "id",
                                lh_json_str(m, "id"), "version", lh_json_int(m, "version", 0),
                                "part", c->part_key, "rows", (json_int_t)c->part_rows);
    if (c->n_supersede) /* counts only: keys can identify people */
        json_object_set_new(details, "superseded",
                            json_pack("{s:s,s:I,s:I}", "key_column", c->supersede_column, "count",
                                      (json_int_t)superseded, "already_erased",
                                      (json_int_t)erased));
    rc = publish(cat, m, manifest_out, &name, &durable, err);
    m = NULL;
    if (rc) {
        json_decref(details);
        if (superseded) {
            lh_tombstones__restore(cat, lh_json_str(old, "name"), c->bucket, tomb_undo);
            tomb_undo = NULL;
        }
        goto out;
    }
    lh_log(LH_LOG_INFO, "dataset_committed", "{s:s,s:s,s:s,s:I,s:I}", "dataset", name, "mode",
           modes[c->mode].name, "actor", c->actor ? c->actor : "anonymous", "rows",
           (json_int_t)c->part_rows, "superseded", (json_int_t)superseded);
    /* Committed: a failed event append is reported (the part must stay), not undone. */
    rc = lh_catalog_record(cat, c->actor, action, name, details, err);
    if (rc) {
        committed = true;
        if (manifest_out) { /* an error returns no manifest */
            json_decref(*manifest_out);
            *manifest_out = NULL;
        }
    }
    free(name);
out:
    pthread_mutex_unlock(&cat->mu);
    json_decref(m);
    json_decref(tomb_undo);
    /* Old parts go only now: the new manifest is durable and the listener has moved the
     * query engine to the new files. A part kept by the new manifest is never deleted.
     * When durability is unknown the old manifest may come back after a crash: its parts
     * stay until the sweep at the next start. */
    if ((rc == 0 || committed) && durable && old_keys.n) {
        strlist doomed = {0};
        for (size_t i = 0; i < old_keys.n; i++)
            if (strcmp(old_keys.v[i], c->part_key) != 0)
                strlist_push(&doomed, old_keys.v[i]);
        delete_objects(cat, c->bucket, &doomed, c->name);
        strlist_free(&doomed);
    }
    strlist_free(&old_keys);
    return rc;
}

/* ---------------------------------------------------------------- delete, patch */

int lh_catalog_delete(lh_catalog *cat, const char *name, const char *actor, lh_error *err)
{
    int rc = 0;
    bool durable = true, committed = false;
    lh_error local;
    if (!err)
        err = &local; /* the outcome decides what we do, whether or not the caller cares */
    strlist keys = {0};
    char *bucket = NULL, *real = NULL;
    pthread_mutex_lock(&cat->mu);
    const json_t *m = name ? lookup(cat, name) : NULL;
    if (!m) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no dataset named '%s'", name ? name : "");
        goto out;
    }
    real = lh_xstrdup(lh_json_str(m, "name"));
    bucket = lh_xstrdup(lh_json_str(m, "bucket"));
    /* The views go first (as in publish): a failure leaves everything as it was. */
    rc = notify(cat, real, NULL, err);
    if (rc)
        goto out;
    char *key = manifest_key(real);
    rc = lh_storage_delete(cat->st, bucket, key, err); /* durable: the folder is fsynced */
    free(key);
    if (rc && lh_error_not_durable(err)) {
        /* The manifest is gone from disk as far as anyone can see, but a crash could bring
         * it back: forget the dataset, keep its parts for the sweep at the next start. */
        lh_log(LH_LOG_WARN, "dataset_delete_not_durable", "{s:s,s:s}", "dataset", real, "error",
               err->message);
        lh_error_clear(err);
        durable = false;
        rc = 0;
    }
    if (rc) {
        notify_undo(cat, real, m);
        goto out;
    }
    file_keys(m, &keys);
    json_t *details = json_pack("{s:s,s:s,s:I}", "bucket", bucket, "id",
                                lh_json_str(m, "id") ? lh_json_str(m, "id") : "", "rows",
                                lh_json_int(m, "row_count", 0));
    unstore(cat, real);
    lh_tombstones__drop(cat, real, bucket);
    lh_log(LH_LOG_INFO, "dataset_deleted", "{s:s,s:s,s:s}", "dataset", real, "bucket", bucket,
           "actor", actor ? actor : "anonymous");
    /* Deleted: a failed event append is reported, the objects still go. */
    rc = lh_catalog_record(cat, actor, "dataset.deleted", real, details, err);
    committed = rc != 0;
out:
    pthread_mutex_unlock(&cat->mu);
    if ((rc == 0 || committed) && durable)
        delete_objects(cat, bucket, &keys, real);
    strlist_free(&keys);
    free(bucket);
    free(real);
    return rc;
}

int lh_catalog_patch_metadata(lh_catalog *cat, const char *name, const json_t *patch,
                              const char *actor, json_t **manifest_out, lh_error *err)
{
    if (manifest_out)
        *manifest_out = NULL;
    int rc = 0;
    json_t *m = NULL;
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    pthread_mutex_lock(&cat->mu);
    const json_t *old = name ? lookup(cat, name) : NULL;
    if (!old) {
        rc = lh_error_set(err, LH_ENOTFOUND, "no dataset named '%s'", name ? name : "");
        goto out;
    }
    rc = lh_manifest__patch_validate(old, patch, err);
    if (rc)
        goto out;
    m = json_deep_copy(old);
    lh_manifest__patch_merge(m, patch);
    json_object_set_new(m, "version", json_integer(lh_json_int(old, "version", 0) + 1));
    json_object_set_new(m, "updated_at", json_string(now));
    char *real = NULL;
    bool durable;
    rc = publish(cat, m, manifest_out, &real, &durable, err);
    m = NULL;
    if (rc)
        goto out;
    lh_log(LH_LOG_INFO, "dataset_metadata_patched", "{s:s,s:s}", "dataset", real, "actor",
           actor ? actor : "anonymous");
    rc = lh_catalog_record(cat, actor, "dataset.metadata_edited", real,
                           json_pack("{s:o}", "patch", json_deep_copy(patch)), err);
    if (rc && manifest_out) { /* an error returns no manifest */
        json_decref(*manifest_out);
        *manifest_out = NULL;
    }
    free(real);
out:
    pthread_mutex_unlock(&cat->mu);
    json_decref(m);
    return rc;
}

/* ---------------------------------------------------------------- buckets */

int lh_catalog_add_bucket(lh_catalog *cat, const char *name, const char *root, lh_error *err)
{
    pthread_mutex_lock(&cat->mu);
    /* Under mu, so no commit can create a dataset whose name a manifest in the new bucket
     * already holds before we have loaded it. */
    int rc = lh_storage_bucket_add(cat->st, name, root, err);
    if (rc == 0) {
        lh_error lerr;
        if (load_bucket(cat, name, true, NULL, &lerr) != 0)
            lh_log(LH_LOG_WARN, "bucket_catalog_unreadable", "{s:s,s:s}", "bucket", name, "error",
                   lerr.message);
        else
            lh_tombstones__load(cat, name, true);
    }
    pthread_mutex_unlock(&cat->mu);
    return rc;
}

int lh_catalog_remove_bucket(lh_catalog *cat, const char *name, lh_error *err)
{
    pthread_mutex_lock(&cat->mu);
    lh_buf names;
    lh_buf_init(&names);
    size_t count = 0;
    int rc = 0;
    /* Built-in and unknown buckets get the storage's answer (403/404). */
    bool builtin =
        name && (strcmp(name, LH_BUCKET_PRIMARY) == 0 || strcmp(name, LH_BUCKET_RESCUE) == 0);
    for (size_t i = 0; name && !builtin && i < cat->n; i++) {
        const json_t *m = cat->items[i].m;
        if (strcmp(lh_json_str(m, "bucket"), name) != 0)
            continue;
        lh_buf_printf(&names, "%s%s", count++ ? ", " : "", lh_json_str(m, "name"));
    }
    if (count)
        rc = lh_error_set(err, LH_ECONFLICT,
                          "bucket '%s' still holds %zu dataset%s (%s); delete %s first", name,
                          count, count == 1 ? "" : "s", names.data, count == 1 ? "it" : "them");
    else
        rc = lh_storage_bucket_remove(cat->st, name, err);
    lh_buf_free(&names);
    pthread_mutex_unlock(&cat->mu);
    return rc;
}

/* ---------------------------------------------------------------- compaction commit
 *
 * One manifest write swaps the parts a compaction read for its merged part (the
 * linearization point: queries see all old parts or the merged one, never a mix). Parts
 * appended while the compaction ran are kept after it (rebased, as appends are). Then,
 * still under mu, the tombstones the merged part applied are cleared; the replaced parts
 * go to the retirer only after the manifest is durable. */

static bool keys_has(char *const *keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

int lh_catalog_commit_compaction(lh_catalog *cat, const lh_catalog_compaction *c,
                                 bool *tombstones_cleared, lh_error *err)
{
    if (tombstones_cleared)
        *tombstones_cleared = false;
    if (lh_storage_key_validate(c->part_key, err) != 0)
        return LH_EINVAL;
    if (c->part_rows < 0 || c->part_bytes < 0 || c->n_replaced == 0)
        return lh_error_set(err, LH_EINVAL, "a compaction replaces at least one part");
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    strlist doomed = {0};
    json_t *m = NULL;
    bool durable = true;
    char *bucket = NULL, **clearable = NULL;
    size_t n_clearable = 0;
    int rc = 0;
    bool committed = false;
    pthread_mutex_lock(&cat->mu);
    const json_t *old = lookup(cat, c->name);
    if (!old) {
        rc = lh_error_set(err, LH_ENOTFOUND, "dataset '%s' was deleted meanwhile", c->name);
        goto out;
    }
    const char *id = lh_json_str(old, "id");
    if (c->expected_id && (!id || strcmp(id, c->expected_id) != 0)) {
        rc = lh_error_set(err, LH_ECONFLICT, "dataset '%s' was replaced meanwhile; compact again",
                          c->name);
        goto out;
    }
    json_t *files = json_array();
    json_array_append_new(files,
                          json_pack("{s:s,s:I,s:I,s:s,s:s}", "key", c->part_key, "rows",
                                    (json_int_t)c->part_rows, "bytes", (json_int_t)c->part_bytes,
                                    "kind", "base", "created_at", now));
    size_t i, listed = 0, kept = 0;
    const json_t *f;
    json_array_foreach(json_object_get(old, "files"), i, f)
    {
        const char *key = lh_json_str(f, "key");
        if (key && keys_has(c->replaced, c->n_replaced, key)) {
            listed++;
            strlist_push(&doomed, key);
        } else {
            json_array_append(files, (json_t *)f); /* appended meanwhile: rebased */
            kept++;
        }
    }
    if (listed != c->n_replaced) {
        json_decref(files);
        rc = lh_error_set(err, LH_ECONFLICT,
                          "dataset '%s' no longer lists every part the compaction read "
                          "(another compaction won); compact again",
                          c->name);
        goto out;
    }
    m = json_deep_copy(old);
    json_object_set_new(m, "files", files);
    json_object_set_new(m, "version", json_integer(lh_json_int(old, "version", 0) + 1));
    json_object_set_new(m, "updated_at", json_string(now));
    json_object_set_new(m, "compacted_at", json_string(now));
    lh_manifest__recount(m);
    bucket = lh_xstrdup(lh_json_str(old, "bucket"));
    json_int_t rows_before = lh_json_int(old, "row_count", 0);
    /* What may be cleared is decided now, before the rebase below moves live parts: an
     * entry changed since the compaction read the set (an erasure, an upsert) stays. */
    clearable = lh_xcalloc(c->n_applied + 1, sizeof(char *));
    n_clearable = lh_tombstones__clearable(cat, lh_json_str(old, "name"), c->applied,
                                           c->applied_live, c->n_applied, clearable);
    /* Superseded rows of parts appended meanwhile stay hidden: entries live in a replaced
     * part now live in the merged one (the set first: while the old manifest is served they
     * fall back on their previous part, lh_tombstone_scope). */
    rc = lh_tombstones__rebase(cat, lh_json_str(old, "name"), bucket, c->replaced, c->n_replaced,
                               c->part_key, err);
    if (rc) {
        json_decref(m);
        m = NULL;
        goto out;
    }
    char *name = NULL;
    rc = publish(cat, m, NULL, &name, &durable, err);
    m = NULL;
    if (rc)
        goto out;
    committed = true;
    /* Rows of parts appended meanwhile were not filtered: their tombstones stay. So do
     * they when the manifest's durability is unknown: a power cut could bring back the old
     * manifest, whose parts still hold the erased rows. */
    if (kept == 0 && durable) {
        lh_error terr;
        if (lh_tombstones__clear(cat, name, clearable, n_clearable, &terr) == 0) {
            if (tombstones_cleared)
                *tombstones_cleared = true;
        } else {
            lh_log(LH_LOG_WARN, "compaction_tombstones_kept", "{s:s,s:s}", "dataset", name, "error",
                   terr.message);
        }
    }
    lh_log(LH_LOG_INFO, "dataset_compacted", "{s:s,s:I,s:I,s:I,s:s}", "dataset", name, "parts",
           (json_int_t)c->n_replaced, "kept", (json_int_t)kept, "rows", (json_int_t)c->part_rows,
           "actor", c->actor ? c->actor : "anonymous");
    /* Committed: a failed event append is reported, not undone (the caller keeps its part). */
    rc = lh_catalog_record(
        cat, c->actor, "dataset.compacted", name,
        json_pack("{s:s,s:I,s:I,s:I,s:s,s:I,s:b}", "dataset", name, "parts_replaced",
                  (json_int_t)c->n_replaced, "parts_kept", (json_int_t)kept, "rows_before",
                  rows_before, "part", c->part_key, "rows_after", (json_int_t)c->part_rows,
                  "tombstones_cleared", tombstones_cleared && *tombstones_cleared),
        err);
    free(name);
out:
    pthread_mutex_unlock(&cat->mu);
    json_decref(m);
    if (committed && durable && doomed.n)
        delete_objects(cat, bucket, &doomed, c->name);
    strlist_free(&doomed);
    free(bucket);
    free(clearable);
    return rc;
}

/* ---------------------------------------------------------------- for tombstones.c */

void lh_catalog__lock(lh_catalog *cat)
{
    pthread_mutex_lock(&cat->mu);
}

void lh_catalog__unlock(lh_catalog *cat)
{
    pthread_mutex_unlock(&cat->mu);
}

lh_storage *lh_catalog__storage(lh_catalog *cat)
{
    return cat->st;
}

lh_tombstones *lh_catalog__tombstones(lh_catalog *cat)
{
    return cat->tomb;
}
/* ---------------------------------------------------------------- bucket migration
 * (issue 10, item 9; docs/GOVERNANCE.md "Bucket migration")
 *
 * Older manifests may record no bucket, an empty one or a legacy spelling ("default",
 * "main", "Primary"...). At load the in-memory copy already says where the manifest was
 * found (load_bucket), so the disk is read to see what it records. A manifest whose
 * recorded bucket is not, exactly, the bucket it lives in is rewritten (atomically, same
 * version: nothing a reader sees changes) with that bucket's name: `primary` for every
 * legacy spelling in the primary bucket. Runs under mu, so no commit interleaves; each
 * rewrite is durable before the next, so a failure half-way leaves every manifest old or
 * new and a second run finishes the job (idempotent: a run with nothing to do changes
 * nothing and records nothing). */

int lh_catalog_migrate_buckets(lh_catalog *cat, const char *actor, json_t **report, lh_error *err)
{
    *report = NULL;
    lh_error local;
    if (!err)
        err = &local;
    json_t *changed = json_array();
    json_int_t unchanged = 0;
    int rc = 0;
    pthread_mutex_lock(&cat->mu);
    for (size_t i = 0; i < cat->n && rc == 0; i++) {
        const json_t *m = cat->items[i].m;
        const char *name = lh_json_str(m, "name");
        const char *bucket = lh_json_str(m, "bucket");
        char *key = manifest_key(name), *text = NULL;
        size_t len = 0;
        json_t *disk = NULL;
        rc = lh_storage_get(cat->st, bucket, key, MANIFEST_MAX, &text, &len, err);
        if (rc == 0 && !(disk = json_loadb(text, len, 0, NULL)))
            rc = lh_error_set(err, LH_EIO, "the manifest of '%s' can no longer be parsed", name);
        const json_t *was = disk ? json_object_get(disk, "bucket") : NULL;
        if (rc == 0 && json_is_string(was) && strcmp(json_string_value(was), bucket) == 0) {
            unchanged++;
        } else if (rc == 0) {
            rc = manifest_write(cat, m, err);
            if (rc && lh_error_not_durable(err)) {
                lh_log(LH_LOG_WARN, "dataset_commit_not_durable", "{s:s,s:s}", "dataset", name,
                       "error", err->message);
                lh_error_clear(err);
                rc = 0;
            }
            if (rc == 0)
                json_array_append_new(changed,
                                      json_pack("{s:s,s:O,s:s}", "dataset", name, "from",
                                                was ? (json_t *)was : json_null(), "to", bucket));
        }
        json_decref(disk);
        free(text);
        free(key);
    }
    if (json_array_size(changed)) {
        lh_log(LH_LOG_INFO, "buckets_migrated", "{s:I,s:s}", "changed",
               (json_int_t)json_array_size(changed), "actor", actor ? actor : "anonymous");
        /* Recorded even after a failure half-way: those rewrites happened. */
        lh_error rerr;
        int rrc = lh_catalog_record(cat, actor, "buckets.migrated", "",
                                    json_pack("{s:O}", "changed", changed), &rerr);
        if (rrc && rc == 0) {
            rc = rrc;
            *err = rerr;
        }
    }
    pthread_mutex_unlock(&cat->mu);
    if (rc == 0)
        *report = json_pack("{s:O,s:I}", "changed", changed, "unchanged", unchanged);
    json_decref(changed);
    return rc;
}
