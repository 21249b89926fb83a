/*
 * storage.c: the bucket registry.
 *
 * Buckets are kept in one array sorted by name, guarded by a rwlock: object calls take it
 * shared just long enough to copy a bucket's root, so a concurrent remove never pulls a
 * root from under an I/O call, and no I/O on objects happens under the lock.
 *
 * Invariants:
 *   - `primary` (root = the data folder) and `rescue` (<data>/_rescue) always exist and
 *     are never written to the registry file; they cannot be removed.
 *   - No bucket root is inside another's or contains another's, except roots under
 *     <data>/buckets/ (inside primary's root): primary never lists or resolves keys under
 *     its reserved folders `buckets/` and `_rescue/`, so the two cannot see each other.
 *   - The registry file `_catalog/buckets.json` in primary is rewritten atomically after
 *     every add/remove, before the call returns; the in-memory change is rolled back when
 *     the write fails before its rename, so memory and disk never disagree. When only the
 *     folder fsync after the rename failed (LH_KIND_NOT_DURABLE) the new registry is what
 *     disk shows now: the change is kept (rolled forward) and a warning logged.
 *   - The data folder and every folder created under it are owner-only (0700); opening a
 *     data folder that group or others may read logs a warning.
 *   - Registry entries with a backend this build does not know are carried through
 *     rewrites unchanged (forward compatibility), as are unknown fields of local entries.
 */
#include "storage_internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REGISTRY_KEY "_catalog/buckets.json"
#define REGISTRY_FORMAT "bucket_registry.v1"
#define REGISTRY_MAX (16u << 20)

typedef struct lh_bucket {
    char *name;
    char *root;   /* absolute, normalised */
    bool builtin; /* primary and rescue */
    json_t *doc;  /* the registry entry as loaded or added (unknown fields kept); NULL for
                     builtins */
} lh_bucket;

struct lh_storage {
    char *data_dir;
    pthread_rwlock_t lock; /* guards buckets, n, cap, foreign, listener */
    lh_bucket *buckets;    /* sorted by name */
    size_t n, cap;
    json_t *foreign; /* registry entries of unknown backends, written back as they were */
    lh_storage_listener listener;
    void *listener_ctx;
    pthread_mutex_t dir_lock; /* see lh_storage__dir_lock */
};

/* ---------------------------------------------------------------- bucket array */

static void bucket_free(lh_bucket *b)
{
    free(b->name);
    free(b->root);
    json_decref(b->doc);
}

/* Index of name, or -(insertion point) - 1. Caller holds the lock. */
static ssize_t bucket_find(const lh_storage *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->buckets[mid].name, name);
        if (c == 0)
            return (ssize_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(ssize_t)lo - 1;
}

/* Takes ownership of the fields of b. Caller holds the lock and checked the name is new. */
static void bucket_insert(lh_storage *st, lh_bucket b)
{
    ssize_t at = bucket_find(st, b.name);
    size_t pos = (size_t)(-at - 1);
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 8;
        st->buckets = lh_xrealloc(st->buckets, st->cap * sizeof(*st->buckets));
    }
    memmove(st->buckets + pos + 1, st->buckets + pos, (st->n - pos) * sizeof(*st->buckets));
    st->buckets[pos] = b;
    st->n++;
}

/* Removes entry i and returns it (caller frees or re-inserts). */
static lh_bucket bucket_take(lh_storage *st, size_t i)
{
    lh_bucket b = st->buckets[i];
    memmove(st->buckets + i, st->buckets + i + 1, (st->n - i - 1) * sizeof(*st->buckets));
    st->n--;
    return b;
}

bool lh_storage__path_within(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0)
        return true;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* ---------------------------------------------------------------- registry file */

/* Writes the registry. Caller holds the write lock. */
static int registry_persist(lh_storage *st, lh_error *err)
{
    json_t *list = json_array();
    for (size_t i = 0; i < st->n; i++) {
        const lh_bucket *b = &st->buckets[i];
        if (b->builtin)
            continue;
        json_array_append(list, b->doc);
    }
    json_array_extend(list, st->foreign);
    json_t *doc = json_pack("{s:s,s:o}", "format_version", REGISTRY_FORMAT, "buckets", list);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        return lh_error_set(err, LH_EINTERNAL, "cannot render the bucket registry");
    char *dir = lh_path_join(st->data_dir, "_catalog");
    char *path = lh_path_join(st->data_dir, REGISTRY_KEY);
    int rc = lh_fs_mkdirs(dir, LH_DIR_MODE, err);
    if (rc == 0)
        rc = lh_fs_write_atomic(path, text, strlen(text), err);
    if (rc && lh_error_not_durable(err)) {
        /* The new registry is in place; only its durability is unknown. Keeping it is the
         * one choice that matches what every later read sees. */
        lh_log(LH_LOG_WARN, "bucket_registry_not_durable", "{s:s}", "error", err->message);
        lh_error_clear(err);
        rc = 0;
    }
    free(text);
    free(dir);
    free(path);
    return rc;
}

/* Loads one registry entry; bad entries are logged and skipped (the registry must not
 * stop the server from starting). Caller holds the write lock (or is open). */
static void registry_load_entry(lh_storage *st, json_t *e)
{
    const char *name = lh_json_str(e, "name");
    const char *backend = lh_json_str(e, "backend");
    const char *root = lh_json_str(e, "root");
    lh_error err;
    if (!json_is_object(e) || !name || lh_bucket_name_validate(name, &err) != 0) {
        lh_log(LH_LOG_WARN, "bucket_registry_entry_skipped", "{s:s}", "reason",
               "entry without a valid name");
        return;
    }
    if (backend && strcmp(backend, "local") != 0) {
        lh_log(LH_LOG_WARN, "bucket_backend_unknown", "{s:s,s:s}", "bucket", name, "backend",
               backend);
        json_array_append(st->foreign, e);
        return;
    }
    if (!root || !*root || bucket_find(st, name) >= 0) {
        lh_log(LH_LOG_WARN, "bucket_registry_entry_skipped", "{s:s,s:s}", "bucket", name, "reason",
               root && *root ? "duplicate name" : "no root");
        return;
    }
    /* Roots are written absolute; a hand-edited relative root is taken relative to the
     * data folder, so moving the data folder keeps it working. */
    char *joined = root[0] == '/' ? lh_xstrdup(root) : lh_path_join(st->data_dir, root);
    char *abs = lh_path_absolute(joined, &err);
    free(joined);
    if (!abs) {
        lh_log(LH_LOG_WARN, "bucket_registry_entry_skipped", "{s:s,s:s}", "bucket", name, "reason",
               err.message);
        return;
    }
    lh_bucket b = {lh_xstrdup(name), abs, false, json_incref(e)};
    bucket_insert(st, b);
}

static int registry_load(lh_storage *st, lh_error *err)
{
    char *path = lh_path_join(st->data_dir, REGISTRY_KEY);
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    int rc = lh_fs_read_all(path, REGISTRY_MAX, &text, &len, err);
    if (rc == LH_ENOTFOUND) {
        lh_error_clear(err);
        rc = 0;
        goto out;
    }
    if (rc)
        goto out;
    json_error_t jerr;
    doc = json_loadb(text, len, 0, &jerr);
    json_t *list = json_object_get(doc, "buckets");
    if (!json_is_object(doc) || !json_is_array(list)) {
        /* Refuse to start rather than silently forget buckets: the next add would
         * overwrite the file and lose them for good. */
        rc =
            lh_error_set(err, LH_EINVAL, "bucket registry '%s' is not valid (%s); fix or remove it",
                         path, doc ? "no \"buckets\" array" : jerr.text);
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) registry_load_entry(st, e);
out:
    json_decref(doc);
    free(text);
    free(path);
    return rc;
}

/* Registry temp files left by a crash inside lh_fs_write_atomic ("buckets.json.<hex>.tmp"). */
static void registry_sweep_temps(const lh_storage *st)
{
    char *dir = lh_path_join(st->data_dir, "_catalog");
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);
            if (strncmp(de->d_name, "buckets.json.", 13) == 0 && l > 17 &&
                strcmp(de->d_name + l - 4, ".tmp") == 0) {
                char *p = lh_path_join(dir, de->d_name);
                unlink(p);
                free(p);
            }
        }
        closedir(d);
    }
    free(dir);
}

/* ---------------------------------------------------------------- open / close */

/* The data folder holds personal data: one that group or others may read or enter is
 * reported loudly (we do not change a folder the operator chose; see docs/SECURITY.md). */
static void warn_if_readable(const char *dir)
{
    struct stat s;
    if (stat(dir, &s) != 0 || (s.st_mode & 077) == 0)
        return;
    char mode[8];
    snprintf(mode, sizeof(mode), "%04o", (unsigned)(s.st_mode & 07777));
    lh_log(LH_LOG_WARN, "data_dir_not_private", "{s:s,s:s,s:s}", "path", dir, "mode", mode,
           "message",
           "the data folder is readable by other accounts; personal data should be owner-only: "
           "run chmod -R go-rwx on it");
}

lh_storage *lh_storage_open(const char *data_dir, lh_error *err)
{
    lh_storage *st = lh_xcalloc(1, sizeof(*st));
    pthread_rwlock_init(&st->lock, NULL);
    pthread_mutex_init(&st->dir_lock, NULL);
    st->foreign = json_array();
    char *rescue = NULL;
    st->data_dir = lh_path_absolute(data_dir, err);
    if (!st->data_dir)
        goto fail;
    if (lh_fs_mkdirs(st->data_dir, LH_DIR_MODE, err) != 0)
        goto fail;
    warn_if_readable(st->data_dir);
    rescue = lh_path_join(st->data_dir, "_rescue");
    if (lh_fs_mkdirs(rescue, LH_DIR_MODE, err) != 0)
        goto fail;
    bucket_insert(st,
                  (lh_bucket){lh_xstrdup(LH_BUCKET_PRIMARY), lh_xstrdup(st->data_dir), true, NULL});
    bucket_insert(st, (lh_bucket){lh_xstrdup(LH_BUCKET_RESCUE), rescue, true, NULL});
    rescue = NULL;
    registry_sweep_temps(st);
    if (registry_load(st, err) != 0)
        goto fail;
    return st;
fail:
    free(rescue);
    lh_storage_close(st);
    return NULL;
}

void lh_storage_close(lh_storage *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        bucket_free(&st->buckets[i]);
    free(st->buckets);
    json_decref(st->foreign);
    free(st->data_dir);
    pthread_rwlock_destroy(&st->lock);
    pthread_mutex_destroy(&st->dir_lock);
    free(st);
}

const char *lh_storage_data_dir(const lh_storage *st)
{
    return st->data_dir;
}

void lh_storage_set_listener(lh_storage *st, lh_storage_listener fn, void *ctx)
{
    pthread_rwlock_wrlock(&st->lock);
    st->listener = fn;
    st->listener_ctx = ctx;
    pthread_rwlock_unlock(&st->lock);
}

/* Called after the lock is released: the listener re-opens DuckDB, which calls back into
 * lh_storage_roots. Returns the listener's verdict (0 = applied). */
static int notify(lh_storage *st, lh_error *err)
{
    pthread_rwlock_rdlock(&st->lock);
    lh_storage_listener fn = st->listener;
    void *ctx = st->listener_ctx;
    pthread_rwlock_unlock(&st->lock);
    if (!fn)
        return 0;
    lh_error lerr;
    int rc = fn(ctx, &lerr);
    if (rc)
        lh_error_setk(err, lerr.code, lh_error_kind(&lerr), "%s", lerr.message);
    return rc;
}

/* ---------------------------------------------------------------- add / remove */

/* Checks that root neither lies inside nor contains another bucket's root. Caller holds
 * the lock. */
static int check_overlap(lh_storage *st, const char *root, lh_error *err)
{
    char *reserved = lh_path_join(st->data_dir, "buckets");
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        const lh_bucket *b = &st->buckets[i];
        bool inside = lh_storage__path_within(root, b->root);
        bool contains = lh_storage__path_within(b->root, root);
        /* <data>/buckets/x is inside primary's root, but primary never touches buckets/. */
        if (inside && !contains && strcmp(b->name, LH_BUCKET_PRIMARY) == 0 &&
            lh_storage__path_within(root, reserved) && strcmp(root, reserved) != 0)
            continue;
        if (inside || contains)
            rc = lh_error_set(err, LH_ECONFLICT,
                              "bucket root '%s' %s the root of bucket '%s' ('%s'); bucket "
                              "folders may not overlap (use a folder under '%s/' or outside "
                              "the data folder)",
                              root,
                              contains && inside ? "is"
                              : inside           ? "is inside"
                                                 : "contains",
                              b->name, b->root, reserved);
    }
    free(reserved);
    return rc;
}

int lh_storage_bucket_add(lh_storage *st, const char *name, const char *root, lh_error *err)
{
    if (lh_bucket_name_validate(name, err) != 0)
        return err ? err->code : LH_EINVAL;
    if (!root || !*root)
        return lh_error_set(err, LH_EINVAL, "bucket '%s' needs a root folder", name);
    char *abs = lh_path_absolute(root, err);
    if (!abs)
        return err ? err->code : LH_EINVAL;
    int rc = 0;
    bool added = false;
    pthread_rwlock_wrlock(&st->lock);
    if (bucket_find(st, name) >= 0) {
        rc = lh_error_set(err, LH_EEXISTS, "bucket '%s' already exists", name);
        goto out;
    }
    rc = check_overlap(st, abs, err);
    if (rc)
        goto out;
    rc = lh_fs_mkdirs(abs, LH_DIR_MODE, err);
    if (rc)
        goto out;
    json_t *doc = json_pack("{s:s,s:s,s:s}", "name", name, "backend", "local", "root", abs);
    bucket_insert(st, (lh_bucket){lh_xstrdup(name), lh_xstrdup(abs), false, doc});
    rc = registry_persist(st, err);
    if (rc) {
        lh_bucket b = bucket_take(st, (size_t)bucket_find(st, name));
        bucket_free(&b);
        goto out;
    }
    added = true;
out:
    pthread_rwlock_unlock(&st->lock);
    if (added) {
        rc = notify(st, err);
        if (rc) {
            /* The engine cannot serve the new bucket: undo, so the caller never sees a
             * bucket whose datasets no query can read. */
            pthread_rwlock_wrlock(&st->lock);
            ssize_t i = bucket_find(st, name);
            if (i >= 0) {
                lh_bucket b = bucket_take(st, (size_t)i);
                bucket_free(&b);
                lh_error perr;
                if (registry_persist(st, &perr) != 0)
                    lh_log(LH_LOG_ERROR, "bucket_add_undo_failed", "{s:s,s:s}", "bucket", name,
                           "message", perr.message);
            }
            pthread_rwlock_unlock(&st->lock);
            /* no second notify: a listener that fails has changed nothing */
        } else {
            lh_log(LH_LOG_INFO, "bucket_added", "{s:s,s:s}", "bucket", name, "root", abs);
        }
    }
    free(abs);
    return rc;
}

int lh_storage_bucket_remove(lh_storage *st, const char *name, lh_error *err)
{
    int rc = 0;
    bool removed = false;
    lh_bucket b = {0};
    pthread_rwlock_wrlock(&st->lock);
    ssize_t i = name ? bucket_find(st, name) : -1;
    if (i < 0) {
        pthread_rwlock_unlock(&st->lock);
        return lh_storage_unknown_bucket(st, name ? name : "", err);
    }
    if (st->buckets[i].builtin) {
        rc =
            lh_error_set(err, LH_EFORBIDDEN, "bucket '%s' is built in and cannot be removed", name);
        goto out;
    }
    b = bucket_take(st, (size_t)i);
    rc = registry_persist(st, err);
    if (rc) {
        bucket_insert(st, b);
        goto out;
    }
    removed = true;
out:
    pthread_rwlock_unlock(&st->lock);
    if (removed) {
        rc = notify(st, err);
        if (rc) {
            /* Put the bucket back (the engine still serves it), unless one of its name was
             * added meanwhile. */
            pthread_rwlock_wrlock(&st->lock);
            if (bucket_find(st, b.name) < 0) {
                bucket_insert(st, b);
                b = (lh_bucket){0};
                lh_error perr;
                if (registry_persist(st, &perr) != 0)
                    lh_log(LH_LOG_ERROR, "bucket_remove_undo_failed", "{s:s,s:s}", "bucket", name,
                           "message", perr.message);
            }
            pthread_rwlock_unlock(&st->lock);
        } else {
            lh_log(LH_LOG_INFO, "bucket_removed", "{s:s}", "bucket", name);
        }
        bucket_free(&b);
    }
    return rc;
}

/* ---------------------------------------------------------------- queries */

bool lh_storage_bucket_exists(lh_storage *st, const char *name)
{
    if (!name)
        return false;
    pthread_rwlock_rdlock(&st->lock);
    bool found = bucket_find(st, name) >= 0;
    pthread_rwlock_unlock(&st->lock);
    return found;
}

static bool is_dir(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

json_t *lh_storage_buckets_json(lh_storage *st)
{
    json_t *out = json_array();
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i < st->n; i++) {
        const lh_bucket *b = &st->buckets[i];
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:b,s:b}", "name", b->name, "backend",
                                             "local", "root", b->root, "builtin", b->builtin,
                                             "available", is_dir(b->root)));
    }
    pthread_rwlock_unlock(&st->lock);
    return out;
}

char **lh_storage_roots(lh_storage *st)
{
    pthread_rwlock_rdlock(&st->lock);
    char **roots = lh_xcalloc(st->n + 1, sizeof(*roots));
    for (size_t i = 0; i < st->n; i++)
        roots[i] = lh_xstrdup(st->buckets[i].root);
    pthread_rwlock_unlock(&st->lock);
    return roots;
}

int lh_storage_unknown_bucket(lh_storage *st, const char *name, lh_error *err)
{
    lh_buf names;
    lh_buf_init(&names);
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i < st->n; i++) {
        if (i)
            lh_buf_puts(&names, ", ");
        lh_buf_puts(&names, st->buckets[i].name);
    }
    pthread_rwlock_unlock(&st->lock);
    int rc = lh_error_set(err, LH_ENOTFOUND, "unknown bucket '%s' (buckets: %s)", name,
                          names.data ? names.data : "");
    lh_buf_free(&names);
    return rc;
}

/* ---------------------------------------------------------------- internal */

char *lh_storage__root(lh_storage *st, const char *bucket, bool *is_primary, lh_error *err)
{
    char *root = NULL;
    pthread_rwlock_rdlock(&st->lock);
    ssize_t i = bucket ? bucket_find(st, bucket) : -1;
    if (i >= 0)
        root = lh_xstrdup(st->buckets[i].root);
    pthread_rwlock_unlock(&st->lock);
    if (!root) {
        lh_storage_unknown_bucket(st, bucket ? bucket : "", err);
        return NULL;
    }
    if (is_primary)
        *is_primary = strcmp(bucket, LH_BUCKET_PRIMARY) == 0;
    return root;
}

void lh_storage__dir_lock(lh_storage *st)
{
    pthread_mutex_lock(&st->dir_lock);
}

void lh_storage__dir_unlock(lh_storage *st)
{
    pthread_mutex_unlock(&st->dir_lock);
}
