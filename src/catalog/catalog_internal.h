/*
 * catalog_internal.h: manifest helpers (manifest.c) shared with the catalog's store
 * (catalog.c). Only files in src/catalog/ include it.
 *
 * These functions work on jansson objects only: no locks, no I/O. Functions that change a
 * manifest set fields on the object they are given, so fields they do not know survive.
 */
#ifndef LH_CATALOG_INTERNAL_H
#define LH_CATALOG_INTERNAL_H

#include "catalog/catalog.h"

#include <pthread.h>

typedef struct lh_journal lh_journal;

typedef struct entry {
    char *lname; /* lowercased name: the key */
    json_t *m;   /* the manifest; m.bucket is the bucket it was loaded from */
} entry;

/* The catalog's state, shared by the files of src/catalog/ (locking: catalog.c's header). */
struct lh_catalog {
    lh_storage *st;
    pthread_mutex_t mu;
    pthread_rwlock_t rw;
    entry *items; /* sorted by lname */
    size_t n, cap;
    lh_catalog_listener listener;
    void *listener_ctx;
    lh_catalog_retirer retirer;
    void *retirer_ctx;
    struct lh_tombstones *tomb;   /* tombstones.c's sets; mutated under mu */
    lh_journal *journal;          /* the event journal (journal.c); its lock comes after mu */
    struct lh_profiles *profiles; /* model profiles (profiles.c); own lock, never under mu */
    /* AI-safe views (safe_views.c): {lowercased name: definition}; changed under mu, and
     * under rw exclusively when swapped; read under rw shared, like items. */
    json_t *views;
    lh_catalog_view_listener view_listener;
    void *view_listener_ctx;
};

/* The manifest of name (case-insensitive), borrowed while mu or rw is held, or NULL. */
json_t *lh_catalog__lookup(const lh_catalog *cat, const char *name);

#define LH_MANIFEST_FORMAT "dataset_manifest.v1"

/* Checks an ingest's schema: a non-empty array of {name: non-empty string, type: non-empty
 * string} with no two names equal case-insensitively (SQL sees them as one). */
int lh_manifest__schema_validate(const json_t *schema, lh_error *err);
/* LH_EINVAL naming the differing columns when the schemas are not identical (same names
 * and types, same order). dataset names the dataset in the message. */
int lh_manifest__schema_same(const char *dataset, const json_t *have, const json_t *got,
                             lh_error *err);
/* Fresh columns from a schema: [{name, type, is_pii, pii_kind, sensitivity, description}]
 * with PII detection by name. Caller decrefs. */
json_t *lh_manifest__columns_from_schema(const json_t *schema);
/* Re-applies m.human_edits to m (dataset fields and columns) and recomputes the dataset's
 * sensitivity (the human's, else the highest of the columns'). */
void lh_manifest__apply_human_edits(json_t *m);
/* Validates a metadata patch against manifest m (see lh_catalog_patch_metadata). */
int lh_manifest__patch_validate(const json_t *m, const json_t *patch, lh_error *err);
/* Merges a validated patch into m.human_edits (column names resolved to m's spelling),
 * then applies the edits to m. */
void lh_manifest__patch_merge(json_t *m, const json_t *patch);
/* Sanity checks of a manifest read from disk: an object of format dataset_manifest.v1
 * whose name is `name`, with a files array of {key: string} and a schema array. */
int lh_manifest__check_loaded(const json_t *m, const char *name, lh_error *err);
/* Sum of files[].rows and files[].bytes into row_count and size_bytes. */
void lh_manifest__recount(json_t *m);

/* ---------------------------------------------------------------- AI-safe views
 * (safe_views.c) */
/* Loads the `_catalog/views/<name>.json` definitions of the primary bucket at open (unreadable ones
 * are logged and skipped, never deleted) and sweeps staging files there. Caller holds mu. */
void lh_catalog__views_load(lh_catalog *cat);
void lh_catalog__views_free(lh_catalog *cat);
/* 0, or LH_EEXISTS naming the view that holds name (a dataset may not take it). Caller
 * holds mu. */
int lh_catalog__view_name_free(const lh_catalog *cat, const char *name, lh_error *err);
/* ---------------------------------------------------------------- tombstones (tombstones.c)
 * The catalog's tombstone sets. catalog.c owns one lh_tombstones and calls the hooks below
 * at open, bucket add and dataset delete; tombstones.c reaches the catalog's lock, lookup
 * and storage through the accessors catalog.c defines. Lock order: the catalog's mu, then
 * the sets' own rwlock (a leaf: readers such as the engine take only it). */
typedef struct lh_tombstones lh_tombstones;
lh_tombstones *lh_tombstones__new(void);
void lh_tombstones__free(lh_tombstones *t);
/* Loads the sets stored in bucket (unreadable ones logged and skipped, orphans of deleted
 * datasets removed); with notify_each the listener hears of each (a bucket added at
 * runtime). Caller holds mu. */
void lh_tombstones__load(lh_catalog *cat, const char *bucket, bool notify_each);
/* Forgets and deletes the set of a dataset that was just deleted. Caller holds mu. */
void lh_tombstones__drop(lh_catalog *cat, const char *dataset, const char *bucket);
/* Removes keys from the set (after a compaction applied them). Caller holds mu. */
int lh_tombstones__clear(lh_catalog *cat, const char *dataset, char *const *keys, size_t n,
                         lh_error *err);
/* Upsert, step one of lh_catalog_commit_ingest (caller holds mu; m is the dataset's current
 * manifest): publishes the set with c's keys scoped to c->part_key (reason "superseded"),
 * before the manifest that lists the part. *count gets the entries added or moved,
 * *erased the keys left plain (an erasure wins). On success *undo gets the previous set
 * (NULL: none; caller passes it to lh_tombstones__restore if the manifest write fails, or
 * decrefs it). LH_EINVAL (no such column, a type that cannot be a key, a key not in
 * canonical form: named by position, never by value), LH_ECONFLICT (the set uses another
 * column), a write failure, or LH_EIO when the set's write may not be durable (the
 * manifest must not outlive it): nothing of the upsert is then served. */
int lh_tombstones__supersede(lh_catalog *cat, const json_t *m, const lh_catalog_commit *c,
                             json_t **undo, size_t *count, size_t *erased, lh_error *err);
/* Puts back the set an upsert replaced (undo stolen; NULL: none). A failure is logged: the
 * upsert's entries then hide nothing and are pruned later. Caller holds mu. */
void lh_tombstones__restore(lh_catalog *cat, const char *dataset, const char *bucket, json_t *undo);
/* Compaction: which of the applied keys (keys[i] with live part live[i], live NULL: all
 * plain) are still in the set unchanged; their pointers (borrowed from keys) go to out
 * (room for n). Returns how many. Caller holds mu. */
size_t lh_tombstones__clearable(lh_catalog *cat, const char *dataset, char *const *keys,
                                char *const *live, size_t n, char **out);
/* Compaction, before its manifest write: scoped entries whose live part is one of
 * replaced[0..n) move to part, their old live part kept as previous_part (the fallback
 * while the old manifest is served). 0 when nothing moved or the set was published.
 * Caller holds mu. */
int lh_tombstones__rebase(lh_catalog *cat, const char *dataset, const char *bucket,
                          char *const *replaced, size_t n, const char *part, lh_error *err);

/* Accessors of catalog.c for tombstones.c. */
void lh_catalog__lock(lh_catalog *cat);
void lh_catalog__unlock(lh_catalog *cat);
lh_storage *lh_catalog__storage(lh_catalog *cat);
lh_tombstones *lh_catalog__tombstones(lh_catalog *cat);
/* ---------------------------------------------------------------- event journal
 * (journal.c). Its own lock, taken after any catalog lock. */
/* Loads `_catalog/events.jsonl` from primary (absent: empty journal), dropping a torn last
 * line. NULL + err when it cannot be read. Caller frees with lh_journal__close, which
 * writes pending events one last time. */
lh_journal *lh_journal__open(lh_storage *st, lh_error *err);
void lh_journal__close(lh_journal *j);
/* See lh_catalog_record. */
int lh_journal__record(lh_journal *j, const char *actor, const char *action, const char *target,
                       json_t *details, lh_error *err);
/* See lh_catalog_events. */
json_t *lh_journal__events(lh_journal *j, int64_t since, size_t limit, int64_t *next_since);
/* The catalog's journal (catalog.c), borrowed for the catalog's lifetime. */
lh_journal *lh_catalog__journal(lh_catalog *cat);

/* ---------------------------------------------------------------- model profiles
 * (profiles.c). Its own lock, taken before the catalog's rw and the journal's. */
typedef struct lh_profiles lh_profiles;
/* Loads `_catalog/profiles/<id>.json` from primary (unreadable ones logged and skipped).
 * NULL + err when they cannot be listed. Free with lh_profiles__close. */
lh_profiles *lh_profiles__open(lh_storage *st, lh_error *err);
void lh_profiles__close(lh_profiles *p);
/* The catalog's profiles (catalog.c), borrowed for the catalog's lifetime. */
lh_profiles *lh_catalog__profiles(lh_catalog *cat);

/* ---------------------------------------------------------------- PII (pii.c, pii_content.c) */

/* True when the column name, cut into words as lh_pii_by_name cuts it ("appVersion" ->
 * app|version), has the word `token` (lowercase). */
bool lh_pii__name_has_token(const char *column, const char *token);
/* Columns from a schema as lh_manifest__columns_from_schema, each column's PII fields taken
 * from content_pii[name] (lh_pii_verdict_json objects from the ingest's sample) when there,
 * else from the name alone. Caller decrefs. */
json_t *lh_manifest__columns_detect(const json_t *schema, const json_t *content_pii);
/* An append's sample escalates: a column not PII in m whose content_pii entry is PII takes
 * that verdict (a new part never clears what earlier parts showed). Human edits are applied
 * afterwards by the caller. */
void lh_manifest__escalate_pii(json_t *m, const json_t *content_pii);

#endif
