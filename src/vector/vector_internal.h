/*
 * vector_internal.h: what the files of src/vector/ share. Only the C files of src/vector/
 * (and unit tests) include it. The FAISS shim's C face is ann.h.
 *
 * Files (who owns what):
 *   normalize.c, chunk.c   text normalisation (utf8proc NFKC + casefold), chunking
 *   embed.c                the embedder interface and registry
 *   embed_hash.c           the built-in `hash` embedder
 *   embed_http.c           `ollama` and `openai` over libcurl (batching, retries, timeouts)
 *   ann.cpp                FAISS (ann.h) and the distance kernels
 *   hnsw_insert.cpp        our HNSW graph construction (ann_internal.hpp)
 *   pq8.cpp                our 8-bit product quantizer for IVF-PQ (ann_internal.hpp)
 *   tune.c                 eval sets, trials, the proposer (pure: matrices and journals)
 *   vectors.c              the registry: definitions, open/close, sweep, event tap, list/get/delete
 *   store.c                the private DuckDB: Parquet parts of chunks, scans, exact search
 *   build.c                build and refresh, compaction purge
 *   search.c               search: ANN or exact, filters, liveness, subjects
 *   activate.c             profile activation, the ollama model swap
 *   autotune.c             the tuning glue: eval set and trial journal files, promotion,
 *                          the background agent
 */
#ifndef LH_VECTOR_INTERNAL_H
#define LH_VECTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "vector/ann.h"
#include "vector/vector.h"

/* duckdb.h declares a few `f()` functions; keep -Wstrict-prototypes for our own code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <duckdb.h>
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------- text (normalize.c, chunk.c) */

/* NFKC + casefold of UTF-8 text (utf8proc). Invalid UTF-8 is LH_EINVAL. Caller frees
 * *out (NUL-terminated, *out_len bytes). */
int lh_text_normalize(const char *text, size_t len, char **out, size_t *out_len, lh_error *err);

typedef struct lh_chunk_span {
    size_t offset, len; /* bytes into the text; never splits a code point */
} lh_chunk_span;

/* Character-window chunking: windows of `size` code points, each starting `size -
 * overlap` code points after the previous (overlap < size), the last one ending at the
 * text's end; an empty text has no chunk. Invalid UTF-8 bytes count as one character
 * each (never dropped, never split). Caller frees *out. */
int lh_chunk_text(const char *text, size_t len, size_t size, size_t overlap, lh_chunk_span **out,
                  size_t *n_out, lh_error *err);

/* ---------------------------------------------------------------- embedders (embed*.c) */

typedef struct lh_embedder lh_embedder;

typedef struct lh_embedder_spec {
    const char *kind;  /* "hash" | "ollama" | "openai" */
    const char *model; /* ollama/openai: the model name (required); hash: NULL */
    int dim;           /* hash: 8..4096 (default 384); others: 0 = learn it from the server */
} lh_embedder_spec;

/* Opens an embedder. Endpoints, API key, timeouts, batch size and retries come from cfg
 * (LH_EMBED_OLLAMA_URL, LH_EMBED_OPENAI_URL, LH_EMBED_OPENAI_KEY_FILE,
 * LH_EMBED_TIMEOUT_MS, LH_EMBED_BATCH, LH_EMBED_RETRIES; docs/VECTORS.md). An http
 * embedder with dim 0 asks the server once (embeds "dimension probe"). Errors name the
 * endpoint, never a key. Caller frees with lh_embedder_free. */
lh_embedder *lh_embedder_open(const lh_config *cfg, const lh_embedder_spec *spec, lh_error *err);
void lh_embedder_free(lh_embedder *e);
const char *lh_embedder_kind(const lh_embedder *e);
const char *lh_embedder_model(const lh_embedder *e); /* "" for hash */
int lh_embedder_dim(const lh_embedder *e);
/* Embeds n texts into out (n × dim floats, each row L2-normalised; a text with no feature
 * gets a zero row). Batches internally; retries 429/5xx/connection errors with exponential
 * backoff; job (may be NULL) is polled for cancellation between batches (LH_ECANCELLED).
 * Upstream failures are LH_EUPSTREAM kind "embedder_error" naming the endpoint and the
 * status; a timeout is LH_ETIMEOUT. Thread-safe. */
int lh_embedder_embed(lh_embedder *e, const char *const *texts, size_t n, float *out, lh_job *job,
                      lh_error *err);
/* ollama only (others: 0, nothing done): loads the model (an empty /api/embed with
 * keep_alive unset) or unloads it (keep_alive 0). */
int lh_embedder_load(lh_embedder *e, bool load, lh_error *err);

/* The hash embedder's pure function (embed_hash.c), for tests and the bench: one text →
 * out[dim]. */
void lh_hash_embed(const char *text, size_t len, int dim, float *out);

/* embed_http.c's face for embed.c: one `ollama` or `openai` server (its base URL, key,
 * timeouts, batch size and retries from cfg). Immutable once open; thread-safe. */
#define LH_EMBED_DIM_MAX 16384
typedef struct lh_embed_http lh_embed_http;
/* kind "ollama" | "openai"; model required. No network traffic. Caller frees with
 * lh_embed_http_free (which wipes the key). */
lh_embed_http *lh_embed_http_open(const lh_config *cfg, const char *kind, const char *model,
                                  lh_error *err);
void lh_embed_http_free(lh_embed_http *h);
/* Embeds "dimension probe" once; *dim gets the length of the vector returned. */
int lh_embed_http_probe_dim(lh_embed_http *h, int *dim, lh_error *err);
/* As lh_embedder_embed, every row checked to have exactly dim values. */
int lh_embed_http_embed(lh_embed_http *h, const char *const *texts, size_t n, int dim, float *out,
                        lh_job *job, lh_error *err);
/* As lh_embedder_load (0 and nothing sent for openai). */
int lh_embed_http_load(lh_embed_http *h, bool load, lh_error *err);

/* ---------------------------------------------------------------- storage layout
 *
 * Definition: `_catalog/vectors/<index>.json` in the primary bucket (atomic writes):
 *   {format_version: "vector_index.v1", name, dataset, id_column, text_column, chunk_size,
 *    overlap, embedder, model, dim, kind, params, refresh, created_at, created_by,
 *    built_at, embedding_stale_since (RFC 3339 or null), docs, chunks, next_label,
 *    parts: ["<file>.parquet", ...], ann: "<file>.faiss" | null, champion: {...} | null}
 * Data, in the dataset's bucket, under `datasets/<dataset>/_vectors/<index>/`:
 *   part-<hex>.parquet   doc_id VARCHAR, chunk INTEGER, text VARCHAR, embedding FLOAT[dim],
 *                        label BIGINT (unique per index, the ANN id), doc_hash VARCHAR
 *                        (lowercase hex SHA-256 of the document's whole text)
 *   ann-<hex>.faiss      the FAISS structure over the labels of every part
 *   evalset.json, trials.jsonl   tuning (autotune.c)
 * Files are written under a temp name, fsynced, renamed, the folder fsynced; then the
 * definition (the linearization point) names them; files no definition names are swept at
 * open. */
#define LH_VECTOR_DEF_DIR "_catalog/vectors"
#define LH_VECTOR_DATA_DIR "_vectors"

/* A warm index: everything search needs in memory, immutable once published, shared by
 * reference count (a refresh builds a new one and swaps it in; searches in flight keep
 * the old one). */
typedef struct lh_vwarm {
    atomic_int refs;
    size_t n; /* chunks */
    int dim;
    int64_t *labels; /* n, ascending */
    char **doc_ids;  /* n */
    int32_t *chunks; /* n */
    char **texts;    /* n */
    float *vecs;     /* n × dim, L2-normalised */
    lh_ann *ann;     /* NULL: exact search only */
    lh_ann_kind kind;
    lh_ann_params params;
} lh_vwarm;

void lh_vwarm_release(lh_vwarm *w);

/* ---------------------------------------------------------------- the private DuckDB (store.c)
 * One in-memory DuckDB instance per lh_vectors, its external access limited to the
 * buckets' datasets/ folders and <data>/_tmp/, configuration locked, a memory limit of
 * its own. It reads and writes only our Parquet parts; user SQL never reaches it. */

/* A new connection to the private instance (caller: duckdb_disconnect). */
int lh_vstore_connect(lh_vectors *v, duckdb_connection *out, lh_error *err);

/* Rows of a part to write (all arrays n long, borrowed). */
typedef struct lh_vrows {
    size_t n;
    int dim;
    const char *const *doc_ids;
    const int32_t *chunks;
    const char *const *texts;
    const float *vecs; /* n × dim */
    const int64_t *labels;
    const char *const *doc_hashes;
} lh_vrows;

/* Writes rows as a Parquet part at path (temp name, fsync, rename, folder fsync).
 * Crash-safe: path is whole or absent. */
int lh_vstore_write_part(lh_vectors *v, const char *path, const lh_vrows *rows, lh_error *err);

/* ---------------------------------------------------------------- the registry (vectors.c)
 * for search.c, activate.c and autotune.c */

/* A deep copy of an index's definition (the JSON above plus "bucket" and "dir", the
 * absolute data folder). NULL + LH_ENOTFOUND. Caller decrefs. */
json_t *lh_vindex_def(lh_vectors *v, const char *name, lh_error *err);
/* Absolute paths of the index's parts, NULL-terminated (empty when it has none). Caller
 * frees each and the array. */
char **lh_vindex_part_paths(lh_vectors *v, const char *name, lh_error *err);
/* The warm structure, loading it when cold (parts into memory; the ANN file, or a build
 * of it when the file is missing). Caller releases with lh_vwarm_release. */
int lh_vindex_warm(lh_vectors *v, const char *name, lh_vwarm **out, lh_error *err);
/* The warm structure when already warm (a reference), else NULL; never loads. */
lh_vwarm *lh_vindex_peek(lh_vectors *v, const char *name);
/* Drops the warm structure from memory (searches in flight keep their reference). */
void lh_vindex_cool(lh_vectors *v, const char *name);
/* The index's embedder (owned by the registry, valid until lh_vectors_close). */
lh_embedder *lh_vindex_embedder(lh_vectors *v, const char *name, lh_error *err);
/* Promotion: builds (kind, p) over the warm vectors, writes the ANN file, commits the
 * definition (kind, params, champion: stolen, may be NULL) and swaps the warm structure. */
int lh_vindex_set_ann(lh_vectors *v, const char *name, lh_ann_kind kind, const lh_ann_params *p,
                      json_t *champion, const char *actor, lh_job *job, lh_error *err);
/* The module's borrowed handles. */
const lh_vectors_config *lh_vectors_handles(lh_vectors *v);

/* ---------------------------------------------------------------- search (search.c)
 * Hit assembly, pure, exposed for unit tests. */
typedef struct lh_vhit {
    char *doc_id; /* owned */
    int32_t chunk;
    char *text; /* owned */
    float score;
    int64_t label;
} lh_vhit;

/* Compacts hits[0..n) (in rank order, best first) in place into the final hits: drops
 * those whose doc_id is not in live (sorted by strcmp, n_live of them; live NULL: all are
 * live), keeps only the first hit of each document unless chunks, stops at k. Frees what
 * it drops. Returns the count kept. */
size_t lh_vhits_assemble(lh_vhit *hits, size_t n, const char *const *live, size_t n_live,
                         bool chunks, size_t k);
void lh_vhits_free(lh_vhit *hits, size_t n);

/* ---------------------------------------------------------------- profiles (activate.c) */

/* The active profile's state (activate.c owns its content). The registry keeps one slot
 * per lh_vectors, NULL until the first activation, and frees it at close with
 * lh_vactive_free. */
typedef struct lh_vactive lh_vactive;
lh_vactive **lh_vectors_active_slot(lh_vectors *v);
void lh_vactive_free(lh_vactive *a);

/* ---------------------------------------------------------------- tuning (tune.c, pure) */

typedef struct lh_tune_matrix {
    size_t n;
    int dim;
    const float *vecs;     /* n × dim, L2-normalised, borrowed */
    const int64_t *labels; /* n, borrowed */
} lh_tune_matrix;

/* An eval set: n_queries query vectors sampled deterministically (seed) from the matrix
 * and perturbed so they are not their own neighbours, with their exact top-k labels.
 * {seed, k, queries: [[floats]], truth: [[labels]]}. Caller decrefs. */
json_t *lh_tune_evalset(const lh_tune_matrix *m, size_t n_queries, size_t k, uint64_t seed,
                        lh_error *err);
/* One trial: builds (kind, p) over m, measures recall@k against the eval set, p50/p95
 * query latency (one thread), build ms and memory bytes: {kind, params, recall_at_10,
 * p50_us, p95_us, build_ms, memory_bytes, n, at}. Caller decrefs. */
json_t *lh_tune_trial(const lh_tune_matrix *m, const json_t *evalset, lh_ann_kind kind,
                      const lh_ann_params *p, lh_job *job, lh_error *err);
/* The champion among trials (array): meets recall_target at the lowest p95, or NULL. */
const json_t *lh_tune_champion(const json_t *trials, double recall_target);
/* The next config the background agent tries: ε-greedy around the champion (ε = 0.2),
 * deduplicated against the journal, deterministic from its length. 0, or LH_ENOTFOUND
 * when the neighbourhood is exhausted. */
int lh_tune_propose(const json_t *trials, lh_ann_kind kind, int dim, size_t n, lh_ann_params *out,
                    lh_error *err);

/* ---------------------------------------------------------------- the tuning agent (autotune.c) */

/* The opt-in background agent (LH_VECTOR_TUNE_AGENT=1): one trial at a time on the job
 * pool (kind "vector_tune"), at most max_per_hour trial starts in any hour and cooldown_s
 * after the previous trial ended; indexes in name order. Started by lh_vectors_open;
 * stopped by lh_vectors_stop before the job pool closes (a queued or running trial is
 * cancelled and waited for). Caller stops with lh_vtune_agent_stop (accepts NULL). */
typedef struct lh_vtune_agent lh_vtune_agent;
lh_vtune_agent *lh_vtune_agent_start(lh_vectors *v, int max_per_hour, int cooldown_s,
                                     lh_error *err);
void lh_vtune_agent_stop(lh_vtune_agent *a);
/* Trials the agent has finished (tests). */
long lh_vtune_agent_trials(lh_vtune_agent *a);

#endif
