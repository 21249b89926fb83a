/*
 * storage: the bucket registry and the object-store backends.
 *
 * A bucket is a named object store; objects are addressed by keys ("datasets/people/
 * 1a2b.parquet", "_catalog/datasets/people.json"). Keys are relative, '/'-separated, and
 * never contain "..", empty segments, a leading '/', backslashes or control characters.
 *
 * Backends: `local` (a folder) now; `s3` later behind the same calls. The default bucket
 * `primary` lives at the data folder itself; `rescue` (at <data>/_rescue) receives objects
 * quarantined by maintenance work. Neither can be removed. The registry of other buckets is
 * persisted in the primary bucket as `_catalog/buckets.json` (written atomically).
 *
 * Writes are atomic: an object under its final key is always complete. Writers that
 * produce objects with another program (DuckDB's COPY) ask for a staging path inside the
 * bucket, write there, and call lh_storage_commit, which fsyncs and renames.
 * The one exception is lh_storage_append, for append-only logs (the event journal): a
 * crash mid-append can leave a torn last line, which the log's reader drops at open.
 *
 * Thread safety: every function may be called from any thread; the registry is guarded
 * by a rwlock. Bucket roots are returned as copies so a concurrent remove cannot pull
 * them from under a caller.
 */
#ifndef LH_STORAGE_H
#define LH_STORAGE_H

#include "core/core.h"

#define LH_BUCKET_PRIMARY "primary"
#define LH_BUCKET_RESCUE "rescue"

typedef struct lh_storage lh_storage;

/* Called after a bucket is added or removed (the query engine re-opens DuckDB with the
 * new list of allowed folders). Returns 0, or a negative LH_E* code with err filled when
 * the listener cannot apply the change: the add or remove is then undone (the registry
 * persisted again as it was) and the call fails with that error. Runs with no storage lock
 * held. */
typedef int (*lh_storage_listener)(void *ctx, lh_error *err);

/* Opens the registry rooted at data_dir (created 0700 when missing, with primary and
 * rescue; a data folder that others may read is reported with a warn log line). Loads
 * _catalog/buckets.json when present; a bucket whose root folder vanished is kept and reported by
 * lh_storage_buckets_json ("available": false). Caller frees with lh_storage_close. */
lh_storage *lh_storage_open(const char *data_dir, lh_error *err);
void lh_storage_close(lh_storage *st);

/* The data folder (absolute). Borrowed, valid until lh_storage_close. */
const char *lh_storage_data_dir(const lh_storage *st);

/* Registers a local bucket. name: lh_bucket_name_validate; root: absolute or relative to
 * the current folder, created (0700) when missing, must not be inside another bucket's
 * root nor contain one (primary's internal folders excepted: a root under <data>/buckets/
 * is allowed). LH_EEXISTS when the name is taken. Persists the registry before returning. */
int lh_storage_bucket_add(lh_storage *st, const char *name, const char *root, lh_error *err);
/* Unregisters a bucket (its files stay on disk). primary and rescue: LH_EFORBIDDEN.
 * Unknown: LH_ENOTFOUND. Callers check first that no dataset lives there (the catalog
 * does, in lh_catalog_remove_bucket). */
int lh_storage_bucket_remove(lh_storage *st, const char *name, lh_error *err);
/* True when the bucket is registered. */
bool lh_storage_bucket_exists(lh_storage *st, const char *name);
/* Array of {name, backend, root, builtin, available}, sorted by name. Caller decrefs. */
json_t *lh_storage_buckets_json(lh_storage *st);
/* Every bucket's root folder, for DuckDB's allowed_directories. NULL-terminated array of
 * strings; caller frees each and the array. */
char **lh_storage_roots(lh_storage *st);
/* Sets lh_error to LH_ENOTFOUND "unknown bucket 'x' (buckets: a, b, c)" and returns it. */
int lh_storage_unknown_bucket(lh_storage *st, const char *name, lh_error *err);
void lh_storage_set_listener(lh_storage *st, lh_storage_listener fn, void *ctx);

/* Validates an object key (see above). */
int lh_storage_key_validate(const char *key, lh_error *err);

/* Local path of an object, for readers such as DuckDB. Does not check that it exists.
 * Caller frees. NULL + LH_ENOTFOUND for an unknown bucket, LH_EINVAL for a bad key. */
char *lh_storage_path(lh_storage *st, const char *bucket, const char *key, lh_error *err);
/* A fresh staging path beside where `key` will live (parent folders created), for a
 * writer to create the object in. Caller frees; the writer then calls lh_storage_commit,
 * or lh_storage_discard on failure. */
char *lh_storage_stage(lh_storage *st, const char *bucket, const char *key, lh_error *err);
/* Makes the staged file durable under `key` (chmod 0600, fsync, rename, fsync folder). A
 * failure after the rename has the kind LH_KIND_NOT_DURABLE: the object is in place. */
int lh_storage_commit(lh_storage *st, const char *bucket, const char *staged_path, const char *key,
                      lh_error *err);
/* Removes a staged file and DuckDB's temp file beside it ("tmp_<name>", left by a failed
 * COPY); ignores missing ones. */
void lh_storage_discard(const char *staged_path);

/* Writes an object atomically from memory. */
int lh_storage_put(lh_storage *st, const char *bucket, const char *key, const void *data,
                   size_t len, lh_error *err);
/* Writes n objects of one bucket from memory, each atomic as with lh_storage_put, behind
 * one durability barrier instead of two fsyncs each (issue 11: a backfill of a million
 * subjects): every object goes to its staging file, the file system is synced once
 * (syncfs), then each is renamed and each distinct folder fsynced once. A crash leaves
 * every object either old or new and whole. A failure before the first rename changes
 * nothing; one after it has the kind LH_KIND_NOT_DURABLE (some objects are new, some
 * old), so callers must be able to repeat the batch. keys, data and lens have n items. */
int lh_storage_put_many(lh_storage *st, const char *bucket, char *const *keys, char *const *data,
                        const size_t *lens, size_t n, lh_error *err);
/* Appends to an object (an append-only log such as the catalog's event journal). `at` is
 * the size the caller knows to be good: what lies past it (the remains of an append that
 * failed after writing some bytes) is cut off first, so a retry never duplicates nor
 * follows a torn line. The bytes are written with one O_APPEND write loop and made
 * durable (fsync) before it returns; when `at` is 0 the object is created if missing and
 * its folder fsynced too. On failure the object is cut back to `at` (best effort; the next
 * append cuts it again). Not atomic with respect to readers of the same object: callers
 * serialise appends and reads of one log themselves. */
int lh_storage_append(lh_storage *st, const char *bucket, const char *key, int64_t at,
                      const void *data, size_t len, lh_error *err);
/* Reads an object (at most max_len bytes). *data is NUL-terminated; caller frees.
 * LH_ENOTFOUND when missing. */
int lh_storage_get(lh_storage *st, const char *bucket, const char *key, size_t max_len, char **data,
                   size_t *len, lh_error *err);
/* Deletes an object; a missing object is not an error. Empty parent folders up to the
 * bucket root are removed too. A failure after the unlink (the folder fsync) has the kind
 * LH_KIND_NOT_DURABLE: the object is gone, but a crash may bring it back. */
int lh_storage_delete(lh_storage *st, const char *bucket, const char *key, lh_error *err);
/* Keys under prefix (recursive, sorted, staging files excluded). *keys is a
 * NULL-terminated array; caller frees with lh_storage_keys_free. */
int lh_storage_list(lh_storage *st, const char *bucket, const char *prefix, char ***keys,
                    size_t *count, lh_error *err);
void lh_storage_keys_free(char **keys);
/* Size of an object in bytes, or -1 when missing. */
int64_t lh_storage_size(lh_storage *st, const char *bucket, const char *key);
/* Removes every staging file under prefix (left by a crash between lh_storage_stage and
 * lh_storage_commit). Only safe when nobody is writing under prefix (the catalog calls it
 * at start). Returns the number removed, or a negative LH_E* code. */
int lh_storage_sweep_staged(lh_storage *st, const char *bucket, const char *prefix, lh_error *err);

#endif
