/*
 * vector: semantic search over a dataset's text column (issue 14; docs/VECTORS.md).
 *
 * An index = (dataset, id column, text column, chunking, embedder, ANN kind). Building
 * reads the dataset through the query engine (tombstones applied), chunks each document's
 * text on UTF-8 boundaries, embeds the chunks (embed_*.c: the built-in `hash` embedder, or
 * an `ollama` / `openai` server over libcurl), stores chunks and embeddings as Parquet in
 * the dataset's bucket and builds a FAISS structure beside it (ann.cpp, the only C++ in
 * the tree, behind ann.h). Search ranks by cosine similarity: through the warm FAISS
 * structure, or exactly through DuckDB's array_cosine_distance over the Parquet when none
 * is warm. Ingest marks a dataset's indexes stale; a refresh embeds only the delta;
 * compaction removes erased documents from the stored embeddings and the ANN structure.
 *
 * The module sits above query (it reads datasets through the engine and checks filters
 * with the firewall) and never calls compliance or http: a search reports the subjects of
 * its hits through the same lh_subject_sink callback SQL queries use, so the caller (the
 * HTTP handler, the MCP tools) audits them exactly like SQL reads. Like sources/, it
 * includes duckdb.h (through vector_internal.h only) for its own Parquet files: a private
 * DuckDB instance writes and scans them; user SQL never sees them.
 *
 * Thread-safety: every function may be called from any thread; long work (build, refresh,
 * compaction purge, autotune) runs on the caller's thread with an lh_job for progress and
 * cancellation, so callers run it on the job pool, never on an HTTP worker.
 */
#ifndef LH_VECTOR_H
#define LH_VECTOR_H

#include "auth/auth.h"
#include "catalog/catalog.h"
#include "core/core.h"
#include "query/query.h"
#include "storage/storage.h"

typedef struct lh_vectors lh_vectors;

typedef struct lh_vectors_config {
    const lh_config *cfg; /* borrowed: data_dir and the LH_EMBED_* / LH_VECTOR_* settings */
    lh_storage *st;       /* borrowed: buckets (indexes live in their dataset's bucket) */
    lh_catalog *cat;      /* borrowed: datasets, profiles, the event journal, the event tap */
    lh_engine *eng;       /* borrowed: reads of datasets, filters, the firewall */
    lh_jobs *jobs;        /* borrowed: background refreshes (on_append) and tuning trials */
} lh_vectors_config;

/* Loads every index definition (`_catalog/vectors/<name>.json` in the primary bucket),
 * sweeps files of theirs that no definition references, and registers the catalog event
 * tap that marks indexes stale on ingest and purges erased documents after compaction.
 * A definition that cannot be read is logged and skipped (never deleted). Nothing is
 * loaded into memory until a search or activation needs it. Caller frees with
 * lh_vectors_stop, then (after the job pool is closed) lh_vectors_close. */
lh_vectors *lh_vectors_open(const lh_vectors_config *vc, lh_error *err);
/* Ends the event tap and the background thread that submits refresh and purge jobs, so
 * nothing is submitted to the job pool afterwards. A server calls it before closing the
 * job pool (whose close lets the module's running jobs finish), then lh_vectors_close
 * (before the catalog and engine). Idempotent; lh_vectors_close calls it too. */
void lh_vectors_stop(lh_vectors *v);
void lh_vectors_close(lh_vectors *v);

/* ---------------------------------------------------------------- indexes */

/* Validates a create request {name, dataset, id_column, text_column, chunk_size?,
 * overlap?, embedder? ("hash" default | "ollama" | "openai"), model?, dim? (hash only),
 * kind? ("hnsw" default | "ivfpq" | "flat"), params?, refresh? ("manual" default |
 * "on_append"), wait?} before any work: LH_EINVAL naming the bad field, LH_EEXISTS,
 * LH_ENOTFOUND for an unknown dataset (column errors name the dataset's columns). On
 * success the index is registered in state "building" (so a second create of the name is
 * a conflict) and *out gets an opaque build handle for lh_vectors_build. Caller-side glue:
 * validate on the worker (fast), then run lh_vectors_build on the job pool. */
typedef struct lh_vector_build lh_vector_build;
int lh_vectors_prepare(lh_vectors *v, const json_t *spec, const char *actor, lh_vector_build **out,
                       lh_error *err);
/* Builds a prepared index: reads the documents, embeds, writes the Parquet parts and the
 * ANN structure, commits the definition (state "ready"). job (may be NULL) gets progress
 * (documents embedded of total, then vectors added) and may cancel. On success *index_out
 * (if not NULL) gets the index as GET shows it (caller decrefs). On failure nothing of the
 * index remains (files removed, name free again). Consumes b in every case. */
int lh_vectors_build(lh_vectors *v, lh_vector_build *b, lh_job *job, json_t **index_out,
                     lh_error *err);
/* Frees a prepared build that will not run (unregisters the name). */
void lh_vector_build_abandon(lh_vectors *v, lh_vector_build *b);

/* Every index (as GET shows it), sorted by name. Caller decrefs. */
json_t *lh_vectors_list(lh_vectors *v);
/* One index: {name, dataset, id_column, text_column, chunk_size, overlap, embedder, model,
 * dim, kind, params, refresh, state, docs, chunks, bytes, embedding_stale_since, built_at,
 * created_at, created_by, warm, problem?}. LH_ENOTFOUND. Caller decrefs. */
json_t *lh_vectors_get(lh_vectors *v, const char *name, lh_error *err);
/* Deletes an index and its files. LH_ENOTFOUND; LH_ECONFLICT while it builds. */
int lh_vectors_delete(lh_vectors *v, const char *name, const char *actor, lh_error *err);

/* ---------------------------------------------------------------- freshness */

/* Refreshes every index of `dataset`: embeds only documents whose id is new or whose text
 * changed (content hash per document), drops documents no longer in the dataset, updates
 * the ANN structure, clears embedding_stale_since. A refresh with nothing new embeds
 * nothing. *out gets {dataset, indexes: [{name, docs_embedded, docs_removed,
 * chunks_added, chunks_removed, ms}]}. LH_ENOTFOUND when the dataset has no index. */
int lh_vectors_refresh(lh_vectors *v, const char *dataset, const char *actor, lh_job *job,
                       json_t **out, lh_error *err);
/* [{dataset, index, embedding_stale_since, refresh}] for every stale index. Caller
 * decrefs. */
json_t *lh_vectors_stale(lh_vectors *v);

/* ---------------------------------------------------------------- search */

typedef struct lh_vector_query {
    const char *text;    /* the query text (embedded with the index's embedder), or NULL */
    const float *vector; /* or a vector of the index's dimension (n_vector floats) */
    size_t n_vector;
    size_t k;           /* hits wanted, 1..LH_VECTOR_MAX_K */
    const char *filter; /* SQL boolean expression over the dataset's columns, or NULL */
    bool exact;         /* force the exact DuckDB scan (ground truth) */
    bool chunks;        /* chunk-level hits; false (default): the best chunk per document,
                           so k hits are k distinct documents */
} lh_vector_query;
#define LH_VECTOR_MAX_K 1000

typedef struct lh_vector_caller {
    const lh_principal *who;     /* borrowed */
    const lh_sql_policy *policy; /* the caller's SQL policy (filters are checked with it) */
    lh_subject_sink sink;        /* audits the subjects of hits, as for SQL; may be NULL
                                    only for callers whose policy is not audited */
    void *sink_ctx;
} lh_vector_caller;

/* Searches an index: {index, k, exact, ann: bool, chunks: bool, hits: [{doc_id, chunk,
 * score, text}], ms}; exact: the ranking was DuckDB's exact scan (asked for, or no ANN
 * structure warm), ann: the warm FAISS structure ranked. caller->policy may be NULL (the
 * policy of caller->who is then made here). The filter applies before ranking (k hits that match
 * it, when k exist); tombstoned or no longer present documents never come back. Agents may search
 * only indexes over their profile's bindings (LH_EFORBIDDEN naming the allowed indexes). Before
 * *out is returned the sink has been called with the hits' subject keys (datasets with a
 * subject_key_column); a sink error fails the search. *access_out (if not NULL) gets what the
 * search read, for the caller's dataset-level record: {dataset, kind: "rows"|"none", subjects: n}.
 * Caller decrefs both. */
int lh_vectors_search(lh_vectors *v, const char *index, const lh_vector_query *q,
                      const lh_vector_caller *caller, json_t **out, json_t **access_out,
                      lh_error *err);
/* Names of the indexes `who` may search (an agent: those over its profile's bindings),
 * sorted. Caller decrefs. */
json_t *lh_vectors_searchable(lh_vectors *v, const lh_principal *who);

/* ---------------------------------------------------------------- profiles */

/* Warms every index over the profile's bindings: {profile, warmed: [names], failures:
 * [{index, error}], model_swap: {unloaded?, loaded?, skipped?}, ms}. One failing binding
 * does not abort the rest. With the ollama embedder the previous active profile's model is
 * unloaded (keep_alive 0) and the new one preloaded, unless both are the same model. */
int lh_vectors_profile_activate(lh_vectors *v, const char *profile, lh_job *job, json_t **out,
                                lh_error *err);
int lh_vectors_profile_deactivate(lh_vectors *v, const char *profile, json_t **out, lh_error *err);
/* {profile, activated_at, indexes} or {profile: null}. Caller decrefs. */
json_t *lh_vectors_profile_active(lh_vectors *v);
/* Search restricted to the profile's indexes (body's "index"): LH_EFORBIDDEN naming the
 * allowed ones otherwise. */
int lh_vectors_profile_search(lh_vectors *v, const char *profile, const char *index,
                              const lh_vector_query *q, const lh_vector_caller *caller,
                              json_t **out, json_t **access_out, lh_error *err);

/* ---------------------------------------------------------------- tuning */

/* Runs a bounded grid of trials for an index ({kind?, grid?, recall_target?, max_trials?})
 * against its eval set (created on first use), appends them to the trial journal and
 * promotes the champion (meets the recall target at the lowest p95). *out gets {trials,
 * champion, promoted}. */
int lh_vectors_autotune(lh_vectors *v, const char *index, const json_t *spec, const char *actor,
                        lh_job *job, json_t **out, lh_error *err);
/* {index, champion, trials: [...]} from the journal. Caller decrefs. */
json_t *lh_vectors_trials(lh_vectors *v, const char *index, lh_error *err);

#endif
