/*
 * tombstones.c: row-level erasure before compaction (catalog.h, "tombstones").
 *
 * Each dataset has at most one tombstone set: a document kept in memory (keyed by the
 * lowercased dataset name) and stored at `_catalog/tombstones/<name>.json` in the dataset's
 * bucket. The document on disk is the truth; memory is rebuilt from it at open.
 *
 * Invariants:
 *   - A change is made as a dataset change is (catalog.c's publish): the listener (the query
 *     engine) applies the new set first, then the atomic write makes it durable (the
 *     linearization point), then memory. A failed write puts the listener back on the old
 *     set; a write whose rename took effect but whose folder fsync failed is rolled forward
 *     (the new set is what disk shows). So an acknowledged tombstone is durable and applied.
 *   - An empty set is not stored: its file is deleted. The key values of an erased person
 *     live in this file only until a compaction applies them (lh_tombstones__clear), and
 *     never in a log line or an error message written here.
 *   - One key column per non-empty set; one entry per key.
 *   - Scoped entries (upserts, catalog.h): an entry whose live_part the manifest does not
 *     list falls back on previous_part, else hides nothing (lh_tombstone_scope), so the
 *     set may be written before the manifest that names the new part. An upsert commit
 *     writes the set first, then the manifest (catalog.c); the engine hears of both under
 *     the one catalog lock, and whichever of the two states it builds a view from, an
 *     entry whose part is not yet listed changes nothing. Entries left inactive (a failed
 *     manifest write, a crash between the two writes, a replace) are rolled back (prune)
 *     at open and at the next change of the set.
 *
 * Locking: mutations run under the catalog's mu (so they serialise with dataset changes and
 * see the manifest they check); `rw` guards the in-memory sets and is a leaf, taken only to
 * copy out or swap in, so the engine may read sets under its own locks.
 */
#include "catalog_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOMB_PREFIX "_catalog/tombstones/"
#define TOMB_SUFFIX ".json"
#define TOMB_FORMAT "tombstones.v1"
#define TOMB_MAX ((size_t)256 << 20)

struct lh_tombstones {
    pthread_rwlock_t rw;
    json_t *sets; /* lowercased dataset name → {format_version, dataset, key_column, key_type,
                     tombstones: [{key, actor, reason, deleted_at, live_part?,
                     previous_part?}]} */
    lh_catalog_tombstone_listener listener; /* set and used under the catalog's mu */
    void *listener_ctx;
};

/* Column types a key may have: equality on them is exact, and their text form round-trips. */
static const char *const key_types[] = {
    "TINYINT",  "SMALLINT",  "INTEGER",  "BIGINT",  "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "VARCHAR",
};

lh_tombstones *lh_tombstones__new(void)
{
    lh_tombstones *t = lh_xcalloc(1, sizeof(*t));
    pthread_rwlock_init(&t->rw, NULL);
    t->sets = json_object();
    return t;
}

void lh_tombstones__free(lh_tombstones *t)
{
    if (!t)
        return;
    json_decref(t->sets);
    pthread_rwlock_destroy(&t->rw);
    free(t);
}

static char *lower(const char *s)
{
    char *l = lh_xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

static char *set_key(const char *dataset)
{
    return lh_xasprintf(TOMB_PREFIX "%s" TOMB_SUFFIX, dataset);
}

bool lh_tombstone_key_type_ok(const char *type)
{
    for (size_t i = 0; type && i < sizeof(key_types) / sizeof(key_types[0]); i++)
        if (strcasecmp(type, key_types[i]) == 0)
            return true;
    return false;
}

static bool is_text_type(const char *type)
{
    return strcasecmp(type, "VARCHAR") == 0;
}

char *lh_tombstone_key_text(const json_t *value, const char *type, lh_error *err)
{
    if (is_text_type(type)) {
        if (!json_is_string(value) || json_string_length(value) == 0) {
            lh_error_set(err, LH_EINVAL, "a key of a VARCHAR column must be a non-empty string");
            return NULL;
        }
        return lh_xstrdup(json_string_value(value));
    }
    if (json_is_integer(value))
        return lh_xasprintf("%lld", (long long)json_integer_value(value));
    const char *s = json_string_value(value);
    if (s && *s) {
        errno = 0;
        char *end = NULL;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && end && *end == '\0' && end != s)
            return lh_xasprintf("%lld", v);
    }
    lh_error_set(err, LH_EINVAL, "a key of a %s column must be an integer", type);
    return NULL;
}

/* The set of dataset, borrowed (valid while mu is held: only holders of mu replace it). */
static const json_t *set_get(lh_tombstones *t, const char *dataset)
{
    char *l = lower(dataset);
    const json_t *s = json_object_get(t->sets, l);
    free(l);
    return s;
}

/* Replaces (doc != NULL, stolen) or removes the set of dataset in memory. Caller holds mu. */
static void set_put(lh_tombstones *t, const char *dataset, json_t *doc)
{
    char *l = lower(dataset);
    pthread_rwlock_wrlock(&t->rw);
    if (doc)
        json_object_set_new(t->sets, l, doc);
    else
        json_object_del(t->sets, l);
    pthread_rwlock_unlock(&t->rw);
    free(l);
}

static size_t set_count(const json_t *doc)
{
    return json_array_size(json_object_get(doc, "tombstones"));
}

/* The keys of doc (borrowed strings, valid while doc lives), in order; *n their count.
 * Caller frees the array. */
static char **set_keys(const json_t *doc, size_t *n)
{
    const json_t *arr = json_object_get(doc, "tombstones");
    char **keys = lh_xcalloc(json_array_size(arr) + 1, sizeof(char *));
    size_t i;
    const json_t *e;
    *n = 0;
    json_array_foreach(arr, i, e)
    {
        const char *k = lh_json_str(e, "key");
        if (k)
            keys[(*n)++] = (char *)k;
    }
    return keys;
}

/* One stored entry as an lh_tombstone_entry (borrowed strings, valid while e lives). */
static lh_tombstone_entry entry_view(const json_t *e)
{
    lh_tombstone_entry v = {
        .key = (char *)lh_json_str(e, "key"),
        .live_part = (char *)lh_json_str(e, "live_part"),
        .previous_part = (char *)lh_json_str(e, "previous_part"),
    };
    return v;
}

/* The entries of doc (borrowed strings, valid while doc lives), in order; *n their count.
 * Caller frees the array. */
static lh_tombstone_entry *set_entries(const json_t *doc, size_t *n)
{
    const json_t *arr = json_object_get(doc, "tombstones");
    lh_tombstone_entry *v = lh_xcalloc(json_array_size(arr) + 1, sizeof(*v));
    size_t i;
    const json_t *e;
    *n = 0;
    json_array_foreach(arr, i, e)
    {
        if (lh_json_str(e, "key"))
            v[(*n)++] = entry_view(e);
    }
    return v;
}

static bool parts_have(const char *const *parts, size_t n, const char *key, size_t *at)
{
    for (size_t i = 0; key && i < n; i++)
        if (strcmp(parts[i], key) == 0) {
            if (at)
                *at = i;
            return true;
        }
    return false;
}

lh_tombstone_scope_kind lh_tombstone_scope(const lh_tombstone_entry *e, const char *const *parts,
                                           size_t n, size_t *live)
{
    size_t at = 0;
    if (!e->live_part)
        return LH_TOMB_PLAIN;
    if (parts_have(parts, n, e->live_part, &at) || parts_have(parts, n, e->previous_part, &at)) {
        if (live)
            *live = at;
        return LH_TOMB_SCOPED;
    }
    return LH_TOMB_INACTIVE;
}

void lh_tombstone_entries_free(lh_tombstone_entry *entries, size_t n)
{
    for (size_t i = 0; entries && i < n; i++) {
        free(entries[i].key);
        free(entries[i].live_part);
        free(entries[i].previous_part);
    }
    free(entries);
}

/* The part keys of manifest m (borrowed, valid while m lives); *n their count. Caller frees
 * the array. */
static const char **manifest_parts(const json_t *m, size_t *n)
{
    const json_t *files = json_object_get(m, "files");
    const char **parts = lh_xcalloc(json_array_size(files) + 1, sizeof(char *));
    size_t i;
    const json_t *f;
    *n = 0;
    json_array_foreach(files, i, f)
    {
        if (lh_json_str(f, "key"))
            parts[(*n)++] = lh_json_str(f, "key");
    }
    return parts;
}

/* Rolls doc's scoped entries back to what manifest m serves (in place): an entry whose
 * live part m does not list takes its previous part back when m lists that one, and is
 * dropped otherwise (it hid nothing); a listed live part no longer needs its previous one.
 * What queries see does not change. Returns how many entries changed. */
static size_t prune(json_t *doc, const json_t *m)
{
    size_t nparts = 0, changed = 0;
    const char **parts = manifest_parts(m, &nparts);
    json_t *arr = json_object_get(doc, "tombstones"), *kept = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *live = lh_json_str(e, "live_part"), *prev = lh_json_str(e, "previous_part");
        if (!live || parts_have(parts, nparts, live, NULL)) {
            if (live && prev) {
                json_object_del(e, "previous_part");
                changed++;
            }
            json_array_append(kept, e);
        } else if (prev && parts_have(parts, nparts, prev, NULL)) {
            json_object_set_new(e, "live_part", json_string(prev));
            json_object_del(e, "previous_part");
            json_array_append(kept, e);
            changed++;
        } else {
            changed++;
        }
    }
    json_object_set_new(doc, "tombstones", kept);
    free(parts);
    return changed;
}

/* A jansson object mapping each key of doc to its entry (the same objects: a change made
 * through the index changes doc). Caller decrefs. */
static json_t *key_index(const json_t *doc)
{
    json_t *idx = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "tombstones"), i, e)
    {
        const char *k = lh_json_str(e, "key");
        if (k)
            json_object_set(idx, k, e);
    }
    return idx;
}

/* Tells the listener that dataset's set is now doc (NULL or empty: none). */
static int notify(lh_tombstones *t, const char *dataset, const json_t *doc, lh_error *err)
{
    if (!t->listener)
        return 0;
    size_t n = 0;
    lh_tombstone_entry *entries = doc ? set_entries(doc, &n) : lh_xcalloc(1, sizeof(*entries));
    lh_error lerr;
    int rc = t->listener(t->listener_ctx, dataset, doc ? lh_json_str(doc, "key_column") : NULL,
                         doc ? lh_json_str(doc, "key_type") : NULL, entries, n, &lerr);
    if (rc)
        lh_error_setk(err, lerr.code, lh_error_kind(&lerr), "%s", lerr.message);
    free(entries);
    return rc;
}

/* Writes doc (an empty set: deletes the file) durably in bucket. */
static int set_write(lh_catalog *cat, const char *bucket, const char *dataset, const json_t *doc,
                     lh_error *err)
{
    char *key = set_key(dataset);
    int rc;
    if (!doc || set_count(doc) == 0) {
        rc = lh_storage_delete(lh_catalog__storage(cat), bucket, key, err);
    } else {
        char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        rc = text ? lh_storage_put(lh_catalog__storage(cat), bucket, key, text, strlen(text), err)
                  : lh_error_set(err, LH_EINTERNAL, "cannot render the tombstone set");
        free(text);
    }
    free(key);
    return rc;
}

/* Makes doc (stolen; NULL or empty: no set) dataset's set: listener, durable write, memory.
 * On failure nothing changed (the listener is put back on the old set). A write whose
 * durability is unknown is rolled forward (the new set is served and kept); *durable (if
 * not NULL) is then false and err keeps the reason. Caller holds mu. */
static int set_publish_ex(lh_catalog *cat, const char *dataset, const char *bucket, json_t *doc,
                          bool *durable, lh_error *err)
{
    if (durable)
        *durable = true;
    lh_tombstones *t = lh_catalog__tombstones(cat);
    lh_error local;
    if (!err)
        err = &local;
    int rc = notify(t, dataset, doc, err);
    if (rc)
        goto fail;
    rc = set_write(cat, bucket, dataset, doc, err);
    if (rc && lh_error_not_durable(err)) {
        lh_log(LH_LOG_WARN, "tombstones_commit_not_durable", "{s:s,s:s}", "dataset", dataset,
               "error", err->message);
        if (durable)
            *durable = false;
        else
            lh_error_clear(err);
        rc = 0;
    }
    if (rc) {
        lh_error uerr;
        if (notify(t, dataset, set_get(t, dataset), &uerr) != 0)
            lh_log(LH_LOG_ERROR, "tombstone_listener_undo_failed", "{s:s,s:s}", "dataset", dataset,
                   "message", uerr.message);
        goto fail;
    }
    if (doc && set_count(doc) == 0) {
        json_decref(doc);
        doc = NULL;
    }
    set_put(t, dataset, doc);
    return 0;
fail:
    lh_error_scrub(err, lh_storage_data_dir(lh_catalog__storage(cat)), "<data>");
    json_decref(doc);
    return rc;
}

static int set_publish(lh_catalog *cat, const char *dataset, const char *bucket, json_t *doc,
                       lh_error *err)
{
    return set_publish_ex(cat, dataset, bucket, doc, NULL, err);
}

void lh_catalog_set_tombstone_listener(lh_catalog *cat, lh_catalog_tombstone_listener fn, void *ctx)
{
    lh_catalog__lock(cat);
    lh_tombstones *t = lh_catalog__tombstones(cat);
    t->listener = fn;
    t->listener_ctx = ctx;
    lh_catalog__unlock(cat);
}

/* The schema entry of column in manifest m (case-insensitive), or NULL. */
static const json_t *schema_column(const json_t *m, const char *column)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(m, "schema"), i, c)
    {
        const char *name = lh_json_str(c, "name");
        if (name && column && strcasecmp(name, column) == 0)
            return c;
    }
    return NULL;
}

static int no_dataset(const char *dataset, lh_error *err)
{
    return lh_error_set(err, LH_ENOTFOUND, "no dataset named '%s'", dataset ? dataset : "");
}

/* LH_ECONFLICT when doc (the set as it will be, before the new entries) holds tombstones on
 * a column other than col_name. */
static int column_check(const json_t *doc, const char *name, const char *col_name, lh_error *err)
{
    const char *old_col = lh_json_str(doc, "key_column");
    if (old_col && set_count(doc) && strcasecmp(old_col, col_name) != 0)
        return lh_error_set(err, LH_ECONFLICT,
                            "dataset '%s' is tombstoned by column '%s' (%zu tombstones); one key "
                            "column per dataset: use '%s'",
                            name, old_col, set_count(doc), old_col);
    return 0;
}

/* The details of a tombstone.added event: dataset, key column, count, reason, and the keys
 * added (the journal is where an erasure is recorded; nothing else keeps them). */
static json_t *event_details(const char *dataset, const char *column, const lh_tombstone_req *req,
                             const bool *added, size_t count)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < req->n; i++)
        if (added[i])
            json_array_append_new(keys, json_string(req->keys[i]));
    return json_pack("{s:s,s:s,s:I,s:s,s:o}", "dataset", dataset, "key_column", column, "count",
                     (json_int_t)count, "reason", req->reason ? req->reason : "", "keys", keys);
}

int lh_catalog_tombstone_add(lh_catalog *cat, const lh_tombstone_req *req, const bool *skip,
                             bool *added, json_t *failures, lh_error *err)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    json_t *doc = NULL, *idx = NULL;
    int rc = 0;
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    for (size_t i = 0; i < req->n; i++)
        added[i] = false;
    lh_catalog__lock(cat);
    const json_t *m = req->dataset ? lh_catalog__lookup(cat, req->dataset) : NULL;
    if (!m) {
        rc = no_dataset(req->dataset, err);
        goto out;
    }
    const char *name = lh_json_str(m, "name");
    const json_t *col = schema_column(m, req->key_column);
    if (!col) {
        rc = lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s'", name,
                          req->key_column ? req->key_column : "");
        goto out;
    }
    const char *col_name = lh_json_str(col, "name"), *col_type = lh_json_str(col, "type");
    if (!lh_tombstone_key_type_ok(col_type)) {
        rc = lh_error_set(err, LH_EINVAL,
                          "column '%s' of dataset '%s' is %s; a row key column must be an "
                          "integer or VARCHAR column",
                          col_name, name, col_type ? col_type : "of unknown type");
        goto out;
    }
    const json_t *old = set_get(t, name);
    doc = old ? json_deep_copy(old) : json_object();
    if (old)
        prune(doc, m);
    rc = column_check(doc, name, col_name, err);
    if (rc)
        goto out;
    json_object_set_new(doc, "format_version", json_string(TOMB_FORMAT));
    json_object_set_new(doc, "dataset", json_string(name));
    json_object_set_new(doc, "key_column", json_string(col_name));
    json_object_set_new(doc, "key_type", json_string(col_type));
    if (!json_is_array(json_object_get(doc, "tombstones")))
        json_object_set_new(doc, "tombstones", json_array());
    json_t *arr = json_object_get(doc, "tombstones");
    idx = key_index(doc);
    size_t count = 0;
    for (size_t i = 0; i < req->n; i++) {
        if (skip && skip[i])
            continue;
        if (json_object_get(idx, req->keys[i])) {
            json_t *e = json_object_get(idx, req->keys[i]);
            if (e && lh_json_str(e, "live_part")) {
                /* superseded by an upsert: the erasure wins, in every part */
                json_object_del(e, "live_part");
                json_object_del(e, "previous_part");
                json_object_set_new(e, "actor", json_string(req->actor ? req->actor : "anonymous"));
                json_object_set_new(e, "reason", json_string(req->reason ? req->reason : ""));
                json_object_set_new(e, "deleted_at", json_string(now));
                added[i] = true;
                count++;
                continue;
            }
            json_array_append_new(failures, json_pack("{s:s,s:s}", "value", req->keys[i], "reason",
                                                      "already tombstoned"));
            continue;
        }
        json_object_set_new(idx, req->keys[i], json_true()); /* a key given twice */
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "key", req->keys[i], "actor",
                                             req->actor ? req->actor : "anonymous", "reason",
                                             req->reason ? req->reason : "", "deleted_at", now));
        added[i] = true;
        count++;
    }
    if (count == 0)
        goto out;
    rc = set_publish(cat, name, lh_json_str(m, "bucket"), doc, err);
    doc = NULL;
    if (rc) {
        for (size_t i = 0; i < req->n; i++)
            added[i] = false;
        goto out;
    }
    /* The keys are personal data: the log line says how many, never which. The event
     * journal is the one place that records them: it is the record of the erasure. */
    lh_log(LH_LOG_INFO, "tombstones_added", "{s:s,s:s,s:I,s:s}", "dataset", name, "key_column",
           col_name, "count", (json_int_t)count, "actor", req->actor ? req->actor : "anonymous");
    rc = lh_catalog_record(cat, req->actor, "tombstone.added", name,
                           event_details(name, col_name, req, added, count), err);
out:
    lh_catalog__unlock(cat);
    json_decref(doc);
    json_decref(idx);
    return rc;
}

/* A copy of doc without the keys in drop (an index); *removed counts them. */
static json_t *without(const json_t *doc, const json_t *drop, size_t *removed)
{
    json_t *out = json_deep_copy(doc), *kept = json_array();
    size_t i;
    const json_t *e;
    *removed = 0;
    json_array_foreach(json_object_get(doc, "tombstones"), i, e)
    {
        const char *k = lh_json_str(e, "key");
        if (k && json_object_get(drop, k))
            (*removed)++;
        else
            json_array_append(kept, (json_t *)e);
    }
    json_object_set_new(out, "tombstones", kept);
    return out;
}

int lh_catalog_tombstone_remove(lh_catalog *cat, const lh_tombstone_req *req, size_t *removed,
                                json_t *failures, lh_error *err)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    json_t *have = NULL, *drop = json_object(), *pruned = NULL;
    int rc = 0;
    *removed = 0;
    lh_catalog__lock(cat);
    const json_t *m = req->dataset ? lh_catalog__lookup(cat, req->dataset) : NULL;
    if (!m) {
        rc = no_dataset(req->dataset, err);
        goto out;
    }
    const char *name = lh_json_str(m, "name");
    const json_t *old = set_get(t, name);
    pruned = old ? json_deep_copy(old) : NULL;
    if (pruned)
        prune(pruned, m);
    have = pruned ? key_index(pruned) : json_object();
    for (size_t i = 0; i < req->n; i++) {
        if (json_object_get(have, req->keys[i]))
            json_object_set_new(drop, req->keys[i], json_true());
        else
            json_array_append_new(failures, json_pack("{s:s,s:s}", "value", req->keys[i], "reason",
                                                      "not tombstoned"));
    }
    if (json_object_size(drop) == 0)
        goto out;
    size_t n = 0;
    json_t *doc = without(pruned, drop, &n);
    rc = set_publish(cat, name, lh_json_str(m, "bucket"), doc, err);
    if (rc)
        goto out;
    *removed = n;
    lh_log(LH_LOG_INFO, "tombstones_removed", "{s:s,s:I,s:s}", "dataset", name, "count",
           (json_int_t)n, "actor", req->actor ? req->actor : "anonymous");
    json_t *keys = json_array();
    const char *kname;
    json_t *kv;
    json_object_foreach(drop, kname, kv)
    {
        json_array_append_new(keys, json_string(kname));
    }
    rc = lh_catalog_record(cat, req->actor, "tombstone.removed", name,
                           json_pack("{s:s,s:s?,s:I,s:o}", "dataset", name, "key_column",
                                     lh_json_str(pruned, "key_column"), "count", (json_int_t)n,
                                     "keys", keys),
                           err);
out:
    lh_catalog__unlock(cat);
    json_decref(have);
    json_decref(drop);
    json_decref(pruned);
    return rc;
}

json_t *lh_catalog_tombstones(lh_catalog *cat, const char *dataset, lh_error *err)
{
    json_t *m = lh_catalog_get(cat, dataset, err);
    if (!m)
        return NULL;
    lh_tombstones *t = lh_catalog__tombstones(cat);
    char *l = lower(dataset);
    pthread_rwlock_rdlock(&t->rw);
    const json_t *doc = json_object_get(t->sets, l);
    json_t *list = json_array();
    size_t nparts = 0, i;
    const char **parts = manifest_parts(m, &nparts);
    const json_t *e;
    /* scoped entries as the engine serves them against this manifest */
    json_array_foreach(json_object_get(doc, "tombstones"), i, e)
    {
        lh_tombstone_entry v = entry_view(e);
        size_t live = 0;
        lh_tombstone_scope_kind kind = lh_tombstone_scope(&v, parts, nparts, &live);
        if (kind == LH_TOMB_INACTIVE)
            continue;
        json_t *c = json_deep_copy(e);
        json_object_del(c, "previous_part");
        if (kind == LH_TOMB_SCOPED)
            json_object_set_new(c, "live_part", json_string(parts[live]));
        json_array_append_new(list, c);
    }
    free(parts);
    const char *col = doc ? lh_json_str(doc, "key_column") : NULL;
    json_t *out = json_pack("{s:s,s:o,s:o}", "dataset", lh_json_str(m, "name"), "key_column",
                            col ? json_string(col) : json_null(), "tombstones", list);
    pthread_rwlock_unlock(&t->rw);
    free(l);
    json_decref(m);
    return out;
}

void lh_catalog_tombstone_keys(lh_catalog *cat, const char *dataset, char **key_column,
                               char **key_type, char ***keys, size_t *n)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    *key_column = *key_type = NULL;
    *keys = NULL;
    *n = 0;
    char *l = lower(dataset);
    pthread_rwlock_rdlock(&t->rw);
    const json_t *doc = json_object_get(t->sets, l);
    if (doc && set_count(doc)) {
        size_t k = 0;
        char **borrowed = set_keys(doc, &k);
        *keys = lh_xcalloc(k + 1, sizeof(char *));
        for (size_t i = 0; i < k; i++)
            (*keys)[i] = lh_xstrdup(borrowed[i]);
        free(borrowed);
        *n = k;
        *key_column = lh_xstrdup(lh_json_str(doc, "key_column"));
        *key_type = lh_xstrdup(lh_json_str(doc, "key_type"));
    }
    pthread_rwlock_unlock(&t->rw);
    free(l);
}

void lh_catalog_tombstone_entries(lh_catalog *cat, const char *dataset, char **key_column,
                                  char **key_type, lh_tombstone_entry **entries, size_t *n)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    *key_column = *key_type = NULL;
    *entries = NULL;
    *n = 0;
    char *l = lower(dataset);
    pthread_rwlock_rdlock(&t->rw);
    const json_t *doc = json_object_get(t->sets, l);
    if (doc && set_count(doc)) {
        size_t k = 0;
        lh_tombstone_entry *borrowed = set_entries(doc, &k);
        *entries = lh_xcalloc(k + 1, sizeof(lh_tombstone_entry));
        for (size_t i = 0; i < k; i++) {
            (*entries)[i].key = lh_xstrdup(borrowed[i].key);
            if (borrowed[i].live_part)
                (*entries)[i].live_part = lh_xstrdup(borrowed[i].live_part);
            if (borrowed[i].previous_part)
                (*entries)[i].previous_part = lh_xstrdup(borrowed[i].previous_part);
        }
        free(borrowed);
        *n = k;
        *key_column = lh_xstrdup(lh_json_str(doc, "key_column"));
        *key_type = lh_xstrdup(lh_json_str(doc, "key_type"));
    }
    pthread_rwlock_unlock(&t->rw);
    free(l);
}

/* ---------------------------------------------------------------- upserts and compaction */

/* Checks one supersede key against the key column's type: canonical integer text for the
 * integer types, a non-empty string for VARCHAR. */
static bool key_canonical(const char *key, const char *type)
{
    if (!key || !*key)
        return false;
    if (is_text_type(type))
        return true;
    const char *p = key + (*key == '-');
    if (!*p || (*p == '0' && (p[1] || *key == '-')))
        return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int lh_tombstones__supersede(lh_catalog *cat, const json_t *m, const lh_catalog_commit *c,
                             json_t **undo, size_t *count, size_t *erased, lh_error *err)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    const char *name = lh_json_str(m, "name"), *bucket = lh_json_str(m, "bucket");
    json_t *doc = NULL;
    int rc = 0;
    char now[LH_TS_MAX];
    lh_time_rfc3339(now);
    *undo = NULL;
    *count = *erased = 0;
    const json_t *col = schema_column(m, c->supersede_column);
    if (!col) {
        rc = lh_error_set(err, LH_EINVAL, "dataset '%s' has no column '%s' to upsert by", name,
                          c->supersede_column ? c->supersede_column : "");
        goto out;
    }
    const char *col_name = lh_json_str(col, "name"), *col_type = lh_json_str(col, "type");
    if (!lh_tombstone_key_type_ok(col_type)) {
        rc = lh_error_set(err, LH_EINVAL,
                          "column '%s' of dataset '%s' is %s; an upsert key column must be an "
                          "integer or VARCHAR column",
                          col_name, name, col_type ? col_type : "of unknown type");
        goto out;
    }
    for (size_t i = 0; i < c->n_supersede; i++)
        if (!key_canonical(c->supersede_keys[i], col_type)) {
            /* the key itself may be personal data: its position, not its value */
            rc = lh_error_set(err, LH_EINVAL,
                              "upsert key #%zu is not a canonical %s value of column '%s'", i + 1,
                              col_type, col_name);
            goto out;
        }
    const json_t *old = set_get(t, name);
    doc = old ? json_deep_copy(old) : json_object();
    if (old)
        prune(doc, m); /* the previous_part of each moved entry is resolved against m */
    rc = column_check(doc, name, col_name, err);
    if (rc)
        goto out;
    json_object_set_new(doc, "format_version", json_string(TOMB_FORMAT));
    json_object_set_new(doc, "dataset", json_string(name));
    json_object_set_new(doc, "key_column", json_string(col_name));
    json_object_set_new(doc, "key_type", json_string(col_type));
    if (!json_is_array(json_object_get(doc, "tombstones")))
        json_object_set_new(doc, "tombstones", json_array());
    json_t *arr = json_object_get(doc, "tombstones");
    /* by key: the entries already there (the new ones join it: a key given twice is one) */
    json_t *idx = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (lh_json_str(e, "key"))
            json_object_set(idx, lh_json_str(e, "key"), e);
    }
    for (size_t k = 0; k < c->n_supersede; k++) {
        const char *key = c->supersede_keys[k];
        json_t *have = json_object_get(idx, key);
        if (have && !lh_json_str(have, "live_part")) {
            (*erased)++; /* erased: stays hidden in every part, the new one included */
            continue;
        }
        if (have) {
            const char *live = lh_json_str(have, "live_part");
            if (strcmp(live, c->part_key) == 0)
                continue; /* listed twice */
            /* after prune, live is a part of m: the fallback while part_key is not */
            json_object_set_new(have, "previous_part", json_string(live));
        } else {
            have = json_object();
            json_object_set_new(have, "key", json_string(key));
            json_array_append_new(arr, have);
            json_object_set(idx, key, have);
        }
        json_object_set_new(have, "actor", json_string(c->actor ? c->actor : "anonymous"));
        json_object_set_new(have, "reason", json_string("superseded"));
        json_object_set_new(have, "deleted_at", json_string(now));
        json_object_set_new(have, "live_part", json_string(c->part_key));
        (*count)++;
    }
    json_decref(idx);
    if (*count == 0)
        goto out; /* nothing to hide: every key erased already */
    *undo = old ? json_deep_copy(old) : NULL;
    bool durable = true;
    rc = set_publish_ex(cat, name, bucket, doc, &durable, err);
    doc = NULL;
    if (rc == 0 && !durable) {
        /* The set on disk may or may not survive a power cut; the manifest must not
         * outlive it (its new part without the entries would show both versions). The set
         * is kept as disk shows it: its new entries are inactive until pruned. */
        lh_error why = *err;
        rc = lh_error_set(err, LH_EIO,
                          "the upsert of dataset '%s' was not made: its tombstone set may not be "
                          "durable (%s)",
                          name, why.message);
        lh_error_scrub(err, lh_storage_data_dir(lh_catalog__storage(cat)), "<data>");
    }
    if (rc) {
        json_decref(*undo);
        *undo = NULL;
    }
out:
    json_decref(doc);
    return rc;
}

void lh_tombstones__restore(lh_catalog *cat, const char *dataset, const char *bucket, json_t *undo)
{
    lh_error err;
    /* a rollback that cannot be written leaves entries that hide nothing (their part is not
     * in the manifest), pruned at the next change or open */
    if (set_publish(cat, dataset, bucket, undo, &err) != 0)
        lh_log(LH_LOG_WARN, "tombstones_rollback_failed", "{s:s,s:s}", "dataset", dataset, "error",
               err.message);
}

size_t lh_tombstones__clearable(lh_catalog *cat, const char *dataset, char *const *keys,
                                char *const *live, size_t n, char **out)
{
    const json_t *doc = set_get(lh_catalog__tombstones(cat), dataset);
    json_t *idx = doc ? key_index(doc) : NULL;
    size_t k = 0;
    for (size_t i = 0; doc && i < n; i++) {
        const json_t *e = json_object_get(idx, keys[i]);
        const char *have = e ? lh_json_str(e, "live_part") : NULL;
        const char *want = live ? live[i] : NULL;
        if (e && (have && want ? strcmp(have, want) == 0 : !have && !want))
            out[k++] = keys[i];
    }
    json_decref(idx);
    return k;
}

int lh_tombstones__rebase(lh_catalog *cat, const char *dataset, const char *bucket,
                          char *const *replaced, size_t n, const char *part, lh_error *err)
{
    const json_t *old = set_get(lh_catalog__tombstones(cat), dataset);
    if (!old)
        return 0;
    json_t *doc = json_deep_copy(old);
    size_t i, moved = 0;
    json_t *e;
    json_array_foreach(json_object_get(doc, "tombstones"), i, e)
    {
        const char *live = lh_json_str(e, "live_part");
        for (size_t r = 0; live && r < n; r++)
            if (strcmp(live, replaced[r]) == 0) {
                json_object_set_new(e, "previous_part", json_string(live));
                json_object_set_new(e, "live_part", json_string(part));
                moved++;
                break;
            }
    }
    if (moved == 0) {
        json_decref(doc);
        return 0;
    }
    return set_publish(cat, dataset, bucket, doc, err);
}

/* ---------------------------------------------------------------- catalog hooks */

void lh_tombstones__load(lh_catalog *cat, const char *bucket, bool notify_each)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    lh_storage *st = lh_catalog__storage(cat);
    char **keys = NULL;
    size_t n = 0;
    lh_error err;
    if (lh_storage_sweep_staged(st, bucket, TOMB_PREFIX, &err) < 0)
        lh_log(LH_LOG_WARN, "staging_sweep_failed", "{s:s,s:s}", "bucket", bucket, "error",
               err.message);
    if (lh_storage_list(st, bucket, TOMB_PREFIX, &keys, &n, &err) != 0) {
        lh_log(LH_LOG_WARN, "tombstones_unreadable", "{s:s,s:s}", "bucket", bucket, "error",
               err.message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = keys[i] + strlen(TOMB_PREFIX);
        size_t bl = strlen(base), sl = strlen(TOMB_SUFFIX);
        if (strchr(base, '/') || bl <= sl || strcmp(base + bl - sl, TOMB_SUFFIX) != 0)
            continue;
        char *name = lh_xasprintf("%.*s", (int)(bl - sl), base);
        char *text = NULL, *mkey = NULL;
        size_t len = 0;
        json_t *doc = NULL;
        json_error_t jerr;
        const char *problem = NULL;
        const json_t *m = lh_catalog__lookup(cat, name);
        const json_t *col = NULL;
        if (!m || strcmp(lh_json_str(m, "bucket"), bucket) != 0) {
            /* Left by a crash between a dataset's delete and its set's: the keys must not
             * outlive the dataset. A manifest that exists but was not loaded spares it. */
            mkey = lh_xasprintf("_catalog/datasets/%s.json", name);
            if (lh_storage_size(st, bucket, mkey) < 0 &&
                lh_storage_delete(st, bucket, keys[i], &err) == 0)
                lh_log(LH_LOG_INFO, "orphan_tombstones_removed", "{s:s,s:s}", "bucket", bucket,
                       "dataset", name);
            goto next;
        }
        if (lh_storage_get(st, bucket, keys[i], TOMB_MAX, &text, &len, &err) != 0) {
            problem = err.message;
        } else if (!(doc = json_loadb(text, len, 0, &jerr)) || !json_is_object(doc)) {
            problem = doc ? "not a JSON object" : jerr.text;
        } else if (!lh_json_str(doc, "format_version") ||
                   strcmp(lh_json_str(doc, "format_version"), TOMB_FORMAT) != 0 ||
                   !json_is_array(json_object_get(doc, "tombstones"))) {
            problem = "not a " TOMB_FORMAT " document";
        } else if (!(col = schema_column(m, lh_json_str(doc, "key_column")))) {
            problem = "its key column is not in the dataset's schema";
        }
        if (problem) {
            /* Never deleted: a damaged set must not silently un-erase anyone; the dataset
             * is served without it and the log says so. */
            lh_log(LH_LOG_ERROR, "tombstones_skipped", "{s:s,s:s,s:s}", "bucket", bucket, "key",
                   keys[i], "reason", problem);
            goto next;
        }
        json_object_set_new(doc, "dataset", json_string(lh_json_str(m, "name")));
        json_object_set_new(doc, "key_type", json_string(lh_json_str(col, "type")));
        size_t rolled = prune(doc, m);
        if (rolled) {
            /* Upserts that did not reach their manifest (a crash or failure between the two
             * writes): their entries hid nothing; write the set without them. A failed write
             * keeps them on disk, harmless, for the next open. */
            lh_log(LH_LOG_INFO, "tombstones_pruned", "{s:s,s:I}", "dataset", lh_json_str(m, "name"),
                   "entries", (json_int_t)rolled);
            if (set_write(cat, bucket, lh_json_str(m, "name"), doc, &err) != 0)
                lh_log(LH_LOG_WARN, "tombstones_rollback_failed", "{s:s,s:s}", "dataset",
                       lh_json_str(m, "name"), "error", err.message);
            if (set_count(doc) == 0)
                goto next;
        }
        if (notify_each && notify(t, lh_json_str(m, "name"), doc, &err) != 0)
            lh_log(LH_LOG_ERROR, "tombstones_not_applied", "{s:s,s:s}", "dataset", name, "reason",
                   err.message);
        set_put(t, lh_json_str(m, "name"), json_incref(doc));
    next:
        json_decref(doc);
        free(text);
        free(mkey);
        free(name);
    }
    lh_storage_keys_free(keys);
}

void lh_tombstones__drop(lh_catalog *cat, const char *dataset, const char *bucket)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    char *key = set_key(dataset);
    lh_error err;
    set_put(t, dataset, NULL);
    /* A failure leaves an orphan set that the next open deletes. */
    if (lh_storage_delete(lh_catalog__storage(cat), bucket, key, &err) != 0)
        lh_log(LH_LOG_WARN, "tombstones_delete_failed", "{s:s,s:s}", "dataset", dataset, "error",
               err.message);
    free(key);
}

int lh_tombstones__clear(lh_catalog *cat, const char *dataset, char *const *keys, size_t n,
                         lh_error *err)
{
    lh_tombstones *t = lh_catalog__tombstones(cat);
    const json_t *old = set_get(t, dataset);
    const json_t *m = lh_catalog__lookup(cat, dataset);
    if (!old || !m || n == 0)
        return 0;
    json_t *drop = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(drop, keys[i], json_true());
    size_t removed = 0;
    json_t *doc = without(old, drop, &removed);
    json_decref(drop);
    if (removed == 0) {
        json_decref(doc);
        return 0;
    }
    return set_publish(cat, lh_json_str(m, "name"), lh_json_str(m, "bucket"), doc, err);
}
