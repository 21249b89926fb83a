/*
 * catalog: datasets that describe themselves.
 *
 * Every dataset has a manifest, a JSON object stored in the dataset's bucket at
 * `_catalog/datasets/<name>.json` (atomic write). The in-memory catalog is rebuilt from
 * the manifests of every registered bucket at start. Manifests are kept as jansson
 * objects, so fields this version does not know survive a read-modify-write.
 *
 * Manifest (format "dataset_manifest.v1"; docs/API.md shows an example):
 *   format_version  "dataset_manifest.v1"
 *   id              32 hex chars, new on create and on replace
 *   name, bucket
 *   version         integer, +1 on every change (optimistic concurrency for ingest)
 *   files           [{key, rows, bytes, kind: "base"|"append", created_at}]
 *   compression     "zstd"
 *   schema          [{name, type}]               physical schema (DuckDB type names)
 *   columns         [{name, type, is_pii, pii_kind, sensitivity, description,
 *                   pii_evidence: {detector, match_rate, sampled, name_signal}}]
 *   row_count, size_bytes
 *   description, owner, sensitivity ("None"|"PII"|"Financial"|"PHI"|"Biometric"), tags[]
 *   freshness       null or an object set by PATCH (e.g. {"max_age_hours": 24})
 *   lineage         {source_system, source, format, job, ingested_at, actor}
 *   human_edits     what PATCH .../metadata set: {description?, owner?, sensitivity?,
 *                   tags?, freshness?, columns?: {col: {is_pii?, pii_kind?, sensitivity?,
 *                   description?}}, subject_key_column?}; re-applied after every ingest
 *                   so human edits win over detection
 *   subject_key_column  (issue 11) the column holding subjects' candidate ids, when a
 *                   human set one (PATCH; must name a column; null clears it); absent
 *                   while the dataset has no such column
 *   created_at, updated_at   RFC 3339 UTC
 *
 * Dataset-level sensitivity is the highest of its columns' (None < PII < Financial < PHI <
 * Biometric) unless a human set it.
 *
 * Dataset names are unique across all buckets, case-insensitively (they are SQL relation
 * names). Thread safety: all calls are safe from any thread; mutations are serialised by
 * one lock, reads copy what they return.
 */
#ifndef LH_CATALOG_H
#define LH_CATALOG_H

#include "core/core.h"
#include "storage/storage.h"

typedef struct lh_catalog lh_catalog;

typedef enum { LH_MODE_CREATE, LH_MODE_REPLACE, LH_MODE_APPEND } lh_ingest_mode;

/* Parses "create" | "replace" | "append" (NULL or "" means create). */
int lh_ingest_mode_parse(const char *s, lh_ingest_mode *mode, lh_error *err);

/* Called when a dataset's manifest is about to change (manifest != NULL) or the dataset is
 * about to be deleted (manifest == NULL), before the change is made durable. Returns 0, or
 * a negative LH_E* code with err filled when the listener cannot apply the change (the
 * query engine cannot create the dataset's view, or cannot open a database): the change is
 * then not made and the mutating call fails with that error (like libgit2's GIT_EUSER).
 * When the durable write then fails, the listener is called again with the previous
 * manifest (NULL when there was none). Runs under the catalog's mutation lock, so
 * listeners see changes in commit order; they must not call back into mutating catalog
 * functions. */
typedef int (*lh_catalog_listener)(void *ctx, const char *name, const json_t *manifest,
                                   lh_error *err);

/* Loads every manifest of every bucket. Manifests that cannot be parsed are logged and
 * skipped (never deleted). Objects under datasets/<name>/ that no manifest references
 * (left by a crash between writing a part and committing the manifest, or between
 * committing and deleting old parts) are removed, as are stale staging files.
 * Caller frees with lh_catalog_close; st must outlive the catalog. */
lh_catalog *lh_catalog_open(lh_storage *st, lh_error *err);
void lh_catalog_close(lh_catalog *cat);

/* Registers a listener (one; the query engine). */
void lh_catalog_set_listener(lh_catalog *cat, lh_catalog_listener fn, void *ctx);

/* Takes over deleting superseded objects (the old parts after a replace, a deleted
 * dataset's parts): the callee deletes them with lh_storage_delete once no reader can
 * still be using them. keys are borrowed for the call. Called after the new manifest is
 * durable and the listener ran, with no catalog lock held. Without a retirer the catalog
 * deletes them at once. */
typedef void (*lh_catalog_retirer)(void *ctx, const char *bucket, char *const *keys, size_t n);
void lh_catalog_set_retirer(lh_catalog *cat, lh_catalog_retirer fn, void *ctx);

/* Array of manifest copies sorted by name. Caller decrefs. */
json_t *lh_catalog_list(lh_catalog *cat);
/* Copy of one manifest; NULL + LH_ENOTFOUND ("no dataset named 'x'"). Caller decrefs. */
json_t *lh_catalog_get(lh_catalog *cat, const char *name, lh_error *err);
/* True when a dataset of that name exists (case-insensitive). */
bool lh_catalog_exists(lh_catalog *cat, const char *name);

/* What an ingest hands to the catalog once its part file is committed in the bucket. */
typedef struct lh_catalog_commit {
    const char *name;
    const char *bucket; /* where the part lives */
    lh_ingest_mode mode;
    json_int_t expected_version; /* append/replace: the version the ingest read, or 0 (an
                                    append with expected_id is rebased past it) */
    const char *expected_id;     /* with it, the dataset id the ingest read (a dataset
                                    deleted and recreated restarts at version 1) */
    const char *new_id;          /* create/replace: the new generation's id, which names
                                    the folder its parts live in (datasets/<name>/<id>/),
                                    or NULL for a fresh random one */
    const char *part_key;        /* committed object key */
    int64_t part_rows;
    int64_t part_bytes;
    const json_t *schema;    /* [{name, type}] of the part (borrowed) */
    const json_t *lineage;   /* {source_system, source, format, ...} (borrowed) */
    const char *compression; /* "zstd" */
    const char *actor;       /* who asked (key name, or "anonymous") */
    /* PII found by content: {column: lh_pii_verdict_json(...)} from the ingest's sample of
     * this part (borrowed), or NULL (then the column names alone decide). create/replace:
     * the columns' verdicts; append: escalates columns not yet PII. Human edits win. */
    const json_t *content_pii;
    /* Upsert (append only; a database sync with a key): the rows of the dataset's parts
     * other than this one whose supersede_column holds one of supersede_keys (canonical,
     * lh_tombstone_key_text) are replaced by this part's. The catalog records them, in
     * this same commit, as tombstones scoped to "every part but part_key" (reason
     * "superseded", actor c->actor), so a query sees the old rows until the manifest
     * write and the new ones after it, never both and never neither. supersede_column
     * becomes the dataset's tombstone key column (LH_ECONFLICT naming the first, as for
     * lh_catalog_tombstone_add, when the set already has another). NULL / 0: a plain
     * append. How (tombstones below): the set is written first, its new entries inactive
     * until a manifest lists part_key, then the manifest. A key with an erasure stays
     * erased. Errors besides the append's: LH_EINVAL (not an append, a column that cannot
     * be a key, a key not in canonical form), LH_EIO when the set's write may not be
     * durable (the upsert is then not made). The append's event counts the keys
     * (details.superseded), never lists them. */
    const char *supersede_column;
    char *const *supersede_keys;
    size_t n_supersede;
} lh_catalog_commit;

/* Commits an ingest:
 *   create:  LH_EEXISTS when the name is taken (in any bucket);
 *   replace: a new manifest (new id, files = [part]); creates when absent; human edits
 *            carried over; the old parts are deleted after the new manifest is durable;
 *   append:  LH_ENOTFOUND when absent; LH_EINVAL when the part's schema differs;
 *            LH_EINVAL when bucket differs from the dataset's; the part is added.
 * LH_ECONFLICT when expected_version (or expected_id) is set and differs (a concurrent
 * change won), except that appends commute: an append with expected_id set is rebased onto
 * the latest version of the same dataset (same id: no replace, delete or re-create since)
 * and its schema checked against that version's, so concurrent appends all land.
 * The manifest write is the linearization point. On any failure nothing changed and the
 * caller deletes its part, except LH_KIND_EVENT_NOT_RECORDED: the commit happened (the
 * part is referenced and must stay), only its journal event is still pending. On success
 * *manifest_out (if not NULL) gets a copy; caller decrefs. PII detection (c->content_pii,
 * else by column name) is recorded here, then human edits are applied. */
int lh_catalog_commit_ingest(lh_catalog *cat, const lh_catalog_commit *c, json_t **manifest_out,
                             lh_error *err);

/* Deletes a dataset: the manifest first (the linearization point), then its objects. */
int lh_catalog_delete(lh_catalog *cat, const char *name, const char *actor, lh_error *err);

/* Applies a metadata patch (see human_edits above; unknown fields, unknown columns and
 * bad types are LH_EINVAL naming them). Recorded in human_edits so later ingests keep it.
 * *manifest_out (if not NULL) gets the new manifest; caller decrefs. */
int lh_catalog_patch_metadata(lh_catalog *cat, const char *name, const json_t *patch,
                              const char *actor, json_t **manifest_out, lh_error *err);

/* Adds a bucket (lh_storage_bucket_add) and loads any dataset manifests already in it
 * (names that clash with existing datasets, and datasets the listener refuses, are skipped
 * and logged). */
int lh_catalog_add_bucket(lh_catalog *cat, const char *name, const char *root, lh_error *err);
/* Removes a bucket: LH_ECONFLICT naming the datasets that still live there. */
int lh_catalog_remove_bucket(lh_catalog *cat, const char *name, lh_error *err);

/* ---------------------------------------------------------------- event journal
 * (journal.c; docs/GOVERNANCE.md "Event journal")
 *
 * Every catalog mutation appends an event {seq, at, actor, action, target, details} to an
 * append-only journal in the primary bucket (`_catalog/events.jsonl`, one JSON line per
 * event). seq starts at 1 and grows by one per event, without gaps; events are appended
 * after their mutation is durable, by the mutating call while it still holds the lock that
 * serialised the mutation, so seq order is commit order. Actions are dotted:
 * dataset.created|replaced|appended|deleted|metadata_edited, view.created|deleted,
 * tombstone.added|removed, dataset.compacted, profile.created|deleted,
 * key.created|revoked|attributes_set, buckets.migrated, source.created|deleted (issue 13,
 * sources/store.c). Details never hold secrets
 * (keys, hashes, DSNs, file contents). */

/* The kind of the error a mutation returns when it was made but its event could not be
 * appended: the event stays pending in memory and is appended before the next one (and at
 * close). HTTP answers 500 with this kind, so the request does not claim a clean success. */
#define LH_KIND_EVENT_NOT_RECORDED "event_not_recorded"
/* True when err reports such a failure (the mutation itself took effect). */
bool lh_error_event_not_recorded(const lh_error *err);

/* Appends an event. actor: key name (NULL: "anonymous"); target: what changed (a dataset,
 * view, profile or key name; NULL: ""); details: an object or NULL, stolen in every case.
 * Safe from any thread, with or without a catalog lock held (take it before, never while
 * in a journal call). LH_EIO with kind LH_KIND_EVENT_NOT_RECORDED when the append failed
 * (see above). */
int lh_catalog_record(lh_catalog *cat, const char *actor, const char *action, const char *target,
                      json_t *details /* stolen, may be NULL */, lh_error *err);
/* Copies of the durable events with seq > since, oldest first, at most limit. *next_since
 * (if not NULL) gets the seq of the last one returned, or since when none: pass it as the
 * next call's since. Caller decrefs. */
json_t *lh_catalog_events(lh_catalog *cat, int64_t since, size_t limit, int64_t *next_since);

/* The event tap (issue 14: the vector module's stale marks): fn hears every event once it
 * is durable, in seq order, with the event borrowed for the call. It runs under the
 * journal's lock, inside the mutation that recorded the event (often under the catalog's
 * lock too), so it must neither call the catalog nor block: record and signal. One tap;
 * fn NULL clears it, and once that call returns no tap call is running. */
typedef void (*lh_catalog_event_tap)(void *ctx, const json_t *event);
void lh_catalog_set_event_tap(lh_catalog *cat, lh_catalog_event_tap fn, void *ctx);

/* ---------------------------------------------------------------- model profiles
 * (profiles.c; docs/GOVERNANCE.md "Model profiles")
 *
 * A profile names an AI model and the relations its agent keys read:
 *   {id, model_name, description, bound_datasets[], index_config (object|null),
 *    embed_model (string|null), bucket, created_at, created_by}
 * id is a slug ([a-z0-9][a-z0-9-]{0,62}). Stored atomically as
 * `_catalog/profiles/<id>.json` in the primary bucket, reloaded at open. Every binding
 * must resolve at creation; a relation deleted later stays bound and is listed in the
 * profile's "unresolved" (reads of it fail like reads of any missing relation). */

/* Creates a profile from a request body {id, model_name, description?, bound_datasets,
 * index_config?, embed_model?, bucket? (default primary; must exist)}. LH_EINVAL for bad
 * or unknown fields and bindings that do not resolve (named), LH_EEXISTS when the id is
 * taken, LH_ENOTFOUND for an unknown bucket. Durable before it returns; records
 * profile.created. *profile_out (if not NULL) gets the profile as GET shows it; caller
 * decrefs. */
int lh_catalog_profile_create(lh_catalog *cat, const json_t *spec, const char *actor,
                              json_t **profile_out, lh_error *err);
/* Every profile (as GET shows it, with "unresolved"), sorted by id. Caller decrefs. */
json_t *lh_catalog_profile_list(lh_catalog *cat);
/* One profile with "unresolved"; NULL + LH_ENOTFOUND naming the ids. Caller decrefs. */
json_t *lh_catalog_profile_get(lh_catalog *cat, const char *id, lh_error *err);
bool lh_catalog_profile_exists(lh_catalog *cat, const char *id);
/* Copy of a profile's bound relation names (array of strings), or NULL when there is no
 * such profile. Caller decrefs. */
json_t *lh_catalog_profile_bindings(lh_catalog *cat, const char *id);
/* Tells which keys are bound to profile `id`: appends their names, comma-separated, to
 * holders and returns how many. Set by the server (keys live in auth/); called under the
 * profiles' lock, so it must not call back into profile functions. */
typedef size_t (*lh_catalog_profile_guard)(void *ctx, const char *id, lh_buf *holders);
void lh_catalog_set_profile_guard(lh_catalog *cat, lh_catalog_profile_guard fn, void *ctx);
/* Deletes a profile: LH_ENOTFOUND, or LH_ECONFLICT naming the keys still bound to it
 * (revoke them first). Durable before it returns; records profile.deleted. */
int lh_catalog_profile_delete(lh_catalog *cat, const char *id, const char *actor, lh_error *err);

/* ---------------------------------------------------------------- bucket migration
 * (docs/GOVERNANCE.md "Bucket migration")
 *
 * Rewrites every manifest whose recorded bucket is missing, null, empty, a legacy
 * spelling ("default", "main", ...) or otherwise not exactly the bucket it lives in, with
 * that bucket's name (`primary` for the primary bucket). Atomic per manifest, version
 * unchanged; idempotent. On success *report = {changed: [{dataset, from, to}], unchanged: N}
 * (caller decrefs) and, when something changed, buckets.migrated is recorded. A failure
 * half-way returns the error; the manifests already rewritten stay rewritten (and are
 * recorded), and a second run finishes. */
int lh_catalog_migrate_buckets(lh_catalog *cat, const char *actor, json_t **report, lh_error *err);

/* PII detection by column name: 1 and sets kind ("email", "phone", "ssn", "salary",
 * "address", "date_of_birth", "medical", "name", ...) and sensitivity ("PII", "PHI",
 * "Financial", "Biometric") when the name says the column holds personal data, else 0.
 * Strings are static. */
int lh_pii_by_name(const char *column, const char **kind, const char **sensitivity);
/* Sensitivity levels, lowest first: the rank is the order. Their names ("None", "PII",
 * "Financial", "PHI", "Biometric") are spelled once, in pii.c's table; everything else
 * (manifests, metadata validation, messages, the PII rules) goes through these. */
typedef enum {
    LH_SENS_NONE,
    LH_SENS_PII,
    LH_SENS_FINANCIAL,
    LH_SENS_PHI,
    LH_SENS_BIOMETRIC,
    LH_SENS_COUNT
} lh_sensitivity;
/* Name of a level ("PHI"); static. NULL when rank is not an lh_sensitivity. */
const char *lh_sensitivity_name(int rank);
/* Rank of a sensitivity string (None 0 < PII 1 < Financial 2 < PHI 3 < Biometric 4), or -1
 * when it is not one of them. */
int lh_sensitivity_rank(const char *s);
/* Appends every name, lowest first, comma-separated ("None, PII, ..."), for messages. */
void lh_sensitivity_list(lh_buf *out);

/* ---------------------------------------------------------------- tombstones (tombstones.c)
 *
 * Row-level erasure before compaction, and the superseded rows of upserts. A dataset may
 * have one tombstone set, stored at `_catalog/tombstones/<name>.json` in the dataset's
 * bucket (atomic write, durable before the call returns; format "tombstones.v1":
 *   {format_version, dataset, key_column,
 *    tombstones: [{key, actor, reason, deleted_at, live_part?, previous_part?}]}).
 * One entry per key. A plain entry (no live_part: an erasure) hides every row with that key
 * in every part, current and future. A scoped entry (reason "superseded", written by an
 * upsert commit, lh_catalog_commit.supersede_*) hides the key's rows in every part except
 * live_part, the part holding the current version. A scoped entry whose live_part is not
 * a part of the dataset's manifest falls back on previous_part (the live part before the
 * last upsert moved it) when that one is, and is otherwise inactive: it hides nothing
 * (lh_tombstone_scope). So between an upsert's two writes (the set, then the manifest),
 * and after a crash or failure between them, the set's change is invisible. Inactive
 * entries are rolled back (previous_part restored, or the entry dropped) at the next write
 * of the set and at open. An erasure wins: a plain add over a scoped entry makes it plain,
 * an upsert of a key with a plain entry leaves it plain.
 * One key column per dataset: once a set holds a tombstone, another column is
 * LH_ECONFLICT naming the first; the column is forgotten when the set becomes empty. Keys
 * are kept as text: integer keys in canonical decimal form, string keys as given.
 * The set is dropped with its dataset, survives replace and append (an erased person
 * stays erased if a re-ingest brings the row back), and loses the keys a compaction
 * applied physically. The query engine hears of every change through the tombstone
 * listener (before it is made durable, like the dataset listener) and filters the dataset's
 * view (deletion bitmaps, or an anti-join on the key column). */

/* One tombstone as the engine and compaction see it. In a listener call the strings are
 * borrowed for the call; from lh_catalog_tombstone_entries they are owned (free with
 * lh_tombstone_entries_free). */
typedef struct lh_tombstone_entry {
    char *key;           /* canonical text (lh_tombstone_key_text) */
    char *live_part;     /* NULL: plain; else the part key whose rows of key stay visible */
    char *previous_part; /* scoped: the live part before the last upsert, or NULL */
} lh_tombstone_entry;

typedef enum {
    LH_TOMB_PLAIN,   /* hides every row of the key */
    LH_TOMB_SCOPED,  /* hides the key's rows in every part but parts[*live] */
    LH_TOMB_INACTIVE /* hides nothing (its live part is not, or not yet, in the manifest) */
} lh_tombstone_scope_kind;
/* What e does over a manifest listing parts[0..n) (part keys, in the manifest's order):
 * scoped to live_part when it is listed, else to previous_part when that is, else
 * inactive. *live gets the index of the live part for LH_TOMB_SCOPED. */
lh_tombstone_scope_kind lh_tombstone_scope(const lh_tombstone_entry *e, const char *const *parts,
                                           size_t n, size_t *live);
void lh_tombstone_entries_free(lh_tombstone_entry *entries, size_t n);

/* Called under the catalog's lock with the dataset's whole new set (n == 0: none), before
 * the change is durable; called again with the previous set if the write fails. key_type
 * is the key column's DuckDB type from the manifest's schema; entries are borrowed for the
 * call. The listener resolves each entry against the manifest it serves
 * (lh_tombstone_scope). Returns 0 or an LH_E* code with err filled (the change is then not
 * made). */
typedef int (*lh_catalog_tombstone_listener)(void *ctx, const char *dataset, const char *key_column,
                                             const char *key_type,
                                             const lh_tombstone_entry *entries, size_t n,
                                             lh_error *err);
void lh_catalog_set_tombstone_listener(lh_catalog *cat, lh_catalog_tombstone_listener fn,
                                       void *ctx);

/* True when type (a DuckDB type name) can be a tombstone key column: the integer types
 * and VARCHAR. */
bool lh_tombstone_key_type_ok(const char *type);
/* Canonical text of one key value (a JSON string, or an integer) for a column of type;
 * NULL + LH_EINVAL saying why when it cannot be a key of that column. Caller frees. */
char *lh_tombstone_key_text(const json_t *value, const char *type, lh_error *err);

/* What a tombstone add or remove asks. keys are canonical (lh_tombstone_key_text). */
typedef struct lh_tombstone_req {
    const char *dataset;
    const char *key_column; /* add only */
    char *const *keys;
    size_t n;
    const char *actor;  /* key name */
    const char *reason; /* add only; may be NULL */
} lh_tombstone_req;

/* Adds tombstones for the keys whose skip[i] is false (the caller sets skip[i] for values
 * it already failed, e.g. no matching row). Keys already tombstoned are appended to
 * failures ({value, reason}) and added[i] stays false; added[i] is set for each key added.
 * A key with a scoped entry (superseded by an upsert) is added: its entry becomes plain.
 * LH_ENOTFOUND (no dataset), LH_EINVAL (no such column, or a column type that cannot be a
 * key), LH_ECONFLICT (the set uses another key column, named). Adding nothing is not an
 * error (nothing is written). */
int lh_catalog_tombstone_add(lh_catalog *cat, const lh_tombstone_req *req, const bool *skip,
                             bool *added, json_t *failures, lh_error *err);
/* Removes the tombstones of req->keys (the rows are visible again, until a compaction has
 * removed them). Keys not tombstoned go to failures; *removed gets the count removed. */
int lh_catalog_tombstone_remove(lh_catalog *cat, const lh_tombstone_req *req, size_t *removed,
                                json_t *failures, lh_error *err);
/* {dataset, key_column (null when none), tombstones: [{key, actor, reason, deleted_at,
 * live_part?}]}: live_part (scoped entries) is the part resolved against the manifest
 * (lh_tombstone_scope); inactive entries are left out. NULL + LH_ENOTFOUND when there is no
 * such dataset. Caller decrefs. */
json_t *lh_catalog_tombstones(lh_catalog *cat, const char *dataset, lh_error *err);
/* The dataset's key column, its type and keys (all copied; *n = 0 and NULLs when none),
 * plain and scoped alike. A reader: safe under the engine's locks. Caller frees with
 * lh_strv_free-like loops (each key, then the array) and free(). */
void lh_catalog_tombstone_keys(lh_catalog *cat, const char *dataset, char **key_column,
                               char **key_type, char ***keys, size_t *n);
/* The same with each entry's scope (copied; *entries NULL and *n = 0 when none). Caller
 * frees the entries with lh_tombstone_entries_free, the strings with free(). */
void lh_catalog_tombstone_entries(lh_catalog *cat, const char *dataset, char **key_column,
                                  char **key_type, lh_tombstone_entry **entries, size_t *n);

/* ---------------------------------------------------------------- compaction commit */

/* What a compaction hands to the catalog once its merged part is committed in the bucket.
 * The catalog swaps `replaced` (the parts the compaction read) for `part_key` in one
 * manifest write, keeping parts appended meanwhile (rebased), then clears the tombstones
 * the compaction applied (`applied`) unless parts were appended meanwhile (their rows were
 * not filtered, so the tombstones still have work to do) or the manifest write's
 * durability is unknown (the old manifest, erased rows included, could come back).
 * A tombstone is cleared only when it is still what the compaction applied: same key and
 * same live_part (applied_live[i]; NULL array: every applied entry was plain), so an
 * erasure or an upsert of the key meanwhile survives. Before the manifest write, scoped
 * entries whose live part is one of `replaced` are moved to part_key (their old live part
 * kept as previous_part), so they keep hiding the superseded rows of parts appended
 * meanwhile. */
typedef struct lh_catalog_compaction {
    const char *name;
    const char *expected_id; /* the generation compacted: a replace meanwhile → conflict */
    char *const *replaced;
    size_t n_replaced;
    const char *part_key;
    int64_t part_rows, part_bytes;
    char *const *applied;      /* tombstone keys the merged part no longer holds */
    char *const *applied_live; /* NULL, or per applied key the entry's live_part (NULL: plain) */
    size_t n_applied;
    const char *actor;
} lh_catalog_compaction;

/* Commits a compaction. LH_ENOTFOUND (dataset gone), LH_ECONFLICT (replaced, deleted, or a
 * replaced part no longer listed: another compaction won). The manifest write is the
 * linearization point; on any failure before it nothing changed and the caller deletes
 * its part. The replaced parts go to the retirer after the manifest is durable. A failed
 * tombstone clear after the commit leaves the tombstones in place (harmless: they match
 * nothing in the merged part; the next compaction clears them): *tombstones_cleared
 * (if not NULL) says whether they went. */
int lh_catalog_commit_compaction(lh_catalog *cat, const lh_catalog_compaction *c,
                                 bool *tombstones_cleared, lh_error *err);

/* ---------------------------------------------------------------- PII by content */

/* What lh_pii_classify concluded for one column. Strings are static. */
typedef struct lh_pii_verdict {
    bool is_pii;
    const char *kind;        /* "email", "phone", "ssn", "credit_card", "bank_account",
                                "ip_address", "address", "name", "date_of_birth",
                                "free_text_contact", a name-only kind, or NULL */
    const char *sensitivity; /* lh_sensitivity_name(...); "None" when not PII */
    const char *detector;    /* what decided: a content detector ("email", "us_ssn",
                                "payment_card", "iban", "phone", "ipv4", "ipv6",
                                "postal_address", "person_name", "date_of_birth",
                                "free_text_contact"), "name" (the name alone),
                                "name_contradicted" (the name said PII, the values cannot be
                                that kind), or NULL (neither said anything) */
    double match_rate;       /* share of the non-empty sampled values that matched the
                                deciding detector (or had the name's kind's shape when
                                contradicted); -1 when no detector applied */
    size_t sampled;          /* non-empty values looked at */
    bool name_signal;        /* lh_pii_by_name said the name is personal */
} lh_pii_verdict;

/* Classifies one column from its name, its DuckDB type (may be NULL) and a sample of its
 * values as text (values[i] may be NULL; n may be 0: then the name and type decide).
 * docs/GOVERNANCE.md "Content PII detection" gives the detectors, thresholds and how the
 * name combines. Pure and thread-safe; values are borrowed for the call. LH_EINTERNAL only
 * when the patterns cannot be compiled. */
int lh_pii_classify(const char *column, const char *type, const char *const *values, size_t n,
                    lh_pii_verdict *out, lh_error *err);
/* {is_pii, pii_kind, sensitivity, pii_evidence: {detector, match_rate, sampled,
 * name_signal}}: the manifest's column fields. Caller decrefs. */
json_t *lh_pii_verdict_json(const lh_pii_verdict *v);

/* Validity checks the detectors use (exposed for tests). Digits-only strings unless said. */
bool lh_pii_luhn_ok(const char *digits);
/* GTIN (EAN-8, UPC-A, EAN-13, GTIN-14) check digit. */
bool lh_pii_gtin_ok(const char *digits);
/* Payment card: 13-19 digits (spaces and dashes allowed), Luhn, a known issuer range and
 * length, and not a valid 13/14-digit barcode. */
bool lh_pii_card_ok(const char *s);
/* US SSN (dashes or spaces allowed): area not 000, 666 or 900-999; group not 00; serial
 * not 0000. */
bool lh_pii_ssn_ok(const char *s);
/* IBAN (spaces allowed): the country's registered length and mod-97 == 1. */
bool lh_pii_iban_ok(const char *s);
/* IPv6 in any RFC 4291 form (compressed, IPv4-embedded, with a %zone). */
bool lh_pii_ipv6_ok(const char *s);
/* ---------------------------------------------------------------- AI-safe views
 * (safe_views.c; docs/GOVERNANCE.md "AI-safe views")
 *
 * A safe view is a relation over one dataset (its base): a column whitelist, an optional
 * row filter (one SQL boolean expression, checked by the query engine's firewall against
 * the base alone, which may call caller_attribute('key')) and per-column redactions.
 * Definition (format "safe_view.v1"), stored atomically in the primary bucket at
 * `_catalog/views/<name>.json` and reloaded at open:
 *   {format_version, name, base_dataset, columns[], row_filter (string|null),
 *    column_redactions {col: {kind: "null"|"hash"|"mask", keep_prefix, keep_suffix}},
 *    description, created_at, created_by}
 * View and dataset names share one namespace, case-insensitively (both are SQL relation
 * names): creating either under a name the other holds is LH_EEXISTS. A view whose base is
 * gone (deleted) or lacks a projected column stays listed with status "broken" and a
 * problem; it works again once the base is back. Views are changed under the catalog's
 * mutation lock, like datasets. */

typedef enum { LH_RELATION_NONE, LH_RELATION_DATASET, LH_RELATION_VIEW } lh_relation_kind;
/* What name is (case-insensitive): a dataset, a safe view, or nothing. */
lh_relation_kind lh_catalog_relation_kind(lh_catalog *cat, const char *name);

/* Called when a view is about to be created (def != NULL) or deleted (def == NULL), before
 * the change is made durable, under the catalog's mutation lock; a non-zero return refuses
 * the change with err (LH_EINVAL for a row filter the engine refuses). Called again with
 * the previous state when the durable write fails. Like lh_catalog_listener, it must not
 * call mutating catalog functions. */
typedef int (*lh_catalog_view_listener)(void *ctx, const char *name, const json_t *def,
                                        lh_error *err);
void lh_catalog_set_view_listener(lh_catalog *cat, lh_catalog_view_listener fn, void *ctx);

/* Validates spec {name, base_dataset, columns, row_filter?, column_redactions?,
 * description?} (unknown fields, a missing base, unknown or duplicate columns, redactions
 * of columns not projected, bad mask arguments: LH_EINVAL naming them; a taken name:
 * LH_EEXISTS), lets the listener build it, then persists it. *def_out (if not NULL) gets
 * the stored definition; caller decrefs. */
int lh_catalog_view_create(lh_catalog *cat, const json_t *spec, const char *actor, json_t **def_out,
                           lh_error *err);
/* Deletes a view (LH_ENOTFOUND when unknown). */
int lh_catalog_view_delete(lh_catalog *cat, const char *name, const char *actor, lh_error *err);
/* Copy of a view's definition plus "status" ("ok"|"broken") and, when broken, "problem";
 * NULL + LH_ENOTFOUND. Caller decrefs. */
json_t *lh_catalog_view_get(lh_catalog *cat, const char *name, lh_error *err);
/* Array of those, sorted by name. Caller decrefs. */
json_t *lh_catalog_views_list(lh_catalog *cat);

#endif
