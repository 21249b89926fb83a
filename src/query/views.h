/*
 * views.h: the registry of dataset views and their DDL.
 *
 * A registry is a value: the datasets the engine serves (name, bucket, part keys), sorted
 * by name case-insensitively, plus, per dataset, why its view could not be created at the
 * last apply. It knows nothing of the engine or of generations and takes no lock: its
 * owner (engine.c) guards it (changes it in place after a dataset change, replaces it as
 * a whole after a rebuild).
 *
 * For a dataset `people` whose manifest lists files [a, b] in bucket B, apply creates
 *   CREATE OR REPLACE VIEW "people"        AS SELECT * FROM read_parquet(['<B>/a', '<B>/b'])
 *   CREATE OR REPLACE VIEW "__raw__people" AS (the same)
 * plus, when the manifest names a subject_key_column K, the companion
 *   CREATE OR REPLACE VIEW "__lhkey__people" AS SELECT *, [CAST(K AS VARCHAR)] AS __lh_key
 *   FROM "people"
 * and, when the dataset has tombstones on column c (views.c, "tombstone DDL"), a table
 * "__tombstones__people"(k, live) of the active keys (live: the index of a scoped entry's
 * live part, NULL for a plain one), a table "__deletes__people"(p, bm) of one bitmap per
 * part of the rows it hides, and "people" reads the parts with a hidden row in one
 * scan filtered on each row's bit in a constant made of their bitmaps, the other parts in
 * a second, unfiltered scan (views.c, "deletion bitmaps"); a part without a row count in
 * the manifest falls back to an anti-join:
 *   ... AS b WHERE b."c" IS NULL OR b."c" NOT IN (SELECT k FROM "__tombstones__people")
 * (with scoped entries, one such filtered scan per part, each excluding its own live keys).
 */
#ifndef LH_QUERY_VIEWS_H
#define LH_QUERY_VIEWS_H

#include "catalog/catalog.h"
#include "duck.h"
#include "storage/storage.h"

/* Access auditing (lineage.c): a subject relation <name> (a dataset with a
 * subject_key_column K, or an AI-safe view over one) has a hidden companion view
 * "__lhkey__<name>" = the relation plus one last column "__lh_key" VARCHAR[] holding
 * [CAST(K AS VARCHAR)], K read from the base row (even when the view redacts or omits it). */
#define LH_KEY_PREFIX "__lhkey__"
#define LH_KEY_COLUMN "__lh_key"

/* The deletion bitmaps' row filter (row_filter.c), which a dataset view with tombstones
 * calls as lh_row_visible(from_base64('<bitmaps>'), [<offsets>], b.file_index,
 * b.file_row_number): true iff the row's bit is 0. Registered once in each database before
 * any view is created (DuckDB's system catalog: every connection of it sees the function);
 * the firewall refuses it to callers (functions.c, LH_FN_INTERNAL). */
#define LH_ROW_VISIBLE_FN "lh_row_visible"
int lh_row_filter_register(duckdb_connection conn, lh_error *err);

typedef struct lh_view_registry lh_view_registry;

/* An empty registry. Caller frees with lh_view_registry_free (accepts NULL). */
lh_view_registry *lh_view_registry_new(void);
/* A deep copy. Caller frees. */
lh_view_registry *lh_view_registry_copy(const lh_view_registry *reg);
void lh_view_registry_free(lh_view_registry *reg);

/* Sets the dataset name to what manifest lists (replacing any entry of that name). */
void lh_view_registry_put(lh_view_registry *reg, const char *name, const json_t *manifest);
/* Drops name (no-op when absent). */
void lh_view_registry_remove(lh_view_registry *reg, const char *name);
size_t lh_view_registry_count(const lh_view_registry *reg);
/* Sets name's tombstones (n == 0: none): key column, its DuckDB type and the entries
 * (copied; scoped ones are resolved against the registered parts at each apply). Kept
 * across lh_view_registry_put of the same name. False when name is not registered. */
bool lh_view_registry_set_tombstones(lh_view_registry *reg, const char *name, const char *column,
                                     const char *type, const lh_tombstone_entry *entries, size_t n);
/* Copies name's tombstones from src to dst (both must hold name; else no-op). */
void lh_view_registry_copy_tombstones(lh_view_registry *dst, const lh_view_registry *src,
                                      const char *name);
/* True when name is registered with exactly manifest's bucket and parts, in order (a
 * metadata edit: the views would not change). */
bool lh_view_registry_same(const lh_view_registry *reg, const char *name, const json_t *manifest);

/* Creates the views of every dataset on conn (a new database, before it is published). A
 * view that cannot be created is left out and the reason recorded
 * (lh_view_registry_problem); the others are still created. Returns how many failed. */
size_t lh_view_registry_apply(lh_view_registry *reg, duckdb_connection conn, lh_storage *st);
/* Makes conn (a live database) serve name as reg has it: both views created or replaced,
 * or dropped when reg does not hold name, in one transaction. On failure the transaction
 * is rolled back (conn holds what it held before) and err says why in one line (DuckDB's
 * reason, which may name files). Leaves reg unchanged. Others may query conn's database
 * meanwhile; the caller serialises view DDL. */
int lh_view_registry_apply_one(const lh_view_registry *reg, const char *name,
                               duckdb_connection conn, lh_storage *st, lh_error *err);
/* Updates name's PII column list from manifest (a metadata edit: no DDL); true when it
 * changed. No-op (false) when name is absent. */
bool lh_view_registry_set_pii(lh_view_registry *reg, const char *name, const json_t *manifest);
/* name's subject_key_column, or NULL (none, not registered, or not served now); *pii (if
 * pii is not NULL) gets its is_pii columns, NULL-terminated. Borrowed: valid until the
 * registry changes. */
const char *lh_view_registry_subject(const lh_view_registry *reg, const char *name,
                                     char *const **pii);
/* The i-th dataset name (sorted), or NULL past the end. Borrowed. */
const char *lh_view_registry_name(const lh_view_registry *reg, size_t i);
/* Records why name's view is not served (why NULL: clears it). No-op when name is absent. */
void lh_view_registry_set_problem(lh_view_registry *reg, const char *name, const char *why);
/* Why the view of name could not be created at the last apply, or NULL (also for a name
 * not in the registry). Borrowed: valid until the registry changes. */
const char *lh_view_registry_problem(const lh_view_registry *reg, const char *name);
/* {name: reason} of every dataset whose view failed at the last apply. Caller decrefs. */
json_t *lh_view_registry_problems(const lh_view_registry *reg);

#endif
