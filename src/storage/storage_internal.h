/*
 * storage_internal.h: what the registry (storage.c) shares with the local backend
 * (local.c). Only files in src/storage/ include it.
 */
#ifndef LH_STORAGE_INTERNAL_H
#define LH_STORAGE_INTERNAL_H

#include "storage/storage.h"

/* Suffix marker of staging files: "<final>.stage-<random>.tmp". Listing hides them and
 * lh_storage_sweep_staged removes them; keys may not contain it. */
#define LH_STAGE_MARK ".stage-"
#define LH_STAGE_SUFFIX ".tmp"

/* Resolves (bucket, key) to a local path after validating the key (and refusing
 * primary's reserved folders). Caller frees the path; *root_out (if not NULL) gets a copy
 * of the bucket root, caller frees. NULL + LH_ENOTFOUND / LH_EINVAL on failure. */
char *lh_storage__resolve(lh_storage *st, const char *bucket, const char *key, char **root_out,
                          lh_error *err);
/* Copy of a bucket's root, or NULL + LH_ENOTFOUND. *is_primary tells whether it is the
 * primary bucket (whose listing hides internal folders). Caller frees. */
char *lh_storage__root(lh_storage *st, const char *bucket, bool *is_primary, lh_error *err);
/* Serialises "create folders + create a file in them" against "remove empty folders", so
 * lh_storage_delete never removes a folder a concurrent writer has just created. */
void lh_storage__dir_lock(lh_storage *st);
void lh_storage__dir_unlock(lh_storage *st);
/* True when path is root or inside it (lexically; both absolute and normalised). */
bool lh_storage__path_within(const char *path, const char *root);
/* True when a file name (last segment) is a staging file. */
bool lh_storage__is_staging_name(const char *base);

#endif
